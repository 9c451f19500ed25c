"""The one artifact every data-selection method writes: ``selection.json``.

``kind: "weights"`` carries a mixture ``{source: p}`` (the SFT builder samples N examples by it);
``kind: "examples"`` carries the chosen ``[{"source", "id"}]``. Both carry the method, budget,
seed, the resolved config, the pool fingerprint (so a selection cannot be applied to another pool)
and the tokens processed to make it. The file holds only what the same config and seed reproduce
byte for byte; the wall time and where the run happened go next to it, in ``run.json``.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scalebio.common.data import list_sources
from scalebio.common.runtime import DataError, atomic_write_json, config_hash, file_sha256, run_environment

SELECTION_FILE = "selection.json"
RUN_FILE = "run.json"


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
    allow_repeats: bool = False
    """Allow a budget larger than the pool (the SFT set then repeats examples); recorded in the selection."""

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
        with open(path, "rb") as f:
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
        allow_repeats=inputs.allow_repeats,
        seed=inputs.seed,
        sources=info,
        pool_fingerprint=fingerprint,
        config=cfg,
        config_hash=config_hash(cfg),
        cost={"tokens": int(tokens)},
        **(extra or {}),
    )
    out = Path(inputs.out_dir)
    atomic_write_json(out / RUN_FILE, {"wall_time_s": round(float(wall_time_s), 3), **run_environment()})
    atomic_write_json(out / SELECTION_FILE, sel)  # last: its existence marks the run as done
    return out / SELECTION_FILE


def read_selection(path: str | os.PathLike, known_methods=None) -> dict:
    """A ``selection.json``, checked: required keys, kind and fields consistent, weights valid, examples well-formed.

    ``known_methods``: if given, ``method`` must be one of them or the name of the run folder that holds the file
    (``.../<method>/selection.json``), so a hand-edited or misplaced selection is not taken for another method's.
    """
    path = Path(path)
    if not path.exists():
        raise DataError(f"selection '{path}' does not exist")
    try:
        sel = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise DataError(f"selection '{path}' is not valid JSON: {e.msg}") from None
    where = f"selection '{path}'"
    for key in ("method", "kind", "sources", "pool_fingerprint", "budget"):
        if key not in sel:
            raise DataError(f"{where} lacks the key '{key}'")
    if known_methods is not None and sel["method"] not in {*known_methods, path.parent.name}:
        raise DataError(
            f"{where}: method '{sel['method']}' is neither registered nor the run folder's name "
            f"'{path.parent.name}'; re-run the method instead of editing the file"
        )
    budget = sel["budget"]
    if not isinstance(budget, int) or isinstance(budget, bool) or budget < 0:  # 0: a reweighting-only run
        raise DataError(f"{where}: budget must be a non-negative integer, got {budget!r}")
    if sel["kind"] == "weights":
        if "examples" in sel:
            raise DataError(f"{where}: kind 'weights' must not list examples")
        validate_weights(sel.get("weights") or {}, sel["sources"], where=f"{where}: ")
    elif sel["kind"] == "examples":
        if "weights" in sel:
            raise DataError(f"{where}: kind 'examples' must not carry weights")
        examples = sel.get("examples")
        if not examples or not isinstance(examples, list):
            raise DataError(f"{where}: kind 'examples' has no examples")
        bad = [i for i, e in enumerate(examples) if not (isinstance(e, dict) and {"source", "id"} <= set(e))]
        if bad:
            raise DataError(f"{where}: examples[{bad[0]}] must be an object with 'source' and 'id'")
    else:
        raise DataError(f"{where}: kind must be 'weights' or 'examples', not '{sel['kind']}'")
    return sel
