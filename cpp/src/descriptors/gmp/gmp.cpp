// Gaussian multipole descriptors: parameter tables (radial coefficients, MCSH polynomials) and
// the CPU driver of the single-source kernels in gmp_kernels.hpp. Formulas: gmp.hpp.
#include "descriptors/gmp/gmp.hpp"

#include <algorithm>
#include <cmath>
#include <map>
#include <sstream>
#include <tuple>

#include "atomforge/errors.hpp"
#include "common/cutoff.hpp"
#include "common/threads.hpp"
#include "descriptors/common.hpp"

#ifdef ATOMFORGE_HAVE_OPENMP
#include <omp.h>
#endif

namespace atomforge {

namespace {

constexpr double kPi = 3.14159265358979323846;

// Homogeneous polynomials in (x, y, z) as {(a, b, c) -> coefficient}.
using Poly = std::map<std::tuple<int, int, int>, double>;

Poly laplacian(const Poly& p) {
  Poly out;
  for (const auto& [m, v] : p) {
    const auto [a, b, c] = m;
    if (a >= 2) out[{a - 2, b, c}] += v * a * (a - 1);
    if (b >= 2) out[{a, b - 2, c}] += v * b * (b - 1);
    if (c >= 2) out[{a, b, c - 2}] += v * c * (c - 1);
  }
  return out;
}

Poly times_r2(const Poly& p) {
  Poly out;
  for (const auto& [m, v] : p) {
    const auto [a, b, c] = m;
    out[{a + 2, b, c}] += v;
    out[{a, b + 2, c}] += v;
    out[{a, b, c + 2}] += v;
  }
  return out;
}

double double_factorial(int n) {  // n!! for n >= -1
  double r = 1.0;
  for (int k = n; k > 1; k -= 2) r *= k;
  return r;
}

double factorial(int n) {
  double r = 1.0;
  for (int k = 2; k <= n; ++k) r *= k;
  return r;
}

// Maxwell-Cartesian harmonic of x^a y^b z^c, n = a + b + c:
//   S = (2n-1)!! H,  H = sum_k (-1)^k (2n-2k-1)!! / ((2n-1)!! (2k)!!) r^{2k} Laplacian^k x^a y^b z^c
// (harmonic projection of a homogeneous polynomial; E. W. Hobson, The Theory of Spherical and
// Ellipsoidal Harmonics (1931), ch. III). Exact small rationals in double precision.
Poly mcsh(int a, int b, int c) {
  const int n = a + b + c;
  Poly term{{{a, b, c}, 1.0}}, out;
  for (int k = 0; 2 * k <= n; ++k) {
    const double ck = (k % 2 ? -1.0 : 1.0) * double_factorial(2 * n - 2 * k - 1) / double_factorial(2 * k);
    Poly t = term;
    for (int q = 0; q < k; ++q) t = times_r2(t);
    for (const auto& [m, v] : t)
      if (v != 0.0) out[m] += ck * v;
    term = laplacian(term);
  }
  return out;  // (2n-1)!! H: the factor (2n-1)!! cancels the denominator above
}

}  // namespace

GaussianMultipoles::GaussianMultipoles(std::vector<int32_t> orders, std::vector<double> sigmas, double r_c,
                                       int32_t cutoff, bool square, std::vector<std::vector<Gaussian>> densities,
                                       std::vector<std::vector<int32_t>> channels)
    : orders_(std::move(orders)), sigmas_(std::move(sigmas)), r_c_(r_c), cutoff_(cutoff), square_(square),
      densities_(std::move(densities)), channels_(std::move(channels)) {
  const int32_t ne = static_cast<int32_t>(densities_.size());
  if (ne < 1 || ne > kMaxElements) throw InvalidInput("GMP: 1 to 118 elements are needed");
  if (orders_.empty()) throw InvalidInput("GMP: no orders given");
  for (size_t k = 0; k < orders_.size(); ++k) {
    if (orders_[k] < 0 || orders_[k] > gmp::kMaxOrder)
      throw InvalidInput("GMP: order " + std::to_string(orders_[k]) + " is outside 0.." + std::to_string(gmp::kMaxOrder));
    for (size_t q = 0; q < k; ++q)
      if (orders_[q] == orders_[k]) throw InvalidInput("GMP: order " + std::to_string(orders_[k]) + " is repeated");
  }
  if (sigmas_.empty()) throw InvalidInput("GMP: no sigmas given");
  for (size_t k = 0; k < sigmas_.size(); ++k) {
    if (!(sigmas_[k] > 0.0) || !std::isfinite(sigmas_[k]))
      throw InvalidInput("GMP: sigma " + std::to_string(sigmas_[k]) + " must be positive and finite");
    for (size_t q = 0; q < k; ++q)
      if (sigmas_[q] == sigmas_[k]) throw InvalidInput("GMP: sigma " + std::to_string(sigmas_[k]) + " is repeated");
  }
  if (!(r_c_ > 0.0) || !std::isfinite(r_c_) || r_c_ > kMaxCutoff)
    throw InvalidInput("GMP: r_c = " + std::to_string(r_c_) + " A must be in (0, " + std::to_string(kMaxCutoff) + "]");
  if (cutoff_ < -1 || cutoff_ > static_cast<int32_t>(CutoffType::Poly4))
    throw InvalidInput("GMP: unknown cutoff function " + std::to_string(cutoff_));
  for (int32_t e = 0; e < ne; ++e) {
    if (densities_[e].empty()) throw InvalidInput("GMP: element " + std::to_string(e) + " has no density Gaussians");
    for (const Gaussian& g : densities_[e])
      if (!std::isfinite(g.coefficient) || !(g.exponent > 0.0) || !std::isfinite(g.exponent))
        throw InvalidInput("GMP: element " + std::to_string(e) +
                           " has a density Gaussian with a non-finite coefficient or a non-positive exponent");
  }
  if (channels_.empty()) {  // the published GMP: the total density
    channels_.emplace_back();
    for (int32_t e = 0; e < ne; ++e) channels_[0].push_back(e);
  }
  if (channels_.size() > 256) throw InvalidInput("GMP: more than 256 density channels");
  std::vector<int> covered(ne, 0);
  for (size_t h = 0; h < channels_.size(); ++h) {
    const std::string name = "GMP: density channel " + std::to_string(h);
    if (channels_[h].empty()) throw InvalidInput(name + " has no element");
    std::vector<int> in(ne, 0);
    for (int32_t e : channels_[h]) {
      if (e < 0 || e >= ne) throw InvalidInput(name + ": element index " + std::to_string(e) + " out of range");
      if (in[e]++) throw InvalidInput(name + ": element index " + std::to_string(e) + " is repeated");
      covered[e] = 1;
    }
    std::sort(channels_[h].begin(), channels_[h].end());
    for (size_t q = 0; q < h; ++q)
      if (channels_[q] == channels_[h]) throw InvalidInput(name + " repeats channel " + std::to_string(q));
  }
  for (int32_t e = 0; e < ne; ++e)
    if (!covered[e])
      throw InvalidInput("GMP: element " + std::to_string(e) + " is in no density channel (its atoms would be ignored)");
  build_tables();
}

void GaussianMultipoles::build_tables() {
  const int32_t ne = static_cast<int32_t>(densities_.size());
  const int32_t no = static_cast<int32_t>(orders_.size()), ns = static_cast<int32_t>(sigmas_.size());
  const int32_t no_pad = (no + gmp::kOrderBlock - 1) / gmp::kOrderBlock * gmp::kOrderBlock;
  // radial coefficients
  gauss_begin_.assign(1, 0);
  int32_t max_gauss = 0;
  self0_.assign(static_cast<size_t>(ne) * ns, 0.0);
  for (int32_t e = 0; e < ne; ++e) {
    for (const Gaussian& g : densities_[e]) {
      for (int32_t s = 0; s < ns; ++s) {
        const double sigma = sigmas_[s];
        const double a = 1.0 / (2.0 * sigma * sigma);
        const double N = std::pow(2.0 * kPi * sigma * sigma, -1.5);
        const double gamma = a + g.exponent;
        const double base = N * g.coefficient * std::pow(kPi / gamma, 1.5);
        b_.push_back(a * g.exponent / gamma);
        for (int32_t o = 0; o < no_pad; ++o) A_.push_back(o < no ? base * std::pow(g.exponent / gamma, orders_[o]) : 0.0);
        self0_[e * ns + s] += base;
      }
    }
    max_gauss = std::max(max_gauss, static_cast<int32_t>(densities_[e].size()));
    gauss_begin_.push_back(static_cast<int32_t>(b_.size() / ns));
  }
  // MCSH components: polynomials and their gradients over the monomial table
  int max_order = 0;
  for (int32_t o : orders_) max_order = std::max(max_order, static_cast<int>(o));
  comp_begin_.assign(1, 0);
  term_begin_.assign(1, 0);
  grad_begin_.assign(1, 0);
  for (int32_t o = 0; o < no; ++o) {
    const int n = orders_[o];
    for (int a = n; a >= 0; --a)
      for (int b = n - a; b >= 0; --b) {
        const int c = n - a - b;
        comp_weight_.push_back(factorial(n) / (factorial(a) * factorial(b) * factorial(c)));
        const Poly S = mcsh(a, b, c);
        for (const auto& [m, v] : S) {
          if (v == 0.0) continue;
          term_coef_.push_back(v);
          term_mono_.push_back(gmp::mono_index(std::get<0>(m), std::get<1>(m), std::get<2>(m)));
        }
        term_begin_.push_back(static_cast<int32_t>(term_coef_.size()));
        for (int k = 0; k < 3; ++k) {
          for (const auto& [m, v] : S) {
            int p[3] = {std::get<0>(m), std::get<1>(m), std::get<2>(m)};
            if (v == 0.0 || p[k] == 0) continue;
            grad_coef_.push_back(v * p[k]);
            p[k] -= 1;
            grad_mono_.push_back(gmp::mono_index(p[0], p[1], p[2]));
          }
          grad_begin_.push_back(static_cast<int32_t>(grad_coef_.size()));
        }
      }
    comp_begin_.push_back(static_cast<int32_t>(comp_weight_.size()));
  }
  t_.n_elements = ne;
  t_.n_orders = no;
  t_.n_orders_pad = no_pad;
  t_.n_sigmas = ns;
  t_.max_order = max_order;
  t_.cutoff = cutoff_;
  t_.square = square_ ? 1 : 0;
  t_.r_c = r_c_;
  t_.orders = orders_.data();
  t_.gauss_begin = gauss_begin_.data();
  t_.A = A_.data();
  t_.b = b_.data();
  t_.self0 = self0_.data();
  t_.comp_begin = comp_begin_.data();
  t_.comp_weight = comp_weight_.data();
  t_.term_begin = term_begin_.data();
  t_.term_coef = term_coef_.data();
  t_.term_mono = term_mono_.data();
  t_.grad_begin = grad_begin_.data();
  t_.grad_coef = grad_coef_.data();
  t_.grad_mono = grad_mono_.data();
  t_.n_comp = static_cast<int32_t>(comp_weight_.size());
  t_.max_gauss = max_gauss;
  // monomial recurrence up to max_order, in mono_index order
  const int n_mono = (max_order + 1) * (max_order + 2) * (max_order + 3) / 6;
  mono_parent_.assign(n_mono, 0);
  mono_axis_.assign(n_mono, 0);
  for (int n = 1; n <= max_order; ++n)
    for (int a = n; a >= 0; --a)
      for (int b = n - a; b >= 0; --b) {
        const int c = n - a - b, m = gmp::mono_index(a, b, c);
        if (a > 0) {
          mono_parent_[m] = gmp::mono_index(a - 1, b, c);
          mono_axis_[m] = 0;
        } else if (b > 0) {
          mono_parent_[m] = gmp::mono_index(a, b - 1, c);
          mono_axis_[m] = 1;
        } else {
          mono_parent_[m] = gmp::mono_index(a, b, c - 1);
          mono_axis_[m] = 2;
        }
      }
  t_.n_mono = n_mono;
  t_.mono_parent = mono_parent_.data();
  t_.mono_axis = mono_axis_.data();
  // density slots: elements that belong to the same channels add to one set of moments
  const int32_t nh = static_cast<int32_t>(channels_.size());
  std::vector<std::vector<int32_t>> column(ne, std::vector<int32_t>(nh, 0));
  for (int32_t h = 0; h < nh; ++h)
    for (int32_t e : channels_[h]) column[e][h] = 1;
  std::vector<std::vector<int32_t>> slot_column;
  slot_of_.assign(ne, 0);
  for (int32_t e = 0; e < ne; ++e) {
    const auto it = std::find(slot_column.begin(), slot_column.end(), column[e]);
    slot_of_[e] = static_cast<int32_t>(it - slot_column.begin());
    if (it == slot_column.end()) slot_column.push_back(column[e]);
  }
  const int32_t n_slots = static_cast<int32_t>(slot_column.size());
  chan_begin_.assign(1, 0);
  chan_slots_.clear();
  chan_member_.assign(static_cast<size_t>(nh) * n_slots, 0);
  for (int32_t h = 0; h < nh; ++h) {
    for (int32_t sl = 0; sl < n_slots; ++sl)
      if (slot_column[sl][h]) {
        chan_slots_.push_back(sl);
        chan_member_[h * n_slots + sl] = 1;
      }
    chan_begin_.push_back(static_cast<int32_t>(chan_slots_.size()));
  }
  t_.n_slots = n_slots;
  t_.n_channels = nh;
  t_.slot_of = slot_of_.data();
  t_.chan_begin = chan_begin_.data();
  t_.chan_slots = chan_slots_.data();
  t_.chan_member = chan_member_.data();
}

std::unique_ptr<Descriptor> GaussianMultipoles::from_file(const ModelFile& f, int32_t n_elements) {
  const std::string& w = f.where();
  try {
    std::vector<int32_t> orders;
    const auto& o = f.i64_vector("descriptor.orders");
    if (o.size() > 64) throw InvalidInput("descriptor.orders: too many orders");
    for (int64_t v : o) {
      if (v < 0 || v > gmp::kMaxOrder) throw InvalidInput("descriptor.orders: order " + std::to_string(v) + " out of range");
      orders.push_back(static_cast<int32_t>(v));
    }
    const auto& sig = f.f64_vector("descriptor.sigmas");
    if (sig.size() > 256) throw InvalidInput("descriptor.sigmas: too many widths");
    const double r_c = f.f64_scalar("descriptor.r_c");
    const std::string& cf = f.string("descriptor.cutoff_function");
    const int32_t cutoff = cf == "none" ? -1 : static_cast<int32_t>(cutoff_type_from_string(cf));
    const int64_t square = f.i64_scalar("descriptor.square");
    if (square != 0 && square != 1) throw InvalidInput("descriptor.square must be 0 or 1");
    const auto& counts = f.i64_vector("descriptor.density.counts");
    std::vector<uint64_t> shape;
    const auto& gauss = f.f64("descriptor.density.gaussians", &shape);
    if (static_cast<int32_t>(counts.size()) != n_elements)
      throw InvalidInput("descriptor.density.counts needs one entry per species");
    if (shape.size() != 2 || shape[1] != 2) throw InvalidInput("descriptor.density.gaussians must be (n, 2)");
    uint64_t total = 0;
    for (int64_t c : counts) {
      if (c < 1 || c > 64) throw InvalidInput("descriptor.density.counts: each element needs 1 to 64 Gaussians");
      total += static_cast<uint64_t>(c);
    }
    if (total != shape[0]) throw InvalidInput("descriptor.density.gaussians has " + std::to_string(shape[0]) +
                                              " rows, the counts sum to " + std::to_string(total));
    std::vector<std::vector<Gaussian>> dens(n_elements);
    size_t row = 0;
    for (int32_t e = 0; e < n_elements; ++e)
      for (int64_t k = 0; k < counts[e]; ++k, ++row) dens[e].push_back({gauss[2 * row], gauss[2 * row + 1]});
    std::vector<std::vector<int32_t>> channels;
    if (f.has("descriptor.channels")) {
      const ModelRecord& rec = f.records().at("descriptor.channels");
      if (rec.type != ModelRecord::I64 || rec.shape.size() != 2 || rec.shape[1] != static_cast<uint64_t>(n_elements) ||
          rec.shape[0] < 1 || rec.shape[0] > 256)
        throw InvalidInput("descriptor.channels must be int64 (n_channels, n_elements) with 1 to 256 channels");
      channels.resize(rec.shape[0]);
      for (uint64_t h = 0; h < rec.shape[0]; ++h)
        for (int32_t e = 0; e < n_elements; ++e) {
          const int64_t v = rec.i64[h * n_elements + e];
          if (v != 0 && v != 1)
            throw InvalidInput("descriptor.channels: entry (" + std::to_string(h) + ", " + std::to_string(e) +
                               ") must be 0 or 1");
          if (v) channels[h].push_back(e);
        }
    }
    return std::make_unique<GaussianMultipoles>(orders, sig, r_c, cutoff, square == 1, dens, channels);
  } catch (const InvalidInput& e) {
    throw InvalidInput(w + ": " + e.what());
  }
}

int64_t GaussianMultipoles::n_features(int32_t element) const {
  if (element < 0 || element >= n_elements()) throw InvalidInput("element index out of range");
  return n_features();
}

std::vector<std::string> GaussianMultipoles::feature_labels(int32_t element) const {
  (void)n_features(element);
  std::vector<std::string> out;
  const bool total = channels_.size() == 1 && static_cast<int32_t>(channels_[0].size()) == n_elements();
  for (const auto& ch : channels_)
    for (int32_t o : orders_)
      for (double s : sigmas_) {
        std::ostringstream l;
        l << "GMP ";
        if (!total) {
          l << "channel=";
          for (size_t k = 0; k < ch.size(); ++k) l << (k ? "+" : "") << ch[k];
          l << " ";
        }
        l << "order=" << o << " sigma=" << s;
        out.push_back(l.str());
      }
  return out;
}

void GaussianMultipoles::prepare(gmp::Workspace& w, int64_t cap) const {
  const int64_t size = gmp::scratch_size(t_);
  if (static_cast<int64_t>(w.buf.size()) < size) w.buf.assign(size, 0.0);
  gmp::carve(t_, w.buf.data(), w.s);
  // the pair block: kept across steps, grown (never shrunk) when a centre has more neighbours
  if (w.s.cap < cap || w.rows.size() < static_cast<size_t>(cap * gmp::block_rows(t_))) {
    w.rows.assign(static_cast<size_t>(cap * gmp::block_rows(t_)), 0.0);
    w.lanes.assign(static_cast<size_t>(3 * cap), 0);
    w.elems.assign(static_cast<size_t>(cap), 0);
    w.s.cap = cap;
  }
  w.groups.assign(static_cast<size_t>(2 * n_elements()), 0);
  w.s.rows = w.rows.data();
  w.s.lane_q = w.lanes.data();
  w.s.lane_m = w.lanes.data() + w.s.cap;
  w.s.tmp_q = w.lanes.data() + 2 * w.s.cap;
  w.s.tmp_e = w.elems.data();
  w.s.group = w.groups.data();
}

template <class Fn>
void GaussianMultipoles::run(const NeighborView& nl, int n_threads, Fn&& per_centre, CentreModel* model) const {
  const int nt = resolve_threads(n_threads);
  WorkspacePool<gmp::Workspace>::Lease lease(pool_, nt);
  const int64_t cap = gmp::block_capacity(t_, max_neighbours(nl));
  for (int k = 0; k < nt; ++k) prepare(lease[k], cap);
  if (model) model->begin(nt);
  int64_t overlap = -1;
  const int64_t nc = nl.n_centres;
#pragma omp parallel num_threads(nt)
  {
    int tid = 0;
#ifdef ATOMFORGE_HAVE_OPENMP
    tid = omp_get_thread_num();
#endif
    gmp::Scratch& s = lease[tid].s;
    int64_t my_overlap = -1;
#pragma omp for schedule(dynamic, 8)
    for (int64_t c = 0; c < nc; ++c) per_centre(tid, c, s, &my_overlap);
#pragma omp critical
    if (my_overlap >= 0 && overlap < 0) overlap = my_overlap;
  }
  if (overlap >= 0) throw_coincident(overlap);
}

template <class Fn>
void GaussianMultipoles::run_blocks(const NeighborView& nl, int n_threads, const CentreBlocks& blocks, int slots,
                                    Fn&& per_block, CentreModel& model) const {
  const int nt = resolve_threads(n_threads);
  WorkspacePool<gmp::Workspace>::Lease lease(pool_, nt * slots);
  const int64_t cap = gmp::block_capacity(t_, max_neighbours(nl));
  for (int k = 0; k < nt * slots; ++k) prepare(lease[k], cap);
  model.begin(nt);
  int64_t overlap = -1;
  const int64_t n_blocks = static_cast<int64_t>(blocks.starts.size()) - 1;
#pragma omp parallel num_threads(nt)
  {
    int tid = 0;
#ifdef ATOMFORGE_HAVE_OPENMP
    tid = omp_get_thread_num();
#endif
    gmp::Scratch* s[kMaxCentreBlock];
    for (int q = 0; q < slots; ++q) s[q] = &lease[tid * slots + q].s;
    int64_t my_overlap = -1;
#pragma omp for schedule(dynamic, 1)
    for (int64_t b = 0; b < n_blocks; ++b)
      per_block(tid, &blocks.order[blocks.starts[b]], static_cast<int>(blocks.starts[b + 1] - blocks.starts[b]), s,
                &my_overlap);
#pragma omp critical
    if (my_overlap >= 0 && overlap < 0) overlap = my_overlap;
  }
  if (overlap >= 0) throw_coincident(overlap);
}

void GaussianMultipoles::compute(const NeighborView& nl, double* G, int n_threads) const {
  validate_neighbor_view(nl, n_elements());
  const int64_t nf = n_features();
  run(nl, n_threads, [&](int, int64_t c, gmp::Scratch& s, int64_t* ov) { gmp::values(t_, nl, c, s, G + c * nf, ov); });
}

void GaussianMultipoles::vjp(const NeighborView& nl, const double* dE_dG, double* forces, double* virial,
                             double* per_atom_virial, int n_threads) const {
  validate_neighbor_view(nl, n_elements());
  const int64_t nf = n_features();
  check_finite_weights(dE_dG, nl.n_centres, nf);
  const int64_t n_pairs = nl.n_centres ? nl.offsets[nl.n_centres] : 0;
  std::vector<double> pair_grad(3 * n_pairs, 0.0);
  run(nl, n_threads, [&](int, int64_t c, gmp::Scratch& s, int64_t* ov) {
    // values (for dG/dmu) then the VJP, one centre at a time while its data is in cache
    gmp::values(t_, nl, c, s, s.G, ov);
    gmp::vjp(t_, s.G, dE_dG + c * nf, s, pair_grad.data());
  });
  scatter_pair_gradients(nl, pair_grad.data(), forces, virial, per_atom_virial);
}

void GaussianMultipoles::evaluate(const NeighborView& nl, CentreModel& model, double* forces, double* virial,
                                  double* per_atom_virial, int n_threads) const {
  validate_neighbor_view(nl, n_elements());
  const int64_t nf = n_features();
  const int64_t n_pairs = nl.n_centres ? nl.offsets[nl.n_centres] : 0;
  const int K = model.n_outputs();
  std::vector<double> pair_grad(forces ? 3 * n_pairs * K : 0, 0.0);
  const int B = std::min(model.block_size(), kMaxCentreBlock);
  std::vector<std::vector<double>> wrows(resolve_threads(n_threads), std::vector<double>(std::max(B, 1) * K * nf));
  if (B > 1) {  // blocks of centres of one element (the model shares work between them), one slot each
    const CentreBlocks blocks = centre_blocks(nl, n_elements(), B);
    run_blocks(
        nl, n_threads, blocks, B,
        [&](int tid, const int64_t* cs, int n, gmp::Scratch* const* s, int64_t* ov) {
          const double* gr[kMaxCentreBlock];
          double* wr[kMaxCentreBlock];
          double* w = wrows[tid].data();
          std::fill(w, w + n * K * nf, 0.0);
          for (int q = 0; q < n; ++q) {
            gmp::values(t_, nl, cs[q], *s[q], s[q]->G, ov);
            gr[q] = s[q]->G;
            wr[q] = w + q * K * nf;
          }
          model.centres(tid, n, cs, nl.species[nl.centre(cs[0])], gr, wr);
          if (forces)
            for (int q = 0; q < n; ++q)
              for (int o = 0; o < K; ++o)
                gmp::vjp(t_, s[q]->G, wr[q] + o * nf, *s[q], pair_grad.data() + 3 * n_pairs * o);
        },
        model);
  } else {
  // the values pass keeps each pair's terms in the pair block for the gradient pass(es)
  run(
      nl, n_threads,
      [&](int tid, int64_t c, gmp::Scratch& s, int64_t* ov) {
        gmp::values(t_, nl, c, s, s.G, ov);
        double* w = wrows[tid].data();
        std::fill(w, w + K * nf, 0.0);
        model.centre(tid, c, nl.species[nl.centre(c)], s.G, w);
        if (forces)
          for (int o = 0; o < K; ++o)
            gmp::vjp(t_, s.G, w + o * nf, s, pair_grad.data() + 3 * n_pairs * o);
      },
      &model);
  }
  if (!forces) return;
  double W[9];
  for (int o = 0; o < K; ++o)
    scatter_pair_gradients(nl, pair_grad.data() + 3 * n_pairs * o, forces + 3 * nl.n_total * o,
                           virial ? virial + 9 * o : W, o == 0 ? per_atom_virial : nullptr);
}

DescriptorJacobian GaussianMultipoles::jacobian(const NeighborView& nl, double* G, int n_threads) const {
  validate_neighbor_view(nl, n_elements());
  const int64_t nc = nl.n_centres, nf = n_features();
  const double rc2 = r_c_ * r_c_;
  const std::vector<double> rc_by_element(n_elements(), r_c_);
  DescriptorJacobian jac = allocate_jacobian(nl, nf, rc_by_element.data());
  std::vector<double> Gtmp;
  if (!G) {
    Gtmp.assign(nc * nf, 0.0);
    G = Gtmp.data();
  }
  run(nl, n_threads, [&](int, int64_t c, gmp::Scratch& s, int64_t* ov) {
    const int64_t i = nl.centre(c);
    const int64_t e0 = jac.entry_offsets[c];
    jac.position[e0] = i;
    int64_t m = 0;
    for (int64_t q = nl.offsets[c]; q < nl.offsets[c + 1]; ++q) {
      const int64_t j = nl.neighbors[q];
      double d[3], r2 = 0.0;
      for (int k = 0; k < 3; ++k) {
        d[k] = nl.positions[3 * j + k] - nl.positions[3 * i + k];
        r2 += d[k] * d[k];
      }
      if (!(r2 < rc2 && r2 > 0.0)) continue;
      ++m;
      jac.position[e0 + m] = j;
      for (int k = 0; k < 3; ++k) jac.displacement[3 * (e0 + m) + k] = d[k];
    }
    gmp::values(t_, nl, c, s, G + c * nf, ov);
    gmp::jacobian(t_, G + c * nf, s, jac.values.data() + e0 * nf * 3, nf);
  });
  return jac;
}

/// Registry entry (src/descriptors/list.def).
std::unique_ptr<Descriptor> make_descriptor_gmp(const ModelFile& file, int32_t n_elements) {
  return GaussianMultipoles::from_file(file, n_elements);
}

}  // namespace atomforge
