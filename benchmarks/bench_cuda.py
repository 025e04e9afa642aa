#!/usr/bin/env python
"""CUDA launcher of the symmetry functions against the CPU path on the same machine (liquid water).

Structure: the first 192-atom frame of DeePMD-kit's water example
(``$ATOMFORGE_DATA/deepmd_water/energy_force/data_0``) replicated n^3 times; descriptor: the
symmetry functions of the n2p2 RPBE-D3 water potential (``$ATOMFORGE_DATA/n2p2_h2o_rpbe_d3``;
r_c = 6.35 A, tanh^3 cutoff, G2 + G4), the same as bench_roofline.py and bench_lammps.py.

For each size it reports atoms/s of the descriptor values + VJP (what a force call needs besides
the network; dE/dG random), best / median of --repeats:
  * CPU, 1 thread and all threads (the fused single-pass kernels of the core);
  * CUDA end to end (``compute_cuda`` + ``vjp_cuda``: table and scratch allocation, host-device
    copies, the kernels, the host-side pair-gradient scatter), one GPU thread per centre atom;
  * CUDA kernels alone, from PyTorch's profiler (CUPTI sees every kernel of the process) when
    PyTorch with CUDA is installed;
and beside them the whole fused CPU force call of the potential (network included), plus the
largest relative difference of G and of the forces between CUDA and CPU.

Usage: python benchmarks/bench_cuda.py [--sizes 2,4,6] [--repeats 5] [--output FILE]
Needs a build with CUDA (``atomforge.build_info()``) and a visible device; exits 2 otherwise.
"""
from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def timed(fn, repeats):
    fn()  # warm-up (first-call CUDA context creation, page faults)
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return sorted(out)


def kernel_seconds(fn):
    """Sum of CUDA kernel durations of one call of fn (PyTorch profiler), or None."""
    try:
        import torch
        from torch.profiler import ProfilerActivity, profile
        if not torch.cuda.is_available():
            return None
    except Exception:
        return None
    try:
        with profile(activities=[ProfilerActivity.CUDA]) as prof:
            fn()
        total = 0.0
        for evt in prof.events():
            if "centre_kernel" in evt.name and str(evt.device_type).endswith("CUDA"):
                total += getattr(evt, "device_time", None) or evt.cuda_time
    except Exception as e:  # the profiler is an extra: report its failure and carry on
        print(f"PyTorch profiler failed: {e!r}", file=sys.stderr)
        return None
    if total == 0:
        names = sorted({e.name[:80] for e in prof.events() if str(e.device_type).endswith("CUDA")})
        print(f"no centre_kernel among the profiled CUDA events: {names[:10]}", file=sys.stderr)
        return None
    return total * 1e-6


