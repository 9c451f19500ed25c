"""SFT stage on the tiny model (CPU): loss goes down, the folder reloads and generates, resume, LISA,
DeepSpeed ZeRO vs the plain run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from scalebio.common.runtime import SuiteError
from scalebio.common.selection import MethodInputs, write_selection
from scalebio.common.training import SFTConfig
from scalebio.sft.finetune import LOG_FILE, finetune
from scalebio.sft.mixture import build_sft_set

ROOT = Path(__file__).resolve().parents[1]
FAST = {"global_batch_size": 8, "micro_batch_size": 4, "max_length": 96, "learning_rate": 1e-3, "warmup_ratio": 0.0}
DS_TOL = 1e-4
"""Max |loss difference| per step between a DeepSpeed ZeRO run and the plain run (fp32, same data order);
measured <= 6e-6 (ZeRO-2 and ZeRO-3 with one process, ZeRO-2 with two torchrun processes)."""


@pytest.fixture(scope="module")
def train_file(denoise_data_dir, tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("sft")
    inputs = MethodInputs(data_dir=str(denoise_data_dir), model="unused", out_dir=str(d / "sel"), budget=96, seed=0)
    sel = write_selection(inputs, "uniform", weights={n: 0.2 for n in inputs.sources}, wall_time_s=0, tokens=0)
    build_sft_set(sel, denoise_data_dir, d / "data", seed=0)
    return d / "data" / "train.jsonl"


def losses(model_dir: Path) -> list[float]:
    return [json.loads(line)["loss"] for line in (model_dir / LOG_FILE).read_text().splitlines()]


@pytest.fixture(scope="module")
def plain_run(train_file, tiny_model_dir, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("plain") / "model"
    finetune(train_file, tiny_model_dir, out, {**FAST, "max_steps": 8}, seed=0)
    return out


def test_loss_goes_down_and_model_reloads_and_generates(plain_run):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    curve = losses(plain_run)
    assert len(curve) == 8
    assert sum(curve[-2:]) / 2 < sum(curve[:2]) / 2 - 0.3, curve
    assert not plain_run.with_name("model.work").exists()  # checkpoints removed after success
    cfg = json.loads((plain_run / "sft_config.json").read_text())
    assert cfg["options"]["max_steps"] == 8 and cfg["train_sha256"]
    assert (plain_run / "log.txt").exists() and json.loads((plain_run / "metrics.json").read_text())["steps"] == 8

    tok = AutoTokenizer.from_pretrained(plain_run)
    model = AutoModelForCausalLM.from_pretrained(plain_run)
    ids = tok.apply_chat_template(
        [{"role": "user", "content": "What is 2 + 2?"}],
        add_generation_prompt=True,
        return_tensors="pt",
        return_dict=True,
    )
    with torch.no_grad():
        gen = model.generate(**ids, max_new_tokens=6, do_sample=False)
    assert gen.shape[1] > ids["input_ids"].shape[1]


def test_resume_after_crash_reproduces_curve(plain_run, train_file, tiny_model_dir, tmp_path):
    from transformers import TrainerCallback

    class Crash(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            if state.global_step == 5:
                raise RuntimeError("simulated crash")

    out = tmp_path / "model"
    opts = {**FAST, "max_steps": 8, "save_steps": 3}
    with pytest.raises(RuntimeError, match="simulated crash"):
        finetune(train_file, tiny_model_dir, out, opts, seed=0, callbacks=[Crash()])
    assert not out.exists(), "a failed run must leave no model folder"
    assert (tmp_path / "model.work" / "checkpoint-3").is_dir()
    finetune(train_file, tiny_model_dir, out, opts, seed=0)
    assert json.loads((out / "metrics.json").read_text())["resumed"] is True
    resumed, plain = losses(out), losses(plain_run)
    assert len(resumed) == 8
    assert max(abs(a - b) for a, b in zip(resumed, plain)) < 1e-4, (resumed, plain)


def test_lisa_trains_only_sampled_layers(train_file, tiny_model_dir, tmp_path):
    import torch
    from transformers import AutoModelForCausalLM

    out = tmp_path / "lisa"
    finetune(train_file, tiny_model_dir, out, {**FAST, "max_steps": 2, "lisa": {"n_layers": 1, "interval": 10}}, seed=0)
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    tuned = AutoModelForCausalLM.from_pretrained(out)
    changed = [
        i
        for i, (a, b) in enumerate(zip(base.model.layers, tuned.model.layers))
        if any(not torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    ]
    assert len(changed) == 1, changed  # one period of 10 steps > 2 steps: exactly one layer trained
    assert not torch.equal(base.model.embed_tokens.weight, tuned.model.embed_tokens.weight)


@pytest.mark.parametrize(
    "opts, match",
    [
        ({"global_batch_size": 12, "micro_batch_size": 8}, "multiple"),
        ({"lr": 1e-3}, "unknown option"),
        ({"deepspeed": "config/deepspeed/nope.json"}, "does not exist"),
        ({"max_steps": 0}, "max_steps"),
        ({"dtype": "float8"}, "dtype"),
    ],
)
def test_bad_options_are_rejected_before_training(opts, match, train_file, tiny_model_dir, tmp_path):
    with pytest.raises(SuiteError, match=match):
        finetune(train_file, tiny_model_dir, tmp_path / "m", opts)
    assert not (tmp_path / "m").exists()


def test_options_defaults_are_the_papers():
    o = SFTConfig()
    assert (o.learning_rate, o.epochs, o.lr_scheduler, o.warmup_ratio) == (2e-5, 1.0, "cosine", 0.03)
    assert (o.global_batch_size, o.micro_batch_size, o.max_length) == (128, 8, 1024)


def run_cli(args: list[str], launcher: list[str] | None = None) -> None:
    env = {**os.environ, "DS_ACCELERATOR": "cpu", "OMP_NUM_THREADS": os.environ.get("SCALEBIO_TEST_THREADS", "1")}
    cmd = (launcher or [sys.executable]) + ["-m", "scalebio.sft.finetune", *args]
    r = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]


def _ds_args(train_file, tiny_model_dir, out, config) -> list[str]:
    opts = json.dumps({**FAST, "max_steps": 8, "deepspeed": str(ROOT / "config" / "deepspeed" / config)})
    return ["--train", str(train_file), "--model", str(tiny_model_dir), "--out", str(out), "--options", opts]


def test_deepspeed_zero2_matches_plain_run(plain_run, train_file, tiny_model_dir, tmp_path):
    """ZeRO-2, one process, gloo; the first DeepSpeed init on a machine JIT-compiles a shm op (~40 s)."""
    out = tmp_path / "ds"
    run_cli(_ds_args(train_file, tiny_model_dir, out, "zero2.json"))
    ds, plain = losses(out), losses(plain_run)
    assert len(ds) == len(plain) == 8
    assert max(abs(a - b) for a, b in zip(ds, plain)) < DS_TOL, (ds, plain)


@pytest.mark.slow
def test_deepspeed_zero3_matches_plain_run(plain_run, train_file, tiny_model_dir, tmp_path):
    out = tmp_path / "ds3"
    run_cli(_ds_args(train_file, tiny_model_dir, out, "zero3_cpu.json"))
    assert max(abs(a - b) for a, b in zip(losses(out), losses(plain_run))) < DS_TOL


@pytest.mark.slow
def test_two_process_zero2_matches_plain_run(plain_run, train_file, tiny_model_dir, tmp_path):
    """torchrun, 2 CPU processes x micro batch 4 = the same 8 examples per step as the one-process run."""
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    run_cli(_ds_args(train_file, tiny_model_dir, tmp_path / "ds", "zero2.json"), torchrun)
    ds, plain = losses(tmp_path / "ds"), losses(plain_run)
    assert len(ds) == 8 and max(abs(a - b) for a, b in zip(ds, plain)) < DS_TOL, (ds, plain)


def test_group_by_length_computes_fewer_padded_tokens(tiny_model_dir, tmp_path, monkeypatch):
    """Half the examples 8 tokens long, half 120: random batches of 4 almost always hold a long one (padded to
    120); the Trainer's LengthGroupedSampler puts short ones together, so the tokens computed fall well below."""
    import scalebio.common.training as training
    from scalebio.common.modeling import load_model, load_tokenizer

    shapes = []  # (examples, padded tokens) of every batch the Trainer computed
    real_collate = training.collate

    def recording_collate(batch, pad):
        out = real_collate(batch, pad)
        shapes.append((len(batch), out["input_ids"].numel()))
        return out

    monkeypatch.setattr(training, "collate", recording_collate)
    examples = [{"input_ids": [5] * n, "labels": [5] * n} for n in [8, 120] * 64]

    def padded_tokens(group: bool) -> int:
        shapes.clear()
        cfg = SFTConfig(**{**FAST, "global_batch_size": 4, "max_length": 128, "group_by_length": group})
        tokenizer = load_tokenizer(tiny_model_dir)
        training.train_sft(load_model(tiny_model_dir), tokenizer, examples, cfg, str(tmp_path / str(group)))
        assert sum(n for n, _ in shapes) == len(examples)  # one pass, every example once
        return sum(t for _, t in shapes)

    random_order = padded_tokens(False)
    grouped = padded_tokens(True)
    assert grouped < 0.75 * random_order, (grouped, random_order)


