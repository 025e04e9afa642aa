"""Import and export of the reference implementation's model format (``sgdml`` package, 1.0.x).

An sgdml model is an ``.npz`` with (among others) ``type = 'm'``, ``z`` (N,), ``R_desc`` (d, M),
``R_d_desc_alpha`` (M, d), ``perms`` (S, N), ``tril_perms_lin`` (S*d,), ``sig``, ``std``, ``c``,
``lam``, ``alphas_F`` (M*3N,) and ``e_unit`` / ``r_unit``. Its energies and forces are in the units
of the data it was trained on (MD17: kcal/mol and Angstrom); atomforge converts to eV here.
Only the non-periodic force-field models (no ``lattice``, no ``alphas_E``) are supported.
"""
from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np

from .._fileio import atomic_write
from .._inputs import atomic_numbers_array
from ..model_file import ModelFileError
from .model import SGDMLParameters, descriptor_size, tril_perms

def _energy_factor(unit: str, where: str) -> float:
    from ..units import HARTREE, KCAL_PER_MOL, KJ_PER_MOL
    u = str(unit).strip().lower()
    table = {"ev": 1.0, "mev": 1e-3, "kcal/mol": KCAL_PER_MOL, "kj/mol": KJ_PER_MOL,
             "ha": HARTREE, "hartree": HARTREE, "au": HARTREE}
    if u not in table:
        raise ModelFileError(f"{where}: unsupported energy unit {unit!r} (known: {sorted(table)})")
    return table[u]


def _text(v) -> str:
    a = np.asarray(v)
    return str(a.item() if a.ndim == 0 else a.tolist())


def import_sgdml_npz(path, energy_unit: str = None) -> SGDMLParameters:
    """Read an sgdml (1.0.x) model ``.npz`` into :class:`SGDMLParameters` (eV, Angstrom).

    ``energy_unit`` overrides/gives the model's energy unit when the file has no ``e_unit``.
    Raises ModelFileError (a ValueError) for an unreadable or corrupt file, a non-model npz, a
    periodic or energy-constrained model, a length unit other than Angstrom, or inconsistent
    arrays (each message names the file).
    """
    where = str(path)
    try:
        f = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise ModelFileError(f"{where}: no such file") from None
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise ModelFileError(f"{where}: not a readable sgdml model .npz ({exc})") from None
    if not isinstance(f, np.lib.npyio.NpzFile):
        raise ModelFileError(f"{where}: not an .npz archive")
    try:
        def get(key):
            if key not in f.files:
                raise ModelFileError(f"{where}: not an sgdml model: key {key!r} is missing")
            return f[key]

        if _text(get("type")) != "m":
            raise ModelFileError(f"{where}: type is {_text(f['type'])!r}, not an sgdml model ('m')")
        if "lattice" in f.files:
            raise ModelFileError(f"{where}: periodic sgdml models (with 'lattice') are not supported")
        if "alphas_E" in f.files:
            raise ModelFileError(f"{where}: energy-constrained sgdml models (with 'alphas_E') are not supported")
        unit = energy_unit or (_text(f["e_unit"]) if "e_unit" in f.files else None)
        if unit is None:
            raise ModelFileError(f"{where}: the model does not say its energy unit (no 'e_unit'); "
                                 f"pass energy_unit='kcal/mol' (MD17) or 'eV'")
        if "r_unit" in f.files and _text(f["r_unit"]).strip().lower() not in ("ang", "angstrom", "a"):
            raise ModelFileError(f"{where}: length unit {_text(f['r_unit'])!r}: only Angstrom models are supported")
        ef = _energy_factor(unit, where)
        try:
            z = atomic_numbers_array(np.asarray(get("z")).ravel(), f"{where}: key 'z'")
        except (TypeError, ValueError) as exc:
            raise ModelFileError(str(exc)) from None
        n = len(z)
        d = descriptor_size(n)
        R_desc = np.asarray(get("R_desc"), dtype=float)
        if R_desc.ndim != 2 or R_desc.shape[0] != d:
            raise ModelFileError(f"{where}: R_desc has shape {R_desc.shape}, expected ({d}, n_train) for {n} atoms")
        R_desc = np.ascontiguousarray(R_desc.T)
        V = np.asarray(get("R_d_desc_alpha"), dtype=float)
        perms = np.atleast_2d(np.asarray(get("perms"))).astype(np.int64)
        tpl = np.asarray(get("tril_perms_lin")).astype(np.int64).ravel()
        if perms.ndim != 2 or perms.shape[1] != n:
            raise ModelFileError(f"{where}: perms has shape {perms.shape}, expected (n_perms, {n})")
        S = len(perms)
        if tpl.shape != (S * d,):
            raise ModelFileError(f"{where}: tril_perms_lin has {tpl.size} entries, expected {S * d}")
        tp = (tpl.reshape(d, S).T - np.arange(S)[:, None] * d)
        try:
            tp_expected = tril_perms(perms)
        except IndexError:
            raise ModelFileError(f"{where}: perms has entries outside 0..{n - 1}") from None
        if not np.array_equal(tp, tp_expected):
            raise ModelFileError(f"{where}: tril_perms_lin does not match perms (corrupt model)")
        alphas = None
        if "alphas_F" in f.files:
            a = np.asarray(f["alphas_F"], dtype=float)
            if a.size == R_desc.shape[0] * 3 * n:
                alphas = a.reshape(R_desc.shape[0], 3 * n)
        p = SGDMLParameters(numbers=z, perms=perms, sigma=float(get("sig")), std=float(f["std"]) * ef
                            if "std" in f.files else ef, c=float(get("c")) * ef, R_desc=R_desc, R_d_desc_alpha=V,
                            lam=float(f["lam"]) if "lam" in f.files else 1e-10, alphas_F=alphas,
                            metadata={"source": f"imported from sgdml model {Path(where).name}",
                                      "sgdml_energy_unit": str(unit)})
        if "code_version" in f.files:
            p.metadata["sgdml_code_version"] = _text(f["code_version"])
        if "dataset_name" in f.files:
            p.metadata["description"] = f"sgdml model of {_text(f['dataset_name'])}"
    except ModelFileError:
        raise
    except (ValueError, KeyError, OSError, zipfile.BadZipFile, EOFError, TypeError) as exc:
        raise ModelFileError(f"{where}: corrupt sgdml model .npz ({exc})") from None
    finally:
        f.close()
    try:
        p.validate()
    except ModelFileError as exc:
        raise ModelFileError(f"{where}: {exc}") from None
    p.cutoff = p.default_cutoff()
    return p


