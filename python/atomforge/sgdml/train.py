"""Training of sGDML models (closed form or matrix-free conjugate gradients).

Linear system (as the sgdml package): with K the force-kernel matrix of the training geometries
(blocks J_i^T sum_p H(x_i - P_p x_j) P_p J_j, negative definite) and y = F / std the scaled force
labels, alpha = -(lambda I - K)^{-1} y. The model stores R_d_desc_alpha_i = J_i alpha_i; the
integration constant c is the mean of E_train - E_pred(c=0).

Solver: tiled in-place Cholesky of the lower triangle only (4 (3NM)^2 bytes, _LowerTiles) when
that fits the memory budget; otherwise conjugate gradients on the
core's kernel-vector product (O(M^2 S d) per product, nothing of size (3NM)^2 is stored) with a
Nystrom preconditioner on k inducing geometries (Woodbury identity), checkpointing its state
atomically every few iterations so that an interrupted run resumes.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import time
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import scipy.linalg

from .._fileio import atomic_write, atomic_write_text
from .model import SGDMLParameters, descriptors, jacobian_dot, save_sgdml, tril_perms
from .perms import find_perms

#: Coarse sigma grid of the default (adaptive) search; see train_sgdml.
COARSE_SIGMAS = (5, 10, 20, 40, 80)


def physical_memory_bytes() -> int:
    return int(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))


def available_memory_bytes() -> int:
    """MemAvailable of /proc/meminfo (free + reclaimable cache); free pages elsewhere."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError):
        return physical_memory_bytes() // 2


def default_memory_budget() -> int:
    """Bytes the solver may use: the memory currently available (MemAvailable) less a headroom
    of 2 GiB or 20 %, whichever is smaller."""
    avail = available_memory_bytes()
    return int(max(0.8 * avail, avail - 2 * 1024 ** 3))


def _core():
    from .. import _core
    return _core


def _permuted(X: np.ndarray, tp: np.ndarray) -> np.ndarray:
    """(M, d) -> (M*S, d) rows ordered (i, p): X[i][tp[p]]."""
    return np.ascontiguousarray(X[:, tp].reshape(-1, X.shape[1]))


class _Problem:
    """Training geometries R (M, N, 3), forces F (M, N, 3) eV/A, perms -> kernel operations."""

    def __init__(self, R, F, perms, sigma, lam, threads=0):
        self.R = np.ascontiguousarray(R, dtype=float)
        self.F = None if F is None else np.asarray(F, dtype=float)
        self.M, self.n = self.R.shape[:2]
        self.perms = np.asarray(perms, dtype=np.int64)
        self.tp = np.ascontiguousarray(tril_perms(self.perms))
        self.sigma, self.lam, self.threads = float(sigma), float(lam), threads
        self.X, self.jac = descriptors(self.R)
        self.Xp = _permuted(self.X, self.tp)
        self.dim = 3 * self.n * self.M

    def matvec(self, alpha: np.ndarray) -> np.ndarray:
        """K alpha (the negative-definite kernel), alpha (M*3N,)."""
        V = jacobian_dot(self.jac, alpha.reshape(self.M, self.n, 3), self.n)
        _, F = _core().sgdml_kernel_sum(self.R, self.Xp, _permuted(V, self.tp), self.sigma, self.threads)
        return F.ravel()

    def kernel_rows(self, rows, out=None, lower_only=False):
        return _core().sgdml_kernel_matrix(self.R, self.tp, self.sigma, np.asarray(rows, dtype=np.int64),
                                           lower_only, out, self.threads)

    def params(self, alpha: np.ndarray, std: float, c: float = 0.0) -> SGDMLParameters:
        V = jacobian_dot(self.jac, alpha.reshape(self.M, self.n, 3), self.n)
        return SGDMLParameters(numbers=self.numbers, perms=self.perms, sigma=self.sigma, std=std, c=c,
                               R_desc=self.X, R_d_desc_alpha=V, lam=self.lam,
                               alphas_F=alpha.reshape(self.M, 3 * self.n))


