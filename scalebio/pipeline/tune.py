"""The tuning protocol: every method's main knob chosen on a small grid, scored on a tuning split — never the test set.

    snakemake --cores all --configfile config/tune.yaml      # results/tune/: every grid point, report/tune.{csv,md}
    python -m scalebio check-config config/tune.yaml           # the expanded config, checked like any other

A config with a ``tune:`` section is expanded (``expand``) into an ordinary workflow config before anything else
reads it, so the tuning runs are the same select → SFT set → fine-tune → evaluate jobs as the results:

- the experiments named in ``tune.experiments`` are copied from the ``tune.base`` config (data, models, budget, SFT
  and evaluation settings, per-experiment method options), with two changes: the data folder is built with
  ``data.options.n_tune`` tuning rows and ``data.heldout: tune``, so it holds ``tune.jsonl`` and **no**
  ``test.jsonl`` (the builders draw the tuning rows after every other row: sources and validation set are the
  base experiment's, byte for byte); every evaluation therefore scores the tuning split;
- each method of ``tune.grid`` that the experiment runs becomes one variant per grid point, ``<method>-t<i>``, with
  the knob (a dotted option path) set to the point's value; ``tune.references`` (e.g. uniform) run unchanged.

``scalebio.report.tune`` then picks, per experiment and method, the point with the best tuning score (its
first evaluation; ties go to the earlier point) and writes ``report/tune.{csv,md}`` and ``report/chosen.yaml``.
The base config pins the chosen values (a test compares them).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path

from scalebio.common.config import load_config_file
from scalebio.common.registry import method_info, registered
from scalebio.common.runtime import ConfigError
from scalebio.pipeline.resolve import method_module_name, method_options

ROOT = Path(__file__).resolve().parents[2]
"""The repository: a relative ``tune.base`` is read from the working directory, else from here."""


@dataclass
class Grid:
    """One method's grid (``tune.grid.<method>``)."""

    knob: str
    """The option the grid varies, as a dotted path into the method's options (``holdout.epochs``)."""
    values: list[float] | dict[str, list[float]]
    """The grid points; a mapping gives each model its own points (keys: names under ``models:``)."""
    drop: list[str] = field(default_factory=list)
    """Options removed from every point (``lr_theta`` when the knob is ``theta_movement``: they exclude each other)."""

    def points(self, model: str) -> list[float]:
        if isinstance(self.values, dict):
            if model not in self.values:
                raise ConfigError(f"tune.grid: knob '{self.knob}' gives no values for model '{model}'")
            return list(self.values[model])
        return list(self.values)


@dataclass
class TuneConfig:
    """The ``tune:`` section of a workflow config."""

    base: str
    """The config whose experiments are tuned (and which pins the chosen values)."""
    experiments: list[str]
    """Experiments of the base config to tune (one model each)."""
    n_tune: dict[str, int]
    """Tuning rows per experiment (``data.options.n_tune``); drawn after every other row of the pool."""
    grid: dict[str, Grid]
    """Per method, its grid."""
    references: list[str] | None = None
    """Methods run unchanged beside the grids (the tuning score of the point of comparison); left out: the control
    each tuned experiment runs (the method whose INFO says ``anchor: control``, uniform)."""
    seeds: list[int] = field(default_factory=lambda: [0])
    """Seeds of every tuning run (the score is their mean)."""


def parse(section: dict) -> TuneConfig:
    """The typed ``tune:`` section; every problem names its key."""
    if not isinstance(section, dict):
        raise ConfigError("tune: must be a mapping (base, experiments, n_tune, grid, references, seeds)")
    known = {"base", "experiments", "n_tune", "grid", "references", "seeds"}
    unknown = sorted(set(section) - known)
    missing = sorted({"base", "experiments", "n_tune", "grid"} - set(section))
    if unknown or missing:
        raise ConfigError(f"tune: unknown key(s) {unknown}, missing key(s) {missing}; keys are {sorted(known)}")
    grids = {}
    for method, g in (section["grid"] or {}).items():
        if not isinstance(g, dict) or not {"knob", "values"} <= set(g) or set(g) - {"knob", "values", "drop"}:
            raise ConfigError(f"tune.grid.{method}: needs 'knob' and 'values' (and may have 'drop'), got {g!r}")
        grids[method] = Grid(g["knob"], g["values"], list(g.get("drop") or []))
    n_tune = section["n_tune"]
    experiments = list(section["experiments"])
    if isinstance(n_tune, int):
        n_tune = dict.fromkeys(experiments, n_tune)
    stray = sorted(set(experiments) - set(n_tune))
    if stray:
        raise ConfigError(f"tune.n_tune gives no size for {stray}")
    return TuneConfig(
        str(section["base"]),
        experiments,
        n_tune,
        grids,
        list(section["references"]) if section.get("references") is not None else None,
        list(section.get("seeds", [0])),
    )


