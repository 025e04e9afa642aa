"""OpenMM plugin (AtomForgeForce): energies and forces equal atomforge.load(...) after unit
conversion on the Reference and CPU platforms, subsets, XML round trip, Context behaviour, NVE,
bad input, the Python helpers and the examples."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

openmm = pytest.importorskip("openmm")
try:
    import atomforge.openmm as afo
except ImportError as exc:  # openmm present but the plugin was not built
    pytest.skip(f"atomforge OpenMM plugin unavailable: {exc}", allow_module_level=True)

import openmm.unit as u  # noqa: E402
from ase.build import molecule  # noqa: E402

import atomforge  # noqa: E402
from atomforge import save_model  # noqa: E402
from test_model_inference import random_model  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
EV = 96.48533212331002         # kJ/mol per eV
FORCE = EV * 10.0              # kJ/mol/nm per eV/A
PLATFORMS = ["Reference", "CPU"]
TOL = 1e-10


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    p = tmp_path_factory.mktemp("omm") / "random.afm"
    save_model(p, random_model(seed=3, committee=2))
    return p


def make_system(masses, force, box=None):
    s = openmm.System()
    for m in masses:
        s.addParticle(float(m))
    if box is not None:
        s.setDefaultPeriodicBoxVectors(*[openmm.Vec3(*(v / 10.0)) for v in box])
    s.addForce(force)
    return s


def evaluate(system, positions_A, platform, box=None, groups=-1):
    ctx = openmm.Context(system, openmm.VerletIntegrator(0.0005), openmm.Platform.getPlatformByName(platform))
    ctx.setPositions(positions_A / 10.0)
    if box is not None:
        ctx.setPeriodicBoxVectors(*[openmm.Vec3(*(v / 10.0)) for v in box])
    st = ctx.getState(getEnergy=True, getForces=True, groups=groups)
    return (st.getPotentialEnergy().value_in_unit(u.kilojoule_per_mole),
            st.getForces(asNumpy=True).value_in_unit(u.kilojoule_per_mole / u.nanometer), ctx)


def assert_matches(e, f, ref, idx=None):
    assert e == pytest.approx(ref.energy * EV, rel=TOL, abs=0)
    fr = ref.forces * FORCE
    got = f if idx is None else f[idx]
    scale = np.abs(fr).max()
    np.testing.assert_allclose(got, fr, rtol=0, atol=TOL * scale)


def water_frame(data_dir):
    from atomforge.data import load_dataset

    d = load_dataset(data_dir / "deepmd_water" / "energy_force" / "data_0")
    return d.positions[0], d.numbers[0], d.cells[0]


# ----------------------------------------------------------------------------- agreement with the core


@pytest.mark.parametrize("platform", PLATFORMS)
def test_ethanol_matches_core(model_path, platform):
    at = molecule("CH3CH2OH")
    ref = atomforge.load(model_path).compute(at.positions, at.numbers)
    f = afo.AtomForgeForce(str(model_path), at.numbers)
    e, F, _ = evaluate(make_system(at.get_masses(), f), at.positions, platform)
    assert_matches(e, F, ref)


@pytest.mark.parametrize("platform", PLATFORMS)
def test_periodic_water_matches_core(model_path, data_dir, platform):
    pos, num, cell = water_frame(data_dir)
    ref = atomforge.load(model_path).compute(pos, num, cell, [True] * 3)
    f = afo.AtomForgeForce(open(model_path, "rb").read(), num, [], True)
    s = make_system(np.where(num == 8, 15.999, 1.008), f, box=cell)
    e, F, _ = evaluate(s, pos, platform)
    assert_matches(e, F, ref)


@pytest.mark.parametrize("platform", PLATFORMS)
def test_triclinic_matches_core(model_path, platform):
    # OpenMM's reduced box form: a along x, b in the xy plane, |b_x| <= a_x/2, ...
    cell = np.array([[9.0, 0.0, 0.0], [3.0, 8.5, 0.0], [-2.0, 3.5, 8.0]])
    rng = np.random.default_rng(5)
    frac = rng.uniform(size=(30, 3))
    pos = frac @ cell + rng.normal(scale=0.01, size=(30, 3))
    num = rng.choice([1, 6, 8], size=30)
    ref = atomforge.load(model_path).compute(pos, num, cell, [True] * 3)
    f = afo.AtomForgeForce(model_path, num, periodic=True)
    e, F, _ = evaluate(make_system(np.full(30, 10.0), f, box=cell), pos, platform)
    assert_matches(e, F, ref)


@pytest.mark.parametrize("platform", PLATFORMS)
def test_subset_of_larger_system(model_path, platform):
    """The model covers 9 of 15 particles, listed out of order; the others feel no force."""
    at = molecule("CH3CH2OH")
    rng = np.random.default_rng(0)
    n = 15
    covered = rng.permutation(n)[:9]
    pos = rng.uniform(20, 30, size=(n, 3))
    pos[covered] = at.positions
    ref = atomforge.load(model_path).compute(at.positions, at.numbers)
    f = afo.AtomForgeForce(str(model_path), at.numbers, covered)
    f.setForceGroup(3)
    s = make_system(np.ones(n), f)
    s.addForce(openmm.CMMotionRemover())
    e, F, _ = evaluate(s, pos, platform)
    assert_matches(e, F, ref, idx=covered)
    others = np.setdiff1d(np.arange(n), covered)
    assert np.all(F[others] == 0)
    e3, _, _ = evaluate(s, pos, platform, groups={3})
    assert e3 == e
    e0, F0, _ = evaluate(s, pos, platform, groups={0})
    assert e0 == 0 and np.all(F0 == 0)


def test_cpu_threads_do_not_change_results(model_path, data_dir):
    pos, num, _ = water_frame(data_dir)
    pos, num = pos[:60], num[:60]
    out = []
    for threads in ("1", "2"):
        f = afo.AtomForgeForce(str(model_path), num)
        s = make_system(np.ones(len(num)), f)
        ctx = openmm.Context(s, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("CPU"),
                             {"Threads": threads})
        ctx.setPositions(pos / 10)
        st = ctx.getState(getEnergy=True, getForces=True)
        out.append((st.getPotentialEnergy()._value, st.getForces(asNumpy=True)._value))
    assert out[0][0] == pytest.approx(out[1][0], rel=1e-12)
    np.testing.assert_allclose(out[0][1], out[1][1], rtol=0, atol=1e-9 * np.abs(out[0][1]).max())


# ----------------------------------------------------------------------------- serialization, Context


def test_xml_round_trip(model_path, data_dir):
    pos, num, cell = water_frame(data_dir)
    f = afo.AtomForgeForce(str(model_path), num, [], True)
    f.setForceGroup(2)
    f.setName("ml")
    s = make_system(np.ones(len(num)), f, box=cell)
    e1, F1, _ = evaluate(s, pos, "CPU")
    xml = openmm.XmlSerializer.serialize(s)
    assert 'type="AtomForgeForce"' in xml and 'version="1"' in xml
    s2 = openmm.XmlSerializer.deserialize(xml)
    g = afo.AtomForgeForce.cast(s2.getForce(0))
    assert isinstance(g, afo.AtomForgeForce)
    assert g.getModelBytes() == open(model_path, "rb").read()
    assert g.usesPeriodicBoundaryConditions() and g.getForceGroup() == 2 and g.getName() == "ml"
    assert list(g.getAtomicNumbers()) == list(num)
    e2, F2, _ = evaluate(s2, pos, "CPU")
    assert e2 == e1
    np.testing.assert_array_equal(F1, F2)
    # the Force alone, and a subset
    f3 = afo.AtomForgeForce(str(model_path), [8, 1, 1], [5, 0, 7])
    g3 = afo.AtomForgeForce.cast(openmm.XmlSerializer.deserialize(openmm.XmlSerializer.serialize(f3)))
    assert list(g3.getParticles()) == [5, 0, 7] and not g3.usesPeriodicBoundaryConditions()
    with pytest.raises(openmm.OpenMMException, match="not an AtomForgeForce"):
        afo.AtomForgeForce.cast(openmm.HarmonicBondForce())


def test_xml_newer_version_refused(model_path):
    xml = openmm.XmlSerializer.serialize(afo.AtomForgeForce(str(model_path), [1]))
    xml = xml.replace('version="1"', 'version="2"', 1)
    with pytest.raises(openmm.OpenMMException, match="proxy version 2.*upgrade atomforge"):
        openmm.XmlSerializer.deserialize(xml)


def test_context_reinitialize_positions_and_box(model_path, data_dir):
    pos, num, cell = water_frame(data_dir)
    pot = atomforge.load(model_path)
    s = make_system(np.ones(len(num)), afo.AtomForgeForce(str(model_path), num, [], True), box=cell)
    e, F, ctx = evaluate(s, pos, "CPU")
    assert_matches(e, F, pot.compute(pos, num, cell, [True] * 3))
    # new positions
    pos2 = pos + np.random.default_rng(1).normal(scale=0.05, size=pos.shape)
    ctx.setPositions(pos2 / 10)
    st = ctx.getState(getEnergy=True, getForces=True)
    assert_matches(st.getPotentialEnergy()._value, st.getForces(asNumpy=True)._value,
                   pot.compute(pos2, num, cell, [True] * 3))
    # a larger box (positions unchanged)
    cell2 = cell * 1.03
    ctx.setPeriodicBoxVectors(*[openmm.Vec3(*(v / 10)) for v in cell2])
    st = ctx.getState(getEnergy=True, getForces=True)
    assert_matches(st.getPotentialEnergy()._value, st.getForces(asNumpy=True)._value,
                   pot.compute(pos2, num, cell2, [True] * 3))
    # reinitialize keeps positions and box (preserveState) and the energy
    ctx.reinitialize(preserveState=True)
    st2 = ctx.getState(getEnergy=True)
    assert st2.getPotentialEnergy()._value == pytest.approx(st.getPotentialEnergy()._value, rel=1e-14)
    # after changing the Force's particles, reinitialize picks them up
    f = afo.AtomForgeForce.cast(s.getForce(0))
    f.setParticles(num[:30], list(range(30)))
    ctx.reinitialize(preserveState=True)
    st3 = ctx.getState(getEnergy=True)
    ref3 = pot.compute(pos2[:30], num[:30], cell2, [True] * 3)
    assert st3.getPotentialEnergy()._value == pytest.approx(ref3.energy * EV, rel=TOL)


# ----------------------------------------------------------------------------- dynamics


@pytest.fixture(scope="module")
def examples_prepared(tmp_path_factory, data_dir):
    """Models for the examples, as examples/openmm/prepare.py makes them (--quick)."""
    pytest.importorskip("tblite")
    d = tmp_path_factory.mktemp("ommex")
    env = dict(os.environ, ATOMFORGE_DATA=str(data_dir))
    r = subprocess.run([sys.executable, str(ROOT / "examples" / "openmm" / "prepare.py"), "--quick", "--out", str(d)],
                       capture_output=True, text=True, env=env, timeout=900)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return d


def test_nve_ethanol_energy_conserved(tmp_path):
    """1000 steps of 0.5 fs (0.5 ps) velocity Verlet: total energy drift stays small. A smooth
    random model (the 3-epoch --quick model lets atoms collide; the 10 ps number with the
    quickstart model is in benchmarks/results/openmm_nve.md)."""
    at = molecule("CH3CH2OH")
    model = tmp_path / "smooth.afm"
    save_model(model, random_model(seed=3))
    s = make_system(at.get_masses(), afo.AtomForgeForce(str(model), at.numbers))
    integ = openmm.VerletIntegrator(0.5 * u.femtosecond)
    ctx = openmm.Context(s, integ, openmm.Platform.getPlatformByName("CPU"))
    ctx.setPositions(at.positions / 10)
    ctx.setVelocitiesToTemperature(300 * u.kelvin, 1)
    totals = []
    for _ in range(20):
        integ.step(50)
        st = ctx.getState(getEnergy=True)
        totals.append((st.getPotentialEnergy() + st.getKineticEnergy()).value_in_unit(u.kilojoule_per_mole))
    totals = np.array(totals)
    ke = ctx.getState(getEnergy=True).getKineticEnergy().value_in_unit(u.kilojoule_per_mole)
    assert np.all(np.isfinite(totals)) and ke > 0
    # 9 atoms at 300 K: kT ~ 2.5 kJ/mol; the total energy must stay within 0.5 kJ/mol
    assert np.ptp(totals) < 0.5, totals


# ----------------------------------------------------------------------------- bad input


def test_missing_model():
    with pytest.raises(openmm.OpenMMException, match="cannot open model file '/nonexistent/x.afm'"):
        afo.AtomForgeForce("/nonexistent/x.afm", [1])


def test_corrupt_model(model_path, tmp_path):
    b = bytearray(open(model_path, "rb").read())
    b[100] ^= 0xFF
    with pytest.raises(openmm.OpenMMException, match="invalid model.*(checksum|CRC)"):
        afo.AtomForgeForce(bytes(b), [1])
    p = tmp_path / "trunc.afm"
    p.write_bytes(bytes(b[:50]))
    with pytest.raises(openmm.OpenMMException, match="invalid model"):
        afo.AtomForgeForce(str(p), [1])
    p.write_text("not a model")
    with pytest.raises(openmm.OpenMMException, match="invalid model"):
        afo.AtomForgeForce(p, [1])


def test_index_out_of_range(model_path):
    f = afo.AtomForgeForce(str(model_path), [8, 1, 1], [0, 1, 7])
    s = make_system(np.ones(5), f)
    with pytest.raises(openmm.OpenMMException, match="particle index 7 is out of range.*5 particles"):
        openmm.Context(s, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("Reference"))
    with pytest.raises(openmm.OpenMMException, match="negative"):
        afo.AtomForgeForce(str(model_path), [1], [-1])
    with pytest.raises(openmm.OpenMMException, match="3 particles but 2 atomic numbers"):
        afo.AtomForgeForce(str(model_path), [1, 1], [0, 1, 2])
    s = make_system(np.ones(5), afo.AtomForgeForce(str(model_path), [1, 1]))
    with pytest.raises(openmm.OpenMMException, match="all 5 particles.*2 atomic numbers"):
        openmm.Context(s, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("CPU"))


def test_element_mismatch(model_path):
    with pytest.raises(openmm.OpenMMException, match=r"particle 4 is Cl, an element the model does not cover "
                                                     r"\(model elements: H, C, O\)"):
        afo.AtomForgeForce(str(model_path), [6, 1, 17], [2, 3, 4])


@pytest.mark.parametrize("platform", PLATFORMS)
def test_periodicity_mismatch(model_path, platform):
    at = molecule("CH3CH2OH")
    nb = openmm.NonbondedForce()
    for _ in range(9):
        nb.addParticle(0.0, 0.3, 0.0)
    nb.setNonbondedMethod(openmm.NonbondedForce.CutoffPeriodic)
    s = make_system(np.ones(9), afo.AtomForgeForce(str(model_path), at.numbers), box=np.eye(3) * 30)
    s.addForce(nb)
    with pytest.raises(openmm.OpenMMException, match="non-periodic but the System is periodic.*periodic=True"):
        openmm.Context(s, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName(platform))
    nb.setNonbondedMethod(openmm.NonbondedForce.NoCutoff)
    s2 = make_system(np.ones(9), afo.AtomForgeForce(str(model_path), at.numbers, [], True), box=np.eye(3) * 30)
    s2.addForce(openmm.XmlSerializer.deserialize(openmm.XmlSerializer.serialize(nb)))
    with pytest.raises(openmm.OpenMMException, match="is periodic but the System is not"):
        openmm.Context(s2, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName(platform))


# ----------------------------------------------------------------------------- Python helpers


def ethanol_topology(box_nm=None):
    from openmm.app import Element, Topology

    at = molecule("CH3CH2OH")
    top = Topology()
    res = top.addResidue("ETH", top.addChain())
    atoms = [top.addAtom(f"{s}{i}", Element.getByAtomicNumber(int(z)), res)
             for i, (s, z) in enumerate(zip(at.get_chemical_symbols(), at.numbers))]
    for i, j in [(0, 1), (0, 2), (0, 3), (1, 4), (1, 5), (1, 6), (2, 8)]:  # not used by the ML force
        top.addBond(atoms[i], atoms[j])
    if box_nm is not None:
        top.setPeriodicBoxVectors(np.eye(3) * box_nm)
    return at, top


@pytest.mark.parametrize("box", [None, 2.5])
def test_create_system(model_path, box):
    at, top = ethanol_topology(box)
    s = afo.create_system(top, model_path)
    assert s.getNumParticles() == 9
    assert s.getParticleMass(0).value_in_unit(u.dalton) == pytest.approx(12.011, abs=0.01)
    assert s.usesPeriodicBoundaryConditions() == (box is not None)
    cell = None if box is None else np.eye(3) * box * 10
    ref = atomforge.load(model_path).compute(at.positions, at.numbers, cell, None if box is None else [True] * 3)
    e, F, _ = evaluate(s, at.positions, "CPU")
    assert_matches(e, F, ref)


def test_add_to_system_removes_classical_terms(model_path):
    """Two ethanols with a classical force field; the ML force takes over the first one."""
    at = molecule("CH3CH2OH")
    pos = np.vstack([at.positions, at.positions + [6.0, 0, 0]])
    num = np.concatenate([at.numbers, at.numbers])
    from openmm.app import Element, Topology

    top = Topology()
    res = top.addResidue("ETH", top.addChain())
    for i, z in enumerate(num):
        top.addAtom(f"A{i}", Element.getByAtomicNumber(int(z)), res)
    s = openmm.System()
    for z in num:
        s.addParticle(Element.getByAtomicNumber(int(z)).mass)
    bonds = openmm.HarmonicBondForce()
    angles = openmm.HarmonicAngleForce()
    tors = openmm.PeriodicTorsionForce()
    nb = openmm.NonbondedForce()
    for off in (0, 9):
        bonds.addBond(off + 0, off + 1, 0.15, 1e5)
        bonds.addBond(off + 0, off + 3, 0.11, 1e5)
        angles.addAngle(off + 1, off + 0, off + 2, 1.9, 300.0)
        tors.addTorsion(off + 3, off + 0, off + 1, off + 4, 3, 0.0, 1.0)
    for z in num:
        nb.addParticle({1: 0.1, 6: -0.2, 8: -0.4}[int(z)], 0.3, 0.5)
    nb.addException(0, 1, 0.0, 1.0, 0.0)
    bonds.addBond(8, 9, 0.5, 10.0)  # crosses the region boundary: kept
    for f in (bonds, angles, tors, nb):
        s.addForce(f)
    f = afo.add_to_system(s, top, model_path, range(9), force_group=1)
    assert s.getNumForces() == 5 and isinstance(afo.AtomForgeForce.cast(s.getForce(4)), afo.AtomForgeForce)
    assert f.getForceGroup() == 1
    ks = [bonds.getBondParameters(i)[3]._value for i in range(bonds.getNumBonds())]
    assert ks[0] == 0 and ks[1] == 0 and ks[2] != 0 and ks[3] != 0 and ks[4] != 0
    assert angles.getAngleParameters(0)[4]._value == 0 and angles.getAngleParameters(1)[4]._value != 0
    assert tors.getTorsionParameters(0)[6]._value == 0 and tors.getTorsionParameters(1)[6]._value != 0
    assert nb.getNumExceptions() == 36  # every pair of the 9 region atoms, once
    for i in range(nb.getNumExceptions()):
        a, b, q, sig, eps = nb.getExceptionParameters(i)
        assert a < 9 and b < 9 and q._value == 0 and eps._value == 0
    # classical energy of region 1 is gone: group 0 equals the energy of a system without it
    e0, _, _ = evaluate(s, pos, "Reference", groups={0})
    e1, _, _ = evaluate(s, pos, "Reference", groups={1})
    assert e1 == pytest.approx(atomforge.load(model_path).compute(at.positions, at.numbers).energy * EV, rel=TOL)
    assert np.isfinite(e0)


# ----------------------------------------------------------------------------- examples


@pytest.mark.parametrize("script", ["ethanol_nve.py", "water_npt.py"])
def test_example_runs(examples_prepared, script):
    r = subprocess.run([sys.executable, str(ROOT / "examples" / "openmm" / script), "--steps", "20",
                        "--models", str(examples_prepared)], capture_output=True, text=True, timeout=600,
                       env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)))
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "step" in r.stdout.lower()


# ----------------------------------------------------------------------------- threads (issue 16, problem 4)
_THREADS_SCRIPT = r"""
import sys
import openmm, openmm.unit as u
import atomforge.openmm as afo
from ase.build import molecule
from atomforge.cli import _water_box
kind, threads, model = sys.argv[1], sys.argv[2], sys.argv[3]
atoms = molecule("CH3CH2OH") if kind == "ethanol" else _water_box(2)
forces = afo.AtomForgeForce(model, atoms.numbers.tolist(), [], kind != "ethanol")
system = openmm.System()
for m in atoms.get_masses():
    system.addParticle(m)
