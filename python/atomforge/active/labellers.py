"""Reference ("labelling") calculators for adaptive sampling: GFN2-xTB, PySCF DFT, or any ASE
calculator named by import path.

A labeller is named by a string so that it can be recreated in any worker process (local
processes or a Dask cluster) without pickling calculator objects:

``xtb`` (default; also ``gfn2-xtb``)
    GFN2-xTB (C. Bannwarth, S. Ehlert, S. Grimme, J. Chem. Theory Comput. 15, 1652 (2019)) from
    ``tblite`` (``tblite.ase.TBLite``); keyword arguments (``labeller_kwargs``) go to TBLite
    (e.g. ``charge``, ``multiplicity``, ``accuracy``, ``max_iterations``); one OpenMP thread.
``pyscf`` (also ``pyscf:XC/BASIS``, e.g. ``pyscf:pbe/def2-svp``, the default)
    Kohn-Sham DFT from PySCF (Q. Sun et al., J. Chem. Phys. 153, 024109 (2020)); molecules
    only (no periodic cells); keyword arguments: ``charge``, ``spin`` (2S), ``density_fit``
    (default True), ``conv_tol``, ``max_cycle``. ``pip install 'atomforge[pyscf]'``.
``package.module:Class`` (or ``package.module.Class``)
    any ASE calculator class; it is instantiated with ``labeller_kwargs`` for every structure.

Every label is computed with a fresh calculator (no wave-function guess carried over from the
previous structure), so a label does not depend on which structures a worker computed before:
this keeps resumed runs identical to uninterrupted ones. A failure (SCF not converged, library
error, non-finite result) raises :class:`LabelError`, which the sampler records and skips.

Units: energies eV, forces eV/Angstrom (ASE conventions).
"""
from __future__ import annotations

import importlib
from typing import Dict, Tuple

import numpy as np

__all__ = ["LabelError", "label", "describe_labeller", "check_labeller"]


class LabelError(RuntimeError):
    """The reference calculation failed (SCF not converged, library error, non-finite result)."""


def _xtb(kwargs):
    from ..quickstart_data import _import_tblite

    TBLite = _import_tblite()
    kw = {"method": "GFN2-xTB", "verbosity": 0}
    kw.update(kwargs)
    return TBLite(**kw)


class PySCFCalculator:
    """Minimal ASE-style calculator: Kohn-Sham DFT energy and analytic forces from PySCF.

    ``xc``/``basis``: PySCF names (default PBE/def2-SVP); ``charge``, ``spin`` (number of
    unpaired electrons); ``density_fit``: RI-J (faster, default True); ``conv_tol`` (Hartree),
    ``max_cycle``. Raises LabelError when the SCF does not converge.
    """

    def __init__(self, xc: str = "pbe", basis: str = "def2-svp", charge: int = 0, spin: int = 0,
                 density_fit: bool = True, conv_tol: float = 1e-9, max_cycle: int = 100):
        self.xc, self.basis, self.charge, self.spin = xc, basis, int(charge), int(spin)
        self.density_fit, self.conv_tol, self.max_cycle = bool(density_fit), float(conv_tol), int(max_cycle)

    def compute(self, atoms) -> Tuple[float, np.ndarray]:
        try:
            from pyscf import dft, gto
        except ImportError as exc:
            raise LabelError(f"the pyscf labeller needs PySCF: pip install 'atomforge[pyscf]' ({exc})") from None
        from ase.units import Bohr, Hartree

        if np.any(atoms.pbc):
            raise LabelError("the pyscf labeller handles molecules only (the structure is periodic)")
        mol = gto.M(atom=[(s, tuple(p)) for s, p in zip(atoms.get_chemical_symbols(), atoms.positions)],
                    basis=self.basis, charge=self.charge, spin=self.spin, unit="Angstrom", verbose=0)
        mf = dft.RKS(mol) if self.spin == 0 else dft.UKS(mol)
        mf.xc = self.xc
        mf.conv_tol = self.conv_tol
        mf.max_cycle = self.max_cycle
        if self.density_fit:
            mf = mf.density_fit()
        e = mf.kernel()
        if not mf.converged:
            raise LabelError(f"PySCF {self.xc}/{self.basis}: SCF not converged in {self.max_cycle} cycles")
        g = mf.nuc_grad_method().kernel()
        return float(e) * Hartree, -np.asarray(g) * Hartree / Bohr


