"""The optional polarisation term of the pinn model (E_pol: Thole-damped induced point dipoles
with network polarisabilities, solved exactly; molecules and periodic cells, dipolar Ewald sum):
C++ against PyTorch (with and without the dispersion term, total charge 0 and +1; cubic and
triclinic cells), finite-difference forces and virials, the large-box limit of the periodic sum,
the chain-rule term through alpha_i(G_i), the SCF equations, a two-atom analytic check, a water
dimer, models without the records unchanged, model-file round trip and bad records, training."""
import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import molecule

from atomforge import ModelFileError, load, read_model, save_model
from atomforge.model_file import read_records, write_records
from atomforge.models.pinn import dispersion_reference, polarisation_reference
from atomforge.train.bpnn import collate, featurize
from atomforge.train.pinn import EwaldSetup, FrozenEwald, TorchPinn, induced_dipoles
from atomforge.units import BOHR, COULOMB

import test_pinn as tp

ELEMENTS = tp.ELEMENTS
PREFIXES = ("polarisation.", "polarisation_network.", "polarisation_scaling.")


def pol_model(seed=1, dispersion=False, alpha_factor=2.0, thole=0.39, perturb=0.5):
    """test_pinn's random pinn model plus a polarisation term with non-trivial polarisability
    networks (alpha_i varies between atoms); reference alpha from ASE's table times alpha_factor."""
    base = tp.torch_model(seed=seed)
    kw = {}
    if dispersion:
        c6, r0 = dispersion_reference(ELEMENTS)
        kw = dict(dispersion=True, dispersion_hidden=(5,), c6=c6 * 20.0, r0=r0, r_on=5.0, r_cut=8.0)
    m = TorchPinn(base.sf, hidden=(8, 6), activation="tanh", shift=base.short.shift.numpy(),
                  scale=base.short.scale.numpy(), reference_energies=np.array([-13.6, -1030.0, -2040.0]),
                  energy_scale=0.5, charge_hidden=(6,), charge_scheme="weighted", weight_hidden=(5,),
                  charge_reference=np.array([0.4, 0.1, -0.8]), charge_scale=0.3, sigma=np.array([0.5, 0.8, 0.7]),
                  accuracy=1e-12, seed=seed, polarisation=True, polarisation_hidden=(5,),
                  alpha=polarisation_reference(ELEMENTS) * alpha_factor, thole=thole, **kw)
    with torch.no_grad():
        m.short.load_state_dict(base.short.state_dict())
        m.charge.load_state_dict(base.charge.state_dict())
        gen = torch.Generator().manual_seed(seed + 11)
        nets = list(m.pol.parameters()) + (list(m.disp.parameters()) if dispersion else [])
        for p in nets:
            p.add_(torch.randn(p.shape, dtype=p.dtype, generator=gen) * perturb)
    return m


def pol_file(tmp_path, name="pol.afm", **kw):
    path = tmp_path / name
    save_model(path, pol_model(**kw).to_parameters())
    return path


def without_polarisation(tmp_path, path, name="nopol.afm"):
    _, rec = read_records(path)
    out = tmp_path / name
    write_records(out, {k: v for k, v in rec.items() if not k.startswith(PREFIXES)})
    return out


def molecules():
    """The protonated cluster (12 atoms, +1) and a neutral water-methane pair."""
    w = molecule("H2O")
    c = molecule("CH4")
    c.translate([2.9, 0.4, -0.3])
    n = w + c
    n.positions += np.random.default_rng(5).normal(scale=0.05, size=n.positions.shape)
    return [(tp.protonated_cluster(), 1.0), (n, 0.0)]


def _batch(m, frames, Q):
    b = collate([featurize(m.sf, a.positions, a.numbers, None, None) for a in frames])
    b.positions = torch.as_tensor(np.concatenate([a.positions for a in frames]))
    b.total_charge = torch.tensor(Q, dtype=torch.float64)
    return b, np.cumsum([0] + [len(a) for a in frames])


def test_reference_table():
    """alpha (A^3) from ASE's free-atom table vdWDB_alphaC6 (Bohr^3 converted)."""
    a = polarisation_reference(["H", "C", "O"])
    assert a == pytest.approx(np.array([4.5, 12.0, 5.4]) * BOHR ** 3, rel=1e-12)
    assert a == pytest.approx([0.6668, 1.7782, 0.8002], abs=1e-4)
    with pytest.raises(ValueError, match="Og"):
        polarisation_reference(["Og"])


