"""Cost of one ScaleBiO step next to one plain SFT step on the same tokens: time and peak memory.

    python -m scalebio.tools.benchmark --model tiny                       # CPU, seconds
    python -m scalebio.tools.benchmark --model smollm2 --seq-len 256 --batch 4
    python -m scalebio.tools.benchmark --device cuda --model llama3-8b-shape --dtype bfloat16   # GPU, ~8B params

Modes: (a) ``sft``: forward/backward + AdamW on all parameters; (b) ``scalebio``: one full
minimax step (u, w, θ: three forward/backward passes per example, two model copies); (c)
``scalebio_lisa``: the same step with LISA (``--lisa-layers`` active blocks in u and in w, optimizer
state of frozen blocks released). Models are random-initialised from a config of the named shape
(no download). Each mode runs in a fresh child process so peaks do not mix:

- Time: CUDA wall clock (synchronised); on CPU the child's process CPU time per step (one torch
  thread by default), which other jobs on a shared machine barely disturb; wall time is kept too.
- CUDA: peak = ``torch.cuda.max_memory_allocated`` (exact allocator bytes).
- CPU: peak = the child's peak resident set size (``resource.getrusage`` ru_maxrss) minus its RSS
  before the model is built (Python/torch import overhead excluded). ``tracemalloc`` cannot see
  torch's allocator; RSS includes allocator caching, so CPU peaks are upper bounds.

Per-component memory is computed from tensor sizes (weights, gradients of trainable parameters,
optimizer state); "activations" = measured peak minus those (activations, logits, temporaries).
Writes ``results/benchmark/<model>-<device>.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import copy
import json
import multiprocessing as mp
import platform
import time
from pathlib import Path

from scalebio.common.runtime import atomic_write_json
from scalebio.report.markdown import markdown_table

SHAPES = {
    # build_tiny's shape (scalebio/assets/models.py)
    "tiny": dict(vocab_size=4096, hidden_size=128, intermediate_size=344, num_hidden_layers=4, num_attention_heads=4,
                 num_key_value_heads=2, tie_word_embeddings=True),
    # SmolLM2-135M-Instruct
    "smollm2": dict(vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
                    num_attention_heads=9, num_key_value_heads=3, tie_word_embeddings=True, rope_theta=100000.0),
    # Meta-Llama-3-8B
    "llama3-8b-shape": dict(vocab_size=128256, hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
                            num_attention_heads=32, num_key_value_heads=8, tie_word_embeddings=False,
                            rope_theta=500000.0, max_position_embeddings=8192),
}  # fmt: skip
MODES = ("sft", "scalebio", "scalebio_lisa")
MiB = 2**20


def _build(args, device):
    import torch
    from transformers import AutoModelForCausalLM, LlamaConfig

    torch.manual_seed(0)
    cfg = LlamaConfig(**SHAPES[args.model], use_cache=False)
    dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16}[args.dtype]
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(cfg, dtype=dtype, attn_implementation="sdpa")
    if args.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.train()
    return model


def _batch(args, vocab, device, seed):
    """``batch`` sequences of ``seq_len`` random tokens; the first quarter is prompt (label -100)."""
    import torch

    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, vocab, (args.batch, args.seq_len), generator=g)
    labels = ids.clone()
    labels[:, : args.seq_len // 4] = -100
    b = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": labels,
         "source": torch.randint(0, 4, (args.batch,), generator=g)}  # fmt: skip
    return {k: v.to(device) for k, v in b.items()}


def _nbytes(tensors) -> int:
    return sum(t.numel() * t.element_size() for t in tensors)


def _opt_bytes(opt) -> int:
    import torch

    return sum(_nbytes([v for v in s.values() if torch.is_tensor(v) and v.dim() > 0]) for s in opt.state.values())


def _child(args, mode: str, queue) -> None:
    # Imports live in the child: the parent process must not hold torch's memory, or peaks would mix.
    import resource

    import psutil
    import torch

    from scalebio.common.lisa import LISA, LisaConfig
    from scalebio.common.modeling import pooled_token_loss
    from scalebio.minimax import Minimax
    from scalebio.trainer import ScaleBiOConfig
    from scalebio.weights import SourceWeights

    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    rss0 = psutil.Process().memory_info().rss
    cuda = device.type == "cuda"
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    fused = True if cuda else None  # same optimizer kernel in every mode; no foreach temporaries on GPU
    try:
        model = _build(args, device)
        vocab = model.config.vocab_size
        train = _batch(args, vocab, device, 1)
        val = _batch(args, vocab, device, 2)
        if mode == "sft":
            opt = torch.optim.AdamW(model.parameters(), lr=1e-5, weight_decay=5e-4, fused=fused)
            models, opts = [model], [opt]

            def step(i):
                total, n = pooled_token_loss(model, train)
                (total / n).backward()
                opt.step()
                opt.zero_grad(set_to_none=True)
        else:
            u, w = model, copy.deepcopy(model)
            weights = SourceWeights([f"s{k}" for k in range(4)]).to(device)
            cfg = ScaleBiOConfig(lr_u=1e-5, lr_w=1e-5, lr_theta=1e-2, lisa=LisaConfig(args.lisa_layers, 10**9))
            opt_u, opt_w, opt_t = cfg.build_optimizers(u, w, weights, fused=fused)
            mm = Minimax(u, w, weights, opt_u, opt_w, opt_t, alpha=100.0, max_grad_norm=1.0)
            models, opts = [u, w], [opt_u, opt_w]
            lisas = []
            if mode == "scalebio_lisa":
                lisas = [LISA(u, opt_u, cfg.lisa, 0, "u"), LISA(w, opt_w, cfg.lisa, 0, "w")]
                for x in lisas:
                    x.maybe_switch(0)

            def step(i):
                mm.step([train], [val], i)

        for i in range(args.warmup):
            step(i)
        sync()
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        t0, c0 = time.perf_counter(), time.process_time()
        for i in range(args.steps):
            step(args.warmup + i)
        sync()
        sec = (time.perf_counter() - t0) / args.steps
        cpu_sec = (time.process_time() - c0) / args.steps
        if cuda:
            peak = torch.cuda.max_memory_allocated()
        else:
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - rss0
        weights_b = sum(_nbytes(m.parameters()) for m in models)
        # Gradients live for one model at a time (u's are freed before w's backward): the peak holds one set.
        grads_b = max(_nbytes(p for p in m.parameters() if p.requires_grad) for m in models)
        opt_b = sum(_opt_bytes(o) for o in opts)
        n_params = sum(p.numel() for p in models[0].parameters())
        queue.put({
            "mode": mode, "s_per_step": sec, "cpu_s_per_step": cpu_sec,
            "time_s": cpu_sec if args.device == "cpu" else sec, "peak_mib": peak / MiB, "weights_mib": weights_b / MiB,
            "grads_mib": grads_b / MiB, "optimizer_mib": opt_b / MiB,
            "activations_mib": max(0.0, (peak - weights_b - grads_b - opt_b) / MiB),
            "params": n_params, "tokens_per_step": args.batch * args.seq_len,
        })  # fmt: skip
    except torch.OutOfMemoryError as e:
        queue.put({"mode": mode, "error": f"out of memory: {str(e).splitlines()[0]}"})


def _table(rows: list[dict]) -> str:
    sft = next((r for r in rows if r["mode"] == "sft" and "error" not in r), None)
    head = ["mode", "s/step", "× SFT time", "peak MiB", "× SFT memory", "weights", "grads", "optimizer",
            "activations+temp"]  # fmt: skip
    out = []
    for r in rows:
        if "error" in r:
            out.append([r["mode"], r["error"], *[""] * 7])
            continue
        tr = f"{r['time_s'] / sft['time_s']:.2f}" if sft else "–"
        mr = f"{r['peak_mib'] / sft['peak_mib']:.2f}" if sft else "–"
        out.append([r["mode"], f"{r['time_s']:.3f}", tr, f"{r['peak_mib']:.0f}", mr, f"{r['weights_mib']:.0f}",
                    f"{r['grads_mib']:.0f}", f"{r['optimizer_mib']:.0f}", f"{r['activations_mib']:.0f}"])  # fmt: skip
    return markdown_table(head, out).rstrip("\n")


def ratios(rows: list[dict]) -> dict:
    by = {r["mode"]: r for r in rows if "error" not in r}
    out = {}
    if "sft" in by:
        for m in ("scalebio", "scalebio_lisa"):
            if m in by:
                out[f"{m}_time_vs_sft"] = by[m]["time_s"] / by["sft"]["time_s"]
                out[f"{m}_memory_vs_sft"] = by[m]["peak_mib"] / by["sft"]["peak_mib"]
    if "scalebio" in by and "scalebio_lisa" in by:
        out["lisa_memory_vs_scalebio"] = by["scalebio_lisa"]["peak_mib"] / by["scalebio"]["peak_mib"]
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(prog="python -m scalebio.tools.benchmark", description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", choices=sorted(SHAPES), default="tiny", help="model shape (random init)")
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--dtype", default=None, choices=["float32", "bfloat16"], help="default: bf16 on CUDA, fp32 on CPU")
    ap.add_argument("--seq-len", type=int, default=256)
    ap.add_argument("--batch", type=int, default=4, help="sequences per step (one micro-batch)")
    ap.add_argument("--steps", type=int, default=3, help="timed steps per mode")
    ap.add_argument("--warmup", type=int, default=1, help="untimed steps first (allocates optimizer state)")
    ap.add_argument("--lisa-layers", type=int, default=2)
    ap.add_argument("--gradient-checkpointing", action=argparse.BooleanOptionalAction, default=None,
                    help="default: on for llama3-8b-shape, off otherwise")  # fmt: skip
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (more than free cores makes OpenMP spin)")
    ap.add_argument("--modes", default=",".join(MODES))
    ap.add_argument("--out", default="results/benchmark")
    args = ap.parse_args(argv)
    if args.dtype is None:
        args.dtype = "bfloat16" if args.device == "cuda" else "float32"
    if args.gradient_checkpointing is None:
        args.gradient_checkpointing = args.model == "llama3-8b-shape"
    if args.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise SystemExit("error: --device cuda but CUDA is not available")
    ctx = mp.get_context("spawn")
    rows = []
    for mode in args.modes.split(","):
        q = ctx.Queue()
        p = ctx.Process(target=_child, args=(args, mode, q))
        p.start()
        p.join()
        row = q.get() if not q.empty() else {"mode": mode, "error": f"child exited with code {p.exitcode}"}
        rows.append(row)
        print(json.dumps(row), flush=True)
    result = {
        "model": args.model, "device": args.device, "dtype": args.dtype, "seq_len": args.seq_len,
        "batch": args.batch, "steps": args.steps, "lisa_layers": args.lisa_layers,
        "gradient_checkpointing": args.gradient_checkpointing, "host": platform.node(),
        "time_method": "wall clock (CUDA synchronised)" if args.device == "cuda"
        else "process CPU time per step (robust to other jobs on a shared machine; wall time in s_per_step)",
        "memory_method": "torch.cuda.max_memory_allocated" if args.device == "cuda"
        else "child peak RSS (ru_maxrss) minus RSS before model build",
        "rows": rows, "ratios": ratios(rows),
    }  # fmt: skip
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = out / f"{args.model}-{args.device}"
    atomic_write_json(stem.with_suffix(".json"), result)
    md = (
        f"# ScaleBiO step cost: {args.model} ({rows[0].get('params', 0) / 1e6:.1f}M params), {args.device}, "
        f"{args.dtype}, {args.batch}×{args.seq_len} tokens/step, gradient checkpointing "
        f"{'on' if args.gradient_checkpointing else 'off'}\n\nTime: {result['time_method']}. "
        f"Memory: {result['memory_method']} (MiB).\n\n"
        + _table(rows)
        + "\n\nRatios: "
        + ", ".join(f"{k} = {v:.2f}" for k, v in result["ratios"].items())
        + "\n"
    )
    stem.with_suffix(".md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
