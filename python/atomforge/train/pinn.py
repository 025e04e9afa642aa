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

Molecules use the direct sum above; periodic frames (all three directions periodic) the Ewald
sum of cpp/src/electrostatics/ewald.hpp (:func:`ewald_energy`) with the core's parameters for the
model's accuracy (:class:`EwaldSetup`, fixed per frame); both are the sums the exported model
evaluates. Slabs and wires (mixed periodicity) are refused.

Optional dispersion term (``dispersion=True``; :mod:`atomforge.models.pinn` for the formula):
E_disp = -sum_{pairs, r < r_cut} f(r) sqrt(C6_i C6_j) / (r^6 + (r0_i + r0_j)^6), C6_i = c6[k_i]
(softplus(NN_c(x_i)) + 1e-3), over all pairs of a molecule and over the image pairs within r_cut
of a periodic frame (:class:`DispersionSetup`, fixed per frame), :func:`dispersion_energy`.

Optional polarisation term (``polarisation=True``; molecules and periodic frames):
Thole-damped induced point dipoles mu = alpha (E^q + T mu) with alpha_i = alpha[k_i]
(softplus(NN_a(x_i)) + 1e-3), solved exactly per frame by ``torch.linalg.solve``
(:func:`induced_dipoles`; periodic frames: the dipolar Ewald sum of
:func:`induced_dipoles_periodic`), E_pol = -k_e/2 sum_i mu_i . E_i^q; differentiable, so forces and
training see every dependence of q and alpha on the positions.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..descriptors import Descriptor
from ..models.pinn import (DISPERSION_FLOOR, MAX_THOLE, POLARISATION_FLOOR, THOLE_AMOEBA, DispersionParameters,
                           PinnParameters, PolarisationParameters, dispersion_reference, polarisation_reference)
from ..units import COULOMB
from .bpnn import TorchBPNN
from .dipole import TorchDipole
from .trainer import Trainer


def pair_indices(n_atoms, skip=None) -> tuple:
    """All pairs i < j inside each frame of a batch, as batch-local atom indices.

    n_atoms: (B,) atom counts; skip: optional (B,) bools, frames to leave out (periodic ones).
    Returns (i, j), two int64 tensors.
    """
    ii, jj, off = [], [], 0
    for b_, n in enumerate(np.asarray(n_atoms, dtype=np.int64)):
        if skip is None or not skip[b_]:
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


def image_pairs(positions, cell, r_cut) -> tuple:
    """Ordered image pairs of one periodic frame within r_cut (a full list: (i, j) and (j, i),
    i = j included for lattice translations n != 0). positions (n, 3), cell (3, 3) rows, Angstrom.
    Returns numpy arrays i, j (P,) int64 and shift (P, 3) Angstrom with r_ij = r_j + shift - r_i."""
    pos = np.asarray(positions, dtype=float)
    cell = np.asarray(cell, dtype=float)
    volume = abs(float(np.linalg.det(cell)))
    # lattice translations that can hold an image within r_cut (plane spacings V / |a x b|)
    spacing = [volume / np.linalg.norm(np.cross(cell[(d + 1) % 3], cell[(d + 2) % 3])) for d in range(3)]
    span = [int(np.ceil(r_cut / h)) + 1 for h in spacing]
    ii, jj, ss = [], [], []
    d0 = pos[None, :, :] - pos[:, None, :]  # r_j - r_i
    for n1 in range(-span[0], span[0] + 1):
        for n2 in range(-span[1], span[1] + 1):
            for n3 in range(-span[2], span[2] + 1):
                t = np.array([n1, n2, n3], dtype=float) @ cell
                r = np.linalg.norm(d0 + t, axis=2)
                ok = r < r_cut
                if n1 == n2 == n3 == 0:
                    np.fill_diagonal(ok, False)
                a, b = np.nonzero(ok)
                ii.append(a)
                jj.append(b)
                ss.append(np.repeat(t[None, :], len(a), axis=0))
    return np.concatenate(ii), np.concatenate(jj), np.concatenate(ss)


class DispersionSetup:
    """The dispersion image pairs of one periodic frame within r_cut (:func:`image_pairs`), fixed
    for that frame. Attributes: i, j (P,) int64, shift (P, 3) Angstrom."""

    def __init__(self, positions, cell, r_cut):
        i, j, sh = image_pairs(positions, cell, float(r_cut))
        self.i = torch.as_tensor(i, dtype=torch.long)
        self.j = torch.as_tensor(j, dtype=torch.long)
        self.shift = torch.as_tensor(sh)


def dispersion_switch(r: torch.Tensor, r_on: float, r_cut: float) -> torch.Tensor:
    """f(r) = 1 - 10x^3 + 15x^4 - 6x^5, x = (r - r_on) / (r_cut - r_on) clipped to [0, 1]: 1 up to
    r_on, 0 from r_cut on, value and first two derivatives continuous."""
    x = torch.clamp((r - r_on) / (r_cut - r_on), 0.0, 1.0)
    return 1.0 - x ** 3 * (10.0 - 15.0 * x + 6.0 * x * x)


