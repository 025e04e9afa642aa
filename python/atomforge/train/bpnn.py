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

import sys
from dataclasses import dataclass
from typing import List, Optional

import numpy as np
import torch
from torch import nn
from torch.nn import functional as nnf

from ..descriptors import Descriptor
from ..models import BPNNParameters

_ACT = {"tanh": nn.Tanh, "silu": nn.SiLU, "softplus": nn.Softplus, "sigmoid": nn.Sigmoid}


def _act_pair(name: str, z: torch.Tensor):
    """Activation h = f(z), its derivative f'(z) and what f''(z) is computed from (the sigmoid s for
    silu, else None), elementwise, without an autograd graph (inside :class:`_MLPValueGradient`).
    silu: h = z s, f' = s + h (1 - s) with s = sigmoid(z); tanh: f' = 1 - h^2; sigmoid: f' = h (1 - h);
    softplus (beta 1, linear above z = 20 as nn.Softplus): f' = sigmoid(z)."""
    if name == "silu":
        s = torch.sigmoid(z)
        h = z * s
        return h, torch.addcmul(s + h, h, s, value=-1.0), s
    if name == "tanh":
        h = torch.tanh(z)
        return h, torch.addcmul(torch.ones_like(h), h, h, value=-1.0), None
    if name == "sigmoid":
        h = torch.sigmoid(z)
        return h, torch.addcmul(h, h, h, value=-1.0), None
    if name == "softplus":
        return nnf.softplus(z), torch.sigmoid(z), None
    raise ValueError(f"activation must be one of {sorted(_ACT)}, got {name!r}")


def _act_second(name: str, h: torch.Tensor, d: torch.Tensor, s: Optional[torch.Tensor]) -> torch.Tensor:
    """f''(z) from h = f(z), d = f'(z) (and s = sigmoid(z) for silu), elementwise. silu:
    f'' = s (1 - s) (2 + z (1 - 2 s)) = s + d (1 - 2 s) (since d - s = z s (1 - s)); tanh: -2 h d;
    sigmoid: d (1 - 2 h); softplus: d (1 - d)."""
    if name == "silu":
        return torch.addcmul(s + d, s, d, value=-2.0)
    if name == "tanh":
        return (h * d).mul_(-2.0)
    if name == "sigmoid":
        return torch.addcmul(d, h, d, value=-2.0)
    return torch.addcmul(d, d, d, value=-1.0)  # softplus


