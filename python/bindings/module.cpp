// pybind11 bindings of the atomforge core. Binding only: argument conversion, GIL release, no
// logic. Descriptors and models are bound through their interfaces (Descriptor, Model), built by
// the core's registries from model-file bytes, so a new descriptor or model type needs no edit
// here; model-specific training functions live in their own files (sgdml_bindings.cpp), the electrostatics
// in electrostatics_bindings.cpp.
// Inputs are taken as C-contiguous float64/int arrays without copies when they already have that
// layout (the Python layer ensures it); errors from the core (atomforge::InvalidInput) arrive in
// Python as ValueError with the core's message.
#include "atomforge/build_info.hpp"
#include "atomforge/descriptor.hpp"
#include "atomforge/engine.hpp"
#include "atomforge/model.hpp"
#include "atomforge/uncertainty.hpp"
#include "atomforge/units.hpp"
#include "bindings.hpp"

#include <cstring>

using namespace afpy;

namespace {

// ModelOutput -> dict of NumPy arrays; optional outputs the model did not fill are None.
py::dict output_to_dict(af::ModelOutput&& o, int64_t n_total) {
  py::dict d;
  auto opt = [](std::vector<double>&& v, std::vector<py::ssize_t> shape) -> py::object {
    if (v.empty()) return py::none();
    return to_numpy(std::move(v), std::move(shape));
  };
  const auto nc = static_cast<py::ssize_t>(o.atomic_energies.size());
  const auto nt = static_cast<py::ssize_t>(n_total);
  d["energy"] = o.energy;
  d["atomic_energies"] = to_numpy(std::move(o.atomic_energies), {nc});
  d["forces"] = opt(std::move(o.forces), {nt, 3});
  d["virial"] = py::array_t<double>({3, 3}, o.virial);
  d["per_atom_virial"] = opt(std::move(o.per_atom_virial), {nt, 3, 3});
  const auto m = static_cast<py::ssize_t>(o.committee_energies.size());
  d["committee_energies"] = to_numpy(std::move(o.committee_energies), {m});
  d["energy_uncertainty"] = o.energy_uncertainty;
  d["forces_uncertainty"] = opt(std::move(o.forces_uncertainty), {nt});
  d["atomic_energy_uncertainty"] = opt(std::move(o.atomic_energy_uncertainty), {nc});
  const auto nm = static_cast<py::ssize_t>(nt ? o.member_forces.size() / (3 * nt) : 0);
  d["member_forces"] = opt(std::move(o.member_forces), {nm, nt, 3});
  d["forces_uncertainty_scale"] = o.forces_uncertainty_scale;
  py::dict ex;
  ex["features"] = o.extrapolation_features;
  ex["centres"] = o.extrapolation_centres;
  ex["worst_centre"] = o.extrapolation_worst_centre;
  ex["worst_feature"] = o.extrapolation_worst_feature;
  ex["worst_excess"] = o.extrapolation_worst_excess;
  d["extrapolation"] = ex;
  // charge models fill no atomic energies: their per-centre count is that of the charges
  const auto nq = static_cast<py::ssize_t>(o.charges.size());
  const auto mc = nq > 0 ? static_cast<py::ssize_t>(o.charge_partials.size()) / (2 * nq) : 0;
  d["charges"] = opt(std::move(o.charges), {nq});
  d["dipole"] = opt(std::move(o.dipole), {3});
  d["charge_partials"] = opt(std::move(o.charge_partials), {nq, mc, 2});
  return d;
}

af::ComputeRequest make_request(bool forces, bool per_atom, bool uncertainty, double total_charge, int threads,
                                double min_distance) {
  af::ComputeRequest r;
  r.forces = forces;
  r.per_atom_virial = per_atom;
  r.uncertainty = uncertainty;
  r.total_charge = total_charge;
  r.n_threads = threads;
  r.min_distance = min_distance;
  return r;
}

// Raise `type(message)` with the message decoded leniently: messages may quote bytes read from
// files, and a strict UTF-8 decode would replace the real error with a codec error.
py::object raise_with_message(PyObject* type, const char* what, py::dict attrs = py::dict()) {
  py::object msg = py::reinterpret_steal<py::object>(PyUnicode_DecodeUTF8(what, std::strlen(what), "replace"));
  py::object exc = py::reinterpret_borrow<py::object>(type)(msg);
  for (auto item : attrs) py::setattr(exc, item.first, item.second);
  PyErr_SetObject(type, exc.ptr());
  return exc;
}

py::dict jacobian_to_dict(af::DescriptorJacobian&& j, py::array G) {
  const auto ne = static_cast<py::ssize_t>(j.position.size());
  const auto nf = static_cast<py::ssize_t>(j.n_features);
  const auto nc = static_cast<py::ssize_t>(j.entry_offsets.size()) - 1;
  py::dict d;
  d["G"] = G;
  d["entry_offsets"] = to_numpy(std::move(j.entry_offsets), {nc + 1});
  d["position"] = to_numpy(std::move(j.position), {ne});
  d["displacement"] = to_numpy(std::move(j.displacement), {ne, 3});
  d["values"] = to_numpy(std::move(j.values), {ne, nf, 3});
  return d;
}

af::ModelFile parse(py::bytes data, const std::string& where) {
  return af::ModelFile::from_bytes(std::string(data), where);
}

}  // namespace

