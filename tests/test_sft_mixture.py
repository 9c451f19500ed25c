"""SFT training-set builder: counts, sampling without replacement, determinism, validation, bad input."""

from __future__ import annotations

import json
import logging
import math
import shutil
from collections import Counter
from pathlib import Path

import pytest

from scalebio.common.data import read_jsonl
from scalebio.common.runtime import SuiteError
from scalebio.common.selection import MethodInputs, write_selection
from scalebio.sft.mixture import build_sft_set, largest_remainder, main, plan_counts

N_PER_SOURCE = 64  # denoise_data_dir fixture: 5 sources x 64, 32 validation records
N_VAL = 32


def weights_selection(data_dir, out_dir, weights, budget=100, allow_repeats=False) -> Path:
    inputs = MethodInputs(str(data_dir), "unused", str(out_dir), budget, 0, allow_repeats=allow_repeats)
    return write_selection(inputs, "uniform", weights=weights, config={"a": 1}, wall_time_s=0.0, tokens=0)


def examples_selection(data_dir, out_dir, examples, budget=None) -> Path:
    budget = budget or len(examples)
    inputs = MethodInputs(data_dir=str(data_dir), model="unused", out_dir=str(out_dir), budget=budget, seed=0)
    return write_selection(inputs, "less", examples=examples, config={}, wall_time_s=0.0, tokens=0)


def edit_selection(path: Path, **changes) -> Path:
    sel = json.loads(path.read_text())
    sel.update(changes)
    path.write_text(json.dumps(sel))
    return path


W = {"noise000": 0.5, "noise025": 0.3, "noise050": 0.2, "noise075": 0.0, "noise100": 0.0}


def test_largest_remainder_sums_exactly():
    assert largest_remainder({"a": 1 / 3, "b": 1 / 3, "c": 1 / 3}, 10) == {"a": 4, "b": 3, "c": 3}
    for total in (1, 7, 99, 1000):
        c = largest_remainder({"a": 0.55, "b": 0.3, "c": 0.15, "d": 0.0}, total)
        assert sum(c.values()) == total and c["d"] == 0
        assert all(abs(c[k] - total * w) < 1 for k, w in {"a": 0.55, "b": 0.3, "c": 0.15}.items())


def test_plan_counts_caps_and_redistributes_by_weight():
    counts, short, rep = plan_counts({"a": 0.6, "b": 0.3, "c": 0.1}, {"a": 10, "b": 100, "c": 100}, 50)
    assert counts == {"a": 10, "b": 30, "c": 10} and short == {"a": 20} and rep == {}
    counts, short, rep = plan_counts({"a": 0.5, "b": 0.5, "c": 0.0}, {"a": 10, "b": 10, "c": 100}, 50)
    assert counts == {"a": 25, "b": 25, "c": 0} and rep == {"a": 15, "b": 15}  # a zero-weight source stays unused


def test_weights_selection_counts_no_duplicates_and_validation_once(denoise_data_dir, tmp_path):
    sel = weights_selection(denoise_data_dir, tmp_path / "sel", W)
    m = build_sft_set(sel, denoise_data_dir, tmp_path / "out", seed=3)
    assert m["counts"] == {"noise000": 50, "noise025": 30, "noise050": 20, "noise075": 0, "noise100": 0}
    rows = read_jsonl(tmp_path / "out" / "train.jsonl")
    assert len(rows) == m["n_examples"] == 100 + N_VAL
    by_source = Counter(r["source"] for r in rows)
    assert by_source == {"noise000": 50, "noise025": 30, "noise050": 20, "validation": N_VAL}
    pool_keys = [(r["source"], r["id"]) for r in rows if r["source"] != "validation"]
    assert len(set(pool_keys)) == len(pool_keys), "drawn with replacement"
    val_ids = sorted(r["id"] for r in read_jsonl(denoise_data_dir / "validation.jsonl"))
    assert sorted(r["id"] for r in rows if r["source"] == "validation") == val_ids  # each exactly once
    assert m["selection"]["method"] == "uniform" and m["selection"]["config_hash"]
    assert m["seed"] == 3 and m["shortfalls"] == {} and m["duplicates"] == {}
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["inputs_hash"] == m["inputs_hash"] and manifest["train_sha256"]
    # shuffled: validation records are not all at the end
    assert any(r["source"] == "validation" for r in rows[:50])


def test_deterministic_under_seed(denoise_data_dir, tmp_path):
    sel = weights_selection(denoise_data_dir, tmp_path / "sel", W)
    build_sft_set(sel, denoise_data_dir, tmp_path / "a", seed=1)
    build_sft_set(sel, denoise_data_dir, tmp_path / "b", seed=1)
    build_sft_set(sel, denoise_data_dir, tmp_path / "c", seed=2)
    a, b, c = ((tmp_path / d / "train.jsonl").read_text() for d in "abc")
    assert a == b
    assert a != c and sorted(a.splitlines()) != sorted(c.splitlines())  # other draw, not only another order


