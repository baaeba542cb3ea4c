"""Fixtures shared by several test folders."""

from __future__ import annotations

import os
import uuid

os.environ.setdefault("OMP_NUM_THREADS", "1")  # before any OpenMP or BLAS library loads (see below)

import polars as pl  # noqa: E402
import pytest  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

from respop.pmsi import read_pmsi  # noqa: E402
from respop.synth import generate, load_profile  # noqa: E402

# One OpenMP and BLAS thread per test process (and per ``respop`` the tests start, through the
# environment): ``make test`` runs one pytest-xdist worker per core, and the gradient boosting's
# OpenMP threads (respop.strata.prediction) spun against the other worker's. The pipeline on tiny
# (seed 5) took 115 s of wall time with two threads on a busy machine, 17 s with one, with the
# same outputs and results_sha256 (the boosting's results do not depend on its number of
# threads). A run of the tests may set OMP_NUM_THREADS itself.
threadpool_limits(limits=int(os.environ["OMP_NUM_THREADS"]))

TINY_YEARS = [2021, 2022, 2023]
"""The years of the tiny profile."""


SCOPES = {
    "tests/spark/": "tests/spark/",
    "tests/attack/test_cross_run.py": "tests/attack/ pinned store",
    "tests/attack/test_single_run.py": "tests/attack/ pinned store",
    "tests/attack/test_integer_bounds.py": "tests/attack/ pinned store",
}
"""Modules (by path prefix) that ``make test`` hands to one worker together, as one xdist scope
(name): the Spark parity tests share one local Spark session per worker (a JVM, 2 GB) and the tiny
frames cached in it, started once rather than on both workers; the attack tests reading the pinned
store (tests/attack/conftest.py, minutes to build) would otherwise have one worker wait, idle,
while the other builds it."""

HEAVY = {
    "tests/spark/": 400,
    "tests/attack/test_property.py": 185,
    "tests/attack/ pinned store": 150,
    "tests/evaluation/test_synthetic_control.py": 95,
    "tests/strata/test_run.py": 90,
    "tests/boards/test_browser.py": 90,
    "tests/attack/test_property_regressions.py": 75,
    "tests/test_wheel_install.py": 60,
    "tests/store/test_stages_pipeline.py": 60,
    "tests/strata/test_validate_seeds.py": 45,
}
"""The longest scopes (seconds in CI's durations, rounded: only their order matters), handed out
first, longest first; every other scope counts 0 and follows in collection order."""


def scope_of(nodeid: str) -> str:
    """The xdist scope of a test: its module, or the group of :data:`SCOPES` it is in."""
    for prefix, scope in SCOPES.items():
        if nodeid.startswith(prefix):
            return scope
    return nodeid.split("::", 1)[0]


def pytest_collection_modifyitems(session, config, items):
    """The longest scopes first (:data:`HEAVY`), then the modules holding a test marked slow, then
    the others; each module's tests in their own order.

    ``make test`` runs ``--dist loadscope``: xdist hands whole scopes to its workers in the order
    they are collected (:func:`pytest_xdist_make_scheduler`; by default xdist 3.6+ reorders them by
    their number of tests, which put the one-test modules of minutes, such as the attack property
    test, last), so a scope of several minutes collected last would keep one worker
    busy while the other is idle (the longest processing time first, as a scheduler would).
    Whether a run with all the tests or a few, the order within a module is unchanged."""
    slow = {scope_of(item.nodeid) for item in items if item.get_closest_marker("slow") is not None}
    items.sort(key=lambda item: (-HEAVY.get(scope_of(item.nodeid), 0), scope_of(item.nodeid) not in slow))


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """``--dist loadscope`` with the groups of :data:`SCOPES` as one scope each (see there), in
    the order of :func:`pytest_collection_modifyitems` (``--loadscope-reorder``, xdist 3.6+'s
    default, turned off here rather than by ``--no-loadscope-reorder``, which xdist 3.5 lacks)."""
    if config.getvalue("dist") != "loadscope":
        return None
    from xdist.scheduler import LoadScopeScheduling

    config.option.loadscopereorder = False

    class Scheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            scope = scope_of(nodeid)
            return scope if scope in SCOPES.values() else super()._split_scope(nodeid)

    return Scheduling(config, log)


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
