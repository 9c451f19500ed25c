"""Beyond the paper: several validation objectives (``study: {kind: pareto}``, scalebio/objectives.py).

The experiment's data has two targets (e.g. the multilingual builder with ``target: [spanish, english]``): its
validation and test rows carry a ``target``. Its ScaleBiO methods differ only in ``objectives`` (``weighted`` at
several combination weights, ``worst_case``). Per method, over seeds:

- each target's held-out loss after fine-tuning on the method's selection (``testloss``'s ``by_target``) and the
  worse of the two per seed (what ``worst_case`` minimises on validation);
- the learned weight of each target's own source;
- whether its mean point is on the Pareto front of the means, and, with paired intervals, whether another method
  dominates it: that method's held-out loss is lower on both targets with both 95 % intervals of the paired
  difference below 0 (seeds × test items of the target, ``scalebio.report.compare``); "no" when every other
  method is significantly worse than it on at least one target; inconclusive otherwise;
- every pair of methods: the paired difference on each target and the judgement it supports (dominates /
  trade-off / inconclusive);
- for ``worst_case``: the paired difference of its worse-target loss to the best ``weighted`` point's
  (the weighted method whose mean worse-target loss is lowest), with a 95 % t-interval over seeds (the worse
  target is chosen per seed, so items are not paired).

The SFT set of every arm appends the whole validation set, both targets' rows: the note says so with the counts,
because it is what separates the c = 1 arm from a one-target experiment on the same pool (``multilingual``).

The figure: target a's loss against target b's (means, seeds as dots; weighted points joined in the order of their
weight on target a), and each method's paired difference from uniform on each target with its 95 % interval.
"""

from __future__ import annotations

import json
from dataclasses import replace
from itertools import combinations
from pathlib import Path

from scalebio.common.data import read_jsonl
from scalebio.common.runtime import ConfigError
from scalebio.report import methods, style
from scalebio.report.collect import Evaluation
from scalebio.report.compare import difference
from scalebio.report.markdown import markdown_table, pm, write_table
from scalebio.report.stats import Estimate, mean_sd, t_interval


def target_losses(run, ev: str, targets: list[str]) -> dict[str, float] | None:
    """{target: held-out loss} of one run from its evaluation's ``by_target`` (None if not evaluated)."""
    e = run.evals.get(ev)
    by = (e.summary.get("by_target") or {}) if e else {}
    if not all((by.get(t) or {}).get("value") is not None for t in targets):
        return None
    return {t: by[t]["value"] for t in targets}


def combination(results: Path, experiment: str, run, first: str) -> tuple[str, float | None]:
    """(rule, c on target ``first``) of a run, from its resolved ScaleBiO config (``config.json``); ("—", None)
    for a run without objectives (a baseline, or ScaleBiO on the pooled validation set)."""
    path = results / experiment / run.model / run.method / f"s{run.seed}" / "config.json"
    obj = (json.loads(path.read_text()) if path.exists() else {}).get("objectives")
    if not obj:
        return "—", None
    if obj["rule"] != "weighted":
        return obj["rule"], None
    weights = obj.get("weights") or {}
    total = sum(weights.values())
    return "weighted", (weights.get(first, 0.0) / total if total else 0.5)  # no weights: equal


def dominated(point: tuple[float, float], others: list[tuple[float, float]]) -> bool:
    """Lower is better on both axes: another point at least as low on both and lower on one dominates."""
    return any(o[0] <= point[0] and o[1] <= point[1] and o != point for o in others)


