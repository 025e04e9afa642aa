"""Infrared spectra from dipole-moment time series (molecular dynamics).

The IR absorption lineshape of a classical trajectory is the Fourier transform of the
autocorrelation function (ACF) of the dipole time derivative (linear response; D. A. McQuarrie,
Statistical Mechanics (2000), ch. 21; M. Thomas, M. Brehm, R. Fligg, P. Voehringer, B. Kirchner,
Phys. Chem. Chem. Phys. 15, 6608 (2013), Eqs. 1-9)::

    S(nu) = integral dt  w(t) <mu'(0) . mu'(t)>  cos(2 pi c nu t)              (nu in cm^-1)

:func:`ir_spectrum` computes it as follows, for one or several trajectories of dipoles mu (T, 3)
sampled every ``dt`` femtoseconds:

1. mu' by the midpoint difference (mu_{k+1} - mu_k) / dt (its mean is removed per trajectory:
   a drifting centre of mass of a charged molecule adds a constant Q v_com);
2. the ACF by FFT (Wiener-Khinchin: zero-padded to >= 2T so that the circular correlation equals
   the linear one), C(tau) = sum_t mu'(t) . mu'(t+tau) / (number of pairs), averaged over
   trajectories with the pair counts as weights;
3. C truncated at ``max_lag`` and multiplied by a window w (Hann by default) that goes from 1 at
   tau = 0 to 0 at tau = max_lag; the resolution is about 1 / (c * max_lag * dt);
4. the cosine transform by FFT after zero padding to ``zero_padding`` times the lag range (a finer
   frequency grid, no new information);
5. division by sinc^2(pi c nu dt) (the transfer function of the difference in step 1, so that S is
   the spectrum of the exact derivative of the sampled dipole; ``correct_derivative``);
6. optionally the harmonic quantum correction factor Q(nu) = beta h c nu / (1 - exp(-beta h c nu))
   (R. Ramirez, T. Lopez-Ciudad, P. Kumar P, D. Marx, J. Chem. Phys. 121, 3973 (2004), Eq. 25),
   which multiplies the classical lineshape; it changes intensities, not peak positions.

Constants (c, h, k_B) come from the core's one table (:mod:`atomforge.units`).
"""
from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

__all__ = ["IRSpectrum", "ir_spectrum", "find_peak", "spectral_overlap", "plot_spectra", "read_dipole_series"]

WINDOWS = ("hann", "blackman", "gaussian", "triangle", "none")


@dataclass
class IRSpectrum:
    """An IR spectrum on a wavenumber grid.

    Attributes:
        wavenumbers: (K,) cm^-1, from 0 to the Nyquist wavenumber 1 / (2 c dt).
        intensity: (K,) the lineshape S (normalised as requested; raw units: (dipole unit / fs)^2 fs).
        lags: (L,) fs, the lags of the ACF used; acf: (L,) the windowed dipole-derivative ACF.
        info: the settings and derived numbers (dt_fs, max_lag, resolution_cm1, n_trajectories,
            n_frames, window, zero_padding, quantum_correction, temperature).
    """

    wavenumbers: np.ndarray
    intensity: np.ndarray
    lags: np.ndarray
    acf: np.ndarray
    info: Dict[str, object] = field(default_factory=dict)

    def peak(self, lo: float, hi: float) -> float:
        """Position (cm^-1) of the highest maximum in [lo, hi] (:func:`find_peak`)."""
        return find_peak(self.wavenumbers, self.intensity, lo, hi)

    def to_csv(self, path, columns: Optional[Dict[str, np.ndarray]] = None) -> None:
        """Write ``wavenumber_cm-1,intensity`` (plus extra named columns on the same grid)."""
        cols = {"wavenumber_cm-1": self.wavenumbers, "intensity": self.intensity}
        cols.update(columns or {})
        with open(path, "w", newline="") as fh:
            w = csv.writer(fh)
            fh.write(f"# IR spectrum from the dipole-derivative autocorrelation: {self.info}\n")
            w.writerow(list(cols))
            for row in zip(*cols.values()):
                w.writerow([f"{v:.8g}" for v in row])


