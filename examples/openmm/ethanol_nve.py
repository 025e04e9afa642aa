#!/usr/bin/env python
"""Ethanol in vacuum, NVE (velocity Verlet, 0.5 fs) with an atomforge model in OpenMM.

    python prepare.py && python ethanol_nve.py            # 10 ps, reports the total-energy drift
    python ethanol_nve.py --steps 2000 --platform Reference
"""
import argparse
import sys
import time
from pathlib import Path

import numpy as np
import openmm
import openmm.unit as u
from ase.build import molecule

import atomforge.openmm as afo

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from prepare import topology_from_atoms  # noqa: E402


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=20000, help="number of 0.5 fs steps (default 10 ps)")
    p.add_argument("--models", default=str(HERE), help="folder with ethanol.afm (prepare.py)")
    p.add_argument("--model", default=None, help="model file (default: MODELS/ethanol.afm)")
    p.add_argument("--platform", default="CPU")
    p.add_argument("--report", type=int, default=None, help="report every N steps")
    a = p.parse_args()

    atoms = molecule("CH3CH2OH")
    system = afo.create_system(topology_from_atoms(atoms), a.model or Path(a.models) / "ethanol.afm",
                               removeCMMotion=False)
    integrator = openmm.VerletIntegrator(0.5 * u.femtosecond)
    context = openmm.Context(system, integrator, openmm.Platform.getPlatformByName(a.platform))
    context.setPositions(atoms.positions * u.angstrom)
    context.setVelocitiesToTemperature(300 * u.kelvin, 2024)

    every = a.report or max(1, a.steps // 20)
    kj = u.kilojoule_per_mole
    print(f"{'step':>8} {'time/ps':>8} {'PE/kJmol':>14} {'KE/kJmol':>10} {'total/kJmol':>14}")
    totals = []
    t0 = time.perf_counter()
    for step in range(0, a.steps + 1, every):
        if step:
            integrator.step(every)
        st = context.getState(getEnergy=True)
        pe, ke = st.getPotentialEnergy().value_in_unit(kj), st.getKineticEnergy().value_in_unit(kj)
        totals.append(pe + ke)
        print(f"{step:8d} {step * 0.0005:8.3f} {pe:14.4f} {ke:10.4f} {pe + ke:14.6f}")
    seconds = time.perf_counter() - t0
    totals = np.array(totals)
    print(f"MD: {a.steps} steps in {seconds:.2f} s on the {a.platform} platform ({a.steps / seconds:.0f} steps/s)")
    print(f"total energy: drift {totals[-1] - totals[0]:+.4f} kJ/mol, range {np.ptp(totals):.4f} kJ/mol "
          f"over {a.steps * 0.0005:g} ps ({len(atoms)} atoms)")


if __name__ == "__main__":
    main()
