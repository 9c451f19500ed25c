"""Paired differences between two methods' evaluations (the rule every table and claim uses)."""

from __future__ import annotations

from scalebio.report.stats import Estimate, paired_bootstrap, t_interval


def difference(rs_a: list, rs_b: list, ev: str) -> Estimate:
    """method a − method b on evaluation ``ev``: paired over seeds, or over test items with one seed."""
    by_seed_b = {r.seed: r for r in rs_b}
    pairs = [
        (r, by_seed_b[r.seed]) for r in rs_a if r.seed in by_seed_b and ev in r.evals and ev in by_seed_b[r.seed].evals
    ]
    if not pairs:
        return Estimate(None)
    if len(pairs) >= 2:
        return t_interval([a.evals[ev].value - b.evals[ev].value for a, b in pairs])
    a, b = pairs[0]
    if a.evals[ev].items and b.evals[ev].items:
        return paired_bootstrap(a.evals[ev].items, b.evals[ev].items)
    return Estimate(a.evals[ev].value - b.evals[ev].value, over="1 seed")


def base_difference(base_eval, rs_b: list, ev: str) -> Estimate:
    """base model − method b (the base model has no seed: paired with each seed's run, or over items)."""
    runs = [r for r in rs_b if ev in r.evals]
    if base_eval is None or not runs:
        return Estimate(None)
    if len(runs) >= 2:
        return t_interval([base_eval.value - r.evals[ev].value for r in runs])
    if base_eval.items and runs[0].evals[ev].items:
        return paired_bootstrap(base_eval.items, runs[0].evals[ev].items)
    return Estimate(base_eval.value - runs[0].evals[ev].value, over="1 seed")
