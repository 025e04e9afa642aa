"""Model type ``dipole``: environment-dependent atomic charges and the dipole moment.

Method: M. Gastegger, J. Behler, P. Marquetand, Chem. Sci. 8, 6924 (2017): atomic charges from
element networks on atom-centred descriptors, the total charge imposed, and the dipole
mu = sum_i q_i r_i. Evaluated by the core (cpp/src/models/dipole/); this module holds the
parameters, their model-file records and a NumPy reference evaluation.

For atom i of element k (index into ``species``) and committee member m::

    x_i     = (G_i - scaling[k]["shift"]) * scaling[k]["scale"] + scaling[k]["offset"]
    q~_i^m  = charge_reference[k] + charge_scale * NN_q^m(x_i)               raw charge (e)
    w_i^m   = 1                                      scheme "uniform"
            = softplus(NN_w^m(x_i)) + 1e-3           scheme "weighted"
    q_i^m   = q~_i^m - w_i^m (sum_j q~_j^m - Q) / sum_j w_j^m                  (Q: total charge, e)
    q_i     = mean_m q_i^m,     mu = sum_i q_i r_i                    (e, e*Angstrom about the origin)

so sum_i q_i = Q for any network output (to rounding). With the uniform scheme this is Eq. 5 of
Gastegger et al. (and RuNNer's dipole networks); the weighted scheme learns where the excess
charge goes. Networks are per element, or one shared by all elements (``shared``).
"""
from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import numpy as np

from ..model_file import ModelFileError, Value, check_header, get_record, get_scalar
from .bpnn import ACTIVATIONS, DescriptorNetworkModel, _act, _count

SCHEMES = ("uniform", "weighted")
#: Lower bound added to the softplus weights (as DipoleModel::kWeightFloor in the core).
WEIGHT_FLOOR = 1e-3

Network = List[Tuple[np.ndarray, np.ndarray]]


def softplus(z: np.ndarray) -> np.ndarray:
    """log(1 + e^z) without overflow (the core's and torch.logaddexp(z, 0)'s formula)."""
    return np.maximum(z, 0.0) + np.log1p(np.exp(-np.abs(z)))


