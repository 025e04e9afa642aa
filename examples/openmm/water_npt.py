#!/usr/bin/env python
"""Liquid water, NPT (Langevin middle integrator + MonteCarloBarostat, 300 K, 1 bar) with the
n2p2 RPBE-D3 water model (converted to atomforge) in OpenMM.

    python prepare.py && python water_npt.py             # 64 H2O, 5000 steps of 0.5 fs
    python water_npt.py --rep 4 --steps 1000             # 512 H2O
"""
import argparse
import sys
from pathlib import Path

import openmm
import openmm.unit as u

import atomforge.openmm as afo
from atomforge.cli import _water_box

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from prepare import topology_from_atoms  # noqa: E402


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=5000)
    p.add_argument("--rep", type=int, default=2, help="8 * rep^3 water molecules (default 64)")
    p.add_argument("--models", default=str(HERE), help="folder with water.afm (prepare.py)")
    p.add_argument("--platform", default="CPU")
    a = p.parse_args()

    atoms = _water_box(a.rep)
    topology = topology_from_atoms(atoms, atoms_per_residue=3)
    system = afo.create_system(topology, Path(a.models) / "water.afm")  # periodic: the topology has a box
    system.addForce(openmm.MonteCarloBarostat(1 * u.bar, 300 * u.kelvin, 25))
    integrator = openmm.LangevinMiddleIntegrator(300 * u.kelvin, 1 / u.picosecond, 0.5 * u.femtosecond)
    context = openmm.Context(system, integrator, openmm.Platform.getPlatformByName(a.platform))
    context.setPositions(atoms.positions * u.angstrom)
    openmm.LocalEnergyMinimizer.minimize(context, 10.0, 200)  # relax the built-in (unequilibrated) box
    context.setVelocitiesToTemperature(300 * u.kelvin, 7)

    mass = sum((system.getParticleMass(i) for i in range(system.getNumParticles())), 0 * u.dalton)
    every = max(1, a.steps // 10)
    print(f"{'step':>8} {'PE/kJmol':>14} {'T/K':>8} {'V/nm^3':>9} {'rho/gcm3':>9}")
    n_dof = 3 * system.getNumParticles() - 3
    for step in range(0, a.steps + 1, every):
        if step:
            integrator.step(every)
        st = context.getState(getEnergy=True)
        vol = st.getPeriodicBoxVolume()
        temp = (2 * st.getKineticEnergy() / (n_dof * u.MOLAR_GAS_CONSTANT_R)).value_in_unit(u.kelvin)
        rho = (mass / vol / u.AVOGADRO_CONSTANT_NA).value_in_unit(u.gram / u.centimeter ** 3)
        print(f"{step:8d} {st.getPotentialEnergy().value_in_unit(u.kilojoule_per_mole):14.3f} {temp:8.1f} "
              f"{vol.value_in_unit(u.nanometer ** 3):9.4f} {rho:9.4f}")


if __name__ == "__main__":
    main()
