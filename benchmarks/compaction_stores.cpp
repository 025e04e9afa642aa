// Cost of the ACSF candidate loop's stores on this CPU (issue 17), without the kernel around them:
// for every 8 candidates, a compare gives a mask, and nine arrays are compacted into block arrays
// at a running count (as simd::compact_within does). Variants:
//   compress+storeu   a register compress per array, then an unaligned 64-byte store (stop 45)
//   permute+storeu    one compress of the lane numbers, then a one-uop permute per array (stop 46)
//   storeu only       the unaligned stores alone (no compaction: a floor for the two above)
//   aligned store     a compress per array, stored at aligned addresses (what buffering could reach)
//   compress to mem   the memory form of compress (microcoded on Zen 4; never used by the kernel)
//   store, aligned    the stores alone at the chunk boundary below the running count (every store
//                     one cache line; against "storeu only": the cost of spanning two lines)
// Sources of 128 doubles per array (L1-resident, as the neighbour arrays of one element); the running count wraps
// at `wrap` (block arrays of about kBlock). Prints cycles per 8 candidates at the given clock.
//
// Build (AVX-512 only):  g++ -O2 -march=native benchmarks/compaction_stores.cpp -o compaction_stores
// Run:                   ./compaction_stores [GHz=3.6]
#include <immintrin.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>

#if !defined(__AVX512F__)
int main() {
  std::puts("compaction_stores: needs an AVX-512 build (-march=native on an AVX-512 CPU)");
  return 0;
}
#else
namespace {
constexpr int kArr = 9, kSrc = 128;
alignas(64) double src[kArr][kSrc];
alignas(64) double dst[kArr][1024 + 8];

template <int Mode>
double run(int wrap, double ghz) {
  double best = 1e30;
  for (int rep = 0; rep < 5; ++rep) {
    const auto t0 = std::chrono::steady_clock::now();
    long n = 0, cnt = 0;
    for (int it = 0; it < 1000; ++it) {
      for (int c = 0; c < 4096; c += 8) {
        const int o = c & (kSrc - 1);
        const __m512d x = _mm512_load_pd(src[0] + o);
        const __mmask8 m = _mm512_cmp_pd_mask(x, _mm512_set1_pd(0.47), _CMP_LT_OQ);
        __m512i p = _mm512_maskz_compress_epi64(m, _mm512_set_epi64(7, 6, 5, 4, 3, 2, 1, 0));
        __asm__("" : "+v"(p));  // GCC would fold the permutes back into compresses
#pragma GCC unroll 9
        for (int a = 0; a < kArr; ++a) {
          const __m512d v = _mm512_load_pd(src[a] + o);
          if constexpr (Mode == 0) _mm512_storeu_pd(dst[a] + cnt, _mm512_maskz_compress_pd(m, v));
          if constexpr (Mode == 1) _mm512_storeu_pd(dst[a] + cnt, _mm512_maskz_permutexvar_pd(0xff, p, v));
          if constexpr (Mode == 2) _mm512_storeu_pd(dst[a] + cnt, v);
          if constexpr (Mode == 3) _mm512_store_pd(dst[a] + (c & 255), _mm512_maskz_compress_pd(m, v));
          if constexpr (Mode == 4) _mm512_mask_compressstoreu_pd(dst[a] + cnt, m, v);
          if constexpr (Mode == 5) _mm512_store_pd(dst[a] + (cnt & ~7L), v);
        }
        cnt += _mm_popcnt_u32(m);
        if (cnt > wrap) cnt = 0;
        n += 8;
      }
    }
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const double cyc = s / n * 8 * ghz * 1e9;
    if (cyc < best) best = cyc;
  }
  return best;
}
}  // namespace

int main(int argc, char** argv) {
  const double ghz = argc > 1 ? std::atof(argv[1]) : 3.6;
  srand(1);
  for (int a = 0; a < kArr; ++a)
    for (int i = 0; i < kSrc; ++i) src[a][i] = rand() / static_cast<double>(RAND_MAX);  // about 47 % kept
  std::printf("| variant | cycles per 8 candidates (9 arrays, best of 5, at %.1f GHz) |\n|---|---:|\n", ghz);
  std::printf("| compress+storeu | %.1f |\n", run<0>(256, ghz));
  std::printf("| permute+storeu | %.1f |\n", run<1>(256, ghz));
  std::printf("| storeu only | %.1f |\n", run<2>(256, ghz));
  std::printf("| aligned store | %.1f |\n", run<3>(256, ghz));
  std::printf("| compress to mem | %.1f |\n", run<4>(256, ghz));
  std::printf("| store, aligned | %.1f |\n", run<5>(256, ghz));
  return 0;
}
#endif
