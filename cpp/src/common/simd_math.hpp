// Branch-free, vectorisable elementary functions (internal header).
//
// Every function here is a plain inline scalar function without branches or table look-ups
// (selects compile to blends), so that a loop over a fixed number of lanes calling it is
// vectorised by the compiler (-O3, with or without OpenMP SIMD). Accuracy is a few ulp over the
// documented domain, far inside the 1e-12 agreement the tests demand with libm-based NumPy;
// results are deterministic (no dependence on the thread count or on data alignment).
//
// Method (standard, e.g. Cody & Waite 1980; Muller, "Elementary Functions", ch. 11; fdlibm e_exp.c):
//   x = k ln2 + r,  k = round(x / ln2),  |r| <= ln2/2,  ln2 split into hi + lo so k*ln2_hi is exact;
//   exp(r) - 1 = q(r) = 2 r O(r^2) / (E(r^2) - r O(r^2)) from the [6/6] Pade approximant
//   (E + r O) / (E - r O) of exp (truncation error < 2e-19 relative; see exp_core);
//   exp(x) = 2^k (1 + q), expm1(x) = 2^k q + (2^k - 1);
//   2^k is assembled from the bits of the rounding "shifter" 1.5*2^52 (no float->int conversion,
//   which AVX2 cannot vectorise for 64-bit integers).
//
// Single-source (host and CUDA device): every function is AF_INLINE, or AF_LANE_INLINE (always
// inlined) when lane loops call it; the AVX-512 compress and AVX2 left-pack paths of
// compact_below / compact_within, and the AVX-512-only v8d helpers (GCC's vector extension, for
// the register-fused ACSF block passes), are host-only.
#pragma once
#include <cstdint>
#include <cstring>

#include "atomforge/hd.hpp"
#if defined(__AVX512F__) && !defined(__CUDA_ARCH__)
#include <immintrin.h>
#define AF_AVX512_COMPRESS 1
#elif defined(__AVX2__) && !defined(__CUDA_ARCH__)
#include <immintrin.h>
#define AF_AVX2_PACK 1
#endif

