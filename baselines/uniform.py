"""Uniform sampling: equal weight per source (the paper's "uniform sampling" baseline)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from scalebio.common.config import as_dict
from scalebio.common.registry import MethodInfo
from scalebio.common.selection import MethodInputs, write_selection

INFO = MethodInfo(
    name="uniform", display="Uniform", role="baseline", order=10, in_paper=True, anchor="control", colour="#4d4d4d"
)


@dataclass
class Options:
    """Uniform has no options; the class exists so unknown options are rejected."""


def select(inputs: MethodInputs, opts: Options) -> Path:
    t0 = time.time()
    names = sorted(inputs.sources)
    weights = {n: 1.0 / len(names) for n in names}
    return write_selection(
        inputs, INFO.name, weights=weights, config=as_dict(opts), wall_time_s=time.time() - t0, tokens=0
    )
