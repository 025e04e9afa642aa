// Electrostatics bindings: the core's Ewald / open-boundary sums (src/electrostatics/ewald.hpp).
// Binding only; the Python API with its documentation is atomforge.electrostatics.
#include "bindings.hpp"
#include "electrostatics/ewald.hpp"

namespace afpy {

void bind_electrostatics(py::module_& m) {
  m.def(
      "electrostatics",
      [](darr positions, darr charges, py::object sigma, py::object cell, bool periodic, double accuracy,
         double alpha, double min_distance, int threads) {
        require_shape(positions, {-1, 3}, "positions");
        const int64_t n = positions.shape(0);
        require_shape(charges, {n}, "charges");
        darr s, c;
        if (!sigma.is_none()) {
          s = sigma.cast<darr>();
          require_shape(s, {n}, "sigma");
        }
        if (!cell.is_none()) {
          c = cell.cast<darr>();
          require_shape(c, {3, 3}, "cell");
        }
        af::EwaldOptions o;
        o.accuracy = accuracy;
        o.alpha = alpha;
        o.min_distance = min_distance;
        o.n_threads = threads;
        af::ElectrostaticsResult r;
        {
          py::gil_scoped_release release;
          r = af::electrostatics(positions.data(), charges.data(), sigma.is_none() ? nullptr : s.data(), n,
                                 cell.is_none() ? nullptr : c.data(), periodic, o);
        }
        py::dict d;
        d["energy"] = r.energy;
        d["forces"] = to_numpy(std::move(r.forces), {n, 3});
        d["potential"] = to_numpy(std::move(r.potential), {n});
        d["virial"] = py::array_t<double>({3, 3}, r.virial);
        d["energy_real"] = r.energy_real;
        d["energy_reciprocal"] = r.energy_reciprocal;
        d["energy_self"] = r.energy_self;
        d["energy_background"] = r.energy_background;
        if (r.periodic) {
          const auto& p = r.parameters;
          py::dict pd;
          pd["accuracy"] = p.accuracy;
          pd["s"] = p.s;
          pd["alpha"] = p.alpha;
          pd["r_cut"] = p.r_cut;
          pd["k_cut"] = p.k_cut;
          pd["kmax"] = py::make_tuple(p.kmax[0], p.kmax[1], p.kmax[2]);
          pd["n_kvectors"] = p.n_kvectors;
          d["parameters"] = pd;
        } else {
          d["parameters"] = py::none();
        }
        return d;
      },
      py::arg("positions"), py::arg("charges"), py::arg("sigma"), py::arg("cell"), py::arg("periodic"),
      py::arg("accuracy"), py::arg("alpha"), py::arg("min_distance"), py::arg("threads"),
      "Core electrostatics (atomforge.electrostatics.ewald is the documented API).");
  m.def("ewald_s", &af::ewald_s, py::arg("accuracy"));
  m.def(
      "dipole_ewald_alpha",
      [](py::array_t<double, py::array::c_style | py::array::forcecast> cell, int64_t n, double accuracy) {
        if (cell.size() != 9) throw py::value_error("cell must be (3, 3)");
        return af::dipole_ewald_alpha(cell.data(), n, accuracy);
      },
      py::arg("cell"), py::arg("n"), py::arg("accuracy"),
      "Ewald splitting parameter (1/Angstrom) of the pinn model's dense dipole sums (src/electrostatics/ewald.hpp).");
  m.attr("EWALD_MIN_ACCURACY") = af::kEwaldMinAccuracy;
  m.attr("EWALD_MAX_ACCURACY") = af::kEwaldMaxAccuracy;
}

}  // namespace afpy
