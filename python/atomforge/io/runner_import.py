"""Import a RuNNer dipole network (``property dipoles``) as an atomforge ``dipole`` model.

RuNNer (J. Behler, RuNNer, github/gitlab TheochemGoettingen) fits Behler-Parrinello atomic
networks; with ``property dipoles`` each atom's network output is its charge and the dipole is
mu = sum_i q_i r_i, as in the NN dipole surfaces of Gastegger, Behler, Marquetand (Chem. Sci. 8,
6924 (2017)) and Beckmann, Brieuc, Schran, Marx (J. Chem. Theory Comput. 2022,
arXiv:2202.00303). :func:`import_runner_dipole` reads such a folder through the same machinery as
the n2p2 import (:mod:`atomforge.io.n2p2`, :mod:`atomforge.io.n2p2_import`) and returns
:class:`~atomforge.models.dipole.DipoleParameters` evaluated by the core.

Conventions, and how each was established:

* Input file ``input.nn`` (or ``input.inp``): the n2p2/RuNNer keyword grammar; RuNNer comments
  start with ``#`` at the beginning of a line, and text after the values (``! eta rshift ...``)
  is ignored, so both ``#`` and ``!`` start comments here.
* Units: RuNNer works in atomic units; positions given in Angstrom (``unit_pos angstrom``) are
  converted to Bohr, and the symmetry-function parameters (eta in 1/Bohr^2, r_shift and cutoffs in
  Bohr) are in Bohr. Checked on the CCSD(T) water-cluster network: with Bohr, the min/max/mean of
  every symmetry function over the H2O, H3O+ and H5O2+ data fall inside or close to the ranges in
  scaling.data, with Angstrom they do not (e.g. H-O G2 r_c = 4: mean 0.57 vs file 0.60 with Bohr,
  0.95 with Angstrom). ``length_unit`` overrides this.
* Symmetry-function order: RuNNer sorts each element's functions by type, cutoff, eta, zeta,
  lambda, r_shift and neighbour elements (its ``sortsymfunctions``), which for types 2 and 3 is
  the order n2p2 uses (:func:`~atomforge.io.n2p2.read_input_nn`). scaling.data lists rows
  ``element function min max mean`` with elements by atomic number; the function counter may
  restart at 1 for the angular functions (as in the CCSD(T) network's file), which is accepted when
  the restart falls exactly at the first angular function.
* Scaling (``scale_symmetry_functions`` / ``center_symmetry_functions``, with
  ``scale_min_short_atomic``/``scale_max_short_atomic`` S_min = 0, S_max = 1 by default):
  x = S_min + (S_max - S_min) (G - G_mean) / (G_max - G_min) (both), (G - G_min) / ... (scale
  only), G - G_mean (center only): the n2p2 table of :mod:`atomforge.io.n2p2_import`.
* Weights ``weights.NNN.data`` (NNN = atomic number): one value per line, per layer all
  connections with the target neuron fastest, then the layer's biases (n2p2 reads RuNNer's files
  in this order; :func:`atomforge.io.n2p2_import._read_weights`). Activations from
  ``global_activation_short`` (``t`` tanh, ``l`` linear, ``s`` sigmoid, ``p`` softplus, ``g``).
* Charges and total charge: the network output is the raw charge q~_i in e, and the total
  charge Q is imposed uniformly, q_i = q~_i - (sum_j q~_j - Q) / N (Gastegger et al., Eq. 5).
  Established on the data: with this scheme the imported network reproduces the CCSD(T) dipoles
  of the Zundel run 04 with an RMSE of 0.002 e*a0 (per component), while the raw outputs sum to
  Q - 2.46 e and give 13 e*a0.

Only ``property dipoles`` networks with short-range atomic networks are imported; anything else
raises ValueError. All errors name the file (and line).
"""
from __future__ import annotations

import hashlib
import warnings
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np
from ase.data import atomic_numbers

from ..models import save_model
from ..models.dipole import DipoleParameters
from .n2p2 import PathLike, UnitLike, _to_float, _to_int, read_input_nn
from .n2p2_import import _read_weights, _topology

__all__ = ["import_runner_dipole", "read_runner_scaling", "cli_import_runner"]

_INPUT_NAMES = ("input.nn", "input.inp")


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def _keywords(path: Path) -> Dict[str, List[str]]:
    """keyword -> tokens of its last occurrence (comments '#' and '!' stripped)."""
    out: Dict[str, List[str]] = {}
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        toks = line.split("#", 1)[0].split("!", 1)[0].split()
        if toks:
            out[toks[0]] = toks[1:]
    return out


