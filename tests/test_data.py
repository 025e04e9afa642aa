"""atomforge.data: Dataset, readers (rMD17, sGDML, DeePMD, n2p2, ASE), splits and downloads.

Real data: $ATOMFORGE_DATA (see tests/conftest.py): rmd17/, deepmd_water/, n2p2_h2o_rpbe_d3/ with
their READMEs. Synthetic files are written only into tmp_path. No network: downloads are
exercised with file:// URLs.
"""
import hashlib
import json
import os
import shutil

import numpy as np
import pytest

import atomforge.units as af_units  # the core's one table of constants (CODATA 2018)
from ase import Atoms, units
from ase.calculators.singlepoint import SinglePointCalculator
from ase.io import write

from atomforge.data import (PUBLIC_DATASETS, Dataset, detect_format, fetch, fetch_public, load_dataset,
                            load_split, save_split, split_indices)
from atomforge.data import splits as splits_mod
from atomforge.data.readers import KCAL_PER_MOL, read_deepmd, unit_factor
from atomforge.io import read_input_data

# Hand-computed conversion factors (CODATA via ASE): 1 kcal/mol = 4184 J / N_A / e = 0.0433641 eV.
KCAL_MOL_EV = 0.0433641
HARTREE_EV = 27.211386
BOHR_A = 0.529177


# ---------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def ethanol_path(data_dir):
    p = data_dir / "rmd17" / "rmd17_ethanol_train_01.npz"
    if not p.is_file():
        pytest.skip(f"{p} not found")
    return p


@pytest.fixture(scope="module")
def ethanol(ethanol_path):
    return load_dataset(ethanol_path)


@pytest.fixture(scope="module")
def water_deepmd(data_dir):
    p = data_dir / "deepmd_water" / "energy_force" / "data_1"
    if not (p / "type.raw").is_file():
        pytest.skip(f"{p} not found")
    return p


@pytest.fixture(scope="module")
def n2p2_water(data_dir):
    p = data_dir / "n2p2_h2o_rpbe_d3" / "input.data.H2O_RPBE-D3"
    if not p.is_file():
        pytest.skip(f"{p} not found")
    return p


def small_dataset(**kw):
    """Two periodic water-like frames (3 and 2 atoms) with every label."""
    rng = np.random.default_rng(1)
    args = dict(
        numbers=[np.array([8, 1, 1]), np.array([1, 1])],
        positions=[rng.random((3, 3)) * 3, rng.random((2, 3)) * 3],
        cells=np.stack([np.eye(3) * 5.0, np.diag([4.0, 5.0, 6.0])]),
        pbc=True,
        energy=np.array([-14.5, -6.25]),
        forces=[rng.normal(size=(3, 3)), rng.normal(size=(2, 3))],
        virial=np.stack([np.diag([1.0, 2.0, 3.0]), np.full((3, 3), 0.5)]),
        dipole=np.array([[0.1, 0.2, 0.3], [0.0, 0.0, -1.0]]),
        charges=[np.array([-0.8, 0.4, 0.4]), np.array([0.5, -0.5])],
        name="small", source="synthetic")
    args.update(kw)
    return Dataset(**args)


# ---------------------------------------------------------------------------------- units
def test_unit_factors_match_hand_values():
    assert KCAL_PER_MOL == pytest.approx(KCAL_MOL_EV, rel=1e-5)
    # CODATA 2018 (exact e and N_A), the same number the engines use (one table in the core)
    assert KCAL_PER_MOL == pytest.approx(4184 / (6.02214076e23 * 1.602176634e-19), rel=1e-15)
    from atomforge.units import engine_units
    assert engine_units("real")["energy_in_ev"] == pytest.approx(KCAL_PER_MOL, rel=1e-15)
    assert engine_units("openmm")["energy_in_ev"] == pytest.approx(1000 / (6.02214076e23 * 1.602176634e-19),
                                                                   rel=1e-15)
    assert engine_units("openmm")["length_in_angstrom"] == 10.0
    assert unit_factor("Ha", "energy") == pytest.approx(27.211386245988, rel=1e-15)
    assert unit_factor("bohr", "length") == pytest.approx(0.529177210903, rel=1e-15)
    assert unit_factor("kcal/mol", "energy") == pytest.approx(KCAL_MOL_EV, rel=1e-5)
    assert unit_factor("Ha", "energy") == pytest.approx(HARTREE_EV, rel=1e-7)
    assert unit_factor("bohr", "length") == pytest.approx(BOHR_A, rel=1e-6)
    assert unit_factor("Ang", "length") == 1.0
    assert unit_factor("eV", "energy") == 1.0
    assert unit_factor(2.5, "length") == 2.5
    for bad in ("furlong", -1.0, 0, float("nan"), True):
        with pytest.raises(ValueError, match="length_unit"):
            unit_factor(bad, "length", "length_unit")


