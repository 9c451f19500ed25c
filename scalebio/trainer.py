"""The ScaleBiO run: set-up (data, sampling, schedule, models, optimizers, LISA, resume), the step, the callbacks.

    python -m scalebio reweight --config my.yaml max_steps=50            # one process
    torchrun --nproc_per_node 2 -m scalebio reweight --config my.yaml     # DDP (or distributed=fsdp)

Run folder: ``config.json`` (resolved), ``log.txt``, ``metrics.jsonl`` (one line per step),
``checkpoints/step-<k>/`` (latest only; a restarted run resumes from it), ``model_w/`` if asked.
Batches are i.i.d. uniform draws from the concatenation of the sources (v2 semantics, METHOD.md §14
#8), generated from (seed, step) so a resumed run and every process see the same global batch; validation
batches are i.i.d. too or, with ``val_sampling: cycle``, slices of shuffled passes (the official loader, §8).
The update itself is ``minimax.py``; what follows each step (metrics file, log line, clip warning, progress bar,
checkpoint) is ``callbacks.py``; the resumable state is ``checkpoint.py``.
"""

from __future__ import annotations

import itertools
import logging
import math
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import torch
from torch import nn

from scalebio import distributed
from scalebio.callbacks import default_callbacks
from scalebio.checkpoint import latest_checkpoint, load_checkpoint, truncate_metrics
from scalebio.common.config import RECORD_WHEN_SET, as_dict
from scalebio.common.data import collate, load_sources, load_split, read_jsonl
from scalebio.common.lisa import LISA, LisaConfig
from scalebio.common.modeling import check_tokenizer_matches, load_model, load_tokenizer
from scalebio.common.preemption import PreemptionFlag
from scalebio.common.runtime import (
    ConfigError,
    atomic_dir,
    atomic_write_json,
    config_hash,
    local_rank,
    seed_everything,
    setup_logging,
)
from scalebio.loading import build_empty, materialise
from scalebio.minimax import Minimax, cosine_with_warmup, set_learning_rates
from scalebio.objectives import Objectives, ObjectivesConfig, group_by_target
from scalebio.sampling import CycleSampler, IIDSampler
from scalebio.weights import SourceWeights, WeightAverage, movement_summary

log = logging.getLogger(__name__)
OFFICIAL_LR_THETA = 1e-2  # run_scalebio.sh --lambda_lr (METHOD.md §9)


