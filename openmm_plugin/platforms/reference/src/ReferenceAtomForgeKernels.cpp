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

AtomForgeUncertainty ReferenceCalcAtomForgeForceKernel::uncertainty(OpenMM::ContextImpl& context) {
  std::vector<OpenMM::Vec3> positions;
  context.getPositions(positions);  // the platform's current state, in System order
  OpenMM::Vec3 box[3];
  context.getPeriodicBoxVectors(box[0], box[1], box[2]);
  return evaluator->uncertainty(positions, box, nThreads);
}

AtomForgeExtrapolation ReferenceCalcAtomForgeForceKernel::extrapolation(bool reset) {
  return evaluator->extrapolation(reset);
}