@pytest.mark.parametrize("dispersion", [False, True])
def test_cpp_matches_pytorch(tmp_path, dispersion):
    """Both molecules (total charge +1 and 0) in one batch: energy to 1e-10 relative, forces to
    1e-10 eV/A, charges, and the dipole (sum q_i r_i + sum mu_i) agree; the term is sizeable."""
    m = pol_model(dispersion=dispersion)
    path = tmp_path / "m.afm"
    save_model(path, m.to_parameters())
    pot, nop = load(path), load(without_polarisation(tmp_path, path))
    frames, Q = zip(*molecules())
    b, off = _batch(m, frames, list(Q))
    E, F, q, mu = m(b)
    for k, a in enumerate(frames):
        r = pot.compute(a, charge=Q[k])
        assert abs(r.energy - E[k].item()) < 1e-10 * max(1.0, abs(r.energy)), k
        assert np.abs(r.forces - F[off[k]:off[k + 1]].detach().numpy()).max() < 1e-10, k
        assert np.abs(r.charges - q[off[k]:off[k + 1]].detach().numpy()).max() < 1e-12
        assert np.abs(r.dipole - mu[k].detach().numpy()).max() < 1e-10
        assert abs(r.atomic_energies.sum() - r.energy) < 1e-9 * abs(r.energy)
        assert np.abs(r.forces.sum(axis=0)).max() < 1e-10
        rn = nop.compute(a, charge=Q[k])
        assert r.energy - rn.energy < -0.05  # the (negative) polarisation energy is there
        assert np.array_equal(r.charges, rn.charges)
        assert np.abs(r.dipole - rn.dipole).max() > 1e-3  # induced dipoles added


@pytest.mark.parametrize("dispersion", [False, True])
@pytest.mark.parametrize("which", [0, 1])
def test_finite_difference_forces(tmp_path, dispersion, which):
    pot = load(pol_file(tmp_path, dispersion=dispersion))
    atoms, Q = molecules()[which]
    r = pot.compute(atoms, charge=Q)
    Ffd = tp.fd_forces(pot, atoms, Q)
    assert np.abs(r.forces - Ffd).max() < 1e-6 * max(1.0, np.abs(Ffd).max())
    # molecule: the virial is sum_i r_i (x) F_i, symmetric
    W = atoms.positions.T @ r.forces
    assert np.abs(r.virial - W).max() < 1e-9 * max(1.0, np.abs(W).max())
    assert np.allclose(r.virial, r.virial.T, atol=1e-9)


@pytest.mark.parametrize("which", [0, 1])
def test_alpha_chain_rule_term_is_needed(tmp_path, which):
    """Forces with alpha_i held fixed (PyTorch, alpha detached) differ from the exact ones (which
    the core reproduces) by far more than the finite-difference tolerance: dropping the term
    dE/dalpha_i dalpha_i/dG_i would fail test_finite_difference_forces."""
    m = pol_model()
    save_model(tmp_path / "m.afm", m.to_parameters())
    pot = load(tmp_path / "m.afm")
    atoms, Q = molecules()[which]
    b, _ = _batch(m, [atoms], [Q])
    _, F, _, _ = m(b)
    fixed = m.polarisabilities
    m.polarisabilities = lambda G, s: fixed(G, s).detach()
    _, F_fixed, _, _ = m(b)
    assert np.abs(pot.compute(atoms, charge=Q).forces - F.detach().numpy()).max() < 1e-10
    assert (F_fixed - F).abs().max().item() > 1e-3


