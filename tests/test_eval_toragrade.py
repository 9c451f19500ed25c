"""The ToRA-style grader (eval/toragrade.py) on a table of GSM8K/MATH-style answer pairs, next to math-verify.

Each row: (gold, prediction, ToRA-style verdict). The verdicts are known answers: mathematical equality,
plus ToRA's documented leniencies (relative tolerance 1e-4, a percentage matches its fraction, trailing
units dropped, interval brackets ignored). The pairs where math-verify decides otherwise are listed in
``DISAGREEMENTS``: each is one of those leniencies, and a change in either grader shows up here.
"""

from __future__ import annotations

import pytest

from eval.math import grade
from eval.toragrade import math_equal, normalize

PAIRS = [
    # integers, negatives, thousands separators (GSM8K)
    ("72", "72", True),
    ("72", "73", False),
    ("-5", "-5", True),
    ("-5", "5", False),
    ("1000", "1,000", True),
    ("1234567", "1,234,567", True),
    ("18", "18.00", True),
    ("18", "\\$18", True),
    ("18", "18 dollars", True),
    ("5", "x = 5", True),
    ("5", "5 cm", True),
    ("90", "90^\\circ", True),
    ("3.5", "3.50", True),
    ("0.25", ".25", True),
    ("1/3", "0.3333", True),
    ("1/3", "0.33", False),
    # fractions
    ("\\frac{1}{2}", "0.5", True),
    ("\\frac{1}{2}", "\\dfrac{1}{2}", True),
    ("\\frac{1}{2}", "\\frac12", True),
    ("\\frac{1}{2}", "1/2", True),
    ("\\frac{3}{4}", "\\tfrac34", True),
    ("-\\frac{2}{3}", "-\\frac{2}{3}", True),
    ("-\\frac{2}{3}", "\\frac{-2}{3}", True),
    ("\\frac{2}{3}", "\\frac{3}{2}", False),
    ("\\frac{7}{2}", "3\\frac{1}{2}", True),
    # percentages
    ("50", "50\\%", True),
    ("50", "0.5", True),
    ("0.5", "50\\%", True),
    ("25\\%", "25", True),
    ("12.5", "12.5\\%", True),
    # radicals, pi, symbolic
    ("\\sqrt{2}", "\\sqrt2", True),
    ("2\\sqrt{3}", "\\sqrt{12}", True),
    ("\\sqrt{2}", "1.41421", True),
    ("\\frac{\\sqrt{3}}{2}", "\\frac{1}{2}\\sqrt{3}", True),
    ("3\\pi", "3 \\pi", True),
    ("\\pi", "3.14", False),
    ("x^2+2x+1", "(x+1)^2", True),
    ("2x+3", "3+2x", True),
    ("2x+3", "2x-3", False),
    ("\\infty", "\\infty", True),
    # intervals, tuples, sets
    ("(1,2)", "(1, 2)", True),
    ("[1,2]", "[1, 2]", True),
    ("(-\\infty, 3)", "(-\\infty,3)", True),
    ("[1,2)", "[1,2]", True),
    ("(2,3)", "(3,2)", False),
    ("(1,2,3)", "(1,2)", False),
    ("\\{1,2\\}", "\\{2,1\\}", True),
    # matrices / vectors
    ("\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}", "\\begin{pmatrix}1\\\\2\\end{pmatrix}", True),
    ("\\begin{pmatrix} 1 & 2 \\\\ 3 & 4 \\end{pmatrix}", "\\begin{pmatrix} 1 & 2 \\\\ 3 & 5 \\end{pmatrix}", False),
    ("\\begin{pmatrix} 1/2 \\\\ 0 \\end{pmatrix}", "\\begin{pmatrix} 0.5 \\\\ 0 \\end{pmatrix}", True),
    # multiple choice, text
    ("B", "(B)", True),
    ("B", "C", False),
    ("\\text{Yes}", "yes", True),
    ("\\text{(C)}", "C", True),
    # equations
    ("y = 2x + 1", "y=1+2x", True),
    ("x + y = 3", "3 - y = x", True),
    # degrees / units in text
    ("30", "30^{\\circ}", True),
    ("10", "10\\text{ cm}", True),
    ("10", "10\\text{ cm}^2", True),
    ("5", "5\\mbox{ inches}", True),
    # scientific, decimals
    ("0.0001", "1e-4", True),
    ("1.5", "1.500001", True),
    ("100", "100.5", False),
    # more forms seen in model outputs
    ("1000", "1{,}000", True),
    ("18", "18 \\text{ dollars}", True),
    ("-0.0003", "-3 \\times 10^{-4}", True),
    ("49859/100", "498.59", True),
    ("\\sqrt{2}", "2^{1/2}", True),
    ("\\frac{3}{4}", "3/4", True),
    ("72", None, False),
    ("72", "", False),
]


# (gold, prediction) where math-verify 0.9.0 says "not equal" and the ToRA-style rules say "equal".
DISAGREEMENTS = {
    ("18", "18 dollars"): "trailing unit word dropped (math-verify keeps the word)",
    ("1/3", "0.3333"): "relative tolerance 1e-4",
    ("50", "0.5"): "a percentage matches its fraction",
    ("12.5", "12.5\\%"): "percent sign dropped",
    ("\\sqrt{2}", "1.41421"): "numeric value within 1e-4",
    ("[1,2)", "[1,2]"): "interval brackets ignored (ToRA's leniency)",
    ("0.0001", "1e-4"): "scientific notation read as a number",
    ("1.5", "1.500001"): "relative tolerance 1e-4",
}


def test_table_has_at_least_50_pairs_of_every_kind():
    assert len(PAIRS) >= 50
    assert sum(not ok for _, _, ok in PAIRS) >= 10  # enough negatives that a grader saying "yes" fails


@pytest.mark.parametrize(("gold", "pred", "equal"), PAIRS)
def test_tora_style_verdict(gold, pred, equal):
    assert math_equal(pred, gold) is equal, (gold, pred, normalize(pred or ""), normalize(gold))


def test_disagreements_with_math_verify_are_exactly_the_listed_ones():
    found = {(g, p) for g, p, _ in PAIRS if math_equal(p, g) != grade(g, p)}
    assert found == set(DISAGREEMENTS), sorted(found ^ set(DISAGREEMENTS))


def test_normalisation_examples():
    assert normalize("\\boxed{\\dfrac12}") == "\\frac{1}{2}"
    assert normalize("x = 5") == "5"
    assert normalize("90^\\circ") == "90"
    assert normalize("(B)") == "B"
