// atomforge core: symmetric gradient-domain machine learning (sGDML) force fields.
//   S. Chmiela et al., Sci. Adv. 3, e1603015 (2017)      (GDML: gradient-domain kernel)
//   S. Chmiela et al., Nat. Commun. 9, 3887 (2018)       (sGDML: symmetrised kernel)
//   S. Chmiela et al., Comput. Phys. Commun. 240, 38 (2019) (the sgdml package)
//
// A global model of one molecule (fixed atom count and element order).
// Descriptor: inverse pairwise distances, lower triangle in NumPy's tril_indices(N, -1) order
//   (1,0), (2,0), (2,1), (3,0), ...;  x_m = 1 / |r_a - r_b|,  d = N(N-1)/2.
// Kernel: Matern 5/2, k(r) = (1 + sqrt5 r/s + 5 r^2/(3 s^2)) exp(-sqrt5 r/s), r = |x - x'|.
// Its Hessian in x, H(t) = 5/(3 s^4) exp(-sqrt5 |t|/s) (5 t t^T - (s^2 + sqrt5 s |t|) I).
// Prediction (exactly as sgdml 1.0 predict.py), for training points i, permutations p:
//   g(x) = sum_i sum_p H(x - P_p x_i) P_p v_i,      v_i = J_i alpha_i  (R_d_desc_alpha)
//   e(x) = sum_i sum_p -grad k(x - P_p x_i) . P_p v_i
//   F = std * J(x)^T g(x),   E = std * e(x) + c          (F = -dE/dr exactly)
// Per configuration the cost is O(M S d): the radial structure of H makes H t an axpy.
// Units: eV and Angstrom (the descriptor is in 1/Angstrom, sigma too).
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "atomforge/model.hpp"

namespace atomforge {

struct SGDMLRows;  // training rows in the predictor's layout (sgdml.cpp)

/// Descriptor size N(N-1)/2.
inline int64_t sgdml_descriptor_size(int64_t n_atoms) { return n_atoms * (n_atoms - 1) / 2; }

/// Largest sgdml.cutoff (Angstrom) a model file may give: the neighbour-list range of a global
/// model must cover the whole molecule (the default is 1.5 x its largest training distance
/// + 2 A), and sGDML molecules are at most a few nm across; an MD engine builds ghost shells
/// of this thickness.
constexpr double kMaxSGDMLCutoff = 100.0;
/// Largest permutation index table (n_perms x n_atoms (n_atoms - 1) / 2 entries, 8 bytes each,
/// 1 GiB) a model file may ask for.
constexpr int64_t kMaxSGDMLPermEntries = int64_t(1) << 27;

/// Inverse-distance descriptors of `n_conf` configurations R (n_conf, n_atoms, 3) -> X (n_conf, d)
/// and, if jac is not null, the pair Jacobians jac (n_conf, d, 3) = dx_m/dr_a for pair m = (a, b)
/// (dx_m/dr_b = -jac). Throws InvalidInput for coincident atoms or non-finite positions (naming
/// configuration/atoms).
void sgdml_descriptors(const double* R, int64_t n_conf, int64_t n_atoms, double* X, int n_threads = 0,
                       double* jac = nullptr);

/// Gradient-domain kernel sums at query configurations R (n_query, n_atoms, 3):
///   energy[q] = sum_rows -grad k(x_q - x_row) . v_row              (n_query)
///   forces[q] = J_q^T sum_rows H(x_q - x_row) v_row                (n_query, n_atoms, 3)
/// train_x, train_v: (n_rows, d), the permuted training descriptors P_p x_i and vectors P_p v_i.
/// Any output pointer may be null. Threads over queries (or over rows for a single query).
/// With v_i = J_i alpha_i at the training geometries this is the kernel-vector product K alpha
/// used by iterative training.
void sgdml_kernel_sum(const double* R_query, int64_t n_query, int64_t n_atoms, const double* train_x,
                      const double* train_v, int64_t n_rows, double sigma, double* energy, double* forces,
                      int n_threads = 0);

/// Blocks of the (negative-definite) sGDML force kernel matrix
///   K[(i,:), (j,:)] = J_i^T sum_p H(x_i - P_p x_j) P_p J_j        (3N x 3N blocks)
/// for rows i in `rows` (n_rows of them) and all columns j of the M training geometries R
/// (M, N, 3). tril_perms (S, d): descriptor index permutation of each atom permutation
/// (x_p[m] = x[tril_perms[p, m]]). K is written row-major (n_rows*3N, M*3N). With
/// `lower_only`, only blocks with j <= rows[r] are written (the others are left untouched).
void sgdml_kernel_matrix(const double* R, int64_t M, int64_t n_atoms, const int64_t* tril_perms, int64_t S,
                         double sigma, const int64_t* rows, int64_t n_rows, bool lower_only, double* K,
                         int n_threads = 0);

/// Descriptor permutation (tril_perms row) of an atom permutation `perm` (n_atoms):
/// x_p[m] = x[out[m]], with x_p the descriptor of the geometry r'_a = r_{perm[a]}.
std::vector<int64_t> sgdml_tril_perm(const int64_t* perm, int64_t n_atoms);

class SGDML : public Model {
 public:
  /// Reads records sgdml.* (docs/sgdml.md). Throws InvalidInput naming file and record.
  explicit SGDML(const ModelFile& file);

  std::string model_type() const override { return "sgdml"; }
  const std::vector<int>& species() const override { return species_; }
  double cutoff() const override { return cutoff_; }
  bool requires_atom_order() const override { return true; }
  /// Non-periodic, one molecule: every position must be a centre (no images/ghosts), the atom
  /// count and element order must match the training molecule. Atomic energies are E/N each.
  void compute(const NeighborView& nl, const ComputeRequest& request, ModelOutput& out) const override;
  std::vector<std::pair<std::string, std::string>> describe() const override;

  /// Batched prediction on configurations R (n_conf, n_atoms, 3) in the model's atom order:
  /// E (n_conf) eV, F (n_conf, n_atoms, 3) eV/Angstrom. Either output may be null.
  void predict(const double* R, int64_t n_conf, double* E, double* F, int n_threads = 0) const;

  int64_t n_atoms() const { return static_cast<int64_t>(numbers_.size()); }
  const std::vector<int>& numbers() const { return numbers_; }
  int64_t n_train() const { return n_train_; }
  int64_t n_perms() const { return n_perms_; }
  double sigma() const { return sigma_; }
  const std::string& formula() const { return formula_; }

 private:
  std::vector<int> species_, numbers_;
  std::shared_ptr<const SGDMLRows> rows_;  // training descriptors and J alpha, (d, n_train padded)
  std::vector<int64_t> tp_;    // (n_perms, d) descriptor index map of each permutation
  int64_t n_train_ = 0, n_perms_ = 0, dim_ = 0;
  double sigma_ = 0, std_ = 1, c_ = 0, cutoff_ = 0;
  std::string formula_;
};

}  // namespace atomforge
