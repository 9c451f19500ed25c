"""ScaleBiO as a data-selection method of the suite (entry point ``scalebio`` of ``scalebio.methods``).

    python -m scalebio select --method scalebio --data DIR --model DIR --out DIR --budget 400 \
        --options '{"max_steps": 100, "global_batch_size": 16, "micro_batch_size": 16, "lr_u": 1e-3, "lr_w": 1e-3}'
"""

from __future__ import annotations

from pathlib import Path

from scalebio.common.config import as_dict, from_dict
from scalebio.common.runtime import is_main
from scalebio.common.selection import SELECTION_FILE, MethodInputs, write_selection
from scalebio.trainer import ScaleBiOConfig, run

Options = ScaleBiOConfig


def config_from_inputs(inputs: MethodInputs, prefix: str = "methods.scalebio.") -> ScaleBiOConfig:
    """Typed options; errors name the key as the user wrote it (``prefix``: workflow or CLI spelling)."""
    opts = dict(inputs.options or {})
    opts.setdefault("seed", inputs.seed)  # the suite's seed unless the method options set one
    return from_dict(ScaleBiOConfig, opts, prefix=prefix)


def select(inputs: MethodInputs, prefix: str = "methods.scalebio.") -> Path:
    """Run ScaleBiO and write ``selection.json`` (kind ``weights``) — only after a successful run."""
    cfg = config_from_inputs(inputs, prefix)
    path = Path(inputs.out_dir) / SELECTION_FILE
    if is_main():  # before the process group exists this reads the launcher's RANK
        path.unlink(missing_ok=True)  # a failed rerun must not leave an older run's selection behind
    result = run(cfg, inputs.sources, inputs.validation, inputs.model, inputs.out_dir)
    if is_main():
        write_selection(
            inputs,
            "scalebio",
            weights=result.weights,
            config=as_dict(cfg),
            wall_time_s=result.wall_time_s,
            tokens=result.tokens,
            extra={
                "theta": result.theta,
                "steps": result.steps,
                "dropped_truncated": result.dropped,
                "clip_fraction": result.clip_fraction,
                "movement": result.movement,  # Σ η_θ, largest log-ratio, change over the last 10 % (METHOD.md §17)
                # stabilize on: weights = the averaged p; the last step's p (official read-out) beside it
                **({"raw_weights": result.raw_weights} if cfg.stabilize != "none" else {}),
            },
        )
    return path
