"""Issue 14, first piece: the core's electrostatics (atomforge.electrostatics.ewald; formulas in
cpp/src/electrostatics/ewald.hpp and docs/electrostatics.md).

References are independent of the core: the rock-salt Madelung constant, a slowly converging direct
lattice sum and an open-boundary erf sum in NumPy, and finite differences of the core's own
energy for forces, virial and the potential dE/dq."""
import numpy as np
import pytest
from scipy.special import erf

from atomforge import AtomsTooClose
from atomforge.electrostatics import COULOMB, ewald

MADELUNG_NACL = 1.747564594633182  # per ion pair, in units of k_e e^2 / r_nearest
A_NACL = 5.64  # Angstrom (the value cancels)


def rock_salt_conventional(a=A_NACL):
    fcc = np.array([[0, 0, 0], [0, 0.5, 0.5], [0.5, 0, 0.5], [0.5, 0.5, 0]]) * a
    pos = np.vstack([fcc, fcc + [a / 2, 0, 0]])
    q = np.r_[np.ones(4), -np.ones(4)]
    return pos, q, np.eye(3) * a


def rock_salt_primitive(a=A_NACL, basis=np.eye(3, dtype=int)):
    """Two ions in the fcc primitive cell (triclinic, 60 degree angles), optionally in another
    basis of the same lattice (integer matrix with determinant +-1)."""
    cell = basis @ (np.array([[0, 0.5, 0.5], [0.5, 0, 0.5], [0.5, 0.5, 0]]) * a)
    return np.array([[0.0, 0, 0], [a / 2, 0, 0]]), np.array([1.0, -1.0]), cell


TRICLINIC = np.array([[4.3, 0.0, 0.0], [0.9, 4.0, 0.0], [-0.6, 0.7, 4.5]])


def random_cell_system(n=12, seed=0, neutral=True, cell=TRICLINIC, sigma=False):
    """n charges at least 1 A apart inside `cell` (rejection sampling)."""
    rng = np.random.default_rng(seed)
    pos = []
    inv = np.linalg.inv(cell)
    while len(pos) < n:
        p = rng.random(3) @ cell
        ok = True
        for x in pos:
            d = p - x
            d = d - np.round(d @ inv) @ cell
            if np.linalg.norm(d) < 1.0:
                ok = False
        if ok:
            pos.append(p)
    q = rng.normal(0.0, 0.6, n)
    if neutral:
        q -= q.mean()
    s = rng.uniform(0.0, 0.8, n) if sigma else None
    if sigma:
        s[0] = 0.0  # point and Gaussian charges together
    return np.array(pos), q, s


def molecule(seed=3, n=7):
    rng = np.random.default_rng(seed)
    pos = rng.normal(0, 1.6, (n, 3))
    q = rng.normal(0, 0.5, n)
    s = rng.uniform(0.2, 0.9, n)
    return pos, q, s


# ---------------------------------------------------------------- Madelung constant


@pytest.mark.parametrize("accuracy", [1e-8, 1e-12])
def test_rock_salt_madelung_conventional_cell(accuracy):
    pos, q, cell = rock_salt_conventional()
    r = ewald(pos, q, cell=cell, accuracy=accuracy)
    madelung = -r["energy"] / 4 * (A_NACL / 2) / COULOMB
    assert abs(madelung - MADELUNG_NACL) < 1e-8, madelung - MADELUNG_NACL
    # each ion sits on a centre of symmetry: no force; potential -q M k_e / r0
    assert np.abs(r["forces"]).max() < 1e-8
    np.testing.assert_allclose(r["potential"], -q * MADELUNG_NACL * COULOMB / (A_NACL / 2), rtol=1e-9)
    # cubic symmetry: isotropic virial; for 1/r energies the virial trace is the energy
    np.testing.assert_allclose(r["virial"], np.eye(3) * r["energy"] / 3, atol=1e-8)
    np.testing.assert_allclose(r["stress"], -r["virial"] / A_NACL**3)


