/* pair_style atomforge: machine-learned potentials from atomforge model files.

   pair_style atomforge [min_distance D]
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
   reverse-communicates ghost forces itself). */
#ifndef LMP_PAIR_ATOMFORGE_H
#define LMP_PAIR_ATOMFORGE_H

#include <memory>
#include <string>
#include <vector>

#include "pair.h"

namespace atomforge {
class EngineModel;
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
  double memory_usage() override;

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
};

}  // namespace LAMMPS_NS

#endif
