"""Cost beside quality, per experiment: ``<results>/<experiment>/report/cost.{csv,md}`` (written with the other
tables by ``python -m scalebio report``) and ``cost_quality.png`` (``python -m scalebio cost-figure``, drawn from
``cost.csv`` alone, for the experiments on a real model).

Per (model, method) and the base model: the selection's own wall time and tokens (``selection.json``), then this
experiment's Snakemake jobs only (``<results>/benchmarks``; other experiments, studies included, never count):
selection, SFT and evaluation CPU and wall seconds summed over seeds and evaluations, and the end-to-end CPU
seconds of one run (selection + SFT + every evaluation, mean over seeds; a selection copied from a twin
experiment is charged with the twin's selection job, ``paper.run_cpu_s``), beside the first evaluation's mean
with its 95 % interval (``compare.level``: the tables' bootstrap over seeds and test items). CPU seconds are
the comparable cost on a shared machine: a job's wall time grows when other jobs share its cores.

    python -m scalebio cost-figure --results results/default --experiment arithmetic
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

from scalebio.common.runtime import main_guard
from scalebio.report import style
from scalebio.report.claims import metric_name
from scalebio.report.compare import evaluation_level, level
from scalebio.report.markdown import pm, write_table
from scalebio.report.paper import PIPELINE, benchmark_jobs, run_cpu_s, runtime_experiment_rows
from scalebio.report.stats import mean_sd

STAGES = {"select": "selection", "finetune": "SFT", "eval": "evaluation"}
CSV_COLUMNS = ["model", "method", "seeds", "wall_time_s", "wall_time_s_sd", "tokens",
               *[f"{s}_{k}_s" for s in (*PIPELINE, "total") for k in ("cpu", "wall")], "run_cpu_s", "evaluation",
               "metric", "higher_is_better", "quality", "quality_low", "quality_high", "note"]  # fmt: skip
MD_COLUMNS = {"model": "model", "method": "method", "seeds": "seeds",
              "wall time s (mean ± SD)": "method's own wall s (selection.json, mean ± SD)", "tokens (mean)": "tokens",
              **{f"{s}_{k}_s shown": f"{STAGES.get(s, s)} {k.upper() if k == 'cpu' else k} s"
                 for s in (*PIPELINE, "total") for k in ("cpu", "wall")},
              "run_cpu_s shown": "CPU s per run (end to end)", "quality [95% CI]": "first evaluation [95% CI]",
              "note": "note"}  # fmt: skip


def _seconds(v) -> float | None:
    return None if v is None else round(v, 1)


def _shown(v) -> str:
    """Whole seconds for a reader ("—": the stage did not run here)."""
    return "—" if v is None else f"{v:,.0f}"


def cost_rows(experiment: str, groups: dict, base: dict, ev: str | None, results: Path, twins: dict) -> list[dict]:
    """``twins``: "model/method" -> {seed: experiment whose selection this run copies}."""
    jobs = benchmark_jobs(results / "benchmarks")
    own = {(r["model"], r["method"]): r for r in runtime_experiment_rows(jobs) if r["experiment"] == experiment}
    higher = next((r.evals[ev].higher_is_better for rs in groups.values() for r in rs if ev in r.evals), True)
    metric = metric_name(groups, ev) if ev else ""
    entries = [(m, "base", None) for m in sorted(base) if ev in base[m]] + [(m, meth, rs) for (m, meth), rs in
                                                                             groups.items()]  # fmt: skip
    rows = []
    for model, method, rs in entries:
        stage = own.get((model, method), {})
        copied = {int(s): t for s, t in (twins.get(f"{model}/{method}") or {}).items()}
        if rs is None:  # the base model: its evaluations only (one evaluation, no seeds)
            est, seeds, wm, wsd, tm = evaluation_level({0: base[model][ev]}), 0, None, None, None
            run_cpu = stage.get("eval_cpu_s")
        else:
            est = level(rs, ev) if ev else level([], "")
            seeds = len(rs)
            wm, wsd = mean_sd([r.wall_time_s for r in rs])
            tm = mean_sd([float(r.selection["cost"]["tokens"]) for r in rs])[0]
            run_cpu = run_cpu_s(jobs, experiment, model, method, copied)
        rows.append(
            {
                "model": model,
                "method": method,
                "seeds": seeds,
                "wall_time_s": wm,
                "wall_time_s_sd": wsd,
                "tokens": tm,
                "wall time s (mean ± SD)": pm(wm, wsd, 1),
                "tokens (mean)": f"{tm:,.0f}" if tm is not None else "—",
                **{f"{s}_{k}_s": _seconds(stage.get(f"{s}_{k}_s")) for s in (*PIPELINE, "total") for k in ("cpu", "wall")},
                **{f"{s}_{k}_s shown": _shown(stage.get(f"{s}_{k}_s")) for s in (*PIPELINE, "total") for k in ("cpu", "wall")},
                "run_cpu_s": _seconds(run_cpu),
                "run_cpu_s shown": _shown(run_cpu),
                "evaluation": ev,
                "metric": metric,
                "higher_is_better": higher,
                "quality": est.value,
                "quality_low": est.low,
                "quality_high": est.high,
                "quality [95% CI]": _level_text(est),
                "note": f"selection of seeds {sorted(copied)} copied from {sorted(set(copied.values()))}: charged "
                "with that experiment's selection job" if copied else "",
            }
        )  # fmt: skip
    return rows


def _level_text(est) -> str:
    """A level, not a difference: no sign."""
    if est.value is None:
        return "—"
    return f"{est.value:.3f}" + ("" if est.low is None else f" [{est.low:.3f}, {est.high:.3f}]")


def write_cost(out: Path, experiment: str, rows: list[dict]) -> None:
    ev = next((r["evaluation"] for r in rows if r.get("evaluation")), None)
    over = "bootstrap over seeds and test items" if rows else ""
    note = (
        "Selection, SFT and evaluation: this experiment's Snakemake jobs only (benchmark files), CPU and wall "
        "seconds summed over seeds and evaluations; other experiments and studies are not counted (the run's "
        "totals: report/runtime.md). CPU s per run: selection + SFT + every evaluation of one run, mean over "
        "seeds; a selection copied from a twin experiment is charged with the twin's selection job (note). CPU "
        "seconds are the comparable cost on shared cores (wall time grows with other jobs, CPU time much less). "
        f"First evaluation: {ev}, mean with its 95 % interval ({over}); for an experiment on a real model "
        "`cost_quality.png` plots it against the CPU seconds per run."
    )
    write_table(out, "cost", rows, CSV_COLUMNS, MD_COLUMNS, f"{experiment}: cost and quality of each method", note)


def _float(v: str) -> float | None:
    return None if v in ("", None) else float(v)


def plot_cost_quality(path: Path, experiment: str, rows: list[dict]) -> None:
    """x: end-to-end CPU seconds per run; y: the first evaluation with its 95 % interval (rows of ``cost.csv``)."""
    pts = [r for r in rows if _float(r.get("run_cpu_s")) is not None and _float(r.get("quality")) is not None]
    fig, (ax,) = style.figure(1, 7.0, 4.6, legend_w=2.4)
    for r in pts:
        x, y = _float(r["run_cpu_s"]), _float(r["quality"])
        lo, hi = _float(r.get("quality_low")), _float(r.get("quality_high"))
        colour = style.method_colour(r["method"])
        label = r["method"] + ("" if len({p["model"] for p in pts}) == 1 else f" ({r['model']})")
        if lo is not None and hi is not None:
            ax.errorbar(x, y, yerr=[[y - lo], [hi - y]], fmt="o", color=colour, capsize=3, ms=7, label=label)
        else:
            ax.plot(x, y, "o", mfc="white", color=colour, ms=7, label=label + " (no interval)")
    if not pts:
        ax.text(0.5, 0.5, "no benchmark files or evaluations", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel("CPU seconds per run: selection + SFT + evaluation (mean over seeds)")
    first = pts[0] if pts else {}
    better = "higher" if str(first.get("higher_is_better", "True")) == "True" else "lower"
    ax.set_ylabel(f"{first.get('evaluation', '')}: {first.get('metric', '')} ({better} is better)")
    ax.grid(lw=0.4, alpha=0.4)
    style.legend(fig)
    n = max((int(r["seeds"]) for r in rows if r.get("seeds") not in ("", None)), default=0)
    style.suptitle(fig, f"{experiment}: quality against cost ({style.seeds_text(n)}; 95 % intervals over "
                        f"{'seeds and ' if n > 1 else ''}test items; base model: its evaluation only)")  # fmt: skip
    style.save(fig, path)


@main_guard
def main(argv=None) -> None:
    ap = argparse.ArgumentParser(prog="python -m scalebio cost-figure", description=__doc__.split("\n\n")[0])
    ap.add_argument("--results", required=True, help="the config's results folder")
    ap.add_argument("--experiment", required=True)
    a = ap.parse_args(argv)
    report = Path(a.results) / a.experiment / "report"
    with open(report / "cost.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    plot_cost_quality(report / "cost_quality.png", a.experiment, rows)


if __name__ == "__main__":
    main()
