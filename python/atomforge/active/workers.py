"""The tasks adaptive sampling hands to its executor (local processes or a Dask cluster): an MD
replica with the committee, and one reference calculation. Top-level functions of plain data
(dicts of lists and arrays, model bytes), so that any ``concurrent.futures`` executor can run them
in another process or on another machine; each is deterministic in its inputs.
"""
from __future__ import annotations

import time
from concurrent.futures import Executor, Future
from typing import Dict, Optional

import numpy as np


class InlineExecutor(Executor):
    """Runs every task at submission, in this process (``workers: 0``; for debugging and tests)."""

    def submit(self, fn, /, *args, **kwargs):
        f = Future()
        try:
            f.set_result(fn(*args, **kwargs))
        except BaseException as exc:  # delivered through the future, as other executors do
            f.set_exception(exc)
        return f


def frame_dict(atoms, **extra) -> Dict:
    """Plain-data form of an ase.Atoms (lists, JSON-friendly)."""
    d = {"numbers": [int(z) for z in atoms.numbers], "positions": np.asarray(atoms.positions).tolist(),
         "cell": np.asarray(atoms.cell).tolist(), "pbc": [bool(p) for p in atoms.pbc]}
    d.update(extra)
    return d


def frame_atoms(d: Dict):
    """ase.Atoms from a frame dict: numbers (N,) int, positions (N, 3) Angstrom, cell (3, 3)
    Angstrom, pbc (3,) bool (the plain-data form frames travel in between workers)."""
    from ase import Atoms

    return Atoms(numbers=d["numbers"], positions=d["positions"], cell=d["cell"], pbc=d["pbc"])


def run_replica(model_bytes: bytes, state: Dict, md: Dict, threshold: float, seed,
                hard_threshold: float = float("inf")) -> Dict:
    """Langevin MD of one replica with the committee until its calibrated max per-atom force
    deviation exceeds ``threshold`` (eV/Angstrom; from ``md["min_time_fs"]`` on) or
    ``hard_threshold`` (at any time), or ``md["max_time_fs"]`` has passed.

    state: ``numbers``, ``positions`` (Angstrom), ``cell``, ``pbc``, ``temperature`` (K),
    ``velocities`` (Angstrom/fs in ASE units, or None: Maxwell-Boltzmann at the temperature,
    seeded, without centre-of-mass motion and rotation). md: ``timestep_fs``, ``friction_per_fs``,
    ``max_time_fs``, ``min_time_fs`` (no trigger before), ``check_every``. seed: sequence of ints for numpy's default_rng (velocities
    and Langevin noise).

    Returns ``triggered``, ``broken`` (the model failed: non-finite result or an evaluation error;
    the replica should restart), ``steps``, ``time_fs``, ``final`` (state to continue from),
    ``candidate`` (the triggering structure with the committee's ``energy``, ``forces``,
    ``forces_uncertainty`` (calibrated, eV/Angstrom), ``max_u``) or None, ``max_u_trace``
    (max_i eps_i at every check), ``extrapolating_steps`` and ``seconds``.
    """
    from ase import units
    from ase.constraints import FixCom
    from ase.md.langevin import Langevin
    from ase.md.velocitydistribution import Stationary, ZeroRotation

    from .. import load
    from ..ase import AtomForgeCalculator

    t0 = time.time()
    pot = load(model_bytes)
    pot.warn_extrapolation = False
    atoms = frame_atoms(state)
    rng = np.random.default_rng([int(s) for s in seed])
    T = float(state["temperature"])
    if state.get("velocities") is None:
        try:
            from ase.md.velocitydistribution import thermalize_momenta
        except ImportError:  # ASE < 3.29
            from ase.md.velocitydistribution import MaxwellBoltzmannDistribution as thermalize_momenta
        thermalize_momenta(atoms, temperature_K=T, rng=rng)
        Stationary(atoms)
        if not atoms.pbc.any():
            ZeroRotation(atoms)
    else:
        atoms.set_velocities(np.asarray(state["velocities"], dtype=float))
    if not atoms.pbc.any():
        atoms.set_constraint(FixCom())
    calc = AtomForgeCalculator(pot, uncertainty=True, threads=1)
    atoms.calc = calc
    dyn = Langevin(atoms, timestep=md["timestep_fs"] * units.fs, temperature_K=T,
                   friction=md["friction_per_fs"] / units.fs, fixcm=False, rng=rng)
    n_max = max(1, int(round(md["max_time_fs"] / md["timestep_fs"])))
    every = int(md["check_every"])
    out = {"triggered": False, "broken": False, "candidate": None, "max_u_trace": [], "extrapolating_steps": 0}
    step = 0
    try:
        atoms.get_forces()
        while step < n_max:
            dyn.run(1)
            step += 1
            r = calc.results
            if step % every:
                continue
            u = float(r["max_forces_uncertainty"])
            out["max_u_trace"].append(u)
            if not np.isfinite(u) or not np.all(np.isfinite(atoms.positions)):
                out["broken"] = True
                break
            if u > hard_threshold or (u > threshold and step * md["timestep_fs"] >= md.get("min_time_fs", 0.0)):
                out["triggered"] = True
                out["candidate"] = frame_dict(atoms, energy=float(r["energy"]),
                                              forces=np.asarray(r["forces"]).tolist(),
                                              forces_uncertainty=np.asarray(r["forces_uncertainty"]).tolist(),
                                              max_u=u, step=step, time_fs=step * md["timestep_fs"],
                                              temperature=T)
                break
    except (ValueError, RuntimeError) as exc:  # e.g. coincident atoms: the replica blew up
        out["broken"] = True
        out["error"] = str(exc)
    out["extrapolating_steps"] = int(pot.extrapolation_stats["extrapolating_evaluations"])
    out["steps"] = step
    out["time_fs"] = step * float(md["timestep_fs"])
    out["final"] = frame_dict(atoms, velocities=atoms.get_velocities().tolist(), temperature=T)
    out["seconds"] = time.time() - t0
    return out


