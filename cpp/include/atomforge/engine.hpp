// atomforge core: the one engine-adapter layer that the LAMMPS and OpenMM plugins (and the
// Python API) call: model bytes in, element mapping, unit conversion from the one table of
// constants (atomforge/units.hpp), outputs out in the engine's units. The plugins themselves
// only translate their engine's data structures (neighbour lists, particles, communication).
#pragma once
#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "atomforge/errors.hpp"
#include "atomforge/model.hpp"
#include "atomforge/neighbor_list.hpp"

namespace atomforge {

/// The units an engine works in. Charges are always in e.
struct EngineUnits {
  std::string name;
  double length_in_angstrom = 1.0;  // one engine length unit, in Angstrom
  double energy_in_ev = 1.0;        // one engine energy unit, in eV
};

/// OpenMP threads this process may use (the processors OpenMP sees, at least 1): the core clamps
/// every thread request (ComputeRequest::n_threads, OMP_NUM_THREADS) to it; engines compare
/// their thread setting with it to warn the user.
int available_threads();

/// Units by name:
///   "metal"  LAMMPS units metal:  Angstrom, eV
///   "real"   LAMMPS units real:   Angstrom, kcal/mol
///   "openmm" OpenMM:              nm, kJ/mol
///   "ev_angstrom"                 Angstrom, eV (the core's own units; Python, ASE)
/// Throws InvalidInput for any other name, listing these.
EngineUnits engine_units(const std::string& name);

/// One evaluation in the engine's units. Sizes as ModelOutput; optional fields stay empty.
struct EngineOutput {
  double energy = 0.0;                     // energy unit
  std::vector<double> atomic_energies;     // (n_centres) energy unit
  std::vector<double> forces;              // (n_total, 3) energy / length
  double virial[9] = {0};                  // energy unit
  std::vector<double> per_atom_virial;     // (n_total, 9) energy unit
  double energy_uncertainty = 0.0;         // energy unit (calibrated committee spread)
  std::vector<double> forces_uncertainty;  // (n_total) energy / length; compute_positions fills it
                                           // (n atoms) from folded member forces (calibrated)
  std::vector<double> committee_energies;  // (M) energy unit
  std::vector<double> member_forces;       // (M, n_total, 3) energy / length, when uncertainty was
                                           // requested of a committee (compute(): not folded)
  double energy_uncertainty_scale = 1.0;   // the model's energy calibration factor (in energy_uncertainty)
  double forces_uncertainty_scale = 1.0;   // the model's force calibration factor (multiply the
                                           // deviation of folded member_forces by it)
  int64_t extrapolation_features = 0;      // features outside the training range (ModelOutput)
  int64_t extrapolation_centres = 0;
  int64_t extrapolation_worst_centre = -1;
  int32_t extrapolation_worst_feature = -1;
  double extrapolation_worst_excess = 0.0;
  std::vector<double> charges;             // (n_centres) e
  std::vector<double> dipole;              // (3) e * length unit
  std::vector<double> charge_partials;     // (n_centres, M, 2) charge models: raw charges (e) and
                                           // weights, for the total-charge scheme across processes
                                           // (atomforge/charges.hpp)
};

class EngineModel {
 public:
  /// Parse and build a model from the bytes of a model file; `where` names the source in
  /// messages. Throws InvalidInput (bad file, unsupported model type, ...).
  EngineModel(const std::string& bytes, const std::string& where, const EngineUnits& units);
  ~EngineModel();

  const Model& model() const { return *model_; }
  const std::string& where() const { return where_; }
  const EngineUnits& units() const { return units_; }
  void set_units(const EngineUnits& units) { units_ = units; }
  /// The model's cutoff in engine length units.
  double cutoff() const;
  /// The model's element symbols, space-separated ("C H O").
  std::string element_list() const;

  /// Model element index of a chemical symbol ("O"), or -1 for "NULL" (atoms the model
  /// ignores). Throws InvalidInput naming `what` (e.g. "atom type 2") for an unknown symbol or an
  /// element the model does not cover (listing the model's elements).
  int32_t species_of_symbol(const std::string& symbol, const std::string& what) const;
  /// Model element index of an atomic number; throws InvalidInput naming `what` when the model
  /// does not cover it.
  int32_t species_of_number(int z, const std::string& what) const;
  /// Throws InvalidInput when the model lacks a capability an engine feature needs, naming the
  /// feature and the model type (e.g. a dipole-only model used as a pair style). Long-range models
  /// (kLongRange) are refused unless `whole_system` is true: the engine opts in by promising that
  /// it evaluates every atom of the system in one call (compute_positions) and passes the cell
  /// and periodicity (OpenMM's Force does; LAMMPS's pair style does by gathering every atom on every
  /// rank; the LAMMPS computes, which see one rank's neighbour list, do not).
  void require(unsigned capability, const std::string& feature, bool whole_system = false) const;

  /// Evaluate on a neighbour view with positions in engine length units (LAMMPS full lists).
  /// Outputs are per position (ghosts included), in engine units. request.min_distance is in
  /// engine length units too; a pair closer than it throws AtomsTooClose (errors.hpp) with the
  /// two position indices of the view, for the engine to name the atoms (e.g. LAMMPS atom IDs;
  /// describe_too_close).
  void compute(const NeighborView& nl, const ComputeRequest& request, EngineOutput& out) const;

  /// Evaluate n atoms at `positions` (n, 3, engine length units) with the core's own neighbour
  /// list: cell (3, 3) rows in engine length units (null for none), pbc per lattice vector,
  /// species[i] model element index. Forces (n, 3) are folded onto the atoms; per-atom outputs
  /// have n rows. With request.uncertainty on a committee, member_forces (M, n, 3) are folded too
  /// and forces_uncertainty (n) is their deviation times the calibration factor
  /// (atomforge/uncertainty.hpp). AtomsTooClose names atoms by their index 0..n-1. Used by OpenMM,
  /// by LAMMPS for long-range models (all atoms gathered on every rank) and by tests. Long-range models (kLongRange) get the cell (converted to Angstrom) and pbc as
  /// ComputeRequest::cell/pbc: all three periodic is an Ewald sum in the cell, none is open
  /// boundaries; the n atoms must then be the whole system.
  void compute_positions(const double* positions, int64_t n, const double* cell, const std::array<bool, 3>& pbc,
                         const int32_t* species, const ComputeRequest& request, EngineOutput& out) const;

  /// The message of `e` with the atoms named the engine's way (AtomsTooClose::describe) and
  /// distances in engine length units (nm for OpenMM).
  std::string describe_too_close(const AtomsTooClose& e, const std::string& noun, const std::string& label_i,
                                 const std::string& label_j, const std::string& hint = "") const;

 private:
  ComputeRequest in_angstrom(const ComputeRequest& request) const;
  void convert(ModelOutput& in, EngineOutput& out) const;
  std::unique_ptr<Model> model_;
  std::string where_;
  EngineUnits units_;
  mutable std::vector<double> scaled_;  // positions in Angstrom when the engine's unit differs
};

}  // namespace atomforge
