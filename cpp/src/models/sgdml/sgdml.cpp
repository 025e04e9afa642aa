#include "models/sgdml/sgdml.hpp"

#include <algorithm>
#include <cmath>
#include <map>
#include <sstream>

#include "atomforge/elements.hpp"
#include "atomforge/errors.hpp"
#include "common/simd_math.hpp"
#include "common/threads.hpp"

#ifdef ATOMFORGE_HAVE_OPENMP
#include <omp.h>
#endif

namespace atomforge {

constexpr int64_t kW = 16;

struct SGDMLRows {
  std::vector<double> XT, VT;
  int64_t n = 0, ld = 0, d = 0;
  int64_t blocks() const { return ld / kW; }
};

namespace {

const double kSqrt5 = std::sqrt(5.0);

// Descriptor x (d) and pair Jacobian rows jac (d, 3) = dx_m/dr_a for pair m = (a, b), a > b
// (dx_m/dr_b = -jac). Throws for coincident atoms / non-finite positions.
void descriptor_and_jacobian(const double* r, int64_t n, double* x, double* jac, int64_t conf) {
  int64_t m = 0;
  for (int64_t a = 1; a < n; ++a) {
    for (int64_t b = 0; b < a; ++b, ++m) {
      const double dx = r[3 * a] - r[3 * b], dy = r[3 * a + 1] - r[3 * b + 1], dz = r[3 * a + 2] - r[3 * b + 2];
      const double d2 = dx * dx + dy * dy + dz * dz;
      if (!(d2 > 0.0) || !std::isfinite(d2)) {
        std::ostringstream msg;
        msg << "sGDML: configuration " << conf << ": atoms " << b << " and " << a
            << (std::isfinite(d2) ? " are at the same position" : " have non-finite positions");
        throw InvalidInput(msg.str());
      }
      const double inv = 1.0 / std::sqrt(d2);
      x[m] = inv;
      if (jac) {
        const double i3 = inv * inv * inv;
        jac[3 * m] = -dx * i3;
        jac[3 * m + 1] = -dy * i3;
        jac[3 * m + 2] = -dz * i3;
      }
    }
  }
}

// Training rows in blocks of kW rows, each block a contiguous (d, kW) tile (rows padded to a
// multiple of kW with zeros: a zero v makes a padding row contribute exactly nothing), so that
// the kernel is vectorised over rows: no horizontal reduction per row, sequential streaming, and
// the differences x_q - x_i are formed exactly (no |x|^2 - 2 x.y + |y|^2 expansion, hence no
// cancellation).
SGDMLRows transpose_rows(const double* X, const double* V, int64_t n_rows, int64_t d) {
  SGDMLRows T;
  T.n = n_rows;
  T.d = d;
  T.ld = std::max<int64_t>(kW, (n_rows + kW - 1) / kW * kW);
  T.XT.assign(static_cast<size_t>(d * T.ld), 0.0);
  T.VT.assign(static_cast<size_t>(d * T.ld), 0.0);
  for (int64_t i = 0; i < n_rows; ++i)
    for (int64_t m = 0; m < d; ++m) {
      const int64_t k = (i / kW) * d * kW + m * kW + i % kW;
      T.XT[k] = X[i * d + m];
      T.VT[k] = V[i * d + m];
    }
  return T;
}

// Kernel sums of one query descriptor y over the row blocks [b0, b1) of T:
//   g (d) += sum_i H(y - x_i) v_i,   returns sum_i -grad k(y - x_i) . v_i.
// acc: scratch of d * kW doubles. The summation order is fixed (independent of threads).
double kernel_rows_T(const double* y, const SGDMLRows& T, int64_t b0, int64_t b1, double sigma, double* g,
                     double* acc) {
  const double fact = 5.0 / (3.0 * sigma * sigma * sigma), diag = 5.0 / sigma, s5 = kSqrt5 / sigma;
  const int64_t d = T.d;
  std::fill(acc, acc + d * kW, 0.0);
  double ev[kW] = {0.0};
  for (int64_t blk = b0; blk < b1; ++blk) {
    const double* xb = T.XT.data() + blk * d * kW;  // this block's (d, kW) tile, contiguous
    const double* vb = T.VT.data() + blk * d * kW;
    double s2[kW] = {0.0}, sv[kW] = {0.0};
    for (int64_t m = 0; m < d; ++m) {
      const double* xm = xb + m * kW;
      const double* vm = vb + m * kW;
      const double ym = y[m];
#pragma omp simd
      for (int64_t w = 0; w < kW; ++w) {
        const double t = ym - xm[w];
        s2[w] += t * t;
        sv[w] += t * vm[w];
      }
    }
    double a[kW], b[kW], nrm[kW], ex[kW];
    AF_SIMD
    for (int64_t w = 0; w < kW; ++w) nrm[w] = std::sqrt(s2[w]);
    AF_SIMD
    for (int64_t w = 0; w < kW; ++w) ex[w] = simd::exp(-s5 * nrm[w]);
    AF_SIMD
    for (int64_t w = 0; w < kW; ++w) {
      const double base = fact * ex[w];
      a[w] = base * diag * sv[w];
      b[w] = base * (sigma + kSqrt5 * nrm[w]);
      ev[w] += sv[w] * b[w];
    }
    for (int64_t m = 0; m < d; ++m) {
      const double* xm = xb + m * kW;
      const double* vm = vb + m * kW;
      const double ym = y[m];
      double* am = acc + m * kW;
#pragma omp simd
      for (int64_t w = 0; w < kW; ++w) am[w] += a[w] * (ym - xm[w]) - b[w] * vm[w];
    }
  }
  double E = 0.0;
  for (int64_t w = 0; w < kW; ++w) E += ev[w];
  for (int64_t m = 0; m < d; ++m) {
    double s = 0.0;
    for (int64_t w = 0; w < kW; ++w) s += acc[m * kW + w];
    g[m] += s;
  }
  return E;
}

// One query against every (training row, permutation) pair without storing permuted copies:
// |x - P x_i| = |P^-1 x - x_i| and H(x - P x_i) P v_i = P H(P^-1 x - x_i) v_i (the Matern kernel is
// isotropic and P is a coordinate permutation), so each permutation permutes the query once and
// streams the M unpermuted rows, which stay in cache (M d doubles instead of M S d).
// tp (S, d): descriptor index map of each permutation (xp[m] = x_i[tp[m]]); S = 1 with tp = null
// means the identity. The row blocks are split over nt threads; g (d) is overwritten.
double kernel_perms(const double* xq, const SGDMLRows& T, const int64_t* tp, int64_t S, double sigma, double* g,
                    int nt) {
  const int64_t d = T.d, nb = T.blocks();
  std::fill(g, g + d, 0.0);
  const int TH = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(nt, nb / 4)));
  std::vector<double> gpart(static_cast<size_t>(TH) * d, 0.0), epart(TH, 0.0);
#pragma omp parallel num_threads(TH) if (TH > 1)
  {
    int t = 0;
#ifdef ATOMFORGE_HAVE_OPENMP
    t = omp_get_thread_num();
#endif
    const int64_t b0 = nb * t / TH, b1 = nb * (t + 1) / TH;
    std::vector<double> y(d), h(d), acc(d * kW);
    double* gp = gpart.data() + static_cast<size_t>(t) * d;
    for (int64_t p = 0; p < S; ++p) {
      if (!tp) {
        epart[t] += kernel_rows_T(xq, T, b0, b1, sigma, gp, acc.data());
        continue;
      }
      const int64_t* tpp = tp + p * d;
      for (int64_t m = 0; m < d; ++m) y[tpp[m]] = xq[m];
      std::fill(h.begin(), h.end(), 0.0);
      epart[t] += kernel_rows_T(y.data(), T, b0, b1, sigma, h.data(), acc.data());
      for (int64_t m = 0; m < d; ++m) gp[m] += h[tpp[m]];
    }
  }
  double E = 0.0;
  for (int t = 0; t < TH; ++t) {  // fixed order
    E += epart[t];
    for (int64_t m = 0; m < d; ++m) g[m] += gpart[static_cast<size_t>(t) * d + m];
  }
  return E;
}

