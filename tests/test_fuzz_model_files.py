"""Bounded fuzzing of the model-file readers (issue 15, item 7): a few hundred seeded mutations of
three valid model files (ACSF committee, shared-network GMP, sGDML), each loaded by the pure-Python
reader (atomforge.read_model) and by the C++ reader (the code atomforge.load, LAMMPS and OpenMM
use), and evaluated when it loads. Every outcome must be "loaded" or the documented error with a
message (ModelFileError / ValueError); both readers must agree on which files they accept. The full
campaign (thousands of cases, each in a forked child under a 1 GB address-space limit and a
timeout) is benchmarks/fuzz_model_files.py; its table is in benchmarks/results/fuzz_model_files.md.
The C++ unit tests run their own mutation loop over a model built by ModelFileWriter
(cpp/tests/test_core.cpp, core.model_file_fuzz)."""
import collections
import time

import pytest

import model_fuzz


@pytest.fixture(scope="module")
def seeds():
    return model_fuzz.seed_models()


def test_seed_models_load(seeds):
    for name, data in seeds.items():
        r = model_fuzz.run_case(data)
        assert r == {"python": "ok", "core": "ok", "compute": "ok"}, (name, r)


@pytest.mark.parametrize("seed", [15, 2015])
def test_mutated_model_files_give_clear_errors(seeds, seed):
    t0 = time.time()
    outcomes, findings = collections.Counter(), []
    for i, base, what, data in model_fuzz.cases(400, seed=seed, seeds=seeds):
        r = model_fuzz.run_case(data)
        outcomes[(r["python"], r["core"], r["compute"])] += 1
        if any(v.startswith("unexpected") for v in r.values()):
            findings.append((i, base, what, r))
        elif (r["python"] == "ok") != (r["core"] == "ok"):
            findings.append((i, base, what, r, "the readers disagree"))
    assert not findings, findings[:10]
    assert sum(outcomes.values()) == 400
    assert outcomes[("clear", "clear", "-")] > 200  # most mutations are caught by both readers
    assert time.time() - t0 < 60
