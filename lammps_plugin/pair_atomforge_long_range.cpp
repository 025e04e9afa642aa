/* pair_style atomforge: long-range models (capability kLongRange, e.g. pinn) evaluated whole
   (see pair_atomforge.h).

   The energy of such a model is not a sum over local environments: the network charges interact
   through an Ewald sum over the whole periodic system (or a direct sum over an open-boundary
   molecule), so LAMMPS's per-rank neighbour lists cannot feed it. This is the "equally correct
   documented route" of issue 14 instead of a kspace coupling:

   1. every rank packs its owned atoms whose type maps to an element: (atom ID, model species,
      x, y, z), positions in the units style's length unit relative to the box origin boxlo;
   2. MPI_Allgatherv gives every rank all atoms; they are sorted by atom ID, so every rank (and
      every rank count) hands the core the same array in the same order;
   3. every rank evaluates the whole model once (EngineModel::compute_positions: the core's own
      neighbour list, Ewald sum in the cell built from LAMMPS's h matrix, lattice rows
      a = (xprd, 0, 0), b = (xy, yprd, 0), c = (xz, yz, zprd), or open boundaries when no
      direction is periodic); units are converted by the engine adapter (metal: eV, Angstrom;
      real: kcal/mol, Angstrom);
   4. each rank adds the forces (energy/length) and per-atom energies (energy) of its own atoms;
      rank 0 alone adds the total energy and the global virial (energy), so each is counted once.
      With atom_style charge, q of the owned atoms is set to the model's charges (e) and sent to
      the ghost atoms (forward communication).

   Cost per step: O(N) communication and the whole model (Ewald sum included, ~N^1.5) on every
   rank, so extra ranks do not speed up the long-range part: meant for up to ~10^4 atoms. The
   neighbour list LAMMPS builds for this pair style is not used (the pair cutoff stays the model's
   cutoff so that ghost communication is sized as for short-range models). */
#include <mpi.h>

#include <algorithm>
#include <climits>
#include <cstring>
#include <numeric>

#include "atom.h"
#include "atomforge/engine.hpp"
#include "comm.h"
#include "domain.h"
#include "error.h"
#include "force.h"
#include "pair_atomforge.h"
#include "update.h"
#include "utils.h"

using namespace LAMMPS_NS;

void PairAtomForge::refuse_kspace()
{
  error->all(FLERR,
             "pair_style atomforge: model {} is a '{}' model with long-range electrostatics, which computes the "
             "electrostatics of its own charges (Ewald sum) itself; kspace_style {} would count them a second "
             "time: remove the kspace_style command (kspace_style none)",
             model_path_, model_->model().model_type(), force->kspace_style ? force->kspace_style : "");
}

void *PairAtomForge::extract(const char *name, int &dim)
{
  dim = 0;
  // LAMMPS initialises kspace styles before pair styles; ewald, pppm and msm ask for cut_coul
  if (long_range_ && force->kspace && strcmp(name, "cut_coul") == 0) refuse_kspace();
  return nullptr;
}

void PairAtomForge::init_long_range()
{
  const std::string what = fmt::format("pair_style atomforge: model {} is a '{}' model with long-range electrostatics",
                                       model_path_, model_->model().model_type());
  if (force->kspace) refuse_kspace();  // kspace styles that did not ask for cut_coul
  const int n_periodic = domain->xperiodic + domain->yperiodic + domain->zperiodic;
  if (n_periodic != 0 && n_periodic != 3) {
    std::string bc;  // LAMMPS boundary codes: 0 p, 1 f, 2 s, 3 m
    for (int d = 0; d < 3; ++d) {
      for (int side = 0; side < 2; ++side) bc += "pfsm"[std::min(std::max(domain->boundary[d][side], 0), 3)];
      if (domain->boundary[d][0] == domain->boundary[d][1]) bc.pop_back();
      if (d < 2) bc += ' ';
    }
    error->all(FLERR,
               "{}: the box is periodic along some directions only (boundary {}), which its electrostatics does "
               "not support (3D Ewald sum, or open boundaries); use boundary p p p, or f/s/m in all three "
               "directions for a molecule",
               what, bc);
  }
  if (atom->tag_enable == 0)
    error->all(FLERR, "{}: it needs atom IDs (the atoms of all ranks are ordered by ID); remove atom_modify id no",
               what);
  if (n_periodic == 3)
    for (int t = 1; t <= atom->ntypes; ++t)
      if (type_species_[t] < 0)
        error->all(FLERR,
                   "{}: in a periodic box it must cover every atom type, but type {} is NULL (an Ewald sum over a "
                   "subset's charges alone would be a different physical model); map every type to an element, or "
                   "use non-periodic boundaries for an isolated region",
                   what, t);
  if (comm->nprocs > 1 && comm->me == 0)
    utils::logmesg(lmp,
                   "pair_style atomforge: {} ranks each evaluate the whole long-range model (no speed-up from "
                   "extra ranks for this part; meant for up to ~10^4 atoms)\n",
                   comm->nprocs);
}

