"""Slow, obviously correct NumPy reference for Gaussian multipole (GMP) descriptors.

Written from the formulas of X. Lei and A. J. Medford, "A universal framework for featurization
of atomic configurations", J. Phys. Chem. Lett. 13, 7911 (2022), arXiv:2102.02390, with the
normalisation conventions of the public reference implementation GMP-featurizer (documented in
benchmarks/gmp_reference/README.md), so that with cutoff_function=None and a large r_c the
features agree with GMP-featurizer's (tests/reference/gmp_featurizer_reference.npz).

Definitions (lengths in Angstrom):

* Atomic pseudo-density of element Z: rho_Z(r) = sum_k c_k exp(-beta_k |r|^2).
* Environment density seen from atom i: rho_env(r) = sum over atoms j and periodic images with
  |r_j + shift - r_i| < r_c of fc(|r_j + shift - r_i|) rho_Zj(r - r_j - shift), plus atom i's
  own density (shift 0, never cut, fc = 1). Images of atom i itself count as neighbours.
* Probe of order n and width sigma, centred on atom i:
      g_{n,sigma,(nx,ny,nz)}(r) = A(sigma) exp(-alpha(sigma) |r|^2) S_(nx,ny,nz)(r),
      A = (sigma sqrt(2 pi))^-3  (the radial part is a normalised 3-D Gaussian of std. dev.
      sigma), alpha = 1 / (2 sigma^2);
  S_(nx,ny,nz) is the Maxwell-Cartesian spherical harmonic (MCSH) of order n = nx+ny+nz,
      S_(nx,ny,nz)(r) = (-1)^n |r|^(2n+1) d^nx/dx^nx d^ny/dy^ny d^nz/dz^nz (1/|r|),
  a harmonic homogeneous polynomial (written out below for n = 0..4, without any further
  normalisation: e.g. S_(2,0,0) = 2x^2 - y^2 - z^2, S_(1,1,0) = 3xy).
* mu_{n,sigma,(nx,ny,nz)}(i) = integral g_{n,sigma,(nx,ny,nz)}(r - r_i) rho_env(r) d^3r.
  For one Gaussian c exp(-beta |r - d|^2) of a neighbour at displacement d = r_j + shift - r_i
  the integral is closed-form: with gamma = alpha + beta and lambda = beta / gamma,
      A c (pi/gamma)^(3/2) exp(-alpha beta |d|^2 / gamma) S(lambda d),
  because the Gaussian-weighted average of a harmonic polynomial over a sphere-symmetric
  Gaussian equals its value at the centre (mean-value property). mu_by_quadrature below checks
  this independently on a Cartesian grid.
* Rotation invariant: Q_{n,sigma}(i) = sum over all (nx,ny,nz) with nx+ny+nz = n of
  n! / (nx! ny! nz!) mu_{n,sigma,(nx,ny,nz)}(i)^2; feature = sqrt(Q) (square=True: Q).

Columns are ordered [(n, s) for n in orders for s in sigmas] (order-major, sigma-minor), the
same order GMP-featurizer uses when orders and sigmas are given sorted.

Density channels (atomforge's option; not in the paper): with channels = [[Z, ...], ...], the
features above are computed once per channel from the partial density of the channel's elements
only (neighbours and the centre's own density counted when their element is in the channel),
columns [(h, n, s) for h in channels for n in orders for s in sigmas].

Cutoff functions fc(r), x = r / r_c, fc = 0 for r >= r_c, same list as atomforge's
cpp/src/common/cutoff.hpp: None (fc = 1 for r < r_c), 'cos', 'tanhu', 'tanh', 'poly1'..'poly4'.

No neighbour lists, no caching: images are enumerated by brute force for every centre atom and
the only vectorisation is over the neighbours of one element for one density Gaussian.
"""
from __future__ import annotations

import itertools
import math

import numpy as np

MAX_ORDER = 4


