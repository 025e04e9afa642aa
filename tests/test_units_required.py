"""Issue 16, problem 1: formats without units are not guessed; every reader says which units it
used (console and run folder); a plausibility check warns when the units look wrong."""
import json
import warnings

import numpy as np
import pytest
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator
from ase.io import write
from ase.units import Bohr, Hartree

from atomforge.cli import main
from atomforge.data import load_dataset
from atomforge.data.checks import UnitsWarning, plausibility
from atomforge.data.readers import UnitsRequiredError, describe_units


@pytest.fixture(scope="module")
def ethylbenzene(data_dir):
    p = data_dir / "n2p2_organic_scan" / "input.data.Ethylbenzene"
    if not p.is_file():
        pytest.skip(f"{p} not found")
    return p


def test_n2p2_without_units_is_refused_naming_file_and_options(ethylbenzene):
    with pytest.raises(UnitsRequiredError) as e:
        load_dataset(ethylbenzene)
    msg = str(e.value)
    assert str(ethylbenzene) in msg
    for hint in ("--length-unit", "--energy-unit", "length_unit", "energy_unit", "bohr", "ha"):
        assert hint in msg
    with pytest.raises(UnitsRequiredError, match="energy_unit"):  # one unit is not enough
        load_dataset(ethylbenzene, length_unit="bohr")


def test_n2p2_units_given_are_used_and_reported(ethylbenzene, capsys):
    with warnings.catch_warnings():
        warnings.simplefilter("error", UnitsWarning)  # right units: no plausibility warning
        ds = load_dataset(ethylbenzene, length_unit="bohr", energy_unit="ha")
    line = capsys.readouterr().out
    assert "format n2p2" in line and "length bohr (0.529177 A)" in line and "energy ha (27.2114 eV)" in line
    assert "given by the user" in line
    assert ds.metadata["units_from"] == "user" and ds.metadata["energy_unit"] == pytest.approx(Hartree)
    assert describe_units(ds) in line


def test_n2p2_read_as_angstrom_ev_is_flagged(ethylbenzene):
    """What the issue's user did (numbers in Bohr/Hartree taken as A/eV): the check says so."""
    with pytest.warns(UnitsWarning, match=r"RMS force component is 0\.0\d+ eV/A.*Hartree/Bohr"):
        load_dataset(ethylbenzene, length_unit="angstrom", energy_unit="ev", log=None)


def test_plausibility_flags_kcal_read_as_ev_and_bohr_lengths(data_dir):
    p = data_dir / "rmd17" / "rmd17_ethanol_train_01.npz"
    if not p.is_file():
        pytest.skip("rMD17 ethanol not found")
    assert plausibility(load_dataset(p, log=None, check=False)) == []  # right units: silent
    msgs = plausibility(load_dataset(p, energy_unit="ev", log=None, check=False))
    assert len(msgs) == 1 and "kcal/mol" in msgs[0]
    bohr = plausibility(load_dataset(p, length_unit=1 / Bohr, log=None, check=False))  # A read as if Bohr
    assert any("shortest" in m and "Bohr" in m for m in bohr)


def _h2_frames():
    frames = []
    for d in (0.74, 0.76):
        a = Atoms("H2", positions=[[0, 0, 0], [0, 0, d]])
        a.calc = SinglePointCalculator(a, energy=-1.0, forces=[[0, 0, 0.5], [0, 0, -0.5]])
        frames.append(a)
    return frames


def test_plain_xyz_needs_units_or_unit_keys(tmp_path):
    p = tmp_path / "h2.xyz"
    write(p, _h2_frames(), format="extxyz")
    with pytest.raises(UnitsRequiredError, match=r"h2\.xyz: an extended XYZ file without length_unit="):
        load_dataset(p)
    # unit keys in the comment line: used, and reported as coming from the file
    frames = _h2_frames()
    for a in frames:
        a.info.update(length_unit="bohr", energy_unit="Ha")
    q = tmp_path / "h2_au.xyz"
    write(q, frames, format="extxyz")
    ds = load_dataset(q, log=None, check=False)
    assert ds.metadata["units_from"] == "file"
    np.testing.assert_allclose(ds.positions[0][1, 2], 0.74 * Bohr)
    np.testing.assert_allclose(ds.energy, [-Hartree, -Hartree])
    np.testing.assert_allclose(ds.forces[0][0, 2], 0.5 * Hartree / Bohr)
    bad = _h2_frames()
    bad[0].info.update(length_unit="furlong", energy_unit="eV")
    r = tmp_path / "bad.xyz"
    write(r, bad, format="extxyz")
    with pytest.raises(ValueError, match=r"bad\.xyz: comment-line key length_unit: unknown length unit 'furlong'"):
        load_dataset(r)


def test_cli_train_and_evaluate_units(ethylbenzene, tmp_path, capsys):
    # train without units: refused before any work, naming the file and the flags
    assert main(["train", "--data", str(ethylbenzene), "-o", str(tmp_path / "nounits")]) == 2
    err = capsys.readouterr().err
    assert str(ethylbenzene) in err and "--length-unit" in err
    assert not (tmp_path / "nounits").exists()

    cfg = tmp_path / "small.yaml"
    cfg.write_text("descriptor: {r_c: 4.0, n_radial: 4, n_angular: 1}\nnetwork: {hidden: [8]}\n"
                   "training: {epochs: 2, batch_size: 4, threads: 1}\nvalidation_fraction: 0.2\n"
                   "test_fraction: 0.2\n")
    run = tmp_path / "run"
    rc = main(["train", "-c", str(cfg), "--data", str(ethylbenzene), "--length-unit", "bohr", "--energy-unit", "ha",
               "-o", str(run), "--quiet"])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "format n2p2, length bohr" in out and "energy ha" in out  # printed
    m = json.loads((run / "metrics.json").read_text())  # and recorded
    d = m["data"]["data"]
    assert (d["format"], d["length_unit"], d["energy_unit"], d["units_from"]) == ("n2p2", "bohr", "ha", "user")
    assert d["unit_warnings"] == []
    assert "length_unit: bohr" in (run / "config.yaml").read_text()

    # evaluate: refused without units, and the units it used are in its output with them
    assert main(["evaluate", str(run / "model.afm"), str(ethylbenzene)]) == 2
    assert str(ethylbenzene) in capsys.readouterr().err
    assert main(["evaluate", str(run / "model.afm"), str(ethylbenzene), "--length-unit", "bohr",
                 "--energy-unit", "ha"]) == 0
    res = capsys.readouterr()
    ev = json.loads(res.out)
    assert "length bohr" in ev["data_units"] and "format n2p2" in res.err
    # per-atom energy error of a 2-epoch model is an eV-scale error, not the 74 eV/atom of Hartree-as-eV
    assert ev["test"]["energy_mae_per_atom"] < 5.0
