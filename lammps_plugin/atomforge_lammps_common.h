/* What pair_style atomforge and its computes share: reading a model file on rank 0 and
   broadcasting its bytes, and the core's NeighborView built from a LAMMPS full neighbour list. */
#ifndef LMP_ATOMFORGE_LAMMPS_COMMON_H
#define LMP_ATOMFORGE_LAMMPS_COMMON_H

#include <algorithm>
#include <fstream>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include "atomforge/engine.hpp"
#include "atomforge/neighbor_list.hpp"
#include "comm.h"
#include "error.h"
#include "lammps.h"
#include "neighbor.h"

namespace atomforge_lammps {

/// The bytes of the model file at `path`, read on rank 0 and broadcast to every rank (chunks of
/// 1 GiB). A file rank 0 cannot open stops every rank with "<who>: cannot open model file <path>".
inline std::string broadcast_model_file(LAMMPS_NS::LAMMPS *lmp, const std::string &path, const char *who) {
  MPI_Comm world = lmp->world;
  std::string bytes, message;
  int status = 0;
  if (lmp->comm->me == 0) {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
      status = 1;
      message = "cannot open model file " + path;
    } else {
      std::ostringstream ss;
      ss << in.rdbuf();
      bytes = ss.str();
    }
  }
  MPI_Bcast(&status, 1, MPI_INT, 0, world);
  if (status) {
    int len = static_cast<int>(message.size());
    MPI_Bcast(&len, 1, MPI_INT, 0, world);
    message.resize(len);
    MPI_Bcast(&message[0], len, MPI_CHAR, 0, world);
    lmp->error->all(FLERR, "{}: {}", who, message);
  }
  long long size = static_cast<long long>(bytes.size());
  MPI_Bcast(&size, 1, MPI_LONG_LONG, 0, world);
  bytes.resize(size);
  for (long long off = 0; off < size; off += (1LL << 30)) {
    const int chunk = static_cast<int>(std::min<long long>(1LL << 30, size - off));
    MPI_Bcast(&bytes[off], chunk, MPI_CHAR, 0, world);
  }
  return bytes;
}

/// The `cut` argument of gather_neighbors for a model: its cutoff (engine units), or -1 (the
/// whole list) for global models that need every atom of the molecule (sGDML).
inline double list_cutoff(const atomforge::EngineModel &model) {
  return model.model().requires_atom_order() ? -1.0 : model.cutoff();
}

/// The core's view of a LAMMPS full neighbour list: centres `order[0..n)` (atom indices) and their
/// neighbours, skipping atoms whose type maps to no species (type_species[type] < 0). Fills the
/// CSR arrays (kept by the caller across steps) and species (nall entries; unmapped atoms get 0,
/// never referenced). Positions in LAMMPS's units; the engine adapter converts them.
///
/// With cut > 0 (the model's cutoff, LAMMPS length units) neighbours beyond it are left out, as
/// every LAMMPS pair style does: LAMMPS's list reaches cut + skin (with the default 2 A skin and a
/// 6.35 A cutoff, 56 % of its pairs are beyond the cutoff), and the core would otherwise carry
/// those pairs through validation, the kernels' gather, the pair-gradient array and the scatter
/// only to find them out of range. The bound keeps a 1e-10 relative margin, so every pair the
/// kernels would use is passed and the results are unchanged.
inline atomforge::NeighborView gather_neighbors(const int *order, int n, const int *type,
                                                const std::vector<int> &type_species, int **firstneigh,
                                                const int *numneigh, double **x, int nall,
                                                std::vector<int> &species, std::vector<long long> &centres,
                                                std::vector<long long> &offsets,
                                                std::vector<long long> &neighbors, double cut = -1.0) {
  // cut <= 0: every pair passes (an infinite bound)
  const double cut_sq = cut > 0.0 ? cut * cut * (1.0 + 1e-10) : std::numeric_limits<double>::infinity();
  species.resize(nall);
  for (int p = 0; p < nall; ++p) species[p] = type_species[type[p]] >= 0 ? type_species[type[p]] : 0;
  // room for the whole list, then one branch-free pass: each neighbour is written at the count
  // and the count moves on only when it is kept (with LAMMPS's skin about a third of the pairs
  // are beyond the cutoff, at random: a branch per pair mispredicted often enough to make this
  // loop 3.8 % of a water force call on one core; issue 17, stop 52)
  size_t total = 0;
  for (int ii = 0; ii < n; ++ii) total += static_cast<size_t>(numneigh[order[ii]]);
  if (neighbors.size() < total) neighbors.resize(total);
  long long *out = neighbors.data();
  const double *xb = nall ? &x[0][0] : nullptr;  // LAMMPS's x is one contiguous (nall, 3) block
  const int *ts = type_species.data();
  size_t cnt = 0;
  centres.clear();
  offsets.assign(1, 0);
  for (int ii = 0; ii < n; ++ii) {
    const int i = order[ii];
    if (ts[type[i]] < 0) continue;
    centres.push_back(i);
    const int *jlist = firstneigh[i];
    const double xi = xb[3 * i], yi = xb[3 * i + 1], zi = xb[3 * i + 2];
    const int nn = numneigh[i];
    for (int jj = 0; jj < nn; ++jj) {
      const int j = jlist[jj] & NEIGHMASK;
      const double dx = xb[3 * j] - xi, dy = xb[3 * j + 1] - yi, dz = xb[3 * j + 2] - zi;
      // !(r2 > bound): a NaN position is passed on, for the core to report
      const bool keep = (ts[type[j]] >= 0) & !(dx * dx + dy * dy + dz * dz > cut_sq);
      out[cnt] = j;
      cnt += keep ? 1 : 0;
    }
    offsets.push_back(static_cast<long long>(cnt));
  }
  atomforge::NeighborView view;
  view.positions = nall ? &x[0][0] : nullptr;
  view.species = species.data();
  view.n_total = nall;
  view.centres = reinterpret_cast<const int64_t *>(centres.data());
  view.n_centres = static_cast<int64_t>(centres.size());
  view.offsets = reinterpret_cast<const int64_t *>(offsets.data());
  view.neighbors = reinterpret_cast<const int64_t *>(neighbors.data());
  return view;
}

}  // namespace atomforge_lammps

#endif
