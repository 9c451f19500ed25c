"""u and w under FSDP without ever holding a full copy per process: built on the meta device, sharded, then filled.

Loading both copies the ordinary way (``load_model`` on every rank, then ``fully_shard``) holds 2 × the model per GPU
before the first shard exists: 29.9 GiB for Llama-3-8B in bf16, 122 GiB for Qwen-2.5-32B (more than an H100 has). The
FSDP path here, the way torchtune and torchtitan do it:

1. ``build_empty``: the model from its ``config.json`` with every parameter on the meta device (``init_empty_weights``
   of accelerate, buffers kept real: the rotary frequencies are computed, not stored), attention and settings as
   ``load_model`` picks them (``common.modeling.attention_implementation``);
2. the caller finds the decoder blocks (LISA) and shards (``distributed.wrap_fsdp``), still on meta;
3. ``materialise``: ``to_empty`` allocates this rank's shards only, then every tensor of the safetensors files is read
   as the rows this rank holds (``safe_open(...).get_slice``: FSDP2 shards dim 0 in ``torch.chunk`` pieces), at most
   ``SLICE_BYTES`` at a time, cast and copied in. A rank's real parameter storage is its shard plus one slice being
   copied (``LoadStats``).

Single-process and DDP runs keep ``load_model`` (the whole model is what each of them holds anyway).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from scalebio.common.modeling import DTYPES, attention_implementation, resolve_model
from scalebio.common.runtime import AssetError


@dataclass
class LoadStats:
    """What ``materialise`` allocated on this rank (bytes)."""

    real_before: int = 0
    """Real (non-meta) parameter storage before materialising: 0 when the model was built on meta."""
    local: int = 0
    """This rank's parameter shards."""
    full: int = 0
    """The whole model's parameters (what a rank would hold if it loaded the model before sharding)."""
    largest_slice: int = 0
    """The largest slice of a checkpoint tensor held at once while copying (the transient on top of the shard)."""


def build_empty(model_path: str, dtype: str, gradient_checkpointing: bool = False) -> nn.Module:
    """The causal LM of ``model_path`` with its parameters on the meta device (no storage), ready to shard."""
    from accelerate import init_empty_weights
    from transformers import AutoConfig, AutoModelForCausalLM

    path = resolve_model(model_path)
    config = AutoConfig.from_pretrained(path)
    with init_empty_weights(include_buffers=False):
        model = AutoModelForCausalLM.from_config(
            config, dtype=DTYPES[dtype], attn_implementation=attention_implementation(path)
        )
    model.tie_weights()  # from_config leaves tied heads (tie_word_embeddings) untied; from_pretrained ties them
    model.config.use_cache = False
    if gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    return model


def weight_files(path: Path) -> list[Path]:
    """The safetensors files of a model folder (the index's files for a sharded checkpoint)."""
    index = path / "model.safetensors.index.json"
    if index.is_file():
        return sorted({path / f for f in json.loads(index.read_text())["weight_map"].values()})
    files = sorted(path.glob("*.safetensors"))
    if not files:
        raise AssetError(
            f"model folder '{path}' has no safetensors weights; FSDP loads its shards from safetensors files "
            "(convert with `model.save_pretrained(dir, safe_serialization=True)`)"
        )
    return files


def _rows(shape: torch.Size, rank: int, world: int) -> tuple[int, int]:
    """The dim-0 rows ``[start, stop)`` of FSDP2's shard of rank ``rank`` (``torch.chunk`` sizes: ceil, the tail
    shorter or empty)."""
    per = -(-shape[0] // world) if len(shape) else 0
    start = min(rank * per, shape[0] if len(shape) else 0)
    return start, min(start + per, shape[0] if len(shape) else 0)


SLICE_BYTES = 64 * 2**20
"""At most this much of a checkpoint tensor is read at once (the embedding of a 128k vocabulary is 1 GiB in bf16)."""


def _copy_rows(f, key: str, local: torch.Tensor, start: int, stop: int, slice_bytes: int, stats: LoadStats) -> None:
    """Rows ``start:stop`` of tensor ``key`` of the open safetensors file ``f`` into ``local``, a few rows at a time."""
    if local.dim() == 0:
        local.copy_(f.get_tensor(key))
        return
    if stop - start != local.shape[0]:
        raise AssetError(f"'{key}': rows {start}:{stop} do not fit the shard of shape {tuple(local.shape)}")
    row_bytes = max(1, local[0].numel() * local.element_size()) if len(local) else 1
    step = max(1, slice_bytes // row_bytes)
    for a in range(start, stop, step):
        piece = f.get_slice(key)[a : min(a + step, stop)]
        stats.largest_slice = max(stats.largest_slice, piece.numel() * piece.element_size())
        local[a - start : a - start + len(piece)].copy_(piece.to(local.dtype))


def materialise(model: nn.Module, model_path: str, device: torch.device, slice_bytes: int = SLICE_BYTES) -> LoadStats:
    """Allocate this rank's shards of the (sharded, meta) ``model`` on ``device`` and fill them from the checkpoint,
    reading at most ``slice_bytes`` of a tensor at once."""
    from safetensors import safe_open
    from torch.distributed.tensor import DTensor

    stats = LoadStats()
    params = dict(model.named_parameters())
    stats.real_before = sum(p.numel() * p.element_size() for p in params.values() if not p.is_meta)
    stats.full = sum(p.numel() * p.element_size() for p in params.values())
    buffers = {name: b.detach().clone() for name, b in model.named_buffers()}  # real, computed at build
    model.to_empty(device=device)
    with torch.no_grad():
        for name, value in buffers.items():
            owner, _, leaf = name.rpartition(".")
            model.get_submodule(owner)._buffers[leaf] = value.to(device)
        missing = set(params)
        for file in weight_files(Path(resolve_model(model_path))):
            with safe_open(str(file), framework="pt", device="cpu") as f:
                for key in f.keys():
                    p = params.get(key)
                    if p is None:
                        continue
                    local = p.to_local() if isinstance(p, DTensor) else p
                    rank, world = (
                        (p.device_mesh.get_local_rank(), p.device_mesh.size()) if isinstance(p, DTensor) else (0, 1)
                    )
                    _copy_rows(f, key, local, *_rows(p.shape, rank, world), slice_bytes, stats)
                    missing.discard(key)
    if missing:
        raise AssetError(f"model folder '{model_path}': no weights for {sorted(missing)[:5]} in its safetensors files")
    stats.local = sum(
        (p.to_local() if isinstance(p, DTensor) else p).numel() * p.element_size() for p in model.parameters()
    )
    return stats
