"""OpenMM integration: ``AtomForgeForce``, an OpenMM Force evaluating an atomforge model.

Needs the ``openmm`` wheel of exactly the version the plugin is built against
(``pip install 'atomforge[openmm]'``, i.e. ``openmm==8.6.1``). Importing this module loads the
plugin's Reference and CPU kernels into OpenMM (``openmm.Platform.loadPluginLibrary``)::

    import openmm
    from atomforge.openmm import AtomForgeForce, create_system, add_to_system

    force = AtomForgeForce("model.afm", atomic_numbers)          # all particles, non-periodic
    force = AtomForgeForce(model_bytes, [8, 1, 1], [10, 11, 12], True)  # a subset, periodic
    system.addForce(force)

OpenMM units at the interface (nm, kJ/mol); the model's eV and Angstrom are converted inside.
The model bytes are embedded in the Force, so ``XmlSerializer`` output is self-contained;
``AtomForgeForce.cast(system.getForce(i))`` recovers the typed Force from a deserialized System.
Nothing can be changed in a live Context (there is no ``updateParametersInContext``): change the
Force and call ``context.reinitialize(preserveState=True)``. See docs/openmm.md.
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Iterable, Optional, Sequence

import openmm

#: The openmm wheel version the plugin is compiled against (OpenMM's C++ ABI and SWIG runtime).
OPENMM_VERSION = "8.6.1"
_KERNEL_LIBRARIES = ("libAtomForgeOpenMMReference.so", "libAtomForgeOpenMMCPU.so")

if openmm.version.short_version.split(".dev")[0] != OPENMM_VERSION:
    raise ImportError(f"atomforge.openmm is built against openmm=={OPENMM_VERSION}, but openmm "
                      f"{openmm.version.short_version} is installed: pip install openmm=={OPENMM_VERSION}")

try:
    from .atomforgeopenmm import AtomForgeForce  # noqa: E402  (loads libAtomForgeOpenMM.so)
except ImportError as exc:  # pragma: no cover - depends on the build
    raise ImportError(f"atomforge was built without the OpenMM plugin ({exc}); install openmm=={OPENMM_VERSION} "
                      f"and swig before building atomforge") from None

from ..units import CONSTANTS as _CONSTANTS  # noqa: E402  (the core's one table)

#: kJ/mol per eV and Angstrom per nm: the factors the plugin's kernels use (atomforge/units.hpp).
EV_TO_KJ_PER_MOL = _CONSTANTS["ev_in_kj_per_mol"]
NM_TO_ANGSTROM = _CONSTANTS["nm_in_angstrom"]

__all__ = ["AtomForgeForce", "create_system", "add_to_system", "plugin_dir", "load_kernels", "OPENMM_VERSION",
           "EV_TO_KJ_PER_MOL", "NM_TO_ANGSTROM"]


def plugin_dir() -> str:
    """Folder holding the kernel libraries (``$ATOMFORGE_OPENMM_PLUGIN_DIR`` overrides it)."""
    return os.environ.get("ATOMFORGE_OPENMM_PLUGIN_DIR") or str(Path(__file__).resolve().parent)


_loaded = False


def load_kernels() -> None:
    """Register the Reference and CPU kernels with OpenMM (done once, on import)."""
    global _loaded
    if _loaded:
        return
    for name in _KERNEL_LIBRARIES:
        path = Path(plugin_dir()) / name
        if not path.exists():
            raise ImportError(f"{path} does not exist: atomforge was built without the OpenMM plugin")
        openmm.Platform.loadPluginLibrary(str(path))
    _loaded = True


load_kernels()


def _model_arg(model):
    """A path (str/PathLike) or the model's bytes, as AtomForgeForce accepts them."""
    if isinstance(model, (bytes, bytearray, memoryview)):
        return bytes(model)
    return os.fspath(model)


def _atomic_numbers(topology, atoms: Optional[Sequence[int]] = None):
    topo_atoms = list(topology.atoms())
    idx = range(len(topo_atoms)) if atoms is None else atoms
    z = []
    for i in idx:
        el = topo_atoms[i].element
        if el is None:
            raise ValueError(f"atom {i} ({topo_atoms[i].name}) of the topology has no element")
        z.append(int(el.atomic_number))
    return z


