"""The optional dispersion term of the pinn model (E_disp: Becke-Johnson-damped C6 scaled by
networks, smoothly switched off between r_on and r_cut): C++ against PyTorch (molecule, cubic and
triclinic cells), finite-difference forces and virial with the chain-rule term through c_i(G_i),
the pair energy of a dimer against a direct NumPy formula, continuity at r_cut, models without the
records unchanged, model-file round trip and bad records, thread independence."""
import numpy as np
import pytest
import torch
from ase import Atoms

from atomforge import ModelFileError, load, read_model, save_model
from atomforge.model_file import read_records, write_records
from atomforge.models.pinn import dispersion_reference
from atomforge.train.bpnn import collate, featurize
from atomforge.train.pinn import DispersionSetup, EwaldSetup, dispersion_switch

import test_pinn as tp

ELEMENTS = tp.ELEMENTS
R_ON, R_CUT = 5.0, 8.0  # Angstrom (short, for fast tests)


def disp_model(seed=1, r_on=R_ON, r_cut=R_CUT, c6_factor=20.0, **kw):
    """test_pinn's random pinn model plus a dispersion term with non-trivial dispersion networks
    (c_i varies between atoms); C6 from ASE's tables times c6_factor (a larger term, so that its
    force errors would show)."""
    c6, r0 = dispersion_reference(ELEMENTS)
    base = tp.torch_model(seed=seed)
    from atomforge.train.pinn import TorchPinn

    m = TorchPinn(base.sf, hidden=(8, 6), activation="tanh", shift=base.short.shift.numpy(),
                  scale=base.short.scale.numpy(), reference_energies=np.array([-13.6, -1030.0, -2040.0]),
                  energy_scale=0.5, charge_hidden=(6,), charge_scheme="weighted", weight_hidden=(5,),
                  charge_reference=np.array([0.4, 0.1, -0.8]), charge_scale=0.3, sigma=np.array([0.5, 0.8, 0.7]),
                  accuracy=1e-12, seed=seed, dispersion=True, dispersion_hidden=(5,), c6=c6 * c6_factor, r0=r0,
                  r_on=r_on, r_cut=r_cut, **kw)
    with torch.no_grad():
        m.short.load_state_dict(base.short.state_dict())
        m.charge.load_state_dict(base.charge.state_dict())
        gen = torch.Generator().manual_seed(seed + 7)
        for p in m.disp.parameters():
            p.add_(torch.randn(p.shape, dtype=p.dtype, generator=gen) * 0.5)
    return m


def disp_file(tmp_path, name="disp.afm", **kw):
    m = disp_model(**kw)
    path = tmp_path / name
    save_model(path, m.to_parameters())
    return path


def without_dispersion(tmp_path, path):
    _, rec = read_records(path)
    rec = {k: v for k, v in rec.items() if not k.startswith(("dispersion.", "dispersion_network.",
                                                               "dispersion_scaling."))}
    out = tmp_path / "nodisp.afm"
    write_records(out, rec)
    return out


def test_reference_table():
    """C6 (eV A^6) from ASE's free-atom table (Hartree Bohr^6 converted), D2 radii (A)."""
    c6, r0 = dispersion_reference(["H", "C", "O"])
    assert c6 == pytest.approx([6.5 * 27.211386 * 0.529177 ** 6, 46.6 * 27.211386 * 0.529177 ** 6,
                                15.6 * 27.211386 * 0.529177 ** 6], rel=1e-5)
    assert r0 == pytest.approx([1.001, 1.452, 1.342])
    with pytest.raises(ValueError, match="Og"):
        dispersion_reference(["Og"])


