/* pair_style atomforge: see pair_atomforge.h. */
#include "pair_atomforge.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <sstream>

#include "atom.h"
#include "atomforge/engine.hpp"
#include "atomforge_lammps_common.h"
#include "comm.h"
#include "domain.h"
#include "error.h"
#include "force.h"
#include "memory.h"
#include "neigh_list.h"
#include "neighbor.h"
#include "update.h"
#include "utils.h"

using namespace LAMMPS_NS;

PairAtomForge::PairAtomForge(LAMMPS *lmp) : Pair(lmp)
{
  single_enable = 0;
  restartinfo = 0;
  one_coeff = 1;
  manybody_flag = 1;
  centroidstressflag = CENTROID_NOTAVAIL;
  no_virial_fdotr_compute = 1;  // full list: the virial is tallied explicitly from the core
  comm_reverse_off = 9;         // newton off: 3 force + 6 virial components of ghost atoms
  comm_forward = 1;             // long-range models with atom_style charge: q of ghost atoms
}

PairAtomForge::~PairAtomForge()
{
  if (allocated) {
    memory->destroy(setflag);
    memory->destroy(cutsq);
  }
}

void PairAtomForge::allocate()
{
  allocated = 1;
  const int n = atom->ntypes + 1;
  memory->create(setflag, n, n, "pair:setflag");
  memory->create(cutsq, n, n, "pair:cutsq");
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < n; ++j) setflag[i][j] = 0;
}

void PairAtomForge::settings(int narg, char **arg)
{
  // pair_style atomforge [min_distance D] [extrapolation_summary N] [charge Q]
  //   D in the units style's length unit (Angstrom); N in steps (0 = no extrapolation warnings);
  //   Q the total charge in e (long-range models)
  min_distance_ = atomforge::kDefaultMinDistance;
  total_charge_ = 0.0;
  charge_given_ = false;
  for (int k = 0; k < narg; k += 2) {
    const bool is_min = strcmp(arg[k], "min_distance") == 0;
    const bool is_summary = strcmp(arg[k], "extrapolation_summary") == 0;
    const bool is_charge = strcmp(arg[k], "charge") == 0;
    if (!is_min && !is_summary && !is_charge)
      error->all(FLERR,
                 "pair_style atomforge: unknown keyword '{}' (the keywords are min_distance D, "
                 "extrapolation_summary N and charge Q; model and elements go in pair_coeff)",
                 arg[k]);
    if (k + 1 >= narg)
      error->all(FLERR, "pair_style atomforge: {} needs a value ({})", arg[k],
                 is_min ? "a length, e.g. 0.1" : is_charge ? "a total charge in e, e.g. 0" : "a number of steps, e.g. 100");
    if (is_charge) {
      total_charge_ = utils::numeric(FLERR, arg[k + 1], false, lmp);
      if (!std::isfinite(total_charge_))
        error->all(FLERR, "pair_style atomforge: charge must be a finite total charge in e, got {}", arg[k + 1]);
      charge_given_ = true;
    } else if (is_min) {
      min_distance_ = utils::numeric(FLERR, arg[k + 1], false, lmp);
      if (!(min_distance_ >= 0.0) || !std::isfinite(min_distance_))
        error->all(FLERR, "pair_style atomforge: min_distance must be a finite length >= 0, got {}", arg[k + 1]);
    } else {
      extrapolation_summary_ = utils::inumeric(FLERR, arg[k + 1], false, lmp);
      if (extrapolation_summary_ < 0)
        error->all(FLERR, "pair_style atomforge: extrapolation_summary must be >= 0 (steps; 0 = no warnings)");
    }
  }
}

