"""Oracles: the best selection the pool allows, known by construction — reference points, not baselines.

An embedded pool knows which sources are the target (``targets`` in the data folder's ``card.json``: the clean
word problems, the instruction-following answers, the target language), which are harmful (``harmful``) and, for
the denoising pool, every source's corruption rate (``noise``). Two oracles use that knowledge, so the report can
place every method between uniform sampling and the best the pool allows ("share of the uniform→oracle gap
closed"); no real pool has it, so they are reported beside the methods, never as methods:

- ``oracle`` (this module, source-level): the best *mixture* the per-source sizes allow. Sources are ranked —
  targets, then by corruption rate, then the others, harmful ones last — and the budget N is filled in that order,
  each source up to its size; where the ranking has ties (the non-target languages) the rest is spread evenly over
  the tied group. With 5 denoising sources of 120 and N = 240 that is the clean and the 25 %-corrupted source, a
  harmful share of 30/240 = 0.125: the floor every source-level method (ScaleBiO, DoReMi, uniform) faces.
- ``oracle_clean`` (``baselines/oracle_clean.py``, example-level): N clean examples (rows with
  ``corrupted: false``), taken in the same order: the floor of example-level methods (LESS, RHO-LOSS) is 0.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

from scalebio.common.config import as_dict
from scalebio.common.registry import MethodInfo
from scalebio.common.runtime import ConfigError
from scalebio.common.selection import MethodInputs, pool_info, write_selection

INFO = MethodInfo(
    name="oracle",
    display="oracle (reference point)",
    role="reference_point",
    order=60,
    anchor="ceiling",
    colour="#bcbd22",
)


@dataclass
class Options:
    """The oracle has no options; the class exists so unknown options are rejected."""


def ranked_groups(data_dir: str, names: list[str]) -> list[list[str]]:
    """The sources from best to worst as groups of equals (targets; by corruption rate; others; harmful)."""
    card_path = Path(data_dir) / "card.json"
    card = json.loads(card_path.read_text()) if card_path.exists() else {}
    targets = card.get("targets") or []
    if not targets or not set(targets) <= set(names):
        raise ConfigError(
            f"oracle: the data folder '{data_dir}' names no target sources in card.json (embedded pools do); "
            "the oracle is only defined where the right mixture is known"
        )
    noise, harmful = card.get("noise") or {}, set(card.get("harmful") or [])

    def rank(name: str) -> tuple:
        if name in targets:
            return (0, 0.0)
        if name in harmful:
            return (3, 0.0)
        return (1, noise[name]) if name in noise else (2, 0.0)

    keys = sorted({rank(n) for n in names})
    return [sorted(n for n in names if rank(n) == k) for k in keys]


def fill(groups: list[list[str]], sizes: dict[str, int], budget: int) -> dict[str, int]:
    """Examples per source: the groups in order, each source up to its size, ties spread evenly (water-filling)."""
    counts, left = {}, budget
    for group in groups:
        room = {n: sizes[n] for n in group}
        while left > 0 and any(room.values()):
            open_ = [n for n in group if room[n] > 0]
            share = max(1, left // len(open_))
            for n in open_:
                take = min(share, room[n], left)
                counts[n] = counts.get(n, 0) + take
                room[n] -= take
                left -= take
    if left > 0:
        raise ConfigError(f"oracle: the pool holds {budget - left} examples, fewer than the budget {budget}")
    return counts


def select(inputs: MethodInputs, opts: Options) -> Path:
    t0 = time.time()
    names = sorted(inputs.sources)
    sizes = {n: v["n_examples"] for n, v in pool_info(inputs.sources)[0].items()}
    counts = fill(ranked_groups(inputs.data_dir, names), sizes, inputs.budget)
    weights = {n: counts.get(n, 0) / inputs.budget for n in names}
    return write_selection(
        inputs, INFO.name, weights=weights, config=as_dict(opts), wall_time_s=time.time() - t0, tokens=0
    )
