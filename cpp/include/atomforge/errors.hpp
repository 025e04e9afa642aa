// atomforge core: error types. The core never calls exit()/abort(): every problem with the
// input is reported by throwing one of these, with a message naming the offending item
// (atom index, key, element), so that Python and MD-engine adapters can show it to the user.
#pragma once
#include <array>
#include <cstdint>
#include <stdexcept>
#include <string>

namespace atomforge {

/// Bad argument: wrong size, non-finite value, unknown element, degenerate cell, ...
class InvalidInput : public std::invalid_argument {
 public:
  explicit InvalidInput(const std::string& what) : std::invalid_argument(what) {}
};

/// Two atoms closer than the minimum distance (neighbor_list.hpp, kDefaultMinDistance): atoms on
/// top of each other, or an atom on a periodic image of another. Carries both atoms and the
/// distance so that adapters can name the atoms in their own terms (LAMMPS atom IDs, OpenMM
/// particle indices) with describe().
///
/// i, j: for lists built by the core (build_neighbor_list), the input atom indices (j is the
/// atom whose periodic image, shifted by `shift` lattice vectors, is too close to i); for
/// neighbour views built elsewhere (validate_neighbor_view, e.g. LAMMPS local + ghost atoms),
/// position indices into the view, with shift (0, 0, 0).
class AtomsTooClose : public InvalidInput {
 public:
  AtomsTooClose(int64_t i, int64_t j, double distance, double min_distance,
                const std::array<int32_t, 3>& shift = {0, 0, 0});
  int64_t i() const { return i_; }
  int64_t j() const { return j_; }
  double distance() const { return distance_; }          // Angstrom
  double min_distance() const { return min_distance_; }  // Angstrom
  const std::array<int32_t, 3>& shift() const { return shift_; }
  bool is_image() const { return shift_[0] != 0 || shift_[1] != 0 || shift_[2] != 0; }
  /// The message with the atoms named the caller's way: describe("atoms with IDs", "8", "4"),
  /// describe("particles", "10", "14", "nm", 10.0) (lengths in a unit of `unit_in_angstrom` A);
  /// `hint` says how to change the threshold (default: "the threshold is the min_distance setting").
  std::string describe(const std::string& noun, const std::string& label_i, const std::string& label_j,
                       const std::string& unit = "A", double unit_in_angstrom = 1.0,
                       const std::string& hint = "") const;

 private:
  static std::string message(const std::string& noun, const std::string& label_i, const std::string& label_j,
                             double distance, double min_distance, const std::array<int32_t, 3>& shift,
                             const std::string& unit, double unit_in_angstrom, const std::string& hint);
  int64_t i_, j_;
  double distance_, min_distance_;
  std::array<int32_t, 3> shift_;
};

/// `s` with every byte sequence that is not valid UTF-8 replaced by '?', for messages that quote
/// names read from files (Python turns messages into str and must be able to decode them).
std::string printable_utf8(const std::string& s);
/// True when `s` is valid UTF-8 (no overlong forms, no surrogates, code points <= U+10FFFF).
bool is_valid_utf8(const std::string& s);

}  // namespace atomforge
