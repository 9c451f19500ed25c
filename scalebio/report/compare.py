"""Paired differences between two methods' evaluations (the rule every table and claim uses).

Per-item scores on every paired seed → hierarchical paired bootstrap over seeds and items (one seed: over items
only, and the interval says so); otherwise a t-interval over the seeds' summary values; one seed without items:
a single estimate, no interval.
"""

from __future__ import annotations

from dataclasses import replace

from scalebio.report.stats import Estimate, hierarchical_bootstrap, t_interval


def _paired(pairs: list[tuple], a_eval, b_eval) -> Estimate:
    """a − b over ``pairs`` of (seed, a, b) runs; ``a_eval``/``b_eval`` read the evaluation of one side."""
    if not pairs:
        return Estimate(None)
    got = [(s, a_eval(a), b_eval(b)) for s, a, b in pairs]
    if all(ea.items and eb.items for _, ea, eb in got):
        return hierarchical_bootstrap({s: ea.items for s, ea, _ in got}, {s: eb.items for s, _, eb in got})
    if len(got) >= 2:
        est = t_interval([ea.value - eb.value for _, ea, eb in got])
        return replace(est, over=est.over.replace("t-interval", "t-interval; no per-item scores"))
    _, ea, eb = got[0]
    return Estimate(ea.value - eb.value, over="1 seed (no per-item scores)")


def difference(rs_a: list, rs_b: list, ev: str) -> Estimate:
    """method a − method b on evaluation ``ev``, paired by seed (and by item where items exist)."""
    by_seed_b = {r.seed: r for r in rs_b}
    pairs = [
        (r.seed, r, by_seed_b[r.seed])
        for r in rs_a
        if r.seed in by_seed_b and ev in r.evals and ev in by_seed_b[r.seed].evals
    ]
    return _paired(pairs, lambda r: r.evals[ev], lambda r: r.evals[ev])


def base_difference(base_eval, rs_b: list, ev: str) -> Estimate:
    """base model − method b. The base model has no seed: it is paired with each seed's run on the same items."""
    if base_eval is None:
        return Estimate(None)
    pairs = [(r.seed, None, r) for r in rs_b if ev in r.evals]
    return _paired(pairs, lambda _: base_eval, lambda r: r.evals[ev])


def difference_of_differences(a: list, b: list, c: list, d: list, ev: str) -> Estimate:
    """(a − b) − (c − d) on evaluation ``ev``, e.g. (ScaleBiO − uniform) in a study minus the same in its reference
    experiment: what a change does for one method beyond what it does for the control. Paired by seed (the four
    runs of a seed) and, where every run has per-item scores, by test item (the experiments share their test
    set): a hierarchical bootstrap of the per-item (a − b) against (c − d). Otherwise a t-interval over seeds."""
    by = [{r.seed: r for r in rs if ev in r.evals} for rs in (a, b, c, d)]
    seeds = sorted(set.intersection(*(set(x) for x in by)))
    if not seeds:
        return Estimate(None)
    evals = [[x[s].evals[ev] for x in by] for s in seeds]
    if all(e.items for row in evals for e in row):
        left, right = {}, {}
        for s, (ea, eb, ec, ed) in zip(seeds, evals):
            ids = set(ea.items) & set(eb.items) & set(ec.items) & set(ed.items)
            left[s] = {i: ea.items[i] - eb.items[i] for i in ids}
            right[s] = {i: ec.items[i] - ed.items[i] for i in ids}
        return hierarchical_bootstrap(left, right)
    values = [(ea.value - eb.value) - (ec.value - ed.value) for ea, eb, ec, ed in evals]
    if len(values) >= 2:
        est = t_interval(values)
        return replace(est, over=est.over.replace("t-interval", "t-interval; no per-item scores"))
    return Estimate(values[0], over="1 seed (no per-item scores)")


def evaluation_level(evals: dict) -> Estimate:
    """The mean of one evaluation over seeds, with the interval the tables use: {seed: Evaluation}. Per-item scores
    on every seed: the hierarchical bootstrap over seeds and items (of the scores against 0); otherwise a
    t-interval over the seeds' values; one seed without items: the value alone."""
    if not evals:
        return Estimate(None)
    if all(e.items for e in evals.values()):
        est = hierarchical_bootstrap({s: e.items for s, e in evals.items()},
                                     {s: dict.fromkeys(e.items, 0.0) for s, e in evals.items()})  # fmt: skip
        return replace(est, over=est.over.replace("paired bootstrap", "bootstrap"))
    values = [e.value for e in evals.values()]
    if len(values) >= 2:
        est = t_interval(values)
        return replace(est, over=est.over.replace("t-interval", "t-interval; no per-item scores"))
    return Estimate(values[0], over="1 seed (no per-item scores)")


def level(rs: list, ev: str) -> Estimate:
    """One method's mean on evaluation ``ev`` over its runs, with its interval (``evaluation_level``)."""
    return evaluation_level({r.seed: r.evals[ev] for r in rs if ev in r.evals})
