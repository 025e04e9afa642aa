// atomforge core: error types. The core never calls exit()/abort(): every problem with the
// input is reported by throwing one of these, with a message naming the offending item
// (atom index, key, element), so that Python and MD-engine adapters can show it to the user.
#pragma once
#include <stdexcept>
#include <string>

namespace atomforge {

/// Bad argument: wrong size, non-finite value, unknown element, degenerate cell, ...
class InvalidInput : public std::invalid_argument {
 public:
  explicit InvalidInput(const std::string& what) : std::invalid_argument(what) {}
};

}  // namespace atomforge
