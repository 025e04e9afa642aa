#!/usr/bin/env bash
# The checks that need a GPU, in one script (a lent GPU machine is short of time, not memory):
#   1. tests/test_cuda.py (CUDA == CPU on periodic water, G4 and G5, values and VJP);
#   2. compute-sanitizer memcheck over the values and VJP launchers on a small water box;
#   3. benchmarks/bench_cuda.py (CUDA beside the CPU kernels on 1536 to 41472 atoms of water).
# Expects an installed atomforge built with CUDA; logs and the benchmark table go to $1 (default .).
# Usage: bash benchmarks/run_gpu_checks.sh [OUTDIR]
set -u
out=${1:-.}
mkdir -p "$out"
here=$(cd "$(dirname "$0")" && pwd)
py=${PYTHON:-python3}
status=0
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$out/gpu.txt"
$py -c "import atomforge; print(atomforge.build_info())" | tee -a "$out/gpu.txt"

echo "== 1. tests/test_cuda.py"
$py -m pytest -q -rs "$here/../tests/test_cuda.py" 2>&1 | tee "$out/test_cuda.log"
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1

echo "== 2. compute-sanitizer memcheck"
if command -v compute-sanitizer >/dev/null; then
  compute-sanitizer --tool memcheck --error-exitcode 3 --print-limit 20 $py -c "
import numpy as np
from atomforge.cli import _water_box
from atomforge.descriptors import SymmetryFunctions
for angular in ('G4', 'G5'):
    sf = SymmetryFunctions.standard(['H', 'O'], r_c=6.0, n_radial=8, n_angular=4, angular=angular,
                                    n_angular_radial=2, cutoff_function='poly2')
    atoms = _water_box(1)
    nl = sf.neighbor_list(atoms)
    G = sf.compute(atoms, neighbor_list=nl, device='cuda')
    r = sf.vjp(np.ones_like(G), atoms, neighbor_list=nl, device='cuda')
    print(angular, G.shape, float(np.abs(r.forces).max()))
" 2>&1 | tee "$out/memcheck.log"
  [ "${PIPESTATUS[0]}" -eq 0 ] || status=1
else
  echo "compute-sanitizer not found; memcheck skipped" | tee "$out/memcheck.log"
fi

echo "== 3. benchmarks/bench_cuda.py"
$py "$here/bench_cuda.py" --output "$out/cuda.md" 2>&1 | tee "$out/bench_cuda.log"
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1
if [ -f "$out/cuda.md" ]; then
  { echo; echo "Checks on the same machine (benchmarks/run_gpu_checks.sh):"
    echo "- tests/test_cuda.py: $(tail -n 1 "$out/test_cuda.log")"
    echo "- compute-sanitizer memcheck (values and VJP, G4 and G5): $(grep -h 'ERROR SUMMARY' "$out/memcheck.log" || echo 'not run')"
  } >> "$out/cuda.md"
fi
echo "== status $status"
exit $status
