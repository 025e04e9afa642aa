"""Small test structures (Angstrom) and a parameter set exercising every code path."""
import numpy as np
from ase.build import molecule


def random_positions(rng, n, cell, min_dist=0.9):
    """n random points inside `cell` (rows), at least min_dist apart (no periodic check needed
    for the reference; images are checked by the core's overlap test anyway)."""
    pts = []
    while len(pts) < n:
        p = rng.random(3) @ cell
        if all(np.linalg.norm(p - q) > min_dist for q in pts):
            pts.append(p)
    return np.array(pts)


def ethanol():
    a = molecule("CH3CH2OH")
    return a.positions.copy(), a.numbers.copy(), None, None


def small_periodic(seed=1):
    """Cubic 4.2 A cell, 6 atoms: r_c = 5 A is larger than the cell (many images per atom)."""
    rng = np.random.default_rng(seed)
    cell = np.eye(3) * 4.2
    pos = random_positions(rng, 6, cell, min_dist=1.2)
    return pos, np.array([8, 1, 1, 8, 1, 1]), cell, [True, True, True]


def skewed_triclinic(seed=2):
    """A strongly skewed triclinic cell (angles far from 90 degrees)."""
    rng = np.random.default_rng(seed)
    cell = np.array([[5.0, 0.0, 0.0], [4.2, 3.1, 0.0], [3.6, 2.4, 3.0]])
    pos = random_positions(rng, 8, cell, min_dist=1.1)
    return pos, np.array([8, 1, 1, 6, 8, 1, 1, 6]), cell, [True, True, True]


def slab(seed=3):
    """Periodic along a and b only."""
    rng = np.random.default_rng(seed)
    cell = np.array([[4.5, 0.0, 0.0], [1.0, 4.0, 0.0], [0.0, 0.0, 10.0]])
    pos = random_positions(rng, 6, cell, min_dist=1.1)
    return pos, np.array([8, 1, 1, 6, 1, 1]), cell, [True, True, False]


STRUCTURES = {"molecule": ethanol, "small_periodic": small_periodic,
              "skewed_triclinic": skewed_triclinic, "slab": slab}


def mixed_parameters(cutoff_function="cos"):
    """G2 with and without shifts, G4 and G5 with lambda +-1, G5s with two angle shifts, integer
    and non-integer zeta, two different cutoff radii, all element pairs of H, C, O."""
    els = ["H", "C", "O"]
    funcs = {}
    for c in els:
        fl = []
        for nb in els:
            fl.append({"type": "G2", "neighbors": [nb], "eta": 0.5, "r_s": 0.0, "r_c": 5.0})
            fl.append({"type": "G2", "neighbors": [nb], "eta": 2.0, "r_s": 1.4, "r_c": 4.0})
        for a, b in [("H", "H"), ("H", "O"), ("C", "O"), ("O", "O"), ("C", "H")]:
            fl.append({"type": "G4", "neighbors": [a, b], "eta": 0.05, "lambda": 1, "zeta": 2, "r_c": 5.0})
            fl.append({"type": "G4", "neighbors": [a, b], "eta": 0.2, "lambda": -1, "zeta": 1, "r_c": 4.0,
                       "r_s": 0.5})
            fl.append({"type": "G5", "neighbors": [a, b], "eta": 0.1, "lambda": -1, "zeta": 3.5, "r_c": 5.0})
            fl.append({"type": "G5", "neighbors": [b, a], "eta": 0.1, "lambda": 1, "zeta": 4, "r_c": 4.5,
                       "r_s": 0.3})
            fl.append({"type": "G5s", "neighbors": [a, b], "eta": 0.1, "theta_s": 1.9, "zeta": 8, "r_c": 5.0})
            fl.append({"type": "G5s", "neighbors": [b, a], "eta": 0.3, "theta_s": 0.4, "zeta": 3.5, "r_c": 4.5,
                       "r_s": 0.3})
        funcs[c] = fl
    # make the per-element counts differ (zero-padding path)
    funcs["C"] = funcs["C"][:-3]
    return {"elements": els, "cutoff_function": cutoff_function, "functions": funcs}


def n2p2_style_parameters(cutoff_function="tanhu"):
    """Angular functions as in n2p2 potentials: G4 with r_s = 0, lambda +-1, eta integer multiples
    of the smallest and one r_c per element pair. The core evaluates such pairs with one
    exponential per triplet (factorised pairs, acsf_kernels.hpp); the pair (C, C) mixes in a G5
    and the pair (C, O) a second r_c, so the shared-exponential and general paths run beside it."""
    els = ["H", "C", "O"]
    funcs = {}
    for c in els:
        fl = [{"type": "G2", "neighbors": [nb], "eta": eta, "r_s": 0.0, "r_c": 5.0}
              for nb in els for eta in (0.05, 0.4)]
        for a, b in [("H", "H"), ("H", "O"), ("O", "O"), ("C", "H"), ("C", "C"), ("C", "O")]:
            for eta, zeta in ((0.02, 1.0), (0.06, 4.0), (0.14, 1.0), (0.4, 16.0)):
                for lam in (1.0, -1.0):
                    fl.append({"type": "G4", "neighbors": [a, b], "eta": eta, "lambda": lam, "zeta": zeta,
                               "r_c": 4.5})
        fl.append({"type": "G5", "neighbors": ["C", "C"], "eta": 0.06, "lambda": 1.0, "zeta": 2.0, "r_c": 4.5})
        fl.append({"type": "G4", "neighbors": ["C", "O"], "eta": 0.02, "lambda": 1.0, "zeta": 2.0, "r_c": 4.0})
        funcs[c] = fl
    return {"elements": els, "cutoff_function": cutoff_function, "functions": funcs}