# ---------------------------------------------------------------------------------- rMD17
def test_rmd17_ethanol_real_data(ethanol, ethanol_path):
    raw = np.load(ethanol_path)
    assert detect_format(ethanol_path) == "rmd17"
    assert len(ethanol) == 1000
    assert np.all(ethanol.n_atoms == 9)
    assert ethanol.same_composition
    assert ethanol.numbers[0].tolist() == [6, 6, 8, 1, 1, 1, 1, 1, 1]
    assert ethanol.numbers[0].dtype == np.int64
    assert ethanol.elements.tolist() == [1, 6, 8]
    assert ethanol.name == "rmd17_ethanol_train_01" and ethanol.source == str(ethanol_path)
    # energies[0] = -97079.92222178938 kcal/mol (README: ethanol ~ -97 070 kcal/mol) -> eV by hand
    assert raw["energies"][0] == pytest.approx(-97079.92222178938, abs=1e-8)
    assert ethanol.energy[0] == pytest.approx(-97079.92222178938 * KCAL_MOL_EV, rel=1e-5)
    assert ethanol.energy[0] == pytest.approx(-4209.78, abs=0.01)
    np.testing.assert_allclose(ethanol.energy, raw["energies"] * af_units.KCAL_PER_MOL, rtol=1e-14)
    np.testing.assert_allclose(ethanol.forces[7], raw["forces"][7] * KCAL_MOL_EV, rtol=1e-5)
    np.testing.assert_array_equal(ethanol.positions[5], raw["coords"][5])
    assert ethanol.energy.dtype == np.float64 and ethanol.forces[0].dtype == np.float64
    assert ethanol.cells.shape == (1000, 3, 3) and not ethanol.cells.any()
    assert ethanol.pbc.shape == (1000, 3) and not ethanol.pbc.any()
    assert ethanol.virial is None and ethanol.dipole is None and ethanol.charges is None
    np.testing.assert_array_equal(ethanol.metadata["old_indices"], raw["old_indices"])


def test_rmd17_old_labels_and_unit_override(ethanol_path):
    raw = np.load(ethanol_path)
    old = load_dataset(ethanol_path, energy_key="old_energies", forces_key="old_forces")
    np.testing.assert_allclose(old.energy, raw["old_energies"] * KCAL_MOL_EV, rtol=1e-5)
    np.testing.assert_allclose(old.forces[3], raw["old_forces"][3] * KCAL_MOL_EV, rtol=1e-5)
    as_ev = load_dataset(ethanol_path, "rmd17", energy_unit="ev")
    np.testing.assert_array_equal(as_ev.energy, raw["energies"])
    np.testing.assert_array_equal(as_ev.forces[0], raw["forces"][0])


# ---------------------------------------------------------------------------------- DeePMD
def test_deepmd_water_two_sets(water_deepmd):
    ds = load_dataset(water_deepmd)
    assert detect_format(water_deepmd) == "deepmd"
    assert len(ds) == 160 and np.all(ds.n_atoms == 192)
    z = ds.numbers[0]
    assert np.count_nonzero(z == 8) == 64 and np.count_nonzero(z == 1) == 128
    types = np.loadtxt(water_deepmd / "type.raw", dtype=int)
    np.testing.assert_array_equal(z, np.where(types == 0, 8, 1))  # type_map.raw = O H
    np.testing.assert_allclose(ds.cells[0], np.eye(3) * 12.4447, atol=1e-4)
    np.testing.assert_allclose(ds.cells, np.broadcast_to(ds.cells[0], ds.cells.shape))
    assert ds.pbc.all()
    for k, s in ((0, "set.000"), (80, "set.001")):  # set.000 then set.001, in order
        e = np.load(water_deepmd / s / "energy.npy")
        f = np.load(water_deepmd / s / "force.npy")
        r = np.load(water_deepmd / s / "coord.npy")
        assert ds.energy[k] == np.float64(e[0])
        np.testing.assert_array_equal(ds.forces[k], f[0].reshape(192, 3).astype(np.float64))
        np.testing.assert_array_equal(ds.positions[k + 1], r[1].reshape(192, 3).astype(np.float64))
    assert ds.energy[0] / 64 == pytest.approx(-467.87, abs=0.5)  # README: ~ -467.87 eV per H2O
    assert ds.virial is None and ds.metadata["sets"] == ["set.000", "set.001"]


def test_deepmd_folder_of_systems_and_nopbc(data_dir):
    root = data_dir / "deepmd_water"
    if not (root / "energy_force").is_dir():
        pytest.skip("deepmd_water not found")
    ds = load_dataset(root / "energy_force")  # data_0..data_3: 80 + 160 + 80 + 80
    assert len(ds) == 400
    glob = load_dataset(root / "dipole_train" / "global_system")
    assert len(glob) == 80 and not glob.pbc.any() and glob.energy is None and glob.dipole is None
    dplr = load_dataset(root / "dplr_wannier")
    raw_v = np.load(root / "dplr_wannier" / "set.000" / "virial.npy")
    np.testing.assert_array_equal(dplr.virial[2], raw_v[2].reshape(3, 3).astype(np.float64))


