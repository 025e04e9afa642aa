// A minimal test harness for the core's C++ unit tests (no third-party framework): tests
// register themselves with AF_TEST(group, name); the runner (main.cpp) runs every test of the
// groups named on its command line (all when none), and ctest runs one process per group.
#pragma once
#include <cmath>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

namespace aftest {

struct Case {
  std::string group, name;
  std::function<void()> fn;
};
inline std::vector<Case>& registry() {
  static std::vector<Case> cases;
  return cases;
}
inline int& failures() {
  static int n = 0;
  return n;
}
struct Registrar {
  Registrar(const char* group, const char* name, std::function<void()> fn) {
    registry().push_back({group, name, std::move(fn)});
  }
};
inline void fail(const char* file, int line, const std::string& what) {
  std::printf("  FAIL %s:%d: %s\n", file, line, what.c_str());
  ++failures();
}

}  // namespace aftest

#define AF_CONCAT2(a, b) a##b
#define AF_CONCAT(a, b) AF_CONCAT2(a, b)
#define AF_TEST(group, name)                                                                        \
  static void AF_CONCAT(test_, AF_CONCAT(group, name))();                                           \
  static aftest::Registrar AF_CONCAT(reg_, AF_CONCAT(group, name))(#group, #name,                    \
                                                                  AF_CONCAT(test_, AF_CONCAT(group, name))); \
  static void AF_CONCAT(test_, AF_CONCAT(group, name))()

#define CHECK(cond)                                       \
  do {                                                    \
    if (!(cond)) aftest::fail(__FILE__, __LINE__, #cond); \
  } while (0)

#define CHECK_NEAR(a, b, tol)                                                                       \
  do {                                                                                              \
    const double va_ = (a), vb_ = (b);                                                              \
    if (!(std::fabs(va_ - vb_) <= (tol)))                                                           \
      aftest::fail(__FILE__, __LINE__,                                                              \
                   std::string(#a " = ") + std::to_string(va_) + ", " #b " = " + std::to_string(vb_)); \
  } while (0)

// expr must throw atomforge::InvalidInput whose message contains `substr`.
#define CHECK_THROWS(expr, substr)                                                                  \
  do {                                                                                              \
    bool thrown_ = false;                                                                           \
    try {                                                                                           \
      (void)(expr);                                                                                 \
    } catch (const atomforge::InvalidInput& e_) {                                                   \
      thrown_ = true;                                                                               \
      if (std::string(e_.what()).find(substr) == std::string::npos)                                 \
        aftest::fail(__FILE__, __LINE__, std::string("message '") + e_.what() + "' lacks '" + (substr) + "'"); \
    }                                                                                               \
    if (!thrown_) aftest::fail(__FILE__, __LINE__, "no InvalidInput from " #expr);                  \
  } while (0)
