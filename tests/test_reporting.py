"""Report stage: composition and harmful share of selections, statistics over seeds, claims with verdicts, the
tables and figures of an experiment, and the paper-vs-ours tables (no number without a source).

Modules: `scalebio/report/tables.py`, `scalebio/report/collect.py`, `scalebio/report/compare.py`,
`scalebio/report/claims.py`, `scalebio/report/cost.py`, `scalebio/report/weights_table.py`,
`scalebio/report/markdown.py`, `scalebio/report/paper.py`, `scalebio/report/paper_vs_ours.py`.
"""

from __future__ import annotations

import json
import math

import pytest

from scalebio.common.selection import MethodInputs, write_selection
from scalebio.report.collect import composition, selection_corruption
from scalebio.report.stats import UNTESTED, Estimate, t_interval, verdict
from scalebio.report.tables import experiment_report

NAMES = ["noise000", "noise025", "noise050", "noise075", "noise100"]


def _run(results, data_dir, method, seed, weights=None, examples=None, testloss=None, items=None):
    rd = results / "denoise" / "tiny" / method / f"s{seed}"
    inputs = MethodInputs(str(data_dir), "m", str(rd), budget=10, seed=seed)
    write_selection(inputs, method, weights=weights, examples=examples, wall_time_s=2.0 + seed, tokens=100)
    if testloss is not None:
        ev = rd / "eval" / "testloss"
        ev.mkdir(parents=True)
        ev.joinpath("summary.json").write_text(json.dumps(
            {"metric": "test_loss", "value": testloss, "stderr": 0.1, "n": 32, "grader": "g", "higher_is_better": False}))  # fmt: skip
        if items:
            ev.joinpath("losses.jsonl").write_text(
                "".join(json.dumps({"id": k, "loss": v}) + "\n" for k, v in items.items())
            )
    return rd


def test_composition_and_harmful_share_of_both_selection_kinds(tmp_path, denoise_data_dir):
    w = dict(zip(NAMES, [0.4, 0.3, 0.2, 0.1, 0.0]))
    sel_w = json.loads((_run(tmp_path, denoise_data_dir, "scalebio", 0, weights=w) / "selection.json").read_text())
    clean = [{"source": "noise000", "id": f"noise000-{i}"} for i in range(6)]
    dirty = [{"source": "noise100", "id": f"noise100-{i}"} for i in range(2)]
    sel_e = json.loads(
        (_run(tmp_path, denoise_data_dir, "less", 0, examples=clean + dirty) / "selection.json").read_text()
    )
    assert composition(sel_w) == w
    assert composition(sel_e)["noise000"] == pytest.approx(0.75) and composition(sel_e)["noise100"] == 0.25
    # weights: Σ p_k · corruption rate of source k; examples: mean of the picked examples' flags
    assert selection_corruption(sel_w, denoise_data_dir) == pytest.approx(0.3 * 0.25 + 0.2 * 0.5 + 0.1 * 0.75)
    rows = (denoise_data_dir / "sources" / "noise100.jsonl").read_text().splitlines()[:2]
    n_bad = sum(json.loads(line)["corrupted"] for line in rows)
    assert selection_corruption(sel_e, denoise_data_dir) == pytest.approx(n_bad / 8)


def test_t_interval_and_verdicts():
    est = t_interval([2.0, 3.0, 4.0])  # mean 3, SD 1, t(0.975, 2) = 4.303: [0.52, 5.48]
    assert est.value == 3.0 and est.low == pytest.approx(3 - 4.3027 / math.sqrt(3), abs=1e-3)
    assert verdict(est, 0.0, ">") == "holds" and verdict(est, 2.5, ">") == "inconclusive"
    assert verdict(est, 10.0, ">") == "does not hold" and verdict(est, 10.0, "<") == "holds"
    assert verdict(Estimate(0.5), 0.0, ">") == UNTESTED  # one number is not a test, whichever side it is on


