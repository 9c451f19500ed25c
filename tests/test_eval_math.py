"""Math evaluation: extractor + math-verify grader (table-driven), dataset loaders, a tiny-model run.

Modules: `eval/math.py`, `eval/generation.py` (the HF backend), `eval/common.py` (the CLI and summary).
"""

from __future__ import annotations

import json

import pytest

from eval.math import Options as MathOptions
from eval.math import extract_answer, grade, last_boxed, load_questions, main

# (model output, expected extraction) -- GSM8K / MATH style completions
EXTRACTION_CASES = [
    ("So the total is $\\boxed{72}$.", "72"),
    ("We get \\boxed{\\frac{\\sqrt{3}}{2}} in the end.", "\\frac{\\sqrt{3}}{2}"),  # nested braces
    ("First \\boxed{3}, corrected: \\boxed{\\{1, 2\\}}", "\\{1, 2\\}"),  # last box wins; escaped braces
    ("\\boxed{x^{2}+\\frac{1}{x}}", "x^{2}+\\frac{1}{x}"),
    ("Natalia sold 48+24 = 72 clips. The answer is 72.", "72"),
    ("The answer is: $-5$.\nDone", "-5"),
    ("The answer is $\\boxed{18}$ dollars.", "18"),
    ("She pays 5 * 3 = 15 and then 15 + 3 = 18 dollars", "18"),  # last number
    ("The population grew to 1,234,567 people", "1,234,567"),  # thousands separators kept for the grader
    ("It dropped to -3.5 degrees", "-3.5"),
    ("a ratio of 3/4", "3/4"),
    ("To put it within \\boxed{}, add: \\boxed{} 178 + 178 = 348\n\nSo, the answer is 348.", "348"),  # empty boxes
    ("I do not know.", None),  # no answer
    ("", None),
    ("truncated \\boxed{12", "12"),  # unclosed box (generation cut off): falls back to the last number
]


@pytest.mark.parametrize(("output", "expected"), EXTRACTION_CASES)
def test_extract_answer(output, expected):
    assert extract_answer(output) == expected


# (gold, extracted prediction, correct?)
GRADING_CASES = [
    ("72", "72", True),
    ("72", "73", False),
    ("\\frac{1}{2}", "0.5", True),  # \frac vs decimal
    ("0.5", "\\dfrac12", True),
    ("\\frac{3}{4}", "3/4", True),
    ("1234567", "1,234,567", True),  # thousands separators
    ("1000", "1{,}000", True),
    ("18", "18 \\text{ dollars}", True),  # units
    ("18", "\\$18", True),
    ("5", "5 cm", True),
    ("-5", "-5", True),  # negatives
    ("-5", "5", False),
    ("-0.0003", "-3 \\times 10^{-4}", True),
    ("49859/100", "498.59", True),
    ("\\sqrt{2}", "2^{1/2}", True),
    ("x^2+2x+1", "(x+1)^2", True),
    ("72", None, False),  # no answer
    ("72", "", False),
]


@pytest.mark.parametrize(("gold", "pred", "correct"), GRADING_CASES)
def test_grade(gold, pred, correct):
    assert grade(gold, pred) is correct


def test_extract_then_grade_end_to_end():
    out = "Each box holds 12 eggs, so 3 boxes hold 36. Then $36/4 = 9$. So the answer is $\\boxed{9}$."
    assert grade("9", extract_answer(out))
    assert last_boxed("no box here") is None


def test_loaders_on_hub_shaped_fixtures(tmp_path):
    gsm = tmp_path / "gsm8k.jsonl"
    gsm.write_text(
        json.dumps({"question": "Tom has 3 apples and buys 1,200 more.", "answer": "3 + 1200 = 1203\n#### 1,203"})
        + "\n"
    )
    rows, source = load_questions(MathOptions(dataset="gsm8k", data_file=str(gsm)), None)
    assert rows[0]["gold"] == "1203" and source == str(gsm)
    math_file = tmp_path / "math.jsonl"
    math_file.write_text(
        json.dumps(
            {
                "problem": "Simplify $\\frac{2}{4}$.",
                "solution": "It is $\\boxed{\\frac{1}{2}}$.",
                "level": "Level 1",
                "type": "Algebra",
            }
        )
        + "\n"
    )
    rows, _ = load_questions(MathOptions(dataset="math", data_file=str(math_file)), None)
    assert rows[0]["gold"] == "\\frac{1}{2}" and rows[0]["question"].startswith("Simplify")
    from scalebio.common.runtime import ConfigError, DataError

    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"question": "q", "answer": "no marker"}) + "\n")
    with pytest.raises(DataError, match="####"):
        load_questions(MathOptions(dataset="gsm8k", data_file=str(bad)), None)
    with pytest.raises(ConfigError, match="hub"):
        load_questions(MathOptions(dataset="gsm8k"), None)


