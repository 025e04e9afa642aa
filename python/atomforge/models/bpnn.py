"""Model type ``bpnn``: atomic neural-network potentials on any registered descriptor.

Behler-Parrinello high-dimensional neural-network potential (J. Behler, M. Parrinello, Phys.
Rev. Lett. 98, 146401 (2007)): the energy is a sum of atomic energies, each the output of a
network on the atom's descriptor row. Networks are per element, or one network shared by all
elements (``shared=True``, "SingleNN", as used with element-agnostic GMP descriptors: X. Lei,
A. J. Medford, J. Phys. Chem. Lett. 13, 7911 (2022)); a committee holds several independently
trained sets. Evaluated identically by the core (cpp/src/models/bpnn/).
"""
from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import numpy as np

from ..model_file import ModelFileError, Value, check_header, check_species, get_record, get_scalar, get_vector

ACTIVATIONS = ("linear", "tanh", "sigmoid", "softplus", "silu", "gaussian")


class DescriptorNetworkModel:
    """What the model types built from a descriptor and atomic networks share (``species``,
    ``descriptor``, ``shared`` attributes): element symbols, the descriptor object, the network
    index of an element, and the checks of species and descriptor that open ``validate``."""

    @property
    def elements(self) -> List[str]:
        from ase.data import chemical_symbols

        return [chemical_symbols[z] for z in self.species]

    def descriptor_object(self):
        """The descriptor (:class:`atomforge.descriptors.Descriptor`) of ``descriptor``."""
        from ..descriptors import descriptor_from_dict

        return descriptor_from_dict(self.descriptor)

    def network_index(self, k: int) -> int:
        return 0 if self.shared else k

    def _check_species_and_descriptor(self) -> Tuple[List[str], Dict[str, int]]:
        """Raise ModelFileError for no species, descriptor elements other than the species, or a
        descriptor that cannot be built; return (element symbols, features per element)."""
        if len(self.species) == 0:
            raise ModelFileError("model has no species")
        syms = self.elements
        if list(self.descriptor.get("elements", [])) != syms:
            raise ModelFileError(f"descriptor elements {self.descriptor.get('elements')} != species {syms}")
        try:
            d = self.descriptor_object()
        except (ValueError, TypeError) as exc:
            raise ModelFileError(f"descriptor: {exc}") from None
        return syms, d.n_features_per_element


