"""Training loop for Behler-Parrinello potentials: run folder, checkpoints, resume, metrics.

Run folder contents::

    config.yaml           the full configuration used (defaults filled in)
    split.json            indices of the train / validation (/ test) frames in the data file(s)
    checkpoint.pt         written atomically after the first and the last epoch and at most every
                          CHECKPOINT_SECONDS (20 s) in between (model, optimiser, scheduler,
                          history, RNG state, best weights); --resume continues from it to the
                          same result as an uninterrupted run, reading it with
                          torch.load(weights_only=True): no code runs from a run folder
    model.afm             the best model (training.selection: validation MAE score or loss; with
                          training.ema_decay the moving-average weights), in the atomforge model
                          file format
    metrics.json          test (and validation) errors of model.afm evaluated by the C++ core; why
                          training stopped (training.stop_reason); the format, units and
                          plausibility warnings of each data file (data)
    history.csv           per-epoch losses and validation errors
    learning_curve.png, parity.png
"""
from __future__ import annotations

import csv
import json
import os
import tempfile
import time
from pathlib import Path
from typing import List

import numpy as np

from .config import load_config, validate
from .metrics import UNITS, error_metrics, evaluate_dataset, plot_learning_curve, plot_parity


def _atomic_write_text(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.replace(tmp, path)


def _torch_save_atomic(obj, path: Path) -> None:
    import torch

    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


#: Seconds of training between checkpoints (the first and the last epoch are always written).
CHECKPOINT_SECONDS = 20

#: Why a training run stopped (metrics.json training.stop_reason).
STOP_REASONS = ("epochs reached", "early stopping", "time limit", "interrupted")


#: What a checkpoint holds (checkpoint.pt, torch.save of plain containers and tensors, read back with
#: torch.load(weights_only=True): a run folder cannot execute code).
_CHECKPOINT_KEYS = {"config": dict, "epoch": int, "model": dict, "optimizer": dict, "scheduler": dict,
                    "history": list, "best": dict, "torch_rng": "tensor", "ema": dict}

#: Early-stopping patience (epochs) under the plateau schedule when training.early_stopping_patience
#: is null (cosine and exponential schedules end the run themselves).
PLATEAU_PATIENCE = 200


def early_stopping_patience(tr: dict):
    """The early-stopping patience in epochs for the training section ``tr``, or None (no early
    stopping): the configured value, else PLATEAU_PATIENCE under ``lr_schedule: plateau``."""
    if tr["early_stopping_patience"] is not None:
        return int(tr["early_stopping_patience"])
    return PLATEAU_PATIENCE if tr["lr_schedule"] == "plateau" else None


def selection_score(tr: dict, valid_loss: float, metrics: dict, energy_scale: float) -> float:
    """The model-selection score of one epoch (lower is better).

    ``selection: loss``: the validation loss (the training objective, mean squared errors).
    ``selection: mae`` (default): sqrt(w_E) MAE(E/N) + sqrt(w_F) MAE(F), in units of the model's
    energy_scale (eV), i.e. the loss's relative weighting carried over to mean absolute errors.
    Squared errors let one outlier frame decide which epoch is kept: on rMD17 uracil (50
    validation frames) the lowest validation loss was at epoch 384 with a validation force MAE of
    29.5 meV/A, where epoch 1296 had 19.5 (benchmarks/results/rmd17_table_notes.md).
    ``metrics``: error_metrics of the validation frames (eV per atom, eV/A).
    """
    if tr["selection"] == "loss":
        return float(valid_loss)
    score = tr["energy_weight"] ** 0.5 * metrics["energy_mae_per_atom"] / energy_scale
    if "forces_mae" in metrics:
        score += tr["forces_weight"] ** 0.5 * metrics["forces_mae"] / energy_scale
    return float(score)


class FlatParameters:
    """A model's trainable parameters as views of one contiguous buffer, and their gradients as
    views of a second one, so that the optimiser step, zeroing the gradients and the weight
    average are one operation each on a single tensor instead of a Python loop over every weight
    matrix and bias (rMD17 ethanol, 18 tensors: AdamW's step 180 -> 90 us, the average 29 -> 12 us,
    zeroing 31 -> 5 us per batch; benchmarks/results/training_speed.md). The values are unchanged:
    the parameters are copied into the buffer; the optimiser's per-element arithmetic is the same.

    ``param`` (1-D nn.Parameter, the buffer) is what the optimiser updates; its ``grad`` is the
    gradient buffer, which backward accumulates into in place (the parameters' ``grad`` are set to
    views before the first backward and must not be set to None: use :meth:`zero_grad`).
    ``sizes``: the parameters' element counts in ``model.parameters()`` order. Raises ValueError if
    the parameters differ in dtype or device (nothing is changed then)."""

    def __init__(self, model):
        import torch

        params = [p for p in model.parameters() if p.requires_grad]
        if not params:
            raise ValueError("the model has no trainable parameters")
        if len({(p.dtype, p.device) for p in params}) != 1:
            raise ValueError("the parameters differ in dtype or device; they cannot share one buffer")
        self.sizes = [p.numel() for p in params]
        flat = torch.empty(sum(self.sizes), dtype=params[0].dtype, device=params[0].device)
        grad = torch.zeros_like(flat)
        off = 0
        for p, k in zip(params, self.sizes):
            flat[off:off + k].copy_(p.detach().reshape(-1))
            p.data = flat[off:off + k].view_as(p)
            p.grad = grad[off:off + k].view_as(p)
            off += k
        self._params = params
        self.param = torch.nn.Parameter(flat)
        self.param.grad = grad

    def zero_grad(self) -> None:
        self.param.grad.zero_()

    def check_grads(self) -> None:
        """Raise RuntimeError if a parameter's gradient is no longer a view of the buffer (something
        replaced it: the optimiser would then see zeros)."""
        base = self.param.grad.data_ptr()
        end = base + self.param.grad.numel() * self.param.grad.element_size()
        for p in self._params:
            if p.grad is None or not base <= p.grad.data_ptr() < end:
                raise RuntimeError("a parameter's gradient left the flat gradient buffer")

    def optimizer_state(self, state: dict) -> dict:
        """An optimiser state_dict written for the separate parameters (one state per tensor, as
        before the flat buffer) converted to this buffer's single parameter (moments concatenated
        in parameter order); a state already in the flat form is returned as it is. Raises
        ValueError if the counts or sizes do not match."""
        import torch

        groups = state.get("param_groups", [])
        if len(groups) != 1:
            raise ValueError(f"the optimiser state has {len(groups)} parameter groups, not 1")
        ids = groups[0]["params"]
        if len(ids) == 1:
            return state
        if len(ids) != len(self.sizes):
            raise ValueError(f"the optimiser state has {len(ids)} parameters, the model {len(self.sizes)}")
        per = [state["state"].get(i, {}) for i in ids]
        new = {}
        if all(per):
            for key in per[0]:
                vals = [s[key] for s in per]
                if key == "step":  # a copy: the optimiser increments it in place
                    new[key] = vals[0].clone() if isinstance(vals[0], torch.Tensor) else vals[0]
                    continue
                if any(v.numel() != k for v, k in zip(vals, self.sizes)):
                    raise ValueError(f"the optimiser state's {key!r} does not fit the parameters' sizes")
                new[key] = torch.cat([v.reshape(-1) for v in vals])
        return {"state": {0: new} if new else {}, "param_groups": [dict(groups[0], params=[0])]}


class WeightAverage:
    """Exponential moving average of a model's floating-point parameters and buffers, updated after
    every optimiser step: a <- a + (1 - d_n) (w - a) with d_n = min(decay, (1 + n) / (10 + n)) after
    the n-th update (the warm-up keeps the start from weighing the initialisation; as in
    Polyak & Juditsky, SIAM J. Control Optim. 30, 838 (1992), with the decay of
    tf.train.ExponentialMovingAverage). ``averaged`` is a deep copy of the model holding the average."""

    def __init__(self, model, decay: float, flat: "FlatParameters" = None):
        import copy

        self.decay, self.updates = float(decay), 0
        self.averaged = copy.deepcopy(model)
        for p in self.averaged.parameters():
            p.requires_grad_(False)
        src = [t for t in list(model.parameters()) + list(model.buffers()) if t.is_floating_point()]
        dst = [t for t in list(self.averaged.parameters()) + list(self.averaged.buffers()) if t.is_floating_point()]
        self._flat = None
        if flat is not None:  # the parameters of the average as views of one buffer too: one lerp per update
            inside = {id(p) for p in flat._params}
            self._flat = (flat.param, flat.param.detach().clone())
            off = 0
            for s, d in zip(src, dst):  # (the flat buffer holds model.parameters() in this order)
                if id(s) in inside:
                    n = s.numel()
                    d.data = self._flat[1][off:off + n].view_as(d)
                    off += n
            keep = [k for k, s in enumerate(src) if id(s) not in inside]
            src, dst = [src[k] for k in keep], [dst[k] for k in keep]
        self._src, self._dst = src, dst

    def update(self) -> None:
        import torch

        self.updates += 1
        d = min(self.decay, (1.0 + self.updates) / (10.0 + self.updates))
        with torch.no_grad():
            if self._flat is not None:
                self._flat[1].lerp_(self._flat[0].detach(), 1.0 - d)
            if self._src:
                torch._foreach_lerp_(self._dst, self._src, 1.0 - d)

    def state_dict(self) -> dict:
        return {"updates": self.updates, "model": self.averaged.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.updates = int(state["updates"])
        self.averaged.load_state_dict(state["model"])


#: Frames per batch when the trainer evaluates a dense store (validation, every epoch), at least the
#: training batch size: without a graph the batch size changes only the number of operations (rMD17
#: ethanol, 50 validation frames: 4 batches of 16 -> 1 of 50).
EVAL_BATCH_FRAMES = 64

#: training.compile: auto compiles the training step when a run has at least this many full batches
#: (epochs x full batches per epoch). Compiling costs about 40 s once per graph on a 2-core machine
#: (less when TorchInductor's on-disk cache holds it) and saves about 1.5 ms of a 5 ms step (rMD17
#: ethanol, benchmarks/results/training_speed.md): a few thousand steps pay it back.
AUTO_COMPILE_STEPS = 20000

#: Features with |mean| above this many standard deviations are centred in float64 by the trainer.
CENTRE_RATIO = 1e3


def split_shift(shift: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """The part of the feature shift (n_elements, F) the trainer subtracts in float64 before the
    cast to the training dtype: the mean of every feature with |mean| > CENTRE_RATIO std
    (scale = 1/std), 0 elsewhere (there the model subtracts it, as it always did)."""
    return np.where(np.abs(shift) * scale > CENTRE_RATIO, shift, 0.0)


def _shift_buffers(model, shape):
    """The feature-scaling ``shift`` buffers of the model and its sub-networks (TorchBPNN,
    TorchDipole and TorchPinn's networks all read the same features)."""
    for mod in model.modules():
        b = mod._buffers.get("shift")
        if b is not None and tuple(b.shape) == tuple(shape):
            yield b


def _clear_input_shift(model, input_shift: np.ndarray) -> None:
    """Zero the model's shift where the trainer centres the features (input_shift != 0)."""
    import torch

    mask = torch.as_tensor(input_shift != 0)
    for b in _shift_buffers(model, input_shift.shape):
        b.masked_fill_(mask, 0.0)


def _exported(model, input_shift: np.ndarray):
    """A float64 copy of a model trained on features centred by ``input_shift`` (split_shift), with
    that part added back to its shift buffers in float64: what the model file holds."""
    import copy

    import torch

    m = copy.deepcopy(model).double()
    for b in _shift_buffers(m, input_shift.shape):
        b.add_(torch.as_tensor(input_shift, dtype=torch.float64))
    return m


def _load_checkpoint(path: Path) -> dict:
    """The checkpoint at ``path``, read without unpickling arbitrary objects (weights_only=True:
    only containers, numbers, strings and tensors). Raises ValueError naming the file and what is
    wrong for a corrupt, foreign or incomplete checkpoint."""
    import torch

    try:
        ck = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any failure of an untrusted file is reported, naming it
        why = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ValueError(f"{path}: not a readable atomforge checkpoint ({type(exc).__name__}: {why[:300]}); "
                         f"delete it to start the run over") from None
    if not isinstance(ck, dict):
        raise ValueError(f"{path}: not an atomforge checkpoint (holds a {type(ck).__name__}, not a dict)")
    for key, kind in _CHECKPOINT_KEYS.items():
        if key not in ck:
            raise ValueError(f"{path}: the checkpoint has no {key!r} entry (incomplete or not written by atomforge)")
        ok = isinstance(ck[key], torch.Tensor) if kind == "tensor" else isinstance(ck[key], kind)
        if not ok or (kind is int and isinstance(ck[key], bool)):
            raise ValueError(f"{path}: the checkpoint's {key!r} entry is a {type(ck[key]).__name__}, not a "
                             f"{'tensor' if kind == 'tensor' else kind.__name__}")
    return ck


def _set_torch_threads(requested: int) -> None:
    """training.threads (0: torch's default, which follows OMP_NUM_THREADS) for torch, clamped to
    the processors of this machine with a RuntimeWarning: torch.set_num_threads(100000) crashes."""
    import torch

    from .._inputs import threads_argument

    n = threads_argument(requested, "configuration key 'training.threads'")
    if n:
        torch.set_num_threads(n)
    else:
        from .. import _core
        if _core is not None and torch.get_num_threads() > _core.max_threads():
            torch.set_num_threads(int(_core.max_threads()))


def load_data(cfg: dict, key: str, log=print):
    from ..data import load_dataset

    ds = load_dataset(cfg[key], cfg["data_format"], length_unit=cfg["length_unit"],
                      energy_unit=cfg["energy_unit"], energy_key=cfg["energy_key"], forces_key=cfg["forces_key"],
                      log=log)
    if len(ds) == 0:
        raise ValueError(f"{cfg[key]}: the dataset has no frames")
    if ds.energy is None:
        raise ValueError(f"{cfg[key]}: the dataset has no energies, which training needs")
    return ds


def make_split(n: int, cfg: dict, has_test: bool) -> dict:
    from ..data import split_indices

    fv = cfg["validation_fraction"]
    if n < (2 if has_test else 3):
        raise ValueError(f"{cfg['data']}: {n} frame(s) are too few to split into training, validation"
                         f"{'' if has_test else ' and test'} frames (at least {2 if has_test else 3} are needed)")
    if has_test:
        n_valid = max(1, int(round(fv * n)))
        s = split_indices(n, (n - n_valid, n_valid, 0), seed=cfg["seed"])
    else:
        n_test = max(1, int(round(cfg["test_fraction"] * n)))
        n_valid = max(1, int(round(fv * n)))
        s = split_indices(n, (n - n_valid - n_test, n_valid, n_test), seed=cfg["seed"])
    return {k: np.asarray(v, dtype=int) for k, v in s.items()}


_SCHEDULES = ("plateau", "cosine", "exponential")


def scheduled_lr(tr: dict, epoch: int, n_epochs: int) -> float:
    """Learning rate of ``epoch`` for the per-epoch schedules, from learning_rate at epoch 0 to
    min_learning_rate at epoch n_epochs - 1 (cosine or exponential decay)."""
    import math

    lr0, lr1 = tr["learning_rate"], min(tr["min_learning_rate"], tr["learning_rate"])
    x = min(epoch / max(n_epochs - 1, 1), 1.0)
    if tr["lr_schedule"] == "cosine":
        return lr1 + 0.5 * (lr0 - lr1) * (1 + math.cos(math.pi * x))
    return lr0 * (max(lr1, 1e-12) / lr0) ** x


def single_loss(model, b, energy_weight: float, forces_weight: float, has_forces: bool, create_graph: bool):
    """Training loss of one network on a batch: w_E mean(((E - E_ref) / N / s)^2) + w_F mean(((F - F_ref) / s)^2)
    (s = model.energy_scale, eV; E (B,) eV, F (N, 3) eV/A). Returns (loss, E, F) (F None without forces)."""
    import torch

    s = model.energy_scale
    E, F = model(b, forces=has_forces, create_graph=create_graph)
    loss = energy_weight * torch.mean(((E - b.energy) / b.n_atoms / s) ** 2)
    if has_forces:
        loss = loss + forces_weight * torch.mean(((F - b.forces) / s) ** 2)
    return loss, E, F


_COMPILED_LOSS = None


def _compiled_single_loss():
    """single_loss of a training batch (create_graph) under torch.compile, made once per process: its
    compiled code serves every later run with the same network structure and batch size (TorchDynamo
    guards on those, not on the model object), so a second training in one process does not compile
    again. Static shapes: only full batches call it (the last, smaller batch of an epoch runs eagerly)."""
    global _COMPILED_LOSS
    if _COMPILED_LOSS is None:
        import torch

        def step(model, b, energy_weight, forces_weight, has_forces):
            return single_loss(model, b, energy_weight, forces_weight, has_forces, True)[0]

        _COMPILED_LOSS = torch.compile(step, dynamic=False)
    return _COMPILED_LOSS


class Trainer:
    """Train a BPNN from a validated configuration into ``run_dir``.

    Raises ValueError (ConfigError) for a bad configuration before any work starts, and for bad
    data (naming file, frame and field).
    """

    #: the run's FlatParameters (None: the optimiser takes the parameters one by one)
    _flat = None
    _grads_checked = False
    #: the compiled training loss (training.compile; None: eager) and whether its first step ran
    _compiled = None
    _compile_checked = False
    #: what the run does about compiling, for the log and metrics.json (set by run_training)
    compile_status = None
    #: Model types whose training step torch.compile may compile (training.compile). The
    #: physics-embedded model differentiates its networks twice, which compiled graphs do not support.
    supports_compile = True

    def __init__(self, cfg: dict, run_dir, progress: bool = True, log=print):
        self.cfg = validate(cfg)
        from .config import ConfigError
        tr = self.cfg["training"]
        if tr["lr_schedule"] not in _SCHEDULES:
            raise ConfigError(f"configuration key 'training.lr_schedule': {tr['lr_schedule']!r} is not one of "
                              f"{_SCHEDULES}")
        self.run = Path(run_dir)
        self.progress = progress
        self.log = log

    # ------------------------------------------------------------------ setup
    def _prepare(self):
        import torch

        from ..descriptors import descriptor_class
        from .bpnn import featurize

        cfg = self.cfg
        tr = cfg["training"]
        _set_torch_threads(tr["threads"])
        self.dtype = torch.float64 if tr["dtype"] == "float64" else torch.float32
        import warnings

        from ..data.checks import UnitsWarning
        from ..data.readers import describe_units
        with warnings.catch_warnings(record=True) as caught:  # logged (and recorded) by load_dataset
            warnings.simplefilter("always", UnitsWarning)
            data = load_data(cfg, "data", self.log)
            test = load_data(cfg, "test_data", self.log) if cfg["test_data"] else None
        self.data_info = {}
        for key, ds in (("data", data), ("test_data", test)):
            if ds is not None:
                m = ds.metadata or {}
                self.data_info[key] = {
                    "path": str(cfg[key]), "format": m.get("format"), "ase_format": m.get("ase_format"),
                    "length_unit": m.get("length_unit_name"), "energy_unit": m.get("energy_unit_name"),
                    "angstrom_per_length_unit": m.get("length_unit"), "ev_per_energy_unit": m.get("energy_unit"),
                    "units_from": m.get("units_from"), "description": describe_units(ds),
                    "unit_warnings": [str(w.message) for w in caught if str(ds.source) in str(w.message)]}
        split = make_split(len(data), cfg, test is not None)
        self.split = split
        self.train_ds, self.valid_ds = data.subset(split["train"]), data.subset(split["valid"])
        self.test_ds = test if test is not None else data.subset(split["test"])
        self.has_forces = data.forces is not None and tr["forces_weight"] > 0
        from ase.data import atomic_numbers, chemical_symbols
        zs = sorted(set(int(z) for z in data.elements) | (set(int(z) for z in test.elements) if test else set()))
        d = cfg["descriptor"]
        data_syms = [chemical_symbols[z] for z in zs]
        self.sf = descriptor_class(d["type"]).from_config(d, data_syms)
        self.sf.check_training_elements(data_syms)
        # the model covers the descriptor's elements (GMP may add some the data does not have)
        zs = [int(atomic_numbers[s]) for s in self.sf.elements]
        # Jacobians are cached when they fit the budget, recomputed per batch otherwise
        # entries per frame: each atom and its neighbours (at most the other atoms of a molecule)
        est = sum(len(p) * (40 if pb.any() else min(len(p), 40)) for p, pb in zip(data.positions, data.pbc))
        est *= self.sf.n_features * 3 * self.dtype.itemsize / 2**20  # stored in the training dtype
        budget = tr["jacobian_cache_mb"]
        if budget is None:  # a quarter of the memory available now, 2000 to 16000 MB
            from ..sgdml.train import available_memory_bytes
            budget = min(16000.0, max(2000.0, available_memory_bytes() / 4 / 2**20))
        self.cache_jacobians = est <= budget
        self.log(f"descriptor: {self.sf}")
        self.log(f"data: {len(self.train_ds)} train / {len(self.valid_ds)} validation / {len(self.test_ds)} test "
                 f"frames; Jacobians {'cached' if self.cache_jacobians else 'recomputed per batch'} "
                 f"(~{est:.0f} MB; budget {budget:.0f} MB)")

        def feats(ds, jac):
            return [featurize(self.sf, ds.positions[i], ds.numbers[i], ds.cells[i] if ds.pbc[i].any() else None,
                              ds.pbc[i] if ds.pbc[i].any() else None, with_jacobian=jac)
                    for i in range(len(ds))]

        want_jac = self.has_forces and self.cache_jacobians
        self.train_f = feats(self.train_ds, want_jac)
        self.valid_f = feats(self.valid_ds, want_jac)
        self._feats = feats

        # statistics of the training set: feature scaling, reference energies, energy scale
        ne, F = len(zs), self.sf.n_features
        shift, scale = np.zeros((ne, F)), np.ones((ne, F))
        shared = cfg["network"]["shared"]
        for k in range(ne):
            # per element; a shared network sees one scaling for all (the element shows in the features)
            rows = np.concatenate([f.G if shared else f.G[f.species == k] for f in self.train_f])
            if len(rows):
                shift[k] = rows.mean(axis=0)
                std = rows.std(axis=0)
                scale[k] = np.where(std > 1e-12, 1.0 / np.where(std > 1e-12, std, 1.0), 1.0)
        # training range of every feature (extrapolation warnings) and each member's frame weights
        from .calibration import feature_range
        from .committee import frame_weights
        self.stats_range = feature_range(self.train_f, ne, [self.sf.n_features_per_element[e] for e in self.sf.elements])
        # Features far from 0 relative to their spread are centred here, in float64, before the cast
        # to the training dtype, and the model's shift for them is 0 (the model file gets the true
        # shift: _exported). In float32 such a feature would otherwise be rounded to a few steps of
        # its range before the model centres it, and the network would fit that rounding: GMP
        # density channels have features with |mean| / std up to 5e10 (rMD17 uracil; rmd17_table_
        # notes.md). Below 1e3 the rounding is < 1e-4 std and nothing changes.
        self.input_shift = split_shift(shift, scale)
        shift = shift - self.input_shift
        for f in self.train_f + self.valid_f:
            f.G = f.G - self.input_shift[f.species]
        self.frame_weights = frame_weights(len(self.train_ds), cfg["network"]["committee"],
                                           cfg["network"]["committee_data"], cfg["seed"])
        counts = np.array([[np.sum(f.species == k) for k in range(ne)] for f in self.train_f], dtype=float)
        # reference energies by least squares on composition; elements absent from the training
        # data (GMP descriptor.elements) get 0 (minimum-norm solution) and are listed in the model
        ref, *_ = np.linalg.lstsq(counts, self.train_ds.energy, rcond=None)
        self.untrained_elements = [self.sf.elements[k] for k in range(ne) if not counts[:, k].any()]
        if self.untrained_elements:
            self.log(f"elements without training data (reference energy 0 eV; forces and energy differences "
                     f"only): {', '.join(self.untrained_elements)}")
        resid = (self.train_ds.energy - counts @ ref) / counts.sum(axis=1)
        if self.has_forces:
            escale = float(np.sqrt(np.mean(np.concatenate([np.ravel(f) for f in self.train_ds.forces]) ** 2)))
        else:
            escale = float(np.std(resid))
        self.stats = dict(shift=shift, scale=scale, reference=ref, energy_scale=max(escale, 1e-3))
        # frames as contiguous tensors once (batches are then gathered by indexing)
        if want_jac or not self.has_forces:
            from .bpnn import DenseFrameStore, FrameStore, dense_layout_fits
            # one molecule's frames (same atoms): dense per-frame Jacobians, forces by one batched
            # matrix product (single networks; committees use the sparse layout)
            dense = (self.allow_dense_layout and want_jac and cfg["network"]["committee"] == 1 and
                     dense_layout_fits(self.train_f + self.valid_f))
            Store = DenseFrameStore if dense else FrameStore
            self.train_f = Store(self.train_f, self.train_ds.energy, self.train_ds.forces, self.dtype)
            self.valid_f = Store(self.valid_f, self.valid_ds.energy, self.valid_ds.forces, self.dtype)

    def _batch(self, ds, feats, idx, with_forces):
        from .bpnn import DenseFrameStore, FrameStore, collate, featurize

        if isinstance(feats, (FrameStore, DenseFrameStore)):
            return feats.batch(idx, with_forces)

        fr = [feats[i] for i in idx]
        if with_forces and fr[0].values is None:  # recompute Jacobians on the fly (centred as in _prepare)
            fr = [featurize(self.sf, ds.positions[i], ds.numbers[i], ds.cells[i] if ds.pbc[i].any() else None,
                            ds.pbc[i] if ds.pbc[i].any() else None) for i in idx]
            for f in fr:
                f.G = f.G - self.input_shift[f.species]
        forces = [ds.forces[i] for i in idx] if (with_forces and ds.forces is not None) else None
        return collate(fr, ds.energy[idx], forces, self.dtype)

    def _loss(self, model, b, create_graph, frames=None):
        import torch

        tr = self.cfg["training"]
        if len(model.members) > 1:  # committee: each member on its own loss and frame weights
            from .committee import committee_loss
            w = None if frames is None else self.frame_weights[:, frames]
            return committee_loss(model, b, w, tr["energy_weight"], tr["forces_weight"], self.has_forces,
                                  create_graph)
        return single_loss(model, b, tr["energy_weight"], tr["forces_weight"], self.has_forces, create_graph)

    def _compile_plan(self, epochs: int):
        """Whether this run compiles its training step (training.compile) and why, as (bool, reason).

        Compiled: torch.compile (TorchInductor) of the loss of a full training batch, forward and
        backward; the last, smaller batch of an epoch and every evaluation stay eager. Supported for
        single networks on a dense store (every frame the same atoms, e.g. an rMD17 molecule).
        ``auto`` compiles when the run has at least AUTO_COMPILE_STEPS full batches. Raises
        ValueError for ``true`` where compiling is not supported."""
        from .bpnn import DenseFrameStore

        mode = self.cfg["training"]["compile"]
        if mode is False:
            return False, "off (training.compile: false)"
        why_not = None
        if not self.supports_compile:
            why_not = f"model type {self.cfg['model']!r} differentiates its networks twice"
        elif self.cfg["network"]["committee"] > 1:
            why_not = "committees are trained eagerly"
        elif not isinstance(self.train_f, DenseFrameStore):
            why_not = "the frames differ in atoms (or Jacobians are recomputed per batch): no dense store"
        if why_not is not None:
            if mode is True:
                raise ValueError(f"configuration key 'training.compile': true is not supported here: {why_not}; "
                                 f"use auto or false")
            return False, f"off ({why_not})"
        steps = epochs * (len(self.train_ds) // self.cfg["training"]["batch_size"])
        if mode == "auto" and steps < AUTO_COMPILE_STEPS:
            return False, f"off (auto: {steps} full batches < {AUTO_COMPILE_STEPS})"
        return True, ("on (training.compile: true)" if mode is True else
                      f"on (auto: {steps} full batches >= {AUTO_COMPILE_STEPS})")

    def _compile_loss(self, model):
        """The training loss of a batch, compiled (called as fn(model, batch) -> loss)."""
        tr = self.cfg["training"]
        step = _compiled_single_loss()
        return lambda m, b: step(m, b, tr["energy_weight"], tr["forces_weight"], self.has_forces)

    def _zero_grad(self, opt) -> None:
        if self._flat is not None:
            self._flat.zero_grad()
        else:
            opt.zero_grad()

    def _compiled_step(self, model, b, opt):
        """Loss and backward of a full batch through the compiled loss; returns the loss. The first
        call compiles: with ``auto``, a failure to compile (e.g. no C++ compiler for TorchInductor)
        is logged and the run continues eagerly; with ``true`` it raises RuntimeError."""
        if self._compile_checked:
            loss = self._compiled(model, b)
            loss.backward()
            return loss
        self._compile_checked = True
        try:
            loss = self._compiled(model, b)
            loss.backward()
            return loss
        except Exception as exc:  # noqa: BLE001 - any compiler failure; reported, then eager
            why = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
            if self.cfg["training"]["compile"] is True:
                raise RuntimeError(f"training.compile: true, but torch.compile failed ({type(exc).__name__}: "
                                   f"{why}); use compile: false to train without it") from exc
            self.log(f"torch.compile failed ({type(exc).__name__}: {why}); training continues without it")
            self._compiled, self.compile_status = None, f"off (torch.compile failed: {type(exc).__name__})"
            self._zero_grad(opt)
            loss, _, _ = self._loss(model, b, create_graph=True)
            loss.backward()
            return loss

    def _train_epoch(self, model, opt, ema, order) -> float:
        """One pass over the training frames in ``order`` (indices into the training set), one
        optimiser step (and weight-average update, if ``ema``) per batch; returns the sum of the
        batch losses weighted by their frame counts. Full batches run the compiled loss when the
        run compiles (training.compile)."""
        bs = self.cfg["training"]["batch_size"]
        tot = 0.0
        for s in range(0, len(order), bs):
            idx = order[s:s + bs]
            b = self._batch(self.train_ds, self.train_f, idx, self.has_forces)
            self._zero_grad(opt)
            if self._compiled is not None and len(idx) == bs:
                loss = self._compiled_step(model, b, opt)
            else:
                loss, _, _ = self._loss(model, b, create_graph=True, frames=idx)
                loss.backward()
            if self._flat is not None and not self._grads_checked:
                self._flat.check_grads()  # backward accumulated into the buffer (checked once)
                self._grads_checked = True
            opt.step()
            if ema is not None:
                ema.update()
            tot += loss.item() * len(idx)
        return tot

    def _evaluate_torch(self, model, ds, feats):
        import torch

        from .bpnn import DenseFrameStore

        bs = self.cfg["training"]["batch_size"]
        if isinstance(feats, DenseFrameStore):  # no graph is kept: fewer, larger batches (same values)
            bs = max(bs, EVAL_BATCH_FRAMES)
        tot, ep, fp = 0.0, [], []
        for start in range(0, len(ds), bs):
            idx = np.arange(start, min(start + bs, len(ds)))
            b = self._batch(ds, feats, idx, self.has_forces)
            with torch.no_grad():  # forces are explicit: no graph is needed to evaluate them
                loss, E, F = self._loss(model, b, create_graph=False)
            tot += loss.item() * len(idx)
            ep.append(E.detach().double().numpy())
            if F is not None:
                f = F.detach().double().numpy()
                fp.extend(np.split(f, np.cumsum(b.n_atoms.long().numpy())[:-1]))
        m = error_metrics(np.concatenate(ep), ds.energy, ds.n_atoms, fp if fp else None,
                          ds.forces if fp else None)
        return tot / len(ds), m

    #: Model types whose forward pass takes the dense per-frame Jacobians (DenseFrameStore).
    allow_dense_layout = True

    def _make_model(self):
        """The PyTorch model of this run (after _prepare)."""
        from .bpnn import TorchBPNN

        cfg, net = self.cfg, self.cfg["network"]
        return TorchBPNN(self.sf, net["hidden"], net["activation"], net["committee"], self.stats["shift"],
                         self.stats["scale"], self.stats["reference"], self.stats["energy_scale"], seed=cfg["seed"],
                         shared=net["shared"])

    # ------------------------------------------------------------------ main loop
    def run_training(self, resume: bool = False) -> dict:
        import torch
        import yaml

        ckpt_path = self.run / "checkpoint.pt"
        if ckpt_path.exists() and not resume:
            raise FileExistsError(f"{self.run} already holds a training run: use --resume to continue it, "
                                  f"or choose another output folder")
        cfg, tr = self.cfg, self.cfg["training"]
        torch.manual_seed(cfg["seed"])
        self._prepare()  # reads and checks the data (units) before the run folder is created
        # compiling planned on the whole run (a resumed run trains as the uninterrupted one would);
        # training.compile: true where it is not supported fails here, before the folder exists
        use_compile, self.compile_status = self._compile_plan(tr["epochs"])
        self.run.mkdir(parents=True, exist_ok=True)
        _atomic_write_text(self.run / "config.yaml", yaml.safe_dump(cfg, sort_keys=False))
        _atomic_write_text(self.run / "split.json", json.dumps({k: v.tolist() for k, v in self.split.items()}))

        model = self._make_model().to(self.dtype)
        # all parameters as views of one buffer (FlatParameters): the step, the gradient zeroing and the
        # weight average are one operation each; fused: one vectorised kernel (~4x faster per step than
        # the default per-tensor loop on CPU for these small networks)
        try:
            self._flat = FlatParameters(model)
            params = [self._flat.param]
        except ValueError:  # mixed dtypes or devices: the parameters one by one
            self._flat, params = None, list(model.parameters())
        self._grads_checked = False
        if tr["weight_decay"] > 0:  # decoupled weight decay (Loshchilov & Hutter, ICLR 2019)
            opt = torch.optim.AdamW(params, lr=tr["learning_rate"], weight_decay=tr["weight_decay"], fused=True)
        else:
            opt = torch.optim.Adam(params, lr=tr["learning_rate"], fused=True)
        plateau = tr["lr_schedule"] == "plateau"
        sched = (torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=tr["lr_factor"], patience=tr["lr_patience"],
                                                            min_lr=tr["min_learning_rate"]) if plateau else None)
        # length of the decay schedule: epochs, or (with max_minutes) refitted after every epoch from the
        # third on to the epochs that fit in the time left, so that the decay completes in time
        n_sched, fitted = tr["epochs"], False
        history: List[dict] = []
        # best["loss"] holds the selection score (selection_score; the validation loss with selection: loss)
        best = {"loss": float("inf"), "state": None, "epoch": -1}
        start_epoch = 0
        ema = WeightAverage(model, tr["ema_decay"], self._flat) if tr["ema_decay"] > 0 else None
        patience = early_stopping_patience(tr)
        if resume and ckpt_path.exists():
            ck = _load_checkpoint(ckpt_path)
            if ck["config"] != cfg:
                raise ValueError(f"{ckpt_path}: the configuration differs from the checkpoint's; resume with the "
                                 f"same configuration (see {self.run / 'config.yaml'})")
            try:
                history, best, start_epoch = ck["history"], ck["best"], ck["epoch"] + 1
                float(best["loss"]), int(best["epoch"])
                if best["state"] is not None:
                    model.load_state_dict(best["state"])  # checked now (restored after training)
                model.load_state_dict(ck["model"])
                # a checkpoint of a version before the flat buffer holds one optimiser state per tensor
                opt.load_state_dict(self._flat.optimizer_state(ck["optimizer"]) if self._flat is not None
                                    else ck["optimizer"])
                if ema is not None:
                    ema.load_state_dict(ck["ema"])
                # a checkpoint written before the trainer centred features (split_shift) holds
                # their mean in the model's shift buffers, which would be subtracted twice
                for m in (model, ema.averaged if ema is not None else None):
                    if m is not None:
                        _clear_input_shift(m, self.input_shift)
                if plateau:
                    sched.load_state_dict(ck["scheduler"])
                else:
                    n_sched, fitted = int(ck["scheduler"]["schedule_epochs"]), bool(ck["scheduler"]["fitted"])
                torch.set_rng_state(ck["torch_rng"])
            except (KeyError, TypeError, ValueError, RuntimeError, AttributeError, IndexError) as exc:
                why = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                raise ValueError(f"{ckpt_path}: the checkpoint does not fit this run ({type(exc).__name__}: "
                                 f"{why[:300]}); delete it to start the run over") from None
            self.log(f"resumed from {ckpt_path} after epoch {ck['epoch']}")
        elif resume:
            self.log(f"no checkpoint in {self.run}: starting from scratch")

        self._compiled = self._compile_loss(model) if use_compile else None
        self._compile_checked = False
        self.log(f"torch.compile of the training step: {self.compile_status}")

        t_start = time.time()
        last_checkpoint = -float("inf")
        bar = None
        if self.progress:
            try:
                from tqdm.auto import tqdm
                bar = tqdm(total=tr["epochs"], initial=start_epoch, desc="training", unit="epoch")
            except ImportError:
                bar = None
        stop_reason = "epochs reached"
        try:
            for epoch in range(start_epoch, tr["epochs"]):
                if not plateau:
                    for g in opt.param_groups:
                        g["lr"] = scheduled_lr(tr, epoch, n_sched)
                rng = np.random.default_rng([cfg["seed"], epoch])
                order = rng.permutation(len(self.train_ds))
                model.train()
                tot = self._train_epoch(model, opt, ema, order)
                model.eval()
                # the candidates for model.afm: the weights and their moving average (which is better
                # once the average spans many steps; in the first epochs it lags behind the weights)
                judged, weights = model, "raw"
                vloss, vm = self._evaluate_torch(model, self.valid_ds, self.valid_f)
                score = selection_score(tr, vloss, vm, float(model.energy_scale))
                if ema is not None:
                    ema_loss, ema_m = self._evaluate_torch(ema.averaged, self.valid_ds, self.valid_f)
                    ema_score = selection_score(tr, ema_loss, ema_m, float(model.energy_scale))
                    if ema_score <= score:
                        judged, weights, vloss, vm, score = ema.averaged, "average", ema_loss, ema_m, ema_score
                if plateau:
                    sched.step(vloss)
                elif tr["max_minutes"] and epoch - start_epoch >= 2:
                    # refit the schedule length to the time left, from the mean epoch time so far
                    per_epoch = (time.time() - t_start) / (epoch - start_epoch + 1)
                    left = tr["max_minutes"] * 60 - (time.time() - t_start)
                    n_sched = min(tr["epochs"], max(epoch + 2, epoch + 1 + int(0.98 * left / per_epoch)))
                    if not fitted:
                        self.log(f"learning-rate schedule fitted to the time limit: ~{n_sched} epochs")
                    fitted = True
                    if bar is not None and bar.total != n_sched:  # the ETA follows the time limit
                        bar.total = n_sched
                        bar.refresh()
                rec = {"epoch": epoch, "train_loss": tot / len(order), "valid_loss": vloss,
                       "learning_rate": opt.param_groups[0]["lr"], "valid_energy_mae_per_atom": vm["energy_mae_per_atom"],
                       "seconds": round(time.time() - t_start, 2)}
                if "forces_mae" in vm:
                    rec["valid_forces_mae"] = vm["forces_mae"]
                rec["selection_score"] = score
                rec["weights"] = weights  # raw | average: the better of the two on the validation frames
                history.append(rec)
                if score < best["loss"]:
                    best = {"loss": score, "epoch": epoch,
                            "state": {k: v.detach().clone() for k, v in judged.state_dict().items()}}
                stop = None
                if patience is not None and epoch - best["epoch"] >= patience:
                    stop = "early stopping"
                elif not plateau and epoch + 1 >= n_sched:
                    stop = "time limit" if fitted and n_sched < tr["epochs"] else "epochs reached"
                elif tr["max_minutes"] and (time.time() - t_start) / 60 > tr["max_minutes"]:
                    stop = "time limit"
                # the checkpoint: after the first and the last epoch and at most every CHECKPOINT_SECONDS
                # in between (writing it costs ~8 ms, a few per cent of a short epoch); it does not
                # influence training, and --resume replays from it to the same result
                if stop or epoch + 1 == tr["epochs"] or time.time() - last_checkpoint >= CHECKPOINT_SECONDS:
                    _torch_save_atomic({"config": cfg, "epoch": epoch, "model": model.state_dict(),
                                        "optimizer": opt.state_dict(),
                                        "scheduler": sched.state_dict() if plateau else
                                        {"schedule_epochs": n_sched, "fitted": fitted},
                                        "history": history, "best": best, "torch_rng": torch.get_rng_state(),
                                        "ema": ema.state_dict() if ema is not None else {}},
                                       ckpt_path)
                    last_checkpoint = time.time()
                if bar is not None:
                    post = {"loss": f"{rec['train_loss']:.3g}", "val": f"{vloss:.3g}",
                            "E_meV/at": f"{1000 * vm['energy_mae_per_atom']:.2f}"}
                    if "forces_mae" in vm:
                        post["F_meV/A"] = f"{1000 * vm['forces_mae']:.1f}"
                    bar.set_postfix(post)
                    bar.update(1)
                if stop:
                    stop_reason = stop
                    break
        except KeyboardInterrupt:
            if bar is not None:
                bar.close()
            self.log(f"\ninterrupted: the last checkpoint (written at most {CHECKPOINT_SECONDS} s of training apart) "
                     f"is in {ckpt_path}; continue with --resume")
            if best["state"] is not None:  # keep what was learnt: model.afm + metrics.json (stop_reason)
                model.load_state_dict(best["state"])
                self._finish(model, history, best, "interrupted", time.time() - t_start)
            raise
        if bar is not None:
            bar.close()
        train_seconds = time.time() - t_start
        model.load_state_dict(best["state"])
        return self._finish(model, history, best, stop_reason, train_seconds)

    def _stop_message(self, reason: str, history, best, seconds: float) -> str:
        tr = self.cfg["training"]
        why = {"epochs reached": f"the epoch limit ({tr['epochs']}) was reached",
               "early stopping": f"early stopping: no better validation {self._selection_name()} for "
                                 f"{early_stopping_patience(tr)} epochs",
               "time limit": f"the time limit (max_minutes {tr['max_minutes']:g}) was reached; the model may be "
                             f"under-trained and the result depends on machine load" if tr["max_minutes"] else
                             "the time limit was reached",
               "interrupted": "interrupted"}[reason]
        which = ""
        if tr["ema_decay"] > 0 and 0 <= best["epoch"] < len(history):
            which = {"average": ", moving-average weights", "raw": ", raw weights"}[history[best["epoch"]]["weights"]]
        return (f"training stopped after {len(history)} epochs ({seconds:.0f} s): {why}. model.afm holds the "
                f"best epoch ({best['epoch']}, lowest validation {self._selection_name()}{which})")

    def _selection_name(self) -> str:
        return "loss" if self.cfg["training"]["selection"] == "loss" else "MAE score"

    def _finish(self, model, history, best, stop_reason, train_seconds) -> dict:
        from .. import load, save_model

        meta = {"training_data_sha256": self.train_ds.sha256(), "source": f"atomforge train on {self.cfg['data']}",
                "description": f"{'shared' if self.cfg['network']['shared'] else 'per-element'} networks on "
                               f"{self.sf.type} trained {len(history)} epochs (best {best['epoch']})"}
        if self.untrained_elements:
            meta["untrained_elements"] = ",".join(self.untrained_elements)
        params = _exported(model, self.input_shift).to_parameters(meta)
        params.feature_range = getattr(self, "stats_range", None)
        save_model(self.run / "model.afm", params)
        pot = load(self.run / "model.afm")
        uncertainty = None
        if params.committee_size > 1:  # calibrate the committee on the validation frames
            from .calibration import calibrate_model
            uncertainty = calibrate_model(self.run / "model.afm", params, self.valid_ds, self.test_ds, self.run)
            pot = load(self.run / "model.afm")

        pot.warn_extrapolation = False  # counted in metrics.json instead (test frames outside the training range)
        ep, fp, test_m = evaluate_dataset(pot, self.test_ds)
        test_m["frames_outside_training_range"] = pot.extrapolation_stats["extrapolating_evaluations"]
        _, _, valid_m = evaluate_dataset(pot, self.valid_ds)
        tr = self.cfg["training"]
        message = self._stop_message(stop_reason, history, best, train_seconds)
        self.log(message)
        metrics = {"units": UNITS, "test": test_m, "validation": valid_m,
                   "training": {"epochs_run": len(history), "best_epoch": best["epoch"], "stop_reason": stop_reason,
                                "stop_message": message, "epochs_limit": tr["epochs"],
                                "early_stopping_patience": early_stopping_patience(tr),
                                "selection": tr["selection"], "ema_decay": tr["ema_decay"],
                                "max_minutes": tr["max_minutes"],
                                "compile": self.compile_status,
                                "wall_seconds": round(train_seconds, 1), "n_train": len(self.train_ds),
                                "n_validation": len(self.valid_ds), "n_test": len(self.test_ds)},
                   "data": self.data_info,
                   "evaluated_by": "atomforge C++ core (model.afm)"}
        if uncertainty is not None:
            metrics["uncertainty"] = uncertainty
        _atomic_write_text(self.run / "metrics.json", json.dumps(metrics, indent=2))
        with open(self.run / "history.csv", "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=list(history[0].keys()))
            w.writeheader()
            w.writerows(history)
        plot_learning_curve(history, self.run / "learning_curve.png", best_epoch=best["epoch"],
                            stop_reason=stop_reason)
        has_f = self.test_ds.forces is not None
        plot_parity(ep, self.test_ds.energy, self.test_ds.n_atoms, fp if has_f else None,
                    self.test_ds.forces if has_f else None, self.run / "parity.png")
        return metrics


def train(config=None, run_dir="run", resume=False, progress=True, log=print, **overrides) -> dict:
    """Train from a YAML path or dict plus keyword overrides (e.g. data=..., test_data=...).
    ``model: dipole`` trains a charge/dipole model (:mod:`atomforge.train.dipole_trainer`),
    ``model: pinn`` a physics-embedded model (:class:`atomforge.train.pinn.PinnTrainer`)."""
    from .dipole_trainer import is_dipole_config, train_dipole
    if is_dipole_config(config, overrides):
        return train_dipole(config, run_dir, resume=resume, progress=progress, log=log, **overrides)
    if isinstance(config, dict):
        from .config import _merge, defaults_for
        model = overrides.get("model") or config.get("model")
        cfg = validate(_merge(_merge(defaults_for(model), config, ""),
                              {k: v for k, v in overrides.items() if v is not None}, ""))
    else:
        cfg = load_config(config, overrides)
    if cfg["model"] == "pinn":
        from .pinn import PinnTrainer
        return PinnTrainer(cfg, run_dir, progress=progress, log=log).run_training(resume=resume)
    return Trainer(cfg, run_dir, progress=progress, log=log).run_training(resume=resume)
