"""Training configuration: documented keys, defaults and validation (before anything runs).

A YAML file holds any subset of the keys below; everything else takes its default, so
``atomforge train --data TRAIN --test-data TEST -o RUN`` works with no file at all.

.. code-block:: yaml

    model: bpnn                 # model type: bpnn | pinn (then also the pinn: section, PINN_DEFAULTS)
    data: train.npz             # training data; validation frames are split off it
    test_data: test.npz         # optional held-out test set (else test_fraction of data)
    data_format: null           # null = detect (rmd17, sgdml, deepmd, n2p2, ase)
    length_unit: null           # units of the data files (bohr, angstrom, nm, or Angstrom per unit):
    energy_unit: null           #   required for n2p2 input.data and XYZ without unit keys (ha, ev,
                                #   kcal/mol, kj/mol, or eV per unit); they override the format's
    energy_key: null            # rmd17: energies | old_energies
    forces_key: null            # rmd17: forces | old_forces
    validation_fraction: 0.05
    test_fraction: 0.1          # only used without test_data
    seed: 0                     # 0 .. 2^63 - 1
    descriptor:                 # any registered descriptor type; keys per type, all defaulted
      type: acsf                # acsf (SymmetryFunctions.standard) | gmp (GaussianMultipoles)
      # --- type acsf: Behler-Parrinello symmetry functions
      r_c: 5.0                  # Angstrom
      n_radial: 16              # radial G2 per neighbour element
      n_angular: 4              # G4/G5: zeta in (1, 2, 4, 16)[:n_angular], lambda = +-1 (G5s: 0 = none)
      angular: G5s              # G4 | G5 | G5s (G5 with ANI's angle shifts theta_s, Smith et al.
                                #   2017): G5s 12.7 vs G5 14.9 meV/A on rMD17 ethanol
                                #   (benchmarks/results/rmd17_table_notes.md)
      radial_grid: shifted      # shifted | centered
      r_min: 0.7                # Angstrom
      cutoff_function: cos
      n_angular_radial: 4       # radial channels of the angular functions (1: one wide eta, r_s = 0)
      angular_grid: shifted     # shifted (r_s grid, as ANI) | centered (r_s = 0, several eta)
      r_c_angular: null         # cutoff of the angular functions (null: r_c)
      zetas: null               # zeta set of the angular functions (null: (1, 2, 4, 16)[:n_angular];
                                #   G5s: (32,))
      n_theta_s: 8              # G5s only: angle shifts theta_s = (k + 1/2) pi / n_theta_s (ANI)
      # --- type gmp: Gaussian multipoles (with `descriptor: {type: gmp}` all keys are defaulted)
      # r_c: 6.0                # Angstrom
      # orders: [0, 1, ..., 8]           # MCSH orders (0..8; 0-8 chosen over 0-6 by rmd17_table.md)
      # sigmas: [0.2, 0.4, ..., 2.0]      # 10 probe widths, Angstrom (90 features per channel;
      #                                   #   widths from the rMD17 ethanol study, rmd17_table_notes.md)
      # cutoff_function: poly2  # smooth cutoff (or none: untruncated)
      # square: true            # features Q, the squared norm (false: sqrt(Q), the published
      #                         #   GMP; Q gave lower errors on rMD17, rmd17_table.md)
      # elements: null          # elements to cover besides the data's (shared networks; needs
      #                         #   channels: total, the element-agnostic GMP)
      # channels: element_pairs # density channels: element_pairs (1.6-4.1x lower force errors on
      #                         #   rMD17, rmd17_table.md) | elements | [[C], [O], [C, O]] | null or
      #                         #   total (the published, element-agnostic GMP: one density; needed
      #                         #   for elements the training data lacks; docs/descriptors.md)
    network:
      hidden: [128, 128]        # hidden-layer widths of each element's MLP
      activation: silu          # tanh | silu | softplus | sigmoid
      committee: 1              # committee members (> 1: each trained on its own loss, initialisation
                                #   and resample of the frames; calibrated uncertainties)
      committee_data: bootstrap # bootstrap | subset (80 %) | all: the frames each member sees
      shared: false             # one network for all elements (needs equal feature counts: gmp)
    training:
      epochs: 2000              # at most; also the length of the cosine/exponential schedule
      batch_size: 16            # frames per optimiser step (8 is better still for ~1000 small frames)
      learning_rate: 0.001       # 0.002 gave loss spikes late in 30-minute runs (batch 8)
      lr_schedule: cosine       # cosine | exponential (learning_rate -> min_learning_rate over the
                                #   run) | plateau (ReduceLROnPlateau on the validation loss)
      lr_factor: 0.5            # plateau only
      lr_patience: 10           # plateau only
      min_learning_rate: 1.0e-5
      energy_weight: 100.0      # loss = w_E mean((dE/N)^2) + w_F mean(dF^2), in units of energy_scale
      forces_weight: 10.0
      early_stopping_patience: null  # epochs without a better selection score before stopping; null:
                                #   none under cosine/exponential (the schedule ends the run: its
                                #   low-learning-rate end is where the errors fall most), 200 under plateau
      ema_decay: 0.99           # exponential moving average of the weights, per optimiser step
                                #   (warm-up min(d, (1 + n) / (10 + n))); each epoch, the better of the
                                #   weights and their average on the validation frames is the candidate
                                #   for model.afm; 0: off
      weight_decay: 0.1         # decoupled weight decay (AdamW, Loshchilov & Hutter, ICLR 2019) of all
                                #   weights and biases, per step lr * weight_decay; 0: Adam. 0.1 from
                                #   the rMD17 side-by-side runs (benchmarks/results/rmd17_table_notes.md)
      selection: mae            # mae: keep the epoch with the lowest sqrt(w_E) MAE(E/N) + sqrt(w_F) MAE(F)
                                #   on the validation frames; loss: the lowest validation loss (MSE:
                                #   one outlier frame can decide it)
      dtype: float32            # float32 | float64: the precision of training (features, Jacobians,
                                #   networks); model.afm is float64 and evaluated in float64 by the
                                #   core. float32 trains 1.6x faster at the same test errors (rMD17
                                #   ethanol 14.9 vs 14.8 meV/A, malonaldehyde 21.2 vs 20.5;
                                #   benchmarks/results/training_speed.md). model: pinn defaults to
                                #   float64 (its Ewald sums and polarisation solves need it)
      threads: 0                # torch/OpenMP threads (0: default; more than the machine has: clamped, warning)
      max_minutes: null         # optional wall-time limit (> 0; stop, keeping the best model); null: none,
                                #   so a run stops on epochs or early stopping and does not depend on
                                #   machine load. With a limit and cosine/exponential, the schedule
                                #   length is refitted each epoch to the epochs that fit in the time
                                #   left; such a run is reproducible only if the limit is not binding
      jacobian_cache_mb: null   # keep descriptor Jacobians in memory up to this size in MB (stored in
                                #   the training dtype; featurisation holds them once in float64 first);
                                #   above it they are recomputed per batch (several times slower).
                                #   null: a quarter of the memory available at the start, at least 2000
                                #   and at most 16000 (the log names the budget used)
      compile: auto             # torch.compile (TorchInductor) of the training step: auto | true | false.
                                #   auto: on for runs of at least 20000 full batches of a single
                                #   network on same-atom frames (an rMD17 molecule: 2000 epochs x 59);
                                #   compiling takes ~40 s once (a C++ compiler is needed; auto falls back
                                #   to eager if it fails) and makes epochs 1.36x faster on rMD17 ethanol
                                #   (benchmarks/results/training_speed.md; little gain where large matrix
                                #   products lead, e.g. 700 GMP element-pair features). Gradients equal
                                #   eager training's to float32 rounding; the same command gives the same
                                #   model. Committees and model: pinn train eagerly

Training stops for one of four reasons, printed and recorded in metrics.json as
``training.stop_reason``: ``epochs reached``, ``early stopping`` (no better selection score for
early_stopping_patience epochs), ``time limit`` (max_minutes) or ``interrupted`` (Ctrl-C; the
best model so far is still written, and ``--resume`` continues from the checkpoint).

With these defaults and batch_size 8 (and a 30-minute limit), rMD17 ethanol (950 training frames) reached 17.2 meV/A force MAE and
2.65 meV energy MAE in 12 minutes on one core of a 2-core machine (benchmarks/results/accuracy.md).
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Dict

DEFAULTS: Dict[str, Any] = {
    "model": "bpnn",
    "data": None,
    "test_data": None,
    "data_format": None,
    "length_unit": None,
    "energy_unit": None,
    "energy_key": None,
    "forces_key": None,
    "validation_fraction": 0.05,
    "test_fraction": 0.1,
    "seed": 0,
    "descriptor": None,  # filled below: {"type": "acsf", **SymmetryFunctions.config_defaults}
    "network": {"hidden": [128, 128], "activation": "silu", "committee": 1, "shared": False,
                "committee_data": "bootstrap"},
    "training": {"epochs": 2000, "batch_size": 16, "learning_rate": 0.001, "lr_schedule": "cosine",
                 "lr_factor": 0.5, "lr_patience": 10, "min_learning_rate": 1.0e-5, "energy_weight": 100.0,
                 "forces_weight": 10.0, "early_stopping_patience": None, "ema_decay": 0.99, "selection": "mae",
                 "weight_decay": 0.1,
                 "dtype": "float32", "threads": 0, "max_minutes": None, "jacobian_cache_mb": None,
                 "compile": "auto"},
}

def descriptor_defaults(type_: str) -> dict:
    """The configuration section of descriptor type ``type_`` with its defaults (declared by the
    descriptor class: ``config_defaults``). Raises ConfigError for an unknown type."""
    from ..descriptors import descriptor_types

    types = descriptor_types()
    if type_ not in types:
        raise ConfigError(f"configuration key 'descriptor.type': {type_!r} is not one of {tuple(sorted(types))}")
    return {"type": type_, **copy.deepcopy(types[type_].config_defaults)}


DEFAULTS["descriptor"] = descriptor_defaults("acsf")

#: The ``pinn`` section (only with ``model: pinn``): a physics-embedded model, E = E_short +
#: E_elec of network charges (atomforge.models.pinn); ``network`` configures the short-range
#: networks. Molecules (direct sum) and periodic cells (Ewald sum); slabs and wires are refused.
PINN_DEFAULTS: Dict[str, Any] = {
    "sigma": 1.0,              # Gaussian charge width, Angstrom, one for every element (0: point charges)
    "charge_hidden": [16, 16],  # hidden widths of the charge networks (activation: network.activation)
    "charge_scheme": "uniform",  # uniform | weighted (total charge imposed exactly, atomforge/charges.hpp)
    "weight_hidden": [16],     # weight networks of the weighted scheme
    "charge_scale": 0.5,       # e per charge-network output
    "accuracy": 1.0e-8,        # Ewald accuracy the model file carries (periodic evaluation by the core)
    "dipole_weight": 0.0,      # loss weight of dipoles (data with dipoles only): w_mu mean((dmu / 0.1 e*A)^2)
    "dispersion": False,       # add E_disp: BJ-damped C6 (ASE's free-atom tables) scaled by dispersion networks
    "dispersion_hidden": [16],  # hidden widths of the dispersion networks
    "dispersion_r_on": 8.0,    # Angstrom: the dispersion pair energy is switched off smoothly from r_on ...
    "dispersion_r_cut": 10.0,  # ... to r_cut (Angstrom, <= 25)
    "polarisation": False,     # add E_pol: Thole-damped induced dipoles, alpha from networks
    "polarisation_hidden": [16],  # hidden widths of the polarisability networks
    "thole": 0.39,             # Thole damping a (AMOEBA), in (0, 100]
    "charge_reference": None,  # optional {element: e}, the charges' offsets (q~ = reference + scale * NN);
                               #   null: 0 for every element. Energies and forces cannot fix the charges'
                               #   sign (E_elec(q) = E_elec(-q)); a reference of physical sign (e.g.
                               #   {O: -0.8, H: 0.4}) starts training on that side
}


def defaults_for(model) -> Dict[str, Any]:
    """The defaults of a model type's configuration: DEFAULTS, plus the ``pinn`` section for
    ``model: pinn`` (whose training dtype defaults to float64)."""
    d = copy.deepcopy(DEFAULTS)
    if model == "pinn":
        d["model"] = "pinn"
        d["pinn"] = copy.deepcopy(PINN_DEFAULTS)
        d["training"]["dtype"] = "float64"  # Ewald sums and polarisation solves in float64
    return d


_CHOICES = {
    "model": ("bpnn", "pinn"),
    "pinn.charge_scheme": ("uniform", "weighted"),
    "descriptor.angular": ("G4", "G5", "G5s"),
    "descriptor.radial_grid": ("shifted", "centered"),
    "network.activation": ("tanh", "silu", "softplus", "sigmoid"),
    "network.committee_data": ("bootstrap", "subset", "all"),
    "training.dtype": ("float64", "float32"),
    "training.selection": ("mae", "loss"),
}
_POSITIVE = {"pinn.charge_scale", "pinn.accuracy", "pinn.dispersion_r_cut", "pinn.thole", "descriptor.r_c", "descriptor.r_min", "descriptor.n_radial", "descriptor.n_theta_s", "network.committee", "training.epochs",
             "training.batch_size", "training.learning_rate", "training.early_stopping_patience",
             "training.lr_patience", "training.jacobian_cache_mb", "training.max_minutes"}
#: Integer keys with an upper bound (seeds feed int64 / torch generators).
_MAXIMUM = {"seed": 2 ** 63 - 1}
_NONNEG = {"training.weight_decay", "pinn.sigma", "pinn.dipole_weight", "pinn.dispersion_r_on", "descriptor.n_angular", "training.energy_weight", "training.forces_weight", "training.threads",
           "training.min_learning_rate", "seed"}


def _probe_elements(d: dict) -> list:
    """Elements for checking a descriptor section before the data is read: those an explicit GMP
    channel list names (each must then be in a channel), else hydrogen."""
    ch = d.get("channels")
    out = []
    if isinstance(ch, list):
        for h in ch:
            for e in [h] if isinstance(h, (str, int)) else h if isinstance(h, list) else []:
                if isinstance(e, (str, int)) and not isinstance(e, bool) and e not in out:
                    out.append(e)
    return out or ["H"]


class ConfigError(ValueError):
    """A configuration key is unknown, of the wrong type or out of range (the message names it)."""


def _merge(base: dict, new: dict, prefix: str) -> dict:
    out = copy.deepcopy(base)
    if prefix == "descriptor." and "type" in new and new["type"] != base.get("type"):
        if not isinstance(new["type"], str):
            raise ConfigError(f"configuration key 'descriptor.type': {new['type']!r} is not a name")
        out = base = descriptor_defaults(new["type"])  # another type: its own keys and defaults
    for key, value in new.items():
        name = f"{prefix}{key}"
        if key not in base:
            raise ConfigError(f"unknown configuration key {name!r} (known: {', '.join(prefix + k for k in base)})")
        if isinstance(base[key], dict):
            if not isinstance(value, dict):
                raise ConfigError(f"configuration key {name!r} must be a mapping")
            out[key] = _merge(base[key], value, f"{name}.")
        else:
            out[key] = value
    return out


#: Keys of several types (a mode name or a list), checked by their owner (the descriptor).
_OWNER_CHECKED = {"descriptor.channels"}


def _check_type(name: str, value, default) -> None:
    if value is None or default is None or name in _OWNER_CHECKED:  # checked by their owner (the descriptor)
        return
    if isinstance(default, bool):
        ok = isinstance(value, bool)
    elif isinstance(default, int) and not isinstance(default, bool):
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif isinstance(default, float):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    elif isinstance(default, list):
        if all(isinstance(v, int) for v in default):  # e.g. hidden widths, GMP orders
            ok = isinstance(value, list) and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
            ok = ok and (name != "network.hidden" or all(v > 0 for v in value))
        else:  # lists of numbers, e.g. GMP sigmas
            ok = isinstance(value, list) and all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                                 for v in value)
    elif isinstance(default, str):
        ok = isinstance(value, str)
    else:
        ok = isinstance(value, (str, int, float))
    if not ok:
        raise ConfigError(f"configuration key {name!r}: {value!r} has the wrong type "
                          f"(expected {type(default).__name__})")


def validate(cfg: dict) -> dict:
    """Check every key; return the config. Raises ConfigError naming the key."""
    def walk(d, defaults, prefix=""):
        for k, v in d.items():
            name = prefix + k
            if name == "descriptor":  # the defaults of the chosen descriptor type
                walk(v, descriptor_defaults(v.get("type", "acsf")), name + ".")
                continue
            if isinstance(defaults.get(k), dict):
                walk(v, defaults[k], name + ".")
                continue
            if name != "training.compile":  # auto | true | false: validate() checks it itself
                _check_type(name, v, defaults.get(k))
            if name in _CHOICES and v not in _CHOICES[name]:
                raise ConfigError(f"configuration key {name!r}: {v!r} is not one of {_CHOICES[name]}")
            if name in _POSITIVE and v is not None and not v > 0:
                raise ConfigError(f"configuration key {name!r} must be positive, got {v!r}")
            if name in _NONNEG and v is not None and v < 0:
                raise ConfigError(f"configuration key {name!r} must be >= 0, got {v!r}")
            if name in _MAXIMUM and v is not None and v > _MAXIMUM[name]:
                raise ConfigError(f"configuration key {name!r} must be at most {_MAXIMUM[name]}, got {v!r}")
    jc = cfg.get("training", {}).get("jacobian_cache_mb")
    if jc is not None and (isinstance(jc, bool) or not isinstance(jc, (int, float))):
        raise ConfigError(f"configuration key 'training.jacobian_cache_mb': {jc!r} must be a number of MB or null")
    mm = cfg.get("training", {}).get("max_minutes")
    if mm is not None and (isinstance(mm, bool) or not isinstance(mm, (int, float))):
        raise ConfigError(f"configuration key 'training.max_minutes': {mm!r} must be a number of minutes or null")
    pat = cfg.get("training", {}).get("early_stopping_patience")
    if pat is not None and (isinstance(pat, bool) or not isinstance(pat, int)):
        raise ConfigError(f"configuration key 'training.early_stopping_patience': {pat!r} must be a whole number "
                          f"of epochs or null")
    comp = cfg.get("training", {}).get("compile", "auto")
    if not (comp is True or comp is False or comp == "auto"):
        raise ConfigError(f"configuration key 'training.compile': {comp!r} must be auto, true or false")
    ema = cfg.get("training", {}).get("ema_decay", 0.0)
    if isinstance(ema, bool) or not isinstance(ema, (int, float)) or not 0.0 <= ema < 1.0:
        raise ConfigError(f"configuration key 'training.ema_decay': {ema!r} must be a number in [0, 1) (0: off)")
    walk(cfg, defaults_for(cfg.get("model")))
    if cfg.get("model") == "pinn":
        if "pinn" not in cfg:
            raise ConfigError("model: pinn needs its 'pinn' section (defaults: atomforge.train.config.PINN_DEFAULTS)")
        if not cfg["pinn"]["accuracy"] <= 0.1:
            raise ConfigError(f"configuration key 'pinn.accuracy' must be in [1e-15, 0.1], got {cfg['pinn']['accuracy']!r}")
        if cfg["network"]["committee"] != 1:
            raise ConfigError("configuration key 'network.committee': pinn models do not support committees yet (1)")
        pc = cfg["pinn"]
        if not pc["dispersion_r_cut"] <= 25.0:
            raise ConfigError(f"configuration key 'pinn.dispersion_r_cut' must be at most 25 Angstrom, got "
                              f"{pc['dispersion_r_cut']!r}")
        if not pc["dispersion_r_on"] < pc["dispersion_r_cut"]:
            raise ConfigError(f"configuration key 'pinn.dispersion_r_on' ({pc['dispersion_r_on']!r}) must be below "
                              f"pinn.dispersion_r_cut ({pc['dispersion_r_cut']!r})")
        if not pc["thole"] <= 100.0:
            raise ConfigError(f"configuration key 'pinn.thole' must be in (0, 100], got {pc['thole']!r}")
        cr = cfg["pinn"].get("charge_reference")
        if cr is not None:
            import math
            if not isinstance(cr, dict) or not all(
                    isinstance(k, str) and isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                    for k, v in cr.items()):
                raise ConfigError(f"configuration key 'pinn.charge_reference': {cr!r} must map element symbols to "
                                  f"finite charges in e (e.g. {{O: -0.8, H: 0.4}}) or be null")
    if cfg["data"] is None:
        raise ConfigError("configuration key 'data' (training data path) is required")
    for key in ("data", "test_data"):
        if cfg[key] is not None and not Path(cfg[key]).exists():
            raise ConfigError(f"configuration key {key!r}: {cfg[key]} does not exist")
    if not 0 < cfg["validation_fraction"] < 1:
        raise ConfigError("configuration key 'validation_fraction' must be in (0, 1)")
    if cfg["test_data"] is None and not 0 < cfg["test_fraction"] < 1:
        raise ConfigError("configuration key 'test_fraction' must be in (0, 1) when no test_data is given")
    d = cfg["descriptor"]
    if d["type"] == "acsf":
        if d["r_min"] >= d["r_c"]:
            raise ConfigError("configuration key 'descriptor.r_min' must be smaller than 'descriptor.r_c'")
        if d["n_angular"] > 4:
            raise ConfigError("configuration key 'descriptor.n_angular' must be <= 4")
    from ..descriptors import descriptor_class

    try:  # the descriptor's own checks, before any data is read
        descriptor_class(d["type"]).from_config(d, _probe_elements(d))
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"configuration key 'descriptor' ({d['type']}): {exc}") from None
    if cfg["network"]["shared"] and d["type"] == "acsf":
        raise ConfigError("configuration key 'network.shared': a shared network needs a descriptor with the same "
                          "features for every element (descriptor.type gmp); ACSF is element-resolved")
    if cfg["training"]["energy_weight"] == 0 and cfg["training"]["forces_weight"] == 0:
        raise ConfigError("configuration keys 'training.energy_weight' and 'training.forces_weight' are both 0")
    return cfg


def load_config(path=None, overrides: dict = None) -> dict:
    """Defaults <- YAML file (if given) <- overrides (e.g. from the command line); validated."""
    import yaml

    cfg = copy.deepcopy(DEFAULTS)
    user = {}
    if path is not None:
        try:
            text = Path(path).read_text()
        except OSError as exc:
            raise ConfigError(f"cannot read configuration file {path}: {exc.strerror}") from None
        try:
            user = yaml.safe_load(text) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: invalid YAML: {exc}") from None
        if not isinstance(user, dict):
            raise ConfigError(f"{path}: the configuration must be a mapping of keys")
    model = (overrides or {}).get("model") or user.get("model")
    if model == "pinn":
        cfg = defaults_for("pinn")
    if path is not None:
        cfg = _merge(cfg, user, "")
    if overrides:
        cfg = _merge(cfg, {k: v for k, v in overrides.items() if v is not None}, "")
    return validate(cfg)
