#!/usr/bin/env python
"""Prepare the models for the OpenMM examples in this folder (same models as examples/lammps).

    python prepare.py            # ethanol model from `atomforge quickstart`, n2p2 water model
    python prepare.py --quick    # tiny training run instead of the quickstart (for tests, ~20 s)

Writes ethanol.afm and water.afm. The water model is n2p2's RPBE-D3 HDNNP (Morawietz et al.,
PNAS 113, 8368 (2016)) converted with `atomforge import-n2p2` from
$ATOMFORGE_DATA/n2p2_h2o_rpbe_d3/potential (or --n2p2-dir).
Also provides `topology_from_atoms`, used by the example scripts.
"""
import argparse
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def topology_from_atoms(atoms, atoms_per_residue=None):
    """An openmm.app.Topology for an ase.Atoms (elements, box vectors in nm if periodic)."""
    from openmm.app import Element, Topology

    top = Topology()
    chain = top.addChain()
    res = None
    for i, (sym, z) in enumerate(zip(atoms.get_chemical_symbols(), atoms.numbers)):
        if res is None or (atoms_per_residue and i % atoms_per_residue == 0):
            res = top.addResidue("MOL", chain)
        top.addAtom(f"{sym}{i}", Element.getByAtomicNumber(int(z)), res)
    if atoms.pbc.all():
        top.setPeriodicBoxVectors(np.asarray(atoms.cell) / 10.0)
    return top


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
    if not (out / "ethanol.afm").exists():
        run_dir = out / "ethanol-run"
        if a.quick:
            from atomforge.quickstart_data import quickstart_dataset
            cmd = af + ["train", "--data", str(quickstart_dataset()), "-o", str(run_dir), "--epochs", "3", "--quiet"]
        else:
            cmd = af + ["quickstart", "-o", str(run_dir), "--quiet"]
        subprocess.run(cmd, check=True)
        os.replace(run_dir / "model.afm", out / "ethanol.afm")
        if a.quick:
            print("WARNING: ethanol.afm is a 3-epoch model (--quick): a smoke test, not for MD")
    if not (out / "water.afm").exists():
        subprocess.run(af + ["import-n2p2", str(n2p2_dir), "-o", str(out / "water.afm")], check=True)
    print(f"prepared models in {out}")


if __name__ == "__main__":
    main()
