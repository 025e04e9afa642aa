"""Loading a model file and evaluating it with the compiled core.

``atomforge.load(path)`` returns a :class:`Potential`; every model type the core's registry knows
(``atomforge._core.model_types()``: atomic networks on any descriptor, sGDML, ...) is evaluated
the same way, through the core's ``Model`` interface.
"""
from __future__ import annotations

import warnings
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
    forces_uncertainty: (N,) eV/Angstrom, per-atom force deviation over the committee
    eps_i = c_F sqrt(mean_m |F_i^m - <F_i>|^2) (DeePMD's model deviation, Zhang et al., Phys. Rev.
    Materials 3, 023804 (2019)), computed after folding periodic images onto the atoms and
    multiplied by the model's calibration factor c_F (1 without calibration), so that it
    estimates the force error; filled with ``compute(..., uncertainty=True)`` on a committee;
    atomic_energy_uncertainty: (N,) eV; charges: (N,) e; dipole: (3,) e Angstrom about the
    coordinate origin, sum_i q_i r_i with the positions as given (not wrapped into a periodic cell).
    Models without energies (charge/dipole models) give energy NaN and no forces.

    member_forces: (M, N, 3) eV/Angstrom, each member's forces (folded), with uncertainty=True.
    extrapolation: dict with ``features`` (descriptor features outside the training range in
    this evaluation), ``atoms`` (atoms with at least one), ``worst_atom``, ``worst_feature`` and
    ``worst_excess`` (distance outside [min, max] in units of max - min); zeros when the model
    stores no training range.
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
    member_forces: Optional[np.ndarray] = None
    extrapolation: Optional[dict] = None

    @property
    def max_forces_uncertainty(self) -> float:
        """max_i forces_uncertainty (DeePMD's max_devi_f, calibrated), eV/Angstrom; nan without."""
        return float(np.max(self.forces_uncertainty)) if self.forces_uncertainty is not None else float("nan")

    def stress(self, volume: float) -> np.ndarray:
        """Stress tensor (3, 3) in eV/Angstrom^3 with ASE's sign convention: -W / V."""
        return -self.virial / volume


class ExtrapolationWarning(UserWarning):
    """A structure has descriptor features outside the range of the model's training set (the
    model extrapolates; n2p2 prints the same kind of warning). Filter it with
    ``warnings.simplefilter("ignore", atomforge.ExtrapolationWarning)``."""


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
        #: Totals over this Potential's evaluations: evaluations, extrapolating evaluations,
        #: features and atoms outside the training range (see :meth:`compute`).
        self.extrapolation_stats = {"evaluations": 0, "extrapolating_evaluations": 0, "features": 0, "atoms": 0}
        #: Warn about extrapolation (ExtrapolationWarning): at the 1st, 10th, 100th, ...
        #: extrapolating evaluation, each warning summarising the counts since the previous one.
        self.warn_extrapolation = True
        self._warned_at = 0
        self._since_warning = {"evaluations": 0, "features": 0, "atoms": 0}

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
        uncertainty=True on a committee fills ``forces_uncertainty`` and ``member_forces`` (it costs
        one vector-Jacobian product per member instead of one); ``energy_uncertainty`` is always
        filled. Models that store their training range count the descriptor features outside it
        (``Result.extrapolation``) and warn with :class:`ExtrapolationWarning` (see
        ``warn_extrapolation``).
        Raises ValueError for bad input, naming the atom (unknown element, NaN position, ...);
        :class:`AtomsTooClose` (a ValueError, with attributes ``i``, ``j``, ``distance``,
        ``shift``) for two atoms closer than ``min_distance``, naming both atom indices and
        the periodic-image shift.
        """
        s = structure(positions, numbers, cell, pbc)
        threads = threads_argument(threads)
        nl = self.neighbor_list(s, min_distance=min_distance, threads=threads)
        d = self._core.compute(nl, per_atom_virial, threads, forces, uncertainty, float(charge), None,
                               np.ascontiguousarray(s.cell, dtype=np.float64), tuple(bool(b) for b in s.pbc))
        owner = np.asarray(nl.owner)
        n = nl.n_local
        pav = None
        if d["per_atom_virial"] is not None:
            pav = np.zeros((n, 3, 3))
            np.add.at(pav, owner, d["per_atom_virial"])
        fu, mf = None, None
        if d["member_forces"] is not None:  # fold every member onto the atoms, then the deviation
            mf = np.stack([nl.fold(f) for f in d["member_forces"]])
            fu = _core.force_deviation(mf, float(d["forces_uncertainty_scale"]))
        elif d["forces_uncertainty"] is not None:
            fu = np.asarray(d["forces_uncertainty"])[:n].copy()
        ex = d["extrapolation"]
        ex = {"features": int(ex["features"]), "atoms": int(ex["centres"]), "worst_atom": int(ex["worst_centre"]),
              "worst_feature": int(ex["worst_feature"]), "worst_excess": float(ex["worst_excess"])}
        self._count_extrapolation(ex, s.numbers)
        dipole = d["dipole"]
        if dipole is not None and bool(np.any(s.pbc)):
            # the core's list wraps positions into the cell: the dipole about the origin is formed
            # with the positions as given, so that it is continuous along an unwrapped trajectory
            # (the core's sum_i q_i r_i moved by each atom's lattice translation; induced dipoles kept)
            q = np.asarray(d["charges"])
            dipole = np.asarray(dipole) + q @ (np.asarray(s.positions) - np.asarray(nl.positions)[:len(q)])
        energy = float(d["energy"]) if "energy" in self.capabilities else float("nan")
        return Result(energy, nl.fold(d["forces"]) if d["forces"] is not None else None,
                      np.array(d["virial"]), np.array(d["atomic_energies"]), pav,
                      np.array(d["committee_energies"]), float(d["energy_uncertainty"]), fu,
                      d["atomic_energy_uncertainty"], d["charges"], dipole, mf, ex)

    def _count_extrapolation(self, ex: dict, numbers) -> None:
        st = self.extrapolation_stats
        st["evaluations"] += 1
        if not ex["features"]:
            return
        st["extrapolating_evaluations"] += 1
        st["features"] += ex["features"]
        st["atoms"] += ex["atoms"]
        since = self._since_warning
        since["evaluations"] += 1
        since["features"] += ex["features"]
        since["atoms"] += ex["atoms"]
        k = st["extrapolating_evaluations"]
        if not self.warn_extrapolation or k < max(1, 10 * self._warned_at):
            return
        el = chemical_symbols[int(numbers[ex["worst_atom"]])] if ex["worst_atom"] >= 0 else "?"
        warnings.warn(
            f"{self.source}: the model extrapolates: {since['features']} descriptor feature value(s) on "
            f"{since['atoms']} atom(s) outside the training range in {since['evaluations']} evaluation(s) "
            f"({k} extrapolating of {st['evaluations']} so far; largest: atom {ex['worst_atom']} ({el}), feature "
            f"{ex['worst_feature']}, {ex['worst_excess']:.3g} x the range outside it in the last one). Forces "
            f"and energies there are unreliable; next warning at the {10 * k}th extrapolating evaluation",
            ExtrapolationWarning, stacklevel=3)
        self._warned_at = k
        self._since_warning = {"evaluations": 0, "features": 0, "atoms": 0}


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
