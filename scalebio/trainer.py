"""The ScaleBiO run loop: data, sampling, schedule, LISA, checkpoints, metrics (around minimax.py).

    python -m scalebio reweight --config my.yaml max_steps=50            # one process
    torchrun --nproc_per_node 2 -m scalebio reweight --config my.yaml     # DDP (or distributed=fsdp)

Run folder: ``config.json`` (resolved), ``log.txt``, ``metrics.jsonl`` (one line per step),
``checkpoints/step-<k>/`` (latest only; a restarted run resumes from it), ``model_w/`` if asked.
Batches are i.i.d. uniform draws from the concatenation of the sources (v2 semantics, notes §14
#8), generated from (seed, step) so a resumed run and every process see the same global batch.
"""

from __future__ import annotations

import json
import logging
import random
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch

from scalebio import distributed
from scalebio.config import as_dict
from scalebio.data import collate, load_sources, load_split
from scalebio.lisa import LISA
from scalebio.minimax import Minimax, cosine_with_warmup, make_optimizers, set_learning_rates
from scalebio.modeling import check_tokenizer_matches, load_model, load_tokenizer
from scalebio.runtime import ConfigError, atomic_dir, atomic_write_json, config_hash, seed_everything, setup_logging
from scalebio.weights import SourceWeights

log = logging.getLogger("scalebio")


