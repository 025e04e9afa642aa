// atomforge core: neighbour lists.
//
// Every descriptor and force routine of the core takes its neighbours in one CSR form,
// `NeighborView`, so that the core's own cell lists, LAMMPS's full lists (local + ghost atoms)
// and OpenMM's particle positions all feed the same kernels.
//
// Units: lengths in Angstrom (the core never converts units; engine adapters do).
#pragma once
#include <array>
#include <cstdint>
#include <vector>

#include "atomforge/hd.hpp"

namespace atomforge {

/// Default minimum distance between two atoms, Angstrom. Pairs closer than this are rejected
/// (AtomsTooClose, errors.hpp) by build_neighbor_list and validate_neighbor_view: they are atoms
/// on top of each other (a duplicated atom, an atom on a periodic image of another), for which
/// every potential gives meaningless energies and forces of 1e10 eV/A and more. The shortest
/// bond in nature (H2, 0.74 A) is far above it; 0 turns the check off except for atoms at
/// exactly the same point. Configurable per call (ComputeRequest::min_distance, Python
/// `min_distance=`, `pair_style atomforge min_distance`, AtomForgeForce::setMinimumDistance).
constexpr double kDefaultMinDistance = 0.1;

/// Memory bounds of the core's own neighbour lists (build_neighbor_list), checked before the
/// storage is allocated: at most kMaxImagePositions periodic-image positions (about 64 bytes
/// each) and at most kMaxNeighbors neighbours of any atom (8 bytes each in the list, a few
/// hundred in the descriptors). Dense matter has a few thousand neighbours within 12 A and about
/// 20,000 within the 25 A maximum cutoff; more means a cell far smaller than the cutoff (one atom
/// in a 0.1 A box) or atoms packed far denser than any material.
constexpr int64_t kMaxImagePositions = 10000000;
constexpr int64_t kMaxNeighbors = 100000;

/// Non-owning CSR view of a neighbour list.
///
/// positions   (n_total, 3) row-major, Angstrom: local atoms and any image/ghost atoms.
/// species     (n_total)    element index (0 .. n_elements-1) of every position.
/// centres     (n_centres)  index into positions of each centre atom, or nullptr for
///                          centres 0 .. n_centres-1.
/// offsets     (n_centres + 1) CSR row pointer: neighbours of centre c are
///                          neighbors[offsets[c] .. offsets[c+1]).
/// neighbors   (offsets[n_centres]) indices into positions. A neighbour list may hold atoms
///                          beyond a descriptor's cutoff: kernels test the distance themselves.
struct NeighborView {
  const double* positions = nullptr;
  const int32_t* species = nullptr;
  int64_t n_total = 0;
  const int64_t* centres = nullptr;
  int64_t n_centres = 0;
  const int64_t* offsets = nullptr;
  const int64_t* neighbors = nullptr;
  /// Pairs of the list closer than this (Angstrom) are rejected by validate_neighbor_view
  /// (AtomsTooClose); models set it from ComputeRequest::min_distance.
  double min_distance = kDefaultMinDistance;

  AF_HD int64_t centre(int64_t c) const { return centres ? centres[c] : c; }
};

/// A neighbour list built by the core (owning storage).
///
/// Positions 0..n_local-1 are the input atoms (wrapped into the cell along periodic
/// directions); positions n_local.. are periodic images ("ghosts"). `owner[p]` is the input atom
/// a position belongs to, and `shift[p]` the integer lattice translation so that
/// positions[p] = wrapped[owner[p]] + shift[p] . cell. Forces on ghosts fold back to their owner.
struct NeighborList {
  int64_t n_local = 0;
  double cutoff = 0.0;
  double min_distance = kDefaultMinDistance;  // the threshold the list was checked with
  std::vector<double> positions;   // (n_total, 3)
  std::vector<int64_t> owner;      // (n_total)
  std::vector<int32_t> shift;      // (n_total, 3) integer lattice translations
  std::vector<int32_t> species;    // (n_total), filled by the caller via set_species
  std::vector<int64_t> offsets;    // (n_local + 1)
  std::vector<int64_t> neighbors;  // (n_pairs)

  int64_t n_total() const { return static_cast<int64_t>(owner.size()); }
  int64_t n_pairs() const { return static_cast<int64_t>(neighbors.size()); }

  /// Assign element indices to the n_local atoms; ghosts take their owner's.
  /// Throws InvalidInput if `local_species` has a negative entry.
  void set_species(const int32_t* local_species);

  /// Non-owning view for the kernels (centres are the local atoms).
  NeighborView view() const;

  /// Fold per-position vectors (n_total, 3) onto the local atoms (n_local, 3).
  std::vector<double> fold(const double* per_position) const;
};

/// Build a full neighbour list (each pair stored for both atoms) with an O(N) cell-list search.
///
/// positions (n, 3) Angstrom; cell (3, 3) row-major lattice vectors a, b, c (rows), Angstrom;
/// pbc[d] periodicity along lattice vector d; cutoff r_c > 0, Angstrom.
/// Along periodic directions any cell shape (general triclinic) is allowed, and the cutoff may
/// exceed half (or several times) the cell: every image within r_c is listed, including images
/// of the centre atom itself. Along non-periodic directions the cell is ignored.
/// Neighbours are pairs with 0 < |r_j - r_i| < r_c. min_distance (Angstrom, >= 0): every pair,
/// periodic images included, must be at least this far apart. n_threads: OpenMP threads (<= 0:
/// the OpenMP default), clamped to the machine.
///
/// Throws AtomsTooClose (an InvalidInput) for two atoms closer than min_distance or at the same
/// point (both atoms, the image shift and the distance). Throws InvalidInput for: n < 0,
/// non-finite positions (names the atom), a non-positive or non-finite cutoff, a negative or
/// non-finite min_distance, a degenerate cell along periodic directions (zero volume /
/// zero-length vector), and lists beyond the memory bounds above (more than kMaxImagePositions
/// image positions, counted exactly before they are stored; an atom with more than
/// kMaxNeighbors neighbours, counted before the list is stored).
NeighborList build_neighbor_list(const double* positions, int64_t n, const double* cell,
                                 const std::array<bool, 3>& pbc, double cutoff,
                                 double min_distance = kDefaultMinDistance, int n_threads = 0);

}  // namespace atomforge
