"""Readers that turn dataset files into a :class:`~atomforge.data.Dataset` in eV and Angstrom.

One entry point, :func:`load_dataset`, detects the format from the path (see
:func:`detect_format`) and calls one of :func:`read_rmd17`, :func:`read_sgdml`,
:func:`read_deepmd`, :func:`read_n2p2` or :func:`read_ase`.

Units. Each format has declared file units (below). ``length_unit`` and ``energy_unit``
override them: a name (case-insensitive) or a positive number (Angstrom resp. eV per file unit).
Forces are converted with ``energy_unit / length_unit``, virials with ``energy_unit``, dipoles
with ``length_unit`` (charge stays in e).

============  ===================  =============================  ==============================
format        length               energy                         forces
============  ===================  =============================  ==============================
``rmd17``     Angstrom             kcal/mol                       kcal/mol/Angstrom
``sgdml``     ``r_unit`` in file,  ``e_unit`` in file, else       e_unit / r_unit
              else Angstrom        kcal/mol
``deepmd``    Angstrom             eV (virial eV)                 eV/Angstrom
``n2p2``      **must be given**    **must be given**              energy_unit / length_unit
``ase``       as ASE returns       as ASE returns (eV)            as ASE returns (eV/Angstrom)
              (Angstrom)
(ext)xyz      **must be given**,   **must be given**, or the      energy_unit / length_unit
              or the file's        file's ``energy_unit=``
              ``length_unit=``
============  ===================  =============================  ==============================

Formats that do not define units are never guessed: RuNNer/n2p2 ``input.data`` (in practice
usually Bohr and Hartree, but not always) and (extended) XYZ files without ``length_unit`` /
``energy_unit`` keys in their comment lines raise :class:`UnitsRequiredError`, naming the file,
until the units are given (``length_unit='bohr', energy_unit='ha'`` in Python, the
``--length-unit`` / ``--energy-unit`` options of ``atomforge train`` and ``atomforge evaluate``,
or the ``length_unit`` / ``energy_unit`` keys of a training configuration). Extended XYZ files
written by ``atomforge quickstart`` carry ``length_unit=Angstrom energy_unit=eV``.

1 kcal/mol = 0.0433641 eV; 1 Ha = 27.211386 eV; 1 Bohr = 0.529177 Angstrom (CODATA 2018, from the
core's one table of constants: :mod:`atomforge.units`).

Every dataset records how its units were decided in ``metadata``: ``format``, ``length_unit``
and ``energy_unit`` (the factors applied), ``length_unit_name`` / ``energy_unit_name`` (as
given, e.g. ``'bohr'``) and ``units_from`` (``'format'``: fixed by the format, ``'file'``: read
from the file, ``'user'``: given by the caller). :func:`load_dataset` prints one line saying so
(:func:`describe_units`).

Unit names. Length: ``angstrom``/``ang``/``a``, ``bohr``/``a0``/``au``, ``nm``. Energy:
``ev``, ``mev``, ``ha``/``hartree``/``eh``/``au``, ``ry``/``rydberg``, ``kcal/mol``, ``kj/mol``.

Errors are :class:`ValueError` whose message starts with the file (and, for n2p2, the line)
and names the key or field and, for bad values, the frame index; a missing path raises
:class:`FileNotFoundError`.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Union

import numpy as np

from .._inputs import atomic_numbers_array, to_atomic_number
from ..io.n2p2 import read_input_data
from ..units import KCAL_PER_MOL, UnitLike, unit_factor
from .dataset import Dataset

__all__ = ["load_dataset", "detect_format", "read_rmd17", "read_sgdml", "read_deepmd", "read_n2p2",
           "read_ase", "describe_units", "UnitsRequiredError", "FORMATS", "DEFAULT_UNITS", "KCAL_PER_MOL",
           "unit_factor"]

PathLike = Union[str, "os.PathLike[str]"]

#: Format names accepted by :func:`load_dataset`.
FORMATS = ("rmd17", "sgdml", "deepmd", "n2p2", "ase", "ccdipole")

#: Declared file units per format: (length unit, energy unit) names; see the module docstring.
DEFAULT_UNITS: Dict[str, tuple] = {
    "rmd17": ("angstrom", "kcal/mol"),
    "sgdml": ("angstrom", "kcal/mol"),  # unless the file's r_unit / e_unit say otherwise
    "deepmd": ("angstrom", "ev"),
    "n2p2": (None, None),  # not defined by the format: must be given
    "ase": ("angstrom", "ev"),
    "ccdipole": ("angstrom", "ev"),  # no energies; dipoles e*a0 (atomforge.data.dipoles)
}

#: ASE file types whose numbers carry no unit convention (the units must be given or be in the file).
_UNITLESS_ASE_TYPES = ("xyz", "extxyz")


class UnitsRequiredError(ValueError):
    """The file's format does not define units and none were given (the message names the file
    and says how to give them)."""


def _units_required(path, what: str, missing: Sequence[str], hint: str = "") -> UnitsRequiredError:
    flags = " ".join(f"--{m.replace('_', '-')} UNIT" for m in missing)
    keys = ", ".join(f"{m}: UNIT" for m in missing)
    kw = ", ".join(f"{m}=UNIT" for m in missing)
    return UnitsRequiredError(
        f"{path}: {what} does not state its units, and atomforge does not guess them{hint}. Give "
        f"{' and '.join(missing)}: '{flags}' on the atomforge train/evaluate command line, '{keys}' in the "
        f"training configuration, or {kw} in Python (names such as bohr, angstrom, nm / ha, ev, kcal/mol, "
        f"kj/mol, or a number = Angstrom resp. eV per file unit)")


def _unit_name(value: UnitLike, factor: float) -> str:
    return value.strip() if isinstance(value, str) else f"{factor:g}"


def describe_units(ds: Dataset) -> str:
    """One line naming a dataset's file, format and the units it was read with, e.g.
    ``"data.extxyz: format ase (extxyz), length bohr (0.529177 A), energy ha (27.2114 eV), given by the user;
    converted to A, eV, eV/A"``."""
    m = ds.metadata or {}
    fmt = m.get("format", "?")
    if m.get("ase_format"):
        fmt += f" ({m['ase_format']})"
    frm = {"format": "fixed by the format", "file": "read from the file", "user": "given by the user"}
    return (f"{ds.source or ds.name}: format {fmt}, length {m.get('length_unit_name', '?')} "
            f"({m.get('length_unit', float('nan')):g} A), energy {m.get('energy_unit_name', '?')} "
            f"({m.get('energy_unit', float('nan')):g} eV), {frm.get(m.get('units_from'), 'origin unknown')}; "
            f"converted to A, eV, eV/A")


