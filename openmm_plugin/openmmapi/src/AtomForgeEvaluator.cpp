#include "internal/AtomForgeEvaluator.h"

#include <algorithm>
#include <array>
#include <string>

#include "atomforge/engine.hpp"
#include "openmm/CustomNonbondedForce.h"
#include "openmm/GBSAOBCForce.h"
#include "openmm/NonbondedForce.h"
#include "openmm/OpenMMException.h"

using namespace AtomForgeOpenMM;
using OpenMM::OpenMMException;

namespace {
// A force of the System that explicitly describes a non-periodic system (no cutoff or a
// non-periodic cutoff). Bonded forces are neutral: they only say periodic when set so.
bool explicitlyNonPeriodic(const OpenMM::Force& f) {
  if (auto* nb = dynamic_cast<const OpenMM::NonbondedForce*>(&f))
    return nb->getNonbondedMethod() == OpenMM::NonbondedForce::NoCutoff ||
           nb->getNonbondedMethod() == OpenMM::NonbondedForce::CutoffNonPeriodic;
  if (auto* cnb = dynamic_cast<const OpenMM::CustomNonbondedForce*>(&f))
    return cnb->getNonbondedMethod() == OpenMM::CustomNonbondedForce::NoCutoff ||
           cnb->getNonbondedMethod() == OpenMM::CustomNonbondedForce::CutoffNonPeriodic;
  if (auto* gb = dynamic_cast<const OpenMM::GBSAOBCForce*>(&f))
    return gb->getNonbondedMethod() != OpenMM::GBSAOBCForce::CutoffPeriodic;
  return false;
}
}  // namespace

AtomForgeEvaluator::AtomForgeEvaluator(const OpenMM::System& system, const AtomForgeForce& force)
    : periodic(force.usesPeriodicBoundaryConditions()), minDistanceNm(force.getMinimumDistance()),
      totalCharge(force.getTotalCharge()) {
  try {
    model = std::make_unique<atomforge::EngineModel>(force.getModelBytes(), force.getModelSource(),
                                                     atomforge::engine_units("openmm"));
    // OpenMM evaluates every covered particle in one call and passes the periodic box: long-range
    // models (pinn) are evaluated whole (Ewald in the box, or open boundaries without one)
    model->require(atomforge::kEnergy, "AtomForgeForce", true);
  } catch (const std::exception& e) {
    throw OpenMMException(std::string("AtomForgeForce: invalid model: ") + e.what());
  }
  const int n = system.getNumParticles();
  const auto& z = force.getAtomicNumbers();
  particles = force.getParticles();
  if (particles.empty()) {
    if (static_cast<int>(z.size()) != n)
      throw OpenMMException("AtomForgeForce covers all " + std::to_string(n) + " particles of the System but has " +
                            std::to_string(z.size()) + " atomic numbers (give one per particle, or list the particles)");
    for (int i = 0; i < n; i++) particles.push_back(i);
  }
  for (size_t i = 0; i < particles.size(); i++) {
    if (particles[i] < 0 || particles[i] >= n)
      throw OpenMMException("AtomForgeForce: particle index " + std::to_string(particles[i]) +
                            " is out of range (the System has " + std::to_string(n) + " particles)");
    try {
      species.push_back(model->species_of_number(z[i], "particle " + std::to_string(particles[i])));
    } catch (const std::exception& e) {
      throw OpenMMException(std::string("AtomForgeForce: ") + e.what());
    }
  }
  // A long-range model on a subset of a periodic System would be a different physical model (an
  // Ewald sum of the subset's charges alone, periodically repeated, blind to the rest): refused.
  // Without periodic boundaries a subset is evaluated as an isolated molecule (open boundaries,
  // its charges interacting only with each other), like the short-range models' ML/MM subsets.
  if (periodic && (model->model().capabilities() & atomforge::kLongRange) && static_cast<int>(particles.size()) != n)
    throw OpenMMException("AtomForgeForce: model " + force.getModelSource() + " is a '" + model->model().model_type() +
                          "' model with long-range electrostatics, which in a periodic System must cover every "
                          "particle (it covers " + std::to_string(particles.size()) + " of " + std::to_string(n) +
                          "): an Ewald sum over a subset's charges alone would be a different physical model; "
                          "cover the whole System, or use periodic=False for an isolated ML region");
  // Periodicity must agree with the rest of the System.
  for (int i = 0; i < system.getNumForces(); i++) {
    const OpenMM::Force& f = system.getForce(i);
    if (&f == &force) continue;
    if (!periodic && f.usesPeriodicBoundaryConditions())
      throw OpenMMException("AtomForgeForce is non-periodic but the System is periodic (force " + std::to_string(i) +
                            ", " + f.getName() + ", uses periodic boundary conditions): create the AtomForgeForce "
                            "with periodic=True (setUsesPeriodicBoundaryConditions(True))");
    if (periodic && explicitlyNonPeriodic(f))
      throw OpenMMException("AtomForgeForce is periodic but the System is not (force " + std::to_string(i) + ", " +
                            f.getName() + ", uses a non-periodic nonbonded method): create the AtomForgeForce "
                            "with periodic=False, or make the System periodic");
  }
  pos.resize(3 * particles.size());
}

