"""sGDML model parameters, their records in the atomforge model file, and NumPy helpers.

Records (model_type ``sgdml``, eV / Angstrom; specification: docs/sgdml.md)::

    species                 int64 (n_el)     sorted atomic numbers of the molecule's elements
    sgdml.numbers           int64 (N)        atomic numbers in the training molecule's atom order
    sgdml.perms             int64 (S, N)     recovered permutations (identity first)
    sgdml.sigma             float64          Matern-5/2 length scale (1/Angstrom, descriptor units)
    sgdml.lambda            float64          regularisation used in training
    sgdml.std               float64          label scale, eV/Angstrom
    sgdml.c                 float64          integration constant, eV
    sgdml.R_desc            float64 (M, d)   training descriptors (inverse distances)
    sgdml.R_d_desc_alpha    float64 (M, d)   J_i alpha_i
    sgdml.cutoff            float64          neighbour-list range the Python/engine side uses (Angstrom)
    sgdml.alphas_F          float64 (M, 3N)  optional: the solution alpha (for export)
"""
from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field
from typing import Dict, Optional

import numpy as np

from ..model_file import (ModelFileError, check_header, check_species, get_record, get_scalar, get_vector,
                          read_records, write_records)


#: Largest ``sgdml.cutoff`` (Angstrom) and permutation index table (entries) a model file may
#: ask for: the C++ reader's kMaxSGDMLCutoff and kMaxSGDMLPermEntries (cpp/src/models/sgdml/sgdml.hpp).
MAX_CUTOFF = 100.0
MAX_PERM_ENTRIES = 1 << 27


def descriptor_size(n_atoms: int) -> int:
    return n_atoms * (n_atoms - 1) // 2


def tril_pairs(n_atoms: int):
    """Atom pairs (a, b), a > b, of descriptor entries in NumPy tril_indices(N, -1) order."""
    return np.tril_indices(n_atoms, k=-1)


def descriptors(R: np.ndarray, threads: int = 0):
    """Inverse-distance descriptors X (B, d), 1/Angstrom, and pair Jacobians jac (B, d, 3) =
    dx_m/dr_a (dx_m/dr_b = -jac), 1/Angstrom^2, of configurations R (B, N, 3) Angstrom (a single
    (N, 3) configuration is treated as B = 1), computed by the compiled core (the same code the
    model's predictor uses). Pairs in tril_indices(N, -1) order. Raises ValueError naming the
    configuration and atoms for coincident or non-finite positions."""
    from .. import _core

    R = np.asarray(R, dtype=float)
    if R.ndim == 2:
        R = R[None]
    return _core.sgdml_descriptors(np.ascontiguousarray(R), threads, True)


def jacobian_dot(jac: np.ndarray, vec: np.ndarray, n_atoms: int) -> np.ndarray:
    """J v for vectors v (B, N, 3) -> (B, d)."""
    a, b = tril_pairs(n_atoms)
    v = np.asarray(vec).reshape(len(jac), n_atoms, 3)
    return np.einsum("bmk,bmk->bm", jac, v[:, a] - v[:, b])


def jacobian_t_dot(jac: np.ndarray, g: np.ndarray, n_atoms: int) -> np.ndarray:
    """J^T g for descriptor-space vectors g (B, d) -> (B, N, 3)."""
    a, b = tril_pairs(n_atoms)
    t = jac * g[..., None]
    out = np.zeros((len(jac), n_atoms, 3))
    np.add.at(out, (slice(None), a), t)
    np.add.at(out, (slice(None), b), -t)
    return out


def tril_perms(perms: np.ndarray) -> np.ndarray:
    """Descriptor-index permutation (S, d) of each atom permutation (S, N), as sgdml's Desc.perm:
    x_p[m] = x[out[p, m]] is the descriptor of the geometry r'_a = r_{perm[a]}."""
    perms = np.atleast_2d(np.asarray(perms, dtype=np.int64))
    n = perms.shape[1]
    idx = np.zeros((n, n), dtype=np.int64)
    a, b = tril_pairs(n)
    idx[a, b] = np.arange(len(a))
    idx = idx + idx.T
    return np.stack([idx[p][:, p][a, b] for p in perms])


