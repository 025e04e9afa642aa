#include "networks/atomic_networks.hpp"

#include <algorithm>
#include <cmath>

#include "atomforge/errors.hpp"
#include "atomforge/hd.hpp"
#include "common/simd_math.hpp"

namespace atomforge {

Activation activation_from_string(const std::string& n) {
  if (n == "linear") return Activation::Linear;
  if (n == "tanh") return Activation::Tanh;
  if (n == "sigmoid") return Activation::Sigmoid;
  if (n == "softplus") return Activation::Softplus;
  if (n == "silu") return Activation::SiLU;
  if (n == "gaussian") return Activation::Gaussian;
  throw InvalidInput("unknown activation '" + n + "' (known: linear, tanh, sigmoid, softplus, silu, gaussian)");
}

namespace {
// y = act(z) and dy/dz for the n outputs of a layer: the switch outside, each case one
// vectorisable loop over the outputs with the branch-free exp/expm1 of simd_math.hpp (a few ulp
// from libm's; tanh(z) = sign(z) tanh(|z|) by expm1 as in the cutoffs). Softplus keeps libm's
// log1p (no vector form here).
inline void activate(Activation a, int64_t n, const double* __restrict z, double* __restrict y,
                     double* __restrict dy) {
  switch (a) {
    case Activation::Linear:
      for (int64_t o = 0; o < n; ++o) {
        y[o] = z[o];
        dy[o] = 1.0;
      }
      return;
    case Activation::Tanh:
      AF_SIMD
      for (int64_t o = 0; o < n; ++o) {
        const double t = simd::tanh_nonneg(z[o] < 0.0 ? -z[o] : z[o]);
        const double v = z[o] < 0.0 ? -t : t;
        y[o] = v;
        dy[o] = 1.0 - v * v;
      }
      return;
    case Activation::Sigmoid:
      AF_SIMD
      for (int64_t o = 0; o < n; ++o) {
        const double sg = 1.0 / (1.0 + simd::exp(-z[o]));
        y[o] = sg;
        dy[o] = sg * (1.0 - sg);
      }
      return;
    case Activation::Softplus:
      for (int64_t o = 0; o < n; ++o) {
        y[o] = z[o] > 0 ? z[o] + std::log1p(std::exp(-z[o])) : std::log1p(std::exp(z[o]));
        dy[o] = 1.0 / (1.0 + std::exp(-z[o]));
      }
      return;
    case Activation::SiLU:
      AF_SIMD
      for (int64_t o = 0; o < n; ++o) {
        const double sg = 1.0 / (1.0 + simd::exp(-z[o]));
        y[o] = z[o] * sg;
        dy[o] = sg * (1.0 + z[o] * (1.0 - sg));
      }
      return;
    case Activation::Gaussian:
      AF_SIMD
      for (int64_t o = 0; o < n; ++o) {
        const double v = simd::exp(-0.5 * z[o] * z[o]);
        y[o] = v;
        dy[o] = -z[o] * v;
      }
      return;
  }
}

// Dense layers as register-blocked "axpy" loops: z[o] = b[o] + sum_i A[i, o] h[i] with A (n_in,
// n_out) row-major, the terms added one input at a time, in order, starting from the bias. The
// forward pass runs it on W^T (A[i, o] = W[o, i]); the backward pass g[i] = sum_o W[o, i] go[o]
// runs the same loop on W itself (A = W read as (n_out, n_in), a zero bias), so both passes read
// their weights contiguously and vectorise over their outputs without horizontal sums. Two
// copies of each weight matrix are kept (W^T and W).
//
// One centre: kBlock partial sums stay in vector registers (1 load per FMA). A block of NC
// centres (AtomicNetworks::evaluate_block): each vector of kOutLanes weights is loaded once and
// used for NC centres (NC independent FMA chains), which turns the L2-bandwidth-bound
// matrix-vector products of one centre into matrix-matrix products near the FMA peak
// (benchmarks/results/committee_overhead.md). The order of the terms of every output is the same
// in both, so a centre's results are bitwise the same alone or in a block of any size.
constexpr int64_t kBlock = 32;
constexpr int64_t kOutLanes = 8;

// z[o] = b[o] + sum_i A[i, o] h[i], o in [o0, o0 + B).
template <int64_t B>
inline void affine_block(const double* A, const double* b, const double* h, int64_t n_in, int64_t n_out,
                         int64_t o0, double* z) {
  double acc[B];
  for (int64_t t = 0; t < B; ++t) acc[t] = b[o0 + t];
  for (int64_t i = 0; i < n_in; ++i) {
    const double hi = h[i];
    const double* col = A + i * n_out + o0;
#pragma omp simd
    for (int64_t t = 0; t < B; ++t) acc[t] += col[t] * hi;
  }
  for (int64_t t = 0; t < B; ++t) z[o0 + t] = acc[t];
}

// z = b + A^T h for one centre; z, b (n_out), h (n_in).
inline void affine(const double* A, const double* b, const double* h, int64_t n_in, int64_t n_out, double* z) {
  int64_t o0 = 0;
  for (; o0 + kBlock <= n_out; o0 += kBlock) affine_block<kBlock>(A, b, h, n_in, n_out, o0, z);
  for (; o0 + kOutLanes <= n_out; o0 += kOutLanes) affine_block<kOutLanes>(A, b, h, n_in, n_out, o0, z);
  for (; o0 < n_out; ++o0) affine_block<1>(A, b, h, n_in, n_out, o0, z);
}

// The same for NC centres, outputs [o0, o0 + kOutLanes): h rows ldh apart, z rows ldz apart.
template <int NC>
inline void affine_centres(const double* A, const double* b, const double* h, int64_t ldh, int64_t n_in,
                           int64_t n_out, int64_t o0, double* z, int64_t ldz) {
  double acc[NC][kOutLanes];
  for (int c = 0; c < NC; ++c)
    for (int64_t t = 0; t < kOutLanes; ++t) acc[c][t] = b[o0 + t];
  for (int64_t i = 0; i < n_in; ++i) {
    const double* col = A + i * n_out + o0;
    for (int c = 0; c < NC; ++c) {
      const double hi = h[c * ldh + i];
#pragma omp simd
      for (int64_t t = 0; t < kOutLanes; ++t) acc[c][t] += col[t] * hi;
    }
  }
  for (int c = 0; c < NC; ++c)
    for (int64_t t = 0; t < kOutLanes; ++t) z[c * ldz + o0 + t] = acc[c][t];
}

template <int NC>
inline void affine_n(const double* A, const double* b, const double* h, int64_t ldh, int64_t n_in, int64_t n_out,
                     double* z, int64_t ldz) {
  int64_t o0 = 0;
  for (; o0 + kOutLanes <= n_out; o0 += kOutLanes) affine_centres<NC>(A, b, h, ldh, n_in, n_out, o0, z, ldz);
  for (; o0 < n_out; ++o0) {  // the tail: NC independent chains of the one-output loop
    double acc[NC];
    for (int c = 0; c < NC; ++c) acc[c] = b[o0];
    for (int64_t i = 0; i < n_in; ++i) {
      const double a = A[i * n_out + o0];
      for (int c = 0; c < NC; ++c) acc[c] += a * h[c * ldh + i];
    }
    for (int c = 0; c < NC; ++c) z[c * ldz + o0] = acc[c];
  }
}

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out(1);
  for (char c : s) {
    if (c == sep) out.emplace_back();
    else out.back() += c;
  }
  return out;
}

void check_finite(const std::vector<double>& v, const std::string& where, const std::string& name) {
  for (size_t k = 0; k < v.size(); ++k)
    if (!std::isfinite(v[k]))
      throw InvalidInput(where + ": record '" + name + "' entry " + std::to_string(k) + " is not finite");
}
}  // namespace

