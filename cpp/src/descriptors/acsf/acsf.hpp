// Behler-Parrinello atom-centred symmetry functions (ACSF): descriptor type "acsf".
//
// References
//   [B11] J. Behler, J. Chem. Phys. 134, 074106 (2011): G2 (Eq. 6), G4 (Eq. 8), G5 (Eq. 9),
//         cosine cutoff (Eq. 4).
//   [B15] J. Behler, Int. J. Quantum Chem. 115, 1032 (2015): element-resolved functions.
//   [S19] A. Singraber, T. Morawietz, J. Behler, C. Dellago, J. Chem. Theory Comput. 15, 3075
//         (2019) (n2p2): polynomial and tanh cutoffs, single counting of neighbour pairs.
//   [S17] J. S. Smith, O. Isayev, A. E. Roitberg, Chem. Sci. 8, 3192 (2017) (ANI-1), Eq. 4: the
//         modified angular function with an angle shift theta_s; the factor 0.95 on cos theta
//         is that of TorchANI's angular terms (keeps the derivative finite at 0 and 180 degrees).
//
// Definitions (r_ij = |r_j - r_i|, theta_ijk the angle at i, fc the cutoff function):
//   G2_i = sum_{j in e1}            exp(-eta (r_ij - r_s)^2) fc(r_ij)
//   G4_i = 2^(1-zeta) sum_{pairs {j,k}} (1 + lambda cos theta_ijk)^zeta
//          exp(-eta [(r_ij-r_s)^2 + (r_ik-r_s)^2 + (r_jk-r_s)^2]) fc(r_ij) fc(r_ik) fc(r_jk)
//   G5_i = 2^(1-zeta) sum_{pairs {j,k}} (1 + lambda cos theta_ijk)^zeta
//          exp(-eta [(r_ij-r_s)^2 + (r_ik-r_s)^2]) fc(r_ij) fc(r_ik)
//   G5s_i = 2^(1-zeta) sum_{pairs {j,k}} (1 + cos(theta~_ijk - theta_s))^zeta
//          exp(-eta [(r_ij-r_s)^2 + (r_ik-r_s)^2]) fc(r_ij) fc(r_ik),  theta~ = acos(0.95 cos theta)
//          (G5 with the angular factor of [S17] Eq. 4: resolves the angle around theta_s; the
//          radial factor stays G5's product, not [S17]'s exp(-eta ((r_ij + r_ik)/2 - r_s)^2))
// The pair sums run over unordered pairs {j, k} with one neighbour of element e1 and the other
// of element e2 (each pair counted once, as in n2p2 [S19]; [B11] Eq. 8 sums over ordered pairs,
// which is exactly twice this). r_s = 0 gives the functions of [B11].
//
// Units: Angstrom for lengths, 1/Angstrom^2 for eta; G is dimensionless.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "atomforge/descriptor.hpp"
#include "common/cutoff.hpp"
#include "common/workspace_pool.hpp"

