"""Fixtures shared by several test folders."""

from __future__ import annotations

import os
import uuid

import polars as pl
import pytest

from respop.pmsi import read_pmsi
from respop.synth import generate, load_profile

TINY_YEARS = [2021, 2022, 2023]
"""The years of the tiny profile."""


def pytest_collection_modifyitems(session, config, items):
    """The modules holding a test marked slow first, each module's tests in their own order.

    ``make test`` runs ``--dist loadscope``: xdist hands whole modules to its workers in the order
    they are collected, so a module of several minutes collected last keeps one worker busy while
    the other is idle (the longest processing time first, as a scheduler would). Whether a run
    with all the tests or a few, the order within a module is unchanged."""
    slow_modules = {item.module.__name__ for item in items if item.get_closest_marker("slow") is not None}
    items.sort(key=lambda item: item.module.__name__ not in slow_modules)


@pytest.fixture(scope="session")
def tiny_canonical(tmp_path_factory):
    """``tiny`` (seed 7) read by respop.pmsi: collected stays and diagnoses, and the planted
    zone → territory table; generated once per test session (shared by the workers,
    tests/shared.py), read per worker."""
    from tests.shared import build_once

    out, built = build_once(tmp_path_factory, "tiny_seed7", lambda folder: {"years": generate(load_profile("tiny"), seed=7, out=folder).years})
    assert built["years"] == TINY_YEARS
    data = read_pmsi(out / "pmsi").staged()
    stays = data.stays.collect()
    diagnoses = data.diagnoses.collect()
    zone_territory = pl.read_parquet(out / "truth" / "zone_territory.parquet")
    yield stays, diagnoses, zone_territory
    data.close()


# --- PostgreSQL ---------------------------------------------------------------------------------
# The tests needing a real server get it from RESPOP_TEST_POSTGRES_URL (a SQLAlchemy URL such as
# postgresql+psycopg://respop:respop@127.0.0.1:5432/respop); .ci/run starts a local cluster and
# sets it. Without it, or when the server does not answer, those tests skip, saying so.

POSTGRES_URL_ENV = "RESPOP_TEST_POSTGRES_URL"
"""The environment variable naming the test PostgreSQL server."""

_POSTGRES_SKIP = f"PostgreSQL not available: set {POSTGRES_URL_ENV} (.ci/run starts one)"


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """The URL of the test PostgreSQL server, checked to connect; skips the test otherwise. The
    role must be allowed to create databases (for ``fresh_postgres_url``)."""
    url = os.environ.get(POSTGRES_URL_ENV, "").strip()
    if not url:
        pytest.skip(_POSTGRES_SKIP)
    try:
        import sqlalchemy as sa

        engine = sa.create_engine(url, connect_args={"connect_timeout": 5})
        try:
            with engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
        finally:
            engine.dispose()
    except Exception as exc:  # no driver, server down, bad credentials...
        first_line = (str(exc).strip().splitlines() or [""])[0]
        pytest.skip(f"{_POSTGRES_SKIP}; connecting failed: {type(exc).__name__}: {first_line}")
    return url


@pytest.fixture
def fresh_postgres_url(postgres_url):
    """The URL of a new, empty database on the test server, uniquely named (safe under
    pytest-xdist); dropped after the test, even if the test left connections open."""
    import sqlalchemy as sa

    server = sa.make_url(postgres_url)
    name = f"respop_test_{uuid.uuid4().hex[:16]}"
    admin = sa.create_engine(server, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        yield server.set(database=name).render_as_string(hide_password=False)
        _drop_database(admin, name)
    finally:
        admin.dispose()


def _drop_database(admin, name: str, attempts: int = 20) -> None:
    """Drop a test database. Our own sessions left open are ended first, as the test role may end
    them. ``DROP ... WITH (FORCE)`` is not used: on PostgreSQL 15 it refuses, to a role without
    pg_signal_backend, when an autovacuum worker happens to be in the database ("must be a member
    of the role whose process is being terminated"), whereas a plain DROP cancels autovacuum
    itself. The drop is retried while another session is still leaving."""
    import time

    import sqlalchemy as sa

    for attempt in range(attempts):
        with admin.connect() as conn:
            conn.execute(
                sa.text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = :name AND usename = current_user AND pid <> pg_backend_pid()"
                ),
                {"name": name},
            )
            try:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}"'))
                return
            except sa.exc.OperationalError:  # 55006 object_in_use: a session is still leaving
                if attempt == attempts - 1:
                    raise
        time.sleep(0.25)


# --- Browser ------------------------------------------------------------------------------------
# chromium_executable: the system Chromium's path, or a skip saying it is absent (tests/browser.py).
from tests.browser import chromium_executable  # noqa: E402, F401
