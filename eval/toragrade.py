"""ToRA-style answer equivalence: the kind of check behind the paper's math numbers (METHOD.md §12).

The official evaluation (research4pan/scalebio ``math/eval_math``, adapted from the ToRA harness) grades an
extracted answer with ToRA's ``math_equal``. This module implements the same rules for this suite (it is
not ToRA's code), so a number graded here can be put next to the paper's:

1. both answers are normalised as strings (``normalize``: ``\\dfrac`` -> ``\\frac``, ``\\frac12`` ->
   ``\\frac{1}{2}``, units, degrees, dollar and percent signs, ``\\left``/``\\right``, ``x = 5`` -> ``5``,
   spaces) and compared case-insensitively;
2. if both are numbers: equal within a relative tolerance of 1e-4, and a percentage matches its fraction
   (the gold g matches g/100 and 100·g, as in ToRA); two numbers that differ are never rescued later;
3. tuples, intervals and lists element by element, with ToRA's leniency about the bracket kind
   ("(1, 2]" matches "[1, 2]"; math-verify does not: such pairs show up as disagreements);
4. matrices element by element; equations ``a = b`` as ``a - b`` up to sign;
5. symbolic equivalence with sympy (``latex2sympy2_extended`` parses LaTeX): the difference simplifies to
   0, or both evaluate to numbers within the tolerance.

Written by hand because the ToRA grader is not a maintained library; math-verify (the library grader) is
computed next to it for every question and disagreements are flagged in the per-question records.
Like math-verify, the symbolic step uses ``signal`` for its time limit in the main thread.
"""

from __future__ import annotations

import contextlib
import math
import re
import signal
import threading

GRADER = "ToRA-style math_equal (eval/toragrade.py: string, numeric rel 1e-4 with percentages, tuple, matrix, sympy)"
REL_TOL = 1e-4
SYMBOLIC_TIMEOUT_S = 5.0
MAX_SYMBOLIC_CHARS = 400
"""Longer answers are compared as strings and numbers only (sympy on long garbage can take minutes)."""

_UNIT_WORDS = (
    "dollars?|cents?|units?|square|sq|cubic|cm|centimeters?|mm|millimeters?|m|meters?|km|kilometers?|in|inch(?:es)?|"
    "feet|foot|ft|yards?|miles?|mph|hours?|hrs?|minutes?|mins?|seconds?|secs?|days?|weeks?|months?|years?|"
    "degrees?|grams?|g|kg|kilograms?|pounds?|lbs?|ounces?|oz|liters?|litres?|ml|gallons?|people|students?|apples?|"
    "points?|ways?|times|percent"
)
_NUMBER_THEN_UNITS = re.compile(rf"^(-?[\d.,/]+)\s*(?:(?:{_UNIT_WORDS})\b\s*(?:\^?\{{?\d\}}?)?\s*)+$", re.IGNORECASE)
_NUMBER = re.compile(r"^[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)?(?:\.\d+)?(?:[eE][-+]?\d+)?$")


# ---------------------------------------------------------------- normalisation


def _strip_wrapper(s: str, command: str) -> str:
    r"""``\command{X}`` -> ``X`` (nested braces kept), for every occurrence."""
    out, i = [], 0
    pattern = "\\" + command + "{"
    while True:
        j = s.find(pattern, i)
        if j < 0:
            return "".join(out) + s[i:]
        k, depth = j + len(pattern), 1
        while k < len(s) and depth:
            depth += {"{": 1, "}": -1}.get(s[k], 0)
            k += 1
        out.append(s[i:j] + s[j + len(pattern) : k - 1])
        i = k


