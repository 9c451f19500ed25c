"""The report's one table renderer: cell formatting, GitHub-flavoured Markdown tables, and the csv + md pair."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from scalebio.common.runtime import atomic_write_text


def fmt(v, digits: int = 4) -> str:
    if v is None:
        return "—"
    if isinstance(v, float):
        return f"{v:.{digits}g}"
    return str(v)


def pm(mean, sd, digits: int = 3) -> str:
    if mean is None:
        return "—"
    return f"{mean:.{digits}f}" + (f" ± {sd:.{digits}f}" if sd is not None else "")


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    """A GitHub-flavoured Markdown table of already formatted cells (a "|" inside a cell is escaped)."""

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"

    return "\n".join([line(header), "|" + "---|" * len(header)] + [line(r) for r in rows]) + "\n"


def p_text(p: float | None) -> str:
    """A p-value for a reader: 3 decimals, "< 0.001" below that, "—" when there is none."""
    if p is None:
        return "—"
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def write_table(
    out: Path, stem: str, rows: list[dict], csv_cols: list[str], md_cols: list[str] | dict[str, str], title: str,
    note="", extra="", md_rows: list[dict] | None = None,
):  # fmt: skip
    """``stem.csv`` (machine-readable columns) and ``stem.md`` (what a reader reads: mean ± SD strings). ``md_cols``:
    row keys, or {row key: column header}; ``extra``: Markdown appended after the table, e.g. a second table;
    ``md_rows``: the rows the Markdown table shows where they are fewer than the csv's (the rest go in ``extra``)."""
    headers = dict(md_cols) if isinstance(md_cols, dict) else {c: c for c in md_cols}
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")  # quotes a cell only where it holds a comma or a quote
    cells = [[fmt(r.get(c), 6) for c in csv_cols] for r in rows]  # 6 significant digits: re-read downstream
    writer.writerows([csv_cols, *[["" if c == "—" else c for c in line] for line in cells]])  # empty = missing
    md = f"# {title}\n\n" + (f"{note}\n\n" if note else "")
    shown = rows if md_rows is None else md_rows
    md += markdown_table(list(headers.values()), [[fmt(r.get(c)) for c in headers] for r in shown]) + extra
    atomic_write_text(out / f"{stem}.csv", buf.getvalue())
    atomic_write_text(out / f"{stem}.md", md)
