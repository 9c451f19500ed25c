"""LISA: randomized block-coordinate updates of u and w (method notes §7).

Every ``interval`` steps all transformer blocks are frozen and ``n_layers`` of them, drawn
uniformly without replacement, are unfrozen; u and w draw independently. Embeddings, the final
norm and the LM head (everything outside the blocks) always train.

A frozen parameter gets ``requires_grad=False`` and ``grad=None``; torch's AdamW only visits
parameters whose ``grad`` is not None, so a frozen block receives no update at all (no momentum
and no decoupled weight decay; ``tests/test_scalebio_lisa.py`` checks this bit for bit).

Default: the optimizer state (Adam moments) of a block that is frozen again is *released*, so
the memory of inactive blocks is really freed — that is where LISA's memory saving comes from.
``keep_optimizer_state=True`` keeps it, as the official code does (its moments then resume,
stale, when the block is drawn again).
"""

from __future__ import annotations

import torch
from torch import nn

from scalebio.modeling import decoder_layers


class LISA:
    """Layer switching for one model copy and its optimizer."""

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        n_layers: int,
        interval: int,
        seed: int,
        name: str,
        keep_optimizer_state: bool = False,
    ):
        self.model = model
        self.optimizer = optimizer
        self.blocks = decoder_layers(model)  # raises an AssetError naming the model if none is found
        if not 1 <= n_layers <= len(self.blocks):
            from scalebio.runtime import ConfigError

            raise ConfigError(
                f"lisa_n_layers={n_layers} but the model has {len(self.blocks)} decoder blocks; "
                f"choose 1..{len(self.blocks)}"
            )
        self.n_layers = n_layers
        self.interval = interval
        self.seed = seed
        self.salt = sum(map(ord, name))  # u and w draw independently
        self.keep_optimizer_state = keep_optimizer_state
        self.active: list[int] = []

    def draw(self, step: int) -> list[int]:
        """Active blocks for the switch at ``step``: a function of (seed, model, step) only, so a
        resumed run (or every process of a multi-process run) draws the same blocks."""
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.salt * 7919 + step)
        return sorted(torch.randperm(len(self.blocks), generator=g)[: self.n_layers].tolist())

    def maybe_switch(self, step: int) -> bool:
        """Re-draw at steps 0, interval, 2·interval, ... (and on the first call after a resume)."""
        if self.active and step % self.interval != 0:
            return False
        switch_step = step - step % self.interval
        self.apply(self.draw(switch_step))
        return True

    def apply(self, active: list[int]) -> None:
        self.active = list(active)
        for i, block in enumerate(self.blocks):
            on = i in self.active
            for p in block.parameters():
                p.requires_grad_(on)
                if not on:
                    p.grad = None
                    if not self.keep_optimizer_state:
                        self.optimizer.state.pop(p, None)

    def frozen_parameters(self) -> list[nn.Parameter]:
        return [p for i, b in enumerate(self.blocks) if i not in self.active for p in b.parameters()]
