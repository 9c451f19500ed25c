"""Per-model settings that travel with a model folder: prompt format, attention implementation, revision.

A config names them under ``models.<name>`` (``prompt_format``, ``attn_implementation``, ``revision``); the workflow's
``download`` rule writes them into the prepared model folder as ``scalebio_model.json`` (``SETTINGS_FILE``), and
``scalebio.common.modeling.load_tokenizer`` / ``load_model`` read them from whatever folder a job is given. So every
stage (ScaleBiO, the baselines, SFT, evaluation) formats prompts and builds attention the same way for one model,
without an option in each stage's option block; the SFT stage copies the file into the fine-tuned model.

Prompt formats:

- ``chat_template`` (what ``auto`` means when the tokenizer has one): the tokenizer's own template.
- ``human_assistant``: the official ScaleBiO code's fixed format for base models without a template
  (``math/dev_scalebio/python/data.py: tokenize_conversion``): ``###System: ``, ``###Human: `` and ``###Assistant: ``
  before each turn, the end-of-sequence token after each assistant turn. Written as a chat template
  (``HUMAN_ASSISTANT_TEMPLATE``) so masking, generation and saving go through the one code path; differences from the
  official tokenisation: one BOS at the start (the official code's ``add_special_tokens=True`` on every assistant turn
  puts a BOS in front of each), and the generation prompt ends at ``###Assistant:`` with the space starting the reply
  (so the reply tokenises as it does inside the official string).

Attention: ``auto`` picks per model family (``ATTENTION_BY_FAMILY``): Gemma-2 gets ``eager``, because the pinned
transformers refuses ``sdpa`` for it (``ValueError: Gemma2ForCausalLM does not support an attention implementation
through torch.nn.functional.scaled_dot_product_attention yet``) and its attention soft-capping is implemented only
in the eager and flash kernels; every other family gets ``sdpa`` (the suite's default).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

from scalebio.common.runtime import AssetError, atomic_write_json

SETTINGS_FILE = "scalebio_model.json"

HUMAN_ASSISTANT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "{% if message['role'] == 'system' %}{{ '###System: ' + message['content'] }}"
    "{% elif message['role'] == 'user' %}{{ '###Human: ' + message['content'] }}"
    "{% elif message['role'] == 'assistant' %}{{ '###Assistant: ' + message['content'] + eos_token }}"
    "{% endif %}{% endfor %}{% if add_generation_prompt %}{{ '###Assistant:' }}{% endif %}"
)
"""The official ``###Human:/###Assistant:`` format as a chat template (prefix-consistent: the generation prompt
``###Assistant:`` is a prefix of the rendered assistant turn ``###Assistant: reply<eos>``)."""

PROMPT_FORMATS = ("auto", "chat_template", "human_assistant")
ATTENTION = ("auto", "sdpa", "eager", "flash_attention_2")
ATTENTION_BY_FAMILY = {"gemma2": "eager", "gemma3": "eager"}
"""``config.json: model_type`` -> the attention implementation ``auto`` picks (default ``sdpa``)."""


@dataclass
class ModelSettings:
    """What ``models.<name>`` says about loading a model, beyond its path and dtype."""

    prompt_format: Literal["auto", "chat_template", "human_assistant"] = "auto"
    """auto: the tokenizer's chat template, an error naming this key if it has none; human_assistant: the official
    ``###Human:/###Assistant:`` format (base models such as Llama-3-8B, whose tokenizer has no template)."""
    attn_implementation: Literal["auto", "sdpa", "eager", "flash_attention_2"] = "auto"
    """auto: by model family (eager for Gemma-2, sdpa otherwise)."""
    revision: str | None = None
    """Hub revision (a commit hash) the download rule fetched; recorded, not used to load a local folder."""
    source: str | None = None
    """Hub id or local folder the prepared folder was made from."""


def read_settings(folder: str | Path) -> ModelSettings:
    """The settings file of a model folder (defaults when there is none, e.g. the embedded assets)."""
    path = Path(folder) / SETTINGS_FILE
    if not path.is_file():
        return ModelSettings()
    try:
        raw = json.loads(path.read_text())
        return ModelSettings(**{k: v for k, v in raw.items() if k in ModelSettings.__dataclass_fields__})
    except (ValueError, TypeError) as e:
        raise AssetError(f"model settings '{path}' do not parse: {e}") from None


def write_settings(folder: str | Path, settings: ModelSettings) -> None:
    atomic_write_json(Path(folder) / SETTINGS_FILE, asdict(settings))


def attention_for(model_type: str | None, requested: str = "auto") -> str:
    """The attention implementation to load ``model_type`` with (``requested`` unless it is ``auto``)."""
    if requested != "auto":
        return requested
    return ATTENTION_BY_FAMILY.get(model_type or "", "sdpa")


def apply_prompt_format(tokenizer, fmt: str, where: str) -> None:
    """Give ``tokenizer`` the chat template ``fmt`` asks for; a missing template under ``auto`` is an error that names
    the config key that fixes it."""
    if fmt not in PROMPT_FORMATS:
        raise AssetError(f"{where}: prompt_format '{fmt}' is not one of {list(PROMPT_FORMATS)}")
    if fmt == "human_assistant":
        tokenizer.chat_template = HUMAN_ASSISTANT_TEMPLATE
        return
    if not tokenizer.chat_template:
        raise AssetError(
            f"tokenizer '{where}' has no chat template (a base model?); set models.<name>.prompt_format: "
            "human_assistant in the config (the official ###Human:/###Assistant: format), or give the tokenizer a "
            "template (`tokenizer.chat_template = ...` and `save_pretrained`)"
        )


def fold_system(messages: list[dict]) -> list[dict]:
    """System turns folded into the next user turn (``system\\n\\nuser``), for templates that refuse the system
    role (Gemma's raises "System role not supported"); a system turn not followed by a user turn becomes one."""
    out, pending = [], []
    for m in messages:
        if m["role"] == "system":
            pending.append(m["content"])
            continue
        if m["role"] == "user":
            out.append({"role": "user", "content": "\n\n".join([*pending, m["content"]])})
        else:
            if pending:  # a system turn right before an assistant turn: its own user turn
                out.append({"role": "user", "content": "\n\n".join(pending)})
            out.append(dict(m))
        pending = []
    if pending:
        out.append({"role": "user", "content": "\n\n".join(pending)})
    return out
