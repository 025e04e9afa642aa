// Behler-Parrinello symmetry functions: values, vector-Jacobian product and sparse Jacobian.
// Formulas and references: include/atomforge/symmetry_functions.hpp.
#include "atomforge/symmetry_functions.hpp"

#include <algorithm>
#include <cmath>
#include <sstream>

#include "atomforge/errors.hpp"
#include "cutoff.hpp"

#ifdef ATOMFORGE_HAVE_OPENMP
#include <omp.h>
#endif

namespace atomforge {

// ---------------------------------------------------------------------------------------------
// Tables built once per descriptor
// ---------------------------------------------------------------------------------------------

struct SymmetryFunctions::Group {  // exp(-eta (r - r_s)^2) fc(r; r_c) for one (eta, r_s, r_c)
  double eta, r_s, r_c;
};

struct SymmetryFunctions::AngularFn {
  int64_t feature;
  double lambda, zeta, prefactor;  // prefactor = 2^(1 - zeta)
  int zeta_int;                    // zeta when integral (1..64), else -1
};

namespace {
struct RadialFn {
  int64_t feature;
  int32_t group;
  int32_t neighbor;
};
struct AngularGroup {
  int32_t group;
  bool narrow;  // G4 (with the r_jk term) or G5
  int32_t rc_slot;  // index into PairTable::rcs (narrow only)
  std::vector<int64_t> fns;  // indices into ElementTables::angular_fns
};
struct PairTable {  // functions of one central element for one unordered neighbour-element pair
  std::vector<AngularGroup> groups;
  std::vector<double> rcs;  // distinct r_c of narrow groups
};

inline double ipow(double x, int n) {
  double r = 1.0;
  while (n > 0) {
    if (n & 1) r *= x;
    x *= x;
    n >>= 1;
  }
  return r;
}
}  // namespace

struct SymmetryFunctions::ElementTables {
  std::vector<Group> groups;
  std::vector<RadialFn> radial;
  std::vector<AngularFn> angular_fns;
  std::vector<PairTable> pairs;  // index a * n_elements + b with a <= b
  double rc_max = 0.0;
  int64_t n_features = 0;
};

// Per-thread scratch space for one centre atom.
struct Workspace {
  std::vector<int64_t> slot, pos;  // CSR slot and position index of each kept neighbour
  std::vector<double> d, r, inv_r;  // d: (n, 3)
  std::vector<int32_t> elem;
  std::vector<int64_t> block;  // (n_elements + 1) start of each element's neighbours
  std::vector<double> R, dR;   // (n_groups, n)
  std::vector<double> gr, gvec;  // VJP accumulators: scalar along u_n, and (n, 3)
  // unsorted gather buffers
  std::vector<int64_t> tslot, tpos;
  std::vector<double> td, tr;
  std::vector<int32_t> telem;
  std::vector<int64_t> count;
  int64_t error_position = -1;
};

SymmetryFunctions::~SymmetryFunctions() = default;
SymmetryFunctions::SymmetryFunctions(const SymmetryFunctions&) = default;
SymmetryFunctions& SymmetryFunctions::operator=(const SymmetryFunctions&) = default;

SymmetryFunctions::SymmetryFunctions(int32_t n_elements, std::vector<SymmetryFunctionSpec> functions,
                                     CutoffType cutoff)
    : n_elements_(n_elements), functions_(std::move(functions)), cutoff_(cutoff) {
  if (n_elements_ < 1) throw InvalidInput("a descriptor needs at least one element");
  const int ci = static_cast<int>(cutoff_);
  if (ci < 0 || ci > static_cast<int>(CutoffType::Poly4)) {
    throw InvalidInput("unknown cutoff function type " + std::to_string(ci));
  }
  tables_.resize(n_elements_);
  per_element_.assign(n_elements_, 0);
  for (auto& t : tables_) t.pairs.resize(static_cast<size_t>(n_elements_) * n_elements_);
  for (size_t idx = 0; idx < functions_.size(); ++idx) {
    const auto& f = functions_[idx];
    auto fail = [&](const std::string& what) {
      std::ostringstream s;
      s << "symmetry function " << idx << ": " << what;
      throw InvalidInput(s.str());
    };
    const bool angular = f.type == SymmetryFunctionType::G4 || f.type == SymmetryFunctionType::G5;
    if (!angular && f.type != SymmetryFunctionType::G2) fail("unknown type (use G2, G4 or G5)");
    if (f.centre < 0 || f.centre >= n_elements_) fail("central element index out of range");
    if (f.neighbor1 < 0 || f.neighbor1 >= n_elements_) fail("neighbour element index out of range");
    if (angular && (f.neighbor2 < 0 || f.neighbor2 >= n_elements_))
      fail("angular function needs a second neighbour element in range");
    if (!angular && f.neighbor2 != -1) fail("G2 takes one neighbour element");
    for (double v : {f.eta, f.r_s, f.r_c, f.lambda, f.zeta})
      if (!std::isfinite(v)) fail("parameters must be finite");
    if (!(f.r_c > 0.0)) fail("cutoff radius r_c must be positive");
    if (f.eta < 0.0) fail("eta must be >= 0");
    if (f.r_s < 0.0 || f.r_s >= f.r_c) fail("r_s must satisfy 0 <= r_s < r_c");
    if (angular && !(f.lambda == 1.0 || f.lambda == -1.0)) fail("lambda must be +1 or -1");
    if (angular && !(f.zeta >= 1.0)) fail("zeta must be >= 1");

    auto& t = tables_[f.centre];
    const int64_t feature = per_element_[f.centre]++;
    t.rc_max = std::max(t.rc_max, f.r_c);
    max_cutoff_ = std::max(max_cutoff_, f.r_c);
    int32_t g = -1;
    for (size_t k = 0; k < t.groups.size(); ++k) {
      if (t.groups[k].eta == f.eta && t.groups[k].r_s == f.r_s && t.groups[k].r_c == f.r_c) {
        g = static_cast<int32_t>(k);
      }
    }
    if (g < 0) {
      t.groups.push_back({f.eta, f.r_s, f.r_c});
      g = static_cast<int32_t>(t.groups.size() - 1);
    }
    if (!angular) {
      t.radial.push_back({feature, g, f.neighbor1});
      continue;
    }
    AngularFn fn;
    fn.feature = feature;
    fn.lambda = f.lambda;
    fn.zeta = f.zeta;
    fn.prefactor = std::pow(2.0, 1.0 - f.zeta);
    fn.zeta_int = (f.zeta == std::floor(f.zeta) && f.zeta <= 64.0) ? static_cast<int>(f.zeta) : -1;
    t.angular_fns.push_back(fn);
    const int32_t a = std::min(f.neighbor1, f.neighbor2), b = std::max(f.neighbor1, f.neighbor2);
    auto& pt = t.pairs[static_cast<size_t>(a) * n_elements_ + b];
    const bool narrow = f.type == SymmetryFunctionType::G4;
    AngularGroup* ag = nullptr;
    for (auto& x : pt.groups)
      if (x.group == g && x.narrow == narrow) ag = &x;
    if (!ag) {
      int32_t slot = -1;
      if (narrow) {
        for (size_t k = 0; k < pt.rcs.size(); ++k)
          if (pt.rcs[k] == f.r_c) slot = static_cast<int32_t>(k);
        if (slot < 0) {
          pt.rcs.push_back(f.r_c);
          slot = static_cast<int32_t>(pt.rcs.size() - 1);
        }
      }
      pt.groups.push_back({g, narrow, slot, {}});
      ag = &pt.groups.back();
    }
    ag->fns.push_back(static_cast<int64_t>(t.angular_fns.size() - 1));
  }
  for (int32_t e = 0; e < n_elements_; ++e) {
    tables_[e].n_features = per_element_[e];
    n_features_ = std::max(n_features_, per_element_[e]);
  }
}

int64_t SymmetryFunctions::n_features(int32_t element) const {
  if (element < 0 || element >= n_elements_) throw InvalidInput("element index out of range");
  return per_element_[element];
}

void SymmetryFunctions::validate(const NeighborView& nl) const {
  if (nl.n_centres < 0 || nl.n_total < 0) throw InvalidInput("negative atom count");
  if (nl.n_centres == 0) return;
  if (!nl.positions || !nl.species || !nl.offsets || (!nl.neighbors && nl.offsets[nl.n_centres] > 0))
    throw InvalidInput("neighbour list has a null array");
  for (int64_t p = 0; p < nl.n_total; ++p) {
    if (nl.species[p] < 0 || nl.species[p] >= n_elements_) {
      throw InvalidInput("atom " + std::to_string(p) + " has element index " +
                         std::to_string(nl.species[p]) + ", outside the descriptor's " +
                         std::to_string(n_elements_) + " elements");
    }
    for (int k = 0; k < 3; ++k)
      if (!std::isfinite(nl.positions[3 * p + k]))
        throw InvalidInput("position of atom " + std::to_string(p) + " is not finite (NaN or inf)");
  }
  if (nl.offsets[0] != 0) throw InvalidInput("neighbour list offsets must start at 0");
  for (int64_t c = 0; c < nl.n_centres; ++c) {
    const int64_t i = nl.centre(c);
    if (i < 0 || i >= nl.n_total) throw InvalidInput("centre " + std::to_string(c) + " out of range");
    if (nl.offsets[c + 1] < nl.offsets[c]) throw InvalidInput("neighbour list offsets decrease");
    for (int64_t q = nl.offsets[c]; q < nl.offsets[c + 1]; ++q) {
      const int64_t j = nl.neighbors[q];
      if (j < 0 || j >= nl.n_total)
        throw InvalidInput("neighbour index " + std::to_string(j) + " of centre " +
                           std::to_string(c) + " out of range");
    }
  }
}

// ---------------------------------------------------------------------------------------------
// The per-centre kernel. Mode 0: values; 1: vector-Jacobian product; 2: values + Jacobian.
// ---------------------------------------------------------------------------------------------

template <int Mode>
void SymmetryFunctions::centre_kernel(const NeighborView& nl, int64_t c, const ElementTables& t,
                                      double* G, const double* w, double* pair_grad,
                                      DescriptorJacobian* jac, Workspace& ws) const {
  const int64_t i = nl.centre(c);
  const double* x = nl.positions;
  const double xi = x[3 * i], yi = x[3 * i + 1], zi = x[3 * i + 2];
  const double rc2 = t.rc_max * t.rc_max;
  const int ne = n_elements_;

  // Gather neighbours within this element's cutoff, then counting-sort them by element so that
  // the pair loops below run over contiguous single-element blocks.
  ws.tslot.clear(); ws.tpos.clear(); ws.td.clear(); ws.tr.clear(); ws.telem.clear();
  ws.count.assign(ne + 1, 0);
  for (int64_t q = nl.offsets[c]; q < nl.offsets[c + 1]; ++q) {
    const int64_t j = nl.neighbors[q];
    const double dx = x[3 * j] - xi, dy = x[3 * j + 1] - yi, dz = x[3 * j + 2] - zi;
    const double r2 = dx * dx + dy * dy + dz * dz;
    if (r2 >= rc2) continue;
    if (r2 == 0.0) {  // coincident atoms: reported after the parallel region
      ws.error_position = i;
      continue;
    }
    ws.tslot.push_back(q); ws.tpos.push_back(j);
    ws.td.push_back(dx); ws.td.push_back(dy); ws.td.push_back(dz);
    ws.tr.push_back(std::sqrt(r2));
    ws.telem.push_back(nl.species[j]);
    ++ws.count[nl.species[j] + 1];
  }
  const int64_t n = static_cast<int64_t>(ws.tslot.size());
  ws.block.assign(ne + 1, 0);
  for (int e = 0; e < ne; ++e) ws.block[e + 1] = ws.block[e] + ws.count[e + 1];
  ws.slot.resize(n); ws.pos.resize(n); ws.d.resize(3 * n); ws.r.resize(n); ws.inv_r.resize(n);
  ws.elem.resize(n);
  {
    std::vector<int64_t>& fill = ws.count;  // reuse as fill pointers
    for (int e = 0; e < ne; ++e) fill[e] = ws.block[e];
    for (int64_t m = 0; m < n; ++m) {
      const int64_t s = fill[ws.telem[m]]++;
      ws.slot[s] = ws.tslot[m]; ws.pos[s] = ws.tpos[m];
      for (int k = 0; k < 3; ++k) ws.d[3 * s + k] = ws.td[3 * m + k];
      ws.r[s] = ws.tr[m]; ws.inv_r[s] = 1.0 / ws.tr[m]; ws.elem[s] = ws.telem[m];
    }
  }

  // Radial factors R_g(r) = exp(-eta (r - r_s)^2) fc(r) and dR_g/dr for every group.
  const int64_t ng = static_cast<int64_t>(t.groups.size());
  ws.R.assign(ng * n, 0.0);
  ws.dR.assign(ng * n, 0.0);
  for (int64_t g = 0; g < ng; ++g) {
    const Group& gr = t.groups[g];
    double* R = ws.R.data() + g * n;
    double* dR = ws.dR.data() + g * n;
    for (int64_t m = 0; m < n; ++m) {
      const double r = ws.r[m];
      if (r >= gr.r_c) continue;
      double f, df;
      detail::cutoff_fdf(cutoff_, r, gr.r_c, f, df);
      const double s = r - gr.r_s;
      const double ex = std::exp(-gr.eta * s * s);
      R[m] = ex * f;
      dR[m] = ex * (df - 2.0 * gr.eta * s * f);
    }
  }

  const int64_t nf = n_features_;
  // Jacobian rows: entry 0 is the centre, entry 1 + m is sorted neighbour m.
  double* J = nullptr;
  if (Mode == 2) {
    const int64_t e0 = jac->entry_offsets[c];
    J = jac->values.data() + e0 * nf * 3;
    jac->position[e0] = i;
    for (int k = 0; k < 3; ++k) jac->displacement[3 * e0 + k] = 0.0;
    for (int64_t m = 0; m < n; ++m) {
      jac->position[e0 + 1 + m] = ws.pos[m];
      for (int k = 0; k < 3; ++k) jac->displacement[3 * (e0 + 1 + m) + k] = ws.d[3 * m + k];
    }
  }
  auto jadd = [&](int64_t m, int64_t f, double vx, double vy, double vz) {
    double* self = J + f * 3;
    double* other = J + ((1 + m) * nf + f) * 3;
    other[0] += vx; other[1] += vy; other[2] += vz;
    self[0] -= vx; self[1] -= vy; self[2] -= vz;
  };
  if (Mode == 1) {
    ws.gr.assign(n, 0.0);
    ws.gvec.assign(3 * n, 0.0);
  }

  // G2
  for (const RadialFn& rf : t.radial) {
    const double* R = ws.R.data() + rf.group * n;
    const double* dR = ws.dR.data() + rf.group * n;
    const int64_t b0 = ws.block[rf.neighbor], b1 = ws.block[rf.neighbor + 1];
    if (Mode == 0 || Mode == 2) {
      double s = 0.0;
      for (int64_t m = b0; m < b1; ++m) s += R[m];
      G[rf.feature] += s;
    }
    if (Mode == 1) {
      const double wf = w[rf.feature];
      if (wf != 0.0)
        for (int64_t m = b0; m < b1; ++m) ws.gr[m] += wf * dR[m];
    }
    if (Mode == 2) {
      for (int64_t m = b0; m < b1; ++m) {
        const double s = dR[m] * ws.inv_r[m];
        jadd(m, rf.feature, s * ws.d[3 * m], s * ws.d[3 * m + 1], s * ws.d[3 * m + 2]);
      }
    }
  }

  // G4 / G5 over unordered neighbour pairs {j, k}, one element block pair at a time.
  double rc_f[8], rc_df[8];
  std::vector<double> fcache;  // only used when a pair has more than 8 distinct narrow cutoffs
  for (int a = 0; a < ne; ++a) {
    for (int b = a; b < ne; ++b) {
      const PairTable& pt = t.pairs[static_cast<size_t>(a) * ne + b];
      if (pt.groups.empty()) continue;
      const size_t nrc = pt.rcs.size();
      double* fcv = rc_f;
      double* dfcv = rc_df;
      if (nrc > 8) {
        fcache.assign(2 * nrc, 0.0);
        fcv = fcache.data();
        dfcv = fcache.data() + nrc;
      }
      for (int64_t j = ws.block[a]; j < ws.block[a + 1]; ++j) {
        const double* dj = &ws.d[3 * j];
        const double irj = ws.inv_r[j];
        const int64_t k0 = (a == b) ? j + 1 : ws.block[b];
        for (int64_t k = k0; k < ws.block[b + 1]; ++k) {
          const double* dk = &ws.d[3 * k];
          const double irk = ws.inv_r[k];
          const double cos_t = (dj[0] * dk[0] + dj[1] * dk[1] + dj[2] * dk[2]) * irj * irk;
          const double ex = dk[0] - dj[0], ey = dk[1] - dj[1], ez = dk[2] - dj[2];
          double rjk = 0.0;
          if (nrc) {
            rjk = std::sqrt(ex * ex + ey * ey + ez * ez);
            for (size_t s = 0; s < nrc; ++s) {
              if (rjk < pt.rcs[s]) {
                detail::cutoff_fdf(cutoff_, rjk, pt.rcs[s], fcv[s], dfcv[s]);
              } else {
                fcv[s] = 0.0;
                dfcv[s] = 0.0;
              }
            }
          }
          double A_c = 0.0, A_rj = 0.0, A_rk = 0.0, A_rjk = 0.0;
          for (const AngularGroup& ag : pt.groups) {
            const int64_t g = ag.group;
            const double Rj = ws.R[g * n + j], Rk = ws.R[g * n + k];
            if (Rj == 0.0 || Rk == 0.0) continue;
            double S = 1.0, dS = 0.0;
            if (ag.narrow) {
              const double fc = fcv[ag.rc_slot];
              if (fc == 0.0 && dfcv[ag.rc_slot] == 0.0) continue;
              const Group& gp = t.groups[g];
              const double s = rjk - gp.r_s;
              const double e = std::exp(-gp.eta * s * s);
              S = e * fc;
              dS = e * (dfcv[ag.rc_slot] - 2.0 * gp.eta * s * fc);
            }
            const double base = Rj * Rk * S;
            double Q = 0.0, Qc = 0.0;  // sum_f w_f pref_f P_f, sum_f w_f pref_f dP_f/dcos
            for (int64_t fi : ag.fns) {
              const AngularFn& fn = t.angular_fns[fi];
              const double pl = 1.0 + fn.lambda * cos_t;
              if (pl <= 0.0) continue;  // as n2p2: the term vanishes (and guards pow)
              const double pz1 = fn.zeta_int > 0 ? ipow(pl, fn.zeta_int - 1) : std::pow(pl, fn.zeta - 1.0);
              const double P = pz1 * pl;
              if (Mode == 0 || Mode == 2) G[fn.feature] += fn.prefactor * P * base;
              if (Mode == 1) {
                const double wf = w[fn.feature] * fn.prefactor;
                Q += wf * P;
                Qc += wf * fn.zeta * fn.lambda * pz1;
              }
              if (Mode == 2) {
                // dT/dd_j = pref [dP/dcos base dcos/dd_j + P (dRj Rk S u_j - Rj Rk dS e_jk)]
                const double cb = fn.prefactor * fn.zeta * fn.lambda * pz1 * base;
                const double pj = fn.prefactor * P * ws.dR[g * n + j] * Rk * S;
                const double pk = fn.prefactor * P * Rj * ws.dR[g * n + k] * S;
                const double pjk = (ag.narrow && rjk > 0.0) ? fn.prefactor * P * Rj * Rk * dS / rjk : 0.0;
                double vj[3], vk[3];
                for (int q = 0; q < 3; ++q) {
                  const double uj = dj[q] * irj, uk = dk[q] * irk;
                  const double e = (q == 0 ? ex : q == 1 ? ey : ez);
                  vj[q] = cb * (uk - cos_t * uj) * irj + pj * uj - pjk * e;
                  vk[q] = cb * (uj - cos_t * uk) * irk + pk * uk + pjk * e;
                }
                jadd(j, fn.feature, vj[0], vj[1], vj[2]);
                jadd(k, fn.feature, vk[0], vk[1], vk[2]);
              }
            }
            if (Mode == 1) {
              A_c += Qc * base;
              A_rj += Q * ws.dR[g * n + j] * Rk * S;
              A_rk += Q * Rj * ws.dR[g * n + k] * S;
              A_rjk += Q * Rj * Rk * dS;
            }
          }
          if (Mode == 1) {
            const double cj = A_c * irj, ck = A_c * irk;
            const double ejk = rjk > 0.0 ? A_rjk / rjk : 0.0;
            ws.gr[j] += A_rj;
            ws.gr[k] += A_rk;
            double* gj = &ws.gvec[3 * j];
            double* gk = &ws.gvec[3 * k];
            const double e3[3] = {ex, ey, ez};
            for (int q = 0; q < 3; ++q) {
              const double uj = dj[q] * irj, uk = dk[q] * irk;
              gj[q] += cj * (uk - cos_t * uj) - ejk * e3[q];
              gk[q] += ck * (uj - cos_t * uk) + ejk * e3[q];
            }
          }
        }
      }
    }
  }

  if (Mode == 1) {
    // dE_i/dd_m for every kept neighbour, stored at its CSR slot (others stay zero).
    for (int64_t m = 0; m < n; ++m) {
      double* out = pair_grad + 3 * ws.slot[m];
      for (int q = 0; q < 3; ++q) out[q] = ws.gr[m] * ws.d[3 * m + q] * ws.inv_r[m] + ws.gvec[3 * m + q];
    }
  }
}

namespace {
struct ThreadScope {
  explicit ThreadScope(int n) {
#ifdef ATOMFORGE_HAVE_OPENMP
    if (n > 0) {
      saved = omp_get_max_threads();
      omp_set_num_threads(n);
    }
#else
    (void)n;
#endif
  }
  ~ThreadScope() {
#ifdef ATOMFORGE_HAVE_OPENMP
    if (saved > 0) omp_set_num_threads(saved);
#endif
  }
  int saved = 0;
};

void throw_overlap(int64_t p) {
  throw InvalidInput("atom " + std::to_string(p) +
                     " has a neighbour at distance zero (two atoms at the same position)");
}
}  // namespace

void SymmetryFunctions::compute(const NeighborView& nl, double* G, int n_threads) const {
  validate(nl);
  ThreadScope scope(n_threads);
  const int64_t nc = nl.n_centres, nf = n_features_;
  std::fill(G, G + nc * nf, 0.0);
  int64_t err = -1;
#pragma omp parallel
  {
    Workspace ws;
#pragma omp for schedule(dynamic, 8)
    for (int64_t c = 0; c < nc; ++c) {
      const auto& t = tables_[nl.species[nl.centre(c)]];
      centre_kernel<0>(nl, c, t, G + c * nf, nullptr, nullptr, nullptr, ws);
    }
#pragma omp critical
    if (ws.error_position >= 0 && err < 0) err = ws.error_position;
  }
  if (err >= 0) throw_overlap(err);
}

void SymmetryFunctions::vjp(const NeighborView& nl, const double* dE_dG, double* forces,
                            double* virial, double* per_atom_virial, int n_threads) const {
  validate(nl);
  const int64_t nc = nl.n_centres, nf = n_features_;
  for (int64_t k = 0; k < nc * nf; ++k)
    if (!std::isfinite(dE_dG[k]))
      throw InvalidInput("dE/dG of atom " + std::to_string(k / nf) + ", feature " +
                         std::to_string(k % nf) + " is not finite");
  ThreadScope scope(n_threads);
  const int64_t n_pairs = nc ? nl.offsets[nc] : 0;
  std::vector<double> pair_grad(3 * n_pairs, 0.0);
  int64_t err = -1;
#pragma omp parallel
  {
    Workspace ws;
#pragma omp for schedule(dynamic, 8)
    for (int64_t c = 0; c < nc; ++c) {
      const auto& t = tables_[nl.species[nl.centre(c)]];
      centre_kernel<1>(nl, c, t, nullptr, dE_dG + c * nf, pair_grad.data(), nullptr, ws);
    }
#pragma omp critical
    if (ws.error_position >= 0 && err < 0) err = ws.error_position;
  }
  if (err >= 0) throw_overlap(err);
  // Deterministic serial scatter: O(pairs), independent of the thread count.
  std::fill(forces, forces + 3 * nl.n_total, 0.0);
  std::fill(virial, virial + 9, 0.0);
  if (per_atom_virial) std::fill(per_atom_virial, per_atom_virial + 9 * nl.n_total, 0.0);
  const double* x = nl.positions;
  for (int64_t c = 0; c < nc; ++c) {
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
          if (per_atom_virial) {
            per_atom_virial[9 * i + 3 * a + b] += 0.5 * v;
            per_atom_virial[9 * j + 3 * a + b] += 0.5 * v;
          }
        }
    }
  }
}