def test_math_run_on_tiny_model(tiny_model_dir, denoise_data_dir, tmp_path):
    out = tmp_path / "math"
    opts = {"limit": 4, "max_new_tokens": 8, "batch_size": 4}
    summary = main(
        [
            "--model",
            str(tiny_model_dir),
            "--out",
            str(out),
            "--data",
            str(denoise_data_dir),
            "--options",
            json.dumps(opts),
        ]
    )
    on_disk = json.loads((out / "summary.json").read_text())
    assert on_disk == json.loads(json.dumps(summary))
    assert on_disk["evaluation"] == "math" and on_disk["metric"] == "accuracy" and on_disk["n"] == 4
    assert 0.0 <= on_disk["value"] <= 1.0 and "math-verify" in on_disk["grader"]
    assert on_disk["comparable_to_paper"] is False and on_disk["backend"] == "hf"  # no vllm here: HF fallback
    assert any("dataset local" in d for d in on_disk["protocol_deviations"])
    records = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert len(records) == 4
    assert set(records[0]) == {"id", "prompt", "output", "extracted", "gold", "correct", "correct_math_verify",
                               "correct_tora", "graders_disagree"}  # fmt: skip
    assert on_disk["n_graders_disagree"] == sum(r["graders_disagree"] for r in records)
    assert "Please reason step by step" in records[0]["prompt"] and "<|im_start|>assistant" in records[0]["prompt"]
    assert (out / "config.json").exists() and (out / "log.txt").exists()


def test_math_bad_model_folder_leaves_no_summary(tmp_path, denoise_data_dir):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text('{"model_type": "llama"}')
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as exc:
        main(["--model", str(broken), "--out", str(out), "--data", str(denoise_data_dir), "--options", '{"limit": 1}'])
    assert exc.value.code == 2
    assert not (out / "summary.json").exists()


def test_paper_protocol_is_exactly_the_official_settings():
    from eval.math import GEMMA_SUFFIX, protocol_deviations

    paper = MathOptions(dataset="gsm8k", max_new_tokens=1024, grader="tora")
    assert protocol_deviations(paper, 1319) == []
    assert (
        protocol_deviations(MathOptions(dataset="math", max_new_tokens=1024, grader="tora", suffix=GEMMA_SUFFIX), 5000)
        == []
    )
    assert len(protocol_deviations(paper, 300)) == 1  # a subset (smoke run) is not comparable
    assert (
        len(protocol_deviations(MathOptions(dataset="gsm8k", max_new_tokens=1024), 1319)) == 1
    )  # math-verify headline
    assert len(protocol_deviations(MathOptions(dataset="gsm8k", max_new_tokens=512, grader="tora"), 1319)) == 1


def test_vllm_backend_without_vllm_is_one_clear_error(tiny_model_dir, denoise_data_dir, tmp_path):
    """vLLM is not installed on CPU machines: asking for it fails before any generation, naming the fix."""
    import importlib.util

    if importlib.util.find_spec("vllm") is not None:
        pytest.skip("vllm is installed here")
    out = tmp_path / "m"
    args = ["--model", str(tiny_model_dir), "--out", str(out), "--data", str(denoise_data_dir)]
    with pytest.raises(SystemExit) as exc:
        main([*args, "--options", json.dumps({"limit": 1, "backend": "vllm"})])
    assert exc.value.code == 2 and not (out / "summary.json").exists()


def test_the_suffix_is_appended_once():
    from eval.math import PAPER_SUFFIX, with_suffix

    assert with_suffix("What is 2 + 3?", PAPER_SUFFIX) == f"What is 2 + 3?\n{PAPER_SUFFIX}"
    assert with_suffix(f"What is 2 + 3?\n{PAPER_SUFFIX}", PAPER_SUFFIX) == f"What is 2 + 3?\n{PAPER_SUFFIX}"
    assert with_suffix("What is 2 + 3?", "") == "What is 2 + 3?"
