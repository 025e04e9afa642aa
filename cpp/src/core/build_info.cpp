#include <sstream>
#include <string>

#include "atomforge/build_info.hpp"
#include "atomforge/descriptor.hpp"
#include "atomforge/model.hpp"

#ifdef ATOMFORGE_HAVE_OPENMP
#include <omp.h>
#endif

namespace atomforge {

#ifndef ATOMFORGE_HAVE_CUDA
int cuda_device_count() { return 0; }
bool built_with_cuda() { return false; }
#else
bool built_with_cuda() { return true; }
#endif

std::string build_info() {
  std::ostringstream s;
  s << "atomforge core: C++" << __cplusplus / 100 % 100;
#ifdef ATOMFORGE_HAVE_OPENMP
  s << ", OpenMP " << _OPENMP << " (max threads " << omp_get_max_threads() << ")";
#else
  s << ", no OpenMP";
#endif
  // the instruction set the kernels were compiled for (benchmark tables name it)
#if defined(__AVX512F__)
  s << ", SIMD AVX-512";
#elif defined(__AVX2__)
  s << ", SIMD AVX2";
#else
  s << ", SIMD baseline";
#endif
#if defined(ATOMFORGE_PREFER_512) && defined(__AVX512F__)
  s << " (512-bit vectors)";
#endif
#ifdef ATOMFORGE_HAVE_CUDA
  s << ", CUDA built (" << cuda_device_count() << " device(s) visible)";
#else
  s << ", no CUDA";
#endif
  s << "; descriptors:";
  for (const auto& t : descriptor_types()) s << " " << t.name;
  s << "; models:";
  for (const auto& t : model_types()) s << " " << t.name;
  return s.str();
}

}  // namespace atomforge
