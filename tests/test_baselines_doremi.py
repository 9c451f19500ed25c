"""DoReMi against its own definition: the α update, per-domain excess losses, and a pool whose
one domain has clearly the largest excess loss (its weight must rise above uniform)."""

from __future__ import annotations

import json
import random

import pytest
import torch

from baselines import doremi
from scalebio.common.registry import run_method
from scalebio.common.runtime import SuiteError
from scalebio.common.selection import MethodInputs, read_selection


def test_update_weights_follows_the_definition():
    alpha = torch.tensor([0.2, 0.3, 0.5])
    delta = torch.tensor([1.0, 0.0, 0.5])
    eta, c = 0.7, 0.01
    a = alpha * torch.exp(eta * delta)
    expected = (1 - c) * a / a.sum() + c / 3
    torch.testing.assert_close(doremi.update_weights(alpha, delta, eta, c), expected)
    assert doremi.update_weights(alpha, delta, eta, c).sum().item() == pytest.approx(1.0)


def test_domain_losses_follow_the_definition():
    proxy = torch.tensor([[2.0, 1.0, 5.0], [1.0, 3.0, 0.0], [4.0, 4.0, 4.0]], requires_grad=True)
    ref = torch.tensor([[1.0, 2.0, 0.0], [0.5, 1.0, 9.0], [1.0, 1.0, 1.0]])
    mask = torch.tensor([[1, 1, 0], [1, 1, 1], [1, 0, 0]]).bool()
    domain = torch.tensor([0, 1, 0])
    excess, loss = doremi.domain_losses(proxy, ref, mask, domain, k=3)
    # domain 0: examples 0 and 2, tokens (2-1)+, (1-2)+ = 1, 0 and (4-1)+ = 3 over 3 tokens
    torch.testing.assert_close(excess, torch.tensor([4.0 / 3, (0.5 + 2.0 + 0.0) / 3, 0.0]))
    torch.testing.assert_close(loss.detach(), torch.tensor([(2 + 1 + 4) / 3, (1 + 3 + 0) / 3, 0.0]))
    loss.sum().backward()
    assert proxy.grad[0, 2] == 0  # masked tokens get no gradient


def make_pool(root, n=24, seed=0):
    """One learnable domain (a constant reply) and two of random replies (irreducible loss)."""
    rng = random.Random(seed)
    (root / "sources").mkdir(parents=True)
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
    for name in ("easy", "random1", "random2"):
        rows = []
        for i in range(n):
            prompt = f"What is {rng.randint(1, 99)} + {rng.randint(1, 99)}?"
            noise = " ".join("".join(rng.choices(alphabet, k=5)) for _ in range(4))
            rows.append({"id": f"{name}-{i}", "prompt": prompt, "response": "Yes." if name == "easy" else noise})
        (root / "sources" / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root


def test_weight_of_the_largest_excess_loss_domain_rises(tiny_model_dir, tmp_path):
    data = make_pool(tmp_path / "data")
    train = {"max_steps": 30, "global_batch_size": 6, "micro_batch_size": 6, "learning_rate": 2e-3, "max_length": 64}
    opts = {"train": train, "proxy_steps": 10}
    inputs = MethodInputs(str(data), str(tiny_model_dir), str(tmp_path / "run"), budget=12, options=opts)
    sel = read_selection(run_method(inputs, "doremi"))
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert set(metrics["mean_excess_loss"]) == {"easy", "random1", "random2"}
    trace = json.loads((tmp_path / "run" / "trace.json").read_text())
    # The pool is built as intended: at the first step (proxy = the untrained model) the
    # learnable domain has the largest excess loss. The mean over all steps is not a stable
    # check: once α favours "easy" the proxy learns it and its excess falls below the others.
    first = dict(zip(["easy", "random1", "random2"], trace[0]["excess"]))
    assert max(first, key=first.get) == "easy", first
    w = sel["weights"]
    assert w["easy"] > 1 / 3 + 0.1 and max(w, key=w.get) == "easy"
    assert sel["kind"] == "weights" and sel["cost"]["tokens"] > 0
    assert len(trace) == 10 and abs(sum(trace[-1]["alpha"]) - 1) < 1e-6


def test_bad_options_and_budget(tiny_model_dir, denoise_data_dir, tmp_path):
    def run(budget, options):
        return run_method(
            MethodInputs(str(denoise_data_dir), str(tiny_model_dir), str(tmp_path), budget, 0, options), "doremi"
        )

    with pytest.raises(SuiteError, match="larger than the pool"):
        run(100_000, {})
    with pytest.raises(SuiteError, match="methods.doremi.eta"):
        run(8, {"eta": "one"})
    with pytest.raises(SuiteError, match="smoothing"):
        run(8, {"smoothing": 2.0})
    assert not (tmp_path / "selection.json").exists()
