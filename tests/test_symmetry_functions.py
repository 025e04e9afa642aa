"""Behler-Parrinello symmetry functions: reference agreement, derivatives, invariances."""
import numpy as np
import pytest

import atomforge
from atomforge import SymmetryFunctions

from reference_acsf import symmetry_functions as reference_G
from structures import STRUCTURES, mixed_parameters as make_params, n2p2_style_parameters

CUTOFFS = ["cos", "tanhu", "tanh", "poly1", "poly2", "poly3", "poly4"]


@pytest.fixture(scope="module")
def sf():
    return SymmetryFunctions.from_dict(make_params("cos"))


def energy(sf, w, pos, num, cell, pbc):
    return float(np.sum(w * sf.compute(pos, num, cell, pbc)))


def check_reference_jacobian_fd(sf, pos, num, cell, pbc, seed):
    """Values against the NumPy reference (1e-12); the VJP with random weights against the
    Jacobian path (every group separately, 1e-12) and against finite differences."""
    G = sf.compute(pos, num, cell, pbc)
    ref = reference_G(pos, num, cell, pbc, sf.to_dict())
    assert np.abs(ref).max() > 0.1
    np.testing.assert_allclose(G, ref, rtol=1e-12, atol=1e-12)
    w = np.random.default_rng(seed).normal(size=(len(pos), sf.n_features))
    r = sf.vjp(w, pos, num, cell, pbc)
    F, W = sf.jacobian(pos, num, cell, pbc).forces_and_virial(w)
    np.testing.assert_allclose(r.forces, F, rtol=1e-12, atol=1e-12 * np.abs(F).max())
    np.testing.assert_allclose(r.virial, W, rtol=1e-12, atol=1e-12 * np.abs(W).max())
    Ffd = fd_forces(sf, w, pos, num, cell, pbc)
    assert np.abs(Ffd).max() > 0.1
    np.testing.assert_allclose(r.forces, Ffd, rtol=1e-6, atol=1e-7 * np.abs(Ffd).max())


# ----------------------------------------------------------------------------- reference


