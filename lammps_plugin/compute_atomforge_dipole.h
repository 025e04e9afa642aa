/* compute atomforge/dipole: atomic charges and the total dipole moment from an atomforge charge
   model (model type "dipole"), on every step it is invoked, under any pair style.

   compute ID group-ID atomforge/dipole MODEL elem1 elem2 ... [charge Q]

     MODEL     an atomforge model file with charges and a dipole (atomforge train --model dipole,
               atomforge import-runner)
     elemN     the element of atom type N, or NULL for types the model ignores
     charge Q  total charge of the group in e (default 0), imposed exactly by the model's
               total-charge scheme (atomforge/charges.hpp) across all MPI ranks

   Output: global scalar |mu|; global vector (3) mu_x, mu_y, mu_z; per-atom vector: the charge of
   each atom (e; 0 outside the group and for NULL types). Units: charges e, dipole e * distance
   units (e*Angstrom for units metal and real, the styles supported). Intensive (not summed by
   thermo normalisation).

   What is evaluated: the group's atoms of non-NULL types form the system the model sees (both
   the centres and their neighbours are group members), so Q is the charge of that subsystem.
   The dipole is mu = sum_i q_i x_i about the coordinate origin with x_i the *unwrapped*
   coordinates (x + image flags * box), so it changes continuously when atoms cross periodic
   boundaries. For a molecule or cluster this is its dipole moment (origin-dependent when Q != 0,
   as in the CC reference data). For a condensed periodic system sum_i q_i x_i with unwrapped
   coordinates is the itinerant dipole: not a well-defined polarisation by itself, but its time
   derivative sum_i (dq_i/dt x_i + q_i v_i) is the current whose autocorrelation gives the IR
   spectrum, which is what the output is meant for.

   Neighbours come from LAMMPS's ghost atoms: the communication cutoff must cover the model's
   cutoff plus the neighbour skin (comm_modify cutoff X; checked in init()). The neighbour list is
   built by the atomforge core from local + ghost coordinates, so the pair style's cutoff does not
   matter. */
#ifndef LMP_COMPUTE_ATOMFORGE_DIPOLE_H
#define LMP_COMPUTE_ATOMFORGE_DIPOLE_H

#include <memory>
#include <string>
#include <vector>

#include "compute.h"

namespace atomforge {
class EngineModel;
}

namespace LAMMPS_NS {

class ComputeAtomForgeDipole : public Compute {
 public:
  ComputeAtomForgeDipole(class LAMMPS *, int, char **);
  ~ComputeAtomForgeDipole() override;
  void init() override;
  double compute_scalar() override;
  void compute_vector() override;
  void compute_peratom() override;
  double memory_usage() override;

 private:
  std::unique_ptr<atomforge::EngineModel> model_;
  std::string model_path_;
  std::vector<int> type_species_;  // LAMMPS type -> model species, -1 = NULL
  double total_charge_ = 0.0;
  bigint last_step_ = -1;
  int nmax_ = 0;
  double *charge_ = nullptr;       // per-atom output
  double mu_[3] = {0.0, 0.0, 0.0};
  std::vector<double> pos_;        // selected local + ghost positions
  std::vector<int> index_;         // LAMMPS index of each selected position
  std::vector<int> species_;
  std::vector<double> q_;
  void evaluate();
};

}  // namespace LAMMPS_NS

#endif
