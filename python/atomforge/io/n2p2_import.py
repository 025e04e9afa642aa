"""Import a trained n2p2 high-dimensional neural network potential (2G-HDNNP) as an atomforge model.

:func:`import_n2p2` reads an n2p2 potential folder (``input.nn``, ``scaling.data``,
``weights.NNN.data`` with NNN the atomic number, three digits) and returns
:class:`~atomforge.model_file.BPNNParameters` in eV and Angstrom that reproduce n2p2's
predictions (``nnp-predict``, LAMMPS ``pair_style nnp``) to rounding.

Conventions (n2p2 libnnp, github.com/CompPhysVienna/n2p2; see also :mod:`atomforge.io.n2p2`):

* Symmetry functions: :func:`~atomforge.io.n2p2.read_input_nn` (Angstrom, n2p2's feature order).
* Scaling (SymFnc::setScalingType / scale), with G_min/G_max/G_mean/G_sigma from scaling.data and
  S_min/S_max = ``scale_min_short``/``scale_max_short``; atomforge applies
  ``x = (G - shift) * scale + offset``:

  ================  ==========  =============================  =======
  n2p2 type         shift       scale                          offset
  ================  ==========  =============================  =======
  scalecenter       G_mean      (S_max-S_min)/(G_max-G_min)    S_min
  scale             G_min       (S_max-S_min)/(G_max-G_min)    S_min
  center            G_mean      1                              0
  scalesigma        G_mean      (S_max-S_min)/G_sigma          S_min
  none              0           1                              0
  ================  ==========  =============================  =======

* Networks (NeuralNetwork::setConnections): per layer, all weights with the *target* neuron
  index fastest (i.e. ``W.T`` flattened in C order, W of shape (n_out, n_in)), then that
  layer's biases; then the next layer. Layer sizes: input = number of symmetry functions of
  the element, hidden = ``global_nodes_short`` (per-element ``element_hidden_layers_short``,
  ``element_nodes_short``, ``element_activation_short`` applied exactly as n2p2's
  Mode::setupNeuralNetwork does, including its quirks: ``element_nodes_short`` does not change
  the last hidden layer and ``element_activation_short`` does not change the output layer),
  output = 1 neuron.
* Activations: ``l`` linear, ``t`` tanh, ``s`` sigmoid (logistic), ``p`` softplus, ``g`` gaussian
  exp(-x^2/2). n2p2 clips ``s`` and ``p`` for ``|x| > 35``, which changes values by < 1e-15.
  ``r`` (relu), ``c`` (cos), ``S`` (reverse logistic), ``e`` (exp(-x)) and ``h`` (x^2) have
  no atomforge counterpart: ValueError.
* ``normalize_nodes`` (x_k = (sum_j w_kj y_j + b_k) / n_prev) is folded exactly into the
  weights: W / n_prev and b / n_prev.
* Energies: n2p2's atomic NN output is in normalised units when ``mean_energy``,
  ``conv_energy`` and ``conv_length`` are set; E (file units) = sum_i NN_i / conv_energy
  + N mean_energy + sum_i atom_energy[element_i] (Prediction::predict). Hence, with u = eV per
  file energy unit: ``energy_scale = u / conv_energy`` and ``reference_energies[k] =
  (mean_energy + atom_energy_k) * u`` (without normalisation: ``energy_scale = u`` and
  ``reference_energies[k] = atom_energy_k * u``). ``conv_length`` needs no conversion: n2p2
  scales the symmetry-function parameters with it so that G is unchanged, and forces are
  converted back with it.
* Training range: scaling.data's G_min/G_max of every function are kept as the model's
  ``feature_range`` (records ``extrapolation.{k}.min/max``), so atomforge warns about
  extrapolation where n2p2 would (values outside [G_min, G_max]).

Only short-range 2G-HDNNPs are supported (``nnp_type`` 2G-HDNNP, the default); 4G-HDNNP and
Q-HDNNP models raise ValueError. All errors are :class:`ValueError` naming the file.
"""
from __future__ import annotations

