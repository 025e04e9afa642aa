// Ewald summation and open-boundary Coulomb sums of point or Gaussian charges (formulas and
// sources: ewald.hpp).
#include "electrostatics/ewald.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <sstream>
#include <string>

#include "atomforge/errors.hpp"
#include "atomforge/units.hpp"
#include "common/threads.hpp"

namespace atomforge {
namespace {

constexpr double kPi = 3.14159265358979323846;
constexpr double kTwoOverSqrtPi = 1.12837916709551257390;  // 2 / sqrt(pi)

using Vec3 = std::array<double, 3>;

Vec3 cross(const Vec3& a, const Vec3& b) {
  return {a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]};
}
double dot(const Vec3& a, const Vec3& b) { return a[0] * b[0] + a[1] * b[1] + a[2] * b[2]; }
double norm(const Vec3& a) { return std::sqrt(dot(a, a)); }

std::string num(double x) {
  std::ostringstream s;
  s.precision(17);
  s << x;
  return s.str();
}

// Lattice vectors (rows) and volume; throws for a non-finite or singular cell.
struct Cell {
  Vec3 a[3];
  Vec3 b[3];  // reciprocal vectors without 2 pi: a_i . b_j = delta_ij
  double volume = 0.0;
};

Cell make_cell(const double* cell) {
  if (cell == nullptr) throw InvalidInput("electrostatics: a periodic system needs a cell");
  Cell c;
  for (int d = 0; d < 3; ++d) {
    for (int k = 0; k < 3; ++k) {
      c.a[d][k] = cell[3 * d + k];
      if (!std::isfinite(cell[3 * d + k])) {
        throw InvalidInput("electrostatics: the cell has a non-finite entry (row " + std::to_string(d) +
                           ", column " + std::to_string(k) + ")");
      }
    }
  }
  const double det = dot(c.a[0], cross(c.a[1], c.a[2]));
  const double scale = norm(c.a[0]) * norm(c.a[1]) * norm(c.a[2]);
  if (!(std::fabs(det) > 1e-10 * scale) || !(scale > 0.0)) {
    throw InvalidInput("electrostatics: the cell is singular (volume " + num(det) +
                       " A^3): its lattice vectors are zero or linearly dependent");
  }
  c.volume = std::fabs(det);
  const Vec3 c0 = cross(c.a[1], c.a[2]), c1 = cross(c.a[2], c.a[0]), c2 = cross(c.a[0], c.a[1]);
  for (int k = 0; k < 3; ++k) {
    c.b[0][k] = c0[k] / det;
    c.b[1][k] = c1[k] / det;
    c.b[2][k] = c2[k] / det;
  }
  return c;
}

void check_options(const EwaldOptions& o) {
  if (!std::isfinite(o.alpha)) throw InvalidInput("electrostatics: alpha must be finite (got " + num(o.alpha) + ")");
  if (!(o.min_distance >= 0.0) || !std::isfinite(o.min_distance)) {
    throw InvalidInput("electrostatics: min_distance must be >= 0 and finite (got " + num(o.min_distance) + ")");
  }
}

// Half-space k vector and its weights.
struct KVec {
  int h, k, l;
  double kx, ky, kz;
  double a;   // exp(-k^2/(4 alpha^2)) / k^2
  double w;   // 1 + k^2/(4 alpha^2) ... times 2/k^2, for the virial
};

std::vector<KVec> kvectors(const Cell& c, const EwaldParameters& p) {
  std::vector<KVec> out;
  const double kc2 = p.k_cut * p.k_cut;
  const double inv4a2 = 1.0 / (4.0 * p.alpha * p.alpha);
  for (int h = 0; h <= p.kmax[0]; ++h) {
    for (int k = -p.kmax[1]; k <= p.kmax[1]; ++k) {
      for (int l = -p.kmax[2]; l <= p.kmax[2]; ++l) {
        if (h == 0 && (k < 0 || (k == 0 && l <= 0))) continue;  // half space, k != 0
        Vec3 kv;
        for (int d = 0; d < 3; ++d) kv[d] = 2.0 * kPi * (h * c.b[0][d] + k * c.b[1][d] + l * c.b[2][d]);
        const double k2 = dot(kv, kv);
        if (k2 > kc2) continue;
        KVec v;
        v.h = h;
        v.k = k;
        v.l = l;
        v.kx = kv[0];
        v.ky = kv[1];
        v.kz = kv[2];
        v.a = std::exp(-k2 * inv4a2) / k2;
        v.w = 2.0 * (1.0 + k2 * inv4a2) / k2;
        out.push_back(v);
      }
    }
  }
  return out;
}

// Real-space kernel of the periodic sum, g(r) = [erfc(alpha r) - erfc(r/gamma)] / r, and g'(r)
// (gamma = 0: point charges, erfc(r/0) = 0).
inline void kernel(double r, double alpha, double gamma, double& g, double& dg) {
  const double inv_r = 1.0 / r;
  double e = std::erfc(alpha * r);
  double de = -kTwoOverSqrtPi * alpha * std::exp(-alpha * alpha * r * r);
  if (gamma > 0.0) {
    const double x = r / gamma;
    e -= std::erfc(x);
    de += kTwoOverSqrtPi / gamma * std::exp(-x * x);
  }
  g = e * inv_r;
  dg = (de - g) * inv_r;
}

// Open-boundary kernel, Eq. (1): g(r) = erf(r/gamma)/r (1/r for gamma = 0), and g'(r).
inline void open_kernel(double r, double gamma, double& g, double& dg) {
  const double inv_r = 1.0 / r;
  double e = 1.0, de = 0.0;
  if (gamma > 0.0) {
    const double x = r / gamma;
    e = std::erf(x);
    de = kTwoOverSqrtPi / gamma * std::exp(-x * x);
  }
  g = e * inv_r;
  dg = (de - g) * inv_r;
}

void check_inputs(const double* positions, const double* charges, const double* sigma, int64_t n) {
  if (n < 0) throw InvalidInput("electrostatics: negative number of atoms (" + std::to_string(n) + ")");
  if (n > 0 && (positions == nullptr || charges == nullptr)) {
    throw InvalidInput("electrostatics: positions and charges are required");
  }
  for (int64_t i = 0; i < n; ++i) {
    for (int d = 0; d < 3; ++d) {
      if (!std::isfinite(positions[3 * i + d])) {
        throw InvalidInput("electrostatics: the position of atom " + std::to_string(i) + " is not finite");
      }
    }
    if (!std::isfinite(charges[i])) {
      throw InvalidInput("electrostatics: the charge of atom " + std::to_string(i) + " is not finite (" +
                         num(charges[i]) + ")");
    }
    if (sigma != nullptr && !(sigma[i] >= 0.0 && std::isfinite(sigma[i]))) {
      throw InvalidInput("electrostatics: the Gaussian width sigma of atom " + std::to_string(i) +
                         " must be >= 0 and finite (got " + num(sigma[i]) + ")");
    }
  }
}

inline double gamma_of(const double* sigma, int64_t i, int64_t j) {
  if (sigma == nullptr) return 0.0;
  return std::sqrt(2.0 * (sigma[i] * sigma[i] + sigma[j] * sigma[j]));
}

// Open boundaries: direct sum over all pairs, Eq. (1). Each atom sums over all others (full
// loops), so no thread writes another atom's entries; totals are summed serially.
void open_sum(const double* x, const double* q, const double* sigma, int64_t n, const EwaldOptions& o,
              ElectrostaticsResult& res) {
  const int nt = resolve_threads(o.n_threads);
  std::vector<double> wa(9 * n, 0.0);
  // closest pair below min_distance (reported after the region, lowest i first)
  std::vector<int64_t> bad_j(n, -1);
  std::vector<double> bad_r(n, 0.0);
  const double dmin = o.min_distance;
#pragma omp parallel for num_threads(nt) schedule(dynamic, 16)
  for (int64_t i = 0; i < n; ++i) {
    double phi = 0.0, f[3] = {0, 0, 0}, w[9] = {0};
    for (int64_t j = 0; j < n; ++j) {
      if (j == i) continue;
      const double d[3] = {x[3 * j] - x[3 * i], x[3 * j + 1] - x[3 * i + 1], x[3 * j + 2] - x[3 * i + 2]};
      const double r = std::sqrt(d[0] * d[0] + d[1] * d[1] + d[2] * d[2]);
      if (!(r > 0.0) || r < dmin) {
        if (bad_j[i] < 0) {
          bad_j[i] = j;
          bad_r[i] = r;
        }
        continue;
      }
      double g, dg;
      open_kernel(r, gamma_of(sigma, i, j), g, dg);
      phi += q[j] * g;
      const double c = q[i] * q[j] * dg / r;  // dE/dd = c d, d = r_j - r_i
      for (int a = 0; a < 3; ++a) {
        f[a] += c * d[a];
        for (int b = 0; b < 3; ++b) w[3 * a + b] -= 0.5 * c * d[a] * d[b];
      }
    }
    res.potential[i] = phi;
    for (int a = 0; a < 3; ++a) res.forces[3 * i + a] = f[a];
    for (int k = 0; k < 9; ++k) wa[9 * i + k] = w[k];
  }
  for (int64_t i = 0; i < n; ++i) {
    if (bad_j[i] >= 0) throw AtomsTooClose(i, bad_j[i], bad_r[i], dmin);
  }
  double e = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    e += 0.5 * q[i] * res.potential[i];
    for (int k = 0; k < 9; ++k) res.virial[k] += wa[9 * i + k];
  }
  res.energy_real = e;
}