def export_sgdml_npz(params: SGDMLParameters, path, energy_unit: str = "kcal/mol",
                     dataset_name: str = "atomforge", dataset_theory: str = "unknown") -> Path:
    """Write ``params`` as an sgdml 1.0.x model ``.npz`` (energies in ``energy_unit``, lengths in
    Angstrom), predicting identically in ``sgdml.predict.GDMLPredict``. Atomic write."""
    params.validate()
    ef = _energy_factor(energy_unit, str(path))
    M = params.n_train
    tp = tril_perms(params.perms)
    S, d = tp.shape
    tpl = (tp + np.arange(S)[:, None] * d).flatten("F")
    arrays = {
        "type": np.array("m"), "code_version": np.array("1.0.3"),
        "dataset_name": np.array(dataset_name), "dataset_theory": np.array(dataset_theory),
        "solver_name": np.array("analytic"), "z": np.asarray(params.numbers, dtype=np.int64),
        "idxs_train": np.arange(M), "md5_train": np.array(""), "idxs_valid": np.arange(0),
        "md5_valid": np.array(""), "n_test": np.array(0), "md5_test": np.array(""),
        "R_desc": np.ascontiguousarray(np.asarray(params.R_desc).T),
        "R_d_desc_alpha": np.asarray(params.R_d_desc_alpha, dtype=float),
        "c": np.array(params.c / ef), "std": np.array(params.std / ef),
        "sig": np.array(int(params.sigma) if float(params.sigma).is_integer() else float(params.sigma)),
        "lam": np.array(params.lam), "perms": np.asarray(params.perms, dtype=np.int64),
        "tril_perms_lin": tpl.astype(np.int64), "use_E": np.array(True),
        "r_unit": np.array("Ang"), "e_unit": np.array(energy_unit),
    }
    if params.alphas_F is not None:
        arrays["alphas_F"] = np.asarray(params.alphas_F, dtype=float).ravel()

    def write(fh):
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        fh.write(buf.getvalue())

    return atomic_write(path, write, binary=True)
