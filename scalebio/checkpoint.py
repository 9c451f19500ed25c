"""ScaleBiO's resumable checkpoints: the latest state of a run, written atomically, older ones removed.

A checkpoint holds both models, θ, the three optimizers, the RNG states, the clip counts, the running average
of p (``stabilize``) and the last validation losses of several objectives, with the hash of the config that
wrote it: a run resumes only from its own config's checkpoint (trainer.py ``_resume``). Only the latest is
kept; a successful run deletes it unless ``keep_checkpoints`` is set.

Under FSDP the models and their optimizers are written sharded with ``torch.distributed.checkpoint`` (``shards/``:
every rank writes and later reads only its own pieces, in parallel; no rank gathers or loads the whole model), and
rank 0 writes the small replicated rest (``state.pt``) after them, then renames the folder into place: a folder
named ``step-N`` is complete. One process and DDP keep one ``state.pt`` with everything.
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
    # step-N.partial: a sharded save that did not finish (its ranks were killed); never resumed from
    found = [p for p in (run_dir / "checkpoints").glob("step-*") if p.name[5:].isdigit()]
    ckpts = sorted(found, key=lambda p: int(p.name[5:]))
    ckpts = [c for c in ckpts if (c / "state.pt").exists()]
    return ckpts[-1] if ckpts else None


def truncate_metrics(path: Path, upto_step: int) -> None:
    """Drop rows a killed run wrote after its last checkpoint (rows carry 1-based steps)."""
    if path.exists():
        rows = [ln for ln in path.read_text().splitlines() if ln and json.loads(ln)["step"] <= upto_step]
        path.write_text("".join(r + "\n" for r in rows))


def _replicated_state(step, mm: Minimax, cfg_hash, tokens, clipped, average) -> dict:
    """What every process holds alike: the step, θ and its optimizer, counters, the RNGs."""
    return {
        "step": step,
        "objectives_last": mm.objectives.last if mm.objectives else None,  # worst_case's next coefficients
        "tokens": tokens,
        "clipped": dict(clipped or {}),
        "average": average,
        "config_hash": cfg_hash,
        "theta": mm.weights.theta.detach().cpu().clone(),
        "opt_theta": mm.opt_theta.state_dict(),
        "rng": {"torch": torch.get_rng_state(), "python": random.getstate()},
    }


def save_checkpoint(
    run_dir: Path, step: int, mm: Minimax, dist, cfg_hash: str, tokens: int = 0, clipped: dict | None = None,
    average: dict | None = None,
) -> None:  # fmt: skip
    """The latest resumable state (both models, θ, the three optimizers, RNGs, clip counts, the average of p, the
    last validation losses of several objectives); older ones are removed. Every process must call it."""
    state = _replicated_state(step, mm, cfg_hash, tokens, clipped, average)
    final = run_dir / "checkpoints" / f"step-{step}"
    if dist.sharded:
        _save_sharded(final, state, mm, dist)
    else:
        state.update(
            u=dist.full_model_state(mm.u), w=dist.full_model_state(mm.w), opt_u=dist.full_optim_state(mm.u, mm.opt_u),
            opt_w=dist.full_optim_state(mm.w, mm.opt_w),
        )  # fmt: skip
        if not dist.is_main:
            return
        # Through a Python file: a failed write (disk full) then surfaces as the OSError that says why, which
        # atomic_dir turns into one line naming the checkpoint (torch's own writer reports only "unexpected pos").
        with atomic_dir(final, what="checkpoint") as tmp, open(tmp / "state.pt", "wb") as f:
            torch.save(state, f)
    if dist.is_main:
        for old in (run_dir / "checkpoints").glob("step-*"):
            if old != final:
                shutil.rmtree(old, ignore_errors=True)


def _sharded_models(mm: Minimax) -> dict:
    """The sharded state dicts of both models and their optimizers (each rank: its own shards)."""
    from torch.distributed.checkpoint.state_dict import get_state_dict

    out = {}
    for name, model, opt in (("u", mm.u, mm.opt_u), ("w", mm.w, mm.opt_w)):
        out[name], out[f"opt_{name}"] = get_state_dict(model, opt)
    return out


def _save_sharded(final: Path, state: dict, mm: Minimax, dist) -> None:
    import torch.distributed.checkpoint as dcp

    tmp = final.with_name(final.name + ".partial")  # one name every rank agrees on (atomic_dir's is per process)
    if dist.is_main:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    dist.barrier()
    dcp.save(_sharded_models(mm), checkpoint_id=str(tmp / "shards"))
    dist.barrier()  # every rank's shards are on disk before the folder is declared complete
    if dist.is_main:
        with open(tmp / "state.pt", "wb") as f:
            torch.save({**state, "sharded": True}, f)
        shutil.rmtree(final, ignore_errors=True)
        tmp.rename(final)
    dist.barrier()


def load_checkpoint(path: Path, mm: Minimax, dist, cfg_hash: str) -> tuple[int, int, dict, dict | None]:
    # weights_only=False: the file holds Python RNG state; it is this run's own checkpoint, written above.
    state = torch.load(path / "state.pt", map_location="cpu", weights_only=False)
    if state["config_hash"] != cfg_hash:
        raise ConfigError(
            f"checkpoint '{path}' was written with a different config; delete '{path.parent}' or set resume=false"
        )
    if state.get("sharded"):
        import torch.distributed.checkpoint as dcp
        from torch.distributed.checkpoint.state_dict import set_state_dict

        shards = _sharded_models(mm)  # this rank's pieces, shaped as the saved ones; dcp.load fills them in place
        dcp.load(shards, checkpoint_id=str(path / "shards"))
        for name, model, opt in (("u", mm.u, mm.opt_u), ("w", mm.w, mm.opt_w)):
            set_state_dict(model, opt, model_state_dict=shards[name], optim_state_dict=shards[f"opt_{name}"])
    else:
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
