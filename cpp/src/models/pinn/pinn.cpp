#include "models/pinn/pinn.hpp"

#include <algorithm>
#include <cmath>
#include <sstream>

#include "atomforge/charges.hpp"
#include "atomforge/elements.hpp"
#include "atomforge/errors.hpp"
#include "atomforge/neighbor_list.hpp"
#include "atomforge/units.hpp"
#include "common/threads.hpp"
#include "electrostatics/ewald.hpp"

#ifdef ATOMFORGE_HAVE_OPENMP
#include <omp.h>
#endif

namespace atomforge {

namespace {
// softplus(z) = log(1 + e^z) without overflow (the dipole model's formula) and its derivative.
inline double softplus(double z) { return std::max(z, 0.0) + std::log1p(std::exp(-std::fabs(z))); }
inline double sigmoid(double z) {
  return z >= 0.0 ? 1.0 / (1.0 + std::exp(-z)) : std::exp(z) / (1.0 + std::exp(z));
}
constexpr double kWeightFloor = 1e-3;  // as DipoleModel::kWeightFloor
constexpr double kDispersionFloor = 1e-3;      // c_i = softplus(NN_c) + floor
constexpr double kMaxDispersionCutoff = 25.0;  // Angstrom, as every descriptor cutoff (kMaxCutoff)

// Smooth switch (header comment): 1 for r <= r_on, 0 for r >= r_cut, 1 - 10x^3 + 15x^4 - 6x^5 with
// x = (r - r_on) / (r_cut - r_on) between (value, first and second derivatives continuous).
inline void dispersion_switch(double r, double r_on, double r_cut, double& s, double& ds) {
  if (r <= r_on) {
    s = 1.0;
    ds = 0.0;
  } else if (r >= r_cut) {
    s = 0.0;
    ds = 0.0;
  } else {
    const double L = r_cut - r_on, x = (r - r_on) / L, x2 = x * x;
    s = 1.0 - x2 * x * (10.0 - 15.0 * x + 6.0 * x2);
    ds = -30.0 * x2 * (1.0 - 2.0 * x + x2) / L;
  }
}

// True if any record of the optional term `name` (name., name_network., name_scaling.) is present
// (then all of them are required).
bool has_term_records(const ModelFile& f, const std::string& name) {
  const std::string prefixes[3] = {name + ".", name + "_network.", name + "_scaling."};
  for (const auto& kv : f.records())
    for (const auto& p : prefixes)
      if (kv.first.rfind(p, 0) == 0) return true;
  return false;
}

constexpr double kPolarisationFloor = 1e-3;  // alpha_i = alpha_k (softplus(NN_a) + floor)
constexpr int64_t kMaxPolarisableAtoms = 2000;  // dense 3N x 3N solve (N = 2000: 288 MB, ~1 min)
constexpr double kTholeNegligible = 37.0;  // s = a r^3 / sqrt(alpha_i alpha_j) beyond which e^-s < 1e-16
constexpr double kMaxPolarisationKTable = 1e7;  // atoms x reciprocal vectors of the periodic dipole sums (two tables of 8 bytes each)

// Thole damping (header comment): s = a r^3 / sqrt(alpha_i alpha_j), l3 = 1 - e^-s,
// l5 = 1 - (1 + s) e^-s.
struct Thole {
  double es, s, l3, l5;
};
inline Thole thole(double r, double a, double ai, double aj) {
  Thole t;
  t.s = a * r * r * r / std::sqrt(ai * aj);
  t.es = std::exp(-t.s);
  t.l3 = -std::expm1(-t.s);
  t.l5 = t.l3 - t.s * t.es;
  return t;
}

struct Polarisation {
  double energy = 0.0;
  std::vector<double> mu, efield, eatom, dq, dalpha, forces;  // (3n), (3n), (n), (n), (n), (3n)
  double virial[9] = {0, 0, 0, 0, 0, 0, 0, 0, 0};
};

// Where the dipoles interact: for each atom i its partners j with d = r_i - (r_j + image shift)
// (open boundaries: every j != i, no shift; periodic: every image within the real-space cutoff,
// i's own images included), and for periodic cells the Ewald splitting parameter beta and the
// half-space reciprocal vectors (header comment).
struct PolGeometry {
  std::vector<int64_t> offsets, partner;  // (n + 1), (pairs)
  std::vector<double> d;                  // (pairs, 3) Angstrom
  double beta = 0.0;                      // 1/Angstrom; 0: open boundaries (bare Thole-damped tensors)
  double volume = 0.0;                    // Angstrom^3 (periodic)
  std::vector<double> kvec;               // (K, 3) 1/Angstrom, half space (periodic)
};

PolGeometry open_geometry(const double* pos, int64_t n) {
  PolGeometry g;
  g.offsets.assign(n + 1, 0);
  g.partner.reserve(n > 0 ? n * (n - 1) : 0);
  g.d.reserve(n > 0 ? 3 * n * (n - 1) : 0);
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t j = 0; j < n; ++j) {
      if (j == i) continue;
      g.partner.push_back(j);
      for (int x = 0; x < 3; ++x) g.d.push_back(pos[3 * i + x] - pos[3 * j + x]);
    }
    g.offsets[i + 1] = static_cast<int64_t>(g.partner.size());
  }
  return g;
}

// Real-space radial functions of one pair (header comment, Eqs. P1-P2): the Thole-damped tensors
// with the Ewald screening of the periodic sum,
//   A3 = [l3 - erf(x) + c r e^{-x^2}] / r^3,   A5 = [l5 - erf(x) + c r (1 + 2x^2/3) e^{-x^2}] / r^5,
// x = beta r, c = 2 beta / sqrt(pi) (beta = 0: l3 / r^3, l5 / r^5), and their r-derivatives.
struct PairTerms {
  double A3, A5, dA3, dA5, s, es;
};
inline PairTerms pair_terms(double r, double a, double ai, double aj, double beta) {
  const Thole t = thole(r, a, ai, aj);
  PairTerms p;
  p.s = t.s;
  p.es = t.es;
  const double r2 = r * r, ir3 = 1.0 / (r2 * r), ir5 = ir3 / r2;
  double U3 = t.l3, U5 = t.l5;
  double dU3 = 3.0 * t.s * t.es / r, dU5 = 3.0 * t.s * t.s * t.es / r;
  if (beta > 0.0) {
    const double x = beta * r, x2 = x * x, E = std::exp(-x2), c = 1.12837916709551257390 * beta;
    U3 += -std::erf(x) + c * r * E;
    U5 += -std::erf(x) + c * r * (1.0 + 2.0 * x2 / 3.0) * E;
    dU3 += -2.0 * c * x2 * E;
    dU5 += -(4.0 / 3.0) * c * x2 * x2 * E;
  }
  p.A3 = U3 * ir3;
  p.A5 = U5 * ir5;
  p.dA3 = dU3 * ir3 - 3.0 * p.A3 / r;
  p.dA5 = dU5 * ir5 - 5.0 * p.A5 / r;
  return p;
}

