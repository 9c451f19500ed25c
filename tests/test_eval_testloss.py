"""The held-out loss evaluation equals per-example losses computed one example at a time."""

from __future__ import annotations

import json
import math

import torch

from eval.testloss import main
from scalebio.common.data import load_split
from scalebio.common.modeling import IGNORE_INDEX, load_model, load_tokenizer


def test_testloss_is_the_mean_of_unbatched_response_token_losses(tmp_path, tiny_model_dir, denoise_data_dir):
    summary = main(["--model", str(tiny_model_dir), "--out", str(tmp_path), "--data", str(denoise_data_dir),
                    "--options", json.dumps({"limit": 5, "batch_size": 3})])  # fmt: skip
    tok, model = load_tokenizer(tiny_model_dir), load_model(tiny_model_dir, device="cpu")
    direct = []
    for ex in load_split(denoise_data_dir / "test.jsonl", tok, 1024)[:5]:
        logits = model(input_ids=torch.tensor([ex["input_ids"]])).logits[0, :-1]
        labels = torch.tensor(ex["labels"][1:])
        keep = labels != IGNORE_INDEX
        direct.append(torch.nn.functional.cross_entropy(logits[keep], labels[keep]).item())
    assert summary["n"] == 5 and summary["higher_is_better"] is False
    assert math.isclose(summary["value"], sum(direct) / 5, rel_tol=1e-5)
    assert json.loads((tmp_path / "summary.json").read_text())["metric"] == "test_loss"
    assert len((tmp_path / "losses.jsonl").read_text().splitlines()) == 5
