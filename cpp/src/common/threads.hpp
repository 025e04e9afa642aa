// Thread counts for the core's OpenMP regions (internal header).
//
// The core never changes global OpenMP state (no omp_set_num_threads): every parallel region
// states its thread count with num_threads(resolve_threads(n)), so concurrent callers (several
// Python threads, LAMMPS with OpenMP, OpenMM's CPU platform) cannot affect each other.
#pragma once

namespace atomforge {

/// Threads for a request of `requested`: <= 0 means the OpenMP default (omp_get_max_threads(),
/// which follows OMP_NUM_THREADS). The result is clamped to [1, max_threads()], so absurd
/// requests (100000) cannot exhaust the process. 1 without OpenMP.
int resolve_threads(int requested);

/// The most threads a parallel region may use: the processors OpenMP sees (omp_get_num_procs),
/// at least 1. Requests above it gain nothing on this machine.
int max_threads();

}  // namespace atomforge
