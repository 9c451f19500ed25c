"""The paper's claims, measured on one experiment, each with its interval and a verdict.

1. Weights (ScaleBiO's learned p, over seeds): on a denoising pool Spearman(noise rate, p) ≤ −0.9 ("weights fall
   as noise rises"); elsewhere the weight on the target sources exceeds their uniform share, and the weight on
   sources known to be harmful stays below theirs.
2. Downstream (the first evaluation of the experiment): ScaleBiO's fine-tuned model beats each baseline (paired
   difference > 0); and two checks that the miniature can tell methods apart at all: uniform beats the base model,
   the oracle beats uniform.
"""

from __future__ import annotations

from scipy.stats import spearmanr

from scalebio.report.compare import base_difference, difference
from scalebio.report.stats import Estimate, t_interval, verdict

BASELINES = ("uniform", "less", "rho_loss", "reference", "doremi")


def spearman(x: list[float], y: list[float]) -> float:
    return float(spearmanr(x, y).statistic)


def _row(model, claim, measure, est: Estimate, threshold: float, direction: str, shown: str) -> dict:
    return {
        "model": model,
        "claim": claim,
        "measure": measure,
        "value": est.value,
        "low": est.low,
        "high": est.high,
        "estimate [95% CI]": est.text(),
        "threshold": shown,
        "verdict": verdict(est, threshold, direction),
        "interval over": est.over,
    }


def noise_spearman(noise: dict[str, float], runs: list) -> Estimate:
    """Spearman(noise rate, weight) per run, with its interval over the runs (seeds)."""
    names = sorted(noise)
    return t_interval([spearman([noise[n] for n in names], [r.composition.get(n, 0.0) for n in names]) for r in runs])


def higher_is_better(groups: dict, ev: str) -> bool:
    """Whether evaluation ``ev`` improves upwards (its summaries say; accuracy-like by default)."""
    return next((r.evals[ev].higher_is_better for rs in groups.values() for r in rs if ev in r.evals), True)


def weight_claims(card: dict, model: str, runs: list, sources: list[str]) -> list[dict]:
    if not runs:
        return []
    k = max(1, len(sources))
    if card.get("noise"):
        est = noise_spearman(card["noise"], runs)
        return [_row(model, card.get("expected"), "Spearman(noise, ScaleBiO weight)", est, -0.9 + 1e-9, "<", "≤ −0.9")]
    out = []
    for key, claim, direction in (
        ("targets", card.get("expected"), ">"),
        ("harmful", "harmful sources lose weight", "<"),
    ):
        names = card.get(key) or []
        if not names:
            continue
        share = len(names) / k
        est = t_interval([sum(r.composition.get(n, 0.0) for n in names) - share for r in runs])
        measure = f"ScaleBiO weight on {names} − uniform share {share:.3g}"
        out.append(_row(model, claim, measure, est, 0.0, direction, "> 0" if direction == ">" else "< 0"))
    return out


def downstream_claims(model: str, groups: dict, base: dict, ev: str) -> list[dict]:
    def oriented(est: Estimate, higher: bool) -> Estimate:
        if higher or est.value is None:
            return est
        return Estimate(
            -est.value, None if est.high is None else -est.high, None if est.low is None else -est.low, est.over
        )

    rows = []
    sb = groups.get((model, "scalebio"), [])
    higher = higher_is_better(groups, ev)
    sign = "" if higher else " (lower is better: sign flipped)"
    for b in BASELINES:
        rs = groups.get((model, b))
        if sb and rs:
            est = oriented(difference(sb, rs, ev), higher)
            rows.append(_row(model, f"ScaleBiO beats {b} on {ev}", f"ScaleBiO − {b}{sign}", est, 0.0, ">", "> 0"))
    uniform, oracle = groups.get((model, "uniform")), groups.get((model, "oracle"))
    if uniform and base.get(model, {}).get(ev) is not None:
        d = base_difference(base[model][ev], uniform, ev)
        est = oriented(Estimate(None if d.value is None else -d.value, None if d.high is None else -d.high,
                                None if d.low is None else -d.low, d.over), higher)  # fmt: skip
        rows.append(_row(model, f"fine-tuning helps ({ev})", f"uniform − base{sign}", est, 0.0, ">", "> 0"))
    if uniform and oracle:
        est = oriented(difference(oracle, uniform, ev), higher)
        rows.append(_row(model, f"the data mix matters ({ev})", f"oracle − uniform{sign}", est, 0.0, ">", "> 0"))
    return rows


def claims(card: dict, groups: dict, base: dict, evals: list[str], sources: list[str]) -> list[dict]:
    rows = []
    for model in sorted({m for m, _ in groups}):
        rows += weight_claims(card, model, groups.get((model, "scalebio"), []), sources)
        if evals:
            rows += downstream_claims(model, groups, base, evals[0])
    return rows
