"""LISA on short responses, measured: the per-seed table of ``scalebio/README.md`` ("LISA and short responses").

    python -m scalebio.tools.lisa_study --out results/lisa_study                    # every variant, seeds 0-5
    python -m scalebio.tools.lisa_study --out results/lisa_study --variants full,lisa --seeds 0-7 --jobs 2

Problem (``--setting``, ``SETTINGS``): by default (``miniature``, the README's table) the denoising miniature with
1-3-token responses (``denoise`` builder with ``response: bare, max_answer_chars: 3``; 5 sources x 200 examples at
0/25/50/75/100 % corrupted responses, 64 clean validation examples) on the random-initialised tiny Llama, α 100,
lr_u = lr_w 1e-3, lr_θ 1e-2, global batch 16, 100 steps, fp32; ``default`` is the same with the default config's
boxed responses (``stability_study`` reads it), ``comparison`` the settings of the comparison with the official
code (5 x 500 examples, global batch 32 = 4 x 8, 312 steps = 4 epochs). Per run: Spearman ρ
of the final weights against the noise rate (−1 = the ordering the data implies), the final w's validation
loss on response tokens (the whole validation set, whatever span the run trained on), the fraction of steps in
which ‖∇u‖ and ‖∇w‖ were clipped, the median ‖∇w‖/α, and the wall time. Each run writes one JSON under
``--out/runs`` and is reused when present, so an interrupted study resumes; the data folder and the tiny model
are built under ``--out`` when missing. Runs go to ``--jobs`` worker processes with one torch thread each.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

from scalebio.common.runtime import ConfigError, atomic_write_json, main_guard
from scalebio.report.markdown import markdown_table
from scalebio.report.stats import spearman

NOISE = [0.0, 0.25, 0.5, 0.75, 1.0]  # the data's sources in name order
SHORT = {"noise": NOISE, "response": "bare", "max_answer_chars": 3, "n_val": 64, "n_test": 64}
COMMON = dict(alpha=100.0, lr_u=1e-3, lr_w=1e-3, lr_theta=1e-2, max_length=128, dtype="float32", device="cpu",
              checkpoint_every=0, progress=False)  # fmt: skip
SETTINGS = {
    # the default config's denoising experiment (config/config.yaml) with 1-3-token responses
    "miniature": (
        {**SHORT, "n_per_source": 200},
        dict(COMMON, global_batch_size=16, micro_batch_size=16, max_steps=100),
    ),
    # the default config's denoising experiment as it is (config/config.yaml: boxed responses), for stability_study
    "default": (
        {"noise": NOISE, "n_per_source": 200, "n_val": 64, "n_test": 64},
        dict(COMMON, global_batch_size=16, micro_batch_size=16, max_steps=100),
    ),
    # the comparison with the official code: 5 x 500 examples, batch 32 = 4 x 8, 312 steps (4 epochs)
    "comparison": (
        {**SHORT, "n_per_source": 500},
        dict(COMMON, global_batch_size=32, micro_batch_size=8, max_steps=312),
    ),
}
"""(data builder options, ScaleBiO options) of each problem (``--setting``)."""
# 2 of 4 blocks every 20 steps, Adam moments kept, u and w drawn independently: the official code's LISA
LISA_OFFICIAL = {"n_layers": 2, "interval": 20, "keep_optimizer_state": True, "same_blocks": False}
VARIANTS = {
    "full": {},
    "full/turn": {"loss_span": "assistant_turn"},
    "lisa": {"lisa": LISA_OFFICIAL},
    "lisa/turn": {"lisa": LISA_OFFICIAL, "loss_span": "assistant_turn"},
    "full/val-cycle": {"val_sampling": "cycle"},
    # θ's learning rate 10× the default: the official read-out collapses towards one source (stability_study)
    "full/lr_theta-1e-1": {"lr_theta": 1e-1},
    # θ pulled towards uniform (decoupled weight decay 1: logits settle near (Adam direction)/decay, whatever lr_θ)
    "full/theta-wd-1": {"theta_weight_decay": 1.0},
    "full/lr_theta-1e-1/theta-wd-1": {"lr_theta": 1e-1, "theta_weight_decay": 1.0},
    # candidate fixes (response span)
    "lisa/same-blocks": {"lisa": {**LISA_OFFICIAL, "same_blocks": True}},
    "lisa/3-blocks": {"lisa": {**LISA_OFFICIAL, "n_layers": 3}},
    "lisa/lr_theta-3e-3": {"lisa": LISA_OFFICIAL, "lr_theta": 3e-3},
    # the suite's LISA defaults: same blocks for u and w, Adam moments of frozen blocks released
    "lisa/suite": {"lisa": {"n_layers": 2, "interval": 20}},
    "lisa/suite/turn": {"lisa": {"n_layers": 2, "interval": 20}, "loss_span": "assistant_turn"},
}
"""Named option sets on top of the setting's options (``--variants``); ``/turn`` = the official loss span."""


