"""Gaussian multipole (GMP) descriptors, evaluated by the compiled core (type ``"gmp"``).

References:
    [LM22] X. Lei, A. J. Medford, J. Phys. Chem. Lett. 13, 7911 (2022), arXiv 2102.02390:
           GMP featurization (Eqs. 5-9).
    [LM19] X. Lei, A. J. Medford, Phys. Rev. Materials 3, 063801 (2019): Maxwell-Cartesian
           spherical harmonics (MCSH).

Every atom carries a pseudo-density, a sum of Gaussians fitted per element
(rho_e(r) = sum_k c_k exp(-alpha_k r^2); default table: :func:`default_densities`). The
environment density of atom i sums the densities of all atoms within r_c, periodic images and
atom i itself included. Probes of order n and width sigma are normalised Gaussians times MCSH in
solid form, P(r) = (2 pi sigma^2)^(-3/2) exp(-r^2 / 2 sigma^2) S_{n,c}(r), with
S_{n,c} = (2n-1)!! x (harmonic projection of x^a y^b z^c), a + b + c = n (S_1 = x, y, z;
S_2 = 3x^2 - r^2, 3xy, ...; S_3 = 15x^3 - 9x r^2, ...). The moments are the overlaps of probe and
density; because S is harmonic they have a closed form per neighbour (cpp/src/descriptors/gmp/
gmp.hpp). The feature of order n and width sigma is the norm of the traceless moment tensor,

    G_{n,sigma}(i) = sqrt( sum_{a+b+c=n} n!/(a! b! c!) mu_{n,sigma,(a,b,c)}(i)^2 )

(``square=True``: without the square root), invariant under rotation, translation, permutation
and periodic images. Columns are ordered by order, then width: ``labels[f] = (order, sigma)``.

Element-agnostic: the features of every element are the same functions of the environment, and
an element the training data never had is described as soon as its density is in the table.

Density channels (an atomforge option; the published GMP is ``channels="total"``, the default of
this class; training configurations default to ``"element_pairs"``, the more accurate choice on
every rMD17 molecule, benchmarks/results/rmd17_table.md):
a channel is a set of elements, and its features are those of the partial density of its
elements only. ``"elements"``: one channel per element (neighbour elements resolved, as ACSF
does); ``"element_pairs"``: those plus one channel per pair of elements, whose features add the
cross terms mu_a . mu_b through |mu_a + mu_b|^2 = |mu_a|^2 + |mu_b|^2 + 2 mu_a . mu_b. Both
multiply the feature count (n_elements, n_elements (n_elements + 1) / 2) and give up the
element-agnostic property: an element outside the channels cannot be described.

Cutoff: each neighbour's contribution is multiplied by a smooth fc(r_ij / r_c) (default
``"poly2"``, C2-continuous, so that MD conserves energy). ``cutoff_function=None`` gives the
untruncated definition: every pair inside r_c counted in full, as the public reference
implementation (GMP-featurizer) does with a large r_c. That implementation truncates each
Gaussian at its own hard radius instead, so its features jump when an atom crosses a radius:
fine for fitting, not for MD (docs/descriptors.md).
"""
from __future__ import annotations

import json
import math
from functools import lru_cache
from importlib import resources
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from ase.data import atomic_numbers, chemical_symbols

from .base import CUTOFF_FUNCTIONS, Descriptor, element_symbols, register

#: Largest order the core supports.
MAX_ORDER = 8
#: Largest cutoff radius the core accepts (Angstrom), as in cpp/src/descriptors/common.hpp.
MAX_CUTOFF = 25.0


@lru_cache(maxsize=1)
def _table() -> dict:
    text = resources.files("atomforge.descriptors").joinpath("data/gmp_pseudodensities.json").read_text()
    return json.loads(text)


#: Keys of the two fits in the table file: coefficients of either sign (the default; relative L2
#: error of 4 pi r^2 rho below 0.6 % for every element) and positive coefficients only (4-26 %:
#: positive Gaussians centred on the nucleus cannot make the hole valence densities have there).
TABLES = {"signed": "elements_signed", "positive": "elements"}


