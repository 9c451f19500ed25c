"""SFT stage: fine-tune the base model on a built training set (METHOD.md §10, step 3).

    python -m scalebio finetune --train results/ci/denoise/tiny/uniform/sft_data/train.jsonl \\
        --model resources/models/tiny --out results/ci/denoise/tiny/uniform/model \\
        --options '{"max_steps": 4, "global_batch_size": 8, "micro_batch_size": 4, "max_length": 64}'

Ordinary full-parameter SFT from the base model with the Hugging Face ``Trainer``
(``scalebio.common.training.train_sft``, options ``SFTConfig``): the model's own chat template, loss on
assistant turns only (``scalebio.common.data.tokenize_records``, the tokenisation ScaleBiO and the baselines use). The
selection acts only through the composition of the training set. Defaults are the paper's
(lr 2e-5, 1 epoch, cosine, 3% warm-up, global batch 128, micro batch 8, max length 1024).

Output ``--out``: a standard HF model folder (``from_pretrained`` loads it) plus
``sft_config.json`` (resolved run config), ``train_log.jsonl`` (loss per step), ``metrics.json``,
``sampling.json`` (static, or sources drawn from p at every step with ``"sampling": "online"``:
``scalebio/sft/online.py``; the selection and pool are the SFT set's, or ``--selection``/``--data``) and
``log.txt``. It is renamed into place only when training succeeded. Checkpoints go to the sibling
``<out>.work/``; re-running the same command resumes from the last checkpoint there.

Multi-process / DeepSpeed (paper scale: ZeRO-3, optimizer offloaded to CPU, bf16):

    torchrun --nproc_per_node 8 -m scalebio finetune ... \\
        --options '{"deepspeed": "config/deepspeed/zero3.json", "bf16": true, "dtype": "bfloat16"}'

``config/deepspeed/zero2.json`` (torch AdamW, no offload) and ``zero3_cpu.json`` (ZeRO-3 without offload)
also run on CPU with gloo; ``zero3.json`` offloads the optimizer to CPU with DeepSpeed's AdamW (GPU runs).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from scalebio.common.config import as_dict, from_dict, options_help, parse_json_object
from scalebio.common.data import read_jsonl, tokenize_records
from scalebio.common.model_settings import SETTINGS_FILE
from scalebio.common.modeling import (
    IGNORE_INDEX,
    check_tokenizer_matches,
    load_model,
    load_tokenizer,
    local_device,
    resolve_model,
)
from scalebio.common.preemption import PreemptionFlag
from scalebio.common.runtime import (
    ConfigError,
    DataError,
    atomic_dir,
    atomic_write_json,
    check_seed,
    config_hash,
    file_sha256,
    is_main,
    main_guard,
    run_environment,
    seed_everything,
    setup_logging,
    world_size,
    write_jsonl,
)
from scalebio.common.training import SFTConfig, single_process_env, train_sft
from scalebio.sft.mixture import MANIFEST_FILE
from scalebio.sft.online import online_training_set

log = logging.getLogger(__name__)

CONFIG_FILE = "sft_config.json"
LOG_FILE = "train_log.jsonl"
METRICS_FILE = "metrics.json"
SAMPLING_FILE = "sampling.json"
"""How the training examples were drawn: ``mode`` static / online / trajectory, and why (``scalebio.sft.online``)."""


@dataclass
class RunInfo:
    """What identifies a run, so a work folder's checkpoints are resumed only by the same run."""

    train: str
    train_sha256: str
    model: str
    seed: int
    options: dict


def _prepare_work_dir(work: Path, ident: dict) -> bool:
    """Return True when ``work`` holds checkpoints of this very run (so we resume from them)."""
    marker = work / CONFIG_FILE
    has_ckpt = any(work.glob("checkpoint-*"))
    if marker.exists() and json.loads(marker.read_text()).get("run_hash") == ident["run_hash"] and has_ckpt:
        return True
    if work.exists() and is_main():
        log.warning("discarding %s: its checkpoints belong to a different run configuration", work)
        shutil.rmtree(work)
    if is_main():
        atomic_write_json(marker, ident)
    return False