def read_runner_scaling(path: PathLike, descriptor) -> Dict[str, np.ndarray]:
    """Read RuNNer's scaling.data for a :class:`~atomforge.SymmetryFunctions`.

    Rows ``element_index function_index G_min G_max G_mean`` (1-based element index in
    atomic-number order). The function counter of an element runs 1..n, or restarts at 1 at its
    first angular function. A line of 3 numbers (RuNNer's energy statistics of energy
    potentials) is ignored.

    Returns:
        element symbol -> (n_functions, 3) array of [min, max, mean], float64.

    Raises:
        ValueError naming ``file:line``: malformed lines, indices out of sequence, a count that
        differs from the descriptor's, min > max.
    """
    path = Path(path)
    name = str(path)
    elems = sorted(descriptor.elements, key=lambda s: atomic_numbers[s])
    counts = descriptor.n_features_per_element
    funcs = descriptor.to_dict()["functions"]
    rows: Dict[int, List[List[float]]] = {k: [] for k in range(1, len(elems) + 1)}
    prev = (0, 0)
    for ln, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), start=1):
        toks = line.split()
        if not toks or toks[0].startswith("#"):
            continue
        w = f"{name}:{ln}"
        if len(toks) == 3:
            continue
        if len(toks) != 5:
            raise ValueError(f"{w}: expected 'element function min max mean' (5 columns), got {len(toks)}")
        ei, fi = _to_int(toks[0], w, "element index"), _to_int(toks[1], w, "function index")
        vals = [_to_float(t, w, c) for t, c in zip(toks[2:], ("min", "max", "mean"))]
        if not 1 <= ei <= len(elems):
            raise ValueError(f"{w}: element index {ei} out of range 1..{len(elems)} (elements by atomic number: {elems})")
        if ei < prev[0]:
            raise ValueError(f"{w}: element index {ei} after {prev[0]}: rows must be grouped by element")
        e = elems[ei - 1]
        k = len(rows[ei])  # 0-based feature index this row fills
        if k >= counts[e]:
            raise ValueError(f"{w}: element {e} has more rows than its {counts[e]} symmetry functions")
        angular = funcs[e][k]["type"] != "G2"
        restarted = k + 1 - _n_radial(funcs[e])  # the counter when it restarts for angular functions
        if fi != k + 1 and not (angular and fi == restarted):
            raise ValueError(f"{w}: element {e}: function index {fi}, expected {k + 1}"
                             f"{f' (or {restarted}, counting angular functions from 1)' if angular else ''}")
        if vals[0] > vals[1]:
            raise ValueError(f"{w}: min {vals[0]} > max {vals[1]}")
        rows[ei].append(vals)
        prev = (ei, fi)
    out = {}
    for ei, e in enumerate(elems, start=1):
        if len(rows[ei]) != counts[e]:
            raise ValueError(f"{name}: element {e} (index {ei}) has {len(rows[ei])} rows, the symmetry functions "
                             f"of {e} number {counts[e]}")
        out[e] = np.asarray(rows[ei], dtype=np.float64)
    return out


def _n_radial(fl) -> int:
    return sum(1 for f in fl if f["type"] == "G2")


