"""Issue 17 experiment: what would a pass over triangles (each G4 triangle once, not once per
vertex) run at, beside atomforge's per-centre kernel?

    python benchmarks/bench_triangles.py [--seconds 6] [--rounds 4] [--work DIR]

Builds benchmarks/triangle_prototype.cpp (g++ -O3 -march=native, outside the package), gives it the
neighbour list and functions of the n2p2 RPBE-D3 water potential on 512 x 3 atoms (the structure
of bench_ab.py), checks its G, forces and virial against atomforge's descriptor (compute and vjp
with the same dE/dG) and then times, in alternation on one core:
  - atomforge: the fused call of the potential with forces (values, networks, VJP) and energy-only,
    one thread;
  - prototype: values pass + VJP pass with fixed dE/dG (no network: 0.7 % of atomforge's call), and
    the values pass alone.
Prints a table with the spread over rounds. The prototype is an experiment, not library code.
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

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def write_inputs(d, nl, w, work: Path) -> None:
    """The binary inputs and plan.txt of triangle_prototype.cpp."""
    np.asarray(nl.positions, dtype=np.float64).tofile(work / "pos.bin")
    np.asarray(nl.species, dtype=np.int32).tofile(work / "spec.bin")
    np.asarray(nl.offsets, dtype=np.int64).tofile(work / "off.bin")
    np.asarray(nl.neighbors, dtype=np.int64).tofile(work / "nbr.bin")
    np.asarray(nl.owner, dtype=np.int64).tofile(work / "owner.bin")
    np.ascontiguousarray(w, dtype=np.float64).tofile(work / "w.bin")
    els = list(d.elements)
    ne = len(els)
    fns = d.functions
    rcs = {f["r_c"] for e in els for f in fns[e]}
    if len(rcs) != 1:
        raise ValueError(f"the prototype takes one r_c for every function, got {sorted(rcs)}")
    lines = []
    radial = []
    for ei, e in enumerate(els):
        for fi, f in enumerate(fns[e]):
            if f["type"] == "G2":
                radial.append(f"{ei} {fi} {els.index(f['neighbors'][0])} {f['eta']!r} {f['r_s']!r}")
            elif f["type"] != "G4" or f["r_s"] != 0.0:
                raise ValueError(f"the prototype takes G2 and G4 with r_s = 0 only, got {f} of element {e}")
    lines.append(f"{ne} {d.n_features} {rcs.pop()!r} {d.cutoff_function} {len(radial)}")
    lines += radial

    def role(c, p1, p2):
        pair = sorted([els[p1], els[p2]])
        return [(fi, f) for fi, f in enumerate(fns[els[c]]) if f["type"] == "G4" and sorted(f["neighbors"]) == pair]

    for ea in range(ne):
        for ej in range(ne):
            for ek in range(ne):
                roles = [role(ea, ej, ek), role(ej, ea, ek), role(ek, ea, ej)]
                etas = [f["eta"] for r in roles for _, f in r]
                if not etas:
                    lines.append("0 0 0 0 0")
                    continue
                base = min(etas)
                pw = sorted({int(round(x / base)) for x in etas})
                if any(abs(x / base - round(x / base)) > 1e-9 for x in etas):
                    raise ValueError(f"etas {sorted(set(etas))} of element triple {(els[ea], els[ej], els[ek])} "
                                     "are not integer multiples of the smallest")
                out = [f"{base!r} {len(pw)} " + " ".join(map(str, pw))]
                for r in roles:
                    out.append(str(len(r)))
                    for fi, f in r:
                        z = f["zeta"]
                        if z != int(z) or z < 1:
                            raise ValueError(f"the prototype takes integer zeta >= 1, got {f}")
                        out.append(f"{fi} {f['lambda']!r} {int(z)} {pw.index(int(round(f['eta'] / base)))} "
                                   f"{2.0 ** (1 - z)!r}")
                lines.append(" ".join(out))
    (work / "plan.txt").write_text("\n".join(lines) + "\n")


def build(work: Path) -> Path:
    exe = work / "triangle_prototype"
    cmd = ["g++", "-O3", "-DNDEBUG", "-march=native", "-mprefer-vector-width=512", "-std=c++17", "-fopenmp-simd",
           "-fno-math-errno", "-fno-trapping-math", f"-I{ROOT / 'cpp/src'}", f"-I{ROOT / 'cpp/include'}",
           str(HERE / "triangle_prototype.cpp"), str(ROOT / "cpp/src/common/cutoff.cpp"), "-o", str(exe)]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"building the prototype failed (it needs g++ and an AVX-512 CPU):\n{r.stderr[-2000:]}")
    return exe


def run_prototype(cmd: list[str]) -> str:
    """Run the prototype; its own error message (bad inputs) on failure."""
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({r.returncode}): {r.stderr.strip()}")
    return r.stdout


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=6.0)
    ap.add_argument("--rounds", type=int, default=4, help="timed rounds (0: only compare the results)")
    ap.add_argument("--work", type=Path, help="keep the inputs and the binary in this folder")
    args = ap.parse_args(argv)
    sys.path.insert(0, str(HERE))
    import atomforge
    from atomforge.io.n2p2_import import import_n2p2
    from atomforge.models import read_model
    from bench_descriptors import data_dir, load_water

    tmp = tempfile.TemporaryDirectory(prefix="bench-tri-")
    work = args.work or Path(tmp.name)
    work.mkdir(parents=True, exist_ok=True)
    path = work / "water.afm"
    import_n2p2(data_dir() / "n2p2_h2o_rpbe_d3" / "potential", output=path)
    desc = read_model(path).descriptor_object()
    atoms = load_water(data_dir()).repeat((2, 2, 2))
    nl = desc.neighbor_list(atoms)
    rng = np.random.default_rng(7)
    w = rng.normal(size=(len(atoms), desc.n_features))
    for i, z in enumerate(atoms.numbers):  # zero the padding columns of H rows
        w[i, desc.n_features_per_element["H" if z == 1 else "O"]:] = 0.0
    write_inputs(desc, nl, w, work)
    exe = build(work)
    G_ref = desc.compute(atoms, neighbor_list=nl, threads=1)
    v = desc.vjp(w, atoms, neighbor_list=nl, threads=1)
    run_prototype([str(exe), str(work), "0.01"])
    G = np.fromfile(work / "G_out.bin").reshape(G_ref.shape)
    F = np.fromfile(work / "F_out.bin").reshape(-1, 3)
    W = np.fromfile(work / "W_out.bin").reshape(3, 3)
    F_ref, W_ref = np.asarray(v.forces), np.asarray(v.virial)
    eg = np.max(np.abs(G - G_ref)) / np.max(np.abs(G_ref))
    ef = np.max(np.abs(F - F_ref)) / np.max(np.abs(F_ref))
    ew = np.max(np.abs(W - W_ref)) / np.max(np.abs(W_ref))
    print(f"prototype vs atomforge (relative to the largest entry): G {eg:.1e}, forces {ef:.1e}, virial {ew:.1e}")
    if max(eg, ef, ew) > 1e-10:
        print("MISMATCH: timing skipped")
        return 1

    if args.rounds < 1:  # --rounds 0: the comparison only
        return 0
    pot = atomforge.load(path)
    pnl = pot.neighbor_list(atoms)
    pot._core.compute(pnl, False, 1)
    os.sched_setaffinity(0, {0})
    rows = []
    for r in range(args.rounds):
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < args.seconds:
            pot._core.compute(pnl, False, 1)
            n += 1
        af = n * len(atoms) / (time.perf_counter() - t0)
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < args.seconds / 2:
            pot._core.compute(pnl, False, 1, False)  # energy only: values and networks
            n += 1
        ae = n * len(atoms) / (time.perf_counter() - t0)
        out = run_prototype(["taskset", "-c", "0", str(exe), str(work), str(args.seconds)])
        pr = json.loads(out.strip().splitlines()[-1])
        rows.append((af, pr["rate"], ae, pr["values_rate"]))
        print(f"round {r + 1}: atomforge {af:,.0f} (energy only {ae:,.0f})  prototype {pr['rate']:,.0f}"
              f" (values only {pr['values_rate']:,.0f})  ratio {pr['rate'] / af:.3f}", flush=True)
    ratios = [row[1] / row[0] for row in rows]
    vratios = [row[3] / row[2] for row in rows]
    print()
    print(f"{len(atoms)} atoms, one thread, {args.rounds} rounds of {args.seconds:g} s each, alternating")
    print()
    print(f"triangles per centre {pr['triangles_per_centre']:.1f}; (centre, triangle) terms per centre "
          f"{pr['terms_per_centre']:.1f}")
    print()
    print("| | atom-steps/s median (min-max) |")
    print("|---|---:|")
    for name, k in (("atomforge fused call, forces (per-centre kernel)", 0), ("triangle prototype: values + VJP", 1),
                    ("atomforge fused call, energy only", 2), ("triangle prototype: values only", 3)):
        xs = [row[k] for row in rows]
        print(f"| {name} | {statistics.median(xs):,.0f} ({min(xs):,.0f}-{max(xs):,.0f}) |")
    print(f"| prototype / atomforge, forces | {statistics.median(ratios):.3f} ({min(ratios):.3f}-{max(ratios):.3f}) |")
    print(f"| prototype / atomforge, energy only | {statistics.median(vratios):.3f} ({min(vratios):.3f}-{max(vratios):.3f}) |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