def test_two_seeds_give_mean_sd_and_paired_differences(tmp_path, denoise_data_dir):
    """Two seeds per method: the weights table holds mean and SD over the seeds, the downstream table the paired
    difference to uniform over the seeds, the claims table a Spearman with an interval and a verdict."""
    results = tmp_path / "results"
    p0, p1 = [0.4, 0.3, 0.2, 0.06, 0.04], [0.36, 0.32, 0.18, 0.1, 0.04]
    for seed, (p, loss_s, loss_u) in enumerate([(p0, 4.0, 4.5), (p1, 4.2, 4.6)]):
        _run(results, denoise_data_dir, "scalebio", seed, weights=dict(zip(NAMES, p)), testloss=loss_s)
        _run(results, denoise_data_dir, "uniform", seed, weights=dict.fromkeys(NAMES, 0.2), testloss=loss_u)
    spec = {"models": ["tiny"], "methods": ["uniform", "scalebio"], "evals": ["testloss"], "seeds": [0, 1]}
    out = experiment_report("denoise", spec, results, denoise_data_dir)
    weights = {r.split(",")[1]: r.split(",") for r in (out / "weights.csv").read_text().splitlines()[1:]}
    header = (out / "weights.csv").read_text().splitlines()[0].split(",")
    sb = dict(zip(header, weights["scalebio"]))
    assert float(sb["noise000"]) == pytest.approx(0.38) and float(sb["noise000_sd"]) == pytest.approx(0.0283, abs=1e-4)
    assert sb["seeds"] == "2"
    down = [dict(zip(*[line.split(",") for line in [(out / "downstream.csv").read_text().splitlines()[0], row]]))
            for row in (out / "downstream.csv").read_text().splitlines()[1:]]  # fmt: skip
    sbd = next(r for r in down if r["method"] == "scalebio")
    assert float(sbd["mean"]) == pytest.approx(4.1) and float(sbd["diff_vs_uniform"]) == pytest.approx(-0.45)
    claims = (out / "claims.md").read_text()
    assert "Spearman(noise, ScaleBiO weight)" in claims and "seeds (n=2, t-interval" in claims
    assert "ScaleBiO beats uniform on testloss" in claims  # lower loss is better: the sign is flipped
    for f in ["weights.png", "trajectory.png", "downstream.png"]:
        assert (out / f).stat().st_size > 1000


def test_one_seed_uses_a_paired_bootstrap_over_items(tmp_path, denoise_data_dir):
    results = tmp_path / "results"
    items_u = {f"t{i}": 5.0 + 0.01 * i for i in range(50)}
    items_s = {k: v - 0.5 for k, v in items_u.items()}
    _run(results, denoise_data_dir, "uniform", 0, weights=dict.fromkeys(NAMES, 0.2), testloss=5.245, items=items_u)
    _run(results, denoise_data_dir, "scalebio", 0, weights=dict.fromkeys(NAMES, 0.2), testloss=4.745, items=items_s)
    spec = {"models": ["tiny"], "methods": ["uniform", "scalebio"], "evals": ["testloss"], "seeds": [0]}
    out = experiment_report("denoise", spec, results, denoise_data_dir)
    text = (out / "downstream.md").read_text()
    assert "-0.500 [-0.500, -0.500]" in text and "training randomness not covered (n=50 items" in text


def test_paper_tables_never_show_a_number_without_a_source_and_keep_its_digits(tmp_path):
    from scalebio.report.paper import load_paper_numbers
    from scalebio.report.paper_vs_ours import paper_table

    numbers = load_paper_numbers()
    for kind in ("math", "mtbench"):
        header, rows = paper_table(kind, numbers)
        for row in rows:
            for cell in row[1:]:
                assert cell == "—" or cell.endswith("[papernotes]"), cell  # every paper number names its source
    less = {r[0]: r for r in paper_table("mtbench", numbers)[1]}["LESS"]
    assert less[3] == "7.20 [papernotes]"  # as the source writes it, not 7.2
    assert paper_table("math", numbers)[1][0][2] == "54.0 [papernotes]"
    bad = tmp_path / "numbers.yaml"
    bad.write_text("sources: {}\nmath: {rows: [{model: X, method: uniform, gsm8k: 1.0}]}\n")
    with pytest.raises(Exception, match="no declared source"):
        load_paper_numbers(bad)


