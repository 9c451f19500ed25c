"""One verdict table over every experiment: each paper claim, the paper's effect, ours with its interval, the verdicts.

    python -m scalebio verdicts --results results/reference/full --readme README.md

``<results>/report/verdicts.{csv,md}`` (written by ``python -m scalebio summary``, from every experiment's
``claims.csv`` and the job benchmarks): one row per paper claim × experiment (× model) — ScaleBiO against uniform,
LESS and RHO-LOSS on the experiment's first evaluation, and the weight claims. Columns: the paper's effect with
its units and source (``paper_numbers.yaml``; "—" where no source gives one), ours with its 95 % interval and
metric, whether the direction agrees, the raw and Holm verdicts, the smallest detectable Δ, and the end-to-end
CPU seconds (selection + SFT + evaluation, mean over seeds) of ScaleBiO and of the comparator.

**Direction agrees**: "yes" when the paper gives an effect of one sign for this comparison (every paper model the
same sign) and our whole 95 % interval lies strictly on that side of 0; "no" when our whole interval lies on the
other side; "—" when the paper gives no effect (or effects of both signs) or our interval covers 0 or there is
no interval. Both sides are oriented so that positive means ScaleBiO is better (a lower-is-better metric of ours
is sign-flipped in ``claims``).

The ``verdicts`` command rewrites the block between ``<!-- verdicts:start -->`` and ``<!-- verdicts:end -->`` of a
README with ``readme_block`` of a ``verdicts.csv``: one line per experiment, ScaleBiO's verdict against each
baseline with its interval.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

from scalebio.common.runtime import ConfigError, DataError, atomic_write_text, main_guard
from scalebio.pipeline.resolve import selection_twins
from scalebio.report import methods
from scalebio.report.markdown import write_table
from scalebio.report.paper import UNITS, JobTime, paper_effects, run_cpu_s

START, END = "<!-- verdicts:start -->", "<!-- verdicts:end -->"
CSV_COLUMNS = ["claim", "experiment", "model", "comparator", "evaluation", "metric", "paper_effect", "ours", "value",
               "low", "high", "interval_over", "direction_agrees", "verdict", "verdict_holm", "p", "p_holm", "mde",
               "cost_scalebio_cpu_s", "cost_comparator_cpu_s", "cost_note"]  # fmt: skip
MD_COLUMNS = {"claim": "claim", "experiment": "experiment", "model": "model",
              "paper_effect": "paper's effect (units) [source]", "ours": "ours [95% CI] (metric)",
              "interval_over": "interval over", "direction_agrees": "direction agrees", "verdict": "verdict",
              "verdict_holm": "verdict (Holm)", "mde": "smallest detectable Δ (80 % power)",
              "cost_scalebio_cpu_s": "ScaleBiO CPU s (select + SFT + eval)",
              "cost_comparator_cpu_s": "comparator CPU s (select + SFT + eval)"}  # fmt: skip


def paper_effect(numbers: dict, table: str | None, comparator: str) -> tuple[str, int]:
    """(text, sign) of the paper's ScaleBiO − comparator for the paper table an experiment stands beside; sign 0
    when no source gives one or the paper's models disagree in sign (``paper.paper_effects``, the YAML only)."""
    effects = paper_effects(numbers, table, comparator)
    if not effects:
        return "—", 0
    parts = []
    for model in dict.fromkeys(e["model"] for e in effects):
        mine = [e for e in effects if e["model"] == model]
        if table == "mtbench":
            parts.append(f"{mine[0]['text']} ({model})")
        else:
            parts.append(" / ".join(f"{e['key'].upper()} {e['text']}" for e in mine) + f" ({model})")
    sources = sorted({s for e in effects for s in e["source"].split()})
    signs = {e["sign"] for e in effects}
    text = ", ".join(parts) + f" {UNITS[table]} " + " ".join(sources)
    return text, signs.pop() if len(signs) == 1 else 0


