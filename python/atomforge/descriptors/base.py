"""The descriptor interface of the Python API, mirroring the core's ``atomforge::Descriptor``,
and the descriptor registry.

A descriptor class holds the parameters of one descriptor type in a documented, serialisable
form (:meth:`Descriptor.to_dict`), writes and reads its model-file records
(:meth:`Descriptor.records`, :meth:`Descriptor.from_records`) without the compiled extension, and
evaluates through the compiled core: the core builds the very same descriptor from those records
(``_core.make_descriptor``), so training and inference use one implementation.

Adding a descriptor type: a module in ``atomforge/descriptors/`` with a subclass decorated by
:func:`register`, one import line in ``atomforge/descriptors/__init__.py``, and its C++ folder
under ``cpp/src/descriptors/`` (docs/architecture.md).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Type

import numpy as np
from ase.data import chemical_symbols

from .._inputs import (DEFAULT_MIN_DISTANCE, Structure, min_distance_argument, structure, threads_argument,
                       to_atomic_number)

#: Cutoff functions fc(r) the core implements (formulas: docs/descriptors.md).
CUTOFF_FUNCTIONS = ("cos", "tanhu", "tanh", "poly1", "poly2", "poly3", "poly4")

_REGISTRY: Dict[str, Type["Descriptor"]] = {}


def register(cls):
    """Class decorator: register a :class:`Descriptor` subclass under ``cls.type``."""
    if not cls.type or cls.type in _REGISTRY:
        raise ValueError(f"descriptor type {cls.type!r} is empty or registered twice")
    _REGISTRY[cls.type] = cls
    return cls


def descriptor_types() -> Dict[str, Type["Descriptor"]]:
    """Registered descriptor classes by type key (``'acsf'``, ``'gmp'``, ...)."""
    return dict(_REGISTRY)


def descriptor_class(type_: str) -> Type["Descriptor"]:
    """The class registered for ``type_``. Raises ValueError listing the known types."""
    try:
        return _REGISTRY[type_]
    except KeyError:
        raise ValueError(f"unknown descriptor type {type_!r} (known: {', '.join(sorted(_REGISTRY))})") from None


def descriptor_from_dict(d: dict) -> "Descriptor":
    """Build a descriptor from its parameter form (``d['type']``, default ``'acsf'``)."""
    if not isinstance(d, dict):
        raise TypeError(f"descriptor parameters must be a dict, got {type(d).__name__}")
    return descriptor_class(d.get("type", "acsf")).from_dict(d)


def descriptor_from_records(rec: dict, where: str = "<model>") -> "Descriptor":
    """Build a descriptor from model-file records (``species`` and ``descriptor.*``), dispatching
    on ``descriptor.type``. Raises ModelFileError naming ``where`` and the record."""
    from ..model_file import ModelFileError, check_species, get_record

    t = get_record(rec, "descriptor.type", "str", where)
    if t not in _REGISTRY:
        raise ModelFileError(f"{where}: unknown descriptor.type {t!r} (this atomforge knows: "
                             f"{', '.join(sorted(_REGISTRY))})")
    species = check_species(rec, where)
    try:
        return _REGISTRY[t].from_records(rec, [chemical_symbols[z] for z in species], where)
    except (ValueError, TypeError, KeyError) as exc:
        if isinstance(exc, ModelFileError):
            raise
        raise ModelFileError(f"{where}: {exc}") from None


@dataclass
class VJPResult:
    """Forces and virial from a vector-Jacobian product.

    forces: (N, 3) float64, -dE/dr in eV/Angstrom (images folded onto their atoms).
    virial: (3, 3) float64, W = -sum_pairs r_ij (x) dE/dr_ij in eV (= -dE/d(strain)); the ASE
        stress is -W / volume.
    per_atom_virial: (N, 3, 3) float64 or None, each pair's virial split evenly between its atoms.
    """

    forces: np.ndarray
    virial: np.ndarray
    per_atom_virial: Optional[np.ndarray] = None


@dataclass
class DescriptorJacobian:
    """Sparse Jacobian dG/dr (layout documented in docs/descriptors.md).

    G: (N, F) descriptor values.
    entry_offsets: (N + 1,) int64; entries of centre i are entry_offsets[i]:entry_offsets[i+1],
        the centre itself first, then each neighbour (periodic images included) within r_c.
    atom: (E,) int64 atom index (0..N-1) the entry's derivative is taken with respect to; the
        same atom may appear more than once for a centre when images of it are neighbours.
    centre: (E,) int64 centre atom of each entry.
    displacement: (E, 3) float64 r_neighbour - r_centre in Angstrom (zero for the self entry).
    values: (E, F, 3) float64 dG[centre, f] / dr, in feature units per Angstrom.

    Forces of an energy E(G): ``F = -np.add.at`` over entries of
    ``einsum('ef,efk->ek', dE_dG[centre], values)`` at ``atom``; virial
    ``W = -einsum('ea,eb->ab', displacement, that product)``. See :meth:`forces_and_virial`.
    """

    G: np.ndarray
    entry_offsets: np.ndarray
    atom: np.ndarray
    centre: np.ndarray
    displacement: np.ndarray
    values: np.ndarray

    def forces_and_virial(self, dE_dG: np.ndarray):
        """Forces (N, 3) and virial (3, 3) for dE_dG (N, F), computed from the Jacobian."""
        g = np.einsum("ef,efk->ek", dE_dG[self.centre], self.values)
        forces = np.zeros((self.G.shape[0], 3))
        np.add.at(forces, self.atom, -g)
        virial = -np.einsum("ea,eb->ab", self.displacement, g)
        return forces, virial


def element_symbols(elements: Sequence, where: str = "elements") -> List[str]:
    """Chemical symbols of ``elements`` (symbols or atomic numbers), checked and de-duplicated.
    Raises ValueError for an empty list, unknown or repeated elements."""
    if isinstance(elements, (str, int)):
        elements = [elements]
    zs = [to_atomic_number(e, where=where) for e in elements]
    if not zs:
        raise ValueError(f"{where}: at least one element is needed")
    if len(set(zs)) != len(zs):
        raise ValueError(f"{where}: repeated entries in {list(elements)}")
    return [chemical_symbols[z] for z in zs]


class Descriptor:
    """Base class of every descriptor type (evaluated by the compiled core).

    Subclasses set ``type`` (the registry key and the model-file ``descriptor.type``), store the
    element order in ``self.elements`` (chemical symbols; element index = position in this
    list) and implement :meth:`to_dict`, :meth:`from_dict`, :meth:`descriptor_records`,
    :meth:`from_records` and :meth:`feature_labels`. Evaluation (:meth:`compute`, :meth:`vjp`,
    :meth:`jacobian`) is shared: the core builds the descriptor from :meth:`records`.
    Units: Angstrom; features as the subclass defines; forces eV/Angstrom; virial eV.
    """

    type: str = ""
    elements: List[str]
    #: The keys of this type's section in a training configuration (``descriptor:`` in YAML,
    #: besides ``type``) with their defaults; :meth:`from_config` builds the descriptor from them.
    config_defaults: dict = {}

    @classmethod
    def from_config(cls, cfg: dict, elements: List[str]) -> "Descriptor":
        """The descriptor a training configuration asks for, for ``elements`` (those of the data).
        ``cfg`` holds :attr:`config_defaults` keys. Raises ValueError naming the key."""
        raise NotImplementedError

    def check_training_elements(self, data_elements: List[str]) -> None:
        """Raise ValueError when training on data with only ``data_elements`` (symbols) cannot
        give this descriptor's features meaning for every element it describes (a trainer calls
        it after :meth:`from_config`). The default accepts everything."""

    # ------------------------------------------------------------------ to implement
    def to_dict(self) -> dict:
        """The documented parameter form (JSON/YAML serialisable, includes ``'type'``)."""
        raise NotImplementedError

    @classmethod
    def from_dict(cls, d: dict) -> "Descriptor":
        raise NotImplementedError

    def descriptor_records(self) -> dict:
        """This descriptor's ``descriptor.*`` model-file records (besides ``descriptor.type``)."""
        raise NotImplementedError

    @classmethod
    def from_records(cls, rec: dict, elements: List[str], where: str) -> "Descriptor":
        raise NotImplementedError

    def feature_labels(self, element) -> List[str]:
        """Human-readable label of each feature column of centre atoms of ``element``."""
        raise NotImplementedError

    # ------------------------------------------------------------------ shared
    def records(self) -> dict:
        """The model-file records that define this descriptor: ``species``, ``descriptor.type``
        and :meth:`descriptor_records`."""
        rec = {"species": np.asarray([to_atomic_number(e) for e in self.elements], dtype=np.int64),
               "descriptor.type": self.type}
        rec.update(self.descriptor_records())
        return rec

    @property
    def core(self):
        """The compiled core's descriptor (``atomforge._core.Descriptor``), built on first use
        from :meth:`records` by the core's registry."""
        c = getattr(self, "_core_obj", None)
        if c is None:
            from .. import _core
            from ..model_file import encode_records

            c = _core.make_descriptor(encode_records(self.records()), f"<{self.type} descriptor>")
            self._core_obj = c
        return c

    # legacy name used by tests and tools
    @property
    def _core(self):
        return self.core

    @property
    def n_features(self) -> int:
        """Columns of G: the largest per-element feature count."""
        return int(self.core.n_features)

    @property
    def n_features_per_element(self) -> Dict[str, int]:
        return {s: int(self.core.n_features_of(k)) for k, s in enumerate(self.elements)}

    @property
    def cutoff(self) -> float:
        """Interaction range in Angstrom (the neighbour-list cutoff)."""
        return float(self.core.cutoff)

    def species_indices(self, numbers: np.ndarray) -> np.ndarray:
        """Element index (int32) of each atomic number; ValueError naming the first unknown atom."""
        numbers = np.asarray(numbers)
        index = {to_atomic_number(e): i for i, e in enumerate(self.elements)}
        lut = np.full(max(max(index), int(numbers.max(initial=0))) + 1, -1, dtype=np.int32)
        for z, i in index.items():
            lut[z] = i
        idx = lut[numbers]
        if (idx < 0).any():
            a = int(np.argmax(idx < 0))
            raise ValueError(f"atom {a} is {chemical_symbols[int(numbers[a])]}, which this descriptor does not "
                             f"cover (elements: {self.elements})")
        return idx

    def neighbor_list(self, positions, numbers=None, cell=None, pbc=None, *,
                      min_distance: float = DEFAULT_MIN_DISTANCE, threads: int = 0):
        """Build the core's neighbour list (with periodic images) for this descriptor's cutoff.

        Returns the core ``NeighborList`` (reusable in :meth:`compute`, :meth:`vjp`,
        :meth:`jacobian` while positions do not change). Raises ValueError/TypeError for bad
        input (see :func:`atomforge._inputs.structure`) and degenerate cells;
        ``atomforge.AtomsTooClose`` for two atoms (periodic images included) closer than
        ``min_distance`` Angstrom, naming both atom indices.
        """
        from .. import _core

        s = positions if isinstance(positions, Structure) else structure(positions, numbers, cell, pbc)
        species = self.species_indices(s.numbers)
        nl = _core.build_neighbor_list(s.positions, s.cell, tuple(bool(b) for b in s.pbc), self.cutoff,
                                       min_distance_argument(min_distance), threads_argument(threads))
        nl.set_species(species)
        return nl

    def _list(self, neighbor_list, positions, numbers, cell, pbc, min_distance, threads):
        if neighbor_list is not None:
            return neighbor_list
        return self.neighbor_list(positions, numbers, cell, pbc, min_distance=min_distance, threads=threads)

    def compute(self, positions, numbers=None, cell=None, pbc=None, *, neighbor_list=None,
                threads: int = 0, device: str = "cpu", min_distance: float = DEFAULT_MIN_DISTANCE) -> np.ndarray:
        """Descriptor values G, float64 array (N, n_features).

        Args:
            positions: (N, 3) Angstrom, or an ase.Atoms (then numbers/cell/pbc come from it).
            numbers: (N,) atomic numbers or symbols.
            cell: (3, 3) lattice vectors as rows, Angstrom; None for a molecule.
            pbc: periodicity per lattice vector; default: periodic if a cell is given.
            neighbor_list: a list from :meth:`neighbor_list` to reuse.
            threads: OpenMP threads (0: the OpenMP default; clamped to the machine).
            device: ``"cpu"`` (the reference) or ``"cuda"`` (the same per-centre kernels on the
                first CUDA device, one GPU thread per centre: equal to the CPU to rounding but
                about one CPU core's speed on an H200, benchmarks/results/cuda_h200.md;
                ValueError when this build or machine has none).
            min_distance: Angstrom; closer pairs raise ``atomforge.AtomsTooClose``.
        """
        threads = threads_argument(threads)
        nl = self._list(neighbor_list, positions, numbers, cell, pbc, min_distance, threads)
        if device == "cuda":
            return self.core.compute_cuda(nl)
        if device != "cpu":
            raise ValueError(f"device must be 'cpu' or 'cuda', got {device!r}")
        return self.core.compute(nl, threads)

    def vjp(self, dE_dG, positions, numbers=None, cell=None, pbc=None, *, neighbor_list=None,
            per_atom_virial: bool = False, threads: int = 0, device: str = "cpu",
            min_distance: float = DEFAULT_MIN_DISTANCE) -> VJPResult:
        """Forces and virial of an energy E(G) given dE_dG (N, n_features) in eV per feature unit.

        Returns :class:`VJPResult`: forces (N, 3) eV/Angstrom = -sum_{i,f} dE/dG_if dG_if/dr,
        virial (3, 3) eV. This is what MD needs: one pass, no Jacobian stored.
        Raises ValueError if dE_dG has the wrong shape or non-finite entries.
        """
        threads = threads_argument(threads)
        nl = self._list(neighbor_list, positions, numbers, cell, pbc, min_distance, threads)
        w = np.asarray(dE_dG, dtype=np.float64)
        if w.shape != (nl.n_local, self.n_features):
            raise ValueError(f"dE_dG must have shape ({nl.n_local}, {self.n_features}), got {w.shape}")
        w = np.ascontiguousarray(w)
        if device == "cuda":
            if per_atom_virial:
                raise ValueError("per_atom_virial is not available with device='cuda'")
            f, vir = self.core.vjp_cuda(nl, w)
            pav = None
        elif device == "cpu":
            f, vir, pav = self.core.vjp(nl, w, per_atom_virial, threads)
        else:
            raise ValueError(f"device must be 'cpu' or 'cuda', got {device!r}")
        forces = nl.fold(f)
        if pav is not None:
            folded = np.zeros((nl.n_local, 3, 3))
            np.add.at(folded, np.asarray(nl.owner), pav)
            pav = folded
        return VJPResult(forces, vir, pav)

    def jacobian(self, positions, numbers=None, cell=None, pbc=None, *, neighbor_list=None,
                 threads: int = 0, min_distance: float = DEFAULT_MIN_DISTANCE) -> DescriptorJacobian:
        """G and the sparse Jacobian dG/dr for training (layout: :class:`DescriptorJacobian`)."""
        threads = threads_argument(threads)
        nl = self._list(neighbor_list, positions, numbers, cell, pbc, min_distance, threads)
        d = self.core.jacobian(nl, threads)
        offsets = d["entry_offsets"]
        centre = np.repeat(np.arange(nl.n_local, dtype=np.int64), np.diff(offsets))
        atom = np.asarray(nl.owner)[d["position"]]
        return DescriptorJacobian(d["G"], offsets, atom, centre, d["displacement"], d["values"])

    def __getstate__(self):  # the core object is rebuilt on demand
        state = dict(self.__dict__)
        state.pop("_core_obj", None)
        return state
