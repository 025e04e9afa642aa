// Register-buffered candidate packing against the ACSF candidate loop's compaction (issue 17, stop 52),
// without the kernel around them. One centre: 107 neighbours uniform in a sphere of r_c = 6.35 A,
// one element block, every j against the k > j; the 13 block arrays (k index, d_k, 1/r_k, fc_k,
// dfc_k, and the same six of j broadcast) flushed at 512 kept, as fact_pair_terms. Variants:
//   cur          the kernel's form: per chunk of 8 candidates a compress of the lane numbers and a
//                permute per array, stored unaligned at the running count; then the j data
//                broadcast over the kept range
//   buf-branch   the last count % 8 entries of every array in registers (the kept lanes rotated by
//                the buffer's fill, one permute and one blend per array); 13 aligned stores only
//                when 8 are full (a branch)
//   buf-always   the same, storing every chunk unconditionally (branch-free)
//   buf-masked   the same, stores masked by "8 full" (branch-free; an all-zero mask otherwise)
// Prints microseconds per centre and checks that the buffered arrays equal cur's.
// bench_ab.md (stop 52): buf-branch ran 1.35-1.48x faster than cur here, but 0.956x in the kernel.
//
// Build (AVX-512 only):  g++ -O3 -march=native -std=c++17 benchmarks/candidate_packing.cpp -o candidate_packing
// Run:                   ./candidate_packing
#include <immintrin.h>
#include <cstdio>
#include <cstdint>
#include <cstring>
#include <random>
#include <chrono>
#include <vector>
constexpr int N = 112;   // neighbours (padded)
constexpr int L = 904;
alignas(64) double DX[N+16], DY[N+16], DZ[N+16], IR[N+16], FC[N+16], DFC[N+16];
alignas(64) double arr[13][L+64];
alignas(64) int64_t tkv[L+64];
double rc = 6.35, rc2 = rc*rc;
int n = 107;
volatile double sink; int64_t g_last;

// The chunk of 8 candidates k = b .. b + 7 (< kend) against j at (vx, vy, vz): their d_k (x, y, z),
// the lanes in range (tail) and the mask of those with r_jk^2 < t, as simd::compact_within forms it.
static inline __mmask8 chunk_within(int64_t b, int64_t kend, __m512d vx, __m512d vy, __m512d vz, __m512d t,
                                    __m512d& x, __m512d& y, __m512d& z, __mmask8& tail) {
  const int64_t left = kend - b;
  tail = left >= 8 ? 0xff : (1u << left) - 1u;
  x = _mm512_maskz_loadu_pd(tail, DX + b);
  y = _mm512_maskz_loadu_pd(tail, DY + b);
  z = _mm512_maskz_loadu_pd(tail, DZ + b);
  const __m512d ex = _mm512_sub_pd(x, vx), ey = _mm512_sub_pd(y, vy), ez = _mm512_sub_pd(z, vz);
  const __m512d r2 = _mm512_add_pd(_mm512_add_pd(_mm512_mul_pd(ex, ex), _mm512_mul_pd(ey, ey)), _mm512_mul_pd(ez, ez));
  return _mm512_mask_cmp_pd_mask(tail, r2, t, _CMP_LT_OQ);
}