def _window(name: str, n: int) -> np.ndarray:
    """One-sided lag window of n points: w[0] = 1, w[n-1] = 0 (except 'none')."""
    x = np.arange(n) / max(n - 1, 1)
    if name == "hann":
        return 0.5 * (1 + np.cos(np.pi * x))
    if name == "blackman":
        return 0.42 + 0.5 * np.cos(np.pi * x) + 0.08 * np.cos(2 * np.pi * x)
    if name == "gaussian":  # exp(-(3x)^2 / 2): 1.1e-2 at the end
        return np.exp(-0.5 * (3.0 * x) ** 2)
    if name == "triangle":
        return 1.0 - x
    if name == "none":
        return np.ones(n)
    raise ValueError(f"unknown window {name!r} (known: {', '.join(WINDOWS)})")


def _as_trajectories(dipoles) -> List[np.ndarray]:
    if isinstance(dipoles, np.ndarray) or (isinstance(dipoles, (list, tuple)) and len(dipoles) and
                                           np.ndim(dipoles[0]) <= 1):
        trajs = [np.asarray(dipoles, dtype=float)]  # one trajectory: (T, 3)
    else:
        trajs = [np.asarray(d, dtype=float) for d in dipoles]  # a list of (T_k, 3)
    if not trajs:
        raise ValueError("no dipole trajectories given")
    for k, d in enumerate(trajs):
        if d.ndim != 2 or d.shape[1] != 3:
            raise ValueError(f"trajectory {k}: dipoles must have shape (T, 3), got {d.shape}")
        if len(d) < 4:
            raise ValueError(f"trajectory {k}: {len(d)} frames; a spectrum needs at least 4")
        if not np.isfinite(d).all():
            raise ValueError(f"trajectory {k}: frame {int(np.argmax(~np.isfinite(d).all(axis=1)))} is not finite")
    return trajs


