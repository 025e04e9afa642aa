"""atomforge: machine-learned interatomic potentials with a compiled C++ core.

Units everywhere in the Python API: Angstrom, eV (forces eV/Angstrom, virial eV).
"""
from __future__ import annotations

__version__ = "0.1.0"

try:
    from . import _core
except ImportError as exc:  # pragma: no cover - only when the package was not built
    raise ImportError(
        "atomforge's compiled core (atomforge._core) is missing: install the package with "
        "'pip install .' from the source tree rather than importing it from python/"
    ) from exc

from .descriptors import DescriptorJacobian, SymmetryFunctions, VJPResult  # noqa: E402


def build_info() -> str:
    """One line describing the compiled core: C++ standard, OpenMP threads, CUDA devices."""
    return _core.build_info()


__all__ = ["SymmetryFunctions", "VJPResult", "DescriptorJacobian", "build_info", "__version__"]
