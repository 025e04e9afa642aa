// Gaussian multipole (GMP) descriptors: descriptor type "gmp".
//
//   [LM22] X. Lei, A. J. Medford, "A universal framework for featurization of atomic
//          configurations for energy and force predictions", J. Phys. Chem. Lett. 13, 7911
//          (2022), arXiv 2102.02390.
//   [LM19] X. Lei, A. J. Medford, Phys. Rev. Materials 3, 063801 (2019): Maxwell-Cartesian
//          spherical harmonics (MCSH) as rotationally invariant probes.
//
// Each atom of element e carries a pseudo-density rho_e(r) = sum_k c_k exp(-alpha_k r^2) (a
// fitted table; the model file stores the numbers used). The environment density of centre i is
// the sum of these densities over all atoms within r_c (periodic images included) and its own.
// A probe of order n and width sigma is a normalised Gaussian times an MCSH in solid form,
//   P_{n,sigma,c}(r) = N_sigma exp(-r^2 / (2 sigma^2)) S_{n,c}(r),  N_sigma = (2 pi sigma^2)^(-3/2),
//   S_{n,c}(r) = (2n-1)!! H[x^a y^b z^c]        (c = (a, b, c), a + b + c = n),
// H the harmonic (traceless) projection; e.g. S_2 = 3x^2 - r^2 and 3xy, S_3 = 15x^3 - 9x r^2, ...
// The moments mu_{n,sigma,c}(i) = integral P_{n,sigma,c}(r - r_i) rho_env(r) dr have a closed
// form, because S is harmonic and homogeneous ([LM22] Eq. 5 to 8; integral of a harmonic
// polynomial against a Gaussian equals its value at the Gaussian's centre):
//   mu = [n = 0] sum_k N c_k (pi/gamma)^(3/2)                               (own density)
//      + sum_j fc(r_ij) sum_k N c_k (pi/gamma)^(3/2) (alpha_k/gamma)^n
//                        exp(-a alpha_k r_ij^2 / gamma) S_{n,c}(r_j - r_i),
//   a = 1/(2 sigma^2), gamma = a + alpha_k (k over the Gaussians of atom j's element).
// The invariant feature of order n and width sigma ([LM22] Eq. 9):
//   G_{n,sigma} = sqrt( sum_c  n!/(a! b! c!)  mu_{n,sigma,c}^2 )   (square=1: without sqrt),
// the norm of the traceless moment tensor, invariant under rotation.
// Density channels (an atomforge option, not in [LM22]): a channel h is a set of elements, and its
// features are those of the partial density of its elements only (mu_h: the sum over j restricted
// to e_j in h, the own density counted when e_i is in h). The published GMP is the single channel
// of all elements (the default). Channels of one element each resolve the neighbours' elements as
// ACSF does; channels of element pairs add their cross terms, since
// |mu_a + mu_b|^2 = |mu_a|^2 + |mu_b|^2 + 2 mu_a . mu_b.
// Columns: f = (h * n_orders + o) * n_sigmas + s for channel h, order index o, width index s.
// fc is a smooth cutoff function of r_ij/r_c (any of common/cutoff.hpp) or none: every pair
// inside r_c counted in full (the untruncated definition). Units: Angstrom; sigma in Angstrom; features in the density's units.
//
// Model-file records (prefix "descriptor."):
//   type "gmp"; orders int64 (n_orders); sigmas float64 (n_sigmas); r_c float64;
//   cutoff_function string ("none" or a name of common/cutoff.hpp); square int64 0/1;
//   density.counts int64 (n_elements): Gaussians per element; density.gaussians float64
//   (sum counts, 2): rows [c_k, alpha_k (1/Angstrom^2)] of the elements in species order;
//   optional channels int64 (n_channels, n_elements): 1 where the element belongs to the channel
//   (absent: one channel of every element).
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "atomforge/descriptor.hpp"
#include "common/workspace_pool.hpp"
#include "descriptors/gmp/gmp_kernels.hpp"

