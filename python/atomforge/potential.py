"""Loading a model file and evaluating it with the compiled core.

``atomforge.load(path)`` returns a :class:`Potential`; every model type the core's registry knows
(``atomforge._core.model_types()``: atomic networks on any descriptor, sGDML, ...) is evaluated
the same way, through the core's ``Model`` interface.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional

import numpy as np
from ase.data import chemical_symbols

from . import _core
from ._inputs import DEFAULT_MIN_DISTANCE, Structure, min_distance_argument, structure, threads_argument
from .model_file import ModelFileError, read_records

#: Two atoms closer than the minimum distance (a ValueError): attributes i, j (atom indices),
#: distance, min_distance (Angstrom), shift (lattice translation of j's periodic image).
AtomsTooClose = _core.AtomsTooClose


@dataclass
class Result:
    """One evaluation (eV, Angstrom, e).

    energy: float, eV. forces: (N, 3) eV/Angstrom (None when forces were not requested).
    virial: (3, 3) eV, W = -sum_pairs r_ij (x) dE/dr_ij (= sum_i r_i (x) F_i for molecules);
    stress = -W / V. atomic_energies: (N,) eV, summing to energy. per_atom_virial: (N, 3, 3) eV
    or None. committee_energies: (M,) eV, energy of each committee member; energy_uncertainty:
    their standard deviation, eV (0 for a single network).

    Optional per-atom outputs, None unless the model type produces them:
    forces_uncertainty: (N,) eV/Angstrom, per-atom force deviation over the committee;
    atomic_energy_uncertainty: (N,) eV; charges: (N,) e; dipole: (3,) e Angstrom about the
    coordinate origin, sum_i q_i r_i with the positions as given (not wrapped into a periodic cell).
    Models without energies (charge/dipole models) give energy NaN and no forces.
    """

    energy: float
    forces: Optional[np.ndarray]
    virial: np.ndarray
    atomic_energies: np.ndarray
    per_atom_virial: Optional[np.ndarray] = None
    committee_energies: Optional[np.ndarray] = None
    energy_uncertainty: float = 0.0
    forces_uncertainty: Optional[np.ndarray] = None
    atomic_energy_uncertainty: Optional[np.ndarray] = None
    charges: Optional[np.ndarray] = None
    dipole: Optional[np.ndarray] = None

    def stress(self, volume: float) -> np.ndarray:
        """Stress tensor (3, 3) in eV/Angstrom^3 with ASE's sign convention: -W / V."""
        return -self.virial / volume


