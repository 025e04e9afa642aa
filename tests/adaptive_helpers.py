"""Labellers for the adaptive-sampling tests, importable by path (``adaptive_helpers:FlakyXTB``)
in worker processes."""
import zlib

import numpy as np
from ase.calculators.calculator import CalculationFailed, Calculator, all_changes


class FlakyXTB(Calculator):
    """GFN2-xTB that fails (like an unconverged SCF) for about one structure in ``every``,
    chosen by a hash of the positions, so that failures do not depend on the order of work."""

    implemented_properties = ["energy", "forces"]

    def __init__(self, every=3, **kwargs):
        super().__init__(**kwargs)
        self.every = int(every)

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        if zlib.crc32(np.round(self.atoms.positions, 6).tobytes()) % self.every == 0:
            raise CalculationFailed("SCF not converged (test labeller)")
        from tblite.ase import TBLite

        a = self.atoms.copy()
        a.calc = TBLite(method="GFN2-xTB", verbosity=0)
        self.results = {"energy": a.get_potential_energy(), "forces": a.get_forces()}
