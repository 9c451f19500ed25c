"""The real-model miniatures: the arithmetic and verifiable-instruction pools are what their cards say, the
IFEval grader agrees with a table of compliant and non-compliant answers, the oracle puts the budget on the
card's targets, and the paper-vs-ours table shows no paper number without its source.

Modules: `scalebio/assets/instructions.py`, `eval/ifeval.py`.
"""

from __future__ import annotations

import json
import re

import pytest

from scalebio.assets.embedded import build
from scalebio.common.data import read_jsonl
from scalebio.common.registry import run_method
from scalebio.common.runtime import ConfigError, DataError
from scalebio.common.selection import MethodInputs, read_selection


def test_arithmetic_pool_is_what_its_card_says(tmp_path):
    out = build("arithmetic", {"n_per_source": 40, "n_val": 10, "n_test": 30}, tmp_path / "a")
    card = json.loads((out / "card.json").read_text())
    assert card["targets"] == ["word_add"] and card["harmful"] == ["word_add_wrong"]
    boxed = re.compile(r"\\boxed\{(-?\d+)\}")
    clean = read_jsonl(out / "sources" / "word_add.jsonl")
    wrong = read_jsonl(out / "sources" / "word_add_wrong.jsonl")
    assert len(clean) == len(wrong) == 40
    for r in clean:  # the clean target source teaches the right sum in the taught format
        a, b = (int(x) for x in re.findall(r"(\d+) \+ (\d+) =", r["response"])[0])
        assert boxed.search(r["response"]).group(1) == str(a + b) == r["answer"]
    # the corrupted twin looks the same and is wrong every time
    assert all(boxed.search(r["response"]).group(1) != r["answer"] for r in wrong)
    assert all(r["corrupted"] for r in wrong) and not any(r["corrupted"] for r in clean)
    test = read_jsonl(out / "test.jsonl")
    train_prompts = {r.get("prompt") for p in (out / "sources").glob("*.jsonl") for r in read_jsonl(p)}
    assert len(test) == 30 and not train_prompts & {r["prompt"] for r in test}  # held out
    # the same seed gives the same files
    again = build("arithmetic", {"n_per_source": 40, "n_val": 10, "n_test": 30}, tmp_path / "b")
    assert (again / "test.jsonl").read_bytes() == (out / "test.jsonl").read_bytes()


def test_instruction_pool_follows_or_breaks_its_instructions_as_labelled(tmp_path):
    from eval.ifeval import check

    out = build("instructions", {"n_per_source": 24, "n_val": 8, "n_test": 24}, tmp_path / "i")
    card = json.loads((out / "card.json").read_text())
    assert card["targets"] == ["if_follow"]

    def strict(r):
        return all(check(r["response"], r["prompt"], r["instruction_id_list"], r["kwargs"])[0])

    follow = read_jsonl(out / "sources" / "if_follow.jsonl")
    assert all(strict(r) for r in follow)  # the target source satisfies every instruction it was given
    for bad in ("if_ignore", "if_wrong"):
        rows = read_jsonl(out / "sources" / f"{bad}.jsonl")
        assert sum(strict(r) for r in rows) <= len(rows) // 10, bad  # (almost) never follows
    assert all(r["instruction_id_list"] for r in read_jsonl(out / "test.jsonl"))


# (response, instruction id, kwargs, strict verdict): answers a reader can check by eye.
IFEVAL_TABLE = [
    ("the sky is blue.", "change_case:english_lowercase", {}, True),
    ("The sky is blue.", "change_case:english_lowercase", {}, False),
    ("THE SKY IS BLUE.", "change_case:english_capital", {}, True),
    ("THE SKY is BLUE.", "change_case:english_capital", {}, False),
    ('"Blue."', "startend:quotation", {}, True),
    ("Blue.", "startend:quotation", {}, False),
    ("Blue. That is all.", "startend:end_checker", {"end_phrase": "That is all."}, True),
    ("That is all. Blue.", "startend:end_checker", {"end_phrase": "That is all."}, False),
    ("Blue and green", "punctuation:no_comma", {}, True),
    ("Blue, and green", "punctuation:no_comma", {}, False),
    ("<<Sky colour>>\nBlue.", "detectable_format:title", {}, True),
    ("Sky colour: blue.", "detectable_format:title", {}, False),
    ("Blue.\n\nP.S. I hope this helps.", "detectable_content:postscript", {"postscript_marker": "P.S."}, True),
    ("Blue. I hope this helps.", "detectable_content:postscript", {"postscript_marker": "P.S."}, False),
    ("A river by the window.", "keywords:existence", {"keywords": ["river", "window"]}, True),
    ("A river by the door.", "keywords:existence", {"keywords": ["river", "window"]}, False),
    ('{"answer": "blue"}', "detectable_format:json_format", {}, True),
    ("answer: blue", "detectable_format:json_format", {}, False),
    ("", "punctuation:no_comma", {}, False),  # an empty answer follows nothing
]


@pytest.mark.parametrize("response,instruction,kwargs,expected", IFEVAL_TABLE)
def test_ifeval_grader_on_a_table_of_answers(response, instruction, kwargs, expected):
    from eval.ifeval import check

    strict, loose = check(response, "What colour is the sky?", [instruction], [kwargs])
    assert strict == [expected]
    assert loose[0] >= strict[0]  # loose accepts everything strict does


