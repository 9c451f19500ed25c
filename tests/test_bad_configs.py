"""Config mistakes: each is one line from `python -m scalebio check-config`, and `snakemake -n` stops with the same
message (both run scalebio.pipeline.configcheck.workflow_config). tests/README.md lists every case.

A case changes one experiment ``{e}`` of a small valid config (or a top-level key), so many cases fit in one config:
the agreement test runs `snakemake -n` once per group (schema, checks, the YAML file itself), not once per case.

Modules: `scalebio/pipeline/configcheck.py`, `scalebio/assets/builder_options.py`.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from scalebio.pipeline.configcheck import main as check_config_main

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
TEMPLATE = {
    "data": {"builder": "denoise", "options": {"noise": [0.0, 1.0], "n_per_source": 10}},
    "models": ["tiny"],
    "methods": ["uniform", "scalebio"],
    "budget": 12,
    "evals": ["testloss"],
}


def _set(*path_and_value):
    """A case that sets ``experiments.<e>.<path>`` (the last argument is the value)."""
    *path, value = path_and_value

    def mutate(cfg, e):
        node = cfg["experiments"][e]
        for key in path[:-1]:
            node = node.setdefault(key, {})
        node[path[-1]] = copy.deepcopy(value)

    return mutate


def _top(key, value):
    """A case that sets a top-level key (``methods.<m>`` and ``models.<m>`` as dotted keys)."""

    def mutate(cfg, e):
        node, *parts = [cfg, *key.split(".")]
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = copy.deepcopy(value)

    return mutate


def _entry(section, name, value):
    """A case that adds ``<section>.<name>`` (a name that may hold dots)."""

    def mutate(cfg, e):
        cfg.setdefault(section, {})[name] = copy.deepcopy(value)

    return mutate


def _rename(new):
    def mutate(cfg, e):
        cfg["experiments"][new] = cfg["experiments"].pop(e)

    return mutate


def _both(*mutations):
    def mutate(cfg, e):
        for m in mutations:
            m(cfg, e)

    return mutate


INF, NAN = float("inf"), float("nan")
FILES = {"sources": {"a": "missing_a.jsonl"}, "validation": "missing_v.jsonl"}

# (id, group, mutation, message): "schema" cases fail the JSON schema, "check" cases configcheck.check
CASES = [
    # ---- schema
    ("unknown top-level key", "schema", _top("bogus", 1), "'bogus' was unexpected"),
    ("budget of the wrong type", "schema", _set("budget", "ten"), "budget: 'ten' is not of type 'integer'"),
    ("unknown data builder", "schema", _set("data", {"builder": "magic"}), "'magic' is not one of"),
    ("experiment named a/b", "schema", _rename("a/b"), "experiments: 'a/b' is not a plain name"),
    (
        "source name that climbs out of the data folder",
        "schema",
        _set("data", {"sources": {"../../x/evil": "a.jsonl", "b": "b.jsonl"}, "validation": "v.jsonl"}),
        "data.sources: '../../x/evil' is not a plain name: use only letters, digits",
    ),
    (
        "model named .hidden",
        "schema",
        _entry("models", ".hidden", {"asset": "tiny"}),
        "models: '.hidden' is not a plain",
    ),
    ("method name with a slash", "schema", _set("methods", ["uniform", "x/y"]), "methods.1: 'x/y' is not a plain"),
    ("negative seed", "schema", _top("seed", -1), "seed: -1 is less than the minimum of 0"),
    ("negative seeds", "schema", _top("seeds", [0, -1]), "seeds.1: -1 is less than the minimum of 0"),
    ("negative experiment seed", "schema", _set("seeds", [-1]), "seeds.0: -1 is less than the minimum of 0"),
    # ---- checks
    ("experiment names an unknown model", "check", _set("models", ["nope"]), "names 'nope', which is not under models"),
    ("unregistered method", "check", _set("methods", ["uniform", "magic"]), "method 'magic' is not registered"),
    (
        "method module that does not import",
        "check",
        _both(_top("methods.magic2", {"module": "no.such.mod"}), _set("methods", ["magic2"])),
        "cannot import 'no.such.mod'",
    ),
    (
        "unknown method option",
        "check",
        _set("method_options", {"scalebio": {"lr_thta": 0.1}}),
        "unknown option(s) ['methods.scalebio.lr_thta']",
    ),
    (
        "method option of the wrong type",
        "check",
        _set("method_options", {"scalebio": {"lr_theta": "fast"}}),
        "'methods.scalebio.lr_theta' must be a number",
    ),
    (
        "nested option of the wrong type",
        "check",
        _both(_set("methods", ["less"]), _set("method_options", {"less": {"warmup": {"epochs": "3"}}})),
        "'methods.less.warmup.epochs' must be a number",
    ),
    (
        "nested option block that is not a mapping",
        "check",
        _set("method_options", {"scalebio": {"lisa": 4}}),
        "'methods.scalebio.lisa' must be a mapping of LisaConfig options",
    ),
    (
        "per-experiment option of the wrong type",
        "check",
        _set("method_options", {"scalebio": {"max_steps": 1.5}}),
        "'methods.scalebio.max_steps' must be an integer",
    ),
    (
        "option outside its range",
        "check",
        _set("method_options", {"scalebio": {"warmup_ratio": 2.0}}),
        "option 'warmup_ratio' must be in [0, 1), got 2.0",
    ),
    ("unknown sft option", "check", _set("sft", {"lr": 0.1}), "unknown option(s) ['sft.lr']"),
    ("sft option of the wrong type", "check", _set("sft", {"learning_rate": "high"}), "'sft.learning_rate' must be a"),
    (
        "sft batch not a multiple of the micro batch",
        "check",
        _set("sft", {"global_batch_size": 10, "micro_batch_size": 4}),
        "sft.global_batch_size (10) must be a multiple of sft.micro_batch_size (4)",
    ),
    (
        "eval option out of range",
        "check",
        _set("eval", {"testloss": {"batch_size": 0}}),
        "eval.testloss: limit >= 0, batch_size >= 1 and max_length >= 8 are required",
    ),
    ("unknown evaluation", "check", _set("evals", ["vibes"]), "evaluation 'vibes' is not registered"),
    (
        "a log-prob judge that is not a model of the config (stopped only the DAG before)",
        "check",
        _both(_set("evals", ["mtbench"]), _set("eval", {"mtbench": {"judge_model": "no_such_judge"}})),
        "eval.mtbench.judge_model 'no_such_judge' is not a key of models:",
    ),
    (
        "FSDP in one process on a multi-GPU job (stopped only the DAG before)",
        "launch",
        _both(
            _top("resources", {"gpus_per_job": 8, "launcher": "python"}),
            _top("methods.scalebio", {"distributed": "fsdp"}),
        ),
        "methods.scalebio.distributed is fsdp, but resources.launcher: python starts one process on a job with 8 GPUs",
    ),
    (
        "an official: data entry without an official: section (stopped only the DAG before)",
        "check",
        _set("data", {"sources": {"a": "official:data/a.jsonl"}, "validation": "official:data/v.jsonl"}),
        "data's source 'a' is 'official:data/a.jsonl' but the config has no official: section",
    ),
    (
        "reserved source name",
        "check",
        _set("data", {"sources": {"validation": "a.jsonl"}, "validation": "v.jsonl"}),
        "are reserved names ('validation', 'test'); rename",
    ),
    ("budget larger than the pool", "check", _set("budget", 1000), "budget 1000 is larger than the pool (20 examples)"),
    (
        "typo in a builder option",
        "check",
        _set("data", "options", "n_per_sorce", 5),
        "data.options.n_per_sorce']; known: ['max_answer_chars', 'modules', 'n_per_source'",
    ),
    (
        "builder option of the wrong type",
        "check",
        _set("data", "options", "n_per_source", "ten"),
        "data.options.n_per_source' must be an integer, got 'ten'",
    ),
    (
        "noise rate above 1",
        "check",
        _set("data", "options", "noise", [0.0, 1.5]),
        "data.options.noise[1] must be in [0, 1] (a fraction of corrupted responses), got 1.5",
    ),
    (
        "two noise rates that name the same source",
        "check",
        _set("data", "options", "noise", [0.5, 0.5]),
        "gives two sources the same name ['noise050', 'noise050']; use distinct rates",
    ),
    (
        "method_options for a method the experiment does not run",
        "check",
        _set("method_options", {"scalebo": {"lr_theta": 0.1}}),
        "method_options names ['scalebo'], which are not in its methods ['uniform', 'scalebio']",
    ),
    (
        "unused method block with a typo",
        "check",
        _top("methods.scalebio_unused", {"module": "scalebio.method", "lr_thta": 0.1}),
        "methods.scalebio_unused (used by no experiment): unknown option(s) ['methods.scalebio_unused.lr_thta']",
    ),
    (
        "unused baseline block of the wrong type",
        "check",
        _top("methods.rho_loss", {"temperature": "warm"}),
        "methods.rho_loss (used by no experiment): 'methods.rho_loss.temperature' must be a number",
    ),
    (
        "infinite lr_theta",
        "check",
        _set("method_options", {"scalebio": {"lr_theta": INF}}),
        "option 'lr_theta' must be a finite number > 0, got inf",
    ),
    (
        "infinite SFT learning rate",
        "check",
        _set("sft", {"learning_rate": INF}),
        "'sft.learning_rate' must be a finite",
    ),
    (
        "NaN in a baseline's float option",
        "check",
        _both(_set("methods", ["doremi"]), _set("method_options", {"doremi": {"eta": NAN, "train": {"max_steps": 2}}})),
        "'methods.doremi.eta' must be a finite number, got nan",
    ),
    (
        "infinite learning rate of a baseline's training",
        "check",
        _both(_set("methods", ["less"]), _set("method_options", {"less": {"warmup": {"learning_rate": INF}}})),
        "'methods.less.warmup.learning_rate' must be a finite number, got inf",
    ),
    (
        "local model path that does not exist",
        "check",
        _top("models.ghost", {"path": "/nonexistent/models/ghost"}),
        "models.ghost.path '/nonexistent/models/ghost' does not exist (the config has hub: false",
    ),
    (
        "hub model id with hub: false",
        "check",
        _top("models.hubby", {"path": "meta-llama/Meta-Llama-3-8B"}),
        "models.hubby.path 'meta-llama/Meta-Llama-3-8B' is a hub id and the config has hub: false; set hub: true",
    ),
    ("missing local data file", "check", _set("data", FILES), "source 'a': file 'missing_a.jsonl' does not exist"),
    (
        "hub dataset with the hub off",
        "check",
        _set("data", {"sources": {"a": "pxyyy/SlimOrca"}, "validation": "missing_v.jsonl"}),
        "source 'a' 'pxyyy/SlimOrca' is not a local file and the hub is off",
    ),
]
GROUPS = ("schema", "check", "launch")


def _config(cases) -> tuple[dict, list[str]]:
    """One config holding ``cases`` (experiment ``x`` alone, ``c<i>`` each in a group) and their messages."""
    cfg = {"models": {"tiny": {"asset": "tiny"}}, "experiments": {}}
    messages = []
    for i, (_, _, mutate, message) in enumerate(cases):
        e = "x" if len(cases) == 1 else f"c{i}"
        cfg["experiments"][e] = copy.deepcopy(TEMPLATE)
        mutate(cfg, e)
        messages.append(message)
    return cfg, messages


def _write(path: Path, cfg: dict) -> Path:
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def _check_config(path: Path, capsys) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exc:
        check_config_main([str(path)])
    return exc.value.code, capsys.readouterr().err


def _dry_run(path: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PATH=f"{BIN}:{os.environ['PATH']}")
    return subprocess.run(
        [BIN / "snakemake", "-n", "--cores", "1", "--configfile", str(path)],
        cwd=ROOT, capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_each_config_mistake_is_one_line_from_check_config(case, tmp_path, capsys):
    path = _write(tmp_path / "bad.yaml", _config([case])[0])
    code, err = _check_config(path, capsys)
    lines = err.strip().splitlines()
    assert code == 2 and any(case[3] in line for line in lines), err
    assert all(line.startswith(f"error: {path}: ") for line in lines), err


DUPLICATES = """\
seed: 0
models: {tiny: {asset: tiny}}
experiments:
  x: {data: {builder: denoise}, models: [tiny], methods: [uniform], budget: 3}
