// Cutoff functions fc(r) and dfc/dr, shared by every descriptor (internal header).
//
// fc(r), x = r / r_c, fc = 0 for r >= r_c:
//   Cosine: 0.5 (cos(pi x) + 1)                                        [B11 Eq. 4]
//   TanhU:  tanh^3(1 - x)                       (n2p2 cutoff_type 2)   [B11 Eq. 5, unnormalised]
//   Tanh:   tanh^3(1 - x) / tanh^3(1)           (n2p2 cutoff_type 3, fc(0) = 1)
//   Poly1:  (2x - 3) x^2 + 1                    (n2p2 cutoff_type 5)   [S19]
//   Poly2:  ((15 - 6x) x - 10) x^3 + 1          (n2p2 cutoff_type 6)
//   Poly3:  (x (x (20x - 70) + 84) - 35) x^4 + 1 (n2p2 cutoff_type 7)
//   Poly4:  (x (x ((315 - 70x) x - 540) + 420) - 126) x^5 + 1 (n2p2 cutoff_type 8)
// [B11] J. Behler, J. Chem. Phys. 134, 074106 (2011); [S19] A. Singraber et al., J. Chem.
// Theory Comput. 15, 3075 (2019).
// Single-source (AF_INLINE): callable from host and CUDA device code.
#pragma once
#include <cmath>
#include <cstdint>
#include <string>

#include "atomforge/hd.hpp"
#include "common/simd_math.hpp"

