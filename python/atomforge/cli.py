"""Command-line interface: ``atomforge <command>``.

Commands:
    quickstart   the main job on a built-in default: generate (once, cached) a GFN2-xTB dataset of
                 ethanol with tblite, train a Behler-Parrinello potential on it, export the model
                 file, run a short NVE MD through ASE with it, print where everything is.
    train        train a potential: atomforge train --data TRAIN [--test-data TEST] -o RUN
    evaluate     model + dataset -> error metrics (evaluated by the C++ core)
    inspect      summary of a model file
    import-n2p2  convert an n2p2 potential folder into an atomforge model file
    descriptors  symmetry functions of every structure in a file ASE can read, saved as .npz.
    demo         descriptor demo: water box, forces vs finite differences, throughput
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


def cmd_demo(args) -> int:
    from . import SymmetryFunctions, build_info

    print("atomforge demo: Behler-Parrinello descriptors of a built-in water box")
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


def cmd_quickstart(args) -> int:
    from pathlib import Path

    from . import build_info, load
    from .quickstart_data import quickstart_dataset
    from .train import train

    t0 = time.time()
    out = Path(args.output).resolve()
    print("atomforge quickstart")
    print(f"  core: {build_info()}")
    print("  1/3 data: GFN2-xTB (tblite) Langevin MD of ethanol at 500 K (generated once, then cached)")
    data = quickstart_dataset(cache_dir=args.cache_dir)
    print(f"      {data}")
    print(f"  2/3 training a Behler-Parrinello network ({args.epochs} epochs at most) -> {out}")
    cfg = {"data": str(data), "test_fraction": 0.15, "validation_fraction": 0.1,
           "descriptor": {"r_c": 4.5, "n_radial": 6, "n_angular": 2},
           "network": {"hidden": [32, 32]},
           "training": {"epochs": args.epochs, "max_minutes": args.max_minutes, "batch_size": 8,
                        "early_stopping_patience": 30}}
    metrics = train(cfg, out, resume=args.resume, progress=not args.quiet, log=lambda m: print("      " + m))
    t = metrics["test"]
    print(f"      test: energy MAE {1000 * t['energy_mae']:.1f} meV, forces MAE {1000 * t['forces_mae']:.1f} meV/A "
          f"({metrics['test']['n_frames']} frames, C++ evaluation)")
    print("  3/3 NVE molecular dynamics with the exported model through ASE (0.5 fs, 1000 steps)")
    drift = _nve_demo(load(out / "model.afm"), data, out / "md.traj", steps=1000)
    print(f"      total-energy drift {drift * 1000:.3f} meV/atom/ps, trajectory {out / 'md.traj'}")
    print(f"done in {time.time() - t0:.0f} s. Files in {out}:")
    for name in ("model.afm", "metrics.json", "config.yaml", "split.json", "learning_curve.png", "parity.png",
                 "checkpoint.pt", "md.traj"):
        print(f"  {out / name}")
    print(f"Use the model: python -c \"import atomforge; print(atomforge.load('{out / 'model.afm'}'))\"")
    return 0


def _nve_demo(pot, data_path, traj_path, steps=1000, dt_fs=0.5) -> float:
    """Velocity-Verlet NVE from the first frame of the data; returns the energy drift in eV/atom/ps."""
    import ase.io
    from ase import units
    from ase.io.trajectory import Trajectory
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution, Stationary, ZeroRotation
    from ase.md.verlet import VelocityVerlet

    from .ase import AtomForgeCalculator

    atoms = ase.io.read(str(data_path), index=0)
    atoms.calc = AtomForgeCalculator(pot)
    MaxwellBoltzmannDistribution(atoms, temperature_K=300, rng=np.random.default_rng(0))
    Stationary(atoms)
    ZeroRotation(atoms)
    dyn = VelocityVerlet(atoms, timestep=dt_fs * units.fs)
    traj = Trajectory(str(traj_path), "w", atoms)
    dyn.attach(traj.write, interval=20)
    etot = []
    dyn.attach(lambda: etot.append(atoms.get_total_energy()), interval=10)
    dyn.run(steps)
    traj.close()
    t_ps = np.arange(len(etot)) * 10 * dt_fs / 1000
    slope = np.polyfit(t_ps, np.array(etot) / len(atoms), 1)[0]
    return float(slope)


def cmd_train(args) -> int:
    if args.model == "sgdml":
        from .sgdml import train_sgdml

        if args.config:
            raise ValueError("--config is for neural-network models; sGDML takes --n-train, --energy-key, "
                             "--forces-key and --seed")
        if args.descriptor or args.shared:
            raise ValueError("--descriptor/--shared are for neural-network models; sGDML has its own descriptor")
        kw = {}
        if args.sigmas:
            kw["sigmas"] = tuple(args.sigmas)
        if args.memory_gb:
            if args.memory_gb <= 0:
                raise ValueError(f"--memory-gb must be > 0, got {args.memory_gb}")
            kw["memory_budget"] = int(args.memory_gb * 1024 ** 3)
        metrics = train_sgdml(args.data, args.test_data, args.output, n_train=args.n_train or 1000,
                              energy_key=args.energy_key, forces_key=args.forces_key,
                              seed=args.seed or 0, progress=not args.quiet, solver=args.solver or "auto", **kw)
        t = metrics["test"]
        print(f"test: energy MAE {1000 * t['energy_mae']:.2f} meV, forces MAE {1000 * t['forces_mae']:.2f} meV/A "
              f"({t['forces_mae_kcal_mol']:.3f} kcal/mol/A)")
        print(f"run folder: {args.output}")
        return 0
    from .train import train

    if args.n_train or args.energy_key or args.forces_key:
        raise ValueError("--n-train/--energy-key/--forces-key apply to --model sgdml; for networks use a config "
                         "file (keys energy_key, forces_key)")
    if args.sigmas or args.memory_gb or args.solver:
        raise ValueError("--sigmas/--memory-gb/--solver apply to --model sgdml")
    overrides = {"data": args.data, "test_data": args.test_data, "model": args.model, "seed": args.seed}
    if args.epochs:
        overrides["training"] = {"epochs": args.epochs}
    if args.descriptor:
        overrides["descriptor"] = {"type": args.descriptor}
    if args.shared:
        overrides["network"] = {"shared": True}
    metrics = train(args.config, args.output, resume=args.resume, progress=not args.quiet, **overrides)
    t = metrics["test"]
    print(f"test: energy MAE {1000 * t['energy_mae']:.2f} meV ({1000 * t['energy_mae_per_atom']:.2f} meV/atom)"
          + (f", forces MAE {1000 * t['forces_mae']:.2f} meV/A" if "forces_mae" in t else ""))
    print(f"run folder: {args.output}")
    return 0


def cmd_evaluate(args) -> int:
    from . import load
    from .data import load_dataset
    from .train.metrics import UNITS, evaluate_dataset

    pot = load(args.model)
    ds = load_dataset(args.data, args.format, length_unit=args.length_unit, energy_unit=args.energy_unit,
                      energy_key=args.energy_key, forces_key=args.forces_key)
    if ds.energy is None:
        raise ValueError(f"{args.data}: no energies to compare with")
    _, _, m = evaluate_dataset(pot, ds)
    out = {"units": UNITS, "test": m, "model": str(args.model), "data": str(args.data)}
    text = json.dumps(out, indent=2)
    if args.output:
        from pathlib import Path
        Path(args.output).write_text(text)
    print(text)
    return 0


def cmd_inspect(args) -> int:
    from .model_file import read_records
    from .models import read_model

    version, rec = read_records(args.model)
    p = read_model(args.model)  # any registered model type
    print(f"{args.model}: atomforge model file, format version {version}, model_type {p.model_type}")
    print(f"  elements: {', '.join(p.elements)}")
    for key, value in p.describe():
        print(f"  {key}: {value}")
    for key, v in sorted(p.metadata.items()):
        print(f"  {key}: {v}")
    return 0


def cmd_import_n2p2(args) -> int:
    from .io.n2p2_import import cli_import_n2p2

    print(cli_import_n2p2(args.directory, args.output, length_unit=args.length_unit, energy_unit=args.energy_unit))
    return 0


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


def cmd_adaptive_sampling(args) -> int:
    from .active import adaptive_sampling

    over = {}
    if args.max_labels is not None:
        over["max_labels"] = args.max_labels
    if args.labeller is not None:
        over["labeller"] = args.labeller
    if args.seed is not None:
        over["seed"] = args.seed
    if args.scheduler is not None:
        over["scheduler"] = args.scheduler
    if args.workers is not None:
        over["workers"] = args.workers
    md = {}
    if args.temperature is not None:
        md["temperature"] = args.temperature
    if args.replicas is not None:
        md["replicas"] = args.replicas
    if md:
        over["md"] = md
    if args.threshold is not None:
        over["trigger"] = {"threshold": args.threshold}
    st = adaptive_sampling(args.start, args.output, args.config, resume=args.resume, progress=not args.quiet,
                           **over)
    print(f"{st['stop_reason']}; run folder: {args.output} (model.afm, labelled.extxyz, history.csv)")
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
    q.add_argument("-o", "--output", default="atomforge-quickstart", help="run folder")
    q.add_argument("--epochs", type=int, default=400)
    q.add_argument("--max-minutes", type=float, default=2.5, help="training wall-time limit")
    q.add_argument("--cache-dir", default=None, help="dataset cache (default $ATOMFORGE_CACHE or ~/.cache/atomforge)")
    q.add_argument("--resume", action="store_true", help="continue an interrupted quickstart run")
    q.add_argument("--quiet", action="store_true")
    q.set_defaults(func=cmd_quickstart)
    t = sub.add_parser("train", help="train a potential")
    t.add_argument("--data", help="training data (validation frames are split off it)")
    t.add_argument("--test-data", help="held-out test data")
    t.add_argument("-c", "--config", help="YAML configuration (keys: see atomforge.train.config)")
    t.add_argument("-o", "--output", required=True, help="run folder")
    t.add_argument("--model", default=None, choices=["bpnn", "sgdml"], help="model type (default bpnn)")
    t.add_argument("--n-train", type=int, default=None, help="sgdml: training geometries (default 1000)")
    t.add_argument("--energy-key", default=None, help="sgdml: npz key of the energies (e.g. old_energies)")
    t.add_argument("--forces-key", default=None, help="sgdml: npz key of the forces (e.g. old_forces)")
    t.add_argument("--sigmas", type=float, nargs="+", default=None,
                   help="sgdml: kernel length scales to choose from on validation data (default: adaptive "
                        "search from 5 ... 80)")
    t.add_argument("--memory-gb", type=float, default=None,
                   help="sgdml: memory the solver may use (default: available memory less 2 GiB / 20%%); the "
                        "closed form needs 4 (3 N M)^2 bytes, else conjugate gradients run matrix-free")
    t.add_argument("--solver", default=None, choices=["auto", "closed_form", "cg"],
                   help="sgdml: linear solver (default auto: from the memory budget)")
    t.add_argument("--epochs", type=int, default=None)
    t.add_argument("--descriptor", default=None, choices=["acsf", "gmp"],
                   help="descriptor type (default acsf; other keys from the config file or the type's defaults)")
    t.add_argument("--shared", action="store_true",
                   help="one network shared by all elements (needs --descriptor gmp)")
    t.add_argument("--seed", type=int, default=None)
    t.add_argument("--resume", action="store_true", help="continue from the run folder's checkpoint")
    t.add_argument("--quiet", action="store_true")
    t.set_defaults(func=cmd_train)
    e = sub.add_parser("evaluate", help="error metrics of a model on a dataset")
    e.add_argument("model")
    e.add_argument("data")
    e.add_argument("--format", default=None)
    e.add_argument("--length-unit", default=None)
    e.add_argument("--energy-unit", default=None)
    e.add_argument("--energy-key", default=None)
    e.add_argument("--forces-key", default=None)
    e.add_argument("-o", "--output", help="also write the metrics JSON here")
    e.set_defaults(func=cmd_evaluate)
    n = sub.add_parser("inspect", help="summary of a model file")
    n.add_argument("model")
    n.set_defaults(func=cmd_inspect)
    m = sub.add_parser("import-n2p2", help="convert an n2p2 potential folder to a model file")
    m.add_argument("directory", help="folder with input.nn, scaling.data, weights.NNN.data")
    m.add_argument("-o", "--output", required=True)
    m.add_argument("--length-unit", default=None, help="bohr | angstrom | number (default: from input.nn header)")
    m.add_argument("--energy-unit", default=None, help="ha | ev | number (default: from input.nn header)")
    m.set_defaults(func=cmd_import_n2p2)
    q = sub.add_parser("demo", help="descriptor demo on a built-in water box")
    q.add_argument("--size", type=int, default=4, help="box replication (8 * size^3 molecules)")
    q.add_argument("--r-c", type=float, default=6.0, help="cutoff radius r_c in Angstrom")
    q.set_defaults(func=cmd_demo)
    d = sub.add_parser("descriptors", help="symmetry functions of every structure in a file")
    d.add_argument("structures", help="any file ASE reads (extxyz, POSCAR, ...)")
    d.add_argument("-o", "--output", required=True, help="output .npz")
    g = d.add_mutually_exclusive_group()
    g.add_argument("--params", help="JSON file in the documented parameter form")
    g.add_argument("--n2p2", help="n2p2 input.nn to take the symmetry functions from")
    d.add_argument("--r-c", type=float, default=6.0, help="cutoff of the generated standard set")
    d.set_defaults(func=cmd_descriptors)
    a = sub.add_parser("adaptive-sampling", help="grow a training set by committee-driven MD and labelling",
                       description="Adaptive sampling: train a committee on a labelled seed set, run MD replicas "
                                   "until the committee's force uncertainty exceeds a threshold, label those "
                                   "structures (GFN2-xTB by default), retrain, repeat. The run folder is the "
                                   "state: --resume continues after any interruption. Other settings: -c CONFIG "
                                   "(keys in atomforge.active.config).")
    a.add_argument("--start", help="start structure(s): any file ASE reads (every frame is a start structure)")
    a.add_argument("-o", "--output", required=True, help="run folder")
    a.add_argument("-c", "--config", help="YAML configuration (keys: see atomforge.active.config)")
    a.add_argument("--resume", action="store_true", help="continue the run in the output folder")
    a.add_argument("--max-labels", type=int, default=None, help="label budget (default 200)")
    a.add_argument("--temperature", type=float, nargs="+", default=None,
                   help="K; several values are spread over the replicas (default 300)")
    a.add_argument("--replicas", type=int, default=None, help="MD replicas (default 4)")
    a.add_argument("--labeller", default=None,
                   help="xtb (GFN2-xTB via tblite, default), pyscf[:XC/BASIS], or an ASE calculator as "
                        "package.module:Class")
    a.add_argument("--threshold", type=float, default=None,
                   help="eV/A: calibrated max per-atom force uncertainty that triggers a label (default: "
                        "from the calibration: the median over the validation labels)")
    a.add_argument("--scheduler", default=None, help="Dask scheduler address (tcp://host:8786) to run on")
    a.add_argument("--workers", type=int, default=None, help="local worker processes (0: in-process)")
    a.add_argument("--seed", type=int, default=None)
    a.add_argument("--quiet", action="store_true")
    a.set_defaults(func=cmd_adaptive_sampling)
    i = sub.add_parser("info", help="build information")
    i.set_defaults(func=cmd_info)
    args = p.parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, TypeError, OSError, RuntimeError) as exc:
        print(f"atomforge {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"atomforge {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
