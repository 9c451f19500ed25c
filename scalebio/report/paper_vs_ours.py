"""The paper beside ours, one file per paper table: ``<results>/report/paper_vs_ours_{math,mtbench}.{csv,md}``
(written by ``python -m scalebio summary``). An experiment stands beside a table when its config says
``paper_table: math`` or ``paper_table: mtbench``.

Scales are never mixed in one row (MT-Bench 1-10 and GSM8K % are not our fractions):

1. **Effects** (the csv): ScaleBiO − each paper baseline. The paper's effect per model and metric in its own units
   with its source (``paper.paper_effects``: from ``paper_numbers.yaml`` only, with the source's decimals); ours
   on every experiment beside the table, in our metric with its 95 % interval (the experiment's ``claims.csv``:
   positive = ScaleBiO better), and whether the direction agrees (``verdicts.direction_agrees``).
2. **The numbers themselves**: the paper's in its units, ours in ours, in two tables.
3. **Learned weights**: the official Llama-3-8B weights (the official code's math run; the only learned weights
   published) beside ScaleBiO's on our experiments: the largest log-ratio ln(max p / min p) and Σ η_θ of both.

A paper cell no source gives is "—", never filled in.
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

from scalebio.common.runtime import atomic_write_text
from scalebio.pipeline.resolve import seeds_of
from scalebio.report import methods
from scalebio.report.collect import read_json
from scalebio.report.markdown import markdown_table, pm
from scalebio.report.paper import KEYS, UNITS, paper_effects
from scalebio.report.stats import mean_sd
from scalebio.report.verdicts import direction_agrees, estimate_text, read_csv
from scalebio.report.weights_table import OFFICIAL_SUM_LR_THETA

TITLES = {"math": "Math reasoning", "mtbench": "Instruction following (MT-Bench)"}
METRIC_NAMES = {"value": "MT-Bench", "gsm8k": "GSM8K", "math": "MATH"}


def _ours(experiments: dict, kind: str) -> list[tuple[str, str, str]]:
    """(experiment, model, first evaluation) of every experiment that stands beside paper table ``kind``."""
    return [(exp, model, spec["evals"][0]) for exp, spec in experiments.items()
            if spec.get("paper_table") == kind and spec.get("evals") for model in spec["models"]]  # fmt: skip


def _rows(results: Path, exp: str, name: str) -> list[dict]:
    path = results / exp / "report" / f"{name}.csv"
    return read_csv(path) if path.exists() else []


def effect_table(kind: str, experiments: dict, results: Path, numbers: dict) -> tuple[list[str], list[list[str]]]:
    """(header, rows): one row per paper baseline, ScaleBiO − baseline in the paper's units and in ours."""
    paper_rows = numbers[kind]["rows"]
    paper_cols = [(m, k) for m in dict.fromkeys(r["model"] for r in paper_rows) for k in KEYS[kind]]
    ours = _ours(experiments, kind)
    claims = {(exp, model): [c for c in _rows(results, exp, "claims")
                             if c["model"] == model and c.get("kind") == "downstream"]
              for exp, model, _ in ours}  # fmt: skip
    header = ["ScaleBiO − baseline"]
    header += [f"paper: {m} {METRIC_NAMES[k]} ({UNITS[kind]})" for m, k in paper_cols]
    for exp, model, ev in ours:
        metric = next((c["metric"] for c in claims[(exp, model)] if c.get("metric")), ev)
        header += [f"ours: {exp}, {model} ({metric}) [95% CI]", f"direction agrees ({exp})"]
    body = []
    for comparator in methods.paper_baselines():
        effects = paper_effects(numbers, kind, comparator)
        by_col = {(e["model"], e["key"]): f"{e['text']} {e['source']}" for e in effects}
        signs = {e["sign"] for e in effects}
        sign = signs.pop() if len(signs) == 1 else 0
        line = [f"ScaleBiO − {methods.describe(comparator).display}"] + [by_col.get(c, "—") for c in paper_cols]
        for exp, model, _ in ours:
            aliases = methods.aliases(comparator)
            c = next((c for c in claims[(exp, model)] if c.get("comparator") in aliases), None)
            if c is None:
                line += ["—", "—"]
                continue
            low, high = (float(c[k]) if c.get(k) else None for k in ("low", "high"))
            line += [estimate_text(c["value"], c["low"], c["high"]), direction_agrees(sign, low, high)]
        body.append(line)
    return header, body


