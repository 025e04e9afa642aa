"""The descriptor and model registries (C++ and Python agree), the generic paths every registered
type goes through (inspect, load, read_model, Result), and clear errors for unknown types."""
import numpy as np
import pytest

import atomforge
from atomforge import _core
from atomforge.cli import main as cli_main
from atomforge.descriptors import descriptor_class, descriptor_types
from atomforge.model_file import encode_records, read_records, write_records
from atomforge.models import model_class, model_types, read_model, save_model
from test_model_inference import random_model


def test_python_and_core_registries_agree():
    assert set(descriptor_types()) == set(_core.descriptor_types()) >= {"acsf", "gmp"}
    assert set(model_types()) == set(_core.model_types()) >= {"bpnn", "sgdml"}
    for name, cls in descriptor_types().items():
        assert cls.type == name and descriptor_class(name) is cls
    for name, cls in model_types().items():
        assert cls.model_type == name


def test_unknown_types_are_refused_naming_the_known_ones(tmp_path):
    rec = random_model().to_records()
    rec["descriptor.type"] = "soap"
    p = tmp_path / "soap.afm"
    write_records(p, rec)
    for reader in (atomforge.load, read_model):
        with pytest.raises(ValueError, match=r"unknown descriptor.type 'soap'.*acsf.*gmp"):
            reader(p)
    rec = random_model().to_records()
    rec["model_type"] = "transformer"
    write_records(p, rec)
    for reader in (atomforge.load, read_model):
        with pytest.raises(ValueError, match=r"model_type 'transformer'.*bpnn, .*sgdml"):
            reader(p)
    with pytest.raises(ValueError, match="unknown descriptor type 'soap'"):
        descriptor_class("soap")
    with pytest.raises(ValueError, match="unsupported model_type"):
        model_class("transformer")


def test_core_builds_descriptors_from_python_records():
    """Training and inference share one implementation: the Python descriptor hands its records
    to the core's registry, which builds the same object a model file would."""
    from atomforge.descriptors import SymmetryFunctions
    sf = SymmetryFunctions.standard(["H", "O"], r_c=4.0, n_radial=3, n_angular=1)
    core = _core.make_descriptor(encode_records(sf.records()))
    assert core.type == "acsf" and core.n_features == sf.n_features and core.cutoff == sf.cutoff
    _, rec = read_records(encode_records(sf.records()))
    assert type(atomforge.descriptors.descriptor_from_records(rec)).__name__ == "SymmetryFunctions"


def test_inspect_works_for_every_model_type(tmp_path, capsys, data_dir):
    p = tmp_path / "bpnn.afm"
    save_model(p, random_model(committee=2))
    assert cli_main(["inspect", str(p)]) == 0
    out = capsys.readouterr().out
    assert "model_type bpnn" in out and "descriptor: acsf" in out and "committee_size: 2" in out
    path = data_dir / "rmd17" / "rmd17_ethanol_train_01.npz"
    if not path.exists():
        pytest.skip("rMD17 ethanol not found")
    from atomforge.sgdml import find_perms, save_sgdml
    from atomforge.sgdml.train import fit
    from atomforge.units import KCAL_PER_MOL
    d = np.load(path)
    R, z = d["coords"][:10], d["nuclear_charges"].astype(np.int64)
    m = fit(R, d["energies"][:10] * KCAL_PER_MOL, d["forces"][:10] * KCAL_PER_MOL, z, find_perms(R, z, n_geometries=5),
            sigma=20.0, lam=1e-4, threads=1)
    q = tmp_path / "sgdml.afm"
    save_sgdml(q, m)
    assert cli_main(["inspect", str(q)]) == 0
    out = capsys.readouterr().out
    assert "model_type sgdml" in out and "training points: 10" in out and "C2H6O" in out
    pot = atomforge.load(q)
    assert pot.model_type == "sgdml" and pot.capabilities == ["energy"]
    assert dict(pot.describe())["training points"] == "10"


def test_result_optional_outputs_are_none_unless_the_model_has_them(tmp_path):
    p = tmp_path / "m.afm"
    save_model(p, random_model(committee=3))
    pot = atomforge.load(p)
    assert pot.capabilities == ["energy", "uncertainty"] and pot.committee_size == 3
    from ase.build import molecule
    r = pot.compute(molecule("CH3CH2OH"))
    assert r.charges is None and r.dipole is None and r.forces.shape == (9, 3)
    assert r.committee_energies.shape == (3,) and r.energy_uncertainty > 0
    e_only = pot.compute(molecule("CH3CH2OH"), forces=False)
    assert e_only.forces is None and e_only.energy == pytest.approx(r.energy, rel=1e-14)
