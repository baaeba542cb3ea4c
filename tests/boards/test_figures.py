"""The boards' figures and French formats: every figure on small hand-made store rows (masked
values, empty frames, meeting mode) is a Figure that saves as PNG with an empty layout report; the
suppression symbol never on a numeric axis; the pyramid's order; the Sankey diagram's band widths
and its blocks equal to the transitions table (suppressed flows as one band per row); a trend's
incomplete years drawn apart; the layout report able to fail; number formats round-trip."""

from __future__ import annotations

import json

import geopandas as gpd
import matplotlib as mpl
import numpy as np
import polars as pl
import pytest
import shapely
from hypothesis import given
from hypothesis import strategies as st
from matplotlib.collections import PathCollection
from matplotlib.figure import Figure
from matplotlib.patches import PathPatch, Rectangle
from matplotlib.ticker import FixedFormatter

from respop.boards import figures as F
from respop.boards.labels import (
    MASKED,
    MASKED_LEGEND,
    MINUS,
    MISSING,
    NNBSP,
    fr_dec,
    fr_int,
    fr_pct,
    fr_rate,
    label,
    parse_fr_number,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

# ------------------------------------------------------------------------------------------ inputs

ORDER = ["chronique_ancienne", "chronique_recente", "hospitalise_annee", "instable"]
NAMES = {
    "instable": "IC instable",
    "hospitalise_annee": "IC hospitalisée dans l'année",
    "chronique_recente": "IC hospitalisée l'année précédente",
    "chronique_ancienne": "IC hospitalisée il y a 2 à 5 ans",
}


def _zones() -> gpd.GeoDataFrame:
    """A 4 × 3 grid of 5 km zones in Lambert-93, territories 1 (left half) and 2 (right half)."""
    geoms, codes, terr = [], [], []
    for i in range(4):
        for j in range(3):
            geoms.append(shapely.box(600_000 + i * 5000, 6_800_000 + j * 5000, 605_000 + i * 5000,
                                     6_805_000 + j * 5000))
            codes.append(f"29{i}{j}0")
            terr.append(1 if i < 2 else 2)
    return gpd.GeoDataFrame({"zone_code": codes, "territory_id": terr}, geometry=geoms, crs="EPSG:2154")


def _territories() -> gpd.GeoDataFrame:
    t = _zones().dissolve("territory_id").reset_index()[["territory_id", "geometry"]]
    t["territory_name"] = t["territory_id"].map({1: "Territoire de Quimper", 2: "Territoire de Brest"})
    return t


VALUES = pl.DataFrame({
    "zone_code": ["29000", "29010", "29020", "29100", "29110", "29120", "29200"],
    "value": [120.5, None, 300.0, 250.0, None, 180.0, 90.0],
})
HOSPITALS = pl.DataFrame({
    "name": ["CHU de Quimper", "Clinique Saint-Michel", "CH de Brest"],
    "zone_code": ["29000", "29000", "29210"],
    "kind": ["CHU", "privé", "CH"],
    "has_emergency": [True, False, None],
})
LEVELS = pl.DataFrame({
    "stratum": ["chronique_ancienne", "instable", "hospitalise_annee", "chronique_recente"],
    "stratum_level": [1, 4, 3, 2],
    "name": [NAMES[s] for s in ["chronique_ancienne", "instable", "hospitalise_annee", "chronique_recente"]],
    "people": [6123, None, 1834, 2410],
})
TRANSITIONS = pl.DataFrame(
    [
        ("instable", "instable", 40), ("instable", "hospitalise_annee", 30), ("instable", "deces", 25),
        ("instable", "non_revu", None), ("instable", "all", 100),
        ("hospitalise_annee", "hospitalise_annee", 200), ("hospitalise_annee", "chronique_recente", 300),
        ("hospitalise_annee", "instable", 50), ("hospitalise_annee", "deces", 60),
        ("hospitalise_annee", "non_revu", 90), ("hospitalise_annee", "all", 700),
        ("chronique_recente", "chronique_ancienne", 500), ("chronique_recente", "hospitalise_annee", 80),
        ("chronique_recente", "deces", 0), ("chronique_recente", "all", 590),
    ],
    schema={"from_stratum": pl.String, "to_stratum": pl.String, "count": pl.Int64},
    orient="row",
).with_columns(pl.lit(2022).alias("year"))
TRANSITIONS_SECRET = pl.DataFrame(
    [  # a row with two suppressed flows (a small one and its complementary suppression), a row
        # whose total is itself suppressed, a row with nothing suppressed
        ("instable", "instable", 99), ("instable", "hospitalise_annee", None), ("instable", "deces", 0),
        ("instable", "non_revu", None), ("instable", "all", 124),
        ("hospitalise_annee", "hospitalise_annee", 31), ("hospitalise_annee", "deces", None),
        ("hospitalise_annee", "all", None),
        ("chronique_recente", "chronique_ancienne", 500), ("chronique_recente", "hospitalise_annee", 80),
        ("chronique_recente", "all", 580),
    ],
    schema={"from_stratum": pl.String, "to_stratum": pl.String, "count": pl.Int64},
    orient="row",
).with_columns(pl.lit(2022).alias("year"))
TREND_INCOMPLETE = pl.DataFrame({
    "year": [2019, 2020, 2021, 2022, 2023] * 2,
    "series": ["Territoire de Quimper"] * 5 + ["Région étudiée"] * 5,
    "value": [260.0, 450.0, 640.0, 760.0, 780.0, 250.0, 430.0, 600.0, 720.0, 735.0],
    "low": [240.0, 420.0, 600.0, 720.0, 740.0, 245.0, 425.0, 595.0, 715.0, 730.0],
    "high": [280.0, 480.0, 680.0, 800.0, 820.0, 255.0, 435.0, 605.0, 725.0, 740.0],
    "complete": [False, False, False, True, True] * 2,
})
INCOMPLETE = "Historique incomplet (moins de 5 ans de recul)"
CALIBRATION = pl.DataFrame({  # percent values; the observed share of the first deciles suppressed
    "decile": [f"Décile {b}" for b in (1, 2, 3) for _ in range(2)],
    "series": ["Risque prédit", "Proportion observée"] * 3,
    "value": [14.0, None, 17.0, None, 68.0, 79.0],
})
TREND = pl.DataFrame({
    "year": [2019, 2020, 2021, 2022, 2019, 2020, 2021, 2022],
    "series": ["prevalence_std"] * 4 + ["prevalence_crude"] * 4,
    "value": [2300.0, None, 2480.0, 2510.0, 2100.0, 2160.0, 2240.0, 2300.0],
    "low": [2200.0, None, 2380.0, 2400.0, None, None, None, None],
    "high": [2400.0, None, 2580.0, 2620.0, None, None, None, None],
})
CARE = pl.DataFrame({
    "stratum": ["IC instable"] * 3 + ["IC hospitalisée dans l'année"] * 3,
    "measure": ["stays_per_person", "emergency_stays_per_person", "deaths_per_person"] * 2,
    "value": [3.2, 1.8, None, 1.9, 1.1, 0.05],
})
HBAR = pl.DataFrame({"unit_name": ["Territoire de Quimper", "Territoire de Brest", "Territoire du Mans"],
                     "cases": [12345, None, 987]})


def _curves() -> pl.DataFrame:
    rows = []
    for stratum, level, hazard in [("instable", 4, 0.004), ("hospitalise_annee", 3, 0.002)]:
        for t in range(0, 366, 30):
            s = float(np.exp(-hazard * t))
            rows.append((stratum, level, float(t), s, s - 0.05, min(1.0, s + 0.05)))
    rows.append(("chronique_recente", 2, 30.0, 0.99, None, None))  # starts after 0, no band
    return pl.DataFrame(rows, schema=["stratum", "stratum_level", "time", "survival", "lower", "upper"], orient="row")


EMPTY = pl.DataFrame()

FIGURES = {
    "zone_map": lambda m: F.zone_map(_zones(), VALUES, "Prévalence", "Pour 100 000 habitants", meeting=m),
    "zone_map_territory": lambda m: F.zone_map(_zones(), VALUES, "Prévalence", "Pour 100 000", territory_id=1,
                                               meeting=m),
    "zone_map_no_values": lambda m: F.zone_map(_zones(), None, "Zones", "", meeting=m),
    "zone_map_all_masked": lambda m: F.zone_map(
        _zones(), pl.DataFrame({"zone_code": ["29000"], "value": [None]}, schema={"zone_code": pl.String,
                                                                                  "value": pl.Float64}),
        "Prévalence", "x", territory_id=1, meeting=m),
    "territory_map": lambda m: F.territory_map(_territories(), 1, HOSPITALS, _zones(), meeting=m),
    "territory_map_bare": lambda m: F.territory_map(_territories(), 2, None, None, meeting=m),
    "strata_pyramid": lambda m: F.strata_pyramid(LEVELS, "Strates", meeting=m),
    "hbar": lambda m: F.hbar(HBAR, "unit_name", "cases", "Cas", "Nombre de cas", meeting=m),
    "hbar_rates": lambda m: F.hbar(HBAR, "unit_name", "cases", "Cas", "Taux", formatter=fr_rate, meeting=m),
    "grouped_bars": lambda m: F.grouped_bars(CARE, "stratum", "measure", "value", "Recours", "Par personne",
                                             meeting=m),
    "trend": lambda m: F.trend(TREND, "Prévalence", "Pour 100 000 habitants", meeting=m),
    "trend_incomplete": lambda m: F.trend(TREND_INCOMPLETE, "Prévalence de l'insuffisance cardiaque, évolution",
                                          "Prévalence standardisée (pour 100 000 hab.)", meeting=m,
                                          incomplete_label=INCOMPLETE),
    "calibration": lambda m: F.grouped_bars(CALIBRATION, "decile", "series", "value", "Calibration",
                                            "Passage à un profil plus sévère ou décès (%)", meeting=m,
                                            formatter=lambda v: fr_pct(None if v is None else v / 100, 0)),
    "sankey_secret": lambda m: F.sankey(TRANSITIONS_SECRET, ORDER, NAMES, "Trajectoires 2022 → 2023", meeting=m),
    "trend_no_band": lambda m: F.trend(TREND.select("year", "series", "value"), "Prévalence", "x", meeting=m),
    "sankey": lambda m: F.sankey(TRANSITIONS, ORDER, NAMES, "Transitions", meeting=m),
    "survival": lambda m: F.survival(_curves(), NAMES, "Survie", meeting=m),
    "survival_year": lambda m: F.survival(_curves(), NAMES, "Survie", meeting=m, start_year=2023),
}

EMPTY_FIGURES = {
    "zone_map": lambda m: F.zone_map(_zones().iloc[:0], None, "Carte", "x", meeting=m),
    "zone_map_unknown_territory": lambda m: F.zone_map(_zones(), VALUES, "Carte", "x", territory_id=99, meeting=m),
    "territory_map": lambda m: F.territory_map(_territories().iloc[:0], 1, None, None, meeting=m),
    "territory_map_unknown": lambda m: F.territory_map(_territories(), 99, HOSPITALS, _zones(), meeting=m),
    "strata_pyramid": lambda m: F.strata_pyramid(EMPTY, "Strates", meeting=m),
    "strata_pyramid_typed": lambda m: F.strata_pyramid(LEVELS.clear(), "Strates", meeting=m),
    "hbar": lambda m: F.hbar(EMPTY, "a", "b", "Cas", "x", meeting=m),
    "grouped_bars": lambda m: F.grouped_bars(CARE.clear(), "stratum", "measure", "value", "R", "x", meeting=m),
    "trend": lambda m: F.trend(EMPTY, "Tendance", "x", meeting=m),
    "sankey": lambda m: F.sankey(EMPTY, ORDER, NAMES, "Transitions", meeting=m),
    "sankey_totals_only": lambda m: F.sankey(TRANSITIONS.filter(pl.col("to_stratum") == "all"), ORDER, NAMES,
                                             "Transitions", meeting=m),
    "survival": lambda m: F.survival(_curves().clear(), NAMES, "Survie", meeting=m),
}


def _texts(fig: Figure) -> list[str]:
    return [t.get_text() for t in fig.findobj(mpl.text.Text)]


# ------------------------------------------------------------------------------------------ figures


@pytest.mark.parametrize("meeting", [False, True], ids=["normal", "meeting"])
@pytest.mark.parametrize("name", list(FIGURES))
def test_every_figure_draws_and_saves_as_png_with_a_clean_layout(name, meeting):
    fig = FIGURES[name](meeting)
    assert isinstance(fig, Figure)
    assert F.NO_DATA not in _texts(fig)
    png = F.to_png(fig, dpi=60)
    assert png.startswith(PNG_SIGNATURE)
    report = F.png_layout(png)
    assert report is not None and report["texts"]
    assert {k: v for k, v in report.items() if k != "texts" and v} == {}
    assert not any("< 11" in t for t in report["texts"])


@pytest.mark.parametrize("meeting", [False, True], ids=["normal", "meeting"])
@pytest.mark.parametrize("name", list(EMPTY_FIGURES))
def test_empty_input_says_no_data(name, meeting):
    fig = EMPTY_FIGURES[name](meeting)
    assert isinstance(fig, Figure)
    assert F.NO_DATA in _texts(fig)
    assert F.to_png(fig, dpi=50).startswith(PNG_SIGNATURE)


def test_meeting_mode_is_larger_type():
    normal = FIGURES["hbar"](False)
    meeting = FIGURES["hbar"](True)
    size = lambda fig: fig.axes[0].xaxis.label.get_fontsize()  # noqa: E731
    assert size(meeting) >= 18 > size(normal)
    assert meeting.get_figwidth() / meeting.get_figheight() == pytest.approx(16 / 9, rel=0.02)
    before = mpl.rcParams["font.size"]
    with F.meeting_style(True):
        assert mpl.rcParams["font.size"] >= 18
    with F.meeting_style(False):
        assert mpl.rcParams["font.size"] < 18
    assert mpl.rcParams["font.size"] == before  # the context is left behind


def test_figures_built_in_threads_keep_their_own_sizes():
    from concurrent.futures import ThreadPoolExecutor

    def build(meeting: bool) -> float:
        return FIGURES["hbar"](meeting).axes[0].xaxis.label.get_fontsize()

    modes = [i % 2 == 0 for i in range(16)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        sizes = list(pool.map(build, modes))
    assert all((size >= 18) == meeting for size, meeting in zip(sizes, modes, strict=True))


def test_to_png_clears_the_figure():
    fig = FIGURES["trend"](False)
    F.to_png(fig, dpi=40)
    assert fig.axes == []


def test_zone_map_hatches_masked_zones_and_says_so():
    fig = F.zone_map(_zones(), VALUES, "Prévalence", "Pour 100 000 habitants", territory_id=1)
    hatched = [c for c in fig.axes[0].collections if isinstance(c, PathCollection) and c.get_hatch()]
    assert len(hatched) == 1
    assert len(hatched[0].get_paths()) == 2  # 29010 and 29110 are masked
    assert MASKED_LEGEND in _texts(fig)
    assert "Pour 100 000 habitants" in _texts(fig)  # the colour bar's label
    # territory 1 only: 6 zones, none of territory 2
    drawn = sum(len(c.get_paths()) for c in fig.axes[0].collections
                if isinstance(c, PathCollection) and c.get_zorder() == 1)
    assert drawn == 6


def test_zone_map_keeps_holes_empty():
    ring = shapely.box(0, 0, 10_000, 10_000).difference(shapely.box(3000, 3000, 7000, 7000))
    zones = gpd.GeoDataFrame({"zone_code": ["a"], "territory_id": [1]}, geometry=[ring], crs="EPSG:2154")
    fig = F.zone_map(zones, pl.DataFrame({"zone_code": ["a"], "value": [1.0]}), "Trou", "x")
    fig.canvas.draw()
    pixels = np.asarray(fig.canvas.buffer_rgba())
    height = pixels.shape[0]

    def colour(x: float, y: float) -> tuple[int, ...]:
        px, py = fig.axes[0].transData.transform((x, y))
        return tuple(int(c) for c in pixels[int(height - py), int(px), :3])

    assert colour(5000, 5000) == (255, 255, 255)  # the hole
    assert colour(1500, 5000) != (255, 255, 255)  # the ring


def test_territory_map_marks_emergency_hospitals_and_lists_them():
    fig = F.territory_map(_territories(), 1, HOSPITALS, _zones())
    texts = _texts(fig)
    assert "Établissement avec urgences" in texts
    assert "Établissement sans urgences" in texts
    assert "Brest" in texts  # the neighbour, by its town
    assert "Établissements du territoire" in texts
    assert any("CHU de Quimper (urgences)" in t for t in texts)
    assert not any("CH de Brest" in t for t in texts)  # not in territory 1
    assert fig._suptitle.get_text() == "Territoire de Quimper"


def _bars(fig: Figure) -> dict[str, Rectangle]:
    return {p.get_gid(): p for p in fig.axes[0].patches if p.get_gid()}


def test_pyramid_puts_the_highest_level_on_top_and_masks():
    fig = F.strata_pyramid(LEVELS, "Strates")
    bars = _bars(fig)
    by_level = sorted(LEVELS.iter_rows(named=True), key=lambda r: r["stratum_level"])
    ys = [bars[r["stratum"]].get_y() for r in by_level]
    assert ys == sorted(ys)  # higher level, higher bar
    assert bars["instable"].get_y() == max(ys)
    # widths proportional to people, bars centred on 0
    w = {s: bars[s].get_width() for s in bars}
    assert w["chronique_recente"] / w["chronique_ancienne"] == pytest.approx(2410 / 6123)
    for b in bars.values():
        assert b.get_x() + b.get_width() / 2 == pytest.approx(0.0)
    # the masked stratum: a thin hatched placeholder and "< 11"
    assert bars["instable"].get_hatch()
    assert w["instable"] < 0.05
    texts = _texts(fig)
    assert MASKED in texts
    assert fr_int(6123) in texts
    # light to dark: the most severe is the darkest
    lum = {s: sum(mpl.colors.to_rgb(bars[s].get_facecolor())) for s in ("chronique_ancienne", "hospitalise_annee")}
    assert lum["hospitalise_annee"] < lum["chronique_ancienne"]


def _masked_marks(fig: Figure) -> list:
    return [t for t in fig.axes[0].texts if t.get_text() == MASKED]


def _assert_never_on_numeric_axis(fig: Figure) -> None:
    """The suppression symbol: no tick label of a numeric axis, always at the bars' base (x = 0)
    as a category annotation; never "< 11" anywhere."""
    fig.canvas.draw()
    ax = fig.axes[0]
    assert not isinstance(ax.xaxis.get_major_formatter(), FixedFormatter)  # the value axis is numeric
    ticks = [t.get_text() for t in ax.get_xticklabels()]
    assert MASKED not in ticks and not any("<" in t for t in ticks)
    assert not any("< 11" in t for t in _texts(fig))
    marks = _masked_marks(fig)
    assert marks
    for mark in marks:
        assert mark.get_gid() == F.MASKED_GID
        assert mark.xy[0] == 0.0  # at the base, not where a value would be
    assert F.layout_report(fig)["suppressed_on_numeric_axis"] == []


def test_hbar_masked_value_has_no_bar_and_the_symbol_at_its_base():
    fig = F.hbar(HBAR, "unit_name", "cases", "Cas", "Nombre de cas")
    widths = [p.get_width() for p in fig.axes[0].patches]
    assert np.isnan(widths[1]) and widths[0] == 12345
    texts = _texts(fig)
    assert MASKED in texts and fr_int(12345) in texts and fr_int(987) in texts
    assert F.MASKED_NOTE in fig._supxlabel.get_text()
    assert "secret statistique" in F.MASKED_NOTE and "< 11" not in F.MASKED_NOTE
    _assert_never_on_numeric_axis(fig)


def test_grouped_bars_use_french_labels():
    fig = F.grouped_bars(CARE, "stratum", "measure", "value", "Recours", "Par personne")
    texts = _texts(fig)
    assert "Séjours par personne" in texts
    assert "Décès par personne" in texts
    assert MASKED in texts
    assert "3,2" in texts and "0,05" in texts
    _assert_never_on_numeric_axis(fig)


@pytest.mark.parametrize("meeting", [False, True], ids=["normal", "meeting"])
def test_calibration_never_shows_the_symbol_as_a_percentage(meeting):
    fig = FIGURES["calibration"](meeting)
    _assert_never_on_numeric_axis(fig)
    assert len(_masked_marks(fig)) == 2
    texts = _texts(fig)
    assert not any(t.strip().startswith(MASKED) and "%" in t for t in texts)
    assert f"79{NNBSP}%" in texts


def test_a_group_with_every_value_suppressed_has_one_symbol():
    care = pl.DataFrame({"stratum": ["IC instable"] * 3 + ["IC stable"] * 3,
                         "measure": ["stays_per_person", "emergency_stays_per_person", "deaths_per_person"] * 2,
                         "value": [None, None, None, 1.9, None, 0.05]})
    fig = F.grouped_bars(care, "stratum", "measure", "value", "Recours", "Par personne")
    marks = _masked_marks(fig)
    assert len(marks) == 2  # one for the whole first group, one for the second group's bar
    assert marks[0].xy == (0.0, 0.0)


def test_trend_draws_incomplete_years_apart_and_labels_them():
    fig = F.trend(TREND_INCOMPLETE, "Prévalence", "Pour 100 000 habitants", incomplete_label=INCOMPLETE)
    ax = fig.axes[0]
    lines = [line for line in ax.get_lines() if not line.get_label().startswith("_")]
    assert [line.get_label() for line in lines] == ["Territoire de Quimper", "Région étudiée"]
    for line in lines:  # the line joins the complete years only
        y = np.asarray(line.get_ydata(), dtype=float)
        x = np.asarray(line.get_xdata(), dtype=float)
        assert np.isnan(y[x < 2022]).all() and not np.isnan(y[x >= 2022]).any()
    hollow = [line for line in ax.get_lines() if line.get_linestyle() == "None"
              and mpl.colors.to_hex(line.get_markerfacecolor()) == "#ffffff"]
    assert sorted(float(x) for line in hollow for x in line.get_xdata()) == [2019, 2019, 2020, 2020, 2021, 2021]
    # a grey band over 2019-2021, labelled on the figure itself, and an entry in the legend
    bands = [p for p in ax.patches if mpl.colors.to_hex(p.get_facecolor()) == F.INCOMPLETE_FILL]
    assert len(bands) == 1
    x0, x1 = bands[0].get_x(), bands[0].get_x() + bands[0].get_width()
    assert (x0, x1) == (2018.5, 2021.5)
    label_text = [t for t in ax.texts if t.get_text().replace("\n", " ") == INCOMPLETE]
    assert label_text and x0 < label_text[0].xy[0] < x1
    assert "Année non comparable (recul incomplet)" in [t.get_text() for t in ax.get_legend().get_texts()]
    # the band's label does not sit on the data: the values are below it
    fig.canvas.draw()
    top_of_label = label_text[0].get_window_extent().y0
    highest_point = ax.transData.transform((2021, 680.0))[1]
    assert highest_point < top_of_label
    report = F.layout_report(fig)
    assert {k: v for k, v in report.items() if k != "texts" and v} == {}


def test_trend_without_complete_column_joins_every_year():
    fig = F.trend(TREND.select("year", "series", "value"), "Prévalence", "x")
    ax = fig.axes[0]
    assert not [p for p in ax.patches if mpl.colors.to_hex(p.get_facecolor()) == F.INCOMPLETE_FILL]
    first = ax.get_lines()[0]
    assert np.asarray(first.get_ydata(), dtype=float)[0] == 2300.0
    assert F.LINE_MASKED_NOTE in fig._supxlabel.get_text()  # 2020 is masked: a gap, said under the figure


def test_trend_has_whole_year_ticks_and_bands():
    fig = F.trend(TREND, "Prévalence", "Pour 100 000 habitants")
    ax = fig.axes[0]
    fig.canvas.draw()
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert labels == ["2019", "2020", "2021", "2022"]
    assert len(ax.collections) == 1  # one band: only the standardised series has limits
    assert "Prévalence standardisée" in _texts(fig)


def test_survival_in_months_of_follow_up_and_percent():
    fig = F.survival(_curves(), NAMES, "Survie")
    ax = fig.axes[0]
    assert ax.get_xlabel().replace("\n", " ") == F.survival_xlabel() == (
        "Mois de suivi depuis le 1er janvier suivant l'année du profil")
    assert F.survival_xlabel(2023) == "Mois de suivi depuis le 1er janvier 2023"
    assert F.survival_xlabel((2020, 2023)).endswith("(2020 à 2023)")
    year = F.survival(_curves(), NAMES, "Survie", start_year=2023)
    assert year.axes[0].get_xlabel().replace("\n", " ") == "Mois de suivi depuis le 1er janvier 2023"
    assert ax.get_ylabel() == "Sans réhospitalisation ni décès (%)"
    fig.canvas.draw()
    assert "100\u202f%" in [t.get_text() for t in ax.get_yticklabels()]
    lines = ax.get_lines()
    assert len(lines) == 3
    assert max(lines[0].get_xdata()) == pytest.approx(360 / 30.44)
    assert lines[-1].get_xdata()[0] == 0.0 and lines[-1].get_ydata()[0] == 1.0  # started at 100 %
    assert [t.get_text().replace("\n", " ") for t in ax.get_legend().get_texts()] == [
        NAMES["instable"], NAMES["hospitalise_annee"], NAMES["chronique_recente"]]
    # told apart by more than colour: one line style each; the legend beside the curves, not on them
    assert len({tuple(line._unscaled_dash_pattern[1] or ()) for line in lines}) == 3
    legend_box = ax.get_legend().get_window_extent()
    assert legend_box.x0 >= ax.get_window_extent().x1


# -------------------------------------------------------------------------------------------- sankey


def _flows(fig: Figure) -> dict[tuple[str, str], PathPatch]:
    out = {}
    for p in fig.axes[0].patches:
        gid = p.get_gid() or ""
        if gid.startswith("flow:"):
            src, dst = gid[len("flow:"):].split("->")
            out[(src, dst)] = p
    return out


def _thickness(patch: PathPatch) -> tuple[float, float]:
    v = patch.get_path().vertices
    return v[0][1] - v[7][1], v[3][1] - v[4][1]


def test_sankey_band_widths_are_proportional_to_counts():
    fig = F.sankey(TRANSITIONS, ORDER, NAMES, "Transitions")
    flows = _flows(fig)
    counts = {(r["from_stratum"], r["to_stratum"]): r["count"] for r in TRANSITIONS.iter_rows(named=True)
              if r["to_stratum"] != "all" and r["count"]}
    counts[("instable", F.SECRET_NODE)] = 100 - (40 + 30 + 25)  # the row's suppressed flow, one band
    assert set(flows) == set(counts)
    ratios = []
    for key, patch in flows.items():
        left, right = _thickness(patch)
        assert left == pytest.approx(right)
        ratios.append(left / counts[key])
    assert max(ratios) == pytest.approx(min(ratios))


def _blocks(fig: Figure) -> dict[str, Rectangle]:
    return {p.get_gid(): p for p in fig.axes[0].patches if (p.get_gid() or "").startswith(("from:", "to:"))}


def test_sankey_groups_suppressed_flows_in_one_band_per_row_and_says_so():
    fig = F.sankey(TRANSITIONS_SECRET, ORDER, NAMES, "Transitions")
    flows = _flows(fig)
    secret = {k: p for k, p in flows.items() if k[1] == F.SECRET_NODE}
    assert list(secret) == [("instable", F.SECRET_NODE)]  # one band, for the one drawn row with suppressions
    assert secret[("instable", F.SECRET_NODE)].get_hatch()
    blocks = _blocks(fig)
    assert "to:secret" in blocks and blocks["to:secret"].get_hatch()
    assert "from:hospitalise_annee" not in blocks  # its total is suppressed: no block, no band
    assert not any(k[0] == "hospitalise_annee" for k in flows)
    note = fig._supxlabel.get_text().replace("\n", " ")
    assert "flux soumis au secret statistique" in note
    hidden = NAMES["hospitalise_annee"]
    assert f"Non représenté (effectif soumis au secret statistique) : «\u00a0{hidden}\u00a0»" in note
    texts = [t.replace("\n", " ") for t in _texts(fig)]
    assert f"{F.SECRET_NODE_LABEL} 25" in texts  # 124 − 99
    assert not any("< 11" in t for t in texts)
    unmasked = TRANSITIONS.filter(pl.col("count").is_not_null() & (pl.col("to_stratum") != "all"))
    plain = F.sankey(unmasked, ORDER, NAMES, "T")
    assert F.FLOWS_MASKED_NOTE not in plain._supxlabel.get_text()
    assert "to:secret" not in _blocks(plain)


def test_sankey_nodes_are_the_row_totals_and_the_published_column_sums():
    nodes = F.sankey_nodes(TRANSITIONS_SECRET, ORDER)
    assert nodes["left"] == {"instable": 124, "chronique_recente": 580}
    assert nodes["right"] == {"instable": 99, "hospitalise_annee": 80, "chronique_ancienne": 500, F.SECRET_NODE: 25}
    assert nodes["hidden"] == ["hospitalise_annee"] and nodes["unsized"] == []
    # without the totals, a row's suppressed flows cannot be sized: left out, and said so
    no_totals = F.sankey_nodes(TRANSITIONS_SECRET.filter(pl.col("to_stratum") != "all"), ORDER)
    assert F.SECRET_NODE not in no_totals["right"] and "instable" in no_totals["unsized"]
    # the blocks drawn are these sizes, to one scale
    blocks = _blocks(F.sankey(TRANSITIONS_SECRET, ORDER, NAMES, "T"))
    sizes = {**{f"from:{k}": v for k, v in nodes["left"].items()}, **{f"to:{k}": v for k, v in nodes["right"].items()}}
    assert set(blocks) == set(sizes)
    ratios = [blocks[g].get_height() / sizes[g] for g in sizes]
    assert max(ratios) == pytest.approx(min(ratios))


def test_sankey_nodes_equal_the_transitions_table(monkeypatch):
    """The blocks of the figure and the table beside it (respop.boards.data.table_transitions) give
    the same numbers: every row's Effectif is its left block, and the published cells of each column
    (the rows drawn) add up to its right block."""
    from respop.boards import data
    from respop.boards.labels import parse_fr_number

    rows = TRANSITIONS_SECRET.with_columns(pl.lit(None, pl.Float64).alias("proportion"))
    levels = pl.DataFrame({"stratum": ORDER, "stratum_level": [1, 2, 3, 4], "name": [NAMES[s] for s in ORDER]})
    monkeypatch.setattr(data, "read", lambda url, table, run_id, **eq: rows)
    monkeypatch.setattr(data, "strata_levels", lambda url, run_id, disease: levels)
    table = data.table_transitions("sqlite://", 1, "heart_failure", 2022)
    nodes = F.sankey_nodes(rows, ORDER)
    by_name = {NAMES[s]: s for s in ORDER}
    drawn = []
    for record in table.to_dict("records"):
        code = by_name[record["Profil en 2022"]]
        if record["Effectif"] == MASKED:
            assert code in nodes["hidden"] and code not in nodes["left"]
            continue
        drawn.append(record)
        assert nodes["left"][code] == parse_fr_number(record["Effectif"])
    assert (table == MASKED).to_numpy().sum() == 4  # the suppressed cells, shown "s" (Effectif included)
    for code in [*ORDER, "deces", "non_revu"]:
        head = NAMES.get(code) or label(code)
        published = [str(r[head]).split(" (")[0] for r in drawn]
        total = sum(parse_fr_number(v) for v in published if v != MASKED)
        assert nodes["right"].get(code, 0) == total
    secret_cells = sum(parse_fr_number(r["Effectif"]) for r in drawn) - sum(
        v for k, v in nodes["right"].items() if k != F.SECRET_NODE)
    assert nodes["right"][F.SECRET_NODE] == secret_cells


def test_sankey_order_terminal_targets_at_the_bottom():
    fig = F.sankey(TRANSITIONS, ORDER, NAMES, "Transitions")
    blocks = _blocks(fig)
    right = sorted((g for g in blocks if g.startswith("to:")), key=lambda g: -blocks[g].get_y())
    assert right == ["to:instable", "to:hospitalise_annee", "to:chronique_recente", "to:chronique_ancienne",
                     "to:deces", "to:non_revu", "to:secret"]
    left = sorted((g for g in blocks if g.startswith("from:")), key=lambda g: -blocks[g].get_y())
    assert left == ["from:instable", "from:hospitalise_annee", "from:chronique_recente"]
    # block heights: the rows' totals ('all'), suppressed flows included
    h = {g: blocks[g].get_height() for g in blocks}
    assert h["from:instable"] / h["from:hospitalise_annee"] == pytest.approx(100 / 700)
    assert mpl.colors.to_hex(blocks["to:deces"].get_facecolor()) == F.DEATH_COLOUR
    texts = _texts(fig)
    assert "2022" in texts and "2023" in texts
    assert any(t.startswith("Décès\n") for t in texts) and any(t.startswith("Non revu\n") for t in texts)


# ------------------------------------------------------------------------------------------ palette


def _luminance(colour: str) -> float:
    def channel(c: float) -> float:
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (channel(c) for c in mpl.colors.to_rgb(colour))
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


@pytest.mark.parametrize("n", [2, 3, 4, 5])
def test_strata_colours_go_dark_with_severity_in_distinct_hues(n):
    colours = F.strata_colours(n)
    lum = [_luminance(c) for c in colours]
    assert lum == sorted(lum, reverse=True)  # least severe lightest
    hues = [mpl.colors.rgb_to_hsv(mpl.colors.to_rgb(c))[0] for c in colours]
    assert len({round(h, 2) for h in hues}) == n  # not shades of one hue
    for a, b in zip(lum, lum[1:]):
        assert (a + 0.05) / (b + 0.05) > 1.3  # adjacent strata differ in lightness, not only in hue
    assert (lum[0] + 0.05) / (lum[-1] + 0.05) > 4  # the ends far apart
    assert (1.05) / (lum[0] + 0.05) > 1.8  # even the lightest shows on white
    assert (lum[-1] + 0.05) / (_luminance(F.DEATH_COLOUR) + 0.05) > 1.5  # the darkest is not "Décès"


# ------------------------------------------------------------------------------------- layout report


def _report(fig: Figure) -> dict:
    return F.layout_report(fig)


def test_layout_report_flags_a_legend_over_the_plotting_area():
    fig = FIGURES["trend"](False)
    ax = fig.axes[0]
    assert _report(fig)["legend_overlaps"] == []
    ax.legend(loc="center")  # deliberately on the curves
    report = _report(fig)
    assert report["legend_overlaps"] and "zone de tracé" in report["legend_overlaps"][0]
    ax.legend(loc="upper left", bbox_to_anchor=(1.5, 1.0))  # beyond the figure's right edge
    assert any("hors de la figure" in d for d in _report(fig)["legend_overlaps"])


def test_layout_report_flags_the_symbol_on_a_numeric_axis_and_values_written_as_numbers():
    fig = F.hbar(HBAR, "unit_name", "cases", "Cas", "Nombre de cas")
    ax = fig.axes[0]
    assert _report(fig)["suppressed_on_numeric_axis"] == []
    ax.set_xticks([0, 5000, 10000], ["0", MASKED, "10 000"])  # the symbol as a tick of the value axis
    ax.xaxis.set_major_formatter(F.FR_TICKS)
    ax.xaxis.set_major_formatter(mpl.ticker.FuncFormatter(lambda x, _p: MASKED if x == 5000 else F._fr_number(x)))
    flagged = _report(fig)["suppressed_on_numeric_axis"]
    assert any("graduation" in d for d in flagged)
    fig = F.hbar(HBAR, "unit_name", "cases", "Cas", "Nombre de cas")
    fig.axes[0].text(7000, 1, MASKED)  # where a value would be written
    fig.axes[0].text(7000, 2, "< 11")
    flagged = _report(fig)["suppressed_on_numeric_axis"]
    assert len(flagged) == 2


def test_layout_report_flags_texts_outside_the_figure_and_overlapping_texts():
    fig = FIGURES["hbar"](False)
    ax = fig.axes[0]
    report = _report(fig)
    assert report["outside_figure"] == [] and report["overlapping_texts"] == []
    assert "Nombre de cas" in report["texts"] and "Cas" in report["texts"]
    ax.text(0.99, 0.5, "Un nom d'hôpital beaucoup trop long pour tenir", transform=fig.transFigure)
    ax.text(0.5, 0.5, "Premier", transform=ax.transAxes, ha="center")
    ax.text(0.5, 0.5, "Second", transform=ax.transAxes, ha="center")
    report = _report(fig)
    assert report["outside_figure"] == ["« Un nom d'hôpital beaucoup trop long pour tenir »"]
    assert "« Premier » / « Second »" in report["overlapping_texts"]


def test_to_png_embeds_the_layout_report_as_a_text_chunk():
    fig = FIGURES["sankey_secret"](True)
    expected = F.layout_report(fig)
    png = F.to_png(fig, dpi=60)
    # a plain tEXt chunk (ASCII JSON) named respop:layout
    assert b"tEXtrespop:layout\x00" in png
    report = F.png_layout(png)
    assert report == json.loads(json.dumps(expected))
    assert set(report) == {"texts", "legend_overlaps", "suppressed_on_numeric_axis", "outside_figure",
                           "overlapping_texts"}


# ----------------------------------------------------------------------------------------- formats


def test_formats_examples():
    assert fr_int(12345) == f"12{NNBSP}345"
    assert fr_int(1234567) == f"1{NNBSP}234{NNBSP}567"
    assert fr_int(999) == "999"
    assert fr_int(0) == "0"
    assert fr_int(None) == MASKED
    assert "11" not in MASKED  # one symbol for every suppressed cell, never a false "< 11"
    assert fr_int(float("nan")) == MASKED
    assert fr_int(-4321) == f"{MINUS}4{NNBSP}321"
    assert fr_dec(339.27) == "339,3"
    assert fr_dec(1234.5678, 2) == f"1{NNBSP}234,57"
    assert fr_dec(-0.04) == "0,0"
    assert fr_dec(None) == MISSING == "–"
    assert fr_pct(0.123) == f"12,3{NNBSP}%"
    assert fr_pct(1) == f"100,0{NNBSP}%"
    assert fr_pct(None) == MISSING
    assert fr_rate(339.27) == "339,3"
    assert fr_rate(None) == "–"


def test_labels():
    # a disease's French name is the run's catalogue (respop.boards.data.disease_name), not a label
    assert label("heart_failure") == "heart_failure"
    assert label("area") == "Région étudiée"
    assert label("emergency_stays") == "Arrivées par les urgences"
    assert label("readmissions_30d_per_person") == "Réhospitalisations à 30 jours par personne"
    assert label("deces") == "Décès" and label("non_revu") == "Non revu"
    assert label("prevalence_std") == "Prévalence standardisée"
    assert label("incidence_crude_high").startswith("Incidence brute (borne haute")
    assert label("code_inconnu") == "code_inconnu"
    assert label(None) == ""


@given(st.integers(min_value=-10**15, max_value=10**15))
def test_fr_int_round_trips(n):
    text = fr_int(n)
    assert parse_fr_number(text) == n
    assert " " not in text and "," not in text
    digits = text.lstrip(MINUS).split(NNBSP)
    assert all(len(g) == 3 for g in digits[1:]) and 1 <= len(digits[0]) <= 3


@given(st.floats(min_value=-1e9, max_value=1e9, allow_nan=False), st.integers(min_value=0, max_value=4))
def test_fr_dec_round_trips(x, digits):
    text = fr_dec(x, digits)
    assert parse_fr_number(text) == pytest.approx(round(x, digits), abs=10**-digits)
    assert "." not in text
    if digits:
        assert len(text.rsplit(",", 1)[1]) == digits


@given(st.floats(min_value=0, max_value=1, allow_nan=False))
def test_fr_pct_is_a_percent(x):
    text = fr_pct(x)
    assert text.endswith(f"{NNBSP}%")
    assert parse_fr_number(text) == pytest.approx(100 * x, abs=0.051)
