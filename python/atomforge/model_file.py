"""The atomforge model file: one versioned binary container for every model type.

Readable and writable with NumPy alone (no compiled extension, no pickle); the C++ core reads the
same bytes (cpp/src/model_file.cpp). Specification: docs/model_file.md.

Layout (all integers little-endian)::

    b"AFMODEL\\0"                     8 bytes magic
    uint32 format_version              FORMAT_VERSION (readers reject newer versions)
    uint32 n_records
    n_records x record:
        uint16 name_length, name (UTF-8)
        uint8  dtype                   1 = float64, 2 = int64, 3 = UTF-8 string
        uint8  ndim (0..4), uint64 shape[ndim]   (string: ndim = 1, shape = byte length)
        payload                        prod(shape) * itemsize bytes, C order
    uint32 crc32 of every byte before it (zlib.crc32)

Units inside the file are always eV and Angstrom (records ``units.energy``, ``units.length``).
"""
from __future__ import annotations

import datetime as _dt
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple, Union

import numpy as np

from ._fileio import atomic_write_bytes

MAGIC = b"AFMODEL\x00"
FORMAT_VERSION = 1
_F64, _I64, _STR = 1, 2, 3
ACTIVATIONS = ("linear", "tanh", "sigmoid", "softplus", "silu", "gaussian")
_SF_TYPE = {"G2": 2, "G4": 4, "G5": 5}
_SF_NAME = {v: k for k, v in _SF_TYPE.items()}

Value = Union[np.ndarray, str, float, int]


class ModelFileError(ValueError):
    """A model file is missing, truncated, corrupted, of a newer format version, or inconsistent."""


# ------------------------------------------------------------------------------- raw container


def write_records(path, records: Dict[str, Value]) -> None:
    """Write named records atomically (temporary file in the same folder, then os.replace).

    Values: str -> string record; float/int scalars and numpy arrays -> float64 or int64 records
    (integer dtypes -> int64, everything else -> float64).
    """
    out = bytearray(MAGIC)
    out += struct.pack("<II", FORMAT_VERSION, len(records))
    for name, value in records.items():
        nb = name.encode("utf-8")
        out += struct.pack("<H", len(nb)) + nb
        if isinstance(value, str):
            payload = value.encode("utf-8")
            out += struct.pack("<BBQ", _STR, 1, len(payload)) + payload
            continue
        arr = np.asarray(value)
        if arr.dtype.kind in "iub":
            arr, code = np.array(arr, dtype="<i8", order="C"), _I64
        else:
            arr, code = np.array(arr, dtype="<f8", order="C"), _F64
        if arr.ndim > 4:
            raise ValueError(f"record {name!r}: at most 4 dimensions")
        out += struct.pack("<BB", code, arr.ndim) + struct.pack(f"<{arr.ndim}Q", *arr.shape)
        out += arr.tobytes()
    out += struct.pack("<I", zlib.crc32(bytes(out)) & 0xFFFFFFFF)
    atomic_write_bytes(path, bytes(out))