# ---------------------------------------------------------------------------------- helpers
def _existing(path: PathLike) -> Path:
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{p}: no such file or directory")
    return p


class _Npz:
    """Lazy access to an .npz file with errors that name the file and key."""

    def __init__(self, path: Path):
        self.path = path
        try:
            self._z = np.load(path, allow_pickle=False)
        except Exception as exc:  # zipfile/pickle/OS errors: say which file
            raise ValueError(f"{path}: cannot read as .npz ({type(exc).__name__}: {exc})") from None
        if not hasattr(self._z, "files"):
            raise ValueError(f"{path}: is a single .npy array, not an .npz archive")
        self.keys = list(self._z.files)

    def __contains__(self, key: str) -> bool:
        return key in self.keys

    def get(self, key: str, what: str = "") -> np.ndarray:
        if key not in self.keys:
            raise ValueError(f"{self.path}: missing key {key!r}{what} (keys in file: {self.keys})")
        try:
            return self._z[key]
        except Exception as exc:
            raise ValueError(f"{self.path}: cannot read key {key!r} ({type(exc).__name__}: {exc})") from None

    def text(self, key: str) -> Optional[str]:
        if key not in self.keys:
            return None
        a = self.get(key)
        return str(a.reshape(-1)[0]) if a.size else ""

    def close(self) -> None:
        self._z.close()


def _numeric(a: np.ndarray, where: str) -> np.ndarray:
    if a.dtype.kind not in "fiu" or a.dtype == np.bool_:
        raise ValueError(f"{where}: expected numbers, got dtype {a.dtype}")
    return a


def _check_shape(a: np.ndarray, shape: tuple, where: str, note: str = "") -> None:
    if a.shape != shape:
        raise ValueError(f"{where} has shape {a.shape}, expected {shape}{note}")


def _energy_vector(a: np.ndarray, F: int, where: str) -> np.ndarray:
    if a.ndim == 2 and a.shape[1] == 1:
        a = a[:, 0]
    _check_shape(a, (F,), where, " (one energy per frame)")
    return a


def _scale(ds: Dataset, L: float, E: float) -> Dataset:
    """Convert a Dataset read in file units (length L Angstrom, energy E eV) in place."""
    if L != 1.0:
        ds.positions = [r * L for r in ds.positions]
        ds.cells = ds.cells * L
        if ds.dipole is not None:
            ds.dipole = ds.dipole * L
    if E != 1.0 and ds.energy is not None:
        ds.energy = ds.energy * E
    if E != 1.0 and ds.virial is not None:
        ds.virial = ds.virial * E
    if E / L != 1.0 and ds.forces is not None:
        ds.forces = [f * (E / L) for f in ds.forces]
    ds.validate()
    return ds


