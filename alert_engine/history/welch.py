"""Welch's confidence interval for a difference of two means with unequal variances, and the
Student's t distribution it needs (for fractional degrees of freedom: Welch's are rarely whole),
without a statistics library."""

from __future__ import annotations

import math


def welch_interval(
    difference: float,
    first: tuple[float, int],
    second: tuple[float, int],
    confidence: float = 0.95,
) -> tuple[float, float]:
    """The interval around `difference` (mean of the first sample minus the second's), given
    each sample's (variance, size); sizes of at least two."""
    a = first[0] / first[1]
    b = second[0] / second[1]
    error = math.sqrt(a + b)
    if error == 0:
        return difference, difference
    # Welch-Satterthwaite degrees of freedom.
    freedom = (a + b) ** 2 / (a**2 / (first[1] - 1) + b**2 / (second[1] - 1))
    margin = t_quantile(1 - (1 - confidence) / 2, freedom) * error
    return difference - margin, difference + margin


def t_quantile(p: float, freedom: float) -> float:
    """Student's t quantile for any (also fractional) degrees of freedom: the exact CDF
    inverted by Newton's method on its density, kept inside a bracket that bisection narrows
    whenever a step would leave it (a page computes one per group: bisection alone took ~1 ms
    each, most of a page of 200 groups)."""
    if not 0 < p < 1 or freedom <= 0:
        raise ValueError("p must be in (0, 1) and the degrees of freedom positive")
    if p < 0.5:
        return -t_quantile(1 - p, freedom)
    low, high = 0.0, 1.0
    while t_cdf(high, freedom) < p:
        low, high = high, high * 2
    scale = math.exp(
        math.lgamma((freedom + 1) / 2)
        - math.lgamma(freedom / 2)
        - 0.5 * math.log(freedom * math.pi)
    )
    t = (low + high) / 2
    for _ in range(200):
        error = t_cdf(t, freedom) - p
        if error < 0:
            low = t
        else:
            high = t
        density = scale * (1 + t * t / freedom) ** (-(freedom + 1) / 2)
        step = error / density if density > 0 else math.inf
        following = t - step
        if not low < following < high:
            following = (low + high) / 2
        if abs(following - t) < 1e-12 * max(1.0, t) or high - low < 1e-12 * max(1.0, high):
            return following
        t = following
    return t


def t_cdf(t: float, freedom: float) -> float:
    """P(T <= t) for Student's t with `freedom` degrees of freedom."""
    x = freedom / (freedom + t * t)
    tail = 0.5 * _incomplete_beta(freedom / 2, 0.5, x)
    return 1 - tail if t >= 0 else tail


def _incomplete_beta(a: float, b: float, x: float) -> float:
    """The regularized incomplete beta function I_x(a, b), by its continued fraction (modified
    Lentz), on the side where it converges fast."""
    if x <= 0:
        return 0.0
    if x >= 1:
        return 1.0
    front = math.exp(
        math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    )
    if x > (a + 1) / (a + b + 2):
        return 1 - _incomplete_beta(b, a, 1 - x)
    tiny = 1e-300
    c, d = 1.0, 1 - (a + b) * x / (a + 1)
    d = 1 / (d if abs(d) > tiny else tiny)
    fraction = d
    for m in range(1, 500):
        for numerator in (
            m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
            -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1)),
        ):
            d = 1 + numerator * d
            d = 1 / (d if abs(d) > tiny else tiny)
            c = 1 + numerator / c
            c = c if abs(c) > tiny else tiny
            fraction *= c * d
        if abs(c * d - 1) < 1e-15:
            break
    return front * fraction / a
