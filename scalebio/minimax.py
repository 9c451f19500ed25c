"""One ScaleBiO step, written to be read next to the paper (METHOD.md §2-§5).

The penalty minimax (ACL 2025 / v2 semantics)::

    min_(θ, w) max_u  𝓛_α(θ, w, u) = L1(w) + α · [ L2(w, p) − L2(u, p) ],   p = softmax(θ)

    L2_B(model, p) = Σ_{i∈B} (p_{s_i} / c_{s_i}) · ℓ_i      ℓ_i = mean response-token CE of example i
                                                          c_k = #examples of source k in the GLOBAL batch
    L1_V(w)        = Σ_{i∈V} Σ_{t∈R_i} CE_t / Σ_{i∈V} |R_i|  (pooled token mean over the global val batch)
    several validation sets V_1..V_J (beyond the paper): L1 = Σ_j c_j L1_{V_j}, c from scalebio/objectives.py

One step, in this order (METHOD.md §4):

    (1) u ← AdamW(maximize=True) on  −α·L2(u, p)           [u ascends 𝓛_α; = descent on α·L2(u)]
    (2) w ← AdamW                on  +α·L2(w, p) + L1(w)    [same train micro-batches as (1)]
    (3) θ ← AdamW                on  ∇_θ 𝓛_α = α[∇_θ L2(w,p) − ∇_θ L2(u,p)]
        θ's gradient is accumulated by autograd during (1) and (2), i.e. from the PRE-update u and w;
        it is all-reduce-meaned across processes before the step.

Multi-process: each process sums its own examples with the *global* c_k (or global token count)
and scales by P (world size), which cancels the gradient averaging of DDP/FSDP, so the model
gradient is exactly that of the global-batch loss (v2's ×P). θ is replicated; its gradient is
averaged by hand, which with the ×P factor gives α × the global-batch θ-gradient.

The loss functions are parameters so that the same step runs on LLMs (``per_example_loss``,
``pooled_token_loss``) and on the linear models of the known-answer test.

    python -m scalebio reweight --config my.yaml      # the run loop around this file: trainer.py
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from scalebio.common.modeling import IGNORE_INDEX, per_example_loss, pooled_token_loss
from scalebio.common.runtime import SuiteError
from scalebio.distributed import Dist
from scalebio.objectives import Objectives
from scalebio.weights import SourceWeights

PerExampleLoss = Callable[[nn.Module, dict], tuple[torch.Tensor, torch.Tensor]]
PooledLoss = Callable[[nn.Module, dict], tuple[torch.Tensor, torch.Tensor]]


class DivergenceError(SuiteError):
    """A loss or gradient became NaN/inf: the run stops before any weight is written."""


def global_source_counts(train_batches: list[dict], num_sources: int, dist: Dist) -> torch.Tensor:
    """c_k: examples of source k in the global batch (all micro-steps of all processes)."""
    c = sum(torch.bincount(b["source"].cpu(), minlength=num_sources) for b in train_batches)
    return dist.all_reduce_sum(c.to(torch.float64)).to(torch.float32)


def response_token_count(batch: dict) -> int:
    """|R_i| summed over a micro-batch (labels are shifted by one, as in the loss)."""
    return int((batch["labels"][:, 1:] != IGNORE_INDEX).sum())


def global_response_tokens(val_batches: list[dict], dist: Dist, count=response_token_count) -> torch.Tensor:
    """Σ_{i∈V} |R_i| over the global validation batch (all micro-steps of all processes)."""
    n = sum(count(b) for b in val_batches)
    return dist.all_reduce_sum(torch.tensor(float(n), dtype=torch.float64)).to(torch.float32)


def weighted_train_loss(
    model: nn.Module, batch: dict, p: torch.Tensor, counts: torch.Tensor, per_example: PerExampleLoss
) -> torch.Tensor:
    """This micro-batch's share of L2_B(model, p) = Σ_i (p_{s_i}/c_{s_i}) ℓ_i (differentiable in model and p)."""
    ell, _ = per_example(model, batch)  # ℓ_i
    s = batch["source"].to(p.device)  # s_i
    coef = p[s] / counts.to(p.device)[s]  # p_{s_i} / c_{s_i}
    return (coef.to(ell.dtype) * ell).sum()