def _units(length_unit: UnitLike, energy_unit: UnitLike, fmt: str) -> tuple:
    dl, de = DEFAULT_UNITS[fmt]
    L = unit_factor(dl if length_unit is None else length_unit, "length", "length_unit")
    E = unit_factor(de if energy_unit is None else energy_unit, "energy", "energy_unit")
    return L, E


def _unit_meta(length_unit: UnitLike, energy_unit: UnitLike, fmt: str, L: float, E: float,
               units_from: Optional[str] = None) -> dict:
    """metadata entries describing the units used (see the module docstring)."""
    dl, de = DEFAULT_UNITS[fmt]
    if units_from is None:
        units_from = "format" if length_unit is None and energy_unit is None else "user"
    return {"length_unit_name": _unit_name(dl if length_unit is None else length_unit, L),
            "energy_unit_name": _unit_name(de if energy_unit is None else energy_unit, E),
            "units_from": units_from}


# ---------------------------------------------------------------------------------- detection
def detect_format(path: PathLike) -> str:
    """The format :func:`load_dataset` uses for ``path`` when none is given.

    Rules, in order:

    * a directory containing ``type.raw`` (or with sub-directories that do) -> ``"deepmd"``;
    * ``*.npz`` with keys ``coords`` and ``nuclear_charges`` -> ``"rmd17"``;
    * ``*.npz`` with keys ``R``, ``z``, ``E``, ``F`` -> ``"sgdml"``;
    * a file named ``input.data*``, or whose first line that is neither blank nor a ``#``
      comment starts with ``begin`` -> ``"n2p2"``;
    * an XYZ file whose second line is ``charge Q dipole x y z ...`` -> ``"ccdipole"``
      (:mod:`atomforge.data.dipoles`), whatever the file is called;
    * anything else -> ``"ase"`` (:func:`ase.io.read` picks the file type).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: a directory without ``type.raw``; an .npz with neither key set.
    """
    p = _existing(path)
    if p.is_dir():
        if (p / "type.raw").is_file() or _deepmd_systems(p):
            return "deepmd"
        raise ValueError(f"{p}: a directory, but not a DeePMD system (no type.raw in it or below it)")
    if p.suffix.lower() == ".npz":
        z = _Npz(p)
        keys = set(z.keys)
        z.close()
        if {"coords", "nuclear_charges"} <= keys:
            return "rmd17"
        if {"R", "z", "E", "F"} <= keys:
            return "sgdml"
        raise ValueError(f"{p}: unrecognised .npz (keys: {sorted(keys)}); expected rMD17 keys "
                         f"'coords', 'nuclear_charges' or sGDML keys 'R', 'z', 'E', 'F'")
    if p.name.startswith("input.data"):
        return "n2p2"
    from .dipoles import is_cc_dipole_file
    if is_cc_dipole_file(p):
        return "ccdipole"
    with open(p, "rb") as fh:
        head = fh.read(65536).decode("utf-8", errors="replace")
    for line in head.splitlines():
        s = line.strip()
        if not s or s.startswith("#"):
            continue
        return "n2p2" if s.split()[0] == "begin" else "ase"
    return "ase"