PYBIND11_MODULE(_core, m) {
  m.doc() = "atomforge compiled core (C++17). Use the atomforge package, not this module.";
  // InvalidInput -> _core.InvalidInput (a ValueError); AtomsTooClose -> _core.AtomsTooClose (an
  // InvalidInput) with attributes i, j (atom or position indices), distance, min_distance
  // (Angstrom) and shift (lattice translation of j), so callers can name the atoms their way.
  static py::exception<af::InvalidInput> invalid_input(m, "InvalidInput", PyExc_ValueError);
  static py::exception<af::AtomsTooClose> too_close(m, "AtomsTooClose", invalid_input.ptr());
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const af::AtomsTooClose& e) {
      py::dict a;
      a["i"] = e.i();
      a["j"] = e.j();
      a["distance"] = e.distance();
      a["min_distance"] = e.min_distance();
      a["shift"] = py::make_tuple(e.shift()[0], e.shift()[1], e.shift()[2]);
      raise_with_message(too_close.ptr(), e.what(), a);
    } catch (const af::InvalidInput& e) {
      raise_with_message(invalid_input.ptr(), e.what());
    }
  });
  m.attr("__version__") = ATOMFORGE_VERSION;
  m.def("build_info", &af::build_info);
  m.def("cuda_device_count", &af::cuda_device_count);
  m.def("max_threads", &af::available_threads,
        "OpenMP threads this process may use (the processors OpenMP sees): the core clamps every thread "
        "request, OMP_NUM_THREADS included, to it.");
  m.attr("DEFAULT_MIN_DISTANCE") = af::kDefaultMinDistance;
  m.attr("MAX_IMAGE_POSITIONS") = af::kMaxImagePositions;
  m.attr("MAX_NEIGHBORS") = af::kMaxNeighbors;
  m.def("built_with_cuda", &af::built_with_cuda);
  m.def("unit_constants", []() {
    int n = 0;
    const af::units::Constant* c = af::units::constants(&n);
    py::dict d;
    for (int k = 0; k < n; ++k) d[c[k].name] = py::make_tuple(c[k].value, c[k].meaning);
    return d;
  }, "The core's table of physical constants: name -> (value, meaning) (atomforge/units.hpp).");
  m.def("engine_units", [](const std::string& name) {
    const af::EngineUnits u = af::engine_units(name);
    py::dict d;
    d["name"] = u.name;
    d["length_in_angstrom"] = u.length_in_angstrom;
    d["energy_in_ev"] = u.energy_in_ev;
    return d;
  }, py::arg("name"));
  m.def("descriptor_types", []() {
    py::dict d;
    for (const auto& t : af::descriptor_types()) d[t.name] = t.summary;
    return d;
  });
  m.def("model_types", []() {
    py::dict d;
    for (const auto& t : af::model_types()) d[t.name] = t.summary;
    return d;
  });

  m.def("force_deviation", [](darr member_forces, double scale) {
    if (member_forces.ndim() != 3 || member_forces.shape(2) != 3)
      throw af::InvalidInput("member_forces must have shape (M, n, 3)");
    const int M = static_cast<int>(member_forces.shape(0));
    const int64_t n = member_forces.shape(1);
    std::vector<double> eps(n);
    {
      py::gil_scoped_release release;
      af::force_deviation(member_forces.data(), M, n, 3 * n, scale, eps.data());
    }
    return to_numpy(std::move(eps), {static_cast<py::ssize_t>(n)});
  }, py::arg("member_forces"), py::arg("scale") = 1.0,
     "Per-atom force deviation sqrt(mean_m |F_i^m - <F_i>|^2) * scale of folded member forces (M, n, 3) "
     "(atomforge/uncertainty.hpp).");

  py::class_<af::NeighborList>(m, "NeighborList")
      .def_property_readonly("n_local", [](const af::NeighborList& n) { return n.n_local; })
      .def_property_readonly("n_total", &af::NeighborList::n_total)
      .def_property_readonly("n_pairs", &af::NeighborList::n_pairs)
      .def_property_readonly("cutoff", [](const af::NeighborList& n) { return n.cutoff; })
      .def_property_readonly("min_distance", [](const af::NeighborList& n) { return n.min_distance; })
      .def_property_readonly("positions", [](py::object self) {
        auto& n = self.cast<const af::NeighborList&>();
        return py::array_t<double>({n.n_total(), int64_t(3)}, n.positions.data(), self);
      })
      .def_property_readonly("owner", [](py::object self) {
        auto& n = self.cast<const af::NeighborList&>();
        return py::array_t<int64_t>({n.n_total()}, n.owner.data(), self);
      })
      .def_property_readonly("shift", [](py::object self) {
        auto& n = self.cast<const af::NeighborList&>();
        return py::array_t<int32_t>({n.n_total(), int64_t(3)}, n.shift.data(), self);
      })
      .def_property_readonly("offsets", [](py::object self) {
        auto& n = self.cast<const af::NeighborList&>();
        return py::array_t<int64_t>({n.n_local + 1}, n.offsets.data(), self);
      })
      .def_property_readonly("neighbors", [](py::object self) {
        auto& n = self.cast<const af::NeighborList&>();
        return py::array_t<int64_t>({n.n_pairs()}, n.neighbors.data(), self);
      })
      .def_property_readonly("species", [](py::object self) {
        auto& n = self.cast<const af::NeighborList&>();
        return py::array_t<int32_t>({static_cast<int64_t>(n.species.size())}, n.species.data(), self);
      })
      .def("set_species", [](af::NeighborList& n, i32arr s) {
        require_shape(s, {n.n_local}, "species");
        n.set_species(s.data());
      })
      .def("fold", [](const af::NeighborList& n, darr v) {
        require_shape(v, {n.n_total(), 3}, "per-position array");
        return to_numpy(n.fold(v.data()), {n.n_local, 3});
      });

  m.def(
      "build_neighbor_list",
      [](darr positions, darr cell, std::array<bool, 3> pbc, double cutoff, double min_distance, int threads) {
        require_shape(positions, {-1, 3}, "positions");
        require_shape(cell, {3, 3}, "cell");
        py::gil_scoped_release release;
        return af::build_neighbor_list(positions.data(), positions.shape(0), cell.data(), pbc, cutoff, min_distance,
                                       threads);
      },
      py::arg("positions"), py::arg("cell"), py::arg("pbc"), py::arg("cutoff"),
      py::arg("min_distance") = af::kDefaultMinDistance, py::arg("threads") = 0);

  // ---- descriptors: any registered type, through the interface
  py::class_<af::Descriptor, std::shared_ptr<af::Descriptor>>(m, "Descriptor")
      .def_property_readonly("type", &af::Descriptor::type)
      .def_property_readonly("n_elements", &af::Descriptor::n_elements)
      .def_property_readonly("n_features", [](const af::Descriptor& s) { return s.n_features(); })
      .def("n_features_of", [](const af::Descriptor& s, int32_t e) { return s.n_features(e); })
      .def_property_readonly("cutoff", &af::Descriptor::cutoff)
      .def("feature_labels", &af::Descriptor::feature_labels)
      .def("compute",
           [](const af::Descriptor& s, const af::NeighborList& nl, int threads) {
             std::vector<double> G(nl.n_local * s.n_features());
             {
               py::gil_scoped_release release;
               s.compute(nl.view(), G.data(), threads);
             }
             return to_numpy(std::move(G), {nl.n_local, s.n_features()});
           },
           py::arg("neighbor_list"), py::arg("threads") = 0)
      .def("compute_csr",
           [](const af::Descriptor& s, darr pos, i32arr sp, i64arr off, i64arr nb, py::object centres, int threads,
              double min_distance) {
             CsrArrays a = make_csr(pos, sp, off, nb, centres);
             auto v = a.view();
             v.min_distance = min_distance;
             std::vector<double> G(v.n_centres * s.n_features());
             {
               py::gil_scoped_release release;
               s.compute(v, G.data(), threads);
             }
             return to_numpy(std::move(G), {v.n_centres, s.n_features()});
           },
           py::arg("positions"), py::arg("species"), py::arg("offsets"), py::arg("neighbors"),
           py::arg("centres") = py::none(), py::arg("threads") = 0, py::arg("min_distance") = af::kDefaultMinDistance)
      .def("vjp",
           [](const af::Descriptor& s, const af::NeighborList& nl, darr dEdG, bool per_atom, int threads) {
             require_shape(dEdG, {nl.n_local, s.n_features()}, "dE_dG");
             const int64_t nt = nl.n_total();
             std::vector<double> F(3 * nt), W(9), Wa(per_atom ? 9 * nt : 0);
             {
               py::gil_scoped_release release;
               s.vjp(nl.view(), dEdG.data(), F.data(), W.data(), per_atom ? Wa.data() : nullptr, threads);
             }
             py::object wa = py::none();
             if (per_atom) wa = to_numpy(std::move(Wa), {nt, int64_t(3), int64_t(3)});
             return py::make_tuple(to_numpy(std::move(F), {nt, int64_t(3)}), to_numpy(std::move(W), {3, 3}), wa);
           },
           py::arg("neighbor_list"), py::arg("dE_dG"), py::arg("per_atom_virial") = false, py::arg("threads") = 0)
      .def("vjp_csr",
           [](const af::Descriptor& s, darr pos, i32arr sp, i64arr off, i64arr nb, darr dEdG, py::object centres,
              int threads, double min_distance) {
             CsrArrays a = make_csr(pos, sp, off, nb, centres);
             auto v = a.view();
             v.min_distance = min_distance;
             require_shape(dEdG, {v.n_centres, s.n_features()}, "dE_dG");
             std::vector<double> F(3 * v.n_total), W(9);
             {
               py::gil_scoped_release release;
               s.vjp(v, dEdG.data(), F.data(), W.data(), nullptr, threads);
             }
             return py::make_tuple(to_numpy(std::move(F), {v.n_total, int64_t(3)}), to_numpy(std::move(W), {3, 3}));
           },
           py::arg("positions"), py::arg("species"), py::arg("offsets"), py::arg("neighbors"), py::arg("dE_dG"),
           py::arg("centres") = py::none(), py::arg("threads") = 0, py::arg("min_distance") = af::kDefaultMinDistance)
      .def_property_readonly("has_cuda", &af::Descriptor::has_cuda)
      .def("compute_cuda",
           [](const af::Descriptor& s, const af::NeighborList& nl, int64_t scratch_bytes) {
             std::vector<double> G(nl.n_local * s.n_features());
             {
               py::gil_scoped_release release;
               s.compute_cuda(nl.view(), G.data(), scratch_bytes);
             }
             return to_numpy(std::move(G), {nl.n_local, s.n_features()});
           },
           py::arg("neighbor_list"), py::arg("scratch_bytes") = af::Descriptor::kCudaScratchBytes)
      .def("vjp_cuda",
           [](const af::Descriptor& s, const af::NeighborList& nl, darr dEdG, int64_t scratch_bytes) {
             require_shape(dEdG, {nl.n_local, s.n_features()}, "dE_dG");
             const int64_t nt = nl.n_total();
             std::vector<double> F(3 * nt), W(9);
             {
               py::gil_scoped_release release;
               s.vjp_cuda(nl.view(), dEdG.data(), F.data(), W.data(), scratch_bytes);
             }
             return py::make_tuple(to_numpy(std::move(F), {nt, int64_t(3)}), to_numpy(std::move(W), {3, 3}));
           },
           py::arg("neighbor_list"), py::arg("dE_dG"), py::arg("scratch_bytes") = af::Descriptor::kCudaScratchBytes)
      .def("jacobian",
           [](const af::Descriptor& s, const af::NeighborList& nl, int threads) {
             std::vector<double> G(nl.n_local * s.n_features());
             af::DescriptorJacobian j;
             {
               py::gil_scoped_release release;
               j = s.jacobian(nl.view(), G.data(), threads);
             }
             return jacobian_to_dict(std::move(j), to_numpy(std::move(G), {nl.n_local, s.n_features()}));
           },
           py::arg("neighbor_list"), py::arg("threads") = 0);

  m.def("make_descriptor", [](py::bytes data, const std::string& where) {
    return std::shared_ptr<af::Descriptor>(af::make_descriptor(parse(data, where)));
  }, py::arg("data"), py::arg("where") = "<descriptor>",
     "Build a descriptor from model-file bytes holding `species` and the `descriptor.*` records.");

  // ---- models: any registered type, through the interface
  py::class_<af::Model, std::shared_ptr<af::Model>>(m, "Model")
      .def_property_readonly("model_type", &af::Model::model_type)
      .def_property_readonly("species", &af::Model::species)
      .def_property_readonly("cutoff", &af::Model::cutoff)
      .def_property_readonly("committee_size", &af::Model::committee_size)
      .def_property_readonly("capabilities", [](const af::Model& p) {
        py::list caps;
        const unsigned c = p.capabilities();
        if (c & af::kEnergy) caps.append("energy");
        if (c & af::kCharges) caps.append("charges");
        if (c & af::kDipole) caps.append("dipole");
        if (c & af::kUncertainty) caps.append("uncertainty");
        if (c & af::kFeatureRange) caps.append("feature_range");
        if (c & af::kLongRange) caps.append("long_range");
        return caps;
      })
      .def_property_readonly("requires_atom_order", &af::Model::requires_atom_order)
      .def("describe", &af::Model::describe)
      .def("compute",
           [](const af::Model& p, const af::NeighborList& nl, bool per_atom, int threads, bool forces,
              bool uncertainty, double total_charge, py::object min_distance, py::object cell, py::object pbc) {
             af::ModelOutput o;
             auto req = make_request(forces, per_atom, uncertainty, total_charge, threads,
                                     min_distance.is_none() ? nl.min_distance : min_distance.cast<double>());
             // the cell and periodicity, for long-range models (kLongRange)
             std::vector<double> cellv;
             if (!cell.is_none()) {
               darr c = cell.cast<darr>();
               require_shape(c, {3, 3}, "cell");
               cellv.assign(c.data(), c.data() + 9);
               req.cell = cellv.data();
             }
             if (!pbc.is_none()) {
               auto b = pbc.cast<std::vector<bool>>();
               if (b.size() != 3) throw py::value_error("pbc must have three entries");
               for (int d = 0; d < 3; ++d) req.pbc[d] = b[d];
             }
             {
               py::gil_scoped_release release;
               p.compute(nl.view(), req, o);
             }
             return output_to_dict(std::move(o), nl.n_total());
           },
           py::arg("neighbor_list"), py::arg("per_atom_virial") = false, py::arg("threads") = 0,
           py::arg("forces") = true, py::arg("uncertainty") = false, py::arg("total_charge") = 0.0,
           py::arg("min_distance") = py::none(), py::arg("cell") = py::none(), py::arg("pbc") = py::none())
      .def("compute_csr",
           [](const af::Model& p, darr pos, i32arr sp, i64arr off, i64arr nb, py::object centres, bool per_atom,
              int threads, double min_distance) {
             if (p.capabilities() & af::kLongRange)
               throw py::value_error("compute_csr cannot evaluate a '" + p.model_type() +
                                     "' model: its long-range electrostatics needs every atom and the cell "
                                     "(use compute with the core's neighbour list)");
             CsrArrays a = make_csr(pos, sp, off, nb, centres);
             auto v = a.view();
             af::ModelOutput o;
             const auto req = make_request(true, per_atom, false, 0.0, threads, min_distance);
             {
               py::gil_scoped_release release;
               p.compute(v, req, o);
             }
             return output_to_dict(std::move(o), v.n_total);
           },
           py::arg("positions"), py::arg("species"), py::arg("offsets"), py::arg("neighbors"),
           py::arg("centres") = py::none(), py::arg("per_atom_virial") = false, py::arg("threads") = 0,
           py::arg("min_distance") = af::kDefaultMinDistance);

  m.def("load_model", [](const std::string& path) { return std::shared_ptr<af::Model>(af::load_model(path)); },
        py::arg("path"));
  m.def("load_model_bytes", [](py::bytes data, const std::string& where) {
    return std::shared_ptr<af::Model>(af::load_model(parse(data, where)));
  }, py::arg("data"), py::arg("where") = "<bytes>");

  bind_sgdml(m);
  bind_electrostatics(m);
}