def test_paper_vs_ours_sets_effects_beside_effects_and_the_official_weights_beside_ours(tmp_path, denoise_data_dir):
    """The math table: the paper's ScaleBiO − uniform (+9.0 GSM8K, +5.8 MATH) beside ours (+0.045 with an interval
    covering 0: direction —; +0.100 [+0.02, +0.18] against LESS, where the paper gives no effect: —); the official
    weights' largest log-ratio ln(0.19033 / 0.06077) = 1.142 and Σ η_θ 1.17 beside our run's."""
    from scalebio.report.paper import load_paper_numbers
    from scalebio.report.paper_vs_ours import write_paper_tables

    results = tmp_path / "results"
    report = results / "arith" / "report"
    report.mkdir(parents=True)
    report.joinpath("downstream.csv").write_text(
        "model,method,evaluation,metric,mean,sd,seeds\n"
        "smol,uniform,math,accuracy,0.065,,1\nsmol,scalebio,math,accuracy,0.11,,1\nsmol,base,math,accuracy,0.005,,0\n"
    )
    report.joinpath("claims.csv").write_text(
        "model,claim,kind,comparator,evaluation,metric,measure,value,low,high\n"
        "smol,c,downstream,uniform,math,accuracy,ScaleBiO − uniform,0.045,-0.005,0.095\n"
        "smol,c,downstream,less,math,accuracy,ScaleBiO − less,0.1,0.02,0.18\n"
        "smol,c,weights,,,,w,0.05,0.01,0.09\n"
    )
    rd = results / "arith" / "smol" / "scalebio" / "s0"
    write_selection(MethodInputs(str(denoise_data_dir), "m", str(rd), budget=10, seed=0), "scalebio",
                    weights=dict(zip(NAMES, [0.3, 0.25, 0.2, 0.15, 0.1])), wall_time_s=1.0, tokens=1,
                    extra={"movement": {"max_log_ratio": 1.0986, "sum_lr_theta": 1.17}})  # fmt: skip
    config = {"seeds": [0], "experiments": {"arith": {"models": ["smol"], "evals": ["math"], "paper_table": "math"}}}
    out = tmp_path / "report"
    write_paper_tables(out, results, config, load_paper_numbers())
    effects = {r["ScaleBiO − baseline"]: r for r in _csv_rows(out / "paper_vs_ours_math.csv")}
    u = effects["ScaleBiO − Uniform"]
    assert u["paper: Qwen-2.5-32B GSM8K (accuracy points)"] == "+9.0 [papernotes]"
    assert u["paper: Qwen-2.5-32B MATH (accuracy points)"] == "+5.8 [papernotes]"
    assert u["ours: arith, smol (accuracy) [95% CI]"] == "+0.045 [-0.005, +0.095]"
    assert u["direction agrees (arith)"] == "—"  # our interval covers 0
    less = effects["ScaleBiO − LESS"]
    assert less["paper: Qwen-2.5-32B GSM8K (accuracy points)"] == "—" and less["direction agrees (arith)"] == "—"
    md = (out / "paper_vs_ours_math.md").read_text()
    assert "| MathInstruct | 0.19033 |" in md
    assert (
        "| official: Llama-3-8B, math SFT set | 10 | 0.19033 (MathInstruct) | 0.06077" in md and "| 1.142 | 1.17" in md
    )
    assert "| ours: arith, smol, ScaleBiO (1 seed) | 5 | 0.3 (noise000) | 0.1 (noise100) | 1.099 | 1.170 |" in md
    assert "| Uniform | 0.065, 1 seed |" in md and "| Uniform | 78.1 [papernotes] | 54.0 [papernotes] |" in md
    mt = {r["ScaleBiO − baseline"]: r for r in _csv_rows(out / "paper_vs_ours_mtbench.csv")}
    assert mt["ScaleBiO − LESS"]["paper: Gemma-2-9B MT-Bench (MT-Bench points)"] == "+0.31 [papernotes]"