def _fix_fracs(s: str) -> str:
    r"""``\frac12`` -> ``\frac{1}{2}``, ``\frac1{2}`` -> ``\frac{1}{2}``, ``\sqrt2`` -> ``\sqrt{2}``."""
    s = re.sub(r"\\sqrt(\w)", r"\\sqrt{\1}", s)
    s = re.sub(r"\\frac(\d)(\d)", r"\\frac{\1}{\2}", s)
    s = re.sub(r"\\frac(\d)\{", r"\\frac{\1}{", s)
    return re.sub(r"\\frac\{([^{}]*)\}(\d)", r"\\frac{\1}{\2}", s)


def normalize(answer: str) -> str:
    """The answer as a canonical string (the first step of the comparison; see the module docstring)."""
    s = str(answer).strip().replace("\n", "")
    s = _strip_wrapper(s, "boxed")
    s = re.sub(r"\\(?:!|,|;|:|quad|qquad)|~", "", s)
    for token in ("\\left", "\\right", "\\displaystyle"):
        s = s.replace(token, "")
    s = s.replace("dfrac", "frac").replace("tfrac", "frac").replace("\\le", "\\le")
    s = re.sub(r"\^\s*\{?\\circ\}?|°", "", s)
    s = s.replace("\\$", "").replace("$", "").replace("\\%", "%")
    s = s.replace("%", "")
    # Units written in \text{...} or \mbox{...} after the value are dropped; other \text{...} is unwrapped.
    s = re.sub(r"(?<=[\d}])\s*\\(?:text|mbox|mathrm)\{\s*[A-Za-z .]*\}(?:\^\{?\d\}?)?$", "", s)
    for command in ("text", "mbox", "mathrm", "textbf"):
        s = _strip_wrapper(s, command)
    s = s.strip().rstrip(".").strip()
    m = _NUMBER_THEN_UNITS.match(s)
    if m:
        s = m.group(1)
    # "x = 5", "k=3": the value (ToRA keeps the right-hand side when the left one is a short name).
    parts = s.split("=")
    if len(parts) == 2 and len(parts[0].strip()) <= 2:
        s = parts[1]
    s = _fix_fracs(s.replace(" ", ""))
    if re.fullmatch(r"-?\d+/\d+", s):  # a/b -> \frac{a}{b}
        num, den = s.split("/")
        s = f"\\frac{{{num}}}{{{den}}}"
    s = re.sub(r"(?<![\d])\.(\d)", r"0.\1", s)  # ".5" -> "0.5"
    if re.fullmatch(r"\(?[A-Ea-e]\)?", s):  # multiple choice "(B)" -> "B"
        s = s.strip("()").upper()
    return s


# ---------------------------------------------------------------- numbers


def to_number(s: str) -> float | None:
    """A normalised answer as a float (thousands separators allowed; ``\\frac{a}{b}`` with numbers), else None."""
    s = s.strip()
    if _NUMBER.match(s) and any(c.isdigit() for c in s):
        return float(s.replace(",", ""))
    m = re.fullmatch(r"(-?)\\frac\{(-?[\d.]+)\}\{(-?[\d.]+)\}", s)
    if m and float(m.group(3)) != 0:
        value = float(m.group(2)) / float(m.group(3))
        return -value if m.group(1) else value
    return None


def numbers_equal(pred: float, gold: float, include_percentage: bool = True) -> bool:
    candidates = [gold / 100, gold, gold * 100] if include_percentage else [gold]
    return any(math.isclose(pred, c, rel_tol=REL_TOL, abs_tol=1e-12) for c in candidates)


# ---------------------------------------------------------------- structures


def _split_top_level(s: str, sep: str = ",") -> list[str]:
    """Split on ``sep`` outside braces/brackets/parentheses."""
    parts, depth, cur = [], 0, []
    for ch in s:
        if ch in "{[(":
            depth += 1
        elif ch in "}])":
            depth -= 1
        if ch == sep and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    return parts


def _bracketed(s: str) -> bool:
    return len(s) >= 2 and s[0] in "([" and s[-1] in ")]"


def _matrix_rows(s: str) -> list[list[str]] | None:
    m = re.fullmatch(r"\\begin\{[pbv]?matrix\}(.*)\\end\{[pbv]?matrix\}", s)
    if not m:
        return None
    return [row.split("&") for row in m.group(1).split("\\\\") if row.strip()]


