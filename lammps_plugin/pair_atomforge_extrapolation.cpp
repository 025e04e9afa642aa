/* pair_style atomforge: extrapolation warnings (see pair_atomforge.h).

   Every force evaluation of a model that stores the training range of its descriptor features
   counts the (atom, feature) pairs outside that range on each rank (the core does this inside
   its fused descriptor pass; ModelOutput::extrapolation_*). The counts are summed over ranks
   (one MPI_Allreduce of two integers per evaluation) and rank 0 logs one warning line at the
   first extrapolating evaluation and then at most one every `extrapolation_summary` steps, with
   the counts accumulated since the previous line, as n2p2's LAMMPS interface does with its
   extrapolation-warning summaries; never one line per atom or per step. */
#include <mpi.h>

#include "atomforge/engine.hpp"
#include "comm.h"
#include "error.h"
#include "pair_atomforge.h"
#include "update.h"
#include "utils.h"

using namespace LAMMPS_NS;

void PairAtomForge::count_extrapolation(const atomforge::EngineOutput &out)
{
  if (!model_ || !(model_->model().capabilities() & atomforge::kFeatureRange) || extrapolation_summary_ == 0)
    return;
  long long local[2] = {static_cast<long long>(out.extrapolation_features),
                        static_cast<long long>(out.extrapolation_centres)};
  long long total[2] = {0, 0};
  MPI_Allreduce(local, total, 2, MPI_LONG_LONG, MPI_SUM, world);
  ++run_evaluations_;
  if (total[0] == 0) return;
  ++run_extrapolating_;
  const bigint step = update->ntimestep;
  if (pending_evaluations_ == 0) pending_since_ = step;
  pending_features_ += total[0];
  pending_atoms_ += total[1];
  ++pending_evaluations_;
  // the same decision on every rank (the counters are global)
  if (last_warning_step_ >= 0 && step - last_warning_step_ < extrapolation_summary_) return;
  if (comm->me == 0)
    error->warning(FLERR,
                   "pair_style atomforge: step {}: the model extrapolates: {} descriptor feature value(s) on {} "
                   "atom(s) outside the training range of {} in {} force evaluation(s) since step {}; forces there "
                   "are unreliable (next summary after {} steps)",
                   step, pending_features_, pending_atoms_, model_path_, pending_evaluations_, pending_since_,
                   extrapolation_summary_);
  last_warning_step_ = step;
  pending_features_ = pending_atoms_ = pending_evaluations_ = 0;
}

void PairAtomForge::finish()
{
  if (!model_ || !(model_->model().capabilities() & atomforge::kFeatureRange) || extrapolation_summary_ == 0)
    return;
  if (comm->me == 0) {
    if (pending_evaluations_)
      error->warning(FLERR,
                     "pair_style atomforge: the model extrapolated in {} more force evaluation(s) since step {} ({} "
                     "feature value(s) on {} atom(s) outside the training range)",
                     pending_evaluations_, pending_since_, pending_features_, pending_atoms_);
    utils::logmesg(lmp, "pair_style atomforge: extrapolation in {} of {} force evaluations of this run\n",
                   run_extrapolating_, run_evaluations_);
  }
  pending_features_ = pending_atoms_ = pending_evaluations_ = 0;
  run_extrapolating_ = run_evaluations_ = 0;
  last_warning_step_ = -1;
}
