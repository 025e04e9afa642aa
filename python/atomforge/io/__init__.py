"""File readers. n2p2 / RuNNer: ``input.nn`` settings, ``scaling.data`` statistics and
``input.data`` structures (see :mod:`atomforge.io.n2p2`)."""
from .n2p2 import (CUTOFF_TYPES, N2P2Normalization, N2P2Scaling, N2P2Settings, ScalingStats,
                   read_input_data, read_input_nn, read_scaling_data)

__all__ = ["read_input_nn", "read_scaling_data", "read_input_data", "N2P2Settings", "N2P2Scaling",
           "N2P2Normalization", "ScalingStats", "CUTOFF_TYPES"]