# ----------------------------------------------------------------------------- MCSH polynomials
def mcsh_components(n, x, y, z):
    """[(weight n!/(nx! ny! nz!), (nx, ny, nz), S_(nx,ny,nz)(x, y, z)), ...] for order n.

    x, y, z are arrays of equal shape; every Cartesian component of order n is listed once.
    """
    x = np.asarray(x, float)
    y = np.asarray(y, float)
    z = np.asarray(z, float)
    x2, y2, z2 = x * x, y * y, z * z
    if n == 0:
        return [(1, (0, 0, 0), np.ones_like(x))]
    if n == 1:
        return [(1, (1, 0, 0), x.copy()),
                (1, (0, 1, 0), y.copy()),
                (1, (0, 0, 1), z.copy())]
    if n == 2:
        return [(1, (2, 0, 0), 2 * x2 - y2 - z2),
                (1, (0, 2, 0), 2 * y2 - x2 - z2),
                (1, (0, 0, 2), 2 * z2 - x2 - y2),
                (2, (1, 1, 0), 3 * x * y),
                (2, (1, 0, 1), 3 * x * z),
                (2, (0, 1, 1), 3 * y * z)]
    if n == 3:
        return [(1, (3, 0, 0), 6 * x2 * x - 9 * x * y2 - 9 * x * z2),
                (1, (0, 3, 0), 6 * y2 * y - 9 * y * x2 - 9 * y * z2),
                (1, (0, 0, 3), 6 * z2 * z - 9 * z * x2 - 9 * z * y2),
                (3, (2, 1, 0), 12 * x2 * y - 3 * y2 * y - 3 * y * z2),
                (3, (2, 0, 1), 12 * x2 * z - 3 * z2 * z - 3 * z * y2),
                (3, (1, 2, 0), 12 * y2 * x - 3 * x2 * x - 3 * x * z2),
                (3, (0, 2, 1), 12 * y2 * z - 3 * z2 * z - 3 * z * x2),
                (3, (1, 0, 2), 12 * z2 * x - 3 * x2 * x - 3 * x * y2),
                (3, (0, 1, 2), 12 * z2 * y - 3 * y2 * y - 3 * y * x2),
                (6, (1, 1, 1), 15 * x * y * z)]
    if n == 4:
        x4, y4, z4 = x2 * x2, y2 * y2, z2 * z2
        return [(1, (4, 0, 0), 24 * x4 - 72 * x2 * y2 - 72 * x2 * z2 + 9 * y4 + 18 * y2 * z2 + 9 * z4),
                (1, (0, 4, 0), 24 * y4 - 72 * y2 * x2 - 72 * y2 * z2 + 9 * x4 + 18 * x2 * z2 + 9 * z4),
                (1, (0, 0, 4), 24 * z4 - 72 * z2 * x2 - 72 * z2 * y2 + 9 * x4 + 18 * x2 * y2 + 9 * y4),
                (4, (3, 1, 0), 60 * x2 * x * y - 45 * x * y2 * y - 45 * x * y * z2),
                (4, (3, 0, 1), 60 * x2 * x * z - 45 * x * z2 * z - 45 * x * z * y2),
                (4, (1, 3, 0), 60 * y2 * y * x - 45 * y * x2 * x - 45 * y * x * z2),
                (4, (0, 3, 1), 60 * y2 * y * z - 45 * y * z2 * z - 45 * y * z * x2),
                (4, (1, 0, 3), 60 * z2 * z * x - 45 * z * x2 * x - 45 * z * x * y2),
                (4, (0, 1, 3), 60 * z2 * z * y - 45 * z * y2 * y - 45 * z * y * x2),
                (6, (2, 2, 0), 81 * x2 * y2 - 12 * x4 - 12 * y4 + 3 * z4 - 9 * z2 * x2 - 9 * z2 * y2),
                (6, (2, 0, 2), 81 * x2 * z2 - 12 * x4 - 12 * z4 + 3 * y4 - 9 * y2 * x2 - 9 * y2 * z2),
                (6, (0, 2, 2), 81 * y2 * z2 - 12 * y4 - 12 * z4 + 3 * x4 - 9 * x2 * y2 - 9 * x2 * z2),
                (12, (2, 1, 1), 90 * x2 * y * z - 15 * y2 * y * z - 15 * y * z2 * z),
                (12, (1, 2, 1), 90 * y2 * x * z - 15 * x2 * x * z - 15 * x * z2 * z),
                (12, (1, 1, 2), 90 * z2 * x * y - 15 * x2 * x * y - 15 * x * y2 * y)]
    raise ValueError(f"MCSH order {n} not implemented (0..{MAX_ORDER})")