void PairAtomForge::coeff(int narg, char **arg)
{
  if (!allocated) allocate();
  const int ntypes = atom->ntypes;
  if (narg != 3 + ntypes)
    error->all(FLERR,
               "pair_coeff for atomforge: expected '* * MODEL' and one element (or NULL) for each of the {} atom "
               "types, got {} element argument(s)",
               ntypes, narg - 3);
  if (strcmp(arg[0], "*") != 0 || strcmp(arg[1], "*") != 0)
    error->all(FLERR, "pair_coeff for atomforge must start with '* *'");

  // Read the model file on rank 0 and broadcast its bytes; parse on every rank.
  model_path_ = arg[2];
  const std::string bytes = atomforge_lammps::broadcast_model_file(lmp, model_path_, "pair_style atomforge");
  try {
    model_ = std::make_unique<atomforge::EngineModel>(bytes, model_path_, atomforge::engine_units("metal"));
    // Long-range models are evaluated whole (compute_whole_system: every atom on every rank, the
    // periodic cell or open boundaries), which is the engine adapter's opt-in.
    model_->require(atomforge::kEnergy, "pair_style atomforge", true);
    long_range_ = (model_->model().capabilities() & atomforge::kLongRange) != 0;
    // kspace styles check these flags, then ask the pair style for its Coulomb cutoff (extract
    // "cut_coul"), before the pair style's own init: that question is where a long-range model
    // refuses a kspace_style by name (extract in pair_atomforge_long_range.cpp)
    ewaldflag = pppmflag = msmflag = long_range_ ? 1 : 0;
  } catch (const std::exception &e) {
    error->all(FLERR, "pair_style atomforge: {}", e.what());
  }

  // Map types to elements.
  type_species_.assign(ntypes + 1, -1);
  std::string mapping;
  for (int t = 1; t <= ntypes; ++t) {
    const std::string el = arg[2 + t];
    try {
      type_species_[t] = model_->species_of_symbol(el, fmt::format("pair_coeff for atomforge: atom type {}", t));
    } catch (const std::exception &e) {
      error->all(FLERR, "{}", e.what());
    }
    mapping += fmt::format(" {}->{}", t, el);
  }
  int count = 0;
  for (int i = 1; i <= ntypes; ++i)
    for (int j = i; j <= ntypes; ++j) {
      setflag[i][j] = (type_species_[i] >= 0 && type_species_[j] >= 0) ? 1 : 0;
      count += setflag[i][j];
    }
  if (count == 0) error->all(FLERR, "pair_coeff for atomforge: every atom type is NULL");
  if (comm->me == 0) {
    utils::logmesg(lmp, "pair_style atomforge: model {} ({}; elements {}; cutoff {} A); types{}\n", model_path_,
                   model_->model().model_type(), model_->element_list(), model_->model().cutoff(), mapping);
    if (long_range_)
      utils::logmesg(lmp,
                     "pair_style atomforge: long-range model: every rank evaluates the whole system (all atoms "
                     "gathered each step; Ewald sum in the periodic cell or open boundaries), total charge {} e\n",
                     total_charge_);
  }
}

void PairAtomForge::init_style()
{
  if (!model_) error->all(FLERR, "pair_style atomforge needs a pair_coeff * * MODEL ... line");
  const std::string units = update->unit_style;
  if (units != "metal" && units != "real")
    error->all(FLERR, "pair_style atomforge supports units metal and real, not '{}'", units);
  model_->set_units(atomforge::engine_units(units));  // conversions from the core's one table
  // The core's bound on neighbours per atom (kMaxNeighbors), checked from the density before
  // LAMMPS builds ghost atoms and lists (one atom in a 0.1 A box made LAMMPS's own list build crash).
  const double volume = domain->xprd * domain->yprd * domain->zprd;
  const double rc = model_->cutoff();
  const double per_atom = volume > 0.0 ? atom->natoms / volume * 4.0 / 3.0 * M_PI * rc * rc * rc : 0.0;
  if (per_atom > static_cast<double>(atomforge::kMaxNeighbors))
    error->all(FLERR,
               "pair_style atomforge: {} atoms in a box of {:.3g} A^3 would have about {:.3g} neighbours each within "
               "the model's cutoff {} A, more than the {} the core accepts: the atoms are packed far denser than "
               "any material (check the box and the units)",
               atom->natoms, volume, per_atom, rc, atomforge::kMaxNeighbors);
  if (long_range_) {
    init_long_range();          // boundaries, kspace, tags, NULL types (pair_atomforge_long_range.cpp)
    neighbor->add_request(this);  // not used: LAMMPS needs a request; the cutoff keeps comm sized
  } else {
    if (charge_given_)
      error->all(FLERR,
                 "pair_style atomforge: the keyword charge applies to long-range models only (total charge of "
                 "network charges), and {} is a '{}' model",
                 model_path_, model_->model().model_type());
    neighbor->add_request(this, NeighConst::REQ_FULL);
  }
  nthreads_ = comm->nthreads > 0 ? comm->nthreads : 1;
  const int available = atomforge::available_threads();
  if (nthreads_ > available) {
    if (comm->me == 0)
      utils::logmesg(lmp,
                     "pair_style atomforge: {} OpenMP threads requested (package omp / OMP_NUM_THREADS), but this "
                     "machine has {} processor(s): using {}\n",
                     nthreads_, available, available);
    nthreads_ = available;
  }
}

double PairAtomForge::init_one(int i, int j)
{
  if (setflag[i][j] == 0) return 0.0;
  return model_->cutoff();
}

