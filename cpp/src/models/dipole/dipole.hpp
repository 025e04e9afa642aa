// Model type "dipole": environment-dependent atomic charges and the molecular dipole moment
// (internal header).
//
//   M. Gastegger, J. Behler, P. Marquetand, Chem. Sci. 8, 6924 (2017): atomic charges from
//   element networks on atom-centred descriptors, total charge imposed, mu = sum_i q_i r_i.
//
// For atom i of element k with descriptor row G_i and committee member m (AtomicNetworks:
// per-element or shared MLPs, networks/atomic_networks.hpp):
//
//   q~_i^m = charge.reference_k + charge.scale * NN_q^m(x_i)                    raw charge, e
//   w_i^m  = 1                                   (charge.scheme "uniform")
//          = softplus(NN_w^m(x_i)) + 1e-3        (charge.scheme "weighted")
//
// with x_i = (G_i - shift_k) * scale_k + offset_k from charge_scaling.* (both networks read the
// same scaled features). The total charge Q (ComputeRequest::total_charge) is imposed by Eq. (1)
// of atomforge/charges.hpp, charges are the committee mean, and the dipole about the coordinate
// origin is mu = sum_i q_i r_i, with r_i the centre positions of the neighbour view (Angstrom,
// so mu in e * Angstrom; wrapped into the cell along periodic directions by the core's own
// lists: callers with unwrapped coordinates form sum_i q_i r_i themselves).
//
// Capabilities kCharges | kDipole, not kEnergy: engines refuse it as a potential.
//
// Records: model_type "dipole", units.energy "eV", units.length "Angstrom", units.charge "e",
// species, descriptor.*, committee_size, charge.scheme ("uniform" | "weighted"),
// charge.reference (n_elements, e), charge.scale (e), charge_network.*, charge_scaling.*, and for
// "weighted" weight_network.* (docs/model_file.md).
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "atomforge/descriptor.hpp"
#include "atomforge/model.hpp"
#include "common/workspace_pool.hpp"
#include "networks/atomic_networks.hpp"

namespace atomforge {

class DipoleModel : public Model {
 public:
  /// Throws InvalidInput naming the model file and record for any inconsistency.
  explicit DipoleModel(const ModelFile& file);

  std::string model_type() const override { return "dipole"; }
  const std::vector<int>& species() const override { return species_; }
  double cutoff() const override { return descriptor_->cutoff(); }
  unsigned capabilities() const override { return kCharges | kDipole; }
  int committee_size() const override { return charge_networks_.committee_size(); }
  std::vector<std::pair<std::string, std::string>> describe() const override;
  const Descriptor& descriptor() const { return *descriptor_; }
  bool weighted() const { return weighted_; }
  /// Fills charges (n_centres), dipole (3) and charge_partials (n_centres, M, 2); no energy,
  /// no forces. Throws InvalidInput for a bad neighbour view or non-finite outputs.
  void compute(const NeighborView& nl, const ComputeRequest& request, ModelOutput& out) const override;

  /// Lower bound added to the softplus weights of the "weighted" scheme (keeps sum_j w_j > 0).
  static constexpr double kWeightFloor = 1e-3;

 private:
  std::vector<int> species_;
  std::unique_ptr<Descriptor> descriptor_;
  AtomicNetworks charge_networks_, weight_networks_;
  bool weighted_ = false;
  std::vector<double> reference_;
  double charge_scale_ = 1.0;
  mutable WorkspacePool<AtomicNetworks::Workspace> pool_;
};

}  // namespace atomforge
