"""A tiny chi-square quantile (no scipy): the regularized lower incomplete
gamma function by its power series, inverted by bisection.

    P(a, x) = x^a e^-x / Gamma(a + 1) * sum_n x^n / ((a+1)(a+2)...(a+n))

The chi-square CDF with k degrees of freedom is P(k/2, x/2). The series
converges for every x > 0; 2,000 terms are ample for x below a few hundred.
"""

from __future__ import annotations

import math

import numpy as np


def chi2_cdf(x: float, dof: int) -> float:
    if x <= 0:
        return 0.0
    a, half = dof / 2.0, x / 2.0
    term = total = 1.0
    for n in range(1, 2000):
        term *= half / (a + n)
        total += term
        if term < 1e-17 * total:
            break
    return math.exp(a * math.log(half) - half - math.lgamma(a + 1) + math.log(total))


def chi2_quantile(p: float, dof: int) -> float:
    lo, hi = 0.0, 10.0 * dof + 1000.0
    for _ in range(200):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if chi2_cdf(mid, dof) < p else (lo, mid)
    return (lo + hi) / 2


def chi2_statistic(counts: np.ndarray, probs: np.ndarray) -> float:
    expected = probs * counts.sum()
    return float(np.sum((counts - expected) ** 2 / expected))
