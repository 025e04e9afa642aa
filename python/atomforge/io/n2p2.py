"""Readers for n2p2 / RuNNer files: ``input.nn``, ``scaling.data`` and ``input.data``.

Source of the conventions: the n2p2 code (github.com/CompPhysVienna/n2p2, libnnp ``Mode.cpp``,
``Element.cpp``, ``SymFnc*.cpp``, ``Structure.cpp``, libnnptrain ``Dataset.cpp``) and
A. Singraber, T. Morawietz, J. Behler, C. Dellago, J. Chem. Theory Comput. 15, 3075 (2019).

Units. n2p2 itself has no unit system: ``input.nn`` (symmetry-function parameters, atomic energy
offsets, normalisation constants) and ``input.data`` (positions, energies, forces) share whatever
length and energy units the training data were written in. These readers convert everything that
enters atomforge to Angstrom and eV:

* :func:`read_input_nn` returns a :class:`~atomforge.SymmetryFunctions` in Angstrom
  (``eta_A = eta_file / L**2``, ``r_s_A = r_s_file * L``, ``r_c_A = r_c_file * L`` with
  ``L`` = Angstrom per file length unit). Symmetry-function values G of types 2, 3 and 9 are
  dimensionless and unchanged by this conversion, so ``scaling.data`` applies as it is.
  Energies in the returned settings (``atom_energy``, ``normalization``) stay in file units.
* :func:`read_input_data` returns :class:`ase.Atoms` in Angstrom, eV and eV/Angstrom.

All errors are :class:`ValueError` with the file name and line number (``file:line``).
"""
from __future__ import annotations

import math
import os
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple, Union

import numpy as np
from ase import Atoms
from ase.data import atomic_numbers

from ..descriptors import SymmetryFunctions
from ..units import unit_factor

__all__ = [
    "N2P2Settings", "N2P2Scaling", "N2P2Normalization", "ScalingStats",
    "read_input_nn", "read_scaling_data", "read_input_data", "CUTOFF_TYPES",
]

PathLike = Union[str, "os.PathLike[str]"]
UnitLike = Union[None, str, float]

#: n2p2 ``cutoff_type`` integer -> atomforge cutoff-function name (n2p2 libnnp/CutoffFunction.h).
CUTOFF_TYPES: Dict[int, str] = {1: "cos", 2: "tanhu", 3: "tanh", 5: "poly1", 6: "poly2",
                                7: "poly3", 8: "poly4"}
_UNSUPPORTED_CUTOFFS = {0: "hard (f = 1)", 4: "exp"}
#: n2p2 symmetry-function type -> atomforge type.
_SF_TYPES = {2: "G2", 3: "G4", 9: "G5"}
#: n2p2 activation letters (libnnp/NeuralNetwork.cpp ``activationFromString``).
_ACTIVATIONS = set("ltsprgcSeh")

_HEADER_RE = re.compile(r"^\s*#+\s*(length|energy)\s+units?\s*:\s*(\S+)", re.IGNORECASE)


# ---------------------------------------------------------------------------------- helpers
def _to_float(tok: str, where: str, what: str) -> float:
    """Parse a finite float (Fortran ``1.0D-3`` accepted); ValueError naming where/what."""
    try:
        v = float(tok)
    except ValueError:
        try:
            v = float(tok.replace("D", "E").replace("d", "e"))
        except ValueError:
            raise ValueError(f"{where}: {what} must be a number, got {tok!r}") from None
    if not math.isfinite(v):
        raise ValueError(f"{where}: {what} must be finite, got {tok!r}")
    return v


def _to_int(tok: str, where: str, what: str) -> int:
    try:
        return int(tok)
    except ValueError:
        raise ValueError(f"{where}: {what} must be an integer, got {tok!r}") from None


def _symbol(tok: str, where: str, what: str) -> str:
    if tok in atomic_numbers and tok != "X":
        return tok
    raise ValueError(f"{where}: {what}: unknown element symbol {tok!r}")


def _z(sym: str) -> int:
    return int(atomic_numbers[sym])