// forces (n, 3) = J^T g
void jacobian_transpose(const double* jac, const double* g, int64_t n, double* f) {
  std::fill(f, f + 3 * n, 0.0);
  int64_t m = 0;
  for (int64_t a = 1; a < n; ++a)
    for (int64_t b = 0; b < a; ++b, ++m)
      for (int k = 0; k < 3; ++k) {
        const double v = g[m] * jac[3 * m + k];
        f[3 * a + k] += v;
        f[3 * b + k] -= v;
      }
}

// Kernel sums of n_conf configurations R (n_conf, n_atoms, 3) against rows T and permutations
// tp (S, d; null with S = 1: identity): E[q] and F[q] = J_q^T g_q (unscaled), either may be null.
// Many configurations: one per thread; few: each one's row blocks split over the threads, outside
// any enclosing parallel region (in which a nested one would get a single thread).
// Throws InvalidInput naming the first bad configuration.
void kernel_sum_configs(const double* R, int64_t n_conf, int64_t n_atoms, const SGDMLRows& T, const int64_t* tp,
                        int64_t S, double sigma, double* E, double* F, int nt) {
  const int64_t d = T.d;
  std::string err;
  auto one = [&](int64_t q, double* x, double* jac, double* g, int threads) {
    try {
      descriptor_and_jacobian(R + q * 3 * n_atoms, n_atoms, x, jac, q);
    } catch (const InvalidInput& e) {
#pragma omp critical
      if (err.empty()) err = e.what();
      return;
    }
    const double e = kernel_perms(x, T, tp, S, sigma, g, threads);
    if (E) E[q] = e;
    if (F) jacobian_transpose(jac, g, n_atoms, F + q * 3 * n_atoms);
  };
  if (n_conf >= nt && nt > 1) {
#pragma omp parallel num_threads(nt)
    {
      std::vector<double> x(d), jac(3 * d), g(d);
#pragma omp for schedule(dynamic, 1)
      for (int64_t q = 0; q < n_conf; ++q) one(q, x.data(), jac.data(), g.data(), 1);
    }
  } else {
    std::vector<double> x(d), jac(3 * d), g(d);
    for (int64_t q = 0; q < n_conf && err.empty(); ++q) one(q, x.data(), jac.data(), g.data(), nt);
  }
  if (!err.empty()) throw InvalidInput(err);
}

