"""Unit names and factors: everything inside atomforge is eV and Angstrom; file readers convert
with these factors (Angstrom or eV per file unit).

The constants come from the compiled core's one table (cpp/include/atomforge/units.hpp, CODATA
2018), which the LAMMPS and OpenMM adapters use too, so every layer converts with identical
numbers. ``CONSTANTS`` holds that table: name -> value.
"""
from __future__ import annotations

import math
from typing import Dict, Union

import numpy as np

from . import _core

if _core is None:  # pragma: no cover - the package is always installed with its extension
    raise ImportError("atomforge.units needs the compiled core (atomforge._core)")

UnitLike = Union[None, str, float]

#: The core's table of constants: name -> value (meanings: ``_core.unit_constants()``).
CONSTANTS: Dict[str, float] = {k: v[0] for k, v in _core.unit_constants().items()}

BOHR = CONSTANTS["bohr_in_angstrom"]  #: Angstrom per Bohr
HARTREE = CONSTANTS["hartree_in_ev"]  #: eV per Hartree
#: eV per kcal/mol (0.0433641...).
KCAL_PER_MOL = 1.0 / CONSTANTS["ev_in_kcal_per_mol"]
#: eV per kJ/mol.
KJ_PER_MOL = 1.0 / CONSTANTS["ev_in_kj_per_mol"]
#: e*Angstrom per Debye, and per e*Bohr.
DEBYE = CONSTANTS["debye_in_e_angstrom"]
E_BOHR = CONSTANTS["e_bohr_in_e_angstrom"]
#: eV per cm^-1 (photon energy h c), and the speed of light in cm/fs (for spectra).
WAVENUMBER = CONSTANTS["wavenumber_in_ev"]
SPEED_OF_LIGHT_CM_PER_FS = CONSTANTS["speed_of_light_m_s"] * 100.0 * 1e-15
#: Boltzmann constant in eV/K.
BOLTZMANN = CONSTANTS["boltzmann_in_ev_per_k"]

#: Angstrom per unit.
LENGTH_UNITS: Dict[str, float] = {"bohr": BOHR, "a0": BOHR, "au": BOHR, "angstrom": 1.0,
                                  "ang": 1.0, "a": 1.0, "\u00e5": 1.0, "nm": CONSTANTS["nm_in_angstrom"]}
#: eV per unit.
ENERGY_UNITS: Dict[str, float] = {"ha": HARTREE, "hartree": HARTREE, "eh": HARTREE,
                                  "au": HARTREE, "ev": 1.0, "ry": CONSTANTS["rydberg_in_ev"],
                                  "rydberg": CONSTANTS["rydberg_in_ev"],
                                  "kcal/mol": KCAL_PER_MOL, "kcal mol-1": KCAL_PER_MOL,
                                  "kj/mol": KJ_PER_MOL, "mev": 1e-3}


def engine_units(name: str) -> Dict[str, float]:
    """The core's conversion factors for an engine's units (``metal``, ``real``, ``openmm``,
    ``ev_angstrom``): {"name", "length_in_angstrom", "energy_in_ev"}. Raises ValueError for an
    unknown name."""
    return dict(_core.engine_units(name))
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


#: e*Angstrom per dipole unit (names case-insensitive; ``au`` = e*a0, the atomic unit).
DIPOLE_UNITS: Dict[str, float] = {"e*angstrom": 1.0, "e*a": 1.0, "ea": 1.0, "e*ang": 1.0,
                                  "e*bohr": E_BOHR, "e*a0": E_BOHR, "ea0": E_BOHR, "au": E_BOHR,
                                  "debye": DEBYE, "d": DEBYE}


def dipole_unit_factor(value: UnitLike, where: str = "dipole_unit") -> float:
    """e*Angstrom per dipole unit: a name of :data:`DIPOLE_UNITS` (``'e*bohr'``/``'au'``,
    ``'debye'``, ``'e*angstrom'``; case-insensitive) or a positive finite number.

    Raises:
        ValueError: naming ``where`` for an unknown name or a number that is not positive and finite.
    """
    if isinstance(value, str):
        key = value.strip().lower().replace(" ", "").replace("\u00b7", "*").replace("\u00e5", "angstrom")
        if key not in DIPOLE_UNITS:
            raise ValueError(f"{where}: unknown dipole unit {value!r} (known: {sorted(DIPOLE_UNITS)}, or a number "
                             f"= e*Angstrom per unit)")
        return float(DIPOLE_UNITS[key])
    if isinstance(value, (bool, np.bool_)) or value is None:
        raise ValueError(f"{where}: dipole unit must be a name or a positive number, got {value!r}")
    try:
        f = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{where}: dipole unit must be a name or a positive number, got {value!r}") from None
    if not (math.isfinite(f) and f > 0):
        raise ValueError(f"{where}: dipole unit must be a positive finite number, got {value!r}")
    return f
