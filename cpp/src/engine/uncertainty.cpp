#include "atomforge/uncertainty.hpp"

#include <cmath>
#include <string>

#include "atomforge/errors.hpp"
#include "atomforge/neighbor_list.hpp"

namespace atomforge {

void force_deviation(const double* mf, int M, int64_t n, int64_t stride, double scale, double* eps) {
  if (M < 1 || n < 0 || stride < 3 * n)
    throw InvalidInput("force_deviation: need M >= 1 members, n >= 0 atoms and a member stride >= 3 n (got M = " +
                       std::to_string(M) + ", n = " + std::to_string(n) + ", stride = " + std::to_string(stride) + ")");
  for (int64_t i = 0; i < n; ++i) {
    double mean[3] = {0.0, 0.0, 0.0};
    for (int m = 0; m < M; ++m)
      for (int k = 0; k < 3; ++k) mean[k] += mf[m * stride + 3 * i + k];
    for (int k = 0; k < 3; ++k) mean[k] /= M;
    double var = 0.0;
    for (int m = 0; m < M; ++m)
      for (int k = 0; k < 3; ++k) {
        const double d = mf[m * stride + 3 * i + k] - mean[k];
        var += d * d;
      }
    eps[i] = scale * std::sqrt(var / M);
  }
}

std::vector<double> fold_member_forces(const NeighborList& nl, const double* mf, int M) {
  const int64_t nt = nl.n_total(), n = nl.n_local;
  std::vector<double> out(static_cast<size_t>(M) * 3 * n, 0.0);
  for (int m = 0; m < M; ++m)
    for (int64_t p = 0; p < nt; ++p) {
      const int64_t o = nl.owner[p];
      for (int k = 0; k < 3; ++k) out[(m * n + o) * 3 + k] += mf[(m * nt + p) * 3 + k];
    }
  return out;
}

}  // namespace atomforge
