"""Command line: ``python -m scalebio reweight --config FILE [key=value ...]``.

    python -m scalebio reweight --config run.yaml lr_theta=3e-2 max_steps=100
    python -m scalebio reweight --config run.yaml --dry-run      # print the resolved config, run nothing
    torchrun --nproc_per_node 2 -m scalebio reweight --config run.yaml

The YAML file holds ``data`` (a data folder with ``sources/*.jsonl`` and ``validation.jsonl``),
``model`` (a model folder), ``out`` (the run folder), optionally ``seed`` and ``budget``, and
``options`` (every ScaleBiO option, listed by ``--help``). An override ``key=value`` sets
``options.key`` unless ``key`` is one of the top-level keys; overrides win over the file.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from scalebio.config import apply_overrides, as_dict, describe
from scalebio.runtime import ConfigError, main_guard

TOP_LEVEL = ("data", "model", "out", "seed", "budget", "options")


def _options_help() -> str:
    from scalebio.trainer import ScaleBiOConfig

    lines = ["options (set in the YAML under `options:` or as key=value overrides):"]
    for name, doc, default in describe(ScaleBiOConfig):
        lines.append(f"  {name} (default: {default!r})\n      {doc}")
    return "\n".join(lines)


def load_run_config(path: str | None, overrides: list[str]) -> dict:
    import yaml

    data: dict = {}
    if path is not None:
        p = Path(path)
        if not p.exists():
            raise ConfigError(f"config file '{p}' does not exist")
        data = yaml.safe_load(p.read_text()) or {}
        if not isinstance(data, dict):
            raise ConfigError(f"config file '{p}' must hold a mapping with data/model/out/options")
    unknown = sorted(set(data) - set(TOP_LEVEL))
    if unknown:
        raise ConfigError(f"config file '{path}': unknown top-level key(s) {unknown}; known: {list(TOP_LEVEL)}")
    fixed = [o if o.split("=", 1)[0].split(".")[0] in TOP_LEVEL else f"options.{o}" for o in overrides]
    data = apply_overrides(data, fixed)
    for key in ("data", "model", "out"):
        if not data.get(key):
            raise ConfigError(f"config: '{key}' is required (in the YAML file or as {key}=...)")
    return data


@main_guard
def main(argv=None) -> None:
    ap = argparse.ArgumentParser(
        prog="python -m scalebio",
        description="ScaleBiO: learn per-source data weights by first-order bilevel optimisation.",
    )
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser(
        "reweight",
        help="learn source weights; writes OUT/selection.json",
        description=__doc__,
        epilog=_options_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    r.add_argument("--config", help="YAML file with data, model, out, options")
    r.add_argument("--dry-run", action="store_true", help="print the resolved config and exit")
    r.add_argument("overrides", nargs="*", help="key=value (options.key unless key is data/model/out/seed/budget)")
    a = ap.parse_args(argv)

    from scalebio.method import config_from_inputs, select
    from scalebio.selection import MethodInputs

    data = load_run_config(a.config, a.overrides)
    inputs = MethodInputs(
        data_dir=str(data["data"]),
        model=str(data["model"]),
        out_dir=str(data["out"]),
        budget=int(data.get("budget", 0) or 0),
        seed=int(data.get("seed", 0)),
        options=dict(data.get("options") or {}),
    )
    cfg = config_from_inputs(inputs, prefix="options.")
    if a.dry_run:
        print(json.dumps({k: data[k] for k in ("data", "model", "out")} | {"options": as_dict(cfg)}, indent=2))
        return
    inputs.sources  # noqa: B018  (fails early, naming the folder, if it has no sources)
    path = select(inputs, prefix="options.")
    from scalebio.distributed import Dist, shutdown

    if Dist().is_main:
        print(path)
    shutdown()  # leave the process group cleanly under torchrun / accelerate launch


if __name__ == "__main__":
    main()