def _torch_batch(m, frames, Q):
    fr = [featurize(m.sf, a.positions, a.numbers, a.cell.array if a.pbc.any() else None,
                    a.pbc if a.pbc.any() else None) for a in frames]
    b = collate(fr)
    b.positions = torch.as_tensor(np.concatenate([a.positions for a in frames]))
    b.total_charge = torch.tensor(Q, dtype=torch.float64)
    off = np.cumsum([0] + [len(a) for a in frames])
    sig = np.asarray(m.sigma)
    per = [k for k, a in enumerate(frames) if a.pbc.all()]
    b.ewald = [(k, int(off[k]), len(frames[k]), EwaldSetup(frames[k].positions, frames[k].cell.array,
                                                          sig[[ELEMENTS.index(s) for s in frames[k].get_chemical_symbols()]],
                                                          m.accuracy)) for k in per]
    b.dispersion = [(k, int(off[k]), len(frames[k]), DispersionSetup(frames[k].positions, frames[k].cell.array,
                                                                     m.r_cut)) for k in per]
    return b, off


def test_cpp_matches_pytorch(tmp_path):
    """A molecule (larger than r_on: the switch is exercised), a cubic and a charged triclinic cell
    in one batch: the core and the PyTorch model agree to 1e-10 (energy) and 1e-9 eV/A (forces)."""
    m = disp_model()
    save_model(tmp_path / "m.afm", m.to_parameters())
    pot = load(tmp_path / "m.afm")
    sy = tp.systems()
    mol = sy["molecule"][0].copy()
    far = mol[:3].copy()
    far.translate([6.0, 0.0, 0.0])  # pairs between 5 and 8 A, and beyond
    mol += far
    frames = [mol, sy["cubic"][0], sy["triclinic"][0]]
    Q = [1.0, 0.0, -1.0]
    b, off = _torch_batch(m, frames, Q)
    E, F, q, _ = m(b)
    for k, a in enumerate(frames):
        r = pot.compute(a, charge=Q[k])
        assert abs(r.energy - E[k].item()) < 1e-10 * max(1.0, abs(r.energy)), k
        assert np.abs(r.forces - F[off[k]:off[k + 1]].detach().numpy()).max() < 1e-9, k
        assert np.abs(r.charges - q[off[k]:off[k + 1]].detach().numpy()).max() < 1e-12
        assert abs(r.atomic_energies.sum() - r.energy) < 1e-9 * abs(r.energy)
    # the dispersion term is there and sizeable
    nod = load(without_dispersion(tmp_path, tmp_path / "m.afm"))
    for k, a in enumerate(frames):
        assert pot.compute(a, charge=Q[k]).energy - nod.compute(a, charge=Q[k]).energy < -0.05


@pytest.mark.parametrize("kind", ["molecule", "cubic", "triclinic"])
def test_finite_difference_forces_and_virial(tmp_path, kind):
    pot = load(disp_file(tmp_path))
    atoms, Q = tp.systems()[kind]
    r = pot.compute(atoms, charge=Q)
    Ffd = tp.fd_forces(pot, atoms, Q)
    assert np.abs(r.forces - Ffd).max() < 1e-6 * max(1.0, np.abs(Ffd).max())
    if kind != "molecule":
        Wfd = tp.fd_virial(pot, atoms, Q)
        assert np.abs(r.virial - Wfd).max() < 1e-6 * max(1.0, np.abs(Wfd).max())
        assert np.allclose(r.virial, r.virial.T, atol=1e-9)


@pytest.mark.parametrize("kind", ["molecule", "triclinic"])
def test_chain_rule_term_is_needed(tmp_path, kind):
    """Forces with c_i held fixed (PyTorch, c detached) differ from the exact ones by far more than
    the tolerance of the finite-difference test: dropping the term dE/dc_i dc_i/dG_i would fail."""
    m = disp_model()
    save_model(tmp_path / "m.afm", m.to_parameters())
    pot = load(tmp_path / "m.afm")
    atoms, Q = tp.systems()[kind]
    b, _ = _torch_batch(m, [atoms], [Q])
    _, F, _, _ = m(b)
    fixed = m.dispersion_scaling
    m.dispersion_scaling = lambda G, s: fixed(G, s).detach()
    _, F_fixed, _, _ = m(b)
    r = pot.compute(atoms, charge=Q)
    assert np.abs(r.forces - F.detach().numpy()).max() < 1e-9
    assert (F_fixed - F).abs().max().item() > 1e-3


