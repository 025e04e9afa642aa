"""build_info() names what the core was compiled with (benchmark tables copy the line)."""
import re
from pathlib import Path

import atomforge


def test_build_info_names_the_simd_level():
    info = atomforge.build_info()
    m = re.search(r"SIMD (AVX-512|AVX2|baseline)( \(512-bit vectors\))?[,;]", info)
    assert m, info
    if m.group(2):  # 512-bit vectors are only reported for an AVX-512 build
        assert m.group(1) == "AVX-512", info
    cpuinfo = Path("/proc/cpuinfo")
    if m.group(1) == "AVX-512" and cpuinfo.exists():  # this process runs it, so the CPU has it
        assert "avx512f" in cpuinfo.read_text()
