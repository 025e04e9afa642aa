"""Recovery of a molecule's permutational symmetries from training geometries (sGDML).

Chmiela et al., Nat. Commun. 9, 3887 (2018): the atoms of every pair of geometries are matched
(bipartite matching with ``scipy.optimize.linear_sum_assignment`` on descriptor-based adjacency
matrices, the inverse-distance matrices ``A_i[a, b] = 1/|r_a - r_b|``), the noisy pairwise matchings
are made consistent by permutation synchronisation (spectral relaxation of the multi-partite
matching: the leading N eigenvectors of the block matrix of all pairwise permutation matrices,
rounded back to permutations with another assignment), and the permutations so found are
completed to a group by transitive closure.

Extra safeguards (not in the paper): every permutation must preserve the covalent bond graph
(an automorphism of the molecule's graph), and closures larger than ``max_perms`` fall back to
the largest consistent subset, as sgdml does.
"""
from __future__ import annotations

from typing import Optional

import numpy as np
from scipy.optimize import linear_sum_assignment


def _adjacency(R: np.ndarray) -> np.ndarray:
    diff = R[:, :, None, :] - R[:, None, :, :]
    dist = np.linalg.norm(diff, axis=-1)
    n = R.shape[1]
    with np.errstate(divide="ignore"):
        A = 1.0 / dist
    A[:, np.arange(n), np.arange(n)] = 0.0
    return A


def _signatures(A: np.ndarray, z: np.ndarray) -> np.ndarray:
    """Per-atom fingerprint: sorted adjacency row entries, separately for every element."""
    parts = []
    for e in np.unique(z):
        cols = np.flatnonzero(z == e)
        parts.append(-np.sort(-A[:, :, cols], axis=2))
    return np.concatenate(parts, axis=2)


def _refine(Ai, Aj, pi, penalty, n_refine: int = 8):
    for _ in range(n_refine):
        Ajp = Aj[:, pi]  # Ajp[b, c] = Aj[b, pi[c]]
        cost = ((Ai[:, None, :] - Ajp[None, :, :]) ** 2).sum(-1) + penalty
        new = linear_sum_assignment(cost)[1]
        if np.array_equal(new, pi):
            break
        pi = new
    return pi


def _match(Ai, Aj, si, sj, penalty, anchors):
    """Best permutation pi with A_i ~ A_j[pi][:, pi] (atom a of geometry i <-> atom pi[a] of j).

    Assignment on per-atom fingerprints, refined by assignments on the adjacency rows; repeated
    with one anchor atom forced onto each of its same-element partners, so that all
    near-equivalent (symmetric) assignments compete and the better one wins."""
    base = ((si[:, None, :] - sj[None, :, :]) ** 2).sum(-1) + penalty
    best, best_score = None, np.inf
    a0, partners = anchors
    for b in [None] + list(partners):
        cost = base
        if b is not None:
            cost = base.copy()
            cost[a0, :] += 1e6
            cost[a0, b] -= 1e6
        pi = _refine(Ai, Aj, linear_sum_assignment(cost)[1], penalty)
        score = np.linalg.norm(Ai - Aj[pi][:, pi])
        if score < best_score - 1e-12:
            best, best_score = pi, score
    return best, best_score


def bond_graph(R: np.ndarray, z: np.ndarray, scale: float = 1.25) -> np.ndarray:
    """Covalent bonds present in more than half of the geometries R (m, N, 3)."""
    from ase.data import covalent_radii

    rc = covalent_radii[z]
    dist = np.linalg.norm(R[:, :, None] - R[:, None, :], axis=-1)
    bonded = (dist < scale * (rc[:, None] + rc[None, :])).mean(axis=0) > 0.5
    np.fill_diagonal(bonded, False)
    return bonded


def _is_automorphism(p, bonds) -> bool:
    return bool(np.array_equal(bonds[p][:, p], bonds))


def complete_group(perms: np.ndarray, max_perms: int = 100) -> Optional[np.ndarray]:
    """Transitive closure of a set of permutations; None if it exceeds ``max_perms``."""
    perms = [tuple(p) for p in np.atleast_2d(perms)]
    seen = set(perms)
    if tuple(range(len(perms[0]))) not in seen:
        perms.insert(0, tuple(range(len(perms[0]))))
        seen.add(perms[0])
    frontier = list(perms)
    while frontier:
        new = []
        for p in frontier:
            pa = np.asarray(p)
            for q in list(perms):
                for r in (tuple(pa[np.asarray(q)]), tuple(np.asarray(q)[pa])):
                    if r not in seen:
                        seen.add(r)
                        perms.append(r)
                        new.append(r)
                        if len(perms) > max_perms:
                            return None
        frontier = new
    return np.asarray(perms, dtype=np.int64)


