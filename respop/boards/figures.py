"""The figures of the boards and of the meeting dossier: matplotlib Figures, no display needed.

Every function draws rows of the results store (``respop.store.schema``), read back as polars
DataFrames with the store's column names, and returns a :class:`matplotlib.figure.Figure` with an
Agg canvas: ``st.pyplot(fig)`` on a board, :func:`to_png` for the dossier. No pyplot: nothing is
registered globally, and figures are built under a lock (:func:`meeting_style`), so several
Streamlit sessions can draw at once.

Common rules:

- masked values are null (``None``; NaN is treated the same): primary and complementary
  suppressions alike, shown with the one symbol :data:`~respop.boards.labels.MASKED` ("s"),
  explained under the figure by :data:`MASKED_NOTE` (« s » : secret statistique), never "< 11".
  Maps hatch them in grey (legend :data:`~respop.boards.labels.MASKED_LEGEND`); bar charts draw no
  bar and write the symbol in a small box at the bar's base, a category annotation (gid
  :data:`MASKED_GID`), never a tick of the value axis nor where a value would be; lines leave a
  gap; the Sankey diagram gathers the suppressed flows of each row in one hatched band, so that
  its blocks equal the transitions table (:func:`sankey_nodes`);
- a trend's years with an incomplete look-back are drawn apart (hollow markers, not joined to the
  line, on a grey band labelled on the figure): :func:`trend`;
- an empty input (``None``, no rows, nothing drawable) gives a figure that says "Pas de données"
  under the title, never an exception;
- ``meeting=True`` draws for a projector (16:9, base type 20 pt, thick lines):
  :func:`meeting_style`; the default is for a screen or a printed page;
- the strata go from light orange (level 1, the least severe) through red and magenta to dark
  purple (the most severe) in every figure (:func:`strata_colours`: distinct hues and lightness,
  safe for the common colour-vision deficiencies), and are told apart by more than colour: named
  beside their bar or block, one line style each on the survival curves; "décès" is near black,
  "non revu" grey; series of bars have a fill pattern each, lines a marker shape each;
- legends are outside the plotting area; every axis has a title with its unit;
- :func:`to_png` embeds :func:`layout_report` (texts, legends over a plotting area, suppression
  symbol on a numeric axis, texts beyond the figure, overlapping texts) in the PNG, so that a test
  of the page can check every figure it shows;
- every text a clinician reads is French; numbers use :mod:`respop.boards.labels`.
"""

from __future__ import annotations

import contextlib
import functools
import io
import json
import math
import textwrap
import threading
from collections.abc import Callable, Iterator, Sequence
from contextvars import ContextVar

import geopandas as gpd
import matplotlib as mpl
import numpy as np
import polars as pl
import shapely
import shapely.ops
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.cm import ScalarMappable
from matplotlib.collections import PathCollection
from matplotlib.colors import Normalize, to_hex
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch, PathPatch, Rectangle
from matplotlib.path import Path
from matplotlib.patheffects import withStroke
from matplotlib.ticker import FixedLocator, FuncFormatter, MaxNLocator, MultipleLocator

from respop.boards.labels import MASKED, MASKED_LEGEND, fr_dec, fr_int, label

__all__ = [
    "meeting_style",
    "to_png",
    "zone_map",
    "territory_map",
    "strata_pyramid",
    "hbar",
    "grouped_bars",
    "trend",
    "sankey",
    "sankey_nodes",
    "survival",
    "survival_xlabel",
    "layout_report",
    "png_layout",
    "NO_DATA",
    "MASKED_NOTE",
    "FLOWS_MASKED_NOTE",
    "LINE_MASKED_NOTE",
    "SECRET_NODE",
    "strata_colours",
    "event_study",
    "pilot_vs_synthetic",
]

NO_DATA = "Pas de données"
def _quoted(text: str) -> str:
    """« text », with no-break spaces inside the guillemets (French typography; never split)."""
    return f"«\u00a0{text}\u00a0»"


MASKED_NOTE = f"{_quoted(MASKED)} : secret statistique"
"""The note under a figure that shows the suppression symbol (the page explains it in full)."""
LINE_MASKED_NOTE = f"Points absents : valeurs soumises au secret statistique ({_quoted(MASKED)})"
FLOWS_MASKED_NOTE = (f"Bandes hachurées {_quoted(MASKED)} : flux soumis au secret statistique, regroupés par profil "
                     "de départ (effectif du profil moins ses flux publiés)")
SECRET_NODE = "secret"
"""The code of the Sankey's grey node that gathers the suppressed flows (:func:`sankey`)."""
SECRET_NODE_LABEL = f"Flux soumis au secret ({MASKED})"
MASKED_GID = "masked"
"""The ``gid`` of the suppression symbol written at a bar's base (a category annotation, not a value)."""
MONTH_DAYS = 30.44

OUTLINE = "#2b2b2b"
"""Territory borders (as in :func:`respop.delineation.outputs.render_map`)."""
MASKED_FILL = "#d4d4d4"
MASKED_HATCH = "///"
MASKED_HATCH_COLOUR = "#6e6e6e"
NO_VALUE_FILL = "#ffffff"
NO_VALUE_EDGE = "#b0b0b0"
MAP_CMAP = "YlOrRd"
SELECTED_FILL = "#9ecae1"
NEIGHBOUR_FILL = "#eeeeee"
NEIGHBOUR_EDGE = "#8c8c8c"
EMERGENCY_COLOUR = "#d7191c"
HOSPITAL_COLOUR = "#1f1f1f"
DEATH_COLOUR = "#111111"
NOT_SEEN_COLOUR = "#a3a3a3"
TEXT_GREY = "#4d4d4d"
SERIES_COLOURS = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#000000", "#F0E442"]
"""Okabe–Ito: told apart with the common colour-vision deficiencies."""
SERIES_MARKERS = ["o", "s", "D", "^", "v", "P", "X", "*"]
SERIES_HATCHES = [None, "//", "..", "\\\\", "xx", "--", "++", "oo"]
"""One fill pattern per series of bars (the first plain), so that bars are told apart in grey."""
"""One marker shape per series, so that lines are told apart without their colour."""
INCOMPLETE_FILL = "#ececec"
"""The band behind the years whose look-back is incomplete (:func:`trend`)."""

TERMINAL_TARGETS = ("deces", "non_revu")
MAX_NUMBERED = 20
"""At most this many hospitals of the territory are numbered on its map and listed beside it."""

_COMMON = {
    "font.family": "DejaVu Sans",
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.titleweight": "bold",
    "axes.edgecolor": "#444444",
    "axes.unicode_minus": True,
    "figure.facecolor": "white",
    "axes.facecolor": "white",
    "savefig.facecolor": "white",
    "legend.frameon": False,
    "grid.color": "#dddddd",
    "hatch.color": MASKED_HATCH_COLOUR,
}

_NORMAL = {
    **_COMMON,
    "figure.figsize": (10.0, 6.25),
    "font.size": 11,
    "axes.titlesize": 13,
    "axes.labelsize": 11,
    "xtick.labelsize": 10,
    "ytick.labelsize": 10,
    "legend.fontsize": 10,
    "figure.titlesize": 15,
    "lines.linewidth": 2.0,
    "lines.markersize": 6,
    "axes.linewidth": 0.8,
    "grid.linewidth": 0.6,
    "hatch.linewidth": 0.8,
}

_MEETING = {
    **_COMMON,
    "figure.figsize": (13.33, 7.5),
    "font.size": 20,
    "axes.titlesize": 22,
    "axes.labelsize": 20,
    "xtick.labelsize": 18,
    "ytick.labelsize": 18,
    "legend.fontsize": 18,
    "figure.titlesize": 26,
    "lines.linewidth": 4.0,
    "lines.markersize": 11,
    "axes.linewidth": 1.6,
    "xtick.major.width": 1.6,
    "ytick.major.width": 1.6,
    "xtick.major.size": 7,
    "ytick.major.size": 7,
    "grid.linewidth": 1.2,
    "hatch.linewidth": 1.6,
    "patch.linewidth": 1.5,
}


_LOCK = threading.RLock()
_MEETING_NOW: ContextVar[bool] = ContextVar("respop_boards_meeting", default=False)


@contextlib.contextmanager
def meeting_style(meeting: bool = False) -> Iterator[None]:
    """The rc settings the figures are drawn with: ``meeting=True`` for a projector (16:9 figure,
    20 pt type, 26 pt titles, 4 pt lines), otherwise ordinary screen sizes (11 pt type). Sizes are
    read when the artists are made, so a figure keeps them after the ``with`` block.

    matplotlib's rc settings are global to the process: the block holds a lock, so that two
    Streamlit sessions building figures in two threads do not mix their sizes."""
    with _LOCK, mpl.rc_context(_MEETING if meeting else _NORMAL):
        token = _MEETING_NOW.set(meeting)
        try:
            yield
        finally:
            _MEETING_NOW.reset(token)


def to_png(fig: Figure, dpi: int = 150) -> bytes:
    """The figure as PNG bytes (white background), with its :func:`layout_report` (computed at
    ``dpi``) as JSON in the PNG text chunk :data:`LAYOUT_KEY` (ASCII JSON, so a plain ``tEXt``
    chunk: ``PIL.Image.open(...).text[LAYOUT_KEY]``); the figure is cleared afterwards.

    The figure is laid out twice and drawn once, as ``savefig`` after the report's own draw drew
    it (layout and drawing, layout, drawing): constrained layout moves some texts again at its
    second pass, and the PNG is the second layout's; the report is measured on that drawing, and
    the canvas is encoded as ``savefig`` encodes it. The same PNG bytes and reports as ``savefig``
    after :func:`layout_report` on the 124 figures of the tiny run's dossier and board (both
    modes), with one drawing less: a quarter of a dossier's time."""
    from matplotlib.image import imsave

    fig.set_dpi(dpi)
    face = fig.get_facecolor()
    fig.set_facecolor("white")  # savefig's facecolor
    try:
        fig.draw_without_rendering()  # the first layout (savefig's is the second)
        report = layout_report(fig)
        buffer = io.BytesIO()
        imsave(buffer, fig.canvas.buffer_rgba(), format="png", origin="upper", dpi=fig.dpi,
               metadata={LAYOUT_KEY: json.dumps(report, ensure_ascii=True)})
    finally:
        fig.set_facecolor(face)
    fig.clear()
    return buffer.getvalue()


def png_layout(png: bytes) -> dict | None:
    """The layout report embedded by :func:`to_png` in PNG bytes (None when there is none)."""
    from PIL import Image

    with Image.open(io.BytesIO(png)) as image:
        text = getattr(image, "text", {}).get(LAYOUT_KEY)
    return None if text is None else json.loads(text)


# ------------------------------------------------------------------------------------ layout report

