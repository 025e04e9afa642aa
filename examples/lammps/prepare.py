#!/usr/bin/env python
"""Prepare models and structures for the LAMMPS examples in this folder.

    python prepare.py            # ethanol model from `atomforge quickstart`, n2p2 water model, data files
    python prepare.py --quick    # tiny training run instead of the quickstart (for tests, ~20 s)

Writes: ethanol.afm, ethanol.data, water.afm, water.data (64 H2O), water_big.data (512 H2O).
The water model is n2p2's RPBE-D3 HDNNP (Morawietz et al., PNAS 113, 8368 (2016)) converted with
`atomforge import-n2p2`; its files come from n2p2's public examples (examples/potentials/H2O_RPBE-D3),
found under $ATOMFORGE_DATA/n2p2_h2o_rpbe_d3/potential or given with --n2p2-dir.
"""
import argparse
import os
import subprocess
import sys
from pathlib import Path

import ase.io
from ase.build import molecule

HERE = Path(__file__).resolve().parent


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="train a small ethanol model for a few epochs")
    p.add_argument("--n2p2-dir", default=None, help="folder with input.nn, scaling.data, weights.*.data")
    p.add_argument("--out", default=str(HERE), help="output folder (default: this folder; the outputs are "
                   "git-ignored)")
    a = p.parse_args()
    out = Path(a.out).resolve()
    # check the data before any work (training takes minutes)
    n2p2_dir = Path(a.n2p2_dir) if a.n2p2_dir else Path(
        os.environ.get("ATOMFORGE_DATA", str(HERE.parents[2] / "shared" / "data"))) / "n2p2_h2o_rpbe_d3" / "potential"
    if not (out / "water.afm").exists() and not (n2p2_dir / "input.nn").is_file():
        p.error(f"the n2p2 RPBE-D3 water potential is not at {n2p2_dir} (no input.nn): set ATOMFORGE_DATA to the "
                f"folder holding n2p2_h2o_rpbe_d3/, or pass --n2p2-dir")
    try:
        import tblite  # noqa: F401  (GFN2-xTB data of the ethanol model)
    except ImportError:
        if not (out / "ethanol.afm").exists():
            p.error("the ethanol model is trained on GFN2-xTB data from tblite, which is not installed: "
                    "pip install tblite==0.8.0 (or pip install 'atomforge[all]')")
    out.mkdir(parents=True, exist_ok=True)
    af = [sys.executable, "-m", "atomforge"]

    # ethanol: model trained on GFN2-xTB data
    if not (out / "ethanol.afm").exists():
        run_dir = out / "ethanol-run"
        if a.quick:
            from atomforge.quickstart_data import quickstart_dataset
            data = quickstart_dataset()
            subprocess.run(af + ["train", "--data", str(data), "-o", str(run_dir), "--epochs", "3", "--quiet"],
                           check=True)
        else:
            subprocess.run(af + ["quickstart", "-o", str(run_dir), "--quiet"], check=True)
        os.replace(run_dir / "model.afm", out / "ethanol.afm")
        if a.quick:
            print("WARNING: ethanol.afm is a 3-epoch model (--quick): a smoke test, not for MD")
    eth = molecule("CH3CH2OH")
    eth.center(vacuum=15.0)
    ase.io.write(out / "ethanol.data", eth, format="lammps-data", specorder=["H", "C", "O"], masses=True)

    # water: n2p2 RPBE-D3 potential converted to an atomforge model
    if not (out / "water.afm").exists():
        subprocess.run(af + ["import-n2p2", str(n2p2_dir), "-o", str(out / "water.afm")], check=True)
    from atomforge.cli import _water_box
    ase.io.write(out / "water.data", _water_box(2), format="lammps-data", specorder=["O", "H"], masses=True)
    ase.io.write(out / "water_big.data", _water_box(4), format="lammps-data", specorder=["O", "H"], masses=True)
    print(f"prepared models and data in {out}")


if __name__ == "__main__":
    main()
