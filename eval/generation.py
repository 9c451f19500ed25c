"""Batched greedy generation through the model's own chat template: the HF backend and vLLM.

Used by the math and MT-Bench evaluations. ``load_generator`` picks the backend:

- ``hf`` (always available): ``model.generate`` with left padding; prompts sorted by length so a batch pads
  little. Under a launcher (``torchrun``, N processes) every rank generates its share of the prompts and
  the texts are gathered, so N GPUs generate N times as fast (``scalebio.pipeline.launch`` decides N).
- ``vllm`` (GPU machines with ``requirements-vllm.txt``): one process, ``tensor_parallel_size`` GPUs,
  continuous batching. Same prompts (token ids, so no second BOS), greedy, same stop tokens.
- ``auto``: vllm when it is importable and CUDA is available, else hf.

Outputs come back in the input order, special tokens stripped, whitespace trimmed.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from types import SimpleNamespace

import torch
from tqdm.auto import tqdm

from scalebio.common.data import render_chat as render_messages
from scalebio.common.runtime import ConfigError, rank, world_size
from scalebio.common.streams import stream_seed


def render_chat(tokenizer, messages: list[dict]) -> str:
    """The prompt text for ``messages`` with the assistant generation prompt appended (system turns folded into the
    user turn where the template refuses them: ``scalebio.common.data.render_chat``)."""
    return render_messages(tokenizer, messages, add_generation_prompt=True)


TURN_END_TOKENS = ("<|im_end|>", "<|eot_id|>", "<end_of_turn>")


def stop_token_ids(model, tokenizer) -> list[int]:
    """EOS of the tokenizer and the model's generation config, plus ChatML's end of turn."""
    ids = set()
    gen_eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    for value in (tokenizer.eos_token_id, gen_eos):
        if isinstance(value, int):
            ids.add(value)
        elif isinstance(value, (list, tuple)):
            ids.update(v for v in value if isinstance(v, int))
    # A chat turn ends with a marker that is not always the configured EOS (the official stop lists:
    # ChatML <|im_end|>, Llama-3 <|eot_id|>, Gemma <end_of_turn>).
    vocab = tokenizer.get_vocab()
    ids.update(vocab[t] for t in TURN_END_TOKENS if t in vocab)
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
    temperature: float = 0.0,
    seed: int = 0,
) -> list[str]:
    """Continuations of already-rendered ``prompts`` (special tokens stripped, whitespace trimmed): greedy, or sampled
    at ``temperature`` (> 1e-4, FastChat's threshold) from a generator seeded with ``seed`` once per batch, so a
    sampled answer depends on the seed and the batch it falls in, never on what ran before."""
    if not prompts:
        return []
    sample = temperature >= 1e-4
    device = next(model.parameters()).device
    limit = max_prompt_tokens or getattr(model.config, "max_position_embeddings", None)
    encoded = encode_prompts(tokenizer, prompts, max_new_tokens, limit)
    order = sorted(range(len(prompts)), key=lambda i: -len(encoded[i]))
    ranks = world_size() if _group_ready() else 1
    order = order[rank() :: ranks] if ranks > 1 else order  # this rank's share (every rank gets long and short)
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
        if sample:
            torch.manual_seed(stream_seed(seed, start))  # HF's generate samples from the global RNG
        generated = model.generate(
            input_ids=input_ids.to(device),
            attention_mask=attention.to(device),
            max_new_tokens=max_new_tokens,
            do_sample=sample,
            **({"temperature": temperature, "top_p": 1.0, "top_k": 0} if sample else {}),
            num_beams=1,
            use_cache=True,
            pad_token_id=pad_id,
            eos_token_id=eos,
        )
        for row, i in enumerate(idx):
            new = generated[row, width:]
            outputs[i] = tokenizer.decode(new, skip_special_tokens=True).strip()
    if ranks > 1:
        shares: list = [None] * ranks
        torch.distributed.all_gather_object(shares, {i: outputs[i] for i in order})
        for share in shares:
            for i, text in share.items():
                outputs[i] = text
    return outputs


def _group_ready() -> bool:
    return torch.distributed.is_available() and torch.distributed.is_initialized()


def encode_prompts(tokenizer, prompts: list[str], max_new_tokens: int, limit: int | None) -> list[list[int]]:
    """Token ids of rendered prompts (no added special tokens: the template has them); over-long prompts keep
    their end, which holds the question and the generation prompt."""
    encoded = [tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]
    if limit:
        room = max(1, limit - max_new_tokens)
        encoded = [ids[-room:] for ids in encoded]
    return encoded


# ---------------------------------------------------------------- backends


def resolve_backend(backend: str) -> str:
    """auto -> vllm if it is installed and a GPU is present, else hf; vllm without vllm is a clear error."""
    have_vllm = importlib.util.find_spec("vllm") is not None
    if backend == "auto":
        return "vllm" if have_vllm and torch.cuda.is_available() else "hf"
    if backend == "vllm" and not have_vllm:
        raise ConfigError(
            "generation backend 'vllm' is not installed here; install requirements-vllm.txt on a GPU machine "
            "(its own environment: vLLM pins its own torch) or set the evaluation's backend to hf"
        )
    return backend


@dataclass
class Generator:
    """Generation with one backend: ``generate(prompts, max_new_tokens, batch_size, desc)``, greedy unless a
    ``temperature`` is given (MT-Bench's per-category sampling)."""

    tokenizer: object
    backend: str
    model: object = None
    llm: object = None
    stop_ids: list[int] | None = None

    def generate(self, prompts: list[str], max_new_tokens: int, batch_size: int = 8, desc: str = "generate",
                 temperature: float = 0.0, seed: int = 0):  # fmt: skip
        if self.backend == "hf":
            return generate(self.model, self.tokenizer, prompts, max_new_tokens, batch_size, desc, None, temperature,
                            seed)  # fmt: skip
        from vllm import SamplingParams

        engine = getattr(self.llm, "llm_engine", None)
        limit = getattr(getattr(engine, "model_config", None), "max_model_len", None)
        encoded = encode_prompts(self.tokenizer, prompts, max_new_tokens, limit)
        params = SamplingParams(
            temperature=temperature if temperature >= 1e-4 else 0.0,
            seed=seed if temperature >= 1e-4 else None,
            top_p=1.0,
            max_tokens=max_new_tokens,
            stop_token_ids=self.stop_ids,
            skip_special_tokens=True,
        )
        results = self.llm.generate([{"prompt_token_ids": ids} for ids in encoded], params, use_tqdm=True)
        return [r.outputs[0].text.strip() for r in results]


def load_generator(model_path: str, dtype: str, backend: str = "auto", tensor_parallel_size: int = 1) -> Generator:
    """The model (HF: ``eval.common.load_eval_model``; vLLM: ``vllm.LLM``) and its tokenizer."""
    from eval.common import load_eval_model
    from scalebio.common.modeling import load_tokenizer, resolve_model

    backend = resolve_backend(backend)
    if backend == "hf":
        model, tokenizer = load_eval_model(model_path, dtype)
        return Generator(tokenizer, "hf", model=model)
    from transformers import GenerationConfig
    from vllm import LLM

    path = resolve_model(model_path)
    tokenizer = load_tokenizer(path)
    try:
        config = SimpleNamespace(generation_config=GenerationConfig.from_pretrained(path))
    except OSError:  # no generation_config.json: the tokenizer's EOS and turn markers only
        config = None
    llm = LLM(model=path, dtype=dtype, tensor_parallel_size=tensor_parallel_size, seed=0)
    return Generator(tokenizer, "vllm", llm=llm, stop_ids=stop_token_ids(config, tokenizer))
