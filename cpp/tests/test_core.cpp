// Model file container, model registry, units table, engine adapter, threads.
#include <vector>

#include "atomforge/engine.hpp"
#include "atomforge/errors.hpp"
#include "atomforge/model.hpp"
#include "atomforge/model_file.hpp"
#include "atomforge/units.hpp"
#include "common/threads.hpp"
#include "harness.hpp"

using namespace atomforge;

namespace {
// A one-element network potential: E_i = ref + scale * (w . G_i + b), G = one G2 function.
std::string tiny_model(double weight = 0.7) {
  ModelFileWriter w;
  w.string("model_type", "bpnn")
      .string("units.energy", "eV")
      .string("units.length", "Angstrom")
      .i64("species", {1}, {1})
      .string("descriptor.type", "acsf")
      .string("descriptor.cutoff_function", "cos")
      .f64("descriptor.functions", {1, 9}, {2, 0, 0, -1, 0.5, 0, 3.0, 1, 1})
      .f64("energy.reference", {1}, {-13.6})
      .f64("energy.scale", 2.0)
      .i64("committee_size", 1)
      .f64("scaling.0.shift", {1}, {0.0})
      .f64("scaling.0.scale", {1}, {1.0})
      .f64("scaling.0.offset", 0.0)
      .string("network.0.activations", "linear")
      .i64("network.0.0.n_layers", 1)
      .f64("network.0.0.0.weight", {1, 1}, {weight})
      .f64("network.0.0.0.bias", {1}, {0.1});
  return w.bytes();
}
}  // namespace

AF_TEST(core, model_file_round_trip_and_corruption) {
  const std::string b = tiny_model();
  ModelFile f = ModelFile::from_bytes(b, "tiny");
  CHECK(f.string("model_type") == "bpnn");
  CHECK_NEAR(f.f64_scalar("energy.scale"), 2.0, 0);
  std::string bad = b;
  bad[bad.size() / 2] ^= 0x5A;
  CHECK_THROWS(ModelFile::from_bytes(bad, "x.afm"), "checksum mismatch");
  CHECK_THROWS(ModelFile::from_bytes(b.substr(0, 30), "x.afm"), "x.afm");
  CHECK_THROWS(ModelFile::from_bytes("garbage-garbage-garbage", "x.afm"), "bad magic");
}

AF_TEST(core, model_registry_builds_and_evaluates) {
  auto m = load_model(ModelFile::from_bytes(tiny_model(), "tiny"));
  CHECK(m->model_type() == "bpnn");
  CHECK(m->capabilities() & kEnergy);
  CHECK(m->committee_size() == 1);
  // H2 at 1 A: G_i = exp(-0.5) fc(1), E = 2 * (-13.6 + 2 (0.7 G + 0.1))
  const double x[6] = {0, 0, 0, 1.0, 0, 0}, cell[9] = {0};
  NeighborList nl = build_neighbor_list(x, 2, cell, {false, false, false}, m->cutoff());
  const int32_t s[2] = {0, 0};
  nl.set_species(s);
  ModelOutput out;
  m->compute(nl.view(), ComputeRequest(), out);
  const double fc = 0.5 * (std::cos(3.14159265358979323846 / 3.0) + 1.0);
  CHECK_NEAR(out.energy, 2 * (-13.6 + 2.0 * (0.7 * std::exp(-0.5) * fc + 0.1)), 1e-12);
  CHECK_NEAR(out.forces[0], -out.forces[3], 1e-14);
  ModelFileWriter w;
  w.string("model_type", "transformer");
  CHECK_THROWS(load_model(ModelFile::from_bytes(w.bytes(), "m.afm")), "unsupported model_type 'transformer'");
  CHECK_THROWS(load_model(ModelFile::from_bytes(w.bytes(), "m.afm")), "bpnn, sgdml");
}

AF_TEST(core, units_table) {
  CHECK_NEAR(units::kEVInKJPerMol, 96.48533212331002, 1e-12);
  CHECK_NEAR(units::kEVInKcalPerMol, 23.060547830619026, 1e-12);
  CHECK_NEAR(units::kHartreeInEV / units::kBohrInAngstrom, 51.422067476325886, 1e-10);
  CHECK_NEAR(units::kDebyeInEAngstrom, 0.20819433270935594, 1e-15);
  int n = 0;
  const units::Constant* c = units::constants(&n);
  CHECK(n >= 10 && c[0].value > 0);
}

AF_TEST(core, engine_adapter_converts_units_and_maps_elements) {
  EngineModel metal(tiny_model(), "tiny", engine_units("metal"));
  EngineModel real(tiny_model(), "tiny", engine_units("real"));
  EngineModel omm(tiny_model(), "tiny", engine_units("openmm"));
  CHECK_NEAR(omm.cutoff(), 0.3, 1e-15);  // nm
  CHECK(metal.species_of_symbol("H", "type 1") == 0);
  CHECK(metal.species_of_symbol("NULL", "type 2") == -1);
  CHECK_THROWS(metal.species_of_symbol("O", "atom type 2"), "atom type 2 is O, an element model tiny does not cover");
  CHECK_THROWS(metal.species_of_symbol("Xx", "atom type 3"), "not a chemical element");
  CHECK_THROWS(engine_units("lj"), "unsupported units 'lj'");
  const double x_a[6] = {0, 0, 0, 1.0, 0.2, 0}, x_nm[6] = {0, 0, 0, 0.1, 0.02, 0};
  const int32_t s[2] = {0, 0};
  EngineOutput om, oreal, oomm;
  metal.compute_positions(x_a, 2, nullptr, {false, false, false}, s, ComputeRequest(), om);
  real.compute_positions(x_a, 2, nullptr, {false, false, false}, s, ComputeRequest(), oreal);
  omm.compute_positions(x_nm, 2, nullptr, {false, false, false}, s, ComputeRequest(), oomm);
  CHECK_NEAR(oreal.energy, om.energy * units::kEVInKcalPerMol, 1e-10);
  CHECK_NEAR(oomm.energy, om.energy * units::kEVInKJPerMol, 1e-10);
  for (int k = 0; k < 6; ++k) {
    CHECK_NEAR(oreal.forces[k], om.forces[k] * units::kEVInKcalPerMol, 1e-10);
    CHECK_NEAR(oomm.forces[k], om.forces[k] * units::kEVInKJPerMol * 10.0, 1e-9);
  }
  CHECK_NEAR(oomm.virial[0], om.virial[0] * units::kEVInKJPerMol, 1e-10);
}

AF_TEST(core, thread_counts_are_clamped) {
  CHECK(resolve_threads(100000) == max_threads());
  CHECK(resolve_threads(1) == 1);
  CHECK(resolve_threads(0) >= 1 && resolve_threads(-5) >= 1);
}
