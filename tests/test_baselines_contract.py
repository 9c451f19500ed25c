"""The recipe of baselines/README.md, followed by a test: a new method is one module plus one
config line, and the workflow runs it next to the registered ones without other edits."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from scalebio.common.registry import method_module, registered
from scalebio.common.runtime import ConfigError
from scalebio.common.selection import read_selection

ROOT = Path(__file__).resolve().parents[1]

TOY_METHOD = '''
"""Toy method: weight source k proportionally to k + 1 (a stand-in for a user's new baseline)."""

import time
from dataclasses import dataclass

from scalebio.common.config import as_dict, from_dict
from scalebio.common.selection import MethodInputs, write_selection


@dataclass
class Options:
    """Options of the toy method."""

    tilt: float = 1.0
    """Exponent of the source rank in the weights."""


def select(inputs: MethodInputs):
    t0 = time.time()
    opts = from_dict(Options, inputs.options, prefix="methods.toy.")
    names = sorted(inputs.sources)
    raw = [(k + 1) ** opts.tilt for k in range(len(names))]
    weights = {n: r / sum(raw) for n, r in zip(names, raw)}
    return write_selection(
        inputs, "toy", weights=weights, config=as_dict(opts), wall_time_s=time.time() - t0, tokens=0
    )
'''


def test_registered_methods_resolve():
    for name in ("scalebio", "uniform", "less", "rho_loss", "reference", "doremi"):
        mod = method_module(name)
        assert callable(mod.select) and mod.Options is not None, name
    assert registered()["less"] == "baselines.less" and registered()["reference"] == "baselines.rho_loss"
    with pytest.raises(ConfigError, match="not registered"):
        method_module("no-such-method")


@pytest.mark.integration
def test_toy_method_runs_through_the_workflow(tiny_model_dir, tmp_path):
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "toy_method.py").write_text(textwrap.dedent(TOY_METHOD))
    cfg = yaml.safe_load((ROOT / "config" / "ci.yaml").read_text())
    cfg["results_dir"] = "results"
    # The test's own copy of the tiny model, so the workflow does not rebuild the shared asset.
    cfg["models"] = {"tiny": {"path": str(tiny_model_dir), "dtype": "float32"}}
    exp = cfg["experiments"]["denoise"]
    exp["methods"] = ["uniform", "toy"]
    exp["evals"] = []
    cfg.setdefault("methods", {})["toy"] = {"module": "toy_method", "tilt": 2.0}
    work = tmp_path / "work"
    work.mkdir()
    config_file = tmp_path / "config.yaml"
    config_file.write_text(yaml.safe_dump(cfg))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(pkg), str(ROOT), os.environ.get("PYTHONPATH", "")]))
    # the workflow's jobs run `python -m ...`: the interpreter running the tests must come first on PATH
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    targets = [f"results/denoise/tiny/{m}/s0/selection.json" for m in ("uniform", "toy")]
    cmd = [sys.executable, "-m", "snakemake", *targets, "--snakefile", str(ROOT / "Snakefile")]
    cmd += ["--directory", str(work), "--cores", "2", "--configfile", str(config_file)]  # (nargs+ option last)
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    toy = read_selection(work / targets[1])
    uniform = read_selection(work / targets[0])
    assert toy["method"] == "toy" and toy["kind"] == "weights"
    assert toy["config"] == {"tilt": 2.0}
    w = [toy["weights"][n] for n in sorted(toy["weights"])]
    assert w == sorted(w) and w[-1] == pytest.approx(9 / 14)  # 1, 4, 9 over 14
    assert toy["pool_fingerprint"] == uniform["pool_fingerprint"]