if kind != "ethanol":
    system.setDefaultPeriodicBoxVectors(*(openmm.Vec3(*row) * 0.1 for row in atoms.cell[:]))
system.addForce(forces)
props = {} if threads == "default" else {"Threads": threads}
ctx = openmm.Context(system, openmm.VerletIntegrator(0.5 * u.femtosecond), openmm.Platform.getPlatformByName(
    sys.argv[4]), props)
ctx.setPositions(atoms.positions * u.angstrom)
ctx.getIntegrator().step(2)
"""


@pytest.mark.parametrize("kind, platform, threads, expect", [
    ("ethanol", "CPU", "2", "9 atoms, platform Threads 2 -> 1 OpenMP thread(s)"),      # small: 1 thread
    ("water", "CPU", "2", "192 atoms, platform Threads 2 -> 2 OpenMP thread(s)"),      # 192 / 32 >= 2
    ("water", "CPU", "1", "192 atoms, platform Threads 1 -> 1 OpenMP thread(s)"),      # never above Threads
    ("water", "Reference", "default", None),                                            # Reference: 1, silent
])
def test_cpu_kernel_thread_rule(tmp_path, kind, platform, threads, expect):
    """The documented rule (docs/openmm.md): min(Threads, max(1, atoms / 32)) on the CPU platform,
    OMP_NUM_THREADS ignored (set to 8 here); the Reference kernel always runs one thread."""
    model = tmp_path / "m.afm"
    save_model(model, random_model(seed=1))  # H, C, O: covers ethanol and water
    env = dict(os.environ, ATOMFORGE_OPENMM_VERBOSE="1", OMP_NUM_THREADS="8",
               PYTHONPATH=os.pathsep.join(sys.path))
    r = subprocess.run([sys.executable, "-c", _THREADS_SCRIPT, kind, threads, str(model), platform],
                       capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    if expect is None:
        assert "OpenMP thread" not in r.stderr
    else:
        assert f"atomforge OpenMM CPU kernel: {expect}" in r.stderr, r.stderr[-2000:]


def test_example_prepare_checks_data_before_training(tmp_path):
    """examples/openmm/prepare.py stops at once when the n2p2 water files are missing (issue 16:
    the LAMMPS one trained for minutes first)."""
    for folder in ("openmm", "lammps"):
        env = dict(os.environ, ATOMFORGE_DATA=str(tmp_path / "nowhere"))
        r = subprocess.run([sys.executable, str(ROOT / "examples" / folder / "prepare.py"), "--out",
                            str(tmp_path / folder)], capture_output=True, text=True, env=env, timeout=120)
        assert r.returncode == 2, r.stdout + r.stderr
        assert "ATOMFORGE_DATA" in r.stderr and "n2p2_h2o_rpbe_d3" in r.stderr
        assert not (tmp_path / folder / "ethanol-run").exists()
