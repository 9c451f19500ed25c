"""Foundation: shared data/model code, config validation, selection contract, atomic outputs.

Modules: `scalebio/common/config.py`, `scalebio/common/data.py`, `scalebio/common/modeling.py`,
`scalebio/common/runtime.py`, `scalebio/common/selection.py`, `scalebio/common/training.py`.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from scalebio.common.config import apply_overrides, from_dict
from scalebio.common.data import collate, load_sources, read_jsonl, to_messages, tokenize_chat
from scalebio.common.modeling import IGNORE_INDEX, decoder_layers, load_model, load_tokenizer, per_example_loss
from scalebio.common.runtime import AssetError, ConfigError, DataError, atomic_dir
from scalebio.common.selection import MethodInputs, read_selection, write_selection

ROOT = Path(__file__).resolve().parents[1]


def test_import_sets_offline_defaults():
    code = "import os, scalebio; print(os.environ.get('HF_HUB_OFFLINE'), os.environ.get('HF_DATASETS_OFFLINE'))"
    env = {k: v for k, v in __import__("os").environ.items() if not k.startswith(("HF_", "TRANSFORMERS_"))}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["1", "1"]
    env["SCALEBIO_HUB"] = "1"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["None", "None"]


def test_missing_model_names_it_and_does_not_hang(tmp_path):
    with pytest.raises(AssetError, match="meta-llama/Meta-Llama-3-8B.*hub is off"):
        load_tokenizer("meta-llama/Meta-Llama-3-8B")


def test_response_only_mask_covers_exactly_the_assistant_turns(tiny_model_dir):
    tok = load_tokenizer(tiny_model_dir)
    msgs = [
        {"role": "user", "content": "What is 2+2?"},
        {"role": "assistant", "content": "4"},
        {"role": "user", "content": "And 3+3?"},
        {"role": "assistant", "content": "6"},
    ]
    ex = tokenize_chat(tok, msgs, max_length=512)
    full = tok.apply_chat_template(msgs, tokenize=False)
    assert tok.decode(ex["input_ids"]) == full
    learned = [i if lab != IGNORE_INDEX else None for i, lab in zip(ex["input_ids"], ex["labels"])]
    spans, cur = [], []
    for t in learned:
        if t is None and cur:
            spans.append(tok.decode(cur))
            cur = []
        elif t is not None:
            cur.append(t)
    spans.append(tok.decode(cur)) if cur else None
    assert spans == ["4<|im_end|>\n", "6<|im_end|>\n"]


@pytest.mark.parametrize(
    "loss_span, learned",
    [
        # the reply and its end-of-turn marker
        ("response", [(18, "4"), (19, "<|im_end|>"), (20, "\n")]),
        # the whole assistant turn, role header included (the official code's span)
        ("assistant_turn", [(13, "<|im_start|>"), (14, "ass"), (15, "ist"), (16, "ant"), (17, "\n"), (18, "4"),
                            (19, "<|im_end|>"), (20, "\n")]),
    ],
)  # fmt: skip
def test_loss_span_labels_exactly_these_tokens(tiny_model_dir, loss_span, learned):
    """METHOD.md §3.4 on ChatML: positions 0-12 are the user turn, 13-17 the assistant header, 18-20 the reply."""
    tok = load_tokenizer(tiny_model_dir)
    msgs = [{"role": "user", "content": "What is 2+2?"}, {"role": "assistant", "content": "4"}]
    ex = tokenize_chat(tok, msgs, max_length=512, loss_span=loss_span)
    assert tok.decode(ex["input_ids"]) == tok.apply_chat_template(msgs, tokenize=False)
    assert len(ex["input_ids"]) == 21
    got = [(i, tok.decode([t])) for i, (t, lab) in enumerate(zip(ex["input_ids"], ex["labels"])) if lab != IGNORE_INDEX]
    assert got == learned
    assert all(lab in (t, IGNORE_INDEX) for t, lab in zip(ex["input_ids"], ex["labels"]))
    with pytest.raises(DataError, match="loss_span must be one of"):
        tokenize_chat(tok, msgs, max_length=512, loss_span="everything")


@pytest.mark.parametrize(
    "record",
    [
        {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]},
        {"conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}]},
        {"prompt": "q", "response": "a"},
        {"instruction": "q", "output": "a"},
    ],
)
def test_record_shapes_normalise_to_the_same_messages(record):
    assert to_messages(record) == [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]


def test_bad_records_name_the_file_and_line(tmp_path):
    p = tmp_path / "src.jsonl"
    p.write_text('{"prompt": "q", "response": "a"}\n{not json}\n')
    with pytest.raises(DataError, match=r"src.jsonl:2"):
        read_jsonl(p)
    with pytest.raises(DataError, match="no assistant turn"):
        to_messages({"messages": [{"role": "user", "content": "q"}]}, "x")


def test_empty_source_and_source_without_response_tokens(tmp_path, tiny_model_dir):
    tok = load_tokenizer(tiny_model_dir)
    (tmp_path / "sources").mkdir()
    (tmp_path / "sources" / "empty.jsonl").write_text("")
    with pytest.raises(DataError, match="source 'empty'.*empty"):
        load_sources(tmp_path, tok)
    (tmp_path / "sources" / "empty.jsonl").write_text(json.dumps({"prompt": "long " * 200, "response": "a"}) + "\n")
    with pytest.raises(DataError, match="source 'empty'.*no example has response tokens"):
        load_sources(tmp_path, tok, max_length=16)


def test_per_example_loss_is_the_response_token_mean(tiny_model_dir, denoise_data_dir):
    import torch

    tok = load_tokenizer(tiny_model_dir)
    model = load_model(tiny_model_dir, device="cpu")
    src = load_sources(denoise_data_dir, tok, 128)[0]
    batch = collate(src.examples[:3], tok.pad_token_id)
    loss, n = per_example_loss(model, batch)
    for i, ex in enumerate(src.examples[:3]):  # unpadded, one example at a time
        ids = torch.tensor([ex["input_ids"]])
        logits = model(input_ids=ids).logits[0, :-1]
        labels = torch.tensor(ex["labels"][1:])
        keep = labels != IGNORE_INDEX
        direct = torch.nn.functional.cross_entropy(logits[keep], labels[keep])
        assert n[i] == keep.sum()
        assert math.isclose(loss[i].item(), direct.item(), rel_tol=1e-5)


def test_suite_trainer_loss_and_gradient_equal_the_trainers_own(tiny_model_dir, denoise_data_dir, tmp_path):
    """The response-position-only loss of the SFT Trainer (scalebio.common.training) against HF's full-logit loss."""
    import torch
    from transformers import Trainer, TrainingArguments

    from scalebio.common.training import suite_trainer_class

    tok = load_tokenizer(tiny_model_dir)
    model = load_model(tiny_model_dir, device="cpu")
    src = load_sources(denoise_data_dir, tok, 128)[0]
    batch = collate(src.examples[:4], tok.pad_token_id)
    n_items = int((batch["labels"][:, 1:] != IGNORE_INDEX).sum())
    args = TrainingArguments(output_dir=str(tmp_path), report_to=[], use_cpu=True)
    values, grads = [], []
    for cls in (Trainer, suite_trainer_class()):
        trainer = cls(model=model, args=args)
        model.zero_grad()
        loss = trainer.compute_loss(model, dict(batch), num_items_in_batch=torch.tensor(n_items))
        loss.backward()
        values.append(loss.item())
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None]))
    assert math.isclose(values[0], values[1], rel_tol=1e-5)
    assert torch.allclose(grads[0], grads[1], rtol=1e-4, atol=1e-7)


