"""Validation and normalisation of structure inputs shared by every descriptor and model.

Every public entry point that takes a structure accepts either an :class:`ase.Atoms` or the
arrays ``positions`` (N, 3) in Angstrom, ``numbers`` (N,) atomic numbers or chemical symbols,
``cell`` (3, 3) lattice vectors as rows in Angstrom (or (3,) lengths of an orthorhombic cell) and
``pbc`` (bool or (3,) bools). Problems raise :class:`ValueError` / :class:`TypeError` naming the
argument and, where it applies, the atom index.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from ase.data import atomic_numbers, chemical_symbols


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
    if pbc is None:
        p = np.array([cell is not None] * 3)
    else:
        p = np.broadcast_to(np.asarray(pbc, dtype=bool), (3,)).copy()
    return Structure(pos, num, c, p)
