"""The minimax step against oracles: the closed-form θ-gradient (METHOD.md §5) and a convex bilevel
problem whose optimal weights are computed independently with scipy."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

from scalebio.common.data import collate, load_sources
from scalebio.common.modeling import load_model, load_tokenizer, per_example_loss
from scalebio.minimax import (
    DivergenceError,
    Minimax,
    cosine_with_warmup,
    global_source_counts,
    set_learning_rates,
)
from scalebio.trainer import ScaleBiOConfig
from scalebio.weights import SourceWeights


def _tiny_batches(tiny_model_dir, denoise_data_dir, picks):
    """Micro-batches of real examples; ``picks`` = [[(source, index), ...], ...]."""
    tok = load_tokenizer(tiny_model_dir)
    srcs = load_sources(denoise_data_dir, tok, max_length=64)
    return [collate([dict(srcs[s].examples[i], source=s) for s, i in mb], tok.pad_token_id) for mb in picks], len(srcs)


def test_theta_gradient_equals_closed_form(tiny_model_dir, denoise_data_dir):
    torch.manual_seed(0)
    # Sources 2 and 4 are absent from the batch: they still get a gradient through the softmax.
    picks = [[(0, 0), (1, 3), (0, 5)], [(3, 1), (1, 7), (3, 2)]]
    train, K = _tiny_batches(tiny_model_dir, denoise_data_dir, picks)
    val, _ = _tiny_batches(tiny_model_dir, denoise_data_dir, [[(0, 10), (0, 11)]])
    u = load_model(tiny_model_dir, "float32", "cpu")
    w = load_model(tiny_model_dir, "float32", "cpu")
    with torch.no_grad():  # make w differ from u, so the excess losses e_k are not all zero
        for p in w.parameters():
            p.add_(0.02 * torch.randn_like(p))
    weights = SourceWeights([f"s{k}" for k in range(K)])
    with torch.no_grad():
        weights.theta.copy_(torch.randn(K))
    alpha = 7.0
    opts = ScaleBiOConfig(lr_u=1e-3, lr_w=1e-3, lr_theta=1e-2).build_optimizers(u, w, weights)
    mm = Minimax(u, w, weights, *opts, alpha=alpha, max_grad_norm=1.0)
    u0, w0 = copy.deepcopy(u), copy.deepcopy(w)

    counts = global_source_counts(train, K, mm.dist)
    mm.update_u(train, counts)
    mm.update_w(train, val, counts)
    grad = mm.theta_grad().detach().double()

    # Oracle: e_k = ℓ̄_k(w) − ℓ̄_k(u) with the PRE-update copies; ∂𝓛/∂θ_j = α p_j (1[j∈S] e_j − Σ_{k∈S} p_k e_k).
    with torch.no_grad():
        src = torch.cat([b["source"] for b in train])
        lw = torch.cat([per_example_loss(w0, b)[0] for b in train]).double()
        lu = torch.cat([per_example_loss(u0, b)[0] for b in train]).double()
        p = torch.softmax(weights.theta.detach().double(), 0)
        present = torch.zeros(K, dtype=torch.bool)
        e = torch.zeros(K, dtype=torch.float64)
        for k in range(K):
            sel = src == k
            if sel.any():
                present[k] = True
                e[k] = lw[sel].mean() - lu[sel].mean()
        expected = alpha * p * (present.double() * e - (p * e)[present].sum())
    assert e[present].abs().min() > 1e-4  # the check is not vacuous
    assert grad[~present].abs().min() > 0  # absent sources move too
    # Float precision: the model losses are fp32 (ℓ ≈ 8, ulp ≈ 1e-6) and their summation order depends on the thread
    # count, so each e_k carries ~1e-6 absolute error; α·p·1e-6 bounds the gradient's (≈1e-2) error by ~1e-5.
    torch.testing.assert_close(grad, expected, rtol=1e-4, atol=2e-5)


def test_nan_loss_stops_before_any_update(tiny_model_dir, denoise_data_dir):
    train, K = _tiny_batches(tiny_model_dir, denoise_data_dir, [[(0, 0), (1, 1)]])
    u = load_model(tiny_model_dir, "float32", "cpu")
    w = load_model(tiny_model_dir, "float32", "cpu")
    with torch.no_grad():
        u.get_input_embeddings().weight.fill_(float("nan"))
    weights = SourceWeights([f"s{k}" for k in range(K)])
    mm = Minimax(
        u, w, weights, *ScaleBiOConfig(lr_u=1e-3, lr_w=1e-3, lr_theta=1e-2).build_optimizers(u, w, weights), alpha=1.0
    )
    with pytest.raises(DivergenceError, match="L2\\(u\\) is nan"):
        mm.step(train, train)
    assert torch.equal(weights.theta.detach(), torch.zeros(K))


# ---- a convex bilevel problem with a known answer ----------------------------------------------------
def _linear_loss(model, batch):
    """ℓ_i = ½ (x_i·w − y_i)², the least-squares analogue of the per-example LM loss."""
    r = model(batch["x"]).squeeze(-1) - batch["y"]
    return 0.5 * r**2, torch.ones_like(r)


def _linear_pooled(model, batch):
    ell, n = _linear_loss(model, batch)
    return ell.sum(), n.sum()


def _make_problem(seed=0, K=3, d=4, n=60, n_val=80):
    rng = np.random.default_rng(seed)
    w_true = rng.normal(size=(K, d))
    xs, ys = [], []
    for k in range(K):
        x = rng.normal(size=(n, d)) * (1 + 0.5 * k)  # sources differ in scale, so p* is not just the mix
        xs.append(x)
        ys.append(x @ w_true[k] + 0.1 * rng.normal(size=n))
    xv = rng.normal(size=(n_val, d))
    yv = xv @ (0.5 * w_true[0] + 0.3 * w_true[1] + 0.2 * w_true[2]) + 0.1 * rng.normal(size=n_val)
    return xs, ys, xv, yv


def _exact_optimal_weights(xs, ys, xv, yv):
    """argmin_p L1(w*(p)), w*(p) = argmin_w Σ_k p_k mean_i ½(x·w − y)², by scipy on θ (p = softmax θ)."""
    return _exact_multi_optimum(xs, ys, xv, {"v": yv}, lambda L: L["v"])


def test_known_answer_convex_bilevel():
    """ScaleBiO's own step (same Minimax class, AdamW, cosine schedule) on linear models reaches the
    scipy optimum of the exact hyper-objective within 0.01 per weight (observed: 0.0014; α = 100,
    penalty bias O(1/α))."""
    torch.manual_seed(0)
    xs, ys, xv, yv = _make_problem()
    p_star = _exact_optimal_weights(xs, ys, xv, yv)
    assert p_star.min() > 0.05  # an interior optimum, reachable by a softmax

    p, _ = _run_linear(xs, ys, xv, yv)
    assert np.abs(p - p_star).max() < 0.01, (p, p_star)


@pytest.mark.parametrize("max_grad_norm, clipped", [(None, False), (1e3, False), (1e-3, True)])
def test_gradient_norms_and_clipping_are_reported(max_grad_norm, clipped):
    """grad_norm_u / grad_norm_w are the norms before clipping (here computed by hand: ∇ of α·½Σ c_i r_i² is
    α Σ c_i r_i x_i), and clipped_u / clipped_w say whether the norm exceeded α·max_grad_norm."""
    torch.manual_seed(0)
    xs, ys, xv, yv = _make_problem(n=5, n_val=4)  # 3 sources of 5 examples
    x, y = torch.tensor(np.concatenate(xs), dtype=torch.float32), torch.tensor(np.concatenate(ys), dtype=torch.float32)
    train = [{"x": x, "y": y, "source": torch.arange(3).repeat_interleave(5)}]
    val = [{"x": torch.tensor(xv, dtype=torch.float32), "y": torch.tensor(yv, dtype=torch.float32)}]
    u, w = nn.Linear(x.shape[1], 1, bias=False), nn.Linear(x.shape[1], 1, bias=False)
    weights = SourceWeights(["a", "b", "c"])
    alpha, coef = 10.0, (1 / 3) / 5  # p_k = 1/3, c_k = 5
    g_u = alpha * coef * ((u(x).squeeze(-1) - y) @ x).detach()
    g_w = alpha * coef * ((w(x).squeeze(-1) - y) @ x).detach()
    g_w += ((w(val[0]["x"]).squeeze(-1) - val[0]["y"]) @ val[0]["x"]).detach() / len(yv)
    opts = ScaleBiOConfig(lr_u=1e-3, lr_w=1e-3, lr_theta=1e-2).build_optimizers(u, w, weights)
    mm = Minimax(u, w, weights, *opts, alpha=alpha, max_grad_norm=max_grad_norm, per_example=_linear_loss,
                 pooled=_linear_pooled, val_count=lambda b: len(b["y"]))  # fmt: skip
    stats = mm.step(train, val)
    assert stats["grad_norm_u"] == pytest.approx(float(g_u.norm()), rel=1e-5)
    assert stats["grad_norm_w"] == pytest.approx(float(g_w.norm()), rel=1e-5)
    assert stats["clipped_u"] is clipped and stats["clipped_w"] is clipped


# ---- several validation objectives (scalebio/objectives.py) ------------------------------------------------


def _two_target_problem(seed=1):
    """Three sources, two validation targets that want different mixtures (a and b)."""
    xs, ys, xv, _ = _make_problem(seed)
    rng = np.random.default_rng(seed + 100)
    w_true = [np.linalg.lstsq(x, y, rcond=None)[0] for x, y in zip(xs, ys)]
    targets = {}
    for name, mix in (("a", (0.7, 0.2, 0.1)), ("b", (0.1, 0.3, 0.6))):
        targets[name] = xv @ sum(m * wk for m, wk in zip(mix, w_true)) + 0.1 * rng.normal(size=len(xv))
    return xs, ys, xv, targets


def _exact_multi_optimum(xs, ys, xv, targets, combine):
    """argmin_p combine({j: L1_j(w*(p))}), w*(p) = argmin_w Σ_k p_k mean_i ½(x·w − y)², by scipy on θ (p = softmax θ)."""
    from scipy.optimize import minimize

    A = [x.T @ x / len(x) for x in xs]
    b = [x.T @ y / len(x) for x, y in zip(xs, ys)]

    def hyper(theta):
        p = np.exp(theta - theta.max())
        p /= p.sum()
        w = np.linalg.solve(sum(pk * Ak for pk, Ak in zip(p, A)), sum(pk * bk for pk, bk in zip(p, b)))
        return combine({j: 0.5 * np.mean((xv @ w - yv) ** 2) for j, yv in targets.items()})

    best = min((minimize(hyper, x0, method="Nelder-Mead", options={"xatol": 1e-10, "fatol": 1e-14, "maxiter": 20000})
                for x0 in (np.zeros(3), np.array([1.0, 0, -1]), np.array([-1.0, 1, 0]))), key=lambda r: r.fun)  # fmt: skip
    p = np.exp(best.x - best.x.max())
    return p / p.sum()


def _run_linear(xs, ys, xv, targets, objectives_cfg=None, total=2500, alpha=100.0):
    """ScaleBiO's own step (Minimax, AdamW, cosine schedule) on linear models; ``targets`` = one validation y, or
    {name: y} combined by ``objectives_cfg``. Returns the final p and the last step's stats."""
    from scalebio.objectives import Objectives

    torch.manual_seed(0)
    K, d = len(xs), xs[0].shape[1]
    train = [{
        "x": torch.tensor(np.concatenate(xs), dtype=torch.float32),
        "y": torch.tensor(np.concatenate(ys), dtype=torch.float32),
        "source": torch.tensor(np.repeat(np.arange(K), [len(x) for x in xs])),
    }]  # fmt: skip

    def val_set(y):
        return [{"x": torch.tensor(xv, dtype=torch.float32), "y": torch.tensor(y, dtype=torch.float32)}]

    multi = isinstance(targets, dict)
    val = {j: val_set(y) for j, y in targets.items()} if multi else val_set(targets)
    u, w = nn.Linear(d, 1, bias=False), nn.Linear(d, 1, bias=False)
    w.load_state_dict(u.state_dict())
    weights = SourceWeights([f"s{k}" for k in range(K)])
    # Weight decay 0 here: decay on θ would pull p toward uniform and bias the comparison.
    cfg = ScaleBiOConfig(lr_u=3e-2, lr_w=3e-2, lr_theta=3e-2, weight_decay=0.0, theta_weight_decay=0.0)
    opts = cfg.build_optimizers(u, w, weights)
    mm = Minimax(u, w, weights, *opts, alpha=alpha, max_grad_norm=None, per_example=_linear_loss,
                 pooled=_linear_pooled, val_count=lambda b: len(b["y"]),
                 objectives=Objectives(objectives_cfg, list(targets)) if multi else None)  # fmt: skip
    for step in range(total):
        set_learning_rates(opts, cosine_with_warmup(step, total, warmup=int(0.03 * total)))
        stats = mm.step(train, val, step)
    return torch.softmax(weights.theta.detach().double(), 0).numpy(), stats


