"""Validation and normalisation of structure inputs shared by every descriptor and model.

Every public entry point that takes a structure accepts either an :class:`ase.Atoms` or the
arrays ``positions`` (N, 3) in Angstrom, ``numbers`` (N,) atomic numbers or chemical symbols,
``cell`` (3, 3) lattice vectors as rows in Angstrom (or (3,) lengths of an orthorhombic cell) and
``pbc`` (bool or (3,) bools). Problems raise :class:`ValueError` / :class:`TypeError` naming the
argument and, where it applies, the atom index.
"""
from __future__ import annotations

import os
import warnings
from dataclasses import dataclass

import numpy as np
from ase.data import atomic_numbers, chemical_symbols


#: Default minimum distance between two atoms, Angstrom: closer pairs (periodic images
#: included) raise ``atomforge.AtomsTooClose``. The core's kDefaultMinDistance
#: (cpp/include/atomforge/neighbor_list.hpp; a test checks that they agree).
DEFAULT_MIN_DISTANCE = 0.1


@dataclass(frozen=True)
class Structure:
    """A validated structure: float64 C-contiguous arrays, Angstrom."""

    positions: np.ndarray  # (N, 3) float64
    numbers: np.ndarray  # (N,) int64 atomic numbers
    cell: np.ndarray  # (3, 3) float64 (zeros where non-periodic and not given)
    pbc: np.ndarray  # (3,) bool


def to_atomic_number(element, *, where: str = "element") -> int:
    """Atomic number of a symbol ('O') or number (8). Raises ValueError if unknown."""
    if isinstance(element, (int, np.integer)) and not isinstance(element, bool):
        z = int(element)
        if 1 <= z < len(chemical_symbols):
            return z
        raise ValueError(f"{where}: {element} is not a valid atomic number")
    if isinstance(element, str) and element in atomic_numbers and element != "X":
        return int(atomic_numbers[element])
    raise ValueError(f"{where}: unknown element {element!r}")


def structure(positions, numbers=None, cell=None, pbc=None) -> Structure:
    """Normalise (positions, numbers, cell, pbc) or an ase.Atoms into a :class:`Structure`.

    Defaults: with no cell the system is non-periodic; with a cell and ``pbc=None`` it is
    periodic in all three directions (pass ``pbc`` explicitly for slabs or wires).

    Raises:
        TypeError: positions or numbers of a non-numeric dtype; numbers missing.
        ValueError: wrong shapes, non-finite positions (naming the atom), unknown elements
            (naming the atom), a cell with non-finite entries, ``pbc`` set without a cell.
    """
    try:
        from ase import Atoms
    except ImportError:  # pragma: no cover - ase is a dependency
        Atoms = ()
    if isinstance(positions, Atoms):
        atoms = positions
        if numbers is not None:
            raise TypeError("pass either an ase.Atoms or positions and numbers, not both")
        positions = atoms.get_positions()
        numbers = atoms.get_atomic_numbers()
        if cell is None:
            cell = np.asarray(atoms.get_cell())
        if pbc is None:
            pbc = atoms.get_pbc()
    if numbers is None:
        raise TypeError("numbers (atomic numbers or symbols, shape (N,)) are required")

    pos = np.asarray(positions)
    if pos.dtype.kind not in "fiu" or pos.dtype == np.bool_:
        raise TypeError(f"positions must be real numbers (float64, Angstrom), got dtype {pos.dtype}")
    if pos.ndim != 2 or pos.shape[1] != 3:
        raise ValueError(f"positions must have shape (N, 3), got {pos.shape}")
    pos = np.ascontiguousarray(pos, dtype=np.float64)
    bad = ~np.isfinite(pos).all(axis=1)
    if bad.any():
        raise ValueError(f"position of atom {int(np.argmax(bad))} is not finite (NaN or inf)")

    num = np.asarray(numbers)
    if num.ndim != 1 or num.shape[0] != pos.shape[0]:
        raise ValueError(f"numbers must have shape ({pos.shape[0]},), got {num.shape}")
    if num.dtype.kind in "US" or num.dtype == object:
        num = np.array([to_atomic_number(s, where=f"atom {i}") for i, s in enumerate(num.tolist())],
                       dtype=np.int64)
    elif num.dtype.kind in "iu":
        num = num.astype(np.int64)
        badz = (num < 1) | (num >= len(chemical_symbols))
        if badz.any():
            i = int(np.argmax(badz))
            raise ValueError(f"atom {i}: {num[i]} is not a valid atomic number")
    else:
        raise TypeError(f"numbers must be integers (atomic numbers) or symbols, got dtype {num.dtype}")

    if cell is None:
        if pbc is not None and np.any(pbc):
            raise ValueError("pbc is set but no cell was given")
        c = np.zeros((3, 3))
    else:
        c = np.asarray(cell, dtype=np.float64)
        if c.shape == (3,):
            c = np.diag(c)
        if c.shape != (3, 3):
            raise ValueError(f"cell must have shape (3, 3) (lattice vectors as rows) or (3,), got {c.shape}")
        if not np.isfinite(c).all():
            raise ValueError("cell has a non-finite (NaN or inf) entry")
        c = np.ascontiguousarray(c)
    p = np.array([cell is not None] * 3) if pbc is None else pbc_flags(pbc)
    return Structure(pos, num, c, p)