def formula(numbers) -> str:
    from ase.formula import Formula
    from ase.data import chemical_symbols
    return Formula("".join(chemical_symbols[int(z)] for z in numbers)).format("hill")


@dataclass
class SGDMLParameters:
    """Everything inference needs for an sGDML model (eV, Angstrom). See the module docstring."""

    numbers: np.ndarray
    perms: np.ndarray
    sigma: float
    std: float
    c: float
    R_desc: np.ndarray
    R_d_desc_alpha: np.ndarray
    lam: float = 1e-10
    cutoff: float = 0.0
    alphas_F: Optional[np.ndarray] = None
    metadata: Dict[str, str] = field(default_factory=dict)

    @property
    def n_atoms(self) -> int:
        return len(self.numbers)

    @property
    def n_train(self) -> int:
        return len(self.R_desc)

    @property
    def species(self):
        return sorted(set(int(z) for z in self.numbers))

    def validate(self) -> None:
        n = self.n_atoms
        d = descriptor_size(n)
        if n < 2:
            raise ModelFileError("an sGDML model needs at least 2 atoms")
        z = np.asarray(self.numbers)
        if (z < 1).any() or (z > 118).any():
            raise ModelFileError(f"invalid atomic numbers {z.tolist()}")
        P = np.asarray(self.perms)
        if P.ndim != 2 or P.shape[1] != n or len(P) < 1:
            raise ModelFileError(f"perms has shape {P.shape}, expected (n_perms, {n})")
        for k, p in enumerate(P):
            if sorted(p.tolist()) != list(range(n)):
                raise ModelFileError(f"perms row {k} is not a permutation of 0..{n - 1}")
            if (z[p] != z).any():
                raise ModelFileError(f"perms row {k} maps atoms of different elements onto each other")
        for name in ("R_desc", "R_d_desc_alpha"):
            a = np.asarray(getattr(self, name))
            if a.ndim != 2 or a.shape[1] != d or len(a) != len(self.R_desc):
                raise ModelFileError(f"{name} has shape {a.shape}, expected (n_train, {d})")
            if not np.isfinite(a).all():
                raise ModelFileError(f"{name} has non-finite entries")
        if not (np.isfinite(self.sigma) and self.sigma > 0):
            raise ModelFileError(f"sigma must be positive, got {self.sigma}")
        if not (np.isfinite(self.std) and np.isfinite(self.c)):
            raise ModelFileError("std and c must be finite")
        if len(P) > MAX_PERM_ENTRIES // d:
            raise ModelFileError(f"perms: {len(P)} permutations of {n} atoms: their index table would exceed "
                                 f"{MAX_PERM_ENTRIES} entries")
        if not (np.isfinite(self.cutoff) and 0 <= self.cutoff <= MAX_CUTOFF):
            raise ModelFileError(f"cutoff {self.cutoff} A is out of range (0 to {MAX_CUTOFF} A; 0: the default)")
        if self.alphas_F is not None and np.shape(self.alphas_F) != (self.n_train, 3 * n):
            raise ModelFileError(f"alphas_F has shape {np.shape(self.alphas_F)}, expected ({self.n_train}, {3 * n})")

    model_type = "sgdml"

    @property
    def elements(self):
        from ase.data import chemical_symbols

        return [chemical_symbols[z] for z in self.species]

    def describe(self):
        """(key, value) lines for ``atomforge inspect``."""
        return [("molecule", f"{formula(self.numbers)} ({self.n_atoms} atoms, in this order)"),
                ("training points", str(self.n_train)), ("permutations", str(len(self.perms))),
                ("sigma", f"{self.sigma:g}"), ("lambda", f"{self.lam:g}"), ("cutoff", f"{self.cutoff:g} A")]

    def default_cutoff(self) -> float:
        """Neighbour-list range: at least every training pair distance (plus 50 % and 2 A), so that
        for any periodic input whose molecule is not intact, images show up and are rejected."""
        return float(1.5 / np.min(self.R_desc) + 2.0)

    def to_records(self):
        from .. import __version__

        self.validate()
        rec = {
            "model_type": "sgdml",
            "units.energy": "eV",
            "units.length": "Angstrom",
            "species": np.asarray(self.species, dtype=np.int64),
            "sgdml.numbers": np.asarray(self.numbers, dtype=np.int64),
            "sgdml.perms": np.asarray(self.perms, dtype=np.int64),
            "sgdml.sigma": float(self.sigma),
            "sgdml.lambda": float(self.lam),
            "sgdml.std": float(self.std),
            "sgdml.c": float(self.c),
            "sgdml.R_desc": np.ascontiguousarray(self.R_desc, dtype=np.float64),
            "sgdml.R_d_desc_alpha": np.ascontiguousarray(self.R_d_desc_alpha, dtype=np.float64),
            "sgdml.cutoff": float(self.cutoff if self.cutoff > 0 else self.default_cutoff()),
        }
        if self.alphas_F is not None:
            rec["sgdml.alphas_F"] = np.asarray(self.alphas_F, dtype=np.float64)
        meta = {"atomforge_version": __version__,
                "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                "formula": formula(self.numbers)}
        meta.update(self.metadata)
        for k, v in meta.items():
            rec[f"metadata.{k}"] = str(v)
        return rec

    @classmethod
    def from_records(cls, rec, where: str = "<model>") -> "SGDMLParameters":
        def get(name, kind="f64"):
            return get_record(rec, name, kind, where)

        def scalar(name):
            return get_scalar(rec, name, "f64", where)

        check_header(rec, "sgdml", where)
        species = check_species(rec, where)
        numbers = get_vector(rec, "sgdml.numbers", "i64", where)
        for a, z in enumerate(numbers.tolist()):
            if z not in species:
                raise ModelFileError(f"{where}: record 'sgdml.numbers' entry {a} = {z} is not one of the elements "
                                     f"of record 'species'")
        cutoff = scalar("sgdml.cutoff")
        if not 0 < cutoff <= MAX_CUTOFF:
            raise ModelFileError(f"{where}: record 'sgdml.cutoff' = {cutoff} A is out of range (0 to {MAX_CUTOFF} A)")
        p = cls(numbers=numbers,
                perms=np.asarray(get("sgdml.perms", "i64")),
                sigma=scalar("sgdml.sigma"), std=scalar("sgdml.std"), c=scalar("sgdml.c"),
                R_desc=np.asarray(get("sgdml.R_desc"), dtype=float),
                R_d_desc_alpha=np.asarray(get("sgdml.R_d_desc_alpha"), dtype=float),
                lam=scalar("sgdml.lambda") if "sgdml.lambda" in rec else 1e-10, cutoff=cutoff,
                alphas_F=None if "sgdml.alphas_F" not in rec else np.asarray(get("sgdml.alphas_F"), dtype=float),
                metadata={k[len("metadata."):]: v for k, v in rec.items() if k.startswith("metadata.")})
        try:
            p.validate()
        except ModelFileError as exc:
            raise ModelFileError(f"{where}: {exc}") from None
        return p


def save_sgdml(path, params: SGDMLParameters) -> None:
    """Write an sGDML model file (atomically)."""
    write_records(path, params.to_records())


def read_sgdml(source) -> SGDMLParameters:
    """Read an sGDML model file (path or bytes) without the compiled extension."""
    where = "<bytes>" if isinstance(source, (bytes, bytearray, memoryview)) else str(source)
    _, rec = read_records(source)
    return SGDMLParameters.from_records(rec, where)
