#include "descriptors/common.hpp"

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "atomforge/descriptor.hpp"
#include "atomforge/errors.hpp"
#include "common/threads.hpp"

#ifdef ATOMFORGE_HAVE_OPENMP
#include <omp.h>
#endif

namespace atomforge {

int64_t max_neighbours(const NeighborView& nl) {
  int64_t m = 0;
  for (int64_t c = 0; c < nl.n_centres; ++c) m = std::max(m, nl.offsets[c + 1] - nl.offsets[c]);
  return m;
}

void throw_coincident(int64_t p) {
  throw InvalidInput("atom " + std::to_string(p) +
                     " has a neighbour at distance zero (two atoms at the same position)");
}

void check_finite_weights(const double* w, int64_t nc, int64_t nf) {
  for (int64_t k = 0; k < nc * nf; ++k)
    if (!std::isfinite(w[k]))
      throw InvalidInput("dE/dG of atom " + std::to_string(k / nf) + ", feature " + std::to_string(k % nf) +
                         " is not finite");
}

void Descriptor::evaluate(const NeighborView& nl, CentreModel& model, double* forces, double* virial,
                          double* per_atom_virial, int n_threads) const {
  const int64_t nc = nl.n_centres, nf = n_features();
  const int K = model.n_outputs();
  std::vector<double> G(nc * nf), w(static_cast<size_t>(K) * nc * nf, 0.0), wk;
  compute(nl, G.data(), n_threads);
  const int nt = resolve_threads(n_threads);
  const int B = std::min(model.block_size(), kMaxCentreBlock);
  const CentreBlocks blocks = B > 1 ? centre_blocks(nl, n_elements(), B) : CentreBlocks{};
  model.begin(nt);
#pragma omp parallel num_threads(nt)
  {
    int tid = 0;
#ifdef ATOMFORGE_HAVE_OPENMP
    tid = omp_get_thread_num();
#endif
    if (B <= 1) {
#pragma omp for schedule(static)
      for (int64_t c = 0; c < nc; ++c) model.centre(tid, c, nl.species[nl.centre(c)], &G[c * nf], &w[c * K * nf]);
    } else {
#pragma omp for schedule(dynamic, 1)
      for (int64_t b = 0; b < static_cast<int64_t>(blocks.starts.size()) - 1; ++b) {
        const int64_t q0 = blocks.starts[b];
        const int n = static_cast<int>(blocks.starts[b + 1] - q0);
        const int64_t* cs = &blocks.order[q0];
        const double* gr[kMaxCentreBlock];
        double* wr[kMaxCentreBlock];
        for (int q = 0; q < n; ++q) {
          gr[q] = &G[cs[q] * nf];
          wr[q] = &w[cs[q] * K * nf];
        }
        model.centres(tid, n, cs, nl.species[nl.centre(cs[0])], gr, wr);
      }
    }
  }
  if (!forces) return;
  double W[9];
  for (int o = 0; o < K; ++o) {  // rows of output o: (n_centres, n_features)
    wk.resize(nc * nf);
    for (int64_t c = 0; c < nc; ++c) std::copy(&w[(c * K + o) * nf], &w[(c * K + o + 1) * nf], &wk[c * nf]);
    vjp(nl, wk.data(), forces + 3 * nl.n_total * o, virial ? virial + 9 * o : W, o == 0 ? per_atom_virial : nullptr,
        n_threads);
  }
}

CentreBlocks centre_blocks(const NeighborView& nl, int32_t n_elements, int block_size) {
  const int64_t nc = nl.n_centres;
  const int64_t B = std::max(block_size, 1);
  std::vector<int64_t> count(n_elements + 1, 0);
  for (int64_t c = 0; c < nc; ++c) ++count[nl.species[nl.centre(c)] + 1];
  for (int32_t e = 0; e < n_elements; ++e) count[e + 1] += count[e];
  CentreBlocks b;
  b.order.resize(nc);
  std::vector<int64_t> next(count.begin(), count.end() - 1);
  for (int64_t c = 0; c < nc; ++c) b.order[next[nl.species[nl.centre(c)]]++] = c;
  b.starts.push_back(0);
  for (int32_t e = 0; e < n_elements; ++e)
    for (int64_t q = count[e]; q < count[e + 1]; q = std::min(q + B, count[e + 1])) b.starts.push_back(std::min(q + B, count[e + 1]));
  return b;
}

void Descriptor::compute_cuda(const NeighborView&, double*, int64_t) const {
  throw InvalidInput("descriptor type '" + type() + "' has no CUDA launcher in this build");
}

void Descriptor::vjp_cuda(const NeighborView&, const double*, double*, double*, int64_t) const {
  throw InvalidInput("descriptor type '" + type() + "' has no CUDA launcher in this build");
}

void validate_neighbor_view(const NeighborView& nl, int32_t n_elements) {
  if (nl.n_centres < 0 || nl.n_total < 0) throw InvalidInput("negative atom count");
  if (nl.n_centres == 0) return;
  if (!nl.positions || !nl.species || !nl.offsets || (!nl.neighbors && nl.offsets[nl.n_centres] > 0))
    throw InvalidInput("neighbour list has a null array");
  for (int64_t p = 0; p < nl.n_total; ++p) {
    if (nl.species[p] < 0 || nl.species[p] >= n_elements) {
      throw InvalidInput("atom " + std::to_string(p) + " has element index " + std::to_string(nl.species[p]) +
                         ", outside the descriptor's " + std::to_string(n_elements) + " elements");
    }
    for (int k = 0; k < 3; ++k)
      if (!std::isfinite(nl.positions[3 * p + k]))
        throw InvalidInput("position of atom " + std::to_string(p) + " is not finite (NaN or inf)");
  }
  if (nl.offsets[0] != 0) throw InvalidInput("neighbour list offsets must start at 0");
  if (!(nl.min_distance >= 0.0) || !std::isfinite(nl.min_distance))
    throw InvalidInput("min_distance must be >= 0 and finite, got " + std::to_string(nl.min_distance));
  // Every listed pair at least min_distance apart (the lists of MD engines hold local and ghost
  // atoms, so this covers periodic images too). O(n_pairs), cheap next to the kernels.
  const double md2 = nl.min_distance * nl.min_distance;
  const double* x = nl.positions;
  for (int64_t c = 0; c < nl.n_centres; ++c) {
    const int64_t i = nl.centre(c);
    if (i < 0 || i >= nl.n_total) throw InvalidInput("centre " + std::to_string(c) + " out of range");
    if (nl.offsets[c + 1] < nl.offsets[c]) throw InvalidInput("neighbour list offsets decrease");
    if (nl.offsets[c + 1] - nl.offsets[c] > kMaxNeighbors)
      throw InvalidInput("atom " + std::to_string(i) + " has " + std::to_string(nl.offsets[c + 1] - nl.offsets[c]) +
                         " neighbours in the list, more than the " + std::to_string(kMaxNeighbors) +
                         " the core accepts: the atoms are packed far denser than any material");
    for (int64_t q = nl.offsets[c]; q < nl.offsets[c + 1]; ++q) {
      const int64_t j = nl.neighbors[q];
      if (j < 0 || j >= nl.n_total)
        throw InvalidInput("neighbour index " + std::to_string(j) + " of centre " + std::to_string(c) + " out of range");
      if (j == i) throw InvalidInput("centre " + std::to_string(c) + " lists itself as a neighbour");
      const double dx = x[3 * j] - x[3 * i], dy = x[3 * j + 1] - x[3 * i + 1], dz = x[3 * j + 2] - x[3 * i + 2];
      const double r2 = dx * dx + dy * dy + dz * dz;
      if (r2 < md2 || r2 == 0.0) throw AtomsTooClose(i, j, std::sqrt(r2), nl.min_distance);
    }
  }
}

DescriptorJacobian allocate_jacobian(const NeighborView& nl, int64_t nf, const double* rc_by_element) {
  const int64_t nc = nl.n_centres;
  DescriptorJacobian jac;
  jac.n_features = nf;
  jac.entry_offsets.assign(nc + 1, 0);
  for (int64_t c = 0; c < nc; ++c) {
    const int64_t i = nl.centre(c);
    const double rc = rc_by_element[nl.species[i]];
    int64_t cnt = 1;
    for (int64_t q = nl.offsets[c]; q < nl.offsets[c + 1]; ++q) {
      const int64_t j = nl.neighbors[q];
      double r2 = 0.0;
      for (int k = 0; k < 3; ++k) {
        const double dk = nl.positions[3 * j + k] - nl.positions[3 * i + k];
        r2 += dk * dk;
      }
      cnt += (r2 < rc * rc && r2 > 0.0);
    }
    jac.entry_offsets[c + 1] = jac.entry_offsets[c] + cnt;
  }
  const int64_t ne = jac.entry_offsets[nc];
  jac.position.assign(ne, 0);
  jac.displacement.assign(3 * ne, 0.0);
  jac.values.assign(ne * nf * 3, 0.0);
  return jac;
}

void scatter_pair_gradients(const NeighborView& nl, const double* pair_grad, double* forces, double* virial,
                            double* per_atom_virial) {
  std::fill(forces, forces + 3 * nl.n_total, 0.0);
  std::fill(virial, virial + 9, 0.0);
  const double* x = nl.positions;
  if (per_atom_virial) {
    std::fill(per_atom_virial, per_atom_virial + 9 * nl.n_total, 0.0);
    for (int64_t c = 0; c < nl.n_centres; ++c) {
      const int64_t i = nl.centre(c);
      for (int64_t q = nl.offsets[c]; q < nl.offsets[c + 1]; ++q) {
        const double* g = &pair_grad[3 * q];
        if (g[0] == 0.0 && g[1] == 0.0 && g[2] == 0.0) continue;
        const int64_t j = nl.neighbors[q];
        double d[3];
        for (int k = 0; k < 3; ++k) {
          d[k] = x[3 * j + k] - x[3 * i + k];
          forces[3 * j + k] -= g[k];
          forces[3 * i + k] += g[k];
        }
        for (int a = 0; a < 3; ++a)
          for (int b = 0; b < 3; ++b) {
            const double v = -d[a] * g[b];
            virial[3 * a + b] += v;
            per_atom_virial[9 * i + 3 * a + b] += 0.5 * v;
            per_atom_virial[9 * j + 3 * a + b] += 0.5 * v;
          }
      }
    }
    return;
  }
  // The MD path. The centre's force and the virial stay in registers across the centre's pairs;
  // the additions happen in the same order as in the loop above (a neighbour that is the centre
  // itself updates the register), so the forces are the same to the last bit; the virial's
  // products may fuse into FMAs here (1e-16 relative). The compiler cannot keep them in registers
  // on its own: forces[3 * j] may alias forces[3 * i] and the virial. 2.0-2.4x faster alone
  // (benchmarks/bench_scatter.py).
  double w[9] = {0, 0, 0, 0, 0, 0, 0, 0, 0};
  for (int64_t c = 0; c < nl.n_centres; ++c) {
    const int64_t i = nl.centre(c);
    const double xi[3] = {x[3 * i], x[3 * i + 1], x[3 * i + 2]};
    double fi[3] = {forces[3 * i], forces[3 * i + 1], forces[3 * i + 2]};
    for (int64_t q = nl.offsets[c]; q < nl.offsets[c + 1]; ++q) {
      const double g[3] = {pair_grad[3 * q], pair_grad[3 * q + 1], pair_grad[3 * q + 2]};
      if (g[0] == 0.0 && g[1] == 0.0 && g[2] == 0.0) continue;
      const int64_t j = nl.neighbors[q];
      const double d[3] = {x[3 * j] - xi[0], x[3 * j + 1] - xi[1], x[3 * j + 2] - xi[2]};
      if (j == i) {
        for (int k = 0; k < 3; ++k) fi[k] -= g[k];
      } else {
        for (int k = 0; k < 3; ++k) forces[3 * j + k] -= g[k];
      }
      for (int k = 0; k < 3; ++k) fi[k] += g[k];
      for (int a = 0; a < 3; ++a)
        for (int b = 0; b < 3; ++b) w[3 * a + b] += -d[a] * g[b];
    }
    for (int k = 0; k < 3; ++k) forces[3 * i + k] = fi[k];
  }
  for (int k = 0; k < 9; ++k) virial[k] = w[k];
}

}  // namespace atomforge
