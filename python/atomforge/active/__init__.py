"""Adaptive sampling (active learning by query by committee) with quantum-chemistry labellers:
:func:`adaptive_sampling`, the ``atomforge adaptive-sampling`` command (see :mod:`.sampler`)."""
from .config import AdaptiveConfigError, DEFAULTS, load_config
from .labellers import LabelError, label
from .sampler import adaptive_sampling

__all__ = ["adaptive_sampling", "AdaptiveConfigError", "DEFAULTS", "load_config", "LabelError", "label"]
