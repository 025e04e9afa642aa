// Registers the XML proxy when the plugin's API library is loaded (by the SWIG module).
#include <typeinfo>

#include "AtomForgeForce.h"
#include "AtomForgeForceProxy.h"
#include "openmm/serialization/SerializationProxy.h"

extern "C" __attribute__((constructor)) void registerAtomForgeSerializationProxies() {
  OpenMM::SerializationProxy::registerProxy(typeid(AtomForgeOpenMM::AtomForgeForce),
                                            new AtomForgeOpenMM::AtomForgeForceProxy());
}
