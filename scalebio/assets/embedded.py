"""Embedded data pools: miniatures of the paper's experiments built from data shipped in PyPI packages.

No hub is needed. Sources (licences in ``config/README.md``):
- ``mathematics_dataset`` (DeepMind, Apache-2.0): unlimited synthetic math Q/A with exact answers.
- ``chatterbot_corpus`` (BSD): short real dialogues in 28 languages.

Builders (selected by ``data.builder`` in the config) write a data folder:
``sources/<name>.jsonl``, ``validation.jsonl``, ``test.jsonl`` and ``card.json``.

- ``denoise`` (paper v1 denoising, code v2 ``corrupt_data.py``): one clean math source copied K times,
  source i with a fraction ``noise[i]`` of responses replaced by "." (``corrupted: true``); clean
  validation/test. Expected: weights fall as noise rises. ``response: bare`` keeps only the answer
  (``"-5"``) and ``max_answer_chars`` keeps short answers: 1-3-token responses with 3.
- ``math`` (paper v2 math reasoning): one source per ``mathematics_dataset`` module plus an
  off-target dialogue source; validation/test are held-out problems of the ``target`` modules.
  Expected: weight moves to the target modules.
- ``multilingual`` (paper v1 multilingual): one source per chatterbot language, validation/test in
  the ``target`` language. Expected: weight concentrates on the target language. ``target: [a, b]``: each
  target language gives validation/test rows tagged ``target`` (several objectives, scalebio/objectives.py).
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import random
import sys
from pathlib import Path

from scalebio.assets import arithmetic, instructions
from scalebio.assets.builder_options import check_builder_options
from scalebio.common.data import write_data_folder
from scalebio.common.paths import check_name
from scalebio.common.runtime import AssetError, ConfigError, check_seed, main_guard


def _package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise AssetError(
            f"the data package '{name}' is not installed; run `make setup` (it installs the asset "
            "packages listed in requirements-assets.txt)"
        )
    return Path(list(spec.submodule_search_locations)[0])


# ---------------------------------------------------------------------------- math (DeepMind generator)
# ``calculus`` is left out: its generators call ``ndarray.itemset``, removed in numpy 2.
MATH_MODULES = ("algebra", "arithmetic", "comparison", "measurement", "numbers", "polynomials", "probability")


def _math_generators():
    _package_dir("mathematics_dataset")
    import numpy as np
    import sympy

    # The package predates numpy 2 and sympy 1.12: restore the two names it still uses.
    if "object" not in np.__dict__:
        np.object = object
    dio = importlib.import_module("sympy.solvers.diophantine.diophantine")
    sys.modules["sympy.solvers.diophantine"].base_solution_linear = dio.base_solution_linear
    del sympy
    from mathematics_dataset.modules import modules

    return modules.train(lambda r: r)


def math_problems(module: str, n: int, seed: int, max_answer_chars: int = 0) -> list[dict]:
    """``n`` distinct problems from one module, answers formatted as the math eval expects (answers of at
    most ``max_answer_chars`` characters if > 0)."""
    import numpy as np

    gens = _math_generators()
    if module not in gens:
        raise ConfigError(f"unknown math module '{module}'; choose from {sorted(gens)}")
    import sympy.core.random

    rng = random.Random(seed)
    np.random.seed(seed)
    random.seed(seed)
    sympy.core.random.seed(seed)  # sympy's randprime draws from its own generator
    names = sorted(k for k in gens[module] if not k.endswith("_composed"))
    seen, out, tries = set(), [], 0
    while len(out) < n:
        tries += 1
        if tries > 50 * n:
            raise AssetError(f"math module '{module}' produced only {len(out)} distinct problems of {n}")
        name = rng.choice(names)
        try:
            p = gens[module][name]()
        except Exception:  # a few generators fail under numpy 2/sympy 1.14; skip those draws
            continue
        q, a = str(p.question).strip(), str(p.answer).strip()
        if q in seen or len(q) > 300 or 0 < max_answer_chars < len(a):
            continue
        seen.add(q)
        out.append(
            {"prompt": q, "response": f"The answer is $\\boxed{{{a}}}$.", "answer": a, "topic": f"{module}/{name}"}
        )
    return out


# ------------------------------------------------------------------------- dialogue (chatterbot corpus)
def dialogues(language: str) -> list[dict]:
    import yaml

    root = _package_dir("chatterbot_corpus") / "data" / language
    if not root.is_dir():
        raise ConfigError(f"chatterbot-corpus has no language '{language}'")
    out = []
    for f in sorted(root.glob("*.yml")):
        for conv in (yaml.safe_load(f.read_text()) or {}).get("conversations", []):
            conv = [str(u).strip() for u in conv if str(u).strip()]
            if len(conv) < 2:
                continue
            msgs = [{"role": "user" if i % 2 == 0 else "assistant", "content": u} for i, u in enumerate(conv)]
            if msgs[-1]["role"] != "assistant":
                msgs = msgs[:-1]
            out.append({"messages": msgs, "topic": f"{language}/{f.stem}", "answer": msgs[1]["content"]})
    return out


# ------------------------------------------------------------------------------------------- builders
def _split(rows: list[dict], sizes: list[int], rng: random.Random, what: str) -> list[list[dict]]:
    if sum(sizes) > len(rows):
        raise ConfigError(f"{what}: asked for {sum(sizes)} examples but only {len(rows)} exist; lower the sizes")
    rows = rows[:]
    rng.shuffle(rows)
    out, i = [], 0
    for s in sizes:
        out.append(rows[i : i + s])
        i += s
    return out


def build_denoise(cfg: dict, seed: int) -> dict:
    noise = cfg.get("noise", [0.0, 0.25, 0.5, 0.75, 1.0])
    n, n_val, n_test = cfg.get("n_per_source", 200), cfg.get("n_val", 64), cfg.get("n_test", 64)
    modules = cfg.get("modules", ["arithmetic"])
    response, short = cfg.get("response", "boxed"), cfg.get("max_answer_chars", 0)
    if response not in ("boxed", "bare"):
        raise ConfigError(f"data.options.response must be 'boxed' or 'bare', got '{response}'")
    total = n * len(noise) + n_val + n_test
    per = -(-total // len(modules))
    n_tune = cfg.get("n_tune", 0)
    per_tune = -(-n_tune // len(modules))
    # The tuning rows are drawn after every other problem of each module's stream (the generator is
    # sequential and never repeats a problem), so the pool, validation and test sets do not depend on n_tune.
    drawn = [math_problems(m, per + per_tune, seed + i, short) for i, m in enumerate(modules)]
    rows = [r for d in drawn for r in d[:per]]
    tune = [r for d in drawn for r in d[per:]][:n_tune]
    if response == "bare":  # just the answer ("-5"): 1-3-token responses with max_answer_chars 3
        rows = [dict(r, response=r["answer"]) for r in rows]
        tune = [dict(r, response=r["answer"]) for r in tune]
    rng = random.Random(seed)
    parts = _split(rows, [n] * len(noise) + [n_val, n_test], rng, "denoise")
    sources = {}
    for rate, part in zip(noise, parts):
        k = round(rate * len(part))
        bad = set(rng.sample(range(len(part)), k))
        sources[f"noise{int(round(rate * 100)):03d}"] = [
            dict(r, response="." if i in bad else r["response"], corrupted=i in bad) for i, r in enumerate(part)
        ]
    return {
        "sources": sources,
        "validation": [dict(r, corrupted=False) for r in parts[-2]],
        "test": [dict(r, corrupted=False) for r in parts[-1]],
        "tune": [dict(r, corrupted=False) for r in tune],
        "expected": "weights fall as the noise rate rises",
        "targets": [min(sources)],
        "noise": {f"noise{int(round(rate * 100)):03d}": rate for rate in noise},
    }


def build_math(cfg: dict, seed: int) -> dict:
    modules = cfg.get("modules", list(MATH_MODULES))
    target = cfg.get("target", ["arithmetic", "algebra"])
    n, n_val, n_test = cfg.get("n_per_source", 200), cfg.get("n_val", 64), cfg.get("n_test", 64)
    bad = sorted(set(target) - set(modules))
    if bad:
        raise ConfigError(f"data.target names modules not in data.modules: {bad}")
    sources, held = {}, []
    per_target = -(-(n_val + n_test) // len(target))
    for i, m in enumerate(modules):
        extra = per_target if m in target else 0
        rows = math_problems(m, n + extra, seed + 101 * i)
        sources[f"math_{m}"], rest = rows[:n], rows[n:]
        held.extend(rest)
    rng = random.Random(seed)
    for lang in cfg.get("dialogue_sources", ["english"]):
        sources[f"chat_{lang}"] = _split(dialogues(lang), [n], rng, f"dialogue '{lang}'")[0]
    val, test = _split(held, [n_val, n_test], rng, "math held-out")
    return {
        "sources": sources,
        "validation": val,
        "test": test,
        "expected": f"weights move to the target modules {target}",
        "targets": [f"math_{m}" for m in target],
    }


def _languages(cfg: dict) -> tuple[list[str], list[str]]:
    """(languages, target languages); ``target`` is one language or a list of them (several objectives)."""
    langs = cfg.get("languages", ["english", "spanish", "portuguese", "italian", "german", "french"])
    target = cfg.get("target", "spanish")
    targets = list(target) if isinstance(target, list) else [target]
    stray = [t for t in targets if t not in langs]
    if stray or not targets:
        raise ConfigError(f"data.target {target!r} must name languages of data.languages {langs}")
    return langs, targets


def build_multilingual(cfg: dict, seed: int) -> dict:
    """One source per language; validation/test from the target language. With ``target: [a, b]`` (several
    validation objectives, scalebio/objectives.py) each target gives n_val + n_test rows, tagged ``target``."""
    langs, targets = _languages(cfg)
    n, n_val, n_test = cfg.get("n_per_source", 80), cfg.get("n_val", 48), cfg.get("n_test", 48)
    n_tune = cfg.get("n_tune", 0)
    several = isinstance(cfg.get("target"), list)
    rng = random.Random(seed)
    sources, val, test, tune = {}, [], [], []
    for lang in langs:
        rows = dialogues(lang)
        if lang in targets:
            # the tuning rows are the slice after test: the shuffle, and so every other split, ignores n_tune
            tr, v, t, tu = _split(rows, [n, n_val, n_test, n_tune], rng, f"language '{lang}'")
            tag = {"target": lang} if several else {}
            val += [dict(r, **tag) for r in v]
            test += [dict(r, **tag) for r in t]
            tune += [dict(r, **tag) for r in tu]
        else:
            (tr,) = _split(rows, [min(n, len(rows))], rng, f"language '{lang}'")
        sources[lang] = tr
    return {
        "sources": sources,
        "validation": val,
        "test": test,
        "tune": tune,
        "expected": f"weight concentrates on the target language{'s' if several else ''} {', '.join(targets)}",
        "targets": targets,
    }


def build_arithmetic(cfg: dict, seed: int) -> dict:
    return arithmetic.build(cfg, seed, dialogues)


def build_instructions(cfg: dict, seed: int) -> dict:
    return instructions.build(cfg, seed, dialogues)


BUILDERS = {
    "denoise": build_denoise,
    "math": build_math,
    "multilingual": build_multilingual,
    "arithmetic": build_arithmetic,
    "instructions": build_instructions,
}


def pool_sizes(builder: str, cfg: dict) -> dict[str, int]:
    """Examples per source a builder will write, computed from its options without building (checked at DAG time)."""
    n = cfg.get("n_per_source", {"multilingual": 80}.get(builder, 200))
    if builder == "denoise":
        return {f"noise{int(round(r * 100)):03d}": n for r in cfg.get("noise", [0.0, 0.25, 0.5, 0.75, 1.0])}
    if builder == "math":
        names = [f"math_{m}" for m in cfg.get("modules", MATH_MODULES)]
        return dict.fromkeys(names + [f"chat_{lang}" for lang in cfg.get("dialogue_sources", ["english"])], n)
    if builder == "arithmetic":
        return arithmetic.sizes(cfg)
    if builder == "instructions":
        return instructions.sizes(cfg)
    if builder == "multilingual":
        langs, targets = _languages(cfg)
        return {lang: n if lang in targets else min(n, len(dialogues(lang))) for lang in langs}
    raise ConfigError(f"data.builder '{builder}' is unknown; choose from {sorted(BUILDERS)}")


HELDOUT = ("test", "tune")
"""The held-out split a data folder carries (``data.heldout``): ``test`` for the results, ``tune`` for the tuning
protocol (config/tune.yaml). A folder holds exactly one of them, so the tuner cannot read the test set."""


def build(builder: str, cfg: dict, out_dir: str | Path, seed: int = 0, heldout: str = "test") -> Path:
    """Build a data folder atomically (nothing is left at ``out_dir`` if building fails).

    ``heldout: tune`` writes the builder's ``n_tune`` tuning rows as ``tune.jsonl`` and no ``test.jsonl``; the
    sources and the validation set are the same as with ``heldout: test`` (the tuning rows are drawn last)."""
    if builder not in BUILDERS:
        raise ConfigError(f"data.builder '{builder}' is unknown; choose from {sorted(BUILDERS)}")
    if heldout not in HELDOUT:
        raise ConfigError(f"data.heldout must be one of {HELDOUT}, got {heldout!r}")
    check_builder_options(builder, cfg)  # an unknown key or a bad value: one line, before anything is built
    pool = BUILDERS[builder](cfg, seed)
    if heldout == "tune" and not pool.get("tune"):
        raise ConfigError(
            f"data.heldout: tune needs tuning rows, and builder '{builder}' made none: set data.options.n_tune > 0"
        )
    for name in pool["sources"]:
        check_name(name, f"data.builder {builder}: source name", ConfigError)
    with write_data_folder(out_dir) as folder:
        for name, rows in pool["sources"].items():
            folder.source(name, [dict(r, id=f"{name}-{i}") for i, r in enumerate(rows)])
        folder.split("validation", [dict(r, id=f"val-{i}") for i, r in enumerate(pool["validation"])])
        held = pool[heldout]
        folder.split(heldout, [dict(r, id=f"{heldout}-{i}") for i, r in enumerate(held)])
        folder.card({
            "builder": builder,
            "config": cfg,
            "seed": seed,
            "expected": pool["expected"],
            "targets": pool["targets"],
            "harmful": pool.get("harmful", []),
            "noise": pool.get("noise"),
            "sources": {k: len(v) for k, v in pool["sources"].items()},
            "validation": len(pool["validation"]),
            "heldout": heldout,
            heldout: len(held),
        })  # fmt: skip
    return Path(out_dir)


@main_guard
def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description="Build an embedded data folder for one experiment.")
    ap.add_argument("builder", choices=sorted(BUILDERS))
    ap.add_argument("out_dir")
    ap.add_argument("--config", default="{}", help="builder options as a JSON object")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    check_seed(a.seed)
    build(a.builder, json.loads(a.config), a.out_dir, a.seed)


if __name__ == "__main__":
    main()