def _run_one(setting: str, variant: str, seed: int, data: str, model: str, out: str) -> dict:
    """Train one run; write result.json (weights, final validation loss, wall time) into its run folder."""
    import torch

    from scalebio.common.config import from_dict
    from scalebio.common.data import collate, list_sources, load_split
    from scalebio.common.modeling import pooled_token_loss
    from scalebio.trainer import ScaleBiOConfig, ScaleBiORecipe

    torch.set_num_threads(1)
    run_dir = _run_dir(out, variant, seed)
    cfg = from_dict(ScaleBiOConfig, {**SETTINGS[setting][1], **VARIANTS[variant], "seed": seed, "resume": False})
    t0 = time.time()
    recipe = ScaleBiORecipe(cfg, list_sources(data), str(Path(data) / "validation.jsonl"), model, run_dir)
    recipe.setup()
    result = recipe.train()
    # Validation loss of the final w on response tokens, the same yardstick for either training span.
    val = load_split(Path(data) / "validation.jsonl", recipe.tok, cfg.max_length)
    w, total, count = recipe.mm.w.eval(), 0.0, 0
    with torch.no_grad():
        for i in range(0, len(val), 32):
            loss, n = pooled_token_loss(w, collate(val[i : i + 32], recipe.tok.pad_token_id))
            total, count = total + float(loss), count + int(n)
    weights = [result.weights[k] for k in sorted(result.weights)]
    row = {"variant": variant, "seed": seed, "weights": weights, "val_loss": total / count, "wall_s": time.time() - t0}
    atomic_write_json(run_dir / "result.json", row)
    return row


def summary(run_dir: Path) -> dict:
    """One run's numbers: result.json plus what its metrics.jsonl says (ρ, clipping, gradient norms, early gap)."""
    r = json.loads((run_dir / "result.json").read_text())
    rows = [json.loads(ln) for ln in (run_dir / "metrics.jsonl").read_text().splitlines()]
    r["rho"] = spearman(r["weights"], NOISE)
    r["clip_u"], r["clip_w"] = rows[-1]["clip_frac_u"], rows[-1]["clip_frac_w"]
    r["median_gw_over_alpha"] = statistics.median(x["grad_norm_w"] / x["alpha"] for x in rows)
    # |L2(w) − L2(u)| over the first 40 steps (two LISA periods), where the reversed runs take their direction:
    # large when u and w train different blocks and one copy learns faster
    r["early_gap"] = statistics.fmean(abs(x["gap"]) for x in rows[:40])
    return r


def _run_dir(out, variant: str, seed: int) -> Path:
    return Path(out) / "runs" / variant.replace("/", "_") / f"seed{seed}"


def _seeds(text: str) -> list[int]:
    if "-" in text:
        a, b = text.split("-")
        return list(range(int(a), int(b) + 1))
    return [int(s) for s in text.split(",")]


