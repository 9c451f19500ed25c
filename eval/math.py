"""Zero-shot chain-of-thought math evaluation (paper protocol, METHOD.md §12), graded twice.

Each question goes through the model's chat template as one user turn ending with the paper's
suffix; greedy decoding; the answer is the last ``\\boxed{}`` (nested braces allowed), else the
text after "the answer is", else the last number. Two graders judge every answer: math-verify
(``math_verify.verify(parse(gold), parse(pred))``, gold first) and the ToRA-style check of
``eval.toragrade`` (the paper's kind of grader); ``grader`` picks the headline number, both accuracies are
in the summary, and per-question records in ``predictions.jsonl`` flag where the graders disagree.

Paper protocol (``comparable_to_paper`` is true exactly when it holds; otherwise ``protocol_deviations``
says what differs): GSM8K test (1,319) or MATH test (5,000), all questions, the official suffix (the
Gemma variant counts), greedy, ``max_new_tokens`` 1,024 (``math/eval_math/inference/infer_data/
infer_eval_test.py`` of the official repository), graded ToRA-style. Generation runs on vLLM when it is
installed (``backend``), else with HF ``generate``, sharded over the processes of a launcher.

    python -m eval.math --model resources/models/tiny --out /tmp/ev/math --data results/denoise/data \
        --options '{"limit": 8, "max_new_tokens": 64}'

Datasets: ``local`` = the experiment's ``test.jsonl`` (``prompt`` + ``answer``); ``gsm8k`` / ``math``
= GSM8K test / MATH test from the hub (only with the hub enabled) or from ``data_file``, a local
JSONL shaped like the hub dataset (GSM8K: question, answer "... #### 72"; MATH: problem, solution).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from math_verify import parse, verify

from eval import toragrade
from eval.common import cli_main, device_name, heldout_file, mean_stderr
from eval.generation import load_generator, render_chat
from scalebio.common.config import GenerationOptions
from scalebio.common.data import read_jsonl
from scalebio.common.runtime import ConfigError, DataError, hub_enabled, is_main, write_jsonl

PAPER_SUFFIX = "Please reason step by step, and put your final answer within \\boxed{}."
GEMMA_SUFFIX = "Please reason step by step."
"""The official prompt for Gemma-2 (``math/eval_math/inference/utils/utils.py``, prompt type cot)."""
PAPER_MAX_NEW_TOKENS = 1024
PAPER_SIZES = {"gsm8k": 1319, "math": 5000}
MATH_VERIFY = "math-verify==0.9.0 verify(parse(gold), parse(pred))"
EXTRACTION = "last \\boxed{} > 'the answer is' > last number"
GRADERS = {"math_verify": MATH_VERIFY, "tora": toragrade.GRADER}
HUB_DATASETS = {
    "gsm8k": ("openai/gsm8k", "main", "test"),
    # hendrycks/competition_math is gone from the hub; EleutherAI's copy has the 5,000 test problems in 7 subsets.
    "math": ("EleutherAI/hendrycks_math", None, "test"),
}
MATH_SUBSETS = [
    "algebra",
    "counting_and_probability",
    "geometry",
    "intermediate_algebra",
    "number_theory",
    "prealgebra",
    "precalculus",
]


@dataclass
class Options(GenerationOptions):
    """Options of the math evaluation; the generation options (batch size, dtype, backend, GPUs) are
    ``GenerationOptions``'."""

    dataset: Literal["local", "gsm8k", "math"] = "local"
    """local = the experiment's test.jsonl; gsm8k / math = GSM8K / MATH test (hub, or data_file)."""
    data_file: str | None = None
    """A local JSONL shaped like the hub dataset (used instead of the hub for gsm8k / math); in a workflow config also
    ``official:<path>``, a file of the pinned official repository (the paper configs: ToRA's GSM8K / MATH test files,
    1,319 and 5,000 rows, that the official evaluation read)."""
    limit: int | None = None
    """Evaluate only the first N questions (None = all)."""
    max_new_tokens: int = 512
    """Generation budget per question (paper: 1,024)."""
    suffix: str = PAPER_SUFFIX
    """Appended to each question (paper; Gemma used only 'Please reason step by step.')."""
    grader: Literal["math_verify", "tora"] = "math_verify"
    """Which grader gives the headline value: math_verify (library) or tora (ToRA-style, the paper's kind).
    Both are always computed and reported."""

    def validate(self) -> None:
        if self.limit is not None and self.limit < 1:
            raise ConfigError(f"eval.math.limit must be >= 1 or null, got {self.limit}")
        if self.max_new_tokens < 1 or self.batch_size < 1 or self.tensor_parallel_size < 1:
            raise ConfigError("eval.math.max_new_tokens, batch_size and tensor_parallel_size must be >= 1")
        if self.dataset == "local" and self.data_file:
            raise ConfigError("eval.math.data_file is only for dataset gsm8k / math")


# ---------------------------------------------------------------- answer extraction


