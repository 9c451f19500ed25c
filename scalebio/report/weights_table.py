"""The weights report of one experiment: what each method chose, what the SFT set received, how far ScaleBiO moved.

``weights.{csv,md}``:

- per (model, method) and source: p, the learned weight a weights selection hands on (mean ± SD over seeds; "—"
  for example-level methods, which choose examples, not weights), and the realised SFT-set share = the source's
  count in ``sft_data/manifest.json`` / the budget N (validation rows excluded; "—" without an SFT set, e.g. a
  ``weights_only`` run). They differ where a source's share does not fit its size (shortfalls are redistributed)
  and by rounding to whole examples;
- "ScaleBiO: movement, convergence and clipping": one row per ScaleBiO run from its ``selection.json`` (how much
  step size θ had in total and at the end, how far p moved from uniform, whether it was still moving, how often
  u's and w's gradients were clipped);
- a note with the ceilings the data sets: the lowest harmful share a source-level mixture and an example-level
  selection can reach at this budget, and the largest share the target sources can supply.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from scalebio.common.data import read_jsonl
from scalebio.report.collect import corruption_flags
from scalebio.report.markdown import markdown_table, pm, write_table
from scalebio.report.stats import mean_sd

OFFICIAL_SUM_LR_THETA = 1.17
"""Σ_t η_θ(t) of the official math run: 234 steps at lr_θ 1e-2 with 3 % linear warm-up and cosine decay to 0
(≈ 7·0.5·1e-2 + 227·0.5·1e-2). θ's logits move by at most ~η_θ per step (Adam), so this is the official run's
budget of movement; a miniature far below it cannot move p as far."""
MOSTLY_CLIPPED = 0.5


def weight_rows(groups: dict, sources: list[str]) -> list[dict]:
    """Per (model, method): p and the SFT-set share per source (mean ± SD over seeds), harmful share, duplicates."""
    rows = []
    for (model, method), rs in groups.items():
        kind = rs[0].selection["kind"]
        row = {"model": model, "method": method, "kind": kind, "seeds": len(rs)}
        built = [r.sft_share for r in rs if r.sft_share is not None]
        for s in sources:
            m, sd = mean_sd([r.composition.get(s, 0.0) for r in rs])
            row[s], row[f"{s}_sd"] = m, sd  # p, or the share of chosen examples (the figure plots it)
            row[f"{s}: p (learned)"] = pm(m, sd) if kind == "weights" else "—"
            m, sd = mean_sd([b.get(s, 0.0) for b in built]) if built else (None, None)
            row[f"{s}_sft_share"], row[f"{s}_sft_share_sd"], row[f"{s}: SFT-set share"] = m, sd, pm(m, sd)
        m, sd = mean_sd([r.corruption for r in rs])
        row["harmful_share"], row["harmful_share_sd"], row["harmful share (mean ± SD)"] = m, sd, pm(m, sd)
        row["duplicates"] = max(r.duplicates for r in rs)
        rows.append(row)
    return rows


def _regime(clip: dict) -> str:
    u, w = clip.get("u"), clip.get("w")
    if u is None or w is None:
        return "—"
    if max(u, w) > MOSTLY_CLIPPED:
        return f"clipped in most steps (u {u:.0%}, w {w:.0%}): u and w follow normalised gradients"
    return "mostly unclipped"


def _num(value, spec: str) -> str:
    return "—" if value is None else format(value, spec)


def movement_rows(groups: dict) -> list[dict]:
    """One row per ScaleBiO run (any variant: its selection has ``movement`` or ``clip_fraction``); fields an
    older selection lacks read "—"."""
    rows = []
    for (model, method), rs in groups.items():
        for r in rs:
            sel = r.selection
            if "movement" not in sel and "clip_fraction" not in sel:
                continue
            mv, clip = sel.get("movement") or {}, sel.get("clip_fraction") or {}
            total = mv.get("sum_lr_theta")
            ratio = "" if total is None else f" ({total / OFFICIAL_SUM_LR_THETA:.2f}× official)"
            low = mv.get("low_lr_step")
            rows.append(
                {
                    "model": model,
                    "method": method,
                    "seed": r.seed,
                    "Σ η_θ (vs official 1.17)": _num(total, ".3g") + ratio,
                    "largest log-ratio ln(max p / min p)": _num(mv.get("max_log_ratio"), ".3f"),
                    "max |Δp| over last 10 % of steps": _num(mv.get("final_window_dp"), ".4f"),
                    "Σ η_θ over last 10 %": _num(mv.get("final_window_sum_lr_theta"), ".3g"),
                    "η_θ < 10 % of peak from step": "—" if low is None else f"{low} of {sel.get('steps', '?')}",
                    "clipped u / w (%)": "—" if not clip else f"{100 * clip['u']:.0f} / {100 * clip['w']:.0f}",
                    "regime": _regime(clip),
                }
            )
    return rows


@dataclass
class Ceilings:
    """What the data allows at budget N, whatever the method (None: the data does not say)."""

    budget: int
    source_floor: float | None
    """Lowest harmful share of any source-level mixture (sources filled in ascending corruption rate up to size)."""
    example_floor: float | None
    """Lowest harmful share of an example-level selection: max(0, N − #clean) / N."""
    target_cap: float | None
    """Largest share of the SFT set the target sources can supply: min(1, Σ target sizes / N)."""


def ceilings(sizes: dict[str, int], corrupted: dict[str, int] | None, targets: list[str], budget: int) -> Ceilings:
    """``sizes``: examples per source; ``corrupted``: corrupted examples per source (None: not marked)."""
    source_floor = example_floor = None
    if corrupted is not None and budget > 0:
        left, harmful = budget, 0.0
        for name in sorted(sizes, key=lambda s: (corrupted[s] / max(1, sizes[s]), s)):
            take = min(left, sizes[name])
            harmful += take * corrupted[name] / max(1, sizes[name])
            left -= take
        source_floor = harmful / budget
        clean = sum(sizes[s] - corrupted[s] for s in sizes)
        example_floor = max(0, budget - clean) / budget
    known = [t for t in targets if t in sizes]
    target_cap = min(1.0, sum(sizes[t] for t in known) / budget) if known and budget > 0 else None
    return Ceilings(budget, source_floor, example_floor, target_cap)


def data_ceilings(data_dir: Path, card: dict, sources: list[str], budget: int) -> Ceilings:
    """Ceilings from the data folder: sources' sizes, their ``corrupted`` flags, the card's ``targets``."""
    flags = corruption_flags(data_dir, sources)
    if flags is not None:
        sizes = {s: len(f) for s, f in flags.items()}
        corrupted = {s: sum(f.values()) for s, f in flags.items()}
    else:
        sizes = {s: len(read_jsonl(data_dir / "sources" / f"{s}.jsonl")) for s in sources
                 if (data_dir / "sources" / f"{s}.jsonl").exists()}  # fmt: skip
        corrupted = None
    return ceilings(sizes, corrupted, list(card.get("targets") or []), budget)


def ceiling_note(c: Ceilings, card: dict, kinds: dict[str, list[str]]) -> str:
    """The note's sentences on the ceilings; ``kinds``: selection kind -> methods of that kind."""
    by_source = ", ".join(kinds.get("weights", [])) or "none run here"
    by_example = ", ".join(kinds.get("examples", [])) or "none run here"
    out = [f"Ceilings at budget N = {c.budget} (from the data folder):"]
    if c.source_floor is not None:
        out.append(
            f"a source-level mixture ({by_source}) cannot bring the harmful share below {c.source_floor:.3f} (the "
            f"cleanest sources filled up to their sizes); an example-level selection ({by_example}) can reach "
            f"{c.example_floor:.3f}."
        )
        if abs(c.source_floor - c.example_floor) > 1e-12:
            out.append(
                "Source-level and example-level methods face different ceilings here: compare harmful shares "
                "within a kind, not across."
            )
        else:
            out.append("Both kinds face the same floor here.")
    if c.target_cap is not None:
        out.append(
            f"The target sources {card.get('targets')} can supply at most {c.target_cap:.3f} of the SFT set, "
            "whatever the method."
        )
    return " ".join(out) if len(out) > 1 else ""


def write_weights(out: Path, experiment: str, groups: dict, sources: list[str], card: dict, ceil: Ceilings) -> list:
    """weights.csv (per-source p and SFT-set share) and weights.md (that table, ScaleBiO's movement, the ceilings)."""
    rows = weight_rows(groups, sources)
    harmful = any(r["harmful_share"] is not None for r in rows)
    kinds: dict[str, list[str]] = {}
    for (_, method), rs in groups.items():
        kinds.setdefault(rs[0].selection["kind"], []).append(method)
    note = (
        f"Expected (paper claim): {card.get('expected', 'n/a')}. Uniform share = {1 / max(1, len(sources)):.3g}. "
        "**p (learned)**: the weight a weights selection hands on (ScaleBiO, DoReMi, uniform; — for example-level "
        "methods). **SFT-set share**: the source's count in the SFT set actually built / N (validation rows "
        "excluded; — without an SFT set). `oracle*` rows know the answer by construction: reference points, not "
        "methods." + (" Harmful share = expected fraction of corrupted / wrong examples in the selection." if harmful
                       else "")
    )  # fmt: skip
    ceiling = ceiling_note(ceil, card, kinds)
    if ceiling:
        note += "\n\n" + ceiling
    cols = [c for s in sources for c in (f"{s}: p (learned)", f"{s}: SFT-set share")]
    mv = movement_rows(groups)
    mv_cols = list(mv[0]) if mv else []
    extra = (
        "\n## ScaleBiO: movement, convergence and clipping\n\n"
        f"One row per run (selection.json). Σ η_θ: θ's step sizes summed over the run (official math run: "
        f"{OFFICIAL_SUM_LR_THETA}); largest log-ratio: how far the final p is from uniform; max |Δp| over the last "
        "10 % of steps (and Σ η_θ there): whether p was still moving when the run stopped. Clipped: fraction of "
        f"steps whose ‖∇u‖ / ‖∇w‖ was clipped; above {MOSTLY_CLIPPED:.0%} u and w follow normalised gradients.\n\n"
        + markdown_table(mv_cols, [[str(r[c]) for c in mv_cols] for r in mv])
        if mv
        else ""
    )
    write_table(
        out, "weights", rows,
        ["model", "method", "kind", "seeds", *[c for s in sources for c in (s, f"{s}_sd", f"{s}_sft_share",
         f"{s}_sft_share_sd")], "harmful_share", "harmful_share_sd", "duplicates"],
        ["model", "method", "seeds", *cols] + (["harmful share (mean ± SD)"] if harmful else []),
        f"{experiment}: learned weight p and realised SFT-set share per source (mean ± SD over seeds)",
        note, extra,
    )  # fmt: skip
    return rows
