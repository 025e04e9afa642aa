// Electrostatics of point or Gaussian-smeared atomic charges: Ewald summation for periodic cells
// (any triclinic shape) and a direct sum for molecules (open boundaries). Internal header: the
// first piece of the physics-embedded model type (issue 14); charge models and the bindings use it.
//
// Units: positions and cell in Angstrom, charges in e, widths sigma in Angstrom, energies in eV,
// forces in eV/Angstrom, potentials in eV/e (volts); the Coulomb constant is
// units::kCoulombInEVAngstrom (CODATA 2018).
//
// Charge model. Atom i carries the charge q_i spread as a normalised Gaussian of width sigma_i
// (rho_i(r) = q_i (2 pi sigma_i^2)^{-3/2} exp(-r^2 / (2 sigma_i^2)), PhysNet: O. T. Unke,
// M. Meuwly, JCTC 15, 3678 (2019); 4G-HDNNP: T. W. Ko et al., Nat. Commun. 12, 398 (2021), Eq. 5);
// sigma_i = 0 is a point charge. Two such charges interact by
//
//     phi_ij(r) = erf(r / gamma_ij) / r,   gamma_ij = sqrt(2 (sigma_i^2 + sigma_j^2))        (1)
//
// (1 / r for two point charges). The energy is
//
//     E = (k_e / 2) sum_n sum_{i,j}' q_i q_j phi_ij(|r_j + n - r_i|)                         (2)
//
// over lattice translations n (only n = 0 for molecules), the prime dropping i = j at n = 0: the
// self-energy of each Gaussian, k_e q_i^2 / (2 sqrt(pi) sigma_i), is not included (it is infinite
// for point charges and independent of the positions; a model adds it if it wants it).
//
// Periodic cells (E. Ewald, Ann. Phys. 369, 253 (1921); the form of e.g. Frenkel & Smit,
// "Understanding Molecular Simulation", 2nd ed., Sec. 12.1), with splitting parameter alpha:
//
//   E_real  = (k_e / 2) sum_n sum_{i,j}' q_i q_j [erfc(alpha r) - erfc(r / gamma_ij)] / r
//   E_recip = (2 pi k_e / V) sum_{k != 0} exp(-k^2 / (4 alpha^2)) / k^2 |S(k)|^2,
//             S(k) = sum_j q_j exp(i k . r_j),  k = 2 pi (h b_1 + k b_2 + l b_3)
//   E_self  = -k_e (alpha / sqrt(pi)) sum_i q_i^2
//   E_bg    = -k_e (pi / (2 V alpha^2)) Q^2 + k_e (2 pi / V) Q sum_i q_i sigma_i^2,   Q = sum_i q_i
//
// The smearing enters only the short-ranged real-space term (erf(r/g) - erf(alpha r) =
// erfc(alpha r) - erfc(r/g)), so the reciprocal sum is the point-charge one. Boundary condition:
// "tin foil" (conducting surroundings; no surface dipole term), the standard Ewald result. Net
// charge: a cell with Q != 0 is computed with a uniform neutralising background (E_bg): the first
// term is the background of the point-charge split (e.g. Hub, de Groot, Grubmueller, van der
// Spoel, JCTC 10, 381 (2014), Eq. 5), the second removes the k = 0 component of the short-ranged
// smearing correction (int erfc(r/g)/r d^3r = pi g^2), so that E does not depend on alpha for
// charged cells either. Both vanish for neutral cells.
//
// Outputs: E; forces F_i = -dE/dr_i; the virial W = -dE/d(strain) (3x3, symmetric, eV; the sign of
// ModelOutput::virial: W = -sum_pairs r_ij (x) dE/dr_ij, with the reciprocal-space part
// W_k = E_k [delta - 2 (1 + k^2/(4 alpha^2)) k k^T / k^2] and W_bg = E_bg * delta, since
// E_bg ~ 1/V); and the electrostatic potential at each atom phi_i = dE/dq_i (eV/e, widths fixed;
// E = (1/2) sum_i q_i phi_i exactly), which charge-model forces need (dE/dr = dE/dq dq/dr).
//
// Error control (J. Kolafa, J. W. Perram, Mol. Simul. 9, 351 (1992)): the real-space truncation
// error is governed by exp(-alpha^2 r_c^2) and the reciprocal one by exp(-k_c^2 / (4 alpha^2)),
// each times a slowly varying prefactor (for the real-space energy k_e sum_i q_i^2
// (r_c / (2 V))^{1/2} / (alpha r_c)^2). For a requested accuracy eps (the target relative error
// of the energy) the core solves exp(-s^2) / s^2 = eps / kEwaldErrorMargin for s and sets
//
//     alpha r_c = s,   k_c / (2 alpha) = s,   r_c >= s gamma_max (smearing term: erfc(s) < eps)
//
// The margin (100) covers the prefactors, which Kolafa and Perram derive for uncorrelated charges:
// in ordered crystals the structure factors add coherently, and without the margin the measured
// relative energy errors reached 18 eps (rock salt, 216 ions); with it they stay below eps in
// every case measured (tests/test_electrostatics.py, docs/electrostatics.md).
// and alpha, when not given, minimises the operation count N (rho 4 pi r_c^3 / 3) c_r +
// N N_k c_k with N_k = k_c^3 V / (12 pi^2) half-space vectors (J. W. Perram, H. G. Petersen,
// S. W. de Leeuw, Mol. Phys. 65, 875 (1988)): alpha = (2 pi^3 w N / V^2)^{1/6}, w = c_r / c_k
// = kEwaldCostRatio measured on this implementation. docs/electrostatics.md tabulates the
// measured errors and costs.
#pragma once
#include <cstdint>
#include <vector>