@pytest.mark.parametrize("basis", [np.eye(3, dtype=int), np.array([[1, 0, 0], [1, 1, 0], [-2, 1, 1]])])
def test_rock_salt_madelung_primitive_triclinic_cell(basis):
    pos, q, cell = rock_salt_primitive(basis=basis)
    assert abs(abs(np.linalg.det(cell)) - A_NACL**3 / 4) < 1e-9
    r = ewald(pos, q, cell=cell)
    madelung = -r["energy"] * (A_NACL / 2) / COULOMB
    assert abs(madelung - MADELUNG_NACL) < 1e-8, madelung - MADELUNG_NACL
    assert np.abs(r["forces"]).max() < 1e-8


def test_wrong_madelung_would_be_caught():
    """The check is sensitive: one ion displaced by 0.01 A from its centre of symmetry (energy
    change quadratic in the displacement) is seen."""
    pos, q, cell = rock_salt_conventional()
    pos[0] += [0.01, 0, 0]
    r = ewald(pos, q, cell=cell)
    assert abs(-r["energy"] / 4 * (A_NACL / 2) / COULOMB - MADELUNG_NACL) > 1e-7


# ---------------------------------------------------------------- splitting parameter, accuracy


@pytest.mark.parametrize("neutral", [True, False])
@pytest.mark.parametrize("sigma", [False, True])
def test_energy_forces_virial_independent_of_alpha(neutral, sigma):
    pos, q, s = random_cell_system(neutral=neutral, sigma=sigma)
    ref = ewald(pos, q, cell=TRICLINIC, sigma=s, accuracy=1e-13)
    scale = np.abs(ref["forces"]).max()
    for alpha in (0.25, 0.5, 0.9, 1.6):
        r = ewald(pos, q, cell=TRICLINIC, sigma=s, accuracy=1e-13, alpha=alpha)
        assert r["parameters"]["alpha"] == alpha
        assert abs(r["energy"] - ref["energy"]) < 1e-10 * abs(ref["energy"]) + 1e-11
        np.testing.assert_allclose(r["forces"], ref["forces"], atol=1e-10 * scale)
        np.testing.assert_allclose(r["virial"], ref["virial"], atol=1e-9 * abs(ref["energy"]))
        np.testing.assert_allclose(r["potential"], ref["potential"], atol=1e-9 * np.abs(ref["potential"]).max())
    if not neutral:  # the background term is what makes a charged cell alpha-independent
        assert abs(ref["energy_background"]) > 1e-3


def test_measured_error_is_below_requested_accuracy():
    pos, q, cell = rock_salt_conventional()
    big = [pos + np.array([i, j, k]) * A_NACL for i in range(2) for j in range(2) for k in range(2)]
    systems = [(np.vstack(big), np.tile(q, 8), cell * 2, None), random_cell_system(n=30, seed=5) + (None,)]
    systems[1] = (systems[1][0], systems[1][1], TRICLINIC, None)
    systems.append((*random_cell_system(n=20, seed=6, sigma=True)[:2], TRICLINIC,
                    random_cell_system(n=20, seed=6, sigma=True)[2]))
    for pos_, q_, cell_, s_ in systems:
        ref = ewald(pos_, q_, cell=cell_, sigma=s_, accuracy=1e-15)
        for acc in (1e-4, 1e-6, 1e-8, 1e-10):
            r = ewald(pos_, q_, cell=cell_, sigma=s_, accuracy=acc)
            assert abs(r["energy"] - ref["energy"]) <= acc * abs(ref["energy"]), (acc, r["parameters"])
            # forces: rms error below accuracy times the force of two unit charges 1 A apart
            assert np.sqrt(((r["forces"] - ref["forces"]) ** 2).mean()) <= acc * COULOMB


