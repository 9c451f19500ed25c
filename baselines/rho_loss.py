"""RHO-LOSS (Mindermann et al., ICML 2022), the paper's reference-model-based sampling -> ``kind: examples``.

RHO-LOSS selects the points with the largest *reducible holdout loss*

    RHO(x) = L(x | current model) − L(x | model trained on holdout data)

(mean response-token cross-entropy, ``per_example_loss``). Here the holdout data is the validation set (the
target), so "the model trained on holdout data" is the base model fine-tuned on it (``holdout``, an
``SFTConfig``), and examples it finds much easier than the current model look like the target.

**Static, not online** (our choice, METHOD.md §13): the published method re-scores every batch with the model
being trained; the ScaleBiO pipeline instead fixes an SFT set before training (every method selects N
examples, then the same SFT runs). So the "current model" is the model the SFT starts from — the base model —
and the pool is scored once; the N highest scores are kept (or N sampled without replacement ∝ softmax(score /
T)). Registered as ``rho_loss`` and, for older configs, ``reference``.

    python -m scalebio select --method rho_loss --data results/default/denoise/data \
        --model resources/models/tiny --out /tmp/rho --budget 64 \
        --options '{"holdout": {"learning_rate": 1e-3, "epochs": 10, "global_batch_size": 8, "max_length": 128}}'
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import torch

from baselines._common import as_examples, example_losses, n_tokens, open_run, source_counts, tie_keys, top_n, train
from scalebio.common.modeling import check_tokenizer_matches, load_model
from scalebio.common.registry import MethodInfo
from scalebio.common.runtime import ConfigError
from scalebio.common.selection import MethodInputs
from scalebio.common.training import SFTConfig, single_process_env

# registered twice (``rho_loss`` and its alias ``reference``): one INFO, one colour
INFO = MethodInfo(
    name="rho_loss", display="RHO-LOSS", role="baseline", order=30, in_paper=True, trains=True, colour="#2ca02c",
    memory="holdout_sft",
)  # fmt: skip


def _holdout_default() -> SFTConfig:
    return SFTConfig(epochs=3.0, global_batch_size=32)


@dataclass
class Options:
    """Options of RHO-LOSS (``methods.rho_loss``)."""

    holdout: SFTConfig = field(default_factory=_holdout_default)
    """Fine-tuning of the holdout model on the validation set (``SFTConfig``); its ``max_length`` and ``dtype``
    also apply to scoring."""
    selection: Literal["top", "softmax"] = "top"
    """top: the N highest reducible holdout losses; softmax: sample N without replacement ∝ softmax(score / temperature)."""
    temperature: float = 1.0
    """Softmax temperature for selection=softmax (in nats of excess loss)."""
    score_batch_size: int = 8
    """Examples per forward pass when scoring the pool."""

    def validate(self) -> None:
        if self.temperature <= 0 or self.score_batch_size < 1:
            raise ConfigError("methods.rho_loss: temperature must be positive and score_batch_size >= 1")


def excess_scores(base, ref, examples: list[dict], pad_id: int, batch_size: int) -> tuple[torch.Tensor, ...]:
    """(score, base loss, holdout-model loss) per example; score = base loss − holdout-model loss."""
    base_loss = example_losses(base, examples, pad_id, batch_size, desc="base losses")
    ref_loss = example_losses(ref, examples, pad_id, batch_size, desc="reference losses")
    return base_loss - ref_loss, base_loss, ref_loss


def choose(scores: torch.Tensor, n: int, opts: Options, seed: int, ties: list | None = None) -> list[int]:
    if opts.selection == "top":
        return top_n(scores, n, ties)
    # Gumbel top-k == sampling n without replacement with probabilities ∝ softmax(score / T).
    gen = torch.Generator().manual_seed(seed)
    u = torch.rand(len(scores), generator=gen, dtype=torch.float64).clamp_min(1e-300)
    keys = scores.double() / opts.temperature - torch.log(-torch.log(u))
    return top_n(keys, n, ties)


def select(inputs: MethodInputs, opts: Options) -> Path:
    run, tokenizer, pool = open_run(inputs, INFO.name, opts, opts.holdout.max_length, log_name=__name__)
    run.log.info(
        "pool: %d examples in %d sources; %d validation", len(pool.examples), len(pool.sources), len(pool.validation)
    )

    # ZeRO-3 (the paper configs' hold-out: config/deepspeed/zero3.json, one process): the model loads partitioned,
    # as in the SFT stage, and trains with its optimizer states on the CPU, so a full fine-tune of an 8B model fits
    # one GPU (python -m scalebio plan-memory shows it).
    zero3 = opts.holdout.zero_stage() == 3
    if zero3:
        single_process_env()
    zero_init = opts.holdout.training_arguments(str(run.out / "zero-init"), inputs.seed) if zero3 else None
    ref = load_model(inputs.model, dtype=opts.holdout.dtype, move=not zero3)
    check_tokenizer_matches(ref, tokenizer, where=f"model '{inputs.model}': ")
    saved = run.out / "holdout_model"
    history = train(
        run, "holdout", ref, tokenizer, pool.validation, opts.holdout, **({"save_dir": str(saved)} if zero3 else {})
    )
    if zero3:  # the trained model is partitioned: score with its gathered weights, loaded whole like the base model
        from transformers.integrations.deepspeed import unset_hf_deepspeed_config

        del zero_init
        unset_hf_deepspeed_config()
        ref = load_model(saved, dtype=opts.holdout.dtype)
    base = load_model(inputs.model, dtype=opts.holdout.dtype)

    scores, base_loss, ref_loss = excess_scores(base, ref, pool.examples, tokenizer.pad_token_id, opts.score_batch_size)
    run.count("scoring", 2 * n_tokens(pool.examples))
    shutil.rmtree(saved, ignore_errors=True)  # a whole model copy, needed only for scoring
    chosen = choose(scores, inputs.budget, opts, inputs.seed, tie_keys(pool))
    per_source = {
        name: {
            "mean_score": float(scores[[i for i, e in enumerate(pool.examples) if e["source"] == k]].mean()),
            "selected": c,
        }
        for k, (name, c) in enumerate(source_counts(pool, chosen).items())
    }
    run.log.info("selected per source: %s", per_source)
    metrics = {
        "holdout_train_loss": [h["loss"] for h in history if "loss" in h],
        "mean_base_loss": float(base_loss.mean()),
        "mean_holdout_loss": float(ref_loss.mean()),
        "per_source": per_source,
    }
    return run.finish(examples=as_examples(pool, chosen), metrics=metrics)
