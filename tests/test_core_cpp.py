"""The core builds and runs with no Python: configure the C++ library alone and run its smoke
test (closed-form G2, VJP vs finite differences, exceptions on bad input)."""
import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(shutil.which("cmake") is None, reason="cmake not on PATH")
def test_core_builds_and_runs_without_python(tmp_path):
    build = tmp_path / "build"
    cfg = ["cmake", "-S", str(ROOT), "-B", str(build), "-DATOMFORGE_PYTHON=OFF", "-DATOMFORGE_CUDA=OFF",
           "-DATOMFORGE_BUILD_CPP_TESTS=ON", "-DCMAKE_BUILD_TYPE=Release"]
    subprocess.run(cfg, check=True, capture_output=True, text=True)
    env = dict(os.environ, CMAKE_BUILD_PARALLEL_LEVEL="2")
    subprocess.run(["cmake", "--build", str(build), "--target", "atomforge_core_smoke"], check=True,
                   capture_output=True, text=True, env=env)
    exe = build / "cpp" / "atomforge_core_smoke"
    r = subprocess.run([str(exe)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "core smoke test passed" in r.stdout
