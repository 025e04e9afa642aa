// Gaussian multipole (GMP) descriptors: the per-centre kernels, single-source (internal header).
//
// Formulas and references: gmp.hpp. Every function here is AF_HD: no exceptions, no allocation,
// no std containers; flat tables (`Tables`) and a per-thread `Scratch` sized by the driver.
//
// For centre i and neighbour j (element e_j, displacement d = r_j - r_i, r = |d|), width
// sigma_s and order n, the pair contributes fc(r) R_{e_j,n,s}(r) S_{n,c}(d) to the moment
// mu_{n,s,c}(i), with
//   R_{e,n,s}(r) = sum_k A_{e,k,s,n} exp(-b_{e,k,s} r^2)       (radial part, tabulated A, b)
//   S_{n,c}(d)   = sum_t coef_t d_x^a_t d_y^b_t d_z^c_t        (Maxwell-Cartesian harmonic)
// Stages for one centre, each a loop over the centre's neighbours held as a structure of arrays
// (the pair block: neighbours grouped by element, kLanes at a time, so the per-order and
// per-width bookkeeping is paid once per group, not once per neighbour):
//   1. pair_block   r, fc, the monomials of d up to the largest order, S_c(d), and per element
//                   group fc R and d(fc R)/dr (orders summed over the Gaussians in registers);
//   2. moments      mu accumulated over the group (+ the centre's own density, order 0), one
//                   set per density slot (elements that belong to the same channels share one);
//   3. invariants   per channel h (a set of elements): mu_h = sum of its slots' moments,
//                   G_{h,n,s} = sqrt(sum_c w_c mu_{h,n,s,c}^2) (or the square);
//   4. vjp / jac    dE/dmu_h from dE/dG, summed onto the slots, then for every lane dE/dd_j (or
//                   dG/dd_j) with the weights of neighbour j's slot (block_gradient), read from
//                   the same pair block: the values stage's terms are never recomputed.
// The published GMP has one channel holding every element (one slot): the total density.
#pragma once
#include <cmath>
#include <cstdint>
#include <type_traits>

#include "atomforge/hd.hpp"
#include "atomforge/neighbor_list.hpp"
#include "common/cutoff.hpp"
#include "common/simd_math.hpp"

