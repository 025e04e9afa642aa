#!/usr/bin/env python
"""LAMMPS side by side on a shared machine: this atomforge beside an older atomforge build (for
example the core before the seams/one-pass work), n2p2's pair_style hdnnp and lj/cut, interleaved.

Why: on a shared machine the absolute atom-steps/s drift with other users' load by up to 2x between
hours (benchmarks/results/lammps.md was measured on a quiet machine); runs interleaved round by
round see the same load, so their ratios are meaningful where absolute rates are not.

Each round runs, one after another, every (style, size) below as its own `lmp` process (1 MPI rank,
OMP_NUM_THREADS=1, the water setup of bench_lammps.py: 192-atom DeePMD water frame replicated,
metal units, NVE, 0.5 fs), timed by LAMMPS's Loop time:

  * atomforge        pair_style atomforge of the atomforge installed in this interpreter
  * atomforge (base) pair_style atomforge of --baseline-python's atomforge (its own plugin and its
                     own `import-n2p2` of the same n2p2 potential; same lmp binary); only with
                     --baseline-python
  * hdnnp            n2p2's pair_style hdnnp built as a plugin outside the repo (--hdnnp-plugin)
  * lj/cut           cutoff 6.35 A, a machine-speed floor

Reports min / median / max over the rounds of atom-steps/s (wall) and per CPU-second, and the
per-round ratios (median and range): atomforge / base, atomforge / hdnnp, atomforge / lj/cut.

Usage: python benchmarks/bench_lammps_side_by_side.py [--baseline-python /path/venv/bin/python]
           [--rounds 3] [--seconds 10] [--output benchmarks/results/lammps_side_by_side.md]
"""
from __future__ import annotations

import argparse
import datetime
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_lammps as bl  # noqa: E402


