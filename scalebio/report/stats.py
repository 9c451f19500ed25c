"""The statistics the report needs: mean ± SD over seeds, 95 % intervals with p-values, Holm, verdicts.

Intervals of a difference between two methods are *paired*. Where per-item scores exist, a hierarchical paired
bootstrap covers both sources of randomness at once: seeds are resampled with replacement (training randomness),
then test items with replacement within each drawn seed (which items the test set happens to hold), both methods
on the same seed and the same items. With one seed this is the item bootstrap and the interval says that training
randomness is not covered. Without per-item scores the interval is a t-interval over seeds. ``scipy.stats`` gives
the t and normal quantiles; the bootstrap is written out here because it has to pair seeds and item ids.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np
from scipy import stats as sps

BOOTSTRAP_SAMPLES = 2000
LEVEL = 0.95
POWER = 0.80
Z_MDE = float(sps.norm.ppf(0.5 + LEVEL / 2) + sps.norm.ppf(POWER))
"""(z_0.975 + z_0.80) = 2.80: a true difference of Z_MDE·SE is detected with 80 % power at 5 % (two-sided)."""
UNTESTED = "untested (one estimate, no interval)"
_CHUNK = 256
"""Bootstrap replicates drawn at once per seed (bounds the memory of the index matrix on large test sets)."""


@dataclass
class Estimate:
    """A value with a 95 % interval (``low``/``high`` None when no interval can be given) and what it is over.

    ``p`` is the two-sided p-value against ``threshold`` (0 unless ``against`` moved it; None without an interval),
    ``se`` the standard error (bootstrap SD of the replicates, or SD/√n of a t-interval)."""

    value: float | None
    low: float | None = None
    high: float | None = None
    over: str = ""
    """e.g. "seeds × test items (3 seeds × 64 items, hierarchical paired bootstrap)", or "1 seed" (no interval)."""
    p: float | None = None
    se: float | None = None
    threshold: float = 0.0
    df: int | None = field(default=None, repr=False)
    """Degrees of freedom of a t-interval (None for a bootstrap)."""
    draws: np.ndarray | None = field(default=None, repr=False, compare=False)
    """The bootstrap replicates of the statistic (None for a t-interval)."""

    def text(self, digits: int = 3) -> str:
        if self.value is None:
            return "—"
        if self.low is None:
            return f"{self.value:.{digits}f}"
        return f"{self.value:+.{digits}f} [{self.low:+.{digits}f}, {self.high:+.{digits}f}]"

    @property
    def mde(self) -> float | None:
        """Smallest true difference this comparison detects with 80 % power at 5 % two-sided: Z_MDE · SE."""
        return None if self.se is None else Z_MDE * self.se

    def against(self, threshold: float) -> Estimate:
        """The same estimate with its p-value against ``threshold`` (a claim's threshold, not 0)."""
        return replace(self, threshold=threshold, p=p_value(self, threshold))

    def negated(self) -> Estimate:
        """−estimate (a lower-is-better metric turned so that positive means better); p is unchanged (symmetric)."""
        if self.value is None:
            return self
        return replace(  # 0.0 − x: a zero difference stays +0.0, not −0.0
            self,
            value=0.0 - self.value,
            low=None if self.high is None else 0.0 - self.high,
            high=None if self.low is None else 0.0 - self.low,
            threshold=-self.threshold,
            draws=None if self.draws is None else -self.draws,
        )


def spearman(x: list[float], y: list[float]) -> float:
    """Spearman's ρ, the suite's one; 0 where one side is constant (scipy: nan): weights that did not move carry no
    ordering."""
    if len(set(x)) < 2 or len(set(y)) < 2:
        return 0.0
    return float(sps.spearmanr(x, y).statistic)


def p_value(est: Estimate, threshold: float) -> float | None:
    """Two-sided p-value of "the true value equals ``threshold``" (None without an interval).

    Bootstrap: p = min(1, 2·min(P*(d ≤ threshold), P*(d ≥ threshold))) over the replicates d. t-interval: the
    t-test of the mean against the threshold (a zero SD gives 0, or 1 when the mean is the threshold)."""
    if est.value is None or est.low is None:
        return None
    if est.draws is not None:
        below, above = float(np.mean(est.draws <= threshold)), float(np.mean(est.draws >= threshold))
        return min(1.0, 2 * min(below, above))
    if not est.se:
        return 1.0 if est.value == threshold else 0.0
    return float(2 * sps.t.sf(abs(est.value - threshold) / est.se, est.df))


def mean_sd(values: list[float]) -> tuple[float | None, float | None]:
    """Mean and sample SD (None for the SD of a single value)."""
    values = [v for v in values if v is not None]
    if not values:
        return None, None
    m = sum(values) / len(values)
    if len(values) < 2:
        return m, None
    return m, math.sqrt(sum((v - m) ** 2 for v in values) / (len(values) - 1))


def t_interval(values: list[float], level: float = LEVEL) -> Estimate:
    """Mean of ``values`` with a two-sided t-interval, its SE and p against 0 (one value: no interval)."""
    m, sd = mean_sd(values)
    if m is None:
        return Estimate(None)
    n = len(values)
    if sd is None:
        return Estimate(m, over="1 seed")
    se = sd / math.sqrt(n)
    half = sps.t.ppf(0.5 + level / 2, n - 1) * se
    est = Estimate(m, m - half, m + half, f"seeds (n={n}, t-interval)", se=se, df=n - 1)
    return est.against(0.0)


def seed_bootstrap(values: list[float], seed: int = 0, level: float = LEVEL) -> Estimate:
    """Mean of per-seed values with a percentile bootstrap interval over the seeds, SE and p against 0.

    For a bounded statistic (a correlation in [−1, 1]): every replicate is a mean of observed values, so the
    interval stays inside [min, max] of the seeds, where a t-interval (mean ± t·SE) can leave the range (a
    Spearman of −0.98 ± 0.04 over 5 seeds gave [−1.036, −0.924]). With few seeds it is narrower than a
    t-interval (3 seeds have 10 distinct resamples): it says which values the seeds support, not more. One value:
    no interval ("1 seed")."""
    values = [v for v in values if v is not None]
    if not values:
        return Estimate(None)
    m = float(np.mean(values))
    if len(values) < 2:
        return Estimate(m, over="1 seed")
    arr = np.asarray(values, dtype=float)
    rng = np.random.default_rng(seed)
    draws = arr[rng.integers(0, len(arr), size=(BOOTSTRAP_SAMPLES, len(arr)))].mean(axis=1)
    lo, hi = np.quantile(draws, [(1 - level) / 2, (1 + level) / 2])
    over = f"seeds (n={len(arr)}, percentile bootstrap over seeds: stays within the seeds' range)"
    return Estimate(m, float(lo), float(hi), over, se=float(draws.std(ddof=1)), draws=draws).against(0.0)


def _item_means(diffs: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """k bootstrap means of ``diffs`` (items drawn with replacement), drawn in chunks."""
    out = np.empty(k)
    n = len(diffs)
    for start in range(0, k, _CHUNK):
        stop = min(k, start + _CHUNK)
        out[start:stop] = diffs[rng.integers(0, n, size=(stop - start, n))].mean(axis=1)
    return out


def hierarchical_bootstrap(
    a: dict[int, dict[str, float]], b: dict[int, dict[str, float]], seed: int = 0, level: float = LEVEL
) -> Estimate:
    """mean over seeds of mean(a − b) over the items both score, with a hierarchical paired bootstrap.

    ``a``/``b``: {seed: {item id: score}}. Each replicate draws as many seeds as there are, with replacement, then
    for every drawn seed its items with replacement (paired: the same ids in a and b), and takes the mean over the
    drawn seeds of the per-seed mean difference. Percentile interval, bootstrap SE, p against 0."""
    per_seed = {}
    for s in sorted(set(a) & set(b)):
        ids = sorted(set(a[s]) & set(b[s]))
        if ids:
            per_seed[s] = np.array([a[s][i] - b[s][i] for i in ids], dtype=float)
    if not per_seed:
        return Estimate(None)
    diffs = list(per_seed.values())
    value = float(np.mean([d.mean() for d in diffs]))
    rng = np.random.default_rng(seed)
    n_seeds = len(diffs)
    drawn = rng.integers(0, n_seeds, size=(BOOTSTRAP_SAMPLES, n_seeds))
    seed_means = np.empty(drawn.shape)
    for j, d in enumerate(diffs):  # every occurrence of seed j gets its own item resample
        where = drawn == j
        seed_means[where] = _item_means(d, int(where.sum()), rng)
    draws = seed_means.mean(axis=1)
    lo, hi = np.quantile(draws, [(1 - level) / 2, (1 + level) / 2])
    n_items = sorted({len(d) for d in diffs})
    items = str(n_items[0]) if len(n_items) == 1 else f"{n_items[0]}-{n_items[-1]}"
    if n_seeds == 1:
        over = f"1 seed: test items only, training randomness not covered (n={items} items, paired bootstrap)"
    else:
        over = f"seeds × test items ({n_seeds} seeds × {items} items, hierarchical paired bootstrap)"
    est = Estimate(value, float(lo), float(hi), over, se=float(draws.std(ddof=1)), draws=draws)
    return est.against(0.0)


def holm(pvalues: list[float]) -> list[float]:
    """Holm's step-down adjusted p-values, in the input order: the k-th smallest of m is multiplied by (m − k + 1),
    made monotone, capped at 1."""
    order = sorted(range(len(pvalues)), key=lambda i: pvalues[i])
    out, running = [0.0] * len(pvalues), 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(pvalues) - rank) * pvalues[i]))
        out[i] = running
    return out


