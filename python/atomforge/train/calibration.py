"""Calibration of committee uncertainties, and the training range of the descriptor features.

**Calibration.** A committee's raw spread (energy standard deviation sigma_E, per-atom force
deviation eps_i = sqrt(mean_m |F_i^m - <F_i>|^2), DeePMD's model deviation: L. Zhang et al.,
Phys. Rev. Materials 3, 023804 (2019)) is proportional to, but not equal to, the error: a
committee of M members sees only M samples, and members trained on resamples of the same data
are correlated. One factor per quantity, fitted on the validation frames, makes predicted and
observed mean errors agree:

    c_F = sum_i |F_i - F_i^ref| / sum_i eps_i      (all validation atoms; eV/Angstrom ratio)
    c_E = sum_f |E_f - E_f^ref| / sum_f sigma_E,f  (validation frames)

They are stored in the model file (records ``uncertainty.forces_calibration`` and
``uncertainty.energy_calibration``), and every engine reports c_F eps_i and c_E sigma_E.
Quality measures (:func:`uncertainty_metrics`): the Spearman rank correlation between the
predicted per-frame force error (mean over atoms of c_F eps_i) and the observed one (mean over
atoms of |F_i - F_i^ref|), and the ratio of their means.

**Training range.** :func:`feature_range` gives min and max of every descriptor feature over the
training structures, per element (n2p2's scaling.data holds the same statistics); the core counts
features outside it at every evaluation (extrapolation warnings, J. Behler, Int. J. Quantum
Chem. 115, 1032 (2015)).
"""
from __future__ import annotations

from typing import Dict, List, Optional

import numpy as np


def feature_range(frames, n_elements: int, n_features_per_element: List[int]) -> Optional[List[dict]]:
    """Per element k: {"min": (F_k,), "max": (F_k,)} over the rows of ``frames`` (objects with
    ``G`` (n, F) and ``species`` (n,)). Elements without any atom get an empty range at 0
    ([0, 0]: any non-zero feature of such an atom counts as extrapolation)."""
    out = []
    for k in range(n_elements):
        nf = n_features_per_element[k]
        rows = [f.G[f.species == k, :nf] for f in frames]
        rows = [r for r in rows if len(r)]
        if rows:
            a = np.concatenate(rows)
            out.append({"min": a.min(axis=0).astype(float), "max": a.max(axis=0).astype(float)})
        else:
            out.append({"min": np.zeros(nf), "max": np.zeros(nf)})
    return out


def evaluate_with_uncertainty(potential, ds, threads: int = 0) -> Dict[str, object]:
    """Evaluate a committee on every frame of a Dataset with the C++ core.

    Returns dict with per-frame lists: ``energy`` (eV), ``energy_uncertainty`` (calibrated
    with the model's current factor, eV), ``forces`` (n_f, 3) eV/Angstrom, ``forces_uncertainty``
    (n_f,) eV/Angstrom (calibrated with the current factor), and ``scale``: the factors
    (energy, forces) already applied (1 without calibration records).
    """
    out = {"energy": [], "energy_uncertainty": [], "forces": [], "forces_uncertainty": []}
    warn, potential.warn_extrapolation = potential.warn_extrapolation, False
    for i in range(len(ds)):
        periodic = bool(np.asarray(ds.pbc[i]).any())
        r = potential.compute(ds.positions[i], ds.numbers[i], ds.cells[i] if periodic else None,
                              ds.pbc[i] if periodic else None, threads=threads, uncertainty=True)
        out["energy"].append(r.energy)
        out["energy_uncertainty"].append(r.energy_uncertainty)
        out["forces"].append(r.forces)
        out["forces_uncertainty"].append(r.forces_uncertainty)
    potential.warn_extrapolation = warn
    return out


