// Model type "pinn": physics-embedded potential, E = E_short + E_elec [+ E_disp] [+ E_pol]
// (internal header).
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
//   E         = sum_i E_i^short + E_elec + E_disp + E_pol
//
// Optional dispersion term (all records dispersion.*, dispersion_network.*, dispersion_scaling.*
// present, or none: then E_disp = 0 and every output is as without the term, bit for bit):
// Becke-Johnson rational damping (S. Grimme, S. Ehrlich, L. Goerigk, J. Comput. Chem. 32, 1456
// (2011), D3(BJ)) of C6 coefficients scaled by the environment (as the Hirshfeld-volume scaling of
// A. Tkatchenko, M. Scheffler, Phys. Rev. Lett. 102, 073005 (2009), here by networks):
//
//   c_i     = softplus(NN_c(x''_i)) + 1e-3,  x''_i from dispersion_scaling.*    (> 0)
//   C6_i    = dispersion.c6[k] c_i (eV A^6),  C6_ij = sqrt(C6_i C6_j)            (geometric mean)
//   R0_ij   = dispersion.r0[k_i] + dispersion.r0[k_j]                            (A)
//   e_ij(r) = -f(r) C6_ij / (r^6 + R0_ij^6)
//   f(r)    = 1 for r <= r_on, 0 for r >= r_cut, 1 - 10x^3 + 15x^4 - 6x^5 between,
//             x = (r - r_on) / (r_cut - r_on)  (dispersion.r_on, dispersion.r_cut; f, f', f''
//             continuous, so energy and forces are continuous at r_cut)
//   E_disp  = sum over pairs i<j and their periodic images within r_cut of e_ij (real-space sum
//             only: no tail correction beyond r_cut; open boundaries: every pair within r_cut)
//
// The pairs come from the core's neighbour list over the centres (build_neighbor_list with
// cutoff r_cut, which may exceed the descriptor cutoff and the cell). Forces: the explicit pair
// term plus, since c_i depends on the positions through G_i, dE/dc_i dc_i/dG_i in the same
// descriptor VJP: dE/dc_i = sum_j e_ij / (2 c_i) = E_i^disp / c_i and dc_i/dNN_c = sigmoid(NN_c),
// so dE/dG_i gains (E_i^disp / c_i) sigmoid(NN_c) dNN_c/dG_i. Virial: the pair virial
// -1/2 sum_ij r_ij (x) de_ij/dr_ij plus the descriptor virial of that dE/dG. The atomic energies
// gain E_i^disp = 1/2 sum_j e_ij.
//
// Optional polarisation term (all records polarisation.*, polarisation_network.*,
// polarisation_scaling.* present, or none: then E_pol = 0 and every output is as without the
// term, bit for bit); molecules and periodic cells (dipolar Ewald sum, below). Induced point
// dipoles with Thole damping
// (B. T. Thole, Chem. Phys. 59, 341 (1981); the AMOEBA exponential form of P. Ren, J. W. Ponder,
// J. Phys. Chem. B 107, 5933 (2003)); k_e = units::kCoulombInEVAngstrom; fields in e/A^2:
//
//   alpha_i = polarisation.alpha[k] (softplus(NN_a(x_i)) + 1e-3)   (A^3, > 0; x_i from
//             polarisation_scaling.*)
//   s_ij    = a r_ij^3 / sqrt(alpha_i alpha_j)   (a = polarisation.thole, AMOEBA 0.39)
//   l3      = 1 - exp(-s),  l5 = 1 - (1 + s) exp(-s)
//   E_i^q   = sum_{j != i} q_j l3 d_ij / r^3,   d_ij = r_i - r_j       (permanent field)
//   T_ij    = 3 l5 d d^T / r^5 - l3 I / r^3                            (dipole field tensor)
//   mu      = alpha (E^q + T mu),   E_pol = -k_e/2 sum_i mu_i . E_i^q
//
// Damping: the same Thole functions damp the charge-dipole (l3) and dipole-dipole (l3, l5)
// interactions, as in AMOEBA; the permanent charges enter E_pol as point charges (their Gaussian
// widths sigma apply to E_elec only); every pair counts (no topology, so no intramolecular
// exclusions). Solve: (1 - S T S) nu = S E^q, S = diag(sqrt(alpha)), mu = S nu, dense Cholesky
// of the 3N x 3N matrix (N <= 2000 centres, else InvalidInput; a matrix that is not positive
// definite, a polarisation catastrophe, throws InvalidInput). E_pol equals the minimum of
// U(mu) = k_e [sum mu_i^2 / (2 alpha_i) - sum mu_i . E_i^q - 1/2 sum_{i != j} mu_i T_ij mu_j],
// so forces need no dmu/dr: with U_ij = -k_e [l3/r^3 (q_j mu_i.d - q_i mu_j.d - mu_i.mu_j)
// + 3 l5/r^5 (mu_i.d)(mu_j.d)] per pair at fixed mu,
//   F_i        -= dU_ij/dr_i (explicit, Thole functions included),
//   dE/dq_i     = k_e sum_j l3 (mu_j . d_ij) / r^3   (added to phi_i in the charge chain rule below),
//   dE/dalpha_i = -k_e |mu_i|^2 / (2 alpha_i^2) + sum_j (s / (2 alpha_i)) e^-s k_e
//                 [(q_j mu_i.d - q_i mu_j.d - mu_i.mu_j) / r^3 + 3 s (mu_i.d)(mu_j.d) / r^5],
// and dE/dG_i gains dE/dalpha_i polarisation.alpha[k] sigmoid(NN_a) dNN_a/dG_i in the same
// descriptor VJP. Virial: the pair virial sum_{i<j} d_ij (x) F_i^(ij) plus the descriptor
// virial. The atomic energies gain -k_e/2 mu_i . E_i^q; the dipole gains sum_i mu_i. Cost
// O(N^2) for the fields and O((3N)^3 / 3) for the solve (threaded).
//
// Periodic cells: the same U(mu) with every lattice image, summed by Ewald for point charges and
// point dipoles (tin-foil boundary; T. M. Nymand, P. Linse, J. Chem. Phys. 112, 6152 (2000);
// A. Y. Toukmaji et al., J. Chem. Phys. 113, 10913 (2000)) with the splitting parameter beta,
// real-space cutoff and reciprocal vectors of E_elec's Ewald sum (its accuracy). Real space: the
// pair list of every image within max(r_cut, r where s = 37) (own images of i included) with
//   A3 = [l3 - erf(x) + c r e^{-x^2}] / r^3,  A5 = [l5 - erf(x) + c r (1 + 2x^2/3) e^{-x^2}] / r^5  (P1)
//   x = beta r, c = 2 beta / sqrt(pi),  E^q_i = sum q_j A3 d,  T_ij = 3 A5 d d^T - A3 I             (P2)
// in place of l3/r^3, l5/r^5 (the Ewald-screened bare tensors minus the Thole corrections (1 - l3),
// (1 - l5), which decay as e^-s). Reciprocal space, half-space k with g_k = e^{-k^2/4beta^2}/k^2,
// theta_i = k . r_i, A0 + i B0 = sum_j q_j e^{i theta_j}, p_k = 8 pi / V:
//   E^q_i += -p_k sum_k g_k k (B0 cos theta_i - A0 sin theta_i)                                     (P3)
//   T_ij  += -p_k sum_k g_k k k^T (cos theta_i cos theta_j + sin theta_i sin theta_j)                (P4)
//   T_ii  += 4 beta^3 / (3 sqrt(pi)) I   (self term)                                               (P5)
// At fixed mu (m_j = k . mu_j, A = A0 - sum m_j sin theta_j, B = B0 + sum m_j cos theta_j; the
// dipole part of |S(k)|^2 with S(k) = sum_j (q_j + i m_j) e^{i theta_j}):
//   dE/dr_j = p_k k_e sum_k g_k k [q_j ((B - B0) cos - (A - A0) sin) - m_j (A cos + B sin)]        (P6)
//   dE/dq_j = p_k k_e sum_k g_k ((A - A0) cos theta_j + (B - B0) sin theta_j)                       (P7)
//   W      += sum_k E_k [1 - 2 (1 + k^2/4beta^2) k k^T / k^2] + p_k k_e sum_k g_k sum_j
//             (B cos theta_j - A sin theta_j) mu_j (x) k,   E_k = p_k k_e g_k (|A + iB|^2 - |A0 + iB0|^2) / 2   (P8)
// (the last virial term: k . mu changes under strain at fixed mu). Cost O(N^2 K) for the
// reciprocal tensor (atoms x k vectors <= 1e7, else InvalidInput) besides the solve.
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
// dipole model. Committees are not supported (committee_size must be 1). With the polarisation
// term, phi_i above is phi_i + dE_pol/dq_i.
//
// Capabilities kEnergy | kCharges | kDipole | kLongRange: the electrostatic sum runs over the
// view's centres, so they must be every atom of the system (the core's own lists); the cell and
// periodicity come from ComputeRequest::cell/pbc. Per-atom virials are refused.
//
// Records (docs/model_file.md): model_type "pinn", units.energy "eV", units.length "Angstrom",
// units.charge "e", species, descriptor.*, committee_size (1), energy.reference, energy.scale,
// network.*, scaling.* (as bpnn), charge.scheme, charge.reference, charge.scale,
// charge_network.*, charge_scaling.*, weight_network.* (as dipole), electrostatics.sigma
// (n_elements, Angstrom, >= 0), electrostatics.accuracy (Ewald error control, [1e-15, 0.1]);
// optional: dispersion.c6 (n_elements, eV*Angstrom^6, >= 0), dispersion.r0 (n_elements,
// Angstrom, > 0), dispersion.r_on, dispersion.r_cut (Angstrom, 0 <= r_on < r_cut <= 25),
// dispersion_network.*, dispersion_scaling.* (as network.*, scaling.*; one member);
// optional: polarisation.alpha (n_elements, Angstrom^3, > 0), polarisation.thole (scalar,
// (0, 100]), polarisation_network.*, polarisation_scaling.* (one member).
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
  // optional dispersion term (records dispersion.*, dispersion_network.*, dispersion_scaling.*)
  bool dispersion_ = false;
  AtomicNetworks dispersion_networks_;
  std::vector<double> c6_, r0_;  // per element: eV*Angstrom^6, Angstrom
  double r_on_ = 0.0, r_disp_ = 0.0;
  // optional polarisation term (records polarisation.*, polarisation_network.*, polarisation_scaling.*)
  bool polarisation_ = false;
  AtomicNetworks polarisation_networks_;
  std::vector<double> alpha_;  // per element: Angstrom^3
  double thole_ = 0.39;
  mutable WorkspacePool<AtomicNetworks::Workspace> pool_;
};

}  // namespace atomforge
