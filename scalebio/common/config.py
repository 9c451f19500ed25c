"""Typed configs: dataclasses with a docstring per field, built from dicts with strict checking.

``from_dict`` rejects unknown keys and wrong types with a message naming the key (OLMo-core style
``validate()`` is a method on each config class). ``apply_overrides`` turns ``a.b=1`` strings from
the command line into nested dict updates (values parsed as YAML, so ``1e-5``/``true``/``[1,2]`` work).
"""

from __future__ import annotations

import ast
import copy
import dataclasses
import inspect
import math
import textwrap
import types
import typing
from pathlib import Path
from typing import Any, Literal

import yaml

from scalebio.common.runtime import ConfigError, json_object


def _check_type(value: Any, tp: Any, key: str) -> Any:
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(tp):
            if arg is type(None):  # null is the only value of NoneType (it admitted anything before)
                if value is None:
                    return None
                continue
            try:
                return _check_type(value, arg, key)
            except ConfigError:
                continue
        raise ConfigError(f"'{key}' must be {_type_name(tp)}, got {value!r}")
    if origin is typing.Literal:
        if value not in typing.get_args(tp):
            raise ConfigError(f"'{key}' must be one of {list(typing.get_args(tp))}, got {value!r}")
        return value
    if origin in (list, tuple) or tp in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"'{key}' must be a list, got {value!r}")
        (arg,) = typing.get_args(tp)[:1] or (Any,)
        return [_check_type(v, arg, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"'{key}' must be a mapping, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"'{key}' must be a number, got {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"'{key}' must be an integer, got {value!r}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"'{key}' must be true or false, got {value!r}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"'{key}' must be a string, got {value!r}")
        return value
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"'{key}' must be a mapping of {tp.__name__} options, got {value!r}")
        return from_dict(tp, value, prefix=f"{key}.")
    return value


def _type_name(tp) -> str:
    names = {int: "an integer", float: "a number", bool: "true or false", str: "a string", type(None): "null"}
    args = typing.get_args(tp) or (tp,)
    return " or ".join(names.get(a, getattr(a, "__name__", str(a))) for a in args)


def from_dict(cls, data: dict | None, prefix: str = ""):
    """Build dataclass ``cls`` from ``data``; unknown keys and wrong types raise ConfigError."""
    data = dict(data or {})
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(f"unknown option(s) {[prefix + u for u in unknown]}; known: {sorted(names)}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for k, v in data.items():
        # A nested config given partially keeps the defaults of *this* field (LESS's warm-up SFTConfig has
        # its own defaults), not those of the nested class.
        if (
            dataclasses.is_dataclass(hints[k])
            and isinstance(v, dict)
            and fields[k].default_factory is not dataclasses.MISSING
        ):
            data[k] = _merge(dataclasses.asdict(fields[k].default_factory()), v)
    kwargs = {k: _check_type(v, hints[k], prefix + k) for k, v in data.items()}
    obj = cls(**kwargs)
    validate = getattr(obj, "validate", None)
    if validate is not None:
        # A config class reused under several keys (SFTConfig as `sft` and `methods.less.warmup`) names
        # the key the user wrote when its validate() takes the prefix.
        validate(prefix) if "prefix" in inspect.signature(validate).parameters else validate()
    _check_finite(obj, prefix)
    return obj


def _check_finite(obj, prefix: str) -> None:
    """No number option of any config class is NaN or infinite (after ``validate``, whose own messages go first):
    a learning rate, α, a rate or a tolerance of ``.inf`` passes every ``> 0`` check and diverges at the first step."""
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        items = enumerate(value) if isinstance(value, list) else [(None, value)]
        for i, v in items:
            if isinstance(v, float) and not math.isfinite(v):
                key = prefix + f.name + ("" if i is None else f"[{i}]")
                raise ConfigError(f"'{key}' must be a finite number, got {v}")


def _merge(base: dict, update: dict) -> dict:
    out = dict(base)
    for k, v in update.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def parse_json_object(text: str, flag: str = "--options") -> dict:
    """Parse a command-line JSON object (``--options '{...}'``) or raise a ConfigError naming the flag."""
    return json_object(text, f"{flag} {text!r}", ConfigError)


RECORD_WHEN_SET = {"record": "when_set"}
"""Field metadata of an option added after the committed reference results: ``as_dict`` writes it only when it differs
from its default, so a run that does not use it writes the same ``config`` bytes as before the option existed
(``selection.json``, ``sft_config.json``: the CI outputs stay byte-identical). Use ``field(default=...,
metadata=RECORD_WHEN_SET)``."""


def as_dict(obj) -> dict:
    return _drop_unset(obj, dataclasses.asdict(obj))


def _drop_unset(obj, out: dict) -> dict:
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if f.metadata.get("record") == "when_set" and value == _default_of(f):
            out.pop(f.name, None)
        elif dataclasses.is_dataclass(value) and isinstance(out.get(f.name), dict):
            _drop_unset(value, out[f.name])
    return out


def _default_of(f: dataclasses.Field):
    if f.default is not dataclasses.MISSING:
        return f.default
    return f.default_factory() if f.default_factory is not dataclasses.MISSING else dataclasses.MISSING


def apply_overrides(data: dict, overrides: list[str]) -> dict:
    data = copy.deepcopy(data)
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override '{item}' must look like key=value (e.g. lr_theta=1e-2)")
        key, raw = item.split("=", 1)
        node = data
        parts = key.split(".")
        for i, p in enumerate(parts[:-1]):
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override '{item}': '{'.'.join(parts[: i + 1])}' is {node!r}, not a mapping")
        value = yaml.safe_load(raw)
        if isinstance(value, str):
            try:  # YAML 1.1 reads "2e-5" (no dot) as a string; numbers are what users mean
                value = float(value)
            except ValueError:
                pass
        node[parts[-1]] = value
    return data


def describe(cls) -> list[tuple[str, str, Any]]:
    """(name, help, default) per field, from the docstring that follows each field in the source."""
    docs: dict[str, str] = {}
    for klass in reversed([k for k in cls.__mro__ if dataclasses.is_dataclass(k)]):  # inherited fields (a base's)
        body = ast.parse(textwrap.dedent(inspect.getsource(klass))).body[0].body
        for a, b in zip(body, body[1:]):
            if isinstance(a, ast.AnnAssign) and isinstance(b, ast.Expr) and isinstance(b.value, ast.Constant):
                docs[a.target.id] = " ".join(str(b.value.value).split())
    out = []
    for f in dataclasses.fields(cls):
        default = (
            f.default
            if f.default is not dataclasses.MISSING
            else (f.default_factory() if f.default_factory is not dataclasses.MISSING else None)
        )
        out.append((f.name, docs.get(f.name, ""), default))
    return out


@dataclasses.dataclass
class GenerationOptions:
    """What every evaluation that generates text shares: their ``Options`` derive from this class (math, lm-eval,
    MT-Bench, IFEval), so the keys are declared once, and the workflow fills in ``backend`` and
    ``tensor_parallel_size`` from the job's launch plan for exactly these evaluations (``generates``)."""

    batch_size: int = 8
    """Prompts generated together (left padding; lm-eval: its batch size)."""
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    """Weights dtype of the evaluated model."""
    backend: Literal["auto", "hf", "vllm"] = "auto"
    """Generation backend: vllm (GPU, requirements-vllm.txt), hf, or auto (vllm when installed and on a GPU). The
    workflow fills in the backend its launch plan chose."""
    tensor_parallel_size: int = 1
    """GPUs vLLM shards the model over (the workflow sets the job's GPU count)."""


def generates(options_cls) -> bool:
    """Whether an evaluation's options class takes the generation options (and so the launch plan's backend)."""
    return isinstance(options_cls, type) and issubclass(options_cls, GenerationOptions)


def options_help(cls, title: str) -> str:
    """The ``--help`` epilog of a command's typed options: ``title``, then every option with its default and its
    docstring (the one renderer of the CLIs: ``reweight``, ``finetune``, every evaluation)."""
    return "\n".join([title, *(f"  {name} (default {default!r}): {doc}" for name, doc, default in describe(cls))])


class UniqueKeyLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a key given twice in one mapping (the last one would win silently); keys
    merged in with ``<<: *anchor`` may be overridden, as YAML intends."""

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            seen: dict = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    first = seen.setdefault(key, key_node.start_mark.line + 1)
                except TypeError:  # an unhashable key: the base class reports it
                    continue
                mark = key_node.start_mark
                if first != mark.line + 1:
                    raise ConfigError(
                        f"{mark.name}:{mark.line + 1}:{mark.column + 1}: duplicate key {key!r} (first on line {first}); "
                        "keep one of them"
                    )
        return super().construct_mapping(node, deep)


def load_config_file(path: str | Path) -> dict:
    """The YAML file as a mapping; a missing or unparsable file, or a key given twice, is one ConfigError naming
    file, line and column."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file '{path}' does not exist")
    try:
        loader = UniqueKeyLoader(path.read_text())
        loader.name = str(path)
        try:
            data = loader.get_single_data()
        finally:
            loader.dispose()
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f":{mark.line + 1}:{mark.column + 1}" if mark else ""
        raise ConfigError(f"{path}{at}: not valid YAML ({getattr(e, 'problem', None) or e})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file '{path}' must hold a mapping (models, experiments, ...)")
    return data
