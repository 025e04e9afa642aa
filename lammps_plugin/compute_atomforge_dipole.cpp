/* compute atomforge/dipole: see compute_atomforge_dipole.h. */
#include "compute_atomforge_dipole.h"

#include <cmath>
#include <cstring>
#include <fstream>
#include <sstream>

#include "atom.h"
#include "atomforge/charges.hpp"
#include "atomforge/engine.hpp"
#include "atomforge_lammps_common.h"
#include "comm.h"
#include "domain.h"
#include "error.h"
#include "memory.h"
#include "neighbor.h"
#include "update.h"
#include "utils.h"

using namespace LAMMPS_NS;

ComputeAtomForgeDipole::ComputeAtomForgeDipole(LAMMPS *lmp, int narg, char **arg) : Compute(lmp, narg, arg)
{
  const int ntypes = atom->ntypes;
  // arg: ID group atomforge/dipole MODEL elem1 .. elemN [charge Q]
  int nel = narg - 4;
  if (narg >= 6 && strcmp(arg[narg - 2], "charge") == 0) {
    total_charge_ = utils::numeric(FLERR, arg[narg - 1], false, lmp);
    if (!std::isfinite(total_charge_)) error->all(FLERR, "compute atomforge/dipole: charge must be finite");
    nel -= 2;
  }
  if (narg < 4 || nel != ntypes)
    error->all(FLERR,
               "compute atomforge/dipole: expected 'compute ID group atomforge/dipole MODEL' and one element (or "
               "NULL) for each of the {} atom types [charge Q], got {} element argument(s)",
               ntypes, narg < 4 ? 0 : nel);
  model_path_ = arg[3];

  // the model file is read on rank 0 and its bytes broadcast; every rank parses them
  const std::string bytes = atomforge_lammps::broadcast_model_file(lmp, model_path_, "compute atomforge/dipole");
  try {
    model_ = std::make_unique<atomforge::EngineModel>(bytes, model_path_, atomforge::engine_units("metal"));
    model_->require(atomforge::kCharges | atomforge::kDipole, "compute atomforge/dipole");
  } catch (const std::exception &e) {
    error->all(FLERR, "compute atomforge/dipole: {}", e.what());
  }
  type_species_.assign(ntypes + 1, -1);
  std::string mapping;
  for (int t = 1; t <= ntypes; ++t) {
    try {
      type_species_[t] =
          model_->species_of_symbol(arg[3 + t], fmt::format("compute atomforge/dipole: atom type {}", t));
    } catch (const std::exception &e) {
      error->all(FLERR, "{}", e.what());
    }
    mapping += fmt::format(" {}->{}", t, arg[3 + t]);
  }

  scalar_flag = 1;
  vector_flag = 1;
  size_vector = 3;
  extscalar = 0;
  extvector = 0;
  peratom_flag = 1;
  size_peratom_cols = 0;
  vector = mu_;
  if (comm->me == 0)
    utils::logmesg(lmp, "compute atomforge/dipole: model {} ({}; elements {}; cutoff {} A); total charge {} e; "
                        "types{}\n",
                   model_path_, model_->model().model_type(), model_->element_list(), model_->model().cutoff(),
                   total_charge_, mapping);
}

ComputeAtomForgeDipole::~ComputeAtomForgeDipole()
{
  memory->destroy(charge_);
}

void ComputeAtomForgeDipole::init()
{
  const std::string units = update->unit_style;
  if (units != "metal" && units != "real")
    error->all(FLERR, "compute atomforge/dipole supports units metal and real, not '{}'", units);
  try {
    model_->set_units(atomforge::engine_units(units));
  } catch (const std::exception &e) {
    error->all(FLERR, "compute atomforge/dipole: {}", e.what());
  }
  // every neighbour within the model's cutoff of a local atom must be a local or ghost atom until
  // the next reneighbouring: ghost cutoff >= model cutoff + skin
  const double need = model_->cutoff() + neighbor->skin;
  const double have = comm->get_comm_cutoff();
  if (need > have + 1e-12)
    error->all(FLERR,
               "compute atomforge/dipole: the model's cutoff {} plus the neighbour skin {} exceeds the ghost-atom "
               "cutoff {}; add 'comm_modify cutoff {}' (or more) to the input",
               model_->cutoff(), neighbor->skin, have, std::ceil(need * 100.0) / 100.0);
  last_step_ = -1;
}

