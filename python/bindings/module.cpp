// pybind11 bindings of the atomforge core. Binding only: argument conversion, GIL release, no
// logic. Inputs are taken as C-contiguous float64/int arrays without copies when they already
// have that layout (the Python layer ensures it); errors from the core (atomforge::InvalidInput)
// arrive in Python as ValueError with the core's message.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "atomforge/errors.hpp"
#include "atomforge/neighbor_list.hpp"
#include "atomforge/symmetry_functions.hpp"
#include "atomforge/potential.hpp"
#include "atomforge/bpnn.hpp"
#include "atomforge/sgdml.hpp"

namespace py = pybind11;
namespace af = atomforge;

using darr = py::array_t<double, py::array::c_style>;
using i32arr = py::array_t<int32_t, py::array::c_style>;
using i64arr = py::array_t<int64_t, py::array::c_style>;

namespace {

void require_shape(const py::array& a, std::initializer_list<py::ssize_t> shape, const char* name) {
  bool ok = a.ndim() == static_cast<py::ssize_t>(shape.size());
  size_t k = 0;
  for (auto s : shape) {
    if (!ok) break;
    if (s >= 0 && a.shape(k) != s) ok = false;
    ++k;
  }
  if (!ok) throw af::InvalidInput(std::string(name) + " has the wrong shape");
}

template <class T>
py::array_t<T> to_numpy(std::vector<T>&& v, std::vector<py::ssize_t> shape) {
  auto* heap = new std::vector<T>(std::move(v));
  py::capsule owner(heap, [](void* p) { delete static_cast<std::vector<T>*>(p); });
  return py::array_t<T>(shape, heap->data(), owner);
}

// A CSR neighbour list given as arrays (e.g. LAMMPS-style lists built outside the core).
struct CsrArrays {
  darr positions;
  i32arr species;
  i64arr offsets, neighbors, centres;
  bool has_centres = false;
  af::NeighborView view() const {
    af::NeighborView v;
    v.positions = positions.data();
    v.species = species.data();
    v.n_total = positions.shape(0);
    v.n_centres = offsets.shape(0) - 1;
    v.offsets = offsets.data();
    v.neighbors = neighbors.data();
    v.centres = has_centres ? centres.data() : nullptr;
    return v;
  }
};

CsrArrays make_csr(darr positions, i32arr species, i64arr offsets, i64arr neighbors,
                   py::object centres) {
  require_shape(positions, {-1, 3}, "positions");
  require_shape(species, {positions.shape(0)}, "species");
  require_shape(offsets, {-1}, "offsets");
  require_shape(neighbors, {-1}, "neighbors");
  if (offsets.shape(0) < 1) throw af::InvalidInput("offsets needs n_centres + 1 entries");
  const int64_t nc = offsets.shape(0) - 1;
  if (offsets.at(nc) != neighbors.shape(0))
    throw af::InvalidInput("offsets[-1] must equal len(neighbors)");
  CsrArrays a{positions, species, offsets, neighbors, i64arr(0), false};
  if (!centres.is_none()) {
    a.centres = centres.cast<i64arr>();
    require_shape(a.centres, {nc}, "centres");
    a.has_centres = true;
  } else if (nc > positions.shape(0)) {
    throw af::InvalidInput("more centres than positions");
  }
  return a;
}

py::dict output_to_dict(af::PotentialOutput&& o, int64_t n_total, bool per_atom) {
  py::dict d;
  d["energy"] = o.energy;
  const auto nc = static_cast<py::ssize_t>(o.atomic_energies.size());
  d["atomic_energies"] = to_numpy(std::move(o.atomic_energies), {nc});
  d["forces"] = to_numpy(std::move(o.forces), {n_total, int64_t(3)});
  d["virial"] = py::array_t<double>({3, 3}, o.virial);
  d["per_atom_virial"] = per_atom ? py::object(to_numpy(std::move(o.per_atom_virial), {n_total, int64_t(3), int64_t(3)}))
                                  : py::object(py::none());
  const auto m = static_cast<py::ssize_t>(o.committee_energies.size());
  d["committee_energies"] = to_numpy(std::move(o.committee_energies), {m});
  d["energy_uncertainty"] = o.energy_uncertainty;
  return d;
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

}  // namespace

PYBIND11_MODULE(_core, m) {
  m.doc() = "atomforge compiled core (C++17). Use the atomforge package, not this module.";
  py::register_exception<af::InvalidInput>(m, "InvalidInput", PyExc_ValueError);
  m.attr("__version__") = ATOMFORGE_VERSION;
  m.def("build_info", &af::build_info);
  m.def("cuda_device_count", &af::cuda_device_count);

  py::class_<af::NeighborList>(m, "NeighborList")
      .def_property_readonly("n_local", [](const af::NeighborList& n) { return n.n_local; })
      .def_property_readonly("n_total", &af::NeighborList::n_total)
      .def_property_readonly("n_pairs", &af::NeighborList::n_pairs)
      .def_property_readonly("cutoff", [](const af::NeighborList& n) { return n.cutoff; })
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
      [](darr positions, darr cell, std::array<bool, 3> pbc, double cutoff) {
        require_shape(positions, {-1, 3}, "positions");
        require_shape(cell, {3, 3}, "cell");
        py::gil_scoped_release release;
        return af::build_neighbor_list(positions.data(), positions.shape(0), cell.data(), pbc, cutoff);
      },
      py::arg("positions"), py::arg("cell"), py::arg("pbc"), py::arg("cutoff"));