# ---------------------------------------------------------------------------------- input.nn
@dataclass
class N2P2Scaling:
    """Symmetry-function scaling keywords of input.nn (n2p2 Mode::setupSymmetryFunctionScaling).

    Attributes:
        scale: ``scale_symmetry_functions`` present.
        center: ``center_symmetry_functions`` present.
        scale_sigma: ``scale_symmetry_functions_sigma`` present.
        scale_min: ``scale_min_short`` (S_min, default 0.0).
        scale_max: ``scale_max_short`` (S_max, default 1.0).
    """

    scale: bool = False
    center: bool = False
    scale_sigma: bool = False
    scale_min: float = 0.0
    scale_max: float = 1.0

    @property
    def type(self) -> str:
        """The n2p2 scaling type these flags select, with G_min/G_max/G_mean/G_sigma from
        scaling.data:

        * ``"scalecenter"`` (scale and center): Gs = S_min + (S_max - S_min) (G - G_mean) / (G_max - G_min)
        * ``"scale"``: Gs = S_min + (S_max - S_min) (G - G_min) / (G_max - G_min)
        * ``"center"``: Gs = G - G_mean
        * ``"scalesigma"`` (only scale_symmetry_functions_sigma):
          Gs = S_min + (S_max - S_min) (G - G_mean) / G_sigma
        * ``"none"``: Gs = G
        """
        if self.scale and self.center:
            return "scalecenter"
        if self.scale:
            return "scale"
        if self.center:
            return "center"
        if self.scale_sigma:
            return "scalesigma"
        return "none"


@dataclass
class N2P2Normalization:
    """n2p2 data-set normalisation (``mean_energy``, ``conv_energy``, ``conv_length``), file units.

    n2p2 works internally in normalised units: E_norm = (E - N mean_energy) conv_energy,
    r_norm = r conv_length, F_norm = F conv_energy / conv_length. The NN output (sum of atomic
    energies) is in normalised energy units; back to file units: E = E_norm / conv_energy +
    N mean_energy (+ the atom_energy offsets).
    """

    mean_energy: float
    conv_energy: float
    conv_length: float


@dataclass
class N2P2Settings:
    """Parsed n2p2 ``input.nn`` (see :func:`read_input_nn`).

    Attributes:
        descriptor: :class:`~atomforge.SymmetryFunctions` in Angstrom; feature k of element E is
            n2p2's symmetry function k+1 of E (the row order of scaling.data).
        elements: element symbols sorted by atomic number (n2p2's element index order).
        length_unit: Angstrom per file length unit (float).
        energy_unit: eV per file energy unit, or None if neither stated nor given.
        cutoff_type: n2p2 cutoff_type integer.
        cutoff_alpha: inner-cutoff parameter (second token of cutoff_type; 0.0 by default).
        scaling: :class:`N2P2Scaling`.
        normalization: :class:`N2P2Normalization` or None (file units).
        hidden_layers: ``global_nodes_short`` (nodes per hidden layer).
        activations: ``global_activation_short`` letters (hidden layers then the output layer).
        atom_energy: symbol -> free-atom energy offset (file energy units); commented-out lines
            are ignored.
        raw: keyword -> list of tokens (the last occurrence) for every other keyword.
        function_lines: symbol -> line numbers in input.nn of each feature, in feature order.
        path: the file read.
    """

    descriptor: SymmetryFunctions
    elements: List[str]
    length_unit: float
    energy_unit: Optional[float]
    cutoff_type: int
    cutoff_alpha: float = 0.0
    scaling: N2P2Scaling = field(default_factory=N2P2Scaling)
    normalization: Optional[N2P2Normalization] = None
    hidden_layers: List[int] = field(default_factory=list)
    activations: List[str] = field(default_factory=list)
    atom_energy: Dict[str, float] = field(default_factory=dict)
    raw: Dict[str, List[str]] = field(default_factory=dict)
    function_lines: Dict[str, List[int]] = field(default_factory=dict)
    path: Optional[str] = None


_SINGLE_VALUED = {"number_of_elements", "elements", "cutoff_type", "scale_min_short", "scale_max_short",
                  "mean_energy", "conv_energy", "conv_length", "global_hidden_layers_short",
                  "global_nodes_short", "global_activation_short"}
_FLAGS = {"scale_symmetry_functions": "scale", "center_symmetry_functions": "center",
          "scale_symmetry_functions_sigma": "scale_sigma"}


