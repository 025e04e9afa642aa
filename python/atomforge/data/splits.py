"""Reproducible train / validation / test splits of frame indices, saved as JSON."""
from __future__ import annotations

import json
import math
import numbers as _numbers
import os
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Sequence, Union

import numpy as np

from .._fileio import atomic_write_text

__all__ = ["split_indices", "save_split", "load_split"]

PathLike = Union[str, "os.PathLike[str]"]
_FORMAT = "atomforge-split"
_VERSION = 1


def _counts(n: int, sizes: Sequence, names: Sequence[str]) -> list:
    """Group sizes as integers summing to n (see :func:`split_indices`)."""
    kinds = []
    for name, s in zip(names, sizes):
        if s is None:
            kinds.append("rest")
        elif isinstance(s, (bool, np.bool_)):
            raise TypeError(f"size of {name!r} must be a count, a fraction or None, got {s!r}")
        elif isinstance(s, _numbers.Integral):
            if s < 0:
                raise ValueError(f"size of {name!r} must be >= 0, got {s}")
            kinds.append("count")
        elif isinstance(s, _numbers.Real):
            if not (math.isfinite(s) and 0.0 <= s <= 1.0):
                raise ValueError(f"fraction for {name!r} must lie in [0, 1], got {s}")
            kinds.append("fraction")
        else:
            raise TypeError(f"size of {name!r} must be a count, a fraction or None, got {type(s).__name__}")
    if kinds.count("rest") > 1:
        raise ValueError("at most one size may be None (the rest)")
    if "count" in kinds and "fraction" in kinds:
        raise ValueError(f"sizes {list(sizes)} mix counts (int) and fractions (float); use one kind "
                         f"(None for 'the rest' is allowed with either)")
    out = [0] * len(sizes)
    if "fraction" in kinds:
        fr = [float(s) if k == "fraction" else 0.0 for s, k in zip(sizes, kinds)]
        total = sum(fr)
        if total > 1.0 + 1e-9:
            raise ValueError(f"fractions sum to {total:g} > 1")
        if "rest" not in kinds and abs(total - 1.0) > 1e-9:
            raise ValueError(f"fractions sum to {total:g}, not 1: every frame must land in one group "
                             f"(give None as one size for 'the rest')")
        # largest-remainder rounding of the fraction groups to round(total * n) frames
        target = n if "rest" not in kinds else min(n, int(round(total * n)))
        raw = [f * n for f in fr]
        base = [int(math.floor(r)) for r in raw]
        order = sorted((i for i, k in enumerate(kinds) if k == "fraction"),
                       key=lambda i: (-(raw[i] - base[i]), i))
        for i in order[:max(0, target - sum(base))]:
            base[i] += 1
        out = base
    else:
        out = [int(s) if k == "count" else 0 for s, k in zip(sizes, kinds)]
        if sum(out) > n:
            raise ValueError(f"counts {[int(s) for s in sizes if s is not None]} sum to {sum(out)} > n = {n}")
        if "rest" not in kinds and sum(out) != n:
            raise ValueError(f"counts sum to {sum(out)}, not n = {n}: every frame must land in one group "
                             f"(give None as one size for 'the rest')")
    if "rest" in kinds:
        out[kinds.index("rest")] = n - sum(out)
    return out


