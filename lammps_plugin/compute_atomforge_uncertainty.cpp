/* compute atomforge/uncertainty: see compute_atomforge_uncertainty.h. */
#include "compute_atomforge_uncertainty.h"

#include <mpi.h>

#include <algorithm>
#include <cmath>

#include "atom.h"
#include "atomforge/engine.hpp"
#include "atomforge_lammps_common.h"
#include "atomforge/uncertainty.hpp"
#include "comm.h"
#include "error.h"
#include "force.h"
#include "memory.h"
#include "neigh_list.h"
#include "pair.h"
#include "pair_atomforge.h"
#include "update.h"

using namespace LAMMPS_NS;

ComputeAtomForgeUncertainty::ComputeAtomForgeUncertainty(LAMMPS *lmp, int narg, char **arg) :
    Compute(lmp, narg, arg)
{
  if (narg != 3) error->all(FLERR, "compute atomforge/uncertainty takes no arguments: compute ID group atomforge/uncertainty");
  scalar_flag = 1;
  extscalar = 0;
  vector_flag = 1;
  size_vector = 5;
  extvector = 0;
  peratom_flag = 1;
  size_peratom_cols = 0;
  vector = vec_;
}

ComputeAtomForgeUncertainty::~ComputeAtomForgeUncertainty()
{
  memory->destroy(eps_);
}

void ComputeAtomForgeUncertainty::init()
{
  pair_ = dynamic_cast<PairAtomForge *>(force->pair_match("atomforge", 1));
  if (!pair_ || !pair_->engine_model())
    error->all(FLERR, "compute atomforge/uncertainty needs pair_style atomforge (with its pair_coeff line)");
  try {
    pair_->engine_model()->require(atomforge::kUncertainty, "compute atomforge/uncertainty");
  } catch (const std::exception &e) {
    error->all(FLERR, "{} (a committee: train with network: {{committee: 4}})", e.what());
  }
  M_ = pair_->engine_model()->model().committee_size();
  comm_reverse = 3 * M_;
  last_step_ = -1;
}