// Periodic real-space sum over the core's neighbour list (full list, images of the atom itself
// included).
void real_sum(const double* x, const double* q, const double* sigma, int64_t n, const Cell& c, double alpha,
              double r_cut, const EwaldOptions& o, ElectrostaticsResult& res) {
  double cell[9];
  for (int d = 0; d < 3; ++d)
    for (int k = 0; k < 3; ++k) cell[3 * d + k] = c.a[d][k];
  const NeighborList nl = build_neighbor_list(x, n, cell, {true, true, true}, r_cut, o.min_distance, o.n_threads);
  const int nt = resolve_threads(o.n_threads);
  std::vector<double> wa(9 * n, 0.0);
  const double* p = nl.positions.data();
#pragma omp parallel for num_threads(nt) schedule(dynamic, 16)
  for (int64_t i = 0; i < n; ++i) {
    double phi = 0.0, f[3] = {0, 0, 0}, w[9] = {0};
    for (int64_t m = nl.offsets[i]; m < nl.offsets[i + 1]; ++m) {
      const int64_t pj = nl.neighbors[m];
      const int64_t j = nl.owner[pj];
      const double d[3] = {p[3 * pj] - p[3 * i], p[3 * pj + 1] - p[3 * i + 1], p[3 * pj + 2] - p[3 * i + 2]};
      const double r = std::sqrt(d[0] * d[0] + d[1] * d[1] + d[2] * d[2]);
      if (r >= r_cut) continue;
      double g, dg;
      kernel(r, alpha, gamma_of(sigma, i, j), g, dg);
      phi += q[j] * g;
      const double cc = q[i] * q[j] * dg / r;
      for (int a = 0; a < 3; ++a) {
        f[a] += cc * d[a];
        for (int b = 0; b < 3; ++b) w[3 * a + b] -= 0.5 * cc * d[a] * d[b];
      }
    }
    res.potential[i] = phi;
    for (int a = 0; a < 3; ++a) res.forces[3 * i + a] = f[a];
    for (int k = 0; k < 9; ++k) wa[9 * i + k] = w[k];
  }
  double e = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    e += 0.5 * q[i] * res.potential[i];
    for (int k = 0; k < 9; ++k) res.virial[k] += wa[9 * i + k];
  }
  res.energy_real = e;
}

