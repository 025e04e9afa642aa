// atomforge core: portability macros for single-source kernels.
//
// Per-centre kernels (descriptor stages, network evaluation) are written once and compiled both
// by the host compiler (the CPU drivers, the reference) and by nvcc (the CUDA launchers).
// Such functions are marked AF_HD and follow three rules: no exceptions, no allocation, no std
// containers; they work on flat arrays and report problems through return values or flags.
#pragma once

#if defined(__CUDACC__)
#define AF_HD __host__ __device__
#define AF_INLINE __host__ __device__ __forceinline__
#define AF_LANE_INLINE __host__ __device__ __forceinline__
// OpenMP SIMD hints mean nothing on a GPU thread.
#define AF_SIMD
#else
#define AF_HD
#define AF_INLINE inline
// For scalar functions called inside AF_SIMD lane loops (simd::exp, the angular factor, ...):
// always inlined. A call the compiler leaves out of line keeps the whole loop scalar; GCC's
// inlining heuristics did that to simd::exp after an unrelated edit of the ACSF kernel (1.30x
// slower, benchmarks/results/bench_ab.md). tests/test_vectorisation.py checks that the built core
// has no out-of-line copy of these functions.
#if defined(__GNUC__) || defined(__clang__)
#define AF_LANE_INLINE inline __attribute__((always_inline))
#else
#define AF_LANE_INLINE inline
#endif
// Marks a loop over independent lanes for vectorisation (OpenMP SIMD; needs -fopenmp or
// -fopenmp-simd, otherwise ignored). Never used on reductions, which keep their serial order.
// Besides permitting vectorisation it stops GCC from fully unrolling the short fixed-width lane
// loops before the loop vectoriser runs (which otherwise leaves parts of them scalar).
#define AF_SIMD _Pragma("omp simd")
#endif

#if defined(__CUDA_ARCH__)
#define AF_DEVICE_PASS 1
#else
#define AF_DEVICE_PASS 0
#endif
