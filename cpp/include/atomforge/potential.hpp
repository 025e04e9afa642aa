// atomforge core: the interface every model type implements, so that the Python API, the ASE
// calculator and the LAMMPS/OpenMM adapters evaluate any model the same way.
// Units: eV and Angstrom (adapters convert at their boundary).
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "atomforge/model_file.hpp"
#include "atomforge/neighbor_list.hpp"

namespace atomforge {

/// Outputs of one evaluation. Sizes: atomic_energies (n_centres); forces (n_total, 3) including
/// ghosts/images (fold or reverse-communicate them); per_atom_virial (n_total, 9) when requested.
struct PotentialOutput {
  double energy = 0.0;                    // eV
  std::vector<double> atomic_energies;    // eV
  std::vector<double> forces;             // eV/Angstrom, -dE/dr
  double virial[9] = {0};                 // eV, W = -sum_pairs r_ij (x) dE/dr_ij
  std::vector<double> per_atom_virial;    // eV
  std::vector<double> committee_energies; // (committee size) total energy of each member, eV
  double energy_uncertainty = 0.0;        // standard deviation over the committee, eV
};

class Potential {
 public:
  virtual ~Potential() = default;
  virtual std::string model_type() const = 0;
  /// Atomic numbers of the model's elements; NeighborView::species holds indices into this.
  virtual const std::vector<int>& species() const = 0;
  /// Interaction range in Angstrom (neighbour lists must hold all pairs within it).
  virtual double cutoff() const = 0;
  /// True for global models of one molecule (sGDML): the centres must come in the training
  /// molecule's atom order and cover all its atoms, so engine adapters sort them by atom ID.
  virtual bool requires_atom_order() const { return false; }
  /// Evaluate energy, atomic energies, forces and virial. Throws InvalidInput on bad input.
  virtual void compute(const NeighborView& nl, PotentialOutput& out, bool per_atom_virial = false,
                       int n_threads = 0) const = 0;
};

/// Build the potential a model file describes (dispatching on its model_type).
/// Throws InvalidInput naming the file and the problem.
std::unique_ptr<Potential> load_potential(const ModelFile& file);
std::unique_ptr<Potential> load_potential(const std::string& path);

}  // namespace atomforge
