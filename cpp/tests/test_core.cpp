// Model file container, model registry, units table, engine adapter, threads.
#include <cstring>
#include <random>
#include <vector>

#include "atomforge/engine.hpp"
#include "atomforge/errors.hpp"
#include "atomforge/model.hpp"
#include "atomforge/model_file.hpp"
#include "atomforge/units.hpp"
#include "common/threads.hpp"
#include "fixtures.hpp"
#include "harness.hpp"

using namespace atomforge;

namespace {
// A one-element network potential: E_i = ref + scale * (w . G_i + b), G = one G2 function.
std::string tiny_model(double weight = 0.7) { return aftest::tiny_bpnn({weight}).bytes(); }
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

// A seeded mutation loop over the container and the registry (issue 15): every mutated file (bytes
// changed, CRC recomputed) either loads and evaluates, or throws InvalidInput; nothing else
// (another exception type, a crash, a hang or a large allocation).
AF_TEST(core, model_file_fuzz) {
  const std::string base = tiny_model();
  std::mt19937_64 rng(20250715);
  const uint64_t extremes[] = {0, 1, 2, 7, 118, 119, 1ull << 31, 1ull << 40, 1ull << 62, ~0ull, 0x7FF0000000000000ull};
  int loaded = 0, refused = 0;
  for (int c = 0; c < 600; ++c) {
    std::string b = base;
    const size_t body = b.size() - 4;
    if (c % 3 == 0) {  // flip 1..4 bytes
      for (int k = 0, n = 1 + static_cast<int>(rng() % 4); k < n; ++k) b[8 + rng() % (body - 8)] = static_cast<char>(rng());
    } else {  // an 8-byte word (a shape extent, a count, a value) set to an extreme
      const size_t at = 8 + rng() % (body - 16);
      const uint64_t v = extremes[rng() % (sizeof(extremes) / sizeof(extremes[0]))];
      std::memcpy(&b[at], &v, 8);
    }
    const uint32_t crc = crc32(reinterpret_cast<const unsigned char*>(b.data()), body);
    for (int k = 0; k < 4; ++k) b[body + k] = static_cast<char>((crc >> (8 * k)) & 0xFF);
    try {
      auto m = load_model(ModelFile::from_bytes(b, "fuzz"));
      const double x[6] = {0, 0, 0, 1.0, 0, 0}, cell[9] = {0};
      NeighborList nl = build_neighbor_list(x, 2, cell, {false, false, false}, m->cutoff());
      const int32_t s[2] = {0, 0};
      nl.set_species(s);
      ModelOutput o;
      m->compute(nl.view(), ComputeRequest{}, o);
      ++loaded;
    } catch (const InvalidInput& e) {
      if (std::strlen(e.what()) == 0) aftest::fail(__FILE__, __LINE__, "InvalidInput without a message");
      ++refused;
    } catch (const std::exception& e) {
      aftest::fail(__FILE__, __LINE__, std::string("case ") + std::to_string(c) + ": unexpected " + e.what());
    }
  }
  CHECK(loaded + refused == 600);
  CHECK(refused > 300);
}

AF_TEST(core, model_file_limits) {
  // species: distinct atomic numbers 1..118; committee_size bounded by the records present; every
  // float finite; names valid UTF-8 and unique (issue 15)
  auto with = [](const std::function<void(ModelFileWriter&)>& edit) {
    ModelFileWriter w;
    edit(w);
    return w.bytes();
  };
  CHECK_THROWS(ModelFile::from_bytes(with([](ModelFileWriter& w) { w.f64("x", {2}, {1.0, NAN}); }), "f"),
               "record 'x' entry 1 is not finite (nan)");
  CHECK_THROWS(ModelFile::from_bytes(with([](ModelFileWriter& w) { w.f64("x", 1.0).f64("x", 2.0); }), "f"),
               "record 'x' appears twice");
  CHECK_THROWS(ModelFile::from_bytes(with([](ModelFileWriter& w) { w.string("s", "bp\xffnn"); }), "f"),
               "record 's' is not valid UTF-8 text");
  CHECK_THROWS(ModelFile::from_bytes(with([](ModelFileWriter& w) { w.f64("na\xffme", 1.0); }), "f"),
               "has a name that is not valid UTF-8 ('na?me')");
  ModelFile f = ModelFile::from_bytes(with([](ModelFileWriter& w) { w.i64("sp", {3}, {1, 8, 1}); }), "f");
  CHECK_THROWS(f.check_species(f.i64_vector("sp"), "sp"), "lists atomic number 1 twice (entries 0 and 2)");
  std::string m = tiny_model();
  ModelFile big = ModelFile::from_bytes(m, "tiny");
  CHECK(big.check_species(big.i64_vector("species"), "species").size() == 1);
  auto committee = [](int64_t M) {
    ModelFileWriter w;
    w.string("model_type", "bpnn").string("units.energy", "eV").string("units.length", "Angstrom")
        .i64("species", {1}, {1}).string("descriptor.type", "acsf").string("descriptor.cutoff_function", "cos")
        .f64("descriptor.functions", {1, 9}, {2, 0, 0, -1, 0.5, 0, 3.0, 1, 1}).f64("energy.reference", {1}, {0.0})
        .f64("energy.scale", 1.0).i64("committee_size", M).f64("scaling.0.shift", {1}, {0.0})
        .f64("scaling.0.scale", {1}, {1.0}).f64("scaling.0.offset", 0.0).string("network.0.activations", "linear")
        .i64("network.0.0.n_layers", 1).f64("network.0.0.0.weight", {1, 1}, {1.0}).f64("network.0.0.0.bias", {1}, {0});
    return w.bytes();
  };
  CHECK_THROWS(load_model(ModelFile::from_bytes(committee(1000000000), "c.afm")),
               "c.afm: record 'committee_size' = 1000000000 is out of range");
  CHECK_THROWS(load_model(ModelFile::from_bytes(committee(2), "c.afm")), "missing record 'network.1.0.n_layers'");
}

AF_TEST(core, min_distance_and_atoms_too_close) {
  const double cell[9] = {5, 0, 0, 0, 5, 0, 0, 0, 5};
  // atom 1 on the periodic image of atom 0 across the x face
  const double x[6] = {1e-10, 1, 1, 5.0 - 1e-10, 1, 1};
  bool thrown = false;
  try {
    build_neighbor_list(x, 2, cell, {true, true, true}, 3.0);
  } catch (const AtomsTooClose& e) {
    thrown = true;
    CHECK(e.i() == 0 && e.j() == 1 && e.shift()[0] == -1 && e.shift()[1] == 0 && e.shift()[2] == 0);
    CHECK_NEAR(e.distance(), 2e-10, 1e-15);
    CHECK(std::string(e.what()).find("atoms 0 and 1 (the periodic image of 1 shifted by (-1, 0, 0) lattice vectors)"
                                     " are 2e-10 A apart (minimum distance 0.1 A)") != std::string::npos);
    CHECK(e.describe("atoms with IDs", "7", "9").find("atoms with IDs 7 and 9 (the periodic image of 9") == 0);
  }
  CHECK(thrown);
  // configurable; 0 keeps refusing coincident atoms
  const double y[6] = {0, 0, 0, 0.05, 0, 0}, z[6] = {0, 0, 0, 0, 0, 0}, none[9] = {0};
  CHECK_THROWS(build_neighbor_list(y, 2, none, {false, false, false}, 3.0), "are 0.05 A apart");
  CHECK(build_neighbor_list(y, 2, none, {false, false, false}, 3.0, 0.01).n_pairs() == 2);
  CHECK_THROWS(build_neighbor_list(z, 2, none, {false, false, false}, 3.0, 0.0), "atoms 0 and 1 are at the same position");
  CHECK_THROWS(build_neighbor_list(y, 2, none, {false, false, false}, 3.0, -1.0), "min_distance must be >= 0");
  // the same threshold on an external view (validate_neighbor_view, as LAMMPS's lists)
  auto m = load_model(ModelFile::from_bytes(tiny_model(), "tiny"));
  NeighborList nl = build_neighbor_list(y, 2, none, {false, false, false}, m->cutoff(), 0.0);
  const int32_t s[2] = {0, 0};
  nl.set_species(s);
  ModelOutput o;
  CHECK_THROWS(m->compute(nl.view(), ComputeRequest{}, o), "atoms 0 and 1 are 0.05 A apart");
  ComputeRequest loose;
  loose.min_distance = 0.01;
  m->compute(nl.view(), loose, o);
  CHECK(std::isfinite(o.energy));
  // memory bounds of tiny periodic cells, before allocating
  const double tiny[9] = {0.1, 0, 0, 0, 0.1, 0, 0, 0, 0.1}, speck[9] = {0.01, 0, 0, 0, 0.01, 0, 0, 0, 0.01};
  CHECK_THROWS(build_neighbor_list(z, 1, tiny, {true, true, true}, 4.5), "neighbours within the cutoff 4.5 A");
  CHECK_THROWS(build_neighbor_list(z, 1, speck, {true, true, true}, 4.5), "periodic images of atoms would be needed");
}
