"""The run loop end to end on the tiny model: denoising, determinism, resume after a kill, bad input, CLI.

Modules: `scalebio/trainer.py`, `scalebio/checkpoint.py` (resume), `scalebio/method.py`.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from scipy.stats import spearmanr

from scalebio.common.selection import MethodInputs, read_selection
from scalebio.trainer import ScaleBiOConfig

ROOT = Path(__file__).resolve().parents[1]
NOISE = [0.0, 0.25, 0.5, 0.75, 1.0]  # the denoise fixture's sources, sorted by name
SMALL = {"global_batch_size": 8, "micro_batch_size": 4, "max_length": 64, "lr_u": 1e-3, "lr_w": 1e-3, "progress": False}


def _select(data, model, out, **options):
    from scalebio.common.registry import run_method

    inputs = MethodInputs(data_dir=str(data), model=str(model), out_dir=str(out), budget=10, seed=0, options=options)
    return run_method(inputs, "scalebio")


def _env():
    return dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT), HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")


def _cli(*args, **kw):
    return subprocess.run([sys.executable, "-m", "scalebio", *args], env=_env(), capture_output=True, text=True, **kw)


# ---- denoising ---------------------------------------------------------------------------------------
def test_denoise_fast(tiny_model_dir, denoise_data_dir, tmp_path):
    """20 steps of global batch 16 (~15-25 s): the learned weights fall with the corruption rate.
    Observed ρ = −1.0 for seeds 0-3 (lr_u = lr_w = 1e-3, α = 100, lr_θ = 1e-2); at 16 steps the 75%
    and 100% sources are still tied in some seeds. ρ = −0.9 (one adjacent swap) is allowed."""
    opts = dict(SMALL, global_batch_size=16, micro_batch_size=16, max_steps=20)
    sel = read_selection(_select(denoise_data_dir, tiny_model_dir, tmp_path, **opts))
    p = [sel["weights"][k] for k in sorted(sel["weights"])]
    rho = spearmanr(p, NOISE)[0]
    assert rho <= -0.9 + 1e-9, (p, rho)
    assert sel["steps"] == 20 and set(sel["theta"]) == set(sel["weights"])


@pytest.mark.slow
@pytest.mark.parametrize("lisa", [False, True])
def test_denoise_seeds(tiny_model_dir, denoise_data_dir, tmp_path, lisa):
    """60 steps (3 epochs) for seeds 0, 1, 2, with and without LISA (2 of 4 blocks, interval 10): the
    seed-averaged weights fall with corruption (ρ ≤ −0.9). Single longer runs are not asserted: as with
    the official code (METHOD.md §17) the per-seed spread is large — seed 2 reached ρ = −0.6
    (full) and −0.3 (LISA) after a loss spike around step 10 re-ordered the weights."""
    import numpy as np

    opts = dict(SMALL, global_batch_size=16, micro_batch_size=16, max_steps=60)
    if lisa:
        opts.update(lisa={"n_layers": 2, "interval": 10})
    runs = []
    for seed in (0, 1, 2):
        sel = read_selection(_select(denoise_data_dir, tiny_model_dir, tmp_path / str(seed), **opts, seed=seed))
        runs.append([sel["weights"][k] for k in sorted(sel["weights"])])
    mean = np.mean(runs, axis=0)
    assert spearmanr(mean, NOISE)[0] <= -0.9 + 1e-9, (mean, [spearmanr(r, NOISE)[0] for r in runs])


# ---- determinism and outputs -------------------------------------------------------------------------
def test_same_seed_same_selection(tiny_model_dir, denoise_data_dir, tmp_path):
    a = read_selection(_select(denoise_data_dir, tiny_model_dir, tmp_path / "a", **SMALL, max_steps=3))
    b = read_selection(_select(denoise_data_dir, tiny_model_dir, tmp_path / "b", **SMALL, max_steps=3))
    c = read_selection(_select(denoise_data_dir, tiny_model_dir, tmp_path / "c", **SMALL, max_steps=3, seed=1))
    assert a["weights"] == b["weights"] and a["theta"] == b["theta"]
    assert a["weights"] != c["weights"]  # the seed matters (batches), so the check can fail
    rows = [json.loads(x) for x in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3]
    keys = {"weights", "L1(w)", "L2(w)", "L2(u)", "gap", "alpha", "lr_u", "lr_w", "lr_theta", "grad_norm_u",
            "grad_norm_w", "grad_norm_theta", "clipped_u", "clipped_w", "clip_frac_u", "clip_frac_w",
            "tokens_per_s"}  # fmt: skip
    assert keys <= set(rows[0])
    assert rows[-1]["weights"] == a["weights"]
    for m in ("u", "w"):  # the running clip fraction is the mean of the per-step flags, and ends in selection.json
        assert [r[f"clip_frac_{m}"] for r in rows] == [sum(r[f"clipped_{m}"] for r in rows[:i]) / i for i in (1, 2, 3)]
        assert a["clip_fraction"][m] == rows[-1][f"clip_frac_{m}"]
    cfg = json.loads((tmp_path / "a" / "config.json").read_text())
    assert cfg["max_steps"] == 3 and cfg["alpha"] == 100.0
    assert (tmp_path / "a" / "log.txt").read_text().count("final weights") == 1
    assert not (tmp_path / "a" / "checkpoints").exists()  # removed after success (keep_checkpoints=false)


@pytest.mark.parametrize("max_grad_norm, fraction", [(1e-9, 1.0), (1e9, 0.0)])
def test_mostly_clipped_run_warns_once(tiny_model_dir, denoise_data_dir, tmp_path, max_grad_norm, fraction):
    sel = read_selection(
        _select(denoise_data_dir, tiny_model_dir, tmp_path, **SMALL, max_steps=4, max_grad_norm=max_grad_norm)
    )
    assert sel["clip_fraction"] == {"u": fraction, "w": fraction}
    assert (tmp_path / "log.txt").read_text().count("gradient clipping at alpha*max_grad_norm was active") == int(
        fraction
    )


@pytest.mark.parametrize("path", sorted((ROOT / "config" / "paper").glob("*.yaml")), ids=lambda p: p.stem)
def test_paper_configs_select_the_official_span_and_validation_loader(path):
    import yaml

    opts = yaml.safe_load(path.read_text())["methods"]["scalebio"]
    assert (opts["loss_span"], opts["val_sampling"]) == ("assistant_turn", "cycle")
    assert ScaleBiOConfig().loss_span == "response"  # the miniatures' default (README, Deviations)


def test_cycled_validation_visits_every_example_once_per_pass():
    """val_sampling: cycle (the official loader): consecutive micro-batches read shuffled passes; a micro-batch
    that runs past the end of a pass continues into the next (10 examples, micro-batches of 3, 2 per step)."""
    from scalebio.trainer import CycleSampler

    sampler = CycleSampler(n=10, micro=3, n_micro_global=2, seed=0, stream=2)
    flat = [i for step in range(5) for mb in sampler.global_batch(step) for i in mb]  # 30 positions = 3 passes
    passes = [flat[k : k + 10] for k in (0, 10, 20)]
    assert all(sorted(p) == list(range(10)) for p in passes)
    assert passes[0] != passes[1] != passes[2]  # reshuffled every pass
    for step in range(5):  # two processes split a step's micro-batches, a second sampler agrees (resume)
        assert sampler.indices(step, 0, 2) + sampler.indices(step, 1, 2) == sampler.global_batch(step)
        assert CycleSampler(10, 3, 2, seed=0, stream=2).indices(step, 0, 1) == sampler.global_batch(step)


def test_val_sampling_cycle_runs_and_is_recorded(tiny_model_dir, denoise_data_dir, tmp_path):
    sel = read_selection(
        _select(denoise_data_dir, tiny_model_dir, tmp_path, **SMALL, max_steps=2, val_sampling="cycle")
    )
    assert sel["config"]["val_sampling"] == "cycle"
    assert json.loads((tmp_path / "config.json").read_text())["val_sampling"] == "cycle"


def _write_run_yaml(path: Path, data, model, out, **options) -> Path:
    import yaml

    path.write_text(yaml.safe_dump({"data": str(data), "model": str(model), "out": str(out), "options": options}))
    return path


def test_resume_after_kill_is_bit_identical(tiny_model_dir, denoise_data_dir, tmp_path):
    import torch

    opts = dict(SMALL, max_steps=8, checkpoint_every=2)
    cfg = _write_run_yaml(tmp_path / "run.yaml", denoise_data_dir, tiny_model_dir, tmp_path / "run", **opts)
    proc = subprocess.Popen([sys.executable, "-m", "scalebio", "reweight", "--config", str(cfg)], env=_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    ckpt = tmp_path / "run" / "checkpoints" / "step-4" / "state.pt"
    deadline = time.time() + 300
    while not ckpt.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    assert not (tmp_path / "run" / "selection.json").exists()
    r = _cli("reweight", "--config", str(cfg))
    assert r.returncode == 0, r.stderr
    assert "resumed from" in (tmp_path / "run" / "log.txt").read_text()
    torch.set_num_threads(1)  # the same thread count as the subprocesses (OMP_NUM_THREADS=1)
    _select(denoise_data_dir, tiny_model_dir, tmp_path / "ref", **opts)  # uninterrupted reference
    a = read_selection(tmp_path / "run" / "selection.json")
    b = read_selection(tmp_path / "ref" / "selection.json")
    assert a["theta"] == b["theta"] and a["weights"] == b["weights"]

    def strip(path):  # everything but the wall-clock rate
        return [{k: v for k, v in json.loads(x).items() if k != "tokens_per_s"} for x in path.read_text().splitlines()]

    assert strip(tmp_path / "run" / "metrics.jsonl") == strip(tmp_path / "ref" / "metrics.jsonl")


# ---- bad input -----------------------------------------------------------------------------------------
def _copy_data(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


@pytest.mark.parametrize("case", ["empty_source", "no_response_tokens", "missing_validation"])
def test_bad_data_is_a_clear_error(tiny_model_dir, denoise_data_dir, tmp_path, case):
    from scalebio.common.runtime import DataError

    data = _copy_data(denoise_data_dir, tmp_path / "data")
    if case == "empty_source":
        (data / "sources" / "noise050.jsonl").write_text("")
        match = "source 'noise050'.*empty"
    elif case == "no_response_tokens":
        rows = [{"prompt": "word " * 300, "response": "ok"} for _ in range(4)]
        (data / "sources" / "long.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        match = "source 'long'.*no example has response tokens within max_length=64"
    else:
        (data / "validation.jsonl").unlink()
        match = "validation set .*validation.jsonl' does not exist"
    with pytest.raises(DataError, match=match):
        _select(data, tiny_model_dir, tmp_path / "out", **SMALL, max_steps=2)
    assert not (tmp_path / "out" / "selection.json").exists()


def test_tokenizer_model_mismatch(tiny_model_dir, denoise_data_dir, tmp_path):
    from transformers import LlamaConfig, LlamaForCausalLM

    from scalebio.common.runtime import AssetError

    model = tmp_path / "small-vocab"
    LlamaForCausalLM(LlamaConfig(vocab_size=100, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                                 num_attention_heads=2)).save_pretrained(model)  # fmt: skip
    for f in Path(tiny_model_dir).iterdir():  # the tiny model's tokenizer (4096 tokens) and chat template
        if f.name not in ("config.json", "model.safetensors", "generation_config.json"):
            shutil.copy(f, model / f.name)
    with pytest.raises(AssetError, match="tokenizer has .* tokens but the model's embedding has 100 rows"):
        _select(denoise_data_dir, model, tmp_path / "out", **SMALL, max_steps=2)
    assert not (tmp_path / "out" / "selection.json").exists()


def test_nan_loss_writes_no_selection(tiny_model_dir, denoise_data_dir, tmp_path):
    import torch

    from scalebio.common.modeling import load_model
    from scalebio.minimax import DivergenceError

    model = load_model(tiny_model_dir, "float32", "cpu")
    with torch.no_grad():
        model.model.layers[0].mlp.down_proj.weight.fill_(float("inf"))
    model.save_pretrained(tmp_path / "broken")
    for f in Path(tiny_model_dir).iterdir():
        if not (tmp_path / "broken" / f.name).exists():
            shutil.copy(f, tmp_path / "broken" / f.name)
    with pytest.raises(DivergenceError, match="step 0: L2\\(u\\) is nan"):
        _select(denoise_data_dir, tmp_path / "broken", tmp_path / "out", **SMALL, max_steps=2)
    assert not (tmp_path / "out" / "selection.json").exists()


def test_bad_options_name_the_key(tiny_model_dir, denoise_data_dir, tmp_path):
    from scalebio.common.runtime import ConfigError

    with pytest.raises(ConfigError, match="methods.scalebio.lr_thta"):
        _select(denoise_data_dir, tiny_model_dir, tmp_path, lr_thta=1.0)
    with pytest.raises(ConfigError, match="global_batch_size=10 is not a multiple of micro_batch_size=4"):
        _select(denoise_data_dir, tiny_model_dir, tmp_path, global_batch_size=10, micro_batch_size=4)
    with pytest.raises(ConfigError, match="lisa.n_layers=9"):
        _select(denoise_data_dir, tiny_model_dir, tmp_path / "o", **SMALL, max_steps=1, lisa={"n_layers": 9})
    assert not (tmp_path / "o" / "selection.json").exists()


# ---- CLI ---------------------------------------------------------------------------------------------
def test_cli_golden_run(tiny_model_dir, denoise_data_dir, tmp_path):
    cfg = _write_run_yaml(tmp_path / "run.yaml", denoise_data_dir, tiny_model_dir, tmp_path / "out", **SMALL)
    r = _cli("reweight", "--config", str(cfg), "max_steps=2", "lisa.n_layers=2", "seed=5")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().endswith("selection.json")
    sel = read_selection(tmp_path / "out" / "selection.json")
    assert sel["method"] == "scalebio" and sel["kind"] == "weights" and sel["seed"] == 5
    assert sel["config"]["lisa"]["n_layers"] == 2 and sel["config"]["max_steps"] == 2
    assert abs(sum(sel["weights"].values()) - 1) < 1e-6 and sorted(sel["weights"]) == sorted(sel["sources"])
    assert all(sel["sources"][k]["n_examples"] == 64 for k in sel["sources"])
    rows = (tmp_path / "out" / "metrics.jsonl").read_text().splitlines()
    assert len(rows) == 2 and "lisa_u" in json.loads(rows[0])


def test_cli_help_dry_run_and_errors(tiny_model_dir, denoise_data_dir, tmp_path, capsys):
    """In-process (no interpreter start-up): --help lists every option with its default, --dry-run
    resolves overrides without running, an unknown option is one clear line and exit code 2."""
    from scalebio.cli import main
    from scalebio.common.config import describe

    cfg = _write_run_yaml(tmp_path / "run.yaml", denoise_data_dir, tiny_model_dir, tmp_path / "out", **SMALL)
    with pytest.raises(SystemExit) as e:
        main(["reweight", "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for name, _, default in describe(ScaleBiOConfig):
        assert f"{name} (default {default!r})" in out
    main(["reweight", "--config", str(cfg), "--dry-run", "lr_theta=0.5", "out=elsewhere"])
    resolved = json.loads(capsys.readouterr().out)
    assert resolved["options"]["lr_theta"] == 0.5 and resolved["out"] == "elsewhere"
    assert resolved["options"]["max_length"] == 64  # from the file
    assert not (tmp_path / "out").exists()
    with pytest.raises(SystemExit) as e:
        main(["reweight", "--config", str(cfg), "nosuch=1"])
    assert e.value.code == 2 and "options.nosuch" in capsys.readouterr().err


# ---- the movement budget (METHOD.md §17) -----------------------------------------------------------------
def test_movement_summary_known_answers():
    """Two sources, 10 steps: p moves 0.5 → 0.6 by step 9 and stays; η_θ = 0.1 then 0.001 after step 5."""
    import math

    from scalebio.weights import movement_summary

    traj = [[0.5 + 0.1 * min(t, 9) / 9, 0.5 - 0.1 * min(t, 9) / 9] for t in range(1, 11)]
    lrs = [0.1] * 5 + [0.001] * 5
    m = movement_summary(traj, lrs, warmup=0)
    assert m["sum_lr_theta"] == pytest.approx(0.505)
    assert m["max_log_ratio"] == pytest.approx(math.log(0.6 / 0.4))
    assert m["final_window_steps"] == 1  # 10 % of 10 steps
    assert m["final_window_dp"] == pytest.approx(0.0)  # p did not change between step 9 and 10
    assert m["final_window_sum_lr_theta"] == pytest.approx(0.001)
    assert m["lr_theta_peak"] == 0.1 and m["low_lr_step"] == 6
    short = movement_summary([[0.7, 0.3]], [0.5])  # one step: the window reaches back to the uniform start
    assert short["final_window_dp"] == pytest.approx(0.2)


def test_theta_movement_sets_the_budget_the_run_spends(tiny_model_dir, denoise_data_dir, tmp_path):
    """theta_movement = 0.6 over 8 steps of warm-up + cosine: the logged η_θ sum to 0.6, selection.json records
    it with the final log-ratio and clip fractions; twice the budget moves the weights further."""
    import math

    runs = {}
    for budget in (0.6, 1.2):
        out = tmp_path / str(budget)
        sel = read_selection(
            _select(denoise_data_dir, tiny_model_dir, out, **SMALL, max_steps=8, theta_movement=budget)
        )
        rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
        assert sum(r["lr_theta"] for r in rows) == pytest.approx(budget, rel=1e-9)
        assert rows[-1]["sum_lr_theta"] == pytest.approx(budget, rel=1e-9)
        mv = sel["movement"]
        assert mv["sum_lr_theta"] == pytest.approx(budget, rel=1e-9)
        p = list(sel["weights"].values())
        assert mv["max_log_ratio"] == pytest.approx(math.log(max(p) / min(p)))
        assert set(sel["clip_fraction"]) == {"u", "w"}
        runs[budget] = mv["max_log_ratio"]
    assert runs[1.2] > runs[0.6]


@pytest.mark.parametrize(
    "options, message",
    [
        ({"lr_theta": 0.01, "theta_movement": 1.0}, "both set θ's learning rate; set one of them"),
        ({"lr_theta": float("inf")}, "option 'lr_theta' must be a finite number > 0, got inf"),
        ({"theta_movement": -1.0}, "option 'theta_movement' must be a finite number > 0, got -1.0"),
    ],
)
def test_theta_learning_rate_options_are_checked(options, message):
    from scalebio.common.config import from_dict
    from scalebio.common.runtime import ConfigError

    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        from_dict(ScaleBiOConfig, options)
