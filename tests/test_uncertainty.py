"""Committee uncertainty and extrapolation in the core, Python and ASE: the per-atom force deviation
from folded member forces (periodic images included), calibration and feature-range records
(validated in C++ and Python), extrapolation counts and warnings (compressed water triggers them,
training frames do not), the n2p2 import keeping n2p2's ranges, and committee training."""
import warnings

import numpy as np
import pytest
from ase import Atoms
from ase.build import molecule

import atomforge
from atomforge import ExtrapolationWarning, ModelFileError, save_model
from atomforge.model_file import encode_records
from atomforge.models import BPNNParameters
from test_model_inference import random_model


def with_range(params, frames):
    """``params`` with the training range of its descriptor features over ``frames`` (ase.Atoms)."""
    d = params.descriptor_object()
    lo = {k: None for k in range(len(params.species))}
    hi = dict(lo)
    for a in frames:
        G = d.compute(a)
        for k, z in enumerate(params.species):
            rows = G[a.numbers == z, : len(params.scaling[k]["shift"])]
            if len(rows):
                lo[k] = rows.min(0) if lo[k] is None else np.minimum(lo[k], rows.min(0))
                hi[k] = rows.max(0) if hi[k] is None else np.maximum(hi[k], rows.max(0))
    nf = [len(s["shift"]) for s in params.scaling]
    params.feature_range = [{"min": lo[k] if lo[k] is not None else np.zeros(nf[k]),
                             "max": hi[k] if hi[k] is not None else np.zeros(nf[k])} for k in range(len(nf))]
    return params


@pytest.fixture(scope="module")
def water_frames(data_dir):
    from atomforge.data import load_dataset

    ds = load_dataset(data_dir / "deepmd_water" / "energy_force" / "data_0").subset([0, 1, 2])
    return [Atoms(numbers=ds.numbers[i], positions=ds.positions[i], cell=ds.cells[i], pbc=True) for i in range(3)]


def compressed(atoms, factor=0.6):
    a = atoms.copy()
    a.set_cell(a.cell * factor, scale_atoms=True)
    return a


def single_member(p: BPNNParameters, m: int) -> BPNNParameters:
    return BPNNParameters(p.species, p.descriptor, p.scaling, [p.networks[m]], p.activations, p.reference_energies,
                          p.energy_scale, dict(p.metadata), p.shared)


def test_member_forces_are_the_members_own_folded_forces():
    """A small periodic cell (atoms see their own images): member m's folded forces equal member m
    evaluated alone; eps_i is the DeePMD deviation of those; the mean forces are their mean."""
    p = random_model(seed=5, committee=3)
    rng = np.random.default_rng(0)
    a = Atoms("H2OC", positions=rng.uniform(0, 3.2, size=(4, 3)), cell=[[3.3, 0, 0], [0.4, 3.1, 0], [0.2, 0.3, 3.4]],
              pbc=True)
    pot = atomforge.load(atomforge.model_file.encode_records(p.to_records()))
    r = pot.compute(a, uncertainty=True)
    assert r.member_forces.shape == (3, 4, 3) and r.forces_uncertainty.shape == (4,)
    for m in range(3):
        rm = atomforge.load(encode_records(single_member(p, m).to_records())).compute(a)
        np.testing.assert_allclose(r.member_forces[m], rm.forces, rtol=1e-12, atol=1e-12)
        assert r.committee_energies[m] == pytest.approx(rm.energy, rel=1e-13)
    np.testing.assert_allclose(r.member_forces.mean(0), r.forces, atol=1e-12)
    dev = r.member_forces - r.member_forces.mean(0)
    np.testing.assert_allclose(r.forces_uncertainty, np.sqrt((dev ** 2).sum(-1).mean(0)), rtol=1e-12, atol=1e-15)
    assert r.max_forces_uncertainty == pytest.approx(r.forces_uncertainty.max())
    assert r.energy_uncertainty == pytest.approx(np.std(r.committee_energies), rel=1e-12)
    # without the request: no per-member work, same mean forces
    r0 = pot.compute(a)
    assert r0.forces_uncertainty is None and r0.member_forces is None
    np.testing.assert_allclose(r0.forces, r.forces, atol=1e-12)
    # the bound core helper is the same formula
    np.testing.assert_allclose(atomforge._core.force_deviation(r.member_forces, 2.0), 2 * r.forces_uncertainty)


