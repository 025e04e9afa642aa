"""Adaptive sampling: a full tiny run with GFN2-xTB labels, the run folder's contents, identical
results in-process, with local processes and on a Dask cluster, --resume after kill -9 during MD,
labelling and retraining (same labelled set and final model as without the kill), labeller
failures recorded and skipped, the PySCF labeller, bad settings."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("tblite")

import atomforge  # noqa: E402
from atomforge.active import AdaptiveConfigError, adaptive_sampling  # noqa: E402
from atomforge.model_file import read_records  # noqa: E402

HERE = Path(__file__).resolve().parent
TINY = {"max_labels": 12, "seed_set": {"n": 6}, "md": {"replicas": 2, "max_time_fs": 60.0, "min_time_fs": 5.0},
        "training": {"epochs_seed": 12, "epochs": 3, "validation_every": 3},
        "network": {"hidden": [8], "committee": 3},
        "descriptor": {"type": "acsf", "r_c": 4.0, "n_radial": 4, "n_angular": 1}}


@pytest.fixture(scope="module")
def start(tmp_path_factory):
    import ase.io
    from ase.build import molecule

    p = tmp_path_factory.mktemp("adaptive") / "ethanol.xyz"
    ase.io.write(p, molecule("CH3CH2OH"))
    return p


def tiny_yaml(path, **extra):
    import copy

    import yaml

    cfg = copy.deepcopy(TINY)
    cfg.update(extra)
    path.write_text(yaml.safe_dump(cfg))
    return path


def summary(run: Path):
    """What must not change under interruption: the labelled set and the final model."""
    v, rec = read_records(run / "model.afm")
    model = {k: (x.tobytes() if isinstance(x, np.ndarray) else x) for k, x in rec.items() if k != "metadata.created"}
    return (run / "labelled.extxyz").read_text(), model, json.loads((run / "state.json").read_text())["label_order"]


def cli(args, env=None, check=True):
    e = dict(os.environ, PYTHONPATH=os.pathsep.join([str(HERE)] + sys.path), OMP_NUM_THREADS="1")
    e.update(env or {})
    import tempfile

    # output through files, not pipes: after a kill -9 nothing waits for the workers' pipe ends
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.run([sys.executable, "-m", "atomforge", "adaptive-sampling", *map(str, args), "--quiet"],
                              stdout=out, stderr=err, text=True, env=e, timeout=600)
        out.seek(0)
        err.seek(0)
        r = subprocess.CompletedProcess(proc.args, proc.returncode, out.read(), err.read())
    if check:
        assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return r


@pytest.fixture(scope="module")
def reference(start, tmp_path_factory):
    d = tmp_path_factory.mktemp("ref")
    cfg = tiny_yaml(d / "c.yaml")
    cli(["--start", start, "-o", d / "run", "-c", cfg, "--workers", "2"])
    return d / "run", cfg


def test_run_folder(reference):
    import ase.io

    run, _ = reference
    for name in ("model.afm", "labelled.extxyz", "history.csv", "state.json", "config.yaml", "failures.jsonl",
                 "labels_vs_time.png", "uncertainty_vs_error.png"):
        assert (run / name).is_file(), name
    frames = ase.io.read(run / "labelled.extxyz", index=":")
    st = json.loads((run / "state.json").read_text())
    assert len(frames) == st["n_ok"] == 12 and st["done"] and "label budget" in st["stop_reason"]
    for a in frames:
        assert np.isfinite(a.get_potential_energy()) and a.get_forces().shape == (9, 3)
        assert a.info["labeller"].startswith("GFN2-xTB")
    md = [a for a in frames if a.info["iteration"] > 0]
    assert md and all(a.info["predicted_max_force_uncertainty"] > 0 for a in md)
    hist = (run / "history.csv").read_text().splitlines()
    assert hist[0].startswith("iteration,") and len(hist) == len(st["history"]) + 1
    p = atomforge.read_model(run / "model.afm")
    assert p.committee_size == 3 and p.calibration is not None and p.feature_range is not None
    pot = atomforge.load(run / "model.afm")
    assert pot.compute(frames[0], uncertainty=True).forces_uncertainty.shape == (9,)


def test_inprocess_and_dask_give_the_same_run(reference, start, tmp_path):
    run, cfg = reference
    ref = summary(run)
    adaptive_sampling(start, tmp_path / "inline", str(cfg), workers=0, progress=False, log=lambda *_: None)
    assert summary(tmp_path / "inline") == ref
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None) as c:
        adaptive_sampling(start, tmp_path / "dask", str(cfg), scheduler=c.scheduler_address, progress=False,
                          log=lambda *_: None)
    assert summary(tmp_path / "dask") == ref


@pytest.mark.parametrize("kill", ["md:1:1", "label:2:1", "train:2:1"])
def test_resume_after_kill_9(reference, start, tmp_path, kill):
    run, cfg = reference
    r = cli(["--start", start, "-o", tmp_path / "run", "-c", cfg, "--workers", "2"],
            env={"ATOMFORGE_ADAPTIVE_KILL": kill}, check=False)
    assert r.returncode == -9, (r.returncode, r.stderr[-2000:])
    assert not json.loads((tmp_path / "run" / "state.json").read_text())["done"]
    phase, it, _ = kill.split(":")
    if phase == "label":  # labels finished before the kill are kept and not recomputed
        done = {p.stem for p in (tmp_path / "run" / "labels").glob("*.json")}
        assert done
    cli(["-o", tmp_path / "run", "--resume", "--workers", "2"])
    assert summary(tmp_path / "run") == summary(run)


def test_labeller_failures_are_recorded_and_skipped(start, tmp_path):
    cfg = tiny_yaml(tmp_path / "c.yaml", labeller="adaptive_helpers:FlakyXTB", max_labels=10)
    sys.path.insert(0, str(HERE))
    st = adaptive_sampling(start, tmp_path / "run", str(cfg), workers=0, progress=False, log=lambda *_: None)
    fails = [json.loads(x) for x in (tmp_path / "run" / "failures.jsonl").read_text().splitlines()]
    assert any("SCF not converged (test labeller)" in f["error"] for f in fails)
    assert all("SCF not converged (test labeller)" in f["error"] or "exceeds max_label_force" in f["error"]
               for f in fails)
    import ase.io

    ids = [a.info["label_id"] for a in ase.io.read(tmp_path / "run" / "labelled.extxyz", index=":")]
    assert not {f["id"] for f in fails} & set(ids) and len(ids) == st["n_ok"] >= 5
    # the run went on after the failures: a model was trained and MD iterations followed
    assert (tmp_path / "run" / "model.afm").is_file() and len(st["history"]) >= 2


def test_pyscf_labeller():
    pytest.importorskip("pyscf")
    from ase.build import molecule

    from atomforge.active import LabelError, label

    w = molecule("H2O")
    e, f = label("pyscf:pbe/sto-3g", {}, w.numbers, w.positions, w.cell, w.pbc)
    assert e < -2000 and f.shape == (3, 3) and abs(f.sum(axis=0)).max() < 1e-3
    with pytest.raises(LabelError, match="SCF not converged"):
        label("pyscf:pbe/sto-3g", {"max_cycle": 1}, w.numbers, w.positions, w.cell, w.pbc)


def test_bad_settings(start, tmp_path):
    with pytest.raises(AdaptiveConfigError, match="network.committee"):
        adaptive_sampling(start, tmp_path / "a", {"network": {"committee": 1}}, progress=False)
    with pytest.raises(AdaptiveConfigError, match="unknown configuration key 'md.replica'"):
        adaptive_sampling(start, tmp_path / "a", {"md": {"replica": 2}}, progress=False)
    with pytest.raises(ValueError, match="unknown labeller"):
        adaptive_sampling(start, tmp_path / "a", {"labeller": "gaussian16"}, progress=False)
    with pytest.raises(ValueError, match="cannot import"):
        adaptive_sampling(start, tmp_path / "a", {"labeller": "no_such_module:Calc"}, progress=False)
    r = cli(["--start", tmp_path / "missing.xyz", "-o", tmp_path / "b"], check=False)
    assert r.returncode == 2 and "cannot read start structures" in r.stderr


def test_existing_run_needs_resume(reference, start):
    run, cfg = reference
    r = cli(["--start", start, "-o", run, "-c", cfg], check=False)
    assert r.returncode == 2 and "--resume" in r.stderr
    r = cli(["-o", run, "--resume", "--replicas", "3"], check=False)
    assert r.returncode == 2 and "differs" in r.stderr


def test_restart_from_start_structures(start, tmp_path):
    """md.restart: start puts every replica back on its start structure after each iteration."""
    import ase.io

    cfg = tiny_yaml(tmp_path / "c.yaml", max_labels=10)
    st = adaptive_sampling(start, tmp_path / "run", str(cfg), md={"restart": "start"}, workers=0, progress=False,
                           log=lambda *_: None)
    a = ase.io.read(start)
    assert len(st["history"]) >= 2
    for rep in st["replicas"]:
        np.testing.assert_allclose(rep["positions"], a.positions)
        assert rep["velocities"] is None
    with pytest.raises(AdaptiveConfigError, match="md.restart"):
        adaptive_sampling(start, tmp_path / "bad", {"md": {"restart": "sometimes"}}, progress=False)


def test_resume_run_from_before_a_new_key(reference, tmp_path):
    """A run folder whose config.json predates a key (md.restart) resumes with that key's default."""
    import shutil

    run, _ = reference
    old = tmp_path / "old"
    shutil.copytree(run, old)
    c = json.loads((old / "config.json").read_text())
    del c["md"]["restart"]
    (old / "config.json").write_text(json.dumps(c))
    st = adaptive_sampling(None, old, None, resume=True, progress=False, log=lambda *_: None)
    assert st["done"] and summary(old)[0] == summary(run)[0]