  py::class_<af::SymmetryFunctions>(m, "SymmetryFunctions")
      .def(py::init([](int32_t n_elements, i32arr type, i32arr centre, i32arr n1, i32arr n2,
                       darr eta, darr r_s, darr r_c, darr lambda, darr zeta, const std::string& cutoff) {
             const auto n = type.shape(0);
             for (auto* a : {&centre, &n1, &n2}) require_shape(*a, {n}, "function element array");
             for (auto* a : {&eta, &r_s, &r_c, &lambda, &zeta}) require_shape(*a, {n}, "function parameter array");
             std::vector<af::SymmetryFunctionSpec> specs(n);
             for (py::ssize_t k = 0; k < n; ++k) {
               specs[k].type = static_cast<af::SymmetryFunctionType>(type.at(k));
               specs[k].centre = centre.at(k);
               specs[k].neighbor1 = n1.at(k);
               specs[k].neighbor2 = n2.at(k);
               specs[k].eta = eta.at(k);
               specs[k].r_s = r_s.at(k);
               specs[k].r_c = r_c.at(k);
               specs[k].lambda = lambda.at(k);
               specs[k].zeta = zeta.at(k);
             }
             return af::SymmetryFunctions(n_elements, std::move(specs), af::cutoff_type_from_string(cutoff));
           }),
           py::arg("n_elements"), py::arg("type"), py::arg("centre"), py::arg("neighbor1"),
           py::arg("neighbor2"), py::arg("eta"), py::arg("r_s"), py::arg("r_c"), py::arg("lambda_"),
           py::arg("zeta"), py::arg("cutoff"))
      .def_property_readonly("n_features", [](const af::SymmetryFunctions& s) { return s.n_features(); })
      .def("n_features_of", [](const af::SymmetryFunctions& s, int32_t e) { return s.n_features(e); })
      .def_property_readonly("max_cutoff", &af::SymmetryFunctions::max_cutoff)
      .def("compute",
           [](const af::SymmetryFunctions& s, const af::NeighborList& nl, int threads) {
             std::vector<double> G(nl.n_local * s.n_features());
             {
               py::gil_scoped_release release;
               s.compute(nl.view(), G.data(), threads);
             }
             return to_numpy(std::move(G), {nl.n_local, s.n_features()});
           },
           py::arg("neighbor_list"), py::arg("threads") = 0)
      .def("compute_csr",
           [](const af::SymmetryFunctions& s, darr pos, i32arr sp, i64arr off, i64arr nb,
              py::object centres, int threads) {
             CsrArrays a = make_csr(pos, sp, off, nb, centres);
             auto v = a.view();
             std::vector<double> G(v.n_centres * s.n_features());
             {
               py::gil_scoped_release release;
               s.compute(v, G.data(), threads);
             }
             return to_numpy(std::move(G), {v.n_centres, s.n_features()});
           },
           py::arg("positions"), py::arg("species"), py::arg("offsets"), py::arg("neighbors"),
           py::arg("centres") = py::none(), py::arg("threads") = 0)
      .def("vjp",
           [](const af::SymmetryFunctions& s, const af::NeighborList& nl, darr dEdG, bool per_atom,
              int threads) {
             require_shape(dEdG, {nl.n_local, s.n_features()}, "dE_dG");
             const int64_t nt = nl.n_total();
             std::vector<double> F(3 * nt), W(9), Wa(per_atom ? 9 * nt : 0);
             {
               py::gil_scoped_release release;
               s.vjp(nl.view(), dEdG.data(), F.data(), W.data(), per_atom ? Wa.data() : nullptr, threads);
             }
             py::object wa = py::none();
             if (per_atom) wa = to_numpy(std::move(Wa), {nt, int64_t(3), int64_t(3)});
             return py::make_tuple(to_numpy(std::move(F), {nt, int64_t(3)}),
                                   to_numpy(std::move(W), {3, 3}), wa);
           },
           py::arg("neighbor_list"), py::arg("dE_dG"), py::arg("per_atom_virial") = false,
           py::arg("threads") = 0)
      .def("vjp_csr",
           [](const af::SymmetryFunctions& s, darr pos, i32arr sp, i64arr off, i64arr nb,
              darr dEdG, py::object centres, int threads) {
             CsrArrays a = make_csr(pos, sp, off, nb, centres);
             auto v = a.view();
             require_shape(dEdG, {v.n_centres, s.n_features()}, "dE_dG");
             std::vector<double> F(3 * v.n_total), W(9);
             {
               py::gil_scoped_release release;
               s.vjp(v, dEdG.data(), F.data(), W.data(), nullptr, threads);
             }
             return py::make_tuple(to_numpy(std::move(F), {v.n_total, int64_t(3)}),
                                   to_numpy(std::move(W), {3, 3}));
           },
           py::arg("positions"), py::arg("species"), py::arg("offsets"), py::arg("neighbors"),
           py::arg("dE_dG"), py::arg("centres") = py::none(), py::arg("threads") = 0)
      .def("jacobian",
           [](const af::SymmetryFunctions& s, const af::NeighborList& nl, int threads) {
             std::vector<double> G(nl.n_local * s.n_features());
             af::DescriptorJacobian j;
             {
               py::gil_scoped_release release;
               j = s.jacobian(nl.view(), G.data(), threads);
             }
             return jacobian_to_dict(std::move(j), to_numpy(std::move(G), {nl.n_local, s.n_features()}));
           },
           py::arg("neighbor_list"), py::arg("threads") = 0);