def test_dimer_matches_numpy_and_is_continuous(tmp_path):
    """With constant dispersion networks (c = softplus(b) + 1e-3), the dispersion energy of an O-H
    dimer (model minus the same model without the records) is the direct formula; it is zero from
    r_cut on, and energy and force are continuous at r_on and r_cut."""
    m = disp_model()
    b0 = 0.3
    with torch.no_grad():
        for p in m.disp.parameters():
            p.zero_()
        for net in m.disp.members[0]:
            [l for l in net if isinstance(l, torch.nn.Linear)][-1].bias.fill_(b0)
    path = tmp_path / "dimer.afm"
    save_model(path, m.to_parameters())
    pot, nod = load(path), load(without_dispersion(tmp_path, path))
    c = np.log1p(np.exp(b0)) + 1e-3
    c6, r0 = dispersion_reference(ELEMENTS)
    c6 = c6 * 20.0
    C = np.sqrt(c6[2] * c * c6[0] * c)
    R0 = r0[2] + r0[0]

    def direct(r):
        x = np.clip((r - R_ON) / (R_CUT - R_ON), 0, 1)
        return -(1 - 10 * x ** 3 + 15 * x ** 4 - 6 * x ** 5) * C / (r ** 6 + R0 ** 6)

    def disp(r):
        a = Atoms("OH", positions=[[0, 0, 0], [r, 0, 0]])
        ra, rb = pot.compute(a), nod.compute(a)
        return ra.energy - rb.energy, ra.forces[1, 0] - rb.forces[1, 0]

    for r in (0.9, 1.5, 3.0, 4.9, 5.0, 6.2, 7.9, 8.0, 9.0):
        e, f = disp(r)
        assert e == pytest.approx(direct(r), rel=1e-9, abs=2e-12), r  # a difference of ~1e3 eV totals
        h = 1e-5
        assert f == pytest.approx(-(direct(r + h) - direct(r - h)) / (2 * h), rel=1e-6, abs=1e-11), r
    assert disp(R_CUT)[0] == 0.0 and disp(R_CUT + 1.0) == (0.0, 0.0)
    for edge in (R_ON, R_CUT):
        (e1, f1), (e2, f2) = disp(edge - 1e-7), disp(edge + 1e-7)
        # no step: the energy changes only by the work of the (continuous) force over 2e-7 A
        assert abs((e2 - e1) + 0.5 * (f1 + f2) * 2e-7) < 1e-12 and abs(f1 - f2) < 1e-8
    # the PyTorch switch is the same function
    rr = torch.tensor([4.0, 5.0, 6.5, 8.0, 9.0], dtype=torch.float64)
    x = np.clip((rr.numpy() - R_ON) / (R_CUT - R_ON), 0, 1)
    assert np.allclose(dispersion_switch(rr, R_ON, R_CUT).numpy(), 1 - 10 * x ** 3 + 15 * x ** 4 - 6 * x ** 5,
                       rtol=0, atol=1e-15)


def test_without_records_unchanged(tmp_path):
    """A model without dispersion records has none written, and its outputs are those of the
    electrostatics-only model (the records' removal takes E_disp away and nothing else: the other
    outputs are identical bit for bit; the existing pinn tests pin that model)."""
    plain = tp.torch_model().to_parameters()
    assert plain.dispersion is None
    assert not any(k.startswith("dispersion") for k in plain.to_records())
    path = disp_file(tmp_path)
    pot, nod = load(path), load(without_dispersion(tmp_path, path))
    p_base = tmp_path / "base.afm"
    save_model(p_base, tp.torch_model(seed=1).to_parameters())
    base = load(p_base)
    for atoms, Q in tp.systems().values():
        a, b = nod.compute(atoms, charge=Q), base.compute(atoms, charge=Q)
        assert a.energy == b.energy and np.array_equal(a.forces, b.forces) and np.array_equal(a.virial, b.virial)
        assert np.array_equal(a.charges, b.charges) and np.array_equal(a.atomic_energies, b.atomic_energies)
        d = pot.compute(atoms, charge=Q)
        assert np.array_equal(d.charges, a.charges)
        assert d.energy != a.energy
    assert dict(base.describe())["dispersion"] == "none"
    assert "switched off between 5 and 8 A" in dict(pot.describe())["dispersion"]


