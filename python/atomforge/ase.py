"""ASE calculator for atomforge models.

    from atomforge.ase import AtomForgeCalculator
    atoms.calc = AtomForgeCalculator("model.afm")
    atoms.calc = AtomForgeCalculator("energy.afm", dipole_model="dipole.afm")   # both
    atoms.calc = AtomForgeCalculator("dipole.afm")                              # dipoles only

Energies eV, forces eV/Angstrom, stress eV/Angstrom^3 in ASE's convention (sigma = -W / V, Voigt
order xx, yy, zz, yz, xz, xy), per-atom energies, and the committee's energy uncertainty in
``calc.results["energy_uncertainty"]`` (eV). Charge models (model type ``dipole``, given as the
model or as ``dipole_model``) add ``charges`` (e; ``atoms.get_charges()``) and ``dipole``
(e*Angstrom about the coordinate origin; ``atoms.get_dipole_moment()``), for the total charge
``atoms.info["charge"]`` (e, default 0). Models with energies and charges (``pinn``: atomic
networks plus electrostatics of network charges) give energy, forces, stress, charges and dipole
from one evaluation for that total charge. Asking a dipole-only calculator for an energy raises
PropertyNotImplementedError naming the model.

Committees: with ``uncertainty=True`` (or when ``forces_uncertainty`` is asked for, e.g.
``calc.get_property("forces_uncertainty", atoms)``) the calculator also fills
``calc.results["forces_uncertainty"]`` (N,) eV/Angstrom, the calibrated per-atom force deviation
of :class:`atomforge.Result`, and ``calc.results["max_forces_uncertainty"]`` (its maximum, DeePMD's
max_devi_f). This costs one vector-Jacobian product per member instead of one.
"""
from __future__ import annotations

import numpy as np
from ase.calculators.calculator import Calculator, PropertyNotImplementedError, all_changes

from ._inputs import min_distance_argument, threads_argument
from .potential import DEFAULT_MIN_DISTANCE, Potential, load


class AtomForgeCalculator(Calculator):
    implemented_properties = ["energy", "free_energy", "energies", "forces", "stress", "energy_uncertainty",
                              "forces_uncertainty", "max_forces_uncertainty", "charges", "dipole"]

    def __init__(self, model, threads: int = 0, min_distance: float = DEFAULT_MIN_DISTANCE, dipole_model=None,
                 uncertainty: bool = False, **kwargs):
        """model: a path, the model file's bytes, or a loaded :class:`atomforge.potential.Potential`
        (an energy model, or a charge/dipole model). threads: OpenMP threads (0: default; clamped
        to the machine with a RuntimeWarning). min_distance: Angstrom; two atoms closer than this
        (periodic images included) raise :class:`atomforge.AtomsTooClose` naming both atom
        indices. dipole_model: optionally a charge/dipole model evaluated beside an energy model;
        raises ValueError when it has no dipoles. uncertainty: compute the per-atom force
        uncertainty (eV/Angstrom) at every evaluation (committees; a single model raises
        PropertyNotImplementedError when it is asked for)."""
        super().__init__(**kwargs)
        self.potential = model if isinstance(model, Potential) else load(model)
        self.threads = threads_argument(threads)
        self.min_distance = min_distance_argument(min_distance)
        self.uncertainty = bool(uncertainty)
        self.dipole_potential = None
        if dipole_model is not None:
            self.dipole_potential = dipole_model if isinstance(dipole_model, Potential) else load(dipole_model)
            if "dipole" not in self.dipole_potential.capabilities:
                raise ValueError(f"dipole_model {self.dipole_potential.source} is a '"
                                 f"{self.dipole_potential.model_type}' model without dipoles")
        elif "dipole" in self.potential.capabilities:
            self.dipole_potential = self.potential

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        has_energy = "energy" in self.potential.capabilities
        want_energy = [p for p in properties if p not in ("charges", "dipole")]
        if want_energy and not has_energy:
            raise PropertyNotImplementedError(
                f"{self.potential.source} is a '{self.potential.model_type}' model: it gives charges and dipoles, "
                f"not {', '.join(want_energy)} (use it as dipole_model beside an energy model)")
        q_total = float(self.atoms.info.get("charge", 0.0))
        # an energy model with charges (pinn): its energy depends on the total charge, and one
        # evaluation gives energy, forces, charges and dipole
        one_pass = has_energy and self.dipole_potential is self.potential
        if has_energy:
            want_u = self.uncertainty or "forces_uncertainty" in properties or "max_forces_uncertainty" in properties
            r = self.potential.compute(self.atoms, threads=self.threads, min_distance=self.min_distance,
                                       uncertainty=want_u,
                                       charge=q_total if "charges" in self.potential.capabilities else 0.0)
            self.results["energy"] = r.energy
            self.results["free_energy"] = r.energy
            self.results["energies"] = r.atomic_energies
            self.results["forces"] = r.forces
            self.results["energy_uncertainty"] = r.energy_uncertainty
            if r.forces_uncertainty is not None:
                self.results["forces_uncertainty"] = r.forces_uncertainty
                self.results["max_forces_uncertainty"] = float(np.max(r.forces_uncertainty, initial=0.0))
            elif want_u:
                raise PropertyNotImplementedError(f"forces_uncertainty needs a committee model (this one has "
                                                  f"{self.potential.committee_size} member)")
            if self.atoms.cell.rank == 3 and any(self.atoms.pbc):
                s = r.stress(self.atoms.get_volume())
                self.results["stress"] = np.array([s[0, 0], s[1, 1], s[2, 2], s[1, 2], s[0, 2], s[0, 1]])
            elif "stress" in properties:
                raise PropertyNotImplementedError("stress needs a periodic cell")
        if one_pass:
            self.results["charges"] = r.charges
            self.results["dipole"] = r.dipole
        elif self.dipole_potential is not None:
            d = self.dipole_potential.compute(self.atoms, threads=self.threads, forces=False, charge=q_total,
                                              min_distance=self.min_distance)
            self.results["charges"] = d.charges
            self.results["dipole"] = d.dipole
        elif any(p in ("charges", "dipole") for p in properties):
            raise PropertyNotImplementedError(f"{self.potential.source} gives no charges or dipoles; pass "
                                              f"dipole_model=")
