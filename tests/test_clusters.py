"""Sources found automatically (``data.clusters``): the denoising pool merged into one unlabeled source is
clustered back into clean and corrupted examples, and the result is an ordinary data folder.

Modules: `scalebio/assets/clusters.py`.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from scalebio.assets.clusters import ClustersConfig, build_clusters, purity
from scalebio.common.config import from_dict
from scalebio.common.data import list_sources, read_jsonl
from scalebio.common.registry import run_method
from scalebio.common.runtime import ConfigError, write_jsonl
from scalebio.common.selection import MethodInputs
from scalebio.sft.mixture import build_sft_set


def merged_pool(denoise_data_dir: Path, out: Path, every: int = 1) -> Path:
    """The denoising pool's sources merged into one source (every ``every``-th example), the card kept."""
    rows = [r for f in sorted(list_sources(denoise_data_dir).values()) for r in read_jsonl(f)][::every]
    write_jsonl(out / "sources" / "pool.jsonl", [{k: v for k, v in r.items() if k != "id"} for r in rows])
    for name in ("validation.jsonl", "test.jsonl"):
        shutil.copy(denoise_data_dir / name, out / name)
    rate = sum(r["corrupted"] for r in rows) / len(rows)
    card = {"expected": "weights fall as the noise rate rises", "noise": {"pool": rate}}  # one unlabeled source
    (out / "card.json").write_text(json.dumps(card))
    return out


def test_purity_known_answers():
    assert purity([0, 0, 1, 1], ["a", "a", "b", "b"]) == 1.0
    assert purity([0, 0, 0, 0], ["a", "a", "b", "b"]) == 0.5
    assert purity([0, 1, 0, 1], ["a", "a", "b", "b"]) == 0.5


def test_bad_options_are_refused():
    with pytest.raises(ConfigError, match="k must be at least 2"):
        from_dict(ClustersConfig, {"k": 1}, prefix="data.clusters.")
    with pytest.raises(ConfigError, match="unknown option"):
        from_dict(ClustersConfig, {"clusters": 3}, prefix="data.clusters.")


def test_clusters_separate_clean_from_corrupted(denoise_data_dir, tiny_model_dir, tmp_path):
    pool = merged_pool(denoise_data_dir, tmp_path / "pool")
    # The random tiny model mixes context into every position in its blocks (last hidden state: purity 0.51,
    # measured); its input embeddings of the response tokens (layer 0) separate the "." answers.
    cfg = ClustersConfig(k=2, layer=0, label="corrupted")
    card = build_clusters(pool, tmp_path / "data", tiny_model_dir, cfg, seed=0)
    assert card["purity"]["corrupted"] >= 0.9, card["purity"]
    data = tmp_path / "data"
    assert sorted(list_sources(data)) == ["cluster0", "cluster1"]
    assert sum(card["sources"].values()) == 5 * 64 and card["dropped"] == 0
    assert (data / "validation.jsonl").read_bytes() == (denoise_data_dir / "validation.jsonl").read_bytes()
    # Each cluster's noise rate (its share of corrupted examples) is what the report correlates with the weights.
    noise = card["noise"]
    assert max(noise.values()) >= 0.9 and min(noise.values()) <= 0.1, noise
    on_disk = json.loads((data / "card.json").read_text())
    assert on_disk["purity"] == card["purity"] and on_disk["kind"] == "clusters"

    # Same folder contract as every data folder: a registered method and the SFT-set builder run on it unchanged.
    inputs = MethodInputs(data_dir=str(data), model=str(tiny_model_dir), out_dir=str(tmp_path / "uniform"), budget=40)
    sel = run_method(inputs, "uniform")
    manifest = build_sft_set(sel, data, tmp_path / "sft_data", seed=0)
    assert sum(manifest["counts"].values()) == 40 and set(manifest["counts"]) == {"cluster0", "cluster1"}


@pytest.mark.slow
def test_smollm2_last_hidden_state_separates_too(denoise_data_dir, smollm2_dir, tmp_path):
    """The default embedding (last hidden state) of a trained model: SmolLM2-135M-Instruct, every 4th example."""
    pool = merged_pool(denoise_data_dir, tmp_path / "pool", every=4)
    card = build_clusters(pool, tmp_path / "data", smollm2_dir, ClustersConfig(k=2, label="corrupted"), seed=0)
    assert card["purity"]["corrupted"] >= 0.9, card["purity"]


def test_every_option_is_documented_in_the_config_readme():
    import dataclasses

    text = (Path(__file__).resolve().parents[1] / "config" / "README.md").read_text()
    section = text[text.index("(`data.clusters`") : text.index("## Assets")]
    assert [f.name for f in dataclasses.fields(ClustersConfig) if f"| `{f.name}` |" not in section] == []