AtomicNetworks AtomicNetworks::from_file(const ModelFile& f, const std::string& np, const std::string& sp,
                                         const std::vector<int64_t>& n_inputs, int64_t n_outputs) {
  const std::string& w = f.where();
  AtomicNetworks a;
  a.n_elements_ = static_cast<int32_t>(n_inputs.size());
  a.n_inputs_ = n_inputs;
  const int64_t M = f.i64_scalar("committee_size");
  if (f.has(np + "shared")) {
    const int64_t s = f.i64_scalar(np + "shared");
    if (s != 0 && s != 1) throw InvalidInput(w + ": record '" + np + "shared' must be 0 or 1");
    a.shared_ = s == 1;
  }
  const int ne = a.n_elements_;
  a.n_nets_ = a.shared_ ? 1 : ne;
  // Every network of every member has at least three records (n_layers, one weight, one bias):
  // bound M by the records present before anything is sized by it.
  const int64_t max_members = static_cast<int64_t>(f.records().size()) / (3 * static_cast<int64_t>(a.n_nets_));
  if (M < 1 || M > max_members)
    throw InvalidInput(w + ": record 'committee_size' = " + std::to_string(M) + " is out of range: " +
                       std::to_string(a.n_nets_) + " network(s) per member need at least 3 records each, so the " +
                       std::to_string(f.records().size()) + " records of this file hold 1 to " +
                       std::to_string(max_members) + " members");
  a.n_members_ = static_cast<int>(M);
  if (a.shared_)
    for (int k = 1; k < ne; ++k)
      if (n_inputs[k] != n_inputs[0])
        throw InvalidInput(w + ": a shared network needs the same feature count for every element");
  for (int k = 0; k < ne; ++k) {
    const std::string p = sp + std::to_string(k) + ".";
    a.shift_.push_back(f.f64_vector(p + "shift"));
    a.scale_.push_back(f.f64_vector(p + "scale"));
    a.offset_.push_back(f.f64_scalar(p + "offset"));
    if (static_cast<int64_t>(a.shift_[k].size()) != n_inputs[k] || static_cast<int64_t>(a.scale_[k].size()) != n_inputs[k])
      throw InvalidInput(w + ": records '" + p + "shift' / '" + p + "scale' must have one entry per descriptor feature (" +
                         std::to_string(n_inputs[k]) + ")");
    check_finite(a.shift_[k], w, p + "shift");
    check_finite(a.scale_[k], w, p + "scale");
    if (!std::isfinite(a.offset_[k])) throw InvalidInput(w + ": record '" + p + "offset' is not finite");
  }
  a.layers_.resize(static_cast<size_t>(M) * a.n_nets_);
  for (int k = 0; k < a.n_nets_; ++k) {
    const std::string acts_name = np + std::to_string(k) + ".activations";
    a.activations_.push_back(f.string(acts_name));
    const auto acts = split(a.activations_.back(), ',');
    for (int64_t m = 0; m < M; ++m) {
      const std::string q = np + std::to_string(m) + "." + std::to_string(k) + ".";
      const int64_t L = f.i64_scalar(q + "n_layers");
      if (L < 1 || L != static_cast<int64_t>(acts.size()))
        throw InvalidInput(w + ": record '" + q + "n_layers' = " + std::to_string(L) +
                           " does not match the " + std::to_string(acts.size()) + " activation(s) in '" + acts_name +
                           "'");
      int64_t width = n_inputs[k];
      auto& layers = a.layers_[m * a.n_nets_ + k];
      for (int64_t l = 0; l < L; ++l) {
        std::vector<uint64_t> shape;
        const std::string wn = q + std::to_string(l) + ".weight", bn = q + std::to_string(l) + ".bias";
        const auto& W = f.f64(wn, &shape);
        const auto& b = f.f64_vector(bn);
        if (shape.size() != 2 || static_cast<int64_t>(shape[1]) != width || b.size() != shape[0])
          throw InvalidInput(w + ": records '" + wn + "' / '" + bn + "' do not fit input width " +
                             std::to_string(width) + " (weight (out, in), bias (out))");
        check_finite(W, w, wn);
        check_finite(b, w, bn);
        Layer ly;
        ly.n_in = width;
        ly.n_out = static_cast<int64_t>(shape[0]);
        try {
          ly.act = activation_from_string(acts[l]);
        } catch (const InvalidInput& e) {
          throw InvalidInput(w + ": " + acts_name + ": " + e.what());
        }
        ly.b = static_cast<int64_t>(a.params_.size());
        a.params_.insert(a.params_.end(), b.begin(), b.end());
        ly.wt = static_cast<int64_t>(a.transposed_.size());
        a.transposed_.resize(a.transposed_.size() + W.size());
        for (int64_t o = 0; o < ly.n_out; ++o)
          for (int64_t i = 0; i < ly.n_in; ++i) a.transposed_[ly.wt + i * ly.n_out + o] = W[o * ly.n_in + i];
        ly.w = static_cast<int64_t>(a.weights_.size());
        a.weights_.insert(a.weights_.end(), W.begin(), W.end());
        width = ly.n_out;
        a.max_width_ = std::max({a.max_width_, ly.n_in, ly.n_out});
        layers.push_back(ly);
      }
      if (width != n_outputs)
        throw InvalidInput(w + ": " + q + " output width " + std::to_string(width) + ", expected " +
                           std::to_string(n_outputs));
    }
  }
  a.zeros_.assign(static_cast<size_t>(a.max_width_), 0.0);
  return a;
}

