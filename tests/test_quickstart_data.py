"""The built-in quickstart dataset: GFN2-xTB (tblite) Langevin MD of ethanol.

Tests that need tblite skip cleanly when it is not installed (``pip install tblite``); the
missing-tblite error message is tested either way.
"""
import os
import sys

import numpy as np
import pytest

from atomforge import quickstart_data as qd

TINY = dict(n_frames=6, stride=2, equilibration_steps=4, progress=False)


@pytest.fixture(scope="module")
def tblite_ase():
    return pytest.importorskip("tblite.ase")


@pytest.fixture(scope="module")
def tiny(tblite_ase, tmp_path_factory):
    folder = tmp_path_factory.mktemp("xtb")
    path = qd.generate_xtb_dataset(folder / "tiny.extxyz", **TINY)
    return path


def _read(path):
    import ase.io

    return ase.io.read(path, index=":", format="extxyz")


def test_frames_and_metadata(tiny):
    frames = _read(tiny)
    assert len(frames) == TINY["n_frames"]
    for k, a in enumerate(frames):
        assert a.get_chemical_formula() == "C2H6O"
        assert a.info["method"] == "GFN2-xTB"
        assert a.info["code"].startswith("tblite ")
        assert a.info["temperature_K"] == 500.0
        assert a.info["timestep_fs"] == 0.5
        assert a.info["seed"] == 0
        assert (a.info["length_unit"], a.info["energy_unit"]) == ("Angstrom", "eV")  # read without unit flags
        assert a.info["step"] == TINY["equilibration_steps"] + (k + 1) * TINY["stride"]
        assert not a.pbc.any()


def test_energies_in_eV_and_forces_sane(tiny):
    frames = _read(tiny)
    E = np.array([a.get_potential_energy() for a in frames])
    F = np.array([a.get_forces() for a in frames])
    assert np.all(np.isfinite(E)) and np.all(np.isfinite(F))
    # GFN2-xTB total energy of ethanol: -309.98 eV (-11.391 Hartree) at the ase.build geometry;
    # thermal frames lie a few tenths of an eV above. Hartree values (-11.4) would fail here.
    assert np.all((E > -311.0) & (E < -308.0)), E
    # isolated molecule: translation invariance makes the forces sum to zero
    np.testing.assert_allclose(F.sum(axis=1), 0.0, atol=1e-6)
    assert 0.05 < np.abs(F).max() < 20.0  # eV/A, not Hartree/Bohr-sized or zero


def test_forces_are_minus_gradient_finite_difference(tiny):
    """One frame, its largest force component, against central differences of tblite energies."""
    from ase.units import Bohr, Hartree
    from tblite.interface import Calculator

    frame = _read(tiny)[-1]
    F = frame.get_forces()
    i, k = np.unravel_index(np.abs(F).argmax(), F.shape)

    def energy_eV(pos):
        calc = Calculator("GFN2-xTB", frame.numbers, pos / Bohr)
        calc.set("verbosity", 0)
        return calc.singlepoint()["energy"] * Hartree

    pos = frame.positions.copy()
    assert energy_eV(pos) == pytest.approx(frame.get_potential_energy(), abs=1e-5)
    h = 1e-4  # Angstrom
    pos[i, k] += h
    e_plus = energy_eV(pos)
    pos[i, k] -= 2 * h
    e_minus = energy_eV(pos)
    fd = -(e_plus - e_minus) / (2 * h)
    assert F[i, k] == pytest.approx(fd, rel=1e-4)


def test_reproducible_for_same_seed(tiny, tmp_path):
    again = qd.generate_xtb_dataset(tmp_path / "again.extxyz", **TINY)
    a, b = _read(tiny), _read(again)
    np.testing.assert_allclose([x.positions for x in a], [x.positions for x in b], atol=1e-6)


def test_written_atomically_no_temp_files(tiny):
    assert sorted(p.name for p in tiny.parent.iterdir()) == [tiny.name]


def test_failed_write_leaves_nothing(tblite_ase, tmp_path, monkeypatch):
    import ase.io

    def broken_write(fh, frames, **kw):
        fh.write("partial")
        raise OSError("disk full")

    monkeypatch.setattr(ase.io, "write", broken_write)
    with pytest.raises(OSError, match="disk full"):
        qd.generate_xtb_dataset(tmp_path / "x.extxyz", **{**TINY, "n_frames": 1})
    assert list(tmp_path.iterdir()) == []


def test_cache_hit_does_not_regenerate(tblite_ase, tmp_path, monkeypatch):
    path = qd.quickstart_dataset(cache_dir=tmp_path, **TINY)
    assert path.parent == tmp_path and path.name.startswith("xtb_ethanol_T500_n6_seed0")
    assert len(_read(path)) == TINY["n_frames"]
    mtime = path.stat().st_mtime_ns

    def must_not_run(*a, **k):
        raise AssertionError("regenerated a cached dataset")

    monkeypatch.setattr(qd, "generate_xtb_dataset", must_not_run)
    monkeypatch.setenv("ATOMFORGE_CACHE", str(tmp_path))  # the default cache folder
    assert qd.quickstart_dataset(**TINY) == path
    assert qd.quickstart_dataset(cache_dir=tmp_path, **TINY) == path
    assert path.stat().st_mtime_ns == mtime
    monkeypatch.undo()

    # a truncated file is not a cache hit: it is regenerated
    path.write_text(path.read_text()[:200])
    assert qd.quickstart_dataset(cache_dir=tmp_path, **TINY) == path
    assert len(_read(path)) == TINY["n_frames"]


def test_default_file_name():
    assert qd.dataset_filename() == "xtb_ethanol_T500_n300_seed0_v2.extxyz"
    assert qd.dataset_filename(stride=2, equilibration_steps=4, n_frames=6) == (
        "xtb_ethanol_T500_n6_seed0_stride2_eq4_v2.extxyz")


def test_default_cache_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("ATOMFORGE_CACHE", str(tmp_path / "c"))
    assert qd.default_cache_dir() == tmp_path / "c"
    monkeypatch.delenv("ATOMFORGE_CACHE")
    assert qd.default_cache_dir() == qd.Path.home() / ".cache" / "atomforge"


def test_missing_tblite_says_how_to_install(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "tblite", None)
    monkeypatch.setitem(sys.modules, "tblite.ase", None)
    with pytest.raises(RuntimeError, match="pip install tblite"):
        qd.quickstart_dataset(cache_dir=tmp_path, **TINY)
    with pytest.raises(RuntimeError, match="pip install tblite"):
        qd.generate_xtb_dataset(tmp_path / "x.extxyz", **TINY)
    assert not os.listdir(tmp_path)
