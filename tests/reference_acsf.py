"""Slow, obviously correct NumPy reference for Behler-Parrinello symmetry functions.

Written directly from the formulas of J. Behler, J. Chem. Phys. 134, 074106 (2011), Eqs. 4, 6,
8, 9 (with each unordered neighbour pair counted once and an optional shift r_s, as in n2p2), and
the cutoff functions listed in atomforge's docs; G5s (G5 with the angular factor of ANI's modified
angular function, Smith et al., Chem. Sci. 8, 3192 (2017), Eq. 4, with TorchANI's 0.95 on cos) as
(1 + cos(arccos(0.95 cos theta) - theta_s))^zeta, written with arccos and cos. Periodic images are enumerated by brute force.
No neighbour lists, no caching, no vectorisation tricks: loops over atoms, images and pairs.
"""
import itertools
import math

import numpy as np


def cutoff(kind, r, rc):
    if r >= rc:
        return 0.0
    x = r / rc
    if kind == "cos":
        return 0.5 * (math.cos(math.pi * x) + 1.0)
    if kind == "tanhu":
        return math.tanh(1.0 - x) ** 3
    if kind == "tanh":
        return math.tanh(1.0 - x) ** 3 / math.tanh(1.0) ** 3
    if kind == "poly1":
        return 2 * x**3 - 3 * x**2 + 1
    if kind == "poly2":
        return -6 * x**5 + 15 * x**4 - 10 * x**3 + 1
    if kind == "poly3":
        return 20 * x**7 - 70 * x**6 + 84 * x**5 - 35 * x**4 + 1
    if kind == "poly4":
        return -70 * x**9 + 315 * x**8 - 540 * x**7 + 420 * x**6 - 126 * x**5 + 1
    raise ValueError(kind)


def neighbours(positions, cell, pbc, i, rc):
    """All (j, vector r_j + shift - r_i) with 0 < |.| < rc, images by brute-force enumeration."""
    ranges = []
    for d in range(3):
        if pbc[d]:
            a, b, c = cell[d], cell[(d + 1) % 3], cell[(d + 2) % 3]
            h = abs(np.dot(a, np.cross(b, c))) / np.linalg.norm(np.cross(b, c))
            n = int(math.ceil(rc / h)) + 1
            ranges.append(range(-n, n + 1))
        else:
            ranges.append(range(0, 1))
    out = []
    for j in range(len(positions)):
        for s in itertools.product(*ranges):
            v = positions[j] + np.dot(s, cell) - positions[i]
            r = np.linalg.norm(v)
            if 0 < r < rc:
                out.append((j, v))
    return out


def symmetry_functions(positions, numbers, cell, pbc, params, centres=None):
    """G (N, F) for the parameter dict form of atomforge.SymmetryFunctions.to_dict(); with
    `centres` (atom indices) only those rows are computed (the others stay zero)."""
    from ase.data import chemical_symbols

    positions = np.asarray(positions, float)
    cell = np.zeros((3, 3)) if cell is None else np.asarray(cell, float)
    pbc = [False] * 3 if pbc is None else list(np.broadcast_to(pbc, 3))
    kind = params["cutoff_function"]
    funcs = params["functions"]
    nf = max(len(v) for v in funcs.values())
    rc_max = max(f["r_c"] for v in funcs.values() for f in v)
    sym = [chemical_symbols[z] for z in numbers]
    G = np.zeros((len(positions), nf))
    for i in range(len(positions)) if centres is None else centres:
        nb = neighbours(positions, cell, pbc, i, rc_max)
        for k, f in enumerate(funcs.get(sym[i], [])):
            rc, eta, rs = f["r_c"], f["eta"], f.get("r_s", 0.0)
            total = 0.0
            if f["type"] == "G2":
                for j, v in nb:
                    if sym[j] == f["neighbors"][0]:
                        r = np.linalg.norm(v)
                        total += math.exp(-eta * (r - rs) ** 2) * cutoff(kind, r, rc)
            else:
                lam, zeta = f.get("lambda", 1.0), f["zeta"]
                e1, e2 = f["neighbors"]
                for a in range(len(nb)):
                    for b in range(a + 1, len(nb)):
                        (j, vj), (m, vk) = nb[a], nb[b]
                        if not ((sym[j] == e1 and sym[m] == e2) or (sym[j] == e2 and sym[m] == e1)):
                            continue
                        rij, rik = np.linalg.norm(vj), np.linalg.norm(vk)
                        rjk = np.linalg.norm(vk - vj)
                        cos = np.dot(vj, vk) / (rij * rik)
                        if f["type"] == "G5s":
                            base = 1.0 + math.cos(math.acos(0.95 * cos) - f["theta_s"])
                        else:
                            base = 1.0 + lam * cos
                        if base <= 0:
                            continue
                        ang = 2.0 ** (1 - zeta) * base**zeta
                        if f["type"] == "G4":
                            term = ang * math.exp(-eta * ((rij - rs) ** 2 + (rik - rs) ** 2 + (rjk - rs) ** 2))
                            term *= cutoff(kind, rij, rc) * cutoff(kind, rik, rc) * cutoff(kind, rjk, rc)
                        else:
                            term = ang * math.exp(-eta * ((rij - rs) ** 2 + (rik - rs) ** 2))
                            term *= cutoff(kind, rij, rc) * cutoff(kind, rik, rc)
                        total += term
            G[i, k] = total
    return G
