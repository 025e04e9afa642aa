"""atomforge: machine-learned interatomic potentials with a compiled C++ core.

Units everywhere in the Python API: Angstrom, eV (forces eV/Angstrom, virial eV).
"""
from __future__ import annotations

__version__ = "0.1.0"

from .model_file import ModelFileError  # noqa: E402
from .models import BPNNParameters, read_model, save_model  # noqa: E402

try:
    from . import _core
except ImportError as exc:  # the model-file reader/writer still works without the extension
    _core = None
    _CORE_ERROR = exc

from .descriptors import Descriptor, DescriptorJacobian, SymmetryFunctions, VJPResult  # noqa: E402

if _core is not None:
    from .potential import AtomsTooClose, ExtrapolationWarning, Potential, Result, load  # noqa: E402
else:
    def __getattr__(name):
        if name in ("Potential", "Result", "load", "AtomsTooClose", "ExtrapolationWarning"):
            raise ImportError(
                f"atomforge.{name} needs the compiled core (atomforge._core), which failed to import "
                f"({_CORE_ERROR}); install the package with 'pip install .'")
        raise AttributeError(name)


def build_info() -> str:
    """One line describing the compiled core: C++ standard, OpenMP threads, SIMD level (AVX-512, AVX2
    or baseline, and whether 512-bit vectors are used), CUDA devices, registered types."""
    if _core is None:
        return f"atomforge core not available ({_CORE_ERROR})"
    return _core.build_info()


__all__ = ["Descriptor", "SymmetryFunctions", "VJPResult", "DescriptorJacobian", "build_info", "__version__",
           "load", "Potential", "Result", "AtomsTooClose", "ExtrapolationWarning", "BPNNParameters", "read_model",
           "save_model", "ModelFileError"]
