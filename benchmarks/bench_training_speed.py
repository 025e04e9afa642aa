#!/usr/bin/env python
"""Training throughput side by side: epochs per minute of ``atomforge.train.train`` on rMD17 ethanol
(950 training / 50 validation frames of rmd17_ethanol_train_01, the same network and descriptor for
every variant), each variant in its own interpreter (e.g. a virtual environment with the baseline
commit installed), the variants interleaved and repeated so that a change of machine load hits
them alike.

Each measurement is a fresh process that trains ``--epochs`` epochs through the public API (the real
loop: batches, optimiser, validation, checkpoints as that version writes them: every epoch before
issue 11, after the first and last epoch and at most every 20 s after it) and reads history.csv: the rate is
(epochs - 1) / (wall time between the first and the last epoch's validation: the first validation
pass of each epoch, since trainers with the weight average validate twice per epoch), so
featurisation and the first epoch (warm-up) are excluded. The process's CPU time per epoch over the same epochs is reported
too: on a shared machine it depends much less on the other work than the wall time does (the
wall time of a process that gets a quarter of a core is four times its CPU time). The load average
of the machine before and after each run is recorded beside it.

Variants: ``--variant 'LABEL|PYTHON|PYTHONPATH|JSON'``: PYTHON the interpreter (default this one),
PYTHONPATH prepended to its path (empty: none; e.g. a checkout of another commit of the Python
package), JSON extra training keys (e.g. {"dtype": "float32"}, or {"compile": true}: the trainer's own
torch.compile of the training step, training.compile; its default, auto, compiles only runs of at least
20000 full batches, so a short benchmark run asks for it explicitly; the benchmark-only key
``"torch_compile": "forward"`` or ``"network"`` wraps the model's forward or its per-element network
in ``torch.compile`` (an experiment of 2026-11-30: see benchmarks/results/torch_compile.md)). Without --variant the current
interpreter is measured in float64 and float32.

Every run gets an empty TorchInductor cache (TORCHINDUCTOR_CACHE_DIR in a fresh temporary folder), so a
compiled variant compiles from scratch, as a user's first run does; the time from the start of
``train`` to the end of the first epoch (featurisation, the first epoch, and compiling where a variant
compiles) is reported beside the rate, which excludes it.

``--molecule`` trains another rMD17 molecule (default ethanol) and ``--descriptor JSON`` replaces the
descriptor section of the model (e.g. '{"type": "gmp", "channels": "element_pairs"}'); the rest of the
model is the one below either way.

Usage:
  python benchmarks/bench_training_speed.py --epochs 15 --repeats 3 \\
      --variant 'main 273ac7a|/work/venv11base/bin/python||{}' \\
      --variant 'issue11 float64||/work/wt11/python|{"dtype": "float64"}' \\
      --variant 'issue11 float32||/work/wt11/python|{"dtype": "float32"}' --output benchmarks/results/training_speed.md
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DATA = Path(os.environ.get("ATOMFORGE_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))

#: The network and descriptor every variant trains (the pre-issue-11 defaults: 240 ACSF per element,
#: 128x128 SiLU per element, batch 16), written out so that later default changes do not change it.
BASE_CONFIG = {
    "descriptor": {"r_c": 5.0, "n_radial": 16, "n_angular": 4, "angular": "G5", "radial_grid": "shifted",
                   "r_min": 0.7, "cutoff_function": "cos", "n_angular_radial": 4, "angular_grid": "shifted",
                   "r_c_angular": None},
    "network": {"hidden": [128, 128], "activation": "silu", "committee": 1},
    "training": {"batch_size": 16, "learning_rate": 0.001, "lr_schedule": "cosine", "energy_weight": 100.0,
                 "forces_weight": 10.0, "early_stopping_patience": 1000, "threads": 1},
}


def worker(args) -> int:
    """Runs in the measured interpreter: train, print one JSON line with the epoch times."""
    import atomforge
    from atomforge.train import train
    from atomforge.train import trainer as tmod

    # wall and CPU time of this process at the start of every epoch's validation (the same
    # method in every version of the trainer measured here)
    stamps = []
    evaluate = tmod.Trainer._evaluate_torch

    def stamped(self, *a, **k):
        stamps.append((time.time(), time.process_time()))
        return evaluate(self, *a, **k)

    tmod.Trainer._evaluate_torch = stamped
    cfg = json.loads(args.worker_config)
    compile_what = cfg["training"].pop("torch_compile", None)
    if compile_what:
        import torch

        make = tmod.Trainer._make_model

        def compiled(self):
            m = make(self)
            if compile_what == "forward":
                m.forward = torch.compile(m.forward, dynamic=False)
            elif compile_what == "network":
                m._mlp_value_and_gradient = torch.compile(m._mlp_value_and_gradient, dynamic=False)
            else:
                raise ValueError(f"torch_compile must be 'forward' or 'network', got {compile_what!r}")
            return m

        tmod.Trainer._make_model = compiled
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.time()
        m = train(cfg, Path(tmp) / "run", progress=False, log=lambda *a, **k: None)
        wall = time.time() - t0
        with open(Path(tmp) / "run" / "history.csv") as fh:
            secs = [float(r["seconds"]) for r in csv.DictReader(fh)]
    import torch
    print("RESULT " + json.dumps({"seconds": secs, "stamps": stamps, "wall": wall, "start": t0,
                                  "compile": m.get("training", {}).get("compile"), "atomforge": atomforge.__file__,
                                  "torch": torch.__version__, "threads": torch.get_num_threads()}))
    return 0


def load() -> str:
    return "/".join(f"{x:.2f}" for x in os.getloadavg())


def model_config(molecule: str = "ethanol", descriptor: dict = None) -> dict:
    """BASE_CONFIG on rMD17 ``molecule`` (split 01), its descriptor section replaced by ``descriptor``."""
    cfg = json.loads(json.dumps(BASE_CONFIG))
    if descriptor:
        cfg["descriptor"] = dict(descriptor)
    cfg["data"] = str(DATA / "rmd17" / f"rmd17_{molecule}_train_01.npz")
    cfg["test_data"] = str(DATA / "rmd17" / f"rmd17_{molecule}_test_01.npz")
    return cfg


def measure(label: str, python: str, pythonpath: str, extra: dict, epochs: int, molecule: str = "ethanol",
            descriptor: dict = None) -> dict:
    cfg = model_config(molecule, descriptor)
    cfg["training"].update({"epochs": epochs, **extra})
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    env["OMP_NUM_THREADS"] = str(cfg["training"]["threads"])
    before = load()
    with tempfile.TemporaryDirectory() as cache:  # a cold TorchInductor cache for every run
        env["TORCHINDUCTOR_CACHE_DIR"] = cache
        out = subprocess.run([python or sys.executable, __file__, "--worker-config", json.dumps(cfg)], env=env,
                             capture_output=True, text=True)
    after = load()
    line = [x for x in out.stdout.splitlines() if x.startswith("RESULT ")]
    if out.returncode or not line:
        raise RuntimeError(f"{label}: the worker failed:\n{out.stdout[-2000:]}\n{out.stderr[-4000:]}")
    r = json.loads(line[0][7:])
    # one stamp per validation pass: one per epoch, or two since the weight average (880f7d7: the raw
    # and the averaged weights are both validated). Only each epoch's first pass is an epoch boundary;
    # counting every pass (as this script did before stop 27) doubled the rate of the trainers with
    # the weight average.
    per_epoch, left = divmod(len(r["stamps"]), len(r["seconds"]))
    if left or per_epoch < 1:
        raise RuntimeError(f"{label}: {len(r['stamps'])} validation passes for {len(r['seconds'])} epochs")
    stamps = r["stamps"][::per_epoch]
    (w0, c0), (w1, c1) = stamps[0], stamps[-1]
    n = len(stamps) - 1
    rate = 60.0 * n / (w1 - w0)
    return {"label": label, "epochs_per_min": rate, "s_per_epoch": 60.0 / rate, "cpu_s_per_epoch": (c1 - c0) / n,
            "validations_per_epoch": per_epoch, "first_epoch_end_s": w0 - r["start"],
            "load_before": before, "load_after": after, **r}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--worker-config", help=argparse.SUPPRESS)
    p.add_argument("--variant", action="append", default=[], help="'LABEL|PYTHON|PYTHONPATH|JSON'")
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--output", help="write the markdown report here")
    p.add_argument("--note", default="", help="a line added to the report")
    p.add_argument("--molecule", default="ethanol", help="rMD17 molecule (split 01; default ethanol)")
    p.add_argument("--descriptor", default="", help="JSON: replaces the model's descriptor section")
    args = p.parse_args(argv)
    if args.worker_config:
        return worker(args)
    variants = []
    for v in args.variant or ['float64|||{"dtype": "float64"}', 'float32|||{"dtype": "float32"}']:
        parts = (v.split("|") + ["", "", "", ""])[:4]
        variants.append((parts[0], parts[1], parts[2], json.loads(parts[3] or "{}")))
    descriptor = json.loads(args.descriptor) if args.descriptor else None
    model = model_config(args.molecule, descriptor)
    runs = []
    t0 = time.time()
    for r in range(args.repeats):
        for label, py, pp, extra in variants:
            m = measure(label, py, pp, extra, args.epochs, args.molecule, descriptor)
            m["repeat"] = r
            runs.append(m)
            print(f"repeat {r} {label}: {m['epochs_per_min']:.1f} epochs/min ({m['s_per_epoch']:.3f} s/epoch), "
                  f"load {m['load_before']} -> {m['load_after']}", flush=True)
    cpu = "unknown"
    try:
        cpu = next(l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    lines = []
    out = lambda s="": lines.append(s)
    out("# Training throughput, side by side")
    out()
    out(f"- date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; total {(time.time() - t0) / 60:.1f} min")
    out(f"- machine: {cpu}, {os.cpu_count()} cores visible, {platform.machine()}, Linux; shared with other "
        f"work (load averages 1/5/15 min before -> after each run are listed)")
    out(f"- data: rMD17 {args.molecule} train_01 (950 train / 50 validation frames); {args.epochs} epochs per run, rate "
        f"= (epochs - 1) / time from the end of the first epoch to the end of the last (featurisation and the "
        f"first epoch excluded); validation every epoch and checkpoints as each version writes them, as in a real run")
    out(f"- same model for every variant: {json.dumps({k: model[k] for k in BASE_CONFIG})}")
    out(f"- command: `python benchmarks/{Path(__file__).name} {shlex.join(argv if argv is not None else sys.argv[1:])}`")
    if args.note:
        out(f"- {args.note}")
    out()
    first = variants[0][0]
    base = statistics.median(m["epochs_per_min"] for m in runs if m["label"] == first)
    base_cpu = statistics.median(m["cpu_s_per_epoch"] for m in runs if m["label"] == first)
    out(f"| variant | median epochs/min (wall) | min - max | speed-up vs {first} | CPU s/epoch (median) | "
        f"min - max | speed-up in CPU time | start to end of first epoch, s (median) |")
    out("|---|---:|---:|---:|---:|---:|---:|---:|")
    for label, *_ in variants:
        rates = [m["epochs_per_min"] for m in runs if m["label"] == label]
        cpus = [m["cpu_s_per_epoch"] for m in runs if m["label"] == label]
        firsts = [m["first_epoch_end_s"] for m in runs if m["label"] == label]
        med, cmed = statistics.median(rates), statistics.median(cpus)
        out(f"| {label} | {med:.1f} | {min(rates):.1f} - {max(rates):.1f} | {med / base:.2f}x | {cmed:.3f} | "
            f"{min(cpus):.3f} - {max(cpus):.3f} | {base_cpu / cmed:.2f}x | {statistics.median(firsts):.1f} |")
    out()
    out("| repeat | variant | epochs/min (wall) | CPU s/epoch | start to end of first epoch, s | load before | "
        "load after | torch threads | validation passes per epoch | training.compile |")
    out("|---:|---|---:|---:|---:|---|---|---:|---:|---|")
    for m in runs:
        out(f"| {m['repeat']} | {m['label']} | {m['epochs_per_min']:.1f} | {m['cpu_s_per_epoch']:.3f} | "
            f"{m['first_epoch_end_s']:.1f} | {m['load_before']} | {m['load_after']} | {m['threads']} | "
            f"{m['validations_per_epoch']} | {m.get('compile') or '(no such key)'} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.output:
        Path(args.output).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