def read_input_nn(path: PathLike, length_unit: UnitLike = None,
                  energy_unit: UnitLike = None, comment_chars: str = "#") -> N2P2Settings:
    """Read an n2p2 ``input.nn`` settings file.

    Args:
        path: the input.nn file.
        length_unit: the file's length unit: a name (``'bohr'``, ``'angstrom'``) or Angstrom per
            unit (float). None: taken from a header comment ``# Length unit : Bohr`` (or
            ``Angstrom``); if there is none, Angstrom is assumed and a :class:`UserWarning` says so.
        energy_unit: the file's energy unit: a name (``'ha'``, ``'ev'``) or eV per unit. None:
            from a header comment ``# Energy unit : Ha`` (or ``eV``), else left as None.
        comment_chars: characters that start a comment anywhere on a line (n2p2: ``"#"``;
            RuNNer input files also use ``"!"`` after the values: ``"#!"``).

    Returns:
        :class:`N2P2Settings`. Symmetry functions (``symfunction_short``):

        * ``<ec> 2 <e1> <eta> <rs> <rc>`` -> G2,
        * ``<ec> 3 <e1> <e2> <eta> <lambda> <zeta> <rc> [<rs>]`` -> G4 (n2p2 narrow angular),
        * ``<ec> 9 <e1> <e2> <eta> <lambda> <zeta> <rc> [<rs>]`` -> G5 (n2p2 wide angular),

        converted to Angstrom (eta / L**2, rs * L, rc * L). The functions of each central element
        are ordered as n2p2 sorts them (Element::sortSymmetryFunctions): by type (2 < 3 < 9), then
        r_c, eta, r_s, then the neighbour element (G2) or zeta, lambda, e1, e2 (G4/G5; elements
        compared by atomic number, e1 <= e2). Hence feature k of element E is row k+1 of E in
        scaling.data. ``cutoff_type``: 1 cos, 2 tanhu, 3 tanh, 5..8 poly1..poly4.

    Raises:
        ValueError: naming ``file:line`` and the keyword for: unsupported symmetry-function types
            (anything but 2, 3, 9), symmetry functions of elements not in ``elements``, wrong token
            counts, non-numeric or non-finite values, invalid parameters (eta < 0, r_c <= 0,
            r_s outside [0, r_c), lambda not +-1, zeta < 1), unsupported cutoff types (0 hard,
            4 exp, or a nonzero inner-cutoff alpha for cos/poly), unknown activation letters,
            inconsistent counts (number_of_elements, global_hidden_layers_short), a keyword given
            twice, or an incomplete normalisation (mean_energy/conv_energy/conv_length not all
            present). A missing ``elements`` or ``cutoff_type`` keyword names the file.
            An unknown unit name or a bad ``length_unit``/``energy_unit`` argument.
    """
    path = Path(path)
    name = str(path)
    with open(path, "r", encoding="utf-8", errors="replace") as fh:
        lines = fh.read().splitlines()

    header_units: Dict[str, Tuple[str, int]] = {}
    seen: Dict[str, int] = {}
    entries: List[Tuple[int, str, List[str]]] = []
    for lineno, line in enumerate(lines, start=1):
        m = _HEADER_RE.match(line)
        if m and m.group(1).lower() not in header_units:
            header_units[m.group(1).lower()] = (m.group(2), lineno)
        body = line
        for ch in comment_chars:
            body = body.split(ch, 1)[0]
        toks = body.split()
        if not toks:
            continue
        key = toks[0]
        if key in _SINGLE_VALUED:
            if key in seen:
                raise ValueError(f"{name}:{lineno}: keyword {key} given twice (first at line {seen[key]})")
            seen[key] = lineno
        entries.append((lineno, key, toks[1:]))

    # units
    if length_unit is not None:
        L = unit_factor(length_unit, "length", "length_unit")
    elif "length" in header_units:
        tok, ln = header_units["length"]
        L = unit_factor(tok, "length", f"{name}:{ln}: header 'Length unit'")
    else:
        warnings.warn(f"{name}: no length unit given (no '# Length unit : ...' header and no "
                      f"length_unit argument); assuming Angstrom", UserWarning, stacklevel=2)
        L = 1.0
    if energy_unit is not None:
        E_unit: Optional[float] = unit_factor(energy_unit, "energy", "energy_unit")
    elif "energy" in header_units:
        tok, ln = header_units["energy"]
        E_unit = unit_factor(tok, "energy", f"{name}:{ln}: header 'Energy unit'")
    else:
        E_unit = None

    def where(ln: int) -> str:
        return f"{name}:{ln}"

    def need(ln, key, args, lo, hi=None):
        hi = lo if hi is None else hi
        if not lo <= len(args) <= hi:
            want = str(lo) if lo == hi else f"{lo} to {hi}"
            raise ValueError(f"{where(ln)}: {key} takes {want} value(s), got {len(args)}: {' '.join(args)!r}")

    elements: Optional[List[str]] = None
    elements_line = 0
    n_elements: Optional[Tuple[int, int]] = None
    cutoff: Optional[Tuple[int, float, int]] = None
    scaling = N2P2Scaling()
    norm: Dict[str, Tuple[float, int]] = {}
    n_hidden: Optional[Tuple[int, int]] = None
    nodes: Optional[Tuple[List[int], int]] = None
    acts: Optional[Tuple[List[str], int]] = None
    atom_energy_lines: List[Tuple[int, str, float]] = []
    sf_lines: List[Tuple[int, List[str]]] = []
    raw: Dict[str, List[str]] = {}

    for ln, key, args in entries:
        w = where(ln)
        if key == "elements":
            if not args:
                raise ValueError(f"{w}: elements: no element symbols given")
            syms = [_symbol(t, w, "elements") for t in args]
            if len(set(syms)) != len(syms):
                raise ValueError(f"{w}: elements: duplicate symbols in {syms}")
            elements = sorted(syms, key=_z)
            elements_line = ln
        elif key == "number_of_elements":
            need(ln, key, args, 1)
            n_elements = (_to_int(args[0], w, key), ln)
        elif key == "cutoff_type":
            need(ln, key, args, 1, 2)
            ct = _to_int(args[0], w, key)
            alpha = _to_float(args[1], w, "cutoff_type alpha") if len(args) > 1 else 0.0
            if ct in _UNSUPPORTED_CUTOFFS:
                raise ValueError(f"{w}: cutoff_type {ct} ({_UNSUPPORTED_CUTOFFS[ct]}) is not supported "
                                 f"(supported: {', '.join(f'{k} {v}' for k, v in CUTOFF_TYPES.items())})")
            if ct not in CUTOFF_TYPES:
                raise ValueError(f"{w}: unknown cutoff_type {ct} "
                                 f"(supported: {', '.join(f'{k} {v}' for k, v in CUTOFF_TYPES.items())})")
            if not 0.0 <= alpha < 1.0:
                raise ValueError(f"{w}: cutoff_type alpha must satisfy 0 <= alpha < 1, got {alpha}")
            if alpha != 0.0 and CUTOFF_TYPES[ct] not in ("tanhu", "tanh"):
                raise ValueError(f"{w}: cutoff_type {ct} with inner-cutoff alpha={alpha} is not supported "
                                 f"(only alpha = 0)")
            cutoff = (ct, alpha, ln)
        elif key in _FLAGS:
            setattr(scaling, _FLAGS[key], True)
        elif key in ("scale_min_short", "scale_max_short"):
            need(ln, key, args, 1)
            v = _to_float(args[0], w, key)
            if key == "scale_min_short":
                scaling.scale_min = v
            else:
                scaling.scale_max = v
        elif key in ("mean_energy", "conv_energy", "conv_length"):
            need(ln, key, args, 1)
            norm[key] = (_to_float(args[0], w, key), ln)
        elif key == "global_hidden_layers_short":
            need(ln, key, args, 1)
            n_hidden = (_to_int(args[0], w, key), ln)
        elif key == "global_nodes_short":
            if not args:
                raise ValueError(f"{w}: global_nodes_short: no values given")
            vals = [_to_int(a, w, key) for a in args]
            if any(v < 1 for v in vals):
                raise ValueError(f"{w}: global_nodes_short: node counts must be >= 1, got {vals}")
            nodes = (vals, ln)
        elif key == "global_activation_short":
            if not args:
                raise ValueError(f"{w}: global_activation_short: no values given")
            bad = [a for a in args if a not in _ACTIVATIONS]
            if bad:
                raise ValueError(f"{w}: global_activation_short: unknown activation(s) {bad} "
                                 f"(known: {' '.join(sorted(_ACTIVATIONS))})")
            acts = (list(args), ln)
        elif key == "atom_energy":
            need(ln, key, args, 2)
            atom_energy_lines.append((ln, _symbol(args[0], w, key), _to_float(args[1], w, key)))
        elif key == "symfunction_short":
            sf_lines.append((ln, args))
        else:
            raw[key] = list(args)

    if elements is None:
        raise ValueError(f"{name}: missing keyword 'elements'")
    if n_elements is not None and n_elements[0] != len(elements):
        raise ValueError(f"{where(n_elements[1])}: number_of_elements is {n_elements[0]} but the "
                         f"elements line (line {elements_line}) lists {len(elements)}: {elements}")
    if cutoff is None:
        raise ValueError(f"{name}: missing keyword 'cutoff_type'")
    if n_hidden is not None and nodes is not None and n_hidden[0] != len(nodes[0]):
        raise ValueError(f"{where(nodes[1])}: global_nodes_short has {len(nodes[0])} entries but "
                         f"global_hidden_layers_short (line {n_hidden[1]}) is {n_hidden[0]}")
    if acts is not None and nodes is not None and len(acts[0]) != len(nodes[0]) + 1:
        raise ValueError(f"{where(acts[1])}: global_activation_short needs {len(nodes[0]) + 1} entries "
                         f"(one per hidden layer plus the output layer), got {len(acts[0])}")
    normalization = None
    if norm:
        missing = [k for k in ("mean_energy", "conv_energy", "conv_length") if k not in norm]
        if missing:
            ln = min(v[1] for v in norm.values())
            raise ValueError(f"{where(ln)}: normalisation needs mean_energy, conv_energy and conv_length "
                             f"together; missing {missing}")
        normalization = N2P2Normalization(norm["mean_energy"][0], norm["conv_energy"][0],
                                          norm["conv_length"][0])
    atom_energy: Dict[str, float] = {}
    for ln, sym, v in atom_energy_lines:
        if sym not in elements:
            raise ValueError(f"{where(ln)}: atom_energy: element {sym!r} is not in elements {elements} "
                             f"(line {elements_line})")
        atom_energy[sym] = v

    # symmetry functions: parse, validate, sort as n2p2 does, convert to Angstrom
    per_elem: Dict[str, List[Tuple[tuple, dict, int]]] = {e: [] for e in elements}
    key = "symfunction_short"
    for ln, args in sf_lines:
        w = where(ln)
        if len(args) < 2:
            raise ValueError(f"{w}: {key} needs at least the central element and the type, got {' '.join(args)!r}")
        t = _to_int(args[1], w, f"{key} type")
        if t not in _SF_TYPES:
            raise ValueError(f"unsupported symmetry function type {t} at {w} (supported: 2 radial, "
                             f"3 narrow angular, 9 wide angular)")
        if t == 2:
            need(ln, f"{key} type 2", args, 6)
        else:
            need(ln, f"{key} type {t}", args, 8, 9)
        syms = []
        for tok in ([args[0], args[2]] if t == 2 else [args[0], args[2], args[3]]):
            s = _symbol(tok, w, key)
            if s not in elements:
                raise ValueError(f"{w}: {key}: element {s!r} is not in elements {elements} "
                                 f"(line {elements_line})")
            syms.append(s)
        ec = syms[0]
        if t == 2:
            eta, rs, rc = (_to_float(args[i], w, f"{key} {n}") for i, n in ((3, "eta"), (4, "rs"), (5, "rc")))
            lam = zeta = None
            nb = [syms[1]]
        else:
            eta, lam, zeta, rc = (_to_float(args[i], w, f"{key} {n}")
                                  for i, n in ((4, "eta"), (5, "lambda"), (6, "zeta"), (7, "rc")))
            rs = _to_float(args[8], w, f"{key} rs") if len(args) > 8 else 0.0
            nb = sorted(syms[1:], key=_z)
            if lam not in (1.0, -1.0):
                raise ValueError(f"{w}: {key}: lambda must be +1 or -1, got {lam}")
            if zeta < 1.0:
                raise ValueError(f"{w}: {key}: zeta must be >= 1, got {zeta}")
        if eta < 0:
            raise ValueError(f"{w}: {key}: eta must be >= 0, got {eta}")
        if rc <= 0:
            raise ValueError(f"{w}: {key}: rc must be positive, got {rc}")
        if not 0 <= rs < rc:
            raise ValueError(f"{w}: {key}: rs must satisfy 0 <= rs < rc, got rs={rs}, rc={rc}")
        f = {"type": _SF_TYPES[t], "neighbors": nb, "eta": eta / (L * L), "r_s": rs * L, "r_c": rc * L}
        if t == 2:
            sort_key = (t, rc, eta, rs, _z(nb[0]))
        else:
            f["lambda"] = lam
            f["zeta"] = zeta
            sort_key = (t, rc, eta, rs, zeta, lam, _z(nb[0]), _z(nb[1]))
        per_elem[ec].append((sort_key, f, ln))

    if not sf_lines:
        raise ValueError(f"{name}: no symfunction_short lines")
    functions: Dict[str, List[dict]] = {}
    function_lines: Dict[str, List[int]] = {}
    for e in elements:
        # n2p2 uses std::sort on the keys; ties only for identical functions. Sorting on the
        # file-unit values gives the same order (the unit conversion is monotone).
        items = sorted(per_elem[e], key=lambda x: x[0])
        functions[e] = [f for _, f, _ in items]
        function_lines[e] = [ln for _, _, ln in items]
    descriptor = SymmetryFunctions(elements, functions, CUTOFF_TYPES[cutoff[0]])

    return N2P2Settings(
        descriptor=descriptor, elements=list(elements), length_unit=L, energy_unit=E_unit,
        cutoff_type=cutoff[0], cutoff_alpha=cutoff[1], scaling=scaling, normalization=normalization,
        hidden_layers=list(nodes[0]) if nodes else [], activations=list(acts[0]) if acts else [],
        atom_energy=atom_energy, raw=raw, function_lines=function_lines, path=name)


