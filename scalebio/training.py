"""Plain supervised fine-tuning with the Hugging Face ``Trainer`` (response-only loss).

Used by the SFT stage (``scalebio.finetune``) and by baselines that need a trained model (the
LESS warm-up, the reference model of reference-model sampling, DoReMi's reference model), so
every trained model in the suite goes through the same collator, masking and loss.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from scalebio.data import collate


@dataclass
class SFTArgs:
    """Hyper-parameters of one SFT run (paper defaults: lr 2e-5, 1 epoch, cosine, 3% warm-up, batch 128)."""

    learning_rate: float = 2e-5
    """Peak learning rate."""
    epochs: float = 1.0
    """Passes over the training set (ignored when ``max_steps`` > 0)."""
    max_steps: int = -1
    """Stop after this many optimizer steps (-1: use ``epochs``)."""
    global_batch_size: int = 128
    """Examples per optimizer step (micro batch x accumulation x processes)."""
    micro_batch_size: int = 8
    """Examples per forward pass per process."""
    lr_scheduler: str = "cosine"
    """Any ``transformers`` scheduler name."""
    warmup_ratio: float = 0.03
    """Fraction of steps with linear warm-up."""
    weight_decay: float = 0.0
    """AdamW decoupled weight decay."""
    max_grad_norm: float = 1.0
    """Gradient clipping (global norm)."""
    bf16: bool = False
    """bf16 mixed precision (fp32 is the CPU default)."""
    gradient_checkpointing: bool = False
    """Recompute activations in the backward pass to save memory."""
    deepspeed: Any = None
    """A DeepSpeed config (dict or JSON path) or None."""
    seed: int = 0
    """Data order and init seed."""
    logging_steps: int = 1
    """Log the training loss every this many steps."""
    save_steps: int = 0
    """Save a resumable checkpoint every this many steps (0: never)."""
    extra: dict = field(default_factory=dict)
    """Further ``TrainingArguments`` keys, passed through unchanged."""


def world_size() -> int:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    # Under torchrun/deepspeed the group is created later (by TrainingArguments); the launcher's
    # WORLD_SIZE already tells how many processes share the global batch.
    return int(os.environ.get("WORLD_SIZE", "1"))


def make_trainer(model, tokenizer, examples: list[dict], args: SFTArgs, output_dir: str, callbacks=None):
    """Build a ``Trainer`` over tokenised examples (``input_ids``/``labels`` lists)."""
    import torch
    from transformers import Trainer, TrainingArguments

    accum = max(1, args.global_batch_size // (args.micro_batch_size * world_size()))
    extra = dict(args.extra)
    if args.deepspeed and not torch.cuda.is_available():
        extra.setdefault("ddp_backend", "gloo")  # DeepSpeed's CPU default (oneCCL) is not installed
    targs = TrainingArguments(
        output_dir=output_dir,
        learning_rate=args.learning_rate,
        num_train_epochs=args.epochs,
        max_steps=args.max_steps,
        per_device_train_batch_size=args.micro_batch_size,
        gradient_accumulation_steps=accum,
        lr_scheduler_type=args.lr_scheduler,
        warmup_steps=float(args.warmup_ratio),  # a float in [0, 1) is a ratio in transformers 5
        weight_decay=args.weight_decay,
        max_grad_norm=args.max_grad_norm,
        bf16=args.bf16,
        gradient_checkpointing=args.gradient_checkpointing,
        deepspeed=args.deepspeed,
        seed=args.seed,
        data_seed=args.seed,
        logging_steps=args.logging_steps,
        save_strategy="steps" if args.save_steps > 0 else "no",
        save_steps=args.save_steps if args.save_steps > 0 else 500,
        report_to="none",
        remove_unused_columns=False,
        use_cpu=not torch.cuda.is_available(),
        dataloader_num_workers=0,
        disable_tqdm=False,
        **extra,
    )
    rows = [{"input_ids": e["input_ids"], "labels": e["labels"]} for e in examples]
    pad = tokenizer.pad_token_id
    return Trainer(
        model=model, args=targs, train_dataset=rows, data_collator=lambda b: collate(b, pad), callbacks=callbacks
    )


def train_sft(
    model,
    tokenizer,
    examples: list[dict],
    args: SFTArgs,
    output_dir: str,
    callbacks=None,
    resume: bool | str = False,
    save_dir: str | None = None,
) -> list[dict]:
    """Fine-tune ``model`` in place; returns the Trainer's log history (losses per step).

    ``resume``: True resumes from the last ``checkpoint-*`` in ``output_dir``, a path from that one.
    ``save_dir``: also save the final model (gathered from ZeRO-3 shards if needed) and the
    tokenizer there as a ``from_pretrained`` folder; every process must call this (only the main
    one writes).
    """
    trainer = make_trainer(model, tokenizer, examples, args, output_dir, callbacks)
    trainer.train(resume_from_checkpoint=resume or None)
    if save_dir is not None:
        model.config.use_cache = True  # training turned the KV cache off; generation wants it back
        trainer.save_model(save_dir)
        if trainer.args.should_save:
            tokenizer.save_pretrained(save_dir)
    return trainer.state.log_history
