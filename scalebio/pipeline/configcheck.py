"""Everything that can be checked from a workflow config before any job runs (``snakemake -n`` runs it).

    python -m scalebio check-config config/ci.yaml     # the same checks, one line per problem, exit 2 if any

Checks: the file exists and parses (file, line and column of a YAML error), the JSON schema
(``workflow/schemas/config.schema.yaml``), models named by experiments exist, every method is registered (or
names an importable module), every option block builds its typed class (``methods.<m>`` merged with the
experiment's ``method_options``, ``sft``, ``eval.<evaluation>``, ``data.clusters``), a log-prob judge names a model,
``official:`` data entries have an ``official:`` section, every job's launch plan can be made (``pipeline.launch``:
FSDP in one process on a multi-GPU job, vLLM without GPUs), no source uses a reserved name, and the budget fits in the
pool wherever the pool's size is known without running anything (embedded builders, local files).
The workflow merges per-experiment overrides with ``scalebio.pipeline.resolve.section``, as the checks do, so the
checks see exactly what jobs get. Every check of a config lives here: the DAG (``workflow/rules/common.smk``) runs
``workflow_config`` and raises nothing of its own.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import yaml

from scalebio.assets import embedded
from scalebio.assets.builder_options import check_builder_options
from scalebio.assets.clusters import ClustersConfig
from scalebio.assets.folders import entry_problem
from scalebio.common.config import from_dict, load_config_file
from scalebio.common.data import RESERVED_SOURCE_NAMES
from scalebio.common.paths import NAME_HINT, NAME_PATTERN
from scalebio.common.registry import check_options, evaluation_options, method_module
from scalebio.common.runtime import SuiteError, main_guard
from scalebio.common.training import SFTConfig
from scalebio.pipeline.launch import plan
from scalebio.pipeline.resolve import method_module_name, method_options, section, with_model_dtype
from scalebio.pipeline.tune import expand

SCHEMA = Path(__file__).resolve().parents[2] / "workflow" / "schemas" / "config.schema.yaml"


def pool_size(spec: dict) -> int | None:
    """Examples in an experiment's pool, if known without building it (None for hub data)."""
    if "builder" in spec:
        return sum(embedded.pool_sizes(spec["builder"], spec.get("options") or {}).values())
    total = 0
    for entry in spec["sources"].values():
        if not isinstance(entry, str):
            return None  # a pinned hub entry {hub, split, revision}: counted when the data folder is built
        p = Path(entry)
        if not p.is_file():
            return None
        if p.suffix == ".json":
            return None  # a JSON list; counted when the data folder is built
        with open(p, "rb") as f:
            total += sum(1 for line in f if line.strip())
    return total


def _try(errors: list[str], fn, *args, **kw) -> None:
    try:
        fn(*args, **kw)
    except SuiteError as e:
        errors.append(str(e))


OFFICIAL_PREFIX = "official:"
"""A data entry ``official:<path>`` names a file of the official repository at the config's pinned commit."""
HUB_ID = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")


def is_official(value) -> bool:
    """``value`` names a file of the official repository (``official:<path>``)."""
    return isinstance(value, str) and value.startswith(OFFICIAL_PREFIX)


def official_problem(where: str, value, official: bool) -> str | None:
    """``value`` names a file of the official repository but the config has no ``official:`` section (``official``:
    it has one) to say which repository and commit to fetch it from; ``where``: the key."""
    if is_official(value) and not official:
        return (
            f"{where} is '{value}' but the config has no official: section (the repository and commit to fetch it from)"
        )
    return None


def model_problems(config: dict) -> list[str]:
    """Models that cannot load when their jobs run: a local path that does not exist, or a hub id, with the hub off."""
    if config.get("hub", False):
        return []  # a path may be a hub id, resolved (and reported) by the job that downloads it
    out = []
    for name, spec in config["models"].items():
        path = spec.get("path")
        if spec.get("asset") or not path or Path(path).is_dir():
            continue
        if HUB_ID.match(path) and not Path(path).parent.is_dir():
            out.append(
                f"models.{name}.path '{path}' is a hub id and the config has hub: false; set hub: true (on a machine "
                "with hub access) or point it at a local model folder"
            )
        else:
            out.append(
                f"models.{name}.path '{path}' does not exist (the config has hub: false, so nothing is downloaded); "
                "put the model folder there or fix the path"
            )
    return out