import hashlib
import warnings
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np
from ase.data import atomic_numbers

from ..models import BPNNParameters, save_model
from .n2p2 import (PathLike, UnitLike, _to_float, read_input_nn, read_scaling_data)

__all__ = ["import_n2p2", "cli_import_n2p2", "main_import_n2p2", "N2P2_ACTIVATIONS"]

#: n2p2 activation letter -> atomforge activation name.
N2P2_ACTIVATIONS: Dict[str, str] = {"l": "linear", "t": "tanh", "s": "sigmoid", "p": "softplus",
                                    "g": "gaussian"}
_UNSUPPORTED_ACTIVATIONS = {"r": "relu", "c": "cos", "S": "reverse logistic 1 - 1/(1+exp(-x))",
                            "e": "exp(-x)", "h": "harmonic x^2"}
_TOPOLOGY_KEYS = ("global_hidden_layers_short", "global_nodes_short", "global_activation_short",
                  "element_hidden_layers_short", "element_nodes_short", "element_activation_short",
                  "nnp_type")


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def _scan_keywords(path: Path) -> Dict[str, List[Tuple[int, List[str]]]]:
    """Every occurrence (line, tokens) of the topology keywords (comments stripped)."""
    out: Dict[str, List[Tuple[int, List[str]]]] = {k: [] for k in _TOPOLOGY_KEYS}
    with open(path, "r", encoding="utf-8", errors="replace") as fh:
        for ln, line in enumerate(fh, start=1):
            toks = line.split("#", 1)[0].split()
            if toks and toks[0] in out:
                out[toks[0]].append((ln, toks[1:]))
    return out


def _activation(letter: str, where: str) -> str:
    if letter in N2P2_ACTIVATIONS:
        return N2P2_ACTIVATIONS[letter]
    if letter in _UNSUPPORTED_ACTIVATIONS:
        raise ValueError(f"{where}: n2p2 activation {letter!r} ({_UNSUPPORTED_ACTIVATIONS[letter]}) is not "
                         f"supported by atomforge (supported: "
                         f"{', '.join(f'{k} {v}' for k, v in N2P2_ACTIVATIONS.items())})")
    raise ValueError(f"{where}: unknown n2p2 activation {letter!r} (supported: "
                     f"{', '.join(f'{k} {v}' for k, v in N2P2_ACTIVATIONS.items())})")