namespace atomforge {
namespace simd {

namespace detail {
#if defined(AF_AVX2_PACK)
// AVX2 has no compress instruction. Left-packing 4 doubles (or int64) whose compare mask is m
// (4 bits) is one vpermd with the 8 dword indices kPack4.idx[m]: the selected lanes' two halves,
// in order, then filler. The standard look-up-table left-pack (e.g. Lemire's "stream
// compaction" notes; the table is formed here at compile time).
struct Pack4Table {
  alignas(32) int32_t idx[16][8];
};
constexpr Pack4Table make_pack4() {
  Pack4Table t{};
  for (int m = 0; m < 16; ++m) {
    int o = 0;
    for (int l = 0; l < 4; ++l)
      if ((m >> l) & 1) {
        t.idx[m][2 * o] = 2 * l;
        t.idx[m][2 * o + 1] = 2 * l + 1;
        ++o;
      }
    for (; o < 4; ++o) {
      t.idx[m][2 * o] = 0;
      t.idx[m][2 * o + 1] = 1;
    }
  }
  return t;
}
inline constexpr Pack4Table kPack4 = make_pack4();
inline __m256i pack4_perm(int m) { return _mm256_load_si256(reinterpret_cast<const __m256i*>(kPack4.idx[m])); }
inline __m256d pack4(__m256d v, __m256i p) {
  return _mm256_castsi256_pd(_mm256_permutevar8x32_epi32(_mm256_castpd_si256(v), p));
}
#endif
// fdlibm's split of ln 2: ln2_hi has 32 trailing zero bits, so k*ln2_hi is exact for |k| < 2^20.
constexpr double kLn2Hi = 6.93147180369123816490e-01;
constexpr double kLn2Lo = 1.90821492927058770002e-10;
constexpr double kLog2e = 1.44269504088896338700e+00;
constexpr double kShifter = 6755399441055744.0;  // 1.5 * 2^52: x + shifter rounds x to an integer

AF_LANE_INLINE double bits_to_double(uint64_t b) {
  double d;
  memcpy(&d, &b, sizeof d);
  return d;
}
AF_LANE_INLINE uint64_t double_to_bits(double d) {
  uint64_t b;
  memcpy(&b, &d, sizeof b);
  return b;
}

/// Reduction for exp/expm1: returns q = exp(r) - 1 and scale = 2^k with x = k ln2 + r.
/// Valid for -708 <= x <= 709 (callers clamp); k + 1023 then stays in [1, 2046].
AF_LANE_INLINE void exp_core(double x, double& q, double& scale) {
  const double kd = x * kLog2e + kShifter;  // low mantissa bits hold round(x / ln2)
  const double k = kd - kShifter;
  const double r = (x - k * kLn2Hi) - k * kLn2Lo;
  // exp(r) by the [6/6] Pade approximant N(r) / N(-r), N(r) = E(r^2) + r O(r^2) with
  // E(u) = 1 + 5/44 u + 1/792 u^2 + 1/665280 u^3 and O(u) = 1/2 + 1/66 u + 1/15840 u^2 (N's
  // coefficients (12 - j)! 6! / (12! j! (6 - j)!)); its error on |r| <= ln2/2 is below 2e-19
  // relative. Written as q = exp(r) - 1 = 2 r O / (E - r O) (no cancellation as r -> 0; E - r O
  // >= 0.82): nine operations and one division, which runs on the otherwise idle divider, in
  // place of the degree-13 Taylor polynomial before stop 54 (16 operations in Estrin form).
  const double u = r * r;
  const double E = 1.0 + u * (5.0 / 44.0 + u * (1.0 / 792.0 + u * (1.0 / 665280.0)));
  const double ro = r * (0.5 + u * (1.0 / 66.0 + u * (1.0 / 15840.0)));
  q = 2.0 * ro / (E - ro);
  // 2^k: the low 12 bits of bits(kd) are k (two's complement); shift k + 1023 into the exponent.
  scale = bits_to_double((double_to_bits(kd) + 1023u) << 52);
}
}  // namespace detail

/// exp(x). Exact 0 for x < -708 (libm would return subnormals down to -745), +inf for x > 709
/// (true overflow is at 709.78; not reached by the callers, whose arguments are <= 0). NaN -> NaN.
AF_LANE_INLINE double exp(double x) {
  const double xc = x < -708.0 ? -708.0 : (x > 709.0 ? 709.0 : x);
  double q, s;
  detail::exp_core(xc, q, s);
  const double e = s + s * q;
  return x < -708.0 ? 0.0 : (x > 709.0 ? detail::bits_to_double(0x7FF0000000000000ull) : e);
}

/// expm1(x) = exp(x) - 1, accurate to a few ulp also for small |x| (no cancellation: for
/// |x| < ln2/2, k = 0 and the result is q itself). -1 for x < -708, +inf for x > 709.
AF_LANE_INLINE double expm1(double x) {
  const double xc = x < -708.0 ? -708.0 : (x > 709.0 ? 709.0 : x);
  double q, s;
  detail::exp_core(xc, q, s);
  const double e = s * q + (s - 1.0);  // 2^k - 1 is exact for the k that matter (|k| < 53)
  return x < -708.0 ? -1.0 : (x > 709.0 ? detail::bits_to_double(0x7FF0000000000000ull) : e);
}

/// tanh(y) for y >= 0 (odd extension by the caller if needed; the cutoffs use y = 1 - r/rc in
/// [0, 1]): tanh(y) = -expm1(-2y) / (2 + expm1(-2y)), relative error a few ulp, also as y -> 0.
/// Lanes with y < 0 still return tanh(y) correctly down to y ~ -354 (inf/inf beyond).
AF_LANE_INLINE double tanh_nonneg(double y) {
  const double em = expm1(-2.0 * y);
  return -em / (2.0 + em);
}

/// tanh(y) for |y| <= 1 (arguments below -1 are clamped to -1; callers mask those lanes), the
/// cutoffs' y = 1 - r/r_c: tanh(y) = y P(u) / Q(u), u = y^2, P of degree 3 and Q of degree 4 with
/// positive coefficients (Horner; Q >= 1 on [0, 1]). P/Q interpolates tanh(y)/y at the 8 Chebyshev
/// nodes of u in [0, 1] (near-minimax rational; cf. Lambert's continued fraction y / (1 + y^2 /
/// (3 + y^2 / (5 + ...)))), solved in 60-digit arithmetic (mpmath) and rounded to double:
/// tools/fit_tanh_unit.py regenerates the coefficients and measures the error, 3 ulp over [-1, 1]
/// against 60-digit tanh (checked to 4 ulp against libm in cpp/tests/test_simd.cpp). Nine
/// multiply-adds and one division: the division runs on the divider, idle in the cutoff loop, so
/// this is 1.023x faster on the water force call than stop 51's degree-15 polynomial (2 ulp, no
/// division), which was itself 1.035x faster than tanh_nonneg's expm1 and division (issue 17,
/// benchmarks/results/bench_ab.md).
AF_LANE_INLINE double tanh_unit(double y) {
  const double x = y < -1.0 ? -1.0 : y;
  const double u = x * x;
  double p = 1.7597898467277832e-05;
  p = p * u + 0.0034090325079414053;
  p = p * u + 0.13325264636423007;
  p = p * u + 1.0;
  double q = 4.85659379921298e-07;
  q = q * u + 0.0003091742649687873;
  q = q * u + 0.02560435907379702;
  q = q * u + 0.4665859796975633;
  q = q * u + 1.0;
  return x * p / q;
}

/// cos(pi x) and sin(pi x) for x in [0, 1] (other x: garbage but finite for |x| < ~2).
/// With z = pi (x - 1/2) in [-pi/2, pi/2]: cos(pi x) = -sin z, sin(pi x) = cos z, both by Taylor
/// polynomials (sin to z^21, cos to z^22; truncation < 2e-18 at |z| = pi/2).
AF_LANE_INLINE void cos_sin_pi(double x, double& c, double& s) {
  constexpr double kPi = 3.14159265358979323846;
  const double z = kPi * (x - 0.5);
  const double z2 = z * z;
  // sin z = z (1 - z^2/3! + z^4/5! - ... - z^20/21!)  (Horner in z^2)
  double ps = -1.0 / 51090942171709440000.0;  // -1/21!
  ps = ps * z2 + 1.0 / 121645100408832000.0;   // 1/19!
  ps = ps * z2 - 1.0 / 355687428096000.0;      // 1/17!
  ps = ps * z2 + 1.0 / 1307674368000.0;        // 1/15!
  ps = ps * z2 - 1.0 / 6227020800.0;           // 1/13!
  ps = ps * z2 + 1.0 / 39916800.0;             // 1/11!
  ps = ps * z2 - 1.0 / 362880.0;               // 1/9!
  ps = ps * z2 + 1.0 / 5040.0;                 // 1/7!
  ps = ps * z2 - 1.0 / 120.0;                  // 1/5!
  ps = ps * z2 + 1.0 / 6.0;                    // 1/3!
  const double sin_z = z - z * z2 * ps;
  // cos z = 1 - z^2/2! + z^4/4! - ... + z^20/20! - z^22/22!
  double pc = -1.0 / 1124000727777607680000.0;  // -1/22!
  pc = pc * z2 + 1.0 / 2432902008176640000.0;   // 1/20!
  pc = pc * z2 - 1.0 / 6402373705728000.0;      // 1/18!
  pc = pc * z2 + 1.0 / 20922789888000.0;        // 1/16!
  pc = pc * z2 - 1.0 / 87178291200.0;           // 1/14!
  pc = pc * z2 + 1.0 / 479001600.0;             // 1/12!
  pc = pc * z2 - 1.0 / 3628800.0;               // 1/10!
  pc = pc * z2 + 1.0 / 40320.0;                 // 1/8!
  pc = pc * z2 - 1.0 / 720.0;                   // 1/6!
  pc = pc * z2 + 1.0 / 24.0;                    // 1/4!
  pc = pc * z2 - 0.5;
  const double cos_z = 1.0 + z2 * pc;
  c = -sin_z;
  s = cos_z;
}

#if defined(AF_AVX512_COMPRESS)
/// Eight doubles as one value (GCC's vector extension; one AVX-512 register), for loops whose
/// per-chunk state must stay in registers across run-time inner loops, which the auto-vectoriser
/// cannot keep there. Unaligned, may alias double. AVX-512 builds only: with AVX2 each would take
/// two of the sixteen registers and spill (issue 17, stop 43).
typedef double v8d __attribute__((vector_size(64), aligned(8), may_alias));
AF_LANE_INLINE v8d vload(const double* p) { return *reinterpret_cast<const v8d*>(p); }
AF_LANE_INLINE void vstore(double* p, v8d v) { *reinterpret_cast<v8d*>(p) = v; }
/// x^n lane-wise, n >= 0, by binary powering (the same products as acsf::ipow, whose first
/// product is 1 x and whose last square is unused: both are skipped here, so the results are the
/// same bits with two products fewer per call).
AF_LANE_INLINE v8d vipow(v8d x, int n) {
  if (n <= 0) return v8d{1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0};
  for (; (n & 1) == 0; n >>= 1) x = x * x;
  v8d r = x;
  for (n >>= 1; n > 0; n >>= 1) {
    x = x * x;
    if (n & 1) r = r * x;
  }
  return r;
}
/// The low and high 256 bits of v. (GCC 12's _mm512_castpd512_pd256 and _mm512_extractf64x4_pd,
/// like its unpack intrinsics, draw a false -Wmaybe-uninitialized from an undefined pass-through
/// operand: the low half by a copy, which GCC keeps in the register, the high by the zero-masked
/// extract.)
AF_LANE_INLINE __m256d lo256(__m512d v) {
  __m256d r;
  std::memcpy(&r, &v, sizeof r);
  return r;
}
AF_LANE_INLINE __m256d hi256(__m512d v) { return _mm512_maskz_extractf64x4_pd(0xf, v, 1); }
/// g4[0..2] += the sums of a[begin..end), b[begin..end) and c[begin..end) (g4[3] receives the
/// third sum again: scratch), g4 32-byte aligned. For the short runs of the ACSF VJP's j side:
/// eight lanes at a time (a masked load for the rest; three scalar chains were bound by the add
/// latency), then the three horizontal sums formed together and transposed into one 256-bit
/// register (15 vector operations instead of 18 for three separate ones), added with one 256-bit
/// read-modify-write instead of three scalar ones. Lanes are grouped as
/// ((l0 + l4) + (l1 + l5)) + ((l2 + l6) + (l3 + l7)).
AF_LANE_INLINE void range_sums3_add4(const double* a, const double* b, const double* c, int64_t begin, int64_t end,
                                     double* __restrict g4) {
  __m512d va = _mm512_setzero_pd(), vb = va, vc = va;
  int64_t i = begin;
  for (; i + 8 <= end; i += 8) {
    va = _mm512_add_pd(va, _mm512_loadu_pd(a + i));
    vb = _mm512_add_pd(vb, _mm512_loadu_pd(b + i));
    vc = _mm512_add_pd(vc, _mm512_loadu_pd(c + i));
  }
  if (i < end) {
    const __mmask8 m = static_cast<__mmask8>((1u << (end - i)) - 1u);
    va = _mm512_add_pd(va, _mm512_maskz_loadu_pd(m, a + i));
    vb = _mm512_add_pd(vb, _mm512_maskz_loadu_pd(m, b + i));
    vc = _mm512_add_pd(vc, _mm512_maskz_loadu_pd(m, c + i));
  }
  // 8 -> 4 lanes: l + (l + 4)
  const __m256d a4 = _mm256_add_pd(lo256(va), hi256(va));
  const __m256d b4 = _mm256_add_pd(lo256(vb), hi256(vb));
  const __m256d c4 = _mm256_add_pd(lo256(vc), hi256(vc));
  // pairs: (a0 + a1, b0 + b1, a2 + a3, b2 + b3) and (c0 + c1, c0 + c1, c2 + c3, c2 + c3)
  const __m256d ab = _mm256_add_pd(_mm256_unpacklo_pd(a4, b4), _mm256_unpackhi_pd(a4, b4));
  const __m256d cc = _mm256_add_pd(_mm256_unpacklo_pd(c4, c4), _mm256_unpackhi_pd(c4, c4));
  // halves: (a01, b01, c01, c01) + (a23, b23, c23, c23)
  const __m256d s = _mm256_add_pd(_mm256_permute2f128_pd(ab, cc, 0x20), _mm256_permute2f128_pd(ab, cc, 0x31));
  _mm256_store_pd(g4, _mm256_add_pd(_mm256_load_pd(g4), s));
}
/// g4[4 idx[l] + (0, 1, 2)] += (x[l], y[l], z[l]) for l = 0 .. 7, in that order (repeated indices
/// add up as eight scalar updates would): the three vectors transposed in registers into
/// (x, y, z, z) records of 256 bits, then one 256-bit load, add and store per lane. g4 holds four
/// doubles per index, 32-byte aligned; the fourth is scratch (it receives z again).
AF_LANE_INLINE void add_xyz_aos(v8d x, v8d y, v8d z, const int64_t* __restrict idx, double* __restrict g4) {
  // two-source permutes only (GCC 12's unpack intrinsics: see lo256)
  const __m512d X = reinterpret_cast<const __m512d&>(x), Y = reinterpret_cast<const __m512d&>(y),
                Z = reinterpret_cast<const __m512d&>(z);
  const __m512d xy0 = _mm512_permutex2var_pd(X, _mm512_set_epi64(14, 6, 12, 4, 10, 2, 8, 0), Y);  // x0 y0 x2 y2 ..
  const __m512d xy1 = _mm512_permutex2var_pd(X, _mm512_set_epi64(15, 7, 13, 5, 11, 3, 9, 1), Y);  // x1 y1 x3 y3 ..
  // records (x, y, z, z): 0 and 2, 1 and 3, 4 and 6, 5 and 7
  const __m512d r02 = _mm512_permutex2var_pd(xy0, _mm512_set_epi64(10, 10, 3, 2, 8, 8, 1, 0), Z);
  const __m512d r13 = _mm512_permutex2var_pd(xy1, _mm512_set_epi64(11, 11, 3, 2, 9, 9, 1, 0), Z);
  const __m512d r46 = _mm512_permutex2var_pd(xy0, _mm512_set_epi64(14, 14, 7, 6, 12, 12, 5, 4), Z);
  const __m512d r57 = _mm512_permutex2var_pd(xy1, _mm512_set_epi64(15, 15, 7, 6, 13, 13, 5, 4), Z);
  const __m256d rec[8] = {lo256(r02), lo256(r13),
                          hi256(r02), hi256(r13),
                          lo256(r46), lo256(r57),
                          hi256(r46), hi256(r57)};
  for (int l = 0; l < 8; ++l) {
    double* __restrict g = g4 + 4 * idx[l];
    _mm256_store_pd(g, _mm256_add_pd(_mm256_load_pd(g), rec[l]));
  }
}
#endif

/// Stream compaction: writes the indices k in [begin, end) with v[k] < thr, in increasing order,
/// to out and returns their count. Reads v[begin .. end + 7] and writes up to out[count + 7]
/// (callers pad both). With AVX-512 a compress instruction handles 8 candidates at a time (the
/// register form; the memory form is microcoded on AMD Zen 4); with AVX2 a look-up-table
/// left-pack (one vpermd per 4 candidates, detail::kPack4); else a branch-free scalar loop.
AF_INLINE int64_t compact_below(const double* v, int64_t begin, int64_t end, double thr, int64_t* out) {
  int64_t cnt = 0;
#if defined(AF_AVX512_COMPRESS)
  const __m512d t = _mm512_set1_pd(thr);
  __m512i k = _mm512_add_epi64(_mm512_set1_epi64(begin), _mm512_set_epi64(7, 6, 5, 4, 3, 2, 1, 0));
  const __m512i eight = _mm512_set1_epi64(8);
  for (int64_t b = begin; b < end; b += 8) {
    const int64_t left = end - b;
    const __mmask8 tail = left >= 8 ? static_cast<__mmask8>(0xff) : static_cast<__mmask8>((1u << left) - 1u);
    const __mmask8 m = _mm512_mask_cmp_pd_mask(tail, _mm512_loadu_pd(v + b), t, _CMP_LT_OQ);
    _mm512_storeu_si512(reinterpret_cast<void*>(out + cnt), _mm512_maskz_compress_epi64(m, k));
    cnt += _mm_popcnt_u32(static_cast<unsigned>(m));
    k = _mm512_add_epi64(k, eight);
  }
#elif defined(AF_AVX2_PACK)
  const __m256d t = _mm256_set1_pd(thr);
  __m256i k = _mm256_add_epi64(_mm256_set1_epi64x(begin), _mm256_set_epi64x(3, 2, 1, 0));
  const __m256i four = _mm256_set1_epi64x(4);
  for (int64_t b = begin; b < end; b += 4) {
    const int64_t left = end - b;
    const int tail = left >= 4 ? 15 : (1 << left) - 1;
    const int m = _mm256_movemask_pd(_mm256_cmp_pd(_mm256_loadu_pd(v + b), t, _CMP_LT_OQ)) & tail;
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + cnt),
                        _mm256_permutevar8x32_epi32(k, detail::pack4_perm(m)));
    cnt += _mm_popcnt_u32(static_cast<unsigned>(m));
    k = _mm256_add_epi64(k, four);
  }
#else
  for (int64_t b = begin; b < end; ++b) {
    out[cnt] = b;
    cnt += (v[b] < thr);
  }
#endif
  return cnt;
}