def paper_table(kind: str, numbers: dict) -> tuple[list[str], list[list[str]]]:
    """The paper's own numbers, in its units, each with its source (rows: methods; columns: model × metric)."""
    paper_rows = numbers[kind]["rows"]
    cols = [(m, k) for m in dict.fromkeys(r["model"] for r in paper_rows) for k in KEYS[kind]]
    header = ["method", *[f"{m} {METRIC_NAMES[k]}" for m, k in cols]]
    body = []
    for method in sorted(dict.fromkeys(r["method"] for r in paper_rows), key=methods.sort_key):
        line = [methods.describe(method).display]
        for model, key in cols:
            hit = next((r for r in paper_rows if r["model"] == model and r["method"] == method and key in r), None)
            line.append("—" if hit is None else f"{hit[key]} [{hit['source']}]")
        body.append(line)
    return header, body


def ours_table(kind: str, experiments: dict, results: Path) -> tuple[list[str], list[list[str]]]:
    """Our first evaluation per method: mean ± SD over seeds (n seeds), one column per experiment × model."""
    ours = _ours(experiments, kind)
    values: list[dict[str, str]] = []
    header = ["method"]
    for exp, model, ev in ours:
        rows = [r for r in _rows(results, exp, "downstream") if r["model"] == model and r["evaluation"] == ev]
        header.append(f"{exp}, {model} ({next((r['metric'] for r in rows), ev)})")
        cells = {}
        for r in rows:
            if r["mean"]:
                seeds = f", {r['seeds']} seed{'s' if r['seeds'] != '1' else ''}" if r["seeds"] not in ("", "0") else ""
                cells[r["method"]] = pm(float(r["mean"]), float(r["sd"]) if r["sd"] else None) + seeds
        values.append(cells)
    names = sorted({m for v in values for m in v}, key=methods.sort_key)  # every method, variants too
    return header, [[methods.describe(m).display] + [v.get(m, "—") for v in values] for m in names]


def _spread(weights: dict[str, float]) -> tuple[str, str, float | None]:
    """(largest "p (source)", smallest, ln(max p / min p)) of one set of weights."""
    hi, lo = max(weights, key=weights.get), min(weights, key=weights.get)
    ratio = math.log(weights[hi] / weights[lo]) if weights[lo] > 0 else None
    return f"{weights[hi]} ({hi})", f"{weights[lo]} ({lo})", ratio


