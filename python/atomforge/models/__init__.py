"""Model types: the Python side of the core's model registry.

Each registered model type has a parameter class that converts between model-file records and
parameters without the compiled extension (``from_records``, ``to_records``, ``describe``); the
compiled core evaluates every type through one interface (:func:`atomforge.load`).

Registered types (``model_type`` in model files): ``bpnn`` (:class:`BPNNParameters`, atomic
neural networks on any descriptor) and ``sgdml`` (:class:`atomforge.sgdml.SGDMLParameters`) and ``dipole``
(:class:`atomforge.models.dipole.DipoleParameters`, atomic charges and dipole moments) and ``pinn``
(:class:`atomforge.models.pinn.PinnParameters`, atomic networks plus Ewald electrostatics of
network-predicted charges).
Adding a type: its parameter class, one line in ``_TYPES`` below, and its C++ folder under
``cpp/src/models/`` (docs/architecture.md).
"""
from __future__ import annotations

import importlib
from typing import Dict, Tuple

from ..model_file import ModelFileError, read_records, write_records
from .bpnn import BPNNParameters

#: model_type -> (module, class) of its parameter class (imported on first use).
_TYPES: Dict[str, Tuple[str, str]] = {
    "bpnn": ("atomforge.models.bpnn", "BPNNParameters"),
    "sgdml": ("atomforge.sgdml.model", "SGDMLParameters"),
    "dipole": ("atomforge.models.dipole", "DipoleParameters"),
    "pinn": ("atomforge.models.pinn", "PinnParameters"),
}


def model_types() -> Dict[str, type]:
    """Registered parameter classes by model type."""
    return {t: model_class(t) for t in _TYPES}


def model_class(model_type: str) -> type:
    """The parameter class of ``model_type``. Raises ModelFileError listing the known types."""
    if model_type not in _TYPES:
        raise ModelFileError(f"unsupported model_type {model_type!r} (this atomforge knows: "
                             f"{', '.join(sorted(_TYPES))})")
    module, name = _TYPES[model_type]
    return getattr(importlib.import_module(module), name)


def read_model(source):
    """Read a model file (path or bytes) into its parameter class, for any registered model type,
    without the compiled extension. Raises ModelFileError (missing, corrupt, newer format,
    unknown model type, inconsistent records)."""
    where = "<bytes>" if isinstance(source, (bytes, bytearray, memoryview)) else str(source)
    _, rec = read_records(source)
    mt = rec.get("model_type")
    if not isinstance(mt, str):
        raise ModelFileError(f"{where}: missing record 'model_type'")
    try:
        cls = model_class(mt)
    except ModelFileError as exc:
        raise ModelFileError(f"{where}: {exc}") from None
    return cls.from_records(rec, where)


def save_model(path, params) -> None:
    """Write a model file atomically from any parameter object with ``to_records()``. Raises
    ModelFileError if the parameters are inconsistent."""
    write_records(path, params.to_records())


__all__ = ["BPNNParameters", "read_model", "save_model", "model_class", "model_types"]