class Potential:
    """A model evaluated by the compiled core (eV, Angstrom).

    Attributes: model_type, species (atomic numbers), elements, cutoff (Angstrom),
    committee_size, capabilities (e.g. ['energy', 'uncertainty']), source.
    Raises ValueError (ModelFileError) when the file is missing, truncated, corrupted, of a newer
    format version or inconsistent.
    """

    def __init__(self, core_model, source: str):
        self._core = core_model
        self.source = source
        self.species = [int(z) for z in core_model.species]
        self.elements = [chemical_symbols[z] for z in self.species]
        self.cutoff = float(core_model.cutoff)
        self.model_type = core_model.model_type
        self.committee_size = int(core_model.committee_size)
        self.capabilities: List[str] = list(core_model.capabilities)
        lut = np.full(119, -1, dtype=np.int32)
        lut[self.species] = np.arange(len(self.species), dtype=np.int32)
        self._lut = lut

    def __repr__(self) -> str:
        return (f"Potential({self.model_type}, elements={self.elements}, r_c={self.cutoff:g} A, "
                f"committee={self.committee_size}, source={self.source!r})")

    def describe(self):
        """(key, value) lines describing the model, as the core sees it."""
        return list(self._core.describe())

    def species_indices(self, numbers: np.ndarray) -> np.ndarray:
        idx = self._lut[numbers]
        if (idx < 0).any():
            a = int(np.argmax(idx < 0))
            raise ValueError(f"atom {a} is {chemical_symbols[int(numbers[a])]}, which this model does not cover "
                             f"(elements: {self.elements})")
        return idx

    def neighbor_list(self, positions, numbers=None, cell=None, pbc=None, *,
                      min_distance: float = DEFAULT_MIN_DISTANCE, threads: int = 0):
        s = positions if isinstance(positions, Structure) else structure(positions, numbers, cell, pbc)
        species = self.species_indices(s.numbers)
        nl = _core.build_neighbor_list(s.positions, s.cell, tuple(bool(b) for b in s.pbc), self.cutoff,
                                       min_distance_argument(min_distance), threads)
        nl.set_species(species)
        return nl

    def compute(self, positions, numbers=None, cell=None, pbc=None, *, per_atom_virial: bool = False,
                threads: int = 0, forces: bool = True, uncertainty: bool = False,
                charge: float = 0.0, min_distance: float = DEFAULT_MIN_DISTANCE) -> Result:
        """Energy, forces, virial, atomic energies (and whatever else the model type gives) of one
        structure.

        Args: positions (N, 3) Angstrom or an ase.Atoms; numbers (N,); cell (3, 3) rows in
        Angstrom; pbc (default: periodic when a cell is given); threads (0: OpenMP default;
        more than the machine's processors are clamped with a RuntimeWarning);
        forces: compute forces and virial; uncertainty: committee outputs where the model has
        them; charge: total charge in e (charge models: imposed exactly, atomforge/charges.hpp);
        min_distance: Angstrom, every pair of
        atoms (periodic images included) must be at least this far apart (default
        ``DEFAULT_MIN_DISTANCE`` = 0.1 A; 0 rejects only atoms at the same point).
        Raises ValueError for bad input, naming the atom (unknown element, NaN position, ...);
        :class:`AtomsTooClose` (a ValueError, with attributes ``i``, ``j``, ``distance``,
        ``shift``) for two atoms closer than ``min_distance``, naming both atom indices and
        the periodic-image shift.
        """
        s = structure(positions, numbers, cell, pbc)
        threads = threads_argument(threads)
        nl = self.neighbor_list(s, min_distance=min_distance, threads=threads)
        d = self._core.compute(nl, per_atom_virial, threads, forces, uncertainty, float(charge))
        owner = np.asarray(nl.owner)
        n = nl.n_local
        pav = None
        if d["per_atom_virial"] is not None:
            pav = np.zeros((n, 3, 3))
            np.add.at(pav, owner, d["per_atom_virial"])
        fu = None
        if d["forces_uncertainty"] is not None:
            fu = np.asarray(d["forces_uncertainty"])[:n].copy()
        dipole = d["dipole"]
        if dipole is not None and bool(np.any(s.pbc)):
            # the core's list wraps positions into the cell: the dipole about the origin is formed
            # with the positions as given, so that it is continuous along an unwrapped trajectory
            dipole = np.asarray(d["charges"]) @ np.asarray(s.positions)
        energy = float(d["energy"]) if "energy" in self.capabilities else float("nan")
        return Result(energy, nl.fold(d["forces"]) if d["forces"] is not None else None,
                      np.array(d["virial"]), np.array(d["atomic_energies"]), pav,
                      np.array(d["committee_energies"]), float(d["energy_uncertainty"]), fu,
                      d["atomic_energy_uncertainty"], d["charges"], dipole)


def load(source) -> Potential:
    """Load a model file (path or bytes) into a :class:`Potential` evaluated by the C++ core.

    Raises ModelFileError (a ValueError) naming the file for a missing, corrupt, newer-format or
    inconsistent model, or a model type this build does not know.
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        read_records(bytes(source))  # Python-side checks give the same messages
        try:
            core = _core.load_model_bytes(bytes(source), "<bytes>")
        except ValueError as exc:
            raise ModelFileError(str(exc)) from None
        return Potential(core, "<bytes>")
    path = str(Path(source))
    try:
        core = _core.load_model(path)
    except ValueError as exc:
        raise ModelFileError(str(exc)) from None
    return Potential(core, path)
