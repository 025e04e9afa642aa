// Symmetry functions through the Descriptor interface: closed forms, VJP against finite
// differences, thread independence, registry, bad input.
#include <cmath>
#include <cstdint>
#include <vector>

#include "atomforge/descriptor.hpp"
#include "atomforge/errors.hpp"
#include "atomforge/model_file.hpp"
#include "common/aligned.hpp"
#include "descriptors/acsf/acsf.hpp"
#include "descriptors/acsf/acsf_kernels.hpp"
#include "descriptors/acsf/acsf_tables.hpp"
#include "harness.hpp"

using namespace atomforge;

namespace {
const double kPi = 3.14159265358979323846;

SymmetryFunctions one_element_set() {
  std::vector<SymmetryFunctionSpec> specs(3);
  specs[0].type = SymmetryFunctionType::G2;
  specs[0].eta = 0.5;
  specs[0].r_c = 3.0;
  specs[1].type = SymmetryFunctionType::G4;
  specs[1].neighbor2 = 0;
  specs[1].eta = 0.1;
  specs[1].r_c = 3.0;
  specs[1].lambda = -1.0;
  specs[1].zeta = 2.0;
  specs[2].type = SymmetryFunctionType::G5;
  specs[2].neighbor2 = 0;
  specs[2].eta = 0.2;
  specs[2].r_s = 0.5;
  specs[2].r_c = 3.0;
  specs[2].lambda = 1.0;
  specs[2].zeta = 4.0;
  return SymmetryFunctions(1, specs, CutoffType::Cosine);
}

double sum_G(const Descriptor& d, const std::vector<double>& x, int n) {
  const double cell[9] = {0};
  NeighborList nl = build_neighbor_list(x.data(), n, cell, {false, false, false}, d.cutoff());
  std::vector<int32_t> s(n, 0);
  nl.set_species(s.data());
  std::vector<double> G(n * d.n_features());
  d.compute(nl.view(), G.data(), 1);
  double e = 0;
  for (double v : G) e += v;
  return e;
}
}  // namespace

AF_TEST(acsf, g2_closed_form_on_a_periodic_chain) {
  SymmetryFunctions sf = one_element_set();
  // one atom in a 2 A cell, periodic along x only: neighbours at +-2 A
  const double pos[3] = {0.1, 0.2, 0.3};
  const double cell[9] = {2.0, 0, 0, 0, 10.0, 0, 0, 0, 10.0};
  NeighborList nl = build_neighbor_list(pos, 1, cell, {true, false, false}, sf.cutoff());
  const int32_t species = 0;
  nl.set_species(&species);
  CHECK(nl.n_pairs() == 2);
  std::vector<double> G(sf.n_features());
  sf.compute(nl.view(), G.data(), 1);
  const double fc = 0.5 * (std::cos(kPi * 2.0 / 3.0) + 1.0);
  CHECK_NEAR(G[0], 2.0 * std::exp(-0.5 * 4.0) * fc, 1e-14);
  CHECK_NEAR(G[1], 0.0, 1e-15);  // G4 of the collinear pair vanishes: r_jk = 4 A > r_c
}

AF_TEST(acsf, vjp_matches_finite_differences_and_is_thread_independent) {
  SymmetryFunctions sf = one_element_set();
  std::vector<double> x = {0.0, 0.0, 0.0, 0.96, 0.0, 0.1, -0.24, 0.93, 0.0, 0.5, 0.5, 1.1};
  const int n = 4;
  const double cell[9] = {0};
  NeighborList nl = build_neighbor_list(x.data(), n, cell, {false, false, false}, sf.cutoff());
  std::vector<int32_t> s(n, 0);
  nl.set_species(s.data());
  std::vector<double> w(n * sf.n_features(), 1.0), F1(3 * nl.n_total()), F2(3 * nl.n_total()), W(9);
  sf.vjp(nl.view(), w.data(), F1.data(), W.data(), nullptr, 1);
  sf.vjp(nl.view(), w.data(), F2.data(), W.data(), nullptr, 2);
  const double h = 1e-5;
  for (int k = 0; k < 3 * n; ++k) {
    std::vector<double> p = x, m = x;
    p[k] += h;
    m[k] -= h;
    CHECK_NEAR(F1[k], -(sum_G(sf, p, n) - sum_G(sf, m, n)) / (2 * h), 1e-8);
    CHECK(F1[k] == F2[k]);
  }
}