/// Neighbour-pair compaction: for k in [begin, end), r2_k = |d_k - d_j|^2 with d = (dx, dy, dz);
/// writes the k with r2_k < thr to out, in increasing order, and for each kept k (count-th kept)
/// dst[0..2][count] = dx[k], dy[k], dz[k], dst[3 + a][count] = src[a][k] for a < NArr, and
/// dst[NArr + 3][count] = r2_k (unless kStoreR2 is false). Returns the count. One pass: the distances are formed, tested and
/// compacted in registers (no distance array, each array loaded once). Reads every array at
/// [begin, end + 7] and writes up to index count + 7 (callers pad).
template <int NArr, bool kStoreR2 = true>
AF_INLINE int64_t compact_within(const double* dx, const double* dy, const double* dz, double xj, double yj,
                                 double zj, int64_t begin, int64_t end, double thr, int64_t* out,
                                 const double* const (&src)[NArr], double* const (&dst)[NArr + 4]) {
  int64_t cnt = 0;
#if defined(AF_AVX512_COMPRESS)
  const __m512d t = _mm512_set1_pd(thr);
  const __m512d vx = _mm512_set1_pd(xj), vy = _mm512_set1_pd(yj), vz = _mm512_set1_pd(zj);
  const __m512i iota = _mm512_set_epi64(7, 6, 5, 4, 3, 2, 1, 0);
  __m512i k = _mm512_set1_epi64(begin);  // the chunk's first k
  const __m512i eight = _mm512_set1_epi64(8);
  for (int64_t b = begin; b < end; b += 8) {
    const int64_t left = end - b;
    const __mmask8 tail = left >= 8 ? static_cast<__mmask8>(0xff) : static_cast<__mmask8>((1u << left) - 1u);
    const __m512d x = _mm512_maskz_loadu_pd(tail, dx + b);
    const __m512d y = _mm512_maskz_loadu_pd(tail, dy + b);
    const __m512d z = _mm512_maskz_loadu_pd(tail, dz + b);
    const __m512d ex = _mm512_sub_pd(x, vx), ey = _mm512_sub_pd(y, vy), ez = _mm512_sub_pd(z, vz);
    // (ex ex + ey ey) + ez ez without FMAs (the scalar form below is the same sum; a compiler
    // may contract it, which changes the last bit)
    const __m512d r2 = _mm512_add_pd(_mm512_add_pd(_mm512_mul_pd(ex, ex), _mm512_mul_pd(ey, ey)), _mm512_mul_pd(ez, ez));
    const __mmask8 m = _mm512_mask_cmp_pd_mask(tail, r2, t, _CMP_LT_OQ);
    // one compress of the lane numbers, then a one-uop permute per array: on Zen 4 a register
    // compress is two uops, and nine of them per 8 k bound this loop (lanes past the count hold
    // lane 0's values instead of zeros; callers overwrite them)
    __m512i p = _mm512_maskz_compress_epi64(m, iota);
    __asm__("" : "+v"(p));  // opaque: GCC would fold each permute of p back into a compress
    _mm512_storeu_si512(reinterpret_cast<void*>(out + cnt), _mm512_add_epi64(p, k));
    _mm512_storeu_pd(dst[0] + cnt, _mm512_maskz_permutexvar_pd(0xff, p, x));
    _mm512_storeu_pd(dst[1] + cnt, _mm512_maskz_permutexvar_pd(0xff, p, y));
    _mm512_storeu_pd(dst[2] + cnt, _mm512_maskz_permutexvar_pd(0xff, p, z));
    for (int a = 0; a < NArr; ++a)
      _mm512_storeu_pd(dst[3 + a] + cnt, _mm512_maskz_permutexvar_pd(0xff, p, _mm512_maskz_loadu_pd(tail, src[a] + b)));
    if constexpr (kStoreR2) _mm512_storeu_pd(dst[NArr + 3] + cnt, _mm512_maskz_permutexvar_pd(0xff, p, r2));
    cnt += _mm_popcnt_u32(static_cast<unsigned>(m));
    k = _mm512_add_epi64(k, eight);
  }
#elif defined(AF_AVX2_PACK)
  const __m256d t = _mm256_set1_pd(thr);
  const __m256d vx = _mm256_set1_pd(xj), vy = _mm256_set1_pd(yj), vz = _mm256_set1_pd(zj);
  __m256i k = _mm256_add_epi64(_mm256_set1_epi64x(begin), _mm256_set_epi64x(3, 2, 1, 0));
  const __m256i four = _mm256_set1_epi64x(4);
  for (int64_t b = begin; b < end; b += 4) {
    const int64_t left = end - b;
    const int tail = left >= 4 ? 15 : (1 << left) - 1;
    const __m256d x = _mm256_loadu_pd(dx + b), y = _mm256_loadu_pd(dy + b), z = _mm256_loadu_pd(dz + b);
    const __m256d ex = _mm256_sub_pd(x, vx), ey = _mm256_sub_pd(y, vy), ez = _mm256_sub_pd(z, vz);
    const __m256d r2 = _mm256_add_pd(_mm256_add_pd(_mm256_mul_pd(ex, ex), _mm256_mul_pd(ey, ey)), _mm256_mul_pd(ez, ez));
    const int m = _mm256_movemask_pd(_mm256_cmp_pd(r2, t, _CMP_LT_OQ)) & tail;
    const __m256i p = detail::pack4_perm(m);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + cnt), _mm256_permutevar8x32_epi32(k, p));
    _mm256_storeu_pd(dst[0] + cnt, detail::pack4(x, p));
    _mm256_storeu_pd(dst[1] + cnt, detail::pack4(y, p));
    _mm256_storeu_pd(dst[2] + cnt, detail::pack4(z, p));
    for (int a = 0; a < NArr; ++a) _mm256_storeu_pd(dst[3 + a] + cnt, detail::pack4(_mm256_loadu_pd(src[a] + b), p));
    if constexpr (kStoreR2) _mm256_storeu_pd(dst[NArr + 3] + cnt, detail::pack4(r2, p));
    cnt += _mm_popcnt_u32(static_cast<unsigned>(m));
    k = _mm256_add_epi64(k, four);
  }
#else
  for (int64_t b = begin; b < end; ++b) {
    const double ex = dx[b] - xj, ey = dy[b] - yj, ez = dz[b] - zj;
    const double ex2 = ex * ex, ey2 = ey * ey, ez2 = ez * ez;
    const double r2 = (ex2 + ey2) + ez2;
    out[cnt] = b;
    dst[0][cnt] = dx[b];
    dst[1][cnt] = dy[b];
    dst[2][cnt] = dz[b];
    for (int a = 0; a < NArr; ++a) dst[3 + a][cnt] = src[a][b];
    if constexpr (kStoreR2) dst[NArr + 3][cnt] = r2;
    cnt += (r2 < thr);
  }
#endif
  return cnt;
}

}  // namespace simd
}  // namespace atomforge
