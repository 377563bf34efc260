"""The Beta distribution, stdlib only: its CDF, quantiles and the Jeffreys interval.

Used by the pressure estimates (``pressure.py``); pure, no pytest.
"""

from __future__ import annotations

import math


def jeffreys_interval(successes: float, trials: float, confidence: float) -> tuple[float, float]:
    """Equal-tailed Jeffreys interval, Beta(x + 1/2, n - x + 1/2); 0 / 1 ends at x = 0 / n."""
    x = min(max(successes, 0.0), trials)
    tail = (1.0 - confidence) / 2.0
    a, b = x + 0.5, trials - x + 0.5
    lo = 0.0 if x <= 0 else beta_quantile(tail, a, b)
    hi = 1.0 if x >= trials else beta_quantile(1.0 - tail, a, b)
    return lo, hi


def beta_quantile(q: float, a: float, b: float) -> float:
    """The q-quantile of Beta(a, b), by bisection on the regularized incomplete beta; a point
    mass at 1 (0) when b (a) is 0."""
    if b <= 0.0 or a <= 0.0:
        return 1.0 if b <= 0.0 else 0.0
    lo, hi = 0.0, 1.0
    for _ in range(80):
        mid = (lo + hi) / 2.0
        if beta_cdf(mid, a, b) < q:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2.0


def beta_cdf(x: float, a: float, b: float) -> float:
    """I_x(a, b), by the continued fraction (Numerical Recipes, betacf)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = a * math.log(x) + b * math.log1p(-x) - _log_beta(a, b)
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _beta_fraction(a, b, x) / a
    return 1.0 - math.exp(log_front) * _beta_fraction(b, a, 1.0 - x) / b


def _log_beta(a: float, b: float) -> float:
    return math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)


def _beta_fraction(a: float, b: float, x: float) -> float:
    tiny = 1e-300
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 500):
        for num in (
            m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
            -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1)),
        ):
            d = 1.0 + num * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + num / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < 1e-15:
            break
    return h