// Induced dipoles of point polarisabilities alpha (Angstrom^3) in the Thole-damped field of the
// point charges q, solved exactly (header comment), and the derivatives of E_pol at fixed mu.
Polarisation induced_dipoles(const double* pos, const double* q, const double* alpha, int64_t n, double a,
                             const PolGeometry& geo, int n_threads) {
  const double ke = units::kCoulombInEVAngstrom;
  constexpr double kPi = 3.14159265358979323846;
  Polarisation P;
  P.mu.assign(3 * n, 0.0);
  P.efield.assign(3 * n, 0.0);
  P.eatom.assign(n, 0.0);
  P.dq.assign(n, 0.0);
  P.dalpha.assign(n, 0.0);
  P.forces.assign(3 * n, 0.0);
  if (n == 0) return P;
  const int64_t m3 = 3 * n;
  const double beta = geo.beta;
  const int64_t nk = static_cast<int64_t>(geo.kvec.size() / 3);
  // reciprocal space (periodic): g_k = exp(-k^2 / 4 beta^2) / k^2, cos/sin(k . r_i), the charges'
  // structure factor A0 + i B0 (header comment, Eqs. P3-P5)
  std::vector<double> gk(nk), cs(nk * n), sn(nk * n), A0(nk, 0.0), B0(nk, 0.0);
  const double pk = geo.volume > 0.0 ? 8.0 * kPi / geo.volume : 0.0;
#pragma omp parallel for num_threads(n_threads) schedule(static)
  for (int64_t t = 0; t < nk; ++t) {
    const double* k = &geo.kvec[3 * t];
    const double k2 = k[0] * k[0] + k[1] * k[1] + k[2] * k[2];
    gk[t] = std::exp(-k2 / (4.0 * beta * beta)) / k2;
    double a0 = 0.0, b0 = 0.0;
    for (int64_t i = 0; i < n; ++i) {
      const double th = k[0] * pos[3 * i] + k[1] * pos[3 * i + 1] + k[2] * pos[3 * i + 2];
      cs[t * n + i] = std::cos(th);
      sn[t * n + i] = std::sin(th);
      a0 += q[i] * cs[t * n + i];
      b0 += q[i] * sn[t * n + i];
    }
    A0[t] = a0;
    B0[t] = b0;
  }
  // permanent field (e / Angstrom^2) and M = 1 - S T S, S = diag(sqrt(alpha)), row-major (3n x 3n)
  std::vector<double> M(static_cast<size_t>(m3) * m3, 0.0);
  const double self = 4.0 * beta * beta * beta / (3.0 * std::sqrt(kPi));  // T_ii of the Ewald self term
#pragma omp parallel for num_threads(n_threads) schedule(dynamic, 8)
  for (int64_t i = 0; i < n; ++i) {
    double E[3] = {0, 0, 0};
    for (int64_t m = geo.offsets[i]; m < geo.offsets[i + 1]; ++m) {
      const int64_t j = geo.partner[m];
      const double* d = &geo.d[3 * m];
      const double r = std::sqrt(d[0] * d[0] + d[1] * d[1] + d[2] * d[2]);
      const PairTerms t = pair_terms(r, a, alpha[i], alpha[j], beta);
      for (int x = 0; x < 3; ++x) E[x] += q[j] * t.A3 * d[x];
      const double sij = std::sqrt(alpha[i] * alpha[j]);
      for (int x = 0; x < 3; ++x)
        for (int y = 0; y < 3; ++y)
          M[(3 * i + x) * m3 + 3 * j + y] -= sij * (3.0 * t.A5 * d[x] * d[y] - (x == y ? t.A3 : 0.0));
    }
    // reciprocal field and tensor: t6[c][j] = sum_k g_k cos(k.(r_i - r_j)) (k k^T)_c, the six
    // components xx yy zz xy xz yz, vectorised over j
    std::vector<double> t6(nk > 0 ? 6 * n : 0, 0.0);
    for (int64_t t = 0; t < nk; ++t) {
      const double* k = &geo.kvec[3 * t];
      const double ci = gk[t] * cs[t * n + i], si = gk[t] * sn[t * n + i];
      const double fe = -pk * gk[t] * (B0[t] * cs[t * n + i] - A0[t] * sn[t * n + i]);
      for (int x = 0; x < 3; ++x) E[x] += fe * k[x];
      const double kk[6] = {k[0] * k[0], k[1] * k[1], k[2] * k[2], k[0] * k[1], k[0] * k[2], k[1] * k[2]};
      const double* __restrict cj = &cs[t * n];
      const double* __restrict sj = &sn[t * n];
      double* __restrict t0 = &t6[0];
      double* __restrict t1 = &t6[n];
      double* __restrict t2 = &t6[2 * n];
      double* __restrict t3 = &t6[3 * n];
      double* __restrict t4 = &t6[4 * n];
      double* __restrict t5 = &t6[5 * n];
      for (int64_t j = 0; j < n; ++j) {
        const double w = ci * cj[j] + si * sj[j];
        t0[j] += w * kk[0];
        t1[j] += w * kk[1];
        t2[j] += w * kk[2];
        t3[j] += w * kk[3];
        t4[j] += w * kk[4];
        t5[j] += w * kk[5];
      }
    }
    if (nk > 0) {
      static const int comp[3][3] = {{0, 3, 4}, {3, 1, 5}, {4, 5, 2}};
      for (int64_t j = 0; j < n; ++j) {
        const double w = pk * std::sqrt(alpha[i] * alpha[j]);
        double* row = &M[(3 * i) * m3 + 3 * j];
        for (int x = 0; x < 3; ++x)
          for (int y = 0; y < 3; ++y) row[x * m3 + y] += w * t6[comp[x][y] * n + j];
      }
    }
    for (int x = 0; x < 3; ++x) {
      P.efield[3 * i + x] = E[x];
      M[(3 * i + x) * m3 + 3 * i + x] += 1.0 - alpha[i] * self;
    }
  }
  // Cholesky M = L L^T in place (lower triangle), blocked right-looking with row-contiguous dot
  // products: two parallel loops per block of kBlock columns (few synchronisations on a loaded
  // machine); every entry is updated in the same order for any thread count.
  constexpr int64_t kBlock = 64;
  bool positive = true;
  for (int64_t kb = 0; kb < m3 && positive; kb += kBlock) {
    const int64_t ke = std::min(kb + kBlock, m3);
    for (int64_t j = kb; j < ke && positive; ++j) {  // diagonal block
      double* Lj = &M[j * m3];
      double dsum = Lj[j];
      for (int64_t k = kb; k < j; ++k) dsum -= Lj[k] * Lj[k];
      if (!(dsum > 0.0)) {
        positive = false;
        break;
      }
      Lj[j] = std::sqrt(dsum);
      for (int64_t i = j + 1; i < ke; ++i) {
        double* Li = &M[i * m3];
        double v = Li[j];
        for (int64_t k = kb; k < j; ++k) v -= Li[k] * Lj[k];
        Li[j] = v / Lj[j];
      }
    }
    if (!positive || ke == m3) break;
#pragma omp parallel num_threads(n_threads)
    {
#pragma omp for schedule(static)
      for (int64_t i = ke; i < m3; ++i) {  // panel below the diagonal block
        double* Li = &M[i * m3];
        for (int64_t j = kb; j < ke; ++j) {
          const double* Lj = &M[j * m3];
          double v = Li[j];
          for (int64_t k = kb; k < j; ++k) v -= Li[k] * Lj[k];
          Li[j] = v / Lj[j];
        }
      }
#pragma omp for schedule(dynamic, 16)
      for (int64_t i = ke; i < m3; ++i) {  // trailing update of the lower triangle
        double* Li = &M[i * m3];
        for (int64_t j = ke; j <= i; ++j) {
          const double* Lj = &M[j * m3];
          double v = 0.0;
          for (int64_t k = kb; k < ke; ++k) v += Li[k] * Lj[k];
          Li[j] -= v;
        }
      }
    }
  }
  if (!positive)
    throw InvalidInput("pinn model: the induced-dipole equations have no stable solution (polarisation "
                       "catastrophe: 1 - alpha^1/2 T alpha^1/2 is not positive definite); polarisabilities "
                       "too large for the Thole damping at these distances");
  std::vector<double> y(m3);
  for (int64_t i = 0; i < m3; ++i) {  // L y = S E
    const double* Li = &M[i * m3];
    double v = std::sqrt(alpha[i / 3]) * P.efield[i];
    for (int64_t k = 0; k < i; ++k) v -= Li[k] * y[k];
    y[i] = v / Li[i];
  }
  for (int64_t i = m3 - 1; i >= 0; --i) {  // L^T nu = y
    double v = y[i];
    for (int64_t k = i + 1; k < m3; ++k) v -= M[k * m3 + i] * y[k];
    y[i] = v / M[i * m3 + i];
  }
  for (int64_t i = 0; i < m3; ++i) P.mu[i] = std::sqrt(alpha[i / 3]) * y[i];
  for (int64_t i = 0; i < n; ++i) {
    double e = 0.0;
    for (int x = 0; x < 3; ++x) e += P.mu[3 * i + x] * P.efield[3 * i + x];
    P.eatom[i] = -0.5 * ke * e;
    P.energy += P.eatom[i];
  }
  // derivatives at fixed mu (E_pol is stationary in mu): forces, dE/dq_i, dE/dalpha_i, virial
  std::vector<double> wa(9 * n, 0.0);
  const double* mu = P.mu.data();
#pragma omp parallel for num_threads(n_threads) schedule(dynamic, 8)
  for (int64_t i = 0; i < n; ++i) {
    const double* mi = &mu[3 * i];
    double f[3] = {0, 0, 0}, dq = 0.0, da = -0.5 * (mi[0] * mi[0] + mi[1] * mi[1] + mi[2] * mi[2]) /
                                             (alpha[i] * alpha[i]);
    double wv[9] = {0, 0, 0, 0, 0, 0, 0, 0, 0};
    for (int64_t m = geo.offsets[i]; m < geo.offsets[i + 1]; ++m) {
      const int64_t j = geo.partner[m];
      const double* mj = &mu[3 * j];
      const double* d = &geo.d[3 * m];
      const double r2 = d[0] * d[0] + d[1] * d[1] + d[2] * d[2], r = std::sqrt(r2);
      const PairTerms t = pair_terms(r, a, alpha[i], alpha[j], beta);
      const double ir3 = 1.0 / (r2 * r), ir5 = ir3 / r2;
      const double p = mi[0] * d[0] + mi[1] * d[1] + mi[2] * d[2], pj = mj[0] * d[0] + mj[1] * d[1] + mj[2] * d[2];
      const double mm = mi[0] * mj[0] + mi[1] * mj[1] + mi[2] * mj[2], c = q[j] * p - q[i] * pj;
      double g[3];
      for (int x = 0; x < 3; ++x)
        g[x] = ((c - mm) * t.dA3 + 3.0 * p * pj * t.dA5) * d[x] / r + t.A3 * (q[j] * mi[x] - q[i] * mj[x]) +
               3.0 * t.A5 * (pj * mi[x] + p * mj[x]);
      for (int x = 0; x < 3; ++x) {
        f[x] += ke * g[x];
        for (int z = 0; z < 3; ++z) wv[3 * x + z] += 0.5 * ke * d[x] * g[z];
      }
      dq += t.A3 * pj;
      da += t.s / (2.0 * alpha[i]) * t.es * ((c - mm) * ir3 + 3.0 * t.s * p * pj * ir5);
    }
    for (int x = 0; x < 3; ++x) P.forces[3 * i + x] = f[x];
    P.dq[i] = ke * dq;
    P.dalpha[i] = ke * da;
    for (int k = 0; k < 9; ++k) wa[9 * i + k] = wv[k];
  }
  for (int64_t i = 0; i < n; ++i)
    for (int k = 0; k < 9; ++k) P.virial[k] += wa[9 * i + k];
  if (nk > 0) {
    // reciprocal part at fixed mu (header comment, Eqs. P6-P8): with m_j = k . mu_j,
    // A_mu = -sum_j m_j sin, B_mu = sum_j m_j cos, A = A0 + A_mu, B = B0 + B_mu,
    //   E_k = (pk k_e / 2) g_k (A^2 + B^2 - A0^2 - B0^2)
    //   dE/dr_j = pk k_e sum_k g_k k [q_j (B_mu c_j - A_mu s_j) - m_j (A c_j + B s_j)]
    //   dE/dq_j = pk k_e sum_k g_k (A_mu c_j + B_mu s_j)
    //   W = sum_k E_k [1 - 2 (1 + k^2/4 beta^2) k k^T / k^2] + pk k_e sum_k g_k sum_j (B c_j - A s_j) k (x) mu_j
    std::vector<double> Am(nk, 0.0), Bm(nk, 0.0);
    for (int64_t t = 0; t < nk; ++t) {
      const double* k = &geo.kvec[3 * t];
      double am = 0.0, bm = 0.0;
      for (int64_t j = 0; j < n; ++j) {
        const double mj = k[0] * mu[3 * j] + k[1] * mu[3 * j + 1] + k[2] * mu[3 * j + 2];
        am -= mj * sn[t * n + j];
        bm += mj * cs[t * n + j];
      }
      Am[t] = am;
      Bm[t] = bm;
    }
    const double pe = pk * ke;
#pragma omp parallel for num_threads(n_threads) schedule(static)
    for (int64_t j = 0; j < n; ++j) {
      double f[3] = {0, 0, 0}, dq = 0.0;
      for (int64_t t = 0; t < nk; ++t) {
        const double* k = &geo.kvec[3 * t];
        const double c = cs[t * n + j], s = sn[t * n + j];
        const double mj = k[0] * mu[3 * j] + k[1] * mu[3 * j + 1] + k[2] * mu[3 * j + 2];
        const double A = A0[t] + Am[t], B = B0[t] + Bm[t];
        const double gr = gk[t] * (q[j] * (Bm[t] * c - Am[t] * s) - mj * (A * c + B * s));
        for (int x = 0; x < 3; ++x) f[x] -= pe * gr * k[x];
        dq += gk[t] * (Am[t] * c + Bm[t] * s);
      }
      for (int x = 0; x < 3; ++x) P.forces[3 * j + x] += f[x];
      P.dq[j] += pe * dq;
    }
    for (int64_t t = 0; t < nk; ++t) {
      const double* k = &geo.kvec[3 * t];
      const double k2 = k[0] * k[0] + k[1] * k[1] + k[2] * k[2];
      const double A = A0[t] + Am[t], B = B0[t] + Bm[t];
      const double ek = 0.5 * pe * gk[t] * (A * A + B * B - A0[t] * A0[t] - B0[t] * B0[t]);
      const double w = 2.0 * (1.0 + k2 / (4.0 * beta * beta)) / k2;
      double v[3] = {0, 0, 0};  // sum_j (B c_j - A s_j) mu_j
      for (int64_t j = 0; j < n; ++j) {
        const double h = B * cs[t * n + j] - A * sn[t * n + j];
        for (int x = 0; x < 3; ++x) v[x] += h * mu[3 * j + x];
      }
      for (int x = 0; x < 3; ++x)
        for (int z = 0; z < 3; ++z)
          P.virial[3 * x + z] += ek * ((x == z ? 1.0 : 0.0) - w * k[x] * k[z]) + pe * gk[t] * v[x] * k[z];
    }
  }
  return P;
}
}  // namespace

