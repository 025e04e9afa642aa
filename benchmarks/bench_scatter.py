#!/usr/bin/env python
"""Time the pair-gradient scatter (``scatter_pair_gradients``, the serial step after the parallel
per-centre passes) of one or more core source trees on liquid water neighbour lists.

The lists are those of the n2p2 RPBE-D3 water potential's cutoff (6.35 A) on the DeePMD water
frame replicated to 1536 and 12288 atoms; the pair gradients are random. Each source tree's
``cpp/src/descriptors/common.cpp`` (with ``common/threads.cpp`` and ``core/errors.cpp``) is
compiled with the core's flags into ``scatter_timing.cpp``; older revisions can be checked out
with ``git worktree add``. Trees are timed in turn, --rounds times, to show the spread.

Usage: python benchmarks/bench_scatter.py [--tree NAME=PATH ...] [--rounds 3]
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
FLAGS = ["-O3", "-march=native", "-mprefer-vector-width=512", "-fno-math-errno", "-fno-trapping-math",
         "-fopenmp", "-std=gnu++17", "-DATOMFORGE_HAVE_OPENMP=1"]


def dump_lists(work: Path):
    sys.path.insert(0, str(HERE))
    import atomforge
    from bench_descriptors import data_dir, load_water

    out = []
    for rep in (2, 4):
        atoms = load_water(data_dir()).repeat((rep,) * 3)
        nl = atomforge.SymmetryFunctions.standard(["H", "O"], r_c=6.35).neighbor_list(atoms)
        path = work / f"water{len(atoms)}.bin"
        with open(path, "wb") as f:
            off = np.asarray(nl.offsets, np.int64)
            nb = np.asarray(nl.neighbors, np.int64)
            pos = np.ascontiguousarray(nl.positions, dtype=np.float64)
            np.array([len(pos), len(off) - 1, len(nb)], np.int64).tofile(f)
            pos.tofile(f), off.tofile(f), nb.tofile(f)
        out.append((len(atoms), len(nb), path))
    return out


def build(name: str, tree: Path, work: Path) -> Path:
    src = tree / "cpp" / "src"
    exe = work / f"scatter_{name}"
    cmd = (["g++", *FLAGS, f"-I{tree / 'cpp' / 'include'}", f"-I{src}", str(HERE / "scatter_timing.cpp"),
            str(src / "descriptors" / "common.cpp"), str(src / "common" / "threads.cpp"),
            str(src / "core" / "errors.cpp"), "-o", str(exe)])
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"building {name} from {tree} failed:\n{r.stderr[-3000:]}")
    return exe


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tree", action="append", default=[], help="NAME=PATH of a source tree (default: this one)")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args(argv)
    trees = [t.split("=", 1) for t in args.tree] or [["this", str(HERE.parent)]]
    work = Path(tempfile.mkdtemp(prefix="af-scatter-"))
    lists = dump_lists(work)
    exes = {name: build(name, Path(path).resolve(), work) for name, path in trees}
    rows = {}
    for _ in range(args.rounds):
        for name, exe in exes.items():
            for n, n_pairs, path in lists:
                r = subprocess.run([str(exe), str(path)], capture_output=True, text=True, check=True)
                t_min, t_med, ns, _ = r.stdout.split()
                rows.setdefault((name, n, n_pairs), []).append((float(t_min), float(ns)))
    print(f"| tree | atoms | pairs | scatter, ms (best of 21 calls; min-max over {args.rounds} rounds) | ns per pair |")
    print("|---|---:|---:|---|---:|")
    for (name, n, n_pairs), v in rows.items():
        ms = [a for a, _ in v]
        print(f"| {name} | {n} | {n_pairs} | {min(ms):.3f}-{max(ms):.3f} | {min(b for _, b in v):.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
