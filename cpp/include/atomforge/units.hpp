// atomforge core: the one table of physical constants and unit factors.
//
// Everything inside the core and the Python API is eV and Angstrom (forces eV/Angstrom, charges
// e, dipoles e*Angstrom). Engine adapters (LAMMPS, OpenMM) and file readers convert at their
// boundary with the factors below, and only these: Python reads the same table through
// atomforge._core (atomforge.units), so every layer uses identical numbers.
//
// Source: CODATA 2018 (E. Tiesinga et al., Rev. Mod. Phys. 93, 025010 (2021)); since the 2019 SI
// redefinition e, N_A, h and c are exact, so the eV-based factors below are exact up to
// rounding. kcal is the thermochemical calorie (4.184 J).
#pragma once

namespace atomforge {
namespace units {

// --- defining constants (exact)
constexpr double kElementaryCharge = 1.602176634e-19;   // C (= J/eV)
constexpr double kAvogadro = 6.02214076e23;              // 1/mol
constexpr double kSpeedOfLight = 299792458.0;            // m/s
constexpr double kPlanck = 6.62607015e-34;               // J s
// --- measured constants (CODATA 2018)
constexpr double kBohrInAngstrom = 0.529177210903;       // a0 in Angstrom
constexpr double kHartreeInEV = 27.211386245988;         // Eh in eV
constexpr double kBoltzmannInEVPerK = 8.617333262e-5;    // k_B in eV/K (exact: 1.380649e-23 J/K / e)

// --- derived factors: X_IN_Y = how many Y one X is
constexpr double kEVInKJPerMol = kElementaryCharge * kAvogadro / 1000.0;    // 96.48533212331002
constexpr double kEVInKcalPerMol = kEVInKJPerMol / 4.184;                   // 23.060547830619026
constexpr double kNmInAngstrom = 10.0;
constexpr double kRydbergInEV = kHartreeInEV / 2.0;
/// 1 Debye = 1e-21 / c C m; in e Angstrom: 1e-21 / c / e / 1e-10 = 0.20819433...
constexpr double kDebyeInEAngstrom = 1e-21 / kSpeedOfLight / kElementaryCharge / 1e-10;
/// 1 e*a0 in e*Angstrom (atomic unit of dipole moment)
constexpr double kEBohrInEAngstrom = kBohrInAngstrom;
/// Photon energy of 1 cm^-1 in eV: h c (100 cm/m) / e = 1.2398419843320026e-4 (exact constants)
constexpr double kWavenumberInEV = kPlanck * kSpeedOfLight * 100.0 / kElementaryCharge;

/// One named constant of the table (for bindings and documentation).
struct Constant {
  const char* name;
  double value;
  const char* meaning;
};

/// All constants above, in a fixed order (Python: atomforge._core.unit_constants()).
inline const Constant* constants(int* count) {
  static const Constant table[] = {
      {"elementary_charge_C", kElementaryCharge, "elementary charge e in C (exact)"},
      {"avogadro", kAvogadro, "Avogadro constant in 1/mol (exact)"},
      {"speed_of_light_m_s", kSpeedOfLight, "speed of light in m/s (exact)"},
      {"planck_J_s", kPlanck, "Planck constant h in J s (exact)"},
      {"bohr_in_angstrom", kBohrInAngstrom, "Bohr radius a0 in Angstrom (CODATA 2018)"},
      {"hartree_in_ev", kHartreeInEV, "Hartree energy in eV (CODATA 2018)"},
      {"rydberg_in_ev", kRydbergInEV, "Rydberg energy (Eh/2) in eV"},
      {"boltzmann_in_ev_per_k", kBoltzmannInEVPerK, "Boltzmann constant in eV/K (CODATA 2018)"},
      {"ev_in_kj_per_mol", kEVInKJPerMol, "1 eV in kJ/mol (e N_A / 1000)"},
      {"ev_in_kcal_per_mol", kEVInKcalPerMol, "1 eV in kcal/mol (thermochemical calorie)"},
      {"nm_in_angstrom", kNmInAngstrom, "1 nm in Angstrom"},
      {"debye_in_e_angstrom", kDebyeInEAngstrom, "1 Debye in e*Angstrom (1e-21/c C m)"},
      {"e_bohr_in_e_angstrom", kEBohrInEAngstrom, "1 e*a0 in e*Angstrom"},
      {"wavenumber_in_ev", kWavenumberInEV, "photon energy of 1 cm^-1 in eV (h c / e)"},
  };
  *count = static_cast<int>(sizeof(table) / sizeof(table[0]));
  return table;
}

}  // namespace units
}  // namespace atomforge