def test_ifeval_grader_gives_one_answer_one_verdict():
    """The case checkers also ask langdetect; unseeded, this corpus answer is "en" in ~half of the calls (measured
    11 of 20), so the pool builder and the grader could disagree. Seeded (``checkers()``), 20 calls agree."""
    from eval.ifeval import check
    from scalebio.assets.instructions import follows

    answer, inst = "I DON'T HAVE ANY NUMBER", "change_case:english_capital"
    verdicts = {check(answer, "p", [inst], [{}])[0][0] for _ in range(20)}
    verdicts |= {follows(answer, inst, {}, "p") for _ in range(20)}
    assert len(verdicts) == 1


def test_ifeval_grader_refuses_an_unknown_instruction():
    from eval.ifeval import check

    with pytest.raises(DataError, match="unknown IFEval instruction"):
        check("x", "p", ["made_up:thing"], [{}])


def _pool(root, card):
    (root / "sources").mkdir(parents=True)
    for name in ("clean", "noisy", "chat"):
        rows = [{"id": f"{name}-{i}", "prompt": "q", "response": "a"} for i in range(5)]
        (root / "sources" / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    if card is not None:
        (root / "card.json").write_text(json.dumps(card))
    return root


def test_oracle_spends_the_budget_on_the_card_targets(tmp_path):

    data = _pool(tmp_path / "d", {"targets": ["clean"]})
    sel = read_selection(run_method(MethodInputs(str(data), "unused", str(tmp_path / "run"), budget=5), "oracle"))
    assert sel["method"] == "oracle" and sel["weights"] == {"chat": 0.0, "clean": 1.0, "noisy": 0.0}


@pytest.mark.parametrize("card", [None, {"targets": []}, {"targets": ["missing"]}])
def test_oracle_is_undefined_without_known_targets(tmp_path, card):

    data = _pool(tmp_path / "d", card)
    with pytest.raises(ConfigError, match="card.json"):
        run_method(MethodInputs(str(data), "unused", str(tmp_path / "run"), budget=5), "oracle")
    assert not (tmp_path / "run" / "selection.json").exists()


def _downstream(root, experiment, rows):
    path = root / experiment / "report" / "downstream.csv"
    path.parent.mkdir(parents=True)
    header = ["model", "method", "evaluation", "metric", "mean", "sd", "seeds"]
    path.write_text(",".join(header) + "\n" + "".join(",".join(str(r.get(h, "")) for h in header) + "\n" for r in rows))


@pytest.mark.parametrize("kind", ["math", "mtbench"])
def test_paper_vs_ours_shows_no_paper_number_without_a_source(tmp_path, kind):
    from scalebio.report.paper import load_paper_numbers
    from scalebio.report.paper_vs_ours import ours_table, paper_table

    numbers = load_paper_numbers()
    ev = "math" if kind == "math" else "ifeval"
    _downstream(
        tmp_path,
        "x",
        [
            {
                "model": "m",
                "method": "uniform",
                "evaluation": ev,
                "metric": "accuracy",
                "mean": 0.2,
                "sd": 0.01,
                "seeds": 3,
            },
            {
                "model": "m",
                "method": "scalebio",
                "evaluation": ev,
                "metric": "accuracy",
                "mean": 0.3,
                "sd": "",
                "seeds": 1,
            },
            {
                "model": "m",
                "method": "oracle",
                "evaluation": ev,
                "metric": "accuracy",
                "mean": 0.5,
                "sd": "",
                "seeds": 1,
            },
        ],
    )
    experiments = {"x": {"paper_table": kind, "evals": [ev], "models": ["m"]}}
    header, body = paper_table(kind, numbers)
    declared = set(numbers["sources"])
    cells = [c for row in body for c in row[1:]]
    for cell in cells:
        m = re.fullmatch(r"(-?[\d.]+) \[(\w+)\]", cell)
        assert cell == "—" or (m and m.group(2) in declared), cell  # a number always carries its source
    assert any(c != "—" for c in cells)
    assert not any(row[0].startswith("oracle") for row in body)  # the paper has no oracle row: nothing is made up
    header, body = ours_table(kind, experiments, tmp_path)  # ours in a table of its own: scales never mixed
    ours = {row[0]: row[-1] for row in body}
    assert header[-1] == "x, m (accuracy)"
    assert ours["Uniform"] == "0.200 ± 0.010, 3 seeds" and ours["ScaleBiO"] == "0.300, 1 seed"
    assert ours.get("LESS", "—") == "—"  # not run here: never filled in
    assert ours["oracle (reference point)"] == "0.500, 1 seed"


def test_a_paper_number_without_a_declared_source_is_refused(tmp_path):
    from scalebio.report.paper import load_paper_numbers

    bad = tmp_path / "numbers.yaml"
    bad.write_text("sources: {a: {label: x, where: y}}\nmath: {rows: [{model: M, method: uniform, gsm8k: 1.0}]}\n")
    with pytest.raises(DataError, match="no declared source"):
        load_paper_numbers(bad)


def test_runtime_table_sums_wall_and_cpu_seconds_per_stage(tmp_path):
    from scalebio.report.paper import runtime_rows

    head = "s\th:m:s\tmax_rss\tcpu_time\n"
    for rel, s, cpu in [
        ("select/x/m/scalebio/s0.tsv", 10.0, 8.0),
        ("select/x/m/scalebio/s1.tsv", 12.5, 9.0),
        ("data/x.tsv", 2.0, 1.5),
    ]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(head + f"{s}\t0:00:10\t100\t{cpu}\n")
    rows = {(r["stage"], r["method"]): r for r in runtime_rows(tmp_path)}
    assert rows[("select", "scalebio")] == {
        "stage": "select",
        "method": "scalebio",
        "jobs": 2,
        "wall_s": 22.5,
        "cpu_s": 17.0,
    }
    assert rows[("total", "")]["wall_s"] == 24.5 and rows[("total", "")]["cpu_s"] == 18.5
