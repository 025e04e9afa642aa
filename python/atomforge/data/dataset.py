"""In-memory training data: :class:`Dataset`, F frames of atoms with reference labels.

Units everywhere: Angstrom (positions, cells), eV (energy, virial), eV/Angstrom (forces),
e*Angstrom (dipole), e (atomic charges). Readers (:mod:`atomforge.data.readers`) convert file
units into these before a :class:`Dataset` is built.
"""
from __future__ import annotations

import hashlib
import warnings
from typing import Any, Dict, Iterable, List, Optional, Sequence

import numpy as np
from ase.data import chemical_symbols

from .._inputs import structure, to_atomic_number

__all__ = ["Dataset"]

#: Per-atom fields: one array per frame with first dimension n_i (the frame's atom count).
_PER_ATOM = {"positions": 3, "forces": 3, "charges": None}
#: Optional label fields, in the order they enter :meth:`Dataset.sha256`.
_OPTIONAL = ("energy", "forces", "virial", "dipole", "charges", "total_charge")


def _float_array(value, where: str) -> np.ndarray:
    """C-contiguous float64 copy/view of ``value``; TypeError naming ``where`` if not numeric."""
    a = np.asarray(value)
    if a.dtype.kind not in "fiu" or a.dtype == np.bool_:
        raise TypeError(f"{where} must be real numbers, got dtype {a.dtype}")
    return np.ascontiguousarray(a, dtype=np.float64)


def _numbers_array(value, where: str) -> np.ndarray:
    """(n,) int64 atomic numbers from numbers or chemical symbols (via ``to_atomic_number``)."""
    a = np.asarray(value)
    if a.dtype.kind in "US" or a.dtype == object:
        z = [to_atomic_number(s, where=f"{where}: atom {j}") for j, s in enumerate(a.ravel().tolist())]
        return np.array(z, dtype=np.int64).reshape(a.shape)
    if a.dtype.kind not in "iu":
        raise TypeError(f"{where} must be integers (atomic numbers) or symbols, got dtype {a.dtype}")
    return np.ascontiguousarray(a, dtype=np.int64)


def _is_shared_numbers(numbers) -> bool:
    """True when ``numbers`` is one (N,) list of atomic numbers/symbols meant for every frame."""
    if isinstance(numbers, np.ndarray):
        return numbers.ndim == 1 and numbers.dtype != object
    if isinstance(numbers, (list, tuple)):
        return len(numbers) > 0 and all(isinstance(z, (int, np.integer, str)) for z in numbers)
    return False


def _frames_list(value, field: str, convert) -> list:
    """A list with one converted array per frame from a list of arrays or a stacked array."""
    if isinstance(value, np.ndarray) and value.dtype != object:
        if value.ndim == 0:
            raise ValueError(f"{field} must hold one array per frame, got a scalar")
        return [convert(v, f"frame {i}: {field}") for i, v in enumerate(value)]
    try:
        items = list(value)
    except TypeError:
        raise TypeError(f"{field} must be a list of per-frame arrays or a stacked array, "
                        f"got {type(value).__name__}") from None
    return [convert(v, f"frame {i}: {field}") for i, v in enumerate(items)]


def _first_bad_row(arrays: List[np.ndarray]):
    """(frame, row) of the first row with a non-finite entry in a list of per-frame arrays, or None."""
    if not arrays:
        return None
    flat = np.concatenate([a.reshape(a.shape[0], -1) if a.ndim > 1 else a.reshape(-1, 1) for a in arrays])
    bad = ~np.isfinite(flat).all(axis=1)
    if not bad.any():
        return None
    row = int(np.argmax(bad))
    offsets = np.cumsum([a.shape[0] for a in arrays])
    frame = int(np.searchsorted(offsets, row, side="right"))
    start = int(offsets[frame - 1]) if frame else 0
    return frame, row - start