def _write_deepmd(root, nf=2, fmt="npy", nopbc=False, type_map=True):
    root.mkdir()
    (root / "type.raw").write_text("0\n1\n1\n")
    if type_map:
        (root / "type_map.raw").write_text("O\nH\n")
    if nopbc:
        (root / "nopbc").write_text("")
    coord = np.arange(nf * 9, dtype=np.float64).reshape(nf, 9) / 10
    arrays = dict(coord=coord, box=np.tile(np.eye(3).ravel() * 10, (nf, 1)), energy=np.array([-1.0, -2.0][:nf]),
                  force=np.ones((nf, 9)), virial=np.tile(np.arange(9.0), (nf, 1)))
    if fmt == "npy":
        (root / "set.000").mkdir()
        for k, v in arrays.items():
            np.save(root / "set.000" / f"{k}.npy", v.astype(np.float32))
    else:
        for k, v in arrays.items():
            np.savetxt(root / f"{k}.raw", v.reshape(nf, -1))
    return arrays


@pytest.mark.parametrize("fmt", ["npy", "raw"])
def test_deepmd_synthetic_units(tmp_path, fmt):
    arrays = _write_deepmd(tmp_path / "sys", fmt=fmt)
    ds = load_dataset(tmp_path / "sys", length_unit="bohr", energy_unit="ha")
    assert len(ds) == 2 and ds.numbers[0].tolist() == [8, 1, 1]
    np.testing.assert_allclose(ds.positions[1], arrays["coord"][1].reshape(3, 3) * BOHR_A, rtol=1e-6)
    np.testing.assert_allclose(ds.cells[0], np.eye(3) * 10 * BOHR_A, rtol=1e-6)
    np.testing.assert_allclose(ds.energy, [-HARTREE_EV, -2 * HARTREE_EV], rtol=1e-7)
    np.testing.assert_allclose(ds.forces[0], np.full((3, 3), HARTREE_EV / BOHR_A), rtol=1e-6)
    np.testing.assert_allclose(ds.virial[1], np.arange(9.0).reshape(3, 3) * HARTREE_EV, rtol=1e-7)


def test_deepmd_errors(tmp_path):
    _write_deepmd(tmp_path / "notm", type_map=False)
    with pytest.raises(ValueError, match="no type_map.raw"):
        load_dataset(tmp_path / "notm")
    assert read_deepmd(tmp_path / "notm", type_map=["O", "H"]).numbers[0].tolist() == [8, 1, 1]
    with pytest.raises(ValueError, match="type 1 has no symbol"):
        read_deepmd(tmp_path / "notm", type_map=["O"])
    with pytest.raises(ValueError, match="type 1: unknown element 'Xx'"):
        read_deepmd(tmp_path / "notm", type_map=["O", "Xx"])
    _write_deepmd(tmp_path / "badf")
    np.save(tmp_path / "badf" / "set.000" / "force.npy", np.ones((2, 6), dtype=np.float32))
    with pytest.raises(ValueError, match=r"force\.npy: shape \(2, 6\), expected \(2, 9\)"):
        load_dataset(tmp_path / "badf")
    _write_deepmd(tmp_path / "nan")
    f = np.ones((2, 9), dtype=np.float32)
    f[1, 4] = np.nan
    np.save(tmp_path / "nan" / "set.000" / "force.npy", f)
    with pytest.raises(ValueError, match=r"set\.000: frame 1: forces of atom 1 is not finite"):
        load_dataset(tmp_path / "nan")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="not a DeePMD system"):
        load_dataset(tmp_path / "empty")


# ---------------------------------------------------------------------------------- n2p2
def test_n2p2_water_bohr_hartree(n2p2_water):
    ds = load_dataset(n2p2_water, length_unit="bohr", energy_unit="ha")
    assert detect_format(n2p2_water) == "n2p2"
    assert len(ds) == 20
    counts = np.bincount(ds.n_atoms)
    assert counts[192] == 7 and counts[48] == 11 and counts[96] == 2
    assert ds.pbc.all() and ds.elements.tolist() == [1, 8]
    # first frame, by hand from the file: "energy -4900.37328433" and the first atom line
    # "atom 3.735290838 2.327841157 3.501304856 O -0.226389360 0.0 -0.006530137 -0.002852459 -0.027992554"
    assert ds.energy[0] == pytest.approx(-4900.37328433 * HARTREE_EV, rel=1e-7)
    np.testing.assert_allclose(ds.positions[0][0], np.array([3.735290838, 2.327841157, 3.501304856]) * BOHR_A,
                               rtol=1e-6)
    np.testing.assert_allclose(ds.forces[0][0], np.array([-0.006530137, -0.002852459, -0.027992554])
                               * HARTREE_EV / BOHR_A, rtol=1e-6)
    assert ds.numbers[0][0] == 8 and ds.charges[0][0] == pytest.approx(-0.226389360)
    np.testing.assert_allclose(ds.cells[0], np.eye(3) * 24.623508 * BOHR_A, rtol=1e-6)
    # identical to the existing reader
    frames = read_input_data(n2p2_water, length_unit="bohr", energy_unit="ha")
    assert ds.energy[19] == frames[19].info["energy"]
    np.testing.assert_array_equal(ds.forces[19], frames[19].arrays["forces"])
    # Angstrom / eV on request: the file's numbers as they are
    plain = load_dataset(n2p2_water, length_unit="angstrom", energy_unit="ev", check=False)
    assert plain.energy[0] == pytest.approx(-4900.37328433)
    # no units: refused, naming the file (issue 16: the format does not define units)
    with pytest.raises(ValueError, match=r"input\.data\.H2O_RPBE-D3: a RuNNer/n2p2 input\.data file does not state"):
        load_dataset(n2p2_water)
    with pytest.raises(ValueError, match="energy_key"):
        load_dataset(n2p2_water, length_unit="bohr", energy_unit="ha", energy_key="energy")


