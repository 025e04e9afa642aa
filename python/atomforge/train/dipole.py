"""Charge/dipole models in PyTorch, trained on descriptors from the compiled core (model type
``dipole``; the same descriptor implementation serves training and inference).

Model (M. Gastegger, J. Behler, P. Marquetand, Chem. Sci. 8, 6924 (2017); total-charge scheme of
atomforge/charges.hpp), for atom i of element k in frame b and committee member m::

    x_i    = (G_i - shift_k) * scale_k
    q~_i^m = reference_k + charge_scale * NN_q^m(x_i)                             (e)
    w_i^m  = softplus(NN_w^m(x_i)) + 1e-3     ("weighted")   or 1   ("uniform")
    q_i    = mean_m [ q~_i^m - w_i^m (sum_{j in b} q~_j^m - Q_b) / sum_{j in b} w_j^m ]
    mu_b   = sum_{i in b} q_i r_i                                          (e*Angstrom)

Only values are needed for training on dipoles (no Jacobians): the dipole is linear in the
positions given the charges, and the charges depend on the positions only through G.
:meth:`TorchDipole.to_parameters` exports :class:`~atomforge.models.dipole.DipoleParameters`,
which the core evaluates to the same numbers (float64: 1e-12 and better).
"""
from __future__ import annotations

from typing import List, Optional

import numpy as np
import torch
from torch import nn

from ..descriptors import Descriptor
from ..models.dipole import WEIGHT_FLOOR, DipoleParameters

_ACT = {"tanh": nn.Tanh, "silu": nn.SiLU, "softplus": nn.Softplus, "sigmoid": nn.Sigmoid}


class DipoleStore:
    """Frames of a dipole data set as contiguous tensors, for batching by indexing.

    G (N_atoms, F) descriptor rows, species (N_atoms,), positions (N_atoms, 3) Angstrom, per frame
    the atom offset and count, total charge Q (B,) e and the reference dipole (B, 3) e*Angstrom.
    """

    def __init__(self, sf: Descriptor, ds, dtype=torch.float64, threads: int = 0):
        G, sp = [], []
        for i in range(len(ds)):
            periodic = bool(np.asarray(ds.pbc[i]).any())
            # small molecules: one thread (an OpenMP region per 7-atom frame costs more than it saves)
            nt = threads or (1 if len(ds.numbers[i]) < 64 else 0)
            G.append(sf.compute(ds.positions[i], ds.numbers[i], ds.cells[i] if periodic else None,
                                ds.pbc[i] if periodic else None, threads=nt))
            sp.append(sf.species_indices(np.asarray(ds.numbers[i], dtype=np.int64)))
        n = np.array([len(g) for g in G], dtype=np.int64)
        self.n_atoms = n
        self.atom_off = np.concatenate([[0], np.cumsum(n)])[:-1]
        self.G64 = np.concatenate(G)  # float64 rows until centre() (small: no Jacobians)
        self.G = torch.as_tensor(self.G64, dtype=dtype)
        self.species = torch.as_tensor(np.concatenate(sp), dtype=torch.long)
        self.positions = torch.as_tensor(np.concatenate(ds.positions), dtype=dtype)
        q = ds.total_charge if ds.total_charge is not None else np.zeros(len(ds))
        self.total_charge = torch.as_tensor(np.asarray(q, dtype=float), dtype=dtype)
        self.dipole = None if ds.dipole is None else torch.as_tensor(ds.dipole, dtype=dtype)
        self.charges = None if ds.charges is None else torch.as_tensor(np.concatenate(ds.charges), dtype=dtype)
        self.dtype = dtype

    def __len__(self):
        return len(self.n_atoms)

    def centre(self, shift: np.ndarray) -> None:
        """Subtract ``shift`` (n_elements, F) per row in float64, then cast to the store's dtype
        (the trainer feeds centred features; see atomforge.train.trainer._prepare)."""
        self.G = torch.as_tensor(self.G64 - shift[self.species.numpy()], dtype=self.dtype)
        self.G64 = None

    def batch(self, idx) -> dict:
        from .bpnn import _ranges

        idx = np.asarray(idx, dtype=np.int64)
        n = self.n_atoms[idx]
        rows = torch.as_tensor(_ranges(self.atom_off[idx], n))
        t = torch.as_tensor(idx)
        return {"G": self.G.index_select(0, rows), "species": self.species.index_select(0, rows),
                "positions": self.positions.index_select(0, rows),
                "frame": torch.as_tensor(np.repeat(np.arange(len(idx)), n)), "n_frames": len(idx),
                "total_charge": self.total_charge.index_select(0, t),
                "dipole": None if self.dipole is None else self.dipole.index_select(0, t),
                "charges": None if self.charges is None else self.charges.index_select(0, rows)}


