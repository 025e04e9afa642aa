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
        r = potential.compute(ds.positions[i], ds.numbers[i], ds.cells[i] if periodic else None,
                              ds.pbc[i] if periodic else None, threads=threads)
        ep.append(r.energy)
        fp.append(r.forces)
    has_f = ds.forces is not None
    m = error_metrics(ep, ds.energy, ds.n_atoms, fp if has_f else None, ds.forces if has_f else None)
    return np.array(ep), fp, m


UNITS = {"energy_mae": "eV", "energy_rmse": "eV", "energy_mae_per_atom": "eV/atom",
         "energy_rmse_per_atom": "eV/atom", "forces_mae": "eV/Angstrom", "forces_rmse": "eV/Angstrom",
         "*_kcal_mol": "kcal/mol, kcal/mol/atom or kcal/mol/Angstrom"}


def plot_learning_curve(history: List[dict], path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ep = [h["epoch"] for h in history]
    fig, ax = plt.subplots(1, 2, figsize=(10, 4))
    ax[0].semilogy(ep, [h["train_loss"] for h in history], label="train")
    ax[0].semilogy(ep, [h["valid_loss"] for h in history], label="validation")
    ax[0].set_xlabel("epoch"); ax[0].set_ylabel("loss"); ax[0].legend()
    if "valid_forces_mae" in history[0]:
        ax[1].semilogy(ep, [1000 * h["valid_forces_mae"] for h in history], label="forces MAE (meV/A)")
    ax[1].semilogy(ep, [1000 * h["valid_energy_mae_per_atom"] for h in history], label="energy MAE (meV/atom)")
    ax[1].set_xlabel("epoch"); ax[1].set_title("validation"); ax[1].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_parity(e_pred, e_ref, n_atoms, f_pred, f_ref, path, title="test set") -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 2 if f_pred is not None else 1, figsize=(10, 4.5), squeeze=False)
    ea, eb = np.asarray(e_ref) / n_atoms, np.asarray(e_pred) / n_atoms
    ax[0, 0].plot(ea, eb, ".", ms=3)
    lim = [min(ea.min(), eb.min()), max(ea.max(), eb.max())]
    ax[0, 0].plot(lim, lim, "k-", lw=0.5)
    ax[0, 0].set_xlabel("reference energy (eV/atom)"); ax[0, 0].set_ylabel("predicted (eV/atom)")
    if f_pred is not None:
        fa, fb = np.concatenate([np.ravel(f) for f in f_ref]), np.concatenate([np.ravel(f) for f in f_pred])
        ax[0, 1].plot(fa, fb, ".", ms=1, alpha=0.4)
        lim = [min(fa.min(), fb.min()), max(fa.max(), fb.max())]
        ax[0, 1].plot(lim, lim, "k-", lw=0.5)
        ax[0, 1].set_xlabel("reference force (eV/A)"); ax[0, 1].set_ylabel("predicted (eV/A)")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
