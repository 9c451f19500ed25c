"""The math miniature: GSM8K-style word problems a 135M model can learn in minutes, and sources that help or hurt.

A seeded generator of our own (no data package has GSM8K offline). The target skill is a one-step word problem
over two-digit numbers, answered GSM8K-style with the equation and a boxed result; the pool mixes sources whose
value for that target is known by construction:

| source | what it teaches | for the target |
|---|---|---|
| ``word_add`` | word problems, addition, correct answers | the target itself (clean) |
| ``word_add_wrong`` | the same problems with wrong results (off by ±1 or ±10) | harmful: looks right, teaches wrong |
| ``arith_add`` | bare "What is a + b?" with the equation, correct | related skill, other format |
| ``word_sub`` | word problems, subtraction, correct | other skill, same format |
| ``chat_english`` | short English dialogue (chatterbot corpus) | off-target |

Validation and test sets are fresh ``word_add`` problems (no (template, a, b) repeats a training one). Every
question ends with the paper's instruction ("Please reason step by step, and put your final answer within
\\boxed{}."), as in the evaluation.
"""

from __future__ import annotations

import random

from scalebio.common.runtime import ConfigError

SUFFIX = "Please reason step by step, and put your final answer within \\boxed{}."
NAMES = ["Ava", "Ben", "Chloe", "Diego", "Ella", "Farid", "Grace", "Hugo", "Ines", "Jonas", "Kira", "Liam", "Maya",
         "Noah", "Olga", "Pavel", "Quinn", "Rosa", "Sami", "Tara", "Umar", "Vera", "Wen", "Yusuf", "Zoe"]  # fmt: skip
ITEMS = ["marbles", "apples", "stickers", "books", "coins", "pencils", "cards", "shells", "stamps", "cookies",
         "buttons", "beads", "leaves", "tickets", "rocks"]  # fmt: skip
ADD_TEMPLATES = [
    "{name} has {a} {item}. {name} gets {b} more {item}. How many {item} does {name} have now?",
    "{name} collected {a} {item} on Monday and {b} {item} on Tuesday. How many {item} did {name} collect in total?",
    "There are {a} {item} in a box and {b} {item} in a bag. How many {item} are there altogether?",
    "{name} bought {a} {item}. Later {name} bought {b} more {item}. How many {item} did {name} buy?",
    "A shop sold {a} {item} in the morning and {b} {item} in the afternoon. How many {item} did it sell that day?",
    "{name} found {a} {item} and a friend gave {name} {b} {item}. How many {item} does {name} have?",
]
SUB_TEMPLATES = [
    "{name} has {a} {item}. {name} gives away {b} {item}. How many {item} does {name} have left?",
    "There were {a} {item} on a table. {b} {item} were taken away. How many {item} are still on the table?",
    "{name} had {a} {item} and lost {b} of them. How many {item} does {name} have now?",
    "A shop had {a} {item} and sold {b} of them. How many {item} are left in the shop?",
]


def _answer(a: int, op: str, b: int, result: int) -> str:
    return f"{a} {op} {b} = {result}. The answer is $\\boxed{{{result}}}$."


def problems(kind: str, n: int, rng: random.Random, taken: set) -> list[dict]:
    """``n`` problems of ``kind`` (word_add, word_add_wrong, arith_add, word_sub), none of whose keys is in ``taken``."""
    out = []
    while len(out) < n:
        a, b = rng.randint(10, 99), rng.randint(10, 99)
        if kind == "word_sub":
            a, b = max(a, b), min(a, b)
        template = rng.randrange(len(SUB_TEMPLATES if kind == "word_sub" else ADD_TEMPLATES))
        key = (kind == "word_sub", template, a, b)  # word_add and word_add_wrong share keys: never the same problem
        if key in taken:
            continue
        taken.add(key)
        name, item = rng.choice(NAMES), rng.choice(ITEMS)
        if kind == "arith_add":
            question, result, op = f"What is {a} + {b}?", a + b, "+"
        elif kind == "word_sub":
            question, result, op = SUB_TEMPLATES[template].format(name=name, item=item, a=a, b=b), a - b, "-"
        else:
            question, result, op = ADD_TEMPLATES[template].format(name=name, item=item, a=a, b=b), a + b, "+"
        shown = result + rng.choice([-10, -1, 1, 10]) if kind == "word_add_wrong" else result
        out.append(
            {
                "prompt": f"{question}\n{SUFFIX}",
                "response": _answer(a, op, b, shown),
                "answer": str(result),
                "corrupted": shown != result,
                "topic": f"{kind}/{template}",
            }
        )
    return out


SOURCES = ("word_add", "word_add_wrong", "arith_add", "word_sub")


def build(cfg: dict, seed: int, dialogues) -> dict:
    """The pool (``dialogues(language)`` gives chatterbot conversations); see the module docstring."""
    n, n_val, n_test = cfg.get("n_per_source", 100), cfg.get("n_val", 64), cfg.get("n_test", 256)
    sources = cfg.get("sources", list(SOURCES))
    unknown = sorted(set(sources) - set(SOURCES))
    if unknown:
        raise ConfigError(f"data.options.sources {unknown} unknown; choose from {list(SOURCES)}")
    rng, taken = random.Random(seed), set()
    # Held-out sets first, so the training sources avoid exactly these problems.
    val = problems("word_add", n_val, rng, taken)
    test = problems("word_add", n_test, rng, taken)
    pool = {name: problems(name, n, rng, taken) for name in sources}
    tune = problems("word_add", cfg.get("n_tune", 0), rng, taken)  # drawn last: nothing above depends on it
    for lang in cfg.get("dialogue_sources", ["english"]):
        chats = dialogues(lang)
        if len(chats) < n:
            raise ConfigError(f"dialogue source '{lang}' has {len(chats)} conversations, fewer than n_per_source={n}")
        pool[f"chat_{lang}"] = [dict(c, corrupted=False) for c in random.Random(seed).sample(chats, n)]
    return {
        "sources": pool,
        "validation": val,
        "test": test,
        "tune": tune,
        "expected": "weight moves to the clean target source word_add (and away from word_add_wrong)",
        "targets": ["word_add"],
        "harmful": ["word_add_wrong"] if "word_add_wrong" in sources else [],
    }


def sizes(cfg: dict) -> dict[str, int]:
    n = cfg.get("n_per_source", 100)
    return dict.fromkeys(
        [*cfg.get("sources", SOURCES), *(f"chat_{lang}" for lang in cfg.get("dialogue_sources", ["english"]))], n
    )
