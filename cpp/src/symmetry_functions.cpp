// Behler-Parrinello symmetry functions: values, vector-Jacobian product and sparse Jacobian.
// Formulas and references: include/atomforge/symmetry_functions.hpp.
#include "atomforge/symmetry_functions.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <sstream>

#include "atomforge/errors.hpp"
#include "cutoff.hpp"
#include "simd_math.hpp"

#ifdef ATOMFORGE_HAVE_OPENMP
#include <omp.h>
#endif

namespace atomforge {

// ---------------------------------------------------------------------------------------------
// Tables built once per descriptor
// ---------------------------------------------------------------------------------------------

struct SymmetryFunctions::Group {  // exp(-eta (r - r_s)^2) fc(r; r_c) for one (eta, r_s, r_c)
  double eta, r_s, r_c;
  int32_t rc_slot;  // index into ElementTables::rcs
};

struct SymmetryFunctions::AngularFn {
  int64_t feature;
  double lambda, zeta, prefactor;  // prefactor = 2^(1 - zeta)
  int zeta_int;                    // zeta when integral (1..64), else -1
  int32_t pow_slot;                // index into the PairTable::pows of its neighbour-element pair
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
  std::vector<int32_t> pow;  // per function: its PairTable::pows slot
  std::vector<double> pref;  // per function: 2^(1 - zeta)
};
struct PowSlot {  // a distinct (lambda, zeta) of a PairTable: (1 + lambda cos)^zeta is shared
  double lambda, zeta;
  int zeta_int;
};
struct PairTable {  // functions of one central element for one unordered neighbour-element pair
  std::vector<AngularGroup> groups;
  std::vector<double> rcs;  // distinct r_c of narrow groups
  std::vector<PowSlot> pows;
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
  std::vector<double> rcs;       // distinct r_c of all groups (cutoff evaluated once per r_c)
  double rc_max = 0.0;
  int64_t n_features = 0;
};

// Lanes per chunk of the vectorised pair loop: 8 doubles = one AVX-512 register (two AVX2 ones).
// The chunk width is fixed, independent of the ISA and of data alignment, so the lane-wise
// partial sums (and hence every result) are identical for every thread count.
constexpr int64_t kW = 8;

// Per-thread scratch space for one centre atom. Neighbours are sorted by element; per-neighbour
// arrays have padded length np = round_up(n, kW) + kW. The padding slots n .. np-1 are inert
// neighbours (d = 0, R = dR = 0) that fill up the last chunk of a pair loop, and give the
// vectorised loops room to read and write whole chunks without bounds checks.
struct Workspace {
  std::vector<int64_t> slot, pos;  // CSR slot and position index of each kept neighbour
  std::vector<double> d;           // (n, 3) displacements r_m - r_i
  std::vector<double> dx, dy, dz, r, inv_r;  // SoA copies (np): d, r, 1 / r
  std::vector<int64_t> block;      // (n_elements + 1) start of each element's neighbours
  std::vector<double> fc, dfc;     // (n_rcs, np) cutoff of r_m for each distinct r_c
  std::vector<double> R, dR;       // (n_groups, np)
  std::vector<double> gr, gx, gy, gz;  // VJP accumulators (np): scalar along u_m, and vector
  std::vector<double> accG;        // values: lane partial sums (n_angular_fns, kW)
  std::vector<double> wq, wc;      // VJP: w_f pref_f and w_f pref_f zeta lambda per angular fn
  std::vector<double> rj, drj;     // R_g(r_j), dR_g(r_j) of the current j, per group of a pair
  std::vector<double> pfc, pdfc;   // (n_rcs of pair, np) fc(r_jk), dfc/dr of the candidates
  // (np) per candidate k of the current j: cos, e_jk = d_k - d_j, r_jk, 1 / r_jk, u_k, 1 / r_k
  std::vector<double> ccs, cex, cey, cez, crjk, cirjk, cukx, cuky, cukz, cirk;
  std::vector<double> pw, pw1;     // (n_pows, kW) (1 + lambda cos)^zeta and ^(zeta - 1), masked
  std::vector<int64_t> idx;        // (np) compacted partners k of the current j, padded
  std::vector<double> r2;          // (np) r_jk^2 of the current j
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
      int32_t slot = -1;
      for (size_t k = 0; k < t.rcs.size(); ++k)
        if (t.rcs[k] == f.r_c) slot = static_cast<int32_t>(k);
      if (slot < 0) {
        t.rcs.push_back(f.r_c);
        slot = static_cast<int32_t>(t.rcs.size() - 1);
      }
      t.groups.push_back({f.eta, f.r_s, f.r_c, slot});
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
    const int32_t a = std::min(f.neighbor1, f.neighbor2), b = std::max(f.neighbor1, f.neighbor2);
    auto& pt = t.pairs[static_cast<size_t>(a) * n_elements_ + b];
    fn.pow_slot = -1;
    for (size_t k = 0; k < pt.pows.size(); ++k)
      if (pt.pows[k].lambda == fn.lambda && pt.pows[k].zeta == fn.zeta) fn.pow_slot = static_cast<int32_t>(k);
    if (fn.pow_slot < 0) {
      pt.pows.push_back({fn.lambda, fn.zeta, fn.zeta_int});
      fn.pow_slot = static_cast<int32_t>(pt.pows.size() - 1);
    }
    t.angular_fns.push_back(fn);
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
      pt.groups.push_back({g, narrow, slot, {}, {}, {}});
      ag = &pt.groups.back();
    }
    ag->fns.push_back(static_cast<int64_t>(t.angular_fns.size() - 1));
    ag->pow.push_back(fn.pow_slot);
    ag->pref.push_back(fn.prefactor);
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
  const int64_t np = (n + kW - 1) / kW * kW + kW;  // padded length, see Workspace
  ws.block.assign(ne + 1, 0);
  for (int e = 0; e < ne; ++e) ws.block[e + 1] = ws.block[e] + ws.count[e + 1];
  ws.slot.resize(n); ws.pos.resize(n); ws.d.resize(3 * n);
  // Padding slots: d = 0, 1/r = 0 and r beyond every cutoff, so they are finite and R = dR = 0.
  const double r_pad = 2.0 * t.rc_max + 1.0;
  for (auto* v : {&ws.dx, &ws.dy, &ws.dz, &ws.inv_r}) v->assign(np, 0.0);
  ws.r.assign(np, r_pad);
  ws.idx.resize(np);
  for (auto* v : {&ws.ccs, &ws.cex, &ws.cey, &ws.cez, &ws.crjk, &ws.cirjk, &ws.cukx, &ws.cuky,
                  &ws.cukz, &ws.cirk})
    v->resize(np);
  ws.r2.resize(np);
  {
    std::vector<int64_t>& fill = ws.count;  // reuse as fill pointers
    for (int e = 0; e < ne; ++e) fill[e] = ws.block[e];
    for (int64_t m = 0; m < n; ++m) {
      const int64_t s = fill[ws.telem[m]]++;
      ws.slot[s] = ws.tslot[m]; ws.pos[s] = ws.tpos[m];
      for (int k = 0; k < 3; ++k) ws.d[3 * s + k] = ws.td[3 * m + k];
      const double ir = 1.0 / ws.tr[m];
      ws.r[s] = ws.tr[m]; ws.inv_r[s] = ir;
      ws.dx[s] = ws.td[3 * m]; ws.dy[s] = ws.td[3 * m + 1]; ws.dz[s] = ws.td[3 * m + 2];
    }
  }