def _manifest(rd, counts: dict, budget: int) -> None:
    (rd / "sft_data").mkdir(parents=True, exist_ok=True)
    (rd / "sft_data" / "manifest.json").write_text(json.dumps({"counts": counts, "budget": budget}))


def _csv_rows(path) -> list[dict]:
    import csv

    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_two_seeds_with_items_use_the_hierarchical_bootstrap_and_pair_the_base_model(tmp_path, denoise_data_dir):
    results = tmp_path / "results"
    items_u = {f"t{i}": 5.0 + 0.01 * i for i in range(50)}
    for seed in (0, 1):
        _run(results, denoise_data_dir, "uniform", seed, weights=dict.fromkeys(NAMES, 0.2), testloss=5.0, items=items_u)
        shifted = {k: v - 0.5 for k, v in items_u.items()}  # 0.5 lower on every item in both seeds
        _run(
            results, denoise_data_dir, "scalebio", seed, weights=dict.fromkeys(NAMES, 0.2), testloss=4.5, items=shifted
        )
    base = results / "denoise" / "tiny" / "base" / "eval" / "testloss"
    base.mkdir(parents=True)
    base.joinpath("summary.json").write_text(
        json.dumps({"metric": "test_loss", "value": 6.0, "higher_is_better": False})
    )
    base.joinpath("losses.jsonl").write_text(
        "".join(json.dumps({"id": k, "loss": v + 1}) + "\n" for k, v in items_u.items())
    )
    spec = {"models": ["tiny"], "methods": ["uniform", "scalebio"], "evals": ["testloss"], "seeds": [0, 1]}
    out = experiment_report("denoise", spec, results, denoise_data_dir)
    down = {r["method"]: r for r in _csv_rows(out / "downstream.csv")}
    assert float(down["scalebio"]["diff_low"]) == pytest.approx(-0.5) and float(
        down["base"]["diff_high"]
    ) == pytest.approx(1.0)
    assert "2 seeds × 50 items, hierarchical paired bootstrap" in (out / "downstream.md").read_text()
    claims = {r["claim"]: r for r in _csv_rows(out / "claims.csv")}
    beats = claims["ScaleBiO beats uniform on testloss"]  # lower loss is better: +0.5 after the sign flip
    assert float(beats["value"]) == pytest.approx(0.5) and beats["verdict"] == "holds" == beats["verdict_holm"]
    assert float(beats["p"]) == 0.0 and float(beats["mde"]) == pytest.approx(0.0, abs=1e-12)


def test_gap_closed_is_right_for_lower_is_better_and_oracles_are_reference_points(tmp_path, denoise_data_dir):
    """test_loss (lower is better): uniform 5.0, oracle 4.0. ScaleBiO at 4.5 closes half the gap, LESS at 5.5 is
    half a gap worse than uniform; both oracles come after the methods and get no gap of their own."""
    from scalebio.report.tables import gap_closed

    assert gap_closed(0.3, 0.2, 0.6) == pytest.approx(0.25) and gap_closed(4.5, 5.0, 4.0) == pytest.approx(0.5)
    assert gap_closed(1.0, 0.5, 0.5) is None
    results = tmp_path / "results"
    losses = {"oracle": 4.0, "uniform": 5.0, "scalebio": 4.5, "less": 5.5, "oracle_clean": 4.2}
    for method, loss in losses.items():
        _run(results, denoise_data_dir, method, 0, weights=dict.fromkeys(NAMES, 0.2), testloss=loss)
    spec = {"models": ["tiny"], "methods": list(losses), "evals": ["testloss"], "seeds": [0]}
    out = experiment_report("denoise", spec, results, denoise_data_dir)
    rows = _csv_rows(out / "downstream.csv")
    assert [r["method"] for r in rows] == ["uniform", "scalebio", "less", "oracle", "oracle_clean"]
    gap = {r["method"]: r["gap_closed"] for r in rows}
    assert float(gap["scalebio"]) == pytest.approx(0.5) and float(gap["less"]) == pytest.approx(-0.5)
    assert gap["oracle"] == gap["oracle_clean"] == gap["uniform"] == ""
    claims = (out / "claims.md").read_text()
    assert "the data mix matters (testloss, oracle)" in claims and "(testloss, oracle_clean)" in claims
    assert "untested (one estimate, no interval)" in claims and "point estimate" not in claims


