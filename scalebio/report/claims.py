"""The paper's claims, measured on one experiment, each with its interval, p-value and verdict.

1. Weights (ScaleBiO's learned p, over seeds): on a denoising pool Spearman(noise rate, p) ≤ −0.9 ("weights fall
   as noise rises") where distinct weights can reach −0.9; where they cannot (tied noise rates: one corrupted
   cluster among clean ones allows at most −0.707) the claim is that the most corrupted source gets the lowest
   weight. Elsewhere the weight on the target sources exceeds their uniform share, and the weight on sources
   known to be harmful stays below theirs.
2. Downstream (the first evaluation of the experiment): ScaleBiO's fine-tuned model beats each baseline (paired
   difference > 0); and two checks that the miniature can tell methods apart at all: uniform beats the base model,
   each oracle beats uniform.

Which run is ScaleBiO, which are the baselines, the control (uniform) and the reference points (the oracles) is what
each method's module declares (``scalebio.report.methods``): a new baseline gets its claim without an edit here.

Every claim with an interval has a two-sided p-value against its threshold; Holm's correction runs over all of
an experiment's claims that have one (``with_holm``), so a verdict that holds after it survives testing them all.
"""

from __future__ import annotations

from scalebio.report import methods
from scalebio.report.compare import base_difference, difference
from scalebio.report.markdown import p_text
from scalebio.report.stats import Estimate, holm, seed_bootstrap, spearman, t_interval, verdict, verdict_from_p

SPEARMAN_TARGET = -0.9 + 1e-9
"""Spearman ≤ −0.9, written as "< −0.9 + 1e-9" so that exactly −0.9 (possible with 5 sources) holds."""


def _row(model, claim, measure, est: Estimate, threshold: float, direction: str, shown: str, **extra) -> dict:
    est = est.against(threshold)
    return {
        "model": model,
        "claim": claim,
        "measure": measure,
        "value": est.value,
        "low": est.low,
        "high": est.high,
        "estimate [95% CI]": est.text(),
        "threshold": shown,
        "threshold_value": threshold,
        "direction": direction,
        "verdict": verdict(est, threshold, direction),
        "p": est.p,
        "p (shown)": p_text(est.p),
        "se": est.se,
        "mde": est.mde,
        "smallest detectable Δ (80 % power)": "—" if est.mde is None else f"{est.mde:.3f}",
        "interval over": est.over,
        **extra,
    }


def noise_spearman(noise: dict[str, float], runs: list) -> Estimate:
    """Spearman(noise rate, weight) per run, with its interval over the runs (seeds): a bootstrap over seeds,
    which stays inside [−1, 1] (``stats.seed_bootstrap``)."""
    names = sorted(noise)
    return seed_bootstrap([spearman([noise[n] for n in names], [r.composition.get(n, 0.0) for n in names])
                           for r in runs])  # fmt: skip


def best_spearman(noise: dict[str, float]) -> float:
    """The most negative Spearman(noise, p) that distinct weights can reach: p ordered against the noise rates.
    Ties among the noise rates cap it above −1 (one source at 100 % among four at 0 %: −1/√2 = −0.707), whatever
    order the tied sources' weights take (the ranks of a tied group always sum to the same)."""
    names = sorted(noise)
    order = sorted(names, key=lambda n: (-noise[n], n))  # most corrupted first → lowest weight
    return spearman([noise[n] for n in names], [float(order.index(n)) for n in names])


def noisiest_lowest(noise: dict[str, float], runs: list) -> tuple[Estimate, int]:
    """(p of the most corrupted source(s) − the lowest p among the others, over seeds; the seeds in which the most
    corrupted source has the lowest weight). Negative = the claim holds in that seed."""
    top = max(noise.values())
    worst = [n for n in noise if noise[n] == top]
    rest = [n for n in noise if noise[n] != top]
    gaps = [max(r.composition.get(n, 0.0) for n in worst) - min(r.composition.get(n, 0.0) for n in rest)
            for r in runs] if rest else []  # fmt: skip
    return t_interval(gaps), sum(g < 0 for g in gaps)


def higher_is_better(groups: dict, ev: str) -> bool:
    """Whether evaluation ``ev`` improves upwards (its summaries say; accuracy-like by default)."""
    return next((r.evals[ev].higher_is_better for rs in groups.values() for r in rs if ev in r.evals), True)


def metric_name(groups: dict, ev: str) -> str:
    """The metric evaluation ``ev`` reports (its summaries' ``metric``; the evaluation's name otherwise)."""
    return next((r.evals[ev].summary.get("metric") for rs in groups.values() for r in rs if ev in r.evals), None) or ev