def test_single_model_has_no_force_uncertainty():
    r = atomforge.load(encode_records(random_model(seed=1).to_records())).compute(molecule("CH4"), uncertainty=True)
    assert r.forces_uncertainty is None and r.energy_uncertainty == 0.0


def test_calibration_scales_uncertainties_and_round_trips(tmp_path):
    p = random_model(seed=2, committee=4)
    a = molecule("CH3CH2OH")
    raw = atomforge.load(encode_records(p.to_records())).compute(a, uncertainty=True)
    p.calibration = {"energy": 0.5, "forces": 3.0}
    save_model(tmp_path / "c.afm", p)
    assert atomforge.read_model(tmp_path / "c.afm").calibration == {"energy": 0.5, "forces": 3.0}
    pot = atomforge.load(tmp_path / "c.afm")
    r = pot.compute(a, uncertainty=True)
    np.testing.assert_allclose(r.forces_uncertainty, 3.0 * raw.forces_uncertainty, rtol=1e-12)
    assert r.energy_uncertainty == pytest.approx(0.5 * raw.energy_uncertainty, rel=1e-12)
    np.testing.assert_allclose(r.committee_energies, raw.committee_energies)  # raw member energies
    assert dict(pot.describe())["uncertainty_calibration"] == "energy x0.5, forces x3"


@pytest.mark.parametrize("value", [0.0, -1.0, np.nan, np.inf])
def test_bad_calibration_is_rejected_in_python_and_cpp(value):
    p = random_model(seed=2, committee=2)
    p.calibration = {"energy": 1.0, "forces": value}
    with pytest.raises(ModelFileError, match="calibration factor 'forces' must be positive and finite"):
        p.validate()
    p.calibration = None
    rec = p.to_records()
    rec["uncertainty.forces_calibration"] = float(value)
    data = encode_records(rec)
    # NaN/inf: the reader's rule for every number in a model file; 0 and negative: the calibration rule
    with pytest.raises(ValueError, match="uncertainty.forces_calibration' (must be a positive finite number|"
                                         "entry 0 is not finite)"):
        atomforge.load(data)
    with pytest.raises(ModelFileError, match="calibration factor 'forces'|forces_calibration' entry 0 is not finite"):
        atomforge.read_model(data)


def test_bad_feature_range_is_rejected_in_python_and_cpp(water_frames):
    p = with_range(random_model(seed=3, committee=2), water_frames[:1])
    good = p.to_records()
    atomforge.load(encode_records(good))  # fine
    cases = {
        "only one element": (lambda r: (r.pop("extrapolation.1.min"), r.pop("extrapolation.1.max")),
                             "for every element or for none"),
        "min > max": (lambda r: r.__setitem__("extrapolation.0.min", r["extrapolation.0.max"] + 1),
                      "not a finite range|no finite range"),
        "wrong length": (lambda r: r.__setitem__("extrapolation.2.max", r["extrapolation.2.max"][:-1]),
                         "one entry per descriptor feature|expected"),
        "nan": (lambda r: r["extrapolation.0.max"].__setitem__(0, np.nan),
                "not a finite range|no finite range|'extrapolation.0.max' entry 0 is not finite"),
    }
    for name, (edit, match) in cases.items():
        rec = {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in good.items()}
        edit(rec)
        data = encode_records(rec)
        with pytest.raises(ValueError, match=match):
            atomforge.load(data)
        with pytest.raises(ModelFileError, match=match):
            atomforge.read_model(data)


def test_compressed_water_warns_and_training_frames_do_not(water_frames):
    p = with_range(random_model(seed=3, committee=2), water_frames)
    pot = atomforge.load(encode_records(p.to_records()))
    assert "feature_range" in pot.capabilities
    with warnings.catch_warnings():
        warnings.simplefilter("error", ExtrapolationWarning)
        for a in water_frames:
            r = pot.compute(a)
            assert r.extrapolation["features"] == 0 and r.extrapolation["atoms"] == 0
    with pytest.warns(ExtrapolationWarning, match=r"extrapolates: \d+ descriptor feature value\(s\) on \d+ atom"):
        r = pot.compute(compressed(water_frames[0]))
    assert r.extrapolation["features"] > 0 and 0 < r.extrapolation["atoms"] <= len(water_frames[0])
    assert r.extrapolation["worst_excess"] > 0
    # rate limit: the next warnings come at the 10th and 100th extrapolating evaluation
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        for _ in range(9):
            pot.compute(compressed(water_frames[0]))
    assert len([x for x in w if x.category is ExtrapolationWarning]) == 1
    assert pot.extrapolation_stats["extrapolating_evaluations"] == 10
    assert pot.extrapolation_stats["evaluations"] == 13


