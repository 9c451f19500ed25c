"""SFT stage: fine-tune the base model on a built training set (method notes §10, stage C).

    python -m scalebio.finetune --train results/ci/denoise/tiny/uniform/sft_data/train.jsonl \\
        --model resources/models/tiny --out results/ci/denoise/tiny/uniform/model \\
        --options '{"max_steps": 4, "global_batch_size": 8, "micro_batch_size": 4, "max_length": 64}'

Ordinary full-parameter SFT from the base model with the Hugging Face ``Trainer``
(``scalebio.training.train_sft``): the model's own chat template, loss on assistant turns only
(``scalebio.data.tokenize_records``, the same tokenisation ScaleBiO and the baselines use). The
selection acts only through the composition of the training set. Defaults are the paper's
(lr 2e-5, 1 epoch, cosine, 3% warm-up, global batch 128, micro batch 8, max length 1024).

Output ``--out``: a standard HF model folder (``from_pretrained`` loads it) plus
``sft_config.json`` (resolved run config), ``train_log.jsonl`` (loss per step), ``metrics.json``
and ``log.txt``. It is renamed into place only when training succeeded. Checkpoints go to the
sibling ``<out>.work/``; re-running the same command resumes from the last checkpoint there.

Multi-process / DeepSpeed (paper scale: ZeRO-3, optimizer offloaded to CPU, bf16):

    torchrun --nproc_per_node 8 -m scalebio.finetune ... \\
        --options '{"deepspeed": "config/deepspeed/zero3.json", "bf16": true, "dtype": "bfloat16"}'

``config/deepspeed/zero2.json`` (torch AdamW, no offload) and ``zero3_cpu.json`` (ZeRO-3 without offload)
also run on CPU with gloo; ``zero3.json`` offloads the optimizer to CPU with DeepSpeed's AdamW (GPU runs).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import shutil
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path

from scalebio.config import as_dict, describe, from_dict, parse_json_object
from scalebio.runtime import (
    ConfigError,
    DataError,
    atomic_dir,
    atomic_write_json,
    config_hash,
    file_sha256,
    main_guard,
    seed_everything,
    setup_logging,
)

log = logging.getLogger("scalebio.finetune")

CONFIG_FILE = "sft_config.json"
LOG_FILE = "train_log.jsonl"
METRICS_FILE = "metrics.json"


@dataclass
class SFTOptions:
    """Options of the SFT stage (``sft:`` in the workflow config, ``--options`` on the command line)."""

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
    """DeepSpeed config JSON (e.g. ``config/deepspeed/zero3.json``, the paper's setting) or null for plain
    single-process / DDP training."""
    lisa_layers: int = 0
    """LISA: train only this many randomly chosen decoder layers at a time (0: off, full-parameter SFT;
    the paper's SFT-with-LISA variant uses 2). Embeddings and the LM head always train."""
    lisa_interval: int = 20
    """LISA: re-draw the trained layers every this many optimizer steps (paper: 20)."""
    logging_steps: int = 1
    """Record the training loss every this many optimizer steps (``train_log.jsonl``)."""
    save_steps: int = 0
    """Save a resumable checkpoint to ``<out>.work/`` every this many steps (0: never)."""
    save_total_limit: int = 2
    """Keep at most this many checkpoints in ``<out>.work/``."""
    keep_work_dir: bool = False
    """Keep ``<out>.work/`` (checkpoints) after a successful run instead of deleting it."""

    def validate(self) -> None:
        for name in ("global_batch_size", "micro_batch_size", "max_length", "lisa_interval", "logging_steps"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"sft.{name} must be positive, got {getattr(self, name)}")
        if self.global_batch_size % self.micro_batch_size:
            raise ConfigError(
                f"sft.global_batch_size ({self.global_batch_size}) must be a multiple of "
                f"sft.micro_batch_size ({self.micro_batch_size})"
            )
        if self.max_steps == 0 or self.max_steps < -1:
            raise ConfigError(f"sft.max_steps must be -1 (use epochs) or positive, got {self.max_steps}")
        if self.max_steps < 0 and self.epochs <= 0:
            raise ConfigError(f"sft.epochs must be positive, got {self.epochs}")
        if self.dtype not in ("float32", "bfloat16", "float16"):
            raise ConfigError(f"sft.dtype must be float32, bfloat16 or float16, not '{self.dtype}'")
        if not 0 <= self.warmup_ratio < 1:
            raise ConfigError(f"sft.warmup_ratio must be in [0, 1), got {self.warmup_ratio}")
        if self.lisa_layers < 0:
            raise ConfigError(f"sft.lisa_layers must be >= 0, got {self.lisa_layers}")
        if self.deepspeed is not None:
            if not Path(self.deepspeed).is_file():
                raise ConfigError(f"sft.deepspeed: config file '{self.deepspeed}' does not exist")
            if self.lisa_layers:
                raise ConfigError(
                    "sft.lisa_layers with sft.deepspeed: ZeRO partitions flattened parameter groups and cannot "
                    "switch trainable layers mid-run; use LISA without DeepSpeed"
                )
        if self.save_steps < 0:
            raise ConfigError(f"sft.save_steps must be >= 0, got {self.save_steps}")


@dataclass
class RunInfo:
    """What identifies a run, so a work folder's checkpoints are resumed only by the same run."""

    train: str
    train_sha256: str
    model: str
    seed: int
    options: dict = field(default_factory=dict)


def lisa_callback(model, n_layers: int, interval: int, seed: int):
    """A ``TrainerCallback`` that trains ``n_layers`` random decoder layers, re-drawn every ``interval`` steps.

    Layers are frozen with ``requires_grad=False`` after the optimizer was built over all
    parameters: frozen parameters get no gradient and AdamW skips them (LMFlow's LISA does the
    same). The draw for period ``step // interval`` is seeded by (seed, period), so a resumed run
    trains the same layers as an uninterrupted one.
    """
    from transformers import TrainerCallback

    from scalebio.modeling import decoder_layers

    layers = decoder_layers(model)
    if n_layers > len(layers):
        raise ConfigError(f"sft.lisa_layers={n_layers} but the model has only {len(layers)} decoder layers")

    class LisaCallback(TrainerCallback):
        period = -1
        active: list[int] = []

        def _maybe_switch(self, step: int) -> None:
            if step // interval == self.period:
                return
            self.period = step // interval
            self.active = sorted(random.Random(f"{seed}:{self.period}").sample(range(len(layers)), n_layers))
            for i, layer in enumerate(layers):
                for p in layer.parameters():
                    p.requires_grad_(i in self.active)
            log.info("LISA: step %d, training decoder layers %s", step, self.active)

        def on_train_begin(self, args, state, control, **kw):
            self._maybe_switch(state.global_step)

        def on_step_begin(self, args, state, control, **kw):
            self._maybe_switch(state.global_step)

    return LisaCallback()


def sft_args(opts: SFTOptions, seed: int):
    from scalebio.training import SFTArgs

    return SFTArgs(
        learning_rate=opts.learning_rate,
        epochs=opts.epochs,
        max_steps=opts.max_steps,
        global_batch_size=opts.global_batch_size,
        micro_batch_size=opts.micro_batch_size,
        lr_scheduler=opts.lr_scheduler,
        warmup_ratio=opts.warmup_ratio,
        weight_decay=opts.weight_decay,
        max_grad_norm=opts.max_grad_norm,
        bf16=opts.bf16,
        gradient_checkpointing=opts.gradient_checkpointing,
        deepspeed=opts.deepspeed,
        seed=seed,
        logging_steps=opts.logging_steps,
        save_steps=opts.save_steps,
        extra={"save_total_limit": opts.save_total_limit},
    )


def _single_process_env() -> None:
    """DeepSpeed needs a process group even for one process; outside a launcher, make a 1-rank one."""
    if "RANK" in os.environ or "LOCAL_RANK" in os.environ:
        return
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    os.environ.update(RANK="0", LOCAL_RANK="0", WORLD_SIZE="1", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))


def _is_main() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def _prepare_work_dir(work: Path, ident: dict) -> bool:
    """Return True when ``work`` holds checkpoints of this very run (so we resume from them)."""
    marker = work / CONFIG_FILE
    has_ckpt = any(work.glob("checkpoint-*"))
    if marker.exists() and json.loads(marker.read_text()).get("run_hash") == ident["run_hash"] and has_ckpt:
        return True
    if work.exists() and _is_main():
        log.warning("discarding %s: its checkpoints belong to a different run configuration", work)
        shutil.rmtree(work)
    if _is_main():
        atomic_write_json(marker, ident)
    return False


def finetune(
    train: str | os.PathLike,
    model_path: str | os.PathLike,
    out: str | os.PathLike,
    options: SFTOptions | dict | None = None,
    seed: int = 0,
    callbacks: list | None = None,
) -> list[dict]:
    """Fine-tune ``model_path`` on ``train`` and write the model folder ``out``; returns the loss log."""
    from scalebio.data import read_jsonl, tokenize_records
    from scalebio.modeling import IGNORE_INDEX, check_tokenizer_matches, load_model, load_tokenizer, resolve_model
    from scalebio.training import train_sft, world_size

    opts = options if isinstance(options, SFTOptions) else from_dict(SFTOptions, options, prefix="sft.")
    train, out = Path(train), Path(out)
    work = out.with_name(out.name + ".work")
    if not train.is_file():
        raise DataError(f"training set '{train}' does not exist; build it with `python -m scalebio.mixture`")
    resolve_model(model_path)  # fail on a missing model before any folder is touched
    setup_logging(None, name="scalebio")
    if opts.deepspeed:
        _single_process_env()
    run = RunInfo(str(train), file_sha256(train), str(model_path), seed, as_dict(opts))
    ident = {**as_dict(run), "run_hash": config_hash({**as_dict(run), "train": None})}
    resume = _prepare_work_dir(work, ident)
    logger = setup_logging(work if _is_main() else None, name="scalebio")  # log.txt, copied into the model
    logger.info("SFT %s -> %s (%s)", train, out, "resuming from the last checkpoint" if resume else "fresh run")

    seed_everything(seed)
    tokenizer = load_tokenizer(model_path)
    records = read_jsonl(train)
    if not records:
        raise ConfigError(f"training set '{train}' is empty")
    examples = tokenize_records(records, tokenizer, opts.max_length, where=f"training set '{train}'")
    n_empty = sum(all(lab == IGNORE_INDEX for lab in e["labels"]) for e in examples)
    if n_empty:
        logger.warning(
            "%d of %d examples have no response token within max_length=%d", n_empty, len(examples), opts.max_length
        )
    model = load_model(model_path, dtype=opts.dtype, gradient_checkpointing=opts.gradient_checkpointing)
    check_tokenizer_matches(model, tokenizer, where=f"model '{model_path}': ")
    model.train()
    accum = max(1, opts.global_batch_size // (opts.micro_batch_size * world_size()))
    effective = accum * opts.micro_batch_size * world_size()
    if effective != opts.global_batch_size:
        logger.warning(
            "global batch %d is not micro batch x processes x accumulation; using %d", opts.global_batch_size, effective
        )
    logger.info(
        "%d examples, micro batch %d x accumulation %d x %d process(es) = %d per step",
        len(examples),
        opts.micro_batch_size,
        accum,
        world_size(),
        effective,
    )
    cbs = list(callbacks or [])
    if opts.lisa_layers:
        cbs.append(lisa_callback(model, opts.lisa_layers, opts.lisa_interval, seed))

    t0 = time.time()
    if not _is_main():
        # Other ranks take part in the (ZeRO-3 gathering) save but write nothing: rank 0 owns the folder.
        return train_sft(model, tokenizer, examples, sft_args(opts, seed), str(work), cbs, resume, save_dir=str(work))
    with atomic_dir(out) as tmp:
        history = train_sft(
            model, tokenizer, examples, sft_args(opts, seed), str(work), callbacks=cbs, resume=resume, save_dir=str(tmp)
        )
        steps = [h for h in history if "loss" in h]
        tokens = sum(sum(lab != IGNORE_INDEX for lab in e["labels"]) for e in examples)
        with open(tmp / LOG_FILE, "w") as f:
            for h in steps:
                f.write(
                    json.dumps({k: h[k] for k in ("step", "epoch", "loss", "learning_rate", "grad_norm") if k in h})
                    + "\n"
                )
        summary = next((h for h in reversed(history) if "train_runtime" in h), {})
        metrics = {
            "n_examples": len(examples),
            "response_tokens": tokens,
            "steps": steps[-1]["step"] if steps else 0,
            "first_loss": steps[0]["loss"] if steps else None,
            "last_loss": steps[-1]["loss"] if steps else None,
            "wall_time_s": round(time.time() - t0, 2),
            "resumed": bool(resume),
            **{k: summary[k] for k in ("train_runtime", "train_samples_per_second", "train_loss") if k in summary},
        }
        atomic_write_json(tmp / METRICS_FILE, metrics)
        atomic_write_json(tmp / CONFIG_FILE, {**ident, "command": "python -m scalebio.finetune"})
        shutil.copy(work / "log.txt", tmp / "log.txt")
    logger.info("saved %s (loss %s -> %s)", out, metrics["first_loss"], metrics["last_loss"])
    if not opts.keep_work_dir:
        shutil.rmtree(work, ignore_errors=True)
    return history


def _options_help() -> str:
    return "\n".join(f"  {n} (default {d!r}): {h}" for n, h, d in describe(SFTOptions))


@main_guard
def main(argv=None) -> None:
    ap = argparse.ArgumentParser(
        prog="python -m scalebio.finetune",
        description="Fine-tune a base model on train.jsonl (response-only loss, the model's chat template).",
        epilog="options (JSON keys of --options):\n" + _options_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--train", required=True, help="train.jsonl written by scalebio.mixture")
    ap.add_argument("--model", required=True, help="base model folder")
    ap.add_argument("--out", required=True, help="output model folder (checkpoints go to <out>.work/)")
    ap.add_argument("--options", default="{}", help="SFT options as a JSON object (see below)")
    ap.add_argument("--seed", type=int, default=0, help="data order and initialisation seed")
    ap.add_argument("--local_rank", "--local-rank", type=int, default=None, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    finetune(a.train, a.model, a.out, parse_json_object(a.options), seed=a.seed)


if __name__ == "__main__":
    main()
