"""Launch by resources: the one launch decision (scalebio/pipeline/launch.py), its errors, and the ci DAG on
2 gloo processes giving what one process gives (ScaleBiO weights, ZeRO SFT loss curve, math answers)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from scalebio.common.runtime import ConfigError
from scalebio.pipeline.launch import ASK_THE_METHOD, MULTI_PROCESS, plan

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
TORCHRUN = "python -m torch.distributed.run --standalone --nproc_per_node={}"


def test_one_process_per_gpu_for_multi_process_stages():
    for stage, variant in [("select", "scalebio"), ("finetune", "less"), ("evaluate", "math"), ("evaluate", "lmeval")]:
        launch = plan(stage, variant, {"gpus_per_job": 8})
        assert (launch.command, launch.processes, launch.gpus) == (TORCHRUN.format(8), 8, 8), (stage, variant)
    assert plan("select", "scalebio", {"gpus_per_job": 4}).command == TORCHRUN.format(4)  # one number to change


def test_single_process_stages_ask_for_one_gpu():
    for stage, variant in [
        ("select", "less"),
        ("select", "uniform"),
        ("evaluate", "testloss"),
        ("evaluate", "mtbench"),
    ]:
        launch = plan(stage, variant, {"gpus_per_job": 8}, backend="hf")
        assert (launch.command, launch.processes, launch.gpus) == ("python", 1, 1), (stage, variant)


def test_cpu_processes_and_launcher_choice():
    assert plan("select", "scalebio", {}).command == "python"  # default: one plain process
    assert plan("select", "scalebio", {"cpu_processes": 2}) == plan("select", "scalebio", {"cpu_processes": 2})
    two = plan("finetune", "uniform", {"cpu_processes": 2})
    assert (two.command, two.processes, two.gpus) == (TORCHRUN.format(2), 2, 0)
    smoke = plan("select", "scalebio", {"gpus_per_job": 1, "launcher": "torchrun"})
    assert (smoke.command, smoke.processes) == (TORCHRUN.format(1), 1)  # the real launcher with 1 process
    assert plan("select", "scalebio", {"gpus_per_job": 1}).command == "python"


def test_vllm_runs_one_process_over_all_gpus():
    launch = plan("evaluate", "math", {"gpus_per_job": 4}, backend="vllm")
    assert (launch.command, launch.processes, launch.gpus, launch.backend) == ("python", 1, 4, "vllm")
    with pytest.raises(ConfigError, match="gpus_per_job"):
        plan("evaluate", "math", {"gpus_per_job": 0}, backend="vllm")
    assert plan("evaluate", "math", {"gpus_per_job": 0}, backend="auto").backend == "hf"  # no GPU: HF fallback


def test_fsdp_in_one_process_on_a_multi_gpu_job_is_an_error():
    with pytest.raises(ConfigError, match="fsdp"):
        plan("select", "scalebio", {"gpus_per_job": 8, "launcher": "python"}, distributed="fsdp")
    assert plan("select", "scalebio", {"gpus_per_job": 8}, distributed="fsdp").processes == 8
    with pytest.raises(ConfigError, match="unknown option"):
        plan("select", "scalebio", {"gpus": 8})


def test_fsdp_without_launcher_on_a_multi_gpu_machine_fails_at_run_time(monkeypatch):
    """Outside the workflow (a plain `python -m scalebio` on an 8-GPU node) FSDP must not fall back silently."""
    import torch

    from scalebio import distributed

    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 8)
    with pytest.raises(ConfigError, match="torchrun --nproc_per_node 8"):
        distributed.init("fsdp", torch.device("cuda"))
    assert distributed.init("ddp", torch.device("cuda")).world_size == 1  # DDP on one process is plain training


def test_multi_process_methods_are_the_ones_that_run_under_a_process_group():
    """Each method declares whether it launches multi-process (its INFO); the launch table names none. ScaleBiO is the
    only one that does, and its trainer is the one that joins the launcher's process group (scalebio.distributed.init);
    the baselines never touch torch.distributed."""
    from scalebio.common.registry import method_info, registered

    assert MULTI_PROCESS["select"] == ASK_THE_METHOD
    assert {n for n in registered() if method_info(n).multi_process} == {"scalebio"}
    for module in ("uniform", "less", "rho_loss", "doremi", "_common"):
        assert "torch.distributed" not in (ROOT / "baselines" / f"{module}.py").read_text()


def test_a_scalebio_variant_launches_like_scalebio():
    """A variant reached through ``methods.<m>.module`` (scalebio_lr10) is multi-process as its module declares."""
    variant = plan("select", "scalebio_lr10", {"gpus_per_job": 8}, module="scalebio.method")
    assert (variant.command, variant.processes, variant.gpus) == (TORCHRUN.format(8), 8, 8)


def test_scalebio_variant_plans_a_multi_process_launch_in_a_paper_config_dry_run(tmp_path):
    """scalebio_lr10 (``module: scalebio.method``) added to a paper config: its select job starts one process per GPU
    under torchrun and asks SLURM for all of them (it ran as one process on an 8-GPU job before)."""
    cfg = yaml.safe_load((ROOT / "config" / "paper" / "math_llama3_8b.yaml").read_text())
    exp = next(iter(cfg["experiments"]))
    cfg["methods"]["scalebio_lr10"] = dict(cfg["methods"]["scalebio"], module="scalebio.method")
    cfg["experiments"][exp]["methods"].append("scalebio_lr10")
    gpus = cfg["resources"]["gpus_per_job"]
    path = tmp_path / "lr10.yaml"
    path.write_text(yaml.safe_dump(cfg))
    args = [BIN / "snakemake", "-n", "-p", "--forceall", "--cores", "1", "--configfile", path]
    r = _run([*args, "--profile", "workflow/profiles/slurm"], cwd=ROOT, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    shells = [ln for ln in r.stdout.splitlines() if "-m scalebio select --method scalebio_lr10" in ln]
    assert shells and all(TORCHRUN.format(gpus) in ln for ln in shells), shells[:1]


def _run(args, cwd, timeout=1200):
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TRANSFORMERS_OFFLINE="1", DS_ACCELERATOR="cpu")
    env["PATH"] = f"{BIN}:{env['PATH']}"
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)


def test_python_launcher_with_fsdp_on_8_gpus_is_rejected_when_the_dag_is_built(tmp_path):
    cfg = yaml.safe_load((ROOT / "config" / "paper" / "math_llama3_8b.yaml").read_text())
    cfg["resources"]["launcher"] = "python"
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(cfg))
    r = _run([BIN / "snakemake", "-n", "--cores", "1", "--configfile", path], cwd=ROOT, timeout=120)
    assert r.returncode != 0 and "distributed is fsdp" in r.stdout + r.stderr


@pytest.mark.slow
def test_ci_2proc_dag_matches_one_process(tmp_path):
    """config/ci_2proc.yaml through Snakemake (2 gloo processes per job, launched by the rules) vs one process."""
    for name in ("Snakefile", "workflow", "config"):
        (tmp_path / name).symlink_to(ROOT / name)
    rel = Path("results", "ci_2proc", "denoise", "tiny", "scalebio", "s0")
    base_math = rel.parent.parent / "base" / "eval" / "math"  # the random-initialised base model writes non-empty text
    targets = [rel / "selection.json", rel / "model", base_math / "summary.json"]
    res, run = tmp_path / rel.parent.parent.parent, tmp_path / rel
    r = _run(
        [BIN / "snakemake", "--cores", "2", "--configfile", "config/ci_2proc.yaml", "-p", *map(str, targets)],
        cwd=tmp_path,
    )
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-4000:]
    assert (r.stdout + r.stderr).count("--nproc_per_node=2") >= 3, r.stderr  # select, finetune, evaluate: 2 processes

    import torch

    from eval.math import main as math_main
    from scalebio.common.registry import run_method
    from scalebio.common.selection import MethodInputs, read_selection
    from scalebio.sft.finetune import LOG_FILE, finetune

    cfg = yaml.safe_load((ROOT / "config" / "ci_2proc.yaml").read_text())
    torch.set_num_threads(1)
    model = tmp_path / "resources" / "models" / "tiny"
    opts = cfg["methods"]["scalebio"]
    inputs = MethodInputs(
        data_dir=str(res / "data"), model=str(model), out_dir=str(tmp_path / "one"), budget=24, options=opts
    )
    one = read_selection(run_method(inputs, "scalebio"))
    two = read_selection(run / "selection.json")
    assert one["weights"] != {k: 1 / 3 for k in one["weights"]}  # the weights moved
    assert max(abs(one["weights"][k] - two["weights"][k]) for k in one["weights"]) <= 1e-5, (one, two)

    plain = {k: v for k, v in cfg["sft"].items() if k != "deepspeed"}
    history = finetune(run / "sft_data" / "train.jsonl", model, tmp_path / "plain", plain, seed=0)
    plain_curve = [h["loss"] for h in history if "loss" in h]
    zero_curve = [json.loads(line)["loss"] for line in (run / "model" / LOG_FILE).read_text().splitlines()]
    assert len(zero_curve) == len(plain_curve) == 4
    assert max(abs(a - b) for a, b in zip(zero_curve, plain_curve)) <= 1e-4, (zero_curve, plain_curve)

    out = tmp_path / "math1"
    math_main(["--model", str(model), "--out", str(out), "--data", str(res / "data"),
               "--options", json.dumps(cfg["eval"]["math"])])  # fmt: skip
    texts = [[json.loads(line)["output"] for line in (d / "predictions.jsonl").read_text().splitlines()]
             for d in (out, tmp_path / base_math)]  # fmt: skip
    assert texts[0] == texts[1] and any(texts[0]), texts  # 2 ranks' shards gathered in order


class _Resources(dict):
    """Snakemake's job resources as the SLURM plugin reads them (``get`` and attribute access)."""

    __getattr__ = dict.__getitem__


def test_every_gpu_job_of_the_slurm_profile_asks_for_one_node():
    """The profile's default resources reach the plugin's sbatch line as ``--nodes=1`` for an 8-GPU job: the launch
    is single-node torchrun, so SLURM must not split the GPUs over nodes."""
    from types import SimpleNamespace

    from snakemake_executor_plugin_slurm.submit_string import get_submit_command

    profile = yaml.safe_load((ROOT / "workflow" / "profiles" / "slurm" / "config.yaml").read_text())
    resources = _Resources(profile["default-resources"], gpu=8)
    params = dict(run_uuid="u", slurm_logfile="log", comment_str="select", account="", partition="-p gpu", workdir="")
    call = get_submit_command(SimpleNamespace(resources=resources, threads=1, workdir=""), params)
    assert " --nodes=1" in call, call
    assert all("nodes" not in r for r in profile.get("set-resources", {}).values())  # no rule overrides it
