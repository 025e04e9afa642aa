"""Bad input gives a Python exception naming the problem, never a crash or a silent NaN."""
import numpy as np
import pytest

from atomforge import SymmetryFunctions, _core


@pytest.fixture(scope="module")
def sf():
    return SymmetryFunctions.standard(["H", "O"], r_c=4.0, n_radial=3, n_angular=1)


WATER = (np.array([[0.0, 0, 0], [0.96, 0, 0], [-0.24, 0.93, 0]]), np.array([8, 1, 1]))


@pytest.mark.parametrize("positions, match", [
    (np.zeros((3, 2)), r"shape \(N, 3\)"),
    (np.zeros(9), r"shape \(N, 3\)"),
    (np.array([["a", "b", "c"]] * 3), "dtype"),
    (np.zeros((3, 3), dtype=complex), "dtype"),
])
def test_wrong_position_shapes_and_dtypes(sf, positions, match):
    with pytest.raises((ValueError, TypeError), match=match):
        sf.compute(positions, WATER[1])


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_non_finite_positions_name_the_atom(sf, value):
    pos = WATER[0].copy()
    pos[2, 1] = value
    with pytest.raises(ValueError, match="atom 2 is not finite"):
        sf.compute(pos, WATER[1])
    with pytest.raises(ValueError, match="atom 2"):
        _core.build_neighbor_list(pos, np.zeros((3, 3)), (False,) * 3, 3.0)


def test_unknown_element_names_the_atom(sf):
    with pytest.raises(ValueError, match=r"atom 1 is C\b.*does not cover"):
        sf.compute(WATER[0], [8, 6, 1])
    with pytest.raises(ValueError, match="atom 0: unknown element 'Xx'"):
        sf.compute(WATER[0], ["Xx", "H", "H"])
    with pytest.raises(ValueError, match="atom 2: 0 is not a valid atomic number"):
        sf.compute(WATER[0], [8, 1, 0])


def test_numbers_shape_mismatch(sf):
    with pytest.raises(ValueError, match=r"numbers must have shape \(3,\)"):
        sf.compute(WATER[0], [8, 1])
    with pytest.raises(TypeError, match="numbers"):
        sf.compute(WATER[0])


@pytest.mark.parametrize("cell, pbc, match", [
    (np.zeros((3, 3)), True, "zero length"),
    (np.array([[3.0, 0, 0], [6.0, 0, 0], [0, 0, 3.0]]), True, "linearly dependent"),
    (np.array([[3.0, 0, 0], [0, 3.0, 0], [3.0, 3.0, 0]]), True, "linearly dependent"),
    (np.array([[3.0, 0, 0], [6.0, 0, 0], [0, 0, 0]]), [True, True, False], "parallel"),
    (np.array([[np.nan, 0, 0], [0, 3.0, 0], [0, 0, 3.0]]), True, "non-finite"),
    (np.eye(2), True, r"cell must have shape"),
])
def test_degenerate_cells(sf, cell, pbc, match):
    with pytest.raises(ValueError, match=match):
        sf.compute(WATER[0], WATER[1], cell, pbc)


def test_pbc_without_cell(sf):
    with pytest.raises(ValueError, match="no cell"):
        sf.compute(WATER[0], WATER[1], None, True)


def test_tiny_cell_with_huge_cutoff_is_refused_not_hung():
    # descriptors refuse cutoffs beyond the documented maximum (25 A) ...
    with pytest.raises(ValueError, match="exceeds the maximum"):
        SymmetryFunctions.standard(["H"], r_c=200.0, n_radial=1, n_angular=0)
    # ... and the neighbour list itself refuses an image count that cannot fit in memory
    with pytest.raises(ValueError, match="periodic images"):
        _core.build_neighbor_list(np.zeros((1, 3)), np.eye(3) * 0.5, (True,) * 3, 200.0)


@pytest.mark.parametrize("r_c", [0.0, -1.0, np.nan, np.inf])
def test_non_positive_cutoffs(r_c):
    with pytest.raises(ValueError, match="r_c"):
        SymmetryFunctions(["H"], {"H": [{"type": "G2", "neighbors": ["H"], "eta": 1.0, "r_c": r_c}]})
    with pytest.raises(ValueError, match="cutoff"):
        _core.build_neighbor_list(np.zeros((1, 3)), np.zeros((3, 3)), (False,) * 3, float(r_c))


@pytest.mark.parametrize("change, match", [
    ({"type": "G3"}, "'type' must be one of"),
    ({"eta": -1.0}, "eta must be >= 0"),
    ({"lambda": 0.5}, "lambda must be"),
    ({"zeta": 0.5}, "zeta must be >= 1"),
    ({"r_s": 7.0}, "r_s must satisfy"),
    ({"neighbors": ["H"]}, "takes 2 neighbour"),
    ({"neighbors": ["H", "N"]}, "'N' is not in elements"),
    ({"foo": 1}, "unknown key"),
    ({"eta": "big"}, "must be a number"),
])
def test_bad_function_parameters_name_the_function(change, match):
    f = {"type": "G4", "neighbors": ["H", "O"], "eta": 0.1, "lambda": 1, "zeta": 2, "r_c": 5.0}
    f.update(change)
    with pytest.raises(ValueError, match=match) as e:
        SymmetryFunctions(["H", "O"], {"O": [{"type": "G2", "neighbors": ["H"], "eta": 1, "r_c": 5.0}, f]})
    assert "functions['O'][1]" in str(e.value)


def test_bad_descriptor_level_options():
    with pytest.raises(ValueError, match="cutoff_function"):
        SymmetryFunctions(["H"], {"H": [{"type": "G2", "neighbors": ["H"], "eta": 1, "r_c": 3}]}, "gauss")
    with pytest.raises(ValueError, match="duplicate"):
        SymmetryFunctions(["H", "H"], {})
    with pytest.raises(ValueError, match="not in elements"):
        SymmetryFunctions(["H"], {"O": []})
    with pytest.raises(ValueError, match="no symmetry functions"):
        SymmetryFunctions(["H"], {"H": []})


def test_overlapping_atoms_are_named(sf):
    pos = WATER[0].copy()
    pos[2] = pos[0]
    with pytest.raises(ValueError, match="atoms 0 and 2 are at the same position"):
        sf.compute(pos, WATER[1])


def test_bad_dE_dG(sf):
    with pytest.raises(ValueError, match=r"dE_dG must have shape"):
        sf.vjp(np.zeros((3, 2)), *WATER)
    w = np.zeros((3, sf.n_features))
    w[1, 2] = np.nan
    with pytest.raises(ValueError, match="atom 1, feature 2 is not finite"):
        sf.vjp(w, *WATER)


def test_bad_external_csr_lists(sf):
    pos, num = WATER
    species = np.array([1, 0, 0], dtype=np.int32)
    off = np.array([0, 2, 4, 6], dtype=np.int64)
    nb = np.array([1, 2, 0, 2, 0, 1], dtype=np.int64)
    assert np.isfinite(sf._core.compute_csr(pos, species, off, nb)).all()
    with pytest.raises(ValueError, match="out of range"):
        sf._core.compute_csr(pos, species, off, np.array([1, 2, 0, 9, 0, 1], dtype=np.int64))
    with pytest.raises(ValueError, match="element index 5"):
        sf._core.compute_csr(pos, np.array([1, 5, 0], dtype=np.int32), off, nb)
    with pytest.raises(ValueError, match="offsets"):
        sf._core.compute_csr(pos, species, np.array([0, 2, 4, 5], dtype=np.int64), nb)