def _topology(nn_path: Path, settings, n_inputs: Dict[str, int]):
    """Layer sizes [n_in, hidden..., 1] and atomforge activation names (one per weight layer)
    for each element, following n2p2's Mode::setupNeuralNetwork."""
    name = str(nn_path)
    kw = _scan_keywords(nn_path)
    if kw["nnp_type"]:
        ln, args = kw["nnp_type"][-1]
        t = args[0] if args else ""
        if t not in ("2G-HDNNP", "2"):
            raise ValueError(f"{name}:{ln}: nnp_type {t!r} is not supported (only 2G-HDNNP, short-range "
                             f"networks without charges)")
    elements = settings.elements
    n_layers: Dict[str, Optional[int]] = {e: None for e in elements}  # including input and output
    glob_hidden = None
    if kw["global_hidden_layers_short"]:
        ln, args = kw["global_hidden_layers_short"][-1]
        try:
            glob_hidden = int(args[0])
        except (IndexError, ValueError):
            raise ValueError(f"{name}:{ln}: global_hidden_layers_short needs one integer") from None
    elif settings.hidden_layers:
        glob_hidden = len(settings.hidden_layers)
    if glob_hidden is not None:
        for e in elements:
            n_layers[e] = glob_hidden + 2
    for ln, args in kw["element_hidden_layers_short"]:
        if len(args) != 2 or args[0] not in elements:
            raise ValueError(f"{name}:{ln}: element_hidden_layers_short needs '<element> <n>' with an element "
                             f"of {elements}, got {' '.join(args)!r}")
        try:
            n_layers[args[0]] = int(args[1]) + 2
        except ValueError:
            raise ValueError(f"{name}:{ln}: element_hidden_layers_short: {args[1]!r} is not an integer") from None
    missing = [e for e in elements if n_layers[e] is None]
    if missing:
        raise ValueError(f"{name}: number of hidden layers not set for {missing} (global_hidden_layers_short "
                         f"or element_hidden_layers_short)")

    act_line = kw["global_activation_short"][-1][0] if kw["global_activation_short"] else 0
    nodes: Dict[str, List[Optional[int]]] = {}
    acts: Dict[str, List[Optional[Tuple[str, int]]]] = {}  # letter, line
    for e in elements:
        L = n_layers[e]
        nodes[e] = [n_inputs[e]] + [None] * (L - 2) + [1]
        acts[e] = [None] * (L - 1)  # layers 1..L-1
        if glob_hidden is None or L != glob_hidden + 2:
            continue
        for j in range(1, L):
            if j == L - 1:
                if settings.activations:
                    acts[e][j - 1] = (settings.activations[L - 2], act_line)
            else:
                if settings.hidden_layers:
                    nodes[e][j] = settings.hidden_layers[j - 1]
                if settings.activations:
                    acts[e][j - 1] = (settings.activations[j - 1], act_line)
    for ln, args in kw["element_nodes_short"]:
        if not args or args[0] not in elements:
            raise ValueError(f"{name}:{ln}: element_nodes_short needs an element of {elements} first, "
                             f"got {' '.join(args)!r}")
        e, vals = args[0], args[1:]
        L = n_layers[e]
        if L != len(vals) + 2:
            raise ValueError(f"{name}:{ln}: element_nodes_short {e} lists {len(vals)} hidden layers, but the "
                             f"network of {e} has {L - 2}")
        # n2p2 (Mode.cpp) sets layers j = 1 .. L-3 only: the last hidden layer keeps its global value.
        for j in range(1, L - 2):
            try:
                nodes[e][j] = int(vals[j - 1])
            except ValueError:
                raise ValueError(f"{name}:{ln}: element_nodes_short: {vals[j - 1]!r} is not an integer") from None
        if vals and nodes[e][L - 2] is not None and str(nodes[e][L - 2]) != vals[-1]:
            warnings.warn(f"{name}:{ln}: n2p2 ignores the last entry of element_nodes_short ({vals[-1]}); "
                          f"the last hidden layer of {e} has {nodes[e][L - 2]} nodes as in n2p2", UserWarning,
                          stacklevel=3)
    for ln, args in kw["element_activation_short"]:
        if not args or args[0] not in elements:
            raise ValueError(f"{name}:{ln}: element_activation_short needs an element of {elements} first, "
                             f"got {' '.join(args)!r}")
        e, vals = args[0], args[1:]
        L = n_layers[e]
        if L != len(vals) + 1:
            raise ValueError(f"{name}:{ln}: element_activation_short {e} lists {len(vals)} activations, but "
                             f"the network of {e} needs {L - 1} (hidden layers and output)")
        # n2p2 sets layers j = 1 .. L-2 only: the output layer keeps the global activation.
        for j in range(1, L - 1):
            acts[e][j - 1] = (vals[j - 1], ln)
    sizes: Dict[str, List[int]] = {}
    names: Dict[str, List[str]] = {}
    for e in elements:
        for j, n in enumerate(nodes[e]):
            if n is None or n < 1:
                raise ValueError(f"{name}: network of {e}: number of nodes of layer {j} is not set "
                                 f"(global_nodes_short / element_nodes_short)")
        for j, a in enumerate(acts[e]):
            if a is None:
                raise ValueError(f"{name}: network of {e}: activation of layer {j + 1} is not set "
                                 f"(global_activation_short / element_activation_short)")
        sizes[e] = [int(n) for n in nodes[e]]
        names[e] = [_activation(letter, f"{name}:{ln}" if ln else name) for letter, ln in acts[e]]
    return sizes, names


