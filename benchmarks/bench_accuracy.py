"""Accuracy benchmark: train BPNN potentials with atomforge's training defaults and report test errors.

Systems:
    ethanol, malonaldehyde, uracil   rMD17 (PBE/def2-SVP), rmd17_<mol>_train_01.npz (1000 frames:
                                     950 train / 50 validation, split by the trainer) and
                                     rmd17_<mol>_test_01.npz (1000 frames) as the test set
    water                            DeePMD liquid water (64 H2O, periodic): systems data_0..data_2
                                     for training (validation split off them), data_3 held out

Targets (rMD17): the ANI column of Batzner et al., Nat. Commun. 13, 2453 (2022), Table 1
(energy MAE meV, force MAE meV/A, 1000 training frames). Water has no target here.

Every run writes its run folder (model.afm, metrics.json, history.csv, plots) under --runs-dir;
the test metrics are those of metrics.json (model.afm evaluated by the C++ core).

Usage:
    PYTHONPATH=python python benchmarks/bench_accuracy.py                      # all, 30 min each
    python benchmarks/bench_accuracy.py --molecules ethanol --max-minutes 30
    python benchmarks/bench_accuracy.py --max-minutes ethanol=30,malonaldehyde=12,uracil=12,water=12 --jobs 2
"""
from __future__ import annotations

import argparse
import copy
import datetime
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "python"))

DATA = Path(os.environ.get("ATOMFORGE_DATA", "/work/shared/data"))
MOLECULES = ("ethanol", "malonaldehyde", "uracil")
ALL = MOLECULES + ("water",)
# ANI, Batzner et al. (2022) Table 1: (energy MAE meV, force MAE meV/A)
TARGETS = {"ethanol": (2.5, 13.4), "malonaldehyde": (4.6, 24.5), "uracil": (5.1, 21.4)}
KCAL_MOL = 1 / 23.060547830619026  # eV per kcal/mol (CODATA 2018, the core's table: atomforge.units)

# settings per system on top of atomforge.train.config.DEFAULTS (which are what the molecules use)
MOLECULE = {"training": {"batch_size": 8}}
# 192-atom frames: a smaller descriptor (72 features) keeps the cached Jacobians at ~5 GB
WATER = {
    "descriptor": {"r_c": 5.0, "n_radial": 12, "n_angular": 4, "n_angular_radial": 2},
    "training": {"batch_size": 4, "jacobian_cache_mb": 12000},
}


def parse_minutes(text: str, names) -> dict:
    """'30' -> every system 30 min; 'ethanol=30,water=10' -> per system (others: 30)."""
    if "=" not in text:
        return {n: float(text) for n in names}
    out = {n: 30.0 for n in names}
    for item in text.split(","):
        k, v = item.split("=")
        out[k.strip()] = float(v)
    return out


def system_config(name: str, minutes: float, tmp: Path, threads: int, epochs=None) -> dict:
    cfg = {"seed": 0, "training": {"max_minutes": minutes, "threads": threads}}
    if name == "water":
        root = DATA / "deepmd_water" / "energy_force"
        train_dir = tmp / "water_train"
        if not train_dir.exists():  # one DeePMD folder holding the three training systems
            train_dir.mkdir(parents=True)
            for i in range(3):
                shutil.copytree(root / f"data_{i}", train_dir / f"data_{i}")
        cfg.update(data=str(train_dir), test_data=str(root / "data_3"))
        over = copy.deepcopy(WATER)
        cfg["descriptor"] = over["descriptor"]
        cfg["training"].update(over["training"])
    else:
        d = DATA / "rmd17"
        cfg.update(data=str(d / f"rmd17_{name}_train_01.npz"), test_data=str(d / f"rmd17_{name}_test_01.npz"))
        cfg["training"].update(MOLECULE["training"])
    if epochs:
        cfg["training"]["epochs"] = epochs
    return cfg


