"""Several validation objectives for ScaleBiO's upper level (beyond the paper, whose conclusion names
multi-objective data reweighting as future work).

With validation sets V_1..V_J the upper-level loss of ``scalebio/minimax.py`` becomes

    L1(w) = Σ_j c_j · L1_j(w)          L1_j = pooled response-token loss on V_j (as for one set)

    weighted:    c_j fixed by the config (normalised to sum to 1; equal when not given)
    worst_case:  c = softmax(L1_1(w), .., L1_J(w) / τ), the gradient of the smoothed maximum
                 τ·log Σ_j exp(L1_j/τ), which tends to max_j L1_j as τ → 0

For ``worst_case`` the softmax uses the losses measured at the previous step: each validation micro-batch then
runs its backward as soon as it is computed, exactly as with one set (no graph kept across micro-batches, so
memory does not grow with J); at a fixed point the one-step lag vanishes. Step 0 uses equal c.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from scalebio.common.data import read_jsonl
from scalebio.common.runtime import ConfigError

RULES = ("weighted", "worst_case")


@dataclass
class ObjectivesConfig:
    """How the validation sets combine (``methods.scalebio.objectives``); ignored with a single validation set."""

    rule: str = "weighted"
    """``weighted`` (fixed c_j) or ``worst_case`` (smoothed maximum of the validation losses)."""
    weights: dict[str, float] = field(default_factory=dict)
    """``weighted``: c_j per validation-set name (normalised to sum 1; names left out get 0; empty = equal)."""
    temperature: float = 0.1
    """``worst_case``: τ of the smoothed maximum, in loss units (smaller = closer to the plain maximum)."""

    def validate(self, names: list[str] | None = None) -> None:
        if self.rule not in RULES:
            raise ConfigError(f"methods.scalebio.objectives.rule must be one of {RULES}, got '{self.rule}'")
        if not self.temperature > 0:
            raise ConfigError(f"methods.scalebio.objectives.temperature must be > 0, got {self.temperature}")
        if any(not (v >= 0 and math.isfinite(v)) for v in self.weights.values()):
            raise ConfigError(f"methods.scalebio.objectives.weights must be finite and >= 0, got {self.weights}")
        if self.weights and not sum(self.weights.values()) > 0:
            raise ConfigError("methods.scalebio.objectives.weights sum to 0: give at least one positive weight")
        if names is not None:
            unknown = sorted(set(self.weights) - set(names))
            if unknown:
                raise ConfigError(
                    f"methods.scalebio.objectives.weights names {unknown}, which are not validation sets "
                    f"(the data has {sorted(names)})"
                )


class Objectives:
    """The coefficients c_j of L1 = Σ_j c_j L1_j, updated from each step's measured losses (``observe``)."""

    def __init__(self, cfg: ObjectivesConfig, names: list[str]):
        cfg.validate(names)
        self.cfg, self.names = cfg, list(names)
        self.last: dict[str, float] | None = None

    def coefficients(self) -> dict[str, float]:
        if self.cfg.rule == "weighted" and self.cfg.weights:
            raw = {n: float(self.cfg.weights.get(n, 0.0)) for n in self.names}
        elif self.cfg.rule == "weighted" or self.last is None:  # equal weights; worst_case before any step
            raw = {n: 1.0 for n in self.names}
        else:  # softmax(L1 / τ)
            raw = self._shifted_exp(self.last)
        total = sum(raw.values())
        return {n: v / total for n, v in raw.items()}

    def _shifted_exp(self, losses: dict[str, float]) -> dict[str, float]:
        """exp((L1_j − max L1) / τ): shifted by the maximum so that no term overflows."""
        top = max(losses[n] for n in self.names)
        return {n: math.exp((losses[n] - top) / self.cfg.temperature) for n in self.names}

    def observe(self, losses: dict[str, float]) -> None:
        self.last = dict(losses)

    def combined(self, losses: dict[str, float]) -> float:
        """The upper-level objective itself: Σ c_j L1_j (weighted) or τ·log Σ exp(L1_j/τ) (worst_case)."""
        if self.cfg.rule == "weighted":
            c = self.coefficients()
            return sum(c[n] * losses[n] for n in self.names)
        top = max(losses[n] for n in self.names)
        return top + self.cfg.temperature * math.log(sum(self._shifted_exp(losses).values()))


def group_by_target(val: list[dict], path) -> dict[str, list[dict]]:
    """The validation examples grouped by their row's ``target`` (several objectives), sorted by name."""
    target = {r["id"]: r.get("target") for r in read_jsonl(path)}
    missing = sorted({ex["id"] for ex in val if target.get(ex["id"]) is None})
    if missing:
        raise ConfigError(
            f"options 'objectives' need a 'target' on every validation row, and '{path}' has rows without one "
            f"(e.g. {missing[:3]}): build the data with several targets (multilingual: target: [a, b])"
        )
    sets: dict[str, list[dict]] = {}
    for ex in val:
        sets.setdefault(target[ex["id"]], []).append(ex)
    return dict(sorted(sets.items()))