AF_TEST(acsf, created_by_the_registry_from_records) {
  ModelFileWriter w;
  w.i64("species", {2}, {1, 8})
      .string("descriptor.type", "acsf")
      .string("descriptor.cutoff_function", "poly2")
      .f64("descriptor.functions", {2, 9}, {2, 0, 1, -1, 0.5, 0, 4.0, 1, 1, 4, 1, 0, 1, 0.1, 0, 4.0, -1, 2});
  auto d = make_descriptor(ModelFile::from_bytes(w.bytes(), "test"));
  CHECK(d->type() == "acsf");
  CHECK(d->n_elements() == 2);
  CHECK(d->n_features(0) == 1 && d->n_features(1) == 1);
  CHECK_NEAR(d->cutoff(), 4.0, 0);
  ModelFileWriter bad;
  bad.i64("species", {1}, {1}).string("descriptor.type", "soap");
  CHECK_THROWS(make_descriptor(ModelFile::from_bytes(bad.bytes(), "m.afm")), "unknown descriptor.type 'soap'");
  CHECK_THROWS(make_descriptor(ModelFile::from_bytes(bad.bytes(), "m.afm")), "knows: acsf");
}

AF_TEST(acsf, bad_input_throws) {
  std::vector<SymmetryFunctionSpec> specs(1);
  specs[0].r_c = -1.0;
  CHECK_THROWS(SymmetryFunctions(1, specs, CutoffType::Cosine), "r_c must be positive");
  specs[0].r_c = 1000.0;
  CHECK_THROWS(SymmetryFunctions(1, specs, CutoffType::Cosine), "exceeds the maximum");
  specs[0].r_c = 3.0;
  specs[0].eta = NAN;
  CHECK_THROWS(SymmetryFunctions(1, specs, CutoffType::Cosine), "finite");
  const double x[6] = {0, 0, 0, 0, 0, 0};
  const double cell[9] = {0};
  CHECK_THROWS(build_neighbor_list(x, 2, cell, {false, false, false}, 3.0), "same position");
  const double nan_x[3] = {NAN, 0, 0};
  CHECK_THROWS(build_neighbor_list(nan_x, 1, cell, {false, false, false}, 3.0), "not finite");
}

AF_TEST(acsf, g5s_parameters_are_checked) {
  std::vector<SymmetryFunctionSpec> specs(1);
  specs[0].type = SymmetryFunctionType::G5s;
  specs[0].neighbor2 = 0;
  specs[0].r_c = 3.0;
  specs[0].zeta = 8.0;
  specs[0].theta_s = 4.0;
  CHECK_THROWS(SymmetryFunctions(1, specs, CutoffType::Cosine), "theta_s must be in [0, pi]");
  specs[0].theta_s = 1.0;
  specs[0].lambda = -1.0;
  CHECK_THROWS(SymmetryFunctions(1, specs, CutoffType::Cosine), "G5s takes no lambda");
  specs[0].type = SymmetryFunctionType::G5;
  CHECK_THROWS(SymmetryFunctions(1, specs, CutoffType::Cosine), "theta_s is a parameter of G5s only");
  specs[0].type = static_cast<SymmetryFunctionType>(7);
  CHECK_THROWS(SymmetryFunctions(1, specs, CutoffType::Cosine), "unknown type (use G2, G4, G5 or G5s)");
}

AF_TEST(acsf, g5s_closed_form_for_one_triplet) {
  // O at the origin, two H at 0.96 A and 104.5 degrees; one G5s function on the H-H pair
  std::vector<SymmetryFunctionSpec> specs(1);
  specs[0].type = SymmetryFunctionType::G5s;
  specs[0].centre = 0;
  specs[0].neighbor1 = 1;
  specs[0].neighbor2 = 1;
  specs[0].eta = 0.5;
  specs[0].r_c = 4.0;
  specs[0].zeta = 32.0;
  specs[0].theta_s = 1.9635;
  SymmetryFunctions sf(2, specs, CutoffType::Cosine);
  const double t = 104.5 * kPi / 180.0;
  const double x[9] = {0, 0, 0, 0.96, 0, 0, 0.96 * std::cos(t), 0.96 * std::sin(t), 0};
  const double cell[9] = {0};
  NeighborList nl = build_neighbor_list(x, 3, cell, {false, false, false}, sf.cutoff());
  const int32_t species[3] = {0, 1, 1};
  nl.set_species(species);
  std::vector<double> G(3 * sf.n_features(), 0.0);
  sf.compute(nl.view(), G.data(), 1);
  const double tt = std::acos(0.95 * std::cos(t));
  const double fc = 0.5 * (std::cos(kPi * 0.96 / 4.0) + 1.0);
  const double expect = std::pow(2.0, -31.0) * std::pow(1.0 + std::cos(tt - 1.9635), 32.0) *
                        std::exp(-0.5 * 2.0 * 0.96 * 0.96) * fc * fc;
  CHECK_NEAR(G[0], expect, 1e-13 * expect);
}