# Not reached yet (measured): at c_a = 0.75 the run ends 0.124 from the scipy point (0.089 after 8,000 steps, from
# the other side; 0.143 at α = 1000), i.e. θ still swings around an optimum near the simplex's edge (p_3 = 0.04).
# strict: the day it passes, the xfail must go.
_NOT_REACHED = pytest.mark.xfail(strict=True, reason="θ oscillates around an edge optimum; see the comment above")


@pytest.mark.parametrize("c_a", [0.25, pytest.param(0.75, marks=_NOT_REACHED)])
def test_weighted_objectives_reach_the_computed_pareto_point(c_a):
    """On a convex two-target problem, `weighted` with c = (c_a, 1 − c_a) finds the scipy optimum of
    c_a·L1_a + (1 − c_a)·L1_b within 0.02 per weight (observed at c_a = 0.25: 0.013; the single-objective test's
    penalty bias is 0.0014), and the two c give different points (a trade-off)."""
    from scalebio.objectives import ObjectivesConfig

    xs, ys, xv, targets = _two_target_problem()
    p_star = _exact_multi_optimum(xs, ys, xv, targets, lambda L: c_a * L["a"] + (1 - c_a) * L["b"])
    p, stats = _run_linear(xs, ys, xv, targets, ObjectivesConfig("weighted", {"a": c_a, "b": 1 - c_a}))
    assert np.abs(p - p_star).max() < 0.02, (p, p_star)
    assert stats["c[a]"] == pytest.approx(c_a) and set(stats) >= {"L1(w)[a]", "L1(w)[b]"}
    other = _exact_multi_optimum(xs, ys, xv, targets, lambda L: (1 - c_a) * L["a"] + c_a * L["b"])
    assert np.abs(p_star - other).max() > 0.05  # the targets disagree: the weight moves the optimum


