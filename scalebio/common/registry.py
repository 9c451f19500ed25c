"""The method registry and the ``select`` command: any registered method -> ``selection.json``.

    python -m scalebio select --method less --data DIR --model DIR --out DIR --budget 1000 --options '{...}'
    python -m scalebio select --list

A method is a module with ``INFO`` (its ``MethodInfo``: what it is), ``Options`` (its typed options class) and
``select(inputs: MethodInputs, opts: Options) -> Path`` (writes ``inputs.out_dir/selection.json`` through
``scalebio.common.selection.write_selection``). Methods are found through the ``scalebio.methods`` entry-point group
(``pyproject.toml`` registers ScaleBiO and the baselines; a package of yours can register more the same way), or,
without installing anything, through ``methods.<name>.module: "package.module"`` in the workflow config
(``--module`` here; such a name is a *variant* of its module). This module names no method itself, so ``scalebio``
never imports ``baselines``; every stage that treats methods differently (launch, claims, tables, paper tables,
figures) reads the ``MethodInfo`` through ``method_info``.

``run_method`` is the one boundary of a select process: it checks N against the pool, builds the typed options
once and hands them to ``select``.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
from dataclasses import dataclass
from functools import cache
from importlib.metadata import entry_points
from pathlib import Path
from types import ModuleType
from typing import Literal

from scalebio.common.config import from_dict, parse_json_object
from scalebio.common.runtime import ConfigError, check_seed, is_main, main_guard
from scalebio.common.selection import SELECTION_FILE, MethodInputs, pool_info


@dataclass(frozen=True)
class MethodInfo:
    """What a method is, declared by its module as ``INFO`` and read everywhere a stage treats methods differently."""

    name: str
    """The name the module is registered under (its entry point; an alias registered to the same module, like
    RHO-LOSS's ``reference``, shares the INFO) and writes into ``selection.json``."""
    display: str
    """Its name in prose and paper tables ("ScaleBiO", "RHO-LOSS")."""
    role: Literal["method", "baseline", "reference_point"]
    """``method``: the paper's method, what the claims are about; ``baseline``: compared with it;
    ``reference_point``: knows the answer by construction (the oracles), shown last, never a comparator."""
    order: int
    """Its place in tables and paper tables (the paper's order: uniform, LESS, RHO-LOSS, DoReMi, ScaleBiO, oracles)."""
    in_paper: bool = False
    """The paper reports it: a baseline of the paper's tables, the verdicts and paper_vs_ours."""
    anchor: Literal["control", "ceiling"] | None = None
    """``control``: every other method's difference is measured against it (uniform); ``ceiling``: the top of the
    "share of the uniform→ceiling gap closed" (the source-level oracle)."""
    multi_process: bool = False
    """Its select job runs one process per slot under torchrun (ScaleBiO's trainer); otherwise one process (N copies
    of a single-process program would each write selection.json)."""
    trains: bool = False
    """Its selection trains or fine-tunes a model (LESS warm-up, RHO-LOSS holdout, DoReMi, ScaleBiO's u and w)."""
    memory: Literal["bilevel", "lora_features", "holdout_sft"] | None = None
    """What its select job holds on a GPU, for the memory plan (``scalebio.pipeline.memory``): ``bilevel`` two trained
    copies of the model (ScaleBiO's u and w, FSDP-sharded), ``lora_features`` the frozen model, LoRA and per-example
    gradients (LESS), ``holdout_sft`` a full fine-tune of the model, then two models scoring (RHO-LOSS); None: not
    planned (no model on a GPU, or a small proxy)."""
    colour: str = "#393b79"
    """Its colour in every figure."""
    variant_colours: tuple[str, ...] = ()
    """Colours of its variants (names reached through ``methods.<name>.module``), in the order the report meets them."""
    variant_of: str | None = None
    """Set by ``method_info`` for a variant: the registered name of its module. A variant shows its own name, keeps
    its module's role for launching and colouring, and is never the paper's method or a comparator in the claims."""


GENERIC_ORDER = 1000
"""Order of a method whose module declares no INFO (after every declared one)."""


def default_info(name: str) -> MethodInfo:
    """The description of a method module without ``INFO``: a baseline, shown under its own name, after the others."""
    return MethodInfo(name=name, display=name, role="baseline", order=GENERIC_ORDER)


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


@cache
def method_info(name: str, module: str | None = None) -> MethodInfo:
    """What method ``name`` is: its module's ``INFO`` (``default_info`` if it declares none). A name that is not
    registered and reaches its module through ``module`` is a variant: its own display name, ``variant_of`` set."""
    mod = method_module(name, module)
    info = getattr(mod, "INFO", None) or default_info(name)
    if name in registered() and registered()[name] == mod.__name__:
        return info
    return dataclasses.replace(info, display=name, variant_of=info.name)


def registered_name(selection_method: str, run_name: str) -> str | None:
    """The module a run's ``selection.json`` was written by, as ``method_info``'s ``module`` argument: None when the
    run's own name is registered (its entry point decides), else the module registered as the selection's method."""
    if run_name in registered():
        return None
    return registered().get(selection_method)


def check_options(name: str, options: dict, module: str | None = None, prefix: str | None = None):
    """Build the method's typed options from ``options`` (raises a ConfigError naming the bad key)."""
    return from_dict(method_module(name, module).Options, options, prefix=prefix or f"methods.{name}.")


def check_budget(inputs: MethodInputs) -> None:
    """N must be positive and fit in the pool: a larger N makes the SFT set repeat examples, allowed only when
    asked for (``run_method`` checks it: one boundary per select process)."""
    if inputs.budget <= 0:
        raise ConfigError(f"budget must be positive, got {inputs.budget}")
    info, _ = pool_info(inputs.sources)
    size = sum(v["n_examples"] for v in info.values())
    if inputs.budget > size and not inputs.allow_repeats:
        raise ConfigError(
            f"budget {inputs.budget} is larger than the pool ({size} examples in {inputs.data_dir}/sources); lower "
            "the experiment's budget, add data, or set experiments.<name>.allow_repeats: true to repeat examples"
        )


def run_method(inputs: MethodInputs, name: str, module: str | None = None, prefix: str | None = None) -> Path:
    """Run method ``name`` on ``inputs``; returns the path of the ``selection.json`` it wrote.

    The boundary of a select process: N is checked against the pool (``check_budget``; also fails early, naming the
    folder, if there are no sources), the typed options are built once (every option error before any work) and
    handed to the method's ``select``."""
    check_budget(inputs)
    mod = method_module(name, module)
    opts = from_dict(mod.Options, inputs.options, prefix=prefix or f"methods.{name}.")
    Path(inputs.out_dir).mkdir(parents=True, exist_ok=True)
    path = Path(mod.select(inputs, opts))
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
        for n, m in sorted(registered().items()):
            i = method_info(n)
            launch = "multi-process" if i.multi_process else "one process"
            print(f"{n}\t{m}\t{i.display}\t{i.role}\t{launch}\t{'trains' if i.trains else 'no training'}")
        return
    missing = [f"--{k}" for k in ("method", "data", "model", "out", "budget") if getattr(a, k) is None]
    if missing:
        raise ConfigError(f"select needs {', '.join(missing)}")
    options = parse_json_object(a.options)
    inputs = MethodInputs(a.data, a.model, a.out, a.budget, a.seed, options, allow_repeats=a.allow_repeats)
    run_method(inputs, a.method, a.module)


if __name__ == "__main__":
    main()
