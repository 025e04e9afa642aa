// CUDA launcher of the symmetry functions: the same single-source per-centre kernels as the CPU
// driver (acsf_kernels.hpp), one GPU thread per centre atom, scratch in global memory. It exists
// to run (and test) the shared kernels on a device; the CPU path stays the reference, and the
// results agree with it to rounding (the device's exp/sqrt differ from the host's in the last
// bits; 3e-16 relative measured on an H200, benchmarks/results/cuda_h200.md). Centres are
// processed in batches so the scratch stays below scratch_bytes (512 MiB by default).
//
// Speed: this decomposition is the CPU's: one thread does a centre's whole serial work (8-lane
// blocks run as scalar loops, tens of KB of scratch, 255 registers), so atoms/s is about the number of
// centres in flight divided by ~0.9 s per centre on an H200: about one Xeon core's speed
// (benchmarks/results/cuda_h200.md). A GPU-shaped kernel spreads one centre over a warp
// (neighbours across lanes, the centre's scratch in shared memory); docs/architecture.md.
#include <cuda_runtime.h>

#include <algorithm>
#include <string>
#include <vector>

#include "atomforge/errors.hpp"
#include "descriptors/acsf/acsf_tables.hpp"
#include "descriptors/common.hpp"

namespace atomforge {
namespace {

void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) {
    cudaGetLastError();
    throw InvalidInput(std::string("CUDA: ") + what + ": " + cudaGetErrorString(e));
  }
}

// A device copy of a host vector, freed with the owner.
struct DeviceArrays {
  std::vector<void*> ptrs;
  ~DeviceArrays() {
    for (void* p : ptrs) cudaFree(p);
  }
  template <class T>
  T* copy(const std::vector<T>& v) {
    return copy(v.data(), v.size());
  }
  template <class T>
  T* copy(const T* data, size_t n) {
    void* p = nullptr;
    check(cudaMalloc(&p, std::max<size_t>(n, 1) * sizeof(T)), "cudaMalloc");
    ptrs.push_back(p);
    if (n) check(cudaMemcpy(p, data, n * sizeof(T), cudaMemcpyHostToDevice), "copy to device");
    return static_cast<T*>(p);
  }
  template <class T>
  T* alloc(size_t n) {
    void* p = nullptr;
    check(cudaMalloc(&p, std::max<size_t>(n, 1) * sizeof(T)), "cudaMalloc");
    check(cudaMemset(p, 0, std::max<size_t>(n, 1) * sizeof(T)), "cudaMemset");
    ptrs.push_back(p);
    return static_cast<T*>(p);
  }
};

acsf::Tables device_tables(const SymmetryFunctions::Flat& F, DeviceArrays& d) {
  acsf::Tables t = F.t;  // scalars and maxima; pointers replaced below
  t.n_features = d.copy(F.n_features); t.rc_max = d.copy(F.rc_max);
  t.group_begin = d.copy(F.group_begin); t.group_eta = d.copy(F.group_eta); t.group_rs = d.copy(F.group_rs);
  t.group_rc_slot = d.copy(F.group_rc_slot); t.rc_begin = d.copy(F.rc_begin); t.rc = d.copy(F.rc);
  t.radial_begin = d.copy(F.radial_begin); t.radial_feature = d.copy(F.radial_feature);
  t.radial_group = d.copy(F.radial_group); t.radial_neighbor = d.copy(F.radial_neighbor);
  t.angular_begin = d.copy(F.angular_begin); t.angular_feature = d.copy(F.angular_feature);
  t.angular_zeta = d.copy(F.angular_zeta);
  t.angular_pref = d.copy(F.angular_pref); t.pair_group_begin = d.copy(F.pair_group_begin);
  t.pair_pow_begin = d.copy(F.pair_pow_begin); t.pair_rc_begin = d.copy(F.pair_rc_begin);
  t.ag_group = d.copy(F.ag_group); t.ag_narrow = d.copy(F.ag_narrow); t.ag_rc_slot = d.copy(F.ag_rc_slot);
  t.ag_fn_begin = d.copy(F.ag_fn_begin); t.agf_fn = d.copy(F.agf_fn); t.agf_pow = d.copy(F.agf_pow);
  t.agf_pref = d.copy(F.agf_pref); t.pow_a = d.copy(F.pow_a); t.pow_b = d.copy(F.pow_b); t.pow_zeta = d.copy(F.pow_zeta);
  t.pow_zeta_int = d.copy(F.pow_zeta_int); t.pair_rc = d.copy(F.pair_rc);
  t.pair_eta_base = d.copy(F.pair_eta_base); t.ag_eta_power = d.copy(F.ag_eta_power);
  t.pair_fact_slot = d.copy(F.pair_fact_slot);
  return t;
}

NeighborView device_view(const NeighborView& nl, DeviceArrays& d) {
  NeighborView v = nl;
  const int64_t n_pairs = nl.n_centres ? nl.offsets[nl.n_centres] : 0;
  v.positions = d.copy(nl.positions, 3 * nl.n_total);
  v.species = d.copy(nl.species, nl.n_total);
  v.offsets = d.copy(nl.offsets, nl.n_centres + 1);
  v.neighbors = d.copy(nl.neighbors, n_pairs);
  if (nl.centres) v.centres = d.copy(nl.centres, nl.n_centres);
  return v;
}