void PairAtomForge::compute(int eflag, int vflag)
{
  ev_init(eflag, vflag);
  if (long_range_) {
    compute_whole_system();
    return;
  }
  double **x = atom->x;
  double **f = atom->f;
  const int *type = atom->type;
  const int nlocal = atom->nlocal;
  const int nall = nlocal + atom->nghost;
  const bool newton = force->newton_pair != 0;

  // CSR list from LAMMPS's full list, skipping NULL-typed atoms.
  const int inum = list->inum;
  const int *ilist = list->ilist;
  const int *numneigh = list->numneigh;
  int **firstneigh = list->firstneigh;
  // Global models (sGDML) need the molecule's atoms in their training order: sort by atom ID.
  order_.resize(inum);
  for (int ii = 0; ii < inum; ++ii) order_[ii] = ilist[ii];
  if (model_->model().requires_atom_order()) {
    const tagint *tag = atom->tag;
    std::sort(order_.begin(), order_.end(), [tag](int a, int b) { return tag[a] < tag[b]; });
  }
  // CSR list in that order, skipping NULL-typed atoms (they get a placeholder species, never referenced)
  const atomforge::NeighborView view =
      atomforge_lammps::gather_neighbors(order_.data(), inum, type, type_species_, firstneigh, numneigh, x, nall,
                                         species_, centres_, offsets_, neighbors_,
                                         atomforge_lammps::list_cutoff(*model_));

  atomforge::ComputeRequest request;
  request.per_atom_virial = vflag_atom != 0;
  request.n_threads = nthreads_;
  request.min_distance = min_distance_;
  atomforge::EngineOutput out;
  try {
    model_->compute(view, request, out);  // outputs in the units style's energy and length
  } catch (const atomforge::AtomsTooClose &e) {
    // name the atoms by their IDs (the core knows positions of this rank's local + ghost atoms)
    const tagint *tag = atom->tag;
    const tagint ti = tag[e.i()], tj = tag[e.j()];
    const std::string hint = "pair_style atomforge min_distance D sets the threshold";
    const std::string what =
        ti == tj ? model_->describe_too_close(e, "atom with ID", std::to_string(ti), "its own periodic image", hint)
                 : model_->describe_too_close(e, "atoms with IDs", std::to_string(ti), std::to_string(tj), hint);
    error->one(FLERR, "pair_style atomforge: {} (step {})",
               what, update->ntimestep);
  } catch (const std::exception &e) {
    error->one(FLERR, "pair_style atomforge: {}", e.what());
  }
  ++n_evaluations_;
  count_extrapolation(out);

  if (eflag_global) eng_vdwl += out.energy;
  if (eflag_atom)
    for (size_t c = 0; c < centres_.size(); ++c) eatom[centres_[c]] += out.atomic_energies[c];
  if (vflag_global) {
    const double *W = out.virial;
    virial[0] += W[0];
    virial[1] += W[4];
    virial[2] += W[8];
    virial[3] += 0.5 * (W[1] + W[3]);
    virial[4] += 0.5 * (W[2] + W[6]);
    virial[5] += 0.5 * (W[5] + W[7]);
  }
  auto voigt = [&](int p, double *v) {
    const double *w = &out.per_atom_virial[9 * static_cast<size_t>(p)];
    v[0] = w[0];
    v[1] = w[4];
    v[2] = w[8];
    v[3] = 0.5 * (w[1] + w[3]);
    v[4] = 0.5 * (w[2] + w[6]);
    v[5] = 0.5 * (w[5] + w[7]);
  };

  if (newton) {  // LAMMPS reverse-communicates ghost forces (and compute stress/atom ghost virials)
    for (int p = 0; p < nall; ++p)
      for (int k = 0; k < 3; ++k) f[p][k] += out.forces[3 * static_cast<size_t>(p) + k];
    if (vflag_atom)
      for (int p = 0; p < nall; ++p) {
        double v[6];
        voigt(p, v);
        for (int k = 0; k < 6; ++k) vatom[p][k] += v[k];
      }
  } else {  // newton off: fold ghost contributions onto their owners ourselves
    ghost_buffer_.assign(9 * static_cast<size_t>(nall), 0.0);
    for (int p = 0; p < nall; ++p) {
      for (int k = 0; k < 3; ++k) ghost_buffer_[9 * p + k] = out.forces[3 * static_cast<size_t>(p) + k];
      if (vflag_atom) voigt(p, &ghost_buffer_[9 * p + 3]);
    }
    comm->reverse_comm(this);
    for (int i = 0; i < nlocal; ++i) {
      for (int k = 0; k < 3; ++k) f[i][k] += ghost_buffer_[9 * i + k];
      if (vflag_atom)
        for (int k = 0; k < 6; ++k) vatom[i][k] += ghost_buffer_[9 * i + 3 + k];
    }
  }
}

int PairAtomForge::pack_reverse_comm(int n, int first, double *buf)
{
  int m = 0;
  for (int i = first; i < first + n; ++i)
    for (int k = 0; k < 9; ++k) buf[m++] = ghost_buffer_[9 * static_cast<size_t>(i) + k];
  return m;
}

void PairAtomForge::unpack_reverse_comm(int n, int *list, double *buf)
{
  int m = 0;
  for (int i = 0; i < n; ++i)
    for (int k = 0; k < 9; ++k) ghost_buffer_[9 * static_cast<size_t>(list[i]) + k] += buf[m++];
}

double PairAtomForge::memory_usage()
{
  return static_cast<double>((centres_.capacity() + offsets_.capacity() + neighbors_.capacity()) * sizeof(long long) +
                             species_.capacity() * sizeof(int) + ghost_buffer_.capacity() * sizeof(double) +
                             (lr_send_.capacity() + lr_all_.capacity() + lr_pos_.capacity()) * sizeof(double) +
                             (lr_order_.capacity() + lr_rank_of_sorted_.capacity()) * sizeof(int64_t) +
                             (lr_counts_.capacity() + lr_displs_.capacity() + lr_local_.capacity()) * sizeof(int) +
                             lr_species_.capacity() * sizeof(int32_t) + lr_tags_.capacity() * sizeof(tagint));
}
