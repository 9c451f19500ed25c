"""Bad inputs, table-driven: each gets one clear line (file, key or source, and what to do), exit status 2, and leaves
nothing Snakemake would take as done. tests/README.md lists every case covered in the suite.

Modules: `scalebio/cli.py` (reweight's overrides), `scalebio/common/selection.py` (hand-edited selections).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from scalebio.common.data import load_sources, read_jsonl
from scalebio.common.runtime import AssetError, DataError, atomic_dir
from scalebio.pipeline.configcheck import check, schema_errors
from scalebio.pipeline.configcheck import main as check_config_main

ROOT = Path(__file__).resolve().parents[1]

BASE = {
    "models": {"tiny": {"asset": "tiny"}},
    "experiments": {
        "x": {
            "data": {"builder": "denoise", "options": {"noise": [0.0, 1.0], "n_per_source": 10}},
            "models": ["tiny"],
            "methods": ["uniform", "scalebio"],
            "budget": 12,
            "evals": ["testloss"],
        }
    },
}


def _patched(patch: dict) -> dict:
    cfg = json.loads(json.dumps(BASE))
    for dotted, value in patch.items():
        node, *path, last = [cfg, *dotted.split(".")]
        for key in path:
            node = node.setdefault(key, {})
        node[last] = value
    return cfg


# ---- config: one message per problem from `python -m scalebio check-config` (= what `snakemake -n` checks) ----
CONFIG_CASES = [
    ("unknown top-level key", {"bogus": 1}, "'bogus' was unexpected"),
    (
        "budget of the wrong type",
        {"experiments.x.budget": "ten"},
        "experiments.x.budget: 'ten' is not of type 'integer'",
    ),
    (
        "experiment names an unknown model",
        {"experiments.x.models": ["nope"]},
        "names 'nope', which is not under models",
    ),
    ("unregistered method", {"experiments.x.methods": ["uniform", "magic"]}, "method 'magic' is not registered"),
    (
        "method module that does not import",
        {"methods.magic": {"module": "no.such.mod"}, "experiments.x.methods": ["magic"]},
        "cannot import 'no.such.mod'",
    ),
    ("unknown method option", {"methods.scalebio": {"lr_thta": 0.1}}, "unknown option(s) ['methods.scalebio.lr_thta']"),
    (
        "method option of the wrong type",
        {"methods.scalebio": {"lr_theta": "fast"}},
        "'methods.scalebio.lr_theta' must be a number",
    ),
    (
        "nested option of the wrong type",
        {"methods.less": {"warmup": {"epochs": "3"}}, "experiments.x.methods": ["less"]},
        "'methods.less.warmup.epochs' must be a number",
    ),
    (
        "nested option block that is not a mapping",
        {"methods.scalebio": {"lisa": 4}},
        "'methods.scalebio.lisa' must be a mapping",
    ),
    (
        "per-experiment method option of the wrong type",
        {"experiments.x.method_options": {"scalebio": {"max_steps": 1.5}}},
        "'methods.scalebio.max_steps' must be an integer",
    ),
    ("option value outside its range", {"methods.scalebio": {"warmup_ratio": 2.0}}, "warmup_ratio' must be in [0, 1)"),
    ("unknown sft option", {"sft": {"lr": 0.1}}, "unknown option(s) ['sft.lr']"),
    ("sft option of the wrong type", {"sft": {"learning_rate": "high"}}, "'sft.learning_rate' must be a number"),
    (
        "sft batch not a multiple of the micro batch",
        {"sft": {"global_batch_size": 10, "micro_batch_size": 4}},
        "must be a multiple of",
    ),
    ("eval option out of range", {"eval.testloss": {"batch_size": 0}}, "eval.testloss: limit >= 0, batch_size >= 1"),
    ("unknown evaluation", {"experiments.x.evals": ["vibes"]}, "evaluation 'vibes' is not registered"),
    (
        "reserved source name",
        {"experiments.x.data": {"sources": {"validation": "a.jsonl"}, "validation": "v.jsonl"}},
        "reserved names",
    ),
    (
        "budget larger than the pool",
        {"experiments.x.budget": 1000},
        "budget 1000 is larger than the pool (20 examples)",
    ),
    ("unknown data builder option type", {"experiments.x.data": {"builder": "magic"}}, "'magic' is not one of"),
]


@pytest.mark.parametrize("name, patch, message", CONFIG_CASES, ids=[c[0] for c in CONFIG_CASES])
def test_config_mistakes_fail_before_any_job(name, patch, message, tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(_patched(patch)))
    with pytest.raises(SystemExit) as exc:
        check_config_main([str(path)])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and message in err, err
    assert all(line.startswith(f"error: {path}: ") for line in err.strip().splitlines())


def test_allow_repeats_admits_a_budget_larger_than_the_pool():
    cfg = _patched({"experiments.x.budget": 1000, "experiments.x.allow_repeats": True})
    assert not schema_errors(cfg) and not check(cfg)


@pytest.mark.parametrize(
    "content, message",
    [
        (None, "config file '{path}' does not exist"),
        ("models: {tiny: {asset: tiny}\nexperiments: x\n", "{path}:2:1: not valid YAML"),
        ("- a\n- b\n", "config file '{path}' must hold a mapping"),
    ],
    ids=["missing file", "YAML syntax error (file, line, column)", "not a mapping"],
)
def test_unreadable_config_file_is_one_line(content, message, tmp_path, capsys):
    path = tmp_path / "c.yaml"
    if content is not None:
        path.write_text(content)
    with pytest.raises(SystemExit) as exc:
        check_config_main([str(path)])
    err = capsys.readouterr().err.strip()
    assert exc.value.code == 2 and len(err.splitlines()) == 1 and message.format(path=path) in err


def test_config_mistake_fails_in_snakemake_dry_run(tmp_path):
    """The same checks run at DAG construction: a typo in an option block stops `snakemake -n`, not a job."""
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(_patched({"methods.scalebio": {"lr_thta": 0.1}})))
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    r = subprocess.run(
        [Path(sys.executable).parent / "snakemake", "-n", "--cores", "1", "--configfile", path],
        cwd=ROOT, capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert r.returncode != 0 and "methods.scalebio.lr_thta" in r.stdout + r.stderr


# ---- data files ----------------------------------------------------------------------------------------------------
DATA_CASES = [
    (
        "duplicate id",
        b'{"id": "a", "prompt": "q", "response": "r"}\n{"id": "a", "prompt": "q2", "response": "r2"}\n',
        "src.jsonl:2: id 'a' already used on line 1",
    ),
    (
        "non-UTF-8 bytes",
        b'{"prompt": "q", "response": "r"}\n{"prompt": "caf\xe9", "response": "r"}\n',
        "src.jsonl:2: not UTF-8",
    ),
    ("invalid JSON", b'{"prompt": "q", "response": "r"}\n{not json}\n', "src.jsonl:2: not valid JSON"),
    ("a line that is not an object", b'["q", "r"]\n', "src.jsonl:1: must be a JSON object"),
]


@pytest.mark.parametrize("name, content, message", DATA_CASES, ids=[c[0] for c in DATA_CASES])
def test_bad_data_file_names_file_and_line(name, content, message, tmp_path):
    (tmp_path / "src.jsonl").write_bytes(content)
    with pytest.raises(DataError) as e:
        read_jsonl(tmp_path / "src.jsonl")
    assert message in str(e.value) and len(str(e.value).splitlines()) == 1


def _data_folder(root: Path, sources: dict[str, list[dict]]) -> Path:
    (root / "sources").mkdir(parents=True)
    for name, rows in sources.items():
        (root / "sources" / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (root / "validation.jsonl").write_text(json.dumps({"prompt": "1+1?", "response": "2"}) + "\n")
    return root


def test_truncated_examples_are_dropped_with_one_warning_and_counted(tiny_model_dir, tmp_path, caplog):
    from scalebio.common.modeling import load_tokenizer

    rows = [{"prompt": "word " * 60, "response": "long"}] * 3 + [{"prompt": "hi", "response": "yes"}] * 2
    rows = [dict(r, id=str(i)) for i, r in enumerate(rows)]
    data = _data_folder(tmp_path, {"a": rows})
    with caplog.at_level("WARNING", logger="scalebio"):
        (src,) = load_sources(data, load_tokenizer(tiny_model_dir), max_length=32)
    assert len(src.examples) == 2 and src.dropped == 3
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and "3 of 5 examples have no response token within max_length=32" in warnings[0]


def test_reserved_source_file_name_fails_at_select(tmp_path):
    from scalebio.common.data import list_sources

    data = _data_folder(
        tmp_path, {"validation": [{"prompt": "q", "response": "r"}], "a": [{"prompt": "q", "response": "r"}]}
    )
    with pytest.raises(DataError, match=r"\['validation.jsonl'\] use a reserved name"):
        list_sources(data)


# ---- select command, selections and the SFT set ----------------------------------------------------------------------
def _select(args, capsys):
    from scalebio.common.registry import main

    with pytest.raises(SystemExit) as exc:
        main(args)
    return exc.value.code, capsys.readouterr().err.strip()


def test_budget_larger_than_the_pool_fails_in_select_for_every_method(denoise_data_dir, tmp_path, capsys):
    out = tmp_path / "run"
    code, err = _select(
        ["--method", "uniform", "--data", str(denoise_data_dir), "--model", "m", "--out", str(out), "--budget", "1000"],
        capsys,
    )
    assert code == 2 and "budget 1000 is larger than the pool (320 examples" in err and "allow_repeats" in err
    assert not (out / "selection.json").exists()


def test_allow_repeats_is_recorded_and_the_sft_set_repeats(denoise_data_dir, tmp_path):
    from scalebio.common.registry import main
    from scalebio.sft.mixture import build_sft_set

    out = tmp_path / "uniform"
    main(
        [
            "--method",
            "uniform",
            "--data",
            str(denoise_data_dir),
            "--model",
            "m",
            "--out",
            str(out),
            "--budget",
            "400",
            "--allow-repeats",
        ]
    )
    sel = json.loads((out / "selection.json").read_text())
    assert sel["allow_repeats"] is True and sel["budget"] == 400
    m = build_sft_set(out / "selection.json", denoise_data_dir, tmp_path / "sft", append_validation=False)
    assert m["n_examples"] == 400 and sum(m["duplicates"].values()) == 80


def test_sft_set_refuses_repeats_the_selection_did_not_allow(denoise_data_dir, tmp_path):
    from scalebio.common.selection import MethodInputs, write_selection
    from scalebio.sft.mixture import build_sft_set

    inputs = MethodInputs(str(denoise_data_dir), "m", str(tmp_path / "uniform"), budget=400)
    sel = write_selection(inputs, "uniform", weights={n: 0.2 for n in inputs.sources}, wall_time_s=0, tokens=0)
    with pytest.raises(DataError, match="needs 80 repeated examples, and the selection does not allow repeats"):
        build_sft_set(sel, denoise_data_dir, tmp_path / "sft")
    assert not (tmp_path / "sft" / "manifest.json").exists()


SELECTION_EDITS = [
    ("unknown method", {"method": "hacked"}, "method 'hacked' is neither registered nor the run folder's name"),
    (
        "weights with examples",
        {"examples": [{"source": "noise000", "id": "noise000-0"}]},
        "kind 'weights' must not list examples",
    ),
    ("unknown kind", {"kind": "mixture"}, "kind must be 'weights' or 'examples'"),
    ("budget not positive", {"budget": 0}, "budget must be a positive integer"),
    (
        "missing pool fingerprint",
        {"pool_fingerprint": None, "_drop": "pool_fingerprint"},
        "lacks the key 'pool_fingerprint'",
    ),
    ("weights that do not sum to 1", {"weights": {"noise000": 0.9, "noise100": 0.9}}, "sum to"),
]


@pytest.mark.parametrize("name, edit, message", SELECTION_EDITS, ids=[c[0] for c in SELECTION_EDITS])
def test_hand_edited_selection_is_refused(name, edit, message, denoise_data_dir, tmp_path):
    from scalebio.common.selection import MethodInputs, write_selection
    from scalebio.sft.mixture import build_sft_set

    inputs = MethodInputs(str(denoise_data_dir), "m", str(tmp_path / "scalebio"), budget=20)
    path = write_selection(inputs, "scalebio", weights={n: 0.2 for n in inputs.sources}, wall_time_s=0, tokens=0)
    sel = json.loads(path.read_text())
    drop = edit.pop("_drop", None)
    sel.update(edit)
    sel.pop(drop, None)
    path.write_text(json.dumps(sel))
    with pytest.raises(DataError, match=message.replace("(", r"\(").replace(")", r"\)")):
        build_sft_set(path, denoise_data_dir, tmp_path / "sft")
    assert not (tmp_path / "sft").exists()


# ---- command-line overrides of `python -m scalebio reweight` ---------------------------------------------------------
OVERRIDES = [
    ("seed=1.5", "'seed' must be an integer, got 1.5"),
    ("seed=abc", "'seed' must be an integer, got 'abc'"),
    ("budget=many", "'budget' must be an integer, got 'many'"),
    ("options=5", "'options' must be a mapping, got 5"),
    ("max_steps.x=1", "override 'options.max_steps.x=1': 'options.max_steps' is 3, not a mapping"),
    ("lr_theta", "override 'options.lr_theta' must look like key=value"),
    ("nosuch=1", "unknown option(s) ['options.nosuch']"),
    ("lisa.n_layers=two", "'options.lisa.n_layers' must be an integer, got 'two'"),
    ("budget=-5", "budget must be positive, got -5 (leave it out for a reweighting-only run"),
    ("budget=0", "budget must be positive, got 0"),
    ("seed=-1", "'seed' must be >= 0, got -1"),
]


@pytest.mark.parametrize("override, message", OVERRIDES, ids=[o[0] for o in OVERRIDES])
def test_cli_override_errors_are_one_line(override, message, tmp_path, capsys):
    from scalebio.cli import main

    cfg = tmp_path / "run.yaml"
    cfg.write_text(
        yaml.safe_dump({"data": "d", "model": "m", "out": str(tmp_path / "out"), "options": {"max_steps": 3}})
    )
    with pytest.raises(SystemExit) as exc:
        main(["reweight", "--config", str(cfg), "--dry-run", override])
    err = capsys.readouterr().err.strip()
    assert exc.value.code == 2 and len(err.splitlines()) == 1 and message in err, err
    assert not (tmp_path / "out").exists()


# ---- model folders -------------------------------------------------------------------------------------------------
def _broken_model(tiny_model_dir, tmp_path, kind: str) -> Path:
    import torch

    folder = tmp_path / kind
    shutil.copytree(tiny_model_dir, folder)
    weights = folder / "model.safetensors"
    if kind == "corrupt":
        raw = weights.read_bytes()
        weights.write_bytes(raw[:100] + b"garbage" + raw[200:])
    else:  # a pickle checkpoint that would run code when unpickled
        weights.unlink()
        torch.save({"model.embed_tokens.weight": _Exploit()}, folder / "pytorch_model.bin")
    return folder


class _Exploit:
    def __reduce__(self):
        return (print, ("unpickled!",))


@pytest.mark.parametrize(
    "kind, message",
    [
        ("corrupt", "model.safetensors) does not load: SafetensorError"),
        ("pickle", "a pickle checkpoint that torch refuses"),
    ],
)
def test_broken_weights_are_one_line_naming_the_file(kind, message, tiny_model_dir, tmp_path):
    from scalebio.common.modeling import load_model

    folder = _broken_model(tiny_model_dir, tmp_path, kind)
    with pytest.raises(AssetError) as e:
        load_model(folder)
    text = str(e.value)
    assert message in text and "Re-convert it to safetensors" in text and "weights_only=False" not in text
    assert len(text.splitlines()) == 1


# ---- interrupted writes ------------------------------------------------------------------------------------------------
def test_leftover_temporary_folders_are_removed_on_the_next_run(tmp_path):
    final = tmp_path / "model"
    stale = [tmp_path / "model.tmp-12345", tmp_path / "model.tmp-999"]
    for s in stale:
        s.mkdir()
        (s / "half-written.bin").write_bytes(b"x")
    (tmp_path / "model.tmp-1").write_text("stale file")
    with atomic_dir(final) as tmp:
        (tmp / "ok").write_text("done")
    assert (final / "ok").exists() and sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_failed_block_leaves_no_output(tmp_path):
    with pytest.raises(RuntimeError), atomic_dir(tmp_path / "out") as tmp:
        (tmp / "partial").write_text("x")
        raise RuntimeError("crash")
    assert list(tmp_path.iterdir()) == []