LAYOUT_KEY = "respop:layout"
"""The PNG text key of the layout report."""

_TOLERANCE_PX = 1.0
"""Overlaps and overflows smaller than this (in pixels) are rounding, not defects."""


def _shown(artist) -> bool:
    """The artist is visible, and so is the axes it is drawn in."""
    return artist.get_visible() and (artist.axes is None or artist.axes.get_visible())


def _text_bbox(text, renderer):
    """The text's box in display pixels, cut to its clip box when it is clipped (what is drawn)."""
    box = text.get_window_extent(renderer)
    clip = text.get_clip_box() if text.get_clip_on() else None
    if clip is not None:
        from matplotlib.transforms import Bbox

        inter = Bbox.intersection(box, clip)
        if inter is None:
            return None
        box = inter
    return box


def _is_suppressed(text: str) -> bool:
    return text.strip() == MASKED or "< 11" in text or "<11" in text


def _numeric_axis(axis) -> bool:
    """An axis whose tick labels are numbers (not categories): a formatter that is not fixed text
    (``set_yticks(positions, labels)`` gives a FuncFormatter over a dict of labels)."""
    from matplotlib.category import StrCategoryFormatter
    from matplotlib.ticker import FixedFormatter, NullFormatter

    formatter = axis.get_major_formatter()
    if isinstance(formatter, (FixedFormatter, StrCategoryFormatter, NullFormatter)):
        return False
    func = getattr(formatter, "func", None)
    return not (isinstance(func, functools.partial) and getattr(func.func, "__name__", "") == "_format_with_dict")


def _at_base(ax, text) -> bool:
    """The text is anchored at the base of the bars (x = 0, or the value axis' lower limit)."""
    x = text.xy[0] if hasattr(text, "xy") else text.get_position()[0]
    lo, hi = sorted(ax.get_xlim())
    base = min(max(0.0, lo), hi)
    return abs(float(x) - base) <= 0.01 * (hi - lo)


def _overlap(a, b) -> bool:
    w = min(a.x1, b.x1) - max(a.x0, b.x0)
    h = min(a.y1, b.y1) - max(a.y0, b.y0)
    return w > _TOLERANCE_PX and h > _TOLERANCE_PX


def _inside(box, outer) -> bool:
    t = _TOLERANCE_PX
    return box.x0 >= outer.x0 - t and box.y0 >= outer.y0 - t and box.x1 <= outer.x1 + t and box.y1 <= outer.y1 + t


def _short(text: str) -> str:
    one = " ".join(text.split())
    return one if len(one) <= 60 else one[:57] + "..."


def layout_report(fig: Figure) -> dict:
    """What a reader would find wrong with the figure's layout, measured on the drawn figure
    (display pixels, after a draw at the figure's dpi):

    - ``texts``: every visible text (title, notes, axis labels, the tick labels drawn, legend
      entries and titles, annotations, bar values);
    - ``legend_overlaps``: legends whose box overlaps the plotting area (axes box) of any visible
      axes, or lies partly outside the figure;
    - ``suppressed_on_numeric_axis``: tick labels of a numeric axis that are the suppression symbol
      (:data:`~respop.boards.labels.MASKED`) or contain "< 11", and such texts written in an axes
      with a numeric axis away from the bars' base (i.e. where a value would be written);
    - ``outside_figure``: texts whose box goes beyond the figure;
    - ``overlapping_texts``: pairs of texts whose boxes overlap (more than a pixel each way).

    Every list but ``texts`` is empty for a well laid-out figure."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    fig_box = fig.bbox
    entries: list[tuple[str, object, str]] = []  # (kind, Text, owner)

    seen: set[int] = set()

    def add(kind: str, text, owner: str = "") -> None:
        if text is not None and id(text) not in seen and text.get_text().strip() and _shown(text):
            seen.add(id(text))
            entries.append((kind, text, owner))

    add("title", fig._suptitle)
    add("note", fig._supxlabel)
    add("label", fig._supylabel)
    for t in fig.texts:
        add("text", t)
    suppressed: list[str] = []
    numeric_axes = []
    for ax in fig.axes:
        if not ax.get_visible():
            continue
        for t in (ax.title, ax._left_title, ax._right_title):
            add("title", t)
        if ax.axison:
            for name, axis in (("x", ax.xaxis), ("y", ax.yaxis)):
                if not axis.get_visible():
                    continue
                add("label", axis.label)
                numeric = _numeric_axis(axis)
                if numeric:
                    numeric_axes.append((ax, name))
                for tick in axis._update_ticks():
                    for lab in (tick.label1, tick.label2):
                        if lab.get_visible() and lab.get_text().strip():
                            add("tick", lab, f"{name}-numeric" if numeric else name)
                            if numeric and _is_suppressed(lab.get_text()):
                                suppressed.append(f"graduation de l'axe {name} : {_short(lab.get_text())}")
        for t in ax.texts:
            add("text", t)
        for t in ax.texts:
            if not (_shown(t) and _is_suppressed(t.get_text())):
                continue
            axes_names = [name for a, name in numeric_axes if a is ax]
            if not axes_names:
                continue
            if "< 11" in t.get_text() or "<11" in t.get_text():
                suppressed.append(f"texte « {_short(t.get_text())} » dans un graphique à axe numérique")
            elif t.get_gid() != MASKED_GID or not _at_base(ax, t):  # not at the bars' base (a category mark)
                suppressed.append(f"valeur « {_short(t.get_text())} » écrite comme un nombre "
                                  f"(axe {', '.join(axes_names)})")
    legends = [ax.get_legend() for ax in fig.axes if ax.get_legend() is not None] + list(fig.legends)
    for leg in legends:
        if leg.get_title() is not None:
            add("legend", leg.get_title())
        for t in leg.get_texts():
            add("legend", t)

    texts = [_short(t.get_text()) if kind != "tick" else t.get_text() for kind, t, _ in entries]
    boxes = [(_text_bbox(t, renderer), kind, t) for kind, t, _ in entries]
    outside = [f"« {_short(t.get_text())} »" for box, _, t in boxes if box is not None and not _inside(box, fig_box)]

    legend_overlaps = []
    plotting = [ax for ax in fig.axes if ax.get_visible()]
    for leg in legends:
        if not leg.get_visible():
            continue
        box = leg.get_window_extent(renderer)
        first = next((t.get_text() for t in leg.get_texts()), "")
        what = f"légende « {_short(leg.get_title().get_text() or first)} »"
        for ax in plotting:
            if _overlap(box, ax.get_window_extent(renderer)):
                legend_overlaps.append(f"{what} sur la zone de tracé")
                break
        if not _inside(box, fig_box):
            legend_overlaps.append(f"{what} hors de la figure")

    overlapping = []
    items = [(box, t) for box, kind, t in boxes if box is not None and box.width > 0 and box.height > 0]
    for i in range(len(items)):
        for j in range(i + 1, len(items)):
            if _overlap(items[i][0], items[j][0]):
                overlapping.append(f"« {_short(items[i][1].get_text())} » / « {_short(items[j][1].get_text())} »")
    return {
        "texts": texts,
        "legend_overlaps": legend_overlaps,
        "suppressed_on_numeric_axis": suppressed,
        "outside_figure": outside,
        "overlapping_texts": overlapping,
    }


# ------------------------------------------------------------------------------------------ helpers


def _is_null(x: object) -> bool:
    if x is None:
        return True
    try:
        return math.isnan(float(x))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False


def _empty(df: pl.DataFrame | None) -> bool:
    return df is None or df.height == 0


def _fontsize(scale: float = 1.0) -> float:
    return float(mpl.rcParams["font.size"]) * scale


def _meeting_now() -> bool:
    return _MEETING_NOW.get()


def _figure(figsize: tuple[float, float] | None = None) -> Figure:
    fig = Figure(figsize=figsize, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _wrap(text: str, width: int) -> str:
    return "\n".join(textwrap.fill(line, width) for line in str(text).split("\n"))


def _title(fig: Figure, title: str | None) -> None:
    if title:
        width = 52 if _meeting_now() else 80
        fig.suptitle(_wrap(title, width), fontweight="bold")


def _note(fig: Figure, notes: Sequence[str]) -> None:
    """Notes under the figure, small and grey (inside the constrained layout)."""
    notes = [n for n in notes if n]
    if notes:
        size = _fontsize(0.85)
        chars = int(fig.get_figwidth() * 72 * 0.9 / (size * 0.55))
        fig.supxlabel("\n".join(_wrap(n, chars) for n in notes), fontsize=size, color=TEXT_GREY)


def _legend_top(fig: Figure, ax, labels: Sequence[str], handles: Sequence | None = None) -> None:
    """The legend above the axes (under the title), in as many columns as fit the width
    (``handles``: the entries, if not the axes' labelled artists)."""
    fs = float(mpl.rcParams["legend.fontsize"])
    widths = [len(t) * fs * 0.6 / 72 + 1.2 for t in labels]
    usable = fig.get_figwidth() * 0.75
    ncol = len(widths)
    while ncol > 1 and max(sum(widths[i:i + ncol]) for i in range(0, len(widths), ncol)) > usable:
        ncol -= 1
    if handles is None:
        ax.legend(loc="lower left", bbox_to_anchor=(0.0, 1.02), ncol=ncol, borderaxespad=0.0)
    else:
        ax.legend(list(handles), list(labels), loc="lower left", bbox_to_anchor=(0.0, 1.02), ncol=ncol,
                  borderaxespad=0.0)


def _no_data(title: str | None, notes: Sequence[str] = ()) -> Figure:
    fig = _figure()
    ax = fig.add_subplot()
    ax.set_axis_off()
    ax.text(0.5, 0.5, NO_DATA, ha="center", va="center", fontsize=_fontsize(1.5), color=TEXT_GREY,
            transform=ax.transAxes)
    _title(fig, title)
    _note(fig, notes)
    return fig


def _fr_number(x: float) -> str:
    """A tick value the French way, with no more decimals than it needs (up to 3)."""
    if x == 0 or _is_null(x):
        return "0"
    for digits in range(4):
        scaled = x * 10**digits
        if abs(scaled - round(scaled)) < 1e-6 * max(1.0, abs(scaled)):
            return fr_dec(x, digits)
    return fr_dec(x, 3)


def _fr_short(x: float | None) -> str:
    """A value label: 2 decimals below 1, 1 below 100, none above; ``None`` → "–"."""
    if _is_null(x):
        return fr_dec(None)
    a = abs(float(x))  # type: ignore[arg-type]
    return fr_dec(x, 0 if a >= 100 else 1 if a >= 1 else 2)


FR_TICKS = FuncFormatter(lambda x, _pos: _fr_number(x))
PERCENT_TICKS = FuncFormatter(lambda x, _pos: f"{_fr_number(round(100 * x, 6))}\u202f%")
YEAR_TICKS = FuncFormatter(lambda x, _pos: f"{int(round(x))}")


STRATA_CMAP = "inferno"
STRATA_RANGE = (0.80, 0.28)
"""Where the least and the most severe strata are taken in :data:`STRATA_CMAP`: from orange-yellow
to dark purple, through red and magenta (its two ends, near white and near black, are left out,
so that every stratum shows on white and none looks like "Décès")."""
STRATA_LINESTYLES = ["solid", (0, (6, 2)), (0, (2, 1.5)), (0, (6, 2, 2, 2)), (0, (1, 1))]
"""Line styles of the strata from the most severe (survival curves: told apart without colour)."""


def strata_colours(n: int, lightest: float = STRATA_RANGE[0]) -> list[str]:
    """``n`` colours from light (the least severe, first) to dark (the most severe, last), of
    distinct hues (orange, red, magenta, purple: matplotlib's perceptually uniform "inferno", which
    the common colour-vision deficiencies and a projector keep in order of lightness);
    ``lightest``: where the first one is taken in the colour map (0 to 1, darker below)."""
    cmap = mpl.colormaps[STRATA_CMAP]
    darkest = STRATA_RANGE[1]
    if n <= 0:
        return []
    if n == 1:
        return [to_hex(cmap(0.5))]
    return [to_hex(cmap(lightest + (darkest - lightest) * i / (n - 1))) for i in range(n)]


def _level_colours(levels: Sequence[int], lightest: float = STRATA_RANGE[0]) -> dict[int, str]:
    """A colour per stratum level, by rank among the given levels."""
    ordered = sorted(set(levels))
    return dict(zip(ordered, strata_colours(len(ordered), lightest), strict=True))


def _floats(series: pl.Series) -> list[float | None]:
    """Values as Python floats, NaN turned into None."""
    return [None if _is_null(v) else float(v) for v in series.cast(pl.Float64, strict=False).to_list()]


def _require(df: pl.DataFrame, columns: Sequence[str], what: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(f"{what}: missing column(s) {missing}; got {df.columns}")


def _halo(width: float | None = None) -> list:
    return [withStroke(linewidth=width or max(2.0, _fontsize() / 4), foreground="white")]


# --------------------------------------------------------------------------------------------- maps


def _nice(value: float) -> float:
    """A round number (1, 2, 5 × 10^k) not above value."""
    if value <= 0:
        return 0.0
    exp = math.floor(math.log10(value))
    for m in (5, 2, 1):
        if m * 10**exp <= value:
            return float(m * 10**exp)
    return float(10**exp)


def _scale_bar(ax, bounds: Sequence[float], crs, inside: bool = False) -> None:
    """A km scale bar at the bottom right, when the CRS is in metres: under ``bounds``, or just
    inside them with ``inside`` (when the axes are cut to them)."""
    if crs is None or crs.is_geographic:
        return
    x0, y0, x1, y1 = bounds
    length = _nice((x1 - x0) / 5.0)
    if length <= 0 or not math.isfinite(length):
        return
    lw = 6 if _meeting_now() else 4
    if inside:
        xr, yb, offset, va = x1 - (x1 - x0) * 0.03, y0 + (y1 - y0) * 0.04, lw, "bottom"
    else:
        xr, yb, offset, va = x1, y0 - (y1 - y0) * 0.03, -lw, "top"
    ax.plot([xr - length, xr], [yb, yb], color="#111111", linewidth=lw, solid_capstyle="butt", zorder=8)
    km = length / 1000.0
    text = f"{fr_int(km)} km" if km >= 1 else f"{fr_int(length)} m"
    ax.annotate(text, (xr - length / 2, yb), xytext=(0, offset), textcoords="offset points", ha="center", va=va,
                fontsize=_fontsize(0.85), zorder=8, path_effects=_halo())


def _map_figure(meeting: bool):
    """A map figure (16:9 for meetings, 4:3 otherwise) and its axes, placed by :func:`_layout_map`
    once everything is drawn (no constrained layout: it leaves a fixed-aspect map off-centre)."""
    fig = Figure(figsize=(13.33, 7.5) if meeting else (10.0, 7.5))
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0.0, 0.0, 1.0, 1.0))
    ax.set_axis_off()
    ax.set_aspect("equal")
    return fig, ax


