#pragma once
#include <memory>

#include "AtomForgeKernels.h"
#include "internal/AtomForgeEvaluator.h"

namespace AtomForgeOpenMM {

/// Reads positions/box from and adds forces to the Reference platform's data (which the CPU
/// platform shares). nThreads: 0 = the core's OpenMP default, 1 = serial (Reference platform).
class ReferenceCalcAtomForgeForceKernel : public CalcAtomForgeForceKernel {
 public:
  ReferenceCalcAtomForgeForceKernel(std::string name, const OpenMM::Platform& platform, int nThreads = 1)
      : CalcAtomForgeForceKernel(name, platform), nThreads(nThreads) {}
  void initialize(const OpenMM::System& system, const AtomForgeForce& force) override;
  double execute(OpenMM::ContextImpl& context, bool includeForces, bool includeEnergy) override;
  AtomForgeUncertainty uncertainty(OpenMM::ContextImpl& context) override;
  AtomForgeExtrapolation extrapolation(bool reset) override;

 protected:
  std::unique_ptr<AtomForgeEvaluator> evaluator;
  int nThreads;
};

}  // namespace AtomForgeOpenMM
