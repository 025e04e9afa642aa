"""Ewald electrostatics (atomforge.electrostatics.ewald): cost and measured error against the
requested accuracy, and the fastest splitting parameter.

System: water-like random charges (O -0.8 e, H +0.4 e, neutral) on a jittered grid at 0.1 atoms
per A^3 in a cubic cell, N = 96 .. 3000 atoms. The error is measured against the same sum at
accuracy 1e-15: relative energy error and rms force error (eV/A).

``--alpha-scan`` times alpha = f * alpha_auto for several f: the fastest f gives the cost ratio
w = kEwaldCostRatio * f^6 of cpp/src/electrostatics/ewald.hpp (alpha ~ w^(1/6)).

Usage:
    python benchmarks/bench_ewald.py                       # the table of docs/electrostatics.md
    python benchmarks/bench_ewald.py --threads 2 --sizes 1000 3000 --alpha-scan
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from atomforge.electrostatics import ewald


def water_like(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    length = (n / 0.1) ** (1 / 3)
    m = int(np.ceil(n ** (1 / 3)))
    grid = np.array(np.meshgrid(*[np.arange(m)] * 3, indexing="ij")).reshape(3, -1).T[:n] * (length / m)
    pos = grid + rng.random((n, 3)) * 0.3
    q = np.tile([-0.8, 0.4, 0.4], n // 3 + 1)[:n]
    q = q - q.mean()
    return pos, q, np.eye(3) * length


def best_time(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[96, 300, 1000, 3000])
    ap.add_argument("--accuracies", type=float, nargs="+", default=[1e-4, 1e-6, 1e-8, 1e-10])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--alpha-scan", action="store_true")
    args = ap.parse_args()
    print("| atoms | accuracy | alpha (1/A) | r_cut (A) | k vectors | time (s) | rel. energy error | rms force error (eV/A) |")
    print("|---|---|---|---|---|---|---|---|")
    for n in args.sizes:
        pos, q, cell = water_like(n)
        ref = ewald(pos, q, cell=cell, accuracy=1e-15, threads=args.threads)
        for acc in args.accuracies:
            r = ewald(pos, q, cell=cell, accuracy=acc, threads=args.threads)
            t = best_time(lambda: ewald(pos, q, cell=cell, accuracy=acc, threads=args.threads), args.repeat)
            p = r["parameters"]
            de = abs(r["energy"] - ref["energy"]) / abs(ref["energy"])
            df = float(np.sqrt(((r["forces"] - ref["forces"]) ** 2).mean()))
            print(f"| {n} | {acc:.0e} | {p['alpha']:.3f} | {p['r_cut']:.2f} | {p['n_kvectors']} | {t:.3g} | "
                  f"{de:.1e} | {df:.1e} |", flush=True)
        if args.alpha_scan:
            a0 = ewald(pos, q, cell=cell, accuracy=1e-8)["parameters"]["alpha"]
            row = []
            for f in (0.7, 0.85, 1.0, 1.2, 1.4):
                t = best_time(lambda: ewald(pos, q, cell=cell, accuracy=1e-8, alpha=a0 * f, threads=args.threads),
                              args.repeat)
                row.append(f"f={f}: {t:.3g} s")
            print(f"alpha scan, {n} atoms, alpha_auto {a0:.3f}: " + ", ".join(row), flush=True)


if __name__ == "__main__":
    main()
