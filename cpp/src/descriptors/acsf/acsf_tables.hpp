// The flat parameter arrays of SymmetryFunctions (owning host storage behind acsf::Tables),
// shared by the CPU driver (acsf.cpp) and the CUDA launcher (acsf_cuda.cu). Internal header.
#pragma once
#include <cstdint>
#include <vector>

#include "descriptors/acsf/acsf.hpp"
#include "descriptors/acsf/acsf_kernels.hpp"

namespace atomforge {

struct SymmetryFunctions::Flat {
  std::vector<int64_t> n_features, radial_feature, angular_feature;
  std::vector<double> rc_max, group_eta, group_rs, rc, angular_zeta, angular_pref, agf_pref,
      pow_a, pow_b, pow_zeta, pair_rc, pair_eta_base;
  std::vector<int32_t> group_begin, group_rc_slot, rc_begin, radial_begin, radial_group, radial_neighbor,
      angular_begin, pair_group_begin, pair_pow_begin, pair_rc_begin, ag_group, ag_narrow, ag_rc_slot, ag_fn_begin,
      agf_fn, agf_pow, pow_zeta_int, ag_eta_power, pair_fact_slot, group_head, group_power, group_members;
  std::vector<uint8_t> group_need, group_calc;
  acsf::Tables t;

  void bind() {  // point the view at the vectors (after construction or copy)
    t.n_features = n_features.data(); t.rc_max = rc_max.data();
    t.group_begin = group_begin.data(); t.group_eta = group_eta.data(); t.group_rs = group_rs.data();
    t.group_rc_slot = group_rc_slot.data(); t.rc_begin = rc_begin.data(); t.rc = rc.data();
    t.radial_begin = radial_begin.data(); t.radial_feature = radial_feature.data();
    t.radial_group = radial_group.data(); t.radial_neighbor = radial_neighbor.data();
    t.angular_begin = angular_begin.data(); t.angular_feature = angular_feature.data();
    t.angular_zeta = angular_zeta.data();
    t.angular_pref = angular_pref.data(); t.pair_group_begin = pair_group_begin.data();
    t.pair_pow_begin = pair_pow_begin.data(); t.pair_rc_begin = pair_rc_begin.data();
    t.ag_group = ag_group.data(); t.ag_narrow = ag_narrow.data(); t.ag_rc_slot = ag_rc_slot.data();
    t.ag_fn_begin = ag_fn_begin.data(); t.agf_fn = agf_fn.data(); t.agf_pow = agf_pow.data();
    t.agf_pref = agf_pref.data(); t.pow_a = pow_a.data(); t.pow_b = pow_b.data(); t.pow_zeta = pow_zeta.data();
    t.pow_zeta_int = pow_zeta_int.data(); t.pair_rc = pair_rc.data();
    t.pair_eta_base = pair_eta_base.data(); t.ag_eta_power = ag_eta_power.data();
    t.pair_fact_slot = pair_fact_slot.data();
    t.group_head = group_head.data(); t.group_power = group_power.data(); t.group_members = group_members.data();
    t.group_need = group_need.data(); t.group_calc = group_calc.data();
  }
};

}  // namespace atomforge
