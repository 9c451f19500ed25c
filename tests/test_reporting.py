"""Report stage: composition of selections, corruption of what they pick, the claim check, the tables."""

from __future__ import annotations

import json

import pytest

from scalebio.common.selection import MethodInputs, write_selection
from scalebio.report.claims import check_claim
from scalebio.report.tables import composition, experiment_report, selection_corruption


def _selections(tmp_path, data_dir):
    runs = tmp_path / "results" / "denoise" / "tiny"
    names = sorted(json.loads((data_dir / "card.json").read_text())["sources"])
    w = dict(zip(names, [0.4, 0.3, 0.2, 0.1, 0.0]))
    write_selection(MethodInputs(str(data_dir), "m", str(runs / "scalebio"), 10), "scalebio", weights=w,
                    wall_time_s=2.0, tokens=100)  # fmt: skip
    clean = [{"source": "noise000", "id": f"noise000-{i}"} for i in range(6)]
    dirty = [{"source": "noise100", "id": f"noise100-{i}"} for i in range(2)]
    write_selection(MethodInputs(str(data_dir), "m", str(runs / "less"), 8), "less", examples=clean + dirty,
                    wall_time_s=1.0, tokens=50)  # fmt: skip
    return runs, w


def test_composition_and_corruption_of_both_selection_kinds(tmp_path, denoise_data_dir):
    runs, w = _selections(tmp_path, denoise_data_dir)
    sel_w = json.loads((runs / "scalebio" / "selection.json").read_text())
    sel_e = json.loads((runs / "less" / "selection.json").read_text())
    assert composition(sel_w) == w
    assert composition(sel_e)["noise000"] == pytest.approx(0.75) and composition(sel_e)["noise100"] == 0.25
    # weights: Σ p_k · corruption rate of source k; examples: mean of the picked examples' flags
    assert selection_corruption(sel_w, denoise_data_dir) == pytest.approx(0.3 * 0.25 + 0.2 * 0.5 + 0.1 * 0.75)
    n_bad = sum(
        json.loads(line)["corrupted"]
        for line in (denoise_data_dir / "sources" / "noise100.jsonl").read_text().splitlines()[:2]
    )
    assert selection_corruption(sel_e, denoise_data_dir) == pytest.approx(n_bad / 8)


@pytest.mark.parametrize(
    "weights, status",
    [([0.4, 0.3, 0.2, 0.1, 0.0], "✓"), ([0.4, 0.3, 0.2, 0.05, 0.05001], "✓"), ([0.2, 0.3, 0.2, 0.1, 0.2], "✗")],
)
def test_denoise_claim_is_spearman_at_most_minus_0_9(weights, status):
    noise = {"a": 0.0, "b": 0.25, "c": 0.5, "d": 0.75, "e": 1.0}
    row = check_claim({"noise": noise, "expected": "x"}, dict(zip("abcde", weights)), "tiny")
    assert row["status"] == status


def test_target_claim_compares_with_the_uniform_share():
    card = {"targets": ["es"], "expected": "x"}
    assert check_claim(card, {"es": 0.3, "en": 0.35, "fr": 0.35}, "m")["status"] == "✗"
    assert check_claim(card, {"es": 0.4, "en": 0.3, "fr": 0.3}, "m")["status"] == "✓"


def test_experiment_report_writes_every_table_and_figure(tmp_path, denoise_data_dir):
    runs, _ = _selections(tmp_path, denoise_data_dir)
    ev = runs / "scalebio" / "eval" / "testloss"
    ev.mkdir(parents=True)
    ev.joinpath("summary.json").write_text(json.dumps(
        {"metric": "test_loss", "value": 4.2, "stderr": 0.1, "n": 32, "grader": "g", "comparable_to_paper": False}))  # fmt: skip
    spec = {"models": ["tiny"], "methods": ["scalebio", "less"], "evals": ["testloss"]}
    out = experiment_report("denoise", spec, tmp_path / "results", denoise_data_dir)
    for f in ["weights", "downstream", "cost", "claims"]:
        assert (out / f"{f}.csv").exists() and (out / f"{f}.md").exists()
    for f in ["weights.png", "trajectory.png", "downstream.png"]:
        assert (out / f).stat().st_size > 1000
    assert "scalebio,testloss,test_loss,4.2" in (out / "downstream.csv").read_text().replace("tiny,", "")
    assert (
        "| tiny | weights fall as the noise rate rises | Spearman(noise, weight) | -1 |"
        in (out / "claims.md").read_text()
    )
