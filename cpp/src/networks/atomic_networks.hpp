// Atomic neural networks: the reusable component behind every network-based model type
// (internal header).
//
// For an atom of element k with descriptor row G (its element's feature count), committee
// member m computes
//     x   = (G - shift_k) * scale_k + offset_k                (input scaling, per element)
//     y^m = NN^m_{n(k)}(x),   NN: h_{l+1} = act_l(W_l h_l + b_l),  W_l (n_out, n_in)
// where n(k) = k for per-element networks (Behler-Parrinello, PRL 98, 146401 (2007)) or 0 for
// one network shared by all elements ("SingleNN", as used with element-agnostic GMP features,
// Lei & Medford, J. Phys. Chem. Lett. 13, 7911 (2022)). A committee is M such sets with
// independent weights, evaluated in one pass over the same descriptor row.
//
// Model-file records (prefixes given by the model type; the energy model uses "network." and
// "scaling."), k = element index, m = member, l = layer:
//   committee_size                       int64 M >= 1 (shared by all network sets of a model)
//   {net}shared                          int64 0/1 (optional, default 0)
//   {net}{k}.activations                 "tanh,tanh,linear" (one per layer; k = 0 when shared)
//   {net}{m}.{k}.n_layers                int64
//   {net}{m}.{k}.{l}.weight / .bias      float64 (n_out, n_in) / (n_out)
//   {scaling}{k}.shift / .scale          float64 (n_features(k)); {scaling}{k}.offset scalar
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "atomforge/model_file.hpp"

namespace atomforge {

enum class Activation : int32_t { Linear, Tanh, Sigmoid, Softplus, SiLU, Gaussian };
/// Parse an activation name (linear, tanh, sigmoid, softplus, silu, gaussian); throws InvalidInput.
Activation activation_from_string(const std::string& name);

class AtomicNetworks {
 public:
  /// Per-thread scratch of evaluate(); sized by prepare().
  struct Workspace {
    std::vector<double> h, dh, g, g2, z;  // layer rows of up to kMaxBlock centres
  };

  AtomicNetworks() = default;
  /// Read the records described above. n_inputs[k]: the descriptor's feature count of element k;
  /// n_outputs: width of the last layer (1 for atomic energies and charges). Validates every
  /// shape against the records present before allocating anything large; throws InvalidInput
  /// naming the file and record.
  static AtomicNetworks from_file(const ModelFile& file, const std::string& net_prefix,
                                  const std::string& scaling_prefix, const std::vector<int64_t>& n_inputs,
                                  int64_t n_outputs = 1);

  int committee_size() const { return n_members_; }
  int32_t n_elements() const { return n_elements_; }
  bool shared() const { return shared_; }
  /// Input (descriptor feature) count of element k.
  int64_t n_inputs(int32_t k) const { return n_inputs_[k]; }
  /// Hidden/output widths of the network element k uses, e.g. "30-30-1".
  std::string architecture(int32_t element) const;
  const std::string& activations(int32_t element) const;
  void prepare(Workspace& ws) const;

  /// Evaluate every member for one atom of element k on its descriptor row G (n_inputs[k]).
  /// member_out (M): y^m. If grad is not null it receives the gradient of the committee mean,
  /// d(sum_m y^m / M)/dG (n_inputs[k]). member_grads, if not null, (M, n_inputs[k]) receives each
  /// member's own dy^m/dG. No allocation (workspace from prepare()). evaluate_block() with n = 1.
  void evaluate(int32_t element, const double* G, double* member_out, double* grad, Workspace& ws,
                double* member_grads = nullptr) const;

  /// Centres per evaluate_block() call that share each weight load (more are split into blocks).
  static constexpr int kMaxBlock = 8;
  /// Bytes of the weights of one member's network for element k (the largest member's; forward
  /// and backward copies).
  int64_t weight_bytes(int32_t element) const;
  /// True when blocks of centres pay: one member's network holds more weights than the L1 data
  /// cache (kBlockMinWeightBytes). Below it the one-centre kernels run from L1 and the
  /// descriptor's extra workspaces per block cost more than they save (measured on n2p2 water,
  /// 25-25 networks: one member 5 % slower with blocks, four members 2 % slower; 128-128
  /// networks: one member 8-12 % faster, four members 25-29 %; benchmarks/results/committee_overhead.md).
  bool blocks_pay() const;
  static constexpr int64_t kBlockMinWeightBytes = 64 * 1024;
  /// evaluate() for n centres of element k at once: G[c] (n_inputs[k]) the rows, member_out
  /// (n, M) row-major, grad[c] (n_inputs[k]) or grad null for energies only; member_grads[c]
  /// (M, n_inputs[k]) or null. Each centre's results are bitwise those of evaluate() (the same
  /// operations in the same order); the block shares the loads of every weight between its
  /// centres, which makes wide networks several times faster per centre. No allocation.
  void evaluate_block(int32_t element, int n, const double* const* G, double* member_out, double* const* grad,
                      Workspace& ws, double* const* member_grads = nullptr) const;

 private:
  template <int NC>
  void evaluate_centres(int32_t element, const double* const* G, double* member_out, double* const* grad,
                        Workspace& ws, double* const* member_grads) const;
  struct Layer {
    int64_t n_in = 0, n_out = 0, b = 0;  // b: offset of the bias in params_
    int64_t wt = 0;                      // offset of W^T (n_in, n_out) in transposed_
    int64_t w = 0;                       // offset of W (n_out, n_in) in weights_
    Activation act = Activation::Linear;
  };
  int32_t n_elements_ = 0;
  int n_members_ = 0;
  bool shared_ = false;
  int64_t max_width_ = 0;
  std::vector<int64_t> n_inputs_;
  std::vector<std::vector<double>> shift_, scale_;
  std::vector<double> offset_;
  std::vector<std::string> activations_;           // per network set
  std::vector<std::vector<Layer>> layers_;         // [member * n_nets + net]
  std::vector<double> params_;      // the biases
  std::vector<double> transposed_;  // W^T of every layer (the forward pass's rows)
  std::vector<double> weights_;     // W of every layer (the backward pass's rows)
  std::vector<double> zeros_;       // max_width_ zeros (the backward pass's bias)
  int n_nets_ = 0;
};

}  // namespace atomforge