# ---------------------------------------------------------------------------------- scaling.data
@dataclass
class ScalingStats:
    """Per-element symmetry-function statistics from n2p2's scaling.data (dimensionless G).

    Arrays of shape (n_functions_of_element,), float64, in the descriptor's feature order
    (= n2p2's order): ``min``, ``max``, ``mean`` (over all atoms of the element in the training
    set) and ``sigma`` (sample standard deviation, n-1; NaN if the file has no sigma column).
    """

    min: np.ndarray
    max: np.ndarray
    mean: np.ndarray
    sigma: np.ndarray


def read_scaling_data(path: PathLike, settings_or_descriptor) -> Dict[str, ScalingStats]:
    """Read n2p2 ``scaling.data`` (written by nnp-scaling, Dataset::writeSymmetryFunctionScaling).

    Format: lines starting with ``#`` (and blank lines) are skipped; every other line is
    ``e_index sf_index min max mean [sigma]`` with 1-based element index in atomic-number order
    and 1-based function index in n2p2's sorted order.

    Args:
        path: the scaling.data file.
        settings_or_descriptor: an :class:`N2P2Settings` or a :class:`~atomforge.SymmetryFunctions`
            (its elements are taken in atomic-number order, as n2p2 numbers them; its feature
            counts per element must match the file).

    Returns:
        dict element symbol -> :class:`ScalingStats` (arrays of length = that element's
        feature count).

    Raises:
        ValueError: naming ``file:line`` for a malformed line (token count, non-integer index,
            non-numeric or non-finite value), an element or function index out of sequence, an
            element whose row count differs from the descriptor's feature count (naming the
            element and both counts), min > max, or a file without data lines.
    """
    desc = getattr(settings_or_descriptor, "descriptor", settings_or_descriptor)
    if not isinstance(desc, SymmetryFunctions):
        raise TypeError("settings_or_descriptor must be an N2P2Settings or a SymmetryFunctions, "
                        f"got {type(settings_or_descriptor).__name__}")
    elems = sorted(desc.elements, key=_z)
    counts = desc.n_features_per_element
    path = Path(path)
    name = str(path)
    rows: Dict[int, List[Tuple[int, List[float]]]] = {}
    prev_e = 0
    prev_line = 0
    with open(path, "r", encoding="utf-8", errors="replace") as fh:
        lines = fh.read().splitlines()
    for ln, line in enumerate(lines, start=1):
        s = line.strip()
        if not s or s.startswith("#"):
            continue
        w = f"{name}:{ln}"
        toks = s.split()
        if len(toks) not in (5, 6):
            raise ValueError(f"{w}: expected 'e_index sf_index min max mean sigma' (6 columns), "
                             f"got {len(toks)}: {s!r}")
        ei = _to_int(toks[0], w, "element index")
        si = _to_int(toks[1], w, "function index")
        vals = [_to_float(tok, w, col) for tok, col in zip(toks[2:], ("min", "max", "mean", "sigma"))]
        if len(vals) == 4 and vals[3] < 0:
            raise ValueError(f"{w}: sigma must be >= 0, got {vals[3]}")
        if not 1 <= ei <= len(elems):
            raise ValueError(f"{w}: element index {ei} out of range 1..{len(elems)} "
                             f"(elements by atomic number: {elems})")
        if ei != prev_e:
            if ei < prev_e or ei in rows:
                raise ValueError(f"{w}: element index {ei} out of order (after element index {prev_e})")
            if prev_e:
                _check_count(name, prev_e, elems, rows, counts, ln, prev_line)
            for skipped in range(prev_e + 1, ei):
                if counts[elems[skipped - 1]]:
                    raise ValueError(f"{w}: element {elems[skipped - 1]} (index {skipped}) has no rows, but "
                                     f"the descriptor has {counts[elems[skipped - 1]]} functions for it")
            rows[ei] = []
            prev_e = ei
        expected = len(rows[ei]) + 1
        if si != expected:
            raise ValueError(f"{w}: element {elems[ei - 1]} (index {ei}): function index {si}, expected "
                             f"{expected}")
        if expected > counts[elems[ei - 1]]:
            raise ValueError(f"{w}: element {elems[ei - 1]} (index {ei}) has more rows than the "
                             f"descriptor's {counts[elems[ei - 1]]} functions")
        if vals[0] > vals[1]:
            raise ValueError(f"{w}: min {vals[0]} > max {vals[1]}")
        rows[ei].append((ln, vals))
        prev_line = ln
    if prev_e == 0:
        raise ValueError(f"{name}: no data lines")
    _check_count(name, prev_e, elems, rows, counts, prev_line, prev_line)
    for k in range(prev_e + 1, len(elems) + 1):
        if counts[elems[k - 1]]:
            raise ValueError(f"{name}:{prev_line}: file ends without rows for element {elems[k - 1]} "
                             f"(index {k}); the descriptor has {counts[elems[k - 1]]} functions for it")
    out: Dict[str, ScalingStats] = {}
    for i, e in enumerate(elems, start=1):
        r = [v for _, v in rows.get(i, [])]
        a = np.full((len(r), 4), np.nan)
        for k, v in enumerate(r):
            a[k, :len(v)] = v
        out[e] = ScalingStats(a[:, 0].copy(), a[:, 1].copy(), a[:, 2].copy(), a[:, 3].copy())
    return out