def _cycles(p):
    seen, out = set(), []
    for s in range(len(p)):
        if s in seen:
            continue
        c, k = [], s
        while k not in seen:
            seen.add(k)
            c.append(k)
            k = p[k]
        if len(c) > 1:
            out.append(c)
    return out


def _salvage(perms: np.ndarray) -> np.ndarray:
    """As sgdml's salvage_subgroup: drop permutations whose cycles overlap longer cycles."""
    all_cycles = [c for p in perms for c in _cycles(p)]
    keep = []
    for p in perms:
        bad = any(len(c) < len(o) and not set(c).isdisjoint(o) for c in _cycles(p) for o in all_cycles)
        if not bad:
            keep.append(p)
    return np.asarray(keep, dtype=np.int64).reshape(-1, perms.shape[1])


def find_perms(R, z, n_geometries: int = 40, seed: int = 0, max_perms: int = 100,
               check_bonds: bool = True, return_info: bool = False):
    """Permutations (S, N) (identity first) of the molecule sampled by geometries R (m, N, 3).

    Each row p is an atom relabelling under which the potential-energy surface is invariant:
    E(r[p]) = E(r), i.e. the convention of sgdml's ``perms``. Uses at most ``n_geometries``
    geometries (a seeded random subset). With ``return_info`` also returns a dict with the
    pairwise matchings, the synchronised permutations and the bond graph.
    """
    R = np.asarray(R, dtype=float)
    z = np.asarray(z).astype(np.int64).ravel()
    if R.ndim != 3 or R.shape[1:] != (len(z), 3):
        raise ValueError(f"R must be (m, {len(z)}, 3), got {R.shape}")
    m_all, n = R.shape[:2]
    if m_all > n_geometries:
        R = R[np.sort(np.random.default_rng(seed).choice(m_all, n_geometries, replace=False))]
    m = len(R)
    ident = np.arange(n)
    A = _adjacency(R)
    sig = _signatures(A, z)
    penalty = np.where(z[:, None] != z[None, :], 1e6, 0.0)
    # anchor: an atom of the smallest element class with more than one member
    classes = [np.flatnonzero(z == e) for e in np.unique(z)]
    multi = [c for c in classes if len(c) > 1]
    anchors = (min(multi, key=len)[0], min(multi, key=len)) if multi else (0, [])
    # pairwise matching
    W = np.zeros((m * n, m * n))
    pair_perms = {}
    for i in range(m):
        W[i * n:(i + 1) * n, i * n:(i + 1) * n] = np.eye(n)
        for j in range(i + 1, m):
            pi, score = _match(A[i], A[j], sig[i], sig[j], penalty, anchors)
            if score >= np.linalg.norm(A[i] - A[j]) - 1e-12:
                pi = ident
            pair_perms[i, j] = pi
            P = np.zeros((n, n))
            P[ident, pi] = 1.0
            W[i * n:(i + 1) * n, j * n:(j + 1) * n] = P
            W[j * n:(j + 1) * n, i * n:(i + 1) * n] = P.T
    # synchronisation: leading n eigenvectors, rounded to permutations relative to geometry 0
    if m > 1:
        w, U = np.linalg.eigh(W)
        U = U[:, -n:]
        sync = []
        for i in range(m):
            sim = U[i * n:(i + 1) * n] @ U[:n].T
            sync.append(linear_sum_assignment(-sim + penalty)[1])
        sync = np.asarray(sync)
    else:
        sync = ident[None]
    cand = np.unique(np.concatenate([sync, np.asarray(list(pair_perms.values())).reshape(-1, n)]), axis=0)
    bonds = bond_graph(R, z)
    if check_bonds:
        cand = np.asarray([p for p in cand if _is_automorphism(p, bonds)] or [ident])
    group = complete_group(cand, max_perms)
    if group is None:
        group = complete_group(_salvage(cand), max_perms)
    if group is None:
        group = ident[None]
    # identity first, the rest sorted
    rest = sorted(tuple(p) for p in group if not np.array_equal(p, ident))
    out = np.asarray([tuple(ident)] + rest, dtype=np.int64)
    if return_info:
        return out, {"pairwise": pair_perms, "synchronised": sync, "bonds": bonds, "candidates": cand}
    return out