def direction_agrees(paper_sign: int, low: float | None, high: float | None) -> str:
    """yes / no / — (see the module's docstring)."""
    if paper_sign == 0 or low is None or high is None:
        return "—"
    if low > 0 or high < 0:
        return "yes" if (1 if low > 0 else -1) == paper_sign else "no"
    return "—"


def _float(cell) -> float | None:
    return None if cell in ("", None) else float(cell)


def estimate_text(value, low, high) -> str:
    """ "+0.045 [-0.005, +0.095]", "+0.057" without an interval, "—" without a value (cells may be csv strings)."""
    value, low, high = _float(value), _float(low), _float(high)
    if value is None:
        return "—"
    return f"{value:+.3f}" + ("" if low is None else f" [{low:+.3f}, {high:+.3f}]")


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _cost(value: float | None) -> str:
    return "—" if value is None else f"{value:.0f}"


def experiment_rows(exp: str, spec: dict, claims: list[dict], numbers: dict, jobs: list[JobTime], config: dict):
    """The verdict rows of one experiment from its claims.csv rows."""
    rows = []
    # the paper's baselines ScaleBiO is compared with (an alias, reference, counts as its method, RHO-LOSS)
    paper_baselines = {n for n in spec["methods"] if (i := methods.in_config(n, config)).in_paper and i.role == "baseline"
                       and methods.is_main_entry(i)}  # fmt: skip
    me = methods.the_method(spec["methods"], {n: methods.in_config(n, config) for n in spec["methods"]})
    for c in claims:
        kind, comparator = c.get("kind"), c.get("comparator") or ""
        if not (kind == "weights" or (kind == "downstream" and comparator in paper_baselines)):
            continue
        model = c["model"]
        effect, sign = paper_effect(numbers, spec.get("paper_table"), comparator)
        value, low, high = _float(c["value"]), _float(c["low"]), _float(c["high"])
        metric = c.get("metric") or ""
        flipped = " (lower is better: sign flipped)" if "sign flipped" in c["measure"] else ""
        twins = {m: selection_twins(config, exp, model, m) for m in (me, comparator) if m}
        rows.append(
            {
                "claim": c["claim"],
                "experiment": exp,
                "model": model,
                "comparator": comparator,
                "evaluation": c.get("evaluation") or "",
                "metric": metric,
                "paper_effect": effect,
                "ours": f"{estimate_text(value, low, high)} {metric}{flipped}",
                "value": value,
                "low": low,
                "high": high,
                "interval_over": c["interval over"],
                "direction_agrees": direction_agrees(sign, low, high),
                "verdict": c["verdict"],
                "verdict_holm": c.get("verdict_holm") or c["verdict"],
                "p": _float(c.get("p", "")),
                "p_holm": _float(c.get("p_holm", "")),
                "mde": "—" if not c.get("mde") else f"{float(c['mde']):.3f}",
                "cost_scalebio_cpu_s": _cost(run_cpu_s(jobs, exp, model, me, twins[me])),
                "cost_comparator_cpu_s": _cost(run_cpu_s(jobs, exp, model, comparator, twins[comparator]))
                if comparator
                else "—",
                "cost_note": "; ".join(
                    f"{m}'s selection of seeds {sorted(t)} copied from {sorted(set(t.values()))}"
                    for m, t in twins.items()
                    if t
                ),  # fmt: skip
            }
        )
    return rows


def verdict_rows(results: Path, config: dict, numbers: dict, jobs: list[JobTime]) -> list[dict]:
    """Every experiment's verdict rows (experiments without a claims.csv contribute none)."""
    rows = []
    for exp, spec in config["experiments"].items():
        path = results / exp / "report" / "claims.csv"
        if path.exists():
            rows += experiment_rows(exp, spec, read_csv(path), numbers, jobs, config)
    return rows


