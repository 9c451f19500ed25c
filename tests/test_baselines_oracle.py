"""The oracles (reference points): the best source mixture the caps allow, and the all-clean example selection.

Modules: `baselines/oracle.py`, `baselines/oracle_clean.py`.
"""

from __future__ import annotations

import json

import pytest

from baselines.oracle import fill, ranked_groups
from scalebio.common.registry import run_method
from scalebio.common.selection import MethodInputs, read_selection


def _card(tmp_path, **card):
    (tmp_path / "card.json").write_text(json.dumps(card))
    return str(tmp_path)


def test_sources_are_ranked_targets_then_by_noise_then_others_then_harmful(tmp_path):
    d = _card(tmp_path, targets=["a"], noise={"a": 0.0, "b": 0.5, "c": 0.25}, harmful=["d"])
    assert ranked_groups(d, ["a", "b", "c", "d", "e", "f"]) == [["a"], ["c"], ["b"], ["e", "f"], ["d"]]


def test_fill_takes_the_best_sources_up_to_their_caps_and_spreads_ties():
    # denoising pool: 5 x 120, N = 240 -> the clean and the 25 % source (harmful share 30/240 = 0.125)
    groups = [["noise000"], ["noise025"], ["noise050"], ["noise075"], ["noise100"]]
    sizes = dict.fromkeys(sum(groups, []), 120)
    assert fill(groups, sizes, 240) == {"noise000": 120, "noise025": 120}
    # multilingual: the target language holds 80 of N = 240; the rest is spread evenly over the other five
    langs = ["english", "french", "german", "italian", "portuguese"]
    got = fill([["spanish"], langs], dict.fromkeys(["spanish", *langs], 80), 240)
    assert got == {"spanish": 80, **dict.fromkeys(langs, 32)}
    assert fill([["a", "b"]], {"a": 3, "b": 10}, 10) == {"a": 3, "b": 7}  # a capped source leaves room to the other


def test_fill_refuses_a_budget_larger_than_the_pool():
    from scalebio.common.runtime import ConfigError

    with pytest.raises(ConfigError, match="fewer than the budget 30"):
        fill([["a"], ["b"]], {"a": 10, "b": 10}, 30)


@pytest.mark.parametrize("method, harmful", [("oracle", 0.125), ("oracle_clean", 0.0)])
def test_oracles_on_the_denoising_pool(tmp_path, denoise_data_dir, method, harmful):
    """5 sources × 64 at 0/25/50/75/100 % noise, N = 128: the mixture takes noise000 and noise025 (16 of 128
    corrupted); the example-level oracle takes 128 clean rows (64 + 48 + 16)."""

    from scalebio.report.collect import selection_corruption

    inputs = MethodInputs(str(denoise_data_dir), "unused", str(tmp_path), budget=128, seed=0)
    sel = read_selection(run_method(inputs, method))
    assert selection_corruption(sel, denoise_data_dir) == pytest.approx(harmful)
    if method == "oracle":
        assert sel["weights"] == {"noise000": 0.5, "noise025": 0.5, "noise050": 0.0, "noise075": 0.0, "noise100": 0.0}
    else:
        assert len(sel["examples"]) == 128 and len({(e["source"], e["id"]) for e in sel["examples"]}) == 128
