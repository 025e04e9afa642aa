"""(Re)training of the committee inside adaptive sampling: a compact, deterministic loop on the
labelled structures, with the pieces of :mod:`atomforge.train` (TorchBPNN, committee loss with
bootstrap frame weights, training range, calibration on the validation labels).

Deterministic by construction: fixed epoch counts (no wall-time limits), batch orders and
bootstrap weights from seeded generators, a fixed torch thread count; the first committee starts
from seeded random weights, every later one from the previous committee's weights and input
scaling (warm start). Retraining the same labels with the same seed therefore gives the same
model, which is what makes ``--resume`` after a kill reproduce an uninterrupted run.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Tuple

import numpy as np


def _descriptor(cfg: dict, elements: List[str]):
    from ..descriptors import descriptor_class
    from ..train.config import descriptor_defaults

    d = {**descriptor_defaults(cfg["descriptor"].get("type", "acsf")), **cfg["descriptor"]}
    sf = descriptor_class(d["type"]).from_config(d, elements)
    sf.check_training_elements(elements)
    return sf


def _load_weights(model, params) -> None:
    """Copy the networks, scaling, reference energies and energy scale of BPNNParameters into a
    TorchBPNN of the same architecture (warm start)."""
    import torch
    from torch import nn

    if params.committee_size != len(model.members):
        raise ValueError(f"warm start: the model has {params.committee_size} members, the configuration "
                         f"{len(model.members)}")
    with torch.no_grad():
        for k in range(len(model.elements)):
            nf = model.n_features[k]
            model.shift[k, :nf] = torch.as_tensor(params.scaling[k]["shift"])
            model.scale[k, :nf] = torch.as_tensor(params.scaling[k]["scale"])
        model.reference.copy_(torch.as_tensor(np.asarray(params.reference_energies, dtype=float)))
        model.energy_scale.fill_(float(params.energy_scale))
        for m, member in enumerate(model.members):
            for n, net in enumerate(member):
                lins = [x for x in net if isinstance(x, nn.Linear)]
                layers = params.networks[m][n]
                if len(lins) != len(layers):
                    raise ValueError("warm start: the model's network depth differs from the configuration")
                for lin, (W, b) in zip(lins, layers):
                    if tuple(lin.weight.shape) != W.shape:
                        raise ValueError("warm start: the model's layer widths differ from the configuration")
                    lin.weight.copy_(torch.as_tensor(W))
                    lin.bias.copy_(torch.as_tensor(b))


def train_committee(frames: List[dict], validation: np.ndarray, cfg: dict, elements: List[str], seed: int,
                    init=None, log=None) -> Tuple[object, Dict[str, float]]:
    """Train a committee on labelled frames and return (BPNNParameters, metrics).

    frames: dicts with ``numbers`` (n,), ``positions`` (n, 3) Angstrom, ``cell`` (3, 3),
    ``pbc`` (3,), ``energy`` eV, ``forces`` (n, 3) eV/Angstrom. validation: bool (F,), frames
    held out of training (calibration and errors). init: BPNNParameters to start from (warm
    start: its weights and input scaling), else random weights and scaling from the data.
    seed: seeds weights, bootstrap weights and batch order. Epochs: cfg training.epochs (warm
    start) or training.epochs_seed.

    metrics: ``train_forces_mae``, ``valid_forces_mae`` (eV/Angstrom, C++ evaluation; nan without
    validation frames), ``n_train``, ``n_valid``, ``calibration`` factors and ``valid_max_u``
    (median calibrated max_i eps_i over the validation frames, nan without them).
    Raises ValueError when no frame is left for training.
    """
    import torch

    from .. import load
    from ..model_file import encode_records
    from ..train.bpnn import FrameStore, TorchBPNN, featurize
    from ..train.calibration import feature_range, fit_calibration
    from ..train.committee import committee_loss, frame_weights

    tr, net = cfg["training"], cfg["network"]
    torch.set_num_threads(int(tr["threads"]))
    validation = np.asarray(validation, dtype=bool)
    train_idx = np.flatnonzero(~validation)
    valid_idx = np.flatnonzero(validation)
    if len(train_idx) == 0:
        raise ValueError("no training frames (every labelled frame is a validation frame)")
    sf = _descriptor(cfg, elements)
    feats = [featurize(sf, f["positions"], f["numbers"], f["cell"] if np.any(f["pbc"]) else None,
                       f["pbc"] if np.any(f["pbc"]) else None) for f in frames]
    tf = [feats[i] for i in train_idx]
    ne, F = len(sf.elements), sf.n_features
    nfe = [sf.n_features_per_element[e] for e in sf.elements]
    franges = feature_range(tf, ne, nfe)
    energies = np.array([frames[i]["energy"] for i in train_idx], dtype=float)
    forces = [np.asarray(frames[i]["forces"], dtype=float) for i in train_idx]
    if init is None:
        shift, scale = np.zeros((ne, F)), np.ones((ne, F))
        for k in range(ne):
            rows = np.concatenate([f.G[f.species == k] for f in tf])
            if len(rows):
                shift[k] = rows.mean(axis=0)
                std = rows.std(axis=0)
                scale[k] = np.where(std > 1e-12, 1.0 / np.where(std > 1e-12, std, 1.0), 1.0)
        counts = np.array([[np.sum(f.species == k) for k in range(ne)] for f in tf], dtype=float)
        ref, *_ = np.linalg.lstsq(counts, energies, rcond=None)
        escale = max(float(np.sqrt(np.mean(np.concatenate([f.ravel() for f in forces]) ** 2))), 1e-3)
        model = TorchBPNN(sf, net["hidden"], net["activation"], net["committee"], shift, scale, ref, escale,
                          seed=seed)
    else:
        model = TorchBPNN(sf, net["hidden"], net["activation"], net["committee"], seed=seed)
        _load_weights(model, init)
    store = FrameStore(tf, energies, forces)
    M = net["committee"]
    weights = frame_weights(len(train_idx), M, net["committee_data"], seed)
    epochs = int(tr["epochs"] if init is not None else tr["epochs_seed"])
    opt = torch.optim.Adam(model.parameters(), lr=tr["learning_rate"])
    lr0, lr1 = float(tr["learning_rate"]), min(float(tr["min_learning_rate"]), float(tr["learning_rate"]))
    bs = int(tr["batch_size"])
    model.train()
    for epoch in range(epochs):
        x = epoch / max(epochs - 1, 1)
        for g in opt.param_groups:
            g["lr"] = lr1 + 0.5 * (lr0 - lr1) * (1 + np.cos(np.pi * x))
        order = np.random.default_rng([seed, epoch]).permutation(len(train_idx))
        for s in range(0, len(order), bs):
            idx = order[s:s + bs]
            b = store.batch(idx)
            opt.zero_grad()
            loss, _, _ = committee_loss(model, b, weights[:, idx], tr["energy_weight"], tr["forces_weight"], True,
                                        create_graph=True)
            loss.backward()
            opt.step()
        if log is not None and (epoch + 1) % max(1, epochs // 4) == 0:
            log(f"epoch {epoch + 1}/{epochs}: loss {loss.item():.4g}")
    model.eval()
    params = model.to_parameters({"source": "atomforge adaptive-sampling"})
    params.feature_range = franges
    pot = load(encode_records(params.to_records()))
    pot.warn_extrapolation = False

    def errors(idx):
        out, maxu = [], []
        for i in idx:
            f = frames[i]
            r = pot.compute(f["positions"], f["numbers"], f["cell"] if np.any(f["pbc"]) else None,
                            f["pbc"] if np.any(f["pbc"]) else None, uncertainty=True)
            out.append((r, f))
        return out

    tr_res = errors(train_idx)
    metrics = {"n_train": int(len(train_idx)), "n_valid": int(len(valid_idx)),
               "train_forces_mae": float(np.mean(np.concatenate([np.abs(r.forces - f["forces"]).ravel()
                                                                 for r, f in tr_res])))}
    if len(valid_idx):
        va = errors(valid_idx)
        pred = {"energy": [r.energy for r, _ in va], "energy_uncertainty": [r.energy_uncertainty for r, _ in va],
                "forces": [r.forces for r, _ in va], "forces_uncertainty": [r.forces_uncertainty for r, _ in va]}

        class _DS:  # the reference values fit_calibration reads
            energy = np.array([f["energy"] for _, f in va])
            forces = [np.asarray(f["forces"]) for _, f in va]

        cal = fit_calibration(pred, _DS)
        params.calibration = cal
        metrics["valid_forces_mae"] = float(np.mean(np.concatenate([np.abs(r.forces - f["forces"]).ravel()
                                                                    for r, f in va])))
        metrics["valid_max_u"] = float(np.median([cal["forces"] * np.max(r.forces_uncertainty) for r, _ in va]))
        metrics["calibration"] = cal
    else:
        metrics.update(valid_forces_mae=float("nan"), valid_max_u=float("nan"), calibration=None)
    return params, metrics
