"""Does a fresh run reproduce the committed reference? Every table compared cell by cell, within a stated tolerance.

    make check-reference      # the default config into a fresh results/check, then this comparison
    python -m scalebio check-reference --results results/check --reference results/reference/default

Tables: ``<experiment>/report/*.csv`` and ``report/*.csv`` of the run, against the reference's
``<experiment>/*.csv`` (or ``<experiment>/report/*.csv``) and ``report/*.csv``. Rows are matched by their key
columns (model, method, evaluation, claim, ...). A number passes when |a − b| ≤ abs + rel·max(|a|, |b|) (defaults
0.02 and 0.005: 0.02 on accuracies and shares, ≈0.05 nats on held-out losses near 6; results/README.md says why);
text must be identical, numbers inside text ("0.065, 1 seed", "−0.105 [−0.204, −0.006]") are compared as numbers,
and timing columns (wall and CPU seconds, tokens per second) are not compared. Every cell outside is one line
naming the table, the row, the column and both values; exit status 2 if there is any (or a table, row or column of
the reference is missing). What the reference lacks (a table or column added since) is listed, not compared.
"""

from __future__ import annotations

import argparse
import csv
import io
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

from scalebio.common.runtime import ConfigError, main_guard

ABS_TOL, REL_TOL = 0.02, 0.005
KEY_COLUMNS = ("experiment", "model", "method", "variant", "stage", "evaluation", "metric", "claim", "measure",
               "comparator", "kind", "rule", "target", "source", "knob")  # fmt: skip
"""Columns that name a row (in table order); a table with none of them is keyed by its first column."""
TIMING = re.compile(r"(^|[_ ])(wall|cpu)([_ ]|$)|seconds|per_s(ec|econd)?$|tokens?_per_s|tok/s", re.I)
"""Columns of machine- and load-dependent time: wall_time_s, wall_s, cpu_s, cost_scalebio_cpu_s, tokens_per_s."""
NUMBER = re.compile(r"(?<![\w.])[-+−]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?(?![\w.])")
"""A number inside a cell (not the digits of a name such as smollm2-135m or noise050); "−" is a minus sign."""


@dataclass
class Report:
    """The outcome: lines for everything outside the tolerance or missing, and notes for what was not compared."""

    failures: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    tables: int = 0
    cells: int = 0


def tables_of(folder: Path, reference: bool = False) -> dict[str, Path]:
    """``{"<experiment>/<name>.csv" | "report/<name>.csv": path}`` of a results folder (a reference may keep an
    experiment's tables beside its folder's ``report/`` instead of inside it)."""
    out: dict[str, Path] = {}
    for path in sorted(folder.glob("report/*.csv")):
        out[f"report/{path.name}"] = path
    for path in sorted(folder.glob("*/report/*.csv")):
        out[f"{path.parent.parent.name}/{path.name}"] = path
    if reference:
        for path in sorted(folder.glob("*/*.csv")):
            if path.parent.name != "report":
                out.setdefault(f"{path.parent.name}/{path.name}", path)
    return out