def pbc_flags(pbc) -> np.ndarray:
    """(3,) bool array from a bool or three bools (0/1 integers allowed, as in ASE). Raises
    ValueError for anything else: strings ('False' would be a true value), other numbers, other
    lengths."""
    a = np.asarray(pbc, dtype=object)
    if a.ndim > 1 or (a.ndim == 1 and a.shape[0] != 3):
        raise ValueError(f"pbc must be a bool or three bools (one per lattice vector), got {pbc!r}")
    for v in a.reshape(-1).tolist():
        if isinstance(v, (bool, np.bool_)):
            continue
        if isinstance(v, (int, np.integer)) and v in (0, 1):
            continue
        kind = "a string" if isinstance(v, (str, bytes)) else type(v).__name__
        raise ValueError(f"pbc must be a bool or three bools (one per lattice vector), got {pbc!r} "
                         f"({v!r} is {kind}, not True/False)")
    return np.broadcast_to(a.astype(bool), (3,)).copy()


def atomic_numbers_array(value, where: str) -> np.ndarray:
    """int64 atomic numbers from an integer array, or a float array whose entries are whole
    numbers (files often store 6.0): a fractional value (6.7) raises ValueError naming ``where``
    and the entry instead of being truncated to another element."""
    a = np.asarray(value)
    if a.dtype.kind in "iu":
        return a.astype(np.int64)
    if a.dtype.kind == "f":
        bad = ~np.isfinite(a) | (a != np.round(a))
        if bad.any():
            k = np.unravel_index(int(np.argmax(bad)), a.shape)
            idx = k[0] if len(k) == 1 else k
            raise ValueError(f"{where}: entry {idx} = {float(a[k])!r} is not a whole atomic number")
        return a.astype(np.int64)
    raise TypeError(f"{where}: atomic numbers must be integers, got dtype {a.dtype}")


def threads_argument(threads, where: str = "threads") -> int:
    """Check a thread count (an int >= 0; 0 means the OpenMP default, OMP_NUM_THREADS). The core
    clamps every request to the processors of this machine: a larger request (or
    OMP_NUM_THREADS) gives a RuntimeWarning saying so, never a crash."""
    if isinstance(threads, (bool, np.bool_)) or not isinstance(threads, (int, np.integer)):
        raise TypeError(f"{where} must be an integer (0: the OpenMP default), got {threads!r}")
    threads = int(threads)
    if threads < 0:
        raise ValueError(f"{where} must be >= 0 (0: the OpenMP default), got {threads}")
    from . import _core

    limit = int(_core.max_threads()) if _core is not None else None
    if limit is None:
        return threads
    asked, source = threads, where
    if threads == 0:
        env = os.environ.get("OMP_NUM_THREADS", "").split(",")[0].strip()
        asked, source = (int(env), "OMP_NUM_THREADS") if env.isdigit() else (0, where)
    if asked > limit:
        warnings.warn(f"{source} = {asked} is more than the {limit} processor(s) of this machine: "
                      f"using {limit} thread(s)", RuntimeWarning, stacklevel=3)
        return limit if threads else 0
    return threads


def min_distance_argument(value) -> float:
    """Check a minimum distance in Angstrom (a finite number >= 0)."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"min_distance must be a number (Angstrom), got {value!r}") from None
    if not (np.isfinite(v) and v >= 0):
        raise ValueError(f"min_distance must be a finite number >= 0 (Angstrom), got {value!r}")
    return v