def _layout_map(fig: Figure, ax, title: str, handles: list, ncol: int,
                colorbar: tuple[ScalarMappable, str] | None = None, side: str | None = None) -> None:
    """Title on top, legend at the bottom, the map as large as fits in between, centred together
    with what is on its right: the colour bar (labelled), or the ``side`` text."""
    w, h = fig.get_size_inches()
    meeting = _meeting_now()
    text = _wrap(title, 52 if meeting else 80) if title else ""
    lines = text.count("\n") + 1 if text else 0
    top_in = 0.25 + lines * float(mpl.rcParams["figure.titlesize"]) * 1.3 / 72
    bottom_in = 0.2
    if handles:  # as many columns as fit the width; the map above the legend's measured height
        renderer = fig.canvas.get_renderer()
        for n in range(max(ncol, 1), 0, -1):
            legend = fig.legend(handles=handles, loc="lower center", bbox_to_anchor=(0.5, 0.08 / h), ncol=n,
                                handlelength=2.2, handleheight=1.2, columnspacing=2.0)
            box = legend.get_window_extent(renderer)
            if box.width <= fig.bbox.width - 0.3 * fig.dpi or n == 1:
                break
            legend.remove()
        bottom_in = 0.08 + box.height / fig.dpi + 0.15
    bar_room = (2.4 if meeting else 1.5) if colorbar else 0.0
    side_size = _fontsize(0.8)
    if side:
        longest = max(len(line) for line in side.split("\n"))
        bar_room = min(0.45 * w, 0.4 + longest * side_size * 0.6 / 72)
    edge = 0.2
    ax.set_position((edge / w, bottom_in / h, 1 - (2 * edge + bar_room) / w, 1 - (top_in + bottom_in) / h))
    ax.apply_aspect()
    pos = ax.get_position()
    x0 = (1 - pos.width - bar_room / w) / 2
    ax.set_position((x0, pos.y0, pos.width, pos.height))
    if colorbar is not None:
        mappable, bar_label = colorbar
        bar_w = (0.32 if meeting else 0.22) / w
        cax = fig.add_axes((x0 + pos.width + 0.25 / w, pos.y0 + 0.12 * pos.height, bar_w, 0.76 * pos.height))
        bar = fig.colorbar(mappable, cax=cax)
        bar.set_label(bar_label)
        bar.ax.yaxis.set_major_formatter(FR_TICKS)
        bar.outline.set_visible(False)
    if side:
        head, _, body = side.partition("\n")
        fig.text(x0 + pos.width + 0.3 / w, pos.y0 + pos.height, head, ha="left", va="top", fontsize=side_size,
                 fontweight="bold")
        fig.text(x0 + pos.width + 0.3 / w, pos.y0 + pos.height - 1.6 * side_size / 72 / h, body, ha="left",
                 va="top", fontsize=side_size, linespacing=1.35)
    if text:
        fig.suptitle(text, y=1 - 0.12 / h, va="top", fontweight="bold")


def _paths(geoms: Sequence) -> list[Path]:
    """One matplotlib Path per (Multi)Polygon, holes included (rings oriented so that holes stay
    empty), built from the coordinate arrays at once: much faster than a patch per polygon."""
    geoms = shapely.orient_polygons(np.asarray(geoms, dtype=object))
    polygons, owner = shapely.get_parts(geoms, return_index=True)
    keep = shapely.get_type_id(polygons) == 3  # polygons only (a collection may hold lines)
    polygons, owner = polygons[keep], owner[keep]
    rings, ring_polygon = shapely.get_rings(polygons, return_index=True)
    xy, coord_ring = shapely.get_coordinates(rings, return_index=True)
    codes = np.full(len(xy), Path.LINETO, dtype=Path.code_type)
    if len(xy):
        starts = np.r_[0, np.flatnonzero(np.diff(coord_ring)) + 1]
        ends = np.r_[starts[1:] - 1, len(xy) - 1]
        codes[starts] = Path.MOVETO
        codes[ends] = Path.CLOSEPOLY
    coord_geom = owner[ring_polygon[coord_ring]] if len(xy) else np.empty(0, dtype=int)
    bounds = np.searchsorted(coord_geom, np.arange(len(geoms) + 1))
    return [Path(xy[a:b], codes[a:b]) if b > a else Path(np.empty((0, 2))) for a, b in zip(bounds[:-1], bounds[1:],
                                                                                           strict=True)]


def _draw_polygons(ax, geoms: Sequence, zorder: float = 1, **style) -> PathCollection:
    """(Multi)Polygons as one collection in data coordinates; ``style``: facecolor(s),
    edgecolor(s), linewidth(s), hatch, hatchcolor(s)."""
    collection = PathCollection(_paths(geoms), zorder=zorder, **style)
    ax.add_collection(collection, autolim=True)
    ax.autoscale_view()
    return collection


def _outlines(zones: gpd.GeoDataFrame) -> list:
    """Each territory as the union of its zones (zones without territory are left out)."""
    inside = zones[zones["territory_id"].notna()]
    if len(inside) == 0:
        return []
    codes, groups = np.unique(inside["territory_id"].to_numpy(), return_inverse=True)
    geoms = inside.geometry.values
    return [shapely.union_all(geoms[groups == k]) for k in range(len(codes))]


