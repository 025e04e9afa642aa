#include "AtomForgeForce.h"

#include <cmath>
#include <fstream>
#include <set>
#include <sstream>

#include "atomforge/elements.hpp"
#include "atomforge/engine.hpp"
#include "atomforge/units.hpp"
#include "internal/AtomForgeForceImpl.h"
#include "openmm/OpenMMException.h"

using namespace AtomForgeOpenMM;
using OpenMM::OpenMMException;

namespace {
const std::string kMagic("AFMODEL\0", 8);

std::string elementName(int z) {
  try {
    return atomforge::element_symbol(z);
  } catch (...) {
    return "Z=" + std::to_string(z);
  }
}
}  // namespace

AtomForgeForce::AtomForgeForce(const std::string& model, const std::vector<int>& atomicNumbers,
                               const std::vector<int>& particles, bool periodic)
    : minDistanceNm(defaultMinimumDistance()), periodic(periodic) {
  if (model.compare(0, kMagic.size(), kMagic) == 0) {
    modelBytes = model;
    modelSource = "<bytes>";
  } else {
    if (model.empty()) throw OpenMMException("AtomForgeForce: no model given (a path or the model file's bytes)");
    std::ifstream in(model, std::ios::binary);
    if (!in) throw OpenMMException("AtomForgeForce: cannot open model file '" + model + "'");
    std::ostringstream ss;
    ss << in.rdbuf();
    modelBytes = ss.str();
    modelSource = model;
  }
  try {
    atomforge::EngineModel m(modelBytes, modelSource, atomforge::engine_units("openmm"));
    m.require(atomforge::kEnergy, "AtomForgeForce", true);  // whole-system evaluation: long-range models too
    modelElements = m.model().species();
    cutoffNm = m.cutoff();
    modelType = m.model().model_type();
  } catch (const std::exception& e) {
    throw OpenMMException(std::string("AtomForgeForce: invalid model: ") + e.what());
  }
  setParticles(atomicNumbers, particles);
}

void AtomForgeForce::setParticles(const std::vector<int>& z, const std::vector<int>& p) {
  if (!p.empty() && p.size() != z.size())
    throw OpenMMException("AtomForgeForce: " + std::to_string(p.size()) + " particles but " +
                          std::to_string(z.size()) + " atomic numbers");
  std::set<int> seen;
  for (size_t i = 0; i < p.size(); i++) {
    if (p[i] < 0) throw OpenMMException("AtomForgeForce: particle index " + std::to_string(p[i]) + " is negative");
    if (!seen.insert(p[i]).second)
      throw OpenMMException("AtomForgeForce: particle " + std::to_string(p[i]) + " is listed twice");
  }
  std::string names;
  for (int e : modelElements) names += (names.empty() ? "" : ", ") + elementName(e);
  for (size_t i = 0; i < z.size(); i++) {
    bool ok = false;
    for (int e : modelElements) ok = ok || e == z[i];
    if (!ok) {
      const int idx = p.empty() ? static_cast<int>(i) : p[i];
      throw OpenMMException("AtomForgeForce: particle " + std::to_string(idx) + " is " + elementName(z[i]) +
                            ", an element the model does not cover (model elements: " + names + ")");
    }
  }
  atomicNumbers = z;
  particles = p;
}

double AtomForgeForce::defaultMinimumDistance() {
  return atomforge::kDefaultMinDistance / atomforge::units::kNmInAngstrom;
}

void AtomForgeForce::setMinimumDistance(double distanceNm) {
  if (!(distanceNm >= 0.0) || !std::isfinite(distanceNm))
    throw OpenMMException("AtomForgeForce: the minimum distance must be a finite length >= 0 (nm), got " +
                          std::to_string(distanceNm));
  minDistanceNm = distanceNm;
}

void AtomForgeForce::setTotalCharge(double charge) {
  if (!std::isfinite(charge))
    throw OpenMMException("AtomForgeForce: the total charge must be a finite number of elementary charges, got " +
                          std::to_string(charge));
  totalCharge = charge;
}

OpenMM::ForceImpl* AtomForgeForce::createImpl() const { return new AtomForgeForceImpl(*this); }

namespace {
AtomForgeForceImpl& implOf(OpenMM::ForceImpl& impl) {
  auto* p = dynamic_cast<AtomForgeForceImpl*>(&impl);
  if (!p) throw OpenMMException("AtomForgeForce: this Force is not part of the Context's System");
  return *p;
}
}  // namespace

AtomForgeUncertainty AtomForgeForce::getUncertainty(OpenMM::Context& context) const {
  return implOf(getImplInContext(context)).getUncertainty(getContextImpl(context));
}

AtomForgeExtrapolation AtomForgeForce::getExtrapolationCounts(OpenMM::Context& context, bool reset) const {
  return implOf(getImplInContext(context)).getExtrapolationCounts(reset);
}
