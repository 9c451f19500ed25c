"""Memory plan of a GPU config: per-GPU and host memory of every stage, from the model's shape and the sharding.

    python -m scalebio plan-memory --config config/paper/math_llama3_8b.yaml

Printed when the DAG of a GPU config is built (``snakemake -n`` shows it), and checked against what the config asks
for (``resources.gpu_memory_gb`` per GPU, ``resources.host_memory_gb`` per job): a stage that does not fit is a config
error of ``check-config`` and of the DAG, before any job starts. Estimates (GiB), stated so they can be checked:

- weights, gradients and AdamW states: b·N, b·N·f and 2·b·N·f bytes per model (b = bytes of the dtype; torch's AdamW
  keeps its moments in the parameter dtype; f = the trainable fraction: LISA's active blocks + embeddings + head);
  FSDP divides them by the GPUs; ScaleBiO holds two models (u, w) plus the two blocks FSDP gathers at a time;
- SFT under DeepSpeed ZeRO: DeepSpeed's own estimator (``estimate_zero3_model_states_mem_needs``, zero_init, buffer
  factor 1.5): ZeRO-3 with the optimizer offloaded: GPU 4·L + 2·N/P bytes, host 16·N·1.5 (+ parameters offloaded:
  GPU 4·L, host 18·N·1.5), L the largest layer; without offload: GPU 4·L + 18·N/P; ZeRO-2: 2·N + 16·N/P;
- activations per layer s·m·h·34 bytes (Korthikanti et al. 2022, 16-bit, fused attention), or s·m·h·2 with gradient
  checkpointing plus one layer's 34; fp32 logits s·m·V·4 (m: micro batch, s: max length);
- LESS: the frozen model, LoRA's D parameters with gradients and Adam (16·D), ``grad_batch_size`` per-example
  gradients (4·D each) and one block of the projection; RHO-LOSS: the hold-out model's training as an SFT run on one
  GPU, then the two models that score; generation: the model per process plus the KV cache of a batch.

A shape comes from the model folder's ``config.json`` when it is local, else from ``KNOWN_SHAPES`` (the paper's and the
smoke config's hub models, from their published config.json); an unknown hub model is planned as "unknown".
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path

from scalebio.common.config import from_dict, generates, load_config_file
from scalebio.common.registry import evaluation_options, method_info
from scalebio.common.runtime import main_guard
from scalebio.pipeline.launch import Resources
from scalebio.pipeline.resolve import method_module_name, method_options, section

GIB = 2**30
BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}


@dataclass(frozen=True)
class Shape:
    """What memory depends on in a decoder-only transformer (config.json names in comments)."""

    vocab: int  # vocab_size
    hidden: int  # hidden_size
    layers: int  # num_hidden_layers
    intermediate: int  # intermediate_size
    heads: int  # num_attention_heads
    kv_heads: int  # num_key_value_heads
    head_dim: int  # head_dim (hidden / heads when absent)
    tied: bool  # tie_word_embeddings
    qkv_bias: bool = False  # Qwen2's attention biases

    def projections(self) -> dict[str, tuple[int, int]]:
        h, q, kv = self.hidden, self.heads * self.head_dim, self.kv_heads * self.head_dim
        mlp = {
            "gate_proj": (h, self.intermediate),
            "up_proj": (h, self.intermediate),
            "down_proj": (self.intermediate, h),
        }
        return {"q_proj": (h, q), "k_proj": (h, kv), "v_proj": (h, kv), "o_proj": (q, h), **mlp}

    @property
    def block(self) -> int:
        bias = (self.heads + 2 * self.kv_heads) * self.head_dim if self.qkv_bias else 0
        return sum(i * o for i, o in self.projections().values()) + bias + 4 * self.hidden

    @property
    def embedding(self) -> int:
        return self.vocab * self.hidden

    @property
    def params(self) -> int:
        return self.embedding * (1 if self.tied else 2) + self.layers * self.block + self.hidden

    def lora(self, r: int, targets: list[str], layers: int = 0) -> int:
        """Parameters of LoRA rank ``r`` on ``targets`` ("all-linear": every projection) in the last ``layers``."""
        proj = self.projections()
        names = list(proj) if targets == ["all-linear"] else [t for t in targets if t in proj]
        return (layers or self.layers) * sum(r * (proj[n][0] + proj[n][1]) for n in names)


def _shape(vocab, hidden, layers, intermediate, heads, kv, head_dim=None, tied=False, bias=False) -> Shape:
    return Shape(vocab, hidden, layers, intermediate, heads, kv, head_dim or hidden // heads, tied, bias)


KNOWN_SHAPES = {
    "meta-llama/Meta-Llama-3-8B": _shape(128256, 4096, 32, 14336, 32, 8),
    "google/gemma-2-9b": _shape(256000, 3584, 42, 14336, 16, 8, 256, tied=True),
    "google/gemma-2-2b-it": _shape(256000, 2304, 26, 9216, 8, 4, 256, tied=True),
    "Qwen/Qwen2-7B": _shape(152064, 3584, 28, 18944, 28, 4, bias=True),
    "Qwen/Qwen2.5-32B": _shape(152064, 5120, 64, 27648, 40, 8, bias=True),
    "Qwen/Qwen2.5-0.5B-Instruct": _shape(151936, 896, 24, 4864, 14, 2, tied=True, bias=True),
    "HuggingFaceTB/SmolLM2-135M": _shape(49152, 576, 30, 1536, 9, 3, tied=True),
}
"""Published config.json values of the hub models the shipped GPU configs use."""


def shape_of(path: str) -> Shape | None:
    """The shape of a local model folder (its config.json) or a known hub model; None if neither."""
    cfg = Path(path) / "config.json"
    if not cfg.is_file():
        return KNOWN_SHAPES.get(path)
    c = json.loads(cfg.read_text())
    heads = c["num_attention_heads"]
    return _shape(c["vocab_size"], c["hidden_size"], c["num_hidden_layers"], c["intermediate_size"], heads,
                  c.get("num_key_value_heads", heads), c.get("head_dim"), c.get("tie_word_embeddings", False),
                  c.get("model_type") == "qwen2")  # fmt: skip


def activations(s: Shape, micro: int, length: int, b: int, checkpointing: bool) -> float:
    per_layer = length * micro * s.hidden * (b / 2)
    acts = per_layer * (2 * s.layers + 34 if checkpointing else 34 * s.layers)
    return acts + length * micro * s.vocab * 4


@dataclass
class Row:
    stage: str
    gpu: float
    """GiB per GPU."""
    host: float
    """GiB of host memory for the job."""
    note: str


def bilevel_row(name: str, s: Shape, opts: dict, gpus: int, dtype: str) -> Row:
    b, lisa = BYTES[opts.get("dtype", dtype)], opts.get("lisa") or {}
    active = lisa.get("n_layers", 0) or s.layers
    trainable = min(1.0, (active * s.block + s.embedding * (1 if s.tied else 2)) / s.params)
    per_model = b * s.params * (1 + 3 * trainable)
    fsdp = opts.get("distributed") == "fsdp" and gpus > 1
    states = 2 * per_model / (gpus if fsdp else 1) + (2 * 2 * b * s.block if fsdp else 0)
    acts = activations(s, opts.get("micro_batch_size", 1), opts.get("max_length", 1024), b,
                       opts.get("gradient_checkpointing", False))  # fmt: skip
    load = (
        "load: shard + 64 MiB slices (built on meta)" if fsdp else f"load: 2 full copies ({2 * b * s.params / GIB:.1f})"
    )
    how = f"FSDP over {gpus}" if fsdp else "unsharded"
    return Row(name, (states + acts) / GIB, 2.0, f"u, w + AdamW, {how}, LISA {active}/{s.layers} blocks; {load}")


def deepspeed_row(stage: str, s: Shape, cfg: dict, gpus: int, dtype: str) -> Row:
    b = BYTES[cfg.get("dtype", dtype)]
    acts = activations(s, cfg.get("micro_batch_size", 8), cfg.get("max_length", 1024), b,
                       cfg.get("gradient_checkpointing", False))  # fmt: skip
    largest, n = max(s.embedding, s.block), s.params
    if not cfg.get("deepspeed"):
        return Row(stage, (4 * b * n + acts) / GIB, 4.0, f"no DeepSpeed: weights, gradients, AdamW ({b} B each), 1 GPU")
    ds = json.loads(Path(cfg["deepspeed"]).read_text()).get("zero_optimization", {})
    opt_off = ds.get("offload_optimizer", {}).get("device", "none") == "cpu"
    par_off = ds.get("offload_param", {}).get("device", "none") == "cpu"
    if ds.get("stage") == 3 and par_off:
        gpu, host, how = 4 * largest, 18 * n * 1.5, "ZeRO-3, parameters and optimizer on CPU"
    elif ds.get("stage") == 3 and opt_off:
        gpu, host, how = 4 * largest + 2 * n / gpus, 16 * n * 1.5, "ZeRO-3, optimizer on CPU"
    elif ds.get("stage") == 3:
        gpu, host, how = 4 * largest + 18 * n / gpus, 4 * largest * gpus * 1.5, "ZeRO-3"
    else:
        gpu, host, how = 2 * n + 16 * n / gpus, 4.0 * GIB, f"ZeRO-{ds.get('stage', 0)}"
    return Row(stage, (gpu + acts) / GIB, host / GIB, f"{how} over {gpus} GPU(s) (DeepSpeed's estimator)")


def lora_features_row(name: str, s: Shape, opts: dict, dtype: str) -> Row:
    warm = opts.get("warmup") or {}
    b = BYTES[warm.get("dtype", dtype)]
    d = s.lora(opts.get("lora_r", 128), opts.get("lora_target_modules", ["q_proj", "k_proj", "v_proj", "o_proj"]),
               opts.get("lora_last_layers", 0))  # fmt: skip
    k, block = opts.get("projection_dim", 8192), opts.get("projection_block", 16384)
    proj = 12 * block if opts.get("projection") == "countsketch" else 4 * block * k
    grads = 4 * d * opts.get("grad_batch_size", 16)
    acts = activations(s, warm.get("micro_batch_size", 8), warm.get("max_length", 1024), b,
                       warm.get("gradient_checkpointing", False))  # fmt: skip
    gpu = b * s.params + 16 * d + grads + proj + acts
    return Row(name, gpu / GIB, 4.0, f"LoRA D={d / 1e6:.0f}M, {opts.get('projection', 'rademacher')} projection, 1 GPU")


def generation_row(stage: str, s: Shape, opts: dict, gpus: int, dtype: str) -> Row:
    b = BYTES[opts.get("dtype", dtype)]
    tp = opts.get("tensor_parallel_size", 1) if opts.get("backend") == "vllm" else 1
    kv = (
        opts.get("batch_size", 8)
        * (1024 + opts.get("max_new_tokens", 512))
        * 2
        * s.layers
        * s.kv_heads
        * s.head_dim
        * b
    )
    return Row(stage, (b * s.params / tp + kv) / GIB, 4.0, f"model per process + KV cache of a batch (TP {tp})")


def method_rows(config: dict, exp: str, method: str, s: Shape, gpus: int) -> list[Row]:
    """The select job of ``method``, by what its ``MethodInfo.memory`` says it holds (methods run in their default
    dtype, float32, unless their options say otherwise: the model's dtype is not passed to them)."""
    opts = method_options(config, exp, method)
    kind = method_info(method, method_module_name(config, method) or None).memory
    if kind == "bilevel":
        return [bilevel_row(method, s, opts, gpus, "float32")]
    if kind == "lora_features":
        return [lora_features_row(method, s, opts, "float32")]
    if kind == "holdout_sft":
        return [deepspeed_row(f"{method} holdout", s, opts.get("holdout") or {}, 1, "float32")]
    return []


def resources_of(config: dict) -> Resources:
    """The config's ``resources`` section, typed (defaults where absent)."""
    return from_dict(Resources, config.get("resources") or {}, "resources.")


def shaped_runs(config: dict):
    """(experiment, its section, model key, shape) for every model whose shape is known (a hub id or local folder
    of a known architecture); CPU assets and unknown folders have none and are not planned."""
    for exp, e in config["experiments"].items():
        for m in e["models"]:
            s = shape_of(config["models"][m].get("path", ""))
            if s is not None:
                yield exp, e, m, s


def plan(config: dict) -> dict[str, list[Row]]:
    """Rows per model of every GPU stage the config runs (an empty dict for a CPU config)."""
    gpus = resources_of(config).gpus_per_job
    if gpus < 1:
        return {}
    out: dict[str, list[Row]] = {}
    for exp, e, m, s in shaped_runs(config):
        dtype, rows = config["models"][m].get("dtype", "float32"), out.setdefault(m, [])
        for method in e["methods"]:
            rows += method_rows(config, exp, method, s, gpus)
        rows.append(deepspeed_row("sft", s, section(config, exp, "sft"), gpus, dtype))
        for ev in e.get("evals", []):
            rows.append(generation_row(f"eval {ev}", s, section(config, exp, "eval", ev), gpus, dtype))
    return out


def tensor_parallel_problems(config: dict) -> list[str]:
    """Generating evaluations whose vLLM tensor-parallel size does not divide the model's attention heads (vLLM
    refuses such a model at start-up, after the job has queued for its GPUs: Qwen2-7B's 28 heads on 8 GPUs).
    The size is ``eval.<name>.tensor_parallel_size`` when given, else every GPU of the job (``eval_options`` in
    workflow/rules/common.smk); the ``auto`` backend counts, since it picks vLLM wherever vLLM is installed."""
    gpus = resources_of(config).gpus_per_job
    if gpus < 1:
        return []
    out = []
    for exp, e, m, s in shaped_runs(config):
        for ev in e.get("evals", []):
            opts = section(config, exp, "eval", ev)
            if opts.get("backend", "auto") == "hf" or not generates(evaluation_options(opts.get("evaluation", ev))):
                continue
            tp = int(opts.get("tensor_parallel_size", gpus))
            if s.heads % tp or (s.kv_heads % tp and tp % s.kv_heads):
                out.append(f"eval.{ev}.tensor_parallel_size: {tp} (the job's GPUs unless set) does not divide "
                           f"{m}'s {s.heads} attention heads / {s.kv_heads} KV heads, which vLLM refuses; set "
                           f"eval.{ev}.tensor_parallel_size to a divisor of {s.heads} (or backend: hf)")  # fmt: skip
    return list(dict.fromkeys(out))


def problems(config: dict) -> list[str]:
    """Stages that do not fit the resources the config asks for, and vLLM sizes the model refuses (one line each)."""
    res = resources_of(config)
    out = tensor_parallel_problems(config)
    for model, rows in plan(config).items():
        for r in rows:
            if r.gpu > res.gpu_memory_gb:
                out.append(f"memory plan: {model} {r.stage} needs ~{r.gpu:.0f} GiB per GPU ({r.note}); "
                           f"resources.gpu_memory_gb is {res.gpu_memory_gb:g}")  # fmt: skip
            if r.host > res.host_memory_gb:
                out.append(f"memory plan: {model} {r.stage} needs ~{r.host:.0f} GiB of host memory ({r.note}); "
                           f"resources.host_memory_gb is {res.host_memory_gb:g}")  # fmt: skip
    return list(dict.fromkeys(out))


def render(config: dict) -> str:
    res = resources_of(config)
    lines = []
    for model, rows in plan(config).items():
        lines.append(
            f"memory plan for {model} (GiB; resources: {res.gpu_memory_gb:g} per GPU, {res.host_memory_gb:g} host)"
        )
        seen = set()
        for r in rows:
            if (r.stage, r.note) not in seen:
                seen.add((r.stage, r.note))
                lines.append(f"  {r.stage:<18} GPU {r.gpu:7.1f}  host {r.host:7.1f}  {r.note}")
    return "\n".join(lines)


@main_guard
def main(argv=None) -> None:
    ap = argparse.ArgumentParser(prog="python -m scalebio plan-memory", description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", required=True, help="a workflow config file")
    a = ap.parse_args(argv)
    config = load_config_file(a.config)
    print(render(config) or "no GPU stages (resources.gpus_per_job is 0)")
    for p in problems(config):
        print(p)


if __name__ == "__main__":
    main()
