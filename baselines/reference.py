"""Reference-model sampling (RHO-1 excess-loss rule, example level) -> ``kind: examples``.

The paper names "reference-model-based sampling" without saying which rule; **our choice** is the
example-level RHO-1 rule (Lin et al., 2024): fine-tune a copy of the base model on the
validation/target set (the reference), score every pool example by its excess loss

    score(x) = loss_base(x) - loss_ref(x)      (mean response-token cross-entropy, ``per_example_loss``)

and keep the N highest (or sample N without replacement with probability ∝ softmax(score / T)).
Examples the reference finds much easier than the base model looks like the target data.

    python -m baselines select --method reference --data results/denoise/data \
        --model resources/models/tiny --out results/demo/reference --budget 64 \
        --options '{"learning_rate": 1e-3, "epochs": 10, "global_batch_size": 8, "max_length": 128}'
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch

from baselines._common import (
    Run,
    as_examples,
    example_losses,
    load_pool,
    n_tokens,
    sft_args,
    source_counts,
    top_n,
    train,
)
from scalebio.config import from_dict
from scalebio.modeling import DTYPES, check_tokenizer_matches, load_model, load_tokenizer
from scalebio.runtime import ConfigError, seed_everything
from scalebio.selection import MethodInputs


@dataclass
class ReferenceOptions:
    """Options of reference-model sampling (``methods.reference``)."""

    learning_rate: float = 2e-5
    """Peak learning rate of the reference model's fine-tuning on the validation set."""
    epochs: float = 3.0
    """Passes over the validation set when training the reference (ignored if max_steps > 0)."""
    max_steps: int = -1
    """Reference training steps (-1: use epochs)."""
    global_batch_size: int = 32
    """Examples per optimizer step of the reference training."""
    micro_batch_size: int = 8
    """Examples per forward pass (reference training and scoring)."""
    lr_scheduler: str = "cosine"
    """Learning-rate schedule of the reference training."""
    warmup_ratio: float = 0.03
    """Warm-up fraction of the reference training."""
    weight_decay: float = 0.0
    """AdamW weight decay of the reference training."""
    selection: Literal["top", "softmax"] = "top"
    """top: the N highest excess losses; softmax: sample N without replacement ∝ softmax(score / temperature)."""
    temperature: float = 1.0
    """Softmax temperature for selection=softmax (in nats of excess loss)."""
    max_length: int = 1024
    """Token limit per example (longer ones are truncated)."""
    dtype: str = "float32"
    """Model dtype for training and scoring: float32, bfloat16 or float16."""

    def validate(self) -> None:
        if self.learning_rate <= 0 or self.temperature <= 0:
            raise ConfigError("methods.reference: learning_rate and temperature must be positive")
        if self.epochs <= 0 and self.max_steps <= 0:
            raise ConfigError("methods.reference: set epochs > 0 or max_steps > 0")
        if self.micro_batch_size < 1 or self.global_batch_size < self.micro_batch_size:
            raise ConfigError("methods.reference: need 1 <= micro_batch_size <= global_batch_size")
        if self.max_length < 8:
            raise ConfigError(f"methods.reference.max_length must be >= 8, got {self.max_length}")
        if self.dtype not in DTYPES:
            raise ConfigError(f"methods.reference.dtype must be one of {sorted(DTYPES)}, got '{self.dtype}'")


def excess_scores(base, ref, examples: list[dict], pad_id: int, batch_size: int) -> tuple[torch.Tensor, ...]:
    """(score, base loss, reference loss) per example; score = base loss - reference loss."""
    base_loss = example_losses(base, examples, pad_id, batch_size, desc="base losses")
    ref_loss = example_losses(ref, examples, pad_id, batch_size, desc="reference losses")
    return base_loss - ref_loss, base_loss, ref_loss


def choose(scores: torch.Tensor, n: int, opts: ReferenceOptions, seed: int) -> list[int]:
    if opts.selection == "top":
        return top_n(scores, n)
    # Gumbel top-k == sampling n without replacement with probabilities ∝ softmax(score / T).
    gen = torch.Generator().manual_seed(seed)
    u = torch.rand(len(scores), generator=gen, dtype=torch.float64).clamp_min(1e-300)
    keys = scores.double() / opts.temperature - torch.log(-torch.log(u))
    return top_n(keys, n)


def select(inputs: MethodInputs) -> Path:
    opts = from_dict(ReferenceOptions, inputs.options, prefix="methods.reference.")
    run = Run(inputs, "reference", opts)
    seed_everything(inputs.seed)
    tokenizer = load_tokenizer(inputs.model)
    pool = load_pool(inputs, tokenizer, opts.max_length, "reference")
    run.log.info(
        "pool: %d examples in %d sources; %d validation", len(pool.examples), len(pool.sources), len(pool.validation)
    )

    ref = load_model(inputs.model, dtype=opts.dtype)
    check_tokenizer_matches(ref, tokenizer, where=f"model '{inputs.model}': ")
    history = train(run, "reference", ref, tokenizer, pool.validation, sft_args(opts, inputs.seed))
    base = load_model(inputs.model, dtype=opts.dtype)

    scores, base_loss, ref_loss = excess_scores(base, ref, pool.examples, tokenizer.pad_token_id, opts.micro_batch_size)
    run.count("scoring", 2 * n_tokens(pool.examples))
    chosen = choose(scores, inputs.budget, opts, inputs.seed)
    per_source = {
        name: {
            "mean_score": float(scores[[i for i, e in enumerate(pool.examples) if e["source"] == k]].mean()),
            "selected": c,
        }
        for k, (name, c) in enumerate(source_counts(pool, chosen).items())
    }
    run.log.info("selected per source: %s", per_source)
    metrics = {
        "reference_train_loss": [h["loss"] for h in history if "loss" in h],
        "mean_base_loss": float(base_loss.mean()),
        "mean_reference_loss": float(ref_loss.mean()),
        "per_source": per_source,
    }
    return run.finish(examples=as_examples(pool, chosen), metrics=metrics)
