"""Atomic neural-network potentials in PyTorch, trained on descriptors and Jacobians from the
compiled core (one descriptor implementation for training and inference; any registered
descriptor type).

Model (J. Behler, M. Parrinello, PRL 98, 146401 (2007)); for atom i of element k, member m:
    x_i = (G_i - shift_k) * scale_k + offset_k
    E_i = reference_k + energy_scale * mean_m NN_n(k)^m(x_i)
with n(k) = k (one network per element) or n(k) = 0 (one network shared by all elements, as with
element-agnostic GMP features: X. Lei, A. J. Medford, J. Phys. Chem. Lett. 13, 7911 (2022)).
Forces: F = -sum_i dE/dG_i . dG_i/dr, with dG/dr the core's sparse Jacobian
(:class:`atomforge.DescriptorJacobian`); dE/dG by autograd, so forces are differentiable with
respect to the weights (force training).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional

import numpy as np
import torch
from torch import nn

from ..descriptors import Descriptor
from ..models import BPNNParameters

_ACT = {"tanh": nn.Tanh, "silu": nn.SiLU, "softplus": nn.Softplus, "sigmoid": nn.Sigmoid}


@dataclass
class FrameFeatures:
    """Descriptor data of one frame: G (n, F), species index (n,), and the sparse Jacobian."""

    G: np.ndarray
    species: np.ndarray
    centre: np.ndarray
    atom: np.ndarray
    values: np.ndarray  # (E, F, 3)


def featurize(sf: Descriptor, positions, numbers, cell, pbc, with_jacobian=True, threads=0) -> FrameFeatures:
    species = sf.species_indices(np.asarray(numbers, dtype=np.int64))
    if not with_jacobian:
        G = sf.compute(positions, numbers, cell, pbc, threads=threads)
        return FrameFeatures(G, species, None, None, None)
    J = sf.jacobian(positions, numbers, cell, pbc, threads=threads)
    return FrameFeatures(J.G, species, J.centre, J.atom, J.values)


@dataclass
class Batch:
    G: torch.Tensor           # (N, F)
    species: torch.Tensor     # (N,)
    frame: torch.Tensor       # (N,) frame index within the batch
    n_frames: int
    n_atoms: torch.Tensor     # (B,)
    centre: Optional[torch.Tensor] = None
    atom: Optional[torch.Tensor] = None
    values: Optional[torch.Tensor] = None
    energy: Optional[torch.Tensor] = None   # (B,)
    forces: Optional[torch.Tensor] = None   # (N, 3)


def collate(frames: List[FrameFeatures], energies=None, forces=None, dtype=torch.float64) -> Batch:
    offs = np.cumsum([0] + [len(f.G) for f in frames])
    G = torch.as_tensor(np.concatenate([f.G for f in frames]), dtype=dtype)
    species = torch.as_tensor(np.concatenate([f.species for f in frames]), dtype=torch.long)
    frame = torch.as_tensor(np.repeat(np.arange(len(frames)), np.diff(offs)), dtype=torch.long)
    b = Batch(G, species, frame, len(frames), torch.as_tensor(np.diff(offs), dtype=dtype))
    if frames[0].values is not None:
        b.centre = torch.as_tensor(np.concatenate([f.centre + o for f, o in zip(frames, offs)]), dtype=torch.long)
        b.atom = torch.as_tensor(np.concatenate([f.atom + o for f, o in zip(frames, offs)]), dtype=torch.long)
        b.values = torch.as_tensor(np.concatenate([f.values for f in frames]), dtype=dtype)
    if energies is not None:
        b.energy = torch.as_tensor(np.asarray(energies, dtype=float), dtype=dtype)
    if forces is not None:
        b.forces = torch.as_tensor(np.concatenate(forces), dtype=dtype)
    return b


def _ranges(starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Concatenation of arange(s, s + c) for each (s, c), without a Python loop."""
    total = int(counts.sum())
    before = np.cumsum(counts) - counts
    return np.repeat(starts - before, counts) + np.arange(total)