def _mlp(n_in: int, hidden, activation: str, gen: torch.Generator) -> nn.Sequential:
    widths = [n_in] + list(hidden) + [1]
    layers = []
    for l in range(len(widths) - 1):
        lin = nn.Linear(widths[l], widths[l + 1], dtype=torch.float64)
        with torch.no_grad():  # seeded Xavier-style initialisation, as TorchBPNN
            lin.weight.copy_(torch.randn(lin.weight.shape, generator=gen, dtype=torch.float64) * np.sqrt(1.0 / widths[l]))
            lin.bias.zero_()
        layers.append(lin)
        if l < len(widths) - 2:
            layers.append(_ACT[activation]())
    return nn.Sequential(*layers)


class TorchDipole(nn.Module):
    """Charge networks (and weight networks for the weighted scheme) on scaled descriptors.

    Args:
        sf: the descriptor. hidden: hidden widths of the charge networks; weight_hidden: of the
        weight networks. activation: tanh | silu | softplus | sigmoid. committee: members.
        shift, scale: (n_elements, F) input scaling. reference: (n_elements,) e.
        charge_scale: e per network output. scheme: "uniform" | "weighted". shared: one
        network for all elements. seed: initialisation.

    Raises:
        ValueError: unknown activation or scheme; a shared network on element-resolved features.
    """

    def __init__(self, sf: Descriptor, hidden=(30, 30), activation="tanh", committee=1, shift=None, scale=None,
                 reference=None, charge_scale=1.0, scheme="weighted", weight_hidden=(16,), seed=0, shared=False):
        super().__init__()
        if activation not in _ACT:
            raise ValueError(f"activation must be one of {sorted(_ACT)}, got {activation!r}")
        if scheme not in ("uniform", "weighted"):
            raise ValueError(f"charge scheme must be 'uniform' or 'weighted', got {scheme!r}")
        self.sf = sf
        self.elements = list(sf.elements)
        self.activation, self.hidden, self.weight_hidden = activation, list(hidden), list(weight_hidden)
        self.scheme, self.shared = scheme, bool(shared)
        self.n_features = [sf.n_features_per_element[s] for s in self.elements]
        if self.shared and len(set(self.n_features)) != 1:
            raise ValueError("a shared network needs a descriptor with the same feature count for every element")
        ne, F = len(self.elements), sf.n_features
        self.register_buffer("shift", torch.as_tensor(np.zeros((ne, F)) if shift is None else shift, dtype=torch.float64))
        self.register_buffer("scale", torch.as_tensor(np.ones((ne, F)) if scale is None else scale, dtype=torch.float64))
        self.register_buffer("reference", torch.as_tensor(np.zeros(ne) if reference is None else reference,
                                                          dtype=torch.float64))
        self.register_buffer("charge_scale", torch.tensor(float(charge_scale), dtype=torch.float64))
        gen = torch.Generator().manual_seed(int(seed))
        n_nets = 1 if self.shared else ne
        self.charge_members = nn.ModuleList(
            nn.ModuleList(_mlp(self.n_features[k], self.hidden, activation, gen) for k in range(n_nets))
            for _ in range(committee))
        with torch.no_grad():  # start from the fixed reference charges (least-squares fit by the trainer)
            for member in self.charge_members:
                for net in member:
                    net[-1].weight.mul_(0.01)
        self.weight_members = None
        if scheme == "weighted":
            self.weight_members = nn.ModuleList(
                nn.ModuleList(_mlp(self.n_features[k], self.weight_hidden, activation, gen) for k in range(n_nets))
                for _ in range(committee))
            with torch.no_grad():  # start from (nearly) uniform weights: softplus(0.55) = 1
                for member in self.weight_members:
                    for net in member:
                        net[-1].weight.mul_(0.01)
                        net[-1].bias.fill_(0.5413)

    @property
    def committee(self) -> int:
        return len(self.charge_members)

    def _per_atom(self, members, x, species) -> torch.Tensor:
        """(N, M) outputs of one network set."""
        out = torch.zeros((x.shape[0], len(members)), dtype=x.dtype)
        if self.shared:
            return torch.stack([m[0](x)[:, 0] for m in members], dim=1)
        for k in range(len(self.elements)):
            sel = torch.nonzero(species == k, as_tuple=True)[0]
            if sel.numel() == 0:
                continue
            xk = x[sel, : self.n_features[k]]
            out = out.index_copy(0, sel, torch.stack([m[k](xk)[:, 0] for m in members], dim=1))
        return out

    def partials(self, G: torch.Tensor, species: torch.Tensor):
        """Raw charges q~ (N, M) in e and weights w (N, M)."""
        x = (G - self.shift[species]) * self.scale[species]
        qt = self.reference[species][:, None] + self.charge_scale * self._per_atom(self.charge_members, x, species)
        if self.weight_members is None:
            w = torch.ones_like(qt)
        else:
            w = torch.logaddexp(self._per_atom(self.weight_members, x, species), torch.zeros_like(qt)) + WEIGHT_FLOOR
        return qt, w

    def forward(self, b: dict):
        """Charges (N,) e and dipoles (B, 3) e*Angstrom of a batch from :meth:`DipoleStore.batch`."""
        qt, w = self.partials(b["G"], b["species"])
        frame, B = b["frame"], b["n_frames"]
        M = qt.shape[1]
        Sq = torch.zeros((B, M), dtype=qt.dtype).index_add(0, frame, qt)
        Sw = torch.zeros((B, M), dtype=qt.dtype).index_add(0, frame, w)
        excess = (Sq - b["total_charge"][:, None]) / Sw
        q = torch.mean(qt - w * excess[frame], dim=1)
        mu = torch.zeros((B, 3), dtype=qt.dtype).index_add(0, frame, q[:, None] * b["positions"])
        return q, mu

    def to_parameters(self, metadata=None) -> DipoleParameters:
        """Export for the model file (float64), evaluated identically by the C++ core."""
        from ase.data import atomic_numbers

        syms = self.elements
        scaling = [{"shift": self.shift[k, : self.n_features[k]].double().numpy().copy(),
                    "scale": self.scale[k, : self.n_features[k]].double().numpy().copy(), "offset": 0.0}
                   for k in range(len(syms))]
        n_nets = 1 if self.shared else len(syms)

        def export(members):
            nets = []
            for member in members:
                nets.append([[(l.weight.detach().double().numpy().copy(), l.bias.detach().double().numpy().copy())
                              for l in member[k] if isinstance(l, nn.Linear)] for k in range(n_nets)])
            return nets

        acts = [[self.activation] * len(self.hidden) + ["linear"] for _ in range(n_nets)]
        wn = wa = None
        if self.weight_members is not None:
            wn = export(self.weight_members)
            wa = [[self.activation] * len(self.weight_hidden) + ["linear"] for _ in range(n_nets)]
        return DipoleParameters([atomic_numbers[s] for s in syms], self.sf.to_dict(), scaling,
                                export(self.charge_members), acts, self.reference.double().numpy().copy(),
                                float(self.charge_scale), self.scheme, wn, wa, metadata or {}, self.shared)