def _read_weights(path: Path, sizes: List[int], normalize: bool) -> List[Tuple[np.ndarray, np.ndarray]]:
    """(W, b) per layer from a weights.NNN.data file, W of shape (n_out, n_in)."""
    name = str(path)
    if not path.is_file():
        raise ValueError(f"{name}: weights file not found")
    # expected (type, l_s, n_s, l_e, n_e) of each connection, as n2p2's writer numbers them
    expected = []
    for i in range(1, len(sizes)):
        for j in range(sizes[i - 1]):
            for k in range(sizes[i]):
                expected.append(("a", i - 1, j + 1, i, k + 1))
        for j in range(sizes[i]):
            expected.append(("b", i, j + 1))
    values, lines = [], []
    with open(path, "r", encoding="utf-8", errors="replace") as fh:
        for ln, line in enumerate(fh, start=1):
            # n2p2 readColumnsFromFile: skip empty lines and lines whose first character is '#'
            if not line.strip() or line.startswith("#"):
                continue
            toks = line.split()
            values.append(_to_float(toks[0], f"{name}:{ln}", "weight"))
            lines.append((ln, toks))
    need = len(expected)
    if len(values) != need:
        raise ValueError(f"{name}: {path.name} has {len(values)} values, the network needs {need} "
                         f"(layers {'-'.join(map(str, sizes))})")
    # the index columns (when present) must follow n2p2's order
    for (ln, toks), exp in zip(lines, expected):
        if len(toks) >= 2 and toks[1] in ("a", "b"):
            got_type = toks[1]
            ok = got_type == exp[0]
            if ok:
                want_n = 7 if exp[0] == "a" else 5
                if len(toks) == want_n:
                    try:
                        ok = tuple(int(t) for t in toks[3:]) == exp[1:]
                    except ValueError:
                        ok = False
            if not ok:
                raise ValueError(f"{name}:{ln}: connection columns {' '.join(toks[1:])!r} do not match n2p2's "
                                 f"order for layers {'-'.join(map(str, sizes))} (expected "
                                 f"{' '.join(map(str, exp))})")
    c = np.asarray(values, dtype=np.float64)
    layers, pos = [], 0
    for i in range(1, len(sizes)):
        n_in, n_out = sizes[i - 1], sizes[i]
        W = c[pos:pos + n_in * n_out].reshape(n_in, n_out).T.copy()
        pos += n_in * n_out
        b = c[pos:pos + n_out].copy()
        pos += n_out
        if normalize:
            W /= n_in
            b /= n_in
        layers.append((W, b))
    return layers


