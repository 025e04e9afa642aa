#include "ReferenceAtomForgeKernels.h"

#include "openmm/internal/ContextImpl.h"
#include "openmm/reference/ReferencePlatform.h"

using namespace AtomForgeOpenMM;

void ReferenceCalcAtomForgeForceKernel::initialize(const OpenMM::System& system, const AtomForgeForce& force) {
  evaluator.reset(new AtomForgeEvaluator(system, force));
}

double ReferenceCalcAtomForgeForceKernel::execute(OpenMM::ContextImpl& context, bool includeForces, bool) {
  auto* data = reinterpret_cast<OpenMM::ReferencePlatform::PlatformData*>(context.getPlatformData());
  return evaluator->compute(*data->positions, data->periodicBoxVectors, *data->forces, includeForces, nThreads);
}
