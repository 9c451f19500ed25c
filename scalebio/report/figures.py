"""Figures of one experiment's report (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the backend)


def plot_weights(path: Path, experiment: str, weight_rows: list[dict], sources: list[str]) -> None:
    """Share of the SFT budget per source, one bar group per source, one bar per (method, model)."""
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
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_trajectories(path: Path, trajectories: dict, sources: list[str]) -> None:
    """ScaleBiO's weights over steps, one panel per (model, method) run."""
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
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_downstream(path: Path, down_rows: list[dict]) -> None:
    """One panel per evaluation: the metric per (method, model) with its error bar."""
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
    fig.savefig(path, dpi=120)
    plt.close(fig)
