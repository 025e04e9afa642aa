// Model type "dipole" and the total-charge scheme (atomforge/charges.hpp), without Python.
#include <cmath>
#include <vector>

#include "atomforge/charges.hpp"
#include "atomforge/engine.hpp"
#include "atomforge/errors.hpp"
#include "atomforge/model.hpp"
#include "atomforge/model_file.hpp"
#include "harness.hpp"

using namespace atomforge;

namespace {
// Two elements (H, O), one G2 each; raw charge q~ = ref_k + 0.5 * (w_k G + b_k); weights
// softplus(v_k G + c_k) + 1e-3 when weighted.
std::string tiny_dipole(bool weighted, const std::string& charge_unit = "e") {
  ModelFileWriter w;
  w.string("model_type", "dipole")
      .string("units.energy", "eV")
      .string("units.length", "Angstrom")
      .string("units.charge", charge_unit)
      .i64("species", {2}, {1, 8})
      .string("descriptor.type", "acsf")
      .string("descriptor.cutoff_function", "cos")
      .f64("descriptor.functions", {2, 9}, {2, 0, 1, -1, 0.5, 0, 4.0, 1, 1, 2, 1, 0, -1, 0.5, 0, 4.0, 1, 1})
      .string("charge.scheme", weighted ? "weighted" : "uniform")
      .f64("charge.reference", {2}, {0.4, -0.8})
      .f64("charge.scale", 0.5)
      .i64("committee_size", 1);
  for (int k = 0; k < 2; ++k) {
    const std::string s = "charge_scaling." + std::to_string(k) + ".";
    w.f64(s + "shift", {1}, {0.1}).f64(s + "scale", {1}, {2.0}).f64(s + "offset", 0.0);
    const std::string n = "charge_network.0." + std::to_string(k) + ".";
    w.string("charge_network." + std::to_string(k) + ".activations", "linear")
        .i64(n + "n_layers", 1)
        .f64(n + "0.weight", {1, 1}, {k ? -0.7 : 1.3})
        .f64(n + "0.bias", {1}, {k ? 0.2 : -0.1});
    if (weighted) {
      const std::string m = "weight_network.0." + std::to_string(k) + ".";
      w.string("weight_network." + std::to_string(k) + ".activations", "linear")
          .i64(m + "n_layers", 1)
          .f64(m + "0.weight", {1, 1}, {k ? 0.9 : -0.4})
          .f64(m + "0.bias", {1}, {k ? 0.3 : 0.5});
    }
  }
  return w.bytes();
}
double softplus(double z) { return std::log1p(std::exp(z)); }
}  // namespace

AF_TEST(dipole, charges_sum_to_Q_and_match_the_formula) {
  for (bool weighted : {false, true}) {
    auto m = load_model(ModelFile::from_bytes(tiny_dipole(weighted), "tiny"));
    CHECK(m->model_type() == "dipole");
    CHECK(m->capabilities() == (kCharges | kDipole));
    // a water molecule away from the origin, Q = +1
    const double x[9] = {3.0, 1.0, -2.0, 3.96, 1.0, -2.0, 2.76, 1.93, -2.0}, cell[9] = {0};
    NeighborList nl = build_neighbor_list(x, 3, cell, {false, false, false}, m->cutoff());
    const int32_t s[3] = {1, 0, 0};
    nl.set_species(s);
    ComputeRequest req;
    req.total_charge = 1.0;
    ModelOutput out;
    m->compute(nl.view(), req, out);
    CHECK(out.charges.size() == 3 && out.dipole.size() == 3 && out.charge_partials.size() == 6);
    CHECK(out.forces.empty() && out.atomic_energies.empty());
    // the formula by hand: G2 of each atom over the other element's neighbours
    auto fc = [](double r) { return 0.5 * (std::cos(M_PI * r / 4.0) + 1.0); };
    auto dist = [&](int a, int b) {
      return std::sqrt(std::pow(x[3 * a] - x[3 * b], 2) + std::pow(x[3 * a + 1] - x[3 * b + 1], 2) +
                       std::pow(x[3 * a + 2] - x[3 * b + 2], 2));
    };
    auto g2 = [&](double r) { return std::exp(-0.5 * r * r) * fc(r); };
    const double G[3] = {g2(dist(0, 1)) + g2(dist(0, 2)), g2(dist(1, 0)), g2(dist(2, 0))};
    double qt[3], w[3], sq = 0, sw = 0;
    for (int a = 0; a < 3; ++a) {
      const int k = s[a];
      const double xs = (G[a] - 0.1) * 2.0;
      qt[a] = (k ? -0.8 : 0.4) + 0.5 * ((k ? -0.7 : 1.3) * xs + (k ? 0.2 : -0.1));
      w[a] = weighted ? softplus((k ? 0.9 : -0.4) * xs + (k ? 0.3 : 0.5)) + 1e-3 : 1.0;
      sq += qt[a];
      sw += w[a];
    }
    double sum = 0, mu[3] = {0, 0, 0};
    for (int a = 0; a < 3; ++a) {
      const double q = qt[a] - w[a] * (sq - 1.0) / sw;
      CHECK_NEAR(out.charges[a], q, 1e-14);
      sum += out.charges[a];
      for (int d = 0; d < 3; ++d) mu[d] += q * x[3 * a + d];
    }
    CHECK_NEAR(sum, 1.0, 1e-14);
    for (int d = 0; d < 3; ++d) CHECK_NEAR(out.dipole[d], mu[d], 1e-13);
  }
}

AF_TEST(dipole, split_system_gives_the_same_charges) {
  // charge_partial_sums over two parts, added, then finish_charges: the same as all at once
  const double partials[8] = {0.3, 1.2, -0.7, 0.8, 0.45, 2.0, -0.2, 0.5};  // 4 centres, M = 1
  double all[2], a[2], b[2], q_all[4], q_split[4];
  charge_partial_sums(partials, 4, 1, all);
  finish_charges(partials, 4, 1, all, -1.0, q_all);
  charge_partial_sums(partials, 2, 1, a);
  charge_partial_sums(partials + 4, 2, 1, b);
  const double g[2] = {a[0] + b[0], a[1] + b[1]};
  finish_charges(partials, 2, 1, g, -1.0, q_split);
  finish_charges(partials + 4, 2, 1, g, -1.0, q_split + 2);
  double sum = 0;
  for (int c = 0; c < 4; ++c) {
    CHECK_NEAR(q_split[c], q_all[c], 1e-15);
    sum += q_all[c];
  }
  CHECK_NEAR(sum, -1.0, 1e-14);
  const double zero[2] = {0.5, 0.0};
  CHECK_THROWS(finish_charges(partials, 4, 1, zero, 0.0, q_all), "not finite and positive");
}

AF_TEST(dipole, engines_refuse_it_as_a_potential_and_wrong_units) {
  EngineModel em(tiny_dipole(true), "tiny.afm", engine_units("metal"));
  CHECK_THROWS(em.require(kEnergy, "pair_style atomforge"),
               "pair_style atomforge needs a model that provides energies and forces, but tiny.afm is a 'dipole' model");
  em.require(kCharges | kDipole, "compute atomforge/dipole");  // no throw
  CHECK_THROWS(load_model(ModelFile::from_bytes(tiny_dipole(false, "C"), "c.afm")), "units.charge");
}