class Dataset:
    """F frames of atoms with reference labels, in memory, in eV and Angstrom.

    Frames may differ in atom count (per-atom quantities are lists of per-frame arrays);
    per-frame quantities are stacked arrays with first dimension F.

    Attributes:
        numbers: list of F arrays (n_i,) int64, atomic numbers of frame i.
        positions: list of F arrays (n_i, 3) float64, Angstrom.
        cells: (F, 3, 3) float64, lattice vectors as rows, Angstrom (zeros where none).
        pbc: (F, 3) bool, periodicity along each lattice vector.
        energy: (F,) float64 total energies in eV, or None.
        forces: list of F arrays (n_i, 3) float64 in eV/Angstrom, or None.
        virial: (F, 3, 3) float64 in eV (W = -V * stress), or None.
        dipole: (F, 3) float64 in e*Angstrom, or None.
        charges: list of F arrays (n_i,) float64 atomic charges in e, or None.
        total_charge: (F,) float64 total charge of each frame in e, or None (charge models
            take Q = 0 where it is None).
        name: short name (e.g. ``"rmd17_ethanol_train_01"``).
        source: where the data came from (a path or a description); prefixes error messages.
        metadata: free-form dict (reader, original units and keys); not part of :meth:`sha256`.

    The constructor accepts, besides the canonical forms above:

    * ``numbers`` as one (N,) sequence of atomic numbers or chemical symbols shared by every
      frame, or an (F, N) array; symbols are converted with
      :func:`atomforge._inputs.to_atomic_number`.
    * ``positions``, ``forces`` as stacked (F, N, 3) arrays, ``charges`` as (F, N).
    * ``cells`` as (F, 3, 3), (F, 9) (row-major) or one (3, 3) cell for every frame;
      ``None`` = no cell (zeros) for every frame.
    * ``pbc`` as (F, 3), (3,) or a bool for every frame; ``None`` = periodic in all three
      directions for frames whose cell is non-zero, non-periodic otherwise.
    * ``energy`` as (F,) or (F, 1); ``virial`` as (F, 3, 3) or (F, 9).

    Every array is converted to float64 (int64 for numbers, bool for pbc) and
    :meth:`validate` runs before the constructor returns.

    Raises:
        TypeError: a field of non-numeric dtype (naming the frame and field).
        ValueError: see :meth:`validate`.
    """

    def __init__(self, numbers, positions, cells=None, pbc=None, energy=None, forces=None,
                 virial=None, dipole=None, charges=None, total_charge=None, *, name: str = "", source: str = "",
                 metadata: Optional[Dict[str, Any]] = None):
        self.name = str(name)
        self.source = str(source)
        self.metadata: Dict[str, Any] = dict(metadata or {})
        try:
            self.positions = _frames_list(positions, "positions", _float_array)
            F = len(self.positions)
            if _is_shared_numbers(numbers):
                z = _numbers_array(numbers, "numbers")
                self.numbers = [z.copy() for _ in range(F)]
            else:
                self.numbers = _frames_list(numbers, "numbers", _numbers_array)
            if cells is None:
                self.cells = np.zeros((F, 3, 3))
            else:
                c = _float_array(cells, "cells")
                if c.shape == (3, 3):
                    c = np.broadcast_to(c, (F, 3, 3))
                elif c.ndim == 2 and c.shape[1] == 9:
                    c = c.reshape(-1, 3, 3)
                self.cells = np.ascontiguousarray(c)
            if pbc is None:
                if self.cells.ndim == 3 and self.cells.shape[1:] == (3, 3):
                    nonzero = np.any(self.cells != 0, axis=(1, 2))
                    self.pbc = np.repeat(nonzero[:, None], 3, axis=1)
                else:
                    self.pbc = np.zeros((F, 3), dtype=bool)
            else:
                p = np.asarray(pbc)
                if p.dtype != np.bool_ and p.dtype.kind not in "iu":
                    raise TypeError(f"pbc must be booleans, got dtype {p.dtype}")
                p = p.astype(bool)
                if p.ndim <= 1:
                    p = np.broadcast_to(p, (F, 3))
                self.pbc = np.ascontiguousarray(p)
            self.energy = None
            if energy is not None:
                e = _float_array(energy, "energy")
                if e.ndim == 2 and e.shape[1] == 1:
                    e = e[:, 0]
                self.energy = np.ascontiguousarray(e)
            self.forces = None if forces is None else _frames_list(forces, "forces", _float_array)
            self.virial = None
            if virial is not None:
                v = _float_array(virial, "virial")
                if v.ndim == 2 and v.shape[1] == 9:
                    v = v.reshape(-1, 3, 3)
                self.virial = np.ascontiguousarray(v)
            self.dipole = None if dipole is None else _float_array(dipole, "dipole")
            self.charges = None if charges is None else _frames_list(charges, "charges", _float_array)
            self.total_charge = None if total_charge is None else _float_array(total_charge, "total_charge")
        except (TypeError, ValueError) as exc:
            raise type(exc)(f"{self._prefix()}{exc}") from None
        self.validate()

    # ------------------------------------------------------------------------------ checks
    def _prefix(self) -> str:
        return f"{self.source}: " if self.source else ""

    def validate(self) -> None:
        """Check every field; called by every constructor.

        Raises:
            ValueError: (the message starts with ``source:`` when set, and names the frame
                index and field where it applies) for: per-frame lists or arrays whose frame
                count differs from ``len(positions)`` (e.g. energy/forces length mismatch);
                a frame whose ``positions``/``forces``/``charges`` shape does not match its
                ``numbers`` (n_i,); a frame without atoms; ``cells`` not (F, 3, 3), ``pbc`` not
                (F, 3), ``energy`` not (F,), ``virial`` not (F, 3, 3), ``dipole`` not (F, 3);
                NaN or inf in any float field (naming the atom for per-atom fields); an invalid
                atomic number (naming the atom); a periodic direction whose cell vector is zero.
        """
        p = self._prefix()
        F = len(self.positions)
        if len(self.numbers) != F:
            raise ValueError(f"{p}numbers has {len(self.numbers)} frames but positions has {F}")
        n = np.empty(F, dtype=np.int64)
        for i, z in enumerate(self.numbers):
            z = np.asarray(z)
            if z.ndim != 1:
                raise ValueError(f"{p}frame {i}: numbers must have shape (n_atoms,), got {z.shape}")
            if z.shape[0] == 0:
                raise ValueError(f"{p}frame {i}: frame has no atoms")
            n[i] = z.shape[0]
        for field, width in _PER_ATOM.items():
            arrays = getattr(self, field)
            if arrays is None:
                continue
            if len(arrays) != F:
                raise ValueError(f"{p}{field} has {len(arrays)} frames but positions has {F}")
            for i, a in enumerate(arrays):
                shape = (int(n[i]), width) if width else (int(n[i]),)
                if np.shape(a) != shape:
                    raise ValueError(f"{p}frame {i}: {field} has shape {np.shape(a)}, expected {shape} "
                                     f"(the frame has {n[i]} atoms)")
        for field, shape in (("cells", (F, 3, 3)), ("pbc", (F, 3)), ("energy", (F,)),
                             ("virial", (F, 3, 3)), ("dipole", (F, 3)), ("total_charge", (F,))):
            a = getattr(self, field)
            if a is not None and np.shape(a) != shape:
                raise ValueError(f"{p}{field} has shape {np.shape(a)}, expected {shape} for {F} frames")
        # finite values
        for field in ("positions", "forces", "charges"):
            arrays = getattr(self, field)
            if arrays is None:
                continue
            bad = _first_bad_row([np.asarray(a) for a in arrays])
            if bad is not None:
                raise ValueError(f"{p}frame {bad[0]}: {field} of atom {bad[1]} is not finite (NaN or inf)")
        for field in ("cells", "energy", "virial", "dipole", "total_charge"):
            a = getattr(self, field)
            if a is None or F == 0:
                continue
            bad = ~np.isfinite(np.asarray(a, dtype=np.float64).reshape(F, -1)).all(axis=1)
            if bad.any():
                raise ValueError(f"{p}frame {int(np.argmax(bad))}: {field} is not finite (NaN or inf)")
        # atomic numbers
        if F:
            allz = np.concatenate([np.asarray(z) for z in self.numbers])
            badz = (allz < 1) | (allz >= len(chemical_symbols))
            if badz.any():
                k = int(np.argmax(badz))
                i = int(np.searchsorted(np.cumsum(n), k, side="right"))
                j = k - int(np.sum(n[:i]))
                to_atomic_number(int(allz[k]), where=f"{p}frame {i}: numbers: atom {j}")
        # periodic directions need a lattice vector
        pbc = np.asarray(self.pbc, dtype=bool)
        zero_vec = ~np.any(np.asarray(self.cells) != 0, axis=2)  # (F, 3)
        bad = pbc & zero_vec
        if bad.any():
            i, k = (int(x) for x in np.argwhere(bad)[0])
            raise ValueError(f"{p}frame {i}: pbc[{k}] is True but cell vector {k} is zero")

    # ------------------------------------------------------------------------------ basics
    def __len__(self) -> int:
        return len(self.positions)

    def __repr__(self) -> str:
        n = self.n_atoms
        atoms = "-" if not len(n) else (f"{n.min()}" if n.min() == n.max() else f"{n.min()}-{n.max()}")
        labels = [f for f in _OPTIONAL if getattr(self, f) is not None]
        syms = [chemical_symbols[z] for z in self.elements]
        return (f"Dataset(name={self.name!r}, frames={len(self)}, atoms={atoms}, elements={syms}, "
                f"labels={labels})")

    @property
    def n_atoms(self) -> np.ndarray:
        """(F,) int64: atom count of each frame."""
        return np.array([len(z) for z in self.numbers], dtype=np.int64)

    @property
    def elements(self) -> np.ndarray:
        """Sorted unique atomic numbers present in any frame, (n_elements,) int64."""
        if not self.numbers:
            return np.zeros(0, dtype=np.int64)
        return np.unique(np.concatenate(self.numbers)).astype(np.int64)

    @property
    def same_composition(self) -> bool:
        """True when every frame has the same atomic numbers in the same order (e.g. one molecule's
        trajectory), so per-atom arrays can be stacked to (F, N, ...). True for an empty dataset."""
        if not self.numbers:
            return True
        z0 = self.numbers[0]
        return all(z.shape == z0.shape and np.array_equal(z, z0) for z in self.numbers[1:])

    # ------------------------------------------------------------------------------ selection
    def _index_array(self, indices) -> np.ndarray:
        F = len(self)
        if isinstance(indices, slice):
            return np.arange(F)[indices]
        idx = np.asarray(indices)
        if idx.dtype == np.bool_:
            if idx.shape != (F,):
                raise ValueError(f"boolean mask must have shape ({F},), got {idx.shape}")
            return np.flatnonzero(idx)
        if idx.size == 0:
            return np.zeros(0, dtype=np.int64)
        if idx.dtype.kind not in "iu":
            raise TypeError(f"indices must be integers, a boolean mask or a slice, got dtype {idx.dtype}")
        idx = idx.reshape(-1).astype(np.int64)
        bad = (idx < -F) | (idx >= F)
        if bad.any():
            raise IndexError(f"frame index {idx[np.argmax(bad)]} out of range for {F} frames")
        return np.where(idx < 0, idx + F, idx)

    def subset(self, indices) -> "Dataset":
        """A new Dataset with the frames ``indices`` in that order.

        Args:
            indices: integer indices (negative counts from the end; repeats allowed), a boolean
                mask of shape (F,), or a slice.

        Returns:
            Dataset with the same name, source and metadata. Per-frame arrays of per-atom fields
            are shared with this dataset (not copied); stacked fields are copies.

        Raises:
            IndexError: an index out of range. ValueError: a mask of the wrong length.
            TypeError: non-integer indices.
        """
        idx = self._index_array(indices)

        def pick(lst):
            return None if lst is None else [lst[i] for i in idx]

        def take(a):
            return None if a is None else a[idx]

        return Dataset(pick(self.numbers), pick(self.positions), self.cells[idx], self.pbc[idx],
                       energy=take(self.energy), forces=pick(self.forces), virial=take(self.virial),
                       dipole=take(self.dipole), charges=pick(self.charges),
                       total_charge=take(self.total_charge), name=self.name,
                       source=self.source, metadata=self.metadata)

    @classmethod
    def concatenate(cls, datasets: Sequence["Dataset"], *, name: Optional[str] = None,
                    source: Optional[str] = None) -> "Dataset":
        """Frames of several datasets one after another, in the given order.

        Args:
            datasets: one or more :class:`Dataset`.
            name: name of the result (default: the common name, or the names joined by ``+``).
            source: source of the result (default: the sources joined by a semicolon and a space).

        Raises:
            ValueError: an empty list, or a label (energy, forces, virial, dipole, charges) present
                in some datasets but not in others (naming the first dataset lacking it).
            TypeError: an item that is not a Dataset.
        """
        datasets = list(datasets)
        if not datasets:
            raise ValueError("concatenate needs at least one Dataset")
        for k, d in enumerate(datasets):
            if not isinstance(d, Dataset):
                raise TypeError(f"item {k} is a {type(d).__name__}, not a Dataset")
        fields: Dict[str, Any] = {}
        for f in _OPTIONAL:
            have = [getattr(d, f) is not None for d in datasets]
            if any(have) and not all(have):
                k = have.index(False)
                j = have.index(True)
                raise ValueError(f"cannot concatenate: {f} is present in dataset {j} ({datasets[j].name!r}) "
                                 f"but missing in dataset {k} ({datasets[k].name!r})")
            if not all(have):
                fields[f] = None
            elif f in _PER_ATOM:
                fields[f] = [a for d in datasets for a in getattr(d, f)]
            else:
                fields[f] = np.concatenate([getattr(d, f) for d in datasets])
        names = [d.name for d in datasets]
        if name is None:
            name = names[0] if len(set(names)) == 1 else "+".join(names)
        if source is None:
            source = "; ".join(dict.fromkeys(d.source for d in datasets if d.source))
        return cls([z for d in datasets for z in d.numbers], [r for d in datasets for r in d.positions],
                   np.concatenate([d.cells for d in datasets]), np.concatenate([d.pbc for d in datasets]),
                   name=name, source=source,
                   metadata={"concatenated": [d.metadata for d in datasets]}, **fields)

    # ------------------------------------------------------------------------------ ASE
    def to_atoms(self, i: int):
        """Frame ``i`` as an :class:`ase.Atoms` (a copy).

        The labels go into a :class:`~ase.calculators.singlepoint.SinglePointCalculator`:
        ``energy`` (eV), ``forces`` (eV/Angstrom), ``dipole`` (e*Angstrom) and, when the cell has
        a non-zero volume, ``stress = -virial / volume`` (eV/Angstrom^3, Voigt order); with a
        zero-volume cell the virial goes to ``atoms.info["virial"]`` (3, 3) instead. Atomic
        charges become the initial charges. No calculator is attached when there are no labels.

        Raises:
            IndexError: ``i`` out of range.
        """
        from ase import Atoms
        from ase.calculators.singlepoint import SinglePointCalculator
        from ase.stress import full_3x3_to_voigt_6_stress

        F = len(self)
        if not -F <= int(i) < F:
            raise IndexError(f"frame index {i} out of range for {F} frames")
        i = int(i) % F
        atoms = Atoms(numbers=self.numbers[i].copy(), positions=self.positions[i].copy(),
                      cell=self.cells[i].copy(), pbc=self.pbc[i].copy())
        if self.charges is not None:
            atoms.set_initial_charges(self.charges[i].copy())
        if self.total_charge is not None:
            atoms.info["charge"] = float(self.total_charge[i])
        results: Dict[str, Any] = {}
        if self.energy is not None:
            results["energy"] = float(self.energy[i])
        if self.forces is not None:
            results["forces"] = self.forces[i].copy()
        if self.dipole is not None:
            results["dipole"] = self.dipole[i].copy()
        if self.virial is not None:
            vol = abs(float(np.linalg.det(self.cells[i])))
            if vol > 1e-12:
                results["stress"] = full_3x3_to_voigt_6_stress(-self.virial[i] / vol)
            else:
                atoms.info["virial"] = self.virial[i].copy()
        if results:
            atoms.calc = SinglePointCalculator(atoms, **results)
        return atoms

    @classmethod
    def from_atoms(cls, images: Iterable, *, name: str = "", source: str = "",
                   energy_key: Optional[str] = None, forces_key: Optional[str] = None,
                   metadata: Optional[Dict[str, Any]] = None) -> "Dataset":
        """Build a Dataset from :class:`ase.Atoms` objects (taken to be in eV and Angstrom).

        Structure: positions, atomic numbers, cell and pbc via
        :func:`atomforge._inputs.structure`. Labels, per frame:

        * energy: ``atoms.info[energy_key]`` or the calculator result ``energy_key`` when
          ``energy_key`` is given; else the calculator's ``energy`` (then ``free_energy``), else
          ``atoms.info["energy"]``.
        * forces: ``atoms.arrays[forces_key]`` or the calculator result ``forces_key`` when given;
          else the calculator's ``forces``, else ``atoms.arrays["forces"]``.
        * virial: ``-stress * volume`` from the calculator's ``stress`` (Voigt or 3x3), else
          ``atoms.info["virial"]`` ((3, 3) or (9,)).
        * dipole: the calculator's ``dipole``, else ``atoms.info["dipole"]``.
        * charges: the calculator's ``charges``, else ``atoms.arrays["initial_charges"]``.
        * total_charge: ``atoms.info["charge"]`` (extended XYZ ``charge=``), else
          ``atoms.info["total_charge"]``.

        Only stored results are read (``calc.results``); no calculator is ever run.
        Energy and forces must be present in all frames or in none; virial, dipole and charges
        present in only some frames are dropped with a warning.

        Raises:
            TypeError: an item that is not an ase.Atoms.
            ValueError: a structure problem (naming the frame), energy or forces missing in some
                frames (naming the first such frame), or anything :meth:`validate` rejects.
        """
        from ase import Atoms
        from ase.stress import voigt_6_to_full_3x3_stress

        pre = f"{source}: " if source else ""
        cols: Dict[str, list] = {k: [] for k in ("numbers", "positions", "cells", "pbc") + _OPTIONAL}
        for i, atoms in enumerate(images):
            if not isinstance(atoms, Atoms):
                raise TypeError(f"{pre}frame {i}: expected an ase.Atoms, got {type(atoms).__name__}")
            try:
                s = structure(atoms)
            except (TypeError, ValueError) as exc:
                raise type(exc)(f"{pre}frame {i}: {exc}") from None
            cols["numbers"].append(s.numbers)
            cols["positions"].append(s.positions)
            cols["cells"].append(s.cell)
            cols["pbc"].append(s.pbc)
            res = dict(getattr(atoms.calc, "results", None) or {}) if atoms.calc is not None else {}
            # energy
            if energy_key is not None:
                e = atoms.info.get(energy_key, res.get(energy_key))
            else:
                e = res.get("energy", res.get("free_energy", atoms.info.get("energy")))
            if e is not None:
                e = np.asarray(e, dtype=np.float64)
                if e.size != 1:
                    raise ValueError(f"{pre}frame {i}: energy has shape {e.shape}, expected a scalar")
                e = e.reshape(())
            cols["energy"].append(e)
            # forces
            if forces_key is not None:
                f = atoms.arrays.get(forces_key, res.get(forces_key))
            else:
                f = res.get("forces", atoms.arrays.get("forces"))
            cols["forces"].append(None if f is None else np.array(f, dtype=np.float64))
            # virial
            v = None
            if res.get("stress") is not None:
                st = np.asarray(res["stress"], dtype=np.float64)
                if st.shape not in ((6,), (3, 3)):
                    raise ValueError(f"{pre}frame {i}: stress has shape {st.shape}, expected (6,) or (3, 3)")
                st = voigt_6_to_full_3x3_stress(st) if st.shape == (6,) else st
                v = -st * abs(float(np.linalg.det(s.cell)))
            elif atoms.info.get("virial") is not None:
                v = np.asarray(atoms.info["virial"], dtype=np.float64)
                if v.size != 9:
                    raise ValueError(f"{pre}frame {i}: info['virial'] has shape {v.shape}, "
                                     f"expected (3, 3) or (9,)")
                v = v.reshape(3, 3)
            cols["virial"].append(v)
            d = res.get("dipole", atoms.info.get("dipole"))
            if d is not None:
                d = np.asarray(d, dtype=np.float64)
                if d.shape != (3,):
                    raise ValueError(f"{pre}frame {i}: dipole has shape {d.shape}, expected (3,)")
            cols["dipole"].append(d)
            q = res.get("charges")
            if q is None and "initial_charges" in atoms.arrays:
                q = atoms.arrays["initial_charges"]
            cols["charges"].append(None if q is None else np.array(q, dtype=np.float64))
            tq = atoms.info.get("charge", atoms.info.get("total_charge"))
            if tq is not None:
                try:
                    tq = float(np.asarray(tq, dtype=np.float64).reshape(()))
                except (TypeError, ValueError):
                    raise ValueError(f"{pre}frame {i}: info['charge'] = {tq!r} is not one number") from None
            cols["total_charge"].append(tq)
        F = len(cols["positions"])
        labels: Dict[str, Any] = {}
        for f in _OPTIONAL:
            have = [x is not None for x in cols[f]]
            if F and all(have):
                labels[f] = cols[f] if f in _PER_ATOM else np.stack(cols[f])
                continue
            labels[f] = None
            if any(have):
                k = have.index(False)
                if f in ("energy", "forces"):
                    raise ValueError(f"{pre}frame {k}: no {f} (frames {have.index(True)} and others have one); "
                                     f"{f} must be given in every frame or in none")
                warnings.warn(f"{pre}{f} is missing in frame {k} (and {have.count(False) - 1} others) but "
                              f"present in {have.count(True)} frames; dropping {f}", stacklevel=2)
        cells = np.stack(cols["cells"]) if F else np.zeros((0, 3, 3))
        pbc = np.stack(cols["pbc"]) if F else np.zeros((0, 3), dtype=bool)
        return cls(cols["numbers"], cols["positions"], cells, pbc, name=name, source=source,
                   metadata=metadata, **labels)

    # ------------------------------------------------------------------------------ provenance
    def sha256(self) -> str:
        """Hex SHA-256 of the data: atom counts, numbers, positions, cells, pbc and every label.

        Stable across runs, platforms and Python/NumPy versions: each field is hashed as its
        name, presence, shape and little-endian bytes (int64, float64, uint8 for pbc), per-atom
        fields concatenated over frames in frame order. ``name``, ``source`` and ``metadata``
        are not included, so two copies of the same data hash equal wherever they came from.
        Any change of a value (even -0.0 vs 0.0) changes the hash.
        """
        h = hashlib.sha256(b"atomforge.data.Dataset/1\n")

        def put(field: str, arr: Optional[np.ndarray], dtype: str) -> None:
            if arr is None:
                h.update(f"{field}:none\n".encode())
                return
            a = np.ascontiguousarray(arr, dtype=np.dtype(dtype))
            h.update(f"{field}:{dtype}:{a.shape}\n".encode())
            h.update(a.tobytes())

        def cat(lst, width):
            if lst is None:
                return None
            if not lst:
                return np.zeros((0,) + ((width,) if width else ()))
            return np.concatenate([np.asarray(a) for a in lst])

        put("n_atoms", self.n_atoms, "<i8")
        put("numbers", cat(self.numbers, None), "<i8")
        put("positions", cat(self.positions, 3), "<f8")
        put("cells", self.cells, "<f8")
        put("pbc", np.asarray(self.pbc, dtype=bool), "u1")
        put("energy", self.energy, "<f8")
        put("forces", cat(self.forces, 3), "<f8")
        put("virial", self.virial, "<f8")
        put("dipole", self.dipole, "<f8")
        put("charges", cat(self.charges, None), "<f8")
        if self.total_charge is not None:  # only when present: hashes of earlier datasets are unchanged
            put("total_charge", self.total_charge, "<f8")
        return h.hexdigest()
