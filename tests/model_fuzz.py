"""Seeded mutation fuzzing of the model-file readers (tests/test_fuzz_model_files.py runs a few
hundred cases in-process; benchmarks/fuzz_model_files.py runs thousands, each load in a forked
child under a 1 GB address-space limit and a timeout).

A case is a valid model file (three seeds: a per-element ACSF committee, a shared-network GMP
model, an sGDML model) changed by one seeded mutation: raw byte flips, record-header edits (type
code, rank, shape, name length), structured record edits (extreme integers and floats, resized
arrays, invalid UTF-8, deleted/duplicated/renamed records, record-count and version fields), with
the CRC-32 recomputed (most of the time) so that the readers get past the checksum. The oracle
(:func:`run_case`): the pure-Python reader (``atomforge.read_model``) and the C++ reader
(``_core.load_model_bytes``, the code LAMMPS and OpenMM load through) either accept the file or
raise their documented error (ModelFileError / ValueError) with a message; an accepted model is
then evaluated on a small structure of its elements, which may again only raise ValueError.
Anything else (another exception type, a crash, a hang, a large allocation) is a finding.
"""
from __future__ import annotations

import struct
import zlib
from typing import Callable, Dict, List, Tuple

import numpy as np

MAGIC = b"AFMODEL\x00"
_F64, _I64, _STR = 1, 2, 3

Record = List  # [name: bytes, code: int, shape: list, payload: bytes]


# ----------------------------------------------------------------------------- raw container
def parse_raw(data: bytes) -> Tuple[int, List[Record]]:
    """Records of a valid file as [name, code, shape, payload] (bytes, int, list, bytes)."""
    version, n = struct.unpack_from("<II", data, 8)
    pos, out = 16, []
    for _ in range(n):
        (ln,) = struct.unpack_from("<H", data, pos)
        pos += 2
        name = data[pos:pos + ln]
        pos += ln
        code, ndim = data[pos], data[pos + 1]
        pos += 2
        shape = list(struct.unpack_from(f"<{ndim}Q", data, pos))
        pos += 8 * ndim
        count = int(np.prod(shape)) if ndim else 1
        size = count if code == _STR else 8 * count
        out.append([name, code, shape, data[pos:pos + size]])
        pos += size
    return version, out


def build_raw(version: int, records: List[Record], count: int = None, crc: bool = True) -> bytes:
    """Bytes of a container from raw records (no consistency checks: that is the point)."""
    out = bytearray(MAGIC)
    out += struct.pack("<II", version & 0xFFFFFFFF, (len(records) if count is None else count) & 0xFFFFFFFF)
    for name, code, shape, payload in records:
        out += struct.pack("<H", len(name) & 0xFFFF) + name
        out += bytes([code & 0xFF, len(shape) & 0xFF])
        out += b"".join(struct.pack("<Q", s & 0xFFFFFFFFFFFFFFFF) for s in shape)
        out += payload
    return fix_crc(bytes(out) + b"\0\0\0\0") if crc else bytes(out) + b"\0\0\0\0"


def fix_crc(data: bytes) -> bytes:
    body = data[:-4]
    return body + struct.pack("<I", zlib.crc32(body) & 0xFFFFFFFF)


# ----------------------------------------------------------------------------- seed models
def seed_models() -> Dict[str, bytes]:
    """Three valid model files: bpnn on ACSF (per-element networks, committee of 2), bpnn on GMP
    (one shared network), sGDML (water)."""
    from ase.build import molecule

    from atomforge import BPNNParameters
    from atomforge.descriptors import GaussianMultipoles
    from atomforge.model_file import encode_records
    from atomforge.sgdml import fit
    from test_model_inference import random_model

    seeds = {"bpnn_acsf": encode_records(random_model(seed=1, committee=2).to_records())}
    rng = np.random.default_rng(2)
    g = GaussianMultipoles(orders=(0, 1, 2), sigmas=(0.5, 1.0), r_c=4.0, elements=["H", "O"],
                           densities={"H": [(0.5, 1.2), (0.3, 0.4)], "O": [(3.0, 2.0), (5.0, 0.6)]})
    nf = len(g.orders) * len(g.sigmas)
    widths = [nf, 6, 1]
    layers = [(rng.normal(size=(widths[k + 1], widths[k])) / 3, rng.normal(size=widths[k + 1]) * 0.1)
              for k in range(2)]
    scaling = [{"shift": rng.normal(size=nf), "scale": rng.uniform(0.5, 2, nf), "offset": 0.0} for _ in range(2)]
    p = BPNNParameters([1, 8], g.to_dict(), scaling, [[layers]], [["tanh", "linear"]], np.array([-13.6, -2040.0]),
                       shared=True)
    seeds["bpnn_gmp_shared"] = encode_records(p.to_records())
    a = molecule("H2O")
    R = np.array([a.positions + rng.normal(0, 0.05, (3, 3)) for _ in range(5)])
    s = fit(R, rng.normal(size=5), rng.normal(size=(5, 3, 3)), a.numbers, np.array([[0, 1, 2], [0, 2, 1]]),
            sigma=10.0, lam=1e-4, threads=1)
    seeds["sgdml"] = encode_records(s.to_records())
    return seeds