void PairAtomForge::compute_whole_system()
{
  const std::string what = fmt::format("pair_style atomforge ({}, long-range '{}' model)", model_path_,
                                       model_->model().model_type());
  if (vflag_atom)
    error->all(FLERR,
               "{}: per-atom virials (compute stress/atom, centroid/stress/atom) are not available: the Ewald sum "
               "of the model's charges has no per-atom split; use the global pressure (compute pressure)",
               what);
  double **x = atom->x;
  double **f = atom->f;
  const int *type = atom->type;
  const tagint *tag = atom->tag;
  const int nlocal = atom->nlocal;
  const bool periodic = domain->xperiodic && domain->yperiodic && domain->zperiodic;
  const double origin[3] = {periodic ? domain->boxlo[0] : 0.0, periodic ? domain->boxlo[1] : 0.0,
                            periodic ? domain->boxlo[2] : 0.0};

  // 1. this rank's atoms: (ID, species, position relative to the box origin), length units
  lr_send_.clear();
  lr_local_.clear();
  for (int i = 0; i < nlocal; ++i) {
    const int s = type_species_[type[i]];
    if (s < 0) continue;
    lr_local_.push_back(i);
    lr_send_.insert(lr_send_.end(), {static_cast<double>(tag[i]), static_cast<double>(s), x[i][0] - origin[0],
                                     x[i][1] - origin[1], x[i][2] - origin[2]});
  }

  // 2. every rank gets every atom, ordered by ID
  const int nprocs = comm->nprocs;
  lr_counts_.assign(nprocs, 0);
  lr_displs_.assign(nprocs, 0);
  const int mine = static_cast<int>(lr_send_.size());
  MPI_Allgather(&mine, 1, MPI_INT, lr_counts_.data(), 1, MPI_INT, world);
  long long total = 0;
  for (int r = 0; r < nprocs; ++r) {
    lr_displs_[r] = static_cast<int>(std::min<long long>(total, INT_MAX));
    total += lr_counts_[r];
  }
  if (total > INT_MAX)
    error->all(FLERR, "{}: {} atoms are too many to gather on every rank (this route is meant for up to ~10^4 atoms)",
               what, total / 5);
  lr_all_.resize(static_cast<size_t>(total));
  MPI_Allgatherv(lr_send_.data(), mine, MPI_DOUBLE, lr_all_.data(), lr_counts_.data(), lr_displs_.data(), MPI_DOUBLE,
                 world);
  const int64_t n = total / 5;
  lr_order_.resize(n);
  std::iota(lr_order_.begin(), lr_order_.end(), int64_t(0));
  std::sort(lr_order_.begin(), lr_order_.end(),
            [this](int64_t a, int64_t b) { return lr_all_[5 * a] < lr_all_[5 * b]; });
  lr_pos_.resize(3 * n);
  lr_species_.resize(n);
  lr_tags_.resize(n);
  lr_rank_of_sorted_.resize(n);
  for (int64_t k = 0; k < n; ++k) {
    const double *a = &lr_all_[5 * lr_order_[k]];
    lr_tags_[k] = static_cast<tagint>(a[0]);
    lr_species_[k] = static_cast<int32_t>(a[1]);
    for (int d = 0; d < 3; ++d) lr_pos_[3 * k + d] = a[2 + d];
    lr_rank_of_sorted_[lr_order_[k]] = k;
  }

  // 3. the whole model on every rank (identical inputs, so identical results and errors)
  const double *h = domain->h;  // xprd, yprd, zprd, yz, xz, xy
  const double cell[9] = {h[0], 0.0, 0.0, h[5], h[1], 0.0, h[4], h[3], h[2]};
  atomforge::ComputeRequest request;
  request.n_threads = nthreads_;
  request.min_distance = min_distance_;
  request.total_charge = total_charge_;
  atomforge::EngineOutput out;
  try {
    model_->compute_positions(lr_pos_.data(), n, periodic ? cell : nullptr, {periodic, periodic, periodic},
                              lr_species_.data(), request, out);
  } catch (const atomforge::AtomsTooClose &e) {
    const tagint ti = lr_tags_[e.i()], tj = lr_tags_[e.j()];
    const std::string hint = "pair_style atomforge min_distance D sets the threshold";
    const std::string msg =
        ti == tj ? model_->describe_too_close(e, "atom with ID", std::to_string(ti), "its own periodic image", hint)
                 : model_->describe_too_close(e, "atoms with IDs", std::to_string(ti), std::to_string(tj), hint);
    error->all(FLERR, "pair_style atomforge: {} (step {})", msg, update->ntimestep);
  } catch (const std::exception &e) {
    error->all(FLERR, "{}: {} (step {})", what, e.what(), update->ntimestep);
  }
  ++n_evaluations_;
  if (comm->me != 0) out.extrapolation_features = out.extrapolation_centres = 0;  // counted once (rank 0)
  count_extrapolation(out);

  // 4. this rank's atoms; totals once
  const int64_t first = lr_displs_[comm->me] / 5;
  const bool has_charges = atom->q_flag && out.charges.size() == static_cast<size_t>(n);
  for (size_t m = 0; m < lr_local_.size(); ++m) {
    const int i = lr_local_[m];
    const int64_t k = lr_rank_of_sorted_[first + static_cast<int64_t>(m)];
    for (int d = 0; d < 3; ++d) f[i][d] += out.forces[3 * k + d];
    if (eflag_atom) eatom[i] += out.atomic_energies[k];
    if (has_charges) atom->q[i] = out.charges[k];
  }
  if (has_charges) comm->forward_comm(this);
  if (comm->me == 0) {
    if (eflag_global) eng_vdwl += out.energy;
    if (vflag_global) {
      const double *W = out.virial;
      virial[0] += W[0];
      virial[1] += W[4];
      virial[2] += W[8];
      virial[3] += 0.5 * (W[1] + W[3]);
      virial[4] += 0.5 * (W[2] + W[6]);
      virial[5] += 0.5 * (W[5] + W[7]);
    }
  }
}

int PairAtomForge::pack_forward_comm(int n, int *list, double *buf, int /*pbc_flag*/, int * /*pbc*/)
{
  for (int i = 0; i < n; ++i) buf[i] = atom->q[list[i]];
  return n;
}

void PairAtomForge::unpack_forward_comm(int n, int first, double *buf)
{
  for (int i = 0; i < n; ++i) atom->q[first + i] = buf[i];
}