def fit_calibration(pred: dict, ds, current: Optional[dict] = None) -> Dict[str, float]:
    """Calibration factors {"energy": c_E, "forces": c_F} from validation predictions ``pred``
    (:func:`evaluate_with_uncertainty`) and the reference data ``ds``. ``current``: the factors
    already applied to ``pred`` (divided out first). A zero spread gives factor 1.

    Raises ValueError when the predictions have no force uncertainty (not a committee).
    """
    cur = current or {"energy": 1.0, "forces": 1.0}
    if any(u is None for u in pred["forces_uncertainty"]):
        raise ValueError("calibration needs a committee model (no force uncertainty in the predictions)")
    eps = np.concatenate(pred["forces_uncertainty"]) / cur["forces"]
    out = {"energy": 1.0, "forces": 1.0}
    if ds.forces is not None:
        err = np.concatenate([np.linalg.norm(p - r, axis=1) for p, r in zip(pred["forces"], ds.forces)])
        if eps.sum() > 0:
            out["forces"] = float(err.sum() / eps.sum())
    sig = np.asarray(pred["energy_uncertainty"]) / cur["energy"]
    de = np.abs(np.asarray(pred["energy"]) - np.asarray(ds.energy))
    if sig.sum() > 0:
        out["energy"] = float(de.sum() / sig.sum())
    for k, v in out.items():  # degenerate data (exact fits): keep the factor usable
        if not (np.isfinite(v) and v > 0):
            out[k] = 1.0
    return out


def per_frame_errors(pred: dict, ds) -> Dict[str, np.ndarray]:
    """Per-frame predicted and observed errors: ``predicted_forces`` = mean_i of the (calibrated)
    eps_i, ``observed_forces`` = mean_i |F_i - F_i^ref| (eV/Angstrom), ``predicted_energy`` =
    sigma_E, ``observed_energy`` = |E - E^ref| (eV); all (n_frames,)."""
    out = {"predicted_energy": np.asarray(pred["energy_uncertainty"], dtype=float),
           "observed_energy": np.abs(np.asarray(pred["energy"]) - np.asarray(ds.energy))}
    if ds.forces is not None:
        out["predicted_forces"] = np.array([np.mean(u) for u in pred["forces_uncertainty"]])
        out["observed_forces"] = np.array([np.mean(np.linalg.norm(p - r, axis=1))
                                           for p, r in zip(pred["forces"], ds.forces)])
        out["predicted_forces_atoms"] = np.concatenate(pred["forces_uncertainty"])
        out["observed_forces_atoms"] = np.concatenate([np.linalg.norm(p - r, axis=1)
                                                       for p, r in zip(pred["forces"], ds.forces)])
    return out


def uncertainty_metrics(errors: Dict[str, np.ndarray]) -> Dict[str, float]:
    """Spearman rank correlations (per frame, and per atom for forces) between predicted and
    observed errors, and the ratios mean(predicted) / mean(observed) (1 = calibrated)."""
    from scipy.stats import spearmanr

    def rho(a, b):
        if len(a) < 3 or np.all(a == a[0]) or np.all(b == b[0]):
            return float("nan")
        return float(spearmanr(a, b)[0])

    m = {"energy_spearman": rho(errors["predicted_energy"], errors["observed_energy"]),
         "energy_mean_predicted": float(np.mean(errors["predicted_energy"])),
         "energy_mean_observed": float(np.mean(errors["observed_energy"]))}
    m["energy_ratio"] = m["energy_mean_predicted"] / max(m["energy_mean_observed"], 1e-300)
    if "predicted_forces" in errors:
        m.update({"forces_spearman_frames": rho(errors["predicted_forces"], errors["observed_forces"]),
                  "forces_spearman_atoms": rho(errors["predicted_forces_atoms"], errors["observed_forces_atoms"]),
                  "forces_mean_predicted": float(np.mean(errors["predicted_forces"])),
                  "forces_mean_observed": float(np.mean(errors["observed_forces"]))})
        m["forces_ratio"] = m["forces_mean_predicted"] / max(m["forces_mean_observed"], 1e-300)
    return m


