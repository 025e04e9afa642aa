#!/usr/bin/env python3
"""Regenerate and check the coefficients of simd::tanh_unit (cpp/src/common/simd_math.hpp).

tanh(y) = y P(y^2) for |y| <= 1, P of degree n - 1 in u = y^2. P interpolates g(u) = tanh(sqrt u)/sqrt u
at the n Chebyshev nodes of [0, 1] (near-minimax; g is analytic with its nearest singularity at
u = -(pi/2)^2, so the error falls like rho^-n with rho = 11.8). The interpolation is solved in
60-digit arithmetic (mpmath) in the monomial basis, whose coefficients alternate in sign and fall
by ~0.4 per degree, so Horner's rule on u in [0, 1] adds only rounding of a few ulp.

    python tools/fit_tanh_unit.py [--n 16]

Prints the coefficients (as C++ lines for Horner's rule, highest first) and the largest error of
the double-precision evaluation against 60-digit tanh over [-1, 1], in ulp and relative; with
n = 16: 2 ulp (2.9e-16). Needs mpmath and NumPy.
"""
import argparse

import mpmath as mp
import numpy as np


def coefficients(n):
    mp.mp.dps = 60

    def g(u):
        return mp.mpf(1) if u == 0 else mp.tanh(mp.sqrt(u)) / mp.sqrt(u)

    nodes = [(1 + mp.cos(mp.pi * (2 * k + 1) / (2 * n))) / 2 for k in range(n)]
    a = mp.matrix(n, n)
    for i, u in enumerate(nodes):
        for j in range(n):
            a[i, j] = u ** j
    c = mp.lu_solve(a, mp.matrix([g(u) for u in nodes]))
    return [float(c[j]) for j in range(n)]


def tanh_unit(y, c):
    x = np.maximum(y, -1.0)
    u = x * x
    p = np.full_like(u, c[-1])
    for a in c[-2::-1]:
        p = p * u + a
    return x * p


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=16, help="number of coefficients (degree n - 1 in y^2)")
    args = ap.parse_args()
    c = coefficients(args.n)
    print(f"double p = {c[-1]!r};")
    for a in c[-2::-1]:
        print(f"p = p * u {'-' if a < 0 else '+'} {abs(a)!r};")
    y = np.concatenate([np.linspace(-1.0, 1.0, 20001), np.random.default_rng(0).uniform(-1.0, 1.0, 20000)])
    y = y[y != 0.0]
    ref = np.array([float(mp.tanh(mp.mpf(float(v)))) for v in y])
    err = np.abs(tanh_unit(y, c) - ref)
    print(f"max error over [-1, 1]: {np.max(err / np.spacing(np.abs(ref))):.1f} ulp, "
          f"{np.max(err / np.abs(ref)):.2e} relative")


if __name__ == "__main__":
    main()
