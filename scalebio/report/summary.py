"""Cross-experiment outputs of one results folder (rule ``report_summary``).

    python -m scalebio summary --results results/default --config-json JSON

Writes ``<results>/report/``: ``paper_vs_ours_{math,mtbench}.{csv,md}`` (``scalebio.report.paper_vs_ours``),
``runtime.{csv,md}`` (job time per stage and method, then per experiment × method) and ``verdicts.{csv,md}``
(``scalebio.report.verdicts``: every paper claim on every experiment, from the experiments' ``claims.csv``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from scalebio.common.runtime import atomic_write_text, main_guard
from scalebio.report.markdown import markdown_table
from scalebio.report.paper import benchmark_jobs, load_paper_numbers, runtime_experiment_rows, runtime_rows
from scalebio.report.paper_vs_ours import write_paper_tables
from scalebio.report.verdicts import verdict_rows, write_verdicts

STAGE_NAMES = {"select": "selection", "finetune": "SFT", "eval": "evaluation"}


def _csv(header: list[str], rows: list[list[str]]) -> str:
    return "".join(",".join(f'"{c}"' for c in line) + "\n" for line in [header, *rows])


def _seconds(v) -> str:
    """A seconds cell: one decimal, "—" for a stage that did not run (text and counts as they are)."""
    if v is None:
        return "—"
    return f"{v:.1f}" if isinstance(v, float) else str(v)


def write_runtime(out: Path, bench_dir: Path) -> None:
    """runtime.csv: per stage and method (as before); runtime.md: that table, then per experiment × method."""
    rows = runtime_rows(bench_dir)
    header = ["stage", "method", "jobs", "wall_s", "cpu_s"]
    table = [[str(r[h]) for h in header] for r in rows]
    atomic_write_text(out / "runtime.csv", _csv(header, table))
    per_exp = runtime_experiment_rows(benchmark_jobs(bench_dir))
    keys = ["experiment", "model", "method", "seeds"] + [
        f"{stage}_{kind}_s" for stage in (*STAGE_NAMES, "total") for kind in ("cpu", "wall")
    ]
    shown = ["experiment", "model", "method", "seeds"] + [
        f"{STAGE_NAMES.get(stage, stage)} {kind} s" for stage in (*STAGE_NAMES, "total") for kind in ("CPU", "wall")
    ]
    atomic_write_text(
        out / "runtime.md",
        "# Time per stage (Snakemake benchmark files; job wall and CPU seconds, summed)\n\n"
        + markdown_table(header, table)
        + "\n## Per experiment and method\n\nSelection, SFT and evaluation jobs of each (experiment, model, method),"
        " summed over seeds and evaluations (a selection copied from a twin experiment costs its copy here).\n\n"
        + markdown_table(shown, [[_seconds(r[k]) for k in keys] for r in per_exp]),
    )


def summary(results: Path, config: dict) -> None:
    out = results / "report"
    numbers = load_paper_numbers()
    write_paper_tables(out, results, config, numbers)
    write_runtime(out, results / "benchmarks")
    write_verdicts(out, verdict_rows(results, config, numbers, benchmark_jobs(results / "benchmarks")))


@main_guard
def main(argv=None) -> None:
    ap = argparse.ArgumentParser(prog="python -m scalebio summary", description=__doc__.split("\n\n")[0])
    ap.add_argument("--results", required=True, help="the config's results folder")
    ap.add_argument("--config-json", required=True, help="the workflow config as JSON")
    a = ap.parse_args(argv)
    summary(Path(a.results), json.loads(a.config_json))


if __name__ == "__main__":
    main()