// The scratch layout the fused passes rely on for speed (issue 17, stop 50): from a 64-byte
// aligned buffer (the host workspace's AlignedVector), carve puts every per-neighbour array, the
// triplet block arrays and the block record on a cache line, whatever the lengths of the short
// arrays (odd counts of functions and groups), and stays inside scratch_sizes.
AF_TEST(acsf, scratch_arrays_start_on_cache_lines) {
  for (int32_t na : {1, 11, 14, 57}) {
    for (int32_t ng : {1, 3, 4}) {
      acsf::Tables t{};
      t.n_elements = 2;
      t.max_rcs = 1;
      t.max_groups = 16;
      t.max_angular = na;
      t.max_pair_groups = ng;
      t.max_pair_pows = 3;
      t.max_pair_rcs = 1;
      for (int64_t n : {0, 1, 37, 107, 400}) {
        const int64_t cap = acsf::capacity_for(n);
        int64_t nd, ni, n32;
        acsf::scratch_sizes(t, cap, &nd, &ni, &n32);
        AlignedVector<double> d(nd);
        std::vector<int64_t> iv(ni);
        std::vector<int32_t> i32(n32);
        acsf::Scratch s{};
        acsf::carve(t, cap, d.data(), iv.data(), i32.data(), s);
        auto line = [](const double* p) { return reinterpret_cast<uintptr_t>(p) % 64 == 0; };
        CHECK(line(d.data()));
        for (const double* p : {s.d, s.td, s.tr, s.dx, s.dy, s.dz, s.r, s.inv_r, s.ux, s.gx, s.gy, s.gz, s.fc,
                                s.dfc, s.R, s.dR, s.accG, s.pfc, s.pdfc, s.cand, s.bt, s.brec})
          CHECK(line(p));
        CHECK(s.bcap % acsf::kW == 0);
        const int64_t rec = acsf::fact_rec_arrays_max(t) * s.bcap;
        CHECK(s.brec + rec <= d.data() + nd);  // the record ends inside the buffer
      }
    }
  }
}