AtomForgeEvaluator::~AtomForgeEvaluator() = default;

void AtomForgeEvaluator::gather(const std::vector<OpenMM::Vec3>& positions, const OpenMM::Vec3* box,
                                double* cell) const {
  const int64_t n = static_cast<int64_t>(particles.size());
  for (int64_t i = 0; i < n; i++)
    for (int d = 0; d < 3; d++) pos[3 * i + d] = positions[particles[i]][d];
  for (int k = 0; k < 9; k++) cell[k] = 0.0;
  if (periodic)
    for (int r = 0; r < 3; r++)
      for (int d = 0; d < 3; d++) cell[3 * r + d] = box[r][d];
}

double AtomForgeEvaluator::compute(const std::vector<OpenMM::Vec3>& positions, const OpenMM::Vec3* box,
                                   std::vector<OpenMM::Vec3>& forces, bool includeForces, int nThreads) const {
  const int64_t n = static_cast<int64_t>(particles.size());
  double cell[9];
  gather(positions, box, cell);
  atomforge::ComputeRequest request;
  request.forces = includeForces;
  request.n_threads = nThreads;
  atomforge::EngineOutput out;  // kJ/mol, kJ/mol/nm
  evaluate(cell, request, out);
  counts.evaluations++;
  if (out.extrapolation_features > 0) {
    counts.extrapolating++;
    counts.features += out.extrapolation_features;
    counts.atoms += out.extrapolation_centres;
  }
  if (includeForces)
    for (int64_t i = 0; i < n; i++) {
      OpenMM::Vec3& fi = forces[particles[i]];
      for (int d = 0; d < 3; d++) fi[d] += out.forces[3 * i + d];
    }
  return out.energy;
}

void AtomForgeEvaluator::evaluate(const double* cell, atomforge::ComputeRequest& request,
                                  atomforge::EngineOutput& out) const {
  const int64_t n = static_cast<int64_t>(particles.size());
  const bool p = periodic;
  request.min_distance = minDistanceNm;  // engine (nm) units, converted by the core's adapter
  request.total_charge = totalCharge;    // e (models with network charges)
  try {
    model->compute_positions(pos.data(), n, cell, std::array<bool, 3>{p, p, p}, species.data(), request, out);
  } catch (const atomforge::AtomsTooClose& e) {
    // the core numbers the covered particles 0..n-1: name them by their System indices
    throw OpenMMException("AtomForgeForce: " + model->describe_too_close(e, "particles", std::to_string(particles[e.i()]),
                                                                          std::to_string(particles[e.j()]),
                                                                          "AtomForgeForce.setMinimumDistance sets the "
                                                                          "threshold"));
  } catch (const std::exception& e) {
    throw OpenMMException(std::string("AtomForgeForce: ") + e.what());
  }
}

AtomForgeUncertainty AtomForgeEvaluator::uncertainty(const std::vector<OpenMM::Vec3>& positions,
                                                     const OpenMM::Vec3* box, int nThreads) const {
  try {
    model->require(atomforge::kUncertainty, "AtomForgeForce.getUncertainty", true);
  } catch (const std::exception& e) {
    throw OpenMMException(std::string(e.what()) + " (a committee: train with network: {committee: 4})");
  }
  const int64_t n = static_cast<int64_t>(particles.size());
  double cell[9];
  gather(positions, box, cell);
  atomforge::ComputeRequest request;
  request.uncertainty = true;
  request.n_threads = nThreads;
  atomforge::EngineOutput out;  // kJ/mol, kJ/mol/nm
  evaluate(cell, request, out);
  AtomForgeUncertainty u;
  u.energyUncertainty = out.energy_uncertainty;
  u.forcesUncertainty = out.forces_uncertainty;
  u.forcesUncertainty.resize(n, 0.0);
  for (double e : u.forcesUncertainty) {
    u.maxForcesUncertainty = std::max(u.maxForcesUncertainty, e);
    u.meanForcesUncertainty += e / std::max<int64_t>(n, 1);
  }
  u.extrapolationFeatures = out.extrapolation_features;
  u.extrapolationAtoms = out.extrapolation_centres;
  return u;
}

AtomForgeExtrapolation AtomForgeEvaluator::extrapolation(bool reset) const {
  AtomForgeExtrapolation c = counts;
  if (reset) counts = AtomForgeExtrapolation();
  return c;
}
