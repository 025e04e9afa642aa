#include "atomforge/bpnn.hpp"

#include <algorithm>
#include <cmath>

#include "atomforge/errors.hpp"
#include "atomforge/sgdml.hpp"

#ifdef ATOMFORGE_HAVE_OPENMP
#include <omp.h>
#endif

namespace atomforge {

Activation activation_from_string(const std::string& n) {
  if (n == "linear") return Activation::Linear;
  if (n == "tanh") return Activation::Tanh;
  if (n == "sigmoid") return Activation::Sigmoid;
  if (n == "softplus") return Activation::Softplus;
  if (n == "silu") return Activation::SiLU;
  if (n == "gaussian") return Activation::Gaussian;
  throw InvalidInput("unknown activation '" + n + "'");
}

namespace {
// y = act(z) and dy/dz
inline void activate(Activation a, double z, double& y, double& dy) {
  switch (a) {
    case Activation::Linear: y = z; dy = 1.0; return;
    case Activation::Tanh: y = std::tanh(z); dy = 1.0 - y * y; return;
    case Activation::Sigmoid: {
      const double s = 1.0 / (1.0 + std::exp(-z));
      y = s; dy = s * (1.0 - s); return;
    }
    case Activation::Softplus: {
      y = z > 0 ? z + std::log1p(std::exp(-z)) : std::log1p(std::exp(z));
      dy = 1.0 / (1.0 + std::exp(-z)); return;
    }
    case Activation::SiLU: {
      const double s = 1.0 / (1.0 + std::exp(-z));
      y = z * s; dy = s * (1.0 + z * (1.0 - s)); return;
    }
    case Activation::Gaussian: y = std::exp(-0.5 * z * z); dy = -z * y; return;
  }
}

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out(1);
  for (char c : s) {
    if (c == sep) out.emplace_back();
    else out.back() += c;
  }
  return out;
}
}  // namespace

static SymmetryFunctions descriptor_from(const ModelFile& f) {
  if (f.string("descriptor.type") != "acsf")
    throw InvalidInput(f.where() + ": descriptor.type '" + f.string("descriptor.type") + "' is not 'acsf'");
  std::vector<uint64_t> shape;
  const auto& rows = f.f64("descriptor.functions", &shape);
  if (shape.size() != 2 || shape[1] != 9) throw InvalidInput(f.where() + ": descriptor.functions must be (n, 9)");
  const int32_t ne = static_cast<int32_t>(f.i64("species").size());
  std::vector<SymmetryFunctionSpec> specs(shape[0]);
  for (uint64_t r = 0; r < shape[0]; ++r) {
    const double* v = &rows[9 * r];
    specs[r].type = static_cast<SymmetryFunctionType>(static_cast<int32_t>(v[0]));
    specs[r].centre = static_cast<int32_t>(v[1]);
    specs[r].neighbor1 = static_cast<int32_t>(v[2]);
    specs[r].neighbor2 = static_cast<int32_t>(v[3]);
    specs[r].eta = v[4];
    specs[r].r_s = v[5];
    specs[r].r_c = v[6];
    specs[r].lambda = v[7];
    specs[r].zeta = v[8];
  }
  try {
    return SymmetryFunctions(ne, specs, cutoff_type_from_string(f.string("descriptor.cutoff_function")));
  } catch (const InvalidInput& e) {
    throw InvalidInput(f.where() + ": " + e.what());
  }
}

BPNN::BPNN(const ModelFile& f) : descriptor_(descriptor_from(f)) {
  const std::string& w = f.where();
  species_ = f.check_header("bpnn");
  const size_t ne = species_.size();
  reference_ = f.f64("energy.reference");
  if (reference_.size() != ne) throw InvalidInput(w + ": energy.reference needs one value per species");
  energy_scale_ = f.f64_scalar("energy.scale");
  const int64_t M = f.i64_scalar("committee_size");
  if (M < 1) throw InvalidInput(w + ": committee_size must be >= 1");
  networks_.assign(M, std::vector<std::vector<Layer>>(ne));
  for (size_t k = 0; k < ne; ++k) {
    const std::string p = "scaling." + std::to_string(k) + ".";
    shift_.push_back(f.f64(p + "shift"));
    scale_.push_back(f.f64(p + "scale"));
    offset_.push_back(f.f64_scalar(p + "offset"));
    const int64_t nf = descriptor_.n_features(static_cast<int32_t>(k));
    if (static_cast<int64_t>(shift_[k].size()) != nf || static_cast<int64_t>(scale_[k].size()) != nf)
      throw InvalidInput(w + ": " + p + "shift/scale must have one entry per symmetry function (" +
                         std::to_string(nf) + ")");
    const auto acts = split(f.string("network." + std::to_string(k) + ".activations"), ',');
    for (int64_t m = 0; m < M; ++m) {
      const std::string q = "network." + std::to_string(m) + "." + std::to_string(k) + ".";
      const int64_t L = f.i64_scalar(q + "n_layers");
      if (L < 1 || L != static_cast<int64_t>(acts.size()))
        throw InvalidInput(w + ": " + q + "n_layers does not match the activations");
      int64_t width = nf;
      for (int64_t l = 0; l < L; ++l) {
        Layer layer;
        std::vector<uint64_t> shape;
        layer.weight = f.f64(q + std::to_string(l) + ".weight", &shape);
        layer.bias = f.f64(q + std::to_string(l) + ".bias");
        if (shape.size() != 2 || static_cast<int64_t>(shape[1]) != width || layer.bias.size() != shape[0])
          throw InvalidInput(w + ": " + q + std::to_string(l) + " weight/bias do not fit input width " +
                             std::to_string(width));
        layer.n_in = width;
        layer.n_out = static_cast<int64_t>(shape[0]);
        try {
          layer.act = activation_from_string(acts[l]);
        } catch (const InvalidInput& e) {
          throw InvalidInput(w + ": " + e.what());
        }
        width = layer.n_out;
        max_width_ = std::max({max_width_, layer.n_in, layer.n_out});
        networks_[m][k].push_back(std::move(layer));
      }
      if (width != 1) throw InvalidInput(w + ": " + q + " output width must be 1");
    }
  }
}