def zone_map(
    zones: gpd.GeoDataFrame,
    values: pl.DataFrame | None,
    title: str,
    legend_label: str,
    territory_id: int | None = None,
    meeting: bool = False,
) -> Figure:
    """A choropleth of the zones of one territory (or of every zone when ``territory_id`` is None).

    ``zones``: zone_code, territory_id, geometry; ``values``: zone_code, value (e.g. the
    ``indicators`` rows of level "zone", ``unit`` renamed zone_code), or None for the zones alone.
    Zones whose value is null are hatched grey (:data:`~respop.boards.labels.MASKED_LEGEND`); zones without a row are white
    ("Pas de donnée"). Colours: yellow to red over the values' range, with a colour bar labelled
    ``legend_label``; territory borders thick, zone borders thin and white; a km scale bar."""
    with meeting_style(meeting):
        if zones is None or len(zones) == 0:
            return _no_data(title)
        gdf = zones
        if territory_id is not None:
            gdf = zones[zones["territory_id"] == territory_id]
        gdf = gdf[gdf.geometry.notna() & ~gdf.geometry.is_empty]
        if len(gdf) == 0:
            return _no_data(title)

        codes = gdf["zone_code"].astype(str).to_numpy()
        by_code: dict[str, float | None] = {}
        if values is not None and values.height:
            _require(values, ["zone_code", "value"], "zone_map values")
            by_code = dict(zip(values["zone_code"].cast(pl.String).to_list(), _floats(values["value"]), strict=True))
        present = np.array([c in by_code for c in codes], dtype=bool)
        numbers = np.array([by_code.get(c) if by_code.get(c) is not None else np.nan for c in codes], dtype=float)
        masked = present & np.isnan(numbers)
        shown = present & ~masked
        absent = ~present

        fig, ax = _map_figure(meeting)
        # thinner borders when zones or territories are many, so that the colours still show
        edge = (0.9 if meeting else 0.6) * min(1.0, math.sqrt(300 / len(gdf)))
        handles: list = []
        colorbar = None

        if shown.any():
            cmap = mpl.colormaps[MAP_CMAP]
            lo, hi = float(np.nanmin(numbers[shown])), float(np.nanmax(numbers[shown]))
            if hi <= lo:
                pad = abs(lo) * 0.1 or 1.0
                lo, hi = lo - pad, hi + pad
            norm = Normalize(lo, hi)
            colours = cmap(norm(numbers[shown]))
            _draw_polygons(ax, gdf.geometry.values[shown], facecolors=colours, edgecolors="white", linewidths=edge)
            colorbar = (ScalarMappable(norm=norm, cmap=cmap), legend_label)
        if masked.any():
            _draw_polygons(ax, gdf.geometry.values[masked], facecolors=MASKED_FILL, edgecolors="white",
                           linewidths=edge, hatch=MASKED_HATCH, hatchcolors=MASKED_HATCH_COLOUR)
            handles.append(Patch(facecolor=MASKED_FILL, edgecolor=MASKED_HATCH_COLOUR, hatch=MASKED_HATCH,
                                 linewidth=0, label=MASKED_LEGEND))
        if absent.any():
            no_values = values is None or values.height == 0
            _draw_polygons(ax, gdf.geometry.values[absent], facecolors="#f2f2f2" if no_values else NO_VALUE_FILL,
                           edgecolors="white" if no_values else NO_VALUE_EDGE, linewidths=edge)
            if not no_values:
                handles.append(Patch(facecolor=NO_VALUE_FILL, edgecolor=NO_VALUE_EDGE, label="Pas de donnée"))

        outlines = _outlines(gdf)
        if len(outlines):
            lw = (4.0 if meeting else 2.6) * max(0.3, min(1.0, math.sqrt(30 / len(outlines))))
            _draw_polygons(ax, outlines, zorder=3, facecolors="none", edgecolors=OUTLINE, linewidths=lw)
            handles.insert(0, Line2D([], [], color=OUTLINE, linewidth=lw, label="Limite de territoire"))
        _scale_bar(ax, gdf.total_bounds, gdf.crs)
        _layout_map(fig, ax, title, handles, len(handles), colorbar)
        return fig


def _label_point(geom, view: shapely.Geometry | None = None) -> shapely.Point | None:
    """Where a name goes: far from the border of the largest part of ``geom`` (within ``view``)."""
    if geom is None or geom.is_empty:
        return None
    if view is not None:
        geom = shapely.intersection(geom, view)
        if geom.is_empty:
            return None
    polygons = [p for p in shapely.get_parts(geom) if p.geom_type == "Polygon" and p.area > 0]
    if not polygons:
        return None
    largest = max(polygons, key=lambda p: p.area)
    x0, y0, x1, y1 = largest.bounds
    try:
        return shapely.ops.polylabel(largest, tolerance=max(x1 - x0, y1 - y0) / 50.0)
    except Exception:  # noqa: BLE001 - degenerate polygons: the representative point is fine
        return largest.representative_point()


def _town(name: str) -> str:
    """'Territoire de Brest' → 'Brest' ('du Mans' → 'Le Mans'): neighbours' labels are short."""
    for prefix, restore in (("Territoire d'", ""), ("Territoire de ", ""), ("Territoire du ", "Le "),
                            ("Territoire des ", "Les ")):
        if name.startswith(prefix):
            return restore + name[len(prefix):]
    return name


def _hospital_points(hospitals: pl.DataFrame, zones: gpd.GeoDataFrame) -> list[tuple[dict, shapely.Point]]:
    """Each hospital at its zone's representative point; several in one zone on a small circle."""
    where = {str(c): g for c, g in zip(zones["zone_code"].astype(str), zones.geometry.values, strict=True)}
    out: list[tuple[dict, shapely.Point]] = []
    rows = [r for r in hospitals.iter_rows(named=True) if str(r.get("zone_code")) in where]
    by_zone: dict[str, list[dict]] = {}
    for r in rows:
        by_zone.setdefault(str(r["zone_code"]), []).append(r)
    for code, members in by_zone.items():
        poly = where[code]
        if poly is None or poly.is_empty:
            continue
        centre = poly.representative_point()
        radius = 0.2 * math.sqrt(poly.area) if len(members) > 1 else 0.0
        for k, r in enumerate(members):
            angle = 2 * math.pi * k / len(members)
            p = shapely.Point(centre.x + radius * math.cos(angle), centre.y + radius * math.sin(angle))
            out.append((r, p if poly.contains(p) else centre))
    return out


def territory_map(
    territories: gpd.GeoDataFrame,
    selected: int,
    hospitals: pl.DataFrame | None = None,
    zones: gpd.GeoDataFrame | None = None,
    meeting: bool = False,
    title: str | None = None,
) -> Figure:
    """The selected territory (blue, with its zones' borders when ``zones`` is given) among its
    neighbours (light grey, named), and the hospitals at their zone's representative point: red
    crosses for those with an emergency department, dark dots for the others (names written when
    the territory holds at most 12). ``territories``: territory_id, territory_name, geometry;
    ``hospitals``: name, zone_code, kind, has_emergency (placed only when ``zones`` is given:
    zone_code, territory_id, geometry). The title defaults to the territory's name."""
    with meeting_style(meeting):
        if territories is None or len(territories) == 0:
            return _no_data(title or "Territoire")
        ids = territories["territory_id"].to_numpy()
        chosen = territories[ids == selected]
        if len(chosen) == 0:
            return _no_data(title or "Territoire", [f"Territoire n° {selected} introuvable"])
        name = str(chosen["territory_name"].iloc[0]) if "territory_name" in chosen else f"Territoire n° {selected}"
        title = title or name
        geom = shapely.union_all(chosen.geometry.values)
        x0, y0, x1, y1 = geom.bounds
        size = max(x1 - x0, y1 - y0) or 1.0
        margin = 0.3 * size
        view = shapely.box(x0 - margin, y0 - margin, x1 + margin, y1 + margin)
        others = territories[(ids != selected) & territories.geometry.intersects(view).to_numpy()]
        if len(others):  # no blank margin beyond the last neighbours
            ox0, oy0, ox1, oy1 = others.total_bounds
            view = shapely.box(max(x0 - margin, min(ox0, x0)), max(y0 - margin, min(oy0, y0)),
                               min(x1 + margin, max(ox1, x1)), min(y1 + margin, max(oy1, y1)))
        else:
            view = shapely.box(x0, y0, x1, y1).buffer(0.03 * size, join_style="mitre")

        fig, ax = _map_figure(meeting)
        edge = 1.4 if meeting else 1.0
        if len(others):
            _draw_polygons(ax, others.geometry.values, facecolors=NEIGHBOUR_FILL, edgecolors=NEIGHBOUR_EDGE,
                           linewidths=edge)
        _draw_polygons(ax, [geom], zorder=2, facecolors=SELECTED_FILL, edgecolors="none")
        in_selected: set[str] = set()
        if zones is not None and len(zones):
            mine = zones[zones["territory_id"] == selected]
            in_selected = set(mine["zone_code"].astype(str))
            if len(mine):
                _draw_polygons(ax, mine.geometry.values, zorder=3, facecolors="none", edgecolors="white",
                               linewidths=0.9 if meeting else 0.6)
        _draw_polygons(ax, [geom], zorder=4, facecolors="none", edgecolors=OUTLINE, linewidths=4.0 if meeting else 2.6)

        for _, row in others.iterrows():
            p = _label_point(row.geometry, view)
            if p is not None and "territory_name" in others:
                ax.text(p.x, p.y, _wrap(_town(str(row["territory_name"])), 16), ha="center", va="center",
                        fontsize=_fontsize(0.85), color=TEXT_GREY, style="italic", path_effects=_halo(),
                        zorder=5, clip_on=True)

        side = None
        handles: list = [
            Patch(facecolor=SELECTED_FILL, edgecolor=OUTLINE, linewidth=2, label=_wrap(name, 40)),
            Patch(facecolor=NEIGHBOUR_FILL, edgecolor=NEIGHBOUR_EDGE, label="Territoires voisins"),
        ]
        if hospitals is not None and hospitals.height and zones is not None and len(zones):
            placed = [(r, p) for r, p in _hospital_points(hospitals, zones) if view.contains(p)]
            inside = [(r, p) for r, p in placed if str(r["zone_code"]) in in_selected]
            size_dot = 260 if meeting else 90
            for emergency in (False, True):
                pts = [(r, p) for r, p in placed if bool(r.get("has_emergency")) is emergency]
                if not pts:
                    continue
                xy = np.array([(p.x, p.y) for _, p in pts])
                alpha = np.array([1.0 if str(r["zone_code"]) in in_selected else 0.55 for r, _ in pts])
                if emergency:
                    ax.scatter(xy[:, 0], xy[:, 1], s=size_dot * 1.5, marker="P", color=EMERGENCY_COLOUR,
                               edgecolor="white", linewidth=1.2, alpha=alpha, zorder=6)
                else:
                    ax.scatter(xy[:, 0], xy[:, 1], s=size_dot, marker="o", color=HOSPITAL_COLOUR,
                               edgecolor="white", linewidth=1.2, alpha=alpha, zorder=6)
            if any(bool(r.get("has_emergency")) for r, _ in placed):
                handles.append(Line2D([], [], linestyle="", marker="P", markersize=math.sqrt(size_dot * 1.5),
                                      color=EMERGENCY_COLOUR, markeredgecolor="white",
                                      label="Établissement avec urgences"))
            if any(not bool(r.get("has_emergency")) for r, _ in placed):
                handles.append(Line2D([], [], linestyle="", marker="o", markersize=math.sqrt(size_dot),
                                      color=HOSPITAL_COLOUR, markeredgecolor="white",
                                      label="Établissement sans urgences"))
            if 0 < len(inside) <= MAX_NUMBERED:
                inside.sort(key=lambda rp: (-rp[1].y, rp[1].x))  # numbered from the north-west
                entries = []
                for k, (r, p) in enumerate(inside, start=1):
                    ax.annotate(str(k), (p.x, p.y), xytext=(7, 6) if meeting else (5, 4), textcoords="offset points",
                                fontsize=_fontsize(0.8), fontweight="bold", color="#111111",
                                path_effects=_halo(), zorder=7)
                    mark = " (urgences)" if bool(r.get("has_emergency")) else ""
                    entries.append(f"{k}. {_wrap(str(r.get('name') or '?') + mark, 34)}".replace("\n", "\n    "))
                side = "Établissements du territoire\n" + "\n".join(entries)
        vx0, vy0, vx1, vy1 = view.bounds
        ax.set_xlim(vx0, vx1)
        ax.set_ylim(vy0, vy1)
        _scale_bar(ax, view.bounds, territories.crs, inside=True)
        _layout_map(fig, ax, title, handles, min(len(handles), 2 if meeting else 4), side=side)
        return fig


