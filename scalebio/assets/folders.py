"""Materialise an experiment's data folder from its ``data:`` config.

Two kinds of spec:

- embedded: ``{builder: denoise|math|multilingual, options: {...}}`` (see ``scalebio.assets.embedded``);
- files:    ``{sources: {name: ENTRY}, validation: ENTRY, test: ENTRY}`` where an entry is
  - a local JSONL file, or a JSON file holding a list of records (the official repository's format);
  - a Hugging Face dataset: ``id`` or ``id@split`` (default split ``train``, slices like ``train[:3000]``
    allowed), or a mapping ``{hub: id, split: ..., revision: COMMIT}`` that pins the dataset's revision.
    An ``id`` that is a local folder is read as a dataset in hub format (a downloaded snapshot, parquet or
    JSON files under ``data/``) with the same ``datasets.load_dataset`` call; other ids need ``hub: true``.

The result is always ``sources/<name>.jsonl``, ``validation.jsonl``, ``test.jsonl``, ``card.json``; the card
records every entry, its row count and the sha256 of the file written from it (and the hub revision used).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from scalebio.assets import embedded
from scalebio.common.data import read_jsonl
from scalebio.common.runtime import (
    ConfigError,
    DataError,
    atomic_dir,
    file_sha256,
    hub_enabled,
    main_guard,
    write_jsonl,
)


def _hub_entry(entry: str | dict, what: str) -> tuple[str, str, str | None]:
    """(dataset id or folder, split, revision) of a hub entry."""
    if isinstance(entry, dict):
        unknown = sorted(set(entry) - {"hub", "split", "revision"})
        if "hub" not in entry or unknown:
            raise ConfigError(
                f"{what}: a mapping entry needs 'hub' and may have 'split', 'revision' (got {sorted(entry)})"
            )
        return entry["hub"], entry.get("split", "train"), entry.get("revision")
    name, _, split = entry.partition("@")
    return name, split or "train", None


def _load(entry: str | dict, what: str) -> tuple[list[dict], dict]:
    """Rows of one entry and what the card records about where they came from."""
    p = Path(entry) if isinstance(entry, str) else None
    if p is not None and p.is_file():
        if p.suffix == ".json":
            rows = json.loads(p.read_text())
            if not isinstance(rows, list):
                raise DataError(f"{what} '{p}': a .json file must hold a list of records")
            rows = [dict(r, id=str(r.get("id", i))) for i, r in enumerate(rows)]
        else:
            rows = read_jsonl(p)
        return rows, {"file": str(p), "file_sha256": file_sha256(p)}
    if p is not None and p.suffix in (".json", ".jsonl"):
        raise DataError(f"{what} '{entry}' does not exist")
    name, split, revision = _hub_entry(entry, what)
    if not Path(name).is_dir() and not hub_enabled():
        raise DataError(
            f"{what} '{name}' is not a local file and the hub is off; set `hub: true` in the config "
            "(on a machine with hub access) or point it at a local file or hub-format folder"
        )
    import datasets

    ds = datasets.load_dataset(name, split=split, revision=revision)
    rows = [dict(r, id=str(r.get("id", i))) for i, r in enumerate(ds)]
    info = {"dataset": name, "split": split, "revision": revision}
    if not Path(name).is_dir():
        from huggingface_hub import HfApi

        # The commit actually used, so an unpinned run can be pinned afterwards (revision: <this>).
        info["resolved_revision"] = HfApi().dataset_info(name, revision=revision).sha
    return rows, info


def build_files(spec: dict, out_dir: str | Path, seed: int = 0) -> Path:
    for key in ("sources", "validation"):
        if key not in spec:
            raise ConfigError(f"data: a files spec needs '{key}' (got keys {sorted(spec)})")
    with atomic_dir(out_dir) as tmp:
        counts, provenance = {}, {}

        def put(entry, what: str, rel: str) -> int:
            rows, info = _load(entry, what)
            if not rows:
                raise DataError(f"{what} ({entry}) is empty")
            write_jsonl(tmp / rel, rows)
            provenance[rel] = {**info, "rows": len(rows), "sha256": file_sha256(tmp / rel)}
            return len(rows)

        for name in sorted(spec["sources"]):
            counts[name] = put(spec["sources"][name], f"source '{name}'", f"sources/{name}.jsonl")
        put(spec["validation"], "validation set", "validation.jsonl")
        heldout = spec.get("heldout", "test")  # one held-out split per folder (embedded.HELDOUT)
        if heldout not in embedded.HELDOUT:
            raise ConfigError(f"data.heldout must be one of {embedded.HELDOUT}, got {heldout!r}")
        if spec.get(heldout):
            put(spec[heldout], f"{heldout} set", f"{heldout}.jsonl")
        elif heldout == "tune":
            raise ConfigError("data.heldout: tune needs a 'tune' entry (the tuning split's file)")
        card = {"kind": "files", "spec": spec, "sources": counts, "files": provenance}
        (tmp / "card.json").write_text(json.dumps(card, indent=2))
    return Path(out_dir)


def build(spec: dict, out_dir: str | Path, seed: int = 0) -> Path:
    if "builder" in spec:
        return embedded.build(spec["builder"], spec.get("options", {}), out_dir, seed, spec.get("heldout", "test"))
    return build_files(spec, out_dir, seed)


@main_guard
def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out_dir")
    ap.add_argument("--spec", required=True, help="the experiment's data: config as JSON")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    build(json.loads(a.spec), a.out_dir, a.seed)


if __name__ == "__main__":
    main()
