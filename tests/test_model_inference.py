"""Model file round trip, C++ inference vs a NumPy reference, finite differences, ASE, bad files."""
import subprocess
import sys

import numpy as np
import pytest
from ase import Atoms

import atomforge
from atomforge import BPNNParameters, ModelFileError, SymmetryFunctions, load, read_model, save_model
from atomforge.model_file import FORMAT_VERSION, read_records, write_records

from structures import STRUCTURES


def random_model(seed=0, committee=1, acts=("tanh", "silu", "linear"), angular="G4", hidden=(7, 5)):
    rng = np.random.default_rng(seed)
    sf = SymmetryFunctions.standard(["H", "C", "O"], r_c=4.5, n_radial=5, n_angular=2, angular=angular,
                                    n_theta_s=4, angular_grid="shifted" if angular == "G5s" else "centered",
                                    n_angular_radial=2 if angular == "G5s" else 1)
    d = sf.to_dict()
    species = [1, 6, 8]
    scaling, activations = [], []
    nets = [[] for _ in range(committee)]
    for k, s in enumerate(d["elements"]):
        nf = len(d["functions"][s])
        scaling.append({"shift": rng.normal(size=nf), "scale": rng.uniform(0.5, 2, size=nf), "offset": 0.1})
        activations.append(list(acts))
        for m in range(committee):
            widths = [nf, *hidden, 1]
            nets[m].append([(rng.normal(size=(widths[l + 1], widths[l])) / np.sqrt(widths[l]),
                             rng.normal(size=widths[l + 1]) * 0.1) for l in range(3)])
    return BPNNParameters(species, d, scaling, nets, activations, np.array([-13.6, -1030.0, -2040.0]),
                          energy_scale=0.7, metadata={"description": "random test model"})


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    p = tmp_path_factory.mktemp("m") / "random.afm"
    save_model(p, random_model(committee=3))
    return p


def test_roundtrip_python(model_path):
    p = read_model(model_path)
    ref = random_model(committee=3)
    assert p.species == ref.species and p.descriptor == ref.descriptor
    for a, b in zip(p.networks[2][1], ref.networks[2][1]):
        np.testing.assert_array_equal(a[0], b[0])
    assert p.metadata["description"] == "random test model"
    assert p.metadata["atomforge_version"] == atomforge.__version__


@pytest.fixture(scope="module")
def model_path_g5s(tmp_path_factory):
    p = tmp_path_factory.mktemp("m") / "random_g5s.afm"
    save_model(p, random_model(seed=1, committee=3, angular="G5s"))
    return p


