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
