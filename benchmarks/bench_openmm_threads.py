#!/usr/bin/env python
"""examples/openmm/ethanol_nve.py on the CPU and Reference platforms, on the machine as it is
("quiet") and with busy processes beside it ("loaded": `yes > /dev/null` x N), repeated.

    python benchmarks/bench_openmm_threads.py --model ethanol.afm                # 20000 steps, 3 repeats
    python benchmarks/bench_openmm_threads.py --model ethanol.afm --python /other/venv/bin/python \
        --label "before (main)" --steps 2000                                    # another install

Prints one Markdown table row per (load, platform): the example's own MD time (its "MD: ... s"
line) as median and min-max over the repeats, the whole script's wall time, and the 1-minute load
average when each run started (other users' processes included: the machine may be shared).
"""
import argparse
import os
import re
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "openmm" / "ethanol_nve.py"


def run_once(python, model, platform, steps, env):
    """(MD seconds as the example reports them, wall seconds, CPU seconds user+sys) of one run.
    ``platform`` "CPU:1" is the CPU platform with OPENMM_CPU_THREADS=1."""
    if ":" in platform:
        platform, threads = platform.split(":")
        env = dict(env, OPENMM_CPU_THREADS=threads)
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    r = subprocess.run([python, str(EXAMPLE), "--model", str(model), "--platform", platform, "--steps", str(steps)],
                       capture_output=True, text=True, env=env, timeout=3600)
    wall = time.perf_counter() - t0
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    if r.returncode != 0:
        raise RuntimeError(r.stdout[-2000:] + r.stderr[-2000:])
    md = float(re.search(r"MD: \d+ steps in ([0-9.]+) s", r.stdout).group(1))
    return md, wall, (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, help="ethanol model (examples/openmm/prepare.py writes ethanol.afm)")
    ap.add_argument("--python", default=sys.executable, help="interpreter whose atomforge is measured")
    ap.add_argument("--label", default="this branch")
    ap.add_argument("--steps", type=int, default=20000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--busy", type=int, default=2, help="busy processes for the loaded runs")
    ap.add_argument("--loads", default="quiet,loaded")
    ap.add_argument("--platforms", default="Reference,CPU",
                    help="comma-separated; CPU:N = CPU platform with OPENMM_CPU_THREADS=N")
    a = ap.parse_args()
    env = dict(os.environ)
    print(f"| atomforge | load | platform | steps | MD time, median (min-max) s | script wall, median s | "
          f"script CPU time (user+sys), median s | load avg at start |")
    print("|---|---|---|---|---|---|---|---|")
    for load in a.loads.split(","):
        hogs = []
        if load == "loaded":
            hogs = [subprocess.Popen(["yes"], stdout=subprocess.DEVNULL) for _ in range(a.busy)]
            time.sleep(2)
        try:
            platforms = a.platforms.split(",")
            res = {p: ([], [], [], []) for p in platforms}
            for _ in range(a.repeats):  # platforms interleaved, so that drifting load hits both alike
                for platform in platforms:
                    md, wall, la, cpu = res[platform]
                    la.append(os.getloadavg()[0])
                    m, w, c = run_once(a.python, a.model, platform, a.steps, env)
                    md.append(m)
                    wall.append(w)
                    cpu.append(c)
            for platform in platforms:
                md, wall, la, cpu = res[platform]
                label = load if load == "quiet" else f"loaded ({a.busy} x yes)"
                print(f"| {a.label} | {label} | {platform} | {a.steps} | {statistics.median(md):.2f} "
                      f"({min(md):.2f}-{max(md):.2f}) | {statistics.median(wall):.2f} | "
                      f"{statistics.median(cpu):.2f} | {', '.join(f'{x:.1f}' for x in la)} |", flush=True)
        finally:
            for h in hogs:
                h.kill()
                h.wait()


if __name__ == "__main__":
    main()