class FrameStore:
    """Frames converted once to contiguous torch tensors; :meth:`batch` gathers any subset into a
    :class:`Batch` by indexing (the same result as :func:`collate`, without per-batch NumPy
    concatenation and conversion). The frames' Jacobian values are moved into the store (their
    ``values`` become None)."""

    def __init__(self, frames: List[FrameFeatures], energies=None, forces=None, dtype=torch.float64):
        n = np.array([len(f.G) for f in frames], dtype=np.int64)
        self.n_atoms = n
        self.atom_off = np.concatenate([[0], np.cumsum(n)])[:-1]
        self.G = torch.as_tensor(np.concatenate([f.G for f in frames]), dtype=dtype)
        self.species = torch.as_tensor(np.concatenate([f.species for f in frames]), dtype=torch.long)
        self.has_jacobian = frames[0].values is not None
        if self.has_jacobian:
            ne = np.array([len(f.centre) for f in frames], dtype=np.int64)
            self.n_entries = ne
            self.entry_off = np.concatenate([[0], np.cumsum(ne)])[:-1]
            self.centre = torch.as_tensor(np.concatenate([f.centre for f in frames]), dtype=torch.long)
            self.atom = torch.as_tensor(np.concatenate([f.atom for f in frames]), dtype=torch.long)
            # filled frame by frame, releasing each frame's copy (peak memory: one copy, not two)
            self.values = torch.empty((int(ne.sum()),) + frames[0].values.shape[1:], dtype=dtype)
            for f, o, k in zip(frames, self.entry_off, ne):
                self.values[o:o + k] = torch.as_tensor(f.values)
                f.values = None
        self.energy = None if energies is None else torch.as_tensor(np.asarray(energies, dtype=float), dtype=dtype)
        self.forces = None if forces is None else torch.as_tensor(np.concatenate(forces), dtype=dtype)
        self.dtype = dtype

    def __len__(self):
        return len(self.n_atoms)

    def batch(self, idx, with_forces: bool = True) -> Batch:
        idx = np.asarray(idx, dtype=np.int64)
        n = self.n_atoms[idx]
        rows = torch.as_tensor(_ranges(self.atom_off[idx], n))
        b = Batch(self.G.index_select(0, rows), self.species.index_select(0, rows),
                  torch.as_tensor(np.repeat(np.arange(len(idx)), n)), len(idx), torch.as_tensor(n, dtype=self.dtype))
        if with_forces and self.has_jacobian:
            ne = self.n_entries[idx]
            erows = torch.as_tensor(_ranges(self.entry_off[idx], ne))
            # frame-local atom indices -> batch-local
            shift = torch.as_tensor(np.repeat(np.cumsum(n) - n, ne))
            b.centre = self.centre.index_select(0, erows) + shift
            b.atom = self.atom.index_select(0, erows) + shift
            b.values = self.values.index_select(0, erows)
        if self.energy is not None:
            b.energy = self.energy.index_select(0, torch.as_tensor(idx))
        if with_forces and self.forces is not None:
            b.forces = self.forces.index_select(0, rows)
        return b