def weight_claims(card: dict, model: str, runs: list, sources: list[str]) -> list[dict]:
    if not runs:
        return []
    me = runs[0].info.display
    k = max(1, len(sources))
    tag = {"kind": "weights", "comparator": "", "evaluation": "", "metric": "learned weight p"}
    if card.get("noise"):
        noise = card["noise"]
        best = best_spearman(noise)
        if best <= SPEARMAN_TARGET:
            est = noise_spearman(noise, runs)
            return [
                _row(model, card.get("expected"), f"Spearman(noise, {me} weight)", est, SPEARMAN_TARGET, "<",
                     "≤ −0.9", **{**tag, "metric": "Spearman ρ"})
            ]  # fmt: skip
        est, k = noisiest_lowest(noise, runs)
        measured = noise_spearman(noise, runs)
        worst = sorted(n for n in noise if noise[n] == max(noise.values()))
        measure = (f"{me} p{worst} − lowest other p (lowest in {k} of {len(runs)} seeds; Spearman "
                   f"{measured.text()} against the most negative reachable {best:+.3f}: ≤ −0.9 is out of reach)")  # fmt: skip
        return [_row(model, f"the most corrupted source{'s' if len(worst) > 1 else ''} {worst} get the lowest weight",
                     measure, est, 0.0, "<", "< 0", **tag)]  # fmt: skip
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
        measure = f"{me} weight on {names} − uniform share {share:.3g}"
        out.append(_row(model, claim, measure, est, 0.0, direction, "> 0" if direction == ">" else "< 0", **tag))
    return out


def roles(groups: dict, model: str) -> dict:
    """The names of ``model``'s runs by their role: the paper's method, its comparators, the control, the
    reference points (``scalebio.report.methods``; from each run's ``MethodInfo``)."""
    infos = {m: rs[0].info for (mm, m), rs in groups.items() if mm == model}
    names = list(infos)
    return {
        "method": methods.the_method(names, infos),
        "comparators": methods.comparators(names, infos),
        "control": methods.anchor(names, "control", infos),
        "ceiling": methods.anchor(names, "ceiling", infos),
        "reference_points": sorted(n for n in names if infos[n].role == "reference_point"),
    }


def downstream_claims(model: str, groups: dict, base: dict, ev: str) -> list[dict]:
    rows = []
    role = roles(groups, model)
    sb = groups.get((model, role["method"]), [])
    me = sb[0].info.display if sb else ""
    higher = higher_is_better(groups, ev)
    sign = "" if higher else " (lower is better: sign flipped)"
    tag = {"evaluation": ev, "metric": metric_name(groups, ev)}

    def oriented(est: Estimate) -> Estimate:
        return est if higher else est.negated()

    for b in role["comparators"]:
        rs = groups.get((model, b))
        if sb and rs:
            est = oriented(difference(sb, rs, ev))
            rows.append(_row(model, f"{me} beats {b} on {ev}", f"{me} − {b}{sign}", est, 0.0, ">", "> 0",
                             kind="downstream", comparator=b, **tag))  # fmt: skip
    control = role["control"]
    uniform = groups.get((model, control))
    if uniform and base.get(model, {}).get(ev) is not None:
        est = oriented(base_difference(base[model][ev], uniform, ev).negated())
        rows.append(_row(model, f"fine-tuning helps ({ev})", f"{control} − {methods.BASE}{sign}", est, 0.0, ">",
                         "> 0", kind="check", comparator=methods.BASE, **tag))  # fmt: skip
    for oracle in role["reference_points"]:
        if uniform:
            est = oriented(difference(groups[(model, oracle)], uniform, ev))
            rows.append(_row(model, f"the data mix matters ({ev}, {oracle})", f"{oracle} − {control}{sign}", est,
                             0.0, ">", "> 0", kind="check", comparator=oracle, **tag))  # fmt: skip
    return rows


def with_holm(rows: list[dict], alpha: float = 0.05) -> list[dict]:
    """Adds ``p_holm`` and ``verdict_holm``: Holm's correction over every row with a p-value (one experiment)."""
    tested = [r for r in rows if r["p"] is not None]
    for r, p in zip(tested, holm([r["p"] for r in tested])):
        r["p_holm"] = p
    for r in rows:
        r.setdefault("p_holm", None)
        r["p (Holm, shown)"] = p_text(r["p_holm"])
        r["verdict_holm"] = verdict_from_p(r["value"], r["p_holm"], r["threshold_value"], r["direction"], alpha)
    return rows


def claims(card: dict, groups: dict, base: dict, evals: list[str], sources: list[str]) -> list[dict]:
    rows = []
    for model in sorted({m for m, _ in groups}):
        rows += weight_claims(card, model, groups.get((model, roles(groups, model)["method"]), []), sources)
        if evals:
            rows += downstream_claims(model, groups, base, evals[0])
    return with_holm(rows)