# ---------------------------------------------------------------------------------- rMD17
def read_rmd17(path: PathLike, *, energy_key: str = "energies", forces_key: str = "forces",
               length_unit: UnitLike = None, energy_unit: UnitLike = None) -> Dataset:
    """Read an rMD17 ``.npz`` (github.com/andersx/rmd17-npz, figshare rMD17).

    File keys: ``nuclear_charges`` (N,), ``coords`` (F, N, 3) Angstrom, ``energies`` (F,)
    kcal/mol, ``forces`` (F, N, 3) kcal/mol/Angstrom; also ``old_energies``/``old_forces``
    (the original MD17 labels) and ``old_indices``.

    Args:
        path: the .npz file.
        energy_key: key of the energies (``"energies"``, or ``"old_energies"``).
        forces_key: key of the forces (``"forces"``, or ``"old_forces"``).
        length_unit: file length unit (default Angstrom).
        energy_unit: file energy unit (default kcal/mol; forces are energy_unit/length_unit).

    Returns:
        Dataset (non-periodic frames, same composition), energies in eV, forces in eV/Angstrom.
        ``metadata["old_indices"]`` holds the MD17 frame indices when the file has them.

    Raises:
        ValueError: unreadable file, a missing key, shapes that disagree (naming the key),
            NaN/inf (naming the frame and field), unknown nuclear charges, bad units.
    """
    p = _existing(path)
    L, E = _units(length_unit, energy_unit, "rmd17")
    z = _Npz(p)
    try:
        R = _numeric(z.get("coords"), f"{p}: key 'coords'")
        if R.ndim != 3 or R.shape[2] != 3:
            raise ValueError(f"{p}: key 'coords' has shape {R.shape}, expected (F, N, 3)")
        F, N = R.shape[:2]
        Z = _numeric(z.get("nuclear_charges"), f"{p}: key 'nuclear_charges'")
        _check_shape(Z, (N,), f"{p}: key 'nuclear_charges'", f" (N = {N} atoms in 'coords')")
        En = _energy_vector(_numeric(z.get(energy_key, " (energy_key)"), f"{p}: key {energy_key!r}"), F,
                            f"{p}: key {energy_key!r}")
        Fo = _numeric(z.get(forces_key, " (forces_key)"), f"{p}: key {forces_key!r}")
        _check_shape(Fo, R.shape, f"{p}: key {forces_key!r}", " (same as 'coords')")
        meta: Dict[str, Any] = {"format": "rmd17", "length_unit": L, "energy_unit": E,
                                "energy_key": energy_key, "forces_key": forces_key,
                                **_unit_meta(length_unit, energy_unit, "rmd17", L, E)}
        if "old_indices" in z:
            meta["old_indices"] = np.asarray(z.get("old_indices")).copy()
    finally:
        z.close()
    return Dataset(atomic_numbers_array(Z, f"{p}: key 'nuclear_charges'"), R * L, energy=En * E,
                   forces=Fo * (E / L), name=p.stem,
                   source=str(p), metadata=meta)


# ---------------------------------------------------------------------------------- sGDML
def read_sgdml(path: PathLike, *, energy_key: str = "E", forces_key: str = "F",
               length_unit: UnitLike = None, energy_unit: UnitLike = None) -> Dataset:
    """Read an sGDML / MD17-style dataset ``.npz`` (sgdml.org, quantum-machine.org MD17).

    File keys: ``R`` (F, N, 3) coordinates, ``z`` (N,) atomic numbers, ``E`` (F,) or (F, 1)
    energies, ``F`` (F, N, 3) forces (= -dE/dR); optional ``lattice`` (3, 3) (rows = lattice
    vectors, in r_unit; makes every frame periodic), ``e_unit`` / ``r_unit`` strings and
    ``name``. Units: the file's ``r_unit`` ('Ang', 'bohr', ...) and ``e_unit`` ('kcal/mol',
    'eV', 'Ha', ...) when present, else Angstrom and kcal/mol; explicit ``length_unit`` /
    ``energy_unit`` arguments override both.

    Returns:
        Dataset in eV and Angstrom, named by the file's ``name`` key (else the file stem).

    Raises:
        ValueError: unreadable file, a missing key, shapes that disagree (naming the key), an
            unknown ``e_unit``/``r_unit`` string, NaN/inf (naming frame and field).
    """
    p = _existing(path)
    z = _Npz(p)
    try:
        r_unit, e_unit = z.text("r_unit"), z.text("e_unit")
        units_from = "user" if length_unit is not None or energy_unit is not None else \
            ("file" if r_unit or e_unit else "format")
        if length_unit is None:
            length_unit = r_unit if r_unit else DEFAULT_UNITS["sgdml"][0]
            L = unit_factor(length_unit, "length", f"{p}: r_unit")
        else:
            L = unit_factor(length_unit, "length", "length_unit")
        if energy_unit is None:
            energy_unit = e_unit if e_unit else DEFAULT_UNITS["sgdml"][1]
            E = unit_factor(energy_unit, "energy", f"{p}: e_unit")
        else:
            E = unit_factor(energy_unit, "energy", "energy_unit")
        R = _numeric(z.get("R"), f"{p}: key 'R'")
        if R.ndim != 3 or R.shape[2] != 3:
            raise ValueError(f"{p}: key 'R' has shape {R.shape}, expected (F, N, 3)")
        F, N = R.shape[:2]
        Z = _numeric(z.get("z"), f"{p}: key 'z'")
        _check_shape(Z, (N,), f"{p}: key 'z'", f" (N = {N} atoms in 'R')")
        En = _energy_vector(_numeric(z.get(energy_key, " (energy_key)"), f"{p}: key {energy_key!r}"), F,
                            f"{p}: key {energy_key!r}")
        Fo = _numeric(z.get(forces_key, " (forces_key)"), f"{p}: key {forces_key!r}")
        _check_shape(Fo, R.shape, f"{p}: key {forces_key!r}", " (same as 'R')")
        cells = pbc = None
        if "lattice" in z:
            lat = _numeric(z.get("lattice"), f"{p}: key 'lattice'")
            _check_shape(lat, (3, 3), f"{p}: key 'lattice'")
            cells, pbc = lat * L, True
        name = z.text("name") or p.stem
        meta = {"format": "sgdml", "length_unit": L, "energy_unit": E, "energy_key": energy_key,
                "forces_key": forces_key, "r_unit": r_unit, "e_unit": e_unit,
                "length_unit_name": _unit_name(length_unit, L), "energy_unit_name": _unit_name(energy_unit, E),
                "units_from": units_from}
    finally:
        z.close()
    return Dataset(atomic_numbers_array(Z, f"{p}: key 'z'"), R * L, cells, pbc, energy=En * E, forces=Fo * (E / L),
                   name=name,
                   source=str(p), metadata=meta)