def run_one(name: str, cfg: dict, run_dir: str, threads: int) -> dict:
    import torch

    torch.set_num_threads(threads)
    from atomforge.train import train
    from atomforge.train.config import DEFAULTS, _merge

    full = _merge(DEFAULTS, cfg, "")
    if Path(run_dir).exists():
        shutil.rmtree(run_dir)
    t0 = time.time()
    m = train(cfg, run_dir, progress=False, log=lambda *a: print(f"[{name}]", *a, flush=True))
    m["total_seconds"] = time.time() - t0
    m["config"] = full
    print(f"[{name}] done: test forces MAE {1000 * m['test']['forces_mae']:.1f} meV/A, energy MAE "
          f"{1000 * m['test']['energy_mae']:.2f} meV, {m['training']['epochs_run']} epochs, "
          f"{m['total_seconds'] / 60:.1f} min", flush=True)
    return m


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def table(results: dict, args, jobs: int, threads: int) -> str:
    import atomforge
    import torch

    lines = ["# Accuracy benchmark: BPNN potentials trained with atomforge", "",
             f"- date: {datetime.date.today().isoformat()}",
             f"- machine: {cpu_model()}, {os.cpu_count()} cores visible; {jobs} training(s) at a time, "
             f"{threads} torch thread(s) each",
             f"- atomforge {atomforge.__version__}, torch {torch.__version__}, Python {platform.python_version()}",
             f"- command: `python benchmarks/bench_accuracy.py {' '.join(args)}`",
             "- errors on the held-out test set, evaluated by the C++ core from model.afm; "
             "targets: ANI in Batzner et al., Nat. Commun. 13, 2453 (2022), Table 1", "",
             "## Molecules (rMD17, train_01 / test_01)", "",
             "| molecule | n_train | epochs | train time | energy MAE meV (kcal/mol) | force MAE meV/A (kcal/mol/A) "
             "| target E / F (meV, meV/A) | met? |",
             "|---|---|---|---|---|---|---|---|"]
    for name in MOLECULES:
        if name not in results:
            continue
        m = results[name]
        te, tr = m["test"], m["training"]
        e, f = 1000 * te["energy_mae"], 1000 * te["forces_mae"]
        tE, tF = TARGETS[name]
        met = {(True, True): "yes", (True, False): "energy only", (False, True): "forces only"}.get(
            (e <= tE, f <= tF), "no")
        lines.append(f"| {name} | {tr['n_train']} | {tr['epochs_run']} | {tr['wall_seconds'] / 60:.1f} min "
                     f"({m['total_seconds'] / 60:.1f} total) | {e:.2f} ({te['energy_mae_kcal_mol']:.3f}) "
                     f"| {f:.1f} ({te['forces_mae_kcal_mol']:.3f}) | {tE} / {tF} | {met} |")
    if "water" in results:
        m = results["water"]
        te, tr = m["test"], m["training"]
        lines += ["", "## Liquid water (DeePMD data, 192 atoms, periodic; train data_0..2, test data_3)", "",
                  "| n_train | epochs | train time | energy MAE meV/atom | energy RMSE meV/atom "
                  "| force MAE meV/A | force RMSE meV/A |",
                  "|---|---|---|---|---|---|---|",
                  f"| {tr['n_train']} | {tr['epochs_run']} | {tr['wall_seconds'] / 60:.1f} min "
                  f"({m['total_seconds'] / 60:.1f} total) | {1000 * te['energy_mae_per_atom']:.3f} "
                  f"| {1000 * te['energy_rmse_per_atom']:.3f} | {1000 * te['forces_mae']:.1f} "
                  f"| {1000 * te['forces_rmse']:.1f} |"]
    lines += ["", "## Settings", ""]
    for name, m in results.items():
        c = m["config"]
        show = {k: c[k] for k in ("descriptor", "network", "training")}
        lines += [f"{name} (stop: {m['training']['stop_reason']}, best epoch {m['training']['best_epoch']}):", "",
                  "```json", json.dumps(show), "```", ""]
    return "\n".join(lines) + "\n"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--molecules", default=",".join(ALL), help=f"comma-separated subset of {','.join(ALL)}")
    ap.add_argument("--max-minutes", default="30",
                    help="training wall-time limit per system: one number, or name=minutes,... (default 30)")
    ap.add_argument("--epochs", type=int, default=None, help="override training.epochs (default: config default)")
    ap.add_argument("--jobs", type=int, default=1, help="trainings run at the same time (default 1)")
    ap.add_argument("--threads", type=int, default=0,
                    help="torch threads per training (default: cores / jobs)")
    ap.add_argument("--runs-dir", default=None, help="keep run folders here (default: a temporary folder)")
    ap.add_argument("--output", default=str(REPO / "benchmarks" / "results" / "accuracy.md"))
    args = ap.parse_args(argv)
    names = [n.strip() for n in args.molecules.split(",") if n.strip()]
    bad = [n for n in names if n not in ALL]
    if bad:
        ap.error(f"unknown system(s) {bad}; choose from {ALL}")
    minutes = parse_minutes(args.max_minutes, names)
    threads = args.threads or max(1, (os.cpu_count() or 1) // args.jobs)
    tmp = Path(tempfile.mkdtemp(prefix="af_bench_"))
    runs = Path(args.runs_dir) if args.runs_dir else tmp / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    results = {}
    try:
        cfgs = {n: system_config(n, minutes[n], tmp, threads, args.epochs) for n in names}
        with ProcessPoolExecutor(max_workers=args.jobs, mp_context=get_context("spawn")) as pool:
            futs = {n: pool.submit(run_one, n, cfgs[n], str(runs / n), threads) for n in names}
            for n in names:
                try:
                    results[n] = futs[n].result()
                except Exception as exc:  # report the others
                    print(f"[{n}] failed: {exc!r}", flush=True)
                    continue
                (runs / f"{n}.json").write_text(json.dumps(results[n], indent=2, default=str))
    finally:
        shutil.rmtree(tmp / "water_train", ignore_errors=True)
    text = table(results, sys.argv[1:] if argv is None else argv, args.jobs, threads)
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    print(text)
    print(f"written to {out}; run folders in {runs}")


if __name__ == "__main__":
    main()
