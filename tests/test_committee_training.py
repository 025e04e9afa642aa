"""Committee training: members with their own loss, initialisation and bootstrap resample, all in
one model file, from YAML ``network: {committee: 4}``; calibration factor and training range
stored in the model file; calibration plot in the run folder."""
import json
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import atomforge  # noqa: E402
from atomforge.train import train  # noqa: E402
from atomforge.train.committee import committee_loss, frame_weights  # noqa: E402


@pytest.fixture(scope="module")
def ethanol_small(data_dir, tmp_path_factory):
    src = np.load(data_dir / "rmd17" / "rmd17_ethanol_train_01.npz")
    d = tmp_path_factory.mktemp("eth_committee")
    keys = ["nuclear_charges", "coords", "energies", "forces"]
    np.savez(d / "train.npz", **{k: (src[k] if k == "nuclear_charges" else src[k][:60]) for k in keys})
    np.savez(d / "test.npz", **{k: (src[k] if k == "nuclear_charges" else src[k][60:80]) for k in keys})
    return d / "train.npz", d / "test.npz"


def test_frame_weights():
    w = frame_weights(50, 4, "bootstrap", seed=1)
    assert w.shape == (4, 50) and (w.sum(axis=1) == 50).all()
    assert all((w[m] == 0).any() for m in range(4))  # each member leaves frames out
    assert len({w[m].tobytes() for m in range(4)}) == 4  # and different ones
    np.testing.assert_array_equal(w, frame_weights(50, 4, "bootstrap", seed=1))  # deterministic
    assert not np.array_equal(w, frame_weights(50, 4, "bootstrap", seed=2))
    s = frame_weights(50, 3, "subset", seed=0)
    assert set(np.unique(s)) == {0, 1} and (s.sum(axis=1) == 40).all()
    assert (frame_weights(50, 4, "all") == 1).all() and (frame_weights(50, 1, "bootstrap") == 1).all()
    with pytest.raises(ValueError, match="not one of"):
        frame_weights(5, 2, "jackknife")


def test_members_have_independent_losses(ethanol_small):
    """Member 0's gradient does not depend on member 1's frame weights (no coupling through the
    mean), and members start from different weights."""
    from atomforge import SymmetryFunctions
    from atomforge.data import load_dataset
    from atomforge.train.bpnn import TorchBPNN, collate, featurize

    ds = load_dataset(ethanol_small[0]).subset(range(4))
    sf = SymmetryFunctions.standard(["H", "C", "O"], r_c=4.0, n_radial=3, n_angular=1)
    model = TorchBPNN(sf, [6], "tanh", committee=2, reference_energies=[-10.0, -1000.0, -2000.0], seed=0)
    p0, p1 = list(model.members[0].parameters()), list(model.members[1].parameters())
    assert not torch.equal(p0[0], p1[0])
    b = collate([featurize(sf, ds.positions[i], ds.numbers[i], None, None) for i in range(4)], ds.energy,
                [ds.forces[i] for i in range(4)])

    def grads(w):
        model.zero_grad()
        loss, E, F = committee_loss(model, b, w, 1.0, 1.0, True, create_graph=True)
        loss.backward()
        return [p.grad.clone() for p in model.members[0].parameters()], [p.grad.clone() for p in
                                                                          model.members[1].parameters()]

    g0a, g1a = grads(np.array([[1, 2, 0, 1], [1, 1, 1, 1]]))
    g0b, g1b = grads(np.array([[1, 2, 0, 1], [0, 3, 1, 0]]))
    for a, c in zip(g0a, g0b):
        torch.testing.assert_close(a, c, rtol=0, atol=0)
    assert any(not torch.equal(a, c) for a, c in zip(g1a, g1b))
    # the committee-mean outputs equal the model's usual forward pass
    _, E, F = committee_loss(model, b, None, 1.0, 1.0, True, create_graph=False)
    E2, F2 = model(b)
    torch.testing.assert_close(E, E2)
    torch.testing.assert_close(F, F2)


def test_yaml_committee_of_four(ethanol_small, tmp_path):
    train_path, test_path = ethanol_small
    (tmp_path / "c.yaml").write_text(
        f"data: {train_path}\ntest_data: {test_path}\nvalidation_fraction: 0.25\n"
        "descriptor: {r_c: 4.0, n_radial: 4, n_angular: 2}\n"
        "network: {hidden: [8, 8], committee: 4}\ntraining: {epochs: 3, batch_size: 8}\n")
    m = train(str(tmp_path / "c.yaml"), tmp_path / "run", progress=False, log=lambda *_: None)
    run = tmp_path / "run"
    assert (run / "calibration.png").stat().st_size > 0
    p = atomforge.read_model(run / "model.afm")
    assert p.committee_size == 4
    assert not np.array_equal(p.networks[0][0][0][0], p.networks[1][0][0][0])
    assert p.calibration["forces"] > 0 and p.calibration["energy"] > 0
    saved = json.loads((run / "metrics.json").read_text())
    u = saved["uncertainty"]
    assert u["calibration"] == p.calibration
    # calibrated on the validation frames: mean predicted = mean observed there
    assert u["validation"]["forces_ratio"] == pytest.approx(1.0, rel=1e-9)
    assert np.isfinite(u["test"]["forces_spearman_frames"])
    assert m["uncertainty"]["calibration"] == p.calibration
    # the training range is stored, and the training frames are inside it
    assert p.feature_range is not None
    from atomforge.data import load_dataset

    split = json.loads((run / "split.json").read_text())
    ds = load_dataset(train_path).subset(split["train"])
    pot = atomforge.load(run / "model.afm")
    with warnings.catch_warnings():
        warnings.simplefilter("error", atomforge.ExtrapolationWarning)
        for i in range(len(ds)):
            r = pot.compute(ds.positions[i], ds.numbers[i], uncertainty=True)
            assert r.extrapolation["features"] == 0
            assert r.forces_uncertainty.shape == (9,)
