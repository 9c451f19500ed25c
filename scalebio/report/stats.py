"""The few statistics the report needs: mean ± SD over seeds, 95 % intervals, paired bootstrap, verdicts.

Intervals of a difference between two methods are *paired*: over seeds (the same seed for both, a t-interval of
the per-seed differences) when there are at least two seeds, else over test items (a paired bootstrap of the
per-item scores, both models on the same items). ``scipy.stats`` gives the t quantile; the bootstrap is written
out here because it has to pair the two methods' items by id.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from scipy import stats as sps

BOOTSTRAP_SAMPLES = 2000


@dataclass
class Estimate:
    """A value with a 95 % interval (``low``/``high`` None when no interval can be given) and what it is over."""

    value: float | None
    low: float | None = None
    high: float | None = None
    over: str = ""
    """"seeds (n=3)", "test items (n=200, paired bootstrap)", or "1 seed" when there is no interval."""

    def text(self, digits: int = 3) -> str:
        if self.value is None:
            return "—"
        if self.low is None:
            return f"{self.value:.{digits}f}"
        return f"{self.value:+.{digits}f} [{self.low:+.{digits}f}, {self.high:+.{digits}f}]"


def mean_sd(values: list[float]) -> tuple[float | None, float | None]:
    """Mean and sample SD (None for the SD of a single value)."""
    values = [v for v in values if v is not None]
    if not values:
        return None, None
    m = sum(values) / len(values)
    if len(values) < 2:
        return m, None
    return m, math.sqrt(sum((v - m) ** 2 for v in values) / (len(values) - 1))


def t_interval(values: list[float], level: float = 0.95) -> Estimate:
    """Mean of ``values`` with a two-sided t-interval (one value: no interval)."""
    m, sd = mean_sd(values)
    if m is None:
        return Estimate(None)
    n = len(values)
    if sd is None:
        return Estimate(m, over="1 seed")
    half = sps.t.ppf(0.5 + level / 2, n - 1) * sd / math.sqrt(n)
    return Estimate(m, m - half, m + half, f"seeds (n={n})")


def paired_bootstrap(a: dict[str, float], b: dict[str, float], seed: int = 0, level: float = 0.95) -> Estimate:
    """mean(a − b) over the items both score, with a percentile interval from resampling items (paired)."""
    ids = sorted(set(a) & set(b))
    if not ids:
        return Estimate(None)
    diffs = [a[i] - b[i] for i in ids]
    rng = random.Random(seed)
    n = len(diffs)
    means = sorted(sum(diffs[rng.randrange(n)] for _ in range(n)) / n for _ in range(BOOTSTRAP_SAMPLES))
    lo = means[int((1 - level) / 2 * BOOTSTRAP_SAMPLES)]
    hi = means[min(BOOTSTRAP_SAMPLES - 1, int((0.5 + level / 2) * BOOTSTRAP_SAMPLES))]
    return Estimate(sum(diffs) / n, lo, hi, f"test items (n={n}, paired bootstrap)")


def verdict(est: Estimate, threshold: float, direction: str) -> str:
    """holds / does not hold / inconclusive for "value <direction> threshold" (direction ">" or "<").

    Inconclusive when the interval covers the threshold; without an interval (one seed, one number) the point
    estimate decides and the verdict says so.
    """
    if est.value is None:
        return "no data"
    better = (lambda x: x > threshold) if direction == ">" else (lambda x: x < threshold)
    if est.low is None:
        return ("holds" if better(est.value) else "does not hold") + " (point estimate, no interval)"
    lo_ok, hi_ok = better(est.low), better(est.high)
    if lo_ok and hi_ok:
        return "holds"
    if not lo_ok and not hi_ok:
        return "does not hold"
    return "inconclusive"
