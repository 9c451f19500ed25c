"""Beyond-the-paper studies (``experiments.<e>.study``): the stability table's SD, Spearman and collapse verdicts,
and the online/clusters comparison's paired difference and purity, on run folders with known answers.

Modules: `scalebio/report/studies.py`, `scalebio/report/comparison_study.py`.
"""

from __future__ import annotations

import csv
import json

import pytest

from scalebio.common.selection import MethodInputs, write_selection
from scalebio.report.studies import study_report

NAMES = ["noise000", "noise025", "noise050", "noise075", "noise100"]


def _run(results, data_dir, experiment, method, seed, weights, testloss):
    rd = results / experiment / "tiny" / method / f"s{seed}"
    write_selection(MethodInputs(str(data_dir), "m", str(rd), budget=10, seed=seed), method, weights=weights,
                    wall_time_s=1.0, tokens=10)  # fmt: skip
    ev = rd / "eval" / "testloss"
    ev.mkdir(parents=True)
    ev.joinpath("summary.json").write_text(json.dumps(
        {"metric": "test_loss", "value": testloss, "n": 8, "grader": "g", "higher_is_better": False}))  # fmt: skip


def _rows(path):
    with open(path) as f:
        return {r["method"]: r for r in csv.DictReader(f)}


def test_stability_table_measures_spread_ordering_and_collapse(tmp_path, denoise_data_dir):
    results = tmp_path / "results"
    steady = dict(zip(NAMES, [0.4, 0.25, 0.2, 0.1, 0.05]))  # the same falling weights every seed
    for seed in range(3):
        _run(results, denoise_data_dir, "stab", "scalebio", seed, steady, 4.0)
        one_hot = dict.fromkeys(NAMES, 0.0) | {NAMES[seed]: 1.0}  # collapsed, on a different source each seed
        _run(results, denoise_data_dir, "stab", "scalebio_lr10", seed, one_hot, 5.0)
    spec = {"models": ["tiny"], "methods": ["scalebio", "scalebio_lr10"], "evals": ["testloss"],
            "study": {"kind": "stability"}}  # fmt: skip
    out = study_report("stab", spec, results, denoise_data_dir, [0, 1, 2])
    rows = _rows(out / "study.csv")
    assert (
        float(rows["scalebio"]["max_source_sd"]) == pytest.approx(0.0, abs=1e-12)
        and rows["scalebio"]["sd_verdict"] == "holds"
    )
    assert float(rows["scalebio"]["rho"]) == pytest.approx(-1.0)
    assert rows["scalebio"]["collapse_verdict"] == "no collapse"
    # one-hot on source 0, 1, 2 of three seeds: SD of (1, 0, 0) = 0.577 on each of those sources
    assert float(rows["scalebio_lr10"]["max_source_sd"]) == pytest.approx(0.5774, abs=1e-4)
    assert rows["scalebio_lr10"]["sd_verdict"] == "does not hold"
    assert rows["scalebio_lr10"]["collapse_verdict"] == "collapsed"
    assert float(rows["scalebio_lr10"]["testloss mean"]) == 5.0
    assert (out / "study.png").stat().st_size > 1000 and "stability" in (out / "study.md").read_text()


@pytest.mark.parametrize("kind", ["online", "clusters"])
def test_comparison_pairs_seeds_with_the_reference_experiment(kind, tmp_path, denoise_data_dir):
    results = tmp_path / "results"
    data = tmp_path / "data"
    data.mkdir()
    card = json.loads((denoise_data_dir / "card.json").read_text())
    if kind == "clusters":
        card["purity"] = {"source": 0.61, "corrupted": 0.97}
    data.joinpath("card.json").write_text(json.dumps(card))
    for seed, loss in enumerate([4.0, 4.3, 4.1]):
        for method, p in (("uniform", [0.2] * 5), ("scalebio", [0.4, 0.3, 0.2, 0.1, 0.0])):
            _run(results, denoise_data_dir, "ref", method, seed, dict(zip(NAMES, p)), loss)
            _run(results, denoise_data_dir, "exp", method, seed, dict(zip(NAMES, p)), loss - 0.1)  # 0.1 better
    spec = {"models": ["tiny"], "methods": ["uniform", "scalebio"], "evals": ["testloss"],
            "study": {"kind": kind, "compare_with": "ref"}}  # fmt: skip
    ref_spec = {k: v for k, v in spec.items() if k != "study"}
    out = study_report("exp", spec, results, data, [0, 1, 2], ("ref", ref_spec, str(denoise_data_dir)))
    rows = _rows(out / "study.csv")
    for method in ("uniform", "scalebio"):
        r = rows[method]
        assert float(r["diff"]) == pytest.approx(-0.1) and float(r["diff_low"]) == pytest.approx(-0.1)
        assert float(r["reference mean"]) == pytest.approx(4.1333, abs=1e-3) and r["seeds"] == "3"
    assert float(rows["scalebio"]["rho"]) == pytest.approx(-1.0)
    md = (out / "study.md").read_text()
    assert ("corrupted 0.970" in md) == (kind == "clusters")
    with pytest.raises(Exception, match="compare_with"):
        study_report("exp", spec, results, data, [0, 1, 2], None)