def test_parameters_follow_the_documented_error_control():
    pos, q, cell = rock_salt_conventional()
    p = ewald(pos, q, cell=cell, accuracy=1e-6)["parameters"]
    s = p["s"]
    assert abs(np.exp(-s * s) / (s * s) - 1e-6 / 100) < 1e-12
    assert abs(p["r_cut"] - s / p["alpha"]) < 1e-12 and abs(p["k_cut"] - 2 * p["alpha"] * s) < 1e-12
    # wide Gaussians lengthen the real-space cutoff: erfc(r_cut / gamma_max) with gamma_max = 2 sigma
    p2 = ewald(pos, q, cell=cell, sigma=np.full(8, 2.0), accuracy=1e-6, alpha=p["alpha"])["parameters"]
    assert abs(p2["r_cut"] - 4.0 * s) < 1e-12
    # the k vectors are exactly those of the half space with |k| <= k_cut
    b = 2 * np.pi * np.linalg.inv(cell).T
    g = np.arange(-10, 11)
    hkl = np.array(np.meshgrid(g, g, g, indexing="ij")).reshape(3, -1).T
    k = np.linalg.norm(hkl @ b, axis=1)
    assert p["n_kvectors"] == (np.count_nonzero((k <= p["k_cut"]) & (k > 0))) // 2


# ---------------------------------------------------------------- direct lattice sum


def lattice_translations(cell, radius):
    heights = 1.0 / np.linalg.norm(np.linalg.inv(cell), axis=0)
    m = int(np.ceil(radius / heights.min()))
    g = np.arange(-m, m + 1)
    t = np.array(np.meshgrid(g, g, g, indexing="ij")).reshape(3, -1).T @ cell
    return t[np.linalg.norm(t, axis=1) <= radius]


def direct_lattice_sum(pos, q, cell, radius, sigma=None):
    """E of Eq. (2), summed over whole periodic images of the cell inside a sphere (the
    conditionally convergent order that gives vacuum boundary conditions)."""
    t = lattice_translations(cell, radius)
    s = np.zeros(len(q)) if sigma is None else sigma
    e = 0.0
    for i in range(len(q)):
        d = np.linalg.norm(pos[None, :, :] - pos[i] + t[:, None, :], axis=2)
        g = np.sqrt(2 * (s[i] ** 2 + s ** 2))
        with np.errstate(divide="ignore", invalid="ignore"):
            k = np.where(g > 0, erf(d / np.where(g > 0, g, 1.0)), 1.0) / d
        k[d == 0] = 0.0
        e += 0.5 * q[i] * (k * q[None, :]).sum()
    return COULOMB * e


@pytest.mark.parametrize("sigma", [None, np.array([0.4, 0.4, 0.7, 0.7])])
def test_against_direct_lattice_sum_dipole_free_cell(sigma):
    """A neutral cell without dipole moment (charges in +-r pairs): the spherical lattice sum
    converges to the tin-foil Ewald energy, with no surface term."""
    r1, r2 = np.array([0.9, 0.3, -0.4]), np.array([-0.2, 1.1, 0.6])
    pos = np.array([r1, -r1, r2, -r2])
    q = np.array([0.8, 0.8, -0.8, -0.8])
    assert np.abs(q @ pos).max() < 1e-15
    ref = ewald(pos, q, cell=TRICLINIC, sigma=sigma, accuracy=1e-14)["energy"]
    direct = np.mean([direct_lattice_sum(pos, q, TRICLINIC, r, sigma) for r in (130.0, 140.0, 150.0)])
    assert abs(direct - ref) < 1e-7 * abs(ref), (direct, ref)


def test_against_direct_lattice_sum_with_dipole_and_surface_term():
    """With a dipole moment M the spherical sum adds the surface term 2 pi k_e |M|^2 / (3 V)
    (de Leeuw, Perram, Smith, Proc. R. Soc. A 373, 27 (1980)); it converges slowly (1/R), so
    shells are averaged and the tolerance is loose, yet far below the surface term."""
    pos = np.array([[0.1, 0.2, 0.3], [1.5, 0.4, 2.0], [2.5, 2.9, 0.7]])
    q = np.array([0.9, -0.5, -0.4])
    m = q @ pos
    surface = 2 * np.pi * COULOMB * (m @ m) / (3 * abs(np.linalg.det(TRICLINIC)))
    ref = ewald(pos, q, cell=TRICLINIC, accuracy=1e-14)["energy"] + surface
    direct = np.mean([direct_lattice_sum(pos, q, TRICLINIC, r) for r in np.linspace(100.0, 120.0, 9)])
    assert abs(direct - ref) < 1e-3 * abs(ref) < 0.1 * surface, (direct, ref, surface)


