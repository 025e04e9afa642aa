// Model type "bpnn": atomic neural-network potential (high-dimensional NN potential) on any
// registered descriptor.
//   J. Behler, M. Parrinello, Phys. Rev. Lett. 98, 146401 (2007).
// Atomic energy of atom i (element k) for committee member m, with AtomicNetworks (per-element
// or shared networks, networks/atomic_networks.hpp) on the descriptor row G_i:
//   E_i^m = reference_k + energy_scale * NN^m(G_i)
// E = sum_i mean_m E_i^m. Forces from one vector-Jacobian product of the descriptor with dE/dG.
// Records: model_type "bpnn", units.*, species, descriptor.* (by descriptor.type), committee_size,
// energy.reference (n_elements), energy.scale, network.*, scaling.* (docs/model_file.md).
// Optional: uncertainty.energy_calibration / uncertainty.forces_calibration (scalars > 0: the
// factors that turn the committee spread into a predicted error, fitted on validation frames),
// extrapolation.{k}.min / .max (n_features(k)): the training range of element k's features; every
// evaluation counts the features outside it (ModelOutput::extrapolation_*).
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "atomforge/descriptor.hpp"
#include "atomforge/model.hpp"
#include "common/workspace_pool.hpp"
#include "networks/atomic_networks.hpp"

namespace atomforge {

class BPNN : public Model {
 public:
  /// Throws InvalidInput naming the model file and record for any inconsistency.
  explicit BPNN(const ModelFile& file);

  std::string model_type() const override { return "bpnn"; }
  const std::vector<int>& species() const override { return species_; }
  double cutoff() const override { return descriptor_->cutoff(); }
  unsigned capabilities() const override {
    return kEnergy | (networks_.committee_size() > 1 ? kUncertainty : 0u) | (range_min_.empty() ? 0u : kFeatureRange);
  }
  int committee_size() const override { return networks_.committee_size(); }
  std::vector<std::pair<std::string, std::string>> describe() const override;
  const Descriptor& descriptor() const { return *descriptor_; }
  void compute(const NeighborView& nl, const ComputeRequest& request, ModelOutput& out) const override;

 private:
  std::vector<int> species_;
  std::unique_ptr<Descriptor> descriptor_;
  AtomicNetworks networks_;
  std::vector<double> reference_;
  double energy_scale_ = 1.0;
  double energy_calibration_ = 1.0, forces_calibration_ = 1.0;
  std::vector<std::vector<double>> range_min_, range_max_, range_tol_;  // per element (empty: no range)
  mutable WorkspacePool<AtomicNetworks::Workspace> pool_;
};

}  // namespace atomforge
