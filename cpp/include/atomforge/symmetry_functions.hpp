// atomforge core: Behler-Parrinello atom-centred symmetry functions (ACSF).
//
// References
//   [B11] J. Behler, J. Chem. Phys. 134, 074106 (2011): G2 (Eq. 6), G4 (Eq. 8), G5 (Eq. 9),
//         cosine cutoff (Eq. 4).
//   [B15] J. Behler, Int. J. Quantum Chem. 115, 1032 (2015): element-resolved functions.
//   [S19] A. Singraber, T. Morawietz, J. Behler, C. Dellago, J. Chem. Theory Comput. 15, 3075
//         (2019) (n2p2): polynomial and tanh cutoffs, single counting of neighbour pairs.
//
// Definitions (r_ij = |r_j - r_i|, theta_ijk the angle at i, fc the cutoff function):
//   G2_i = sum_{j in e1}            exp(-eta (r_ij - r_s)^2) fc(r_ij)
//   G4_i = 2^(1-zeta) sum_{pairs {j,k}} (1 + lambda cos theta_ijk)^zeta
//          exp(-eta [(r_ij-r_s)^2 + (r_ik-r_s)^2 + (r_jk-r_s)^2]) fc(r_ij) fc(r_ik) fc(r_jk)
//   G5_i = 2^(1-zeta) sum_{pairs {j,k}} (1 + lambda cos theta_ijk)^zeta
//          exp(-eta [(r_ij-r_s)^2 + (r_ik-r_s)^2]) fc(r_ij) fc(r_ik)
// The pair sums run over unordered pairs {j, k} with one neighbour of element e1 and the other
// of element e2 (each pair counted once, as in n2p2 [S19]; [B11] Eq. 8 sums over ordered pairs,
// which is exactly twice this). r_s = 0 gives the functions of [B11].
//
// Units: Angstrom for lengths, 1/Angstrom^2 for eta; G is dimensionless.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "atomforge/neighbor_list.hpp"

namespace atomforge {

/// Cutoff function fc(r), x = r / r_c, fc = 0 for r >= r_c.
///   Cosine: 0.5 (cos(pi x) + 1)                                        [B11 Eq. 4]
///   TanhU:  tanh^3(1 - x)                       (n2p2 cutoff_type 2)   [B11 Eq. 5, unnormalised]
///   Tanh:   tanh^3(1 - x) / tanh^3(1)           (n2p2 cutoff_type 3, fc(0) = 1)
///   Poly1:  (2x - 3) x^2 + 1                    (n2p2 cutoff_type 5)   [S19]
///   Poly2:  ((15 - 6x) x - 10) x^3 + 1          (n2p2 cutoff_type 6)
///   Poly3:  (x (x (20x - 70) + 84) - 35) x^4 + 1 (n2p2 cutoff_type 7)
///   Poly4:  (x (x ((315 - 70x) x - 540) + 420) - 126) x^5 + 1 (n2p2 cutoff_type 8)
enum class CutoffType : int32_t { Cosine = 0, TanhU = 1, Tanh = 2, Poly1 = 3, Poly2 = 4, Poly3 = 5, Poly4 = 6 };

enum class SymmetryFunctionType : int32_t { G2 = 2, G4 = 4, G5 = 5 };

/// One symmetry function. Elements are indices 0 .. n_elements-1 into the descriptor's species.
struct SymmetryFunctionSpec {
  SymmetryFunctionType type = SymmetryFunctionType::G2;
  int32_t centre = 0;       // element of the central atom
  int32_t neighbor1 = 0;    // element of neighbour j
  int32_t neighbor2 = -1;   // element of neighbour k (G4/G5 only; order irrelevant)
  double eta = 0.0;         // 1/Angstrom^2, >= 0
  double r_s = 0.0;         // Angstrom, 0 <= r_s < r_c
  double r_c = 0.0;         // Angstrom, > 0
  double lambda = 1.0;      // G4/G5: +1 or -1
  double zeta = 1.0;        // G4/G5: >= 1
};

/// Sparse Jacobian dG/dr. For centre c the entries entry_offsets[c] .. entry_offsets[c+1]
/// list the centre itself (first) and then each neighbour within the centre element's cutoff:
///   position[e]      index into the neighbour view's positions (may be a ghost/image)
///   displacement[e]  (3) r_position - r_centre in Angstrom (zero for the self entry)
///   values[e]        (n_features, 3) dG[c, f] / dr_position (1/Angstrom), row-major
/// The same position may appear in several entries (periodic images); sum them. Forces for
/// an energy E(G): F_m = -sum_{e: position[e] = m} sum_f dE/dG[c(e), f] values[e, f, :], and
/// the virial W = -sum_e displacement[e] (x) (sum_f dE/dG[c(e), f] values[e, f, :]).
struct DescriptorJacobian {
  int64_t n_features = 0;
  std::vector<int64_t> entry_offsets;  // (n_centres + 1)
  std::vector<int64_t> position;       // (n_entries)
  std::vector<double> displacement;    // (n_entries, 3)
  std::vector<double> values;          // (n_entries, n_features, 3)
};

class SymmetryFunctions {
 public:
  /// Throws InvalidInput naming the function index for: n_elements < 1, element indices out of
  /// range, G2 with neighbor2 set or G4/G5 without it, eta < 0, r_c <= 0, r_s outside [0, r_c),
  /// lambda not +-1, zeta < 1, or any non-finite parameter.
  SymmetryFunctions(int32_t n_elements, std::vector<SymmetryFunctionSpec> functions,
                    CutoffType cutoff);