def dispersion_energy(R: torch.Tensor, c6: torch.Tensor, r0: torch.Tensor, i, j, shift, weight, frame: torch.Tensor,
                      n_frames: int, r_on: float, r_cut: float) -> torch.Tensor:
    """Dispersion energies (n_frames,) eV: -sum_p weight_p f(r_p) sqrt(c6_i c6_j) / (r_p^6 +
    (r0_i + r0_j)^6) over the pairs p = (i, j, shift) (r_p = |R_j + shift - R_i|; weight 1 for
    each pair i < j of a molecule, 1/2 for the ordered image pairs of a periodic frame).
    c6 (N,) eV*Angstrom^6 (the network-scaled C6_i), r0 (N,) Angstrom. Differentiable in R, c6."""
    d = R[j] + shift.to(R.dtype) - R[i]
    r = torch.sqrt((d * d).sum(dim=1))
    R0 = r0[i] + r0[j]
    e = -weight * dispersion_switch(r, r_on, r_cut) * torch.sqrt(c6[i] * c6[j]) / (r ** 6 + R0 ** 6)
    return torch.zeros(n_frames, dtype=R.dtype).index_add(0, frame[i], e)


def induced_dipoles(R: torch.Tensor, q: torch.Tensor, alpha: torch.Tensor, thole: float):
    """Induced dipoles of one molecule (open boundaries), the core's formula (cpp/src/models/pinn):
    point polarisabilities alpha (n,) Angstrom^3 at R (n, 3) Angstrom in the Thole-damped field of
    the point charges q (n,) e (AMOEBA damping, s = thole r^3 / sqrt(alpha_i alpha_j),
    l3 = 1 - e^-s, l5 = 1 - (1 + s) e^-s, for the charge-dipole and dipole-dipole terms)::

        E_i^q = sum_{j != i} q_j l3 d_ij / r^3,   T_ij = 3 l5 d d^T / r^5 - l3 I / r^3,  d_ij = R_i - R_j
        mu    = alpha (E^q + T mu)   (torch.linalg.solve of (1 - S T S) nu = S E^q, S = sqrt(alpha), mu = S nu)
        E_pol = -k_e / 2 sum_i mu_i . E_i^q

    Returns (E_pol (0-d, eV), mu (n, 3) e*Angstrom, E^q (n, 3) e/Angstrom^2, T (3n, 3n) 1/Angstrom^3).
    Differentiable in R, q and alpha."""
    n = R.shape[0]
    dt = R.dtype
    d = R[:, None, :] - R[None, :, :]
    eye = torch.eye(n, dtype=torch.bool)
    r2 = torch.where(eye, torch.ones((), dtype=dt), (d * d).sum(-1))
    r = torch.sqrt(r2)
    s = thole * r ** 3 / torch.sqrt(alpha[:, None] * alpha[None, :])
    es = torch.exp(-s)
    l3 = -torch.expm1(-s)
    l5 = l3 - s * es
    zero = torch.zeros((), dtype=dt)
    A3 = torch.where(eye, zero, l3 / (r2 * r))
    A5 = torch.where(eye, zero, l5 / (r2 * r2 * r))
    Eq = (q[None, :, None] * A3[:, :, None] * d).sum(1)
    I3 = torch.eye(3, dtype=dt)
    T = 3.0 * A5[:, :, None, None] * d[:, :, :, None] * d[:, :, None, :] - A3[:, :, None, None] * I3
    T = T.permute(0, 2, 1, 3).reshape(3 * n, 3 * n)
    sa = torch.sqrt(alpha).repeat_interleave(3)
    M = torch.eye(3 * n, dtype=dt) - sa[:, None] * T * sa[None, :]
    nu = torch.linalg.solve(M, sa * Eq.reshape(-1))
    mu = (sa * nu).reshape(n, 3)
    return -0.5 * COULOMB * (mu * Eq).sum(), mu, Eq, T


#: s = a r^3 / sqrt(alpha_i alpha_j) beyond which the Thole corrections e^-s are below 1e-16 (the core's
#: kTholeNegligible): periodic real-space dipole sums extend at least that far.
THOLE_NEGLIGIBLE = 37.0


