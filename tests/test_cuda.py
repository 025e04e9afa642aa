"""The CUDA launcher runs the same single-source per-centre kernels as the CPU driver.

Without nvcc or a visible GPU these tests skip (the CPU path never depends on CUDA); on a GPU
machine they compare device and CPU results on periodic water and on a molecule, in one launch
and in batches. benchmarks/run_gpu_checks.sh runs them with compute-sanitizer and the benchmark.
"""
import numpy as np
import pytest

from atomforge import _core
from atomforge.descriptors import SymmetryFunctions

needs_gpu = pytest.mark.skipif(not _core.built_with_cuda() or _core.cuda_device_count() == 0,
                               reason="no CUDA device visible (or built without CUDA)")


def _water(n_rep=2, seed=0):
    from atomforge.cli import _water_box
    return _water_box(n_rep, seed)


def test_cpu_build_reports_cuda_state_and_refuses_cleanly():
    sf = SymmetryFunctions.standard(["H", "O"], r_c=5.0, n_radial=4, n_angular=2)
    atoms = _water(1)
    assert sf.core.has_cuda == _core.built_with_cuda()
    with pytest.raises(ValueError, match="device must be"):
        sf.compute(atoms, device="tpu")
    if _core.cuda_device_count() == 0:
        with pytest.raises(ValueError, match="CUDA"):
            sf.compute(atoms, device="cuda")


@needs_gpu
@pytest.mark.parametrize("angular", ["G4", "G5"])
def test_cuda_equals_cpu_on_periodic_water(angular):
    sf = SymmetryFunctions.standard(["H", "O"], r_c=6.0, n_radial=8, n_angular=4, angular=angular,
                                    n_angular_radial=2, cutoff_function="poly2")
    atoms = _water(2)
    nl = sf.neighbor_list(atoms)
    G = sf.compute(atoms, neighbor_list=nl)
    Gc = sf.compute(atoms, neighbor_list=nl, device="cuda")
    np.testing.assert_allclose(Gc, G, rtol=1e-12, atol=1e-14)
    w = np.random.default_rng(0).normal(size=G.shape)
    r = sf.vjp(w, atoms, neighbor_list=nl)
    rc = sf.vjp(w, atoms, neighbor_list=nl, device="cuda")
    np.testing.assert_allclose(rc.forces, r.forces, rtol=1e-11, atol=1e-12)
    np.testing.assert_allclose(rc.virial, r.virial, rtol=1e-11, atol=1e-11)


def test_scratch_bytes_must_be_positive():
    sf = SymmetryFunctions.standard(["H", "O"], r_c=5.0, n_radial=4, n_angular=2)
    atoms = _water(1)
    nl = sf.neighbor_list(atoms)
    match = "scratch_bytes must be positive" if _core.built_with_cuda() else "no CUDA launcher"
    with pytest.raises(ValueError, match=match):
        sf.core.compute_cuda(nl, scratch_bytes=0)
    with pytest.raises(ValueError, match=match):
        sf.core.vjp_cuda(nl, np.zeros((len(atoms), sf.n_features)), scratch_bytes=-1)


@needs_gpu
def test_cuda_equals_cpu_on_a_molecule_one_centre_per_launch():
    """Open boundaries, three elements, and a scratch budget of one byte: every centre is its
    own batch (one launch each), so the batch offsets of values and pair gradients are exercised."""
    from ase.build import molecule

    atoms = molecule("CH3CH2OH")
    sf = SymmetryFunctions.standard(["H", "C", "O"], r_c=5.0, n_radial=6, n_angular=4)
    nl = sf.neighbor_list(atoms)
    G = sf.compute(atoms, neighbor_list=nl)
    Gc = sf.core.compute_cuda(nl, scratch_bytes=1)
    np.testing.assert_allclose(Gc, G, rtol=1e-12, atol=1e-14)
    w = np.random.default_rng(1).normal(size=G.shape)
    f, vir, _ = sf.core.vjp(nl, w, False, 1)
    fc, virc = sf.core.vjp_cuda(nl, w, scratch_bytes=1)
    np.testing.assert_allclose(fc, f, rtol=1e-11, atol=1e-12)
    np.testing.assert_allclose(virc, vir, rtol=1e-11, atol=1e-11)


@needs_gpu
def test_cuda_batches_do_not_change_the_result():
    """The same centres in one launch and in batches of a few centres give identical bits."""
    sf = SymmetryFunctions.standard(["H", "O"], r_c=6.0, n_radial=8, n_angular=4)
    atoms = _water(3)
    nl = sf.neighbor_list(atoms)
    w = np.random.default_rng(2).normal(size=(len(atoms), sf.n_features))
    np.testing.assert_array_equal(sf.core.compute_cuda(nl, scratch_bytes=1 << 18), sf.core.compute_cuda(nl))
    f1, v1 = sf.core.vjp_cuda(nl, w, scratch_bytes=1 << 18)
    f0, v0 = sf.core.vjp_cuda(nl, w)
    np.testing.assert_array_equal(f1, f0)
    np.testing.assert_array_equal(v1, v0)
