/* pair_style atomforge: machine-learned potentials from atomforge model files.

   pair_style atomforge [min_distance D] [extrapolation_summary N] [charge Q]
   pair_coeff * * model.afm O H NULL ...     (one element or NULL per atom type)

   min_distance D (length units, default 0.1 A): two atoms closer than D stop the run with an
   error naming both atom IDs (atoms on top of each other, an atom on a periodic image of
   another). OpenMP threads above the machine's processors are clamped (one log line).

   A thin adapter over the atomforge core's engine layer (atomforge/engine.hpp), which maps
   element names to the model's elements and converts units (metal: eV; real: kcal/mol; lengths
   are Angstrom in both) from the core's one table of constants. This file only translates
   LAMMPS data: it passes LAMMPS's full neighbour list (local + ghost atoms) to the core's CSR
   kernels and tallies energy, per-atom energy, forces and the global and per-atom virial.
   Works with newton pair on (ghost forces reverse-communicated by LAMMPS) and off (the pair style
   reverse-communicates ghost forces itself).

   extrapolation_summary N: models that store the training range of their descriptor features (model file records
   extrapolation.*) count the features outside it at every evaluation; rank 0 logs a warning
   with the counts summed over ranks at the first such step and then at most once every N steps
   (default 100; 0 = no warnings), and a summary at the end of the run
   (pair_atomforge_extrapolation.cpp). Committee uncertainties: compute atomforge/uncertainty.

   Long-range models (capability kLongRange, model type pinn: network charges with an Ewald sum)
   are evaluated whole, not from the neighbour list (pair_atomforge_long_range.cpp): every
   compute() gathers all owned atoms of every rank (MPI_Allgatherv), every rank evaluates the
   whole system once (Ewald sum in LAMMPS's periodic cell, or open boundaries when no direction
   is periodic), and each rank adds the forces and per-atom energies of its own atoms; rank 0 adds
   the total energy and the global virial. O(N) communication and the full long-range work on
   every rank: meant for systems up to ~10^4 atoms. charge Q (e, default 0): the total charge the
   model's charges are made to sum to (long-range models only). With atom_style charge (or full),
   the per-atom charges q are set to the model's charges (e) at every force evaluation. Refused:
   kspace_style (it would count the electrostatics twice), per-atom virials (the Ewald sum has no
   per-atom split), periodicity along some directions only, NULL types in a periodic box. */
#ifndef LMP_PAIR_ATOMFORGE_H
#define LMP_PAIR_ATOMFORGE_H

#include <memory>
#include <string>
#include <vector>

#include "pair.h"

namespace atomforge {
class EngineModel;
struct EngineOutput;
}

namespace LAMMPS_NS {

class PairAtomForge : public Pair {
 public:
  PairAtomForge(class LAMMPS *);
  ~PairAtomForge() override;
  void compute(int, int) override;
  void settings(int, char **) override;
  void coeff(int, char **) override;
  void init_style() override;
  double init_one(int, int) override;
  int pack_reverse_comm(int, int, double *) override;
  void unpack_reverse_comm(int, int *, double *) override;
  int pack_forward_comm(int, int *, double *, int, int *) override;  // atom->q of ghosts (long range)
  void unpack_forward_comm(int, int, double *) override;
  void *extract(const char *, int &) override;  // long range: refuses a kspace_style (its cut_coul query)
  double memory_usage() override;
  void finish() override;  // end-of-run extrapolation summary

  // read by compute atomforge/uncertainty (compute_atomforge_uncertainty.cpp)
  const atomforge::EngineModel *engine_model() const { return model_.get(); }
  const std::vector<int> &type_species() const { return type_species_; }
  int n_threads() const { return nthreads_; }
  double min_distance() const { return min_distance_; }  // pair_style min_distance (length units)
  bigint n_evaluations() const { return n_evaluations_; }

 protected:
  std::unique_ptr<atomforge::EngineModel> model_;  // the core's engine-adapter layer
  std::string model_path_;
  std::vector<int> type_species_;  // LAMMPS type (1..ntypes) -> model species index, -1 = NULL
  int nthreads_ = 1;
  double min_distance_ = 0.1;  // pair_style keyword, Angstrom (metal and real)
  // CSR neighbour list handed to the core (rebuilt every step from LAMMPS's full list)
  std::vector<long long> centres_, offsets_, neighbors_;
  std::vector<int> species_, order_;
  std::vector<double> ghost_buffer_;  // newton off: forces (3) + per-atom virial (6) per atom
  void allocate();
  // long-range models: the whole system on every rank (pair_atomforge_long_range.cpp)
  bool long_range_ = false;   // the model has kLongRange
  double total_charge_ = 0.0;  // pair_style charge Q, e
  bool charge_given_ = false;
  std::vector<double> lr_send_, lr_all_;   // (tag, species, x, y, z) per atom: this rank's, everyone's
  std::vector<int> lr_counts_, lr_displs_, lr_local_;  // doubles per rank, offsets; local index of sent atoms
  std::vector<int64_t> lr_order_;          // gathered atoms sorted by tag
  std::vector<int64_t> lr_rank_of_sorted_; // sorted position of each gathered atom
  std::vector<double> lr_pos_;             // (N, 3) positions in tag order, length units
  std::vector<int32_t> lr_species_;        // (N) model species in tag order
  std::vector<tagint> lr_tags_;            // (N) atom IDs in tag order
  void init_long_range();
  void refuse_kspace();  // error->all naming the model and the kspace style
  void compute_whole_system();
  // extrapolation warnings (pair_atomforge_extrapolation.cpp)
  void count_extrapolation(const atomforge::EngineOutput &out);
  int extrapolation_summary_ = 100;  // steps between warning lines; 0: none
  bigint n_evaluations_ = 0;         // compute() calls (invalidates the uncertainty compute's cache)
  bigint last_warning_step_ = -1;
  long long pending_features_ = 0, pending_atoms_ = 0, pending_evaluations_ = 0;
  long long run_extrapolating_ = 0, run_evaluations_ = 0;
  bigint pending_since_ = -1;
};

}  // namespace LAMMPS_NS

#endif