def default_densities(kind: str = "signed") -> Dict[str, List[Tuple[float, float]]]:
    """The built-in pseudo-density table: element symbol -> [(c_k, alpha_k)], c in e/Angstrom^3,
    alpha in 1/Angstrom^2, normalised to the valence electrons of the GTH-PBE pseudopotential.

    Source: free-atom, spherically averaged, spin-polarised PBE valence densities (PySCF, GTH-PBE
    pseudopotentials, DZVP-MOLOPT-SR-GTH basis) fitted by Gaussians; ``kind='signed'`` (default)
    allows coefficients of either sign, ``'positive'`` only positive ones. Provenance and fit
    errors: :func:`density_table_info`; ``tools/fit_gmp_densities.py`` regenerates the table.
    Covers H-Xe, Cs, Ba, Hf-Rn. Raises ValueError for an unknown ``kind``.
    """
    if kind not in TABLES:
        raise ValueError(f"density table kind must be one of {sorted(TABLES)}, got {kind!r}")
    return {el: [tuple(map(float, g)) for g in gs] for el, gs in _table()[TABLES[kind]].items()}


def density_table_info() -> dict:
    """Provenance of the built-in table (source, method, units, fit quality)."""
    return {k: v for k, v in _table().items() if k not in TABLES.values()}


