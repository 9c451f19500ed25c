"""Stable weights, measured: the official read-out (last p) against averaged read-outs (``stabilize``, METHOD.md §18).

    python -m scalebio.tools.stability_study --out results/lisa_study                 # seeds 0-4, both lr_θ
    python -m scalebio.tools.stability_study --out results/lisa_study --setting default --seeds 0-4

The runs are those of ``lisa_study`` (same problems, same run folders, reused when present): variant ``full`` at
the default lr_θ 1e-2 and ``full/lr_theta-1e-1`` at 10×, and the same two with θ's decoupled weight decay at 1
(``theta_weight_decay``, official 0.01), a change of the θ update rather than of its read-out. ``stabilize`` is a read-out of the trajectory of p and
leaves the run unchanged, so every read-out is computed from the same runs' ``metrics.jsonl`` (p after every step)
with ``scalebio.weights.average_trajectory``, the code the trainer runs online. Per lr_θ and read-out: the mean
weights over seeds, their per-source SD, the mean Spearman ρ against the noise rate (−1 = the ordering the data
implies), the seeds with ρ > 0, the largest weight of any seed, and the mean spread max p − min p (how far from
uniform the read-out is: averaging shrinks it as well as the noise).
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from scalebio.common.runtime import main_guard
from scalebio.report.markdown import markdown_table
from scalebio.report.stats import spearman
from scalebio.tools import lisa_study
from scalebio.weights import average_trajectory

VARIANTS = {
    "1e-2 (default)": "full",
    "1e-1 (10×)": "full/lr_theta-1e-1",
    "1e-2, θ decay 1": "full/theta-wd-1",
    "1e-1, θ decay 1": "full/lr_theta-1e-1/theta-wd-1",
}
"""Row label (lr_θ, θ's weight decay when not the default 0.01) -> lisa_study variant."""
READOUTS = {
    "last p (official)": ("none", {}),
    "polyak, last 50 %": ("polyak", {"start": 0.5}),
    "polyak, last 25 %": ("polyak", {"start": 0.75}),
    "ema 0.9": ("ema", {"decay": 0.9}),
    "ema 0.97": ("ema", {"decay": 0.97}),
}
"""Read-out name -> (``stabilize`` mode, its parameters)."""


def trajectory(run_dir: Path) -> list[list[float]]:
    """p after every step of a run, sources in name order."""
    rows = [json.loads(ln) for ln in (run_dir / "metrics.jsonl").read_text().splitlines() if ln]
    return [[r["weights"][k] for k in sorted(r["weights"])] for r in rows]


def measure(trajectories: list[list[list[float]]], mode: str, params: dict) -> dict:
    """Numbers of one read-out over seeds (one trajectory per seed)."""
    ws = [average_trajectory(t, mode, **params) for t in trajectories]
    cols = list(zip(*ws))
    rhos = [spearman(w, lisa_study.NOISE) for w in ws]
    return {
        "mean": [statistics.fmean(c) for c in cols],
        "sd": [statistics.stdev(c) for c in cols],
        "rho": statistics.fmean(rhos),
        "positive": sum(r > 0 for r in rhos),
        "max_weight": max(max(w) for w in ws),
        "spread": statistics.fmean(max(w) - min(w) for w in ws),
        "weights": ws,
    }


def table(results: dict[tuple[str, str], dict], n_seeds: int) -> str:
    header = ["lr_θ", "read-out", "mean weights (0 → 100 % noise)", "per-source SD", "max SD", "mean ρ",
              "seeds with ρ > 0", "largest weight", "mean max−min"]  # fmt: skip
    rows = []
    for (lr, name), m in results.items():
        fmt = lambda xs: " ".join(f"{x:.3f}" for x in xs)  # noqa: E731
        rows.append([lr, name, fmt(m["mean"]), fmt(m["sd"]), f"{max(m['sd']):.3f}", f"{m['rho']:+.2f}",
                     f"{m['positive']} of {n_seeds}", f"{m['max_weight']:.3f}", f"{m['spread']:.3f}"])  # fmt: skip
    return markdown_table(header, rows)


@main_guard
def main(argv=None) -> None:
    ap = argparse.ArgumentParser(prog="python -m scalebio.tools.stability_study", description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="results/lisa_study", help="study folder, shared with lisa_study")
    ap.add_argument("--setting", default="miniature", choices=list(lisa_study.SETTINGS), help="the problem")
    ap.add_argument("--seeds", default="0-4", help="'0-4' or '0,3,7'")
    ap.add_argument("--model", default=None, help="tiny model folder (default: built under --out)")
    ap.add_argument("--jobs", type=int, default=1, help="worker processes (one torch thread each)")
    args = ap.parse_args(argv)
    seeds = lisa_study._seeds(args.seeds)
    variants = ",".join(VARIANTS.values())
    # the runs: lisa_study trains what is missing (one process, one torch thread) and prints its own table
    lisa_study.main(["--out", args.out, "--setting", args.setting, "--variants", variants, "--seeds", args.seeds,
                     "--jobs", str(args.jobs)]
                    + (["--model", args.model] if args.model else []))  # fmt: skip
    out = Path(args.out) / args.setting
    results = {}
    for lr, variant in VARIANTS.items():
        trajs = [trajectory(lisa_study._run_dir(out, variant, s)) for s in seeds]
        for name, (mode, params) in READOUTS.items():
            results[lr, name] = measure(trajs, mode, params)
    text = table(results, len(seeds))
    (out / "stability.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
