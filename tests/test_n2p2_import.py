"""Importing a trained n2p2 potential (atomforge.io.n2p2_import) and checking it against n2p2.

Data: $ATOMFORGE_DATA/n2p2_h2o_rpbe_d3 (n2p2 example H2O RPBE-D3: potential/ and 20 frames of
input.data in Bohr / Hartree). Reference predictions: tests/reference/n2p2_h2o_rpbe_d3_predictions.npz,
produced by n2p2's own nnp-predict (commit stored in the file; how: benchmarks/n2p2_reference/README.md).
"""
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

import atomforge.units as af_units  # the core's one table of constants (CODATA 2018)
from ase import units

import atomforge
from atomforge.io.n2p2 import read_input_data, read_input_nn, read_scaling_data
from atomforge.io.n2p2_import import cli_import_n2p2, import_n2p2
from atomforge.model_file import read_model, save_model

REFERENCE = Path(__file__).resolve().parent / "reference" / "n2p2_h2o_rpbe_d3_predictions.npz"
HA, HA_BOHR = af_units.HARTREE, af_units.HARTREE / af_units.BOHR
REL_TOL = 1e-8
RMSE_FACTOR = 3.0


# ---------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def model_path(water_dir, tmp_path_factory):
    path = tmp_path_factory.mktemp("n2p2_import") / "h2o.afm"
    import_n2p2(water_dir / "potential", output=path)
    return path


@pytest.fixture(scope="module")
def params(water_dir):
    return import_n2p2(water_dir / "potential")


@pytest.fixture(scope="module")
def potential(model_path):
    return atomforge.load(model_path)


@pytest.fixture(scope="module")
def frames(water_dir):
    fr = read_input_data(water_dir / "input.data.H2O_RPBE-D3", length_unit="bohr", energy_unit="ha")
    assert len(fr) == 20
    return fr


@pytest.fixture(scope="module")
def results(potential, frames):
    return [potential.compute(a) for a in frames]


@pytest.fixture
def pot_copy(water_dir, tmp_path):
    """A writable copy of the potential folder (in tmp, never in the repo)."""
    d = tmp_path / "potential"
    d.mkdir()
    for name in ("input.nn", "scaling.data", "weights.001.data", "weights.008.data"):
        shutil.copy(water_dir / "potential" / name, d / name)
    return d


# ---------------------------------------------------------------------------------- structure
def test_imported_structure(params, water_dir):
    assert params.species == [1, 8]
    assert params.descriptor["elements"] == ["H", "O"]
    assert params.descriptor["cutoff_function"] == "tanhu"
    assert [len(params.descriptor["functions"][e]) for e in "HO"] == [27, 30]
    assert params.activations == [["tanh", "tanh", "linear"]] * 2
    assert params.committee_size == 1
    shapes = [[W.shape for W, _ in net] for net in params.networks[0]]
    assert shapes == [[(25, 27), (25, 25), (1, 25)], [(25, 30), (25, 25), (1, 25)]]
    # energies: E_i = (mean_energy + NN_i / conv_energy) Ha
    mean_energy, conv_energy = -2.5521343547039809E+01, 2.4265748255366972E+02
    assert params.energy_scale == pytest.approx(HA / conv_energy, rel=1e-15)
    np.testing.assert_allclose(params.reference_energies, [mean_energy * HA] * 2, rtol=1e-15)
    # scalecenter: shift = mean, scale = 1 / (max - min), offset = 0 (scale_min_short 0, max 1)
    st = read_scaling_data(water_dir / "potential" / "scaling.data",
                           read_input_nn(water_dir / "potential" / "input.nn"))
    for k, e in enumerate("HO"):
        np.testing.assert_array_equal(params.scaling[k]["shift"], st[e].mean)
        np.testing.assert_array_equal(params.scaling[k]["scale"], 1.0 / (st[e].max - st[e].min))
        assert params.scaling[k]["offset"] == 0.0
    # first connections of weights.008.data: layer 0 -> 1, target neuron fastest (W.T in C order)
    vals = [float(l.split()[0]) for l in open(water_dir / "potential" / "weights.008.data")
            if l.strip() and not l.startswith("#")]
    W0, b0 = params.networks[0][1][0]
    np.testing.assert_array_equal(W0.T.ravel(), vals[:750])
    np.testing.assert_array_equal(b0, vals[750:775])
    assert params.networks[0][1][2][1][0] == vals[-1]
    assert params.metadata["source"].startswith("n2p2 import of ")
    assert params.metadata["md5.weights.008.data"] == "b005097017237045b5c38a493f24cfaf"


