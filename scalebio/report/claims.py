"""The paper's qualitative claim of an experiment, measured on ScaleBiO's learned weights."""

from __future__ import annotations

from scipy.stats import spearmanr


def spearman(x: list[float], y: list[float]) -> float:
    return float(spearmanr(x, y).statistic)


def check_claim(card: dict, comp: dict[str, float], model: str) -> dict:
    """The experiment's expected outcome, measured on ScaleBiO's learned weights."""
    if card.get("noise"):
        names = sorted(card["noise"])
        rho = spearman([card["noise"][n] for n in names], [comp.get(n, 0.0) for n in names])
        return {
            "model": model,
            "claim": card.get("expected"),
            "measure": "Spearman(noise, weight)",
            "value": rho,
            "threshold": "<= -0.9",
            "status": "✓" if rho <= -0.9 + 1e-9 else "✗",  # one swapped pair of 5 is exactly -0.9
        }
    targets = card.get("targets") or []
    share = sum(comp.get(t, 0.0) for t in targets)
    uniform = len(targets) / max(1, len(comp))
    return {
        "model": model,
        "claim": card.get("expected"),
        "measure": f"weight on {targets} (uniform {uniform:.3g})",
        "value": share,
        "threshold": f"> {uniform:.3g}",
        "status": "✓" if share > uniform else "✗",
    }