def data_problems(exp: str, data: dict, hub: bool, official: bool = False) -> list[str]:
    """Builder options that are not the builder's (typed per builder), local data files that do not exist, and
    ``official:<path>`` entries in a config without an ``official:`` section (``official``: it has one)."""
    if "builder" in data:
        try:
            check_builder_options(data["builder"], data.get("options"), f"experiments.{exp}.data.options.")
        except SuiteError as err:
            return [str(err)]
        return []
    entries = [(f"source '{n}'", v) for n, v in data.get("sources", {}).items()]
    entries += [(f"{k} set", data[k]) for k in ("validation", "test", "tune") if k in data]
    out = []
    for what, entry in entries:
        if is_official(entry):
            problem = official_problem(f"experiments.{exp}.data's {what}", entry, official)
            out += [problem] if problem else []
            continue  # a file of the pinned official repository, fetched by its own rule
        try:
            problem = entry_problem(entry, what, hub)
        except SuiteError as err:
            problem = str(err)
        if problem:
            out.append(f"experiments.{exp}.data: {problem}")
    return out


def judge_problems(config: dict, evaluation: str, opts: dict) -> list[str]:
    """A log-prob judge (``eval.<e>.judge_model``) names a key of ``models:``, whose folder the job is given."""
    key = opts.get("judge_model")
    if key is None or opts.get("judge", "logprob") != "logprob" or key in config["models"]:
        return []
    return [f"eval.{evaluation}.judge_model '{key}' is not a key of models:"]


def launch_problems(config: dict) -> list[str]:
    """The launch plan of every select and evaluate job, as the DAG makes it (``pipeline.launch.plan``): resources
    that do not parse, FSDP in one process on a multi-GPU job, vLLM without GPUs. Each problem once."""
    resources = config.get("resources")
    out: list[str] = []

    def attempt(*args, **kw) -> None:
        try:
            plan(*args, **kw)
        except SuiteError as err:
            if str(err) not in out:
                out.append(str(err))

    for exp, e in config["experiments"].items():
        for method in e["methods"]:
            distributed = method_options(config, exp, method).get("distributed")
            attempt("select", method, resources, distributed=distributed, module=method_module_name(config, method))
        for ev in e.get("evals", []):
            opts = section(config, exp, "eval", ev)
            attempt("evaluate", opts.get("evaluation", ev), resources, backend=opts.get("backend", "auto"))
    return out


def memory_problems(config: dict) -> list[str]:
    """GPU stages that do not fit ``resources.gpu_memory_gb`` / ``host_memory_gb`` (``pipeline.memory``)."""
    from scalebio.pipeline.memory import problems

    return problems(config)


def unused_method_problems(config: dict) -> list[str]:
    """Every ``methods.<m>`` block no experiment runs is checked too: a typo there would otherwise wait for the day an
    experiment uses it (a variant's block builds its typed options through its ``module``)."""
    used = {m for e in config["experiments"].values() for m in e["methods"]}
    out = []
    for name, block in (config.get("methods") or {}).items():
        if name in used:
            continue
        opts = dict(block or {})
        module = opts.pop("module", None) or None
        try:
            check_options(name, opts, module)
        except SuiteError as err:
            out.append(f"methods.{name} (used by no experiment): {err}")
    return out


