"""sGDML accuracy and speed on rMD17 (original MD17 labels and rMD17 labels), optionally side by
side with the reference implementation (``pip install sgdml==1.0.3 --no-deps``).

    python benchmarks/bench_sgdml.py --molecules ethanol --labels old --n-train 1000 \
        --out benchmarks/results/sgdml.md [--compare-sgdml 200]

Each training runs in a child process so that its peak memory (ru_maxrss) is its own. Accuracy:
train on rmd17_<mol>_train_01.npz (n_train frames), sigma chosen on validation frames of the
training file with 200-point models, test on all 1000 frames of rmd17_<mol>_test_01.npz.
Published sGDML force MAEs on MD17 at 1000 points (kcal/mol/A, Chmiela et al. 2018/2019):
ethanol 0.33, malonaldehyde 0.41, uracil 0.24, toluene 0.14, salicylic acid 0.28, naphthalene 0.11.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "python"))
PUBLISHED = {"ethanol": 0.33, "malonaldehyde": 0.41, "uracil": 0.24, "toluene": 0.14, "salicylic": 0.28,
             "naphthalene": 0.11, "aspirin": 0.68, "benzene": 0.06}
KEYS = {"old": ("old_energies", "old_forces"), "new": ("energies", "forces")}


def data_dir() -> Path:
    return Path(os.environ.get("ATOMFORGE_DATA", ROOT.parent / "shared" / "data")) / "rmd17"


def peak_rss_gb() -> float:
    """Peak resident memory of this process image (VmHWM; ru_maxrss would carry the parent's
    peak across fork/exec)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024 ** 2
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2


def child_train(args):
    from atomforge.sgdml import train_sgdml
    ek, fk = KEYS[args.labels]
    t = time.time()
    m = train_sgdml(data_dir() / f"rmd17_{args.molecule}_train_01.npz", data_dir() / f"rmd17_{args.molecule}_test_01.npz",
                    args.run_dir, n_train=args.n_train, n_valid=200, sigmas=tuple(args.sigmas) if args.sigmas else None, energy_key=ek,
                    forces_key=fk, seed=0, progress=False, threads=args.threads, log=lambda *a: print(*a, file=sys.stderr),
                    memory_budget=int(args.memory_budget * 1024 ** 3) if args.memory_budget else None)
    m["bench"] = {"wall_s": time.time() - t, "peak_rss_gb": peak_rss_gb()}
    print(json.dumps(m))


def child_sgdml_train(args):
    """Reference implementation: train with sgdml 1.0.3 at args.n_train (fixed sigma)."""
    if not hasattr(np, "in1d"):
        np.in1d = np.isin
    from sgdml.train import GDMLTrain
    ek, fk = KEYS[args.labels]
    d = np.load(data_dir() / f"rmd17_{args.molecule}_train_01.npz")
    idx = np.random.default_rng(0).choice(len(d["coords"]), args.n_train, replace=False)  # = child_ours_fixed
    rest = np.setdiff1d(np.arange(len(d["coords"])), idx)[:50]

    def dataset(ii, tag):
        return {"type": "d", "name": np.array(args.molecule), "theory": np.array("PBE"),
                "z": d["nuclear_charges"].astype(int), "R": d["coords"][ii], "E": d[ek][ii][:, None], "F": d[fk][ii],
                "r_unit": np.array("Ang"), "e_unit": np.array("kcal/mol"), "md5": np.array(tag)}

    t = time.time()
    gt = GDMLTrain(max_processes=args.threads or os.cpu_count())
    task = gt.create_task(dataset(idx, "train"), args.n_train, dataset(rest, "valid"), len(rest), sig=args.sigmas[0],
                          lam=1e-10, use_sym=True)
    model = gt.train(task)
    wall = time.time() - t
    peak = peak_rss_gb()
    np.savez(Path(args.run_dir) / "sgdml_model.npz", **model)
    from sgdml.predict import GDMLPredict
    te = np.load(data_dir() / f"rmd17_{args.molecule}_test_01.npz")
    _, f = GDMLPredict(model, max_processes=args.threads or os.cpu_count()).predict(te["coords"].reshape(len(te["coords"]), -1))
    mae = float(np.mean(np.abs(f.reshape(te[fk].shape) - te[fk])))
    print(json.dumps({"wall_s": wall, "peak_rss_gb": peak, "n_perms": int(len(model["perms"])),
                      "test_forces_mae_kcal_mol": mae}))