  // Cutoff fc(r_m) once per distinct r_c, then radial factors R_g(r) = exp(-eta (r - r_s)^2) fc(r)
  // and dR_g/dr for every group; zero for r >= r_c. Vectorised over the (padded) neighbours.
  const int64_t nrc_all = static_cast<int64_t>(t.rcs.size());
  ws.fc.resize(nrc_all * np);
  ws.dfc.resize(nrc_all * np);
  for (int64_t s = 0; s < nrc_all; ++s) {
    const double rc = t.rcs[s];
    double* f = ws.fc.data() + s * np;
    double* df = ws.dfc.data() + s * np;
    detail::cutoff_fdf_lanes(cutoff_, np, ws.r.data(), rc, f, df);
    AF_SIMD
    for (int64_t m = 0; m < np; ++m) {
      const bool in = ws.r[m] < rc;
      f[m] = in ? f[m] : 0.0;
      df[m] = in ? df[m] : 0.0;
    }
  }
  const int64_t ng = static_cast<int64_t>(t.groups.size());
  ws.R.resize(ng * np);
  ws.dR.resize(ng * np);
  for (int64_t g = 0; g < ng; ++g) {
    const Group& gp = t.groups[g];
    const double eta = gp.eta, r_s = gp.r_s;
    const double* f = ws.fc.data() + gp.rc_slot * np;
    const double* df = ws.dfc.data() + gp.rc_slot * np;
    const double* rr = ws.r.data();
    double* R = ws.R.data() + g * np;
    double* dR = ws.dR.data() + g * np;
    AF_SIMD
    for (int64_t m = 0; m < np; ++m) {  // f = df = 0 outside r_c, so R = dR = 0 there
      const double s = rr[m] - r_s;
      const double ex = simd::exp(-eta * s * s);
      R[m] = ex * f[m];
      dR[m] = ex * (df[m] - 2.0 * eta * s * f[m]);
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
  const int64_t nang = static_cast<int64_t>(t.angular_fns.size());
  if (Mode != 1) ws.accG.assign(nang * kW, 0.0);
  if (Mode == 1) {
    ws.gr.assign(np, 0.0);
    ws.gx.assign(np, 0.0); ws.gy.assign(np, 0.0); ws.gz.assign(np, 0.0);
    ws.wq.resize(nang);
    ws.wc.resize(nang);
    for (int64_t f = 0; f < nang; ++f) {
      const AngularFn& fn = t.angular_fns[f];
      ws.wq[f] = w[fn.feature] * fn.prefactor;
      ws.wc[f] = ws.wq[f] * fn.zeta * fn.lambda;
    }
  }

  // G2
  for (const RadialFn& rf : t.radial) {
    const double* R = ws.R.data() + rf.group * np;
    const double* dR = ws.dR.data() + rf.group * np;
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
  //   T_f(j,k) = pref_f (1 + lambda cos)^zeta R_g(r_j) R_g(r_k) S_g(r_jk),
  //   S_g = exp(-eta (r_jk - r_s)^2) fc(r_jk) for G4 ("narrow"), 1 for G5.
  for (int a = 0; a < ne; ++a) {
    for (int b = a; b < ne; ++b) {
      const PairTable& pt = t.pairs[static_cast<size_t>(a) * ne + b];
      if (pt.groups.empty()) continue;
      const int64_t nrc = static_cast<int64_t>(pt.rcs.size());
      const int64_t ngp = static_cast<int64_t>(pt.groups.size());
      const int64_t npw = static_cast<int64_t>(pt.pows.size());

      if constexpr (Mode == 2) {
        // Jacobian: scalar loop over pairs (training only; libm transcendental functions). The
        // values G come from the vectorised loop below, bit-identical to compute().
        ws.pfc.assign(2 * nrc, 0.0);
        double* fcv = ws.pfc.data();
        double* dfcv = ws.pfc.data() + nrc;
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
              for (int64_t s = 0; s < nrc; ++s) {
                if (rjk < pt.rcs[s]) {
                  detail::cutoff_fdf(cutoff_, rjk, pt.rcs[s], fcv[s], dfcv[s]);
                } else {
                  fcv[s] = 0.0;
                  dfcv[s] = 0.0;
                }
              }
            }
            for (const AngularGroup& ag : pt.groups) {
              const int64_t g = ag.group;
              const double Rj = ws.R[g * np + j], Rk = ws.R[g * np + k];
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
              for (int64_t fi : ag.fns) {
                const AngularFn& fn = t.angular_fns[fi];
                const double pl = 1.0 + fn.lambda * cos_t;
                if (pl <= 0.0) continue;  // as n2p2: the term vanishes (and guards pow)
                const double pz1 =
                    fn.zeta_int > 0 ? ipow(pl, fn.zeta_int - 1) : std::pow(pl, fn.zeta - 1.0);
                const double P = pz1 * pl;
                // dT/dd_j = pref [dP/dcos base dcos/dd_j + P (dRj Rk S u_j - Rj Rk dS e_jk)]
                const double cb = fn.prefactor * fn.zeta * fn.lambda * pz1 * base;
                const double pj = fn.prefactor * P * ws.dR[g * np + j] * Rk * S;
                const double pk = fn.prefactor * P * Rj * ws.dR[g * np + k] * S;
                const double pjk =
                    (ag.narrow && rjk > 0.0) ? fn.prefactor * P * Rj * Rk * dS / rjk : 0.0;
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
          }
        }
      }
      {
        // Values / VJP, vectorised. For each j, the partners k that can contribute (r_jk below
        // the largest narrow r_c; all k if the pair has G5 groups) are first compacted into an
        // index list (on water about 40% of the pairs), then processed kW at a time as a
        // structure of arrays: branch-free lane loops that the compiler vectorises with gathers.
        // The list is padded to a multiple of kW with the distinct padding slots n .. n+kW-1,
        // where R = dR = 0 and d = 0: every term is proportional to R_g(r_k) or dR_g(r_k), so
        // padding lanes add exact zeros (and are scattered to unused slots).
        bool wide = false;
        double thr = 0.0;
        for (const AngularGroup& ag : pt.groups) wide = wide || !ag.narrow;
        for (double rc : pt.rcs) thr = std::max(thr, rc);
        const double thr2 = wide ? std::numeric_limits<double>::infinity() : thr * thr;
        ws.rj.resize(ngp);
        ws.drj.resize(ngp);
        ws.pfc.resize(nrc * np);
        ws.pdfc.resize(nrc * np);
        ws.pw.resize(npw * kW);
        ws.pw1.resize(npw * kW);
        const double* __restrict Dx = ws.dx.data();
        const double* __restrict Dy = ws.dy.data();
        const double* __restrict Dz = ws.dz.data();
        const double* __restrict IR = ws.inv_r.data();
        int64_t* __restrict idx = ws.idx.data();
        for (int64_t j = ws.block[a]; j < ws.block[a + 1]; ++j) {
          bool any = false;
          for (int64_t q = 0; q < ngp; ++q) {
            const int64_t g = pt.groups[q].group;
            ws.rj[q] = ws.R[g * np + j];
            ws.drj[q] = ws.dR[g * np + j];
            any = any || ws.rj[q] != 0.0;
          }
          if (!any) continue;  // r_j beyond every cutoff of this pair's functions
          const double djx = Dx[j], djy = Dy[j], djz = Dz[j];
          const double irj = IR[j];
          const double ujx = djx * irj, ujy = djy * irj, ujz = djz * irj;
          const int64_t kbeg = (a == b) ? j + 1 : ws.block[b];
          const int64_t kend = ws.block[b + 1];
          int64_t cnt = 0;
          if (wide) {
            for (int64_t k = kbeg; k < kend; ++k) idx[cnt++] = k;
          } else {  // r_jk^2 vectorised, then a branch-free compaction of the candidates
            double* __restrict r2 = ws.r2.data();
            AF_SIMD
            for (int64_t k = kbeg; k < kend; ++k) {
              const double ex = Dx[k] - djx, ey = Dy[k] - djy, ez = Dz[k] - djz;
              r2[k] = ex * ex + ey * ey + ez * ez;
            }
            cnt = simd::compact_below(r2, kbeg, kend, thr2, idx);
          }
          if (cnt == 0) continue;
          for (int64_t l = 0; l < kW; ++l) idx[cnt + l] = n + l;
          // VJP: lane partial sums of the gradient with respect to d_j (along u_j, and vector)
          alignas(64) double jr[kW] = {}, jx[kW] = {}, jy[kW] = {}, jz[kW] = {};
          // Pair geometry and fc(r_jk) of all candidates in long loops (independent iterations,
          // so the latency of gathers, sqrt and the cutoff's exp and division overlaps).
          const int64_t cntp = (cnt + kW - 1) / kW * kW;
          {
            double* __restrict cs = ws.ccs.data();
            double* __restrict ex = ws.cex.data();
            double* __restrict ey = ws.cey.data();
            double* __restrict ez = ws.cez.data();
            double* __restrict rjk = ws.crjk.data();
            double* __restrict irjk = ws.cirjk.data();
            double* __restrict ukx = ws.cukx.data();
            double* __restrict uky = ws.cuky.data();
            double* __restrict ukz = ws.cukz.data();
            double* __restrict irk = ws.cirk.data();
            AF_SIMD
            for (int64_t c = 0; c < cntp; ++c) {
              const int64_t m = idx[c];
              const double dkx = Dx[m], dky = Dy[m], dkz = Dz[m];
              irk[c] = IR[m];
              ukx[c] = dkx * irk[c]; uky[c] = dky * irk[c]; ukz[c] = dkz * irk[c];
              cs[c] = ujx * ukx[c] + ujy * uky[c] + ujz * ukz[c];
              ex[c] = dkx - djx; ey[c] = dky - djy; ez[c] = dkz - djz;
              rjk[c] = std::sqrt(ex[c] * ex[c] + ey[c] * ey[c] + ez[c] * ez[c]);
              if constexpr (Mode == 1) irjk[c] = rjk[c] > 0.0 ? 1.0 / rjk[c] : 0.0;
            }
            // fc(r_jk) for each distinct narrow r_c; zero outside r_c.
            for (int64_t s = 0; s < nrc; ++s) {
              const double rc = pt.rcs[s];
              double* __restrict f = ws.pfc.data() + s * np;
              double* __restrict df = ws.pdfc.data() + s * np;
              detail::cutoff_fdf_lanes<Mode == 1>(cutoff_, cntp, rjk, rc, f, df);
              AF_SIMD
              for (int64_t c = 0; c < cntp; ++c) {
                const bool in = rjk[c] < rc;
                f[c] = in ? f[c] : 0.0;
                if constexpr (Mode == 1) df[c] = in ? df[c] : 0.0;
              }
            }
          }
          for (int64_t c0 = 0; c0 < cnt; c0 += kW) {
            const int64_t* __restrict id = idx + c0;
            const double* __restrict cs = ws.ccs.data() + c0;
            const double* __restrict ex = ws.cex.data() + c0;
            const double* __restrict ey = ws.cey.data() + c0;
            const double* __restrict ez = ws.cez.data() + c0;
            const double* __restrict rjk = ws.crjk.data() + c0;
            const double* __restrict irjk = ws.cirjk.data() + c0;
            const double* __restrict ukx = ws.cukx.data() + c0;
            const double* __restrict uky = ws.cuky.data() + c0;
            const double* __restrict ukz = ws.cukz.data() + c0;
            const double* __restrict irk = ws.cirk.data() + c0;
            // (1 + lambda cos)^zeta and ^(zeta - 1), set to 0 where 1 + lambda cos <= 0 (as n2p2).
            for (int64_t p = 0; p < npw; ++p) {
              const PowSlot& ps = pt.pows[p];
              double* __restrict P = ws.pw.data() + p * kW;
              double* __restrict P1 = ws.pw1.data() + p * kW;
              alignas(64) double pl[kW], p1[kW];
              AF_SIMD
              for (int64_t l = 0; l < kW; ++l) pl[l] = 1.0 + ps.lambda * cs[l];
              if (ps.zeta_int > 0) {  // pl^(zeta - 1) by binary powering, as ipow()
                alignas(64) double xx[kW];
                AF_SIMD
                for (int64_t l = 0; l < kW; ++l) { p1[l] = 1.0; xx[l] = pl[l]; }
                for (int e = ps.zeta_int - 1; e > 0; e >>= 1) {
                  if (e & 1) {
                    AF_SIMD
                    for (int64_t l = 0; l < kW; ++l) p1[l] *= xx[l];
                  }
                  AF_SIMD
                  for (int64_t l = 0; l < kW; ++l) xx[l] *= xx[l];
                }
              } else {  // non-integer zeta: scalar libm pow
                for (int64_t l = 0; l < kW; ++l)
                  p1[l] = pl[l] > 0.0 ? std::pow(pl[l], ps.zeta - 1.0) : 0.0;
              }
              AF_SIMD
              for (int64_t l = 0; l < kW; ++l) {
                const bool pos = pl[l] > 0.0;
                P[l] = pos ? p1[l] * pl[l] : 0.0;
                P1[l] = pos ? p1[l] : 0.0;
              }
            }
            // VJP: per-lane sums over groups of dE/dcos, dE/dr_j, dE/dr_k, dE/dr_jk
            alignas(64) double A_c[kW] = {}, A_rj[kW] = {}, A_rk[kW] = {}, A_rjk[kW] = {};
            for (int64_t q = 0; q < ngp; ++q) {
              const AngularGroup& ag = pt.groups[q];
              const double Rj = ws.rj[q];
              if (Rj == 0.0) continue;
              const int64_t g = ag.group;
              const double* __restrict Rg = ws.R.data() + g * np;
              alignas(64) double Rk[kW], S[kW], dS[kW], base[kW];
              if (ag.narrow) {
                const Group& gp = t.groups[g];
                const double eta = gp.eta, r_s = gp.r_s;
                const double* f = ws.pfc.data() + ag.rc_slot * np + c0;
                const double* df = ws.pdfc.data() + ag.rc_slot * np + c0;
                AF_SIMD
                for (int64_t l = 0; l < kW; ++l) {
                  const double s = rjk[l] - r_s;
                  const double e = simd::exp(-eta * s * s);
                  S[l] = e * f[l];
                  if constexpr (Mode == 1) dS[l] = e * (df[l] - 2.0 * eta * s * f[l]);
                }
              } else {
                AF_SIMD
                for (int64_t l = 0; l < kW; ++l) { S[l] = 1.0; dS[l] = 0.0; }
              }
              AF_SIMD
              for (int64_t l = 0; l < kW; ++l) {
                Rk[l] = Rg[id[l]];
                base[l] = Rj * Rk[l] * S[l];
              }
              const int64_t nfn = static_cast<int64_t>(ag.fns.size());
              if constexpr (Mode != 1) {
                for (int64_t u = 0; u < nfn; ++u) {
                  const double* __restrict P = ws.pw.data() + ag.pow[u] * kW;
                  double* __restrict acc = ws.accG.data() + ag.fns[u] * kW;
                  const double pref = ag.pref[u];
                  AF_SIMD
                  for (int64_t l = 0; l < kW; ++l) acc[l] += pref * P[l] * base[l];
                }
              } else {
                // Q = sum_f w_f pref_f P_f, Qc = sum_f w_f pref_f dP_f/dcos
                alignas(64) double Q[kW] = {}, Qc[kW] = {};
                for (int64_t u = 0; u < nfn; ++u) {
                  const double* __restrict P = ws.pw.data() + ag.pow[u] * kW;
                  const double* __restrict P1 = ws.pw1.data() + ag.pow[u] * kW;
                  const double wq = ws.wq[ag.fns[u]], wc = ws.wc[ag.fns[u]];
                  AF_SIMD
                  for (int64_t l = 0; l < kW; ++l) {
                    Q[l] += wq * P[l];
                    Qc[l] += wc * P1[l];
                  }
                }
                const double dRj = ws.drj[q];
                const double* __restrict dRg = ws.dR.data() + g * np;
                AF_SIMD
                for (int64_t l = 0; l < kW; ++l) {
                  const double dRk = dRg[id[l]];
                  A_c[l] += Qc[l] * base[l];
                  A_rj[l] += Q[l] * dRj * Rk[l] * S[l];
                  A_rk[l] += Q[l] * Rj * dRk * S[l];
                  A_rjk[l] += Q[l] * Rj * Rk[l] * dS[l];
                }
              }
            }
            if constexpr (Mode == 1) {
              // dcos/dd_j = (u_k - cos u_j) / r_j, dr_jk/dd_k = -dr_jk/dd_j = e_jk / r_jk.
              // Indices within a chunk are distinct, so the scatter has no conflicts.
              double* __restrict gr = ws.gr.data();
              double* __restrict gx = ws.gx.data();
              double* __restrict gy = ws.gy.data();
              double* __restrict gz = ws.gz.data();
              AF_SIMD
              for (int64_t l = 0; l < kW; ++l) {
                const int64_t m = id[l];
                const double cj = A_c[l] * irj, ck = A_c[l] * irk[l];
                const double e = A_rjk[l] * irjk[l];
                jr[l] += A_rj[l];
                jx[l] += cj * (ukx[l] - cs[l] * ujx) - e * ex[l];
                jy[l] += cj * (uky[l] - cs[l] * ujy) - e * ey[l];
                jz[l] += cj * (ukz[l] - cs[l] * ujz) - e * ez[l];
                gr[m] += A_rk[l];
                gx[m] += ck * (ujx - cs[l] * ukx[l]) + e * ex[l];
                gy[m] += ck * (ujy - cs[l] * uky[l]) + e * ey[l];
                gz[m] += ck * (ujz - cs[l] * ukz[l]) + e * ez[l];
              }
            }
          }
          if constexpr (Mode == 1) {  // lane partial sums, added in a fixed order
            double sr = 0.0, sx = 0.0, sy = 0.0, sz = 0.0;
            for (int64_t l = 0; l < kW; ++l) { sr += jr[l]; sx += jx[l]; sy += jy[l]; sz += jz[l]; }
            ws.gr[j] += sr; ws.gx[j] += sx; ws.gy[j] += sy; ws.gz[j] += sz;
          }
        }
      }
    }
  }

  if (Mode != 1) {  // lane partial sums, added in a fixed order
    for (int64_t f = 0; f < nang; ++f) {
      const double* acc = ws.accG.data() + f * kW;
      double s = 0.0;
      for (int64_t l = 0; l < kW; ++l) s += acc[l];
      G[t.angular_fns[f].feature] += s;
    }
  }
  if (Mode == 1) {
    // dE_i/dd_m for every kept neighbour, stored at its CSR slot (others stay zero).
    for (int64_t m = 0; m < n; ++m) {
      double* out = pair_grad + 3 * ws.slot[m];
      const double s = ws.gr[m] * ws.inv_r[m];
      out[0] = s * ws.d[3 * m] + ws.gx[m];
      out[1] = s * ws.d[3 * m + 1] + ws.gy[m];
      out[2] = s * ws.d[3 * m + 2] + ws.gz[m];
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
