// Stream compaction of simd_math.hpp (compact_below, compact_within): the AVX-512 compress path,
// the AVX2 left-pack path (the tests are compiled with the core's -march=native, so the build
// machine's path is the one tested) or else the scalar fallback must keep
// exactly the indices a plain loop keeps, in order, carry the arrays' entries along and, for
// compact_within, return the squared distances of the kept entries as (ex ex + ey ey) + ez ez
// (to 2 ulp: the scalar form may be contracted into FMAs).
// Ranges start and end off the 8-lane grid, thresholds hit values exactly, and none is kept
// or all are.
#include <cmath>
#include <cstdint>
#include <vector>

#include "common/aligned.hpp"
#include "common/cutoff.hpp"
#include "common/simd_math.hpp"
#include "harness.hpp"

using namespace atomforge;

namespace {
double pseudo(int64_t& seed) {  // deterministic values in [-2, 2)
  seed = (seed * 1103515245 + 12345) % 2147483648LL;
  return 4.0 * static_cast<double>(seed) / 2147483648.0 - 2.0;
}
}  // namespace

AF_TEST(simd, compact_below_matches_a_plain_loop) {
  int64_t seed = 7;
  const int64_t n = 53;
  std::vector<double> v(n + 16);
  for (auto& x : v) x = pseudo(seed);
  v[10] = 0.5;  // equal to the threshold: not kept (strictly below)
  for (int64_t begin : {0, 3, 8, 13}) {
    for (int64_t end : {begin, begin + 1, begin + 7, begin + 8, begin + 9, n}) {
      for (double thr : {-3.0, 0.5, 3.0}) {
        std::vector<int64_t> out(n + 16, -1), ref;
        for (int64_t k = begin; k < end; ++k)
          if (v[k] < thr) ref.push_back(k);
        const int64_t cnt = simd::compact_below(v.data(), begin, end, thr, out.data());
        CHECK(cnt == static_cast<int64_t>(ref.size()));
        for (int64_t q = 0; q < cnt && q < static_cast<int64_t>(ref.size()); ++q) CHECK(out[q] == ref[q]);
      }
    }
  }
}

AF_TEST(simd, compact_within_keeps_carries_and_returns_exact_distances) {
  int64_t seed = 11;
  const int64_t n = 61, pad = 16;
  std::vector<double> dx(n + pad), dy(n + pad), dz(n + pad), a(n + pad), b(n + pad);
  for (int64_t k = 0; k < n + pad; ++k) {
    dx[k] = pseudo(seed);
    dy[k] = pseudo(seed);
    dz[k] = pseudo(seed);
    a[k] = 100.0 + k;
    b[k] = -0.25 * k;
  }
  const double xj = 0.3, yj = -0.2, zj = 0.1;
  for (int64_t begin : {0, 5, 8, 17}) {
    for (int64_t end : {begin, begin + 3, begin + 8, begin + 11, n}) {
      for (double thr : {0.0, 2.0, 100.0}) {
        std::vector<int64_t> out(n + pad, -1), ref;
        std::vector<double> ca(n + pad), cb(n + pad), cx(n + pad), cy(n + pad), cz(n + pad), cr2(n + pad), ref_r2;
        for (int64_t k = begin; k < end; ++k) {
          const double ex = dx[k] - xj, ey = dy[k] - yj, ez = dz[k] - zj;
          const double ex2 = ex * ex, ey2 = ey * ey, ez2 = ez * ez;  // unfused, as the kernel
          const double r2 = (ex2 + ey2) + ez2;
          if (r2 < thr) {
            ref.push_back(k);
            ref_r2.push_back(r2);
          }
        }
        const double* const src[2] = {a.data(), b.data()};
        double* const dst[6] = {cx.data(), cy.data(), cz.data(), ca.data(), cb.data(), cr2.data()};
        const int64_t cnt = simd::compact_within(dx.data(), dy.data(), dz.data(), xj, yj, zj, begin, end, thr,
                                                 out.data(), src, dst);
        CHECK(cnt == static_cast<int64_t>(ref.size()));
        for (int64_t q = 0; q < cnt && q < static_cast<int64_t>(ref.size()); ++q) {
          const int64_t k = ref[q];
          CHECK(out[q] == k);
          CHECK(ca[q] == a[k]);
          CHECK(cb[q] == b[k]);
          CHECK(cx[q] == dx[k]);
          CHECK(std::fabs(cr2[q] - ref_r2[q]) <= 4.5e-16 * ref_r2[q]);
        }
      }
    }
  }
}

