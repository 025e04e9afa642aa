"""Behler-Parrinello atom-centred symmetry functions (ACSF), evaluated by the compiled core.

References:
    [B11] J. Behler, J. Chem. Phys. 134, 074106 (2011): G2 (Eq. 6), G4 (Eq. 8), G5 (Eq. 9),
          cosine cutoff (Eq. 4).
    [B15] J. Behler, Int. J. Quantum Chem. 115, 1032 (2015): element-resolved functions.
    [S19] A. Singraber et al., J. Chem. Theory Comput. 15, 3075 (2019) (n2p2): polynomial and
          tanh cutoffs; each unordered neighbour pair counted once in G4/G5.
    [I18] G. Imbalzano et al., J. Chem. Phys. 148, 241730 (2018): radial grids used by
          :meth:`SymmetryFunctions.standard`.
    [S17] J. S. Smith, O. Isayev, A. E. Roitberg, Chem. Sci. 8, 3192 (2017) (ANI-1), Eq. 4: the
          modified angular function with an angle shift theta_s (G5s below takes its angular
          factor; the 0.95 on cos theta is TorchANI's, keeping forces finite at 0 and 180 degrees).

Formulas (r_ij = |r_j - r_i|, fc the cutoff function, sums over neighbours within r_c)::

    G2_i = sum_{j in e1} exp(-eta (r_ij - r_s)^2) fc(r_ij)
    G4_i = 2^(1-zeta) sum_{{j,k}} (1 + lambda cos theta_ijk)^zeta
           exp(-eta [(r_ij-r_s)^2 + (r_ik-r_s)^2 + (r_jk-r_s)^2]) fc(r_ij) fc(r_ik) fc(r_jk)
    G5_i = 2^(1-zeta) sum_{{j,k}} (1 + lambda cos theta_ijk)^zeta
           exp(-eta [(r_ij-r_s)^2 + (r_ik-r_s)^2]) fc(r_ij) fc(r_ik)
    G5s_i = 2^(1-zeta) sum_{{j,k}} (1 + cos(theta~_ijk - theta_s))^zeta
           exp(-eta [(r_ij-r_s)^2 + (r_ik-r_s)^2]) fc(r_ij) fc(r_ik),
           theta~ = arccos(0.95 cos theta_ijk)

where {j,k} runs over unordered pairs with one neighbour of element e1 and one of e2. Terms with
1 + lambda cos theta <= 0 are zero (as in n2p2). G5s resolves the angle around theta_s (radians,
0..pi) as ANI's modified angular functions do ([S17] Eq. 4); its radial factor is G5's product
(separable, so the core reuses each neighbour's radial term), not ANI's
exp(-eta ((r_ij + r_ik)/2 - r_s)^2).

Parameter form (the serialisable, documented form; units Angstrom and 1/Angstrom^2)::

    {
      "elements": ["H", "O"],               # element order = element index in the core
      "cutoff_function": "cos",             # cos | tanhu | tanh | poly1 | poly2 | poly3 | poly4
      "functions": {                        # per central element, in feature order
        "H": [
          {"type": "G2", "neighbors": ["O"], "eta": 0.5, "r_s": 0.0, "r_c": 6.0},
          {"type": "G4", "neighbors": ["H", "O"], "eta": 0.01, "lambda": -1, "zeta": 4,
           "r_c": 6.0, "r_s": 0.0},
          {"type": "G5s", "neighbors": ["H", "O"], "eta": 1.0, "theta_s": 1.96, "zeta": 32,
           "r_c": 3.5, "r_s": 0.9},
          ...
        ],
        "O": [...]
      }
    }
"""
from __future__ import annotations

import copy
import math
from typing import Dict, List, Optional, Sequence

import numpy as np
from ase.data import chemical_symbols

from .._inputs import to_atomic_number
from .base import CUTOFF_FUNCTIONS, Descriptor, register