// Reciprocal-space sum over half-space k vectors (k and -k give equal terms: factor 2).
// exp(i k . r_j) = E0[h][j] E1[k][j] E2[l][j] from per-direction tables of cos/sin(m theta_d),
// theta_d = 2 pi b_d . r_j. Pass 1: structure factors, parallel over k; pass 2: potentials and
// forces, parallel over blocks of atoms with the k loop outside. Energy and virial are summed over
// k serially.
void reciprocal_sum(const double* x, const double* q, int64_t n, const Cell& c, const EwaldParameters& prm,
                    const std::vector<KVec>& kv, const EwaldOptions& o, ElectrostaticsResult& res) {
  const int nt = resolve_threads(o.n_threads);
  const int H = prm.kmax[0], K = prm.kmax[1], L = prm.kmax[2];
  const int64_t rows[3] = {H + 1, 2 * K + 1, 2 * L + 1};
  const int off[3] = {0, K, L};
  if (static_cast<double>(n) * static_cast<double>(rows[0] + rows[1] + rows[2]) >
      static_cast<double>(kEwaldMaxTableEntries)) {
    throw InvalidInput("electrostatics: the reciprocal-space tables would need " + std::to_string(n) + " atoms x " +
                       std::to_string(rows[0] + rows[1] + rows[2]) + " rows, more than " +
                       std::to_string(kEwaldMaxTableEntries) + " entries: raise alpha or lower the accuracy");
  }
  std::vector<double> tc[3], ts[3];
  for (int d = 0; d < 3; ++d) {
    tc[d].assign(rows[d] * n, 0.0);
    ts[d].assign(rows[d] * n, 0.0);
  }
#pragma omp parallel for num_threads(nt) schedule(static)
  for (int64_t j = 0; j < n; ++j) {
    for (int d = 0; d < 3; ++d) {
      const double th = 2.0 * kPi * (c.b[d][0] * x[3 * j] + c.b[d][1] * x[3 * j + 1] + c.b[d][2] * x[3 * j + 2]);
      for (int64_t m = 0; m < rows[d]; ++m) {
        const double mm = static_cast<double>(m - off[d]);
        tc[d][m * n + j] = std::cos(mm * th);
        ts[d][m * n + j] = std::sin(mm * th);
      }
    }
  }
  const int64_t nk = static_cast<int64_t>(kv.size());
  std::vector<double> sc(nk), ss(nk);
#pragma omp parallel for num_threads(nt) schedule(dynamic, 8)
  for (int64_t t = 0; t < nk; ++t) {
    const double* c0 = &tc[0][(kv[t].h + off[0]) * n];
    const double* s0 = &ts[0][(kv[t].h + off[0]) * n];
    const double* c1 = &tc[1][(kv[t].k + off[1]) * n];
    const double* s1 = &ts[1][(kv[t].k + off[1]) * n];
    const double* c2 = &tc[2][(kv[t].l + off[2]) * n];
    const double* s2 = &ts[2][(kv[t].l + off[2]) * n];
    double C = 0.0, S = 0.0;
#pragma omp simd reduction(+ : C, S)
    for (int64_t j = 0; j < n; ++j) {
      const double re12 = c0[j] * c1[j] - s0[j] * s1[j];
      const double im12 = s0[j] * c1[j] + c0[j] * s1[j];
      C += q[j] * (re12 * c2[j] - im12 * s2[j]);
      S += q[j] * (im12 * c2[j] + re12 * s2[j]);
    }
    sc[t] = C;
    ss[t] = S;
  }
  const double pref = 8.0 * kPi / c.volume;  // d/dq and d/dr of the half-space sum (4 pi / V) ...
  constexpr int64_t kBlock = 64;
  const int64_t nblocks = (n + kBlock - 1) / kBlock;
#pragma omp parallel for num_threads(nt) schedule(dynamic, 1)
  for (int64_t bl = 0; bl < nblocks; ++bl) {
    const int64_t j0 = bl * kBlock, j1 = std::min(n, j0 + kBlock), nb = j1 - j0;
    double phi[kBlock] = {0}, fx[kBlock] = {0}, fy[kBlock] = {0}, fz[kBlock] = {0};
    for (int64_t t = 0; t < nk; ++t) {
      const double* c0 = &tc[0][(kv[t].h + off[0]) * n + j0];
      const double* s0 = &ts[0][(kv[t].h + off[0]) * n + j0];
      const double* c1 = &tc[1][(kv[t].k + off[1]) * n + j0];
      const double* s1 = &ts[1][(kv[t].k + off[1]) * n + j0];
      const double* c2 = &tc[2][(kv[t].l + off[2]) * n + j0];
      const double* s2 = &ts[2][(kv[t].l + off[2]) * n + j0];
      const double aC = kv[t].a * sc[t], aS = kv[t].a * ss[t];
      const double kx = kv[t].kx, ky = kv[t].ky, kz = kv[t].kz;
#pragma omp simd
      for (int64_t u = 0; u < nb; ++u) {
        const double re12 = c0[u] * c1[u] - s0[u] * s1[u];
        const double im12 = s0[u] * c1[u] + c0[u] * s1[u];
        const double re = re12 * c2[u] - im12 * s2[u];
        const double im = im12 * c2[u] + re12 * s2[u];
        phi[u] += aC * re + aS * im;
        const double g = aC * im - aS * re;
        fx[u] += g * kx;
        fy[u] += g * ky;
        fz[u] += g * kz;
      }
    }
    for (int64_t u = 0; u < nb; ++u) {
      const int64_t j = j0 + u;
      res.potential[j] += pref * phi[u];
      res.forces[3 * j] += pref * q[j] * fx[u];
      res.forces[3 * j + 1] += pref * q[j] * fy[u];
      res.forces[3 * j + 2] += pref * q[j] * fz[u];
    }
  }
  const double pe = 4.0 * kPi / c.volume;
  double e = 0.0;
  for (int64_t t = 0; t < nk; ++t) {
    const double ek = pe * kv[t].a * (sc[t] * sc[t] + ss[t] * ss[t]);
    e += ek;
    const double k[3] = {kv[t].kx, kv[t].ky, kv[t].kz};
    for (int a = 0; a < 3; ++a)
      for (int b = 0; b < 3; ++b) res.virial[3 * a + b] += ek * ((a == b ? 1.0 : 0.0) - kv[t].w * k[a] * k[b]);
  }
  res.energy_reciprocal = e;
}

}  // namespace

