// Cell-list neighbour search for molecules and periodic (general triclinic) cells.
#include "atomforge/neighbor_list.hpp"

#include <algorithm>
#include <cmath>
#include <exception>
#include <sstream>

#include "atomforge/errors.hpp"
#include "common/threads.hpp"

namespace atomforge {
namespace {

using Vec3 = std::array<double, 3>;
using Mat3 = std::array<Vec3, 3>;

Vec3 cross(const Vec3& a, const Vec3& b) {
  return {a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]};
}
double dot(const Vec3& a, const Vec3& b) { return a[0] * b[0] + a[1] * b[1] + a[2] * b[2]; }
double norm(const Vec3& a) { return std::sqrt(dot(a, a)); }

// Basis whose periodic rows are the lattice vectors and whose non-periodic rows are replaced by
// orthonormal directions perpendicular to the periodic ones (so fractional coordinates exist).
Mat3 periodic_basis(const double* cell, const std::array<bool, 3>& pbc) {
  Mat3 m{};
  int n_periodic = 0;
  for (int d = 0; d < 3; ++d) {
    for (int k = 0; k < 3; ++k) m[d][k] = cell[3 * d + k];
    if (pbc[d]) {
      ++n_periodic;
      const double len = norm(m[d]);
      if (!(len > 0.0) || !std::isfinite(len)) {
        std::ostringstream s;
        s << "degenerate cell: lattice vector " << "abc"[d] << " = (" << m[d][0] << ", " << m[d][1]
          << ", " << m[d][2] << ") has zero length but the system is periodic along it";
        throw InvalidInput(s.str());
      }
    }
  }
  if (n_periodic == 2) {
    int np = 0;
    for (int d = 0; d < 3; ++d) np = pbc[d] ? np : d;
    const Vec3 n = cross(m[(np + 1) % 3], m[(np + 2) % 3]);
    const double len = norm(n);
    if (len <= 1e-12 * norm(m[(np + 1) % 3]) * norm(m[(np + 2) % 3])) {
      throw InvalidInput("degenerate cell: the two periodic lattice vectors are parallel");
    }
    m[np] = {n[0] / len, n[1] / len, n[2] / len};
  } else if (n_periodic == 1) {
    int p = 0;
    for (int d = 0; d < 3; ++d) p = pbc[d] ? d : p;
    const Vec3 a = m[p];
    const double la = norm(a);
    Vec3 trial = std::fabs(a[0]) < 0.9 * la ? Vec3{1, 0, 0} : Vec3{0, 1, 0};
    Vec3 u = cross(a, trial);
    double lu = norm(u);
    u = {u[0] / lu, u[1] / lu, u[2] / lu};
    Vec3 v = cross(a, u);
    double lv = norm(v);
    v = {v[0] / lv, v[1] / lv, v[2] / lv};
    m[(p + 1) % 3] = u;
    m[(p + 2) % 3] = v;
  }
  const double vol = dot(m[0], cross(m[1], m[2]));
  const double scale = norm(m[0]) * norm(m[1]) * norm(m[2]);
  if (!(std::fabs(vol) > 1e-10 * scale)) {
    throw InvalidInput("degenerate cell: the lattice vectors are linearly dependent (volume " +
                       std::to_string(vol) + " A^3)");
  }
  return m;
}

Mat3 inverse(const Mat3& m) {
  const double det = dot(m[0], cross(m[1], m[2]));
  // rows of m are vectors; we need M^{-1} such that s = r M^{-1} (r, s row vectors).
  // M^{-1} = adj(M)/det; columns of M^{-1} are cross products of rows / det.
  const Vec3 c0 = cross(m[1], m[2]), c1 = cross(m[2], m[0]), c2 = cross(m[0], m[1]);
  Mat3 inv{};
  for (int k = 0; k < 3; ++k) {
    inv[k][0] = c0[k] / det;
    inv[k][1] = c1[k] / det;
    inv[k][2] = c2[k] / det;
  }
  return inv;
}

}  // namespace

void NeighborList::set_species(const int32_t* local_species) {
  species.resize(owner.size());
  for (int64_t i = 0; i < n_local; ++i) {
    if (local_species[i] < 0) {
      throw InvalidInput("species index of atom " + std::to_string(i) + " is negative");
    }
  }
  for (size_t p = 0; p < owner.size(); ++p) species[p] = local_species[owner[p]];
}

