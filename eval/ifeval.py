"""Verifiable instruction following (IFEval's checkers) on the experiment's test set.

    python -m eval.ifeval --model DIR --out DIR --data results/default/instruct/data [--options JSON]

Each test record carries a ``prompt`` (a question plus one or two IFEval instructions), the
``instruction_id_list`` and the checker ``kwargs`` (built by ``scalebio.assets.instructions``). The model answers
through its chat template (greedy); every instruction is checked by Google's IFEval checkers (``if_verifiable``,
offline: no NLTK download), in the strict and the loose variant (loose also accepts the answer without its first
or last line or markdown asterisks, as IFEval does). Reported:

- ``value``: prompt-level strict accuracy (every instruction of a prompt followed), with its standard error;
- instruction-level strict accuracy, and both loose variants.

Per-prompt records (answer, each instruction's verdict) go to ``predictions.jsonl``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from eval.common import cli_main, device_name, heldout_file, mean_stderr
from eval.generation import load_generator, render_chat
from scalebio.common.config import GenerationOptions
from scalebio.common.data import read_jsonl
from scalebio.common.ifeval_checkers import checkers
from scalebio.common.runtime import ConfigError, DataError, is_main, write_jsonl

GRADER = "IFEval checkers (if-verifiable==0.1.2, Google's instructions.py), strict and loose"


@dataclass
class Options(GenerationOptions):
    """Options of the instruction-following evaluation; the generation options are ``GenerationOptions``' (its
    batch size defaults to 16)."""

    limit: int | None = None
    """Evaluate only the first N prompts (None = all)."""
    max_new_tokens: int = 96
    """Generation budget per answer."""
    batch_size: int = 16
    """Prompts generated together (left padding)."""

    def validate(self) -> None:
        if self.limit is not None and self.limit < 1:
            raise ConfigError("eval.ifeval.limit must be >= 1 or null")
        if min(self.max_new_tokens, self.batch_size, self.tensor_parallel_size) < 1:
            raise ConfigError("eval.ifeval.max_new_tokens, batch_size and tensor_parallel_size must be >= 1")


def check(response: str, prompt: str, instructions: list[str], kwargs: list[dict]) -> tuple[list[bool], list[bool]]:
    """Strict and loose verdict per instruction (IFEval's rules; an empty answer follows nothing)."""
    from if_verifiable.common import evaluate_instructions  # on use: the package imports `datasets` (~2 s)

    registry = checkers()  # seeded langdetect: the same verdict as the pool builder's
    unknown = [i for i in instructions if i not in registry]
    if unknown:
        raise DataError(f"unknown IFEval instruction id(s) {unknown}")
    results, _ = evaluate_instructions(response, instructions, kwargs, prompt, registry)
    if not results:  # empty response
        return [False] * len(instructions), [False] * len(instructions)
    return [r.strict_pass for r in results], [r.loose_pass for r in results]


def load_test(data_dir: str | None, limit: int | None) -> list[dict]:
    path = heldout_file(data_dir, "ifeval")  # test.jsonl (tune.jsonl in a tuning run's folder)
    rows = read_jsonl(path, required=("prompt", "instruction_id_list", "kwargs"), what="IFEval test record")
    return rows[:limit] if limit else rows


def run(model_path: str, out: Path, data_dir: str | None, opts: Options, log) -> dict:
    rows = load_test(data_dir, opts.limit)
    gen = load_generator(model_path, opts.dtype, opts.backend, opts.tensor_parallel_size)
    prompts = [render_chat(gen.tokenizer, [{"role": "user", "content": r["prompt"]}]) for r in rows]
    outputs = gen.generate(prompts, opts.max_new_tokens, opts.batch_size, desc="ifeval")
    if not is_main():
        return {}  # other ranks helped generate; rank 0 grades and writes
    records, strict_inst, loose_inst = [], [], []
    for r, output in zip(rows, outputs):
        strict, loose = check(output, r["prompt"], r["instruction_id_list"], r["kwargs"])
        strict_inst += strict
        loose_inst += loose
        records.append(
            {
                "id": r["id"],
                "prompt": r["prompt"],
                "output": output,
                "instructions": r["instruction_id_list"],
                "strict": strict,
                "loose": loose,
                "correct": all(strict),
            }
        )
    write_jsonl(out / "predictions.jsonl", records)
    prompt_strict, stderr = mean_stderr([float(all(r["strict"])) for r in records])
    log.info("prompt-level strict %.3f over %d prompts", prompt_strict, len(records))
    return {
        "metric": "prompt_level_strict_acc",
        "value": prompt_strict,
        "stderr": stderr,
        "n": len(records),
        "instruction_level_strict_acc": mean_stderr([float(x) for x in strict_inst])[0],
        "prompt_level_loose_acc": mean_stderr([float(all(r["loose"])) for r in records])[0],
        "instruction_level_loose_acc": mean_stderr([float(x) for x in loose_inst])[0],
        "heldout": heldout_file(data_dir, "ifeval").name,
        "protocol": f"IFEval-style verifiable instructions on the experiment's held-out split, chat template, greedy, "
        f"max_new_tokens={opts.max_new_tokens}, {gen.backend} generation",
        "grader": GRADER,
        "comparable_to_paper": False,
        "device": device_name(),
    }


main = cli_main(
    "ifeval",
    Options,
    run,
    "Verifiable instruction following (IFEval checkers) on test.jsonl. --data: a data folder with test.jsonl.",
)

if __name__ == "__main__":
    main()