std::string formula_of(const std::vector<int>& z) {
  std::map<std::string, int> count;
  for (int v : z) count[element_symbol(v)]++;
  std::string out;
  auto put = [&](const std::string& s) {
    auto it = count.find(s);
    if (it == count.end()) return;
    out += s + (it->second > 1 ? std::to_string(it->second) : "");
    count.erase(it);
  };
  put("C");  // Hill order
  if (out.size()) put("H");
  for (auto& kv : count) out += kv.first + (kv.second > 1 ? std::to_string(kv.second) : "");
  return out;
}

}  // namespace

void sgdml_descriptors(const double* R, int64_t n_conf, int64_t n_atoms, double* X, int n_threads, double* jac) {
  const int64_t d = sgdml_descriptor_size(n_atoms);
  const int nt = resolve_threads(n_threads);
  std::string err;
#pragma omp parallel for num_threads(nt) schedule(static)
  for (int64_t q = 0; q < n_conf; ++q) {
    try {
      descriptor_and_jacobian(R + q * 3 * n_atoms, n_atoms, X + q * d, jac ? jac + q * 3 * d : nullptr, q);
    } catch (const InvalidInput& e) {
#pragma omp critical
      if (err.empty()) err = e.what();
    }
  }
  if (!err.empty()) throw InvalidInput(err);
}

void sgdml_kernel_sum(const double* R_query, int64_t n_query, int64_t n_atoms, const double* X, const double* V,
                      int64_t n_rows, double sigma, double* energy, double* forces, int n_threads) {
  if (n_atoms < 2) throw InvalidInput("sGDML needs at least 2 atoms");
  if (!(sigma > 0.0)) throw InvalidInput("sGDML: sigma must be > 0");
  const int64_t d = sgdml_descriptor_size(n_atoms);
  kernel_sum_configs(R_query, n_query, n_atoms, transpose_rows(X, V, n_rows, d), nullptr, 1, sigma, energy, forces,
                     resolve_threads(n_threads));
}

