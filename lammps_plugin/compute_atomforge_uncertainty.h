/* compute atomforge/uncertainty: committee uncertainty of pair_style atomforge.

   compute ID group-ID atomforge/uncertainty

   Needs pair_style atomforge (alone or in hybrid) with a committee model (committee_size > 1).
   Outputs, for the current configuration, in the units style's force and energy units:
     global scalar      max_i eps_i over the atoms of the group (DeePMD's max_devi_f)
     global vector (5)  [1] energy uncertainty (committee standard deviation of the total energy)
                        [2] max_i eps_i   [3] mean_i eps_i over the group's atoms
                        [4] descriptor feature values outside the training range (all atoms)
                        [5] atoms with at least one such feature
     per-atom vector    eps_i (0 for atoms outside the group or of NULL type)
   with eps_i = c_F sqrt(mean_m |F_i^m - <F_i>|^2), F_i^m the complete force of committee member
   m on atom i and c_F the model's calibration factor (1 if the model file has none); the
   energy uncertainty carries the model's energy calibration factor. Usable in thermo_style
   (c_ID, c_ID[2]), dump custom (c_ID), variables and fix halt (v_name > threshold).

   Cost: each invocation (once per timestep on which thermo, a dump, a variable or a fix asks
   for it; the scalar, vector and per-atom outputs of one step share one evaluation) evaluates
   the model once more on the pair style's full neighbour list with one vector-Jacobian product
   per member (about M times the gradient cost of the pair style), then reverse-communicates the
   members' ghost forces (3 M doubles per ghost atom) so that eps_i is computed from complete
   forces, and reduces max/mean/sums over ranks. On steps where nothing invokes it, it costs
   nothing: use it with thermo/dump/fix halt intervals of 10-100 steps. Results do not depend
   on the number of MPI ranks (up to rounding) or on newton on/off. */
#ifdef COMPUTE_CLASS
// clang-format off
ComputeStyle(atomforge/uncertainty,ComputeAtomForgeUncertainty);
// clang-format on
#else
#ifndef LMP_COMPUTE_ATOMFORGE_UNCERTAINTY_H
#define LMP_COMPUTE_ATOMFORGE_UNCERTAINTY_H

#include <vector>

#include "compute.h"

namespace LAMMPS_NS {

class PairAtomForge;

class ComputeAtomForgeUncertainty : public Compute {
 public:
  ComputeAtomForgeUncertainty(class LAMMPS *, int, char **);
  ~ComputeAtomForgeUncertainty() override;
  void init() override;
  double compute_scalar() override;
  void compute_vector() override;
  void compute_peratom() override;
  int pack_reverse_comm(int, int, double *) override;
  void unpack_reverse_comm(int, int *, double *) override;
  double memory_usage() override;

 private:
  PairAtomForge *pair_ = nullptr;
  int M_ = 0;
  double vec_[5] = {0, 0, 0, 0, 0};
  double *eps_ = nullptr;  // per-atom (nmax)
  int nmax_ = 0;
  bigint last_step_ = -1, last_evaluations_ = -1;
  std::vector<long long> centres_, offsets_, neighbors_;
  std::vector<int> species_;
  std::vector<double> member_f_;  // (nall, M, 3) while reverse-communicating
  std::vector<double> dense_;     // (M, nlocal, 3)
  void evaluate();
};

}  // namespace LAMMPS_NS

#endif
#endif