def gpu_name() -> str:
    try:
        return subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version", "--format=csv,noheader"],
                              capture_output=True, text=True, timeout=20).stdout.strip()
    except Exception:
        return "unknown GPU"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="2,4,6", help="replications of the 192-atom cell")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--scratch-mb", default="512,128,48,16",
                    help="scratch budgets (MiB) of the second table, on the middle size")
    ap.add_argument("--output")
    args = ap.parse_args(argv)

    import atomforge
    from atomforge import _core
    from atomforge.io.n2p2_import import import_n2p2
    from atomforge.models import read_model
    from bench_descriptors import cpu_name, data_dir, load_water

    if not _core.built_with_cuda() or _core.cuda_device_count() == 0:
        print(f"no CUDA device or a build without CUDA: {atomforge.build_info()}", file=sys.stderr)
        return 2
    d = data_dir()
    work = Path(tempfile.mkdtemp(prefix="af-cuda-"))
    model = work / "water.afm"
    import_n2p2(d / "n2p2_h2o_rpbe_d3" / "potential", output=model)
    sf = read_model(model).descriptor_object()
    pot = atomforge.load(model)
    ncpu = os.cpu_count()

    lines = []
    out = lambda s="": (print(s, flush=True), lines.append(s))
    out("# CUDA symmetry functions beside the CPU kernels (liquid water, n2p2 RPBE-D3 descriptor)")
    out()
    out(f"- machine: {cpu_name()}, {ncpu} cores; GPU: {gpu_name()}; "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    out(f"- core: {atomforge.build_info()}")
    out(f"- Python {platform.python_version()}, NumPy {np.__version__}; best / median of {args.repeats}")
    out("- G + VJP: descriptor values and the vector-Jacobian product with a random dE/dG (no network);"
        " force call: the potential's fused CPU pass (energy, forces, virial, network included)")
    out()
    out("| atoms | CPU 1 thread G+VJP | CPU %d threads G+VJP | CUDA end to end G+VJP | CUDA kernels alone "
        "| CPU force call, 1 / %d threads | CUDA / CPU all threads | max rel. diff G / forces |" % (ncpu, ncpu))
    out("|---:|---:|---:|---:|---:|---:|---:|---:|")
    fmt = lambda ts, n: f"{n / ts[0]:,.0f} / {n / ts[len(ts) // 2]:,.0f}"
    sizes = [int(s) for s in args.sizes.split(",")]
    middle = None  # (n, nl, w) of the middle size, for the scratch-budget table
    for rep in sizes:
        atoms = load_water(d).repeat((rep,) * 3)
        n = len(atoms)
        nl = sf.neighbor_list(atoms)
        w = np.random.default_rng(0).normal(size=(n, sf.n_features)) / sf.n_features
        core = sf.core
        cpu = {th: timed(lambda: (core.compute(nl, th), core.vjp(nl, w, False, th)), args.repeats)
               for th in (1, ncpu)}
        cuda = timed(lambda: (core.compute_cuda(nl), core.vjp_cuda(nl, w)), args.repeats)
        ks = kernel_seconds(lambda: (core.compute_cuda(nl), core.vjp_cuda(nl, w)))
        pnl = pot.neighbor_list(atoms)
        fc = {th: timed(lambda: pot._core.compute(pnl, False, th), args.repeats) for th in (1, ncpu)}
        G, Gc = core.compute(nl, ncpu), core.compute_cuda(nl)
        f, _, _ = core.vjp(nl, w, False, ncpu)
        fcu, _ = core.vjp_cuda(nl, w)
        dG = float(np.max(np.abs(Gc - G)) / np.max(np.abs(G)))
        dF = float(np.max(np.abs(fcu - f)) / np.max(np.abs(f)))
        out(f"| {n} | {fmt(cpu[1], n)} | {fmt(cpu[ncpu], n)} | {fmt(cuda, n)} | "
            f"{'n/a' if ks is None else f'{n / ks:,.0f}'} | {n / fc[1][0]:,.0f} / {n / fc[ncpu][0]:,.0f} | "
            f"{cpu[ncpu][0] / cuda[0]:.2f}x | {dG:.1e} / {dF:.1e} |")
        if rep == sizes[len(sizes) // 2]:
            middle = (n, nl, w)
    out()
    out("atoms/s (= atom-steps/s of the descriptor part of an MD step). CUDA end to end includes "
        "cudaMalloc of the tables and scratch and every host-device copy of each call. No speed target: "
        "the launcher runs the CPU-shaped single-source kernels, one GPU thread per centre "
        "(docs/architecture.md says why that is slow and what a GPU-shaped kernel needs).")
    n, nl, w = middle
    core = sf.core
    out()
    out(f"Scratch budget per launch batch ({n} atoms; smaller budgets run fewer centres per launch, "
        "whose scratch then fits the 60 MB L2 at the cost of parallelism):")
    out()
    out("| scratch budget (MiB) | CUDA end to end G+VJP, atoms/s (best / median) | CUDA kernels alone |")
    out("|---:|---:|---:|")
    ref = core.compute_cuda(nl)
    for mb in [int(x) for x in args.scratch_mb.split(",")]:
        b = mb << 20
        ts = timed(lambda: (core.compute_cuda(nl, scratch_bytes=b), core.vjp_cuda(nl, w, scratch_bytes=b)),
                   args.repeats)
        ks = kernel_seconds(lambda: (core.compute_cuda(nl, scratch_bytes=b), core.vjp_cuda(nl, w, scratch_bytes=b)))
        assert np.array_equal(core.compute_cuda(nl, scratch_bytes=b), ref), "batching changed G"
        out(f"| {mb} | {fmt(ts, n)} | {'n/a' if ks is None else f'{n / ks:,.0f}'} |")
    if args.output:
        Path(args.output).write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