def check(config: dict) -> list[str]:
    """Every problem of a schema-valid config, one message each (empty: the config is fine)."""
    errors: list[str] = []
    for exp, e in config["experiments"].items():
        for m in e["models"]:
            if m not in config["models"]:
                errors.append(f"experiments.{exp}.models names '{m}', which is not under models:")
        for method in e["methods"]:
            if method == "base":
                errors.append(f"experiments.{exp}.methods: 'base' is reserved for the base model's evaluation")
                continue
            module = method_module_name(config, method) or None
            try:
                method_module(method, module)
            except SuiteError as err:
                errors.append(f"experiments.{exp}.methods: {err}")
                continue
            _try(errors, check_options, method, method_options(config, exp, method), module)
        for m in (m for m in e["models"] if m in config["models"]):
            _try(errors, from_dict, SFTConfig, with_model_dtype(config, m, section(config, exp, "sft")), "sft.")
        for ev in e.get("evals", []):
            opts = section(config, exp, "eval", ev)
            kind = opts.pop("evaluation", ev)  # `evals: [gsm8k]` with `eval.gsm8k.evaluation: math` runs eval.math
            try:
                opts_cls = evaluation_options(kind)
            except SuiteError as err:
                errors.append(f"experiments.{exp}.evals names '{ev}', which runs evaluation '{kind}': {err}")
                continue
            _try(errors, from_dict, opts_cls, opts, f"eval.{ev}.")
            errors += judge_problems(config, ev, opts)
            problem = official_problem(f"eval.{ev}.data_file", opts.get("data_file"), bool(config.get("official")))
            errors += [problem] if problem else []
        stray = sorted(set(e.get("weights_only") or []) - set(e["methods"]))
        if stray:
            errors.append(f"experiments.{exp}.weights_only names {stray}, which are not in its methods {e['methods']}")
        stray = sorted(set(e.get("method_options") or {}) - set(e["methods"]))
        if stray:
            errors.append(
                f"experiments.{exp}.method_options names {stray}, which are not in its methods {e['methods']}; "
                "fix the name or add the method"
            )
        study = e.get("study") or {}
        if study.get("kind") in ("online", "clusters"):
            ref = study.get("compare_with")
            if ref not in config["experiments"] or ref == exp:
                errors.append(
                    f"experiments.{exp}.study.compare_with: a '{study['kind']}' study compares with another "
                    f"experiment (same pool, methods, seeds); '{ref}' is not one of {sorted(config['experiments'])}"
                )
        data = e["data"]
        if data.get("clusters") is not None:
            opts = dict(data["clusters"])
            if opts.get("model") not in config["models"]:
                errors.append(f"experiments.{exp}.data.clusters.model '{opts.get('model')}' is not a key of models:")
            _try(errors, from_dict, ClustersConfig, opts, f"experiments.{exp}.data.clusters.")
        reserved = sorted(set(data.get("sources", {})) & set(RESERVED_SOURCE_NAMES))
        if reserved:
            errors.append(
                f"experiments.{exp}.data.sources: {reserved} are reserved names {RESERVED_SOURCE_NAMES}; rename"
            )
        problems = data_problems(exp, data, bool(config.get("hub", False)), bool(config.get("official")))
        if problems:
            errors += problems
            continue  # the pool's size is not known
        try:
            size = pool_size(data)
        except SuiteError as err:
            errors.append(f"experiments.{exp}.data: {err}")
            continue
        if size is not None and e["budget"] > size and not e.get("allow_repeats", False):
            errors.append(
                f"experiments.{exp}.budget {e['budget']} is larger than the pool ({size} examples); lower it, add "
                "data, or set allow_repeats: true"
            )
    launch = [] if errors else launch_problems(config)  # a plan needs registered methods and valid option blocks
    memory = [] if errors or launch else memory_problems(config)
    return model_problems(config) + errors + launch + memory + unused_method_problems(config)


def schema_errors(config: dict) -> list[str]:
    """JSON-schema violations, each naming the key path (for a ``oneOf``, the closest alternative's complaint)."""
    import jsonschema  # on use: only this check needs it

    validator = jsonschema.Draft202012Validator(yaml.safe_load(SCHEMA.read_text()))
    out = []
    for e in sorted(validator.iter_errors(config), key=lambda e: list(map(str, e.absolute_path))):
        if e.context:  # a oneOf: report the alternative that got furthest into the value, not a missing key
            e = sorted(e.context, key=lambda s: (-len(s.absolute_path), s.validator == "required"))[0]
        message = e.message
        if e.validator == "pattern" and e.validator_value == NAME_PATTERN:  # a name that would be a path component
            message = f"{e.instance!r} is not a plain name: {NAME_HINT}"
        out.append(f"{'.'.join(map(str, e.absolute_path)) or '<top level>'}: {message}")
    return out


def file_errors(paths) -> list[str]:
    """Problems of the config files themselves (a key given twice, as ``load_config_file`` reports it: file, line)."""
    out = []
    for path in paths:
        try:
            load_config_file(path)
        except SuiteError as err:
            out.append(str(err))
    return out


def workflow_config(config: dict, files=()) -> tuple[dict, list[str]]:
    """The config the workflow runs and every problem in it, one message each: the files (``files``: a key given
    twice), the expansion of a ``tune:`` section, the schema, then ``check``. ``check-config`` and the workflow
    (workflow/rules/common.smk, with Snakemake's ``workflow.configfiles``) both call this: they cannot disagree."""
    errors = file_errors(files)
    if errors:
        return config, errors
    if "tune" in config:  # a tuning config is checked as the workflow runs it: expanded into its tuning runs
        try:
            config = expand(config)
        except SuiteError as err:
            return config, [str(err)]
    return config, schema_errors(config) or check(config)


@main_guard
def main(argv=None) -> None:
    ap = argparse.ArgumentParser(prog="python -m scalebio check-config", description=__doc__.split("\n\n")[0])
    ap.add_argument("config", help="a workflow config file")
    a = ap.parse_args(argv)
    _, errors = workflow_config(load_config_file(a.config))
    for err in errors:
        print(f"error: {a.config}: {err}", file=sys.stderr)
    if errors:
        raise SystemExit(2)
    print(f"{a.config}: ok")


if __name__ == "__main__":
    main()
