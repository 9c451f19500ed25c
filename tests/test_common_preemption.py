"""SIGTERM during a job (scalebio/common/preemption.py): the ScaleBiO run and the SFT run save a checkpoint, stop
with ``Preempted`` (nothing written as done), and the rerun continues from the checkpoint to the same result.

Modules: `scalebio/common/preemption.py`, `scalebio/callbacks.py` (Checkpointer), `scalebio/common/training.py`,
`scalebio/sft/finetune.py`.
"""

from __future__ import annotations

import json
import os
import signal

import pytest

from scalebio.common.preemption import Preempted, PreemptionFlag
from scalebio.common.selection import MethodInputs, read_selection

SMALL = {"global_batch_size": 8, "micro_batch_size": 4, "max_length": 64, "lr_u": 1e-3, "lr_w": 1e-3, "progress": False,
         "max_steps": 6, "checkpoint_every": 0}  # fmt: skip
"""No periodic checkpoints: the one the rerun continues from is the SIGTERM's."""


def test_the_flag_is_set_by_sigterm_and_the_old_handler_comes_back():
    before = signal.getsignal(signal.SIGTERM)
    with PreemptionFlag() as flag:
        assert not flag.requested and not flag.agreed()
        os.kill(os.getpid(), signal.SIGTERM)
        assert flag.requested and flag.agreed()  # one process: agreed() is the flag itself
    assert signal.getsignal(signal.SIGTERM) == before


def _scalebio(data, model, out):
    from scalebio.common.registry import run_method

    inputs = MethodInputs(data_dir=str(data), model=str(model), out_dir=str(out), budget=10, seed=0, options=SMALL)
    return read_selection(run_method(inputs, "scalebio"))


def test_sigterm_during_scalebio_saves_and_the_rerun_continues(tiny_model_dir, denoise_data_dir, tmp_path, monkeypatch):
    from scalebio.trainer import ScaleBiORecipe

    reference = _scalebio(denoise_data_dir, tiny_model_dir, tmp_path / "whole")
    step = ScaleBiORecipe._step

    def step_then_term(self, i):
        row = step(self, i)
        if i == 2:  # the signal arrives during the third step
            os.kill(os.getpid(), signal.SIGTERM)
        return row

    out = tmp_path / "run"
    monkeypatch.setattr(ScaleBiORecipe, "_step", step_then_term)
    with pytest.raises(Preempted, match="after step 3"):
        _scalebio(denoise_data_dir, tiny_model_dir, out)
    monkeypatch.undo()
    assert not (out / "selection.json").exists()  # nothing the workflow would take as done
    assert (out / "checkpoints" / "step-3" / "state.pt").exists()
    again = _scalebio(denoise_data_dir, tiny_model_dir, out)
    assert "resumed from" in (out / "log.txt").read_text()
    assert again["theta"] == reference["theta"] and again["weights"] == reference["weights"]


def test_sigterm_during_sft_saves_and_the_rerun_continues(tiny_model_dir, denoise_data_dir, tmp_path):
    from transformers import TrainerCallback

    from scalebio.common.selection import write_selection
    from scalebio.sft.finetune import LOG_FILE, finetune
    from scalebio.sft.mixture import build_sft_set

    inputs = MethodInputs(data_dir=str(denoise_data_dir), model="-", out_dir=str(tmp_path / "sel"), budget=48, seed=0)
    sel = write_selection(inputs, "uniform", weights={n: 0.2 for n in inputs.sources}, wall_time_s=0, tokens=0)
    build_sft_set(sel, denoise_data_dir, tmp_path / "data", seed=0)
    train = tmp_path / "data" / "train.jsonl"
    opts = {"global_batch_size": 8, "micro_batch_size": 4, "max_length": 64, "learning_rate": 1e-3,
            "warmup_ratio": 0.0, "max_steps": 6}  # fmt: skip
    finetune(train, tiny_model_dir, tmp_path / "whole", opts, seed=0)

    class Term(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            if state.global_step == 3:
                os.kill(os.getpid(), signal.SIGTERM)

    out = tmp_path / "model"
    with pytest.raises(Preempted, match="SIGTERM"):
        finetune(train, tiny_model_dir, out, opts, seed=0, callbacks=[Term()])
    assert not out.exists()
    assert (tmp_path / "model.work" / "checkpoint-3").is_dir()  # saved although save_steps is 0
    finetune(train, tiny_model_dir, out, opts, seed=0)
    assert json.loads((out / "metrics.json").read_text())["resumed"] is True
    curves = [
        [json.loads(r)["loss"] for r in (m / LOG_FILE).read_text().splitlines()] for m in (out, tmp_path / "whole")
    ]
    assert len(curves[0]) == 6 and max(abs(a - b) for a, b in zip(*curves)) < 1e-4, curves
