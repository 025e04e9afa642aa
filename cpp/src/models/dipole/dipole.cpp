#include "models/dipole/dipole.hpp"

#include <algorithm>
#include <cmath>
#include <sstream>

#include "atomforge/charges.hpp"
#include "atomforge/elements.hpp"
#include "atomforge/errors.hpp"
#include "common/threads.hpp"

#ifdef ATOMFORGE_HAVE_OPENMP
#include <omp.h>
#endif

namespace atomforge {

namespace {
// softplus(z) = log(1 + e^z), evaluated without overflow (the same formula as torch.logaddexp(z, 0)).
inline double softplus(double z) { return std::max(z, 0.0) + std::log1p(std::exp(-std::fabs(z))); }
}  // namespace

void charge_partial_sums(const double* partials, int64_t n, int M, double* sums) {
  for (int m = 0; m < 2 * M; ++m) sums[m] = 0.0;
  for (int64_t c = 0; c < n; ++c)
    for (int m = 0; m < M; ++m) {
      sums[2 * m] += partials[2 * (c * M + m)];
      sums[2 * m + 1] += partials[2 * (c * M + m) + 1];
    }
}

void finish_charges(const double* partials, int64_t n, int M, const double* sums, double total_charge, double* q) {
  for (int m = 0; m < M; ++m)
    if (!(sums[2 * m + 1] > 0.0) || !std::isfinite(sums[2 * m + 1]) || !std::isfinite(sums[2 * m]))
      throw InvalidInput("charge model: the sum of the raw charges or of the charge weights of committee member " +
                         std::to_string(m) + " is not finite and positive (" + std::to_string(sums[2 * m]) + ", " +
                         std::to_string(sums[2 * m + 1]) + ")");
  for (int64_t c = 0; c < n; ++c) {
    double acc = 0.0;
    for (int m = 0; m < M; ++m) {
      const double qt = partials[2 * (c * M + m)], w = partials[2 * (c * M + m) + 1];
      acc += qt - w * (sums[2 * m] - total_charge) / sums[2 * m + 1];
    }
    q[c] = acc / static_cast<double>(M);
  }
}

DipoleModel::DipoleModel(const ModelFile& f) {
  const std::string& w = f.where();
  species_ = f.check_header("dipole");
  if (!f.has("units.charge") || f.string("units.charge") != "e")
    throw InvalidInput(w + ": record 'units.charge' must be \"e\" (charges in elementary charges, dipoles in "
                       "e*Angstrom)" + (f.has("units.charge") ? ", got \"" + f.string("units.charge") + "\"" : ""));
  const int32_t ne = static_cast<int32_t>(species_.size());
  descriptor_ = make_descriptor(f);
  std::vector<int64_t> n_inputs(ne);
  for (int32_t k = 0; k < ne; ++k) n_inputs[k] = descriptor_->n_features(k);
  const std::string scheme = f.string("charge.scheme");
  if (scheme != "uniform" && scheme != "weighted")
    throw InvalidInput(w + ": record 'charge.scheme' is '" + scheme + "' (known: uniform, weighted)");
  weighted_ = scheme == "weighted";
  reference_ = f.f64("charge.reference");
  if (static_cast<int32_t>(reference_.size()) != ne)
    throw InvalidInput(w + ": charge.reference needs one value per species (" + std::to_string(ne) + ")");
  for (double r : reference_)
    if (!std::isfinite(r)) throw InvalidInput(w + ": record 'charge.reference' is not finite");
  charge_scale_ = f.f64_scalar("charge.scale");
  if (!std::isfinite(charge_scale_)) throw InvalidInput(w + ": record 'charge.scale' is not finite");
  charge_networks_ = AtomicNetworks::from_file(f, "charge_network.", "charge_scaling.", n_inputs, 1);
  if (weighted_) {
    weight_networks_ = AtomicNetworks::from_file(f, "weight_network.", "charge_scaling.", n_inputs, 1);
    if (weight_networks_.shared() != charge_networks_.shared())
      throw InvalidInput(w + ": charge_network.shared and weight_network.shared differ");
  }
}

std::vector<std::pair<std::string, std::string>> DipoleModel::describe() const {
  std::vector<std::pair<std::string, std::string>> d;
  d.emplace_back("descriptor", descriptor_->type());
  std::ostringstream rc;
  rc << descriptor_->cutoff() << " A";
  d.emplace_back("cutoff", rc.str());
  d.emplace_back("outputs", "atomic charges (e) and dipole about the origin (e*A); no energy");
  d.emplace_back("charge scheme", weighted_ ? "weighted: q_i = q~_i - w_i (sum q~ - Q) / sum w, w = softplus(NN_w)"
                                            : "uniform: q_i = q~_i - (sum q~ - Q) / N");
  d.emplace_back("networks", charge_networks_.shared() ? "one shared by all elements" : "one per element");
  for (int32_t k = 0; k < static_cast<int32_t>(species_.size()); ++k) {
    std::ostringstream s;
    s << descriptor_->n_features(k) << " features, charge network " << charge_networks_.architecture(k) << " ("
      << charge_networks_.activations(k) << ")";
    if (weighted_) s << ", weight network " << weight_networks_.architecture(k);
    s << ", reference charge " << reference_[k] << " e";
    d.emplace_back(element_symbol(species_[k]), s.str());
  }
  d.emplace_back("committee_size", std::to_string(charge_networks_.committee_size()));
  std::ostringstream cs;
  cs << charge_scale_ << " e";
  d.emplace_back("charge_scale", cs.str());
  return d;
}

void DipoleModel::compute(const NeighborView& nl, const ComputeRequest& req, ModelOutput& out) const {
  const int64_t nc = nl.n_centres, nf = descriptor_->n_features();
  std::vector<double> G(nc * nf);
  descriptor_->compute(nl, G.data(), req.n_threads);  // validates the list
  if (!std::isfinite(req.total_charge))
    throw InvalidInput("charge model: the total charge " + std::to_string(req.total_charge) + " is not finite");
  const int M = charge_networks_.committee_size();
  out.charge_partials.assign(2 * nc * M, 0.0);
  const int nt = resolve_threads(req.n_threads);
  WorkspacePool<AtomicNetworks::Workspace>::Lease lease(pool_, nt);
  for (int k = 0; k < nt; ++k) {
    charge_networks_.prepare(lease[k]);
    if (weighted_) weight_networks_.prepare(lease[k]);
  }
  std::vector<double> ybuf(static_cast<size_t>(nt) * 2 * M);
#pragma omp parallel num_threads(nt)
  {
    int tid = 0;
#ifdef ATOMFORGE_HAVE_OPENMP
    tid = omp_get_thread_num();
#endif
    AtomicNetworks::Workspace& ws = lease[tid];
    double* yq = &ybuf[static_cast<size_t>(tid) * 2 * M];
    double* yw = yq + M;
#pragma omp for schedule(static)
    for (int64_t c = 0; c < nc; ++c) {
      const int32_t k = nl.species[nl.centre(c)];
      charge_networks_.evaluate(k, &G[c * nf], yq, nullptr, ws);
      if (weighted_) weight_networks_.evaluate(k, &G[c * nf], yw, nullptr, ws);
      for (int m = 0; m < M; ++m) {
        out.charge_partials[2 * (c * M + m)] = reference_[k] + charge_scale_ * yq[m];
        out.charge_partials[2 * (c * M + m) + 1] = weighted_ ? softplus(yw[m]) + kWeightFloor : 1.0;
      }
    }
  }
  for (int64_t c = 0; c < nc; ++c)
    for (int m = 0; m < M; ++m)
      if (!std::isfinite(out.charge_partials[2 * (c * M + m)]) || !std::isfinite(out.charge_partials[2 * (c * M + m) + 1]))
        throw InvalidInput("charge model: non-finite raw charge or weight for centre " + std::to_string(c));
  out.charges.assign(nc, 0.0);
  if (nc > 0) {
    std::vector<double> sums(2 * M);
    charge_partial_sums(out.charge_partials.data(), nc, M, sums.data());
    finish_charges(out.charge_partials.data(), nc, M, sums.data(), req.total_charge, out.charges.data());
  }
  out.dipole.assign(3, 0.0);
  for (int64_t c = 0; c < nc; ++c) {
    const double* r = nl.positions + 3 * nl.centre(c);
    for (int d = 0; d < 3; ++d) out.dipole[d] += out.charges[c] * r[d];
  }
}

/// Registry entry (src/models/list.def).
std::unique_ptr<Model> make_model_dipole(const ModelFile& file) { return std::make_unique<DipoleModel>(file); }

}  // namespace atomforge
