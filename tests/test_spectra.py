"""atomforge.spectra: IR spectra from dipole time series (synthetic signals with known answers),
and the `atomforge ir` command."""
import numpy as np
import pytest

from atomforge.spectra import find_peak, ir_spectrum, read_dipole_series, spectral_overlap
from atomforge.units import BOLTZMANN, SPEED_OF_LIGHT_CM_PER_FS, WAVENUMBER

FREQS = (1000.0, 1770.0, 3800.0)


def sinusoids(n=20000, dt=0.5, amps=(0.1, 0.05, 0.0333), freqs=FREQS, seed=0, noise=0.0):
    rng = np.random.default_rng(seed)
    t = np.arange(n) * dt
    mu = np.zeros((n, 3))
    for k, (a, nu) in enumerate(zip(amps, freqs)):
        mu[:, k % 3] += a * np.cos(2 * np.pi * SPEED_OF_LIGHT_CM_PER_FS * nu * t + rng.uniform(0, 2 * np.pi))
    mu += rng.normal(scale=noise, size=mu.shape) if noise else 0.0
    mu += [3.0, -1.0, 0.5]  # a constant offset (origin, charge) must not matter
    return mu


def test_recovers_frequencies_and_intensities_of_sinusoids():
    s = ir_spectrum(sinusoids(), 0.5, resolution=5.0)
    for nu in FREQS:
        assert abs(s.peak(nu - 60, nu + 60) - nu) < 0.5
    # derivative spectrum: intensity ~ (a omega)^2, exactly with the finite-difference correction
    expect = np.array([(a * nu) ** 2 for a, nu in zip((0.1, 0.05, 0.0333), FREQS)])
    got = np.array([s.intensity[np.argmin(abs(s.wavenumbers - nu))] for nu in FREQS])
    np.testing.assert_allclose(got / got.max(), expect / expect.max(), rtol=0.02)
    assert abs(s.info["resolution_cm1"] - 5.0) < 0.01
    assert s.wavenumbers[-1] == pytest.approx(1 / (2 * SPEED_OF_LIGHT_CM_PER_FS * 0.5), rel=1e-9)


def test_trajectory_average_noise_and_linear_drift():
    """Several noisy trajectories with different lengths and a drifting charged centre (constant
    Q v_com added to the derivative) still give the frequencies."""
    trajs = [sinusoids(n=n, seed=k, noise=1e-3) + np.outer(np.arange(n), [1e-3, 0, 0])
             for k, n in enumerate((6000, 8000, 7000))]
    s = ir_spectrum(trajs, 0.5, resolution=15.0, window="blackman")
    assert s.info["n_trajectories"] == 3
    for nu in FREQS:
        assert abs(s.peak(nu - 60, nu + 60) - nu) < 2.0


def test_zero_padding_and_windows_keep_peaks():
    mu = sinusoids(n=8000)
    for w in ("hann", "blackman", "gaussian", "triangle", "none"):
        for zp in (1, 8):
            s = ir_spectrum(mu, 0.5, max_lag=2000, window=w, zero_padding=zp)
            assert abs(s.peak(3700, 3900) - 3800.0) < 3.0, (w, zp)


def test_harmonic_quantum_correction_factor():
    mu = sinusoids(n=8000)
    a = ir_spectrum(mu, 0.5, max_lag=3000, normalize=None)
    b = ir_spectrum(mu, 0.5, max_lag=3000, normalize=None, quantum_correction="harmonic", temperature=300.0)
    x = WAVENUMBER * a.wavenumbers / (BOLTZMANN * 300.0)
    sel = a.wavenumbers > 10
    np.testing.assert_allclose(b.intensity[sel], a.intensity[sel] * x[sel] / -np.expm1(-x[sel]), rtol=1e-12)
    assert abs(b.peak(3700, 3900) - a.peak(3700, 3900)) < 0.1  # positions unchanged


