"""The PostgreSQL fixtures of tests/conftest.py against the real server (.ci/run starts one)."""

from __future__ import annotations

import sqlalchemy as sa


def test_fresh_database_round_trip(fresh_postgres_url):
    engine = sa.create_engine(fresh_postgres_url)
    try:
        with engine.begin() as conn:
            assert conn.dialect.name == "postgresql"
            # The database is new and empty.
            assert sa.inspect(conn).get_table_names() == []
            conn.execute(sa.text("CREATE TABLE stay (id integer PRIMARY KEY, ghm text NOT NULL)"))
            conn.execute(sa.text("INSERT INTO stay VALUES (1, '05M092')"))
        with engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT id, ghm FROM stay")).all()
        assert [tuple(r) for r in rows] == [(1, "05M092")]
    finally:
        engine.dispose()


def test_fresh_databases_are_distinct(postgres_url, fresh_postgres_url):
    """Each test gets its own database, not the server's default one."""
    assert sa.make_url(fresh_postgres_url).database != sa.make_url(postgres_url).database
    assert sa.make_url(fresh_postgres_url).database.startswith("respop_test_")