def import_runner_dipole(directory: PathLike, output: Optional[PathLike] = None,
                         length_unit: UnitLike = "bohr") -> DipoleParameters:
    """Convert a RuNNer ``property dipoles`` network folder into a ``dipole`` model.

    Args:
        directory: folder with ``input.nn`` or ``input.inp``, ``scaling.data`` and
            ``weights.NNN.data`` per element (NNN = atomic number, three digits).
        output: if given, the model file is written there.
        length_unit: the unit of the symmetry-function parameters (RuNNer: Bohr, its internal
            unit; see the module docstring). Name or Angstrom per unit.

    Returns:
        :class:`~atomforge.models.dipole.DipoleParameters` (uniform total-charge scheme, charge
        reference 0, scale 1), metadata ``source``, ``description``, ``runner.*`` and
        ``md5.<file>``.

    Raises:
        ValueError naming the file: a missing file, no ``property dipoles``, scaling or weights
        that do not fit the symmetry functions, unsupported activations or cutoffs.
    """
    d = Path(directory)
    if not d.is_dir():
        raise ValueError(f"{d}: not a directory")
    inp = next((d / n for n in _INPUT_NAMES if (d / n).is_file()), None)
    if inp is None:
        raise ValueError(f"{d}: no RuNNer input file ({' or '.join(_INPUT_NAMES)})")
    sc_path = d / "scaling.data"
    if not sc_path.is_file():
        raise ValueError(f"{sc_path}: file not found")
    kw = _keywords(inp)
    prop = kw.get("property", [])
    if not prop or prop[0].lower() != "dipoles":
        raise ValueError(f"{inp}: not a RuNNer dipole network (keyword 'property dipoles' missing"
                         f"{'; property ' + ' '.join(prop) if prop else ''}); energy potentials: "
                         f"atomforge import-n2p2")
    if "use_electrostatics" in kw or "nn_type_elec" in kw:
        raise ValueError(f"{inp}: electrostatic (charge-equilibration) RuNNer networks are not supported; only "
                         f"'property dipoles' short-range networks")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # RuNNer files carry no n2p2 unit header; the unit is given here
        settings = read_input_nn(inp, length_unit=length_unit, energy_unit="ev", comment_chars="#!")
    desc = settings.descriptor
    stats = read_runner_scaling(sc_path, desc)
    smin = float(kw.get("scale_min_short_atomic", kw.get("scale_min_short", ["0"]))[0])
    smax = float(kw.get("scale_max_short_atomic", kw.get("scale_max_short", ["1"]))[0])
    scale_on, center_on = "scale_symmetry_functions" in kw, "center_symmetry_functions" in kw
    scaling = []
    for e in settings.elements:
        st = stats[e]
        nf = desc.n_features_per_element[e]
        if scale_on:
            rng = st[:, 1] - st[:, 0]
            bad = np.flatnonzero(~(rng > 0))
            if len(bad):
                raise ValueError(f"{sc_path}: element {e}, symmetry function {bad[0] + 1}: G_max == G_min; RuNNer's "
                                 f"scaling (S_max - S_min)/(G_max - G_min) divides by zero")
            scale = (smax - smin) / rng
            shift, offset = (st[:, 2] if center_on else st[:, 0]).copy(), smin
        elif center_on:
            shift, scale, offset = st[:, 2].copy(), np.ones(nf), 0.0
        else:
            shift, scale, offset = np.zeros(nf), np.ones(nf), 0.0
        scaling.append({"shift": shift, "scale": scale, "offset": float(offset)})
    sizes, acts = _topology(inp, settings, desc.n_features_per_element)
    nets, files = [], []
    for e in settings.elements:
        wp = d / f"weights.{atomic_numbers[e]:03d}.data"
        if not wp.is_file():
            raise ValueError(f"{wp}: weights file for element {e} (Z={atomic_numbers[e]}) not found")
        nets.append(_read_weights(wp, sizes[e], False))
        files.append(wp)
    topo = "; ".join(f"{e}: {'-'.join(map(str, sizes[e]))} ({','.join(acts[e])})" for e in settings.elements)
    meta = {"source": f"RuNNer dipole network import of {d.resolve()}",
            "description": f"RuNNer 'property dipoles' network imported by atomforge.io.runner_import: elements "
                           f"{' '.join(settings.elements)}, networks {topo}, symmetry functions in "
                           f"{settings.length_unit:.9g} A per file unit, uniform total-charge scheme",
            "runner.length_unit_angstrom": repr(settings.length_unit),
            "runner.scaling": f"scale={scale_on} center={center_on} smin={smin!r} smax={smax!r}"}
    for p in [inp, sc_path] + files:
        meta[f"md5.{p.name}"] = _md5(p)
    params = DipoleParameters(
        species=[int(atomic_numbers[e]) for e in settings.elements], descriptor=desc.to_dict(), scaling=scaling,
        charge_networks=[nets], activations=[acts[e] for e in settings.elements],
        charge_reference=np.zeros(len(settings.elements)), charge_scale=1.0, scheme="uniform", metadata=meta)
    params.validate()
    if output is not None:
        save_model(output, params)
    return params


def cli_import_runner(directory: PathLike, output: PathLike, length_unit: UnitLike = "bohr") -> str:
    """Import (see :func:`import_runner_dipole`), write ``output`` and return a summary line."""
    p = import_runner_dipole(directory, output, length_unit=length_unit)
    desc = p.descriptor
    nf = ", ".join(f"{e} {len(desc['functions'][e])}" for e in desc["elements"])
    rc = max(f["r_c"] for fl in desc["functions"].values() for f in fl)
    return (f"Imported RuNNer dipole network {Path(directory)} -> {output}: elements {' '.join(desc['elements'])}; "
            f"symmetry functions {nf} (largest cutoff {rc:.4f} A); {p.metadata['description']}.")
