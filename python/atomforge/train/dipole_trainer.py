"""Training of charge/dipole models (``model: dipole``): configuration, run folder, checkpoints,
resume, metrics and plots, as for energy models (:mod:`atomforge.train.trainer`).

Configuration (YAML or dict; every key optional except ``data``)::

    model: dipole
    data: [run_01.xyz, run_02.xyz]   # one path or a list (concatenated); CC dipole files, extended
                                     #   XYZ / ASE files with a dipole (info 'dipole' or calculator),
                                     #   total charge from the file (CC 'charge Q', extxyz 'charge=')
    test_data: run_04.xyz            # path or list; else test_fraction of data
    data_format: null                # null = detect (ccdipole, ase, ...)
    length_unit: null
    dipole_unit: null                # CC dipole files: default e*a0 (e*bohr | debye | e*angstrom)
    validation_fraction: 0.05
    test_fraction: 0.1
    seed: 0
    descriptor: {type: acsf, ...}    # as for energy models (atomforge.train.config)
    descriptor_from: null            # a model file whose descriptor is reused (e.g. an imported
                                     #   RuNNer network, for a like-for-like comparison)
    network: {hidden: [30, 30], activation: tanh, committee: 1, shared: false}
    charges:
      scheme: weighted               # weighted | uniform (atomforge/charges.hpp)
      weight_hidden: [16]            # hidden widths of the weight networks (weighted)
      charge_scale: 1.0              # e per network output
    training:
      epochs: 300
      batch_size: 32                 # frames per step
      learning_rate: 0.001
      lr_schedule: cosine            # cosine | exponential | plateau
      lr_factor: 0.5
      lr_patience: 10
      min_learning_rate: 1.0e-5
      dipole_weight: 1.0             # loss = w_mu mean((dmu/sigma_mu)^2) + w_q mean((dq/0.1 e)^2)
      charge_weight: 0.0             #   (charges only where the data have them)
      early_stopping_patience: 100
      dtype: float64
      threads: 0
      max_minutes: 30.0

Run folder: config.yaml, split.json, checkpoint.pt (every epoch; ``resume`` continues), model.afm
(best validation loss), metrics.json (test and validation errors of model.afm evaluated by the
C++ core, in e*Angstrom, e*a0 and Debye), history.csv, learning_curve.png, parity.png.
"""
from __future__ import annotations

import copy
import csv
import json
import time
from pathlib import Path
from typing import Any, Dict, List

import numpy as np

from .config import ConfigError, _check_type, _merge, descriptor_defaults
from .trainer import _clear_input_shift, _exported, split_shift

DIPOLE_DEFAULTS: Dict[str, Any] = {
    "model": "dipole",
    "data": None,
    "test_data": None,
    "data_format": None,
    "length_unit": None,
    "dipole_unit": None,
    "validation_fraction": 0.05,
    "test_fraction": 0.1,
    "seed": 0,
    "descriptor": descriptor_defaults("acsf"),
    "descriptor_from": None,
    "network": {"hidden": [30, 30], "activation": "tanh", "committee": 1, "shared": False},
    "charges": {"scheme": "weighted", "weight_hidden": [16], "charge_scale": 1.0},
    "training": {"epochs": 300, "batch_size": 32, "learning_rate": 0.001, "lr_schedule": "cosine",
                 "lr_factor": 0.5, "lr_patience": 10, "min_learning_rate": 1.0e-5, "dipole_weight": 1.0,
                 "charge_weight": 0.0, "early_stopping_patience": 100, "dtype": "float64", "threads": 0,
                 "max_minutes": 30.0},
}

_CHOICES = {"network.activation": ("tanh", "silu", "softplus", "sigmoid"), "charges.scheme": ("weighted", "uniform"),
            "training.lr_schedule": ("cosine", "exponential", "plateau"), "training.dtype": ("float64", "float32")}
_POSITIVE = {"network.committee", "training.epochs", "training.batch_size", "training.learning_rate",
             "training.early_stopping_patience", "training.lr_patience", "charges.charge_scale"}
_NONNEG = {"training.dipole_weight", "training.charge_weight", "training.threads", "training.min_learning_rate",
           "seed"}