def test_decoder_layers_found_by_introspection(tiny_model_dir):
    model = load_model(tiny_model_dir, device="cpu")
    assert decoder_layers(model) is model.model.layers


def test_atomic_dir_leaves_nothing_on_failure(tmp_path):
    final = tmp_path / "out"
    with pytest.raises(RuntimeError):
        with atomic_dir(final) as tmp:
            (tmp / "half.txt").write_text("x")
            raise RuntimeError("boom")
    assert not final.exists() and list(tmp_path.iterdir()) == []
    with atomic_dir(final) as tmp:
        (tmp / "ok.txt").write_text("x")
    assert (final / "ok.txt").exists()


def test_selection_contract_validates_weights(tmp_path, denoise_data_dir):
    inputs = MethodInputs(data_dir=str(denoise_data_dir), model="unused", out_dir=str(tmp_path), budget=10)
    names = sorted(inputs.sources)
    for bad, msg in [
        ({n: 0.3 for n in names}, "sum to"),
        ({**{n: 0.2 for n in names}, names[0]: float("nan")}, "NaN"),
        ({**{n: 0.25 for n in names[:4]}, names[4]: 0.25, names[0]: -0.25}, "negative"),
        ({"nope": 1.0}, "not in the pool"),
    ]:
        with pytest.raises(DataError, match=msg):
            write_selection(inputs, "t", weights=bad, wall_time_s=0, tokens=0)
        assert not (tmp_path / "selection.json").exists()
    write_selection(inputs, "t", weights={n: 0.2 for n in names}, wall_time_s=1.5, tokens=7)
    sel = read_selection(tmp_path / "selection.json")
    assert sel["kind"] == "weights" and sel["cost"] == {"tokens": 7}
    assert json.loads((tmp_path / "run.json").read_text())["wall_time_s"] == 1.5
    assert set(sel["sources"]) == set(names) and all(v["n_examples"] == 64 for v in sel["sources"].values())


def test_typed_options_reject_unknown_keys_and_wrong_types():
    from dataclasses import dataclass

    @dataclass
    class Opts:
        lr: float = 1e-3
        """learning rate"""
        steps: int = 10
        """steps"""

    assert from_dict(Opts, {"lr": 1}).lr == 1.0
    with pytest.raises(ConfigError, match="x.steps"):
        from_dict(Opts, {"steps": "ten"}, prefix="x.")
    with pytest.raises(ConfigError, match=r"unknown option\(s\) \['x.step'\]"):
        from_dict(Opts, {"step": 3}, prefix="x.")
    assert apply_overrides({"a": {"b": 1}}, ["a.b=2e-5", "c=true"]) == {"a": {"b": 2e-5}, "c": True}


def test_embedded_denoise_pool_has_the_stated_corruption(denoise_data_dir):
    card = json.loads((denoise_data_dir / "card.json").read_text())
    assert card["sources"] == {"noise000": 64, "noise025": 64, "noise050": 64, "noise075": 64, "noise100": 64}
    for name, rate in [("noise000", 0.0), ("noise050", 0.5), ("noise100", 1.0)]:
        rows = read_jsonl(denoise_data_dir / "sources" / f"{name}.jsonl")
        assert sum(r["corrupted"] for r in rows) == round(rate * 64)
        assert all((r["response"] == ".") == r["corrupted"] for r in rows)
    val = read_jsonl(denoise_data_dir / "validation.jsonl")
    assert not any(r.get("corrupted", False) for r in val)