def baseline_ctx(ctx: dict, py: str, work: Path) -> tuple[dict, str]:
    """A copy of ctx whose atomforge plugin and model file come from the interpreter ``py``."""
    code = ("import atomforge, atomforge.lammps as l, shutil, sys; "
            "shutil.copy2(l.plugin_path(), sys.argv[1] + '/' + l.PLUGIN_NAME); "
            "print(atomforge.__file__); print(atomforge.build_info() if hasattr(atomforge, 'build_info') else '')")
    d = work / "plugin_base"
    d.mkdir(exist_ok=True)
    r = subprocess.run([py, "-c", code, str(d)], capture_output=True, text=True, cwd=work)
    if r.returncode != 0:
        raise RuntimeError(f"{py}: cannot stage its LAMMPS plugin:\n{r.stderr}")
    model = work / "water_n2p2_base.afm"
    r2 = subprocess.run([py, "-m", "atomforge", "import-n2p2", str(ctx["n2p2_pot"]), "-o", str(model)],
                        capture_output=True, text=True, cwd=work)
    if r2.returncode != 0:
        raise RuntimeError(f"{py}: import-n2p2 failed:\n{r2.stderr}")
    return {**ctx, "plugin_dir": d, "model": model}, r.stdout.strip().replace("\n", "; ")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--baseline-python", help="python of a venv holding the older atomforge (no such rows without it)")
    ap.add_argument("--baseline-label", default="base", help="how the tables name the older build")
    ap.add_argument("--hdnnp-plugin", default=os.environ.get("ATOMFORGE_BENCH_HDNNP_PLUGIN", "/tmp/hdnnp/hdnnpplugin.so"))
    ap.add_argument("--replicate", nargs="+", type=int, default=[2, 4])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--output")
    args = ap.parse_args(argv)

    def log(msg):
        print(f"[{datetime.datetime.now():%H:%M:%S}] {msg}", file=sys.stderr, flush=True)

    work = Path(tempfile.mkdtemp(prefix="bench_lammps_sbs_"))
    lmp, mpiexec, libmpi_dir = bl.lammps_env()
    ctx = {"workdir": work, "lmp": lmp, "mpiexec": mpiexec, "libmpi_dir": libmpi_dir,
           "plugin_dir": bl.stage_atomforge_plugin(work), "data": work / "water192.data",
           "model": work / "water_n2p2.afm", "n2p2_pot": Path(bl.N2P2_POT).resolve(),
           "hdnnp_plugin": Path(args.hdnnp_plugin).resolve(), "hdnnp_cutoff": "6.36"}
    ctx["natoms0"] = bl.write_water_data(ctx["data"])
    bl.import_model(ctx["model"], ctx["n2p2_pot"])
    runs = [("atomforge", "atomforge", ctx)]
    if args.baseline_python:
        base, base_note = baseline_ctx(ctx, args.baseline_python, work)
        runs.append((f"atomforge ({args.baseline_label})", "atomforge", base))
    if ctx["hdnnp_plugin"].exists():
        runs.append(("hdnnp", "hdnnp", ctx))
    else:
        log(f"{ctx['hdnnp_plugin']} not found: no hdnnp rows")
    runs.append(("lj/cut", "lj/cut", ctx))

    rates = {}  # (label, rep) -> list of (wall rate, cpu rate) per round
    guess = {}
    for rnd in range(args.rounds):
        for rep in args.replicate:
            for label, style, c in runs:
                g = guess.get((label, rep), bl.PRIOR_RATE[style])
                r = bl.measure(style, rep, "1 rank", c, args.seconds, g, log)
                guess[(label, rep)] = r["rate"]
                cpu = r.get("cpu_use", float("nan")) / 100.0
                rates.setdefault((label, rep), []).append((r["rate"], r["rate"] / cpu if cpu > 0 else float("nan"),
                                                           r["other_cores"]))
        log(f"round {rnd + 1}/{args.rounds} done")

    lines = []
    out = lambda s="": (print(s), lines.append(s))
    out("# LAMMPS side by side (interleaved): " + ", ".join(label for label, _, _ in runs))
    out()
    m = bl.machine_info()
    out(f"- machine: {m['cpu']}, {m['cores']}, {m['memory']}; **shared**: other jobs ran during the timing (column 'others', cores)")
    out(f"- {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC; atomforge: {bl.git_state()}; "
        f"{bl.plugin_note(ctx['plugin_dir'])}")
    if args.baseline_python:
        out(f"- {args.baseline_label}: {args.baseline_python} ({base_note})")
    out(f"- hdnnp: {ctx['hdnnp_plugin']} (n2p2 built outside the repo, see benchmarks/n2p2_reference/README.md)")
    out(f"- model: the n2p2 RPBE-D3 water potential (both atomforge builds import it themselves); water "
        f"192-atom frame replicated; 1 MPI rank, 1 thread; NVE 0.5 fs; ~{args.seconds:.0f} s timed per run; "
        f"{args.rounds} rounds, each running every row once, in this order")
    out()
    out("| pair style | atoms | atom-steps/s, wall: min / median / max | per CPU-second (median) | others (cores, max) |")
    out("|---|---:|---|---:|---:|")
    for rep in args.replicate:
        n = ctx["natoms0"] * rep ** 3
        for label, _, _ in runs:
            v = np.array(rates[(label, rep)])
            out(f"| {label} | {n} | {v[:, 0].min():,.0f} / {np.median(v[:, 0]):,.0f} / {v[:, 0].max():,.0f} | "
                f"{np.median(v[:, 1]):,.0f} | {v[:, 2].max():.2f} |")
    out()
    out("Ratios of atomforge to each row, per round (same load), median (min-max):")
    out()
    out("| atoms | " + " | ".join(f"atomforge / {label}" for label, _, _ in runs[1:]) + " |")
    out("|---:|" + "---:|" * (len(runs) - 1))
    for rep in args.replicate:
        n = ctx["natoms0"] * rep ** 3
        a = np.array(rates[("atomforge", rep)])[:, 0]
        cells = []
        for label, _, _ in runs[1:]:
            q = a / np.array(rates[(label, rep)])[:, 0]
            cells.append(f"{np.median(q):.3g} ({q.min():.3g}-{q.max():.3g})")
        out(f"| {n} | " + " | ".join(cells) + " |")
    if args.output:
        Path(args.output).write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
