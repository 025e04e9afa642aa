// Cutoff functions fc(r) and dfc/dr (internal header). Formulas: see symmetry_functions.hpp.
#pragma once
#include <cmath>

#include "atomforge/symmetry_functions.hpp"

namespace atomforge {
namespace detail {

constexpr double kPi = 3.14159265358979323846;

/// fc(r) and dfc/dr for r < r_c (callers skip r >= r_c, where both are 0).
inline void cutoff_fdf(CutoffType type, double r, double rc, double& f, double& df) {
  const double inv = 1.0 / rc;
  const double x = r * inv;
  switch (type) {
    case CutoffType::Cosine: {
      f = 0.5 * (std::cos(kPi * x) + 1.0);
      df = -0.5 * kPi * inv * std::sin(kPi * x);
      return;
    }
    case CutoffType::TanhU:
    case CutoffType::Tanh: {
      const double t = std::tanh(1.0 - x);
      f = t * t * t;
      df = 3.0 * t * t * (t * t - 1.0) * inv;
      if (type == CutoffType::Tanh) {
        const double t1 = std::tanh(1.0);
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

}  // namespace detail
}  // namespace atomforge