# --------------------------------------------------------------------------------------------- bars


def strata_pyramid(levels: pl.DataFrame, title: str, meeting: bool = False) -> Figure:
    """The strata as a pyramid: one centred bar per stratum, the most severe (highest
    ``stratum_level``) on top, widths proportional to ``people``, light (level 1) to dark red;
    the French ``name`` on the left, the count on the right; a masked count has a thin hatched
    placeholder bar and the suppression symbol. ``levels``: stratum, stratum_level, name, people (e.g.
    ``strata_levels`` joined with the ``care_use`` rows of one unit and year). Each bar's ``gid``
    is its stratum."""
    with meeting_style(meeting):
        if _empty(levels):
            return _no_data(title)
        _require(levels, ["stratum", "stratum_level", "name", "people"], "strata_pyramid")
        rows = levels.sort("stratum_level", descending=True).to_dicts()
        n = len(rows)
        people = [None if _is_null(r["people"]) else float(r["people"]) for r in rows]
        top = max([p for p in people if p is not None] or [0.0])
        colours = _level_colours([int(r["stratum_level"]) for r in rows])
        height = max(4.0, 1.1 * n + 2.0) if meeting else max(3.0, 0.75 * n + 1.6)
        fig = _figure((13.33, max(7.5, height)) if meeting else (10.0, height))
        ax = fig.add_subplot()
        ax.set_axis_off()
        placeholder = 0.012
        y = np.arange(n)[::-1].astype(float)  # the first row (highest level) on top
        for yi, r, p in zip(y, rows, people, strict=True):
            if p is None:
                w = placeholder
                bar = ax.barh(yi, w, left=-w / 2, height=0.78, color=MASKED_FILL, hatch=MASKED_HATCH,
                              edgecolor=MASKED_HATCH_COLOUR, linewidth=0)
            else:
                w = max(p / top, 0.003) if top > 0 else placeholder
                bar = ax.barh(yi, w, left=-w / 2, height=0.78, color=colours[int(r["stratum_level"])],
                              edgecolor="white", linewidth=1.0)
            bar.patches[0].set_gid(str(r["stratum"]))
            if p is None:
                _masked_mark(ax, w / 2 + 0.015, yi, MASKED, _fontsize())
            else:
                ax.text(w / 2 + 0.025, yi, fr_int(p), ha="left", va="center", fontweight="bold", color="#111111")
            ax.text(-w / 2 - 0.025, yi, _wrap(str(r["name"]), 26 if meeting else 30), ha="right", va="center",
                    linespacing=1.05)
        ax.set_xlim(-1.05, 1.05)
        ax.set_ylim(-0.6, n - 0.4)
        notes = ["Largeur des barres proportionnelle au nombre de personnes"]
        if any(p is None for p in people):
            notes.append(MASKED_NOTE)
        _note(fig, notes)
        _title(fig, title)
        return fig


def _masked_mark(ax, x: float, y: float, text: str, fontsize: float, ha: str = "left") -> None:
    """The suppression symbol as a category annotation: in a small grey-edged box at the bar's base
    (``x``: the base, in data coordinates), never where a value would be (gid :data:`MASKED_GID`)."""
    ax.annotate(text, (x, y), xytext=(6 if ha == "left" else -6, 0), textcoords="offset points", ha=ha,
                va="center", color=TEXT_GREY, fontsize=fontsize, style="italic", gid=MASKED_GID,
                bbox={"boxstyle": "round,pad=0.12", "facecolor": "white", "edgecolor": MASKED_HATCH_COLOUR,
                      "linewidth": 0.8})


def _bar_value_text(ax, x: float | None, y: float, text: str, span: float, masked: bool, fontsize: float) -> None:
    if masked:
        _masked_mark(ax, 0.0, y, text, fontsize)
    elif x is not None:
        pad = span * 0.01
        ax.text(x + (pad if x >= 0 else -pad), y, text, ha="left" if x >= 0 else "right", va="center",
                fontsize=fontsize)


def _label_room(labels: Sequence[str]) -> float:
    """Inches a category needs on a bar chart's axis so that its (wrapped) tick labels do not touch."""
    lines = max((str(t).count("\n") + 1 for t in labels), default=1)
    return (lines * float(mpl.rcParams["ytick.labelsize"]) * 1.25 + 8) / 72


def _value_axis(ax, values: Sequence[float | None], value_label: str) -> None:
    numbers = [v for v in values if v is not None]
    hi = max(numbers + [0.0])
    lo = min(numbers + [0.0])
    span = (hi - lo) or 1.0
    ax.set_xlim(lo - (0.2 * span if lo < 0 else 0), hi + 0.2 * span)
    ax.xaxis.set_major_formatter(FR_TICKS)
    ax.xaxis.set_major_locator(MaxNLocator(nbins=6))
    ax.set_xlabel(_axis_title(value_label, 60 if _meeting_now() else 90))
    if not numbers:  # nothing but suppressed values: no scale to read
        ax.set_xticks([])
    ax.grid(axis="x")
    ax.set_axisbelow(True)
    ax.spines["left"].set_visible(True)
    ax.tick_params(axis="y", length=0)


def hbar(
    df: pl.DataFrame,
    category: str,
    value: str,
    title: str,
    value_label: str,
    formatter: Callable[[float | None], str] = fr_int,
    meeting: bool = False,
    masked_text: str = MASKED,
) -> Figure:
    """Horizontal bars, one per row of ``df`` in its order (the first on top), labelled with
    ``label(category value)`` and the value written by ``formatter`` at the bar's end; a null
    value has no bar and ``masked_text`` (the suppression symbol) at its base instead."""
    with meeting_style(meeting):
        if _empty(df):
            return _no_data(title)
        _require(df, [category, value], "hbar")
        cats = [_wrap(label(c), 34 if meeting else 40) for c in df[category].to_list()]
        vals = _floats(df[value])
        n = len(cats)
        per_bar = max(0.5 if meeting else 0.36, _label_room(cats))
        fig = _figure((13.33, max(7.5, per_bar * n + 2.5)) if meeting else (10.0, max(4.0, per_bar * n + 1.8)))
        ax = fig.add_subplot()
        y = np.arange(n)
        ax.barh(y, [np.nan if v is None else v for v in vals], height=0.7, color=SERIES_COLOURS[0])
        ax.set_yticks(y, cats)
        ax.set_ylim(n - 0.5, -0.5)  # the first row on top
        _value_axis(ax, vals, value_label)
        lo, hi = ax.get_xlim()
        for yi, v in zip(y, vals, strict=True):
            _bar_value_text(ax, v, yi, masked_text if v is None else formatter(v), hi - lo, v is None,
                            _fontsize(0.9))
        _note(fig, [MASKED_NOTE] if any(v is None for v in vals) and masked_text == MASKED else [])
        _title(fig, title)
        return fig


def grouped_bars(
    df: pl.DataFrame,
    category: str,
    series: str,
    value: str,
    title: str,
    value_label: str,
    meeting: bool = False,
    formatter: Callable[[float | None], str] = _fr_short,
    masked_text: str = MASKED,
) -> Figure:
    """Horizontal grouped bars: one group per ``category`` value (order of first appearance, the
    first on top), one bar per ``series`` value within it (one colour each, legend below), e.g.
    care use per person by stratum and measure. Categories and series are shown through
    :func:`~respop.boards.labels.label`; values are written at the bars' ends by ``formatter``
    (2 decimals below 1, 1 below 100, none above); a null value has no bar and the suppression symbol at its base
    (once for a group whose values are all null)."""
    with meeting_style(meeting):
        if _empty(df):
            return _no_data(title)
        _require(df, [category, series, value], "grouped_bars")
        cats = list(dict.fromkeys(df[category].to_list()))
        sers = list(dict.fromkeys(df[series].to_list()))
        lookup = {(c, s): v for c, s, v in zip(df[category].to_list(), df[series].to_list(), _floats(df[value]),
                                               strict=True)}
        k = len(sers)
        cat_labels = [_wrap(label(c), 28 if meeting else 34) for c in cats]
        per_group = max((0.3 if meeting else 0.22) * k + 0.35, _label_room(cat_labels))
        fig = _figure((13.33, max(7.5, per_group * len(cats) + 2.8)) if meeting
                      else (10.0, max(4.0, per_group * len(cats) + 2.0)))
        ax = fig.add_subplot()
        height = 0.8 / k
        all_vals = [lookup.get((c, s)) for c in cats for s in sers]
        _value_axis(ax, all_vals, value_label)
        lo, hi = ax.get_xlim()
        any_masked = False
        size = _fontsize(0.8 if k > 2 else 0.9)
        # a group whose values are all suppressed: one symbol for the group, not one per bar
        all_masked = {c for c in cats if all(lookup.get((c, s)) is None for s in sers if (c, s) in lookup)}
        for i, c in enumerate(cats):
            if c in all_masked:
                any_masked = True
                _masked_mark(ax, 0.0, float(i), masked_text, size)
        for j, s in enumerate(sers):
            ys = np.arange(len(cats)) - 0.4 + height * (j + 0.5)
            vals = [lookup.get((c, s)) for c in cats]
            ax.barh(ys, [np.nan if v is None else v for v in vals], height=height * 0.92,
                    color=SERIES_COLOURS[j % len(SERIES_COLOURS)], label=label(s),
                    hatch=SERIES_HATCHES[j % len(SERIES_HATCHES)], hatchcolor="white", linewidth=0)
            for yi, c, v in zip(ys, cats, vals, strict=True):
                if (c, s) not in lookup or c in all_masked:
                    continue
                any_masked |= v is None
                _bar_value_text(ax, v, yi, masked_text if v is None else formatter(v), hi - lo, v is None, size)
        ax.set_yticks(np.arange(len(cats)), cat_labels)
        ax.set_ylim(len(cats) - 0.5, -0.5)
        if k > 1 or sers != [None]:
            _legend_top(fig, ax, [label(x) for x in sers])
        _note(fig, [MASKED_NOTE] if any_masked and masked_text == MASKED else [])
        _title(fig, title)
        return fig


# --------------------------------------------------------------------------------------------- lines