PinnModel::PinnModel(const ModelFile& f) {
  const std::string& w = f.where();
  species_ = f.check_header("pinn");
  if (!f.has("units.charge") || f.string("units.charge") != "e")
    throw InvalidInput(w + ": record 'units.charge' must be \"e\" (charges in elementary charges)" +
                       (f.has("units.charge") ? ", got \"" + f.string("units.charge") + "\"" : ""));
  const int32_t ne = static_cast<int32_t>(species_.size());
  if (f.i64_scalar("committee_size") != 1)
    throw InvalidInput(w + ": record 'committee_size' is " + std::to_string(f.i64_scalar("committee_size")) +
                       "; pinn models do not support committees yet (it must be 1)");
  descriptor_ = make_descriptor(f);
  std::vector<int64_t> n_inputs(ne);
  for (int32_t k = 0; k < ne; ++k) n_inputs[k] = descriptor_->n_features(k);
  auto per_species = [&](const std::string& name) {
    std::vector<double> v = f.f64_vector(name);
    if (static_cast<int32_t>(v.size()) != ne)
      throw InvalidInput(w + ": record '" + name + "' needs one value per species (" + std::to_string(ne) + "), has " +
                         std::to_string(v.size()));
    for (double x : v)
      if (!std::isfinite(x)) throw InvalidInput(w + ": record '" + name + "' is not finite");
    return v;
  };
  auto finite_scalar = [&](const std::string& name) {
    const double x = f.f64_scalar(name);
    if (!std::isfinite(x)) throw InvalidInput(w + ": record '" + name + "' is not finite");
    return x;
  };
  energy_reference_ = per_species("energy.reference");
  energy_scale_ = finite_scalar("energy.scale");
  charge_reference_ = per_species("charge.reference");
  charge_scale_ = finite_scalar("charge.scale");
  sigma_ = per_species("electrostatics.sigma");
  for (int32_t k = 0; k < ne; ++k)
    if (sigma_[k] < 0.0)
      throw InvalidInput(w + ": record 'electrostatics.sigma' of " + element_symbol(species_[k]) +
                         " is negative (Gaussian widths in Angstrom, 0 for point charges)");
  accuracy_ = finite_scalar("electrostatics.accuracy");
  if (!(accuracy_ >= kEwaldMinAccuracy && accuracy_ <= kEwaldMaxAccuracy)) {
    std::ostringstream m;
    m << w << ": record 'electrostatics.accuracy' is " << accuracy_ << ", outside [" << kEwaldMinAccuracy << ", "
      << kEwaldMaxAccuracy << "]";
    throw InvalidInput(m.str());
  }
  const std::string scheme = f.string("charge.scheme");
  if (scheme != "uniform" && scheme != "weighted")
    throw InvalidInput(w + ": record 'charge.scheme' is '" + scheme + "' (known: uniform, weighted)");
  weighted_ = scheme == "weighted";
  energy_networks_ = AtomicNetworks::from_file(f, "network.", "scaling.", n_inputs, 1);
  charge_networks_ = AtomicNetworks::from_file(f, "charge_network.", "charge_scaling.", n_inputs, 1);
  if (weighted_) {
    weight_networks_ = AtomicNetworks::from_file(f, "weight_network.", "charge_scaling.", n_inputs, 1);
    if (weight_networks_.shared() != charge_networks_.shared())
      throw InvalidInput(w + ": charge_network.shared and weight_network.shared differ");
  }
  if (energy_networks_.committee_size() != 1 || charge_networks_.committee_size() != 1 ||
      (weighted_ && weight_networks_.committee_size() != 1))
    throw InvalidInput(w + ": pinn models do not support committees yet (one network set each)");
  dispersion_ = has_term_records(f, "dispersion");
  if (dispersion_) {
    for (const char* name : {"dispersion.c6", "dispersion.r0", "dispersion.r_on", "dispersion.r_cut"})
      if (!f.has(name))
        throw InvalidInput(w + ": record '" + name + "' is missing (a dispersion term needs dispersion.c6, "
                           "dispersion.r0, dispersion.r_on, dispersion.r_cut and the dispersion networks)");
    c6_ = per_species("dispersion.c6");
    r0_ = per_species("dispersion.r0");
    for (int32_t k = 0; k < ne; ++k) {
      if (!(c6_[k] >= 0.0))
        throw InvalidInput(w + ": record 'dispersion.c6' of " + element_symbol(species_[k]) +
                           " is negative (reference C6 coefficients in eV*Angstrom^6, >= 0)");
      if (!(r0_[k] > 0.0))
        throw InvalidInput(w + ": record 'dispersion.r0' of " + element_symbol(species_[k]) +
                           " is not positive (damping radii in Angstrom, > 0)");
    }
    r_on_ = finite_scalar("dispersion.r_on");
    r_disp_ = finite_scalar("dispersion.r_cut");
    if (!(r_disp_ > 0.0 && r_disp_ <= kMaxDispersionCutoff)) {
      std::ostringstream m;
      m << w << ": record 'dispersion.r_cut' is " << r_disp_ << " A, outside (0, " << kMaxDispersionCutoff << "]";
      throw InvalidInput(m.str());
    }
    if (!(r_on_ >= 0.0 && r_on_ < r_disp_)) {
      std::ostringstream m;
      m << w << ": record 'dispersion.r_on' is " << r_on_ << " A; it must be in [0, dispersion.r_cut = " << r_disp_
        << " A)";
      throw InvalidInput(m.str());
    }
    dispersion_networks_ = AtomicNetworks::from_file(f, "dispersion_network.", "dispersion_scaling.", n_inputs, 1);
    if (dispersion_networks_.committee_size() != 1)
      throw InvalidInput(w + ": pinn models do not support committees yet (one dispersion network set)");
  }
  polarisation_ = has_term_records(f, "polarisation");
  if (polarisation_) {
    for (const char* name : {"polarisation.alpha", "polarisation.thole"})
      if (!f.has(name))
        throw InvalidInput(w + ": record '" + name + "' is missing (a polarisation term needs polarisation.alpha, "
                           "polarisation.thole and the polarisation networks)");
    alpha_ = per_species("polarisation.alpha");
    for (int32_t k = 0; k < ne; ++k)
      if (!(alpha_[k] > 0.0))
        throw InvalidInput(w + ": record 'polarisation.alpha' of " + element_symbol(species_[k]) +
                           " is not positive (reference polarisabilities in Angstrom^3, > 0)");
    thole_ = finite_scalar("polarisation.thole");
    if (!(thole_ > 0.0 && thole_ <= 100.0)) {
      std::ostringstream m;
      m << w << ": record 'polarisation.thole' is " << thole_ << ", outside (0, 100] (Thole damping a, AMOEBA 0.39)";
      throw InvalidInput(m.str());
    }
    polarisation_networks_ =
        AtomicNetworks::from_file(f, "polarisation_network.", "polarisation_scaling.", n_inputs, 1);
    if (polarisation_networks_.committee_size() != 1)
      throw InvalidInput(w + ": pinn models do not support committees yet (one polarisation network set)");
  }
}