def test_scf_equations_and_stationarity():
    """The induced dipoles solve mu_i = alpha_i (E_i^q + sum_j T_ij mu_j) (residual ~1e-12 e*A),
    E_pol equals the full functional U(mu) = k_e [sum mu^2 / 2 alpha - mu.E^q - mu T mu / 2] at
    the solution, and U is stationary there (so forces need no dmu/dr)."""
    m = pol_model()
    atoms, Q = molecules()[0]
    b, _ = _batch(m, [atoms], [Q])
    G = b.G
    q = m.charges(G, b.species, b.frame, 1, b.total_charge)
    alpha = m.polarisabilities(G, b.species).detach()
    R = b.positions
    E, mu, Eq, T = induced_dipoles(R, q.detach(), alpha, m.thole)
    res = mu.reshape(-1) / alpha.repeat_interleave(3) - Eq.reshape(-1) - T @ mu.reshape(-1)
    assert res.abs().max().item() * alpha.max().item() < 1e-12
    assert mu.abs().max().item() > 0.05

    def U(x):
        x = x.reshape(-1)
        return COULOMB * ((x * x / alpha.repeat_interleave(3)).sum() / 2 - x @ Eq.reshape(-1) - x @ T @ x / 2)

    assert U(mu).item() == pytest.approx(E.item(), rel=1e-12)
    x = mu.reshape(-1).clone().requires_grad_(True)
    (g,) = torch.autograd.grad(U(x), x)
    assert g.abs().max().item() < 1e-10


def test_two_atoms_analytic(tmp_path):
    """An H-C pair with fixed charges q_H = 0.7 e, q_C = 0 (charge networks zero, uniform scheme)
    and fixed polarisabilities alpha_H, alpha_C (polarisability networks constant): the core's
    E_pol is the closed form of the 2 x 2 axial problem,

        s = a r^3 / sqrt(a_H a_C), l3 = 1 - e^-s, l5 = 1 - (1 + s) e^-s
        E = q_H l3 / r^2 (field at C),  tau = (3 l5 - l3) / r^3 (axial T),
        mu_C = a_C E / (1 - a_H a_C tau^2),  mu_H = a_H tau mu_C,
        E_pol = -k_e mu_C E / 2 = -k_e a_C E^2 / (2 (1 - a_H a_C tau^2))

    (-k_e alpha E^2 / 2 with the Thole-damped field when alpha_H -> 0); and the dipole gains
    mu_H + mu_C along the axis."""
    ref = np.array([0.7, 0.0, -0.8])
    m2 = TorchPinn(tp.torch_model().sf, hidden=(8, 6), charge_hidden=(6,), charge_scheme="uniform", charge_reference=ref,
                   charge_scale=0.3, sigma=np.array([0.5, 0.8, 0.7]), reference_energies=np.zeros(3), seed=1,
                   polarisation=True, polarisation_hidden=(5,), alpha=np.array([0.9, 1.7, 0.8]), thole=0.39)
    with torch.no_grad():
        for p in m2.charge.parameters():
            p.zero_()
        b0 = 0.4
        for p in m2.pol.parameters():
            p.zero_()
        for net in m2.pol.members[0]:
            [l for l in net if isinstance(l, torch.nn.Linear)][-1].bias.fill_(b0)
    path = tmp_path / "pair.afm"
    save_model(path, m2.to_parameters())
    pot, nop = load(path), load(without_polarisation(tmp_path, path))
    f = np.log1p(np.exp(b0)) + 1e-3
    aH, aC, a, qH = 0.9 * f, 1.7 * f, 0.39, 0.7
    for r in (0.8, 1.1, 2.0, 4.0, 9.0):
        at = Atoms("HC", positions=[[0, 0, 0], [r, 0, 0]])
        ra, rb = pot.compute(at, charge=qH), nop.compute(at, charge=qH)
        assert ra.charges == pytest.approx([qH, 0.0], abs=1e-14)
        s = a * r ** 3 / np.sqrt(aH * aC)
        l3 = 1 - np.exp(-s)
        l5 = 1 - (1 + s) * np.exp(-s)
        E = qH * l3 / r ** 2
        tau = (3 * l5 - l3) / r ** 3
        muC = aC * E / (1 - aH * aC * tau ** 2)
        muH = aH * tau * muC
        e_pol = -COULOMB * aC * E ** 2 / (2 * (1 - aH * aC * tau ** 2))
        assert ra.energy - rb.energy == pytest.approx(e_pol, rel=1e-9, abs=1e-12), r
        assert ra.dipole - rb.dipole == pytest.approx([muH + muC, 0, 0], rel=1e-10, abs=1e-14), r
    # far apart: the undamped single-polarisable-atom limit -k_e alpha E^2 / 2
    r = 9.0
    at = Atoms("HC", positions=[[0, 0, 0], [r, 0, 0]])
    d = pot.compute(at, charge=qH).energy - nop.compute(at, charge=qH).energy
    assert d == pytest.approx(-COULOMB * aC * (qH / r ** 2) ** 2 / 2, rel=1e-4)


