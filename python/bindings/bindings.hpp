// Helpers shared by the binding files (argument checks, zero-copy NumPy outputs, CSR views).
#pragma once
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <string>
#include <vector>

#include "atomforge/errors.hpp"
#include "atomforge/neighbor_list.hpp"

namespace afpy {

namespace py = pybind11;
namespace af = atomforge;

using darr = py::array_t<double, py::array::c_style>;
using i32arr = py::array_t<int32_t, py::array::c_style>;
using i64arr = py::array_t<int64_t, py::array::c_style>;

inline void require_shape(const py::array& a, std::initializer_list<py::ssize_t> shape, const char* name) {
  bool ok = a.ndim() == static_cast<py::ssize_t>(shape.size());
  size_t k = 0;
  for (auto s : shape) {
    if (!ok) break;
    if (s >= 0 && a.shape(k) != s) ok = false;
    ++k;
  }
  if (!ok) throw af::InvalidInput(std::string(name) + " has the wrong shape");
}

/// Move a vector into a NumPy array without copying (the array owns it).
template <class T>
py::array_t<T> to_numpy(std::vector<T>&& v, std::vector<py::ssize_t> shape) {
  auto* heap = new std::vector<T>(std::move(v));
  py::capsule owner(heap, [](void* p) { delete static_cast<std::vector<T>*>(p); });
  return py::array_t<T>(shape, heap->data(), owner);
}

/// A CSR neighbour list given as arrays (e.g. LAMMPS-style lists built outside the core).
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

inline CsrArrays make_csr(darr positions, i32arr species, i64arr offsets, i64arr neighbors, py::object centres) {
  require_shape(positions, {-1, 3}, "positions");
  require_shape(species, {positions.shape(0)}, "species");
  require_shape(offsets, {-1}, "offsets");
  require_shape(neighbors, {-1}, "neighbors");
  if (offsets.shape(0) < 1) throw af::InvalidInput("offsets needs n_centres + 1 entries");
  const int64_t nc = offsets.shape(0) - 1;
  if (offsets.at(nc) != neighbors.shape(0)) throw af::InvalidInput("offsets[-1] must equal len(neighbors)");
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

/// sGDML's training and batched-prediction functions (sgdml_bindings.cpp).
void bind_sgdml(py::module_& m);
/// The core's electrostatics (electrostatics_bindings.cpp).
void bind_electrostatics(py::module_& m);

}  // namespace afpy
