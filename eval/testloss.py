"""Held-out loss: mean response-token cross-entropy of a model on the experiment's ``test.jsonl``.

    python -m eval.testloss --model DIR --out DIR --data results/denoise/data [--options JSON]

The cheapest downstream measure and the only informative one for the random-initialised tiny model
(whose generations cannot be graded): a model fine-tuned on cleaner / more target-like data reaches a
lower loss on the clean, target-domain test set. Per-example losses use the same code as training
(``scalebio.common.modeling.per_example_loss``: mean over response tokens, chat template, response masking).
Lower is better; the summary also gives the perplexity exp(loss), and, where test rows carry a ``target``
(several objectives), the loss on each target's rows (``by_target``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch

from eval.common import cli_main, heldout_file, load_eval_model, mean_stderr
from scalebio.common.data import collate, load_split, read_jsonl
from scalebio.common.modeling import per_example_loss
from scalebio.common.runtime import ConfigError, write_jsonl


@dataclass
class Options:
    """Options of the held-out loss evaluation."""

    limit: int = 0
    """Score only the first this many test examples (0: all)."""
    batch_size: int = 16
    """Examples per forward pass."""
    max_length: int = 1024
    """Token limit per example (as in training)."""
    dtype: str = "float32"
    """Dtype the model is loaded in."""

    def validate(self) -> None:
        if self.limit < 0 or self.batch_size < 1 or self.max_length < 8:
            raise ConfigError("eval.testloss: limit >= 0, batch_size >= 1 and max_length >= 8 are required")


def run(model_path: str, out: Path, data_dir: str | None, opts: Options, log) -> dict:
    model, tok = load_eval_model(model_path, dtype=opts.dtype)
    test_file = heldout_file(data_dir, "testloss")  # test.jsonl (tune.jsonl in a tuning run's folder)
    examples = load_split(test_file, tok, opts.max_length, what=f"held-out set {test_file.name}")
    target = {r["id"]: r["target"] for r in read_jsonl(test_file) if r.get("target")}  # several targets
    if opts.limit:
        examples = examples[: opts.limit]
    device = next(model.parameters()).device
    losses, rows = [], []
    with torch.no_grad():
        for i in range(0, len(examples), opts.batch_size):
            chunk = examples[i : i + opts.batch_size]
            batch = {k: v.to(device) for k, v in collate(chunk, tok.pad_token_id).items()}
            loss, n = per_example_loss(model, batch)
            for ex, lo, nt in zip(chunk, loss.tolist(), n.tolist()):
                if nt > 0:
                    losses.append(lo)
                rows.append({"id": ex["id"], "loss": lo, "response_tokens": nt})
                if ex["id"] in target:
                    rows[-1]["target"] = target[ex["id"]]
    write_jsonl(out / "losses.jsonl", rows)
    mean, stderr = mean_stderr(losses)
    log.info("test loss %.4f over %d examples", mean, len(losses))
    by_target = {}  # the loss on each target's own test rows (several objectives)
    for name in sorted(set(target.values())):
        m, se = mean_stderr([r["loss"] for r in rows if r.get("target") == name and r["response_tokens"] > 0])
        by_target[name] = {"value": m, "stderr": se}
    return {
        "metric": "test_loss",
        "value": mean,
        "stderr": stderr,
        "n": len(losses),
        "perplexity": math.exp(mean) if mean is not None else None,
        "higher_is_better": False,
        "protocol": f"mean response-token cross-entropy on the experiment's {test_file.name} (chat template, response-only)",
        "heldout": test_file.name,
        "grader": "scalebio.common.modeling.per_example_loss",
        "comparable_to_paper": False,
        **({"by_target": by_target} if by_target else {}),
    }


main = cli_main("testloss", Options, run, __doc__.split("\n\n")[0])

if __name__ == "__main__":
    main()
