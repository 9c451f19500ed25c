"""The seeded streams: draws pinned against the values the formulas gave before ``seeded_generator`` unified them
(computed with the code of commit 5bba410), so a refactor cannot move a selection, an SFT set or a model.

Modules: `scalebio/common/streams.py`, `scalebio/sampling.py`.
"""

from __future__ import annotations

import pytest
import torch

from baselines.less import Projector
from scalebio.common.lisa import LayerSampler
from scalebio.common.streams import LISA_STREAMS, SEED_STRIDE, lisa_salt, seeded_generator
from scalebio.sampling import CycleSampler, IIDSampler
from scalebio.sft.online import SourceSampler


def test_the_generator_is_the_old_formula():
    for seed, key in ((0, 0), (3, 7919 * 117 + 40), (12, 5)):
        old = torch.Generator().manual_seed(seed * 1_000_003 + key)
        assert torch.equal(torch.randperm(50, generator=seeded_generator(seed, key)), torch.randperm(50, generator=old))
    assert SEED_STRIDE == 1_000_003


def test_batch_samplers_draw_what_they_drew_before():
    s = IIDSampler(20, 3, 2, seed=7, stream=1)
    assert s.global_batch(0) == [[6, 3, 9], [13, 6, 12]]
    assert s.global_batch(5) == [[7, 16, 12], [16, 7, 15]]
    assert IIDSampler(20, 3, 2, seed=0, stream=2).global_batch(3) == [[2, 4, 3], [19, 7, 8]]
    c = CycleSampler(7, 3, 2, seed=1, stream=2)
    assert [c.global_batch(k) for k in (0, 1, 4)] == [
        [[6, 2, 1], [5, 4, 0]],
        [[3, 6, 2], [1, 3, 4]],
        [[0, 4, 6], [3, 2, 4]],
    ]


@pytest.mark.parametrize(
    "stream, blocks",
    [
        ("u", [[2, 3, 4], [1, 4, 6], [3, 4, 7]]),
        ("w", [[0, 2, 3], [1, 6, 7], [2, 6, 7]]),
        ("sft", [[2, 3, 4], [4, 5, 7], [0, 2, 6]]),
    ],
)
def test_lisa_draws_the_blocks_it_drew_before(stream, blocks):
    sampler = LayerSampler(8, 3, 20, seed=3, stream=stream)
    assert [sampler.draw(step) for step in (0, 25, 61)] == blocks


def test_lisa_salts_are_the_old_sums_and_distinct():
    assert all(salt == sum(map(ord, name)) for name, salt in LISA_STREAMS.items())
    assert len(set(LISA_STREAMS.values())) == len(LISA_STREAMS)
    with pytest.raises(ValueError, match="has no salt"):
        lisa_salt("wu")  # an anagram of an existing stream: once the same blocks, now refused


def test_online_sft_draws_what_it_drew_before():
    sampler = SourceSampler([5, 4, 6], [0.5, 0.2, 0.3], 10, 2, seed=4)
    assert sampler.draw(0)[0] == [4, 15, 11, 14, 3, 0, 9, 12, 10, 13, 1, 16]
    assert sampler.draw(1)[0] == [12, 16, 11, 3, 5, 9, 13, 0, 1, 15, 2, 14]


def test_less_projection_is_the_matrix_it_was():
    signs = Projector(40, 4, seed=2, block=16).matrix()[:, 0] * 2
    assert signs.tolist() == [
        -1, 1, 1, 1, -1, -1, -1, 1, 1, -1, -1, -1, 1, 1, 1, -1, -1, -1, 1, 1,
        1, 1, -1, -1, -1, 1, 1, 1, -1, -1, -1, 1, 1, 1, -1, 1, 1, 1, 1, 1,
    ]  # fmt: skip
    gauss = Projector(20, 3, seed=5, kind="gaussian", block=8).matrix()[:3].flatten().tolist()
    expected = [-0.1498, -0.525831, 0.14177, -0.152287, -0.378887, 0.574807, -0.941851, 0.374356, -0.55174]
    assert gauss == pytest.approx(expected, abs=1e-6)
