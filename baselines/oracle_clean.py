"""Example-level oracle: N clean examples (``corrupted: false``), best sources first — a reference point.

The floor an example-level method (LESS, RHO-LOSS) can reach on a pool whose rows say which are corrupted; see
``baselines/oracle.py`` for the source-level one and why both exist.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from pathlib import Path

from baselines.oracle import fill, ranked_groups
from scalebio.common.config import as_dict
from scalebio.common.data import read_jsonl
from scalebio.common.registry import MethodInfo
from scalebio.common.runtime import ConfigError
from scalebio.common.selection import MethodInputs, write_selection

INFO = MethodInfo(
    name="oracle_clean",
    display="oracle, clean examples (reference point)",
    role="reference_point",
    order=70,
    colour="#8c564b",
)


@dataclass
class Options:
    """The example-level oracle has no options; the class exists so unknown options are rejected."""


def select(inputs: MethodInputs, opts: Options) -> Path:
    t0 = time.time()
    names = sorted(inputs.sources)
    rows = {n: read_jsonl(p) for n, p in inputs.sources.items()}
    if not all("corrupted" in r for rs in rows.values() for r in rs):
        raise ConfigError(
            f"oracle_clean: the sources of '{inputs.data_dir}' do not mark corrupted rows; it is defined only where "
            "they do (the denoising, arithmetic and instruction pools)"
        )
    clean = {n: [r for r in rs if not r["corrupted"]] for n, rs in rows.items()}
    counts = fill(ranked_groups(inputs.data_dir, names), {n: len(c) for n, c in clean.items()}, inputs.budget)
    rng = random.Random(inputs.seed)  # which clean rows of a partly taken source: seeded, sorted by id first
    examples = []
    for n in names:
        chosen = rng.sample(sorted(clean[n], key=lambda r: str(r["id"])), counts.get(n, 0))
        examples += [{"source": n, "id": r["id"]} for r in chosen]
    return write_selection(
        inputs, INFO.name, examples=examples, config=as_dict(opts), wall_time_s=time.time() - t0, tokens=0
    )