// current scheme
__attribute__((noinline)) int64_t cur() {
  int64_t cnt = 0, tot = 0;
  double *kx=arr[0],*ky=arr[1],*kz=arr[2],*kir=arr[3],*kfc=arr[4],*kdfc=arr[5];
  double *jx=arr[6],*jy=arr[7],*jz=arr[8],*jir=arr[9],*jfc=arr[10],*jdfc=arr[11];
  int64_t* tk = tkv;
  const __m512d t = _mm512_set1_pd(rc2);
  const __m512i iota = _mm512_set_epi64(7,6,5,4,3,2,1,0);
  const __m512i eight = _mm512_set1_epi64(8);
  for (int j = 0; j < n; ++j) {
    const __m512d vx = _mm512_set1_pd(DX[j]), vy = _mm512_set1_pd(DY[j]), vz = _mm512_set1_pd(DZ[j]);
    int64_t kbeg = j+1, kend = n; int64_t c = 0;
    __m512i k = _mm512_set1_epi64(kbeg);
    for (int64_t b = kbeg; b < kend; b += 8) {
      __m512d x, y, z;
      __mmask8 tail;
      const __mmask8 m = chunk_within(b, kend, vx, vy, vz, t, x, y, z, tail);
      __m512i p = _mm512_maskz_compress_epi64(m, iota);
      __asm__("" : "+v"(p));
      int64_t o = cnt + c;
      _mm512_storeu_si512((void*)(tk + o), _mm512_add_epi64(p, k));
      _mm512_storeu_pd(kx + o, _mm512_permutexvar_pd(p, x));
      _mm512_storeu_pd(ky + o, _mm512_permutexvar_pd(p, y));
      _mm512_storeu_pd(kz + o, _mm512_permutexvar_pd(p, z));
      _mm512_storeu_pd(kir + o, _mm512_permutexvar_pd(p, _mm512_maskz_loadu_pd(tail, IR + b)));
      _mm512_storeu_pd(kfc + o, _mm512_permutexvar_pd(p, _mm512_maskz_loadu_pd(tail, FC + b)));
      _mm512_storeu_pd(kdfc + o, _mm512_permutexvar_pd(p, _mm512_maskz_loadu_pd(tail, DFC + b)));
      c += _mm_popcnt_u32(m);
      k = _mm512_add_epi64(k, eight);
    }
    if (!c) continue;
    double djx=DX[j],djy=DY[j],djz=DZ[j],irj=IR[j],fcj=FC[j],dfcj=DFC[j];
    for (int64_t q0 = cnt; q0 < cnt + c; q0 += 8) {
      for (int l = 0; l < 8; ++l) { int64_t q=q0+l; jx[q]=djx; jy[q]=djy; jz[q]=djz; jir[q]=irj; jfc[q]=fcj; jdfc[q]=dfcj; }
    }
    cnt += c;
    if (cnt >= 512) { tot += cnt; sink = kx[3] + jx[5]; cnt = 0; }
  }
  g_last = cnt; return tot + cnt;
}