class _MLPValueGradient(torch.autograd.Function):
    """An atomic MLP's outputs and their input gradient, with a hand-written backward pass.

    Forward, raw rows G (n, F), scaled as x = (G - shift) * scale (shift, scale: (F,) or (n, F),
    constants): z_l = h_(l-1) W_l^T + b_l, h_l = f(z_l) (h_(-1) = x, l = 0..L-1),
    u = h_(L-1) w^T + b (n,); by backpropagation of one scalar per row,
    q_(L-1) = f'(z_(L-1)) * w, p_(l-1) = q_l W_l, q_(l-1) = f'(z_(l-1)) * p_(l-1), g = q_0 W_0 * scale (n, F) = du/dG.
    Backward, for the adjoints u' (n,) and g' (n, F) (either may be absent), the reverse of both
    chains: through g (W_0' += q_0^T g', q_0' = g' W_0^T, then per layer f'(z)' = q' * p, p' = q' * f'(z),
    W_(l+1)' += q_(l+1)^T p', q_(l+1)' = p' W_(l+1)^T, and w' += sum_n q_(L-1)' * f'(z_(L-1))) and through u
    (h_(L-1)' = u' w, then z_l' = h_l' * f'(z_l) + f'(z_l)' * f''(z_l), W_l' += z_l'^T h_(l-1), b_l' = sum_n z_l',
    h_(l-1)' = z_l' W_l). Each weight's two contributions are one mm and one addmm.

    The same values, up to rounding, as autograd through the explicit backpropagation (the trainer
    up to stop 30 of issue 11), with fewer operations and no autograd node per operation (a batch
    of 16 rMD17 ethanol frames: 344 -> 272 operations, forward and backward about 1.09x faster;
    benchmarks/results/training_speed.md). Once differentiable: higher derivatives raise.
    Arguments: G, shift, scale, the activation's name, then W_0, b_0, ..., W_(L-1), b_(L-1), w (1, H),
    b (1,). Returns u (n,) and g (n, F)."""

    @staticmethod
    def forward(ctx, G, shift, scale, activation, *params):
        W, B = params[0::2], params[1::2]
        L = len(W) - 1
        x = (G - shift) * scale
        hs, ds, ss = [x], [], []
        h = x
        for l in range(L):
            h, d, sg = _act_pair(activation, torch.addmm(B[l], h, W[l].t()))
            hs.append(h)
            ds.append(d)
            ss.append(sg if sg is not None else d)  # (a placeholder where f'' needs no sigmoid)
        u = torch.addmm(B[L], h, W[L].t()).view(-1)
        q = ds[L - 1] * W[L]
        qs, ps = [None] * L, [None] * L
        qs[L - 1] = q
        for l in range(L - 1, 0, -1):
            ps[l - 1] = q.mm(W[l])
            q = ds[l - 1] * ps[l - 1]
            qs[l - 1] = q
        g = q.mm(W[0]).mul_(scale)
        ctx.set_materialize_grads(False)
        ctx.L, ctx.activation = L, activation
        ctx.save_for_backward(scale, *params, *hs, *ds, *ss, *qs, *[p for p in ps if p is not None])
        return u, g

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, gu, gg):
        L = ctx.L
        scale, *t = ctx.saved_tensors
        params, t = t[:2 * L + 2], t[2 * L + 2:]
        W = params[0::2]
        hs, ds, ss, qs, ps = t[:L + 1], t[L + 1:2 * L + 1], t[2 * L + 1:3 * L + 1], t[3 * L + 1:4 * L + 1], t[4 * L + 1:]
        gW = [None] * (L + 1)
        gB = [None] * (L + 1)
        dbar = [None] * L
        if gg is not None:  # through g = (q_0 W_0) * scale
            gg = gg * scale
            gW[0] = qs[0].t().mm(gg)
            qbar = gg.mm(W[0].t())
            for l in range(L - 1):
                dbar[l] = qbar * ps[l]
                pbar = qbar * ds[l]
                gW[l + 1] = qs[l + 1].t().mm(pbar)
                qbar = pbar.mm(W[l + 1].t())
            dbar[L - 1] = qbar * W[L]
            gW[L] = (qbar * ds[L - 1]).sum(0, keepdim=True)
        hbar = None
        if gu is not None:  # through u = h_(L-1) w^T + b
            hbar = gu.unsqueeze(1) * W[L]
            wu = gu.unsqueeze(0).mm(hs[L])
            gW[L] = wu if gW[L] is None else gW[L] + wu
            gB[L] = gu.sum().view(1)
        else:
            gB[L] = torch.zeros_like(params[2 * L + 1])
        gx = None
        for l in range(L - 1, -1, -1):
            if hbar is None and dbar[l] is None:
                zbar = None
            elif hbar is None:
                zbar = dbar[l] * _act_second(ctx.activation, hs[l + 1], ds[l], ss[l])
            else:
                zbar = hbar * ds[l]
                if dbar[l] is not None:
                    zbar = torch.addcmul(zbar, dbar[l], _act_second(ctx.activation, hs[l + 1], ds[l], ss[l]))
            if zbar is None:
                gB[l] = torch.zeros_like(params[2 * l + 1])
                if gW[l] is None:
                    gW[l] = torch.zeros_like(W[l])
                hbar = None
                continue
            gW[l] = zbar.t().mm(hs[l]) if gW[l] is None else torch.addmm(gW[l], zbar.t(), hs[l])
            gB[l] = zbar.sum(0)
            if l > 0:
                hbar = zbar.mm(W[l])
            elif ctx.needs_input_grad[0]:
                gx = zbar.mm(W[0]).mul_(scale)
        for l in range(L + 1):
            if gW[l] is None:
                gW[l] = torch.zeros_like(W[l])
        out = [gx, None, None, None]
        for l in range(L + 1):
            out += [gW[l], gB[l]]
        return tuple(out)


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
    energy: Optional[torch.Tensor] = None   # (B,) eV, float64
    forces: Optional[torch.Tensor] = None   # (N, 3)
    # dense layout (DenseFrameStore: every frame has the same atoms): rows of G are element-major
    # (all frames' atoms of element blocks[0][0], then the next element, ...), blocks lists
    # (element, first row, end row, atoms of that element per frame); jacobian: the store, whose
    # forces_of(dE/dG, jacobian_frames) contracts the Jacobians of the batch's frames (store
    # indices jacobian_frames); forces stay frame-major in the frames' own atom order
    jacobian: Optional["DenseFrameStore"] = None
    jacobian_frames: Optional[torch.Tensor] = None
    blocks: Optional[list] = None


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
        # energies stay float64: total energies (~1e4 eV) in float32 are rounded by ~1 meV
        b.energy = torch.as_tensor(np.asarray(energies, dtype=float), dtype=torch.float64)
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
        # float64 whatever dtype: total energies (~1e4 eV) in float32 are rounded by ~1 meV
        self.energy = (None if energies is None else
                       torch.as_tensor(np.asarray(energies, dtype=float), dtype=torch.float64))
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


