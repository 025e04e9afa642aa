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
// Stages for one centre:
//   1. pair_terms   per neighbour: fc, monomials of d up to the largest order, R and dR/dr;
//   2. moments      mu accumulated over neighbours (+ the centre's own density, order 0), one
//                   set per density slot (elements that belong to the same channels share one);
//   3. invariants   per channel h (a set of elements): mu_h = sum of its slots' moments,
//                   G_{h,n,s} = sqrt(sum_c w_c mu_{h,n,s,c}^2) (or the square);
//   4. vjp / jac    dE/dmu_h from dE/dG, summed onto the slots, then per neighbour dE/dd_j (or
//                   dG/dd_j) with the weights of neighbour j's slot.
// The published GMP has one channel holding every element (one slot): the total density.
#pragma once
#include <cmath>
#include <cstdint>

#include "atomforge/hd.hpp"
#include "atomforge/neighbor_list.hpp"
#include "common/cutoff.hpp"
#include "common/simd_math.hpp"

namespace atomforge {
namespace gmp {

/// Largest supported order (monomial tables are sized for it).
constexpr int kMaxOrder = 6;
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
  int32_t cutoff = -1;        // CutoffType, or -1: none (every pair inside r_c in full)
  int32_t square = 0;         // 1: G = Q, 0: G = sqrt(Q)
  double r_c = 0.0;
  const int32_t* orders = nullptr;       // (n_orders)
  // Gaussians of element e: [gauss_begin[e], gauss_begin[e+1])
  const int32_t* gauss_begin = nullptr;  // (ne + 1)
  const double* A = nullptr;             // (n_gauss, n_sigmas, n_orders)
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

/// Length (doubles) of one neighbour's record in the pair cache of the fused pass: CSR index q, r,
/// fc, dfc, d (3), monomials, S (n_comp), R and dR (n_orders * n_sigmas each).
AF_INLINE int64_t pair_record_size(const Tables& t) {
  return 7 + t.n_mono + t.n_comp + 2 * static_cast<int64_t>(t.n_orders) * t.n_sigmas;
}

/// Features per centre: n_channels * n_orders * n_sigmas, f = (h * n_orders + o) * n_sigmas + s.
AF_INLINE int64_t n_features(const Tables& t) {
  return static_cast<int64_t>(t.n_channels) * t.n_orders * t.n_sigmas;
}

/// Per-thread scratch (sizes from scratch_size).
struct Scratch {
  double* mu;    // (n_slots, n_sigmas, n_comp): moments of the centre per density slot
  double* muc;   // (n_channels, n_sigmas, n_comp): moments per channel
  double* gmu;   // (n_slots, n_sigmas, n_comp): dE/dmu per slot (VJP)
  double* gmuc;  // (n_sigmas, n_comp): dE/dmu_h of one channel, or dG_f/dmu for one feature
  double* R;     // (n_orders, n_sigmas) radial part of the current pair
  double* dR;    // (n_orders, n_sigmas) dR/dr
  double* E;     // (max_gauss, n_sigmas) exp(-b r^2) of the current pair
  double* mono;  // (kMaxMonomials)
  double* S;     // (n_comp) S_c(d) of the current pair
  double* G;     // (n_features) feature row of the current centre
  double* pairs = nullptr;  // pair cache of the fused pass (set by the driver; not carved)
};

AF_INLINE int64_t scratch_size(const Tables& t) {
  const int64_t ns = t.n_sigmas, nc = t.n_comp, no = t.n_orders;
  return (2 * t.n_slots + t.n_channels + 1) * ns * nc + 2 * no * ns + n_features(t) +
         static_cast<int64_t>(t.max_gauss) * ns + kMaxMonomials + nc;
}

AF_INLINE void carve(const Tables& t, double* buf, Scratch& s) {
  const int64_t ns = t.n_sigmas, nc = t.n_comp, no = t.n_orders;
  s.mu = buf; buf += t.n_slots * ns * nc;
  s.muc = buf; buf += t.n_channels * ns * nc;
  s.gmu = buf; buf += t.n_slots * ns * nc;
  s.gmuc = buf; buf += ns * nc;
  s.R = buf; buf += no * ns;
  s.dR = buf; buf += no * ns;
  s.E = buf; buf += static_cast<int64_t>(t.max_gauss) * ns;
  s.mono = buf; buf += kMaxMonomials;
  s.S = buf; buf += nc;
  s.G = buf;
}

/// Stage 1. Per-pair terms of neighbour element e at displacement d (r = |d| < r_c): returns
/// fc and dfc/dr, fills mono (n_mono monomials up to max_order), S (n_comp: S_c(d)), R and dR
/// ((n_orders, n_sigmas): radial parts and dR/dr). E: scratch of max_gauss * n_sigmas.
AF_HD inline void pair_terms(const Tables& t, int32_t e, const double* d, double r, double* fc, double* dfc,
                             double* mono, double* S, double* R, double* dR, double* E) {
  if (t.cutoff < 0) {
    *fc = 1.0;
    *dfc = 0.0;
  } else {
    detail::cutoff_fdf(static_cast<CutoffType>(t.cutoff), r, t.r_c, *fc, *dfc);
  }
  mono[0] = 1.0;  // each monomial from one of lower degree times x, y or z (table built once)
  for (int32_t m = 1; m < t.n_mono; ++m) mono[m] = mono[t.mono_parent[m]] * d[t.mono_axis[m]];
  for (int32_t c = 0; c < t.n_comp; ++c) {
    double v = 0.0;
    for (int32_t q = t.term_begin[c]; q < t.term_begin[c + 1]; ++q) v += t.term_coef[q] * mono[t.term_mono[q]];
    S[c] = v;
  }
  const int32_t ns = t.n_sigmas, no = t.n_orders;
  const double r2 = r * r;
  for (int32_t k = 0; k < ns * no; ++k) {
    R[k] = 0.0;
    dR[k] = 0.0;
  }
  // exp(-b r^2) for every (Gaussian, width) of the element in one vectorisable loop
  const int32_t k0 = t.gauss_begin[e] * ns, nk = (t.gauss_begin[e + 1] - t.gauss_begin[e]) * ns;
  const double* __restrict bb = t.b + k0;
  AF_SIMD
  for (int32_t k = 0; k < nk; ++k) E[k] = simd::exp(-bb[k] * r2);
  for (int32_t k = 0; k < nk; ++k) {
    const int32_t sg = k % ns;
    const double* A = t.A + static_cast<int64_t>(k0 + k) * no;
    const double ex = E[k], db = -2.0 * bb[k] * r;
    for (int32_t o = 0; o < no; ++o) {
      const double a = A[o] * ex;
      R[o * ns + sg] += a;
      dR[o * ns + sg] += db * a;
    }
  }
}

/// Stages 1-3 for centre c: G (n_features, f = (h * n_orders + o) * n_sigmas + s) overwritten;
/// s.muc keeps the channel moments for a following VJP/Jacobian. Returns the number of neighbours inside
/// r_c; *overlap is set to the centre's position index if a neighbour sits at distance zero.
AF_HD inline int64_t values(const Tables& t, const NeighborView& nl, int64_t c, Scratch& s, double* G,
                            int64_t* overlap, double* cache = nullptr) {
  const int64_t i = nl.centre(c);
  const double* x = nl.positions;
  const int32_t ns = t.n_sigmas, nc = t.n_comp, no = t.n_orders;
  const int32_t ei = nl.species[i];
  const int64_t slot_size = static_cast<int64_t>(ns) * nc;
  for (int64_t k = 0; k < t.n_slots * slot_size; ++k) s.mu[k] = 0.0;
  // the centre's own density: order 0 only (S_n(0) = 0 for n >= 1)
  for (int32_t o = 0; o < no; ++o)
    if (t.orders[o] == 0)
      for (int32_t sg = 0; sg < ns; ++sg)
        s.mu[t.slot_of[ei] * slot_size + sg * nc + t.comp_begin[o]] += t.self0[ei * ns + sg];
  const double rc2 = t.r_c * t.r_c;
  int64_t count = 0;
  for (int64_t q = nl.offsets[c]; q < nl.offsets[c + 1]; ++q) {
    const int64_t j = nl.neighbors[q];
    const double d[3] = {x[3 * j] - x[3 * i], x[3 * j + 1] - x[3 * i + 1], x[3 * j + 2] - x[3 * i + 2]};
    const double r2 = d[0] * d[0] + d[1] * d[1] + d[2] * d[2];
    if (r2 >= rc2) continue;
    if (r2 == 0.0) {
      *overlap = i;
      continue;
    }
    double fc, dfc;
    const double r = ::sqrt(r2);
    double *mono = s.mono, *S = s.S, *R = s.R, *dR = s.dR;
    if (cache) {  // the fused pass keeps this pair's terms for the gradient
      double* rec = cache + count * pair_record_size(t);
      rec[0] = static_cast<double>(q);
      rec[1] = r;
      rec[4] = d[0];
      rec[5] = d[1];
      rec[6] = d[2];
      mono = rec + 7;
      S = mono + t.n_mono;
      R = S + nc;
      dR = R + no * ns;
      pair_terms(t, nl.species[j], d, r, &fc, &dfc, mono, S, R, dR, s.E);
      rec[2] = fc;
      rec[3] = dfc;
    } else {
      pair_terms(t, nl.species[j], d, r, &fc, &dfc, mono, S, R, dR, s.E);
    }
    ++count;
    double* mu_slot = s.mu + t.slot_of[nl.species[j]] * slot_size;
    for (int32_t o = 0; o < no; ++o)
      for (int32_t sg = 0; sg < ns; ++sg) {
        const double w = fc * R[o * ns + sg];
        double* mu = mu_slot + sg * nc;
        for (int32_t cc = t.comp_begin[o]; cc < t.comp_begin[o + 1]; ++cc) mu[cc] += w * S[cc];
      }
  }
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

/// Gradient dX/dd of X = sum_{s,c} gmu[s,c] fc(r) R_{o(c),s}(r) S_c(d) for one pair (terms
/// from pair_terms): out (3).
AF_HD inline void pair_gradient(const Tables& t, const double* d, double r, double fc, double dfc, const double* mono,
                                const double* S, const double* R, const double* dR, const double* gmu, double* out) {
  const int32_t ns = t.n_sigmas, nc = t.n_comp, no = t.n_orders;
  double scalar = 0.0, vx = 0.0, vy = 0.0, vz = 0.0;
  for (int32_t o = 0; o < no; ++o) {
    for (int32_t cc = t.comp_begin[o]; cc < t.comp_begin[o + 1]; ++cc) {
      double U = 0.0, V = 0.0;
      for (int32_t sg = 0; sg < ns; ++sg) {
        const double g = gmu[sg * nc + cc];
        U += g * R[o * ns + sg];
        V += g * dR[o * ns + sg];
      }
      if (U == 0.0 && V == 0.0) continue;
      scalar += (dfc * U + fc * V) * S[cc];
      double gx = 0.0, gy = 0.0, gz = 0.0;
      for (int32_t q = t.grad_begin[3 * cc]; q < t.grad_begin[3 * cc + 1]; ++q) gx += t.grad_coef[q] * mono[t.grad_mono[q]];
      for (int32_t q = t.grad_begin[3 * cc + 1]; q < t.grad_begin[3 * cc + 2]; ++q) gy += t.grad_coef[q] * mono[t.grad_mono[q]];
      for (int32_t q = t.grad_begin[3 * cc + 2]; q < t.grad_begin[3 * cc + 3]; ++q) gz += t.grad_coef[q] * mono[t.grad_mono[q]];
      vx += fc * U * gx;
      vy += fc * U * gy;
      vz += fc * U * gz;
    }
  }
  const double sr = scalar / r;
  out[0] = sr * d[0] + vx;
  out[1] = sr * d[1] + vy;
  out[2] = sr * d[2] + vz;
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

/// Stage 4 (VJP) for centre c, after values(): dE_i/dd_q for every neighbour q inside r_c,
/// written at its CSR slot of pair_grad (n_pairs, 3); w: dE/dG row of the centre. With the pair
/// cache values() filled (count records), the pair terms are read back instead of recomputed.
AF_HD inline void vjp(const Tables& t, const NeighborView& nl, int64_t c, const double* G, const double* w, Scratch& s,
                      double* pair_grad, const double* cache = nullptr, int64_t count = 0) {
  if (!moment_weights(t, G, w, s)) return;
  const int32_t ns = t.n_sigmas, nc = t.n_comp, no = t.n_orders;
  if (cache) {
    const int64_t rs = pair_record_size(t);
    for (int64_t m = 0; m < count; ++m) {
      const double* rec = cache + m * rs;
      const int64_t q = static_cast<int64_t>(rec[0]);
      const double* mono = rec + 7;
      const double* S = mono + t.n_mono;
      const double* R = S + nc;
      const double* dR = R + no * ns;
      // the published GMP has one slot: no per-pair lookup (it cost 9 % of the fused pass on water)
      const double* gmu =
          t.n_slots == 1 ? s.gmu : s.gmu + t.slot_of[nl.species[nl.neighbors[q]]] * static_cast<int64_t>(ns) * nc;
      pair_gradient(t, rec + 4, rec[1], rec[2], rec[3], mono, S, R, dR, gmu, pair_grad + 3 * q);
    }
    return;
  }
  const int64_t i = nl.centre(c);
  const double* x = nl.positions;
  const double rc2 = t.r_c * t.r_c;
  for (int64_t q = nl.offsets[c]; q < nl.offsets[c + 1]; ++q) {
    const int64_t j = nl.neighbors[q];
    const double d[3] = {x[3 * j] - x[3 * i], x[3 * j + 1] - x[3 * i + 1], x[3 * j + 2] - x[3 * i + 2]};
    const double r2 = d[0] * d[0] + d[1] * d[1] + d[2] * d[2];
    if (r2 >= rc2 || r2 == 0.0) continue;
    const double r = ::sqrt(r2);
    double fc, dfc;
    pair_terms(t, nl.species[j], d, r, &fc, &dfc, s.mono, s.S, s.R, s.dR, s.E);
    const double* gmu = s.gmu + t.slot_of[nl.species[j]] * static_cast<int64_t>(ns) * nc;
    pair_gradient(t, d, r, fc, dfc, s.mono, s.S, s.R, s.dR, gmu, pair_grad + 3 * q);
  }
}

/// Jacobian rows of centre c, after values(): J (1 + n_in, nf, 3) with entry 0 the centre and
/// entry 1 + m the m-th neighbour inside r_c in CSR order (zeroed by the caller).
AF_HD inline void jacobian(const Tables& t, const NeighborView& nl, int64_t c, const double* G, Scratch& s, double* J,
                           int64_t nf) {
  const int32_t ns = t.n_sigmas, nc = t.n_comp, no = t.n_orders;
  const int64_t i = nl.centre(c);
  const double* x = nl.positions;
  const double rc2 = t.r_c * t.r_c;
  int64_t m = 0;
  for (int64_t q = nl.offsets[c]; q < nl.offsets[c + 1]; ++q) {
    const int64_t j = nl.neighbors[q];
    const double d[3] = {x[3 * j] - x[3 * i], x[3 * j + 1] - x[3 * i + 1], x[3 * j + 2] - x[3 * i + 2]};
    const double r2 = d[0] * d[0] + d[1] * d[1] + d[2] * d[2];
    if (r2 >= rc2 || r2 == 0.0) continue;
    const double r = ::sqrt(r2);
    double fc, dfc;
    pair_terms(t, nl.species[j], d, r, &fc, &dfc, s.mono, s.S, s.R, s.dR, s.E);
    const int32_t slot = t.slot_of[nl.species[j]];
    for (int32_t h = 0; h < t.n_channels; ++h) {
      if (!t.chan_member[h * t.n_slots + slot]) continue;  // j is not in this channel's density
      for (int32_t o = 0; o < no; ++o)
        for (int32_t sg = 0; sg < ns; ++sg) {
          const int64_t f = (h * no + o) * ns + sg;
          for (int64_t k = 0; k < static_cast<int64_t>(ns) * nc; ++k) s.gmuc[k] = 0.0;
          feature_gradient(t, o, sg, G[f], 1.0, s.muc + h * static_cast<int64_t>(ns) * nc, s.gmuc);
          double g[3];
          pair_gradient(t, d, r, fc, dfc, s.mono, s.S, s.R, s.dR, s.gmuc, g);
          double* self = J + f * 3;
          double* other = J + ((1 + m) * nf + f) * 3;
          for (int k = 0; k < 3; ++k) {
            other[k] += g[k];
            self[k] -= g[k];
          }
        }
    }
    ++m;
  }
}

}  // namespace gmp
}  // namespace atomforge