def test_n2p2_detected_by_content(tmp_path):
    p = tmp_path / "frames.txt"
    p.write_text("# two atoms\n begin\ncomment x\natom 0 0 0 H 0.1 0 1 2 3\natom 0 0 1.5 H -0.1 0 0 0 0\n"
                 "energy -1.5\ncharge 0\nend\n")
    assert detect_format(p) == "n2p2"
    ds = load_dataset(p, length_unit="angstrom", energy_unit="ha")
    assert ds.energy[0] == pytest.approx(-1.5 * HARTREE_EV, rel=1e-7)
    np.testing.assert_allclose(ds.forces[0][0], np.array([1, 2, 3]) * HARTREE_EV, rtol=1e-7)
    assert not ds.pbc.any()


# ---------------------------------------------------------------------------------- sGDML
def _sgdml(path, **extra):
    R = np.array([[[0.0, 0, 0], [0.0, 0, 1.0]], [[0.0, 0, 0], [0.0, 0, 1.1]]])
    data = dict(R=R, z=np.array([1, 1], dtype=np.uint8), E=np.array([[-100.0], [-99.0]]),
                F=np.full((2, 2, 3), 23.0605), name=np.array("H2 test"))
    data.update(extra)
    np.savez(path, **data)
    return path


def test_sgdml_kcal_mol_to_ev(tmp_path):
    p = _sgdml(tmp_path / "h2.npz", e_unit=np.array("kcal/mol"), r_unit=np.array("Ang"))
    assert detect_format(p) == "sgdml"
    ds = load_dataset(p)
    assert ds.name == "H2 test" and len(ds) == 2 and ds.energy.shape == (2,)
    np.testing.assert_allclose(ds.energy, [-4.33641, -4.29305], atol=2e-5)  # -100, -99 kcal/mol by hand
    np.testing.assert_allclose(ds.forces[1], np.ones((2, 3)), atol=2e-5)  # 23.0605 kcal/mol/A = 1 eV/A
    assert ds.positions[1][1, 2] == 1.1
    # no unit strings: kcal/mol and Angstrom by default
    np.testing.assert_allclose(load_dataset(_sgdml(tmp_path / "nounits.npz")).energy, ds.energy, rtol=1e-15)


def test_sgdml_units_from_file_and_override(tmp_path):
    p = _sgdml(tmp_path / "au.npz", e_unit=np.array("Ha"), r_unit=np.array("bohr"),
               E=np.array([1.0, 2.0]), F=np.ones((2, 2, 3)), lattice=np.eye(3) * 10)
    ds = load_dataset(p)
    np.testing.assert_allclose(ds.energy, [HARTREE_EV, 2 * HARTREE_EV], rtol=1e-7)
    np.testing.assert_allclose(ds.positions[0][1], [0, 0, BOHR_A], rtol=1e-6)
    np.testing.assert_allclose(ds.forces[0], np.full((2, 3), 51.42208), rtol=1e-6)  # Ha/bohr in eV/A
    np.testing.assert_allclose(ds.cells[0], np.eye(3) * 10 * BOHR_A, rtol=1e-6)
    assert ds.pbc.all()
    ev = load_dataset(_sgdml(tmp_path / "ev.npz", e_unit=np.array("eV"), r_unit=np.array("Ang")))
    np.testing.assert_array_equal(ev.energy, [-100.0, -99.0])
    over = load_dataset(p, energy_unit="ev", length_unit="angstrom")  # arguments win over the file
    np.testing.assert_array_equal(over.energy, [1.0, 2.0])
    bad = _sgdml(tmp_path / "bad.npz", e_unit=np.array("erg"))
    with pytest.raises(ValueError, match=r"bad\.npz: e_unit: unknown energy unit 'erg'"):
        load_dataset(bad)


