// atomforge core: build information for diagnostics (`atomforge info`).
#pragma once
#include <string>

namespace atomforge {
/// One line: C++ standard, OpenMP (max threads), CUDA (devices visible), registered descriptor
/// and model types.
std::string build_info();
/// Number of CUDA devices visible (0 when built without CUDA or no driver/device).
int cuda_device_count();
/// True when the core was compiled with CUDA kernels.
bool built_with_cuda();
}  // namespace atomforge