def weights_tables(kind: str, config: dict, results: Path, numbers: dict) -> str:
    """Markdown: the official learned weights, then official vs ours (largest log-ratio, Σ η_θ)."""
    rows = (numbers.get("weights") or {}).get("rows") or []
    if not rows:
        return ""
    src = sorted({r["source"] for r in rows})
    official = {r["source_name"]: r["value"] for r in rows}
    out = "\n## Learned weights: the official run beside ours\n\n"
    out += (f"The official code's learned weights for the {rows[0]['model']} math SFT set "
            f"({' '.join(f'[{s}]' for s in src)}; the only learned weights published), as written there:\n\n")  # fmt: skip
    out += markdown_table(["source", "p"], [[k, str(v)] for k, v in official.items()])
    hi, lo, ratio = _spread(official)
    summary = [[f"official: {rows[0]['model']}, math SFT set", str(len(official)), hi, lo, f"{ratio:.3f}",
                f"{OFFICIAL_SUM_LR_THETA} (computed by the suite from the official schedule)",
                " ".join(f"[{s}]" for s in src)]]  # fmt: skip
    for exp, model, _ in _ours(config["experiments"], kind):
        names = config["experiments"][exp].get("methods") or list(methods.registered())
        me = methods.the_method(names, {n: methods.in_config(n, config) for n in names})
        sels = [s for seed in seeds_of(config, exp) if me
                if (s := read_json(results / exp / model / me / f"s{seed}" / "selection.json"))]  # fmt: skip
        if not sels:
            continue
        ratios = [(s.get("movement") or {}).get("max_log_ratio") or _spread(s["weights"])[2] for s in sels]
        sums = [(s.get("movement") or {}).get("sum_lr_theta") for s in sels]
        mean_w = {k: sum(s["weights"][k] for s in sels) / len(sels) for k in sels[0]["weights"]}
        hi, lo, _ = _spread({k: round(v, 3) for k, v in mean_w.items()})
        summary.append([f"ours: {exp}, {model}, ScaleBiO ({len(sels)} seed{'s' if len(sels) != 1 else ''})",
                        str(len(mean_w)), hi, lo, pm(*mean_sd(ratios)),
                        pm(*mean_sd([x for x in sums if x is not None])), "this run's selection.json"])  # fmt: skip
    out += "\n" + markdown_table(
        ["run", "sources", "largest p", "smallest p", "largest log-ratio ln(max p / min p)", "Σ η_θ", "source"],
        summary,
    )
    out += ("\nΣ η_θ: θ's step sizes summed over the run, the budget of movement of the weights' logits (Adam moves "
            "them by at most ~η_θ per step); the largest log-ratio is how far the final weights are from uniform "
            "(0 = uniform). Ours: mean ± SD over seeds.\n")  # fmt: skip
    return out


def _csv(header: list[str], rows: list[list[str]]) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows([header, *rows])
    return buf.getvalue()


def write_paper_tables(out: Path, results: Path, config: dict, numbers: dict) -> None:
    for kind, title in TITLES.items():
        experiments = config["experiments"]
        e_head, e_rows = effect_table(kind, experiments, results, numbers)
        p_head, p_rows = paper_table(kind, numbers)
        o_head, o_rows = ours_table(kind, experiments, results)
        used = sorted({s for row in e_rows + p_rows for cell in row for s in numbers["sources"] if f"[{s}]" in cell})
        notes = [f"[{k}] {numbers['sources'][k]['label']}: {numbers['sources'][k]['where']}" for k in used]
        for exp, model, _ in _ours(experiments, kind):
            over = next((c["interval over"] for c in _rows(results, exp, "claims")
                         if c["model"] == model and c.get("kind") == "downstream" and c.get("interval over")), None)  # fmt: skip
            if over:
                notes.append(f"Intervals of ours on {exp} ({model}): {over}.")
        notes.append(
            "Ours are reduced-scale miniatures on CPU (metric in the column header): they test the direction of the "
            "paper's claims, not its absolute numbers. Direction agrees: yes when every paper model's effect has one "
            "sign and our whole 95 % interval lies on that side of 0, no when it lies on the other side, — when the "
            "paper gives no effect or our interval covers 0 (or there is none). A paper cell no source gives is —."
        )
        text = (
            f"# {title}: the paper's effects and ours\n\n## ScaleBiO − each baseline (positive = ScaleBiO better)\n\n"
            + markdown_table(e_head, e_rows)
            + f"\n## The paper's numbers ({numbers[kind].get('metric', UNITS[kind])})\n\n"
            + markdown_table(p_head, p_rows)
            + "\n## Ours (the first evaluation of each experiment, mean ± SD over seeds)\n\n"
            + markdown_table(o_head, o_rows)
            + weights_tables(kind, config, results, numbers)
            + "\n"
            + "\n".join(f"- {n}" for n in notes)
        )
        atomic_write_text(out / f"paper_vs_ours_{kind}.csv", _csv(e_head, e_rows))
        atomic_write_text(out / f"paper_vs_ours_{kind}.md", text + "\n")
