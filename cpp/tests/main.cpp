// Runner of the C++ unit tests: `atomforge_core_tests [group ...]` (all groups when none).
#include <cstdio>
#include <exception>
#include <set>

#include "harness.hpp"

int main(int argc, char** argv) {
  std::set<std::string> groups(argv + 1, argv + argc);
  int run = 0;
  for (const auto& c : aftest::registry()) {
    if (!groups.empty() && !groups.count(c.group)) continue;
    const int before = aftest::failures();
    try {
      c.fn();
    } catch (const std::exception& e) {
      aftest::fail(c.name.c_str(), 0, std::string("unexpected exception: ") + e.what());
    }
    std::printf("%s %s.%s\n", aftest::failures() == before ? "ok  " : "FAIL", c.group.c_str(), c.name.c_str());
    ++run;
  }
  if (run == 0) {
    std::printf("no tests matched\n");
    return 2;
  }
  std::printf("%d test(s), %d failure(s)\n", run, aftest::failures());
  return aftest::failures() ? 1 : 0;
}