@pytest.mark.xfail(strict=True, reason="not reached yet: 0.209 from the scipy point (measured)")
def test_worst_case_objective_reaches_the_smoothed_minimax_point():
    """Not reached yet (measured): the run ends 0.209 from the scipy point with validation losses 0.13 / 0.29,
    where the optimum equalises them (0.17 / 0.17).

    `worst_case` (τ·logsumexp of the validation losses, lagged softmax coefficients) reaches the scipy optimum
    of the smoothed maximum within 0.02 per weight, and its worse target is no worse than at either target's own
    optimum (c = 1 on a, c = 1 on b)."""
    from scalebio.objectives import Objectives, ObjectivesConfig

    xs, ys, xv, targets = _two_target_problem()
    cfg = ObjectivesConfig("worst_case", temperature=0.05)
    smooth = Objectives(cfg, ["a", "b"]).combined
    p_star = _exact_multi_optimum(xs, ys, xv, targets, smooth)
    p, stats = _run_linear(xs, ys, xv, targets, cfg)
    assert np.abs(p - p_star).max() < 0.02, (p, p_star)
    worst = max(stats["L1(w)[a]"], stats["L1(w)[b]"])
    for only in ("a", "b"):
        _, s_only = _run_linear(xs, ys, xv, targets, ObjectivesConfig("weighted", {only: 1.0}), total=800)
        assert worst <= max(s_only["L1(w)[a]"], s_only["L1(w)[b]"]) + 1e-3


