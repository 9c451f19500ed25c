"""Uniform sampling: equal weight per source (the paper's "uniform sampling" baseline)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from scalebio.common.config import as_dict, from_dict
from scalebio.common.selection import MethodInputs, write_selection


@dataclass
class Options:
    """Uniform has no options; the class exists so unknown options are rejected."""


def select(inputs: MethodInputs) -> Path:
    t0 = time.time()
    opts = from_dict(Options, inputs.options, prefix="methods.uniform.")
    names = sorted(inputs.sources)
    weights = {n: 1.0 / len(names) for n in names}
    return write_selection(
        inputs, "uniform", weights=weights, config=as_dict(opts), wall_time_s=time.time() - t0, tokens=0
    )