def write_verdicts(out: Path, rows: list[dict]) -> None:
    notes = (
        "One row per paper claim × experiment: ScaleBiO against each paper baseline on the experiment's first "
        "evaluation, and the weight claims. Paper effects are ScaleBiO − baseline from `paper_numbers.yaml` (a "
        "secondary source, not checked against the paper's PDF; — where no source gives one). Ours: the paired "
        "difference with its 95 % interval (seeds × test items where items exist), oriented so that positive = "
        "ScaleBiO better. Direction agrees: yes when the paper's effect and our whole interval have the same sign, "
        "no when opposite, — when the paper gives no effect or our interval covers 0. Verdict (Holm): Holm's "
        "correction over each experiment's claims. Cost: CPU seconds of selection + SFT + every evaluation of one "
        "run, mean over seeds (Snakemake benchmark files); a selection copied from a twin experiment is charged "
        "with the twin's selection job."
    )
    write_table(out, "verdicts", rows, CSV_COLUMNS, MD_COLUMNS, "Verdicts: the paper's claims on every experiment",
                notes)  # fmt: skip


def readme_block(rows: list[dict], source: str) -> str:
    """The README's results paragraph from verdicts.csv rows: one line per (experiment, model) with ScaleBiO's
    verdict against each baseline, its interval, and the Holm verdict where it differs. ``source``: the results
    folder the rows come from, named in the paragraph (a test reads it back to check the block against it)."""
    lines = [
        "ScaleBiO against each baseline on every experiment's first evaluation (generated from",
        f"`{source}/report/verdicts.csv` by `python -m scalebio verdicts`; 95 % intervals, positive = ScaleBiO",
        "better; Holm-corrected verdict in brackets where it differs):",
        "",
    ]
    per_exp: dict[tuple[str, str], list[dict]] = {}
    for r in rows:
        if r.get("comparator"):
            per_exp.setdefault((r["experiment"], r["model"]), []).append(r)
    for (exp, model), rs in per_exp.items():
        parts = []
        for r in rs:
            holm = "" if r["verdict_holm"] == r["verdict"] else f" [Holm: {r['verdict_holm']}]"
            name = methods.describe(r["comparator"]).display
            parts.append(f"vs {name} {estimate_text(r['value'], r['low'], r['high'])}: {r['verdict']}{holm}")
        lines.append(f"- **{exp}** ({model}, {rs[0]['metric']}): " + "; ".join(parts) + ".")
    return "\n".join(lines) + "\n"


def rewrite_readme(path: Path, block: str) -> None:
    """Replace what lies between the verdict markers of ``path`` by ``block``."""
    text = path.read_text()
    if START not in text or END not in text or text.index(START) > text.index(END):
        raise DataError(f"{path}: no '{START}' ... '{END}' block to rewrite")
    head, rest = text.split(START, 1)
    tail = rest.split(END, 1)[1]
    atomic_write_text(path, f"{head}{START}\n{block}{END}{tail}")


def readme_text(path: Path) -> str:
    """What lies between the verdict markers of ``path`` (its first and last newline stripped)."""
    text = path.read_text()
    if START not in text or END not in text:
        raise DataError(f"{path}: no '{START}' ... '{END}' block")
    return text.split(START, 1)[1].split(END, 1)[0].removeprefix("\n")


@main_guard
def main(argv=None) -> None:
    ap = argparse.ArgumentParser(prog="python -m scalebio verdicts", description=__doc__.split("\n\n")[0])
    ap.add_argument("--results", required=True, help="a results folder with report/verdicts.csv")
    ap.add_argument("--readme", required=True, help="the README whose verdicts block to rewrite")
    a = ap.parse_args(argv)
    path = Path(a.results) / "report" / "verdicts.csv"
    if not path.exists():
        raise ConfigError(f"{path} does not exist: run the workflow's report_summary rule (or make reproduce) first")
    rewrite_readme(Path(a.readme), readme_block(read_csv(path), Path(a.results).as_posix().rstrip("/")))


if __name__ == "__main__":
    main()