@register
class GaussianMultipoles(Descriptor):
    """Gaussian multipole descriptors (type ``"gmp"``).

    Args:
        orders: MCSH orders, each in 0..8 (default 0-6); distinct.
        sigmas: probe widths in Angstrom, positive and distinct (default 0.2, 0.4, ..., 2.0).
        r_c: cutoff radius in Angstrom, in (0, 25].
        cutoff_function: a smooth cutoff (one of ``CUTOFF_FUNCTIONS``) or None (untruncated:
            every pair inside r_c in full).
        square: features without the square root (Q instead of sqrt(Q)).
        elements: the elements to describe (symbols or atomic numbers; their order is the element
            index). Default: every element of the density table.
        densities: element -> [(c, alpha)] overriding (or extending) the built-in table.
        density_table: which built-in fit to start from: ``"signed"`` (default) or
            ``"positive"`` (see :func:`default_densities`).
        channels: the density channels: ``"total"`` (default: the published GMP, one channel of
            all elements), ``"elements"``, ``"element_pairs"`` (see the module docstring), or an
            explicit list of element lists, e.g. ``[["C"], ["O"], ["C", "O"]]``. Columns are
            ordered channel, order, width.

    Raises:
        ValueError: naming the argument for orders outside 0..8 or repeated, non-positive or
            repeated sigmas, r_c outside (0, 25], an unknown cutoff function, an element without
            a density, a density with non-finite coefficients or non-positive exponents, an
            unknown channel mode, or channels that are empty, repeated, name an element not
            described, or leave an element out.
    """

    type = "gmp"
    #: Training-configuration keys (``descriptor: {type: gmp, ...}``). ``elements``: elements to
    #: cover besides those of the training data (a shared network can evaluate them; only with
    #: ``channels: total``, see check_training_elements).
    #: Orders 0-8 x 10 widths 0.2-2.0 A (90 features per channel) from the rMD17 table
    #: (benchmarks/results/rmd17_table.md, notes of 2026-12-03): against orders 0-6 they lowered the
    #: test force error in most trainings and brought GMP to or below ACSF on more molecules; orders 0-6
    #: x 10 widths had come from the rMD17 ethanol study (rmd17_table_notes.md: 33.3 meV/A against 40.6
    #: for orders 0-5 x 8 widths, 55.2 for 0-3 x 10 and 68.7 for 0-3 x 5, the first default). Channels
    #: ``element_pairs`` (null or ``total``: the published GMP, one density) from the rMD17 table
    #: (benchmarks/results/rmd17_table.md): force errors 1.6-3.1x (per-element networks) and
    #: 1.9-4.1x (shared) below one density's on every molecule; the cost is n_e (n_e + 1) / 2 times
    #: the features, and the element-agnostic property (new elements need ``channels: total``).
    #: ``square: true`` (Q, the squared norm, instead of the published sqrt(Q)) from the rMD17 table:
    #: with element-pair channels it lowered the force error in 11 of 12 trainings (ethanol 13.6 ->
    #: 12.7 meV/A per-element, 14.4 -> 13.2 shared; benchmarks/results/rmd17_table_notes.md).
    config_defaults = {"r_c": 6.0, "orders": [0, 1, 2, 3, 4, 5, 6, 7, 8],
                       "sigmas": [0.2, 0.4, 0.6, 0.8, 1.0, 1.2, 1.4, 1.6, 1.8, 2.0],
                       "cutoff_function": "poly2", "square": True, "elements": None, "density_table": "signed",
                       "channels": "element_pairs"}

    @classmethod
    def from_config(cls, cfg: dict, elements) -> "GaussianMultipoles":
        """The descriptor for the data's ``elements`` plus ``cfg['elements']``, sorted by atomic
        number (see :attr:`config_defaults`)."""
        extra = cfg.get("elements") or []
        if isinstance(extra, str):
            extra = [extra]
        syms = sorted(set(element_symbols(list(elements))) | set(element_symbols(extra, "descriptor.elements"))
                      if extra else set(element_symbols(list(elements))), key=lambda s: atomic_numbers[s])
        cf = cfg["cutoff_function"]
        if not isinstance(cfg["square"], bool):  # the config check lets null through to the owner
            raise ValueError(f"descriptor.square: {cfg['square']!r} is not true or false (true: features Q, "
                             f"the training default; false: sqrt(Q), the published GMP)")
        return cls(orders=cfg["orders"], sigmas=cfg["sigmas"], r_c=cfg["r_c"],
                   cutoff_function=None if cf in (None, "none") else cf, square=cfg["square"], elements=syms,
                   density_table=cfg.get("density_table", "signed"),
                   channels="total" if cfg.get("channels") is None else cfg["channels"])

    def check_training_elements(self, data_elements) -> None:
        """With density channels, every described element must occur in the training data: the
        channels of an element the data lacks are zero in every training frame, so the network
        never learns what they mean and its output for that element would be an arbitrary
        extrapolation. Raises ValueError naming those elements; the published GMP
        (``channels="total"``) accepts them (element-agnostic transfer)."""
        if self.is_total:
            return
        have = set(element_symbols(list(data_elements)))
        missing = [e for e in self.elements if e not in have]
        if missing:
            raise ValueError(f"descriptor.elements adds {missing}, which the training data does not have: with "
                             f"density channels ({self.channels}) their channels are empty in every training frame, "
                             f"so the model could not describe them; set descriptor.channels: total (one density: "
                             f"the element-agnostic GMP) to describe elements absent from the training data")

    def __init__(self, orders: Sequence[int] = (0, 1, 2, 3, 4, 5, 6),
                 sigmas: Sequence[float] = (0.2, 0.4, 0.6, 0.8, 1.0, 1.2, 1.4, 1.6, 1.8, 2.0),
                 r_c: float = 6.0, cutoff_function: Optional[str] = "poly2", square: bool = False,
                 elements: Optional[Sequence] = None, densities: Optional[dict] = None,
                 density_table: str = "signed", channels="total"):
        try:
            self.orders = [int(o) for o in orders]
        except (TypeError, ValueError):
            raise ValueError(f"orders: expected a list of integers, got {orders!r}") from None
        if not self.orders or any(not 0 <= o <= MAX_ORDER for o in self.orders) or \
                any(float(o) != float(v) for o, v in zip(self.orders, orders)):
            raise ValueError(f"orders: each must be an integer in 0..{MAX_ORDER}, got {list(orders)}")
        if len(set(self.orders)) != len(self.orders):
            raise ValueError(f"orders: repeated entries in {self.orders}")
        try:
            self.sigmas = [float(s) for s in sigmas]
        except (TypeError, ValueError):
            raise ValueError(f"sigmas: expected a list of numbers, got {sigmas!r}") from None
        if not self.sigmas or any(not (math.isfinite(s) and s > 0) for s in self.sigmas):
            raise ValueError(f"sigmas: each must be positive and finite (Angstrom), got {self.sigmas}")
        if len(set(self.sigmas)) != len(self.sigmas):
            raise ValueError(f"sigmas: repeated entries in {self.sigmas}")
        try:
            self.r_c = float(r_c)
        except (TypeError, ValueError):
            raise ValueError(f"r_c: expected a number, got {r_c!r}") from None
        if not (math.isfinite(self.r_c) and 0 < self.r_c <= MAX_CUTOFF):
            raise ValueError(f"r_c: must be in (0, {MAX_CUTOFF}] Angstrom, got {r_c}")
        if cutoff_function is not None and cutoff_function not in CUTOFF_FUNCTIONS:
            raise ValueError(f"cutoff_function: unknown {cutoff_function!r}; use None or one of {CUTOFF_FUNCTIONS}")
        self.cutoff_function = cutoff_function
        self.square = bool(square)
        table = dict(default_densities(density_table)) if densities is None or elements is None or \
            not set(element_symbols(elements)) <= set(_norm_densities(densities)) else {}
        if densities is not None:
            table.update(_norm_densities(densities))
        if elements is None:
            elements = sorted(table, key=lambda s: atomic_numbers[s])
        self.elements = element_symbols(elements)
        missing = [e for e in self.elements if e not in table]
        if missing:
            raise ValueError(f"elements: no pseudo-density for {missing} (the table covers "
                             f"{', '.join(sorted(table, key=lambda s: atomic_numbers[s]))}; pass densities=...)")
        self.densities = {e: [(float(c), float(a)) for c, a in table[e]] for e in self.elements}
        for e, gs in self.densities.items():
            if not gs or any(not math.isfinite(c) or not (math.isfinite(a) and a > 0) for c, a in gs):
                raise ValueError(f"densities[{e!r}]: Gaussians need finite coefficients and positive exponents")
        self.channels = _channels(channels, self.elements)

    # ------------------------------------------------------------------ description
    @property
    def is_total(self) -> bool:
        """True for the published GMP: one channel holding every element."""
        return len(self.channels) == 1 and len(self.channels[0]) == len(self.elements)

    @property
    def labels(self) -> list:
        """(order, sigma) of each column; (channel elements, order, sigma) with channels."""
        if self.is_total:
            return [(o, s) for o in self.orders for s in self.sigmas]
        return [(tuple(h), o, s) for h in self.channels for o in self.orders for s in self.sigmas]

    @property
    def n_features(self) -> int:
        return len(self.channels) * len(self.orders) * len(self.sigmas)

    @property
    def n_features_per_element(self) -> Dict[str, int]:
        return {e: self.n_features for e in self.elements}

    @property
    def cutoff(self) -> float:
        return self.r_c

    def feature_labels(self, element=None) -> List[str]:
        if self.is_total:
            return [f"GMP order={o} sigma={s:g}" for o, s in self.labels]
        return [f"GMP channel={'+'.join(h)} order={o} sigma={s:g}" for h, o, s in self.labels]

    def __repr__(self) -> str:
        el = self.elements if len(self.elements) <= 8 else f"{len(self.elements)} elements"
        return (f"GaussianMultipoles(orders={self.orders}, sigmas={self.sigmas}, r_c={self.r_c:g} A, "
                f"cutoff_function={self.cutoff_function!r}, square={self.square}, elements={el}, "
                + ("" if self.is_total else f"channels={self.channels}, ") + f"features={self.n_features})")

    def to_dict(self) -> dict:
        return {"type": "gmp", "elements": list(self.elements), "orders": list(self.orders),
                "sigmas": list(self.sigmas), "r_c": self.r_c, "cutoff_function": self.cutoff_function,
                "square": self.square, "densities": {e: [list(g) for g in gs] for e, gs in self.densities.items()},
                "channels": "total" if self.is_total else [list(h) for h in self.channels]}

    @classmethod
    def from_dict(cls, d: dict) -> "GaussianMultipoles":
        if d.get("type", "gmp") != "gmp":
            raise ValueError(f"GMP parameters: type {d.get('type')!r} is not 'gmp'")
        keys = ("orders", "sigmas", "r_c", "cutoff_function", "square", "elements", "densities", "channels")
        unknown = set(d) - {"type", *keys}
        if unknown:
            raise ValueError(f"GMP parameters: unknown key(s) {sorted(unknown)}")
        kw = {k: d[k] for k in keys if k in d}
        return cls(**kw)

    # ------------------------------------------------------------------ model-file records
    def descriptor_records(self) -> dict:
        """``descriptor.orders``, ``.sigmas``, ``.r_c``, ``.cutoff_function`` ("none" when
        untruncated), ``.square``, ``.density.counts`` and ``.density.gaussians`` (rows [c, alpha]
        in element order): the model file carries the densities it was trained with; with density
        channels also ``descriptor.channels`` (n_channels, n_elements), 1 where the element belongs
        to the channel."""
        rows = [g for e in self.elements for g in self.densities[e]]
        rec = {} if self.is_total else {"descriptor.channels": np.asarray(
            [[int(e in h) for e in self.elements] for h in self.channels], dtype=np.int64)}
        return rec | {"descriptor.orders": np.asarray(self.orders, dtype=np.int64),
                "descriptor.sigmas": np.asarray(self.sigmas, dtype=np.float64),
                "descriptor.r_c": float(self.r_c),
                "descriptor.cutoff_function": self.cutoff_function or "none",
                "descriptor.square": np.int64(1 if self.square else 0),
                "descriptor.density.counts": np.asarray([len(self.densities[e]) for e in self.elements], dtype=np.int64),
                "descriptor.density.gaussians": np.asarray(rows, dtype=np.float64).reshape(-1, 2)}

    @classmethod
    def from_records(cls, rec: dict, elements: List[str], where: str = "<model>") -> "GaussianMultipoles":
        from ..model_file import ModelFileError, get_record, get_scalar, get_vector

        def get(name, kind="f64"):
            return get_record(rec, name, kind, where)

        counts = get_vector(rec, "descriptor.density.counts", "i64", where)
        gauss = np.asarray(get("descriptor.density.gaussians"), dtype=float)
        if counts.shape != (len(elements),) or (counts < 1).any() or (counts > 64).any() or gauss.ndim != 2 or \
                gauss.shape[1] != 2 or counts.sum() != len(gauss):
            raise ModelFileError(f"{where}: descriptor.density.counts / .gaussians do not match the species "
                                 f"(one count of 1 to 64 Gaussians per element, rows (c, alpha) summing to them)")
        orders = get_vector(rec, "descriptor.orders", "i64", where)
        sigmas = get_vector(rec, "descriptor.sigmas", "f64", where)
        if orders.size > 64 or sigmas.size > 256:
            raise ModelFileError(f"{where}: descriptor.orders / descriptor.sigmas: too many entries")
        dens, start = {}, 0
        for e, n in zip(elements, counts):
            dens[e] = [tuple(g) for g in gauss[start:start + n]]
            start += n
        cf = get("descriptor.cutoff_function", "str")
        sq = get_scalar(rec, "descriptor.square", "i64", where)
        if sq not in (0, 1):
            raise ModelFileError(f"{where}: descriptor.square must be 0 or 1")
        r_c = get_scalar(rec, "descriptor.r_c", "f64", where)
        channels = "total"
        if "descriptor.channels" in rec:
            ch = np.asarray(get("descriptor.channels", "i64"))
            if ch.ndim != 2 or ch.shape[1] != len(elements) or not 1 <= len(ch) <= 256 or not np.isin(ch, (0, 1)).all():
                raise ModelFileError(f"{where}: descriptor.channels must be (n_channels, n_elements) of 0 and 1 "
                                     f"with 1 to 256 channels")
            channels = [[e for e, m in zip(elements, row) if m] for row in ch]
        try:
            return cls(orders=orders.tolist(), sigmas=sigmas.tolist(), r_c=r_c,
                       cutoff_function=None if cf == "none" else cf, square=bool(sq), elements=elements,
                       densities=dens, channels=channels)
        except (ValueError, TypeError) as exc:
            raise ModelFileError(f"{where}: {exc}") from None


