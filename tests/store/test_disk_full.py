"""A store whose disk fills up in the middle of a run: one clear error (DiskFullError, no
traceback), the earlier runs intact and readable, the failed run marked failed with nothing of it
written (docs/store.md, docs/architecture.md "Error policy"). SQLite is made "full" with
``PRAGMA max_page_count``; a PostgreSQL disk_full (SQLSTATE 53100) is simulated on both."""

from __future__ import annotations

import pytest
from sqlalchemy import event
from sqlalchemy.exc import OperationalError

from respop.errors import DiskFullError
from respop.store import schema
from respop.store.db import Store
from respop.store.publish import collect


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.sqlite'}"
    return request.getfixturevalue("fresh_postgres_url")


@pytest.fixture(scope="module")
def publication(tiny_run):
    return collect(tiny_run.config, tiny_run.config_path)


def assert_previous_run_intact(store: Store, first: int, publication) -> int:
    runs = store.runs("tiny")
    assert runs[1]["run_id"] == first and runs[1]["status"] == "succeeded"
    assert store.latest_run("tiny") == first
    for table in schema.RESULT_TABLES:
        assert store.read(table.name, first).height == publication.tables[table.name].height, table.name
        assert store.read(table.name, runs[0]["run_id"]).is_empty(), table.name
    return runs[0]["run_id"]


def test_a_full_sqlite_database_keeps_its_previous_runs(tmp_path, publication):
    store = Store(f"sqlite:///{tmp_path / 'store.sqlite'}")
    try:
        first = store.write(publication)
        with store.engine.connect() as connection:
            pages = connection.exec_driver_sql("PRAGMA page_count").scalar()

        @event.listens_for(store.engine, "connect")
        def _full(dbapi_connection, _record):  # the database cannot grow past a few more pages
            cursor = dbapi_connection.cursor()
            cursor.execute(f"PRAGMA max_page_count = {pages + 4}")
            cursor.close()

        store.engine.dispose()
        with pytest.raises(DiskFullError) as err:
            store.write(publication)
        assert str(err.value).startswith(f"disk full while writing the store {store!r}: its previous runs are intact")
        assert "this run is marked failed" in str(err.value)
        failed = assert_previous_run_intact(store, first, publication)
        assert store.run(failed)["status"] == "failed"
        assert store.run(failed)["error"].startswith("disk full while writing the run")
    finally:
        store.close()


class _DiskFull(Exception):
    sqlstate = "53100"  # PostgreSQL's disk_full, as psycopg reports it


def test_a_postgresql_disk_full_is_the_same_error(store_url, publication, monkeypatch):
    store = Store(store_url)
    try:
        first = store.write(publication)
        original = Store._insert
        calls = {"n": 0}

        def failing(connection, table, run_id, frame):
            calls["n"] += 1
            if calls["n"] == 3:
                raise OperationalError("INSERT INTO care_use …", {}, _DiskFull("could not extend file"))
            return original(connection, table, run_id, frame)

        monkeypatch.setattr(Store, "_insert", staticmethod(failing))
        with pytest.raises(DiskFullError, match="its previous runs are intact"):
            store.write(publication)
        failed = assert_previous_run_intact(store, first, publication)
        assert store.run(failed)["status"] == "failed"
        # the database refuses even to mark the run: the error says so, the earlier runs stay
        calls["n"] = 0
        monkeypatch.setattr(Store, "_mark_failed_quietly", lambda self, run_id, error: False)
        with pytest.raises(DiskFullError, match="could not be marked failed and stays 'running'"):
            store.write(publication)
        assert store.latest_run("tiny") == first
    finally:
        store.close()
