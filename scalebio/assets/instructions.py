"""The instruction-following miniature (the paper's MT-Bench experiment in miniature) with a verifiable metric.

Questions and answers are real short English dialogues (chatterbot corpus); each training prompt adds one or two
IFEval instructions, whose own text (``build_description`` of IFEval's checker) is the instruction and whose
checker (``if_verifiable``, Google's IFEval checkers, Apache-2.0; offline) grades the answer. Sources, by their
value for the target (answers that follow the instructions):

| source | response | for the target |
|---|---|---|
| ``if_follow`` | the answer rewritten to satisfy every instruction (checked) | the target itself |
| ``if_ignore`` | the plain answer, instructions ignored (checked: at least one fails) | teaches to ignore |
| ``if_wrong`` | the answer rewritten for a *different* instruction than asked (checked: fails) | teaches wrongly |
| ``chat_english`` | plain dialogue, no instruction | off-target |
| ``chat_spanish`` | Spanish dialogue, no instruction | off-target, other language |

Validation: ``if_follow``-style examples on held-out questions. Test: held-out questions with instructions,
graded on the model's generated answer (``eval.ifeval``: prompt- and instruction-level strict accuracy).
"""

from __future__ import annotations

import json
import random

from scalebio.common.ifeval_checkers import checkers
from scalebio.common.runtime import AssetError, ConfigError

END_PHRASES = [
    "Is there anything else I can help with?",
    "Let me know if you have additional questions.",
    "That is all.",
]
KEYWORDS = ["sunshine", "garden", "river", "window", "journey", "music", "paper", "coffee", "mountain", "candle"]
# Instruction id -> kwargs maker; instructions in one group cannot be combined.
INSTRUCTIONS = {
    "change_case:english_lowercase": ("case", lambda rng: {}),
    "change_case:english_capital": ("case", lambda rng: {}),
    "startend:quotation": ("wrap", lambda rng: {}),
    "startend:end_checker": ("end", lambda rng: {"end_phrase": rng.choice(END_PHRASES)}),
    "punctuation:no_comma": ("comma", lambda rng: {}),
    "detectable_format:title": ("head", lambda rng: {}),
    "detectable_content:postscript": ("end", lambda rng: {"postscript_marker": "P.S."}),
    "keywords:existence": ("keywords", lambda rng: {"keywords": rng.sample(KEYWORDS, 2)}),
    "detectable_format:json_format": ("wrap", lambda rng: {}),
}
EXCLUSIVE = {"detectable_format:json_format"}  # JSON output cannot carry other formatting
ORDER = ["keywords", "head", "end", "comma", "case", "wrap"]  # rewrite order: content first, wrapping last


def describe(instruction: str, kwargs: dict) -> str:
    return checkers()[instruction](instruction).build_description(**kwargs)


def follows(response: str, instruction: str, kwargs: dict, prompt: str) -> bool:
    """IFEval's strict check of one instruction."""
    checker = checkers()[instruction](instruction)
    checker.build_description(**kwargs)
    if "prompt" in (checker.get_instruction_args() or {}):
        checker.build_description(prompt=prompt)
    return bool(response.strip()) and checker.check_following(response)


def rewrite(answer: str, instruction: str, kwargs: dict, question: str) -> str:
    """``answer`` rewritten so that it satisfies ``instruction``."""
    if instruction == "change_case:english_lowercase":
        return answer.lower()
    if instruction == "change_case:english_capital":
        return answer.upper()
    if instruction == "startend:quotation":
        return f'"{answer}"'
    if instruction == "startend:end_checker":
        return f"{answer} {kwargs['end_phrase']}"
    if instruction == "punctuation:no_comma":
        return answer.replace(",", "")
    if instruction == "detectable_format:title":
        return f"<<{' '.join(question.rstrip('?.!').split()[:4])}>>\n{answer}"
    if instruction == "detectable_content:postscript":
        return f"{answer}\n\nP.S. I hope this helps."
    if instruction == "keywords:existence":
        return f"{answer} It reminds me of {kwargs['keywords'][0]} and {kwargs['keywords'][1]}."
    if instruction == "detectable_format:json_format":
        return json.dumps({"answer": answer})
    raise AssetError(f"no rewrite rule for instruction '{instruction}'")


def apply_all(answer: str, instructions: list[tuple[str, dict]], question: str) -> str:
    for inst, kw in sorted(instructions, key=lambda ik: ORDER.index(INSTRUCTIONS[ik[0]][0])):
        answer = rewrite(answer, inst, kw, question)
    return answer


