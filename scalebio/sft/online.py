"""Weights applied online (``sft.sampling: online | trajectory``): the source of every SFT example is drawn from p.

The static SFT set (``scalebio.sft.mixture``) draws N = budget examples once, n_k = N·p_k per source. Online
sampling instead draws, for each of the N training slots of an epoch, a source k ~ Categorical(p) and then the
next example of that source (a seeded permutation of the source, re-shuffled when it runs out, as the static
builder does), fresh every epoch. The validation set is appended once per epoch, as in the static set, and the
N + |validation| slots are shuffled together. The expected count of source k is N·p_k, so the number of
examples and, in expectation, the tokens per epoch equal the static set's (which caps a source at its size;
online draws have no cap, a source is repeated once exhausted).

``trajectory`` follows p as it moved during reweighting: ScaleBiO writes one row per step to ``metrics.jsonl``
next to ``selection.json``; slot j of N uses the row at the same fraction j/N of the reweighting run.

A selection of kind ``examples`` (LESS, RHO-LOSS) has no p: it trains on the static set, and says so in the log
and in the model's ``sampling.json``. (Deriving p from its per-source counts would throw away which examples it
chose, i.e. turn it into another method.) A weights selection without a trajectory file (uniform, DoReMi, ...)
runs ``trajectory`` with its constant p, recorded the same way.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch

from scalebio.common.data import load_sources, load_split
from scalebio.common.runtime import DataError, file_sha256
from scalebio.common.selection import read_selection
from scalebio.common.streams import seeded_generator

log = logging.getLogger(__name__)

TRAJECTORY_FILE = "metrics.jsonl"
"""ScaleBiO's per-step metrics (``"weights"`` per row), next to ``selection.json``."""


class SourceSampler(torch.utils.data.Sampler[int]):
    """Indices into ``[source 0 examples, source 1 examples, ..., fixed examples]`` for one epoch.

    Hand-written: torch's ``WeightedRandomSampler`` draws examples i.i.d. with replacement from per-example
    weights; it cannot append a fixed set (validation) exactly once, draw without replacement inside a source
    (as the static set does), or let p change along the epoch (``trajectory``). The draw depends only on
    (seed, epoch), so every process of a DDP run builds the same sequence (accelerate then shards it) and a
    resumed run skips exactly the batches it had trained on; the Trainer calls ``set_epoch`` every epoch.
    """

    def __init__(self, sizes: list[int], probs, n_draws: int, n_fixed: int = 0, seed: int = 0):
        self.sizes = list(sizes)
        self.probs = torch.as_tensor(probs, dtype=torch.float64).reshape(-1, len(self.sizes))
        if (self.probs < 0).any() or not torch.allclose(self.probs.sum(1), torch.ones(len(self.probs)).double()):
            raise DataError(f"source probabilities must be non-negative rows summing to 1, got {self.probs.tolist()}")
        empty = [k for k, n in enumerate(self.sizes) if n == 0 and self.probs[:, k].max() > 0]
        if empty:
            raise DataError(f"sources {empty} have positive probability and no example")
        self.offsets = [sum(self.sizes[:k]) for k in range(len(self.sizes))]
        self.n_draws, self.n_fixed, self.seed, self.epoch = n_draws, n_fixed, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.n_draws + self.n_fixed

    def draw(self, epoch: int) -> tuple[list[int], torch.Tensor]:
        """(indices of one epoch, source of each of the N draws in slot order)."""
        g = seeded_generator(self.seed, epoch)
        # Slot j of the N draws uses the p row at fraction j/N (one row: the same p for every slot).
        rows = (torch.arange(self.n_draws) * len(self.probs)) // max(self.n_draws, 1)
        src = torch.multinomial(self.probs[rows].float(), 1, replacement=True, generator=g).squeeze(1)
        pool = torch.empty(self.n_draws, dtype=torch.long)
        for k, n in enumerate(self.sizes):
            slots = (src == k).nonzero().squeeze(1)
            if len(slots):
                passes = -(-len(slots) // n)
                order = torch.cat([torch.randperm(n, generator=g) for _ in range(passes)])[: len(slots)]
                pool[slots] = order + self.offsets[k]
        fixed = torch.arange(self.n_fixed) + sum(self.sizes)
        everything = torch.cat([pool, fixed])
        return everything[torch.randperm(len(everything), generator=g)].tolist(), src

    def __iter__(self):
        return iter(self.draw(self.epoch)[0])


def read_trajectory(selection_path: Path, names: list[str]) -> list[list[float]] | None:
    """Per-step weights recorded next to the selection (rows in source order), or None if there are none."""
    path = selection_path.parent / TRAJECTORY_FILE
    if not path.exists():
        return None
    rows = []
    for i, line in enumerate(path.read_text().splitlines(), 1):
        w = json.loads(line).get("weights") if line.strip() else None
        if w is None:
            continue
        if sorted(w) != names:
            raise DataError(f"{path}:{i}: weights name sources {sorted(w)}, the selection has {names}")
        rows.append([float(w[n]) for n in names])
    return rows or None


def online_training_set(selection_path, data_dir, tokenizer, mode: str, max_length: int, seed: int):
    """(examples, sampler, record) for ``mode`` online/trajectory; sampler None means "use the static set".

    ``record`` (written to the model folder as ``sampling.json``) says which mode ran and why.
    """
    from scalebio.common.registry import registered
    from scalebio.sft.mixture import VALIDATION_SOURCE, check_pool

    selection_path, data_dir = Path(selection_path), Path(data_dir)
    sel = read_selection(selection_path, known_methods=registered())
    record = {"requested": mode, "selection": str(selection_path), "selection_sha256": file_sha256(selection_path)}
    if sel["kind"] != "weights":
        log.warning("sft.sampling=%s: selection '%s' lists examples, it has no p; training on the static set", mode,
                    selection_path)  # fmt: skip
        return None, None, {**record, "mode": "static", "reason": "selection of kind 'examples' has no weights"}
    check_pool(sel, selection_path, data_dir)
    sources = load_sources(data_dir, tokenizer, max_length)
    names = [s.name for s in sources]
    p = [float(sel["weights"].get(n, 0.0)) for n in names]
    probs, used = [p], mode
    if mode == "trajectory":
        traj = read_trajectory(selection_path, names)
        if traj is None:
            log.warning("sft.sampling=trajectory: no %s next to '%s'; sampling with its final p", TRAJECTORY_FILE,
                        selection_path)  # fmt: skip
            used = "online"
            record["reason"] = f"no {TRAJECTORY_FILE} next to the selection: constant p"
        else:
            probs = traj
            record["trajectory_steps"] = len(traj)
    val = load_split(data_dir / "validation.jsonl", tokenizer, max_length)
    examples = [e for s in sources for e in s.examples] + val
    sampler = SourceSampler([len(s.examples) for s in sources], probs, sel["budget"], len(val), seed)
    counts = torch.bincount(sampler.draw(0)[1], minlength=len(names)).tolist()
    record.update(
        mode=used,
        budget=sel["budget"],
        weights=dict(zip(names, p)),
        counts_epoch0=dict(zip(names, counts)),
        validation={"appended": True, "n_examples": len(val), "source": VALIDATION_SOURCE},
        seed=seed,
    )
    log.info("online sampling (%s): N=%d draws per epoch + %d validation; epoch-0 counts %s", used,
             sel["budget"], len(val), record["counts_epoch0"])  # fmt: skip
    return examples, sampler, record
