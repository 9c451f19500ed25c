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
from scalebio.common.data import read_jsonl, to_messages, write_data_folder
from scalebio.common.paths import check_name
from scalebio.common.runtime import (
    ConfigError,
    DataError,
    check_seed,
    file_sha256,
    hub_enabled,
    main_guard,
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


def entry_problem(entry: str | dict, what: str, hub: bool) -> str | None:
    """Why ``entry`` cannot be read before anything runs (a local file that does not exist, a hub dataset with the hub
    off), or None. The data job and ``check-config`` (``hub``: the config's ``hub:``) ask the same question."""
    p = Path(entry) if isinstance(entry, str) else None
    if p is not None and p.is_file():
        return None
    if p is not None and p.suffix in (".json", ".jsonl"):
        return f"{what}: file '{entry}' does not exist; fix the path"
    name = _hub_entry(entry, what)[0]
    if not Path(name).is_dir() and not hub:
        return (
            f"{what} '{name}' is not a local file and the hub is off; set `hub: true` in the config "
            "(on a machine with hub access) or point it at a local file or hub-format folder"
        )
    return None


def _json_records(p: Path, what: str) -> list[dict]:
    try:
        rows = json.loads(p.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataError(f"{what} '{p}': not a valid UTF-8 JSON file ({e})") from None
    if not isinstance(rows, list):
        raise DataError(f"{what} '{p}': a .json file must hold a list of records")
    bad = next((i for i, r in enumerate(rows) if not isinstance(r, dict)), None)
    if bad is not None:
        raise DataError(f"{p} (record {bad}): must be a JSON object, got {type(rows[bad]).__name__}")
    return [dict(r, id=str(r.get("id", i))) for i, r in enumerate(rows)]


def _load(entry: str | dict, what: str) -> tuple[list[dict], dict, list[str]]:
    """Rows of one entry, what the card records about where they came from, and where each row is (file:line)."""
    problem = entry_problem(entry, what, hub_enabled())
    if problem:
        raise DataError(problem)
    p = Path(entry) if isinstance(entry, str) else None
    if p is not None and p.is_file():
        if p.suffix == ".json":
            rows = _json_records(p, what)
            where = [f"{p} (record {i})" for i in range(len(rows))]
        else:
            lines: list[int] = []
            rows = read_jsonl(p, line_numbers=lines)
            where = [f"{p}:{n}" for n in lines]
        return rows, {"file": str(p), "file_sha256": file_sha256(p)}, where
    name, split, revision = _hub_entry(entry, what)
    import datasets

    ds = datasets.load_dataset(name, split=split, revision=revision)
    rows = [dict(r, id=str(r.get("id", i))) for i, r in enumerate(ds)]
    info = {"dataset": name, "split": split, "revision": revision}
    if not Path(name).is_dir():
        from huggingface_hub import HfApi

        # The commit actually used, so an unpinned run can be pinned afterwards (revision: <this>).
        info["resolved_revision"] = HfApi().dataset_info(name, revision=revision).sha
    return rows, info, [f"{name}@{split} (row {i})" for i in range(len(rows))]


def build_files(spec: dict, out_dir: str | Path, seed: int = 0) -> Path:
    for key in ("sources", "validation"):
        if key not in spec:
            raise ConfigError(f"data: a files spec needs '{key}' (got keys {sorted(spec)})")
    for name in spec["sources"]:  # a name is a file name: checked before anything is written
        check_name(name, "data.sources: source name", ConfigError)
    with write_data_folder(out_dir) as folder:
        counts, provenance = {}, {}

        def put(entry, what: str, rel: str) -> int:
            rows, info, where = _load(entry, what)
            if not rows:
                raise DataError(f"{what} ({entry}) is empty")
            for row, at in zip(rows, where):  # every record is a conversation of strings, or the job stops here
                to_messages(row, f"{at}, id '{row['id']}'")
            name = rel.removeprefix("sources/").removesuffix(".jsonl")
            path = folder.source(name, rows, what) if rel.startswith("sources/") else folder.split(name, rows, what)
            provenance[rel] = {**info, "rows": len(rows), "sha256": file_sha256(path)}
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
        folder.card({"kind": "files", "spec": spec, "sources": counts, "files": provenance})
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
    check_seed(a.seed)
    build(json.loads(a.spec), a.out_dir, a.seed)


if __name__ == "__main__":
    main()
