"""Committee training: every member is an independent model with its own loss, its own random
initialisation and its own resample of the training frames, so that the members' spread carries
information about the error (query by committee: J. Behler, Int. J. Quantum Chem. 115, 1032
(2015); M. Gastegger, J. Behler, P. Marquetand, Chem. Sci. 8, 6924 (2017); DeePMD's model
deviation: L. Zhang et al., Phys. Rev. Materials 3, 023804 (2019)).

Optimising only the members' mean (what the trainer did before) lets the members drift apart in
directions the data does not constrain while their mean fits the data: their spread then says
nothing about the error (rMD17 ethanol: spread 45 times the error, correlation -0.08).

All members live in one :class:`~atomforge.train.bpnn.TorchBPNN` (one model file, one descriptor
pass in training and inference); the loss is the mean over members of each member's own loss on
its own frame weights, so no gradient couples two members.
"""
from __future__ import annotations

import numpy as np

#: How each member sees the training frames (config key ``network.committee_data``).
COMMITTEE_DATA = ("bootstrap", "subset", "all")


def frame_weights(n_frames: int, committee: int, mode: str = "bootstrap", seed: int = 0,
                  subset_fraction: float = 0.8) -> np.ndarray:
    """Integer weight of every training frame for every member, (M, n_frames) int64.

    mode ``bootstrap``: member m's weights are the counts of a sample of n_frames frames drawn
    with replacement (Efron's bootstrap; about 63 % of the frames get weight >= 1);
    ``subset``: a random ``subset_fraction`` of the frames (weight 1), the rest 0; ``all``: every
    frame weight 1 (members differ only by their initialisation). A single model (M = 1) always
    gets weight 1 everywhere. Deterministic in (n_frames, committee, mode, seed).

    Raises ValueError for an unknown mode, M < 1 or a fraction outside (0, 1].
    """
    if mode not in COMMITTEE_DATA:
        raise ValueError(f"committee data mode {mode!r} is not one of {COMMITTEE_DATA}")
    if committee < 1:
        raise ValueError(f"committee size must be >= 1, got {committee}")
    if not 0 < subset_fraction <= 1:
        raise ValueError(f"subset_fraction must be in (0, 1], got {subset_fraction}")
    w = np.ones((committee, n_frames), dtype=np.int64)
    if committee == 1 or mode == "all" or n_frames == 0:
        return w
    rng = np.random.default_rng([int(seed), 0xC0111])
    for m in range(committee):
        if mode == "bootstrap":
            w[m] = np.bincount(rng.integers(0, n_frames, size=n_frames), minlength=n_frames)
            if not w[m].any():  # impossible for n_frames >= 1, kept for safety
                w[m, 0] = 1
        else:
            k = max(1, int(round(subset_fraction * n_frames)))
            w[m] = 0
            w[m, rng.choice(n_frames, size=k, replace=False)] = 1
    return w


def committee_loss(model, batch, weights, energy_weight: float, forces_weight: float, has_forces: bool,
                   create_graph: bool):
    """Mean over members of each member's weighted loss on a batch.

    weights: (M, B) frame weights of the batch's frames (None: all 1). Member m's loss is the
    trainer's single-model loss with frame f counted weights[m, f] times:
        w_E sum_f c_f ((E_f - E_f^ref) / N_f / s)^2 / sum_f c_f
      + w_F sum_{f, i in f, k} c_f ((F_ik - F_ik^ref) / s)^2 / (3 sum_f c_f N_f)
    (s = the model's energy scale). A member with no weight in the batch contributes 0.
    Returns (loss, E (B,) committee-mean energies, F (N, 3) committee-mean forces or None).
    """
    import torch

    E, F = model.forward_members(batch, forces=has_forces, create_graph=create_graph)  # (M, B), (M, N, 3)
    M = E.shape[0]
    s = model.energy_scale
    c = torch.ones((M, batch.n_frames), dtype=E.dtype) if weights is None else \
        torch.as_tensor(np.asarray(weights), dtype=E.dtype)
    cw = c.sum(dim=1)  # (M,)
    safe = torch.where(cw > 0, cw, torch.ones_like(cw))
    le = (c * ((E - batch.energy) / batch.n_atoms / s) ** 2).sum(dim=1) / safe
    loss_m = energy_weight * le
    if has_forces:
        ca = c[:, batch.frame]  # (M, N) weight of each atom's frame
        na = (ca.sum(dim=1) * 3)
        lf = (ca.unsqueeze(-1) * ((F - batch.forces) / s) ** 2).sum(dim=(1, 2)) / torch.where(na > 0, na,
                                                                                             torch.ones_like(na))
        loss_m = loss_m + forces_weight * lf
    loss = torch.where(cw > 0, loss_m, torch.zeros_like(loss_m)).mean()
    return loss, E.mean(dim=0), (F.mean(dim=0) if F is not None else None)
