// Experiment for issue 17 (not part of the library): G4 symmetry functions evaluated once per
// *triangle* instead of once per (centre, neighbour pair).
//
// The per-centre kernel (cpp/src/descriptors/acsf) visits every triangle {i, j, k} whose three
// sides are shorter than r_c three times, once from each vertex, and each time forms the same
// r_jk, fc(r_jk), exp(-eta (r_ij^2 + r_ik^2 + r_jk^2)) and cutoff product. For G4 functions with
// r_s = 0 those factors are symmetric in the three vertices; only (1 + lambda cos theta_v)^zeta
// differs. This program measures what a pass that forms them once per triangle would run at:
//
//   values pass   each triangle once, from its vertex of lowest index when that vertex is a
//                 centre (centres are the atoms 0..n_centres-1, ghosts come after, so every
//                 (centre, triangle) pair is counted exactly once, also across periodic images);
//                 the G4 terms of all three vertices from one geometry and one exponential;
//   VJP pass      with dE/dG of every centre (the network would run in between), each triangle
//                 once again: dE/dS, dE/dFC and dE/dcos_v of the three vertices, then one gradient
//                 on d_ij and d_ik, forces scattered to the three atoms.
//
// Both passes recompute the geometry (no record). Radial G2 terms per centre as usual. It reads
// the inputs bench_triangles.py writes (a neighbour list, the functions in Angstrom, dE/dG), writes
// G, forces and virial for the comparison with atomforge, and prints its time per atom-step.
//
// Build (bench_triangles.py does this; AVX-512 only): g++ -O3 -march=native -std=c++17 -fopenmp-simd
//   -fno-math-errno -fno-trapping-math -Icpp/src -Icpp/include benchmarks/triangle_prototype.cpp
//   cpp/src/common/cutoff.cpp
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "common/cutoff.hpp"
#include "common/simd_math.hpp"

#if !defined(AF_AVX512_COMPRESS)
#error "triangle_prototype needs AVX-512 (simd::v8d, compact_within's compress form)"
#endif

