"""Per-model settings (scalebio/common/model_settings.py): the official prompt format for tokenizers without a chat
template, attention per family (Gemma-2: eager, with the real error shown otherwise), system turns folded where a
template refuses them.

Modules: `scalebio/common/model_settings.py`, `scalebio/common/modeling.py` (load_tokenizer, load_model,
load_failure), `scalebio/common/data.py` (render_chat), `scalebio/assets/models.py` (the tiny stand-ins).
"""

from __future__ import annotations

import pytest

from scalebio.common.data import IGNORE_INDEX, render_chat, tokenize_chat
from scalebio.common.model_settings import ModelSettings, attention_for, fold_system, write_settings
from scalebio.common.runtime import AssetError

SIZES = {"vocab_size": 400, "hidden_size": 32, "num_layers": 2, "num_heads": 2, "num_kv_heads": 1,
         "intermediate_size": 64}  # fmt: skip
CHAT = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "What is 2+2?"},
    {"role": "assistant", "content": "4"},
]


@pytest.fixture(scope="module")
def base_model(tmp_path_factory):
    """A tiny Llama whose tokenizer has no chat template (a base model's)."""
    from scalebio.assets.models import build_tiny

    return build_tiny(tmp_path_factory.mktemp("m") / "base", template="none", **SIZES)


@pytest.fixture(scope="module")
def gemma_model(tmp_path_factory):
    """A tiny Gemma-2 (random init) with Gemma's template, which refuses system turns."""
    from scalebio.assets.models import build_tiny

    return build_tiny(tmp_path_factory.mktemp("m") / "gemma", architecture="gemma2", template="gemma", **SIZES)


def _learned(tok, example) -> str:
    return tok.decode([i for i, lab in zip(example["input_ids"], example["labels"]) if lab != IGNORE_INDEX])


def test_a_tokenizer_without_template_fails_naming_the_key_then_uses_the_official_format(base_model):
    from scalebio.common.modeling import load_tokenizer

    with pytest.raises(AssetError, match="has no chat template.*prompt_format: human_assistant"):
        load_tokenizer(base_model)
    write_settings(base_model, ModelSettings(prompt_format="human_assistant"))
    tok = load_tokenizer(base_model)
    full = tokenize_chat(tok, CHAT, 128)
    text = tok.decode(full["input_ids"])
    assert text == f"{tok.bos_token}###System: Be brief.###Human: What is 2+2?###Assistant: 4{tok.eos_token}"
    assert _learned(tok, full) == f" 4{tok.eos_token}"  # response span: the reply and the end of sequence
    assert _learned(tok, tokenize_chat(tok, CHAT, 128, "assistant_turn")) == f"###Assistant: 4{tok.eos_token}"
    prompt = render_chat(tok, CHAT[:2], add_generation_prompt=True)
    assert prompt.endswith("###Human: What is 2+2?###Assistant:")  # generation starts with the reply's space


def test_gemma2_loads_with_eager_attention_and_folds_system_turns(gemma_model):
    from scalebio.common.modeling import load_model, load_tokenizer

    model = load_model(gemma_model)
    assert type(model).__name__ == "Gemma2ForCausalLM" and model.config._attn_implementation == "eager"
    tok = load_tokenizer(gemma_model)
    with pytest.raises(Exception, match="System role not supported"):
        tok.apply_chat_template(CHAT, tokenize=False)
    text = tok.decode(tokenize_chat(tok, CHAT, 128)["input_ids"])
    assert "<start_of_turn>user\nBe brief.\n\nWhat is 2+2?<end_of_turn>" in text
    assert _learned(tok, tokenize_chat(tok, CHAT, 128)).startswith("4<end_of_turn>")


def test_the_real_attention_error_is_shown_with_the_key_that_changes_it(gemma_model):
    from scalebio.common.modeling import load_model

    with pytest.raises(AssetError) as e:
        load_model(gemma_model, attn_implementation="sdpa")
    text = str(e.value)
    assert "does not support an attention implementation" in text and "attn_implementation" in text
    assert "Re-convert" not in text  # the weights are fine: no advice to convert them


def test_attention_by_family_and_folding_rules():
    assert attention_for("gemma2") == "eager" and attention_for("llama") == attention_for(None) == "sdpa"
    assert attention_for("gemma2", "flash_attention_2") == "flash_attention_2"
    assert fold_system([{"role": "system", "content": "s"}, {"role": "user", "content": "u"}]) == [
        {"role": "user", "content": "s\n\nu"}
    ]
    turns = [{"role": "system", "content": "s"}, {"role": "assistant", "content": "a"}]
    assert fold_system(turns) == [{"role": "user", "content": "s"}, {"role": "assistant", "content": "a"}]
