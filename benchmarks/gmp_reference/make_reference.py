#!/usr/bin/env python3
"""Compute GMP features with GMP-featurizer (the public reference implementation) for a few
molecules and liquid water, using atomforge's own pseudo-density table, and save them.

This script does NOT build GMP-featurizer (see README.md in this folder). It imports an existing
build (the source folder in which ``GMPFeaturizer/GMP/_libgmp*.so`` was compiled) and must run in
a Python environment that has GMP-featurizer's dependencies (numpy, scipy, cffi, h5py, tqdm, ray;
ray is only imported, never started: cores=1):

    python benchmarks/gmp_reference/make_reference.py \\
        --gmp-featurizer /work/ext/gmp-featurizer \\
        --output tests/reference/gmp_featurizer_reference.npz --check

Steps:

1. atomforge's table (python/atomforge/descriptors/data/gmp_pseudodensities.json, key
   ``elements`` unless --table-key says otherwise) is written in GMP-featurizer's ``.gpsp``
   format into a temporary folder (per element: ``****``, ``Sym Z K``, then K lines ``c alpha``,
   c in e/A^3, alpha in 1/A^2 -- exactly the units GMP-featurizer uses).
2. GMP-featurizer runs with ``custom_cutoff = -1`` and ``cutoff = r_c``: the plain hard cutoff on
   the centre-neighbour distance (``calculate_solid_gmpordernorm_noderiv_ref``), so none of its
   per-Gaussian "overlap_threshold" cutoffs is active. r_c (default 24 A) is large enough that
   everything beyond it is below 1e-20 of the features for these densities and sigmas <= 2 A.
   orders 0..4, sigmas 0.4, 0.8, 1.2, 1.6, 2.0 A, features sqrt(Q) (square = False).
3. Systems: rMD17 ethanol frames 0-2 and aspirin frames 0-1 (train_01 files), centred in a
   40 A non-periodic box (GMP-featurizer needs a cell even for molecules and every position
   inside it); DeePMD water (energy_force/data_0, frames 0 and 1, 192 atoms, cubic 12.4447 A,
   periodic), positions wrapped into the cell (GMP-featurizer requires scaled coordinates in
   [0, 1]).
4. Output .npz (float64 unless noted; per-system arrays concatenated in system order):
   ``system`` (S,) str, ``natoms`` (S,) int64, ``orders`` (5,) int64,
   ``sigmas`` (5,) A, ``r_c`` () A, ``features`` (sum N, 25) in atomforge's column order
   [(n, s) for n in orders for s in sigmas] (GMP-featurizer's order is the same),
   ``density_table`` () str (the JSON {Z: [[c, alpha], ...]} used), ``density_table_key`` () str,
   ``gpsp`` () str (the file GMP-featurizer read), ``gmp_featurizer_commit`` () str,
   ``gmp_featurizer_version`` () str, ``source_md5`` (k,) str (``file:md5`` of the data files).
   No structures: the data stay in $ATOMFORGE_DATA; tests/test_gmp.py rebuilds the systems with
   :func:`load_systems` and checks the data files' md5 first.
5. --check: recompute every system with tests/reference_gmp.py (cutoff_function=None, same
   r_c) and print the maximum relative deviation per system.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
ORDERS = [0, 1, 2, 3, 4]
SIGMAS = [0.4, 0.8, 1.2, 1.6, 2.0]
SYMBOLS = ["X", "H", "He", "Li", "Be", "B", "C", "N", "O", "F", "Ne", "Na", "Mg", "Al", "Si", "P",
           "S", "Cl", "Ar", "K", "Ca", "Sc", "Ti", "V", "Cr", "Mn", "Fe", "Co", "Ni", "Cu", "Zn",
           "Ga", "Ge", "As", "Se", "Br", "Kr", "Rb", "Sr", "Y", "Zr", "Nb", "Mo", "Tc", "Ru",
           "Rh", "Pd", "Ag", "Cd", "In", "Sn", "Sb", "Te", "I", "Xe", "Cs", "Ba", "La", "Ce",
           "Pr", "Nd", "Pm", "Sm", "Eu", "Gd", "Tb", "Dy", "Ho", "Er", "Tm", "Yb", "Lu", "Hf",
           "Ta", "W", "Re", "Os", "Ir", "Pt", "Au", "Hg", "Tl", "Pb", "Bi", "Po", "At", "Rn"]


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def data_dir() -> Path:
    env = os.environ.get("ATOMFORGE_DATA")
    return Path(env) if env else REPO.parent / "shared" / "data"


def write_gpsp(table: dict, path: Path, note: str) -> str:
    """Write {symbol: [[c, alpha], ...]} in GMP-featurizer's .gpsp format; returns the text."""
    syms = sorted(table, key=SYMBOLS.index)
    lines = [f"# {note}", "# rho(r) = sum_k c_k exp(-alpha_k r^2); columns: c_k [e/Angstrom^3]  alpha_k [1/Angstrom^2]",
             f"! {len(syms)} elements"]
    for s in syms:
        lines += ["****", f"{s}\t{SYMBOLS.index(s)}\t{len(table[s])}"]
        lines += [f"{float(c)!r}\t{float(a)!r}" for c, a in table[s]]
    text = "\n".join(lines) + "\n"  # no blank line: GMP-featurizer's reader would choke on it
    path.write_text(text)
    return text