# ---------------------------------------------------------------------------------- (a) vs n2p2
def test_matches_n2p2_nnp_predict(frames, results, params):
    if not REFERENCE.is_file():
        pytest.skip(f"{REFERENCE} not present")
    ref = np.load(REFERENCE)
    assert len(str(ref["n2p2_commit"][0])) == 40
    assert list(ref["natoms"]) == [len(a) for a in frames]
    off = 0
    worst = {"energy": 0.0, "atomic": 0.0, "forces": 0.0}
    for i, (a, r) in enumerate(zip(frames, results)):
        n = len(a)
        E = r.energy / HA
        E_ref = float(ref["energy"][i])
        F = r.forces / HA_BOHR
        F_ref = ref["forces"][off:off + n]
        # atomic NN energies (n2p2 nnatoms.out: NN_i / conv_energy, no mean_energy or offsets)
        k = np.searchsorted(params.species, a.numbers)
        e_nn = (r.atomic_energies - params.reference_energies[k]) / HA
        e_ref = ref["atomic_energy"][off:off + n]
        off += n
        dE = abs(E - E_ref) / abs(E_ref)
        dF = np.abs(F - F_ref).max() / np.abs(F_ref).max()
        de = np.abs(e_nn - e_ref).max() / np.abs(e_ref).max()
        assert abs(E - E_ref) <= REL_TOL * abs(E_ref), (i, E, E_ref)
        assert np.abs(F - F_ref).max() <= REL_TOL * np.abs(F_ref).max(), (i, dF)
        assert np.abs(e_nn - e_ref).max() <= REL_TOL * np.abs(e_ref).max(), (i, de)
        worst = {"energy": max(worst["energy"], dE), "atomic": max(worst["atomic"], de),
                 "forces": max(worst["forces"], dF)}
    assert off == len(ref["forces"])
    print(f"\nmax relative deviation from n2p2 {ref['n2p2_version'][0]} over 20 frames: "
          f"energy {worst['energy']:.2e}, atomic NN energies {worst['atomic']:.2e}, forces {worst['forces']:.2e}")


# ---------------------------------------------------------------------------------- (b) vs DFT
def _final_rmse(log: Path):
    """Last epoch's physical-unit RMSEs from an nnp-train log: lines
    'ENERGY ep Etrain_phys Etest_phys ...' (Ha/atom) and 'FORCES ep Ftrain_phys Ftest_phys ...' (Ha/Bohr)."""
    rows = {"ENERGY": None, "FORCES": None}
    for line in log.read_text().splitlines():
        t = line.split()
        if len(t) >= 4 and t[0] in rows and re.fullmatch(r"\d+", t[1]):
            rows[t[0]] = (int(t[1]), float(t[2]), float(t[3]))
    assert rows["ENERGY"] and rows["FORCES"], f"no ENERGY/FORCES epoch lines in {log}"
    assert rows["ENERGY"][0] == rows["FORCES"][0]
    return rows["ENERGY"], rows["FORCES"]


def test_rmse_vs_training_log(frames, results, water_dir):
    (ep, e_train, e_test), (_, f_train, f_test) = _final_rmse(water_dir / "potential" / "nnp-train.log.0000")
    assert ep == 25
    dE = [(r.energy - a.info["energy"]) / len(a) / HA for a, r in zip(frames, results)]
    dF = np.concatenate([((r.forces - a.arrays["forces"]) / HA_BOHR).ravel() for a, r in zip(frames, results)])
    e_rmse = float(np.sqrt(np.mean(np.square(dE))))
    f_rmse = float(np.sqrt(np.mean(np.square(dF))))
    print(f"\n20 frames: energy RMSE {e_rmse:.4e} Ha/atom, force RMSE {f_rmse:.4e} Ha/Bohr")
    print(f"nnp-train log epoch {ep}: energy RMSE train {e_train:.4e} test {e_test:.4e} Ha/atom, "
          f"force RMSE train {f_train:.4e} test {f_test:.4e} Ha/Bohr")
    for ours, logged in ((e_rmse, e_train), (e_rmse, e_test), (f_rmse, f_train), (f_rmse, f_test)):
        assert logged / RMSE_FACTOR <= ours <= logged * RMSE_FACTOR, (ours, logged)