def _side(threshold: float, direction: str, strict_opposite: bool = False):
    """x is on the claim's side of the threshold (direction ">" or "<"); with ``strict_opposite``: x is strictly
    on the other side (touching the threshold is on neither)."""
    if direction not in (">", "<"):
        raise ValueError(f"direction must be '>' or '<', got {direction!r}")
    if (direction == ">") != strict_opposite:
        return lambda x: x > threshold
    return lambda x: x < threshold


def verdict(est: Estimate, threshold: float, direction: str) -> str:
    """holds / does not hold / inconclusive for "value <direction> threshold" (direction ">" or "<").

    holds / does not hold when the whole 95 % interval is strictly on one side; inconclusive when it covers or
    touches the threshold (an interval [0, 0] against "> 0" is two identical models: not evidence either way). A
    single estimate without an interval (one seed, one number) is not tested at all: its verdict says so."""
    if est.value is None:
        return "no data"
    if est.low is None:
        return UNTESTED
    better, worse = _side(threshold, direction), _side(threshold, direction, strict_opposite=True)
    if better(est.low) and better(est.high):
        return "holds"
    if worse(est.low) and worse(est.high):
        return "does not hold"
    return "inconclusive"


def verdict_from_p(value: float | None, p: float | None, threshold: float, direction: str, alpha=0.05) -> str:
    """The verdict of an (adjusted) p-value: significant at ``alpha`` → holds / does not hold by the side the value
    is on; otherwise inconclusive; no p-value → untested (or no data)."""
    if value is None:
        return "no data"
    if p is None:
        return UNTESTED
    if p >= alpha:
        return "inconclusive"
    return "holds" if _side(threshold, direction)(value) else "does not hold"