def child_ours_fixed(args):
    """Ours at the same size and sigma as child_sgdml_train (no grid search), for timing."""
    from atomforge.sgdml import find_perms, fit
    from atomforge.train.metrics import KCAL_MOL
    ek, fk = KEYS[args.labels]
    d = np.load(data_dir() / f"rmd17_{args.molecule}_train_01.npz")
    idx = np.random.default_rng(0).choice(len(d["coords"]), args.n_train, replace=False)
    t = time.time()
    R = d["coords"][idx]
    perms = find_perms(R, d["nuclear_charges"])
    p = fit(R, d[ek][idx] * KCAL_MOL, d[fk][idx] * KCAL_MOL, d["nuclear_charges"], perms, args.sigmas[0], 1e-10,
            threads=args.threads)
    wall, peak = time.time() - t, peak_rss_gb()
    from atomforge.sgdml import predict
    te = np.load(data_dir() / f"rmd17_{args.molecule}_test_01.npz")
    _, f = predict(p, te["coords"], args.threads)
    mae = float(np.mean(np.abs(f / KCAL_MOL - te[fk])))
    print(json.dumps({"wall_s": wall, "peak_rss_gb": peak, "n_perms": int(len(perms)), "test_forces_mae_kcal_mol": mae}))


def run_child(mode, **kw):
    cmd = [sys.executable, __file__, "--child", mode]
    for k, v in kw.items():
        if v is None:
            continue
        if isinstance(v, (list, tuple)):
            cmd += [f"--{k.replace('_', '-')}"] + [str(x) for x in v]
        else:
            cmd += [f"--{k.replace('_', '-')}", str(v)]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"{mode} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def median_ms(call, n):
    """Median wall time in ms of call(i) for i in range(n) (one configuration each)."""
    lat = []
    for i in range(n):
        t = time.perf_counter()
        call(i)
        lat.append(time.perf_counter() - t)
    return 1e3 * float(np.median(lat))


def speed(model_path, test_file, threads_list=(1, 2)):
    import atomforge
    pot = atomforge.load(model_path)
    d = np.load(test_file)
    R = np.ascontiguousarray(d["coords"])
    res = {}
    for th in threads_list:
        pot._core.predict(R[:10], th)
        t = time.perf_counter()
        pot._core.predict(R, th)
        res[f"batched_configs_per_s_{th}t"] = len(R) / (time.perf_counter() - t)
        res[f"latency_core_ms_{th}t"] = median_ms(lambda i: pot._core.predict(R[i:i + 1], th), 300)
        z = d["nuclear_charges"]
        res[f"latency_compute_ms_{th}t"] = median_ms(lambda i: pot.compute(R[i], z, threads=th), 200)
    return res


def sgdml_speed(npz_path, test_file):
    if not hasattr(np, "in1d"):
        np.in1d = np.isin
    from sgdml.predict import GDMLPredict
    m = dict(np.load(npz_path))
    R = np.load(test_file)["coords"]
    res = {}
    gp = GDMLPredict(m, max_processes=os.cpu_count())
    gp.prepare_parallel(n_bulk=len(R))  # sgdml's own tuning of chunk size / processes for this batch
    t = time.perf_counter()
    gp.predict(R.reshape(len(R), -1))
    res["sgdml_numpy_batched_configs_per_s"] = len(R) / (time.perf_counter() - t)
    gp1 = GDMLPredict(m, max_processes=1)
    gp1.prepare_parallel(n_bulk=1)
    res["sgdml_numpy_latency_ms"] = median_ms(lambda i: gp1.predict(R[i].reshape(1, -1)), 100)
    try:
        gpt = GDMLPredict(m, use_torch=True)
        gpt.predict(R[:2].reshape(2, -1))
        res["sgdml_torch_cpu_latency_ms"] = median_ms(lambda i: gpt.predict(R[i].reshape(1, -1)), 100)
        t = time.perf_counter()
        gpt.predict(R.reshape(len(R), -1))
        res["sgdml_torch_cpu_batched_configs_per_s"] = len(R) / (time.perf_counter() - t)
    except Exception as exc:  # noqa: BLE001 - report, don't fail the benchmark
        res["sgdml_torch_error"] = repr(exc)[:200]
    return res