def import_n2p2(directory: PathLike, output: Optional[PathLike] = None, length_unit: UnitLike = None,
                energy_unit: UnitLike = None) -> BPNNParameters:
    """Convert an n2p2 potential folder into atomforge model parameters (eV, Angstrom).

    Args:
        directory: folder with ``input.nn``, ``scaling.data`` and ``weights.NNN.data`` (one per
            element, NNN = atomic number with three digits, e.g. ``weights.008.data`` for O).
        output: if given, the model file is written there (:func:`atomforge.save_model`).
        length_unit: the potential's length unit (``'bohr'``, ``'angstrom'`` or Angstrom per
            unit). None: from the ``# Length unit : ...`` header of input.nn, else Angstrom with
            a warning (see :func:`~atomforge.io.n2p2.read_input_nn`).
        energy_unit: the potential's energy unit (``'ha'``, ``'ev'`` or eV per unit). None: from
            the ``# Energy unit : ...`` header, else eV with a warning.

    Returns:
        :class:`~atomforge.model_file.BPNNParameters` (one network per element, no committee),
        metadata ``source``, ``description``, ``n2p2.*`` (units, scaling type, normalisation)
        and ``md5.<file>`` of every file read.

    Raises:
        ValueError naming the file: missing files, a weights file with the wrong number of
        values (``weights.008.data has 1300 values, the network needs 1326``) or connection
        columns out of n2p2's order, unsupported activations (relu, cos, ...), an unsupported
        ``nnp_type``, scaling statistics that n2p2 would divide by zero (G_max == G_min,
        sigma 0 or missing), and every error of the input.nn/scaling.data readers.
    """
    d = Path(directory)
    if not d.is_dir():
        raise ValueError(f"{d}: not a directory")
    nn_path, sc_path = d / "input.nn", d / "scaling.data"
    for p in (nn_path, sc_path):
        if not p.is_file():
            raise ValueError(f"{p}: file not found")
    settings = read_input_nn(nn_path, length_unit=length_unit, energy_unit=energy_unit)
    E_unit = settings.energy_unit
    if E_unit is None:
        warnings.warn(f"{nn_path}: no energy unit given (no '# Energy unit : ...' header and no energy_unit "
                      f"argument); assuming eV", UserWarning, stacklevel=2)
        E_unit = 1.0
    elements = settings.elements
    desc = settings.descriptor
    n_inputs = desc.n_features_per_element
    stats = read_scaling_data(sc_path, settings)

    # scaling
    sc = settings.scaling
    stype = sc.type
    smin, smax = sc.scale_min, sc.scale_max
    scaling = []
    for e in elements:
        st = stats[e]
        nf = n_inputs[e]
        if stype in ("scale", "scalecenter"):
            rng = st.max - st.min
            bad = np.flatnonzero(~(rng > 0))
            if len(bad):
                raise ValueError(f"{sc_path}: element {e}, symmetry function {bad[0] + 1}: G_max == G_min "
                                 f"({st.max[bad[0]]!r}); n2p2's scaling (S_max-S_min)/(G_max-G_min) divides by zero")
            scale = (smax - smin) / rng
            shift = st.mean.copy() if stype == "scalecenter" else st.min.copy()
            offset = smin
        elif stype == "center":
            shift, scale, offset = st.mean.copy(), np.ones(nf), 0.0
        elif stype == "scalesigma":
            bad = np.flatnonzero(~(st.sigma > 0))
            if len(bad):
                raise ValueError(f"{sc_path}: element {e}, symmetry function {bad[0] + 1}: sigma is "
                                 f"{st.sigma[bad[0]]!r} (missing or zero), needed by scale_symmetry_functions_sigma")
            shift, scale, offset = st.mean.copy(), (smax - smin) / st.sigma, smin
        else:
            shift, scale, offset = np.zeros(nf), np.ones(nf), 0.0
        scaling.append({"shift": np.asarray(shift, dtype=np.float64), "scale": np.asarray(scale, dtype=np.float64),
                        "offset": float(offset)})

    # networks
    sizes, act_names = _topology(nn_path, settings, n_inputs)
    normalize = "normalize_nodes" in settings.raw
    nets, weight_files = [], []
    for e in elements:
        wp = d / f"weights.{atomic_numbers[e]:03d}.data"
        if not wp.is_file():
            raise ValueError(f"{wp}: weights file for element {e} (Z={atomic_numbers[e]}) not found")
        nets.append(_read_weights(wp, sizes[e], normalize))
        weight_files.append(wp)

    # energies
    norm = settings.normalization
    mean_e = norm.mean_energy if norm else 0.0
    energy_scale = E_unit / norm.conv_energy if norm else E_unit
    ref = np.array([(mean_e + settings.atom_energy.get(e, 0.0)) * E_unit for e in elements], dtype=np.float64)

    topo = "; ".join(f"{e}: {'-'.join(map(str, sizes[e]))} ({','.join(act_names[e])})" for e in elements)
    meta = {
        "source": f"n2p2 import of {d.resolve()}",
        "description": (f"n2p2 2G-HDNNP imported by atomforge.io.n2p2_import: elements {' '.join(elements)}, "
                        f"networks {topo}, symmetry-function scaling {stype}"
                        f"{', normalize_nodes folded into the weights' if normalize else ''}"),
        "n2p2.length_unit_angstrom": repr(settings.length_unit),
        "n2p2.energy_unit_ev": repr(E_unit),
        "n2p2.scaling_type": stype,
        "n2p2.normalization": (f"mean_energy={norm.mean_energy!r} conv_energy={norm.conv_energy!r} "
                               f"conv_length={norm.conv_length!r}" if norm else "none"),
        "n2p2.atom_energy": " ".join(f"{e}={settings.atom_energy[e]!r}" for e in elements
                                     if e in settings.atom_energy) or "none",
    }
    for p in [nn_path, sc_path] + weight_files:
        meta[f"md5.{p.name}"] = _md5(p)

    params = BPNNParameters(
        species=[int(atomic_numbers[e]) for e in elements],
        descriptor=desc.to_dict(),
        scaling=scaling,
        networks=[nets],
        activations=[act_names[e] for e in elements],
        reference_energies=ref,
        energy_scale=float(energy_scale),
        metadata=meta,
        # n2p2's own training range of every symmetry function (scaling.data min/max): the core
        # counts values outside it at every evaluation, as n2p2's extrapolation warnings do
        feature_range=[{"min": np.asarray(stats[e].min, dtype=np.float64),
                        "max": np.asarray(stats[e].max, dtype=np.float64)} for e in elements],
    )
    params.validate()
    if output is not None:
        save_model(output, params)
    return params


