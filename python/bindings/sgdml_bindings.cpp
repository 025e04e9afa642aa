// sGDML-specific bindings: the model class with batched prediction, and the kernel functions
// sGDML training (python/atomforge/sgdml/train.py) uses. Formulas: src/models/sgdml/sgdml.hpp.
#include "bindings.hpp"
#include "models/sgdml/sgdml.hpp"

namespace afpy {

void bind_sgdml(py::module_& m) {
  // Registered as a subclass of Model: a loaded sGDML model arrives in Python as this type.
  py::class_<af::SGDML, af::Model, std::shared_ptr<af::SGDML>>(m, "SGDML")
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
  m.def("sgdml_descriptors", [](darr R, int threads, bool jacobian) -> py::object {
    require_shape(R, {-1, -1, 3}, "R");
    const int64_t B = R.shape(0), n = R.shape(1), d = af::sgdml_descriptor_size(n);
    std::vector<double> X(B * d), J(jacobian ? B * d * 3 : 0);
    {
      py::gil_scoped_release release;
      af::sgdml_descriptors(R.data(), B, n, X.data(), threads, jacobian ? J.data() : nullptr);
    }
    if (!jacobian) return to_numpy(std::move(X), {B, d});
    return py::make_tuple(to_numpy(std::move(X), {B, d}), to_numpy(std::move(J), {B, d, int64_t(3)}));
  }, py::arg("R"), py::arg("threads") = 0, py::arg("jacobian") = false);
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

}  // namespace afpy