def _paths(value, key: str) -> List[str]:
    if value is None:
        return []
    items = value if isinstance(value, list) else [value]
    for v in items:
        if not isinstance(v, str):
            raise ConfigError(f"configuration key {key!r}: {v!r} is not a path")
        if not Path(v).exists():
            raise ConfigError(f"configuration key {key!r}: {v} does not exist")
    return list(items)


def validate_dipole_config(cfg: dict) -> dict:
    """Check every key of a dipole configuration; return it. Raises ConfigError naming the key."""
    def walk(d, defaults, prefix=""):
        for k, v in d.items():
            name = prefix + k
            if name == "descriptor":
                walk(v, descriptor_defaults(v.get("type", "acsf")), name + ".")
                continue
            if isinstance(defaults.get(k), dict):
                walk(v, defaults[k], name + ".")
                continue
            if name not in ("data", "test_data"):
                _check_type(name, v, defaults.get(k))
            if name in _CHOICES and v not in _CHOICES[name]:
                raise ConfigError(f"configuration key {name!r}: {v!r} is not one of {_CHOICES[name]}")
            if name in _POSITIVE and v is not None and not v > 0:
                raise ConfigError(f"configuration key {name!r} must be positive, got {v!r}")
            if name in _NONNEG and v is not None and v < 0:
                raise ConfigError(f"configuration key {name!r} must be >= 0, got {v!r}")
    walk(cfg, DIPOLE_DEFAULTS)
    if cfg["model"] != "dipole":
        raise ConfigError(f"configuration key 'model': {cfg['model']!r} is not 'dipole'")
    if not _paths(cfg["data"], "data"):
        raise ConfigError("configuration key 'data' (training data path or list of paths) is required")
    _paths(cfg["test_data"], "test_data")
    if cfg["descriptor_from"] is not None and not Path(cfg["descriptor_from"]).is_file():
        raise ConfigError(f"configuration key 'descriptor_from': {cfg['descriptor_from']} is not a file")
    if not 0 < cfg["validation_fraction"] < 1:
        raise ConfigError("configuration key 'validation_fraction' must be in (0, 1)")
    if cfg["test_data"] is None and not 0 < cfg["test_fraction"] < 1:
        raise ConfigError("configuration key 'test_fraction' must be in (0, 1) when no test_data is given")
    if cfg["training"]["dipole_weight"] == 0 and cfg["training"]["charge_weight"] == 0:
        raise ConfigError("configuration keys 'training.dipole_weight' and 'training.charge_weight' are both 0")
    if cfg["dipole_unit"] is not None:
        from ..units import dipole_unit_factor
        try:
            dipole_unit_factor(cfg["dipole_unit"], "configuration key 'dipole_unit'")
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
    d = cfg["descriptor"]
    from ..descriptors import descriptor_class

    try:
        descriptor_class(d["type"]).from_config(d, ["H"])
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"configuration key 'descriptor' ({d['type']}): {exc}") from None
    if cfg["network"]["shared"] and d["type"] == "acsf" and cfg["descriptor_from"] is None:
        raise ConfigError("configuration key 'network.shared': a shared network needs a descriptor with the same "
                          "features for every element (descriptor.type gmp)")
    return cfg


def load_dipole_config(config=None, overrides: dict = None) -> dict:
    """Defaults <- YAML file or dict <- overrides; validated."""
    import yaml

    cfg = copy.deepcopy(DIPOLE_DEFAULTS)
    if isinstance(config, dict):
        cfg = _merge(cfg, config, "")
    elif config is not None:
        try:
            user = yaml.safe_load(Path(config).read_text()) or {}
        except OSError as exc:
            raise ConfigError(f"cannot read configuration file {config}: {exc.strerror}") from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"{config}: invalid YAML: {exc}") from None
        if not isinstance(user, dict):
            raise ConfigError(f"{config}: the configuration must be a mapping of keys")
        cfg = _merge(cfg, user, "")
    if overrides:
        cfg = _merge(cfg, {k: v for k, v in overrides.items() if v is not None}, "")
    return validate_dipole_config(cfg)


