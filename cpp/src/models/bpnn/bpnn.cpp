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
  reference_ = f.f64("energy.reference");
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
  int M;
  double* atomic;     // (n_centres) committee-mean atomic energies
  double* member_e;   // (n_centres, M)
  WorkspacePool<AtomicNetworks::Workspace>& pool;
  std::unique_ptr<WorkspacePool<AtomicNetworks::Workspace>::Lease> lease;

  NetworkEnergy(const AtomicNetworks& n, const std::vector<double>& ref, double es, bool f, double* a, double* me,
                WorkspacePool<AtomicNetworks::Workspace>& p)
      : nets(n), reference(ref), energy_scale(es), forces(f), M(n.committee_size()), atomic(a), member_e(me),
        pool(p) {}
  void begin(int n_threads) override {
    lease = std::make_unique<WorkspacePool<AtomicNetworks::Workspace>::Lease>(pool, n_threads);
    for (int k = 0; k < n_threads; ++k) nets.prepare((*lease)[k]);
  }
  void centre(int tid, int64_t c, int32_t k, const double* G, double* dEdG) override {
    double* y = member_e + c * M;
    nets.evaluate(k, G, y, nullptr, forces ? dEdG : nullptr, (*lease)[tid]);
    double mean = 0.0;
    for (int m = 0; m < M; ++m) mean += y[m];
    atomic[c] = reference[k] + energy_scale * mean / static_cast<double>(M);
    for (int m = 0; m < M; ++m) y[m] = reference[k] + energy_scale * y[m];
    if (forces) {
      const int64_t nf = nets.n_inputs(k);
      for (int64_t f = 0; f < nf; ++f) dEdG[f] *= energy_scale;
    }
  }
};
}  // namespace

void BPNN::compute(const NeighborView& nl, const ComputeRequest& req, ModelOutput& out) const {
  const int64_t nc = nl.n_centres;
  const int M = networks_.committee_size();
  std::vector<double> member_e(nc * M, 0.0);
  out.atomic_energies.assign(nc, 0.0);
  NetworkEnergy fn(networks_, reference_, energy_scale_, req.forces, out.atomic_energies.data(), member_e.data(),
                   pool_);
  if (req.forces) {
    out.forces.assign(3 * nl.n_total, 0.0);
    if (req.per_atom_virial) out.per_atom_virial.assign(9 * nl.n_total, 0.0);
  }
  // one pass per centre: descriptor, networks, dE/dG, gradient (validates the list)
  descriptor_->evaluate(nl, fn, req.forces ? out.forces.data() : nullptr, out.virial,
                        req.per_atom_virial && req.forces ? out.per_atom_virial.data() : nullptr, req.n_threads);
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