# ---------------------------------------------------------------------------------- ASE
def test_extxyz_round_trip(tmp_path):
    ds = small_dataset()
    images = [ds.to_atoms(i) for i in range(len(ds))]
    assert images[0].get_potential_energy() == -14.5
    np.testing.assert_array_equal(images[1].get_forces(), ds.forces[1])
    p = tmp_path / "frames.extxyz"
    write(p, images, format="extxyz")
    assert detect_format(p) == "ase"
    with pytest.raises(ValueError, match=r"frames\.extxyz: an extended XYZ file without length_unit="):
        load_dataset(p)  # no units in the file and none given: not guessed
    back = load_dataset(p, length_unit="angstrom", energy_unit="ev")
    assert back.metadata["units_from"] == "user"
    assert len(back) == 2 and back.n_atoms.tolist() == [3, 2]
    np.testing.assert_allclose(back.energy, ds.energy, rtol=1e-12)
    for i in range(2):  # extxyz writes per-atom values with 8 decimals
        np.testing.assert_allclose(back.forces[i], ds.forces[i], rtol=0, atol=1e-8)
        np.testing.assert_allclose(back.positions[i], ds.positions[i], rtol=0, atol=1e-8)
        np.testing.assert_array_equal(back.numbers[i], ds.numbers[i])
    np.testing.assert_allclose(back.cells, ds.cells)
    np.testing.assert_allclose(back.virial, ds.virial, rtol=1e-10, atol=1e-12)  # via stress = -W / V
    assert back.pbc.all()


def test_extxyz_custom_keys_and_mixed_labels(tmp_path):
    a = Atoms("H2", positions=[[0, 0, 0], [0, 0, 0.74]])
    a.info["REF_energy"] = -31.5
    a.arrays["REF_forces"] = np.array([[0, 0, 1.0], [0, 0, -1.0]])
    p = tmp_path / "ref.xyz"
    write(p, [a, a.copy()], format="extxyz")
    ds = load_dataset(p, energy_key="REF_energy", forces_key="REF_forces", length_unit="A", energy_unit="eV")
    np.testing.assert_array_equal(ds.energy, [-31.5, -31.5])
    np.testing.assert_array_equal(ds.forces[1], a.arrays["REF_forces"])
    plain = load_dataset(p, length_unit="A", energy_unit="eV")
    assert plain.energy is None and plain.forces is None
    b = a.copy()
    b.calc = SinglePointCalculator(b, energy=-1.0)
    with pytest.raises(ValueError, match="frame 0: no energy"):
        Dataset.from_atoms([a, b])


def test_from_atoms_to_atoms_round_trip_keeps_hash():
    ds = small_dataset()
    again = Dataset.from_atoms([ds.to_atoms(i) for i in range(len(ds))])
    assert again.sha256() == ds.sha256()
    np.testing.assert_array_equal(again.charges[0], ds.charges[0])
    np.testing.assert_array_equal(again.dipole, ds.dipole)


# ---------------------------------------------------------------------------------- Dataset API
def test_dataset_basics_subset_concatenate():
    ds = small_dataset()
    assert len(ds) == 2 and ds.n_atoms.tolist() == [3, 2] and ds.elements.tolist() == [1, 8]
    assert not ds.same_composition
    sub = ds.subset([1])
    assert len(sub) == 1 and sub.numbers[0].tolist() == [1, 1] and sub.energy.tolist() == [-6.25]
    assert sub.same_composition
    assert ds.subset(np.array([True, False])).energy.tolist() == [-14.5]
    assert ds.subset([-1, 0]).n_atoms.tolist() == [2, 3]
    assert len(ds.subset([])) == 0
    with pytest.raises(IndexError, match="frame index 2"):
        ds.subset([2])
    cat = Dataset.concatenate([ds, sub, ds])
    assert len(cat) == 5 and cat.energy.tolist() == [-14.5, -6.25, -6.25, -14.5, -6.25]
    assert cat.subset([0, 1]).sha256() == ds.sha256()
    no_e = small_dataset(energy=None)
    with pytest.raises(ValueError, match="energy is present in dataset 0 .* missing in dataset 1"):
        Dataset.concatenate([ds, no_e])
    # symbols and one shared numbers list; stacked arrays
    mol = Dataset(["O", "H", "H"], np.zeros((4, 3, 3)) + np.arange(3)[None, :, None], energy=np.zeros((4, 1)))
    assert mol.same_composition and mol.numbers[3].tolist() == [8, 1, 1] and mol.energy.shape == (4,)
    assert not mol.pbc.any() and not mol.cells.any()
    assert "frames=4" in repr(mol)


def test_sha256_stable_and_sensitive():
    ds = small_dataset()
    h = ds.sha256()
    assert h == small_dataset(name="other", source="elsewhere").sha256()  # name/source not hashed
    assert h == ds.subset([0, 1]).sha256()
    # pinned: the hash is a provenance record and must not change between versions
    simple = Dataset([1, 1], [[[0.0, 0.0, 0.0], [0.0, 0.0, 0.74]]], energy=[-31.5])
    assert simple.sha256() == PINNED_SIMPLE_SHA256
    changed = small_dataset()
    changed.forces[1][0, 0] += 1e-12
    assert changed.sha256() != h
    assert small_dataset(virial=None).sha256() != h