def table(results: dict[tuple[str, int], dict], variants: list[str], seeds: list[int]) -> str:
    """Markdown: a summary row per variant, then one row per seed with ρ · final validation loss · clipped steps of w."""
    mean = lambda v, k: statistics.fmean(results[v, s][k] for s in seeds)  # noqa: E731
    header = ["variant", "mean ρ", "seeds with ρ > 0", "mean val loss", "clipped u / w", "median ‖∇w‖/α",
              "|L2(w)−L2(u)|, steps 1-40", "s per run"]  # fmt: skip
    summary = [
        [v, f"{mean(v, 'rho'):+.2f}", f"{sum(results[v, s]['rho'] > 0 for s in seeds)} of {len(seeds)}",
         f"{mean(v, 'val_loss'):.3f}", f"{mean(v, 'clip_u'):.0%} / {mean(v, 'clip_w'):.0%}",
         f"{mean(v, 'median_gw_over_alpha'):.2f}", f"{mean(v, 'early_gap'):.3f}", f"{mean(v, 'wall_s'):.0f}"]
        for v in variants
    ]  # fmt: skip
    per_seed = [
        [s, *(f"{results[v, s]['rho']:+.1f} · {results[v, s]['val_loss']:.2f} · {results[v, s]['clip_w']:.0%}"
              for v in variants)]
        for s in seeds
    ]  # fmt: skip
    return (markdown_table(header, summary) + "\nPer seed: ρ · final validation loss · clipped steps of w.\n\n"
            + markdown_table(["seed", *variants], per_seed))  # fmt: skip


@main_guard
def main(argv=None) -> None:
    ap = argparse.ArgumentParser(prog="python -m scalebio.tools.lisa_study", description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="results/lisa_study", help="study folder (<setting>/{data,runs,table.md}, tiny)")
    ap.add_argument("--setting", default="miniature", choices=list(SETTINGS), help="the problem (SETTINGS)")
    ap.add_argument("--variants", default=",".join(VARIANTS), help=f"comma-separated, of {list(VARIANTS)}")
    ap.add_argument("--seeds", default="0-5", help="'0-5' or '0,3,7'")
    ap.add_argument("--jobs", type=int, default=1, help="worker processes (one torch thread each)")
    ap.add_argument("--model", default=None, help="tiny model folder (default: built under --out)")
    args = ap.parse_args(argv)
    variants = args.variants.split(",")
    unknown = sorted(set(variants) - set(VARIANTS))
    if unknown:
        raise ConfigError(f"unknown variant(s) {unknown}; choose from {list(VARIANTS)}")
    out = Path(args.out) / args.setting
    data, model = out / "data", Path(args.model) if args.model else Path(args.out) / "tiny"
    if not data.exists():
        from scalebio.assets.embedded import build

        build("denoise", SETTINGS[args.setting][0], data, seed=0)
    if not model.exists():
        from scalebio.assets.models import build_tiny

        build_tiny(model)
    seeds = _seeds(args.seeds)
    todo = [(v, s) for v in variants for s in seeds if not (_run_dir(out, v, s) / "result.json").exists()]
    if args.jobs == 1:  # in this process: one process, one torch thread
        runs = (_run_one(args.setting, *key, str(data), str(model), str(out)) for key in todo)
    else:
        pool = ProcessPoolExecutor(max_workers=args.jobs, mp_context=get_context("spawn"))
        runs = (
            f.result() for f in [pool.submit(_run_one, args.setting, *k, str(data), str(model), str(out)) for k in todo]
        )
    for r in runs:
        print(f"{r['variant']} seed {r['seed']}: val loss {r['val_loss']:.3f}, {r['wall_s']:.0f} s", flush=True)
    results = {(v, s): summary(_run_dir(out, v, s)) for v in variants for s in seeds}
    text = table(results, variants, seeds)
    (out / "table.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
