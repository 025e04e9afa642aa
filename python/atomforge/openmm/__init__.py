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
           "EV_TO_KJ_PER_MOL", "NM_TO_ANGSTROM", "uncertainty", "check_extrapolation", "UncertaintyReporter"]


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
                  force_group: int = 0, total_charge: float = 0.0) -> openmm.System:
    """An openmm.System where the model gives all interactions (pure ML).

    Masses come from the topology's elements; the System is periodic (with the topology's box
    vectors, triclinic allowed) when the topology has box vectors, unless ``periodic`` says
    otherwise. ``model``: a path or the model file's bytes. ``total_charge``: the system's charge
    in e (models with network charges, e.g. pinn, impose it exactly; others ignore it);
    OpenMMException for a non-finite value.
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
    force.setTotalCharge(float(total_charge))
    force.setForceGroup(force_group)
    system.addForce(force)
    if removeCMMotion:
        system.addForce(openmm.CMMotionRemover())
    return system


def add_to_system(system: openmm.System, topology, model, atoms: Iterable[int], remove_classical: bool = True,
                  force_group: int = 0, total_charge: float = 0.0) -> AtomForgeForce:
    """Add an AtomForgeForce for the particles ``atoms`` to a classical ``system`` (in place).

    With ``remove_classical`` (default), the classical interactions *within* that region are
    switched off, in the spirit of openmm-ml's ``createMixedSystem``: harmonic bonds and angles,
    periodic and RB torsions and CMAP terms whose atoms all lie in the region get zero force
    constants; every pair of region atoms becomes a zeroed exception of each NonbondedForce and an
    exclusion of each CustomNonbondedForce. Interactions between the region and the rest stay
    classical (mechanical embedding). Custom bonded forces cannot be zeroed generically and are
    left as they are (a warning names them). Periodicity follows the System. ``total_charge``: the
    region's charge in e (models with network charges impose it; others ignore it). Returns the Force.
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
    force.setTotalCharge(float(total_charge))
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


# ------------------------------------------------------------------ committee uncertainty


def uncertainty(force: AtomForgeForce, context: openmm.Context) -> dict:
    """Committee uncertainty of the context's current state (one extra model evaluation with
    per-member forces; the force must be in the context's System and its model a committee).

    Returns a dict, OpenMM units with eV/Angstrom copies:
      ``energy_uncertainty`` (kJ/mol), ``forces_uncertainty`` (N,) kJ/mol/nm per covered particle
      (order of ``force.getParticles()``, or all particles), ``max_forces_uncertainty`` and
      ``mean_forces_uncertainty`` (kJ/mol/nm), the same in eV and eV/Angstrom with suffix
      ``_ev`` (``forces_uncertainty_ev`` etc.), and ``extrapolation_features`` /
      ``extrapolation_atoms`` (descriptor features outside the training range in this state).
    eps_i = c_F sqrt(mean_m |F_i^m - <F_i>|^2) with the model's calibration factor c_F.
    Raises openmm.OpenMMException for a single model or a force not in the context.
    """
    import numpy as np

    d = force.getUncertainty(context)
    d["forces_uncertainty"] = np.asarray(d["forces_uncertainty"], dtype=float)
    f_ev = NM_TO_ANGSTROM * EV_TO_KJ_PER_MOL  # kJ/mol/nm per eV/Angstrom
    d["energy_uncertainty_ev"] = d["energy_uncertainty"] / EV_TO_KJ_PER_MOL
    for key in ("forces_uncertainty", "max_forces_uncertainty", "mean_forces_uncertainty"):
        d[key + "_ev"] = d[key] / f_ev
    return d


def check_extrapolation(force: AtomForgeForce, context: openmm.Context, reset: bool = True,
                        warn: bool = True) -> dict:
    """Extrapolation counts of the force's evaluations since the last reset (dict: evaluations,
    extrapolating, features, atoms); warns with :class:`atomforge.ExtrapolationWarning` (one
    warning summarising the counts) when any evaluation had descriptor features outside the
    model's training range. Call it every few hundred steps, or use :class:`UncertaintyReporter`.
    """
    c = force.getExtrapolationCounts(context, bool(reset))
    if warn and c["extrapolating"]:
        from ..potential import ExtrapolationWarning

        warnings.warn(f"AtomForgeForce ({force.getModelSource()}): the model extrapolated in {c['extrapolating']} of "
                      f"{c['evaluations']} force evaluations: {c['features']} descriptor feature value(s) on "
                      f"{c['atoms']} atom(s) outside the training range; forces there are unreliable",
                      ExtrapolationWarning, stacklevel=2)
    return c


class UncertaintyReporter:
    """OpenMM reporter: every ``reportInterval`` steps writes a CSV line with the step, time (ps),
    energy uncertainty (kJ/mol), max and mean per-atom force uncertainty (kJ/mol/nm) and the
    extrapolation counts since the previous report, and warns (ExtrapolationWarning) when the
    model extrapolated. ``file``: path or open text file (None: no file; ``self.history`` keeps
    the rows). With ``stop_above`` (kJ/mol/nm), raises :class:`UncertaintyExceeded` when the
    max force uncertainty exceeds it (like LAMMPS ``fix halt``). Models that are not committees
    report only the extrapolation columns.

        simulation.reporters.append(UncertaintyReporter("u.csv", 100, force))
    """

    def __init__(self, file, reportInterval: int, force: AtomForgeForce, stop_above: Optional[float] = None):
        self._own = isinstance(file, (str, os.PathLike))
        self._out = open(file, "w") if self._own else file
        self._interval = int(reportInterval)
        self._force = force
        self._stop = stop_above
        self._committee = None
        self.history = []
        if self._out is not None:
            self._out.write("step,time_ps,energy_uncertainty_kjmol,max_forces_uncertainty_kjmolnm,"
                            "mean_forces_uncertainty_kjmolnm,extrapolating_evaluations,extrapolation_features\n")

    def describeNextReport(self, simulation):
        steps = self._interval - simulation.currentStep % self._interval
        return {"steps": steps, "periodic": None, "include": []}

    def report(self, simulation, state):
        ctx = simulation.context
        if self._committee is None:
            try:
                uncertainty(self._force, ctx)
                self._committee = True
            except Exception:
                self._committee = False
        u = uncertainty(self._force, ctx) if self._committee else {}
        c = check_extrapolation(self._force, ctx)
        row = (simulation.currentStep, state.getTime().value_in_unit(openmm.unit.picosecond),
               u.get("energy_uncertainty", float("nan")), u.get("max_forces_uncertainty", float("nan")),
               u.get("mean_forces_uncertainty", float("nan")), c["extrapolating"], c["features"])
        self.history.append(row)
        if self._out is not None:
            self._out.write(",".join(f"{v:.6g}" if isinstance(v, float) else str(v) for v in row) + "\n")
            self._out.flush()
        if self._stop is not None and self._committee and u["max_forces_uncertainty"] > self._stop:
            raise UncertaintyExceeded(f"step {simulation.currentStep}: max force uncertainty "
                                      f"{u['max_forces_uncertainty']:.4g} kJ/mol/nm > {self._stop:g}")

    def __del__(self):
        if getattr(self, "_own", False) and self._out is not None:
            self._out.close()


class UncertaintyExceeded(RuntimeError):
    """Raised by :class:`UncertaintyReporter` when the committee's max force uncertainty exceeds
    ``stop_above`` (the structure is a candidate for labelling)."""
