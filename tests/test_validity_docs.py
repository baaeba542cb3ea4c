"""The generated validation tables of docs/ (benchmarks/validity.py, item 7 of issue 18): the marker
rewriting replaces the tables and keeps the prose, stamps them, and a table without its stamp is found."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def validity():
    spec = importlib.util.spec_from_file_location("validity_benchmark", ROOT / "benchmarks" / "validity.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


META = {"commit": "abc1234", "seeds": [1, 2, 3, 4, 5], "shapes": ["demo", "peripheral"], "date": "2026-12-06"}

DOC = """# A page

Prose before, with a | pipe and numbers 12.5%.

<!-- validity:begin table=territories -->
| old | table |
|---|---|
| 0.82 | stale |
<!-- validity:end -->

Prose between the tables.

<!-- validity:begin table=unknown_table -->
kept as it is
<!-- validity:end -->

<!-- validity:begin table=hf_rate -->
<!-- validity:end -->
Prose after.
"""


def test_rewrite_replaces_tables_keeps_prose_and_stamps(validity):
    stamp = validity.stamp_line(META)
    tables = {"territories": "| a |\n|---|\n| 1.000 |\n", "hf_rate": "| b |\n|---|\n| 335.9 |\n"}
    text, replaced = validity.rewrite(DOC, tables, stamp)
    assert replaced == ["territories", "hf_rate"]
    assert "stale" not in text and "| 1.000 |" in text and "| 335.9 |" in text
    for prose in ("Prose before, with a | pipe and numbers 12.5%.", "Prose between the tables.", "Prose after.",
                  "kept as it is"):
        assert prose in text
    assert text.count(stamp) == 2
    m = validity.STAMP.search(text)
    assert (m["commit"], m["seeds"], m["shapes"], m["year"], m["date"]) == (
        "abc1234", "1, 2, 3, 4, 5", "demo, peripheral", str(validity.INDEX_YEAR), "2026-12-06")
    # only the unknown block (never written) lacks a stamp; writing again changes nothing
    assert validity.unstamped(text) == ["unknown_table"]
    assert validity.rewrite(text, tables, stamp)[0] == text
    # a dirty tree is named in the stamp
    dirty = validity.stamp_line({**META, "commit": "abc1234-dirty"})
    assert validity.STAMP.search(dirty)["commit"] == "abc1234-dirty"


def test_a_table_without_its_stamp_is_detected(validity):
    stamped, _ = validity.rewrite(DOC, {"territories": "| a |\n|---|\n| 1 |\n", "hf_rate": "| b |\n|---|\n| 2 |\n",
                                        "unknown_table": "| c |\n|---|\n| 3 |\n"}, validity.stamp_line(META))
    assert validity.unstamped(stamped) == []
    # someone edits the table by hand and drops the stamp line
    hand_edited = stamped.replace(validity.stamp_line(META) + "\n\n| a |", "| a |", 1)
    assert validity.unstamped(hand_edited) == ["territories"]
    # a begin marker left without its end
    broken = stamped + "\n<!-- validity:begin table=speed -->\n| d |\n"
    assert validity.unstamped(broken) == ["1 begin marker(s) without <!-- validity:end -->"]


def fake_result(shape: str, seed: int, ari: float, dead: float, gap: float, hf: float) -> dict:
    case = {"true_cases": 5816, "sensitivity": 0.37, "sensitivity_hospitalised": 0.39, "sensitivity_disease_stay": 0.95,
            "ppv": 0.997, "dead_share": dead, "subtype_agreement": 0.997, "residence_accuracy": 0.95,
            "territory_accuracy": 0.97, "movers_accuracy": 0.70, "hf_rate_per_100k_adults": hf}
    row = {"model": "gradient_boosting", "target": "upstratum", "auc": 0.70, "auc_lower": 0.68, "auc_upper": 0.72,
           "oracle_auc": 0.70 + gap, "auc_gap": gap, "calibration_slope": 1.05, "calibration_slope_lower": 0.9,
           "calibration_slope_upper": 1.2, "calibration_intercept": 0.01, "brier_skill": 0.02}
    return {
        "shape": shape, "seed": seed,
        "cases": {"deaths": {"heart_failure": case}, "no_deaths": {"heart_failure": {**case, "dead_share": 0.18, "ppv": 0.82}}},
        "planted": {"territories": 11, "flow_ceiling_ari": 1.0, "flow_inconsistent_zones": 0, "mean_li": 0.62},
        "found": {"territories": 11, "ari": ari, "mean_li": 0.62, "min_li": 0.48},
        "checks": [{"label": "heart_failure: survival ordered as the strata (log-rank p < 0.001)", "ok": True, "detail": ""}],
        "logrank": [{"disease": "heart_failure", "higher": "b", "lower": "a", "ordered": True, "p_value": 1e-5}],
        "prediction": {"heart_failure": [row, {**row, "model": "logistic"}]},
        "calibration": {"hf_hospitalised_per_100k_adults": {"generated": hf}},
        "generated": {"seconds": 12.0, "cached": True},
        "seconds": {"run (deaths)": 100.0}, "seconds_total": 200.0, "peak_mb": 900.0,
    }


def test_tables_mark_each_goal(validity):
    results = [fake_result("demo", 1, 1.0, 0.002, 0.01, 340.0), fake_result("peripheral", 1, 0.85, 0.03, 0.05, 370.0)]
    tables = validity.tables(results)
    header, rows = tables["territories"]
    assert "ARI (goal ≥ 0.90)" in header
    assert [r[4] for r in rows] == ["1.000 ✓", "0.850 ✗"]
    _, rows = tables["prediction"]  # gradient boosting only
    assert [r[6] for r in rows] == ["+0.010 ✓", "+0.050 ✗"]
    _, rows = tables["deaths"]
    assert [r[3] for r in rows] == ["0.20% ✓", "3.00% ✗"] and rows[0][4] == "18.00%"
    _, rows = tables["hf_rate"]
    assert rows[0][2].endswith("✓") and rows[1][2].endswith("✗")
    header, rows = tables["goals"]
    assert header == ["goal (issue 18)", "demo", "peripheral"]
    ari = next(r for r in rows if r[0].startswith("territory ARI"))
    assert ari[1:] == ["1/1 ✓", "0/1 ✗ (seed 1)"]
    markdown = validity.markdown(*tables["strata_order"])
    assert markdown.splitlines()[1] == "|---|---|---|---|---|" and "b vs a: 1.0e-05" in markdown


def test_shipped_docs_hold_every_generated_table_stamped(validity):
    for doc, names in validity.DOCS.items():
        text = (ROOT / doc).read_text(encoding="utf-8")
        assert validity.unstamped(text) == [], doc
        assert [m["name"] for m in validity.BLOCK.finditer(text)] and {
            m["name"] for m in validity.BLOCK.finditer(text)} == set(names), doc
