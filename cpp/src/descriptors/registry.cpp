// The descriptor registry, expanded from list.def.
#include <sstream>

#include "atomforge/descriptor.hpp"
#include "atomforge/errors.hpp"

namespace atomforge {

#define AF_DESCRIPTOR(key, summary) std::unique_ptr<Descriptor> make_descriptor_##key(const ModelFile&, int32_t);
#include "descriptors/list.def"
#undef AF_DESCRIPTOR

const std::vector<DescriptorType>& descriptor_types() {
  static const std::vector<DescriptorType> types = {
#define AF_DESCRIPTOR(key, summary) {#key, summary, &make_descriptor_##key},
#include "descriptors/list.def"
#undef AF_DESCRIPTOR
  };
  return types;
}

std::unique_ptr<Descriptor> make_descriptor(const ModelFile& file) {
  const std::string& type = file.string("descriptor.type");
  const int64_t ne = static_cast<int64_t>(file.check_species(file.i64_vector("species"), "species").size());
  std::ostringstream known;
  for (const auto& t : descriptor_types()) {
    if (type == t.name) return t.make(file, static_cast<int32_t>(ne));
    known << (known.tellp() > 0 ? ", " : "") << t.name;
  }
  throw InvalidInput(file.where() + ": unknown descriptor.type '" + type + "' (this atomforge knows: " +
                     known.str() + ")");
}

}  // namespace atomforge
