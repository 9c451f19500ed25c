"""Which examples make up each step's global batch (METHOD.md §8): functions of (seed, stream, step) only.

Used by the ScaleBiO run loop (``trainer.py``) for its training and validation micro-batches.
"""

from __future__ import annotations

import torch

from scalebio.common.streams import seeded_generator


class IIDSampler:
    """Global batch of step s = G micro-batches, each the first m indices of a fresh permutation of
    the pool (v2 re-builds its shuffled DataLoader every micro-step: i.i.d. batches with replacement
    across micro-steps). Process r of P takes micro-batches r·G/P … (r+1)·G/P − 1. A function of
    (seed, stream, step) only, so a resumed run and every process see the same global batch."""

    def __init__(self, n: int, micro: int, n_micro_global: int, seed: int, stream: int):
        self.n, self.micro, self.n_micro_global, self.seed, self.stream = n, micro, n_micro_global, seed, stream

    def _generator(self, key: int) -> torch.Generator:
        return seeded_generator(self.seed, self.stream * 100_003 + key)

    def global_batch(self, step: int) -> list[list[int]]:
        g = self._generator(step)
        return [torch.randperm(self.n, generator=g)[: self.micro].tolist() for _ in range(self.n_micro_global)]

    def indices(self, step: int, rank: int, world: int) -> list[list[int]]:
        per = self.n_micro_global // world
        return self.global_batch(step)[rank * per : (rank + 1) * per]


class CycleSampler(IIDSampler):
    """The official validation loader: shuffled passes over the set, one new permutation per pass, read
    m examples at a time. Micro-batch j of the run takes positions j·m … j·m+m−1 of the endless sequence
    pass 0, pass 1, …, so a micro-batch at the end of a pass continues into the next one (every micro-batch
    has m examples) and every example is visited once per pass."""

    def global_batch(self, step: int) -> list[list[int]]:
        start = step * self.n_micro_global * self.micro
        positions = range(start, start + self.n_micro_global * self.micro)
        perms = {k: self._pass(k) for k in {q // self.n for q in positions}}  # one or a few passes
        flat = [perms[q // self.n][q % self.n] for q in positions]
        return [flat[i : i + self.micro] for i in range(0, len(flat), self.micro)]

    def _pass(self, k: int) -> list[int]:
        return torch.randperm(self.n, generator=self._generator(k)).tolist()
