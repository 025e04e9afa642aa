"""Plausibility checks of a dataset's units: shortest distances, force magnitudes, energies per atom.

A dataset read with the wrong units usually still loads: Bohr read as Angstrom stretches every
bond by 1.89, Hartree/Bohr read as eV/Angstrom shrinks forces 51-fold, kcal/mol read as eV
inflates energies 23-fold. :func:`plausibility` looks for these signatures on the converted data
(Angstrom, eV, eV/Angstrom) and returns one message per problem; :func:`warn_implausible` issues
them as :class:`UnitsWarning`. The checks are heuristics with wide margins, chosen so that the
datasets atomforge is tested on (rMD17, DeePMD water, n2p2 water and organics, GFN2-xTB ethanol)
pass when read with the right units and fail with the wrong ones:

* **Shortest distance.** For the element pair that comes closest relative to the sum of their
  covalent radii (ASE's table), that ratio should lie in 0.6-1.5. Above 1.5: lengths too large
  (Bohr read as Angstrom stretches by 1.89); below 0.6: lengths too small (nm read as Angstrom)
  or overlapping atoms.
* **Forces.** The RMS force component should lie in 0.05-20 eV/Angstrom (MD data: typically
  0.3-3). Below: Hartree/Bohr read as eV/Angstrom (1/51), or a set of near-equilibrium
  structures (then ignore the warning). Above: kcal/mol read as eV (x23).
* **Energies.** ``|E/N|`` below 20000 eV/atom and the spread of ``E/N`` over the frames (standard
  deviation) below 5 eV/atom; otherwise kJ/mol, kcal/mol or meV were probably read as eV.

Only the first ``max_frames`` frames (evenly spaced) enter the distance check.
"""
from __future__ import annotations

import warnings
from typing import List

import numpy as np

__all__ = ["UnitsWarning", "plausibility", "warn_implausible", "shortest_distance_ratio"]


class UnitsWarning(UserWarning):
    """A dataset's numbers look implausible for Angstrom / eV (wrong units?)."""


def shortest_distance_ratio(ds, max_frames: int = 20):
    """(ratio, (symbol_i, symbol_j), distance in Angstrom) of the element pair whose shortest
    distance is smallest relative to the sum of covalent radii (ASE's table), over up to
    ``max_frames`` evenly spaced frames. Periodic frames use the minimum-image distances of
    all images within 3 Angstrom beyond the shortest found. Returns None for datasets whose
    frames all have a single atom.
    """
    from ase.data import chemical_symbols, covalent_radii
    from ase.neighborlist import neighbor_list

    n = len(ds)
    frames = np.unique(np.linspace(0, n - 1, min(n, max_frames)).astype(int))
    best = None
    for i in frames:
        z = np.asarray(ds.numbers[i])
        if len(z) < 2:
            continue
        if np.asarray(ds.pbc[i]).any():
            atoms = ds.to_atoms(int(i))
            a, b, d = neighbor_list("ijd", atoms, 6.0)
            if len(d) == 0:
                continue
            za, zb = z[a], z[b]
        else:
            r = np.asarray(ds.positions[i])
            iu = np.triu_indices(len(z), 1)
            d = np.linalg.norm(r[iu[0]] - r[iu[1]], axis=1)
            za, zb = z[iu[0]], z[iu[1]]
        ratio = d / (covalent_radii[za] + covalent_radii[zb])
        k = int(np.argmin(ratio))
        if best is None or ratio[k] < best[0]:
            best = (float(ratio[k]), (chemical_symbols[za[k]], chemical_symbols[zb[k]]), float(d[k]))
    return best


def plausibility(ds, max_frames: int = 20) -> List[str]:
    """Messages (empty list: nothing suspicious) about a dataset in Angstrom / eV / eV/Angstrom.

    Args:
        ds: :class:`atomforge.data.Dataset` (already converted to atomforge units).
        max_frames: frames used by the distance check.

    Returns:
        One message per implausible quantity (see the module docstring for the bounds), each
        naming the dataset, the value found and the usual cause.
    """
    where = ds.source or ds.name or "dataset"
    out = []
    best = shortest_distance_ratio(ds, max_frames)
    if best is not None:
        ratio, (a, b), d = best
        if ratio > 1.5:
            out.append(f"{where}: the shortest {a}-{b} distance is {d:.3f} A, {ratio:.2f} x the sum of covalent "
                       f"radii (no pair of atoms is closer than that): lengths look too large. Are the positions "
                       f"in Bohr (length_unit bohr)?")
        elif ratio < 0.6:
            out.append(f"{where}: the shortest {a}-{b} distance is {d:.3f} A, only {ratio:.2f} x the sum of "
                       f"covalent radii: lengths look too small (nm read as A?) or atoms overlap")
    if ds.forces is not None and len(ds.forces):
        f = np.concatenate([np.ravel(x) for x in ds.forces])
        rms = float(np.sqrt(np.mean(f ** 2))) if f.size else 0.0
        if 0 < rms < 0.05:
            out.append(f"{where}: the RMS force component is {rms:.4f} eV/A (MD data are typically 0.3-3 eV/A): "
                       f"forces look too small. Are they in Hartree/Bohr (energy_unit ha, length_unit bohr)? "
                       f"(Ignore this for a set of near-equilibrium structures.)")
        elif rms > 20:
            out.append(f"{where}: the RMS force component is {rms:.1f} eV/A: forces look too large. Are energies "
                       f"in kcal/mol or kJ/mol (energy_unit kcal/mol)?")
    if ds.energy is not None and len(ds.energy):
        epa = np.asarray(ds.energy) / np.asarray(ds.n_atoms)
        if np.max(np.abs(epa)) > 2e4:
            out.append(f"{where}: energies reach {np.max(np.abs(epa)):.4g} eV/atom in magnitude: too large for eV. "
                       f"Are they in kJ/mol, kcal/mol or meV?")
        elif len(epa) > 1 and np.std(epa) > 5:
            out.append(f"{where}: the energy per atom spreads by {np.std(epa):.3g} eV/atom (std over frames): too "
                       f"much for one system in eV. Are energies in kJ/mol or kcal/mol, or do frames mix methods?")
    return out


def warn_implausible(ds, log=None, max_frames: int = 20) -> List[str]:
    """Run :func:`plausibility`; issue each message as a :class:`UnitsWarning` (and pass it to
    ``log`` when given, so that it also appears in a run's console output). Returns the messages."""
    msgs = plausibility(ds, max_frames)
    for m in msgs:
        warnings.warn(m, UnitsWarning, stacklevel=3)
        if log is not None:
            log(f"WARNING (units?): {m}")
    return msgs
