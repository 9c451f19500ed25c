"""Cross-experiment tables: the paper's numbers beside ours, and where the run's time went.

    python -m scalebio summary --results results/default --config-json JSON

``paper_vs_ours_<table>.{csv,md}``: shaped like the paper's tables (rows: methods; columns: the paper's models with
the paper's metrics, then our model on the miniature's metric). Every paper number comes from
``paper_numbers.yaml`` with its source and label; a cell no source gives is "—", never filled in. An experiment
feeds a table when its config says ``paper_table: math`` or ``paper_table: mtbench``; our number is its first
evaluation's mean ± SD over seeds (from its ``downstream.csv``).

``runtime.{csv,md}``: wall time of every job from Snakemake's ``benchmark:`` files, summed per stage and method.
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import yaml

from scalebio.common.runtime import DataError, atomic_write_text, main_guard
from scalebio.report.markdown import markdown_table

PAPER_NUMBERS = Path(__file__).with_name("paper_numbers.yaml")
METHOD_NAMES = {"uniform": "Uniform", "less": "LESS", "rho_loss": "RHO-LOSS", "reference": "RHO-LOSS",
                "scalebio": "ScaleBiO", "doremi": "DoReMi", "oracle": "oracle (reference point)", "base": "base model"}  # fmt: skip
ORDER = ["base", "uniform", "less", "rho_loss", "reference", "doremi", "scalebio", "oracle"]


def load_paper_numbers(path: Path = PAPER_NUMBERS) -> dict:
    """The paper's numbers; a row whose ``source`` is not declared is an error (no number without a source)."""
    data = yaml.safe_load(path.read_text())
    for table in ("mtbench", "math", "weights"):
        for row in data.get(table, {}).get("rows", []):
            if row.get("source") not in data["sources"]:
                raise DataError(f"{path}: a {table} row has no declared source: {row}")
    return data


def _our_rows(results: Path, experiment: str) -> list[dict]:
    path = results / experiment / "report" / "downstream.csv"
    if not path.exists():
        return []
    with open(path) as f:
        return list(csv.DictReader(f))


def _ours(rows: list[dict], evaluation: str) -> dict[str, str]:
    """method -> "mean ± SD (n seeds)" of one evaluation."""
    out = {}
    for r in rows:
        if r["evaluation"] != evaluation or not r["mean"]:
            continue
        sd = f" ± {float(r['sd']):.3f}" if r["sd"] else ""
        seeds = f", {r['seeds']} seed{'s' if r['seeds'] != '1' else ''}" if r["seeds"] not in ("", "0") else ""
        out[r["method"]] = f"{float(r['mean']):.3f}{sd}{seeds}"
    return out


def paper_table(
    kind: str, experiments: dict, results: Path, numbers: dict
) -> tuple[list[str], list[list[str]], list[str]]:
    """(header, rows, notes) of one paper-vs-ours table."""
    src = numbers["sources"]
    if kind == "math":
        paper_rows = numbers["math"]["rows"]
        models = list(dict.fromkeys(r["model"] for r in paper_rows))
        cols = [(m, k) for m in models for k in ("gsm8k", "math")]
        header = ["method", *[f"{m} {k.upper()} (paper)" for m, k in cols]]
    else:
        paper_rows = numbers["mtbench"]["rows"]
        models = list(dict.fromkeys(r["model"] for r in paper_rows))
        cols = [(m, "value") for m in models]
        header = ["method", *[f"{m} MT-Bench (paper)" for m in models]]
    ours = []
    for exp, spec in experiments.items():
        if spec.get("paper_table") != kind or not spec.get("evals"):
            continue
        ev = spec["evals"][0]
        rows = _our_rows(results, exp)
        metric = next((r["metric"] for r in rows if r["evaluation"] == ev), ev)
        for model in spec["models"]:
            header.append(f"ours: {model}, {exp} miniature ({metric})")
            ours.append(_ours([r for r in rows if r["model"] == model], ev))
    used_sources, body = set(), []
    methods = [m for m in ORDER if any(m == r["method"] for r in paper_rows) or any(m in o for o in ours)]
    for method in methods:
        line = [METHOD_NAMES.get(method, method)]
        for model, key in cols:
            hit = next((r for r in paper_rows if r["model"] == model and r["method"] == method and key in r), None)
            if hit is None:
                line.append("—")
            else:
                used_sources.add(hit["source"])
                line.append(f"{hit[key]} [{hit['source']}]")
        line += [o.get(method, "—") for o in ours]
        body.append(line)
    notes = [f"[{k}] {src[k]['label']}: {src[k]['where']}" for k in sorted(used_sources)]
    notes.append(
        "Ours are reduced-scale miniatures on CPU (their metric named in the column): they test the direction of "
        "the paper's claims, not its absolute numbers; a paper cell no source gives is left empty (—)."
    )
    return header, body, notes