def thousand_point_section(runs_json, mol):
    """Markdown lines: our 1000-point runs of `mol` (from runs_json) beside the issue's sgdml figures."""
    lines = []
    runs = sorted(Path(runs_json).glob(f"{mol}_*_1000.json"))
    if runs:
        lines += ["", "## 1000 training points (sgdml 1.0.3 does not fit this 23 GB machine at 1000 points)", "",
                  "atomforge from the runs of benchmarks/results/sgdml.md (wall includes the permutation search, "
                  "the sigma search where there was one, the fit and the test evaluation); sgdml 1.0.3 from the "
                  "issue (rMD17 ethanol, 1000 points, 2 cores; its Cholesky failed and it fell back to LU).", "",
                  "| code | labels | sigma search | wall (s) | peak RSS (GiB) | test forces MAE (kcal/mol/A) |",
                  "|---|---|---|---:|---:|---:|",
                  "| sgdml 1.0.3 (issue) | rMD17 | - | 437 | 22.8 | 0.360 |"]
        for rp in runs:
            r = json.loads(rp.read_text())
            tr = r["training"]
            lines.append(f"| atomforge | {'rMD17' if r['labels'] == 'new' else 'MD17 (old)'} | "
                         f"{'yes, ' + str(len(tr['hyperparameter_grid'])) + ' models' if tr['hyperparameter_grid'] else 'no (sigma ' + format(tr['sigma'], 'g') + ')'} | "
                         f"{r['bench']['wall_s']:.0f} | {r['bench']['peak_rss_gb']:.2f} | {r['test']['forces_mae_kcal_mol']:.3f} |")
    return lines


