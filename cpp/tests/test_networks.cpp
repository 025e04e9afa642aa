// Atomic networks: a block of centres (evaluate_block, the fused descriptor passes' path) gives
// bitwise the results of one centre at a time (evaluate), each member's own gradient included,
// for every block size, for widths that are and are not multiples of the vector width,
// committees, per-element and shared networks.
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "atomforge/model_file.hpp"
#include "harness.hpp"
#include "networks/atomic_networks.hpp"

using namespace atomforge;

namespace {
// n_elements networks (or one shared), M members, layers in -> widths..., deterministic weights
ModelFileWriter networks(int n_elements, int M, bool shared, int64_t nin, const std::vector<int64_t>& widths,
                         const std::string& acts) {
  ModelFileWriter w;
  w.i64("committee_size", M);
  if (shared) w.i64("network.shared", 1);
  int64_t seed = 1;
  auto value = [&seed]() {  // a small deterministic sequence in (-0.5, 0.5)
    seed = (seed * 1103515245 + 12345) % 2147483648LL;
    return static_cast<double>(seed) / 2147483648.0 - 0.5;
  };
  for (int k = 0; k < n_elements; ++k) {
    std::vector<double> sh(nin), sc(nin);
    for (int64_t f = 0; f < nin; ++f) {
      sh[f] = value();
      sc[f] = 1.0 + value();
    }
    const std::string p = "scaling." + std::to_string(k) + ".";
    w.f64(p + "shift", {static_cast<uint64_t>(nin)}, sh).f64(p + "scale", {static_cast<uint64_t>(nin)}, sc)
        .f64(p + "offset", 0.1 * k);
  }
  const int n_nets = shared ? 1 : n_elements;
  for (int k = 0; k < n_nets; ++k) {
    w.string("network." + std::to_string(k) + ".activations", acts);
    for (int m = 0; m < M; ++m) {
      const std::string q = "network." + std::to_string(m) + "." + std::to_string(k) + ".";
      w.i64(q + "n_layers", static_cast<int64_t>(widths.size()));
      int64_t width = nin;
      for (size_t l = 0; l < widths.size(); ++l) {
        std::vector<double> W(widths[l] * width), b(widths[l]);
        for (double& x : W) x = value() * 2.0 / std::sqrt(static_cast<double>(width));
        for (double& x : b) x = value();
        w.f64(q + std::to_string(l) + ".weight", {static_cast<uint64_t>(widths[l]), static_cast<uint64_t>(width)}, W)
            .f64(q + std::to_string(l) + ".bias", {static_cast<uint64_t>(widths[l])}, b);
        width = widths[l];
      }
    }
  }
  return w;
}

bool same_bits(double a, double b) { return std::memcmp(&a, &b, sizeof(double)) == 0; }

void check_blocks(int n_elements, int M, bool shared, int64_t nin, const std::vector<int64_t>& widths,
                  const std::string& acts) {
  const ModelFile f = ModelFile::from_bytes(networks(n_elements, M, shared, nin, widths, acts).bytes(), "<nets>");
  const AtomicNetworks nets = AtomicNetworks::from_file(f, "network.", "scaling.", std::vector<int64_t>(n_elements, nin), 1);
  AtomicNetworks::Workspace ws;
  nets.prepare(ws);
  const int n_max = AtomicNetworks::kMaxBlock + 3;  // more than one block: split by evaluate_block
  std::vector<double> G(n_max * nin);
  for (size_t q = 0; q < G.size(); ++q) G[q] = std::sin(0.37 * static_cast<double>(q)) * 2.0;
  for (int k = 0; k < n_elements; ++k)
    for (int n = 1; n <= n_max; ++n) {
      std::vector<const double*> rows(n);
      std::vector<double> grad(n * nin, -1.0), out(n * M, -1.0);
      std::vector<double*> grows(n);
      for (int c = 0; c < n; ++c) {
        rows[c] = &G[c * nin];
        grows[c] = &grad[c * nin];
      }
      nets.evaluate_block(k, n, rows.data(), out.data(), grows.data(), ws);
      std::vector<double> e_only(n * M, -1.0);
      nets.evaluate_block(k, n, rows.data(), e_only.data(), nullptr, ws);
      // each member's own gradient (the uncertainty path), with and without the mean's
      std::vector<double> mgrad(n * M * nin, -1.0), grad2(n * nin, -1.0), out2(n * M, -1.0);
      std::vector<double*> mrows(n), g2rows(n);
      for (int c = 0; c < n; ++c) {
        mrows[c] = &mgrad[c * M * nin];
        g2rows[c] = &grad2[c * nin];
      }
      nets.evaluate_block(k, n, rows.data(), out2.data(), g2rows.data(), ws, mrows.data());
      int mismatches = 0;
      for (int c = 0; c < n; ++c) {
        std::vector<double> y(M), g(nin), y2(M), g2(nin), mg(M * nin);
        nets.evaluate(k, rows[c], y.data(), g.data(), ws);
        nets.evaluate(k, rows[c], y2.data(), g2.data(), ws, mg.data());
        for (int m = 0; m < M; ++m) {
          mismatches += !same_bits(y[m], out[c * M + m]) + !same_bits(y[m], e_only[c * M + m]) +
                        !same_bits(y2[m], out2[c * M + m]);
          CHECK(std::isfinite(y[m]));
        }
        for (int64_t q = 0; q < nin; ++q)
          mismatches += !same_bits(g[q], grad[c * nin + q]) + !same_bits(g2[q], grad2[c * nin + q]);
        for (int64_t q = 0; q < M * nin; ++q) mismatches += !same_bits(mg[q], mgrad[c * M * nin + q]);
      }
      if (mismatches) std::printf("element %d, block of %d: %d values differ\n", k, n, mismatches);
      CHECK(mismatches == 0);
    }
}
}  // namespace

AF_TEST(networks, block_equals_single_wide) { check_blocks(2, 1, false, 72, {128, 128, 1}, "silu,silu,linear"); }

AF_TEST(networks, block_equals_single_odd_widths_committee) {
  check_blocks(3, 3, false, 13, {25, 9, 1}, "tanh,sigmoid,linear");
}

AF_TEST(networks, block_equals_single_shared) { check_blocks(2, 2, true, 17, {40, 1}, "gaussian,linear"); }

AF_TEST(networks, block_equals_single_softplus_one_layer) {
  check_blocks(1, 2, false, 8, {16, 1}, "softplus,linear");
  check_blocks(1, 1, false, 5, {1}, "linear");
}