@dataclass
class ScaleBiOConfig:
    """ScaleBiO options. Defaults = the official v2 math script (``run_scalebio.sh``, notes §9)."""

    lr_u: float = 1e-5
    """Initial learning rate of u (official: 1e-5; 2e-6 with LISA)."""
    lr_w: float = 1e-5
    """Initial learning rate of w (official: 1e-5; 2e-6 with LISA)."""
    lr_theta: float = 1e-2
    """Initial learning rate of θ, the source-weight logits (official: 1e-2). The sensitive knob: each logit moves at most ~lr_theta per step."""
    alpha: float = 100.0
    """α, the penalty weight on L2(w)−L2(u) (official: 100). The validation pull on w has relative weight ~1/α."""
    tau: float = 1.0
    """α growth per outer iteration: α_i = α·τ^(i+1), learning rates × τ^(−i) (official: 1)."""
    num_outer_iter: int = 1
    """Number of outer iterations (official: 1)."""
    epochs: int = 1
    """Passes over the pool: steps per outer iteration = floor(n_train / global_batch_size) × epochs."""
    max_steps: int = 0
    """If > 0, total steps (split evenly over outer iterations) instead of the epoch-derived count."""
    global_batch_size: int = 128
    """Training examples per step over all micro-steps and processes (official: 128)."""
    micro_batch_size: int = 1
    """Examples per forward pass (official: 1); validation micro-batches have the same size (notes §14 #9)."""
    max_length: int = 1024
    """Truncation length in tokens (official: 1024)."""
    warmup_ratio: float = 0.03
    """Linear warm-up fraction of the cosine schedule, applied to all three learning rates (official: 0.03)."""
    clip_model: bool = True
    """Clip the gradient norm of u and of w at α·max_grad_norm (v2 ``--clip_model``, on in the official scripts)."""
    max_grad_norm: float = 1.0
    """Clip threshold before the α factor."""
    weight_decay: float = 5e-4
    """AdamW decoupled weight decay of u and w (official: 5e-4)."""
    theta_weight_decay: float = 0.01
    """AdamW weight decay of θ (torch default 0.01, as in the official code)."""
    use_lisa: bool = False
    """Randomized block-coordinate updates (LISA) of u and w (official math: off; LISA script: on)."""
    lisa_n_layers: int = 4
    """Active decoder blocks per LISA period (official LISA script: 4; v1: 2)."""
    lisa_interval: int = 20
    """Steps between LISA re-draws (official: 20)."""
    lisa_keep_optimizer_state: bool = False
    """Keep Adam moments of re-frozen blocks (official behaviour). Default false: release them, so inactive blocks cost no optimizer memory."""
    seed: int = 0
    """Seed of model init RNG, batch sampling and LISA draws (official: 0)."""
    dtype: Literal["float32", "bfloat16"] = "float32"
    """Parameter dtype of u and w (official: bfloat16 without fp32 master weights; float32 is the CPU default, notes §14 #10). θ is always fp32."""
    gradient_checkpointing: bool = False
    """Recompute activations in backward (less memory, ~30% more time)."""
    device: str = "auto"
    """auto (CUDA if available), cpu, or cuda."""
    distributed: Literal["ddp", "fsdp"] = "ddp"
    """Strategy under torchrun/accelerate: ddp (full copies, averaged gradients) or fsdp (FULL_SHARD, use_orig_params)."""
    checkpoint_every: int = 50
    """Save a resumable checkpoint every N steps (latest kept); 0 = never."""
    resume: bool = True
    """Resume from the run folder's latest checkpoint if one exists (it must come from the same config)."""
    keep_checkpoints: bool = False
    """Keep the latest checkpoint after a successful run (default: delete it; checkpoints exist to resume a killed run and hold two models plus their optimizer states)."""
    save_model_w: bool = False
    """Also save the final w (a by-product; the paper re-trains from the base model with the weights)."""
    progress: bool = True
    """Show a tqdm progress bar with ETA."""

    def validate(self) -> None:
        for name in ("lr_u", "lr_w", "lr_theta", "alpha", "tau", "max_grad_norm"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"option '{name}' must be > 0, got {getattr(self, name)}")
        for name in ("num_outer_iter", "epochs", "global_batch_size", "micro_batch_size", "max_length"):
            if getattr(self, name) < 1:
                raise ConfigError(f"option '{name}' must be >= 1, got {getattr(self, name)}")
        if self.max_steps < 0 or self.checkpoint_every < 0:
            raise ConfigError("options 'max_steps' and 'checkpoint_every' must be >= 0")
        if self.global_batch_size % self.micro_batch_size:
            raise ConfigError(
                f"global_batch_size={self.global_batch_size} is not a multiple of micro_batch_size={self.micro_batch_size}"
            )
        if not 0 <= self.warmup_ratio < 1:
            raise ConfigError(f"option 'warmup_ratio' must be in [0, 1), got {self.warmup_ratio}")
        if self.use_lisa and (self.lisa_n_layers < 1 or self.lisa_interval < 1):
            raise ConfigError("options 'lisa_n_layers' and 'lisa_interval' must be >= 1")
        if self.device not in ("auto", "cpu", "cuda"):
            raise ConfigError(f"option 'device' must be auto, cpu or cuda, got '{self.device}'")


@dataclass
class RunResult:
    weights: dict[str, float]
    theta: dict[str, float]
    steps: int
    tokens: int
    wall_time_s: float


class IIDSampler:
    """Global batch of step s = G micro-batches, each the first m indices of a fresh permutation of
    the pool (v2 re-builds its shuffled DataLoader every micro-step: i.i.d. batches with replacement
    across micro-steps). Process r of P takes micro-batches r·G/P … (r+1)·G/P − 1."""

    def __init__(self, n: int, micro: int, n_micro_global: int, seed: int, stream: int):
        self.n, self.micro, self.n_micro_global, self.seed, self.stream = n, micro, n_micro_global, seed, stream

    def indices(self, step: int, rank: int, world: int) -> list[list[int]]:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.stream * 100_003 + step)
        draws = [torch.randperm(self.n, generator=g)[: self.micro].tolist() for _ in range(self.n_micro_global)]
        per = self.n_micro_global // world
        return draws[rank * per : (rank + 1) * per]


def _device(cfg: ScaleBiOConfig) -> torch.device:
    import os

    if cfg.device == "cpu" or (cfg.device == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise ConfigError("option device=cuda but CUDA is not available; use device=cpu")
    return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))


def _to(batch: dict, device: torch.device) -> dict:
    return {k: v.to(device) for k, v in batch.items()}