// Shared radial exponentials (Tables::group_head, radial_terms): radial groups whose etas are
// integer multiples (2 .. 16, to 4 ulp) of a head's with the same r_s take the head's exponential
// to that power; the values stay the closed form to 1e-14 relative. Fails if the sharing is lost
// (the plan) or wrong (the values).
AF_TEST(acsf, radial_groups_share_exponentials_and_keep_closed_form_values) {
  // one element; r_s = 0: eta 0.05 (head), 0.5, 0.1, 0.3, 0.7 (10x, 2x, 6x, 14x 0.05: members;
  // members are never heads, so 0.3 is 6x 0.05, not 3x 0.1), 1.5 (30x 0.05: too high a power, and
  // its divisors 0.1, 0.3, 0.5 are members: its own exponential); r_s = 1: 0.4 (head), 0.8 (2x)
  const double etas0[] = {0.05, 0.5, 0.1, 0.3, 1.5, 0.7};
  std::vector<SymmetryFunctionSpec> specs;
  for (double eta : etas0) {
    SymmetryFunctionSpec f;
    f.eta = eta;
    f.r_c = 5.0;
    specs.push_back(f);
  }
  for (double eta : {0.4, 0.8}) {
    SymmetryFunctionSpec f;
    f.eta = eta;
    f.r_s = 1.0;
    f.r_c = 5.0;
    specs.push_back(f);
  }
  SymmetryFunctions sf(1, specs, CutoffType::Cosine);
  const auto& F = sf.flat();
  CHECK(F.group_head.size() == 8);
  // groups in function order; heads: 0.05 (members 0.5 x10, 0.1 x2, 0.3 x6, 0.7 x14), r_s = 1: 0.4
  // (0.8 x2); 1.5 = 30 x 0.05 is beyond 16 and no other head divides it: its own exponential
  const int32_t head[] = {-1, 0, 0, 0, -1, 0, -1, 6};
  const int32_t power[] = {1, 10, 2, 6, 1, 14, 1, 2};
  for (int g = 0; g < 8; ++g) {
    CHECK(F.group_head[g] == head[g]);
    CHECK(F.group_power[g] == power[g]);
  }
  CHECK(F.group_members[0] == 4 && F.group_members[6] == 1 && F.group_members[4] == 0);
  // two atoms 1.7 A apart: G_f = exp(-eta (r - r_s)^2) fc(r) on each
  const double x[6] = {0.0, 0.0, 0.0, 1.0, 1.2, -0.5};
  const double r = std::sqrt(1.0 + 1.44 + 0.25);
  const double cell[9] = {0};
  NeighborList nl = build_neighbor_list(x, 2, cell, {false, false, false}, sf.cutoff());
  const int32_t species[2] = {0, 0};
  nl.set_species(species);
  std::vector<double> G(2 * sf.n_features());
  sf.compute(nl.view(), G.data(), 1);
  const double fc = 0.5 * (std::cos(kPi * r / 5.0) + 1.0);
  for (size_t f = 0; f < specs.size(); ++f) {
    const double sh = r - specs[f].r_s;
    const double ref = std::exp(-specs[f].eta * sh * sh) * fc;
    CHECK(std::fabs(G[f] - ref) <= 1e-14 * ref);
    CHECK(G[sf.n_features() + f] == G[f]);
  }
}

// The VJP's pair gradients come in an uninitialised buffer: finish_vjp must clear the slots of
// listed neighbours beyond the cutoff. A list built with a longer cutoff than the descriptor's
// (as engines pass, with a skin) must give the forces and virial of the exact list, also when the
// heap hands back a buffer just freed full of NaN.
AF_TEST(acsf, vjp_clears_the_slots_of_neighbours_beyond_the_cutoff) {
  SymmetryFunctions sf = one_element_set();  // r_c = 3
  const int n = 6;
  std::vector<double> x = {0.0, 0.0, 0.0, 1.1, 0.2, 0.0, -0.3, 1.4, 0.3, 2.6, 1.9, -0.4, 0.4, -2.2, 1.5, 3.9, 0.1, 0.2};
  const double cell[9] = {0};
  std::vector<int32_t> sp(n, 0);
  NeighborList exact = build_neighbor_list(x.data(), n, cell, {false, false, false}, sf.cutoff());
  NeighborList skin = build_neighbor_list(x.data(), n, cell, {false, false, false}, sf.cutoff() + 2.0);
  exact.set_species(sp.data());
  skin.set_species(sp.data());
  CHECK(skin.n_pairs() > exact.n_pairs());  // the skin list has pairs beyond r_c
  std::vector<double> w(n * sf.n_features());
  for (size_t k = 0; k < w.size(); ++k) w[k] = 0.3 + 0.1 * static_cast<double>(k % 7);
  std::vector<double> F0(3 * n), W0(9);
  sf.vjp(exact.view(), w.data(), F0.data(), W0.data(), nullptr, 1);
  for (int rep = 0; rep < 3; ++rep) {
    {
      std::vector<double> junk(3 * skin.n_pairs(), std::nan(""));  // freed: likely the next buffer
      CHECK(std::isnan(junk[0]));
    }
    std::vector<double> F(3 * n), W(9);
    sf.vjp(skin.view(), w.data(), F.data(), W.data(), nullptr, 1 + rep % 2);
    for (int k = 0; k < 3 * n; ++k) CHECK(std::fabs(F[k] - F0[k]) <= 1e-13 * (1.0 + std::fabs(F0[k])));
    for (int k = 0; k < 9; ++k) CHECK(std::fabs(W[k] - W0[k]) <= 1e-13 * (1.0 + std::fabs(W0[k])));
  }
}