def last_boxed(text: str) -> str | None:
    """Content of the last ``\\boxed{...}`` / ``\\fbox{...}``, matching nested braces; None if absent."""
    best = None
    for m in re.finditer(r"\\(?:boxed|fbox)\s*\{", text):
        depth, i = 1, m.end()
        while i < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            i += 1
        if depth == 0:
            best = text[m.end() : i - 1]
    return best.strip() if best is not None else None


_ANSWER_IS = re.compile(r"answer is[:\s]*(.+?)(?:\.\s|\.$|\n|$)", re.IGNORECASE)
_NUMBER = re.compile(r"-?\d{1,3}(?:,\d{3})+(?:\.\d+)?|-?\d+(?:\.\d+)?(?:/\d+)?|-?\.\d+")


def extract_answer(text: str) -> str | None:
    """The paper's extraction order: last boxed, else 'the answer is ...', else the last number."""
    boxed = last_boxed(text)
    if boxed is not None and _clean(boxed) is not None:
        return _clean(boxed)
    # An empty box (models often echo the instruction's "\boxed{}") counts as no box.
    matches = _ANSWER_IS.findall(text)
    if matches:
        inner = last_boxed(matches[-1])
        answer = _clean(inner if inner is not None else matches[-1])
        if answer is not None:
            return answer
    numbers = _NUMBER.findall(text)
    return _clean(numbers[-1]) if numbers else None


def _clean(ans: str) -> str | None:
    ans = ans.strip().rstrip(".").strip()
    # Strip math delimiters ($...$, \(...\)) but keep an escaped dollar sign (\$18) for the grader.
    ans = re.sub(r"(?<!\\)\$", "", ans).strip()
    if ans.startswith("\\(") and ans.endswith("\\)"):
        ans = ans[2:-2].strip()
    return ans or None


def gsm8k_gold(answer: str) -> str:
    """GSM8K's gold is the text after '####' (thousands separators removed)."""
    if "####" not in answer:
        raise DataError(f"GSM8K answer has no '#### <number>' line: {answer[-80:]!r}")
    return answer.split("####")[-1].strip().replace(",", "")


# ---------------------------------------------------------------- grading


def grade_both(gold: str, pred: str | None) -> dict[str, bool]:
    """Both graders' verdicts: ``{"math_verify": bool, "tora": bool}``."""
    return {"math_verify": grade(gold, pred), "tora": toragrade.math_equal(pred, gold)}


def grade(gold: str, pred: str | None) -> bool:
    """math-verify equivalence; both sides wrapped in $...$ so LaTeX and plain numbers parse alike.

    math-verify uses ``signal.alarm`` for its timeouts: call this from the main thread.
    """
    if pred is None or not pred.strip():
        return False
    gold_parsed = parse(f"${gold}$")
    if not gold_parsed:
        raise DataError(f"math-verify cannot parse the gold answer {gold!r}; fix the data file")
    return bool(verify(gold_parsed, parse(f"${pred}$")))


# ---------------------------------------------------------------- datasets


def normalise_gsm8k(rows: list[dict], where: str) -> list[dict]:
    out = []
    for i, r in enumerate(rows):
        if "question" not in r or "answer" not in r:
            raise DataError(f"{where} row {i}: GSM8K rows need 'question' and 'answer' (keys: {sorted(r)})")
        out.append({"id": str(r.get("id", i)), "question": r["question"], "gold": gsm8k_gold(r["answer"])})
    return out


def normalise_math(rows: list[dict], where: str) -> list[dict]:
    out = []
    for i, r in enumerate(rows):
        if "problem" not in r or "solution" not in r:
            raise DataError(f"{where} row {i}: MATH rows need 'problem' and 'solution' (keys: {sorted(r)})")
        gold = r.get("answer") or last_boxed(r["solution"])
        if gold is None:
            raise DataError(f"{where} row {i}: MATH solution has no \\boxed{{}} answer")
        out.append({"id": str(r.get("id", i)), "question": r["problem"], "gold": gold, "topic": r.get("type")})
    return out


def normalise_local(rows: list[dict], where: str) -> list[dict]:
    out = []
    for r in rows:
        if "prompt" not in r or "answer" not in r:
            raise DataError(
                f"{where} record {r.get('id')}: math evaluation needs 'prompt' and 'answer' fields "
                f"(keys: {sorted(r)}); is this a math experiment?"
            )
        out.append({"id": str(r["id"]), "question": r["prompt"], "gold": str(r["answer"]), "topic": r.get("topic")})
    return out


def load_questions(opts: Options, data_dir: str | None) -> tuple[list[dict], str]:
    """Questions as ``{id, question, gold}`` and a description of where they came from."""
    if opts.dataset == "local":
        path = heldout_file(data_dir, "math")  # test.jsonl (tune.jsonl in a tuning run's folder)
        rows, source = normalise_local(read_jsonl(path), str(path)), str(path)
    else:
        normalise = normalise_gsm8k if opts.dataset == "gsm8k" else normalise_math
        if opts.data_file:
            rows, source = normalise(read_jsonl(opts.data_file), opts.data_file), opts.data_file
        else:
            rows, source = normalise(_hub_rows(opts.dataset), opts.dataset), "hub:" + HUB_DATASETS[opts.dataset][0]
    if not rows:
        raise DataError(f"no questions in {source}")
    return (rows[: opts.limit] if opts.limit else rows), source


