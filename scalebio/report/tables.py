"""Tables and figures of one experiment, over seeds, from the run folders (``scalebio.report.collect``).

    python -m scalebio report --experiment denoise --spec JSON --results results/default --data DIR

Writes ``<results>/<experiment>/report/``:

    weights.{csv,md}      per (model, method) and source: learned p and realised SFT-set share (mean ± SD over
                          seeds); ScaleBiO's movement, convergence and clipping per run; the data's ceilings
    downstream.{csv,md}   every evaluation: mean ± SD over seeds (base model once), the paired difference to
                          uniform with its 95 % interval, and the share of the uniform→oracle gap closed
    cost.{csv,md}         per method: the selection's wall time and tokens, this experiment's selection, SFT and
                          evaluation CPU / wall seconds (benchmark files), CPU s per run beside the first
                          evaluation with its interval (scalebio.report.cost; cost_quality.png: cost-figure)
    claims.{csv,md}       the paper's claims measured here, with intervals, p-values (raw and Holm), verdicts
                          (holds / does not hold / inconclusive / untested) and the smallest detectable Δ
    weights.png, trajectory.png, downstream.png

Every number is a reduced-scale miniature; the downstream table names the grader or judge of each metric.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from scalebio.common.runtime import main_guard
from scalebio.report import methods
from scalebio.report.claims import claims, roles
from scalebio.report.collect import collect, read_json
from scalebio.report.compare import base_difference, difference
from scalebio.report.cost import cost_rows, write_cost
from scalebio.report.figures import plot_downstream, plot_trajectories, plot_weights
from scalebio.report.markdown import pm, write_table
from scalebio.report.stats import UNTESTED, Estimate, mean_sd
from scalebio.report.weights_table import data_ceilings, write_weights


def group(runs) -> dict[tuple[str, str], list]:
    """(model, method) -> runs, in the config's method order with the reference points (the oracles) last."""
    out: dict[tuple[str, str], list] = {}
    for r in sorted(runs, key=lambda r: r.info.role == "reference_point"):  # stable: keeps the config's order
        out.setdefault((r.model, r.method), []).append(r)
    return out


def gap_closed(value: float | None, uniform: float | None, oracle: float | None) -> float | None:
    """Share of the uniform→oracle gap a method closes: (value − uniform) / (oracle − uniform). The ratio of two
    differences on the same scale has the same sign whichever way the metric improves, so it holds for
    lower-is-better metrics (test loss) too: 1 = as good as the oracle, 0 = uniform, < 0 = worse than uniform."""
    if None in (value, uniform, oracle) or oracle == uniform:
        return None
    return (value - uniform) / (oracle - uniform)


def downstream_rows(groups: dict, base: dict, evals: list[str]) -> list[dict]:
    rows = []
    models = sorted({m for m, _ in groups} | set(base))
    for model in models:
        role = roles(groups, model)
        control = role["control"]
        uniform = groups.get((model, control), [])
        oracle = groups.get((model, role["ceiling"]), [])
        for ev in evals:
            u_mean = mean_sd([r.evals[ev].value for r in uniform if ev in r.evals])[0]
            o_mean = mean_sd([r.evals[ev].value for r in oracle if ev in r.evals])[0]
            entries = [(methods.BASE, None)] + [(m, rs) for (mm, m), rs in groups.items() if mm == model]
            for method, rs in entries:
                u_seed = {r.seed: r.evals[ev].value for r in uniform if ev in r.evals}
                if rs is None:
                    e = base.get(model, {}).get(ev)
                    if e is None:
                        continue
                    values, summary, diff = [e.value], e.summary, base_difference(e, uniform, ev)
                    seed_diffs = [e.value - u for u in u_seed.values()]  # the base model against each seed
                else:
                    got = [r for r in rs if ev in r.evals]
                    if not got:
                        continue
                    values, summary = [r.evals[ev].value for r in got], got[0].evals[ev].summary
                    diff = difference(rs, uniform, ev) if method != control else Estimate(None)
                    seed_diffs = [r.evals[ev].value - u_seed[r.seed] for r in got if r.seed in u_seed]
                m, sd = mean_sd(values)
                gap = None if method in (control, *role["reference_points"]) else gap_closed(m, u_mean, o_mean)
                rows.append(
                    {
                        "model": model,
                        "method": method,
                        "evaluation": ev,
                        "metric": summary.get("metric"),
                        "mean": m,
                        "sd": sd,
                        "seeds": len(values) if rs is not None else 0,
                        "n_items": summary.get("n"),
                        "value (mean ± SD)": pm(m, sd),
                        "diff_vs_uniform": diff.value,
                        "diff_low": diff.low,
                        "diff_high": diff.high,
                        "diff_p": diff.p,
                        "diff_se": diff.se,
                        "Δ vs uniform [95% CI]": diff.text(),
                        "interval over": diff.over,
                        "gap_closed": gap,
                        "uniform→oracle gap closed": f"{gap:.0%}" if gap is not None else "—",
                        "higher_is_better": summary.get("higher_is_better", True),
                        "grader/judge": summary.get("judge") or summary.get("grader"),
                        "comparable_to_paper": summary.get("comparable_to_paper", False),
                        # for the figure (not written): the seeds' own values and paired differences
                        "_seed_values": values,
                        "_seed_diffs": seed_diffs if method != control else [],
                    }
                )
    return rows


