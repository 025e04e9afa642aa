"""ASE calculator for atomforge models.

    from atomforge.ase import AtomForgeCalculator
    atoms.calc = AtomForgeCalculator("model.afm")

Energies eV, forces eV/Angstrom, stress eV/Angstrom^3 in ASE's convention (sigma = -W / V, Voigt
order xx, yy, zz, yz, xz, xy), per-atom energies, and the committee's energy uncertainty in
``calc.results["energy_uncertainty"]`` (eV).

Committees: with ``uncertainty=True`` (or when ``forces_uncertainty`` is asked for, e.g.
``calc.get_property("forces_uncertainty", atoms)``) the calculator also fills
``calc.results["forces_uncertainty"]`` (N,) eV/Angstrom, the calibrated per-atom force deviation
of :class:`atomforge.Result`, and ``calc.results["max_forces_uncertainty"]`` (its maximum, DeePMD's
max_devi_f). This costs one vector-Jacobian product per member instead of one.
"""
from __future__ import annotations

import numpy as np
from ase.calculators.calculator import Calculator, all_changes

from .potential import Potential, load


class AtomForgeCalculator(Calculator):
    implemented_properties = ["energy", "free_energy", "energies", "forces", "stress", "energy_uncertainty",
                              "forces_uncertainty", "max_forces_uncertainty"]

    def __init__(self, model, threads: int = 0, uncertainty: bool = False, **kwargs):
        """model: a path, the model file's bytes, or a loaded :class:`atomforge.potential.Potential`.
        uncertainty: compute the per-atom force uncertainty at every evaluation (committees)."""
        super().__init__(**kwargs)
        self.potential = model if isinstance(model, Potential) else load(model)
        self.threads = threads
        self.uncertainty = bool(uncertainty)

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        want_u = self.uncertainty or "forces_uncertainty" in properties or "max_forces_uncertainty" in properties
        r = self.potential.compute(self.atoms, threads=self.threads, uncertainty=want_u)
        self.results["energy"] = r.energy
        self.results["free_energy"] = r.energy
        self.results["energies"] = r.atomic_energies
        self.results["forces"] = r.forces
        self.results["energy_uncertainty"] = r.energy_uncertainty
        if r.forces_uncertainty is not None:
            self.results["forces_uncertainty"] = r.forces_uncertainty
            self.results["max_forces_uncertainty"] = float(np.max(r.forces_uncertainty, initial=0.0))
        elif want_u:
            from ase.calculators.calculator import PropertyNotImplementedError
            raise PropertyNotImplementedError(
                f"forces_uncertainty needs a committee model (this one has {self.potential.committee_size} member)")
        if self.atoms.cell.rank == 3 and any(self.atoms.pbc):
            s = r.stress(self.atoms.get_volume())
            self.results["stress"] = np.array([s[0, 0], s[1, 1], s[2, 2], s[1, 2], s[0, 2], s[0, 1]])
        elif "stress" in properties:
            from ase.calculators.calculator import PropertyNotImplementedError
            raise PropertyNotImplementedError("stress needs a periodic cell")