  py::class_<af::Potential, std::shared_ptr<af::Potential>>(m, "Potential")
      .def_property_readonly("model_type", &af::Potential::model_type)
      .def_property_readonly("species", &af::Potential::species)
      .def_property_readonly("cutoff", &af::Potential::cutoff)
      .def_property_readonly("committee_size", [](const af::Potential& p) {
        auto* b = dynamic_cast<const af::BPNN*>(&p);
        return b ? b->committee_size() : 1;
      })
      .def("compute",
           [](const af::Potential& p, const af::NeighborList& nl, bool per_atom, int threads) {
             af::PotentialOutput o;
             {
               py::gil_scoped_release release;
               p.compute(nl.view(), o, per_atom, threads);
             }
             return output_to_dict(std::move(o), nl.n_total(), per_atom);
           },
           py::arg("neighbor_list"), py::arg("per_atom_virial") = false, py::arg("threads") = 0)
      .def("compute_csr",
           [](const af::Potential& p, darr pos, i32arr sp, i64arr off, i64arr nb, py::object centres,
              bool per_atom, int threads) {
             CsrArrays a = make_csr(pos, sp, off, nb, centres);
             auto v = a.view();
             af::PotentialOutput o;
             {
               py::gil_scoped_release release;
               p.compute(v, o, per_atom, threads);
             }
             return output_to_dict(std::move(o), v.n_total, per_atom);
           },
           py::arg("positions"), py::arg("species"), py::arg("offsets"), py::arg("neighbors"),
           py::arg("centres") = py::none(), py::arg("per_atom_virial") = false, py::arg("threads") = 0);

  m.def("load_potential", [](const std::string& path) {
    return std::shared_ptr<af::Potential>(af::load_potential(path));
  }, py::arg("path"));
  m.def("load_potential_bytes", [](py::bytes data, const std::string& where) {
    return std::shared_ptr<af::Potential>(af::load_potential(af::ModelFile::from_bytes(std::string(data), where)));
  }, py::arg("data"), py::arg("where") = "<bytes>");


