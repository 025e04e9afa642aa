// Kernel library for the Reference platform; loaded by `import atomforge.openmm`
// (openmm.Platform.loadPluginLibrary), which calls registerKernelFactories().
#include "ReferenceAtomForgeKernels.h"
#include "openmm/KernelFactory.h"
#include "openmm/OpenMMException.h"
#include "openmm/internal/ContextImpl.h"

using namespace AtomForgeOpenMM;

namespace {
class ReferenceAtomForgeKernelFactory : public OpenMM::KernelFactory {
 public:
  OpenMM::KernelImpl* createKernelImpl(std::string name, const OpenMM::Platform& platform,
                                       OpenMM::ContextImpl&) const override {
    if (name == CalcAtomForgeForceKernel::Name()) return new ReferenceCalcAtomForgeForceKernel(name, platform, 1);
    throw OpenMM::OpenMMException("atomforge Reference kernels: unknown kernel '" + name + "'");
  }
};
}  // namespace

extern "C" __attribute__((visibility("default"))) void registerPlatforms() {}

extern "C" __attribute__((visibility("default"))) void registerKernelFactories() {
  for (int i = 0; i < OpenMM::Platform::getNumPlatforms(); i++) {
    OpenMM::Platform& platform = OpenMM::Platform::getPlatform(i);
    if (platform.getName() == "Reference")
      platform.registerKernelFactory(CalcAtomForgeForceKernel::Name(), new ReferenceAtomForgeKernelFactory());
  }
}
