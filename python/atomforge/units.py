"""Unit names and factors: everything inside atomforge is eV and Angstrom; file readers convert
with these factors (Angstrom or eV per file unit). Constants from ASE (CODATA 2014)."""
from __future__ import annotations

import math
from typing import Dict, Union

import numpy as np
from ase import units

UnitLike = Union[None, str, float]

#: eV per kcal/mol (0.0433641...).
KCAL_PER_MOL = units.kcal / units.mol

#: Angstrom per unit.
LENGTH_UNITS: Dict[str, float] = {"bohr": units.Bohr, "a0": units.Bohr, "au": units.Bohr, "angstrom": 1.0,
                                  "ang": 1.0, "a": 1.0, "\u00e5": 1.0, "nm": 10.0}
#: eV per unit.
ENERGY_UNITS: Dict[str, float] = {"ha": units.Hartree, "hartree": units.Hartree, "eh": units.Hartree,
                                  "au": units.Hartree, "ev": 1.0, "ry": units.Rydberg, "rydberg": units.Rydberg,
                                  "kcal/mol": KCAL_PER_MOL, "kcal mol-1": KCAL_PER_MOL,
                                  "kj/mol": units.kJ / units.mol, "mev": 1e-3}
_LENGTH_UNITS, _ENERGY_UNITS = LENGTH_UNITS, ENERGY_UNITS


def unit_factor(value: UnitLike, kind: str, where: str = "unit") -> float:
    """Angstrom (``kind='length'``) or eV (``kind='energy'``) per file unit.

    Args:
        value: a unit name (see the module docstring; case-insensitive) or a positive finite
            number (Angstrom or eV per unit).
        kind: ``'length'`` or ``'energy'``.
        where: what to name in an error message.

    Raises:
        ValueError: an unknown name, or a number that is not positive and finite.
    """
    if kind not in ("length", "energy"):
        raise ValueError(f"kind must be 'length' or 'energy', got {kind!r}")
    table = _LENGTH_UNITS if kind == "length" else _ENERGY_UNITS
    if isinstance(value, str):
        key = value.strip().lower()
        if key not in table:
            raise ValueError(f"{where}: unknown {kind} unit {value!r} (known: {sorted(table)}, or a number = "
                             f"{'Angstrom' if kind == 'length' else 'eV'} per unit)")
        return float(table[key])
    if isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{where}: {kind} unit must be a name or a positive number, got {value!r}")
    try:
        f = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{where}: {kind} unit must be a name or a positive number, got {value!r}") from None
    if not (math.isfinite(f) and f > 0):
        raise ValueError(f"{where}: {kind} unit must be a positive finite number, got {value!r}")
    return f