def split_indices(n: int, sizes: Sequence, seed: int,
                  names: Sequence[str] = ("train", "valid", "test")) -> Dict[str, np.ndarray]:
    """Randomly partition ``range(n)`` into named groups, deterministically for ``seed``.

    Args:
        n: number of frames (>= 0).
        sizes: one size per name, all of one kind: fractions (floats in [0, 1] summing to 1,
            rounded to counts by the largest-remainder rule so that the counts sum to ``n``) or
            counts (ints summing to ``n``). At most one entry may be ``None``: that group gets
            every frame the others do not take (then the others may sum to less than 1 / n).
        seed: integer seed. The permutation is ``np.random.RandomState(seed).permutation(n)``,
            whose stream NumPy keeps fixed across versions, so a (n, sizes, seed) triple always
            gives the same split; still, save splits with :func:`save_split` for provenance.
        names: group names, ``("train", "valid", "test")`` by default.

    Returns:
        dict name -> sorted int64 array of indices. Groups are disjoint and together cover
        ``range(n)`` exactly; group sizes are as requested (possibly 0).

    Raises:
        ValueError: negative n or counts, fractions outside [0, 1] or not summing to 1, counts not
            summing to n (without a None), more than one None, a sizes/names length mismatch,
            duplicate names.
        TypeError: a size that is not an int, float or None; a non-integer n or seed.
    """
    if isinstance(n, (bool, np.bool_)) or not isinstance(n, _numbers.Integral):
        raise TypeError(f"n must be an integer, got {n!r}")
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, _numbers.Integral):
        raise TypeError(f"seed must be an integer, got {seed!r}")
    names = [str(x) for x in names]
    sizes = list(sizes)
    if len(sizes) != len(names):
        raise ValueError(f"{len(sizes)} sizes for {len(names)} names {names}")
    if len(set(names)) != len(names):
        raise ValueError(f"duplicate split names: {names}")
    counts = _counts(int(n), sizes, names)
    perm = np.random.RandomState(int(seed) % (2 ** 32)).permutation(int(n)).astype(np.int64)
    out: Dict[str, np.ndarray] = {}
    start = 0
    for name, c in zip(names, counts):
        out[name] = np.sort(perm[start:start + c])
        start += c
    return out


def save_split(path: PathLike, split: Mapping[str, Any], *, metadata: Optional[Mapping[str, Any]] = None) -> Path:
    """Save a split (name -> indices) as JSON, atomically (temp file in the same folder + os.replace).

    File content: ``{"format": "atomforge-split", "version": 1, "splits": {name: [int, ...]},
    "metadata": {...}}``. ``metadata`` (optional) must be JSON-serialisable, e.g. the seed,
    sizes and the :meth:`Dataset.sha256` of the data the indices refer to.

    Returns:
        the path written.

    Raises:
        ValueError: indices that are not non-negative integers, or groups that overlap.
        TypeError: metadata that JSON cannot encode.
    """
    path = Path(path)
    splits = _check_split(split, where="split")
    doc = {"format": _FORMAT, "version": _VERSION,
           "splits": {k: v.tolist() for k, v in splits.items()},
           "metadata": dict(metadata or {})}
    atomic_write_text(path, json.dumps(doc, indent=1) + "\n")
    return path


def load_split(path: PathLike) -> Dict[str, np.ndarray]:
    """Read a split written by :func:`save_split` (or a plain JSON object name -> list of ints).

    Returns:
        dict name -> int64 array, in file order.

    Raises:
        FileNotFoundError: no such file.
        ValueError: invalid JSON, a wrong structure, non-integer or negative indices, or
            overlapping groups (the message names the file).
    """
    path = Path(path)
    with open(path, "r", encoding="utf-8") as fh:
        try:
            doc = json.load(fh)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}: not valid JSON ({exc})") from None
    if isinstance(doc, dict) and "splits" in doc:
        if doc.get("format", _FORMAT) != _FORMAT:
            raise ValueError(f"{path}: format {doc.get('format')!r} is not {_FORMAT!r}")
        doc = doc["splits"]
    if not isinstance(doc, dict):
        raise ValueError(f"{path}: expected a JSON object name -> list of indices")
    return _check_split(doc, where=str(path))


def _check_split(split: Mapping[str, Any], where: str) -> Dict[str, np.ndarray]:
    out: Dict[str, np.ndarray] = {}
    seen: Dict[int, str] = {}
    for name, idx in split.items():
        a = np.asarray(idx)
        if a.size == 0:
            a = np.zeros(0, dtype=np.int64)
        if a.ndim != 1 or a.dtype.kind not in "iu":
            raise ValueError(f"{where}: group {name!r} must be a flat list of integers, got dtype {a.dtype} "
                             f"shape {a.shape}")
        a = a.astype(np.int64)
        if (a < 0).any():
            raise ValueError(f"{where}: group {name!r} has a negative index {int(a[a < 0][0])}")
        for v in a.tolist():
            if v in seen:
                if seen[v] == str(name):
                    raise ValueError(f"{where}: index {v} appears twice in group {seen[v]!r}")
                raise ValueError(f"{where}: index {v} is in both {seen[v]!r} and {str(name)!r}")
            seen[v] = str(name)
        out[str(name)] = a
    return out