def read_table(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    rows = list(csv.reader(io.StringIO(path.read_text(encoding="utf-8"))))
    if not rows:
        return [], []
    header = rows[0]
    return header, [dict(zip(header, r + [""] * (len(header) - len(r)))) for r in rows[1:]]


def keyed(header: list[str], rows: list[dict]) -> tuple[list[str], dict[tuple, dict]]:
    """Rows by their key (key columns' values; a repeated key gets its occurrence number)."""
    keys = [c for c in KEY_COLUMNS if c in header] or header[:1]
    out: dict[tuple, dict] = {}
    for row in rows:
        key = tuple(row[k] for k in keys)
        n = sum(1 for k in out if k[: len(key)] == key)
        out[key + ((n,) if n else ())] = row
    return keys, out


def _number(text: str) -> float:
    return float(text.replace("−", "-"))


def compare_cell(fresh: str, ref: str, abs_tol: float, rel_tol: float) -> str | None:
    """Why two cells differ beyond the tolerance, or None."""
    if fresh == ref:
        return None
    if NUMBER.sub("#", fresh) != NUMBER.sub("#", ref):
        return "text differs"
    for a, b in zip(NUMBER.findall(fresh), NUMBER.findall(ref)):
        x, y = _number(a), _number(b)
        allowed = abs_tol + rel_tol * max(abs(x), abs(y))
        if abs(x - y) > allowed:
            return f"|Δ| {abs(x - y):.3g} > {allowed:.3g}"
    return None


def compare_table(name: str, fresh: Path, ref: Path, report: Report, abs_tol: float, rel_tol: float) -> None:
    f_header, f_rows = read_table(fresh)
    r_header, r_rows = read_table(ref)
    keys, f_keyed = keyed(f_header, f_rows)
    r_keys, r_keyed = keyed(r_header, r_rows)
    if keys != r_keys:
        report.failures.append(f"{name}: rows are keyed by {keys} here and by {r_keys} in the reference")
        return
    missing_cols = [c for c in r_header if c not in f_header]
    if missing_cols:
        report.failures.append(f"{name}: column(s) {missing_cols} of the reference are missing")
    extra_cols = [c for c in f_header if c not in r_header]
    if extra_cols:
        report.notes.append(f"{name}: column(s) {extra_cols} are not in the reference (not compared)")
    columns = [c for c in r_header if c in f_header and c not in keys and not TIMING.search(c)]
    for key, r_row in r_keyed.items():
        row = ", ".join(f"{k}={v}" for k, v in zip(keys, key)) + (f" (#{key[-1] + 1})" if len(key) > len(keys) else "")
        f_row = f_keyed.get(key)
        if f_row is None:
            report.failures.append(f"{name}: row ({row}) of the reference is missing")
            continue
        for col in columns:
            report.cells += 1
            why = compare_cell(f_row[col], r_row[col], abs_tol, rel_tol)
            if why:
                report.failures.append(
                    f"{name}: row ({row}), column '{col}': {f_row[col]!r} vs reference {r_row[col]!r} ({why})"
                )
    extra = [k for k in f_keyed if k not in r_keyed]
    if extra:
        report.notes.append(f"{name}: {len(extra)} row(s) not in the reference (not compared): {extra[:5]}")


def check_reference(results: Path, reference: Path, abs_tol: float = ABS_TOL, rel_tol: float = REL_TOL) -> Report:
    for folder, what in ((results, "--results"), (reference, "--reference")):
        if not folder.is_dir():
            raise ConfigError(f"{what} folder '{folder}' does not exist")
    if abs_tol < 0 or rel_tol < 0:
        raise ConfigError(f"tolerances must be >= 0, got --tolerance {abs_tol} --rel-tolerance {rel_tol}")
    fresh, ref = tables_of(results), tables_of(reference, reference=True)
    if not ref:
        raise ConfigError(f"--reference folder '{reference}' holds no tables (*/report/*.csv, */*.csv, report/*.csv)")
    report = Report()
    for name, path in ref.items():
        if name not in fresh:
            report.failures.append(f"{name}: a table of the reference is missing from '{results}'")
            continue
        report.tables += 1
        compare_table(name, fresh[name], path, report, abs_tol, rel_tol)
    report.notes += [f"{name}: not in the reference (not compared)" for name in fresh if name not in ref]
    return report


@main_guard
def main(argv=None) -> None:
    ap = argparse.ArgumentParser(prog="python -m scalebio check-reference", description=__doc__.split("\n\n")[0])
    ap.add_argument("--results", required=True, help="the fresh run's results folder (e.g. results/check)")
    ap.add_argument("--reference", required=True, help="the committed reference (e.g. results/reference/default)")
    ap.add_argument("--tolerance", type=float, default=ABS_TOL, help=f"absolute tolerance (default {ABS_TOL})")
    ap.add_argument("--rel-tolerance", type=float, default=REL_TOL, help=f"relative tolerance (default {REL_TOL})")
    a = ap.parse_args(argv)
    report = check_reference(Path(a.results), Path(a.reference), a.tolerance, a.rel_tolerance)
    for note in report.notes:
        print(f"note: {note}")
    for failure in report.failures:
        print(f"outside: {failure}", file=sys.stderr)
    summary = (
        f"{report.tables} tables, {report.cells} cells compared with the reference (|Δ| <= {a.tolerance} + "
        f"{a.rel_tolerance}·max(|a|, |b|); timing columns skipped)"
    )
    if report.failures:
        print(f"error: {len(report.failures)} cell(s) or table(s) outside the tolerance; {summary}", file=sys.stderr)
        raise SystemExit(2)
    print(f"ok: {summary}")


if __name__ == "__main__":
    main()
