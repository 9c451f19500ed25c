"""Seeded random streams: the one formula behind every generator the suite draws from by (seed, key).

A draw that must be the same on every process, after a resume and on every machine is made from a fresh
``torch.Generator`` seeded by ``seeded_generator(seed, key)`` instead of the global RNG, so it depends on
(seed, key) only. Each user keeps its streams apart by the keys it passes (the formulas are fixed: changing one
changes every selection, SFT set and model built since):

- ``scalebio.sampling``: training / validation batches, key = stream · 100 003 + step (or pass);
- ``scalebio.common.lisa``: LISA's blocks, key = ``LISA_STREAMS[stream]`` · 7 919 + the period's first step;
- ``scalebio.sft.online``: the online SFT draws, key = epoch;
- ``baselines.less``: the gradient projection, key = the matrix block (``countsketch``: generated on the gradients'
  device);
- ``eval.generation``: sampled answers (MT-Bench's sampled categories), the global RNG seeded with the same rule,
  key = the batch's first prompt (HF's ``generate`` takes no generator).
"""

from __future__ import annotations

import torch

SEED_STRIDE = 1_000_003
"""Seeds are spread by this prime so that (seed, key) and (seed + 1, key') meet only for keys a million apart."""

LISA_STREAMS = {"u": 117, "w": 119, "sft": 333}
"""LISA's streams and their salts. The values are the historical ``sum(map(ord, name))`` (kept so that every
draw stays bit-identical), now a table: that sum gave anagrams ("uw", "wu") the same blocks; a new stream needs
a new, distinct salt here (``tests/test_common_streams.py`` checks they differ)."""


def stream_seed(seed: int, key: int = 0) -> int:
    """The seed of stream ``key`` of run seed ``seed``: ``seed · SEED_STRIDE + key`` (mod 2⁶³, the range
    ``manual_seed`` takes)."""
    return (seed * SEED_STRIDE + key) % 2**63


def seeded_generator(seed: int, key: int = 0, device: str | torch.device = "cpu") -> torch.Generator:
    """A generator on ``device`` (the CPU by default) seeded with ``stream_seed(seed, key)``. Another device type
    draws other numbers from the same seed (its own RNG algorithm)."""
    return torch.Generator(device=device).manual_seed(stream_seed(seed, key))


def lisa_salt(stream: str) -> int:
    """The salt of LISA stream ``stream`` (``LISA_STREAMS``)."""
    if stream not in LISA_STREAMS:
        raise ValueError(f"internal: LISA stream '{stream}' has no salt; add it to LISA_STREAMS")
    return LISA_STREAMS[stream]
