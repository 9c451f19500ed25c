"""The prepared model folder (scalebio/assets/download.py, the workflow's download rule): a local folder is linked
with its settings; a hub id needs the hub; what the workflow prepares (pipeline/resolve.py: model_download).

Modules: `scalebio/assets/download.py`, `scalebio/pipeline/resolve.py` (model_download).
"""

from __future__ import annotations

import json

import pytest

from scalebio.assets.download import prepare_model
from scalebio.common.model_settings import SETTINGS_FILE
from scalebio.common.runtime import ConfigError
from scalebio.pipeline.resolve import model_download


def test_a_local_folder_is_linked_with_its_settings(tiny_model_dir, tmp_path):
    from scalebio.common.modeling import attention_implementation

    out = prepare_model(str(tiny_model_dir), tmp_path / "m", settings={"attn_implementation": "eager"})
    assert (out / "model.safetensors").is_symlink() and (out / "config.json").exists()
    settings = json.loads((out / SETTINGS_FILE).read_text())
    assert settings["source"] == str(tiny_model_dir) and settings["revision"] is None
    assert attention_implementation(str(out)) == "eager"  # what every job loading the folder gets


def test_a_hub_id_needs_the_hub_and_a_local_folder_takes_no_revision(tiny_model_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ConfigError, match="hub is off"):
        prepare_model("meta-llama/Meta-Llama-3-8B", tmp_path / "a", revision="abc")
    with pytest.raises(ConfigError, match="revision applies to hub ids"):
        prepare_model(str(tiny_model_dir), tmp_path / "b", revision="abc")
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_what_the_workflow_prepares(tiny_model_dir):
    config = {
        "model_cache": "/shared/models",
        "models": {
            "asset": {"asset": "tiny"},
            "plain": {"path": str(tiny_model_dir)},
            "base": {"path": str(tiny_model_dir), "prompt_format": "human_assistant"},
            "hub": {"path": "meta-llama/Meta-Llama-3-8B", "revision": "a" * 40},
        },
    }
    assert model_download(config, "asset") is None and model_download(config, "plain") is None  # read as they are
    base, hub = model_download(config, "base"), model_download(config, "hub")
    assert base["settings"] == {"prompt_format": "human_assistant"} and base["folder"].startswith(
        "/shared/models/base-"
    )
    assert hub["revision"] == "a" * 40 and hub["source"] == "meta-llama/Meta-Llama-3-8B"
    moved = dict(config, models=dict(config["models"], hub={**config["models"]["hub"], "revision": "b" * 40}))
    assert model_download(moved, "hub")["folder"] != hub["folder"]  # a new revision is a new folder