def source_names(card: dict, runs) -> list[str]:
    """The experiment's sources: as its data card lists them, else as the selections name them."""
    return sorted(card.get("sources", {})) or sorted({s for r in runs for s in r.composition})


def experiment_arguments(ap: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The arguments every per-experiment report command takes (``report``, ``study``)."""
    ap.add_argument("--experiment", required=True)
    ap.add_argument("--spec", required=True, help="the experiment's config as JSON")
    ap.add_argument("--results", required=True)
    ap.add_argument("--data", required=True)
    return ap


def experiment_report(
    experiment: str, spec: dict, results: Path, data_dir: Path, seeds: list[int] | None = None, twins=None
) -> Path:
    """``twins``: "model/method" -> {seed: the experiment whose selection this run copies} (the cost table charges
    that experiment's selection job)."""
    out = results / experiment / "report"
    out.mkdir(parents=True, exist_ok=True)
    card = read_json(data_dir / "card.json") or {}
    seeds = seeds or spec.get("seeds") or [0]
    runs, base = collect(experiment, spec, results, data_dir, seeds)
    groups = group(runs)
    sources = source_names(card, runs)
    evals = list(spec.get("evals", []))

    budget = spec.get("budget") or next((r.selection.get("budget") for r in runs), 0) or 0
    write_weights(out, experiment, groups, sources, card, data_ceilings(data_dir, card, sources, budget))
    d_rows = downstream_rows(groups, base, evals)
    write_table(
        out, "downstream", d_rows,
        ["model", "method", "evaluation", "metric", "mean", "sd", "seeds", "n_items", "diff_vs_uniform", "diff_low",
         "diff_high", "diff_p", "diff_se", "gap_closed", "higher_is_better", "comparable_to_paper"],
        ["model", "method", "evaluation", "metric", "value (mean ± SD)", "seeds", "n_items", "Δ vs uniform [95% CI]",
         "interval over", "uniform→oracle gap closed", "grader/judge"],
        f"{experiment}: evaluation of the fine-tuned models",
        "Reduced-scale miniature: not comparable to the paper's tables (see paper_vs_ours). Δ is paired by seed and "
        "test item: a hierarchical bootstrap resamples seeds, then items within each seed (one seed: items only, "
        "training randomness not covered; a t-interval over seeds where per-item scores are missing). Gap closed = "
        "(method − uniform) / (oracle − uniform): 100 % = as good as the oracle, whichever way the metric improves; "
        "`oracle*` rows are reference points. test_loss: lower is better. Offline log-prob judge scores, where "
        "present, are not GPT-4 MT-Bench scores.",
    )  # fmt: skip
    write_cost(out, experiment, cost_rows(experiment, groups, base, evals[0] if evals else None, results, twins or {}))
    cl_rows = claims(card, groups, base, evals, sources)
    write_table(
        out, "claims", cl_rows,
        ["model", "claim", "kind", "comparator", "evaluation", "metric", "measure", "value", "low", "high", "se",
         "threshold", "threshold_value", "direction", "verdict", "p", "p_holm", "verdict_holm", "mde",
         "interval over"],
        {"model": "model", "claim": "claim", "measure": "measure", "estimate [95% CI]": "estimate [95% CI]",
         "threshold": "threshold", "verdict": "verdict", "p (shown)": "p", "p (Holm, shown)": "p (Holm)",
         "verdict_holm": "verdict (Holm)", "smallest detectable Δ (80 % power)": "smallest detectable Δ (80 % power)",
         "interval over": "interval over"},
        f"{experiment}: the paper's claims measured on this miniature",
        "Verdict: holds / does not hold when the whole 95 % interval is on one side of the threshold, inconclusive "
        f"when it covers it, {UNTESTED} for a single estimate (one seed, no per-item scores). p: two-sided, against "
        "the threshold; p (Holm): Holm's correction over this experiment's claims that have a p-value, and its "
        "verdict at 5 %. Smallest detectable Δ = (z₀.₉₇₅ + z₀.₈₀)·SE = 2.80·SE: the true difference this "
        "comparison finds with 80 % power; a smaller real effect may read inconclusive.",
    )  # fmt: skip
    plot_weights(out / "weights.png", experiment, groups, sources, card)
    plot_trajectories(out / "trajectory.png", experiment, groups, sources, card)
    plot_downstream(out / "downstream.png", experiment, d_rows)
    return out


@main_guard
def main(argv=None) -> None:
    ap = experiment_arguments(
        argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    )
    ap.add_argument("--seeds", default=None, help="comma-separated seeds of the runs (default: the spec's or 0)")
    ap.add_argument("--twins", default="{}", help='JSON {"model/method": {seed: twin experiment}} (copied selections)')
    a = ap.parse_args(argv)
    seeds = [int(s) for s in a.seeds.split(",")] if a.seeds else None
    experiment_report(a.experiment, json.loads(a.spec), Path(a.results), Path(a.data), seeds, json.loads(a.twins))


if __name__ == "__main__":
    main()