_HUGE_PAGE = 2 << 20
_libc = None


def _store_zeros(shape, dtype) -> torch.Tensor:
    """torch.zeros(shape, dtype) for a large, long-lived training array (the Jacobian stores, read in
    random frame order every epoch), backed by transparent huge pages where the kernel offers them
    (Linux, THP in 'madvise' or 'always' mode): madvise(MADV_HUGEPAGE) on the untouched allocation,
    then the zero fill faults it in as 2 MB pages. With 4 kB pages a batch's reads of a 1.4 GB
    store (rMD17 paracetamol, GMP element-pair channels) miss the TLB; huge pages made an epoch
    about 4 % faster there (benchmarks/bench_training_layout.py). Arrays under 4 MB, other systems,
    or a refused madvise: plain zeros (same values; only the page size differs)."""
    global _libc
    n = int(np.prod(shape)) * torch.empty((), dtype=dtype).element_size()
    if n < 2 * _HUGE_PAGE or not sys.platform.startswith("linux"):
        return torch.zeros(shape, dtype=dtype)
    try:
        import ctypes

        if _libc is None:
            _libc = ctypes.CDLL(None, use_errno=True)
            _libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
            _libc.madvise.restype = ctypes.c_int
        buf = torch.empty(n + _HUGE_PAGE, dtype=torch.uint8)
        start = -buf.data_ptr() % _HUGE_PAGE
        _libc.madvise(ctypes.c_void_p(buf.data_ptr() + start), ctypes.c_size_t(n // _HUGE_PAGE * _HUGE_PAGE),
                      14)  # MADV_HUGEPAGE; a refusal leaves ordinary pages
        return buf[start:start + n].view(dtype).view(shape).zero_()
    except (OSError, AttributeError, ValueError):
        return torch.zeros(shape, dtype=dtype)


class _FrameMatmul(torch.autograd.Function):
    """y[k] = x[k] @ mats[frames[k]] for a batch of frames. Large matrices are not gathered (a copy
    of every Jacobian once per epoch cost 60 % of a training epoch of rMD17 paracetamol with GMP
    element-pair channels): one matrix-vector product per frame on a view. Small ones (at most
    GATHER_LIMIT numbers for the batch) are gathered for one batched product, which is cheaper
    than a call per frame (rMD17 ethanol, ACSF). x (B, L), mats (n_frames, L, C) (constant: no
    gradient), frames (B,) int64; y (B, C)."""

    GATHER_LIMIT = 1 << 20

    @staticmethod
    def forward(ctx, x, mats, frames):
        ctx.mats, ctx.frames, ctx.gathered = mats, frames, None
        if len(frames) * mats.shape[1] * mats.shape[2] <= _FrameMatmul.GATHER_LIMIT:
            ctx.gathered = mats.index_select(0, frames)
            return torch.bmm(x.unsqueeze(1), ctx.gathered).squeeze(1)
        y = x.new_empty((x.shape[0], mats.shape[2]))
        for k, t in enumerate(frames.tolist()):
            torch.mv(mats[t].t(), x[k], out=y[k])
        return y

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, gy):
        if ctx.gathered is not None:  # as a (1, C) x (C, L) product: MKL's batched (L, C) x (C, 1) is 5x slower
            return torch.bmm(gy.unsqueeze(1), ctx.gathered.transpose(1, 2)).squeeze(1), None, None
        gx = gy.new_empty((gy.shape[0], ctx.mats.shape[1]))
        for k, t in enumerate(ctx.frames.tolist()):
            torch.mv(ctx.mats[t], gy[k], out=gx[k])
        return gx, None, None