namespace atomforge {

/// Model-file type codes: G2 = 2, G4 = 4, G5 = 5, G5s = 6 (G5 with an angle shift theta_s; the 0.95
/// of theta~ is acsf::kG5sCosScale in acsf_kernels.hpp).
enum class SymmetryFunctionType : int32_t { G2 = 2, G4 = 4, G5 = 5, G5s = 6 };

/// One symmetry function. Elements are indices 0 .. n_elements-1 into the descriptor's species.
struct SymmetryFunctionSpec {
  SymmetryFunctionType type = SymmetryFunctionType::G2;
  int32_t centre = 0;       // element of the central atom
  int32_t neighbor1 = 0;    // element of neighbour j
  int32_t neighbor2 = -1;   // element of neighbour k (G4/G5/G5s only; order irrelevant)
  double eta = 0.0;         // 1/Angstrom^2, >= 0
  double r_s = 0.0;         // Angstrom, 0 <= r_s < r_c
  double r_c = 0.0;         // Angstrom, > 0
  double lambda = 1.0;      // G4/G5: +1 or -1
  double zeta = 1.0;        // G4/G5/G5s: >= 1
  double theta_s = 0.0;     // G5s: angle shift in radians, 0 <= theta_s <= pi (lambda must be +1)
};

namespace acsf {
struct Tables;
struct Workspace;
}  // namespace acsf

/// Model-file records (prefix "descriptor."): type = "acsf", cutoff_function (string),
/// functions (n, 9) float64 rows [type 2|4|5|6, centre, neighbour1, neighbour2 (-1 for G2), eta,
/// r_s, r_c, lambda (theta_s in radians for G5s, type 6), zeta] with element indices into
/// `species` (docs/model_file.md).
class SymmetryFunctions : public Descriptor {
 public:
  /// Throws InvalidInput naming the function index for: n_elements < 1, element indices out of
  /// range, G2 with neighbor2 set or G4/G5/G5s without it, eta < 0, r_c <= 0, r_s outside [0, r_c),
  /// lambda not +-1 (G5s: +1), theta_s outside [0, pi] or set on another type, zeta < 1, or any
  /// non-finite parameter.
  SymmetryFunctions(int32_t n_elements, std::vector<SymmetryFunctionSpec> functions, CutoffType cutoff);
  ~SymmetryFunctions() override;
  SymmetryFunctions(const SymmetryFunctions&);
  SymmetryFunctions& operator=(const SymmetryFunctions&) = delete;

  /// From the `descriptor.*` records of a model file. Throws InvalidInput naming file and record.
  static std::unique_ptr<Descriptor> from_file(const ModelFile& file, int32_t n_elements);

  std::string type() const override { return "acsf"; }
  int32_t n_elements() const override { return n_elements_; }
  int64_t n_features() const override { return n_features_; }
  int64_t n_features(int32_t element) const override;
  /// Largest r_c of any function (Angstrom): the neighbour list cutoff to use.
  double cutoff() const override { return max_cutoff_; }
  std::vector<std::string> feature_labels(int32_t element) const override;
  CutoffType cutoff_type() const { return cutoff_; }
  const std::vector<SymmetryFunctionSpec>& functions() const { return functions_; }

  void compute(const NeighborView& nl, double* G, int n_threads = 0) const override;
  void vjp(const NeighborView& nl, const double* dE_dG, double* forces, double* virial,
           double* per_atom_virial = nullptr, int n_threads = 0) const override;
  DescriptorJacobian jacobian(const NeighborView& nl, double* G, int n_threads = 0) const override;
  /// Fused pass: per centre gather and radial terms once, values, the model's dE/dG, then the VJP.
  void evaluate(const NeighborView& nl, CentreModel& model, double* forces, double* virial,
                double* per_atom_virial = nullptr, int n_threads = 0) const override;

 #ifdef ATOMFORGE_HAVE_CUDA
  bool has_cuda() const override { return true; }
  void compute_cuda(const NeighborView& nl, double* G, int64_t scratch_bytes = kCudaScratchBytes) const override;
  void vjp_cuda(const NeighborView& nl, const double* dE_dG, double* forces, double* virial,
                int64_t scratch_bytes = kCudaScratchBytes) const override;
#endif

  struct Flat;  // the flat parameter arrays behind acsf::Tables (acsf_tables.hpp)
  const Flat& flat() const { return *flat_; }

 private:
  template <int Mode>
  void run(const NeighborView& nl, double* G, const double* dE_dG, double* pair_grad, DescriptorJacobian* jac,
           int n_threads, CentreModel* model = nullptr) const;
  // the fused pass (values, model, VJP) over blocks of up to B centres of one element, each with
  // its own workspace, for models that share work between centres (CentreModel::block_size)
  void run_blocks(const NeighborView& nl, double* pair_grad, int n_threads, CentreModel& model, int B) const;

  int32_t n_elements_;
  std::vector<SymmetryFunctionSpec> functions_;
  CutoffType cutoff_;
  int64_t n_features_ = 0;
  double max_cutoff_ = 0.0;
  std::vector<int64_t> per_element_;
  std::unique_ptr<Flat> flat_;
  mutable WorkspacePool<acsf::Workspace> pool_;
};

}  // namespace atomforge