def _axis_title(text: str, width: int) -> str:
    """An axis title wrapped to ``width`` characters, its unit in brackets on a line of its own
    when it does not fit: "Prévalence standardisée\n(pour 100 000 hab.)"."""
    if len(text) <= width:
        return text
    head, sep, unit = text.partition(" (")
    if sep and len(head) <= width and len(unit) + 1 <= width:
        return f"{head}\n({unit}"
    return _wrap(text, width)


def _runs(years: Sequence[int]) -> list[tuple[int, int]]:
    """Consecutive years grouped: [2019, 2020, 2023] → [(2019, 2020), (2023, 2023)]."""
    out: list[tuple[int, int]] = []
    for y in sorted(set(years)):
        if out and y == out[-1][1] + 1:
            out[-1] = (out[-1][0], y)
        else:
            out.append((y, y))
    return out


INCOMPLETE_LABEL = "Historique incomplet"
"""The default label of the years whose look-back is incomplete (see :func:`trend`)."""


def trend(df: pl.DataFrame, title: str, value_label: str, meeting: bool = False,
          incomplete_label: str | None = None) -> Figure:
    """One line per ``series`` over the years (order of first appearance), with its confidence
    band where ``low`` and ``high`` are both present; a null value leaves a gap (masked). ``df``:
    year, series, value, and optionally low, high and ``complete`` (Boolean: the year's look-back
    is complete; absent or null = complete). The value axis starts at 0 when every value is
    positive; year ticks are whole years.

    Years whose look-back is incomplete are drawn apart, so that nobody reads their rise as a
    trend: hollow markers (their interval as a thin bar), never joined to the line of the complete
    years, on a grey band labelled on the figure with ``incomplete_label`` (default
    :data:`INCOMPLETE_LABEL`)."""
    with meeting_style(meeting):
        if _empty(df):
            return _no_data(title)
        _require(df, ["year", "series", "value"], "trend")
        incomplete_label = incomplete_label or INCOMPLETE_LABEL
        if "complete" in df.columns:
            df = df.with_columns(pl.col("complete").cast(pl.Boolean, strict=False).fill_null(True))
        else:
            df = df.with_columns(pl.lit(True).alias("complete"))
        fig = _figure()
        ax = fig.add_subplot()
        has_band = "low" in df.columns and "high" in df.columns
        sers = list(dict.fromkeys(df["series"].to_list()))
        any_masked = False
        all_values: list[float] = []
        lw = float(mpl.rcParams["lines.linewidth"])

        def column(part: pl.DataFrame, name: str) -> np.ndarray:
            return np.array([np.nan if v is None else v for v in _floats(part[name])], dtype=float)

        for j, s in enumerate(sers):
            part = df.filter(pl.col("series").is_null() if s is None else pl.col("series") == s).sort("year")
            years = np.array(_floats(part["year"]), dtype=float)
            vals = column(part, "value")
            complete = np.array(part["complete"].to_list(), dtype=bool)
            any_masked |= bool(np.isnan(vals).any())
            colour = SERIES_COLOURS[j % len(SERIES_COLOURS)]
            marker = SERIES_MARKERS[j % len(SERIES_MARKERS)]
            low = column(part, "low") if has_band else np.full(len(years), np.nan)
            high = column(part, "high") if has_band else np.full(len(years), np.nan)
            ok = ~np.isnan(low) & ~np.isnan(high)
            band = ok & complete
            if band.any():
                ax.fill_between(years, np.where(band, low, np.nan), np.where(band, high, np.nan), where=band,
                                color=colour, alpha=0.18, linewidth=0, interpolate=False)
            all_values += list(low[ok]) + list(high[ok])
            # the complete years: one line (gaps where a value is masked or a year incomplete); a
            # series without a complete year is named in the legend by its hollow marker
            only_apart = not (complete & ~np.isnan(vals)).any()
            ax.plot(years, np.where(complete, vals, np.nan), marker=marker, color=colour,
                    label="_nolegend_" if only_apart else label(s))
            apart = ~complete & ~np.isnan(vals)
            if apart.any():
                whisker = apart & ok
                if whisker.any():
                    ax.errorbar(years[whisker], vals[whisker],
                                yerr=[vals[whisker] - low[whisker], high[whisker] - vals[whisker]],
                                fmt="none", ecolor=colour, elinewidth=lw * 0.4, capsize=lw * 1.5, alpha=0.6)
                ax.plot(years[apart], vals[apart], linestyle="none", marker=marker, markerfacecolor="white",
                        markeredgecolor=colour, markeredgewidth=lw * 0.6, color=colour,
                        label=label(s) if only_apart else "_nolegend_", zorder=3)
            all_values += list(vals[~np.isnan(vals)])
        years_all = sorted({int(y) for y in _floats(df["year"]) if y is not None})
        if len(years_all) <= 15:
            ax.xaxis.set_major_locator(FixedLocator(years_all))
        else:
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.xaxis.set_major_formatter(YEAR_TICKS)
        if years_all:
            ax.set_xlim(years_all[0] - 0.5, years_all[-1] + 0.5)
        ax.yaxis.set_major_formatter(FR_TICKS)
        ax.set_xlabel("Année")
        ax.set_ylabel(_axis_title(value_label, 34 if meeting else 50))
        ax.grid(axis="y")
        ax.set_axisbelow(True)

        incomplete_years = sorted({int(y) for y, c in zip(_floats(df["year"]), df["complete"].to_list(), strict=True)
                                   if y is not None and not c})
        handles, labels_ = ax.get_legend_handles_labels()
        spans = []
        for a, b in _runs(incomplete_years):
            spans.append((a - 0.5, b + 0.5))
            ax.axvspan(a - 0.5, b + 0.5, color=INCOMPLETE_FILL, zorder=0, linewidth=0)
        if spans:
            handles.append(Line2D([], [], linestyle="none", marker="o", markerfacecolor="white",
                                  markeredgecolor=TEXT_GREY, markeredgewidth=lw * 0.6,
                                  markersize=float(mpl.rcParams["lines.markersize"])))
            labels_.append("Année non comparable (recul incomplet)")
        top = max(all_values) if all_values else 1.0
        bottom = 0.0 if all_values and min(all_values) >= 0 else (min(all_values) if all_values else 0.0)
        span_y = (top - bottom) or abs(top) or 1.0
        ax.set_ylim(bottom, top + 0.08 * span_y)
        if len(sers) > 1 or sers[0] not in (None, "") or spans:
            _legend_top(fig, ax, labels_, handles)
        if spans:
            _label_spans(fig, ax, spans, incomplete_label, bottom, top)
        _note(fig, [LINE_MASKED_NOTE] if any_masked else [])
        _title(fig, title)
        return fig


def _label_spans(fig: Figure, ax, spans: list[tuple[float, float]], text: str, bottom: float, top: float) -> None:
    """``text`` at the top of each grey band (x from, x to), wrapped to the band's width; the
    value axis is raised so that the text sits above the data."""
    fig.canvas.draw()  # the axes' size, once the layout is done
    size = _fontsize(0.8)
    box = ax.get_window_extent()
    x0, x1 = ax.get_xlim()
    px_per_year = box.width / (x1 - x0)
    height_px = 0.0
    placed = []
    for a, b in spans:
        width_px = (b - a) * px_per_year * 0.92
        chars = max(8, int(width_px / (size * 0.56 * fig.dpi / 72)))
        wrapped = _wrap(text, chars)
        placed.append((a, b, wrapped))
        lines = wrapped.count("\n") + 1
        height_px = max(height_px, lines * size * 1.25 * fig.dpi / 72)
    # the data take the lower part of the axes, the label the upper part
    share = min(0.6, (height_px + 0.04 * box.height) / box.height)
    span_y = (top - bottom) or 1.0
    ax.set_ylim(bottom, bottom + (span_y * 1.04) / (1 - share))
    for a, b, wrapped in placed:
        ax.annotate(wrapped, ((a + b) / 2, 1.0), xycoords=("data", "axes fraction"), xytext=(0, -4),
                    textcoords="offset points", ha="center", va="top", fontsize=size, color=TEXT_GREY,
                    linespacing=1.1, fontweight="bold")


def survival_xlabel(start_year: int | Sequence[int] | None = None) -> str:
    """The survival figure's x-axis title: months since the start of follow-up, which is 1 January
    of the year after the profile's (``survival_curves.time``: days since that day; every profile
    year of the run is pooled). ``start_year``: the year of that 1 January, or the first and last
    such years when several profile years are pooled."""
    if start_year is None:
        return "Mois de suivi depuis le 1er janvier suivant l'année du profil"
    if isinstance(start_year, int):
        return f"Mois de suivi depuis le 1er janvier {start_year}"
    years = sorted({int(y) for y in start_year})
    if len(years) == 1:
        return f"Mois de suivi depuis le 1er janvier {years[0]}"
    return f"Mois de suivi depuis le 1er janvier suivant l'année du profil ({years[0]} à {years[-1]})"


def survival(curves: pl.DataFrame, names: dict[str, str], title: str, meeting: bool = False,
             start_year: int | Sequence[int] | None = None) -> Figure:
    """Kaplan–Meier step curves, one per stratum (legend on the right, from the most severe), with
    their shaded confidence bands; each stratum has its colour and its line style. x in months of
    follow-up (``time`` in days / 30.44; titled by :func:`survival_xlabel` with ``start_year``),
    y the share still without rehospitalisation or death, in percent. ``curves``: stratum,
    stratum_level, time, survival, lower, upper (``survival_curves`` rows of one disease); a curve
    that does not start at time 0 is started at 100 %. ``names``: stratum → French name."""
    with meeting_style(meeting):
        if _empty(curves):
            return _no_data(title)
        _require(curves, ["stratum", "stratum_level", "time", "survival"], "survival")
        data = curves.filter(pl.col("survival").is_not_null() & pl.col("time").is_not_null())
        if "survival" in data.columns:
            data = data.filter(~pl.col("survival").cast(pl.Float64).is_nan())
        if data.height == 0:
            return _no_data(title)
        strata = (data.group_by("stratum").agg(pl.col("stratum_level").max())
                  .sort("stratum_level", descending=True).to_dicts())
        colours = _level_colours([int(s["stratum_level"]) for s in strata], lightest=0.74)
        fig = _figure()
        ax = fig.add_subplot()
        has_band = "lower" in data.columns and "upper" in data.columns
        t_max = 0.0
        for rank, s in enumerate(strata):
            part = data.filter(pl.col("stratum") == s["stratum"]).sort("time")
            t = np.array(_floats(part["time"]), dtype=float) / MONTH_DAYS
            surv = np.array(_floats(part["survival"]), dtype=float)
            low = np.array([np.nan if v is None else v for v in _floats(part["lower"])], dtype=float) \
                if has_band else np.full(len(t), np.nan)
            high = np.array([np.nan if v is None else v for v in _floats(part["upper"])], dtype=float) \
                if has_band else np.full(len(t), np.nan)
            if t[0] > 0:
                t, surv = np.r_[0.0, t], np.r_[1.0, surv]
                low, high = np.r_[1.0, low], np.r_[1.0, high]
            colour = colours[int(s["stratum_level"])]
            ok = ~np.isnan(low) & ~np.isnan(high)
            if ok.any():
                ax.fill_between(t, low, high, where=ok, step="post", color=colour, alpha=0.2, linewidth=0)
            ax.step(t, surv, where="post", color=colour, linestyle=STRATA_LINESTYLES[rank % len(STRATA_LINESTYLES)],
                    label=_wrap(names.get(s["stratum"], label(s["stratum"])), 22 if meeting else 28))
            t_max = max(t_max, float(t[-1]))
        ax.set_ylim(0, 1.02)
        ax.set_xlim(0, max(t_max, 1.0) * 1.02)
        ax.yaxis.set_major_locator(MultipleLocator(0.2))
        ax.yaxis.set_major_formatter(PERCENT_TICKS)
        ax.xaxis.set_major_locator(MultipleLocator(3 if t_max <= 24 else 6 if t_max <= 60 else 12))
        ax.xaxis.set_major_formatter(FR_TICKS)
        ax.set_xlabel(_wrap(survival_xlabel(start_year), 60 if meeting else 90))
        ax.set_ylabel("Sans réhospitalisation ni décès (%)")
        ax.grid(axis="y")
        ax.set_axisbelow(True)
        ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0, title="Profil",
                  alignment="left", handlelength=3.0, labelspacing=0.9)
        _title(fig, title)
        return fig