def ir_spectrum(dipoles, dt: float, *, max_lag: Optional[int] = None, resolution: Optional[float] = None,
                window: str = "hann", zero_padding: int = 4, correct_derivative: bool = True,
                quantum_correction: Optional[str] = None, temperature: Optional[float] = None,
                normalize: Optional[str] = "max", normalize_range: Tuple[float, float] = (400.0, 4500.0)
                ) -> IRSpectrum:
    """IR spectrum from the dipole-derivative autocorrelation (method in the module docstring).

    Args:
        dipoles: (T, 3) dipoles of one trajectory, or a list of (T_k, 3) arrays (averaged with
            their pair counts as weights); any dipole unit (intensities scale with its square).
        dt: time between frames in fs (> 0).
        max_lag: ACF length in frames (default: T_min // 2, or from ``resolution``).
        resolution: instead of ``max_lag``: the wanted resolution in cm^-1, max_lag =
            ceil(1 / (c resolution dt)); must fit in the shortest trajectory.
        window: lag window: hann (default), blackman, gaussian, triangle, none.
        zero_padding: the cosine transform runs on zero_padding * max_lag points (>= 1).
        correct_derivative: divide by sinc^2(pi c nu dt) (see step 5).
        quantum_correction: None or ``"harmonic"`` (needs ``temperature`` in K).
        normalize: ``"max"`` (highest point within ``normalize_range`` cm^-1 = 1), ``"area"``
            (unit area within it) or None (raw).

    Returns:
        :class:`IRSpectrum`.

    Raises:
        ValueError: bad shapes, fewer than 4 frames, non-finite dipoles, dt <= 0, a max_lag or
            resolution that does not fit, an unknown window/correction/normalisation, a harmonic
            correction without a positive temperature.
    """
    from .units import BOLTZMANN, SPEED_OF_LIGHT_CM_PER_FS, WAVENUMBER

    trajs = _as_trajectories(dipoles)
    if not (np.isfinite(dt) and dt > 0):
        raise ValueError(f"dt must be a positive number of fs, got {dt!r}")
    if window not in WINDOWS:
        raise ValueError(f"unknown window {window!r} (known: {', '.join(WINDOWS)})")
    if int(zero_padding) < 1:
        raise ValueError(f"zero_padding must be >= 1, got {zero_padding}")
    if quantum_correction not in (None, "harmonic"):
        raise ValueError(f"quantum_correction must be None or 'harmonic', got {quantum_correction!r}")
    if quantum_correction and not (temperature is not None and temperature > 0):
        raise ValueError("the harmonic quantum correction needs temperature > 0 (K)")
    if normalize not in (None, "max", "area"):
        raise ValueError(f"normalize must be 'max', 'area' or None, got {normalize!r}")
    n_min = min(len(d) for d in trajs) - 1  # derivative samples
    if max_lag is not None and resolution is not None:
        raise ValueError("give max_lag or resolution, not both")
    if resolution is not None:
        if not resolution > 0:
            raise ValueError(f"resolution must be > 0 cm^-1, got {resolution}")
        max_lag = int(np.ceil(1.0 / (SPEED_OF_LIGHT_CM_PER_FS * resolution * dt)))
    if max_lag is None:
        max_lag = max(n_min // 2, 2)
    max_lag = int(max_lag)
    if not 2 <= max_lag <= n_min:
        raise ValueError(f"max_lag = {max_lag} frames does not fit the shortest trajectory ({n_min} derivative "
                         f"samples); use a coarser resolution or longer trajectories")
    num = np.zeros(max_lag)
    cnt = np.zeros(max_lag)
    for d in trajs:
        v = np.diff(d, axis=0) / dt
        v = v - v.mean(axis=0)
        n = len(v)
        nfft = 1 << int(np.ceil(np.log2(2 * n)))
        X = np.fft.rfft(v, nfft, axis=0)
        c = np.fft.irfft(np.sum(np.abs(X) ** 2, axis=1), nfft)[:max_lag]
        num += c
        cnt += n - np.arange(max_lag)
    acf = num / cnt * _window(window, max_lag)
    m = int(zero_padding) * max_lag
    buf = np.zeros(2 * m)
    buf[:max_lag] = acf
    buf[2 * m - max_lag + 1:] = acf[1:][::-1]  # even extension: cosine transform
    S = np.real(np.fft.rfft(buf)) * dt
    nu = np.fft.rfftfreq(2 * m, d=dt) / SPEED_OF_LIGHT_CM_PER_FS  # 1/fs -> cm^-1
    if correct_derivative:
        x = np.pi * SPEED_OF_LIGHT_CM_PER_FS * nu * dt
        S = S / np.sinc(x / np.pi) ** 2
    if quantum_correction == "harmonic":
        bx = WAVENUMBER * nu / (BOLTZMANN * temperature)
        with np.errstate(divide="ignore", invalid="ignore"):
            q = np.where(bx > 1e-12, bx / -np.expm1(-bx), 1.0)
        S = S * q
    sel = (nu >= normalize_range[0]) & (nu <= normalize_range[1])
    if normalize == "max" and sel.any() and np.max(S[sel]) > 0:
        S = S / np.max(S[sel])
    elif normalize == "area" and sel.any():
        area = np.trapezoid(S[sel], nu[sel]) if hasattr(np, "trapezoid") else np.trapz(S[sel], nu[sel])
        if area > 0:
            S = S / area
    info = {"dt_fs": float(dt), "max_lag": max_lag, "max_lag_fs": max_lag * float(dt),
            "resolution_cm1": 1.0 / (SPEED_OF_LIGHT_CM_PER_FS * max_lag * dt), "window": window,
            "zero_padding": int(zero_padding), "n_trajectories": len(trajs),
            "n_frames": [int(len(d)) for d in trajs], "quantum_correction": quantum_correction,
            "temperature": temperature, "normalize": normalize, "correct_derivative": bool(correct_derivative)}
    return IRSpectrum(nu, S, np.arange(max_lag) * float(dt), acf, info)


def find_peak(wavenumbers: np.ndarray, intensity: np.ndarray, lo: float, hi: float) -> float:
    """Position (cm^-1) of the highest point of ``intensity`` with lo <= nu <= hi, refined by a
    parabola through it and its neighbours. Raises ValueError if the range holds no grid point."""
    w, s = np.asarray(wavenumbers), np.asarray(intensity)
    idx = np.flatnonzero((w >= lo) & (w <= hi))
    if not len(idx):
        raise ValueError(f"no grid point between {lo} and {hi} cm^-1")
    i = int(idx[np.argmax(s[idx])])
    if 0 < i < len(s) - 1:
        a, b, c = s[i - 1], s[i], s[i + 1]
        den = a - 2 * b + c
        if den < 0 and b >= a and b >= c:  # a true local maximum: the vertex lies within half a step
            return float(w[i] + 0.5 * (a - c) / den * (w[i + 1] - w[i]))
    return float(w[i])


def spectral_overlap(wavenumbers: np.ndarray, a: np.ndarray, b: np.ndarray,
                     lo: float = 400.0, hi: float = 4500.0) -> float:
    """Normalised overlap of two spectra on the same grid within [lo, hi] cm^-1:
    integral(a b) / sqrt(integral(a^2) integral(b^2)) (1 for identical shapes, whatever the
    scale). Raises ValueError for grids of different lengths or an empty range."""
    w = np.asarray(wavenumbers)
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != w.shape or b.shape != w.shape:
        raise ValueError(f"spectra and grid differ in length: {w.shape}, {a.shape}, {b.shape}")
    sel = (w >= lo) & (w <= hi)
    if sel.sum() < 2:
        raise ValueError(f"fewer than 2 grid points between {lo} and {hi} cm^-1")
    return float(np.sum(a[sel] * b[sel]) / np.sqrt(np.sum(a[sel] ** 2) * np.sum(b[sel] ** 2)))


def plot_spectra(spectra: Dict[str, IRSpectrum], path, *, xlim: Tuple[float, float] = (0.0, 4200.0),
                 title: str = "IR spectrum (dipole-derivative autocorrelation)",
                 sticks: Optional[Dict[str, Sequence[float]]] = None, annotate: Optional[str] = None) -> None:
    """Plot spectra (label -> IRSpectrum) against wavenumber (cm^-1) to ``path`` (PNG).

    sticks: label -> wavenumbers drawn as vertical lines (e.g. harmonic frequencies).
    annotate: text placed in the upper left corner (e.g. peak positions, overlap)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 4.5))
    styles = ["-", "--", ":", "-."]
    for k, (label, s) in enumerate(spectra.items()):
        sel = (s.wavenumbers >= xlim[0]) & (s.wavenumbers <= xlim[1])
        ax.plot(s.wavenumbers[sel], s.intensity[sel], styles[k % len(styles)], lw=1.2, label=label)
    for k, (label, freqs) in enumerate((sticks or {}).items()):
        for j, f in enumerate(freqs):
            ax.axvline(f, color=f"C{k + len(spectra)}", lw=0.8, alpha=0.7, label=label if j == 0 else None)
    info = next(iter(spectra.values())).info if spectra else {}
    norm = info.get("normalize")
    ax.set_xlabel("wavenumber (cm$^{-1}$)")
    ax.set_ylabel("IR intensity (arb. units, max = 1)" if norm == "max" else
                  "IR intensity (arb. units, unit area)" if norm == "area" else
                  "IR intensity ((dipole unit/fs)$^2$ fs)")
    ax.set_xlim(*xlim)
    ax.set_title(title)
    if annotate:
        ax.text(0.01, 0.98, annotate, transform=ax.transAxes, va="top", ha="left", fontsize=8, family="monospace")
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# ------------------------------------------------------------------------------- reading dipoles
def _read_fix_ave_time(path: Path) -> Optional[np.ndarray]:
    """Dipoles from a LAMMPS ``fix ave/time`` file of a global vector compute (columns: step and
    the 3 components), or None if the file is not one."""
    with open(path, "r", encoding="utf-8", errors="replace") as fh:
        head = fh.readline()
        if not head.startswith("# Time-averaged data for fix"):
            return None
        rows = []
        for ln, line in enumerate(fh, start=2):
            if line.startswith("#") or not line.strip():
                continue
            toks = line.split()
            if len(toks) < 4:
                raise ValueError(f"{path}:{ln}: expected 'step mu_x mu_y mu_z', got {line.strip()!r}")
            try:
                rows.append([float(t) for t in toks[1:4]])
            except ValueError:
                raise ValueError(f"{path}:{ln}: non-numeric dipole {line.strip()!r}") from None
    if not rows:
        raise ValueError(f"{path}: no data rows")
    return np.asarray(rows)


def read_dipole_series(path, model=None, charge: Optional[float] = None, elements: Optional[Sequence[str]] = None,
                       every: int = 1, threads: int = 1, length_unit=None) -> Tuple[np.ndarray, str]:
    """Dipoles (T, 3) in e*Angstrom along one trajectory file, and where they came from.

    Files: CC dipole XYZ files (dipoles stored, e*a0 converted), LAMMPS ``fix ave/time`` output
    of ``compute atomforge/dipole`` (e * length unit: e*Angstrom in metal/real), LAMMPS text dumps
    (``elements`` maps atom types 1, 2, ... to symbols; positions from xu/yu/zu when present),
    and anything ASE reads (ASE trajectories, extended XYZ with ``dipole``).

    With ``model`` (a dipole model file or loaded :class:`atomforge.Potential`) the dipoles are
    computed from the positions (total charge: ``charge``, else the file's, else 0); without
    it they are taken from the file. ``every`` keeps every n-th frame. (Extended) XYZ files need
    their length unit (``length_unit=`` key in the file, or ``length_unit``): never guessed.

    Raises:
        ValueError: naming the file when it has neither dipoles nor (with a model) positions, or
            when a dump's types cannot be mapped to elements.
    """
    from . import load
    from .data import detect_format, load_dataset

    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{p}: no such file or directory")
    series = _read_fix_ave_time(p) if p.is_file() else None
    if series is not None:
        if model is not None:
            raise ValueError(f"{p}: a fix ave/time file holds dipoles, not positions; --model does not apply")
        return series[::every], "fix ave/time"
    fmt = detect_format(p)
    if fmt == "ccdipole":
        ds = load_dataset(p, length_unit=length_unit, log=None).subset(slice(None, None, every))
    elif p.suffix.lower() in (".xyz", ".extxyz"):  # the unit rules of atomforge.data (energies unused)
        ds = load_dataset(p, length_unit=length_unit, energy_unit="eV", log=None, check=False).subset(
            slice(None, None, every))
    else:
        import ase.io

        from .data import Dataset
        kw = {}
        head = b""
        if p.is_file():
            with open(p, "rb") as fh:
                head = fh.read(32)
        if head.startswith(b"ITEM: TIMESTEP"):
            kw["format"] = "lammps-dump-text"
        try:
            images = ase.io.read(str(p), index=f"::{every}", **kw)
        except Exception as exc:
            raise ValueError(f"{p}: cannot read ({type(exc).__name__}: {exc})") from exc
        if kw.get("format") == "lammps-dump-text":
            if not elements:
                raise ValueError(f"{p}: a LAMMPS dump has atom types, not elements: give the element of each type "
                                 f"(--elements O H ...)")
            from ase.data import atomic_numbers
            for a in images:
                t = a.get_atomic_numbers()  # ASE puts the type ids here when there is no element column
                if t.max() > len(elements):
                    raise ValueError(f"{p}: atom type {t.max()} but only {len(elements)} elements given")
                a.set_atomic_numbers([atomic_numbers[elements[k - 1]] for k in t])
        ds = Dataset.from_atoms(images, source=str(p))
    if model is None:
        if ds.dipole is None:
            raise ValueError(f"{p}: no dipoles stored in the file; give a dipole model (--model)")
        return ds.dipole, f"{p.name} (stored dipoles)"
    pot = model if hasattr(model, "compute") else load(model)
    if "dipole" not in pot.capabilities:
        raise ValueError(f"{getattr(pot, 'source', model)} is a '{pot.model_type}' model without dipoles")
    Q = np.full(len(ds), float(charge)) if charge is not None else (
        ds.total_charge if ds.total_charge is not None else np.zeros(len(ds)))
    mu = np.array([pot.compute(ds.positions[i], ds.numbers[i], threads=threads, forces=False,
                               charge=float(Q[i])).dipole for i in range(len(ds))])
    return mu, f"{p.name} (dipoles from {getattr(pot, 'source', 'model')})"
