"""Figures of one experiment's report (set-up, colours and layout: ``scalebio.report.style``).

- ``downstream.png``: per evaluation (and model), the difference of every method from uniform with the 95 %
  interval of the downstream table (``Δ vs uniform``), a line at 0 and the seeds' own differences as dots; beside
  it the values themselves on an axis fitted to the data (a 0.1-nat spread beside a base model at 8.3 stays
  visible).
- ``weights.png``: what each method hands on per source (p, or the share of chosen examples), bars = mean over
  seeds, dots = seeds; sources labelled with their corruption rate / role from the data card.
- ``trajectory.png``: ScaleBiO's p over the steps, one panel per (model, method), panels sharing their y-axis.
"""

from __future__ import annotations

from pathlib import Path

from scalebio.report import methods, style

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


def _seeds_of(rows: list[dict]) -> int:
    return max((r.get("seeds") or 0 for r in rows), default=0)


def plot_weights(path: Path, experiment: str, groups: dict, sources: list[str], card: dict) -> None:
    """Bars: mean over seeds of what each (model, method) hands on per source; dots: the seeds."""
    keys = list(groups)
    n_models = len({m for m, _ in keys})
    width = 0.8 / max(1, len(keys))
    fig, (ax,) = style.figure(1, min(style.MAX_WIDTH_IN - 2.4, max(5.0, len(sources) * (0.9 + 0.18 * len(keys)))),
                              4.2, legend_w=2.4)  # fmt: skip
    for i, key in enumerate(keys):
        model, method = key
        rs = groups[key]
        xs = [j + (i - (len(keys) - 1) / 2) * width for j in range(len(sources))]
        means = [sum(r.composition.get(s, 0.0) for r in rs) / len(rs) for s in sources]
        label = f"{method}{f' ({model})' if n_models > 1 else ''}, {style.seeds_text(len(rs))}"
        ax.bar(xs, means, width, color=style.method_colour(method), label=label, edgecolor="white", linewidth=0.4)
        if len(rs) > 1:
            for x, s in zip(xs, sources):
                ax.scatter([x] * len(rs), [r.composition.get(s, 0.0) for r in rs], s=8, color="k", alpha=0.6,
                           zorder=3, linewidths=0)  # fmt: skip
    if sources:
        ax.axhline(1 / len(sources), color="k", ls="--", lw=0.8, label=f"uniform share 1/{len(sources)}")
    ax.set_xticks(range(len(sources)), [style.source_label(s, card, wrap=True) for s in sources])
    ax.set_ylabel("p (weights) / share of chosen examples")
    style.legend(fig)
    n = max((len(rs) for rs in groups.values()), default=0)
    dots = "; dots: seeds" if n > 1 else ""
    style.suptitle(fig, f"{experiment}: what each method hands on per source (bars: mean over seeds{dots}; "
                        f"{style.seeds_text(n) if n == 1 else f'up to {n} seeds'})")  # fmt: skip
    style.save(fig, path)


def plot_trajectories(path: Path, experiment: str, groups: dict, sources: list[str], card: dict) -> None:
    """ScaleBiO's weights over steps: the mean over seeds with a ± SD band, one panel per (model, method), the
    panels sharing their y-axis (the same quantity, p)."""
    panels = {key: rs for key, rs in groups.items() if any(r.trajectory for r in rs)}
    colours = style.source_colours(sources)
    fig, axes = style.figure(len(panels), 4.0, 3.0, legend_w=2.3, max_cols=3, sharey=True)
    if not panels:
        axes[0].text(0.5, 0.5, "no weight trajectories (no ScaleBiO run)", ha="center", va="center")
        axes[0].set_axis_off()
    several = False
    for ax, ((model, method), rs) in zip(axes, panels.items()):
        trajs = [r.trajectory for r in rs if r.trajectory]
        several |= len(trajs) > 1
        steps = [row["step"] for row in trajs[0]]
        for s in sources:
            per_step = [[t[i]["weights"].get(s, float("nan")) for t in trajs if i < len(t)] for i in range(len(steps))]
            mean = [sum(v) / len(v) for v in per_step]
            ax.plot(steps, mean, color=colours[s], label=style.source_label(s, card))
            if len(trajs) > 1:
                sd = [(sum((x - m) ** 2 for x in v) / max(1, len(v) - 1)) ** 0.5 for v, m in zip(per_step, mean)]
                ax.fill_between(steps, [m - d for m, d in zip(mean, sd)], [m + d for m, d in zip(mean, sd)],
                                color=colours[s], alpha=0.15, linewidth=0)  # fmt: skip
        if (low := low_lr_step(trajs[0])) is not None:  # one schedule per method: the first seed's
            ax.axvline(low, color="k", ls="--", lw=0.8, label=f"η_θ < {100 * LOW_LR:.0f} % of its peak")
        ax.set_title(f"{method}, {model} ({style.seeds_text(len(trajs))})")
        ax.set_xlabel("step")
        ax.set_ylabel("p")
        ax.tick_params(labelleft=True)
    style.legend(fig)
    band = "line: mean over seeds, band: ± SD over seeds" if several else "1 seed per panel"
    style.suptitle(fig, f"{experiment}: learned weights p over training ({band})")
    style.save(fig, path)