void ComputeAtomForgeDipole::evaluate()
{
  if (last_step_ == update->ntimestep && last_step_ >= 0) return;
  const int nlocal = atom->nlocal;
  const int nall = nlocal + atom->nghost;
  double **x = atom->x;
  const int *type = atom->type;
  const int *mask = atom->mask;
  const imageint *image = atom->image;

  if (atom->nmax > nmax_) {
    memory->destroy(charge_);
    nmax_ = atom->nmax;
    memory->create(charge_, nmax_, "atomforge/dipole:charge");
    vector_atom = charge_;
  }
  for (int i = 0; i < nlocal; ++i) charge_[i] = 0.0;

  // the group's atoms of model elements: local ones first (the centres), then ghosts
  pos_.clear();
  index_.clear();
  species_.clear();
  auto take = [&](int i) {
    if (!(mask[i] & groupbit) || type_species_[type[i]] < 0) return;
    index_.push_back(i);
    species_.push_back(type_species_[type[i]]);
    for (int k = 0; k < 3; ++k) pos_.push_back(x[i][k]);
  };
  for (int i = 0; i < nlocal; ++i) take(i);
  const int64_t ncentres = static_cast<int64_t>(index_.size());
  for (int i = nlocal; i < nall; ++i) take(i);
  const int64_t nsel = static_cast<int64_t>(index_.size());

  const int M = model_->model().committee_size();
  std::vector<double> sums(2 * M, 0.0), global(2 * M, 0.0);
  atomforge::EngineOutput out;
  if (ncentres > 0) {
    try {
      const double cell[9] = {0, 0, 0, 0, 0, 0, 0, 0, 0};
      // non-periodic list over local + ghost coordinates (engine length units): LAMMPS's ghosts
      // are the periodic images
      atomforge::NeighborList nl =
          atomforge::build_neighbor_list(pos_.data(), nsel, cell, {false, false, false}, model_->cutoff());
      nl.set_species(species_.data());
      atomforge::NeighborView view;
      view.positions = nl.positions.data();
      view.species = nl.species.data();
      view.n_total = nl.n_total();
      view.n_centres = ncentres;
      view.offsets = nl.offsets.data();
      view.neighbors = nl.neighbors.data();
      atomforge::ComputeRequest req;
      req.forces = false;
      req.total_charge = total_charge_;
      req.n_threads = comm->nthreads > 0 ? comm->nthreads : 1;
      model_->compute(view, req, out);
      atomforge::charge_partial_sums(out.charge_partials.data(), ncentres, M, sums.data());
    } catch (const std::exception &e) {
      error->one(FLERR, "compute atomforge/dipole: {}", e.what());
    }
  }
  // the total-charge scheme over all ranks: sums of raw charges and weights are additive
  MPI_Allreduce(sums.data(), global.data(), 2 * M, MPI_DOUBLE, MPI_SUM, world);
  bigint nmine = ncentres, ntotal = 0;
  MPI_Allreduce(&nmine, &ntotal, 1, MPI_LMP_BIGINT, MPI_SUM, world);
  double mu_local[3] = {0.0, 0.0, 0.0};
  if (ntotal > 0 && ncentres > 0) {
    q_.assign(ncentres, 0.0);
    try {
      atomforge::finish_charges(out.charge_partials.data(), ncentres, M, global.data(), total_charge_, q_.data());
    } catch (const std::exception &e) {
      error->one(FLERR, "compute atomforge/dipole: {}", e.what());
    }
    for (int64_t c = 0; c < ncentres; ++c) {
      const int i = index_[c];
      charge_[i] = q_[c];
      double xu[3];
      domain->unmap(x[i], image[i], xu);  // unwrapped: continuous across periodic boundaries
      for (int k = 0; k < 3; ++k) mu_local[k] += q_[c] * xu[k];
    }
  }
  MPI_Allreduce(mu_local, mu_, 3, MPI_DOUBLE, MPI_SUM, world);
  last_step_ = update->ntimestep;
}

double ComputeAtomForgeDipole::compute_scalar()
{
  invoked_scalar = update->ntimestep;
  evaluate();
  scalar = std::sqrt(mu_[0] * mu_[0] + mu_[1] * mu_[1] + mu_[2] * mu_[2]);
  return scalar;
}

void ComputeAtomForgeDipole::compute_vector()
{
  invoked_vector = update->ntimestep;
  evaluate();
}

void ComputeAtomForgeDipole::compute_peratom()
{
  invoked_peratom = update->ntimestep;
  evaluate();
}

double ComputeAtomForgeDipole::memory_usage()
{
  return static_cast<double>(nmax_) * sizeof(double) +
         static_cast<double>(pos_.capacity() + q_.capacity()) * sizeof(double) +
         static_cast<double>(index_.capacity() + species_.capacity()) * sizeof(int);
}