@dataclass
class DipoleParameters(DescriptorNetworkModel):
    """Everything inference needs for a charge/dipole model (or a committee of them).

    Attributes:
        species: atomic numbers; their order is the element index.
        descriptor: the descriptor's parameter form (``Descriptor.to_dict()`` with ``'type'``).
        scaling: per element {"shift": (F_k,), "scale": (F_k,), "offset": float}.
        charge_networks: [member][network][layer] -> (W (out, in), b (out,)); output width 1.
        activations: [network] -> activation names, one per layer (charge networks).
        charge_reference: (n_elements,) e. charge_scale: e per network output unit.
        scheme: ``"uniform"`` or ``"weighted"`` (see the module docstring).
        weight_networks / weight_activations: like the charge networks; only for ``"weighted"``.
        shared: one network for all elements (needs equal feature counts).
        metadata: provenance strings (written as ``metadata.*`` records).
    """

    species: List[int]
    descriptor: dict
    scaling: List[dict]
    charge_networks: List[List[Network]]
    activations: List[List[str]]
    charge_reference: np.ndarray
    charge_scale: float = 1.0
    scheme: str = "uniform"
    weight_networks: Optional[List[List[Network]]] = None
    weight_activations: Optional[List[List[str]]] = None
    metadata: Dict[str, str] = field(default_factory=dict)
    shared: bool = False

    model_type = "dipole"

    @property
    def committee_size(self) -> int:
        return len(self.charge_networks)

    # -------------------------------------------------------------- checks
    def validate(self) -> None:
        """Raise ModelFileError naming the first inconsistency."""
        syms, n_feat = self._check_species_and_descriptor()
        ne = len(syms)
        if self.scheme not in SCHEMES:
            raise ModelFileError(f"charge scheme {self.scheme!r} is not one of {SCHEMES}")
        if len(self.scaling) != ne or len(np.atleast_1d(self.charge_reference)) != ne:
            raise ModelFileError("scaling and charge_reference need one entry per species")
        if not (np.all(np.isfinite(np.asarray(self.charge_reference, dtype=float))) and np.isfinite(self.charge_scale)):
            raise ModelFileError("charge_reference and charge_scale must be finite")
        if self.shared and len(set(n_feat.values())) != 1:
            raise ModelFileError("a shared network needs the same feature count for every element")
        for k, s in enumerate(syms):
            for key in ("shift", "scale"):
                if np.shape(self.scaling[k][key]) != (n_feat[s],):
                    raise ModelFileError(f"scaling of {s}: {key} has shape {np.shape(self.scaling[k][key])}, "
                                         f"expected ({n_feat[s]},)")
                if not np.all(np.isfinite(self.scaling[k][key])):
                    raise ModelFileError(f"scaling of {s}: {key} is not finite")
        self._check_networks("charge", self.charge_networks, self.activations, n_feat)
        if self.scheme == "weighted":
            if self.weight_networks is None or self.weight_activations is None:
                raise ModelFileError("the weighted charge scheme needs weight networks")
            if len(self.weight_networks) != self.committee_size:
                raise ModelFileError(f"{len(self.weight_networks)} weight-network members for a committee of "
                                     f"{self.committee_size}")
            self._check_networks("weight", self.weight_networks, self.weight_activations, n_feat)
        elif self.weight_networks is not None:
            raise ModelFileError("weight networks given, but the charge scheme is 'uniform'")

    def _check_networks(self, what, nets, acts, n_feat) -> None:
        syms = self.elements
        n_nets = 1 if self.shared else len(syms)
        if not nets:
            raise ModelFileError(f"model has no {what} networks")
        if len(acts) != n_nets:
            raise ModelFileError(f"{what} activations: {len(acts)} lists for {n_nets} network(s)")
        for n in range(n_nets):
            name = f"shared {what} network" if self.shared else f"{what} network of {syms[n]}"
            for a in acts[n]:
                if a not in ACTIVATIONS:
                    raise ModelFileError(f"{name}: unknown activation {a!r} (known: {ACTIVATIONS})")
            for m, member in enumerate(nets):
                if len(member) != n_nets:
                    raise ModelFileError(f"{what} committee member {m}: {len(member)} networks, expected {n_nets}")
                layers = member[n]
                if len(layers) != len(acts[n]):
                    raise ModelFileError(f"{name}, member {m}: {len(layers)} layers but {len(acts[n])} activations")
                width = n_feat[syms[n]]
                for l, (W, b) in enumerate(layers):
                    W, b = np.asarray(W), np.asarray(b)
                    if W.ndim != 2 or W.shape[1] != width or b.shape != (W.shape[0],):
                        raise ModelFileError(f"{name}, member {m}, layer {l}: weight {W.shape} / bias {b.shape} "
                                             f"do not fit input width {width}")
                    if not (np.isfinite(W).all() and np.isfinite(b).all()):
                        raise ModelFileError(f"{name}, member {m}, layer {l}: non-finite weights")
                    width = W.shape[0]
                if width != 1:
                    raise ModelFileError(f"{name}, member {m}: output width {width}, expected 1")

    # -------------------------------------------------------------- records
    def to_records(self) -> Dict[str, Value]:
        """Model-file records (docs/model_file.md). Raises ModelFileError if inconsistent."""
        from .. import __version__

        self.validate()
        rec: Dict[str, Value] = {"model_type": "dipole", "units.energy": "eV", "units.length": "Angstrom",
                                 "units.charge": "e"}
        rec.update(self.descriptor_object().records())
        rec.update({"charge.scheme": self.scheme,
                    "charge.reference": np.asarray(self.charge_reference, dtype=np.float64),
                    "charge.scale": float(self.charge_scale),
                    "committee_size": np.int64(self.committee_size)})
        for k in range(len(self.species)):
            rec[f"charge_scaling.{k}.shift"] = np.asarray(self.scaling[k]["shift"], dtype=np.float64)
            rec[f"charge_scaling.{k}.scale"] = np.asarray(self.scaling[k]["scale"], dtype=np.float64)
            rec[f"charge_scaling.{k}.offset"] = float(self.scaling[k].get("offset", 0.0))
        sets = [("charge_network.", self.charge_networks, self.activations)]
        if self.scheme == "weighted":
            sets.append(("weight_network.", self.weight_networks, self.weight_activations))
        for prefix, nets, acts in sets:
            rec[f"{prefix}shared"] = np.int64(1 if self.shared else 0)
            for n in range(1 if self.shared else len(self.species)):
                rec[f"{prefix}{n}.activations"] = ",".join(acts[n])
                for m, member in enumerate(nets):
                    rec[f"{prefix}{m}.{n}.n_layers"] = np.int64(len(member[n]))
                    for l, (W, b) in enumerate(member[n]):
                        rec[f"{prefix}{m}.{n}.{l}.weight"] = np.asarray(W, dtype=np.float64)
                        rec[f"{prefix}{m}.{n}.{l}.bias"] = np.asarray(b, dtype=np.float64)
        meta = {"atomforge_version": __version__,
                "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
        meta.update(self.metadata)
        for key, v in meta.items():
            rec[f"metadata.{key}"] = str(v)
        return rec

    @classmethod
    def from_records(cls, rec: Dict[str, Value], where: str = "<model>") -> "DipoleParameters":
        """Parse model-file records. Raises ModelFileError naming ``where`` and the record
        (including a ``units.charge`` other than ``"e"``)."""
        from ..descriptors import descriptor_from_records

        def get(name, kind=None):
            return get_record(rec, name, kind, where)

        check_header(rec, "dipole", where)
        uc = get("units.charge", "str")
        if uc != "e":
            raise ModelFileError(f"{where}: record 'units.charge' must be 'e' (charges in e, dipoles in e*Angstrom), "
                                 f"got {uc!r}")
        d = descriptor_from_records(rec, where)
        species = [int(z) for z in np.atleast_1d(get("species", "arr"))]
        ne = len(species)
        M = _count(get("committee_size", "arr"), "committee_size", where, len(rec))
        scheme = get("charge.scheme", "str")
        if scheme not in SCHEMES:
            raise ModelFileError(f"{where}: record 'charge.scheme' is {scheme!r} (known: {', '.join(SCHEMES)})")
        shared = bool(_count(rec.get("charge_network.shared", np.int64(0)), "charge_network.shared", where, 1,
                             minimum=0))
        n_nets = 1 if shared else ne
        scaling = [{"shift": np.atleast_1d(get(f"charge_scaling.{k}.shift", "f64")).astype(float),
                    "scale": np.atleast_1d(get(f"charge_scaling.{k}.scale", "f64")).astype(float),
                    "offset": get_scalar(rec, f"charge_scaling.{k}.offset", "f64", where)} for k in range(ne)]
        if scheme == "weighted":  # read by the core too: the same rule (0 or 1, equal to the charge networks')
            wshared = bool(_count(rec.get("weight_network.shared", np.int64(0)), "weight_network.shared", where, 1,
                                  minimum=0))
            if wshared != shared:
                raise ModelFileError(f"{where}: charge_network.shared and weight_network.shared differ")

        def networks(prefix):
            acts, nets = [], [[] for _ in range(M)]
            for n in range(n_nets):
                acts.append(get(f"{prefix}{n}.activations", "str").split(","))
                for m in range(M):
                    L = _count(get(f"{prefix}{m}.{n}.n_layers", "arr"), f"{prefix}{m}.{n}.n_layers", where, len(rec))
                    nets[m].append([(np.atleast_2d(get(f"{prefix}{m}.{n}.{l}.weight", "f64")).astype(float),
                                     np.atleast_1d(get(f"{prefix}{m}.{n}.{l}.bias", "f64")).astype(float))
                                    for l in range(L)])
            return nets, acts

        qn, qa = networks("charge_network.")
        wn, wa = networks("weight_network.") if scheme == "weighted" else (None, None)
        meta = {key[len("metadata."):]: v for key, v in rec.items() if key.startswith("metadata.")}
        p = cls(species, d.to_dict(), scaling, qn, qa, np.atleast_1d(get("charge.reference", "f64")).astype(float),
                get_scalar(rec, "charge.scale", "f64", where), scheme, wn, wa, meta, shared)
        try:
            p.validate()
        except ModelFileError as exc:
            raise ModelFileError(f"{where}: {exc}") from None
        return p

    def describe(self) -> List[Tuple[str, str]]:
        """(key, value) lines for ``atomforge inspect``."""
        d = self.descriptor_object()
        lines = [("descriptor", f"{d.type}: {d!r}"), ("cutoff", f"{d.cutoff:g} A"),
                 ("outputs", "atomic charges (e) and dipole about the origin (e*A); no energy"),
                 ("charge scheme", "weighted: q_i = q~_i - w_i (sum q~ - Q) / sum w" if self.scheme == "weighted"
                  else "uniform: q_i = q~_i - (sum q~ - Q) / N"),
                 ("networks", "one shared by all elements" if self.shared else "one per element")]
        for k, s in enumerate(self.elements):
            n = self.network_index(k)
            layers = self.charge_networks[0][n]
            widths = [layers[0][0].shape[1]] + [W.shape[0] for W, _ in layers]
            lines.append((s, f"{d.n_features_per_element[s]} features, charge network "
                             f"{'-'.join(map(str, widths))} ({','.join(self.activations[n])}), reference charge "
                             f"{float(np.atleast_1d(self.charge_reference)[k]):.6f} e"))
        lines += [("committee_size", str(self.committee_size)), ("charge_scale", f"{self.charge_scale:.6g} e")]
        return lines

    # -------------------------------------------------------------- NumPy reference
    def _mlp(self, nets, acts, m, n, x):
        h = x
        for (W, b), a in zip(nets[m][n], acts[n]):
            h, _ = _act(a, h @ np.asarray(W).T + b)
        return h[:, 0]

    def charge_partials_numpy(self, G: np.ndarray, species_index: np.ndarray) -> np.ndarray:
        """Raw charges and weights (N, M, 2) of N atoms from their descriptor rows G (N, F) and
        element indices (N,), in NumPy (the reference the core is tested against)."""
        N, M = len(G), self.committee_size
        out = np.zeros((N, M, 2))
        out[:, :, 1] = 1.0
        ref = np.atleast_1d(np.asarray(self.charge_reference, dtype=float))
        for k in range(len(self.species)):
            sel = np.flatnonzero(species_index == k)
            if not len(sel):
                continue
            n = self.network_index(k)
            nf = len(self.scaling[k]["shift"])
            x = (G[sel, :nf] - self.scaling[k]["shift"]) * self.scaling[k]["scale"] + self.scaling[k]["offset"]
            for m in range(M):
                out[sel, m, 0] = ref[k] + self.charge_scale * self._mlp(self.charge_networks, self.activations, m, n, x)
                if self.scheme == "weighted":
                    out[sel, m, 1] = softplus(self._mlp(self.weight_networks, self.weight_activations, m, n, x)) \
                        + WEIGHT_FLOOR
        return out

    def charges_numpy(self, G: np.ndarray, species_index: np.ndarray, positions: np.ndarray,
                      total_charge: float = 0.0):
        """Charges (N,) e and dipole (3,) e*Angstrom about the origin of one structure, in NumPy.

        G: (N, F) descriptor rows; species_index: (N,) element indices; positions: (N, 3)
        Angstrom; total_charge: Q in e.
        """
        p = self.charge_partials_numpy(G, species_index)
        S = p.sum(axis=0)  # (M, 2)
        q = np.mean(p[:, :, 0] - p[:, :, 1] * (S[:, 0] - total_charge) / S[:, 1], axis=1)
        return q, q @ np.asarray(positions, dtype=float)
