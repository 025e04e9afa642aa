// SWIG wrapper of AtomForgeForce, built against the openmm wheel's SWIG runtime so that
// `system.addForce(force)`, XmlSerializer and `system.getForce(i)` + AtomForgeForce.cast work.
%module(package="atomforge.openmm") atomforgeopenmm

%import(module="openmm") "swig/OpenMMSwigHeaders.i"
%include "swig/typemaps.i"
%include "std_string.i"
%include "std_vector.i"

%{
#include <stdexcept>
#include "AtomForgeForce.h"
#include "openmm/OpenMMException.h"
#include "openmm/RPMDIntegrator.h"
#include "openmm/RPMDMonteCarloBarostat.h"
#include "OpenMM.h"
#include "OpenMMAmoeba.h"
#include "OpenMMDrude.h"

// Raise openmm.OpenMMException (the class the openmm module defines) with the C++ message.
static void atomforge_raise_openmm(const char* what) {
  PyObject* exc = PyExc_Exception;
  PyObject* mod = PyImport_ImportModule("openmm");
  PyObject* cls = mod ? PyObject_GetAttrString(mod, "OpenMMException") : NULL;
  if (cls) exc = cls;
  PyErr_Clear();
  PyErr_SetString(exc, what);
  Py_XDECREF(cls);
  Py_XDECREF(mod);
}
%}

namespace std {
%template(vectori) vector<int>;
}

%exception {
  try {
    $action
  } catch (std::exception& e) {
    atomforge_raise_openmm(e.what());
    SWIG_fail;
  }
}

// The model argument: a path (str or os.PathLike) or the model file's bytes.
%typemap(in) const std::string& model (std::string temp) {
  if (PyBytes_Check($input)) {
    temp.assign(PyBytes_AS_STRING($input), PyBytes_GET_SIZE($input));
  } else if (PyByteArray_Check($input)) {
    temp.assign(PyByteArray_AS_STRING($input), PyByteArray_GET_SIZE($input));
  } else {
    PyObject* p = PyOS_FSPath($input);
    if (!p) SWIG_fail;
    if (PyUnicode_Check(p)) {
      Py_ssize_t n = 0;
      const char* s = PyUnicode_AsUTF8AndSize(p, &n);
      if (!s) { Py_DECREF(p); SWIG_fail; }
      temp.assign(s, n);
    } else {
      temp.assign(PyBytes_AS_STRING(p), PyBytes_GET_SIZE(p));
    }
    Py_DECREF(p);
  }
  $1 = &temp;
}
%typemap(freearg) const std::string& model ""
// Integer lists (atomic numbers, particle indices): any sequence of integers (lists, tuples,
// NumPy integer arrays).
%typemap(in) const std::vector<int>& atomicNumbers (std::vector<int> temp),
             const std::vector<int>& particles (std::vector<int> temp) {
  PyObject* seq = PySequence_Fast($input, "expected a sequence of integers");
  if (!seq) SWIG_fail;
  const Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
  temp.reserve(n);
  for (Py_ssize_t i = 0; i < n; i++) {
    PyObject* idx = PyNumber_Index(PySequence_Fast_GET_ITEM(seq, i));
    if (!idx) { Py_DECREF(seq); SWIG_fail; }
    const long v = PyLong_AsLong(idx);
    Py_DECREF(idx);
    if (v == -1 && PyErr_Occurred()) { Py_DECREF(seq); SWIG_fail; }
    temp.push_back(static_cast<int>(v));
  }
  Py_DECREF(seq);
  $1 = &temp;
}
%typemap(typecheck, precedence=SWIG_TYPECHECK_INT32_ARRAY) const std::vector<int>& atomicNumbers,
                                                           const std::vector<int>& particles {
  $1 = PySequence_Check($input) && !PyUnicode_Check($input) && !PyBytes_Check($input);
}
%typemap(freearg) const std::vector<int>& atomicNumbers, const std::vector<int>& particles ""

%typemap(typecheck, precedence=SWIG_TYPECHECK_STRING) const std::string& model {
  $1 = PyBytes_Check($input) || PyByteArray_Check($input) || PyUnicode_Check($input) ||
       PyObject_HasAttrString($input, "__fspath__");
}


// keyword arguments: AtomForgeForce(model, atomicNumbers, particles=[], periodic=True)
%feature("compactdefaultargs") AtomForgeOpenMM::AtomForgeForce::AtomForgeForce;
%feature("kwargs") AtomForgeOpenMM::AtomForgeForce::AtomForgeForce;
%feature("compactdefaultargs") AtomForgeOpenMM::AtomForgeForce::setParticles;
%feature("kwargs") AtomForgeOpenMM::AtomForgeForce::setParticles;

