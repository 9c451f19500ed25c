"""The report's one figure set-up: matplotlib (Agg, no display), one colour per method in every figure, figures
that wrap their panels to a readable width, the interval ("forest") panel every comparison figure draws, and a
layout check the tests run on every figure.

Why one module: a method that changes colour between figures, a legend drawn over the bars it explains and a
title cut off at the figure's edge were all found in the reference figures; each figure module set those up on
its own. Here ``figure`` always uses constrained layout, ``legend`` always puts the legend outside the axes,
``suptitle`` wraps long titles to the figure's width, and ``save`` checks the result (``layout_problems``).
"""

from __future__ import annotations

import hashlib
import math
import textwrap
import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the backend)
from matplotlib.path import Path as MplPath  # noqa: E402
from matplotlib.transforms import Bbox  # noqa: E402

from scalebio.common.registry import GENERIC_ORDER  # noqa: E402
from scalebio.report import methods  # noqa: E402

DPI = 120
MAX_WIDTH_IN = 13.0
"""1,560 px at DPI: a figure shown at full width on a laptop screen keeps 8-9 pt text readable."""
RC = {
    "font.size": 9,
    "axes.titlesize": 9,
    "axes.labelsize": 9,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "legend.fontsize": 8,
    "figure.titlesize": 10,
    "figure.dpi": DPI,
    "savefig.dpi": DPI,
}
FALLBACK = ["#393b79", "#637939", "#8c6d31", "#843c39", "#7b4173", "#3182bd", "#e6550d", "#31a354", "#756bb1",
            "#636363", "#6baed6", "#fd8d3c", "#74c476", "#9e9ac8", "#969696", "#c49c94"]  # fmt: skip
"""Colours for methods that declare none (and variants beyond their module's family); none repeats a declared one."""


def method_colour(name: str) -> str:
    """The method's colour in every figure: the one its module declares (``MethodInfo.colour``: reference rows in greys
    and earth tones, methods in saturated colours); a variant takes the next colour of its module's family
    (``variant_colours``: the ScaleBiO variants in the blue/red/pink family, so they read as one method's arms) in
    the order the report met the variants; anything else a fallback chosen by a hash of the name (md5, not Python's
    per-process salted ``hash``), so it keeps its colour from run to run and figure to figure."""
    info = methods.describe(name)
    if info.variant_of is None and info.order != GENERIC_ORDER:
        return info.colour
    if info.variant_of is not None:
        family = [n for n, i in methods.known().items() if i.variant_of == info.variant_of]
        k = family.index(name) if name in family else len(family)
        if k < len(info.variant_colours):
            return info.variant_colours[k]
    return FALLBACK[int(hashlib.md5(name.encode()).hexdigest(), 16) % len(FALLBACK)]


def source_colours(sources: list[str]) -> dict[str, str]:
    """One colour per source of an experiment (sources are not methods: their own cycle, in the given order)."""
    cycle = plt.get_cmap("tab10" if len(sources) <= 10 else "tab20").colors
    return {s: matplotlib.colors.to_hex(cycle[i % len(cycle)]) for i, s in enumerate(sources)}


def seeds_text(n: int) -> str:
    return f"{n} seed{'' if n == 1 else 's'}"


def source_label(source: str, card: dict, wrap: bool = False) -> str:
    """A source's name with what the data card knows about it: its corruption rate where the pool has one (a
    cluster of the denoising pool reads "cluster0 (100 % corrupted)"), else harmful / target."""
    noise = (card.get("noise") or {}).get(source)
    sep = "\n" if wrap else " "
    if noise is not None:
        return f"{source}{sep}({100 * noise:.0f} % corrupted)"
    tags = [t for key, t in (("harmful", "harmful"), ("targets", "target")) if source in (card.get(key) or [])]
    return f"{source}{sep}({', '.join(tags)})" if tags else source