void BPNN::compute(const NeighborView& nl, PotentialOutput& out, bool per_atom_virial, int n_threads) const {
  const int64_t nc = nl.n_centres, nf = descriptor_.n_features();
  std::vector<double> G(nc * nf), dEdG(nc * nf, 0.0);
  descriptor_.compute(nl, G.data(), n_threads);  // validates the list
  const int64_t M = committee_size();
  std::vector<double> member_e(nc * M, 0.0);
  out.atomic_energies.assign(nc, 0.0);
  int nthreads = 1;
#ifdef ATOMFORGE_HAVE_OPENMP
  nthreads = n_threads > 0 ? n_threads : omp_get_max_threads();
#endif
  (void)nthreads;
#pragma omp parallel num_threads(nthreads)
  {
    // per-thread buffers: activations and derivatives of every layer
    std::vector<std::vector<double>> h, dh;
    std::vector<double> g, g2;
#pragma omp for schedule(static)
    for (int64_t c = 0; c < nc; ++c) {
      const int k = nl.species[nl.centre(c)];
      const auto& sh = shift_[k];
      const auto& sc = scale_[k];
      const int64_t nfk = static_cast<int64_t>(sh.size());
      double mean_nn = 0.0;
      for (int64_t m = 0; m < M; ++m) {
        const auto& layers = networks_[m][k];
        const size_t L = layers.size();
        h.resize(L + 1);
        dh.resize(L);
        h[0].resize(nfk);
        for (int64_t f = 0; f < nfk; ++f) h[0][f] = (G[c * nf + f] - sh[f]) * sc[f] + offset_[k];
        for (size_t l = 0; l < L; ++l) {
          const Layer& ly = layers[l];
          h[l + 1].resize(ly.n_out);
          dh[l].resize(ly.n_out);
          for (int64_t o = 0; o < ly.n_out; ++o) {
            const double* wr = &ly.weight[o * ly.n_in];
            double z = ly.bias[o];
            for (int64_t i = 0; i < ly.n_in; ++i) z += wr[i] * h[l][i];
            activate(ly.act, z, h[l + 1][o], dh[l][o]);
          }
        }
        const double nn = h[L][0];
        mean_nn += nn;
        member_e[c * M + m] = reference_[k] + energy_scale_ * nn;
        // backward: g = dNN/dh_l
        g.assign(1, 1.0);
        for (size_t l = L; l-- > 0;) {
          const Layer& ly = layers[l];
          g2.assign(ly.n_in, 0.0);
          for (int64_t o = 0; o < ly.n_out; ++o) {
            const double go = g[o] * dh[l][o];
            const double* wr = &ly.weight[o * ly.n_in];
            for (int64_t i = 0; i < ly.n_in; ++i) g2[i] += go * wr[i];
          }
          g.swap(g2);
        }
        const double fac = energy_scale_ / static_cast<double>(M);
        for (int64_t f = 0; f < nfk; ++f) dEdG[c * nf + f] += fac * g[f] * sc[f];
      }
      out.atomic_energies[c] = reference_[k] + energy_scale_ * mean_nn / static_cast<double>(M);
    }
  }
  out.energy = 0.0;
  for (int64_t c = 0; c < nc; ++c) out.energy += out.atomic_energies[c];
  out.committee_energies.assign(M, 0.0);
  for (int64_t c = 0; c < nc; ++c)
    for (int64_t m = 0; m < M; ++m) out.committee_energies[m] += member_e[c * M + m];
  double var = 0.0;
  for (int64_t m = 0; m < M; ++m) var += std::pow(out.committee_energies[m] - out.energy, 2);
  out.energy_uncertainty = M > 1 ? std::sqrt(var / static_cast<double>(M)) : 0.0;
  if (!std::isfinite(out.energy)) throw InvalidInput("the model produced a non-finite energy");
  out.forces.assign(3 * nl.n_total, 0.0);
  if (per_atom_virial) out.per_atom_virial.assign(9 * nl.n_total, 0.0);
  descriptor_.vjp(nl, dEdG.data(), out.forces.data(), out.virial,
                  per_atom_virial ? out.per_atom_virial.data() : nullptr, n_threads);
}

std::unique_ptr<Potential> load_potential(const ModelFile& file) {
  const std::string& type = file.string("model_type");
  if (type == "bpnn") return std::make_unique<BPNN>(file);
  if (type == "sgdml") return std::make_unique<SGDML>(file);
  throw InvalidInput(file.where() + ": unsupported model_type '" + type + "'");
}

std::unique_ptr<Potential> load_potential(const std::string& path) {
  return load_potential(ModelFile::from_file(path));
}

}  // namespace atomforge