std::string AtomicNetworks::architecture(int32_t k) const {
  const auto& layers = layers_[shared_ ? 0 : k];
  std::string s = std::to_string(layers.empty() ? 0 : layers[0].n_in);
  for (const auto& l : layers) s += "-" + std::to_string(l.n_out);
  return s;
}

const std::string& AtomicNetworks::activations(int32_t k) const { return activations_[shared_ ? 0 : k]; }

int64_t AtomicNetworks::weight_bytes(int32_t k) const {
  int64_t most = 0;  // the largest member's
  for (int m = 0; m < n_members_; ++m) {
    int64_t n = 0;
    for (const Layer& ly : layers_[m * n_nets_ + (shared_ ? 0 : k)]) n += ly.n_in * ly.n_out;
    most = std::max(most, n);
  }
  return 2 * most * static_cast<int64_t>(sizeof(double));
}

bool AtomicNetworks::blocks_pay() const {
  for (int32_t k = 0; k < n_elements_; ++k)
    if (weight_bytes(k) > kBlockMinWeightBytes) return true;
  return false;
}

void AtomicNetworks::prepare(Workspace& ws) const {
  size_t max_layers = 0;
  for (const auto& l : layers_) max_layers = std::max(max_layers, l.size());
  const size_t n = kMaxBlock * (max_layers + 1) * static_cast<size_t>(max_width_);
  if (ws.h.size() < n) {
    ws.h.assign(n, 0.0);
    ws.dh.assign(n, 0.0);
    ws.g.assign(kMaxBlock * max_width_, 0.0);
    ws.g2.assign(kMaxBlock * max_width_, 0.0);
    ws.z.assign(kMaxBlock * max_width_, 0.0);
  }
}

