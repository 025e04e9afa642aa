#include "AtomForgeForceProxy.h"

#include <string>
#include <vector>

#include "AtomForgeForce.h"
#include "openmm/OpenMMException.h"
#include "openmm/serialization/SerializationNode.h"

using namespace AtomForgeOpenMM;
using OpenMM::OpenMMException;
using OpenMM::SerializationNode;

namespace {
const char kB64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

std::string base64Encode(const std::string& in) {
  std::string out;
  out.reserve((in.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    const unsigned v = (unsigned char)in[i] << 16 | (unsigned char)in[i + 1] << 8 | (unsigned char)in[i + 2];
    for (int k = 3; k >= 0; k--) out += kB64[(v >> (6 * k)) & 63];
  }
  if (i < in.size()) {
    unsigned v = (unsigned char)in[i] << 16;
    if (i + 1 < in.size()) v |= (unsigned char)in[i + 1] << 8;
    out += kB64[(v >> 18) & 63];
    out += kB64[(v >> 12) & 63];
    out += i + 1 < in.size() ? kB64[(v >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

std::string base64Decode(const std::string& in) {
  int lut[256];
  for (int& x : lut) x = -1;
  for (int k = 0; k < 64; k++) lut[(unsigned char)kB64[k]] = k;
  std::string out;
  unsigned v = 0;
  int bits = 0;
  for (char c : in) {
    if (c == '=' || c == '\n' || c == '\r' || c == ' ' || c == '\t') continue;
    const int d = lut[(unsigned char)c];
    if (d < 0) throw OpenMMException("AtomForgeForce XML: the embedded model is not valid base64");
    v = (v << 6) | d;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((v >> bits) & 255);
    }
  }
  return out;
}
}  // namespace

void AtomForgeForceProxy::serialize(const void* object, SerializationNode& node) const {
  const auto& force = *reinterpret_cast<const AtomForgeForce*>(object);
  node.setIntProperty("version", kVersion);
  node.setIntProperty("forceGroup", force.getForceGroup());
  node.setStringProperty("name", force.getName());
  node.setBoolProperty("usesPeriodic", force.usesPeriodicBoundaryConditions());
  // optional (absent: the default), so version 1 readers without it still read the System
  node.setDoubleProperty("minDistance", force.getMinimumDistance());
  node.setDoubleProperty("totalCharge", force.getTotalCharge());
  node.setStringProperty("modelSource", force.getModelSource());
  node.setStringProperty("model", base64Encode(force.getModelBytes()));
  SerializationNode& parts = node.createChildNode("Particles");
  const auto& p = force.getParticles();
  const auto& z = force.getAtomicNumbers();
  for (size_t i = 0; i < z.size(); i++) {
    SerializationNode& a = parts.createChildNode("Particle");
    a.setIntProperty("z", z[i]);
    if (!p.empty()) a.setIntProperty("index", p[i]);
  }
}

void* AtomForgeForceProxy::deserialize(const SerializationNode& node) const {
  const int version = node.getIntProperty("version");
  if (version < 1 || version > kVersion)
    throw OpenMMException("AtomForgeForce XML has proxy version " + std::to_string(version) +
                          ", but this atomforge OpenMM plugin reads versions up to " + std::to_string(kVersion) +
                          ": upgrade atomforge to load this System");
  std::vector<int> z, p;
  for (const SerializationNode& a : node.getChildNode("Particles").getChildren()) {
    z.push_back(a.getIntProperty("z"));
    if (a.hasProperty("index")) p.push_back(a.getIntProperty("index"));
  }
  if (!p.empty() && p.size() != z.size())
    throw OpenMMException("AtomForgeForce XML: some particles have an index and some do not");
  const std::string bytes = base64Decode(node.getStringProperty("model"));
  if (bytes.compare(0, 8, std::string("AFMODEL\0", 8)) != 0)
    throw OpenMMException("AtomForgeForce XML: the embedded model is not an atomforge model file");
  auto* force = new AtomForgeForce(bytes, z, p, node.getBoolProperty("usesPeriodic"));
  try {
    force->setForceGroup(node.getIntProperty("forceGroup", 0));
    force->setName(node.getStringProperty("name", force->getName()));
    if (node.hasProperty("minDistance")) force->setMinimumDistance(node.getDoubleProperty("minDistance"));
    if (node.hasProperty("totalCharge")) force->setTotalCharge(node.getDoubleProperty("totalCharge"));
  } catch (...) {
    delete force;
    throw;
  }
  return force;
}