def test_water_dimer_sanity():
    """Reference polarisabilities, AMOEBA Thole a = 0.39, TIP3P point charges, a linear
    hydrogen-bonded dimer (O-O 2.91 A, O-H 0.9572 A, 104.52 deg).

    * E_pol of a monomer is negative and large (-0.600 eV): every pair counts, intramolecular
      ones included (the model has no topology, so no AMOEBA-style 1-2/1-3 exclusions).
    * The induction energy between the molecules alone (field of the other molecule's charges
      only, dipoles fully coupled) is -0.087 eV = -2.0 kcal/mol, the size of the water dimer's
      induction energy in AMOEBA and SAPT (about -1.5 to -2 kcal/mol).
    * With every pair included, E_pol(dimer) - 2 E_pol(monomer) is +0.229 eV: the acceptor's field
      at the donor H partly cancels the donor O's own field there. Stated in docs/pinn.md."""
    al = dict(zip(["H", "O"], polarisation_reference(["H", "O"])))
    qd = {"O": -0.834, "H": 0.417}
    th, r = np.radians(104.52), 0.9572
    A = Atoms("OHH", positions=[[0, 0, 0], [r, 0, 0], [r * np.cos(th), r * np.sin(th), 0]])
    B = Atoms("OHH", positions=[[0, 0, 0], [r * np.cos(th / 2), 0, r * np.sin(th / 2)],
                                [r * np.cos(th / 2), 0, -r * np.sin(th / 2)]])
    B.translate([2.91, 0, 0])
    D = A + B

    def tensors(a):
        R = torch.as_tensor(a.positions)
        q = torch.tensor([qd[s] for s in a.get_chemical_symbols()], dtype=torch.float64)
        x = torch.tensor([al[s] for s in a.get_chemical_symbols()], dtype=torch.float64)
        return (R, q, x), induced_dipoles(R, q, x, 0.39)

    _, (eA, _, _, _) = tensors(A)
    _, (eB, _, _, _) = tensors(B)
    (R, q, x), (eD, _, _, T) = tensors(D)
    eA, eB, eD = eA.item(), eB.item(), eD.item()
    assert eA == pytest.approx(-0.600, abs=1e-3) and eB == pytest.approx(eA, rel=1e-12)
    assert eD < 0 and eD - eA - eB == pytest.approx(0.229, abs=1e-3)
    # intermolecular field only (same damping), dipoles coupled by the same T
    mol = np.array([0, 0, 0, 1, 1, 1])
    Ei = np.zeros((6, 3))
    P, qn, xn = D.positions, q.numpy(), x.numpy()
    for i in range(6):
        for j in range(6):
            if mol[i] != mol[j]:
                d = P[i] - P[j]
                rr = np.linalg.norm(d)
                Ei[i] += qn[j] * -np.expm1(-0.39 * rr ** 3 / np.sqrt(xn[i] * xn[j])) * d / rr ** 3
    mu = np.linalg.solve(np.diag(1 / np.repeat(xn, 3)) - T.numpy(), Ei.reshape(-1))
    e_ind = -0.5 * COULOMB * mu @ Ei.reshape(-1)
    assert e_ind == pytest.approx(-0.0875, abs=1e-3)
    assert -2.5 < e_ind / 0.0433641 < -1.0  # kcal/mol


def test_without_records_unchanged(tmp_path):
    """Without the polarisation records nothing is written and the outputs are those of the plain
    model bit for bit."""
    plain = tp.torch_model().to_parameters()
    assert plain.polarisation is None
    assert not any(k.startswith("polarisation") for k in plain.to_records())
    path = pol_file(tmp_path)
    nop = load(without_polarisation(tmp_path, path))
    save_model(tmp_path / "base.afm", tp.torch_model(seed=1).to_parameters())
    base = load(tmp_path / "base.afm")
    for atoms, Q in list(tp.systems().values()) + molecules():
        a, b = nop.compute(atoms, charge=Q), base.compute(atoms, charge=Q)
        assert a.energy == b.energy and np.array_equal(a.forces, b.forces) and np.array_equal(a.virial, b.virial)
        assert np.array_equal(a.charges, b.charges) and np.array_equal(a.atomic_energies, b.atomic_energies)
        assert np.array_equal(a.dipole, b.dipole)
    assert dict(base.describe())["polarisation"] == "none"
    assert "Thole damping a = 0.39" in dict(load(path).describe())["polarisation"]