class _FrameDiagonal(torch.autograd.Function):
    """y[k, i] = D[frames[k], i] g[k, i] for the diagonal Jacobian blocks dG_i/dr_i of a batch of
    frames: g (B, n, F), D (n_frames, n, 3, F) (constant: no gradient), frames (B,) int64;
    y (B, n, 3). As in _FrameMatmul, the batch's blocks are gathered when they hold at most
    _FrameMatmul.GATHER_LIMIT numbers, else read per frame on views."""

    @staticmethod
    def forward(ctx, g, D, frames):
        # per centre a (1, F) x (F, 3) product with D's (3, F) block read transposed (the fastest of the
        # forms measured: einsum on (F, 3) blocks, multiply-and-sum, (3, F) x (F, 1))
        ctx.D, ctx.frames, ctx.gathered = D, frames, None
        B, n, F = g.shape
        if len(frames) * D[0].numel() <= _FrameMatmul.GATHER_LIMIT:
            ctx.gathered = D.index_select(0, frames).view(B * n, 3, F)
            return torch.bmm(g.reshape(B * n, 1, F), ctx.gathered.transpose(1, 2)).view(B, n, 3)
        y = g.new_empty((B, n, 1, 3))
        for k, t in enumerate(frames.tolist()):
            torch.bmm(g[k].unsqueeze(1), D[t].transpose(1, 2), out=y[k])
        return y.view(B, n, 3)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, gy):
        B, n = gy.shape[:2]
        if ctx.gathered is not None:
            return torch.bmm(gy.reshape(B * n, 1, 3), ctx.gathered).view(B, n, -1), None, None
        gx = gy.new_empty((B, n, 1, ctx.D.shape[3]))
        for k, t in enumerate(ctx.frames.tolist()):
            torch.bmm(gy[k].unsqueeze(1), ctx.D[t], out=gx[k])
        return gx.view(B, n, -1), None, None