def references(tune: TuneConfig, config: dict, spec: dict) -> list[str]:
    """The methods an experiment's tuning runs unchanged: ``tune.references``, else its control (uniform)."""
    if tune.references is not None:
        return tune.references
    return [m for m in spec["methods"] if method_info(m, method_module_name(config, m) or None).anchor == "control"]


def variant_name(method: str, index: int) -> str:
    return f"{method}-t{index}"


def _set(options: dict, dotted: str, value) -> dict:
    node = options
    *parents, leaf = dotted.split(".")
    for key in parents:
        node = node.setdefault(key, {})
    node[leaf] = value
    return options


def load_base(path: str) -> dict:
    p = Path(path)
    return load_config_file(p if p.exists() or p.is_absolute() else ROOT / p)


def expand(config: dict) -> dict:
    """The workflow config of the tuning runs (a config without ``tune:`` is returned unchanged)."""
    if "tune" not in config:
        return config
    tune = parse(config["tune"])
    base = load_base(tune.base)
    out = {k: copy.deepcopy(base[k]) for k in ("models", "seed", "threads", "assets", "official", "hub", "resources",
                                                "sft", "eval") if k in base}  # fmt: skip
    out |= {k: config[k] for k in ("results_dir",) if k in config}
    out["seeds"] = tune.seeds
    out["methods"] = copy.deepcopy(base.get("methods") or {})
    out["experiments"] = {}
    out["tune"] = config["tune"]
    for exp in tune.experiments:
        if exp not in base["experiments"]:
            raise ConfigError(f"tune.experiments names '{exp}', which is not an experiment of {tune.base}")
        spec = copy.deepcopy(base["experiments"][exp])
        if "builder" not in spec["data"]:
            raise ConfigError(f"tune.experiments: '{exp}' reads data files; the tuning split needs a builder's n_tune")
        for key in ("study", "paper_table", "weights_only", "seeds"):  # results-only settings
            spec.pop(key, None)
        spec["data"] = dict(spec["data"], heldout="tune")
        spec["data"]["options"] = dict(spec["data"].get("options") or {}, n_tune=tune.n_tune[exp])
        (model,) = spec["models"]  # one model per tuned experiment: the grid's values may depend on it
        local = spec.setdefault("method_options", {})
        methods = [m for m in references(tune, base, spec) if m in spec["methods"]]
        for method, grid in tune.grid.items():
            if method not in spec["methods"]:
                continue
            module = method_module_name(base, method) or registered().get(method)
            if module is None:
                raise ConfigError(f"tune.grid names method '{method}', which is not registered")
            for i, value in enumerate(grid.points(model)):
                opts = _set(copy.deepcopy(method_options(base, exp, method)), grid.knob, value)
                for key in grid.drop:
                    opts.pop(key, None)
                name = variant_name(method, i)
                out["methods"][name] = {"module": module}
                local[name] = opts
                methods.append(name)
        spec["methods"] = methods
        # the variants carry their options in full; the base methods' own entries would name methods not run here
        spec["method_options"] = {m: o for m, o in local.items() if m in methods}
        out["experiments"][exp] = spec
    return out


def grid_points(config: dict) -> list[dict]:
    """Every (experiment, method, variant, knob, value) of an expanded tuning config, in grid order."""
    tune = parse(config["tune"])
    rows = []
    for exp in tune.experiments:
        model = config["experiments"][exp]["models"][0]
        for method, grid in tune.grid.items():
            if variant_name(method, 0) not in config["experiments"][exp]["methods"]:
                continue
            for i, value in enumerate(grid.points(model)):
                rows.append(
                    {"experiment": exp, "model": model, "method": method, "variant": variant_name(method, i),
                     "knob": grid.knob, "value": value}
                )  # fmt: skip
    return rows
