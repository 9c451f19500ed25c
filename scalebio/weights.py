"""Source weights: p = softmax(θ), θ ∈ R^K initialised to zero (uniform p), kept in fp32.

Method METHOD.md §3.1 (official ``samp_p.py``): no simplex projection; the detached softmax is what
is logged and handed downstream.
"""

from __future__ import annotations

import torch
from torch import nn


class SourceWeights(nn.Module):
    """The upper-level variable λ of the paper, stored as logits θ (one per training source)."""

    def __init__(self, names: list[str]):
        super().__init__()
        self.names = list(names)
        # θ: the paper's λ logits. Zeros => p starts uniform (1/K). fp32 whatever the model dtype.
        self.theta = nn.Parameter(torch.zeros(len(self.names), dtype=torch.float32))

    def probs(self) -> torch.Tensor:
        """p = softmax(θ), differentiable (a fresh graph per call, so every backward can own one)."""
        return torch.softmax(self.theta, dim=0)

    def as_dict(self) -> dict[str, float]:
        with torch.no_grad():
            p = self.probs().double().cpu().tolist()
        return {n: float(v) for n, v in zip(self.names, p)}

    def theta_dict(self) -> dict[str, float]:
        return {n: float(v) for n, v in zip(self.names, self.theta.detach().double().cpu().tolist())}
