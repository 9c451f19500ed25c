"""A model folder every job reads: downloaded once at a pinned revision, or a view of a local folder, plus its settings.

    python -m scalebio download --source meta-llama/Meta-Llama-3-8B --revision COMMIT \\
        --out resources/models/hub/llama3-8b-<hash> --settings '{"prompt_format": "human_assistant"}'

The workflow's ``download`` rule runs this once per model (a local rule: on the machine Snakemake runs on, which
has the network; compute nodes often have none) into the config's ``model_cache`` (a folder every node sees), and
every select / finetune / evaluate job of that model reads the folder, never the hub. A hub id is fetched with
``huggingface_hub.snapshot_download`` at ``--revision`` (a commit hash pins it; a branch is resolved to its commit,
which is recorded); a local folder is linked file by file (nothing is copied). ``scalebio_model.json``
(``scalebio.common.model_settings``) records the source, the resolved revision and the prompt format and attention
implementation every stage loads the model with.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from scalebio.common.model_settings import ModelSettings, write_settings
from scalebio.common.runtime import AssetError, ConfigError, atomic_dir, hub_enabled, main_guard

WEIGHT_PATTERNS = ["*.json", "*.safetensors", "*.model", "*.txt", "*.jinja", "*.tiktoken"]
"""Files fetched from the hub: config, tokenizer, safetensors weights (no duplicate .bin / .pth / GGUF copies)."""


def link_folder(source: Path, target: Path) -> None:
    """``target`` holds a symbolic link to every top-level entry of ``source`` (absolute, so the view can move)."""
    for entry in sorted(source.iterdir()):
        os.symlink(entry.resolve(), target / entry.name)


def fetch_hub(repo_id: str, revision: str | None, target: Path) -> str:
    """Download ``repo_id`` at ``revision`` into ``target``; returns the commit it resolved to."""
    if not hub_enabled():
        raise ConfigError(f"model '{repo_id}' is a hub id but the hub is off; set hub: true in the config")
    from huggingface_hub import HfApi, snapshot_download

    try:
        commit = HfApi().model_info(repo_id, revision=revision).sha
        snapshot_download(repo_id, revision=commit, local_dir=target, allow_patterns=WEIGHT_PATTERNS)
    except Exception as e:  # gated repository without a token, unknown revision, no network
        reason = (str(e).strip().splitlines() or [""])[0][:300]
        raise AssetError(
            f"cannot download '{repo_id}' at revision {revision or 'main'}: {type(e).__name__}: {reason} (gated "
            "models need `huggingface-cli login` or HF_TOKEN on the machine Snakemake runs on)"
        ) from None
    return commit


def prepare_model(source: str, out: str | Path, revision: str | None = None, settings: dict | None = None) -> Path:
    """The model folder ``out``: ``source`` (hub id or local folder) and its ``scalebio_model.json``."""
    settings = dict(settings or {})
    unknown = sorted(set(settings) - {"prompt_format", "attn_implementation"})
    if unknown:
        raise ConfigError(f"download --settings: unknown key(s) {unknown}")
    src = Path(source)
    with atomic_dir(Path(out), what="model folder") as tmp:
        if src.is_dir():
            if revision:
                raise ConfigError(f"model '{source}' is a local folder; a revision applies to hub ids only")
            link_folder(src, tmp)
            resolved = None
        else:
            resolved = fetch_hub(source, revision, tmp)
        write_settings(tmp, ModelSettings(**settings, revision=resolved, source=str(source)))
    return Path(out)


@main_guard
def main(argv=None) -> None:
    ap = argparse.ArgumentParser(prog="python -m scalebio download", description=__doc__.split("\n\n")[0])
    ap.add_argument("--source", required=True, help="hub id or local model folder")
    ap.add_argument("--out", required=True, help="the prepared model folder")
    ap.add_argument("--revision", default=None, help="hub revision (a commit hash pins it)")
    ap.add_argument("--settings", default="{}", help="JSON: prompt_format, attn_implementation")
    a = ap.parse_args(argv)
    prepare_model(a.source, a.out, a.revision or None, json.loads(a.settings))


if __name__ == "__main__":
    main()