def induced_dipoles_periodic(R: torch.Tensor, q: torch.Tensor, alpha: torch.Tensor, thole: float, setup):
    """Induced dipoles of one periodic frame: :func:`induced_dipoles` with every lattice image,
    summed by Ewald for point charges and point dipoles (tin-foil boundary; T. M. Nymand,
    P. Linse, J. Chem. Phys. 112, 6152 (2000)), the core's Eqs. P1-P5 (cpp/src/models/pinn/pinn.hpp)
    with the splitting parameter, reciprocal vectors and cell of ``setup``, the frame's
    :meth:`EwaldSetup.dipole_setup` (the core's splitting for dense dipole sums):

        real space (images within max(r_cut, r at s = 37), i's own images included), x = beta r:
            A3 = [l3 - erf(x) + c r e^{-x^2}] / r^3,  A5 = [l5 - erf(x) + c r (1 + 2x^2/3) e^{-x^2}] / r^5
            E_i^q += q_j A3 d,  T_ij += 3 A5 d d^T - A3 I,   d = r_i - r_j - shift,  c = 2 beta / sqrt(pi)
        reciprocal (half space, g_k = exp(-k^2 / 4 beta^2) / k^2, p = 8 pi / V, A0 + i B0 = sum q e^{ik.r}):
            E_i^q += -p sum_k g_k k (B0 cos k.r_i - A0 sin k.r_i)
            T_ij  += -p sum_k g_k k k^T cos(k.(r_i - r_j)),   T_ii += 4 beta^3 / (3 sqrt(pi)) I

    R (n, 3) Angstrom, q (n,) e, alpha (n,) Angstrom^3. Returns (E_pol (0-d, eV), mu (n, 3)
    e*Angstrom). Differentiable in R, q and alpha (the pair list is fixed per call)."""
    n = R.shape[0]
    dt = R.dtype
    beta, V = float(setup.alpha), float(setup.volume)
    r_pol = max(float(setup.r_cut), float(np.cbrt(THOLE_NEGLIGIBLE * float(alpha.detach().max()) / thole)))
    if r_pol > setup.r_cut:
        i, j, sh = image_pairs(R.detach().double().numpy(), setup.cell, r_pol)
        i, j, sh = torch.as_tensor(i), torch.as_tensor(j), torch.as_tensor(sh)
    else:
        i, j, sh = setup.i, setup.j, setup.shift
    d = R[i] - R[j] - sh.to(dt)
    r = torch.sqrt((d * d).sum(-1))
    s = thole * r ** 3 / torch.sqrt(alpha[i] * alpha[j])
    es = torch.exp(-s)
    l3 = -torch.expm1(-s)
    l5 = l3 - s * es
    x = beta * r
    ex = torch.exp(-x * x)
    c = 2.0 * beta / np.sqrt(np.pi)
    A3 = (l3 - torch.erf(x) + c * r * ex) / r ** 3
    A5 = (l5 - torch.erf(x) + c * r * (1.0 + 2.0 * x * x / 3.0) * ex) / r ** 5
    I3 = torch.eye(3, dtype=dt)
    Eq = torch.zeros((n, 3), dtype=dt).index_add(0, i, q[j, None] * A3[:, None] * d)
    blocks = 3.0 * A5[:, None, None] * d[:, :, None] * d[:, None, :] - A3[:, None, None] * I3
    T = torch.zeros((n, n, 3, 3), dtype=dt).index_put((i, j), blocks, accumulate=True)
    k = setup.kvec.to(dt)
    k2 = (k * k).sum(-1)
    g = torch.exp(-k2 / (4.0 * beta * beta)) / k2
    phase = R @ k.T
    cs, sn = torch.cos(phase), torch.sin(phase)
    pk = 8.0 * np.pi / V
    A0, B0 = q @ cs, q @ sn
    Eq = Eq - pk * ((cs * B0 - sn * A0) * g) @ k
    Ck = cs[:, :, None] * k[None] * torch.sqrt(g)[None, :, None]
    Sk = sn[:, :, None] * k[None] * torch.sqrt(g)[None, :, None]
    T = T - pk * (torch.einsum("ikx,jky->ijxy", Ck, Ck) + torch.einsum("ikx,jky->ijxy", Sk, Sk))
    T = T + torch.eye(n, dtype=dt)[:, :, None, None] * (4.0 * beta ** 3 / (3.0 * np.sqrt(np.pi))) * I3
    T = T.permute(0, 2, 1, 3).reshape(3 * n, 3 * n)
    sa = torch.sqrt(alpha).repeat_interleave(3)
    M = torch.eye(3 * n, dtype=dt) - sa[:, None] * T * sa[None, :]
    nu = torch.linalg.solve(M, sa * Eq.reshape(-1))
    mu = (sa * nu).reshape(n, 3)
    return -0.5 * COULOMB * (mu * Eq).sum(), mu


class EwaldSetup:
    """What the PyTorch Ewald sum of one periodic frame needs, fixed for that frame: the core's
    parameters (alpha, r_cut, k_cut for the model's accuracy: :func:`atomforge.electrostatics.ewald`),
    the real-space image pairs (ordered, i = j included for n != 0) within r_cut, and the
    half-space reciprocal vectors with |k| <= k_cut.

    Args: positions (n, 3) Angstrom, cell (3, 3) rows in Angstrom, sigma (n,) Angstrom, accuracy;
    alpha (1/Angstrom) or None: the core's choice for the charges' sum.
    Attributes: i, j (P,) int64; shift (P, 3) Angstrom (r_ij = r_j + shift - r_i); kvec (K, 3)
    1/Angstrom; alpha (1/Angstrom); r_cut (Angstrom); cell (3, 3) Angstrom; volume (Angstrom^3).
    Raises ValueError for what :func:`~atomforge.electrostatics.ewald` refuses.
    """

    def __init__(self, positions, cell, sigma, accuracy, alpha=None):
        from ..electrostatics import ewald

        pos = np.asarray(positions, dtype=float)
        cell = np.asarray(cell, dtype=float)
        n = len(pos)
        par = ewald(pos, np.zeros(n), cell, [True] * 3, sigma=np.asarray(sigma, dtype=float),
                    accuracy=accuracy, alpha=alpha)["parameters"]
        self.positions, self.accuracy = pos, float(accuracy)
        self._dipole_setup = None
        self.alpha, r_cut, k_cut = float(par["alpha"]), float(par["r_cut"]), float(par["k_cut"])
        self.r_cut, self.cell = r_cut, cell
        self.volume = abs(float(np.linalg.det(cell)))
        i, j, sh = image_pairs(pos, cell, r_cut)
        self.i = torch.as_tensor(i, dtype=torch.long)
        self.j = torch.as_tensor(j, dtype=torch.long)
        self.shift = torch.as_tensor(sh)
        recip = 2 * np.pi * np.linalg.inv(cell).T  # rows b_d with a_c . b_d = 2 pi delta_cd
        # h_d = k . a_d / (2 pi), so |h_d| <= k_cut |a_d| / (2 pi)
        kmax = [int(np.ceil(k_cut * np.linalg.norm(cell[d]) / (2 * np.pi))) for d in range(3)]
        hkl = np.array([(h, k, l) for h in range(0, kmax[0] + 1) for k in range(-kmax[1], kmax[1] + 1)
                        for l in range(-kmax[2], kmax[2] + 1)
                        if h > 0 or (h == 0 and (k > 0 or (k == 0 and l > 0)))], dtype=float)
        kv = hkl @ recip
        self.kvec = torch.as_tensor(kv[np.linalg.norm(kv, axis=1) <= k_cut])

    def dipole_setup(self) -> "EwaldSetup":
        """The setup of the frame's dense dipole sums (polarisation): point dipoles, the core's
        splitting parameter for them (:func:`atomforge._core.dipole_ewald_alpha`), same accuracy;
        built once per frame."""
        if self._dipole_setup is None:
            from .. import _core

            a = _core.dipole_ewald_alpha(np.ascontiguousarray(self.cell), len(self.positions), self.accuracy)
            self._dipole_setup = EwaldSetup(self.positions, self.cell, np.zeros(len(self.positions)),
                                            self.accuracy, alpha=a)
        return self._dipole_setup


