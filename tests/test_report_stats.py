"""Report statistics with known answers: the hierarchical paired bootstrap over seeds and items, p-values against a
threshold, the smallest detectable difference, Holm's correction, and verdicts (a single estimate is untested)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from scalebio.report.stats import (
    UNTESTED,
    Z_MDE,
    Estimate,
    hierarchical_bootstrap,
    holm,
    t_interval,
    verdict,
    verdict_from_p,
)


def _seeds(shifts: list[float], n: int = 40, seed: int = 0) -> tuple[dict, dict]:
    """b: random scores per seed; a = b + the seed's shift + an item effect that sums to 0 within each seed."""
    rng = np.random.default_rng(seed)
    a, b = {}, {}
    for s, shift in enumerate(shifts):
        base = rng.random(n)
        effect = np.tile([-0.3, 0.3], n // 2)  # zero mean: the per-seed mean difference is exactly the shift
        b[s] = {f"q{i}": float(base[i]) for i in range(n)}
        a[s] = {f"q{i}": float(base[i] + shift + effect[i]) for i in range(n)}
    return a, b


def test_a_constant_shift_in_every_seed_collapses_the_interval_to_the_shift():
    rng = np.random.default_rng(3)
    b = {s: {f"q{i}": float(v) for i, v in enumerate(rng.random(30))} for s in range(3)}
    a = {s: {k: v + 0.25 for k, v in items.items()} for s, items in b.items()}
    est = hierarchical_bootstrap(a, b)
    assert est.value == pytest.approx(0.25)
    assert est.low == pytest.approx(0.25) and est.high == pytest.approx(0.25) and est.se == pytest.approx(0, abs=1e-12)
    assert est.p == 0.0  # every replicate is above 0
    assert est.against(0.25).p == 1.0  # ... and all of them equal 0.25
    assert "3 seeds × 30 items, hierarchical paired bootstrap" in est.over


def test_the_interval_widens_when_seeds_disagree():
    """Same items and item effects, same mean shift 0.1: seeds agreeing (0.1, 0.1, 0.1) against seeds disagreeing
    (0.0, 0.1, 0.2). Resampling seeds must carry the disagreement into the interval."""
    agree = hierarchical_bootstrap(*_seeds([0.1, 0.1, 0.1]))
    disagree = hierarchical_bootstrap(*_seeds([0.0, 0.1, 0.2]))
    assert agree.value == pytest.approx(0.1) and disagree.value == pytest.approx(0.1)
    assert disagree.high - disagree.low > 1.5 * (agree.high - agree.low)
    assert disagree.se > agree.se


def test_items_are_paired_by_id_and_one_seed_says_training_randomness_is_not_covered():
    rng = np.random.default_rng(1)
    a = {str(i): float(rng.random()) for i in range(300)}
    shuffled = dict(zip(reversed(list(a)), [v - 0.1 for v in a.values()]))  # same values, other ids
    paired = {k: v - 0.1 for k, v in a.items()}
    est = hierarchical_bootstrap({0: a}, {0: paired})
    assert est.low == pytest.approx(0.1) and est.high == pytest.approx(0.1)  # paired by id: no spread at all
    assert est.over.startswith("1 seed: test items only, training randomness not covered") and "n=300" in est.over
    wide = hierarchical_bootstrap({0: a}, {0: shuffled})
    assert wide.low < 0.1 < wide.high and wide.high - wide.low > 0.05


def test_bootstrap_is_deterministic_and_missing_pairs_give_no_estimate():
    a, b = _seeds([0.0, 0.1, 0.2])
    first, second = hierarchical_bootstrap(a, b), hierarchical_bootstrap(a, b)
    assert (first.low, first.high, first.p) == (second.low, second.high, second.p)
    assert hierarchical_bootstrap({0: {"x": 1.0}}, {1: {"x": 0.0}}).value is None  # no common seed


def test_bootstrap_p_value_is_twice_the_smaller_tail_against_the_threshold():
    draws = np.array([-1.0, 1.0, 2.0, 3.0])
    est = Estimate(1.25, -1.0, 3.0, draws=draws)
    assert est.against(0.0).p == pytest.approx(0.5)  # P*(d ≤ 0) = 1/4, P*(d ≥ 0) = 3/4
    assert est.against(2.0).p == pytest.approx(1.0)  # 2·min(3/4, 2/4) capped at 1
    assert est.against(10.0).p == 0.0
    assert est.negated().against(0.0).p == pytest.approx(0.5)  # sign flip: same two-sided p
    assert est.negated().low == -3.0 and est.negated().high == 1.0


def test_t_interval_p_value_and_se():
    est = t_interval([2.0, 3.0, 4.0])  # mean 3, SD 1, SE 1/√3; t = 3√3, df 2: p = 1 − t/√(t² + 2)
    t = 3 * math.sqrt(3)
    assert est.se == pytest.approx(1 / math.sqrt(3))
    assert est.p == pytest.approx(1 - t / math.sqrt(t * t + 2))
    assert est.against(3.0).p == pytest.approx(1.0)
    assert t_interval([0.5]).p is None and t_interval([0.5]).se is None


def test_smallest_detectable_difference_is_2_8_standard_errors():
    assert Z_MDE == pytest.approx(1.959964 + 0.841621, abs=1e-5)
    assert Estimate(0.0, -1.0, 1.0, se=0.1).mde == pytest.approx(0.28016, abs=1e-4)
    assert Estimate(0.3).mde is None


def test_holm_adjusts_known_p_values():
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.5, 0.001]) == pytest.approx([0.5, 0.002])
    assert holm([0.6, 0.7]) == pytest.approx([1.0, 1.0])  # capped at 1, monotone
    assert holm([]) == []


def test_verdicts_read_the_interval_and_a_single_estimate_is_untested():
    est = t_interval([2.0, 3.0, 4.0])
    assert verdict(est, 0.0, ">") == "holds" and verdict(est, 2.5, ">") == "inconclusive"
    assert verdict(est, 10.0, ">") == "does not hold" and verdict(est, 10.0, "<") == "holds"
    assert verdict(Estimate(0.5), 0.0, ">") == UNTESTED == "untested (one estimate, no interval)"
    assert verdict(Estimate(None), 0.0, ">") == "no data"
    assert verdict(Estimate(0.0, 0.0, 0.0), 0.0, ">") == "inconclusive"  # touches the threshold: identical models
    assert verdict(Estimate(-0.1, -0.2, 0.0), 0.0, ">") == "inconclusive"
    assert verdict_from_p(0.3, 0.01, 0.0, ">") == "holds" and verdict_from_p(-0.3, 0.01, 0.0, ">") == "does not hold"
    assert verdict_from_p(0.3, 0.06, 0.0, ">") == "inconclusive" and verdict_from_p(0.3, None, 0.0, ">") == UNTESTED
