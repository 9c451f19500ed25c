"""The method registry and the ``select`` command: any registered method -> ``selection.json``.

    python -m scalebio select --method less --data DIR --model DIR --out DIR --budget 1000 --options '{...}'
    python -m scalebio select --list

A method is a module with ``select(inputs: MethodInputs) -> Path`` (writes ``inputs.out_dir/selection.json``
through ``scalebio.common.selection.write_selection``) and ``Options``, its typed options class. Methods are
found through the ``scalebio.methods`` entry-point group (``pyproject.toml`` registers ScaleBiO and the
baselines; a package of yours can register more the same way), or, without installing anything, through
``methods.<name>.module: "package.module"`` in the workflow config (``--module`` here). This module names no
method itself, so ``scalebio`` never imports ``baselines``.
"""

from __future__ import annotations

import argparse
import importlib
from functools import cache
from importlib.metadata import entry_points
from pathlib import Path
from types import ModuleType

from scalebio.common.config import from_dict, parse_json_object
from scalebio.common.runtime import ConfigError, check_seed, is_main, main_guard
from scalebio.common.selection import SELECTION_FILE, MethodInputs, pool_info

GROUP = "scalebio.methods"
EVAL_GROUP = "scalebio.evaluations"
"""Evaluations: modules with ``main()`` (the ``python -m`` entry the workflow runs) and ``Options``."""


@cache
def registered(group: str = GROUP) -> dict[str, str]:
    """``{name: "package.module"}`` from an entry-point group (methods by default)."""
    return {ep.name: ep.value.partition(":")[0] for ep in entry_points(group=group)}


def evaluation_options(name: str):
    """The typed options class of evaluation ``name``."""
    target = registered(EVAL_GROUP).get(name)
    if target is None:
        raise ConfigError(f"evaluation '{name}' is not registered; known: {sorted(registered(EVAL_GROUP))}")
    return importlib.import_module(target).Options


def method_module(name: str, module: str | None = None) -> ModuleType:
    """Import the module of method ``name`` (``module`` overrides the registry: ``pkg.mod`` or ``pkg.mod:select``)."""
    target = (module or "").partition(":")[0] or registered().get(name)
    if target is None:
        known = sorted(registered()) or "none: the suite is not installed (run `make setup`)"
        raise ConfigError(
            f"method '{name}' is not registered (known: {known}); register it under the '{GROUP}' entry points "
            f"of your package, or set methods.{name}.module: 'package.module' in the config"
        )
    try:
        mod = importlib.import_module(target)
    except ModuleNotFoundError as e:
        raise ConfigError(f"method '{name}': cannot import '{target}' ({e})") from e
    for attr in ("select", "Options"):
        if not hasattr(mod, attr):
            raise ConfigError(
                f"method '{name}': module '{target}' has no '{attr}' (a method module needs select and Options)"
            )
    return mod


def check_options(name: str, options: dict, module: str | None = None, prefix: str | None = None):
    """Build the method's typed options from ``options`` (raises a ConfigError naming the bad key)."""
    return from_dict(method_module(name, module).Options, options, prefix=prefix or f"methods.{name}.")


def check_budget(inputs: MethodInputs) -> None:
    """N must fit in the pool: a larger N makes the SFT set repeat examples, allowed only when asked for."""
    info, _ = pool_info(inputs.sources)
    size = sum(v["n_examples"] for v in info.values())
    if inputs.budget > size and not inputs.allow_repeats:
        raise ConfigError(
            f"budget {inputs.budget} is larger than the pool ({size} examples in {inputs.data_dir}/sources); lower "
            "the experiment's budget, add data, or set experiments.<name>.allow_repeats: true to repeat examples"
        )


def run_method(inputs: MethodInputs, name: str, module: str | None = None) -> Path:
    """Run method ``name`` on ``inputs``; returns the path of the ``selection.json`` it wrote."""
    path = Path(method_module(name, module).select(inputs))
    # Under a launcher only rank 0 writes (after the others returned), so only rank 0 can check the file.
    if path != Path(inputs.out_dir) / SELECTION_FILE or (is_main() and not path.exists()):
        raise ConfigError(f"method '{name}' did not write {Path(inputs.out_dir) / SELECTION_FILE}")
    return path


@main_guard
def main(argv=None, prog: str = "python -m scalebio select") -> None:
    ap = argparse.ArgumentParser(prog=prog, description="Run one data-selection method; writes OUT/selection.json.")
    ap.add_argument("--list", action="store_true", help="print the registered methods and exit")
    ap.add_argument("--method", help="a registered method name")
    ap.add_argument("--module", default=None, help="package.module of a method that is not registered")
    ap.add_argument("--data", help="data folder (sources/*.jsonl, validation.jsonl)")
    ap.add_argument("--model", help="base model folder")
    ap.add_argument("--out", help="run folder")
    ap.add_argument("--budget", type=int, help="N training examples downstream")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--options", default="{}", help="method options as a JSON object")
    ap.add_argument("--allow-repeats", action="store_true", help="allow a budget larger than the pool")
    ap.add_argument("--local_rank", "--local-rank", type=int, default=None, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    check_seed(a.seed)
    if a.list:
        print("\n".join(f"{n}\t{m}" for n, m in sorted(registered().items())))
        return
    missing = [f"--{k}" for k in ("method", "data", "model", "out", "budget") if getattr(a, k) is None]
    if missing:
        raise ConfigError(f"select needs {', '.join(missing)}")
    if a.budget <= 0:
        raise ConfigError(f"budget must be positive, got {a.budget}")
    options = parse_json_object(a.options)
    inputs = MethodInputs(a.data, a.model, a.out, a.budget, a.seed, options, allow_repeats=a.allow_repeats)
    check_budget(inputs)  # also fails early, naming the folder, if there are no sources
    check_options(a.method, options, a.module)  # every option error before any work
    Path(a.out).mkdir(parents=True, exist_ok=True)
    run_method(inputs, a.method, a.module)


if __name__ == "__main__":
    main()