# ----------------------------------------------------------------------------- cutoff functions
def cutoff(kind, r, rc):
    """fc(r) for an array r; fc = 0 for r >= rc."""
    r = np.asarray(r, float)
    x = r / rc
    if kind is None:
        f = np.ones_like(x)
    elif kind == "cos":
        f = 0.5 * (np.cos(np.pi * x) + 1.0)
    elif kind == "tanhu":
        f = np.tanh(1.0 - x) ** 3
    elif kind == "tanh":
        f = np.tanh(1.0 - x) ** 3 / np.tanh(1.0) ** 3
    elif kind == "poly1":
        f = 2 * x**3 - 3 * x**2 + 1
    elif kind == "poly2":
        f = -6 * x**5 + 15 * x**4 - 10 * x**3 + 1
    elif kind == "poly3":
        f = 20 * x**7 - 70 * x**6 + 84 * x**5 - 35 * x**4 + 1
    elif kind == "poly4":
        f = -70 * x**9 + 315 * x**8 - 540 * x**7 + 420 * x**6 - 126 * x**5 + 1
    else:
        raise ValueError(kind)
    return np.where(r < rc, f, 0.0)


# ----------------------------------------------------------------------------- neighbours
def image_shifts(cell, pbc, rc):
    """Integer shift vectors (s0, s1, s2) enough to reach every image within rc."""
    ranges = []
    for d in range(3):
        if pbc[d]:
            a, b, c = cell[d], cell[(d + 1) % 3], cell[(d + 2) % 3]
            h = abs(np.dot(a, np.cross(b, c))) / np.linalg.norm(np.cross(b, c))
            n = int(math.ceil(rc / h)) + 1
            ranges.append(range(-n, n + 1))
        else:
            ranges.append(range(0, 1))
    return np.array(list(itertools.product(*ranges)), dtype=float)


def environment(positions, cell, pbc, i, rc):
    """(j indices, displacements d = r_j + shift - r_i (M, 3), is_centre flags) with |d| < rc.

    Positions are wrapped into the cell along periodic directions first, so that the brute-force
    image range of image_shifts suffices whatever the input coordinates.
    """
    pos = np.array(positions, float)
    if cell is not None and any(pbc):
        frac = np.linalg.solve(np.asarray(cell, float).T, pos.T).T
        for d in range(3):
            if pbc[d]:
                frac[:, d] -= np.floor(frac[:, d])
        pos = frac @ np.asarray(cell, float)
        shifts = image_shifts(np.asarray(cell, float), pbc, rc) @ np.asarray(cell, float)
    else:
        shifts = np.zeros((1, 3))
    js, ds, centre = [], [], []
    for j in range(len(pos)):
        d = pos[j][None, :] + shifts - pos[i][None, :]
        r = np.linalg.norm(d, axis=1)
        is_self = (j == i) & np.all(np.abs(shifts) < 1e-12, axis=1)  # atom i itself, no shift
        keep = (r < rc) | is_self
        js += [j] * int(keep.sum())
        ds.append(d[keep])
        centre += list(is_self[keep])
    return np.array(js, int), np.concatenate(ds), np.array(centre, bool)


# ----------------------------------------------------------------------------- features
def probe_constants(sigma):
    """(A, alpha) of the radial probe A exp(-alpha r^2): normalised Gaussian of std. dev. sigma."""
    return (1.0 / (sigma * math.sqrt(2.0 * math.pi))) ** 3, 1.0 / (2.0 * sigma * sigma)