  int32_t n_elements() const { return n_elements_; }
  /// Feature count of the widest element; rows of other elements are zero-padded to it.
  int64_t n_features() const { return n_features_; }
  /// Feature count of `element` (its functions in the order given to the constructor).
  int64_t n_features(int32_t element) const;
  /// Largest r_c of any function (Angstrom): the neighbour list cutoff to use.
  double max_cutoff() const { return max_cutoff_; }
  CutoffType cutoff_type() const { return cutoff_; }
  const std::vector<SymmetryFunctionSpec>& functions() const { return functions_; }

  /// G (n_centres, n_features), row-major, overwritten.
  void compute(const NeighborView& nl, double* G, int n_threads = 0) const;

  /// Vector-Jacobian product for an energy that depends on G with dE_dG (n_centres,
  /// n_features): writes forces = -dE/dr for every position (n_total, 3) (ghosts included:
  /// fold them onto owners or let the MD engine reverse-communicate them) and the virial
  /// (3, 3) W = -sum_pairs r_ij (x) dE/dr_ij in eV when E is in eV. Both are overwritten.
  /// per_atom_virial, if not null, (n_total, 9) receives the pair virial split evenly between
  /// the two atoms of each pair (the LAMMPS convention for compute stress/atom).
  /// The result is the same, bit for bit, for every thread count.
  void vjp(const NeighborView& nl, const double* dE_dG, double* forces, double* virial,
           double* per_atom_virial = nullptr, int n_threads = 0) const;

  /// G and its sparse Jacobian (layout above). G may be null.
  DescriptorJacobian jacobian(const NeighborView& nl, double* G, int n_threads = 0) const;

 private:
  struct Group;       // distinct (eta, r_s, r_c) of a central element
  struct AngularFn;   // angular function reduced to a group + (lambda, zeta)
  struct ElementTables;
  template <int Mode>
  void centre_kernel(const NeighborView& nl, int64_t c, const ElementTables& t, double* G_row,
                     const double* dEdG_row, double* pair_grad, DescriptorJacobian* jac,
                     struct Workspace& ws) const;
  void validate(const NeighborView& nl) const;

  int32_t n_elements_;
  std::vector<SymmetryFunctionSpec> functions_;
  CutoffType cutoff_;
  int64_t n_features_ = 0;
  double max_cutoff_ = 0.0;
  std::vector<ElementTables> tables_;  // one per central element (pimpl-style, defined in .cpp)
  std::vector<int64_t> per_element_;

 public:
  ~SymmetryFunctions();
  SymmetryFunctions(const SymmetryFunctions&);
  SymmetryFunctions& operator=(const SymmetryFunctions&);
};

/// Parse a cutoff-type name ("cos", "tanhu", "tanh", "poly1" .. "poly4"); throws InvalidInput.
CutoffType cutoff_type_from_string(const std::string& name);
std::string to_string(CutoffType t);

/// Build information (version, CUDA and OpenMP availability) for diagnostics.
std::string build_info();
/// Number of CUDA devices visible (0 when built without CUDA or no driver/device).
int cuda_device_count();

}  // namespace atomforge
