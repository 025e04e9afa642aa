// The model registry, expanded from list.def.
#include <sstream>

#include "atomforge/errors.hpp"
#include "atomforge/model.hpp"

namespace atomforge {

#define AF_MODEL(key, summary) std::unique_ptr<Model> make_model_##key(const ModelFile&);
#include "models/list.def"
#undef AF_MODEL

const std::vector<ModelType>& model_types() {
  static const std::vector<ModelType> types = {
#define AF_MODEL(key, summary) {#key, summary, &make_model_##key},
#include "models/list.def"
#undef AF_MODEL
  };
  return types;
}

std::unique_ptr<Model> load_model(const ModelFile& file) {
  const std::string& type = file.string("model_type");
  std::ostringstream known;
  for (const auto& t : model_types()) {
    if (type == t.name) return t.make(file);
    known << (known.tellp() > 0 ? ", " : "") << t.name;
  }
  throw InvalidInput(file.where() + ": unsupported model_type '" + type + "' (this atomforge knows: " + known.str() +
                     ")");
}

std::unique_ptr<Model> load_model(const std::string& path) { return load_model(ModelFile::from_file(path)); }

}  // namespace atomforge
