// atomforge core: the total-charge scheme of charge models (model type "dipole"), as free
// functions so that callers which split one system over several processes (the LAMMPS compute
// atomforge/dipole under MPI) apply exactly the same arithmetic as the model itself.
//
// A charge model predicts, for each atom i and committee member m, a raw charge q~_i^m and a
// positive weight w_i^m. The total charge Q of the system is then imposed by spreading the
// excess over the atoms in proportion to the weights:
//
//     q_i^m = q~_i^m - w_i^m (sum_j q~_j^m - Q) / (sum_j w_j^m)                      (1)
//
// so that sum_i q_i^m = Q for every member by construction (to floating-point rounding, a few
// ulp of the largest |q|; no penalty term, nothing learned). The model's charges are the committee
// mean q_i = (1/M) sum_m q_i^m, whose sum is Q as well. With w = 1 this is the uniform scheme of
// M. Gastegger, J. Behler, P. Marquetand, Chem. Sci. 8, 6924 (2017), Eq. 5, also used by RuNNer's
// dipole networks; learned weights let the model put the excess where the environment can take it.
//
// The dipole about the coordinate origin is mu = sum_i q_i r_i (e * length of r). Sums over the
// whole system are additive over parts, so a distributed caller sums the per-part results of
// charge_partial_sums over its processes and passes the totals to finish_charges.
#pragma once
#include <cstdint>

namespace atomforge {

/// Layout of ModelOutput::charge_partials: for centre c and member m, entries
/// [2 * (c * M + m)] = q~ (e) and [2 * (c * M + m) + 1] = w (> 0, dimensionless).
///
/// sums (2 * M), overwritten: [2 m] = sum_c q~_c^m, [2 m + 1] = sum_c w_c^m over the n centres.
void charge_partial_sums(const double* partials, int64_t n, int M, double* sums);

/// Charges of Eq. (1), committee mean: q (n), overwritten, from the partials of n centres and
/// the sums over the whole system (from charge_partial_sums, added over all parts). `total_charge`
/// is Q in e. Throws InvalidInput when a weight sum is not positive and finite.
void finish_charges(const double* partials, int64_t n, int M, const double* sums, double total_charge, double* q);

}  // namespace atomforge
