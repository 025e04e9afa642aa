#include "internal/AtomForgeForceImpl.h"

#include "AtomForgeKernels.h"
#include "openmm/internal/ContextImpl.h"

using namespace AtomForgeOpenMM;

void AtomForgeForceImpl::initialize(OpenMM::ContextImpl& context) {
  kernel = context.getPlatform().createKernel(CalcAtomForgeForceKernel::Name(), context);
  kernel.getAs<CalcAtomForgeForceKernel>().initialize(context.getSystem(), owner);
}

double AtomForgeForceImpl::calcForcesAndEnergy(OpenMM::ContextImpl& context, bool includeForces,
                                               bool includeEnergy, int groups) {
  if ((groups & (1 << owner.getForceGroup())) == 0) return 0.0;
  return kernel.getAs<CalcAtomForgeForceKernel>().execute(context, includeForces, includeEnergy);
}

std::vector<std::string> AtomForgeForceImpl::getKernelNames() { return {CalcAtomForgeForceKernel::Name()}; }

AtomForgeUncertainty AtomForgeForceImpl::getUncertainty(OpenMM::ContextImpl& context) {
  return kernel.getAs<CalcAtomForgeForceKernel>().uncertainty(context);
}

AtomForgeExtrapolation AtomForgeForceImpl::getExtrapolationCounts(bool reset) {
  return kernel.getAs<CalcAtomForgeForceKernel>().extrapolation(reset);
}