def test_overlap():
    s = ir_spectrum(sinusoids(n=8000), 0.5, max_lag=3000)
    assert spectral_overlap(s.wavenumbers, s.intensity, 3 * s.intensity) == pytest.approx(1.0)
    shifted = np.roll(s.intensity, 40)
    assert spectral_overlap(s.wavenumbers, s.intensity, shifted) < 0.5


@pytest.mark.parametrize("kw, match", [
    ({"dipoles": np.zeros((10, 2)), "dt": 1.0}, r"shape \(T, 3\)"),
    ({"dipoles": np.zeros((3, 3)), "dt": 1.0}, "at least 4"),
    ({"dipoles": np.zeros((100, 3)), "dt": 0.0}, "dt must be a positive"),
    ({"dipoles": np.zeros((100, 3)), "dt": 1.0, "resolution": 1.0}, "does not fit the shortest trajectory"),
    ({"dipoles": np.zeros((100, 3)), "dt": 1.0, "window": "kaiser"}, "unknown window 'kaiser'"),
    ({"dipoles": np.zeros((100, 3)), "dt": 1.0, "quantum_correction": "harmonic"}, "needs temperature"),
    ({"dipoles": np.full((100, 3), np.nan), "dt": 1.0}, "frame 0 is not finite"),
])
def test_bad_arguments(kw, match):
    with pytest.raises(ValueError, match=match):
        ir_spectrum(kw.pop("dipoles"), **kw)


def test_find_peak_range_without_points():
    with pytest.raises(ValueError, match="no grid point"):
        find_peak(np.arange(10.0), np.ones(10), 20, 30)


def _cc_file(path, mu_eA, Q=1.0):
    from atomforge.units import E_BOHR

    lines = []
    for m in mu_eA:
        d = m / E_BOHR
        lines += ["2", f"charge {Q} dipole {d[0]:.12f} {d[1]:.12f} {d[2]:.12f}", "H 0 0 0", "H 0.74 0 0"]
    path.write_text("\n".join(lines) + "\n")


def test_cli_ir_on_cc_file_and_fix_ave_time(tmp_path):
    from atomforge.cli import main

    mu = sinusoids(n=4000, dt=1.0)
    _cc_file(tmp_path / "traj.xyz", mu)
    with open(tmp_path / "mu.dat", "w") as fh:
        fh.write("# Time-averaged data for fix av\n# TimeStep c_mu[1] c_mu[2] c_mu[3]\n")
        for k, m in enumerate(mu):
            fh.write(f"{k} {m[0]:.12g} {m[1]:.12g} {m[2]:.12g}\n")
    assert main(["ir", str(tmp_path / "traj.xyz"), "--dt", "1", "-o", str(tmp_path / "cc")]) == 0
    assert main(["ir", str(tmp_path / "mu.dat"), "--dt", "1", "-o", str(tmp_path / "lmp")]) == 0
    a = np.loadtxt(tmp_path / "cc.csv", delimiter=",", skiprows=2)
    b = np.loadtxt(tmp_path / "lmp.csv", delimiter=",", skiprows=2)
    assert (tmp_path / "cc.png").stat().st_size > 10000
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-9)
    assert abs(find_peak(a[:, 0], a[:, 1], 3700, 3900) - 3800) < 2


def test_read_dipole_series_errors(tmp_path):
    import ase.io
    from ase.build import molecule

    ase.io.write(tmp_path / "plain.xyz", [molecule("H2O")] * 5)
    with pytest.raises(ValueError, match="does not state its units.*length_unit"):
        read_dipole_series(tmp_path / "plain.xyz")  # XYZ lengths are never guessed
    with pytest.raises(ValueError, match="no dipoles stored in the file; give a dipole model"):
        read_dipole_series(tmp_path / "plain.xyz", length_unit="angstrom")
    with pytest.raises(FileNotFoundError):
        read_dipole_series(tmp_path / "missing.xyz")