# ---------------------------------------------------------------- open boundaries


def open_reference(pos, q, s):
    n = len(q)
    e, phi, f = 0.0, np.zeros(n), np.zeros((n, 3))
    for i in range(n):
        for j in range(n):
            if i == j:
                continue
            d = pos[j] - pos[i]
            r = np.linalg.norm(d)
            g = np.sqrt(2 * (s[i] ** 2 + s[j] ** 2))
            phi[i] += q[j] * erf(r / g) / r
            dg = (2 / (np.sqrt(np.pi) * g) * np.exp(-(r / g) ** 2) - erf(r / g) / r) / r
            f[i] += q[i] * q[j] * dg * d / r
    e = 0.5 * q @ phi
    return COULOMB * e, COULOMB * phi, COULOMB * f


def test_open_boundary_gaussians_against_numpy_erf_sum():
    pos, q, s = molecule()
    r = ewald(pos, q, sigma=s)
    e, phi, f = open_reference(pos, q, s)
    assert r["parameters"] is None and r["stress"] is None
    assert abs(r["energy"] - e) < 1e-12 * abs(e)
    np.testing.assert_allclose(r["potential"], phi, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(r["forces"], f, rtol=1e-11, atol=1e-12)
    # point charges: plain Coulomb
    r0 = ewald(pos, q)
    d = np.linalg.norm(pos[:, None] - pos[None], axis=2)
    np.fill_diagonal(d, np.inf)
    assert abs(r0["energy"] - 0.5 * COULOMB * (np.outer(q, q) / d).sum()) < 1e-11
    # the virial of a finite system is sum_i r_i (x) F_i
    np.testing.assert_allclose(r["virial"], pos.T @ r["forces"], atol=1e-11)


# ---------------------------------------------------------------- finite differences


def _fd_forces(fn, pos, h=1e-5):
    f = np.zeros_like(pos)
    for i in range(pos.shape[0]):
        for a in range(3):
            p, m = pos.copy(), pos.copy()
            p[i, a] += h
            m[i, a] -= h
            f[i, a] = -(fn(p, None) - fn(m, None)) / (2 * h)
    return f


def _fd_virial(fn, pos, cell, h=1e-6):
    w = np.zeros((3, 3))
    for a in range(3):
        for b in range(3):
            es = []
            for sgn in (1, -1):
                eps = np.eye(3)
                eps[a, b] += sgn * h
                es.append(fn(pos @ eps, None if cell is None else cell @ eps))
            w[a, b] = -(es[0] - es[1]) / (2 * h)
    return w


CASES = {
    "molecule": lambda: (*molecule()[:2], None, molecule()[2]),
    "molecule_point": lambda: (*molecule()[:2], None, None),
    "cubic": lambda: (*random_cell_system(n=8, seed=1, cell=np.eye(3) * 4.6)[:2], np.eye(3) * 4.6, None),
    "triclinic": lambda: (*random_cell_system(n=9, seed=2)[:2], TRICLINIC, None),
    "triclinic_gaussian_charged": lambda: (*random_cell_system(n=9, seed=4, sigma=True, neutral=False)[:2], TRICLINIC,
                                           random_cell_system(n=9, seed=4, sigma=True, neutral=False)[2]),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_forces_virial_and_potential_match_finite_differences(case):
    pos, q, cell, s = CASES[case]()

    def energy(p, c, qq=q):
        return ewald(p, qq, cell=cell if c is None else c, sigma=s, accuracy=1e-13,
                     alpha=None if cell is None else 0.8)["energy"]

    r = ewald(pos, q, cell=cell, sigma=s, accuracy=1e-13, alpha=None if cell is None else 0.8)
    np.testing.assert_allclose(r["forces"], _fd_forces(energy, pos), atol=2e-7)
    np.testing.assert_allclose(r["virial"], _fd_virial(energy, pos, cell), atol=2e-7)
    np.testing.assert_allclose(r["virial"], r["virial"].T, atol=1e-10)
    phi = np.zeros(len(q))
    for i in range(len(q)):
        qp, qm = q.copy(), q.copy()
        qp[i] += 1e-5
        qm[i] -= 1e-5
        phi[i] = (energy(pos, None, qp) - energy(pos, None, qm)) / 2e-5
    np.testing.assert_allclose(r["potential"], phi, atol=1e-7)
    assert abs(0.5 * q @ r["potential"] - r["energy"]) < 1e-10 * max(1.0, abs(r["energy"]))
    if cell is not None:
        parts = r["energy_real"] + r["energy_reciprocal"] + r["energy_self"] + r["energy_background"]
        assert abs(parts - r["energy"]) < 1e-12 and r["energy_reciprocal"] != 0.0


# ---------------------------------------------------------------- invariances, threads, inputs


@pytest.mark.parametrize("periodic", [False, True])
def test_translation_and_permutation_invariance(periodic):
    pos, q, s = random_cell_system(n=10, seed=7, sigma=True)
    cell = TRICLINIC if periodic else None
    r = ewald(pos, q, cell=cell, sigma=s)
    shifted = pos + np.array([3.7, -12.1, 0.45]) + (TRICLINIC[1] * 2 - TRICLINIC[2] if periodic else 0.0)
    t = ewald(shifted, q, cell=cell, sigma=s)
    assert abs(t["energy"] - r["energy"]) < 1e-10 * abs(r["energy"])
    np.testing.assert_allclose(t["forces"], r["forces"], atol=1e-9)
    np.testing.assert_allclose(t["potential"], r["potential"], atol=1e-9)
    perm = np.random.default_rng(0).permutation(len(q))
    p = ewald(pos[perm], q[perm], cell=cell, sigma=s[perm])
    assert abs(p["energy"] - r["energy"]) < 1e-10 * abs(r["energy"])
    np.testing.assert_allclose(p["forces"], r["forces"][perm], atol=1e-9)
    np.testing.assert_allclose(p["potential"], r["potential"][perm], atol=1e-9)
    np.testing.assert_allclose(p["virial"], r["virial"], atol=1e-9)
    if not periodic:  # rotation as well
        rot = np.linalg.qr(np.random.default_rng(1).normal(size=(3, 3)))[0]
        o = ewald(pos @ rot.T, q, sigma=s)
        assert abs(o["energy"] - r["energy"]) < 1e-10 * abs(r["energy"])
        np.testing.assert_allclose(o["forces"], r["forces"] @ rot.T, atol=1e-9)


def test_results_do_not_depend_on_thread_count():
    pos, q, s = random_cell_system(n=70, seed=8, sigma=True, cell=np.eye(3) * 9.0)
    for cell in (np.eye(3) * 9.0, None):
        a = ewald(pos, q, cell=cell, sigma=s, threads=1)
        b = ewald(pos, q, cell=cell, sigma=s, threads=2)
        assert a["energy"] == b["energy"]
        assert np.array_equal(a["forces"], b["forces"]) and np.array_equal(a["potential"], b["potential"])
        assert np.array_equal(a["virial"], b["virial"])


def test_accepts_ase_atoms_scalar_sigma_and_cell_lengths():
    from ase import Atoms

    pos, q, cell = rock_salt_conventional()
    atoms = Atoms("Na4Cl4", positions=pos, cell=cell, pbc=True)
    r = ewald(atoms, q, sigma=0.3)
    r2 = ewald(pos, q, cell=[A_NACL] * 3, sigma=np.full(8, 0.3))
    assert r["energy"] == r2["energy"]
    assert ewald(Atoms("Na4Cl4", positions=pos), q)["parameters"] is None  # no pbc: molecule


def test_bad_input_raises_clear_errors():
    pos, q, cell = rock_salt_conventional()
    bad_q = q.copy()
    bad_q[3] = np.nan
    with pytest.raises(ValueError, match="charge of atom 3 is not finite"):
        ewald(pos, bad_q, cell=cell)
    bad_q[3] = np.inf
    with pytest.raises(ValueError, match="charge of atom 3 is not finite"):
        ewald(pos, bad_q)
    s = np.full(8, 0.2)
    s[5] = -0.1
    with pytest.raises(ValueError, match="sigma of atom 5 must be >= 0"):
        ewald(pos, q, cell=cell, sigma=s)
    s[5] = np.nan
    with pytest.raises(ValueError, match="sigma of atom 5"):
        ewald(pos, q, sigma=s)
    with pytest.raises(ValueError, match="cell is singular"):
        ewald(pos, q, cell=[[5.0, 0, 0], [0, 5.0, 0], [5.0, 5.0, 0]])
    with pytest.raises(ValueError, match="cell is singular"):
        ewald(pos, q, cell=np.zeros((3, 3)), pbc=True)
    for acc in (0.0, 1e-16, 0.5, np.nan, -1e-8):
        with pytest.raises(ValueError, match="accuracy must be in"):
            ewald(pos, q, cell=cell, accuracy=acc)
    with pytest.raises(ValueError, match="accuracy must be in"):
        ewald(pos, q, accuracy=2.0)  # checked for molecules too
    for alpha in (0.0, -1.0, np.inf):
        with pytest.raises(ValueError, match="alpha must be"):
            ewald(pos, q, cell=cell, alpha=alpha)
    with pytest.raises(ValueError, match="mixed periodicity"):
        ewald(pos, q, cell=cell, pbc=[True, True, False])
    with pytest.raises(ValueError, match="needs a cell"):
        ewald(pos, q, pbc=True)
    with pytest.raises(ValueError, match="charges must have shape"):
        ewald(pos, q[:5], cell=cell)
    with pytest.raises(ValueError, match="positions must have shape"):
        ewald(pos[:, :2], q)
    with pytest.raises(ValueError, match=r"cell must have shape"):
        ewald(pos, q, cell=np.eye(2))
    bad_pos = pos.copy()
    bad_pos[2, 1] = np.nan
    with pytest.raises(ValueError, match="position of atom 2 is not finite"):
        ewald(bad_pos, q, cell=cell)
    with pytest.raises(TypeError):
        ewald(pos, q.astype(str))
    close = pos.copy()
    close[1] = close[0] + [0.05, 0, 0]
    for c in (cell, None):
        with pytest.raises(AtomsTooClose) as e:
            ewald(close, q, cell=c)
        assert {e.value.i, e.value.j} == {0, 1}
    # an atom on its own periodic image: a cell shorter than min_distance
    with pytest.raises(AtomsTooClose):
        ewald(pos[:1], q[:1], cell=np.diag([0.05, 5.0, 5.0]))
    # a huge cell at a high accuracy: bounded memory, clear message
    with pytest.raises(ValueError, match="reciprocal vectors"):
        ewald(pos, q, cell=np.eye(3) * 3000.0, alpha=1.0, accuracy=1e-12)
    # ... and a very long cell with many atoms: bounded reciprocal-space tables
    n = 1000
    long_pos = np.c_[np.arange(n) * 100.0, np.zeros((n, 2))]
    with pytest.raises(ValueError, match="reciprocal-space tables"):
        ewald(long_pos, np.tile([1.0, -1.0], n // 2), cell=np.diag([1e5, 3.0, 3.0]), alpha=0.5, accuracy=1e-10)


def test_empty_and_single_ion():
    r = ewald(np.zeros((0, 3)), np.zeros(0), cell=np.eye(3) * 5)
    assert r["energy"] == 0.0 and r["forces"].shape == (0, 3)
    # one ion in a cubic cell with background: k_e q^2 * (-2.837297479...) / (2 L) (Wigner
    # lattice: simple cubic Madelung constant of the jellium-neutralised lattice)
    r1 = ewald(np.zeros((1, 3)), np.ones(1), cell=np.eye(3) * 4.0, accuracy=1e-12)
    assert abs(r1["energy"] - COULOMB * -2.837297479480619 / (2 * 4.0)) < 1e-10
