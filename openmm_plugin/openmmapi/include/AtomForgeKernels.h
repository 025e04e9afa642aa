// Abstract kernel of AtomForgeForce; platforms (Reference, CPU) implement it.
#pragma once
#include <string>

#include "AtomForgeForce.h"
#include "openmm/KernelImpl.h"
#include "openmm/Platform.h"
#include "openmm/System.h"

namespace AtomForgeOpenMM {

class CalcAtomForgeForceKernel : public OpenMM::KernelImpl {
 public:
  static std::string Name() { return "CalcAtomForgeForce"; }
  CalcAtomForgeForceKernel(std::string name, const OpenMM::Platform& platform)
      : OpenMM::KernelImpl(name, platform) {}
  /// Load the model and map particles to the model's elements (throws OpenMMException).
  virtual void initialize(const OpenMM::System& system, const AtomForgeForce& force) = 0;
  /// Add forces (kJ/mol/nm) to the context's force array; return the energy (kJ/mol).
  virtual double execute(OpenMM::ContextImpl& context, bool includeForces, bool includeEnergy) = 0;
  /// Committee uncertainty of the context's current state (OpenMM units).
  virtual AtomForgeUncertainty uncertainty(OpenMM::ContextImpl& context) = 0;
  /// Extrapolation counts since the last reset.
  virtual AtomForgeExtrapolation extrapolation(bool reset) = 0;
};

}  // namespace AtomForgeOpenMM
