"""Descriptors of atomic environments, evaluated by the compiled core.

Registered types (``descriptor.type`` in configurations and model files):

``acsf``  :class:`SymmetryFunctions`, Behler-Parrinello atom-centred symmetry functions G2/G4/G5.
``gmp``   :class:`GaussianMultipoles`, Gaussian multipole descriptors (element-agnostic).

Each is a :class:`Descriptor` (``compute``, ``vjp``, ``jacobian``, ``records``); new types register
with :func:`register` and add one import line below (docs/architecture.md).
"""
from .base import (CUTOFF_FUNCTIONS, Descriptor, DescriptorJacobian, VJPResult, descriptor_class,
                   descriptor_from_dict, descriptor_from_records, descriptor_types, register)
from .symmetry_functions import SymmetryFunctions  # registers "acsf"
from .gmp import GaussianMultipoles  # registers "gmp"

__all__ = ["Descriptor", "SymmetryFunctions", "GaussianMultipoles", "VJPResult", "DescriptorJacobian", "CUTOFF_FUNCTIONS",
           "register", "descriptor_class", "descriptor_from_dict", "descriptor_from_records", "descriptor_types"]
