"""n2p2 readers (atomforge.io.n2p2) against the n2p2 H2O RPBE-D3 example and malformed files.

Reference data: $ATOMFORGE_DATA/n2p2_h2o_rpbe_d3 (n2p2 commit 61daa0df, see its README): the
trained potential's input.nn and scaling.data (per-function min/max/mean over the whole training
set, computed by n2p2's nnp-scaling) and 20 frames of input.data in Bohr / Hartree.
"""
from collections import Counter

import numpy as np
import pytest

import atomforge.units as af_units  # the core's one table of constants (CODATA 2018)
from ase import units

from atomforge import SymmetryFunctions
from atomforge.io import (N2P2Settings, read_input_data, read_input_nn, read_scaling_data)

# Observed: the 20 frames' mean of every function lies within 1.2% of (max - min) of
# scaling.data's mean (always slightly below it: the full training set also holds compressed
# structures). 5% still passes comfortably while catching swapped neighbour elements or lambda
# order, which a 25% bound would not reliably detect.
MEAN_TOL_FRACTION = 0.05


# ---------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def settings(water_dir):
    return read_input_nn(water_dir / "potential" / "input.nn")


@pytest.fixture(scope="module")
def scaling(water_dir, settings):
    return read_scaling_data(water_dir / "potential" / "scaling.data", settings)


@pytest.fixture(scope="module")
def frames(water_dir):
    return read_input_data(water_dir / "input.data.H2O_RPBE-D3", length_unit="bohr", energy_unit="ha")


@pytest.fixture(scope="module")
def per_element_G(settings, frames):
    """element -> list (one per frame) of G (n_atoms_of_element, n_features_of_element)."""
    desc = settings.descriptor
    out = {e: [] for e in settings.elements}
    for atoms in frames:
        G = desc.compute(atoms)
        sym = np.array(atoms.get_chemical_symbols())
        for e in settings.elements:
            out[e].append(G[sym == e][:, :desc.n_features_per_element[e]])
    return out


# ---------------------------------------------------------------------------------- water example
def test_read_water_input_nn(settings, water_dir):
    assert isinstance(settings, N2P2Settings)
    assert settings.elements == ["H", "O"]
    assert settings.descriptor.elements == ["H", "O"]
    assert settings.length_unit == pytest.approx(af_units.BOHR)
    assert settings.energy_unit == pytest.approx(af_units.HARTREE)
    assert settings.cutoff_type == 2
    assert settings.descriptor.cutoff_function == "tanhu"
    assert settings.scaling.scale and settings.scaling.center and not settings.scaling.scale_sigma
    assert settings.scaling.type == "scalecenter"
    assert (settings.scaling.scale_min, settings.scaling.scale_max) == (0.0, 1.0)
    assert settings.normalization.conv_length == pytest.approx(5.8038448995319847)
    assert settings.normalization.mean_energy == pytest.approx(-25.521343547039809)
    assert settings.hidden_layers == [25, 25]
    assert settings.activations == ["t", "t", "l"]
    assert settings.atom_energy == {}  # both atom_energy lines are commented out
    assert settings.raw["epochs"] == ["25"]
    assert settings.raw["random_seed"] == ["2"]

    # feature counts = data rows per element in scaling.data (e_index 1 = H, 2 = O)
    text = (water_dir / "potential" / "scaling.data").read_text().splitlines()
    rows = Counter(line.split()[0] for line in text if line.strip() and not line.lstrip().startswith("#"))
    assert settings.descriptor.n_features_per_element == {"H": rows["1"], "O": rows["2"]} == {"H": 27, "O": 30}

    # first function of H in n2p2 order: 'H 2 H 0.001 0.0 12.00' (Bohr) -> Angstrom
    f0 = settings.descriptor.functions["H"][0]
    assert f0["type"] == "G2" and f0["neighbors"] == ["H"]
    assert f0["eta"] == pytest.approx(0.001 / af_units.BOHR ** 2, rel=1e-12)
    assert f0["r_c"] == pytest.approx(12.0 * af_units.BOHR, rel=1e-12)
    # 'O 2 O 0.15 4.0 12.00': r_s converted too
    oo = [f for f in settings.descriptor.functions["O"]
          if f["type"] == "G2" and f["neighbors"] == ["O"] and f["r_s"] > 0]
    assert oo and all(f["r_s"] == pytest.approx(4.0 * af_units.BOHR) for f in oo)
    # n2p2 order for G2: r_c, eta, r_s, neighbour -> (0.001, H), (0.001, O), (0.01, H), ...
    assert [f["neighbors"][0] for f in settings.descriptor.functions["H"][:4]] == ["H", "O", "H", "O"]


