"""Tables, figures and the paper-vs-ours check for one experiment, from the run folders.

Reads only artifacts: ``selection.json`` (weights/examples, cost), ``metrics.jsonl`` (ScaleBiO weight
trajectories), ``eval/*/summary.json`` and the data folder's ``card.json``. Writes under
``<results>/<experiment>/report/``::

    weights.{csv,md}      share of the SFT budget per source, per (model, method) [+ selection's corruption]
    downstream.{csv,md}   evaluation metrics per (model, method), base model included, grader/judge named
    cost.{csv,md}         wall time and tokens each method spent on its selection
    claims.{csv,md}       the experiment's expected outcome (paper claim) checked on ScaleBiO's weights
    weights.png, trajectory.png, downstream.png

``python -m scalebio report --experiment denoise --spec JSON --results results --data DIR``
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from scalebio.common.data import read_jsonl
from scalebio.common.runtime import atomic_write_text, main_guard
from scalebio.report.claims import check_claim
from scalebio.report.figures import plot_downstream, plot_trajectories, plot_weights


def _read_json(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.exists() else None


def composition(sel: dict) -> dict[str, float]:
    """Share of the budget each source gets: the weights, or the fraction of chosen examples."""
    if sel["kind"] == "weights":
        return dict(sel["weights"])
    counts = {s: 0 for s in sel["sources"]}
    for e in sel["examples"]:
        counts[e["source"]] += 1
    total = max(1, sum(counts.values()))
    return {s: c / total for s, c in counts.items()}


def selection_corruption(sel: dict, data_dir: Path) -> float | None:
    """Expected fraction of corrupted responses in what the selection picks (denoising pools only)."""
    flags = {}
    for name in sel["sources"]:
        path = data_dir / "sources" / f"{name}.jsonl"
        if not path.exists():
            return None
        rows = read_jsonl(path)
        if not rows or "corrupted" not in rows[0]:
            return None
        flags[name] = {r["id"]: bool(r["corrupted"]) for r in rows}
    if sel["kind"] == "weights":
        return sum(p * sum(flags[s].values()) / len(flags[s]) for s, p in sel["weights"].items())
    picked = [flags[e["source"]][e["id"]] for e in sel["examples"]]
    return sum(picked) / max(1, len(picked))


def _table(rows: list[dict], columns: list[str]) -> tuple[str, str]:
    """(CSV, Markdown) renderings of ``rows``; floats to 4 significant digits."""

    def fmt(v):
        if v is None:
            return ""
        return f"{v:.4g}" if isinstance(v, float) else str(v)

    csv = ",".join(columns) + "\n" + "".join(",".join(fmt(r.get(c)) for c in columns) + "\n" for r in rows)
    md = "| " + " | ".join(columns) + " |\n|" + "---|" * len(columns) + "\n"
    md += "".join("| " + " | ".join(fmt(r.get(c)) for c in columns) + " |\n" for r in rows)
    return csv, md


def _write_table(out: Path, stem: str, rows: list[dict], columns: list[str], title: str, note: str = "") -> None:
    csv, md = _table(rows, columns)
    atomic_write_text(out / f"{stem}.csv", csv)
    atomic_write_text(out / f"{stem}.md", f"# {title}\n\n{note}\n\n{md}" if note else f"# {title}\n\n{md}")


def experiment_report(experiment: str, spec: dict, results: Path, data_dir: Path) -> Path:
    out = results / experiment / "report"
    out.mkdir(parents=True, exist_ok=True)
    card = _read_json(data_dir / "card.json") or {}
    sources = sorted(card.get("sources", {})) or None
    weight_rows, cost_rows, down_rows, claim_rows, trajectories = [], [], [], [], {}
    for model in spec["models"]:
        for method in spec["methods"]:
            rd = results / experiment / model / method
            sel = _read_json(rd / "selection.json")
            if sel is None:
                continue
            sources = sources or sorted(sel["sources"])
            comp = composition(sel)
            row = {"model": model, "method": method, "kind": sel["kind"], **{s: comp.get(s, 0.0) for s in sources}}
            row["corruption"] = selection_corruption(sel, data_dir)
            weight_rows.append(row)
            run = _read_json(rd / "run.json") or {}
            cost_rows.append({"model": model, "method": method, "wall_time_s": run.get("wall_time_s"), **sel["cost"]})
            if (rd / "metrics.jsonl").exists():
                trajectories[(model, method)] = [r for r in read_jsonl(rd / "metrics.jsonl") if "weights" in r]
            if method == "scalebio":
                claim_rows.append(check_claim(card, comp, model))
        for method in ["base", *spec["methods"]]:
            for ev in spec.get("evals", []):
                s = _read_json(results / experiment / model / method / "eval" / ev / "summary.json")
                if s is not None:
                    down_rows.append(
                        {
                            "model": model,
                            "method": method,
                            "evaluation": ev,
                            "metric": s.get("metric"),
                            "value": s.get("value"),
                            "stderr": s.get("stderr"),
                            "n": s.get("n"),
                            "grader/judge": s.get("judge") or s.get("grader"),
                            "comparable_to_paper": s.get("comparable_to_paper", False),
                        }
                    )
    sources = sources or []
    has_corruption = any(r["corruption"] is not None for r in weight_rows)
    cols = ["model", "method", "kind", *sources] + (["corruption"] if has_corruption else [])
    _write_table(
        out,
        "weights",
        weight_rows,
        cols,
        f"{experiment}: share of the SFT budget per source",
        f"Expected (paper claim): {card.get('expected', 'n/a')}. Uniform share = {1 / max(1, len(sources)):.3g}.",
    )
    _write_table(
        out,
        "cost",
        cost_rows,
        ["model", "method", "wall_time_s", "tokens"],
        f"{experiment}: cost of producing each selection",
    )
    _write_table(
        out,
        "downstream",
        down_rows,
        ["model", "method", "evaluation", "metric", "value", "stderr", "n", "grader/judge", "comparable_to_paper"],
        f"{experiment}: evaluation of the fine-tuned models",
        "Reduced-scale miniature: numbers are not comparable to the paper's tables. "
        "Offline log-prob judge scores are not GPT-4 MT-Bench scores.",
    )
    _write_table(
        out,
        "claims",
        claim_rows,
        ["model", "claim", "measure", "value", "threshold", "status"],
        f"{experiment}: the paper's qualitative claim, checked on ScaleBiO's learned weights",
    )

    plot_weights(out / "weights.png", experiment, weight_rows, sources)
    plot_trajectories(out / "trajectory.png", trajectories, sources)
    plot_downstream(out / "downstream.png", down_rows)
    return out


@main_guard
def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--experiment", required=True)
    ap.add_argument("--spec", required=True, help="the experiment's config as JSON")
    ap.add_argument("--results", required=True)
    ap.add_argument("--data", required=True)
    a = ap.parse_args(argv)
    experiment_report(a.experiment, json.loads(a.spec), Path(a.results), Path(a.data))


if __name__ == "__main__":
    main()