def test_round_trip(tmp_path):
    path = pol_file(tmp_path, dispersion=True)
    p = read_model(path)
    assert p.polarisation is not None and p.polarisation.thole == 0.39 and p.dispersion is not None
    save_model(tmp_path / "again.afm", p)
    _, a = read_records(path)
    _, b = read_records(tmp_path / "again.afm")
    assert set(a) == set(b)
    assert {"polarisation.alpha", "polarisation.thole", "polarisation_network.shared",
            "polarisation_scaling.0.shift"} <= set(a)
    atoms, Q = molecules()[0]
    assert load(path).compute(atoms, charge=Q).energy == load(tmp_path / "again.afm").compute(atoms, charge=Q).energy
    assert "Thole" in dict(p.describe())["polarisation"]


@pytest.mark.parametrize("changes, drop, match", [
    ({"polarisation.alpha": np.array([1.0, -2.0, 3.0])}, None, "polarisation.alpha"),
    ({"polarisation.alpha": np.array([1.0, 0.0, 3.0])}, None, "polarisation.alpha"),
    ({"polarisation.alpha": np.array([1.0, 2.0])}, None, "polarisation.alpha"),
    ({"polarisation.thole": 0.0}, None, "polarisation.thole"),
    ({"polarisation.thole": -0.39}, None, "polarisation.thole"),
    ({"polarisation.thole": 1000.0}, None, "polarisation.thole"),
    ({}, "polarisation.thole", "polarisation.thole"),
    ({}, "polarisation.alpha", "polarisation.alpha"),
    ({}, "polarisation_network.0.0.0.weight", "polarisation_network.0.0.0.weight"),
])
def test_bad_records(tmp_path, changes, drop, match):
    _, rec = read_records(pol_file(tmp_path))
    rec.update(changes)
    if drop:
        del rec[drop]
    path = tmp_path / "bad.afm"
    write_records(path, rec)
    with pytest.raises(ModelFileError, match=match):
        read_model(path)
    with pytest.raises(ValueError, match=match):
        load(path)


def test_lone_polarisation_record_refused(tmp_path):
    _, rec = read_records(tp.model_file(tmp_path))
    rec["polarisation.thole"] = 0.39
    write_records(tmp_path / "m.afm", rec)
    with pytest.raises(ModelFileError, match="polarisation.alpha"):
        read_model(tmp_path / "m.afm")
    with pytest.raises(ValueError, match="polarisation.alpha"):
        load(tmp_path / "m.afm")


@pytest.mark.parametrize("kind", ["cubic", "triclinic"])
def test_periodic_cpp_matches_pytorch(tmp_path, kind):
    """Periodic cells (dipolar Ewald sum): the core equals PyTorch's induced_dipoles_periodic (with
    the frame's EwaldSetup and with the training-time FrozenEwald) for energy (1e-10 relative),
    forces (1e-10 eV/A) and dipole (sum q_i r_i + sum mu_i, positions as given); the term is sizeable."""
    m = pol_model()
    path = tmp_path / "m.afm"
    save_model(path, m.to_parameters())
    pot, nop = load(path), load(without_polarisation(tmp_path, path))
    atoms, Q = tp.systems()[kind]
    r, rn = pot.compute(atoms, charge=Q), nop.compute(atoms, charge=Q)
    assert r.energy - rn.energy < -0.05
    assert np.abs(r.dipole - rn.dipole).max() > 1e-3  # induced dipoles added
    b = collate([featurize(m.sf, atoms.positions, atoms.numbers, atoms.cell.array, atoms.pbc)])
    b.positions = torch.as_tensor(atoms.positions)
    b.total_charge = torch.tensor([Q], dtype=torch.float64)
    sig = np.asarray(m.sigma)[[ELEMENTS.index(s) for s in atoms.get_chemical_symbols()]]
    setup = EwaldSetup(atoms.positions, atoms.cell.array, sig, m.accuracy)
    for st in (setup, FrozenEwald(atoms.positions, setup, sig)):
        b.ewald = [(0, 0, len(atoms), st)]
        E, F, q, mu = m(b)
        assert abs(r.energy - E[0].item()) < 1e-10 * abs(r.energy)
        assert np.abs(r.forces - F.detach().numpy()).max() < 1e-10
        assert np.abs(r.dipole - mu[0].detach().numpy()).max() < 1e-10