// simd::exp and simd::expm1 (the [6/6] Pade form of exp_core) against long-double libm: exp within
// 2.5 ulp over [-708, 709] (measured 1.7), expm1 within 6 ulp over [-1, 1] and down to 1e-300
// (measured 4.8; the degree-13 Taylor form before stop 54: 1.5 and 3.9); the clamps' values.
AF_TEST(simd, exp_and_expm1_match_long_double_libm) {
  auto ulps = [](double v, long double ref) {
    const double r = static_cast<double>(ref);
    return static_cast<double>(std::fabs(static_cast<long double>(v) - ref)) /
           (std::nextafter(std::fabs(r), INFINITY) - std::fabs(r));
  };
  const int64_t n = 200000;
  double we = 0.0, wm = 0.0;
  for (int64_t k = 0; k <= n; ++k) {
    const double x = std::fmin(-708.0 + 1417.0 * static_cast<double>(k) / n + 1e-7 * static_cast<double>(k % 7), 709.0);
    we = std::fmax(we, ulps(simd::exp(x), std::exp(static_cast<long double>(x))));
    const double y = -1.0 + 2.0 * static_cast<double>(k) / n;
    if (y != 0.0) wm = std::fmax(wm, ulps(simd::expm1(y), std::expm1(static_cast<long double>(y))));
    const double z = y * 1e-9;
    if (z != 0.0) wm = std::fmax(wm, ulps(simd::expm1(z), std::expm1(static_cast<long double>(z))));
  }
  CHECK(we <= 2.5);
  CHECK(wm <= 6.0);
  CHECK(simd::exp(0.0) == 1.0);
  CHECK(simd::expm1(0.0) == 0.0);
  CHECK(simd::expm1(1e-300) == 1e-300);
  CHECK(simd::exp(-709.0) == 0.0);
  CHECK(std::isinf(simd::exp(710.0)));
  CHECK(simd::expm1(-800.0) == -1.0);
}

// simd::tanh_unit (y P(y^2) / Q(y^2), degrees 3 and 4) against libm's tanh over [-1, 1]: within
// 4 ulp (tools/fit_tanh_unit.py measures 3 ulp against 60-digit tanh; libm adds up to 1), exact
// at 0, odd, clamped below -1 and finite there.
AF_TEST(simd, tanh_unit_matches_libm_on_the_unit_interval) {
  const int64_t n = 20000;
  double worst = 0.0;
  for (int64_t k = -n; k <= n; ++k) {
    const double y = static_cast<double>(k) / n;
    const double ref = std::tanh(y), t = simd::tanh_unit(y);
    if (k == 0) {
      CHECK(t == 0.0);
      continue;
    }
    worst = std::fmax(worst, std::fabs(t - ref) / std::fabs(ref));
    CHECK(simd::tanh_unit(-y) == -t);
  }
  CHECK(worst <= 4.0 * 2.220446049250313e-16);
  for (double y : {1e-300, 1e-8, 0.5 + 1e-12, 0.999999999}) CHECK(std::fabs(simd::tanh_unit(y) - std::tanh(y)) <= 8.9e-16 * std::tanh(y));
  CHECK(simd::tanh_unit(-5.0) == simd::tanh_unit(-1.0));
  CHECK(std::isfinite(simd::tanh_unit(-1e300)));
}

// The vectorised cutoffs (cutoff_fdf_lanes, every kernel's path) agree with the scalar libm forms
// (cutoff_fdf) for every cutoff type, fc and dfc/dr, to 1e-14 relative to the largest magnitude:
// "a few ulp" as documented, with a margin for the cancellation in poly's 1 + ... near r_c.
AF_TEST(simd, cutoff_lanes_match_the_scalar_cutoffs) {
  const double rc = 6.35;
  const int64_t W = 203;  // off the 8-lane grid
  std::vector<double> r(W), f(W), df(W);
  for (int64_t l = 0; l < W; ++l) r[l] = rc * (static_cast<double>(l) + 0.5) / W;
  for (CutoffType ct : {CutoffType::Cosine, CutoffType::TanhU, CutoffType::Tanh, CutoffType::Poly1,
                        CutoffType::Poly2, CutoffType::Poly3, CutoffType::Poly4}) {
    detail::cutoff_fdf_lanes<true>(ct, W, r.data(), rc, f.data(), df.data());
    double fmax = 0.0, dfmax = 0.0, ferr = 0.0, dferr = 0.0;
    for (int64_t l = 0; l < W; ++l) {
      double fs, dfs;
      detail::cutoff_fdf(ct, r[l], rc, fs, dfs);
      fmax = std::fmax(fmax, std::fabs(fs));
      dfmax = std::fmax(dfmax, std::fabs(dfs));
      ferr = std::fmax(ferr, std::fabs(f[l] - fs));
      dferr = std::fmax(dferr, std::fabs(df[l] - dfs));
      // and relative per point for the tanh cutoffs, whose fc falls like y^3, y = 1 - r/rc: the
      // rounding of y itself (FMA-contracted or not, ~1e-16 absolute) is amplified by 3/y there
      if (ct == CutoffType::TanhU || ct == CutoffType::Tanh) {
        const double y = 1.0 - r[l] / rc, tol = 1e-14 + 1e-15 / y;
        CHECK(std::fabs(f[l] - fs) <= tol * std::fabs(fs));
        CHECK(std::fabs(df[l] - dfs) <= tol * std::fabs(dfs));
      }
    }
    CHECK(ferr <= 1e-14 * fmax);
    CHECK(dferr <= 1e-14 * dfmax);
  }
}