std::vector<std::pair<std::string, std::string>> PinnModel::describe() const {
  std::vector<std::pair<std::string, std::string>> d;
  d.emplace_back("descriptor", descriptor_->type());
  std::ostringstream rc;
  rc << descriptor_->cutoff() << " A (short range); electrostatics over the whole system";
  d.emplace_back("cutoff", rc.str());
  d.emplace_back("energy", "E = sum_i E_i(short) + E_elec(Gaussian charges q_i; Ewald for periodic cells)");
  d.emplace_back("charge scheme", weighted_ ? "weighted: q_i = q~_i - w_i (sum q~ - Q) / sum w, w = softplus(NN_w)"
                                            : "uniform: q_i = q~_i - (sum q~ - Q) / N");
  d.emplace_back("networks", energy_networks_.shared() ? "one shared by all elements" : "one per element");
  for (int32_t k = 0; k < static_cast<int32_t>(species_.size()); ++k) {
    std::ostringstream s;
    s << descriptor_->n_features(k) << " features, energy network " << energy_networks_.architecture(k) << " ("
      << energy_networks_.activations(k) << "), charge network " << charge_networks_.architecture(k);
    if (weighted_) s << ", weight network " << weight_networks_.architecture(k);
    s << ", reference energy " << energy_reference_[k] << " eV, reference charge " << charge_reference_[k]
      << " e, sigma " << sigma_[k] << " A";
    d.emplace_back(element_symbol(species_[k]), s.str());
  }
  std::ostringstream sc;
  sc << energy_scale_ << " eV, " << charge_scale_ << " e";
  d.emplace_back("energy_scale, charge_scale", sc.str());
  std::ostringstream ac;
  ac << accuracy_;
  d.emplace_back("ewald accuracy", ac.str());
  if (dispersion_) {
    std::ostringstream ds;
    ds << "E_disp = -sum_pairs f(r) sqrt(C6_i C6_j) / (r^6 + (R0_i + R0_j)^6), C6_i = C6_k (softplus(NN_c) + "
       << kDispersionFloor << "), switched off between " << r_on_ << " and " << r_disp_ << " A; C6_k, R0_k:";
    for (int32_t k = 0; k < static_cast<int32_t>(species_.size()); ++k)
      ds << " " << element_symbol(species_[k]) << " " << c6_[k] << " eV*A^6, " << r0_[k] << " A;";
    d.emplace_back("dispersion", ds.str());
  } else {
    d.emplace_back("dispersion", "none");
  }
  if (polarisation_) {
    std::ostringstream ps;
    ps << "induced point dipoles mu = alpha (E_q + T mu), Thole damping a = " << thole_
       << " (charge-dipole and dipole-dipole), solved exactly; periodic cells: dipolar Ewald sum (tin foil); alpha_i = alpha_k (softplus(NN_a) + "
       << kPolarisationFloor << "), alpha_k:";
    for (int32_t k = 0; k < static_cast<int32_t>(species_.size()); ++k)
      ps << " " << element_symbol(species_[k]) << " " << alpha_[k] << " A^3;";
    d.emplace_back("polarisation", ps.str());
  } else {
    d.emplace_back("polarisation", "none");
  }
  return d;
}