double dipole_ewald_alpha(const double* cell, int64_t n, double accuracy) {
  EwaldOptions o;
  o.accuracy = accuracy;
  check_options(o);
  const Cell c = make_cell(cell);
  const double s = ewald_s(accuracy), V = c.volume, nn = static_cast<double>(std::max<int64_t>(n, 1));
  double alpha = std::pow(kDipoleEwaldCostRatio * 2.0 * kPi * kPi * kPi / (V * V), 1.0 / 6.0);
  // pairs = nn^2 (4 pi / 3) (s / alpha)^3 / V <= kDipoleEwaldMaxPairs
  const double alpha_min = s * std::cbrt(nn * nn * 4.0 * kPi / (3.0 * V * kDipoleEwaldMaxPairs));
  return std::max(alpha, alpha_min);
}

std::vector<double> ewald_kvectors(const double* cell, const EwaldParameters& p) {
  const std::vector<KVec> kv = kvectors(make_cell(cell), p);
  std::vector<double> out(3 * kv.size());
  for (size_t m = 0; m < kv.size(); ++m) {
    out[3 * m] = kv[m].kx;
    out[3 * m + 1] = kv[m].ky;
    out[3 * m + 2] = kv[m].kz;
  }
  return out;
}

double ewald_s(double accuracy) {
  if (!(accuracy >= kEwaldMinAccuracy && accuracy <= kEwaldMaxAccuracy)) {
    throw InvalidInput("electrostatics: accuracy must be in [" + num(kEwaldMinAccuracy) + ", " +
                       num(kEwaldMaxAccuracy) + "] (got " + num(accuracy) + ")");
  }
  // f(s) = exp(-s^2)/s^2 decreases on s > 0; f(0.5) > 1e-1 / 100 and f(7) < 1e-15 / 100
  const double target = accuracy / kEwaldErrorMargin;
  double lo = 0.5, hi = 7.0;
  for (int it = 0; it < 200 && hi - lo > 1e-15; ++it) {
    const double mid = 0.5 * (lo + hi);
    if (std::exp(-mid * mid) / (mid * mid) > target) {
      lo = mid;
    } else {
      hi = mid;
    }
  }
  return hi;
}