#if defined(AF_AVX512_COMPRESS)
// add_xyz_aos (the fused ACSF VJP's k side): eight (x, y, z) triples added into 32-byte records
// at their indices must equal eight scalar updates in lane order, bit for bit, also when indices
// repeat within the eight (a chunk of triplets that spans two runs of j can hold one k twice).
AF_TEST(simd, add_xyz_aos_equals_scalar_updates_in_lane_order) {
  int64_t seed = 3;
  const int64_t n = 12;
  for (int trial = 0; trial < 4; ++trial) {
    alignas(64) double x[8], y[8], z[8];
    int64_t idx[8];
    for (int l = 0; l < 8; ++l) {
      x[l] = pseudo(seed) * 1e3;
      y[l] = pseudo(seed) * 1e-3;
      z[l] = pseudo(seed);
      idx[l] = trial == 0 ? l : (trial == 1 ? 7 - l : (trial == 2 ? l % 3 : 5));  // distinct, reversed, repeats, all one
    }
    std::vector<double, CacheAlignedAllocator<double>> g(4 * n), ref(4 * n);
    for (int64_t k = 0; k < 4 * n; ++k) g[k] = ref[k] = pseudo(seed);
    for (int l = 0; l < 8; ++l) {
      ref[4 * idx[l]] += x[l];
      ref[4 * idx[l] + 1] += y[l];
      ref[4 * idx[l] + 2] += z[l];
    }
    simd::add_xyz_aos(simd::vload(x), simd::vload(y), simd::vload(z), idx, g.data());
    for (int64_t m = 0; m < n; ++m)
      for (int c = 0; c < 3; ++c) CHECK(g[4 * m + c] == ref[4 * m + c]);
  }
}
#endif

#if defined(AF_AVX512_COMPRESS)
// range_sums3_add4 (the fused ACSF VJP's j side): the three sums over [begin, end), ranges on and
// off the 8-lane grid, added into a 32-byte record, equal to long double sums to rounding (the
// lane grouping differs from a serial sum), and the record's other entries untouched.
AF_TEST(simd, range_sums3_add4_adds_the_three_range_sums) {
  int64_t seed = 11;
  const int64_t n = 40;
  std::vector<double> a(n + 8), b(n + 8), c(n + 8);
  for (int64_t k = 0; k < n + 8; ++k) { a[k] = pseudo(seed); b[k] = 1e3 * pseudo(seed); c[k] = 1e-3 * pseudo(seed); }
  for (int64_t begin : {0, 3, 8}) {
    for (int64_t end : {begin, begin + 1, begin + 7, begin + 8, begin + 9, begin + 23, n}) {
      alignas(32) double g4[8] = {1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0};
      simd::range_sums3_add4(a.data(), b.data(), c.data(), begin, end, g4 + 4);
      long double sa = 5.0L, sb = 6.0L, sc = 7.0L, ma = 5.0L, mb = 6.0L, mc = 7.0L;  // sums, sums of |x|
      for (int64_t k = begin; k < end; ++k) {
        sa += a[k]; sb += b[k]; sc += c[k];
        ma += std::fabs(a[k]); mb += std::fabs(b[k]); mc += std::fabs(c[k]);
      }
      // rounding of a sum of at most 41 terms: below 41 ulp of the sum of magnitudes
      CHECK(std::fabs(g4[4] - static_cast<double>(sa)) <= 41 * 1.2e-16 * static_cast<double>(ma));
      CHECK(std::fabs(g4[5] - static_cast<double>(sb)) <= 41 * 1.2e-16 * static_cast<double>(mb));
      CHECK(std::fabs(g4[6] - static_cast<double>(sc)) <= 41 * 1.2e-16 * static_cast<double>(mc));
      CHECK(g4[0] == 1.0 && g4[1] == 2.0 && g4[2] == 3.0 && g4[3] == 4.0);
    }
  }
}
#endif
