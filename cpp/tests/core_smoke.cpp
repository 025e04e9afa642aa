// C++-only smoke test of the core (no Python): builds a neighbour list for a periodic dimer
// chain and an O-H-H molecule, checks G2 against its closed form, the VJP force against a
// central difference, and that bad input throws atomforge::InvalidInput instead of crashing.
#include <array>
#include <cmath>
#include <cstdio>
#include <vector>

#include "atomforge/errors.hpp"
#include "atomforge/neighbor_list.hpp"
#include "atomforge/symmetry_functions.hpp"

using namespace atomforge;

static int failures = 0;
#define CHECK(cond, msg)                                  \
  do {                                                    \
    if (!(cond)) {                                        \
      std::printf("FAIL: %s (%s:%d)\n", msg, __FILE__, __LINE__); \
      ++failures;                                         \
    }                                                     \
  } while (0)

int main() {
  // One G2 (eta = 0.5, r_s = 0, r_c = 3, cosine cutoff) and one G4 for a single element.
  std::vector<SymmetryFunctionSpec> specs(2);
  specs[0].type = SymmetryFunctionType::G2;
  specs[0].eta = 0.5;
  specs[0].r_c = 3.0;
  specs[1].type = SymmetryFunctionType::G4;
  specs[1].neighbor2 = 0;
  specs[1].eta = 0.1;
  specs[1].r_c = 3.0;
  specs[1].lambda = -1.0;
  specs[1].zeta = 2.0;
  SymmetryFunctions sf(1, specs, CutoffType::Cosine);

  // Periodic chain: one atom in a 2.0 A cubic cell, periodic along x only -> neighbours at +-2.
  const double pos[3] = {0.1, 0.2, 0.3};
  const double cell[9] = {2.0, 0, 0, 0, 10.0, 0, 0, 0, 10.0};
  NeighborList nl = build_neighbor_list(pos, 1, cell, {true, false, false}, sf.max_cutoff());
  const int32_t species = 0;
  nl.set_species(&species);
  CHECK(nl.n_pairs() == 2, "two images within r_c");
  std::vector<double> G(sf.n_features());
  sf.compute(nl.view(), G.data(), 1);
  const double pi = 3.14159265358979323846;
  const double fc = 0.5 * (std::cos(pi * 2.0 / 3.0) + 1.0);
  const double g2 = 2.0 * std::exp(-0.5 * 4.0) * fc;
  CHECK(std::fabs(G[0] - g2) < 1e-14, "G2 closed form");
  // G4 of a collinear pair with lambda = -1: 2^(1-2) (1 + 1)^2 exp(-0.1 (4 + 4 + 16)) fc fc fc(4)=0
  CHECK(std::fabs(G[1]) < 1e-15, "G4 vanishes when r_jk > r_c");

  // Three atoms, no periodicity: VJP force vs central difference of E = G.sum().
  std::vector<double> x = {0.0, 0.0, 0.0, 0.96, 0.0, 0.0, -0.24, 0.93, 0.0};
  const double zero_cell[9] = {0};
  auto energy = [&](const std::vector<double>& p) {
    NeighborList n = build_neighbor_list(p.data(), 3, zero_cell, {false, false, false}, 3.0);
    const int32_t s[3] = {0, 0, 0};
    n.set_species(s);
    std::vector<double> g(3 * sf.n_features());
    sf.compute(n.view(), g.data(), 1);
    double e = 0;
    for (double v : g) e += v;
    return e;
  };
  NeighborList n3 = build_neighbor_list(x.data(), 3, zero_cell, {false, false, false}, 3.0);
  const int32_t s3[3] = {0, 0, 0};
  n3.set_species(s3);
  std::vector<double> w(3 * sf.n_features(), 1.0), F(3 * n3.n_total()), W(9);
  sf.vjp(n3.view(), w.data(), F.data(), W.data(), nullptr, 1);
  const double h = 1e-5;
  for (int k = 0; k < 9; ++k) {
    std::vector<double> p = x, m = x;
    p[k] += h;
    m[k] -= h;
    const double fd = -(energy(p) - energy(m)) / (2 * h);
    CHECK(std::fabs(fd - F[k]) < 1e-7, "VJP force matches finite difference");
  }

  // Bad input throws.
  bool threw = false;
  try {
    const double bad[3] = {NAN, 0, 0};
    build_neighbor_list(bad, 1, zero_cell, {false, false, false}, 3.0);
  } catch (const InvalidInput&) {
    threw = true;
  }
  CHECK(threw, "NaN position throws InvalidInput");
  threw = false;
  try {
    specs[0].r_c = -1.0;
    SymmetryFunctions bad(1, specs, CutoffType::Cosine);
  } catch (const InvalidInput&) {
    threw = true;
  }
  CHECK(threw, "negative r_c throws InvalidInput");

  std::printf("%s: %d failure(s)\n", failures ? "FAILED" : "core smoke test passed", failures);
  return failures ? 1 : 0;
}
