"""Tables, figures and the paper-vs-ours check for one experiment, from the run folders.

Reads only artifacts: ``selection.json`` (weights/examples, cost), ``metrics.jsonl`` (ScaleBiO weight
trajectories), ``eval/*/summary.json`` and the data folder's ``card.json``. Writes under
``<results>/<experiment>/report/``::

    weights.{csv,md}      share of the SFT budget per source, per (model, method) [+ selection's corruption]
    downstream.{csv,md}   evaluation metrics per (model, method), base model included, grader/judge named
    cost.{csv,md}         wall time and tokens each method spent on its selection
    claims.{csv,md}       the experiment's expected outcome (paper claim) checked on ScaleBiO's weights
    weights.png, trajectory.png, downstream.png

``python -m scalebio.reporting --experiment denoise --spec JSON --results results --data DIR``
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from scalebio.data import read_jsonl
from scalebio.runtime import atomic_write_text, main_guard


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


def spearman(x: list[float], y: list[float]) -> float:
    from scipy.stats import spearmanr

    return float(spearmanr(x, y).statistic)


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
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

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
            cost_rows.append({"model": model, "method": method, **sel.get("cost", {})})
            if (rd / "metrics.jsonl").exists():
                trajectories[(model, method)] = [r for r in read_jsonl(rd / "metrics.jsonl") if "weights" in r]
            if method == "scalebio":
                claim_rows.append(_check_claim(card, comp, model))
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

    # ---- figures
    fig, ax = plt.subplots(figsize=(max(6, 1.1 * len(sources) + 2), 3.6))
    width = 0.8 / max(1, len(weight_rows))
    for i, r in enumerate(weight_rows):
        ax.bar(
            [j + i * width for j in range(len(sources))],
            [r[s] for s in sources],
            width,
            label=f"{r['method']} ({r['model']})",
        )
    if sources:
        ax.axhline(1 / len(sources), color="k", ls="--", lw=0.8, label="uniform")
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(sources))], sources, rotation=30, ha="right")
    ax.set_ylabel("share of SFT budget")
    ax.set_title(f"{experiment}: data composition per method")
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(out / "weights.png", dpi=120)
    plt.close(fig)

    fig, axes = plt.subplots(1, max(1, len(trajectories)), figsize=(5 * max(1, len(trajectories)), 3.4), squeeze=False)
    for ax, ((model, method), traj) in zip(axes[0], trajectories.items()):
        steps = [r["step"] for r in traj]
        for s in sources:
            ax.plot(steps, [r["weights"].get(s, float("nan")) for r in traj], label=s)
        ax.set_title(f"{method} weights over steps ({model})")
        ax.set_xlabel("step")
        ax.set_ylabel("p")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "trajectory.png", dpi=120)
    plt.close(fig)

    evs = sorted({r["evaluation"] for r in down_rows})
    fig, axes = plt.subplots(1, max(1, len(evs)), figsize=(4.5 * max(1, len(evs)), 3.4), squeeze=False)
    for ax, ev in zip(axes[0], evs):
        rows = [r for r in down_rows if r["evaluation"] == ev]
        ax.bar(
            [f"{r['method']}\n{r['model']}" for r in rows],
            [r["value"] or 0 for r in rows],
            yerr=[r["stderr"] or 0 for r in rows],
        )
        ax.set_title(f"{ev}: {rows[0]['metric']}\n[{rows[0]['grader/judge']}]", fontsize=8)
        ax.tick_params(axis="x", labelsize=7)
    fig.tight_layout()
    fig.savefig(out / "downstream.png", dpi=120)
    plt.close(fig)
    return out


def _check_claim(card: dict, comp: dict[str, float], model: str) -> dict:
    """The experiment's expected outcome, measured on ScaleBiO's learned weights."""
    if card.get("noise"):
        names = sorted(card["noise"])
        rho = spearman([card["noise"][n] for n in names], [comp.get(n, 0.0) for n in names])
        return {
            "model": model,
            "claim": card.get("expected"),
            "measure": "Spearman(noise, weight)",
            "value": rho,
            "threshold": "<= -0.9",
            "status": "✓" if rho <= -0.9 + 1e-9 else "✗",  # one swapped pair of 5 is exactly -0.9
        }
    targets = card.get("targets") or []
    share = sum(comp.get(t, 0.0) for t in targets)
    uniform = len(targets) / max(1, len(comp))
    return {
        "model": model,
        "claim": card.get("expected"),
        "measure": f"weight on {targets} (uniform {uniform:.3g})",
        "value": share,
        "threshold": f"> {uniform:.3g}",
        "status": "✓" if share > uniform else "✗",
    }


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
