"""The boards' figures and French formats: every figure on small hand-made store rows (masked
values, empty frames, meeting mode) is a Figure that saves as PNG; the pyramid's order; the Sankey
diagram's band widths and masked flows; number formats round-trip."""

from __future__ import annotations

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
    "trend_no_band": lambda m: F.trend(TREND.select("year", "series", "value"), "Prévalence", "x", meeting=m),
    "sankey": lambda m: F.sankey(TRANSITIONS, ORDER, NAMES, "Transitions", meeting=m),
    "survival": lambda m: F.survival(_curves(), NAMES, "Survie", meeting=m),
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
def test_every_figure_draws_and_saves_as_png(name, meeting):
    fig = FIGURES[name](meeting)
    assert isinstance(fig, Figure)
    assert F.NO_DATA not in _texts(fig)
    png = F.to_png(fig, dpi=50)
    assert png.startswith(PNG_SIGNATURE)


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


def test_hbar_masked_value_has_no_bar_and_says_less_than_11():
    fig = F.hbar(HBAR, "unit_name", "cases", "Cas", "Nombre de cas")
    widths = [p.get_width() for p in fig.axes[0].patches]
    assert np.isnan(widths[1]) and widths[0] == 12345
    texts = _texts(fig)
    assert MASKED in texts and fr_int(12345) in texts and fr_int(987) in texts


def test_grouped_bars_use_french_labels():
    fig = F.grouped_bars(CARE, "stratum", "measure", "value", "Recours", "Par personne")
    texts = _texts(fig)
    assert "Séjours par personne" in texts
    assert "Décès par personne" in texts
    assert MASKED in texts
    assert "3,2" in texts and "0,05" in texts


def test_trend_has_whole_year_ticks_and_bands():
    fig = F.trend(TREND, "Prévalence", "Pour 100 000 habitants")
    ax = fig.axes[0]
    fig.canvas.draw()
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert labels == ["2019", "2020", "2021", "2022"]
    assert len(ax.collections) == 1  # one band: only the standardised series has limits
    assert "Prévalence standardisée" in _texts(fig)


def test_survival_in_months_and_percent():
    fig = F.survival(_curves(), NAMES, "Survie")
    ax = fig.axes[0]
    assert ax.get_xlabel() == "Mois depuis le 1er janvier"
    assert ax.get_ylabel() == "Sans réhospitalisation ni décès"
    fig.canvas.draw()
    assert "100\u202f%" in [t.get_text() for t in ax.get_yticklabels()]
    lines = ax.get_lines()
    assert len(lines) == 3
    assert max(lines[0].get_xdata()) == pytest.approx(360 / 30.44)
    assert lines[-1].get_xdata()[0] == 0.0 and lines[-1].get_ydata()[0] == 1.0  # started at 100 %
    assert [t.get_text() for t in ax.get_legend().get_texts()] == [NAMES["instable"], NAMES["hospitalise_annee"],
                                                                    NAMES["chronique_recente"]]


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
    assert set(flows) == set(counts)
    ratios = []
    for key, patch in flows.items():
        left, right = _thickness(patch)
        assert left == pytest.approx(right)
        ratios.append(left / counts[key])
    assert max(ratios) == pytest.approx(min(ratios))


def test_sankey_leaves_masked_flows_out_and_says_so():
    fig = F.sankey(TRANSITIONS, ORDER, NAMES, "Transitions")
    assert ("instable", "non_revu") not in _flows(fig)
    assert any(F.FLOWS_MASKED_NOTE in t for t in _texts(fig))
    unmasked = TRANSITIONS.filter(pl.col("count").is_not_null())
    assert not any(F.FLOWS_MASKED_NOTE in t for t in _texts(F.sankey(unmasked, ORDER, NAMES, "T")))


def test_sankey_order_terminal_targets_at_the_bottom():
    fig = F.sankey(TRANSITIONS, ORDER, NAMES, "Transitions")
    blocks = {p.get_gid(): p for p in fig.axes[0].patches if (p.get_gid() or "").startswith(("from:", "to:"))}
    right = sorted((g for g in blocks if g.startswith("to:")), key=lambda g: -blocks[g].get_y())
    assert right == ["to:instable", "to:hospitalise_annee", "to:chronique_recente", "to:chronique_ancienne",
                     "to:deces", "to:non_revu"]
    left = sorted((g for g in blocks if g.startswith("from:")), key=lambda g: -blocks[g].get_y())
    assert left == ["from:instable", "from:hospitalise_annee", "from:chronique_recente"]
    # block heights: the sum of the drawn flows (the 'all' totals are ignored)
    h = {g: blocks[g].get_height() for g in blocks}
    assert h["from:instable"] / h["from:hospitalise_annee"] == pytest.approx(95 / 700)
    assert mpl.colors.to_hex(blocks["to:deces"].get_facecolor()) == F.DEATH_COLOUR
    texts = _texts(fig)
    assert "2022" in texts and "2023" in texts
    assert any(t.startswith("Décès\n") for t in texts) and any(t.startswith("Non revu\n") for t in texts)


# ----------------------------------------------------------------------------------------- formats


def test_formats_examples():
    assert fr_int(12345) == f"12{NNBSP}345"
    assert fr_int(1234567) == f"1{NNBSP}234{NNBSP}567"
    assert fr_int(999) == "999"
    assert fr_int(0) == "0"
    assert fr_int(None) == MASKED == "< 11"
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
