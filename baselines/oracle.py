"""Oracle: all weight on the experiment's known-clean target sources — a reference point, not a baseline.

An embedded pool knows by construction which sources are the target (``targets`` in the data folder's
``card.json``: the clean word problems, the instruction-following answers). The oracle spends the whole budget on
them, so the report can place every method between uniform sampling and the best mixture the pool allows
("share of the uniform→oracle gap closed"). It needs that knowledge, which no real pool has: it is reported
beside the methods, never as one of them.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

from scalebio.common.config import as_dict, from_dict
from scalebio.common.runtime import ConfigError
from scalebio.common.selection import MethodInputs, write_selection


@dataclass
class Options:
    """The oracle has no options; the class exists so unknown options are rejected."""


def select(inputs: MethodInputs) -> Path:
    t0 = time.time()
    opts = from_dict(Options, inputs.options, prefix="methods.oracle.")
    card_path = Path(inputs.data_dir) / "card.json"
    targets = json.loads(card_path.read_text()).get("targets") if card_path.exists() else None
    names = sorted(inputs.sources)
    if not targets or not set(targets) <= set(names):
        raise ConfigError(
            f"oracle: the data folder '{inputs.data_dir}' names no target sources in card.json (embedded pools do); "
            "the oracle is only defined where the right mixture is known"
        )
    weights = {n: (1.0 / len(targets) if n in targets else 0.0) for n in names}
    return write_selection(
        inputs, "oracle", weights=weights, config=as_dict(opts), wall_time_s=time.time() - t0, tokens=0
    )