def ewald_energy(R: torch.Tensor, q: torch.Tensor, sigma: torch.Tensor, setup: EwaldSetup) -> torch.Tensor:
    """Ewald energy (eV, a 0-d tensor) of one periodic frame's Gaussian charges, the formulas of
    cpp/src/electrostatics/ewald.hpp (real + reciprocal + self + neutralising background, tin-foil
    boundary; E. Ewald, Ann. Phys. 369, 253 (1921)) on the frame's :class:`EwaldSetup`.

    R (n, 3) Angstrom, q (n,) e, sigma (n,) Angstrom. Differentiable in R and q.
    """
    a, V = setup.alpha, setup.volume
    i, j = setup.i, setup.j
    d = R[j] + setup.shift.to(R.dtype) - R[i]
    r = torch.sqrt((d * d).sum(dim=1))
    gamma = torch.sqrt(2.0 * (sigma[i] ** 2 + sigma[j] ** 2))
    smeared = gamma > 0
    safe = torch.where(smeared, gamma, torch.ones_like(gamma))
    corr = torch.where(smeared, torch.erfc(r / safe), torch.zeros_like(r))
    e_real = 0.5 * COULOMB * (q[i] * q[j] * (torch.erfc(a * r) - corr) / r).sum()
    k = setup.kvec.to(R.dtype)
    k2 = (k * k).sum(dim=1)
    phase = R @ k.T  # (n, K)
    C = (q[:, None] * torch.cos(phase)).sum(dim=0)
    S = (q[:, None] * torch.sin(phase)).sum(dim=0)
    e_recip = (4 * np.pi * COULOMB / V) * (torch.exp(-k2 / (4 * a * a)) / k2 * (C * C + S * S)).sum()
    e_self = -COULOMB * a / np.sqrt(np.pi) * (q * q).sum()
    Q = q.sum()
    e_bg = -COULOMB * np.pi / (2 * V * a * a) * Q * Q + COULOMB * 2 * np.pi / V * Q * (q * sigma * sigma).sum()
    return e_real + e_recip + e_self + e_bg


