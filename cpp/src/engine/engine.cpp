#include "atomforge/engine.hpp"

#include <algorithm>

#include "atomforge/elements.hpp"
#include "atomforge/errors.hpp"
#include "atomforge/uncertainty.hpp"
#include "atomforge/units.hpp"
#include "common/threads.hpp"

namespace atomforge {

int available_threads() { return max_threads(); }

EngineUnits engine_units(const std::string& name) {
  if (name == "metal") return {"metal", 1.0, 1.0};
  if (name == "real") return {"real", 1.0, 1.0 / units::kEVInKcalPerMol};
  if (name == "openmm") return {"openmm", units::kNmInAngstrom, 1.0 / units::kEVInKJPerMol};
  if (name == "ev_angstrom") return {"ev_angstrom", 1.0, 1.0};
  throw InvalidInput("unsupported units '" + name + "' (atomforge supports metal, real, openmm and ev_angstrom)");
}

EngineModel::EngineModel(const std::string& bytes, const std::string& where, const EngineUnits& units)
    : model_(load_model(ModelFile::from_bytes(bytes, where))), where_(where), units_(units) {}

EngineModel::~EngineModel() = default;

double EngineModel::cutoff() const { return model_->cutoff() / units_.length_in_angstrom; }

std::string EngineModel::element_list() const {
  std::string s;
  for (int z : model_->species()) s += (s.empty() ? "" : " ") + element_symbol(z);
  return s;
}

int32_t EngineModel::species_of_number(int z, const std::string& what) const {
  const auto& sp = model_->species();
  for (size_t k = 0; k < sp.size(); ++k)
    if (sp[k] == z) return static_cast<int32_t>(k);
  std::string el = (z >= 1 && z <= 118) ? element_symbol(z) : "atomic number " + std::to_string(z);
  throw InvalidInput(what + " is " + el + ", an element model " + where_ + " does not cover (its elements: " +
                     element_list() + ")");
}

int32_t EngineModel::species_of_symbol(const std::string& symbol, const std::string& what) const {
  if (symbol == "NULL") return -1;
  int z = 0;
  try {
    z = atomic_number(symbol);
  } catch (const InvalidInput&) {
    throw InvalidInput(what + ": '" + symbol + "' is not a chemical element");
  }
  return species_of_number(z, what);
}

void EngineModel::require(unsigned capability, const std::string& feature, bool whole_system) const {
  if ((model_->capabilities() & kLongRange) && !whole_system)
    throw InvalidInput(feature + " cannot evaluate " + where_ + ": it is a '" + model_->model_type() +
                       "' model with long-range electrostatics (charges interacting over the whole system), "
                       "which this feature does not support (it sees only a local neighbour list); evaluate it "
                       "with LAMMPS's pair_style atomforge (the whole system on every rank; atom_style charge "
                       "gets the model's charges), OpenMM's AtomForgeForce, the Python API or the ASE "
                       "calculator (docs/pinn.md)");
  if ((model_->capabilities() & capability) == capability) return;
  throw InvalidInput(feature + " needs a model that provides " +
                     std::string(capability & kEnergy ? "energies and forces" :
                                 capability & kDipole ? "dipoles" :
                                 capability & kCharges ? "charges" : "committee uncertainties") +
                     ", but " + where_ + " is a '" + model_->model_type() + "' model");
}

void EngineModel::convert(ModelOutput& in, EngineOutput& out) const {
  const double e = 1.0 / units_.energy_in_ev;            // eV -> engine energy
  const double f = e * units_.length_in_angstrom;        // eV/A -> engine energy / length
  const double l = 1.0 / units_.length_in_angstrom;      // A -> engine length
  auto scaled = [](std::vector<double>& v, double s) {
    if (s != 1.0)
      for (double& x : v) x *= s;
    return std::move(v);
  };
  out.energy = e * in.energy;
  out.atomic_energies = scaled(in.atomic_energies, e);
  out.forces = scaled(in.forces, f);
  for (int k = 0; k < 9; ++k) out.virial[k] = e * in.virial[k];
  out.per_atom_virial = scaled(in.per_atom_virial, e);
  out.energy_uncertainty = e * in.energy_uncertainty;
  out.forces_uncertainty = scaled(in.forces_uncertainty, f);
  out.committee_energies = scaled(in.committee_energies, e);
  out.member_forces = scaled(in.member_forces, f);
  out.energy_uncertainty_scale = in.energy_uncertainty_scale;
  out.forces_uncertainty_scale = in.forces_uncertainty_scale;
  out.extrapolation_features = in.extrapolation_features;
  out.extrapolation_centres = in.extrapolation_centres;
  out.extrapolation_worst_centre = in.extrapolation_worst_centre;
  out.extrapolation_worst_feature = in.extrapolation_worst_feature;
  out.extrapolation_worst_excess = in.extrapolation_worst_excess;
  out.charges = std::move(in.charges);
  out.dipole = scaled(in.dipole, l);
  out.charge_partials = std::move(in.charge_partials);
}

ComputeRequest EngineModel::in_angstrom(const ComputeRequest& request) const {
  ComputeRequest r = request;
  r.min_distance = request.min_distance * units_.length_in_angstrom;
  return r;
}

std::string EngineModel::describe_too_close(const AtomsTooClose& e, const std::string& noun,
                                            const std::string& label_i, const std::string& label_j,
                                            const std::string& hint) const {
  const std::string unit = units_.name == "openmm" ? "nm" : "A";
  return e.describe(noun, label_i, label_j, unit, units_.length_in_angstrom, hint);
}

void EngineModel::compute(const NeighborView& nl, const ComputeRequest& request, EngineOutput& out) const {
  ModelOutput o;
  const ComputeRequest req = in_angstrom(request);
  if (units_.length_in_angstrom == 1.0 || nl.n_total == 0) {
    model_->compute(nl, req, o);
  } else {
    scaled_.assign(nl.positions, nl.positions + 3 * nl.n_total);
    for (double& x : scaled_) x *= units_.length_in_angstrom;
    NeighborView v = nl;
    v.positions = scaled_.data();
    model_->compute(v, req, o);
  }
  convert(o, out);
}

void EngineModel::compute_positions(const double* positions, int64_t n, const double* cell,
                                    const std::array<bool, 3>& pbc, const int32_t* species,
                                    const ComputeRequest& request, EngineOutput& out) const {
  const double s = units_.length_in_angstrom;
  std::vector<double> pos(positions, positions + 3 * n);
  double c[9] = {0};
  for (double& x : pos) x *= s;
  if (cell)
    for (int k = 0; k < 9; ++k) c[k] = cell[k] * s;
  ComputeRequest req = in_angstrom(request);
  if (model_->capabilities() & kLongRange) {  // the whole system: the Ewald cell (Angstrom) or open boundaries
    req.cell = cell ? c : nullptr;
    for (int d = 0; d < 3; ++d) req.pbc[d] = pbc[d];
  }
  NeighborList nl = build_neighbor_list(pos.data(), n, c, pbc, model_->cutoff(), req.min_distance, req.n_threads);
  nl.set_species(species);
  ModelOutput o;
  model_->compute(nl.view(), req, o);
  if (request.forces && !o.forces.empty()) o.forces = nl.fold(o.forces.data());
  if (!o.per_atom_virial.empty()) {
    std::vector<double> pav(9 * n, 0.0);
    for (int64_t p = 0; p < nl.n_total(); ++p)
      for (int k = 0; k < 9; ++k) pav[9 * nl.owner[p] + k] += o.per_atom_virial[9 * p + k];
    o.per_atom_virial = std::move(pav);
  }
  if (!o.member_forces.empty()) {  // fold every member onto the atoms, then the deviation
    const int M = static_cast<int>(o.member_forces.size() / (3 * static_cast<size_t>(nl.n_total())));
    o.member_forces = fold_member_forces(nl, o.member_forces.data(), M);
    o.forces_uncertainty.assign(n, 0.0);
    force_deviation(o.member_forces.data(), M, n, 3 * n, o.forces_uncertainty_scale, o.forces_uncertainty.data());
  } else if (!o.forces_uncertainty.empty()) {
    o.forces_uncertainty.resize(n);
  }
  convert(o, out);
}

}  // namespace atomforge
