"""The results store on a run of the whole pipeline (tiny): schema from the migrations, one run
as one transaction, failed and interrupted runs leave the previous results, same configuration and
data give the same results, and nothing patient-level or below 11 enters it. Every test runs on
SQLite and on a real PostgreSQL server (skipped, saying so, where there is none)."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time

import polars as pl
import pytest
from sqlalchemy import inspect, text

from respop.store import schema
from respop.store.db import PAUSE_ENV, Store
from respop.privacy.disclosure import THRESHOLD
from respop.store.publish import collect

PUBLIC_COUNTS = {("zones", "population"), ("territories", "population"), ("territories", "zones"),
                 ("territories", "hospitals"), ("indicators", "population"), ("survival_tests", "n"),
                 ("survival_tests", "events"), ("catalogue", "rank"),
                 ("evaluation_design", "min_pre_years"), ("evaluation_effects", "n_donors"),
                 ("evaluation_effects", "post_years"), ("evaluation_event_study", "event_time"),
                 ("evaluation_event_study", "n_pilots"), ("evaluation_power", "population"),
                 ("evaluation_power", "years_pre"), ("evaluation_power", "years_post")}
"""Integer columns that are not counts of people or stays of the data (census populations,
numbers of zones and hospitals, the catalogue's order of items in a spec, the evaluation's design:
numbers of years, pilots and comparison territories, the power table's populations) or that are
masked by their own rule (tested apart)."""


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.sqlite'}"
    return request.getfixturevalue("fresh_postgres_url")


@pytest.fixture
def store(store_url):
    s = Store(store_url)
    yield s
    s.close()


@pytest.fixture(scope="module")
def publication(tiny_run):
    return collect(tiny_run.config, tiny_run.config_path)


def test_the_migrations_create_exactly_the_schema(store):
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    store.upgrade()
    assert store.revision() == "0005"
    with store.engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), schema.metadata)
    assert diff == []
    store.upgrade()  # idempotent
    assert set(inspect(store.engine).get_table_names()) >= {t.name for t in schema.metadata.sorted_tables}


def test_write_then_read_every_table(store, publication):
    run_id = store.write(publication)
    assert store.latest_run("tiny") == run_id
    run = store.run(run_id)
    assert run["status"] == "succeeded" and run["finished_at"] >= run["started_at"]
    assert run["results_sha256"] == publication.fingerprint()
    # published on its own (as `respop store publish`): every step's outputs come from an earlier run
    assert set(run["timings"]["reused"]) == {"input", "territories", "cases", "strata", "evaluation"}
    assert [k for k, v in run["timings"].items() if isinstance(v, (int, float))] == ["store"]
    assert run["first_year"] == 2019 and run["last_year"] == 2023
    for table in schema.RESULT_TABLES:
        back = store.read(table.name, run_id)
        sent = publication.tables[table.name]
        assert back.height == sent.height, table.name
        assert back.columns == sent.columns
    # filters
    zones = store.read("indicators", run_id, level="zone", year=2023, disease="heart_failure")
    assert zones.height and set(zones["level"]) == {"zone"} and set(zones["year"]) == {2023}
    two = store.read("care_use", run_id, year=[2022, 2023])
    assert set(two["year"]) == {2022, 2023}
    with pytest.raises(ValueError, match="no column"):
        store.read("care_use", run_id, colour="blue")
    with pytest.raises(ValueError, match="no table"):
        store.read("patients", run_id)


def test_the_run_row_holds_the_times_of_the_run_and_of_each_step(tiny_run):
    """`respop run` on tiny: the run starts before its first step and before its publication, each
    step's seconds are the span of its clock, the steps follow each other inside the run, and
    their seconds sum to the run's duration but the gaps between steps (timestamps compared to
    each other, no wall-clock threshold)."""
    from respop.pipeline import STEPS

    store = Store(tiny_run.config.store.url)
    try:
        row = store.run(tiny_run.run_id)
    finally:
        store.close()
    timings = row["timings"]
    assert timings["reused"] == {} and "process" not in timings
    clock = {step: [dt.datetime.fromisoformat(t) for t in span] for step, span in timings["clock"].items()}
    assert list(clock) == list(STEPS)
    edges = [row["started_at"], *(t for step in STEPS for t in clock[step]), row["finished_at"]]
    assert edges == sorted(edges)
    # the start is the run's, not the publication's (the bug: both were the moment of publishing)
    assert row["started_at"] < clock["input"][0] < clock["store"][0] and clock["store"][1] == row["finished_at"]
    for step in STEPS:
        assert abs(timings[step] - (clock[step][1] - clock[step][0]).total_seconds()) <= 0.01, step
    wall = (row["finished_at"] - row["started_at"]).total_seconds()
    spans = sum(timings[step] for step in STEPS)
    gaps = (clock["input"][0] - row["started_at"]).total_seconds() + sum(
        (clock[b][0] - clock[a][1]).total_seconds() for a, b in zip(STEPS, STEPS[1:])
    )
    assert abs(wall - spans - gaps) <= 0.05
    assert spans <= wall and gaps < spans
    # the store step counts the whole publication (collect included), as the pipeline measured it
    # around it (timings.json), not only the database insert (the bug: "0,1 s")
    measured = json.loads((tiny_run.config.output.dir / "timings.json").read_text())["steps"]
    assert timings["store"] <= measured["store"] and measured["store"] - timings["store"] < timings["store"]


def test_the_published_model_cards_speak_french_and_fold_the_technical_details(tiny_run):
    """The cards the boards show (model_cards): the clinicians' part without a raw name, code or
    English word; the technical details in their <details> block."""
    from respop.strata.prediction import split_card
    from tests.strata.test_prediction import assert_plain_french

    store = Store(tiny_run.config.store.url)
    try:
        cards = store.read("model_cards", tiny_run.run_id)
    finally:
        store.close()
    assert cards.height == 3
    for card in cards["markdown"]:
        plain, technical = split_card(card)
        assert_plain_french(plain)
        assert technical is not None and "HistGradientBoostingClassifier" in technical and "`female`" in technical


def test_same_configuration_same_data_same_results(store, publication, tiny_run):
    first = store.write(publication)
    again = collect(tiny_run.config, tiny_run.config_path)
    second = store.write(again)
    assert second > first
    assert store.run(first)["results_sha256"] == store.run(second)["results_sha256"]
    for table in schema.RESULT_TABLES:
        a, b = store.read(table.name, first), store.read(table.name, second)
        assert a.equals(b), table.name
    # the earlier run stays readable
    assert store.read("indicators", first).height == publication.tables["indicators"].height


def test_a_failed_write_leaves_the_previous_run(store, publication, monkeypatch):
    first = store.write(publication)
    calls = {"n": 0}
    original = Store._insert

    def failing(connection, table, run_id, frame):
        calls["n"] += 1
        if calls["n"] == 5:
            raise RuntimeError("disk full (simulated)")
        return original(connection, table, run_id, frame)

    monkeypatch.setattr(Store, "_insert", staticmethod(failing))
    with pytest.raises(RuntimeError, match="disk full"):
        store.write(publication)
    runs = store.runs("tiny")
    assert [r["status"] for r in runs[:2]] == ["failed", "succeeded"]
    assert "disk full" in runs[0]["error"]
    assert store.latest_run("tiny") == first
    failed = runs[0]["run_id"]
    for table in schema.RESULT_TABLES:
        assert store.read(table.name, failed).is_empty(), table.name
    assert store.read("indicators", first).height == publication.tables["indicators"].height


def test_a_run_killed_in_the_middle_of_its_write_leaves_the_previous_run(store, store_url, tiny_run, publication):
    first = store.write(publication)
    env = {**os.environ, PAUSE_ENV: "60"}
    code = (
        "import sys; from pathlib import Path; from respop.config import load_config; "
        "from respop.store.db import Store; from respop.store.publish import collect; "
        "c = load_config(sys.argv[1]); Store(sys.argv[2]).write(collect(c, Path(sys.argv[1])))"
    )
    child = subprocess.Popen([sys.executable, "-c", code, str(tiny_run.config_path), store_url], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        # wait until the child is inside its write transaction (its run is recorded as running)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if any(r["status"] == "running" for r in store.runs()):
                break
            assert child.poll() is None, child.stderr.read().decode()
            time.sleep(0.2)
        else:
            pytest.fail("the child never started its write")
        time.sleep(1.0)  # the first table is written, uncommitted
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
        child.stdout.close()
        child.stderr.close()
    killed = max(r["run_id"] for r in store.runs())
    assert killed != first and store.run(killed)["status"] == "running"
    assert store.latest_run("tiny") == first
    first_table = schema.RESULT_TABLES[0].name
    assert store.read(first_table, killed).is_empty()
    for table in schema.RESULT_TABLES:
        assert store.read(table.name, first).height == publication.tables[table.name].height, table.name
    # the store is still usable
    assert store.write(publication) > killed


def test_no_patient_data_and_no_count_below_11_in_any_table(store, publication, tiny_run):
    run_id = store.write(publication)
    cases = pl.read_parquet(tiny_run.config.output.dir / "cases" / "cases.parquet")
    keys = set(cases["patient_key"].unique().to_list())
    persons = cases.filter(pl.col("is_case")).select("patient_key").n_unique()
    assert len(keys) > 100
    inspector = inspect(store.engine)
    with store.engine.connect() as connection:
        for name in inspector.get_table_names():
            described = inspector.get_columns(name)
            columns = [c["name"] for c in described]
            assert not {"patient_key", "birth_date", "date_of_birth", "age", "sex"} & set(columns), name
            for column in (c["name"] for c in described if "BLOB" not in str(c["type"]).upper()
                           and "BYTEA" not in str(c["type"]).upper()):
                values = connection.execute(text(f'SELECT DISTINCT CAST("{column}" AS TEXT) FROM "{name}"')).scalars().all()
                texts = [v for v in values if v is not None]
                # a patient key is neither a value nor inside a text (configuration, model card, report)
                assert not keys & set(texts), (name, column)
                joined = "\n".join(t for t in texts if len(t) > 12)
                assert not any(k in joined for k in list(keys)[:2000]), (name, column)
    for table in schema.RESULT_TABLES:
        frame = store.read(table.name, run_id)
        # aggregated tables: never one row per person
        assert frame.height < persons or table.name in {"survival_curves"}, table.name
        for column, dtype in frame.schema.items():
            if dtype == pl.Int64 and (table.name, column) not in PUBLIC_COUNTS and not column.endswith(("_id", "year", "level", "bin")):
                small = frame.filter(pl.col(column).is_between(1, THRESHOLD - 1))
                assert small.is_empty(), (table.name, column, small.head(3))
    # the masked cells are there and shown as missing (the boards print "< 11")
    use = store.read("care_use", run_id)
    assert use["people"].null_count() > 0
    # survival curves stop before fewer than 11 people are at risk
    curves = store.read("survival_curves", run_id)
    assert curves.height and curves["at_risk"].min() >= THRESHOLD


def test_rates_on_masked_counts_are_masked(publication):
    ind = publication.tables["indicators"]
    assert ind.filter(pl.col("cases").is_null() & pl.col("prevalence_crude").is_not_null()).is_empty()
    assert ind.filter(pl.col("incident_cases").is_null() & pl.col("incidence_std_high").is_not_null()).is_empty()
    use = publication.tables["care_use"]
    assert use.filter(pl.col("people").is_null() & pl.col("stays").is_not_null()).is_empty()
    # re-hospitalisations and deaths: per territory and area only
    zones = use.filter(pl.col("level") == "zone")
    assert zones["deaths"].null_count() == zones["readmissions_30d_per_person"].null_count() == zones.height
    assert use.filter(pl.col("level") == "area")["deaths"].null_count() < use.filter(pl.col("level") == "area").height
    assert use.filter(pl.col("stays").is_null() & pl.col("stays_per_person").is_not_null()).is_empty()
    tr = publication.tables["transitions"]
    assert tr.filter(pl.col("count").is_null() & pl.col("proportion").is_not_null()).is_empty()


def test_no_masked_count_can_be_recovered_from_the_published_relations(publication, tiny_run):
    """Within each table, every relation (strata → all, zones → territory → area, transitions →
    row total) has zero or at least two masked members, and no masked cell is determined by the
    published cells (the exact audit of respop.privacy.disclosure)."""
    from respop.privacy.disclosure import recoverable, relations_from_keys
    from respop.store.publish import geographic_relations

    zt = pl.read_parquet(tiny_run.config.output.dir / "territories" / "zone_territory.parquet").select(
        pl.col("zone_code").cast(pl.String), pl.col("territory_id").cast(pl.Int64)
    )
    raw_use = pl.read_parquet(tiny_run.config.output.dir / "strata" / "care_use.parquet").sort(
        "disease", "year", "level", "unit", "stratum"
    )
    use = publication.tables["care_use"]
    relations = geographic_relations(raw_use, "stratum", ["year", "disease"], zt)
    assert relations
    for column in ("people", "stays", "deaths"):
        masked = use[column].is_null().to_list()
        values = raw_use[column].to_list()
        exact = [r for r in relations if values[r.total] == sum(values[p] for p in r.parts)]
        for r in exact:
            n = sum(masked[c] for c in (*r.parts, r.total))
            assert n != 1, (column, r)
        assert recoverable(masked, exact) == [], column
    tr = publication.tables["transitions"]
    rel = relations_from_keys(tr, by=["disease", "year", "from_stratum"], over="to_stratum", total_value="all")
    assert recoverable(tr["count"].is_null().to_list(), rel) == []


def test_counts_tied_across_tables_cannot_be_recovered_from_them_together(publication, tiny_run):
    """Counts tied across tables: the cases of a unit and year (indicators, subtype all) are the
    people of its all stratum (care use); the people of a stratum in the area are those followed
    in the transitions plus the year's in-hospital deaths; the people at the start of a stratum's
    survival curve are its transitions row totals summed over the years. Built here independently of the store's
    code: a count published twice is masked in both tables or in neither, and no masked cell of
    any of the four columns is determined by all their relations together."""
    from respop.privacy.disclosure import Relation, exact_relations, recoverable, relations_from_keys
    from respop.store.publish import geographic_relations

    out = tiny_run.config.output.dir
    zt = pl.read_parquet(out / "territories" / "zone_territory.parquet").select(
        pl.col("zone_code").cast(pl.String), pl.col("territory_id").cast(pl.Int64)
    )
    keys = ["disease", "year", "level", "unit"]
    raw_ind = pl.read_parquet(out / "cases" / "indicators.parquet").sort(*keys[:2], "level", "unit", "subtype").with_columns(pl.col("year").cast(pl.Int64))
    raw_use = pl.read_parquet(out / "strata" / "care_use.parquet").sort(*keys[:2], "level", "unit", "stratum").with_columns(pl.col("year").cast(pl.Int64))
    ind, use, tr = (publication.tables[t] for t in ("indicators", "care_use", "transitions"))
    assert ind.select(*keys, "subtype").equals(raw_ind.select(*keys, "subtype"))
    assert use.select(*keys, "stratum").equals(raw_use.select(*keys, "stratum"))
    raw_tr = pl.read_parquet(out / "strata" / "transitions.parquet").group_by("disease", "year", pl.col("from").alias("from_stratum")).agg(
        pl.col("count").sum().alias("followed")
    ).with_columns(pl.col("year").cast(pl.Int64))
    tr = tr.with_row_index("t").join(raw_tr, on=["disease", "year", "from_stratum"], how="left")
    upper = raw_use.with_row_index("r").filter(pl.col("level") != "zone").with_row_index("u")
    # offsets of the four columns in one vector
    n_ind, n_use, n_up = raw_ind.height, raw_use.height, upper.height
    o_use, o_dead, o_tr = n_ind, n_ind + n_use, n_ind + n_use + n_up
    masked = (
        ind["cases"].is_null().to_list() + use["people"].is_null().to_list()
        + use.filter(pl.col("level") != "zone")["deaths"].is_null().to_list() + tr["count"].is_null().to_list()
    )
    shift = lambda rels, o: [Relation(r.total + o, tuple(p + o for p in r.parts)) for r in rels]  # noqa: E731
    joint = exact_relations(raw_ind["cases"].to_list(), geographic_relations(raw_ind, "subtype", ["year", "disease"], zt))
    joint += shift(exact_relations(raw_use["people"].to_list(), geographic_relations(raw_use, "stratum", ["year", "disease"], zt)), o_use)
    up_rel = geographic_relations(upper.drop("r", "u"), "stratum", ["year", "disease"], zt)
    joint += shift(exact_relations(upper["deaths"].to_list(), up_rel), o_dead)
    joint += shift(relations_from_keys(tr, by=["disease", "year", "from_stratum"], over="to_stratum", total_value="all"), o_tr)
    # a count published twice
    a = raw_ind.with_row_index("i").filter(pl.col("subtype") == "all")
    b = raw_use.with_row_index("j").filter(pl.col("stratum") == "all")
    pairs = a.join(b, on=keys).filter(pl.col("cases") == pl.col("people")).select("i", "j").rows()
    assert len(pairs) > 100
    assert all(masked[i] == masked[o_use + j] for i, j in pairs)
    joint += [Relation(i, (o_use + j,)) for i, j in pairs]
    # people of a stratum in the area = followed into N + 1 + deaths of N
    totals = tr.filter(pl.col("to_stratum") == "all").select("disease", "year", pl.col("from_stratum").alias("stratum"), "t", "followed")
    tied = upper.filter(pl.col("level") == "area").join(totals, on=["disease", "year", "stratum"]).filter(
        pl.col("people") == pl.col("followed") + pl.col("deaths")
    )
    assert tied.height > 10
    joint += [Relation(o_use + r, (o_tr + t, o_dead + u)) for r, t, u in tied.select("r", "t", "u").iter_rows()]
    # people at the start of a survival curve = the stratum's row totals over the years
    km = pl.read_parquet(out / "strata" / "survival" / "km.parquet").sort("time")
    starts = km.group_by("disease", "stratum").agg(pl.col("at_risk").first()).sort("disease", "stratum")
    shown = set(publication.tables["survival_curves"].filter(pl.col("time") == 0).select("disease", "stratum").iter_rows())
    years = totals.group_by("disease", "stratum").agg(pl.col("t"), pl.col("followed").sum())
    o_km = o_tr + tr.height
    masked += [key not in shown for key in starts.select("disease", "stratum").iter_rows()]
    summed = starts.with_row_index("k").join(years, on=["disease", "stratum"]).filter(pl.col("at_risk") == pl.col("followed"))
    assert summed.height == starts.height
    joint += [Relation(o_km + k, tuple(o_tr + t for t in ts)) for k, ts in summed.select("k", "t").iter_rows()]
    assert any(masked)
    assert recoverable(masked, joint) == []
