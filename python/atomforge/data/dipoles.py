"""Reader of dipole-moment data sets in the XYZ dialect of the coupled-cluster dipole files
(Beckmann, Brieuc, Schran, Marx, J. Chem. Theory Comput. 2022, arXiv:2202.00303; the
``ccsdt_dipoles_protonated_water`` data).

Format, per frame::

    N
    charge Q dipole mu_x mu_y mu_z [anything else: a label, "E = ..."]
    El x y z            (N lines)

Q is the total charge in e; the dipole is Cartesian, in the frame of the coordinates, about the
coordinate origin (for charged species the origin matters: mu changes by Q t when the molecule
moves by t). Units: coordinates Angstrom and dipoles e*a0 (atomic units) unless told otherwise.

The format is recognised from its second line (``charge <number> dipole <x> <y> <z>``), whatever
the file is called: :func:`is_cc_dipole_file`, used by
:func:`atomforge.data.detect_format` (format name ``"ccdipole"``).
"""
from __future__ import annotations

import math
import os
import re
from pathlib import Path
from typing import List, Union

import numpy as np

from .._inputs import to_atomic_number
from ..units import UnitLike, dipole_unit_factor, unit_factor
from .dataset import Dataset

__all__ = ["read_cc_dipoles", "is_cc_dipole_file", "CC_COMMENT"]

PathLike = Union[str, "os.PathLike[str]"]

#: The comment line of a frame: total charge and dipole vector, then free text.
CC_COMMENT = re.compile(r"^\s*charge\s+(\S+)\s+dipole\s+(\S+)\s+(\S+)\s+(\S+)(\s.*)?$", re.IGNORECASE)


def is_cc_dipole_file(path: PathLike) -> bool:
    """True when the first frame of ``path`` is ``N`` then ``charge Q dipole x y z ...``."""
    try:
        with open(path, "r", encoding="utf-8", errors="replace") as fh:
            first = fh.readline()
            second = fh.readline()
    except OSError:
        return False
    try:
        int(first.split()[0])
    except (IndexError, ValueError):
        return False
    return CC_COMMENT.match(second.rstrip("\n")) is not None


def _number(tok: str, where: str, what: str) -> float:
    try:
        v = float(tok.replace("D", "E").replace("d", "e"))
    except ValueError:
        raise ValueError(f"{where}: {what} must be a number, got {tok!r}") from None
    if not math.isfinite(v):
        raise ValueError(f"{where}: {what} must be finite, got {tok!r}")
    return v


def read_cc_dipoles(path: PathLike, *, length_unit: UnitLike = "angstrom", dipole_unit: UnitLike = "e*bohr",
                    index: Union[None, slice] = None) -> Dataset:
    """Read a coupled-cluster dipole file (format in the module docstring) into a Dataset.

    Args:
        path: the file.
        length_unit: unit of the coordinates (name or Angstrom per unit; default Angstrom).
        dipole_unit: unit of the dipoles: ``'e*bohr'`` (= ``'au'``, default), ``'debye'``,
            ``'e*angstrom'`` or e*Angstrom per unit (:func:`atomforge.units.dipole_unit_factor`).
        index: optional slice of frames to keep (e.g. ``slice(0, 1000)``); all by default.

    Returns:
        :class:`Dataset` with positions (Angstrom), ``dipole`` (F, 3) in e*Angstrom about the
        coordinate origin, ``total_charge`` (F,) in e, no energies or forces;
        ``metadata`` = {"format": "ccdipole", "length_unit", "dipole_unit", "labels": the free
        text after the dipole of each frame (e.g. ``"H3O+ C3h, E = ..."``)}.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: naming ``file:line`` (and the frame) for a missing or malformed count line,
            a comment line without ``charge Q`` or ``dipole x y z`` (a missing charge line is
            an error, never taken as 0), non-numeric or non-finite values, an unknown element,
            a truncated frame, a file without frames, or an unknown unit.
    """
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{p}: no such file or directory")
    L = unit_factor(length_unit, "length", "length_unit")
    D = dipole_unit_factor(dipole_unit)
    lines = p.read_text(encoding="utf-8", errors="replace").splitlines()
    numbers: List[np.ndarray] = []
    positions: List[np.ndarray] = []
    dipoles, charges, labels = [], [], []
    i, frame = 0, 0
    n_lines = len(lines)
    while i < n_lines:
        if not lines[i].strip():
            i += 1
            continue
        w = f"{p}:{i + 1}"
        try:
            n = int(lines[i].split()[0])
        except ValueError:
            raise ValueError(f"{w}: frame {frame}: expected the atom count, got {lines[i].strip()[:60]!r}") from None
        if n < 1:
            raise ValueError(f"{w}: frame {frame}: atom count must be positive, got {n}")
        if i + 1 >= n_lines:
            raise ValueError(f"{w}: frame {frame}: file ends before the comment line")
        com = lines[i + 1]
        wc = f"{p}:{i + 2}"
        m = CC_COMMENT.match(com)
        if m is None:
            toks = com.split()
            low = [t.lower() for t in toks]
            if "charge" not in low:
                raise ValueError(f"{wc}: frame {frame}: comment line {com.strip()[:60]!r} has no 'charge Q' (each "
                                 f"frame of a CC dipole file needs 'charge Q dipole x y z'; the total charge is "
                                 f"never assumed)")
            raise ValueError(f"{wc}: frame {frame}: comment line {com.strip()[:60]!r} is not 'charge Q dipole x y z'")
        q = _number(m.group(1), wc, f"frame {frame}: charge")
        mu = [_number(m.group(k), wc, f"frame {frame}: dipole component {'xyz'[k - 2]}") for k in (2, 3, 4)]
        if i + 2 + n > n_lines:
            raise ValueError(f"{p}:{n_lines}: frame {frame}: file ends after {n_lines - i - 2} of {n} atom lines")
        z = np.empty(n, dtype=np.int64)
        r = np.empty((n, 3))
        for a in range(n):
            ln = i + 2 + a
            toks = lines[ln].split()
            wa = f"{p}:{ln + 1}"
            if len(toks) < 4:
                raise ValueError(f"{wa}: frame {frame}, atom {a}: expected 'El x y z', got {lines[ln].strip()[:60]!r}")
            z[a] = to_atomic_number(toks[0], where=f"{wa}: frame {frame}, atom {a}")
            for k in range(3):
                r[a, k] = _number(toks[1 + k], wa, f"frame {frame}, atom {a}: coordinate {'xyz'[k]}")
        numbers.append(z)
        positions.append(r * L)
        dipoles.append(mu)
        charges.append(q)
        labels.append((m.group(5) or "").strip())
        i += 2 + n
        frame += 1
    if not positions:
        raise ValueError(f"{p}: no frames")
    sel = slice(None) if index is None else index
    idx = np.arange(len(positions))[sel]
    return Dataset([numbers[k] for k in idx], [positions[k] for k in idx],
                   dipole=np.asarray(dipoles, dtype=np.float64)[idx] * D,
                   total_charge=np.asarray(charges, dtype=np.float64)[idx], name=p.stem, source=str(p),
                   metadata={"format": "ccdipole", "length_unit": L, "dipole_unit": D,
                             "length_unit_name": str(length_unit), "energy_unit": 1.0,
                             "energy_unit_name": "none (no energies)", "dipole_unit_name": str(dipole_unit),
                             "units_from": "format" if (length_unit, dipole_unit) == ("angstrom", "e*bohr")
                             else "user", "labels": [labels[k] for k in idx]})