template <int NC>
void AtomicNetworks::evaluate_centres(int32_t k, const double* const* G, double* member_out, double* const* grad,
                                      Workspace& ws, double* const* member_grads) const {
  const int net = shared_ ? 0 : k;
  const int64_t nin = n_inputs_[k];
  const double* sh = shift_[k].data();
  const double* sc = scale_[k].data();
  const double off = offset_[k];
  const int64_t W = max_width_;
  const int64_t lw = NC * W;  // one layer's rows of the block: (NC, W)
  if (grad)
    for (int c = 0; c < NC; ++c) std::fill(grad[c], grad[c] + nin, 0.0);
  for (int m = 0; m < n_members_; ++m) {
    const auto& layers = layers_[m * n_nets_ + net];
    const size_t L = layers.size();
    for (int c = 0; c < NC; ++c) {
      double* h0 = ws.h.data() + c * W;
      for (int64_t f = 0; f < nin; ++f) h0[f] = (G[c][f] - sh[f]) * sc[f] + off;
    }
    for (size_t l = 0; l < L; ++l) {
      const Layer& ly = layers[l];
      const double* hin = ws.h.data() + l * lw;
      double* hout = ws.h.data() + (l + 1) * lw;
      double* dh = ws.dh.data() + l * lw;
      double* z = ws.z.data();
      if constexpr (NC == 1)
        affine(transposed_.data() + ly.wt, params_.data() + ly.b, hin, ly.n_in, ly.n_out, z);
      else
        affine_n<NC>(transposed_.data() + ly.wt, params_.data() + ly.b, hin, W, ly.n_in, ly.n_out, z, W);
      for (int c = 0; c < NC; ++c) activate(ly.act, ly.n_out, z + c * W, hout + c * W, dh + c * W);
    }
    for (int c = 0; c < NC; ++c) member_out[c * n_members_ + m] = ws.h[L * lw + c * W];
    if (!grad && !member_grads) continue;
    // backward: g = d (c_m y) / d h_l per centre (c_m = 1/M for the committee mean's gradient,
    // 1 when each member's own gradient is wanted)
    double* g = ws.g.data();
    double* g2 = ws.g2.data();
    const double cm = 1.0 / static_cast<double>(n_members_);
    for (int c = 0; c < NC; ++c) g[c * W] = member_grads ? 1.0 : cm;
    for (size_t l = L; l-- > 0;) {
      const Layer& ly = layers[l];
      const double* dh = ws.dh.data() + l * lw;
      double* go = ws.z.data();
      for (int c = 0; c < NC; ++c)
        for (int64_t o = 0; o < ly.n_out; ++o) go[c * W + o] = g[c * W + o] * dh[c * W + o];
      if constexpr (NC == 1)
        affine(weights_.data() + ly.w, zeros_.data(), go, ly.n_out, ly.n_in, g2);
      else
        affine_n<NC>(weights_.data() + ly.w, zeros_.data(), go, W, ly.n_out, ly.n_in, g2, W);
      std::swap(g, g2);
    }
    for (int c = 0; c < NC; ++c) {
      if (member_grads) {
        double* gm = member_grads[c] + m * nin;
        for (int64_t f = 0; f < nin; ++f) gm[f] = g[c * W + f] * sc[f];
        if (grad)
          for (int64_t f = 0; f < nin; ++f) grad[c][f] += cm * gm[f];
      } else {
        for (int64_t f = 0; f < nin; ++f) grad[c][f] += g[c * W + f] * sc[f];
      }
    }
  }
}

