"""Beyond the paper: one change against a reference experiment, with its control (``study: {kind: online |
clusters, compare_with: E}``), written by ``python -m scalebio study`` (``scalebio.report.studies``).

The experiment and ``compare_with`` share the pool, methods and seeds and differ in one change: ``online`` draws
the SFT sources from p at every step instead of building a static set; ``clusters`` replaces the given sources by
k-means clusters of the merged pool. Each runs ScaleBiO and its control, uniform. ``study.{csv,md,png}``:

- per method, the experiment against the reference on the first evaluation (means ± SD over seeds and the
  paired difference with its 95 % interval, ``scalebio.report.compare``): uniform's row is the control, the same
  change without learned weights;
- ScaleBiO − uniform within each experiment and the difference of the two (what the change does for ScaleBiO
  beyond what it does for uniform), paired by seed and test item;
- where the pool has noise rates: ScaleBiO's Spearman(noise, p) on each side beside the most negative value
  distinct weights can reach there, and whether the most corrupted source (cluster) gets the lowest weight.
"""

from __future__ import annotations

import json
from pathlib import Path

from scalebio.report import style
from scalebio.report.claims import best_spearman, higher_is_better, noise_spearman, noisiest_lowest, roles
from scalebio.report.compare import difference, difference_of_differences
from scalebio.report.markdown import markdown_table, p_text, pm, write_table
from scalebio.report.stats import Estimate, mean_sd

CHANGE = {
    "online": ("SFT sources drawn from p at every step (sft.sampling: online)", "online", "static"),
    "clusters": ("sources = k-means clusters of the merged pool (data.clusters)", "clusters", "given sources"),
}
"""kind -> (the change, this side's short name, the reference side's short name)."""


def _eval_cells(rs: list, ev: str, prefix: str) -> dict:
    m, sd = mean_sd([r.evals[ev].value for r in rs if ev in r.evals])
    return {f"{prefix}mean": m, f"{prefix}sd": sd, f"{prefix}(mean ± SD)": pm(m, sd)}


def _harmful(rs: list) -> float | None:
    return mean_sd([r.corruption for r in rs])[0]


def _est(prefix: str, est: Estimate) -> dict:
    return {prefix: est.value, f"{prefix}_low": est.low, f"{prefix}_high": est.high, f"{prefix}_p": est.p}


def control_of(groups: dict, model: str | None = None) -> str | None:
    """The control (uniform: no learned weights) of ``model``'s runs, the first model's if none is given."""
    if not groups:
        return None
    return roles(groups, model or next(iter(groups))[0])["control"]


def method_of(groups: dict, model: str) -> str | None:
    """The paper's method (ScaleBiO) among ``model``'s runs."""
    return roles(groups, model)["method"]


def method_rows(kind: str, groups: dict, ref_groups: dict, card: dict, ref_card: dict, ev: str) -> list[dict]:
    """Per method run on both sides: the change's effect on it (this − reference), uniform's row the control."""
    _, here_name, there_name = CHANGE[kind]
    purity = (card.get("purity") or {}) if kind == "clusters" else {}
    rows = []
    for (model, method), rs in groups.items():
        ref = ref_groups.get((model, method))
        if not ref:
            continue
        diff = difference(rs, ref, ev)
        control = control_of(groups, model)
        weights = rs[0].selection["kind"] == "weights" and method != control
        here = noise_spearman(card["noise"], rs) if weights and card.get("noise") else Estimate(None)
        there = noise_spearman(ref_card["noise"], ref) if weights and ref_card.get("noise") else Estimate(None)
        h_here, h_there = _harmful(rs), _harmful(ref)
        rows.append(
            {
                "model": model,
                "method": method,
                "comparison": f"{method}: {here_name} − {there_name}",
                "role": "control (no learned weights)" if method == control else "method",
                "seeds": len(rs),
                **_eval_cells(rs, ev, f"{kind} "),
                **_eval_cells(ref, ev, "reference "),
                "diff": diff.value,
                "diff_low": diff.low,
                "diff_high": diff.high,
                "diff_p": diff.p,
                f"Δ {here_name} − {there_name} [95% CI]": diff.text(),
                "p": p_text(diff.p),
                "interval over": diff.over,
                "harmful": h_here,
                "harmful_reference": h_there,
                f"harmful share {here_name} / {there_name}": f"{pm(h_here, None)} / {pm(h_there, None)}",
                "rho": here.value,
                "rho_reference": there.value,
                f"Spearman(noise, p) {here_name} / {there_name}": f"{here.text()} / {there.text()}",
                "_seed_diffs": _seed_diffs(rs, ref, ev),
                **{f"purity_{k}": v for k, v in purity.items()},
                **(
                    {"purity (source / label)": " / ".join(f"{k} {v:.3f}" for k, v in purity.items())} if purity else {}
                ),
            }
        )
    return rows


def _seed_diffs(rs: list, ref: list, ev: str) -> list[float]:
    other = {r.seed: r.evals[ev].value for r in ref if ev in r.evals}
    return [r.evals[ev].value - other[r.seed] for r in rs if ev in r.evals and r.seed in other]


