"""Beyond the paper: one table and one figure per study (``experiments.<e>.study``), over seeds.

    python -m scalebio study --experiment E --spec JSON --results DIR --data DIR --seeds 0,1,2 \
        [--reference E2 --reference-spec JSON --reference-data DIR]

Writes ``<results>/<experiment>/report/study.{csv,md,png}``. Kinds:

- ``stability``: every weights method of the experiment (ScaleBiO and its variants: ``stabilize``, θ weight decay,
  10× lr_θ), side by side: the per-source SD of the final weights across seeds (largest and mean), Spearman(noise
  rate, p) with its 95 % interval where the pool has noise rates, the largest weight (a one-hot collapse shows as
  ≈ 1) and the first evaluation. Verdicts against the targets: SD ≤ 0.02, ρ ≤ −0.9, largest weight < 0.8.
- ``online`` / ``clusters``: the experiment against ``compare_with``, the same pool, methods and seeds with one
  change (SFT sources drawn from p at every step; sources found by k-means instead of given). Per method run in
  both: the first evaluation here and there (mean ± SD) and the paired difference (over seeds; over test items
  with one seed) with its 95 % interval; Spearman(noise, p) on each side; ``clusters`` adds the clusters' purity
  (the data folder's ``card.json``).
- ``pareto``: several validation objectives on data with two targets (``scalebio/report/pareto.py``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the backend)

from scalebio.common.runtime import ConfigError, main_guard  # noqa: E402
from scalebio.report.claims import higher_is_better, noise_spearman  # noqa: E402
from scalebio.report.collect import collect, read_json  # noqa: E402
from scalebio.report.compare import difference  # noqa: E402
from scalebio.report.markdown import pm, write_table  # noqa: E402
from scalebio.report.pareto import pareto_report  # noqa: E402
from scalebio.report.stats import Estimate, mean_sd, verdict  # noqa: E402
from scalebio.report.tables import experiment_arguments, group, source_names  # noqa: E402

KINDS = ("stability", "online", "clusters", "pareto")
SD_TARGET, RHO_TARGET, COLLAPSE = 0.02, -0.9, 0.8
"""Targets of the stability study (issue: seed SD ≤ 0.02 per source, ρ ≤ −0.9 on average, no one-hot collapse)."""


def first_eval(spec: dict) -> str | None:
    return (spec.get("evals") or [None])[0]


def rho(card: dict, rs: list) -> Estimate:
    """Spearman(noise rate, p) over seeds, where the pool (or its clusters) has noise rates."""
    noise = card.get("noise") or {}
    if not noise or not rs or rs[0].selection["kind"] != "weights":
        return Estimate(None)
    return noise_spearman(noise, rs)


def eval_cells(rs: list, ev: str | None, prefix: str) -> dict:
    m, sd = mean_sd([r.evals[ev].value for r in rs if ev in r.evals]) if ev else (None, None)
    return {f"{prefix}mean": m, f"{prefix}sd": sd, f"{prefix}(mean ± SD)": pm(m, sd)}


def stability_rows(groups: dict, card: dict, sources: list[str], ev: str | None) -> list[dict]:
    rows = []
    for (model, method), rs in groups.items():
        if rs[0].selection["kind"] != "weights" or method in ("uniform", "oracle"):
            continue
        sds = [mean_sd([r.composition.get(s, 0.0) for r in rs])[1] for s in sources]
        sds = [x for x in sds if x is not None]
        largest = max(sds) if sds else None
        top_m, top_sd = mean_sd([max(r.composition.values()) for r in rs])
        r_est = rho(card, rs)
        rows.append(
            {
                "model": model,
                "method": method,
                "seeds": len(rs),
                "max_source_sd": largest,
                "mean_source_sd": sum(sds) / len(sds) if sds else None,
                "sd_verdict": "—" if largest is None else ("holds" if largest <= SD_TARGET else "does not hold"),
                "rho": r_est.value,
                "rho_low": r_est.low,
                "rho_high": r_est.high,
                "Spearman(noise, p) [95% CI]": r_est.text(),
                "rho_verdict": verdict(r_est, RHO_TARGET + 1e-9, "<") if r_est.value is not None else "—",
                "largest_weight": top_m,
                "largest weight (mean ± SD)": pm(top_m, top_sd),
                "collapse_verdict": "—" if top_m is None else ("no collapse" if top_m < COLLAPSE else "collapsed"),
                **eval_cells(rs, ev, f"{ev} " if ev else "eval "),
            }
        )
    return rows


def comparison_rows(kind: str, groups: dict, ref_groups: dict, card: dict, ref_card: dict, ev: str) -> list[dict]:
    purity = (card.get("purity") or {}) if kind == "clusters" else {}
    rows = []
    for (model, method), rs in groups.items():
        ref = ref_groups.get((model, method))
        if not ref:
            continue
        diff = difference(rs, ref, ev)
        here, there = rho(card, rs), rho(ref_card, ref)
        rows.append(
            {
                "model": model,
                "method": method,
                "seeds": len(rs),
                **eval_cells(rs, ev, f"{kind} "),
                **eval_cells(ref, ev, "reference "),
                "diff": diff.value,
                "diff_low": diff.low,
                "diff_high": diff.high,
                f"Δ {kind} − reference [95% CI]": diff.text(),
                "interval over": diff.over,
                "rho": here.value,
                "rho_reference": there.value,
                f"Spearman(noise, p) {kind} / reference": f"{here.text()} / {there.text()}",
                **{f"purity_{k}": v for k, v in purity.items()},
                **(
                    {"purity (source / label)": " / ".join(f"{k} {v:.3f}" for k, v in purity.items())} if purity else {}
                ),
            }
        )
    return rows


def plot_stability(path: Path, experiment: str, rows: list[dict], groups: dict, sources: list[str]) -> None:
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(11, 4.0), layout="constrained", width_ratios=[2, 1])
    width = 0.8 / max(1, len(rows))
    for i, r in enumerate(rows):
        rs = groups[(r["model"], r["method"])]
        sds = [mean_sd([x.composition.get(s, 0.0) for x in rs])[1] or 0.0 for s in sources]
        ax.bar([j + i * width for j in range(len(sources))], sds, width, label=f"{r['method']} ({r['seeds']} seeds)")
    ax.axhline(SD_TARGET, color="k", ls="--", lw=0.8, label=f"target {SD_TARGET}")
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(sources))], sources, rotation=25, ha="right")
    ax.set_ylabel("SD of the final weight across seeds")
    ax.set_title("seed-to-seed spread per source", fontsize=9)
    ax.legend(fontsize=7)
    names = [r["method"] for r in rows]
    tops = [[max(x.composition.values()) for x in groups[(r["model"], r["method"])]] for r in rows]
    ax2.boxplot(tops, tick_labels=names)
    ax2.axhline(COLLAPSE, color="C3", ls="--", lw=0.8)
    ax2.set_ylim(0, 1.05)
    ax2.tick_params(axis="x", labelsize=7, rotation=30)
    ax2.set_title(f"largest weight per seed (red: {COLLAPSE}, collapse above)", fontsize=9)
    fig.suptitle(f"{experiment}: stability of the learned weights across seeds", fontsize=10)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_comparison(path: Path, experiment: str, kind: str, reference: str, rows: list[dict], ev: str) -> None:
    fig, ax = plt.subplots(figsize=(max(5.5, 1.4 * len(rows) + 2), 4.0), layout="constrained")
    xs = range(len(rows))
    for off, prefix, label in ((-0.2, "reference ", f"{reference} (reference)"), (0.2, f"{kind} ", experiment)):
        ax.bar([x + off for x in xs], [r[f"{prefix}mean"] or 0.0 for r in rows], 0.4,
               yerr=[r[f"{prefix}sd"] or 0.0 for r in rows], capsize=3, label=label)  # fmt: skip
    ax.set_xticks(list(xs), [r["method"] for r in rows])
    ax.set_ylabel(ev)
    ax.legend(fontsize=8)
    title = f"{experiment} vs {reference}: {ev} (mean ± SD over seeds)"
    if rows and rows[0].get("purity (source / label)"):
        title += f"\nclusters' purity: {rows[0]['purity (source / label)']}"
    ax.set_title(title, fontsize=9)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def study_report(experiment: str, spec: dict, results: Path, data_dir: Path, seeds: list[int], reference=None):
    """``reference``: (name, spec, data_dir) of ``compare_with`` for the online and clusters studies."""
    study = spec.get("study") or {}
    kind = study.get("kind")
    if kind not in KINDS:
        raise ConfigError(f"experiments.{experiment}.study.kind must be one of {list(KINDS)}, not {kind!r}")
    out = results / experiment / "report"
    out.mkdir(parents=True, exist_ok=True)
    card = read_json(data_dir / "card.json") or {}
    runs = collect(experiment, spec, results, data_dir, seeds)[0]
    groups = group(runs)
    ev = first_eval(spec)
    if kind == "pareto":
        pareto_report(out, experiment, groups, card, ev, results)
        return out
    if kind == "stability":
        sources = source_names(card, runs)
        rows = stability_rows(groups, card, sources, ev)
        cols = [
            "model",
            "method",
            "seeds",
            "max_source_sd",
            "mean_source_sd",
            "sd_verdict",
            "rho",
            "rho_low",
            "rho_high",
            "rho_verdict",
            "largest_weight",
            "collapse_verdict",
            f"{ev} mean",
            f"{ev} sd",
        ]
        show = [
            "model",
            "method",
            "seeds",
            "max_source_sd",
            "sd_verdict",
            "Spearman(noise, p) [95% CI]",
            "rho_verdict",
            "largest weight (mean ± SD)",
            "collapse_verdict",
            f"{ev} (mean ± SD)",
        ]
        note = (
            f"Targets: per-source SD across seeds ≤ {SD_TARGET}, Spearman(noise, p) ≤ {RHO_TARGET} (verdict on "
            f"its 95 % interval over seeds), largest weight < {COLLAPSE}. Method options: config `methods:`."
        )
        write_table(out, "study", rows, cols, show, f"{experiment}: stability of the learned weights", note)
        plot_stability(out / "study.png", experiment, rows, groups, sources)
        return out
    if reference is None:
        raise ConfigError(f"experiments.{experiment}.study: kind '{kind}' needs compare_with (an experiment name)")
    ref_name, ref_spec, ref_data = reference
    ref_card = read_json(Path(ref_data) / "card.json") or {}
    ref_groups = group(collect(ref_name, ref_spec, results, Path(ref_data), seeds)[0])
    rows = comparison_rows(kind, groups, ref_groups, card, ref_card, ev)
    purity_cols = sorted({k for r in rows for k in r if k.startswith("purity_")})
    cols = [
        "model",
        "method",
        "seeds",
        f"{kind} mean",
        f"{kind} sd",
        "reference mean",
        "reference sd",
        "diff",
        "diff_low",
        "diff_high",
        "rho",
        "rho_reference",
        *purity_cols,
    ]
    show = [
        "model",
        "method",
        "seeds",
        f"{kind} (mean ± SD)",
        "reference (mean ± SD)",
        f"Δ {kind} − reference [95% CI]",
        "interval over",
        f"Spearman(noise, p) {kind} / reference",
    ] + (["purity (source / label)"] if purity_cols else [])
    change = {
        "online": "SFT sources drawn from p at every step (sft.sampling)",
        "clusters": "sources = k-means clusters of the merged pool (data.clusters)",
    }[kind]
    note = (
        f"Reference: `{ref_name}` (same pool, methods and seeds). Change: {change}. Δ is paired over seeds "
        f"(over test items with one seed). {ev}: {'higher' if higher_is_better(groups, ev) else 'lower'} is better."
    )
    write_table(out, "study", rows, cols, show, f"{experiment} vs {ref_name}: {ev}", note)
    plot_comparison(out / "study.png", experiment, kind, ref_name, rows, ev)
    return out


@main_guard
def main(argv=None) -> None:
    ap = experiment_arguments(
        argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    )
    ap.add_argument("--seeds", required=True, help="comma-separated seeds")
    ap.add_argument("--reference", help="compare_with: the reference experiment's name")
    ap.add_argument("--reference-spec", help="its config as JSON")
    ap.add_argument("--reference-data", help="its data folder")
    a = ap.parse_args(argv)
    ref = (a.reference, json.loads(a.reference_spec), a.reference_data) if a.reference else None
    seeds = [int(s) for s in a.seeds.split(",")]
    study_report(a.experiment, json.loads(a.spec), Path(a.results), Path(a.data), seeds, ref)


if __name__ == "__main__":
    main()