# ---------------------------------------------------------------------------------- (c) round trip
def test_model_file_round_trip(params, model_path, potential, frames, results, tmp_path):
    back = read_model(model_path)
    assert back.species == params.species
    assert back.activations == params.activations
    assert back.descriptor == params.descriptor
    assert back.energy_scale == params.energy_scale
    np.testing.assert_array_equal(back.reference_energies, params.reference_energies)
    for k in range(2):
        for key in ("shift", "scale"):
            np.testing.assert_array_equal(back.scaling[k][key], params.scaling[k][key])
        assert back.scaling[k]["offset"] == params.scaling[k]["offset"]
        for (W, b), (W2, b2) in zip(params.networks[0][k], back.networks[0][k]):
            np.testing.assert_array_equal(W, W2)
            np.testing.assert_array_equal(b, b2)
    for key, v in params.metadata.items():
        assert back.metadata[key] == v
    # save the re-read parameters again and evaluate: bit-identical numbers
    p2 = tmp_path / "again.afm"
    save_model(p2, back)
    pot2 = atomforge.load(p2)
    pot3 = atomforge.load(model_path.read_bytes())
    for a, r in zip(frames[:4] + frames[-2:], results[:4] + results[-2:]):
        for pot in (pot2, pot3):
            r2 = pot.compute(a)
            assert r2.energy == r.energy
            np.testing.assert_array_equal(r2.forces, r.forces)
            np.testing.assert_array_equal(r2.atomic_energies, r.atomic_energies)


def test_numpy_evaluation_agrees(params, water_dir, frames, results):
    """The parameters mean the same in the NumPy reference evaluation as in the compiled core."""
    sf = atomforge.SymmetryFunctions.from_dict(params.descriptor)
    for a, r in zip(frames[:3], results[:3]):
        G = sf.compute(a)
        E, _ = params.atomic_energies_numpy(G, np.searchsorted(params.species, a.numbers))
        np.testing.assert_allclose(E, r.atomic_energies, rtol=1e-13, atol=1e-10)


def test_cli_summary(water_dir, tmp_path):
    out = tmp_path / "m.afm"
    text = cli_import_n2p2(water_dir / "potential", out)
    assert out.is_file()
    assert "H 27-25-25-1 (tanh,tanh,linear)" in text and "scalecenter" in text and "\n" not in text


# ---------------------------------------------------------------------------------- (d) bad input
def test_missing_weights_file(pot_copy):
    (pot_copy / "weights.008.data").unlink()
    with pytest.raises(ValueError, match=r"weights\.008\.data.*not found"):
        import_n2p2(pot_copy)


def test_weights_file_one_value_removed(pot_copy):
    p = pot_copy / "weights.008.data"
    lines = p.read_text().splitlines(keepends=True)
    i = next(k for k, l in enumerate(lines) if l.strip() and not l.startswith("#"))
    del lines[i + 10]
    p.write_text("".join(lines))
    # O: 30-25-25-1 -> 30*25+25 + 25*25+25 + 25+1 = 1451
    with pytest.raises(ValueError, match=r"weights\.008\.data has 1450 values, the network needs 1451"):
        import_n2p2(pot_copy)


def test_weights_file_non_numeric(pot_copy):
    p = pot_copy / "weights.001.data"
    p.write_text(p.read_text() + "abc a 1 0 1 1 1\n")
    with pytest.raises(ValueError, match=r"weights\.001\.data:\d+"):
        import_n2p2(pot_copy)


@pytest.mark.parametrize("letter", ["r", "c", "h"])
def test_unsupported_activation(pot_copy, letter):
    p = pot_copy / "input.nn"
    text, n = re.subn(r"(?m)^(global_activation_short\s+)t t l", rf"\1t {letter} l", p.read_text())
    assert n == 1
    p.write_text(text)
    with pytest.raises(ValueError, match=r"input\.nn:\d+: n2p2 activation"):
        import_n2p2(pot_copy)


def test_missing_input_nn(pot_copy):
    (pot_copy / "input.nn").unlink()
    with pytest.raises(ValueError, match=r"input\.nn: file not found"):
        import_n2p2(pot_copy)


