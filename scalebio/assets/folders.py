"""Materialise an experiment's data folder from its ``data:`` config.

Two kinds of spec:

- embedded: ``{builder: denoise|math|multilingual, options: {...}}`` (see ``scalebio.assets.embedded``);
- files:    ``{sources: {name: PATH_OR_HUB_ID}, validation: PATH_OR_HUB_ID, test: PATH_OR_HUB_ID}``
  where each entry is a local JSONL/JSON file, or (only with ``hub: true``) a Hugging Face dataset
  id, optionally ``id@split`` (default split ``train``).

The result is always ``sources/<name>.jsonl``, ``validation.jsonl``, ``test.jsonl``, ``card.json``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from scalebio.assets import embedded
from scalebio.common.data import read_jsonl
from scalebio.common.runtime import ConfigError, DataError, atomic_dir, hub_enabled, main_guard, write_jsonl


def _load(entry: str, what: str) -> list[dict]:
    p = Path(entry)
    if p.exists():
        if p.suffix == ".json":
            rows = json.loads(p.read_text())
            if not isinstance(rows, list):
                raise DataError(f"{what} '{p}': a .json file must hold a list of records")
            return [dict(r, id=str(r.get("id", i))) for i, r in enumerate(rows)]
        return read_jsonl(p)
    if not hub_enabled():
        raise DataError(
            f"{what} '{entry}' is not a local file and the hub is off; set `hub: true` in the config "
            "(on a machine with hub access) or point it at a local JSONL file"
        )
    import datasets

    name, _, split = entry.partition("@")
    ds = datasets.load_dataset(name, split=split or "train")
    return [dict(r, id=str(r.get("id", i))) for i, r in enumerate(ds)]


def build_files(spec: dict, out_dir: str | Path, seed: int = 0) -> Path:
    for key in ("sources", "validation"):
        if key not in spec:
            raise ConfigError(f"data: a files spec needs '{key}' (got keys {sorted(spec)})")
    with atomic_dir(out_dir) as tmp:
        counts = {}
        for name in sorted(spec["sources"]):
            rows = _load(spec["sources"][name], f"source '{name}'")
            if not rows:
                raise DataError(f"source '{name}' ({spec['sources'][name]}) is empty")
            write_jsonl(tmp / "sources" / f"{name}.jsonl", rows)
            counts[name] = len(rows)
        write_jsonl(tmp / "validation.jsonl", _load(spec["validation"], "validation set"))
        if spec.get("test"):
            write_jsonl(tmp / "test.jsonl", _load(spec["test"], "test set"))
        (tmp / "card.json").write_text(json.dumps({"kind": "files", "spec": spec, "sources": counts}, indent=2))
    return Path(out_dir)


def build(spec: dict, out_dir: str | Path, seed: int = 0) -> Path:
    if "builder" in spec:
        return embedded.build(spec["builder"], spec.get("options", {}), out_dir, seed)
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
