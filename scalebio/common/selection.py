"""The one artifact every data-selection method writes: ``selection.json``.

``kind: "weights"`` carries a mixture ``{source: p}`` (the SFT builder samples N examples by it);
``kind: "examples"`` carries the chosen ``[{"source", "id"}]``. Both carry the method, budget,
seed, the resolved config, the pool fingerprint (so a selection cannot be applied to another pool)
and the cost of producing it (wall time, tokens processed).
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scalebio.common.data import list_sources
from scalebio.common.runtime import DataError, atomic_write_json, config_hash, file_sha256

SELECTION_FILE = "selection.json"


@dataclass
class MethodInputs:
    """What every method receives (the contract of ``scalebio/common/registry.py``)."""

    data_dir: str
    """Folder with ``sources/<name>.jsonl`` and ``validation.jsonl``."""
    model: str
    """Base model folder (or hub id when the hub is enabled)."""
    out_dir: str
    """Run folder; the method writes ``selection.json``, logs and metrics here."""
    budget: int
    """N, the number of training examples the downstream SFT set will hold."""
    seed: int = 0
    options: dict[str, Any] = field(default_factory=dict)
    """Method-specific options (validated by the method)."""

    @property
    def sources(self) -> dict[str, str]:
        return list_sources(self.data_dir)

    @property
    def validation(self) -> str:
        return str(Path(self.data_dir) / "validation.jsonl")


def pool_info(sources: dict[str, str]) -> tuple[dict, str]:
    """Per-source ``{path, n_examples, sha256}`` and a fingerprint of the whole pool."""
    info = {}
    for name in sorted(sources):
        path = sources[name]
        with open(path) as f:
            n = sum(1 for line in f if line.strip())
        info[name] = {"path": str(path), "n_examples": n, "sha256": file_sha256(path)}
    fingerprint = config_hash({k: v["sha256"] for k, v in info.items()})
    return info, fingerprint


def validate_weights(weights: dict[str, float], sources: dict | None = None, where: str = "") -> None:
    if not weights:
        raise DataError(f"{where}weights are empty")
    vals = list(weights.values())
    if any(not isinstance(v, (int, float)) or not math.isfinite(v) for v in vals):
        raise DataError(f"{where}weights contain NaN, inf or non-numbers: {weights}")
    if any(v < 0 for v in vals):
        raise DataError(f"{where}weights contain negative values: {weights}")
    if abs(sum(vals) - 1.0) > 1e-6:
        raise DataError(f"{where}weights sum to {sum(vals):.8f}, not 1 (tolerance 1e-6)")
    if sources is not None:
        unknown = sorted(set(weights) - set(sources))
        if unknown:
            raise DataError(f"{where}weights name sources not in the pool: {unknown}")


def write_selection(
    inputs: MethodInputs,
    method: str,
    *,
    weights: dict[str, float] | None = None,
    examples: list[dict] | None = None,
    config: dict | None = None,
    wall_time_s: float,
    tokens: int,
    extra: dict | None = None,
) -> Path:
    """Validate and atomically write ``out_dir/selection.json``; returns its path."""
    if (weights is None) == (examples is None):
        raise ValueError("give exactly one of weights= or examples=")
    sources = inputs.sources
    info, fingerprint = pool_info(sources)
    sel: dict[str, Any] = {"method": method, "kind": "weights" if weights is not None else "examples"}
    if weights is not None:
        weights = {k: float(weights[k]) for k in sorted(weights)}
        validate_weights(weights, sources, where=f"{method}: ")
        sel["weights"] = weights
    else:
        examples = [{"source": e["source"], "id": str(e["id"])} for e in examples]
        unknown = sorted({e["source"] for e in examples} - set(sources))
        if unknown:
            raise DataError(f"{method}: examples name sources not in the pool: {unknown}")
        sel["examples"] = examples
    cfg = config or {}
    sel.update(
        budget=inputs.budget,
        seed=inputs.seed,
        sources=info,
        pool_fingerprint=fingerprint,
        config=cfg,
        config_hash=config_hash(cfg),
        cost={"wall_time_s": round(float(wall_time_s), 3), "tokens": int(tokens)},
        created=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        **(extra or {}),
    )
    path = Path(inputs.out_dir) / SELECTION_FILE
    atomic_write_json(path, sel)
    return path


def read_selection(path: str | os.PathLike) -> dict:
    path = Path(path)
    if not path.exists():
        raise DataError(f"selection '{path}' does not exist")
    try:
        sel = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise DataError(f"selection '{path}' is not valid JSON: {e.msg}") from None
    for key in ("method", "kind", "sources", "pool_fingerprint"):
        if key not in sel:
            raise DataError(f"selection '{path}' lacks the key '{key}'")
    if sel["kind"] == "weights":
        validate_weights(sel.get("weights") or {}, sel["sources"], where=f"selection '{path}': ")
    elif sel["kind"] == "examples":
        if not sel.get("examples"):
            raise DataError(f"selection '{path}' of kind 'examples' has no examples")
    else:
        raise DataError(f"selection '{path}': kind must be 'weights' or 'examples', not '{sel['kind']}'")
    return sel
