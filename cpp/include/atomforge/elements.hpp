// Chemical element symbols <-> atomic numbers (1..118).
#pragma once
#include <string>

namespace atomforge {
/// Atomic number of a symbol ("O" -> 8); throws InvalidInput for an unknown symbol.
int atomic_number(const std::string& symbol);
/// Symbol of an atomic number (8 -> "O"); throws InvalidInput outside 1..118.
std::string element_symbol(int z);
}  // namespace atomforge
