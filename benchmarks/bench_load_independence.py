#!/usr/bin/env python
"""Load independence of training (issue 11): the same ``atomforge train`` command run once as the
machine is and once beside N CPU-bound processes must give the same model and the same errors.

Both runs are the plain CLI (``python -m atomforge train --data ... --test-data ... --epochs E``,
every other setting its default, OMP_NUM_THREADS=1), one after the other; the busy run has
``--busy`` processes spinning ``while True: pass`` beside it for its whole length. Compared: every
record of model.afm except its creation date (bit for bit), the test and validation metrics in
metrics.json and the history without its timing column; wall and CPU time of each run and the
machine's load averages are recorded beside them. Training stops on epochs (the default has no
time limit), so a busy machine only takes longer. ``--config`` adds a YAML file to both commands
(e.g. ``training: {compile: true}``: a 20-epoch run is too short for ``compile: auto`` to compile,
a default 2000-epoch run compiles); each run gets an empty TorchInductor cache, so a compiled run
compiles from scratch in both.

Usage:
  OMP_NUM_THREADS=1 python benchmarks/bench_load_independence.py --molecule ethanol --epochs 20 --busy 2 \\
      [--output benchmarks/results/load_independence.md]
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import resource
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

DATA = Path(os.environ.get("ATOMFORGE_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


def _load() -> str:
    return "/".join(f"{x:.2f}" for x in os.getloadavg())


def run_cli(args: list, busy: int) -> dict:
    """Run ``python -m atomforge <args>`` beside ``busy`` spinning processes; its wall and CPU
    seconds (children's CPU time, so only this run's) and the load averages before and after."""
    cache = tempfile.TemporaryDirectory()  # an empty TorchInductor cache: a compiled run compiles afresh
    env = dict(os.environ, OMP_NUM_THREADS="1", TORCHINDUCTOR_CACHE_DIR=cache.name)
    spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(busy)]
    try:
        before, c0, w0 = _load(), resource.getrusage(resource.RUSAGE_CHILDREN), time.time()
        out = subprocess.run([sys.executable, "-m", "atomforge", *args], env=env, capture_output=True, text=True)
        wall, c1, after = time.time() - w0, resource.getrusage(resource.RUSAGE_CHILDREN), _load()
    finally:
        cache.cleanup()
        for p in spinners:
            p.kill()
            p.wait()
    if out.returncode:
        raise RuntimeError(f"atomforge {shlex.join(args)} failed:\n{out.stdout[-2000:]}\n{out.stderr[-3000:]}")
    return {"wall_s": wall, "cpu_s": (c1.ru_utime + c1.ru_stime) - (c0.ru_utime + c0.ru_stime),
            "load_before": before, "load_after": after, "stdout": out.stdout}


def compare(a: Path, b: Path) -> dict:
    """Differences between two run folders: model.afm records (creation date excluded), metrics,
    history without timings. Returns {'records_differing': [...], 'metrics_equal': bool, ...}."""
    from atomforge.model_file import read_records

    (_, ra), (_, rb) = read_records(a / "model.afm"), read_records(b / "model.afm")
    differing = []
    for k in sorted(set(ra) | set(rb)):
        if k == "metadata.created":
            continue
        if k not in ra or k not in rb:
            differing.append(k)
        elif isinstance(ra[k], str) or isinstance(rb[k], str):
            if ra[k] != rb[k]:
                differing.append(k)
        elif not np.array_equal(np.asarray(ra[k]), np.asarray(rb[k])):
            differing.append(k)
    ma, mb = (json.loads((d / "metrics.json").read_text()) for d in (a, b))
    ha, hb = ([{k: v for k, v in r.items() if k != "seconds"} for r in csv.DictReader(open(d / "history.csv"))]
              for d in (a, b))
    return {"records_compared": len(set(ra) - {"metadata.created"}), "records_differing": differing,
            "test_equal": ma["test"] == mb["test"], "validation_equal": ma["validation"] == mb["validation"],
            "history_equal": ha == hb, "metrics": (ma, mb)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--molecule", default="ethanol")
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--busy", type=int, default=2, help="CPU-bound processes beside the busy run")
    p.add_argument("--runs-dir", help="keep the run folders here (default: a temporary folder)")
    p.add_argument("--output", help="write the markdown report here")
    p.add_argument("--config", help="YAML configuration added to both commands (-c)")
    args = p.parse_args(argv)
    rmd = DATA / "rmd17"
    tmp = tempfile.TemporaryDirectory()
    root = Path(args.runs_dir or tmp.name)
    root.mkdir(parents=True, exist_ok=True)
    runs = {}
    for name, busy in (("as is", 0), (f"beside {args.busy} busy processes", args.busy)):
        folder = root / ("busy" if busy else "quiet")
        if folder.exists():
            raise SystemExit(f"{folder} exists: choose another --runs-dir")
        cli = ["train", "--data", str(rmd / f"rmd17_{args.molecule}_train_01.npz"),
               "--test-data", str(rmd / f"rmd17_{args.molecule}_test_01.npz"), "--epochs", str(args.epochs),
               "-o", str(folder), "--quiet"] + (["-c", str(Path(args.config).resolve())] if args.config else [])
        runs[name] = {**run_cli(cli, busy), "folder": folder, "cli": cli}
        print(f"{name}: {runs[name]['wall_s']:.0f} s wall, {runs[name]['cpu_s']:.0f} s CPU, load "
              f"{runs[name]['load_before']} -> {runs[name]['load_after']}", flush=True)
    (qn, q), (bn, b) = runs.items()
    c = compare(q["folder"], b["folder"])
    same = not c["records_differing"] and c["test_equal"] and c["validation_equal"] and c["history_equal"]
    mq, mb = c["metrics"]
    import atomforge
    import torch

    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    cmd = "python -m atomforge " + shlex.join([x if not x.startswith(str(root)) else "RUN" for x in q["cli"]])
    lines = [f"# Load independence: rMD17 {args.molecule}, the same command as is and beside {args.busy} busy "
             f"processes", "",
             f"- date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; machine: {cpu}, {os.cpu_count()} "
             f"cores visible, {platform.machine()}, shared with other work (the 'as is' run is not on a quiet "
             f"machine: its load averages are listed)",
             f"- atomforge {atomforge.__version__}, torch {torch.__version__}, Python {platform.python_version()}, "
             f"OMP_NUM_THREADS=1",
             f"- command (both runs; RUN the output folder): `{cmd}`",
             f"- benchmark: `python benchmarks/{Path(__file__).name} {shlex.join(sys.argv[1:] if argv is None else argv)}`",
             f"- {args.epochs} epochs (the CLI default is 2000): this shows that the model does not depend on the "
             f"load, not the accuracy a full run reaches",
             "",
             f"**Result: {'the same model' if same else 'DIFFERENT models'}.** model.afm records compared bit for bit "
             f"(creation date excluded): {c['records_compared']}, differing: "
             f"{', '.join(c['records_differing']) or 'none'}; test metrics equal: {c['test_equal']}; validation "
             f"metrics equal: {c['validation_equal']}; history (without timings) equal: {c['history_equal']}.", "",
             "| run | wall s | CPU s | load before | load after | epochs | stop reason | test force MAE meV/A | "
             "test energy MAE meV | training.compile |", "|---|---:|---:|---|---|---:|---|---:|---:|---|"]
    for (name, r), m in ((runs_item, met) for runs_item, met in zip(runs.items(), (mq, mb))):
        lines.append(f"| {name} | {r['wall_s']:.0f} | {r['cpu_s']:.0f} | {r['load_before']} | {r['load_after']} | "
                     f"{m['training']['epochs_run']} | {m['training']['stop_reason']} | "
                     f"{1000 * m['test']['forces_mae']:.3f} | {1000 * m['test']['energy_mae']:.3f} | "
                     f"{m['training'].get('compile')} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.output:
        Path(args.output).write_text(text)
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
