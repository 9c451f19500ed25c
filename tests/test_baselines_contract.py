"""The recipe of baselines/README.md, followed by tests: a new method is its module, its entry point and its config
block, and the workflow — selection, SFT, evaluation, report — runs it next to the registered ones without other
edits (the slow test counts the files it took, in a temporary copy of the repository).

Modules: `scalebio/common/registry.py`, `baselines/uniform.py`.
"""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import pytest
import yaml

from scalebio.common.registry import method_module, registered
from scalebio.common.runtime import ConfigError
from scalebio.common.selection import read_selection

ROOT = Path(__file__).resolve().parents[1]

TOY_METHOD = '''
"""Toy method: weight source k proportionally to (k + 1) ** tilt (a stand-in for a user's new baseline)."""

import time
from dataclasses import dataclass

from scalebio.common.config import as_dict
from scalebio.common.registry import MethodInfo
from scalebio.common.selection import MethodInputs, write_selection

INFO = MethodInfo(name="toy", display="Toy", role="baseline", order=45, colour="#17becf")


@dataclass
class Options:
    """Options of the toy method."""

    tilt: float = 1.0
    """Exponent of the source rank in the weights."""


def select(inputs: MethodInputs, opts: Options):
    t0 = time.time()
    names = sorted(inputs.sources)
    raw = [(k + 1) ** opts.tilt for k in range(len(names))]
    weights = {n: r / sum(raw) for n, r in zip(names, raw)}
    return write_selection(
        inputs, INFO.name, weights=weights, config=as_dict(opts), wall_time_s=time.time() - t0, tokens=0
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
    assert toy["method"] == "toy" and toy["kind"] == "weights"  # INFO.name: the module's own name
    assert toy["config"] == {"tilt": 2.0}
    w = [toy["weights"][n] for n in sorted(toy["weights"])]
    assert w == sorted(w) and w[-1] == pytest.approx(9 / 14)  # 1, 4, 9 over 14
    assert toy["pool_fingerprint"] == uniform["pool_fingerprint"]


def _copy_repository(dest: Path) -> None:
    """The repository's tracked and untracked-but-not-ignored files (no results, caches or assets)."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True, text=True,
                           check=True).stdout.split()  # fmt: skip
    for f in files:
        if f.startswith("results/") or not (ROOT / f).is_file():
            continue
        (dest / f).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / f, dest / f)


def _install_entry_points(copy: Path, site: Path) -> None:
    """What ``pip install -e`` of the copy would add for the registry: its entry points, as package metadata on the
    path (the shared environment stays untouched)."""
    project = tomllib.loads((copy / "pyproject.toml").read_text())["project"]
    info = site / "scalebio_copy-0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: scalebio-copy\nVersion: 0\n")
    text = "".join(f"[{group}]\n" + "".join(f"{k} = {v}\n" for k, v in eps.items()) + "\n"
                   for group, eps in project["entry-points"].items())  # fmt: skip
    (info / "entry_points.txt").write_text(text)


def _changed_files(copy: Path) -> list[str]:
    """Files of the copy that are new or differ from the repository's."""
    out = []
    for path in sorted(p for p in copy.rglob("*") if p.is_file()):
        rel = path.relative_to(copy)
        if rel.parts[0] in (".snakemake", "results", "resources", ".cache") or "__pycache__" in rel.parts:
            continue
        original = ROOT / rel
        if not original.exists() or original.read_bytes() != path.read_bytes():
            out.append(str(rel))
    return out


@pytest.mark.slow
@pytest.mark.integration
def test_a_throwaway_baseline_runs_through_the_ci_dag_and_the_report(tmp_path):
    """baselines/README.md's promise, counted: in a temporary copy of the repository a new baseline is its module, its
    entry point and its config block — three files — and the CI DAG selects with it, fine-tunes and evaluates its
    model, and the report compares ScaleBiO with it (claims, tables, paper tables) without any other edit."""
    copy, site = tmp_path / "copy", tmp_path / "site"
    _copy_repository(copy)
    (copy / "baselines" / "toy.py").write_text(textwrap.dedent(TOY_METHOD))
    pyproject = (copy / "pyproject.toml").read_text()
    anchor = 'oracle_clean = "baselines.oracle_clean"\n'
    assert anchor in pyproject
    (copy / "pyproject.toml").write_text(pyproject.replace(anchor, anchor + 'toy = "baselines.toy"\n'))
    cfg = yaml.safe_load((copy / "config" / "ci.yaml").read_text())
    cfg["methods"]["toy"] = {"tilt": 2.0}
    cfg["experiments"]["denoise"]["methods"].append("toy")
    cfg["experiments"]["denoise"]["evals"] = ["testloss"]  # the one evaluation the report needs: minutes, not five
    (copy / "config" / "ci.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    assert _changed_files(copy) == ["baselines/toy.py", "config/ci.yaml", "pyproject.toml"]

    _install_entry_points(copy, site)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(site), str(copy)]))
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    listed = subprocess.run([sys.executable, "-m", "scalebio", "select", "--list"], cwd=copy, env=env,
                            capture_output=True, text=True, check=True).stdout  # fmt: skip
    assert "toy\tbaselines.toy\tToy\tbaseline\tone process" in listed
    proc = subprocess.run([sys.executable, "-m", "snakemake", "--cores", "2", "--configfile", "config/ci.yaml"],
                          cwd=copy, env=env, capture_output=True, text=True, timeout=1500)  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    run = copy / "results" / "ci" / "denoise" / "tiny" / "toy" / "s0"
    assert read_selection(run / "selection.json")["method"] == "toy"
    assert (run / "model" / "model.safetensors").exists() and (run / "eval" / "testloss" / "summary.json").exists()
    report = copy / "results" / "ci" / "denoise" / "report"
    claims = [r for r in csv.DictReader(open(report / "claims.csv")) if r["comparator"] == "toy"]
    assert [r["claim"] for r in claims] == ["ScaleBiO beats toy on testloss"]
    downstream = [r["method"] for r in csv.DictReader(open(report / "downstream.csv"))]
    assert downstream.index("toy") > downstream.index("less")  # the config's order (toy was appended)
    assert "toy" in (report / "weights.csv").read_text() and "toy" in (report / "cost.csv").read_text()
    ours = (copy / "results" / "ci" / "report" / "paper_vs_ours_math.md").read_text()
    assert "Toy" not in ours  # not a paper baseline (INFO.in_paper is false): the paper tables leave it out