# ---------------------------------------------------------------------------------- options
def test_normalize_nodes_folded(pot_copy, params):
    p = pot_copy / "input.nn"
    p.write_text(p.read_text().replace("#normalize_nodes", "normalize_nodes"))
    q = import_n2p2(pot_copy)
    for k in range(2):
        for (W, b), (Wn, bn) in zip(params.networks[0][k], q.networks[0][k]):
            np.testing.assert_allclose(Wn, W / W.shape[1], rtol=1e-15)
            np.testing.assert_allclose(bn, b / W.shape[1], rtol=1e-15)


@pytest.mark.parametrize("flags, kind", [("scale", "scale"), ("center", "center"), ("sigma", "scalesigma"),
                                         ("", "none")])
def test_scaling_types(pot_copy, water_dir, flags, kind):
    p = pot_copy / "input.nn"
    text = p.read_text()
    text = re.sub(r"(?m)^(scale_symmetry_functions|center_symmetry_functions)\s", r"#\1 ", text)
    text = text.replace("scale_min_short                 0.0", "scale_min_short                 -1.0")
    if flags == "scale":
        text += "\nscale_symmetry_functions\n"
    elif flags == "center":
        text += "\ncenter_symmetry_functions\n"
    elif flags == "sigma":
        text += "\nscale_symmetry_functions_sigma\n"
    p.write_text(text)
    q = import_n2p2(pot_copy)
    assert q.metadata["n2p2.scaling_type"] == kind
    st = read_scaling_data(water_dir / "potential" / "scaling.data",
                           read_input_nn(water_dir / "potential" / "input.nn"))
    for k, e in enumerate("HO"):
        s = q.scaling[k]
        if kind == "scale":
            np.testing.assert_array_equal(s["shift"], st[e].min)
            np.testing.assert_allclose(s["scale"], 2.0 / (st[e].max - st[e].min), rtol=1e-15)
            assert s["offset"] == -1.0
        elif kind == "center":
            np.testing.assert_array_equal(s["shift"], st[e].mean)
            assert (s["scale"] == 1).all() and s["offset"] == 0.0
        elif kind == "scalesigma":
            np.testing.assert_array_equal(s["shift"], st[e].mean)
            np.testing.assert_allclose(s["scale"], 2.0 / st[e].sigma, rtol=1e-15)
            assert s["offset"] == -1.0
        else:
            assert (s["shift"] == 0).all() and (s["scale"] == 1).all() and s["offset"] == 0.0


def test_atom_energy_offsets_and_units(pot_copy, params):
    p = pot_copy / "input.nn"
    text = p.read_text().replace("#atom_energy                     H", "atom_energy H")
    text = text.replace("#atom_energy                     O", "atom_energy O")
    p.write_text(text)
    q = import_n2p2(pot_copy)
    mean_energy = -2.5521343547039809E+01
    np.testing.assert_allclose(q.reference_energies,
                               [(mean_energy - 0.45890771) * HA, (mean_energy - 74.94518524) * HA], rtol=1e-15)
    # explicit units override the header: energies in eV, lengths in Angstrom
    r = import_n2p2(pot_copy, length_unit="angstrom", energy_unit="ev")
    assert r.energy_scale == pytest.approx(1 / 2.4265748255366972E+02, rel=1e-15)
    f_bohr = params.descriptor["functions"]["H"][0]
    f_ang = r.descriptor["functions"]["H"][0]
    assert f_ang["r_c"] == pytest.approx(f_bohr["r_c"] / af_units.BOHR, rel=1e-12)


def test_element_topology_overrides(pot_copy):
    """element_hidden_layers/nodes/activation_short as n2p2 applies them (last hidden layer and the
    output activation keep the global values, Mode::setupNeuralNetwork)."""
    p = pot_copy / "input.nn"
    p.write_text(p.read_text() + "\nelement_activation_short H s s l\n")
    q = import_n2p2(pot_copy)
    assert q.activations == [["sigmoid", "sigmoid", "linear"], ["tanh", "tanh", "linear"]]
    text = p.read_text()
    p.write_text(text + "\nelement_nodes_short O 20 25\n")
    # O: 30-20-25-1 -> 30*20+20 + 20*25+25 + 25+1 = 1171
    with pytest.raises(ValueError, match=r"weights\.008\.data has 1451 values, the network needs 1171"):
        import_n2p2(pot_copy)
    p.write_text(text + "\nelement_nodes_short O 20 30\n")  # n2p2 ignores the 30: warn
    with pytest.warns(UserWarning, match="ignores the last entry"), \
            pytest.raises(ValueError, match=r"the network needs 1171"):
        import_n2p2(pot_copy)