def test_read_scaling_data(scaling, settings):
    assert set(scaling) == {"H", "O"}
    for e, n in settings.descriptor.n_features_per_element.items():
        st = scaling[e]
        for a in (st.min, st.max, st.mean, st.sigma):
            assert a.shape == (n,) and a.dtype == np.float64
        assert np.all(st.min <= st.mean) and np.all(st.mean <= st.max)
    assert scaling["H"].min[0] == 1.0882016636170764
    assert scaling["H"].sigma[0] == 6.7883526611658462e-01
    # a SymmetryFunctions works as well as the settings
    again = read_scaling_data(settings.path.replace("input.nn", "scaling.data"), settings.descriptor)
    np.testing.assert_array_equal(again["O"].max, scaling["O"].max)


def test_read_input_data_water(frames):
    assert len(frames) == 20
    sizes = Counter(len(a) for a in frames)
    assert sizes == {192: 7, 48: 11, 96: 2}
    for a in frames:
        n = len(a)
        assert a.get_chemical_symbols().count("O") * 3 == n
        assert a.pbc.all()
        assert a.arrays["forces"].shape == (n, 3)
        assert a.arrays["initial_charges"].shape == (n,)
        assert np.isfinite(a.arrays["forces"]).all()
        per_h2o = a.info["energy"] / (n // 3)
        assert per_h2o == pytest.approx(-76.56 * af_units.HARTREE, abs=0.05 * af_units.HARTREE), per_h2o
        assert "charge" in a.info and isinstance(a.info["comment"], str)
    first = frames[0]
    # first frame: cubic 24.623508 Bohr box, first atom O at (3.735290838, ...) Bohr,
    # force -0.002852459 Ha/Bohr on its y component
    assert first.cell[0, 0] == pytest.approx(24.623508 * af_units.BOHR)
    assert first.positions[0, 0] == pytest.approx(3.735290838 * af_units.BOHR)
    assert first.get_chemical_symbols()[0] == "O"
    assert first.arrays["forces"][0, 1] == pytest.approx(-0.002852459 * af_units.HARTREE / af_units.BOHR)
    assert first.arrays["initial_charges"][0] == pytest.approx(-0.226389360)


def test_descriptor_within_scaling_range(settings, scaling, per_element_G):
    """THE acceptance test: n2p2's own min/max over the training set bound our G."""
    desc = settings.descriptor
    for e in settings.elements:
        G = np.concatenate(per_element_G[e])
        assert G.shape[1] == len(scaling[e].min)
        labels = desc.feature_labels(e)
        st = scaling[e]
        for k, label in enumerate(labels):
            tol = 1e-6 * max(1.0, abs(st.max[k]))
            lo, hi = G[:, k].min(), G[:, k].max()
            assert lo >= st.min[k] - tol and hi <= st.max[k] + tol, (
                f"element {e}, function {k + 1} ({label}): G in [{lo:.6g}, {hi:.6g}] is not within "
                f"scaling.data [{st.min[k]:.6g}, {st.max[k]:.6g}]")


def test_descriptor_mean_matches_scaling_mean(settings, scaling, per_element_G):
    desc = settings.descriptor
    for e in settings.elements:
        G = np.concatenate(per_element_G[e])
        mean = G.mean(axis=0)
        st = scaling[e]
        for k, label in enumerate(desc.feature_labels(e)):
            assert st.min[k] <= mean[k] <= st.max[k], (
                f"element {e}, function {k + 1} ({label}): mean {mean[k]:.6g} outside scaling.data "
                f"[{st.min[k]:.6g}, {st.max[k]:.6g}]")
            dev = abs(mean[k] - st.mean[k]) / (st.max[k] - st.min[k])
            assert dev <= MEAN_TOL_FRACTION, (
                f"element {e}, function {k + 1} ({label}): mean {mean[k]:.6g} vs scaling.data mean "
                f"{st.mean[k]:.6g} differs by {dev:.1%} of (max - min)")


# ---------------------------------------------------------------------------------- small files
MINI_NN = """\
# Length unit : Angstrom
# Energy unit : eV
number_of_elements 2
elements O H            # order in the file does not matter
cutoff_type 1
scale_symmetry_functions
global_hidden_layers_short 1
global_nodes_short 5
global_activation_short t l
atom_energy H -0.5
#atom_energy O -75.0
symfunction_short H 3 O H 0.1 1.0 2.0 5.0
symfunction_short H 2 O 0.5 0.0 5.0
symfunction_short H 2 H 0.5 0.0 5.0
symfunction_short H 9 H H 0.1 -1.0 1.0 5.0
symfunction_short H 2 H 0.1 0.0 5.0
symfunction_short H 3 H H 0.1 -1.0 2.0 5.0 0.5
symfunction_short H 2 O 0.1 0.0 4.0
symfunction_short O 2 H 0.1 0.0 5.0
"""


def _write(tmp_path, text, name="input.nn"):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_mini_input_nn_order_and_units(tmp_path):
    s = read_input_nn(_write(tmp_path, MINI_NN))
    assert s.elements == ["H", "O"]
    assert s.descriptor.cutoff_function == "cos"
    assert s.atom_energy == {"H": -0.5}
    assert s.scaling.type == "scale"
    assert s.normalization is None
    got = [(f["type"], f["r_c"], f["eta"], f["r_s"], f.get("zeta"), f.get("lambda"), f["neighbors"])
           for f in s.descriptor.functions["H"]]
    assert got == [
        ("G2", 4.0, 0.1, 0.0, None, None, ["O"]),        # smallest r_c first
        ("G2", 5.0, 0.1, 0.0, None, None, ["H"]),
        ("G2", 5.0, 0.5, 0.0, None, None, ["H"]),        # equal eta: neighbour by atomic number
        ("G2", 5.0, 0.5, 0.0, None, None, ["O"]),
        ("G4", 5.0, 0.1, 0.0, 2.0, 1.0, ["H", "O"]),      # r_s = 0 before r_s = 0.5; e1 <= e2 swapped
        ("G4", 5.0, 0.1, 0.5, 2.0, -1.0, ["H", "H"]),
        ("G5", 5.0, 0.1, 0.0, 1.0, -1.0, ["H", "H"]),     # type 9 after type 3
    ]
    assert s.function_lines["H"][0] == 18
    # explicit units override the header; eta / L^2, r * L
    b = read_input_nn(tmp_path / "input.nn", length_unit="bohr")
    f = b.descriptor.functions["H"][0]
    assert f["eta"] == pytest.approx(0.1 / af_units.BOHR ** 2) and f["r_c"] == pytest.approx(4.0 * af_units.BOHR)
    assert read_input_nn(tmp_path / "input.nn", length_unit=2.0).descriptor.functions["H"][0]["r_c"] == 8.0


def test_missing_unit_warns(tmp_path):
    p = _write(tmp_path, "\n".join(MINI_NN.splitlines()[2:]) + "\n")
    with pytest.warns(UserWarning, match="assuming Angstrom"):
        s = read_input_nn(p)
    assert s.length_unit == 1.0 and s.energy_unit is None


def _replace_line(text, lineno, new):
    lines = text.splitlines()
    lines[lineno - 1] = new
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("lineno, new, pattern", [
    (12, "symfunction_short H 12 H 0.1 0.0 5.0", r"unsupported symmetry function type 12 at .*input\.nn:12\b"),
    (13, "symfunction_short H 2 C 0.1 0.0 5.0", r"input\.nn:13\b.*symfunction_short.*'C'"),
    (14, "symfunction_short H 2 H 0.1 0.0", r"input\.nn:14\b.*symfunction_short"),
    (15, "symfunction_short H 3 H H abc -1 1 5.0", r"input\.nn:15\b.*eta"),
    (5, "cutoff_type 0", r"input\.nn:5\b.*cutoff_type 0"),
    (5, "cutoff_type 4", r"input\.nn:5\b.*cutoff_type 4"),
    (5, "cutoff_type 1 0.5", r"input\.nn:5\b.*alpha"),
    (9, "global_activation_short t x", r"input\.nn:9\b.*activation"),
    (3, "number_of_elements 3", r"input\.nn:3\b.*number_of_elements"),
])
def test_bad_input_nn(tmp_path, lineno, new, pattern):
    p = _write(tmp_path, _replace_line(MINI_NN, lineno, new))
    with pytest.raises(ValueError, match=pattern):
        read_input_nn(p)


def test_input_nn_missing_elements(tmp_path):
    p = _write(tmp_path, _replace_line(MINI_NN, 4, "# no elements"))
    with pytest.raises(ValueError, match="missing keyword 'elements'"):
        read_input_nn(p)


MINI_DATA = """\
begin
comment frame one
lattice 10.0 0.0 0.0
lattice 0.0 10.0 0.0
lattice 0.0 0.0 10.0
atom 0.0 0.0 0.0 O -0.8 0.0 0.1 0.0 0.0
atom 1.0 0.0 0.0 H 0.4 0.0 -0.1 0.0 0.0
atom 0.0 1.0 0.0 H 0.4 0.0 0.0 0.0 0.0
energy -2.0
charge 0.0
end
begin
comment molecule
atom 0.0 0.0 0.0 H 0.0 0.0 0.0 0.0 0.0
atom 1.4 0.0 0.0 H 0.0 0.0 0.0 0.0 0.0
energy -1.0
charge 0.0
end
"""


def test_mini_input_data_units(tmp_path):
    p = _write(tmp_path, MINI_DATA, "input.data")
    fr = read_input_data(p, length_unit="bohr", energy_unit="ha")
    assert len(fr) == 2
    a, m = fr
    assert a.pbc.all() and not m.pbc.any()
    assert a.cell[1, 1] == pytest.approx(10 * af_units.BOHR)
    assert a.info["energy"] == pytest.approx(-2.0 * af_units.HARTREE)
    assert a.info["comment"] == "frame one" and a.info["charge"] == 0.0
    assert a.arrays["forces"][0, 0] == pytest.approx(0.1 * af_units.HARTREE / af_units.BOHR)
    np.testing.assert_allclose(a.get_initial_charges(), [-0.8, 0.4, 0.4])
    assert m.positions[1, 0] == pytest.approx(1.4 * af_units.BOHR)
    # floats and names are interchangeable; there is no default (the format defines no units)
    assert read_input_data(p, "angstrom", "ev")[0].info["energy"] == -2.0
    with pytest.raises(ValueError, match=r"input\.data: RuNNer/n2p2 input\.data does not state its units"):
        read_input_data(p)
    assert read_input_data(p, 2.0, 3.0)[0].arrays["forces"][0, 0] == pytest.approx(0.15)
    with pytest.raises(ValueError, match="unknown length unit"):
        read_input_data(p, length_unit="furlong", energy_unit="ha")


@pytest.mark.parametrize("edit, pattern", [
    (lambda L: L.__setitem__(6, "atom 1.0 0.0 0.0 H 0.4 0.0 -0.1 0.0"), r"input\.data:7\b.*atom"),
    (lambda L: L.__setitem__(6, "atom nan 0.0 0.0 H 0.4 0.0 -0.1 0.0 0.0"), r"input\.data:7\b.*finite"),
    (lambda L: L.__setitem__(6, "atom 1.0 0.0 0.0 Qx 0.4 0.0 -0.1 0.0 0.0"), r"input\.data:7\b.*'Qx'"),
    (lambda L: L.__setitem__(6, "atom 1.0 0.0 0.0 H 0.4 0.0 -0.1 0.0 zz"), r"input\.data:7\b.*number"),
    (lambda L: L.__setitem__(10, "# no end"), r"input\.data:12\b.*missing 'end'"),
    (lambda L: L.__setitem__(17, ""), r"input\.data:18\b.*missing 'end'"),
    (lambda L: L.__setitem__(2, "comment dropped lattice"), r"input\.data:11\b.*2 lattice"),
    (lambda L: L.__setitem__(8, "energie -2.0"), r"input\.data:9\b.*unknown keyword 'energie'"),
])
def test_bad_input_data(tmp_path, edit, pattern):
    lines = MINI_DATA.splitlines()
    edit(lines)
    p = _write(tmp_path, "\n".join(lines) + "\n", "input.data")
    with pytest.raises(ValueError, match=pattern):
        read_input_data(p, "bohr", "ha")


MINI_SCALING = """\
# header
#  e_index   sf_index   min   max   mean   sigma
         1          1   1.0E+00   2.0E+00   1.5E+00   1.0E-01
         1          2   0.0E+00   1.0E+00   0.5E+00   1.0E-01
         1          3   0.0E+00   1.0E+00   0.5E+00   1.0E-01
         2          1   0.0E+00   1.0E+00   0.5E+00   1.0E-01
"""


def _mini_descriptor():
    f = {"type": "G2", "neighbors": ["H"], "eta": 0.1, "r_s": 0.0, "r_c": 5.0}
    return SymmetryFunctions(["O", "H"], {"H": [f, dict(f, eta=0.2), dict(f, eta=0.3)], "O": [f]}, "cos")


def test_mini_scaling_data(tmp_path):
    st = read_scaling_data(_write(tmp_path, MINI_SCALING, "scaling.data"), _mini_descriptor())
    assert st["H"].min.tolist() == [1.0, 0.0, 0.0] and st["O"].mean.tolist() == [0.5]


@pytest.mark.parametrize("drop, pattern", [
    (5, r"scaling\.data:5\b.*element H .*2 rows .*3 functions"),  # H short of one row, O follows
    (6, r"scaling\.data:5\b.*without rows for element O"),          # O missing entirely
])
def test_scaling_data_too_few_rows(tmp_path, drop, pattern):
    lines = MINI_SCALING.splitlines()
    del lines[drop - 1]
    p = _write(tmp_path, "\n".join(lines) + "\n", "scaling.data")
    with pytest.raises(ValueError, match=pattern):
        read_scaling_data(p, _mini_descriptor())


def test_scaling_data_count_mismatch_names_element(tmp_path):
    lines = MINI_SCALING.splitlines()[:-1]
    lines.append("         1          4   0.0E+00   1.0E+00   0.5E+00   1.0E-01")
    p = _write(tmp_path, "\n".join(lines) + "\n", "scaling.data")
    with pytest.raises(ValueError, match=r"scaling\.data:6\b.*element H .*more rows than the descriptor's 3"):
        read_scaling_data(p, _mini_descriptor())


def test_scaling_data_bad_values(tmp_path):
    lines = MINI_SCALING.splitlines()
    lines[3] = "         1          2   0.0E+00   1.0E+00"
    p = _write(tmp_path, "\n".join(lines) + "\n", "scaling.data")
    with pytest.raises(ValueError, match=r"scaling\.data:4\b.*columns"):
        read_scaling_data(p, _mini_descriptor())
    lines[3] = "         1          2   2.0E+00   1.0E+00   0.5E+00   1.0E-01"
    p = _write(tmp_path, "\n".join(lines) + "\n", "scaling.data")
    with pytest.raises(ValueError, match=r"scaling\.data:4\b.*min .* > max"):
        read_scaling_data(p, _mini_descriptor())
