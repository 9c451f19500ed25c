"""No hand-copied result numbers: every result-like number README.md and results/README.md quote must appear in a
committed reference file (``results/reference/**/*.{csv,md,json}``), so a regenerated reference that changes a
number makes this test fail until the prose follows (or the number goes).

**Result-like**, in the prose (fenced code blocks, inline code spans, double-quoted strings and link targets
removed, as they hold commands, paths and examples, not results):

- a signed decimal: ``+0.045``, ``−0.064``, ``-1.00`` (a difference or a correlation);
- an unsigned decimal with at least two digits after the point: ``0.226``, ``5.63``, ``6.740``;
- a decimal percentage: ``54.5 %``, ``2.5 %``.

Not result-like: integers (counts, seeds, step numbers), one-decimal unsigned numbers (``59.8 min`` wall times
are measured run times, checked by nobody here), versions like ``3.11.2`` (a dot after the digits), and the
entries of ``ALLOWED``: hyper-parameters, thresholds and estimates, each with its reason.

**Appears**: some number in a reference file equals the quoted one at the quoted precision (|reference − quoted|
≤ half a unit of the quoted last digit; a percentage may match a fraction × 100). A signed quote must match a
reference number of the same sign; an unsigned one may match either sign (a quoted magnitude).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ["README.md", "results/README.md"]
REFERENCE = ROOT / "results" / "reference"

ALLOWED = [
    (r"Python 3\.11", "a version"),
    (r"≤ [−-]0\.9\b", "the paper's Spearman threshold, a claim's target"),
    (r"SD ≤ 0\.02\b|SD target|≤ 0\.02 per source", "the stability study's target"),
    (r"(instead of|official)\s+0\.01\b|0\.01 \(official\)", "θ's official weight decay, a hyper-parameter"),
    (r"c = 0\.(25|75|5)\b", "a combination weight c of the objectives, a hyper-parameter"),
    (r"0\.25·989e12|×1\.15 / ×0\.95", "assumptions of the GPU-hour estimate (utilisation, model-size factors)"),
    (r"99\.9 % interval", "a confidence level"),
]
"""(regex over the prose, reason): a number inside a match of one of these is not a result."""

SIGNED = r"(?<![\w.])[+\-−]\d+\.\d+(?!\w|\.\d)"
UNSIGNED = r"(?<![\w.+\-−])\d+\.\d{2,}(?![\w]|\.\d)"
PERCENT = r"(?<![\w.+\-−])\d+\.\d+(?= ?\\?%)"
NUMBER = re.compile(r"[+\-−]?\d+(?:\.\d+)?(?:[eE][+\-]?\d+)?")


def prose(text: str) -> str:
    """The text with code, double-quoted examples and link targets blanked out (same length: spans stay put)."""
    blank = lambda m: re.sub(r"[^\n]", " ", m.group(0))  # noqa: E731
    for pattern in (r"```.*?```", r"`[^`\n]*`", r'"[^"\n]*"', r"\]\([^)\n]*\)", r"<!--.*?-->"):
        text = re.sub(pattern, blank, text, flags=re.S)
    return text


def quoted_numbers(text: str) -> list[tuple[str, str, int]]:
    """(number as written, kind, line) of every result-like number outside the ALLOWED contexts."""
    text = prose(text)
    allowed = [m.span() for pattern, _ in ALLOWED for m in re.finditer(pattern, text)]
    out = []
    for kind, pattern in (("signed", SIGNED), ("unsigned", UNSIGNED), ("percent", PERCENT)):
        for m in re.finditer(pattern, text):
            if any(a <= m.start() and m.end() <= b for a, b in allowed):
                continue
            if kind == "unsigned" and re.match(r" ?\\?%", text[m.end() :]):
                continue  # a percentage: checked as one
            out.append((m.group(0), kind, text.count("\n", 0, m.start()) + 1))
    return out


def _value(token: str) -> float:
    return float(token.replace("−", "-"))


def reference_numbers() -> list[float]:
    values = []
    for path in REFERENCE.rglob("*"):
        if path.suffix in (".csv", ".md", ".json") and path.is_file():
            values += [_value(t) for t in NUMBER.findall(path.read_text(errors="replace"))]
    return values


def appears(token: str, kind: str, refs: list[float]) -> bool:
    quoted = _value(token)
    digits = len(token.split(".")[1]) if "." in token else 0
    tol = 0.5 * 10.0**-digits + 1e-12
    if kind == "percent":
        return any(abs(r - quoted) <= tol or abs(100 * r - quoted) <= tol for r in refs)
    if kind == "signed":
        return any(abs(r - quoted) <= tol and (r < 0) == (quoted < 0) for r in refs if r != 0 or quoted == 0)
    return any(abs(abs(r) - quoted) <= tol for r in refs)


def test_the_extractor_finds_results_and_skips_code_versions_and_allowed_contexts():
    text = (
        "Held-out loss 5.63 / 5.64 (10×), −0.064 [−0.089, −0.040]; oracle 54.5 % and +0.045. Python 3.11, numpy "
        '3.11.2, `lr 0.123`, 59.8 min, ρ ≤ −0.9, "0.3333" for 1/3, [link](x/1.234.md), 335 jobs.\n'
        "```\nsnakemake 1.234\n```\n"
    )
    found = {(t, k) for t, k, _ in quoted_numbers(text)}
    assert found == {("5.63", "unsigned"), ("5.64", "unsigned"), ("−0.064", "signed"), ("−0.089", "signed"),
                     ("−0.040", "signed"), ("54.5", "percent"), ("+0.045", "signed")}  # fmt: skip


def test_a_number_appears_only_at_its_own_precision_and_sign():
    refs = [0.46, -0.0641, 5.6246, 0.545]
    assert appears("0.460", "unsigned", refs) and appears("−0.064", "signed", refs)
    assert not appears("+0.064", "signed", refs)  # a sign is part of a difference
    assert appears("5.62", "unsigned", refs) and appears("5.625", "unsigned", refs)  # 5.6246 at 2 and 3 digits
    assert not appears("5.63", "unsigned", refs) and not appears("5.624", "unsigned", refs)
    assert appears("54.5", "percent", refs) and not appears("54.6", "percent", refs)  # 0.545 × 100


@pytest.mark.parametrize("doc", DOCS)
def test_every_result_number_in_the_docs_is_in_the_committed_reference(doc):
    """Fails listing each number (and its line) that no committed reference file holds: regenerate the reference
    and copy the numbers from it, or point at the generated file instead of quoting."""
    refs = reference_numbers()
    missing = [f"line {line}: {token}" for token, kind, line in quoted_numbers((ROOT / doc).read_text())
               if not appears(token, kind, refs)]  # fmt: skip
    assert not missing, f"{doc} quotes {len(missing)} result number(s) found in no results/reference file: " + (
        "; ".join(missing)
    )