# ---------------------------------------------------------------- symbolic


@contextlib.contextmanager
def _time_limit(seconds: float):
    """Raise TimeoutError after ``seconds`` (main thread only; elsewhere no limit)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def _raise(signum, frame):
        raise TimeoutError

    old = signal.signal(signal.SIGALRM, _raise)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def _to_sympy(s: str):
    from latex2sympy2_extended import latex2sympy
    from sympy.parsing.sympy_parser import implicit_multiplication_application, parse_expr, standard_transformations

    try:
        return latex2sympy(s)
    except Exception:
        transformations = standard_transformations + (implicit_multiplication_application,)
        return parse_expr(s.replace("^", "**"), transformations=transformations)


def symbolic_equal(a: str, b: str) -> bool:
    """sympy equivalence of two normalised answers: same expression, a zero difference, or close values."""
    if max(len(a), len(b)) > MAX_SYMBOLIC_CHARS:
        return False
    import sympy

    try:
        with _time_limit(SYMBOLIC_TIMEOUT_S):
            x, y = _to_sympy(a), _to_sympy(b)
            if x == y:
                return True
            if isinstance(x, sympy.MatrixBase) or isinstance(y, sympy.MatrixBase):
                return (
                    isinstance(x, sympy.MatrixBase)
                    and isinstance(y, sympy.MatrixBase)
                    and x.shape == y.shape
                    and (sympy.simplify(x - y) == sympy.zeros(*x.shape))
                )
            if isinstance(x, sympy.Expr) and isinstance(y, sympy.Expr):
                if sympy.simplify(x - y) == 0:
                    return True
                if x.is_number and y.is_number:
                    return math.isclose(complex(sympy.N(x)).real, complex(sympy.N(y)).real, rel_tol=REL_TOL) and (
                        math.isclose(complex(sympy.N(x)).imag, complex(sympy.N(y)).imag, abs_tol=1e-9)
                    )
            if isinstance(x, sympy.Set) and isinstance(y, sympy.Set):
                return x == y
    except (TimeoutError, Exception):  # unparsable or too slow: not equal by this rule
        return False
    return False


# ---------------------------------------------------------------- the check


def math_equal(pred: str | None, gold: str, include_percentage: bool = True, _depth: int = 0) -> bool:
    """ToRA-style equivalence of a predicted and a gold answer (order matters only for percentages)."""
    if pred is None or not str(pred).strip():
        return False
    p, g = normalize(pred), normalize(gold)
    if p.lower() == g.lower():
        return True
    pn, gn = to_number(p), to_number(g)
    if pn is not None and gn is not None:
        return numbers_equal(pn, gn, include_percentage)
    if _depth < 3:
        if _bracketed(p) and _bracketed(g):
            ps, gs = _split_top_level(p[1:-1]), _split_top_level(g[1:-1])
            if len(ps) == len(gs) and all(math_equal(a, b, include_percentage, _depth + 1) for a, b in zip(ps, gs)):
                return True
        elif _bracketed(g) != _bracketed(p) and p.strip("()[]").lower() == g.strip("()[]").lower():
            return True
        pm, gm = _matrix_rows(p), _matrix_rows(g)
        if pm is not None and gm is not None:
            return [len(r) for r in pm] == [len(r) for r in gm] and all(
                math_equal(a, b, include_percentage, _depth + 1) for pr, gr in zip(pm, gm) for a, b in zip(pr, gr)
            )
    if p.count("=") == 1 and g.count("=") == 1:
        pl, pr = p.split("=")
        gl, gr = g.split("=")
        diff_p, diff_g = f"({pl})-({pr})", f"({gl})-({gr})"
        return symbolic_equal(diff_p, diff_g) or symbolic_equal(diff_p, f"-({diff_g})")
    return symbolic_equal(p, g)
