"""Long-range electrostatics of atomic charges: Ewald sums for periodic cells, direct sums for
molecules, computed by the compiled core (float64, OpenMP threads; cpp/src/electrostatics/).

This is the first piece of the physics-embedded model type of issue 14 (network-predicted charges
with long-range electrostatics): the model will pass its charges here and use the per-atom
electrostatic potential ``dE/dq`` for the forces that come from the charges' dependence on the
positions. See ``docs/electrostatics.md`` for the formulas, error control and timings.
"""
from __future__ import annotations

from typing import Any, Dict, Optional

import numpy as np

from . import _core
from . import units as _units
from ._inputs import DEFAULT_MIN_DISTANCE, min_distance_argument, pbc_flags, threads_argument

if _core is None:  # pragma: no cover - the package is always installed with its extension
    raise ImportError("atomforge.electrostatics needs the compiled core (atomforge._core)")

#: Coulomb constant e^2 / (4 pi epsilon_0) in eV*Angstrom (CODATA 2018), from the core's table.
COULOMB = _units.COULOMB
#: Range of the ``accuracy`` argument.
MIN_ACCURACY = float(_core.EWALD_MIN_ACCURACY)
MAX_ACCURACY = float(_core.EWALD_MAX_ACCURACY)


def _array(value, shape, name: str, dtype=np.float64) -> np.ndarray:
    a = np.asarray(value)
    if a.dtype.kind not in "fiu" or a.dtype == np.bool_:
        raise TypeError(f"{name} must be real numbers, got dtype {a.dtype}")
    if a.shape != shape:
        raise ValueError(f"{name} must have shape {shape}, got {a.shape}")
    return np.ascontiguousarray(a, dtype=dtype)