def plot_calibration(errors: Dict[str, np.ndarray], path, title: str = "") -> None:
    """Calibration plot: per-frame predicted (calibrated) against observed force error, and the
    observed per-atom error binned by predicted error (a calibrated model follows y = x)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    has_f = "predicted_forces" in errors
    fig, axes = plt.subplots(1, 3 if has_f else 1, figsize=(13 if has_f else 4.5, 4.2))
    axes = np.atleast_1d(axes)
    met = uncertainty_metrics(errors)

    def scatter(ax, x, y, label, rho):
        # log-log: errors span decades, and a few extrapolating frames would hide the rest
        x, y = 1000 * np.asarray(x), 1000 * np.asarray(y)
        pos = np.concatenate([x[x > 0], y[y > 0]])
        lo, hi = (pos.min() / 1.5, pos.max() * 1.5) if len(pos) else (1e-3, 1.0)
        ax.scatter(np.clip(x, lo, None), np.clip(y, lo, None), s=6, alpha=0.5)
        ax.plot([lo, hi], [lo, hi], "k--", lw=1, label="y = x")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlim(lo, hi)
        ax.set_ylim(lo, hi)
        ax.set_xlabel(f"predicted {label}")
        ax.set_ylabel(f"observed {label}")
        ax.set_title(f"Spearman {rho:.2f}")
        ax.legend(loc="upper left")

    if has_f:
        scatter(axes[0], errors["predicted_forces"], errors["observed_forces"], "force error per frame (meV/A)",
                met["forces_spearman_frames"])
        p, o = errors["predicted_forces_atoms"], errors["observed_forces_atoms"]
        edges = np.quantile(p, np.linspace(0, 1, 11))
        idx = np.clip(np.searchsorted(edges, p, side="right") - 1, 0, 9)
        xm = np.array([p[idx == b].mean() for b in range(10) if (idx == b).any()])
        ym = np.array([o[idx == b].mean() for b in range(10) if (idx == b).any()])
        ax = axes[1]
        ax.plot(1000 * xm, 1000 * ym, "o-", label="mean observed per decile")
        lo, hi = 1000 * min(xm.min(), ym.min()) / 1.3, 1000 * max(xm.max(), ym.max()) * 1.3
        ax.plot([lo, hi], [lo, hi], "k--", lw=1, label="y = x")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("predicted per-atom force error c_F eps_i (meV/A)")
        ax.set_ylabel("observed |F_i - F_i^ref| (meV/A)")
        ax.set_title(f"per atom, Spearman {met['forces_spearman_atoms']:.2f}")
        ax.legend(loc="upper left")
        scatter(axes[2], errors["predicted_energy"], errors["observed_energy"], "energy error (meV)",
                met["energy_spearman"])
    else:
        scatter(axes[0], errors["predicted_energy"], errors["observed_energy"], "energy error (meV)",
                met["energy_spearman"])
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def calibrate_model(model_path, params, valid_ds, test_ds=None, run_dir=None) -> Dict[str, object]:
    """Fit the calibration factors of the committee ``params`` (saved at ``model_path``) on
    ``valid_ds``, store them in the model file (rewritten atomically) and, with ``run_dir``,
    draw ``calibration.png`` (on ``test_ds`` when given, else on the validation frames).

    Returns {"calibration": factors, "validation": metrics, "test": metrics or absent} with the
    metrics of :func:`uncertainty_metrics` after calibration.
    """
    from pathlib import Path

    from .. import load, save_model

    params.calibration = None
    save_model(model_path, params)
    pred = evaluate_with_uncertainty(load(model_path), valid_ds)
    factors = fit_calibration(pred, valid_ds)
    params.calibration = factors
    save_model(model_path, params)
    pot = load(model_path)
    out: Dict[str, object] = {"calibration": factors, "validation": uncertainty_metrics(
        per_frame_errors(evaluate_with_uncertainty(pot, valid_ds), valid_ds))}
    shown, name = valid_ds, "validation"
    if test_ds is not None and len(test_ds):
        err = per_frame_errors(evaluate_with_uncertainty(pot, test_ds), test_ds)
        out["test"] = uncertainty_metrics(err)
        shown, name = test_ds, "test"
    else:
        err = per_frame_errors(evaluate_with_uncertainty(pot, valid_ds), valid_ds)
    if run_dir is not None:
        plot_calibration(err, Path(run_dir) / "calibration.png",
                         f"committee of {params.committee_size}, calibrated on {len(valid_ds)} validation frames "
                         f"(c_F = {factors['forces']:.3g}, c_E = {factors['energy']:.3g}); shown: {name} frames")
    return out
