// Electrostatics (src/electrostatics/ewald.hpp): closed forms, alpha independence, thread
// independence, finite differences and bad input. The Python tests (tests/test_electrostatics.py)
// add NumPy references (direct lattice sums, erf sums) and more geometries.
#include <cmath>
#include <vector>

#include "atomforge/errors.hpp"
#include "atomforge/units.hpp"
#include "electrostatics/ewald.hpp"
#include "harness.hpp"

using namespace atomforge;

namespace {

constexpr double kMadelungNaCl = 1.747564594633182;  // rock salt, per ion pair, nearest distance

// Conventional rock-salt cell of edge a: 4 Na+ and 4 Cl-.
void rock_salt(double a, std::vector<double>& x, std::vector<double>& q, std::vector<double>& cell) {
  const double f[4][3] = {{0, 0, 0}, {0, 0.5, 0.5}, {0.5, 0, 0.5}, {0.5, 0.5, 0}};
  x.clear();
  q.clear();
  for (int s = 0; s < 2; ++s) {
    for (const auto& p : f) {
      for (int d = 0; d < 3; ++d) x.push_back(a * (p[d] + (s == 1 && d == 0 ? 0.5 : 0.0)));
      q.push_back(s == 0 ? 1.0 : -1.0);
    }
  }
  cell = {a, 0, 0, 0, a, 0, 0, 0, a};
}

}  // namespace

AF_TEST(electrostatics, coulomb_constant_codata_2018) {
  CHECK_NEAR(units::kCoulombInEVAngstrom, 14.399645478425668, 1e-12);
}

AF_TEST(electrostatics, rock_salt_madelung_constant) {
  std::vector<double> x, q, cell;
  const double a = 5.64;
  rock_salt(a, x, q, cell);
  EwaldOptions o;
  o.accuracy = 1e-12;
  const auto r = electrostatics(x.data(), q.data(), nullptr, 8, cell.data(), true, o);
  const double m = -r.energy / 4.0 * (a / 2.0) / units::kCoulombInEVAngstrom;
  CHECK_NEAR(m, kMadelungNaCl, 1e-10);
  // every ion sits at a centre of symmetry: no force; potential +-M k_e / r0
  for (int i = 0; i < 8; ++i) {
    for (int d = 0; d < 3; ++d) CHECK_NEAR(r.forces[3 * i + d], 0.0, 1e-9);
    CHECK_NEAR(r.potential[i], -q[i] * kMadelungNaCl * units::kCoulombInEVAngstrom / (a / 2.0), 1e-8);
  }
}

AF_TEST(electrostatics, energy_independent_of_alpha_and_threads) {
  const double x[] = {0.1, 0.2, 0.3, 2.1, 0.4, 1.0, 1.5, 2.6, 0.2, 3.0, 2.9, 2.2};
  const double q[] = {0.7, -0.4, -0.5, 0.5};  // net charge 0.3: background term
  const double s[] = {0.5, 0.9, 0.0, 0.3};
  const double cell[] = {4.0, 0, 0, 0.8, 3.7, 0, -0.5, 0.6, 4.2};
  EwaldOptions o;
  o.accuracy = 1e-13;
  o.n_threads = 1;
  const auto ref = electrostatics(x, q, s, 4, cell, true, o);
  for (double alpha : {0.3, 0.6, 1.2}) {
    o.alpha = alpha;
    o.n_threads = 2;
    const auto r = electrostatics(x, q, s, 4, cell, true, o);
    CHECK_NEAR(r.energy, ref.energy, 1e-10);
    for (int k = 0; k < 12; ++k) CHECK_NEAR(r.forces[k], ref.forces[k], 1e-9);
    for (int k = 0; k < 9; ++k) CHECK_NEAR(r.virial[k], ref.virial[k], 1e-9);
  }
  o.alpha = 0.0;
  const auto r2 = electrostatics(x, q, s, 4, cell, true, o);  // same parameters, 2 threads
  CHECK(r2.energy == ref.energy);
  for (int k = 0; k < 12; ++k) CHECK(r2.forces[k] == ref.forces[k]);
}

AF_TEST(electrostatics, open_boundaries_two_gaussians_and_forces) {
  const double x[] = {0, 0, 0, 0.3, 0.4, 1.1};
  const double q[] = {0.8, -0.3};
  const double s[] = {0.4, 0.7};
  const auto r = electrostatics(x, q, s, 2, nullptr, false);
  const double d = std::sqrt(0.09 + 0.16 + 1.21), g = std::sqrt(2 * (0.16 + 0.49));
  CHECK_NEAR(r.energy, units::kCoulombInEVAngstrom * q[0] * q[1] * std::erf(d / g) / d, 1e-13);
  // finite differences of the energy
  const double h = 1e-5;
  for (int k = 0; k < 6; ++k) {
    double xp[6], xm[6];
    for (int m = 0; m < 6; ++m) xp[m] = xm[m] = x[m];
    xp[k] += h;
    xm[k] -= h;
    const double fd = -(electrostatics(xp, q, s, 2, nullptr, false).energy -
                        electrostatics(xm, q, s, 2, nullptr, false).energy) / (2 * h);
    CHECK_NEAR(r.forces[k], fd, 1e-8);
  }
}

AF_TEST(electrostatics, bad_input_throws) {
  const double x[] = {0, 0, 0, 1, 1, 1};
  const double q[] = {1.0, -1.0};
  const double qbad[] = {1.0, NAN};
  const double sbad[] = {0.1, -0.2};
  const double cell[] = {3, 0, 0, 0, 3, 0, 0, 0, 3};
  const double flat[] = {3, 0, 0, 0, 3, 0, 3, 3, 0};
  CHECK_THROWS(electrostatics(x, qbad, nullptr, 2, cell, true), "charge of atom 1 is not finite");
  CHECK_THROWS(electrostatics(x, q, sbad, 2, cell, true), "sigma of atom 1");
  CHECK_THROWS(electrostatics(x, q, nullptr, 2, flat, true), "cell is singular");
  EwaldOptions o;
  o.accuracy = 1e-20;
  CHECK_THROWS(electrostatics(x, q, nullptr, 2, cell, true, o), "accuracy must be in");
  o.accuracy = 0.5;
  CHECK_THROWS(electrostatics(x, q, nullptr, 2, cell, true, o), "accuracy must be in");
  const double close[] = {0, 0, 0, 0.05, 0, 0};
  CHECK_THROWS(electrostatics(close, q, nullptr, 2, nullptr, false), "");
  bool too_close = false;
  try {
    electrostatics(close, q, nullptr, 2, cell, true);
  } catch (const AtomsTooClose&) {
    too_close = true;
  }
  CHECK(too_close);
}
