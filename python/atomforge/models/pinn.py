"""Model type ``pinn``: physics-embedded potential, E = E_short + E_elec.

Method: a local atomic-network energy plus the electrostatic energy of environment-dependent
Gaussian charges, as in PhysNet (O. T. Unke, M. Meuwly, J. Chem. Theory Comput. 15, 3678
(2019)) and the 4G-HDNNP (T. W. Ko et al., Nat. Commun. 12, 398 (2021)); evaluated by the core
(cpp/src/models/pinn/). For atom i of element k::

    E_i^short = reference_energies[k] + energy_scale * NN_E(x_i)               (bpnn, eV)
    q_i       = q~_i - w_i (sum_j q~_j - Q) / sum_j w_j                        (dipole model, e)
    E_elec    = atomforge.electrostatics.ewald(positions, q, sigma[species])   (eV)
    E         = sum_i E_i^short + E_elec

with Gaussian charge widths ``sigma`` per element (Angstrom; 0 = point charges); Ewald sum for
periodic cells, direct sum for molecules; no Gaussian self-energy. Forces include the dependence
of the charges on the positions (exactly conservative).

Optional dispersion term (records ``dispersion.*``, ``dispersion_network.*``,
``dispersion_scaling.*``; absent: E_disp = 0 and the model is unchanged), Becke-Johnson rational
damping (Grimme, Ehrlich, Goerigk, J. Comput. Chem. 32, 1456 (2011)) of environment-scaled C6
coefficients (Tkatchenko, Scheffler, Phys. Rev. Lett. 102, 073005 (2009))::

    c_i     = softplus(NN_c(x_i)) + 1e-3                                  (dispersion networks)
    C6_ij   = sqrt(c6[k_i] c_i c6[k_j] c_j),  R0_ij = r0[k_i] + r0[k_j]
    E_disp  = - sum_{i<j, images, r_ij < r_cut} f(r_ij) C6_ij / (r_ij^6 + R0_ij^6)
    f(r)    = 1 - 10x^3 + 15x^4 - 6x^5,  x = (r - r_on) / (r_cut - r_on) clipped to [0, 1]

Optional polarisation term, molecules and periodic cells (records ``polarisation.*``,
``polarisation_network.*``, ``polarisation_scaling.*``; absent: E_pol = 0 and the model is
unchanged): induced point dipoles with Thole damping (B. T. Thole, Chem. Phys. 59, 341 (1981);
the AMOEBA form of P. Ren, J. W. Ponder, J. Phys. Chem. B 107, 5933 (2003)), k_e from
:data:`atomforge.units.COULOMB`::

    alpha_i = alpha[k_i] (softplus(NN_a(x_i)) + 1e-3)                   (Angstrom^3, > 0)
    s_ij    = thole r_ij^3 / sqrt(alpha_i alpha_j),  l3 = 1 - e^-s,  l5 = 1 - (1 + s) e^-s
    E_i^q   = sum_{j != i} q_j l3 (r_i - r_j) / r_ij^3                   (point charges, damped)
    T_ij    = 3 l5 d d^T / r^5 - l3 I / r^3,   d = r_i - r_j
    mu      = alpha (E^q + T mu)       (solved exactly: dense 3N x 3N, Cholesky)
    E_pol   = -k_e / 2 sum_i mu_i . E_i^q

Periodic cells: the same sums over every lattice image by a dipolar Ewald sum (tin foil; the
splitting parameter and reciprocal vectors of E_elec's Ewald sum; docs/pinn.md, Eqs. P1-P8 of
cpp/src/models/pinn/pinn.hpp). Not in this model (yet): committees.

The parameters are held as a :class:`~atomforge.models.bpnn.BPNNParameters` (short-range part,
records ``energy.*``, ``network.*``, ``scaling.*``) and a
:class:`~atomforge.models.dipole.DipoleParameters` (charges, records ``charge.*``,
``charge_network.*``, ``charge_scaling.*``, ``weight_network.*``) on the same descriptor, plus
``electrostatics.sigma`` and ``electrostatics.accuracy`` (docs/model_file.md), and optionally a
:class:`DispersionParameters`.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import numpy as np

from ..model_file import ModelFileError, Value, check_header, get_record, get_scalar, get_vector
from .bpnn import BPNNParameters
from .dipole import DipoleParameters

#: Ewald accuracy bounds (kEwaldMinAccuracy, kEwaldMaxAccuracy of cpp/src/electrostatics/ewald.hpp).
ACCURACY_RANGE = (1e-15, 1e-1)

_CHARGE_PREFIXES = ("charge.", "charge_network.", "charge_scaling.", "weight_network.")
_SHORT_PREFIXES = ("energy.", "network.", "scaling.")
_DISPERSION_PREFIXES = ("dispersion.", "dispersion_network.", "dispersion_scaling.")
#: Largest dispersion cutoff, Angstrom (as every descriptor cutoff; kMaxDispersionCutoff in pinn.cpp).
MAX_DISPERSION_CUTOFF = 25.0
#: c_i = softplus(NN_c) + DISPERSION_FLOOR (kDispersionFloor in pinn.cpp).
DISPERSION_FLOOR = 1e-3
_POLARISATION_PREFIXES = ("polarisation.", "polarisation_network.", "polarisation_scaling.")
#: alpha_i = alpha_k (softplus(NN_a) + POLARISATION_FLOOR) (kPolarisationFloor in pinn.cpp).
POLARISATION_FLOOR = 1e-3
#: Thole damping a of AMOEBA (Ren & Ponder 2003), the default.
THOLE_AMOEBA = 0.39
#: Largest Thole a accepted by both readers.
MAX_THOLE = 100.0
#: Most atoms the core's dense induced-dipole solve accepts (kMaxPolarisableAtoms in pinn.cpp).
MAX_POLARISABLE_ATOMS = 2000


def _network_set_records(network: BPNNParameters, name: str) -> Dict[str, Value]:
    """The ``network.*`` / ``scaling.*`` records of an extra network set, written as
    ``{name}_network.*`` / ``{name}_scaling.*`` (its reference energies and scale are not used)."""
    rec: Dict[str, Value] = {}
    for key, v in network.to_records().items():
        if key.startswith("network."):
            rec[f"{name}_network." + key[len("network."):]] = v
        elif key.startswith("scaling."):
            rec[f"{name}_scaling." + key[len("scaling."):]] = v
    return rec


def _network_set_from_records(rec: Dict[str, Value], name: str, where: str) -> BPNNParameters:
    """Read the extra network set ``{name}_network.*`` / ``{name}_scaling.*`` of a pinn model file
    as a :class:`BPNNParameters` on the model's descriptor. Raises ModelFileError naming the
    records as they are in the file."""
    species = np.asarray(get_record(rec, "species", "i64", where)).reshape(-1)
    sub = {k: v for k, v in rec.items()
           if not k.startswith(_SHORT_PREFIXES + _CHARGE_PREFIXES + _DISPERSION_PREFIXES + _POLARISATION_PREFIXES)}
    for k, v in rec.items():
        if k.startswith(f"{name}_network."):
            sub["network." + k[len(f"{name}_network."):]] = v
        elif k.startswith(f"{name}_scaling."):
            sub["scaling." + k[len(f"{name}_scaling."):]] = v
    sub["model_type"] = "bpnn"
    sub["energy.reference"] = np.zeros(len(species))
    sub["energy.scale"] = 1.0
    try:
        return BPNNParameters.from_records(sub, where)
    except ModelFileError as exc:  # name the records as they are in the file
        msg = re.sub(r"(?<![\w.])network\.", f"{name}_network.", str(exc))
        raise ModelFileError(re.sub(r"(?<![\w.])scaling\.", f"{name}_scaling.", msg)) from None


def polarisation_reference(elements) -> np.ndarray:
    """Reference free-atom static dipole polarisabilities (Angstrom^3) per element from ASE's
    table ``ase.calculators.vdwcorrection.vdWDB_alphaC6`` (X. Chu, A. Dalgarno, J. Chem. Phys.
    121, 4083 (2004); Bohr^3 converted with :data:`atomforge.units.BOHR`): H 0.667, C 1.76, N 1.10,
    O 0.802 Angstrom^3. Raises ValueError for an element not in the table."""
    from ase.calculators.vdwcorrection import vdWDB_alphaC6

    from ..units import BOHR

    out = []
    for s in elements:
        if s not in vdWDB_alphaC6:
            raise ValueError(f"no reference polarisability for element {s!r} in ASE's table; give "
                             f"polarisation.alpha yourself")
        out.append(vdWDB_alphaC6[s][0] * BOHR ** 3)
    return np.array(out, dtype=float)


def dispersion_reference(elements) -> Tuple[np.ndarray, np.ndarray]:
    """Reference C6 (eV*Angstrom^6) and damping radii r0 (Angstrom) per element, from ASE's tables:
    C6 of the free atoms (``ase.calculators.vdwcorrection.vdWDB_alphaC6``: X. Chu, A. Dalgarno,
    J. Chem. Phys. 121, 4083 (2004), the values ASE's Tkatchenko-Scheffler correction uses; Hartree
    Bohr^6 converted) and the van der Waals radii of Grimme's D2 (``vdWDB_Grimme06jcc``: S. Grimme,
    J. Comput. Chem. 27, 1787 (2006), Angstrom), so that R0_ij = r0_i + r0_j is D2's damping
    radius. Raises ValueError for an element that is not in both tables."""
    from ase.calculators.vdwcorrection import vdWDB_alphaC6, vdWDB_Grimme06jcc
    from ase.units import Bohr, Hartree

    c6, r0 = [], []
    for s in elements:
        if s not in vdWDB_alphaC6 or s not in vdWDB_Grimme06jcc:
            raise ValueError(f"no reference C6 / vdW radius for element {s!r} in ASE's tables; give "
                             f"dispersion.c6 and dispersion.r0 yourself")
        c6.append(vdWDB_alphaC6[s][1] * Hartree * Bohr ** 6)
        r0.append(vdWDB_Grimme06jcc[s][1])
    return np.array(c6, dtype=float), np.array(r0, dtype=float)


@dataclass
class DispersionParameters:
    """The optional dispersion term of a ``pinn`` model (module docstring).

    Attributes:
        network: the dispersion networks as a :class:`BPNNParameters` on the model's descriptor
            (its ``network.*`` / ``scaling.*`` records are written as ``dispersion_network.*`` /
            ``dispersion_scaling.*``; its reference energies and scale are not used: NN_c is the
            raw network output).
        c6: (n_elements,) reference C6, eV*Angstrom^6 (>= 0).
        r0: (n_elements,) damping radii, Angstrom (> 0); R0_ij = r0_i + r0_j.
        r_on, r_cut: the switch to zero, Angstrom, 0 <= r_on < r_cut <= 25.
    """

    network: BPNNParameters
    c6: np.ndarray
    r0: np.ndarray
    r_on: float = 8.0
    r_cut: float = 10.0

    def validate(self, n_elements: int) -> None:
        self.network.validate()
        for name, v, ok, what in (("dispersion.c6", self.c6, lambda x: x >= 0, ">= 0 (eV*Angstrom^6)"),
                                  ("dispersion.r0", self.r0, lambda x: x > 0, "> 0 (Angstrom)")):
            a = np.asarray(v, dtype=float)
            if a.shape != (n_elements,):
                raise ModelFileError(f"record '{name}' needs one value per species ({n_elements}), got shape {a.shape}")
            if not np.all(np.isfinite(a)) or not np.all(ok(a)):
                raise ModelFileError(f"record '{name}' must be finite and {what}, got {a.tolist()}")
        rc, ro = float(self.r_cut), float(self.r_on)
        if not (0 < rc <= MAX_DISPERSION_CUTOFF):
            raise ModelFileError(f"record 'dispersion.r_cut' is {rc!r} A, outside (0, {MAX_DISPERSION_CUTOFF:g}]")
        if not (0 <= ro < rc):
            raise ModelFileError(f"record 'dispersion.r_on' is {ro!r} A; it must be in [0, dispersion.r_cut = {rc:g} A)")
        if self.network.committee_size != 1:
            raise ModelFileError("pinn models do not support committees yet (one dispersion network set)")

    def to_records(self) -> Dict[str, Value]:
        rec = _network_set_records(self.network, "dispersion")
        rec["dispersion.c6"] = np.asarray(self.c6, dtype=np.float64)
        rec["dispersion.r0"] = np.asarray(self.r0, dtype=np.float64)
        rec["dispersion.r_on"] = float(self.r_on)
        rec["dispersion.r_cut"] = float(self.r_cut)
        return rec

    @classmethod
    def from_records(cls, rec: Dict[str, Value], where: str) -> "DispersionParameters":
        for name in ("dispersion.c6", "dispersion.r0", "dispersion.r_on", "dispersion.r_cut"):
            if name not in rec:
                raise ModelFileError(f"{where}: record '{name}' is missing (a dispersion term needs dispersion.c6, "
                                     f"dispersion.r0, dispersion.r_on, dispersion.r_cut and the dispersion networks)")
        c6 = get_vector(rec, "dispersion.c6", "f64", where)
        r0 = get_vector(rec, "dispersion.r0", "f64", where)
        r_on = float(get_scalar(rec, "dispersion.r_on", "f64", where))
        r_cut = float(get_scalar(rec, "dispersion.r_cut", "f64", where))
        network = _network_set_from_records(rec, "dispersion", where)
        return cls(network, c6, r0, r_on, r_cut)


@dataclass
class PolarisationParameters:
    """The optional polarisation term of a ``pinn`` model (module docstring; molecules and periodic cells).

    Attributes:
        network: the polarisability networks as a :class:`BPNNParameters` on the model's
            descriptor (written as ``polarisation_network.*`` / ``polarisation_scaling.*``; NN_a
            is the raw network output).
        alpha: (n_elements,) reference polarisabilities, Angstrom^3 (> 0).
        thole: the Thole damping a (dimensionless, in (0, 100]; AMOEBA 0.39).
    """

    network: BPNNParameters
    alpha: np.ndarray
    thole: float = THOLE_AMOEBA

    def validate(self, n_elements: int) -> None:
        self.network.validate()
        a = np.asarray(self.alpha, dtype=float)
        if a.shape != (n_elements,):
            raise ModelFileError(f"record 'polarisation.alpha' needs one value per species ({n_elements}), got "
                                 f"shape {a.shape}")
        if not np.all(np.isfinite(a)) or not np.all(a > 0):
            raise ModelFileError(f"record 'polarisation.alpha' must be finite and > 0 (Angstrom^3), got {a.tolist()}")
        t = float(self.thole)
        if not (0 < t <= MAX_THOLE):
            raise ModelFileError(f"record 'polarisation.thole' is {t!r}, outside (0, {MAX_THOLE:g}] (Thole damping a, "
                                 f"AMOEBA 0.39)")
        if self.network.committee_size != 1:
            raise ModelFileError("pinn models do not support committees yet (one polarisation network set)")

    def to_records(self) -> Dict[str, Value]:
        rec = _network_set_records(self.network, "polarisation")
        rec["polarisation.alpha"] = np.asarray(self.alpha, dtype=np.float64)
        rec["polarisation.thole"] = float(self.thole)
        return rec

    @classmethod
    def from_records(cls, rec: Dict[str, Value], where: str) -> "PolarisationParameters":
        for name in ("polarisation.alpha", "polarisation.thole"):
            if name not in rec:
                raise ModelFileError(f"{where}: record '{name}' is missing (a polarisation term needs "
                                     f"polarisation.alpha, polarisation.thole and the polarisation networks)")
        alpha = get_vector(rec, "polarisation.alpha", "f64", where)
        thole = float(get_scalar(rec, "polarisation.thole", "f64", where))
        network = _network_set_from_records(rec, "polarisation", where)
        return cls(network, alpha, thole)


@dataclass
class PinnParameters:
    """Everything inference needs for a ``pinn`` model.

    Attributes:
        short: the short-range atomic networks (committee size 1).
        charges: the charge networks and total-charge scheme (committee size 1), on the same
            species and descriptor as ``short``.
        sigma: (n_elements,) Gaussian charge widths, Angstrom (>= 0; 0 = point charges).
        accuracy: Ewald error control (relative energy accuracy, in [1e-15, 0.1]).
        metadata: provenance strings (``metadata.*`` records).
        dispersion: the optional dispersion term (None: no ``dispersion*`` records, E_disp = 0).
        polarisation: the optional polarisation term (None: no ``polarisation*`` records, E_pol = 0).
    """

    short: BPNNParameters
    charges: DipoleParameters
    sigma: np.ndarray
    accuracy: float = 1e-8
    metadata: Dict[str, str] = field(default_factory=dict)
    dispersion: Optional[DispersionParameters] = None
    polarisation: Optional[PolarisationParameters] = None

    model_type = "pinn"

    @property
    def species(self) -> List[int]:
        return list(self.short.species)

    @property
    def elements(self) -> List[str]:
        return self.short.elements

    @property
    def committee_size(self) -> int:
        return 1

    def descriptor_object(self):
        return self.short.descriptor_object()

    def validate(self) -> None:
        """Raise ModelFileError naming the first inconsistency."""
        self.short.validate()
        self.charges.validate()
        if list(self.short.species) != list(self.charges.species):
            raise ModelFileError(f"short-range species {self.short.species} != charge species {self.charges.species}")
        rs, rq = self.short.descriptor_object().records(), self.charges.descriptor_object().records()
        if rs.keys() != rq.keys() or any(not np.array_equal(np.asarray(rs[k]), np.asarray(rq[k])) for k in rs):
            raise ModelFileError("the short-range and charge networks must use the same descriptor")
        if self.short.committee_size != 1 or self.charges.committee_size != 1:
            raise ModelFileError("pinn models do not support committees yet (committee size must be 1)")
        if self.short.shared != self.charges.shared:
            raise ModelFileError("short-range and charge networks must both be shared or both per element")
        s = np.asarray(self.sigma, dtype=float)
        if s.shape != (len(self.species),):
            raise ModelFileError(f"sigma needs one width per species ({len(self.species)}), got shape {s.shape}")
        if not np.all(np.isfinite(s)) or np.any(s < 0):
            raise ModelFileError(f"sigma must be finite and >= 0 (Angstrom), got {s.tolist()}")
        a = float(self.accuracy)
        if not (ACCURACY_RANGE[0] <= a <= ACCURACY_RANGE[1]):
            raise ModelFileError(f"accuracy {a!r} is outside [{ACCURACY_RANGE[0]:g}, {ACCURACY_RANGE[1]:g}]")
        if self.dispersion is not None:
            d = self.dispersion
            d.validate(len(self.species))
            if list(d.network.species) != list(self.short.species):
                raise ModelFileError(f"dispersion species {d.network.species} != short-range species {self.short.species}")
            rd = d.network.descriptor_object().records()
            if rs.keys() != rd.keys() or any(not np.array_equal(np.asarray(rs[k]), np.asarray(rd[k])) for k in rs):
                raise ModelFileError("the short-range and dispersion networks must use the same descriptor")
        if self.polarisation is not None:
            pp = self.polarisation
            pp.validate(len(self.species))
            if list(pp.network.species) != list(self.short.species):
                raise ModelFileError(f"polarisation species {pp.network.species} != short-range species "
                                     f"{self.short.species}")
            rp = pp.network.descriptor_object().records()
            if rs.keys() != rp.keys() or any(not np.array_equal(np.asarray(rs[k]), np.asarray(rp[k])) for k in rs):
                raise ModelFileError("the short-range and polarisation networks must use the same descriptor")

    def to_records(self) -> Dict[str, Value]:
        """Model-file records (docs/model_file.md): the bpnn and dipole records on one descriptor
        plus electrostatics.*. Raises ModelFileError if inconsistent."""
        self.validate()
        rec = dict(self.short.to_records())
        for key, v in self.charges.to_records().items():
            if key.startswith(_CHARGE_PREFIXES):
                rec[key] = v
        rec["model_type"] = "pinn"
        rec["units.charge"] = "e"
        rec["electrostatics.sigma"] = np.asarray(self.sigma, dtype=np.float64)
        rec["electrostatics.accuracy"] = float(self.accuracy)
        if self.dispersion is not None:
            rec.update(self.dispersion.to_records())
        if self.polarisation is not None:
            rec.update(self.polarisation.to_records())
        for key, v in self.metadata.items():
            rec[f"metadata.{key}"] = str(v)
        return rec

    @classmethod
    def from_records(cls, rec: Dict[str, Value], where: str = "<model>") -> "PinnParameters":
        """Parse model-file records. Raises ModelFileError naming ``where`` and the record."""
        check_header(rec, "pinn", where)
        uc = get_record(rec, "units.charge", "str", where)
        if uc != "e":
            raise ModelFileError(f"{where}: record 'units.charge' must be 'e', got {uc!r}")
        M = np.asarray(get_record(rec, "committee_size", "i64", where))
        if M.size != 1 or int(M.reshape(())) != 1:
            raise ModelFileError(f"{where}: record 'committee_size' is {M.tolist()}; pinn models do not support "
                                 f"committees yet (it must be 1)")
        get_vector(rec, "charge.reference", "f64", where)  # the core reads a list (rank <= 1)
        short = BPNNParameters.from_records(
            {**{k: v for k, v in rec.items() if not k.startswith(_CHARGE_PREFIXES + _DISPERSION_PREFIXES + _POLARISATION_PREFIXES)},
             "model_type": "bpnn"}, where)
        charges = DipoleParameters.from_records(
            {**{k: v for k, v in rec.items() if not k.startswith(_SHORT_PREFIXES + _DISPERSION_PREFIXES + _POLARISATION_PREFIXES)},
             "model_type": "dipole"}, where)
        sigma = get_vector(rec, "electrostatics.sigma", "f64", where)
        acc = get_scalar(rec, "electrostatics.accuracy", "f64", where)
        meta = {key[len("metadata."):]: v for key, v in rec.items() if key.startswith("metadata.")}
        disp = (DispersionParameters.from_records(rec, where)
                if any(k.startswith(_DISPERSION_PREFIXES) for k in rec) else None)
        pol = (PolarisationParameters.from_records(rec, where)
               if any(k.startswith(_POLARISATION_PREFIXES) for k in rec) else None)
        p = cls(short, charges, sigma, float(acc), meta, disp, pol)
        try:
            p.validate()
        except ModelFileError as exc:
            raise ModelFileError(f"{where}: {exc}") from None
        return p

    def describe(self) -> List[Tuple[str, str]]:
        """(key, value) lines for ``atomforge inspect``."""
        lines = [("energy", "E = sum_i E_i(short) + E_elec(Gaussian charges; Ewald for periodic cells)")]
        lines += [(k, v) for k, v in self.short.describe() if k != "committee_size"]
        lines += [("charges: " + k, v) for k, v in self.charges.describe()
                  if k in ("charge scheme",) or k in self.elements]
        lines += [("sigma", ", ".join(f"{s} {w:g} A" for s, w in zip(self.elements, np.asarray(self.sigma)))),
                  ("ewald accuracy", f"{self.accuracy:g}")]
        d = self.dispersion
        if d is None:
            lines.append(("dispersion", "none"))
        else:
            lines.append(("dispersion", f"BJ-damped C6 scaled by networks, switched off between {d.r_on:g} and "
                                        f"{d.r_cut:g} A; " + "; ".join(
                                            f"{s} C6 {c:g} eV*A^6, r0 {r:g} A"
                                            for s, c, r in zip(self.elements, np.asarray(d.c6), np.asarray(d.r0)))))
        pp = self.polarisation
        if pp is None:
            lines.append(("polarisation", "none"))
        else:
            lines.append(("polarisation", f"Thole-damped induced dipoles (a = {pp.thole:g}), dipolar Ewald for periodic cells; "
                                          + "; ".join(f"{s} alpha {a:g} A^3"
                                                      for s, a in zip(self.elements, np.asarray(pp.alpha)))))
        return lines

    def short_range_model(self) -> BPNNParameters:
        """The short-range part alone as a ``bpnn`` model (E_short; for tests and comparisons)."""
        return self.short