// kMode: 0 branch, 1 store always, 2 masked stores
template <int kMode>
__attribute__((noinline)) int64_t buf() {
  int64_t base = 0, tot = 0; int nb = 0;
  const __m512d t = _mm512_set1_pd(rc2);
  const __m512i iota = _mm512_set_epi64(7,6,5,4,3,2,1,0);
  __m512d b0=_mm512_setzero_pd(),b1=b0,b2=b0,b3=b0,b4=b0,b5=b0,b6=b0,b7=b0,b8=b0,b9=b0,b10=b0,b11=b0;
  __m512i bk = _mm512_setzero_si512();
  for (int j = 0; j < n; ++j) {
    const __m512d vx = _mm512_set1_pd(DX[j]), vy = _mm512_set1_pd(DY[j]), vz = _mm512_set1_pd(DZ[j]);
    const __m512d vir = _mm512_set1_pd(IR[j]), vfc = _mm512_set1_pd(FC[j]), vdfc = _mm512_set1_pd(DFC[j]);
    int64_t kbeg = j+1, kend = n;
    for (int64_t b = kbeg; b < kend; b += 8) {
      __m512d x, y, z;
      __mmask8 tail;
      const __mmask8 m = chunk_within(b, kend, vx, vy, vz, t, x, y, z, tail);
      const int kept = _mm_popcnt_u32(m);
      __m512i p = _mm512_maskz_compress_epi64(m, iota);
      const __m512i pr = _mm512_permutexvar_epi64(_mm512_sub_epi64(iota, _mm512_set1_epi64(nb)), p);
      const __mmask8 hiL = (__mmask8)(0xffu << nb);
      const int tot2 = nb + kept;
      const bool full = tot2 >= 8;
      const __mmask8 fm = full ? 0xff : 0;
#define STORE(p, v) { if (kMode == 1) _mm512_store_pd(p, v); else _mm512_mask_store_pd(p, fm, v); }
#define STEP(B, S, arrp) { const __m512d r = _mm512_permutexvar_pd(pr, S); const __m512d lo = _mm512_mask_blend_pd(hiL, B, r); \
        if (kMode == 0) { if (full) { _mm512_store_pd(arrp + base, lo); B = r; } else B = lo; } else { STORE(arrp + base, lo); B = _mm512_mask_blend_pd(fm, lo, r); } }
#define STEPJ(B, V, arrp) { const __m512d lo = _mm512_mask_blend_pd(hiL, B, V); \
        if (kMode == 0) { if (full) { _mm512_store_pd(arrp + base, lo); B = V; } else B = lo; } else { STORE(arrp + base, lo); B = _mm512_mask_blend_pd(fm, lo, V); } }
      STEP(b0, x, arr[0]) STEP(b1, y, arr[1]) STEP(b2, z, arr[2]) STEP(b3, _mm512_maskz_loadu_pd(tail, IR + b), arr[3]) STEP(b4, _mm512_maskz_loadu_pd(tail, FC + b), arr[4]) STEP(b5, _mm512_maskz_loadu_pd(tail, DFC + b), arr[5])
      STEPJ(b6, vx, arr[6]) STEPJ(b7, vy, arr[7]) STEPJ(b8, vz, arr[8]) STEPJ(b9, vir, arr[9]) STEPJ(b10, vfc, arr[10]) STEPJ(b11, vdfc, arr[11])
      { const __m512i r = _mm512_add_epi64(pr, _mm512_set1_epi64(b)); const __m512i lo = _mm512_mask_blend_epi64(hiL, bk, r);
        if (kMode == 0) { if (full) { _mm512_store_si512(tkv + base, lo); bk = r; } else bk = lo; }
        else { if (kMode == 1) _mm512_store_si512(tkv + base, lo); else _mm512_mask_store_epi64(tkv + base, fm, lo); bk = _mm512_mask_blend_epi64(fm, lo, r); } }
      base += full ? 8 : 0;
      nb = full ? tot2 - 8 : tot2;
    }
    if (base + nb >= 512) { tot += base + nb; sink = arr[0][3] + arr[6][5]; base = 0; nb = 0; }
  }
  _mm512_store_pd(arr[0] + base, b0); _mm512_store_pd(arr[6] + base, b6); _mm512_store_si512(tkv + base, bk);
  g_last = base + nb; return tot + base + nb;
}

int main() {
  std::mt19937_64 g(1); std::uniform_real_distribution<double> u(-1, 1);
  for (int i = 0; i < n;) { double x=u(g),y=u(g),z=u(g); if (x*x+y*y+z*z>1) continue; DX[i]=x*rc;DY[i]=y*rc;DZ[i]=z*rc;IR[i]=1;FC[i]=0.5;DFC[i]=0.1; ++i; }
  for (int rep = 0; rep < 3; ++rep) {
    auto bench = [&](const char* name, auto f) {
      int64_t r = 0; auto t0 = std::chrono::steady_clock::now(); int it = 20000;
      for (int i = 0; i < it; ++i) r += f();
      double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      printf("%s: %.3f us per centre (%ld kept)\n", name, s / it * 1e6, (long)(r / it));
    };
    bench("cur", cur); bench("buf-branch", buf<0>); bench("buf-always", buf<1>); bench("buf-masked", buf<2>);
  }
  // correctness check: compare arrays from cur and buf
  cur(); std::vector<double> a(arr[0], arr[0]+512); std::vector<double> aj(arr[6], arr[6]+512); std::vector<int64_t> at(tkv, tkv+512);
  int64_t last2 = buf<0>(); printf("tot %ld\n", (long)last2); int bad = 0; printf("last %ld\n", (long)g_last); for (int i = 0; i < g_last; ++i) bad += a[i]!=arr[0][i] || aj[i]!=arr[6][i] || at[i]!=tkv[i];
  printf("mismatch %d\n", bad);
}