class TorchBPNN(nn.Module):
    """Atomic MLPs (per element, or one shared; optionally a committee) on scaled descriptors."""

    def __init__(self, sf: Descriptor, hidden=(64, 64), activation="tanh", committee=1,
                 shift=None, scale=None, reference_energies=None, energy_scale=1.0, seed=0, shared=False):
        super().__init__()
        if activation not in _ACT:
            raise ValueError(f"activation must be one of {sorted(_ACT)}, got {activation!r}")
        self.sf = sf
        self.elements = list(sf.elements)
        self.activation = activation
        self.hidden = list(hidden)
        self.shared = bool(shared)
        self.n_features = [sf.n_features_per_element[s] for s in self.elements]
        if self.shared and len(set(self.n_features)) != 1:
            raise ValueError("a shared network needs a descriptor with the same feature count for every element "
                             "(e.g. GMP)")
        F = sf.n_features
        ne = len(self.elements)
        sh = np.zeros((ne, F)) if shift is None else np.asarray(shift)
        sc = np.ones((ne, F)) if scale is None else np.asarray(scale)
        self.register_buffer("shift", torch.as_tensor(sh, dtype=torch.float64))
        self.register_buffer("scale", torch.as_tensor(sc, dtype=torch.float64))
        ref = np.zeros(ne) if reference_energies is None else np.asarray(reference_energies, dtype=float)
        self.register_buffer("reference", torch.as_tensor(ref, dtype=torch.float64))
        self.register_buffer("energy_scale", torch.tensor(float(energy_scale), dtype=torch.float64))
        gen = torch.Generator().manual_seed(int(seed))
        self.members = nn.ModuleList()
        for _ in range(committee):
            nets = nn.ModuleList()
            for k in range(1 if self.shared else ne):
                widths = [self.n_features[k]] + self.hidden + [1]
                layers = []
                for l in range(len(widths) - 1):
                    lin = nn.Linear(widths[l], widths[l + 1], dtype=torch.float64)
                    with torch.no_grad():  # seeded Xavier-style initialisation
                        lin.weight.copy_(torch.randn(lin.weight.shape, generator=gen, dtype=torch.float64)
                                         * np.sqrt(1.0 / widths[l]))
                        lin.bias.zero_()
                    layers.append(lin)
                    if l < len(widths) - 2:
                        layers.append(_ACT[activation]())
                nets.append(nn.Sequential(*layers))
            self.members.append(nets)

    def atomic_energies(self, G: torch.Tensor, species: torch.Tensor) -> torch.Tensor:
        x = (G - self.shift[species]) * self.scale[species]
        if self.shared:
            e = sum(member[0](x)[:, 0] for member in self.members) / len(self.members)
            return self.reference[species] + self.energy_scale * e
        out = torch.zeros(G.shape[0], dtype=G.dtype)
        for k in range(len(self.elements)):
            sel = torch.nonzero(species == k, as_tuple=True)[0]
            if sel.numel() == 0:
                continue
            xk = x[sel, : self.n_features[k]]
            e = sum(member[k](xk)[:, 0] for member in self.members) / len(self.members)
            out = out.index_add(0, sel, e)
        return self.reference[species] + self.energy_scale * out

    def member_atomic_energies(self, G: torch.Tensor, species: torch.Tensor) -> torch.Tensor:
        """Atomic energies of every committee member, (M, N) eV. ``G`` is (N, F), or (M, N, F)
        with one copy of the rows per member (so that autograd gives each member its own dE/dG)."""
        M = len(self.members)
        Gm = G if G.dim() == 3 else G.unsqueeze(0).expand(M, *G.shape)
        x = (Gm - self.shift[species]) * self.scale[species]
        ref = self.reference[species]
        if self.shared:
            return torch.stack([ref + self.energy_scale * member[0](x[m])[:, 0]
                                for m, member in enumerate(self.members)])
        out = []
        for m, member in enumerate(self.members):
            e = torch.zeros(G.shape[-2], dtype=G.dtype)
            for k in range(len(self.elements)):
                sel = torch.nonzero(species == k, as_tuple=True)[0]
                if sel.numel() == 0:
                    continue
                e = e.index_add(0, sel, member[k](x[m][sel, : self.n_features[k]])[:, 0])
            out.append(ref + self.energy_scale * e)
        return torch.stack(out)

    def forward_members(self, batch: Batch, forces: bool = True, create_graph: bool = False):
        """Each member's energies (M, B) eV and, if asked, forces (M, N, 3) eV/Angstrom: the
        members as independent models on the same descriptor rows (committee training)."""
        M = len(self.members)
        G = batch.G.detach().unsqueeze(0).repeat(M, 1, 1).requires_grad_(forces)
        Ea = self.member_atomic_energies(G, batch.species)  # (M, N)
        E = torch.zeros((M, batch.n_frames), dtype=G.dtype).index_add(1, batch.frame, Ea)
        if not forces:
            return E, None
        (dEdG,) = torch.autograd.grad(Ea.sum(), G, create_graph=create_graph)  # (M, N, F)
        F = []
        for m in range(M):  # one member at a time: the memory of a single model
            g = torch.einsum("ef,efk->ek", dEdG[m][batch.centre], batch.values)
            F.append(-torch.zeros((G.shape[1], 3), dtype=G.dtype).index_add(0, batch.atom, g))
        return E, torch.stack(F)

    def forward(self, batch: Batch, forces: bool = True, create_graph: bool = False):
        """Energies (B,) eV and, if asked, forces (N, 3) eV/Angstrom of a batch."""
        G = batch.G.detach().requires_grad_(forces)
        Ea = self.atomic_energies(G, batch.species)
        E = torch.zeros(batch.n_frames, dtype=G.dtype).index_add(0, batch.frame, Ea)
        if not forces:
            return E, None
        (dEdG,) = torch.autograd.grad(Ea.sum(), G, create_graph=create_graph)
        g = torch.einsum("ef,efk->ek", dEdG[batch.centre], batch.values)
        F = -torch.zeros((G.shape[0], 3), dtype=G.dtype).index_add(0, batch.atom, g)
        return E, F

    def to_parameters(self, metadata=None) -> BPNNParameters:
        """Export for the model file (float64), evaluated identically by the C++ core."""
        syms = self.elements
        scaling = [{"shift": self.shift[k, : self.n_features[k]].double().numpy().copy(),
                    "scale": self.scale[k, : self.n_features[k]].double().numpy().copy(), "offset": 0.0}
                   for k in range(len(syms))]
        n_nets = 1 if self.shared else len(syms)
        acts = [[self.activation] * len(self.hidden) + ["linear"] for _ in range(n_nets)]
        nets = []
        for member in self.members:
            per_el = []
            for k in range(n_nets):
                lins = [m for m in member[k] if isinstance(m, nn.Linear)]
                per_el.append([(l.weight.detach().double().numpy().copy(), l.bias.detach().double().numpy().copy())
                               for l in lins])
            nets.append(per_el)
        from ase.data import atomic_numbers
        return BPNNParameters([atomic_numbers[s] for s in syms], self.sf.to_dict(), scaling, nets, acts,
                              self.reference.double().numpy().copy(), float(self.energy_scale), metadata or {},
                              self.shared)
