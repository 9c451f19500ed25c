"""The cross-experiment verdict table: the paper's effects from paper_numbers.yaml (never invented), whether our
direction agrees, the verdicts, end-to-end cost from the benchmark files, and the README block it renders."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import pytest

from scalebio.common.selection import MethodInputs, write_selection
from scalebio.report.paper import benchmark_jobs, load_paper_numbers, run_cpu_s
from scalebio.report.tables import experiment_report
from scalebio.report.verdicts import (
    END,
    START,
    direction_agrees,
    main,
    paper_effect,
    readme_block,
    readme_text,
    verdict_rows,
    write_verdicts,
)

ROOT = Path(__file__).resolve().parents[1]
NAMES = ["noise000", "noise025", "noise050", "noise075", "noise100"]
HEAD = "s\th:m:s\tmax_rss\tcpu_time\n"


def test_paper_effects_come_from_the_paper_numbers_only():
    numbers = load_paper_numbers()
    text, sign = paper_effect(numbers, "mtbench", "uniform")
    assert text == "+1.01 (Llama-3-8B), +1.10 (Qwen-2-7B), +2.20 (Gemma-2-9B) MT-Bench points [papernotes]"
    assert sign == 1
    assert paper_effect(numbers, "mtbench", "reference")[0].startswith("+0.23 (Llama-3-8B), +0.42 (Qwen-2-7B)")
    text, sign = paper_effect(numbers, "math", "uniform")
    assert text == "GSM8K +9.0 / MATH +5.8 (Qwen-2.5-32B) accuracy points [papernotes]" and sign == 1
    assert paper_effect(numbers, "math", "less") == ("—", 0)  # no source gives LESS on math: nothing invented
    assert paper_effect(numbers, None, "uniform") == ("—", 0) and paper_effect(numbers, "mtbench", "") == ("—", 0)


def test_direction_agrees_only_when_the_whole_interval_is_on_the_papers_side():
    assert direction_agrees(1, 0.01, 0.2) == "yes" and direction_agrees(1, -0.3, -0.01) == "no"
    assert direction_agrees(1, -0.1, 0.2) == "—"  # inconclusive
    assert direction_agrees(0, 0.01, 0.2) == "—"  # the paper gives no effect
    assert direction_agrees(1, None, None) == "—"  # one estimate, no interval
    assert direction_agrees(-1, -0.3, -0.01) == "yes"


def _run(results: Path, data_dir: Path, method: str, seed: int, acc: float, items: dict) -> None:
    rd = results / "instruct" / "m" / method / f"s{seed}"
    inputs = MethodInputs(str(data_dir), "m", str(rd), budget=10, seed=seed)
    write_selection(inputs, method, weights=dict.fromkeys(NAMES, 0.2), wall_time_s=1.0, tokens=1)
    ev = rd / "eval" / "ifeval"
    ev.mkdir(parents=True)
    ev.joinpath("summary.json").write_text(json.dumps({"metric": "prompt_level_strict_acc", "value": acc}))
    ev.joinpath("predictions.jsonl").write_text("".join(json.dumps({"id": k, "correct": v}) + "\n" for k, v in items.items()))  # fmt: skip


def _bench(results: Path, rel: str, cpu: float) -> None:
    path = results / "benchmarks" / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(HEAD + f"{cpu + 1}\t0:00:01\t100\t{cpu}\n")


@pytest.fixture
def verdict_results(tmp_path, denoise_data_dir) -> tuple[Path, dict]:
    """An `instruct`-like experiment beside the paper's MT-Bench table: ScaleBiO right on 30 of 40 items, uniform on
    20 (the same ids in both seeds), LESS on the same 30 as ScaleBiO; benchmark files for two seeds."""
    results = tmp_path / "results"
    for seed in (0, 1):
        right = {f"q{i}": float(i < 30) for i in range(40)}
        _run(results, denoise_data_dir, "scalebio", seed, 0.75, right)
        _run(results, denoise_data_dir, "uniform", seed, 0.5, {f"q{i}": float(i < 20) for i in range(40)})
        _run(results, denoise_data_dir, "less", seed, 0.75, right)
        for method, cpu in (("scalebio", 10.0 + seed), ("uniform", 1.0), ("less", 5.0)):
            _bench(results, f"select/instruct/m/{method}/s{seed}.tsv", cpu)
            _bench(results, f"finetune/instruct/m/{method}/s{seed}.tsv", 20.0)
            _bench(results, f"eval/instruct/m/{method}/s{seed}/ifeval.tsv", 3.0)
    _bench(results, "eval/instruct/m/base/ifeval.tsv", 3.0)
    spec = {"data": {"builder": "x"}, "models": ["m"], "methods": ["uniform", "scalebio", "less"],
            "evals": ["ifeval"], "seeds": [0, 1], "budget": 10, "paper_table": "mtbench"}  # fmt: skip
    experiment_report("instruct", spec, results, denoise_data_dir)
    return results, {"experiments": {"instruct": spec}, "methods": {}}


def test_verdict_rows_join_claims_paper_effects_and_costs(verdict_results):
    results, config = verdict_results
    jobs = benchmark_jobs(results / "benchmarks")
    rows = {r["comparator"]: r for r in verdict_rows(results, config, load_paper_numbers(), jobs)}
    assert set(rows) == {"", "uniform", "less"}  # the weight claim (Spearman on this pool) and two baselines
    u = rows["uniform"]
    assert u["paper_effect"].startswith("+1.01 (Llama-3-8B)") and u["ours"].startswith("+0.250 [")
    assert u["ours"].endswith("prompt_level_strict_acc") and u["direction_agrees"] == "yes"
    assert u["verdict"] == "holds" == u["verdict_holm"] and "2 seeds × 40 items" in u["interval_over"]
    assert u["cost_scalebio_cpu_s"] == "34" and u["cost_comparator_cpu_s"] == "24"  # (10 + 11)/2 + 20 + 3; 1 + 20 + 3
    less = rows["less"]  # identical items: an interval [0, 0] touches the threshold: not evidence either way
    assert less["ours"].startswith("+0.000 [+0.000, +0.000]") and less["verdict"] == "inconclusive"
    assert less["direction_agrees"] == "—" and less["cost_comparator_cpu_s"] == "28"
    assert rows[""]["cost_comparator_cpu_s"] == "—"
    assert run_cpu_s(jobs, "instruct", "m", "scalebio", select_from={0: "other"}) == pytest.approx(
        (23.0 + 34.0) / 2
    )  # seed 0's selection was copied from "other" (no job there): its own copy is not counted


def test_readme_block_is_rewritten_from_verdicts_csv(verdict_results, tmp_path):
    results, config = verdict_results
    out = results / "report"
    write_verdicts(out, verdict_rows(results, config, load_paper_numbers(), benchmark_jobs(results / "benchmarks")))
    with open(out / "verdicts.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    block = readme_block(rows, results.as_posix())
    assert f"`{results.as_posix()}/report/verdicts.csv`" in block
    line = next(x for x in block.splitlines() if x.startswith("- **instruct**"))
    assert line.startswith("- **instruct** (m, prompt_level_strict_acc): vs Uniform +0.250 [")
    assert "]: holds; vs LESS +0.000 [+0.000, +0.000]: inconclusive." in line
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\nbefore\n{START}\nold text\n{END}\nafter\n")
    main(["--results", str(results), "--readme", str(readme)])
    text = readme.read_text()
    assert readme_text(readme) == block and text.startswith("# x\n\nbefore\n") and text.endswith(f"{END}\nafter\n")
    md = (out / "verdicts.md").read_text()
    assert "| claim | experiment | model | paper's effect (units) [source] | ours [95% CI] (metric) |" in md
    assert "| smallest detectable Δ (80 % power) | ScaleBiO CPU s (select + SFT + eval) |" in md


def test_readme_verdicts_block_matches_the_reference_it_names():
    """The README's verdicts paragraph is what the committed reference it names renders: regenerate both together
    (run the config, copy its reports into results/reference/<name>, then python -m scalebio verdicts --results
    results/reference/<name> --readme README.md)."""
    block = readme_text(ROOT / "README.md")
    named = re.search(r"`(results/reference/[\w.-]+)/report/verdicts\.csv`", block)
    assert named, "README's verdicts block names no results/reference/<name>/report/verdicts.csv"
    path = ROOT / named.group(1) / "report" / "verdicts.csv"
    assert path.exists(), f"the README's verdicts block names {path.relative_to(ROOT)}, which is not committed"
    with open(path, newline="") as f:
        assert block == readme_block(list(csv.DictReader(f)), named.group(1))


@pytest.mark.parametrize("reference", sorted(ROOT.glob("results/reference/*/report")), ids=lambda p: p.parent.name)
def test_every_committed_reference_has_its_verdict_table(reference):
    """Each committed reference carries the verdict table (regenerate it with its config when it does not)."""
    for name in ("verdicts.csv", "verdicts.md"):
        assert (reference / name).exists(), f"{(reference / name).relative_to(ROOT)} is missing: rerun its config"
