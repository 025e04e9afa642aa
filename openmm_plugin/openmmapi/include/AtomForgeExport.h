#pragma once
#if defined(_WIN32)
#define ATOMFORGE_OPENMM_EXPORT
#else
#define ATOMFORGE_OPENMM_EXPORT __attribute__((visibility("default")))
#endif
