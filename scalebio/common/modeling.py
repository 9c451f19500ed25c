"""Model and tokenizer loading, decoder-layer discovery and per-example losses.

Every stage (ScaleBiO, baselines, SFT, evaluation) loads models and computes losses through this
module, so "the loss of an example" means the same thing everywhere: the mean cross-entropy over
its response tokens (labels != -100).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from scalebio.common.data import IGNORE_INDEX
from scalebio.common.model_settings import apply_prompt_format, attention_for, read_settings
from scalebio.common.runtime import AssetError, hub_enabled, local_rank

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def resolve_model(name_or_path: str | os.PathLike) -> str:
    """Return a loadable id: a local folder, or a hub id when the hub is enabled."""
    p = Path(name_or_path)
    if p.is_dir():
        if not (p / "config.json").exists():
            raise AssetError(f"model folder '{p}' has no config.json; is it a Hugging Face model folder?")
        return str(p)
    if hub_enabled():
        return str(name_or_path)
    raise AssetError(
        f"model '{name_or_path}' is not a local folder and the Hugging Face hub is off. Build the embedded "
        "assets (`snakemake --cores all assets`) or use a config with `hub: true` on a machine with hub access."
    )


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def local_device() -> torch.device:
    """This process's own device: under a launcher its GPU ``LOCAL_RANK``, made the current device first (so that
    nothing lands on GPU 0 by default: 8 ranks loading onto GPU 0 is the failure this prevents), else the CPU."""
    if not torch.cuda.is_available():
        return torch.device("cpu")
    torch.cuda.set_device(local_rank())
    return torch.device("cuda", local_rank())


def load_tokenizer(name_or_path: str | os.PathLike):
    """The tokenizer with the chat template its model folder's settings ask for (``model_settings``: the tokenizer's
    own template, or the official ``###Human:/###Assistant:`` format for base models without one)."""
    from transformers import AutoTokenizer

    path = resolve_model(name_or_path)
    try:
        tok = AutoTokenizer.from_pretrained(path)
    except Exception as e:  # missing or corrupt tokenizer files
        reason = (str(e).strip().splitlines() or [""])[0][:200]
        raise AssetError(f"cannot load a tokenizer from '{path}': {type(e).__name__}: {reason}") from None
    if tok.pad_token is None:
        # Padding positions carry label -100 and attention 0, so any id works; EOS is the convention.
        tok.pad_token = tok.eos_token
    apply_prompt_format(tok, read_settings(path).prompt_format, path)
    return tok


def model_type(path: str) -> str | None:
    """``config.json: model_type`` of a local folder (None for a hub id: transformers reads it itself)."""
    cfg = Path(path) / "config.json"
    try:
        return json.loads(cfg.read_text()).get("model_type") if cfg.is_file() else None
    except ValueError:
        return None  # a broken config.json fails in from_pretrained with its own message


def attention_implementation(path: str, requested: str | None = None) -> str:
    """The attention implementation a model folder is loaded with: ``requested``, else its settings file's, else the
    model family's (``model_settings.attention_for``: eager for Gemma-2, sdpa otherwise)."""
    return requested or attention_for(model_type(path), read_settings(path).attn_implementation)


def load_model(
    name_or_path: str | os.PathLike,
    dtype: str = "float32",
    device: str | torch.device | None = None,
    gradient_checkpointing: bool = False,
    attn_implementation: str | None = None,
    move: bool = True,
):
    """Load a causal LM for training or scoring (``train()`` mode is left to the caller). ``move=False`` leaves the
    weights where ``from_pretrained`` put them (under ZeRO-3's init they are already partitioned over the ranks)."""
    from transformers import AutoModelForCausalLM

    path = resolve_model(name_or_path)
    if dtype not in DTYPES:
        raise AssetError(f"dtype '{dtype}' is not one of {sorted(DTYPES)}")
    device = torch.device(device) if device is not None else default_device()
    try:
        model = AutoModelForCausalLM.from_pretrained(
            path, dtype=DTYPES[dtype], attn_implementation=attention_implementation(path, attn_implementation)
        )
    except Exception as e:  # corrupt weights, a refused pickle, a bad config.json ...
        raise AssetError(load_failure(path, e)) from None
    if move:
        model.to(device)
    model.config.use_cache = False
    if gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    return model


WEIGHT_FILE_ERRORS = ("SafetensorError", "UnpicklingError", "HeaderTooLarge", "EOFError")
"""Exception types that mean the weight files themselves are broken (then re-converting or rebuilding helps)."""


