#include "models/bpnn/bpnn.hpp"

#include <algorithm>
#include <cmath>
#include <sstream>

#include "atomforge/elements.hpp"
#include "atomforge/errors.hpp"
#include "common/threads.hpp"

#ifdef ATOMFORGE_HAVE_OPENMP
#include <omp.h>
#endif

namespace atomforge {

BPNN::BPNN(const ModelFile& f) {
  const std::string& w = f.where();
  species_ = f.check_header("bpnn");
  const int32_t ne = static_cast<int32_t>(species_.size());
  descriptor_ = make_descriptor(f);
  std::vector<int64_t> n_inputs(ne);
  for (int32_t k = 0; k < ne; ++k) n_inputs[k] = descriptor_->n_features(k);
  reference_ = f.f64_vector("energy.reference");
  if (static_cast<int32_t>(reference_.size()) != ne) throw InvalidInput(w + ": energy.reference needs one value per species");
  for (double r : reference_)
    if (!std::isfinite(r)) throw InvalidInput(w + ": record 'energy.reference' is not finite");
  energy_scale_ = f.f64_scalar("energy.scale");
  if (!std::isfinite(energy_scale_)) throw InvalidInput(w + ": record 'energy.scale' is not finite");
  networks_ = AtomicNetworks::from_file(f, "network.", "scaling.", n_inputs, 1);
  // optional uncertainty calibration (positive finite factors)
  for (auto [name, dst] : {std::pair<const char*, double*>{"uncertainty.energy_calibration", &energy_calibration_},
                           {"uncertainty.forces_calibration", &forces_calibration_}}) {
    if (!f.has(name)) continue;
    *dst = f.f64_scalar(name);
    if (!std::isfinite(*dst) || *dst <= 0.0)
      throw InvalidInput(w + ": record '" + name + "' must be a positive finite number");
  }
  // optional training range of the features: all elements or none
  int n_range = 0;
  for (int32_t k = 0; k < ne; ++k)
    n_range += f.has("extrapolation." + std::to_string(k) + ".min") + f.has("extrapolation." + std::to_string(k) + ".max");
  if (n_range != 0 && n_range != 2 * ne)
    throw InvalidInput(w + ": extrapolation.{k}.min/.max records must be given for every element or for none");
  if (n_range) {
    for (int32_t k = 0; k < ne; ++k) {
      const std::string p = "extrapolation." + std::to_string(k) + ".";
      const auto& lo = f.f64(p + "min");
      const auto& hi = f.f64(p + "max");
      if (static_cast<int64_t>(lo.size()) != n_inputs[k] || static_cast<int64_t>(hi.size()) != n_inputs[k])
        throw InvalidInput(w + ": " + p + "min/max must have one entry per descriptor feature of element " +
                           element_symbol(species_[k]) + " (" + std::to_string(n_inputs[k]) + ")");
      std::vector<double> tol(lo.size());
      for (size_t q = 0; q < lo.size(); ++q) {
        if (!std::isfinite(lo[q]) || !std::isfinite(hi[q]) || lo[q] > hi[q])
          throw InvalidInput(w + ": " + p + "min/max entry " + std::to_string(q) + " is not a finite range (min " +
                             std::to_string(lo[q]) + ", max " + std::to_string(hi[q]) + ")");
        // rounding tolerance: the same structure evaluated by another engine (ghost atoms,
        // other summation order) or read back from a text file (extxyz writes positions with 8
        // decimals: features move by ~1e-8 of their range) must not count as extrapolating
        tol[q] = 1e-6 * (hi[q] - lo[q]) + 1e-12 * std::max(std::abs(lo[q]), std::abs(hi[q])) + 1e-14;
      }
      range_min_.push_back(lo);
      range_max_.push_back(hi);
      range_tol_.push_back(std::move(tol));
    }
  }
}

std::vector<std::pair<std::string, std::string>> BPNN::describe() const {
  std::vector<std::pair<std::string, std::string>> d;
  d.emplace_back("descriptor", descriptor_->type());
  std::ostringstream rc;
  rc << descriptor_->cutoff() << " A";
  d.emplace_back("cutoff", rc.str());
  d.emplace_back("networks", networks_.shared() ? "one shared by all elements" : "one per element");
  for (int32_t k = 0; k < static_cast<int32_t>(species_.size()); ++k) {
    std::ostringstream s;
    s << descriptor_->n_features(k) << " features, network " << networks_.architecture(k) << " ("
      << networks_.activations(k) << "), reference energy " << reference_[k] << " eV";
    d.emplace_back(element_symbol(species_[k]), s.str());
  }
  d.emplace_back("committee_size", std::to_string(networks_.committee_size()));
  d.emplace_back("centre_blocks", networks_.blocks_pay()
                                      ? std::to_string(AtomicNetworks::kMaxBlock) + " centres per network call"
                                      : "1 (the networks fit in L1)");
  std::ostringstream es;
  es << energy_scale_ << " eV";
  d.emplace_back("energy_scale", es.str());
  if (networks_.committee_size() > 1) {
    std::ostringstream c;
    c << "energy x" << energy_calibration_ << ", forces x" << forces_calibration_;
    d.emplace_back("uncertainty_calibration", c.str());
  }
  d.emplace_back("extrapolation_range", range_min_.empty() ? "none" : "stored (per element and feature)");
  return d;
}

namespace {
// The networks as the descriptor's per-centre model: atomic energies of every member and dE/dG of
// the committee mean, computed inside the descriptor's fused pass.
struct NetworkEnergy : CentreModel {
  const AtomicNetworks& nets;
  const std::vector<double>& reference;
  double energy_scale;
  bool forces;
  bool members;  // per-member gradients (outputs 0..M-1) instead of the mean's
  int M;
  int64_t row_width = 0;  // the descriptor's n_features (stride of the dE/dG rows)
  double* atomic;     // (n_centres) committee-mean atomic energies
  double* member_e;   // (n_centres, M)
  WorkspacePool<AtomicNetworks::Workspace>& pool;
  std::unique_ptr<WorkspacePool<AtomicNetworks::Workspace>::Lease> lease;
  // training range of the features (empty: not counted); per-thread counters
  const std::vector<std::vector<double>>* range_min = nullptr;
  const std::vector<std::vector<double>>* range_max = nullptr;
  const std::vector<std::vector<double>>* range_tol = nullptr;
  struct Extrapolation {
    int64_t features = 0, centres = 0, worst_centre = -1;
    int32_t worst_feature = -1;
    double worst_excess = 0.0;
    char pad[64];  // keep threads' counters on separate cache lines
  };
  std::vector<Extrapolation> extrap;