def is_dipole_config(config=None, overrides: dict = None) -> bool:
    """True when a configuration (path, dict or None) with overrides asks for ``model: dipole``."""
    if overrides and overrides.get("model") is not None:
        return overrides["model"] == "dipole"
    if isinstance(config, dict):
        return config.get("model") == "dipole"
    if config is not None:
        import yaml
        try:
            user = yaml.safe_load(Path(config).read_text()) or {}
        except (OSError, yaml.YAMLError):
            return False  # the energy-model loader reports the problem
        return isinstance(user, dict) and user.get("model") == "dipole"
    return False


def load_dipole_data(paths, cfg: dict, log=print):
    """Concatenated Dataset of ``paths`` (str or list) with dipoles (e*Angstrom) and total charges
    (0 where a file gives none). Lengths are never guessed: files without units (XYZ) need
    ``length_unit`` (file key or configuration); their energies, unused here, are read as eV.
    Raises ValueError naming a file without dipoles."""
    from ..data import Dataset, detect_format, load_dataset

    parts = []
    for p in ([paths] if isinstance(paths, str) else paths):
        cc = (cfg["data_format"] or detect_format(p)) == "ccdipole"
        ds = load_dataset(p, cfg["data_format"], length_unit=cfg["length_unit"], dipole_unit=cfg["dipole_unit"],
                          energy_unit=None if cc else "eV", log=log)
        if ds.dipole is None:
            raise ValueError(f"{p}: the data have no dipoles (CC 'dipole x y z', extended XYZ dipole=, or a "
                             f"calculator's dipole), which dipole training needs")
        if ds.total_charge is None:
            ds.total_charge = np.zeros(len(ds))
        ds.energy = ds.forces = ds.virial = None
        parts.append(ds)
    return parts[0] if len(parts) == 1 else Dataset.concatenate(parts)