PINNED_SIMPLE_SHA256 = "1a23b3588cd90122bde92f4dee9b5c3e5c50aa532362183f60770c5d942dfe38"


@pytest.mark.parametrize("kw, match", [
    (dict(forces=[np.zeros((3, 3)), np.zeros((3, 3))]), r"frame 1: forces has shape \(3, 3\), expected \(2, 3\)"),
    (dict(energy=np.array([1.0, 2.0, 3.0])), r"energy has shape \(3,\), expected \(2,\)"),
    (dict(forces=[np.zeros((3, 3))]), "forces has 1 frames but positions has 2"),
    (dict(numbers=[np.array([8, 1, 0]), np.array([1, 1])]),
     "frame 0: numbers: atom 2: 0 is not a valid atomic number"),
    (dict(numbers=[np.array([8, 1, 1]), np.array([1, 119])]), "frame 1: numbers: atom 1: 119 is not"),
    (dict(numbers=[["O", "H", "Xx"], ["H", "H"]]), "frame 0: numbers: atom 2: unknown element 'Xx'"),
    (dict(virial=np.zeros((2, 4))), r"virial has shape \(2, 4\)"),
    (dict(cells=np.zeros((2, 3, 3))), r"frame 0: pbc\[0\] is True but cell vector 0 is zero"),
    (dict(charges=[np.zeros(3), np.zeros(3)]), r"frame 1: charges has shape \(3,\), expected \(2,\)"),
    (dict(positions=[np.zeros((3, 3)), np.zeros((0, 3))], numbers=[[8, 1, 1], np.zeros(0, int)]),
     "frame 1: frame has no atoms"),
])
def test_validate_names_frame_and_field(kw, match):
    with pytest.raises(ValueError, match=match) as exc:
        small_dataset(**kw)
    assert str(exc.value).startswith("synthetic: ")


@pytest.mark.parametrize("field, frame, value", [("forces", 1, np.nan), ("positions", 0, np.inf),
                                                 ("charges", 1, np.nan)])
def test_validate_non_finite_per_atom(field, frame, value):
    ds = small_dataset()
    arrays = [a.copy() for a in getattr(ds, field)]
    arrays[frame].reshape(arrays[frame].shape[0], -1)[1, 0] = value
    with pytest.raises(ValueError, match=rf"frame {frame}: {field} of atom 1 is not finite"):
        small_dataset(**{field: arrays})


@pytest.mark.parametrize("field", ["energy", "virial", "dipole", "cells"])
def test_validate_non_finite_per_frame(field):
    a = np.array(getattr(small_dataset(), field), dtype=float)
    a.reshape(2, -1)[1, 0] = np.nan
    with pytest.raises(ValueError, match=rf"frame 1: {field} is not finite"):
        small_dataset(**{field: a})


def test_validate_after_mutation_and_dtype_errors():
    ds = small_dataset()
    ds.energy = ds.energy[:1]
    with pytest.raises(ValueError, match="energy has shape"):
        ds.validate()
    with pytest.raises(TypeError, match="frame 0: positions must be real numbers"):
        small_dataset(positions=[np.array([["a"] * 3] * 3), np.zeros((2, 3))])


# ---------------------------------------------------------------------------------- bad files
def test_npz_missing_key_mismatched_shapes_nan(tmp_path, ethanol_path):
    raw = dict(np.load(ethanol_path))
    small = {k: v[:5] if v.ndim and v.shape[0] == 1000 else v for k, v in raw.items()}
    p = tmp_path / "nof.npz"
    np.savez(p, **{k: v for k, v in small.items() if k != "forces"})
    with pytest.raises(ValueError, match=r"nof\.npz: missing key 'forces'"):
        load_dataset(p)
    with pytest.raises(ValueError, match=r"nof\.npz: missing key 'energies_x'"):
        load_dataset(p, energy_key="energies_x")
    p = tmp_path / "shape.npz"
    np.savez(p, **{**small, "forces": small["forces"][:, :8]})
    with pytest.raises(ValueError, match=r"shape\.npz: key 'forces' has shape \(5, 8, 3\), expected \(5, 9, 3\)"):
        load_dataset(p)
    p = tmp_path / "zshape.npz"
    np.savez(p, **{**small, "nuclear_charges": small["nuclear_charges"][:8]})
    with pytest.raises(ValueError, match="key 'nuclear_charges' has shape"):
        load_dataset(p)
    p = tmp_path / "eshape.npz"
    np.savez(p, **{**small, "energies": small["energies"][:4]})
    with pytest.raises(ValueError, match="key 'energies' has shape"):
        load_dataset(p)
    f = small["forces"].copy()
    f[3, 2, 1] = np.nan
    p = tmp_path / "nan.npz"
    np.savez(p, **{**small, "forces": f})
    with pytest.raises(ValueError, match=r"nan\.npz: frame 3: forces of atom 2 is not finite"):
        load_dataset(p)
    p = tmp_path / "sg.npz"
    np.savez(p, R=np.zeros((2, 2, 3)), z=np.array([1, 1]), E=np.zeros(2))
    with pytest.raises(ValueError, match=r"unrecognised \.npz"):
        load_dataset(p)
    with pytest.raises(ValueError, match=r"sg\.npz: missing key 'F'"):
        load_dataset(p, "sgdml")


