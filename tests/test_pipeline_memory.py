"""The memory plan (scalebio/pipeline/memory.py): model sizes from their shapes, what each stage needs, and that a
config asking for too little fails when the DAG is built (check-config, snakemake -n)."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from scalebio.pipeline import memory
from scalebio.pipeline.configcheck import check

ROOT = Path(__file__).resolve().parents[1]
PAPER = sorted((ROOT / "config" / "paper").glob("*.yaml"))


@pytest.mark.parametrize(
    "model, billions",
    [("meta-llama/Meta-Llama-3-8B", 8.03), ("google/gemma-2-9b", 9.24), ("Qwen/Qwen2-7B", 7.62),
     ("Qwen/Qwen2.5-32B", 32.76), ("Qwen/Qwen2.5-0.5B-Instruct", 0.494), ("HuggingFaceTB/SmolLM2-135M", 0.1345)],
)  # fmt: skip
def test_parameter_counts_match_the_published_sizes(model, billions):
    assert memory.KNOWN_SHAPES[model].params / 1e9 == pytest.approx(billions, rel=0.005)


def test_lora_dimension_of_less_at_8b():
    """LoRA r 128 on q, k, v, o of Llama-3-8B: D ≈ 1.09e8 (the issue's figure; 3.25 TiB as a dense D x 8192 fp32)."""
    d = memory.KNOWN_SHAPES["meta-llama/Meta-Llama-3-8B"].lora(128, ["q_proj", "k_proj", "v_proj", "o_proj"])
    assert d == pytest.approx(1.09e8, rel=0.01) and d * 8192 * 4 / 2**40 == pytest.approx(3.25, rel=0.01)


def _config(name: str) -> dict:
    return yaml.safe_load((ROOT / "config" / "paper" / name).read_text())


@pytest.mark.parametrize("path", PAPER, ids=lambda p: p.name)
def test_every_paper_config_fits_what_it_asks_for(path):
    cfg = yaml.safe_load(path.read_text())
    assert memory.problems(cfg) == []
    text = memory.render(cfg)
    assert "sft" in text and "scalebio" in text


def test_the_plan_sees_what_the_issue_measured():
    cfg = _config("math_llama3_8b.yaml")
    rows = {r.stage: r for r in memory.plan(cfg)["llama3-8b"]}
    assert "built on meta" in rows["scalebio"].note and rows["scalebio"].gpu < 20  # sharded over 8
    one = copy.deepcopy(cfg)
    one["methods"]["scalebio"]["distributed"] = "ddp"  # two whole bf16 copies + AdamW on every GPU
    unsharded = {r.stage: r for r in memory.plan(one)["llama3-8b"]}["scalebio"]
    assert "2 full copies (29.9)" in unsharded.note  # the issue's 29.9 GiB per GPU before sharding
    assert unsharded.gpu > 3 * rows["scalebio"].gpu
    big = _config("math_qwen25_32b.yaml")
    assert {r.stage: r for r in memory.plan(big)["qwen2.5-32b"]}["sft"].host > 500  # the offloaded optimizer


def test_too_little_memory_is_a_config_error_naming_the_stage_and_the_key():
    cfg = _config("math_qwen25_32b.yaml")
    cfg["resources"]["host_memory_gb"] = 256
    errors = check(cfg)
    assert any("qwen2.5-32b sft needs" in e and "resources.host_memory_gb is 256" in e for e in errors), errors
    cfg = _config("math_llama3_8b.yaml")
    cfg["methods"]["rho_loss"]["holdout"].pop("deepspeed")
    cfg["methods"]["rho_loss"]["holdout"]["dtype"] = "float32"  # the old '{}': an fp32 full fine-tune on one GPU
    assert any("rho_loss holdout needs" in e and "gpu_memory_gb" in e for e in check(cfg))


def test_a_cpu_config_has_no_plan():
    assert memory.plan(yaml.safe_load((ROOT / "config" / "ci.yaml").read_text())) == {}


def test_a_tensor_parallel_size_that_does_not_divide_the_heads_is_a_config_error():
    """Qwen2-7B has 28 heads: vLLM on all 8 GPUs refuses it, so the shipped config sets 4; without that, check-config
    names the key and the head count (before any job queues for GPUs)."""
    cfg = _config("math_qwen2_7b.yaml")
    assert memory.tensor_parallel_problems(cfg) == []
    for ev in ("gsm8k", "math"):
        cfg["eval"][ev].pop("tensor_parallel_size")
    errors = check(cfg)
    assert any("eval.gsm8k.tensor_parallel_size: 8" in e and "28 attention heads" in e for e in errors), errors
    cfg["eval"]["gsm8k"]["backend"] = "hf"  # HF generation is data-parallel: no head constraint
    assert not any("eval.gsm8k." in e for e in check(cfg))
    llama = _config("math_llama3_8b.yaml")  # 32 heads, 8 KV heads: 8 GPUs are fine
    assert memory.tensor_parallel_problems(llama) == []
