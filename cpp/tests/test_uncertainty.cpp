// Committee uncertainty and extrapolation counts in the core: the force deviation helper, the
// engine adapter's folded per-atom deviation of a 2-member committee in a small periodic cell
// (analytic: linear members differ only by their weight), calibration and range records.
#include <cmath>
#include <string>
#include <vector>

#include "atomforge/engine.hpp"
#include "atomforge/errors.hpp"
#include "atomforge/model.hpp"
#include "atomforge/model_file.hpp"
#include "atomforge/uncertainty.hpp"
#include "fixtures.hpp"
#include "harness.hpp"

using namespace atomforge;

namespace {
// One element (H), one G2 feature, members E_i^m = ref + scale * (w_m G_i + b).
ModelFileWriter committee(double w0, double w1) { return aftest::tiny_bpnn({w0, w1}); }
}  // namespace

AF_TEST(uncertainty, force_deviation_formula) {
  // two members, two atoms: deviation = half the difference's length
  const std::vector<double> f = {1, 0, 0, 0, 2, 0, /* member 1 */ 3, 0, 0, 0, 2, 4};
  std::vector<double> eps(2);
  force_deviation(f.data(), 2, 2, 6, 1.0, eps.data());
  CHECK_NEAR(eps[0], 1.0, 1e-15);
  CHECK_NEAR(eps[1], 2.0, 1e-15);
  force_deviation(f.data(), 2, 2, 6, 3.0, eps.data());
  CHECK_NEAR(eps[1], 6.0, 1e-15);
  force_deviation(f.data(), 1, 2, 6, 1.0, eps.data());  // one member: no spread
  CHECK_NEAR(eps[0], 0.0, 0.0);
  CHECK_THROWS(force_deviation(f.data(), 0, 2, 6, 1.0, eps.data()), "M >= 1");
  CHECK_THROWS(force_deviation(f.data(), 2, 2, 5, 1.0, eps.data()), "stride");
}

AF_TEST(uncertainty, folded_deviation_in_a_small_periodic_cell) {
  const double w0 = 0.7, w1 = 1.3;
  EngineModel m(committee(w0, w1).f64("uncertainty.forces_calibration", 2.5).f64("uncertainty.energy_calibration", 0.5)
                    .bytes(), "<c>", engine_units("ev_angstrom"));
  CHECK(m.model().capabilities() & kUncertainty);
  // three H atoms in a 2.6 A cubic cell with a 3 A cutoff: every atom sees images of all (itself too)
  const std::vector<double> pos = {0.1, 0.2, 0.3, 1.2, 0.4, 0.9, 0.5, 1.7, 1.1};
  const double cell[9] = {2.6, 0, 0, 0, 2.6, 0, 0, 0, 2.6};
  const std::vector<int32_t> sp = {0, 0, 0};
  ComputeRequest req;
  req.uncertainty = true;
  EngineOutput out;
  m.compute_positions(pos.data(), 3, cell, {true, true, true}, sp.data(), req, out);
  CHECK(out.forces_uncertainty.size() == 3 && out.member_forces.size() == 2 * 9);
  for (int i = 0; i < 3; ++i) {
    // F^m = w_m V_i: the deviation is |w0 - w1| / |w0 + w1| times the mean force, times c_F
    double fm = 0.0;
    for (int k = 0; k < 3; ++k) fm += out.forces[3 * i + k] * out.forces[3 * i + k];
    CHECK(std::sqrt(fm) > 1e-3);
    CHECK_NEAR(out.forces_uncertainty[i], 2.5 * std::fabs(w0 - w1) / (w0 + w1) * std::sqrt(fm), 1e-12);
    for (int k = 0; k < 3; ++k)
      CHECK_NEAR(0.5 * (out.member_forces[3 * i + k] + out.member_forces[9 + 3 * i + k]), out.forces[3 * i + k], 1e-13);
  }
  CHECK_NEAR(out.energy_uncertainty,
             0.5 * 0.5 * std::fabs(out.committee_energies[0] - out.committee_energies[1]), 1e-12);
  // without the request: no per-member work
  EngineOutput plain;
  m.compute_positions(pos.data(), 3, cell, {true, true, true}, sp.data(), ComputeRequest(), plain);
  CHECK(plain.forces_uncertainty.empty() && plain.member_forces.empty());
}

AF_TEST(uncertainty, extrapolation_counts_and_bad_records) {
  // the feature of every atom here is 0.8-1.1; a range of [0, 0.5] makes every atom extrapolate
  EngineModel m(committee(0.7, 1.3).f64("extrapolation.0.min", {1}, {0.0}).f64("extrapolation.0.max", {1}, {0.5})
                    .bytes(), "<c>", engine_units("ev_angstrom"));
  CHECK(m.model().capabilities() & kFeatureRange);
  const std::vector<double> pos = {0, 0, 0, 0.9, 0, 0, 0, 0.9, 0};
  const std::vector<int32_t> sp = {0, 0, 0};
  EngineOutput out;
  m.compute_positions(pos.data(), 3, nullptr, {false, false, false}, sp.data(), ComputeRequest(), out);
  CHECK(out.extrapolation_features == 3 && out.extrapolation_centres == 3);
  CHECK(out.extrapolation_worst_centre >= 0 && out.extrapolation_worst_feature == 0 && out.extrapolation_worst_excess > 0);
  EngineModel wide(committee(0.7, 1.3).f64("extrapolation.0.min", {1}, {0.0}).f64("extrapolation.0.max", {1}, {10.0})
                       .bytes(), "<c>", engine_units("ev_angstrom"));
  EngineOutput in;
  wide.compute_positions(pos.data(), 3, nullptr, {false, false, false}, sp.data(), ComputeRequest(), in);
  CHECK(in.extrapolation_features == 0 && in.extrapolation_centres == 0);
  CHECK_THROWS(EngineModel(committee(1, 2).f64("uncertainty.forces_calibration", -1.0).bytes(), "<c>",
                           engine_units("metal")), "positive finite");
  CHECK_THROWS(EngineModel(committee(1, 2).f64("extrapolation.0.min", {1}, {2.0}).f64("extrapolation.0.max", {1}, {1.0})
                               .bytes(), "<c>", engine_units("metal")), "not a finite range");
  CHECK_THROWS(EngineModel(committee(1, 2).f64("extrapolation.0.min", {1}, {0.0}).bytes(), "<c>", engine_units("metal")),
               "every element or for none");
  CHECK_THROWS(EngineModel(committee(1, 2).f64("extrapolation.0.min", {2}, {0.0, 0.0})
                               .f64("extrapolation.0.max", {2}, {1.0, 1.0}).bytes(), "<c>", engine_units("metal")),
               "one entry per descriptor feature");
}
