"""The atomforge model file: one versioned binary container for every model type.

This module is the container only (records in, records out); each model type's parameters and
their records live with the type (``atomforge.models``: :func:`atomforge.models.read_model`
dispatches on ``model_type``).

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

import struct
import zlib
from pathlib import Path
from typing import Dict, List, Optional, Tuple, Union

import numpy as np

from ._fileio import atomic_write_bytes

MAGIC = b"AFMODEL\x00"
FORMAT_VERSION = 1
_F64, _I64, _STR = 1, 2, 3
_MAX_COUNT = 1 << 40  # entries of one record (the C++ reader's limit)
#: Largest element count of a model (the periodic table); species are distinct atomic numbers.
MAX_ELEMENTS = 118

Value = Union[np.ndarray, str, float, int]


class ModelFileError(ValueError):
    """A model file is missing, truncated, corrupted, of a newer format version, or inconsistent."""


# ------------------------------------------------------------------------------- raw container


def encode_records(records: Dict[str, Value]) -> bytes:
    """The bytes of a model file holding ``records`` (layout above).

    Values: str -> string record; float/int scalars and numpy arrays -> float64 or int64 records
    (integer dtypes -> int64, everything else -> float64). Raises ValueError for a record of
    more than 4 dimensions or a name longer than 65535 bytes.
    """
    out = bytearray(MAGIC)
    out += struct.pack("<II", FORMAT_VERSION, len(records))
    for name, value in records.items():
        nb = name.encode("utf-8")
        if len(nb) > 0xFFFF:
            raise ValueError(f"record name {name[:40]!r}...: longer than 65535 bytes")
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
    return bytes(out)


def write_records(path, records: Dict[str, Value]) -> None:
    """Write named records atomically (temporary file in the same folder, then os.replace);
    value types as :func:`encode_records`."""
    atomic_write_bytes(path, encode_records(records))


def read_records(source) -> Tuple[int, Dict[str, Value]]:
    """Read (format_version, records) from a path or bytes. Raises ModelFileError for a missing,
    truncated or corrupted file, a newer format version, and records no model can use (the same
    rules as the C++ reader): a name that is not valid UTF-8 or appears twice, a string that is
    not valid UTF-8, a float64 entry that is NaN or infinite. Sizes are checked against the bytes
    present before anything is allocated."""
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

    for r in range(n):
        need(2)
        (ln,) = struct.unpack_from("<H", data, pos); pos += 2
        need(ln + 2)
        try:
            name = data[pos:pos + ln].decode("utf-8")
        except UnicodeDecodeError:
            shown = data[pos:pos + ln].decode("utf-8", errors="replace").replace("\ufffd", "?")
            raise ModelFileError(f"{where}: record {r} (at byte {pos}) has a name that is not valid UTF-8 "
                                 f"({shown!r})") from None
        if name in records:
            raise ModelFileError(f"{where}: record {name!r} appears twice")
        pos += ln
        code, ndim = struct.unpack_from("<BB", data, pos); pos += 2
        if code not in (_F64, _I64, _STR) or ndim > 4:
            raise ModelFileError(f"{where}: record {name!r} has an invalid type")
        need(8 * ndim)
        shape = struct.unpack_from(f"<{ndim}Q", data, pos); pos += 8 * ndim
        count = 1
        for dim in shape:  # Python integers: no overflow; the same limits as the C++ reader
            if dim > _MAX_COUNT or (dim and count > _MAX_COUNT // dim):
                raise ModelFileError(f"{where}: record {name!r} too large")
            count *= dim
        size = count if code == _STR else 8 * count
        need(size)
        blob = data[pos:pos + size]; pos += size
        if code == _STR:
            if ndim != 1:
                raise ModelFileError(f"{where}: record {name!r}: a string record needs one dimension (its byte length)")
            try:
                records[name] = blob.decode("utf-8")
            except UnicodeDecodeError:
                raise ModelFileError(f"{where}: record {name!r} is not valid UTF-8 text") from None
        else:
            arr = np.frombuffer(blob, dtype="<f8" if code == _F64 else "<i8").reshape(shape).copy()
            if code == _F64 and not np.isfinite(arr).all():
                k = int(np.argmax(~np.isfinite(arr.reshape(-1))))
                raise ModelFileError(f"{where}: record {name!r} entry {k} is not finite ({arr.reshape(-1)[k]}); "
                                     f"every number in a model file must be finite")
            records[name] = arr
    if pos != body_end:
        raise ModelFileError(f"{where}: {body_end - pos} unexpected bytes after the last record")
    return version, records


# ------------------------------------------------------------------------------- record access


def get_record(rec: Dict[str, Value], name: str, kind: Optional[str] = None, where: str = "<model>") -> Value:
    """Record ``name`` of a parsed model file; ``kind`` checks its type: "str", "arr" (any
    number), "f64" or "i64" (as the C++ reader requires them).
    Raises ModelFileError naming ``where`` and the record when it is missing or of the wrong type."""
    if name not in rec:
        raise ModelFileError(f"{where}: missing record {name!r}")
    v = rec[name]
    if kind == "str" and not isinstance(v, str):
        raise ModelFileError(f"{where}: record {name!r} must be a string")
    if kind in ("arr", "f64", "i64") and isinstance(v, str):
        raise ModelFileError(f"{where}: record {name!r} must be numeric")
    if kind in ("f64", "i64"):
        v = np.asarray(v)
        if v.dtype.kind != ("f" if kind == "f64" else "i"):
            raise ModelFileError(f"{where}: record {name!r} has the wrong type (must be "
                                 f"{'float64' if kind == 'f64' else 'int64'})")
    return v


def get_vector(rec: Dict[str, Value], name: str, kind: str = "f64", where: str = "<model>") -> np.ndarray:
    """A one-dimensional (rank 0 or 1) float64 (``kind`` "f64") or int64 ("i64") record as a 1-D
    array. Raises ModelFileError naming the record when it is missing, of another type or has
    more dimensions (the C++ reader's f64_vector / i64_vector)."""
    v = get_record(rec, name, kind, where)
    if v.ndim > 1:
        raise ModelFileError(f"{where}: record {name!r} must be one-dimensional")
    return np.atleast_1d(v)


def get_scalar(rec: Dict[str, Value], name: str, kind: str = "f64", where: str = "<model>"):
    """A one-value float64 (``kind`` "f64") or int64 ("i64") record as a Python float / int.
    Raises ModelFileError naming the record when it is missing, of another type or not one value."""
    v = get_record(rec, name, kind, where)
    if v.size != 1:
        raise ModelFileError(f"{where}: record {name!r} must be a scalar")
    return float(v.reshape(())) if kind == "f64" else int(v.reshape(()))


def check_species(rec: Dict[str, Value], where: str = "<model>", name: str = "species") -> List[int]:
    """The model's elements, record ``name``: an int64 list of 1 to 118 distinct atomic numbers
    1..118 (the same rule as the C++ reader). Raises ModelFileError naming the record and entry."""
    z = get_vector(rec, name, "i64", where)
    if not 1 <= len(z) <= MAX_ELEMENTS:
        raise ModelFileError(f"{where}: record {name!r} must list 1 to {MAX_ELEMENTS} elements, it has {len(z)}")
    seen: Dict[int, int] = {}
    for k, v in enumerate(z.tolist()):
        if not 1 <= v <= MAX_ELEMENTS:
            raise ModelFileError(f"{where}: record {name!r} entry {k} = {v} is not an atomic number (1 to "
                                 f"{MAX_ELEMENTS})")
        if v in seen:
            raise ModelFileError(f"{where}: record {name!r} lists atomic number {v} twice (entries {seen[v]} and {k})")
        seen[v] = k
    return [int(v) for v in z]


def check_header(rec: Dict[str, Value], model_type: str, where: str = "<model>") -> None:
    """The records every model file starts with: ``model_type`` must be ``model_type`` and the
    units eV and Angstrom. Raises ModelFileError otherwise."""
    if get_record(rec, "model_type", "str", where) != model_type:
        raise ModelFileError(f"{where}: model_type {rec['model_type']!r} is not {model_type!r}")
    if get_record(rec, "units.energy", "str", where) != "eV" or get_record(rec, "units.length", "str", where) != "Angstrom":
        raise ModelFileError(f"{where}: units must be eV and Angstrom")


def __getattr__(name):
    # Parameter classes and readers moved to atomforge.models; kept importable from here.
    if name in ("BPNNParameters", "read_model", "save_model"):
        from . import models

        return getattr(models, name)
    raise AttributeError(name)
