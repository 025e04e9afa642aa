#include "atomforge/model_file.hpp"

#include <cmath>
#include <cstring>
#include <fstream>
#include <sstream>

#include "atomforge/errors.hpp"

namespace atomforge {

size_t ModelRecord::size() const {
  size_t n = 1;
  for (auto s : shape) n *= s;
  return n;
}

uint32_t crc32(const unsigned char* data, size_t n) {
  static uint32_t table[256];
  static bool init = [] {
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
      table[i] = c;
    }
    return true;
  }();
  (void)init;
  uint32_t c = 0xFFFFFFFFu;
  for (size_t i = 0; i < n; ++i) c = table[(c ^ data[i]) & 0xFF] ^ (c >> 8);
  return c ^ 0xFFFFFFFFu;
}

namespace {
template <class T>
T load_le(const unsigned char* p) {  // little-endian load, independent of host byte order
  uint64_t v = 0;
  for (size_t k = 0; k < sizeof(T); ++k) v |= static_cast<uint64_t>(p[k]) << (8 * k);
  T out;
  if constexpr (sizeof(T) == 8) {
    std::memcpy(&out, &v, 8);
  } else {
    out = static_cast<T>(v);
  }
  return out;
}
}  // namespace

ModelFile ModelFile::from_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InvalidInput(path + ": cannot open model file");
  std::ostringstream ss;
  ss << in.rdbuf();
  return from_bytes(ss.str(), path);
}

ModelFile ModelFile::from_bytes(const std::string& bytes, const std::string& where) {
  const auto* d = reinterpret_cast<const unsigned char*>(bytes.data());
  const size_t n = bytes.size();
  auto fail = [&](const std::string& what) -> void { throw InvalidInput(where + ": " + what); };
  if (n < 20 || std::memcmp(d, "AFMODEL\0", 8) != 0) fail("not an atomforge model file (bad magic bytes)");
  ModelFile mf;
  mf.where_ = where;
  mf.version_ = load_le<uint32_t>(d + 8);
  if (mf.version_ > kModelFormatVersion)
    fail("model file format version " + std::to_string(mf.version_) +
         " is newer than this atomforge reads (up to " + std::to_string(kModelFormatVersion) +
         "); upgrade atomforge");
  if (mf.version_ < 1) fail("invalid format version");
  if (crc32(d, n - 4) != load_le<uint32_t>(d + n - 4))
    fail("checksum mismatch: the file is truncated or corrupted");
  const uint32_t count = load_le<uint32_t>(d + 12);
  const size_t end = n - 4;
  size_t pos = 16;
  auto need = [&](size_t k) {
    if (k > end || pos > end - k) fail("truncated record table");
  };
  for (uint32_t r = 0; r < count; ++r) {
    need(2);
    const uint16_t ln = load_le<uint16_t>(d + pos);
    pos += 2;
    need(ln + 2u);
    std::string name(reinterpret_cast<const char*>(d + pos), ln);
    if (!is_valid_utf8(name))
      fail("record " + std::to_string(r) + " (at byte " + std::to_string(pos) + ") has a name that is not valid UTF-8 ('" +
           printable_utf8(name) + "')");
    if (mf.records_.count(name)) fail("record '" + name + "' appears twice");
    pos += ln;
    ModelRecord rec;
    const uint8_t type = d[pos], ndim = d[pos + 1];
    pos += 2;
    if ((type != ModelRecord::F64 && type != ModelRecord::I64 && type != ModelRecord::STR) || ndim > 4)
      fail("record '" + name + "' has an invalid type");
    rec.type = static_cast<ModelRecord::Type>(type);
    need(8u * ndim);
    uint64_t total = 1;
    for (int k = 0; k < ndim; ++k) {
      const uint64_t s = load_le<uint64_t>(d + pos);
      pos += 8;
      if (s > (uint64_t(1) << 40) || (s && total > (uint64_t(1) << 40) / s)) fail("record '" + name + "' too large");
      rec.shape.push_back(s);
      total *= s;
    }
    const size_t bytes_needed = rec.type == ModelRecord::STR ? total : 8 * total;
    need(bytes_needed);
    if (rec.type == ModelRecord::STR) {
      if (ndim != 1) fail("record '" + name + "': a string record needs one dimension (its byte length)");
      rec.str.assign(reinterpret_cast<const char*>(d + pos), total);
      if (!is_valid_utf8(rec.str)) fail("record '" + name + "' is not valid UTF-8 text");
    } else if (rec.type == ModelRecord::F64) {
      rec.f64.resize(total);
      for (uint64_t k = 0; k < total; ++k) {
        rec.f64[k] = load_le<double>(d + pos + 8 * k);
        if (!std::isfinite(rec.f64[k]))
          fail("record '" + name + "' entry " + std::to_string(k) + " is not finite (" +
               (std::isnan(rec.f64[k]) ? "nan" : rec.f64[k] > 0 ? "inf" : "-inf") +
               "); every number in a model file must be finite");
      }
    } else {
      rec.i64.resize(total);
      for (uint64_t k = 0; k < total; ++k) rec.i64[k] = load_le<int64_t>(d + pos + 8 * k);
    }
    pos += bytes_needed;
    mf.records_[name] = std::move(rec);
  }
  if (pos != end) fail("unexpected bytes after the last record");
  return mf;
}

const ModelRecord& ModelFile::get(const std::string& name, ModelRecord::Type t) const {
  auto it = records_.find(name);
  if (it == records_.end()) throw InvalidInput(where_ + ": missing record '" + name + "'");
  if (it->second.type != t) throw InvalidInput(where_ + ": record '" + name + "' has the wrong type");
  return it->second;
}