@pytest.mark.parametrize("kind", ["cubic", "triclinic"])
def test_periodic_finite_differences(tmp_path, kind):
    """Forces and the virial (symmetric strain of cell and positions) of the periodic sum against
    central finite differences; the virial is symmetric (rotational invariance at fixed mu)."""
    pot = load(pol_file(tmp_path))
    atoms, Q = tp.systems()[kind]
    r = pot.compute(atoms, charge=Q)
    Ffd = tp.fd_forces(pot, atoms, Q)
    assert np.abs(r.forces - Ffd).max() < 1e-6 * max(1.0, np.abs(Ffd).max())
    Wfd = tp.fd_virial(pot, atoms, Q)
    assert np.abs(r.virial - Wfd).max() < 1e-6 * max(1.0, np.abs(Wfd).max())
    assert np.abs(r.virial - r.virial.T).max() < 1e-10 * max(1.0, np.abs(Wfd).max())


def test_periodic_atoms_outside_the_cell(tmp_path):
    """Atoms moved by lattice vectors (outside the cell, as between LAMMPS re-neighbourings) give
    the same energy, forces and virial as the wrapped cell."""
    pot = load(pol_file(tmp_path))
    atoms, Q = tp.systems()["triclinic"]
    moved = atoms.copy()
    moved.positions[::2] += atoms.cell.array[0] - 2 * atoms.cell.array[2]
    moved.positions[1::3] -= atoms.cell.array[1]
    r, rm = pot.compute(atoms, charge=Q), pot.compute(moved, charge=Q)
    assert abs(r.energy - rm.energy) < 1e-10 * abs(r.energy)
    assert np.abs(r.forces - rm.forces).max() < 1e-9
    assert np.abs(r.virial - rm.virial).max() < 1e-9


@pytest.mark.parametrize("which", [0, 1])
def test_periodic_large_box_limit(tmp_path, which):
    """A molecule (charged +1 and neutral) in cubic boxes of 15-40 A: the periodic E_pol tends to
    the open-boundary one with the 1/L^3 of the images' dipolar fields (L^3 (E_per - E_open)
    converges; the Ewald splitting parameter changes with L), so the periodic sum is neither
    missing images nor counting them twice."""
    path = pol_file(tmp_path)
    pot, nop = load(path), load(without_polarisation(tmp_path, path))
    a, Q = molecules()[which]
    scaled = []
    for L in (15.0, 20.0, 30.0, 40.0):
        b = a.copy()
        b.set_cell([L, L, L])
        b.pbc = True
        b.center()
        e_per = pot.compute(b, charge=Q).energy - nop.compute(b, charge=Q).energy
        e_open = pot.compute(b.positions, b.numbers, charge=Q).energy - \
            nop.compute(b.positions, b.numbers, charge=Q).energy
        assert e_open < -0.1
        scaled.append((e_per - e_open) * L ** 3)
    assert abs(scaled[-1]) > 1.0  # the images' interaction is there
    assert abs(scaled[-1] / scaled[-2] - 1.0) < 0.01 and abs(scaled[-2] / scaled[-3] - 1.0) < 0.03


def test_threads_and_bad_torch_arguments(tmp_path):
    pot = load(pol_file(tmp_path))
    for atoms, Q in molecules() + [tp.systems()["triclinic"]]:
        r1, r2 = pot.compute(atoms, charge=Q, threads=1), pot.compute(atoms, charge=Q, threads=2)
        assert r1.energy == r2.energy and np.array_equal(r1.forces, r2.forces)
        assert np.array_equal(r1.virial, r2.virial)
    with pytest.raises(ValueError, match="alpha"):
        pol_model(alpha_factor=-1.0)
    with pytest.raises(ValueError, match="thole"):
        pol_model(thole=0.0)


