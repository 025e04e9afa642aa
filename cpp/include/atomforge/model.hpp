// atomforge core: the interface every model type implements, and the model registry.
//
// The Python API, the ASE calculator and the LAMMPS/OpenMM adapters evaluate any model through
// this interface. Model types are created from a model file by `load_model`, which dispatches
// on the record `model_type` through the registry (src/models/list.def): adding a model type is
// one folder under src/models/ plus one line there (docs/architecture.md).
//
// Units: eV, Angstrom, e (adapters convert at their boundary, see atomforge/engine.hpp).
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "atomforge/model_file.hpp"
#include "atomforge/neighbor_list.hpp"

namespace atomforge {

/// What a model can produce (bit flags, Model::capabilities()).
enum Capability : unsigned {
  kEnergy = 1u << 0,       // energy, atomic energies, forces, virial: usable as a potential
  kCharges = 1u << 1,      // per-atom charges (e)
  kDipole = 1u << 2,       // total dipole moment (e Angstrom)
  kUncertainty = 1u << 3,  // committee spread: energy and per-atom force deviation
  kFeatureRange = 1u << 4, // stores the training range of its features: counts extrapolation
  kLongRange = 1u << 5,    // energy terms over the whole system (Ewald electrostatics): the view's
                           // centres must be every atom, and ComputeRequest::cell/pbc must be set;
                           // engine adapters refuse such models unless the engine evaluates the
                           // whole system at once (EngineModel::require, whole_system: OpenMM)
};

/// What one evaluation should produce beyond energy and forces.
struct ComputeRequest {
  bool forces = true;            // forces and virial (false: energy only, where a model can skip them)
  bool per_atom_virial = false;  // fill ModelOutput::per_atom_virial
  bool uncertainty = false;      // fill the committee outputs (models with kUncertainty)
  double total_charge = 0.0;     // e; for charge models
  int n_threads = 0;             // OpenMP threads (<= 0: OpenMP default; clamped to the machine)
  /// Angstrom: every pair of the neighbour view must be at least this far apart, else the model
  /// throws AtomsTooClose (errors.hpp) naming both atoms; models put it on the view they validate
  /// (NeighborView::min_distance). 0: only atoms at the same point are rejected.
  double min_distance = kDefaultMinDistance;
  /// Long-range models (kLongRange) only; others ignore them. cell: (3, 3) row-major lattice
  /// vectors (rows), Angstrom, or nullptr; pbc: periodicity along each lattice vector. All three
  /// periodic: Ewald sum in `cell`; none: open boundaries (molecules); mixed periodicity is refused.
  const double* cell = nullptr;
  bool pbc[3] = {false, false, false};
};

/// Outputs of one evaluation. Sizes: per-centre arrays (n_centres); per-position arrays
/// (n_total) include ghosts/images, to be folded or reverse-communicated by the caller.
/// Optional outputs stay empty when the model does not produce them or they were not requested;
/// new model types fill them without changing any signature.
struct ModelOutput {
  double energy = 0.0;                     // eV
  std::vector<double> atomic_energies;     // (n_centres) eV
  std::vector<double> forces;              // (n_total, 3) eV/Angstrom, -dE/dr
  double virial[9] = {0};                  // eV, W = -sum_pairs r_ij (x) dE/dr_ij
  std::vector<double> per_atom_virial;     // (n_total, 9) eV, when requested
  // committees
  std::vector<double> committee_energies;  // (committee size) total energy of each member, eV
  double energy_uncertainty = 0.0;         // eV, standard deviation over the committee
  std::vector<double> member_forces;       // (committee size, n_total, 3) eV/Angstrom, when
                                           // uncertainty was requested (fold before comparing)
  std::vector<double> forces_uncertainty;  // (n_total) eV/Angstrom, per-atom force deviation
                                           // (filled by adapters after folding member_forces)
  std::vector<double> atomic_energy_uncertainty;  // (n_centres) eV
  double energy_uncertainty_scale = 1.0;   // calibration factor already in energy_uncertainty
                                           // (record uncertainty.energy_calibration; 1 if absent)
  double forces_uncertainty_scale = 1.0;   // calibration factor adapters apply to the force
                                           // deviation computed from folded member_forces
                                           // (record uncertainty.forces_calibration; 1 if absent)
  // extrapolation (models with kFeatureRange; n2p2-style counts, Behler, IJQC 115, 1032 (2015)):
  // descriptor features of this evaluation outside the training range [min, max] stored in the
  // model file. All zero / -1 when the model stores no range.
  int64_t extrapolation_features = 0;      // (centre, feature) pairs outside the range
  int64_t extrapolation_centres = 0;       // centres with at least one such feature
  int64_t extrapolation_worst_centre = -1; // centre index (into nl centres) of the largest excess
  int32_t extrapolation_worst_feature = -1;  // its feature index within its element's features
  double extrapolation_worst_excess = 0.0;   // distance outside [min, max] in units of (max - min)
  // charge models
  std::vector<double> charges;             // (n_centres) e
  std::vector<double> dipole;              // (3) e Angstrom, about the coordinate origin
  std::vector<double> charge_partials;     // (n_centres, M, 2) raw charge and weight per committee
                                           // member, for callers that split a system over
                                           // processes (atomforge/charges.hpp)
};

class Model {
 public:
  virtual ~Model() = default;
  /// The registry key written to `model_type` ("bpnn", "sgdml", ...).
  virtual std::string model_type() const = 0;
  /// Atomic numbers of the model's elements; NeighborView::species holds indices into this.
  virtual const std::vector<int>& species() const = 0;
  /// Interaction range in Angstrom (neighbour lists must hold all pairs within it).
  virtual double cutoff() const = 0;
  /// Capability flags (kEnergy, ...).
  virtual unsigned capabilities() const { return kEnergy; }
  /// Number of committee members (1 for a single model).
  virtual int committee_size() const { return 1; }
  /// True for global models of one molecule (sGDML): the centres must come in the training
  /// molecule's atom order and cover all its atoms, so engine adapters sort them by atom ID.
  virtual bool requires_atom_order() const { return false; }
  /// Key/value lines describing the model (for `atomforge inspect` and logs).
  virtual std::vector<std::pair<std::string, std::string>> describe() const { return {}; }
  /// Evaluate. Throws InvalidInput on bad input (naming the atom or the problem).
  virtual void compute(const NeighborView& nl, const ComputeRequest& request, ModelOutput& out) const = 0;
};

/// One registered model type.
struct ModelType {
  const char* name;     // value of the record model_type
  const char* summary;  // one line for `atomforge info` / documentation
  /// Build from a parsed model file. Throws InvalidInput naming the file and record.
  std::unique_ptr<Model> (*make)(const ModelFile& file);
};

/// Every registered model type, in registration order.
const std::vector<ModelType>& model_types();

/// Build the model a model file describes (dispatching on its model_type through the
/// registry). Throws InvalidInput naming the file and the problem (an unknown model_type lists
/// the known ones).
std::unique_ptr<Model> load_model(const ModelFile& file);
std::unique_ptr<Model> load_model(const std::string& path);

}  // namespace atomforge
