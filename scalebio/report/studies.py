"""Beyond the paper: one table and one figure per study (``experiments.<e>.study``), over seeds.

    python -m scalebio study --experiment E --spec JSON --results DIR --data DIR --seeds 0,1,2 \
        [--reference E2 --reference-spec JSON --reference-data DIR]

Writes ``<results>/<experiment>/report/study.{csv,md,png}``. Kinds:

- ``stability``: every weights method of the experiment (ScaleBiO and its variants: ``stabilize``, θ weight decay,
  10× lr_θ), side by side: the per-source SD of the final weights across seeds (largest and mean), Spearman(noise
  rate, p) with its 95 % interval where the pool has noise rates, the largest weight (a one-hot collapse shows as
  ≈ 1) and the first evaluation with its paired difference to the official ``scalebio`` (the study's control).
  Verdicts against the targets: SD ≤ 0.02, ρ ≤ −0.9, largest weight < 0.8.
- ``online`` / ``clusters``: the experiment against ``compare_with`` (same pool, methods and seeds, one change),
  with uniform as the control and ScaleBiO − uniform on each side (``scalebio/report/comparison_study.py``).
- ``pareto``: several validation objectives on data with two targets (``scalebio/report/pareto.py``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from scalebio.common.runtime import ConfigError, main_guard
from scalebio.report import style
from scalebio.report.claims import noise_spearman, roles
from scalebio.report.collect import collect, read_json
from scalebio.report.compare import difference
from scalebio.report.comparison_study import comparison_report
from scalebio.report.markdown import pm, write_table
from scalebio.report.pareto import pareto_report
from scalebio.report.stats import Estimate, mean_sd, verdict
from scalebio.report.tables import experiment_arguments, group, source_names

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


def official(groups: dict, model: str) -> str | None:
    """The stability study's control: the paper's method under its own name (the official settings); every variant's
    evaluation is paired with it."""
    return roles(groups, model)["method"]


def stability_rows(groups: dict, card: dict, sources: list[str], ev: str | None) -> list[dict]:
    rows = []
    for (model, method), rs in groups.items():
        if rs[0].selection["kind"] != "weights" or rs[0].info.anchor is not None:  # uniform, the oracle: not learned
            continue
        ctl = official(groups, model)
        sds = [mean_sd([r.composition.get(s, 0.0) for r in rs])[1] for s in sources]
        sds = [x for x in sds if x is not None]
        largest = max(sds) if sds else None
        top_m, top_sd = mean_sd([max(r.composition.values()) for r in rs])
        r_est = rho(card, rs)
        control = groups.get((model, ctl))
        diff = difference(rs, control, ev) if ev and control and method != ctl else Estimate(None)
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
                "diff": diff.value,
                "diff_low": diff.low,
                "diff_high": diff.high,
                "diff_p": diff.p,
                f"Δ {ev} vs {ctl} [95% CI]": diff.text() if method != ctl else "(control)",
                "interval over": diff.over,
                "_tops": [max(r.composition.values()) for r in rs],
                "_seed_diffs": _seed_diffs(rs, control, ev) if control and method != ctl else [],
            }
        )
    return rows


def _seed_diffs(rs: list, control: list, ev: str | None) -> list[float]:
    base = {r.seed: r.evals[ev].value for r in control if ev in r.evals}
    return [r.evals[ev].value - base[r.seed] for r in rs if ev in r.evals and r.seed in base]


def plot_stability(path: Path, experiment: str, rows: list[dict], groups: dict, sources: list[str], card: dict,
                   ev: str | None) -> None:  # fmt: skip
    """Per-source SD across seeds (target line), the largest weight of every seed (collapse line), and each
    variant's evaluation against the official settings with its paired 95 % interval."""
    ctl = official(groups, rows[0]["model"]) if rows else None
    fig, (ax, ax2, ax3) = style.figure(3, 4.2, 3.8, legend_w=0.0, max_cols=3)
    width = 0.8 / max(1, len(rows))
    for i, r in enumerate(rows):
        rs = groups[(r["model"], r["method"])]
        sds = [mean_sd([x.composition.get(s, 0.0) for x in rs])[1] or 0.0 for s in sources]
        ax.bar([j + (i - (len(rows) - 1) / 2) * width for j in range(len(sources))], sds, width,
               color=style.method_colour(r["method"]), label=r["method"])  # fmt: skip
    ax.axhline(SD_TARGET, color="k", ls="--", lw=0.8, label=f"target SD {SD_TARGET}")
    ax.set_xticks(range(len(sources)), [style.source_label(s, card) for s in sources], rotation=30, ha="right",
                  fontsize=7)  # fmt: skip
    ax.set_ylabel("SD of the final weight across seeds")
    ax.set_title("seed-to-seed spread per source")
    style.interval_panel(ax2, [{"label": r["method"], "value": mean_sd(r["_tops"])[0], "seeds": r["_tops"],
                                "colour": style.method_colour(r["method"])} for r in rows],
                         "largest weight of a seed (dashed: collapse above)", zero=None, intervals=False)  # fmt: skip
    ax2.axvline(COLLAPSE, color="C3", ls="--", lw=0.8)
    ax2.set_title("largest weight per seed")
    diffs = [{"label": r["method"], "value": r["diff"], "low": r["diff_low"], "high": r["diff_high"],
              "colour": style.method_colour(r["method"]), "seeds": r["_seed_diffs"]}
             for r in rows if r["method"] != ctl]  # fmt: skip
    style.interval_panel(ax3, diffs, f"Δ {ev} vs {ctl} (official settings)")
    ax3.set_title(style.wrap(f"{ev}: each variant − {ctl} (95 % interval; no data: weights only)", 48))
    style.legend(fig, where="bottom")
    n = max((r["seeds"] for r in rows), default=0)
    style.suptitle(fig, f"{experiment}: stability of the learned weights across {style.seeds_text(n)}")
    style.save(fig, path)


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
        pareto_report(out, experiment, groups, card, ev, results, data_dir)
        return out
    if kind == "stability":
        sources = source_names(card, runs)
        rows = stability_rows(groups, card, sources, ev)
        ctl = official(groups, rows[0]["model"]) if rows else None
        cols = ["model", "method", "seeds", "max_source_sd", "mean_source_sd", "sd_verdict", "rho", "rho_low",
                "rho_high", "rho_verdict", "largest_weight", "collapse_verdict", f"{ev} mean", f"{ev} sd", "diff",
                "diff_low", "diff_high", "diff_p"]  # fmt: skip
        show = ["model", "method", "seeds", "max_source_sd", "sd_verdict", "Spearman(noise, p) [95% CI]",
                "rho_verdict", "largest weight (mean ± SD)", "collapse_verdict", f"{ev} (mean ± SD)",
                f"Δ {ev} vs {ctl} [95% CI]", "interval over"]  # fmt: skip
        note = (
            f"Targets: per-source SD across seeds ≤ {SD_TARGET}, Spearman(noise, p) ≤ {RHO_TARGET} (verdict on "
            f"its 95 % interval over seeds: a bootstrap over seeds, which stays inside [−1, 1]), largest weight < "
            f"{COLLAPSE}. Control: `{ctl}` (the official settings); each variant's {ev} is paired with it by "
            "seed and test item. Method options: config `methods:`."
        )
        write_table(out, "study", rows, cols, show, f"{experiment}: stability of the learned weights", note)
        plot_stability(out / "study.png", experiment, rows, groups, sources, card, ev)
        return out
    if reference is None:
        raise ConfigError(f"experiments.{experiment}.study: kind '{kind}' needs compare_with (an experiment name)")
    ref_name, ref_spec, ref_data = reference
    ref_card = read_json(Path(ref_data) / "card.json") or {}
    ref_groups = group(collect(ref_name, ref_spec, results, Path(ref_data), seeds)[0])
    comparison_report(out, experiment, kind, groups, card, ev, results, (ref_name, ref_groups, ref_card))
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
