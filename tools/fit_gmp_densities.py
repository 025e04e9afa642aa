#!/usr/bin/env python3
"""Regenerate atomforge's table of atomic pseudo-densities for GMP descriptors.

Output: ``python/atomforge/descriptors/data/gmp_pseudodensities.json`` (default), atomic valence
pseudo-densities written as sums of s-type Gaussians centred on the nucleus

    rho_Z(r) = sum_k c_k exp(-alpha_k r^2),   r in Angstrom, alpha_k in 1/Angstrom^2,
    c_k in electrons/Angstrom^3,   sum_k c_k (pi/alpha_k)^(3/2) = N_val(Z) exactly,

where N_val(Z) is the number of electrons treated explicitly by the GTH-PBE pseudopotential of
element Z (semicore shells included where the pseudopotential has them, e.g. Na q9, Fe q16,
Cu q11, Sn q4; see "n_valence" and "pseudopotential" per element in the JSON).

Method (all numbers are our own; nothing is taken from other GMP density tables)
-------------------------------------------------------------------------------
1. Free neutral atom, Kohn-Sham PBE in PySCF (molecular code, no periodic images), GTH-PBE
   pseudopotentials (Goedecker-Teter-Hutter / Krack, PySCF's ``gth-pbe``) with the matching
   DZVP-MOLOPT-SR-GTH basis (``gth-dzvp-molopt-sr``, CP2K's BASIS_MOLOPT; it covers H-Rn except
   La-Lu, the reason those are missing). Spherical basis functions.
2. Spherical symmetry by construction ("spherically averaged, spin-polarised UKS"): a UKS whose
   Fock matrix of each spin is averaged over m within every l block before diagonalisation (the
   scheme of PySCF's ``scf.atom_hf.AtomSphericAverageRHF``, applied per spin), and whose
   occupations are fractional and equal for all m of a shell: closed shells of the ground-state
   configuration (``pyscf.data.elements.CONFIGURATION``, e.g. Cr 3d5 4s1, Cu 3d10 4s1,
   Pd 4d10, Pt 5d9 6s1) fully occupied in both spins, the open shell of each l filled by
   Hund's rule (up spin first, maximal multiplicity), each spin's electrons spread evenly over
   the 2l+1 m components. Energy convergence 1e-10 Ha; the total (up + down) density is used.
3. The density is evaluated on 302-point Lebedev shells at the radii of a quadratic radial grid
   r_i = 10 (i/400)^2 Angstrom, i = 0..400 (dense near the nucleus) and averaged over angles
   (by construction it is spherical; the anisotropy is checked and recorded).
4. Fit of f(r) = 4 pi r^2 rho(r) in the L2 norm on that grid (trapezoid weights), i.e. the
   radially weighted density, with the electron count enforced by a penalty row during the fit
   and exactly by a final rescaling of the coefficients:
   * "elements" (positive Gaussians only; GaussianMultipoles(density_table="positive")): nonnegative least squares
     (scipy.optimize.nnls) on 60 log-spaced exponents 0.02..2000 1/Angstrom^2, neighbouring
     terms merged (population-weighted geometric mean of the exponents) or the largest split
     until K terms remain, then a Levenberg-Marquardt-type refinement
     (scipy.optimize.least_squares, trf, analytic Jacobian) of log populations and log exponents.
     K = 1..6 are tried (stopping early once two successive extra terms gained < 1e-4) and the
     smallest K with error <= 1.02 min_K(error) + 5e-4 is kept.
     NOTE: GTH valence pseudo-densities of most elements are shell-like (a hole at the nucleus,
     maximum at r > 0), which a sum of positive Gaussians centred at r = 0 (monotone decreasing)
     cannot represent; the positive fit then stops improving after 1-3 terms, at 4-26 % error
     (H, He, Li, Be: < 1 %; B-Mg: 4-8 %; Al and heavier: 14-26 %).
   * "elements_signed" (the table GMP uses by default, coefficients of either sign, rho_fit(r) >= 0 checked
     on 0..15 Angstrom, most diffuse term positive): least squares refinement of (populations,
     exponents) from 4 log-spaced starts and, for K > 3, from the best K-1 solution plus one new
     term; neighbouring exponents are kept a factor >= 1.5 apart and a small ridge (3e-3 x
     population / N_val) keeps cancelling pairs from growing (sum |population| <= 3.5 N_val).
     K = 3..6; the smallest K with error <= max(2e-3, 1.1 min_K(error)) is kept (errors
     2e-4..5e-3).
   The relative error reported per element is ||f_fit - f||_2 / ||f||_2 on the grid above.

Reproduce (from the repository root; needs ``pip install pyscf``, scipy, numpy):

    python tools/fit_gmp_densities.py                       # all 71 elements, 2 processes
    python tools/fit_gmp_densities.py --elements H C O --output /tmp/x.json

Generated with PySCF 2.14.0, NumPy 2.4.6, SciPy 1.17.1, Python 3.11.7. Run time: about 2.7 CPU-s
per element (SCF 1-4 s, fits 1-2 s), i.e. about 3 CPU-minutes for the 71 elements, 1.5-2 min
wall with the default 2 processes on 2 idle cores (6.4 min wall when it was made, on a shared
2-core machine with a load average of about 10).
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import sys
import time
import warnings
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")  # one BLAS/OpenMP thread per worker process

import numpy as np  # noqa: E402

BOHR_ANGSTROM = 0.52917721092  # CODATA 2010, PySCF's lib.param.BOHR

# H-Kr, Rb-Xe, Cs, Ba, Hf-Rn: every element that has both a GTH-PBE pseudopotential and a
# DZVP-MOLOPT-SR-GTH basis in PySCF.
DEFAULT_Z = list(range(1, 55)) + [55, 56] + list(range(72, 87))

N_R = 400
R_MAX = 10.0
R_GRID = R_MAX * (np.arange(N_R + 1) / N_R) ** 2
_dr = np.diff(R_GRID)
W_GRID = np.zeros_like(R_GRID)
W_GRID[:-1] += _dr / 2
W_GRID[1:] += _dr / 2
SW_GRID = np.sqrt(W_GRID)
R_CHECK = np.linspace(0.0, 15.0, 3001)  # positivity check of signed fits


# ----------------------------------------------------------------------------- PySCF part
def _spin_l_occupations(Z, ncore):
    """[(n_closed_shells, n_up_open, n_down_open) for l = 0..3] of the valence (non-core) shells."""
    from pyscf import gto
    from pyscf.data import elements

    core = gto.ecp.core_configuration(ncore, atom_symbol=elements.ELEMENTS[Z])
    out = []
    for l in range(4):
        cap = 2 * (2 * l + 1)
        nval = elements.CONFIGURATION[Z][l] - cap * core[l]
        nclosed, m = divmod(nval, cap)
        up = min(m, 2 * l + 1)
        out.append((nclosed, up, m - up))
    return out


def _make_sph_uks():
    from pyscf import gto, lib
    from pyscf.dft import uks
    from pyscf.scf import atom_hf

    class SphericalUKS(uks.UKS):
        """UKS for one atom: m-averaged l-block eigenproblem, fractional m-averaged occupations."""

        def eig(self, h, s, overwrite=False, x=None):
            ea, ca = atom_hf.AtomSphericAverageRHF.eig(self, h[0], s)
            eb, cb = atom_hf.AtomSphericAverageRHF.eig(self, h[1], s)
            return np.array((ea, eb)), np.array((ca, cb))

        def get_occ(self, mo_energy=None, mo_coeff=None):
            mol = self.mol
            occ_l = _spin_l_occupations(gto.charge(mol.atom_symbol(0)), mol.atom_nelec_core(0))
            occ = np.zeros((2, mol.nao))
            for spin in (0, 1):
                blocks = []
                for l in range(lib.param.L_MAX):  # same l order as AtomSphericAverageRHF.eig
                    degen = 2 * l + 1
                    nbas_l = int(mol._bas[mol._bas[:, gto.ANG_OF] == l, gto.NCTR_OF].sum())
                    if nbas_l == 0:
                        continue
                    o = np.zeros(nbas_l)
                    if l < 4:
                        nclosed, up, dn = occ_l[l]
                        o[:nclosed] = 1.0
                        frac = (up if spin == 0 else dn) / degen
                        if frac > 0:
                            o[nclosed] = frac
                    blocks.append(np.repeat(o, degen))
                occ[spin] = np.hstack(blocks)
            return occ

        def get_grad(self, mo_coeff, mo_occ, fock=None):
            return np.zeros(1)  # fractional occupations: converge on the energy (as atom_hf does)

    return SphericalUKS


def atom_density(Z):
    """Spherically averaged valence density (e/Angstrom^3) of the free atom on R_GRID."""
    from pyscf import gto, lib
    from pyscf.data import elements
    from pyscf.dft import gen_grid, numint

    lib.num_threads(1)
    # PySCF's GTH code probes optional integrals and warns when they are absent; harmless
    warnings.filterwarnings("ignore", message="Function int1e_r")
    sym = elements.ELEMENTS[Z]
    mol = gto.M(atom=f"{sym} 0 0 0", basis="gth-dzvp-molopt-sr", pseudo="gth-pbe", spin=None,
                verbose=0)
    occ = _spin_l_occupations(Z, mol.atom_nelec_core(0))
    nup = sum(n * (2 * l + 1) + u for l, (n, u, d) in enumerate(occ))
    ndn = sum(n * (2 * l + 1) + d for l, (n, u, d) in enumerate(occ))
    assert nup + ndn == mol.nelectron, (sym, nup, ndn, mol.nelectron)
    mol.spin = nup - ndn
    mol.build()
    mf = _make_sph_uks()(mol)
    mf.xc = "pbe"
    mf.grids.level = 3
    mf.conv_tol = 1e-10
    mf.max_cycle = 150
    mf.kernel()
    if not mf.converged:
        raise RuntimeError(f"SCF of {sym} did not converge")
    dm = mf.make_rdm1()
    dm = dm[0] + dm[1]
    ang = gen_grid.MakeAngularGrid(302)
    wa = ang[:, 3] / ang[:, 3].sum()
    pts = ((R_GRID / BOHR_ANGSTROM)[:, None, None] * ang[None, :, :3]).reshape(-1, 3)
    rho = numint.eval_rho(mol, numint.eval_ao(mol, pts), dm).reshape(len(R_GRID), -1)
    rho_avg = rho @ wa
    aniso = float(np.max(np.abs(rho - rho_avg[:, None])) / np.max(rho_avg))
    pp = mol._pseudo[sym] if isinstance(mol._pseudo, dict) else None
    return dict(symbol=sym, Z=Z, rho=rho_avg / BOHR_ANGSTROM**3, n_valence=int(mol.nelectron),
                spin=int(mol.spin), e_tot=float(mf.e_tot), anisotropy=aniso,
                pseudopotential=f"GTH-PBE-q{mol.nelectron}", nao=int(mol.nao))


# ----------------------------------------------------------------------------- fitting part
def _cols(a, r=R_GRID):
    """4 pi r^2 x (unit-population normalised Gaussian): columns (n_r, K)."""
    return 4 * np.pi * r[:, None] ** 2 * np.exp(-a[None, :] * r[:, None] ** 2) * (a[None, :] / np.pi) ** 1.5


def _rel_err(q, a, f):
    m = _cols(a) @ q
    return float(np.sqrt(W_GRID @ (m - f) ** 2) / np.sqrt(W_GRID @ f**2))


def _refine_positive(q0, a0, f, N, lam=10.0, max_nfev=400):
    """Refine log populations and log exponents (both stay positive), analytic Jacobian."""
    from scipy.optimize import least_squares

    K = len(q0)
    norm = np.sqrt(W_GRID @ f**2)

    def unpack(p):
        return np.exp(p[:K]), np.exp(np.clip(p[K:], -9.0, 11.0))

    def res(p):
        q, a = unpack(p)
        m = _cols(a) @ q
        return np.concatenate([(m - f) * SW_GRID / norm, [lam * (q.sum() - N) / N]])

    def jac(p):
        q, a = unpack(p)
        G = _cols(a)
        Jq = G * q[None, :]
        Ja = G * (1.5 - a[None, :] * R_GRID[:, None] ** 2) * q[None, :]
        J1 = np.hstack([Jq, Ja]) * (SW_GRID / norm)[:, None]
        Jn = np.concatenate([q, np.zeros(K)])[None, :] * lam / N
        return np.vstack([J1, Jn])

    p0 = np.concatenate([np.log(q0), np.log(a0)])
    sol = least_squares(res, p0, jac=jac, method="trf", max_nfev=max_nfev, xtol=1e-12,
                        ftol=1e-12, gtol=1e-12)
    q, a = unpack(sol.x)
    q = q * (N / q.sum())
    order = np.argsort(a)
    return q[order], a[order]


def fit_positive(f, N, K, lam=10.0):
    from scipy.optimize import nnls

    grid = np.geomspace(0.02, 2000.0, 60)
    norm = np.sqrt(W_GRID @ f**2)
    A = np.vstack([_cols(grid) * SW_GRID[:, None] / norm, lam * np.ones(len(grid)) / N])
    b = np.concatenate([f * SW_GRID / norm, [lam]])
    q, _ = nnls(A, b, maxiter=20000)
    comps = sorted([(q[i], grid[i]) for i in np.nonzero(q > 1e-8 * N)[0]], key=lambda t: t[1])
    while len(comps) > K:  # merge the neighbouring pair of smallest joint population
        j = int(np.argmin([comps[i][0] + comps[i + 1][0] for i in range(len(comps) - 1)]))
        (q1, a1), (q2, a2) = comps[j], comps[j + 1]
        comps[j:j + 2] = [(q1 + q2, float(np.exp((q1 * np.log(a1) + q2 * np.log(a2)) / (q1 + q2))))]
    while len(comps) < K:  # split the most populated term
        k = int(np.argmax([c[0] for c in comps]))
        q1, a1 = comps[k]
        comps[k:k + 1] = [(q1 / 2, a1 / 1.3), (q1 / 2, a1 * 1.3)]
    q0 = np.array([c[0] for c in comps])
    a0 = np.array([c[1] for c in comps])
    q, a = _refine_positive(q0, a0, f, N)
    return q, a, _rel_err(q, a, f)


def _rho_min_ok(q, a):
    rho = (np.exp(-a[None, :] * R_CHECK[:, None] ** 2) * (a / np.pi) ** 1.5) @ q
    return bool(rho.min() >= -1e-6 * np.abs(rho).max() and q[np.argmin(a)] > 0)


_LOG_GAP = np.log(1.5)  # signed fits: neighbouring exponents differ by a factor >= 1.5


def _unpack_signed(p, K):
    la = np.empty(K)
    la[0] = p[K]
    for k in range(1, K):
        la[k] = la[k - 1] + _LOG_GAP + np.logaddexp(0.0, p[K + k])
    return p[:K], np.exp(np.clip(la, -9.0, 11.0))


def _refine_signed(q0, a0, f, N, lam=10.0, pen=30.0, ridge=3e-3):
    """Populations of either sign, ordered exponents with ratio >= 1.5 (softplus gaps), a small
    ridge on the populations against large cancelling pairs, a penalty on negative density."""
    from scipy.optimize import least_squares

    K = len(q0)
    norm = np.sqrt(W_GRID @ f**2)
    o = np.argsort(a0)
    q0, la = q0[o], np.log(a0[o])
    for k in range(1, K):
        la[k] = max(la[k], la[k - 1] + _LOG_GAP + 1e-3)
    g = np.diff(la) - _LOG_GAP
    p0 = np.concatenate([q0, [la[0]], np.log(np.expm1(np.maximum(g, 1e-3)))])

    def res(p):
        q, a = _unpack_signed(p, K)
        m = _cols(a) @ q
        return np.concatenate([(m - f) * SW_GRID / norm, [lam * (q.sum() - N) / N],
                               pen * np.minimum(m, 0.0) * SW_GRID / norm, ridge * q / N])

    sol = least_squares(res, p0, method="trf", max_nfev=300, xtol=1e-12, ftol=1e-12)
    q, a = _unpack_signed(sol.x, K)
    return q * (N / q.sum()), a


def fit_signed(f, N, K, warm=None, lam=10.0):
    norm = np.sqrt(W_GRID @ f**2)
    inits = []
    for lo, hi in ((0.15, 30.0), (0.3, 100.0), (0.1, 300.0), (0.5, 500.0)):
        a0 = np.geomspace(lo, hi, K)
        A = np.vstack([_cols(a0) * SW_GRID[:, None] / norm, lam * np.ones(K) / N])
        b = np.concatenate([f * SW_GRID / norm, [lam]])
        inits.append((np.linalg.lstsq(A, b, rcond=None)[0], a0))
    if warm is not None:  # previous best (K-1 terms) plus one new small term
        qw, aw = warm
        for anew in (aw.max() * 3.0, aw.min() / 2.0, float(np.sqrt(aw.max() * aw.min()))):
            inits.append((np.append(qw, 0.01 * N), np.append(aw, anew)))
    best = None
    with np.errstate(over="ignore", invalid="ignore"):
        for q0, a0 in inits:
            q, a = _refine_signed(q0, a0, f, N)
            if not (np.all(np.isfinite(q)) and np.all(np.isfinite(a)) and _rho_min_ok(q, a)):
                continue
            e = _rel_err(q, a, f)
            if best is None or e < best[2]:
                best = (q, a, e)
    return best


def process(Z):
    t0 = time.time()
    d = atom_density(Z)
    t_scf = time.time() - t0
    f = 4 * np.pi * R_GRID**2 * d["rho"]
    N = d["n_valence"]
    n_int = float(W_GRID @ f)
    pos = {}
    for K in range(1, 7):
        pos[K] = fit_positive(f, N, K)
        if K >= 3 and pos[K][2] > pos[K - 1][2] - 1e-4 and pos[K - 1][2] > pos[K - 2][2] - 1e-4:
            break  # positive terms stopped helping (shell-like density), see the docstring
    emin = min(v[2] for v in pos.values())
    Kp = min(K for K, v in pos.items() if v[2] <= 1.02 * emin + 5e-4)
    sgn = {}
    warm = None
    for K in range(3, 7):
        res = fit_signed(f, N, K, warm)
        if res is not None:
            sgn[K] = res
            warm = res[:2]
    emin_s = min(v[2] for v in sgn.values())
    Ks = min(K for K, v in sgn.items() if v[2] <= max(2e-3, 1.1 * emin_s))

    def table(q, a):  # populations -> c (e/A^3), sorted by decreasing exponent
        c = q * (a / np.pi) ** 1.5
        order = np.argsort(-a)
        return [[float(c[i]), float(a[i])] for i in order]

    return dict(
        symbol=d["symbol"], Z=Z, n_valence=N, pseudopotential=d["pseudopotential"], spin=d["spin"],
        e_tot_hartree=d["e_tot"], density_integral=n_int, anisotropy=d["anisotropy"],
        positive=table(*pos[Kp][:2]), positive_err=pos[Kp][2],
        positive_err_by_K={str(K): v[2] for K, v in pos.items()},
        signed=table(*sgn[Ks][:2]), signed_err=sgn[Ks][2],
        signed_err_by_K={str(K): v[2] for K, v in sgn.items()},
        t_scf=t_scf, t_total=time.time() - t0)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--elements", nargs="*", help="element symbols (default: H-Xe, Cs, Ba, Hf-Rn)")
    ap.add_argument("--output", type=Path, default=Path(__file__).resolve().parents[1]
                    / "python/atomforge/descriptors/data/gmp_pseudodensities.json")
    ap.add_argument("--nproc", type=int, default=2)
    args = ap.parse_args(argv)
    import pyscf
    import scipy
    from pyscf.data import elements

    Zs = [elements.charge(s) for s in args.elements] if args.elements else DEFAULT_Z
    t0 = time.time()
    if args.nproc > 1:
        with mp.get_context("fork").Pool(args.nproc) as pool:
            results = pool.map(process, Zs, chunksize=1)
    else:
        results = [process(Z) for Z in Zs]
    results.sort(key=lambda d: d["Z"])
    wall = time.time() - t0
    out = {
        "source": ("atomforge tools/fit_gmp_densities.py: free-atom spherically averaged "
                   "spin-polarised PBE valence densities from PySCF %s with GTH-PBE "
                   "pseudopotentials (Goedecker, Teter, Hutter, PRB 54, 1703 (1996); Hartwigsen, "
                   "Goedecker, Hutter, PRB 58, 3641 (1998); Krack, TCA 114, 145 (2005)) and the "
                   "DZVP-MOLOPT-SR-GTH basis (VandeVondele, Hutter, JCP 127, 114105 (2007))"
                   % pyscf.__version__),
        "method": ("UKS/PBE of the neutral free atom with m-averaged l-block Fock matrices and "
                   "fractional m-averaged occupations (ground-state configuration, Hund's rule "
                   "per open shell), total density averaged over 302-point Lebedev shells; "
                   "least-squares fit of 4 pi r^2 rho(r) on r = 10 (i/400)^2 A, i = 0..400, "
                   "with the electron count imposed exactly. 'elements': positive "
                   "coefficients (NNLS on 60 log-spaced exponents, merged to K terms, then "
                   "nonlinear refinement; smallest K <= 6 within 1.02 min error + 5e-4). "
                   "'elements_signed': coefficients of either sign, rho_fit >= 0 for r <= 15 A, "
                   "exponent ratios >= 1.5, small ridge on populations, smallest K in 3..6 "
                   "within max(2e-3, 1.1 min error)."),
        "units": {"coefficient": "electrons/Angstrom^3", "exponent": "1/Angstrom^2",
                  "form": "rho(r) = sum_k c_k exp(-alpha_k r^2); entries are [c_k, alpha_k]",
                  "normalisation": "sum_k c_k (pi/alpha_k)^1.5 = n_valence"},
        "error_measure": "relative L2 error of 4 pi r^2 rho(r) on the fit grid (r <= 10 A)",
        "software": {"pyscf": pyscf.__version__, "numpy": np.__version__, "scipy": scipy.__version__,
                     "python": sys.version.split()[0]},
        "elements": {d["symbol"]: d["positive"] for d in results},
        "elements_signed": {d["symbol"]: d["signed"] for d in results},
        "fit_quality": {d["symbol"]: {
            "rel_l2_error": d["positive_err"], "n_gaussians": len(d["positive"]),
            "rel_l2_error_signed": d["signed_err"], "n_gaussians_signed": len(d["signed"]),
            "rel_l2_error_positive_by_K": d["positive_err_by_K"],
            "rel_l2_error_signed_by_K": d["signed_err_by_K"]} for d in results},
        "atoms": {d["symbol"]: {
            "Z": d["Z"], "n_valence": d["n_valence"], "pseudopotential": d["pseudopotential"],
            "basis": "DZVP-MOLOPT-SR-GTH", "two_S": d["spin"], "e_tot_hartree": d["e_tot_hartree"],
            "density_integral": d["density_integral"], "max_anisotropy": d["anisotropy"]}
            for d in results},
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(out, indent=1) + "\n")
    print(f"{'el':>3} {'Nval':>4} {'K+':>2} {'err+':>8} {'Ks':>2} {'err_s':>8} {'t_scf':>6} {'t':>6}")
    for d in results:
        print(f"{d['symbol']:>3} {d['n_valence']:4d} {len(d['positive']):2d} {d['positive_err']:8.4f} "
              f"{len(d['signed']):2d} {d['signed_err']:8.5f} {d['t_scf']:6.1f} {d['t_total']:6.1f}")
    print(f"wrote {args.output} ({len(results)} elements) in {wall:.0f} s wall")


if __name__ == "__main__":
    main()
