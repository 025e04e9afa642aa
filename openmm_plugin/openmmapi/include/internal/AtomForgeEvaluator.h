// The thin part shared by the Reference and CPU kernels: gather the covered particles and hand
// them to the core's engine-adapter layer (atomforge::EngineModel with OpenMM units), which maps
// elements, converts units, builds the neighbour list and folds image forces.
#pragma once
#include <memory>
#include <vector>

#include "AtomForgeExport.h"
#include "AtomForgeForce.h"
#include "openmm/System.h"
#include "openmm/Vec3.h"

namespace atomforge {
class EngineModel;
struct ComputeRequest;
struct EngineOutput;
}

namespace AtomForgeOpenMM {

class ATOMFORGE_OPENMM_EXPORT AtomForgeEvaluator {
 public:
  /// Throws OpenMMException (bad model, index out of range, element mismatch, periodicity
  /// mismatch with the System's other forces).
  AtomForgeEvaluator(const OpenMM::System& system, const AtomForgeForce& force);
  ~AtomForgeEvaluator();
  /// positions (all particles, nm); box: 3 vectors (nm), used when periodic. Adds forces
  /// (kJ/mol/nm) to `forces` when includeForces; returns the energy in kJ/mol.
  double compute(const std::vector<OpenMM::Vec3>& positions, const OpenMM::Vec3* box,
                 std::vector<OpenMM::Vec3>& forces, bool includeForces, int nThreads) const;
  /// Committee uncertainty at these positions (throws OpenMMException for a non-committee model).
  AtomForgeUncertainty uncertainty(const std::vector<OpenMM::Vec3>& positions, const OpenMM::Vec3* box,
                                   int nThreads) const;
  /// Extrapolation counts of compute() calls since the last reset.
  AtomForgeExtrapolation extrapolation(bool reset) const;

 private:
  std::unique_ptr<atomforge::EngineModel> model;
  std::vector<int> particles;        // System index of each covered particle
  std::vector<int32_t> species;      // model element index of each covered particle
  bool periodic = false;
  double minDistanceNm = 0.01;       // AtomForgeForce::getMinimumDistance()
  double totalCharge = 0.0;          // AtomForgeForce::getTotalCharge(), e
  mutable std::vector<double> pos;   // scratch (nm)
  mutable AtomForgeExtrapolation counts;
  void gather(const std::vector<OpenMM::Vec3>& positions, const OpenMM::Vec3* box, double* cell) const;
  // compute_positions on the gathered particles with the minimum distance set; errors become
  // OpenMMExceptions naming particles by their System indices
  void evaluate(const double* cell, atomforge::ComputeRequest& request, atomforge::EngineOutput& out) const;
};

}  // namespace AtomForgeOpenMM