class FrozenEwald:
    """The Ewald energy of one periodic frame **at fixed positions** R0, as a quadratic form of the
    charges, for training (where the positions are data and only the charges change):

        E(q) = 1/2 q^T M q,        dE/dR_j = q_j sum_i T[:, j, i] q_i

    with M (n, n) and T (3, n, n) summed once from the frame's :class:`EwaldSetup` (the same image
    pairs, k vectors, alpha and background terms as :func:`ewald_energy`, so the same energy,
    forces and charge derivatives up to the summation order, ~1e-13 relative):

        M_ij = k_e sum_n f(|r_j + n - r_i|) + (8 pi k_e / V) sum_k g_k cos(k.(r_i - r_j))
               - delta_ij 2 k_e alpha / sqrt(pi) - k_e pi / (V alpha^2) + (2 pi k_e / V)(sigma_i^2 + sigma_j^2)
        f(r) = (erfc(alpha r) - erfc(r / gamma_ij)) / r,   g_k = exp(-k^2 / 4 alpha^2) / k^2
        T[:, j, i] = k_e sum_n f'(r) d / r  (d = r_j + n - r_i)
                     + (8 pi k_e / V) sum_k g_k k (cos(k.r_j) sin(k.r_i) - sin(k.r_j) cos(k.r_i))

    :meth:`energy` returns 1/2 q^T M q + sum((R - R0) * dE/dR): its value is the Ewald energy
    (R equals R0), its gradient in R is the exact dE/dR at R0 and both are differentiable in q, so
    forces and their derivatives with respect to the weights (force training) are exact. Second
    derivatives in R are not (the geometry is frozen), and R must equal R0 (checked). Per step this
    costs two (n, n) products instead of the (n, K) structure factors and their double backward.

    Args: positions (n, 3) Angstrom, setup: the frame's :class:`EwaldSetup`, sigma (n,) Angstrom.
    """

    def __init__(self, positions, setup: EwaldSetup, sigma):
        R0 = torch.as_tensor(np.asarray(positions, dtype=float))
        s = torch.as_tensor(np.asarray(sigma, dtype=float))
        n = len(R0)
        a, V = setup.alpha, setup.volume
        i, j = setup.i, setup.j
        d = R0[j] + setup.shift.double() - R0[i]
        r = torch.sqrt((d * d).sum(dim=1))
        gamma = torch.sqrt(2.0 * (s[i] ** 2 + s[j] ** 2))
        smeared = gamma > 0
        safe = torch.where(smeared, gamma, torch.ones_like(gamma))
        corr = torch.where(smeared, torch.erfc(r / safe), torch.zeros_like(r))
        f = (torch.erfc(a * r) - corr) / r
        dcorr = torch.where(smeared, -2.0 / (np.sqrt(np.pi) * safe) * torch.exp(-(r / safe) ** 2), torch.zeros_like(r))
        df = (-2.0 * a / np.sqrt(np.pi) * torch.exp(-(a * r) ** 2) - dcorr) / r - f / r
        M = torch.zeros((n, n), dtype=torch.float64).index_put_((i, j), COULOMB * f, accumulate=True)
        T = torch.zeros((3, n, n), dtype=torch.float64)
        for x in range(3):
            T[x].index_put_((j, i), COULOMB * df * d[:, x] / r, accumulate=True)
        k = setup.kvec.double()
        g = torch.exp(-(k * k).sum(dim=1) / (4 * a * a)) / (k * k).sum(dim=1)
        phase = R0 @ k.T
        c, sn = torch.cos(phase), torch.sin(phase)
        pref = 8 * np.pi * COULOMB / V
        M += pref * ((c * g) @ c.T + (sn * g) @ sn.T)
        for x in range(3):
            gk = g * k[:, x]
            T[x] += pref * ((c * gk) @ sn.T - (sn * gk) @ c.T)
        M -= torch.eye(n, dtype=torch.float64) * (2 * COULOMB * a / np.sqrt(np.pi))
        M -= COULOMB * np.pi / (V * a * a)
        s2 = s * s
        M += (2 * np.pi * COULOMB / V) * (s2[:, None] + s2[None, :])
        self.R0, self.M, self.T = R0, M, T
        self.setup = setup  # for terms that need the frame's Ewald geometry (periodic polarisation)

    def energy(self, R: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
        """Ewald energy (eV, 0-d) of charges q (n,) e at R (n, 3) Angstrom (must equal R0)."""
        R0 = self.R0.to(R.dtype)
        if not torch.equal(R.detach(), R0):
            raise ValueError("FrozenEwald: the positions differ from those it was built for")
        M, T = self.M.to(q.dtype), self.T.to(q.dtype)
        dEdR = q[:, None] * torch.einsum("xji,i->jx", T, q)
        return 0.5 * (q @ (M @ q)) + ((R - R0) * dEdR).sum()



def _unit_scaling_network(sf, hidden, activation, shift, scale, seed: int, shared: bool, floor: float) -> TorchBPNN:
    """Per-element networks NN(x) for a positive scaling factor softplus(NN) + floor (dispersion C6,
    polarisabilities), with the last bias b set so that softplus(b) + floor = 1: training starts
    from the reference values."""
    net = TorchBPNN(sf, hidden, activation, 1, shift, scale, np.zeros(len(sf.elements)), 1.0, seed=seed,
                    shared=shared)
    with torch.no_grad():
        b0 = float(np.log(np.expm1(1.0 - floor)))
        for n in net.members[0]:
            [lin for lin in n if isinstance(lin, nn.Linear)][-1].bias.fill_(b0)
    return net


class TorchPinn(nn.Module):
    """Short-range atomic networks plus Coulomb energy of network charges (module docstring).

    Args:
        sf: the descriptor (both networks read it). hidden, activation, shift, scale,
        reference_energies, energy_scale, shared: as :class:`TorchBPNN` (one member).
        charge_hidden, charge_scheme ("uniform" | "weighted"), weight_hidden, charge_reference
        (n_elements,) e, charge_scale (e): as :class:`TorchDipole` (one member, same scaling).
        sigma: (n_elements,) Gaussian widths, Angstrom (>= 0). accuracy: the Ewald accuracy
        written to the model file (the core's periodic sums). seed: initialisation.
        dispersion: add the dispersion term, with dispersion networks of ``dispersion_hidden``
        (initialised so that c_i is about 1), reference ``c6`` (eV*Angstrom^6) and damping radii
        ``r0`` (Angstrom) per element (default: :func:`~atomforge.models.pinn.dispersion_reference`)
        and the switch from ``r_on`` to ``r_cut`` (Angstrom).
        polarisation: add the polarisation term (molecules and periodic frames), with polarisability networks of
        ``polarisation_hidden`` (initialised so that alpha_i is about the reference), reference
        ``alpha`` (Angstrom^3) per element (default: :func:`~atomforge.models.pinn.polarisation_reference`)
        and the Thole damping ``thole``.

    Raises ValueError for a bad sigma or accuracy and what TorchBPNN / TorchDipole raise.
    """

    def __init__(self, sf: Descriptor, hidden=(64, 64), activation="tanh", shift=None, scale=None,
                 reference_energies=None, energy_scale=1.0, charge_hidden=(16, 16), charge_scheme="uniform",
                 weight_hidden=(16,), charge_reference=None, charge_scale=1.0, sigma=None, accuracy=1e-8, seed=0,
                 shared=False, dispersion=False, dispersion_hidden=(16,), c6=None, r0=None, r_on=8.0, r_cut=10.0,
                 polarisation=False, polarisation_hidden=(16,), alpha=None, thole=THOLE_AMOEBA):
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
        self.disp = None
        if dispersion:
            ref_c6, ref_r0 = (None, None) if c6 is not None and r0 is not None else dispersion_reference(sf.elements)
            c6 = ref_c6 if c6 is None else np.asarray(c6, dtype=float)
            r0 = ref_r0 if r0 is None else np.asarray(r0, dtype=float)
            if c6.shape != (ne,) or not np.all(np.isfinite(c6)) or np.any(c6 < 0):
                raise ValueError(f"c6 needs {ne} finite values >= 0 (eV*Angstrom^6), got {c6!r}")
            if r0.shape != (ne,) or not np.all(np.isfinite(r0)) or np.any(r0 <= 0):
                raise ValueError(f"r0 needs {ne} finite values > 0 (Angstrom), got {r0!r}")
            if not (0 <= float(r_on) < float(r_cut) <= 25.0):
                raise ValueError(f"the dispersion switch needs 0 <= r_on < r_cut <= 25 Angstrom, got {r_on!r}, {r_cut!r}")
            self.disp = _unit_scaling_network(sf, dispersion_hidden, activation, shift, scale, seed + 2, shared,
                                              DISPERSION_FLOOR)  # starts near the reference C6
            self.register_buffer("c6", torch.as_tensor(c6, dtype=torch.float64))
            self.register_buffer("r0", torch.as_tensor(r0, dtype=torch.float64))
            self.r_on, self.r_cut = float(r_on), float(r_cut)
        self.pol = None
        if polarisation:
            alpha = polarisation_reference(sf.elements) if alpha is None else np.asarray(alpha, dtype=float)
            if alpha.shape != (ne,) or not np.all(np.isfinite(alpha)) or np.any(alpha <= 0):
                raise ValueError(f"alpha needs {ne} finite values > 0 (Angstrom^3), got {alpha!r}")
            if not (0 < float(thole) <= MAX_THOLE):
                raise ValueError(f"thole must be in (0, {MAX_THOLE:g}], got {thole!r}")
            self.pol = _unit_scaling_network(sf, polarisation_hidden, activation, shift, scale, seed + 3, shared,
                                             POLARISATION_FLOOR)  # starts at the reference alpha
            self.register_buffer("alpha_ref", torch.as_tensor(alpha, dtype=torch.float64))
            self.thole = float(thole)

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
        forces). Periodic frames are listed in ``batch.ewald``: (frame, first atom, atom count,
        :class:`EwaldSetup` or :class:`FrozenEwald`) each; every other frame is a molecule (open
        boundaries)."""
        with torch.enable_grad():  # forces by autograd, also when called under no_grad (validation)
            return self._forward(batch, forces, create_graph)

    def _forward(self, batch, forces, create_graph):
        B = batch.n_frames
        periodic = list(getattr(batch, "ewald", None) or [])
        G = batch.G.detach().requires_grad_(forces)
        R = batch.positions.detach().to(G.dtype).requires_grad_(forces)
        Ea = self.short.atomic_energies(G, batch.species)
        q = self.charges(G, batch.species, batch.frame, B, batch.total_charge.to(G.dtype))
        pairs = getattr(batch, "pairs", None)
        if pairs is None:
            skip = np.zeros(B, dtype=bool)
            skip[[p[0] for p in periodic]] = True
            pairs = pair_indices(batch.n_atoms.long().numpy(), skip)
        sig = self.sigma.to(G.dtype)[batch.species]
        E = torch.zeros(B, dtype=Ea.dtype).index_add(0, batch.frame, Ea) + \
            coulomb_energy(R, q, sig, batch.frame, B, pairs).to(Ea.dtype)
        if periodic:
            e_per = torch.stack([st.energy(R[a:a + n], q[a:a + n]) if isinstance(st, FrozenEwald) else
                                 ewald_energy(R[a:a + n], q[a:a + n], sig[a:a + n], st) for _, a, n, st in periodic])
            E = E.index_add(0, torch.as_tensor([p[0] for p in periodic], dtype=torch.long), e_per.to(E.dtype))
        if self.disp is not None:
            E = E + self._dispersion(batch, G, R, pairs, periodic, B).to(E.dtype)
        mu = torch.zeros((B, 3), dtype=G.dtype).index_add(0, batch.frame, q[:, None] * R)
        if self.pol is not None:
            e_pol, mu_ind = self._polarisation(batch, G, R, q, periodic)
            E = E + e_pol.to(E.dtype)
            mu = mu + mu_ind
        if not forces:
            return E, None, q, mu
        dEdG, dEdR = torch.autograd.grad(E.sum(), (G, R), create_graph=create_graph)
        g = torch.einsum("ef,efk->ek", dEdG[batch.centre], batch.values)
        F = -torch.zeros((G.shape[0], 3), dtype=G.dtype).index_add(0, batch.atom, g) - dEdR
        return E, F, q, mu

    def polarisabilities(self, G, species) -> torch.Tensor:
        """alpha_i = alpha[k_i] (softplus(NN_a(x_i)) + 1e-3) (N,), Angstrom^3."""
        y = torch.nn.functional.softplus(self.pol.atomic_energies(G, species)) + POLARISATION_FLOOR
        return self.alpha_ref.to(G.dtype)[species] * y.to(G.dtype)

    def _polarisation(self, batch, G, R, q, periodic):
        """E_pol (B,) and the summed induced dipoles (B, 3) of the batch's frames (periodic frames:
        :func:`induced_dipoles_periodic` on their Ewald setup)."""
        B = batch.n_frames
        per = {f: (st.setup if isinstance(st, FrozenEwald) else st).dipole_setup() for f, _, _, st in periodic}
        alpha = self.polarisabilities(G, batch.species)
        n = [int(x) for x in batch.n_atoms]
        off = np.concatenate([[0], np.cumsum(n)]).astype(int)
        es, ms = [], []
        for b in range(B):
            a, e = off[b], off[b + 1]
            if b in per:
                E_b, mu_b = induced_dipoles_periodic(R[a:e], q[a:e], alpha[a:e], self.thole, per[b])
            else:
                E_b, mu_b, _, _ = induced_dipoles(R[a:e], q[a:e], alpha[a:e], self.thole)
            es.append(E_b)
            ms.append(mu_b.sum(0))
        return torch.stack(es), torch.stack(ms)

    def dispersion_scaling(self, G, species) -> torch.Tensor:
        """c_i = softplus(NN_c(x_i)) + 1e-3 (N,), the scaling of the reference C6."""
        return torch.nn.functional.softplus(self.disp.atomic_energies(G, species)) + DISPERSION_FLOOR

    def _dispersion(self, batch, G, R, pairs, periodic, B):
        setups = list(getattr(batch, "dispersion", None) or [])
        if sorted(p[0] for p in setups) != sorted(p[0] for p in periodic):
            raise ValueError("TorchPinn with dispersion: every periodic frame of the batch needs its DispersionSetup "
                             "in batch.dispersion (frame, first atom, atom count, setup)")
        c6 = self.c6.to(G.dtype)[batch.species] * self.dispersion_scaling(G, batch.species).to(G.dtype)
        r0 = self.r0.to(G.dtype)[batch.species]
        i, j = pairs
        ii, jj = [i], [j]
        ss = [torch.zeros((len(i), 3), dtype=G.dtype)]
        ww = [torch.ones(len(i), dtype=G.dtype)]
        for _, a, n, st in setups:
            ii.append(st.i + a)
            jj.append(st.j + a)
            ss.append(st.shift.to(G.dtype))
            ww.append(torch.full((len(st.i),), 0.5, dtype=G.dtype))
        return dispersion_energy(R, c6, r0, torch.cat(ii), torch.cat(jj), torch.cat(ss), torch.cat(ww), batch.frame,
                                 B, self.r_on, self.r_cut)

    def to_parameters(self, metadata=None) -> PinnParameters:
        """Export for the model file (float64), evaluated identically by the C++ core."""
        disp = None
        if self.disp is not None:
            disp = DispersionParameters(self.disp.to_parameters(), self.c6.double().numpy().copy(),
                                        self.r0.double().numpy().copy(), self.r_on, self.r_cut)
        pol = None
        if self.pol is not None:
            pol = PolarisationParameters(self.pol.to_parameters(), self.alpha_ref.double().numpy().copy(), self.thole)
        return PinnParameters(self.short.to_parameters(), self.charge.to_parameters(),
                              self.sigma.double().numpy().copy(), self.accuracy, dict(metadata or {}), disp, pol)


#: FrozenEwald of the periodic frames seen in this process, by content (positions, cell, widths,
#: accuracy): trainings on overlapping frames (e.g. nested training sets) build each only once.
_FROZEN_CACHE: dict = {}


def frozen_ewald(positions, cell, sigma, accuracy) -> FrozenEwald:
    """The :class:`FrozenEwald` of one periodic frame (cached per process by content)."""
    pos, cell, sigma = (np.ascontiguousarray(x, dtype=float) for x in (positions, cell, sigma))
    key = (pos.tobytes(), cell.tobytes(), sigma.tobytes(), float(accuracy))
    if key not in _FROZEN_CACHE:
        _FROZEN_CACHE[key] = FrozenEwald(pos, EwaldSetup(pos, cell, sigma, accuracy), sigma)
    return _FROZEN_CACHE[key]


class PinnTrainer(Trainer):
    """``model: pinn`` training (configuration: :mod:`atomforge.train.config`, section ``pinn``):
    the energy-model trainer's data handling, split, schedule, checkpoints and run folder, with a
    :class:`TorchPinn` model; loss = w_E mean((dE/N/s)^2) + w_F mean((dF/s)^2) + w_mu
    mean((dmu / 0.1 e*Angstrom)^2) (s: the energy scale; dipoles only when the data have them and
    ``pinn.dipole_weight`` > 0). Each frame's total charge comes from the data (0 when absent).
    Periodic frames use the PyTorch Ewald sum at the frame's fixed positions (:class:`FrozenEwald`,
    built once per frame and process: the same energies and forces as :func:`ewald_energy`).

    Raises ValueError for frames periodic along one or two directions, before training starts.
    """

    allow_dense_layout = False  # TorchPinn needs rows in frame order (positions) and the sparse Jacobian
    supports_compile = False  # its energy differentiates the networks twice (no compiled double backward)

    def _prepare(self):
        super()._prepare()
        for name, ds in (("training", self.train_ds), ("validation", self.valid_ds), ("test", self.test_ds)):
            mixed = [i for i in range(len(ds)) if np.asarray(ds.pbc[i]).any() and not np.asarray(ds.pbc[i]).all()]
            if mixed:
                raise ValueError(f"model: pinn: {len(mixed)} {name} frame(s) are periodic along one or two directions "
                                 f"only (first: {mixed[0]}); the electrostatics needs all three periodic (Ewald sum) "
                                 f"or none (molecules)")
        self._ewald = {}
        pc = self.cfg["pinn"]
        self.use_dipoles = pc["dipole_weight"] > 0 and self.train_ds.dipole is not None
        if pc["dipole_weight"] > 0 and self.train_ds.dipole is None:
            self.log("pinn.dipole_weight > 0 but the training data have no dipoles: trained on energies and forces")

    def _make_model(self):
        cfg, net, pc = self.cfg, self.cfg["network"], self.cfg["pinn"]
        ne = len(self.sf.elements)
        cr = pc.get("charge_reference") or {}
        unknown = sorted(set(cr) - set(self.sf.elements))
        if unknown:
            from .config import ConfigError
            raise ConfigError(f"configuration key 'pinn.charge_reference': element(s) {', '.join(unknown)} are not "
                              f"among the model's elements {list(self.sf.elements)}")
        return TorchPinn(self.sf, net["hidden"], net["activation"], self.stats["shift"], self.stats["scale"],
                         self.stats["reference"], self.stats["energy_scale"], charge_hidden=pc["charge_hidden"],
                         charge_scheme=pc["charge_scheme"], weight_hidden=pc["weight_hidden"],
                         charge_reference=np.array([float(cr.get(e, 0.0)) for e in self.sf.elements]), charge_scale=pc["charge_scale"],
                         sigma=np.full(ne, float(pc["sigma"])), accuracy=pc["accuracy"], seed=cfg["seed"],
                         shared=net["shared"], dispersion=pc["dispersion"], dispersion_hidden=pc["dispersion_hidden"],
                         r_on=pc["dispersion_r_on"], r_cut=pc["dispersion_r_cut"], polarisation=pc["polarisation"],
                         polarisation_hidden=pc["polarisation_hidden"], thole=pc["thole"])

    def _batch(self, ds, feats, idx, with_forces):
        b = super()._batch(ds, feats, idx, with_forces)
        idx = np.asarray(idx, dtype=np.int64)
        b.positions = torch.as_tensor(np.concatenate([ds.positions[i] for i in idx]), dtype=self.dtype)
        Q = np.zeros(len(idx)) if ds.total_charge is None else np.asarray(ds.total_charge, dtype=float)[idx]
        b.total_charge = torch.as_tensor(Q, dtype=self.dtype)
        b.dipole = None if ds.dipole is None else torch.as_tensor(np.asarray(ds.dipole)[idx], dtype=self.dtype)
        n = [len(ds.positions[i]) for i in idx]
        per = np.array([bool(np.asarray(ds.pbc[i]).all()) for i in idx])
        b.pairs = pair_indices(n, per)
        start = np.concatenate([[0], np.cumsum(n)])
        b.ewald = []
        pc = self.cfg["pinn"]
        for f in np.flatnonzero(per):
            key = (id(ds), int(idx[f]))
            if key not in self._ewald:  # the frame's Ewald sum at its fixed positions, once
                self._ewald[key] = frozen_ewald(ds.positions[idx[f]], ds.cells[idx[f]],
                                                np.full(n[f], float(pc["sigma"])), pc["accuracy"])
            b.ewald.append((int(f), int(start[f]), int(n[f]), self._ewald[key]))
        if pc["dispersion"]:
            b.dispersion = []
            for f in np.flatnonzero(per):
                key = ("dispersion", id(ds), int(idx[f]))
                if key not in self._ewald:  # the frame's dispersion image pairs, once
                    self._ewald[key] = DispersionSetup(ds.positions[idx[f]], ds.cells[idx[f]], pc["dispersion_r_cut"])
                b.dispersion.append((int(f), int(start[f]), int(n[f]), self._ewald[key]))
        return b

    def _loss(self, model, b, create_graph, frames=None):
        tr = self.cfg["training"]
        s = model.energy_scale
        E, F, _, mu = model(b, forces=self.has_forces, create_graph=create_graph)
        loss = tr["energy_weight"] * torch.mean(((E - b.energy) / b.n_atoms / s) ** 2)
        if self.has_forces:
            loss = loss + tr["forces_weight"] * torch.mean(((F - b.forces) / s) ** 2)
        if self.use_dipoles and b.dipole is not None:
            loss = loss + self.cfg["pinn"]["dipole_weight"] * torch.mean(((mu - b.dipole) / 0.1) ** 2)
        return loss, E, F
