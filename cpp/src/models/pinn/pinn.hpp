// Model type "pinn": physics-embedded potential, E = E_short + E_elec (internal header).
//
//   O. T. Unke, M. Meuwly, J. Chem. Theory Comput. 15, 3678 (2019) (PhysNet: a local energy
//   network plus the Coulomb energy of network-predicted charges, total charge conserved);
//   T. W. Ko, J. A. Finkler, S. Goedecker, J. Behler, Nat. Commun. 12, 398 (2021) (4G-HDNNP:
//   Gaussian charges, Ewald sum for periodic systems, forces through dq/dr).
//
// For atom i of element k with descriptor row G_i (one descriptor for both networks):
//
//   E_i^short = energy.reference_k + energy.scale * NN_E(x_i),  x_i from scaling.*        (eV)
//   q~_i      = charge.reference_k + charge.scale * NN_q(x'_i), x'_i from charge_scaling.*  (e)
//   w_i       = 1 ("uniform") or softplus(NN_w(x'_i)) + 1e-3 ("weighted")
//   q_i       = q~_i - w_i (sum_j q~_j - Q) / sum_j w_j       (atomforge/charges.hpp, Eq. 1)
//   E_elec    = electrostatics(r, q, sigma) of electrostatics/ewald.hpp (Gaussian charges of
//               width sigma_k = electrostatics.sigma[k]; Ewald sum for periodic cells, direct
//               sum for open boundaries; no Gaussian self-energy)
//   E         = sum_i E_i^short + E_elec
//
// Forces, exact for the total energy (the charges depend on the positions through G):
//
//   F = -dE_short/dr - dE_elec/dr|_q - sum_i phi_i dq_i/dr,   phi_i = dE_elec/dq_i
//
// The last term is one descriptor vector-Jacobian product: with lambda = (sum q~ - Q) / sum w
// and phibar = sum_j w_j phi_j / sum_j w_j,
//   dE/dq~_i = phi_i - phibar,   dE/dw_i = -lambda (phi_i - phibar),
// so dE/dG_i = energy.scale dNN_E/dG_i + (phi_i - phibar) [charge.scale dNN_q/dG_i
//              - lambda sigmoid(NN_w) dNN_w/dG_i]. The virial is assembled the same way
// (descriptor virial of that dE/dG plus the Ewald virial at fixed charges).
//
// Atomic energies: E_i^short + q_i phi_i / 2 (they sum to E, since E_elec = sum_i q_i phi_i / 2).
// Charges (e), the dipole about the origin (e*Angstrom) and charge_partials are filled as by the
// dipole model. Committees are not supported (committee_size must be 1). Polarisation and
// dispersion terms are not part of this model (yet).
//
// Capabilities kEnergy | kCharges | kDipole | kLongRange: the electrostatic sum runs over the
// view's centres, so they must be every atom of the system (the core's own lists); the cell and
// periodicity come from ComputeRequest::cell/pbc. Per-atom virials are refused.
//
// Records (docs/model_file.md): model_type "pinn", units.energy "eV", units.length "Angstrom",
// units.charge "e", species, descriptor.*, committee_size (1), energy.reference, energy.scale,
// network.*, scaling.* (as bpnn), charge.scheme, charge.reference, charge.scale,
// charge_network.*, charge_scaling.*, weight_network.* (as dipole), electrostatics.sigma
// (n_elements, Angstrom, >= 0), electrostatics.accuracy (Ewald error control, [1e-15, 0.1]).
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "atomforge/descriptor.hpp"
#include "atomforge/model.hpp"
#include "common/workspace_pool.hpp"
#include "networks/atomic_networks.hpp"

namespace atomforge {

class PinnModel : public Model {
 public:
  /// Throws InvalidInput naming the model file and record for any inconsistency.
  explicit PinnModel(const ModelFile& file);

  std::string model_type() const override { return "pinn"; }
  const std::vector<int>& species() const override { return species_; }
  double cutoff() const override { return descriptor_->cutoff(); }
  unsigned capabilities() const override { return kEnergy | kCharges | kDipole | kLongRange; }
  int committee_size() const override { return 1; }
  std::vector<std::pair<std::string, std::string>> describe() const override;
  /// Energy, atomic energies, forces (n_total, 3; Ewald forces on the centres' positions),
  /// virial, charges, dipole, charge_partials. Throws InvalidInput for a bad neighbour view,
  /// mixed periodicity or a periodic request without a cell, a requested per-atom virial,
  /// non-finite outputs, and the errors of electrostatics() (AtomsTooClose included).
  void compute(const NeighborView& nl, const ComputeRequest& request, ModelOutput& out) const override;

 private:
  std::vector<int> species_;
  std::unique_ptr<Descriptor> descriptor_;
  AtomicNetworks energy_networks_, charge_networks_, weight_networks_;
  bool weighted_ = false;
  std::vector<double> energy_reference_, charge_reference_, sigma_;
  double energy_scale_ = 1.0, charge_scale_ = 1.0, accuracy_ = 1e-8;
  mutable WorkspacePool<AtomicNetworks::Workspace> pool_;
};

}  // namespace atomforge
