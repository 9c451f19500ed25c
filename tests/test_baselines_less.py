"""LESS: batched per-example features vs a direct gradient, denoising selection, bad input.

Modules: `baselines/less.py`, `baselines/_common.py`.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from baselines import less
from scalebio.common.data import collate, load_split
from scalebio.common.modeling import load_tokenizer, per_example_loss
from scalebio.common.registry import run_method
from scalebio.common.runtime import SuiteError
from scalebio.common.selection import MethodInputs, read_selection

TINY_LESS = {
    "warmup_fraction": 0.2,
    "warmup": {"epochs": 2.0, "learning_rate": 1e-2, "global_batch_size": 8, "max_length": 96},
    "lora_r": 4,
    "lora_alpha": 8,
    "lora_dropout": 0.0,
    "projection_dim": 128,
    "grad_batch_size": 16,
}


def corruption(selection: dict, data_dir: Path) -> float:
    flags = {}
    for f in (data_dir / "sources").glob("*.jsonl"):
        for line in f.read_text().splitlines():
            r = json.loads(line)
            flags[(f.stem, r["id"])] = bool(r["corrupted"])
    chosen = selection["examples"]
    return sum(flags[(e["source"], e["id"])] for e in chosen) / len(chosen)


def test_projected_feature_matches_direct_gradient(tiny_model_dir, denoise_data_dir, tmp_path):
    tok = load_tokenizer(tiny_model_dir)
    inputs = MethodInputs(str(denoise_data_dir), str(tiny_model_dir), str(tmp_path), budget=8)
    opts = less.Options(lora_r=4, lora_alpha=8, lora_dropout=0.0, projection_dim=64, projection_block=5000)
    model, names = less.lora_model(inputs, opts, tok)
    torch.manual_seed(1)
    with torch.no_grad():  # LoRA B starts at zero (zero A-gradients); make every block non-trivial
        for n, p in model.named_parameters():
            if n in names:
                p.normal_(0, 0.05)
    examples = load_split(denoise_data_dir / "sources" / "noise050.jsonl", tok, 96, what="source")[:5]
    assert len({len(e["input_ids"]) for e in examples}) > 1, "need different lengths to exercise padding"
    dim = sum(p.numel() for n, p in model.named_parameters() if n in names)
    proj = less.Projector(dim, 64, seed=3, block=5000)  # several blocks
    feats = less.GradientFeatures(model, names, proj, tok.pad_token_id, batch_size=5)
    m = torch.randn(dim) * 1e-3
    v = torch.rand(dim) * 1e-6
    adam = (m, v, 0.9, 0.999, 1e-8)
    batched = feats(examples, adam, desc="test")
    plain = feats(examples, None, desc="test")

    P = proj.matrix()
    assert P.shape == (dim, 64)
    params = [p for n, p in model.named_parameters() if n in names]
    for i in (0, 3):
        one = collate([examples[i]], tok.pad_token_id, pad_to_multiple_of=1)  # unpadded, with a real mask
        loss, _ = per_example_loss(model, one)
        g = torch.cat([x.reshape(-1) for x in torch.autograd.grad(loss[0], params)])
        direct_plain = F.normalize(g @ P, dim=0)
        update = (0.9 * m + 0.1 * g) / ((0.999 * v + 0.001 * g * g).sqrt() + 1e-8)
        direct_adam = F.normalize(update @ P, dim=0)
        torch.testing.assert_close(plain[i], direct_plain, atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(batched[i], direct_adam, atol=1e-4, rtol=1e-4)
    assert not torch.allclose(batched[0], plain[0], atol=1e-2)  # the Adam transform changes the feature
    feats.mode = "loop"
    torch.testing.assert_close(feats(examples, adam, desc="test"), batched, atol=1e-4, rtol=1e-4)


def test_score_is_lr_free_cosine_with_subtask_reduction():
    train = F.normalize(torch.tensor([[1.0, 0.0], [0.0, 1.0]]), dim=1)
    val = F.normalize(torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]]), dim=1)
    tasks = ["a", "a", "b"]
    torch.testing.assert_close(less.score(train, val, tasks, "max"), torch.tensor([1.0, 1.0]))
    torch.testing.assert_close(less.score(train, val, tasks, "mean"), torch.tensor([0.5, 0.5]))
    assert less.subtasks([{"topic": "arithmetic/div"}, {"topic": "algebra/x"}, {}]) == ["arithmetic", "algebra", "all"]


def test_less_selects_clean_examples(tiny_model_dir, denoise_data_dir, tmp_path):
    inputs = MethodInputs(str(denoise_data_dir), str(tiny_model_dir), str(tmp_path), budget=64, options=TINY_LESS)
    sel = read_selection(run_method(inputs, "less"))
    assert sel["kind"] == "examples" and len(sel["examples"]) == 64
    assert len({(e["source"], e["id"]) for e in sel["examples"]}) == 64
    assert corruption(sel, denoise_data_dir) <= 0.3  # pool mean is 0.5
    assert sel["cost"]["tokens"] > 0 and json.loads((tmp_path / "run.json").read_text())["wall_time_s"] > 0
    for name in ("config.json", "log.txt", "metrics.json", "checkpoints/epoch-1.pt", "checkpoints/epoch-2.pt"):
        assert (tmp_path / name).exists(), name
    ckpt = torch.load(tmp_path / "checkpoints/epoch-2.pt")
    assert ckpt["mean_lr"] > 0 and all(v.abs().sum() > 0 for v in ckpt["exp_avg_sq"].values())


@pytest.mark.parametrize(
    ("budget", "options", "message"),
    [
        (10_000, {}, "larger than the pool"),
        (8, {"projection_dim": "big"}, "methods.less.projection_dim"),
        (8, {"warmup_fraction": 0.0}, "warmup_fraction"),
        (8, {"lora_rank": 4}, "unknown option"),
    ],
)
def test_bad_input_fails_before_training(tiny_model_dir, denoise_data_dir, tmp_path, budget, options, message):
    inputs = MethodInputs(str(denoise_data_dir), str(tiny_model_dir), str(tmp_path), budget=budget, options=options)
    with pytest.raises(SuiteError, match=message):
        run_method(inputs, "less")
    assert not (tmp_path / "selection.json").exists()
    assert not (tmp_path / "checkpoints").exists()


def test_example_ranking_survives_float_noise_between_machines():
    """Scores perturbed by 1e-6 relative (more than float reductions differ between CPUs) pick the same examples;
    without the rounding grid, near-equal scores at the cut would swap (the check can fail)."""
    from baselines._common import top_n

    gen = torch.Generator().manual_seed(0)
    scores = torch.rand(320, generator=gen, dtype=torch.float64) - 0.5
    scores[100:110] = scores[100] * (1 + torch.arange(10, dtype=torch.float64) * 1e-8)  # near-ties
    n = int((scores > scores[100]).sum()) + 5  # the cut falls inside the near-tied group
    ties = [("src", f"id-{i:03d}") for i in range(len(scores))]
    reference = sorted(top_n(scores, n, ties))
    swapped = 0
    for seed in range(20):
        noise = 1 + 1e-6 * (2 * torch.rand(len(scores), generator=torch.Generator().manual_seed(seed + 1)) - 1)
        assert sorted(top_n(scores * noise, n, ties)) == reference, seed
        raw = sorted(range(len(scores)), key=lambda i: -float(scores[i] * noise[i]))[:n]
        swapped += sorted(raw) != reference
    assert swapped > 0  # unrounded ranking does change under this noise


def test_countsketch_is_a_seeded_sparse_projection_without_a_matrix():
    """CountSketch(g) = g @ S for the sparse S (one ±1 per row) its seeded blocks describe; inner products are kept
    in expectation (a JL sketch), so cosine scores survive it at k = 2,048."""
    from scalebio.common.streams import seeded_generator

    dim, k = 10_000, 2048
    sketch = less.CountSketch(dim, k, seed=3, block=3000)  # several blocks, the last one short
    g = torch.randn(4, dim)
    S = torch.zeros(dim, k)
    for b, start in enumerate(range(0, dim, 3000)):
        rows = min(3000, dim - start)
        gen = seeded_generator(3, b)
        bucket = torch.randint(0, k, (rows,), generator=gen)
        sign = torch.randint(0, 2, (rows,), generator=gen).float() * 2 - 1
        S[torch.arange(start, start + rows), bucket] = sign
    assert torch.allclose(sketch(g), g @ S, atol=1e-4)
    a, b = torch.randn(dim), torch.randn(dim)
    b = 0.6 * a + 0.8 * b  # cosine ≈ 0.6
    cos = torch.nn.functional.cosine_similarity(sketch(torch.stack([a]))[0], sketch(torch.stack([b]))[0], dim=0)
    assert abs(float(cos) - float(torch.nn.functional.cosine_similarity(a, b, dim=0))) < 0.05
    assert torch.equal(sketch(g), less.CountSketch(dim, k, seed=3, block=3000)(g))  # same seed, same sketch
