"""Calibrated committee uncertainty on held-out rMD17 ethanol (issue 12 acceptance).

A committee of 4 atomic neural networks is trained by ``atomforge.train`` with
``network: {committee: 4}`` (each member on its own loss, initialisation and bootstrap resample of
the 950 training frames of rmd17_ethanol_train_01; 50 validation frames split off by the
trainer), the calibration factor is fitted on the validation frames and stored in model.afm, and
the model is evaluated by the C++ core on the 1000 held-out frames of rmd17_ethanol_test_01:

* Spearman rank correlation between the predicted per-frame force error (mean over atoms of the
  calibrated deviation c_F eps_i) and the observed one (mean over atoms of |F_i - F_i^ref|);
  target >= 0.5;
* calibrated mean predicted error / observed mean error; target within a factor 1.5.

Writes benchmarks/results/uncertainty.md, uncertainty.json and uncertainty_calibration.png.

Usage:
    python benchmarks/bench_uncertainty.py --max-minutes 30 --runs-dir /tmp/af_unc
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("ATOMFORGE_DATA", "/work/shared/data"))
OUT = REPO / "benchmarks" / "results"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--max-minutes", type=float, default=30.0)
    ap.add_argument("--committee", type=int, default=4)
    ap.add_argument("--hidden", type=int, nargs="+", default=[64, 64])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--runs-dir", default="/tmp/af_uncertainty")
    ap.add_argument("--note", default="", help="extra line for the report (machine load etc.)")
    args = ap.parse_args(argv)

    import numpy as np
    import torch

    import atomforge
    from atomforge.data import load_dataset
    from atomforge.train import train
    from atomforge.train.calibration import (evaluate_with_uncertainty, per_frame_errors, plot_calibration,
                                             uncertainty_metrics)

    run = Path(args.runs_dir) / "ethanol_committee"
    if run.exists():
        shutil.rmtree(run)
    cfg = {"data": str(DATA / "rmd17" / "rmd17_ethanol_train_01.npz"),
           "test_data": str(DATA / "rmd17" / "rmd17_ethanol_test_01.npz"), "seed": 0,
           "network": {"committee": args.committee, "hidden": args.hidden, "committee_data": "bootstrap"},
           "training": {"batch_size": 8, "max_minutes": args.max_minutes, "threads": args.threads,
                        "early_stopping_patience": 100000}}
    t0 = time.time()
    metrics = train(cfg, run, progress=False)
    wall = time.time() - t0
    pot = atomforge.load(run / "model.afm")
    test = load_dataset(cfg["test_data"])
    err = per_frame_errors(evaluate_with_uncertainty(pot, test), test)
    m = uncertainty_metrics(err)
    OUT.mkdir(parents=True, exist_ok=True)
    plot_calibration(err, OUT / "uncertainty_calibration.png",
                     f"rMD17 ethanol, committee of {args.committee}: held-out test_01 (1000 frames)")
    cal = atomforge.read_model(run / "model.afm").calibration
    rho, ratio = m["forces_spearman_frames"], m["forces_ratio"]
    ok_rho, ok_ratio = rho >= 0.5, 1 / 1.5 <= ratio <= 1.5
    t = metrics["test"]
    res = {"date": datetime.date.today().isoformat(), "machine": f"{platform.node()} ({os.cpu_count()} cores)",
           "config": cfg, "wall_seconds": round(wall, 1), "calibration": cal, "test_uncertainty": m,
           "test_errors": {k: t[k] for k in ("energy_mae", "forces_mae", "forces_rmse")},
           "training": metrics["training"], "validation_uncertainty": metrics["uncertainty"]["validation"],
           "torch": torch.__version__}
    (OUT / "uncertainty.json").write_text(json.dumps(res, indent=2))
    lines = [
        "# Calibrated committee uncertainty: rMD17 ethanol (issue 12)",
        "",
        f"- date: {res['date']}; machine: {res['machine']}, shared with other jobs (2 cores, other builds and "
        f"trainings running); {args.threads} torch thread(s). {args.note}",
        f"- command: `python benchmarks/bench_uncertainty.py --max-minutes {args.max_minutes:g} --committee "
        f"{args.committee} --hidden {' '.join(map(str, args.hidden))}`",
        f"- training: rmd17_ethanol_train_01, {metrics['training']['n_train']} train / "
        f"{metrics['training']['n_validation']} validation frames, committee of {args.committee} "
        f"(hidden {args.hidden}, each member its own loss, initialisation and bootstrap resample), "
        f"{metrics['training']['epochs_run']} epochs in {metrics['training']['wall_seconds'] / 60:.1f} min "
        f"(stop: {metrics['training']['stop_reason']})",
        f"- calibration on the validation frames: c_F = {cal['forces']:.3f}, c_E = {cal['energy']:.3f} "
        f"(stored in model.afm)",
        f"- test: rmd17_ethanol_test_01 (1000 held-out frames), evaluated by the C++ core: force MAE "
        f"{1000 * t['forces_mae']:.1f} meV/A, energy MAE {1000 * t['energy_mae']:.2f} meV",
        "",
        "| quantity (test, 1000 frames) | value | target | met? |",
        "|---|---|---|---|",
        f"| Spearman: predicted vs observed per-frame force error | {rho:.3f} | >= 0.5 | {'yes' if ok_rho else 'no'} |",
        f"| mean predicted (calibrated) / mean observed per-frame force error | {ratio:.3f} "
        f"({1000 * m['forces_mean_predicted']:.1f} / {1000 * m['forces_mean_observed']:.1f} meV/A) | 1/1.5 ... 1.5 | "
        f"{'yes' if ok_ratio else 'no'} |",
        f"| Spearman per atom (c_F eps_i vs \\|dF_i\\|) | {m['forces_spearman_atoms']:.3f} | | |",
        f"| Spearman: energy spread vs \\|dE\\| | {m['energy_spearman']:.3f} | | |",
        f"| mean predicted / observed energy error | {m['energy_ratio']:.3f} "
        f"({1000 * m['energy_mean_predicted']:.2f} / {1000 * m['energy_mean_observed']:.2f} meV) | | |",
        "",
        "Per-frame force error: mean over the frame's atoms of |F_i - F_i^ref| (observed) or of "
        "c_F eps_i, eps_i = sqrt(mean_m |F_i^m - <F_i>|^2) (predicted). Before this issue the trainer "
        "optimised only the members' mean; on the same test frames the spread was then 45 times the error "
        "with a correlation of -0.08 (issue 12).",
        "",
        "![calibration](uncertainty_calibration.png)",
        "",
    ]
    (OUT / "uncertainty.md").write_text("\n".join(lines))
    print("\n".join(lines))
    return 0 if (ok_rho and ok_ratio) else 1


if __name__ == "__main__":
    sys.exit(main())