def _make(spec: str, kwargs: Dict):
    s = spec.strip()
    low = s.lower()
    if low in ("xtb", "gfn2-xtb", "gfn2"):
        return _xtb(kwargs)
    if low == "pyscf" or low.startswith("pyscf:"):
        kw = dict(kwargs)
        if ":" in s:
            xc_basis = s.split(":", 1)[1]
            if "/" not in xc_basis:
                raise ValueError(f"labeller {spec!r}: expected pyscf:XC/BASIS, e.g. pyscf:pbe/def2-svp")
            kw.setdefault("xc", xc_basis.split("/", 1)[0])
            kw.setdefault("basis", xc_basis.split("/", 1)[1])
        return PySCFCalculator(**kw)
    if ":" in s:
        module, name = s.split(":", 1)
    elif "." in s:
        module, name = s.rsplit(".", 1)
    else:
        raise ValueError(f"unknown labeller {spec!r}: use xtb, pyscf[:XC/BASIS], or an ASE calculator class as "
                         f"package.module:Class")
    try:
        cls = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"labeller {spec!r}: cannot import {name} from {module} ({exc})") from None
    return cls(**kwargs)


def describe_labeller(spec: str, kwargs: Dict = None) -> str:
    """One line naming the method, for logs and file metadata."""
    low = spec.strip().lower()
    if low in ("xtb", "gfn2-xtb", "gfn2"):
        from ..quickstart_data import tblite_version

        try:
            v = tblite_version()
        except Exception:
            v = "?"
        return f"GFN2-xTB (tblite {v})"
    if low.startswith("pyscf"):
        c = _make(spec, kwargs or {})
        return f"PySCF {c.xc}/{c.basis}{' RI-J' if c.density_fit else ''} (charge {c.charge}, spin {c.spin})"
    return f"ASE calculator {spec} {kwargs or ''}".strip()


def check_labeller(spec: str, kwargs: Dict = None) -> None:
    """Raise ValueError now (before any work) if the labeller cannot be created."""
    try:
        _make(spec, kwargs or {})
    except (ValueError, TypeError) as exc:
        raise ValueError(str(exc)) from None
    except RuntimeError as exc:  # e.g. tblite missing
        raise ValueError(str(exc)) from None


def label(spec: str, kwargs: Dict, numbers, positions, cell, pbc) -> Tuple[float, np.ndarray]:
    """Energy (eV) and forces (N, 3) eV/Angstrom of one structure with a fresh calculator.

    Raises LabelError on any failure of the calculation or a non-finite result.
    """
    from ase import Atoms

    atoms = Atoms(numbers=np.asarray(numbers), positions=np.asarray(positions, dtype=float),
                  cell=np.asarray(cell, dtype=float), pbc=np.asarray(pbc, dtype=bool))
    try:
        calc = _make(spec, kwargs or {})
    except Exception as exc:
        raise LabelError(f"cannot create labeller {spec!r}: {exc}") from None
    try:
        if isinstance(calc, PySCFCalculator):
            e, f = calc.compute(atoms)
        else:
            from ..quickstart_data import _openmp_threads

            atoms.calc = calc
            with _openmp_threads(1):
                e = float(atoms.get_potential_energy())
                f = np.array(atoms.get_forces(), dtype=float)
    except LabelError:
        raise
    except Exception as exc:  # SCF failure, library error, ...
        raise LabelError(f"{type(exc).__name__}: {exc}") from None
    if not (np.isfinite(e) and np.all(np.isfinite(f))) or f.shape != (len(atoms), 3):
        raise LabelError("the labeller returned a non-finite energy or forces of the wrong shape")
    return e, f
