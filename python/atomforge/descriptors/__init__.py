"""Descriptors: Behler-Parrinello symmetry functions (GMP descriptors come later)."""
from .symmetry_functions import (CUTOFF_FUNCTIONS, DescriptorJacobian, SymmetryFunctions,
                                 VJPResult)

__all__ = ["SymmetryFunctions", "VJPResult", "DescriptorJacobian", "CUTOFF_FUNCTIONS"]
