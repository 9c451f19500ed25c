"""Rerun semantics: a changed setting re-runs exactly the jobs whose output it decides, and everything after them.

One small DAG (denoising pool, uniform + ScaleBiO, held-out loss) is run for real in a folder that keeps its
``.snakemake`` metadata; then each kind of change is written into the config and ``snakemake -n`` must plan
exactly the affected jobs (Snakemake's default rerun triggers: mtime, params, input, code, software-env).
"""

from __future__ import annotations

import copy

import pytest
import yaml
from test_workflow import BIN, ROOT, planned_jobs, run

CONFIG = "config/rerun.yaml"


def _config() -> dict:
    cfg = yaml.safe_load((ROOT / "config" / "ci.yaml").read_text())
    cfg["results_dir"] = "results/rerun"
    exp = cfg["experiments"]["denoise"]
    exp.update(methods=["uniform", "scalebio"], evals=["testloss"], budget=24)
    cfg["methods"] = {"scalebio": dict(cfg["methods"]["scalebio"], max_steps=2, lr_theta=0.01)}
    cfg["sft"] = dict(cfg["sft"], max_steps=2)
    cfg["eval"] = {"testloss": {"limit": 8, "batch_size": 8}}
    return cfg


def _write(folder, cfg: dict) -> None:
    (folder / CONFIG).write_text(yaml.safe_dump(cfg))


def _plan(folder) -> set[tuple[str, str]]:
    """(rule, method) of every job `snakemake -n` would run now (method "-" for jobs without one)."""
    r = run([BIN / "snakemake", "-n", "--cores", "1", "--configfile", CONFIG], cwd=folder, check=True)
    return {(j["rule"], j["wildcards"].get("method", "-")) for j in planned_jobs(r.stdout) if j["rule"] != "all"}


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    folder = tmp_path_factory.mktemp("rerun")
    (folder / "config").mkdir()
    for name in ("Snakefile", "workflow"):
        (folder / name).symlink_to(ROOT / name)
    _write(folder, _config())
    r = run([BIN / "snakemake", "--cores", "all", "--configfile", CONFIG], cwd=folder, timeout=900)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-4000:]
    return folder


REPORTS = {("report_tables", "-"), ("report_summary", "-")}


def _downstream(*methods: str, select: bool = True) -> set[tuple[str, str]]:
    rules = (["select"] if select else []) + ["sft_set", "finetune", "evaluate"]
    return {(rule, m) for m in methods for rule in rules} | REPORTS


def _change_lr_theta(cfg):
    cfg["methods"]["scalebio"]["lr_theta"] = 0.02


def _change_budget(cfg):
    cfg["experiments"]["denoise"]["budget"] = 20


def _change_sft(cfg):
    cfg["sft"]["learning_rate"] = 0.002


def _change_eval(cfg):
    cfg["eval"]["testloss"]["limit"] = 6


@pytest.mark.integration
@pytest.mark.parametrize(
    "change, expected",
    [
        (_change_lr_theta, _downstream("scalebio")),
        (_change_budget, _downstream("uniform", "scalebio")),
        (
            _change_sft,
            {("finetune", m) for m in ("uniform", "scalebio")}
            | {("evaluate", m) for m in ("uniform", "scalebio")}
            | REPORTS,
        ),  # fmt: skip
        (_change_eval, {("evaluate", m) for m in ("uniform", "scalebio")} | {("evaluate_base", "-")} | REPORTS),
    ],
    ids=["lr_theta", "budget", "sft_option", "eval_option"],
)
def test_a_changed_setting_reruns_exactly_the_jobs_it_affects(finished, change, expected):
    assert _plan(finished) == set(), "the finished DAG should have nothing to do"
    cfg = copy.deepcopy(_config())
    change(cfg)
    _write(finished, cfg)
    try:
        assert _plan(finished) == expected
    finally:
        _write(finished, _config())
