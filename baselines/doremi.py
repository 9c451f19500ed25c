"""DoReMi (Xie et al., NeurIPS 2023): Group-DRO domain weights -> ``kind: weights``.

1. Reference model: the base model fine-tuned (``train_sft``) on a domain-balanced sample of the
   pool (uniform reference weights: every source contributes equally many examples).
2. Proxy model: a fresh copy of the base model trained with Group DRO. Each step draws a batch
   with ``batch_size / K`` examples per domain and, with per-token losses ℓ (``token_losses``):
       δ_i  = Σ_{x∈B_i} Σ_t max(ℓ_proxy,t(x) − ℓ_ref,t(x), 0) / Σ_{x∈B_i} |x|   (clipped excess loss)
       α'   = α ⊙ exp(η δ);   α = (1 − c) · α'/Σα' + c / K
       loss = Σ_i α_i · Σ_{x∈B_i} Σ_t ℓ_proxy,t(x) / Σ_{x∈B_i} |x|          (α detached)
3. Output: the average of α over the proxy steps.
The paper's constants are η = 1, c = 1e-3. DoReMi has no validation target, so the validation set
is not used.

    python -m baselines select --method doremi --data results/denoise/data \
        --model resources/models/tiny --out results/demo/doremi --budget 64 \
        --options '{"train": {"max_steps": 40, "global_batch_size": 10, "micro_batch_size": 10, "learning_rate": 1e-3}}'
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
from tqdm.auto import tqdm

from baselines._common import n_tokens, open_run, train
from scalebio.common.data import collate
from scalebio.common.modeling import check_tokenizer_matches, load_model, token_losses
from scalebio.common.registry import MethodInfo
from scalebio.common.runtime import ConfigError, atomic_write_json
from scalebio.common.selection import MethodInputs
from scalebio.common.training import SFTConfig

INFO = MethodInfo(name="doremi", display="DoReMi", role="baseline", order=40, trains=True, colour="#9467bd")


def _train_default() -> SFTConfig:
    return SFTConfig(learning_rate=1e-4, max_steps=200, global_batch_size=32, micro_batch_size=8)


@dataclass
class Options:
    """Options of DoReMi (``methods.doremi``)."""

    train: SFTConfig = field(default_factory=_train_default)
    """Training of the reference model (``SFTConfig``: ``max_steps`` steps of ``global_batch_size`` examples, split
    equally across domains and rounded up to a multiple of the domain count). The Group-DRO proxy uses the same
    batch, learning rate (constant), weight decay, ``max_length`` and ``dtype``."""
    proxy_steps: int = 0
    """Group-DRO steps of the proxy (the output averages α over them); 0 = ``train.max_steps``."""
    eta: float = 1.0
    """Step size η of the exponentiated-gradient update of α (paper: 1)."""
    smoothing: float = 1e-3
    """Mixing c of α with the uniform distribution (paper: 1e-3)."""

    def validate(self) -> None:
        p = "methods.doremi."
        if self.train.max_steps < 1:
            raise ConfigError(f"{p}train.max_steps must be set (>= 1): DoReMi runs a fixed number of steps")
        if self.proxy_steps < 0:
            raise ConfigError(f"{p}proxy_steps must be >= 0, got {self.proxy_steps}")
        if self.eta <= 0:
            raise ConfigError(f"{p}eta must be positive")
        if not 0 <= self.smoothing <= 1:
            raise ConfigError(f"{p}smoothing must be in [0, 1], got {self.smoothing}")


def update_weights(alpha: torch.Tensor, excess: torch.Tensor, eta: float, smoothing: float) -> torch.Tensor:
    """α' = α ⊙ exp(η δ), α = (1 − c) α'/Σα' + c/K (in log space for stability)."""
    logits = alpha.log() + eta * excess
    return (1 - smoothing) * torch.softmax(logits, 0) + smoothing / len(alpha)


