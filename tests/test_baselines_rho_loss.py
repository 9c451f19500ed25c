"""RHO-LOSS: scores equal directly computed losses; denoising; bad input."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from baselines import rho_loss
from scalebio.common.data import load_split
from scalebio.common.modeling import IGNORE_INDEX, load_model, load_tokenizer
from scalebio.common.registry import run_method
from scalebio.common.runtime import SuiteError
from scalebio.common.selection import MethodInputs, read_selection

TINY_RHO = {"holdout": {"learning_rate": 1e-3, "epochs": 8.0, "global_batch_size": 8, "max_length": 96}}


def direct_loss(model, example) -> float:
    """Mean response-token cross-entropy of one unpadded example, written out by hand."""
    ids = torch.tensor([example["input_ids"]])
    labels = torch.tensor(example["labels"])
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0]
    total, count = 0.0, 0
    for t in range(1, len(labels)):
        if labels[t] != IGNORE_INDEX:
            total += -F.log_softmax(logits[t - 1].double(), -1)[labels[t]].item()
            count += 1
    return total / count


def test_scores_equal_direct_losses(tiny_model_dir, denoise_data_dir):
    tok = load_tokenizer(tiny_model_dir)
    base = load_model(tiny_model_dir)
    ref = load_model(tiny_model_dir)
    torch.manual_seed(0)
    with torch.no_grad():  # a different "reference" model
        for p in ref.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    examples = load_split(denoise_data_dir / "sources" / "noise050.jsonl", tok, 96, what="source")[:6]
    scores, base_loss, ref_loss = rho_loss.excess_scores(base, ref, examples, tok.pad_token_id, batch_size=4)
    for i, ex in enumerate(examples):
        b, r = direct_loss(base, ex), direct_loss(ref, ex)
        assert base_loss[i].item() == pytest.approx(b, rel=1e-4)
        assert ref_loss[i].item() == pytest.approx(r, rel=1e-4)
        assert scores[i].item() == pytest.approx(b - r, rel=1e-3, abs=1e-4)
    assert scores.std() > 0


def test_softmax_selection_samples_without_replacement():
    scores = torch.tensor([5.0, 4.0, 0.0, -1.0, -5.0, 3.0])
    opts = rho_loss.Options(selection="softmax", temperature=0.01)
    picked = rho_loss.choose(scores, 3, opts, seed=0)
    assert sorted(picked) == [0, 1, 5]  # a tiny temperature is top-N
    opts = rho_loss.Options(selection="softmax", temperature=100.0)
    draws = [tuple(sorted(rho_loss.choose(scores, 3, opts, seed=s))) for s in range(20)]
    assert all(len(set(d)) == 3 for d in draws) and len(set(draws)) > 1  # a large one is near-uniform


def test_rho_loss_selects_clean_examples(tiny_model_dir, denoise_data_dir, tmp_path):
    inputs = MethodInputs(str(denoise_data_dir), str(tiny_model_dir), str(tmp_path), budget=64, options=TINY_RHO)
    sel = read_selection(run_method(inputs, "rho_loss"))
    flags = {}
    for f in (denoise_data_dir / "sources").glob("*.jsonl"):
        for line in f.read_text().splitlines():
            r = json.loads(line)
            flags[(f.stem, r["id"])] = r["corrupted"]
    chosen = sel["examples"]
    assert len(chosen) == 64 and len({(e["source"], e["id"]) for e in chosen}) == 64
    assert sum(flags[(e["source"], e["id"])] for e in chosen) / 64 <= 0.3  # pool mean is 0.5
    assert sel["cost"]["tokens"] > 0
    for name in ("config.json", "log.txt", "metrics.json"):
        assert (tmp_path / name).exists()


def test_validation_without_response_tokens_fails_before_training(tiny_model_dir, denoise_data_dir, tmp_path):
    data = tmp_path / "data"
    (data / "sources").mkdir(parents=True)
    (data / "sources" / "a.jsonl").write_text((denoise_data_dir / "sources" / "noise000.jsonl").read_text())
    # max_length 8 cuts every validation example inside its prompt: no response tokens remain
    long_prompt = {"prompt": "word " * 200, "response": "The answer is $\\boxed{1}$."}
    (data / "validation.jsonl").write_text(json.dumps(long_prompt) + "\n")
    inputs = MethodInputs(
        str(data), str(tiny_model_dir), str(tmp_path / "run"), budget=4, options={"holdout": {"max_length": 64}}
    )
    with pytest.raises(SuiteError, match="validation set"):
        run_method(inputs, "rho_loss")
    (data / "sources" / "empty.jsonl").write_text("")
    with pytest.raises(SuiteError, match="empty"):
        run_method(inputs, "rho_loss")
    assert not (tmp_path / "run" / "selection.json").exists()


def test_wrong_option_type(tiny_model_dir, denoise_data_dir, tmp_path):
    inputs = MethodInputs(
        str(denoise_data_dir), str(tiny_model_dir), str(tmp_path), budget=4, options={"holdout": {"epochs": "3"}}
    )
    with pytest.raises(SuiteError, match="methods.rho_loss.holdout.epochs"):
        run_method(inputs, "rho_loss")


@pytest.mark.slow
def test_zero3_holdout_in_one_process_selects_what_the_plain_run_selects(tiny_model_dir, denoise_data_dir, tmp_path):
    """The paper configs' hold-out model: DeepSpeed ZeRO-3 in one process (loaded partitioned, scored from its
    gathered weights) picks the same examples as plain training (each in its own process: DeepSpeed sets up a
    process group)."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    holdout = {"learning_rate": 1e-3, "epochs": 1.0, "global_batch_size": 8, "micro_batch_size": 4, "max_length": 64}
    picked = []
    for name, extra in [("plain", {}), ("z3", {"deepspeed": "config/deepspeed/zero3_cpu.json"})]:
        opts = json.dumps({"holdout": {**holdout, **extra}})
        cmd = [sys.executable, "-m", "scalebio", "select", "--method", "rho_loss", "--data", str(denoise_data_dir),
               "--model", str(tiny_model_dir), "--out", str(tmp_path / name), "--budget", "16", "--options", opts]  # fmt: skip
        env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(root), DS_ACCELERATOR="cpu")
        r = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, r.stderr[-3000:]
        picked.append(read_selection(tmp_path / name / "selection.json")["examples"])
    assert picked[0] == picked[1]
    assert not (tmp_path / "z3" / "holdout_model").exists()  # the gathered copy is removed after scoring
