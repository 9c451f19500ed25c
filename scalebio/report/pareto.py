"""Beyond the paper: several validation objectives (``study: {kind: pareto}``, scalebio/objectives.py).

The experiment's data has two targets (e.g. the multilingual builder with ``target: [spanish, english]``): its
validation and test rows carry a ``target``. Its ScaleBiO methods differ only in ``objectives`` (``weighted`` at
several combination weights, ``worst_case``). Per method, over seeds:

- each target's held-out loss after fine-tuning on the method's selection (``testloss``'s ``by_target``) and the
  worse of the two per seed (what ``worst_case`` minimises on validation);
- the learned weight of each target's own source;
- whether its mean point is Pareto-optimal among the methods (no other point is at least as good on both
  targets and better on one);
- for ``worst_case``: the paired difference of its worse-target loss to the best ``weighted`` point's
  (the weighted method whose mean worse-target loss is lowest), with a 95 % t-interval over seeds.

The figure plots target a's loss against target b's (mean ± SD over seeds, faint dots per seed), the weighted
points joined in the order of their weight on target a.
"""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the backend)

from scalebio.common.runtime import ConfigError  # noqa: E402
from scalebio.report.markdown import pm, write_table  # noqa: E402
from scalebio.report.stats import mean_sd, t_interval  # noqa: E402


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


def plot_pareto(path: Path, experiment: str, rows: list[dict], groups: dict, targets: list[str], ev: str) -> None:
    a, b = targets
    fig, ax = plt.subplots(figsize=(6.5, 5.0), layout="constrained")
    weighted = sorted((r for r in rows if r["rule"] == "weighted"), key=lambda r: r[f"c[{a}]"])
    if len(weighted) > 1:
        ax.plot([r[f"{a} mean"] for r in weighted], [r[f"{b} mean"] for r in weighted], color="0.6", lw=1, zorder=1)
    for i, r in enumerate(rows):
        color, marker = f"C{i}", {"weighted": "o", "worst_case": "*"}.get(r["rule"], "s")
        for run in groups[(r["model"], r["method"])]:
            pts = target_losses(run, ev, targets)
            if pts:
                ax.scatter(pts[a], pts[b], color=color, alpha=0.25, s=14, marker=marker)
        label = r["method"] + (f" (c[{a}] = {r[f'c[{a}]']:.2f})" if r[f"c[{a}]"] is not None else "")
        ax.errorbar(r[f"{a} mean"], r[f"{b} mean"], xerr=r[f"{a} sd"] or 0, yerr=r[f"{b} sd"] or 0, color=color,
                    marker=marker, ms=10 if marker == "*" else 7, capsize=3, label=label, zorder=3)  # fmt: skip
    ax.set_xlabel(f"{ev} on {a} (lower is better)")
    ax.set_ylabel(f"{ev} on {b} (lower is better)")
    ax.legend(fontsize=7)
    n = max((r["seeds"] for r in rows), default=0)
    ax.set_title(f"{experiment}: the two targets' trade-off (mean ± SD over {n} seeds; dots: seeds)", fontsize=9)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def pareto_report(out: Path, experiment: str, groups: dict, card: dict, ev: str, results: Path) -> None:
    targets = list(card.get("targets") or [])
    if len(targets) != 2:
        raise ConfigError(
            f"experiments.{experiment}.study: kind 'pareto' needs data with two targets (e.g. multilingual with "
            f"target: [spanish, english]); this data has {targets}"
        )
    rows = pareto_rows(groups, targets, ev, results, experiment)
    if not rows:
        raise ConfigError(f"experiments.{experiment}.study: no run has '{ev}' losses per target (by_target)")
    a, b = targets
    cols = ["model", "method", "rule", f"c[{a}]", "seeds", f"{a} mean", f"{a} sd", f"{b} mean", f"{b} sd",
            "worse mean", "worse sd", f"p[{a}]", f"p[{b}]", "pareto", "vs_best", "vs_best_low", "vs_best_high"]  # fmt: skip
    show = ["model", "method", "rule", f"c[{a}]", "seeds", f"{ev} on {a}", f"{ev} on {b}", "worse target (mean ± SD)",
            f"p({a})", f"p({b})", "pareto", "worse − best weighted's [95% CI]"]  # fmt: skip
    note = (
        f"Two validation targets, {a} and {b}; `weighted` minimises c·L1[{a}] + (1 − c)·L1[{b}], `worst_case` the "
        f"smoothed maximum (scalebio/objectives.py). {ev}: held-out loss on each target's test rows after SFT on the "
        "method's selection (lower is better); p: the learned weight of the target's own source. Pareto: no other "
        "method's mean point is as good on both targets and better on one. The last column pairs worst_case with "
        "the best weighted point (lowest mean worse-target loss) over seeds."
    )
    write_table(out, "study", rows, cols, show, f"{experiment}: several validation objectives", note)
    plot_pareto(out / "study.png", experiment, rows, groups, targets, ev)