def test_online_study_has_its_control_and_scalebio_s_share_of_the_change(tmp_path, denoise_data_dir):
    """Known answers: online is 0.1 better for uniform (the control: an effect of the sampling itself) and 0.2
    better for ScaleBiO, so ScaleBiO − uniform is −0.05 static, −0.15 online, and the difference of the two −0.1."""
    results = tmp_path / "results"
    for seed, base in enumerate([4.0, 4.3, 4.1]):
        for exp, shift_u, shift_s in (("ref", 0.0, 0.0), ("exp", -0.1, -0.2)):
            _run(results, denoise_data_dir, exp, "uniform", seed, dict(zip(NAMES, [0.2] * 5)), base + shift_u)
            _run(results, denoise_data_dir, exp, "scalebio", seed, dict(zip(NAMES, [0.3, 0.25, 0.2, 0.15, 0.1])),
                 base - 0.05 + shift_s)  # fmt: skip
    model = results / "exp" / "tiny" / "scalebio" / "s0" / "model"
    model.mkdir(parents=True)
    model.joinpath("sft_config.json").write_text(json.dumps({"options": {"epochs": 1.0, "sampling": "online"}}))
    spec = {"models": ["tiny"], "methods": ["scalebio", "uniform"], "evals": ["testloss"],
            "study": {"kind": "online", "compare_with": "ref"}}  # fmt: skip
    ref_spec = {k: v for k, v in spec.items() if k != "study"}
    out = study_report("exp", spec, results, denoise_data_dir, [0, 1, 2], ("ref", ref_spec, str(denoise_data_dir)))
    with open(out / "study.csv") as f:
        rows = {r["comparison"]: r for r in csv.DictReader(f)}
    assert rows["uniform: online − static"]["role"] == "control (no learned weights)"
    assert float(rows["uniform: online − static"]["diff"]) == pytest.approx(-0.1)
    assert float(rows["scalebio − uniform, static"]["diff"]) == pytest.approx(-0.05)
    assert float(rows["scalebio − uniform, online"]["diff"]) == pytest.approx(-0.15)
    did = rows["(scalebio − uniform) online − (scalebio − uniform) static"]
    assert float(did["diff"]) == pytest.approx(-0.1) and float(did["diff_high"]) == pytest.approx(-0.1)
    md = (out / "study.md").read_text()
    assert "At 1 SFT epoch, 'online' is one draw" in md and "## ScaleBiO against its control" in md


def test_clusters_claim_is_the_lowest_weight_with_the_reachable_spearman_beside_it(tmp_path, denoise_data_dir):
    from scalebio.report.claims import best_spearman, claims, noisiest_lowest
    from scalebio.report.tables import group

    one_corrupted = {"c0": 1.0, "c1": 0.0, "c2": 0.0, "c3": 0.0, "c4": 0.0}
    assert best_spearman(one_corrupted) == pytest.approx(-(0.5**0.5))  # −1/√2: ρ ≤ −0.9 is out of reach
    assert best_spearman(dict(zip(NAMES, [0.0, 0.25, 0.5, 0.75, 1.0]))) == pytest.approx(-1.0)

    from scalebio.common.registry import method_info

    class R:  # the only fields the weight claims read
        def __init__(self, seed, p):
            self.seed, self.composition, self.model, self.method = seed, p, "tiny", "scalebio"
            self.info = method_info("scalebio")

    runs = [R(0, {"c0": 0.10, "c1": 0.3, "c2": 0.2, "c3": 0.25, "c4": 0.15}),
            R(1, {"c0": 0.12, "c1": 0.3, "c2": 0.2, "c3": 0.24, "c4": 0.14}),
            R(2, {"c0": 0.16, "c1": 0.3, "c2": 0.2, "c3": 0.20, "c4": 0.14})]  # fmt: skip
    gap, k = noisiest_lowest(one_corrupted, runs)
    assert k == 2 and gap.value == pytest.approx((-0.05 - 0.02 + 0.02) / 3)
    rows = claims({"noise": one_corrupted}, group(runs), {}, [], list(one_corrupted))
    assert rows[0]["claim"] == "the most corrupted source ['c0'] get the lowest weight"
    assert "most negative reachable -0.707" in rows[0]["measure"] and rows[0]["verdict"] == "inconclusive"


def test_spearman_interval_stays_inside_minus_one_one():
    from scalebio.report.claims import noise_spearman
    from scalebio.report.stats import t_interval

    rhos = [-1.0, -0.9, -1.0, -1.0, -1.0]
    assert t_interval(rhos).low < -1.0  # the interval the report used to print ([−1.036, −0.924] in one run)

    class R:
        def __init__(self, p):
            self.composition = dict(zip(NAMES, p))

    noise = dict(zip(NAMES, [0.0, 0.25, 0.5, 0.75, 1.0]))
    runs = [R([0.3, 0.25, 0.2, 0.15, 0.1])] * 4 + [R([0.3, 0.2, 0.25, 0.15, 0.1])]  # ρ = −1 ×4, −0.9
    est = noise_spearman(noise, runs)
    assert est.value == pytest.approx(-0.98) and -1.0 <= est.low <= est.high <= -0.9