# -------------------------------------------------------------------------------------------- sankey


def _band(x0: float, x1: float, top0: float, bot0: float, top1: float, bot1: float) -> Path:
    """A band from [bot0, top0] at x0 to [bot1, top1] at x1, its edges cubic Bézier S-curves
    (vertices 0 and 7: the left end, top and bottom; 3 and 4: the right end)."""
    xm = (x0 + x1) / 2
    vertices = [
        (x0, top0), (xm, top0), (xm, top1), (x1, top1),
        (x1, bot1), (xm, bot1), (xm, bot0), (x0, bot0),
        (x0, top0),
    ]
    codes = [Path.MOVETO, Path.CURVE4, Path.CURVE4, Path.CURVE4,
             Path.LINETO, Path.CURVE4, Path.CURVE4, Path.CURVE4,
             Path.CLOSEPOLY]
    return Path(vertices, codes)


def _spread(centres: list[float], heights: list[float], pad: float, floor: float, ceiling: float) -> list[float]:
    """Centres of labels (top to bottom, descending) of the given heights, ``pad`` apart at least,
    as near as possible to ``centres``, between ``floor`` and ``ceiling`` when they fit: pushed
    down where they would overlap (from the ceiling), then pushed back up where the first pass took
    the lowest one below the floor."""
    out: list[float] = []
    for i, c in enumerate(centres):
        highest = ceiling - heights[i] / 2 if i == 0 else out[-1] - (heights[i - 1] + heights[i]) / 2 - pad
        out.append(min(c, highest))
    for i in range(len(out) - 1, -1, -1):
        lowest = floor + heights[i] / 2 if i == len(out) - 1 else out[i + 1] + (heights[i] + heights[i + 1]) / 2 + pad
        out[i] = max(out[i], lowest)
    return out


def sankey_nodes(transitions: pl.DataFrame, order: Sequence[str] = ()) -> dict:
    """What :func:`sankey` draws, from the ``transitions`` rows of one disease and one year
    (from_stratum, to_stratum, count; ``to_stratum`` "all" is the row total, a null count is
    suppressed):

    - ``left``: stratum of N → its block, **the row total** ('all') of the transitions table;
    - ``flows``: (from, to, count) of the bands: every published flow above 0, and for each row
      with suppressed flows **one** band (from, :data:`SECRET_NODE`, total − published flows of the
      row), a difference the published table already gives away (a flow without a row is 0, as
      in the table);
    - ``right``: stratum, "deces", "non_revu" or :data:`SECRET_NODE` of N + 1 → its block, the sum
      of the flows drawn into it (the column sum of the published flows of the rows drawn);
    - ``hidden``: rows whose total itself is suppressed: no block, no band (the figure says so);
    - ``unsized``: rows with suppressed flows and no total row: their published flows only.

    ``order`` (stratum codes, least severe first) only orders the result's keys."""
    empty = {"left": {}, "right": {}, "flows": [], "hidden": [], "unsized": []}
    if _empty(transitions):
        return empty
    _require(transitions, ["from_stratum", "to_stratum", "count"], "sankey")
    totals: dict[str, float | None] = {}
    cells: dict[str, list[tuple[str, float | None]]] = {}
    for f, t, c in zip(transitions["from_stratum"].to_list(), transitions["to_stratum"].to_list(),
                       _floats(transitions["count"]), strict=True):
        f, t = str(f), str(t)
        if t == "all":
            totals[f] = c
        else:
            cells.setdefault(f, []).append((t, c))
    rank = {c: i for i, c in enumerate(reversed(list(order)))}
    sources = sorted(dict.fromkeys([*totals, *cells]), key=lambda c: rank.get(c, len(rank)))
    flows: list[tuple[str, str, float]] = []
    hidden, unsized = [], []
    for f in sources:
        if f in totals and totals[f] is None:
            hidden.append(f)
            continue
        row = cells.get(f, [])
        known = [(t, c) for t, c in row if c is not None and c > 0]
        flows += [(f, t, c) for t, c in known]
        published = sum(c for _, c in known)
        if not any(c is None for _, c in row):
            continue  # nothing suppressed (a cell without a row is 0, as in the table)
        if f in totals:
            rest = float(totals[f]) - published  # type: ignore[arg-type]
            if rest > 1e-9:
                flows.append((f, SECRET_NODE, rest))
        else:
            unsized.append(f)
    left: dict[str, float] = {}
    right: dict[str, float] = {}
    for f, t, c in flows:
        left[f] = left.get(f, 0.0) + c
        right[t] = right.get(t, 0.0) + c
    return {"left": left, "right": right, "flows": flows, "hidden": hidden, "unsized": unsized}


def sankey(
    transitions: pl.DataFrame,
    order: list[str],
    names: dict[str, str],
    title: str,
    meeting: bool = False,
) -> Figure:
    """An alluvial diagram of the strata from year N (left) to year N + 1 (right), the most severe
    on top, "Décès" (near black), "Non revu" (grey) then the suppressed flows (hatched grey, "s")
    at the bottom on the right. Block heights and band widths are proportional to the counts (every
    band to the same scale), as :func:`sankey_nodes` gives them: each block on the left is its row
    total in the transitions table, and the suppressed flows of a row are **one** grey band to the
    node :data:`SECRET_NODE`, so that the blocks equal the table beside the figure; a row whose
    total is suppressed is not drawn (a note says so). ``transitions``: from_stratum, to_stratum,
    count (rows of one disease and one year, with the 'all' totals; with a ``year`` column the
    columns are headed N and N + 1). ``order``: stratum codes from the least to the most severe;
    ``names``: code → French name. Bands' ``gid`` are "flow:<from>-><to>", blocks' "from:<code>"
    and "to:<code>"."""
    with meeting_style(meeting):
        if _empty(transitions):
            return _no_data(title)
        _require(transitions, ["from_stratum", "to_stratum", "count"], "sankey")
        nodes = sankey_nodes(transitions, order)
        flows = nodes["flows"]

        def name_of(code: str) -> str:
            if code == SECRET_NODE:
                return SECRET_NODE_LABEL
            return names.get(code) or label(code)

        notes = []
        if any(t == SECRET_NODE for _, t, _ in flows):
            notes.append(FLOWS_MASKED_NOTE)
        if nodes["hidden"]:
            which = ", ".join(_quoted(name_of(c)) for c in nodes["hidden"])
            plural = len(nodes["hidden"]) > 1
            notes.append(f"Non représenté{'s' if plural else ''} (effectif soumis au secret statistique) : {which}")
        if nodes["unsized"]:
            notes.append(f"Flux soumis au secret statistique non représentés ({_quoted(MASKED)})")
        if not flows:
            return _no_data(title, notes)

        # nodes, most severe first; codes not in ``order`` after the known ones, terminal targets last
        severity = list(reversed(order))
        ends = [*TERMINAL_TARGETS, SECRET_NODE]
        extra = [c for c in dict.fromkeys([f for f, _, _ in flows] + [t for _, t, _ in flows])
                 if c not in order and c not in ends]
        stratum_order = severity + extra
        left = [c for c in stratum_order if c in nodes["left"]]
        right = [c for c in stratum_order + ends if c in nodes["right"]]
        out_total, in_total = nodes["left"], nodes["right"]
        total = sum(out_total[c] for c in left)

        ranked = list(order) + extra
        palette = dict(zip(ranked, strata_colours(len(ranked)), strict=True))
        palette.update({"deces": DEATH_COLOUR, "non_revu": NOT_SEEN_COLOUR, SECRET_NODE: MASKED_FILL})

        gap = 0.025
        scale = (1.0 - gap * (max(len(left), len(right)) - 1)) / total

        def stack(codes: list[str], totals: dict[str, float]) -> dict[str, tuple[float, float]]:
            used = sum(totals[c] for c in codes) * scale + gap * (len(codes) - 1)
            y = 1.0 - (1.0 - used) / 2
            out = {}
            for c in codes:
                h = totals[c] * scale
                out[c] = (y, y - h)
                y -= h + gap
            return out

        left_pos, right_pos = stack(left, out_total), stack(right, in_total)
        fig = _figure((13.33, 7.5) if meeting else (10.0, 7.0))
        ax = fig.add_subplot()
        ax.set_axis_off()
        block_w = 0.035
        xl, xr = 0.28, 0.66
        for c in left:
            top, bot = left_pos[c]
            ax.add_patch(Rectangle((xl - block_w, bot), block_w, top - bot, color=palette[c],
                                   gid=f"from:{c}", linewidth=0))
        for c in right:
            top, bot = right_pos[c]
            secret = c == SECRET_NODE
            ax.add_patch(Rectangle((xr, bot), block_w, top - bot, facecolor=palette[c], gid=f"to:{c}",
                                   linewidth=0, hatch=MASKED_HATCH if secret else None,
                                   edgecolor=MASKED_HATCH_COLOUR if secret else "none"))
        out_cursor = {c: left_pos[c][0] for c in left}
        in_cursor = {c: right_pos[c][0] for c in right}
        for f in left:
            for t in right:
                for ff, tt, v in flows:
                    if ff != f or tt != t:
                        continue
                    h = v * scale
                    top0, top1 = out_cursor[f], in_cursor[t]
                    path = _band(xl, xr, top0, top0 - h, top1, top1 - h)
                    if t == SECRET_NODE:
                        ax.add_patch(PathPatch(path, facecolor=MASKED_FILL, edgecolor=MASKED_HATCH_COLOUR,
                                               hatch=MASKED_HATCH, linewidth=0, alpha=0.8, gid=f"flow:{f}->{t}"))
                    else:
                        ax.add_patch(PathPatch(path, facecolor=palette[f], edgecolor="none", alpha=0.5,
                                               gid=f"flow:{f}->{t}"))
                    out_cursor[f] -= h
                    in_cursor[t] -= h

        # title and notes first: the labels are placed on the axes' final size
        notes.append("Largeur des flux proportionnelle au nombre de personnes")
        _note(fig, notes)
        _title(fig, title)

        # labels: name and count beside each block, spread so that they do not overlap (measured
        # on the axes' final size; smaller type when they do not fit the height)
        year = None
        if "year" in transitions.columns:
            years = transitions["year"].drop_nulls().unique().to_list()
            year = int(years[0]) if len(years) == 1 else None
        heads = (str(year), str(year + 1)) if year is not None else ("Année N", "Année N + 1")
        head_arts = [ax.text(xl - block_w / 2, 1.0, heads[0], ha="center", va="bottom", fontweight="bold"),
                     ax.text(xr + block_w / 2, 1.0, heads[1], ha="center", va="bottom", fontweight="bold")]
        for a in head_arts:
            a.set_in_layout(False)
        low = min(min(p[1] for p in left_pos.values()), min(p[1] for p in right_pos.values()), 0)
        ax.set_xlim(0, 1)
        fig.canvas.draw()  # the axes' size, once the layout is done (the labels are not part of it)
        renderer = fig.canvas.get_renderer()
        box = ax.get_window_extent(renderer)
        head_px = max(a.get_window_extent(renderer).height for a in head_arts)
        margin = 0.02
        # the blocks span [low, 1]; the heads sit above them: limits such that they fit exactly
        top_limit = 1.0 + (1.0 - low + 2 * margin) * (head_px * 1.4 / box.height) / (1 - head_px * 1.4 / box.height)
        ax.set_ylim(low - margin, top_limit + margin)
        for a in head_arts:
            a.set_y(1.0 + (top_limit - 1.0) * 0.25)
        per_unit = box.height / (top_limit - low + 2 * margin)
        sides_spec = (("left", left, left_pos, xl - block_w - 0.015, "right", xl - block_w - 0.015),
                      ("right", right, right_pos, xr + block_w + 0.015, "left", 1.0 - (xr + block_w + 0.015)))
        sides = []
        for side, codes, pos, x, ha, room in sides_spec:
            totals = out_total if side == "left" else in_total
            centres = [(pos[c][0] + pos[c][1]) / 2 for c in codes]
            arts: list = []
            for scale_type in (0.9, 0.8, 0.72, 0.65):
                for a in arts:
                    a.remove()
                size = _fontsize(scale_type)
                chars = max(12, int(room * box.width / (size * 0.58 * fig.dpi / 72)))
                arts = [ax.text(x, yc, f"{_wrap(name_of(c), chars)}\n{fr_int(totals[c])}", ha=ha, va="center",
                                linespacing=1.05, fontsize=size,
                                color=TEXT_GREY if c == SECRET_NODE else "#111111",
                                style="italic" if c == SECRET_NODE else "normal")
                        for c, yc in zip(codes, centres, strict=True)]
                heights = [a.get_window_extent(renderer).height / per_unit for a in arts]
                pad = 0.2 * size * fig.dpi / 72 / per_unit
                if sum(heights) + pad * (len(arts) - 1) <= 1.0 - low + margin:
                    break
            spread = _spread(centres, heights, pad, low - margin, 1.0)
            for a, y in zip(arts, spread, strict=True):
                a.set_y(y)
                a.set_in_layout(False)
            sides.append((x, ha, centres, arts))
        for x, ha, centres, arts in sides:  # a short leader from a moved label to its block
            for a, yc in zip(arts, centres, strict=True):
                if abs(a.get_position()[1] - yc) > 1e-6:
                    x_edge = x + (0.008 if ha == "right" else -0.008)
                    ax.plot([x_edge, x_edge + (0.007 if ha == "right" else -0.007)], [a.get_position()[1], yc],
                            color=TEXT_GREY, linewidth=0.8)
        return fig


