"""LISA: randomised block-coordinate updates (METHOD.md §7), for ScaleBiO's u and w and for SFT.

Every ``interval`` steps all transformer blocks are frozen and ``n_layers`` of them, drawn uniformly
without replacement, are unfrozen; embeddings, the final norm and the LM head (everything outside the
blocks) always train. One sampler serves every user (the ScaleBiO trainer, the SFT callback in
``scalebio.common.training``): the blocks of a period are a function of (seed, stream, period) only, so a
resumed run and every process of a multi-process run draw the same blocks, and u and w (different streams)
draw independently.

A frozen parameter gets ``requires_grad=False`` and ``grad=None``; torch's AdamW only visits parameters
whose ``grad`` is not None, so a frozen block receives no update at all (no momentum, no decoupled weight
decay; ``tests/test_common_lisa.py`` checks this bit for bit). By default the optimizer state (Adam
moments) of a block that is frozen again is *released*, so inactive blocks really cost no optimizer memory
— that is where LISA's memory saving comes from. ``keep_optimizer_state: true`` keeps it, as the official
code does (its moments then resume, stale, when the block is drawn again).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from scalebio.common.modeling import decoder_layers
from scalebio.common.runtime import ConfigError
from scalebio.common.streams import lisa_salt, seeded_generator


@dataclass
class LisaConfig:
    """LISA options (``lisa:`` inside ``methods.scalebio`` and inside ``sft``)."""

    n_layers: int = 0
    """Decoder blocks trained at a time; 0 = LISA off (every block trains). Official: 4 (v2 ScaleBiO), 2 (v1, SFT)."""
    interval: int = 20
    """Steps between re-draws of the active blocks (official: 20)."""
    keep_optimizer_state: bool = False
    """Keep the Adam moments of re-frozen blocks (official behaviour). Default false: release them, so
    inactive blocks cost no optimizer memory."""
    same_blocks: bool = True
    """ScaleBiO only: u and w train the same blocks in every period. ``false`` = independent draws (official code),
    which can reverse the learned weights: L2(w) − L2(u) then measures which copy trains the better blocks
    (``scalebio/README.md``, "LISA and short responses")."""

    @property
    def enabled(self) -> bool:
        return self.n_layers > 0

    def validate(self) -> None:
        if self.n_layers < 0 or self.interval < 1:
            raise ConfigError(f"lisa: n_layers must be >= 0 and interval >= 1, got {self.n_layers} and {self.interval}")


class LayerSampler:
    """Which blocks are active in each period: a function of (seed, stream, period) only."""

    def __init__(self, n_blocks: int, n_layers: int, interval: int, seed: int, stream: str):
        if not 1 <= n_layers <= n_blocks:
            raise ConfigError(
                f"lisa.n_layers={n_layers} but the model has {n_blocks} decoder blocks; choose 1..{n_blocks}"
            )
        self.n_blocks, self.n_layers, self.interval, self.seed = n_blocks, n_layers, interval, seed
        self.salt = lisa_salt(stream)  # u and w (and SFT) draw independently

    def draw(self, step: int) -> list[int]:
        """Active blocks of the period that contains ``step``."""
        switch_step = step - step % self.interval
        g = seeded_generator(self.seed, self.salt * 7919 + switch_step)
        return sorted(torch.randperm(self.n_blocks, generator=g)[: self.n_layers].tolist())


class LISA:
    """Layer switching for one model and its optimizer."""

    def __init__(self, model: nn.Module, optimizer, cfg: LisaConfig, seed: int, stream: str):
        self.model, self.optimizer, self.cfg = model, optimizer, cfg
        self.blocks = decoder_layers(model)  # raises an AssetError naming the model if none is found
        self.sampler = LayerSampler(len(self.blocks), cfg.n_layers, cfg.interval, seed, stream)
        self.active: list[int] = []

    def maybe_switch(self, step: int) -> bool:
        """Re-draw at steps 0, interval, 2·interval, ... (and on the first call after a resume)."""
        if self.active and step % self.cfg.interval != 0:
            return False
        self.apply(self.sampler.draw(step))
        return True

    def apply(self, active: list[int]) -> None:
        self.active = list(active)
        state = getattr(self.optimizer, "optimizer", self.optimizer).state if self.optimizer is not None else {}
        for i, block in enumerate(self.blocks):
            on = i in self.active
            for p in block.parameters():
                p.requires_grad_(on)
                if not on:
                    p.grad = None
                    if not self.cfg.keep_optimizer_state:
                        state.pop(p, None)

    def frozen_parameters(self) -> list[nn.Parameter]:
        return [p for i, b in enumerate(self.blocks) if i not in self.active for p in b.parameters()]
