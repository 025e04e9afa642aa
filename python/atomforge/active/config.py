"""Configuration of ``atomforge adaptive-sampling``: documented keys, defaults, validation.

A YAML file (``-c CONFIG``) holds any subset of these keys; the command line sets the most common
ones (``--max-labels``, ``--temperature``, ``--replicas``, ``--labeller``, ``--seed``,
``--scheduler``); everything else takes its default, so ``atomforge adaptive-sampling --start
mol.xyz -o RUN`` runs with GFN2-xTB labels, 4 replicas at 300 K.

.. code-block:: yaml

    seed: 0
    max_labels: 200            # label budget (seed labels included)
    labeller: xtb              # xtb | pyscf[:XC/BASIS] | package.module:ASECalculatorClass
    labeller_kwargs: {}        # keyword arguments of the labeller (e.g. {charge: 0})
    max_label_force: 50.0      # eV/Angstrom: labels with a larger force component are rejected as
                               #   unphysical (the replica restarts from its start structure)
    model: null                # start from this model file instead of training on a seed set
    seed_set:
      n: 16                    # labelled structures to train the first committee on (per start structure)
      rattle: 0.05             # Angstrom: Gaussian displacements of the start structure(s)
      structures: null         # a structure file ASE reads: its first n frames are the seed set
                               #   (labelled by the labeller; energies/forces in the file are not
                               #   used), e.g. frames of a short MD; null: rattled start structures
    md:
      replicas: 4
      temperature: [300.0]     # K; replica r runs at temperature[r % len(temperature)]
      timestep_fs: 0.5
      friction_per_fs: 0.02    # Langevin friction (1/fs)
      max_time_fs: 5000.0      # per replica and iteration: without a trigger the run stops (converged)
      min_time_fs: 100.0       # MD a replica runs after each (re)start before it may trigger: successive
                               #   labels of one replica are at least this far apart (decorrelated)
      check_every: 1           # steps between uncertainty checks
      restart: continue        # continue: a replica goes on from its last structure; start: every
                               #   iteration restarts it from its start structure with new velocities
                               #   (DP-GEN style: exploration stays anchored at physical structures;
                               #   worse on the ethanol benchmark, benchmarks/results/adaptive_start.md)
    trigger:
      threshold: null          # eV/Angstrom: calibrated max_i eps_i that stops a replica; null: auto
      threshold_factor: 1.0    # auto: factor x median calibrated max_i eps_i over the validation labels
                               #   (1: label where the model is less sure than on a typical held-out label)
      threshold_min: 0.0       # eV/Angstrom, floor of the auto threshold
      hard_factor: 2.0         # above hard_factor x threshold a replica stops at once, even before
                               #   md.min_time_fs (before the MD runs into unphysical regions)
    descriptor: {type: acsf, r_c: 4.5, n_radial: 8, n_angular: 2}   # any descriptor config (atomforge train)
    network: {hidden: [32, 32], activation: silu, committee: 4, committee_data: bootstrap}
    training:
      epochs_seed: 300         # epochs of the first committee (from random weights)
      epochs: 100              # epochs of every retraining (warm start from the previous committee)
      batch_size: 8
      learning_rate: 0.003     # cosine decay to min_learning_rate within each (re)training
      min_learning_rate: 0.0001
      energy_weight: 1.0
      forces_weight: 10.0
      validation_every: 10     # every 10th label (by label number) is a validation label
      threads: 1               # torch threads (fixed: results depend on it)
    workers: null              # local processes (null: min(replicas, CPU cores)); 0: run in-process
    scheduler: null            # Dask scheduler address ("tcp://host:8786"): run replicas and labels there

Energies eV, forces eV/Angstrom, temperatures K, times fs.
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Dict

DEFAULTS: Dict[str, Any] = {
    "seed": 0,
    "max_labels": 200,
    "labeller": "xtb",
    "labeller_kwargs": {},
    "max_label_force": 50.0,
    "model": None,
    "seed_set": {"n": 16, "rattle": 0.05, "structures": None},
    "md": {"replicas": 4, "temperature": [300.0], "timestep_fs": 0.5, "friction_per_fs": 0.02,
           "max_time_fs": 5000.0, "min_time_fs": 100.0, "check_every": 1,
           "restart": "continue"},
    "trigger": {"threshold": None, "threshold_factor": 1.0, "threshold_min": 0.0, "hard_factor": 2.0},
    "descriptor": {"type": "acsf", "r_c": 4.5, "n_radial": 8, "n_angular": 2},
    "network": {"hidden": [32, 32], "activation": "silu", "committee": 4, "committee_data": "bootstrap"},
    "training": {"epochs_seed": 300, "epochs": 100, "batch_size": 8, "learning_rate": 0.003,
                 "min_learning_rate": 0.0001, "energy_weight": 1.0, "forces_weight": 10.0,
                 "validation_every": 10, "threads": 1},
    "workers": None,
    "scheduler": None,
}
_FREE = {"labeller_kwargs", "descriptor"}  # free-form mappings (checked by their owners)


class AdaptiveConfigError(ValueError):
    """A configuration key is unknown, of the wrong type or out of range (the message names it)."""


def _merge(base: dict, new: dict, prefix: str = "") -> dict:
    out = copy.deepcopy(base)
    for k, v in new.items():
        name = prefix + k
        if k not in base:
            raise AdaptiveConfigError(f"unknown configuration key {name!r} (known: {', '.join(prefix + b for b in base)})")
        if isinstance(base[k], dict) and name not in _FREE:
            if not isinstance(v, dict):
                raise AdaptiveConfigError(f"configuration key {name!r} must be a mapping")
            out[k] = _merge(base[k], v, name + ".")
        else:
            out[k] = copy.deepcopy(v)
    return out


def _num(cfg, path, positive=False, nonneg=False, integer=False, allow_none=False):
    d = cfg
    for p in path.split(".")[:-1]:
        d = d[p]
    v = d[path.split(".")[-1]]
    if v is None and allow_none:
        return
    ok = isinstance(v, (int, float)) and not isinstance(v, bool)
    if integer:
        ok = ok and float(v) == int(v)
    if not ok:
        raise AdaptiveConfigError(f"configuration key {path!r}: {v!r} is not a {'whole ' if integer else ''}number")
    if positive and not v > 0:
        raise AdaptiveConfigError(f"configuration key {path!r} must be > 0, got {v!r}")
    if nonneg and v < 0:
        raise AdaptiveConfigError(f"configuration key {path!r} must be >= 0, got {v!r}")


def validate(cfg: dict) -> dict:
    """Check every key (raises AdaptiveConfigError naming it); returns cfg with temperatures as a list."""
    for p in ("max_labels", "seed_set.n", "md.replicas", "md.check_every", "network.committee", "training.epochs_seed",
              "training.epochs", "training.batch_size", "training.validation_every", "training.threads"):
        _num(cfg, p, positive=True, integer=True)
    for p in ("seed_set.rattle", "md.friction_per_fs", "md.min_time_fs", "trigger.threshold_min", "training.energy_weight",
              "training.forces_weight", "training.min_learning_rate"):
        _num(cfg, p, nonneg=True)
    for p in ("trigger.hard_factor", "max_label_force", "md.timestep_fs", "md.max_time_fs", "trigger.threshold_factor", "training.learning_rate"):
        _num(cfg, p, positive=True)
    _num(cfg, "seed", nonneg=True, integer=True)
    ss = cfg["seed_set"]["structures"]
    if ss is not None and (not isinstance(ss, (str, Path)) or not str(ss).strip()):
        raise AdaptiveConfigError(f"configuration key 'seed_set.structures': {ss!r} must be a structure file path")
    if ss is not None:
        cfg["seed_set"]["structures"] = str(ss)
    if cfg["md"]["restart"] not in ("continue", "start"):
        raise AdaptiveConfigError("configuration key 'md.restart' must be 'continue' or 'start'")
    if cfg["md"]["min_time_fs"] >= cfg["md"]["max_time_fs"]:
        raise AdaptiveConfigError("configuration key 'md.min_time_fs' must be smaller than 'md.max_time_fs'")
    _num(cfg, "trigger.threshold", positive=True, allow_none=True)
    _num(cfg, "workers", nonneg=True, integer=True, allow_none=True)
    t = cfg["md"]["temperature"]
    t = [t] if isinstance(t, (int, float)) and not isinstance(t, bool) else t
    if not isinstance(t, list) or not t or not all(isinstance(x, (int, float)) and not isinstance(x, bool) and x > 0
                                                   for x in t):
        raise AdaptiveConfigError(f"configuration key 'md.temperature': {t!r} must be a positive temperature or a list")
    cfg["md"]["temperature"] = [float(x) for x in t]
    if cfg["network"]["committee"] < 2:
        raise AdaptiveConfigError("configuration key 'network.committee' must be >= 2: adaptive sampling needs the "
                                  "committee's spread")
    if not isinstance(cfg["labeller"], str) or not cfg["labeller"].strip():
        raise AdaptiveConfigError("configuration key 'labeller' must be a name (xtb, pyscf, package.module:Class)")
    if not isinstance(cfg["labeller_kwargs"], dict):
        raise AdaptiveConfigError("configuration key 'labeller_kwargs' must be a mapping")
    if cfg["model"] is not None and not Path(cfg["model"]).is_file():
        raise AdaptiveConfigError(f"configuration key 'model': {cfg['model']} does not exist")
    if cfg["scheduler"] is not None and not isinstance(cfg["scheduler"], str):
        raise AdaptiveConfigError("configuration key 'scheduler' must be an address such as tcp://host:8786")
    from ..train.committee import COMMITTEE_DATA
    from ..train.config import _CHOICES

    if cfg["network"]["committee_data"] not in COMMITTEE_DATA:
        raise AdaptiveConfigError(f"configuration key 'network.committee_data' must be one of {COMMITTEE_DATA}")
    if cfg["network"]["activation"] not in _CHOICES["network.activation"]:
        raise AdaptiveConfigError(f"configuration key 'network.activation' must be one of "
                                  f"{_CHOICES['network.activation']}")
    h = cfg["network"]["hidden"]
    if not isinstance(h, list) or not h or not all(isinstance(x, int) and not isinstance(x, bool) and x > 0 for x in h):
        raise AdaptiveConfigError("configuration key 'network.hidden' must be a list of positive layer widths")
    d = cfg["descriptor"]
    if not isinstance(d, dict):
        raise AdaptiveConfigError("configuration key 'descriptor' must be a mapping")
    from ..train.config import ConfigError, descriptor_defaults

    try:
        base = descriptor_defaults(d.get("type", "acsf"))
    except ConfigError as exc:
        raise AdaptiveConfigError(str(exc)) from None
    unknown = set(d) - set(base)
    if unknown:
        raise AdaptiveConfigError(f"unknown configuration key(s) descriptor.{', descriptor.'.join(sorted(unknown))}")
    return cfg


def load_config(path=None, overrides: dict = None) -> dict:
    """Defaults <- YAML file <- overrides (nested dicts); validated."""
    cfg = copy.deepcopy(DEFAULTS)
    if path is not None:
        import yaml

        try:
            user = yaml.safe_load(Path(path).read_text()) or {}
        except OSError as exc:
            raise AdaptiveConfigError(f"cannot read configuration file {path}: {exc.strerror}") from None
        except yaml.YAMLError as exc:
            raise AdaptiveConfigError(f"{path}: invalid YAML: {exc}") from None
        if not isinstance(user, dict):
            raise AdaptiveConfigError(f"{path}: the configuration must be a mapping of keys")
        if "descriptor" in user and isinstance(user["descriptor"], dict):
            cfg["descriptor"] = {}  # a user descriptor replaces the default one (its own defaults apply)
        cfg = _merge(cfg, user)
    if overrides:
        cfg = _merge(cfg, overrides)
    return validate(cfg)