# ---------------------------------------------------------------------------------- DeePMD
def _deepmd_systems(root: Path) -> List[Path]:
    return sorted({t.parent for t in root.rglob("type.raw")}, key=lambda q: str(q))


def _read_tokens(path: Path) -> List[str]:
    with open(path, "r", encoding="utf-8", errors="replace") as fh:
        return fh.read().split()


def read_deepmd(path: PathLike, *, type_map: Optional[Sequence[str]] = None, length_unit: UnitLike = None,
                energy_unit: UnitLike = None, energy_key: str = "energy", forces_key: str = "force") -> Dataset:
    """Read a DeePMD-kit system directory (``npy`` format, or ``raw`` text files).

    Layout: ``type.raw`` (N integers: the type of each atom), ``type_map.raw`` (type -> element
    symbol, one per line), an optional empty ``nopbc`` flag file, and one or more ``set.*``
    folders read in sorted order and concatenated, each with ``coord.npy`` (nf, 3N) Angstrom,
    ``box.npy`` (nf, 9) Angstrom row-major lattice vectors (may be absent with ``nopbc``), and
    optional ``energy.npy`` (nf,) eV, ``force.npy`` (nf, 3N) eV/Angstrom, ``virial.npy`` (nf, 9)
    eV. Without ``set.*`` folders the same arrays are read from ``coord.raw``, ``box.raw``, ...
    in the system directory. A directory without ``type.raw`` whose sub-directories are systems
    is read as all of them concatenated in sorted path order.

    ``nopbc`` present -> every frame non-periodic (the box, if any, is kept as the cell).
    ``dipole.npy`` / ``atomic_dipole.npy`` are not read: in DeePMD they are Wannier-centroid
    displacements in Angstrom, not e*Angstrom dipoles. Mixed-type systems
    (``real_atom_types.npy``) are not supported.

    Args:
        path: the system directory (or a directory of systems).
        type_map: element symbols by type index; overrides ``type_map.raw`` (required when the
            system has none).
        length_unit, energy_unit: override the file units (default Angstrom, eV).
        energy_key, forces_key: array names of energies and forces (default ``energy``, ``force``).

    Raises:
        ValueError: no ``type.raw``; no type map; a type index without a symbol; an unknown
            symbol; no ``set.*`` and no ``coord.raw``; a missing ``coord``/``box`` array; shapes
            that disagree (naming the file); labels present in some sets only; NaN/inf (naming
            the set folder, frame and field).
    """
    p = _existing(path)
    if not p.is_dir():
        raise ValueError(f"{p}: a DeePMD system must be a directory")
    L, E = _units(length_unit, energy_unit, "deepmd")
    units_from = _unit_meta(length_unit, energy_unit, "deepmd", L, E)["units_from"]
    if not (p / "type.raw").is_file():
        systems = _deepmd_systems(p)
        if not systems:
            raise ValueError(f"{p}: not a DeePMD system (no type.raw in it or below it)")
        parts = [read_deepmd(s, type_map=type_map, length_unit=L, energy_unit=E, energy_key=energy_key,
                             forces_key=forces_key) for s in systems]
        out = Dataset.concatenate(parts, name=p.name, source=str(p))
        out.metadata = {"format": "deepmd", "length_unit": L, "energy_unit": E,
                        "systems": [str(s) for s in systems],
                        **_unit_meta(length_unit, energy_unit, "deepmd", L, E, units_from)}
        return out

    types_file = p / "type.raw"
    try:
        types = np.array([int(t) for t in _read_tokens(types_file)], dtype=np.int64)
    except ValueError:
        raise ValueError(f"{types_file}: expected integers (one type index per atom)") from None
    if types.size == 0:
        raise ValueError(f"{types_file}: no atoms")
    if type_map is None:
        tm_file = p / "type_map.raw"
        if not tm_file.is_file():
            raise ValueError(f"{p}: no type_map.raw; pass type_map=[symbols by type index]")
        type_map = _read_tokens(tm_file)
        tm_where = str(tm_file)
    else:
        type_map = list(type_map)
        tm_where = "type_map"
    if types.min() < 0 or types.max() >= len(type_map):
        bad = int(types[(types < 0) | (types >= len(type_map))][0])
        raise ValueError(f"{types_file}: type {bad} has no symbol in {tm_where} ({type_map})")
    type_z = np.array([to_atomic_number(s, where=f"{tm_where}: type {t}") for t, s in enumerate(type_map)],
                      dtype=np.int64)
    numbers = type_z[types]
    N = numbers.shape[0]
    nopbc = (p / "nopbc").exists()

    set_dirs = sorted(d for d in p.glob("set.*") if d.is_dir())
    if set_dirs:
        sources = [(d, ".npy") for d in set_dirs]
    elif (p / "coord.raw").is_file():
        sources = [(p, ".raw")]
    else:
        raise ValueError(f"{p}: no set.* folders and no coord.raw")
    if any((d / "real_atom_types.npy").exists() for d, _ in sources):
        raise ValueError(f"{p}: mixed-type DeePMD systems (real_atom_types.npy) are not supported")

    def load(d: Path, ext: str, key: str, required: bool):
        f = d / f"{key}{ext}"
        if not f.is_file():
            if required:
                raise ValueError(f"{d}: missing {key}{ext}")
            return None, f
        try:
            a = np.load(f, allow_pickle=False) if ext == ".npy" else np.loadtxt(f, ndmin=2)
        except Exception as exc:
            raise ValueError(f"{f}: cannot read ({type(exc).__name__}: {exc})") from None
        return _numeric(np.asarray(a), str(f)).astype(np.float64), f

    parts = []
    for d, ext in sources:
        coord, f = load(d, ext, "coord", True)
        nf = coord.shape[0] if coord.ndim >= 1 else 0
        if coord.shape not in ((nf, 3 * N), (nf, N, 3)):
            raise ValueError(f"{f}: shape {coord.shape}, expected ({nf}, {3 * N}) for {N} atoms in type.raw")
        box, fb = load(d, ext, "box", not nopbc)
        if box is not None and box.shape not in ((nf, 9), (nf, 3, 3)):
            raise ValueError(f"{fb}: shape {box.shape}, expected ({nf}, 9) (frames of {f.name})")
        energy, fe = load(d, ext, energy_key, False)
        if energy is not None:
            if energy.ndim == 2 and energy.shape[1] == 1 or ext == ".raw" and energy.shape == (1, nf):
                energy = energy.reshape(-1)
            if energy.shape != (nf,):
                raise ValueError(f"{fe}: shape {energy.shape}, expected ({nf},) (frames of {f.name})")
        force, ff = load(d, ext, forces_key, False)
        if force is not None and force.shape not in ((nf, 3 * N), (nf, N, 3)):
            raise ValueError(f"{ff}: shape {force.shape}, expected ({nf}, {3 * N})")
        virial, fv = load(d, ext, "virial", False)
        if virial is not None and virial.shape not in ((nf, 9), (nf, 3, 3)):
            raise ValueError(f"{fv}: shape {virial.shape}, expected ({nf}, 9)")
        cells = np.zeros((nf, 3, 3)) if box is None else box.reshape(nf, 3, 3) * L
        pbc = np.zeros((nf, 3), dtype=bool) if nopbc else np.ones((nf, 3), dtype=bool)
        parts.append(Dataset(
            numbers, coord.reshape(nf, N, 3) * L, cells, pbc,
            energy=None if energy is None else energy * E,
            forces=None if force is None else force.reshape(nf, N, 3) * (E / L),
            virial=None if virial is None else virial.reshape(nf, 3, 3) * E,
            name=f"{p.name}/{d.name}" if d != p else p.name, source=str(d)))
    out = parts[0] if len(parts) == 1 else Dataset.concatenate(parts)
    out.name, out.source = p.name, str(p)
    out.metadata = {"format": "deepmd", "length_unit": L, "energy_unit": E, "type_map": list(type_map),
                    "sets": [d.name for d, _ in sources], "nopbc": nopbc,
                    **_unit_meta(length_unit, energy_unit, "deepmd", L, E, units_from)}
    return out


