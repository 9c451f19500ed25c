"""``python -m baselines select --method NAME --data DIR --model DIR --out DIR --budget N``."""

from __future__ import annotations

import argparse
from pathlib import Path

from baselines.registry import METHODS, resolve
from scalebio.config import parse_json_object
from scalebio.runtime import ConfigError, main_guard
from scalebio.selection import SELECTION_FILE, MethodInputs


@main_guard
def main(argv=None) -> None:
    ap = argparse.ArgumentParser(prog="python -m baselines", description="Run one data-selection method.")
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("select", help="write OUT/selection.json")
    s.add_argument("--method", required=True, help=f"registered: {sorted(METHODS)}")
    s.add_argument("--module", default=None, help="package.module:function for an unregistered method")
    s.add_argument("--data", required=True, help="data folder (sources/*.jsonl, validation.jsonl)")
    s.add_argument("--model", required=True, help="base model folder")
    s.add_argument("--out", required=True, help="run folder")
    s.add_argument("--budget", type=int, required=True, help="N training examples downstream")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--options", default="{}", help="method options as a JSON object")
    sub.add_parser("list", help="print registered methods")
    a = ap.parse_args(argv)
    if a.cmd == "list":
        print("\n".join(sorted(METHODS)))
        return
    options = parse_json_object(a.options)
    if a.budget <= 0:
        raise ConfigError(f"budget must be positive, got {a.budget}")
    fn = resolve(a.method, a.module)
    inputs = MethodInputs(data_dir=a.data, model=a.model, out_dir=a.out, budget=a.budget, seed=a.seed, options=options)
    inputs.sources  # noqa: B018  (fails early, naming the folder, if there are no sources)
    Path(a.out).mkdir(parents=True, exist_ok=True)
    path = fn(inputs)
    if Path(path) != Path(a.out) / SELECTION_FILE or not Path(path).exists():
        raise ConfigError(f"method '{a.method}' did not write {Path(a.out) / SELECTION_FILE}")


if __name__ == "__main__":
    main()