std::vector<int64_t> sgdml_tril_perm(const int64_t* perm, int64_t n) {
  // index of pair (a, b), a != b, in tril order
  auto idx = [](int64_t a, int64_t b) {
    if (a < b) std::swap(a, b);
    return a * (a - 1) / 2 + b;
  };
  std::vector<int64_t> out(sgdml_descriptor_size(n));
  int64_t m = 0;
  for (int64_t a = 1; a < n; ++a)
    for (int64_t b = 0; b < a; ++b, ++m) out[m] = idx(perm[a], perm[b]);
  return out;
}

void sgdml_kernel_matrix(const double* R, int64_t M, int64_t n, const int64_t* tp, int64_t S, double sigma,
                         const int64_t* rows, int64_t n_rows, bool lower_only, double* K, int n_threads) {
  if (n < 2) throw InvalidInput("sGDML needs at least 2 atoms");
  if (!(sigma > 0.0)) throw InvalidInput("sGDML: sigma must be > 0");
  const int64_t d = sgdml_descriptor_size(n), n3 = 3 * n, ld = M * n3;
  for (int64_t k = 0; k < S * d; ++k)
    if (tp[k] < 0 || tp[k] >= d) throw InvalidInput("sGDML: tril_perms entry out of range");
  for (int64_t r = 0; r < n_rows; ++r)
    if (rows[r] < 0 || rows[r] >= M) throw InvalidInput("sGDML: kernel row index out of range");
  std::vector<double> X(M * d), JAC(M * 3 * d);
  for (int64_t i = 0; i < M; ++i) descriptor_and_jacobian(R + i * n3, n, &X[i * d], &JAC[i * 3 * d], i);
  std::vector<int64_t> pa(d), pb(d);
  {
    int64_t m = 0;
    for (int64_t a = 1; a < n; ++a)
      for (int64_t b = 0; b < a; ++b, ++m) pa[m] = a, pb[m] = b;
  }
  const int nt = resolve_threads(n_threads);
  const double fact = 5.0 / (3.0 * sigma * sigma * sigma * sigma), s5 = kSqrt5 / sigma;
  const int64_t total = n_rows * M;
#pragma omp parallel num_threads(nt)
  {
    std::vector<double> dp(d), u(n3), w(n3), blk(n3 * n3);
#pragma omp for schedule(dynamic, 16)
    for (int64_t t = 0; t < total; ++t) {
      const int64_t r = t / M, j = t % M, i = rows[r];
      if (lower_only && j > i) continue;
      std::fill(blk.begin(), blk.end(), 0.0);
      const double* xi = &X[i * d];
      const double* xj = &X[j * d];
      const double* ji = &JAC[i * 3 * d];
      const double* jj = &JAC[j * 3 * d];
      for (int64_t p = 0; p < S; ++p) {
        const int64_t* tpp = tp + p * d;
        double r2 = 0.0;
        for (int64_t m = 0; m < d; ++m) {
          dp[m] = xi[m] - xj[tpp[m]];
          r2 += dp[m] * dp[m];
        }
        const double nrm = std::sqrt(r2);
        const double base = fact * std::exp(-s5 * nrm);
        const double c1 = 5.0 * base, c2 = -(sigma * sigma + sigma * kSqrt5 * nrm) * base;
        std::fill(u.begin(), u.end(), 0.0);
        std::fill(w.begin(), w.end(), 0.0);
        for (int64_t m = 0; m < d; ++m) {
          const int64_t q = tpp[m];
          for (int k = 0; k < 3; ++k) {
            u[3 * pa[m] + k] += dp[m] * ji[3 * m + k];
            u[3 * pb[m] + k] -= dp[m] * ji[3 * m + k];
            w[3 * pa[q] + k] += dp[m] * jj[3 * q + k];
            w[3 * pb[q] + k] -= dp[m] * jj[3 * q + k];
          }
        }
        for (int64_t a = 0; a < n3; ++a) {
          const double ua = c1 * u[a];
          double* row = &blk[a * n3];
          for (int64_t b = 0; b < n3; ++b) row[b] += ua * w[b];
        }
        for (int64_t m = 0; m < d; ++m) {
          const int64_t q = tpp[m];
          const int64_t A = pa[m], B = pb[m], C = pa[q], E = pb[q];
          for (int k = 0; k < 3; ++k) {
            const double jak = c2 * ji[3 * m + k];
            for (int l = 0; l < 3; ++l) {
              const double o = jak * jj[3 * q + l];
              blk[(3 * A + k) * n3 + 3 * C + l] += o;
              blk[(3 * A + k) * n3 + 3 * E + l] -= o;
              blk[(3 * B + k) * n3 + 3 * C + l] -= o;
              blk[(3 * B + k) * n3 + 3 * E + l] += o;
            }
          }
        }
      }
      for (int64_t a = 0; a < n3; ++a) {
        double* dst = K + (r * n3 + a) * ld + j * n3;
        std::copy(&blk[a * n3], &blk[a * n3] + n3, dst);
      }
    }
  }
}