namespace atomforge {

enum class CutoffType : int32_t { Cosine = 0, TanhU = 1, Tanh = 2, Poly1 = 3, Poly2 = 4, Poly3 = 5, Poly4 = 6 };

/// Parse a cutoff-type name ("cos", "tanhu", "tanh", "poly1" .. "poly4"); throws InvalidInput.
CutoffType cutoff_type_from_string(const std::string& name);
std::string to_string(CutoffType t);

namespace detail {

constexpr double kPi = 3.14159265358979323846;

/// fc(r) and dfc/dr for r < r_c (callers skip r >= r_c, where both are 0).
AF_INLINE void cutoff_fdf(CutoffType type, double r, double rc, double& f, double& df) {
  const double inv = 1.0 / rc;
  const double x = r * inv;
  switch (type) {
    case CutoffType::Cosine: {
      f = 0.5 * (::cos(kPi * x) + 1.0);
      df = -0.5 * kPi * inv * ::sin(kPi * x);
      return;
    }
    case CutoffType::TanhU:
    case CutoffType::Tanh: {
      const double t = ::tanh(1.0 - x);
      f = t * t * t;
      df = 3.0 * t * t * (t * t - 1.0) * inv;
      if (type == CutoffType::Tanh) {
        const double t1 = ::tanh(1.0);
        const double pre = 1.0 / (t1 * t1 * t1);
        f *= pre;
        df *= pre;
      }
      return;
    }
    case CutoffType::Poly1:
      f = (2.0 * x - 3.0) * x * x + 1.0;
      df = x * (6.0 * x - 6.0) * inv;
      return;
    case CutoffType::Poly2:
      f = ((15.0 - 6.0 * x) * x - 10.0) * x * x * x + 1.0;
      df = x * x * ((60.0 - 30.0 * x) * x - 30.0) * inv;
      return;
    case CutoffType::Poly3: {
      const double x2 = x * x;
      f = (x * (x * (20.0 * x - 70.0) + 84.0) - 35.0) * x2 * x2 + 1.0;
      df = x2 * x * (x * (x * (140.0 * x - 420.0) + 420.0) - 140.0) * inv;
      return;
    }
    case CutoffType::Poly4: {
      const double x2 = x * x;
      f = (x * (x * ((315.0 - 70.0 * x) * x - 540.0) + 420.0) - 126.0) * x2 * x2 * x + 1.0;
      df = x2 * x2 * (x * (x * ((2520.0 - 630.0 * x) * x - 3780.0) + 2520.0) - 630.0) * inv;
      return;
    }
  }
  f = 0.0;
  df = 0.0;
}

/// fc(r) and dfc/dr for W values at once, vectorisable: the switch is outside the loops, and the
/// transcendental functions are the branch-free ones of simd_math.hpp (W becomes a compile-time
/// constant where the hot loops inline this). Values for r >= r_c are finite but meaningless:
/// callers mask them to 0. Same formulas as cutoff_fdf, agreeing with it to a few ulp (tanh by
/// simd::tanh_unit, a rational function on [-1, 1]; cos/sin(pi x) by polynomials on x in [0, 1]).
/// kDeriv = false leaves df untouched.
template <bool kDeriv = true>
AF_INLINE void cutoff_fdf_lanes(CutoffType type, int64_t W, const double* r, double rc, double* f,
                             double* df) {
  const double inv = 1.0 / rc;
  switch (type) {
    case CutoffType::Cosine:
      AF_SIMD
      for (int64_t l = 0; l < W; ++l) {
        double c, s;
        simd::cos_sin_pi(r[l] * inv, c, s);
        f[l] = 0.5 * (c + 1.0);
        if constexpr (kDeriv) df[l] = -0.5 * kPi * inv * s;
      }
      return;
    case CutoffType::TanhU:
    case CutoffType::Tanh: {
      double pre = 1.0;
      if (type == CutoffType::Tanh) {
        const double t1 = ::tanh(1.0);
        pre = 1.0 / (t1 * t1 * t1);
      }
      AF_SIMD
      for (int64_t l = 0; l < W; ++l) {
        const double t = simd::tanh_unit(1.0 - r[l] * inv);
        f[l] = pre * (t * t * t);
        if constexpr (kDeriv) df[l] = pre * (3.0 * t * t * (t * t - 1.0) * inv);
      }
      return;
    }
    case CutoffType::Poly1:
      AF_SIMD
      for (int64_t l = 0; l < W; ++l) {
        const double x = r[l] * inv;
        f[l] = (2.0 * x - 3.0) * x * x + 1.0;
        if constexpr (kDeriv) df[l] = x * (6.0 * x - 6.0) * inv;
      }
      return;
    case CutoffType::Poly2:
      AF_SIMD
      for (int64_t l = 0; l < W; ++l) {
        const double x = r[l] * inv;
        f[l] = ((15.0 - 6.0 * x) * x - 10.0) * x * x * x + 1.0;
        if constexpr (kDeriv) df[l] = x * x * ((60.0 - 30.0 * x) * x - 30.0) * inv;
      }
      return;
    case CutoffType::Poly3:
      AF_SIMD
      for (int64_t l = 0; l < W; ++l) {
        const double x = r[l] * inv, x2 = x * x;
        f[l] = (x * (x * (20.0 * x - 70.0) + 84.0) - 35.0) * x2 * x2 + 1.0;
        if constexpr (kDeriv) df[l] = x2 * x * (x * (x * (140.0 * x - 420.0) + 420.0) - 140.0) * inv;
      }
      return;
    case CutoffType::Poly4:
      AF_SIMD
      for (int64_t l = 0; l < W; ++l) {
        const double x = r[l] * inv, x2 = x * x;
        f[l] = (x * (x * ((315.0 - 70.0 * x) * x - 540.0) + 420.0) - 126.0) * x2 * x2 * x + 1.0;
        if constexpr (kDeriv) df[l] = x2 * x2 * (x * (x * ((2520.0 - 630.0 * x) * x - 3780.0) + 2520.0) - 630.0) * inv;
      }
      return;
  }
  for (int64_t l = 0; l < W; ++l) f[l] = 0.0;
  if constexpr (kDeriv)
    for (int64_t l = 0; l < W; ++l) df[l] = 0.0;
}

}  // namespace detail
}  // namespace atomforge
