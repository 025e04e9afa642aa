#!/usr/bin/env python3
"""Regenerate and check the coefficients of simd::tanh_unit (cpp/src/common/simd_math.hpp).

tanh(y) = y P(u) / Q(u) for |y| <= 1, u = y^2, P of degree m and Q of degree k (default 3 and 4),
P(0) = Q(0) = 1. The rational function interpolates g(u) = tanh(sqrt u)/sqrt u at the m + k + 1
Chebyshev nodes of [0, 1] (linearised: P(u_i) - g(u_i) Q(u_i) = 0, near-minimax; g is analytic
with its nearest singularity at u = -(pi/2)^2, and the truncated continued fraction of Lambert,
tanh y = y / (1 + y^2 / (3 + y^2 / (5 + ...))), shows how fast such rational forms converge). The
system is solved in 60-digit arithmetic (mpmath). Every coefficient is positive, so Horner's rule on
u in [0, 1] adds only rounding, and Q >= 1 there.

    python tools/fit_tanh_unit.py [--m 3] [--k 4]

Prints the coefficients (as C++ lines for Horner's rule, highest first) and the largest error of
the double-precision evaluation against 60-digit tanh over [-1, 1], in ulp and relative; with
(m, k) = (3, 4): 3 ulp (4.4e-16); (3, 3) gives 6 ulp, higher degrees stay at 3 (rounding).
(Before stop 54 the function was a degree-15 polynomial in u, 2 ulp with no division; the rational
form does 9 multiply-adds and one division instead of 17 products, and the division runs on the
divider, idle in the cutoff loop: 1.023x on the n2p2 water force call, benchmarks/results/bench_ab.md.)
Needs mpmath and NumPy.
"""
import argparse

import mpmath as mp
import numpy as np


def coefficients(m, k):
    """P (m + 1 coefficients, lowest first) and Q (k + 1, Q[0] = 1) as floats."""
    mp.mp.dps = 60

    def g(u):
        return mp.mpf(1) if u == 0 else mp.tanh(mp.sqrt(u)) / mp.sqrt(u)

    n = m + k + 1
    nodes = [(1 + mp.cos(mp.pi * (2 * i + 1) / (2 * n))) / 2 for i in range(n)]
    a = mp.matrix(n, n)
    b = mp.matrix(n, 1)
    for i, u in enumerate(nodes):
        for j in range(m + 1):
            a[i, j] = u ** j
        for j in range(1, k + 1):
            a[i, m + j] = -g(u) * u ** j
        b[i] = g(u)
    c = mp.lu_solve(a, b)
    return [float(c[j]) for j in range(m + 1)], [1.0] + [float(c[m + j]) for j in range(1, k + 1)]


def horner(u, c):
    p = np.full_like(u, c[-1])
    for a in c[-2::-1]:
        p = p * u + a
    return p


def tanh_unit(y, p, q):
    x = np.maximum(y, -1.0)
    u = x * x
    return x * horner(u, p) / horner(u, q)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--m", type=int, default=3, help="degree of the numerator in y^2")
    ap.add_argument("--k", type=int, default=4, help="degree of the denominator in y^2")
    args = ap.parse_args()
    p, q = coefficients(args.m, args.k)
    for name, c in (("p", p), ("q", q)):
        print(f"double {name} = {c[-1]!r};")
        for a in c[-2::-1]:
            print(f"{name} = {name} * u {'-' if a < 0 else '+'} {abs(a)!r};")
    y = np.concatenate([np.linspace(-1.0, 1.0, 20001), np.random.default_rng(0).uniform(-1.0, 1.0, 20000)])
    y = y[y != 0.0]
    ref = np.array([float(mp.tanh(mp.mpf(float(v)))) for v in y])
    err = np.abs(tanh_unit(y, p, q) - ref)
    print(f"max error over [-1, 1]: {np.max(err / np.spacing(np.abs(ref))):.1f} ulp, "
          f"{np.max(err / np.abs(ref)):.2e} relative")


if __name__ == "__main__":
    main()