def test_each_rank_loads_onto_its_own_device_set_before_loading(train_file, tiny_model_dir, tmp_path, monkeypatch):
    """Under a launcher with GPUs, rank r makes cuda:r current and loads onto it (not every rank onto GPU 0)."""
    import torch

    import scalebio.sft.finetune as ft
    from scalebio.common.modeling import local_device

    calls = []
    monkeypatch.setenv("LOCAL_RANK", "3")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "set_device", lambda i: calls.append(("set_device", i)))
    assert local_device() == torch.device("cuda", 3) and calls == [("set_device", 3)]

    class Loaded(Exception):
        pass

    def fake_load(path, dtype, device, gradient_checkpointing, move=True):
        calls.append(("load", device, move))
        raise Loaded

    monkeypatch.setattr(ft, "load_model", fake_load)
    monkeypatch.setattr(ft.SFTConfig, "training_arguments", lambda self, *a, **k: None)  # no CUDA here to set up
    with pytest.raises(Loaded):
        ft.finetune(train_file, tiny_model_dir, tmp_path / "m", {**FAST, "max_steps": 2})
    assert calls[-2:] == [("set_device", 3), ("load", torch.device("cuda", 3), True)]
    # ZeRO-3: the weights load partitioned under its init, and are not moved afterwards
    with pytest.raises(Loaded):
        ft.finetune(
            train_file, tiny_model_dir, tmp_path / "z", {**FAST, "deepspeed": "config/deepspeed/zero3_cpu.json"}
        )
    assert calls[-1] == ("load", torch.device("cuda", 3), False)
