// Behler-Parrinello symmetry functions: parameter tables and the CPU driver (OpenMP over
// centres) of the single-source per-centre kernels in acsf_kernels.hpp. Formulas: acsf.hpp.
#include "descriptors/acsf/acsf.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <memory>
#include <sstream>

#include "atomforge/errors.hpp"
#include "common/aligned.hpp"
#include "common/threads.hpp"
#include "descriptors/acsf/acsf_kernels.hpp"
#include "descriptors/acsf/acsf_tables.hpp"
#include "descriptors/common.hpp"

#ifdef ATOMFORGE_HAVE_OPENMP
#include <omp.h>
#endif

namespace atomforge {

// ---------------------------------------------------------------------------------------------
// Flat parameter tables (owning storage behind acsf::Tables)
// ---------------------------------------------------------------------------------------------

namespace acsf {
/// Per-thread scratch buffers (host), reused across calls through the descriptor's pool.
struct Workspace {
  // dbuf and cache_d hold the triplet blocks and records: 64-byte aligned (see carve)
  AlignedVector<double> dbuf;
  std::vector<double> grow, wrow;  // one centre's G and dE/dG (fused pass)
  AlignedVector<double> cache_d;   // triplet cache of the fused pass (grown between centres)
  std::vector<int64_t> cache_i;
  std::vector<int64_t> ibuf;
  std::vector<int32_t> i32buf;
  Scratch s{};
  int64_t cap = -1;
  void ensure(const Tables& t, int64_t cap_needed) {
    if (cap_needed <= cap) return;
    int64_t nd, ni, n32;
    scratch_sizes(t, cap_needed, &nd, &ni, &n32);
    dbuf.assign(nd, 0.0);
    ibuf.assign(ni, 0);
    i32buf.assign(n32, 0);
    carve(t, cap_needed, dbuf.data(), ibuf.data(), i32buf.data(), s);
    cap = cap_needed;
  }
};

/// Sizes the first n workspaces of a lease for neighbour capacity cap, nf features and K
/// model outputs (one dE/dG row each): what both CPU drivers (run, run_blocks) do first.
template <class Lease>
void prepare(Lease& lease, int n, const Tables& t, int64_t cap, int64_t nf, int K) {
  for (int k = 0; k < n; ++k) {
    lease[k].ensure(t, cap);
    lease[k].grow.resize(nf);
    lease[k].wrow.resize(K * nf);
  }
}
}  // namespace acsf

namespace {
// Intermediate per-central-element tables, flattened at the end of the constructor.
struct GroupT { double eta, r_s, r_c; int32_t rc_slot; };
struct AngFnT { int64_t feature; double zeta, pref; int zeta_int; };
struct AngGroupT { int32_t group; bool narrow; int32_t rc_slot; std::vector<int32_t> fns, pows; std::vector<double> prefs; };
// one angular factor (1 + a cos + b sqrt(1 - (0.95 cos)^2))^zeta: G4/G5 a = lambda, b = 0;
// G5s a = 0.95 cos theta_s, b = sin theta_s
struct PowT { double a, b, zeta; int zeta_int; };
struct PairT { std::vector<AngGroupT> groups; std::vector<double> rcs; std::vector<PowT> pows; };
struct RadialT { int64_t feature; int32_t group, neighbor; };
struct ElementT {
  std::vector<GroupT> groups;
  std::vector<double> rcs;
  std::vector<RadialT> radial;
  std::vector<AngFnT> angular;
  std::map<size_t, PairT> pairs;  // a * ne + b, a <= b; only pairs with functions (memory ~ functions, not ne^2)
  double rc_max = 0.0;
};
template <class T>
int32_t find_or_add(std::vector<T>& v, const T& x) {
  for (size_t k = 0; k < v.size(); ++k)
    if (v[k] == x) return static_cast<int32_t>(k);
  v.push_back(x);
  return static_cast<int32_t>(v.size() - 1);
}
}  // namespace

SymmetryFunctions::~SymmetryFunctions() = default;

SymmetryFunctions::SymmetryFunctions(const SymmetryFunctions& o)
    : Descriptor(o), n_elements_(o.n_elements_), functions_(o.functions_), cutoff_(o.cutoff_),
      n_features_(o.n_features_), max_cutoff_(o.max_cutoff_), per_element_(o.per_element_),
      flat_(std::make_unique<Flat>(*o.flat_)) {
  flat_->bind();
}

SymmetryFunctions::SymmetryFunctions(int32_t n_elements, std::vector<SymmetryFunctionSpec> functions,
                                     CutoffType cutoff)
    : n_elements_(n_elements), functions_(std::move(functions)), cutoff_(cutoff) {
  if (n_elements_ < 1) throw InvalidInput("a descriptor needs at least one element");
  if (n_elements_ > kMaxElements)
    throw InvalidInput("a descriptor covers at most " + std::to_string(kMaxElements) + " elements, got " +
                       std::to_string(n_elements_));
  const int ci = static_cast<int>(cutoff_);
  if (ci < 0 || ci > static_cast<int>(CutoffType::Poly4)) {
    throw InvalidInput("unknown cutoff function type " + std::to_string(ci));
  }
  const int ne = n_elements_;
  std::vector<ElementT> el(ne);
  per_element_.assign(ne, 0);
  for (size_t idx = 0; idx < functions_.size(); ++idx) {
    const auto& f = functions_[idx];
    auto fail = [&](const std::string& what) {
      std::ostringstream s;
      s << "symmetry function " << idx << ": " << what;
      throw InvalidInput(s.str());
    };
    const bool shifted = f.type == SymmetryFunctionType::G5s;
    const bool angular = f.type == SymmetryFunctionType::G4 || f.type == SymmetryFunctionType::G5 || shifted;
    if (!angular && f.type != SymmetryFunctionType::G2) fail("unknown type (use G2, G4, G5 or G5s)");
    if (f.centre < 0 || f.centre >= ne) fail("central element index out of range");
    if (f.neighbor1 < 0 || f.neighbor1 >= ne) fail("neighbour element index out of range");
    if (angular && (f.neighbor2 < 0 || f.neighbor2 >= ne)) fail("angular function needs a second neighbour element in range");
    if (!angular && f.neighbor2 != -1) fail("G2 takes one neighbour element");
    for (double v : {f.eta, f.r_s, f.r_c, f.lambda, f.zeta, f.theta_s})
      if (!std::isfinite(v)) fail("parameters must be finite");
    if (!(f.r_c > 0.0)) fail("cutoff radius r_c must be positive");
    if (f.r_c > kMaxCutoff)
      fail("cutoff radius r_c = " + std::to_string(f.r_c) + " A exceeds the maximum " + std::to_string(kMaxCutoff) + " A");
    if (f.eta < 0.0) fail("eta must be >= 0");
    if (f.r_s < 0.0 || f.r_s >= f.r_c) fail("r_s must satisfy 0 <= r_s < r_c");
    if (angular && !(f.lambda == 1.0 || f.lambda == -1.0)) fail("lambda must be +1 or -1");
    if (shifted && f.lambda != 1.0) fail("G5s takes no lambda (it must be +1; the angle shift is theta_s)");
    if (shifted && !(f.theta_s >= 0.0 && f.theta_s <= detail::kPi)) fail("theta_s must be in [0, pi] radians");
    if (!shifted && f.theta_s != 0.0) fail("theta_s is a parameter of G5s only");
    if (angular && !(f.zeta >= 1.0)) fail("zeta must be >= 1");

    ElementT& t = el[f.centre];
    const int64_t feature = per_element_[f.centre]++;
    t.rc_max = std::max(t.rc_max, f.r_c);
    max_cutoff_ = std::max(max_cutoff_, f.r_c);
    int32_t g = -1;
    for (size_t k = 0; k < t.groups.size(); ++k)
      if (t.groups[k].eta == f.eta && t.groups[k].r_s == f.r_s && t.groups[k].r_c == f.r_c) g = static_cast<int32_t>(k);
    if (g < 0) {
      const int32_t slot = find_or_add(t.rcs, f.r_c);
      t.groups.push_back({f.eta, f.r_s, f.r_c, slot});
      g = static_cast<int32_t>(t.groups.size() - 1);
    }
    if (!angular) {
      t.radial.push_back({feature, g, f.neighbor1});
      continue;
    }
    AngFnT fn{feature, f.zeta, std::pow(2.0, 1.0 - f.zeta),
              (f.zeta == std::floor(f.zeta) && f.zeta <= 64.0) ? static_cast<int>(f.zeta) : -1};
    const double pa = shifted ? acsf::kG5sCosScale * std::cos(f.theta_s) : f.lambda;
    const double pb = shifted ? std::sin(f.theta_s) : 0.0;
    const int32_t a = std::min(f.neighbor1, f.neighbor2), b = std::max(f.neighbor1, f.neighbor2);
    PairT& pt = t.pairs[static_cast<size_t>(a) * ne + b];
    int32_t pow_slot = -1;
    for (size_t k = 0; k < pt.pows.size(); ++k)
      if (pt.pows[k].a == pa && pt.pows[k].b == pb && pt.pows[k].zeta == fn.zeta) pow_slot = static_cast<int32_t>(k);
    if (pow_slot < 0) {
      pt.pows.push_back({pa, pb, fn.zeta, fn.zeta_int});
      pow_slot = static_cast<int32_t>(pt.pows.size() - 1);
    }
    t.angular.push_back(fn);
    const bool narrow = f.type == SymmetryFunctionType::G4;
    AngGroupT* ag = nullptr;
    for (auto& x : pt.groups)
      if (x.group == g && x.narrow == narrow) ag = &x;
    if (!ag) {
      const int32_t slot = narrow ? find_or_add(pt.rcs, f.r_c) : -1;
      pt.groups.push_back({g, narrow, slot, {}, {}, {}});
      ag = &pt.groups.back();
    }
    ag->fns.push_back(static_cast<int32_t>(t.angular.size() - 1));
    ag->pows.push_back(pow_slot);
    ag->prefs.push_back(fn.pref);
  }
  for (int32_t e = 0; e < ne; ++e) n_features_ = std::max(n_features_, per_element_[e]);

  // Flatten.
  flat_ = std::make_unique<Flat>();
  Flat& F = *flat_;
  acsf::Tables& T = F.t;
  T.n_elements = ne;
  T.cutoff = static_cast<int32_t>(cutoff_);
  F.group_begin.push_back(0); F.rc_begin.push_back(0); F.radial_begin.push_back(0); F.angular_begin.push_back(0);
  F.pair_group_begin.push_back(0); F.pair_pow_begin.push_back(0); F.pair_rc_begin.push_back(0);
  F.ag_fn_begin.push_back(0);
  auto i32 = [](size_t v) { return static_cast<int32_t>(v); };
  for (int32_t e = 0; e < ne; ++e) {
    const ElementT& t = el[e];
    F.n_features.push_back(per_element_[e]);
    F.rc_max.push_back(t.rc_max);
    for (const GroupT& g : t.groups) {
      F.group_eta.push_back(g.eta); F.group_rs.push_back(g.r_s); F.group_rc_slot.push_back(g.rc_slot);
    }
    F.group_begin.push_back(i32(F.group_eta.size()));
    // where R_g, dR_g are read in the values / VJP passes: the radial functions' neighbour
    // element, both elements of every pair that is not factorised (marked in the pair loop below)
    std::vector<uint8_t> need(t.groups.size() * ne, 0);
    for (const RadialT& r : t.radial) need[r.group * ne + r.neighbor] = 1;
    F.rc.insert(F.rc.end(), t.rcs.begin(), t.rcs.end());
    F.rc_begin.push_back(i32(F.rc.size()));
    for (const RadialT& r : t.radial) {
      F.radial_feature.push_back(r.feature); F.radial_group.push_back(r.group); F.radial_neighbor.push_back(r.neighbor);
    }
    F.radial_begin.push_back(i32(F.radial_feature.size()));
    for (const AngFnT& a : t.angular) {
      F.angular_feature.push_back(a.feature);
      F.angular_zeta.push_back(a.zeta); F.angular_pref.push_back(a.pref);
    }
    F.angular_begin.push_back(i32(F.angular_feature.size()));
    T.max_groups = std::max(T.max_groups, i32(t.groups.size()));
    T.max_rcs = std::max(T.max_rcs, i32(t.rcs.size()));
    T.max_angular = std::max(T.max_angular, i32(t.angular.size()));
    for (int32_t a = 0; a < ne; ++a) {
      for (int32_t b = 0; b < ne; ++b) {
        double pair_base = 0.0;  // shared-exponential base of this pair (0: none)
        int32_t fact_slot = -1;  // factorised pair: the common r_c's local slot (-1: no)
        if (b >= a) {
          static const PairT none{};
          const auto it = t.pairs.find(static_cast<size_t>(a) * ne + b);
          const PairT& pt = it == t.pairs.end() ? none : it->second;
          // shared exponentials for the G4 groups: every r_s = 0 and every eta an integer multiple
          // (1..64, to 1e-12 relative) of the smallest
          double base = 0.0;
          bool share = false;
          for (const AngGroupT& ag : pt.groups)
            if (ag.narrow) {
              const GroupT& g = t.groups[ag.group];
              if (g.r_s != 0.0 || !(g.eta > 0.0)) {
                base = -1.0;
                break;
              }
              base = base == 0.0 ? g.eta : std::min(base, g.eta);
            }
          if (base > 0.0) {
            share = true;
            for (const AngGroupT& ag : pt.groups)
              if (ag.narrow) {
                const double m = t.groups[ag.group].eta / base;
                if (!(std::fabs(m - std::round(m)) <= 1e-12 * m && std::round(m) <= 64.0)) share = false;
              }
          }
          pair_base = share ? base : 0.0;
          // factorised (acsf::Tables::pair_fact_slot): shared exponentials, G4 groups only, one r_c
          if (share && !pt.groups.empty()) {
            fact_slot = t.groups[pt.groups.front().group].rc_slot;
            for (const AngGroupT& ag : pt.groups)
              if (!ag.narrow || t.groups[ag.group].rc_slot != fact_slot) fact_slot = -1;
          }
          for (const AngGroupT& ag : pt.groups) {
            if (fact_slot < 0) need[ag.group * ne + a] = need[ag.group * ne + b] = 1;  // read by the pair loop
            F.ag_group.push_back(ag.group); F.ag_narrow.push_back(ag.narrow ? 1 : 0); F.ag_rc_slot.push_back(ag.rc_slot);
            F.ag_eta_power.push_back(share && ag.narrow ? static_cast<int32_t>(std::round(t.groups[ag.group].eta / base)) : 0);
            for (size_t u = 0; u < ag.fns.size(); ++u) {
              F.agf_fn.push_back(ag.fns[u]); F.agf_pow.push_back(ag.pows[u]); F.agf_pref.push_back(ag.prefs[u]);
            }
            F.ag_fn_begin.push_back(i32(F.agf_fn.size()));
          }
          for (const PowT& pw : pt.pows) {
            F.pow_a.push_back(pw.a); F.pow_b.push_back(pw.b); F.pow_zeta.push_back(pw.zeta);
            F.pow_zeta_int.push_back(pw.zeta_int);
          }
          F.pair_rc.insert(F.pair_rc.end(), pt.rcs.begin(), pt.rcs.end());
          T.max_pair_groups = std::max(T.max_pair_groups, i32(pt.groups.size()));
          T.max_pair_pows = std::max(T.max_pair_pows, i32(pt.pows.size()));
          T.max_pair_rcs = std::max(T.max_pair_rcs, i32(pt.rcs.size()));
        }
        F.pair_eta_base.push_back(pair_base);
        F.pair_fact_slot.push_back(fact_slot);
        F.pair_group_begin.push_back(i32(F.ag_group.size()));
        F.pair_pow_begin.push_back(i32(F.pow_a.size()));
        F.pair_rc_begin.push_back(i32(F.pair_rc.size()));
      }
    }
    // shared radial exponentials (acsf::Tables::group_head): in ascending eta, a group whose r_s
    // equals a head's and whose eta is k times the head's (k = 2 .. kMaxGroupPower, to 4 ulp)
    // takes exp(-eta (r - r_s)^2) as the head's to the k-th power; the head with the largest eta
    // (smallest k) is chosen. Heads are computed wherever a member is needed.
    const size_t ngr = t.groups.size();
    std::vector<int32_t> order(ngr), head(ngr, -1), power(ngr, 1);
    for (size_t g = 0; g < ngr; ++g) order[g] = static_cast<int32_t>(g);
    std::stable_sort(order.begin(), order.end(),
                     [&](int32_t x, int32_t y) { return t.groups[x].eta < t.groups[y].eta; });
    for (size_t i = 0; i < ngr; ++i) {
      const GroupT& g = t.groups[order[i]];
      for (size_t j = i; j-- > 0;) {
        const int32_t h = order[j];
        const GroupT& gh = t.groups[h];
        if (head[h] >= 0 || gh.r_s != g.r_s || !(gh.eta > 0.0) || !(g.eta > gh.eta)) continue;
        const double k = std::round(g.eta / gh.eta);
        if (k >= 2.0 && k <= acsf::kMaxGroupPower &&
            std::fabs(g.eta - k * gh.eta) <= 4.0 * std::numeric_limits<double>::epsilon() * g.eta) {
          head[order[i]] = h;
          power[order[i]] = static_cast<int32_t>(k);
          break;
        }
      }
    }
    std::vector<uint8_t> calc(need);
    std::vector<int32_t> members(ngr, 0);
    for (size_t g = 0; g < ngr; ++g)
      if (head[g] >= 0) {
        ++members[head[g]];
        for (int32_t a = 0; a < ne; ++a) calc[head[g] * ne + a] |= need[g * ne + a];
      }
    for (size_t g = 0; g < ngr; ++g) {
      F.group_head.push_back(head[g]);
      F.group_power.push_back(power[g]);
      F.group_members.push_back(members[g]);
    }
    F.group_need.insert(F.group_need.end(), need.begin(), need.end());
    F.group_calc.insert(F.group_calc.end(), calc.begin(), calc.end());
  }
  F.bind();
}

std::unique_ptr<Descriptor> SymmetryFunctions::from_file(const ModelFile& f, int32_t n_elements) {
  std::vector<uint64_t> shape;
  const auto& rows = f.f64("descriptor.functions", &shape);
  if (shape.size() != 2 || shape[1] != 9) throw InvalidInput(f.where() + ": descriptor.functions must be (n, 9)");
  std::vector<SymmetryFunctionSpec> specs(shape[0]);
  for (uint64_t r = 0; r < shape[0]; ++r) {
    const double* v = &rows[9 * r];
    for (int k = 0; k < 4; ++k)
      if (!(v[k] == std::floor(v[k]) && std::fabs(v[k]) < 1e6))
        throw InvalidInput(f.where() + ": descriptor.functions row " + std::to_string(r) +
                           ": type and element indices must be integers");
    specs[r].type = static_cast<SymmetryFunctionType>(static_cast<int32_t>(v[0]));
    specs[r].centre = static_cast<int32_t>(v[1]);
    specs[r].neighbor1 = static_cast<int32_t>(v[2]);
    specs[r].neighbor2 = static_cast<int32_t>(v[3]);
    specs[r].eta = v[4];
    specs[r].r_s = v[5];
    specs[r].r_c = v[6];
    if (specs[r].type == SymmetryFunctionType::G5s) {
      specs[r].lambda = 1.0;
      specs[r].theta_s = v[7];  // column 7 holds theta_s (radians) for G5s
    } else {
      specs[r].lambda = v[7];
    }
    specs[r].zeta = v[8];
  }
  CutoffType cutoff{};
  try {
    cutoff = cutoff_type_from_string(f.string("descriptor.cutoff_function"));
  } catch (const InvalidInput& e) {
    throw InvalidInput(f.where() + ": record 'descriptor.cutoff_function': " + e.what());
  }
  try {
    return std::make_unique<SymmetryFunctions>(n_elements, std::move(specs), cutoff);
  } catch (const InvalidInput& e) {
    throw InvalidInput(f.where() + ": record 'descriptor.functions': " + e.what());
  }
}

int64_t SymmetryFunctions::n_features(int32_t element) const {
  if (element < 0 || element >= n_elements_) throw InvalidInput("element index out of range");
  return per_element_[element];
}

std::vector<std::string> SymmetryFunctions::feature_labels(int32_t element) const {
  if (element < 0 || element >= n_elements_) throw InvalidInput("element index out of range");
  std::vector<std::string> out;
  for (const auto& f : functions_) {
    if (f.centre != element) continue;
    std::ostringstream s;
    s << (f.type == SymmetryFunctionType::G5s ? std::string("G5s") : "G" + std::to_string(static_cast<int>(f.type)))
      << "[" << f.neighbor1;
    if (f.neighbor2 >= 0) s << "," << f.neighbor2;
    s << "] eta=" << f.eta << " r_s=" << f.r_s << " r_c=" << f.r_c;
    if (f.type == SymmetryFunctionType::G5s)
      s << " theta_s=" << f.theta_s << " zeta=" << f.zeta;
    else if (f.type != SymmetryFunctionType::G2)
      s << " lambda=" << f.lambda << " zeta=" << f.zeta;
    out.push_back(s.str());
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// CPU driver: OpenMP over centres, per-thread scratch from the pool, the kernels of
// acsf_kernels.hpp per centre. Mode 0: values; 1: vector-Jacobian product; 2: values + Jacobian.
// ---------------------------------------------------------------------------------------------

template <int Mode>
void SymmetryFunctions::run(const NeighborView& nl, double* G, const double* w, double* pair_grad,
                            DescriptorJacobian* jac, int n_threads, CentreModel* model) const {
  const acsf::Tables& T = flat_->t;
  const int64_t nc = nl.n_centres, nf = n_features_;
  const int nt = resolve_threads(n_threads);
  WorkspacePool<acsf::Workspace>::Lease lease(pool_, nt);
  const int K = Mode == 3 ? model->n_outputs() : 1;
  const int64_t n_pairs = nc ? nl.offsets[nc] : 0;
  acsf::prepare(lease, nt, T, acsf::capacity_for(max_neighbours(nl)), nf, K);
  if (Mode == 3) model->begin(nt);
  int64_t overlap = -1;
#pragma omp parallel num_threads(nt)
  {
    int tid = 0;
#ifdef ATOMFORGE_HAVE_OPENMP
    tid = omp_get_thread_num();
#endif
    acsf::Scratch& s = lease[tid].s;
    int64_t my_overlap = -1;
#pragma omp for schedule(dynamic, 8)
    for (int64_t c = 0; c < nc; ++c) {
      const int32_t e = nl.species[nl.centre(c)];
      int64_t np = 0;
      const int64_t n = acsf::gather(T, nl, c, s, &np, &my_overlap);
      acsf::radial_terms(T, e, np, s, Mode == 2);  // the Jacobian reads every group
      if constexpr (Mode == 3) {  // fused: values, the model's dE/dG, then (if wanted) the VJP
        double* g = lease[tid].grow.data();
        double* wr = lease[tid].wrow.data();
        std::fill(g, g + nf, 0.0);
        std::fill(wr, wr + K * nf, 0.0);
        acsf::Workspace& ws = lease[tid];
        acsf::TripletCache cache;
        cache.d = ws.cache_d.data();
        cache.d_cap = static_cast<int64_t>(ws.cache_d.size());
        cache.i = ws.cache_i.data();
        cache.i_cap = static_cast<int64_t>(ws.cache_i.size());
        acsf::centre_terms<0>(T, e, n, np, s, g, nullptr, nullptr, nf, pair_grad ? &cache : nullptr, true);
        model->centre(tid, c, e, g, wr);
        if (pair_grad) {
          for (int o = 0; o < K; ++o) {  // one gradient per output, written at its CSR slots
            cache.d_used = cache.i_used = 0;
            acsf::centre_terms<1>(T, e, n, np, s, nullptr, wr + o * nf, nullptr, nf,
                                  cache.overflow ? nullptr : &cache);
            acsf::finish_vjp(n, s, pair_grad + 3 * n_pairs * o);
          }
          if (cache.overflow) {  // grow for the next centres (allocation between kernels only)
            ws.cache_d.resize(std::max<size_t>(ws.cache_d.size() * 2, 1 << 16));
            ws.cache_i.resize(std::max<size_t>(ws.cache_i.size() * 2, 1 << 14));
          }
        }
      } else if constexpr (Mode == 1) {
        acsf::centre_terms<1>(T, e, n, np, s, nullptr, w + c * nf, nullptr, nf);
        acsf::finish_vjp(n, s, pair_grad);
      } else {
        double* J = nullptr;
        if constexpr (Mode == 2) {
          const int64_t e0 = jac->entry_offsets[c];
          J = jac->values.data() + e0 * nf * 3;
          jac->position[e0] = nl.centre(c);
          for (int64_t m = 0; m < n; ++m) {
            jac->position[e0 + 1 + m] = s.pos[m];
            for (int k = 0; k < 3; ++k) jac->displacement[3 * (e0 + 1 + m) + k] = s.d[3 * m + k];
          }
        }
        acsf::centre_terms<Mode>(T, e, n, np, s, G + c * nf, nullptr, J, nf);
      }
    }
#pragma omp critical
    if (my_overlap >= 0 && overlap < 0) overlap = my_overlap;
  }
  if (overlap >= 0) throw_coincident(overlap);
}

void SymmetryFunctions::run_blocks(const NeighborView& nl, double* pair_grad, int n_threads, CentreModel& model,
                                   int B) const {
  const acsf::Tables& T = flat_->t;
  const int64_t nc = nl.n_centres, nf = n_features_;
  const int nt = resolve_threads(n_threads);
  WorkspacePool<acsf::Workspace>::Lease lease(pool_, nt * B);
  const int K = model.n_outputs();
  const int64_t n_pairs = nc ? nl.offsets[nc] : 0;
  acsf::prepare(lease, nt * B, T, acsf::capacity_for(max_neighbours(nl)), nf, K);
  const CentreBlocks blocks = centre_blocks(nl, n_elements_, B);
  const int64_t n_blocks = static_cast<int64_t>(blocks.starts.size()) - 1;
  model.begin(nt);
  int64_t overlap = -1;
#pragma omp parallel num_threads(nt)
  {
    int tid = 0;
#ifdef ATOMFORGE_HAVE_OPENMP
    tid = omp_get_thread_num();
#endif
    int64_t my_overlap = -1;
    int64_t n_in[kMaxCentreBlock], n_pr[kMaxCentreBlock];
    acsf::TripletCache cache[kMaxCentreBlock];
    const double* gr[kMaxCentreBlock];
    double* wr[kMaxCentreBlock];
#pragma omp for schedule(dynamic, 1)
    for (int64_t b = 0; b < n_blocks; ++b) {
      const int64_t* cs = &blocks.order[blocks.starts[b]];
      const int n = static_cast<int>(blocks.starts[b + 1] - blocks.starts[b]);
      const int32_t e = nl.species[nl.centre(cs[0])];
      for (int q = 0; q < n; ++q) {  // values, each centre in its own slot (kept for its VJP)
        acsf::Workspace& ws = lease[tid * B + q];
        acsf::Scratch& s = ws.s;
        n_in[q] = acsf::gather(T, nl, cs[q], s, &n_pr[q], &my_overlap);
        acsf::radial_terms(T, e, n_pr[q], s, false);
        double* g = ws.grow.data();
        std::fill(g, g + nf, 0.0);
        std::fill(ws.wrow.begin(), ws.wrow.end(), 0.0);
        cache[q] = acsf::TripletCache();
        cache[q].d = ws.cache_d.data();
        cache[q].d_cap = static_cast<int64_t>(ws.cache_d.size());
        cache[q].i = ws.cache_i.data();
        cache[q].i_cap = static_cast<int64_t>(ws.cache_i.size());
        acsf::centre_terms<0>(T, e, n_in[q], n_pr[q], s, g, nullptr, nullptr, nf, pair_grad ? &cache[q] : nullptr,
                              true);
        gr[q] = g;
        wr[q] = ws.wrow.data();
      }
      model.centres(tid, n, cs, e, gr, wr);
      if (!pair_grad) continue;
      for (int q = 0; q < n; ++q) {  // the VJP of each output, written at its CSR slots
        acsf::Workspace& ws = lease[tid * B + q];
        for (int o = 0; o < K; ++o) {
          cache[q].d_used = cache[q].i_used = 0;
          acsf::centre_terms<1>(T, e, n_in[q], n_pr[q], ws.s, nullptr, wr[q] + o * nf, nullptr, nf,
                                cache[q].overflow ? nullptr : &cache[q]);
          acsf::finish_vjp(n_in[q], ws.s, pair_grad + 3 * n_pairs * o);
        }
        if (cache[q].overflow) {  // grow for the next centres (allocation between kernels only)
          ws.cache_d.resize(std::max<size_t>(ws.cache_d.size() * 2, 1 << 16));
          ws.cache_i.resize(std::max<size_t>(ws.cache_i.size() * 2, 1 << 14));
        }
      }
    }
#pragma omp critical
    if (my_overlap >= 0 && overlap < 0) overlap = my_overlap;
  }
  if (overlap >= 0) throw_coincident(overlap);
}

void SymmetryFunctions::compute(const NeighborView& nl, double* G, int n_threads) const {
  validate_neighbor_view(nl, n_elements_);
  std::fill(G, G + nl.n_centres * n_features_, 0.0);
  run<0>(nl, G, nullptr, nullptr, nullptr, n_threads);
}

void SymmetryFunctions::vjp(const NeighborView& nl, const double* dE_dG, double* forces, double* virial,
                            double* per_atom_virial, int n_threads) const {
  validate_neighbor_view(nl, n_elements_);
  check_finite_weights(dE_dG, nl.n_centres, n_features_);
  const int64_t n_pairs = nl.n_centres ? nl.offsets[nl.n_centres] : 0;
  // uninitialised: finish_vjp writes every slot of every centre
  std::unique_ptr<double[]> pair_grad(new double[3 * n_pairs]);
  run<1>(nl, nullptr, dE_dG, pair_grad.get(), nullptr, n_threads);
  scatter_pair_gradients(nl, pair_grad.get(), forces, virial, per_atom_virial);
}

void SymmetryFunctions::evaluate(const NeighborView& nl, CentreModel& model, double* forces, double* virial,
                                 double* per_atom_virial, int n_threads) const {
  validate_neighbor_view(nl, n_elements_);
  const int B = std::min(model.block_size(), kMaxCentreBlock);
  if (!forces) {
    if (B > 1) run_blocks(nl, nullptr, n_threads, model, B);
    else run<3>(nl, nullptr, nullptr, nullptr, nullptr, n_threads, &model);
    return;
  }
  const int64_t n_pairs = nl.n_centres ? nl.offsets[nl.n_centres] : 0;
  const int K = model.n_outputs();
  // uninitialised: finish_vjp writes every slot of every centre (a clearing pass over all pairs
  // cost about 1 % of an MD step)
  std::unique_ptr<double[]> pair_grad(new double[3 * n_pairs * K]);
  if (B > 1) run_blocks(nl, pair_grad.get(), n_threads, model, B);
  else run<3>(nl, nullptr, nullptr, pair_grad.get(), nullptr, n_threads, &model);
  double W[9];
  for (int o = 0; o < K; ++o)
    scatter_pair_gradients(nl, pair_grad.get() + 3 * n_pairs * o, forces + 3 * nl.n_total * o,
                           virial ? virial + 9 * o : W, o == 0 ? per_atom_virial : nullptr);
}

DescriptorJacobian SymmetryFunctions::jacobian(const NeighborView& nl, double* G, int n_threads) const {
  validate_neighbor_view(nl, n_elements_);
  const int64_t nc = nl.n_centres, nf = n_features_;
  DescriptorJacobian jac = allocate_jacobian(nl, nf, flat_->rc_max.data());
  std::vector<double> Gtmp;
  if (!G) {
    Gtmp.assign(nc * nf, 0.0);
    G = Gtmp.data();
  } else {
    std::fill(G, G + nc * nf, 0.0);
  }
  run<2>(nl, G, nullptr, nullptr, &jac, n_threads);
  return jac;
}

}  // namespace atomforge

namespace atomforge {
/// Registry entry (src/descriptors/list.def).
std::unique_ptr<Descriptor> make_descriptor_acsf(const ModelFile& file, int32_t n_elements) {
  return SymmetryFunctions::from_file(file, n_elements);
}
}  // namespace atomforge