# ---------------------------------------------------------------------------------- n2p2 / ASE
def read_n2p2(path: PathLike, *, length_unit: UnitLike = None, energy_unit: UnitLike = None) -> Dataset:
    """Read a RuNNer / n2p2 ``input.data`` file with :func:`atomforge.io.n2p2.read_input_data`.

    The format does not define units, so both must be given: the RuNNer/n2p2 example data are
    in Bohr and Hartree (``length_unit='bohr', energy_unit='ha'``). Per-atom charges become
    ``charges`` (e); the per-atom energy column is not kept. Frames with lattice lines are
    periodic.

    Raises:
        UnitsRequiredError: ``length_unit`` or ``energy_unit`` is missing (the message names the
            file and the options that give them).
        ValueError: anything :func:`read_input_data` rejects (naming ``file:line``), energy lines
            present in only some frames, bad units.
    """
    p = _existing(path)
    missing = [k for k, v in (("length_unit", length_unit), ("energy_unit", energy_unit)) if v is None]
    if missing:
        raise _units_required(p, "a RuNNer/n2p2 input.data file", missing,
                              " (the RuNNer/n2p2 example data are in Bohr and Hartree: length_unit bohr, "
                              "energy_unit ha)")
    L, E = _units(length_unit, energy_unit, "n2p2")
    frames = read_input_data(p, length_unit=L, energy_unit=E)
    return Dataset.from_atoms(frames, name=p.name, source=str(p),
                              metadata={"format": "n2p2", "length_unit": L, "energy_unit": E,
                                        **_unit_meta(length_unit, energy_unit, "n2p2", L, E, "user")})