def side_by_side(args):
    """Prediction and training, ours against sgdml 1.0.3, in one run on the same model and data."""
    from atomforge.sgdml import export_sgdml_npz, read_sgdml

    model = Path(args.side_by_side)
    mol, lab = args.molecule, args.labels
    test = data_dir() / f"rmd17_{mol}_test_01.npz"
    work = Path(args.run_dir) / "side_by_side"
    work.mkdir(parents=True, exist_ok=True)
    npz = work / "ours_as_sgdml.npz"
    export_sgdml_npz(read_sgdml(model), npz)
    # same predictions? (forces of the first 50 test geometries, kcal/mol/A)
    if not hasattr(np, "in1d"):
        np.in1d = np.isin
    import atomforge
    from sgdml.predict import GDMLPredict
    R = np.load(test)["coords"][:50]
    _, f_sg = GDMLPredict(dict(np.load(npz)), max_processes=1).predict(R.reshape(len(R), -1))
    _, f_us = atomforge.load(model)._core.predict(np.ascontiguousarray(R), 1)
    from atomforge.train.metrics import KCAL_MOL
    max_diff = float(np.abs(f_sg.reshape(f_us.shape) - f_us / KCAL_MOL).max())
    ours = speed(model, test)
    ref = sgdml_speed(npz, test)
    train_rows = []
    for n in args.side_by_side_n:
        for mode in ("sgdml_train", "ours_fixed"):
            r = run_child(mode, molecule=mol, labels=lab, n_train=n, sigmas=[args.compare_sigma], threads=args.threads,
                          run_dir=work)
            train_rows.append((n, mode, r))
            print(n, mode, r, flush=True)
    meta = read_sgdml(model)
    lines = [f"# sGDML side by side with sgdml 1.0.3 ({time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} cores)", "",
             f"Command: `python benchmarks/bench_sgdml.py {' '.join(sys.argv[1:])}`", "",
             f"Machine: {os.cpu_count()}-core AMD EPYC VM (AVX-512), no other job running during this script. "
             f"Model: `{model.name}` from the {mol} `{lab}` run of benchmarks/results/sgdml.md "
             f"({len(meta.R_desc)} training points, {len(meta.perms)} permutations, sigma {meta.sigma:g}), exported to "
             "sgdml's npz so that both codes evaluate the same model on the 1000 test geometries. Largest force "
             f"difference between the two on 50 geometries: {max_diff:.2e} kcal/mol/A.", "",
             "## Prediction", "",
             "| | atomforge core | sgdml NumPy | sgdml torch (CPU) | ratio (atomforge / best sgdml) |", "|---|---:|---:|---:|---:|"]
    best_b = max(ref.get("sgdml_numpy_batched_configs_per_s", 0), ref.get("sgdml_torch_cpu_batched_configs_per_s", 0))
    best_l = min(ref.get("sgdml_numpy_latency_ms", 1e9), ref.get("sgdml_torch_cpu_latency_ms", 1e9))
    lines += [f"| batched configurations/s (2 threads) | {ours['batched_configs_per_s_2t']:.0f} | "
              f"{ref.get('sgdml_numpy_batched_configs_per_s', float('nan')):.0f} | "
              f"{ref.get('sgdml_torch_cpu_batched_configs_per_s', float('nan')):.0f} | "
              f"{ours['batched_configs_per_s_2t'] / best_b:.1f}x |",
              f"| batched configurations/s (1 thread) | {ours['batched_configs_per_s_1t']:.0f} | | | |",
              f"| single-configuration latency, ms (2 threads) | {ours['latency_core_ms_2t']:.3f} | "
              f"{ref.get('sgdml_numpy_latency_ms', float('nan')):.3f} | {ref.get('sgdml_torch_cpu_latency_ms', float('nan')):.3f} | "
              f"{best_l / ours['latency_core_ms_2t']:.1f}x faster |",
              f"| single-configuration latency, ms (1 thread) | {ours['latency_core_ms_1t']:.3f} | | | |",
              f"| `Potential.compute` latency, ms (1 / 2 threads, incl. Python wrapper) | "
              f"{ours['latency_compute_ms_1t']:.3f} / {ours['latency_compute_ms_2t']:.3f} | | | |", "",
              "sgdml NumPy latency: `GDMLPredict(max_processes=1).predict` on one geometry; batched: "
              "`max_processes=2` on all 1000, both after sgdml's `prepare_parallel` tuning; torch: `use_torch=True`. "
              "Ours: `SGDML.predict` (the core's batched entry point) on one geometry / on all 1000. The issue's "
              "figures for sgdml 1.0.3 on rMD17 ethanol (its machine, 2 cores): 10.8 ms (NumPy) and 0.99 ms (torch) "
              "per configuration, 2,300 configurations/s batched; targets: latency <= 0.1 ms, batched >= 2x.", "",
              f"## Training (same {mol} training geometries for both, sigma {args.compare_sigma:g}, lambda = 1e-10, "
              "permutation search included, each in its own process; test: the 1000 test geometries)", "",
              "| n_train | code | wall (s) | peak RSS (GiB) | permutations | test forces MAE (kcal/mol/A) |",
              "|---|---|---:|---:|---:|---:|"]
    for n, mode, r in train_rows:
        lines.append(f"| {n} | {'sgdml 1.0.3' if mode == 'sgdml_train' else 'atomforge'} | {r['wall_s']:.1f} | "
                     f"{r['peak_rss_gb']:.2f} | {r['n_perms']} | {r.get('test_forces_mae_kcal_mol', float('nan')):.3f} |")
    lines += thousand_point_section(args.runs_json, mol)
    Path(args.side_by_side_out).write_text("\n".join(lines) + "\n")
    print("wrote", args.side_by_side_out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--child")
    ap.add_argument("--molecule", default="ethanol")
    ap.add_argument("--molecules", nargs="+", default=["ethanol"])
    ap.add_argument("--labels", default="old")
    ap.add_argument("--label-sets", nargs="+", default=["old"])
    ap.add_argument("--n-train", type=int, default=1000)
    ap.add_argument("--sigmas", nargs="+", type=float, default=None,
                    help="sigma grid (default: train_sgdml's adaptive search)")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--sigma-from", default=None, choices=list(KEYS),
                    help="use the sigma chosen by this label set's run of the same molecule (no search)")
    ap.add_argument("--memory-budget", type=float, default=0, help="GB for the solver (0: 80%% of available)")
    ap.add_argument("--runs-json", default=str(ROOT / "benchmarks" / "results" / "sgdml_runs"),
                    help="folder of one JSON per (molecule, labels) run; the table is built from all of them")
    ap.add_argument("--run-dir", default="/tmp/bench_sgdml")
    ap.add_argument("--compare-sgdml", type=int, default=0, help="training size for the side-by-side run (0: off)")
    ap.add_argument("--compare-sigma", type=float, default=20)
    ap.add_argument("--side-by-side", default=None, help="model.afm: compare prediction and training with sgdml")
    ap.add_argument("--side-by-side-n", nargs="+", type=int, default=[200, 500])
    ap.add_argument("--side-by-side-out", default=str(ROOT / "benchmarks" / "results" / "sgdml_side_by_side.md"))
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "sgdml.md"))
    args = ap.parse_args()
    if args.child:
        {"train": child_train, "sgdml_train": child_sgdml_train, "ours_fixed": child_ours_fixed}[args.child](args)
        return
    if args.side_by_side:
        side_by_side(args)
        return
    rows, extra = [], []
    for lab in args.label_sets:
        for mol in args.molecules:
            rd = Path(args.run_dir) / f"{mol}_{lab}_{args.n_train}"
            rd.mkdir(parents=True, exist_ok=True)
            sigmas = args.sigmas
            if args.sigma_from:
                prev = json.loads((Path(args.runs_json) / f"{mol}_{args.sigma_from}_{args.n_train}.json").read_text())
                sigmas = [prev["training"]["sigma"]]
            m = run_child("train", molecule=mol, labels=lab, n_train=args.n_train, sigmas=sigmas,
                          threads=args.threads, run_dir=rd, memory_budget=args.memory_budget)
            sp = speed(rd / "model.afm", data_dir() / f"rmd17_{mol}_test_01.npz")
            rows.append((mol, lab, m, sp))
            rec = {"molecule": mol, "labels": lab, "date": time.strftime("%Y-%m-%d %H:%M"),
                   "command": " ".join(sys.argv[1:]), "test": m["test"], "training": m["training"],
                   "bench": m["bench"], "speed": sp}
            Path(args.runs_json).mkdir(parents=True, exist_ok=True)
            (Path(args.runs_json) / f"{mol}_{lab}_{args.n_train}.json").write_text(json.dumps(rec, indent=1))
            print(mol, lab, json.dumps(rec), flush=True)
            write_md(args, extra)
            if args.compare_sgdml and mol == "ethanol":
                try:
                    from atomforge.sgdml import export_sgdml_npz, read_sgdml
                    export_sgdml_npz(read_sgdml(rd / "model.afm"), rd / "ours_as_sgdml.npz")
                    sgs = sgdml_speed(rd / "ours_as_sgdml.npz", data_dir() / f"rmd17_{mol}_test_01.npz")
                    ref = run_child("sgdml_train", molecule=mol, labels=lab, n_train=args.compare_sgdml,
                                    sigmas=[args.compare_sigma], threads=args.threads, run_dir=rd)
                    ours = run_child("ours_fixed", molecule=mol, labels=lab, n_train=args.compare_sgdml,
                                     sigmas=[args.compare_sigma], threads=args.threads, run_dir=rd)
                    extra.append((mol, lab, sgs, ref, ours))
                    print("compare", json.dumps({"sgdml_speed": sgs, "sgdml_train": ref, "ours_train": ours}), flush=True)
                except Exception as exc:  # noqa: BLE001
                    print("sgdml comparison failed:", exc, flush=True)
    write_md(args, extra)


