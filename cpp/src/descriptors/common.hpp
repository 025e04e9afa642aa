// Pieces every descriptor's CPU driver shares (internal header).
#pragma once
#include <cstdint>

#include "atomforge/descriptor.hpp"
#include "atomforge/neighbor_list.hpp"

namespace atomforge {

/// Largest element count a descriptor accepts (the periodic table).
constexpr int32_t kMaxElements = 118;
/// Largest cutoff radius (Angstrom) a descriptor accepts. Local descriptors of the field use
/// 4-12 A; long-range physics belongs in explicit electrostatics, not in a 100 A neighbour list
/// whose cost grows with r_c^3.
constexpr double kMaxCutoff = 25.0;

/// The largest neighbour count of any centre of the view (0 for no centres): what the per-thread
/// workspaces of a driver are sized for.
int64_t max_neighbours(const NeighborView& nl);

/// Throws InvalidInput: position p has a neighbour at distance zero.
[[noreturn]] void throw_coincident(int64_t p);

/// Throws InvalidInput naming the first non-finite dE/dG entry (atom, feature).
void check_finite_weights(const double* dE_dG, int64_t n_centres, int64_t n_features);

/// A Jacobian laid out for the view (descriptor.hpp): for centre c, 1 + the neighbours with
/// 0 < r < rc_by_element[element of c]; position / displacement / values allocated, values zeroed
/// (the kernels fill them).
DescriptorJacobian allocate_jacobian(const NeighborView& nl, int64_t n_features, const double* rc_by_element);

/// Deterministic serial scatter of per-pair gradients g_q = dE_i/dd_q (n_pairs, 3), stored at
/// the CSR slots of the view (d_q = r_j - r_i), into forces (n_total, 3), the virial (9) and,
/// if not null, the per-atom virial (n_total, 9), split evenly between the two atoms. All three
/// are overwritten. O(n_pairs), independent of the thread count.
void scatter_pair_gradients(const NeighborView& nl, const double* pair_grad, double* forces, double* virial,
                            double* per_atom_virial);

}  // namespace atomforge
