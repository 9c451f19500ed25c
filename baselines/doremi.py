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
        --options '{"reference_steps": 40, "proxy_steps": 40, "batch_size": 10, "learning_rate": 1e-3}'
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

from baselines._common import Run, load_pool, n_tokens, sft_args, train
from scalebio.config import from_dict
from scalebio.data import collate
from scalebio.modeling import DTYPES, check_tokenizer_matches, load_model, load_tokenizer, token_losses
from scalebio.runtime import ConfigError, atomic_write_json, seed_everything
from scalebio.selection import MethodInputs


@dataclass
class DoremiOptions:
    """Options of DoReMi (``methods.doremi``)."""

    reference_steps: int = 200
    """Optimizer steps of the reference model on uniformly weighted domains."""
    proxy_steps: int = 200
    """Group-DRO steps of the proxy model (the output averages α over them)."""
    batch_size: int = 32
    """Examples per step (split equally across domains; rounded up to a multiple of the domain count)."""
    micro_batch_size: int = 8
    """Examples per forward pass of the reference training."""
    learning_rate: float = 1e-4
    """AdamW learning rate of the reference and the proxy."""
    lr_scheduler: str = "cosine"
    """Learning-rate schedule of the reference training (the proxy uses a constant rate)."""
    warmup_ratio: float = 0.03
    """Warm-up fraction of the reference training."""
    weight_decay: float = 0.0
    """AdamW weight decay."""
    eta: float = 1.0
    """Step size η of the exponentiated-gradient update of α (paper: 1)."""
    smoothing: float = 1e-3
    """Mixing c of α with the uniform distribution (paper: 1e-3)."""
    max_length: int = 1024
    """Token limit per example."""
    dtype: str = "float32"
    """Model dtype of the reference and the proxy."""

    def validate(self) -> None:
        p = "methods.doremi."
        for name in ("reference_steps", "proxy_steps", "batch_size", "micro_batch_size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{p}{name} must be >= 1, got {getattr(self, name)}")
        if self.learning_rate <= 0 or self.eta <= 0:
            raise ConfigError(f"{p}learning_rate and eta must be positive")
        if not 0 <= self.smoothing <= 1:
            raise ConfigError(f"{p}smoothing must be in [0, 1], got {self.smoothing}")
        if self.dtype not in DTYPES:
            raise ConfigError(f"{p}dtype must be one of {sorted(DTYPES)}, got '{self.dtype}'")


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


def select(inputs: MethodInputs) -> Path:
    opts = from_dict(DoremiOptions, inputs.options, prefix="methods.doremi.")
    run = Run(inputs, "doremi", opts)
    seed_everything(inputs.seed)
    tokenizer = load_tokenizer(inputs.model)
    pool = load_pool(inputs, tokenizer, opts.max_length, "doremi", need_validation=False)
    k = len(pool.sources)
    per_domain = -(-opts.batch_size // k)
    by_domain = [[i for i, e in enumerate(pool.examples) if e["source"] == d] for d in range(k)]
    rng = random.Random(inputs.seed)

    # Reference: uniform domain weights = each step sees equally many examples of every domain.
    ref_data = [pool.examples[i] for b in balanced_batches(by_domain, per_domain, opts.reference_steps, rng) for i in b]
    ref = load_model(inputs.model, dtype=opts.dtype)
    check_tokenizer_matches(ref, tokenizer, where=f"model '{inputs.model}': ")
    args = sft_args(opts, inputs.seed, max_steps=opts.reference_steps, global_batch_size=per_domain * k)
    args.micro_batch_size = min(opts.micro_batch_size, per_domain * k)
    history = train(run, "reference", ref, tokenizer, ref_data, args)
    ref.eval()

    proxy = load_model(inputs.model, dtype=opts.dtype)
    proxy.train()
    optim = torch.optim.AdamW(proxy.parameters(), lr=opts.learning_rate, weight_decay=opts.weight_decay)
    device = next(proxy.parameters()).device
    alpha = torch.full((k,), 1.0 / k)
    alpha_sum = torch.zeros(k)
    trace = []
    steps = balanced_batches(by_domain, per_domain, opts.proxy_steps, rng)
    for step, idx in enumerate(tqdm(steps, total=opts.proxy_steps, desc="DoReMi proxy", unit="step")):
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

    average = alpha_sum / opts.proxy_steps
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