def pareto_rows(groups: dict, targets: list[str], ev: str, results: Path, experiment: str) -> list[dict]:
    a, b = targets
    rows = []
    for (model, method), rs in groups.items():
        per_seed = {r.seed: target_losses(r, ev, targets) for r in rs}
        per_seed = {s: v for s, v in per_seed.items() if v is not None}
        if not per_seed:
            continue
        rule, c_a = combination(results, experiment, rs[0], a)
        row = {"model": model, "method": method, "rule": rule, f"c[{a}]": c_a, "seeds": len(per_seed)}
        for t in targets:
            m, sd = mean_sd([v[t] for v in per_seed.values()])
            w, wsd = mean_sd([r.composition.get(t, 0.0) for r in rs])
            row |= {f"{t} mean": m, f"{t} sd": sd, f"{ev} on {t}": pm(m, sd), f"p[{t}]": w, f"p({t})": pm(w, wsd)}
        worst = {s: max(v.values()) for s, v in per_seed.items()}
        m, sd = mean_sd(list(worst.values()))
        row |= {"worse mean": m, "worse sd": sd, "worse target (mean ± SD)": pm(m, sd), "_worse": worst}
        rows.append(row)
    points = {r["method"]: (r[f"{a} mean"], r[f"{b} mean"]) for r in rows}
    weighted = [r for r in rows if r["rule"] == "weighted"]
    best = min(weighted, key=lambda r: r["worse mean"]) if weighted else None
    for r in rows:
        r["pareto"] = "yes" if not dominated(points[r["method"]], list(points.values())) else "no"
        if r["rule"] == "worst_case" and best is not None:
            seeds = sorted(set(r["_worse"]) & set(best["_worse"]))
            est = t_interval([r["_worse"][s] - best["_worse"][s] for s in seeds])
            r |= {"vs_best": est.value, "vs_best_low": est.low, "vs_best_high": est.high}
            r["worse − best weighted's [95% CI]"] = f"{est.text()} (vs {best['method']})"
    for r in rows:
        r.pop("_worse")
    return rows


def target_views(groups: dict, ev: str, targets: list[str], item_target: dict[str, str]) -> dict:
    """(model, method) -> runs whose evaluations are one per target (key ``<ev>:<target>``): that target's value
    from ``by_target`` and its test items (``item_target``: item id -> target), so that ``compare.difference``
    pairs them by seed and item as every table does."""
    out = {}
    for key, rs in groups.items():
        views = []
        for r in rs:
            e, losses = r.evals.get(ev), target_losses(r, ev, targets)
            if e is None or losses is None:
                continue
            evals = {f"{ev}:{t}": Evaluation({"value": losses[t], "higher_is_better": False},
                                            {i: v for i, v in e.items.items() if item_target.get(i) == t})
                     for t in targets}  # fmt: skip
            views.append(replace(r, evals=evals))
        out[key] = views
    return out


def judge(da: Estimate, db: Estimate) -> str:
    """What the paired differences x − y on both targets (lower loss is better) support about x against y."""
    below = [d.high is not None and d.high < 0 for d in (da, db)]
    above = [d.low is not None and d.low > 0 for d in (da, db)]
    if all(below):
        return "dominates"
    if all(above):
        return "is dominated"
    if any(below) and any(above):
        return "trade-off"
    return "inconclusive"


def pair_rows(views: dict, rows: list[dict], targets: list[str], ev: str) -> list[dict]:
    """Every pair of methods (x before y in the table): x − y on each target, paired; the judgement."""
    out = []
    for x, y in combinations(rows, 2):
        rx, ry = views[(x["model"], x["method"])], views[(y["model"], y["method"])]
        ds = [difference(rx, ry, f"{ev}:{t}") for t in targets]
        out.append({"model": x["model"], "x": x["method"], "y": y["method"],
                    **{f"{t}: x − y [95% CI]": d.text() for t, d in zip(targets, ds)},
                    "x against y": judge(*ds), "interval over": ds[0].over, "_diffs": ds})  # fmt: skip
    return out


def dominance(rows: list[dict], pairs: list[dict]) -> None:
    """Adds ``dominated``: "yes (by ...)" where another method is lower on both targets with both intervals below 0;
    "no" where every other method is significantly worse on at least one target; "inconclusive" otherwise."""
    for r in rows:
        by, safe = [], True
        for p in pairs:
            if r["method"] not in (p["x"], p["y"]):
                continue
            verdict, other = (p["x against y"], p["y"]) if p["x"] == r["method"] else (_flip(p["x against y"]), p["x"])
            if verdict == "is dominated":
                by.append(other)
            # "no" needs every other method significantly worse on some target: r dominates it, or a trade-off
            safe &= verdict in ("dominates", "trade-off")
        r["dominated"] = f"yes (by {', '.join(by)})" if by else ("no" if safe else "inconclusive")