def test_seed_structures_from_a_file(start, tmp_path):
    """seed_set.structures: the first seed_set.n frames of a file are the seed set, labelled by the
    labeller (the file's own energies are not used); a copy in the run folder serves --resume."""
    import ase.io
    from ase.calculators.singlepoint import SinglePointCalculator

    a0 = ase.io.read(start)
    frames = []
    rng = np.random.default_rng(3)
    for k in range(5):
        a = a0.copy()
        a.positions += rng.normal(scale=0.03, size=a.positions.shape)
        a.calc = SinglePointCalculator(a, energy=1234.0 + k, forces=np.zeros((len(a), 3)))
        frames.append(a)
    seed_file = tmp_path / "md.extxyz"
    ase.io.write(seed_file, frames)
    run = tmp_path / "run"
    cfg = tiny_yaml(tmp_path / "c.yaml", max_labels=3)
    st = adaptive_sampling(start, run, str(cfg), seed_set={"n": 3, "structures": str(seed_file)},
                           trigger={"threshold": 0.01}, workers=0, progress=False, log=lambda *_: None)
    assert st["done"]
    got = ase.io.read(run / "labelled.extxyz", index=":")
    assert len(got) == 3
    for a, ref in zip(got, frames[:3]):
        np.testing.assert_allclose(a.positions, ref.positions, atol=1e-8)
        assert abs(a.get_potential_energy() - 1234.0) > 100  # relabelled (GFN2-xTB), not the file's energy
    assert len(ase.io.read(run / "seed_structures.extxyz", index=":")) == 3
    seed_file.unlink()  # the run folder's copy is enough to resume
    st = adaptive_sampling(None, run, None, resume=True, max_labels=4, workers=0, progress=False,
                           log=lambda *_: None)
    assert st["n_ok"] == 4 and len(ase.io.read(run / "labelled.extxyz", index=":")) == 4
    # bad seed files: missing, and an element the start structures do not have
    with pytest.raises(ValueError, match="seed_set.structures: cannot read"):
        adaptive_sampling(start, tmp_path / "b1", str(cfg), seed_set={"structures": str(tmp_path / "none.xyz")},
                          progress=False, log=lambda *_: None)
    bad = tmp_path / "bad.xyz"
    na = a0.copy()
    na.symbols[0] = "Na"
    ase.io.write(bad, [a0, na])
    with pytest.raises(ValueError, match="frame 1: element.*Na"):
        adaptive_sampling(start, tmp_path / "b2", str(cfg), seed_set={"structures": str(bad)}, progress=False,
                          log=lambda *_: None)
    with pytest.raises(AdaptiveConfigError, match="seed_set.structures"):
        adaptive_sampling(start, tmp_path / "b3", str(cfg), seed_set={"structures": 5}, progress=False)
    r = cli(["--start", start, "-o", tmp_path / "b4", "--seed-structures", tmp_path / "none.xyz"], check=False)
    assert r.returncode == 2 and "seed_set.structures: cannot read" in r.stderr
