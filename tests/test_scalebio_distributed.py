"""Multi-process runs under torchrun (gloo, CPU) equal one process at the same global batch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from scalebio.common.selection import MethodInputs, read_selection

ROOT = Path(__file__).resolve().parents[1]
OPTS = {"max_steps": 4, "global_batch_size": 8, "micro_batch_size": 2, "max_length": 64, "lr_u": 1e-3,
        "lr_w": 1e-3, "progress": False}  # fmt: skip


def _torchrun(cfg: Path, nproc: int = 2) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
           "-m", "scalebio", "reweight", "--config", str(cfg)]  # fmt: skip
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)


def _one_process(data, model, out, options) -> dict:
    import torch

    from scalebio.common.registry import run_method

    torch.set_num_threads(1)  # as in the torchrun workers
    inputs = MethodInputs(data_dir=str(data), model=str(model), out_dir=str(out), budget=1, seed=0, options=options)
    return read_selection(run_method(inputs, "scalebio"))


def _compare(a: dict, b: dict, tol: float = 1e-5) -> None:
    assert a["weights"] != {k: 0.2 for k in a["weights"]}  # the weights moved, so the comparison means something
    for k in a["weights"]:
        assert abs(a["weights"][k] - b["weights"][k]) <= tol, (k, a["weights"], b["weights"])
        assert abs(a["theta"][k] - b["theta"][k]) <= tol


def _run_two(tmp_path, data, model, options) -> dict:
    cfg = tmp_path / "run.yaml"
    cfg.write_text(
        yaml.safe_dump({"data": str(data), "model": str(model), "out": str(tmp_path / "two"), "options": options})
    )
    r = _torchrun(cfg)
    assert r.returncode == 0, r.stderr[-3000:]
    return read_selection(tmp_path / "two" / "selection.json")


def test_ddp_two_processes_equal_one(tiny_model_dir, denoise_data_dir, tmp_path):
    """DDP (explicit gradient all-reduce) with LISA on: 2 processes x 2 micro-batches == 1 x 4."""
    opts = dict(OPTS, lisa={"n_layers": 2, "interval": 2})
    two = _run_two(tmp_path, denoise_data_dir, tiny_model_dir, opts)
    one = _one_process(denoise_data_dir, tiny_model_dir, tmp_path / "one", opts)
    _compare(one, two)


@pytest.mark.slow
def test_fsdp_two_processes_equal_one_and_resume(tiny_model_dir, denoise_data_dir, tmp_path):
    """FSDP2 full sharding on CPU/gloo (u and w built on meta, filled shard by shard) equals one process; a rerun
    resumes from its sharded checkpoint bit-identically."""
    opts = dict(OPTS, distributed="fsdp", checkpoint_every=2, keep_checkpoints=True)
    two = _run_two(tmp_path, denoise_data_dir, tiny_model_dir, opts)
    one = _one_process(denoise_data_dir, tiny_model_dir, tmp_path / "one", dict(OPTS))
    _compare(one, two)
    # The checkpoint is sharded (torch.distributed.checkpoint): each rank wrote its own pieces, rank 0 the rest.
    ckpt = tmp_path / "two" / "checkpoints" / "step-2"
    assert len(list((ckpt / "shards").glob("*.distcp"))) == 2 and (ckpt / "state.pt").exists()
    first = (tmp_path / "two" / "metrics.jsonl").read_text().splitlines()
    (tmp_path / "two" / "selection.json").unlink()
    again = _run_two(tmp_path, denoise_data_dir, tiny_model_dir, opts)  # resumes from checkpoints/step-2
    assert "resumed from" in (tmp_path / "two" / "log.txt").read_text()
    assert again["theta"] == two["theta"] and again["weights"] == two["weights"]  # bit-identical
    resumed = (tmp_path / "two" / "metrics.jsonl").read_text().splitlines()
    drop = ("tokens_per_s",)  # wall-clock
    rows = [[{k: v for k, v in json.loads(r).items() if k not in drop} for r in f] for f in (first, resumed)]
    assert rows[0] == rows[1]  # steps 3-4 after the resume: the same losses, norms and weights, bit for bit
