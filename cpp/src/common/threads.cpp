#include "common/threads.hpp"

#include <algorithm>
#include <thread>

#ifdef ATOMFORGE_HAVE_OPENMP
#include <omp.h>
#endif

namespace atomforge {

int max_threads() {
#ifdef ATOMFORGE_HAVE_OPENMP
  return std::max(1, omp_get_num_procs());
#else
  return 1;
#endif
}

int resolve_threads(int requested) {
#ifdef ATOMFORGE_HAVE_OPENMP
  const int want = requested > 0 ? requested : omp_get_max_threads();
  return std::max(1, std::min(want, max_threads()));
#else
  (void)requested;
  return 1;
#endif
}

}  // namespace atomforge
