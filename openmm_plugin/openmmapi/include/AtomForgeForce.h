// AtomForgeForce: an OpenMM Force that evaluates an atomforge model (any model type the core
// knows) on a set of particles. OpenMM units at the interface (nm, kJ/mol); the model's eV and
// Angstrom are converted by the core's engine-adapter layer (atomforge/engine.hpp, "openmm" units)
// from the core's one table of constants.
#pragma once
#include <string>
#include <vector>

#include "openmm/Context.h"
#include "openmm/Force.h"
#include "AtomForgeExport.h"

namespace AtomForgeOpenMM {

/// Committee uncertainty of one state (AtomForgeForce::getUncertainty), OpenMM units.
struct AtomForgeUncertainty {
  double energyUncertainty = 0.0;          // kJ/mol: calibrated standard deviation of the members' energies
  std::vector<double> forcesUncertainty;   // kJ/mol/nm per covered particle (order of getParticles(), or
                                           // all particles): calibrated eps_i = c_F sqrt(mean_m |F_i^m - <F_i>|^2)
  double maxForcesUncertainty = 0.0;       // kJ/mol/nm, max_i (DeePMD's max_devi_f)
  double meanForcesUncertainty = 0.0;      // kJ/mol/nm, mean over the covered particles
  long long extrapolationFeatures = 0;     // descriptor feature values outside the training range
  long long extrapolationAtoms = 0;        // covered particles with at least one
};

/// Extrapolation counts of the force evaluations since the last reset (getExtrapolationCounts).
struct AtomForgeExtrapolation {
  long long evaluations = 0;               // force evaluations
  long long extrapolating = 0;             // of which with features outside the training range
  long long features = 0;                  // feature values outside the range, summed
  long long atoms = 0;                     // particles with such features, summed
};

class ATOMFORGE_OPENMM_EXPORT AtomForgeForce : public OpenMM::Force {
 public:
  /// model: the path of an atomforge model file (.afm), or the file's bytes themselves
  /// (recognised by the model-file magic "AFMODEL\0", which no path can contain). The bytes are
  /// kept inside the Force (and in serialized Systems), so the file is read only here.
  /// atomicNumbers: the element of each covered particle; particles: the System indices the
  /// model covers (empty: all particles, in order, and then atomicNumbers has one entry per
  /// particle of the System). periodic: use the System's periodic box (triclinic allowed).
  /// Throws OpenMMException if the model is missing or corrupt, the two lists differ in length,
  /// a particle index is negative or repeated, or an element is not one of the model's.
  explicit AtomForgeForce(const std::string& model, const std::vector<int>& atomicNumbers = std::vector<int>(),
                          const std::vector<int>& particles = std::vector<int>(), bool periodic = false);

  /// The model file's bytes (embedded in the Force).
  const std::string& getModelBytes() const { return modelBytes; }
  /// Where the model came from (its path, or "<bytes>"); informational only.
  const std::string& getModelSource() const { return modelSource; }
  /// Atomic numbers of the elements the model covers; its cutoff in nm; its type.
  const std::vector<int>& getModelElements() const { return modelElements; }
  double getCutoff() const { return cutoffNm; }
  const std::string& getModelType() const { return modelType; }

  /// Covered particles (empty: all) and their atomic numbers.
  const std::vector<int>& getParticles() const { return particles; }
  const std::vector<int>& getAtomicNumbers() const { return atomicNumbers; }
  void setParticles(const std::vector<int>& atomicNumbers, const std::vector<int>& particles = std::vector<int>());

  bool usesPeriodicBoundaryConditions() const override { return periodic; }
  void setUsesPeriodicBoundaryConditions(bool p) { periodic = p; }

  /// Committee uncertainty of the Context's current positions (and box): one extra evaluation of
  /// the model with per-member forces, folded over periodic images (OpenMM units). The Force
  /// must belong to the Context's System and the model must be a committee. Throws
  /// OpenMMException otherwise.
  AtomForgeUncertainty getUncertainty(OpenMM::Context& context) const;
  /// Extrapolation counts of this Force's evaluations in `context` since the previous call with
  /// reset (or since the Context was created): models that store the training range of their
  /// features count the values outside it at every force evaluation. All zero for models
  /// without a stored range.
  AtomForgeExtrapolation getExtrapolationCounts(OpenMM::Context& context, bool reset = true) const;
  /// Minimum distance between two covered particles, nm (default 0.01 nm = 0.1 A, the core's
  /// kDefaultMinDistance): closer pairs, periodic images included, make the evaluation throw an
  /// OpenMMException naming both particle indices (particles on top of each other give
  /// meaningless forces of 1e10 kJ/mol/nm and more). 0: only coincident particles are refused.
  /// Throws OpenMMException for a negative or non-finite value.
  double getMinimumDistance() const { return minDistanceNm; }
  void setMinimumDistance(double distanceNm);
  /// The default minimum distance, nm.
  static double defaultMinimumDistance();

  /// Total charge of the covered particles in elementary charges (default 0), for models with
  /// network charges (pinn: the charges are shifted so that they sum to exactly this value; other
  /// model types ignore it). Throws OpenMMException for a non-finite value.
  double getTotalCharge() const { return totalCharge; }
  void setTotalCharge(double charge);

  /// Nothing of this Force can change in a live Context (the model, particles and elements are
  /// fixed when the Context is created): after changing them, call Context.reinitialize().
  /// Positions and box vectors are read at every evaluation, as for any Force.

 protected:
  OpenMM::ForceImpl* createImpl() const override;

 private:
  std::string modelBytes, modelSource, modelType;
  std::vector<int> modelElements, particles, atomicNumbers;
  double cutoffNm = 0.0;
  double minDistanceNm;
  double totalCharge = 0.0;  // e
  bool periodic = false;
};

}  // namespace AtomForgeOpenMM