def predict_dipoles(potential, ds, threads: int = 1):
    """Dipoles (F, 3) e*Angstrom and charges (list of (n_i,)) of every frame of a Dataset,
    evaluated by the core (``potential``: :func:`atomforge.load` of a dipole model); the total
    charge of each frame from ``ds.total_charge`` (0 when absent)."""
    mu, qs = np.zeros((len(ds), 3)), []
    Q = ds.total_charge if ds.total_charge is not None else np.zeros(len(ds))
    for i in range(len(ds)):
        periodic = bool(np.asarray(ds.pbc[i]).any())
        r = potential.compute(ds.positions[i], ds.numbers[i], ds.cells[i] if periodic else None,
                              ds.pbc[i] if periodic else None, threads=threads, forces=False, charge=float(Q[i]))
        mu[i] = r.dipole
        qs.append(r.charges)
    return mu, qs


def dipole_metrics(mu_pred: np.ndarray, mu_ref: np.ndarray, q_pred: Optional[List[np.ndarray]] = None,
                   q_ref: Optional[List[np.ndarray]] = None) -> dict:
    """Dipole errors: ``dipole_rmse`` / ``dipole_mae`` over Cartesian components and
    ``dipole_norm_rmse`` (RMS of |mu_pred - mu_ref|), each in e*Angstrom and with suffixes
    ``_e_bohr`` (e*a0) and ``_debye``; ``charges_rmse`` / ``charges_mae`` (e) when reference
    charges are given. Conversions from :mod:`atomforge.units` (the core's table)."""
    from ..units import DEBYE, E_BOHR

    d = np.asarray(mu_pred, dtype=float) - np.asarray(mu_ref, dtype=float)
    m = {"n_frames": int(len(d)),
         "dipole_rmse": float(np.sqrt(np.mean(d ** 2))),
         "dipole_mae": float(np.mean(np.abs(d))),
         "dipole_norm_rmse": float(np.sqrt(np.mean(np.sum(d ** 2, axis=1)))),
         "dipole_ref_std": float(np.std(np.asarray(mu_ref, dtype=float) - np.mean(mu_ref, axis=0)))}
    for k in list(m):
        if k.startswith("dipole_"):
            m[k + "_e_bohr"] = m[k] / E_BOHR
            m[k + "_debye"] = m[k] / DEBYE
    if q_pred is not None and q_ref is not None:
        dq = np.concatenate([np.ravel(a - b) for a, b in zip(q_pred, q_ref)])
        m["charges_rmse"] = float(np.sqrt(np.mean(dq ** 2)))
        m["charges_mae"] = float(np.mean(np.abs(dq)))
    return m


DIPOLE_UNITS = {"dipole_*": "e*Angstrom", "dipole_*_e_bohr": "e*a0", "dipole_*_debye": "Debye",
                "charges_*": "e", "dipole_rmse": "over Cartesian components",
                "dipole_norm_rmse": "root mean square of |mu_pred - mu_ref|"}
