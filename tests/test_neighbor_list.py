"""Cell-list neighbour search against brute force, including r_c > cell and skewed cells."""
import itertools

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from atomforge import _core


def brute_force_pairs(pos, cell, pbc, rc):
    """Multiset of (i, j, rounded distance) over all images, by enumeration."""
    ranges = []
    for d in range(3):
        if pbc[d]:
            a, b, c = cell[d], cell[(d + 1) % 3], cell[(d + 2) % 3]
            h = abs(np.dot(a, np.cross(b, c))) / np.linalg.norm(np.cross(b, c))
            n = int(np.ceil(rc / h)) + 1
            ranges.append(range(-n, n + 1))
        else:
            ranges.append(range(1))
    out = []
    for i in range(len(pos)):
        for j in range(len(pos)):
            for s in itertools.product(*ranges):
                r = np.linalg.norm(pos[j] + np.dot(s, cell) - pos[i])
                if 0 < r < rc:
                    out.append((i, j, round(r, 9)))
    return sorted(out)


def core_pairs(pos, cell, pbc, rc):
    nl = _core.build_neighbor_list(np.ascontiguousarray(pos, float), np.ascontiguousarray(cell, float),
                                   tuple(pbc), rc)
    P, owner, off, nb = nl.positions, nl.owner, nl.offsets, nl.neighbors
    out = []
    for i in range(nl.n_local):
        for q in range(off[i], off[i + 1]):
            j = nb[q]
            out.append((i, int(owner[j]), round(float(np.linalg.norm(P[j] - P[i])), 9)))
    # positions of images are the owner's wrapped position plus an integer lattice shift
    frac = np.linalg.solve(cell.T, (P - P[owner]).T).T if all(pbc) else None
    if frac is not None:
        np.testing.assert_allclose(frac, np.asarray(nl.shift, float), atol=1e-9)
    return sorted(out), nl


CASES = {
    "cubic r_c > cell": (np.eye(3) * 3.0, [True] * 3, 4.5),
    "skewed triclinic": (np.array([[4.0, 0, 0], [3.5, 2.0, 0], [3.0, 1.5, 1.8]]), [True] * 3, 3.7),
    "slab": (np.array([[3.0, 0, 0], [0.5, 3.2, 0], [0, 0, 9.0]]), [True, True, False], 4.0),
    "wire": (np.array([[2.5, 0, 0], [0, 8.0, 0], [0, 0, 8.0]]), [True, False, False], 3.0),
    "molecule": (np.zeros((3, 3)), [False] * 3, 3.0),
}


@pytest.mark.parametrize("name", list(CASES))
def test_matches_brute_force(name):
    cell, pbc, rc = CASES[name]
    rng = np.random.default_rng(len(name))
    box = cell if np.any(cell) else np.eye(3) * 5.0
    pos = rng.random((7, 3)) @ box + rng.normal(scale=0.01, size=(7, 3))
    got, nl = core_pairs(pos, cell, pbc, rc)
    want = brute_force_pairs(pos, cell, pbc, rc)
    assert len(want) > 10
    assert got == want


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 10_000), st.floats(0.4, 2.5), st.floats(-0.9, 0.9), st.floats(-0.9, 0.9))
def test_random_triclinic_cells(seed, rc_scale, s1, s2):
    rng = np.random.default_rng(seed)
    cell = np.array([[3.0, 0, 0], [3.0 * s1, 2.8, 0], [2.0 * s2, -1.4 * s1, 2.6]])
    pos = rng.random((5, 3)) @ cell
    rc = 2.5 * rc_scale
    got, _ = core_pairs(pos, cell, [True] * 3, rc)
    assert got == brute_force_pairs(pos, cell, [True] * 3, rc)


def test_memory_is_linear_in_atoms():
    """Images are only a shell around the cell: ghosts per atom fall as the box grows."""
    rng = np.random.default_rng(0)
    ratios = []
    for L in (10.0, 20.0):
        n = int(0.1 * L**3)
        pos = rng.random((n, 3)) * L
        nl = _core.build_neighbor_list(pos, np.eye(3) * L, (True, True, True), 3.0)
        ratios.append((nl.n_total / n, nl.n_pairs / n))
    assert ratios[1][0] < ratios[0][0]  # fewer ghosts per atom in the larger box
    assert abs(ratios[1][1] - ratios[0][1]) / ratios[0][1] < 0.1  # pairs per atom ~ constant


def test_sparse_molecule_does_not_allocate_huge_grids():
    pos = np.array([[0.0, 0, 0], [1.0, 0, 0], [1e6, 1e6, 1e6]])
    nl = _core.build_neighbor_list(pos, np.zeros((3, 3)), (False,) * 3, 2.0)
    assert nl.n_pairs == 2