seed: 5
"""
DUPLICATE_MESSAGE = ":5:1: duplicate key 'seed' (first on line 1); keep one of them"


def test_duplicate_yaml_key_is_one_line_naming_file_and_line(tmp_path, capsys):
    path = tmp_path / "dup.yaml"
    path.write_text(DUPLICATES)
    code, err = _check_config(path, capsys)
    assert code == 2 and err.strip() == f"error: {path}{DUPLICATE_MESSAGE}", err


def test_keys_merged_from_an_anchor_may_be_overridden(tmp_path, capsys):
    path = tmp_path / "merge.yaml"
    path.write_text(
        DUPLICATES.replace("seed: 5\n", "sft: &a {max_steps: 2}\nmethods:\n  scalebio: {<<: *a, max_steps: 3}\n")
    )
    check_config_main([str(path)])
    assert capsys.readouterr().out.strip() == f"{path}: ok"


@pytest.mark.parametrize("group", [*GROUPS, "file"])
def test_check_config_and_snakemake_dry_run_agree(group, tmp_path, capsys):
    """Every config-level case fails `check-config` and `snakemake -n` with the same message; each line check-config
    prints is in Snakemake's output too."""
    path = tmp_path / f"{group}.yaml"
    if group == "file":
        path.write_text(DUPLICATES)
        messages = [f"{path}{DUPLICATE_MESSAGE}"]
    else:
        cfg, messages = _config([c for c in CASES if c[1] == group])
        _write(path, cfg)
    code, err = _check_config(path, capsys)
    r = _dry_run(path)
    shown = r.stdout + r.stderr
    assert code == 2 and r.returncode != 0, shown[-3000:]
    for message in messages:
        assert message in err, (message, err)
        assert message in shown, (message, shown[-3000:])
    for line in err.strip().splitlines():
        assert line.split(": ", 2 if group != "file" else 1)[-1] in shown, (line, shown[-3000:])