_TYPES = {"G2": 2, "G4": 4, "G5": 5, "G5s": 6}
_TYPE_NAMES = {v: k for k, v in _TYPES.items()}
_ANGULAR_KEYS = {"type", "neighbors", "eta", "lambda", "zeta", "r_c", "r_s"}
_SHIFTED_KEYS = {"type", "neighbors", "eta", "theta_s", "zeta", "r_c", "r_s"}
_RADIAL_KEYS = {"type", "neighbors", "eta", "r_c", "r_s"}
#: Largest cutoff radius the core accepts (Angstrom), as in cpp/src/descriptors/common.hpp.
MAX_CUTOFF = 25.0


def _element_symbol(z: int) -> str:
    return chemical_symbols[z]


@register
class SymmetryFunctions(Descriptor):
    """Element-resolved Behler-Parrinello symmetry functions G2, G4, G5 and G5s (type ``"acsf"``).

    Args:
        elements: element symbols or atomic numbers; their order is the element index.
        functions: mapping central element -> list of function dicts (see the module docstring).
            Units: eta in 1/Angstrom^2, r_s and r_c in Angstrom.
        cutoff_function: one of ``cos``, ``tanhu``, ``tanh``, ``poly1`` .. ``poly4``.

    Raises:
        ValueError: naming the element and function index for unknown keys, unknown elements,
            a missing parameter, eta < 0, r_c <= 0, r_s outside [0, r_c), lambda not +-1,
            theta_s outside [0, pi], zeta < 1, non-finite values, or an unknown cutoff function.

    Features: every element has its own list; ``G`` has ``n_features`` = the longest list
    columns and rows of elements with fewer functions are zero-padded
    (``n_features_per_element`` tells how many are used).
    """

    def __init__(self, elements: Sequence, functions: Dict, cutoff_function: str = "cos"):
        zs = [to_atomic_number(e, where="elements") for e in elements]
        if len(zs) == 0:
            raise ValueError("elements: at least one element is required")
        if len(set(zs)) != len(zs):
            raise ValueError(f"elements: duplicate entries in {list(elements)}")
        if cutoff_function not in CUTOFF_FUNCTIONS:
            raise ValueError(f"cutoff_function: unknown {cutoff_function!r}; use one of {CUTOFF_FUNCTIONS}")
        self.atomic_numbers = zs
        self.elements = [_element_symbol(z) for z in zs]
        self.cutoff_function = cutoff_function
        self._index = {z: i for i, z in enumerate(zs)}
        self.functions: Dict[str, List[dict]] = {s: [] for s in self.elements}
        if not isinstance(functions, dict):
            raise TypeError("functions must be a dict: central element -> list of function dicts")
        for key, flist in functions.items():
            zc = to_atomic_number(key, where="functions")
            if zc not in self._index:
                raise ValueError(f"functions: central element {key!r} is not in elements {self.elements}")
            sym = _element_symbol(zc)
            for k, f in enumerate(flist):
                self.functions[sym].append(self._check_function(f, f"functions[{sym!r}][{k}]"))
        if not any(self.functions.values()):
            raise ValueError("functions: no symmetry functions given")

    def _check_function(self, f, where: str) -> dict:
        if not isinstance(f, dict):
            raise TypeError(f"{where}: a function must be a dict, got {type(f).__name__}")
        t = f.get("type")
        if t not in _TYPES:
            raise ValueError(f"{where}: 'type' must be one of G2, G4, G5, G5s, got {t!r}")
        allowed = _RADIAL_KEYS if t == "G2" else _SHIFTED_KEYS if t == "G5s" else _ANGULAR_KEYS
        unknown = set(f) - allowed
        if unknown:
            raise ValueError(f"{where}: unknown key(s) {sorted(unknown)} for {t} (allowed: {sorted(allowed)})")
        need = ["neighbors", "eta", "r_c"] + ([] if t == "G2" else ["theta_s", "zeta"] if t == "G5s" else
                                             ["lambda", "zeta"])
        for k in need:
            if k not in f:
                raise ValueError(f"{where}: missing key {k!r}")
        nb = f["neighbors"]
        if isinstance(nb, (str, int)):
            nb = [nb]
        nb = list(nb)
        want = 1 if t == "G2" else 2
        if len(nb) != want:
            raise ValueError(f"{where}: {t} takes {want} neighbour element(s), got {nb}")
        syms = []
        for e in nb:
            z = to_atomic_number(e, where=f"{where}: neighbors")
            if z not in self._index:
                raise ValueError(f"{where}: neighbour element {e!r} is not in elements {self.elements}")
            syms.append(_element_symbol(z))
        out = {"type": t, "neighbors": syms}
        for k in ("eta", "r_s", "r_c", "lambda", "zeta", "theta_s"):
            if k in f:
                try:
                    v = float(f[k])
                except (TypeError, ValueError):
                    raise ValueError(f"{where}: {k!r} must be a number, got {f[k]!r}") from None
                if not math.isfinite(v):
                    raise ValueError(f"{where}: {k!r} must be finite, got {v}")
                out[k] = v
        out.setdefault("r_s", 0.0)
        if out["r_c"] <= 0:
            raise ValueError(f"{where}: cutoff radius r_c must be positive, got {out['r_c']}")
        if out["r_c"] > MAX_CUTOFF:
            raise ValueError(f"{where}: cutoff radius r_c = {out['r_c']} A exceeds the maximum {MAX_CUTOFF} A")
        if out["eta"] < 0:
            raise ValueError(f"{where}: eta must be >= 0, got {out['eta']}")
        if not 0 <= out["r_s"] < out["r_c"]:
            raise ValueError(f"{where}: r_s must satisfy 0 <= r_s < r_c, got r_s={out['r_s']}")
        if t == "G5s" and not 0 <= out["theta_s"] <= math.pi:
            raise ValueError(f"{where}: theta_s must be in [0, pi] radians, got {out['theta_s']}")
        if t in ("G4", "G5"):
            if out["lambda"] not in (1.0, -1.0):
                raise ValueError(f"{where}: lambda must be +1 or -1, got {out['lambda']}")
        if t != "G2" and out["zeta"] < 1:
            raise ValueError(f"{where}: zeta must be >= 1, got {out['zeta']}")
        return out

    type = "acsf"
    #: Training-configuration keys (``descriptor: {type: acsf, ...}``): the arguments of
    #: :meth:`standard`. Chosen on rMD17 ethanol (benchmarks/results/accuracy.md); G5s (ANI's
    #: angle shifts) over G5 from the side-by-side runs in benchmarks/results/rmd17_table_notes.md.
    config_defaults = {"r_c": 5.0, "n_radial": 16, "n_angular": 4, "angular": "G5s", "radial_grid": "shifted",
                       "r_min": 0.7, "cutoff_function": "cos", "n_angular_radial": 4, "angular_grid": "shifted",
                       "r_c_angular": None, "zetas": None, "n_theta_s": 8}

    @classmethod
    def from_config(cls, cfg: dict, elements) -> "SymmetryFunctions":
        """:meth:`standard` with the configuration's keys (see :attr:`config_defaults`)."""
        return cls.standard(list(elements), **{k: cfg[k] for k in cls.config_defaults})

    # ------------------------------------------------------------------ description
    @property
    def n_features(self) -> int:
        """Columns of G: the largest per-element function count."""
        return max(len(v) for v in self.functions.values())

    @property
    def n_features_per_element(self) -> Dict[str, int]:
        return {s: len(self.functions[s]) for s in self.elements}

    @property
    def cutoff(self) -> float:
        """Largest r_c of any function, Angstrom."""
        return max(f["r_c"] for fl in self.functions.values() for f in fl)

    def to_dict(self) -> dict:
        """The documented parameter form (JSON/YAML serialisable); inverse of :meth:`from_dict`."""
        return {"type": "acsf", "elements": list(self.elements), "cutoff_function": self.cutoff_function,
                "functions": copy.deepcopy(self.functions)}

    @classmethod
    def from_dict(cls, d: dict) -> "SymmetryFunctions":
        missing = {"elements", "functions"} - set(d)
        if missing:
            raise ValueError(f"symmetry-function parameters: missing key(s) {sorted(missing)}")
        if d.get("type", "acsf") != "acsf":
            raise ValueError(f"symmetry-function parameters: type {d.get('type')!r} is not 'acsf'")
        return cls(d["elements"], d["functions"], d.get("cutoff_function", "cos"))

    # ------------------------------------------------------------------ model-file records
    def descriptor_records(self) -> dict:
        """``descriptor.cutoff_function`` and ``descriptor.functions`` (n, 9): rows [type 2|4|5|6,
        centre, neighbour1, neighbour2 (-1 for G2), eta, r_s, r_c, lambda (theta_s in radians for
        G5s, type 6), zeta], element indices into ``species`` (docs/model_file.md)."""
        idx = {s: k for k, s in enumerate(self.elements)}
        rows = []
        for s in self.elements:
            for f in self.functions[s]:
                nb = [idx[e] for e in f["neighbors"]]
                rows.append([_TYPES[f["type"]], idx[s], nb[0], nb[1] if len(nb) > 1 else -1, f["eta"],
                             f.get("r_s", 0.0), f["r_c"], f["theta_s"] if f["type"] == "G5s" else f.get("lambda", 1.0),
                             f.get("zeta", 1.0)])
        return {"descriptor.cutoff_function": self.cutoff_function,
                "descriptor.functions": np.asarray(rows, dtype=np.float64).reshape(-1, 9)}

    @classmethod
    def from_records(cls, rec: dict, elements: List[str], where: str = "<model>") -> "SymmetryFunctions":
        """Inverse of :meth:`descriptor_records`. Raises ModelFileError naming ``where``."""
        from ..model_file import ModelFileError, get_record

        F = np.asarray(get_record(rec, "descriptor.functions", "f64", where), dtype=float)
        if F.ndim != 2 or F.shape[1] != 9:
            raise ModelFileError(f"{where}: descriptor.functions must have shape (n, 9)")
        ne = len(elements)
        funcs = {s: [] for s in elements}
        for r, row in enumerate(F):
            if not np.all(np.isfinite(row)) or np.any(row[:4] != np.round(row[:4])) or np.any(np.abs(row[:4]) >= 1e6):
                raise ModelFileError(f"{where}: descriptor.functions row {r}: type and element indices must be "
                                     f"integers: {row.tolist()}")
            t, c, n1, n2 = (int(v) for v in row[:4])
            if t not in _TYPE_NAMES or not (0 <= c < ne) or not (0 <= n1 < ne) or (t != 2 and not 0 <= n2 < ne):
                raise ModelFileError(f"{where}: invalid symmetry-function row {r}: {row.tolist()}")
            f = {"type": _TYPE_NAMES[t], "neighbors": [elements[n1]] + ([elements[n2]] if t != 2 else []),
                 "eta": float(row[4]), "r_s": float(row[5]), "r_c": float(row[6])}
            if t == 6:
                f["theta_s"], f["zeta"] = float(row[7]), float(row[8])
            elif t != 2:
                f["lambda"], f["zeta"] = float(row[7]), float(row[8])
            funcs[elements[c]].append(f)
        cf = get_record(rec, "descriptor.cutoff_function", "str", where)
        try:
            return cls(elements, funcs, cf)
        except (ValueError, TypeError) as exc:
            record = "descriptor.cutoff_function" if str(exc).startswith("cutoff_function") else "descriptor.functions"
            raise ModelFileError(f"{where}: record {record!r}: {exc}") from None

    def feature_labels(self, element) -> List[str]:
        """Human-readable label of each feature of ``element``, e.g. 'G4[H,O] eta=0.01 ...'."""
        sym = _element_symbol(to_atomic_number(element))
        out = []
        for f in self.functions[sym]:
            s = f"{f['type']}[{','.join(f['neighbors'])}] eta={f['eta']:g} r_s={f['r_s']:g} r_c={f['r_c']:g}"
            if f["type"] == "G5s":
                s += f" theta_s={f['theta_s']:g} zeta={f['zeta']:g}"
            elif f["type"] != "G2":
                s += f" lambda={f['lambda']:+g} zeta={f['zeta']:g}"
            out.append(s)
        return out

    def __repr__(self) -> str:
        counts = ", ".join(f"{s}: {n}" for s, n in self.n_features_per_element.items())
        return (f"SymmetryFunctions(elements={self.elements}, features={{{counts}}}, "
                f"r_c={self.cutoff:g} A, cutoff_function={self.cutoff_function!r})")

    # ------------------------------------------------------------------ generator
    @classmethod
    def standard(cls, elements: Sequence, r_c: float = 6.0, n_radial: int = 8, n_angular: int = 4,
                 r_min: float = 0.8, cutoff_function: str = "cos", angular: str = "G4",
                 radial_grid: str = "shifted", n_angular_radial: int = 1, angular_grid: str = "centered",
                 r_c_angular: Optional[float] = None, zetas: Optional[Sequence[float]] = None,
                 n_theta_s: int = 8) -> "SymmetryFunctions":
        """A standard element-resolved set, the same for every central element.

        Radial G2 for each neighbour element on ``n_radial`` grid points between ``r_min`` and
        ``r_c`` (Angstrom), following [I18]: ``radial_grid='shifted'`` places r_s on an even grid
        with eta = 1 / (2 dr^2) (dr the spacing); ``'centered'`` uses r_s = 0 and widths
        sigma_m on the grid, eta_m = 1 / (2 sigma_m^2).
        Angular (``angular`` = 'G4' or 'G5') for each unordered neighbour-element pair: zeta in
        ``zetas`` (default (1, 2, 4, 16)[:n_angular]; when given, n_angular is ignored) with
        lambda = +1 and -1; or (``angular='G5s'``, ANI's angle shifts [S17]) zeta in ``zetas``
        (default (32,), as ANI-1x) times ``n_theta_s`` shifts theta_s = (k + 1/2) pi / n_theta_s;
        on ``n_angular_radial`` radial
        channels with cutoff ``r_c_angular`` (default ``r_c``): ``angular_grid='centered'``
        uses r_s = 0 and widths sigma_m = linspace(r_min, r_c_angular, n_angular_radial + 1)[1:] / 2,
        eta_m = 1 / (2 sigma_m^2) (the default, n_angular_radial = 1, is the single
        eta = 1 / (2 (r_c/2)^2)); ``'shifted'`` places r_s on an even grid from r_min with
        eta = 1 / (2 dr^2), as for the radial functions (best with ``angular='G5'``).
        Feature order per element: radial (neighbour, grid point), then angular (pair, radial
        channel, zeta, lambda).

        Features per element: n_el * n_radial + n_el (n_el + 1) / 2 * 2 * n_zeta * n_angular_radial
        (n_zeta = len(zetas) or n_angular); with G5s, n_theta_s replaces the 2 (lambda = +-1).

        Raises ValueError for r_c <= 0, r_min outside (0, r_c), n_radial < 1, n_angular outside
        0..4, an unknown grid or angular type, n_angular_radial < 1, r_c_angular outside
        (r_min, r_c], zetas that are not distinct finite numbers >= 1, or n_theta_s < 1.
        """
        if not r_c > 0:
            raise ValueError(f"r_c must be positive, got {r_c}")
        if not 0 < r_min < r_c:
            raise ValueError(f"r_min must satisfy 0 < r_min < r_c, got {r_min}")
        if n_radial < 1 or n_angular < 0 or n_angular > 4:
            raise ValueError("n_radial must be >= 1 and 0 <= n_angular <= 4")
        if angular not in ("G4", "G5", "G5s"):
            raise ValueError(f"angular must be 'G4', 'G5' or 'G5s', got {angular!r}")
        if isinstance(n_theta_s, bool) or not isinstance(n_theta_s, (int, np.integer)) or n_theta_s < 1:
            raise ValueError(f"n_theta_s must be an integer >= 1, got {n_theta_s!r}")
        if n_angular_radial < 1:
            raise ValueError(f"n_angular_radial must be >= 1, got {n_angular_radial}")
        r_ca = r_c if r_c_angular is None else float(r_c_angular)
        if not r_min < r_ca <= r_c:
            raise ValueError(f"r_c_angular must satisfy r_min < r_c_angular <= r_c, got {r_c_angular}")
        syms = [_element_symbol(to_atomic_number(e, where="elements")) for e in elements]
        if radial_grid == "shifted":
            grid = np.linspace(r_min, r_c, n_radial, endpoint=False) if n_radial > 1 else np.array([0.0])
            dr = (r_c - r_min) / n_radial
            radial = [(1.0 / (2 * dr * dr), float(rs)) for rs in grid]
        elif radial_grid == "centered":
            widths = np.linspace(r_min, r_c, n_radial + 1)[1:] / 2.0
            radial = [(1.0 / (2 * w * w), 0.0) for w in widths]
        else:
            raise ValueError(f"radial_grid must be 'shifted' or 'centered', got {radial_grid!r}")
        if angular_grid == "centered":
            widths = np.linspace(r_min, r_ca, n_angular_radial + 1)[1:] / 2.0
            ang_radial = [(1.0 / (2 * w * w), 0.0) for w in widths]
        elif angular_grid == "shifted":
            dr = (r_ca - r_min) / n_angular_radial
            ang_radial = [(1.0 / (2 * dr * dr), float(rs))
                          for rs in np.linspace(r_min, r_ca, n_angular_radial, endpoint=False)]
        else:
            raise ValueError(f"angular_grid must be 'shifted' or 'centered', got {angular_grid!r}")
        if zetas is None:
            zetas = ((32.0,) if n_angular > 0 else ()) if angular == "G5s" else (1.0, 2.0, 4.0, 16.0)[:n_angular]
        else:
            if isinstance(zetas, (str, bytes)) or not all(isinstance(z, (int, float, np.integer, np.floating))
                                                          and not isinstance(z, bool) for z in zetas):
                raise ValueError(f"zetas must be a list of numbers >= 1, got {zetas!r}")
            zetas = tuple(float(z) for z in zetas)
            if not all(math.isfinite(z) and z >= 1 for z in zetas) or len(set(zetas)) != len(zetas):
                raise ValueError(f"zetas must be distinct finite numbers >= 1, got {list(zetas)}")
        funcs = {}
        for c in syms:
            fl = []
            for nb in syms:
                for eta, rs in radial:
                    fl.append({"type": "G2", "neighbors": [nb], "eta": eta, "r_s": rs, "r_c": r_c})
            for a in range(len(syms)):
                for b in range(a, len(syms)):
                    for eta_a, rs_a in ang_radial:
                        for z in zetas:
                            if angular == "G5s":
                                for k in range(n_theta_s):
                                    fl.append({"type": "G5s", "neighbors": [syms[a], syms[b]], "eta": eta_a,
                                               "theta_s": (k + 0.5) * math.pi / n_theta_s, "zeta": z,
                                               "r_c": r_ca, "r_s": rs_a})
                                continue
                            for lam in (1.0, -1.0):
                                fl.append({"type": angular, "neighbors": [syms[a], syms[b]], "eta": eta_a,
                                           "lambda": lam, "zeta": z, "r_c": r_ca, "r_s": rs_a})
            funcs[c] = fl
        return cls(syms, funcs, cutoff_function)
