// atomforge core: committee uncertainty helpers shared by every adapter (Python, OpenMM, LAMMPS).
//
// A committee of M models (query by committee: J. Behler, Int. J. Quantum Chem. 115, 1032
// (2015); M. Gastegger, J. Behler, P. Marquetand, Chem. Sci. 8, 6924 (2017)) gives member forces
// F_i^m. The per-atom force deviation is DeePMD's model deviation (L. Zhang et al., Phys. Rev.
// Materials 3, 023804 (2019)):
//     eps_i = sqrt( mean_m |F_i^m - <F_i>|^2 ),   <F_i> = mean_m F_i^m,
// and max_i eps_i is DeePMD's max_devi_f. It must be computed on forces that are complete for
// atom i, i.e. after image/ghost contributions are folded onto their owners (neighbour-list
// fold, or LAMMPS reverse communication): deviations of partial forces do not add up.
#pragma once
#include <cstdint>
#include <vector>

namespace atomforge {

struct NeighborList;

/// Per-atom force deviation eps (n) from folded member forces (M, n, 3), in the forces' unit,
/// multiplied by `scale` (the model's calibration factor, ModelOutput::forces_uncertainty_scale).
/// `stride`: distance in doubles between members (>= 3 n; 3 n for a dense (M, n, 3) array).
/// M = 1 gives zeros. Throws InvalidInput for M < 1, n < 0 or stride < 3 n.
void force_deviation(const double* member_forces, int M, int64_t n, int64_t stride, double scale, double* eps);

/// Fold member forces (M, nl.n_total(), 3) onto the list's local atoms: (M, nl.n_local, 3).
std::vector<double> fold_member_forces(const NeighborList& nl, const double* member_forces, int M);

}  // namespace atomforge