  // ---- sGDML (docs/sgdml.md): batched prediction, kernel-vector product, kernel matrix
  py::class_<af::SGDML, af::Potential, std::shared_ptr<af::SGDML>>(m, "SGDML")
      .def_property_readonly("numbers", &af::SGDML::numbers)
      .def_property_readonly("n_train", &af::SGDML::n_train)
      .def_property_readonly("n_perms", &af::SGDML::n_perms)
      .def_property_readonly("sigma", &af::SGDML::sigma)
      .def_property_readonly("formula", &af::SGDML::formula)
      .def("predict",
           [](const af::SGDML& p, darr R, int threads) {
             require_shape(R, {-1, p.n_atoms(), 3}, "R");
             const int64_t B = R.shape(0);
             std::vector<double> E(B), F(B * 3 * p.n_atoms());
             {
               py::gil_scoped_release release;
               p.predict(R.data(), B, E.data(), F.data(), threads);
             }
             return py::make_tuple(to_numpy(std::move(E), {B}), to_numpy(std::move(F), {B, p.n_atoms(), int64_t(3)}));
           },
           py::arg("R"), py::arg("threads") = 0);
  m.def("sgdml_descriptors", [](darr R, int threads) {
    require_shape(R, {-1, -1, 3}, "R");
    const int64_t B = R.shape(0), n = R.shape(1), d = af::sgdml_descriptor_size(n);
    std::vector<double> X(B * d);
    {
      py::gil_scoped_release release;
      af::sgdml_descriptors(R.data(), B, n, X.data(), threads);
    }
    return to_numpy(std::move(X), {B, d});
  }, py::arg("R"), py::arg("threads") = 0);
  m.def("sgdml_kernel_sum", [](darr R, darr X, darr V, double sigma, int threads) {
    require_shape(R, {-1, -1, 3}, "R");
    const int64_t B = R.shape(0), n = R.shape(1), d = af::sgdml_descriptor_size(n);
    require_shape(X, {-1, d}, "train_x");
    require_shape(V, {X.shape(0), d}, "train_v");
    std::vector<double> E(B), F(B * 3 * n);
    {
      py::gil_scoped_release release;
      af::sgdml_kernel_sum(R.data(), B, n, X.data(), V.data(), X.shape(0), sigma, E.data(), F.data(), threads);
    }
    return py::make_tuple(to_numpy(std::move(E), {B}), to_numpy(std::move(F), {B, n, int64_t(3)}));
  }, py::arg("R"), py::arg("train_x"), py::arg("train_v"), py::arg("sigma"), py::arg("threads") = 0);
  m.def("sgdml_kernel_matrix", [](darr R, i64arr tril_perms, double sigma, i64arr rows, bool lower_only,
                                  py::object out, int threads) {
    require_shape(R, {-1, -1, 3}, "R");
    const int64_t M = R.shape(0), n = R.shape(1), d = af::sgdml_descriptor_size(n);
    require_shape(tril_perms, {-1, d}, "tril_perms");
    require_shape(rows, {-1}, "rows");
    const int64_t nr = rows.shape(0);
    darr K;
    if (out.is_none()) {
      K = darr({nr * 3 * n, M * 3 * n});
    } else {
      K = out.cast<darr>();
      require_shape(K, {nr * 3 * n, M * 3 * n}, "out");
      if (!K.writeable() || K.ptr() != out.ptr()) throw af::InvalidInput("out must be a writeable C-contiguous float64 array");
    }
    double* kp = K.mutable_data();
    {
      py::gil_scoped_release release;
      af::sgdml_kernel_matrix(R.data(), M, n, tril_perms.data(), tril_perms.shape(0), sigma, rows.data(), nr,
                              lower_only, kp, threads);
    }
    return K;
  }, py::arg("R"), py::arg("tril_perms"), py::arg("sigma"), py::arg("rows"), py::arg("lower_only") = false,
     py::arg("out") = py::none(), py::arg("threads") = 0);
  m.def("sgdml_tril_perms", [](i64arr perms) {
    require_shape(perms, {-1, -1}, "perms");
    const int64_t S = perms.shape(0), n = perms.shape(1), d = af::sgdml_descriptor_size(n);
    std::vector<int64_t> out(S * d);
    for (int64_t p = 0; p < S; ++p) {
      auto t = af::sgdml_tril_perm(perms.data() + p * n, n);
      std::copy(t.begin(), t.end(), out.begin() + p * d);
    }
    return to_numpy(std::move(out), {S, d});
  }, py::arg("perms"));
}