def ewald(positions, charges, cell=None, pbc=None, sigma=None, accuracy: float = 1e-8,
          alpha: Optional[float] = None, min_distance: float = DEFAULT_MIN_DISTANCE,
          threads: int = 0) -> Dict[str, Any]:
    r"""Electrostatic energy, forces, virial and per-atom potential of point or Gaussian charges.

    Atom *i* carries the charge :math:`q_i` spread as a normalised Gaussian of width
    :math:`\sigma_i` (:math:`\sigma_i = 0`: a point charge), as in PhysNet (Unke & Meuwly, JCTC 15,
    3678 (2019)) and 4G-HDNNP (Ko et al., Nat. Commun. 12, 398 (2021), Eq. 5). Two charges interact
    by :math:`k_e q_i q_j \operatorname{erf}(r/\gamma_{ij})/r` with
    :math:`\gamma_{ij} = \sqrt{2(\sigma_i^2 + \sigma_j^2)}`, and

    .. math:: E = \frac{k_e}{2} \sum_{\mathbf n} {\sum_{i,j}}' q_i q_j
              \frac{\operatorname{erf}(\lvert\mathbf r_j + \mathbf n - \mathbf r_i\rvert / \gamma_{ij})}
                   {\lvert\mathbf r_j + \mathbf n - \mathbf r_i\rvert}

    over lattice translations :math:`\mathbf n` (only :math:`\mathbf n = 0` for molecules; the
    prime drops :math:`i = j` at :math:`\mathbf n = 0`, so the Gaussians' self-energies
    :math:`k_e q_i^2 / (2\sqrt\pi\,\sigma_i)` are not included). Periodic cells (any triclinic
    shape) use the Ewald sum (real space + reciprocal space + self term) with tin-foil boundary
    conditions; a cell with net charge gets the uniform neutralising background, so the energy
    does not depend on the splitting parameter for charged cells either. Molecules use the direct
    :math:`O(N^2)` sum, exact to rounding. Formulas: ``docs/electrostatics.md`` and
    ``cpp/src/electrostatics/ewald.hpp``.

    Error control (Kolafa & Perram, Mol. Simul. 9, 351 (1992)): with :math:`s` solving
    :math:`e^{-s^2}/s^2 = \epsilon/100` (``accuracy`` :math:`\epsilon`, the target relative error
    of the energy; the factor 100 covers the prefactors of Kolafa and Perram's estimates, which
    assume uncorrelated charges), the real-space cutoff is
    :math:`r_c = \max(s/\alpha, 2 s \sigma_{max})` and the reciprocal cutoff
    :math:`k_c = 2\alpha s`; :math:`\alpha`, when not given, balances the cost of the two sums
    (Perram, Petersen & de Leeuw, Mol. Phys. 65, 875 (1988)). The measured relative energy errors
    stay below ``accuracy`` (tests and the table in ``docs/electrostatics.md``).

    Args:
        positions: (N, 3) float, Angstrom.
        charges: (N,) float, elementary charges e. Any total charge is allowed.
        cell: (3, 3) lattice vectors as rows, or (3,) lengths of an orthorhombic cell, Angstrom;
            ``None`` for a molecule.
        pbc: ``None`` (periodic when a cell is given), a bool, or three bools that are all equal:
            slabs and wires (mixed periodicity) are not supported.
        sigma: (N,) Gaussian widths in Angstrom (>= 0), a scalar for all atoms, or ``None`` for
            point charges.
        accuracy: :math:`\epsilon` above, in [1e-15, 0.1]; ignored by the exact open-boundary sum
            (still checked).
        alpha: Ewald splitting parameter in 1/Angstrom (> 0); ``None`` chooses it for speed. The
            result does not depend on it beyond ``accuracy``.
        min_distance: Angstrom; two atoms (or an atom and a periodic image) closer than this raise
            :class:`atomforge.AtomsTooClose`.
        threads: OpenMP threads (0: the OpenMP default); results do not depend on it.

    Returns:
        dict with ``energy`` (float, eV); ``forces`` (N, 3) eV/Angstrom, :math:`-\partial E/\partial
        \mathbf r_i`; ``virial`` (3, 3) eV, :math:`W = -\partial E / \partial \varepsilon` (strain,
        reciprocal part included; for molecules :math:`\sum_i \mathbf r_i \otimes \mathbf F_i`);
        ``stress`` (3, 3) eV/Angstrom^3, :math:`-W/V` (ASE's sign), or ``None`` for molecules;
        ``potential`` (N,) eV/e (volts), :math:`\phi_i = \partial E / \partial q_i` at fixed
        widths, with :math:`E = \frac12 \sum_i q_i \phi_i`; the parts ``energy_real``,
        ``energy_reciprocal``, ``energy_self``, ``energy_background`` (eV; a molecule's energy is
        all ``energy_real``); ``parameters`` (periodic: dict of ``accuracy``, ``s``, ``alpha``,
        ``r_cut``, ``k_cut``, ``kmax``, ``n_kvectors``; ``None`` for molecules).

    Raises:
        ValueError: wrong shapes, non-finite positions or charges (naming the atom), a negative or
            non-finite sigma (naming the atom), a singular cell, mixed periodicity, a periodic
            system without a cell, ``accuracy`` outside [1e-15, 0.1], ``alpha`` <= 0, more
            reciprocal vectors than the core's bound; :class:`atomforge.AtomsTooClose` (a
            ValueError) for atoms closer than ``min_distance``.
        TypeError: non-numeric arrays or arguments.
    """
    from ase import Atoms

    if isinstance(positions, Atoms):
        atoms = positions
        positions = atoms.get_positions()
        if cell is None and atoms.pbc.any():
            cell = np.asarray(atoms.get_cell())
        if pbc is None:
            pbc = atoms.get_pbc()
    pos = np.asarray(positions)
    if pos.ndim != 2 or pos.shape[1] != 3:
        raise ValueError(f"positions must have shape (N, 3), got {pos.shape}")
    pos = _array(pos, pos.shape, "positions")
    n = pos.shape[0]
    q = _array(charges, (n,), "charges")
    if sigma is not None:
        s = np.asarray(sigma)
        if s.ndim == 0:
            s = np.full(n, float(s))
        sig = _array(s, (n,), "sigma")
    else:
        sig = None
    periodic = cell is not None if pbc is None else bool(pbc_flags(pbc).any())
    if pbc is not None:
        flags = pbc_flags(pbc)
        if flags.any() and not flags.all():
            raise ValueError(f"electrostatics: mixed periodicity pbc={flags.tolist()} (slabs, wires) is not "
                             "supported: the 3D Ewald sum would be wrong for it; use all True or all False")
    c = None
    if periodic:
        if cell is None:
            raise ValueError("electrostatics: a periodic system needs a cell")
        c = np.asarray(cell, dtype=np.float64)
        if c.shape == (3,):
            c = np.diag(c)
        c = _array(c, (3, 3), "cell")
    try:
        acc = float(accuracy)
    except (TypeError, ValueError):
        raise TypeError(f"accuracy must be a number, got {accuracy!r}") from None
    if alpha is None:
        a = 0.0
    else:
        try:
            a = float(alpha)
        except (TypeError, ValueError):
            raise TypeError(f"alpha must be a number (1/Angstrom) or None, got {alpha!r}") from None
        if not (np.isfinite(a) and a > 0):
            raise ValueError(f"electrostatics: alpha must be a finite number > 0 (1/Angstrom), got {alpha!r}")
    md = min_distance_argument(min_distance)
    th = threads_argument(threads)
    out = dict(_core.electrostatics(pos, q, sig, c, periodic, acc, a, md, th))
    out["stress"] = -out["virial"] / abs(np.linalg.det(c)) if periodic else None
    return out