void AtomicNetworks::evaluate_block(int32_t k, int n, const double* const* G, double* member_out,
                                    double* const* grad, Workspace& ws, double* const* member_grads) const {
  switch (n) {
    case 1: return evaluate_centres<1>(k, G, member_out, grad, ws, member_grads);
    case 2: return evaluate_centres<2>(k, G, member_out, grad, ws, member_grads);
    case 3: return evaluate_centres<3>(k, G, member_out, grad, ws, member_grads);
    case 4: return evaluate_centres<4>(k, G, member_out, grad, ws, member_grads);
    case 5: return evaluate_centres<5>(k, G, member_out, grad, ws, member_grads);
    case 6: return evaluate_centres<6>(k, G, member_out, grad, ws, member_grads);
    case 7: return evaluate_centres<7>(k, G, member_out, grad, ws, member_grads);
    case 8: return evaluate_centres<8>(k, G, member_out, grad, ws, member_grads);
    default:
      for (int q = 0; q < n; q += kMaxBlock) {
        const int nq = std::min(kMaxBlock, n - q);
        evaluate_block(k, nq, G + q, member_out + static_cast<int64_t>(q) * n_members_, grad ? grad + q : nullptr, ws,
                       member_grads ? member_grads + q : nullptr);
      }
  }
}

void AtomicNetworks::evaluate(int32_t k, const double* G, double* member_out, double* grad, Workspace& ws,
                              double* member_grads) const {
  evaluate_centres<1>(k, &G, member_out, grad ? &grad : nullptr, ws, member_grads ? &member_grads : nullptr);
}

}  // namespace atomforge
