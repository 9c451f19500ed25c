"""Source weights: p = softmax(θ), θ ∈ R^K initialised to zero (uniform p), kept in fp32.

Method METHOD.md §3.1 (official ``samp_p.py``): no simplex projection; the detached softmax is what
is logged and handed downstream.
"""

from __future__ import annotations

import math

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


# ---- beyond the paper: a stabilised read-out of p (METHOD.md §18) ---------------------------------------
STABILIZE_MODES = ("none", "polyak", "ema")


class WeightAverage:
    """A running average of p over the run, handed downstream instead of the last p when ``stabilize`` is on.

    Why: the official read-out is the p of the last step, one point of a noisy trajectory; over seeds it
    scatters by SD 0.03-0.06 per source (METHOD.md §17). Averaging the trajectory (Polyak-Ruppert) keeps the
    direction the weights share across the late steps and cancels part of their seed-specific wiggle. It is a
    read-out only: θ, and so the run, are exactly those of the official algorithm (minimax.py is untouched).

    - ``polyak``: the arithmetic mean of p_t over the steps t > ⌊start·T⌋ (the last (1 − start) of the run);
    - ``ema``: p̄_t = decay · p̄_{t−1} + (1 − decay) · p_t from p̄_0 = p_0 (uniform).
    Convex combinations of points of the simplex: the average is a distribution too. Kept in float64.
    """

    def __init__(self, mode: str, total_steps: int, start: float = 0.5, decay: float = 0.9, p0=None):
        if mode not in STABILIZE_MODES:
            raise ValueError(f"stabilize mode must be one of {STABILIZE_MODES}, got {mode!r}")
        self.mode, self.decay = mode, decay
        self.first = min(int(start * total_steps) + 1, total_steps)  # first averaged step (1-based)
        self.sum = None if p0 is None else torch.as_tensor(p0).detach().to("cpu", torch.float64).clone()
        self.count = 0

    def update(self, step: int, p: torch.Tensor) -> None:
        """Fold in p after θ's ``step``-th update (1-based)."""
        p = p.detach().to("cpu", torch.float64)
        if self.mode == "polyak" and step >= self.first:
            self.sum = p.clone() if self.count == 0 else self.sum + p
            self.count += 1
        elif self.mode == "ema":
            self.sum = p.clone() if self.sum is None else self.decay * self.sum + (1 - self.decay) * p
            self.count += 1

    def value(self) -> torch.Tensor | None:
        """The stabilised p, or None when off or nothing was averaged yet."""
        if self.mode == "none" or self.count == 0:
            return None
        return self.sum / self.count if self.mode == "polyak" else self.sum.clone()

    def state_dict(self) -> dict:
        return {"sum": self.sum, "count": self.count}

    def load_state_dict(self, state: dict) -> None:
        self.sum, self.count = state["sum"], state["count"]


def average_trajectory(trajectory, mode: str, start: float = 0.5, decay: float = 0.9) -> list[float]:
    """The stabilised p of a logged run: ``trajectory`` = p after steps 1..T (``metrics.jsonl``), uniform p_0."""
    p0 = torch.softmax(torch.zeros(len(trajectory[0])), dim=0)  # θ₀ = 0, as SourceWeights
    avg = WeightAverage(mode, len(trajectory), start, decay, p0=p0)
    for t, p in enumerate(trajectory, start=1):
        avg.update(t, torch.as_tensor(p, dtype=torch.float64))
    out = avg.value()
    return list(trajectory[-1]) if out is None else out.tolist()


# ---- how far θ could move and how far it went (METHOD.md §17) ------------------------------------------
def movement_summary(trajectory: list[list[float]], lr_theta: list[float], warmup: int = 0) -> dict:
    """The movement budget of a run and what it did with it, from p after steps 1..T and η_θ at steps 1..T.

    Adam moves a logit by at most about η_θ per step, so Σ_t η_θ(t) bounds how far θ can travel: p stops
    moving when the schedule ends whether or not θ has converged. ``final_window_dp`` (the largest change of a
    weight over the last 10 % of steps) beside ``final_window_sum_lr_theta`` (the budget left in that window)
    tells the two apart: a small change with budget left means converged, a small change with no budget left
    means schedule-limited.
    """
    steps = len(trajectory)
    if steps == 0:
        return {}
    k = len(trajectory[-1])
    window = max(1, math.ceil(0.1 * steps))
    before = trajectory[steps - window - 1] if steps > window else [1.0 / k] * k  # p_0 is uniform (θ = 0)
    peak = max(lr_theta)
    low = next((t + 1 for t in range(warmup, steps) if lr_theta[t] < 0.1 * peak), None)
    final = trajectory[-1]
    return {
        "sum_lr_theta": float(sum(lr_theta)),
        "max_log_ratio": float(math.log(max(final) / min(final))) if min(final) > 0 else math.inf,
        "final_window_steps": window,
        "final_window_dp": float(max(abs(a - b) for a, b in zip(final, before))),
        "final_window_sum_lr_theta": float(sum(lr_theta[-window:])),
        "lr_theta_peak": float(peak),
        "low_lr_step": low,
    }
