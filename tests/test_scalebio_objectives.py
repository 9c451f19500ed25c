"""Several validation objectives through the pipeline (beyond the paper): the two-target multilingual pool, the
ScaleBiO run on it, the held-out loss per target, and the Pareto study on run folders with known answers.
The optimiser itself (scalebio/objectives.py in scalebio/minimax.py) is tested on a convex problem in
test_scalebio_minimax.py.

Modules: `scalebio/objectives.py`, `scalebio/report/pareto.py`.
"""

from __future__ import annotations

import csv
import json

import pytest

from scalebio.common.runtime import ConfigError

LANGS = ["english", "spanish", "portuguese", "italian", "german", "french"]
TWO = {"languages": LANGS, "target": ["spanish", "french"], "n_per_source": 24, "n_val": 8, "n_test": 8}


@pytest.fixture(scope="module")
def two_target_data(tmp_path_factory):
    from scalebio.assets.embedded import build

    return build("multilingual", TWO, tmp_path_factory.mktemp("two") / "data", seed=0)


def _rows(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_two_target_pool_tags_validation_and_test_rows(two_target_data, tmp_path):
    from scalebio.assets.embedded import build, pool_sizes

    card = json.loads((two_target_data / "card.json").read_text())
    assert card["targets"] == ["spanish", "french"] and card["validation"] == 16 and card["test"] == 16
    for split in ("validation", "test"):
        tags = [r["target"] for r in _rows(two_target_data / f"{split}.jsonl")]
        assert sorted(tags) == ["french"] * 8 + ["spanish"] * 8
    sources = {p.stem: len(_rows(p)) for p in (two_target_data / "sources").glob("*.jsonl")}
    assert sources == pool_sizes("multilingual", TWO)
    # one target (the paper's experiment): no tag, as before
    one = build("multilingual", TWO | {"target": "spanish"}, tmp_path / "one", seed=0)
    assert all("target" not in r for r in _rows(one / "validation.jsonl"))
    with pytest.raises(ConfigError, match="must name languages"):
        build("multilingual", TWO | {"target": ["spanish", "klingon"]}, tmp_path / "bad", seed=0)


def test_scalebio_runs_the_combined_objective_and_logs_each_target(two_target_data, tiny_model_dir, tmp_path):
    """`objectives: weighted {spanish: 3, french: 1}` on the two-target pool: every step's metrics carry both
    targets' validation losses and c = (0.75, 0.25), and L1(w) = Σ c_j L1_j; without target tags it is an error."""
    from scalebio.common.registry import run_method
    from scalebio.common.selection import MethodInputs, read_selection

    opts = {"global_batch_size": 8, "micro_batch_size": 4, "max_length": 128, "max_steps": 4, "progress": False,
            "objectives": {"rule": "weighted", "weights": {"spanish": 3.0, "french": 1.0}}}  # fmt: skip
    out = tmp_path / "run"
    inputs = MethodInputs(str(two_target_data), str(tiny_model_dir), str(out), 10, 0, opts)
    sel = read_selection(run_method(inputs, "scalebio"))
    assert set(sel["weights"]) == set(LANGS)
    rows = _rows(out / "metrics.jsonl")
    assert len(rows) == 4
    for r in rows:
        assert r["c[spanish]"] == pytest.approx(0.75) and r["c[french]"] == pytest.approx(0.25)
        assert r["L1(w)"] == pytest.approx(0.75 * r["L1(w)[spanish]"] + 0.25 * r["L1(w)[french]"], rel=1e-6)
    one = tmp_path / "one"
    from scalebio.assets.embedded import build

    build("multilingual", TWO | {"target": "spanish"}, one, seed=0)
    with pytest.raises(ConfigError, match="need a 'target' on every validation row"):
        run_method(MethodInputs(str(one), str(tiny_model_dir), str(tmp_path / "r2"), 10, 0, opts), "scalebio")
    with pytest.raises(ConfigError, match=r"names \['german'\], which are not validation sets"):
        bad = opts | {"objectives": {"rule": "weighted", "weights": {"german": 1.0}}}
        run_method(
            MethodInputs(str(two_target_data), str(tiny_model_dir), str(tmp_path / "r3"), 10, 0, bad), "scalebio"
        )


def test_testloss_reports_each_targets_loss(two_target_data, tiny_model_dir, tmp_path):
    """by_target: the mean of the per-example losses of each target's rows (losses.jsonl carries the tag)."""
    import logging

    from eval.testloss import Options, run

    summary = run(str(tiny_model_dir), tmp_path, str(two_target_data), Options(), logging.getLogger("t"))
    rows = _rows(tmp_path / "losses.jsonl")
    for t in ("spanish", "french"):
        mine = [r["loss"] for r in rows if r["target"] == t and r["response_tokens"] > 0]
        assert len(mine) == 8 and summary["by_target"][t]["value"] == pytest.approx(sum(mine) / len(mine))
    assert summary["value"] == pytest.approx(sum(r["loss"] for r in rows) / len(rows))


# ---- the Pareto study on run folders with known answers ------------------------------------------------------
def _run(results, data_dir, method, seed, losses, objectives, p_es):
    from scalebio.common.selection import MethodInputs, write_selection

    rd = results / "pareto" / "tiny" / method / f"s{seed}"
    weights = dict.fromkeys(LANGS, (1 - p_es) / 5) | {"spanish": p_es}
    write_selection(MethodInputs(str(data_dir), "m", str(rd), budget=10, seed=seed), method, weights=weights,
                    wall_time_s=1.0, tokens=10)  # fmt: skip
    if objectives is not None:
        (rd / "config.json").write_text(json.dumps({"objectives": objectives}))
    ev = rd / "eval" / "testloss"
    ev.mkdir(parents=True)
    by = {t: {"value": v, "stderr": 0.0} for t, v in zip(("spanish", "french"), losses)}
    ev.joinpath("summary.json").write_text(json.dumps({"metric": "test_loss", "value": sum(losses) / 2, "n": 16,
                                                       "higher_is_better": False, "by_target": by}))  # fmt: skip


def test_pareto_study_places_each_combination_and_pairs_worst_case_with_the_best_weighted(two_target_data, tmp_path):
    from scalebio.report.studies import study_report

    results = tmp_path / "results"
    weighted = lambda es, fr: {"rule": "weighted", "weights": {"spanish": es, "french": fr}}  # noqa: E731
    for seed in range(3):
        _run(results, two_target_data, "sb_es", seed, (3.0, 5.0), weighted(1.0, 0.0), 0.6)
        _run(results, two_target_data, "sb_even", seed, (3.6, 3.8), weighted(1.0, 1.0), 0.4)
        _run(results, two_target_data, "sb_fr", seed, (5.0, 3.0), weighted(0.0, 1.0), 0.1)
        worst = 3.7 - 0.1 * seed  # the best weighted point (sb_even, worse target 3.8) minus 0.1, 0.2, 0.3
        _run(results, two_target_data, "sb_worst", seed, (worst, worst), {"rule": "worst_case"}, 0.3)
        _run(results, two_target_data, "uniform", seed, (4.0, 4.0), None, 1 / 6)
    methods = ["uniform", "sb_es", "sb_even", "sb_fr", "sb_worst"]
    spec = {"models": ["tiny"], "methods": methods, "evals": ["testloss"], "study": {"kind": "pareto"}}
    out = study_report("pareto", spec, results, two_target_data, [0, 1, 2])
    with open(out / "study.csv") as f:
        rows = {r["method"]: r for r in csv.DictReader(f)}
    assert [float(rows[m]["c[spanish]"]) for m in ("sb_es", "sb_even", "sb_fr")] == [1.0, 0.5, 0.0]
    assert rows["sb_worst"]["rule"] == "worst_case" and rows["uniform"]["c[spanish]"] == ""
    # sb_even (3.6, 3.8) and uniform (4, 4) are dominated by sb_worst's mean point (3.6, 3.6)
    assert {m: rows[m]["pareto"] for m in methods} == {
        "uniform": "no", "sb_es": "yes", "sb_even": "no", "sb_fr": "yes", "sb_worst": "yes"}  # fmt: skip
    assert float(rows["sb_es"]["worse mean"]) == pytest.approx(5.0)
    # worst_case − best weighted on the worse target: (−0.1, −0.2, −0.3) → −0.2 ± t(2)·0.1/√3
    assert float(rows["sb_worst"]["vs_best"]) == pytest.approx(-0.2)
    assert float(rows["sb_worst"]["vs_best_low"]) == pytest.approx(-0.2 - 4.3027 * 0.1 / 3**0.5, abs=1e-3)
    assert float(rows["sb_es"]["p[spanish]"]) == pytest.approx(0.6)
    # paired over seeds (no per-item files here: t-intervals): uniform is 0.2-0.6 worse than sb_worst and 0.4 / 0.2
    # worse than sb_even on both targets in every seed; sb_es trades Spanish for French against every other point
    assert rows["uniform"]["dominated"] == "yes (by sb_even, sb_worst)" and rows["sb_es"]["dominated"] == "no"
    assert rows["sb_even"]["dominated"] == "inconclusive"  # sb_worst is level with it on Spanish (−0.1, 0, +0.1)
    assert "(vs sb_even)" in (out / "study.md").read_text() and (out / "study.png").stat().st_size > 1000


def test_the_c1_arm_and_multilingual_share_sources_and_spanish_rows_but_not_the_validation_set():
    """config/config.yaml: `multilingual_two_targets` differs from `multilingual` only by its English validation and
    test rows; the Spanish rows and every source are the same (the study's note says so, and why c = 1 differs:
    the SFT set appends the whole validation set)."""
    from pathlib import Path

    import yaml

    from scalebio.assets.embedded import build_multilingual

    exps = yaml.safe_load((Path(__file__).resolve().parents[1] / "config" / "config.yaml").read_text())["experiments"]
    one = build_multilingual(exps["multilingual"]["data"]["options"], 0)
    two = build_multilingual(exps["multilingual_two_targets"]["data"]["options"], 0)
    assert one["sources"] == two["sources"]
    for split in ("validation", "test"):
        spanish = [{k: v for k, v in r.items() if k != "target"} for r in two[split] if r["target"] == "spanish"]
        assert spanish == one[split] and len(two[split]) == 2 * len(one[split])


def test_pareto_study_needs_two_targets(tmp_path, denoise_data_dir):
    from scalebio.report.studies import study_report

    spec = {"models": ["tiny"], "methods": ["scalebio"], "evals": ["testloss"], "study": {"kind": "pareto"}}
    with pytest.raises(ConfigError, match="needs data with two targets"):
        study_report("p", spec, tmp_path / "results", denoise_data_dir, [0])
