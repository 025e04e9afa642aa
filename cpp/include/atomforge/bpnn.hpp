// atomforge core: Behler-Parrinello high-dimensional neural-network potential (and committees).
//   J. Behler, M. Parrinello, Phys. Rev. Lett. 98, 146401 (2007).
// Atomic energy of atom i (element k) for committee member m:
//   x_i = (G_i - shift_k) * scale_k + offset_k
//   E_i^m = reference_k + energy_scale * NN_k^m(x_i),   NN: h_{l+1} = act_l(W_l h_l + b_l)
// E = sum_i mean_m E_i^m. Forces from one vector-Jacobian product with dE/dG.
#pragma once
#include <string>
#include <vector>

#include "atomforge/potential.hpp"
#include "atomforge/symmetry_functions.hpp"

namespace atomforge {

enum class Activation : int32_t { Linear, Tanh, Sigmoid, Softplus, SiLU, Gaussian };
Activation activation_from_string(const std::string& name);

class BPNN : public Potential {
 public:
  struct Layer {
    int64_t n_in = 0, n_out = 0;
    std::vector<double> weight;  // (n_out, n_in) row-major
    std::vector<double> bias;    // (n_out)
    Activation act = Activation::Linear;
  };
  /// Throws InvalidInput naming the model file and record for any inconsistency.
  explicit BPNN(const ModelFile& file);

  std::string model_type() const override { return "bpnn"; }
  const std::vector<int>& species() const override { return species_; }
  double cutoff() const override { return descriptor_.max_cutoff(); }
  int committee_size() const { return static_cast<int>(networks_.size()); }
  const SymmetryFunctions& descriptor() const { return descriptor_; }
  void compute(const NeighborView& nl, PotentialOutput& out, bool per_atom_virial = false,
               int n_threads = 0) const override;

 private:
  std::vector<int> species_;
  SymmetryFunctions descriptor_;
  std::vector<std::vector<double>> shift_, scale_;
  std::vector<double> offset_, reference_;
  double energy_scale_ = 1.0;
  std::vector<std::vector<std::vector<Layer>>> networks_;  // [member][element][layer]
  int64_t max_width_ = 0;
};

}  // namespace atomforge