NeighborView NeighborList::view() const {
  NeighborView v;
  v.min_distance = min_distance;
  v.positions = positions.data();
  v.species = species.empty() ? nullptr : species.data();
  v.n_total = n_total();
  v.centres = nullptr;
  v.n_centres = n_local;
  v.offsets = offsets.data();
  v.neighbors = neighbors.data();
  return v;
}

std::vector<double> NeighborList::fold(const double* per_position) const {
  std::vector<double> out(static_cast<size_t>(3 * n_local), 0.0);
  const int64_t nt = n_total();
  for (int64_t p = 0; p < nt; ++p) {
    const int64_t o = owner[p];
    for (int k = 0; k < 3; ++k) out[3 * o + k] += per_position[3 * p + k];
  }
  return out;
}

NeighborList build_neighbor_list(const double* positions, int64_t n, const double* cell,
                                 const std::array<bool, 3>& pbc, double cutoff, double min_distance,
                                 int n_threads) {
  if (n < 0) throw InvalidInput("number of atoms is negative");
  if (!(cutoff > 0.0) || !std::isfinite(cutoff)) {
    std::ostringstream s;
    s << "cutoff radius r_c must be positive and finite, got " << cutoff;
    throw InvalidInput(s.str());
  }
  if (!(min_distance >= 0.0) || !std::isfinite(min_distance)) {
    std::ostringstream s;
    s << "min_distance must be >= 0 and finite, got " << min_distance;
    throw InvalidInput(s.str());
  }
  const int nt_omp = resolve_threads(n_threads);
  for (int64_t i = 0; i < n; ++i) {
    for (int k = 0; k < 3; ++k) {
      if (!std::isfinite(positions[3 * i + k])) {
        throw InvalidInput("position of atom " + std::to_string(i) + " is not finite (NaN or inf)");
      }
    }
  }
  const bool any_pbc = pbc[0] || pbc[1] || pbc[2];
  if (any_pbc) {
    for (int k = 0; k < 9; ++k) {
      if (!std::isfinite(cell[k])) throw InvalidInput("cell has a non-finite (NaN or inf) entry");
    }
  }

  NeighborList nl;
  nl.n_local = n;
  nl.cutoff = cutoff;
  nl.min_distance = min_distance;
  nl.positions.assign(positions, positions + 3 * n);
  nl.owner.resize(n);
  nl.shift.assign(3 * n, 0);
  for (int64_t i = 0; i < n; ++i) nl.owner[i] = i;

  if (any_pbc && n > 0) {
    const Mat3 m = periodic_basis(cell, pbc);
    const Mat3 inv = inverse(m);
    const double vol = std::fabs(dot(m[0], cross(m[1], m[2])));
    std::array<double, 3> reach{};  // cutoff in fractional units along each periodic direction
    std::array<int, 3> nrep{};
    double n_images = 1.0;
    for (int d = 0; d < 3; ++d) {
      if (!pbc[d]) continue;
      const double height = vol / norm(cross(m[(d + 1) % 3], m[(d + 2) % 3]));
      reach[d] = cutoff / height;
      n_images *= (1.0 + 2.0 * reach[d]);
    }
    // Memory bound, before anything is sized by it (kMaxImagePositions; exact count below).
    auto too_many_images = [&](double count) {
      std::ostringstream s;
      s.precision(3);
      s << "the cutoff " << cutoff << " A is so large compared with the cell (" << n << " atom(s)) that "
        << count << " periodic images of atoms would be needed, more than the " << kMaxImagePositions
        << " a neighbour list may hold (about 64 bytes each); use a larger cell (a supercell) or a smaller cutoff";
      throw InvalidInput(s.str());
    };
    if (n_images * static_cast<double>(n) > 8.0 * static_cast<double>(kMaxImagePositions))
      too_many_images(n_images * static_cast<double>(n));
    for (int d = 0; d < 3; ++d) nrep[d] = pbc[d] ? static_cast<int>(std::ceil(reach[d])) : 0;
    // Fractional coordinates, wrapped into [0, 1) along periodic directions.
    std::vector<double> frac(3 * n);
    for (int64_t i = 0; i < n; ++i) {
      for (int d = 0; d < 3; ++d) {
        double s = 0.0;
        for (int k = 0; k < 3; ++k) s += positions[3 * i + k] * inv[k][d];
        if (pbc[d]) {
          s -= std::floor(s);
          if (s >= 1.0) s = 0.0;  // -1e-17 wraps to 1.0 in floating point
        }
        frac[3 * i + d] = s;
      }
      for (int k = 0; k < 3; ++k) {
        nl.positions[3 * i + k] =
            frac[3 * i] * m[0][k] + frac[3 * i + 1] * m[1][k] + frac[3 * i + 2] * m[2][k];
      }
    }
    // Exact number of images that lie within r_c of the cell (in every periodic direction).
    auto in_reach = [&](int64_t i, int d, int k) {
      const double s = frac[3 * i + d] + k;
      return (s >= -reach[d]) && (s < 1.0 + reach[d]);
    };
    double n_image_positions = 0.0;
    for (int64_t i = 0; i < n; ++i) {
      double per_atom = 1.0;
      for (int d = 0; d < 3; ++d) {
        if (!pbc[d]) continue;
        int count = 0;
        for (int k = -nrep[d]; k <= nrep[d]; ++k) count += in_reach(i, d, k) ? 1 : 0;
        per_atom *= count;
      }
      n_image_positions += per_atom - 1.0;
    }
    if (n_image_positions > static_cast<double>(kMaxImagePositions)) too_many_images(n_image_positions);
    const size_t n_reserve = static_cast<size_t>(n + n_image_positions);
    nl.owner.reserve(n_reserve);
    nl.positions.reserve(3 * n_reserve);
    nl.shift.reserve(3 * n_reserve);
    // Images that lie within r_c of the cell (in every periodic direction).
    for (int a = -nrep[0]; a <= nrep[0]; ++a) {
      for (int b = -nrep[1]; b <= nrep[1]; ++b) {
        for (int c = -nrep[2]; c <= nrep[2]; ++c) {
          if (a == 0 && b == 0 && c == 0) continue;
          const int sh[3] = {a, b, c};
          for (int64_t i = 0; i < n; ++i) {
            bool keep = true;
            for (int d = 0; d < 3 && keep; ++d) keep = !pbc[d] || in_reach(i, d, sh[d]);
            if (!keep) continue;
            nl.owner.push_back(i);
            for (int k = 0; k < 3; ++k) {
              nl.positions.push_back(nl.positions[3 * i + k] + a * m[0][k] + b * m[1][k] +
                                     c * m[2][k]);
              nl.shift.push_back(sh[k]);
            }
          }
        }
      }
    }
  }

  // Cell list over all positions (local + images): bins of side >= r_c, 27-bin stencil.
  const int64_t nt = nl.n_total();
  nl.offsets.assign(n + 1, 0);
  if (n == 0) return nl;
  const double* x = nl.positions.data();
  Vec3 lo{x[0], x[1], x[2]}, hi = lo;
  for (int64_t p = 0; p < nt; ++p) {
    for (int k = 0; k < 3; ++k) {
      lo[k] = std::min(lo[k], x[3 * p + k]);
      hi[k] = std::max(hi[k], x[3 * p + k]);
    }
  }
  std::array<int64_t, 3> nb{};
  double bin_size = cutoff;
  for (;;) {
    double total = 1.0;
    for (int k = 0; k < 3; ++k) {
      nb[k] = std::max<int64_t>(1, static_cast<int64_t>((hi[k] - lo[k]) / bin_size));
      total *= static_cast<double>(nb[k]);
    }
    if (total <= 4.0 * static_cast<double>(nt) + 64.0) break;
    bin_size *= 1.25;  // sparse system (e.g. far-apart molecules): coarser bins, bounded memory
  }
  std::array<double, 3> inv_bin{};
  for (int k = 0; k < 3; ++k) inv_bin[k] = nb[k] / std::max(hi[k] - lo[k], 1e-300);
  auto bin_coord = [&](int64_t p, int k) {
    int64_t b = static_cast<int64_t>((x[3 * p + k] - lo[k]) * inv_bin[k]);
    return std::min<int64_t>(std::max<int64_t>(b, 0), nb[k] - 1);
  };
  const int64_t n_bins = nb[0] * nb[1] * nb[2];
  std::vector<int64_t> bin_start(n_bins + 1, 0), bin_of(nt), sorted(nt);
  for (int64_t p = 0; p < nt; ++p) {
    bin_of[p] = (bin_coord(p, 0) * nb[1] + bin_coord(p, 1)) * nb[2] + bin_coord(p, 2);
    ++bin_start[bin_of[p] + 1];
  }
  for (int64_t b = 0; b < n_bins; ++b) bin_start[b + 1] += bin_start[b];
  {
    std::vector<int64_t> fill(bin_start.begin(), bin_start.end() - 1);
    for (int64_t p = 0; p < nt; ++p) sorted[fill[bin_of[p]]++] = p;
  }
  const double rc2 = cutoff * cutoff, md2 = min_distance * min_distance;
  // Visit the stencil of centre i, calling f(j) for every neighbour j; throws on overlaps.
  auto visit = [&](int64_t i, auto&& f) {
    const int64_t bi[3] = {bin_coord(i, 0), bin_coord(i, 1), bin_coord(i, 2)};
    for (int64_t a = std::max<int64_t>(bi[0] - 1, 0); a <= std::min(bi[0] + 1, nb[0] - 1); ++a)
      for (int64_t b = std::max<int64_t>(bi[1] - 1, 0); b <= std::min(bi[1] + 1, nb[1] - 1); ++b)
        for (int64_t c = std::max<int64_t>(bi[2] - 1, 0); c <= std::min(bi[2] + 1, nb[2] - 1);
             ++c) {
          const int64_t bin = (a * nb[1] + b) * nb[2] + c;
          for (int64_t q = bin_start[bin]; q < bin_start[bin + 1]; ++q) {
            const int64_t j = sorted[q];
            if (j == i) continue;
            const double dx = x[3 * j] - x[3 * i], dy = x[3 * j + 1] - x[3 * i + 1],
                         dz = x[3 * j + 2] - x[3 * i + 2];
            const double r2 = dx * dx + dy * dy + dz * dz;
            if (r2 >= rc2) continue;
            if (r2 < md2 || r2 == 0.0)
              throw AtomsTooClose(i, nl.owner[j], std::sqrt(r2), min_distance,
                                  {nl.shift[3 * j], nl.shift[3 * j + 1], nl.shift[3 * j + 2]});
            f(j);
          }
        }
  };
  // Pass 1: counts. Pass 2: fill. Exceptions inside OpenMP regions are captured and the one of
  // the lowest atom index is rethrown (the same error for every thread count).
  std::vector<int64_t> counts(n, 0);
  std::exception_ptr error;
  int64_t error_atom = n;
#pragma omp parallel for schedule(dynamic, 64) num_threads(nt_omp)
  for (int64_t i = 0; i < n; ++i) {
    try {
      int64_t c = 0;
      visit(i, [&](int64_t) { ++c; });
      counts[i] = c;
    } catch (...) {
#pragma omp critical(atomforge_nl_error)
      if (i < error_atom) {
        error_atom = i;
        error = std::current_exception();
      }
    }
  }
  if (error) std::rethrow_exception(error);
  for (int64_t i = 0; i < n; ++i) {
    if (counts[i] > kMaxNeighbors) {
      std::ostringstream s;
      s << "atom " << i << " has " << counts[i] << " neighbours within the cutoff " << cutoff
        << " A, more than the " << kMaxNeighbors << " a neighbour list accepts: the atoms are packed far denser "
        << "than any material, or the periodic cell is far smaller than the cutoff";
      throw InvalidInput(s.str());
    }
    nl.offsets[i + 1] = nl.offsets[i] + counts[i];
  }
  nl.neighbors.resize(nl.offsets[n]);
#pragma omp parallel for schedule(dynamic, 64) num_threads(nt_omp)
  for (int64_t i = 0; i < n; ++i) {
    int64_t* out = nl.neighbors.data() + nl.offsets[i];
    visit(i, [&](int64_t j) { *out++ = j; });
  }
  return nl;
}

}  // namespace atomforge