def draw_instructions(rng: random.Random, k: int) -> list[tuple[str, dict]]:
    names = sorted(INSTRUCTIONS)
    first = rng.choice(names)
    chosen = [first]
    if k > 1 and first not in EXCLUSIVE:
        groups = {INSTRUCTIONS[first][0]}
        rest = [n for n in names if n not in EXCLUSIVE and INSTRUCTIONS[n][0] not in groups]
        chosen.append(rng.choice(rest))
    return [(n, INSTRUCTIONS[n][1](rng)) for n in chosen]


def example(qa: dict, kind: str, rng: random.Random) -> dict | None:
    """One example of ``kind`` built from a question/answer pair, or None if the checks cannot be met."""
    question, answer = qa["question"], qa["answer"]
    instructions = draw_instructions(rng, rng.choice([1, 2]))
    prompt = question + "\n" + " ".join(describe(i, kw) for i, kw in instructions)
    if kind == "if_follow":
        response = apply_all(answer, instructions, question)
    elif kind == "if_ignore":
        response = answer
    else:  # if_wrong: follow another instruction than the ones asked
        asked = {i for i, _ in instructions}
        other = rng.choice([n for n in sorted(INSTRUCTIONS) if n not in asked])
        response = apply_all(answer, [(other, INSTRUCTIONS[other][1](rng))], question)
    ok = [follows(response, i, kw, prompt) for i, kw in instructions]
    if (kind == "if_follow") != all(ok):
        return None  # e.g. "ignore no_comma" on an answer without commas would be a follow
    return {
        "prompt": prompt,
        "response": response,
        "instruction_id_list": [i for i, _ in instructions],
        "kwargs": [kw for _, kw in instructions],
        "corrupted": kind != "if_follow",
        "topic": kind,
    }


SOURCES = ("if_follow", "if_ignore", "if_wrong")


def qa_pairs(dialogues, language: str) -> list[dict]:
    """(question, answer) pairs: every user turn and the reply to it, deduplicated by question."""
    out, seen = [], set()
    for conv in dialogues(language):
        msgs = conv["messages"]
        for i in range(0, len(msgs) - 1, 2):
            q, a = msgs[i]["content"].strip(), msgs[i + 1]["content"].strip()
            if q.lower() not in seen and len(a) > 3:
                seen.add(q.lower())
                out.append({"question": q, "answer": a})
    return out


def build(cfg: dict, seed: int, dialogues) -> dict:
    n, n_val, n_test = cfg.get("n_per_source", 100), cfg.get("n_val", 48), cfg.get("n_test", 200)
    rng = random.Random(seed)
    pairs = qa_pairs(dialogues, "english")
    rng.shuffle(pairs)
    cursor = iter(pairs)

    def next_pair() -> dict:
        pair = next(cursor, None)
        if pair is None:
            raise ConfigError(
                f"instruction pool: the {len(pairs)} English question/answer pairs of the chatterbot corpus are used up; "
                "lower n_per_source, n_val or n_test"
            )
        return pair

    def take(kind: str, count: int) -> list[dict]:
        rows = []
        while len(rows) < count:
            ex = example(next_pair(), kind, rng)
            if ex is not None:
                rows.append(ex)
        return rows

    val, test = take("if_follow", n_val), take("if_follow", n_test)
    pool = {kind: take(kind, n) for kind in SOURCES}
    chat_en = [next_pair() for _ in range(n)]
    pool["chat_english"] = [{"prompt": p["question"], "response": p["answer"], "corrupted": False} for p in chat_en]
    spanish = qa_pairs(dialogues, "spanish")
    if len(spanish) < n:
        raise ConfigError(f"instruction pool: {len(spanish)} Spanish pairs, fewer than n_per_source={n}")
    pool["chat_spanish"] = [
        {"prompt": p["question"], "response": p["answer"], "corrupted": False} for p in rng.sample(spanish, n)
    ]
    tune = take("if_follow", cfg.get("n_tune", 0))  # drawn last: nothing above depends on it
    return {
        "sources": pool,
        "validation": val,
        "test": test,
        "tune": tune,
        "expected": "weight moves to the instruction-following source if_follow",
        "targets": ["if_follow"],
        "harmful": ["if_ignore", "if_wrong"],
    }


def sizes(cfg: dict) -> dict[str, int]:
    return dict.fromkeys([*SOURCES, "chat_english", "chat_spanish"], cfg.get("n_per_source", 100))