def test_small_source_shortfall_and_duplicates_are_logged(denoise_data_dir, tmp_path, caplog):
    sel = weights_selection(denoise_data_dir, tmp_path / "sel", {"noise000": 0.8, "noise025": 0.2})
    with caplog.at_level(logging.WARNING, logger="scalebio.sft.mixture"):
        m = build_sft_set(sel, denoise_data_dir, tmp_path / "out", append_validation=False)
    assert m["counts"]["noise000"] == N_PER_SOURCE and m["counts"]["noise025"] == 100 - N_PER_SOURCE
    assert m["shortfalls"] == {"noise000": 80 - N_PER_SOURCE} and m["duplicates"] == {}
    assert "shortfall" in caplog.text
    rows = read_jsonl(tmp_path / "out" / "train.jsonl")
    assert len({(r["source"], r["id"]) for r in rows}) == 100  # still no duplicates
    # Budget above the whole positive-weight pool: duplicates are unavoidable, and logged.
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="scalebio.sft.mixture"):
        big = weights_selection(
            denoise_data_dir, tmp_path / "sel200", {"noise000": 0.8, "noise025": 0.2}, budget=200, allow_repeats=True
        )
        m = build_sft_set(big, denoise_data_dir, tmp_path / "big", append_validation=False)
    assert sum(m["duplicates"].values()) == 200 - 2 * N_PER_SOURCE and "duplicate" in caplog.text
    rows = read_jsonl(tmp_path / "big" / "train.jsonl", unique_ids=False)
    assert len(rows) == 200 and max(Counter((r["source"], r["id"]) for r in rows).values()) == 2


def test_examples_selection_exact_ids(denoise_data_dir, tmp_path):
    chosen = [{"source": "noise000", "id": f"noise000-{i}"} for i in range(5)] + [
        {"source": "noise100", "id": "noise100-7"}
    ]
    sel = examples_selection(denoise_data_dir, tmp_path / "sel", chosen)
    m = build_sft_set(sel, denoise_data_dir, tmp_path / "out", seed=0)
    rows = read_jsonl(tmp_path / "out" / "train.jsonl")
    assert sorted((r["source"], r["id"]) for r in rows if r["source"] != "validation") == sorted(
        (e["source"], e["id"]) for e in chosen
    )
    assert m["counts"]["noise000"] == 5 and m["counts"]["noise100"] == 1 and len(rows) == 6 + N_VAL
    src = {r["id"]: r for r in read_jsonl(denoise_data_dir / "sources" / "noise100.jsonl")}
    row = next(r for r in rows if r["id"] == "noise100-7")
    assert row["response"] == src["noise100-7"]["response"] and row["prompt"] == src["noise100-7"]["prompt"]


def test_cli_no_validation(denoise_data_dir, tmp_path):
    sel = weights_selection(denoise_data_dir, tmp_path / "sel", W)
    main(["--selection", str(sel), "--data", str(denoise_data_dir), "--out", str(tmp_path / "o"), "--no-validation"])
    rows = read_jsonl(tmp_path / "o" / "train.jsonl")
    assert len(rows) == 100 and not any(r["source"] == "validation" for r in rows)  # budget from the selection


@pytest.mark.parametrize(
    "case, match",
    [
        ("sum", "sum to"),
        ("nan", "NaN"),
        ("negative", "negative"),
        ("unknown_source", "not in the pool"),
        ("budget0", "budget"),
    ],
)
def test_bad_weights_selection_writes_nothing(denoise_data_dir, tmp_path, case, match):
    sel = weights_selection(denoise_data_dir, tmp_path / "sel", W)
    if case == "sum":
        edit_selection(sel, weights={**W, "noise100": 0.1})
    elif case == "nan":
        edit_selection(sel, weights={**W, "noise075": math.nan})
    elif case == "negative":
        edit_selection(sel, weights={**W, "noise000": 0.6, "noise100": -0.1})
    elif case == "unknown_source":
        edit_selection(sel, weights={**W, "noise000": 0.4, "elsewhere": 0.1})
    elif case == "budget0":
        edit_selection(sel, budget=0)
    with pytest.raises(SuiteError, match=match):
        build_sft_set(sel, denoise_data_dir, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_bad_examples_selection(denoise_data_dir, tmp_path):
    sel = examples_selection(denoise_data_dir, tmp_path / "sel", [{"source": "noise000", "id": "noise000-0"}])
    edit_selection(sel, examples=[{"source": "noise000", "id": "no-such-id"}])
    with pytest.raises(SuiteError, match="no-such-id"):
        build_sft_set(sel, denoise_data_dir, tmp_path / "out")
    edit_selection(sel, examples=[{"source": "nowhere", "id": "noise000-0"}])
    with pytest.raises(SuiteError, match="nowhere"):
        build_sft_set(sel, denoise_data_dir, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_different_pool_is_rejected(denoise_data_dir, tmp_path, capsys):
    other = tmp_path / "other"
    shutil.copytree(denoise_data_dir, other)
    sel = weights_selection(denoise_data_dir, tmp_path / "sel", W)
    with open(other / "sources" / "noise050.jsonl", "a") as f:
        f.write(json.dumps({"id": "extra", "prompt": "1+1?", "response": "2"}) + "\n")
    with pytest.raises(SuiteError, match=r"different pool.*noise050"):
        build_sft_set(sel, other, tmp_path / "out")
    with pytest.raises(SystemExit) as e:  # the CLI: one line, exit 2
        main(["--selection", str(sel), "--data", str(other), "--out", str(tmp_path / "out")])
    assert e.value.code == 2 and "fingerprint" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