def _ase_filetype(p: Path, ase_format: Optional[str]) -> Optional[str]:
    if ase_format:
        return ase_format.lower()
    try:
        from ase.io.formats import filetype

        return filetype(str(p), guess=True)
    except Exception:  # ase.io.read reports unreadable files itself
        return None


def read_ase(path: PathLike, *, index: Union[str, int, slice] = ":", ase_format: Optional[str] = None,
             length_unit: UnitLike = None, energy_unit: UnitLike = None, energy_key: Optional[str] = None,
             forces_key: Optional[str] = None) -> Dataset:
    """Read any file :func:`ase.io.read` understands (extxyz, traj, db, OUTCAR, ...).

    Labels are taken as in :meth:`Dataset.from_atoms` (``energy_key``/``forces_key`` pick
    ``atoms.info`` / ``atoms.arrays`` entries instead of the calculator's).

    Units: formats whose units ASE knows (traj, db, OUTCAR, vasprun.xml, ...) are read as ASE
    returns them (Angstrom, eV). XYZ and extended XYZ define no units: their units come from
    ``length_unit`` / ``energy_unit``, else from ``length_unit=...`` / ``energy_unit=...`` keys
    in the (first frame's) comment line, else :class:`UnitsRequiredError` is raised. For the
    other formats ``length_unit`` / ``energy_unit`` rescale what ASE returns (for files whose
    numbers ASE takes at face value but which are in other units).

    Raises:
        UnitsRequiredError: an (extended) XYZ file without units (naming the file).
        ValueError: ASE cannot read the file (the message names the file), no frames, a unit
            key in the file that is not a known unit, or anything :meth:`Dataset.from_atoms`
            rejects.
    """
    from ase.io import read

    p = _existing(path)
    try:
        images = read(str(p), index=index, format=ase_format)
    except Exception as exc:  # ASE raises many types; name the file
        raise ValueError(f"{p}: ase.io.read failed ({type(exc).__name__}: {exc})") from exc
    if not isinstance(images, list):
        images = [images]
    if not images:
        raise ValueError(f"{p}: no frames")
    ftype = _ase_filetype(p, ase_format)
    units_from = "user" if length_unit is not None or energy_unit is not None else "format"
    if ftype in _UNITLESS_ASE_TYPES:
        info = images[0].info
        from_file = {"length_unit": info.get("length_unit"), "energy_unit": info.get("energy_unit")}
        if (length_unit is None and from_file["length_unit"] is not None) or \
                (energy_unit is None and from_file["energy_unit"] is not None):
            units_from = "file" if length_unit is None and energy_unit is None else "user"
        if length_unit is None:
            length_unit = from_file["length_unit"]
        if energy_unit is None:
            energy_unit = from_file["energy_unit"]
        missing = [k for k, v in (("length_unit", length_unit), ("energy_unit", energy_unit)) if v is None]
        if missing:
            raise _units_required(p, f"an {'extended ' if ftype == 'extxyz' else ''}XYZ file without "
                                     f"length_unit=/energy_unit= keys in its comment line", missing)
        for key, val in (("length_unit", length_unit), ("energy_unit", energy_unit)):
            if from_file[key] is not None and val is from_file[key]:
                unit_factor(val, key.split("_")[0], f"{p}: comment-line key {key}")
    L, E = _units(length_unit, energy_unit, "ase")
    ds = Dataset.from_atoms(images, name=p.stem, source=str(p), energy_key=energy_key, forces_key=forces_key,
                            metadata={"format": "ase", "ase_format": ase_format or ftype, "length_unit": L,
                                      "energy_unit": E, "energy_key": energy_key, "forces_key": forces_key,
                                      **_unit_meta(length_unit, energy_unit, "ase", L, E, units_from)})
    return _scale(ds, L, E)