def contrast_rows(kind: str, groups: dict, ref_groups: dict, ev: str) -> list[dict]:
    """ScaleBiO − uniform on each side and the difference of the two (ScaleBiO's share of the change)."""
    _, here_name, there_name = CHANGE[kind]
    rows = []
    for model in sorted({m for m, _ in groups}):
        me, control = method_of(groups, model), control_of(groups, model)
        sb, u = groups.get((model, me)), groups.get((model, control))
        rsb, ru = ref_groups.get((model, me)), ref_groups.get((model, control))
        pair = f"{me} − {control}"
        entries = []
        if sb and u:
            entries.append((f"{pair}, {here_name}", difference(sb, u, ev), _seed_diffs(sb, u, ev)))
        if rsb and ru:
            entries.append((f"{pair}, {there_name}", difference(rsb, ru, ev), _seed_diffs(rsb, ru, ev)))
        if sb and u and rsb and ru:
            did = difference_of_differences(sb, u, rsb, ru, ev)
            entries.append((f"({pair}) {here_name} − ({pair}) {there_name}", did, []))
        for name, est, seeds in entries:
            rows.append({"model": model, "method": pair, "comparison": name, "role": "contrast",
                         "diff": est.value, "diff_low": est.low, "diff_high": est.high, "diff_p": est.p,
                         "Δ [95% CI]": est.text(), "p": p_text(est.p), "interval over": est.over,
                         "_seed_diffs": seeds})  # fmt: skip
    return rows


def lowest_weight_rows(kind: str, groups: dict, ref_groups: dict, card: dict, ref_card: dict) -> list[dict]:
    """ScaleBiO on each side: is the most corrupted source's weight the lowest, and how its Spearman compares with
    the most negative value distinct weights can reach on that side's sources."""
    _, here_name, there_name = CHANGE[kind]
    rows = []
    for side, gs, c in ((here_name, groups, card), (there_name, ref_groups, ref_card)):
        noise = c.get("noise") or {}
        for (model, method), rs in gs.items():
            if method != method_of(gs, model) or not noise or len(set(noise.values())) < 2:
                continue
            gap, k = noisiest_lowest(noise, rs)
            worst = sorted(n for n in noise if noise[n] == max(noise.values()))
            rows.append({
                "model": model, "side": side, "most corrupted": ", ".join(worst),
                "lowest weight in": f"{k} of {len(rs)} seeds",
                "p(most corrupted) − lowest other p [95% CI]": gap.text(),
                "Spearman(noise, p) [95% CI]": noise_spearman(noise, rs).text(),
                "most negative reachable ρ": f"{best_spearman(noise):+.3f}",
            })  # fmt: skip
    return rows


def sft_epochs(results: Path, experiment: str, groups: dict) -> float | None:
    """SFT epochs of the experiment's runs, from a fine-tuned model's ``sft_config.json`` (None if not found)."""
    for (model, method), rs in groups.items():
        for r in rs:
            path = results / experiment / model / method / f"s{r.seed}" / "model" / "sft_config.json"
            if path.exists():
                return (json.loads(path.read_text()).get("options") or {}).get("epochs")
    return None


def control_note(kind: str, ref_name: str, groups: dict, ref_groups: dict, epochs: float | None) -> str:
    """What each control rules out, in words, with the numbers the report measured."""
    if kind == "online":
        if epochs is None:
            at = "The SFT epochs of these runs are not recorded here (no sft_config.json)."
        elif float(epochs) <= 1:
            at = (f"At {epochs:g} SFT epoch, 'online' is one draw: each of the N training slots draws its source once "
                  "from p (a multinomial draw around the static set's composition, no per-source cap), where the "
                  "static set takes n_k = N·p_k once; p does not reach training more often, only the exact counts "
                  "and the order of examples differ.")  # fmt: skip
        else:
            at = (f"With {epochs:g} SFT epochs, online redraws the sources (and fresh examples) every epoch, where "
                  "the static set repeats the same N examples.")  # fmt: skip
        return (
            f"Control: uniform online − uniform static (`{ref_name}`'s uniform), the same sampling change "
            "without learned weights: a Δ there is an effect of the sampling itself (counts, order), not of "
            "ScaleBiO's weights. ScaleBiO's own share of the change is the difference-of-differences row. " + at
        )
    control = control_of(groups)
    hc = _harmful(groups.get((next(iter(groups))[0], control), [])) if groups else None
    hr = _harmful(ref_groups.get((next(iter(groups))[0], control), [])) if groups else None
    return (f"Control: uniform over the clusters − uniform over `{ref_name}`'s given sources, the same re-partition "
            f"of the pool without learned weights. Uniform over the clusters already changes the data (harmful "
            f"share {pm(hc, None)} against {pm(hr, None)}), so a Δ there is the clustering's own effect; what "
            "ScaleBiO adds on the clusters is ScaleBiO − uniform within this experiment, and its share of the "
            "change is the difference-of-differences row.")  # fmt: skip


