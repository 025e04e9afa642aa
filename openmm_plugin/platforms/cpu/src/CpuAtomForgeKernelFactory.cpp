// Kernel library for the CPU platform. The CPU platform keeps positions and forces in the
// Reference platform's data, so the kernel is the Reference one with threads.
//
// Thread rule (docs/openmm.md): the core's OpenMP region runs with
//     min(Threads, max(1, covered atoms / kAtomsPerThread))
// threads, where Threads is the CPU platform's "Threads" property (OPENMM_CPU_THREADS, else the
// number of cores); never the OpenMP default, so OMP_NUM_THREADS does not add threads beside
// OpenMM's own. Small molecules run on one thread: their step is too short for an OpenMP fork and
// barrier to pay, and on a loaded machine each barrier waits for a descheduled thread.
// The Reference platform's kernel always uses 1 thread.
// With ATOMFORGE_OPENMM_VERBOSE set, the chosen count is printed to stderr once per Context.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <thread>

#include "../../reference/src/ReferenceAtomForgeKernels.h"
#include "openmm/KernelFactory.h"
#include "openmm/OpenMMException.h"
#include "openmm/internal/ContextImpl.h"

using namespace AtomForgeOpenMM;

namespace {
class CpuCalcAtomForgeForceKernel : public ReferenceCalcAtomForgeForceKernel {
 public:
  static constexpr int kAtomsPerThread = 32;
  CpuCalcAtomForgeForceKernel(std::string name, const OpenMM::Platform& platform, OpenMM::ContextImpl&)
      : ReferenceCalcAtomForgeForceKernel(name, platform, 1) {}
  void initialize(const OpenMM::System& system, const AtomForgeForce& force) override {
    ReferenceCalcAtomForgeForceKernel::initialize(system, force);
    nAtoms = force.getParticles().empty() ? system.getNumParticles() : static_cast<int>(force.getParticles().size());
  }
  double execute(OpenMM::ContextImpl& ctx, bool includeForces, bool includeEnergy) override {
    if (!threadsKnown) {  // the platform's data exists once the Context is fully created
      threadsKnown = true;
      int platformThreads = 0;
      try {
        platformThreads = std::atoi(ctx.getPlatform().getPropertyValue(ctx.getOwner(), "Threads").c_str());
      } catch (...) {
      }
      if (platformThreads <= 0) platformThreads = std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
      nThreads = std::max(1, std::min(platformThreads, nAtoms / kAtomsPerThread));
      if (std::getenv("ATOMFORGE_OPENMM_VERBOSE"))
        std::fprintf(stderr, "atomforge OpenMM CPU kernel: %d atoms, platform Threads %d -> %d OpenMP thread(s)\n",
                     nAtoms, platformThreads, nThreads);
    }
    return ReferenceCalcAtomForgeForceKernel::execute(ctx, includeForces, includeEnergy);
  }

 private:
  bool threadsKnown = false;
  int nAtoms = 0;
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
