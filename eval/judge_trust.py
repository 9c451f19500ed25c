"""How far can the offline log-prob judge be trusted? (slow: ~10 min with SmolLM2-135M on 1 CPU thread)

On the MT-Bench questions that have GPT-4 reference answers (30: math, reasoning, coding), the judge
scores three turn-1 answers: the GPT-4 reference itself, an empty answer, and an off-topic answer (the
reference answer of the next question in the list). Reported: how often the reference is scored
strictly above the empty / off-topic answer, with FastChat's reference-based prompt (single-math-v1,
what MT-Bench uses for these categories; the reference is then also in the prompt) and with the plain
prompt (single-v1, no reference shown: the judge must recognise a good answer by itself).

    OMP_NUM_THREADS=1 python -m eval.judge_trust --judge-model resources/models/smollm2-135m-instruct \
        --data resources/mtbench --out results/reference/judge_trust.json
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from tqdm.auto import tqdm

from eval.judges import LogprobJudge, MatchSingle, load_judge_prompts, make_judges
from eval.mtbench import load_questions, load_references
from scalebio.common.runtime import atomic_write_json, main_guard


def measure(judge_model: str, data: Path, limit: int | None = None, dtype: str = "float32") -> dict:
    questions = {q["question_id"]: q for q in load_questions(data / "mt_bench" / "question.jsonl")}
    refs = load_references(data / "mt_bench" / "reference_answer" / "gpt-4.jsonl")
    qids = [qid for qid in sorted(refs) if qid in questions][:limit]
    judge = LogprobJudge(judge_model, dtype)
    judges = make_judges(judge.name, load_judge_prompts(str(data / "judge_prompts.jsonl")))

    def answer(text: str) -> dict:
        return {"choices": [{"index": 0, "turns": [text, ""]}]}

    items = []
    start = time.time()
    for i, qid in enumerate(tqdm(qids, desc="judge trust", unit="question")):
        ref_text = refs[qid]["choices"][0]["turns"][0]
        off_topic = refs[qids[(i + 1) % len(qids)]]["choices"][0]["turns"][0]
        candidates = {"reference": ref_text, "empty": "", "off_topic": off_topic}
        item = {"question_id": qid, "category": questions[qid]["category"]}
        for prompt_kind, use_ref in (("single-math-v1", True), ("single-v1", False)):
            kind = "math" if use_ref else "default"
            scores = {}
            for name, text in candidates.items():
                match = MatchSingle(
                    dict(questions[qid]), "probe", answer(text), judges[kind], ref_answer=refs[qid] if use_ref else None
                )
                scores[name] = judge.judge(match)["score"]
            item[prompt_kind] = scores
        items.append(item)

    def rate(prompt_kind: str, other: str) -> float:
        return sum(it[prompt_kind]["reference"] > it[prompt_kind][other] for it in items) / len(items)

    def mean(prompt_kind: str, name: str) -> float:
        return sum(it[prompt_kind][name] for it in items) / len(items)

    summary = {
        pk: {
            "reference_above_empty": rate(pk, "empty"),
            "reference_above_off_topic": rate(pk, "off_topic"),
            "mean_score": {n: mean(pk, n) for n in ("reference", "empty", "off_topic")},
        }
        for pk in ("single-math-v1", "single-v1")
    }
    return {
        "judge": judge.judge_id,
        "n_questions": len(items),
        "protocol": "turn 1 of the MT-Bench questions with GPT-4 reference answers; candidates: the GPT-4 reference, "
        "an empty answer, the next question's reference (off-topic); score = expected rating after 'Rating: [['",
        "results": summary,
        "items": items,
        "wall_time_s": round(time.time() - start, 1),
    }


@main_guard
def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m eval.judge_trust", description=__doc__.split("\n\n")[0])
    parser.add_argument("--judge-model", default="resources/models/smollm2-135m-instruct")
    parser.add_argument("--data", default="resources/mtbench", help="FastChat MT-Bench data folder")
    parser.add_argument("--out", default="results/reference/judge_trust.json")
    parser.add_argument("--limit", type=int, default=None, help="first N reference questions only")
    args = parser.parse_args(argv)
    result = measure(args.judge_model, Path(args.data), args.limit)
    atomic_write_json(args.out, result)
    for pk, r in result["results"].items():
        print(
            f"{pk}: reference > empty {r['reference_above_empty']:.0%}, reference > off-topic "
            f"{r['reference_above_off_topic']:.0%}; mean scores {r['mean_score']}"
        )
    return result


if __name__ == "__main__":
    main()
