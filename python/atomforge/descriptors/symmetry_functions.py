"""Behler-Parrinello atom-centred symmetry functions (ACSF), evaluated by the compiled core.

References:
    [B11] J. Behler, J. Chem. Phys. 134, 074106 (2011): G2 (Eq. 6), G4 (Eq. 8), G5 (Eq. 9),
          cosine cutoff (Eq. 4).
    [B15] J. Behler, Int. J. Quantum Chem. 115, 1032 (2015): element-resolved functions.
    [S19] A. Singraber et al., J. Chem. Theory Comput. 15, 3075 (2019) (n2p2): polynomial and
          tanh cutoffs; each unordered neighbour pair counted once in G4/G5.
    [I18] G. Imbalzano et al., J. Chem. Phys. 148, 241730 (2018): radial grids used by
          :meth:`SymmetryFunctions.standard`.

Formulas (r_ij = |r_j - r_i|, fc the cutoff function, sums over neighbours within r_c)::

    G2_i = sum_{j in e1} exp(-eta (r_ij - r_s)^2) fc(r_ij)
    G4_i = 2^(1-zeta) sum_{{j,k}} (1 + lambda cos theta_ijk)^zeta
           exp(-eta [(r_ij-r_s)^2 + (r_ik-r_s)^2 + (r_jk-r_s)^2]) fc(r_ij) fc(r_ik) fc(r_jk)
    G5_i = 2^(1-zeta) sum_{{j,k}} (1 + lambda cos theta_ijk)^zeta
           exp(-eta [(r_ij-r_s)^2 + (r_ik-r_s)^2]) fc(r_ij) fc(r_ik)

where {j,k} runs over unordered pairs with one neighbour of element e1 and one of e2. Terms with
1 + lambda cos theta <= 0 are zero (as in n2p2).

Parameter form (the serialisable, documented form; units Angstrom and 1/Angstrom^2)::

    {
      "elements": ["H", "O"],               # element order = element index in the core
      "cutoff_function": "cos",             # cos | tanhu | tanh | poly1 | poly2 | poly3 | poly4
      "functions": {                        # per central element, in feature order
        "H": [
          {"type": "G2", "neighbors": ["O"], "eta": 0.5, "r_s": 0.0, "r_c": 6.0},
          {"type": "G4", "neighbors": ["H", "O"], "eta": 0.01, "lambda": -1, "zeta": 4,
           "r_c": 6.0, "r_s": 0.0},
          ...
        ],
        "O": [...]
      }
    }
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence

import numpy as np
from ase.data import chemical_symbols

from .. import _core
from .._inputs import Structure, structure, to_atomic_number

CUTOFF_FUNCTIONS = ("cos", "tanhu", "tanh", "poly1", "poly2", "poly3", "poly4")
_TYPES = {"G2": 2, "G4": 4, "G5": 5}
_ANGULAR_KEYS = {"type", "neighbors", "eta", "lambda", "zeta", "r_c", "r_s"}
_RADIAL_KEYS = {"type", "neighbors", "eta", "r_c", "r_s"}


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
    values: (E, F, 3) float64 dG[centre, f] / dr, in 1/Angstrom.

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


def _element_symbol(z: int) -> str:
    return chemical_symbols[z]


class SymmetryFunctions:
    """Element-resolved Behler-Parrinello symmetry functions G2, G4 and G5.

    Args:
        elements: element symbols or atomic numbers; their order is the element index.
        functions: mapping central element -> list of function dicts (see the module docstring).
            Units: eta in 1/Angstrom^2, r_s and r_c in Angstrom.
        cutoff_function: one of ``cos``, ``tanhu``, ``tanh``, ``poly1`` .. ``poly4``.

    Raises:
        ValueError: naming the element and function index for unknown keys, unknown elements,
            a missing parameter, eta < 0, r_c <= 0, r_s outside [0, r_c), lambda not +-1,
            zeta < 1, non-finite values, or an unknown cutoff function.

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
        rows = []
        for key, flist in functions.items():
            zc = to_atomic_number(key, where="functions")
            if zc not in self._index:
                raise ValueError(f"functions: central element {key!r} is not in elements {self.elements}")
            sym = _element_symbol(zc)
            for k, f in enumerate(flist):
                clean = self._check_function(f, f"functions[{sym!r}][{k}]")
                self.functions[sym].append(clean)
                nb = [self._index[to_atomic_number(e)] for e in clean["neighbors"]]
                rows.append((_TYPES[clean["type"]], self._index[zc], nb[0], nb[1] if len(nb) > 1 else -1,
                             clean["eta"], clean["r_s"], clean["r_c"], clean.get("lambda", 1.0),
                             clean.get("zeta", 1.0)))
        if not rows:
            raise ValueError("functions: no symmetry functions given")
        cols = list(zip(*rows))
        i32 = lambda v: np.asarray(v, dtype=np.int32)
        f64 = lambda v: np.asarray(v, dtype=np.float64)
        self._core = _core.SymmetryFunctions(
            len(zs), i32(cols[0]), i32(cols[1]), i32(cols[2]), i32(cols[3]), f64(cols[4]),
            f64(cols[5]), f64(cols[6]), f64(cols[7]), f64(cols[8]), cutoff_function)

    def _check_function(self, f, where: str) -> dict:
        if not isinstance(f, dict):
            raise TypeError(f"{where}: a function must be a dict, got {type(f).__name__}")
        t = f.get("type")
        if t not in _TYPES:
            raise ValueError(f"{where}: 'type' must be one of G2, G4, G5, got {t!r}")
        allowed = _RADIAL_KEYS if t == "G2" else _ANGULAR_KEYS
        unknown = set(f) - allowed
        if unknown:
            raise ValueError(f"{where}: unknown key(s) {sorted(unknown)} for {t} (allowed: {sorted(allowed)})")
        need = ["neighbors", "eta", "r_c"] + ([] if t == "G2" else ["lambda", "zeta"])
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
        for k in ("eta", "r_s", "r_c", "lambda", "zeta"):
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
        if out["eta"] < 0:
            raise ValueError(f"{where}: eta must be >= 0, got {out['eta']}")
        if not 0 <= out["r_s"] < out["r_c"]:
            raise ValueError(f"{where}: r_s must satisfy 0 <= r_s < r_c, got r_s={out['r_s']}")
        if t != "G2":
            if out["lambda"] not in (1.0, -1.0):
                raise ValueError(f"{where}: lambda must be +1 or -1, got {out['lambda']}")
            if out["zeta"] < 1:
                raise ValueError(f"{where}: zeta must be >= 1, got {out['zeta']}")
        return out

    # ------------------------------------------------------------------ description
    @property
    def n_features(self) -> int:
        """Columns of G: the largest per-element function count."""
        return int(self._core.n_features)

    @property
    def n_features_per_element(self) -> Dict[str, int]:
        return {s: len(self.functions[s]) for s in self.elements}

    @property
    def cutoff(self) -> float:
        """Largest r_c of any function, Angstrom."""
        return float(self._core.max_cutoff)

    def to_dict(self) -> dict:
        """The documented parameter form (JSON/YAML serialisable); inverse of :meth:`from_dict`."""
        return {"elements": list(self.elements), "cutoff_function": self.cutoff_function,
                "functions": copy.deepcopy(self.functions)}

    @classmethod
    def from_dict(cls, d: dict) -> "SymmetryFunctions":
        missing = {"elements", "functions"} - set(d)
        if missing:
            raise ValueError(f"symmetry-function parameters: missing key(s) {sorted(missing)}")
        return cls(d["elements"], d["functions"], d.get("cutoff_function", "cos"))

    def feature_labels(self, element) -> List[str]:
        """Human-readable label of each feature of ``element``, e.g. 'G4[H,O] eta=0.01 ...'."""
        sym = _element_symbol(to_atomic_number(element))
        out = []
        for f in self.functions[sym]:
            s = f"{f['type']}[{','.join(f['neighbors'])}] eta={f['eta']:g} r_s={f['r_s']:g} r_c={f['r_c']:g}"
            if f["type"] != "G2":
                s += f" lambda={f['lambda']:+g} zeta={f['zeta']:g}"
            out.append(s)
        return out

    def __repr__(self) -> str:
        counts = ", ".join(f"{s}: {n}" for s, n in self.n_features_per_element.items())
        return (f"SymmetryFunctions(elements={self.elements}, features={{{counts}}}, "
                f"r_c={self.cutoff:g} A, cutoff_function={self.cutoff_function!r})")

    # ------------------------------------------------------------------ evaluation
    def species_indices(self, numbers: np.ndarray) -> np.ndarray:
        """Element index (int32) of each atomic number; ValueError naming the first unknown atom."""
        lut = np.full(max(max(self._index), int(numbers.max(initial=0))) + 1, -1, dtype=np.int32)
        for z, i in self._index.items():
            lut[z] = i
        idx = lut[numbers]
        if (idx < 0).any():
            a = int(np.argmax(idx < 0))
            raise ValueError(f"atom {a} is {_element_symbol(int(numbers[a]))}, which this descriptor does not "
                             f"cover (elements: {self.elements})")
        return idx

    def neighbor_list(self, positions, numbers=None, cell=None, pbc=None):
        """Build the core's neighbour list (with periodic images) for this descriptor's cutoff.

        Returns the core ``NeighborList`` (reusable in :meth:`compute`, :meth:`vjp`,
        :meth:`jacobian` while positions do not change). Raises ValueError/TypeError for bad
        input (see :func:`atomforge._inputs.structure`) and degenerate cells.
        """
        s = positions if isinstance(positions, Structure) else structure(positions, numbers, cell, pbc)
        species = self.species_indices(s.numbers)
        nl = _core.build_neighbor_list(s.positions, s.cell, tuple(bool(b) for b in s.pbc), self.cutoff)
        nl.set_species(species)
        return nl

    def compute(self, positions, numbers=None, cell=None, pbc=None, *, neighbor_list=None,
                threads: int = 0) -> np.ndarray:
        """Symmetry functions G, float64 array (N, n_features), dimensionless.

        Args:
            positions: (N, 3) Angstrom, or an ase.Atoms (then numbers/cell/pbc come from it).
            numbers: (N,) atomic numbers or symbols.
            cell: (3, 3) lattice vectors as rows, Angstrom; None for a molecule.
            pbc: periodicity per lattice vector; default: periodic if a cell is given.
            neighbor_list: a list from :meth:`neighbor_list` to reuse.
            threads: OpenMP threads (0: the OpenMP default).
        """
        nl = neighbor_list if neighbor_list is not None else self.neighbor_list(positions, numbers, cell, pbc)
        return self._core.compute(nl, threads)

    def vjp(self, dE_dG, positions, numbers=None, cell=None, pbc=None, *, neighbor_list=None,
            per_atom_virial: bool = False, threads: int = 0) -> VJPResult:
        """Forces and virial of an energy E(G) given dE_dG (N, n_features) in eV.

        Returns :class:`VJPResult`: forces (N, 3) eV/Angstrom = -sum_{i,f} dE/dG_if dG_if/dr,
        virial (3, 3) eV. This is what MD needs: one pass, no Jacobian stored.
        Raises ValueError if dE_dG has the wrong shape or non-finite entries.
        """
        nl = neighbor_list if neighbor_list is not None else self.neighbor_list(positions, numbers, cell, pbc)
        w = np.asarray(dE_dG, dtype=np.float64)
        if w.shape != (nl.n_local, self.n_features):
            raise ValueError(f"dE_dG must have shape ({nl.n_local}, {self.n_features}), got {w.shape}")
        w = np.ascontiguousarray(w)
        f, vir, pav = self._core.vjp(nl, w, per_atom_virial, threads)
        forces = nl.fold(f)
        if pav is not None:
            folded = np.zeros((nl.n_local, 3, 3))
            np.add.at(folded, np.asarray(nl.owner), pav)
            pav = folded
        return VJPResult(forces, vir, pav)

    def jacobian(self, positions, numbers=None, cell=None, pbc=None, *, neighbor_list=None,
                 threads: int = 0) -> DescriptorJacobian:
        """G and the sparse Jacobian dG/dr for training (layout: :class:`DescriptorJacobian`)."""
        nl = neighbor_list if neighbor_list is not None else self.neighbor_list(positions, numbers, cell, pbc)
        d = self._core.jacobian(nl, threads)
        offsets = d["entry_offsets"]
        centre = np.repeat(np.arange(nl.n_local, dtype=np.int64), np.diff(offsets))
        atom = np.asarray(nl.owner)[d["position"]]
        return DescriptorJacobian(d["G"], offsets, atom, centre, d["displacement"], d["values"])

    # ------------------------------------------------------------------ generator
    @classmethod
    def standard(cls, elements: Sequence, r_c: float = 6.0, n_radial: int = 8, n_angular: int = 4,
                 r_min: float = 0.8, cutoff_function: str = "cos", angular: str = "G4",
                 radial_grid: str = "shifted", n_angular_radial: int = 1, angular_grid: str = "centered",
                 r_c_angular: Optional[float] = None) -> "SymmetryFunctions":
        """A standard element-resolved set, the same for every central element.

        Radial G2 for each neighbour element on ``n_radial`` grid points between ``r_min`` and
        ``r_c`` (Angstrom), following [I18]: ``radial_grid='shifted'`` places r_s on an even grid
        with eta = 1 / (2 dr^2) (dr the spacing); ``'centered'`` uses r_s = 0 and widths
        sigma_m on the grid, eta_m = 1 / (2 sigma_m^2).
        Angular (``angular`` = 'G4' or 'G5') for each unordered neighbour-element pair: zeta in
        (1, 2, 4, 16)[:n_angular] with lambda = +1 and -1, on ``n_angular_radial`` radial
        channels with cutoff ``r_c_angular`` (default ``r_c``): ``angular_grid='centered'``
        uses r_s = 0 and widths sigma_m = linspace(r_min, r_c_angular, n_angular_radial + 1)[1:] / 2,
        eta_m = 1 / (2 sigma_m^2) (the default, n_angular_radial = 1, is the single
        eta = 1 / (2 (r_c/2)^2)); ``'shifted'`` places r_s on an even grid from r_min with
        eta = 1 / (2 dr^2), as for the radial functions (best with ``angular='G5'``).
        Feature order per element: radial (neighbour, grid point), then angular (pair, radial
        channel, zeta, lambda).

        Features per element: n_el * n_radial + n_el (n_el + 1) / 2 * 2 * n_angular * n_angular_radial.
        """
        if not r_c > 0:
            raise ValueError(f"r_c must be positive, got {r_c}")
        if not 0 < r_min < r_c:
            raise ValueError(f"r_min must satisfy 0 < r_min < r_c, got {r_min}")
        if n_radial < 1 or n_angular < 0 or n_angular > 4:
            raise ValueError("n_radial must be >= 1 and 0 <= n_angular <= 4")
        if angular not in ("G4", "G5"):
            raise ValueError(f"angular must be 'G4' or 'G5', got {angular!r}")
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
        zetas = (1.0, 2.0, 4.0, 16.0)[:n_angular]
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
                            for lam in (1.0, -1.0):
                                fl.append({"type": angular, "neighbors": [syms[a], syms[b]], "eta": eta_a,
                                           "lambda": lam, "zeta": z, "r_c": r_ca, "r_s": rs_a})
            funcs[c] = fl
        return cls(syms, funcs, cutoff_function)