const std::string& ModelFile::string(const std::string& name) const { return get(name, ModelRecord::STR).str; }

const std::vector<double>& ModelFile::f64(const std::string& name, std::vector<uint64_t>* shape) const {
  const auto& r = get(name, ModelRecord::F64);
  if (shape) *shape = r.shape;
  return r.f64;
}

double ModelFile::f64_scalar(const std::string& name) const {
  const auto& r = get(name, ModelRecord::F64);
  if (r.f64.size() != 1) throw InvalidInput(where_ + ": record '" + name + "' must be a scalar");
  return r.f64[0];
}

int64_t ModelFile::i64_scalar(const std::string& name) const {
  const auto& r = get(name, ModelRecord::I64);
  if (r.i64.size() != 1) throw InvalidInput(where_ + ": record '" + name + "' must be a scalar");
  return r.i64[0];
}

const std::vector<int64_t>& ModelFile::i64(const std::string& name) const { return get(name, ModelRecord::I64).i64; }

const std::vector<double>& ModelFile::f64_vector(const std::string& name) const {
  const auto& r = get(name, ModelRecord::F64);
  if (r.shape.size() > 1) throw InvalidInput(where_ + ": record '" + name + "' must be one-dimensional");
  return r.f64;
}

const std::vector<int64_t>& ModelFile::i64_vector(const std::string& name) const {
  const auto& r = get(name, ModelRecord::I64);
  if (r.shape.size() > 1) throw InvalidInput(where_ + ": record '" + name + "' must be one-dimensional");
  return r.i64;
}

std::vector<int> ModelFile::check_header(const std::string& model_type) const {
  if (string("model_type") != model_type)
    throw InvalidInput(where_ + ": model_type is not '" + model_type + "'");
  if (string("units.energy") != "eV" || string("units.length") != "Angstrom")
    throw InvalidInput(where_ + ": units must be eV and Angstrom");
  return check_species(i64_vector("species"), "species");
}

std::vector<int> ModelFile::check_species(const std::vector<int64_t>& numbers, const std::string& record) const {
  if (numbers.empty() || numbers.size() > 118)
    throw InvalidInput(where_ + ": record '" + record + "' must list 1 to 118 elements, it has " +
                       std::to_string(numbers.size()));
  std::vector<int> species;
  for (size_t k = 0; k < numbers.size(); ++k) {
    const int64_t z = numbers[k];
    if (z < 1 || z > 118)
      throw InvalidInput(where_ + ": record '" + record + "' entry " + std::to_string(k) + " = " + std::to_string(z) +
                         " is not an atomic number (1 to 118)");
    for (size_t q = 0; q < k; ++q)
      if (numbers[q] == z)
        throw InvalidInput(where_ + ": record '" + record + "' lists atomic number " + std::to_string(z) +
                           " twice (entries " + std::to_string(q) + " and " + std::to_string(k) + ")");
    species.push_back(static_cast<int>(z));
  }
  return species;
}

namespace {
void put_u(std::string& out, uint64_t v, int n) {
  for (int k = 0; k < n; ++k) out.push_back(static_cast<char>((v >> (8 * k)) & 0xFF));
}
std::string header(const std::string& name, uint8_t type, const std::vector<uint64_t>& shape) {
  if (name.size() > 0xFFFF) throw InvalidInput("record name longer than 65535 bytes");
  if (shape.size() > 4) throw InvalidInput("record '" + name + "': at most 4 dimensions");
  std::string out;
  put_u(out, name.size(), 2);
  out += name;
  out.push_back(static_cast<char>(type));
  out.push_back(static_cast<char>(shape.size()));
  for (uint64_t s : shape) put_u(out, s, 8);
  return out;
}
uint64_t count(const std::vector<uint64_t>& shape) {
  uint64_t n = 1;
  for (uint64_t s : shape) n *= s;
  return n;
}
}  // namespace

ModelFileWriter& ModelFileWriter::f64(const std::string& name, const std::vector<uint64_t>& shape,
                                      const std::vector<double>& values) {
  if (count(shape) != values.size()) throw InvalidInput("record '" + name + "': shape does not match the values");
  std::string r = header(name, ModelRecord::F64, shape);
  for (double v : values) {
    uint64_t b;
    std::memcpy(&b, &v, 8);
    put_u(r, b, 8);
  }
  records_.push_back(std::move(r));
  return *this;
}
ModelFileWriter& ModelFileWriter::f64(const std::string& name, double value) { return f64(name, {}, {value}); }
ModelFileWriter& ModelFileWriter::i64(const std::string& name, const std::vector<uint64_t>& shape,
                                      const std::vector<int64_t>& values) {
  if (count(shape) != values.size()) throw InvalidInput("record '" + name + "': shape does not match the values");
  std::string r = header(name, ModelRecord::I64, shape);
  for (int64_t v : values) put_u(r, static_cast<uint64_t>(v), 8);
  records_.push_back(std::move(r));
  return *this;
}
ModelFileWriter& ModelFileWriter::i64(const std::string& name, int64_t value) { return i64(name, {}, {value}); }
ModelFileWriter& ModelFileWriter::string(const std::string& name, const std::string& value) {
  std::string r = header(name, ModelRecord::STR, {value.size()});
  r += value;
  records_.push_back(std::move(r));
  return *this;
}
std::string ModelFileWriter::bytes() const {
  std::string out("AFMODEL\0", 8);
  put_u(out, kModelFormatVersion, 4);
  put_u(out, records_.size(), 4);
  for (const auto& r : records_) out += r;
  put_u(out, crc32(reinterpret_cast<const unsigned char*>(out.data()), out.size()), 4);
  return out;
}

}  // namespace atomforge