def test_cli_evaluate_counts_frames_outside_the_range(water_frames, tmp_path, capsys):
    """atomforge evaluate reports frames outside the training range (no warning per evaluation)."""
    import json

    import ase.io
    from ase.calculators.singlepoint import SinglePointCalculator

    from atomforge.cli import main

    p = with_range(random_model(seed=3, committee=2), water_frames)
    save_model(tmp_path / "m.afm", p)
    frames = [a.copy() for a in water_frames] + [compressed(water_frames[0]), compressed(water_frames[1])]
    for a in frames:
        a.calc = SinglePointCalculator(a, energy=0.0, forces=np.zeros((len(a), 3)))
    ase.io.write(tmp_path / "d.extxyz", frames)
    from atomforge.data.checks import UnitsWarning

    with warnings.catch_warnings():
        warnings.simplefilter("error", ExtrapolationWarning)
        warnings.simplefilter("ignore", UnitsWarning)  # compressed water has short O-H distances, on purpose
        assert main(["evaluate", str(tmp_path / "m.afm"), str(tmp_path / "d.extxyz"), "--length-unit", "angstrom",
                     "--energy-unit", "ev"]) == 0
    out = capsys.readouterr()
    assert json.loads(out.out)["test"]["frames_outside_training_range"] == 2
    assert "2 of 5 frame(s) have descriptor features outside" in out.err


def test_thread_count_does_not_change_extrapolation_counts(water_frames):
    p = with_range(random_model(seed=3, committee=2), water_frames[:1])
    pot = atomforge.load(encode_records(p.to_records()))
    pot.warn_extrapolation = False
    a = compressed(water_frames[0], 0.8)
    r1, r2 = pot.compute(a, threads=1), pot.compute(a, threads=2)
    assert r1.extrapolation == r2.extrapolation and r1.extrapolation["features"] > 0


def test_n2p2_import_keeps_n2p2_ranges(water_dir):
    from atomforge.io.n2p2 import read_input_data, read_scaling_data, read_input_nn
    from atomforge.io.n2p2_import import import_n2p2

    p = import_n2p2(water_dir / "potential")
    st = read_scaling_data(water_dir / "potential" / "scaling.data", read_input_nn(water_dir / "potential" / "input.nn"))
    for k, e in enumerate(p.elements):
        np.testing.assert_array_equal(p.feature_range[k]["min"], st[e].min)
        np.testing.assert_array_equal(p.feature_range[k]["max"], st[e].max)
    pot = atomforge.load(encode_records(p.to_records()))
    frames = read_input_data(water_dir / "input.data.H2O_RPBE-D3", length_unit="bohr", energy_unit="ha")
    with warnings.catch_warnings():
        warnings.simplefilter("error", ExtrapolationWarning)
        for a in frames:
            assert pot.compute(a).extrapolation["features"] == 0
    with pytest.warns(ExtrapolationWarning):
        assert pot.compute(compressed(frames[0])).extrapolation["features"] > 0


def test_ase_calculator_forces_uncertainty():
    from atomforge.ase import AtomForgeCalculator

    p = random_model(seed=4, committee=3)
    a = molecule("CH3CH2OH")
    ref = atomforge.load(encode_records(p.to_records())).compute(a, uncertainty=True)
    calc = AtomForgeCalculator(encode_records(p.to_records()))
    a.calc = calc
    a.get_potential_energy()
    assert "forces_uncertainty" not in calc.results  # not asked for: no per-member work
    np.testing.assert_allclose(calc.get_property("forces_uncertainty", a), ref.forces_uncertainty, rtol=1e-12)
    a.calc = AtomForgeCalculator(encode_records(p.to_records()), uncertainty=True)
    a.get_forces()
    np.testing.assert_allclose(a.calc.results["forces_uncertainty"], ref.forces_uncertainty, rtol=1e-12)
    assert a.calc.results["max_forces_uncertainty"] == pytest.approx(ref.forces_uncertainty.max())
    assert a.calc.results["energy_uncertainty"] == pytest.approx(ref.energy_uncertainty)
