"""Cross-experiment tables: the paper's numbers beside ours, and where the run's time went (written by
``python -m scalebio summary``, ``scalebio.report.summary``).

``paper_vs_ours_<table>.{csv,md}``: shaped like the paper's tables (rows: methods; columns: the paper's models with
the paper's metrics, then our model on the miniature's metric). Every paper number comes from
``paper_numbers.yaml`` with its source and label; a cell no source gives is "—", never filled in. An experiment
feeds a table when its config says ``paper_table: math`` or ``paper_table: mtbench``; our number is its first
evaluation's mean ± SD over seeds (from its ``downstream.csv``).

``runtime.{csv,md}``: wall and CPU time of every job from Snakemake's ``benchmark:`` files, summed per stage and
method, and per experiment × method (selection, SFT, evaluation), so a per-method question has an answer.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import yaml

from scalebio.common.runtime import DataError

PAPER_NUMBERS = Path(__file__).with_name("paper_numbers.yaml")
METHOD_NAMES = {"uniform": "Uniform", "less": "LESS", "rho_loss": "RHO-LOSS", "reference": "RHO-LOSS",
                "scalebio": "ScaleBiO", "doremi": "DoReMi", "oracle": "oracle (reference point)",
                "oracle_clean": "oracle, clean examples (reference point)", "base": "base model"}  # fmt: skip
ORDER = ["base", "uniform", "less", "rho_loss", "reference", "doremi", "scalebio", "oracle", "oracle_clean"]


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


@dataclass
class JobTime:
    """One job's Snakemake benchmark: where it ran in the DAG and its wall and CPU seconds."""

    stage: str
    experiment: str
    model: str
    method: str
    seed: int | None
    wall_s: float
    cpu_s: float


def _job(rel: tuple[str, ...], row: dict) -> JobTime:
    """``select|finetune/<e>/<m>/<method>/s<seed>.tsv``, ``eval/<e>/<m>/<method>/s<seed>/<ev>.tsv``,
    ``eval/<e>/<m>/base/<ev>.tsv``; other stages keep only their name (method "-")."""
    stage, wall, cpu = rel[0], float(row["s"]), float(row.get("cpu_time") or 0.0)
    if stage not in ("select", "finetune", "eval") or len(rel) < 5:
        return JobTime(stage, rel[1].removesuffix(".tsv") if len(rel) > 1 else "", "", "-", None, wall, cpu)
    seed_part = rel[4].removesuffix(".tsv")
    seed = int(seed_part[1:]) if seed_part[:1] == "s" and seed_part[1:].isdigit() else None
    return JobTime(stage, rel[1], rel[2], rel[3], seed, wall, cpu)


def benchmark_jobs(bench_dir: Path) -> list[JobTime]:
    """Every job's benchmark file under ``bench_dir`` (Snakemake's ``benchmark:`` tsv: ``s`` and ``cpu_time``)."""
    jobs = []
    for f in sorted(bench_dir.rglob("*.tsv")):
        with open(f) as fh:
            row = next(csv.DictReader(fh, delimiter="\t"), None)
        if row:
            jobs.append(_job(f.relative_to(bench_dir).parts, row))
    return jobs


def _sum(jobs: list[JobTime]) -> tuple[float | None, float | None]:
    """(wall, CPU) seconds summed; (None, None) without jobs (a stage that did not run is not a 0 s stage)."""
    if not jobs:
        return None, None
    return round(sum(j.wall_s for j in jobs), 1), round(sum(j.cpu_s for j in jobs), 1)


def runtime_rows(bench_dir: Path) -> list[dict]:
    """Wall and CPU seconds per (stage, method) summed over Snakemake's benchmark files, and the total.

    CPU seconds are reported beside wall seconds because a job's wall time grows when other work shares the
    cores, its CPU time much less: on a shared machine, total CPU seconds / cores estimates the idle wall time."""
    totals: dict[tuple[str, str], list[JobTime]] = {}
    for j in benchmark_jobs(bench_dir):
        totals.setdefault((j.stage, j.method), []).append(j)
    rows = [{"stage": s, "method": m, "jobs": len(v), **dict(zip(("wall_s", "cpu_s"), _sum(v)))}
            for (s, m), v in sorted(totals.items())]  # fmt: skip
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


PIPELINE = ("select", "finetune", "eval")


def runtime_experiment_rows(jobs: list[JobTime]) -> list[dict]:
    """Per (experiment, model, method): selection, SFT and evaluation wall and CPU seconds summed over seeds (and
    over a run's evaluations), so that "what did method X cost in experiment Y" has an answer."""
    runs: dict[tuple[str, str, str], list[JobTime]] = {}
    for j in jobs:
        if j.stage in PIPELINE:
            runs.setdefault((j.experiment, j.model, j.method), []).append(j)
    rows = []
    for (exp, model, method), js in sorted(runs.items()):
        row = {"experiment": exp, "model": model, "method": method,
               "seeds": len({j.seed for j in js if j.seed is not None})}  # fmt: skip
        for stage in PIPELINE:
            row[f"{stage}_wall_s"], row[f"{stage}_cpu_s"] = _sum([j for j in js if j.stage == stage])
        row["total_wall_s"], row["total_cpu_s"] = _sum(js)
        rows.append(row)
    return rows


def run_cpu_s(jobs: list[JobTime], experiment: str, model: str, method: str, select_from: dict | None = None):
    """End-to-end CPU seconds of one method in one experiment: selection + SFT + every evaluation of a run, mean
    over seeds (None without any). ``select_from``: seed -> the experiment whose selection this one copies (a
    twin, ``configcheck.selection_twin``): that experiment's selection job did the work, the copy is not counted."""
    select_from = select_from or {}
    per_seed: dict[int, float] = {}
    for j in jobs:
        if j.stage not in PIPELINE or j.seed is None or (j.model, j.method) != (model, method):
            continue
        home = select_from.get(j.seed, experiment) if j.stage == "select" else experiment
        if j.experiment == home:
            per_seed[j.seed] = per_seed.get(j.seed, 0.0) + j.cpu_s
    return sum(per_seed.values()) / len(per_seed) if per_seed else None
