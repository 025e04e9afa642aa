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
};

}  // namespace AtomForgeOpenMM

%extend AtomForgeOpenMM::AtomForgeForce {
  /// The model file's bytes embedded in the Force.
  PyObject* getModelBytes() const {
    const std::string& b = $self->getModelBytes();
    return PyBytes_FromStringAndSize(b.data(), b.size());
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
