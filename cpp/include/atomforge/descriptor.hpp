// atomforge core: the interface every atomic-environment descriptor implements, and the
// descriptor registry.
//
// A descriptor maps the neighbourhood of each centre atom to a feature vector G_i (values), and
// gives the forces of any energy E(G) through one vector-Jacobian product (VJP), or the sparse
// Jacobian dG/dr for training. Model types (atomic networks, charge networks, ...) hold a
// Descriptor and never know which one it is. Descriptors are created from model-file records
// by `make_descriptor`, which dispatches on the record `descriptor.type` through the registry
// (src/descriptors/list.def): adding a descriptor is one folder under src/descriptors/ plus one
// line there (docs/architecture.md).
//
// Units: Angstrom for lengths; features are whatever the descriptor defines (dimensionless for
// ACSF); dE/dG in eV per feature unit; forces eV/Angstrom; virial eV.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "atomforge/model_file.hpp"
#include "atomforge/neighbor_list.hpp"

namespace atomforge {

/// Sparse Jacobian dG/dr. For centre c the entries entry_offsets[c] .. entry_offsets[c+1]
/// list the centre itself (first) and then each neighbour within the centre element's cutoff:
///   position[e]      index into the neighbour view's positions (may be a ghost/image)
///   displacement[e]  (3) r_position - r_centre in Angstrom (zero for the self entry)
///   values[e]        (n_features, 3) dG[c, f] / dr_position (1/Angstrom), row-major
/// The same position may appear in several entries (periodic images); sum them. Forces for
/// an energy E(G): F_m = -sum_{e: position[e] = m} sum_f dE/dG[c(e), f] values[e, f, :], and
/// the virial W = -sum_e displacement[e] (x) (sum_f dE/dG[c(e), f] values[e, f, :]).
struct DescriptorJacobian {
  int64_t n_features = 0;
  std::vector<int64_t> entry_offsets;  // (n_centres + 1)
  std::vector<int64_t> position;       // (n_entries)
  std::vector<double> displacement;    // (n_entries, 3)
  std::vector<double> values;          // (n_entries, n_features, 3)
};

/// The model side of Descriptor::evaluate: turns one centre's feature row into dE/dG.
class CentreModel {
 public:
  virtual ~CentreModel() = default;
  /// Called once before any centre with the number of threads that will call centre().
  virtual void begin(int n_threads) = 0;
  /// Number of energies whose gradients are wanted (e.g. one per committee member for the force
  /// deviation); 1 for the usual single energy.
  virtual int n_outputs() const { return 1; }
  /// Centre c (element e) with descriptor row G (n_features): write dE_o/dG for every output o
  /// into dE_dG (n_outputs, n_features), zeroed by the caller (leave it zero when only energies
  /// are wanted). Called from inside the descriptor's parallel region by thread tid in
  /// [0, n_threads); different centres run concurrently. Must not throw: record problems and
  /// report them after evaluate().
  virtual void centre(int tid, int64_t c, int32_t e, const double* G, double* dE_dG) = 0;
  /// Centres per centres() call that the model can use at once (1: it only has centre()).
  /// Descriptors may hand over blocks of up to this many centres of one element; the results
  /// must not depend on how centres are blocked.
  virtual int block_size() const { return 1; }
  /// centre() for n centres c[0..n) of one element e: rows G[q] (n_features) and dE_dG[q]
  /// ((n_outputs, n_features), zeroed by the caller). The default calls centre() for each.
  virtual void centres(int tid, int n, const int64_t* c, int32_t e, const double* const* G, double* const* dE_dG) {
    for (int q = 0; q < n; ++q) centre(tid, c[q], e, G[q], dE_dG[q]);
  }
};

/// The most centres a descriptor hands to CentreModel::centres() at once (larger block_size()
/// requests are capped).
constexpr int kMaxCentreBlock = 16;

/// The order in which a descriptor's fused pass visits centres for a model of block_size() B > 1:
/// the centres of each element in index order, cut into blocks of at most B centres of one element.
/// order (n_centres): centre indices; starts (n_blocks + 1): offsets of the blocks in order.
struct CentreBlocks {
  std::vector<int64_t> order, starts;
};
CentreBlocks centre_blocks(const NeighborView& nl, int32_t n_elements, int block_size);

class Descriptor {
 public:
  virtual ~Descriptor() = default;

  /// The registry key written to `descriptor.type` ("acsf", "gmp", ...).
  virtual std::string type() const = 0;
  /// Number of elements (species indices 0 .. n_elements-1 of the neighbour view).
  virtual int32_t n_elements() const = 0;
  /// Columns of G: the feature count of the widest element (rows of others are zero-padded).
  virtual int64_t n_features() const = 0;
  /// Feature count of centre atoms of `element`; throws InvalidInput outside 0..n_elements-1.
  virtual int64_t n_features(int32_t element) const = 0;
  /// Interaction range in Angstrom: neighbour lists must hold all pairs closer than this.
  virtual double cutoff() const = 0;
  /// Short human-readable label of each feature of `element` (e.g. "G2[H] eta=0.5 r_s=0").
  virtual std::vector<std::string> feature_labels(int32_t element) const = 0;