namespace AtomForgeOpenMM {

%feature("autodoc", "1");
class AtomForgeForce : public OpenMM::Force {
 public:
  AtomForgeForce(const std::string& model, const std::vector<int>& atomicNumbers = std::vector<int>(),
                 const std::vector<int>& particles = std::vector<int>(), bool periodic = false);
  const std::string& getModelSource() const;
  const std::vector<int>& getModelElements() const;
  double getCutoff() const;
  const std::string& getModelType() const;
  const std::vector<int>& getParticles() const;
  const std::vector<int>& getAtomicNumbers() const;
  void setParticles(const std::vector<int>& atomicNumbers, const std::vector<int>& particles = std::vector<int>());
  bool usesPeriodicBoundaryConditions() const;
  void setUsesPeriodicBoundaryConditions(bool p);
  double getMinimumDistance() const;
  void setMinimumDistance(double distanceNm);
  static double defaultMinimumDistance();
  double getTotalCharge() const;
  void setTotalCharge(double charge);
};

}  // namespace AtomForgeOpenMM

%extend AtomForgeOpenMM::AtomForgeForce {
  /// The model file's bytes embedded in the Force.
  PyObject* getModelBytes() const {
    const std::string& b = $self->getModelBytes();
    return PyBytes_FromStringAndSize(b.data(), b.size());
  }
  /// Committee uncertainty of the Context's current state, a dict in OpenMM units:
  /// energy_uncertainty (kJ/mol), forces_uncertainty (list, kJ/mol/nm per covered particle),
  /// max_forces_uncertainty, mean_forces_uncertainty (kJ/mol/nm), extrapolation_features,
  /// extrapolation_atoms. atomforge.openmm.uncertainty() wraps it with NumPy arrays.
  PyObject* getUncertainty(OpenMM::Context& context) const {
    AtomForgeOpenMM::AtomForgeUncertainty u = $self->getUncertainty(context);
    PyObject* d = PyDict_New();
    PyObject* f = PyList_New(u.forcesUncertainty.size());
    for (size_t i = 0; i < u.forcesUncertainty.size(); i++) PyList_SET_ITEM(f, i, PyFloat_FromDouble(u.forcesUncertainty[i]));
    PyObject* v;
    v = PyFloat_FromDouble(u.energyUncertainty); PyDict_SetItemString(d, "energy_uncertainty", v); Py_DECREF(v);
    PyDict_SetItemString(d, "forces_uncertainty", f); Py_DECREF(f);
    v = PyFloat_FromDouble(u.maxForcesUncertainty); PyDict_SetItemString(d, "max_forces_uncertainty", v); Py_DECREF(v);
    v = PyFloat_FromDouble(u.meanForcesUncertainty); PyDict_SetItemString(d, "mean_forces_uncertainty", v); Py_DECREF(v);
    v = PyLong_FromLongLong(u.extrapolationFeatures); PyDict_SetItemString(d, "extrapolation_features", v); Py_DECREF(v);
    v = PyLong_FromLongLong(u.extrapolationAtoms); PyDict_SetItemString(d, "extrapolation_atoms", v); Py_DECREF(v);
    return d;
  }
  /// Extrapolation counts of this Force's evaluations in the Context since the last reset: a dict
  /// with evaluations, extrapolating, features, atoms.
  PyObject* getExtrapolationCounts(OpenMM::Context& context, bool reset = true) const {
    AtomForgeOpenMM::AtomForgeExtrapolation c = $self->getExtrapolationCounts(context, reset);
    PyObject* d = PyDict_New();
    PyObject* v;
    v = PyLong_FromLongLong(c.evaluations); PyDict_SetItemString(d, "evaluations", v); Py_DECREF(v);
    v = PyLong_FromLongLong(c.extrapolating); PyDict_SetItemString(d, "extrapolating", v); Py_DECREF(v);
    v = PyLong_FromLongLong(c.features); PyDict_SetItemString(d, "features", v); Py_DECREF(v);
    v = PyLong_FromLongLong(c.atoms); PyDict_SetItemString(d, "atoms", v); Py_DECREF(v);
    return d;
  }
  static AtomForgeOpenMM::AtomForgeForce& _cast(OpenMM::Force& force) {
    auto* f = dynamic_cast<AtomForgeOpenMM::AtomForgeForce*>(&force);
    if (!f) throw OpenMM::OpenMMException("AtomForgeForce.cast: this force is not an AtomForgeForce");
    return *f;
  }
  static bool isinstance(OpenMM::Force& force) {
    return dynamic_cast<AtomForgeOpenMM::AtomForgeForce*>(&force) != nullptr;
  }
  %pythoncode %{
    @staticmethod
    def cast(force):
        """The AtomForgeForce behind a plain openmm.Force (from system.getForce(i) or
        XmlSerializer.deserialize); raises OpenMMException for any other kind of force.
        Ownership moves to the returned object when `force` owned its C++ object."""
        f = AtomForgeForce._cast(force)
        if force.thisown:
            force.thisown = 0
            f.thisown = 1
        return f
  %}
}