@pytest.mark.parametrize("angular", ["G4", "G5s"])
@pytest.mark.parametrize("name", list(STRUCTURES))
def test_cpp_matches_numpy_reference(model_path, model_path_g5s, name, angular):
    """The core's fused pass (descriptor, networks, dE/dG, VJP from the triplet cache) against
    the descriptor's own values and VJP with NumPy networks; G5s (ANI angle shifts) included."""
    if angular == "G5s":
        model_path = model_path_g5s
    pos, num, cell, pbc = STRUCTURES[name]()
    pot = load(model_path)
    r = pot.compute(pos, num, cell, pbc)
    params = read_model(model_path)
    sf = SymmetryFunctions.from_dict(params.descriptor)
    G = sf.compute(pos, num, cell, pbc)
    idx = sf.species_indices(num)
    E_at, dEdG = params.atomic_energies_numpy(G, idx)
    np.testing.assert_allclose(r.atomic_energies, E_at, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(r.energy, E_at.sum(), rtol=1e-12)
    v = sf.vjp(dEdG, pos, num, cell, pbc)
    np.testing.assert_allclose(r.forces, v.forces, rtol=1e-10, atol=1e-11)
    np.testing.assert_allclose(r.virial, v.virial, rtol=1e-10, atol=1e-10)
    # committee: energies of each member, mean and spread
    members = [params.atomic_energies_numpy(G, idx, member=m)[0].sum() for m in range(3)]
    np.testing.assert_allclose(r.committee_energies, members, rtol=1e-12)
    assert r.energy_uncertainty == pytest.approx(np.std(members), rel=1e-10)


def crowded_cell(seed=4):
    """40 atoms (23 H, 9 C, 8 O, shuffled) in a 7.5 A cubic cell: full blocks of 8 and remainders."""
    from structures import random_positions

    rng = np.random.default_rng(seed)
    cell = np.eye(3) * 7.5
    num = rng.permutation([1] * 23 + [6] * 9 + [8] * 8)
    return random_positions(rng, 40, cell, min_dist=1.0), num, cell, [True, True, True]


@pytest.mark.parametrize("name", ["molecule", "skewed_triclinic", "crowded_cell"])
def test_wide_networks_run_in_blocks_of_centres_with_the_same_results(model_path, tmp_path, name):
    """Networks whose weights outgrow L1 are evaluated over blocks of 8 centres of one element
    (the fused pass keeps one workspace per centre of the block): the results equal the NumPy
    reference, do not depend on the thread count (bitwise), and the forces of the committee mean
    equal the mean of the members' forces (the one-centre path of the uncertainty request)."""
    wide = tmp_path / "wide.afm"
    save_model(wide, random_model(seed=3, committee=3, hidden=(96, 80)))
    pot, narrow = load(wide), load(model_path)
    assert dict(pot.describe())["centre_blocks"].startswith("8 centres")
    assert dict(narrow.describe())["centre_blocks"].startswith("1 ")
    pos, num, cell, pbc = crowded_cell() if name == "crowded_cell" else STRUCTURES[name]()
    r1 = pot.compute(pos, num, cell, pbc, threads=1)
    r2 = pot.compute(pos, num, cell, pbc, threads=2)
    np.testing.assert_array_equal(r1.forces, r2.forces)
    np.testing.assert_array_equal(r1.atomic_energies, r2.atomic_energies)
    params = read_model(wide)
    sf = SymmetryFunctions.from_dict(params.descriptor)
    G = sf.compute(pos, num, cell, pbc)
    E_at, dEdG = params.atomic_energies_numpy(G, sf.species_indices(num))
    np.testing.assert_allclose(r1.atomic_energies, E_at, rtol=1e-12, atol=1e-12)
    v = sf.vjp(dEdG, pos, num, cell, pbc)
    np.testing.assert_allclose(r1.forces, v.forces, rtol=1e-10, atol=1e-11)
    np.testing.assert_allclose(r1.virial, v.virial, rtol=1e-10, atol=1e-10)
    ru = pot.compute(pos, num, cell, pbc, uncertainty=True)
    np.testing.assert_allclose(ru.member_forces.mean(axis=0), r1.forces, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", ["molecule", "skewed_triclinic"])
def test_forces_and_virial_finite_difference(model_path, name):
    pos, num, cell, pbc = STRUCTURES[name]()
    pot = load(model_path)
    r = pot.compute(pos, num, cell, pbc)
    h = 1e-5
    F = np.zeros_like(pos)
    for a in range(len(pos)):
        for k in range(3):
            p, m = pos.copy(), pos.copy()
            p[a, k] += h
            m[a, k] -= h
            F[a, k] = -(pot.compute(p, num, cell, pbc).energy - pot.compute(m, num, cell, pbc).energy) / (2 * h)
    # total energies are ~-3000 eV: round-off in E(+h) - E(-h) is ~1e-7 eV/A at h = 1e-5
    np.testing.assert_allclose(r.forces, F, rtol=1e-5, atol=1e-5 * np.abs(F).max())
    if cell is not None:
        W = np.zeros((3, 3))
        for a in range(3):
            for b in range(3):
                e = np.zeros((3, 3)); e[a, b] = h
                Ep = pot.compute(pos @ (np.eye(3) + e), num, cell @ (np.eye(3) + e), pbc).energy
                Em = pot.compute(pos @ (np.eye(3) - e), num, cell @ (np.eye(3) - e), pbc).energy
                W[a, b] = -(Ep - Em) / (2 * h)
        np.testing.assert_allclose(r.virial, W, rtol=1e-5, atol=1e-5 * np.abs(W).max())


def test_ase_calculator_energy_forces_stress(model_path):
    from atomforge.ase import AtomForgeCalculator

    pos, num, cell, pbc = STRUCTURES["skewed_triclinic"]()
    atoms = Atoms(numbers=num, positions=pos, cell=cell, pbc=pbc)
    atoms.calc = AtomForgeCalculator(model_path)
    r = load(model_path).compute(atoms)
    assert atoms.get_potential_energy() == pytest.approx(r.energy, rel=1e-14)
    np.testing.assert_allclose(atoms.get_forces(), r.forces, atol=1e-14)
    from ase.calculators.fd import calculate_numerical_stress
    num_stress = calculate_numerical_stress(atoms, eps=1e-5, voigt=True)
    np.testing.assert_allclose(atoms.get_stress(), num_stress, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(atoms.get_potential_energies().sum(), r.energy, rtol=1e-12)
    mol = Atoms(numbers=num, positions=pos)  # no cell: no stress, energy still fine
    mol.calc = AtomForgeCalculator(model_path)
    assert np.isfinite(mol.get_potential_energy())


def test_load_from_bytes_and_per_atom_virial(model_path):
    pot = load(model_path.read_bytes())
    pos, num, cell, pbc = STRUCTURES["small_periodic"]()
    r = pot.compute(pos, num, cell, pbc, per_atom_virial=True)
    np.testing.assert_allclose(r.per_atom_virial.sum(axis=0), r.virial, atol=1e-10)
    assert "bpnn" in repr(pot)


def test_reader_works_without_compiled_extension(model_path):
    code = ("import sys; sys.modules['atomforge._core'] = None\n"
            "import atomforge\n"
            f"p = atomforge.read_model({str(model_path)!r})\n"
            "assert atomforge._core is None and p.committee_size == 3\n"
            "try:\n    atomforge.load\nexcept ImportError as e:\n    print('ok', e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("ok") and "compiled core" in out.stdout


# ------------------------------------------------------------------------------ bad files


def test_missing_file(tmp_path):
    with pytest.raises(ModelFileError, match="cannot open|cannot read"):
        load(tmp_path / "nope.afm")
    with pytest.raises(ModelFileError, match="cannot read"):
        read_model(tmp_path / "nope.afm")


@pytest.mark.parametrize("cut", [10, 100, -1])
def test_truncated_file(model_path, tmp_path, cut):
    data = model_path.read_bytes()
    bad = tmp_path / "t.afm"
    bad.write_bytes(data[:cut])
    for reader in (load, read_model):
        with pytest.raises(ModelFileError, match="bad magic|truncated|corrupted"):
            reader(bad)


def test_corrupted_byte(model_path, tmp_path):
    data = bytearray(model_path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    bad = tmp_path / "c.afm"
    bad.write_bytes(bytes(data))
    for reader in (load, read_model):
        with pytest.raises(ModelFileError, match="corrupted"):
            reader(bad)


def test_newer_version_is_rejected(model_path, tmp_path):
    import struct
    import zlib

    data = bytearray(model_path.read_bytes()[:-4])
    data[8:12] = struct.pack("<I", FORMAT_VERSION + 1)
    data += struct.pack("<I", zlib.crc32(bytes(data)))
    bad = tmp_path / "v.afm"
    bad.write_bytes(bytes(data))
    for reader in (load, read_model):
        with pytest.raises(ModelFileError, match="newer than this atomforge"):
            reader(bad)


def test_not_a_model_file(tmp_path):
    bad = tmp_path / "x.afm"
    bad.write_text("hello, this is not a model")
    for reader in (load, read_model):
        with pytest.raises(ModelFileError, match="not an atomforge model file"):
            reader(bad)


@pytest.mark.parametrize("drop", ["energy.reference", "network.0.1.2.weight", "scaling.2.shift", "species"])
def test_missing_record(model_path, tmp_path, drop):
    _, rec = read_records(model_path)
    del rec[drop]
    bad = tmp_path / "r.afm"
    write_records(bad, rec)
    for reader in (load, read_model):
        with pytest.raises(ModelFileError, match="missing record"):
            reader(bad)


def test_inconsistent_shapes(model_path, tmp_path):
    _, rec = read_records(model_path)
    rec["network.0.1.1.weight"] = rec["network.0.1.1.weight"][:, :-1]
    bad = tmp_path / "s.afm"
    write_records(bad, rec)
    for reader in (load, read_model):
        with pytest.raises(ModelFileError, match="do not fit"):
            reader(bad)


def test_unknown_element_at_inference(model_path):
    pot = load(model_path)
    with pytest.raises(ValueError, match="atom 1 is N, which this model does not cover"):
        pot.compute(np.array([[0, 0, 0], [1.1, 0, 0.0]]), [6, 7])


def test_writer_rejects_inconsistent_parameters(tmp_path):
    p = random_model()
    p.activations[0][0] = "relu6"
    with pytest.raises(ModelFileError, match="unknown activation"):
        save_model(tmp_path / "a.afm", p)
    assert not list(tmp_path.iterdir())  # nothing half-written


@pytest.mark.parametrize("act", ["tanh", "sigmoid", "softplus", "silu", "gaussian", "linear"])
@pytest.mark.parametrize("weight_scale", [1.0, 300.0])
def test_every_activation_matches_numpy(tmp_path, act, weight_scale):
    """The core's vectorised activations (exp/expm1 of simd_math.hpp, not libm) against NumPy's for
    every activation, energies and forces; weight_scale 300 drives the first layer's pre-activations
    beyond |z| = 100 (checked), where tanh, sigmoid and SiLU saturate and NumPy's exp(-z) overflows:
    the core's values stay finite and equal to NumPy's."""
    params = random_model(seed=3, acts=(act, act, "linear"))
    for nets in params.networks:
        for layers in nets:
            layers[0] = (layers[0][0] * weight_scale, layers[0][1])
    path = tmp_path / f"{act}.afm"
    save_model(path, params)
    pos, num, cell, pbc = STRUCTURES["skewed_triclinic"]()
    r = load(path).compute(pos, num, cell, pbc)
    sf = SymmetryFunctions.from_dict(params.descriptor)
    G = sf.compute(pos, num, cell, pbc)
    with np.errstate(over="ignore"):  # NumPy's exp(-z) overflows to inf for z << 0, as intended
        E_at, dEdG = params.atomic_energies_numpy(G, sf.species_indices(num))
    assert np.all(np.isfinite(r.forces)) and np.isfinite(r.energy)
    idx = sf.species_indices(num)
    z1 = [((G[idx == k] - params.scaling[k]["shift"]) * params.scaling[k]["scale"] + params.scaling[k]["offset"])
          @ params.networks[0][k][0][0].T + params.networks[0][k][0][1] for k in range(3)]
    assert max(np.abs(z).max() for z in z1 if z.size) > (100.0 if weight_scale > 1 else 0.0)
    np.testing.assert_allclose(r.atomic_energies, E_at, rtol=1e-12, atol=1e-12)
    v = sf.vjp(dEdG, pos, num, cell, pbc)
    scale = max(1.0, np.abs(v.forces).max())
    np.testing.assert_allclose(r.forces, v.forces, rtol=1e-10, atol=1e-11 * scale)
