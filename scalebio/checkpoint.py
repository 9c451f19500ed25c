"""ScaleBiO's resumable checkpoints: the latest state of a run, written atomically, older ones removed.

A checkpoint holds both models, θ, the three optimizers, the RNG states, the clip counts, the running average
of p (``stabilize``) and the last validation losses of several objectives, with the hash of the config that
wrote it: a run resumes only from its own config's checkpoint (trainer.py ``_resume``). Only the latest is
kept; a successful run deletes it unless ``keep_checkpoints`` is set.
"""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import torch

from scalebio.common.runtime import ConfigError, atomic_dir
from scalebio.minimax import Minimax


def latest_checkpoint(run_dir: Path) -> Path | None:
    ckpts = sorted((run_dir / "checkpoints").glob("step-*"), key=lambda p: int(p.name.split("-")[1]))
    ckpts = [c for c in ckpts if (c / "state.pt").exists()]
    return ckpts[-1] if ckpts else None


def truncate_metrics(path: Path, upto_step: int) -> None:
    """Drop rows a killed run wrote after its last checkpoint (rows carry 1-based steps)."""
    if path.exists():
        rows = [ln for ln in path.read_text().splitlines() if ln and json.loads(ln)["step"] <= upto_step]
        path.write_text("".join(r + "\n" for r in rows))


def save_checkpoint(
    run_dir: Path, step: int, mm: Minimax, dist, cfg_hash: str, tokens: int = 0, clipped: dict | None = None,
    average: dict | None = None,
) -> None:  # fmt: skip
    """The latest resumable state (both models, θ, the three optimizers, RNGs, clip counts, the average of p, the
    last validation losses of several objectives); older ones are removed."""
    state = {
        "step": step,
        "objectives_last": mm.objectives.last if mm.objectives else None,  # worst_case's next coefficients
        "tokens": tokens,
        "clipped": dict(clipped or {}),
        "average": average,
        "config_hash": cfg_hash,
        "u": dist.full_model_state(mm.u),
        "w": dist.full_model_state(mm.w),
        "theta": mm.weights.theta.detach().cpu().clone(),
        "opt_u": dist.full_optim_state(mm.u, mm.opt_u),
        "opt_w": dist.full_optim_state(mm.w, mm.opt_w),
        "opt_theta": mm.opt_theta.state_dict(),
        "rng": {"torch": torch.get_rng_state(), "python": random.getstate()},
    }
    if not dist.is_main:
        return
    final = run_dir / "checkpoints" / f"step-{step}"
    # Through a Python file: a failed write (disk full) then surfaces as the OSError that says why, which atomic_dir
    # turns into one line naming the checkpoint (torch's own file writer reports only "unexpected pos").
    with atomic_dir(final, what="checkpoint") as tmp, open(tmp / "state.pt", "wb") as f:
        torch.save(state, f)
    for old in (run_dir / "checkpoints").glob("step-*"):
        if old != final:
            shutil.rmtree(old, ignore_errors=True)


def load_checkpoint(path: Path, mm: Minimax, dist, cfg_hash: str) -> tuple[int, int, dict, dict | None]:
    # weights_only=False: the file holds Python RNG state; it is this run's own checkpoint, written above.
    state = torch.load(path / "state.pt", map_location="cpu", weights_only=False)
    if state["config_hash"] != cfg_hash:
        raise ConfigError(
            f"checkpoint '{path}' was written with a different config; delete '{path.parent}' or set resume=false"
        )
    dist.load_full_state(mm.u, mm.opt_u, state["u"], state["opt_u"])
    dist.load_full_state(mm.w, mm.opt_w, state["w"], state["opt_w"])
    with torch.no_grad():
        mm.weights.theta.copy_(state["theta"])
    mm.opt_theta.load_state_dict(state["opt_theta"])
    if mm.objectives is not None:
        mm.objectives.last = state.get("objectives_last")
    torch.set_rng_state(state["rng"]["torch"])
    random.setstate(state["rng"]["python"])
    return int(state["step"]), int(state.get("tokens", 0)), state.get("clipped", {}), state.get("average")