def label_structure(spec: str, kwargs: Dict, frame: Dict) -> Dict:
    """One reference calculation (:func:`atomforge.active.labellers.label`): returns ``ok``,
    ``energy`` (eV), ``forces`` (eV/Angstrom, lists) or ``error`` (the failure's message), and
    ``seconds``."""
    from .labellers import LabelError, label

    t0 = time.time()
    try:
        e, f = label(spec, kwargs, frame["numbers"], frame["positions"], frame["cell"], frame["pbc"])
        return {"ok": True, "energy": float(e), "forces": np.asarray(f).tolist(), "seconds": time.time() - t0}
    except LabelError as exc:
        return {"ok": False, "error": str(exc), "seconds": time.time() - t0}


def _exit_with_parent(parent: int) -> None:
    """Worker initializer: a daemon thread ends this worker when the sampling process is gone
    (killed, even with SIGKILL), so that no orphaned workers keep running."""
    import os
    import threading

    def watch():
        while True:
            time.sleep(1.0)
            if os.getppid() != parent:
                os._exit(0)

    threading.Thread(target=watch, daemon=True).start()


def make_executor(workers: Optional[int], replicas: int, scheduler: Optional[str] = None):
    """(executor, closer): a Dask ``distributed`` client's executor when ``scheduler`` (an
    address) is given, in-process when ``workers == 0``, else a local process pool of
    ``workers`` (None: min(replicas, CPU cores)) processes started with 'spawn'."""
    if scheduler:
        try:
            from distributed import Client
        except ImportError:
            raise ValueError("a scheduler address needs Dask: pip install 'atomforge[dask]'") from None
        client = Client(scheduler)
        return client.get_executor(pure=False), client.close
    if workers == 0:
        return InlineExecutor(), lambda: None
    import multiprocessing
    import os
    from concurrent.futures import ProcessPoolExecutor

    n = workers or max(1, min(replicas, os.cpu_count() or 1))
    ex = ProcessPoolExecutor(max_workers=n, mp_context=multiprocessing.get_context("spawn"),
                             initializer=_exit_with_parent, initargs=(os.getpid(),))
    return ex, lambda: ex.shutdown(wait=True, cancel_futures=True)
