"""Adaptive sampling ("active learning", query by committee) with a real quantum-chemistry
labeller: ``atomforge adaptive-sampling --start START -o RUN``.

Method (M. Gastegger, J. Behler, P. Marquetand, Chem. Sci. 8, 6924 (2017); J. Behler, Int. J.
Quantum Chem. 115, 1032 (2015); DP-GEN's model deviation, L. Zhang et al., Phys. Rev. Materials
3, 023804 (2019)):

0. Seed: ``seed_set.n`` copies of each start structure with Gaussian displacements (or the first
   ``seed_set.n`` frames of the file ``seed_set.structures``, e.g. a short MD) are labelled and a
   committee is trained on them (or on top of ``model``, warm start).
1. MD: R replicas run Langevin dynamics (ASE, the C++ core with per-member forces) at their
   temperatures from where they stopped; a replica stops at the first structure whose calibrated
   max per-atom force deviation max_i c_F eps_i exceeds the threshold (given, or
   ``threshold_factor`` x the median of that quantity over the validation labels), at the
   earliest ``md.min_time_fs`` after its (re)start (at once above ``hard_factor`` x the
   threshold), or after ``md.max_time_fs``.
2. Label the stopping structures (GFN2-xTB by default); a failed calculation is recorded and
   skipped (its replica restarts from its start structure).
3. Retrain the committee on all labels, warm-started from the previous one; back to 1.
   The run ends when the label budget is spent or no replica triggers within ``max_time_fs``.

Replicas and labels run through a ``concurrent.futures`` executor: local processes by default, a
Dask ``distributed`` cluster when a scheduler address is given.

**The run folder is the state.** Every finished piece of work is written atomically as soon as it
exists: each replica's MD result (``iterations/KKKK/replica_RR.json``), each label
(``labels/ID.json``), each model (``models/model_KKKK.afm``); ``state.json`` records the last
completed iteration. ``--resume`` after a kill (even ``kill -9``) at any point reuses what exists
and recomputes only what is missing, with the same seeds, so no label is lost or repeated and the
labelled set and final model equal those of an uninterrupted run. Nothing in the folder is
pickled: JSON, extended XYZ and model files only.

Outputs: ``model.afm`` (the latest committee, calibrated, with its training range),
``labelled.extxyz`` (every labelled structure with energy and forces and what the committee
predicted there), ``history.csv`` (one row per iteration), ``failures.jsonl``,
``labels_vs_time.png`` (labels against simulation time), ``uncertainty_vs_error.png``
(predicted against true error of the labelled structures).

Units: eV, Angstrom, eV/Angstrom, fs, K.
"""
from __future__ import annotations

import csv
import io
import json
import os
import shutil
import signal
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional

import numpy as np

from .._fileio import atomic_write_bytes
from .config import AdaptiveConfigError, load_config
from .workers import frame_atoms, frame_dict, label_structure, make_executor, run_replica

__all__ = ["adaptive_sampling", "AdaptiveConfigError"]

STATE_VERSION = 1


def _write_json(path: Path, obj) -> None:
    atomic_write_bytes(path, json.dumps(obj, indent=1).encode())


def _read_json(path: Path):
    return json.loads(Path(path).read_text())


def _maybe_kill(phase: str, iteration: int, count: int) -> None:
    """Crash-safety test hook: ATOMFORGE_ADAPTIVE_KILL="phase:iteration:count" sends SIGKILL to
    this process when ``count`` pieces of ``phase`` (md, label, train: epochs) of that iteration
    are done. Not for users."""
    spec = os.environ.get("ATOMFORGE_ADAPTIVE_KILL")
    if spec and spec == f"{phase}:{iteration}:{count}":
        os.kill(os.getpid(), signal.SIGKILL)