def _label(r: dict, several_models: bool) -> str:
    return f"{r['method']} ({r['model']})" if several_models else r["method"]


def plot_downstream(path: Path, experiment: str, rows: list[dict]) -> None:
    """Per (model, evaluation): Δ vs uniform with the table's 95 % interval and the seeds' differences as dots;
    beside it the values themselves (mean, seeds as dots, uniform as a dashed line) on a data-driven axis."""
    pairs = list(dict.fromkeys((r["model"], r["evaluation"]) for r in rows))
    several_models = len({m for m, _ in pairs}) > 1
    n_rows = max((sum(1 for r in rows if (r["model"], r["evaluation"]) == p) for p in pairs), default=1)
    fig, axes = style.figure(2 * len(pairs), 5.6, 0.42 * n_rows + 1.6, max_cols=2)
    if not pairs:
        axes[0].text(0.5, 0.5, "no evaluations", ha="center", va="center")
        axes[0].set_axis_off()
    for k, (model, ev) in enumerate(pairs):
        sub = [r for r in rows if (r["model"], r["evaluation"]) == (model, ev)]
        control = methods.anchor([r["method"] for r in sub], "control")  # uniform: what the differences are against
        better = "higher" if sub[0].get("higher_is_better", True) else "lower"
        metric = sub[0].get("metric") or ev
        diffs = [
            {"label": _label(r, several_models), "value": r["diff_vs_uniform"], "low": r["diff_low"],
             "high": r["diff_high"], "colour": style.method_colour(r["method"]), "seeds": r.get("_seed_diffs")}
            for r in sub if r["method"] != control
        ]  # fmt: skip
        ax_d, ax_v = axes[2 * k], axes[2 * k + 1]
        style.interval_panel(ax_d, diffs, f"{metric}: method − uniform ({better} is better)")
        ax_d.set_title(style.wrap(f"{ev}, {model}: difference from uniform (95 % interval)", 60))
        values = [
            {"label": _label(r, several_models), "value": r["mean"], "colour": style.method_colour(r["method"]),
             "seeds": r.get("_seed_values")}
            for r in sub
        ]  # fmt: skip
        style.interval_panel(ax_v, values, f"{metric} ({better} is better)", zero=None, intervals=False)
        uniform = next((r["mean"] for r in sub if r["method"] == control), None)
        if uniform is not None:
            ax_v.axvline(uniform, color=style.method_colour(control), ls="--", lw=0.8)
        zeros = not any(r["mean"] for r in sub if r["mean"] is not None)  # said in the title: no text over data
        ax_v.set_title(style.wrap(f"{ev}, {model}: the values (axis fitted to the data; dashed: uniform)"
                                  + ("; all 0: this metric does not separate the methods here" if zeros else ""), 60))  # fmt: skip
    over = next((r["interval over"] for r in rows if r.get("diff_low") is not None), "no interval")
    single = any(r["diff_vs_uniform"] is not None and r["diff_low"] is None for r in rows)
    open_marker = "; open marker: a single estimate without an interval" if single else ""
    style.suptitle(fig, f"{experiment}: fine-tuned models ({style.seeds_text(_seeds_of(rows))}); "
                        f"intervals: {over}{open_marker}")  # fmt: skip
    style.save(fig, path)
