"""Read one experiment's run folders into plain records (the report's only input is artifacts on disk).

Layout (workflow/rules): ``<results>/<experiment>/<model>/<method>/s<seed>/`` holds ``selection.json``,
``run.json``, ``metrics.jsonl`` (ScaleBiO), ``sft_data/manifest.json`` and ``eval/<name>/summary.json`` with the
per-item file of the evaluation (``predictions.jsonl`` or ``losses.jsonl``); the base model's evaluations are in
``<model>/base/eval/<name>/``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from scalebio.common.data import read_jsonl
from scalebio.common.registry import MethodInfo
from scalebio.report import methods

ITEM_FILES = {"predictions.jsonl": "correct", "losses.jsonl": "loss"}
"""Per-item score files of the evaluations and the field holding the score (for paired bootstraps)."""


def read_json(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.exists() else None


def composition(sel: dict) -> dict[str, float]:
    """Share of the budget each source gets: the weights, or the fraction of chosen examples."""
    if sel["kind"] == "weights":
        return dict(sel["weights"])
    counts = dict.fromkeys(sel["sources"], 0)
    for e in sel["examples"]:
        counts[e["source"]] += 1
    total = max(1, sum(counts.values()))
    return {s: c / total for s, c in counts.items()}


def corruption_flags(data_dir: Path, names: list[str]) -> dict[str, dict[str, bool]] | None:
    """{source: {example id: corrupted?}}, or None unless every source exists and marks its rows ``corrupted``."""
    flags = {}
    for name in names:
        path = data_dir / "sources" / f"{name}.jsonl"
        if not path.exists():
            return None
        rows = read_jsonl(path)
        if not rows or "corrupted" not in rows[0]:
            return None
        flags[name] = {r["id"]: bool(r["corrupted"]) for r in rows}
    return flags


def selection_corruption(sel: dict, data_dir: Path) -> float | None:
    """Expected fraction of corrupted (harmful) examples in what a selection picks, where sources mark them."""
    flags = corruption_flags(data_dir, sel["sources"])
    if flags is None:
        return None
    if sel["kind"] == "weights":
        return sum(p * sum(flags[s].values()) / len(flags[s]) for s, p in sel["weights"].items())
    picked = [flags[e["source"]][e["id"]] for e in sel["examples"]]
    return sum(picked) / max(1, len(picked))


def sft_share(manifest: dict | None) -> dict[str, float] | None:
    """Share of the budget N each source got in the SFT set actually built (manifest ``counts`` / ``budget``; the
    appended validation rows are not in ``counts``). None without a manifest (a ``weights_only`` run)."""
    if not manifest or not manifest.get("counts") or not manifest.get("budget"):
        return None
    return {s: c / manifest["budget"] for s, c in manifest["counts"].items()}


@dataclass
class Evaluation:
    """One evaluation of one model: the summary and the per-item scores (id -> score)."""

    summary: dict
    items: dict[str, float] = field(default_factory=dict)

    @property
    def value(self) -> float | None:
        return self.summary.get("value")

    @property
    def higher_is_better(self) -> bool:
        return self.summary.get("higher_is_better", True)


def read_evaluation(folder: Path) -> Evaluation | None:
    summary = read_json(folder / "summary.json")
    if summary is None:
        return None
    items = {}
    for name, key in ITEM_FILES.items():
        if (folder / name).exists():
            items = {str(r["id"]): float(r[key]) for r in read_jsonl(folder / name, add_ids=False) if key in r}
            break
    return Evaluation(summary, items)


@dataclass
class Run:
    """One (model, method, seed) run."""

    model: str
    method: str
    seed: int
    selection: dict
    composition: dict[str, float]
    """What the selection hands on: p for a weights selection, the share of chosen examples otherwise."""
    corruption: float | None
    wall_time_s: float | None
    trajectory: list[dict]
    duplicates: int
    evals: dict[str, Evaluation]
    sft_share: dict[str, float] | None = None
    """Share of the budget per source in the SFT set built from the selection (None: no SFT set)."""
    info: MethodInfo | None = None
    """What the method is (``scalebio.report.methods.of_run``: its module's INFO)."""


def collect(experiment: str, spec: dict, results: Path, data_dir: Path, seeds: list[int]):
    """(runs, base evaluations per model) of one experiment; missing runs are skipped (the report shows what exists)."""
    runs, base = [], {}
    for model in spec["models"]:
        root = results / experiment / model
        base[model] = {ev: e for ev in spec.get("evals", []) if (e := read_evaluation(root / "base" / "eval" / ev))}
        for method in spec["methods"]:
            for seed in seeds:
                rd = root / method / f"s{seed}"
                sel = read_json(rd / "selection.json")
                if sel is None:
                    continue
                manifest = read_json(rd / "sft_data" / "manifest.json")
                metrics = rd / "metrics.jsonl"
                runs.append(
                    Run(
                        model=model,
                        method=method,
                        seed=seed,
                        selection=sel,
                        composition=composition(sel),
                        corruption=selection_corruption(sel, data_dir),
                        wall_time_s=(read_json(rd / "run.json") or {}).get("wall_time_s"),
                        trajectory=[r for r in read_jsonl(metrics, add_ids=False) if "weights" in r]
                        if metrics.exists()
                        else [],
                        duplicates=sum(((manifest or {}).get("duplicates") or {}).values()),
                        evals={ev: e for ev in spec.get("evals", []) if (e := read_evaluation(rd / "eval" / ev))},
                        sft_share=sft_share(manifest),
                        info=methods.of_run(method, sel),
                    )
                )
    return runs, base