EwaldParameters ewald_parameters(const double* cell, int64_t n, double sigma_max, const EwaldOptions& options) {
  check_options(options);
  if (!(sigma_max >= 0.0) || !std::isfinite(sigma_max)) {
    throw InvalidInput("electrostatics: the largest Gaussian width must be >= 0 and finite (got " + num(sigma_max) +
                       ")");
  }
  const Cell c = make_cell(cell);
  EwaldParameters p;
  p.accuracy = options.accuracy;
  p.s = ewald_s(options.accuracy);
  if (options.alpha > 0.0) {
    p.alpha = options.alpha;
  } else {
    const double nn = static_cast<double>(std::max<int64_t>(n, 1));
    p.alpha = std::pow(2.0 * kPi * kPi * kPi * kEwaldCostRatio * nn / (c.volume * c.volume), 1.0 / 6.0);
  }
  p.r_cut = std::max(p.s / p.alpha, p.s * 2.0 * sigma_max);  // gamma_max = 2 sigma_max
  p.k_cut = 2.0 * p.alpha * p.s;
  double box = 1.0;
  for (int d = 0; d < 3; ++d) {
    const double m = std::floor(p.k_cut * norm(c.a[d]) / (2.0 * kPi));
    if (!(m < 1e6)) throw InvalidInput("electrostatics: too many reciprocal vectors (lower alpha or the accuracy)");
    p.kmax[d] = static_cast<int>(m);
    box *= (d == 0 ? m + 1.0 : 2.0 * m + 1.0);
  }
  // half-space vectors within k_cut: about k_c^3 V / (12 pi^2); the box holds them all
  const double estimate = p.k_cut * p.k_cut * p.k_cut * c.volume / (12.0 * kPi * kPi);
  if (estimate > static_cast<double>(kEwaldMaxKVectors) || box > 50.0 * kEwaldMaxKVectors) {
    throw InvalidInput("electrostatics: about " + num(std::round(estimate)) + " reciprocal vectors needed, more than " +
                       std::to_string(kEwaldMaxKVectors) + " (alpha " + num(p.alpha) + " 1/A, k_cut " + num(p.k_cut) +
                       " 1/A): raise alpha or lower the accuracy");
  }
  p.n_kvectors = static_cast<int64_t>(kvectors(c, p).size());
  return p;
}

