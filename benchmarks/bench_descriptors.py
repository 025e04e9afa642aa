#!/usr/bin/env python
"""Descriptor + vector-Jacobian-product throughput for liquid water (and GMP beside ACSF).

Structure: the first 192-atom frame of DeePMD-kit's water example
(``$ATOMFORGE_DATA/deepmd_water/energy_force/data_0``) replicated to 1536 and 12288 atoms.
Descriptor: the symmetry functions of the n2p2 RPBE-D3 water potential
(``$ATOMFORGE_DATA/n2p2_h2o_rpbe_d3/potential/input.nn``; r_c = 12 Bohr = 6.35 A, tanh^3 cutoff).
Reports, for 1 and 2 OpenMP threads, the best of --repeats runs of: neighbour list, G, VJP, and
atoms/s for G + VJP (what an MD step needs besides the network), plus memory per atom.

Target (issue 2): >= 15,000 atoms/s per core for G + VJP. For scale: n2p2's whole LAMMPS step with
this potential measured 4,100 atom-steps/s per core on the same kind of machine (issue 4 text).

Second table: Gaussian multipoles (GMP, default and with order 4) beside ACSF (the n2p2 water set on
water; the default training set of `descriptor: {type: acsf}` on aspirin) on 1536-atom water and on
rMD17 aspirin (21 atoms, 200 frames evaluated one after another), values + VJP, 1 and 2 threads:
atoms/s per core as min / median / max of the repeats (the machine may be shared).

Usage: python benchmarks/bench_descriptors.py [--output benchmarks/results/descriptors.md]
"""
from __future__ import annotations

import argparse
import os
import platform
import resource
import sys
import time
from pathlib import Path

import numpy as np


def data_dir() -> Path:
    env = os.environ.get("ATOMFORGE_DATA")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "data"


def load_water(d: Path):
    from ase import Atoms

    sysdir = d / "deepmd_water" / "energy_force" / "data_0"
    types = np.loadtxt(sysdir / "type.raw", dtype=int)
    type_map = (sysdir / "type_map.raw").read_text().split()
    coord = np.load(sysdir / "set.000" / "coord.npy")[0].reshape(-1, 3).astype(float)
    box = np.load(sysdir / "set.000" / "box.npy")[0].reshape(3, 3).astype(float)
    return Atoms(symbols=[type_map[t] for t in types], positions=coord, cell=box, pbc=True)


def cpu_name() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="2,4", help="replications of the 192-atom cell (2 -> 1536, 4 -> 12288)")
    p.add_argument("--threads", default="1,2")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--output", help="also write the table (markdown) to this file")
    p.add_argument("--no-gmp", dest="gmp", action="store_false", help="skip the GMP-beside-ACSF table")
    args = p.parse_args(argv)

    import atomforge
    from atomforge.io.n2p2 import read_input_nn

    d = data_dir()
    settings = read_input_nn(d / "n2p2_h2o_rpbe_d3" / "potential" / "input.nn")
    sf = settings.descriptor
    base = load_water(d)
    lines = []
    out = lambda s="": (print(s), lines.append(s))
    out("# Descriptor + vector-Jacobian product throughput: liquid water, n2p2 RPBE-D3 symmetry functions")
    out()
    out(f"- machine: {cpu_name()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    out(f"- core: {atomforge.build_info()}")
    out(f"- descriptor: {sf}")
    out(f"- date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; best of {args.repeats} runs")
    out()
    out("| atoms | threads | neighbour list (s) | G (s) | VJP (s) | G + VJP atoms/s | per core | memory/atom (kB) |")
    out("|---:|---:|---:|---:|---:|---:|---:|---:|")
    rng = np.random.default_rng(0)
    per_core = []
    for rep in [int(x) for x in args.sizes.split(",")]:
        atoms = base.repeat((rep, rep, rep))
        n = len(atoms)
        rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        for th in [int(x) for x in args.threads.split(",")]:
            t_nl = t_g = t_v = float("inf")
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                nl = sf.neighbor_list(atoms)
                t1 = time.perf_counter()
                G = sf.compute(atoms, neighbor_list=nl, threads=th)
                t2 = time.perf_counter()
                w = rng.normal(size=G.shape)
                t3 = time.perf_counter()
                sf.vjp(w, atoms, neighbor_list=nl, threads=th)
                t4 = time.perf_counter()
                t_nl, t_g, t_v = min(t_nl, t1 - t0), min(t_g, t2 - t1), min(t_v, t4 - t3)
            rate = n / (t_g + t_v)
            per_core.append(rate / th)
            mem = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0) / n  # ru_maxrss in kB
            out(f"| {n} | {th} | {t_nl:.4f} | {t_g:.4f} | {t_v:.4f} | {rate:,.0f} | {rate / th:,.0f} | {mem:.1f} |")
    out()
    out(f"Target >= 15,000 atoms/s per core: worst case here {min(per_core):,.0f} "
        f"({'met' if min(per_core) >= 15000 else 'NOT met'}).")
    out("Memory/atom is the growth of peak RSS while that size ran (first row of a size includes "
        "its neighbour list and arrays); it stays flat from 1536 to 12288 atoms when memory is O(N).")
    if args.gmp:
        compare_gmp(d, base, sf, args, out)
    if args.output:
        Path(args.output).write_text("\n".join(lines) + "\n")
    return 0


