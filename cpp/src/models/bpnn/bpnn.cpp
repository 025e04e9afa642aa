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
  std::ostringstream es;
  es << energy_scale_ << " eV";
  d.emplace_back("energy_scale", es.str());
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

  NetworkEnergy(const AtomicNetworks& n, const std::vector<double>& ref, double es, bool f, bool mem, double* a,
                double* me, WorkspacePool<AtomicNetworks::Workspace>& p)
      : nets(n), reference(ref), energy_scale(es), forces(f), members(mem), M(n.committee_size()), atomic(a),
        member_e(me), pool(p) {}
  int n_outputs() const override { return members ? M : 1; }
  void begin(int n_threads) override {
    lease = std::make_unique<WorkspacePool<AtomicNetworks::Workspace>::Lease>(pool, n_threads);
    for (int k = 0; k < n_threads; ++k) nets.prepare((*lease)[k]);
  }
  void centre(int tid, int64_t c, int32_t k, const double* G, double* dEdG) override {
    double* y = member_e + c * M;
    const int64_t nfk = nets.n_inputs(k);
    if (members) {  // rows are n_features wide (the descriptor's padded width); members write nfk
      thread_local std::vector<double> mg;
      mg.resize(static_cast<size_t>(M) * nfk);
      nets.evaluate(k, G, y, nullptr, nullptr, (*lease)[tid], mg.data());
      const int64_t stride = row_width;
      for (int m = 0; m < M; ++m)
        for (int64_t f = 0; f < nfk; ++f) dEdG[m * stride + f] = energy_scale * mg[m * nfk + f];
    } else {
      nets.evaluate(k, G, y, nullptr, forces ? dEdG : nullptr, (*lease)[tid]);
    }
    double mean = 0.0;
    for (int m = 0; m < M; ++m) mean += y[m];
    atomic[c] = reference[k] + energy_scale * mean / static_cast<double>(M);
    for (int m = 0; m < M; ++m) y[m] = reference[k] + energy_scale * y[m];
    if (forces && !members)
      for (int64_t f = 0; f < nfk; ++f) dEdG[f] *= energy_scale;
  }
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
  out.energy_uncertainty = M > 1 ? std::sqrt(var / static_cast<double>(M)) : 0.0;
  if (!std::isfinite(out.energy)) throw InvalidInput("the model produced a non-finite energy");
}

/// Registry entry (src/models/list.def).
std::unique_ptr<Model> make_model_bpnn(const ModelFile& file) { return std::make_unique<BPNN>(file); }

}  // namespace atomforge