def test_load_dataset_bad_arguments(tmp_path, ethanol_path):
    with pytest.raises(FileNotFoundError):
        load_dataset(tmp_path / "nope.npz")
    with pytest.raises(ValueError, match="unknown format"):
        load_dataset(ethanol_path, "hdf5")
    with pytest.raises(ValueError, match="unknown energy unit"):
        load_dataset(ethanol_path, energy_unit="erg")
    p = tmp_path / "junk.xyz"
    p.write_text("this is not\nan xyz file\n")
    with pytest.raises(ValueError, match=r"junk\.xyz: ase\.io\.read failed"):
        load_dataset(p)


# ---------------------------------------------------------------------------------- splits
def test_split_indices_deterministic_disjoint_covering():
    a = split_indices(1000, (0.8, 0.1, 0.1), seed=3)
    b = split_indices(1000, (0.8, 0.1, 0.1), seed=3)
    c = split_indices(1000, (0.8, 0.1, 0.1), seed=4)
    assert list(a) == ["train", "valid", "test"]
    assert [len(v) for v in a.values()] == [800, 100, 100]
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
        assert a[k].dtype == np.int64 and np.all(np.diff(a[k]) > 0)
    assert not np.array_equal(a["test"], c["test"])
    allidx = np.concatenate(list(a.values()))
    assert len(np.unique(allidx)) == 1000 and allidx.min() == 0 and allidx.max() == 999
    # pinned: RandomState's stream is frozen by NumPy, so this never changes
    pinned = split_indices(10, (6, 2, 2), seed=0)
    assert {k: v.tolist() for k, v in pinned.items()} == PINNED_SPLIT


PINNED_SPLIT = {"train": [1, 2, 4, 6, 8, 9], "valid": [3, 7], "test": [0, 5]}


def test_split_sizes_rounding_rest_and_errors():
    s = split_indices(7, (0.8, 0.1, 0.1), seed=0)  # 5.6, 0.7, 0.7 -> largest remainders: 5, 1, 1
    assert [len(v) for v in s.values()] == [5, 1, 1]
    s = split_indices(100, (10, 5, None), seed=1)
    assert [len(v) for v in s.values()] == [10, 5, 85]
    s = split_indices(100, (0.5, None, 0.25), seed=1)
    assert [len(v) for v in s.values()] == [50, 25, 25]
    assert [len(v) for v in split_indices(0, (0.8, 0.1, 0.1), seed=0).values()] == [0, 0, 0]
    s = split_indices(10, (0.5, 0.5), seed=0, names=("a", "b"))
    assert sorted(np.concatenate([s["a"], s["b"]]).tolist()) == list(range(10))
    for sizes, match in [((0.8, 0.1), "2 sizes for 3 names"), ((0.5, 0.1, 0.1), "sum to 0.7, not 1"),
                         ((800, 100, 99), "sum to 999, not n = 1000"), ((900, 100, 100), "> n"),
                         ((0.8, 100, 0.1), "mix counts"), ((None, None, 0.1), "at most one"),
                         ((1.5, 0.0, 0.0), r"\[0, 1\]"), ((-1, 1001, 0), ">= 0")]:
        with pytest.raises(ValueError, match=match):
            split_indices(1000, sizes, seed=0)
    with pytest.raises(TypeError):
        split_indices(10, ("a", 5, 5), seed=0)
    with pytest.raises(TypeError):
        split_indices(10, (5, 5, 0), seed=0.5)


def test_save_load_split_round_trip(tmp_path):
    s = split_indices(50, (0.6, 0.2, 0.2), seed=11)
    p = save_split(tmp_path / "sub" / "split.json", s, metadata={"seed": 11, "dataset_sha256": "abc"})
    back = load_split(p)
    assert list(back) == list(s)
    for k in s:
        np.testing.assert_array_equal(back[k], s[k])
        assert back[k].dtype == np.int64
    doc = json.loads(p.read_text())
    assert doc["format"] == "atomforge-split" and doc["metadata"]["seed"] == 11
    assert sorted(os.listdir(p.parent)) == ["split.json"]  # no temp files left
    (tmp_path / "plain.json").write_text(json.dumps({"train": [0, 2], "test": [1]}))
    assert load_split(tmp_path / "plain.json")["test"].tolist() == [1]
    (tmp_path / "overlap.json").write_text(json.dumps({"train": [0, 2], "test": [2]}))
    with pytest.raises(ValueError, match=r"overlap\.json: index 2 is in both 'train' and 'test'"):
        load_split(tmp_path / "overlap.json")
    (tmp_path / "neg.json").write_text(json.dumps({"train": [-1]}))
    with pytest.raises(ValueError, match="negative index"):
        load_split(tmp_path / "neg.json")
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_split(tmp_path / "bad.json")
    with pytest.raises(ValueError, match="in both"):
        save_split(tmp_path / "x.json", {"a": [1], "b": [1]})