def compare_gmp(d: Path, water_cell, water_acsf, args, out) -> None:
    from atomforge.descriptors import GaussianMultipoles, SymmetryFunctions

    water = water_cell.repeat((2, 2, 2))
    asp = np.load(d / "rmd17" / "rmd17_aspirin_train_01.npz")
    from ase import Atoms
    asp_frames = [Atoms(numbers=asp["nuclear_charges"], positions=r) for r in asp["coords"][:200]]
    cases = {
        "water (1536 atoms)": [("ACSF n2p2 RPBE-D3 set", water_acsf),
                               ("GMP orders 0-3, 5 sigmas, r_c 6", GaussianMultipoles(orders=[0, 1, 2, 3], sigmas=[0.4, 0.8, 1.2, 1.6, 2.0],
                                                                                  elements=["H", "O"])),
                               ("GMP orders 0-4, 5 sigmas, r_c 6",
                                GaussianMultipoles(orders=(0, 1, 2, 3, 4), sigmas=[0.4, 0.8, 1.2, 1.6, 2.0],
                                                   elements=["H", "O"]))],
        "aspirin (21 atoms x 200 frames)": [
            ("ACSF training default", SymmetryFunctions.from_config(SymmetryFunctions.config_defaults, ["H", "C", "O"])),
            ("GMP orders 0-3, 5 sigmas, r_c 6",
             GaussianMultipoles(orders=[0, 1, 2, 3], sigmas=[0.4, 0.8, 1.2, 1.6, 2.0], elements=["H", "C", "O"])),
            ("GMP orders 0-4, 5 sigmas, r_c 6", GaussianMultipoles(orders=(0, 1, 2, 3, 4), sigmas=[0.4, 0.8, 1.2, 1.6, 2.0],
                                                 elements=["H", "C", "O"]))],
    }
    out()
    out("## GMP beside ACSF (values + VJP)")
    out()
    out("| structure | descriptor | features | threads | atoms/s per core: min / median / max |")
    out("|---|---|---:|---:|---|")
    rng = np.random.default_rng(1)
    for name, descs in cases.items():
        frames = [water] if name.startswith("water") else asp_frames
        for label, desc in descs:
            nls = [desc.neighbor_list(f) for f in frames]
            ws = [rng.normal(size=(len(f), desc.n_features)) for f in frames]
            for th in [int(x) for x in args.threads.split(",")]:
                rates = []
                for _ in range(max(args.repeats, 3)):
                    t0 = time.perf_counter()
                    for f, nl, w in zip(frames, nls, ws):
                        desc.compute(f, neighbor_list=nl, threads=th)
                        desc.vjp(w, f, neighbor_list=nl, threads=th)
                    rates.append(sum(len(f) for f in frames) / (time.perf_counter() - t0) / th)
                rates.sort()
                out(f"| {name} | {label} | {desc.n_features} | {th} | {rates[0]:,.0f} / "
                    f"{rates[len(rates) // 2]:,.0f} / {rates[-1]:,.0f} |")


if __name__ == "__main__":
    sys.exit(main())