namespace atomforge {

namespace gmp {
struct Workspace {
  std::vector<double> buf;
  std::vector<double> rows;     // the pair block (block_rows x cap), kept across steps
  std::vector<int64_t> lanes;   // lane_q, lane_m and tmp_q (cap each)
  std::vector<int32_t> elems;   // tmp_e (cap)
  std::vector<int32_t> groups;  // (2 n_elements)
  Scratch s{};
};
}  // namespace gmp

class GaussianMultipoles : public Descriptor {
 public:
  struct Gaussian {
    double coefficient, exponent;  // c_k, alpha_k (1/Angstrom^2)
  };
  /// channels: element indices of each density channel (empty: one channel of all elements).
  /// Throws InvalidInput for: no element or more than 118, orders outside 0..8 or repeated,
  /// sigmas not positive and finite or repeated, r_c not in (0, 25] A, an unknown cutoff
  /// function, an element without Gaussians, a non-finite coefficient or a non-positive exponent,
  /// more than 256 channels, an empty or repeated channel, an element index out of range or
  /// repeated within a channel, an element in no channel.
  GaussianMultipoles(std::vector<int32_t> orders, std::vector<double> sigmas, double r_c, int32_t cutoff,
                     bool square, std::vector<std::vector<Gaussian>> densities,
                     std::vector<std::vector<int32_t>> channels = {});

  static std::unique_ptr<Descriptor> from_file(const ModelFile& file, int32_t n_elements);

  std::string type() const override { return "gmp"; }
  int32_t n_elements() const override { return static_cast<int32_t>(densities_.size()); }
  int64_t n_features() const override {
    return static_cast<int64_t>(channels_.size() * orders_.size() * sigmas_.size());
  }
  int64_t n_features(int32_t element) const override;
  double cutoff() const override { return r_c_; }
  std::vector<std::string> feature_labels(int32_t element) const override;

  void compute(const NeighborView& nl, double* G, int n_threads = 0) const override;
  void vjp(const NeighborView& nl, const double* dE_dG, double* forces, double* virial,
           double* per_atom_virial = nullptr, int n_threads = 0) const override;
  DescriptorJacobian jacobian(const NeighborView& nl, double* G, int n_threads = 0) const override;
  /// Fused pass: per centre values, the model's dE/dG, then the VJP.
  void evaluate(const NeighborView& nl, CentreModel& model, double* forces, double* virial,
                double* per_atom_virial = nullptr, int n_threads = 0) const override;

 private:
  void build_tables();
  template <class Fn>
  void run(const NeighborView& nl, int n_threads, Fn&& per_centre, CentreModel* model = nullptr) const;
  // blocks of centres (CentreBlocks), one workspace per slot of a block:
  // per_block(tid, centres, n, scratch of each slot, overlap)
  template <class Fn>
  void run_blocks(const NeighborView& nl, int n_threads, const CentreBlocks& blocks, int slots, Fn&& per_block,
                  CentreModel& model) const;
  void prepare(gmp::Workspace& w, int64_t cap) const;

  std::vector<int32_t> orders_;
  std::vector<double> sigmas_;
  double r_c_;
  int32_t cutoff_;
  bool square_;
  std::vector<std::vector<Gaussian>> densities_;
  std::vector<std::vector<int32_t>> channels_;
  // flat tables behind gmp::Tables
  std::vector<int32_t> gauss_begin_, comp_begin_, term_begin_, term_mono_, grad_begin_, grad_mono_, mono_parent_,
      mono_axis_, slot_of_, chan_begin_, chan_slots_, chan_member_;
  std::vector<double> A_, b_, self0_, comp_weight_, term_coef_, grad_coef_;
  gmp::Tables t_;
  mutable WorkspacePool<gmp::Workspace> pool_;
};

}  // namespace atomforge