class _LowerTiles:
    """Lower triangle of a symmetric n x n matrix stored as square tiles (I >= J) of size b (the
    last row/column of tiles may be smaller): n^2/2 + n b/2 doubles instead of n^2. Each tile is
    a C-ordered (rows, cols) view into one buffer."""

    def __init__(self, n: int, b: int):
        self.n, self.b = int(n), int(b)
        self.T = -(-self.n // self.b)
        self.lo = [I * self.b for I in range(self.T)]
        self.sz = [min(self.b, self.n - lo) for lo in self.lo]
        offs, o = {}, 0
        for I in range(self.T):
            for J in range(I + 1):
                offs[I, J] = o
                o += self.sz[I] * self.sz[J]
        self.buf = np.empty(o)
        self.tile = {k: self.buf[v:v + self.sz[k[0]] * self.sz[k[1]]].reshape(self.sz[k[0]], self.sz[k[1]])
                     for k, v in offs.items()}

    @staticmethod
    def nbytes(n: int, b: int) -> int:
        T = -(-n // b)
        return 8 * (n * n // 2 + n * b // 2 + T * b)

    def cholesky(self, progress=False) -> None:
        """In place A = L L^T (right-looking tiled algorithm; reads the lower triangle only).
        Raises numpy.linalg.LinAlgError if A is not numerically positive definite."""
        from scipy.linalg.blas import dgemm, dtrsm

        t = self.tile
        # work of step k ~ (T - k)^2: report progress in flops, not steps
        bar = _bar(progress, total=sum((self.T - k) ** 2 for k in range(self.T)), desc="Cholesky (tiles)")
        for k in range(self.T):
            A = t[k, k]
            A[...] = np.tril(A) + np.tril(A, -1).T
            A[...] = np.linalg.cholesky(A)
            for i in range(k + 1, self.T):
                # L_ik = A_ik L_kk^-T  <=>  L_ik^T = L_kk^-1 A_ik^T; C-ordered tiles seen transposed are
                # Fortran-ordered, so BLAS works on them in place (L_kk^T is upper).
                dtrsm(1.0, A.T, t[i, k].T, side=0, lower=0, trans_a=1, overwrite_b=1)
            for i in range(k + 1, self.T):
                for j in range(k + 1, i + 1):
                    # A_ij -= L_ik L_jk^T  <=>  A_ij^T -= L_jk L_ik^T
                    dgemm(-1.0, t[j, k].T, t[i, k].T, beta=1.0, c=t[i, j].T, trans_a=1, overwrite_c=1)
            if bar:
                bar.update((self.T - k) ** 2)
        if bar:
            bar.close()

    def solve(self, y: np.ndarray) -> np.ndarray:
        """x = (L L^T)^-1 y after cholesky()."""
        t, lo, sz = self.tile, self.lo, self.sz
        z = np.array(y, dtype=float)
        for I in range(self.T):
            zi = z[lo[I]:lo[I] + sz[I]]
            for J in range(I):
                zi -= t[I, J] @ z[lo[J]:lo[J] + sz[J]]
            zi[...] = scipy.linalg.solve_triangular(t[I, I], zi, lower=True, check_finite=False)
        for I in reversed(range(self.T)):
            zi = z[lo[I]:lo[I] + sz[I]]
            for J in range(I + 1, self.T):
                zi -= t[J, I].T @ z[lo[J]:lo[J] + sz[J]]
            zi[...] = scipy.linalg.solve_triangular(t[I, I], zi, lower=True, trans="T", check_finite=False)
        return z


def _tile_points(n3: int, tile: int = 3000) -> int:
    """Training points per tile: tiles of about ``tile`` rows, aligned to whole 3N blocks."""
    return max(1, tile // n3)


def _slab_points(n3: int, M: int, slab_bytes: int = 256 * 1024 ** 2) -> int:
    return max(1, slab_bytes // (8 * n3 * n3 * M))


def closed_form_bytes(M: int, n_atoms: int) -> int:
    """Peak bytes of solve_closed_form (tiles + assembly slab), for solver selection."""
    n3 = 3 * n_atoms
    n = M * n3
    pts = min(M, _tile_points(n3))
    return _LowerTiles.nbytes(n, pts * n3) + 8 * n3 * n * min(pts, _slab_points(n3, M)) + 8 * 4 * n


def _assemble(prob: _Problem, lam: float, tiles: _LowerTiles, pts: int, progress) -> None:
    """Tiles of lambda I - K (lower triangle of blocks), computed by the core a few training
    points at a time (a slab of at most 256 MB)."""
    n3, M = 3 * prob.n, prob.M
    c = min(pts, _slab_points(n3, M))
    slab = np.empty((c * n3, M * n3))
    bar = _bar(progress, total=M, desc="kernel matrix")
    for I in range(tiles.T):
        for q0 in range(I * pts, min(M, (I + 1) * pts), c):
            q1 = min(M, (I + 1) * pts, q0 + c)
            rows = slab[:(q1 - q0) * n3]
            prob.kernel_rows(np.arange(q0, q1), out=rows, lower_only=True)
            lr = slice((q0 - I * pts) * n3, (q1 - I * pts) * n3)
            for J in range(I + 1):
                c0 = tiles.lo[J]
                np.negative(rows[:, c0:c0 + tiles.sz[J]], out=tiles.tile[I, J][lr])
            if bar:
                bar.update(q1 - q0)
        tiles.tile[I, I].flat[::tiles.sz[I] + 1] += lam
    if bar:
        bar.close()


def solve_closed_form(prob: _Problem, y: np.ndarray, progress=False, tile: int = 3000) -> np.ndarray:
    """alpha = -(lambda I - K)^{-1} y by a tiled Cholesky factorisation that stores only the lower
    triangle (8 (3NM)^2 / 2 bytes); lambda is raised tenfold (up to 5 times) if the matrix is not
    numerically positive definite."""
    n3 = 3 * prob.n
    pts = _tile_points(n3, tile)
    tiles = _LowerTiles(prob.dim, pts * n3)
    lam = prob.lam
    for attempt in range(6):
        _assemble(prob, lam, tiles, pts, progress)
        try:
            tiles.cholesky(progress)
            break
        except np.linalg.LinAlgError:
            if attempt == 5:
                raise
            lam *= 10.0
    prob.lam = lam
    return -tiles.solve(y)


def _bar(progress, **kw):
    if not progress:
        return None
    try:
        from tqdm.auto import tqdm
        return tqdm(**kw)
    except ImportError:
        return None


class _Nystrom:
    """Preconditioner (mu I + A_nm A_mm^{-1} A_mn)^{-1} of A = lambda I - K (Woodbury identity)."""

    def __init__(self, prob: _Problem, n_inducing: int, seed=0, rel_mu=1e-4):
        rng = np.random.default_rng(seed)
        idx = np.sort(rng.choice(prob.M, min(n_inducing, prob.M), replace=False))
        n3 = 3 * prob.n
        U = -prob.kernel_rows(idx).T  # (M*3N, k*3N): A_nm
        cols = (idx[:, None] * n3 + np.arange(n3)).ravel()
        Amm = U[cols]
        self.mu = max(prob.lam, rel_mu * float(np.mean(np.diag(Amm))))
        inner = self.mu * Amm + U.T @ U
        inner = 0.5 * (inner + inner.T)
        inner.flat[::inner.shape[0] + 1] += 1e-12 * np.mean(np.diag(inner))
        self.cf = scipy.linalg.cho_factor(inner, lower=True, check_finite=False)
        self.U = U

    def __call__(self, v):
        return (v - self.U @ scipy.linalg.cho_solve(self.cf, self.U.T @ v, check_finite=False)) / self.mu


def solve_cg(prob: _Problem, y: np.ndarray, memory_budget: int, checkpoint: Optional[Path] = None,
             tol: float = 1e-6, max_iter: int = 5000, progress=False, log=print, checkpoint_every: int = 10,
             seed: int = 0) -> np.ndarray:
    """Preconditioned CG on (lambda I - K) (-alpha) = y; resumes from ``checkpoint`` if it matches."""
    n3 = 3 * prob.n
    k = int(max(1, min(prob.M, (0.45 * memory_budget) / (8.0 * prob.dim * n3))))
    k = min(k, max(1, int(np.sqrt(0.2 * memory_budget / 8.0) // n3)))
    pre = _Nystrom(prob, k, seed)

    def A(v):
        return prob.lam * v - prob.matvec(v)

    key = hashlib.sha256(np.ascontiguousarray(prob.R).tobytes() + prob.perms.tobytes() +
                         np.array([prob.sigma, prob.lam]).tobytes() + y.tobytes()).hexdigest()
    x = np.zeros_like(y)
    r = y.copy()
    it0 = 0
    if checkpoint is not None and Path(checkpoint).exists():
        try:
            with np.load(checkpoint) as ck:
                if str(ck["key"]) == key:
                    x, it0 = ck["x"].copy(), int(ck["iteration"])
                    r = y - A(x)
                    log(f"resuming CG from {checkpoint} at iteration {it0}")
        except (OSError, ValueError, KeyError):
            log(f"ignoring unreadable checkpoint {checkpoint}")
    z = pre(r)
    p = z.copy()
    rz = r @ z
    ynorm = np.linalg.norm(y)
    bar = _bar(progress, total=max_iter, initial=it0, desc=f"CG (Nystrom k={k})")
    it = it0
    for it in range(it0, max_iter):
        res = np.linalg.norm(r) / ynorm
        if bar:
            bar.set_postfix(rel_residual=f"{res:.2e}")
            bar.update(1)
        if res < tol:
            break
        Ap = A(p)
        a = rz / (p @ Ap)
        x += a * p
        r -= a * Ap
        z = pre(r)
        rz_new = r @ z
        p = z + (rz_new / rz) * p
        rz = rz_new
        if checkpoint is not None and (it + 1) % checkpoint_every == 0:
            _save_ck(checkpoint, key, x, it + 1)
    if bar:
        bar.close()
    if checkpoint is not None:
        _save_ck(checkpoint, key, x, it + 1)
    prob.cg_iterations = it + 1 - it0
    prob.cg_residual = float(np.linalg.norm(y - A(x)) / ynorm)
    return -x


def _save_ck(path, key, x, it):
    def write(fh):
        buf = io.BytesIO()
        np.savez(buf, key=np.array(key), x=x, iteration=np.array(it))
        fh.write(buf.getvalue())
    atomic_write(path, write, binary=True)


def fit(R, E, F, numbers, perms, sigma, lam=1e-10, solver="auto", memory_budget=None, threads=0,
        checkpoint=None, progress=False, log=print, cg_tol=1e-6, cg_max_iter=5000) -> SGDMLParameters:
    """Fit one sGDML model (eV, Angstrom) and recover its integration constant from E."""
    prob = _Problem(R, F, perms, sigma, lam, threads)
    prob.numbers = np.asarray(numbers, dtype=np.int64)
    y = np.asarray(F, dtype=float).ravel()
    std = float(np.std(y))
    y = y / std
    budget = default_memory_budget() if memory_budget is None else int(memory_budget)
    need = closed_form_bytes(prob.M, prob.n) + 8 * prob.dim * (4 + 3 * prob.n)
    use = solver if solver != "auto" else ("closed_form" if need <= budget else "cg")
    if use == "closed_form":
        alpha = solve_closed_form(prob, y, progress=progress)
    elif use == "cg":
        alpha = solve_cg(prob, y, budget, checkpoint=checkpoint, tol=cg_tol, max_iter=cg_max_iter,
                         progress=progress, log=log)
    else:
        raise ValueError(f"unknown solver {solver!r} (auto, closed_form, cg)")
    params = prob.params(alpha, std)
    params.metadata["solver"] = use
    if use == "cg":
        params.metadata["cg_iterations"] = str(prob.cg_iterations)
        params.metadata["cg_relative_residual"] = f"{prob.cg_residual:.3e}"
    params.lam = prob.lam
    if E is not None:
        Ep, _ = predict(params, R, threads)
        params.c = float(np.mean(np.asarray(E) - Ep))
    params.cutoff = params.default_cutoff()
    return params


def predict(params: SGDMLParameters, R, threads=0):
    """Batched prediction with the core from parameters (no model file): E (B,), F (B, N, 3)."""
    tp = tril_perms(params.perms)
    E, F = _core().sgdml_kernel_sum(np.ascontiguousarray(R, dtype=float), _permuted(np.asarray(params.R_desc), tp),
                                    _permuted(np.asarray(params.R_d_desc_alpha), tp), params.sigma, threads)
    return E * params.std + params.c, F * params.std


def _as_dataset(data, energy_key, forces_key):
    from ..data import Dataset
    if isinstance(data, Dataset):
        return data
    from ..data import load_dataset
    kw = {}
    if energy_key:
        kw["energy_key"] = energy_key
    if forces_key:
        kw["forces_key"] = forces_key
    return load_dataset(data, **kw)


def _stack(ds, idx, what):
    arrs = [getattr(ds, what)[i] for i in idx]
    return np.ascontiguousarray(np.stack(arrs))


def train_sgdml(data, test_data=None, run_dir="run", n_train: int = 1000, n_valid: int = 200,
                sigmas: Optional[Sequence[float]] = None, lams: Sequence[float] = (1e-10,),
                energy_key: Optional[str] = None, forces_key: Optional[str] = None, seed: int = 0,
                n_select: Optional[int] = None, perms=None, solver: str = "auto",
                memory_budget: Optional[int] = None, threads: int = 0, progress: bool = True,
                log=print, n_perm_geometries: int = 40, cg_tol: float = 1e-6, cg_max_iter: int = 5000) -> dict:
    """Train an sGDML model and write run_dir/model.afm and run_dir/metrics.json.

    data / test_data: paths (any format load_dataset reads; energy_key/forces_key select e.g.
    rMD17's old_energies/old_forces) or Datasets, one molecule with one atom order.
    n_train training geometries are drawn (seeded) from data. Hyper-parameters sigma (and lambda)
    are chosen by the validation force MAE of models with n_select = min(n_train, max(200,
    0.4 n_train)) of the training points (a fifteenth of the cost of a full fit each), on n_valid
    validation geometries drawn from the rest of data, or, when data has no frames left, from
    the training frames the selection models did not see. sigmas=None (default) searches
    adaptively: the coarse grid COARSE_SIGMAS (5 ... 80, factors of 2), extended by factors of 2
    while the best value is at an end (at most 3 times), then refined by factors of sqrt(2)
    around the best; a given list is evaluated as is (one value: no selection). Models of 200
    points prefer too large a sigma: on malonaldehyde (1000 points, original MD17 labels) they
    picked 20 (test 0.451 kcal/mol/A) where 10 gives 0.408. The final model uses n_train points
    and the chosen (sigma, lambda); test errors are evaluated by the C++ core on all of
    test_data (or on data's remaining frames when test_data is None).
    Returns the metrics dict (same keys under "test" as the NN trainer).
    """
    from .. import load
    from ..train.metrics import UNITS, error_metrics

    t_start = time.time()
    for name, vals in (("sigmas", sigmas or ()), ("lams", lams)):
        bad = [v for v in vals if not (np.isfinite(v) and v > 0)]
        if bad:
            raise ValueError(f"{name} must be positive finite numbers, got {bad}")
    if not lams:
        raise ValueError("lams must not be empty")
    if n_train < 1:
        raise ValueError(f"n_train must be >= 1, got {n_train}")
    run = Path(run_dir)
    run.mkdir(parents=True, exist_ok=True)
    ds = _as_dataset(data, energy_key, forces_key)
    if not ds.same_composition or any(not np.array_equal(z_, ds.numbers[0]) for z_ in ds.numbers):
        raise ValueError(f"{ds.source or 'data'}: sGDML needs one molecule with the same atoms in the same order "
                         f"in every frame")
    if ds.energy is None or ds.forces is None:
        raise ValueError(f"{ds.source or 'data'}: sGDML training needs energies and forces")
    if np.asarray(ds.pbc).any():
        raise ValueError(f"{ds.source or 'data'}: sGDML models are non-periodic; the data has periodic frames")
    z = np.asarray(ds.numbers[0], dtype=np.int64)
    n_all = len(ds)
    if n_train > n_all:
        raise ValueError(f"n_train={n_train} but the data has only {n_all} frames")
    rng = np.random.default_rng(seed)
    order = rng.permutation(n_all)
    train_idx = np.sort(order[:n_train])
    rest = order[n_train:]
    n_select = min(n_train, max(200, int(round(0.4 * n_train)))) if n_select is None else min(n_select, n_train)
    select_idx = np.sort(train_idx[rng.permutation(n_train)[:n_select]]) if n_select < n_train else train_idx
    if len(rest) >= n_valid:
        valid_idx = np.sort(rest[:n_valid])
        rest = rest[n_valid:]
    else:
        pool = np.setdiff1d(np.arange(n_all), select_idx)
        valid_idx = np.sort(rng.permutation(pool)[:n_valid])
    if test_data is not None:
        ts = _as_dataset(test_data, energy_key, forces_key)
        test_idx = np.arange(len(ts))
    else:
        ts, test_idx = ds, np.sort(rest)
    R = _stack(ds, train_idx, "positions")
    Fr = _stack(ds, train_idx, "forces")
    E = np.asarray(ds.energy)[train_idx]

    t0 = time.time()
    if perms is None:
        perms = find_perms(R, z, n_geometries=n_perm_geometries, seed=seed)
    perms = np.asarray(perms, dtype=np.int64)
    t_perms = time.time() - t0
    log(f"sGDML: {len(perms)} permutations recovered ({t_perms:.1f} s)")

    # hyper-parameter selection on a small model
    Rv, Fv, Ev = (_stack(ds, valid_idx, "positions"), _stack(ds, valid_idx, "forces"), np.asarray(ds.energy)[valid_idx])
    sel_pos = np.searchsorted(train_idx, select_idx)
    grid = []
    t0 = time.time()

    def trial(s, lam):
        if any(g["sigma"] == s and g["lambda"] == lam for g in grid):
            return
        p = fit(R[sel_pos], E[sel_pos], Fr[sel_pos], z, perms, s, lam, "closed_form", memory_budget,
                threads, progress=False, log=log)
        Ep, Fp = predict(p, Rv, threads)
        m = error_metrics(Ep, Ev, np.full(len(Ev), len(z)), list(Fp), list(Fv))
        grid.append({"sigma": s, "lambda": lam, "n_train": int(n_select), "forces_mae": m["forces_mae"],
                     "energy_mae": m["energy_mae"]})
        log(f"  sigma={s:g} lambda={lam:g}: validation forces MAE {m['forces_mae']:.4f} eV/A, "
            f"energy MAE {m['energy_mae']:.4f} eV")

    def best():
        return min(grid, key=lambda g: g["forces_mae"])

    if sigmas is None:
        for lam in lams:
            for s in COARSE_SIGMAS:
                trial(float(s), lam)
        for _ in range(3):  # extend past an end of the grid
            b_, tried = best(), sorted({g["sigma"] for g in grid})
            if b_["sigma"] == tried[0]:
                trial(b_["sigma"] / 2, b_["lambda"])
            elif b_["sigma"] == tried[-1]:
                trial(b_["sigma"] * 2, b_["lambda"])
            else:
                break
        b_ = best()
        for f in (2 ** -0.5, 2 ** 0.5):
            trial(float(np.round(b_["sigma"] * f, 2)), b_["lambda"])
        sigma, lam = best()["sigma"], best()["lambda"]
    elif len(sigmas) * len(lams) > 1:
        for lam in lams:
            for s in sigmas:
                trial(float(s), lam)
        sigma, lam = best()["sigma"], best()["lambda"]
    else:
        sigma, lam = float(sigmas[0]), lams[0]
    t_select = time.time() - t0
    log(f"sGDML: sigma={sigma:g}, lambda={lam:g}; fitting {n_train} points")

    t0 = time.time()
    params = fit(R, E, Fr, z, perms, sigma, lam, solver, memory_budget, threads,
                 checkpoint=run / "cg_checkpoint.npz", progress=progress, log=log, cg_tol=cg_tol,
                 cg_max_iter=cg_max_iter)
    t_fit = time.time() - t0
    params.metadata.update({"training_data_sha256": ds.sha256(), "source": f"atomforge sGDML on {ds.source}",
                            "description": f"sGDML, {n_train} points, sigma {sigma:g}, {len(perms)} permutations"})
    save_sgdml(run / "model.afm", params)
    pot = load(run / "model.afm")

    def evaluate(dset, idx):
        ep, fp = [], []
        for i in idx:
            r = pot.compute(dset.positions[i], dset.numbers[i], threads=threads)
            ep.append(r.energy)
            fp.append(r.forces)
        return error_metrics(ep, np.asarray(dset.energy)[idx], np.asarray(dset.n_atoms)[idx], fp,
                             [dset.forces[i] for i in idx])

    from ..data.readers import describe_units

    test_m = evaluate(ts, test_idx)
    valid_m = evaluate(ds, valid_idx)
    wall = time.time() - t_start
    metrics = {"units": UNITS, "test": test_m, "validation": valid_m,
               "training": {"model": "sgdml", "n_train": int(n_train), "n_validation": int(len(valid_idx)),
                            "n_test": int(len(test_idx)), "n_select": int(n_select), "sigma": sigma, "lambda": params.lam,
                            "n_perms": int(len(perms)), "solver": params.metadata["solver"],
                            "hyperparameter_grid": grid, "seconds_perms": round(t_perms, 1),
                            "seconds_selection": round(t_select, 1), "seconds_fit": round(t_fit, 1),
                            "wall_seconds": round(wall, 1)},
               "data": {key: {"format": (d.metadata or {}).get("format"),
                              "length_unit": (d.metadata or {}).get("length_unit_name"),
                              "energy_unit": (d.metadata or {}).get("energy_unit_name"),
                              "units_from": (d.metadata or {}).get("units_from"),
                              "description": describe_units(d)}
                        for key, d in (("data", ds), ("test_data", ts if test_data is not None else None))
                        if d is not None},
               "evaluated_by": "atomforge C++ core (model.afm)"}
    atomic_write_text(run / "metrics.json", json.dumps(metrics, indent=2))
    atomic_write_text(run / "split.json", json.dumps({"train": train_idx.tolist(), "validation": valid_idx.tolist(),
                                                      "select": select_idx.tolist(), "seed": seed}))
    ck = run / "cg_checkpoint.npz"
    if ck.exists():
        ck.unlink()
    log(f"sGDML: test forces MAE {test_m['forces_mae']:.4f} eV/A ({test_m['forces_mae_kcal_mol']:.3f} kcal/mol/A), "
        f"energy MAE {test_m['energy_mae']:.4f} eV ({test_m['energy_mae_kcal_mol']:.3f} kcal/mol); {wall:.0f} s")
    return metrics