def _flip(verdict: str) -> str:
    return {"dominates": "is dominated", "is dominated": "dominates"}.get(verdict, verdict)


def validation_note(data_dir: Path | None, targets: list[str]) -> str:
    """The SFT set appends the whole validation set (every target's rows): counts, and what that means for c = 1."""
    path = Path(data_dir or "") / "validation.jsonl"
    if data_dir is None or not path.exists():
        return ""
    counts = {t: 0 for t in targets}
    for row in read_jsonl(path, add_ids=False):
        if row.get("target") in counts:
            counts[row["target"]] += 1
    a, b = targets
    return (
        f"Every arm's SFT set appends the whole validation set, as for every method: here {counts[a]} {a} + "
        f"{counts[b]} {b} rows. So the c = 1 arm (weight on {a} only) is not the one-target experiment on the same "
        f"pool (`multilingual` in config/config.yaml): its sources and its {a} validation and test rows are the "
        f"same (tests/test_scalebio_objectives.py checks this), but its fine-tuning also sees the {counts[b]} {b} "
        "validation rows (more examples and steps), so its held-out loss on "
        f"{a} is comparable with the arms of this table, not with `multilingual`'s."
    )


def plot_pareto(path: Path, experiment: str, rows: list[dict], views: dict, targets: list[str], ev: str) -> None:
    """Left: the trade-off (means, seeds as dots). Right: each method − uniform on each target, paired intervals."""
    a, b = targets
    fig, (ax, ax2) = style.figure(2, 5.6, max(4.2, 0.32 * 2 * len(rows) + 1.6), legend_w=0.0, max_cols=2)
    weighted = sorted((r for r in rows if r["rule"] == "weighted"), key=lambda r: r[f"c[{a}]"])
    if len(weighted) > 1:
        ax.plot([r[f"{a} mean"] for r in weighted], [r[f"{b} mean"] for r in weighted], color="0.6", lw=1, zorder=1)
    for r in rows:
        colour, marker = style.method_colour(r["method"]), {"weighted": "o", "worst_case": "*"}.get(r["rule"], "s")
        pts = [(v.evals[f"{ev}:{a}"].value, v.evals[f"{ev}:{b}"].value) for v in views[(r["model"], r["method"])]]
        ax.scatter([p[0] for p in pts], [p[1] for p in pts], color=colour, alpha=0.35, s=14, marker=marker)
        label = r["method"] + (f" (c[{a}] = {r[f'c[{a}]']:.2f})" if r[f"c[{a}]"] is not None else "")
        ax.plot(r[f"{a} mean"], r[f"{b} mean"], marker=marker, color=colour, ms=11 if marker == "*" else 8,
                ls="none", label=label, zorder=3)  # fmt: skip
    ax.set_xlabel(f"{ev} on {a} (lower is better)")
    ax.set_ylabel(f"{ev} on {b} (lower is better)")
    ax.set_title("the two targets' trade-off (means; dots: seeds)")
    control = methods.anchor([m for _, m in views], "control")  # uniform: what the differences are against
    uniform = views.get((rows[0]["model"], control), []) if rows else []
    entries = []
    for r in rows:
        if r["method"] == control or not uniform:
            continue
        for t in targets:
            d = difference(views[(r["model"], r["method"])], uniform, f"{ev}:{t}")
            entries.append({"label": f"{r['method']}: {t}", "value": d.value, "low": d.low, "high": d.high,
                            "colour": style.method_colour(r["method"]), "over": d.over})  # fmt: skip
    style.interval_panel(ax2, entries, f"Δ {ev} vs uniform (lower is better)")
    ax2.set_title("each method − uniform, per target (95 % interval)")
    style.legend(fig, where="bottom")
    n = max((r["seeds"] for r in rows), default=0)
    over = next((e["over"] for e in entries if e.get("over")), "no interval")
    style.suptitle(fig, f"{experiment}: two validation targets, {a} and {b} ({style.seeds_text(n)}; intervals: {over})")
    style.save(fig, path)