def test_objective_coefficients_and_config_errors():
    from scalebio.common.runtime import ConfigError
    from scalebio.objectives import Objectives, ObjectivesConfig

    assert Objectives(ObjectivesConfig(weights={"a": 3, "b": 1}), ["a", "b"]).coefficients() == {"a": 0.75, "b": 0.25}
    assert Objectives(ObjectivesConfig(), ["a", "b"]).coefficients() == {"a": 0.5, "b": 0.5}
    wc = Objectives(ObjectivesConfig("worst_case", temperature=0.1), ["a", "b"])
    assert wc.coefficients() == {"a": 0.5, "b": 0.5}  # step 0: nothing measured yet
    wc.observe({"a": 1.0, "b": 1.1})
    c = wc.coefficients()
    assert c["b"] == pytest.approx(1 / (1 + np.exp(-1.0))) and c["a"] + c["b"] == pytest.approx(1.0)
    assert wc.combined({"a": 1.0, "b": 3.0}) == pytest.approx(3.0, abs=1e-6)  # ≈ max when the gap ≫ τ
    with pytest.raises(ConfigError, match="objectives.rule"):
        ObjectivesConfig("pareto").validate()
    with pytest.raises(ConfigError, match=r"names \['c'\]"):
        Objectives(ObjectivesConfig(weights={"c": 1.0}), ["a", "b"])