def validation_loss(model: nn.Module, batch: dict, n_tokens: torch.Tensor, pooled: PooledLoss) -> torch.Tensor:
    """This micro-batch's share of L1_V(w): its summed response-token CE over the global token count."""
    total, _ = pooled(model, batch)
    return total / n_tokens.to(total.device)


def _finite(name: str, value: float, step: int) -> None:
    if not math.isfinite(value):
        raise DivergenceError(
            f"step {step}: {name} is {value}; the run diverged and no weights were written. "
            "Lower lr_u/lr_w/lr_theta or alpha, keep clip_model on, or use dtype float32."
        )


@dataclass
class Minimax:
    """Holds the three variables (u, w, θ), their optimizers and the step's constants."""

    u: nn.Module
    """Model copy tracking argmin_u L2(u, p) (the paper's u)."""
    w: nn.Module
    """Model copy pulled toward low L1 and low α·L2 (the paper's w; the evaluated model)."""
    weights: SourceWeights
    """θ, the source-weight logits (the paper's λ)."""
    opt_u: torch.optim.Optimizer
    """AdamW(maximize=True) on u."""
    opt_w: torch.optim.Optimizer
    opt_theta: torch.optim.Optimizer
    alpha: float
    """α, the penalty weight (set per outer iteration: α0·τ^(i+1))."""
    max_grad_norm: float | None = 1.0
    """Clip ‖∇u‖ and ‖∇w‖ at α·max_grad_norm (v2 ``--clip_model``); None = no clipping."""
    dist: Dist = field(default_factory=Dist)
    per_example: PerExampleLoss = per_example_loss
    pooled: PooledLoss = pooled_token_loss
    val_count: Callable[[dict], int] = response_token_count
    """Units L1 is averaged over (response tokens for LLMs; examples for the linear test models)."""
    objectives: Objectives | None = None
    """Several validation sets: how their losses combine into L1 (None: one set, ``val_batches`` a list)."""
    _grad_theta_u: torch.Tensor | None = field(default=None, init=False, repr=False)

    # ---- (1) u ---------------------------------------------------------------------------------
    def update_u(self, train_batches: list[dict], counts: torch.Tensor, step: int = 0) -> dict:
        P = self.dist.world_size
        l2_u = 0.0
        for b in train_batches:
            p = self.weights.probs()
            part = weighted_train_loss(self.u, b, p, counts, self.per_example)
            (-self.alpha * P * part).backward()  # grads on u AND θ: −α ∇L2(u, p)
            l2_u += float(part.detach())
        # Keep θ's u-part apart from its w-part and add them in update_theta: when u and w are equal
        # (step 0) the two parts are exact negatives and cancel to exactly 0, instead of leaving a
        # summation-order rounding residue that Adam would blow up into a full-size random θ step.
        self._grad_theta_u, self.weights.theta.grad = self.weights.theta.grad, None
        l2_u = float(self.dist.all_reduce_sum(torch.tensor(l2_u, dtype=torch.float64)))
        _finite("L2(u)", l2_u, step)
        gnorm, clipped = self._sync_and_clip(self.u, step, "u")
        self.opt_u.step()  # maximize=True: u ascends 𝓛_α, i.e. descends α·L2(u, p)
        self.opt_u.zero_grad(set_to_none=True)
        return {"L2(u)": l2_u, "grad_norm_u": gnorm, "clipped_u": clipped}

    # ---- (2) w ---------------------------------------------------------------------------------
    def update_w(
        self,
        train_batches: list[dict],
        val_batches: list[dict] | dict[str, list[dict]],
        counts: torch.Tensor,
        step: int = 0,
    ) -> dict:
        P = self.dist.world_size
        l2_w = 0.0
        for b in train_batches:  # the same micro-batches u saw
            p = self.weights.probs()
            part = weighted_train_loss(self.w, b, p, counts, self.per_example)
            (self.alpha * P * part).backward()  # grads on w AND θ: +α ∇L2(w, p)
            l2_w += float(part.detach())
        # One validation set, or several: L1 = Σ_j c_j L1_j with c_j from self.objectives (scalebio/objectives.py)
        sets = val_batches if isinstance(val_batches, dict) else {"validation": val_batches}
        coef = self.objectives.coefficients() if self.objectives else {name: 1.0 for name in sets}
        l1_parts = {}
        for name, batches in sets.items():
            n_tok = global_response_tokens(batches, self.dist, self.val_count)
            l1_j = 0.0
            for v in batches:
                part = validation_loss(self.w, v, n_tok, self.pooled)
                (P * coef[name] * part).backward()  # c_j ∇L1_j(w)
                l1_j += float(part.detach())
            l1_parts[name] = float(self.dist.all_reduce_sum(torch.tensor(l1_j, dtype=torch.float64)))
            _finite(f"L1(w) on {name}", l1_parts[name], step)
        l1_w = sum(coef[name] * l1_parts[name] for name in sets)
        l2_w = float(self.dist.all_reduce_sum(torch.tensor(l2_w, dtype=torch.float64)))
        _finite("L2(w)", l2_w, step)
        gnorm, clipped = self._sync_and_clip(self.w, step, "w")
        self.opt_w.step()
        self.opt_w.zero_grad(set_to_none=True)
        stats = {"L1(w)": l1_w, "L2(w)": l2_w, "grad_norm_w": gnorm, "clipped_w": clipped}
        if self.objectives:
            self.objectives.observe(l1_parts)
            stats.update({f"L1(w)[{name}]": v for name, v in l1_parts.items()})
            stats.update({f"c[{name}]": v for name, v in coef.items()})
        return stats

    # ---- (3) θ ---------------------------------------------------------------------------------
    def theta_grad(self) -> torch.Tensor:
        """This process's ∇_θ 𝓛_α = α[∇_θ L2(w,p) − ∇_θ L2(u,p)] from the pre-update passes (1) and (2)."""
        g_w, g_u = self.weights.theta.grad, self._grad_theta_u
        if g_w is None or g_u is None:
            raise DivergenceError("θ received no gradient: update_u and update_w must run first (empty batch?)")
        return g_w + g_u

    def update_theta(self, step: int = 0) -> dict:
        theta = self.weights.theta
        theta.grad = self.dist.all_reduce_mean(self.theta_grad())
        self._grad_theta_u = None
        gnorm = float(theta.grad.norm())
        _finite("grad of θ", gnorm, step)
        self.opt_theta.step()
        self.opt_theta.zero_grad(set_to_none=True)
        return {"grad_norm_theta": gnorm}

    def step(self, train_batches: list[dict], val_batches: list[dict] | dict[str, list[dict]], step: int = 0) -> dict:
        """(1) u, (2) w, (3) θ on this process's micro-batches of one global batch."""
        counts = global_source_counts(train_batches, len(self.weights.names), self.dist)
        stats = self.update_u(train_batches, counts, step)
        stats.update(self.update_w(train_batches, val_batches, counts, step))
        stats.update(self.update_theta(step))
        stats["gap"] = stats["L2(w)"] - stats["L2(u)"]
        return stats

    def _sync_and_clip(self, model: nn.Module, step: int, name: str) -> tuple[float, bool]:
        """The global gradient norm before clipping, and whether clipping at α·max_grad_norm scaled it down."""
        self.dist.sync_grads(model)
        max_norm = self.alpha * self.max_grad_norm if self.max_grad_norm else math.inf
        gnorm = self.dist.clip_grad_norm(model, max_norm)
        _finite(f"grad norm of {name}", gnorm, step)
        return gnorm, gnorm > max_norm


def cosine_with_warmup(step: int, total: int, warmup: int) -> float:
    """HF ``get_cosine_schedule_with_warmup`` factor at 0-based ``step`` (linear rise, cosine to 0)."""
    if step < warmup:
        return step / max(1, warmup)
    progress = (step - warmup) / max(1, total - warmup)
    return max(0.0, 0.5 * (1.0 + math.cos(math.pi * progress)))


def set_learning_rates(opts, factor: float) -> list[float]:
    out = []
    for opt in opts:
        for g in opt.param_groups:
            g["lr"] = g["base_lr"] * factor
        out.append(opt.param_groups[0]["lr"])
    return out
