"""Built-in training data for ``atomforge quickstart``: a GFN2-xTB molecular-dynamics dataset.

The quickstart trains a potential on data made by a real electronic-structure method that
installs from PyPI with a plain ``pip install`` and downloads nothing at run time:

* **Method**: GFN2-xTB, the extended tight-binding method of C. Bannwarth, S. Ehlert and
  S. Grimme, "GFN2-xTB - An Accurate and Broadly Parametrized Self-Consistent Tight-Binding
  Quantum Chemical Method with Multipole Electrostatics and Density-Dependent Dispersion
  Contributions", J. Chem. Theory Comput. 15, 1652-1671 (2019), doi:10.1021/acs.jctc.8b01176.
* **Code**: tblite (https://github.com/tblite/tblite, LGPL-3.0-or-later), the light-weight
  tight-binding library of the Grimme group, used through its ASE calculator
  ``tblite.ase.TBLite``.

The dataset is a Langevin trajectory of one gas-phase molecule (ethanol by default) at a
given temperature; every ``stride``-th step after an equilibration is saved to an extended
XYZ file with the GFN2-xTB total energy (eV) and forces (eV/A, the exact negative gradient
of that energy). The parameters of the calculation are stored in each frame's ``info``,
with the units (``length_unit=Angstrom energy_unit=eV``) that atomforge's reader requires.

Units throughout: positions in Angstrom, energies in eV, forces in eV/Angstrom, time in fs,
temperature in K (ASE conventions; tblite works in Hartree/Bohr and its ASE calculator
converts).
"""
from __future__ import annotations

import contextlib
import os
import re
import sys
import time
from pathlib import Path
from typing import Optional, Union

import numpy as np

from ._fileio import atomic_write

__all__ = [
    "generate_xtb_dataset", "quickstart_dataset", "dataset_filename", "default_cache_dir", "tblite_version",
]

#: Bump when the generation procedure changes so that old cached files are not reused.
DATASET_FORMAT_VERSION = 2  # 2: frames carry length_unit=Angstrom energy_unit=eV

#: Friendly names for the file name of the cached dataset (ase.build.molecule name -> name).
_FRIENDLY_NAMES = {"CH3CH2OH": "ethanol", "H2O": "water", "CH4": "methane", "C6H6": "benzene"}

_DEFAULTS = dict(
    molecule="CH3CH2OH",
    n_frames=300,
    temperature_K=500.0,
    timestep_fs=0.5,
    stride=5,
    seed=0,
    equilibration_steps=100,
)

_INSTALL_HINT = (
    "the built-in quickstart dataset is computed with GFN2-xTB from the 'tblite' package, "
    "which is not installed. Install it with:  pip install tblite==0.8.0  "
    "(a prebuilt wheel; nothing is downloaded at run time)"
)


def _import_tblite():
    """Return the ``tblite.ase.TBLite`` class, or raise a RuntimeError that says how to install it."""
    try:
        from tblite.ase import TBLite
    except ImportError as exc:  # ModuleNotFoundError, or a broken shared library
        raise RuntimeError(f"{_INSTALL_HINT} [import error: {exc}]") from exc
    return TBLite


def tblite_version() -> str:
    """Version of the installed tblite (from the package metadata, else the library itself)."""
    try:
        from importlib.metadata import version

        return version("tblite")
    except Exception:
        from tblite.library import get_version

        return ".".join(str(v) for v in get_version())