def load_failure(path, error: Exception) -> str:
    """One line saying which model folder failed and with which error, never torch's advice to unpickle unsafely.

    The advice to re-convert the weights is given only when the weight files are what failed; any other error (an
    attention implementation the model family does not support, a bad config.json) is shown as it is, with the
    config key that changes it where there is one."""
    files = sorted(p.name for p in Path(path).glob("*") if p.suffix in (".safetensors", ".bin", ".pt"))
    text = str(error).strip()
    reason = text.splitlines()[0] if text else ""
    kind = type(error).__name__
    head = f"model folder '{path}' ({', '.join(files) or 'no weight files'}) does not load: {kind}: "
    if kind == "UnpicklingError" or "weights_only" in text or "Weights only" in reason:
        reason = "a pickle checkpoint that torch refuses to load safely"
    elif kind not in WEIGHT_FILE_ERRORS:
        hint = ""
        if "attention implementation" in text or "attn_implementation" in text:
            hint = " Set models.<name>.attn_implementation (eager, sdpa or flash_attention_2) in the config."
        return head + reason[:400] + hint
    return (
        head + f"{reason[:200]}. Re-convert it to safetensors (`model.save_pretrained(dir, safe_serialization=True)` "
        "on a machine that can load it) or rebuild the asset (`snakemake --cores all assets`)."
    )


def check_tokenizer_matches(model, tokenizer, where: str = "") -> None:
    weight = model.get_input_embeddings().weight
    rows = getattr(weight, "ds_shape", weight.shape)[0]  # ZeRO-3 partitions it at load: its full shape is ds_shape
    if len(tokenizer) > rows:
        raise AssetError(
            f"{where}tokenizer has {len(tokenizer)} tokens but the model's embedding has {rows} rows: "
            "tokenizer and model do not belong together."
        )


def decoder_layers(model: nn.Module) -> nn.ModuleList:
    """Find the list of transformer blocks by introspection, not a per-architecture table.

    The blocks are the longest ``nn.ModuleList`` whose children all share one class and whose
    length equals ``config.num_hidden_layers`` (or ``n_layer``): this finds ``model.layers`` in
    Llama/Qwen2/Gemma2/Mistral and ``transformer.h`` in GPT-2.
    """
    cfg = getattr(model, "config", None)
    expected = None
    if cfg is not None:
        expected = getattr(cfg, "num_hidden_layers", None) or getattr(cfg, "n_layer", None)
    best = None
    for _, module in model.named_modules():
        if not isinstance(module, nn.ModuleList) or len(module) == 0:
            continue
        if len({type(m) for m in module}) != 1:
            continue
        if expected is not None and len(module) != expected:
            continue
        if best is None or len(module) > len(best):
            best = module
    if best is None:
        raise AssetError(
            f"cannot find the transformer blocks of {type(model).__name__}: no nn.ModuleList of "
            f"{expected} identical blocks. LISA and FSDP wrapping need them; disable LISA for this model."
        )
    return best


def response_logits(model, batch: dict) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Logits only at the positions that predict a response token: ``[N, V]``, their targets ``[N]`` and the
    response mask ``[B, T-1]`` (labels shifted by one).

    Why: the vocabulary projection and its softmax are ~20 % of a SmolLM2 training step (49k vocabulary) and
    ~40 % of the tiny model's, while responses are a minority of the tokens; HF models take a boolean
    ``logits_to_keep`` mask and project only those positions, through their own ``forward`` (so DDP, FSDP,
    DeepSpeed and PEFT wrappers see an ordinary call). Same values as the full logits at those positions.
    """
    labels = batch["labels"][:, 1:]
    mask = labels != IGNORE_INDEX
    keep = F.pad(mask, (0, 1), value=False)  # position t predicts token t+1; the last position predicts nothing
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], logits_to_keep=keep).logits
    return logits, labels[mask], mask


def token_losses(model, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token cross-entropy (fp32; 0 off the response) and the response mask, both of shape [B, T-1]."""
    logits, targets, mask = response_logits(model, batch)
    ce = F.cross_entropy(logits.float(), targets, reduction="none")
    # row-major order of the mask's True entries = the order logits_to_keep returned them in
    return torch.zeros(mask.shape, dtype=ce.dtype, device=ce.device).masked_scatter(mask, ce), mask


def per_example_loss(model, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean response-token loss per example ([B]) and the number of response tokens ([B]).

    An example with no response tokens gets loss 0 (METHOD.md §3.2).
    """
    ce, mask = token_losses(model, batch)
    n = mask.sum(1)
    return (ce * mask).sum(1) / n.clamp(min=1), n


def pooled_token_loss(model, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """Sum of response-token losses over the batch and the token count (for pooled token means)."""
    ce, mask = token_losses(model, batch)
    return (ce * mask).sum(), mask.sum()
