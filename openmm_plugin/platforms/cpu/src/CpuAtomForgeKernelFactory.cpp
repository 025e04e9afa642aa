// Kernel library for the CPU platform. The CPU platform keeps positions and forces in the
// Reference platform's data, so the kernel is the Reference one with threads: the core runs
// with as many OpenMP threads as the CPU platform (its "Threads" property), else its default.
#include <algorithm>
#include <cstdlib>

#include "../../reference/src/ReferenceAtomForgeKernels.h"
#include "openmm/KernelFactory.h"
#include "openmm/OpenMMException.h"
#include "openmm/internal/ContextImpl.h"

using namespace AtomForgeOpenMM;

namespace {
class CpuCalcAtomForgeForceKernel : public ReferenceCalcAtomForgeForceKernel {
 public:
  CpuCalcAtomForgeForceKernel(std::string name, const OpenMM::Platform& platform, OpenMM::ContextImpl&)
      : ReferenceCalcAtomForgeForceKernel(name, platform, 0) {}
  double execute(OpenMM::ContextImpl& ctx, bool includeForces, bool includeEnergy) override {
    if (!threadsKnown) {  // the platform's data exists once the Context is fully created
      threadsKnown = true;
      try {
        nThreads = std::max(0, std::atoi(ctx.getPlatform().getPropertyValue(ctx.getOwner(), "Threads").c_str()));
      } catch (...) {
        nThreads = 0;
      }
    }
    return ReferenceCalcAtomForgeForceKernel::execute(ctx, includeForces, includeEnergy);
  }

 private:
  bool threadsKnown = false;
};

class CpuAtomForgeKernelFactory : public OpenMM::KernelFactory {
 public:
  OpenMM::KernelImpl* createKernelImpl(std::string name, const OpenMM::Platform& platform,
                                       OpenMM::ContextImpl& context) const override {
    if (name == CalcAtomForgeForceKernel::Name()) return new CpuCalcAtomForgeForceKernel(name, platform, context);
    throw OpenMM::OpenMMException("atomforge CPU kernels: unknown kernel '" + name + "'");
  }
};
}  // namespace

extern "C" __attribute__((visibility("default"))) void registerPlatforms() {}

extern "C" __attribute__((visibility("default"))) void registerKernelFactories() {
  for (int i = 0; i < OpenMM::Platform::getNumPlatforms(); i++) {
    OpenMM::Platform& platform = OpenMM::Platform::getPlatform(i);
    if (platform.getName() == "CPU")
      platform.registerKernelFactory(CalcAtomForgeForceKernel::Name(), new CpuAtomForgeKernelFactory());
  }
}