def default_cache_dir() -> Path:
    """``$ATOMFORGE_CACHE`` if set, else ``~/.cache/atomforge``."""
    env = os.environ.get("ATOMFORGE_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "atomforge"


class _Progress:
    """A tqdm bar when tqdm is installed, else a line on stderr every 10 %."""

    def __init__(self, total: int, desc: str, enabled: bool):
        self.total, self.desc, self.enabled = max(int(total), 1), desc, enabled
        self.n, self._next_pct, self._bar, self._t0 = 0, 10, None, time.perf_counter()
        if not enabled:
            return
        try:
            from tqdm.auto import tqdm

            self._bar = tqdm(total=self.total, desc=desc, unit="step", leave=False)
        except ImportError:
            print(f"{desc}: {self.total} MD steps", file=sys.stderr, flush=True)

    def update(self, k: int = 1) -> None:
        self.n += k
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.update(k)
            return
        pct = 100 * self.n // self.total
        if pct >= self._next_pct:
            dt = time.perf_counter() - self._t0
            print(f"{self.desc}: {pct:3d}% ({self.n}/{self.total} steps, {dt:.1f} s)",
                  file=sys.stderr, flush=True)
            self._next_pct = (pct // 10 + 1) * 10

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


@contextlib.contextmanager
def _openmp_threads(n: Optional[int]):
    """Limit OpenMP threads (tblite links libgomp) to ``n`` inside the block, restoring afterwards.

    Uses threadpoolctl when installed, else ``omp_set_num_threads`` of libgomp through ctypes;
    does nothing if neither works or ``n`` is None. For a molecule of ~10 atoms extra threads do
    not speed tblite up, while on a machine whose other cores are busy libgomp's spinning threads
    slowed the generation 6-13 fold in our measurements.
    """
    if n is None:
        yield
        return
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        threadpool_limits = None
    if threadpool_limits is not None:
        with threadpool_limits(limits=int(n), user_api="openmp"):
            yield
        return
    lib, old = None, None
    try:
        import ctypes

        lib = ctypes.CDLL("libgomp.so.1")  # the copy tblite's library already loaded
        old = int(lib.omp_get_max_threads())
        lib.omp_set_num_threads(int(n))
    except (OSError, AttributeError):
        lib = None
    try:
        yield
    finally:
        if lib is not None:
            lib.omp_set_num_threads(old)


def _write_atomic(path: Path, frames) -> None:
    """Write ``frames`` as extended XYZ atomically (readers never see a partial file)."""
    import ase.io

    atomic_write(path, lambda fh: ase.io.write(fh, frames, format="extxyz"))


def generate_xtb_dataset(
    path: Union[str, os.PathLike],
    molecule: str = "CH3CH2OH",
    n_frames: int = 300,
    temperature_K: float = 500.0,
    timestep_fs: float = 0.5,
    stride: int = 5,
    seed: int = 0,
    progress: bool = True,
    equilibration_steps: int = 100,
    friction_per_fs: float = 0.02,
    omp_threads: Optional[int] = 1,
) -> Path:
    """Run GFN2-xTB Langevin MD of one molecule and save frames with energies and forces.

    The molecule is built by ``ase.build.molecule(molecule)`` (gas phase, no cell, no
    periodicity), given Maxwell-Boltzmann velocities at ``temperature_K`` (seeded; centre-of-mass
    motion removed) and propagated with ASE's Langevin integrator (``friction_per_fs`` in 1/fs,
    default 0.02/fs, i.e. a 50 fs velocity relaxation time) on the GFN2-xTB potential-energy
    surface from tblite (Bannwarth, Ehlert, Grimme, J. Chem. Theory Comput. 15, 1652 (2019)).
    After ``equilibration_steps`` steps, every ``stride``-th step is saved until ``n_frames``
    frames are collected; the MD therefore runs ``equilibration_steps + n_frames * stride``
    steps of ``timestep_fs`` fs, one GFN2-xTB calculation each.

    Each frame of the extended XYZ file carries

    * positions in Angstrom,
    * ``energy``: the GFN2-xTB total energy in eV (about -310 eV for ethanol, i.e. -11.39 Hartree;
      it is a total electronic + repulsion energy, not an atomisation energy),
    * ``forces``: -dE/dR in eV/Angstrom (analytic gradient from tblite),
    * info keys ``method="GFN2-xTB"``, ``code="tblite <version>"``, ``temperature_K`` (K),
      ``timestep_fs`` (fs), ``seed``, ``molecule``, ``stride``, ``step`` (MD step of the frame)
      and ``time_fs`` (fs since the start of the run).

    The file is written atomically (temporary file in the same folder, then ``os.replace``).
    Results are reproducible for the same parameters, tblite version and machine (the thermostat
    noise comes from ``numpy.random.default_rng(seed)``).

    Parameters
    ----------
    path : where to write the ``.extxyz`` file (parent folders are created).
    molecule : a name ``ase.build.molecule`` knows (default ethanol, ``"CH3CH2OH"``).
    n_frames : number of frames saved.
    temperature_K : thermostat and initial-velocity temperature in K.
    timestep_fs : MD time step in fs.
    stride : save every ``stride``-th MD step.
    seed : seed of the velocity and Langevin random numbers.
    progress : show a progress bar (tqdm if installed, else a line on stderr every 10 %).
    equilibration_steps : MD steps discarded before the first saved frame.
    friction_per_fs : Langevin friction coefficient in 1/fs.
    omp_threads : OpenMP threads for tblite during the run (restored afterwards); None leaves the
        setting alone. 1 is as fast for small molecules and avoids a 6-13x slowdown when other
        processes keep the cores busy.

    Returns
    -------
    The path of the written file.

    Raises
    ------
    RuntimeError
        if tblite is not installed (with the ``pip install tblite`` command to run).
    ValueError
        on non-positive ``n_frames``, ``stride``, ``timestep_fs`` or ``temperature_K``.
    """
    if int(n_frames) < 1 or int(stride) < 1 or int(equilibration_steps) < 0:
        raise ValueError("n_frames and stride must be >= 1 and equilibration_steps >= 0")
    if not (timestep_fs > 0 and temperature_K > 0 and friction_per_fs >= 0):
        raise ValueError("timestep_fs and temperature_K must be > 0 and friction_per_fs >= 0")
    TBLite = _import_tblite()

    from ase import Atoms, units
    from ase.build import molecule as build_molecule
    from ase.calculators.singlepoint import SinglePointCalculator
    from ase.constraints import FixCom
    from ase.md.langevin import Langevin
    from ase.md.velocitydistribution import Stationary, ZeroRotation

    try:  # ASE >= 3.29 deprecates MaxwellBoltzmannDistribution in favour of this (same draws)
        from ase.md.velocitydistribution import thermalize_momenta
    except ImportError:
        from ase.md.velocitydistribution import MaxwellBoltzmannDistribution

        def thermalize_momenta(atoms, temperature_K, rng=None):
            MaxwellBoltzmannDistribution(atoms, temperature_K=temperature_K, rng=rng)

    path = Path(path)
    n_frames, stride, equilibration_steps = int(n_frames), int(stride), int(equilibration_steps)
    code = f"tblite {tblite_version()}"

    atoms = build_molecule(molecule)
    atoms.calc = TBLite(method="GFN2-xTB", verbosity=0)
    rng = np.random.default_rng(seed)
    thermalize_momenta(atoms, temperature_K, rng=rng)  # Maxwell-Boltzmann velocities
    Stationary(atoms)
    ZeroRotation(atoms)
    # Centre of mass held by a constraint rather than Langevin(fixcm=True), which ASE >= 3.28
    # deprecates because it does not sample NVT exactly for small systems.
    atoms.set_constraint(FixCom())
    dyn = Langevin(
        atoms,
        timestep=timestep_fs * units.fs,
        temperature_K=temperature_K,
        friction=friction_per_fs / units.fs,
        fixcm=False,
        rng=rng,
    )

    frames = []
    step = 0

    def snapshot():
        frame = Atoms(numbers=atoms.numbers, positions=atoms.positions, cell=atoms.cell, pbc=atoms.pbc)
        energy = float(atoms.get_potential_energy())
        # raw -dE/dR from tblite: the FixCom constraint must not touch the saved forces
        forces = np.array(atoms.get_forces(apply_constraint=False))
        frame.calc = SinglePointCalculator(frame, energy=energy, forces=forces)
        frame.info.update(
            method="GFN2-xTB",
            code=code,
            temperature_K=float(temperature_K),
            timestep_fs=float(timestep_fs),
            seed=int(seed),
            molecule=str(molecule),
            stride=stride,
            step=step,
            time_fs=step * float(timestep_fs),
            length_unit="Angstrom",  # extended XYZ defines no units: state them (atomforge.data reads these)
            energy_unit="eV",
        )
        frames.append(frame)

    total = equilibration_steps + n_frames * stride
    bar = _Progress(total, f"GFN2-xTB MD of {molecule} at {temperature_K:g} K", progress)
    with _openmp_threads(omp_threads):
        try:
            if equilibration_steps:
                dyn.run(equilibration_steps)  # energies/forces of the last step are cached on atoms
                step += equilibration_steps
                bar.update(equilibration_steps)
            for _ in range(n_frames):
                dyn.run(stride)
                step += stride
                bar.update(stride)
                snapshot()
        finally:
            bar.close()

    _write_atomic(path, frames)
    return path


def _fmt(x: float) -> str:
    return f"{x:g}".replace("+", "")


def dataset_filename(**kwargs) -> str:
    """File name of the cached dataset for the given ``generate_xtb_dataset`` parameters.

    The default parameters give ``xtb_ethanol_T500_n300_seed0_v2.extxyz``; parameters that
    differ from the defaults of time step, stride, equilibration or friction are appended,
    so that a cached file is only reused for the same calculation.
    """
    p = {**_DEFAULTS, "friction_per_fs": 0.02, **kwargs}
    mol = _FRIENDLY_NAMES.get(p["molecule"], re.sub(r"[^A-Za-z0-9]+", "-", str(p["molecule"])))
    name = f"xtb_{mol}_T{_fmt(float(p['temperature_K']))}_n{int(p['n_frames'])}_seed{int(p['seed'])}"
    if float(p["timestep_fs"]) != _DEFAULTS["timestep_fs"]:
        name += f"_dt{_fmt(float(p['timestep_fs']))}"
    if int(p["stride"]) != _DEFAULTS["stride"]:
        name += f"_stride{int(p['stride'])}"
    if int(p["equilibration_steps"]) != _DEFAULTS["equilibration_steps"]:
        name += f"_eq{int(p['equilibration_steps'])}"
    if float(p["friction_per_fs"]) != 0.02:
        name += f"_fric{_fmt(float(p['friction_per_fs']))}"
    return f"{name}_v{DATASET_FORMAT_VERSION}.extxyz"


def _is_valid(path: Path, n_frames: int) -> bool:
    """True if ``path`` reads as extended XYZ with ``n_frames`` frames that carry energy and forces."""
    if not path.is_file():
        return False
    try:
        import ase.io

        frames = ase.io.read(path, index=":", format="extxyz")
        if len(frames) != n_frames:
            return False
        last = frames[-1]
        e = last.get_potential_energy()
        f = last.get_forces()
        return bool(np.isfinite(e) and np.all(np.isfinite(f)) and last.info.get("method") == "GFN2-xTB")
    except Exception:
        return False


def quickstart_dataset(cache_dir: Optional[Union[str, os.PathLike]] = None, **kwargs) -> Path:
    """Path of the built-in quickstart dataset, generated on first use and cached.

    The default is 300 frames of ethanol from GFN2-xTB Langevin MD at 500 K (see
    ``generate_xtb_dataset`` for the method, its reference and the units: eV, eV/Angstrom).
    The file lives in ``cache_dir`` (default ``$ATOMFORGE_CACHE`` or ``~/.cache/atomforge``)
    under a name that encodes the parameters, e.g. ``xtb_ethanol_T500_n300_seed0_v1.extxyz``.
    If that file exists and reads back with the right number of frames it is returned as is
    (tblite is then not needed); otherwise it is (re)generated, which needs tblite.

    ``kwargs`` are passed to ``generate_xtb_dataset`` (``molecule``, ``n_frames``,
    ``temperature_K``, ``timestep_fs``, ``stride``, ``seed``, ``progress``,
    ``equilibration_steps``, ``friction_per_fs``, ``omp_threads``).

    Raises
    ------
    RuntimeError
        if the dataset must be generated and tblite is not installed; the message gives the
        ``pip install tblite`` command.
    """
    unknown = set(kwargs) - set(_DEFAULTS) - {"progress", "friction_per_fs", "omp_threads"}
    if unknown:
        raise TypeError(f"unknown parameter(s) for quickstart_dataset: {sorted(unknown)}")
    cache = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    name_kwargs = {k: v for k, v in kwargs.items() if k not in ("progress", "omp_threads")}
    path = cache / dataset_filename(**name_kwargs)
    n_frames = int(kwargs.get("n_frames", _DEFAULTS["n_frames"]))
    if _is_valid(path, n_frames):
        return path
    _import_tblite()  # clear error before any work
    return generate_xtb_dataset(path, **kwargs)