@pytest.mark.parametrize("name", list(STRUCTURES))
def test_matches_numpy_reference(name, sf):
    pos, num, cell, pbc = STRUCTURES[name]()
    G = sf.compute(pos, num, cell, pbc)
    ref = reference_G(pos, num, cell, pbc, sf.to_dict())
    assert G.shape == ref.shape
    assert np.abs(ref).max() > 0.1  # the comparison is not vacuous
    np.testing.assert_allclose(G, ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kind", CUTOFFS)
def test_every_cutoff_function_matches_reference(kind):
    sf = SymmetryFunctions.from_dict(make_params(kind))
    pos, num, cell, pbc = STRUCTURES["small_periodic"]()
    np.testing.assert_allclose(sf.compute(pos, num, cell, pbc),
                               reference_G(pos, num, cell, pbc, sf.to_dict()), rtol=1e-12, atol=1e-12)


def test_zero_padding_of_shorter_elements(sf):
    pos, num, cell, pbc = STRUCTURES["skewed_triclinic"]()
    G = sf.compute(pos, num, cell, pbc)
    n_c = sf.n_features_per_element["C"]
    assert n_c < sf.n_features
    assert np.all(G[num == 6, n_c:] == 0.0)
    assert np.all(np.abs(G[num == 6, :n_c]).sum(axis=0) > 0)


@pytest.mark.parametrize("name", list(STRUCTURES))
def test_n2p2_style_set_matches_reference_jacobian_and_finite_differences(name):
    """Factorised pairs (one exponential per triplet, closed-form sums over the groups in the
    gradient) against the NumPy reference, against the Jacobian (which evaluates every group
    separately) and against finite differences."""
    sf = SymmetryFunctions.from_dict(n2p2_style_parameters())
    check_reference_jacobian_fd(sf, *STRUCTURES[name](), seed=17)


# ----------------------------------------------------------------------------- derivatives


def fd_forces(sf, w, pos, num, cell, pbc, h=1e-5):
    F = np.zeros_like(pos)
    for a in range(len(pos)):
        for k in range(3):
            p = pos.copy(); p[a, k] += h
            m = pos.copy(); m[a, k] -= h
            F[a, k] = -(energy(sf, w, p, num, cell, pbc) - energy(sf, w, m, num, cell, pbc)) / (2 * h)
    return F


@pytest.mark.parametrize("kind", ["cos", "tanhu", "poly2"])
@pytest.mark.parametrize("name", list(STRUCTURES))
def test_forces_finite_difference(name, kind):
    sf = SymmetryFunctions.from_dict(make_params(kind))
    pos, num, cell, pbc = STRUCTURES[name]()
    rng = np.random.default_rng(7)
    w = rng.normal(size=(len(pos), sf.n_features))
    res = sf.vjp(w, pos, num, cell, pbc)
    F = fd_forces(sf, w, pos, num, cell, pbc)
    assert np.abs(F).max() > 0.1
    np.testing.assert_allclose(res.forces, F, rtol=1e-6, atol=1e-7 * np.abs(F).max())


@pytest.mark.parametrize("name", list(STRUCTURES))
def test_virial_finite_difference(name, sf):
    """W = -dE/d(strain): deform cell and positions by (I + eps), central differences."""
    pos, num, cell, pbc = STRUCTURES[name]()
    rng = np.random.default_rng(11)
    w = rng.normal(size=(len(pos), sf.n_features))
    W = sf.vjp(w, pos, num, cell, pbc).virial
    h = 1e-6
    Wfd = np.zeros((3, 3))
    for a in range(3):
        for b in range(3):
            e = np.zeros((3, 3)); e[a, b] = h
            ep, em = np.eye(3) + e, np.eye(3) - e
            cp = None if cell is None else cell @ ep
            cm = None if cell is None else cell @ em
            Ep = energy(sf, w, pos @ ep, num, cp, pbc)
            Em = energy(sf, w, pos @ em, num, cm, pbc)
            Wfd[a, b] = -(Ep - Em) / (2 * h)
    assert np.abs(Wfd).max() > 0.1
    np.testing.assert_allclose(W, Wfd, rtol=1e-6, atol=1e-6 * np.abs(Wfd).max())
    np.testing.assert_allclose(W, W.T, atol=1e-10 * np.abs(W).max())


def test_virial_equals_sum_r_f_for_molecule(sf):
    pos, num, cell, pbc = STRUCTURES["molecule"]()
    w = np.random.default_rng(3).normal(size=(len(pos), sf.n_features))
    r = sf.vjp(w, pos, num)
    np.testing.assert_allclose(r.virial, pos.T @ r.forces, atol=1e-11)
    np.testing.assert_allclose(r.forces.sum(axis=0), 0.0, atol=1e-11)


@pytest.mark.parametrize("name", list(STRUCTURES))
def test_jacobian_matches_vjp_and_finite_difference(name, sf):
    pos, num, cell, pbc = STRUCTURES[name]()
    J = sf.jacobian(pos, num, cell, pbc)
    np.testing.assert_allclose(J.G, sf.compute(pos, num, cell, pbc), rtol=0, atol=0)
    w = np.random.default_rng(5).normal(size=(len(pos), sf.n_features))
    F, W = J.forces_and_virial(w)
    r = sf.vjp(w, pos, num, cell, pbc)
    np.testing.assert_allclose(F, r.forces, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(W, r.virial, rtol=1e-12, atol=1e-11)
    # dG/dr of one atom by central differences, folded over images
    a, h = 1, 1e-5
    dense = np.zeros((len(pos), sf.n_features, 3))
    for e in range(len(J.atom)):
        if J.atom[e] == a:
            dense[J.centre[e]] += J.values[e]
    for k in range(3):
        p = pos.copy(); p[a, k] += h
        m = pos.copy(); m[a, k] -= h
        fd = (sf.compute(p, num, cell, pbc) - sf.compute(m, num, cell, pbc)) / (2 * h)
        np.testing.assert_allclose(dense[:, :, k], fd, rtol=1e-6, atol=1e-7)


def test_per_atom_virial_sums_to_total(sf):
    pos, num, cell, pbc = STRUCTURES["skewed_triclinic"]()
    w = np.random.default_rng(9).normal(size=(len(pos), sf.n_features))
    r = sf.vjp(w, pos, num, cell, pbc, per_atom_virial=True)
    np.testing.assert_allclose(r.per_atom_virial.sum(axis=0), r.virial, atol=1e-11)


# ----------------------------------------------------------------------------- invariances


def random_rotation(rng):
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    return q if np.linalg.det(q) > 0 else -q


@pytest.mark.parametrize("name", list(STRUCTURES))
def test_translation_and_rotation_invariance(name, sf):
    pos, num, cell, pbc = STRUCTURES[name]()
    rng = np.random.default_rng(13)
    G = sf.compute(pos, num, cell, pbc)
    t = rng.normal(size=3) * 7.0
    np.testing.assert_allclose(sf.compute(pos + t, num, cell, pbc), G, rtol=1e-11, atol=1e-12)
    R = random_rotation(rng)
    rc = None if cell is None else cell @ R.T
    np.testing.assert_allclose(sf.compute(pos @ R.T, num, rc, pbc), G, rtol=1e-11, atol=1e-12)
    # forces rotate with the structure
    w = rng.normal(size=G.shape)
    F = sf.vjp(w, pos, num, cell, pbc).forces
    np.testing.assert_allclose(sf.vjp(w, pos @ R.T, num, rc, pbc).forces, F @ R.T, atol=1e-10)


@pytest.mark.parametrize("name", list(STRUCTURES))
def test_permutation_invariance(name, sf):
    pos, num, cell, pbc = STRUCTURES[name]()
    rng = np.random.default_rng(17)
    perm = rng.permutation(len(pos))
    G = sf.compute(pos, num, cell, pbc)
    np.testing.assert_allclose(sf.compute(pos[perm], num[perm], cell, pbc), G[perm], rtol=1e-11, atol=1e-12)


@pytest.mark.parametrize("name", ["small_periodic", "skewed_triclinic", "slab"])
def test_periodic_image_invariance(name, sf):
    pos, num, cell, pbc = STRUCTURES[name]()
    G = sf.compute(pos, num, cell, pbc)
    moved = pos.copy()
    moved[0] += 2 * cell[0] - cell[1]
    if pbc[2]:
        moved[2] += 3 * cell[2]
    np.testing.assert_allclose(sf.compute(moved, num, cell, pbc), G, rtol=1e-11, atol=1e-12)
    # a 2x1x2 (or 2x2x1) supercell repeats the unit cell's values
    from ase import Atoms
    atoms = Atoms(numbers=num, positions=pos, cell=cell, pbc=pbc)
    rep = (2, 1, 2) if pbc[2] else (2, 2, 1)
    sup = atoms.repeat(rep)
    Gs = sf.compute(sup)
    np.testing.assert_allclose(Gs, np.tile(G, (np.prod(rep), 1)), rtol=1e-11, atol=1e-12)


def test_ase_atoms_input_equals_arrays(sf):
    from ase import Atoms
    pos, num, cell, pbc = STRUCTURES["skewed_triclinic"]()
    atoms = Atoms(numbers=num, positions=pos, cell=cell, pbc=pbc)
    np.testing.assert_array_equal(sf.compute(atoms), sf.compute(pos, num, cell, pbc))
    symbols = atoms.get_chemical_symbols()
    np.testing.assert_array_equal(sf.compute(pos, symbols, cell, pbc), sf.compute(atoms))


# ----------------------------------------------------------------------------- threads, CSR


def test_thread_count_gives_identical_results(sf):
    from ase import Atoms
    pos, num, cell, pbc = STRUCTURES["small_periodic"]()
    atoms = Atoms(numbers=num, positions=pos, cell=cell, pbc=True).repeat((3, 3, 3))
    G1 = sf.compute(atoms, threads=1)
    G2 = sf.compute(atoms, threads=2)
    np.testing.assert_array_equal(G1, G2)
    w = np.random.default_rng(1).normal(size=G1.shape)
    r1, r2 = sf.vjp(w, atoms, threads=1), sf.vjp(w, atoms, threads=2)
    np.testing.assert_array_equal(r1.forces, r2.forces)
    np.testing.assert_array_equal(r1.virial, r2.virial)


@pytest.mark.parametrize("kind", ["acsf", "gmp"])
def test_scatter_with_and_without_per_atom_virial(kind):
    """The MD path of the pair-gradient scatter keeps the centre's force and the virial in
    registers; the per-atom-virial path updates memory. Forces must agree to the last bit (the
    same additions in the same order), the virials to rounding (the MD path fuses its products),
    the per-atom virials must add up to the virial, and 1 and 2 threads must give the same bits."""
    from atomforge.cli import _water_box
    from atomforge.descriptors import GaussianMultipoles

    d = (SymmetryFunctions.standard(["H", "O"], r_c=6.0, n_radial=6, n_angular=4) if kind == "acsf"
         else GaussianMultipoles(orders=[0, 1, 2], sigmas=[0.5, 1.0, 1.5], elements=["H", "O"], r_c=6.0))
    atoms = _water_box(3)  # 648 atoms
    atoms.rattle(0.05, seed=3)
    nl = d.neighbor_list(atoms)
    w = np.random.default_rng(4).normal(size=(len(atoms), d.n_features))
    f1, v1, _ = d.core.vjp(nl, w, False, 1)
    f2, v2, _ = d.core.vjp(nl, w, False, 2)
    np.testing.assert_array_equal(f2, f1)
    np.testing.assert_array_equal(v2, v1)
    f3, v3, pav = d.core.vjp(nl, w, True, 2)
    np.testing.assert_array_equal(f3, f1)
    np.testing.assert_allclose(v3, v1, rtol=1e-13, atol=1e-11)
    np.testing.assert_allclose(pav.sum(axis=0), v1, rtol=1e-12, atol=1e-10)
    assert np.abs(f1).max() > 0 and np.abs(v1).max() > 0


def test_scatter_with_permuted_and_repeated_centres():
    """A LAMMPS-style list whose centres come in reverse order gives the forces and virial of the
    natural order, and a list naming one atom twice as a centre adds both rows (the centre's
    force is taken from memory at each of its entries)."""
    from atomforge.cli import _water_box

    sf = SymmetryFunctions.standard(["H", "O"], r_c=6.0, n_radial=6, n_angular=4)
    atoms = _water_box(3)
    nl = sf.neighbor_list(atoms)
    P, S = np.array(nl.positions), np.array(nl.species)
    off, nb = np.array(nl.offsets), np.array(nl.neighbors)
    n = len(atoms)
    w = np.random.default_rng(5).normal(size=(n, sf.n_features))

    def run(centres, rows, threads):
        lists = [nb[off[c]:off[c + 1]] for c in centres]
        o = np.concatenate([[0], np.cumsum([len(r) for r in lists])]).astype(np.int64)
        return sf._core.vjp_csr(P, S, o, np.concatenate(lists).astype(np.int64), np.ascontiguousarray(rows),
                                np.asarray(centres, dtype=np.int64), threads)

    rev = np.arange(n)[::-1]
    fa, va = run(rev, w[rev], 1)
    np.testing.assert_array_equal(run(rev, w[rev], 2)[0], fa)
    f0, v0, _ = sf.core.vjp(nl, w, False, 1)
    np.testing.assert_allclose(fa, f0, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(va, v0, rtol=1e-12, atol=1e-10)
    twice = np.concatenate([np.arange(n), [7]])
    ft, vt = run(twice, np.vstack([w, w[7:8]]), 2)
    f7, v7 = run([7], w[7:8], 1)
    np.testing.assert_allclose(ft, f0 + f7, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(vt, v0 + v7, rtol=1e-12, atol=1e-10)


def test_external_csr_list_feeds_the_same_kernels(sf):
    """A LAMMPS-style list (local + ghost positions, centres given) gives the same values."""
    pos, num, cell, pbc = STRUCTURES["skewed_triclinic"]()
    nl = sf.neighbor_list(pos, num, cell, pbc)
    P = np.array(nl.positions)
    S = np.array(nl.species)
    off, nb = np.array(nl.offsets), np.array(nl.neighbors)
    G = sf.compute(pos, num, cell, pbc)
    np.testing.assert_array_equal(sf._core.compute_csr(P, S, off, nb), G)
    # a subset of centres, listed in reverse order, with neighbours in reversed order
    centres = np.array([5, 2, 0], dtype=np.int64)
    rows = [nb[off[c]:off[c + 1]][::-1] for c in centres]
    off2 = np.concatenate([[0], np.cumsum([len(r) for r in rows])]).astype(np.int64)
    G2 = sf._core.compute_csr(P, S, off2, np.concatenate(rows).astype(np.int64), centres)
    np.testing.assert_allclose(G2, G[centres], rtol=1e-13, atol=1e-14)
    # an over-long list (neighbours beyond r_c) changes nothing
    nl_big = atomforge._core.build_neighbor_list(nl.positions[: len(pos)].copy(), cell, (True,) * 3, 8.0)
    nl_big.set_species(sf.species_indices(num))
    np.testing.assert_allclose(sf._core.compute(nl_big, 0), G, rtol=1e-12, atol=1e-13)
    w = np.random.default_rng(2).normal(size=G.shape)
    F, W = sf._core.vjp_csr(P, S, off, nb, w)
    r = sf.vjp(w, pos, num, cell, pbc)
    np.testing.assert_allclose(nl.fold(F), r.forces, atol=1e-12)


def test_standard_set_generator():
    sf = SymmetryFunctions.standard(["O", "H"], r_c=5.5, n_radial=6, n_angular=3)
    assert sf.elements == ["O", "H"]
    assert sf.n_features_per_element == {"O": 2 * 6 + 3 * 2 * 3, "H": 2 * 6 + 3 * 2 * 3}
    assert sf.cutoff == 5.5
    sf2 = SymmetryFunctions.from_dict(sf.to_dict())
    assert sf2.to_dict() == sf.to_dict()
    pos, num, cell, pbc = STRUCTURES["small_periodic"]()
    G = sf.compute(pos, num, cell, pbc)
    assert np.isfinite(G).all() and (G.std(axis=0) > 0).sum() > sf.n_features // 2
    assert len(sf.feature_labels("O")) == sf.n_features_per_element["O"]
    assert "G4" in repr(sf) or "SymmetryFunctions" in repr(sf)


def test_standard_set_zetas():
    """An explicit zeta set replaces (1, 2, 4, 16)[:n_angular]; bad sets are refused by name."""
    default = SymmetryFunctions.standard(["O", "H"], n_radial=4, n_angular=4, angular="G5")
    same = SymmetryFunctions.standard(["O", "H"], n_radial=4, n_angular=1, angular="G5", zetas=[1, 2, 4, 16])
    assert same.to_dict() == default.to_dict()  # n_angular is ignored when zetas are given
    sf = SymmetryFunctions.standard(["O", "H"], n_radial=4, angular="G5", n_angular_radial=2,
                                    zetas=[1, 2, 3, 4, 6, 8])
    assert sf.n_features_per_element["O"] == 2 * 4 + 3 * 2 * 6 * 2
    ang = [f for f in sf.functions["O"] if f["type"] == "G5"]
    assert sorted({f["zeta"] for f in ang}) == [1.0, 2.0, 3.0, 4.0, 6.0, 8.0]
    pos, num, cell, pbc = STRUCTURES["small_periodic"]()
    G = sf.compute(pos, num, cell, pbc)
    assert np.isfinite(G).all()
    for bad in ([0.5, 2], [1, 1], [1, float("nan")], "12", [1, True], [1, "2"]):
        with pytest.raises(ValueError, match="zetas"):
            SymmetryFunctions.standard(["O", "H"], zetas=bad)
    cfg = {**SymmetryFunctions.config_defaults, "zetas": [1, 8]}  # the training-configuration route
    sf = SymmetryFunctions.from_config(cfg, ["O", "H"])
    assert sorted({f["zeta"] for f in sf.functions["O"] if f["type"] != "G2"}) == [1.0, 8.0]


# ----------------------------------------------------------------------------- G5s (angle shifts)


def _g5s_only(theta_s, zeta=32.0):
    return SymmetryFunctions(["H", "O"], {
        "O": [{"type": "G5s", "neighbors": ["H", "H"], "eta": 0.5, "theta_s": t, "zeta": zeta, "r_c": 4.0}
              for t in theta_s],
        "H": [{"type": "G2", "neighbors": ["O"], "eta": 0.5, "r_c": 4.0}]})


def test_g5s_peaks_at_its_angle_shift():
    """An H-O-H triplet: the G5s function whose theta_s is nearest the angle is the largest, and
    the values are ANI's (1 + cos(theta~ - theta_s))^zeta (Smith et al. 2017, Eq. 4) times the
    radial factor, with theta~ = arccos(0.95 cos theta)."""
    shifts = [(k + 0.5) * np.pi / 8 for k in range(8)]
    sf = _g5s_only(shifts)
    for angle_deg in (60.0, 104.5, 150.0):
        t = np.radians(angle_deg)
        pos = np.array([[0.0, 0.0, 0.0], [0.96, 0.0, 0.0], [0.96 * np.cos(t), 0.96 * np.sin(t), 0.0]])
        G = sf.compute(pos, np.array([8, 1, 1]))[0]
        tt = np.arccos(0.95 * np.cos(t))
        radial = np.exp(-0.5 * 2 * 0.96**2) * (0.5 * (np.cos(np.pi * 0.96 / 4.0) + 1)) ** 2
        expect = [2.0 ** (1 - 32) * (1 + np.cos(tt - s)) ** 32 * radial for s in shifts]
        np.testing.assert_allclose(G, expect, rtol=1e-12)
        assert int(np.argmax(G)) == int(np.argmin(np.abs(np.array(shifts) - tt)))


@pytest.mark.parametrize("angle_deg", [0.0, 180.0])
def test_g5s_forces_finite_for_collinear_triplets(angle_deg):
    """At 0 and 180 degrees d/dcos sqrt(1 - cos^2) diverges; the 0.95 keeps G5s smooth there:
    finite forces equal to central differences."""
    sf = _g5s_only([0.3, 1.2, 2.9], zeta=4.0)
    t = np.radians(angle_deg)
    r2 = 1.3 if angle_deg == 0.0 else 0.96  # distinct neighbours at 0 degrees
    pos = np.array([[0.0, 0.0, 0.0], [0.96, 0.0, 0.0], [r2 * np.cos(t), r2 * np.sin(t), 0.0]])
    num = np.array([8, 1, 1])
    w = np.array([[1.0, -0.7, 0.4], [0.3, 0, 0], [-0.2, 0, 0]])
    res = sf.vjp(w, pos, num)
    assert np.isfinite(res.forces).all()
    F = fd_forces(sf, w, pos, num, None, None, h=1e-6)
    assert np.abs(F).max() > 1e-3
    np.testing.assert_allclose(res.forces, F, rtol=1e-6, atol=1e-7 * np.abs(F).max())


def test_g5s_model_file_records_round_trip():
    """theta_s travels in the lambda column of type-6 rows; the core rebuilds the same features."""
    sf = SymmetryFunctions.standard(["C", "H", "O"], r_c=4.5, n_radial=4, angular="G5s", n_angular_radial=2,
                                    n_theta_s=4, zetas=[8, 32])
    rec = sf.descriptor_records()
    rows = rec["descriptor.functions"]
    assert set(rows[:, 0].astype(int)) == {2, 6}
    assert sorted(set(np.round(rows[rows[:, 0] == 6, 7], 12))) == sorted(np.round([(k + 0.5) * np.pi / 4
                                                                                    for k in range(4)], 12))
    back = SymmetryFunctions.from_records(rec, sf.elements)
    assert back.to_dict() == sf.to_dict()
    assert sf.n_features_per_element["C"] == 3 * 4 + 6 * 4 * 2 * 2
    labels = sf.feature_labels("C")
    assert any(lab.startswith("G5s[H,O]") and "theta_s=" in lab for lab in labels)
    pos, num, cell, pbc = STRUCTURES["small_periodic"]()
    G = sf.compute(pos, num, cell, pbc)
    np.testing.assert_allclose(G, reference_G(pos, num, cell, pbc, sf.to_dict()), rtol=1e-12, atol=1e-12)
    assert (G.std(axis=0) > 0).sum() > sf.n_features // 2


def test_g5s_bad_parameters_are_refused_by_name():
    base = {"type": "G5s", "neighbors": ["H", "H"], "eta": 0.5, "theta_s": 1.0, "zeta": 8, "r_c": 4.0}
    for bad, match in [({"theta_s": -0.1}, "theta_s must be in"), ({"theta_s": 3.2}, "theta_s must be in"),
                       ({"theta_s": float("nan")}, "theta_s.*finite"), ({"lambda": -1}, "unknown key"),
                       ({"zeta": 0.5}, "zeta must be"), ({"theta_s": None}, "theta_s")]:
        f = {**base, **bad}
        if bad.get("theta_s", 0) is None:
            del f["theta_s"]
        with pytest.raises(ValueError, match=match):
            SymmetryFunctions(["H"], {"H": [f]})
    with pytest.raises(ValueError, match="unknown key.*theta_s"):
        SymmetryFunctions(["H"], {"H": [{"type": "G5", "neighbors": ["H", "H"], "eta": 0.5, "lambda": 1,
                                         "zeta": 1, "theta_s": 1.0, "r_c": 4.0}]})
    with pytest.raises(ValueError, match="n_theta_s"):
        SymmetryFunctions.standard(["H"], angular="G5s", n_theta_s=0)
    with pytest.raises(ValueError, match="angular must be"):
        SymmetryFunctions.standard(["H"], angular="G6")
    # a model file whose type-6 row holds theta_s out of range: refused by the reader, naming the record
    from atomforge.model_file import ModelFileError
    rec = _g5s_only([1.0]).descriptor_records()
    rows = rec["descriptor.functions"].copy()
    rows[rows[:, 0] == 6, 7] = 4.0
    with pytest.raises((ModelFileError, ValueError), match="theta_s"):
        SymmetryFunctions.from_records({**rec, "descriptor.functions": rows}, ["H", "O"])


def test_n2p2_water_triplet_blocks(water_dir, tmp_path):
    """The real n2p2 RPBE-D3 water set on a 192-atom liquid frame, where every centre has
    hundreds of candidate triplets per neighbour-element pair, so the factorised path splits them
    into several blocks (acsf_kernels.hpp, kBlock = 512) and blocks span several j. Values against
    the NumPy reference; the VJP without the triplet cache (vjp), with it (the engine's fused
    pass) and the scalar Jacobian path (every group separately, libm) against each other."""
    from atomforge.io.n2p2 import read_input_data
    from atomforge.io.n2p2_import import import_n2p2

    params = import_n2p2(water_dir / "potential", output=tmp_path / "water.afm")
    sf = SymmetryFunctions.from_dict(params.descriptor)
    a = read_input_data(water_dir / "input.data.H2O_RPBE-D3", length_unit="bohr", energy_unit="ha")[0]
    pos, num, cell = a.positions, a.numbers, np.asarray(a.cell)
    pbc = [True] * 3
    # candidate pairs {j, k} of H neighbours of one centre with r_jk < r_c: more than one block
    d = a.get_all_distances(mic=True)
    rc = max(f["r_c"] for f in params.descriptor["functions"]["O"] if f["type"] == "G4")
    h = np.flatnonzero((d[0] < rc) & (num == 1))
    assert np.sum(np.triu(d[np.ix_(h, h)] < rc, 1)) > 2 * 512
    G = sf.compute(pos, num, cell, pbc)
    some = [0, 1, 2, 100, 191]  # the NumPy reference takes 0.2 s per centre here
    assert set(num[some]) == {1, 8}
    ref = reference_G(pos, num, cell, pbc, sf.to_dict(), centres=some)
    np.testing.assert_allclose(G[some], ref[some], rtol=1e-12, atol=1e-12)
    idx = sf.species_indices(num)
    E_at, dEdG = params.atomic_energies_numpy(G, idx)
    v = sf.vjp(dEdG, pos, num, cell, pbc)
    F, W = sf.jacobian(pos, num, cell, pbc).forces_and_virial(dEdG)
    np.testing.assert_allclose(v.forces, F, rtol=1e-12, atol=1e-12 * np.abs(F).max())
    np.testing.assert_allclose(v.virial, W, rtol=1e-12, atol=1e-12 * np.abs(W).max())
    r = atomforge.load(tmp_path / "water.afm").compute(pos, num, cell, pbc)  # fused pass, triplet cache
    np.testing.assert_allclose(r.atomic_energies, E_at, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(r.forces, F, rtol=1e-12, atol=1e-12 * np.abs(F).max())
    np.testing.assert_allclose(r.virial, W, rtol=1e-12, atol=1e-12 * np.abs(W).max())


@pytest.mark.parametrize("name", ["molecule", "small_periodic", "skewed_triclinic"])
def test_factorised_pair_powers_beyond_the_unrolled_range(name):
    """Factorised pairs whose eta ratios (40) and zeta - 1 (39) exceed the powers the block path
    unrolls at compile time (kMaxCtPower = 32), and a non-integer zeta (2.5, libm pow): the
    general power loops of fact_pair_terms against the NumPy reference, the Jacobian path and
    finite differences."""
    funcs = {}
    for c in ("H", "C", "O"):
        fl = [{"type": "G2", "neighbors": [nb], "eta": 0.05, "r_s": 0.0, "r_c": 5.0} for nb in ("H", "C", "O")]
        for a, b in [("H", "H"), ("H", "O"), ("C", "H"), ("O", "O")]:
            for eta, zeta in ((0.01, 1.0), (0.01, 2.5), (0.4, 40.0), (0.12, 4.0)):
                for lam in (1.0, -1.0):
                    fl.append({"type": "G4", "neighbors": [a, b], "eta": eta, "lambda": lam, "zeta": zeta,
                               "r_c": 4.5})
        funcs[c] = fl
    sf = SymmetryFunctions.from_dict({"elements": ["H", "C", "O"], "cutoff_function": "poly2", "functions": funcs})
    check_reference_jacobian_fd(sf, *STRUCTURES[name](), seed=5)


def _poly_vjp_set(max_zeta=8):
    """G4 functions of factorised pairs (shared exponential, one r_c) with integer zeta from 1 to
    max_zeta, mixed within a group (same eta), lambda = +-1: eight (lambda, zeta) slots per pair,
    as many as the fused passes take (FusedPlan::kSlots)."""
    funcs = {}
    for c in ("H", "C", "O"):
        fl = [{"type": "G2", "neighbors": [nb], "eta": 0.05, "r_s": 0.0, "r_c": 5.0} for nb in ("H", "C", "O")]
        for a, b in [("H", "H"), ("H", "O"), ("C", "H"), ("O", "O"), ("C", "O")]:
            for eta, zetas in ((0.01, (1.0, 2.0)), (0.03, (2.0,)), (0.05, (5.0, float(max_zeta))), (0.02, (1.0,))):
                for zeta in zetas:
                    for lam in (1.0, -1.0):
                        fl.append({"type": "G4", "neighbors": [a, b], "eta": eta, "lambda": lam, "zeta": zeta,
                                   "r_c": 4.5})
        funcs[c] = fl
    return SymmetryFunctions.from_dict({"elements": ["H", "C", "O"], "cutoff_function": "tanh", "functions": funcs})


@pytest.mark.parametrize("name", ["molecule", "small_periodic", "skewed_triclinic"])
@pytest.mark.parametrize("max_zeta", [8, 9])
def test_factorised_vjp_as_polynomials_in_cos(name, max_zeta):
    """The AVX-512 VJP of factorised pairs forms each group's weighted angular sums as polynomials
    in cos (binomial expansion, FusedPlan::pdeg <= 8, from the powers of cos) instead of per-slot powers,
    and the values pass sums powers of cos per group (FusedPlan::vdeg, fused_values_poly):
    zeta 1-8 mixed within groups, and a set with zeta 9 (the per-slot passes). Against the NumPy
    reference (values, 1e-12), the Jacobian path (per-slot powers, 1e-12) and finite differences."""
    check_reference_jacobian_fd(_poly_vjp_set(max_zeta), *STRUCTURES[name](), seed=7)


def test_factorised_vjp_polynomial_at_a_straight_angle():
    """A linear O-C-O with H caps (cos = -1 exactly at C for lambda = 1): n2p2 clamps
    (1 + lambda cos)^zeta and its derivative to 0 there, the polynomial VJP does not; the
    gradient of cos vanishes at a straight angle, so both agree (1e-12, Jacobian path) and with
    finite differences."""
    pos = np.array([[0.0, 0.0, 0.0], [-1.16, 0.0, 0.0], [1.16, 0.0, 0.0], [-2.1, 0.3, 0.0], [2.1, 0.0, 0.35]])
    num = np.array([6, 8, 8, 1, 1])
    d = pos[1] - pos[0], pos[2] - pos[0]
    assert np.dot(d[0], d[1]) / (np.linalg.norm(d[0]) * np.linalg.norm(d[1])) == -1.0
    check_reference_jacobian_fd(_poly_vjp_set(), pos, num, None, [False] * 3, seed=2)


def test_factorised_pairs_with_more_neighbours_than_the_fixed_block_stride():
    """A dense cluster (every atom within r_c of every other, 392 neighbours per centre) needs
    block arrays longer than kBlockL, so fact_pair_terms runs with the block stride known only at
    run time (kL = 0) instead of the compile-time one the other tests use: values against the
    NumPy reference (two centres), the VJP against the Jacobian path (1e-12)."""
    rng = np.random.default_rng(11)
    n = 393
    g = np.arange(-5, 6) * 0.62  # the n grid points nearest the origin, jittered
    grid = np.stack(np.meshgrid(g, g, g, indexing="ij"), -1).reshape(-1, 3)
    pos = grid[np.argsort(np.linalg.norm(grid, axis=1), kind="stable")[:n]] + rng.uniform(-0.05, 0.05, (n, 3))
    num = np.where(rng.random(n) < 0.5, 1, 8)
    cell, pbc = np.zeros((3, 3)), [False] * 3
    assert np.linalg.norm(pos[:, None] - pos[None], axis=-1).max() < 6.0
    funcs = {}
    for c in ("H", "O"):
        fl = [{"type": "G2", "neighbors": [nb], "eta": 0.05, "r_s": 0.0, "r_c": 6.0} for nb in ("H", "O")]
        for a, b in [("H", "H"), ("H", "O"), ("O", "O")]:
            for eta, zeta in ((0.01, 1.0), (0.03, 4.0)):  # shared exponential, one r_c: factorised
                fl.append({"type": "G4", "neighbors": [a, b], "eta": eta, "lambda": 1.0, "zeta": zeta, "r_c": 6.0})
        funcs[c] = fl
    sf = SymmetryFunctions.from_dict({"elements": ["H", "O"], "cutoff_function": "tanh", "functions": funcs})
    G = sf.compute(pos, num, None, pbc)
    some = [0, int(np.flatnonzero(num == 8)[0])]
    ref = reference_G(pos, num, cell, pbc, sf.to_dict(), centres=some)
    assert np.abs(ref[some]).max() > 0.1
    np.testing.assert_allclose(G[some], ref[some], rtol=1e-12, atol=1e-12)
    w = np.random.default_rng(3).normal(size=(n, sf.n_features))
    r = sf.vjp(w, pos, num, None, pbc)
    F, W = sf.jacobian(pos, num, None, pbc).forces_and_virial(w)
    assert np.abs(F).max() > 0.1
    np.testing.assert_allclose(r.forces, F, rtol=1e-12, atol=1e-12 * np.abs(F).max())
    np.testing.assert_allclose(r.virial, W, rtol=1e-12, atol=1e-12 * np.abs(W).max())
