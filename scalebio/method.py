"""ScaleBiO as a data-selection method of the suite (entry point ``scalebio`` of ``scalebio.methods``).

    python -m scalebio select --method scalebio --data DIR --model DIR --out DIR --budget 400 \
        --options '{"max_steps": 100, "global_batch_size": 16, "micro_batch_size": 16, "lr_u": 1e-3, "lr_w": 1e-3}'

``INFO`` says what it is to the rest of the suite: the paper's method, launched one process per slot (its trainer
runs under a process group; rank 0 writes); a config's ``methods.<name>.module: scalebio.method`` makes a variant
(``scalebio_lr10``) that launches the same way.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from scalebio.common.config import as_dict
from scalebio.common.registry import MethodInfo
from scalebio.common.runtime import is_main
from scalebio.common.selection import SELECTION_FILE, MethodInputs, write_selection
from scalebio.trainer import ScaleBiOConfig, run

Options = ScaleBiOConfig
INFO = MethodInfo(
    name="scalebio",
    display="ScaleBiO",
    role="method",
    order=50,
    in_paper=True,
    multi_process=True,
    trains=True,
    memory="bilevel",
    colour="#1f77b4",
    # its variants (the stability and multi-target studies) in the blue/red/pink family: one method's arms
    variant_colours=("#17becf", "#aec7e8", "#9edae5", "#e377c2", "#d62728", "#ff9896", "#7f3f98"),
)


def with_run_seed(cfg: ScaleBiOConfig, inputs: MethodInputs) -> ScaleBiOConfig:
    """The options with the run's seed (``--seed``) unless the method options set ``seed`` themselves."""
    return cfg if "seed" in (inputs.options or {}) else dataclasses.replace(cfg, seed=inputs.seed)


def select(inputs: MethodInputs, opts: ScaleBiOConfig) -> Path:
    """Run ScaleBiO and write ``selection.json`` (kind ``weights``) — only after a successful run. ``opts``: the
    typed options, built once by the caller (``registry.run_method``, or ``python -m scalebio reweight``)."""
    cfg = with_run_seed(opts, inputs)
    path = Path(inputs.out_dir) / SELECTION_FILE
    if is_main():  # before the process group exists this reads the launcher's RANK
        path.unlink(missing_ok=True)  # a failed rerun must not leave an older run's selection behind
    result = run(cfg, inputs.sources, inputs.validation, inputs.model, inputs.out_dir)
    if is_main():
        write_selection(
            inputs,
            INFO.name,
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