def test_schema_names_pattern_is_the_one_of_the_code():
    from scalebio.common.paths import NAME_PATTERN

    schema = yaml.safe_load((ROOT / "workflow" / "schemas" / "config.schema.yaml").read_text())
    assert schema["$defs"]["name"]["pattern"] == NAME_PATTERN
    assert json.dumps(schema).count('"#/$defs/name"') >= 8  # models, experiments, methods, sources, ...


BUILDER_FUNCTIONS = {
    ("embedded.py", "build_denoise"): "denoise",
    ("embedded.py", "build_math"): "math",
    ("embedded.py", "build_multilingual"): "multilingual",
    ("embedded.py", "_languages"): "multilingual",
    ("arithmetic.py", "build"): "arithmetic",
    ("arithmetic.py", "sizes"): "arithmetic",
    ("instructions.py", "build"): "instructions",
    ("instructions.py", "sizes"): "instructions",
}


def test_builder_option_classes_cover_every_option_the_builders_read_with_their_defaults():
    """Every ``cfg.get(key, default)`` of a builder is a field of its options class with the same default, so the
    typed check admits exactly what the builder reads (a key it ignores is an error, a key it reads is allowed)."""
    import ast
    import dataclasses

    from scalebio.assets import arithmetic, embedded
    from scalebio.assets.builder_options import OPTIONS

    for (file, func), builder in BUILDER_FUNCTIONS.items():
        tree = ast.parse((ROOT / "scalebio" / "assets" / file).read_text())
        fn = next(n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == func)
        calls = [
            c
            for c in ast.walk(fn)
            if isinstance(c, ast.Call) and isinstance(c.func, ast.Attribute) and c.func.attr == "get"
            if isinstance(c.func.value, ast.Name) and c.func.value.id == "cfg"
        ]
        fields = {f.name: f for f in dataclasses.fields(OPTIONS[builder])}
        assert calls, (file, func)
        for call in calls:
            key = ast.literal_eval(call.args[0])
            assert key in fields, f"{file}:{func} reads data.options.{key}, which {OPTIONS[builder].__name__} lacks"
            f = fields[key]
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
            try:
                given = ast.literal_eval(call.args[1]) if len(call.args) > 1 else default
            except ValueError:  # a module constant: checked below
                continue
            assert given == default, (file, func, key, given, default)
    assert OPTIONS["math"]().modules == list(embedded.MATH_MODULES)
    assert OPTIONS["arithmetic"]().sources == list(arithmetic.SOURCES)
