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
of the charges on the positions (exactly conservative). Not in this model (yet): polarisation
(induced dipoles) and dispersion terms, committees.

The parameters are held as a :class:`~atomforge.models.bpnn.BPNNParameters` (short-range part,
records ``energy.*``, ``network.*``, ``scaling.*``) and a
:class:`~atomforge.models.dipole.DipoleParameters` (charges, records ``charge.*``,
``charge_network.*``, ``charge_scaling.*``, ``weight_network.*``) on the same descriptor, plus
``electrostatics.sigma`` and ``electrostatics.accuracy`` (docs/model_file.md).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Tuple

import numpy as np

from ..model_file import ModelFileError, Value, check_header, get_record, get_scalar, get_vector
from .bpnn import BPNNParameters
from .dipole import DipoleParameters

#: Ewald accuracy bounds (kEwaldMinAccuracy, kEwaldMaxAccuracy of cpp/src/electrostatics/ewald.hpp).
ACCURACY_RANGE = (1e-15, 1e-1)

_CHARGE_PREFIXES = ("charge.", "charge_network.", "charge_scaling.", "weight_network.")
_SHORT_PREFIXES = ("energy.", "network.", "scaling.")


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
    """

    short: BPNNParameters
    charges: DipoleParameters
    sigma: np.ndarray
    accuracy: float = 1e-8
    metadata: Dict[str, str] = field(default_factory=dict)

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
        short = BPNNParameters.from_records({**{k: v for k, v in rec.items() if not k.startswith(_CHARGE_PREFIXES)},
                                             "model_type": "bpnn"}, where)
        charges = DipoleParameters.from_records(
            {**{k: v for k, v in rec.items() if not k.startswith(_SHORT_PREFIXES)}, "model_type": "dipole"}, where)
        sigma = get_vector(rec, "electrostatics.sigma", "f64", where)
        acc = get_scalar(rec, "electrostatics.accuracy", "f64", where)
        meta = {key[len("metadata."):]: v for key, v in rec.items() if key.startswith("metadata.")}
        p = cls(short, charges, sigma, float(acc), meta)
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
        return lines

    def short_range_model(self) -> BPNNParameters:
        """The short-range part alone as a ``bpnn`` model (E_short; for tests and comparisons)."""
        return self.short