def load_systems(root: Path):
    """The reference systems from the data folder ``root``: (list of dicts with name, positions
    (N, 3) A, numbers (N,), cell (3, 3) A, pbc (3,) bool; the data files read)."""
    systems, sources = [], []
    for mol, frames in (("ethanol", (0, 1, 2)), ("aspirin", (0, 1))):
        f = root / "rmd17" / f"rmd17_{mol}_train_01.npz"
        sources.append(f)
        d = np.load(f)
        z = d["nuclear_charges"].astype(np.int64)
        box = 40.0
        for k in frames:
            pos = d["coords"][k].astype(np.float64)
            pos = pos - pos.mean(axis=0) + box / 2
            systems.append(dict(name=f"rmd17_{mol}_train_01[{k}]", positions=pos, numbers=z,
                                cell=np.eye(3) * box, pbc=np.array([False, False, False])))
    wdir = root / "deepmd_water" / "energy_force" / "data_0"
    type_map = (wdir / "type_map.raw").read_text().split()
    types = np.array([int(t) for t in (wdir / "type.raw").read_text().split()])
    z = np.array([SYMBOLS.index(type_map[t]) for t in types], dtype=np.int64)
    coord = np.load(wdir / "set.000" / "coord.npy")
    boxes = np.load(wdir / "set.000" / "box.npy")
    sources += [wdir / "type.raw", wdir / "type_map.raw", wdir / "set.000" / "coord.npy", wdir / "set.000" / "box.npy"]
    for k in (0, 1):
        cell = boxes[k].astype(np.float64).reshape(3, 3)
        pos = coord[k].astype(np.float64).reshape(-1, 3)
        frac = np.linalg.solve(cell.T, pos.T).T
        frac -= np.floor(frac)
        # GMP-featurizer's reference path bins with int(scaled * nbins) after rounding to 6
        # decimals and has no clamp: a coordinate that rounds to 1.0 would fall out of range.
        assert np.all(np.round(frac, 6) < 1.0), "a wrapped coordinate rounds to 1.0"
        systems.append(dict(name=f"deepmd_water/energy_force/data_0/set.000[{k}]",
                            positions=frac @ cell, numbers=z, cell=cell, pbc=np.array([True, True, True])))
    return systems, sources