def runtime_rows(bench_dir: Path) -> list[dict]:
    """Wall and CPU seconds per (stage, method) summed over Snakemake's benchmark files, and the total.

    CPU seconds are reported beside wall seconds because a job's wall time grows when other work shares the
    cores, its CPU time much less: on a shared machine, total CPU seconds / cores estimates the idle wall time."""
    totals: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for f in sorted(bench_dir.rglob("*.tsv")):
        rel = f.relative_to(bench_dir).parts
        stage = rel[0]
        method = rel[3] if stage in ("select", "finetune", "eval") and len(rel) > 3 else "-"
        with open(f) as fh:
            row = next(csv.DictReader(fh, delimiter="\t"), None)
        if row:
            cpu = float(row.get("cpu_time") or 0.0)
            totals.setdefault((stage, method.removesuffix(".tsv")), []).append((float(row["s"]), cpu))
    rows = [
        {
            "stage": s,
            "method": m,
            "jobs": len(v),
            "wall_s": round(sum(w for w, _ in v), 1),
            "cpu_s": round(sum(c for _, c in v), 1),
        }
        for (s, m), v in sorted(totals.items())
    ]
    rows.append(
        {
            "stage": "total",
            "method": "",
            "jobs": sum(r["jobs"] for r in rows),
            "wall_s": round(sum(r["wall_s"] for r in rows), 1),
            "cpu_s": round(sum(r["cpu_s"] for r in rows), 1),
        }
    )
    return rows


def _csv(header: list[str], rows: list[list[str]]) -> str:
    return "".join(",".join(f'"{c}"' for c in line) + "\n" for line in [header, *rows])


def summary(results: Path, config: dict) -> None:
    out = results / "report"
    numbers = load_paper_numbers()
    for kind, title in (("math", "Math reasoning"), ("mtbench", "Instruction following (MT-Bench)")):
        header, rows, notes = paper_table(kind, config["experiments"], results, numbers)
        atomic_write_text(out / f"paper_vs_ours_{kind}.csv", _csv(header, rows))
        text = (
            f"# {title}: the paper's numbers and ours\n\n"
            + markdown_table(header, rows)
            + "\n"
            + "\n".join(f"- {n}" for n in notes)
        )
        atomic_write_text(out / f"paper_vs_ours_{kind}.md", text + "\n")
    rows = runtime_rows(results / "benchmarks")
    header = ["stage", "method", "jobs", "wall_s", "cpu_s"]
    table = [[str(r[h]) for h in header] for r in rows]
    atomic_write_text(out / "runtime.csv", _csv(header, table))
    atomic_write_text(
        out / "runtime.md",
        "# Time per stage (Snakemake benchmark files; job wall and CPU seconds, summed)\n\n"
        + markdown_table(header, table),
    )


@main_guard
def main(argv=None) -> None:
    ap = argparse.ArgumentParser(prog="python -m scalebio summary", description=__doc__.split("\n\n")[0])
    ap.add_argument("--results", required=True, help="the config's results folder")
    ap.add_argument("--config-json", required=True, help="the workflow config as JSON")
    a = ap.parse_args(argv)
    summary(Path(a.results), json.loads(a.config_json))


if __name__ == "__main__":
    main()
