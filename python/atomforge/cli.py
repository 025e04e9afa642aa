"""Command-line interface: ``atomforge <command>``.

Commands:
    quickstart   the main job on a built-in default. Until the model-training issue lands this is
                 a descriptor demo: a built-in periodic water box, Behler-Parrinello symmetry
                 functions, forces through the vector-Jacobian product checked against finite
                 differences, and the descriptor throughput on this machine.
    descriptors  symmetry functions of every structure in a file ASE can read, saved as .npz.
    info         build information of the compiled core.
"""
from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np


def _water_box(n_rep: int = 2, seed: int = 0):
    """A periodic box of 8 * n_rep^3 water molecules at ~1 g/cm^3 (built-in, no download)."""
    from ase import Atoms
    from ase.build import molecule

    rng = np.random.default_rng(seed)
    L = 6.2 / 2 * 2  # 8 molecules in a 6.2 A cube ~ 1.0 g/cm^3
    w = molecule("H2O")
    atoms = Atoms(cell=np.eye(3) * L, pbc=True)
    grid = (np.indices((2, 2, 2)).reshape(3, -1).T + 0.5) * (L / 2)
    for c in grid:
        m = w.copy()
        m.rotate(rng.uniform(0, 360), rng.normal(size=3))
        m.translate(c - m.get_center_of_mass())
        atoms += m
    return atoms.repeat((n_rep,) * 3)


def cmd_quickstart(args) -> int:
    from . import SymmetryFunctions, build_info

    print(f"atomforge quickstart (descriptor demo; training arrives with the model issue)")
    print(f"  core: {build_info()}")
    atoms = _water_box(args.size)
    sf = SymmetryFunctions.standard(["H", "O"], r_c=args.r_c)
    print(f"  structure: {len(atoms)} atoms of liquid water, periodic cell {atoms.cell.lengths()[0]:.2f} A")
    print(f"  descriptor: {sf}")
    nl = sf.neighbor_list(atoms)
    t0 = time.perf_counter()
    G = sf.compute(atoms, neighbor_list=nl)
    t1 = time.perf_counter()
    rng = np.random.default_rng(1)
    w = rng.normal(size=G.shape) / G.shape[1]
    res = sf.vjp(w, atoms, neighbor_list=nl)
    t2 = time.perf_counter()
    print(f"  G: shape {G.shape}, range [{G.min():.3g}, {G.max():.3g}]  "
          f"({nl.n_pairs / len(atoms):.1f} neighbours/atom)")
    print(f"  descriptor {t1 - t0:.3f} s + vector-Jacobian product {t2 - t1:.3f} s "
          f"= {len(atoms) / (t2 - t0):,.0f} atoms/s")
    # finite-difference check of the force on atom 0 for the linear energy E = sum(w * G)
    h, a = 1e-5, 0
    fd = np.zeros(3)
    for k in range(3):
        p, m = atoms.copy(), atoms.copy()
        p.positions[a, k] += h
        m.positions[a, k] -= h
        fd[k] = -(np.sum(w * sf.compute(p)) - np.sum(w * sf.compute(m))) / (2 * h)
    err = np.abs(fd - res.forces[a]).max()
    print(f"  force on atom 0: {res.forces[a]}  finite difference: {fd}  (max diff {err:.1e})")
    print(f"  virial (eV): diag {np.diag(res.virial)}")
    ok = err < 1e-6 * max(1.0, np.abs(fd).max())
    print("  OK" if ok else "  FINITE-DIFFERENCE CHECK FAILED")
    return 0 if ok else 1


def cmd_descriptors(args) -> int:
    import ase.io

    from . import SymmetryFunctions

    if args.params:
        with open(args.params) as fh:
            sf = SymmetryFunctions.from_dict(json.load(fh))
    elif args.n2p2:
        from .io.n2p2 import read_input_nn
        sf = read_input_nn(args.n2p2).descriptor
    else:
        frames = ase.io.read(args.structures, index=":")
        elements = sorted({s for a in frames for s in a.get_chemical_symbols()})
        sf = SymmetryFunctions.standard(elements, r_c=args.r_c)
    frames = ase.io.read(args.structures, index=":")
    out = {f"frame_{i}": sf.compute(a) for i, a in enumerate(frames)}
    out["parameters"] = np.array(json.dumps(sf.to_dict()))
    np.savez_compressed(args.output, **out)
    print(f"wrote {len(frames)} frame(s) of {sf.n_features} features to {args.output}")
    return 0


def cmd_info(args) -> int:
    from . import __version__, build_info

    print(f"atomforge {__version__}")
    print(build_info())
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="atomforge", description="Machine-learned interatomic potentials")
    sub = p.add_subparsers(dest="command", required=True)
    q = sub.add_parser("quickstart", help="run the main job on a built-in default")
    q.add_argument("--size", type=int, default=4, help="box replication (8 * size^3 molecules)")
    q.add_argument("--r-c", type=float, default=6.0, help="cutoff radius r_c in Angstrom")
    q.set_defaults(func=cmd_quickstart)
    d = sub.add_parser("descriptors", help="symmetry functions of every structure in a file")
    d.add_argument("structures", help="any file ASE reads (extxyz, POSCAR, ...)")
    d.add_argument("-o", "--output", required=True, help="output .npz")
    g = d.add_mutually_exclusive_group()
    g.add_argument("--params", help="JSON file in the documented parameter form")
    g.add_argument("--n2p2", help="n2p2 input.nn to take the symmetry functions from")
    d.add_argument("--r-c", type=float, default=6.0, help="cutoff of the generated standard set")
    d.set_defaults(func=cmd_descriptors)
    i = sub.add_parser("info", help="build information")
    i.set_defaults(func=cmd_info)
    args = p.parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, TypeError, OSError) as exc:
        print(f"atomforge {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