def test_polarisation_catastrophe_refused(tmp_path):
    """Large polarisabilities with hardly any damping (Thole a = 100: the damping switches off
    within ~0.3 A): 1 - alpha^1/2 T alpha^1/2 is not positive definite; the core refuses with a
    clear error instead of returning nonsense."""
    pot = load(pol_file(tmp_path, alpha_factor=5.0, thole=100.0, perturb=0.0))
    atoms, Q = molecules()[0]
    with pytest.raises(ValueError, match="polarisation catastrophe"):
        pot.compute(atoms, charge=Q)


def test_training_with_polarisation(tmp_path):
    """``pinn: {polarisation: true}`` trains on molecules, writes the records (ASE reference
    alpha, the configured Thole a), and the core evaluates the written model; periodic data train
    too (dipolar Ewald sum); bad keys are refused by name."""
    from atomforge.train import train
    from atomforge.train.config import ConfigError

    data = tp._dimers(tmp_path, n=16)
    cfg = tp._cfg(data, polarisation=True, polarisation_hidden=[4], thole=0.5, dispersion=True,
                  dispersion_hidden=[3], dispersion_r_on=4.0, dispersion_r_cut=6.0)
    cfg["training"]["epochs"] = 2
    m = train(cfg, tmp_path / "run", progress=False, log=lambda s: None)
    assert np.isfinite(m["test"]["forces_mae"]) and m["evaluated_by"].startswith("atomforge C++")
    p = read_model(tmp_path / "run" / "model.afm")
    assert p.polarisation is not None and p.polarisation.thole == 0.5
    assert np.array_equal(p.polarisation.alpha, polarisation_reference(["H", "O"]))
    per = tp._dimers(tmp_path, n=12, periodic=True, name="per.xyz")
    cfg = tp._cfg(per, polarisation=True, polarisation_hidden=[4])
    cfg["training"]["epochs"] = 2
    m = train(cfg, tmp_path / "per", progress=False, log=lambda s: None)
    assert np.isfinite(m["test"]["forces_mae"]) and m["evaluated_by"].startswith("atomforge C++")
    assert read_model(tmp_path / "per" / "model.afm").polarisation is not None
    for kw, match in (({"thole": 0.0}, "pinn.thole"), ({"thole": 200.0}, "pinn.thole"),
                      ({"polarisation": 1}, "pinn.polarisation")):
        with pytest.raises(ConfigError, match=match):
            train(tp._cfg(data, **kw), tmp_path / "bad2", progress=False, log=lambda s: None)


def test_openmm_molecule_and_periodic(tmp_path):
    """OpenMM's AtomForgeForce evaluates the model with the polarisation term for a non-periodic
    and a periodic System: energy and forces equal the Python API to 1e-8 relative."""
    openmm, afo = tp._openmm()
    path = pol_file(tmp_path)
    pos, num, _ = tp._openmm_cases()["molecule"]
    ref = load(path).compute(pos, num)
    nop = load(without_polarisation(tmp_path, path)).compute(pos, num)
    assert ref.energy - nop.energy < -0.05
    e, F = tp._openmm_evaluate(openmm, afo.AtomForgeForce(str(path), num, periodic=False), len(num), pos, "Reference")
    ev = 96.48533212331002  # kJ/mol per eV
    assert e == pytest.approx(ref.energy * ev, rel=1e-8, abs=0)
    fr = ref.forces * ev * 10.0
    np.testing.assert_allclose(F, fr, rtol=0, atol=1e-8 * np.abs(fr).max())
    pos, num, cell = tp._openmm_cases()["cubic"]
    ref = load(path).compute(pos, num, cell, [True] * 3)
    e, F = tp._openmm_evaluate(openmm, afo.AtomForgeForce(str(path), num, periodic=True), len(num), pos, "Reference",
                               cell)
    assert e == pytest.approx(ref.energy * ev, rel=1e-8, abs=0)
    fr = ref.forces * ev * 10.0
    np.testing.assert_allclose(F, fr, rtol=0, atol=1e-8 * np.abs(fr).max())


