// Thread scaling of the core's Ewald sum (src/electrostatics/ewald.hpp), without Python: the
// water-like system of bench_ewald.py (O -0.8 e, H +0.4 e on a jittered grid at 0.1 atoms/A^3),
// timed for 1, 2, 4, ... threads; every thread count must give bit-identical results.
//
// Build (core-only, portable instruction set, static so that it runs on a bare machine):
//   cmake -S . -B build-core -DATOMFORGE_PYTHON=OFF -DATOMFORGE_CUDA=OFF -DATOMFORGE_LAMMPS_PLUGIN=OFF \
//         -DATOMFORGE_OPENMM_PLUGIN=OFF -DATOMFORGE_NATIVE_ARCH=OFF && cmake --build build-core -j
//   g++ -O2 -std=c++17 -fopenmp -static -Icpp/include -Icpp/src benchmarks/ewald_threads.cpp \
//       build-core/cpp/libatomforge_core.a -o ewald_threads
// Run: ./ewald_threads [atoms=3000] [accuracy=1e-8] [max_threads=16]
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

#include "electrostatics/ewald.hpp"

int main(int argc, char** argv) {
  const int n = argc > 1 ? std::atoi(argv[1]) : 3000;
  const double acc = argc > 2 ? std::atof(argv[2]) : 1e-8;
  const int tmax = argc > 3 ? std::atoi(argv[3]) : 16;
  const double L = std::cbrt(n / 0.1);
  const int m = static_cast<int>(std::ceil(std::cbrt(static_cast<double>(n))));
  std::mt19937_64 rng(0);
  std::uniform_real_distribution<double> u(0.0, 0.3);
  std::vector<double> x, q;
  for (int i = 0; i < n; ++i) {
    const int a = i / (m * m), b = (i / m) % m, c = i % m;
    x.push_back(a * L / m + u(rng));
    x.push_back(b * L / m + u(rng));
    x.push_back(c * L / m + u(rng));
    q.push_back(i % 3 == 0 ? -0.8 : 0.4);
  }
  double mean = 0.0;
  for (double v : q) mean += v / n;
  for (double& v : q) v -= mean;
  const double cell[9] = {L, 0, 0, 0, L, 0, 0, 0, L};
  atomforge::ElectrostaticsResult ref;
  std::printf("| threads | time (s) | speed-up | identical to 1 thread |\n|---|---|---|---|\n");
  double t1 = 0.0;
  for (int t = 1; t <= tmax; t *= 2) {
    atomforge::EwaldOptions o;
    o.accuracy = acc;
    o.n_threads = t;
    double best = 1e30;
    atomforge::ElectrostaticsResult r;
    for (int rep = 0; rep < 3; ++rep) {
      const auto s = std::chrono::steady_clock::now();
      r = atomforge::electrostatics(x.data(), q.data(), nullptr, n, cell, true, o);
      best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - s).count());
    }
    if (t == 1) {
      ref = r;
      t1 = best;
    }
    const bool same = r.energy == ref.energy && r.forces == ref.forces && r.potential == ref.potential;
    std::printf("| %d | %.4g | %.2f | %s |\n", t, best, t1 / best, same ? "yes" : "NO");
  }
  std::printf("atoms %d, accuracy %g, alpha %.4f, r_cut %.3f, k vectors %lld, energy %.12f eV\n", n, acc,
              ref.parameters.alpha, ref.parameters.r_cut, static_cast<long long>(ref.parameters.n_kvectors), ref.energy);
  return 0;
}
