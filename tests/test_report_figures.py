"""Every figure of a small run, rendered and checked from matplotlib's own layout: no title or legend past the
figure, no legend over a plotted line, bar, error bar, marker or band, at most 1,600 px wide; one colour per
method; the layout check itself finds the faults it exists for.

The run is built from run folders in the layout ``scalebio.report.collect`` reads (selection.json, per-item
evaluation files, metrics.jsonl, Snakemake benchmark files): a 3-seed denoising experiment with every kind of
method, a 1-seed experiment on a real (non-tiny) model, and the four studies (stability, online, clusters, Pareto).

Modules: `scalebio/report/figures.py`, `scalebio/report/style.py`.
"""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import matplotlib.image
import matplotlib.pyplot as plt
import pytest

from scalebio.common.selection import MethodInputs, write_selection
from scalebio.report import methods, style
from scalebio.report.studies import study_report
from scalebio.report.tables import experiment_report

NAMES = ["noise000", "noise025", "noise050", "noise075", "noise100"]
LANGS = ["english", "spanish", "portuguese", "italian", "german", "french"]
HEAD = "s\th:m:s\tmax_rss\tcpu_time\n"


def _selection(results: Path, exp: str, model: str, method: str, seed: int, data: Path, **kw) -> Path:
    rd = results / exp / model / method / f"s{seed}"
    write_selection(MethodInputs(str(data), "m", str(rd), budget=24, seed=seed), method, wall_time_s=1.0 + seed,
                    tokens=100, **kw)  # fmt: skip
    return rd


def _evaluation(rd: Path, ev: str, items: dict[str, float], metric: str, higher: bool, by_target=None) -> None:
    folder = rd / "eval" / ev
    folder.mkdir(parents=True, exist_ok=True)
    key, name = ("correct", "predictions.jsonl") if higher else ("loss", "losses.jsonl")
    summary = {"metric": metric, "value": sum(items.values()) / len(items), "n": len(items),
               "higher_is_better": higher, "grader": "g"}  # fmt: skip
    if by_target:
        summary["by_target"] = by_target
    folder.joinpath("summary.json").write_text(json.dumps(summary))
    folder.joinpath(name).write_text("".join(json.dumps({"id": i, key: v}) + "\n" for i, v in items.items()))


