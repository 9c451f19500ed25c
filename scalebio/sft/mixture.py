"""Build the SFT training set from any method's ``selection.json`` (METHOD.md §10, step 2).

    python -m scalebio sft-set --selection results/ci/denoise/tiny/uniform/selection.json \\
        --data results/ci/denoise/data --out results/ci/denoise/tiny/uniform/sft_data

N (the budget) is the selection's own ``budget``: it is set once, when the method runs.

- ``kind: weights``: n_k = N * p_k per source with largest-remainder rounding (sizes sum to N
  exactly; the official code truncates with ``int`` and tops up with duplicates), drawn without
  replacement with a fixed seed. A source asked for more than it holds is capped and its shortfall
  goes to the sources that still have room, proportionally to their weights. Only when every
  source with positive weight is exhausted are examples repeated (logged as duplicates).
- ``kind: examples``: exactly the listed ``{source, id}`` records, in any order.
- The validation set is appended once (default, as in the paper, for every method alike), then
  the whole set is shuffled with the seed.

Writes ``OUT/train.jsonl`` (each record keeps its fields plus ``source`` and ``id``) and
``OUT/manifest.json`` (counts per source, seed, input hashes, the selection it came from, shortfalls).
Every check runs before anything is written, so bad input leaves no files.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import random
from pathlib import Path

from scalebio.common.data import list_sources, read_jsonl
from scalebio.common.registry import registered
from scalebio.common.runtime import (
    DataError,
    atomic_write_json,
    check_seed,
    config_hash,
    file_sha256,
    main_guard,
    setup_logging,
    write_jsonl,
)
from scalebio.common.selection import pool_info, read_selection

log = logging.getLogger(__name__)

TRAIN_FILE = "train.jsonl"
MANIFEST_FILE = "manifest.json"
VALIDATION_SOURCE = "validation"
"""``source`` value of the appended validation records (a pool source may not use this name)."""


def largest_remainder(weights: dict[str, float], total: int) -> dict[str, int]:
    """Integer sizes proportional to ``weights`` that sum to ``total`` (Hamilton's method).

    Ties in the fractional parts go to the larger weight, then to the name, so the result is
    deterministic.
    """
    wsum = sum(weights.values())
    if total <= 0 or wsum <= 0:
        return {k: 0 for k in weights}
    raw = {k: total * w / wsum for k, w in weights.items()}
    counts = {k: math.floor(v + 1e-9) for k, v in raw.items()}
    left = total - sum(counts.values())
    order = sorted(weights, key=lambda k: (-(raw[k] - counts[k]), -weights[k], k))
    for k in order[:left]:
        counts[k] += 1
    return counts


def plan_counts(weights: dict[str, float], sizes: dict[str, int], budget: int) -> tuple[dict, dict, dict]:
    """Per-source counts for a weights selection.

    Returns ``(counts, shortfalls, repeats)``: ``shortfalls[k]`` is how many of source k's share
    did not fit and were moved elsewhere; ``repeats[k]`` is how many of ``counts[k]`` are
    duplicates (non-zero only when all positive-weight sources are exhausted).
    """
    counts = largest_remainder(weights, budget)
    shortfalls: dict[str, int] = {}
    for _ in range(len(weights) + 1):
        over = {k: counts[k] - sizes[k] for k in counts if counts[k] > sizes[k]}
        if not over:
            break
        for k, n in over.items():
            shortfalls[k] = shortfalls.get(k, 0) + n
        excess = sum(over.values())
        counts = {k: min(counts[k], sizes[k]) for k in counts}
        room = {k: w for k, w in weights.items() if w > 0 and counts[k] < sizes[k]}
        if not room:
            break
        for k, extra in largest_remainder(room, excess).items():
            counts[k] += extra
    repeats: dict[str, int] = {}
    missing = budget - sum(counts.values())
    if missing > 0:
        # Every positive-weight source is used in full: repeat them, again in proportion to p.
        positive = {k: w for k, w in weights.items() if w > 0}
        for k, extra in largest_remainder(positive, missing).items():
            if extra:
                counts[k] += extra
                repeats[k] = extra
    return counts, shortfalls, repeats


def draw(records: list[dict], n: int, rng: random.Random) -> list[dict]:
    """``n`` records: a seeded permutation, cycled (re-shuffled each pass) only if ``n`` > len."""
    out: list[dict] = []
    while len(out) < n:
        order = list(range(len(records)))
        rng.shuffle(order)
        out += [records[i] for i in order[: n - len(out)]]
    return out


def _tag(record: dict, source: str) -> dict:
    row = dict(record)
    if "source" in row and row["source"] != source:
        row["original_source"] = row["source"]  # keep a dataset's own field rather than lose it
    row["source"] = source
    return row


def check_pool(sel: dict, selection_path: Path, data_dir: Path) -> tuple[dict, dict, str]:
    """The data folder's sources, their info and fingerprint; the selection must have been made on this pool."""
    sources = list_sources(data_dir)
    info, fingerprint = pool_info(sources)
    if sel["pool_fingerprint"] != fingerprint:
        changed = sorted(
            k
            for k in set(info) | set(sel["sources"])
            if info.get(k, {}).get("sha256") != sel["sources"].get(k, {}).get("sha256")
        )
        raise DataError(
            f"selection '{selection_path}' was made on a different pool (fingerprint {sel['pool_fingerprint']}) "
            f"than the data folder '{data_dir}' (fingerprint {fingerprint}); differing sources: {changed}. "
            "Re-run the selection on this data folder."
        )
    return sources, info, fingerprint


def rows_from_weights(sel: dict, pool: dict[str, list[dict]], budget: int, seed: int, where: str):
    """N records drawn by the weights: (rows, counts, shortfalls, repeats)."""
    unknown = sorted(set(sel["weights"]) - set(pool))
    if unknown:
        raise DataError(f"selection '{where}': weights name sources not in the data folder: {unknown}")
    weights = {k: float(sel["weights"].get(k, 0.0)) for k in sorted(pool)}
    counts, shortfalls, repeats = plan_counts(weights, {k: len(v) for k, v in pool.items()}, budget)
    rows = []
    for name in sorted(pool):
        # One generator per source (seeded by the name too), so a source's draw does not
        # depend on which other sources exist or how many examples they gave.
        rng = random.Random(f"{seed}:{name}")
        rows += [_tag(r, name) for r in draw(pool[name], counts[name], rng)]
    return rows, counts, shortfalls, repeats


def rows_from_examples(sel: dict, pool: dict[str, list[dict]], budget: int, where: str):
    """Exactly the listed records: (rows, counts, {}, repeats)."""
    by_id = {name: {r["id"]: r for r in recs} for name, recs in pool.items()}
    rows, counts = [], dict.fromkeys(sorted(pool), 0)
    for i, ex in enumerate(sel["examples"]):
        name, rid = ex.get("source"), str(ex.get("id"))
        if name not in by_id:
            raise DataError(f"selection '{where}': examples[{i}] names source '{name}', not in the pool")
        if rid not in by_id[name]:
            raise DataError(f"selection '{where}': examples[{i}] names id '{rid}', not in source '{name}'")
        rows.append(_tag(by_id[name][rid], name))
        counts[name] += 1
    keys = [(r["source"], r["id"]) for r in rows]
    repeats = {"_total": len(keys) - len(set(keys))} if len(set(keys)) != len(keys) else {}
    if len(rows) != budget:
        log.warning("selection lists %d examples, budget is %d: using the %d listed", len(rows), budget, len(rows))
    return rows, counts, {}, repeats


def build_sft_set(
    selection_path: str | os.PathLike,
    data_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    seed: int = 0,
    append_validation: bool = True,
) -> dict:
    """Build ``out_dir/train.jsonl`` + ``manifest.json`` from a selection; returns the manifest."""
    selection_path, data_dir, out_dir = Path(selection_path), Path(data_dir), Path(out_dir)
    sel = read_selection(selection_path, known_methods=registered())
    sources, info, fingerprint = check_pool(sel, selection_path, data_dir)
    budget = sel.get("budget")
    if not isinstance(budget, int) or isinstance(budget, bool) or budget <= 0:
        raise DataError(f"selection '{selection_path}': budget must be a positive integer, got {budget!r}")

    pool = {name: read_jsonl(path) for name, path in sources.items()}
    if sel["kind"] == "weights":
        rows, counts, shortfalls, repeats = rows_from_weights(sel, pool, budget, seed, str(selection_path))
    else:
        rows, counts, shortfalls, repeats = rows_from_examples(sel, pool, budget, str(selection_path))
    for k, n in shortfalls.items():
        log.warning(
            "source '%s' holds %d examples, fewer than its share; shortfall %d redistributed", k, len(pool[k]), n
        )
    if repeats and not sel.get("allow_repeats", False):
        raise DataError(
            f"selection '{selection_path}': budget {budget} needs {sum(repeats.values())} repeated examples, and the "
            "selection does not allow repeats; lower the budget or set experiments.<name>.allow_repeats: true"
        )
    for k, n in repeats.items():
        log.warning("source '%s': %d duplicate examples (allow_repeats is set)", k, n)

    n_val = 0
    val_path = data_dir / "validation.jsonl"
    if append_validation:
        val = read_jsonl(val_path)
        if not val:
            raise DataError(f"validation set '{val_path}' is empty; pass --no-validation to build without it")
        rows += [_tag(r, VALIDATION_SOURCE) for r in val]
        n_val = len(val)
    random.Random(seed).shuffle(rows)

    inputs = {
        "selection_sha256": file_sha256(selection_path),
        "pool_fingerprint": fingerprint,
        "validation_sha256": file_sha256(val_path) if append_validation else None,
        "budget": budget,
        "seed": seed,
        "append_validation": append_validation,
    }
    manifest = {
        "n_examples": len(rows),
        "budget": budget,
        "seed": seed,
        "counts": counts,
        "validation": {"appended": append_validation, "n_examples": n_val, "path": str(val_path)},
        "shortfalls": shortfalls,
        "duplicates": repeats,
        "selection": {
            "path": str(selection_path),
            "method": sel["method"],
            "kind": sel["kind"],
            "config_hash": sel.get("config_hash"),
            "weights": sel.get("weights"),
        },
        "pool": {"fingerprint": fingerprint, "sources": info},
        "inputs": inputs,
        "inputs_hash": config_hash(inputs),
    }
    _write_pair(out_dir, rows, manifest)
    log.info("wrote %d examples to %s (%s)", len(rows), out_dir / TRAIN_FILE, counts)
    return manifest


def _write_pair(out_dir: Path, rows: list[dict], manifest: dict) -> None:
    """Write both files atomically, the manifest last: it marks completion."""
    write_jsonl(out_dir / TRAIN_FILE, rows)
    manifest["train_sha256"] = file_sha256(out_dir / TRAIN_FILE)
    atomic_write_json(out_dir / MANIFEST_FILE, manifest)


@main_guard
def main(argv=None) -> None:
    ap = argparse.ArgumentParser(prog="python -m scalebio sft-set", description=__doc__.split("\n\n")[0])
    ap.add_argument("--selection", required=True, help="selection.json written by any method")
    ap.add_argument("--data", required=True, help="data folder the selection was made on")
    ap.add_argument("--out", required=True, help="folder for train.jsonl and manifest.json")
    ap.add_argument("--seed", type=int, default=0, help="sampling and shuffling seed")
    ap.add_argument("--no-validation", action="store_true", help="do not append the validation set")
    a = ap.parse_args(argv)
    check_seed(a.seed)
    setup_logging(None, name=__name__)
    build_sft_set(a.selection, a.data, a.out, seed=a.seed, append_validation=not a.no_validation)


if __name__ == "__main__":
    main()