DescriptorJacobian SymmetryFunctions::jacobian(const NeighborView& nl, double* G, int n_threads) const {
  validate(nl);
  ThreadScope scope(n_threads);
  const int64_t nc = nl.n_centres, nf = n_features_;
  DescriptorJacobian jac;
  jac.n_features = nf;
  jac.entry_offsets.assign(nc + 1, 0);
  for (int64_t c = 0; c < nc; ++c) {
    const int64_t i = nl.centre(c);
    const double rc = tables_[nl.species[i]].rc_max;
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
  std::vector<double> Gtmp;
  if (!G) {
    Gtmp.assign(nc * nf, 0.0);
    G = Gtmp.data();
  } else {
    std::fill(G, G + nc * nf, 0.0);
  }
  int64_t err = -1;
#pragma omp parallel
  {
    Workspace ws;
#pragma omp for schedule(dynamic, 8)
    for (int64_t c = 0; c < nc; ++c) {
      const auto& t = tables_[nl.species[nl.centre(c)]];
      centre_kernel<2>(nl, c, t, G + c * nf, nullptr, nullptr, &jac, ws);
    }
#pragma omp critical
    if (ws.error_position >= 0 && err < 0) err = ws.error_position;
  }
  if (err >= 0) throw_overlap(err);
  return jac;
}

CutoffType cutoff_type_from_string(const std::string& name) {
  if (name == "cos" || name == "cosine") return CutoffType::Cosine;
  if (name == "tanhu") return CutoffType::TanhU;
  if (name == "tanh") return CutoffType::Tanh;
  if (name == "poly1") return CutoffType::Poly1;
  if (name == "poly2") return CutoffType::Poly2;
  if (name == "poly3") return CutoffType::Poly3;
  if (name == "poly4") return CutoffType::Poly4;
  throw InvalidInput("unknown cutoff function '" + name +
                     "' (use cos, tanhu, tanh, poly1, poly2, poly3 or poly4)");
}

std::string to_string(CutoffType t) {
  switch (t) {
    case CutoffType::Cosine: return "cos";
    case CutoffType::TanhU: return "tanhu";
    case CutoffType::Tanh: return "tanh";
    case CutoffType::Poly1: return "poly1";
    case CutoffType::Poly2: return "poly2";
    case CutoffType::Poly3: return "poly3";
    case CutoffType::Poly4: return "poly4";
  }
  return "unknown";
}

}  // namespace atomforge