def test_too_many_atoms_refused(tmp_path):
    """The dense solve is limited to 2000 atoms (MAX_POLARISABLE_ATOMS); beyond, a clear error."""
    from atomforge.models.pinn import MAX_POLARISABLE_ATOMS

    pot = load(pol_file(tmp_path))
    n = MAX_POLARISABLE_ATOMS + 1
    g = np.stack(np.meshgrid(*[np.arange(13)] * 3, indexing="ij"), -1).reshape(-1, 3)[:n] * 2.0
    atoms = Atoms(numbers=np.full(n, 1), positions=g)
    with pytest.raises(ValueError, match="2001 atoms exceed the limit of 2000"):
        pot.compute(atoms, charge=0.0)


def test_mutated_polarisation_model_files_give_clear_errors(tmp_path):
    """200 seeded mutations of a pinn model file with the polarisation records
    (tests/model_fuzz.py): both readers give the documented error or load, agree on which files
    they accept, and what loads evaluates."""
    import model_fuzz

    seed = pol_file(tmp_path).read_bytes()
    assert model_fuzz.run_case(seed) == {"python": "ok", "core": "ok", "compute": "ok"}
    findings, caught = model_fuzz.fuzz_seed_file(seed, 200, 16)
    assert not findings, findings[:10]
    assert caught > 50


def test_blocked_solve_larger_cluster(tmp_path):
    """48 atoms (a 144 x 144 system: three 64-column blocks of the core's blocked Cholesky, panel
    and trailing updates exercised): the core equals PyTorch (torch.linalg.solve) to 1e-10 and
    gives the same bits on 1 and 2 threads."""
    m = pol_model(alpha_factor=1.0)
    save_model(tmp_path / "m.afm", m.to_parameters())
    pot = load(tmp_path / "m.afm")
    rng = np.random.default_rng(3)
    a = None
    for p in [(i, j, k) for i in range(4) for j in range(2) for k in range(2)]:
        w = molecule("H2O")
        w.rotate(rng.uniform(0, 360), rng.normal(size=3))
        w.translate(np.array(p) * 3.1)
        a = w if a is None else a + w
    b, _ = _batch(m, [a], [0.0])
    E, F, _, mu = m(b)
    r1, r2 = pot.compute(a, threads=1), pot.compute(a, threads=2)
    assert r1.energy == r2.energy and np.array_equal(r1.forces, r2.forces)
    assert abs(r1.energy - E[0].item()) < 1e-10 * abs(r1.energy)
    assert np.abs(r1.forces - F.detach().numpy()).max() < 1e-10
    assert np.abs(r1.dipole - mu[0].detach().numpy()).max() < 1e-10


def test_ase_calculator(tmp_path):
    """ASE: energy, forces and the dipole (permanent plus induced) of the core; charge from
    atoms.info."""
    from atomforge.ase import AtomForgeCalculator

    path = pol_file(tmp_path)
    atoms, Q = molecules()[0]
    atoms = atoms.copy()
    atoms.info["charge"] = Q
    atoms.calc = AtomForgeCalculator(str(path))
    r = load(path).compute(atoms, charge=Q)
    assert atoms.get_potential_energy() == pytest.approx(r.energy, rel=1e-14)
    assert np.allclose(atoms.get_forces(), r.forces, rtol=0, atol=1e-12)
    mu = atoms.get_dipole_moment()
    assert np.allclose(mu, r.dipole, rtol=0, atol=1e-12)
    assert np.abs(mu - r.charges @ atoms.positions).max() > 1e-3  # the induced dipoles are in it
    # periodic cell: the stress includes the polarisation term (-W / V, W checked by finite differences above)
    per, Qp = tp.systems()["triclinic"]
    per = per.copy()
    per.info["charge"] = Qp
    per.calc = AtomForgeCalculator(str(path))
    rp = load(path).compute(per, charge=Qp)
    nop = load(without_polarisation(tmp_path, path)).compute(per, charge=Qp)
    from ase.stress import full_3x3_to_voigt_6_stress

    s = full_3x3_to_voigt_6_stress(-rp.virial / per.get_volume())
    assert np.allclose(per.get_stress(), s, rtol=0, atol=1e-12)
    assert np.abs(rp.virial - nop.virial).max() > 1e-3  # the term contributes to the stress
