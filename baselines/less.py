"""Influence-based filtering, LESS-style (Xia et al., ICML 2024) -> ``kind: examples``.

1. Warm-up: LoRA (``peft``) training of the base model on a random ``warmup_fraction`` of the pool
   for ``warmup.epochs`` epochs (``scalebio.common.training.train_sft``); after every epoch the LoRA
   weights and AdamW's moments (m, v) are saved to ``checkpoints/epoch-<k>.pt``.
2. Features at each checkpoint, from per-example LoRA gradients computed in batches with
   ``torch.func`` (``vmap(grad(functional_call))``):
   - training examples: the gradient g is plugged into Adam's moment update as in LESS,
     m' = β1·m + (1-β1)·g, v' = β2·v + (1-β2)·g², and the feature is the update direction
     m' / (√v' + ε) (LESS's code writes √(v' + ε); the difference only matters where v' ≈ 0);
   - validation examples: the plain gradient g.
   Both are randomly projected (seeded Rademacher or Gaussian matrix, ``projection_dim`` columns;
   8192 in the paper; or ``countsketch``, the matrix-free projection for 8B models) and L2-normalised.
3. Score: cosine similarity to each validation example, averaged within a validation subtask
   (the ``topic`` prefix before "/", one task if absent), then the max (or mean) over subtasks;
   summed over checkpoints weighted by that epoch's average learning rate. Top N are selected.

    python -m baselines select --method less --data results/denoise/data \
        --model resources/models/tiny --out results/demo/less --budget 64 \
        --options '{"warmup_fraction": 0.25, "warmup": {"learning_rate": 3e-3, "global_batch_size": 8,
                    "max_length": 128}, "lora_r": 8, "lora_alpha": 16, "projection_dim": 256}'
"""

from __future__ import annotations

import random
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from torch.func import functional_call, grad, vmap
from tqdm.auto import tqdm

from baselines._common import as_examples, batches, n_tokens, open_run, source_counts, tie_keys, top_n, train
from scalebio.common.data import collate
from scalebio.common.modeling import (
    IGNORE_INDEX,
    check_tokenizer_matches,
    decoder_layers,
    load_model,
)
from scalebio.common.registry import MethodInfo
from scalebio.common.runtime import ConfigError
from scalebio.common.selection import MethodInputs
from scalebio.common.streams import seeded_generator
from scalebio.common.training import SFTConfig

INFO = MethodInfo(
    name="less", display="LESS", role="baseline", order=20, in_paper=True, trains=True, colour="#ff7f0e",
    memory="lora_features",
)  # fmt: skip


def _warmup_default() -> SFTConfig:
    """LESS's warm-up: linear decay after 3 % warm-up, 4 epochs (one checkpoint per epoch)."""
    return SFTConfig(learning_rate=2e-5, epochs=4.0, lr_scheduler="linear", warmup_ratio=0.03)