def _hub_rows(dataset: str) -> list[dict]:
    if not hub_enabled():
        raise ConfigError(
            f"eval.math.dataset '{dataset}' downloads from the Hugging Face hub, which is off; use a config "
            "with `hub: true`, or give eval.math.data_file (a local JSONL shaped like the dataset)."
        )
    import datasets  # on use: importing `datasets` costs seconds and only hub runs need it

    name, config, split = HUB_DATASETS[dataset]
    if dataset == "gsm8k":
        return list(datasets.load_dataset(name, config, split=split))
    return [row for sub in MATH_SUBSETS for row in datasets.load_dataset(name, sub, split=split)]


# ---------------------------------------------------------------- run


def protocol_deviations(opts: Options, n: int) -> list[str]:
    """How this run differs from the paper's math protocol (empty = comparable with the paper's numbers)."""
    out = []
    if opts.dataset not in PAPER_SIZES:
        out.append(f"dataset {opts.dataset} (paper: GSM8K test / MATH test)")
    elif n != PAPER_SIZES[opts.dataset]:
        out.append(f"{n} questions (paper: all {PAPER_SIZES[opts.dataset]} of {opts.dataset})")
    if opts.max_new_tokens != PAPER_MAX_NEW_TOKENS:
        out.append(f"max_new_tokens {opts.max_new_tokens} (paper: {PAPER_MAX_NEW_TOKENS})")
    if opts.suffix not in (PAPER_SUFFIX, GEMMA_SUFFIX):
        out.append(f"suffix {opts.suffix!r} (paper: {PAPER_SUFFIX!r}, Gemma {GEMMA_SUFFIX!r})")
    if opts.grader != "tora":
        out.append(f"headline grader {opts.grader} (paper: ToRA-style math_equal)")
    return out


def with_suffix(question: str, suffix: str) -> str:
    """The question with the instruction suffix, appended once: embedded sources whose training prompts
    already end with it (so that SFT and test prompts match) are not given it twice."""
    question = question.strip()
    if suffix and question.endswith(suffix.strip()):
        return question
    return f"{question}\n{suffix}".strip()


def run(model_path: str, out: Path, data_dir: str | None, opts: Options, log) -> dict:
    questions, source = load_questions(opts, data_dir)
    log.info("%d questions from %s", len(questions), source)
    gen = load_generator(model_path, opts.dtype, opts.backend, opts.tensor_parallel_size)
    prompts = [
        render_chat(gen.tokenizer, [{"role": "user", "content": with_suffix(q["question"], opts.suffix)}])
        for q in questions
    ]
    outputs = gen.generate(prompts, opts.max_new_tokens, opts.batch_size, desc="math")
    if not is_main():
        return {}  # other ranks helped generate; rank 0 grades and writes
    records = []
    for q, prompt, output in zip(questions, prompts, outputs):
        extracted = extract_answer(output)
        verdicts = grade_both(q["gold"], extracted)
        records.append(
            {
                "id": q["id"],
                "prompt": prompt,
                "output": output,
                "extracted": extracted,
                "gold": q["gold"],
                "correct": verdicts[opts.grader],
                "correct_math_verify": verdicts["math_verify"],
                "correct_tora": verdicts["tora"],
                "graders_disagree": verdicts["math_verify"] != verdicts["tora"],
            }
        )
    write_jsonl(out / "predictions.jsonl", records)
    acc, stderr = mean_stderr([float(r["correct"]) for r in records])
    deviations = protocol_deviations(opts, len(records))
    disagree = [r["id"] for r in records if r["graders_disagree"]]
    if disagree:
        log.warning("graders disagree on %d of %d answers (ids %s)", len(disagree), len(records), disagree[:20])
    return {
        "metric": "accuracy",
        "value": acc,
        "stderr": stderr,
        "n": len(records),
        "protocol": f"zero-shot CoT, chat template, greedy, max_new_tokens={opts.max_new_tokens}, "
        f"suffix={opts.suffix!r}, {gen.backend} generation",
        "grader": f"{opts.grader}: {GRADERS[opts.grader]}; extraction: {EXTRACTION}",
        "accuracy_math_verify": mean_stderr([float(r["correct_math_verify"]) for r in records])[0],
        "accuracy_tora": mean_stderr([float(r["correct_tora"]) for r in records])[0],
        "n_graders_disagree": len(disagree),
        "graders_disagree_ids": disagree,
        "comparable_to_paper": not deviations,
        "paper_protocol": not deviations,
        "protocol_deviations": deviations,
        "backend": gen.backend,
        "dataset": opts.dataset,
        "source": source,
        "n_extracted": sum(r["extracted"] is not None for r in records),
        "device": device_name(),
        "note": "paper: ToRA-style math_equal (official harness); both graders are reported (METHOD.md §12)",
    }


main = cli_main(
    "math",
    Options,
    run,
    "Zero-shot CoT math accuracy (paper protocol) graded with math-verify and a ToRA-style check. --data: a data folder with test.jsonl "
    "(dataset local).",
    data_required=False,
)

if __name__ == "__main__":
    main()