# ---------------------------------------------------------------------------------- entry point
def load_dataset(path: PathLike, format: Optional[str] = None, *, length_unit: UnitLike = None,
                 energy_unit: UnitLike = None, energy_key: Optional[str] = None,
                 forces_key: Optional[str] = None, log=print, check: bool = True,
                 dipole_unit: UnitLike = None) -> Dataset:
    """Load a dataset file or directory into a :class:`Dataset` in eV and Angstrom.

    Args:
        path: file or directory.
        format: ``"rmd17"``, ``"sgdml"``, ``"deepmd"``, ``"n2p2"``, ``"ase"`` or
            ``"ase:<ase format name>"`` (e.g. ``"ase:extxyz"``); ``None`` = :func:`detect_format`.
        length_unit: the file's length unit, overriding the format's declared one (see the
            table in :mod:`atomforge.data.readers`): a name or Angstrom per unit.
        energy_unit: the file's energy unit (name or eV per unit), likewise.
        energy_key: which energy to read: the npz key for rmd17 (default ``"energies"``) and
            sgdml (``"E"``), the array name for deepmd (``"energy"``), the ``atoms.info`` key for
            ase (default: the calculator's energy). Not accepted for n2p2.
        forces_key: likewise for forces (``"forces"``, ``"F"``, ``"force"``, ``atoms.arrays``).
        log: called with one line naming the file, format and units used (:func:`describe_units`)
            and with each plausibility warning; ``None`` = silent.
        check: run :func:`atomforge.data.checks.plausibility` (shortest distances, force
            magnitudes, energies per atom) and warn (``UnitsWarning``) when the units look wrong.
        dipole_unit: ccdipole only: the file's dipole unit (default e*a0;
            :func:`atomforge.units.dipole_unit_factor`). Other formats: dipoles in e * their
            length unit.

    Returns:
        :class:`Dataset` with ``source`` = the path, ``metadata["format"]`` = the format and
        ``metadata["length_unit"]`` / ``["energy_unit"]`` = the factors applied.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        UnitsRequiredError: the format does not define units (n2p2 ``input.data``, (extended)
            XYZ without unit keys) and none were given; the message names the file.
        ValueError: an unknown format, a key option the format does not take, or any reader
            error (each names the file; value errors also the frame and field).
    """
    ds = _load(path, format, length_unit, energy_unit, energy_key, forces_key, dipole_unit)
    if log is not None:
        log(f"data {describe_units(ds)}")
    if check:
        from .checks import warn_implausible
        warn_implausible(ds, log=log)
    return ds


def _load(path, format, length_unit, energy_unit, energy_key, forces_key, dipole_unit=None) -> Dataset:
    fmt = detect_format(path) if format is None else str(format).strip().lower()
    ase_format = None
    if fmt.startswith("ase:"):
        fmt, ase_format = "ase", str(format).strip()[4:]
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {format!r}; known: {list(FORMATS)} or 'ase:<ase format>'")
    units_kw = {"length_unit": length_unit, "energy_unit": energy_unit}
    keys = {k: v for k, v in (("energy_key", energy_key), ("forces_key", forces_key)) if v is not None}
    if fmt == "rmd17":
        return read_rmd17(path, **units_kw, **keys)
    if fmt == "sgdml":
        return read_sgdml(path, **units_kw, **keys)
    if fmt == "deepmd":
        return read_deepmd(path, **units_kw, **keys)
    if fmt == "ccdipole":
        if keys or energy_unit is not None:
            raise ValueError(f"{path}: energy_unit/energy_key/forces_key do not apply to CC dipole files "
                             f"(no energies or forces)")
        from .dipoles import read_cc_dipoles
        return read_cc_dipoles(path, length_unit=length_unit or "angstrom", dipole_unit=dipole_unit or "e*bohr")
    if dipole_unit is not None:
        raise ValueError(f"{path}: dipole_unit applies to CC dipole files only ({fmt} dipoles are in e * the "
                         f"length unit)")
    if fmt == "n2p2":
        if keys:
            raise ValueError(f"{path}: energy_key/forces_key do not apply to n2p2 input.data (fixed columns)")
        return read_n2p2(path, **units_kw)
    return read_ase(path, ase_format=ase_format, **units_kw, **keys)