// One thread per centre c in [c0, c0 + n): Mode 0 values into G, Mode 1 VJP into pair_grad.
template <int Mode>
__global__ void centre_kernel(acsf::Tables t, NeighborView nl, int64_t c0, int64_t n, int64_t cap, int64_t nd,
                              int64_t ni, int64_t n32, double* dbuf, int64_t* ibuf, int32_t* i32buf, double* G,
                              const double* w, double* pair_grad, int64_t nf, unsigned long long* overlap) {
  const int64_t k = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (k >= n) return;
  const int64_t c = c0 + k;
  acsf::Scratch s;
  acsf::carve(t, cap, dbuf + k * nd, ibuf + k * ni, i32buf + k * n32, s, false);
  const int32_t e = nl.species[nl.centre(c)];
  int64_t np = 0, ov = -1;
  const int64_t nn = acsf::gather(t, nl, c, s, &np, &ov);
  if (ov >= 0) atomicMin(overlap, static_cast<unsigned long long>(ov));
  acsf::radial_terms(t, e, np, s);
  if (Mode == 0) {
    acsf::centre_terms<0>(t, e, nn, np, s, G + c * nf, nullptr, nullptr, nf);
  } else {
    acsf::centre_terms<1>(t, e, nn, np, s, nullptr, w + c * nf, nullptr, nf);
    acsf::finish_vjp(nn, s, pair_grad);
  }
}

template <int Mode>
void launch(const SymmetryFunctions& sf, const NeighborView& nl, double* G_host, const double* w_host,
            double* pair_grad_host, int64_t scratch_bytes) {
  if (scratch_bytes <= 0) throw InvalidInput("CUDA scratch_bytes must be positive, got " + std::to_string(scratch_bytes));
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
    cudaGetLastError();
    throw InvalidInput("no CUDA device is visible");
  }
  const int64_t nc = nl.n_centres, nf = sf.n_features();
  if (nc == 0) return;
  DeviceArrays d;
  const acsf::Tables t = device_tables(sf.flat(), d);
  const NeighborView v = device_view(nl, d);
  int64_t max_count = 0;
  for (int64_t c = 0; c < nc; ++c) max_count = std::max(max_count, nl.offsets[c + 1] - nl.offsets[c]);
  const int64_t cap = acsf::capacity_for(max_count);
  int64_t nd, ni, n32;
  acsf::scratch_sizes(sf.flat().t, cap, &nd, &ni, &n32, false);
  const int64_t per_centre = nd * 8 + ni * 8 + n32 * 4;
  const int64_t batch = std::max<int64_t>(1, std::min<int64_t>(nc, scratch_bytes / per_centre));
  double* dbuf = d.alloc<double>(batch * nd);
  int64_t* ibuf = d.alloc<int64_t>(batch * ni);
  int32_t* i32buf = d.alloc<int32_t>(batch * n32);
  double* G = Mode == 0 ? d.alloc<double>(nc * nf) : nullptr;
  const double* w = Mode == 1 ? d.copy(w_host, nc * nf) : nullptr;
  const int64_t n_pairs = nl.offsets[nc];
  double* pg = Mode == 1 ? d.alloc<double>(3 * n_pairs) : nullptr;
  unsigned long long* overlap = d.alloc<unsigned long long>(1);
  const unsigned long long none = ~0ull;
  check(cudaMemcpy(overlap, &none, sizeof none, cudaMemcpyHostToDevice), "copy to device");
  for (int64_t c0 = 0; c0 < nc; c0 += batch) {
    const int64_t n = std::min(batch, nc - c0);
    const int threads = 64;
    const int blocks = static_cast<int>((n + threads - 1) / threads);
    centre_kernel<Mode><<<blocks, threads>>>(t, v, c0, n, cap, nd, ni, n32, dbuf, ibuf, i32buf, G, w, pg, nf, overlap);
    check(cudaGetLastError(), "kernel launch");
  }
  check(cudaDeviceSynchronize(), "kernel");
  unsigned long long ov = 0;
  check(cudaMemcpy(&ov, overlap, sizeof ov, cudaMemcpyDeviceToHost), "copy to host");
  if (ov != none) throw_coincident(static_cast<int64_t>(ov));
  if (Mode == 0) check(cudaMemcpy(G_host, G, nc * nf * sizeof(double), cudaMemcpyDeviceToHost), "copy to host");
  if (Mode == 1)
    check(cudaMemcpy(pair_grad_host, pg, 3 * n_pairs * sizeof(double), cudaMemcpyDeviceToHost), "copy to host");
}

}  // namespace

void SymmetryFunctions::compute_cuda(const NeighborView& nl, double* G, int64_t scratch_bytes) const {
  validate_neighbor_view(nl, n_elements_);
  launch<0>(*this, nl, G, nullptr, nullptr, scratch_bytes);
}

void SymmetryFunctions::vjp_cuda(const NeighborView& nl, const double* dE_dG, double* forces, double* virial,
                                 int64_t scratch_bytes) const {
  validate_neighbor_view(nl, n_elements_);
  check_finite_weights(dE_dG, nl.n_centres, n_features_);
  const int64_t n_pairs = nl.n_centres ? nl.offsets[nl.n_centres] : 0;
  std::vector<double> pair_grad(3 * n_pairs, 0.0);
  launch<1>(*this, nl, nullptr, dE_dG, pair_grad.data(), scratch_bytes);
  scatter_pair_gradients(nl, pair_grad.data(), forces, virial, nullptr);
}

}  // namespace atomforge
