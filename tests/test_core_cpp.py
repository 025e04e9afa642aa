"""The core builds and runs with no Python: configure the C++ library alone with its unit tests
(cpp/tests: descriptors through the registry, closed forms, VJP vs finite differences, model
file, model registry, units table, engine adapter, thread clamping) and run them with ctest."""
import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(shutil.which("cmake") is None or shutil.which("ctest") is None, reason="cmake/ctest not on PATH")
def test_core_unit_tests_pass_under_ctest(tmp_path):
    build = tmp_path / "build"
    cfg = ["cmake", "-S", str(ROOT), "-B", str(build), "-DATOMFORGE_PYTHON=OFF", "-DATOMFORGE_CUDA=OFF",
           "-DATOMFORGE_LAMMPS_PLUGIN=OFF", "-DATOMFORGE_OPENMM_PLUGIN=OFF",
           "-DATOMFORGE_BUILD_CPP_TESTS=ON", "-DCMAKE_BUILD_TYPE=Release"]
    r = subprocess.run(cfg, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    env = dict(os.environ, CMAKE_BUILD_PARALLEL_LEVEL="2")
    r = subprocess.run(["cmake", "--build", str(build), "--target", "atomforge_core_tests"], capture_output=True,
                       text=True, env=env)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    r = subprocess.run(["ctest", "--output-on-failure"], cwd=build, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "100% tests passed" in r.stdout
    # every group ran and reported its tests
    out = subprocess.run([str(build / "cpp" / "atomforge_core_tests")], capture_output=True, text=True).stdout
    assert "0 failure(s)" in out and out.count("ok  ") >= 9, out