def _trajectory(rd: Path, final: dict[str, float], steps: int = 30) -> None:
    rows = []
    for t in range(1, steps + 1):
        lr = 1e-2 * 0.5 * (1 + math.cos(math.pi * t / steps))
        p = {k: 1 / len(final) + (v - 1 / len(final)) * t / steps for k, v in final.items()}
        rows.append({"step": t, "weights": p, "lr_theta": lr})
    rd.joinpath("metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def _losses(rng: random.Random, level: float, n: int = 32) -> dict[str, float]:
    return {f"test-{i}": level + rng.gauss(0, 0.3) for i in range(n)}


def _bench(results: Path, rel: str, cpu: float) -> None:
    path = results / "benchmarks" / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(HEAD + f"{cpu * 1.2:.2f}\t0:00:01\t100\t{cpu:.2f}\n")


def _clusters_data(root: Path, denoise: Path) -> Path:
    """The denoising pool as 5 clusters: cluster0 holds the corrupted examples (noise 1.0), the others clean."""
    data = root / "clusters_data"
    (data / "sources").mkdir(parents=True)
    rows = [json.loads(line) for line in (denoise / "sources" / "noise000.jsonl").read_text().splitlines()][:10]
    for j in range(5):
        body = [dict(r, id=f"cluster{j}-{i}", corrupted=j == 0) for i, r in enumerate(rows)]
        (data / "sources" / f"cluster{j}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in body))
    (data / "validation.jsonl").write_text((denoise / "validation.jsonl").read_text())
    card = {"noise": {f"cluster{j}": float(j == 0) for j in range(5)}, "purity": {"source": 0.4, "corrupted": 1.0},
            "expected": "weights fall as the noise rate rises", "sources": {f"cluster{j}": 10 for j in range(5)}}  # fmt: skip
    (data / "card.json").write_text(json.dumps(card))
    return data


SPECS = {
    "denoise": {"models": ["tiny"], "methods": ["uniform", "scalebio", "less", "oracle"], "evals": ["testloss"],
                "seeds": [0, 1, 2]},
    "arith": {"models": ["smollm2-135m"], "methods": ["uniform", "scalebio", "less", "oracle"], "evals": ["math"],
              "seeds": [0]},
    "denoise_stability": {"models": ["tiny"], "methods": ["scalebio", "scalebio_decay", "scalebio_lr10"],
                          "evals": ["testloss"], "seeds": [0, 1, 2], "study": {"kind": "stability"}},
    "denoise_online": {"models": ["tiny"], "methods": ["scalebio", "uniform"], "evals": ["testloss"],
                       "seeds": [0, 1, 2], "study": {"kind": "online", "compare_with": "denoise"}},
    "denoise_clusters": {"models": ["tiny"], "methods": ["scalebio", "uniform"], "evals": ["testloss"],
                         "seeds": [0, 1, 2], "study": {"kind": "clusters", "compare_with": "denoise"}},
    "two_targets": {"models": ["tiny"], "methods": ["uniform", "sb_es", "sb_en", "sb_worst"], "evals": ["testloss"],
                    "seeds": [0, 1, 2], "study": {"kind": "pareto"}},
}  # fmt: skip
FALLING = [0.3, 0.25, 0.2, 0.15, 0.1]


@pytest.fixture(scope="module")
def small_run(tmp_path_factory, denoise_data_dir):
    """(results folder, {experiment: data folder}) of the small run described in the module docstring."""
    from scalebio.assets.embedded import build

    root = tmp_path_factory.mktemp("small_run")
    results, rng = root / "results", random.Random(0)
    dd = denoise_data_dir
    levels = {"uniform": 5.70, "scalebio": 5.66, "less": 5.60, "oracle": 5.50}
    for seed in range(3):
        for method, level in levels.items():
            kw = {"weights": dict(zip(NAMES, FALLING if method == "scalebio" else [0.2] * 5))}
            if method == "less":
                kw = {"examples": [{"source": "noise000", "id": f"noise000-{i}"} for i in range(20)]
                      + [{"source": "noise025", "id": f"noise025-{i}"} for i in range(4)]}  # fmt: skip
            if method == "oracle":
                kw = {"weights": dict.fromkeys(NAMES, 0.0) | {"noise000": 1.0}}
            rd = _selection(results, "denoise", "tiny", method, seed, dd, **kw)
            _evaluation(rd, "testloss", _losses(rng, level + 0.01 * seed), "test_loss", False)
            if method == "scalebio":
                _trajectory(rd, dict(zip(NAMES, FALLING)))
            for m in ("scalebio", "uniform"):  # the online study: 0.06 better for both (an ordering effect)
                if method == m:
                    rd = _selection(results, "denoise_online", "tiny", m, seed, dd, **kw)
                    _evaluation(rd, "testloss", _losses(rng, level - 0.06), "test_loss", False)
        for method, (p, level) in {"scalebio": (FALLING, 5.66), "scalebio_decay": ([0.24, 0.22, 0.2, 0.18, 0.16], 5.67),
                                   "scalebio_lr10": ([0.96, 0.01, 0.01, 0.01, 0.01], None)}.items():  # fmt: skip
            rd = _selection(results, "denoise_stability", "tiny", method, seed, dd, weights=dict(zip(NAMES, p)))
            _trajectory(rd, dict(zip(NAMES, p)))
            if level is not None:
                _evaluation(rd, "testloss", _losses(rng, level), "test_loss", False)
    base = results / "denoise" / "tiny" / "base"
    _evaluation(base, "testloss", _losses(rng, 8.26), "test_loss", False)

    clusters = _clusters_data(root, dd)
    for seed in range(3):
        for method, p in (("scalebio", [0.15, 0.22, 0.215, 0.21, 0.205]), ("uniform", [0.2] * 5)):
            rd = _selection(results, "denoise_clusters", "tiny", method, seed, clusters,
                            weights={f"cluster{j}": v for j, v in enumerate(p)})  # fmt: skip
            _evaluation(rd, "testloss", _losses(rng, 5.62 if method == "scalebio" else 5.64), "test_loss", False)

    acc = {"uniform": 0.065, "scalebio": 0.11, "less": 0.12, "oracle": 0.46}
    cpu = {"uniform": 1.0, "scalebio": 400.0, "less": 300.0, "oracle": 1.0}
    for method, a in acc.items():
        rd = _selection(results, "arith", "smollm2-135m", method, 0, dd, weights=dict.fromkeys(NAMES, 0.2))
        _evaluation(rd, "math", {f"test-{i}": float(rng.random() < a) for i in range(200)}, "accuracy", True)
        _bench(results, f"select/arith/smollm2-135m/{method}/s0.tsv", cpu[method])
        _bench(results, f"finetune/arith/smollm2-135m/{method}/s0.tsv", 120.0)
        _bench(results, f"eval/arith/smollm2-135m/{method}/s0/math.tsv", 60.0)
    _evaluation(results / "arith" / "smollm2-135m" / "base", "math",
                {f"test-{i}": float(i % 100 == 0) for i in range(200)}, "accuracy", True)  # fmt: skip
    _bench(results, "eval/arith/smollm2-135m/base/math.tsv", 60.0)
    _bench(results, "select/arith_twin/smollm2-135m/less/s0.tsv", 250.0)  # another experiment: never counted here

    two = build("multilingual", {"languages": LANGS, "target": ["spanish", "french"], "n_per_source": 24, "n_val": 8,
                                 "n_test": 8}, root / "two_data", seed=0)  # fmt: skip
    test_rows = [json.loads(line) for line in (two / "test.jsonl").read_text().splitlines()]
    objectives = {"sb_es": {"rule": "weighted", "weights": {"spanish": 1.0, "french": 0.0}},
                  "sb_en": {"rule": "weighted", "weights": {"spanish": 0.0, "french": 1.0}},
                  "sb_worst": {"rule": "worst_case"}}  # fmt: skip
    centres = {"uniform": (6.77, 7.12), "sb_es": (6.74, 7.15), "sb_en": (6.78, 7.07), "sb_worst": (6.77, 7.08)}
    for seed in range(3):
        for method, (es, fr) in centres.items():
            rd = _selection(results, "two_targets", "tiny", method, seed, two, weights=dict.fromkeys(LANGS, 1 / 6))
            if method in objectives:
                rd.joinpath("config.json").write_text(json.dumps({"objectives": objectives[method]}))
            items = {r["id"]: (es if r["target"] == "spanish" else fr) + rng.gauss(0, 0.2) for r in test_rows}
            by = {t: {"value": sum(v for i, v in items.items() if i.startswith("test-") and
                                   next(r for r in test_rows if r["id"] == i)["target"] == t) / 8}
                  for t in ("spanish", "french")}  # fmt: skip
            _evaluation(rd, "testloss", items, "test_loss", False, by_target=by)
    data = {e: dd for e in SPECS} | {"denoise_clusters": clusters, "two_targets": two}
    return results, data


TWINS = {"arith": {"smollm2-135m/less": {"0": "arith_twin"}}}
"""arith's LESS selection is a copy of arith_twin's: its cost is that experiment's selection job."""


def render_all(results: Path, data: dict) -> list[Path]:
    from scalebio.report.cost import main as cost_figure

    out = []
    for exp, spec in SPECS.items():
        out.append(experiment_report(exp, spec, results, data[exp], spec["seeds"], TWINS.get(exp)))
        if any(m != "tiny" for m in spec["models"]):  # a real model: the quality-vs-cost figure
            cost_figure(["--results", str(results), "--experiment", exp])
        if "study" in spec:
            ref = spec["study"].get("compare_with")
            reference = (ref, SPECS[ref], str(data[ref])) if ref else None
            study_report(exp, spec, results, data[exp], spec["seeds"], reference)
    return sorted(p for folder in out for p in folder.glob("*.png"))


def test_every_figure_of_a_small_run_has_a_clean_layout(small_run, monkeypatch):
    monkeypatch.setattr(style, "STRICT", True)  # a layout problem raises inside the report
    pngs = render_all(*small_run)
    names = {(p.parent.parent.name, p.name) for p in pngs}
    for exp in SPECS:
        assert {(exp, "weights.png"), (exp, "trajectory.png"), (exp, "downstream.png")} <= names
        assert ((exp, "study.png") in names) == ("study" in SPECS[exp])
        assert ((exp, "cost_quality.png") in names) == (exp == "arith")
    for p in pngs:
        height, width = matplotlib.image.imread(p).shape[:2]
        assert width <= 1600, f"{p}: {width} px wide"


def test_the_layout_check_finds_a_clipped_title_and_a_legend_over_the_data():
    fig, ax = plt.subplots(figsize=(4, 3))
    ax.bar(range(5), [1, 2, 3, 4, 5], label="bars")
    ax.errorbar([1, 3], [2, 4], yerr=0.5, label="errorbar")
    ax.legend(loc="center")
    ax.set_title("a title far too long for a figure four inches wide, so it runs off both sides of it")
    problems = style.layout_problems(fig)
    plt.close(fig)
    assert any("title" in p and "extends past the figure" in p for p in problems)
    assert any("legend covers a Rectangle" in p for p in problems)
    fig, (ax,) = style.figure(1, 4, 3, legend_w=1.5)  # the same content, laid out by the style module
    ax.bar(range(5), [1, 2, 3, 4, 5], label="bars")
    ax.errorbar([1, 3], [2, 4], yerr=0.5, label="errorbar")
    style.legend(fig)
    style.suptitle(fig, "a title far too long for a figure four inches wide, so it runs off both sides of it")
    assert style.layout_problems(fig) == []
    plt.close(fig)


def test_one_colour_per_method_everywhere_and_stable_colours_for_unknown_names():
    import hashlib

    known = ["uniform", "scalebio", "less", "rho_loss", "doremi", "oracle", "oracle_clean", "base"]
    assert len({style.method_colour(m) for m in known}) == len(known)
    assert style.method_colour("reference") == style.method_colour("rho_loss")  # an alias, the same method
    expected = style.FALLBACK[int(hashlib.md5(b"my_method").hexdigest(), 16) % len(style.FALLBACK)]
    assert style.method_colour("my_method") == expected  # md5: the same in every process, unlike hash()
    declared = {c for m in known for c in (methods.describe(m).colour, *methods.describe(m).variant_colours)}
    assert not set(style.FALLBACK) & declared


def test_a_variant_takes_its_modules_colour_family_in_the_order_met():
    """Colours come from the methods' own INFO: ScaleBiO's variants take ScaleBiO's family, in the order the report
    met them (the config's method order), so two variants of one figure never share a colour."""
    from scalebio.common.registry import method_info

    family = method_info("scalebio").variant_colours
    first = methods.describe("study_arm_a", "scalebio.method")
    second = methods.describe("study_arm_b", "scalebio.method")
    assert first.variant_of == second.variant_of == "scalebio" and first.display == "study_arm_a"
    met = [n for n, i in methods.known().items() if i.variant_of == "scalebio"]  # this process's variants, in order
    a, b = met.index("study_arm_a"), met.index("study_arm_b")
    assert b == a + 1 and [style.method_colour("study_arm_a"), style.method_colour("study_arm_b")] == list(
        family[a : a + 2]
    )


def test_a_one_seed_figure_says_so_and_clusters_are_labelled_with_their_corruption():
    assert style.seeds_text(1) == "1 seed" and style.seeds_text(3) == "3 seeds"
    card = {"noise": {"cluster0": 1.0, "cluster1": 0.0}, "harmful": ["chat"], "targets": ["word_add"]}
    assert style.source_label("cluster0", card) == "cluster0 (100 % corrupted)"
    assert style.source_label("chat", {"harmful": ["chat"]}) == "chat (harmful)"
    assert style.source_label("word_add", {"targets": ["word_add"]}) == "word_add (target)"


def test_cost_table_counts_this_experiment_s_jobs_and_sets_quality_beside_them(small_run):
    """arith, 1 seed: ScaleBiO 400 + 120 + 60 = 580 CPU s per run, the base model its evaluation (60 s); LESS's
    selection is a copy of arith_twin's, so its run is charged 250 + 120 + 60 = 430 s while its own stage sums
    (this experiment's jobs) keep its own 300 s selection job; arith_twin's job is in no stage sum here."""
    import csv

    results, data = small_run
    experiment_report("arith", SPECS["arith"], results, data["arith"], [0], TWINS["arith"])
    with open(results / "arith" / "report" / "cost.csv", newline="") as f:
        rows = {r["method"]: r for r in csv.DictReader(f)}
    assert float(rows["scalebio"]["run_cpu_s"]) == 580.0 and float(rows["scalebio"]["select_cpu_s"]) == 400.0
    assert float(rows["scalebio"]["total_wall_s"]) == pytest.approx(1.2 * 580.0, abs=0.2)
    assert float(rows["less"]["run_cpu_s"]) == 430.0 and float(rows["less"]["select_cpu_s"]) == 300.0
    assert "copied from ['arith_twin']" in rows["less"]["note"]
    assert float(rows["base"]["run_cpu_s"]) == 60.0 and rows["base"]["select_cpu_s"] == ""
    oracle = rows["oracle"]  # quality with the tables' interval (bootstrap over the 200 problems)
    assert float(oracle["quality_low"]) < float(oracle["quality"]) < float(oracle["quality_high"])
    assert oracle["evaluation"] == "math" and oracle["metric"] == "accuracy"