def run_gmp_featurizer(gmpf_path: Path, gpsp: Path, systems, r_c):
    sys.path.insert(0, str(gmpf_path))
    from GMPFeaturizer import GMPFeaturizer  # noqa: E402  (needs the compiled _libgmp)

    setup = {"GMPs": {"orders": ORDERS, "sigmas": SIGMAS}, "psp_path": str(gpsp),
             "custom_cutoff": -1, "cutoff": float(r_c), "square": False}
    feat = GMPFeaturizer(GMPs=setup, converter=None, calc_derivatives=False, verbose=False)
    images = [{"cell": s["cell"].copy(), "pbc": s["pbc"].astype(np.intc),
               "atom_positions": s["positions"].copy(),
               "atom_symbols": [SYMBOLS[z] for z in s["numbers"]],
               "occupancies": np.ones(len(s["numbers"]))} for s in systems]
    with tempfile.TemporaryDirectory(prefix="gmpf_db_") as db:
        feat.feature_database = db + "/"
        res = feat.prepare_features(images, cores=1, save_features=False)
    return [np.array(r["features"], dtype=np.float64) for r in res]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gmp-featurizer", required=True, type=Path,
                    help="GMP-featurizer source folder with the compiled GMPFeaturizer/GMP/_libgmp*.so")
    ap.add_argument("--gmp-commit", default=None, help="commit of that source (default: git rev-parse there)")
    ap.add_argument("--table", type=Path,
                    default=REPO / "python/atomforge/descriptors/data/gmp_pseudodensities.json")
    ap.add_argument("--table-key", default="elements", help="'elements' (positive) or 'elements_signed'")
    ap.add_argument("--r-c", type=float, default=24.0)
    ap.add_argument("--output", type=Path, default=REPO / "tests/reference/gmp_featurizer_reference.npz")
    ap.add_argument("--check", action="store_true", help="compare with tests/reference_gmp.py")
    args = ap.parse_args(argv)

    commit = args.gmp_commit
    if commit is None:
        try:
            commit = subprocess.run(["git", "-C", str(args.gmp_featurizer), "rev-parse", "HEAD"],
                                    check=True, capture_output=True, text=True).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            commit = "unknown"
    version = "unknown"
    setup_py = args.gmp_featurizer / "setup.py"
    if setup_py.exists():
        for line in setup_py.read_text().splitlines():
            if line.strip().startswith("version="):
                version = line.split("=", 1)[1].strip().strip(",").strip("\"'")

    full = json.loads(args.table.read_text())
    systems, sources = load_systems(data_dir())
    needed = sorted({SYMBOLS[z] for s in systems for z in s["numbers"]}, key=SYMBOLS.index)
    table = {s: full[args.table_key][s] for s in needed}

    t0 = time.time()
    with tempfile.TemporaryDirectory(prefix="gmp_ref_") as tmp:
        gpsp = Path(tmp) / "atomforge.gpsp"
        gpsp_text = write_gpsp(table, gpsp, f"atomforge pseudo-densities ({args.table.name}, key "
                                            f"{args.table_key}), written by make_reference.py")
        feats = run_gmp_featurizer(args.gmp_featurizer, gpsp, systems, args.r_c)
    print(f"GMP-featurizer {version} ({commit}): {len(systems)} systems in {time.time() - t0:.1f} s")
    for s, f in zip(systems, feats):
        assert f.shape == (len(s["numbers"]), len(ORDERS) * len(SIGMAS)), f.shape

    args.output.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        args.output,
        system=np.array([s["name"] for s in systems]),
        natoms=np.array([len(s["numbers"]) for s in systems], dtype=np.int64),
        orders=np.array(ORDERS, dtype=np.int64),
        sigmas=np.array(SIGMAS, dtype=np.float64),
        r_c=np.array(args.r_c),
        features=np.concatenate(feats),
        density_table=np.array(json.dumps({str(SYMBOLS.index(s)): table[s] for s in needed})),
        density_table_key=np.array(args.table_key),
        gpsp=np.array(gpsp_text),
        gmp_featurizer_commit=np.array(commit),
        gmp_featurizer_version=np.array(version),
        source_md5=np.array([f"{p.relative_to(data_dir())}:{md5(p)}" for p in sources]
                            + [f"{args.table.name}:{md5(args.table)}"]),
    )
    print(f"wrote {args.output}")

    if args.check:
        sys.path.insert(0, str(REPO / "tests"))
        from reference_gmp import gmp_reference

        dens = {SYMBOLS.index(s): [tuple(g) for g in table[s]] for s in needed}
        worst = 0.0
        for s, f in zip(systems, feats):
            t1 = time.time()
            ours = gmp_reference(s["positions"], s["numbers"], s["cell"], s["pbc"], ORDERS, SIGMAS,
                                 args.r_c, dens, cutoff_function=None)
            rel = np.abs(ours - f) / np.abs(f)
            worst = max(worst, rel.max())
            print(f"  {s['name']:45s} max rel dev {rel.max():.2e}  (min |feature| {np.abs(f).min():.2e}, "
                  f"{time.time() - t1:.0f} s)")
        print(f"max relative deviation tests/reference_gmp.py vs GMP-featurizer: {worst:.2e}")
        return 0 if worst < 1e-8 else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
