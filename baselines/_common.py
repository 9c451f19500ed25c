"""Shared plumbing of the trained baselines (LESS, RHO-LOSS, DoReMi).

Loading and checking the pool *before* any model is built, the run folder (``config.json``,
``log.txt``, ``metrics.json``), batched per-example losses with a token count, and ``Run.train``:
``scalebio.common.training.train_sft`` in a scratch folder, reporting the tokens it trained on. Model
loading, tokenisation, masking, losses and the SFT config come from ``scalebio.common``.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm.auto import tqdm

from scalebio.common.config import as_dict
from scalebio.common.data import Source, collate, load_sources, load_split, read_jsonl
from scalebio.common.modeling import load_tokenizer, per_example_loss
from scalebio.common.runtime import ConfigError, DataError, atomic_write_json, seed_everything, setup_logging
from scalebio.common.selection import MethodInputs, write_selection
from scalebio.common.training import SFTConfig, train_sft


@dataclass
class Pool:
    """The tokenised training pool (flattened, with the source index per example) and validation set."""

    sources: list[Source]
    examples: list[dict]
    """Every training example: ``input_ids``, ``labels``, ``id`` and ``source`` (index into ``sources``)."""
    validation: list[dict]
    validation_records: list[dict] = field(default_factory=list)

    @property
    def source_names(self) -> list[str]:
        return [s.name for s in self.sources]


def n_tokens(examples: list[dict]) -> int:
    """Tokens a forward pass over ``examples`` processes (padding excluded)."""
    return sum(len(e["input_ids"]) for e in examples)


def load_pool(inputs: MethodInputs, tokenizer, max_length: int, method: str, need_validation: bool = True) -> Pool:
    """Read, tokenise and check the pool; every bad-input error is raised here, before training.

    Raises on: budget larger than the tokenised pool (an example-level method cannot repeat examples; N itself
    was checked at the select boundary, ``registry.run_method``), an empty source or one without response tokens
    (``load_sources``), a missing/empty validation set or one with no response tokens.
    """
    sources = load_sources(inputs.sources, tokenizer, max_length)
    examples = []
    for k, src in enumerate(sources):
        for ex in src.examples:
            examples.append(dict(ex, source=k))
    if inputs.budget > len(examples):
        sizes = {s.name: len(s) for s in sources}
        raise ConfigError(
            f"{method}: budget {inputs.budget} is larger than the pool ({len(examples)} examples in "
            f"{inputs.data_dir}/sources: {sizes}); lower the experiment's budget or add data"
        )
    validation, records = [], []
    if need_validation:
        validation = load_split(inputs.validation, tokenizer, max_length, what="validation set")
        keep = {e["id"] for e in validation}  # load_split drops examples truncation left without a response
        records = [r for r in read_jsonl(inputs.validation) if r["id"] in keep]
    return Pool(sources=sources, examples=examples, validation=validation, validation_records=records)


def open_run(inputs: MethodInputs, method: str, opts, max_length: int, need_validation: bool = True, log_name=None):
    """The opening of every trained baseline: the run folder, seeds, tokenizer, the checked pool.

    ``opts``: the method's typed options (built once, by ``registry.run_method``); ``max_length``: the token limit;
    ``log_name``: the method module's ``__name__`` (its run log's logger).
    Returns ``(run, tokenizer, pool)``; every bad-input error is raised here, before any training.
    """
    run = Run(inputs, method, opts, log_name)
    seed_everything(inputs.seed)
    tokenizer = load_tokenizer(inputs.model)
    pool = load_pool(inputs, tokenizer, max_length, method, need_validation)
    run.dropped = {s.name: s.dropped for s in pool.sources if s.dropped}
    return run, tokenizer, pool


class Run:
    """A run folder: ``log.txt``, ``config.json`` (written at start), ``metrics.json`` (at the end)."""

    def __init__(self, inputs: MethodInputs, method: str, opts, log_name: str | None = None) -> None:
        self.inputs, self.method, self.opts = inputs, method, opts
        self.out = Path(inputs.out_dir)
        self.out.mkdir(parents=True, exist_ok=True)
        self.log = setup_logging(self.out, name=log_name or __name__)
        self.t0 = time.time()
        self.tokens: dict[str, int] = {}
        self.dropped: dict[str, int] = {}
        self.config = {
            "method": method,
            "data_dir": str(inputs.data_dir),
            "model": str(inputs.model),
            "budget": inputs.budget,
            "seed": inputs.seed,
            "options": as_dict(opts),
        }
        atomic_write_json(self.out / "config.json", self.config)
        self.log.info("%s: %s", method, self.config)

    def count(self, phase: str, tokens: int) -> None:
        self.tokens[phase] = self.tokens.get(phase, 0) + int(tokens)

    def finish(self, *, weights=None, examples=None, metrics: dict | None = None) -> Path:
        wall = time.time() - self.t0
        total = sum(self.tokens.values())
        metrics = {"wall_time_s": round(wall, 3), "tokens": total, "tokens_by_phase": self.tokens, **(metrics or {})}
        metrics["dropped_truncated"] = self.dropped
        atomic_write_json(self.out / "metrics.json", metrics)
        self.log.info("done in %.1f s, %d tokens processed", wall, total)
        return write_selection(
            self.inputs,
            self.method,
            weights=weights,
            examples=examples,
            config=as_dict(self.opts),
            wall_time_s=wall,
            tokens=total,
            extra={"metrics": {k: v for k, v in metrics.items() if k not in ("wall_time_s", "tokens")}},
        )


def batches(items: list, size: int):
    for i in range(0, len(items), size):
        yield items[i : i + size]


@torch.no_grad()
def example_losses(model, examples: list[dict], pad_id: int, batch_size: int, desc: str) -> torch.Tensor:
    """Mean response-token loss of each example (``per_example_loss``), in order, as a CPU tensor."""
    model.eval()
    device = next(model.parameters()).device
    # Batches of similar length waste little compute on padding; results go back to input order.
    order = sorted(range(len(examples)), key=lambda i: len(examples[i]["input_ids"]))
    out = torch.empty(len(examples))
    for idx in tqdm(list(batches(order, batch_size)), desc=desc, unit="batch"):
        chunk = [examples[i] for i in idx]
        batch = {k: v.to(device) for k, v in collate(chunk, pad_id).items() if k != "source"}
        loss, _ = per_example_loss(model, batch)
        out[idx] = loss.float().cpu()
    return out


def train(run: Run, phase: str, model, tokenizer, examples: list[dict], cfg: SFTConfig, callbacks=None, **extra):
    """``train_sft`` in a scratch folder of the run (removed after); counts the tokens trained on."""
    if not examples:
        raise DataError(f"{run.method}: no examples to train the {phase} on")
    scratch = run.out / f"trainer-{phase}"
    run.log.info("%s: training on %d examples (%s)", phase, len(examples), cfg)
    extra = {"include_num_input_tokens_seen": "non_padding", "save_only_model": True, **extra}
    try:
        history = train_sft(model, tokenizer, examples, cfg, str(scratch), run.inputs.seed, callbacks, **extra)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    seen = max((h.get("num_input_tokens_seen", 0) for h in history), default=0)
    run.count(phase, seen)
    losses = [h["loss"] for h in history if "loss" in h]
    if losses:
        run.log.info("%s: loss %.4f -> %.4f over %d logged steps", phase, losses[0], losses[-1], len(losses))
    return history


SCORE_DIGITS = 4
"""Example scores are ranked after rounding to this many digits of the largest |score| (a grid of 1e-4 of it)."""


def top_n(scores: torch.Tensor, n: int, ties: list | None = None) -> list[int]:
    """Indices of the ``n`` largest scores, ranked on a grid of 10^-SCORE_DIGITS × max|score| with ties broken by
    ``ties`` (the examples' (source, id); their index if not given).

    Why the grid: float reductions differ between CPUs by ~1e-7 relative, which reorders examples whose scores
    differ by less and so changes which examples a selection picks from machine to machine; on the grid such
    near-equal scores are tied and their order is the ids', the same everywhere."""
    values = [float(v) for v in scores]
    step = max((abs(v) for v in values), default=0.0) * 10.0**-SCORE_DIGITS or 1.0
    ties = list(range(len(values))) if ties is None else ties
    order = sorted(range(len(values)), key=lambda i: (-round(values[i] / step), ties[i]))
    return order[:n]


def tie_keys(pool: Pool) -> list[tuple[str, str]]:
    """(source name, id) of every pool example: the order of examples whose scores tie."""
    return [(pool.source_names[e["source"]], str(e["id"])) for e in pool.examples]


def as_examples(pool: Pool, indices: list[int]) -> list[dict]:
    return [{"source": pool.source_names[pool.examples[i]["source"]], "id": pool.examples[i]["id"]} for i in indices]


def source_counts(pool: Pool, indices: list[int]) -> dict[str, int]:
    counts = dict.fromkeys(pool.source_names, 0)
    for i in indices:
        counts[pool.source_names[pool.examples[i]["source"]]] += 1
    return counts