def create_system(topology, model, *, removeCMMotion: bool = True, periodic: Optional[bool] = None,
                  force_group: int = 0) -> openmm.System:
    """An openmm.System where the model gives all interactions (pure ML).

    Masses come from the topology's elements; the System is periodic (with the topology's box
    vectors, triclinic allowed) when the topology has box vectors, unless ``periodic`` says
    otherwise. ``model``: a path or the model file's bytes.
    """
    system = openmm.System()
    for atom in topology.atoms():
        if atom.element is None:
            raise ValueError(f"atom {atom.index} ({atom.name}) of the topology has no element")
        system.addParticle(atom.element.mass)
    box = topology.getPeriodicBoxVectors()
    if periodic is None:
        periodic = box is not None
    elif not isinstance(periodic, bool) and type(periodic).__name__ != "bool_":
        raise ValueError(f"periodic must be True, False or None, got {periodic!r}")
    if periodic:
        if box is None:
            raise ValueError("periodic=True but the topology has no periodic box vectors")
        system.setDefaultPeriodicBoxVectors(*box)
    force = AtomForgeForce(_model_arg(model), _atomic_numbers(topology), [], bool(periodic))
    force.setForceGroup(force_group)
    system.addForce(force)
    if removeCMMotion:
        system.addForce(openmm.CMMotionRemover())
    return system


def add_to_system(system: openmm.System, topology, model, atoms: Iterable[int], remove_classical: bool = True,
                  force_group: int = 0) -> AtomForgeForce:
    """Add an AtomForgeForce for the particles ``atoms`` to a classical ``system`` (in place).

    With ``remove_classical`` (default), the classical interactions *within* that region are
    switched off, in the spirit of openmm-ml's ``createMixedSystem``: harmonic bonds and angles,
    periodic and RB torsions and CMAP terms whose atoms all lie in the region get zero force
    constants; every pair of region atoms becomes a zeroed exception of each NonbondedForce and an
    exclusion of each CustomNonbondedForce. Interactions between the region and the rest stay
    classical (mechanical embedding). Custom bonded forces cannot be zeroed generically and are
    left as they are (a warning names them). Periodicity follows the System. Returns the Force.
    """
    atoms = [int(a) for a in atoms]
    region = set(atoms)
    if len(region) != len(atoms):
        raise ValueError("atoms lists a particle twice")
    n = system.getNumParticles()
    bad = [a for a in atoms if a < 0 or a >= n]
    if bad:
        raise ValueError(f"atom index {bad[0]} is out of range (the System has {n} particles)")
    z = _atomic_numbers(topology, atoms)
    if remove_classical:
        _remove_classical(system, sorted(region))
    force = AtomForgeForce(_model_arg(model), z, atoms, bool(system.usesPeriodicBoundaryConditions()))
    force.setForceGroup(force_group)
    system.addForce(force)
    return force


def _remove_classical(system: openmm.System, region: Sequence[int]) -> None:
    inside = set(region)
    skipped = []
    for k, f in enumerate(system.getForces()):
        if isinstance(f, openmm.HarmonicBondForce):
            for i in range(f.getNumBonds()):
                a, b, r0, _ = f.getBondParameters(i)
                if a in inside and b in inside:
                    f.setBondParameters(i, a, b, r0, 0.0)
        elif isinstance(f, openmm.HarmonicAngleForce):
            for i in range(f.getNumAngles()):
                a, b, c, t0, _ = f.getAngleParameters(i)
                if {a, b, c} <= inside:
                    f.setAngleParameters(i, a, b, c, t0, 0.0)
        elif isinstance(f, openmm.PeriodicTorsionForce):
            for i in range(f.getNumTorsions()):
                a, b, c, d, per, phase, _ = f.getTorsionParameters(i)
                if {a, b, c, d} <= inside:
                    f.setTorsionParameters(i, a, b, c, d, per, phase, 0.0)
        elif isinstance(f, openmm.RBTorsionForce):
            for i in range(f.getNumTorsions()):
                p = f.getTorsionParameters(i)
                if set(p[:4]) <= inside:
                    f.setTorsionParameters(i, *p[:4], 0, 0, 0, 0, 0, 0)
        elif isinstance(f, openmm.CMAPTorsionForce):
            zero_map = None
            for i in range(f.getNumTorsions()):
                m, *p = f.getTorsionParameters(i)
                if set(p) <= inside:
                    if zero_map is None:
                        zero_map = f.addMap(2, [0.0] * 4)
                    f.setTorsionParameters(i, zero_map, *p)
        elif isinstance(f, openmm.NonbondedForce):
            for x, i in enumerate(region):
                for j in region[x + 1:]:
                    f.addException(i, j, 0.0, 1.0, 0.0, True)
        elif isinstance(f, openmm.CustomNonbondedForce):
            existing = {tuple(sorted(f.getExclusionParticles(e))) for e in range(f.getNumExclusions())}
            for x, i in enumerate(region):
                for j in region[x + 1:]:
                    if (i, j) not in existing:
                        f.addExclusion(i, j)
        elif isinstance(f, (openmm.CustomBondForce, openmm.CustomAngleForce, openmm.CustomTorsionForce,
                            openmm.CustomCompoundBondForce)):
            skipped.append(f"{k} ({type(f).__name__})")
    if skipped:
        warnings.warn("add_to_system: custom bonded forces left unchanged inside the ML region: " + ", ".join(skipped),
                      stacklevel=3)
