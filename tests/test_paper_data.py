"""The paper's data by rules, offline: the official repository's files at a pinned commit (a local git
repository with the official layout and record schema stands in for GitHub) and hub datasets in hub format
(a local folder of parquet shards stands in for the hub), through the same code paths the paper configs use.

Modules: `scalebio/assets/official.py`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from scalebio.assets.folders import build_files
from scalebio.assets.official import fetch
from scalebio.common.runtime import AssetError, ConfigError, file_sha256

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SUBSETS = "math/dev_scalebio/exp_rlhflow_less_oss"


def _conv(q: str, a: str) -> dict:
    """One record in the official files' schema (ShareGPT-style ``items``)."""
    return {"items": [{"from": "human", "value": q}, {"from": "gpt", "value": a}]}


def _git(*args, cwd):
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.org", *args], cwd=cwd, check=True,
                   capture_output=True)  # fmt: skip


@pytest.fixture(scope="module")
def fake_repo(tmp_path_factory) -> tuple[Path, str, str]:
    """A git repository with the official math/ layout: two commits, so pinning the first one matters."""
    repo = tmp_path_factory.mktemp("scalebio-official") / "scalebio"
    d = repo / SUBSETS
    d.mkdir(parents=True)
    for name in ("MathInstruct", "GPT4-LLM-Cleaned"):
        rows = [_conv(f"{name} question {i}: what is {i} + {i}?", f"{i} + {i} = {2 * i}") for i in range(6)]
        (d / f"train_{name}.json").write_text(json.dumps(rows, indent=2))
    (d / "val.json").write_text(json.dumps([_conv("What is 2 + 3? Please reason step by step.", "#### 5")] * 3))
    (d / "test.json").write_text(json.dumps([_conv("What is 4 + 4?", "#### 8")] * 2))
    (repo / "README.md").write_text("not kept\n")
    _git("init", "-q", cwd=repo)
    _git("add", ".", cwd=repo)
    _git("commit", "-qm", "subsets", cwd=repo)
    first = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True).stdout.strip()
    (d / "train_MathInstruct.json").write_text("[]")  # a later commit changes a file: the pin must not see it
    _git("commit", "-qam", "later", cwd=repo)
    later = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True).stdout.strip()
    return repo, first, later


def test_fetch_pins_the_commit_and_records_checksums(fake_repo, tmp_path):
    repo, first, later = fake_repo
    out = fetch(str(repo), first, [SUBSETS], tmp_path / "snap")
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["commit"] == first and set(manifest["files"]) == {
        f"{SUBSETS}/{n}" for n in ("train_MathInstruct.json", "train_GPT4-LLM-Cleaned.json", "val.json", "test.json")
    }
    for name, meta in manifest["files"].items():
        assert file_sha256(out / name) == meta["sha256"]
    assert len(json.loads((out / SUBSETS / "train_MathInstruct.json").read_text())) == 6  # not the later "[]"
    assert not (out / "README.md").exists() and not (out / ".checkout").exists()
    assert (
        fetch(str(repo), later, [SUBSETS], tmp_path / "later")
        and json.loads((tmp_path / "later" / SUBSETS / "train_MathInstruct.json").read_text()) == []
    )


def test_fetch_errors_leave_nothing(fake_repo, tmp_path):
    repo, first, _ = fake_repo
    with pytest.raises(ConfigError, match="40-digit"):
        fetch(str(repo), first[:8], [SUBSETS], tmp_path / "a")
    with pytest.raises(AssetError):
        fetch(str(repo), "0" * 40, [SUBSETS], tmp_path / "b")
    with pytest.raises(AssetError, match="does not exist"):
        fetch(str(repo), first, ["math/nope"], tmp_path / "c")
    assert not any(tmp_path.iterdir())


def test_hub_format_folder_with_split_slice(tmp_path):
    """A dataset in hub format (parquet shard under data/) loads through datasets.load_dataset, split slice included."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    hub = tmp_path / "pxyyy" / "MathInstruct"
    (hub / "data").mkdir(parents=True)
    msgs = [[{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": f"a{i}"}] for i in range(5)]
    pq.write_table(pa.table({"messages": msgs}), hub / "data" / "train-00000-of-00001.parquet")
    val = tmp_path / "val.jsonl"
    val.write_text(json.dumps({"prompt": "p", "response": "r"}) + "\n")
    spec = {"sources": {"MathInstruct": {"hub": str(hub), "split": "train[:3]"}}, "validation": str(val)}
    out = build_files(spec, tmp_path / "data")
    rows = [json.loads(line) for line in (out / "sources" / "MathInstruct.jsonl").read_text().splitlines()]
    assert [r["messages"][0]["content"] for r in rows] == ["q0", "q1", "q2"]
    card = json.loads((out / "card.json").read_text())
    assert card["files"]["sources/MathInstruct.jsonl"]["rows"] == 3
    assert card["files"]["validation.jsonl"]["file_sha256"] == file_sha256(val)


def test_paper_layout_through_the_workflow(fake_repo, tmp_path):
    """`official:` entries + `rule official_files` + `rule data`, with Snakemake, on the fake repository."""
    repo, first, _ = fake_repo
    cfg = {
        "official": {"repo": str(repo), "commit": first, "paths": [SUBSETS]},
        "models": {"tiny": {"asset": "tiny"}},
        "experiments": {
            "math": {
                "data": {
                    "sources": {n: f"official:{SUBSETS}/train_{n}.json" for n in ("MathInstruct", "GPT4-LLM-Cleaned")},
                    "validation": f"official:{SUBSETS}/val.json",
                    "test": f"official:{SUBSETS}/test.json",
                },
                "models": ["tiny"],
                "methods": ["uniform"],
                "budget": 4,
            }
        },
    }
    for name in ("Snakefile", "workflow"):
        (tmp_path / name).symlink_to(ROOT / name)
    (tmp_path / "paper_fixture.yaml").write_text(yaml.safe_dump(cfg))
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    env["PATH"] = f"{BIN}:{env['PATH']}"
    target = "results/paper_fixture/math/data"
    r = subprocess.run([BIN / "snakemake", target, "--cores", "1", "--configfile", "paper_fixture.yaml"],
                       cwd=tmp_path, capture_output=True, text=True, env=env, timeout=300)  # fmt: skip
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    snap = tmp_path / "resources" / "official" / f"scalebio-{first[:12]}"
    manifest = json.loads((snap / "manifest.json").read_text())
    card = json.loads((tmp_path / target / "card.json").read_text())
    assert card["sources"] == {"GPT4-LLM-Cleaned": 6, "MathInstruct": 6}
    for rel, name in [("validation.jsonl", "val.json"), ("sources/MathInstruct.jsonl", "train_MathInstruct.json")]:
        assert card["files"][rel]["file_sha256"] == manifest["files"][f"{SUBSETS}/{name}"]["sha256"]
