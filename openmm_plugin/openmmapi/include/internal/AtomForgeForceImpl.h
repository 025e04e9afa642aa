#pragma once
#include <map>
#include <string>
#include <vector>

#include "AtomForgeForce.h"
#include "openmm/Kernel.h"
#include "openmm/internal/ForceImpl.h"

namespace AtomForgeOpenMM {

class AtomForgeForceImpl : public OpenMM::ForceImpl {
 public:
  explicit AtomForgeForceImpl(const AtomForgeForce& owner) : owner(owner) {}
  void initialize(OpenMM::ContextImpl& context) override;
  const AtomForgeForce& getOwner() const override { return owner; }
  void updateContextState(OpenMM::ContextImpl&, bool&) override {}
  double calcForcesAndEnergy(OpenMM::ContextImpl& context, bool includeForces, bool includeEnergy,
                             int groups) override;
  std::map<std::string, double> getDefaultParameters() override { return {}; }
  std::vector<std::string> getKernelNames() override;
  AtomForgeUncertainty getUncertainty(OpenMM::ContextImpl& context);
  AtomForgeExtrapolation getExtrapolationCounts(bool reset);

 private:
  const AtomForgeForce& owner;
  OpenMM::Kernel kernel;
};

}  // namespace AtomForgeOpenMM
