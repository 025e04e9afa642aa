// atomforge core: reader of the versioned model file (specification: docs/model_file.md).
// A container of named float64 / int64 / string records with a CRC-32 trailer; no third-party
// parser is needed. Readers reject newer format versions and truncated or corrupted files.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace atomforge {

constexpr uint32_t kModelFormatVersion = 1;

struct ModelRecord {
  enum Type : uint8_t { F64 = 1, I64 = 2, STR = 3 };
  Type type = F64;
  std::vector<uint64_t> shape;
  std::vector<double> f64;
  std::vector<int64_t> i64;
  std::string str;
  size_t size() const;
};

class ModelFile {
 public:
  /// Parse bytes (e.g. embedded in an OpenMM System). `where` names the source in messages.
  /// Throws InvalidInput for bad magic, newer version, checksum mismatch, truncation, and for
  /// records that no model can use: a name that is not valid UTF-8 or appears twice, a string
  /// that is not valid UTF-8, a float64 entry that is NaN or infinite (every number of a model
  /// file must be finite). Every size is checked against the bytes present before anything is
  /// allocated (docs/model_file.md).
  static ModelFile from_bytes(const std::string& bytes, const std::string& where = "<bytes>");
  /// Read and parse a file. Throws InvalidInput (also when the file cannot be opened).
  static ModelFile from_file(const std::string& path);

  uint32_t version() const { return version_; }
  const std::string& where() const { return where_; }
  bool has(const std::string& name) const { return records_.count(name) != 0; }
  /// Typed accessors; throw InvalidInput naming the record when missing or of the wrong type
  /// or shape.
  const std::string& string(const std::string& name) const;
  const std::vector<double>& f64(const std::string& name, std::vector<uint64_t>* shape = nullptr) const;
  double f64_scalar(const std::string& name) const;
  int64_t i64_scalar(const std::string& name) const;
  const std::vector<int64_t>& i64(const std::string& name) const;
  /// One-dimensional records (rank 0 or 1): lists such as species, biases, scalings. Throw
  /// InvalidInput naming the record when it has more dimensions.
  const std::vector<double>& f64_vector(const std::string& name) const;
  const std::vector<int64_t>& i64_vector(const std::string& name) const;
  const std::map<std::string, ModelRecord>& records() const { return records_; }
  /// The records every model starts with: checks model_type == `model_type` and units eV /
  /// Angstrom, returns `species` (check_species). Throws InvalidInput naming the file.
  std::vector<int> check_header(const std::string& model_type) const;
  /// A list of elements: 1 to 118 distinct atomic numbers, each 1..118. Throws InvalidInput
  /// naming the file, the record and the entry.
  std::vector<int> check_species(const std::vector<int64_t>& numbers, const std::string& record) const;

 private:
  const ModelRecord& get(const std::string& name, ModelRecord::Type t) const;
  uint32_t version_ = 0;
  std::string where_;
  std::map<std::string, ModelRecord> records_;
};

/// Builds the bytes of a model file (the inverse of ModelFile::from_bytes), for C++ users and
/// tests; Python writes the same format (atomforge.model_file.encode_records).
class ModelFileWriter {
 public:
  ModelFileWriter& f64(const std::string& name, const std::vector<uint64_t>& shape, const std::vector<double>& values);
  ModelFileWriter& f64(const std::string& name, double value);  // scalar (ndim 0)
  ModelFileWriter& i64(const std::string& name, const std::vector<uint64_t>& shape, const std::vector<int64_t>& values);
  ModelFileWriter& i64(const std::string& name, int64_t value);  // scalar (ndim 0)
  ModelFileWriter& string(const std::string& name, const std::string& value);
  /// The complete file: magic, version, records in insertion order, CRC-32.
  std::string bytes() const;

 private:
  std::vector<std::string> records_;
};

/// CRC-32 (IEEE 802.3, as zlib.crc32) of a byte range.
uint32_t crc32(const unsigned char* data, size_t n);

}  // namespace atomforge