def load_training_set(train: Path, tokenizer, cfg: SFTConfig, logger) -> list[dict]:
    records = read_jsonl(train, unique_ids=False)  # mixes sources; may repeat examples (allow_repeats)
    if not records:
        raise ConfigError(f"training set '{train}' is empty")
    examples = tokenize_records(records, tokenizer, cfg.max_length, where=f"training set '{train}'")
    effective = cfg.accumulation() * cfg.micro_batch_size * world_size()
    if effective != cfg.global_batch_size:
        logger.warning(
            "global batch %d is not micro batch x processes x accumulation; using %d", cfg.global_batch_size, effective
        )
    logger.info(
        "%d examples, micro batch %d x accumulation %d x %d process(es) = %d per step",
        len(examples), cfg.micro_batch_size, cfg.accumulation(), world_size(), effective,
    )  # fmt: skip
    return examples


def write_run_files(folder: Path, history: list[dict], examples: list[dict], ident: dict, work: Path, t0, resumed):
    """train_log.jsonl, metrics.json, sft_config.json and log.txt next to the saved model."""
    steps = [h for h in history if "loss" in h]
    keys = ("step", "epoch", "loss", "learning_rate", "grad_norm")
    write_jsonl(folder / LOG_FILE, [{k: h[k] for k in keys if k in h} for h in steps])
    summary = next((h for h in reversed(history) if "train_runtime" in h), {})
    metrics = {
        "n_examples": len(examples),
        "environment": run_environment(),
        "response_tokens": sum(sum(lab != IGNORE_INDEX for lab in e["labels"]) for e in examples),
        "steps": steps[-1]["step"] if steps else 0,
        "first_loss": steps[0]["loss"] if steps else None,
        "last_loss": steps[-1]["loss"] if steps else None,
        "wall_time_s": round(time.time() - t0, 2),
        "resumed": bool(resumed),
        **{k: summary[k] for k in ("train_runtime", "train_samples_per_second", "train_loss") if k in summary},
    }
    atomic_write_json(folder / METRICS_FILE, metrics)
    atomic_write_json(folder / CONFIG_FILE, {**ident, "command": "python -m scalebio finetune"})
    shutil.copy(work / "log.txt", folder / "log.txt")
    return metrics


def copy_settings(model_path: Path, folder: Path) -> None:
    """The base model's ``scalebio_model.json`` (prompt format, attention) into the fine-tuned model, so that its
    evaluation loads it the same way (the chat template itself is saved with the tokenizer)."""
    if (model_path / SETTINGS_FILE).is_file():
        shutil.copyfile(model_path / SETTINGS_FILE, folder / SETTINGS_FILE)


def online_inputs(train: Path, selection, data, mode: str) -> tuple[Path, Path]:
    """The selection and pool an online run samples from: as given, else those the SFT set was built from."""
    manifest = train.parent / MANIFEST_FILE
    if (selection is None or data is None) and manifest.exists():
        built = json.loads(manifest.read_text())
        selection = selection or built["selection"]["path"]
        data = data or Path(built["validation"]["path"]).parent
    if selection is None or data is None:
        raise ConfigError(
            f"sft.sampling: '{mode}' needs --selection and --data (the pool it samples from), or a training set "
            f"with its {MANIFEST_FILE} next to it"
        )
    return Path(selection), Path(data)