def load_rows(folder):
    order = {m: i for i, m in enumerate(PUBLISHED)}
    recs = [json.loads(p.read_text()) for p in sorted(Path(folder).glob("*.json"))]
    recs.sort(key=lambda r: (r["labels"] != "old", order.get(r["molecule"], 99), r["molecule"]))
    return [(r["molecule"], r["labels"], r, r["speed"]) for r in recs]


def write_md(args, extra):
    rows = load_rows(args.runs_json)
    lines = [f"# sGDML benchmark ({time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} cores)", "",
             f"Last command: `python benchmarks/bench_sgdml.py {' '.join(sys.argv[1:])}`. Rows are read from "
             f"`benchmarks/results/sgdml_runs/*.json` (one per training run, with its own command, date and full "
             f"metrics), so runs made separately end up in one table.", "",
             "Train: `rmd17_<mol>_train_01.npz` (n_train frames); sigma picked on 200 validation frames of the "
             "training file with 400-point models (adaptive search, see the runs' hyperparameter_grid); test: all 1000 frames of `rmd17_<mol>_test_01.npz`, evaluated "
             "by the C++ core. `old` = original MD17 labels (old_energies/old_forces), `new` = rMD17 labels. "
             "sigma* = taken from the same molecule's `old` run (same geometries), no search.", "",
             "| molecule | labels | n_train | perms | sigma | solver | forces MAE (kcal/mol/A) | published | ratio | "
             "energy MAE (kcal/mol) | train wall (s) | peak RSS (GiB) | batched configs/s (1t / 2t) | "
             "latency core (ms, 1t / 2t) | latency compute() (ms, 1t) |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for mol, lab, m, sp in rows:
        t, tr = m["test"], m["training"]
        pub = PUBLISHED.get(mol) if lab == "old" else None
        f_mae = t["forces_mae_kcal_mol"]
        pub_s = f"{pub:.2f} | {f_mae / pub:.3f}" if pub else "- | -"
        sig = f"{tr['sigma']:g}" + ("" if tr["hyperparameter_grid"] else "*")
        lines.append(f"| {mol} | {lab} | {tr['n_train']} | {tr['n_perms']} | {sig} | {tr['solver']} | "
                     f"{f_mae:.3f} | {pub_s} | "
                     f"{t['energy_mae_kcal_mol']:.3f} | "
                     f"{m['bench']['wall_s']:.0f} | {m['bench']['peak_rss_gb']:.2f} | "
                     f"{sp['batched_configs_per_s_1t']:.0f} / {sp['batched_configs_per_s_2t']:.0f} | "
                     f"{sp['latency_core_ms_1t']:.3f} / {sp['latency_core_ms_2t']:.3f} | "
                     f"{sp['latency_compute_ms_1t']:.3f} |")
    lines += ["", "Notes:", "",
              "* Machine: 2-core AMD EPYC VM (Zen 5, AVX-512), 23 GB RAM, no GPU; the runs are sequential, each "
              "training in its own process (peak RSS = its VmHWM). Speed columns are measured in the parent right "
              "after each training (`SGDML.predict` on the 1000 test geometries / on one geometry; `compute()` "
              "includes the Python wrapper); they scale with M x permutations x d. The side-by-side comparison "
              "with sgdml 1.0.3 on one model is in sgdml_side_by_side.md.",
              "* Published values: sGDML with 1000 training points on the original MD17 labels, Chmiela et al., "
              "Nat. Commun. 9, 3887 (2018), as listed in the issue (aspirin's 0.68 from the same paper is not in "
              "the issue's list); `ratio` = ours / published (target: within 10 %, i.e. <= 1.1).",
              "* Memory: the closed form keeps only the lower triangle of the (3NM)^2 kernel matrix in tiles "
              "(4 (3NM)^2 bytes: 2.9 GB for 9 atoms, 11.7 GB for 18, 15.9 GB for 21 at M = 1000), so every "
              "molecule here, aspirin (21 atoms) included, is solved exactly inside 24 GB.",
              "* `new` rows reuse the sigma of the same molecule's `old` run (same training geometries) to "
              "save the search; their errors are on the rMD17 labels, for which no sGDML values were published "
              "with this split."]
    for mol, lab, sgs, ref, ours in extra:
        lines += ["", f"## Side by side with sgdml 1.0.3 ({mol}, {lab} labels)", "",
                  f"Training at n = {args.compare_sgdml}, sigma = {args.compare_sigma:g}, lambda = 1e-10 "
                  "(including permutation search), each in its own process:", "",
                  "| | wall (s) | peak RSS (GiB) | permutations |", "|---|---|---|---|",
                  f"| sgdml 1.0.3 | {ref['wall_s']:.1f} | {ref['peak_rss_gb']:.2f} | {ref['n_perms']} |",
                  f"| atomforge | {ours['wall_s']:.1f} | {ours['peak_rss_gb']:.2f} | {ours['n_perms']} |", "",
                  f"Prediction with the same {args.n_train}-point model (ours exported to sgdml's npz):", "",
                  "```", json.dumps(sgs, indent=1), "```"]
    Path(args.out).write_text("\n".join(lines) + "\n")
    print("wrote", args.out)


if __name__ == "__main__":
    main()