def test_weights_table_shows_p_beside_the_sft_share_and_scalebio_movement(tmp_path, denoise_data_dir):
    results = tmp_path / "results"
    p = dict(zip(NAMES, [0.3, 0.25, 0.2, 0.15, 0.1]))
    movement = {"sum_lr_theta": 0.585, "max_log_ratio": 1.0986, "final_window_dp": 0.0012,
                "final_window_sum_lr_theta": 0.0031, "lr_theta_peak": 0.01, "low_lr_step": 52}  # fmt: skip
    rd = _run(results, denoise_data_dir, "scalebio", 0, weights=p)
    sel = json.loads((rd / "selection.json").read_text())
    sel.update(movement=movement, clip_fraction={"u": 0.97, "w": 0.99}, steps=60)
    (rd / "selection.json").write_text(json.dumps(sel))
    _manifest(rd, dict(zip(NAMES, [3, 2, 2, 2, 1])), 10)  # the SFT set: 3/10 from noise000, ...
    old = _run(results, denoise_data_dir, "scalebio", 1, weights=p)  # an older selection: no movement, no manifest
    sel = json.loads((old / "selection.json").read_text())
    sel.update(clip_fraction={"u": 0.1, "w": 0.2})
    (old / "selection.json").write_text(json.dumps(sel))
    picked = [{"source": "noise000", "id": f"noise000-{i}"} for i in range(10)]
    _manifest(_run(results, denoise_data_dir, "less", 0, examples=picked), {"noise000": 10}, 10)
    spec = {"models": ["tiny"], "methods": ["scalebio", "less"], "evals": [], "seeds": [0, 1], "budget": 10}
    out = experiment_report("denoise", spec, results, denoise_data_dir)
    md = (out / "weights.md").read_text()
    assert "learned weight p and realised SFT-set share" in md and "share of the SFT budget" not in md
    rows = {r["method"]: r for r in _csv_rows(out / "weights.csv")}
    assert float(rows["scalebio"]["noise000"]) == pytest.approx(0.3)  # p: mean over both seeds
    assert float(rows["scalebio"]["noise000_sft_share"]) == pytest.approx(0.3)  # only seed 0 built a set
    assert float(rows["scalebio"]["noise100_sft_share"]) == pytest.approx(0.1)
    assert float(rows["less"]["noise000_sft_share"]) == 1.0
    table = [line for line in md.splitlines() if line.startswith("| tiny | less |")][0]
    assert table.split(" | ")[3] == "—"  # an example-level method has no p
    assert "| 0.585 (0.50× official) | 1.099 | 0.0012 | 0.0031 | 52 of 60 | 97 / 99 |" in md
    assert "max \\|Δp\\| over last 10 % of steps" in md  # a "|" in a header would split the column
    assert "clipped in most steps (u 97%, w 99%): u and w follow normalised gradients" in md
    older = [line for line in md.splitlines() if line.startswith("| tiny | scalebio | 1 |")][0]
    assert "| — | — | — | — | — | 10 / 20 | mostly unclipped |" in older


