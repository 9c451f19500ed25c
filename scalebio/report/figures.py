"""Figures of one experiment's report (matplotlib, Agg backend: no display needed).

Error bars are ± one SD over seeds; a panel whose values are all zero is annotated as such, not drawn as an empty
plot; titles sit in their own row (no overlap with the plot or each other).
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the backend)

LOW_LR = 0.1
"""The trajectory figure marks where η_θ falls below this fraction of its peak: past it, p barely moves."""


def low_lr_step(trajectory: list[dict], fraction: float = LOW_LR) -> int | None:
    """First step after the peak (i.e. after warm-up) whose ``lr_theta`` is below ``fraction`` of the peak."""
    lrs = [(row["step"], row["lr_theta"]) for row in trajectory if row.get("lr_theta") is not None]
    if not lrs:
        return None
    peak = max(lr for _, lr in lrs)
    at_peak = next(i for i, (_, lr) in enumerate(lrs) if lr == peak)
    return next((step for step, lr in lrs[at_peak:] if lr < fraction * peak), None)


def plot_weights(path: Path, experiment: str, weight_rows: list[dict], sources: list[str]) -> None:
    """What each method hands on per source (mean ± SD over seeds): p for weights selections, the share of chosen
    examples for example-level ones; one bar per (method, model)."""
    fig, ax = plt.subplots(figsize=(max(6.5, 1.2 * len(sources) + 3), 4.0), layout="constrained")
    width = 0.8 / max(1, len(weight_rows))
    for i, r in enumerate(weight_rows):
        ax.bar(
            [j + i * width for j in range(len(sources))],
            [r[s] or 0.0 for s in sources],
            width,
            yerr=[r.get(f"{s}_sd") or 0.0 for s in sources],
            capsize=2,
            label=f"{r['method']} ({r['model']}, {r['seeds']} seed{'s' if r['seeds'] != 1 else ''})",
        )
    if sources:
        ax.axhline(1 / len(sources), color="k", ls="--", lw=0.8, label="uniform share")
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(sources))], sources, rotation=25, ha="right")
    ax.set_ylabel("p (weights) / share of chosen examples")
    ax.set_title(f"{experiment}: data composition per method (mean ± SD over seeds)", fontsize=10)
    ax.legend(fontsize=7, ncol=2, loc="upper right")
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_trajectories(path: Path, experiment: str, groups: dict, sources: list[str]) -> None:
    """ScaleBiO's weights over steps: the mean over seeds with a ± SD band, one panel per model."""
    panels = {key: rs for key, rs in groups.items() if any(r.trajectory for r in rs)}
    n = max(1, len(panels))
    fig, axes = plt.subplots(1, n, figsize=(5.5 * n, 3.8), squeeze=False, layout="constrained")
    if not panels:
        axes[0][0].text(0.5, 0.5, "no weight trajectories (no ScaleBiO run)", ha="center", va="center")
        axes[0][0].set_axis_off()
    for ax, ((model, method), rs) in zip(axes[0], panels.items()):
        trajs = [r.trajectory for r in rs if r.trajectory]
        steps = [row["step"] for row in trajs[0]]
        for s in sources:
            per_step = [[t[i]["weights"].get(s, float("nan")) for t in trajs if i < len(t)] for i in range(len(steps))]
            mean = [sum(v) / len(v) for v in per_step]
            sd = [(sum((x - m) ** 2 for x in v) / max(1, len(v) - 1)) ** 0.5 for v, m in zip(per_step, mean)]
            (line,) = ax.plot(steps, mean, label=s)
            if len(trajs) > 1:
                ax.fill_between(steps, [m - d for m, d in zip(mean, sd)], [m + d for m, d in zip(mean, sd)],
                                color=line.get_color(), alpha=0.15)  # fmt: skip
        if (low := low_lr_step(trajs[0])) is not None:  # one schedule per method: the first seed's
            ax.axvline(low, color="k", ls="--", lw=0.8, label=f"lr_θ < {100 * LOW_LR:.0f} % of peak")
        ax.set_title(f"{method} weights, {model} ({len(trajs)} seed{'s' if len(trajs) != 1 else ''})", fontsize=9)
        ax.set_xlabel("step")
        ax.set_ylabel("p")
        ax.legend(fontsize=6)
    fig.suptitle(f"{experiment}: learned weights over training (mean ± SD over seeds)", fontsize=10)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_downstream(path: Path, experiment: str, rows: list[dict]) -> None:
    """One panel per evaluation: mean ± SD per method (base model included)."""
    evs = list(dict.fromkeys(r["evaluation"] for r in rows))
    n = max(1, len(evs))
    fig, axes = plt.subplots(1, n, figsize=(max(5.0, 0.9 * len({r['method'] for r in rows}) + 2) * n, 4.0),
                             squeeze=False, layout="constrained")  # fmt: skip
    if not evs:
        axes[0][0].text(0.5, 0.5, "no evaluations", ha="center", va="center")
        axes[0][0].set_axis_off()
    for ax, ev in zip(axes[0], evs):
        sub = [r for r in rows if r["evaluation"] == ev]
        values = [r["mean"] or 0.0 for r in sub]
        labels = [r["method"] if len({x["model"] for x in sub}) == 1 else f"{r['method']}\n{r['model']}" for r in sub]
        ax.bar(labels, values, yerr=[r["sd"] or 0.0 for r in sub], capsize=3,
               color=["0.6" if r["method"] in ("base", "oracle") else "C0" for r in sub])  # fmt: skip
        ax.tick_params(axis="x", labelsize=7, rotation=30)
        better = "higher is better" if sub[0].get("higher_is_better", True) else "lower is better"
        ax.set_title(f"{ev}: {sub[0]['metric']} ({better})", fontsize=9)
        if not any(values):
            ax.text(0.5, 0.5, "all values are 0:\nthis metric does not separate the methods here",
                    transform=ax.transAxes, ha="center", va="center", fontsize=8, color="C3")  # fmt: skip
    fig.suptitle(f"{experiment}: fine-tuned models (mean ± SD over seeds; grey: base model and oracle)", fontsize=10)
    fig.savefig(path, dpi=120)
    plt.close(fig)
