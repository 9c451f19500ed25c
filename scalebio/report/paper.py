"""The paper's numbers (``paper_numbers.yaml``: every number with its source, printed with the source's digits),
the paper's effects computed from them, and where the run's time went.

``paper_effects``: ScaleBiO − a baseline per paper model and metric, from the YAML only, with as many decimals as
the source gives (7.20 − 5.31 = +1.89, never +1.9). The tables that set them beside ours are in
``scalebio.report.paper_vs_ours`` and ``scalebio.report.verdicts``.

``runtime.{csv,md}``: wall and CPU time of every job from Snakemake's ``benchmark:`` files, summed per stage and
method, and per experiment × method (selection, SFT, evaluation), so a per-method question has an answer.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import yaml

from scalebio.common.runtime import DataError
from scalebio.report import methods

PAPER_NUMBERS = Path(__file__).with_name("paper_numbers.yaml")


class SourceNumber(float):
    """A number as its source writes it: computes and compares as a float, prints with the source's digits
    (YAML reads 7.20 as the float 7.2; the paper's table says 7.20)."""

    text: str

    def __new__(cls, text: str):
        obj = super().__new__(cls, text)
        obj.text = text
        return obj

    def __str__(self) -> str:
        return self.text

    __repr__ = __str__

    def __format__(self, spec: str) -> str:
        return self.text if not spec else super().__format__(spec)

    @property
    def decimals(self) -> int:
        mantissa = self.text.lower().split("e")[0]
        return len(mantissa.split(".")[1]) if "." in mantissa else 0


class _Loader(yaml.SafeLoader):
    """SafeLoader whose floats keep their text (``SourceNumber``)."""


def _source_float(loader, node):
    text = loader.construct_scalar(node)
    value = yaml.SafeLoader.construct_yaml_float(loader, node)
    return SourceNumber(text) if value == value and abs(value) != float("inf") else value  # nan/inf stay floats


_Loader.add_constructor("tag:yaml.org,2002:float", _source_float)


def decimals(*values) -> int:
    """The most decimals any of ``values`` is written with (a SourceNumber's own digits; a float's shortest repr)."""
    return max(getattr(v, "decimals", None) or len(repr(float(v)).split(".")[1].rstrip("0")) or 1 for v in values)


def load_paper_numbers(path: Path = PAPER_NUMBERS) -> dict:
    """The paper's numbers, floats as ``SourceNumber``; a row whose ``source`` is not declared is an error (no
    number without a source)."""
    data = yaml.load(path.read_text(), Loader=_Loader)  # noqa: S506 (a SafeLoader subclass)
    for table in ("mtbench", "math", "weights"):
        for row in data.get(table, {}).get("rows", []):
            if row.get("source") not in data["sources"]:
                raise DataError(f"{path}: a {table} row has no declared source: {row}")
    return data


UNITS = {"mtbench": "MT-Bench points", "math": "accuracy points"}
KEYS = {"mtbench": ("value",), "math": ("gsm8k", "math")}


def paper_effects(numbers: dict, table: str | None, comparator: str) -> list[dict]:
    """ScaleBiO − ``comparator`` per paper model and metric of paper table ``table`` (an alias, ``reference``, stands
    for its method, RHO-LOSS): {model, key, effect (float), text ("+1.01", the sources' decimals), sign, source}; []
    where no source gives both numbers. Computed from ``paper_numbers.yaml`` only; which of its rows is ScaleBiO is
    what the methods declare (``scalebio.report.methods``)."""
    if table not in KEYS or not comparator:
        return []
    rows = numbers[table]["rows"]
    target = methods.describe(comparator).name
    paper_method = methods.the_method(list(dict.fromkeys(r["method"] for r in rows)))
    out = []
    for model in dict.fromkeys(r["model"] for r in rows):
        sb = next((r for r in rows if r["model"] == model and r["method"] == paper_method), None)
        other = next((r for r in rows if r["model"] == model and r["method"] == target), None)
        if sb is None or other is None:
            continue
        for key in KEYS[table]:
            if key in sb and key in other:
                a, b = sb[key], other[key]
                sources = " ".join(f"[{s}]" for s in sorted({sb["source"], other["source"]}))
                out.append({"model": model, "key": key, "effect": a - b, "text": f"{a - b:+.{decimals(a, b)}f}",
                            "sign": (a > b) - (a < b), "source": sources})  # fmt: skip
    return out


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
    twin, ``scalebio.pipeline.resolve.selection_twin``): that experiment's selection job did the work, the copy is not counted."""
    select_from = select_from or {}
    per_seed: dict[int, float] = {}
    for j in jobs:
        if j.stage not in PIPELINE or j.seed is None or (j.model, j.method) != (model, method):
            continue
        home = select_from.get(j.seed, experiment) if j.stage == "select" else experiment
        if j.experiment == home:
            per_seed[j.seed] = per_seed.get(j.seed, 0.0) + j.cpu_s
    return sum(per_seed.values()) / len(per_seed) if per_seed else None