def finetune(
    train: str | os.PathLike,
    model_path: str | os.PathLike,
    out: str | os.PathLike,
    options: SFTConfig | dict | None = None,
    seed: int = 0,
    callbacks: list | None = None,
    keep_work_dir: bool = False,
    selection: str | os.PathLike | None = None,
    data: str | os.PathLike | None = None,
) -> list[dict]:
    """Fine-tune ``model_path`` on ``train`` and write the model folder ``out``; returns the loss log.

    Checkpoints go to ``<out>.work/`` (deleted after success unless ``keep_work_dir``); the same command
    resumes from them after a crash. ``sampling: online|trajectory`` needs the ``selection`` and its ``data``
    folder (``train`` is then the fall-back for selections without weights).
    """
    cfg = options if isinstance(options, SFTConfig) else from_dict(SFTConfig, options, prefix="sft.")
    train, out = Path(train), Path(out)
    work = out.with_name(out.name + ".work")
    if not train.is_file():
        raise DataError(f"training set '{train}' does not exist; build it with `python -m scalebio sft-set`")
    resolve_model(model_path)  # fail on a missing model before any folder is touched
    online = cfg.sampling != "static"
    if online:
        selection, data = online_inputs(train, selection, data, cfg.sampling)
    if cfg.deepspeed:
        single_process_env()
    run = as_dict(RunInfo(str(train), file_sha256(train), str(model_path), seed, as_dict(cfg)))
    if online:
        run["selection_sha256"] = file_sha256(selection)  # what an online run samples by
    ident = {**run, "run_hash": config_hash({**run, "train": None})}
    resume = _prepare_work_dir(work, ident)
    logger = setup_logging(work if is_main() else None, name=__name__)  # log.txt, copied into the model
    logger.info("SFT %s -> %s (%s)", train, out, "resuming from the last checkpoint" if resume else "fresh run")

    seed_everything(seed)
    tokenizer = load_tokenizer(model_path)
    sampler, sampling = None, {"mode": "static", "requested": "static"}
    if online:
        examples, sampler, sampling = online_training_set(selection, data, tokenizer, cfg.sampling, cfg.max_length,
                                                          seed)  # fmt: skip
    if sampler is None:
        examples = load_training_set(train, tokenizer, cfg, logger)
    # ZeRO-3: a TrainingArguments with the DeepSpeed config alive while the model loads makes from_pretrained load it
    # partitioned over the ranks (deepspeed.zero.Init), so no rank ever holds the whole model; otherwise each rank
    # loads onto its own device (local_device: set before loading).
    zero3 = cfg.zero_stage() == 3
    _zero_init = cfg.training_arguments(str(work), seed) if zero3 else None  # kept alive while the model loads
    model = load_model(model_path, cfg.dtype, local_device(), cfg.gradient_checkpointing, move=not zero3)
    check_tokenizer_matches(model, tokenizer, where=f"model '{model_path}': ")
    model.train()

    t0 = time.time()
    args = (model, tokenizer, examples, cfg, str(work), seed, callbacks, resume)
    with PreemptionFlag() as flag:
        if not is_main():
            # Other ranks take part in the (ZeRO-3 gathering) save but write nothing: rank 0 owns the folder.
            return train_sft(*args, save_dir=str(work), sampler=sampler, preemption=flag)
        with atomic_dir(out, what="model folder") as tmp:
            history = train_sft(*args, save_dir=str(tmp), sampler=sampler, preemption=flag)
            copy_settings(Path(model_path), tmp)
            trained = examples if sampler is None else [examples[i] for i in sampler.draw(0)[0]]  # what epoch 0 saw
            metrics = write_run_files(tmp, history, trained, ident, work, t0, resume)
            atomic_write_json(tmp / SAMPLING_FILE, sampling)
    logger.info("saved %s (loss %s -> %s)", out, metrics["first_loss"], metrics["last_loss"])
    if not keep_work_dir:
        shutil.rmtree(work, ignore_errors=True)
    return history


@main_guard
def main(argv=None) -> None:
    ap = argparse.ArgumentParser(
        prog="python -m scalebio finetune",
        description="Fine-tune a base model on train.jsonl (response-only loss, the model's chat template).",
        epilog=options_help(SFTConfig, "options (JSON keys of --options):"),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--train", required=True, help="train.jsonl written by `python -m scalebio sft-set`")
    ap.add_argument("--model", required=True, help="base model folder")
    ap.add_argument("--out", required=True, help="output model folder (checkpoints go to <out>.work/)")
    ap.add_argument("--options", default="{}", help="SFT options as a JSON object (see below)")
    ap.add_argument("--seed", type=int, default=0, help="data order and initialisation seed")
    ap.add_argument(
        "--selection", help="selection.json to sample sources by (sampling online|trajectory; default: the SFT set's)"
    )
    ap.add_argument("--data", help="the pool the selection was made on (online; default: the SFT set's)")
    ap.add_argument("--keep-work-dir", action="store_true", help="keep <out>.work/ (checkpoints) after success")
    ap.add_argument("--local_rank", "--local-rank", type=int, default=None, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    check_seed(a.seed)
    finetune(
        a.train, a.model, a.out, parse_json_object(a.options), seed=a.seed, keep_work_dir=a.keep_work_dir,
        selection=a.selection, data=a.data,
    )  # fmt: skip


if __name__ == "__main__":
    main()
