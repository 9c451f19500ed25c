"""Shared pieces of every evaluation entry point: CLI, options, model loading, the summary file.

A run folder ``--out`` holds ``config.json`` (resolved options), ``log.txt``, the evaluation's
detailed outputs and, written last and atomically, ``summary.json`` -- the only file the report
stage reads. A failed run leaves no ``summary.json`` (a stale one is removed first) but keeps its
finished work (answers, cached judgments) for the next attempt.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable
from pathlib import Path

import torch

from scalebio.common.config import as_dict, from_dict, options_help, parse_json_object
from scalebio.common.modeling import check_tokenizer_matches, default_device, load_model, load_tokenizer
from scalebio.common.runtime import (
    ConfigError,
    atomic_write_json,
    is_main,
    local_rank,
    main_guard,
    run_environment,
    setup_logging,
    world_size,
)

SUMMARY_KEYS = ("evaluation", "metric", "value", "stderr", "n", "model", "protocol", "comparable_to_paper")


def load_eval_model(path: str | os.PathLike, dtype: str = "float32", device=None):
    """Model (eval mode, KV cache on) + tokenizer; any loading failure becomes an AssetError naming the folder."""
    device = torch.device(device) if device is not None else default_device()
    tokenizer = load_tokenizer(path)  # both raise an AssetError naming the folder
    model = load_model(path, dtype=dtype, device=device)
    check_tokenizer_matches(model, tokenizer, where=f"model folder '{path}': ")
    model.eval()
    # load_model disables the cache (training default); generation needs it.
    model.config.use_cache = True
    return model, tokenizer


def heldout_file(data_dir: str | os.PathLike | None, evaluation: str) -> Path:
    """The data folder's held-out split: ``test.jsonl``, or ``tune.jsonl`` in a folder built for the tuning
    protocol (``data.heldout: tune``). A folder holds one of them, so which one is read is decided by how the data
    was built, never by an evaluation option: a tuning run cannot reach the test set."""
    if data_dir is None:
        raise ConfigError(f"eval.{evaluation} needs --data (a data folder with test.jsonl or tune.jsonl)")
    found = [Path(data_dir) / f"{s}.jsonl" for s in ("test", "tune") if (Path(data_dir) / f"{s}.jsonl").exists()]
    if len(found) != 1:
        what = "neither test.jsonl nor tune.jsonl" if not found else "both test.jsonl and tune.jsonl"
        raise ConfigError(f"eval.{evaluation}: data folder '{data_dir}' has {what}; rebuild it (data.heldout)")
    return found[0]


def run_cli(
    evaluation: str,
    options_cls,
    run: Callable[..., dict],
    description: str,
    argv: list[str] | None = None,
    data_required: bool = True,
) -> dict:
    """Parse ``--model --out --data --options``, run ``run(model, out, data, opts, log)``, write the summary.

    ``run`` returns the evaluation-specific part of the summary; the standard keys (model, wall time,
    device) are added here and the file is written with an atomic rename.
    """
    parser = argparse.ArgumentParser(
        prog=f"python -m eval.{evaluation}",
        description=description,
        epilog=options_help(options_cls, "options (JSON object for --options):"),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--model", required=True, help="model folder (Hugging Face format, with chat template)")
    parser.add_argument("--out", required=True, help="run folder; summary.json is written last")
    parser.add_argument("--data", required=data_required, default=None, help="data folder (see the description above)")
    parser.add_argument("--options", default="{}", help="JSON object of options (see below)")
    args = parser.parse_args(argv)

    opts = from_dict(options_cls, parse_json_object(args.options), prefix=f"eval.{evaluation}.")

    join_process_group()
    out = Path(args.out)
    summary_path = out / "summary.json"
    if not is_main():  # other ranks only help generate; rank 0 owns the folder
        run(args.model, out, args.data, opts, setup_logging(None, name=run.__module__))
        leave_process_group()
        return {}
    out.mkdir(parents=True, exist_ok=True)
    summary_path.unlink(missing_ok=True)  # a failed re-run must not leave the old summary looking current
    log = setup_logging(out, name=run.__module__)  # the evaluation module's __name__
    config = {"evaluation": evaluation, "model": args.model, "data": args.data, "options": as_dict(opts)}
    atomic_write_json(out / "config.json", config)
    log.info("eval.%s: model=%s data=%s options=%s", evaluation, args.model, args.data, json.dumps(as_dict(opts)))

    start = time.time()
    result = run(args.model, out, args.data, opts, log)
    leave_process_group()
    summary = {"evaluation": evaluation, **result}
    summary.setdefault("model", str(args.model))
    summary["wall_time_s"] = round(time.time() - start, 2)
    summary["environment"] = run_environment()
    missing = [k for k in SUMMARY_KEYS if k not in summary]
    if missing or not ({"grader", "judge"} & set(summary)):
        raise RuntimeError(f"internal: summary misses {missing or 'grader/judge'}")
    atomic_write_json(summary_path, summary)
    log.info("summary: %s = %s (n=%s) -> %s", summary["metric"], summary["value"], summary["n"], summary_path)
    return summary


def cli_main(evaluation: str, options_cls, run, description: str, data_required: bool = True):
    @main_guard
    def main(argv: list[str] | None = None) -> dict:
        return run_cli(evaluation, options_cls, run, description, argv, data_required)

    return main


def join_process_group() -> None:
    """Under a launcher (``WORLD_SIZE`` > 1) join its process group, so generation can be sharded over ranks."""
    if world_size() <= 1 or not torch.distributed.is_available() or torch.distributed.is_initialized():
        return
    if torch.cuda.is_available():
        torch.cuda.set_device(local_rank())  # "cuda" then means this rank's GPU
    torch.distributed.init_process_group("nccl" if torch.cuda.is_available() else "gloo")


def leave_process_group() -> None:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


def device_name() -> str:
    return str(default_device())


def mean_stderr(values: list[float]) -> tuple[float | None, float | None]:
    """Mean and standard error of the mean (sample std / sqrt(n)); None for empty input."""
    n = len(values)
    if n == 0:
        return None, None
    m = sum(values) / n
    if n == 1:
        return m, None
    var = sum((v - m) ** 2 for v in values) / (n - 1)
    return m, (var / n) ** 0.5
