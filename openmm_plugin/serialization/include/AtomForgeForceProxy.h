#pragma once
#include "AtomForgeExport.h"
#include "openmm/serialization/SerializationProxy.h"

namespace AtomForgeOpenMM {

/// XML form of AtomForgeForce. The model file's bytes are embedded (base64), so a serialized
/// System is self-contained. Proxy version 1 (minDistance, nm, is an optional property: absent
/// means the default); newer versions are refused.
class ATOMFORGE_OPENMM_EXPORT AtomForgeForceProxy : public OpenMM::SerializationProxy {
 public:
  static constexpr int kVersion = 1;
  AtomForgeForceProxy() : OpenMM::SerializationProxy("AtomForgeForce") {}
  void serialize(const void* object, OpenMM::SerializationNode& node) const override;
  void* deserialize(const OpenMM::SerializationNode& node) const override;
};

}  // namespace AtomForgeOpenMM