def gmp_moments(d, weights, numbers, densities, order, sigma):
    """{(nx,ny,nz): mu} of order n at width sigma, summed over the density Gaussians of all
    neighbours at displacements d (M, 3) with atomic numbers numbers (M,) and weights fc (M,)."""
    A, alpha = probe_constants(sigma)
    mu = {}
    r2 = np.einsum("ij,ij->i", d, d)
    for Z in np.unique(numbers):
        sel = numbers == Z
        for c, beta in densities[int(Z)]:
            gamma = alpha + beta
            lam = beta / gamma
            pref = weights[sel] * A * c * (math.pi / gamma) ** 1.5 * np.exp(-alpha * beta / gamma * r2[sel])
            ds = lam * d[sel]
            for _, comp, s in mcsh_components(order, ds[:, 0], ds[:, 1], ds[:, 2]):
                mu[comp] = mu.get(comp, 0.0) + float(np.sum(pref * s))
    return mu


def gmp_reference(positions, numbers, cell, pbc, orders, sigmas, r_c, densities,
                  cutoff_function=None, square=False, channels=None):
    """GMP features (N, len(channels) * len(orders) * len(sigmas)), columns
    [(h, n, s) for h in channels for n in orders for s in sigmas]; channels None: one channel of
    every element.

    positions (N, 3) Angstrom; numbers (N,) atomic numbers; cell (3, 3) rows or None; pbc 3 bools;
    densities {Z: [(c, alpha), ...]} with c in e/Angstrom^3 and alpha in 1/Angstrom^2.
    """
    positions = np.asarray(positions, float)
    numbers = np.asarray(numbers, int)
    pbc = [bool(p) for p in (pbc if pbc is not None else (False, False, False))]
    if cell is None:
        if any(pbc):
            raise ValueError("periodic system needs a cell")
    else:
        cell = np.asarray(cell, float)
    for n in orders:
        if not 0 <= n <= MAX_ORDER:
            raise ValueError(f"order {n} outside 0..{MAX_ORDER}")
    if channels is None:
        channels = [sorted(set(numbers.tolist()))]
    out = np.zeros((len(positions), len(channels) * len(orders) * len(sigmas)))
    for i in range(len(positions)):
        js, d, is_centre = environment(positions, cell, pbc, i, r_c)
        r = np.linalg.norm(d, axis=1)
        fc = np.where(is_centre, 1.0, cutoff(cutoff_function, r, r_c))
        col = 0
        for channel in channels:
            keep = np.isin(numbers[js], channel)
            for n in orders:
                for s in sigmas:
                    mu = gmp_moments(d[keep], fc[keep], numbers[js][keep], densities, n, s)
                    weight = {comp: w for w, comp, _ in mcsh_components(n, 0.0, 0.0, 0.0)}
                    q = sum(weight[comp] * v * v for comp, v in mu.items())
                    out[i, col] = q if square else math.sqrt(q)
                    col += 1
    return out


# ----------------------------------------------------------------------------- independent check
def mu_by_quadrature(order, sigma, c, beta, d, h=0.02, half_width=None):
    """{(nx,ny,nz): mu} for ONE Gaussian c exp(-beta |r - d|^2) by brute-force summation of
    probe x density on a uniform Cartesian grid (spacing h, box centred between 0 and d).

    Independent of the closed form used above (no mean-value property, no lambda scaling):
    for testing only, it is slow and memory-hungry (~(2 half_width / h)^3 points).
    """
    A, alpha = probe_constants(sigma)
    d = np.asarray(d, float)
    if half_width is None:
        half_width = 7.0 / math.sqrt(2.0 * min(alpha, beta)) + 0.5 * np.linalg.norm(d)
    centre = 0.5 * d
    g = np.arange(-half_width, half_width + h / 2, h)
    mu = {}
    for ix in range(len(g)):  # slab by slab to bound memory
        X = centre[0] + g[ix]
        Y, Z = np.meshgrid(centre[1] + g, centre[2] + g, indexing="ij")
        r2 = X * X + Y * Y + Z * Z
        dens = c * np.exp(-beta * ((X - d[0]) ** 2 + (Y - d[1]) ** 2 + (Z - d[2]) ** 2))
        probe_radial = A * np.exp(-alpha * r2)
        for _, comp, s in mcsh_components(order, np.full_like(Y, X), Y, Z):
            mu[comp] = mu.get(comp, 0.0) + float(np.sum(probe_radial * s * dens)) * h**3
    return mu