@dataclass
class ScaleBiOConfig:
    """ScaleBiO options. Defaults = the official v2 math script (``run_scalebio.sh``, METHOD.md §9)."""

    lr_u: float = 1e-5
    """Initial learning rate of u (official: 1e-5; 2e-6 with LISA)."""
    lr_w: float = 1e-5
    """Initial learning rate of w (official: 1e-5; 2e-6 with LISA)."""
    lr_theta: float | None = None
    """Initial learning rate of θ, the source-weight logits (official: 1e-2, used when neither this nor
    ``theta_movement`` is set). The sensitive knob: each logit moves at most ~lr_theta per step."""
    theta_movement: float | None = None
    """The movement budget Σ_t η_θ(t) (METHOD.md §17): lr_theta is set so that θ's learning rates sum to this over
    the run's schedule. A logit moves at most about this far, so it bounds how far p can leave uniform, whatever
    the step count (official math run: 1e-2 over 234 steps of 3 % warm-up + cosine ≈ 1.17). Not together with
    ``lr_theta``."""
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
    """Examples per forward pass (official: 1); validation micro-batches have the same size (METHOD.md §14 #9)."""
    max_length: int = 1024
    """Truncation length in tokens (official: 1024)."""
    loss_span: Literal["response", "assistant_turn"] = "response"
    """Tokens that carry the loss in L2 and L1 (METHOD.md §3.4): ``response`` = the reply and its end-of-turn marker; ``assistant_turn`` = the whole assistant turn, role header included, as the official code (the paper configs). Matters for short responses: the span sets the gradient norm and so how often clipping is active."""
    val_sampling: Literal["iid", "cycle"] = "iid"
    """Validation micro-batches (METHOD.md §8): ``iid`` = fresh uniform draws every micro-step, as the training batches; ``cycle`` = consecutive slices of shuffled passes over the validation set (every example once per pass), as the official validation loader."""
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
    objectives: ObjectivesConfig | None = None
    """Beyond the paper (scalebio/objectives.py): several validation targets. The validation rows are grouped by
    their ``target`` field (the multilingual builder writes it for ``target: [a, b]``) into V_1..V_J, and
    L1 = Σ_j c_j L1_{V_j}, c fixed (``rule: weighted``) or the softmax of the losses (``worst_case``); keys as in
    the ``objectives`` table. None: one pooled validation set (the paper)."""
    lisa: LisaConfig = field(default_factory=LisaConfig)
    """Randomized block-coordinate updates of u and w (METHOD.md §7): ``{n_layers: 4, interval: 20}`` is the official
    LISA script; n_layers 0 (default, the official math script) trains every block."""
    stabilize: Literal["none", "polyak", "ema"] = "none"
    """Beyond the paper (METHOD.md §18): the weights written to ``selection.json``. ``none`` = the last step's p (official); ``polyak`` = the mean of p over the last (1 − stabilize_start) of the steps; ``ema`` = an exponential moving average of p (``stabilize_decay``). A read-out only: the run is unchanged, and the last p stays in ``metrics.jsonl`` (``weights``), the log and ``selection.json`` (``raw_weights``)."""
    stabilize_start: float = 0.5
    """``polyak``: fraction of the steps after which p is averaged (0.5 = the mean over the last half)."""
    stabilize_decay: float = 0.9
    """``ema``: weight of the past per step (0.9 ≈ a window of the last 10 steps)."""
    seed: int = 0
    """Seed of model init RNG, batch sampling and LISA draws (official: 0)."""
    dtype: Literal["float32", "bfloat16"] = "float32"
    """Parameter dtype of u and w (official: bfloat16 without fp32 master weights; float32 is the CPU default, METHOD.md §14 #10). θ is always fp32."""
    gradient_checkpointing: bool = False
    """Recompute activations in backward (less memory, ~30% more time)."""
    device: str = "auto"
    """auto (CUDA if available), cpu, or cuda."""
    distributed: Literal["ddp", "fsdp"] = "ddp"
    """Strategy under torchrun/accelerate: ddp (full copies, averaged gradients) or fsdp (FSDP2 ``fully_shard`` per decoder block: parameters, gradients and optimizer state sharded, every parameter its own DTensor)."""
    checkpoint_every: int = 50
    """Save a resumable checkpoint every N steps (latest kept); 0 = never. A SIGTERM (SLURM before its time limit)
    also saves one, after the current step, and stops the run (the rerun continues)."""
    collective_timeout_min: float = field(default=30.0, metadata=RECORD_WHEN_SET)
    """Minutes a collective (all-reduce, the shards' all-gather, a checkpoint's barrier) may wait for the slowest
    process before the run fails (torch's NCCL default is 10): long enough for a sharded save of a large model."""
    resume: bool = True
    """Resume from the run folder's latest checkpoint if one exists (it must come from the same config)."""
    keep_checkpoints: bool = False
    """Keep the latest checkpoint after a successful run (default: delete it; checkpoints exist to resume a killed run and hold two models plus their optimizer states)."""
    save_model_w: bool = False
    """Also save the final w (a by-product; the paper re-trains from the base model with the weights)."""
    progress: bool = True
    """Show a tqdm progress bar with ETA."""

    def validate(self) -> None:
        for name in ("lr_u", "lr_w", "lr_theta", "theta_movement", "alpha", "tau", "max_grad_norm"):
            value = getattr(self, name)
            if value is not None and not (math.isfinite(value) and value > 0):  # NaN and inf fail too
                raise ConfigError(f"option '{name}' must be a finite number > 0, got {value}")
        if self.lr_theta is not None and self.theta_movement is not None:
            raise ConfigError(
                f"options 'lr_theta' ({self.lr_theta}) and 'theta_movement' ({self.theta_movement}) both set θ's "
                "learning rate; set one of them"
            )
        for name in ("num_outer_iter", "epochs", "global_batch_size", "micro_batch_size", "max_length"):
            if getattr(self, name) < 1:
                raise ConfigError(f"option '{name}' must be >= 1, got {getattr(self, name)}")
        if self.max_steps < 0 or self.checkpoint_every < 0 or self.collective_timeout_min <= 0:
            raise ConfigError("options 'max_steps' and 'checkpoint_every' must be >= 0, 'collective_timeout_min' > 0")
        if self.global_batch_size % self.micro_batch_size:
            raise ConfigError(
                f"global_batch_size={self.global_batch_size} is not a multiple of micro_batch_size={self.micro_batch_size}"
            )
        if not 0 <= self.warmup_ratio < 1:
            raise ConfigError(f"option 'warmup_ratio' must be in [0, 1), got {self.warmup_ratio}")
        if not (0 <= self.stabilize_start < 1 and 0 <= self.stabilize_decay < 1):
            raise ConfigError("options 'stabilize_start' and 'stabilize_decay' must be in [0, 1)")
        if self.seed < 0:
            raise ConfigError(f"option 'seed' must be >= 0, got {self.seed}")
        if self.device not in ("auto", "cpu", "cuda"):
            raise ConfigError(f"option 'device' must be auto, cpu or cuda, got '{self.device}'")

    # ---- what the config builds --------------------------------------------------------------------
    def theta_learning_rate(self, schedule_sum: float) -> float:
        """η_θ's initial value: ``lr_theta``, or ``theta_movement`` spread over the schedule (Σ of its factors)."""
        if self.theta_movement is not None:
            return self.theta_movement / schedule_sum
        return OFFICIAL_LR_THETA if self.lr_theta is None else self.lr_theta

    def build_optimizers(
        self, u: nn.Module, w: nn.Module, weights: SourceWeights, fused: bool | None = None, lr_theta: float = None
    ):
        """The three AdamW optimizers of METHOD.md §6 (θ: torch defaults, betas (0.9, 0.999), eps 1e-8).

        Every parameter is registered, frozen or not: AdamW skips parameters whose ``grad`` is None, which is
        how LISA freezes blocks without momentum or weight-decay drift. ``fused=True`` (CUDA) avoids the
        foreach implementation's parameter-sized temporaries (matters for 8B on one GPU).
        """
        wd = self.weight_decay
        opt_u = torch.optim.AdamW(u.parameters(), lr=self.lr_u, weight_decay=wd, maximize=True, fused=fused)
        opt_w = torch.optim.AdamW(w.parameters(), lr=self.lr_w, weight_decay=wd, fused=fused)
        lr_theta = self.theta_learning_rate(1.0) if lr_theta is None else lr_theta
        opt_theta = torch.optim.AdamW([weights.theta], lr=lr_theta, weight_decay=self.theta_weight_decay)
        for opt in (opt_u, opt_w, opt_theta):
            for g in opt.param_groups:
                g["base_lr"] = g["lr"]  # the schedule multiplies this (§6: same shape, own initial value)
        return opt_u, opt_w, opt_theta

    def device_for_run(self) -> torch.device:
        if self.device == "cpu" or (self.device == "auto" and not torch.cuda.is_available()):
            return torch.device("cpu")
        if not torch.cuda.is_available():
            raise ConfigError("option device=cuda but CUDA is not available; use device=cpu")
        return torch.device("cuda", local_rank())