def item_targets(data_dir: Path | None, card: dict) -> dict[str, str]:
    """Held-out item id -> target, from the data folder's held-out split (rows tagged ``target``)."""
    path = Path(data_dir or "") / f"{card.get('heldout') or 'test'}.jsonl"
    if data_dir is None or not path.exists():
        return {}
    return {str(r["id"]): r["target"] for r in read_jsonl(path, add_ids=False) if "target" in r}


def pareto_report(out: Path, experiment: str, groups: dict, card: dict, ev: str, results: Path, data_dir=None):
    targets = list(card.get("targets") or [])
    if len(targets) != 2:
        raise ConfigError(
            f"experiments.{experiment}.study: kind 'pareto' needs data with two targets (e.g. multilingual with "
            f"target: [spanish, english]); this data has {targets}"
        )
    rows = pareto_rows(groups, targets, ev, results, experiment)
    if not rows:
        raise ConfigError(f"experiments.{experiment}.study: no run has '{ev}' losses per target (by_target)")
    views = target_views(groups, ev, targets, item_targets(data_dir, card))
    pairs = pair_rows(views, rows, targets, ev)
    dominance(rows, pairs)
    a, b = targets
    cols = ["model", "method", "rule", f"c[{a}]", "seeds", f"{a} mean", f"{a} sd", f"{b} mean", f"{b} sd",
            "worse mean", "worse sd", f"p[{a}]", f"p[{b}]", "pareto", "dominated", "vs_best", "vs_best_low",
            "vs_best_high"]  # fmt: skip
    show = {"model": "model", "method": "method", "rule": "rule", f"c[{a}]": f"c[{a}]", "seeds": "seeds",
            f"{ev} on {a}": f"{ev} on {a}", f"{ev} on {b}": f"{ev} on {b}",
            "worse target (mean ± SD)": "worse target (mean ± SD)", f"p({a})": f"p({a})", f"p({b})": f"p({b})",
            "pareto": "on the front of the means", "dominated": "dominated (paired 95 % intervals)",
            "worse − best weighted's [95% CI]": "worse − best weighted's [95% CI]"}  # fmt: skip
    note = (
        f"Two validation targets, {a} and {b}; `weighted` minimises c·L1[{a}] + (1 − c)·L1[{b}], `worst_case` the "
        f"smoothed maximum (scalebio/objectives.py). {ev}: held-out loss on each target's test rows after SFT on the "
        "method's selection (lower is better); p: the learned weight of the target's own source. On the front of "
        "the means: no other method's mean point is as good on both targets and better on one (means only, no "
        "test). Dominated: another method's paired difference is below 0 on both targets with both 95 % intervals "
        '(seeds × test items); "no" when every other method is significantly worse on at least one target. The '
        "last column pairs worst_case with the best weighted point (lowest mean worse-target loss) over seeds "
        "(t-interval: the worse target is chosen per seed).\n\n" + validation_note(data_dir, targets)
    )
    heads = ["model", "x", "y", f"{a}: x − y [95% CI]", f"{b}: x − y [95% CI]", "x against y", "interval over"]
    extra = ("\n## Every pair, paired by seed and test item\n\nx − y on each target (lower is better): x dominates y "
             "when both intervals lie below 0, is dominated when both lie above, a trade-off when one lies on each "
             "side; otherwise inconclusive.\n\n" + markdown_table(heads, [[p[h] for h in heads] for p in pairs]))  # fmt: skip
    write_table(out, "study", rows, cols, show, f"{experiment}: several validation objectives", note, extra)
    plot_pareto(out / "study.png", experiment, rows, views, targets, ev)