// The fused pass (evaluate: values, the model's dE/dG, then the VJP from the triplet cache)
// against vjp() (which recomputes every block), on a two-element liquid-like box whose angular
// pairs are all factorised (G4, r_s = 0, integer eta ratios, one r_c) and hold several blocks of
// triplets per centre. The cached records (the k indices, the runs of equal j, d_j and d_k ahead
// of each fused record, E, F, cos and the geometry scalars) must give the recomputed forces and
// virial bit for bit; the first centres of a thread also cover the cache growing mid-pass.
// Fails if a record is written or read at the wrong place.
AF_TEST(acsf, fused_pass_from_the_triplet_cache_equals_the_recomputing_vjp) {
  std::vector<SymmetryFunctionSpec> specs;
  for (int32_t ce = 0; ce < 2; ++ce) {
    for (int32_t a = 0; a < 2; ++a)
      for (double eta : {0.02, 0.2}) {
        SymmetryFunctionSpec f;
        f.centre = ce;
        f.neighbor1 = a;
        f.eta = eta;
        f.r_c = 6.0;
        specs.push_back(f);
      }
    for (int32_t a = 0; a < 2; ++a)
      for (int32_t b = a; b < 2; ++b)
        for (double eta : {0.01, 0.03, 0.07})
          for (double lambda : {-1.0, 1.0}) {
            SymmetryFunctionSpec f;
            f.type = SymmetryFunctionType::G4;
            f.centre = ce;
            f.neighbor1 = a;
            f.neighbor2 = b;
            f.eta = eta;
            f.r_c = 6.0;
            f.lambda = lambda;
            f.zeta = eta == 0.01 ? 4.0 : (lambda > 0 ? 1.0 : 2.0);
            specs.push_back(f);
          }
  }
  SymmetryFunctions sf(2, specs, CutoffType::Tanh);
  // 6 x 6 x 6 sites 2 A apart, jittered by up to 0.4 A, in a periodic 12 A cube: about 100
  // neighbours within 6 A, about 1800 triplets per centre
  const int side = 6, n = side * side * side;
  std::vector<double> x(3 * n);
  uint64_t state = 12345;
  auto uniform = [&state]() {
    state = state * 6364136223846793005ULL + 1442695040888963407ULL;
    return static_cast<double>(state >> 11) * (1.0 / 9007199254740992.0);
  };
  for (int i = 0; i < n; ++i) {
    const int ijk[3] = {i % side, (i / side) % side, i / (side * side)};
    for (int k = 0; k < 3; ++k) x[3 * i + k] = 2.0 * ijk[k] + 0.8 * (uniform() - 0.5);
  }
  const double cell[9] = {12.0, 0, 0, 0, 12.0, 0, 0, 0, 12.0};
  NeighborList nl = build_neighbor_list(x.data(), n, cell, {true, true, true}, sf.cutoff());
  std::vector<int32_t> sp(n);
  for (int i = 0; i < n; ++i) sp[i] = i % 3 == 0 ? 1 : 0;  // one "O" to two "H"
  nl.set_species(sp.data());
  const int64_t nf = sf.n_features();
  std::vector<double> w(n * nf, 0.0);
  for (int i = 0; i < n; ++i)
    for (int64_t k = 0; k < sf.n_features(sp[i]); ++k) w[i * nf + k] = 0.3 + 0.1 * static_cast<double>((i + k) % 7);
  struct FixedWeights : CentreModel {
    const std::vector<double>* w;
    int64_t nf;
    void begin(int) override {}
    void centre(int, int64_t c, int32_t, const double*, double* dE_dG) override {
      for (int64_t k = 0; k < nf; ++k) dE_dG[k] = (*w)[c * nf + k];
    }
  } model;
  model.w = &w;
  model.nf = nf;
  const int64_t nt = nl.n_total();
  for (int threads : {1, 2}) {
    std::vector<double> F1(3 * nt), W1(9), F2(3 * nt), W2(9);
    sf.evaluate(nl.view(), model, F1.data(), W1.data(), nullptr, threads);
    sf.vjp(nl.view(), w.data(), F2.data(), W2.data(), nullptr, threads);
    double fmax = 0.0;
    for (int64_t k = 0; k < 3 * nt; ++k) {
      CHECK(F1[k] == F2[k]);
      fmax = std::fmax(fmax, std::fabs(F2[k]));
    }
    for (int k = 0; k < 9; ++k) CHECK(W1[k] == W2[k]);
    CHECK(fmax > 1e-3);  // the forces are not trivially zero
  }
}