#include "atomforge/neighbor_list.hpp"

namespace atomforge {

/// Requested accuracies outside [kEwaldMinAccuracy, kEwaldMaxAccuracy] are refused.
constexpr double kEwaldMinAccuracy = 1e-15;
constexpr double kEwaldMaxAccuracy = 1e-1;
/// Bound on the reciprocal-space tables (atoms times table rows, 16 bytes each: cos and sin of
/// m theta_d per atom and direction), checked before they are allocated; reaching it means a
/// very elongated cell at a high accuracy.
constexpr int64_t kEwaldMaxTableEntries = 50000000;
/// Factor between the requested accuracy and the Kolafa-Perram error factor exp(-s^2)/s^2 (above).
constexpr double kEwaldErrorMargin = 100.0;
/// Bound on the half-space reciprocal vectors (memory: about 80 bytes each), checked before any
/// is stored; reaching it means a very large cell at a very high accuracy (raise alpha).
constexpr int64_t kEwaldMaxKVectors = 2000000;
/// Cost of one real-space pair term over that of one (atom, k-vector) term of the reciprocal
/// sum (both passes), measured with benchmarks/bench_ewald.py (fastest alpha at 1000 and 3000
/// atoms, one thread) on this implementation; it sets the
/// automatic alpha (changes only speed, never the accuracy).
constexpr double kEwaldCostRatio = 30.0;

struct EwaldOptions {
  double accuracy = 1e-8;  // eps of the error control above, in [1e-15, 0.1]
  double alpha = 0.0;      // splitting parameter, 1/Angstrom; <= 0: chosen for speed (above)
  double min_distance = kDefaultMinDistance;  // Angstrom: closer pairs (images included) are refused
  int n_threads = 0;       // OpenMP threads, <= 0: the OpenMP default (clamped to the machine)
};

/// The parameters an Ewald sum ran with (for reports and tests).
struct EwaldParameters {
  double accuracy = 0.0;  // requested eps
  double s = 0.0;         // exp(-s^2)/s^2 = eps / kEwaldErrorMargin
  double alpha = 0.0;     // 1/Angstrom
  double r_cut = 0.0;     // Angstrom
  double k_cut = 0.0;     // 1/Angstrom
  int kmax[3] = {0, 0, 0};  // largest |h|, |k|, |l| searched
  int64_t n_kvectors = 0;   // half-space k vectors with |k| <= k_cut
};

struct ElectrostaticsResult {
  double energy = 0.0;               // eV
  std::vector<double> forces;        // (n, 3) eV/Angstrom
  std::vector<double> potential;     // (n) eV/e: dE/dq_i
  double virial[9] = {0};            // eV, row-major 3x3, W = -dE/d(strain)
  // parts of the energy (eV): open boundaries put everything in energy_real
  double energy_real = 0.0, energy_reciprocal = 0.0, energy_self = 0.0, energy_background = 0.0;
  bool periodic = false;
  EwaldParameters parameters;        // periodic only
};

/// s with exp(-s^2)/s^2 = accuracy / kEwaldErrorMargin (bisection to machine precision). Throws
/// InvalidInput for an accuracy outside [kEwaldMinAccuracy, kEwaldMaxAccuracy] or not finite.
double ewald_s(double accuracy);

/// The Ewald parameters for n atoms in `cell` (3x3 row-major lattice vectors, Angstrom) with
/// largest width sigma_max (Angstrom) under `options` (error control above). Throws InvalidInput
/// for a bad accuracy or alpha, a singular or non-finite cell, or more than kEwaldMaxKVectors.
EwaldParameters ewald_parameters(const double* cell, int64_t n, double sigma_max, const EwaldOptions& options);

/// Cost ratio w of one real-space pair term of a dense dipole-tensor build (erf, two exp, the
/// field, tensor and derivative passes) to one (atom pair, k vector) term of its reciprocal part;
/// sets dipole_ewald_alpha (speed only, never the accuracy). Chosen by timing the pinn model with
/// polarisation on the 192- and 384-atom DeePMD water boxes (w = 1, 6, 30, 150, 200, 600: 0.62,
/// 0.34, 0.24, 0.16, 0.10, 0.13 s and 2.61, -, 0.76, 0.40, 0.42, 0.52 s per evaluation, one run
/// each on a shared 2-core machine): the reciprocal tensor is summed per pair and k vector while
/// the real-space terms run once per pair, so larger real-space cutoffs pay.
constexpr double kDipoleEwaldCostRatio = 200.0;
/// Bound on the real-space image pairs (atoms x partners) of a dense dipole-tensor build.
constexpr double kDipoleEwaldMaxPairs = 2e7;

/// Splitting parameter (1/Angstrom) for the dense dipole sums of n point dipoles in `cell` at the
/// given accuracy (the induced-dipole tensor of the pinn model: both parts cost ~N^2, real space
/// N * (4 pi / 3) r_c^3 N / V pair terms and reciprocal space N^2 K with K = k_c^3 V / (12 pi^2)),
/// minimising c_r pairs + c_k N^2 K with r_c = s / alpha, k_c = 2 alpha s:
///     alpha = (kDipoleEwaldCostRatio 2 pi^3 / V^2)^(1/6),
/// raised where needed so that the real-space pairs stay below kDipoleEwaldMaxPairs. Throws
/// InvalidInput for a bad accuracy or cell.
double dipole_ewald_alpha(const double* cell, int64_t n, double accuracy);

/// The half-space reciprocal vectors k (k != 0, |k| <= p.k_cut; one of each pair +-k) of `cell`
/// (3x3 row-major lattice vectors, Angstrom) for the parameters p, as rows (kx, ky, kz) in
/// 1/Angstrom, in the order the Ewald sum uses. Throws InvalidInput for a singular cell.
std::vector<double> ewald_kvectors(const double* cell, const EwaldParameters& p);

/// Electrostatic energy, forces, virial and potentials of n charges, Eq. (2).
///
/// positions (n, 3) Angstrom, charges (n) e, sigma (n) Angstrom or nullptr (point charges);
/// cell (3, 3) row-major lattice vectors (rows), Angstrom, used only when `periodic` (all three
/// directions periodic: Ewald sum); periodic = false: open boundaries, direct O(n^2) sum of Eq. (1).
/// Mixed periodicity (slabs, wires) is not offered: the 3D Ewald sum would be wrong for it.
///
/// Threads: OpenMP over atoms and k vectors with options.n_threads; every sum is taken in a fixed
/// order, so results do not depend on the thread count.
///
/// Throws InvalidInput for n < 0, non-finite positions or charges (naming the atom), a negative
/// or non-finite sigma (naming the atom), a bad accuracy, alpha or min_distance, a singular cell,
/// memory bounds (kEwaldMaxKVectors, kEwaldMaxTableEntries, the neighbour-list bounds); AtomsTooClose for two atoms
/// (or an atom and an image) closer than options.min_distance.
ElectrostaticsResult electrostatics(const double* positions, const double* charges, const double* sigma, int64_t n,
                                    const double* cell, bool periodic, const EwaldOptions& options = {});

}  // namespace atomforge
