"""The kernels' elementary functions vectorise on AVX2 CPUs with the core's own compiler flags.

simd::exp, simd::expm1, simd::tanh_nonneg, simd::tanh_unit and the tanh cutoff are branch-free scalar functions
that the kernels call in lane loops (`#pragma omp simd`), relying on the compiler to vectorise
them. Their argument clamps are selects; GCC can only if-convert those without AVX-512 masks when
comparisons may not trap, so without -fno-trapping-math every such loop stayed scalar on AVX2
machines (measured on an AMD EPYC, Zen 3: ACSF water 1.3-1.7x, GMP water 1.4-1.8x slower,
benchmarks/results/roofline.md, stop 42). This test compiles those loops for x86-64-v3 (AVX2 + FMA)
with the floating-point flags read from cpp/CMakeLists.txt and asks GCC's vectoriser report
whether each loop was vectorised.

The second test checks the built core itself: those functions are AF_LANE_INLINE (always inlined),
so the library must hold no out-of-line copy of them. An out-of-line copy means some lane loop calls
it and stays scalar: GCC's inliner did that to simd::exp after an unrelated edit of the ACSF kernel,
1.30x slower in paired runs on the same machine (stop 43, benchmarks/results/bench_ab.md).
"""
import platform
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

SOURCE = r"""
#include "common/cutoff.hpp"
#include "common/simd_math.hpp"
using namespace atomforge;
void lanes_exp(long W, const double* x, double* y) {
#pragma omp simd
  for (long l = 0; l < W; ++l) y[l] = simd::exp(x[l]);  // LOOP exp
}
void lanes_expm1(long W, const double* x, double* y) {
#pragma omp simd
  for (long l = 0; l < W; ++l) y[l] = simd::expm1(x[l]);  // LOOP expm1
}
void lanes_tanh(long W, const double* x, double* y) {
#pragma omp simd
  for (long l = 0; l < W; ++l) y[l] = simd::tanh_nonneg(x[l]);  // LOOP tanh
}
void lanes_tanh_unit(long W, const double* x, double* y) {
#pragma omp simd
  for (long l = 0; l < W; ++l) y[l] = simd::tanh_unit(x[l]);  // LOOP tanh_unit
}
void lanes_cutoff(long W, const double* r, double rc, double* f, double* df) {
  detail::cutoff_fdf_lanes<true>(CutoffType::TanhU, W, r, rc, f, df);
}
"""


def core_fp_flags():
    text = (ROOT / "cpp" / "CMakeLists.txt").read_text()
    m = re.search(r"set\(ATOMFORGE_FP_FLAGS([^)]*)\)", text)
    assert m, "cpp/CMakeLists.txt no longer sets ATOMFORGE_FP_FLAGS"
    return m.group(1).split()


def gcc():
    exe = shutil.which("g++")
    if exe is None or platform.machine() not in ("x86_64", "AMD64"):
        return None
    out = subprocess.run([exe, "--version"], capture_output=True, text=True).stdout
    return exe if "Free Software Foundation" in out else None


@pytest.mark.skipif(gcc() is None, reason="needs GCC on x86-64")
def test_elementary_function_lane_loops_vectorise_on_avx2(tmp_path):
    src = tmp_path / "lanes.cpp"
    src.write_text(SOURCE)
    cmd = [gcc(), "-std=gnu++17", "-O3", "-march=x86-64-v3", "-fopenmp-simd", *core_fp_flags(),
           f"-I{ROOT / 'cpp' / 'src'}", f"-I{ROOT / 'cpp' / 'include'}", "-c", str(src), "-o",
           str(tmp_path / "lanes.o"), "-fopt-info-vec-optimized"]
    r = subprocess.run(cmd, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:]
    report = r.stdout + r.stderr
    vectorised = {int(m.group(1)) for m in re.finditer(r"lanes\.cpp:(\d+):\d+: optimized: loop vectorized", report)}
    lines = SOURCE.splitlines()
    for name in ("exp", "expm1", "tanh", "tanh_unit"):
        line = next(i for i, s in enumerate(lines, start=1) if s.endswith(f"// LOOP {name}"))
        assert line in vectorised, f"the simd::{name} lane loop (lanes.cpp:{line}) is not vectorised:\n{report}"
    # the cutoff's own lane loop (inlined from cutoff.hpp, TanhU branch)
    cut = (ROOT / "cpp" / "src" / "common" / "cutoff.hpp").read_text().splitlines()
    tanh_line = next(i for i, s in enumerate(cut, start=1) if "simd::tanh_unit(1.0 - r[l] * inv)" in s)
    assert re.search(rf"cutoff\.hpp:({tanh_line - 1}|{tanh_line}):\d+: optimized: loop vectorized", report), \
        f"the tanh cutoff lane loop (cutoff.hpp:{tanh_line}) is not vectorised:\n{report}"


# Scalar functions the kernels call inside lane loops (AF_LANE_INLINE); demangled-name patterns.
LANE_FUNCTIONS = re.compile(
    r"atomforge::simd::(?:detail::)?(?:exp|expm1|tanh_nonneg|tanh_unit|cos_sin_pi|exp_core|bits_to_double|double_to_bits)\("
    r"|atomforge::acsf::(?:angular_u\(|ipow_acc<)")


def dynamic_symbols(library):
    nm = shutil.which("nm")
    if nm is None:
        pytest.skip("needs nm (binutils) to list the core's symbols")
    r = subprocess.run([nm, "-D", "-C", "--defined-only", str(library)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return r.stdout.splitlines()


def test_built_core_has_no_out_of_line_lane_functions():
    import atomforge._core as core

    symbols = dynamic_symbols(core.__file__)
    # the table lists the core's own functions (else the check below would pass vacuously)
    assert any("atomforge::SymmetryFunctions::" in s for s in symbols), \
        f"{core.__file__}: the dynamic symbol table lists no core functions; cannot check inlining"
    outlined = [s for s in symbols if LANE_FUNCTIONS.search(s)]
    assert not outlined, (f"{core.__file__} holds out-of-line copies of lane-loop functions, so some "
                          f"lane loop calls them and stays scalar (see hd.hpp, AF_LANE_INLINE):\n"
                          + "\n".join(outlined))