namespace {
namespace simd = atomforge::simd;
using simd::v8d;
using simd::vload;
using simd::vstore;

constexpr int kL = 8;  // lanes per chunk
constexpr int kMaxF = 16;  // functions per vertex role, distinct powers per element triple
constexpr int kMaxFeatures = 32;  // features per element (values' lane accumulators)
constexpr int64_t kBlock = 256;  // triangles per block

struct Vertex {  // the G4 functions of one vertex role of an element triple
  int n = 0;
  int feat[kMaxF];
  double lam[kMaxF], pref[kMaxF];
  int zeta[kMaxF], pidx[kMaxF];
};
struct Plan {  // ordered element triple (e_a, e_j, e_k)
  double base = 0;
  int npow = 0, pw[kMaxF];
  Vertex v[3];  // a (pair e_j, e_k), j (pair e_a, e_k), k (pair e_a, e_j)
};
struct Radial { int elem, feat, nbr; double eta, rs; };

template <class T>
std::vector<T> load(const std::string& path) {
  std::ifstream f(path, std::ios::binary | std::ios::ate);
  if (!f) throw std::runtime_error("cannot read " + path);
  const auto n = f.tellg();
  std::vector<T> v(static_cast<size_t>(n) / sizeof(T));
  f.seekg(0);
  f.read(reinterpret_cast<char*>(v.data()), n);
  return v;
}

struct Problem {
  int ne = 0, nf = 0;
  double rc = 0;
  atomforge::CutoffType cutoff = atomforge::CutoffType::TanhU;
  int64_t nt = 0, nc = 0;
  std::vector<double> pos, w;
  std::vector<int32_t> spec;
  std::vector<int64_t> off, nbr, owner;
  std::vector<Radial> radial;
  std::vector<Plan> plans;  // (ne^3)
};

// Per-centre scratch: all neighbours within r_c (radial terms), and the "upper" ones (index >
// centre) sorted into blocks by (element, ghost) for the triangles.
struct Scratch {
  std::vector<double> dx, dy, dz, r, fc, dfc, gx, gy, gz;  // all neighbours (slot s)
  std::vector<int64_t> idx;
  std::vector<int32_t> el;
  std::vector<double> ux, uy, uz, ur, uir, ufc, udfc, uslot;  // upper, blocked
  std::vector<int64_t> ubegin;                           // (2 ne + 1) block starts
  std::vector<double> nacc;                              // (nf, n) values of neighbour vertices
  std::vector<int64_t> cand;
  // a block of triangles (a, j, k) of one element pair: k side written by compact_within, j side
  // filled after it; processed in chunks of kL once it holds kBlock
  std::vector<double> cx, cy, cz, cr, cir, cfc, cdfc, cslot, cr2, tjx, tjy, tjz, tjr, tjir, tjfc, tjdfc, tjslot;
  std::vector<double> wn;  // (nf, n) dE/dG rows of the neighbours (VJP)
  // runs of equal j in the block (end, j's slot), and the j vertex's per-triangle terms, summed
  // per run after the block (a scatter per lane would chain through one address)
  std::vector<int64_t> run_end, run_slot;
  int64_t nrun = 0;
  std::vector<double> tv;  // (kMaxF or 3, kBlock + cap)
  int64_t cap = 0;
  void size(int64_t cap_, int nf) {
    cap = cap_ + 16;
    for (auto* v : {&dx, &dy, &dz, &r, &fc, &dfc, &gx, &gy, &gz, &ux, &uy, &uz, &ur, &uir, &ufc, &udfc, &uslot})
      v->assign(cap, 0.0);
    for (auto* v : {&cx, &cy, &cz, &cr, &cir, &cfc, &cdfc, &cslot, &cr2, &tjx, &tjy, &tjz, &tjr, &tjir, &tjfc, &tjdfc,
                    &tjslot})
      v->assign(kBlock + cap, 0.0);
    idx.assign(cap, 0);
    el.assign(cap, 0);
    cand.assign(kBlock + cap, 0);
    nacc.assign(static_cast<size_t>(nf) * cap, 0.0);
    wn.assign(static_cast<size_t>(nf) * cap, 0.0);
    run_end.assign(kBlock + cap, 0);
    run_slot.assign(kBlock + cap, 0);
    tv.assign(static_cast<size_t>(kMaxF) * (kBlock + cap), 0.0);
  }
  int64_t bl() const { return kBlock + cap; }
};

int64_t gather(const Problem& P, int64_t a, Scratch& s, int64_t& nup) {
  const double* x = P.pos.data();
  const double rc2 = P.rc * P.rc;
  int64_t n = 0;
  for (int64_t m = P.off[a]; m < P.off[a + 1]; ++m) {
    const int64_t b = P.nbr[m];
    const double ex = x[3 * b] - x[3 * a], ey = x[3 * b + 1] - x[3 * a + 1], ez = x[3 * b + 2] - x[3 * a + 2];
    const double r2 = ex * ex + ey * ey + ez * ez;
    if (!(r2 < rc2)) continue;
    s.dx[n] = ex; s.dy[n] = ey; s.dz[n] = ez; s.r[n] = std::sqrt(r2); s.idx[n] = b; s.el[n] = P.spec[b];
    ++n;
  }
  atomforge::detail::cutoff_fdf_lanes(P.cutoff, n, s.r.data(), P.rc, s.fc.data(), s.dfc.data());
  // upper neighbours by block (element, ghost): counting sort
  const int nb = 2 * P.ne;
  int64_t cnt[64] = {0};
  for (int64_t m = 0; m < n; ++m)
    if (s.idx[m] > a) ++cnt[2 * s.el[m] + (s.idx[m] >= P.nc)];
  s.ubegin.assign(nb + 1, 0);
  for (int b = 0; b < nb; ++b) s.ubegin[b + 1] = s.ubegin[b] + cnt[b];
  int64_t fill[64];
  for (int b = 0; b < nb; ++b) fill[b] = s.ubegin[b];
  for (int64_t m = 0; m < n; ++m) {
    if (s.idx[m] <= a) continue;
    const int64_t u = fill[2 * s.el[m] + (s.idx[m] >= P.nc)]++;
    s.ux[u] = s.dx[m]; s.uy[u] = s.dy[m]; s.uz[u] = s.dz[m]; s.ur[u] = s.r[m];
    s.ufc[u] = s.fc[m]; s.udfc[u] = s.dfc[m]; s.uslot[u] = static_cast<double>(m); s.uir[u] = 1.0 / s.r[m];
  }
  nup = s.ubegin[nb];
  for (int64_t u = nup; u < nup + 8; ++u) { s.ux[u] = s.uy[u] = s.uz[u] = 1e3; s.ur[u] = 1e3; }
  return n;
}

void radial_values(const Problem& P, int32_t e, int64_t n, const Scratch& s, double* G) {
  for (const Radial& rd : P.radial) {
    if (rd.elem != e) continue;
    double acc = 0.0;
#pragma omp simd reduction(+ : acc)
    for (int64_t m = 0; m < n; ++m) {
      const double x = s.r[m] - rd.rs;
      const double v = simd::exp(-rd.eta * x * x) * s.fc[m];
      acc += s.el[m] == rd.nbr ? v : 0.0;
    }
    G[rd.feat] += acc;
  }
}

void radial_vjp(const Problem& P, int32_t e, int64_t n, Scratch& s, const double* w) {
  for (const Radial& rd : P.radial) {
    if (rd.elem != e) continue;
    const double wf = w[rd.feat];
#pragma omp simd
    for (int64_t m = 0; m < n; ++m) {
      const double x = s.r[m] - rd.rs;
      const double ex = simd::exp(-rd.eta * x * x);
      const double dv = ex * (s.dfc[m] - 2.0 * rd.eta * x * s.fc[m]);
      const double c = s.el[m] == rd.nbr ? wf * dv / s.r[m] : 0.0;
      s.gx[m] += c * s.dx[m];
      s.gy[m] += c * s.dy[m];
      s.gz[m] += c * s.dz[m];
    }
  }
}

// Geometry of one chunk of kL triangles of a block (lanes past `len`: inert, FC = 0).
struct Geo {
  alignas(64) double jx[kL], jy[kL], jz[kL], kx[kL], ky[kL], kz[kL], rj[kL], rk[kL], irj[kL], irk[kL], rjk[kL],
      irjk[kL], fcj[kL], dfcj[kL], fck[kL], dfck[kL], fcjk[kL], dfcjk[kL], E[kL], FC[kL], ca[kL], cj[kL], ck[kL];
  int64_t js[kL], ks[kL];
};

AF_LANE_INLINE void geometry(const Problem& P, const Scratch& s, double base, int64_t c0, int64_t len, Geo& g) {
  const double *__restrict tjx = s.tjx.data() + c0, *__restrict tjy = s.tjy.data() + c0,
               *__restrict tjz = s.tjz.data() + c0, *__restrict cx = s.cx.data() + c0,
               *__restrict cy = s.cy.data() + c0, *__restrict cz = s.cz.data() + c0,
               *__restrict tjr = s.tjr.data() + c0, *__restrict tjir = s.tjir.data() + c0,
               *__restrict cr = s.cr.data() + c0, *__restrict cir = s.cir.data() + c0,
               *__restrict cr2 = s.cr2.data() + c0, *__restrict tjfc = s.tjfc.data() + c0,
               *__restrict cfc = s.cfc.data() + c0, *__restrict tjdfc = s.tjdfc.data() + c0,
               *__restrict cdfc = s.cdfc.data() + c0;
#pragma omp simd
  for (int l = 0; l < kL; ++l) {
    const double r2jk = l < len ? cr2[l] : 2.0;
    g.irjk[l] = 1.0 / std::sqrt(r2jk);
    g.rjk[l] = r2jk * g.irjk[l];
  }
  atomforge::detail::cutoff_fdf_lanes(P.cutoff, kL, g.rjk, P.rc, g.fcjk, g.dfcjk);
#pragma omp simd
  for (int l = 0; l < kL; ++l) {
    const bool ok = l < len;
    const double jx = ok ? tjx[l] : 1.0, jy = ok ? tjy[l] : 0.0, jz = ok ? tjz[l] : 0.0;
    const double kx = ok ? cx[l] : 0.0, ky = ok ? cy[l] : 1.0, kz = ok ? cz[l] : 0.0;
    const double rj = ok ? tjr[l] : 1.0, irj = ok ? tjir[l] : 1.0;
    const double rk = ok ? cr[l] : 1.0, irk = ok ? cir[l] : 1.0;
    const double r2jk = ok ? cr2[l] : 2.0;
    const double irjk = g.irjk[l];
    const double fcj = ok ? tjfc[l] : 0.0, fck = ok ? cfc[l] : 0.0;
    const double dot = jx * kx + jy * ky + jz * kz;
    g.jx[l] = jx; g.jy[l] = jy; g.jz[l] = jz; g.kx[l] = kx; g.ky[l] = ky; g.kz[l] = kz;
    g.rj[l] = rj; g.rk[l] = rk; g.irj[l] = irj; g.irk[l] = irk;
    g.fcj[l] = fcj; g.dfcj[l] = ok ? tjdfc[l] : 0.0; g.fck[l] = fck; g.dfck[l] = ok ? cdfc[l] : 0.0;
    g.E[l] = simd::exp(-base * (rj * rj + rk * rk + r2jk));
    g.FC[l] = fcj * fck * g.fcjk[l];
    g.ca[l] = dot * irj * irk;
    g.cj[l] = (rj * rj - dot) * irj * irjk;
    g.ck[l] = (rk * rk - dot) * irk * irjk;
  }
  for (int l = 0; l < kL; ++l) {
    g.js[l] = l < len ? static_cast<int64_t>(s.tjslot[c0 + l]) : -1;
    g.ks[l] = l < len ? static_cast<int64_t>(s.cslot[c0 + l]) : -1;
  }
}

AF_LANE_INLINE void powers(const Plan& pl, const Geo& g, double (*Ep)[kL]) {
  const v8d E = vload(g.E);
  for (int p = 0; p < pl.npow; ++p) vstore(Ep[p], simd::vipow(E, pl.pw[p]));
}

// Append the candidates k of upper neighbour u in block b (k after u) to the block at `at`.
AF_LANE_INLINE int64_t append(const Problem& P, Scratch& s, int64_t u, int b, int64_t at) {
  const int64_t begin = std::max(s.ubegin[b], u + 1), end = s.ubegin[b + 1];
  if (begin >= end) return 0;
  const double* src[5] = {s.ur.data(), s.uir.data(), s.ufc.data(), s.udfc.data(), s.uslot.data()};
  double* dst[9] = {s.cx.data() + at, s.cy.data() + at, s.cz.data() + at, s.cr.data() + at, s.cir.data() + at,
                    s.cfc.data() + at, s.cdfc.data() + at, s.cslot.data() + at, s.cr2.data() + at};
  const int64_t n = simd::compact_within<5>(s.ux.data(), s.uy.data(), s.uz.data(), s.ux[u], s.uy[u], s.uz[u], begin,
                                            end, P.rc * P.rc, s.cand.data() + at, src, dst);
  const double jx = s.ux[u], jy = s.uy[u], jz = s.uz[u], rj = s.ur[u], irj = s.uir[u], fcj = s.ufc[u],
               dfcj = s.udfc[u], js = s.uslot[u];
  const v8d one = {1, 1, 1, 1, 1, 1, 1, 1};  // broadcast stores, 8 at a time (the arrays have room)
  for (int64_t c = at; c < at + n; c += kL) {
    vstore(&s.tjx[c], jx * one); vstore(&s.tjy[c], jy * one); vstore(&s.tjz[c], jz * one);
    vstore(&s.tjr[c], rj * one); vstore(&s.tjir[c], irj * one); vstore(&s.tjfc[c], fcj * one);
    vstore(&s.tjdfc[c], dfcj * one); vstore(&s.tjslot[c], js * one);
  }
  return n;
}

// Every triangle of centre a with j in block bj and k in block bk, in blocks of about kBlock:
// `process(count)` consumes s's block arrays [0, count).
template <class Fn>
AF_LANE_INLINE void for_blocks(const Problem& P, Scratch& s, int bj, int bk, Fn&& process) {
  int64_t cnt = 0;
  s.nrun = 0;
  for (int64_t u = s.ubegin[bj]; u < s.ubegin[bj + 1]; ++u) {
    const int64_t n = append(P, s, u, bk, cnt);
    if (!n) continue;
    cnt += n;
    s.run_end[s.nrun] = cnt;
    s.run_slot[s.nrun++] = static_cast<int64_t>(s.uslot[u]);
    if (cnt >= kBlock) {
      process(cnt);
      cnt = 0;
      s.nrun = 0;
    }
  }
  if (cnt) process(cnt);
}

// out[run slot] += sum of v over each run of the block
AF_LANE_INLINE void run_sums(const Scratch& s, const double* v, double* out) {
  int64_t b = 0;
  for (int64_t r = 0; r < s.nrun; ++r) {
    const int64_t e = s.run_end[r];
    double t = 0.0;
#pragma omp simd reduction(+ : t)
    for (int64_t c = b; c < e; ++c) t += v[c];
    out[s.run_slot[r]] += t;
    b = e;
  }
}

// Term q of a vertex with the chunk's cos at that vertex: pref (1 + lambda cos)^zeta E^m FC.
AF_LANE_INLINE v8d vertex_value(const Vertex& v, int q, v8d cs, const double (*Ep)[kL], v8d FC) {
  return v.pref[q] * simd::vipow(1.0 + v.lam[q] * cs, v.zeta[q]) * vload(Ep[v.pidx[q]]) * FC;
}

// VJP of term q of a vertex with weights ww = dE/dG_q pref_q per lane (FC factored out):
// A += ww P E^m, C += m ww P E^m, B += ww dP/dcos E^m.
AF_LANE_INLINE void vertex_vjp(const Vertex& v, const Plan& pl, int q, v8d ww, v8d cs, const double (*Ep)[kL],
                               v8d& A, v8d& C, v8d& B) {
  const double lam = v.lam[q];
  const int z = v.zeta[q];
  const v8d b1 = 1.0 + lam * cs, e = vload(Ep[v.pidx[q]]);
  const v8d pz1 = simd::vipow(b1, z - 1);
  const v8d t = ww * pz1 * b1 * e;
  A += t;
  C += pl.pw[v.pidx[q]] * t;
  B += (ww * (z * lam)) * pz1 * e;
}

// Per-lane weights dE/dG_f pref_q of the vertices at neighbour slots idx (rows of wn).
AF_LANE_INLINE v8d lane_weights(const Scratch& s, const Vertex& v, int q, __mmask8 lanes, __m512i idx) {
  const double* wr = s.wn.data() + static_cast<int64_t>(v.feat[q]) * s.cap;
  alignas(64) double wl[kL];
  _mm512_store_pd(wl, _mm512_mask_i64gather_pd(_mm512_setzero_pd(), lanes, idx, wr, 8));
  return vload(wl) * v.pref[q];
}

AF_LANE_INLINE void scatter(double* row, const int64_t* slot, const double* v, int64_t len) {
  for (int l = 0; l < len; ++l) row[slot[l]] += v[l];
}

// ---------------------------------------------------------------------------------------------
int64_t g_triangles = 0, g_covered = 0;  // counted by values(): triangles, (centre, triangle) terms

void values(const Problem& P, Scratch& s, double* G) {
  const int nf = P.nf, ne = P.ne;
  const int64_t cap = s.cap;
  alignas(64) double accA[kMaxFeatures][kL], Ep[kMaxF][kL];
  for (int64_t a = 0; a < P.nc; ++a) {
    const int32_t ea = P.spec[a];
    int64_t nup = 0;
    const int64_t n = gather(P, a, s, nup);
    double* Ga = G + a * nf;
    radial_values(P, ea, n, s, Ga);
    std::fill(s.nacc.begin(), s.nacc.begin() + static_cast<size_t>(nf) * cap, 0.0);
    for (int f = 0; f < nf; ++f)
      for (int l = 0; l < kL; ++l) accA[f][l] = 0.0;
    for (int bj = 0; bj < 2 * ne; ++bj)
      for (int bk = bj; bk < 2 * ne; ++bk) {
        const int32_t ej = bj / 2, ek = bk / 2;
        const bool jlocal = (bj & 1) == 0, klocal = (bk & 1) == 0;
        const Plan& pl = P.plans[(ea * ne + ej) * ne + ek];
        const Vertex& va = pl.v[0];
        const Vertex& vj = pl.v[1];
        const Vertex& vk = pl.v[2];
        const int nj = jlocal ? vj.n : 0, nk = klocal ? vk.n : 0;
        if (!(va.n || nj || nk)) continue;
        for_blocks(P, s, bj, bk, [&](int64_t cnt) {
          for (int64_t c0 = 0; c0 < cnt; c0 += kL) {
            const int64_t len = std::min<int64_t>(kL, cnt - c0);
            g_triangles += len;
            g_covered += len * ((va.n > 0) + (nj > 0) + (nk > 0));
            Geo g;
            geometry(P, s, pl.base, c0, len, g);
            powers(pl, g, Ep);
            const v8d FC = vload(g.FC);
            for (int q = 0; q < va.n; ++q) {
              double* acc = accA[va.feat[q]];
              vstore(acc, vload(acc) + vertex_value(va, q, vload(g.ca), Ep, FC));
            }
            for (int q = 0; q < nj; ++q) vstore(&s.tv[q * s.bl() + c0], vertex_value(vj, q, vload(g.cj), Ep, FC));
            for (int q = 0; q < nk; ++q) {
              alignas(64) double val[kL];
              vstore(val, vertex_value(vk, q, vload(g.ck), Ep, FC));
              scatter(s.nacc.data() + static_cast<int64_t>(vk.feat[q]) * cap, g.ks, val, len);
            }
          }
          for (int q = 0; q < nj; ++q)
            run_sums(s, &s.tv[q * s.bl()], s.nacc.data() + static_cast<int64_t>(vj.feat[q]) * cap);
        });
      }
    for (int f = 0; f < nf; ++f) {
      double t = 0.0;
      for (int l = 0; l < kL; ++l) t += accA[f][l];
      Ga[f] += t;
    }
    for (int64_t m = 0; m < n; ++m) {  // neighbour vertices' terms into their rows
      const int64_t b = s.idx[m];
      if (b <= a || b >= P.nc) continue;
      double* Gb = G + b * nf;
      for (int f = 0; f < nf; ++f) Gb[f] += s.nacc[static_cast<int64_t>(f) * cap + m];
    }
  }
}

// ---------------------------------------------------------------------------------------------
void vjp(const Problem& P, Scratch& s, const double* w, double* F, double* W) {
  const int ne = P.ne, nf = P.nf;
  const int64_t cap = s.cap;
  alignas(64) double Ep[kMaxF][kL];
  for (int64_t a = 0; a < P.nc; ++a) {
    const int32_t ea = P.spec[a];
    int64_t nup = 0;
    const int64_t n = gather(P, a, s, nup);
    for (int64_t m = 0; m < n + 8; ++m) s.gx[m] = s.gy[m] = s.gz[m] = 0.0;
    for (int64_t m = 0; m < n; ++m) {
      const int64_t b = s.idx[m];
      for (int f = 0; f < nf; ++f) s.wn[static_cast<int64_t>(f) * cap + m] = b < P.nc ? w[b * nf + f] : 0.0;
    }
    const double* wa = w + a * nf;
    radial_vjp(P, ea, n, s, wa);
    for (int bj = 0; bj < 2 * ne; ++bj)
      for (int bk = bj; bk < 2 * ne; ++bk) {
        const int32_t ej = bj / 2, ek = bk / 2;
        const bool jlocal = (bj & 1) == 0, klocal = (bk & 1) == 0;
        const Plan& pl = P.plans[(ea * ne + ej) * ne + ek];
        const Vertex& va = pl.v[0];
        const Vertex& vj = pl.v[1];
        const Vertex& vk = pl.v[2];
        const int nj = jlocal ? vj.n : 0, nk = klocal ? vk.n : 0;
        if (!(va.n || nj || nk)) continue;
        const double base = pl.base;
        for_blocks(P, s, bj, bk, [&](int64_t cnt) {
          for (int64_t c0 = 0; c0 < cnt; c0 += kL) {
            const int64_t len = std::min<int64_t>(kL, cnt - c0);
            Geo g;
            geometry(P, s, base, c0, len, g);
            powers(pl, g, Ep);
            v8d A = {}, C = {}, Ba = {}, Bj = {}, Bk = {};
            const __mmask8 lanes = static_cast<__mmask8>((1u << len) - 1u);
            const __m512i idx_js = _mm512_maskz_loadu_epi64(lanes, g.js), idx_ks = _mm512_maskz_loadu_epi64(lanes, g.ks);
            for (int q = 0; q < va.n; ++q)
              vertex_vjp(va, pl, q, wa[va.feat[q]] * va.pref[q] + v8d{}, vload(g.ca), Ep, A, C, Ba);
            for (int q = 0; q < nj; ++q)
              vertex_vjp(vj, pl, q, lane_weights(s, vj, q, lanes, idx_js), vload(g.cj), Ep, A, C, Bj);
            for (int q = 0; q < nk; ++q)
              vertex_vjp(vk, pl, q, lane_weights(s, vk, q, lanes, idx_ks), vload(g.ck), Ep, A, C, Bk);
            alignas(64) double vA[kL], vC[kL], vBa[kL], vBj[kL], vBk[kL];
            vstore(vA, A); vstore(vC, C); vstore(vBa, Ba); vstore(vBj, Bj); vstore(vBk, Bk);
            alignas(64) double Kx[kL], Ky[kL], Kz[kL];
            double* __restrict tJx = &s.tv[c0];
            double* __restrict tJy = &s.tv[s.bl() + c0];
            double* __restrict tJz = &s.tv[2 * s.bl() + c0];
#pragma omp simd
            for (int l = 0; l < kL; ++l) {
              const double FC = g.FC[l], rj = g.rj[l], rk = g.rk[l], rjk = g.rjk[l];
              const double ij = g.irj[l], ik = g.irk[l], ijk = g.irjk[l];
              const double dS = -base * vC[l] * FC;  // dE/dS
              const double ba = vBa[l] * FC, bj = vBj[l] * FC, bk = vBk[l] * FC;
              const double fcj = g.fcj[l], fck = g.fck[l], fcjk = g.fcjk[l];
              const double grj = vA[l] * g.dfcj[l] * fck * fcjk + 2.0 * dS * rj;
              const double grk = vA[l] * fcj * g.dfck[l] * fcjk + 2.0 * dS * rk;
              const double grjk = vA[l] * fcj * fck * g.dfcjk[l] + 2.0 * dS * rjk;
              const double ca = g.ca[l], cj = g.cj[l], ck = g.ck[l];
              const double ijijk = ij * ijk, ikijk = ik * ijk, ijk2 = ijk * ijk;
              const double aj = grj * ij + grjk * ijk - ba * ca * ij * ij + bj * (2.0 * ijijk - cj * (ij * ij + ijk2)) -
                                bk * ck * ijk2;
              const double x = -grjk * ijk + ba * ij * ik + bj * (cj * ijk2 - ijijk) + bk * (ck * ijk2 - ikijk);
              const double bkv = grk * ik + grjk * ijk - ba * ca * ik * ik - bj * cj * ijk2 +
                                 bk * (2.0 * ikijk - ck * (ik * ik + ijk2));
              tJx[l] = aj * g.jx[l] + x * g.kx[l];
              tJy[l] = aj * g.jy[l] + x * g.ky[l];
              tJz[l] = aj * g.jz[l] + x * g.kz[l];
              Kx[l] = x * g.jx[l] + bkv * g.kx[l];
              Ky[l] = x * g.jy[l] + bkv * g.ky[l];
              Kz[l] = x * g.jz[l] + bkv * g.kz[l];
            }
            for (int l = 0; l < len; ++l) {
              const int64_t k = g.ks[l];
              s.gx[k] += Kx[l]; s.gy[k] += Ky[l]; s.gz[k] += Kz[l];
            }
          }
          run_sums(s, &s.tv[0], s.gx.data());
          run_sums(s, &s.tv[s.bl()], s.gy.data());
          run_sums(s, &s.tv[2 * s.bl()], s.gz.data());
        });
      }
    // dE/dd_m -> forces (F = -dE/dx) and virial W = -sum d (x) dE/dd
    double fa[3] = {0, 0, 0};
    for (int64_t m = 0; m < n; ++m) {
      const int64_t b = P.owner[s.idx[m]];
      const double g3[3] = {s.gx[m], s.gy[m], s.gz[m]}, d3[3] = {s.dx[m], s.dy[m], s.dz[m]};
      for (int x = 0; x < 3; ++x) {
        F[3 * b + x] -= g3[x];
        fa[x] += g3[x];
        for (int y = 0; y < 3; ++y) W[3 * x + y] -= d3[x] * g3[y];
      }
    }
    for (int x = 0; x < 3; ++x) F[3 * a + x] += fa[x];
  }
}

// The inputs bench_triangles.py writes to dir, checked for consistency (throws std::runtime_error
// naming the file and what is wrong).
Problem read_inputs(const std::string& dir) {
  Problem P;
  P.pos = load<double>(dir + "/pos.bin");
  P.spec = load<int32_t>(dir + "/spec.bin");
  P.off = load<int64_t>(dir + "/off.bin");
  P.nbr = load<int64_t>(dir + "/nbr.bin");
  P.owner = load<int64_t>(dir + "/owner.bin");
  P.w = load<double>(dir + "/w.bin");
  P.nt = static_cast<int64_t>(P.spec.size());
  P.nc = static_cast<int64_t>(P.off.size()) - 1;
  auto fail = [&](const std::string& file, const std::string& what) {
    throw std::runtime_error(dir + "/" + file + ": " + what);
  };
  if (P.nc < 1 || P.nc > P.nt) fail("off.bin", "needs 2..n_atoms + 1 offsets");
  if (static_cast<int64_t>(P.pos.size()) != 3 * P.nt) fail("pos.bin", "needs 3 coordinates per atom of spec.bin");
  if (static_cast<int64_t>(P.owner.size()) != P.nt) fail("owner.bin", "needs one owner per atom of spec.bin");
  if (P.off[0] != 0 || P.off[P.nc] != static_cast<int64_t>(P.nbr.size())) fail("off.bin", "does not span nbr.bin");
  for (int64_t a = 0; a < P.nc; ++a)
    if (P.off[a + 1] < P.off[a]) fail("off.bin", "offsets decrease at centre " + std::to_string(a));
  for (int64_t m = 0; m < static_cast<int64_t>(P.nbr.size()); ++m)
    if (P.nbr[m] < 0 || P.nbr[m] >= P.nt) fail("nbr.bin", "entry " + std::to_string(m) + " is not an atom");
  for (int64_t b = 0; b < P.nt; ++b)
    if (P.owner[b] < 0 || P.owner[b] >= P.nc) fail("owner.bin", "atom " + std::to_string(b) + " has no centre owner");

  std::ifstream pf(dir + "/plan.txt");
  if (!pf) fail("plan.txt", "cannot read");
  std::string cutoff;
  int nrad = 0;
  pf >> P.ne >> P.nf >> P.rc >> cutoff >> nrad;
  if (!pf || P.ne < 1 || 2 * P.ne > 64 || P.nf < 1 || P.nf > kMaxFeatures || !(P.rc > 0.0) || nrad < 0)
    fail("plan.txt", "bad header (elements 1..32, features 1..32, r_c > 0, radial count >= 0)");
  P.cutoff = atomforge::cutoff_type_from_string(cutoff);
  if (static_cast<int64_t>(P.w.size()) != P.nc * P.nf) fail("w.bin", "needs n_centres x n_features values");
  for (int32_t e : P.spec)
    if (e < 0 || e >= P.ne) fail("spec.bin", "element index out of range");
  for (int i = 0; i < nrad; ++i) {
    Radial r;
    pf >> r.elem >> r.feat >> r.nbr >> r.eta >> r.rs;
    if (!pf || r.elem < 0 || r.elem >= P.ne || r.nbr < 0 || r.nbr >= P.ne || r.feat < 0 || r.feat >= P.nf)
      fail("plan.txt", "bad radial function " + std::to_string(i));
    P.radial.push_back(r);
  }
  P.plans.resize(static_cast<size_t>(P.ne) * P.ne * P.ne);
  for (size_t t = 0; t < P.plans.size(); ++t) {
    Plan& pl = P.plans[t];
    const std::string where = "element triple " + std::to_string(t);
    pf >> pl.base >> pl.npow;
    if (!pf || pl.npow < 0 || pl.npow > kMaxF) fail("plan.txt", where + ": bad power count");
    for (int p = 0; p < pl.npow; ++p) pf >> pl.pw[p];
    for (int v = 0; v < 3; ++v) {
      Vertex& vx = pl.v[v];
      pf >> vx.n;
      if (!pf || vx.n < 0 || vx.n > kMaxF) fail("plan.txt", where + ": bad function count");
      for (int q = 0; q < vx.n; ++q) {
        pf >> vx.feat[q] >> vx.lam[q] >> vx.zeta[q] >> vx.pidx[q] >> vx.pref[q];
        if (!pf || vx.feat[q] < 0 || vx.feat[q] >= P.nf || vx.zeta[q] < 1 || vx.pidx[q] < 0 || vx.pidx[q] >= pl.npow)
          fail("plan.txt", where + ": bad function " + std::to_string(q));
      }
    }
  }
  return P;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) { std::fprintf(stderr, "usage: triangle_prototype DIR SECONDS\n"); return 2; }
  const std::string dir = argv[1];
  const double seconds = std::atof(argv[2]);
  Problem P;
  try {
    P = read_inputs(dir);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "triangle_prototype: %s\n", e.what());
    return 2;
  }
  int64_t cap = 0;
  for (int64_t a = 0; a < P.nc; ++a) cap = std::max(cap, P.off[a + 1] - P.off[a]);
  Scratch s;
  s.size(cap, P.nf);
  std::vector<double> G(P.nc * P.nf), F(3 * P.nc), W(9);
  auto once = [&]() {
    std::fill(G.begin(), G.end(), 0.0);
    std::fill(F.begin(), F.end(), 0.0);
    std::fill(W.begin(), W.end(), 0.0);
    values(P, s, G.data());
    vjp(P, s, P.w.data(), F.data(), W.data());
  };
  g_triangles = g_covered = 0;
  once();
  const double tri = static_cast<double>(g_triangles) / P.nc, cov = static_cast<double>(g_covered) / P.nc;
  std::ofstream(dir + "/G_out.bin", std::ios::binary).write(reinterpret_cast<const char*>(G.data()), G.size() * 8);
  std::ofstream(dir + "/F_out.bin", std::ios::binary).write(reinterpret_cast<const char*>(F.data()), F.size() * 8);
  std::ofstream(dir + "/W_out.bin", std::ios::binary).write(reinterpret_cast<const char*>(W.data()), W.size() * 8);
  // timing: whole calls (values + VJP) for `seconds`, then the values pass alone for half as long
  using clk = std::chrono::steady_clock;
  int64_t calls = 0;
  const auto t0 = clk::now();
  double el = 0;
  do {
    once();
    ++calls;
    el = std::chrono::duration<double>(clk::now() - t0).count();
  } while (el < seconds);
  const auto t1 = clk::now();
  int64_t vcalls = 0;
  double vel = 0;
  do {
    values(P, s, G.data());
    ++vcalls;
    vel = std::chrono::duration<double>(clk::now() - t1).count();
  } while (vel < seconds / 2);
  std::printf("{\"rate\": %.1f, \"values_rate\": %.1f, \"calls\": %lld, \"triangles_per_centre\": %.1f, "
              "\"terms_per_centre\": %.1f}\n",
              calls * P.nc / el, vcalls * P.nc / vel, static_cast<long long>(calls), tri, cov);
  return 0;
}