# ----------------------------------------------------------------------------- mutations
_INTS = [0, -1, 1, 2, 3, 7, 118, 119, 1000, 2 ** 31 - 1, 2 ** 31, 2 ** 32 + 1, 2 ** 40, 2 ** 62, -(2 ** 63),
         10 ** 7, 10 ** 9]
_FLOATS = [0.0, -0.0, -1.0, 1.0, 6.7, 25.0, 25.0001, 1000.0, 1e-300, 5e-324, 1e308, -1e308, float("nan"),
           float("inf"), -float("inf")]
_STRINGS = [b"", b"bpnn", b"sgdml", b"acsf", b"gmp", b"none", b"cos", b"tanh", b"x" * 300, b"tanh," * 60,
            b"\xff\xfe", b"bp\xc3nn", b"eV", b"Angstrom", b"linear,linear,linear,linear"]


def _scalar_payload(code: int, value) -> bytes:
    return struct.pack("<d", float(value)) if code == _F64 else struct.pack("<q", int(value))


def mutate(seed: bytes, rng: np.random.Generator) -> Tuple[bytes, str]:
    """One seeded mutation of ``seed``: (bytes, description)."""
    version, recs = parse_raw(seed)
    kind = rng.choice(["bytes", "header", "value", "resize", "string", "structure", "counts"],
                      p=[0.2, 0.15, 0.25, 0.12, 0.08, 0.12, 0.08])
    k = int(rng.integers(len(recs)))
    name = recs[k][0].decode("utf-8", "replace")
    crc = rng.random() > 0.03
    if kind == "bytes":  # flip 1..8 random bytes of the body
        body = bytearray(seed[:-4])
        n = int(rng.integers(1, 9))
        for _ in range(n):
            body[int(rng.integers(8, len(body)))] = int(rng.integers(256))
        data = bytes(body) + seed[-4:]
        return (fix_crc(data) if crc else data), f"bytes x{n}"
    if kind == "header":  # the record's type code, rank or one extent
        rec = recs[k]
        what = rng.choice(["code", "ndim", "extent"])
        if what == "code":
            rec[1] = int(rng.choice([0, 1, 2, 3, 4, 255]))
        elif what == "ndim":
            nd = int(rng.choice([0, 1, 2, 3, 4, 5, 255]))
            rec[2] = (rec[2] + [1] * nd)[:nd] if nd <= 4 else rec[2] + [1] * (nd - len(rec[2]))
        elif rec[2]:
            rec[2][int(rng.integers(len(rec[2])))] = int(rng.choice(_INTS)) & 0xFFFFFFFFFFFFFFFF
        return build_raw(version, recs, crc=crc), f"header {what} of {name}"
    if kind == "value":  # one entry of a numeric record set to an extreme
        rec = recs[k]
        if rec[1] in (_F64, _I64) and len(rec[3]) >= 8:
            j = int(rng.integers(len(rec[3]) // 8))
            v = rng.choice(_FLOATS) if rec[1] == _F64 else rng.choice(_INTS)
            rec[3] = rec[3][:8 * j] + _scalar_payload(rec[1], v) + rec[3][8 * j + 8:]
            return build_raw(version, recs, crc=crc), f"value {name}[{j}] = {v}"
        kind = "string"
    if kind == "resize":  # a numeric record replaced by a longer/shorter/reshaped array
        rec = recs[k]
        if rec[1] in (_F64, _I64):
            n_old = max(1, len(rec[3]) // 8)
            n_new = int(rng.choice([0, 1, 2, n_old - 1, n_old + 1, 2 * n_old, 1000, 3000]))
            n_new = max(n_new, 0)
            vals = np.frombuffer(rec[3], dtype="<f8" if rec[1] == _F64 else "<i8")
            new = np.resize(vals, n_new) if len(vals) else np.zeros(n_new, vals.dtype)
            rec[3] = new.astype(vals.dtype).tobytes()
            rec[2] = [n_new] if rng.random() < 0.7 or n_new == 0 else [1, n_new]
            return build_raw(version, recs, crc=crc), f"resize {name} to {rec[2]}"
        kind = "string"
    if kind == "string":  # a string record (or any record) replaced by a string
        rec = recs[k]
        s = _STRINGS[int(rng.integers(len(_STRINGS)))]
        rec[1], rec[2], rec[3] = _STR, [len(s)], s
        return build_raw(version, recs, crc=crc), f"string {name} = {s[:20]!r}"
    if kind == "structure":  # delete, duplicate, rename a record, or swap two names
        what = rng.choice(["delete", "duplicate", "rename", "invalid_name", "swap"])
        if what == "delete":
            del recs[k]
        elif what == "duplicate":
            recs.insert(int(rng.integers(len(recs) + 1)), list(recs[k]))
        elif what == "rename":
            recs[k][0] = recs[int(rng.integers(len(recs)))][0] + rng.choice([b"", b"x", b".0"])
        elif what == "invalid_name":
            recs[k][0] = recs[k][0][:-1] + b"\xff"
        else:
            j = int(rng.integers(len(recs)))
            recs[k][0], recs[j][0] = recs[j][0], recs[k][0]
        return build_raw(version, recs, crc=crc), f"{what} {name}"
    # counts: the version or the record-count field
    if rng.random() < 0.5:
        return build_raw(int(rng.choice([0, 2, 2 ** 31])), recs, crc=crc), "version"
    return build_raw(version, recs, count=int(rng.choice([0, len(recs) - 1, len(recs) + 1, 2 ** 32 - 1])),
                     crc=crc), "record-count"


# ----------------------------------------------------------------------------- the oracle
def _structure_for(pot):
    """A small structure the loaded model can evaluate: its molecule (sGDML) or a few atoms of
    each of its elements in a periodic box (as a molecule for a pinn model with polarisation)."""
    if pot.model_type == "sgdml":
        from ase.build import molecule
        return molecule("H2O").positions, molecule("H2O").numbers, None, None
    rng = np.random.default_rng(0)
    numbers = np.repeat(pot.species, 2)[:6]
    pos = rng.uniform(0, 5.0, (len(numbers), 3))
    return pos, numbers, np.eye(3) * 6.0, True


def run_case(data: bytes) -> Dict[str, str]:
    """Load ``data`` with both readers (and evaluate what loads). Returns {"python", "core",
    "compute"}: "ok", "clear" (the documented error, with a message), or "unexpected: <type>:
    <message>"."""
    import atomforge
    from atomforge import ModelFileError, _core

    out = {}
    try:
        atomforge.read_model(data)
        out["python"] = "ok"
    except ModelFileError as exc:
        out["python"] = "clear" if str(exc) else "unexpected: empty message"
    except Exception as exc:  # noqa: BLE001 - the finding itself
        out["python"] = f"unexpected: {type(exc).__name__}: {str(exc)[:200]}"
    pot = None
    try:
        pot = atomforge.Potential(_core.load_model_bytes(data, "<fuzz>"), "<fuzz>")
        out["core"] = "ok"
    except ValueError as exc:
        out["core"] = "clear" if str(exc) else "unexpected: empty message"
    except Exception as exc:  # noqa: BLE001
        out["core"] = f"unexpected: {type(exc).__name__}: {str(exc)[:200]}"
    out["compute"] = "-"
    if pot is not None:
        try:
            r = pot.compute(*_structure_for(pot), threads=1)
            out["compute"] = "ok" if np.isfinite(r.energy) else "unexpected: non-finite energy"
        except ValueError as exc:
            out["compute"] = "clear" if str(exc) else "unexpected: empty message"
        except Exception as exc:  # noqa: BLE001
            out["compute"] = f"unexpected: {type(exc).__name__}: {str(exc)[:200]}"
    return out


def cases(n: int, seed: int = 0, seeds: Dict[str, bytes] = None):
    """Yield (index, seed name, description, bytes) for n seeded mutations."""
    seeds = seeds or seed_models()
    names = sorted(seeds)
    rng = np.random.default_rng(seed)
    for i in range(n):
        base = names[i % len(names)]
        data, what = mutate(seeds[base], rng)
        yield i, base, what, data


def fuzz_seed_file(seed: bytes, n: int, rng_seed: int) -> Tuple[list, int]:
    """Run n seeded mutations of one model file through :func:`run_case`.

    Returns (findings, caught): findings lists the cases with an unexpected outcome or where the
    two readers disagree on whether the file loads (empty when all is well); caught counts the
    cases both readers refused with their documented error."""
    findings, caught = [], 0
    for i, base, what, data in cases(n, seed=rng_seed, seeds={"seed": seed}):
        r = run_case(data)
        if any(v.startswith("unexpected") for v in r.values()):
            findings.append((i, what, r))
        elif (r["python"] == "ok") != (r["core"] == "ok"):
            findings.append((i, what, r, "the readers disagree"))
        caught += r["python"] == "clear" and r["core"] == "clear"
    return findings, caught


Oracle = Callable[[bytes], Dict[str, str]]