def cli_import_n2p2(directory: PathLike, output: PathLike, length_unit: UnitLike = None,
                    energy_unit: UnitLike = None) -> str:
    """Import ``directory`` (see :func:`import_n2p2`), write the model to ``output`` and return a
    one-paragraph summary for ``atomforge import-n2p2 DIR -o MODEL``."""
    p = import_n2p2(directory, output, length_unit=length_unit, energy_unit=energy_unit)
    m = p.metadata
    desc = p.descriptor
    nf = ", ".join(f"{e} {len(desc['functions'][e])}" for e in desc["elements"])
    nets = "; ".join(
        f"{e} {'-'.join(str(W.shape[1]) for W, _ in p.networks[0][k])}-1 ({','.join(p.activations[k])})"
        for k, e in enumerate(desc["elements"]))
    rc = max(f["r_c"] for fl in desc["functions"].values() for f in fl)
    L = float(m["n2p2.length_unit_angstrom"])
    E = float(m["n2p2.energy_unit_ev"])
    refs = ", ".join(f"{e} {v:.6f}" for e, v in zip(desc["elements"], p.reference_energies))
    return (f"Imported n2p2 potential {Path(directory)} -> {output}: elements {' '.join(desc['elements'])}; "
            f"symmetry functions {nf} (cutoff {desc['cutoff_function']}, r_c {rc:.4f} A); networks {nets}; "
            f"scaling {m['n2p2.scaling_type']}; file units {L:.9g} A and {E:.9g} eV; "
            f"energy scale {p.energy_scale:.9g} eV per NN unit, reference energies (eV/atom) {refs}; "
            f"normalisation {m['n2p2.normalization']}.")


def main_import_n2p2(args) -> int:
    """CLI entry: ``args.directory``, ``args.output``, optional ``args.length_unit`` and
    ``args.energy_unit``. Prints the summary; returns 0."""
    print(cli_import_n2p2(args.directory, args.output, getattr(args, "length_unit", None),
                          getattr(args, "energy_unit", None)))
    return 0
