#!/usr/bin/env python3
"""Run n2p2's ``nnp-predict`` on every frame of an input.data file and save the predictions.

This script does NOT build n2p2 (see README.md in this folder for how the binary used for
tests/reference/n2p2_h2o_rpbe_d3_predictions.npz was built). It only drives an existing
``nnp-predict`` binary:

    python benchmarks/n2p2_reference/make_reference.py \
        --nnp-predict /tmp/n2p2src/bin/nnp-predict \
        --potential  $ATOMFORGE_DATA/n2p2_h2o_rpbe_d3/potential \
        --input-data $ATOMFORGE_DATA/n2p2_h2o_rpbe_d3/input.data.H2O_RPBE-D3 \
        --output tests/reference/n2p2_h2o_rpbe_d3_predictions.npz

``nnp-predict`` predicts only the first structure of ``input.data`` in its working directory,
so every frame is copied (text unchanged) into its own temporary run folder together with
input.nn, scaling.data and weights.*.data. From each run it reads

* ``energy.out``: column 4 ``Ennp`` = total energy in the file's energy unit (n2p2 converts
  back from normalised units and adds the atom_energy offsets, Prediction::predict),
* ``nnforces.out``: columns 6-8 ``fx fy fz`` in file energy / file length units,
* ``nnatoms.out``: column 7 ``Ennp_atom`` (atomic NN energies),

and ``nnp-predict.log`` for n2p2's git revision. Output (.npz, all float64 unless noted):

* ``energy`` (n_frames,) total energies, file energy unit (Ha for the water potential),
* ``natoms`` (n_frames,) int64,
* ``forces`` (sum natoms, 3) concatenated forces, file units (Ha/Bohr),
* ``atomic_energy`` (sum natoms,) atomic NN energies from ``nnatoms.out`` (column 7 ``Ennp_atom``:
  the atomic NN output converted to file energy units, i.e. NN_i / conv_energy, without
  mean_energy and atom_energy offsets),
* ``n2p2_commit`` (1,) str, ``n2p2_version`` (1,) str, ``units`` (2,) str,
* ``input_data_md5`` (1,) str and ``potential_md5`` (k,) str (``name:md5``).
"""
from __future__ import annotations

import argparse
import hashlib
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np


def split_frames(path: Path):
    """Text of each begin..end frame of an input.data file."""
    frames, cur = [], None
    for line in path.read_text().splitlines(keepends=True):
        tok = line.split()
        if tok and tok[0] == "begin":
            cur = [line]
        elif cur is not None:
            cur.append(line)
            if tok and tok[0] == "end":
                frames.append("".join(cur))
                cur = None
    return frames


def data_lines(path: Path):
    return [l.split() for l in path.read_text().splitlines() if l.strip() and not l.lstrip().startswith("#")]


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nnp-predict", required=True, type=Path)
    ap.add_argument("--potential", required=True, type=Path,
                    help="folder with input.nn, scaling.data, weights.NNN.data")
    ap.add_argument("--input-data", required=True, type=Path)
    ap.add_argument("--output", required=True, type=Path)
    ap.add_argument("--length-unit", default="Bohr")
    ap.add_argument("--energy-unit", default="Ha")
    args = ap.parse_args(argv)

    pot_files = [args.potential / "input.nn", args.potential / "scaling.data"] + \
        sorted(args.potential.glob("weights.[0-9][0-9][0-9].data"))
    frames = split_frames(args.input_data)
    energies, natoms, forces, atomic = [], [], [], []
    commit = version = None
    with tempfile.TemporaryDirectory(prefix="n2p2_ref_") as tmp:
        for i, text in enumerate(frames):
            run = Path(tmp) / f"frame{i:03d}"
            run.mkdir()
            for f in pot_files:
                shutil.copy(f, run / f.name)
            (run / "input.data").write_text(text)
            res = subprocess.run([str(args.nnp_predict.resolve()), "0"], cwd=run, check=True,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            if res.stderr.strip():  # e.g. extrapolation warnings (symmetry functions out of range)
                print(f"frame {i}: nnp-predict stderr:\n{res.stderr}", file=sys.stderr)
            e = data_lines(run / "energy.out")
            assert len(e) == 1, e
            n = int(e[0][1])
            energies.append(float(e[0][3]))
            natoms.append(n)
            f = np.array([[float(v) for v in row[5:8]] for row in data_lines(run / "nnforces.out")])
            assert f.shape == (n, 3), f.shape
            forces.append(f)
            ea = np.array([float(row[6]) for row in data_lines(run / "nnatoms.out")])
            assert ea.shape == (n,), ea.shape
            atomic.append(ea)
            log = (run / "nnp-predict.log").read_text()
            m = re.search(r"Git revision\s*:\s*([0-9a-f]{40})", log)
            commit = m.group(1) if m else "unknown"
            m = re.search(r"version\s+\(from git\)\s*:\s*(\S+)", log)
            version = m.group(1) if m else "unknown"
            print(f"frame {i:2d}: {n:4d} atoms  E = {energies[-1]: .16e} {args.energy_unit}")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        args.output,
        energy=np.array(energies, dtype=np.float64),
        natoms=np.array(natoms, dtype=np.int64),
        forces=np.concatenate(forces).astype(np.float64),
        atomic_energy=np.concatenate(atomic).astype(np.float64),
        n2p2_commit=np.array([commit]),
        n2p2_version=np.array([version]),
        units=np.array([args.energy_unit, args.length_unit]),
        input_data_md5=np.array([md5(args.input_data)]),
        potential_md5=np.array([f"{f.name}:{md5(f)}" for f in pot_files]),
    )
    print(f"wrote {args.output} ({len(frames)} frames, n2p2 {version} {commit})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
