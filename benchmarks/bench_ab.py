"""Paired A/B timing of two builds of the core on a shared, noisy machine.

    python benchmarks/bench_ab.py --a DIR_A --b DIR_B [--descriptor acsf|gmp] [--seconds 8] [--rounds 6]

DIR_A and DIR_B each hold an installed `atomforge` package (for example a copy of
`site-packages/atomforge` taken after `pip install .` of each revision). Both builds run the same
force call (1536 waters, n2p2 RPBE-D3 ACSF potential or the GMP water network of
bench_roofline.py, one thread) **at the same time**, each pinned to its own core, and the cores are
swapped every round. Load from other tenants of the host then slows both alike, so the ratio
B / A of one round is far steadier than rates measured one after the other: on the 2-vCPU AMD
EPYC of stop 43, two identical builds gave ratios of 0.93-1.04 this way, while their rates in
sequential runs differed by up to 20 % (benchmarks/results/bench_ab.md). Needs two CPUs.

Prints the rate of each build per round, the ratio B / A (median, min, max over the rounds), and
the largest difference between the two builds' energies, forces and virials (0 when they are
bit-identical).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def worker(args) -> int:
    """One build: load the model, wait for the parent's go, time the force call, write results."""
    import numpy as np

    sys.path.insert(0, str(HERE))
    import atomforge
    from atomforge.io.n2p2_import import import_n2p2
    from atomforge.models import read_model
    from bench_descriptors import data_dir, load_water
    from bench_roofline import gmp_water_model

    d = data_dir()
    tmp = tempfile.TemporaryDirectory(prefix="bench-ab-")  # removed when the worker exits
    work = Path(tmp.name)
    path = work / "water.afm"
    import_n2p2(d / "n2p2_h2o_rpbe_d3" / "potential", output=path)
    if args.descriptor == "gmp":
        gmp = work / "gmp.afm"
        gmp_water_model(gmp, read_model(path))
        path = gmp
    atoms = load_water(d).repeat((2, 2, 2))
    pot = atomforge.load(path)
    nl = pot.neighbor_list(atoms)
    res = pot._core.compute(nl, False, 1)  # warm-up; also the results compared between builds
    np.savez(args.out, **{k: np.asarray(res[k]) for k in ("energy", "forces", "virial")})
    print("ready", flush=True)
    sys.stdin.readline()  # go
    n = 0
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < args.seconds:
        pot._core.compute(nl, False, 1)
        n += 1
    rate = n * len(atoms) / (time.perf_counter() - t0)
    print(json.dumps({"rate": rate}), flush=True)
    return 0


def start(pkg: Path, cpu: int, args, out: Path) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(pkg), OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    cmd = [sys.executable, __file__, "--worker", "--descriptor", args.descriptor, "--seconds", str(args.seconds),
           "--out", str(out)]
    p = subprocess.Popen(cmd, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                         preexec_fn=lambda: os.sched_setaffinity(0, {cpu}))
    return p


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--a", type=Path, help="directory holding build A's atomforge package")
    ap.add_argument("--b", type=Path, help="directory holding build B's atomforge package")
    ap.add_argument("--descriptor", choices=["acsf", "gmp"], default="acsf")
    ap.add_argument("--seconds", type=float, default=8.0, help="timed seconds per round")
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        return worker(args)
    for name, pkg in (("--a", args.a), ("--b", args.b)):
        if pkg is None or not (pkg / "atomforge" / "__init__.py").is_file():
            ap.error(f"{name} {pkg}: no atomforge package in that directory")
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        ap.error(f"needs two CPUs to run both builds at once; this process may use {len(cpus)}")
    import numpy as np

    tmp_dir = tempfile.TemporaryDirectory(prefix="bench-ab-")
    tmp = Path(tmp_dir.name)
    ratios = []
    print(f"A = {args.a}\nB = {args.b}\n{args.descriptor}, 1536 atoms, one thread each, {args.seconds:g} s per round\n")
    print("| round | CPUs A / B | A atom-steps/s | B atom-steps/s | B / A |\n|---:|---|---:|---:|---:|")
    for r in range(args.rounds):
        ca, cb = (cpus[0], cpus[1]) if r % 2 == 0 else (cpus[1], cpus[0])
        pa = start(args.a, ca, args, tmp / "a.npz")
        pb = start(args.b, cb, args, tmp / "b.npz")
        for p in (pa, pb):  # both loaded, then both timed together
            seen = []
            while (line := p.stdout.readline()) and line.strip() != "ready":
                seen.append(line)
            if not line:
                p.kill()
                raise SystemExit("a worker failed to start:\n" + "".join(seen))
        for p in (pa, pb):
            p.stdin.write("go\n")
            p.stdin.flush()
        ra, rb = (json.loads(p.communicate()[0].strip().splitlines()[-1])["rate"] for p in (pa, pb))
        ratios.append(rb / ra)
        print(f"| {r + 1} | {ca} / {cb} | {ra:,.0f} | {rb:,.0f} | {rb / ra:.3f} |", flush=True)
    a, b = np.load(tmp / "a.npz"), np.load(tmp / "b.npz")
    diffs = {k: float(np.max(np.abs(a[k] - b[k]))) for k in ("energy", "forces", "virial")}
    print(f"\nB / A: median {statistics.median(ratios):.3f}, min {min(ratios):.3f}, max {max(ratios):.3f} "
          f"over {len(ratios)} rounds")
    print("largest |B - A|: " + ", ".join(f"{k} {v:.3g}" for k, v in diffs.items())
          + (" (bit-identical)" if not any(diffs.values()) else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