def test_round_trip(tmp_path):
    path = disp_file(tmp_path)
    p = read_model(path)
    assert p.dispersion is not None and p.dispersion.r_cut == R_CUT and p.dispersion.r_on == R_ON
    save_model(tmp_path / "again.afm", p)
    _, a = read_records(path)
    _, b = read_records(tmp_path / "again.afm")
    assert set(a) == set(b)
    assert {"dispersion.c6", "dispersion.r0", "dispersion.r_on", "dispersion.r_cut", "dispersion_network.shared",
            "dispersion_scaling.0.shift"} <= set(a)
    for k in a:
        if not k.startswith("metadata.created"):
            assert np.array_equal(np.asarray(a[k]), np.asarray(b[k])), k
    atoms, Q = tp.systems()["triclinic"]
    assert load(path).compute(atoms, charge=Q).energy == load(tmp_path / "again.afm").compute(atoms, charge=Q).energy
    assert "dispersion" in dict(p.describe())


@pytest.mark.parametrize("changes, drop, match", [
    ({"dispersion.c6": np.array([1.0, -2.0, 3.0])}, None, "dispersion.c6"),
    ({"dispersion.c6": np.array([1.0, 2.0])}, None, "dispersion.c6"),
    ({"dispersion.r0": np.array([1.0, 0.0, 1.2])}, None, "dispersion.r0"),
    ({"dispersion.r_on": 9.0}, None, "dispersion.r_on"),
    ({"dispersion.r_on": -1.0}, None, "dispersion.r_on"),
    ({"dispersion.r_cut": 30.0}, None, "dispersion.r_cut"),
    ({}, "dispersion.r0", "dispersion.r0"),
    ({}, "dispersion_network.0.0.0.weight", "dispersion_network.0.0.0.weight"),
    ({"dispersion.r_cut": 10.0}, "dispersion.c6", "dispersion.c6"),
])
def test_bad_records(tmp_path, changes, drop, match):
    _, rec = read_records(disp_file(tmp_path))
    rec.update(changes)
    if drop:
        del rec[drop]
    path = tmp_path / "bad.afm"
    write_records(path, rec)
    with pytest.raises(ModelFileError, match=match):
        read_model(path)
    with pytest.raises(ValueError, match=match):
        load(path)


def test_lone_dispersion_record_refused(tmp_path):
    """One stray dispersion record on a plain pinn model: both readers ask for the others."""
    _, rec = read_records(tp.model_file(tmp_path))
    rec["dispersion.r_cut"] = 10.0
    write_records(tmp_path / "m.afm", rec)
    with pytest.raises(ModelFileError, match="dispersion.c6"):
        read_model(tmp_path / "m.afm")
    with pytest.raises(ValueError, match="dispersion.c6"):
        load(tmp_path / "m.afm")


def test_threads_and_bad_torch_arguments(tmp_path):
    pot = load(disp_file(tmp_path))
    for atoms, Q in tp.systems().values():
        r1, r2 = pot.compute(atoms, charge=Q, threads=1), pot.compute(atoms, charge=Q, threads=2)
        assert r1.energy == r2.energy and np.array_equal(r1.forces, r2.forces)
        assert np.array_equal(r1.virial, r2.virial)
    mol = tp.protonated_cluster()
    assert np.abs(pot.compute(mol, charge=1.0).forces.sum(axis=0)).max() < 1e-10
    with pytest.raises(ValueError, match="r_on < r_cut"):
        disp_model(r_on=9.0, r_cut=8.0)
    m = disp_model()
    atoms, Q = tp.systems()["cubic"]
    b, _ = _torch_batch(m, [atoms], [Q])
    b.dispersion = []
    with pytest.raises(ValueError, match="DispersionSetup"):
        m(b)


