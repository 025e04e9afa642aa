// Times scatter_pair_gradients (the serial step after the parallel per-centre passes) on a
// neighbour list dumped by bench_scatter.py, with random pair gradients. Built by bench_scatter.py
// against a core source tree's descriptors/common.cpp, so that revisions can be compared.
// Usage: scatter_timing LIST.bin [REPEATS]; prints min and median milliseconds and ns per pair.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

#include "descriptors/common.hpp"

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: scatter_timing LIST.bin [REPEATS]\n");
    return 2;
  }
  const int repeats = argc > 2 ? std::atoi(argv[2]) : 21;
  std::FILE* f = std::fopen(argv[1], "rb");
  if (!f) {
    std::fprintf(stderr, "%s: cannot open\n", argv[1]);
    return 2;
  }
  int64_t h[3];  // n_total, n_centres, n_pairs
  if (std::fread(h, 8, 3, f) != 3 || h[0] <= 0 || h[1] <= 0 || h[1] > h[0] || h[2] < 0) {
    std::fprintf(stderr, "%s: bad header\n", argv[1]);
    return 2;
  }
  std::vector<double> pos(3 * h[0]);
  std::vector<int64_t> off(h[1] + 1), nb(h[2]);
  if (std::fread(pos.data(), 8, pos.size(), f) != pos.size() || std::fread(off.data(), 8, off.size(), f) != off.size() ||
      std::fread(nb.data(), 8, nb.size(), f) != nb.size() || off[0] != 0 || off[h[1]] != h[2]) {
    std::fprintf(stderr, "%s: truncated or inconsistent\n", argv[1]);
    return 2;
  }
  std::fclose(f);
  for (int64_t j : nb)
    if (j < 0 || j >= h[0]) {
      std::fprintf(stderr, "%s: neighbour index out of range\n", argv[1]);
      return 2;
    }
  std::vector<int32_t> species(h[0], 0);
  atomforge::NeighborView v;
  v.positions = pos.data();
  v.species = species.data();
  v.n_total = h[0];
  v.n_centres = h[1];
  v.offsets = off.data();
  v.neighbors = nb.data();
  std::vector<double> g(3 * h[2]);
  std::mt19937_64 rng(1);
  std::normal_distribution<double> normal;
  for (double& x : g) x = normal(rng);
  std::vector<double> forces(3 * h[0]);
  double virial[9];
  for (int k = 0; k < 3; ++k) atomforge::scatter_pair_gradients(v, g.data(), forces.data(), virial, nullptr);
  std::vector<double> t;
  for (int r = 0; r < repeats; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    atomforge::scatter_pair_gradients(v, g.data(), forces.data(), virial, nullptr);
    t.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(t.begin(), t.end());
  std::printf("%.4f %.4f %.3f %.17g\n", t[0] * 1e3, t[t.size() / 2] * 1e3, t[0] * 1e9 / h[2], virial[0]);
  return 0;
}