def plot(path: Path, experiment: str, ref_name: str, kind: str, rows: list[dict], contrasts: list[dict], ev: str,
         higher: bool) -> None:  # fmt: skip
    _, here_name, there_name = CHANGE[kind]
    controls = {r["method"] for r in rows if r["role"].startswith("control")}
    fig, (ax1, ax2) = style.figure(2, 6.0, 0.5 * max(len(rows), len(contrasts), 2) + 1.8, max_cols=2)
    better = "higher" if higher else "lower"
    style.interval_panel(ax1, [
        {"label": f"{r['method']}{' (control)' if r['method'] in controls else ''}", "value": r["diff"],
         "low": r["diff_low"], "high": r["diff_high"], "colour": style.method_colour(r["method"]),
         "seeds": r["_seed_diffs"]} for r in rows], f"Δ {ev}: {here_name} − {there_name} ({better} is better)")  # fmt: skip
    ax1.set_title(style.wrap(f"the change, per method: {experiment} − {ref_name}", 60))
    style.interval_panel(ax2, [
        {"label": style.wrap(r["comparison"], 32), "value": r["diff"], "low": r["diff_low"], "high": r["diff_high"],
         "colour": style.method_colour(r["method"].split(" − ")[0]), "seeds": r["_seed_diffs"]} for r in contrasts],
        f"Δ {ev} ({better} is better)")  # fmt: skip
    ax2.set_title("ScaleBiO against its control (uniform)")
    n = max((r["seeds"] for r in rows), default=0)
    over = next((r["interval over"] for r in rows if r["diff_low"] is not None), "no interval")
    style.suptitle(fig, f"{experiment} vs {ref_name} ({style.seeds_text(n)}): paired differences with 95 % intervals "
                        f"({over}); dots: seeds")  # fmt: skip
    style.save(fig, path)


def comparison_report(out: Path, experiment: str, kind: str, groups: dict, card: dict, ev: str, results: Path,
                      reference: tuple) -> None:  # fmt: skip
    """``reference``: (name, groups, card) of ``compare_with``."""
    ref_name, ref_groups, ref_card = reference
    change, here_name, there_name = CHANGE[kind]
    rows = method_rows(kind, groups, ref_groups, card, ref_card, ev)
    contrasts = contrast_rows(kind, groups, ref_groups, ev)
    lowest = lowest_weight_rows(kind, groups, ref_groups, card, ref_card)
    higher = higher_is_better(groups, ev)
    purity_cols = sorted({k for r in rows for k in r if k.startswith("purity_")})
    cols = ["model", "method", "comparison", "role", "seeds", f"{kind} mean", f"{kind} sd", "reference mean",
            "reference sd", "diff", "diff_low", "diff_high", "diff_p", "harmful", "harmful_reference", "rho",
            "rho_reference", *purity_cols]  # fmt: skip
    show = ["model", "method", "role", "seeds", f"{kind} (mean ± SD)", "reference (mean ± SD)",
            f"Δ {here_name} − {there_name} [95% CI]", "p", "interval over", f"harmful share {here_name} / {there_name}",
            f"Spearman(noise, p) {here_name} / {there_name}"] + (["purity (source / label)"] if purity_cols else [])  # fmt: skip
    note = (
        f"Reference: `{ref_name}` (same pool, methods and seeds). Change: {change}. Δ is paired by seed and test "
        f"item (hierarchical bootstrap; a t-interval over seeds without per-item scores). {ev}: "
        f"{'higher' if higher else 'lower'} is better.\n\n" + control_note(kind, ref_name, groups, ref_groups,
                                                                           sft_epochs(results, experiment, groups))
    )  # fmt: skip
    extra = ""
    if contrasts:
        extra += ("\n## ScaleBiO against its control\n\nScaleBiO − uniform on each side, and their difference: what "
                  f"the change ({here_name} instead of {there_name}) does for ScaleBiO beyond what it does for "
                  "uniform.\n\n" + markdown_table(["model", "comparison", "Δ [95% CI]", "p", "interval over"],
                  [[r[c] for c in ("model", "comparison", "Δ [95% CI]", "p", "interval over")] for r in contrasts]))  # fmt: skip
    if lowest:
        heads = list(lowest[0])
        extra += ("\n## Does the most corrupted source get the lowest weight?\n\nWhere sources share a noise rate, "
                  "Spearman(noise, p) ≤ −0.9 can be out of reach for distinct weights: with one corrupted cluster "
                  "among four clean ones the most negative value is −1/√2 = −0.707. The claim measured on each side "
                  "is that the most corrupted source (cluster) gets the lowest weight (p of it − the lowest other p "
                  "< 0, t-interval over seeds), with the measured Spearman beside the most negative reachable one."
                  "\n\n"
                  + markdown_table(heads, [[r[h] for h in heads] for r in lowest]))  # fmt: skip
    write_table(out, "study", rows + contrasts, cols, show, f"{experiment} vs {ref_name}: {ev}", note, extra,
                md_rows=rows)  # fmt: skip
    plot(out / "study.png", experiment, ref_name, kind, rows, contrasts, ev, higher)
