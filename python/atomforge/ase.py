"""ASE calculator for atomforge models.

    from atomforge.ase import AtomForgeCalculator
    atoms.calc = AtomForgeCalculator("model.afm")

Energies eV, forces eV/Angstrom, stress eV/Angstrom^3 in ASE's convention (sigma = -W / V, Voigt
order xx, yy, zz, yz, xz, xy), per-atom energies, and the committee's energy uncertainty in
``calc.results["energy_uncertainty"]``.
"""
from __future__ import annotations

import numpy as np
from ase.calculators.calculator import Calculator, all_changes

from ._inputs import min_distance_argument, threads_argument
from .potential import DEFAULT_MIN_DISTANCE, Potential, load


class AtomForgeCalculator(Calculator):
    implemented_properties = ["energy", "free_energy", "energies", "forces", "stress", "energy_uncertainty"]

    def __init__(self, model, threads: int = 0, min_distance: float = DEFAULT_MIN_DISTANCE, **kwargs):
        """model: a path, the model file's bytes, or a loaded :class:`atomforge.potential.Potential`.
        threads: OpenMP threads (0: default; clamped to the machine with a RuntimeWarning).
        min_distance: Angstrom; two atoms closer than this (periodic images included) raise
        :class:`atomforge.AtomsTooClose` naming both atom indices."""
        super().__init__(**kwargs)
        self.potential = model if isinstance(model, Potential) else load(model)
        self.threads = threads_argument(threads)
        self.min_distance = min_distance_argument(min_distance)

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        r = self.potential.compute(self.atoms, threads=self.threads, min_distance=self.min_distance)
        self.results["energy"] = r.energy
        self.results["free_energy"] = r.energy
        self.results["energies"] = r.atomic_energies
        self.results["forces"] = r.forces
        self.results["energy_uncertainty"] = r.energy_uncertainty
        if self.atoms.cell.rank == 3 and any(self.atoms.pbc):
            s = r.stress(self.atoms.get_volume())
            self.results["stress"] = np.array([s[0, 0], s[1, 1], s[2, 2], s[1, 2], s[0, 2], s[0, 1]])
        elif "stress" in properties:
            from ase.calculators.calculator import PropertyNotImplementedError
            raise PropertyNotImplementedError("stress needs a periodic cell")
