#!/usr/bin/env python3
"""Fits the polynomial Q in core/src/fast_math.h's normal_cdf_pdf (prints its coefficients).

Φ(-|x|) = erfc(z)/2 with z = |x|/√2 is written as (t/2)·exp(-z²)·Q(t), t = 1/(1 + z/2), so that the same
exp(-x²/2) also gives the density φ. Q(t) = erfc(z)·exp(z²)/t is smooth on (0, 1]; it is fitted on the t
of |x| <= 13.4 (further out exp(-x²/2) underflows in float) as a degree-9 polynomial in u = (t - c)/h,
u in [-1, 1], by least squares on the relative error with Lawson reweighting towards minimax.
Needs numpy and mpmath (for erfc·exp(z²) to more than double precision).
"""
import mpmath
import numpy as np

mpmath.mp.dps = 30
DEGREE = 9
T_MIN = 1.0 / (1.0 + 0.5 * 9.5)  # z = 9.5, |x| = 13.4
NODES = 4000


def q_exact(t):
    z = 2 * (1 / mpmath.mpf(t) - 1)
    return float(mpmath.erfc(z) * mpmath.exp(z * z) / t)


def main():
    center, half_width = (T_MIN + 1) / 2, (1 - T_MIN) / 2
    t = center + half_width * np.cos(np.linspace(0, np.pi, NODES))  # Chebyshev-spaced
    q = np.array([q_exact(v) for v in t])
    u = (t - center) / half_width
    basis = np.stack([u**k for k in range(DEGREE + 1)], axis=1)
    weights = np.ones(NODES)
    for _ in range(80):
        coef, *_ = np.linalg.lstsq(basis * (weights / q)[:, None], weights, rcond=None)
        rel = (basis @ coef - q) / q
        weights = weights * (np.abs(rel) / np.abs(rel).max()) ** 0.3 + 1e-15
        weights /= weights.max()
    print(f"center c = {center!r}, 1/h = {1 / half_width!r}")
    print(f"max relative error (exact arithmetic): {np.abs(rel).max():.3g}")
    for k, v in enumerate(coef):
        print(f"  u^{k}: {v:.9e}")


if __name__ == "__main__":
    main()
