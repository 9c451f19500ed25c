"""The run loop's step-end callbacks one by one, on a stand-in recipe (the whole loop: test_scalebio_trainer.py)."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from types import SimpleNamespace

from scalebio import callbacks
from scalebio.callbacks import Checkpointer, ClipMonitor, ConsoleLog, MetricsFile, ProgressBar, default_callbacks


def _row(step: int, clip: float = 0.0) -> dict:
    return {"step": step + 1, "weights": {"a": 0.5, "b": 0.5}, "L1(w)": 1.0, "L2(w)": 1.0, "L2(u)": 1.0, "gap": 0.0,
            "clip_frac_u": clip, "clip_frac_w": clip}  # fmt: skip


def _recipe(tmp_path: Path, total: int = 40) -> SimpleNamespace:
    return SimpleNamespace(run_dir=tmp_path, total=total, start=0)


def test_the_order_is_the_step_end_hooks_and_only_the_checkpoint_runs_on_every_process():
    names = [type(c).__name__ for c in default_callbacks(True, True, 50)]
    assert names == ["MetricsFile", "ConsoleLog", "ClipMonitor", "ProgressBar", "Checkpointer"]
    assert [type(c).__name__ for c in default_callbacks(False, True, 50)] == ["Checkpointer"]
    assert "ProgressBar" not in [type(c).__name__ for c in default_callbacks(True, False, 50)]


def test_metrics_file_appends_one_flushed_line_per_step(tmp_path):
    cb, recipe = MetricsFile(), _recipe(tmp_path)
    cb.pre_train(recipe)
    for step in range(3):
        cb.post_step(recipe, step, _row(step))
        assert len((tmp_path / "metrics.jsonl").read_text().splitlines()) == step + 1  # flushed at once
    cb.close()
    assert [json.loads(ln)["step"] for ln in (tmp_path / "metrics.jsonl").read_text().splitlines()] == [1, 2, 3]


def test_console_log_every_ten_steps_and_at_the_end(tmp_path, caplog):
    recipe = _recipe(tmp_path, total=23)
    with caplog.at_level(logging.INFO, logger=callbacks.__name__):
        for step in range(23):
            ConsoleLog().post_step(recipe, step, _row(step))
    assert [r.getMessage().split()[1] for r in caplog.records] == ["10/23", "20/23", "23/23"]


def test_clip_monitor_warns_once_and_not_in_the_first_quarter(tmp_path, caplog):
    cb, recipe = ClipMonitor(), _recipe(tmp_path, total=40)
    with caplog.at_level(logging.WARNING, logger=callbacks.__name__):
        for step in range(40):
            cb.post_step(recipe, step, _row(step, clip=1.0))
    assert len(caplog.records) == 1 and "of the 10 steps so far" in caplog.records[0].getMessage()
    quiet = ClipMonitor()
    for step in range(40):
        quiet.post_step(recipe, step, _row(step, clip=0.5))  # half the steps is not "most"
    assert not quiet.warned


def test_checkpointer_saves_every_n_steps_but_not_after_the_last(tmp_path, monkeypatch):
    saved = []
    monkeypatch.setattr(callbacks, "save_checkpoint", lambda run_dir, step, *a: saved.append(step))
    recipe = _recipe(tmp_path, total=20)
    recipe.mm = recipe.dist = recipe.cfg_hash = recipe.tokens_total = recipe.clipped = None
    recipe.average = SimpleNamespace(state_dict=lambda: None)
    for every, expected in ((5, [5, 10, 15]), (0, []), (20, [])):
        saved.clear()
        for step in range(20):
            Checkpointer(every).post_step(recipe, step, _row(step))
        assert saved == expected, every


def test_progress_bar_starts_where_a_resumed_run_left_off(tmp_path):
    cb, recipe = ProgressBar(), _recipe(tmp_path, total=10)
    recipe.start = 4
    cb.pre_train(recipe)
    cb.post_step(recipe, 4, _row(4))
    assert cb.bar.n == 5 and cb.bar.total == 10
    cb.close()
