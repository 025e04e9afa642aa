#!/usr/bin/env python
"""Choosing descriptor and training defaults on a validation split, never on the test set.

Every variant trains on rmd17_<molecule>_train_01.npz split by the trainer (seed 0) into 800
training and 200 validation frames (validation_fraction 0.2) and is judged by the validation
errors of its model.afm evaluated by the C++ core (metrics.json ``validation``). The test files
(rmd17_*_test_01.npz) are not read: the trainer is given the training file itself as its
``test_data`` (its "test" errors, on frames it trained on, are ignored). The best epoch is chosen
on the same 200 frames, so the numbers are slightly optimistic, alike for every variant.

Each run is a folder under --runs-dir holding its metrics.json; runs already there are read, not
repeated, so an interrupted benchmark loses nothing and a table can be rebuilt with --report.
Training time: wall and CPU time of the training process (on a shared machine the wall time
depends on the other work; the CPU time much less).

Usage:
  python benchmarks/bench_selection.py --molecule ethanol --group acsf --epochs 300 --jobs 2 \\
      --runs-dir /tmp/af-selection [--output benchmarks/results/selection_acsf.md]
  python benchmarks/bench_selection.py --list
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

DATA = Path(os.environ.get("ATOMFORGE_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))

_ACSF0 = {"type": "acsf", "r_c": 5.0, "n_radial": 16, "n_angular": 4, "angular": "G5", "radial_grid": "shifted",
          "r_min": 0.7, "cutoff_function": "cos", "n_angular_radial": 4, "angular_grid": "shifted",
          "r_c_angular": None, "zetas": None}
_GMP0 = {"type": "gmp", "r_c": 6.0, "orders": [0, 1, 2, 3], "sigmas": [0.4, 0.8, 1.2, 1.6, 2.0],
         "cutoff_function": "poly2", "square": False, "density_table": "signed",
         "channels": "total"}  # the published GMP, as when the results were made


def _acsf(**kw):
    return {"descriptor": {**_ACSF0, **kw}}


def _gmp(shared=False, **kw):
    v = {"descriptor": {**_GMP0, **kw}}
    if shared:
        v["network"] = {"shared": True}
    return v


def _sig(a, b, n):
    return [round(a + (b - a) * i / (n - 1), 4) for i in range(n)]


#: Named variants: configuration overrides (descriptor / network / training) of the trainer's
#: defaults. Groups are run together.
GROUPS = {
    "acsf": {
        "acsf: main (r_c 5, 16 radial, G5 4 shifted x zeta 1,2,4,16)": _acsf(),
        "acsf: r_c 6": _acsf(r_c=6.0),
        "acsf: r_c 4": _acsf(r_c=4.0),
        "acsf: 24 radial": _acsf(n_radial=24),
        "acsf: zetas 1,2,4,8": _acsf(zetas=[1, 2, 4, 8]),
        "acsf: zetas 1,2,3,4,6,8": _acsf(zetas=[1, 2, 3, 4, 6, 8]),
        "acsf: 6 angular shifts": _acsf(n_angular_radial=6),
        "acsf: angular r_c 4, 4 shifts": _acsf(r_c_angular=4.0),
        "acsf: angular G4": _acsf(angular="G4"),
        "acsf: centered angular grid (4 widths)": _acsf(angular_grid="centered"),
    },
    "gmp": {
        "gmp: main (orders 0-3, 5 sigmas 0.4-2.0, r_c 6)": _gmp(),
        "gmp: orders 0-4": _gmp(orders=[0, 1, 2, 3, 4]),
        "gmp: 10 sigmas 0.2-2.0": _gmp(sigmas=_sig(0.2, 2.0, 10)),
        "gmp: orders 0-4, 10 sigmas 0.2-2.0": _gmp(orders=[0, 1, 2, 3, 4], sigmas=_sig(0.2, 2.0, 10)),
        "gmp: orders 0-4, 10 sigmas, square": _gmp(orders=[0, 1, 2, 3, 4], sigmas=_sig(0.2, 2.0, 10), square=True),
        "gmp: orders 0-4, 10 sigmas, positive table": _gmp(orders=[0, 1, 2, 3, 4], sigmas=_sig(0.2, 2.0, 10),
                                                          density_table="positive"),
        "gmp: orders 0-4, 10 sigmas, r_c 5": _gmp(orders=[0, 1, 2, 3, 4], sigmas=_sig(0.2, 2.0, 10), r_c=5.0),
        "gmp: orders 0-4, 10 sigmas, r_c 8": _gmp(orders=[0, 1, 2, 3, 4], sigmas=_sig(0.2, 2.0, 10), r_c=8.0),
        "gmp: orders 0-6, 12 sigmas 0.2-2.4": _gmp(orders=list(range(7)), sigmas=_sig(0.2, 2.4, 12)),
        "gmp shared: main": _gmp(shared=True),
        "gmp shared: orders 0-4, 10 sigmas 0.2-2.0": _gmp(shared=True, orders=[0, 1, 2, 3, 4],
                                                          sigmas=_sig(0.2, 2.0, 10)),
    },
}


def run_one(name: str, variant: dict, molecule: str, epochs: int, runs_dir: str, extra_training: dict) -> dict:
    import torch

    torch.set_num_threads(1)
    from atomforge.train import train

    train_file = str(DATA / "rmd17" / f"rmd17_{molecule}_train_01.npz")
    cfg = {"data": train_file, "test_data": train_file, "validation_fraction": 0.2, "seed": 0,
           "training": {"epochs": epochs, "threads": 1, **extra_training}}
    for key, val in json.loads(json.dumps(variant)).items():
        cfg[key] = {**cfg.get(key, {}), **val} if isinstance(val, dict) else val
    folder = Path(runs_dir) / molecule / "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
    if (folder / "result.json").exists():
        return json.loads((folder / "result.json").read_text())
    if folder.exists():  # an interrupted run: start it over
        import shutil
        shutil.rmtree(folder)
    w0, c0 = time.time(), time.process_time()
    m = train(cfg, folder, progress=False, log=lambda *a, **k: None)
    res = {"name": name, "molecule": molecule, "config": cfg, "validation": m["validation"],
           "training": m["training"], "wall_minutes": (time.time() - w0) / 60,
           "cpu_minutes": (time.process_time() - c0) / 60}
    (folder / "result.json").write_text(json.dumps(res, indent=2))
    return res


def n_features(cfg: dict, molecule: str) -> str:
    import numpy as np
    from ase.data import chemical_symbols

    from atomforge.descriptors import descriptor_class
    from atomforge.train.config import descriptor_defaults

    z = np.load(DATA / "rmd17" / f"rmd17_{molecule}_train_01.npz")["nuclear_charges"]
    d = {**descriptor_defaults(cfg["descriptor"]["type"]), **cfg["descriptor"]}
    sf = descriptor_class(d["type"]).from_config(d, [chemical_symbols[int(x)] for x in sorted(set(z))])
    counts = sorted(set(sf.n_features_per_element.values()))
    return "/".join(str(c) for c in counts)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--molecule", default="ethanol")
    p.add_argument("--group", action="append", help=f"variant groups: {', '.join(GROUPS)}")
    p.add_argument("--only", action="append", help="run only variants whose name contains this")
    p.add_argument("--epochs", type=int, default=300)
    p.add_argument("--training", default="{}", help="JSON: training keys for every variant (e.g. batch size)")
    p.add_argument("--jobs", type=int, default=2, help="trainings at a time (one torch thread each)")
    p.add_argument("--runs-dir", default="/tmp/af-selection")
    p.add_argument("--output", help="write the markdown table here")
    p.add_argument("--list", action="store_true")
    args = p.parse_args(argv)
    if args.list:
        for g, vs in GROUPS.items():
            print(g)
            for n, v in vs.items():
                print(f"  {n}: {json.dumps(v)}")
        return 0
    variants = {n: v for g in (args.group or ["acsf"]) for n, v in GROUPS[g].items()
                if not args.only or any(o in n for o in args.only)}
    extra = json.loads(args.training)
    t0 = time.time()
    with ProcessPoolExecutor(args.jobs, mp_context=get_context("spawn")) as ex:
        futs = {n: ex.submit(run_one, n, v, args.molecule, args.epochs, args.runs_dir, extra)
                for n, v in variants.items()}
        results = {}
        for n, f in futs.items():
            results[n] = f.result()
            r = results[n]["validation"]
            print(f"{n}: validation F MAE {1000 * r['forces_mae']:.1f} meV/A, E MAE {1000 * r['energy_mae']:.2f} meV "
                  f"({results[n]['cpu_minutes']:.1f} CPU min)", flush=True)
    import atomforge
    import torch

    lines = []
    out = lambda s="": lines.append(s)
    out(f"# Selection on a validation split: rMD17 {args.molecule}")
    out()
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    out(f"- date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; machine: {cpu}, {os.cpu_count()} cores "
        f"(shared with other work), {args.jobs} trainings at a time, 1 torch thread each; atomforge "
        f"{atomforge.__version__}, torch {torch.__version__}, Python {platform.python_version()}")
    out(f"- data: rmd17_{args.molecule}_train_01.npz, 800 training / 200 validation frames (seed 0); the test "
        f"file is not used. Errors: validation frames, model.afm evaluated by the C++ core")
    out(f"- budget: {args.epochs} epochs, cosine schedule over them, the best validation epoch kept; training keys "
        f"for every variant: {json.dumps(extra) if extra else 'defaults'}")
    out(f"- command: `python benchmarks/{Path(__file__).name} {' '.join(sys.argv[1:] if argv is None else argv)}`")
    out()
    out("| variant | features per element | force MAE meV/A | force RMSE meV/A | energy MAE meV | best epoch | "
        "CPU min | wall min |")
    out("|---|---:|---:|---:|---:|---:|---:|---:|")
    for n, r in sorted(results.items(), key=lambda kv: kv[1]["validation"]["forces_mae"]):
        v = r["validation"]
        out(f"| {n} | {n_features(r['config'], args.molecule)} | {1000 * v['forces_mae']:.2f} | "
            f"{1000 * v['forces_rmse']:.2f} | {1000 * v['energy_mae']:.2f} | {r['training']['best_epoch']} | "
            f"{r['cpu_minutes']:.1f} | {r['wall_minutes']:.1f} |")
    out()
    out("Variants (overrides of the defaults):")
    out()
    for n in variants:
        out(f"- {n}: `{json.dumps(variants[n])}`")
    text = "\n".join(lines) + "\n"
    print(text)
    print(f"total {(time.time() - t0) / 60:.1f} min")
    if args.output:
        Path(args.output).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
