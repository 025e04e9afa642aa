"""Error metrics and plots of a run (eV, eV/Angstrom; kcal/mol copies for molecular work)."""
from __future__ import annotations

from typing import List, Optional

import numpy as np
from ..units import KCAL_PER_MOL as KCAL_MOL  # eV per kcal/mol (the core's table)


def error_metrics(e_pred, e_ref, n_atoms, f_pred: Optional[List[np.ndarray]] = None,
                  f_ref: Optional[List[np.ndarray]] = None) -> dict:
    """energy_mae, energy_rmse (eV), energy_mae_per_atom (eV/atom), forces_mae, forces_rmse
    (eV/Angstrom, over all components), and the same in kcal/mol(/Angstrom) with suffix _kcal_mol."""
    de = np.asarray(e_pred) - np.asarray(e_ref)
    m = {"n_frames": int(len(de)),
         "energy_mae": float(np.mean(np.abs(de))),
         "energy_rmse": float(np.sqrt(np.mean(de ** 2))),
         "energy_mae_per_atom": float(np.mean(np.abs(de) / np.asarray(n_atoms))),
         "energy_rmse_per_atom": float(np.sqrt(np.mean((de / np.asarray(n_atoms)) ** 2)))}
    if f_pred is not None and f_ref is not None:
        df = np.concatenate([np.ravel(a - b) for a, b in zip(f_pred, f_ref)])
        m["forces_mae"] = float(np.mean(np.abs(df)))
        m["forces_rmse"] = float(np.sqrt(np.mean(df ** 2)))
    for k in list(m):
        if k.startswith(("energy_", "forces_")):
            m[k + "_kcal_mol"] = m[k] / KCAL_MOL
    return m


def evaluate_dataset(potential, ds, threads: int = 0):
    """Evaluate a loaded potential (atomforge.load) on every frame of a Dataset with the C++ core.

    Returns (predicted energies (F,) eV, list of predicted forces (n_i, 3) eV/A, metrics dict of
    :func:`error_metrics`; force metrics only when the dataset has forces).
    """
    ep, fp = [], []
    for i in range(len(ds)):
        periodic = bool(np.asarray(ds.pbc[i]).any())
        # models whose energy depends on the total charge (pinn) get the frame's
        q = float(ds.total_charge[i]) if ds.total_charge is not None and "charges" in potential.capabilities else 0.0
        r = potential.compute(ds.positions[i], ds.numbers[i], ds.cells[i] if periodic else None,
                              ds.pbc[i] if periodic else None, threads=threads, charge=q)
        ep.append(r.energy)
        fp.append(r.forces)
    has_f = ds.forces is not None
    m = error_metrics(ep, ds.energy, ds.n_atoms, fp if has_f else None, ds.forces if has_f else None)
    return np.array(ep), fp, m


UNITS = {"energy_mae": "eV", "energy_rmse": "eV", "energy_mae_per_atom": "eV/atom",
         "energy_rmse_per_atom": "eV/atom", "forces_mae": "eV/Angstrom", "forces_rmse": "eV/Angstrom",
         "*_kcal_mol": "kcal/mol, kcal/mol/atom or kcal/mol/Angstrom"}


def plot_learning_curve(history: List[dict], path, best_epoch: Optional[int] = None,
                        stop_reason: Optional[str] = None) -> None:
    """Learning curve, one quantity per axis: loss (dimensionless, in units of the energy scale),
    validation force MAE (meV/Angstrom) and validation energy MAE (meV/atom), against epoch.

    ``best_epoch`` (the epoch model.afm comes from) is marked on every panel; ``stop_reason``
    (e.g. ``"early stopping"``) labels the last epoch's marker.
    """
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ep = [h["epoch"] for h in history]
    has_f = "valid_forces_mae" in history[0]
    fig, ax = plt.subplots(1, 3 if has_f else 2, figsize=(14 if has_f else 10, 4), squeeze=False)
    ax = ax[0]
    ax[0].semilogy(ep, [h["train_loss"] for h in history], label="train")
    ax[0].semilogy(ep, [h["valid_loss"] for h in history], label="validation")
    ax[0].set_ylabel("loss (dimensionless)")
    panels = [(ax[0], None)]
    k = 1
    if has_f:
        ax[k].semilogy(ep, [1000 * h["valid_forces_mae"] for h in history], color="C2")
        ax[k].set_ylabel("validation force MAE (meV/\u00c5)")
        k += 1
    ax[k].semilogy(ep, [1000 * h["valid_energy_mae_per_atom"] for h in history], color="C3")
    ax[k].set_ylabel("validation energy MAE (meV/atom)")
    for a in ax:
        a.set_xlabel("epoch")
        if best_epoch is not None and best_epoch >= 0:
            a.axvline(best_epoch, color="k", ls="--", lw=0.8, label=f"best epoch {best_epoch} (model.afm)")
        if stop_reason:
            a.axvline(ep[-1], color="r", ls=":", lw=1.0, label=f"stopped: {stop_reason}")
    for a in ax:
        a.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _annotate_errors(ax, ref, pred, unit: str, scale: float = 1000.0) -> None:
    d = np.asarray(pred) - np.asarray(ref)
    mae, rmse = scale * np.mean(np.abs(d)), scale * np.sqrt(np.mean(d ** 2))
    ax.text(0.04, 0.96, f"MAE {mae:.3g} {unit}\nRMSE {rmse:.3g} {unit}", transform=ax.transAxes, va="top",
            ha="left", fontsize=9, bbox=dict(boxstyle="round", fc="white", ec="0.7"))


def plot_parity(e_pred, e_ref, n_atoms, f_pred, f_ref, path, title="test set") -> None:
    """Parity plots of energy per atom (eV/atom) and force components (eV/Angstrom), each with
    its MAE and RMSE (meV/atom, meV/Angstrom) written on the panel."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 2 if f_pred is not None else 1, figsize=(10, 4.5), squeeze=False)
    ea, eb = np.asarray(e_ref) / n_atoms, np.asarray(e_pred) / n_atoms
    ax[0, 0].plot(ea, eb, ".", ms=3)
    lim = [min(ea.min(), eb.min()), max(ea.max(), eb.max())]
    ax[0, 0].plot(lim, lim, "k-", lw=0.5)
    ax[0, 0].set_xlabel("reference energy (eV/atom)"); ax[0, 0].set_ylabel("predicted energy (eV/atom)")
    _annotate_errors(ax[0, 0], ea, eb, "meV/atom")
    if f_pred is not None:
        fa, fb = np.concatenate([np.ravel(f) for f in f_ref]), np.concatenate([np.ravel(f) for f in f_pred])
        ax[0, 1].plot(fa, fb, ".", ms=1, alpha=0.4)
        lim = [min(fa.min(), fb.min()), max(fa.max(), fb.max())]
        ax[0, 1].plot(lim, lim, "k-", lw=0.5)
        ax[0, 1].set_xlabel("reference force component (eV/\u00c5)")
        ax[0, 1].set_ylabel("predicted force component (eV/\u00c5)")
        _annotate_errors(ax[0, 1], fa, fb, "meV/\u00c5")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