class DenseFrameStore:
    """Frames that all have the same atoms in the same order (a molecule's trajectory, e.g. rMD17)
    with their Jacobians as dense per-frame blocks, so that a batch's forces are a few
    matrix-vector products per frame (no gather/scatter over sparse entries) and each element's
    atoms are a contiguous block of rows (no per-batch selection).

    Storage: G_k (n_frames, n_k, F) per element k present. The Jacobian dG_i/dr_j (sparse entries
    summed per (centre, atom) pair, periodic images folded onto their atom) is split in
      * the diagonal blocks i = j: ``diagonal`` (n_frames, n, 3, F), centres in element-sorted order;
      * the off-diagonal blocks, one matrix per element e of the atom j: ``offdiag[e]``
        (n_frames, L_e, 3 n_e), rows (centre i in element-sorted order, feature f) for the features
        f that are nonzero for some centre of i's element and some atom of element e in some frame
        (``rows[e]``: their flat indices i F + f, L_e of them), columns (atom of element e in the
        frame's order, xyz) (``columns[e]``: those atoms).
    The features left out are exact zeros of these frames: a descriptor's features of one
    neighbour element (ACSF's radial functions of another element, its angular functions of
    element pairs without e, GMP density channels without e) do not depend on an atom of e, so
    about half of a multi-element Jacobian is structural zeros (rMD17 paracetamol, GMP
    element-pair channels: 2.2x less memory). Memory: 4 (float32) or 8 bytes x n_frames x
    3 x (n F + sum_e L_e n_e) <= 3 n^2 F. The frames' Jacobian values are released as they are
    copied (their ``values`` become None).
    Small molecules (16 frames' whole Jacobians at most WHOLE_LIMIT numbers, e.g. rMD17 ethanol)
    keep one matrix per frame instead (``whole``: ``offdiag[0]`` (n_frames, n F, 3 n), rows
    (centre in element-sorted order, feature), columns (atom in the frame's order, xyz), diagonal
    included; ``diagonal`` None, ``rows`` and ``columns`` empty): there, fewer operations per batch
    beat the smaller copy.
    Raises ValueError if the frames differ in atoms or lack Jacobians."""

    WHOLE_LIMIT = 1 << 20

    def __init__(self, frames: List[FrameFeatures], energies=None, forces=None, dtype=torch.float64):
        sp0 = np.asarray(frames[0].species)
        if any(len(f.species) != len(sp0) or not np.array_equal(f.species, sp0) for f in frames):
            raise ValueError("DenseFrameStore needs frames with the same atoms in the same order")
        if any(f.values is None for f in frames):
            raise ValueError("DenseFrameStore needs Jacobians")
        n, F = len(sp0), frames[0].G.shape[1]
        nf = len(frames)
        self.n = n
        self.n_atoms = np.full(nf, n, dtype=np.int64)
        self.order = np.argsort(sp0, kind="stable")          # element-sorted position -> atom
        self.elements = [int(k) for k in np.unique(sp0)]
        self.counts = [int(np.sum(sp0 == k)) for k in self.elements]
        Gs = np.stack([f.G for f in frames])                 # (nf, n, F)
        self.G = [torch.as_tensor(Gs[:, sp0 == k], dtype=dtype).contiguous() for k in self.elements]
        rank = np.empty(n, dtype=np.int64)
        rank[self.order] = np.arange(n)                     # atom -> element-sorted position
        self.rank = torch.as_tensor(rank)
        # small molecules: one matrix per frame, the diagonal included (fewer operations per batch
        # beat the smaller copy: rMD17 ethanol, training_speed.md)
        self.whole = 16 * n * F * 3 * n <= DenseFrameStore.WHOLE_LIMIT
        self.rows, self.columns, self.offdiag, self.diagonal = [], [], [], None
        if self.whole:
            self.offdiag.append(_store_zeros((nf, n * F, 3 * n), dtype))
        else:
            # features that are nonzero off the diagonal, per (element of the centre, element of the atom)
            ne_all = int(sp0.max()) + 1
            nonzero = np.zeros((ne_all, ne_all, F), dtype=bool)
            for f in frames:
                off = f.centre != f.atom
                pair = sp0[f.centre[off]] * ne_all + sp0[f.atom[off]]
                nz = np.any(f.values[off] != 0, axis=2)       # (E', F)
                for p in np.unique(pair):
                    nonzero.reshape(-1, F)[p] |= nz[pair == p].any(axis=0)
            for e in self.elements:
                self.rows.append(torch.as_tensor(np.concatenate(
                    [rank[np.flatnonzero(sp0 == a)][:, None] * F + np.flatnonzero(nonzero[a, e])[None, :]
                     for a in self.elements], axis=None).astype(np.int64)))
                self.columns.append(torch.as_tensor(np.flatnonzero(sp0 == e)))
                self.offdiag.append(_store_zeros((nf, len(self.rows[-1]), 3 * len(self.columns[-1])), dtype))
            self._column_rank = torch.argsort(torch.cat(self.columns))  # atom -> position in the cat of columns
            self.diagonal = _store_zeros((nf, n, 3, F), dtype)
        diag = (torch.arange(n), torch.as_tensor(self.order))            # (centre', atom) with atom = centre
        for t, f in enumerate(frames):
            v = torch.as_tensor(f.values, dtype=torch.float64)                 # (E, F, 3)
            pair = torch.as_tensor(rank[f.centre] * n + f.atom)
            J = torch.zeros((n * n, F, 3), dtype=torch.float64).index_add_(0, pair, v).view(n, n, F, 3)
            if self.whole:  # (centre', atom, F, 3) -> (centre' F, atom xyz)
                self.offdiag[0][t] = J.permute(0, 2, 1, 3).reshape(n * F, 3 * n).to(dtype)
            else:
                self.diagonal[t] = J[diag].transpose(1, 2).to(dtype)          # (n, 3, F)
                J[diag] = 0.0
                Jt = J.permute(0, 2, 1, 3).reshape(n * F, n, 3)                 # (centre' F, atom, 3)
                for k in range(len(self.offdiag)):
                    self.offdiag[k][t] = Jt.index_select(0, self.rows[k]).index_select(1, self.columns[k]).reshape(
                        len(self.rows[k]), -1).to(dtype)
            f.values = None
        self.energy = (None if energies is None else
                       torch.as_tensor(np.asarray(energies, dtype=float), dtype=torch.float64))
        self.forces = (None if forces is None else
                       torch.as_tensor(np.stack([np.asarray(x) for x in forces]), dtype=dtype))  # (nf, n, 3)
        self.has_jacobian = True
        self._layouts = {}  # batch size -> index arrays (_layout)
        self.dtype = dtype

    def __len__(self):
        return len(self.n_atoms)

    def forces_of(self, g: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
        """sum_i g_i . dG_i/dr_j for the batch's frames: g (B, n, F) (centres in element-sorted
        order), frames (B,) int64 store indices; returns (B, n, 3) (atoms in the frames' order),
        differentiable with respect to g."""
        B, n = g.shape[0], self.n
        flat = g.reshape(B, -1)
        if self.whole:  # the batch's matrices gathered, one batched product (autograd's own)
            return torch.bmm(flat.unsqueeze(1), self.offdiag[0].index_select(0, frames)).view(B, n, 3)
        return self._blocks_forces(g, flat, frames)

    @torch.compiler.disable
    def _blocks_forces(self, g, flat, frames):
        # per-frame products on views (a Python loop over the batch's frames, which torch.compile
        # cannot trace: the trainer's compiled step runs this part eagerly, a graph break)
        B = g.shape[0]
        parts = [_FrameMatmul.apply(flat.index_select(1, r), m, frames).view(B, -1, 3)
                 for r, m in zip(self.rows, self.offdiag)]
        out = torch.cat(parts, dim=1).index_select(1, self._column_rank)
        diag = _FrameDiagonal.apply(g, self.diagonal, frames)
        return out + diag.index_select(1, self.rank)

    def _layout(self, B: int):
        """The index arrays of a batch of B frames (species, frame, n_atoms, blocks): the same for
        every batch of that size, so built once per size (they are only read)."""
        cache = self._layouts
        if B not in cache:
            species = torch.cat([torch.full((B * c,), k, dtype=torch.long) for k, c in zip(self.elements, self.counts)])
            frame = torch.cat([torch.arange(B).repeat_interleave(c) for c in self.counts])
            blocks, start = [], 0
            for k, c in zip(self.elements, self.counts):
                blocks.append((k, start, start + B * c, c))
                start += B * c
            cache[B] = (species, frame, torch.full((B,), float(self.n), dtype=self.dtype), blocks)
        return cache[B]

    def batch(self, idx, with_forces: bool = True) -> Batch:
        ii = torch.as_tensor(np.asarray(idx, dtype=np.int64))
        B, F = len(ii), self.G[0].shape[2]
        G = torch.cat([g.index_select(0, ii).view(-1, F) for g in self.G])
        species, frame, n_atoms, blocks = self._layout(B)
        b = Batch(G, species, frame, B, n_atoms, blocks=list(blocks))
        if with_forces:
            b.jacobian = self
            b.jacobian_frames = ii
            if self.forces is not None:
                b.forces = self.forces.index_select(0, ii).view(-1, 3)
        if self.energy is not None:
            b.energy = self.energy.index_select(0, ii)
        return b


def dense_layout_fits(frames: List[FrameFeatures], max_ratio: float = 2.0) -> bool:
    """True when every frame has the same atoms in the same order and the dense Jacobian
    (3 n^2 F numbers per frame) is at most ``max_ratio`` times the sparse one (3 F per entry)."""
    if not frames or frames[0].values is None:
        return False
    sp0 = frames[0].species
    if any(len(f.species) != len(sp0) or not np.array_equal(f.species, sp0) for f in frames):
        return False
    n = len(sp0)
    return n * n <= max_ratio * max(1, min(len(f.centre) for f in frames))


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

    def _apply(self, fn, recurse=True):
        # the reference energies (hundreds to thousands of eV per atom) stay float64 whatever the
        # training dtype: in float32 they would be rounded by up to ~1e-4 eV each
        ref = self._buffers["reference"]
        out = super()._apply(fn, recurse)
        self._buffers["reference"] = ref.to(device=self._buffers["reference"].device)
        return out

    def _linears(self, m: int, k: int) -> List[nn.Linear]:
        return [layer for layer in self.members[m][k] if isinstance(layer, nn.Linear)]

    def _mlp_value_and_gradient(self, m: int, k: int, G: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor):
        """Network k of member m on the rows G (n, F_k), scaled as x = (G - shift) * scale (shift, scale
        (F_k,) or (n, F_k)): outputs u (n,) and their gradient du/dG (n, F_k) (:class:`_MLPValueGradient`:
        a single backward pass of the loss differentiates forces with respect to the weights, without
        double backward through autograd)."""
        lins = self._linears(m, k)
        if not self.hidden:  # a linear model: u = x w^T + b, du/dG = w * scale
            x = (G - shift) * scale
            return nnf.linear(x, lins[0].weight, lins[0].bias)[:, 0], (lins[0].weight * scale).expand(x.shape[0], -1)
        params = [t for lin in lins for t in (lin.weight, lin.bias)]
        return _MLPValueGradient.apply(G, shift, scale, self.activation, *params)

    def network_energies(self, G: torch.Tensor, species: torch.Tensor, gradient: bool = True, blocks=None,
                         frame_major: bool = False):
        """Network part of the atomic energies, u_i = mean_m NN_n(k)^m(x_i) (N,), in units of
        ``energy_scale`` (E_i = reference_k + energy_scale * u_i), and if ``gradient`` du_i/dG_i
        (N, F) (zero beyond an element's feature count). G: (N, F) raw descriptor rows, species
        (N,) element indices; ``blocks`` (optional, :class:`DenseFrameStore` batches): the rows
        of each element as contiguous slices [(element, start, stop, count per frame)], which saves
        the per-element selection; with ``frame_major`` du/dG is returned as (B, n, F) instead,
        frame by frame with each frame's rows in the blocks' order (what
        :meth:`DenseFrameStore.forces_of` takes). Both outputs are differentiable with respect to
        the weights; du/dG (through :class:`_MLPValueGradient`) once, u without ``gradient`` to any
        order (the plain networks: the physics-embedded model differentiates its energy twice)."""
        M = len(self.members)
        if not gradient:
            return self._network_values(G, species), None

        def mean(outs, i):
            return outs[0][i] if M == 1 else sum(o[i] for o in outs) / M

        if self.shared:
            shift, scale = self.shift.index_select(0, species), self.scale.index_select(0, species)
            outs = [self._mlp_value_and_gradient(m, 0, G, shift, scale) for m in range(M)]
            u, g = mean(outs, 0), mean(outs, 1)
            if blocks is not None and frame_major:
                g = torch.cat([g[start:stop].view(-1, c, G.shape[1]) for _, start, stop, c in blocks], dim=1)
            return u, g
        if blocks is not None:
            us, gs = [], []
            for k, start, stop, c in blocks:
                nf = self.n_features[k]
                outs = [self._mlp_value_and_gradient(m, k, G[start:stop, :nf], self.shift[k, :nf], self.scale[k, :nf])
                        for m in range(M)]
                us.append(mean(outs, 0))
                gk = mean(outs, 1)
                gk = nnf.pad(gk, (0, G.shape[1] - nf)) if nf < G.shape[1] else gk
                gs.append(gk.view(-1, c, G.shape[1]) if frame_major else gk)
            return torch.cat(us), torch.cat(gs, dim=1 if frame_major else 0)
        u = torch.zeros(G.shape[0], dtype=G.dtype)
        g = torch.zeros_like(G)
        for k in range(len(self.elements)):
            sel = torch.nonzero(species == k, as_tuple=True)[0]
            if sel.numel() == 0:
                continue
            nf = self.n_features[k]
            outs = [self._mlp_value_and_gradient(m, k, G.index_select(0, sel)[:, :nf], self.shift[k, :nf],
                                                 self.scale[k, :nf]) for m in range(M)]
            u = u.index_add(0, sel, mean(outs, 0))
            gk = mean(outs, 1)
            if nf < G.shape[1]:
                gk = nnf.pad(gk, (0, G.shape[1] - nf))
            g = g.index_copy(0, sel, gk)
        return u, g

    def _network_values(self, G: torch.Tensor, species: torch.Tensor) -> torch.Tensor:
        """u_i = mean_m NN_n(k)^m(x_i) (N,) through the nn.Sequential networks (autograd to any order)."""
        x = (G - self.shift.index_select(0, species)) * self.scale.index_select(0, species)
        M = len(self.members)
        if self.shared:
            return sum(member[0](x)[:, 0] for member in self.members) / M
        u = torch.zeros(G.shape[0], dtype=G.dtype)
        for k in range(len(self.elements)):
            sel = torch.nonzero(species == k, as_tuple=True)[0]
            if sel.numel():
                xk = x.index_select(0, sel)[:, :self.n_features[k]]
                u = u.index_add(0, sel, sum(member[k](xk)[:, 0] for member in self.members) / M)
        return u

    def atomic_energies(self, G: torch.Tensor, species: torch.Tensor) -> torch.Tensor:
        """Atomic energies E_i (N,) eV, float64 (the reference energies are added in float64)."""
        u, _ = self.network_energies(G, species, gradient=False)
        return self.reference[species] + self.energy_scale.double() * u.double()

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
        """Each member's energies (M, B) eV, float64 whatever the model's dtype (reference energies are added
        in float64), and, if asked, forces (M, N, 3) eV/Angstrom in the model's dtype: the
        members as independent models on the same descriptor rows (committee training)."""
        M = len(self.members)
        outer_grad = torch.is_grad_enabled()
        with torch.enable_grad():  # forces need dE/dG even when evaluated under no_grad (validation)
            G = batch.G.detach().unsqueeze(0).repeat(M, 1, 1).requires_grad_(forces)
            Ea = self.member_atomic_energies(G, batch.species)  # (M, N)
            E = torch.zeros((M, batch.n_frames), dtype=Ea.dtype).index_add(1, batch.frame, Ea)  # float64 (reference energies)
            if not forces:
                return (E if outer_grad else E.detach()), None
            (dEdG,) = torch.autograd.grad(Ea.sum(), G, create_graph=create_graph and outer_grad)  # (M, N, F)
        if not outer_grad:
            E, dEdG = E.detach(), dEdG.detach()
        F = []
        for m in range(M):  # one member at a time: the memory of a single model
            g = torch.einsum("ef,efk->ek", dEdG[m][batch.centre], batch.values)
            F.append(-torch.zeros((G.shape[1], 3), dtype=G.dtype).index_add(0, batch.atom, g))
        return E, torch.stack(F)

    def forward(self, batch: Batch, forces: bool = True, create_graph: bool = False):
        """Energies (B,) eV, float64 whatever the model's dtype (reference energies are added in
        float64), and, if asked, forces (N, 3) eV/Angstrom in the model's dtype, of a batch.

        Forces F_m = -energy_scale sum_e du_i(e)/dG . dG_i(e)/dr_m over the batch's Jacobian
        entries e (the core's sparse Jacobian). du/dG is computed by explicit backpropagation
        (:meth:`network_energies`), so the forces are differentiable with respect to the weights
        whenever autograd is enabled; ``create_graph`` is accepted for compatibility and ignored."""
        dense = forces and batch.jacobian is not None
        u, dudG = self.network_energies(batch.G, batch.species, gradient=forces, blocks=batch.blocks,
                                        frame_major=dense)
        s = self.energy_scale
        E_net = torch.zeros(batch.n_frames, dtype=u.dtype).index_add(0, batch.frame, u)
        E_ref = torch.zeros(batch.n_frames, dtype=torch.float64).index_add(
            0, batch.frame, self.reference.index_select(0, batch.species))
        E = E_ref + s.double() * E_net.double()
        if not forces:
            return E, None
        if dense:  # DenseFrameStore.forces_of, du/dG frame by frame
            Fr = batch.jacobian.forces_of(dudG, batch.jacobian_frames).view(-1, 3)
            return E, -s * Fr
        g = torch.einsum("ef,efk->ek", dudG.index_select(0, batch.centre), batch.values)
        Fr = torch.zeros((batch.G.shape[0], 3), dtype=g.dtype).index_add(0, batch.atom, g)
        return E, -s * Fr

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
