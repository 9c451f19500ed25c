"""Supervised fine-tuning with the Hugging Face ``Trainer`` (response-only loss): the one SFT config and loop.

Every trained model in the suite goes through here — the SFT stage (``scalebio.sft.finetune``) and the
baselines that train a model (LESS warm-up, the RHO-LOSS holdout model, DoReMi's reference) — so they share
one hyper-parameter class (``SFTConfig``), one collator, one masking rule and one LISA implementation.
"""

from __future__ import annotations

import json
import logging
import os
import socket
from dataclasses import dataclass, field
from pathlib import Path

from scalebio.common.data import collate
from scalebio.common.lisa import LISA, LisaConfig
from scalebio.common.modeling import DTYPES, pooled_token_loss
from scalebio.common.preemption import Preempted, trainer_callback
from scalebio.common.runtime import ConfigError, world_size

log = logging.getLogger(__name__)
SAMPLING = ("static", "online", "trajectory")
"""Values of ``SFTConfig.sampling``."""


@dataclass
class SFTConfig:
    """Hyper-parameters of one SFT run. Defaults = the paper's SFT (METHOD.md §10): lr 2e-5, 1 epoch, cosine with
    3 % warm-up, global batch 128 of micro-batches of 8, length 1024. Used as ``sft:`` and inside the trained
    baselines (``methods.less.warmup``, ``methods.rho_loss.holdout``, ``methods.doremi.train``)."""

    learning_rate: float = 2e-5
    """Peak learning rate (paper: 2e-5)."""
    epochs: float = 1.0
    """Passes over the training set (paper: 1); ignored when ``max_steps`` > 0."""
    max_steps: int = -1
    """Stop after this many optimizer steps (-1: run ``epochs`` epochs)."""
    global_batch_size: int = 128
    """Examples per optimizer step = micro batch x gradient accumulation x processes (paper: 128)."""
    micro_batch_size: int = 8
    """Examples per forward pass per process (paper: 8)."""
    max_length: int = 1024
    """Truncate each tokenised conversation to this many tokens (paper block size: 1024)."""
    group_by_length: bool = False
    """Batch examples of similar length (the Trainer's ``train_sampling_strategy="group_by_length"``, its
    ``LengthGroupedSampler``): less padding, so fewer tokens computed for the same examples; the order is still
    random between length groups. Paper: off (random order). Ignored with ``sampling: online|trajectory``."""
    lr_scheduler: str = "cosine"
    """``transformers`` scheduler name (paper: cosine)."""
    warmup_ratio: float = 0.03
    """Fraction of the steps with linear warm-up (paper: 0.03)."""
    weight_decay: float = 0.0
    """AdamW decoupled weight decay."""
    max_grad_norm: float = 1.0
    """Gradient clipping threshold (global norm)."""
    dtype: str = "float32"
    """Dtype the weights are loaded in: float32 | bfloat16 | float16 (paper: bfloat16)."""
    bf16: bool = False
    """bf16 mixed-precision autocast (paper: on; fp32 is the safe CPU default)."""
    gradient_checkpointing: bool = False
    """Recompute activations in the backward pass to save memory (paper: on)."""
    deepspeed: str | None = None
    """DeepSpeed config JSON (``config/deepspeed/zero3.json`` is the paper's setting) or null for plain
    single-process / DDP training."""
    lisa: LisaConfig = field(default_factory=LisaConfig)
    """LISA fine-tuning (``n_layers`` > 0; the paper's SFT-with-LISA variant uses 2 layers every 20 steps)."""
    logging_steps: int = 1
    """Record the training loss every this many optimizer steps."""
    save_steps: int = 0
    """Save a resumable checkpoint every this many steps (0: never)."""
    save_total_limit: int = 2
    """Keep at most this many checkpoints."""
    sampling: str = "static"
    """How the SFT stage applies a weights selection: ``static`` trains on the set ``sft-set`` built (N = budget
    examples drawn once, N·p_k per source); ``online`` draws the source of each of the N examples from p afresh
    every epoch (same N, so the same token budget in expectation; validation appended once, as in the static set;
    ``scalebio/sft/online.py``); ``trajectory`` does so following p as recorded during reweighting (ScaleBiO's
    ``metrics.jsonl``; constant p for a method without one). Selections of kind ``examples`` (LESS, RHO-LOSS) have
    no p and train on the static set (logged; the model's ``sampling.json`` says which ran). SFT stage only."""

    def validate(self, prefix: str = "sft.") -> None:
        for name in ("global_batch_size", "micro_batch_size", "max_length", "logging_steps"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{prefix}{name} must be positive, got {getattr(self, name)}")
        if self.global_batch_size % self.micro_batch_size:
            raise ConfigError(
                f"{prefix}global_batch_size ({self.global_batch_size}) must be a multiple of "
                f"{prefix}micro_batch_size ({self.micro_batch_size})"
            )
        if self.learning_rate <= 0:
            raise ConfigError(f"{prefix}learning_rate must be positive, got {self.learning_rate}")
        if self.max_steps == 0 or self.max_steps < -1:
            raise ConfigError(f"{prefix}max_steps must be -1 (use epochs) or positive, got {self.max_steps}")
        if self.max_steps < 0 and self.epochs <= 0:
            raise ConfigError(f"{prefix}epochs must be positive, got {self.epochs}")
        if self.dtype not in DTYPES:
            raise ConfigError(f"{prefix}dtype must be one of {sorted(DTYPES)}, not '{self.dtype}'")
        if not 0 <= self.warmup_ratio < 1:
            raise ConfigError(f"{prefix}warmup_ratio must be in [0, 1), got {self.warmup_ratio}")
        if self.sampling not in SAMPLING:
            raise ConfigError(f"{prefix}sampling must be one of {list(SAMPLING)}, not '{self.sampling}'")
        if self.save_steps < 0:
            raise ConfigError(f"{prefix}save_steps must be >= 0, got {self.save_steps}")
        if self.deepspeed is not None:
            if not Path(self.deepspeed).is_file():
                raise ConfigError(f"{prefix}deepspeed: config file '{self.deepspeed}' does not exist")
            if self.lisa.enabled:
                raise ConfigError(
                    f"{prefix}lisa with {prefix}deepspeed: ZeRO partitions flattened parameter groups and cannot "
                    "switch trainable layers mid-run; use LISA without DeepSpeed"
                )

    def zero_stage(self) -> int:
        """The ZeRO stage of the ``deepspeed`` config (0 without one)."""
        if not self.deepspeed:
            return 0
        return int(json.loads(Path(self.deepspeed).read_text()).get("zero_optimization", {}).get("stage", 0))

    def accumulation(self) -> int:
        """Gradient-accumulation steps so that micro batch x accumulation x processes = global batch."""
        return max(1, self.global_batch_size // (self.micro_batch_size * world_size()))

    def training_arguments(self, output_dir: str, seed: int, **extra):
        """The ``TrainingArguments`` this config describes (``extra``: further keys, passed through)."""
        import torch
        from transformers import TrainingArguments

        if self.deepspeed and not torch.cuda.is_available():
            extra.setdefault("ddp_backend", "gloo")  # DeepSpeed's CPU default (oneCCL) is not installed
        return TrainingArguments(
            output_dir=output_dir,
            learning_rate=self.learning_rate,
            num_train_epochs=self.epochs,
            max_steps=self.max_steps,
            per_device_train_batch_size=self.micro_batch_size,
            train_sampling_strategy="group_by_length" if self.group_by_length else "random",
            gradient_accumulation_steps=self.accumulation(),
            lr_scheduler_type=self.lr_scheduler,
            warmup_steps=float(self.warmup_ratio),  # a float in [0, 1) is a ratio in transformers 5
            weight_decay=self.weight_decay,
            max_grad_norm=self.max_grad_norm,
            bf16=self.bf16,
            gradient_checkpointing=self.gradient_checkpointing,
            deepspeed=self.deepspeed,
            seed=seed,
            data_seed=seed,
            logging_steps=self.logging_steps,
            save_strategy="steps" if self.save_steps > 0 else "no",
            save_steps=self.save_steps if self.save_steps > 0 else 500,
            save_total_limit=self.save_total_limit,
            report_to="none",
            remove_unused_columns=False,
            use_cpu=not torch.cuda.is_available(),
            dataloader_num_workers=0,
            disable_tqdm=False,
            **extra,
        )


def single_process_env() -> None:
    """DeepSpeed needs a process group even for one process; outside a launcher, make a 1-rank one."""
    if "RANK" in os.environ or "LOCAL_RANK" in os.environ:
        return
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    os.environ.update(RANK="0", LOCAL_RANK="0", WORLD_SIZE="1", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))


def lisa_callback(model, cfg: LisaConfig, seed: int):
    """A ``TrainerCallback`` running ``scalebio.common.lisa.LISA`` on the Trainer's model and optimizer (stream "sft").

    The optimizer is built over all parameters before the first switch; frozen parameters get no gradient
    and AdamW skips them. Switches happen at optimizer steps 0, interval, 2·interval, ...
    """
    from transformers import TrainerCallback

    lisa = LISA(model, None, cfg, seed, stream="sft")

    class LisaCallback(TrainerCallback):
        def on_train_begin(self, args, state, control, optimizer=None, **kw):
            lisa.optimizer = optimizer
            lisa.active = []  # a resumed run re-draws the period it resumes in
            self.on_step_begin(args, state, control)

        def on_step_begin(self, args, state, control, **kw):
            if lisa.maybe_switch(state.global_step):
                log.info("LISA: step %d, training decoder blocks %s", state.global_step, lisa.active)

    return LisaCallback()


def suite_trainer_class():
    """The HF ``Trainer`` with the loss computed on response-position logits only (``pooled_token_loss``).

    Same value as the model's own loss in the Trainer's usual case (summed token CE over ``num_items_in_batch``,
    the Trainer's gradient-accumulation normalisation, times the processes when tokens are averaged across
    devices), ~15 % less compute per SmolLM2 step on CPU; every other case goes to the Trainer's own
    ``compute_loss``. A function, so that importing this module does not import the Trainer (~10 s).
    """
    from transformers import Trainer

    class SuiteTrainer(Trainer):
        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            usual = self.model_accepts_loss_kwargs and num_items_in_batch is not None and self.label_smoother is None
            if return_outputs or not usual or self.compute_loss_func is not None or self.args.n_gpu > 1:
                return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            total, _ = pooled_token_loss(model, inputs)  # summed response-token CE, the losses' one definition
            loss = total / num_items_in_batch
            if self.args.average_tokens_across_devices:  # as Trainer.compute_loss does after the model's loss
                loss = loss * (self.accelerator.num_processes // self.get_tp_size())
            return loss

    return SuiteTrainer


def train_sft(
    model,
    tokenizer,
    examples: list[dict],
    cfg: SFTConfig,
    output_dir: str,
    seed: int = 0,
    callbacks=None,
    resume: bool | str = False,
    save_dir: str | None = None,
    sampler=None,
    preemption=None,
    **extra,
) -> list[dict]:
    """Fine-tune ``model`` in place on tokenised ``examples``; returns the Trainer's log history.

    ``resume``: True resumes from the last ``checkpoint-*`` in ``output_dir``, a path from that one.
    ``save_dir``: also save the final model (gathered from ZeRO-3 shards if needed) and the tokenizer
    there as a ``from_pretrained`` folder; every process must call this (only the main one writes).
    ``sampler``: a ``torch.utils.data.Sampler`` over ``examples`` replacing the Trainer's shuffling (online
    source sampling, ``scalebio.sft.online``). ``preemption``: a ``PreemptionFlag``; after a SIGTERM the Trainer saves
    a checkpoint in ``output_dir`` and ``Preempted`` is raised before anything is saved as final (the same call with
    ``resume=True`` continues). ``extra``: further ``TrainingArguments`` keys.
    """

    if cfg.deepspeed:
        single_process_env()  # a baseline's training (RHO-LOSS's hold-out model) runs DeepSpeed in one process

    class SamplerTrainer(suite_trainer_class()):
        # The Trainer's documented hook for the training order; it calls the sampler's set_epoch every epoch.
        def _get_train_sampler(self, train_dataset=None):
            return sampler if sampler is not None else super()._get_train_sampler(train_dataset)

    cbs = list(callbacks or [])
    if cfg.lisa.enabled:
        cbs.append(lisa_callback(model, cfg.lisa, seed))
    if preemption is not None:
        cbs.append(trainer_callback(preemption))
    rows = [{"input_ids": e["input_ids"], "labels": e["labels"]} for e in examples]
    pad = tokenizer.pad_token_id
    trainer = SamplerTrainer(
        model=model,
        args=cfg.training_arguments(output_dir, seed, **extra),
        train_dataset=rows,
        data_collator=lambda b: collate(b, pad),
        callbacks=cbs,
    )
    trainer.train(resume_from_checkpoint=resume or None)
    if preemption is not None and preemption.stopped:
        raise Preempted(f"stopped by SIGTERM after saving a checkpoint in {output_dir}; rerun to continue from it")
    if save_dir is not None:
        model.config.use_cache = True  # training turned the KV cache off; generation wants it back
        trainer.save_model(save_dir)
        if trainer.args.should_save:
            tokenizer.save_pretrained(save_dir)
    return trainer.state.log_history
