"""Training in Python (PyTorch) on descriptors and Jacobians from the compiled core."""
from .config import DEFAULTS, ConfigError, load_config
from .trainer import Trainer, train

__all__ = ["train", "Trainer", "load_config", "ConfigError", "DEFAULTS"]