ElectrostaticsResult electrostatics(const double* positions, const double* charges, const double* sigma, int64_t n,
                                    const double* cell, bool periodic, const EwaldOptions& options) {
  check_options(options);
  check_inputs(positions, charges, sigma, n);
  ElectrostaticsResult res;
  res.periodic = periodic;
  res.forces.assign(3 * std::max<int64_t>(n, 0), 0.0);
  res.potential.assign(std::max<int64_t>(n, 0), 0.0);
  double sigma_max = 0.0;
  for (int64_t i = 0; sigma != nullptr && i < n; ++i) sigma_max = std::max(sigma_max, sigma[i]);
  const double ke = units::kCoulombInEVAngstrom;

  if (!periodic) {
    ewald_s(options.accuracy);  // validated for symmetry with the periodic path; the open sum is exact
    if (n > 0) open_sum(positions, charges, sigma, n, options, res);
  } else {
    const Cell c = make_cell(cell);
    res.parameters = ewald_parameters(cell, n, sigma_max, options);
    const EwaldParameters& p = res.parameters;
    if (n > 0) {
      real_sum(positions, charges, sigma, n, c, p.alpha, p.r_cut, options, res);
      const std::vector<KVec> kv = kvectors(c, p);
      reciprocal_sum(positions, charges, n, c, p, kv, options, res);
      double q2 = 0.0, qt = 0.0, qs2 = 0.0;
      for (int64_t i = 0; i < n; ++i) {
        q2 += charges[i] * charges[i];
        qt += charges[i];
        if (sigma != nullptr) qs2 += charges[i] * sigma[i] * sigma[i];
      }
      const double self = p.alpha / std::sqrt(kPi);
      res.energy_self = -self * q2;
      const double bg_a = kPi / (2.0 * c.volume * p.alpha * p.alpha);
      const double bg_s = 2.0 * kPi / c.volume;
      res.energy_background = -bg_a * qt * qt + bg_s * qt * qs2;
      for (int64_t i = 0; i < n; ++i) {
        const double si2 = sigma != nullptr ? sigma[i] * sigma[i] : 0.0;
        res.potential[i] += -2.0 * self * charges[i] - 2.0 * bg_a * qt + bg_s * (qs2 + qt * si2);
      }
      for (int a = 0; a < 3; ++a) res.virial[4 * a] += res.energy_background;
    }
  }
  res.energy_real *= ke;
  res.energy_reciprocal *= ke;
  res.energy_self *= ke;
  res.energy_background *= ke;
  res.energy = res.energy_real + res.energy_reciprocal + res.energy_self + res.energy_background;
  for (double& v : res.forces) v *= ke;
  for (double& v : res.potential) v *= ke;
  for (double& v : res.virial) v *= ke;
  return res;
}

}  // namespace atomforge