def test_ceilings_of_the_data(tmp_path, denoise_data_dir):
    from scalebio.report.weights_table import ceilings, data_ceilings

    sizes = dict.fromkeys(NAMES, 120)
    bad = dict(zip(NAMES, [0, 30, 60, 90, 120]))  # 0/25/50/75/100 % corrupted
    c = ceilings(sizes, bad, ["noise000"], 240)
    assert c.source_floor == pytest.approx(30 / 240) and c.example_floor == 0.0 and c.target_cap == 0.5
    assert ceilings(sizes, bad, [], 600).example_floor == pytest.approx((600 - 300) / 600)
    langs = {"spanish": 80, "english": 200, "french": 200}
    c = ceilings(langs, None, ["spanish"], 240)
    assert c.target_cap == pytest.approx(1 / 3) and c.source_floor is None and c.example_floor is None
    assert ceilings(langs, None, ["spanish", "english"], 240).target_cap == 1.0  # capped at the whole set
    card = json.loads((denoise_data_dir / "card.json").read_text())
    c = data_ceilings(denoise_data_dir, card, NAMES, 100)  # 64 clean, then 36 of noise025
    flags = [json.loads(line)["corrupted"] for line in (denoise_data_dir / "sources" / "noise025.jsonl").open()]
    assert c.source_floor == pytest.approx(36 * sum(flags) / len(flags) / 100) and c.example_floor == 0.0


def test_weights_note_says_when_source_and_example_level_methods_face_different_ceilings(tmp_path, denoise_data_dir):
    results = tmp_path / "results"
    _run(results, denoise_data_dir, "scalebio", 0, weights=dict.fromkeys(NAMES, 0.2))
    _run(results, denoise_data_dir, "less", 0, examples=[{"source": "noise000", "id": "noise000-0"}])
    spec = {"models": ["tiny"], "methods": ["scalebio", "less"], "evals": [], "seeds": [0], "budget": 100}
    md = (experiment_report("denoise", spec, results, denoise_data_dir) / "weights.md").read_text()
    assert "a source-level mixture (scalebio) cannot bring the harmful share below" in md
    assert "an example-level selection (less) can reach 0.000" in md and "face different ceilings" in md


def test_trajectory_marks_where_lr_theta_falls_below_a_tenth_of_its_peak():
    from scalebio.report.figures import low_lr_step

    rows = [{"step": i + 1, "lr_theta": lr} for i, lr in enumerate([0.05, 1.0, 0.8, 0.3, 0.09, 0.05])]
    assert low_lr_step(rows) == 5  # the warm-up's 0.05 at step 1 comes before the peak: not counted
    assert low_lr_step([{"step": 1, "lr_theta": 0.01}, {"step": 2, "lr_theta": 0.01}]) is None  # constant
    assert low_lr_step([{"step": 1, "weights": {}}]) is None  # no lr_theta column


def test_runtime_per_experiment_and_method(tmp_path):
    """runtime.md's second table: per (experiment, model, method) the selection, SFT and evaluation seconds summed
    over seeds and evaluations; a stage that did not run (the base model's selection) is missing, not 0 s."""
    from scalebio.report.paper import benchmark_jobs, runtime_experiment_rows

    head = "s\th:m:s\tmax_rss\tcpu_time\n"
    for rel, wall, cpu in [
        ("select/denoise/tiny/scalebio/s0.tsv", 10.0, 8.0),
        ("select/denoise/tiny/scalebio/s1.tsv", 12.0, 9.0),
        ("finetune/denoise/tiny/scalebio/s0.tsv", 5.0, 4.0),
        ("eval/denoise/tiny/scalebio/s0/testloss.tsv", 2.0, 1.0),
        ("eval/denoise/tiny/scalebio/s0/math.tsv", 3.0, 2.0),
        ("eval/denoise/tiny/base/testloss.tsv", 1.5, 1.0),
        ("select/other/tiny/scalebio/s0.tsv", 100.0, 90.0),
    ]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(head + f"{wall}\t0:00:10\t100\t{cpu}\n")
    rows = {(r["experiment"], r["method"]): r for r in runtime_experiment_rows(benchmark_jobs(tmp_path))}
    sb = rows[("denoise", "scalebio")]
    assert (sb["seeds"], sb["select_cpu_s"], sb["select_wall_s"], sb["eval_cpu_s"]) == (2, 17.0, 22.0, 3.0)
    assert sb["total_cpu_s"] == 24.0 and rows[("other", "scalebio")]["total_cpu_s"] == 90.0
    base = rows[("denoise", "base")]
    assert base["select_cpu_s"] is None and base["finetune_wall_s"] is None and base["eval_wall_s"] == 1.5