@dataclass
class Options:
    """Options of LESS (``methods.less``); defaults follow the LESS paper where it states them."""

    warmup: SFTConfig = field(default_factory=_warmup_default)
    """The LoRA warm-up training (``SFTConfig``; a whole number of ``epochs``, one checkpoint each). Its
    ``max_length`` and ``dtype`` also apply to the gradient features."""
    warmup_fraction: float = 0.05
    """Fraction of the pool (random, seeded) used for the warm-up LoRA training."""
    lora_r: int = 128
    """LoRA rank."""
    lora_alpha: int = 512
    """LoRA scaling numerator (scale = alpha / r)."""
    lora_dropout: float = 0.1
    """LoRA dropout during the warm-up (off when gradients are taken)."""
    lora_target_modules: list[str] = field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"])
    """Module names that get LoRA adapters (peft ``target_modules``; "all-linear" as the single entry works)."""
    lora_last_layers: int = 0
    """Adapters only in the last this many decoder layers (0: all; LESS uses all). Fewer layers make the
    per-example backward pass stop early, the main cost on CPU."""
    projection_dim: int = 8192
    """Random-projection dimension of the gradient features."""
    projection: Literal["rademacher", "gaussian", "countsketch"] = "rademacher"
    """Entries of the projection matrix; ``countsketch``: no matrix at all, each gradient coordinate is added with a
    random sign into one of ``projection_dim`` buckets (a sparse Johnson-Lindenstrauss projection, ``CountSketch``),
    generated block by block on the gradients' device from the seed: O(D) per example instead of O(D·k), the choice
    at 8B (D ≈ 1.1e8 LoRA gradients: a dense D × 8192 matrix is 3.25 TiB)."""
    projection_block: int = 16384
    """Rows of the projection matrix generated at once (each block has its own seed); ``countsketch``: coordinates
    per block (use ~1,048,576 on a GPU)."""
    projection_cache_mb: int = 1024
    """Keep the generated matrix in memory if it fits in this many MB, else regenerate per batch."""
    subtask_reduce: Literal["max", "mean"] = "max"
    """How per-subtask mean cosines are combined: max (LESS) or mean."""
    grad_batch_size: int = 16
    """Examples per vmapped per-example-gradient call."""
    gradient_mode: Literal["vmap", "loop"] = "vmap"
    """vmap: batched per-example gradients (torch.func); loop: one backward per unpadded example
    (same result; measured 0.85-3x the speed of vmap on CPU depending on model and load, see README)."""
    adam_betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    """Adam betas used for the warm-up and the feature transform."""
    adam_eps: float = 1e-8
    """Adam epsilon used for the warm-up and the feature transform."""

    def validate(self) -> None:
        p = "methods.less."
        if not 0 < self.warmup_fraction <= 1:
            raise ConfigError(f"{p}warmup_fraction must be in (0, 1], got {self.warmup_fraction}")
        if self.warmup.max_steps > 0 or self.warmup.epochs != int(self.warmup.epochs) or self.warmup.epochs < 1:
            raise ConfigError(f"{p}warmup: LESS checkpoints once per epoch; set a whole number of epochs, no max_steps")
        if self.lora_last_layers < 0:
            raise ConfigError(f"{p}lora_last_layers must be >= 0, got {self.lora_last_layers}")
        for name in ("lora_r", "lora_alpha", "projection_dim", "grad_batch_size", "projection_block"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{p}{name} must be >= 1, got {getattr(self, name)}")
        if self.adam_eps <= 0:
            raise ConfigError(f"{p}adam_eps must be positive")
        if len(self.adam_betas) != 2 or not all(0 <= b < 1 for b in self.adam_betas):
            raise ConfigError(f"{p}adam_betas must be two numbers in [0, 1), got {self.adam_betas}")
        if not self.lora_target_modules:
            raise ConfigError(f"{p}lora_target_modules must name at least one module")


class Projector:
    """A seeded D x k random matrix, built block by block so it never has to exist at once."""

    def __init__(self, dim: int, k: int, seed: int, kind: str = "rademacher", block: int = 16384, cache_mb: int = 1024):
        self.dim, self.k, self.seed, self.kind, self.block = dim, k, seed, kind, block
        self.cache: list[torch.Tensor] | None = [] if dim * k * 4 <= cache_mb * 2**20 else None

    def _block(self, b: int, device) -> torch.Tensor:
        if self.cache is not None and b < len(self.cache):
            return self.cache[b]
        rows = min(self.block, self.dim - b * self.block)
        gen = seeded_generator(self.seed, b)
        if self.kind == "rademacher":
            m = torch.randint(0, 2, (rows, self.k), generator=gen).float().mul_(2).sub_(1)
        else:
            m = torch.randn(rows, self.k, generator=gen)
        m = m.div_(self.k**0.5).to(device)
        if self.cache is not None and b == len(self.cache):
            self.cache.append(m)
        return m

    def __call__(self, g: torch.Tensor) -> torch.Tensor:
        """Project rows of ``g`` ([B, D]) to [B, k]."""
        out = torch.zeros(g.shape[0], self.k, device=g.device)
        for b, start in enumerate(range(0, self.dim, self.block)):
            out += g[:, start : start + self.block] @ self._block(b, g.device)
        return out

    def matrix(self) -> torch.Tensor:
        return torch.cat([self._block(b, "cpu").cpu() for b in range(-(-self.dim // self.block))])


class CountSketch:
    """A D → k projection without a matrix: coordinate i goes, times a random sign, into bucket h(i) (CountSketch,
    Charikar et al. 2002; E⟨Sx, Sy⟩ = ⟨x, y⟩). Buckets and signs of each block of ``block`` coordinates are drawn on
    the gradients' device from (seed, block): O(D) time per example and ``block`` numbers of memory."""

    def __init__(self, dim: int, k: int, seed: int, block: int = 16384):
        self.dim, self.k, self.seed, self.block = dim, k, seed, block

    def __call__(self, g: torch.Tensor) -> torch.Tensor:
        """Project rows of ``g`` ([B, D]) to [B, k]."""
        out = torch.zeros(g.shape[0], self.k, device=g.device, dtype=torch.float32)
        for b, start in enumerate(range(0, self.dim, self.block)):
            rows = min(self.block, self.dim - start)
            gen = seeded_generator(self.seed, b, g.device)
            bucket = torch.randint(0, self.k, (rows,), generator=gen, device=g.device)
            sign = torch.randint(0, 2, (rows,), generator=gen, device=g.device).float().mul_(2).sub_(1)
            out.index_add_(1, bucket, g[:, start : start + rows].float() * sign)
        return out


def make_projector(dim: int, opts: Options, seed: int):
    """The projection ``opts.projection`` names (a dense seeded matrix built in blocks, or ``CountSketch``)."""
    if opts.projection == "countsketch":
        return CountSketch(dim, opts.projection_dim, seed, opts.projection_block)
    return Projector(dim, opts.projection_dim, seed, opts.projection, opts.projection_block, opts.projection_cache_mb)


def example_loss(model, params: dict, input_ids: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean response-token loss of ONE right-padded example under ``params`` (functional call).

    No attention mask is passed: with right padding and causal attention no real token attends
    to a pad, and pads carry label -100 (this keeps the call free of data-dependent masking, so
    ``vmap`` can batch it).
    """
    logits = functional_call(model, params, args=(), kwargs={"input_ids": input_ids[None]}).logits[0, :-1].float()
    target = labels[1:]
    mask = (target != IGNORE_INDEX).float()
    ce = F.cross_entropy(logits, target.clamp(min=0), reduction="none")
    return (ce * mask).sum() / mask.sum().clamp(min=1)


class GradientFeatures:
    """Per-example LoRA gradients (batched with torch.func), optionally Adam-transformed, projected."""

    def __init__(self, model, names: list[str], projector, pad_id: int, batch_size: int, mode: str = "vmap"):
        self.model, self.names, self.project, self.pad_id, self.batch_size = model, names, projector, pad_id, batch_size
        self.mode = mode
        self.per_example_grad = vmap(grad(lambda p, i, lab: example_loss(model, p, i, lab)), in_dims=(None, 0, 0))

    def flat_grads(self, chunk: list[dict]) -> torch.Tensor:
        self.model.eval()  # no LoRA dropout: features must be deterministic
        device = next(self.model.parameters()).device
        params = {n: p.detach() for n, p in self.model.named_parameters() if n in set(self.names)}
        if self.mode == "loop":
            live = {n: p.requires_grad_() for n, p in params.items()}
            rows = []
            for ex in chunk:
                ids, labels = (torch.tensor(ex[k], device=device) for k in ("input_ids", "labels"))
                grads = torch.autograd.grad(example_loss(self.model, live, ids, labels), list(live.values()))
                rows.append(torch.cat([g.reshape(-1).float() for g in grads]))
            return torch.stack(rows)
        batch = collate(chunk, self.pad_id)
        with warnings.catch_warnings():  # sdpa has no vmap rule on CPU; measured still faster than a loop
            warnings.simplefilter("ignore", UserWarning)
            grads = self.per_example_grad(params, batch["input_ids"].to(device), batch["labels"].to(device))
        return torch.cat([grads[n].reshape(len(chunk), -1).float() for n in self.names], dim=1)

    def __call__(self, examples: list[dict], adam: tuple | None, desc: str) -> torch.Tensor:
        """[N, k] unit-norm features; ``adam = (m, v, beta1, beta2, eps)`` for training examples."""
        self.model.eval()
        # Length-sorted batches waste little compute on padding; rows go back to input order.
        order = sorted(range(len(examples)), key=lambda i: len(examples[i]["input_ids"]))
        out = torch.empty(len(examples), self.project.k)
        for idx in tqdm(list(batches(order, self.batch_size)), desc=desc, unit="batch"):
            g = self.flat_grads([examples[i] for i in idx])
            if adam is not None:
                m, v, b1, b2, eps = adam
                g = (b1 * m + (1 - b1) * g) / ((b2 * v + (1 - b2) * g * g).sqrt() + eps)
            out[idx] = F.normalize(self.project(g), dim=1).cpu()
        return out


class CheckpointSaver:
    """Trainer callback: after each epoch save LoRA weights, Adam moments and the epoch's mean lr."""

    def __init__(self, folder: Path, names: list[str]):
        from transformers import TrainerCallback

        saver = self

        class _Callback(TrainerCallback):
            def on_pre_optimizer_step(self, args, state, control, optimizer=None, **kw):
                saver.lrs.append(optimizer.param_groups[0]["lr"])

            def on_epoch_end(self, args, state, control, model=None, optimizer=None, **kw):
                saver.save(model, optimizer)

        self.folder, self.names, self.lrs, self.paths, self.callback = folder, names, [], [], _Callback()
        folder.mkdir(parents=True, exist_ok=True)

    def save(self, model, optimizer) -> None:
        opt = getattr(optimizer, "optimizer", optimizer)  # accelerate wraps the torch optimizer
        by_name = dict(model.named_parameters())
        state = {"lora": {}, "exp_avg": {}, "exp_avg_sq": {}, "mean_lr": sum(self.lrs) / max(1, len(self.lrs))}
        for n in self.names:
            p = by_name[n]
            st = opt.state.get(p, {})
            state["lora"][n] = p.detach().cpu().clone()
            state["exp_avg"][n] = st.get("exp_avg", torch.zeros_like(p)).detach().cpu().clone()
            state["exp_avg_sq"][n] = st.get("exp_avg_sq", torch.zeros_like(p)).detach().cpu().clone()
        path = self.folder / f"epoch-{len(self.paths) + 1}.pt"
        torch.save(state, path)
        self.paths.append(path)
        self.lrs = []


def subtasks(records: list[dict]) -> list[str]:
    """Validation subtask per example: the ``topic`` prefix before "/" (one task if absent)."""
    return [str(r.get("topic", "all")).split("/")[0] for r in records]


def score(train_feats: torch.Tensor, val_feats: torch.Tensor, tasks: list[str], reduce: str) -> torch.Tensor:
    """Mean cosine to each subtask's validation examples, then max/mean over subtasks ([N])."""
    sims = train_feats @ val_feats.T
    names = sorted(set(tasks))
    per_task = torch.stack([sims[:, [i for i, t in enumerate(tasks) if t == name]].mean(1) for name in names], 1)
    return per_task.max(1).values if reduce == "max" else per_task.mean(1)


def lora_model(inputs: MethodInputs, opts: Options, tokenizer):
    # peft is imported on use: importing it costs ~4 s, and the workflow imports this module at DAG
    # construction to check the options (`snakemake -n` must stay fast).
    from peft import LoraConfig, get_peft_model

    base = load_model(inputs.model, dtype=opts.warmup.dtype)
    check_tokenizer_matches(base, tokenizer, where=f"model '{inputs.model}': ")
    targets = opts.lora_target_modules
    n_layers = len(decoder_layers(base))
    last = min(opts.lora_last_layers, n_layers) if opts.lora_last_layers else n_layers
    cfg = LoraConfig(
        r=opts.lora_r,
        lora_alpha=opts.lora_alpha,
        lora_dropout=opts.lora_dropout,
        target_modules=targets[0] if targets == ["all-linear"] else targets,
        task_type="CAUSAL_LM",
        layers_to_transform=None if last == n_layers else list(range(n_layers - last, n_layers)),
    )
    try:
        model = get_peft_model(base, cfg)
    except ValueError as e:
        raise ConfigError(f"methods.less.lora_target_modules {targets}: {e}") from None
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    return model, names


def select(inputs: MethodInputs, opts: Options) -> Path:
    run, tokenizer, pool = open_run(inputs, INFO.name, opts, opts.warmup.max_length, log_name=__name__)
    tasks = subtasks(pool.validation_records)
    n_warm = max(1, round(opts.warmup_fraction * len(pool.examples)))
    warm_idx = random.Random(inputs.seed).sample(range(len(pool.examples)), n_warm)
    run.log.info(
        "pool %d, warm-up %d, validation %d in subtasks %s", len(pool.examples), n_warm, len(tasks), sorted(set(tasks))
    )

    model, names = lora_model(inputs, opts, tokenizer)
    saver = CheckpointSaver(run.out / "checkpoints", names)
    adam = {"adam_beta1": opts.adam_betas[0], "adam_beta2": opts.adam_betas[1], "adam_epsilon": opts.adam_eps}
    warm = [pool.examples[i] for i in warm_idx]
    history = train(run, "warmup", model, tokenizer, warm, opts.warmup, [saver.callback], **adam)

    dim = sum(p.numel() for n, p in model.named_parameters() if n in set(names))
    projector = make_projector(dim, opts, inputs.seed)
    features = GradientFeatures(
        model, names, projector, tokenizer.pad_token_id, opts.grad_batch_size, opts.gradient_mode
    )
    device = next(model.parameters()).device
    scores, lrs, per_ckpt = [], [], []
    for path in saver.paths:
        ckpt = torch.load(path)
        with torch.no_grad():
            for n, p in model.named_parameters():
                if n in ckpt["lora"]:
                    p.copy_(ckpt["lora"][n])
        flat = {k: torch.cat([ckpt[k][n].reshape(-1) for n in names]).to(device) for k in ("exp_avg", "exp_avg_sq")}
        adam = (flat["exp_avg"], flat["exp_avg_sq"], *opts.adam_betas, opts.adam_eps)
        val = features(pool.validation, None, desc=f"{path.stem} validation gradients")
        trn = features(pool.examples, adam, desc=f"{path.stem} training gradients")
        run.count("gradients", n_tokens(pool.validation) + n_tokens(pool.examples))
        s = score(trn, val, tasks, opts.subtask_reduce)
        scores.append(s)
        lrs.append(ckpt["mean_lr"])
        per_ckpt.append({"checkpoint": path.name, "mean_lr": ckpt["mean_lr"], "mean_score": float(s.mean())})
        run.log.info("%s: mean lr %.3g, mean cosine score %.4f", path.name, ckpt["mean_lr"], float(s.mean()))

    if sum(lrs) <= 0:  # e.g. a single warm-up step, whose learning rate is 0 under linear warm-up
        run.log.warning("every checkpoint's mean learning rate is 0; weighting checkpoints equally")
        lrs = [1.0] * len(lrs)
    total = sum(lr * s for lr, s in zip(lrs, scores))
    chosen = top_n(total, inputs.budget, tie_keys(pool))
    counts = source_counts(pool, chosen)
    run.log.info("selected per source: %s", counts)
    metrics = {
        "feature_dim": dim,
        "warmup_examples": n_warm,
        "warmup_train_loss": [h["loss"] for h in history if "loss" in h],
        "checkpoints": per_ckpt,
        "selected_per_source": counts,
        "mean_score_per_source": {
            name: float(total[[i for i, e in enumerate(pool.examples) if e["source"] == k]].mean())
            for k, name in enumerate(pool.source_names)
        },
    }
    return run.finish(examples=as_examples(pool, chosen), metrics=metrics)