namespace atomforge {
namespace gmp {

/// Largest supported order (monomial tables are sized for it).
constexpr int kMaxOrder = 8;
/// Orders whose radial parts are summed together (in registers) over an element's Gaussians.
constexpr int kOrderBlock = 4;
/// Monomials d_x^a d_y^b d_z^c with a + b + c <= kMaxOrder: index of (a, b, c).
constexpr int kMaxMonomials = (kMaxOrder + 1) * (kMaxOrder + 2) * (kMaxOrder + 3) / 6;

AF_INLINE int mono_index(int a, int b, int c) {
  // monomials ordered by degree n = a + b + c, then by (a desc, b desc) within a degree
  const int n = a + b + c;
  const int before = n * (n + 1) * (n + 2) / 6;             // monomials of lower degree
  const int ra = n - a;                                      // 0 .. n
  return before + ra * (ra + 1) / 2 + (ra - b);
}

/// The descriptor's parameters as flat arrays (host or device memory).
struct Tables {
  int32_t n_elements = 0;
  int32_t n_orders = 0, n_sigmas = 0, max_order = 0;
  int32_t n_orders_pad = 0;   // n_orders rounded up to a multiple of kOrderBlock
  int32_t cutoff = -1;        // CutoffType, or -1: none (every pair inside r_c in full)
  int32_t square = 0;         // 1: G = Q, 0: G = sqrt(Q)
  double r_c = 0.0;
  const int32_t* orders = nullptr;       // (n_orders)
  // Gaussians of element e: [gauss_begin[e], gauss_begin[e+1])
  const int32_t* gauss_begin = nullptr;  // (ne + 1)
  const double* A = nullptr;             // (n_gauss, n_sigmas, n_orders_pad), zero beyond n_orders
  const double* b = nullptr;             // (n_gauss, n_sigmas)
  const double* self0 = nullptr;         // (ne, n_sigmas): the centre's own density, order 0
  // components of order index o: [comp_begin[o], comp_begin[o+1]) (global component index)
  const int32_t* comp_begin = nullptr;   // (n_orders + 1)
  const double* comp_weight = nullptr;   // (n_comp) multinomial n! / (nx! ny! nz!)
  // S_c = sum over [term_begin[c], term_begin[c+1]) of term_coef * monomial[term_mono]
  const int32_t* term_begin = nullptr;   // (n_comp + 1)
  const double* term_coef = nullptr;
  const int32_t* term_mono = nullptr;
  // dS_c/dd_x (y, z): [grad_begin[3 c + k], grad_begin[3 c + k + 1])
  const int32_t* grad_begin = nullptr;   // (3 n_comp + 1)
  const double* grad_coef = nullptr;
  const int32_t* grad_mono = nullptr;
  int32_t n_comp = 0;                    // total components over the orders
  // density channels: element e adds to slot slot_of[e]; channel h holds the slots
  // [chan_begin[h], chan_begin[h+1]) of chan_slots and chan_member[h * n_slots + slot] is 1 for them
  int32_t n_slots = 1, n_channels = 1;
  const int32_t* slot_of = nullptr;      // (ne)
  const int32_t* chan_begin = nullptr;   // (n_channels + 1)
  const int32_t* chan_slots = nullptr;
  const int32_t* chan_member = nullptr;  // (n_channels, n_slots)
  int32_t max_gauss = 0;                 // largest Gaussian count of an element
  // monomials up to max_order: mono[m] = mono[mono_parent[m]] * d[mono_axis[m]] (m >= 1)
  int32_t n_mono = 1;
  const int32_t* mono_parent = nullptr;
  const int32_t* mono_axis = nullptr;
};

/// Lanes of the short fixed-width loops over neighbours (one AVX-512 vector of doubles).
constexpr int kLanes = 8;

AF_INLINE int64_t round_lanes(int64_t n) { return (n + kLanes - 1) / kLanes * kLanes; }

/// The pair block of one centre (structure of arrays): its neighbours inside r_c, grouped by
/// element (each group starts at a multiple of kLanes and is padded to one), one row of `cap`
/// doubles per quantity:
///   kRowR r, kRowD + 0..2 d = r_j - r_i, kRowFc fc, kRowDfc dfc/dr, kRowOut + 0..2 the gradient
///   of one pass, kRowT + 0..2 d of the neighbours in list order (temporary, while grouping),
///   kRowE + g exp(-b_g r^2) of the element's Gaussian g for one width (temporary, max_gauss
///   rows); then mono (n_mono rows), S (n_comp rows), Rf = fc R and dRf = d(fc R)/dr
///   (n_orders * n_sigmas rows each, row o * n_sigmas + s).
/// Padding lanes hold d = (r_c / 2, 0, 0) with fc = dfc = 0, so Rf = dRf = 0 there, and lane_q = -1.
constexpr int kRowR = 0, kRowD = 1, kRowFc = 4, kRowDfc = 5, kRowOut = 6, kRowT = 9, kRowE = 12;

AF_INLINE int64_t row_mono(const Tables& t) { return kRowE + t.max_gauss; }

AF_INLINE int64_t block_rows(const Tables& t) {
  return row_mono(t) + t.n_mono + t.n_comp + 2 * static_cast<int64_t>(t.n_orders) * t.n_sigmas;
}

/// Lanes a centre with at most n_neighbours neighbours can need (each element group padded).
AF_INLINE int64_t block_capacity(const Tables& t, int64_t n_neighbours) {
  const int64_t groups = n_neighbours < t.n_elements ? n_neighbours : t.n_elements;
  return round_lanes(n_neighbours + (kLanes - 1) * groups) + kLanes;
}

/// Features per centre: n_channels * n_orders * n_sigmas, f = (h * n_orders + o) * n_sigmas + s.
AF_INLINE int64_t n_features(const Tables& t) {
  return static_cast<int64_t>(t.n_channels) * t.n_orders * t.n_sigmas;
}

/// Per-thread scratch (sizes from scratch_size; the block arrays are set by the driver).
struct Scratch {
  double* mu;    // (n_slots, n_sigmas, n_comp): moments of the centre per density slot
  double* muc;   // (n_channels, n_sigmas, n_comp): moments per channel
  double* gmu;   // (n_slots, n_sigmas, n_comp): dE/dmu per slot (VJP)
  double* gmuc;  // (n_sigmas, n_comp): dE/dmu_h of one channel
  double* G;     // (n_features) feature row of the current centre
  // the pair block (set by the driver, kept across steps; see kRowR)
  int64_t cap = 0;
  double* rows = nullptr;     // (block_rows, cap)
  int64_t* lane_q = nullptr;  // (cap) CSR index of the lane's neighbour, -1 on padding
  int64_t* lane_m = nullptr;  // (cap) rank of the neighbour among those inside r_c, in CSR order
  int64_t* tmp_q = nullptr;   // (cap) CSR index, in list order (temporary, while grouping)
  int32_t* tmp_e = nullptr;   // (cap) element, in list order (temporary, while grouping)
  int32_t* group = nullptr;   // (2 n_elements): first lane, number of neighbours of each element
};

AF_INLINE int64_t scratch_size(const Tables& t) {
  const int64_t ns = t.n_sigmas, nc = t.n_comp;
  return (2 * t.n_slots + t.n_channels + 1) * ns * nc + n_features(t);
}

AF_INLINE void carve(const Tables& t, double* buf, Scratch& s) {
  const int64_t ns = t.n_sigmas, nc = t.n_comp;
  s.mu = buf; buf += t.n_slots * ns * nc;
  s.muc = buf; buf += t.n_channels * ns * nc;
  s.gmu = buf; buf += t.n_slots * ns * nc;
  s.gmuc = buf; buf += ns * nc;
  s.G = buf;
}

/// Radial parts of the B orders [ob, ob + B) at width sg for the lanes [p0, p1) of one element
/// group (Gaussians g0 .. g0 + ng - 1, their exp(-b r^2) in the rows E + g * cap): the sums over
/// the Gaussians stay in registers, then fc R and d(fc R)/dr are stored.
template <int B>
AF_HD inline void radial_orders(const Tables& t, int32_t g0, int32_t ng, int32_t sg, int32_t ob, int64_t p0,
                                int64_t p1, int64_t cap, const double* __restrict r, const double* __restrict fc,
                                const double* __restrict dfc, const double* __restrict E, double* Rf, double* dRf) {
  const int32_t ns = t.n_sigmas, nop = t.n_orders_pad;
  for (int64_t p = p0; p < p1; p += kLanes) {
    double R[B][kLanes] = {}, dR[B][kLanes] = {};
    for (int32_t g = 0; g < ng; ++g) {
      const double* __restrict Eg = E + g * cap + p;
      const double* A = t.A + (static_cast<int64_t>(g0 + g) * ns + sg) * nop + ob;
      const double m2b = -2.0 * t.b[(g0 + g) * ns + sg];
      for (int k = 0; k < B; ++k) {
        const double a = A[k], da = m2b * A[k];
        AF_SIMD
        for (int l = 0; l < kLanes; ++l) {
          R[k][l] += a * Eg[l];
          dR[k][l] += da * (r[p + l] * Eg[l]);
        }
      }
    }
    for (int k = 0; k < B; ++k) {
      double* __restrict Ro = Rf + ((ob + k) * ns + sg) * cap + p;
      double* __restrict dRo = dRf + ((ob + k) * ns + sg) * cap + p;
      AF_SIMD
      for (int l = 0; l < kLanes; ++l) {
        dRo[l] = dfc[p + l] * R[k][l] + fc[p + l] * dR[k][l];
        Ro[l] = fc[p + l] * R[k][l];
      }
    }
  }
}

/// Stage 1. The pair block of centre c (see kRowR): neighbours gathered by element, then per
/// stage one loop over the lanes: r and the cutoff, the monomials of d (each one of lower degree
/// times x, y or z), S_c(d), and per element group the radial parts fc R and d(fc R)/dr from
/// exp(-b r^2) of each (Gaussian, width). Returns the number of neighbours inside r_c; *overlap is
/// set to the centre's position index if a neighbour sits at distance zero.
AF_HD inline int64_t pair_block(const Tables& t, const NeighborView& nl, int64_t c, Scratch& s, int64_t* overlap) {
  const int64_t i = nl.centre(c);
  const double* x = nl.positions;
  const int64_t cap = s.cap;
  double* __restrict rows = s.rows;
  const double rc2 = t.r_c * t.r_c;
  const double xi = x[3 * i], yi = x[3 * i + 1], zi = x[3 * i + 2];
  // one pass over the list: the neighbours inside r_c compacted (branch-free) into temporary rows
  // with their element, counted per element; then each group placed at a multiple of kLanes
  double* __restrict tx = rows + kRowT * cap;
  double* __restrict ty = tx + cap;
  double* __restrict tz = ty + cap;
  for (int32_t e = 0; e < t.n_elements; ++e) s.group[2 * e + 1] = 0;
  int64_t count = 0;
  for (int64_t q = nl.offsets[c]; q < nl.offsets[c + 1]; ++q) {
    const int64_t j = nl.neighbors[q];
    const double dx = x[3 * j] - xi, dy = x[3 * j + 1] - yi, dz = x[3 * j + 2] - zi;
    const double r2 = dx * dx + dy * dy + dz * dz;
    if (r2 == 0.0) *overlap = i;
    const int32_t e = nl.species[j];
    const int32_t in = (r2 < rc2) & (r2 != 0.0);
    tx[count] = dx;
    ty[count] = dy;
    tz[count] = dz;
    s.tmp_q[count] = q;
    s.tmp_e[count] = e;
    s.group[2 * e + 1] += in;
    count += in;
  }
  int64_t lanes = 0;
  for (int32_t e = 0; e < t.n_elements; ++e) {
    s.group[2 * e] = static_cast<int32_t>(lanes);
    lanes += round_lanes(s.group[2 * e + 1]);
  }
  double* r = rows + kRowR * cap;
  double* dx_ = rows + kRowD * cap;
  double* dy_ = dx_ + cap;
  double* dz_ = dy_ + cap;
  for (int32_t e = 0; e < t.n_elements; ++e) s.group[2 * e + 1] = 0;  // fill cursors
  for (int64_t m = 0; m < count; ++m) {  // m: the rank in list order
    const int32_t e = s.tmp_e[m];
    const int64_t p = s.group[2 * e] + s.group[2 * e + 1]++;
    const double dx = tx[m], dy = ty[m], dz = tz[m];
    r[p] = dx * dx + dy * dy + dz * dz;
    dx_[p] = dx;
    dy_[p] = dy;
    dz_[p] = dz;
    s.lane_q[p] = s.tmp_q[m];
    s.lane_m[p] = m;
  }
  // padding lanes (the tail of each group): a harmless point, given weight 0 after the cutoff
  auto for_padding = [&](auto&& fn) {
    for (int32_t e = 0; e < t.n_elements; ++e)
      for (int64_t p = s.group[2 * e] + s.group[2 * e + 1]; p < s.group[2 * e] + round_lanes(s.group[2 * e + 1]); ++p)
        fn(p);
  };
  for_padding([&](int64_t p) {
    r[p] = 0.25 * rc2;
    dx_[p] = 0.5 * t.r_c;
    dy_[p] = 0.0;
    dz_[p] = 0.0;
    s.lane_q[p] = -1;
    s.lane_m[p] = -1;
  });
  if (lanes == 0) return 0;
  AF_SIMD
  for (int64_t p = 0; p < lanes; ++p) r[p] = ::sqrt(r[p]);
  double* fc = rows + kRowFc * cap;
  double* dfc = rows + kRowDfc * cap;
  if (t.cutoff < 0) {
    for (int64_t p = 0; p < lanes; ++p) {
      fc[p] = 1.0;
      dfc[p] = 0.0;
    }
  } else {
    detail::cutoff_fdf_lanes(static_cast<CutoffType>(t.cutoff), lanes, r, t.r_c, fc, dfc);
  }
  for_padding([&](int64_t p) {
    fc[p] = 0.0;
    dfc[p] = 0.0;
  });
  // monomials and the harmonics S_c = sum_t coef_t mono_t
  double* mono = rows + row_mono(t) * cap;
  for (int64_t p = 0; p < lanes; ++p) mono[p] = 1.0;
  for (int32_t m = 1; m < t.n_mono; ++m) {
    const double* __restrict par = mono + t.mono_parent[m] * cap;
    const double* __restrict ax = dx_ + t.mono_axis[m] * cap;
    double* __restrict out = mono + m * cap;
    AF_SIMD
    for (int64_t p = 0; p < lanes; ++p) out[p] = par[p] * ax[p];
  }
  double* S = mono + t.n_mono * cap;
  for (int32_t cc = 0; cc < t.n_comp; ++cc) {
    double* __restrict out = S + cc * cap;
    for (int64_t p = 0; p < lanes; ++p) out[p] = 0.0;
    for (int32_t k = t.term_begin[cc]; k < t.term_begin[cc + 1]; ++k) {
      const double coef = t.term_coef[k];
      const double* __restrict mk = mono + t.term_mono[k] * cap;
      AF_SIMD
      for (int64_t p = 0; p < lanes; ++p) out[p] += coef * mk[p];
    }
  }
  // radial parts per element group: R = sum_k A exp(-b r^2), dR/dr = sum_k -2 b r A exp(-b r^2),
  // up to kOrderBlock orders at a time summed over the Gaussians in registers (radial_orders),
  // stored times the cutoff: fc R and d(fc R)/dr
  const int32_t ns = t.n_sigmas, no = t.n_orders;
  double* Rf = S + t.n_comp * cap;
  double* dRf = Rf + static_cast<int64_t>(no) * ns * cap;
  double* E = rows + kRowE * cap;
  for (int32_t e = 0; e < t.n_elements; ++e) {
    const int64_t p0 = s.group[2 * e], p1 = p0 + round_lanes(s.group[2 * e + 1]);
    if (p1 == p0) continue;
    const int32_t g0 = t.gauss_begin[e], ng = t.gauss_begin[e + 1] - g0;
    for (int32_t sg = 0; sg < ns; ++sg) {
      for (int32_t g = 0; g < ng; ++g) {
        const double bb = t.b[(g0 + g) * ns + sg];
        double* __restrict Eg = E + g * cap;
        AF_SIMD
        for (int64_t p = p0; p < p1; ++p) Eg[p] = simd::exp(-bb * (r[p] * r[p]));
      }
      for (int32_t ob = 0; ob < no;) {  // blocks of 4 orders, then the 1 to 3 left
        const int32_t nb = no - ob < kOrderBlock ? no - ob : kOrderBlock;
        auto run = [&](auto B) {
          radial_orders<decltype(B)::value>(t, g0, ng, sg, ob, p0, p1, cap, r, fc, dfc, E, Rf, dRf);
        };
        if (nb == 4) run(std::integral_constant<int, 4>{});
        else if (nb == 3) run(std::integral_constant<int, 3>{});
        else if (nb == 2) run(std::integral_constant<int, 2>{});
        else run(std::integral_constant<int, 1>{});
        ob += nb;
      }
    }
  }
  return count;
}

/// Stages 1-3 for centre c: G (n_features, f = (h * n_orders + o) * n_sigmas + s) overwritten;
/// s.muc keeps the channel moments and s's pair block the pair terms for a following VJP or
/// Jacobian. Returns the number of neighbours inside r_c; *overlap as in pair_block.
AF_HD inline int64_t values(const Tables& t, const NeighborView& nl, int64_t c, Scratch& s, double* G,
                            int64_t* overlap) {
  const int64_t i = nl.centre(c);
  const int32_t ns = t.n_sigmas, nc = t.n_comp, no = t.n_orders;
  const int32_t ei = nl.species[i];
  const int64_t slot_size = static_cast<int64_t>(ns) * nc;
  for (int64_t k = 0; k < t.n_slots * slot_size; ++k) s.mu[k] = 0.0;
  // the centre's own density: order 0 only (S_n(0) = 0 for n >= 1)
  for (int32_t o = 0; o < no; ++o)
    if (t.orders[o] == 0)
      for (int32_t sg = 0; sg < ns; ++sg)
        s.mu[t.slot_of[ei] * slot_size + sg * nc + t.comp_begin[o]] += t.self0[ei * ns + sg];
  const int64_t count = pair_block(t, nl, c, s, overlap);
  // stage 2: mu_{s,c} += sum over the group's lanes of fc R_{o(c),s} S_c, lane-wise then summed
  const int64_t cap = s.cap;
  const double* S = s.rows + (row_mono(t) + t.n_mono) * cap;
  const double* Rf = S + nc * cap;
  for (int32_t e = 0; e < t.n_elements; ++e) {
    const int64_t p0 = s.group[2 * e], p1 = p0 + round_lanes(s.group[2 * e + 1]);
    if (p1 == p0) continue;
    double* mu = s.mu + t.slot_of[e] * slot_size;
    for (int32_t o = 0; o < no; ++o)
      for (int32_t sg = 0; sg < ns; ++sg) {
        const double* __restrict R = Rf + (o * ns + sg) * cap;
        // two components at a time, each a lane-wise dot product over the group, then summed
        for (int32_t cc = t.comp_begin[o]; cc < t.comp_begin[o + 1]; cc += 2) {
          const bool two = cc + 1 < t.comp_begin[o + 1];
          const double* __restrict S0 = S + cc * cap;
          const double* __restrict S1 = S + (two ? cc + 1 : cc) * cap;
          double a0[kLanes] = {}, a1[kLanes] = {};
          for (int64_t p = p0; p < p1; p += kLanes) {
            AF_SIMD
            for (int l = 0; l < kLanes; ++l) {
              a0[l] += R[p + l] * S0[p + l];
              a1[l] += R[p + l] * S1[p + l];
            }
          }
          double v0 = 0.0, v1 = 0.0;
          for (int l = 0; l < kLanes; ++l) {
            v0 += a0[l];
            v1 += a1[l];
          }
          mu[sg * nc + cc] += v0;
          if (two) mu[sg * nc + cc + 1] += v1;
        }
      }
  }
  // stage 3: channel moments and their invariants
  for (int32_t h = 0; h < t.n_channels; ++h) {
    double* muh = s.muc + h * slot_size;
    for (int64_t k = 0; k < slot_size; ++k) muh[k] = 0.0;
    for (int32_t p = t.chan_begin[h]; p < t.chan_begin[h + 1]; ++p) {
      const double* mu = s.mu + t.chan_slots[p] * slot_size;
      for (int64_t k = 0; k < slot_size; ++k) muh[k] += mu[k];
    }
    for (int32_t o = 0; o < no; ++o)
      for (int32_t sg = 0; sg < ns; ++sg) {
        const double* mu = muh + sg * nc;
        double Q = 0.0;
        for (int32_t cc = t.comp_begin[o]; cc < t.comp_begin[o + 1]; ++cc) Q += t.comp_weight[cc] * mu[cc] * mu[cc];
        G[(h * no + o) * ns + sg] = t.square ? Q : ::sqrt(Q);
      }
  }
  return count;
}

/// dG_{h,o,s}/dmu_{h,s,c} for the components c of order o, written into gm[s * nc + c] scaled by
/// `scale` (added); muh: the moments of channel h (n_sigmas, n_comp). sqrt(Q) has the bounded
/// gradient w mu / sqrt(Q) (|.| <= sqrt(w)); at Q = 0, where the norm is not differentiable, the
/// zero subgradient is used.
AF_HD inline void feature_gradient(const Tables& t, int32_t o, int32_t sg, double G, double scale, const double* muh,
                                   double* gmh) {
  const int32_t nc = t.n_comp;
  const double* mu = muh + sg * nc;
  double* gm = gmh + sg * nc;
  if (t.square) {
    for (int32_t cc = t.comp_begin[o]; cc < t.comp_begin[o + 1]; ++cc) gm[cc] += scale * 2.0 * t.comp_weight[cc] * mu[cc];
  } else if (G > 0.0) {
    const double f = scale / G;
    for (int32_t cc = t.comp_begin[o]; cc < t.comp_begin[o + 1]; ++cc) gm[cc] += f * t.comp_weight[cc] * mu[cc];
  }
}

/// dE/dmu per slot from dE/dG (w, the centre's row) into s.gmu: each channel's dE/dmu_h is
/// added to every slot of the channel (mu_h is their sum). False when w is all zero.
AF_HD inline bool moment_weights(const Tables& t, const double* G, const double* w, Scratch& s) {
  const int32_t ns = t.n_sigmas, nc = t.n_comp, no = t.n_orders;
  const int64_t slot_size = static_cast<int64_t>(ns) * nc;
  for (int64_t k = 0; k < t.n_slots * slot_size; ++k) s.gmu[k] = 0.0;
  bool any = false;
  for (int32_t h = 0; h < t.n_channels; ++h) {
    bool any_h = false;
    for (int32_t f = h * no * ns; f < (h + 1) * no * ns; ++f) any_h = any_h || w[f] != 0.0;
    if (!any_h) continue;
    any = true;
    // one slot per channel (the published GMP, or channels of one element each): straight in
    const bool direct = t.chan_begin[h + 1] - t.chan_begin[h] == 1;
    double* gmh = direct ? s.gmu + t.chan_slots[t.chan_begin[h]] * slot_size : s.gmuc;
    if (!direct)
      for (int64_t k = 0; k < slot_size; ++k) gmh[k] = 0.0;
    for (int32_t o = 0; o < no; ++o)
      for (int32_t sg = 0; sg < ns; ++sg) {
        const int32_t f = (h * no + o) * ns + sg;
        if (w[f] != 0.0) feature_gradient(t, o, sg, G[f], w[f], s.muc + h * slot_size, gmh);
      }
    if (!direct)
      for (int32_t p = t.chan_begin[h]; p < t.chan_begin[h + 1]; ++p) {
        double* gm = s.gmu + t.chan_slots[p] * slot_size;
        for (int64_t k = 0; k < slot_size; ++k) gm[k] += gmh[k];
      }
  }
  return any;
}

/// Stage 4 on the pair block (after values()): for every lane, the gradient dX/dd of
///   X = sum_{s,c} gmu[s,c] fc(r) R_{o(c),s}(r) S_c(d)
/// over the orders [o0, o1), with gmu (n_slots, n_sigmas, n_comp) per slot, into the rows
/// kRowOut + 0..2:  dX/dd = (sum_c dRf_c S_c) d / r + sum_c Rf_c grad S_c, with Rf_c =
/// sum_s gmu[s,c] fc R_{o,s} and dRf_c its r-derivative, computed kLanes neighbours at a time.
/// member (optional, n_slots): only the element groups whose slot has member[slot] != 0 (the
/// Jacobian of one channel's feature: the other groups' gradients are zero and not read).
AF_HD inline void block_gradient(const Tables& t, const Scratch& s, const double* gmu_slots, int32_t o0, int32_t o1,
                                 const int32_t* member = nullptr) {
  const int32_t ns = t.n_sigmas, nc = t.n_comp;
  const int64_t cap = s.cap, slot_size = static_cast<int64_t>(ns) * nc;
  const double* r = s.rows + kRowR * cap;
  const double* d = s.rows + kRowD * cap;
  double* out = s.rows + kRowOut * cap;
  const double* mono = s.rows + row_mono(t) * cap;
  const double* S = mono + t.n_mono * cap;
  const double* Rf = S + nc * cap;
  const double* dRf = Rf + static_cast<int64_t>(t.n_orders) * ns * cap;
  for (int32_t e = 0; e < t.n_elements; ++e) {
    if (member && !member[t.slot_of[e]]) continue;
    const int64_t p0 = s.group[2 * e], p1 = p0 + round_lanes(s.group[2 * e + 1]);
    const double* gmu = gmu_slots + t.slot_of[e] * slot_size;
    for (int64_t p = p0; p < p1; p += kLanes) {
      double sc[kLanes] = {}, vx[kLanes] = {}, vy[kLanes] = {}, vz[kLanes] = {};
      for (int32_t o = o0; o < o1; ++o)
        for (int32_t cc = t.comp_begin[o]; cc < t.comp_begin[o + 1]; ++cc) {
          double U[kLanes] = {}, V[kLanes] = {};
          bool any = false;
          for (int32_t sg = 0; sg < ns; ++sg) {
            const double g = gmu[sg * nc + cc];
            if (g == 0.0) continue;
            any = true;
            const double* __restrict R = Rf + (o * ns + sg) * cap + p;
            const double* __restrict dR = dRf + (o * ns + sg) * cap + p;
            AF_SIMD
            for (int l = 0; l < kLanes; ++l) {
              U[l] += g * R[l];
              V[l] += g * dR[l];
            }
          }
          if (!any) continue;
          const double* __restrict Sc = S + cc * cap + p;
          AF_SIMD
          for (int l = 0; l < kLanes; ++l) sc[l] += V[l] * Sc[l];
          // grad S_c, one loop per axis: an axis loop over v[3][kLanes] keeps the sums out of
          // registers (measured: Jacobian 25 % slower, VJP 2-8 % slower)
          for (int32_t k = t.grad_begin[3 * cc]; k < t.grad_begin[3 * cc + 1]; ++k) {
            const double coef = t.grad_coef[k];
            const double* __restrict mk = mono + t.grad_mono[k] * cap + p;
            AF_SIMD
            for (int l = 0; l < kLanes; ++l) vx[l] += coef * U[l] * mk[l];
          }
          for (int32_t k = t.grad_begin[3 * cc + 1]; k < t.grad_begin[3 * cc + 2]; ++k) {
            const double coef = t.grad_coef[k];
            const double* __restrict mk = mono + t.grad_mono[k] * cap + p;
            AF_SIMD
            for (int l = 0; l < kLanes; ++l) vy[l] += coef * U[l] * mk[l];
          }
          for (int32_t k = t.grad_begin[3 * cc + 2]; k < t.grad_begin[3 * cc + 3]; ++k) {
            const double coef = t.grad_coef[k];
            const double* __restrict mk = mono + t.grad_mono[k] * cap + p;
            AF_SIMD
            for (int l = 0; l < kLanes; ++l) vz[l] += coef * U[l] * mk[l];
          }
        }
      AF_SIMD
      for (int l = 0; l < kLanes; ++l) {
        const double sr = sc[l] / r[p + l];
        out[p + l] = sr * d[p + l] + vx[l];
        out[cap + p + l] = sr * d[cap + p + l] + vy[l];
        out[2 * cap + p + l] = sr * d[2 * cap + p + l] + vz[l];
      }
    }
  }
}

/// Stage 4 (VJP) for centre c, after values() on the same scratch: dE_i/dd_q for every neighbour
/// q inside r_c, written at its CSR slot of pair_grad (n_pairs, 3); w: dE/dG row of the centre.
AF_HD inline void vjp(const Tables& t, const double* G, const double* w, Scratch& s, double* pair_grad) {
  if (!moment_weights(t, G, w, s)) return;
  block_gradient(t, s, s.gmu, 0, t.n_orders);
  const double* out = s.rows + kRowOut * s.cap;
  for (int32_t e = 0; e < t.n_elements; ++e)
    for (int64_t p = s.group[2 * e]; p < s.group[2 * e] + s.group[2 * e + 1]; ++p) {
      double* g = pair_grad + 3 * s.lane_q[p];
      g[0] = out[p];
      g[1] = out[s.cap + p];
      g[2] = out[2 * s.cap + p];
    }
}

/// Jacobian rows of centre c, after values() on the same scratch: J (1 + n_in, nf, 3) with entry 0
/// the centre and entry 1 + m the m-th neighbour inside r_c in CSR order (zeroed by the caller).
/// Feature f = (h, o, s) at a time: dG_f/dmu (feature_gradient) on the slots of channel h, its
/// gradient for the order o only, then those entries of s.gmu set back to zero.
AF_HD inline void jacobian(const Tables& t, const double* G, Scratch& s, double* J, int64_t nf) {
  const int32_t ns = t.n_sigmas, nc = t.n_comp, no = t.n_orders;
  const int64_t slot_size = static_cast<int64_t>(ns) * nc;
  const double* out = s.rows + kRowOut * s.cap;
  for (int64_t k = 0; k < t.n_slots * slot_size; ++k) s.gmu[k] = 0.0;
  for (int32_t h = 0; h < t.n_channels; ++h)
    for (int32_t o = 0; o < no; ++o)
      for (int32_t sg = 0; sg < ns; ++sg) {
        const int64_t f = (h * no + o) * ns + sg;
        for (int32_t q = t.chan_begin[h]; q < t.chan_begin[h + 1]; ++q)
          feature_gradient(t, o, sg, G[f], 1.0, s.muc + h * slot_size, s.gmu + t.chan_slots[q] * slot_size);
        block_gradient(t, s, s.gmu, o, o + 1, t.chan_member + h * t.n_slots);
        for (int32_t q = t.chan_begin[h]; q < t.chan_begin[h + 1]; ++q)
          for (int32_t cc = t.comp_begin[o]; cc < t.comp_begin[o + 1]; ++cc)
            s.gmu[t.chan_slots[q] * slot_size + sg * nc + cc] = 0.0;
        for (int32_t e = 0; e < t.n_elements; ++e) {
          if (!t.chan_member[h * t.n_slots + t.slot_of[e]]) continue;  // not in this channel's density (not computed)
          for (int64_t p = s.group[2 * e]; p < s.group[2 * e] + s.group[2 * e + 1]; ++p) {
            double* self = J + f * 3;
            double* other = J + ((1 + s.lane_m[p]) * nf + f) * 3;
            for (int k = 0; k < 3; ++k) {
              const double g = out[k * s.cap + p];
              other[k] += g;
              self[k] -= g;
            }
          }
        }
      }
}

}  // namespace gmp
}  // namespace atomforge
