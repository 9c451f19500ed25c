"""What happens after each ScaleBiO step besides the step itself: small callbacks, in the manner of OLMo-core's.

The run loop (``trainer.ScaleBiORecipe.train``) computes one metrics row per step and hands it to each callback in
order; a callback owns one concern and its state:

- ``MetricsFile``: appends the row to ``metrics.jsonl`` (main process);
- ``ConsoleLog``: one log line every 10 steps and at the end (main process);
- ``ClipMonitor``: warns once when clipping is active in most steps (METHOD.md §6; main process);
- ``ProgressBar``: the tqdm bar with ETA (main process, ``progress: true``);
- ``Checkpointer``: the resumable state every ``checkpoint_every`` steps and on SIGTERM (every process joins).

``default_callbacks`` builds them in this order, the order the single step-end hook had.
"""

from __future__ import annotations

import json
import logging

from tqdm.auto import tqdm

from scalebio.checkpoint import save_checkpoint
from scalebio.common.preemption import Preempted, PreemptionFlag

log = logging.getLogger(__name__)


class Callback:
    """A step-end concern; every hook is optional. ``recipe`` is the running ``trainer.ScaleBiORecipe``."""

    def pre_train(self, recipe) -> None:
        """Before the first remaining step (after set-up and resume)."""

    def post_step(self, recipe, step: int, row: dict) -> None:
        """After step ``step`` (0-based) with its metrics row (``row["step"]`` is 1-based)."""

    def close(self) -> None:
        """After the loop, also when it failed: release files and bars."""


class MetricsFile(Callback):
    """One JSON line per step in ``metrics.jsonl``, flushed at once (a killed run keeps every finished step)."""

    def __init__(self) -> None:
        self.file = None

    def pre_train(self, recipe) -> None:
        self.file = open(recipe.run_dir / "metrics.jsonl", "a")

    def post_step(self, recipe, step: int, row: dict) -> None:
        self.file.write(json.dumps(row) + "\n")
        self.file.flush()

    def close(self) -> None:
        if self.file is not None:
            self.file.close()


class ConsoleLog(Callback):
    """The losses, the gap, the clipped fractions and p every 10 steps and at the last step."""

    def post_step(self, recipe, step: int, row: dict) -> None:
        if (step + 1) % 10 and step + 1 != recipe.total:
            return
        log.info(
            "step %d/%d L1(w)=%.4f L2(w)=%.4f L2(u)=%.4f gap=%.2e clipped u/w %.0f%%/%.0f%% p=%s",
            step + 1, recipe.total, row["L1(w)"], row["L2(w)"], row["L2(u)"], row["gap"], 100 * row["clip_frac_u"],
            100 * row["clip_frac_w"], {k: round(v, 4) for k, v in row["weights"].items()},
        )  # fmt: skip


class ClipMonitor(Callback):
    """Once, from a quarter of the run on (the first steps of a fresh model are large anyway): clipped in most steps,
    u and w move by normalised gradients of length α, not as the official settings intend (METHOD.md §6)."""

    def __init__(self) -> None:
        self.warned = False

    def post_step(self, recipe, step: int, row: dict) -> None:
        steps, total = step + 1, recipe.total
        fractions = (row["clip_frac_u"], row["clip_frac_w"])
        if self.warned or steps < min(total, max(10, total // 4)) or max(fractions) <= 0.5:
            return
        self.warned = True
        log.warning(
            "gradient clipping at alpha*max_grad_norm was active in %.0f%% (u) and %.0f%% (w) of the %d steps so far: "
            "u and w follow normalised gradients, where the official settings clip rarely (METHOD.md §6). Short "
            "responses raise the gradient norm; loss_span=assistant_turn (the official span) lowers it",
            100 * fractions[0], 100 * fractions[1], steps,
        )  # fmt: skip


class ProgressBar(Callback):
    """A tqdm bar over the run's steps (resumed runs start where they left off), with L1(w) and the gap."""

    def __init__(self) -> None:
        self.bar = None

    def pre_train(self, recipe) -> None:
        self.bar = tqdm(total=recipe.total, initial=recipe.start, desc="scalebio", unit="step", dynamic_ncols=True)

    def post_step(self, recipe, step: int, row: dict) -> None:
        self.bar.update(1)
        self.bar.set_postfix(L1=f"{row['L1(w)']:.3f}", gap=f"{row['gap']:.1e}")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


class Checkpointer(Callback):
    """The latest resumable state every ``every`` steps, not after the last (the run's result is written then); and
    after a SIGTERM (``preemption``, agreed by every process), the state at once, then ``Preempted``: the job fails
    with its checkpoint saved and the rerun continues from it."""

    def __init__(self, every: int, preemption: PreemptionFlag | None = None) -> None:
        self.every, self.preemption = every, preemption

    def post_step(self, recipe, step: int, row: dict) -> None:
        last = step + 1 >= recipe.total
        stop = self.preemption is not None and self.preemption.agreed() and not last
        if not stop and (not self.every or (step + 1) % self.every or last):
            return
        save_checkpoint(recipe.run_dir, step + 1, recipe.mm, recipe.dist, recipe.cfg_hash, recipe.tokens_total,
                        recipe.clipped, recipe.average.state_dict())  # fmt: skip
        if stop:
            raise Preempted(f"stopped by SIGTERM after step {step + 1} with its checkpoint saved; rerun to continue")


def default_callbacks(is_main: bool, progress: bool, checkpoint_every: int, preemption=None) -> list[Callback]:
    """The run's callbacks in the order the step-end hook had: the main process writes and reports, every process
    joins the checkpoint (its state is gathered from all of them, or written shard by shard)."""
    out: list[Callback] = [MetricsFile(), ConsoleLog(), ClipMonitor()] if is_main else []
    if is_main and progress:
        out.append(ProgressBar())
    return [*out, Checkpointer(checkpoint_every, preemption)]