SGDML::SGDML(const ModelFile& f) {
  const std::string& w = f.where();
  species_ = f.check_header("sgdml");
  const auto& numbers = f.i64_vector("sgdml.numbers");
  for (size_t a = 0; a < numbers.size(); ++a) {
    const int64_t z = numbers[a];
    if (std::find(species_.begin(), species_.end(), z) == species_.end())
      throw InvalidInput(w + ": record 'sgdml.numbers' entry " + std::to_string(a) + " = " + std::to_string(z) +
                         " is not one of the elements of record 'species'");
    numbers_.push_back(static_cast<int>(z));
  }
  const int64_t n = n_atoms();
  if (n < 2) throw InvalidInput(w + ": sgdml.numbers needs at least 2 atoms");
  dim_ = sgdml_descriptor_size(n);
  sigma_ = f.f64_scalar("sgdml.sigma");
  std_ = f.f64_scalar("sgdml.std");
  c_ = f.f64_scalar("sgdml.c");
  cutoff_ = f.f64_scalar("sgdml.cutoff");
  if (!(sigma_ > 0.0) || !std::isfinite(sigma_)) throw InvalidInput(w + ": sgdml.sigma must be a positive number");
  if (!std::isfinite(std_) || !std::isfinite(c_)) throw InvalidInput(w + ": sgdml.std / sgdml.c must be finite");
  if (!(cutoff_ > 0.0) || !(cutoff_ <= kMaxSGDMLCutoff)) {
    std::ostringstream s;
    s << w << ": record 'sgdml.cutoff' = " << cutoff_ << " A is out of range (0 to " << kMaxSGDMLCutoff << " A)";
    throw InvalidInput(s.str());
  }
  // records only the Python side uses (export to sgdml .npz): checked all the same
  if (f.has("sgdml.lambda")) (void)f.f64_scalar("sgdml.lambda");
  std::vector<uint64_t> sx, sv;
  const auto& X = f.f64("sgdml.R_desc", &sx);
  const auto& V = f.f64("sgdml.R_d_desc_alpha", &sv);
  if (sx.size() != 2 || static_cast<int64_t>(sx[1]) != dim_ || sx != sv)
    throw InvalidInput(w + ": sgdml.R_desc and sgdml.R_d_desc_alpha must both be (n_train, " +
                       std::to_string(dim_) + ")");
  n_train_ = static_cast<int64_t>(sx[0]);
  if (n_train_ < 1) throw InvalidInput(w + ": sgdml model has no training points");
  if (f.has("sgdml.alphas_F")) {
    std::vector<uint64_t> sa;
    (void)f.f64("sgdml.alphas_F", &sa);
    if (sa.size() != 2 || static_cast<int64_t>(sa[0]) != n_train_ || static_cast<int64_t>(sa[1]) != 3 * n)
      throw InvalidInput(w + ": record 'sgdml.alphas_F' must be (n_train, " + std::to_string(3 * n) + ")");
  }
  for (double v : X)
    if (!std::isfinite(v)) throw InvalidInput(w + ": sgdml.R_desc has non-finite entries");
  for (double v : V)
    if (!std::isfinite(v)) throw InvalidInput(w + ": sgdml.R_d_desc_alpha has non-finite entries");
  std::vector<uint64_t> sp;
  const auto& P = f.i64("sgdml.perms");
  const auto& prec = f.records().at("sgdml.perms");
  sp = prec.shape;
  if (sp.size() != 2 || static_cast<int64_t>(sp[1]) != n || sp[0] < 1)
    throw InvalidInput(w + ": sgdml.perms must be (n_perms, " + std::to_string(n) + ")");
  n_perms_ = static_cast<int64_t>(sp[0]);
  if (n_perms_ > kMaxSGDMLPermEntries / dim_)
    throw InvalidInput(w + ": record 'sgdml.perms' has " + std::to_string(n_perms_) + " permutations of " +
                       std::to_string(n) + " atoms: their index table would exceed " +
                       std::to_string(kMaxSGDMLPermEntries) + " entries");
  tp_.resize(n_perms_ * dim_);
  for (int64_t p = 0; p < n_perms_; ++p) {
    std::vector<int> seen(n, 0);
    for (int64_t a = 0; a < n; ++a) {
      const int64_t v = P[p * n + a];
      if (v < 0 || v >= n || seen[v]++) throw InvalidInput(w + ": sgdml.perms row " + std::to_string(p) + " is not a permutation");
      if (numbers_[v] != numbers_[a])
        throw InvalidInput(w + ": sgdml.perms row " + std::to_string(p) + " maps atoms of different elements");
    }
    const std::vector<int64_t> tril = sgdml_tril_perm(&P[p * n], n);
    std::copy(tril.begin(), tril.end(), tp_.begin() + p * dim_);
  }
  // Unpermuted training rows (transposed, see SGDMLRows) plus the descriptor index map of every permutation.
  rows_ = std::make_shared<SGDMLRows>(transpose_rows(X.data(), V.data(), n_train_, dim_));
  formula_ = formula_of(numbers_);
}

