#include "atomforge/errors.hpp"

#include <sstream>

namespace atomforge {

namespace {
std::string length(double v, const std::string& unit, double unit_in_angstrom) {
  std::ostringstream s;
  s.precision(3);
  s << v / unit_in_angstrom << " " << unit;
  return s.str();
}
}  // namespace

AtomsTooClose::AtomsTooClose(int64_t i, int64_t j, double distance, double min_distance,
                             const std::array<int32_t, 3>& shift)
    : InvalidInput(message("atoms", std::to_string(i), std::to_string(j), distance, min_distance, shift, "A", 1.0,
                           "")),
      i_(i), j_(j), distance_(distance), min_distance_(min_distance), shift_(shift) {}

std::string AtomsTooClose::describe(const std::string& noun, const std::string& label_i, const std::string& label_j,
                                    const std::string& unit, double unit_in_angstrom, const std::string& hint) const {
  return message(noun, label_i, label_j, distance_, min_distance_, shift_, unit, unit_in_angstrom, hint);
}

std::string AtomsTooClose::message(const std::string& noun, const std::string& label_i, const std::string& label_j,
                                   double distance, double min_distance, const std::array<int32_t, 3>& shift,
                                   const std::string& unit, double unit_in_angstrom, const std::string& hint) {
  std::ostringstream s;
  s << noun << " " << label_i << " and " << label_j;
  if (shift[0] != 0 || shift[1] != 0 || shift[2] != 0)
    s << " (the periodic image of " << label_j << " shifted by (" << shift[0] << ", " << shift[1] << ", " << shift[2]
      << ") lattice vectors)";
  if (distance == 0.0)
    s << " are at the same position";
  else
    s << " are " << length(distance, unit, unit_in_angstrom) << " apart";
  s << " (minimum distance " << length(min_distance, unit, unit_in_angstrom)
    << "): two atoms on top of each other, or an atom on a periodic image of another; check the positions and "
       "the cell ("
    << (hint.empty() ? "the threshold is the min_distance setting" : hint) << ")";
  return s.str();
}

bool is_valid_utf8(const std::string& s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const size_t n = s.size();
  size_t k = 0;
  while (k < n) {
    const unsigned c = p[k];
    if (c < 0x80) {
      ++k;
      continue;
    }
    int len = 0;
    unsigned cp = 0, min = 0;
    if ((c & 0xE0) == 0xC0) len = 2, cp = c & 0x1F, min = 0x80;
    else if ((c & 0xF0) == 0xE0) len = 3, cp = c & 0x0F, min = 0x800;
    else if ((c & 0xF8) == 0xF0) len = 4, cp = c & 0x07, min = 0x10000;
    else return false;
    if (k + len > n) return false;
    for (int t = 1; t < len; ++t) {
      if ((p[k + t] & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (p[k + t] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    k += len;
  }
  return true;
}

std::string printable_utf8(const std::string& s) {
  if (is_valid_utf8(s)) return s;
  std::string out;
  for (size_t k = 0; k < s.size(); ++k) {
    // keep valid single code points, replace every other byte
    size_t len = 1;
    const unsigned c = static_cast<unsigned char>(s[k]);
    if (c >= 0x80) len = (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 0;
    if (len >= 1 && k + len <= s.size() && is_valid_utf8(s.substr(k, len))) {
      out += s.substr(k, len);
      k += len - 1;
    } else {
      out += '?';
    }
  }
  return out;
}

}  // namespace atomforge