  NetworkEnergy(const AtomicNetworks& n, const std::vector<double>& ref, double es, bool f, bool mem, double* a,
                double* me, WorkspacePool<AtomicNetworks::Workspace>& p)
      : nets(n), reference(ref), energy_scale(es), forces(f), members(mem), M(n.committee_size()), atomic(a),
        member_e(me), pool(p) {}
  int n_outputs() const override { return members ? M : 1; }
  void begin(int n_threads) override {
    lease = std::make_unique<WorkspacePool<AtomicNetworks::Workspace>::Lease>(pool, n_threads);
    for (int k = 0; k < n_threads; ++k) nets.prepare((*lease)[k]);
    extrap.assign(range_min && !range_min->empty() ? n_threads : 0, Extrapolation());
  }
  void count_extrapolation(int tid, int64_t c, int32_t k, const double* G) {
    const double* lo = (*range_min)[k].data();
    const double* hi = (*range_max)[k].data();
    const double* tol = (*range_tol)[k].data();
    const int64_t nf = static_cast<int64_t>((*range_min)[k].size());
    int64_t n_out = 0;
    Extrapolation& e = extrap[tid];
    for (int64_t f = 0; f < nf; ++f) {
      const double below = lo[f] - tol[f] - G[f], above = G[f] - hi[f] - tol[f];
      if (below > 0.0 || above > 0.0 || !(G[f] == G[f])) {
        ++n_out;
        const double excess = std::max(below, above) / std::max(hi[f] - lo[f], 1e-12);
        if (e.worst_centre < 0 || excess > e.worst_excess || (excess == e.worst_excess && c < e.worst_centre)) {
          e.worst_excess = excess;
          e.worst_centre = c;
          e.worst_feature = static_cast<int32_t>(f);
        }
      }
    }
    e.features += n_out;
    e.centres += n_out > 0;
  }
  void centre(int tid, int64_t c, int32_t k, const double* G, double* dEdG) override {
    if (!extrap.empty()) count_extrapolation(tid, c, k, G);
    double* y = member_e + c * M;
    const int64_t nfk = nets.n_inputs(k);
    if (members) {  // rows are n_features wide (the descriptor's padded width); members write nfk
      thread_local std::vector<double> mg;
      mg.resize(static_cast<size_t>(M) * nfk);
      nets.evaluate(k, G, y, nullptr, (*lease)[tid], mg.data());
      const int64_t stride = row_width;
      for (int m = 0; m < M; ++m)
        for (int64_t f = 0; f < nfk; ++f) dEdG[m * stride + f] = energy_scale * mg[m * nfk + f];
    } else {
      nets.evaluate(k, G, y, forces ? dEdG : nullptr, (*lease)[tid]);
    }
    finish(c, k, dEdG);
  }
  // atomic energies from the members' outputs y (member_e row of c), dE/dG in eV
  void finish(int64_t c, int32_t k, double* dEdG) {
    double* y = member_e + c * M;
    double mean = 0.0;
    for (int m = 0; m < M; ++m) mean += y[m];
    atomic[c] = reference[k] + energy_scale * mean / static_cast<double>(M);
    for (int m = 0; m < M; ++m) y[m] = reference[k] + energy_scale * y[m];
    if (forces && !members)
      for (int64_t f = 0, nfk = nets.n_inputs(k); f < nfk; ++f) dEdG[f] *= energy_scale;
  }
  // blocks of centres share the networks' weight loads (AtomicNetworks::evaluate_block) where a
  // member's network outgrows L1
  int block_size() const override { return nets.blocks_pay() ? AtomicNetworks::kMaxBlock : 1; }
  void centres(int tid, int n, const int64_t* c, int32_t k, const double* const* G, double* const* dEdG) override {
    if (n > AtomicNetworks::kMaxBlock || M > kMaxMembersBlock) return CentreModel::centres(tid, n, c, k, G, dEdG);
    if (!extrap.empty())
      for (int q = 0; q < n; ++q) count_extrapolation(tid, c[q], k, G[q]);
    double y[AtomicNetworks::kMaxBlock * kMaxMembersBlock];
    const int64_t nfk = nets.n_inputs(k);
    if (members) {  // each member's own gradient: (M, nfk) per centre, then rows row_width apart
      thread_local std::vector<double> mg;
      mg.resize(static_cast<size_t>(n) * M * nfk);
      double* mrows[AtomicNetworks::kMaxBlock];
      for (int q = 0; q < n; ++q) mrows[q] = mg.data() + static_cast<int64_t>(q) * M * nfk;
      nets.evaluate_block(k, n, G, y, nullptr, (*lease)[tid], mrows);
      for (int q = 0; q < n; ++q)
        for (int m = 0; m < M; ++m)
          for (int64_t f = 0; f < nfk; ++f) dEdG[q][m * row_width + f] = energy_scale * mrows[q][m * nfk + f];
    } else {
      nets.evaluate_block(k, n, G, y, forces ? dEdG : nullptr, (*lease)[tid]);
    }
    for (int q = 0; q < n; ++q) {
      std::copy(y + q * M, y + (q + 1) * M, member_e + c[q] * M);
      finish(c[q], k, dEdG[q]);
    }
  }
  static constexpr int kMaxMembersBlock = 64;
};
}  // namespace

void BPNN::compute(const NeighborView& view, const ComputeRequest& req, ModelOutput& out) const {
  NeighborView nl = view;
  nl.min_distance = req.min_distance;  // checked by the descriptor (validate_neighbor_view)
  const int64_t nc = nl.n_centres, nt = nl.n_total;
  const int M = networks_.committee_size();
  const bool members = req.forces && req.uncertainty && M > 1;
  std::vector<double> member_e(nc * M, 0.0);
  out.atomic_energies.assign(nc, 0.0);
  NetworkEnergy fn(networks_, reference_, energy_scale_, req.forces, members, out.atomic_energies.data(),
                   member_e.data(), pool_);
  fn.row_width = descriptor_->n_features();
  if (!range_min_.empty()) {
    fn.range_min = &range_min_;
    fn.range_max = &range_max_;
    fn.range_tol = &range_tol_;
  }
  std::vector<double> virials;
  if (req.forces) {
    if (members) {
      out.member_forces.assign(static_cast<size_t>(M) * 3 * nt, 0.0);
      virials.assign(9 * M, 0.0);
    } else {
      out.forces.assign(3 * nt, 0.0);
    }
    if (req.per_atom_virial && !members) out.per_atom_virial.assign(9 * nt, 0.0);
  }
  // one pass per centre: descriptor, networks, dE/dG, gradient (validates the list)
  descriptor_->evaluate(nl, fn, req.forces ? (members ? out.member_forces.data() : out.forces.data()) : nullptr,
                        members ? virials.data() : out.virial,
                        req.per_atom_virial && req.forces && !members ? out.per_atom_virial.data() : nullptr,
                        req.n_threads);
  if (members) {  // forces and virial of the committee mean: the mean of the members'
    out.forces.assign(3 * nt, 0.0);
    for (int m = 0; m < M; ++m)
      for (int64_t q = 0; q < 3 * nt; ++q) out.forces[q] += out.member_forces[m * 3 * nt + q] / M;
    for (int k = 0; k < 9; ++k) {
      out.virial[k] = 0.0;
      for (int m = 0; m < M; ++m) out.virial[k] += virials[9 * m + k] / M;
    }
    if (req.per_atom_virial)
      throw InvalidInput("per-atom virials and committee uncertainties cannot be requested together");
  }
  out.energy = 0.0;
  for (int64_t c = 0; c < nc; ++c) out.energy += out.atomic_energies[c];
  out.committee_energies.assign(M, 0.0);
  for (int64_t c = 0; c < nc; ++c)
    for (int m = 0; m < M; ++m) out.committee_energies[m] += member_e[c * M + m];
  double var = 0.0;
  for (int m = 0; m < M; ++m) var += std::pow(out.committee_energies[m] - out.energy, 2);
  out.energy_uncertainty = M > 1 ? energy_calibration_ * std::sqrt(var / static_cast<double>(M)) : 0.0;
  out.energy_uncertainty_scale = energy_calibration_;
  out.forces_uncertainty_scale = forces_calibration_;
  // extrapolation counts, merged in thread order (the worst centre: largest excess, then lowest index)
  for (const auto& e : fn.extrap) {
    out.extrapolation_features += e.features;
    out.extrapolation_centres += e.centres;
    if (e.worst_centre >= 0 &&
        (out.extrapolation_worst_centre < 0 || e.worst_excess > out.extrapolation_worst_excess ||
         (e.worst_excess == out.extrapolation_worst_excess && e.worst_centre < out.extrapolation_worst_centre))) {
      out.extrapolation_worst_centre = e.worst_centre;
      out.extrapolation_worst_feature = e.worst_feature;
      out.extrapolation_worst_excess = e.worst_excess;
    }
  }
  if (!std::isfinite(out.energy)) throw InvalidInput("the model produced a non-finite energy");
}

/// Registry entry (src/models/list.def).
std::unique_ptr<Model> make_model_bpnn(const ModelFile& file) { return std::make_unique<BPNN>(file); }

}  // namespace atomforge