# ----------------------------------------------------------------------------------------- evaluation

START_LABEL = "Début de l'expérimentation"
"""The label of the vertical line that marks a pilot's start on the evaluation's figures."""


def _start_line(ax, x: float, text: str) -> None:
    """A dashed vertical line at ``x`` with ``text`` written along it, at the top of the axes."""
    ax.axvline(x, color=TEXT_GREY, linestyle=(0, (5, 3)), linewidth=float(mpl.rcParams["lines.linewidth"]) * 0.5, zorder=1)
    ax.annotate(text, (x, 1.0), xycoords=("data", "axes fraction"), xytext=(4, -4), textcoords="offset points",
                ha="left", va="top", fontsize=_fontsize(0.8), color=TEXT_GREY)


def event_study(df: pl.DataFrame, title: str, value_label: str = "Écart relatif aux territoires de comparaison (%)",
                meeting: bool = False, start_label: str = START_LABEL) -> Figure:
    """The effect by year since the start (``event_time``: year − start year; −1 is the reference,
    0 by construction) with its confidence band and interval bars, the 0 line, and the start
    marked by a dashed line between −1 and 0. ``df``: event_time, effect, ci_lower, ci_upper
    (relative effects: −0.12 is drawn −12 %). A masked (null) effect leaves a gap."""
    with meeting_style(meeting):
        if _empty(df):
            return _no_data(title)
        _require(df, ["event_time", "effect", "ci_lower", "ci_upper"], "event_study")
        df = df.sort("event_time")
        x = np.array(_floats(df["event_time"]), dtype=float)

        def col(name: str) -> np.ndarray:
            return np.array([np.nan if v is None else v for v in _floats(df[name])], dtype=float)

        effect, low, high = col("effect"), col("ci_lower"), col("ci_upper")
        if np.isnan(effect).all():
            return _no_data(title, [LINE_MASKED_NOTE])
        fig = _figure()
        ax = fig.add_subplot()
        colour = SERIES_COLOURS[0]
        ok = ~np.isnan(low) & ~np.isnan(high)
        if ok.any():
            ax.fill_between(x, np.where(ok, low, np.nan), np.where(ok, high, np.nan), color=colour, alpha=0.18,
                            linewidth=0, label="Intervalle de confiance")
            shown = ok & ~np.isnan(effect)
            ax.errorbar(x[shown], effect[shown], yerr=[effect[shown] - low[shown], high[shown] - effect[shown]],
                        fmt="none", ecolor=colour, elinewidth=float(mpl.rcParams["lines.linewidth"]) * 0.5, capsize=4)
        ax.plot(x, effect, marker=SERIES_MARKERS[0], color=colour, label="Écart estimé")
        ax.axhline(0.0, color=OUTLINE, linewidth=float(mpl.rcParams["axes.linewidth"]) * 1.2, zorder=1)
        values = [v for v in np.r_[effect, low, high] if not np.isnan(v)] + [0.0]
        lo, hi = min(values), max(values)
        pad = 0.1 * ((hi - lo) or 0.1)
        ax.set_ylim(lo - pad, hi + pad + 0.18 * ((hi - lo) or 0.1))  # room for the start's label
        ax.set_xlim(x.min() - 0.5, x.max() + 0.5)
        ax.xaxis.set_major_locator(FixedLocator(list(x)))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _p: f"{int(round(v)):+d}".replace("-", "\u2212") if round(v) else "0"))
        ax.yaxis.set_major_formatter(PERCENT_TICKS)
        ax.set_xlabel("Années depuis le début (0 : année du début ; −1 : année de référence)")
        ax.set_ylabel(_axis_title(value_label, 34 if meeting else 50))
        ax.grid(axis="y")
        ax.set_axisbelow(True)
        _start_line(ax, -0.5, start_label)
        _legend_top(fig, ax, [h.get_label() for h in ax.get_legend_handles_labels()[0]])
        _note(fig, [LINE_MASKED_NOTE] if np.isnan(effect).any() else [])
        _title(fig, title)
        return fig


def pilot_vs_synthetic(df: pl.DataFrame, title: str, value_label: str, start_year: int | None, meeting: bool = False,
                       names: tuple[str, str] = ("Territoire pilote", "Contrôle synthétique"),
                       start_label: str = START_LABEL) -> Figure:
    """The pilot's observed trajectory and its synthetic control's over the years (``df``: year,
    observed, synthetic), the start marked by a dashed line before ``start_year``. The pilot is a
    solid line with round markers, the synthetic control a dashed line with square markers (told
    apart without colour). A masked (null) point leaves a gap."""
    with meeting_style(meeting):
        if _empty(df):
            return _no_data(title)
        _require(df, ["year", "observed", "synthetic"], "pilot_vs_synthetic")
        df = df.sort("year")
        years = np.array(_floats(df["year"]), dtype=float)
        series = [np.array([np.nan if v is None else v for v in _floats(df[c])], dtype=float) for c in ("observed", "synthetic")]
        if all(np.isnan(s).all() for s in series):
            return _no_data(title, [LINE_MASKED_NOTE])
        fig = _figure()
        ax = fig.add_subplot()
        for j, (values, name, style) in enumerate(zip(series, names, ("solid", (0, (5, 2))), strict=True)):
            ax.plot(years, values, marker=SERIES_MARKERS[j], color=SERIES_COLOURS[j], linestyle=style, label=name)
        values = [v for s in series for v in s if not np.isnan(v)]
        lo, hi = min(values), max(values)
        span = (hi - lo) or abs(hi) or 1.0
        ax.set_ylim(min(0.0, lo) if lo >= 0 and lo < 0.3 * hi else lo - 0.1 * span, hi + 0.3 * span)
        ax.set_xlim(years.min() - 0.5, years.max() + 0.5)
        ax.xaxis.set_major_locator(FixedLocator(list(years)))
        ax.xaxis.set_major_formatter(YEAR_TICKS)
        ax.yaxis.set_major_formatter(FR_TICKS)
        ax.set_xlabel("Année")
        ax.set_ylabel(_axis_title(value_label, 34 if meeting else 50))
        ax.grid(axis="y")
        ax.set_axisbelow(True)
        if start_year is not None:
            _start_line(ax, start_year - 0.5, start_label)
        _legend_top(fig, ax, list(names))
        _note(fig, [LINE_MASKED_NOTE] if any(np.isnan(s).any() for s in series) else [])
        _title(fig, title)
        return fig