  /// G (n_centres, n_features), row-major, overwritten. Throws InvalidInput on a bad list
  /// (species out of range, non-finite positions; AtomsTooClose for a pair closer than
  /// nl.min_distance: validate_neighbor_view).
  virtual void compute(const NeighborView& nl, double* G, int n_threads = 0) const = 0;

  /// Vector-Jacobian product for an energy that depends on G, given dE_dG (n_centres,
  /// n_features): forces = -dE/dr for every position (n_total, 3) (ghosts included: fold them
  /// onto owners or let the MD engine reverse-communicate them) and the virial (3, 3)
  /// W = -sum_pairs r_ij (x) dE/dr_ij. Both are overwritten. per_atom_virial, if not null,
  /// (n_total, 9) receives the pair virial split evenly between the two atoms of each pair (the
  /// LAMMPS convention for compute stress/atom). Results are identical for every thread count.
  virtual void vjp(const NeighborView& nl, const double* dE_dG, double* forces, double* virial,
                   double* per_atom_virial = nullptr, int n_threads = 0) const = 0;

  /// G and its sparse Jacobian (layout above). G may be null.
  virtual DescriptorJacobian jacobian(const NeighborView& nl, double* G, int n_threads = 0) const = 0;

  /// One pass per centre: its features G_i, the model's dE/dG_i (CentreModel::centre), and, when
  /// forces is not null, the vector-Jacobian product of that centre while its neighbour data is
  /// still in cache (no second neighbour gather). For K = model.n_outputs(): forces (K, n_total,
  /// 3) and virial (K, 9) as vjp() for each output; per_atom_virial (n_total, 9) for output 0
  /// (virial and per_atom_virial may be null). The base implementation runs compute(), the model
  /// over all centres, then vjp(); descriptor types override it with a fused pass.
  virtual void evaluate(const NeighborView& nl, CentreModel& model, double* forces, double* virial,
                        double* per_atom_virial = nullptr, int n_threads = 0) const;

  /// True when this build can evaluate the descriptor on a CUDA device: the CUDA launcher runs
  /// the same single-source per-centre kernels as the CPU driver (one GPU thread per centre).
  virtual bool has_cuda() const { return false; }
  /// Default bound of the per-centre scratch of the CUDA launchers on the device (bytes): centres
  /// run in batches whose scratch fits (at least one centre per batch).
  static constexpr int64_t kCudaScratchBytes = int64_t(512) << 20;
  /// compute() on the first CUDA device (host arrays in and out; for checks against the CPU
  /// reference). Throws InvalidInput when the build or the machine has no CUDA, or when
  /// scratch_bytes is not positive.
  virtual void compute_cuda(const NeighborView& nl, double* G, int64_t scratch_bytes = kCudaScratchBytes) const;
  /// vjp() on the first CUDA device (forces (n_total, 3) and virial (9) overwritten).
  virtual void vjp_cuda(const NeighborView& nl, const double* dE_dG, double* forces, double* virial,
                        int64_t scratch_bytes = kCudaScratchBytes) const;
};

/// One registered descriptor type.
struct DescriptorType {
  const char* name;     // value of the record descriptor.type
  const char* summary;  // one line for `atomforge info` / documentation
  /// Build from the model file's `descriptor.*` records for `n_elements` species. Throws
  /// InvalidInput naming the file and record.
  std::unique_ptr<Descriptor> (*make)(const ModelFile& file, int32_t n_elements);
};

/// Every registered descriptor type, in registration order.
const std::vector<DescriptorType>& descriptor_types();

/// The descriptor a model file describes: dispatches on `descriptor.type`; the element count is
/// the length of the `species` record. Throws InvalidInput naming the file for an unknown type
/// (listing the known ones) or bad parameters.
std::unique_ptr<Descriptor> make_descriptor(const ModelFile& file);

/// Throws InvalidInput naming the first problem of a neighbour view: negative counts, null
/// arrays, a species index outside 0..n_elements-1, a non-finite position, offsets that do not
/// start at 0 or decrease, centre or neighbour indices out of range, a centre listed as its own
/// neighbour, more than kMaxNeighbors neighbours of one centre; AtomsTooClose (errors.hpp) for a listed pair closer than nl.min_distance, with the
/// two position indices. O(n_total + n_pairs). Every descriptor calls it on every view.
void validate_neighbor_view(const NeighborView& nl, int32_t n_elements);

}  // namespace atomforge