@dataclass
class BPNNParameters(DescriptorNetworkModel):
    """Everything inference needs for an atomic neural-network potential (or a committee).

    Atomic energy of atom i of element k (index into ``species``), for committee member m::

        x_i   = (G_i - scaling[k]["shift"]) * scaling[k]["scale"] + scaling[k]["offset"]
        E_i^m = reference_energies[k] + energy_scale * NN_n(k)^m(x_i)            (eV)

    and E = sum_i mean_m E_i^m, with n(k) = k for per-element networks and n(k) = 0 when
    ``shared``. NN layers: h_{l+1} = act_l(W_l h_l + b_l), W_l (out, in); ``activations[n]``
    names one activation per layer (the last is usually 'linear').

    Attributes:
        species: atomic numbers; their order is the element index.
        descriptor: the descriptor's parameter form (``Descriptor.to_dict()``, with ``'type'``;
            ``'acsf'`` when absent).
        scaling: per element {"shift": (F_k,), "scale": (F_k,), "offset": float}.
        networks: [member][network][layer] -> (W (out, in), b (out,)); one network per element,
            or one when ``shared``.
        activations: [network] -> list of activation names, one per layer.
        reference_energies: (n_elements,) eV.
        energy_scale: eV.
        shared: one network for all elements.
        calibration: optional {"energy": c_E, "forces": c_F}, positive factors that turn the
            committee spread into a predicted error (fitted on validation frames by the
            trainer, :mod:`atomforge.train.calibration`); records
            ``uncertainty.energy_calibration`` / ``uncertainty.forces_calibration``.
        feature_range: optional per element {"min": (F_k,), "max": (F_k,)}, the range of each
            descriptor feature over the training structures; evaluations count the features
            outside it (extrapolation warnings, as n2p2 does); records
            ``extrapolation.{k}.min`` / ``.max``.
    """

    species: List[int]
    descriptor: dict
    scaling: List[dict]
    networks: List[List[List[Tuple[np.ndarray, np.ndarray]]]]
    activations: List[List[str]]
    reference_energies: np.ndarray
    energy_scale: float = 1.0
    metadata: Dict[str, str] = field(default_factory=dict)
    shared: bool = False
    calibration: Optional[Dict[str, float]] = None
    feature_range: Optional[List[dict]] = None

    model_type = "bpnn"

    @property
    def committee_size(self) -> int:
        return len(self.networks)

    def validate(self) -> None:
        """Raise ModelFileError naming the first inconsistency."""
        syms, n_feat = self._check_species_and_descriptor()
        ne = len(syms)
        n_nets = 1 if self.shared else ne
        if len(self.scaling) != ne or len(self.reference_energies) != ne:
            raise ModelFileError("scaling and reference energies need one entry per species")
        if len(self.activations) != n_nets:
            raise ModelFileError(f"activations: {len(self.activations)} lists for {n_nets} network(s)")
        if not np.all(np.isfinite(np.asarray(self.reference_energies, dtype=float))) or \
                not np.isfinite(self.energy_scale):
            raise ModelFileError("reference energies and energy scale must be finite")
        if not self.networks:
            raise ModelFileError("model has no networks")
        if self.shared and len(set(n_feat.values())) != 1:
            raise ModelFileError("a shared network needs the same feature count for every element")
        for k, s in enumerate(syms):
            nf = n_feat[s]
            for key in ("shift", "scale"):
                if np.shape(self.scaling[k][key]) != (nf,):
                    raise ModelFileError(f"scaling of {s} (record 'scaling.{k}.{key}'): {key} has shape "
                                         f"{np.shape(self.scaling[k][key])}, expected ({nf},)")
                if not np.all(np.isfinite(self.scaling[k][key])):
                    raise ModelFileError(f"scaling of {s}: {key} is not finite")
            if not np.isfinite(float(self.scaling[k].get("offset", 0.0))):
                raise ModelFileError(f"scaling of {s}: offset is not finite")
        if self.calibration is not None:
            if set(self.calibration) != {"energy", "forces"}:
                raise ModelFileError(f"calibration needs the keys 'energy' and 'forces', got {sorted(self.calibration)}")
            for key, c in self.calibration.items():
                if not (np.isfinite(c) and c > 0):
                    raise ModelFileError(f"calibration factor {key!r} must be positive and finite, got {c!r}")
        if self.feature_range is not None:
            if len(self.feature_range) != ne:
                raise ModelFileError(f"feature_range: {len(self.feature_range)} entries for {ne} elements")
            for k, s in enumerate(syms):
                lo, hi = (np.asarray(self.feature_range[k][key], dtype=float) for key in ("min", "max"))
                if lo.shape != (n_feat[s],) or hi.shape != (n_feat[s],):
                    raise ModelFileError(f"feature_range of {s}: min/max have shapes {lo.shape}/{hi.shape}, "
                                         f"expected ({n_feat[s]},)")
                if not (np.isfinite(lo).all() and np.isfinite(hi).all()) or (lo > hi).any():
                    q = int(np.flatnonzero(~(np.isfinite(lo) & np.isfinite(hi) & (lo <= hi)))[0])
                    raise ModelFileError(f"feature_range of {s}: feature {q} has no finite range "
                                         f"(min {lo[q]!r}, max {hi[q]!r})")
        for n in range(n_nets):
            nf = n_feat[syms[n]]
            name = "shared network" if self.shared else f"network of {syms[n]}"
            for a in self.activations[n]:
                if a not in ACTIVATIONS:
                    raise ModelFileError(f"{name}: unknown activation {a!r} (known: {ACTIVATIONS})")
            for m, member in enumerate(self.networks):
                if len(member) != n_nets:
                    raise ModelFileError(f"committee member {m}: {len(member)} networks, expected {n_nets}")
                layers = member[n]
                if len(layers) != len(self.activations[n]):
                    raise ModelFileError(f"{name}, member {m}: {len(layers)} layers but "
                                         f"{len(self.activations[n])} activations")
                width = nf
                for l, (W, b) in enumerate(layers):
                    if W.ndim != 2 or W.shape[1] != width or b.shape != (W.shape[0],):
                        raise ModelFileError(f"{name}, member {m}, layer {l} (records 'network.{m}.{n}.{l}.weight' "
                                             f"/ '.bias'): weight {W.shape} / bias {b.shape} do not fit input width "
                                             f"{width}")
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
        rec: Dict[str, Value] = {"model_type": "bpnn", "units.energy": "eV", "units.length": "Angstrom"}
        rec.update(self.descriptor_object().records())
        rec.update({
            "energy.reference": np.asarray(self.reference_energies, dtype=np.float64),
            "energy.scale": float(self.energy_scale),
            "committee_size": np.int64(self.committee_size),
            "network.shared": np.int64(1 if self.shared else 0),
        })
        for k in range(len(self.species)):
            rec[f"scaling.{k}.shift"] = np.asarray(self.scaling[k]["shift"], dtype=np.float64)
            rec[f"scaling.{k}.scale"] = np.asarray(self.scaling[k]["scale"], dtype=np.float64)
            rec[f"scaling.{k}.offset"] = float(self.scaling[k].get("offset", 0.0))
        for n in range(1 if self.shared else len(self.species)):
            rec[f"network.{n}.activations"] = ",".join(self.activations[n])
            for m, member in enumerate(self.networks):
                rec[f"network.{m}.{n}.n_layers"] = np.int64(len(member[n]))
                for l, (W, b) in enumerate(member[n]):
                    rec[f"network.{m}.{n}.{l}.weight"] = np.asarray(W, dtype=np.float64)
                    rec[f"network.{m}.{n}.{l}.bias"] = np.asarray(b, dtype=np.float64)
        if self.calibration is not None:
            rec["uncertainty.energy_calibration"] = float(self.calibration["energy"])
            rec["uncertainty.forces_calibration"] = float(self.calibration["forces"])
        if self.feature_range is not None:
            for k in range(len(self.species)):
                rec[f"extrapolation.{k}.min"] = np.asarray(self.feature_range[k]["min"], dtype=np.float64)
                rec[f"extrapolation.{k}.max"] = np.asarray(self.feature_range[k]["max"], dtype=np.float64)
        meta = {"atomforge_version": __version__,
                "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
        meta.update(self.metadata)
        for key, v in meta.items():
            rec[f"metadata.{key}"] = str(v)
        return rec

    @classmethod
    def from_records(cls, rec: Dict[str, Value], where: str = "<model>") -> "BPNNParameters":
        """Parse model-file records. Raises ModelFileError naming ``where`` and the record."""
        from ..descriptors import descriptor_from_records

        def get(name, kind="f64"):
            return get_record(rec, name, kind, where)

        check_header(rec, "bpnn", where)
        species = check_species(rec, where)
        d = descriptor_from_records(rec, where)
        ne = len(species)
        shared = bool(_count(rec.get("network.shared", np.int64(0)), "network.shared", where, 1, minimum=0))
        n_nets = 1 if shared else ne
        # every network of every member has at least 3 records (n_layers, a weight, a bias): bound the
        # committee by the records present before anything is sized by it (as the C++ reader)
        M = _count(get("committee_size", "arr"), "committee_size", where, len(rec) // (3 * n_nets))
        scaling, acts, nets = [], [], [[] for _ in range(M)]
        for k in range(ne):
            scaling.append({"shift": get_vector(rec, f"scaling.{k}.shift", "f64", where),
                            "scale": get_vector(rec, f"scaling.{k}.scale", "f64", where),
                            "offset": get_scalar(rec, f"scaling.{k}.offset", "f64", where)})
        for n in range(n_nets):
            acts.append(get(f"network.{n}.activations", "str").split(","))
            for m in range(M):
                name = f"network.{m}.{n}.n_layers"
                L = _count(get(name, "arr"), name, where, len(rec))
                if L != len(acts[n]):
                    raise ModelFileError(f"{where}: record {name!r} = {L} does not match the {len(acts[n])} "
                                         f"activation(s) in 'network.{n}.activations'")
                nets[m].append([(np.asarray(get(f"network.{m}.{n}.{l}.weight"), dtype=float),
                                 get_vector(rec, f"network.{m}.{n}.{l}.bias", "f64", where))
                                for l in range(L)])
        meta = {key[len("metadata."):]: v for key, v in rec.items() if key.startswith("metadata.")}
        calib = None
        cal_names = ("uncertainty.energy_calibration", "uncertainty.forces_calibration")
        if any(n in rec for n in cal_names):
            calib = {}
            for key, n in zip(("energy", "forces"), cal_names):
                calib[key] = get_scalar(rec, n, "f64", where) if n in rec else 1.0
        franges = None
        n_range = sum(f"extrapolation.{k}.{x}" in rec for k in range(ne) for x in ("min", "max"))
        if n_range not in (0, 2 * ne):
            raise ModelFileError(f"{where}: extrapolation.{{k}}.min/.max records must be given for every element "
                                 f"or for none")
        if n_range:
            franges = [{x: get_vector(rec, f"extrapolation.{k}.{x}", "f64", where) for x in ("min", "max")}
                       for k in range(ne)]
        p = cls(species, d.to_dict(), scaling, nets, acts,
                get_vector(rec, "energy.reference", "f64", where),
                get_scalar(rec, "energy.scale", "f64", where), meta, shared, calib, franges)
        try:
            p.validate()
        except ModelFileError as exc:
            raise ModelFileError(f"{where}: {exc}") from None
        return p

    def describe(self) -> List[Tuple[str, str]]:
        """(key, value) lines for ``atomforge inspect``."""
        d = self.descriptor_object()
        lines = [("descriptor", f"{d.type}: {d!r}"), ("cutoff", f"{d.cutoff:g} A"),
                 ("networks", "one shared by all elements" if self.shared else "one per element")]
        for k, s in enumerate(self.elements):
            n = self.network_index(k)
            layers = self.networks[0][n]
            widths = [layers[0][0].shape[1]] + [W.shape[0] for W, _ in layers]
            lines.append((s, f"{d.n_features_per_element[s]} features, network {'-'.join(map(str, widths))} "
                             f"({','.join(self.activations[n])}), reference energy "
                             f"{self.reference_energies[k]:.6f} eV"))
        lines += [("committee_size", str(self.committee_size)), ("energy_scale", f"{self.energy_scale:.6g} eV")]
        if self.calibration is not None:
            lines.append(("uncertainty_calibration", f"energy x{self.calibration['energy']:.4g}, "
                                                     f"forces x{self.calibration['forces']:.4g}"))
        lines.append(("extrapolation_range", "none" if self.feature_range is None else
                      "stored (per element and feature)"))
        return lines

    # -------------------------------------------------------------- NumPy evaluation
    def atomic_energies_numpy(self, G: np.ndarray, species_index: np.ndarray, member: int = None):
        """Reference evaluation in NumPy: atomic energies (N,) eV and dE/dG (N, F).

        G: (N, F) descriptor values; species_index: (N,) element index into ``species``.
        Averages over the committee unless ``member`` is given.
        """
        members = range(self.committee_size) if member is None else [member]
        E = np.zeros(len(G))
        dEdG = np.zeros_like(G)
        for k in range(len(self.species)):
            sel = np.flatnonzero(species_index == k)
            if not len(sel):
                continue
            n = self.network_index(k)
            nf = len(self.scaling[k]["shift"])
            x0 = (G[sel, :nf] - self.scaling[k]["shift"]) * self.scaling[k]["scale"] + self.scaling[k]["offset"]
            for m in members:
                h, cache = x0, []
                for (W, b), a in zip(self.networks[m][n], self.activations[n]):
                    z = h @ W.T + b
                    h, dh = _act(a, z)
                    cache.append((W, dh))
                E[sel] += h[:, 0] * self.energy_scale / len(members)
                g = np.full((len(sel), 1), self.energy_scale / len(members))
                for W, dh in reversed(cache):
                    g = (g * dh) @ W
                dEdG[sel, :nf] += g * self.scaling[k]["scale"]
            E[sel] += self.reference_energies[k]
        return E, dEdG


def _count(v, name: str, where: str, upper: int, minimum: int = 1) -> int:
    """A non-negative integer record, checked against an upper bound before anything is sized
    by it (counts beyond the records present cannot be consistent)."""
    a = np.asarray(v)
    if isinstance(v, str) or a.size != 1 or a.dtype.kind not in "iu":
        raise ModelFileError(f"{where}: record {name!r} must be one integer")
    n = int(a.reshape(()))
    if not minimum <= n <= max(upper, minimum):
        raise ModelFileError(f"{where}: record {name!r} = {n} is out of range ({minimum} to {max(upper, minimum)})")
    return n


def _act(name: str, z: np.ndarray):
    if name == "linear":
        return z, np.ones_like(z)
    if name == "tanh":
        t = np.tanh(z)
        return t, 1 - t * t
    if name == "sigmoid":
        s = 1 / (1 + np.exp(-z))
        return s, s * (1 - s)
    if name == "softplus":
        return np.logaddexp(0, z), 1 / (1 + np.exp(-z))
    if name == "silu":
        s = 1 / (1 + np.exp(-z))
        return z * s, s * (1 + z * (1 - s))
    if name == "gaussian":
        g = np.exp(-0.5 * z * z)
        return g, -z * g
    raise ModelFileError(f"unknown activation {name!r}")