def read_records(source) -> Tuple[int, Dict[str, Value]]:
    """Read (format_version, records) from a path or bytes. Raises ModelFileError."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        data, where = bytes(source), "<bytes>"
    else:
        where = str(source)
        try:
            data = Path(source).read_bytes()
        except OSError as exc:
            raise ModelFileError(f"{where}: cannot read model file ({exc.strerror or exc})") from None
    if len(data) < 20 or data[:8] != MAGIC:
        raise ModelFileError(f"{where}: not an atomforge model file (bad magic bytes)")
    version, n = struct.unpack_from("<II", data, 8)
    if version > FORMAT_VERSION:
        raise ModelFileError(f"{where}: model file format version {version} is newer than this atomforge "
                             f"reads (up to {FORMAT_VERSION}); upgrade atomforge")
    if version < 1:
        raise ModelFileError(f"{where}: invalid format version {version}")
    (crc,) = struct.unpack_from("<I", data, len(data) - 4)
    if zlib.crc32(data[:-4]) & 0xFFFFFFFF != crc:
        raise ModelFileError(f"{where}: checksum mismatch: the file is truncated or corrupted")
    body_end = len(data) - 4
    pos = 16
    records: Dict[str, Value] = {}

    def need(k):
        if pos + k > body_end:
            raise ModelFileError(f"{where}: truncated record table")

    for _ in range(n):
        need(2)
        (ln,) = struct.unpack_from("<H", data, pos); pos += 2
        need(ln + 2)
        name = data[pos:pos + ln].decode("utf-8", errors="replace"); pos += ln
        code, ndim = struct.unpack_from("<BB", data, pos); pos += 2
        if code not in (_F64, _I64, _STR) or ndim > 4:
            raise ModelFileError(f"{where}: record {name!r} has an invalid type")
        need(8 * ndim)
        shape = struct.unpack_from(f"<{ndim}Q", data, pos); pos += 8 * ndim
        count = int(np.prod(shape)) if ndim else 1
        size = count if code == _STR else 8 * count
        need(size)
        blob = data[pos:pos + size]; pos += size
        if code == _STR:
            records[name] = blob.decode("utf-8")
        else:
            arr = np.frombuffer(blob, dtype="<f8" if code == _F64 else "<i8").reshape(shape).copy()
            records[name] = arr
    if pos != body_end:
        raise ModelFileError(f"{where}: {body_end - pos} unexpected bytes after the last record")
    return version, records


# ------------------------------------------------------------------------------- BP networks


def get_record(rec: Dict[str, Value], name: str, kind: Optional[str] = None, where: str = "<model>") -> Value:
    """Record ``name`` of a parsed model file; ``kind`` "str" or "arr" checks its type.
    Raises ModelFileError naming ``where`` and the record when it is missing or of the wrong type."""
    if name not in rec:
        raise ModelFileError(f"{where}: missing record {name!r}")
    v = rec[name]
    if kind == "str" and not isinstance(v, str):
        raise ModelFileError(f"{where}: record {name!r} must be a string")
    if kind == "arr" and isinstance(v, str):
        raise ModelFileError(f"{where}: record {name!r} must be numeric")
    return v


def check_header(rec: Dict[str, Value], model_type: str, where: str = "<model>") -> None:
    """The records every model file starts with: ``model_type`` must be ``model_type`` and the
    units eV and Angstrom. Raises ModelFileError otherwise."""
    if get_record(rec, "model_type", "str", where) != model_type:
        raise ModelFileError(f"{where}: model_type {rec['model_type']!r} is not {model_type!r}")
    if get_record(rec, "units.energy", "str", where) != "eV" or get_record(rec, "units.length", "str", where) != "Angstrom":
        raise ModelFileError(f"{where}: units must be eV and Angstrom")


@dataclass
class BPNNParameters:
    """Everything inference needs for a Behler-Parrinello network potential (or a committee).

    Atomic energy of atom i of element k (index into ``species``), for committee member m::

        x_i   = (G_i - scaling[k]["shift"]) * scaling[k]["scale"] + scaling[k]["offset"]
        E_i^m = reference_energies[k] + energy_scale * NN_k^m(x_i)             (eV)

    and E = sum_i mean_m E_i^m (J. Behler, M. Parrinello, PRL 98, 146401 (2007)).
    NN layers: h_{l+1} = act_l(W_l h_l + b_l), W_l (out, in); ``activations[k]`` names one
    activation per layer (the last is usually 'linear').
    """

    species: List[int]
    descriptor: dict
    scaling: List[dict]
    networks: List[List[List[Tuple[np.ndarray, np.ndarray]]]]  # [member][element][layer] -> (W, b)
    activations: List[List[str]]
    reference_energies: np.ndarray
    energy_scale: float = 1.0
    metadata: Dict[str, str] = field(default_factory=dict)

    @property
    def committee_size(self) -> int:
        return len(self.networks)

    def validate(self) -> None:
        """Raise ModelFileError naming the first inconsistency."""
        from ase.data import chemical_symbols

        ne = len(self.species)
        if ne == 0:
            raise ModelFileError("model has no species")
        syms = [chemical_symbols[z] for z in self.species]
        if list(self.descriptor.get("elements", [])) != syms:
            raise ModelFileError(f"descriptor elements {self.descriptor.get('elements')} != species {syms}")
        funcs = self.descriptor["functions"]
        if len(self.scaling) != ne or len(self.activations) != ne or len(self.reference_energies) != ne:
            raise ModelFileError("scaling, activations and reference energies need one entry per species")
        if not self.networks:
            raise ModelFileError("model has no networks")
        for k, s in enumerate(syms):
            nf = len(funcs.get(s, []))
            for key in ("shift", "scale"):
                if np.shape(self.scaling[k][key]) != (nf,):
                    raise ModelFileError(f"scaling of {s}: {key} has shape {np.shape(self.scaling[k][key])}, "
                                         f"expected ({nf},)")
            for a in self.activations[k]:
                if a not in ACTIVATIONS:
                    raise ModelFileError(f"network of {s}: unknown activation {a!r} (known: {ACTIVATIONS})")
            for m, member in enumerate(self.networks):
                layers = member[k]
                if len(layers) != len(self.activations[k]):
                    raise ModelFileError(f"network {m} of {s}: {len(layers)} layers but "
                                         f"{len(self.activations[k])} activations")
                width = nf
                for l, (W, b) in enumerate(layers):
                    if W.ndim != 2 or W.shape[1] != width or b.shape != (W.shape[0],):
                        raise ModelFileError(f"network {m} of {s}, layer {l}: weight {W.shape} / bias {b.shape} "
                                             f"do not fit input width {width}")
                    if not (np.isfinite(W).all() and np.isfinite(b).all()):
                        raise ModelFileError(f"network {m} of {s}, layer {l}: non-finite weights")
                    width = W.shape[0]
                if width != 1:
                    raise ModelFileError(f"network {m} of {s}: output width {width}, expected 1")

    # -------------------------------------------------------------- records
    def to_records(self) -> Dict[str, Value]:
        from . import __version__

        self.validate()
        syms = self.descriptor["elements"]
        idx = {s: k for k, s in enumerate(syms)}
        rows = []
        for s in syms:
            for f in self.descriptor["functions"].get(s, []):
                nb = [idx[e] for e in f["neighbors"]]
                rows.append([_SF_TYPE[f["type"]], idx[s], nb[0], nb[1] if len(nb) > 1 else -1, f["eta"],
                             f.get("r_s", 0.0), f["r_c"], f.get("lambda", 1.0), f.get("zeta", 1.0)])
        rec: Dict[str, Value] = {
            "model_type": "bpnn",
            "units.energy": "eV",
            "units.length": "Angstrom",
            "species": np.asarray(self.species, dtype=np.int64),
            "descriptor.type": "acsf",
            "descriptor.cutoff_function": self.descriptor.get("cutoff_function", "cos"),
            "descriptor.functions": np.asarray(rows, dtype=np.float64).reshape(-1, 9),
            "energy.reference": np.asarray(self.reference_energies, dtype=np.float64),
            "energy.scale": float(self.energy_scale),
            "committee_size": np.int64(self.committee_size),
        }
        for k in range(len(syms)):
            rec[f"scaling.{k}.shift"] = np.asarray(self.scaling[k]["shift"], dtype=np.float64)
            rec[f"scaling.{k}.scale"] = np.asarray(self.scaling[k]["scale"], dtype=np.float64)
            rec[f"scaling.{k}.offset"] = float(self.scaling[k].get("offset", 0.0))
            rec[f"network.{k}.activations"] = ",".join(self.activations[k])
            for m, member in enumerate(self.networks):
                rec[f"network.{m}.{k}.n_layers"] = np.int64(len(member[k]))
                for l, (W, b) in enumerate(member[k]):
                    rec[f"network.{m}.{k}.{l}.weight"] = np.asarray(W, dtype=np.float64)
                    rec[f"network.{m}.{k}.{l}.bias"] = np.asarray(b, dtype=np.float64)
        meta = {"atomforge_version": __version__,
                "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
        meta.update(self.metadata)
        for key, v in meta.items():
            rec[f"metadata.{key}"] = str(v)
        return rec

    @classmethod
    def from_records(cls, rec: Dict[str, Value], where: str = "<model>") -> "BPNNParameters":
        from ase.data import chemical_symbols

        def get(name, kind=None):
            return get_record(rec, name, kind, where)

        check_header(rec, "bpnn", where)
        species = [int(z) for z in np.atleast_1d(get("species", "arr"))]
        if any(z < 1 or z >= len(chemical_symbols) for z in species):
            raise ModelFileError(f"{where}: invalid atomic number in species {species}")
        syms = [chemical_symbols[z] for z in species]
        F = np.asarray(get("descriptor.functions", "arr"), dtype=float)
        if F.ndim != 2 or F.shape[1] != 9:
            raise ModelFileError(f"{where}: descriptor.functions must have shape (n, 9)")
        funcs = {s: [] for s in syms}
        for row in F:
            t, c, n1, n2 = (int(v) for v in row[:4])
            if t not in _SF_NAME or not (0 <= c < len(syms)) or not (0 <= n1 < len(syms)) or \
                    (t != 2 and not 0 <= n2 < len(syms)):
                raise ModelFileError(f"{where}: invalid symmetry-function row {row.tolist()}")
            f = {"type": _SF_NAME[t], "neighbors": [syms[n1]] + ([syms[n2]] if t != 2 else []),
                 "eta": float(row[4]), "r_s": float(row[5]), "r_c": float(row[6])}
            if t != 2:
                f["lambda"], f["zeta"] = float(row[7]), float(row[8])
            funcs[syms[c]].append(f)
        descriptor = {"elements": syms, "cutoff_function": get("descriptor.cutoff_function", "str"),
                      "functions": funcs}
        M = int(get("committee_size", "arr"))
        scaling, acts, nets = [], [], [[] for _ in range(M)]
        for k in range(len(syms)):
            scaling.append({"shift": np.atleast_1d(get(f"scaling.{k}.shift", "arr")).astype(float),
                            "scale": np.atleast_1d(get(f"scaling.{k}.scale", "arr")).astype(float),
                            "offset": float(get(f"scaling.{k}.offset", "arr"))})
            acts.append(get(f"network.{k}.activations", "str").split(","))
            for m in range(M):
                L = int(get(f"network.{m}.{k}.n_layers", "arr"))
                nets[m].append([(np.atleast_2d(get(f"network.{m}.{k}.{l}.weight", "arr")).astype(float),
                                 np.atleast_1d(get(f"network.{m}.{k}.{l}.bias", "arr")).astype(float))
                                for l in range(L)])
        meta = {key[len("metadata."):]: v for key, v in rec.items() if key.startswith("metadata.")}
        p = cls(species, descriptor, scaling, nets, acts,
                np.atleast_1d(get("energy.reference", "arr")).astype(float),
                float(get("energy.scale", "arr")), meta)
        try:
            p.validate()
        except ModelFileError as exc:
            raise ModelFileError(f"{where}: {exc}") from None
        return p

    # -------------------------------------------------------------- NumPy evaluation
    def atomic_energies_numpy(self, G: np.ndarray, species_index: np.ndarray, member: int = None):
        """Reference evaluation in NumPy: atomic energies (N,) eV and dE/dG (N, F).

        G: (N, F) descriptor values; species_index: (N,) element index into ``species``.
        Averages over the committee unless ``member`` is given.
        """
        members = range(self.committee_size) if member is None else [member]
        E = np.zeros(len(G))
        dEdG = np.zeros_like(G)
        for k in range(len(self.species)):
            sel = np.flatnonzero(species_index == k)
            if not len(sel):
                continue
            nf = len(self.scaling[k]["shift"])
            x0 = (G[sel, :nf] - self.scaling[k]["shift"]) * self.scaling[k]["scale"] + self.scaling[k]["offset"]
            for m in members:
                h, cache = x0, []
                for (W, b), a in zip(self.networks[m][k], self.activations[k]):
                    z = h @ W.T + b
                    h, dh = _act(a, z)
                    cache.append((W, dh))
                E[sel] += h[:, 0] * self.energy_scale / len(members)
                g = np.full((len(sel), 1), self.energy_scale / len(members))
                for W, dh in reversed(cache):
                    g = (g * dh) @ W
                dEdG[sel, :nf] += g * self.scaling[k]["scale"]
            E[sel] += self.reference_energies[k]
        return E, dEdG


def _act(name: str, z: np.ndarray):
    if name == "linear":
        return z, np.ones_like(z)
    if name == "tanh":
        t = np.tanh(z)
        return t, 1 - t * t
    if name == "sigmoid":
        s = 1 / (1 + np.exp(-z))
        return s, s * (1 - s)
    if name == "softplus":
        return np.logaddexp(0, z), 1 / (1 + np.exp(-z))
    if name == "silu":
        s = 1 / (1 + np.exp(-z))
        return z * s, s * (1 + z * (1 - s))
    if name == "gaussian":
        g = np.exp(-0.5 * z * z)
        return g, -z * g
    raise ModelFileError(f"unknown activation {name!r}")


def save_model(path, params: BPNNParameters) -> None:
    """Write a model file (atomically). Raises ModelFileError if ``params`` are inconsistent."""
    write_records(path, params.to_records())


def read_model(source) -> BPNNParameters:
    """Read a model file (path or bytes) without the compiled extension. Raises ModelFileError."""
    where = "<bytes>" if isinstance(source, (bytes, bytearray, memoryview)) else str(source)
    _, rec = read_records(source)
    mt = rec.get("model_type")
    if mt != "bpnn":
        raise ModelFileError(f"{where}: unsupported model_type {mt!r}")
    return BPNNParameters.from_records(rec, where)