def test_training_with_dispersion(tmp_path):
    """``pinn: {dispersion: true}`` trains on periodic frames (DispersionSetup per frame) and
    molecules, writes the dispersion records (ASE reference C6 and radii), and the core evaluates
    the written model; bad dispersion keys are refused by name."""
    from atomforge.train import train
    from atomforge.train.config import ConfigError

    for periodic, name in ((True, "periodic.xyz"), (False, "mol.xyz")):
        data = tp._dimers(tmp_path, n=16, periodic=periodic, name=name)
        cfg = tp._cfg(data, dispersion=True, dispersion_hidden=[4], dispersion_r_on=4.0, dispersion_r_cut=6.0)
        cfg["training"]["epochs"] = 2
        m = train(cfg, tmp_path / f"run_{name}", progress=False, log=lambda s: None)
        assert np.isfinite(m["test"]["forces_mae"]) and m["evaluated_by"].startswith("atomforge C++")
        p = read_model(tmp_path / f"run_{name}" / "model.afm")
        assert p.dispersion is not None and (p.dispersion.r_on, p.dispersion.r_cut) == (4.0, 6.0)
        c6, r0 = dispersion_reference(["H", "O"])
        assert np.array_equal(p.dispersion.c6, c6) and np.array_equal(p.dispersion.r0, r0)
    mol = tp._dimers(tmp_path, n=12)
    for kw, match in (({"dispersion_r_on": 7.0, "dispersion_r_cut": 6.0}, "pinn.dispersion_r_on"),
                      ({"dispersion_r_cut": 30.0}, "pinn.dispersion_r_cut"),
                      ({"dispersion": 1}, "pinn.dispersion")):
        with pytest.raises(ConfigError, match=match):
            train(tp._cfg(mol, **kw), tmp_path / "bad", progress=False, log=lambda s: None)


@pytest.mark.parametrize("kind", ["molecule", "triclinic"])
def test_openmm_matches_python(tmp_path, kind):
    """OpenMM's AtomForgeForce evaluates the model with the dispersion term: energy and forces
    equal atomforge.load(...).compute to 1e-8 relative (Reference platform)."""
    openmm, afo = tp._openmm()
    path = disp_file(tmp_path)
    pos, num, cell = tp._openmm_cases()[kind]
    pbc = cell is not None
    ref = load(path).compute(pos, num, cell, [pbc] * 3 if pbc else None)
    nod = load(without_dispersion(tmp_path, path)).compute(pos, num, cell, [pbc] * 3 if pbc else None)
    assert ref.energy - nod.energy < -0.05  # the dispersion term is there
    e, F = tp._openmm_evaluate(openmm, afo.AtomForgeForce(str(path), num, periodic=pbc), len(num), pos, "Reference",
                               cell)
    ev = 96.48533212331002  # kJ/mol per eV
    assert e == pytest.approx(ref.energy * ev, rel=1e-8, abs=0)
    fr = ref.forces * ev * 10.0  # eV/A -> kJ/mol/nm
    np.testing.assert_allclose(F, fr, rtol=0, atol=1e-8 * np.abs(fr).max())


def test_mutated_dispersion_model_files_give_clear_errors(tmp_path):
    """200 seeded mutations of a pinn model file with the dispersion records (tests/model_fuzz.py):
    both readers give the documented error or load, agree on which files they accept, and what
    loads evaluates."""
    import model_fuzz

    seed = disp_file(tmp_path).read_bytes()
    assert model_fuzz.run_case(seed) == {"python": "ok", "core": "ok", "compute": "ok"}
    findings, caught = model_fuzz.fuzz_seed_file(seed, 200, 15)
    assert not findings, findings[:10]
    assert caught > 50
