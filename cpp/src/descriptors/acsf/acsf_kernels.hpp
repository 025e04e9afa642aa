// Behler-Parrinello symmetry functions: the per-centre kernels, single-source (internal header).
//
// Formulas and references: acsf.hpp. Every function here is AF_HD: no exceptions, no
// allocation, no std containers; it works on the flat parameter tables (`Tables`) and on a
// per-thread `Scratch` whose arrays the driver sizes before calling. The CPU driver (acsf.cpp,
// OpenMP over centres) and the CUDA launcher (acsf_cuda.cu, one thread per centre) run this same
// code; the CPU path is the reference.
//
// Stages for one centre atom c (element e):
//   1. gather        neighbours within the element's largest r_c, counting-sorted by element,
//                    as structure-of-arrays (d, r, 1/r), padded to whole lane chunks;
//   2. radial_terms  fc(r) once per distinct r_c; R_g(r) = exp(-eta (r - r_s)^2) fc(r) and dR_g/dr
//                    once per distinct (eta, r_s, r_c) "group";
//   3. centre_terms  G2 sums, and the angular sums over unordered neighbour pairs {j, k} in
//                    vectorised chunks of kW partners: values (Mode 0), vector-Jacobian product
//                    (Mode 1) or values + Jacobian rows (Mode 2);
//   4. finish_vjp    dE_i/dd_m per neighbour, written at its CSR slot for a deterministic scatter.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "atomforge/hd.hpp"
#include "atomforge/neighbor_list.hpp"
#include "common/cutoff.hpp"
#include "common/simd_math.hpp"

