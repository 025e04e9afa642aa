"""Physics-embedded potentials (model type ``pinn``) in PyTorch, for training.

Model (PhysNet: O. T. Unke, M. Meuwly, JCTC 15, 3678 (2019); 4G-HDNNP: T. W. Ko et al., Nat.
Commun. 12, 398 (2021)); for atom i of element k in frame b::

    E_i^short = reference_k + energy_scale * NN_E(x_i)                 (:class:`TorchBPNN`, eV)
    q_i       = q~_i - w_i (sum_{j in b} q~_j - Q_b) / sum_{j in b} w_j  (:class:`TorchDipole`, e)
    E_elec,b  = k_e sum_{i<j in b} q_i q_j erf(r_ij / gamma_ij) / r_ij,
                gamma_ij = sqrt(2 (sigma_i^2 + sigma_j^2))             (1 / r_ij for sigma = 0)
    E_b       = sum_{i in b} E_i^short + E_elec,b

Forces F = -dE/dr with the chain rule through the descriptor (the core's sparse Jacobian, as in
:class:`TorchBPNN`) for E_short and for the charges' dependence on G, plus the explicit position
dependence of E_elec; all by autograd, so forces train with respect to every weight.

Only open boundaries (molecules and clusters) are implemented here: the direct sum above is the
open-boundary case of the core's electrostatics (cpp/src/electrostatics/ewald.hpp), which the
exported model evaluates identically. Periodic frames are refused (:class:`PeriodicNotSupported`):
training on periodic cells needs a PyTorch Ewald sum, not written yet; the core evaluates periodic
pinn models.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..descriptors import Descriptor
from ..models.pinn import PinnParameters
from ..units import COULOMB
from .bpnn import TorchBPNN
from .dipole import TorchDipole
from .trainer import Trainer


class PeriodicNotSupported(ValueError):
    """Raised for periodic frames: pinn training supports open boundaries only (module docstring)."""


def pair_indices(n_atoms) -> tuple:
    """All pairs i < j inside each frame of a batch, as batch-local atom indices.

    n_atoms: (B,) atom counts. Returns (i, j), two int64 tensors of length sum_b n_b (n_b - 1) / 2.
    """
    ii, jj, off = [], [], 0
    for n in np.asarray(n_atoms, dtype=np.int64):
        a, b = np.triu_indices(int(n), k=1)
        ii.append(a + off)
        jj.append(b + off)
        off += int(n)
    cat = (lambda x: np.concatenate(x)) if ii else (lambda x: np.zeros(0, dtype=np.int64))
    return torch.as_tensor(cat(ii), dtype=torch.long), torch.as_tensor(cat(jj), dtype=torch.long)


def coulomb_energy(positions: torch.Tensor, q: torch.Tensor, sigma: torch.Tensor, frame: torch.Tensor,
                   n_frames: int, pairs) -> torch.Tensor:
    """Open-boundary energy (n_frames,) eV of Gaussian charges, the direct sum of Eq. (1) of
    cpp/src/electrostatics/ewald.hpp: k_e sum_{i<j} q_i q_j erf(r_ij / gamma_ij) / r_ij.

    positions (N, 3) Angstrom, q (N,) e, sigma (N,) Angstrom (0: point charge), frame (N,) frame
    index of each atom, pairs (i, j) from :func:`pair_indices`. Differentiable in all inputs.
    """
    i, j = pairs
    d = positions[j] - positions[i]
    r = torch.sqrt((d * d).sum(dim=1))
    gamma = torch.sqrt(2.0 * (sigma[i] ** 2 + sigma[j] ** 2))
    smeared = gamma > 0
    safe = torch.where(smeared, gamma, torch.ones_like(gamma))
    f = torch.where(smeared, torch.erf(r / safe), torch.ones_like(r))
    e = COULOMB * q[i] * q[j] * f / r
    return torch.zeros(n_frames, dtype=positions.dtype).index_add(0, frame[i], e)


class TorchPinn(nn.Module):
    """Short-range atomic networks plus Coulomb energy of network charges (module docstring).

    Args:
        sf: the descriptor (both networks read it). hidden, activation, shift, scale,
        reference_energies, energy_scale, shared: as :class:`TorchBPNN` (one member).
        charge_hidden, charge_scheme ("uniform" | "weighted"), weight_hidden, charge_reference
        (n_elements,) e, charge_scale (e): as :class:`TorchDipole` (one member, same scaling).
        sigma: (n_elements,) Gaussian widths, Angstrom (>= 0). accuracy: the Ewald accuracy
        written to the model file (the core's periodic sums). seed: initialisation.

    Raises ValueError for a bad sigma or accuracy and what TorchBPNN / TorchDipole raise.
    """

    def __init__(self, sf: Descriptor, hidden=(64, 64), activation="tanh", shift=None, scale=None,
                 reference_energies=None, energy_scale=1.0, charge_hidden=(16, 16), charge_scheme="uniform",
                 weight_hidden=(16,), charge_reference=None, charge_scale=1.0, sigma=None, accuracy=1e-8, seed=0,
                 shared=False):
        super().__init__()
        ne = len(sf.elements)
        s = np.ones(ne) if sigma is None else np.asarray(sigma, dtype=float)
        if s.shape != (ne,) or not np.all(np.isfinite(s)) or np.any(s < 0):
            raise ValueError(f"sigma needs {ne} finite widths >= 0 (Angstrom, one per element {sf.elements}), got {sigma!r}")
        if not (1e-15 <= float(accuracy) <= 1e-1):
            raise ValueError(f"accuracy must be in [1e-15, 0.1], got {accuracy!r}")
        self.short = TorchBPNN(sf, hidden, activation, 1, shift, scale, reference_energies, energy_scale, seed=seed,
                               shared=shared)
        self.charge = TorchDipole(sf, charge_hidden, activation, 1, shift, scale, charge_reference, charge_scale,
                                  charge_scheme, weight_hidden, seed=seed + 1, shared=shared)
        self.register_buffer("sigma", torch.as_tensor(s, dtype=torch.float64))
        self.accuracy = float(accuracy)
        self.sf = sf

    @property
    def energy_scale(self):
        return self.short.energy_scale

    def charges(self, G, species, frame, n_frames, total_charge) -> torch.Tensor:
        """Charges (N,) e with sum over each frame equal to total_charge (n_frames,) exactly."""
        qt, w = self.charge.partials(G, species)
        qt, w = qt[:, 0], w[:, 0]
        Sq = torch.zeros(n_frames, dtype=qt.dtype).index_add(0, frame, qt)
        Sw = torch.zeros(n_frames, dtype=qt.dtype).index_add(0, frame, w)
        return qt - w * ((Sq - total_charge) / Sw)[frame]

    def forward(self, batch, forces: bool = True, create_graph: bool = False):
        """Energies (B,) eV, forces (N, 3) eV/Angstrom (None unless ``forces``), charges (N,) e
        and dipoles (B, 3) e*Angstrom of a batch: a :class:`~atomforge.train.bpnn.Batch` with
        ``positions`` (N, 3) Angstrom and ``total_charge`` (B,) e set (and the Jacobian for
        forces). Raises PeriodicNotSupported when ``batch.periodic`` is true."""
        if getattr(batch, "periodic", False):
            raise PeriodicNotSupported("pinn training supports open boundaries (molecules) only: the PyTorch "
                                       "Ewald sum for periodic cells is not implemented yet")
        B = batch.n_frames
        G = batch.G.detach().requires_grad_(forces)
        R = batch.positions.detach().to(G.dtype).requires_grad_(forces)
        Ea = self.short.atomic_energies(G, batch.species)
        q = self.charges(G, batch.species, batch.frame, B, batch.total_charge.to(G.dtype))
        pairs = getattr(batch, "pairs", None)
        if pairs is None:
            pairs = pair_indices(batch.n_atoms.long().numpy())
        E = torch.zeros(B, dtype=G.dtype).index_add(0, batch.frame, Ea) + \
            coulomb_energy(R, q, self.sigma.to(G.dtype)[batch.species], batch.frame, B, pairs)
        mu = torch.zeros((B, 3), dtype=G.dtype).index_add(0, batch.frame, q[:, None] * R)
        if not forces:
            return E, None, q, mu
        dEdG, dEdR = torch.autograd.grad(E.sum(), (G, R), create_graph=create_graph)
        g = torch.einsum("ef,efk->ek", dEdG[batch.centre], batch.values)
        F = -torch.zeros((G.shape[0], 3), dtype=G.dtype).index_add(0, batch.atom, g) - dEdR
        return E, F, q, mu

    def to_parameters(self, metadata=None) -> PinnParameters:
        """Export for the model file (float64), evaluated identically by the C++ core."""
        return PinnParameters(self.short.to_parameters(), self.charge.to_parameters(),
                              self.sigma.double().numpy().copy(), self.accuracy, dict(metadata or {}))


class PinnTrainer(Trainer):
    """``model: pinn`` training (configuration: :mod:`atomforge.train.config`, section ``pinn``):
    the energy-model trainer's data handling, split, schedule, checkpoints and run folder, with a
    :class:`TorchPinn` model; loss = w_E mean((dE/N/s)^2) + w_F mean((dF/s)^2) + w_mu
    mean((dmu / 0.1 e*Angstrom)^2) (s: the energy scale; dipoles only when the data have them and
    ``pinn.dipole_weight`` > 0). Each frame's total charge comes from the data (0 when absent).

    Raises PeriodicNotSupported (a ValueError) when any frame is periodic, before training starts.
    """

    def _prepare(self):
        super()._prepare()
        for name, ds in (("training", self.train_ds), ("validation", self.valid_ds), ("test", self.test_ds)):
            per = [i for i in range(len(ds)) if np.asarray(ds.pbc[i]).any()]
            if per:
                raise PeriodicNotSupported(
                    f"model: pinn trains on molecules (open boundaries) only: {len(per)} {name} frame(s) are "
                    f"periodic (first: {per[0]}); the PyTorch Ewald sum for periodic cells is not implemented yet "
                    f"(the core evaluates periodic pinn models, e.g. one written with atomforge.models.pinn)")
        pc = self.cfg["pinn"]
        self.use_dipoles = pc["dipole_weight"] > 0 and self.train_ds.dipole is not None
        if pc["dipole_weight"] > 0 and self.train_ds.dipole is None:
            self.log("pinn.dipole_weight > 0 but the training data have no dipoles: trained on energies and forces")

    def _make_model(self):
        cfg, net, pc = self.cfg, self.cfg["network"], self.cfg["pinn"]
        ne = len(self.sf.elements)
        return TorchPinn(self.sf, net["hidden"], net["activation"], self.stats["shift"], self.stats["scale"],
                         self.stats["reference"], self.stats["energy_scale"], charge_hidden=pc["charge_hidden"],
                         charge_scheme=pc["charge_scheme"], weight_hidden=pc["weight_hidden"],
                         charge_reference=np.zeros(ne), charge_scale=pc["charge_scale"],
                         sigma=np.full(ne, float(pc["sigma"])), accuracy=pc["accuracy"], seed=cfg["seed"],
                         shared=net["shared"])

    def _batch(self, ds, feats, idx, with_forces):
        b = super()._batch(ds, feats, idx, with_forces)
        idx = np.asarray(idx, dtype=np.int64)
        b.positions = torch.as_tensor(np.concatenate([ds.positions[i] for i in idx]), dtype=self.dtype)
        Q = np.zeros(len(idx)) if ds.total_charge is None else np.asarray(ds.total_charge, dtype=float)[idx]
        b.total_charge = torch.as_tensor(Q, dtype=self.dtype)
        b.dipole = None if ds.dipole is None else torch.as_tensor(np.asarray(ds.dipole)[idx], dtype=self.dtype)
        b.pairs = pair_indices([len(ds.positions[i]) for i in idx])
        return b

    def _loss(self, model, b, create_graph):
        tr = self.cfg["training"]
        s = model.energy_scale
        E, F, _, mu = model(b, forces=self.has_forces, create_graph=create_graph)
        loss = tr["energy_weight"] * torch.mean(((E - b.energy) / b.n_atoms / s) ** 2)
        if self.has_forces:
            loss = loss + tr["forces_weight"] * torch.mean(((F - b.forces) / s) ** 2)
        if self.use_dipoles and b.dipole is not None:
            loss = loss + self.cfg["pinn"]["dipole_weight"] * torch.mean(((mu - b.dipole) / 0.1) ** 2)
        return loss, E, F