def _check_count(name, ei, elems, rows, counts, line, last_row_line):
    """Rows of element index ``ei`` must number the descriptor's feature count."""
    e = elems[ei - 1]
    if len(rows[ei]) != counts[e]:
        raise ValueError(f"{name}:{line}: element {e} (index {ei}) has {len(rows[ei])} rows (the last at "
                         f"line {last_row_line}), but the descriptor has {counts[e]} functions for it")


# ---------------------------------------------------------------------------------- input.data
def read_input_data(path: PathLike, length_unit: UnitLike = None, energy_unit: UnitLike = None) -> List[Atoms]:
    """Read a RuNNer / n2p2 ``input.data`` file into a list of :class:`ase.Atoms`.

    Frame format (one keyword per line)::

        begin
        comment <free text>                     (optional)
        lattice ax ay az                        (0 or 3 lines; absent: non-periodic)
        atom x y z element charge energy fx fy fz   (one per atom)
        energy E                                (total energy)
        charge Q                                (total charge)
        end

    Args:
        path: the input.data file.
        length_unit: the file's length unit: ``'bohr'``, ``'angstrom'`` or Angstrom per unit.
            Required: the format defines no units (the n2p2 examples are in Bohr).
        energy_unit: the file's energy unit: ``'ha'``, ``'ev'`` or eV per unit. Required
            (the n2p2 examples are in Hartree).

    Returns:
        One Atoms per frame, in Angstrom: positions (N, 3); cell (3, 3) rows = lattice vectors and
        ``pbc=True`` when lattice lines are given (else no cell, ``pbc=False``);
        ``arrays["forces"]`` (N, 3) eV/Angstrom (file forces * energy_unit / length_unit);
        ``arrays["initial_charges"]`` (N,) atomic charges (e, unconverted);
        ``arrays["atomic_energies"]`` (N,) the per-atom energy column in eV;
        ``info["energy"]`` total energy in eV (when the frame has an ``energy`` line);
        ``info["charge"]`` total charge in e (when given); ``info["comment"]`` (str, '' if none).

    Raises:
        ValueError: naming ``file:line`` for an unknown keyword, a keyword outside
            ``begin``/``end``, a missing ``end`` (a new ``begin`` or the end of file inside a
            frame), an atom line without exactly 9 values, a non-numeric or non-finite value,
            an unknown element symbol, a lattice count other than 0 or 3, a repeated
            ``energy``/``charge`` line, or a frame without atoms; or for a missing or bad unit
            argument (naming the file).
    """
    if length_unit is None or energy_unit is None:  # the format defines no units: never guessed
        raise ValueError(f"{path}: RuNNer/n2p2 input.data does not state its units; pass length_unit and "
                         f"energy_unit (the n2p2 example data: length_unit='bohr', energy_unit='ha')")
    L = unit_factor(length_unit, "length", "length_unit")
    E = unit_factor(energy_unit, "energy", "energy_unit")
    path = Path(path)
    name = str(path)
    frames: List[Atoms] = []
    cur = None
    with open(path, "r", encoding="utf-8", errors="replace") as fh:
        lines = fh.read().splitlines()
    for ln, line in enumerate(lines, start=1):
        s = line.strip()
        if not s or s.startswith("#"):
            continue
        w = f"{name}:{ln}"
        toks = s.split()
        key = toks[0]
        if key == "begin":
            if cur is not None:
                raise ValueError(f"{w}: 'begin' inside a frame: missing 'end' for the frame begun at line "
                                 f"{cur['begin']}")
            cur = {"begin": ln, "comment": [], "lattice": [], "lattice_lines": [], "pos": [], "sym": [],
                   "q": [], "e": [], "f": [], "energy": None, "charge": None}
            continue
        if key not in ("comment", "lattice", "atom", "energy", "charge", "end"):
            raise ValueError(f"{w}: unknown keyword {key!r} (input.data knows begin, comment, lattice, "
                             f"atom, energy, charge, end)")
        if cur is None:
            raise ValueError(f"{w}: {key!r} outside a frame (no preceding 'begin')")
        if key == "comment":
            cur["comment"].append(s[len("comment"):].strip())
        elif key == "lattice":
            if len(toks) != 4:
                raise ValueError(f"{w}: lattice needs 3 values, got {len(toks) - 1}")
            if len(cur["lattice"]) == 3:
                raise ValueError(f"{w}: more than 3 lattice lines in the frame begun at line {cur['begin']}")
            cur["lattice"].append([_to_float(t, w, "lattice") for t in toks[1:]])
        elif key == "atom":
            if len(toks) != 10:
                raise ValueError(f"{w}: atom line needs 9 values 'x y z element charge energy fx fy fz', "
                                 f"got {len(toks) - 1}")
            cur["pos"].append([_to_float(t, w, f"atom {c}") for t, c in zip(toks[1:4], "xyz")])
            cur["sym"].append(_symbol(toks[4], w, "atom"))
            cur["q"].append(_to_float(toks[5], w, "atom charge"))
            cur["e"].append(_to_float(toks[6], w, "atom energy"))
            cur["f"].append([_to_float(t, w, f"atom f{c}") for t, c in zip(toks[7:10], "xyz")])
        elif key in ("energy", "charge"):
            if len(toks) != 2:
                raise ValueError(f"{w}: {key} needs 1 value, got {len(toks) - 1}")
            if cur[key] is not None:
                raise ValueError(f"{w}: second {key!r} line in the frame begun at line {cur['begin']}")
            cur[key] = _to_float(toks[1], w, key)
        else:  # end
            if len(toks) != 1:
                raise ValueError(f"{w}: 'end' takes no values")
            nlat = len(cur["lattice"])
            if nlat not in (0, 3):
                raise ValueError(f"{w}: frame begun at line {cur['begin']} has {nlat} lattice line(s); "
                                 f"need 3 or none")
            if not cur["pos"]:
                raise ValueError(f"{w}: frame begun at line {cur['begin']} has no atoms")
            frames.append(_make_atoms(cur, L, E))
            cur = None
    if cur is not None:
        raise ValueError(f"{name}:{len(lines)}: end of file inside the frame begun at line {cur['begin']} "
                         f"(missing 'end')")
    return frames


def _make_atoms(cur, L: float, E: float) -> Atoms:
    periodic = len(cur["lattice"]) == 3
    atoms = Atoms(symbols=cur["sym"], positions=np.asarray(cur["pos"]) * L,
                  cell=np.asarray(cur["lattice"]) * L if periodic else None, pbc=periodic,
                  charges=np.asarray(cur["q"], dtype=float))
    atoms.new_array("forces", np.asarray(cur["f"], dtype=float) * (E / L))
    atoms.new_array("atomic_energies", np.asarray(cur["e"], dtype=float) * E)
    atoms.info["comment"] = "\n".join(cur["comment"])
    if cur["energy"] is not None:
        atoms.info["energy"] = cur["energy"] * E
    if cur["charge"] is not None:
        atoms.info["charge"] = cur["charge"]
    return atoms