class AdaptiveSampler:
    """One run folder. Use :func:`adaptive_sampling`."""

    def __init__(self, cfg: dict, start: List, run_dir: Path, log: Callable = print, progress: bool = True):
        self.cfg, self.start, self.run, self.log, self.progress = cfg, start, Path(run_dir), log, progress
        self.elements = sorted({s for a in start for s in a.get_chemical_symbols()},
                               key=lambda s: __import__("ase").data.atomic_numbers[s])
        self.bar = None

    # ------------------------------------------------------------------ files
    def label_path(self, lid: str) -> Path:
        return self.run / "labels" / f"{lid}.json"

    def model_path(self, k: int) -> Path:
        return self.run / "models" / f"model_{k:04d}.afm"

    def iter_dir(self, k: int) -> Path:
        return self.run / "iterations" / f"{k:04d}"

    def labels(self, upto: int) -> List[dict]:
        """Every label of iterations 0..upto in the committed order (seed, then by iteration and
        replica), failed ones included (``ok`` False)."""
        st = self.state
        out = []
        for lid in st["label_order"]:
            rec = _read_json(self.label_path(lid))
            if rec["iteration"] <= upto:
                out.append(rec)
        return out

    # ------------------------------------------------------------------ setup / resume
    def open(self, resume: bool) -> None:
        r = self.run
        if (r / "state.json").exists():
            if not resume:
                raise FileExistsError(f"{r} already holds an adaptive-sampling run: continue it with --resume, or "
                                      f"choose another output folder")
            from .config import DEFAULTS, _merge

            saved = json.loads(json.dumps(_merge(DEFAULTS, _read_json(r / "config.json"))))  # newer keys: defaults
            mine = json.loads(json.dumps(self.cfg))
            diff = sorted(k for k in set(saved) | set(mine) if saved.get(k) != mine.get(k) and k != "max_labels")
            if diff:
                raise AdaptiveConfigError(f"{r}: the configuration differs from the run's ({', '.join(diff)}); "
                                          f"resume with the same settings (see {r / 'config.yaml'}); only "
                                          f"max_labels may change")
            self.state = _read_json(r / "state.json")
            if saved["max_labels"] != mine["max_labels"]:  # a new label budget
                _write_json(r / "config.json", mine)
                import yaml

                atomic_write_bytes(r / "config.yaml", yaml.safe_dump(self.cfg, sort_keys=False).encode())
                st = self.state
                if st["done"] and st["stop_reason"].startswith("label budget") and st["n_ok"] < mine["max_labels"]:
                    st["done"], st["stop_reason"] = False, None
                    _write_json(r / "state.json", st)
            import ase.io

            self.start = ase.io.read(r / "start.extxyz", index=":")
            self.log(f"resuming {r}: {self.state['iteration'] + 1} iteration(s) done, "
                     f"{self.n_ok()} label(s)")
            return
        # a new run (or one killed before its state.json existed: it starts again in place)
        for sub in ("labels", "models", "iterations"):
            (r / sub).mkdir(parents=True, exist_ok=True)
        import ase.io
        import yaml

        seed_structures = self._read_seed_structures()
        buf = io.StringIO()
        ase.io.write(buf, self.start, format="extxyz")
        atomic_write_bytes(r / "start.extxyz", buf.getvalue().encode())
        if seed_structures is not None:  # the run folder keeps its own copy (resume needs no outside file)
            buf = io.StringIO()
            ase.io.write(buf, seed_structures, format="extxyz")
            atomic_write_bytes(r / "seed_structures.extxyz", buf.getvalue().encode())
        atomic_write_bytes(r / "config.yaml", yaml.safe_dump(self.cfg, sort_keys=False).encode())
        _write_json(r / "config.json", self.cfg)
        self.state = {"version": STATE_VERSION, "iteration": -1, "label_order": [], "replicas": None,
                      "total_md_fs": 0.0, "wall_seconds": 0.0, "history": [], "done": False, "stop_reason": None}
        _write_json(r / "state.json", self.state)

    def _read_seed_structures(self) -> Optional[List]:
        """The first seed_set.n frames of seed_set.structures (None when not set), positions only.
        Raises ValueError naming the file (unreadable, empty) or the frame and element (an element
        the start structures do not have: the committee covers the start structures' elements)."""
        path = self.cfg["seed_set"]["structures"]
        if path is None:
            return None
        import ase.io

        try:
            frames = ase.io.read(path, index=f":{int(self.cfg['seed_set']['n'])}")
        except Exception as exc:
            raise ValueError(f"seed_set.structures: cannot read {path}: {exc}") from None
        if not frames:
            raise ValueError(f"seed_set.structures: no structures in {path}")
        out = []
        for k, a in enumerate(frames):
            extra = sorted(set(a.get_chemical_symbols()) - set(self.elements))
            if extra:
                raise ValueError(f"seed_set.structures: {path}, frame {k}: element(s) {', '.join(extra)} not in the "
                                 f"start structures ({', '.join(self.elements)})")
            b = ase.Atoms(numbers=a.numbers, positions=a.positions, cell=a.cell, pbc=a.pbc)
            out.append(b)
        return out

    def n_ok(self) -> int:
        return int(self.state.get("n_ok", 0))

    # ------------------------------------------------------------------ phases
    def _label_all(self, ex, items: List[dict], iteration: int) -> Dict[str, dict]:
        """Label ``items`` (dicts with ``id``, frame, extra fields) through the executor; existing
        label files are reused. Returns id -> record."""
        cfg = self.cfg
        out, todo = {}, []
        for it in items:
            p = self.label_path(it["id"])
            if p.exists():
                out[it["id"]] = _read_json(p)
            else:
                todo.append(it)
        futs = {ex.submit(label_structure, cfg["labeller"], cfg["labeller_kwargs"],
                          {k: it[k] for k in ("numbers", "positions", "cell", "pbc")}): it for it in todo}
        from concurrent.futures import as_completed

        done = len(out)
        for f in as_completed(futs):
            it = futs[f]
            res = f.result()
            if res["ok"] and np.max(np.abs(res["forces"])) > cfg["max_label_force"]:
                res = {"ok": False, "seconds": res["seconds"],
                       "error": f"a force component of {np.max(np.abs(res['forces'])):.4g} eV/A exceeds max_label_force "
                                f"({cfg['max_label_force']:g}): unphysical structure"}
            rec = dict(it)
            rec.update(res)
            rec["iteration"] = iteration
            _write_json(self.label_path(it["id"]), rec)
            out[it["id"]] = rec
            done += 1
            if not res["ok"]:
                self.log(f"label {it['id']} failed and is skipped: {res['error']}")
            if self.bar is not None and res["ok"]:
                self.bar.update(1)
            _maybe_kill("label", iteration, done)
        return out

    def _train(self, k: int, labels: List[dict], init_path: Optional[Path]):
        from ..models import read_model
        from .training import train_committee

        mp = self.model_path(k)
        metrics_path = self.run / "models" / f"metrics_{k:04d}.json"
        if mp.exists() and metrics_path.exists():  # trained before a kill: the same model
            return _read_json(metrics_path)
        ok = [r for r in labels if r["ok"]]
        every = int(self.cfg["training"]["validation_every"])
        valid = np.array([o % every == every // 2 for o in range(len(ok))])
        frames = [{"numbers": np.asarray(r["numbers"]), "positions": np.asarray(r["positions"]),
                   "cell": np.asarray(r["cell"]), "pbc": np.asarray(r["pbc"]), "energy": r["energy"],
                   "forces": np.asarray(r["forces"])} for r in ok]
        init = read_model(init_path) if init_path is not None else None
        counter = {"epoch": 0}

        def on_log(msg):
            counter["epoch"] += 1
            _maybe_kill("train", k, counter["epoch"])

        params, metrics = train_committee(frames, valid, self.cfg, self.elements, seed=self.cfg["seed"] * 7919 + k,
                                          init=init, log=on_log)
        params.metadata.update({"description": f"adaptive sampling iteration {k}: committee of "
                                               f"{params.committee_size} on {metrics['n_train']} labels",
                                "labeller": self.labeller_name})
        from ..models import save_model

        save_model(mp, params)
        _write_json(metrics_path, metrics)
        return metrics

    def threshold(self, metrics: dict) -> float:
        t = self.cfg["trigger"]
        if t["threshold"] is not None:
            return float(t["threshold"])
        u = metrics.get("valid_max_u")
        if u is None or not np.isfinite(u):
            raise ValueError("no validation labels to derive the trigger threshold from: give trigger.threshold "
                             "(eV/Angstrom) or more seed structures")
        return max(float(t["threshold_factor"]) * float(u), float(t["threshold_min"]))

    # ------------------------------------------------------------------ main loop
    def run_all(self) -> dict:
        from .labellers import describe_labeller

        cfg = self.cfg
        self.labeller_name = describe_labeller(cfg["labeller"], cfg["labeller_kwargs"])
        ex, close = make_executor(cfg["workers"], cfg["md"]["replicas"], cfg["scheduler"])
        t_session = time.time()
        if self.progress:
            try:
                from tqdm.auto import tqdm

                self.bar = tqdm(total=cfg["max_labels"], initial=self.n_ok(), desc="labels", unit="label")
            except ImportError:
                self.bar = None
        try:
            while not self.state["done"]:
                k = self.state["iteration"] + 1
                t0 = time.time()
                row = self._seed_iteration(ex) if k == 0 else self._md_iteration(ex, k)
                row["wall_seconds"] = round(self.state["wall_seconds"] + time.time() - t0, 2)
                self._commit(k, row, time.time() - t0)
        finally:
            close()
            if self.bar is not None:
                self.bar.close()
        self.publish(final=True)
        self.log(f"done: {self.state['stop_reason']}; {self.n_ok()} labels, "
                 f"{self.state['total_md_fs'] / 1000:.1f} ps of MD; run folder {self.run}")
        return self.state

    def _seed_iteration(self, ex) -> dict:
        cfg = self.cfg
        n = int(cfg["seed_set"]["n"])
        items = []
        if cfg["seed_set"]["structures"] is not None:
            import ase.io

            for j, b in enumerate(ase.io.read(self.run / "seed_structures.extxyz", index=":")):
                items.append(frame_dict(b, id=f"s00_{j:04d}", replica=-1, md_time_fs=0.0))
        for s, a in enumerate(self.start if not items else []):
            for j in range(n):
                rng = np.random.default_rng([cfg["seed"], 5, s, j])
                b = a.copy()
                if j:  # the first copy is the start structure itself
                    b.positions = b.positions + rng.normal(scale=cfg["seed_set"]["rattle"], size=b.positions.shape)
                items.append(frame_dict(b, id=f"s{s:02d}_{j:04d}", replica=-1, md_time_fs=0.0))
        items = items[:cfg["max_labels"]]
        self.log(f"seed set: labelling {len(items)} structure(s) with {self.labeller_name}")
        t0 = time.time()
        res = self._label_all(ex, items, 0)
        t_label = time.time() - t0
        self.pending_order = [it["id"] for it in items]
        labels = [res[i] for i in self.pending_order]
        t0 = time.time()
        self.log(f"training the first committee of {cfg['network']['committee']} on "
                 f"{sum(r['ok'] for r in labels)} label(s)")
        m = self._train(0, labels, Path(cfg["model"]) if cfg["model"] else None)
        row = {"iteration": 0, "new_labels": sum(r["ok"] for r in labels),
               "failed_labels": sum(not r["ok"] for r in labels), "triggered": 0, "md_time_fs": 0.0,
               "label_seconds": round(t_label, 2), "md_seconds": 0.0, "train_seconds": round(time.time() - t0, 2)}
        row.update(self._model_row(m))
        self.pending_replicas = [dict(frame_dict(self.start[r % len(self.start)]), velocities=None,
                                      temperature=cfg["md"]["temperature"][r % len(cfg["md"]["temperature"])])
                                 for r in range(cfg["md"]["replicas"])]
        return row

    def _model_row(self, m: dict) -> dict:
        cal = m.get("calibration") or {}
        return {"train_forces_mae": m["train_forces_mae"], "valid_forces_mae": m["valid_forces_mae"],
                "c_F": cal.get("forces", float("nan")), "threshold_next": self.threshold(m)}

    def _md_iteration(self, ex, k: int) -> dict:
        from concurrent.futures import as_completed

        cfg = self.cfg
        prev_metrics = _read_json(self.run / "models" / f"metrics_{k - 1:04d}.json")
        thr = self.threshold(prev_metrics)
        model_bytes = self.model_path(k - 1).read_bytes()
        d = self.iter_dir(k)
        d.mkdir(parents=True, exist_ok=True)
        R = cfg["md"]["replicas"]
        results = {}
        todo = []
        for r in range(R):
            p = d / f"replica_{r:02d}.json"
            if p.exists():
                results[r] = _read_json(p)
            else:
                todo.append(r)
        t0 = time.time()
        hard = thr * float(cfg["trigger"]["hard_factor"])
        futs = {ex.submit(run_replica, model_bytes, self.state["replicas"][r], cfg["md"], thr,
                          [cfg["seed"], 11, k, r], hard): r for r in todo}
        for f in as_completed(futs):
            r = futs[f]
            res = f.result()
            _write_json(d / f"replica_{r:02d}.json", res)
            results[r] = res
            _maybe_kill("md", k, len(results))
        t_md = time.time() - t0
        # candidates in replica order, within the label budget
        room = cfg["max_labels"] - self.n_ok()
        items = []
        for r in range(R):
            res = results[r]
            if res["triggered"] and res["candidate"] is not None and len(items) < room:
                c = res["candidate"]
                items.append({**{k2: c[k2] for k2 in ("numbers", "positions", "cell", "pbc")},
                              "id": f"i{k:04d}r{r:02d}", "replica": r, "md_time_fs": c["time_fs"],
                              "temperature": c["temperature"], "predicted_energy": c["energy"],
                              "predicted_forces": c["forces"], "predicted_forces_uncertainty": c["forces_uncertainty"],
                              "predicted_max_u": c["max_u"], "threshold": thr})
        t0 = time.time()
        res_labels = self._label_all(ex, items, k) if items else {}
        t_label = time.time() - t0
        self.pending_order = [it["id"] for it in items]
        new = [res_labels[i] for i in self.pending_order]
        labels = self.labels(k - 1) + new
        t0 = time.time()
        m = self._train(k, labels, self.model_path(k - 1)) if any(r["ok"] for r in new) else None
        t_train = time.time() - t0
        # next replica states
        nxt = []
        labelled = {r["replica"]: r for r in new}
        for r in range(R):
            res = results[r]
            lab = labelled.get(r)
            failed = res["broken"] or (res["triggered"] and lab is not None and not lab["ok"])
            if failed or cfg["md"]["restart"] == "start":
                s = self.start[r % len(self.start)]
                nxt.append(dict(frame_dict(s), velocities=None, temperature=self.state["replicas"][r]["temperature"],
                                resets=self.state["replicas"][r].get("resets", 0) + int(failed)))
            else:
                nxt.append(dict(res["final"], resets=self.state["replicas"][r].get("resets", 0)))
        self.pending_replicas = nxt
        ok_new = [r for r in new if r["ok"]]
        err = [np.max(np.linalg.norm(np.asarray(r["predicted_forces"]) - np.asarray(r["forces"]), axis=1))
               for r in ok_new]
        row = {"iteration": k, "new_labels": len(ok_new), "failed_labels": len(new) - len(ok_new),
               "triggered": sum(bool(results[r]["triggered"]) for r in range(R)),
               "broken": sum(bool(results[r]["broken"]) for r in range(R)),
               "md_time_fs": float(sum(results[r]["time_fs"] for r in range(R))), "threshold": thr,
               "mean_predicted_max_u": float(np.mean([r["predicted_max_u"] for r in ok_new])) if ok_new else float("nan"),
               "mean_true_max_error": float(np.mean(err)) if err else float("nan"),
               "md_seconds": round(t_md, 2), "label_seconds": round(t_label, 2), "train_seconds": round(t_train, 2)}
        if m is None:  # nothing new to learn: keep the previous model
            shutil.copyfile(self.model_path(k - 1), self.model_path(k))
            _write_json(self.run / "models" / f"metrics_{k:04d}.json", prev_metrics)
            m = prev_metrics
        row.update(self._model_row(m))
        return row

    def _commit(self, k: int, row: dict, seconds: float) -> None:
        st = self.state
        new_ok = 0
        for lid in self.pending_order:
            if lid not in st["label_order"]:
                st["label_order"].append(lid)
                new_ok += int(_read_json(self.label_path(lid))["ok"])
        st["n_ok"] = self.n_ok() + new_ok
        row["n_labels"] = st["n_ok"]
        st["total_md_fs"] += row.get("md_time_fs", 0.0)
        row["total_md_time_fs"] = st["total_md_fs"]
        st["wall_seconds"] += seconds
        st["history"].append(row)
        st["replicas"] = self.pending_replicas
        st["iteration"] = k
        if st["n_ok"] >= self.cfg["max_labels"]:
            st["done"], st["stop_reason"] = True, f"label budget spent ({st['n_ok']} labels)"
        elif k >= 3 and all(h.get("new_labels", 1) == 0 and h.get("failed_labels", 0) > 0 for h in st["history"][-3:]):
            st["done"], st["stop_reason"] = True, "three iterations in a row without a successful label"
        elif k > 0 and row["triggered"] == 0:
            st["done"], st["stop_reason"] = True, (f"converged: no replica exceeded the threshold "
                                                   f"{row['threshold']:.3g} eV/A within "
                                                   f"{self.cfg['md']['max_time_fs']:g} fs")
        _write_json(self.run / "state.json", st)
        self.publish(final=False)
        if self.bar is not None:
            self.bar.set_postfix({"iter": k, "MD ps": f"{st['total_md_fs'] / 1000:.1f}",
                                  "thr": f"{row.get('threshold_next', float('nan')):.3f}",
                                  "val F MAE": f"{row.get('valid_forces_mae', float('nan')):.3f}"})
        else:
            self.log(f"iteration {k}: {st['n_ok']} labels, {row.get('triggered', 0)} triggered, MD "
                     f"{st['total_md_fs'] / 1000:.2f} ps, validation force MAE {row.get('valid_forces_mae', float('nan')):.4f} eV/A")

    # ------------------------------------------------------------------ outputs
    def publish(self, final: bool) -> None:
        """model.afm (the last committed iteration's model) and the derived files; idempotent, so
        a kill between the state and these files is repaired by the next publish."""
        k = self.state["iteration"]
        if k >= 0:
            shutil.copyfile(self.model_path(k), self.run / ".model.afm.tmp")
            os.replace(self.run / ".model.afm.tmp", self.run / "model.afm")
        self.write_outputs(final)

    def write_outputs(self, final: bool) -> None:
        import ase.io
        from ase.calculators.singlepoint import SinglePointCalculator

        st = self.state
        recs = self.labels(st["iteration"])
        frames, fails = [], []
        for o, r in enumerate([r for r in recs if r["ok"]]):
            a = frame_atoms(r)
            a.calc = SinglePointCalculator(a, energy=r["energy"], forces=np.asarray(r["forces"]))
            a.info.update(label_id=r["id"], iteration=r["iteration"], replica=r["replica"],
                          md_time_fs=r.get("md_time_fs", 0.0), labeller=self.labeller_name)
            if "predicted_max_u" in r:
                a.info["predicted_max_force_uncertainty"] = r["predicted_max_u"]
                a.info["true_max_force_error"] = float(np.max(np.linalg.norm(
                    np.asarray(r["predicted_forces"]) - np.asarray(r["forces"]), axis=1)))
            frames.append(a)
        for r in recs:
            if not r["ok"]:
                fails.append({"id": r["id"], "iteration": r["iteration"], "error": r["error"]})
        buf = io.StringIO()
        if frames:
            ase.io.write(buf, frames, format="extxyz")
        atomic_write_bytes(self.run / "labelled.extxyz", buf.getvalue().encode())
        atomic_write_bytes(self.run / "failures.jsonl", "".join(json.dumps(f) + "\n" for f in fails).encode())
        hist = st["history"]
        if hist:
            keys = []
            for h in hist:
                keys += [x for x in h if x not in keys]
            sbuf = io.StringIO()
            w = csv.DictWriter(sbuf, fieldnames=keys)
            w.writeheader()
            w.writerows(hist)
            atomic_write_bytes(self.run / "history.csv", sbuf.getvalue().encode())
        if final or st["iteration"] % 10 == 0:
            self.plots(recs)

    def plots(self, recs) -> None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        hist = self.state["history"]
        fig, ax = plt.subplots(figsize=(5, 3.6))
        ax.step([h["total_md_time_fs"] / 1000 for h in hist], [h["n_labels"] for h in hist], where="post")
        ax.set_xlabel("simulation time, all replicas (ps)")
        ax.set_ylabel("labelled structures")
        ax.set_title(f"adaptive sampling: {self.cfg['md']['replicas']} replicas")
        fig.tight_layout()
        fig.savefig(self.run / "labels_vs_time.png", dpi=110)
        plt.close(fig)
        md = [r for r in recs if r["ok"] and "predicted_max_u" in r]
        fig, ax = plt.subplots(figsize=(5, 4))
        if md:
            pu = np.array([r["predicted_max_u"] for r in md])
            te = np.array([np.max(np.linalg.norm(np.asarray(r["predicted_forces"]) - np.asarray(r["forces"]), axis=1))
                           for r in md])
            it = np.array([r["iteration"] for r in md])
            sc = ax.scatter(pu, te, c=it, s=10, cmap="viridis")
            fig.colorbar(sc, ax=ax, label="iteration")
            hi = max(pu.max(), te.max()) * 1.05
            ax.plot([0, hi], [0, hi], "k--", lw=1, label="y = x")
            ax.legend(loc="upper left")
            if len(md) > 2:
                from scipy.stats import spearmanr

                ax.set_title(f"labelled structures (Spearman {spearmanr(pu, te)[0]:.2f})")
        ax.set_xlabel("predicted max_i c_F eps_i at the trigger (eV/A)")
        ax.set_ylabel("true max_i |F_i - F_i^ref| (eV/A)")
        fig.tight_layout()
        fig.savefig(self.run / "uncertainty_vs_error.png", dpi=110)
        plt.close(fig)


def adaptive_sampling(start, run_dir, config=None, resume: bool = False, log: Callable = print,
                      progress: bool = True, **overrides) -> dict:
    """Run (or resume) adaptive sampling; returns the final state dict (``history``, ``stop_reason``).

    start: a structure file ASE reads (every frame is a start structure) or a list of ase.Atoms.
    config: YAML path or dict (:mod:`atomforge.active.config`); overrides: nested dicts or the
    top-level keys (``max_labels=50``, ``md={"replicas": 2}``, ...). With ``resume``, the start
    structures and configuration are read from the run folder (given ones must agree).
    Raises AdaptiveConfigError for bad settings, FileExistsError for an existing run without
    ``resume``, ValueError for an unusable labeller or start file.
    """
    import ase.io

    from .config import DEFAULTS, _merge, validate

    run = Path(run_dir)
    if resume and (run / "config.json").exists():
        # the run's own settings; anything given again must agree (max_labels may grow)
        # (keys added since the run began take their defaults)
        base = _merge(DEFAULTS, json.loads((run / "config.json").read_text()))
        if isinstance(config, dict):
            base = _merge(base, config)
        elif config is not None:
            user = load_config(config)
            base = _merge(base, {k: v for k, v in user.items() if v != DEFAULTS.get(k)})
        cfg = validate(_merge(base, overrides))
    elif isinstance(config, dict):
        cfg = validate(_merge(_merge(DEFAULTS, config), overrides))
    else:
        cfg = load_config(config, overrides)
    if resume and (run / "start.extxyz").exists():
        frames = ase.io.read(run / "start.extxyz", index=":")
    elif isinstance(start, (list, tuple)):
        frames = [a.copy() for a in start]
    else:
        if start is None:
            raise ValueError("--start is required (a structure file ASE reads)")
        try:
            frames = ase.io.read(start, index=":")
        except Exception as exc:
            raise ValueError(f"cannot read start structures from {start}: {exc}") from None
    if not frames:
        raise ValueError(f"no structures in {start}")
    from .labellers import check_labeller

    check_labeller(cfg["labeller"], cfg["labeller_kwargs"])
    s = AdaptiveSampler(cfg, frames, run, log=log, progress=progress)
    s.open(resume)
    return s.run_all()