def domain_losses(proxy_ce, ref_ce, mask, domain: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-domain clipped excess loss δ ([K], no grad) and token-normalised proxy loss ([K], with grad)."""
    m = mask.float()
    tokens = torch.zeros(k).index_add_(0, domain, m.sum(1).cpu()).clamp(min=1)
    excess_sum = ((proxy_ce.detach() - ref_ce).clamp(min=0) * m).sum(1).cpu()
    excess = torch.zeros(k).index_add_(0, domain, excess_sum) / tokens
    loss_sum = (proxy_ce * m).sum(1)
    loss = torch.zeros(k, device=loss_sum.device, dtype=loss_sum.dtype).index_add(
        0, domain.to(loss_sum.device), loss_sum
    )
    return excess, loss / tokens.to(loss.device)


def balanced_batches(by_domain: list[list[int]], per_domain: int, steps: int, rng: random.Random):
    """``steps`` batches, each with ``per_domain`` examples from every domain (reshuffled each pass)."""
    queues = [[] for _ in by_domain]
    for _ in range(steps):
        batch = []
        for d, idx in enumerate(by_domain):
            for _ in range(per_domain):
                if not queues[d]:
                    queues[d] = rng.sample(idx, len(idx))
                batch.append(queues[d].pop())
        yield batch


def select(inputs: MethodInputs, opts: Options) -> Path:
    run, tokenizer, pool = open_run(
        inputs, INFO.name, opts, opts.train.max_length, need_validation=False, log_name=__name__
    )
    tc = opts.train
    k = len(pool.sources)
    per_domain = -(-tc.global_batch_size // k)
    by_domain = [[i for i, e in enumerate(pool.examples) if e["source"] == d] for d in range(k)]
    rng = random.Random(inputs.seed)

    # Reference: uniform domain weights = each step sees equally many examples of every domain.
    ref_data = [pool.examples[i] for b in balanced_batches(by_domain, per_domain, tc.max_steps, rng) for i in b]
    ref = load_model(inputs.model, dtype=tc.dtype)
    check_tokenizer_matches(ref, tokenizer, where=f"model '{inputs.model}': ")
    # The balanced batches are laid out in order: the Trainer must see them as they are, one step each.
    micro = math.gcd(tc.micro_batch_size, per_domain * k)
    ref_cfg = replace(tc, global_batch_size=per_domain * k, micro_batch_size=micro)
    history = train(run, "reference", ref, tokenizer, ref_data, ref_cfg)
    ref.eval()

    proxy = load_model(inputs.model, dtype=tc.dtype)
    proxy.train()
    optim = torch.optim.AdamW(proxy.parameters(), lr=tc.learning_rate, weight_decay=tc.weight_decay)
    device = next(proxy.parameters()).device
    alpha = torch.full((k,), 1.0 / k)
    alpha_sum = torch.zeros(k)
    trace = []
    proxy_steps = opts.proxy_steps or tc.max_steps
    steps = balanced_batches(by_domain, per_domain, proxy_steps, rng)
    for step, idx in enumerate(tqdm(steps, total=proxy_steps, desc="DoReMi proxy", unit="step")):
        chunk = [pool.examples[i] for i in idx]
        batch = {key: v.to(device) for key, v in collate(chunk, tokenizer.pad_token_id).items()}
        domain = batch.pop("source").cpu()
        with torch.no_grad():
            ref_ce, _ = token_losses(ref, batch)
        proxy_ce, mask = token_losses(proxy, batch)
        excess, loss_per_domain = domain_losses(proxy_ce, ref_ce.float(), mask, domain, k)
        alpha = update_weights(alpha, excess, opts.eta, opts.smoothing)
        alpha_sum += alpha
        loss = (alpha.to(loss_per_domain) * loss_per_domain).sum()
        optim.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(proxy.parameters(), 1.0)
        optim.step()
        run.count("proxy", 2 * n_tokens(chunk))  # proxy forward+backward and reference forward
        trace.append({"step": step + 1, "loss": loss.item(), "excess": excess.tolist(), "alpha": alpha.tolist()})
    atomic_write_json(run.out / "trace.json", trace)

    average = alpha_sum / proxy_steps
    weights = {name: float(w) for name, w in zip(pool.source_names, average / average.sum())}
    mean_excess = torch.tensor([t["excess"] for t in trace]).mean(0)
    run.log.info("domain weights (average α): %s", {n: round(w, 4) for n, w in weights.items()})
    metrics = {
        "reference_train_loss": [h["loss"] for h in history if "loss" in h],
        "proxy_loss": [t["loss"] for t in trace],
        "final_alpha": dict(zip(pool.source_names, alpha.tolist())),
        "mean_excess_loss": dict(zip(pool.source_names, mean_excess.tolist())),
    }
    return run.finish(weights=weights, metrics=metrics)
