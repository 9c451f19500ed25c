"""Weights applied online (``sft.sampling: online|trajectory``): the sampler draws sources with probability p,
and a fine-tune on the tiny model runs through the HF Trainer with it."""

from __future__ import annotations

import json
from collections import Counter

import pytest
from scipy.stats import binom

from scalebio.common.runtime import ConfigError
from scalebio.common.selection import MethodInputs, write_selection
from scalebio.sft.finetune import SAMPLING_FILE, finetune
from scalebio.sft.mixture import build_sft_set
from scalebio.sft.online import SourceSampler, online_training_set

P = [0.5, 0.3, 0.15, 0.05, 0.0]
SIZES = [40, 30, 20, 10, 5]


def source_of(index: int) -> int:
    """Source of a pool index (sources laid out one after another), len(SIZES) for the appended fixed set."""
    edge = 0
    for k, n in enumerate(SIZES):
        edge += n
        if index < edge:
            return k
    return len(SIZES)


def test_source_frequencies_match_p_within_binomial_interval():
    n = 20_000
    sampler = SourceSampler(SIZES, P, n_draws=n, n_fixed=7, seed=3)
    for epoch in (0, 1):
        sampler.set_epoch(epoch)
        idx = list(sampler)
        counts = Counter(source_of(i) for i in idx)
        assert len(idx) == n + 7 and counts[len(SIZES)] == 7  # validation once per epoch
        assert sorted(i for i in idx if source_of(i) == len(SIZES)) == list(range(sum(SIZES), sum(SIZES) + 7))
        for k, p in enumerate(P):
            lo, hi = binom.interval(0.999, n, p)
            assert lo <= counts[k] <= hi, (k, p, counts[k], lo, hi)
    assert list(SourceSampler(SIZES, P, 500, 7, seed=3)) == list(SourceSampler(SIZES, P, 500, 7, seed=3))
    assert list(SourceSampler(SIZES, P, 500, 7, seed=3)) != list(SourceSampler(SIZES, P, 500, 7, seed=4))


def test_within_a_source_no_repeat_before_it_is_exhausted():
    idx, _ = SourceSampler(SIZES, P, n_draws=60, seed=0).draw(0)
    per = Counter(source_of(i) for i in idx)
    for k, n in enumerate(SIZES):
        mine = [i for i in idx if source_of(i) == k]
        assert len(set(mine)) == min(per[k], n)


def test_trajectory_moves_the_frequencies():
    # p goes from all-source-0 to all-source-1 halfway: the first half of the draws is source 0, the second source 1.
    sampler = SourceSampler([10, 10], [[1.0, 0.0], [0.0, 1.0]], n_draws=100, seed=0)
    _, src = sampler.draw(0)
    assert src[:50].tolist() == [0] * 50 and src[50:].tolist() == [1] * 50


def test_bad_probabilities_are_refused():
    with pytest.raises(Exception, match="summing to 1"):
        SourceSampler([3, 3], [0.7, 0.7], 10)
    with pytest.raises(Exception, match="no example"):
        SourceSampler([3, 0], [0.5, 0.5], 10)


@pytest.fixture(scope="module")
def skewed_selection(denoise_data_dir, tmp_path_factory):
    d = tmp_path_factory.mktemp("online")
    inputs = MethodInputs(data_dir=str(denoise_data_dir), model="unused", out_dir=str(d / "scalebio"), budget=32)
    names = sorted(inputs.sources)
    weights = {n: w for n, w in zip(names, [0.6, 0.4, 0.0, 0.0, 0.0])}
    sel = write_selection(inputs, "scalebio", weights=weights, wall_time_s=0, tokens=0)
    build_sft_set(sel, denoise_data_dir, d / "sft_data", seed=0)
    return sel, d / "sft_data" / "train.jsonl"


def test_online_finetune_end_to_end(skewed_selection, denoise_data_dir, tiny_model_dir, tmp_path):
    sel, train = skewed_selection
    opts = {
        "global_batch_size": 8,
        "micro_batch_size": 8,
        "max_length": 96,
        "learning_rate": 1e-3,
        "sampling": "online",
    }
    out = tmp_path / "model"
    lone = tmp_path / "lone.jsonl"  # a training set without its manifest: online sampling cannot find p
    lone.write_bytes(train.read_bytes())
    with pytest.raises(ConfigError, match="needs --selection"):
        finetune(lone, tiny_model_dir, out, opts, seed=0)
    finetune(train, tiny_model_dir, out, opts, seed=0)  # selection and pool found through the SFT set's manifest
    sampling = json.loads((out / SAMPLING_FILE).read_text())
    assert (
        sampling["mode"] == "online"
        and sampling["selection"] == str(sel)
        and sampling["validation"]["n_examples"] == 32
    )
    counts = sampling["counts_epoch0"]
    assert sum(counts.values()) == 32 and counts["noise050"] == counts["noise075"] == counts["noise100"] == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["n_examples"] == 32 + 32 and metrics["steps"] == 8  # (N + validation) / batch 8, one epoch
    losses = [json.loads(line)["loss"] for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert losses[-1] < losses[0], losses


def test_examples_selection_falls_back_to_the_static_set(denoise_data_dir, tmp_path):
    inputs = MethodInputs(data_dir=str(denoise_data_dir), model="unused", out_dir=str(tmp_path / "less"), budget=2)
    sel = write_selection(inputs, "less", examples=[{"source": "noise000", "id": "noise000-0"}] * 2, wall_time_s=0,
                          tokens=0)  # fmt: skip
    examples, sampler, record = online_training_set(sel, denoise_data_dir, None, "online", 96, 0)
    assert examples is None and sampler is None and record["mode"] == "static" and "no weights" in record["reason"]