namespace atomforge {
namespace acsf {

// Lanes per chunk of the vectorised pair loop: 8 doubles = one AVX-512 register (two AVX2 ones).
// The chunk width is fixed, independent of the ISA and of data alignment, so the lane-wise
// partial sums (and hence every result) are identical for every thread count.
constexpr int64_t kW = 8;

// Triplets per block of the factorised-pair path (fact_pair_terms): a block is flushed once it
// holds at least kBlock candidates, so it has at most kBlock - 1 + (neighbours) + kW. Longer
// blocks pay the per-group and per-function bookkeeping of every pass over fewer triplets: 256
// ran 1.07-1.12x faster than 128 in paired runs on a Zen 4 EPYC (issue 17, stop 44; 64 gave
// 0.97x), and 512 1.02x faster than 256 with the fused passes (stop 45: 1.023; stop 49, after
// the shorter candidate record and the polynomial VJP: 1.020; benchmarks/results/bench_ab.md).
constexpr int64_t kBlock = 512;
// The same for the CUDA launcher (block_len with fixed = false): each GPU thread holds a whole
// block of scratch, and the launcher's speed is proportional to the centres in flight within
// its scratch budget (benchmarks/results/cuda_h200.md), so it keeps the shorter blocks.
constexpr int64_t kBlockDevice = 256;

// Length of every block array (Scratch::bcap) when kBlock + cap fits: a compile-time stride, so
// the block loops address all their arrays from one register (with a stride known only at run
// time, GCC kept a pointer per array, spilled them on AVX2 and reloaded them every iteration).
// kBlock + 392 fits centres with up to 384 neighbours (capacity_for(384) = 392); 904 doubles =
// 7232 bytes, not a multiple of 4 KiB, so the arrays do not share L1 sets.
constexpr int64_t kBlockL = kBlock + 392;
static_assert(kBlockL * 8 % 4096 != 0, "block arrays a multiple of 4 KiB long would share L1 sets");
/// Block array length for scratch capacity cap: kBlockL, or kBlock + cap if that is longer; just
/// kBlock + cap without `fixed` (the CUDA launcher: no register spills to avoid there, and less
/// memory per centre).
AF_INLINE int64_t block_len(int64_t cap, bool fixed = true) {
  if (!fixed) return kBlockDevice + cap;
  return kBlock + cap <= kBlockL ? kBlockL : kBlock + cap;
}

/// Largest power k of a shared radial exponential (Tables::group_head).
constexpr double kMaxGroupPower = 16.0;

/// The descriptor's parameters as flat arrays (host or device memory). Indices marked "local"
/// count from the start of their central element's (or pair's) range.
struct Tables {
  int32_t n_elements = 0;
  int32_t cutoff = 0;                     // CutoffType
  const int64_t* n_features = nullptr;    // (ne) features of each central element
  const double* rc_max = nullptr;         // (ne) largest r_c of each central element
  // groups: distinct (eta, r_s, r_c) of central element e in [group_begin[e], group_begin[e+1])
  const int32_t* group_begin = nullptr;   // (ne + 1)
  const double* group_eta = nullptr;
  const double* group_rs = nullptr;
  const int32_t* group_rc_slot = nullptr;  // local index into the element's r_c list
  // shared radial exponentials (radial_terms; null, as in the CUDA launcher's tables: none shared,
  // every group computed on every neighbour): exp(-eta_g (r - r_s)^2) of a group with head h >= 0
  // (local) is exp(-eta_h (r - r_s)^2)^group_power[g] (same r_s, eta_g = power eta_h to 4 ulp,
  // power 2 .. kMaxGroupPower); a head has group_members[h] > 0 such groups. group_need[g ne + a]:
  // R_g, dR_g are read on neighbour-element block a by the values / VJP passes (radial functions,
  // pairs that are not factorised); group_calc: the same, or-ed with the needs of a head's members.
  const int32_t* group_head = nullptr;
  const int32_t* group_power = nullptr;
  const int32_t* group_members = nullptr;
  const uint8_t* group_need = nullptr;    // (n groups x ne)
  const uint8_t* group_calc = nullptr;    // (n groups x ne)
  // distinct r_c of central element e in [rc_begin[e], rc_begin[e+1])
  const int32_t* rc_begin = nullptr;      // (ne + 1)
  const double* rc = nullptr;
  // radial functions (G2) of central element e in [radial_begin[e], radial_begin[e+1])
  const int32_t* radial_begin = nullptr;  // (ne + 1)
  const int64_t* radial_feature = nullptr;
  const int32_t* radial_group = nullptr;  // local group
  const int32_t* radial_neighbor = nullptr;
  // angular functions (G4/G5/G5s) of central element e in [angular_begin[e], angular_begin[e+1])
  const int32_t* angular_begin = nullptr;  // (ne + 1)
  const int64_t* angular_feature = nullptr;
  const double* angular_zeta = nullptr;
  const double* angular_pref = nullptr;    // 2^(1 - zeta)
  // unordered neighbour-element pair (a <= b) of central element e: p = (e * ne + a) * ne + b
  const int32_t* pair_group_begin = nullptr;  // (ne^3 + 1) -> angular groups
  const int32_t* pair_pow_begin = nullptr;    // (ne^3 + 1) -> angular-factor slots
  const int32_t* pair_rc_begin = nullptr;     // (ne^3 + 1) -> distinct r_c of G4 groups
  // angular groups: the functions of one pair sharing a radial group and type
  const int32_t* ag_group = nullptr;    // local group of the central element
  const int32_t* ag_narrow = nullptr;   // 1: G4 (with the r_jk term), 0: G5
  const int32_t* ag_rc_slot = nullptr;  // local index into the pair's r_c list (G4 only)
  const int32_t* ag_fn_begin = nullptr;  // (n_groups + 1) -> entries below
  const int32_t* agf_fn = nullptr;      // local angular function
  const int32_t* agf_pow = nullptr;     // local angular-factor slot of the pair
  const double* agf_pref = nullptr;     // 2^(1 - zeta)
  // angular-factor slots: P = (1 + u)^zeta with u = a cos + b sqrt(1 - (0.95 cos)^2), computed
  // once per slot (G4/G5: a = lambda, b = 0; G5s: u = cos(theta~ - theta_s), a = 0.95 cos
  // theta_s, b = sin theta_s), and P1 = (1 + u)^(zeta - 1) du/dcos
  const double* pow_a = nullptr;
  const double* pow_b = nullptr;
  const double* pow_zeta = nullptr;
  const int32_t* pow_zeta_int = nullptr;  // zeta when integral (1..64), else -1
  const double* pair_rc = nullptr;
  // shared exponentials: > 0 when every G4 group of the pair has r_s = 0 and an eta that is an
  // integer multiple ag_eta_power (1..64) of this base; exp(-eta r^2) = exp(-base r^2)^power
  const double* pair_eta_base = nullptr;  // (ne^3)
  const int32_t* ag_eta_power = nullptr;  // (n angular groups)
  // factorised pairs: >= 0 when, besides the shared exponentials, every group of the pair is G4
  // with one common r_c; the value is that r_c's local slot in the central element's r_c list.
  // Then R_g(r_j) R_g(r_k) S_g(r_jk) = E^m_g fc(r_j) fc(r_k) fc(r_jk) with one exponential
  // E = exp(-base (r_j^2 + r_k^2 + r_jk^2)) per triplet, and no per-group gathers; such pairs run
  // in blocks of triplets (fact_pair_terms).
  const int32_t* pair_fact_slot = nullptr;  // (ne^3)
  // largest ranges, for sizing the scratch
  int32_t max_groups = 0, max_rcs = 0, max_angular = 0, max_pair_groups = 0, max_pair_pows = 0,
          max_pair_rcs = 0;
};

/// Per-thread scratch for one centre, for neighbour counts up to `cap` - kW (padded length).
/// Per-neighbour arrays have length >= np = round_up(n, kW) + kW; the padding slots n .. np-1
/// are inert neighbours (d = 0, R = dR = 0) that fill up the last chunk of a pair loop.
struct Scratch {
  int64_t cap = 0;
  int64_t n_skipped = 0;  // listed neighbours gather left out (beyond r_c, coincident): their CSR
                          // slots are tslot[cap - 1 - k], k < n_skipped, cleared by finish_vjp
  int64_t *slot, *pos, *idx, *tslot, *tpos, *block, *count;  // (cap) / block, count: (ne + 1)
  int32_t* telem;                                             // (cap)
  double *d, *td;                                             // (3 cap)
  double *tr, *dx, *dy, *dz, *r, *inv_r;                      // (cap)
  double *ux, *uy, *uz;                                       // (cap) unit vectors d / r
  double *fc, *dfc;                                           // (max_rcs, cap)
  double *R, *dR;                                             // (max_groups, cap)
  double *gr, *gx, *gy, *gz;                                  // (cap) VJP accumulators
  double* gk;  // (4 cap) the fused VJP's accumulators (k side and j runs), (x, y, z, scratch) per neighbour
  double *accG;                                               // (max_angular, kW)
  double *wq, *wc;                                            // (max_angular)
  double *rj, *drj;                                           // (max_pair_groups)
  double *pfc, *pdfc;                                         // (max(max_pair_rcs, 2), cap)
  double *crjk, *r2, *ccs;                                    // (cap) r_jk, r_jk^2, cos of the candidates
  double* cand;  // (rec_arrays_max, cap): per-candidate arrays of one j when not cached (see centre_terms)
  // factorised-pair blocks (fact_pair_terms), every array bcap = block_len(cap) long
  int64_t bcap = 0;
  int64_t *btk, *bruns;  // (bcap) k of each triplet; (2 bcap) runs of equal j: j, end
  double *bt, *brec;     // (kFactTemps, bcap) temporaries; (fact_rec_arrays_max, bcap) record if not cached
};

/// The triplet cache of the fused pass (see centre_terms): caller-owned buffers; the values pass
/// appends records, the VJP pass reads them back in the same order. `overflow` is set when a
/// record did not fit (the VJP pass then recomputes; the driver grows the buffers).
struct TripletCache {
  double* d = nullptr;
  int64_t d_cap = 0, d_used = 0;
  int64_t* i = nullptr;
  int64_t i_cap = 0, i_used = 0;
  bool overflow = false;
};

/// The factor on cos theta inside G5s's angle (TorchANI): theta~ = acos(kG5sCosScale cos theta).
constexpr double kG5sCosScale = 0.95;

/// u = a cos + b sqrt(1 - (0.95 cos)^2) of an angular-factor slot and du/dcos (see Tables).
AF_LANE_INLINE void angular_u(double a, double b, double cs, double* u, double* du) {
  if (b == 0.0) {
    *u = a * cs;
    *du = a;
  } else {
    const double c = kG5sCosScale * cs;
    const double sn = ::sqrt(1.0 - c * c);
    *u = a * cs + b * sn;
    *du = a - b * kG5sCosScale * c / sn;
  }
}

/// Arrays of one candidate record of the general path: 1/r_jk, S and dS per G4 group, P and P1
/// per slot. (The rest of the triplet's geometry is recomputed from per-neighbour arrays: cheaper
/// than storing it.) Factorised pairs have their own block records (fact_rec_arrays).
AF_INLINE int64_t rec_arrays_max(const Tables& t) { return 1 + 2 * t.max_pair_groups + 2 * t.max_pair_pows; }

/// Per-triplet arrays of a factorised block record: E, F, P (npw), then for the gradient P1
/// (npw), the six geometry scalars S and the components of d_j and d_k (see fact_pair_terms).
constexpr int64_t kFactGeom = 12;
AF_INLINE int64_t fact_rec_arrays(int32_t npw, bool grad) { return 2 + npw + (grad ? npw + kFactGeom : 0); }
/// The same for the register-fused passes (fused_values / fused_vjp): E, F, cos [, S_1 .. S_6
/// (kFusedGeom, chunk-interleaved)]; never longer than fact_rec_arrays (npw >= 1). A cached fused
/// record is preceded by the components of d_j and d_k (kFusedD arrays of the block length: the
/// candidate loop writes them there, see fact_pair_terms).
constexpr int64_t kFusedGeom = 6;
constexpr int64_t kFusedD = 6;
AF_INLINE int64_t fact_rec_arrays_fused(bool grad) { return 3 + (grad ? kFusedGeom : 0); }
AF_INLINE int64_t fact_rec_arrays_max(const Tables& t) { return fact_rec_arrays(t.max_pair_pows, true); }
/// Temporary per-triplet arrays of fact_pair_terms.
constexpr int64_t kFactTemps = 23;

/// Sizes (in elements) of the buffers `carve` splits into a Scratch of capacity cap.
AF_INLINE void scratch_sizes(const Tables& t, int64_t cap, int64_t* n_double, int64_t* n_int64, int64_t* n_int32,
                             bool fixed_block = true) {
  const int64_t ne = t.n_elements;
  const int64_t prc = t.max_pair_rcs > 2 ? t.max_pair_rcs : 2;
  *n_int64 = 5 * cap + 2 * (ne + 1);
  *n_int32 = cap;
  *n_double = 6 * cap + 9 * cap + 2 * t.max_rcs * cap + 2 * t.max_groups * cap + 4 * cap +
              t.max_angular * kW + 2 * t.max_angular + 2 * t.max_pair_groups + 2 * prc * cap + 3 * cap +
              rec_arrays_max(t) * cap + 4 * cap + (kFactTemps + fact_rec_arrays_max(t)) * block_len(cap, fixed_block) +
              kW;  // slack to start the block arrays on a 64-byte boundary (carve)
  *n_int64 += 3 * block_len(cap, fixed_block);
}

/// Split caller-owned buffers (sizes from scratch_sizes) into the Scratch arrays.
AF_INLINE void carve(const Tables& t, int64_t cap, double* dbuf, int64_t* ibuf, int32_t* i32buf, Scratch& s,
                     bool fixed_block = true) {
  const int64_t ne = t.n_elements;
  const int64_t prc = t.max_pair_rcs > 2 ? t.max_pair_rcs : 2;
  s.cap = cap;
  s.slot = ibuf; ibuf += cap;
  s.pos = ibuf; ibuf += cap;
  s.idx = ibuf; ibuf += cap;
  s.tslot = ibuf; ibuf += cap;
  s.tpos = ibuf; ibuf += cap;
  s.block = ibuf; ibuf += ne + 1;
  s.count = ibuf; ibuf += ne + 1;
  s.telem = i32buf;
  double** per_cap[] = {&s.tr, &s.dx, &s.dy, &s.dz, &s.r, &s.inv_r, &s.ux, &s.uy, &s.uz,
                        &s.gr, &s.gx, &s.gy, &s.gz, &s.crjk, &s.r2, &s.ccs};
  s.d = dbuf; dbuf += 3 * cap;
  s.td = dbuf; dbuf += 3 * cap;
  for (double** p : per_cap) { *p = dbuf; dbuf += cap; }
  s.fc = dbuf; dbuf += t.max_rcs * cap;
  s.dfc = dbuf; dbuf += t.max_rcs * cap;
  s.R = dbuf; dbuf += t.max_groups * cap;
  s.dR = dbuf; dbuf += t.max_groups * cap;
  s.accG = dbuf; dbuf += t.max_angular * kW;
  s.pfc = dbuf; dbuf += prc * cap;
  s.pdfc = dbuf; dbuf += prc * cap;
  s.cand = dbuf; dbuf += rec_arrays_max(t) * cap;
  s.gk = dbuf; dbuf += 4 * cap;
  // the short arrays last: every array above (cap, a multiple of kW, per row) then starts on a
  // 64-byte boundary when dbuf does (the host workspace's buffer is 64-byte aligned)
  s.wq = dbuf; dbuf += t.max_angular;
  s.wc = dbuf; dbuf += t.max_angular;
  s.rj = dbuf; dbuf += t.max_pair_groups;
  s.drj = dbuf; dbuf += t.max_pair_groups;
  // the block arrays and the record on a 64-byte boundary too: with block lengths that are
  // multiples of kW, every chunk of kW doubles the fused passes load or store is then one cache
  // line. A 64-byte access that spans two lines costs about 1.4x on the Zen 4 EPYC of issue 17,
  // and aligning these buffers made the water force call 1.07-1.10x faster (bench_ab.md, stop 50).
  dbuf = reinterpret_cast<double*>((reinterpret_cast<uintptr_t>(dbuf) + 63) & ~static_cast<uintptr_t>(63));
  s.bcap = block_len(cap, fixed_block);
  s.bt = dbuf; dbuf += kFactTemps * s.bcap;
  s.brec = dbuf;
  s.btk = ibuf; ibuf += s.bcap;
  s.bruns = ibuf;
}

/// Capacity a centre with `count` listed neighbours needs.
AF_INLINE int64_t capacity_for(int64_t count) { return (count + kW - 1) / kW * kW + kW; }

/// out[l] = x[l]^n for kW lanes, n >= 0, by binary powering (the same products as ipow).
AF_HD inline void lanes_ipow(const double* __restrict x, int n, double* __restrict out) {
  alignas(64) double xx[kW];
  AF_SIMD
  for (int64_t l = 0; l < kW; ++l) { out[l] = 1.0; xx[l] = x[l]; }
  for (; n > 0; n >>= 1) {
    if (n & 1) {
      AF_SIMD
      for (int64_t l = 0; l < kW; ++l) out[l] *= xx[l];
    }
    AF_SIMD
    for (int64_t l = 0; l < kW; ++l) xx[l] *= xx[l];
  }
}

AF_INLINE double ipow(double x, int n) {
  double r = 1.0;
  while (n > 0) {
    if (n & 1) r *= x;
    x *= x;
    n >>= 1;
  }
  return r;
}

/// Stage 1. Gathers the neighbours of centre c within its element's rc_max, sorted by element
/// (s.block[e] .. s.block[e+1] hold element e), as SoA with padding (see Scratch). Returns the
/// neighbour count n and sets *np to the padded length; *overlap is set to the centre's
/// position index if a neighbour sits at distance zero (that neighbour is skipped).
AF_HD inline int64_t gather(const Tables& t, const NeighborView& nl, int64_t c, Scratch& s, int64_t* np,
                            int64_t* overlap) {
  const int64_t i = nl.centre(c);
  const double* x = nl.positions;
  const double xi = x[3 * i], yi = x[3 * i + 1], zi = x[3 * i + 2];
  const int32_t e = nl.species[i];
  const double rcm = t.rc_max[e];
  const double rc2 = rcm * rcm;
  const int ne = t.n_elements;
  for (int k = 0; k <= ne; ++k) s.count[k] = 0;
  int64_t n = 0;
  int64_t n_skip = 0;  // kept slots fill tslot from the front, skipped ones from the back
  for (int64_t q = nl.offsets[c]; q < nl.offsets[c + 1]; ++q) {
    const int64_t j = nl.neighbors[q];
    const double dx = x[3 * j] - xi, dy = x[3 * j + 1] - yi, dz = x[3 * j + 2] - zi;
    const double r2 = dx * dx + dy * dy + dz * dz;
    if (r2 >= rc2 || r2 == 0.0) {
      if (r2 == 0.0) *overlap = i;  // coincident atoms: reported by the driver
      s.tslot[s.cap - 1 - n_skip++] = q;
      continue;
    }
    s.tslot[n] = q;
    s.tpos[n] = j;
    s.td[3 * n] = dx;
    s.td[3 * n + 1] = dy;
    s.td[3 * n + 2] = dz;
    s.tr[n] = r2;  // r after the loop, vectorised
    s.telem[n] = nl.species[j];
    ++s.count[nl.species[j] + 1];
    ++n;
  }
  s.n_skipped = n_skip;
  {
    double* __restrict tr = s.tr;
    AF_SIMD
    for (int64_t m = 0; m < n; ++m) tr[m] = ::sqrt(tr[m]);
  }
  const int64_t npad = capacity_for(n);
  s.block[0] = 0;
  for (int k = 0; k < ne; ++k) s.block[k + 1] = s.block[k] + s.count[k + 1];
  // Padding slots: d = 0, 1/r = 0 and r beyond every cutoff, so they are finite and R = dR = 0.
  const double r_pad = 2.0 * rcm + 1.0;
  for (int64_t m = n; m < npad; ++m) {
    s.dx[m] = 0.0; s.dy[m] = 0.0; s.dz[m] = 0.0; s.inv_r[m] = 0.0;
    s.ux[m] = 0.0; s.uy[m] = 0.0; s.uz[m] = 0.0;
    s.r[m] = r_pad;
  }
  for (int k = 0; k < ne; ++k) s.count[k] = s.block[k];  // fill pointers
  for (int64_t m = 0; m < n; ++m) {  // every slot p < n is written once (the counts sum to n)
    const int64_t p = s.count[s.telem[m]]++;
    s.slot[p] = s.tslot[m];
    s.pos[p] = s.tpos[m];
    for (int k = 0; k < 3; ++k) s.d[3 * p + k] = s.td[3 * m + k];
    s.r[p] = s.tr[m];
    s.dx[p] = s.td[3 * m];
    s.dy[p] = s.td[3 * m + 1];
    s.dz[p] = s.td[3 * m + 2];
  }
  {
    const double* __restrict r = s.r;
    const double* __restrict dx = s.dx;
    const double* __restrict dy = s.dy;
    const double* __restrict dz = s.dz;
    double* __restrict ir = s.inv_r;
    double* __restrict ux = s.ux;
    double* __restrict uy = s.uy;
    double* __restrict uz = s.uz;
    AF_SIMD
    for (int64_t m = 0; m < n; ++m) {
      ir[m] = 1.0 / r[m];
      ux[m] = dx[m] * ir[m];
      uy[m] = dy[m] * ir[m];
      uz[m] = dz[m] * ir[m];
    }
  }
  *np = npad;
  return n;
}

/// r x^N with the products of ipow (binary powering from r = 1), N known at compile time: the
/// loop is unrolled, so a lane loop calling it vectorises without branches.
template <int N>
AF_LANE_INLINE double ipow_acc(double r, double x) {
  if constexpr (N == 0) {
    return r;
  } else {
    return ipow_acc<N / 2>((N & 1) ? r * x : r, x * x);
  }
}

/// Calls fn(std::integral_constant<int, n>{}) for 0 <= n <= kMaxCtPower and returns true; false (fn
/// not called) otherwise.
constexpr int kMaxCtPower = 32;
template <int N = 0, class Fn>
AF_HD inline bool with_ct_power(int n, Fn&& fn) {
  if (n == N) {
    fn(std::integral_constant<int, N>{});
    return true;
  }
  if constexpr (N < kMaxCtPower) {
    return with_ct_power<N + 1>(n, fn);
  } else {
    return false;
  }
}

/// Calls fn(begin, end) for the neighbours of the element blocks flagged in mask (ne entries;
/// adjacent blocks merged), and the padding slots [block[ne], np) when any block is flagged (the
/// vectorised angular path reads R there as zeros); mask == nullptr: fn(0, np).
template <class Fn>
AF_HD inline void for_blocks(const uint8_t* mask, int32_t ne, const Scratch& s, int64_t np, Fn&& fn) {
  if (mask == nullptr) {
    fn(int64_t{0}, np);
    return;
  }
  bool any = false, open = false;
  int64_t lo = 0;
  for (int32_t a = 0; a < ne; ++a) {
    if (mask[a]) {
      any = true;
      if (!open) lo = s.block[a];
      open = true;
    } else if (open) {
      fn(lo, s.block[a]);
      open = false;
    }
  }
  if (open) fn(lo, np);
  else if (any) fn(s.block[ne], np);
}

/// Stage 2: fc(r) and dfc/dr once per distinct r_c of the central element, R_g(r) = exp(-eta (r -
/// r_s)^2) fc(r) and dR_g/dr for its groups; zero for r >= r_c. Vectorised over the (padded)
/// neighbours. With the tables' shared exponentials (Tables::group_head), a group whose eta is k
/// times a head's (same r_s) takes the head's exponential to the k-th power (k - 1 products or
/// fewer instead of an exp; relative error k times the head's, at most kMaxGroupPower ulp-scale),
/// and unless all_groups (the Jacobian pass reads every group), each group is evaluated only on
/// the neighbour-element blocks where it is read (Tables::group_need / group_calc): on n2p2's
/// water potential 3 exponentials per neighbour instead of 13-14 (issue 17, stop 51).
AF_HD inline void radial_terms(const Tables& t, int32_t e, int64_t np, Scratch& s, bool all_groups = true) {
  const CutoffType ct = static_cast<CutoffType>(t.cutoff);
  const int32_t r0 = t.rc_begin[e], nrc = t.rc_begin[e + 1] - r0;
  for (int32_t q = 0; q < nrc; ++q) {
    const double rc = t.rc[r0 + q];
    double* f = s.fc + q * np;
    double* df = s.dfc + q * np;
    detail::cutoff_fdf_lanes(ct, np, s.r, rc, f, df);
    AF_SIMD
    for (int64_t m = 0; m < np; ++m) {
      const bool in = s.r[m] < rc;
      f[m] = in ? f[m] : 0.0;
      df[m] = in ? df[m] : 0.0;
    }
  }
  const int32_t ne = t.n_elements;
  const int32_t g0 = t.group_begin[e], ng = t.group_begin[e + 1] - g0;
  const bool shared = t.group_head != nullptr;
  const bool select = !all_groups && t.group_need != nullptr;
  const double* __restrict rr = s.r;
  // 1. heads of shared groups: the bare exponential, into R (final values in 3.)
  if (shared) {
    for (int32_t g = 0; g < ng; ++g) {
      if (t.group_members[g0 + g] == 0) continue;
      const double eta = t.group_eta[g0 + g], r_s = t.group_rs[g0 + g];
      double* __restrict R = s.R + g * np;
      for_blocks(select ? t.group_calc + (g0 + g) * ne : nullptr, ne, s, np, [&](int64_t b0, int64_t b1) {
        AF_SIMD
        for (int64_t m = b0; m < b1; ++m) {
          const double sh = rr[m] - r_s;
          R[m] = simd::exp(-eta * sh * sh);
        }
      });
    }
  }
  for (int32_t pass = 0; pass < 2; ++pass) {
    for (int32_t g = 0; g < ng; ++g) {
      const int32_t h = shared ? t.group_head[g0 + g] : -1;
      const bool head = shared && t.group_members[g0 + g] > 0;
      if ((pass == 0) != (h >= 0)) continue;  // 2. members (their head's R still bare), 3. the rest
      const double eta = t.group_eta[g0 + g], r_s = t.group_rs[g0 + g];
      const double* __restrict f = s.fc + t.group_rc_slot[g0 + g] * np;
      const double* __restrict df = s.dfc + t.group_rc_slot[g0 + g] * np;
      double* R = s.R + g * np;  // a head's R holds its bare exponential on entry (read, then overwritten)
      double* __restrict dR = s.dR + g * np;
      const uint8_t* mask = select ? t.group_need + (g0 + g) * ne : nullptr;
      // R = ex fc, dR = d(ex fc)/dr with ex = ex_of(m, r - r_s); f = df = 0 outside r_c, so R = dR = 0 there
      auto write = [&](auto ex_of) {
        for_blocks(mask, ne, s, np, [&](int64_t b0, int64_t b1) {
          AF_SIMD
          for (int64_t m = b0; m < b1; ++m) {
            const double sh = rr[m] - r_s;
            const double ex = ex_of(m, sh);
            R[m] = ex * f[m];
            dR[m] = ex * (df[m] - 2.0 * eta * sh * f[m]);
          }
        });
      };
      if (h >= 0) {
        const double* __restrict Rh = s.R + h * np;
        with_ct_power(t.group_power[g0 + g], [&](auto P) {
          write([&](int64_t m, double) { return ipow_acc<decltype(P)::value>(1.0, Rh[m]); });
        });
      } else if (head) {
        write([&](int64_t m, double) { return R[m]; });
      } else {
        write([&](int64_t, double sh) { return simd::exp(-eta * sh * sh); });
      }
    }
  }
}

/// One angular group's functions u0 .. u1 on a chunk of kW candidates (record arrays P of the
/// pair's angular-factor slots, stride apart, from c0): values acc_f += pref_f P_f base.
AF_HD inline void group_values(const Tables& t, int32_t u0, int32_t u1, const double* __restrict rec_P,
                               int64_t stride, int64_t c0, const double* __restrict base_t, double* accG) {
  for (int32_t u = u0; u < u1; ++u) {
    const double* __restrict P = rec_P + t.agf_pow[u] * stride + c0;
    double* __restrict acc = accG + t.agf_fn[u] * kW;
    const double pref = t.agf_pref[u];
    AF_SIMD
    for (int64_t l = 0; l < kW; ++l) acc[l] += pref * P[l] * base_t[l];
  }
}

/// The same for the gradient: Q = sum_f w_f pref_f P_f and Qc = sum_f w_f pref_f dP_f/dcos, with
/// dP_f/dcos = zeta_f P1_f (wq = w pref and wc = w pref zeta per function of the centre, see
/// centre_terms; the P1 arrays follow the npw P arrays).
AF_HD inline void group_weights(const Tables& t, int32_t u0, int32_t u1, const double* __restrict rec_P,
                                int64_t stride, int64_t c0, int32_t npw, const double* __restrict wq,
                                const double* __restrict wc, double* __restrict Q, double* __restrict Qc) {
  for (int64_t l = 0; l < kW; ++l) { Q[l] = 0.0; Qc[l] = 0.0; }
  for (int32_t u = u0; u < u1; ++u) {
    const double* __restrict P = rec_P + t.agf_pow[u] * stride + c0;
    const double* __restrict P1 = rec_P + (npw + t.agf_pow[u]) * stride + c0;
    const double w = wq[t.agf_fn[u]], w1 = wc[t.agf_fn[u]];
    AF_SIMD
    for (int64_t l = 0; l < kW; ++l) {
      Q[l] += w * P[l];
      Qc[l] += w1 * P1[l];
    }
  }
}

/// out[l] = x[l]^n for l < len, n >= 0, by binary powering over whole arrays (the same products
/// as ipow and lanes_ipow, so results are bit-identical to them); xx: scratch of length len.
AF_HD inline void array_ipow(const double* __restrict x, int n, double* __restrict out, double* __restrict xx,
                             int64_t len) {
  AF_SIMD
  for (int64_t l = 0; l < len; ++l) { out[l] = 1.0; xx[l] = x[l]; }
  for (; n > 0; n >>= 1) {
    if (n & 1) {
      AF_SIMD
      for (int64_t l = 0; l < len; ++l) out[l] *= xx[l];
    }
    if (n > 1) {
      AF_SIMD
      for (int64_t l = 0; l < len; ++l) xx[l] *= xx[l];
    }
  }
}

#if defined(AF_AVX512_COMPRESS)
/// The register-fused passes of fact_pair_terms (AVX-512 builds; one chunk of kW = 8 triplets is
/// one register): per chunk, everything between the loads of the block arrays and the stores of
/// the record (values) or of the six outputs (VJP) stays in registers, where the array passes
/// store and reload a temporary per function and group. The auto-vectoriser cannot keep such
/// state in registers across the run-time loops over groups and functions, hence the explicit
/// vector type (simd::v8d). Same products in the same order as the array passes, so the values
/// are bit-identical to them; only the VJP's j-side run sums are grouped by eight lanes, and the
/// VJP's group sums are polynomials in cos where FusedPlan::pdeg > 0 (fused_vjp_poly: equal to rounding).
/// FusedPlan: the pair's slots, groups and functions, flattened; build() returns false (array
/// passes) for G5s slots (angle shift), non-integral zeta or more than the fixed capacities.
struct FusedPlan {
  static constexpr int kSlots = 8, kGroups = 16, kFns = 64;
  int32_t npw = 0, ngp = 0, nfu = 0;
  double sa[kSlots];                 // lambda of each slot (u = lambda cos)
  int32_t zn[kSlots];                // zeta - 1 of each slot
  int32_t gn[kGroups];               // eta_g / eta_0 of each group
  double geta[kGroups];              // eta_g
  int32_t gu0[kGroups], gu1[kGroups];  // the group's functions (plan-local)
  int32_t fpw[kFns], ffn[kFns];      // slot, centre-local function
  double fpref[kFns], fw[kFns], fw1[kFns];  // 2^(1 - zeta); VJP weights w pref, w pref zeta
  // The VJP's per-group sums as polynomials in cos (built with the weights, when every slot has
  // |lambda| <= 1 and zeta <= kPolyMax): pdeg = the largest zeta of the pair, and
  //   Q_g  = sum_f w_f pref_f (1 + lambda_f cos)^zeta_f                  = sum_n qa[g][n] cos^n,
  //   Qc_g = sum_f w_f pref_f zeta_f lambda_f (1 + lambda_f cos)^(zeta_f - 1) = sum_n qb[g][n] cos^n
  // (binomial expansion; for |lambda| <= 1 and |cos| <= 1, 1 + lambda cos >= 0, so n2p2's clamp of
  // P to 0 where 1 + lambda cos <= 0 changes nothing but the measure-zero collinear case, where
  // the clamped term's gradient vanishes anyway). fused_vjp_poly evaluates them from the powers
  // of cos, each group to its own degree (gdeg): about a third of the products of forming P and P1
  // per slot and summing them per function.
  static constexpr int kPolyMax = 8;
  int32_t pdeg = 0;
  double qa[kGroups][kPolyMax + 1], qb[kGroups][kPolyMax];
  // The values pass's sums as power sums in cos (the same binomial expansion, without weights):
  // per group g the sums M_gn = sum E^m_g F cos^n for n = 0 .. gdeg[g] (the group's largest zeta),
  // then G_f = sum_n vc[f][n] M_gn with vc[f][n] = pref_f C(zeta_f, n) lambda_f^n
  // (fused_values_poly). vdeg = the pair's largest zeta, 0 when a slot does not allow it.
  int32_t vdeg = 0;
  int32_t gdeg[kGroups];
  int32_t fgrp[kFns];
  double vc[kFns][kPolyMax + 1];
  /// out[n] += w C(z, n) lambda^n l0 for n = 0 .. z (the binomial expansion of w l0 (1 + lambda
  /// cos)^z in powers of cos; the power of lambda runs from l0).
  static void add_binomial(double w, double lambda, double l0, int z, double* out) {
    double binom = 1.0, lp = l0;  // C(z, n), l0 lambda^n
    for (int n = 0; n <= z; ++n) {
      out[n] += w * binom * lp;
      binom = binom * (z - n) / (n + 1);
      lp *= lambda;
    }
  }
  bool build(const Tables& t, int32_t e, int64_t p, const double* wq, const double* wc) {
    if (!build_plan(t, e, p, wq, wc)) return false;
    pdeg = 0;
    vdeg = 0;
    int32_t deg = 0;
    for (int32_t pp = 0; pp < npw; ++pp) {
      if (!(sa[pp] >= -1.0 && sa[pp] <= 1.0) || zn[pp] + 1 > kPolyMax) return true;  // per slot
      deg = zn[pp] + 1 > deg ? zn[pp] + 1 : deg;
    }
    for (int32_t q = 0; q < ngp; ++q) {
      gdeg[q] = 0;
      for (int32_t u = gu0[q]; u < gu1[q]; ++u) {
        gdeg[q] = zn[fpw[u]] + 1 > gdeg[q] ? zn[fpw[u]] + 1 : gdeg[q];
        fgrp[u] = q;
      }
    }
    if (wq == nullptr) {
      for (int32_t u = 0; u < nfu; ++u) {
        for (int n = 0; n <= kPolyMax; ++n) vc[u][n] = 0.0;
        add_binomial(fpref[u], sa[fpw[u]], 1.0, zn[fpw[u]] + 1, vc[u]);
      }
      vdeg = deg;
      return true;
    }
    if (wc == nullptr) return true;
    for (int32_t q = 0; q < ngp; ++q) {
      for (int n = 0; n <= deg; ++n) qa[q][n] = 0.0;
      for (int n = 0; n < deg; ++n) qb[q][n] = 0.0;
      for (int32_t u = gu0[q]; u < gu1[q]; ++u) {
        const double lam = sa[fpw[u]];
        const int z = zn[fpw[u]] + 1;
        add_binomial(fw[u], lam, 1.0, z, qa[q]);       // w (1 + lambda cos)^z
        add_binomial(fw1[u], lam, lam, z - 1, qb[q]);  // w lambda (1 + lambda cos)^(z - 1)
      }
    }
    pdeg = deg;
    return true;
  }
  bool build_plan(const Tables& t, int32_t e, int64_t p, const double* wq, const double* wc) {
    const int32_t q0 = t.pair_group_begin[p], pw0 = t.pair_pow_begin[p];
    ngp = t.pair_group_begin[p + 1] - q0;
    npw = t.pair_pow_begin[p + 1] - pw0;
    const int32_t ub = t.ag_fn_begin[q0];
    nfu = t.ag_fn_begin[q0 + ngp] - ub;
    if (ngp > kGroups || npw > kSlots || nfu > kFns) return false;
    for (int32_t pp = 0; pp < npw; ++pp) {
      const int32_t z = t.pow_zeta_int[pw0 + pp];
      if (t.pow_b[pw0 + pp] != 0.0 || z < 1 || z > 64) return false;
      sa[pp] = t.pow_a[pw0 + pp];
      zn[pp] = z - 1;
    }
    const int32_t g0 = t.group_begin[e];
    for (int32_t q = 0; q < ngp; ++q) {
      const int32_t ag = q0 + q;
      const int32_t m = t.ag_eta_power[ag];
      if (m < 0 || m > 64 || t.ag_fn_begin[ag + 1] <= t.ag_fn_begin[ag]) return false;
      gn[q] = m;
      geta[q] = t.group_eta[g0 + t.ag_group[ag]];
      gu0[q] = t.ag_fn_begin[ag] - ub;
      gu1[q] = t.ag_fn_begin[ag + 1] - ub;
      for (int32_t u = t.ag_fn_begin[ag]; u < t.ag_fn_begin[ag + 1]; ++u) {
        fpw[u - ub] = t.agf_pow[u];
        ffn[u - ub] = t.agf_fn[u];
        fpref[u - ub] = t.agf_pref[u];
        fw[u - ub] = wq ? wq[t.agf_fn[u]] : 0.0;
        fw1[u - ub] = wc ? wc[t.agf_fn[u]] : 0.0;
      }
    }
    return true;
  }
};

/// Block arrays read by fused_values (see fact_pair_terms): r_jk, fc(r_jk) and dfc (unmasked), the
/// j and k cutoffs and 1/r, cos (the record's) and E.
struct FusedIn {
  const double *rjk, *fjk, *dfjk, *jfc, *kfc, *jdfc, *kdfc, *jir, *kir, *cs, *E;
};

/// One chunk (at c0) of the values passes' common part: F = fc_j fc_k fc_jk (fc_jk masked to 0 at
/// r_jk >= r_c), returned, and with `grad` F and the geometry scalars S_1 .. S_6 stored into the
/// record (see fact_pair_terms); csv is the chunk's cos.
template <bool grad>
AF_LANE_INLINE simd::v8d fused_chunk_record(const FusedIn& in, int64_t c0, double rc, simd::v8d csv,
                                            double* __restrict Fv, double* __restrict Sg) {
  using simd::v8d;
  const v8d zero = {};
  const v8d rj = simd::vload(in.rjk + c0);
  const auto inr = rj < rc;
  const v8d f = inr ? simd::vload(in.fjk + c0) : zero;
  const v8d jf = simd::vload(in.jfc + c0), kf = simd::vload(in.kfc + c0);
  const v8d F = jf * kf * f;
  if constexpr (grad) {
    simd::vstore(Fv + c0, F);
    double* __restrict Sc = Sg + c0 * kFusedGeom;
    const v8d df = inr ? simd::vload(in.dfjk + c0) : zero;
    const v8d irjk = rj > 0.0 ? 1.0 / rj : zero;
    const v8d ij = simd::vload(in.jir + c0), ik = simd::vload(in.kir + c0);
    const v8d s3 = jf * kf * df * irjk;
    simd::vstore(Sc + 0 * kW, simd::vload(in.jdfc + c0) * kf * f * ij + s3);
    simd::vstore(Sc + 1 * kW, jf * simd::vload(in.kdfc + c0) * f * ik + s3);
    simd::vstore(Sc + 2 * kW, s3);
    const v8d fcs = F * csv;
    simd::vstore(Sc + 3 * kW, fcs * ij * ij);
    simd::vstore(Sc + 4 * kW, fcs * ik * ik);
    simd::vstore(Sc + 5 * kW, F * ij * ik);
  }
  return F;
}

/// Values pass of one block: with `values`, acc_f += pref_f P_s E^m_g F into accG (two
/// accumulators per function, even and odd chunks, as the array pass; fused_values_poly instead
/// where the plan's power sums apply, FusedPlan::vdeg > 0); with `grad`, F and the
/// geometry scalars S_1 .. S_6 into the record (fused layout, see fact_pair_terms; cos is
/// already there, and d_j and d_k are in their own arrays). P and P1 are not
/// stored: fused_vjp recomputes them from cos (a few products per slot, cheaper than writing and
/// reading two arrays per slot through L2).
template <bool grad, bool values>
inline void fused_values(const FusedPlan& __restrict pl, int64_t cntp, double rc, const FusedIn& in,
                         double* __restrict Fv, double* __restrict Sg, double* __restrict accG) {
  using simd::v8d;
  const int32_t npw = pl.npw, ngp = pl.ngp, nfu = pl.nfu;
  const double* __restrict E = in.E;
  v8d accA[FusedPlan::kFns], accB[FusedPlan::kFns];
  if constexpr (values) {
    for (int32_t u = 0; u < nfu; ++u) {
      accA[u] = simd::vload(accG + pl.ffn[u] * kW);
      accB[u] = v8d{};
    }
  }
  const v8d zero = {};
  for (int64_t c0 = 0; c0 < cntp; c0 += kW) {
    const v8d csv = simd::vload(in.cs + c0);
    const v8d F = fused_chunk_record<grad>(in, c0, rc, csv, Fv, Sg);
    if constexpr (values) {
      v8d Pv[FusedPlan::kSlots];
      for (int32_t pp = 0; pp < npw; ++pp) {
        const v8d plc = 1.0 + pl.sa[pp] * csv;
        const v8d p1c = simd::vipow(plc, pl.zn[pp]);
        Pv[pp] = plc > 0.0 ? p1c * plc : zero;
      }
      const v8d Ec = simd::vload(E + c0);
      v8d* __restrict acc = (c0 / kW) & 1 ? accB : accA;
      for (int32_t q = 0; q < ngp; ++q) {
        const v8d base = simd::vipow(Ec, pl.gn[q]) * F;
        for (int32_t u = pl.gu0[q]; u < pl.gu1[q]; ++u) acc[u] += pl.fpref[u] * Pv[pl.fpw[u]] * base;
      }
    }
  }
  if constexpr (values)
    for (int32_t u = 0; u < nfu; ++u) simd::vstore(accG + pl.ffn[u] * kW, accA[u] + accB[u]);
}

/// fused_values with the plan's power sums (FusedPlan::vdeg == D): per group, M_gn += E^m_g F cos^n
/// for n = 0 .. gdeg[g] (even and odd chunks apart, as fused_values), then acc_f += sum_n vc[f][n]
/// M_gn: the functions of a group share their sums, so a chunk costs one product per power and
/// group instead of the slot powers and two products per function. Equal to fused_values to
/// rounding (the binomial expansion of (1 + lambda cos)^zeta, |lambda| <= 1; see FusedPlan).
template <bool grad, int D>
inline void fused_values_poly(const FusedPlan& __restrict pl, int64_t cntp, double rc, const FusedIn& in,
                              double* __restrict Fv, double* __restrict Sg, double* __restrict accG) {
  using simd::v8d;
  const int32_t ngp = pl.ngp, nfu = pl.nfu;
  const double* __restrict E = in.E;
  v8d MA[FusedPlan::kGroups][D + 1], MB[FusedPlan::kGroups][D + 1];
  for (int32_t q = 0; q < ngp; ++q)
    for (int n = 0; n <= D; ++n) { MA[q][n] = v8d{}; MB[q][n] = v8d{}; }
  for (int64_t c0 = 0; c0 < cntp; c0 += kW) {
    const v8d csv = simd::vload(in.cs + c0);
    const v8d F = fused_chunk_record<grad>(in, c0, rc, csv, Fv, Sg);
    v8d cp[D + 1];
    cp[0] = v8d{} + 1.0;
#pragma GCC unroll 8
    for (int n = 1; n <= D; ++n) cp[n] = cp[n - 1] * csv;
    const v8d Ec = simd::vload(E + c0);
    auto* __restrict M = (c0 / kW) & 1 ? MB : MA;
    for (int32_t q = 0; q < ngp; ++q) {
      const v8d base = simd::vipow(Ec, pl.gn[q]) * F;
      const int32_t gd = pl.gdeg[q];
      M[q][0] += base;
#pragma GCC unroll 8
      for (int n = 1; n <= D; ++n)
        if (n <= gd) M[q][n] += base * cp[n];
    }
  }
  for (int32_t u = 0; u < nfu; ++u) {
    const int32_t q = pl.fgrp[u];
    v8d a = simd::vload(accG + pl.ffn[u] * kW);
    for (int n = 0; n <= D; ++n) a += pl.vc[u][n] * (MA[q][n] + MB[q][n]);
    simd::vstore(accG + pl.ffn[u] * kW, a);
  }
}

/// The VJP's outputs for the chunk at c0 from its group sums X, Y, Z (see fact_pair_terms):
/// dE/dd_j = A_j d_j + B d_k into o0..o2 (summed per run of j afterwards) and dE/dd_k = A_k d_k +
/// B d_j added straight into gk at each triplet's k (simd::add_xyz_aos), with A_j, A_k and B from F
/// and the record's geometry scalars S (chunk-interleaved); d_j and d_k from the six arrays at D,
/// D + ds, ..., D + 5 ds (x, y, z of j, then of k).
AF_LANE_INLINE void vjp_chunk_outputs(simd::v8d X, simd::v8d Y, simd::v8d Z, const double* __restrict F,
                                      const double* __restrict S, const double* __restrict D, int64_t ds,
                                      int64_t c0, double* __restrict o0, double* __restrict o1,
                                      double* __restrict o2, const int64_t* __restrict tk,
                                      double* __restrict gk) {
  using simd::v8d;
  const double* __restrict Sc = S + c0 * kFusedGeom;
  const v8d yf2 = 2.0 * Y * simd::vload(F + c0);
  const v8d yf4 = 2.0 * yf2;
  const v8d aj = X * simd::vload(Sc + 0 * kW) - yf4 - Z * simd::vload(Sc + 3 * kW);
  const v8d ak = X * simd::vload(Sc + 1 * kW) - yf4 - Z * simd::vload(Sc + 4 * kW);
  const v8d bb = yf2 - X * simd::vload(Sc + 2 * kW) + Z * simd::vload(Sc + 5 * kW);
  const double* __restrict Dc = D + c0;
  const v8d jx = simd::vload(Dc), jy = simd::vload(Dc + ds), jz = simd::vload(Dc + 2 * ds);
  const v8d kx = simd::vload(Dc + 3 * ds), ky = simd::vload(Dc + 4 * ds), kz = simd::vload(Dc + 5 * ds);
  simd::vstore(o0 + c0, aj * jx + bb * kx);
  simd::vstore(o1 + c0, aj * jy + bb * ky);
  simd::vstore(o2 + c0, aj * jz + bb * kz);
  // the k side straight into the per-neighbour records (padding triplets add to the padding slots)
  simd::add_xyz_aos(ak * kx + bb * jx, ak * ky + bb * jy, ak * kz + bb * jz, tk + c0, gk);
}

/// fused_vjp with the plan's polynomial Q_g and Qc_g (FusedPlan::pdeg == D): the powers of cos
/// once per chunk, then per group sum_n a_n cos^n to the group's own degree (FusedPlan::gdeg;
/// groups of zeta 1 take one product, not D). Equal to fused_vjp to rounding.
template <int D>
inline void fused_vjp_poly(const FusedPlan& __restrict pl, int64_t cntp, const double* __restrict E,
                           const double* __restrict F, const double* __restrict Cs,
                           const double* __restrict S, const double* __restrict Dd, int64_t ds,
                           double* __restrict o0, double* __restrict o1, double* __restrict o2,
                           const int64_t* __restrict tk, double* __restrict gk) {
  using simd::v8d;
  const int32_t ngp = pl.ngp;
  for (int64_t c0 = 0; c0 < cntp; c0 += kW) {
    const v8d Ec = simd::vload(E + c0);
    const v8d csv = simd::vload(Cs + c0);
    v8d cp[D + 1];  // cos^n, shared by the groups
    cp[1] = csv;
#pragma GCC unroll 8
    for (int n = 2; n <= D; ++n) cp[n] = cp[n - 1] * csv;
    v8d X = {}, Y = {}, Z = {};
    for (int32_t q = 0; q < ngp; ++q) {
      const v8d e = simd::vipow(Ec, pl.gn[q]);
      const double* __restrict a = pl.qa[q];
      const double* __restrict b = pl.qb[q];
      const int32_t gd = pl.gdeg[q];  // the group's degree: its higher coefficients are 0
      v8d Qv = v8d{} + a[0];
#pragma GCC unroll 8
      for (int n = 1; n <= D; ++n)
        if (n <= gd) Qv += a[n] * cp[n];
      v8d Qcv = v8d{} + b[0];
#pragma GCC unroll 8
      for (int n = 1; n < D; ++n)
        if (n < gd) Qcv += b[n] * cp[n];
      const v8d qe = Qv * e;
      X += qe;
      Y += pl.geta[q] * qe;
      Z += Qcv * e;
    }
    vjp_chunk_outputs(X, Y, Z, F, S, Dd, ds, c0, o0, o1, o2, tk, gk);
  }
}

/// VJP of one block (see fact_pair_terms): P_s and P1_s from the record's cos (the same products
/// as fused_values and the array pass, so bit-identical), X, Y, Z from them and the plan's
/// weights, then dE/dd_j = A_j d_j + B d_k (o0..o2) and dE/dd_k = A_k d_k + B d_j (into gk) per
/// triplet (vjp_chunk_outputs).
inline void fused_vjp(const FusedPlan& __restrict pl, int64_t cntp, const double* __restrict E,
                      const double* __restrict F, const double* __restrict Cs,
                      const double* __restrict S, const double* __restrict Dd, int64_t ds,
                      double* __restrict o0, double* __restrict o1, double* __restrict o2,
                      const int64_t* __restrict tk, double* __restrict gk) {
  using simd::v8d;
  const int32_t ngp = pl.ngp, npw = pl.npw;
  const v8d zero = {};
  for (int64_t c0 = 0; c0 < cntp; c0 += kW) {
    const v8d Ec = simd::vload(E + c0);
    const v8d csv = simd::vload(Cs + c0);
    v8d Pv[FusedPlan::kSlots], P1v[FusedPlan::kSlots];
    for (int32_t pp = 0; pp < npw; ++pp) {
      const double sa = pl.sa[pp];
      const v8d plc = 1.0 + sa * csv;
      const v8d p1c = simd::vipow(plc, pl.zn[pp]);
      const auto pos = plc > 0.0;
      Pv[pp] = pos ? p1c * plc : zero;
      P1v[pp] = pos ? sa * p1c : zero;
    }
    v8d X = {}, Y = {}, Z = {};
    for (int32_t q = 0; q < ngp; ++q) {
      const v8d e = simd::vipow(Ec, pl.gn[q]);
      const int32_t u0 = pl.gu0[q];
      v8d Qv = pl.fw[u0] * Pv[pl.fpw[u0]];
      v8d Qcv = pl.fw1[u0] * P1v[pl.fpw[u0]];
      for (int32_t u = u0 + 1; u < pl.gu1[q]; ++u) {
        Qv += pl.fw[u] * Pv[pl.fpw[u]];
        Qcv += pl.fw1[u] * P1v[pl.fpw[u]];
      }
      const v8d qe = Qv * e;
      X += qe;
      Y += pl.geta[q] * qe;
      Z += Qcv * e;
    }
    vjp_chunk_outputs(X, Y, Z, F, S, Dd, ds, c0, o0, o1, o2, tk, gk);
  }
}
#endif

/// Stage 3 for one factorised neighbour-element pair (Tables::pair_fact_slot >= 0): the triplets
/// {j, k} of centre element e with j in element block a, k in block b and r_jk < r_c, processed
/// in blocks of about kBlock triplets that span several j. Every stage is a long vectorised
/// loop over the whole block, so the per-group and per-function bookkeeping is paid once per
/// block instead of once per 8 triplets. On AVX-512 builds the values pass after the geometry
/// and the VJP run instead as fused_values / fused_vjp (per chunk of 8 triplets, state in
/// registers; see there), when the pair's plan allows.
///
/// With E = exp(-eta_0 (r_j^2 + r_k^2 + r_jk^2)), F = fc(r_j) fc(r_k) fc(r_jk) and
/// P_s = (1 + lambda_s cos)^zeta_s, a function f of group g (eta_g = m_g eta_0) and slot s is
///   G_f = sum_{j<k} pref_f P_s E^m_g F                      (G4: [B11] Eq. 8, see acsf.hpp)
/// and with w = dE/dG, X = sum_g Q_g E^m_g, Y = sum_g eta_g Q_g E^m_g, Z = sum_g Qc_g E^m_g
/// (Q_g = sum_f w_f pref_f P_s, Qc_g = sum_f w_f pref_f zeta_f P1_s, P1_s = dP_s/dcos / zeta_s)
/// the gradient with respect to the neighbour vectors d_j and d_k is
///   dE/dd_j = X V_j1 + Y V_j2 + Z V_j3,   dE/dd_k = X V_k1 + Y V_k2 + Z V_k3,
///   V_j1 = dfc_j fc_k fc_jk u_j - fc_j fc_k dfc_jk e / r_jk,  V_j2 = -2 r_j F u_j + 2 F e,
///   V_j3 = F (u_k - cos u_j) / r_j  (V_k: j and k exchanged, e -> -e),  e = d_k - d_j.
/// Written in d_j and d_k (u = d / r, e = d_k - d_j) this is
///   dE/dd_j = A_j d_j + B d_k,  dE/dd_k = A_k d_k + B d_j,
///   A_j = X S_1 - 4 Y F - Z S_4,  A_k = X S_2 - 4 Y F - Z S_5,  B = 2 Y F - X S_3 + Z S_6,
///   S_1 = dfc_j fc_k fc_jk / r_j + S_3,  S_2 = fc_j dfc_k fc_jk / r_k + S_3,
///   S_3 = fc_j fc_k dfc_jk / r_jk,  S_4 = F cos / r_j^2,  S_5 = F cos / r_k^2,  S_6 = F / (r_j r_k).
/// The S do not depend on w: the values pass stores them with E, F, P, P1, d_j and d_k in the
/// triplet cache, and each VJP pass (one per committee member) only forms X, Y, Z, A, B and the
/// sums (12 numbers per triplet instead of the 18 components of the six V: fewer products in
/// both passes).
///
/// Block record (cache or scratch): int [cnt, last, nruns, k (cntp), run j (nruns), run end
/// (nruns)] (k first: the candidate loop compacts it in place when the cache has room); double
/// arrays of cntp: E, F, P (npw) [, P1 (npw), S] for the array passes (fact_rec_arrays) or E, F,
/// cos [, S] for the fused passes (fact_rec_arrays_fused; Mode 0 and 1 of a pair build the same
/// plan, so the writer and the reader agree on the layout). The array passes' twelve
/// geometry arrays (S_1 .. S_6, d_j, d_k) are interleaved by chunks of kW triplets: S_i of triplet c0 + l
/// (c0 a multiple of kW) at (c0 kFactGeom + i kW + l). Their loops then address all twelve from one
/// pointer (with separate arrays, GCC spilled the pointers and reloaded them every iteration on AVX2).
/// The fused passes interleave S_1 .. S_6 alike (kFusedGeom); a cached fused record is preceded by
/// d_j and d_k as kFusedD plain arrays of L (x, y, z of j, then of k), which the candidate loop
/// fills in place (place_d): no copies into the record.
/// Padding triplets (cnt .. cntp) use the inert padding neighbours n .. n + kW - 1 as j and k:
/// F = 0, every S = 0 and d_j = d_k = 0.
/// kL: the block array length when known at compile time (kBlockL), else 0 (s.bcap).
template <int Mode, int64_t kL>
AF_HD inline void fact_pair_terms(const Tables& t, int32_t e, int a, int b, int64_t p, int64_t n, int64_t np,
                                  Scratch& s, TripletCache* cache, bool cache_write) {
  const CutoffType ct = static_cast<CutoffType>(t.cutoff);
  const int32_t g0 = t.group_begin[e];
  const int32_t q0 = t.pair_group_begin[p], ngp = t.pair_group_begin[p + 1] - q0;
  const int32_t pw0 = t.pair_pow_begin[p], npw = t.pair_pow_begin[p + 1] - pw0;
  const double rc = t.pair_rc[t.pair_rc_begin[p]];
  const double rc2 = rc * rc;
  const double eta0 = t.pair_eta_base[p];
  const int32_t fslot = t.pair_fact_slot[p];
  const bool reading = Mode == 1 && cache != nullptr;
  const bool writing = Mode == 0 && cache != nullptr && cache_write;
  const bool grad = Mode == 1 || writing;
  const int64_t L = kL > 0 ? kL : s.bcap;  // length of every block array
  const double* __restrict FC = s.fc + fslot * np;
  const double* __restrict DFC = s.dfc + fslot * np;
  const double* __restrict IR = s.inv_r;
  const double* __restrict Dx = s.dx;
  const double* __restrict Dy = s.dy;
  const double* __restrict Dz = s.dz;
  double* __restrict tmp = s.bt;  // kFactTemps arrays of L
  auto T = [&](int i) { return tmp + i * L; };

#if defined(AF_AVX512_COMPRESS)
  // the register-fused passes' view of the pair (see fused_values / fused_vjp)
  FusedPlan plan;
  const bool fused = (Mode == 0 || Mode == 1) && plan.build(t, e, p, Mode == 1 ? s.wq : nullptr, Mode == 1 ? s.wc : nullptr);
#else
  constexpr bool fused = false;
#endif
  // record layout: E, F, then P (npw) [, P1 (npw), S] (array passes) or cos [, S] (fused passes)
  const int64_t nrec = fused ? fact_rec_arrays_fused(grad) : fact_rec_arrays(npw, grad);

  // one block: geometry and record (unless read), then values or the VJP
  auto process = [&](int64_t cnt, int64_t nruns, const int64_t* __restrict run_j, const int64_t* __restrict run_end,
                     const int64_t* __restrict tk, const double* __restrict Dd, const double* __restrict rec,
                     int64_t cntp) {
    const double* __restrict E = rec;
    const double* __restrict F = rec + cntp;
    const double* __restrict P = rec + 2 * cntp;  // the fused layout has cos here, and no P1
    const double* __restrict P1 = rec + (2 + npw) * cntp;
    // S_1 .. S_6, d_j, d_k (chunk-interleaved)
    const double* __restrict S = rec + (fused ? 3 : 2 + 2 * npw) * cntp;
    if (Mode != 1) {  // values: acc_f += pref_f P_s E^m_g F
      double* __restrict xx = T(1);
      double* __restrict base = T(2);
      for (int32_t q = 0; q < ngp; ++q) {
        const int32_t ag = q0 + q;
        const int m = t.ag_eta_power[ag];
        if (!with_ct_power(m, [&](auto M) {
              AF_SIMD
              for (int64_t c = 0; c < cntp; ++c) base[c] = ipow_acc<decltype(M)::value>(1.0, E[c]) * F[c];
            })) {
          array_ipow(E, m, base, xx, cntp);
          AF_SIMD
          for (int64_t c = 0; c < cntp; ++c) base[c] *= F[c];
        }
        for (int32_t u = t.ag_fn_begin[ag]; u < t.ag_fn_begin[ag + 1]; ++u) {
          const double* __restrict Ps = P + t.agf_pow[u] * cntp;
          double* __restrict acc = s.accG + t.agf_fn[u] * kW;
          const double pref = t.agf_pref[u];
          // two lane accumulators (even and odd chunks): half the dependency chain of one
          alignas(64) double al[kW], bl[kW];
          for (int64_t l = 0; l < kW; ++l) { al[l] = acc[l]; bl[l] = 0.0; }
          int64_t c0 = 0;
          for (; c0 + 2 * kW <= cntp; c0 += 2 * kW) {
            AF_SIMD
            for (int64_t l = 0; l < kW; ++l) {
              al[l] += pref * Ps[c0 + l] * base[c0 + l];
              bl[l] += pref * Ps[c0 + kW + l] * base[c0 + kW + l];
            }
          }
          if (c0 < cntp) {
            AF_SIMD
            for (int64_t l = 0; l < kW; ++l) al[l] += pref * Ps[c0 + l] * base[c0 + l];
          }
          for (int64_t l = 0; l < kW; ++l) acc[l] = al[l] + bl[l];
        }
      }
    }
    if (Mode == 1) {  // VJP: X, Y, Z, then dE/dd_j and dE/dd_k
      double* __restrict out[6] = {T(7), T(8), T(9), T(10), T(11), T(12)};  // j x y z, k x y z
#if defined(AF_AVX512_COMPRESS)
      if (Mode == 1 && fused) {
        const double* __restrict Cs = rec + 2 * cntp;
        switch (plan.pdeg) {
#define AF_VJP_POLY(D) \
  case D: fused_vjp_poly<D>(plan, cntp, E, F, Cs, S, Dd, L, out[0], out[1], out[2], tk, s.gk); break;
          AF_VJP_POLY(1) AF_VJP_POLY(2) AF_VJP_POLY(3) AF_VJP_POLY(4)
          AF_VJP_POLY(5) AF_VJP_POLY(6) AF_VJP_POLY(7) AF_VJP_POLY(8)
#undef AF_VJP_POLY
          default: fused_vjp(plan, cntp, E, F, Cs, S, Dd, L, out[0], out[1], out[2], tk, s.gk);
        }
      } else
#endif
      {
        double* __restrict Eg = T(0);
        double* __restrict xx = T(1);
        double* __restrict Q = T(2);
        double* __restrict Qc = T(3);
        double* __restrict X = T(4);
        double* __restrict Y = T(5);
        double* __restrict Z = T(6);
        for (int32_t q = 0; q < ngp; ++q) {
          const int32_t ag = q0 + q;
          const int32_t u0 = t.ag_fn_begin[ag], u1 = t.ag_fn_begin[ag + 1];
          for (int32_t u = u0; u < u1; ++u) {  // Q, Qc (the first function assigns)
            const double* __restrict Ps = P + t.agf_pow[u] * cntp;
            const double* __restrict P1s = P1 + t.agf_pow[u] * cntp;
            const double w = s.wq[t.agf_fn[u]], w1 = s.wc[t.agf_fn[u]];
            if (u == u0) {
              AF_SIMD
              for (int64_t c = 0; c < cntp; ++c) {
                Q[c] = w * Ps[c];
                Qc[c] = w1 * P1s[c];
              }
            } else {
              AF_SIMD
              for (int64_t c = 0; c < cntp; ++c) {
                Q[c] += w * Ps[c];
                Qc[c] += w1 * P1s[c];
              }
            }
          }
          const double eta = t.group_eta[g0 + t.ag_group[ag]];
          const int m = t.ag_eta_power[ag];
          // X, Y, Z += (Q, eta Q, Qc) E^m (the first group assigns); M < 0: Eg_or_E holds E^m
          auto accumulate = [&](const double* __restrict Eg_or_E, auto M) {
            constexpr int kM = decltype(M)::value;
            auto eg = [&](int64_t c) { return kM >= 0 ? ipow_acc<(kM >= 0 ? kM : 0)>(1.0, Eg_or_E[c]) : Eg_or_E[c]; };
            if (q == 0) {
              AF_SIMD
              for (int64_t c = 0; c < cntp; ++c) {
                const double e = eg(c), qe = Q[c] * e;
                X[c] = qe;
                Y[c] = eta * qe;
                Z[c] = Qc[c] * e;
              }
            } else {
              AF_SIMD
              for (int64_t c = 0; c < cntp; ++c) {
                const double e = eg(c), qe = Q[c] * e;
                X[c] += qe;
                Y[c] += eta * qe;
                Z[c] += Qc[c] * e;
              }
            }
          };
          if (!with_ct_power(m, [&](auto M) { accumulate(E, M); })) {
            array_ipow(E, m, Eg, xx, cntp);
            accumulate(Eg, std::integral_constant<int, -1>{});
          }
        }
        {  // out_j = A_j d_j + B d_k, out_k = A_k d_k + B d_j
          double* __restrict o0 = out[0];
          double* __restrict o1 = out[1];
          double* __restrict o2 = out[2];
          double* __restrict o3 = out[3];
          double* __restrict o4 = out[4];
          double* __restrict o5 = out[5];
          for (int64_t c0 = 0; c0 < cntp; c0 += kW) {
            const double* __restrict Sc = S + c0 * kFactGeom;
            AF_SIMD
            for (int64_t l = 0; l < kW; ++l) {
              const int64_t c = c0 + l;
              const double x = X[c], z = Z[c], yf2 = 2.0 * Y[c] * F[c];
              const double yf4 = 2.0 * yf2;
              const double aj = x * Sc[0 * kW + l] - yf4 - z * Sc[3 * kW + l];
              const double ak = x * Sc[1 * kW + l] - yf4 - z * Sc[4 * kW + l];
              const double bb = yf2 - x * Sc[2 * kW + l] + z * Sc[5 * kW + l];
              const double jx = Sc[6 * kW + l], jy = Sc[7 * kW + l], jz = Sc[8 * kW + l];
              const double kx = Sc[9 * kW + l], ky = Sc[10 * kW + l], kz = Sc[11 * kW + l];
              o0[c] = aj * jx + bb * kx;
              o1[c] = aj * jy + bb * ky;
              o2[c] = aj * jz + bb * kz;
              o3[c] = ak * kx + bb * jx;
              o4[c] = ak * ky + bb * jy;
              o5[c] = ak * kz + bb * jz;
            }
          }
        }
      }
      double* __restrict gx = s.gx;
      double* __restrict gy = s.gy;
      double* __restrict gz = s.gz;
#if defined(AF_AVX512_COMPRESS)
      if (Mode == 1 && fused) {  // j side: one sum per run of equal j, eight lanes at a time,
        int64_t c = 0;           // into the neighbour's (x, y, z, scratch) record as the k side
        for (int64_t r = 0; r < nruns; ++r) {
          simd::range_sums3_add4(out[0], out[1], out[2], c, run_end[r], s.gk + 4 * run_j[r]);
          c = run_end[r];
        }
      } else
#endif
      {
        int64_t c = 0;
        for (int64_t r = 0; r < nruns; ++r) {  // j side: one sum per run of equal j, in order
          double sx = 0.0, sy = 0.0, sz = 0.0;
          for (; c < run_end[r]; ++c) { sx += out[0][c]; sy += out[1][c]; sz += out[2][c]; }
          gx[run_j[r]] += sx; gy[run_j[r]] += sy; gz[run_j[r]] += sz;
        }
      }
#if defined(AF_AVX512_COMPRESS)
      if (!(Mode == 1 && fused))  // (the fused VJP added the k side into s.gk, chunk by chunk)
#endif
        for (int64_t c2 = 0; c2 < cnt; ++c2) {  // k side
          const int64_t m = tk[c2];
          gx[m] += out[3][c2]; gy[m] += out[4][c2]; gz[m] += out[5][c2];
        }
    }
  };

  if (reading) {
    for (;;) {
      const int64_t* hdr = cache->i + cache->i_used;
      const int64_t cnt = hdr[0], last = hdr[1], nruns = hdr[2];
      const int64_t cntp = (cnt + kW - 1) / kW * kW;
      const int64_t* tk = hdr + 3;
      const int64_t* run_j = tk + cntp;
      const int64_t* run_end = run_j + nruns;
      cache->i_used += 3 + 2 * nruns + cntp;
      const double* Dd = cache->d + cache->d_used;  // fused: d_j, d_k (kFusedD arrays of L)
      if (fused) cache->d_used += kFusedD * L;
      const double* rec = cache->d + cache->d_used;
      cache->d_used += nrec * cntp;
      if (cnt > 0) process(cnt, nruns, run_j, run_end, tk, Dd, rec, cntp);
      if (last) break;
    }
    return;
  }

  // building blocks: candidates of each j appended (compacted k, broadcast j data)
  int64_t* __restrict tk = s.btk;
  int64_t* __restrict run_j = s.bruns;
  int64_t* __restrict run_end = s.bruns + L;
  double* __restrict jir = T(5);
  double* __restrict jfc = T(6);
  double* __restrict jdfc = T(8);
  // k data, compacted with the candidates (no gather in flush): d_k, 1/r_k, fc, dfc. r_k^2 and
  // r_jk^2 are formed again from d_j and d_k in flush (a few products per triplet, cheaper than
  // compacting two more arrays per candidate scanned and broadcasting r_j; issue 17)
  double* __restrict kir = T(9);
  double* __restrict kfc = T(10);
  double* __restrict kdfc = T(11);
  int64_t cnt = 0, nruns = 0;
  // flush threshold: kBlock, or kBlockDevice for the CUDA launcher's block length (block_len)
  const int64_t fill = kL > 0 ? kBlock : s.bcap - s.cap;
  // The block's k indices go straight to their place in the triplet cache when it has room for
  // a whole block array (and the compaction's slack), not through scratch and a copy at flush.
  auto place_tk = [&]() {
    tk = s.btk;
    if (writing && !cache->overflow && cache->i_used + 3 + 3 * L + kW <= cache->i_cap)
      tk = cache->i + cache->i_used + 3;
  };
  place_tk();
  // d_j and d_k (x, y, z of j, then of k): six arrays L apart, in scratch (T(13) .. T(18)) or,
  // for a fused record bound for the cache, at the record's start in the cache, where the fused
  // VJP reads them (no copy into the record: six stores fewer per chunk of triplets)
  double *__restrict jx, *__restrict jy, *__restrict jz, *__restrict kx, *__restrict ky, *__restrict kz;
  bool d_in_cache = false;
  auto place_d = [&]() {
    double* base = T(13);
    d_in_cache = fused && writing && !cache->overflow &&
                 cache->d_used + kFusedD * L + nrec * L <= cache->d_cap;
    if (d_in_cache) base = cache->d + cache->d_used;
    jx = base; jy = base + L; jz = base + 2 * L;
    kx = base + 3 * L; ky = base + 4 * L; kz = base + 5 * L;
  };
  place_d();

  auto flush = [&](bool last) {
    const int64_t cntp = (cnt + kW - 1) / kW * kW;
    for (int64_t c = cnt; c < cntp; ++c) {  // padding triplets
      const int64_t m = n + (c - cnt);
      tk[c] = m;
      jx[c] = 0.0; jy[c] = 0.0; jz[c] = 0.0; jir[c] = 0.0; jfc[c] = 0.0; jdfc[c] = 0.0;
      kx[c] = Dx[m]; ky[c] = Dy[m]; kz[c] = Dz[m]; kir[c] = IR[m]; kfc[c] = FC[m]; kdfc[c] = DFC[m];
    }
    bool to_cache = writing && !cache->overflow;
    const int64_t dblk = fused ? kFusedD * L : 0;  // the fused record's d_j, d_k (place_d)
    if (to_cache && ((fused && !d_in_cache) || cache->i_used + 3 + 2 * nruns + cntp > cache->i_cap ||
                     cache->d_used + dblk + nrec * cntp > cache->d_cap)) {
      cache->overflow = true;  // the driver grows the cache for the next centres
      to_cache = false;
    }
    double* __restrict rec = s.brec;
    if (to_cache) {  // header [cnt, last, nruns], tk (cntp), run_j, run_end (nruns each)
      int64_t* hdr = cache->i + cache->i_used;
      const int64_t nr = nruns;  // a local: stores through hdr could alias the captured count
      hdr[0] = cnt; hdr[1] = last ? 1 : 0; hdr[2] = nr;
      if (tk != hdr + 3) memcpy(hdr + 3, tk, cntp * sizeof(int64_t));
      memcpy(hdr + 3 + cntp, run_j, nr * sizeof(int64_t));
      memcpy(hdr + 3 + cntp + nr, run_end, nr * sizeof(int64_t));
      cache->i_used += 3 + 2 * nruns + cntp;
      rec = cache->d + cache->d_used + dblk;
      cache->d_used += dblk + nrec * cntp;
    }
    if (cnt > 0) {
      double* __restrict E = rec;
      double* __restrict Fv = rec + cntp;
      double* __restrict P = rec + 2 * cntp;
      double* __restrict cs = fused ? rec + 2 * cntp : T(0);  // the fused record keeps cos
      double* __restrict rjk = T(1);
      double* __restrict fjk = T(3);
      double* __restrict dfjk = T(4);
      AF_SIMD
      for (int64_t c = 0; c < cntp; ++c) {  // geometry, E
        const double ex = kx[c] - jx[c], ey = ky[c] - jy[c], ez = kz[c] - jz[c];
        const double r2 = ex * ex + ey * ey + ez * ez;
        const double rj2 = jx[c] * jx[c] + jy[c] * jy[c] + jz[c] * jz[c];
        const double rk2 = kx[c] * kx[c] + ky[c] * ky[c] + kz[c] * kz[c];
        rjk[c] = ::sqrt(r2);
        cs[c] = (jx[c] * kx[c] + jy[c] * ky[c] + jz[c] * kz[c]) * jir[c] * kir[c];
        E[c] = simd::exp(-eta0 * (rj2 + rk2 + r2));
      }
      if (grad)
        detail::cutoff_fdf_lanes<true>(ct, cntp, rjk, rc, fjk, dfjk);
      else
        detail::cutoff_fdf_lanes<false>(ct, cntp, rjk, rc, fjk, dfjk);
#if defined(AF_AVX512_COMPRESS)
      if (fused) {  // Mode 0 (values, and the record when cached) or 1 (the record, then the VJP)
        const FusedIn in{rjk, fjk, dfjk, jfc, kfc, jdfc, kdfc, jir, kir, cs, E};
        double* __restrict Sg = rec + 3 * cntp;
        if (Mode == 1)
          fused_values<true, false>(plan, cntp, rc, in, Fv, Sg, s.accG);
        else {
          switch (plan.vdeg) {
#define AF_VAL_POLY(D)                                                              \
  case D:                                                                           \
    if (grad) fused_values_poly<true, D>(plan, cntp, rc, in, Fv, Sg, s.accG);       \
    else fused_values_poly<false, D>(plan, cntp, rc, in, Fv, Sg, s.accG);           \
    break;
            AF_VAL_POLY(1) AF_VAL_POLY(2) AF_VAL_POLY(3) AF_VAL_POLY(4)
            AF_VAL_POLY(5) AF_VAL_POLY(6) AF_VAL_POLY(7) AF_VAL_POLY(8)
#undef AF_VAL_POLY
            default:
              if (grad) fused_values<true, true>(plan, cntp, rc, in, Fv, Sg, s.accG);
              else fused_values<false, true>(plan, cntp, rc, in, Fv, Sg, s.accG);
          }
        }
        if (Mode == 1) process(cnt, nruns, run_j, run_end, tk, jx, rec, cntp);
      } else
#endif
      {
        AF_SIMD
        for (int64_t c = 0; c < cntp; ++c) {
          const bool in = rjk[c] < rc;
          fjk[c] = in ? fjk[c] : 0.0;
          if (grad) dfjk[c] = in ? dfjk[c] : 0.0;
          Fv[c] = jfc[c] * kfc[c] * fjk[c];
        }
        // (1 + u)^zeta and (1 + u)^(zeta - 1) du/dcos per slot, 0 where 1 + u <= 0 (as n2p2)
        double* __restrict pl = T(12);
        double* __restrict du = T(20);
        double* __restrict p1 = T(21);
        double* __restrict xx = T(2);  // scratch of array_ipow
        for (int32_t pp = 0; pp < npw; ++pp) {
          const double pa = t.pow_a[pw0 + pp], pb = t.pow_b[pw0 + pp], zeta = t.pow_zeta[pw0 + pp];
          const int32_t zeta_int = t.pow_zeta_int[pw0 + pp];
          double* __restrict Ps = P + pp * cntp;
          double* __restrict P1s = rec + (2 + npw + pp) * cntp;
          // one pass: u, (1 + u)^(zeta - 1), P, P1; the angle shift (G5s) and the gradient are
          // compile-time cases, so the loop has no branch and vectorises (GCC had emitted a scalar
          // loop here: about 9 % of the water force call, issue 17)
          auto slot_pass = [&](auto Z1, auto grad_c, auto shift_c) {
            constexpr int kZ1 = decltype(Z1)::value;
            constexpr bool kGrad = decltype(grad_c)::value, kShift = decltype(shift_c)::value;
            // local copies of the captures (loads through the closure kept the loop scalar)
            const double* __restrict csl = cs;
            double* __restrict Pl = Ps;
            double* __restrict P1l = P1s;
            const int64_t len = cntp;
            const double sa = pa, sb = pb;
            AF_SIMD
            for (int64_t c = 0; c < len; ++c) {
              double uu, d;
              if constexpr (kShift) {
                angular_u(sa, sb, csl[c], &uu, &d);
              } else {
                uu = sa * csl[c];
                d = sa;
              }
              const double plc = 1.0 + uu;
              const double p1c = ipow_acc<kZ1>(1.0, plc);
              // both products unconditionally, then selects (a product inside a conditional arm
              // is not if-converted under GCC's default -ftrapping-math: "control flow in loop")
              const double pv = p1c * plc, p1v = d * p1c;
              const bool pos = plc > 0.0;
              Pl[c] = pos ? pv : 0.0;
              if constexpr (kGrad) P1l[c] = pos ? p1v : 0.0;
            }
          };
          using True = std::true_type;
          using False = std::false_type;
          if (zeta_int > 0 && with_ct_power(zeta_int - 1, [&](auto Z1) {
                if (pb == 0.0) {
                  if (grad) slot_pass(Z1, True{}, False{});
                  else slot_pass(Z1, False{}, False{});
                } else {
                  if (grad) slot_pass(Z1, True{}, True{});
                  else slot_pass(Z1, False{}, True{});
                }
              }))
            continue;
          AF_SIMD
          for (int64_t c = 0; c < cntp; ++c) {
            double uu;
            angular_u(pa, pb, cs[c], &uu, &du[c]);
            pl[c] = 1.0 + uu;
          }
          if (zeta_int > 0) {
            array_ipow(pl, zeta_int - 1, p1, xx, cntp);
          } else {
            for (int64_t c = 0; c < cntp; ++c) p1[c] = pl[c] > 0.0 ? ::pow(pl[c], zeta - 1.0) : 0.0;
          }
          AF_SIMD
          for (int64_t c = 0; c < cntp; ++c) Ps[c] = pl[c] > 0.0 ? p1[c] * pl[c] : 0.0;
          if (grad) {
            AF_SIMD
            for (int64_t c = 0; c < cntp; ++c) P1s[c] = pl[c] > 0.0 ? du[c] * p1[c] : 0.0;
          }
        }
        if (grad) {  // the geometry scalars S_1 .. S_6 and d_j, d_k (see above)
          double* __restrict Sg = rec + (2 + 2 * npw) * cntp;  // chunk-interleaved (see above)
          for (int64_t c0 = 0; c0 < cntp; c0 += kW) {
            double* __restrict Sc = Sg + c0 * kFactGeom;
            AF_SIMD
            for (int64_t l = 0; l < kW; ++l) {
              const int64_t c = c0 + l;
              const double irjk = rjk[c] > 0.0 ? 1.0 / rjk[c] : 0.0;
              const double F = Fv[c], ij = jir[c], ik = kir[c];
              const double s3 = jfc[c] * kfc[c] * dfjk[c] * irjk;
              Sc[0 * kW + l] = jdfc[c] * kfc[c] * fjk[c] * ij + s3;
              Sc[1 * kW + l] = jfc[c] * kdfc[c] * fjk[c] * ik + s3;
              Sc[2 * kW + l] = s3;
              const double fc = F * cs[c];
              Sc[3 * kW + l] = fc * ij * ij;
              Sc[4 * kW + l] = fc * ik * ik;
              Sc[5 * kW + l] = F * ij * ik;
              Sc[6 * kW + l] = jx[c];
              Sc[7 * kW + l] = jy[c];
              Sc[8 * kW + l] = jz[c];
              Sc[9 * kW + l] = kx[c];
              Sc[10 * kW + l] = ky[c];
              Sc[11 * kW + l] = kz[c];
            }
          }
        }
        if (Mode == 0 || Mode == 2 || (Mode == 1 && !reading)) process(cnt, nruns, run_j, run_end, tk, jx, rec, cntp);
      }
    }
    cnt = 0;
    nruns = 0;
    place_tk();
    place_d();
  };

  for (int64_t j = s.block[a]; j < s.block[a + 1]; ++j) {
    const double fcj = FC[j];
    if (fcj == 0.0 && DFC[j] == 0.0) continue;  // r_j beyond r_c
    const double djx = Dx[j], djy = Dy[j], djz = Dz[j];
    const int64_t kbeg = (a == b) ? j + 1 : s.block[b];
    const int64_t kend = s.block[b + 1];
    const double* const src[3] = {IR, FC, DFC};
    double* const dst[7] = {kx + cnt, ky + cnt, kz + cnt, kir + cnt, kfc + cnt, kdfc + cnt, nullptr};
    const int64_t c = simd::compact_within<3, false>(Dx, Dy, Dz, djx, djy, djz, kbeg, kend, rc2, tk + cnt, src, dst);
    if (c == 0) continue;
    const double irj = IR[j], dfcj = DFC[j];
    // whole chunks of kW from cnt: no remainder loop (about 2.5 chunks per j; the block arrays
    // have kW slots of slack past any run, see kBlockL, and the slots past cnt + c are written
    // again by the next j or are padding that flush overwrites)
    for (int64_t q0 = cnt; q0 < cnt + c; q0 += kW) {
      AF_SIMD
      for (int64_t l = 0; l < kW; ++l) {
        const int64_t q = q0 + l;
        jx[q] = djx; jy[q] = djy; jz[q] = djz; jir[q] = irj; jfc[q] = fcj; jdfc[q] = dfcj;
      }
    }
    run_j[nruns] = j;
    run_end[nruns] = cnt + c;
    ++nruns;
    cnt += c;
    if (cnt >= fill) flush(false);
  }
  flush(true);
}

/// Stage 3. Mode 0: add the features of centre element e to G (row, n_features wide, zeroed by
/// the caller). Mode 1: accumulate dE/dd_m in s.gr (along u_m) and s.gx/gy/gz given w = dE/dG
/// (row). Mode 2: values as Mode 0 plus Jacobian rows J (entry 0 = centre, entry 1 + m = sorted
/// neighbour m; (1 + n, nf, 3), zeroed by the caller).
template <int Mode>
AF_HD inline void centre_terms(const Tables& t, int32_t e, int64_t n, int64_t np, Scratch& s, double* G,
                               const double* w, double* J, int64_t nf, TripletCache* cache = nullptr,
                               bool cache_write = false) {
  const int ne = t.n_elements;
  const CutoffType ct = static_cast<CutoffType>(t.cutoff);
  const int32_t g0 = t.group_begin[e];
  const int32_t a0 = t.angular_begin[e], nang = t.angular_begin[e + 1] - a0;
  auto jadd = [&](int64_t m, int64_t f, double vx, double vy, double vz) {
    double* self = J + f * 3;
    double* other = J + ((1 + m) * nf + f) * 3;
    other[0] += vx; other[1] += vy; other[2] += vz;
    self[0] -= vx; self[1] -= vy; self[2] -= vz;
  };
  if (Mode != 1)
    for (int64_t k = 0; k < nang * kW; ++k) s.accG[k] = 0.0;
  if (Mode == 1) {
    for (int64_t m = 0; m < np; ++m) { s.gr[m] = 0.0; s.gx[m] = 0.0; s.gy[m] = 0.0; s.gz[m] = 0.0; }
    for (int64_t m = 0; m < 4 * np; ++m) s.gk[m] = 0.0;
    for (int32_t f = 0; f < nang; ++f) {
      s.wq[f] = w[t.angular_feature[a0 + f]] * t.angular_pref[a0 + f];
      s.wc[f] = s.wq[f] * t.angular_zeta[a0 + f];  // du/dcos is in P1
    }
  }

  // G2
  for (int32_t k = t.radial_begin[e]; k < t.radial_begin[e + 1]; ++k) {
    const int64_t feature = t.radial_feature[k];
    const double* R = s.R + t.radial_group[k] * np;
    const double* dR = s.dR + t.radial_group[k] * np;
    const int64_t b0 = s.block[t.radial_neighbor[k]], b1 = s.block[t.radial_neighbor[k] + 1];
    if (Mode == 0 || Mode == 2) {
      double sum = 0.0;
      for (int64_t m = b0; m < b1; ++m) sum += R[m];
      G[feature] += sum;
    }
    if (Mode == 1) {
      const double wf = w[feature];
      if (wf != 0.0)
        for (int64_t m = b0; m < b1; ++m) s.gr[m] += wf * dR[m];
    }
    if (Mode == 2) {
      for (int64_t m = b0; m < b1; ++m) {
        const double sc = dR[m] * s.inv_r[m];
        jadd(m, feature, sc * s.d[3 * m], sc * s.d[3 * m + 1], sc * s.d[3 * m + 2]);
      }
    }
  }

  // G4 / G5 over unordered neighbour pairs {j, k}, one element block pair at a time.
  //   T_f(j,k) = pref_f (1 + u_f(cos))^zeta R_g(r_j) R_g(r_k) S_g(r_jk), u_f = lambda cos (G4/G5)
  //   or cos(theta~ - theta_s) (G5s, a "wide" function as G5),
  //   S_g = exp(-eta (r_jk - r_s)^2) fc(r_jk) for G4 ("narrow"), 1 for G5.
  for (int a = 0; a < ne; ++a) {
    for (int b = a; b < ne; ++b) {
      const int64_t p = (static_cast<int64_t>(e) * ne + a) * ne + b;
      const int32_t q0 = t.pair_group_begin[p], ngp = t.pair_group_begin[p + 1] - q0;
      if (ngp == 0) continue;
      const int32_t pr0 = t.pair_rc_begin[p], nrc = t.pair_rc_begin[p + 1] - pr0;
      const int32_t pw0 = t.pair_pow_begin[p], npw = t.pair_pow_begin[p + 1] - pw0;

      if (Mode == 2) {
        // Jacobian: scalar loop over pairs (training only; libm transcendental functions). The
        // values G come from the vectorised loop below, bit-identical to Mode 0.
        double* fcv = s.pfc;
        double* dfcv = s.pfc + nrc;
        for (int64_t j = s.block[a]; j < s.block[a + 1]; ++j) {
          const double* dj = &s.d[3 * j];
          const double irj = s.inv_r[j];
          const int64_t k0 = (a == b) ? j + 1 : s.block[b];
          for (int64_t k = k0; k < s.block[b + 1]; ++k) {
            const double* dk = &s.d[3 * k];
            const double irk = s.inv_r[k];
            const double cos_t = (dj[0] * dk[0] + dj[1] * dk[1] + dj[2] * dk[2]) * irj * irk;
            const double ex = dk[0] - dj[0], ey = dk[1] - dj[1], ez = dk[2] - dj[2];
            double rjk = 0.0;
            if (nrc) {
              rjk = ::sqrt(ex * ex + ey * ey + ez * ez);
              for (int32_t q = 0; q < nrc; ++q) {
                if (rjk < t.pair_rc[pr0 + q]) {
                  detail::cutoff_fdf(ct, rjk, t.pair_rc[pr0 + q], fcv[q], dfcv[q]);
                } else {
                  fcv[q] = 0.0;
                  dfcv[q] = 0.0;
                }
              }
            }
            for (int32_t q = 0; q < ngp; ++q) {
              const int32_t ag = q0 + q;
              const int32_t g = t.ag_group[ag];
              const double Rj = s.R[g * np + j], Rk = s.R[g * np + k];
              if (Rj == 0.0 || Rk == 0.0) continue;
              double S = 1.0, dS = 0.0;
              const bool narrow = t.ag_narrow[ag] != 0;
              if (narrow) {
                const double fc = fcv[t.ag_rc_slot[ag]];
                if (fc == 0.0 && dfcv[t.ag_rc_slot[ag]] == 0.0) continue;
                const double sh = rjk - t.group_rs[g0 + g];
                const double eta = t.group_eta[g0 + g];
                const double ee = ::exp(-eta * sh * sh);
                S = ee * fc;
                dS = ee * (dfcv[t.ag_rc_slot[ag]] - 2.0 * eta * sh * fc);
              }
              const double base = Rj * Rk * S;
              for (int32_t u = t.ag_fn_begin[ag]; u < t.ag_fn_begin[ag + 1]; ++u) {
                const int32_t fi = a0 + t.agf_fn[u];
                const double zeta = t.angular_zeta[fi];
                const double pref = t.angular_pref[fi];
                const int32_t sl = pw0 + t.agf_pow[u];
                const int32_t zi = t.pow_zeta_int[sl];
                double uu, du;
                angular_u(t.pow_a[sl], t.pow_b[sl], cos_t, &uu, &du);
                const double pl = 1.0 + uu;
                if (pl <= 0.0) continue;  // as n2p2: the term vanishes (and guards pow)
                const double pz1 = zi > 0 ? ipow(pl, zi - 1) : ::pow(pl, zeta - 1.0);
                const double P = pz1 * pl;
                // dT/dd_j = pref [dP/dcos base dcos/dd_j + P (dRj Rk S u_j - Rj Rk dS e_jk)]
                const double cb = pref * zeta * du * pz1 * base;
                const double pj = pref * P * s.dR[g * np + j] * Rk * S;
                const double pk = pref * P * Rj * s.dR[g * np + k] * S;
                const double pjk = (narrow && rjk > 0.0) ? pref * P * Rj * Rk * dS / rjk : 0.0;
                double vj[3], vk[3];
                for (int qq = 0; qq < 3; ++qq) {
                  const double uj = dj[qq] * irj, uk = dk[qq] * irk;
                  const double ev = (qq == 0 ? ex : qq == 1 ? ey : ez);
                  vj[qq] = cb * (uk - cos_t * uj) * irj + pj * uj - pjk * ev;
                  vk[qq] = cb * (uj - cos_t * uk) * irk + pk * uk + pjk * ev;
                }
                const int64_t feature = t.angular_feature[fi];
                jadd(j, feature, vj[0], vj[1], vj[2]);
                jadd(k, feature, vk[0], vk[1], vk[2]);
              }
            }
          }
        }
      }

      if (t.pair_fact_slot[p] >= 0) {  // factorised pair: blocks of triplets
#if AF_DEVICE_PASS
        fact_pair_terms<Mode, 0>(t, e, a, b, p, n, np, s, cache, cache_write);  // no spills to avoid
#else
        if (s.bcap == kBlockL)  // the usual case: compile-time block stride
          fact_pair_terms<Mode, kBlockL>(t, e, a, b, p, n, np, s, cache, cache_write);
        else
          fact_pair_terms<Mode, 0>(t, e, a, b, p, n, np, s, cache, cache_write);
#endif
        continue;
      }

      // Values / VJP, vectorised. For each j, the partners k that can contribute (r_jk below
      // the largest narrow r_c; all k if the pair has G5 groups) are first compacted into an
      // index list (on water about 40% of the pairs), then processed kW at a time as a
      // structure of arrays: branch-free lane loops that the compiler vectorises with gathers.
      // The list is padded to a multiple of kW with the distinct padding slots n .. n+kW-1,
      // where R = dR = 0 and d = 0: every term is proportional to R_g(r_k) or dR_g(r_k), so
      // padding lanes add exact zeros (and are scattered to unused slots).
      //
      // Triplet cache (fused pass): the values pass (Mode 0, cache_write) also computes what the
      // gradient needs (1/r_jk, dS, d(1 + lambda cos)^zeta) and stores, per j, the candidate
      // list and per-candidate arrays in `cache`; the VJP pass (Mode 1 with a cache) reads them
      // back in the same order instead of recomputing geometry, cutoffs, exponentials and powers.
      // Records per j: int cache [cnt, idx (cntp)]; double cache [irjk, (S, dS) per G4 group,
      // (P, P1) per (lambda, zeta) slot], each cntp long. The rest of the geometry (cos, e_jk,
      // u_k, 1/r_k) is gathered again from the per-neighbour arrays: cheaper than a round trip
      // through the cache.
      const bool reading = Mode == 1 && cache != nullptr;
      const bool writing = Mode == 0 && cache != nullptr && cache_write;
      const bool need_grad = Mode == 1 || writing;  // compute irjk, dS, P1
      bool wide = false;
      double thr = 0.0;
      int32_t n_narrow = 0;
      for (int32_t q = 0; q < ngp; ++q) {
        wide = wide || t.ag_narrow[q0 + q] == 0;
        n_narrow += t.ag_narrow[q0 + q];
      }
      for (int32_t q = 0; q < nrc; ++q) thr = thr > t.pair_rc[pr0 + q] ? thr : t.pair_rc[pr0 + q];
      const double thr2 = wide ? simd::detail::bits_to_double(0x7FF0000000000000ull) : thr * thr;
      const double eta_base = t.pair_eta_base[p];             // > 0: narrow exps shared
      const int32_t n_s = 2 * n_narrow;                        // arrays of S/dS
      const int32_t rec_arrays = 1 + n_s + 2 * npw;           // per-candidate arrays of a record
      const double* __restrict Dx = s.dx;
      const double* __restrict Dy = s.dy;
      const double* __restrict Dz = s.dz;
      const double* __restrict IR = s.inv_r;
      const double* __restrict UX = s.ux;
      const double* __restrict UY = s.uy;
      const double* __restrict UZ = s.uz;
      for (int64_t j = s.block[a]; j < s.block[a + 1]; ++j) {
        bool any = false;
        for (int32_t q = 0; q < ngp; ++q) {
          const int32_t g = t.ag_group[q0 + q];
          s.rj[q] = s.R[g * np + j];
          s.drj[q] = s.dR[g * np + j];
          any = any || s.rj[q] != 0.0;
        }
        if (!any) continue;  // r_j beyond every cutoff of this pair's functions (both passes)
        const double djx = Dx[j], djy = Dy[j], djz = Dz[j];
        const double irj = IR[j];
        const double ujx = UX[j], ujy = UY[j], ujz = UZ[j];
        int64_t cnt = 0;
        const int64_t* __restrict idx = s.idx;
        double* base = nullptr;  // the record's arrays (cache or scratch)
        int64_t stride = 0;      // length of each array of the record
        if (reading) {
          cnt = cache->i[cache->i_used++];
          if (cnt == 0) continue;
          const int64_t cntp = (cnt + kW - 1) / kW * kW;
          idx = cache->i + cache->i_used;
          cache->i_used += cntp;
          base = cache->d + cache->d_used;
          cache->d_used += rec_arrays * cntp;
          stride = cntp;
        } else {
          int64_t* __restrict ix = s.idx;
          const int64_t kbeg = (a == b) ? j + 1 : s.block[b];
          const int64_t kend = s.block[b + 1];
          if (wide) {
            for (int64_t k = kbeg; k < kend; ++k) ix[cnt++] = k;
          } else {  // r_jk^2 vectorised, then a branch-free compaction of the candidates
            double* __restrict r2 = s.r2;
            AF_SIMD
            for (int64_t k = kbeg; k < kend; ++k) {
              const double ex = Dx[k] - djx, ey = Dy[k] - djy, ez = Dz[k] - djz;
              r2[k] = ex * ex + ey * ey + ez * ez;
            }
            cnt = simd::compact_below(r2, kbeg, kend, thr2, ix);
          }
          const int64_t cntp = (cnt + kW - 1) / kW * kW;
          bool to_cache = writing && !cache->overflow;
          if (to_cache && (cache->i_used + 1 + cntp > cache->i_cap ||
                           cache->d_used + rec_arrays * cntp > cache->d_cap)) {
            cache->overflow = true;  // the driver grows the cache for the next centres
            to_cache = false;
          }
          if (to_cache) cache->i[cache->i_used++] = cnt;
          if (cnt == 0) continue;
          for (int64_t l = 0; l < kW; ++l) ix[cnt + l] = n + l;
          if (to_cache) {
            for (int64_t c = 0; c < cntp; ++c) cache->i[cache->i_used + c] = ix[c];
            cache->i_used += cntp;
            base = cache->d + cache->d_used;
            cache->d_used += rec_arrays * cntp;
            stride = cntp;
          } else {
            base = s.cand;
            stride = s.cap;
          }
          // Pair geometry and fc(r_jk) of all candidates in long loops (independent iterations,
          // so the latency of gathers, sqrt and the cutoff's exp and division overlaps).
          double* __restrict cs = s.ccs;
          double* __restrict irjk = base;
          double* __restrict rjk = s.crjk;
          AF_SIMD
          for (int64_t cc = 0; cc < cntp; ++cc) {
            const int64_t m = ix[cc];
            cs[cc] = ujx * UX[m] + ujy * UY[m] + ujz * UZ[m];
            const double ex = Dx[m] - djx, ey = Dy[m] - djy, ez = Dz[m] - djz;
            rjk[cc] = ::sqrt(ex * ex + ey * ey + ez * ez);
            if (need_grad) irjk[cc] = rjk[cc] > 0.0 ? 1.0 / rjk[cc] : 0.0;
          }
          // fc(r_jk) for each distinct narrow r_c; zero outside r_c.
          for (int32_t q = 0; q < nrc; ++q) {
            const double rc = t.pair_rc[pr0 + q];
            double* __restrict f = s.pfc + q * np;
            double* __restrict df = s.pdfc + q * np;
            if (need_grad)
              detail::cutoff_fdf_lanes<true>(ct, cntp, rjk, rc, f, df);
            else
              detail::cutoff_fdf_lanes<false>(ct, cntp, rjk, rc, f, df);
            AF_SIMD
            for (int64_t cc = 0; cc < cntp; ++cc) {
              const bool in = rjk[cc] < rc;
              f[cc] = in ? f[cc] : 0.0;
              if (need_grad) df[cc] = in ? df[cc] : 0.0;
            }
          }
          idx = ix;
        }
        // VJP: lane partial sums of the gradient with respect to d_j (along u_j, and vector)
        alignas(64) double jr[kW] = {}, jx[kW] = {}, jy[kW] = {}, jz[kW] = {};
        const double* __restrict rec_S = base + stride;  // (n_narrow, stride) S, then dS
        const double* __restrict rec_P = base + (1 + n_s) * stride;  // (npw, stride) P, then P1
        for (int64_t c0 = 0; c0 < cnt; c0 += kW) {
          const int64_t* __restrict id = idx + c0;
          const double* __restrict irjk = base + c0;
          // the triplet's geometry: cos (values pass: from the candidate loop above), and for
          // the gradient e_jk = d_k - d_j, u_k and 1/r_k gathered again (same arithmetic)
          alignas(64) double cs_g[kW], ex[kW], ey[kW], ez[kW], ukx[kW], uky[kW], ukz[kW], irk[kW];
          const double* __restrict cs = s.ccs + c0;
          if (Mode == 1) {
            AF_SIMD
            for (int64_t l = 0; l < kW; ++l) {
              const int64_t m = id[l];
              ukx[l] = UX[m]; uky[l] = UY[m]; ukz[l] = UZ[m];
              irk[l] = IR[m];
              ex[l] = Dx[m] - djx; ey[l] = Dy[m] - djy; ez[l] = Dz[m] - djz;
              cs_g[l] = ujx * ukx[l] + ujy * uky[l] + ujz * ukz[l];
            }
            cs = cs_g;
          }
          if (!reading) {
            // (1 + u)^zeta and (1 + u)^(zeta - 1) du/dcos, 0 where 1 + u <= 0 (as n2p2);
            // u = lambda cos (G4/G5) or cos(theta~ - theta_s) (G5s), see angular_u.
            for (int32_t pp = 0; pp < npw; ++pp) {
              const double pa = t.pow_a[pw0 + pp], pb = t.pow_b[pw0 + pp], zeta = t.pow_zeta[pw0 + pp];
              const int32_t zeta_int = t.pow_zeta_int[pw0 + pp];
              double* __restrict P = const_cast<double*>(rec_P) + pp * stride + c0;
              double* __restrict P1 = const_cast<double*>(rec_P) + (npw + pp) * stride + c0;
              alignas(64) double pl[kW], p1[kW], du[kW];
              AF_SIMD
              for (int64_t l = 0; l < kW; ++l) {  // pb is loop-invariant: the branch is unswitched
                double uu;
                angular_u(pa, pb, cs[l], &uu, &du[l]);
                pl[l] = 1.0 + uu;
              }
              if (zeta_int > 0) {  // pl^(zeta - 1) by binary powering, as ipow()
                lanes_ipow(pl, zeta_int - 1, p1);
              } else {  // non-integer zeta: scalar libm pow
                for (int64_t l = 0; l < kW; ++l) p1[l] = pl[l] > 0.0 ? ::pow(pl[l], zeta - 1.0) : 0.0;
              }
              AF_SIMD
              for (int64_t l = 0; l < kW; ++l) {
                const bool pos = pl[l] > 0.0;
                P[l] = pos ? p1[l] * pl[l] : 0.0;
                P1[l] = pos ? du[l] * p1[l] : 0.0;
              }
            }
            // S_g = exp(-eta (r_jk - r_s)^2) fc(r_jk) and dS_g/dr_jk of the G4 groups; with
            // integer ratios between the etas (r_s = 0) one exponential serves all groups.
            const double* __restrict rjk = s.crjk + c0;
            alignas(64) double eb[kW];
            if (eta_base > 0.0) {
              AF_SIMD
              for (int64_t l = 0; l < kW; ++l) eb[l] = simd::exp(-eta_base * rjk[l] * rjk[l]);
            }
            int32_t qn = 0;
            for (int32_t q = 0; q < ngp; ++q) {
              const int32_t ag = q0 + q;
              if (!t.ag_narrow[ag]) continue;
              const int32_t g = t.ag_group[ag];
              const double eta = t.group_eta[g0 + g], r_s = t.group_rs[g0 + g];
              const double* f = s.pfc + t.ag_rc_slot[ag] * np + c0;
              const double* df = s.pdfc + t.ag_rc_slot[ag] * np + c0;
              double* __restrict S = const_cast<double*>(rec_S) + qn * stride + c0;
              double* __restrict dS = const_cast<double*>(rec_S) + (n_narrow + qn) * stride + c0;
              alignas(64) double ee[kW];
              if (eta_base > 0.0) {
                lanes_ipow(eb, t.ag_eta_power[ag], ee);
              } else {
                AF_SIMD
                for (int64_t l = 0; l < kW; ++l) {
                  const double sh = rjk[l] - r_s;
                  ee[l] = simd::exp(-eta * sh * sh);
                }
              }
              AF_SIMD
              for (int64_t l = 0; l < kW; ++l) {
                const double sh = rjk[l] - r_s;
                S[l] = ee[l] * f[l];
                if (need_grad) dS[l] = ee[l] * (df[l] - 2.0 * eta * sh * f[l]);
              }
              ++qn;
            }
          }
          // accumulation over the groups of this pair
          alignas(64) double A_c[kW] = {}, A_rj[kW] = {}, A_rk[kW] = {}, A_rjk[kW] = {};
          int32_t qn = 0;
          for (int32_t q = 0; q < ngp; ++q) {
            const int32_t ag = q0 + q;
            const bool narrow = t.ag_narrow[ag] != 0;
            const double* __restrict S = narrow ? rec_S + qn * stride + c0 : nullptr;
            const double* __restrict dS = narrow ? rec_S + (n_narrow + qn) * stride + c0 : nullptr;
            qn += narrow ? 1 : 0;
            const double Rj = s.rj[q];
            if (Rj == 0.0) continue;
            const int32_t g = t.ag_group[ag];
            const double* __restrict Rg = s.R + g * np;
            alignas(64) double Rk[kW], base_t[kW], Sv[kW];
            AF_SIMD
            for (int64_t l = 0; l < kW; ++l) {
              Sv[l] = narrow ? S[l] : 1.0;
              Rk[l] = Rg[id[l]];
              base_t[l] = Rj * Rk[l] * Sv[l];
            }
            const int32_t u0 = t.ag_fn_begin[ag], u1 = t.ag_fn_begin[ag + 1];
            if (Mode != 1) {
              group_values(t, u0, u1, rec_P, stride, c0, base_t, s.accG);
            } else {
              alignas(64) double Q[kW], Qc[kW];
              group_weights(t, u0, u1, rec_P, stride, c0, npw, s.wq, s.wc, Q, Qc);
              const double dRj = s.drj[q];
              const double* __restrict dRg = s.dR + g * np;
              AF_SIMD
              for (int64_t l = 0; l < kW; ++l) {
                const double dRk = dRg[id[l]];
                const double dSv = narrow ? dS[l] : 0.0;
                A_c[l] += Qc[l] * base_t[l];
                A_rj[l] += Q[l] * dRj * Rk[l] * Sv[l];
                A_rk[l] += Q[l] * Rj * dRk * Sv[l];
                A_rjk[l] += Q[l] * Rj * Rk[l] * dSv;
              }
            }
          }
          if (Mode == 1) {
            // dcos/dd_j = (u_k - cos u_j) / r_j, dr_jk/dd_k = -dr_jk/dd_j = e_jk / r_jk.
            // Indices within a chunk are distinct, so the scatter has no conflicts.
            double* __restrict gr = s.gr;
            double* __restrict gx = s.gx;
            double* __restrict gy = s.gy;
            double* __restrict gz = s.gz;
            AF_SIMD
            for (int64_t l = 0; l < kW; ++l) {
              const int64_t m = id[l];
              const double cj = A_c[l] * irj, ck = A_c[l] * irk[l];
              const double ee = A_rjk[l] * irjk[l];  // (dT/dr_jk) / r_jk
              jr[l] += A_rj[l];
              jx[l] += cj * (ukx[l] - cs[l] * ujx) - ee * ex[l];
              jy[l] += cj * (uky[l] - cs[l] * ujy) - ee * ey[l];
              jz[l] += cj * (ukz[l] - cs[l] * ujz) - ee * ez[l];
              gr[m] += A_rk[l];
              gx[m] += ck * (ujx - cs[l] * ukx[l]) + ee * ex[l];
              gy[m] += ck * (ujy - cs[l] * uky[l]) + ee * ey[l];
              gz[m] += ck * (ujz - cs[l] * ukz[l]) + ee * ez[l];
            }
          }
        }
        if (Mode == 1) {  // lane partial sums, added in a fixed order
          double sr = 0.0, sx = 0.0, sy = 0.0, sz = 0.0;
          for (int64_t l = 0; l < kW; ++l) { sr += jr[l]; sx += jx[l]; sy += jy[l]; sz += jz[l]; }
          s.gr[j] += sr; s.gx[j] += sx; s.gy[j] += sy; s.gz[j] += sz;
        }
      }
    }
  }

  if (Mode != 1) {  // lane partial sums, added in a fixed order
    for (int32_t f = 0; f < nang; ++f) {
      const double* acc = s.accG + f * kW;
      double sum = 0.0;
      for (int64_t l = 0; l < kW; ++l) sum += acc[l];
      G[t.angular_feature[a0 + f]] += sum;
    }
  }
}

/// Stage 4 (VJP). dE_i/dd_m for every kept neighbour, written at its CSR slot of pair_grad
/// (n_pairs, 3); the centre's other slots (neighbours beyond the cutoff, coincident atoms:
/// Scratch::n_skipped) are set to zero, so pair_grad may come uninitialised as long as every
/// centre passes here (a clearing pass over all pairs cost about 1 % of an MD step, stop 51).
AF_HD inline void finish_vjp(int64_t n, const Scratch& s, double* pair_grad) {
  for (int64_t k = 0; k < s.n_skipped; ++k) {
    double* out = pair_grad + 3 * s.tslot[s.cap - 1 - k];
    out[0] = 0.0;
    out[1] = 0.0;
    out[2] = 0.0;
  }
  for (int64_t m = 0; m < n; ++m) {
    double* out = pair_grad + 3 * s.slot[m];
    const double sc = s.gr[m] * s.inv_r[m];
    const double* gk = s.gk + 4 * m;
    out[0] = sc * s.d[3 * m] + (s.gx[m] + gk[0]);
    out[1] = sc * s.d[3 * m + 1] + (s.gy[m] + gk[1]);
    out[2] = sc * s.d[3 * m + 2] + (s.gz[m] + gk[2]);
  }
}

}  // namespace acsf
}  // namespace atomforge