def test_save_split_is_atomic(tmp_path, monkeypatch):
    p = tmp_path / "split.json"
    save_split(p, {"train": [0, 1]})
    before = p.read_text()

    def boom(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(splits_mod.os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        save_split(p, {"train": [5, 6, 7]})
    assert p.read_text() == before
    assert sorted(os.listdir(tmp_path)) == ["split.json"]


# ---------------------------------------------------------------------------------- downloads
def _source(tmp_path, content=b"atomforge test payload\n" * 100):
    src = tmp_path / "src" / "payload.bin"
    src.parent.mkdir(exist_ok=True)
    src.write_bytes(content)
    return src, hashlib.sha256(content).hexdigest()


def test_fetch_file_url_and_cache_hit(tmp_path):
    src, digest = _source(tmp_path)
    cache = tmp_path / "cache"
    got = fetch(src.as_uri(), digest, cache_dir=cache)
    assert got == cache / "payload.bin" and got.read_bytes() == src.read_bytes()
    src.unlink()  # a second fetch must not touch the source
    assert fetch(src.as_uri(), digest.upper(), cache_dir=cache) == got
    assert sorted(os.listdir(cache)) == ["payload.bin"]
    named = fetch(got.as_uri(), digest, cache_dir=tmp_path / "c2", filename="renamed.dat")
    assert named.name == "renamed.dat"


def test_fetch_checksum_mismatch(tmp_path):
    src, digest = _source(tmp_path)
    wrong = "0" * 64
    cache = tmp_path / "cache"
    with pytest.raises(ValueError) as exc:
        fetch(src.as_uri(), wrong, cache_dir=cache)
    msg = str(exc.value)
    assert "sha256 mismatch" in msg and wrong in msg and digest in msg and src.as_uri() in msg
    assert os.listdir(cache) == []  # temp file removed, nothing cached
    with pytest.raises(ValueError, match="64 hex digits"):
        fetch(src.as_uri(), "abc", cache_dir=cache)
    with pytest.raises(OSError, match="download of .* failed"):
        fetch((tmp_path / "missing.bin").as_uri(), digest, cache_dir=cache)
    assert os.listdir(cache) == []


def test_fetch_refetches_corrupted_cache(tmp_path):
    src, digest = _source(tmp_path)
    cache = tmp_path / "cache"
    got = fetch(src.as_uri(), digest, cache_dir=cache)
    got.write_bytes(b"truncated")
    with pytest.warns(UserWarning, match="downloading it again"):
        again = fetch(src.as_uri(), digest, cache_dir=cache)
    assert again == got and again.read_bytes() == src.read_bytes()


def test_fetch_default_cache_from_env(tmp_path, monkeypatch):
    src, digest = _source(tmp_path)
    monkeypatch.setenv("ATOMFORGE_CACHE", str(tmp_path / "envcache"))
    assert fetch(src.as_uri(), digest) == tmp_path / "envcache" / "payload.bin"


def test_public_registry_matches_local_rmd17(data_dir, tmp_path):
    rmd = data_dir / "rmd17"
    assert all(e["format"] == "rmd17" and e["url"].startswith(
        "https://raw.githubusercontent.com/andersx/rmd17-npz/4f6bb0a186822c90d47cd98b7a27991fe0b3173b/rmd17-npz/")
        and e["url"].endswith(e["filename"]) for e in PUBLIC_DATASETS.values())
    checked = 0
    for name, e in PUBLIC_DATASETS.items():
        local = rmd / e["filename"]
        if local.is_file():
            assert hashlib.sha256(local.read_bytes()).hexdigest() == e["sha256"], name
            assert local.stat().st_size == e["size"], name
            checked += 1
    if not checked:
        pytest.skip("no rMD17 files present")
    # a cache already holding the verified file is used without any network access
    cache = tmp_path / "cache"
    cache.mkdir()
    shutil.copyfile(rmd / "rmd17_ethanol_train_01.npz", cache / "rmd17_ethanol_train_01.npz")
    p = fetch_public("rmd17_ethanol_train_01", cache_dir=cache)
    assert p == cache / "rmd17_ethanol_train_01.npz"
    assert len(load_dataset(p, PUBLIC_DATASETS["rmd17_ethanol_train_01"]["format"])) == 1000
    with pytest.raises(ValueError, match="unknown public dataset"):
        fetch_public("qm9_full", cache_dir=cache)
