// Model files the C++ unit tests share.
#pragma once
#include <string>
#include <vector>

#include "atomforge/model_file.hpp"

namespace aftest {

// One element (H), one G2 feature (eta 0.5, r_c 3 A, cosine cutoff), linear networks: member m
// gives E_i^m = -13.6 + 2 * (weights[m] * G_i + 0.1) eV. committee_size = weights.size().
inline atomforge::ModelFileWriter tiny_bpnn(const std::vector<double>& weights) {
  atomforge::ModelFileWriter w;
  w.string("model_type", "bpnn")
      .string("units.energy", "eV")
      .string("units.length", "Angstrom")
      .i64("species", {1}, {1})
      .string("descriptor.type", "acsf")
      .string("descriptor.cutoff_function", "cos")
      .f64("descriptor.functions", {1, 9}, {2, 0, 0, -1, 0.5, 0, 3.0, 1, 1})
      .f64("energy.reference", {1}, {-13.6})
      .f64("energy.scale", 2.0)
      .i64("committee_size", static_cast<int64_t>(weights.size()))
      .f64("scaling.0.shift", {1}, {0.0})
      .f64("scaling.0.scale", {1}, {1.0})
      .f64("scaling.0.offset", 0.0)
      .string("network.0.activations", "linear");
  for (size_t m = 0; m < weights.size(); ++m) {
    const std::string p = "network." + std::to_string(m) + ".0";
    w.i64(p + ".n_layers", 1).f64(p + ".0.weight", {1, 1}, {weights[m]}).f64(p + ".0.bias", {1}, {0.1});
  }
  return w;
}

}  // namespace aftest