void PinnModel::compute(const NeighborView& view, const ComputeRequest& req, ModelOutput& out) const {
  NeighborView nl = view;
  nl.min_distance = req.min_distance;
  const int n_periodic = int(req.pbc[0]) + int(req.pbc[1]) + int(req.pbc[2]);
  if (n_periodic != 0 && n_periodic != 3)
    throw InvalidInput("pinn model: the cell is periodic along some directions only; its electrostatics needs "
                       "all three periodic (Ewald sum) or none (open boundaries)");
  const bool periodic = n_periodic == 3;
  if (periodic && req.cell == nullptr)
    throw InvalidInput("pinn model: a periodic system needs the cell (ComputeRequest::cell)");
  if (req.per_atom_virial)
    throw InvalidInput("pinn model: per-atom virials are not available (the Ewald sum has no per-atom split)");
  if (!std::isfinite(req.total_charge))
    throw InvalidInput("pinn model: the total charge " + std::to_string(req.total_charge) + " is not finite");
  const int64_t nc = nl.n_centres, nt = nl.n_total, nf = descriptor_->n_features();
  if (polarisation_ && nc > kMaxPolarisableAtoms)
    throw InvalidInput("pinn model: polarisation solves a dense 3N x 3N system; " + std::to_string(nc) +
                       " atoms exceed the limit of " + std::to_string(kMaxPolarisableAtoms));
  std::vector<double> G(nc * nf);
  descriptor_->compute(nl, G.data(), req.n_threads);  // validates the list
  const bool forces = req.forces;
  // per centre: short-range energy, raw charge, weight, and the network gradients
  std::vector<double> es(nc), partials(2 * nc), dw(nc, 0.0);
  std::vector<double> gE(forces ? nc * nf : 0, 0.0), gq(forces ? nc * nf : 0, 0.0),
      gw(forces && weighted_ ? nc * nf : 0, 0.0), gd(forces && dispersion_ ? nc * nf : 0, 0.0);
  std::vector<double> cdisp(dispersion_ ? nc : 0), dcdisp(dispersion_ ? nc : 0);  // c_i, dc_i/dNN_c
  std::vector<double> gp(forces && polarisation_ ? nc * nf : 0, 0.0);
  std::vector<double> apol(polarisation_ ? nc : 0), dapol(polarisation_ ? nc : 0);  // alpha_i, dalpha_i/dNN_a
  const int nt_threads = resolve_threads(req.n_threads);
  {
    WorkspacePool<AtomicNetworks::Workspace>::Lease lease(pool_, nt_threads);
    for (int k = 0; k < nt_threads; ++k) {
      energy_networks_.prepare(lease[k]);
      charge_networks_.prepare(lease[k]);
      if (weighted_) weight_networks_.prepare(lease[k]);
      if (dispersion_) dispersion_networks_.prepare(lease[k]);
      if (polarisation_) polarisation_networks_.prepare(lease[k]);
    }
#pragma omp parallel num_threads(nt_threads)
    {
      int tid = 0;
#ifdef ATOMFORGE_HAVE_OPENMP
      tid = omp_get_thread_num();
#endif
      AtomicNetworks::Workspace& ws = lease[tid];
#pragma omp for schedule(static)
      for (int64_t c = 0; c < nc; ++c) {
        const int32_t k = nl.species[nl.centre(c)];
        const double* g = &G[c * nf];
        double y = 0.0, yq = 0.0, yw = 0.0;
        energy_networks_.evaluate(k, g, &y, forces ? &gE[c * nf] : nullptr, ws);
        charge_networks_.evaluate(k, g, &yq, forces ? &gq[c * nf] : nullptr, ws);
        if (weighted_) weight_networks_.evaluate(k, g, &yw, forces ? &gw[c * nf] : nullptr, ws);
        es[c] = energy_reference_[k] + energy_scale_ * y;
        partials[2 * c] = charge_reference_[k] + charge_scale_ * yq;
        partials[2 * c + 1] = weighted_ ? softplus(yw) + kWeightFloor : 1.0;
        dw[c] = weighted_ ? sigmoid(yw) : 0.0;
        if (dispersion_) {
          double yd = 0.0;
          dispersion_networks_.evaluate(k, g, &yd, forces ? &gd[c * nf] : nullptr, ws);
          cdisp[c] = softplus(yd) + kDispersionFloor;
          dcdisp[c] = sigmoid(yd);
        }
        if (polarisation_) {
          double ya = 0.0;
          polarisation_networks_.evaluate(k, g, &ya, forces ? &gp[c * nf] : nullptr, ws);
          apol[c] = alpha_[k] * (softplus(ya) + kPolarisationFloor);
          dapol[c] = alpha_[k] * sigmoid(ya);
        }
      }
    }
  }
  for (int64_t c = 0; c < nc; ++c)
    if (!std::isfinite(es[c]) || !std::isfinite(partials[2 * c]) || !std::isfinite(partials[2 * c + 1]))
      throw InvalidInput("pinn model: non-finite atomic energy, raw charge or weight for centre " + std::to_string(c));
  // charges with the total charge imposed exactly (Eq. 1 of atomforge/charges.hpp)
  std::vector<double> q(nc, 0.0);
  double sums[2] = {0.0, 0.0};
  if (nc > 0) {
    charge_partial_sums(partials.data(), nc, 1, sums);
    finish_charges(partials.data(), nc, 1, sums, req.total_charge, q.data());
  }
  // electrostatics of the centres' Gaussian charges
  std::vector<double> pos(3 * nc), sig(nc);
  for (int64_t c = 0; c < nc; ++c) {
    const int64_t p = nl.centre(c);
    for (int d = 0; d < 3; ++d) pos[3 * c + d] = nl.positions[3 * p + d];
    sig[c] = sigma_[nl.species[p]];
  }
  EwaldOptions opt;
  opt.accuracy = accuracy_;
  opt.min_distance = req.min_distance;
  opt.n_threads = req.n_threads;
  const ElectrostaticsResult el = electrostatics(pos.data(), q.data(), sig.data(), nc, req.cell, periodic, opt);
  Polarisation pol;
  if (polarisation_) {
    for (int64_t c = 0; c < nc; ++c)
      if (!std::isfinite(apol[c]))
        throw InvalidInput("pinn model: non-finite polarisability for centre " + std::to_string(c));
    PolGeometry geo;
    if (periodic) {  // real-space images within the Ewald cutoff (and where Thole damping is not yet negligible)
      double amax = 0.0;
      for (int64_t c = 0; c < nc; ++c) amax = std::max(amax, apol[c]);
      const double r_thole = std::cbrt(kTholeNegligible * amax / thole_);  // e^-s < 1e-16 beyond
      // the dipole sums' own splitting (both parts of the dense tensor cost ~N^2; ewald.hpp)
      EwaldOptions dopt;
      dopt.accuracy = accuracy_;
      dopt.alpha = dipole_ewald_alpha(req.cell, nc, accuracy_);
      dopt.min_distance = req.min_distance;
      const EwaldParameters dpar = ewald_parameters(req.cell, nc, 0.0, dopt);
      const double r_pol = std::max(dpar.r_cut, r_thole);
      const NeighborList pl = build_neighbor_list(pos.data(), nc, req.cell, {true, true, true}, r_pol,
                                                  req.min_distance, req.n_threads);
      geo.offsets.assign(nc + 1, 0);
      for (int64_t i = 0; i < nc; ++i) {
        for (int64_t m = pl.offsets[i]; m < pl.offsets[i + 1]; ++m) {
          const int64_t pj = pl.neighbors[m];
          double d[3], r2 = 0.0;
          for (int x = 0; x < 3; ++x) {
            d[x] = pl.positions[3 * i + x] - pl.positions[3 * pj + x];  // both wrapped by the list
            r2 += d[x] * d[x];
          }
          if (r2 >= r_pol * r_pol || r2 == 0.0) continue;
          geo.partner.push_back(pl.owner[pj]);
          for (int x = 0; x < 3; ++x) geo.d.push_back(d[x]);
        }
        geo.offsets[i + 1] = static_cast<int64_t>(geo.partner.size());
      }
      geo.beta = dpar.alpha;
      geo.kvec = ewald_kvectors(req.cell, dpar);
      const double* h = req.cell;
      geo.volume = std::fabs(h[0] * (h[4] * h[8] - h[5] * h[7]) - h[1] * (h[3] * h[8] - h[5] * h[6]) +
                             h[2] * (h[3] * h[7] - h[4] * h[6]));
      if (static_cast<double>(geo.kvec.size() / 3) * static_cast<double>(nc) > kMaxPolarisationKTable)
        throw InvalidInput("pinn model: periodic polarisation needs " + std::to_string(geo.kvec.size() / 3) +
                           " reciprocal vectors for " + std::to_string(nc) + " atoms, above the table bound " +
                           std::to_string(static_cast<int64_t>(kMaxPolarisationKTable)) +
                           " (lower the Ewald accuracy or the system size)");
    } else {
      geo = open_geometry(pos.data(), nc);
    }
    pol = induced_dipoles(pos.data(), q.data(), apol.data(), nc, thole_, geo, nt_threads);
  }
  // dE/dq_i: the electrostatic potential plus the polarisation term's charge derivative
  std::vector<double> phi(el.potential.begin(), el.potential.end());
  if (polarisation_)
    for (int64_t c = 0; c < nc; ++c) phi[c] += pol.dq[c];
  for (int64_t c = 0; c < nc && dispersion_; ++c)
    if (!std::isfinite(cdisp[c]))
      throw InvalidInput("pinn model: non-finite dispersion scaling for centre " + std::to_string(c));
  // dispersion: per centre energy E_i^disp = 1/2 sum_j e_ij (full list), forces, virial (header comment)
  std::vector<double> edisp(dispersion_ ? nc : 0, 0.0), fdisp(dispersion_ ? 3 * nc : 0, 0.0);
  double wdisp[9] = {0, 0, 0, 0, 0, 0, 0, 0, 0};
  if (dispersion_ && nc > 0) {
    static const double kUnitCell[9] = {1, 0, 0, 0, 1, 0, 0, 0, 1};  // ignored along open directions
    const NeighborList dl = build_neighbor_list(pos.data(), nc, periodic ? req.cell : kUnitCell,
                                                {periodic, periodic, periodic}, r_disp_, req.min_distance,
                                                req.n_threads);
    std::vector<double> c6(nc), wa(9 * nc, 0.0);
    std::vector<int32_t> kk(nc);
    for (int64_t c = 0; c < nc; ++c) {
      kk[c] = nl.species[nl.centre(c)];
      c6[c] = c6_[kk[c]] * cdisp[c];
    }
    const double* p = dl.positions.data();
#pragma omp parallel for num_threads(nt_threads) schedule(dynamic, 16)
    for (int64_t i = 0; i < nc; ++i) {
      double e = 0.0, f[3] = {0, 0, 0}, wv[9] = {0, 0, 0, 0, 0, 0, 0, 0, 0};
      for (int64_t m = dl.offsets[i]; m < dl.offsets[i + 1]; ++m) {
        const int64_t pj = dl.neighbors[m];
        const int64_t j = dl.owner[pj];
        const double d[3] = {p[3 * pj] - p[3 * i], p[3 * pj + 1] - p[3 * i + 1], p[3 * pj + 2] - p[3 * i + 2]};
        const double r2 = d[0] * d[0] + d[1] * d[1] + d[2] * d[2], r = std::sqrt(r2);
        if (r >= r_disp_) continue;
        double s, ds;
        dispersion_switch(r, r_on_, r_disp_, s, ds);
        const double R0 = r0_[kk[i]] + r0_[kk[j]], R03 = R0 * R0 * R0, r4 = r2 * r2;
        const double D = r4 * r2 + R03 * R03, C = std::sqrt(c6[i] * c6[j]);
        e += -C * s / D;
        const double de = -C * (ds / D - s * 6.0 * r4 * r / (D * D));  // d e_ij / dr
        const double cc = de / r;
        for (int a = 0; a < 3; ++a) {
          f[a] += cc * d[a];
          for (int b = 0; b < 3; ++b) wv[3 * a + b] -= 0.5 * cc * d[a] * d[b];
        }
      }
      edisp[i] = 0.5 * e;
      for (int a = 0; a < 3; ++a) fdisp[3 * i + a] = f[a];
      for (int k = 0; k < 9; ++k) wa[9 * i + k] = wv[k];
    }
    for (int64_t i = 0; i < nc; ++i)
      for (int k = 0; k < 9; ++k) wdisp[k] += wa[9 * i + k];
  }

  out.energy = el.energy;
  out.atomic_energies.assign(nc, 0.0);
  for (int64_t c = 0; c < nc; ++c) {
    out.atomic_energies[c] = es[c] + 0.5 * q[c] * el.potential[c];
    out.energy += es[c];
  }
  if (dispersion_)
    for (int64_t c = 0; c < nc; ++c) {
      out.atomic_energies[c] += edisp[c];
      out.energy += edisp[c];
    }
  if (polarisation_)
    for (int64_t c = 0; c < nc; ++c) {
      out.atomic_energies[c] += pol.eatom[c];
      out.energy += pol.eatom[c];
    }
  if (!std::isfinite(out.energy)) throw InvalidInput("pinn model: the energy is not finite");
  out.committee_energies.assign(1, out.energy);
  out.energy_uncertainty = 0.0;
  for (int k = 0; k < 9; ++k) out.virial[k] = 0.0;
  if (forces) {
    // dE/dG: short-range part plus the charge-derivative part (header comment)
    const double W = sums[1], lambda = nc > 0 ? (sums[0] - req.total_charge) / W : 0.0;
    double phibar = 0.0;
    for (int64_t c = 0; c < nc; ++c) phibar += partials[2 * c + 1] * phi[c];
    if (nc > 0) phibar /= W;
    std::vector<double> dEdG(nc * nf, 0.0);
    for (int64_t c = 0; c < nc; ++c) {
      const double u = phi[c] - phibar;
      const double aq = u * charge_scale_, aw = -lambda * u * dw[c];
      for (int64_t j = 0; j < nf; ++j) {
        double v = energy_scale_ * gE[c * nf + j] + aq * gq[c * nf + j];
        if (weighted_) v += aw * gw[c * nf + j];
        dEdG[c * nf + j] = v;
      }
      if (dispersion_) {  // dE/dc_i = sum_j e_ij / (2 c_i) = E_i^disp / c_i; dc_i/dNN_c = sigmoid(NN_c)
        const double ad = edisp[c] / cdisp[c] * dcdisp[c];
        for (int64_t j = 0; j < nf; ++j) dEdG[c * nf + j] += ad * gd[c * nf + j];
      }
      if (polarisation_) {  // dE/dalpha_i at fixed mu; dalpha_i/dNN_a = alpha_k sigmoid(NN_a)
        const double ap = pol.dalpha[c] * dapol[c];
        for (int64_t j = 0; j < nf; ++j) dEdG[c * nf + j] += ap * gp[c * nf + j];
      }
    }
    out.forces.assign(3 * nt, 0.0);
    descriptor_->vjp(nl, dEdG.data(), out.forces.data(), out.virial, nullptr, req.n_threads);
    for (int64_t c = 0; c < nc; ++c) {
      const int64_t p = nl.centre(c);
      for (int d = 0; d < 3; ++d) out.forces[3 * p + d] += el.forces[3 * c + d];
      if (dispersion_)
        for (int d = 0; d < 3; ++d) out.forces[3 * p + d] += fdisp[3 * c + d];
      if (polarisation_)
        for (int d = 0; d < 3; ++d) out.forces[3 * p + d] += pol.forces[3 * c + d];
    }
    for (int k = 0; k < 9; ++k) out.virial[k] += el.virial[k];
    if (dispersion_)
      for (int k = 0; k < 9; ++k) out.virial[k] += wdisp[k];
    if (polarisation_)
      for (int k = 0; k < 9; ++k) out.virial[k] += pol.virial[k];
    for (double x : out.forces)
      if (!std::isfinite(x)) throw InvalidInput("pinn model: non-finite forces");
  }
  out.charges = q;
  out.charge_partials = partials;
  out.dipole.assign(3, 0.0);
  for (int64_t c = 0; c < nc; ++c)
    for (int d = 0; d < 3; ++d) out.dipole[d] += q[c] * pos[3 * c + d];
  if (polarisation_)  // plus the induced dipoles
    for (int64_t c = 0; c < nc; ++c)
      for (int d = 0; d < 3; ++d) out.dipole[d] += pol.mu[3 * c + d];
}

/// Registry entry (src/models/list.def).
std::unique_ptr<Model> make_model_pinn(const ModelFile& file) { return std::make_unique<PinnModel>(file); }

}  // namespace atomforge
