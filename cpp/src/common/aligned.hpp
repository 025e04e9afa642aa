// A std::allocator with 64-byte (cache-line) alignment, for host scratch buffers whose block
// arrays are read and written a register (8 doubles, 64 bytes with AVX-512) at a time: malloc
// (std::vector's default) only guarantees 16 bytes, so such accesses then usually span two cache
// lines, and a 64-byte store that spans two lines costs about 1.4x an aligned one on the Zen 4
// EPYC of issue 17 (benchmarks/results/bench_ab.md, stop 50).
#pragma once
#include <cstddef>
#include <new>
#include <vector>

namespace atomforge {

template <class T>
struct CacheAlignedAllocator {
  using value_type = T;
  static constexpr std::size_t kAlign = 64;
  CacheAlignedAllocator() noexcept = default;
  template <class U>
  CacheAlignedAllocator(const CacheAlignedAllocator<U>&) noexcept {}
  T* allocate(std::size_t n) { return static_cast<T*>(::operator new(n * sizeof(T), std::align_val_t{kAlign})); }
  void deallocate(T* p, std::size_t) noexcept { ::operator delete(p, std::align_val_t{kAlign}); }
  template <class U>
  bool operator==(const CacheAlignedAllocator<U>&) const noexcept { return true; }
  template <class U>
  bool operator!=(const CacheAlignedAllocator<U>&) const noexcept { return false; }
};

/// std::vector whose data() is 64-byte aligned.
template <class T>
using AlignedVector = std::vector<T, CacheAlignedAllocator<T>>;

}  // namespace atomforge