def _norm_densities(densities: dict) -> Dict[str, List[Tuple[float, float]]]:
    if not isinstance(densities, dict):
        raise ValueError("densities: expected a mapping element -> [(c, alpha), ...]")
    out = {}
    for key, gs in densities.items():
        sym = element_symbols([key], where="densities")[0]
        try:
            out[sym] = [(float(c), float(a)) for c, a in gs]
        except (TypeError, ValueError):
            raise ValueError(f"densities[{key!r}]: expected a list of (coefficient, exponent) pairs") from None
    return out


#: Named channel layouts (see the module docstring).
CHANNEL_MODES = ("total", "elements", "element_pairs")


def _channels(channels, elements: List[str]) -> List[List[str]]:
    """The density channels as lists of element symbols in element order; raises ValueError
    naming the problem."""
    if isinstance(channels, str):
        if channels == "total":
            return [list(elements)]
        if channels == "elements":
            return [[e] for e in elements]
        if channels == "element_pairs":
            return [[e] for e in elements] + [[a, b] for k, a in enumerate(elements) for b in elements[k + 1:]]
        raise ValueError(f"channels: unknown mode {channels!r}; use one of {CHANNEL_MODES} or a list of element lists")
    try:
        raw = [[h] if isinstance(h, (str, int, np.integer)) else list(h) for h in channels]
    except TypeError:
        raise ValueError(f"channels: expected a mode or a list of element lists, got {channels!r}") from None
    if not 1 <= len(raw) <= 256:
        raise ValueError(f"channels: 1 to 256 channels are needed, got {len(raw)}")
    out = []
    for k, h in enumerate(raw):
        syms = element_symbols(h, where=f"channels[{k}]")  # refuses an empty channel and repeats
        unknown = [e for e in syms if e not in elements]
        if unknown:
            raise ValueError(f"channels[{k}]: {unknown} not among the described elements {list(elements)}")
        ordered = [e for e in elements if e in syms]
        if ordered in out:
            raise ValueError(f"channels[{k}]: repeats channel {out.index(ordered)} ({ordered})")
        out.append(ordered)
    left = [e for e in elements if not any(e in h for h in out)]
    if left:
        raise ValueError(f"channels: {left} in no channel (their atoms would be ignored); add them to a channel")
    return out