void ComputeAtomForgeUncertainty::evaluate()
{
  if (!pair_ || !pair_->list) error->all(FLERR, "compute atomforge/uncertainty: pair_style atomforge has not run yet");
  if (last_step_ == update->ntimestep && last_evaluations_ == pair_->n_evaluations()) return;
  const auto &model = *pair_->engine_model();
  const auto &tsp = pair_->type_species();
  double **x = atom->x;
  const int *type = atom->type;
  const int *mask = atom->mask;
  const int nlocal = atom->nlocal;
  const int nall = nlocal + atom->nghost;

  // CSR list from the pair style's full list, skipping NULL-typed atoms (as the pair style does)
  NeighList *list = pair_->list;
  const atomforge::NeighborView view =
      atomforge_lammps::gather_neighbors(list->ilist, list->inum, type, tsp, list->firstneigh, list->numneigh, x,
                                         nall, species_, centres_, offsets_, neighbors_,
                                         atomforge_lammps::list_cutoff(model));
  atomforge::ComputeRequest request;
  request.uncertainty = true;
  request.n_threads = pair_->n_threads();
  request.min_distance = pair_->min_distance();  // the pair style's setting, not the default
  atomforge::EngineOutput out;
  try {
    model.compute(view, request, out);
  } catch (const atomforge::AtomsTooClose &e) {
    // name the atoms by their IDs, as pair_style atomforge does
    const tagint ti = atom->tag[e.i()], tj = atom->tag[e.j()];
    const std::string hint = "pair_style atomforge min_distance D sets the threshold";
    const std::string what =
        ti == tj ? model.describe_too_close(e, "atom with ID", std::to_string(ti), "its own periodic image", hint)
                 : model.describe_too_close(e, "atoms with IDs", std::to_string(ti), std::to_string(tj), hint);
    error->one(FLERR, "compute atomforge/uncertainty: {} (step {})", what, update->ntimestep);
  } catch (const std::exception &e) {
    error->one(FLERR, "compute atomforge/uncertainty: {}", e.what());
  }

  // member forces per position -> (nall, M, 3) blocks, ghosts reverse-communicated to owners
  const int M = M_;
  member_f_.assign(static_cast<size_t>(nall) * 3 * M, 0.0);
  if (!out.member_forces.empty())
    for (int m = 0; m < M; ++m)
      for (int p = 0; p < nall; ++p)
        for (int k = 0; k < 3; ++k)
          member_f_[(static_cast<size_t>(p) * M + m) * 3 + k] = out.member_forces[(static_cast<size_t>(m) * nall + p) * 3 + k];
  comm->reverse_comm(this);

  dense_.assign(static_cast<size_t>(M) * 3 * nlocal, 0.0);
  for (int i = 0; i < nlocal; ++i)
    for (int m = 0; m < M; ++m)
      for (int k = 0; k < 3; ++k)
        dense_[(static_cast<size_t>(m) * nlocal + i) * 3 + k] = member_f_[(static_cast<size_t>(i) * M + m) * 3 + k];
  if (atom->nmax > nmax_) {
    memory->destroy(eps_);
    nmax_ = atom->nmax;
    memory->create(eps_, nmax_, "atomforge/uncertainty:eps");
    vector_atom = eps_;
  }
  vector_atom = eps_;
  atomforge::force_deviation(dense_.data(), M, nlocal, 3 * static_cast<int64_t>(nlocal), out.forces_uncertainty_scale,
                             eps_);
  double local_max = 0.0, sums[4] = {0.0, 0.0, 0.0, 0.0};  // sum eps, count, extrapolation features, atoms
  for (int i = 0; i < nlocal; ++i) {
    if (!(mask[i] & groupbit) || tsp[type[i]] < 0) {
      eps_[i] = 0.0;
      continue;
    }
    local_max = std::max(local_max, eps_[i]);
    sums[0] += eps_[i];
    sums[1] += 1.0;
  }
  sums[2] = static_cast<double>(out.extrapolation_features);
  sums[3] = static_cast<double>(out.extrapolation_centres);
  double global_max = 0.0, gsums[4];
  MPI_Allreduce(&local_max, &global_max, 1, MPI_DOUBLE, MPI_MAX, world);
  MPI_Allreduce(sums, gsums, 4, MPI_DOUBLE, MPI_SUM, world);
  // committee energies: sum over ranks, then the standard deviation (times the calibration)
  std::vector<double> e_local(M, 0.0), e(M, 0.0);
  for (int m = 0; m < M && m < static_cast<int>(out.committee_energies.size()); ++m) e_local[m] = out.committee_energies[m];
  MPI_Allreduce(e_local.data(), e.data(), M, MPI_DOUBLE, MPI_SUM, world);
  double mean = 0.0, var = 0.0;
  for (int m = 0; m < M; ++m) mean += e[m] / M;
  for (int m = 0; m < M; ++m) var += (e[m] - mean) * (e[m] - mean) / M;
  vec_[0] = out.energy_uncertainty_scale * std::sqrt(var);
  vec_[1] = global_max;
  vec_[2] = gsums[1] > 0 ? gsums[0] / gsums[1] : 0.0;
  vec_[3] = gsums[2];
  vec_[4] = gsums[3];
  scalar = global_max;
  last_step_ = update->ntimestep;
  last_evaluations_ = pair_->n_evaluations();
}

double ComputeAtomForgeUncertainty::compute_scalar()
{
  invoked_scalar = update->ntimestep;
  evaluate();
  return scalar;
}

void ComputeAtomForgeUncertainty::compute_vector()
{
  invoked_vector = update->ntimestep;
  evaluate();
}

void ComputeAtomForgeUncertainty::compute_peratom()
{
  invoked_peratom = update->ntimestep;
  evaluate();
}

int ComputeAtomForgeUncertainty::pack_reverse_comm(int n, int first, double *buf)
{
  const int w = 3 * M_;
  int m = 0;
  for (int i = first; i < first + n; ++i)
    for (int k = 0; k < w; ++k) buf[m++] = member_f_[static_cast<size_t>(i) * w + k];
  return m;
}

void ComputeAtomForgeUncertainty::unpack_reverse_comm(int n, int *list, double *buf)
{
  const int w = 3 * M_;
  int m = 0;
  for (int i = 0; i < n; ++i)
    for (int k = 0; k < w; ++k) member_f_[static_cast<size_t>(list[i]) * w + k] += buf[m++];
}

double ComputeAtomForgeUncertainty::memory_usage()
{
  return static_cast<double>(nmax_) * sizeof(double) +
         static_cast<double>(member_f_.capacity() + dense_.capacity()) * sizeof(double);
}
