"""Batched greedy generation through the model's own chat template (left padding).

Used by the math and MT-Bench evaluations. Prompts are sorted by length so a batch pads little;
outputs come back in the input order.
"""

from __future__ import annotations

import torch
from tqdm.auto import tqdm


def render_chat(tokenizer, messages: list[dict]) -> str:
    """The prompt text for ``messages`` with the assistant generation prompt appended."""
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def stop_token_ids(model, tokenizer) -> list[int]:
    ids = set()
    gen_eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    for value in (tokenizer.eos_token_id, gen_eos):
        if isinstance(value, int):
            ids.add(value)
        elif isinstance(value, (list, tuple)):
            ids.update(v for v in value if isinstance(v, int))
    # ChatML models end a turn with <|im_end|>, which is not always the configured EOS.
    im_end = tokenizer.convert_tokens_to_ids("<|im_end|>") if "<|im_end|>" in tokenizer.get_vocab() else None
    if im_end is not None:
        ids.add(im_end)
    return sorted(ids)


@torch.no_grad()
def generate(
    model,
    tokenizer,
    prompts: list[str],
    max_new_tokens: int,
    batch_size: int = 8,
    desc: str = "generate",
    max_prompt_tokens: int | None = None,
) -> list[str]:
    """Greedy continuations of already-rendered ``prompts`` (special tokens stripped, whitespace trimmed)."""
    if not prompts:
        return []
    device = next(model.parameters()).device
    encoded = [tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]
    limit = max_prompt_tokens or getattr(model.config, "max_position_embeddings", None)
    if limit:
        room = max(1, limit - max_new_tokens)
        # Keep the end of an over-long prompt: it holds the question and the generation prompt.
        encoded = [ids[-room:] for ids in encoded]
    order = sorted(range(len(prompts)), key=lambda i: -len(encoded[i]))
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    eos = stop_token_ids(model, tokenizer)
    outputs: list[str] = [""] * len(prompts)
    for start in tqdm(range(0, len(order), batch_size), desc=desc, unit="batch"):
        idx = order[start : start + batch_size]
        width = max(len(encoded[i]) for i in idx)
        input_ids = torch.full((len(idx), width), pad_id, dtype=torch.long)
        attention = torch.zeros((len(idx), width), dtype=torch.long)
        for row, i in enumerate(idx):
            ids = encoded[i]
            input_ids[row, width - len(ids) :] = torch.tensor(ids)  # left padding
            attention[row, width - len(ids) :] = 1
        generated = model.generate(
            input_ids=input_ids.to(device),
            attention_mask=attention.to(device),
            max_new_tokens=max_new_tokens,
            do_sample=False,
            num_beams=1,
            use_cache=True,
            pad_token_id=pad_id,
            eos_token_id=eos,
        )
        for row, i in enumerate(idx):
            new = generated[row, width:]
            outputs[i] = tokenizer.decode(new, skip_special_tokens=True).strip()
    return outputs