@dataclass
class RunResult:
    weights: dict[str, float]
    theta: dict[str, float]
    steps: int
    tokens: int
    wall_time_s: float
    dropped: dict[str, int] = field(default_factory=dict)
    """Examples per source left out because truncation left them no response token."""
    clip_fraction: dict[str, float] = field(default_factory=dict)
    """Fraction of steps in which ‖∇u‖ (``u``) and ‖∇w‖ (``w``) were clipped."""
    raw_weights: dict[str, float] = field(default_factory=dict)
    """The last step's p (the official read-out); ``weights`` differs from it only when ``stabilize`` is on."""
    movement: dict = field(default_factory=dict)
    """Σ η_θ, the final largest log-ratio and the change of p over the last 10 % of steps
    (``scalebio.weights.movement_summary``; main process only)."""


def _to(batch: dict, device: torch.device) -> dict:
    return {k: v.to(device) for k, v in batch.items()}


# ---- the run (a torchtune-style recipe: set-up, resume, then step and callbacks) ------------------------
class ScaleBiORecipe:
    """One ScaleBiO run: ``setup()`` builds data, models and optimizers and resumes; ``train()`` loops over steps."""

    def __init__(self, cfg: ScaleBiOConfig, sources: dict[str, str], validation: str, model_path: str, run_dir):
        self.cfg, self.sources, self.validation, self.model_path = cfg, sources, validation, str(model_path)
        self.run_dir = Path(run_dir)
        self.t_start = time.time()
        self.device = cfg.device_for_run()
        self.dist = distributed.init(cfg.distributed, self.device, cfg.collective_timeout_min)
        self.cfg_hash = config_hash(
            {"config": as_dict(cfg), "sources": sources, "world": self.dist.world_size, "model": self.model_path}
        )
        self.start = self.tokens_total = 0
        self.clipped = {"u": 0, "w": 0}  # steps whose gradient norm was clipped, per model

    # ---- set-up ----------------------------------------------------------------------------------
    def setup(self) -> None:
        cfg, dist = self.cfg, self.dist
        if dist.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            setup_logging(self.run_dir)
            atomic_write_json(self.run_dir / "config.json", as_dict(cfg))
        seed_everything(cfg.seed)
        self._setup_data()
        self._setup_models()
        self._resume()

    def _setup_data(self) -> None:
        cfg, world = self.cfg, self.dist.world_size
        self.n_micro_global = cfg.global_batch_size // cfg.micro_batch_size
        if self.n_micro_global % world:
            raise ConfigError(
                f"global_batch_size / micro_batch_size = {self.n_micro_global} micro-batches cannot be split over "
                f"{world} processes"
            )
        # Sources sorted by name (§14 #3); every example carries its source index.
        self.tok = load_tokenizer(self.model_path)
        srcs = load_sources(self.sources, self.tok, cfg.max_length, cfg.loss_span)
        self.names = [s.name for s in srcs]
        self.dropped = {s.name: s.dropped for s in srcs if s.dropped}  # truncated to no response token
        self.train_set = [dict(ex, source=k) for k, s in enumerate(srcs) for ex in s.examples]
        val = load_split(self.validation, self.tok, cfg.max_length, loss_span=cfg.loss_span)
        val = [dict(ex, source=0) for ex in val]
        self.val_sets = group_by_target(val, self.validation) if cfg.objectives else {"validation": val}
        smallest = min(len(rows) for rows in self.val_sets.values())
        if cfg.micro_batch_size > min(len(self.train_set), smallest):
            raise ConfigError(
                f"micro_batch_size={cfg.micro_batch_size} exceeds the pool ({len(self.train_set)}) or validation "
                f"set ({smallest})"
            )
        n = len(self.train_set)
        self.inner = cfg.max_steps // cfg.num_outer_iter if cfg.max_steps else (n // cfg.global_batch_size) * cfg.epochs
        if self.inner < 1:
            raise ConfigError(
                f"the pool has {n} examples, fewer than global_batch_size={cfg.global_batch_size} "
                f"× num_outer_iter={cfg.num_outer_iter}; lower global_batch_size or set max_steps"
            )
        self.total = self.inner * cfg.num_outer_iter
        self.warmup = int(cfg.warmup_ratio * self.total)
        # Every step's learning-rate factor (cosine with warm-up, × τ^(−i) in outer iteration i), known up front
        # so that theta_movement can set η_θ and the metrics can log Σ η_θ so far.
        self.lr_factors = [
            cosine_with_warmup(t, self.total, self.warmup) * cfg.tau ** (-(t // self.inner)) for t in range(self.total)
        ]
        self.lr_factor_sums = list(itertools.accumulate(self.lr_factors))
        self.lr_theta = cfg.theta_learning_rate(self.lr_factor_sums[-1])
        self.train_sampler = IIDSampler(n, cfg.micro_batch_size, self.n_micro_global, cfg.seed, stream=1)
        val_sampler = CycleSampler if cfg.val_sampling == "cycle" else IIDSampler
        # Every validation set draws a full micro-batch per micro-step from its own stream (the first: stream 2,
        # as with one set).
        self.val_samplers = {
            name: val_sampler(len(rows), cfg.micro_batch_size, self.n_micro_global, cfg.seed, stream=2 + 100 * j)
            for j, (name, rows) in enumerate(self.val_sets.items())
        }

    def _setup_models(self) -> None:
        """u and w: two independent copies of the pretrained model; θ = 0; the three optimizers; LISA."""
        cfg, dist, device = self.cfg, self.dist, self.device
        sharded = dist.strategy == "fsdp" and dist.enabled
        # FSDP: both copies built on the meta device and filled shard by shard after wrapping (loading.py), so no
        # rank ever holds a whole copy; one process / DDP: each process holds both copies anyway.
        if sharded:
            u, w = (build_empty(self.model_path, cfg.dtype, cfg.gradient_checkpointing) for _ in range(2))
        else:
            u, w = (load_model(self.model_path, cfg.dtype, device, cfg.gradient_checkpointing) for _ in range(2))
        check_tokenizer_matches(u, self.tok, where=f"model '{self.model_path}': ")
        u.train()
        w.train()
        weights = SourceWeights(self.names).to(device)
        self.average = WeightAverage(
            cfg.stabilize, self.total, cfg.stabilize_start, cfg.stabilize_decay, weights.probs()
        )
        self.lisa = []
        if cfg.lisa.enabled:  # blocks are found before FSDP wraps them
            w_stream = "u" if cfg.lisa.same_blocks else "w"  # the same stream draws the same blocks
            self.lisa = [LISA(u, None, cfg.lisa, cfg.seed, "u"), LISA(w, None, cfg.lisa, cfg.seed, w_stream)]
        if sharded:
            u, w = distributed.wrap_fsdp(u, device), distributed.wrap_fsdp(w, device)
            stats = [materialise(m, self.model_path, device) for m in (u, w)]
            if dist.is_main:
                log.info("FSDP load: rank 0 holds %.3g GB of the models' %.3g GB (built on meta, filled shard by shard)",
                         sum(s.local for s in stats) / 1e9, sum(s.full for s in stats) / 1e9)  # fmt: skip
        opts = cfg.build_optimizers(u, w, weights, lr_theta=self.lr_theta)
        for lisa, opt in zip(self.lisa, opts):
            lisa.optimizer = opt
        clip = cfg.max_grad_norm if cfg.clip_model else None
        objectives = Objectives(cfg.objectives, list(self.val_sets)) if cfg.objectives else None
        self.mm = Minimax(u, w, weights, *opts, alpha=cfg.alpha, max_grad_norm=clip, dist=dist, objectives=objectives)

    def _resume(self) -> None:
        ckpt = latest_checkpoint(self.run_dir) if self.cfg.resume else None
        if ckpt is not None:
            self.start, self.tokens_total, clipped, average = load_checkpoint(ckpt, self.mm, self.dist, self.cfg_hash)
            self.clipped.update(clipped)
            if average is not None:
                self.average.load_state_dict(average)
            log.info("resumed from %s (step %d)", ckpt, self.start)
        elif self.dist.is_main and (self.run_dir / "checkpoints").exists():
            shutil.rmtree(self.run_dir / "checkpoints")
        if self.dist.is_main:
            truncate_metrics(self.run_dir / "metrics.jsonl", self.start)
            lisa = f"{self.cfg.lisa.n_layers} blocks / {self.cfg.lisa.interval} steps" if self.lisa else "off"
            log.info(
                "ScaleBiO: %d sources %s, %d train / %d val examples, %d steps (%d warm-up), %d process(es), "
                "%d micro-steps per process of %d, LISA %s",
                len(self.names), self.names, len(self.train_set), sum(map(len, self.val_sets.values())), self.total,
                self.warmup,
                self.dist.world_size, self.n_micro_global // self.dist.world_size, self.cfg.micro_batch_size, lisa,
            )  # fmt: skip

    # ---- the loop --------------------------------------------------------------------------------
    def _batches(self, step: int) -> tuple[list[dict], list[dict]]:
        rank, world, pad = self.dist.rank, self.dist.world_size, self.tok.pad_token_id

        def load(data, sampler):
            return [_to(collate([data[i] for i in ix], pad), self.device) for ix in sampler.indices(step, rank, world)]

        val = {name: load(rows, self.val_samplers[name]) for name, rows in self.val_sets.items()}
        return load(self.train_set, self.train_sampler), (val if self.cfg.objectives else val["validation"])

    def train(self) -> RunResult:
        """Run the remaining steps, each step's metrics row handed to the callbacks in order; returns the learned
        weights (the caller writes selection.json)."""
        with PreemptionFlag() as preemption:  # SIGTERM: checkpoint after the step, then Preempted (callbacks.py)
            callbacks = default_callbacks(self.dist.is_main, self.cfg.progress, self.cfg.checkpoint_every, preemption)
            try:
                for cb in callbacks:
                    cb.pre_train(self)
                for step in range(self.start, self.total):
                    row = self._step(step)
                    for cb in callbacks:
                        cb.post_step(self, step, row)
            finally:
                for cb in callbacks:
                    cb.close()
        return self._finish()

    def _step(self, step: int) -> dict:
        """One step: α and the learning rates of its place in the schedule, LISA's blocks, the batches, the update
        (``Minimax.step``); returns its metrics row."""
        cfg, mm = self.cfg, self.mm
        t0 = time.time()
        outer = step // self.inner
        mm.alpha = cfg.alpha * cfg.tau ** (outer + 1)  # α ← α·τ at the start of each outer iteration
        lrs = set_learning_rates((mm.opt_u, mm.opt_w, mm.opt_theta), self.lr_factors[step])
        for lisa in self.lisa:
            lisa.maybe_switch(step)
        train_batches, val_batches = self._batches(step)
        stats = mm.step(train_batches, val_batches, step)
        return self._metrics(step, stats, lrs, train_batches, val_batches, time.time() - t0)

    def _metrics(self, step, stats, lrs, train_batches, val_batches, seconds) -> dict:
        """The step's row of ``metrics.jsonl``; also counts the run's tokens and clipped steps and feeds the average
        of p (``stabilize``), on every process (the token count is all-reduced)."""
        # Tokens processed: u and w each see the training batch, w also the validation batch.
        n_tok = sum(int(b["attention_mask"].sum()) for b in train_batches) * 2
        val_batches = [b for bs in val_batches.values() for b in bs] if isinstance(val_batches, dict) else val_batches
        n_tok += sum(int(b["attention_mask"].sum()) for b in val_batches)
        n_tok = int(self.dist.all_reduce_sum(torch.tensor(n_tok)))
        self.tokens_total += n_tok
        for name in ("u", "w"):
            self.clipped[name] += bool(stats[f"clipped_{name}"])
        clip_frac = self.clip_fraction(step + 1)
        self.average.update(step + 1, self.mm.weights.probs())
        row = {
            "step": step + 1,
            "weights": self.mm.weights.as_dict(),  # the raw p; with stabilize on, its average follows
            **stats,
            "clip_frac_u": clip_frac["u"],
            "clip_frac_w": clip_frac["w"],
            "alpha": self.mm.alpha,
            "lr_u": lrs[0],
            "lr_w": lrs[1],
            "lr_theta": lrs[2],
            "sum_lr_theta": self.lr_theta * self.lr_factor_sums[step],  # the movement budget spent so far
            "tokens": n_tok,
            "tokens_per_s": n_tok / max(seconds, 1e-9),
        }
        if (average := self.average.value()) is not None:  # stabilize on (polyak: once its window has begun)
            row["weights_stabilized"] = dict(zip(self.names, average.tolist()))
        if self.lisa:
            row["lisa_u"], row["lisa_w"] = self.lisa[0].active, self.lisa[1].active
        return row

    def clip_fraction(self, steps: int) -> dict[str, float]:
        return {name: n / max(steps, 1) for name, n in self.clipped.items()}

    def _finish(self) -> RunResult:
        cfg, dist, mm = self.cfg, self.dist, self.mm
        if cfg.save_model_w:
            state = dist.full_model_state(mm.w)
            if dist.is_main:
                with atomic_dir(self.run_dir / "model_w") as tmp:
                    base = load_model(self.model_path, cfg.dtype, "cpu")
                    base.load_state_dict(state)
                    base.save_pretrained(tmp)
                    self.tok.save_pretrained(tmp)
        if dist.is_main and not cfg.keep_checkpoints:
            shutil.rmtree(self.run_dir / "checkpoints", ignore_errors=True)
        weights, average = mm.weights, self.average.value()  # average: None unless stabilize is on
        raw = weights.as_dict()
        result = RunResult(
            raw if average is None else dict(zip(weights.names, average.tolist())),
            weights.theta_dict(),
            self.total,
            self.tokens_total,
            time.time() - self.t_start,
            self.dropped,
            self.clip_fraction(self.total),
            raw,
        )
        if dist.is_main:
            rows = read_jsonl(self.run_dir / "metrics.jsonl", add_ids=False)  # every step, resumed runs included
            result.movement = movement_summary(
                [[r["weights"][n] for n in weights.names] for r in rows], [r["lr_theta"] for r in rows], self.warmup
            )
            result.movement["lr_theta"] = self.lr_theta
            if average is not None:
                log.info("last step's p %s; stabilize=%s hands on its average", raw, cfg.stabilize)
            log.info("final weights %s", result.weights)
            log.info(
                "movement: Σ η_θ = %.3f (lr_theta %.4g), largest log-ratio %.3f, Δp over the last %d steps %.4f "
                "(Σ η_θ there %.3f); clipped u/w in %.0f%%/%.0f%% of steps",
                result.movement["sum_lr_theta"], self.lr_theta, result.movement["max_log_ratio"],
                result.movement["final_window_steps"], result.movement["final_window_dp"],
                result.movement["final_window_sum_lr_theta"], 100 * result.clip_fraction["u"],
                100 * result.clip_fraction["w"],
            )  # fmt: skip
        dist.barrier()
        return result


def run(cfg: ScaleBiOConfig, sources: dict[str, str], validation: str, model_path: str, run_dir) -> RunResult:
    """Learn per-source weights; returns them (the caller writes selection.json)."""
    recipe = ScaleBiORecipe(cfg, sources, validation, model_path, run_dir)
    recipe.setup()
    return recipe.train()