# ---- checkpoints ---------------------------------------------------------------------------------
def _latest_checkpoint(run_dir: Path) -> Path | None:
    ckpts = sorted((run_dir / "checkpoints").glob("step-*"), key=lambda p: int(p.name.split("-")[1]))
    ckpts = [c for c in ckpts if (c / "state.pt").exists()]
    return ckpts[-1] if ckpts else None


def _model_state(model, dist) -> dict:
    if dist.strategy == "fsdp" and dist.enabled:
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

        return get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    return model.state_dict()


def _optim_state(model, opt, dist) -> dict:
    if dist.strategy == "fsdp" and dist.enabled:
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

        return get_optimizer_state_dict(model, opt, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    return opt.state_dict()


def save_checkpoint(run_dir: Path, step: int, mm: Minimax, dist, cfg_hash: str, tokens: int = 0) -> None:
    state = {
        "step": step,
        "tokens": tokens,
        "config_hash": cfg_hash,
        "u": _model_state(mm.u, dist),
        "w": _model_state(mm.w, dist),
        "theta": mm.weights.theta.detach().cpu().clone(),
        "opt_u": _optim_state(mm.u, mm.opt_u, dist),
        "opt_w": _optim_state(mm.w, mm.opt_w, dist),
        "opt_theta": mm.opt_theta.state_dict(),
        "rng": {"torch": torch.get_rng_state(), "python": random.getstate()},
    }
    if not dist.is_main:
        return
    final = run_dir / "checkpoints" / f"step-{step}"
    with atomic_dir(final) as tmp:
        torch.save(state, tmp / "state.pt")
    for old in (run_dir / "checkpoints").glob("step-*"):
        if old != final:
            shutil.rmtree(old, ignore_errors=True)


def load_checkpoint(path: Path, mm: Minimax, dist, cfg_hash: str) -> tuple[int, int]:
    state = torch.load(path / "state.pt", map_location="cpu", weights_only=False)
    if state["config_hash"] != cfg_hash:
        raise ConfigError(
            f"checkpoint '{path}' was written with a different config; delete '{path.parent}' or set resume=false"
        )
    if dist.strategy == "fsdp" and dist.enabled:
        from torch.distributed.checkpoint.state_dict import StateDictOptions, set_state_dict

        opts = StateDictOptions(full_state_dict=True)
        set_state_dict(mm.u, mm.opt_u, model_state_dict=state["u"], optim_state_dict=state["opt_u"], options=opts)
        set_state_dict(mm.w, mm.opt_w, model_state_dict=state["w"], optim_state_dict=state["opt_w"], options=opts)
    else:
        mm.u.load_state_dict(state["u"])
        mm.w.load_state_dict(state["w"])
        mm.opt_u.load_state_dict(state["opt_u"])
        mm.opt_w.load_state_dict(state["opt_w"])
    with torch.no_grad():
        mm.weights.theta.copy_(state["theta"])
    mm.opt_theta.load_state_dict(state["opt_theta"])
    torch.set_rng_state(state["rng"]["torch"])
    random.setstate(state["rng"]["python"])
    return int(state["step"]), int(state.get("tokens", 0))


def _truncate_metrics(path: Path, upto_step: int) -> None:
    """Drop rows a killed run wrote after its last checkpoint (rows carry 1-based steps)."""
    if path.exists():
        rows = [ln for ln in path.read_text().splitlines() if ln and json.loads(ln)["step"] <= upto_step]
        path.write_text("".join(r + "\n" for r in rows))


# ---- the run -------------------------------------------------------------------------------------
def run(
    cfg: ScaleBiOConfig, sources: dict[str, str], validation: str, model_path: str, run_dir: str | Path
) -> RunResult:
    """Learn per-source weights; returns them (the caller writes selection.json)."""
    t_start = time.time()
    run_dir = Path(run_dir)
    device = _device(cfg)
    dist = distributed.init(cfg.distributed, device)
    world, rank = dist.world_size, dist.rank
    if dist.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        setup_logging(run_dir)
        atomic_write_json(run_dir / "config.json", as_dict(cfg))
    seed_everything(cfg.seed)
    cfg_hash = config_hash({"config": as_dict(cfg), "sources": sources, "world": world, "model": str(model_path)})

    n_micro_global = cfg.global_batch_size // cfg.micro_batch_size
    if n_micro_global % world:
        raise ConfigError(
            f"global_batch_size / micro_batch_size = {n_micro_global} micro-batches cannot be split over {world} processes"
        )

    # Data: sources sorted by name (notes §14 #3); every example carries its source index.
    tok = load_tokenizer(model_path)
    srcs = load_sources(sources, tok, cfg.max_length)
    names = [s.name for s in srcs]
    train = [dict(ex, source=k) for k, s in enumerate(srcs) for ex in s.examples]
    val = load_split(validation, tok, cfg.max_length, what="validation set")
    for ex in val:
        ex["source"] = 0  # unused; keeps collate uniform
    if cfg.micro_batch_size > min(len(train), len(val)):
        raise ConfigError(
            f"micro_batch_size={cfg.micro_batch_size} exceeds the pool ({len(train)}) or validation set ({len(val)})"
        )
    inner = cfg.max_steps // cfg.num_outer_iter if cfg.max_steps else (len(train) // cfg.global_batch_size) * cfg.epochs
    if inner < 1:
        raise ConfigError(
            f"the pool has {len(train)} examples, fewer than global_batch_size={cfg.global_batch_size} "
            f"× num_outer_iter={cfg.num_outer_iter}; lower global_batch_size or set max_steps"
        )
    total = inner * cfg.num_outer_iter
    warmup = int(cfg.warmup_ratio * total)

    # Models: u and w are two independent copies of the pretrained model.
    u = load_model(model_path, cfg.dtype, device, cfg.gradient_checkpointing)
    w = load_model(model_path, cfg.dtype, device, cfg.gradient_checkpointing)
    check_tokenizer_matches(u, tok, where=f"model '{model_path}': ")
    u.train()
    w.train()
    weights = SourceWeights(names).to(device)
    lisa_u = lisa_w = None
    if cfg.use_lisa:
        lisa_u = LISA(u, None, cfg.lisa_n_layers, cfg.lisa_interval, cfg.seed, "u", cfg.lisa_keep_optimizer_state)
        lisa_w = LISA(w, None, cfg.lisa_n_layers, cfg.lisa_interval, cfg.seed, "w", cfg.lisa_keep_optimizer_state)
    if dist.strategy == "fsdp" and dist.enabled:
        u = distributed.wrap_fsdp(u, device)
        w = distributed.wrap_fsdp(w, device)
    opt_u, opt_w, opt_theta = make_optimizers(
        u, w, weights, cfg.lr_u, cfg.lr_w, cfg.lr_theta, cfg.weight_decay, cfg.theta_weight_decay
    )
    if lisa_u is not None:
        lisa_u.optimizer, lisa_w.optimizer = opt_u, opt_w
    mm = Minimax(u, w, weights, opt_u, opt_w, opt_theta, cfg.alpha, cfg.max_grad_norm if cfg.clip_model else None, dist)

    start = tokens_total = 0
    ckpt = _latest_checkpoint(run_dir) if cfg.resume else None
    if ckpt is not None:
        start, tokens_total = load_checkpoint(ckpt, mm, dist, cfg_hash)
        log.info("resumed from %s (step %d)", ckpt, start)
    elif dist.is_main and (run_dir / "checkpoints").exists():
        shutil.rmtree(run_dir / "checkpoints")
    metrics_path = run_dir / "metrics.jsonl"
    if dist.is_main:
        _truncate_metrics(metrics_path, start)
        log.info(
            "ScaleBiO: %d sources %s, %d train / %d val examples, %d steps (%d warm-up), %d process(es), "
            "%d micro-steps per process of %d, LISA %s",
            len(names), names, len(train), len(val), total, warmup, world, n_micro_global // world,
            cfg.micro_batch_size, f"{cfg.lisa_n_layers} blocks / {cfg.lisa_interval} steps" if cfg.use_lisa else "off",
        )  # fmt: skip

    train_sampler = IIDSampler(len(train), cfg.micro_batch_size, n_micro_global, cfg.seed, stream=1)
    val_sampler = IIDSampler(len(val), cfg.micro_batch_size, n_micro_global, cfg.seed, stream=2)
    pad = tok.pad_token_id
    bar = None
    if cfg.progress and dist.is_main:
        from tqdm.auto import tqdm

        bar = tqdm(total=total, initial=start, desc="scalebio", unit="step", dynamic_ncols=True)
    with open(metrics_path, "a") if dist.is_main else open("/dev/null", "w") as metrics_file:
        for step in range(start, total):
            t0 = time.time()
            outer = step // inner
            mm.alpha = cfg.alpha * cfg.tau ** (outer + 1)  # α ← α·τ at the start of each outer iteration
            factor = cosine_with_warmup(step, total, warmup) * cfg.tau ** (-outer)
            lr_u, lr_w, lr_theta = set_learning_rates((opt_u, opt_w, opt_theta), factor)
            if lisa_u is not None:
                lisa_u.maybe_switch(step)
                lisa_w.maybe_switch(step)
            tb = [_to(collate([train[i] for i in ix], pad), device) for ix in train_sampler.indices(step, rank, world)]
            vb = [_to(collate([val[i] for i in ix], pad), device) for ix in val_sampler.indices(step, rank, world)]
            stats = mm.step(tb, vb, step)
            n_tok = sum(int(b["attention_mask"].sum()) for b in tb) * 2 + sum(
                int(b["attention_mask"].sum()) for b in vb
            )
            n_tok = int(dist.all_reduce_sum(torch.tensor(n_tok)))
            tokens_total += n_tok
            row = {
                "step": step + 1,
                "weights": weights.as_dict(),
                **stats,
                "alpha": mm.alpha,
                "lr_u": lr_u,
                "lr_w": lr_w,
                "lr_theta": lr_theta,
                "tokens": n_tok,
                "tokens_per_s": n_tok / max(time.time() - t0, 1e-9),
            }
            if lisa_u is not None:
                row["lisa_u"], row["lisa_w"] = lisa_u.active, lisa_w.active
            if dist.is_main:
                metrics_file.write(json.dumps(row) + "\n")
                metrics_file.flush()
                if (step + 1) % 10 == 0 or step + 1 == total:
                    log.info(
                        "step %d/%d L1(w)=%.4f L2(w)=%.4f L2(u)=%.4f gap=%.2e p=%s",
                        step + 1, total, stats["L1(w)"], stats["L2(w)"], stats["L2(u)"], stats["gap"],
                        {k: round(v, 4) for k, v in row["weights"].items()},
                    )  # fmt: skip
            if bar is not None:
                bar.update(1)
                bar.set_postfix(L1=f"{stats['L1(w)']:.3f}", gap=f"{stats['gap']:.1e}")
            if cfg.checkpoint_every and (step + 1) % cfg.checkpoint_every == 0 and step + 1 < total:
                save_checkpoint(run_dir, step + 1, mm, dist, cfg_hash, tokens_total)
    if bar is not None:
        bar.close()

    if cfg.save_model_w:
        state = _model_state(mm.w, dist)
        if dist.is_main:
            with atomic_dir(run_dir / "model_w") as tmp:
                base = load_model(model_path, cfg.dtype, "cpu")
                base.load_state_dict(state)
                base.save_pretrained(tmp)
                tok.save_pretrained(tmp)
    if dist.is_main and not cfg.keep_checkpoints:
        shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)
    result = RunResult(weights.as_dict(), weights.theta_dict(), total, tokens_total, time.time() - t_start)
    if dist.is_main:
        log.info("final weights %s", result.weights)
    dist.barrier()
    return result
