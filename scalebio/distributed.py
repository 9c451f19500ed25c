"""Process-group helpers: one ``Dist`` object hides single-process, DDP and FSDP differences.

Run multi-process with ``torchrun --nproc_per_node N -m scalebio reweight --config FILE`` (or
``accelerate launch -m scalebio reweight ...``): the environment variables those launchers set
(``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``) are all that is read here.

Strategies (option ``distributed``):

- ``ddp``: every process holds full u and w; after gradient accumulation the gradients of the
  parameters that have one are all-reduce-averaged (bucketed) — DDP's arithmetic. The DDP module
  wrapper is not used because its reducer fixes the set of trainable parameters when it is built,
  and LISA changes that set every ``lisa_interval`` steps (a frozen block would hang the reducer,
  an unfrozen one would silently not be synchronised).
- ``fsdp``: FSDP2 ``fully_shard`` (full sharding of parameters, gradients and optimizer state),
  one unit per decoder block (found by introspection), every original parameter kept as its own
  sharded tensor (FSDP1's ``use_orig_params=True``) — the paper's set-up. FSDP averages gradients
  itself. θ is a plain replicated tensor in both cases.
"""

from __future__ import annotations

import math
from datetime import timedelta

import torch
import torch.distributed as tdist
from torch import nn

from scalebio.common import runtime
from scalebio.common.modeling import decoder_layers


class Dist:
    """Single process unless ``init`` found a launcher's environment."""

    def __init__(self, strategy: str = "none", device: torch.device | None = None):
        self.strategy = strategy
        self.device = device or torch.device("cpu")

    @property
    def enabled(self) -> bool:
        return tdist.is_available() and tdist.is_initialized()

    @property
    def world_size(self) -> int:
        return runtime.world_size() if self.enabled else 1

    @property
    def rank(self) -> int:
        return runtime.rank() if self.enabled else 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def sharded(self) -> bool:
        return self.strategy == "fsdp" and self.enabled

    def _reduce(self, t: torch.Tensor, op) -> torch.Tensor:
        if not self.enabled:
            return t
        buf = t.detach().clone().to(self.device)
        tdist.all_reduce(buf, op=op)
        return buf.to(t.device)

    def all_reduce_sum(self, t: torch.Tensor) -> torch.Tensor:
        return self._reduce(t, tdist.ReduceOp.SUM)

    def all_reduce_mean(self, t: torch.Tensor) -> torch.Tensor:
        return self.all_reduce_sum(t) / self.world_size if self.enabled else t

    def sync_grads(self, model: nn.Module) -> None:
        """DDP's gradient average over processes (FSDP already reduced its shards)."""
        if not self.enabled or self.strategy == "fsdp":
            return
        grads = [p.grad for p in model.parameters() if p.grad is not None]
        if not grads:
            return
        flat = torch.cat([g.reshape(-1) for g in grads])
        tdist.all_reduce(flat, op=tdist.ReduceOp.SUM)
        flat /= self.world_size
        offset = 0
        for g in grads:
            g.copy_(flat[offset : offset + g.numel()].view_as(g))
            offset += g.numel()

    def clip_grad_norm(self, model: nn.Module, max_norm: float) -> float:
        """Global gradient norm (before clipping); clips in place when it exceeds ``max_norm``."""
        params = [p for p in model.parameters() if p.grad is not None]
        if not params:
            return 0.0
        if math.isinf(max_norm):
            norm = torch.nn.utils.get_total_norm([p.grad for p in params])
        else:
            norm = torch.nn.utils.clip_grad_norm_(params, max_norm)
        # Under FSDP the gradients are sharded DTensors and the norm is one too; its full value is global.
        return float(norm.full_tensor() if hasattr(norm, "full_tensor") else norm)

    def barrier(self) -> None:
        if self.enabled:
            tdist.barrier()

    # ---- full (unsharded) state for checkpoints: gathered from FSDP shards, plain state dicts otherwise ----
    # torch.distributed.checkpoint / fsdp are imported on use: ~2 s of imports that single-process runs and the
    # workflow's DAG-time option check (which imports this module) never need.
    def full_model_state(self, model: nn.Module) -> dict:
        if not self.sharded:
            return model.state_dict()
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

        return get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))

    def full_optim_state(self, model: nn.Module, opt) -> dict:
        if not self.sharded:
            return opt.state_dict()
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

        return get_optimizer_state_dict(model, opt, options=StateDictOptions(full_state_dict=True, cpu_offload=True))

    def load_full_state(self, model: nn.Module, opt, model_state: dict, optim_state: dict) -> None:
        if not self.sharded:
            model.load_state_dict(model_state)
            opt.load_state_dict(optim_state)
            return
        from torch.distributed.checkpoint.state_dict import StateDictOptions, set_state_dict

        opts = StateDictOptions(full_state_dict=True)
        set_state_dict(model, opt, model_state_dict=model_state, optim_state_dict=optim_state, options=opts)


def init(strategy: str, device: torch.device, timeout_min: float = 30.0) -> Dist:
    """Join the process group a launcher set up (if any) and return the ``Dist`` for ``strategy``.

    ``timeout_min``: how long a collective waits (option ``collective_timeout_min``). FSDP in one process while the
    machine shows several GPUs is an error, not a silent single-GPU run:
    the job was given the GPUs to shard over, so the launcher is missing (``scalebio.pipeline.launch``).
    """
    if runtime.world_size() <= 1:
        n_gpus = torch.cuda.device_count() if device.type == "cuda" else 0
        if strategy == "fsdp" and n_gpus > 1:
            raise runtime.ConfigError(
                f"distributed: fsdp in a single process, but {n_gpus} GPUs are visible; launch one process per GPU "
                f"(torchrun --nproc_per_node {n_gpus} -m scalebio ...; the workflow does this from resources.gpus_per_job)"
            )
        return Dist("none", device)
    if not tdist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        tdist.init_process_group(backend=backend, timeout=timedelta(minutes=timeout_min))
    if device.type == "cuda":
        torch.cuda.set_device(runtime.local_rank())
    return Dist("fsdp" if strategy == "fsdp" else "ddp", device)


def wrap_fsdp(model: nn.Module, device: torch.device) -> nn.Module:
    """FULL_SHARD (FSDP2 ``fully_shard``, reshard after forward) with one unit per decoder block.

    The block class comes from introspection (METHOD.md §14 #15). FSDP2 keeps every original
    parameter as its own sharded DTensor — what FSDP1 calls ``use_orig_params=True`` — so LISA can
    freeze single blocks, and it runs on CPU with gloo (FSDP1 needs an accelerator).
    """
    from torch.distributed.device_mesh import init_device_mesh  # on use, as above
    from torch.distributed.fsdp import fully_shard

    mesh = init_device_mesh(device.type, (tdist.get_world_size(),))
    for block in decoder_layers(model):
        fully_shard(block, mesh=mesh, reshard_after_forward=True)
    fully_shard(model, mesh=mesh, reshard_after_forward=True)
    return model


def shutdown() -> None:
    if tdist.is_available() and tdist.is_initialized():
        tdist.destroy_process_group()