class DipoleTrainer:
    """Train a dipole model from a validated configuration into ``run_dir`` (see module docstring).

    Raises ConfigError for a bad configuration before any work, ValueError for bad data.
    """

    def __init__(self, cfg: dict, run_dir, progress: bool = True, log=print):
        self.cfg = validate_dipole_config(cfg)
        self.run = Path(run_dir)
        self.progress = progress
        self.log = log

    def _prepare(self):
        import torch
        from ase.data import chemical_symbols

        from ..descriptors import descriptor_class
        from .dipole import DipoleStore
        from .trainer import make_split

        cfg, tr = self.cfg, self.cfg["training"]
        if tr["threads"]:
            torch.set_num_threads(tr["threads"])
        self.dtype = torch.float64 if tr["dtype"] == "float64" else torch.float32
        data = load_dipole_data(cfg["data"], cfg, self.log)
        test = load_dipole_data(cfg["test_data"], cfg, self.log) if cfg["test_data"] else None
        self.split = make_split(len(data), cfg, test is not None)
        self.train_ds, self.valid_ds = data.subset(self.split["train"]), data.subset(self.split["valid"])
        self.test_ds = test if test is not None else data.subset(self.split["test"])
        zs = sorted(set(int(z) for z in data.elements) | (set(int(z) for z in test.elements) if test else set()))
        syms = [chemical_symbols[z] for z in zs]
        if cfg["descriptor_from"]:
            from ..models import read_model
            self.sf = read_model(cfg["descriptor_from"]).descriptor_object()
            missing = [s for s in syms if s not in self.sf.elements]
            if missing:
                raise ValueError(f"{cfg['descriptor_from']}: its descriptor does not cover {missing} of the data")
        else:
            d = cfg["descriptor"]
            self.sf = descriptor_class(d["type"]).from_config(d, syms)
            self.sf.check_training_elements(syms)
        self.log(f"descriptor: {self.sf}")
        self.log(f"data: {len(self.train_ds)} train / {len(self.valid_ds)} validation / {len(self.test_ds)} test frames")
        self.train_f = DipoleStore(self.sf, self.train_ds, self.dtype)
        self.valid_f = DipoleStore(self.sf, self.valid_ds, self.dtype)
        ne, F = len(self.sf.elements), self.sf.n_features
        shift, scale = np.zeros((ne, F)), np.ones((ne, F))
        G, sp = self.train_f.G64, self.train_f.species.numpy()
        for k in range(ne):
            rows = G if cfg["network"]["shared"] else G[sp == k]
            if len(rows):
                shift[k] = rows.mean(axis=0)
                std = rows.std(axis=0)
                scale[k] = np.where(std > 1e-12, 1.0 / np.where(std > 1e-12, std, 1.0), 1.0)
        # features far from 0 relative to their spread are centred in float64 before the cast to the
        # training dtype (as the energy trainer does: atomforge.train.trainer.split_shift)
        self.input_shift = split_shift(shift, scale)
        self.train_f.centre(self.input_shift)
        self.valid_f.centre(self.input_shift)
        self.stats = {"shift": shift - self.input_shift, "scale": scale, "reference": self._reference_charges(ne)}
        self.sigma = float(np.std(self.train_ds.dipole - self.train_ds.dipole.mean(axis=0))) or 1.0

    def _reference_charges(self, ne: int) -> np.ndarray:
        """Per-element charges fitted to the training dipoles by linear least squares with the
        uniform scheme: mu_b = sum_k ref_k sum_{i in b, k} (r_i - rbar_b) + Q_b rbar_b."""
        ds, sf = self.train_ds, self.sf
        A = np.zeros((3 * len(ds), ne))
        y = np.zeros(3 * len(ds))
        for b in range(len(ds)):
            r = ds.positions[b]
            rbar = r.mean(axis=0)
            k = sf.species_indices(np.asarray(ds.numbers[b], dtype=np.int64))
            for e in range(ne):
                A[3 * b:3 * b + 3, e] = (r[k == e] - rbar).sum(axis=0)
            y[3 * b:3 * b + 3] = ds.dipole[b] - ds.total_charge[b] * rbar
        ref, *_ = np.linalg.lstsq(A, y, rcond=None)
        return ref

    def _loss(self, model, b):
        import torch

        tr = self.cfg["training"]
        q, mu = model(b)
        loss = tr["dipole_weight"] * torch.mean(((mu - b["dipole"]) / self.sigma) ** 2)
        if tr["charge_weight"] > 0 and b["charges"] is not None:
            loss = loss + tr["charge_weight"] * torch.mean(((q - b["charges"]) / 0.1) ** 2)
        return loss, q, mu

    def _evaluate_torch(self, model, store):
        import torch

        bs = self.cfg["training"]["batch_size"] * 4
        tot, mus = 0.0, []
        with torch.no_grad():
            for s in range(0, len(store), bs):
                idx = np.arange(s, min(s + bs, len(store)))
                loss, _, mu = self._loss(model, store.batch(idx))
                tot += loss.item() * len(idx)
                mus.append(mu.double().numpy())
        mu = np.concatenate(mus)
        return tot / len(store), float(np.sqrt(np.mean((mu - store.dipole.double().numpy()) ** 2)))

    def run_training(self, resume: bool = False) -> dict:
        import torch
        import yaml

        from .dipole import TorchDipole
        from .trainer import _atomic_write_text, _torch_save_atomic, scheduled_lr

        self.run.mkdir(parents=True, exist_ok=True)
        ckpt_path = self.run / "checkpoint.pt"
        if ckpt_path.exists() and not resume:
            raise FileExistsError(f"{self.run} already holds a training run: use --resume to continue it, "
                                  f"or choose another output folder")
        cfg, tr, net, ch = self.cfg, self.cfg["training"], self.cfg["network"], self.cfg["charges"]
        torch.manual_seed(cfg["seed"])
        self._prepare()
        _atomic_write_text(self.run / "config.yaml", yaml.safe_dump(cfg, sort_keys=False))
        _atomic_write_text(self.run / "split.json", json.dumps({k: v.tolist() for k, v in self.split.items()}))
        model = TorchDipole(self.sf, net["hidden"], net["activation"], net["committee"], self.stats["shift"],
                            self.stats["scale"], self.stats["reference"], ch["charge_scale"], ch["scheme"],
                            ch["weight_hidden"], seed=cfg["seed"], shared=net["shared"]).to(self.dtype)
        opt = torch.optim.Adam(model.parameters(), lr=tr["learning_rate"])
        plateau = tr["lr_schedule"] == "plateau"
        sched = (torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=tr["lr_factor"], patience=tr["lr_patience"],
                                                            min_lr=tr["min_learning_rate"]) if plateau else None)
        n_sched, fitted = tr["epochs"], False
        history: List[dict] = []
        best = {"loss": float("inf"), "state": None, "epoch": -1}
        start_epoch = 0
        if resume and ckpt_path.exists():
            ck = torch.load(ckpt_path, weights_only=False)
            if ck["config"] != cfg:
                raise ValueError(f"{ckpt_path}: the configuration differs from the checkpoint's; resume with the "
                                 f"same configuration (see {self.run / 'config.yaml'})")
            model.load_state_dict(ck["model"])
            _clear_input_shift(model, self.input_shift)  # a checkpoint from before the centring
            opt.load_state_dict(ck["optimizer"])
            if plateau:
                sched.load_state_dict(ck["scheduler"])
            else:
                n_sched, fitted = ck["scheduler"]["schedule_epochs"], ck["scheduler"]["fitted"]
            history, best, start_epoch = ck["history"], ck["best"], ck["epoch"] + 1
            torch.set_rng_state(ck["torch_rng"])
            self.log(f"resumed from {ckpt_path} after epoch {ck['epoch']}")
        bar = None
        if self.progress:
            try:
                from tqdm.auto import tqdm
                bar = tqdm(total=tr["epochs"], initial=start_epoch, desc="training", unit="epoch")
            except ImportError:
                bar = None
        t_start = time.time()
        stop_reason = "epochs"
        for epoch in range(start_epoch, tr["epochs"]):
            if not plateau:
                for g in opt.param_groups:
                    g["lr"] = scheduled_lr(tr, epoch, n_sched)
            order = np.random.default_rng([cfg["seed"], epoch]).permutation(len(self.train_f))
            model.train()
            tot = 0.0
            for s in range(0, len(order), tr["batch_size"]):
                idx = order[s:s + tr["batch_size"]]
                opt.zero_grad()
                loss, _, _ = self._loss(model, self.train_f.batch(idx))
                loss.backward()
                opt.step()
                tot += loss.item() * len(idx)
            model.eval()
            vloss, vrmse = self._evaluate_torch(model, self.valid_f)
            if plateau:
                sched.step(vloss)
            elif tr["max_minutes"] and epoch - start_epoch >= 2:
                per_epoch = (time.time() - t_start) / (epoch - start_epoch + 1)
                left = tr["max_minutes"] * 60 - (time.time() - t_start)
                n_sched = min(tr["epochs"], max(epoch + 2, epoch + 1 + int(0.98 * left / per_epoch)))
                if not fitted and n_sched < tr["epochs"]:
                    self.log(f"learning-rate schedule fitted to the time limit: ~{n_sched} epochs")
                    fitted = True
            rec = {"epoch": epoch, "train_loss": tot / len(order), "valid_loss": vloss,
                   "learning_rate": opt.param_groups[0]["lr"], "valid_dipole_rmse": vrmse,
                   "seconds": round(time.time() - t_start, 2)}
            history.append(rec)
            if vloss < best["loss"]:
                best = {"loss": vloss, "epoch": epoch,
                        "state": {k: v.detach().clone() for k, v in model.state_dict().items()}}
            _torch_save_atomic({"config": cfg, "epoch": epoch, "model": model.state_dict(),
                                "optimizer": opt.state_dict(),
                                "scheduler": sched.state_dict() if plateau else
                                {"schedule_epochs": n_sched, "fitted": fitted},
                                "history": history, "best": best, "torch_rng": torch.get_rng_state()}, ckpt_path)
            if bar is not None:
                bar.set_postfix({"loss": f"{rec['train_loss']:.3g}", "val": f"{vloss:.3g}",
                                 "mu_rmse_eA": f"{vrmse:.4f}"})
                bar.update(1)
            if epoch - best["epoch"] >= tr["early_stopping_patience"]:
                stop_reason = "early stopping"
                break
            if not plateau and epoch + 1 >= n_sched:
                stop_reason = "time limit (schedule fitted)" if fitted else "epochs"
                break
            if tr["max_minutes"] and (time.time() - t_start) / 60 > tr["max_minutes"]:
                stop_reason = "time limit"
                break
        if bar is not None:
            bar.close()
        model.load_state_dict(best["state"])
        return self._finish(model, history, best, stop_reason, time.time() - t_start)

    def _finish(self, model, history, best, stop_reason, seconds) -> dict:
        from .. import load
        from ..models import save_model
        from .dipole import DIPOLE_UNITS, dipole_metrics, predict_dipoles
        from .trainer import _atomic_write_text

        meta = {"training_data_sha256": self.train_ds.sha256(),
                "source": f"atomforge train (dipole) on {self.cfg['data']}",
                "description": f"{self.cfg['charges']['scheme']} charge scheme, "
                               f"{'shared' if self.cfg['network']['shared'] else 'per-element'} networks on "
                               f"{self.sf.type}, trained {len(history)} epochs (best {best['epoch']})"}
        save_model(self.run / "model.afm", _exported(model, self.input_shift).to_parameters(meta))
        pot = load(self.run / "model.afm")
        mu_t, q_t = predict_dipoles(pot, self.test_ds)
        mu_v, q_v = predict_dipoles(pot, self.valid_ds)
        test_m = dipole_metrics(mu_t, self.test_ds.dipole, q_t if self.test_ds.charges is not None else None,
                                self.test_ds.charges)
        valid_m = dipole_metrics(mu_v, self.valid_ds.dipole, q_v if self.valid_ds.charges is not None else None,
                                 self.valid_ds.charges)
        qsum = max(abs(float(np.sum(q)) - float(Q)) for q, Q in zip(q_t, self.test_ds.total_charge))
        test_m["max_total_charge_error"] = qsum
        metrics = {"units": DIPOLE_UNITS, "test": test_m, "validation": valid_m,
                   "training": {"epochs_run": len(history), "best_epoch": best["epoch"], "stop_reason": stop_reason,
                                "wall_seconds": round(seconds, 1), "n_train": len(self.train_ds),
                                "n_validation": len(self.valid_ds), "n_test": len(self.test_ds)},
                   "evaluated_by": "atomforge C++ core (model.afm)"}
        _atomic_write_text(self.run / "metrics.json", json.dumps(metrics, indent=2))
        with open(self.run / "history.csv", "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=list(history[0].keys()))
            w.writeheader()
            w.writerows(history)
        plot_dipole_learning_curve(history, self.run / "learning_curve.png")
        plot_dipole_parity(mu_t, self.test_ds.dipole, self.run / "parity.png",
                           title=f"test set ({len(self.test_ds)} frames)")
        return metrics


def plot_dipole_learning_curve(history: List[dict], path) -> None:
    """Loss and validation dipole RMSE (e*a0) per epoch."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..units import E_BOHR

    ep = [h["epoch"] for h in history]
    fig, ax = plt.subplots(1, 2, figsize=(10, 4))
    ax[0].semilogy(ep, [h["train_loss"] for h in history], label="train")
    ax[0].semilogy(ep, [h["valid_loss"] for h in history], label="validation")
    ax[0].set_xlabel("epoch"); ax[0].set_ylabel("loss (dimensionless)"); ax[0].legend()
    ax[1].semilogy(ep, [h["valid_dipole_rmse"] / E_BOHR for h in history])
    ax[1].set_xlabel("epoch"); ax[1].set_ylabel("validation dipole RMSE (e a$_0$)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_dipole_parity(mu_pred, mu_ref, path, title="test set") -> None:
    """Predicted against reference dipole components (e*a0)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..units import E_BOHR

    a, b = np.ravel(mu_ref) / E_BOHR, np.ravel(mu_pred) / E_BOHR
    fig, ax = plt.subplots(figsize=(5, 4.5))
    ax.plot(a, b, ".", ms=2, alpha=0.5)
    lim = [min(a.min(), b.min()), max(a.max(), b.max())]
    ax.plot(lim, lim, "k-", lw=0.5)
    ax.set_xlabel("reference dipole component (e a$_0$)"); ax.set_ylabel("predicted (e a$_0$)")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def train_dipole(config=None, run_dir="run", resume=False, progress=True, log=print, **overrides) -> dict:
    """Train a dipole model from a YAML path or dict plus keyword overrides; returns the metrics."""
    cfg = load_dipole_config(config, overrides)
    return DipoleTrainer(cfg, run_dir, progress=progress, log=log).run_training(resume=resume)