def figure(n_panels: int, panel_w: float, panel_h: float, legend_w: float = 0.0, max_cols: int = 3, **kw):
    """(fig, axes list) with ``n_panels`` panels wrapped into rows so that the width (panels + ``legend_w`` for a
    legend outside them) stays within MAX_WIDTH_IN; constrained layout keeps titles and labels inside."""
    plt.rcParams.update(RC)
    n = max(1, n_panels)
    cols = max(1, min(n, max_cols, int((MAX_WIDTH_IN - legend_w) // panel_w) or 1))
    rows = math.ceil(n / cols)
    width = min(MAX_WIDTH_IN, cols * panel_w + legend_w)
    fig, axes = plt.subplots(rows, cols, figsize=(width, rows * panel_h), squeeze=False, layout="constrained", **kw)
    flat = list(axes.flat)
    for ax in flat[n:]:
        ax.set_visible(False)
    return fig, flat[:n]


def suptitle(fig, text: str) -> None:
    """A figure title wrapped to the figure's width (≈ 12 characters per inch at 10 pt, with a margin), never clipped."""
    width = int(fig.get_size_inches()[0] * 12)
    fig.suptitle("\n".join(textwrap.fill(line, width) for line in text.split("\n")))


def wrap(text: str, width: int) -> str:
    return "\n".join(textwrap.fill(line, width) for line in text.split("\n"))


def legend(fig, handles=None, labels=None, where: str = "right", **kw):
    """A figure legend outside every axes (constrained layout makes room for it); ``where`` is right or bottom."""
    if handles is None:
        seen = {}
        for ax in fig.axes:
            for h, lab in zip(*ax.get_legend_handles_labels()):
                seen.setdefault(lab, h)
        handles, labels = list(seen.values()), list(seen)
    if not handles:
        return None
    loc = {"right": "outside right center", "bottom": "outside lower center"}[where]
    ncol = kw.pop("ncol", 1 if where == "right" else min(4, len(handles)))
    return fig.legend(handles, labels, loc=loc, ncol=ncol, **kw)


def interval_panel(ax, rows: list[dict], xlabel: str, zero: float | None = 0.0, intervals: bool = True) -> None:
    """A forest panel: one row per entry (top to bottom), its estimate with the 95 % interval as a horizontal error
    bar, the seeds' own values as small dots where there are several, and a line at ``zero`` (None: no line).

    ``rows``: {"label", "value", "low", "high", "colour", "seeds": [per-seed values]}. With ``intervals`` an entry
    without an interval is an open marker (a single estimate: nothing to test); ``intervals=False`` draws values
    (filled markers, no bars). An entry without a value is labelled "(no data)"."""
    if zero is not None:
        ax.axvline(zero, color="k", lw=0.8, zorder=1)
    labels = []
    for i, r in enumerate(rows):
        labels.append(r["label"] if r.get("value") is not None else f"{r['label']} (no data)")
        if r.get("value") is None:
            continue
        colour = r.get("colour", "C0")
        if intervals and r.get("low") is not None and r.get("high") is not None:
            err = [[max(0.0, r["value"] - r["low"])], [max(0.0, r["high"] - r["value"])]]
            ax.errorbar(r["value"], i, xerr=err, fmt="o", color=colour, capsize=3, ms=6, zorder=3)
        else:
            ax.plot(r["value"], i, "o", mfc="white" if intervals else colour, color=colour, ms=6, zorder=3)
        seeds = [v for v in r.get("seeds") or [] if v is not None]
        if len(seeds) > 1:  # just below the estimate, spread a little so that equal seeds stay visible
            ax.scatter(seeds, [i + 0.2 + 0.06 * (j % 3) for j in range(len(seeds))], s=10, color=colour, alpha=0.6,
                       zorder=2, linewidths=0)  # fmt: skip
    ax.set_yticks(range(len(rows)), labels)
    ax.set_ylim(len(rows) - 0.4, -0.6)  # first row at the top
    ax.set_xlabel(xlabel)
    ax.grid(axis="x", lw=0.4, alpha=0.4)


def save(fig, path: Path) -> None:
    """Write the figure; a layout problem (``layout_problems``) warns, or raises where ``STRICT`` (the tests)."""
    fig.savefig(path, dpi=DPI)
    problems = layout_problems(fig)
    plt.close(fig)
    if problems:
        message = f"{path}: " + "; ".join(problems)
        if STRICT:
            raise AssertionError(message)
        warnings.warn(message, stacklevel=2)


STRICT = False
"""Raise instead of warning on a layout problem (tests set it)."""


def _titles(fig) -> list:
    out = [fig._suptitle] if fig._suptitle is not None else []
    for ax in fig.axes:
        if ax.get_visible():
            out += [t for t in (ax.title, ax._left_title, ax._right_title) if t.get_text()]
    return out


def _display_paths(artist) -> list[tuple[MplPath, bool]]:
    """(path in display pixels, filled?) of what an artist draws: lines, bars and the collections of errorbars,
    scatters and fill_between."""
    from matplotlib.collections import Collection, LineCollection, PathCollection
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    if isinstance(artist, Line2D):
        xy = artist.get_transform().transform(artist.get_xydata())
        if artist.get_linestyle() in ("None", "", " ") or len(xy) == 1:  # markers only: each point a small box
            return [(MplPath.unit_rectangle().transformed(_box(x, y, artist.get_markersize())), True) for x, y in xy]
        return [(MplPath(xy), False)]
    if isinstance(artist, Patch):
        return [(artist.get_transform().transform_path(artist.get_path()), True)]
    if isinstance(artist, PathCollection):
        offsets = artist.get_offset_transform().transform(artist.get_offsets())
        size = math.sqrt(max(artist.get_sizes(), default=36.0))
        return [(MplPath.unit_rectangle().transformed(_box(x, y, size)), True) for x, y in offsets]
    if isinstance(artist, Collection):
        t = artist.get_transform()
        filled = not isinstance(artist, LineCollection)
        return [(t.transform_path(p), filled) for p in artist.get_paths()]
    return []


def _box(x: float, y: float, size_pt: float):
    from matplotlib.transforms import Affine2D

    half = size_pt * DPI / 72 / 2
    return Affine2D().scale(2 * half).translate(x - half, y - half)


def layout_problems(fig) -> list[str]:
    """What is wrong with a figure's layout, from matplotlib's own renderer: a title or legend that extends past
    the figure, a legend that covers a title or a line, bar, error bar, marker or band of any axes, tick labels
    that overlap each other. Empty = fine."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    page = fig.bbox
    problems = []

    def outside(bbox) -> bool:
        return bbox.x0 < page.x0 - 0.5 or bbox.y0 < page.y0 - 0.5 or bbox.x1 > page.x1 + 0.5 or bbox.y1 > page.y1 + 0.5

    for t in _titles(fig):
        if outside(t.get_window_extent(renderer)):
            problems.append(f"title {t.get_text()[:40]!r} extends past the figure")
    for ax in fig.axes:
        if not ax.get_visible():
            continue
        for axis in (ax.xaxis, ax.yaxis):
            # axis-aligned labels only: the boxes of slanted labels overlap by construction, not their text
            labels = [
                t for t in axis.get_ticklabels() if t.get_visible() and t.get_text() and t.get_rotation() % 90 == 0
            ]
            boxes = [t.get_window_extent(renderer) for t in labels]
            if any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1 :]):
                problems.append(f"tick labels overlap in {ax.get_title()[:30]!r}")
    legends = list(fig.legends) + [ax.get_legend() for ax in fig.axes if ax.get_legend() is not None]
    for leg in legends:
        box = leg.get_window_extent(renderer)
        if outside(box):
            problems.append("a legend extends past the figure")
        for t in _titles(fig):
            if t.get_window_extent(renderer).overlaps(box):
                problems.append(f"a legend covers the title {t.get_text()[:40]!r}")
        for ax in fig.axes:
            # what an axes draws is clipped to it: only the part of the legend over the axes can cover anything
            region = Bbox.intersection(box, ax.bbox) if ax.get_visible() else None
            if region is None or region.width <= 0 or region.height <= 0:
                continue
            for artist in [*ax.lines, *ax.patches, *ax.collections]:
                if artist.get_visible() and any(
                    path.vertices.size and path.intersects_bbox(region, filled=filled)
                    for path, filled in _display_paths(artist)
                ):
                    problems.append(f"a legend covers a {type(artist).__name__} of {ax.get_title()[:30]!r}")
    return sorted(set(problems))
