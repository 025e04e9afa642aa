#include "common/cutoff.hpp"

#include "atomforge/errors.hpp"

namespace atomforge {

CutoffType cutoff_type_from_string(const std::string& name) {
  if (name == "cos" || name == "cosine") return CutoffType::Cosine;
  if (name == "tanhu") return CutoffType::TanhU;
  if (name == "tanh") return CutoffType::Tanh;
  if (name == "poly1") return CutoffType::Poly1;
  if (name == "poly2") return CutoffType::Poly2;
  if (name == "poly3") return CutoffType::Poly3;
  if (name == "poly4") return CutoffType::Poly4;
  throw InvalidInput("unknown cutoff function '" + name + "' (use cos, tanhu, tanh, poly1, poly2, poly3 or poly4)");
}

std::string to_string(CutoffType t) {
  switch (t) {
    case CutoffType::Cosine: return "cos";
    case CutoffType::TanhU: return "tanhu";
    case CutoffType::Tanh: return "tanh";
    case CutoffType::Poly1: return "poly1";
    case CutoffType::Poly2: return "poly2";
    case CutoffType::Poly3: return "poly3";
    case CutoffType::Poly4: return "poly4";
  }
  return "unknown";
}

}  // namespace atomforge