void SGDML::predict(const double* R, int64_t n_conf, double* E, double* F, int n_threads) const {
  const int64_t n = n_atoms();
  kernel_sum_configs(R, n_conf, n, *rows_, tp_.data(), n_perms_, sigma_, E, F, resolve_threads(n_threads));
  if (E)
    for (int64_t q = 0; q < n_conf; ++q) E[q] = E[q] * std_ + c_;
  if (F)
    for (int64_t k = 0; k < n_conf * 3 * n; ++k) F[k] *= std_;
}

void SGDML::compute(const NeighborView& nl, const ComputeRequest& req, ModelOutput& out) const {
  const bool per_atom_virial = req.per_atom_virial;
  const int n_threads = req.n_threads;
  const int64_t n = n_atoms();
  if (nl.n_centres != n)
    throw InvalidInput("sGDML model for " + formula_ + " (" + std::to_string(n) + " atoms) applied to " +
                       std::to_string(nl.n_centres) + " atoms");
  if (nl.n_total != nl.n_centres)
    throw InvalidInput("sGDML models are non-periodic (one isolated molecule): the input has " +
                       std::to_string(nl.n_total - nl.n_centres) +
                       " periodic images/ghost atoms; use pbc=False (or a cell large enough that no image is "
                       "within the model's cutoff)");
  std::vector<double> R(3 * n), F(3 * n);
  for (int64_t c = 0; c < n; ++c) {
    const int64_t p = nl.centre(c);
    if (p < 0 || p >= nl.n_total) throw InvalidInput("sGDML: centre index out of range");
    const int32_t s = nl.species[p];
    if (s < 0 || s >= static_cast<int32_t>(species_.size()))
      throw InvalidInput("sGDML: atom " + std::to_string(c) + " has an invalid species index");
    if (species_[s] != numbers_[c])
      throw InvalidInput("atom " + std::to_string(c) + " is " + element_symbol(species_[s]) +
                         ", the model expects " + element_symbol(numbers_[c]) + " (sGDML model for " + formula_ +
                         ": atoms must be in the training molecule's order)");
    for (int k = 0; k < 3; ++k) R[3 * c + k] = nl.positions[3 * p + k];
  }
  // A global model sees every pair of the molecule: all of them at least min_distance apart.
  if (!(req.min_distance >= 0.0) || !std::isfinite(req.min_distance))
    throw InvalidInput("min_distance must be >= 0 and finite, got " + std::to_string(req.min_distance));
  for (int64_t a = 1; a < n; ++a)
    for (int64_t b = 0; b < a; ++b) {
      double r2 = 0.0;
      for (int k = 0; k < 3; ++k) r2 += (R[3 * a + k] - R[3 * b + k]) * (R[3 * a + k] - R[3 * b + k]);
      if (r2 < req.min_distance * req.min_distance || r2 == 0.0)
        throw AtomsTooClose(nl.centre(b), nl.centre(a), std::sqrt(r2), req.min_distance);
    }
  const int64_t d = dim_;
  std::vector<double> x(d), jac(3 * d), g(d);
  descriptor_and_jacobian(R.data(), n, x.data(), jac.data(), 0);
  const double e = kernel_perms(x.data(), *rows_, tp_.data(), n_perms_, sigma_, g.data(), resolve_threads(n_threads));
  for (int64_t m = 0; m < d; ++m) g[m] *= std_;
  jacobian_transpose(jac.data(), g.data(), n, F.data());
  const double E = e * std_ + c_;
  if (!std::isfinite(E)) throw InvalidInput("the model produced a non-finite energy");
  out.energy = E;
  out.atomic_energies.assign(n, E / static_cast<double>(n));
  out.forces.assign(3 * nl.n_total, 0.0);
  for (int64_t c = 0; c < n; ++c)
    for (int k = 0; k < 3; ++k) out.forces[3 * nl.centre(c) + k] = F[3 * c + k];
  // Virial: E depends on the inverse distances x_ab only, so W = -sum_pairs r_ab (x) dE/dr_ab
  // (= sum_i r_i (x) F_i); per atom: half of each pair's term. dE/dx_ab = -g_ab (g scaled by std).
  for (int k = 0; k < 9; ++k) out.virial[k] = 0.0;
  if (per_atom_virial) out.per_atom_virial.assign(9 * nl.n_total, 0.0);
  int64_t m = 0;
  for (int64_t a = 1; a < n; ++a)
    for (int64_t b = 0; b < a; ++b, ++m) {
      double rab[3], gr[3];
      for (int k = 0; k < 3; ++k) {
        rab[k] = R[3 * a + k] - R[3 * b + k];
        gr[k] = -g[m] * jac[3 * m + k];  // dE/dr_ab
      }
      for (int k = 0; k < 3; ++k)
        for (int l = 0; l < 3; ++l) {
          const double v = -rab[k] * gr[l];
          out.virial[3 * k + l] += v;
          if (per_atom_virial) {
            out.per_atom_virial[9 * nl.centre(a) + 3 * k + l] += 0.5 * v;
            out.per_atom_virial[9 * nl.centre(b) + 3 * k + l] += 0.5 * v;
          }
        }
    }
}

}  // namespace atomforge

namespace atomforge {

std::vector<std::pair<std::string, std::string>> SGDML::describe() const {
  std::ostringstream sg, rc;
  sg << sigma_;
  rc << cutoff_ << " A";
  return {{"molecule", formula_ + " (" + std::to_string(n_atoms()) + " atoms, in this order)"},
          {"training points", std::to_string(n_train_)},
          {"permutations", std::to_string(n_perms_)},
          {"sigma", sg.str()},
          {"cutoff", rc.str()}};
}

/// Registry entry (src/models/list.def).
std::unique_ptr<Model> make_model_sgdml(const ModelFile& file) { return std::make_unique<SGDML>(file); }

}  // namespace atomforge
