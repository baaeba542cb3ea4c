"""The results store: SQLite (default, embedded) or PostgreSQL, through SQLAlchemy 2.

:meth:`Store.write` writes a :class:`~respop.store.publish.Publication` as **one transaction**:
the run's row is first recorded as ``running`` (committed on its own, so that an interrupted run
can be seen), then every result row and the ``succeeded`` status are committed together. A run
that fails is marked ``failed`` with its error and has no result row; a run killed in the middle
of its write leaves its row ``running`` and nothing else — the database rolls the transaction back.
The ``running`` row records its process (``timings.process``: host, pid, start): the next write
marks ``interrupted`` the runs whose process has ended on this host (:meth:`Store.mark_interrupted`).
Readers only ever see runs that ``succeeded``; earlier runs stay readable by their ``run_id``.

The schema is created and upgraded by the Alembic migrations shipped in
``respop/store/migrations`` (:meth:`Store.upgrade`, run before every write).
"""

from __future__ import annotations

import datetime as dt
import os
import time
from collections.abc import Iterable
from pathlib import Path

import polars as pl
from sqlalchemy import Engine, create_engine, event, func, insert, select, update
from sqlalchemy.engine import make_url

from respop.errors import ConfigError, DiskFullError, is_disk_full
from respop.fsutil import identity_alive, process_identity
from respop.store import schema
from respop.store.schema import polars_schema
from respop.store.publish import Publication

MIGRATIONS = Path(__file__).parent / "migrations"
BATCH = 5_000
PAUSE_ENV = "RESPOP_STORE_TEST_PAUSE"
"""Tests only: seconds to sleep inside the write transaction, after the first table (to kill the
process there and check that the previous results are intact)."""


def _engine(url: str) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url)

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_connection, _record):  # pragma: no cover - trivial
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA journal_mode=WAL")  # boards read while a run writes
            cursor.close()

        return engine
    try:
        return create_engine(url, pool_pre_ping=True)
    except ModuleNotFoundError as exc:  # the driver is missing
        raise ConfigError(
            f"the store URL needs the database driver {exc.name!r}: pip install 'respop[postgres]'"
        ) from None


class Store:
    """A results store at ``url`` (SQLAlchemy URL)."""

    def __init__(self, url: str):
        self.url = url
        self.engine = _engine(url)

    def __repr__(self) -> str:
        from respop.secrets import hide_url_password

        return f"Store({hide_url_password(self.url)!r})"

    def close(self) -> None:
        self.engine.dispose()

    # -- schema -----------------------------------------------------------------------------

    def upgrade(self) -> None:
        """Create or upgrade the schema to the latest migration (Alembic)."""
        from alembic import command
        from alembic.config import Config as AlembicConfig

        cfg = AlembicConfig()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        with self.engine.begin() as connection:
            cfg.attributes["connection"] = connection
            command.upgrade(cfg, "head")

    def revision(self) -> str | None:
        from alembic.runtime.migration import MigrationContext

        with self.engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()

    # -- writing ----------------------------------------------------------------------------

    def write(self, publication: Publication) -> int:
        """Write one run; returns its ``run_id``. All or nothing (module docstring)."""
        self.upgrade()
        self.mark_interrupted()
        run = publication.run
        fields = {c.name for c in schema.runs.columns}
        with self.engine.begin() as connection:
            run_id = connection.execute(
                insert(schema.runs)
                .values(
                    **{k: v for k, v in run.items() if k in fields and k not in ("timings", "started_at")},
                    timings={**(run.get("timings") or {}), "process": process_identity()},
                    status="running",
                    started_at=run.get("started_at") or dt.datetime.now(),
                )
                .returning(schema.runs.c.run_id)
            ).scalar_one()
        # the store step counts from its start (the publication's collect included), else from here
        store_started = run.get("store_started_at") or dt.datetime.now()
        try:
            with self.engine.begin() as connection:
                for i, table in enumerate(schema.RESULT_TABLES):
                    frame = publication.tables[table.name]
                    self._insert(connection, table, run_id, frame)
                    if i == 0 and os.environ.get(PAUSE_ENV):
                        time.sleep(float(os.environ[PAUSE_ENV]))
                finished = dt.datetime.now()
                timings = dict(run.get("timings") or {})
                timings["store"] = round((finished - store_started).total_seconds(), 2)
                timings["clock"] = {**(timings.get("clock") or {}), "store": [store_started.isoformat(), finished.isoformat()]}
                connection.execute(
                    update(schema.runs)
                    .where(schema.runs.c.run_id == run_id)
                    .values(status="succeeded", finished_at=finished, timings=timings)
                )
        except BaseException as exc:
            if is_disk_full(exc):  # one clear line; the transaction rolled back, earlier runs untouched
                marked = self._mark_failed_quietly(run_id, "disk full while writing the run: nothing of it was written")
                state = "this run is marked failed" if marked else "this run's row could not be marked failed and stays 'running'"
                raise DiskFullError(f"the store {self!r}", f"its previous runs are intact ({state})") from None
            from respop.secrets import redact_text  # no URL password in the stored error

            with self.engine.begin() as connection:
                connection.execute(
                    update(schema.runs)
                    .where(schema.runs.c.run_id == run_id)
                    .values(status="failed", finished_at=dt.datetime.now(),
                            error=redact_text(f"{type(exc).__name__}: {exc}", self.url)[:2000])
                )
            raise
        return run_id

    def _mark_failed_quietly(self, run_id: int, error: str) -> bool:
        """Mark a run ``failed`` if the database still can (a full disk may refuse even that)."""
        try:
            with self.engine.begin() as connection:
                connection.execute(
                    update(schema.runs)
                    .where(schema.runs.c.run_id == run_id)
                    .values(status="failed", finished_at=dt.datetime.now(), error=error)
                )
        except Exception:  # noqa: BLE001 - the run then stays 'running' (the message says so)
            return False
        return True

    def mark_interrupted(self) -> list[int]:
        """Mark ``interrupted`` the runs left ``running`` by a process of this host that has ended
        (killed in the middle of its write: its row records the process in ``timings.process``).
        Runs of a process that still runs, of another host, or without that record stay
        ``running``. Returns the run ids marked."""
        if not self._has_schema():
            return []
        with self.engine.begin() as connection:
            rows = connection.execute(
                select(schema.runs.c.run_id, schema.runs.c.timings).where(schema.runs.c.status == "running")
            ).all()
            ended = [(r.run_id, r.timings["process"]) for r in rows if identity_alive((r.timings or {}).get("process")) is False]
            for run_id, process in ended:
                connection.execute(
                    update(schema.runs)
                    .where(schema.runs.c.run_id == run_id, schema.runs.c.status == "running")
                    .values(
                        status="interrupted",
                        finished_at=dt.datetime.now(),
                        error=f"interrupted: process {process['pid']} on {process['host']} ended during its write "
                        "(killed or crashed); nothing of it was written",
                    )
                )
        return [run_id for run_id, _ in ended]

    @staticmethod
    def _insert(connection, table, run_id: int, frame: pl.DataFrame) -> None:
        if frame.is_empty():
            return
        columns = schema.published_columns(table)
        rows = frame.select(columns).with_columns(pl.lit(run_id, pl.Int64).alias("run_id")).to_dicts()
        for offset in range(0, len(rows), BATCH):
            connection.execute(insert(table), rows[offset : offset + BATCH])

    # -- reading ----------------------------------------------------------------------------

    def runs(self, name: str | None = None) -> list[dict]:
        """Every run (newest first), with its status; ``name``: one configuration's runs."""
        query = select(schema.runs).order_by(schema.runs.c.run_id.desc())
        if name is not None:
            query = query.where(schema.runs.c.name == name)
        if not self._has_schema():
            return []
        with self.engine.connect() as connection:
            return [dict(row._mapping) for row in connection.execute(query)]

    def latest_run(self, name: str | None = None) -> int | None:
        """The newest run that succeeded (of ``name`` when given), or None."""
        if not self._has_schema():
            return None
        query = select(func.max(schema.runs.c.run_id)).where(schema.runs.c.status == "succeeded")
        if name is not None:
            query = query.where(schema.runs.c.name == name)
        with self.engine.connect() as connection:
            return connection.execute(query).scalar()

    def run(self, run_id: int) -> dict | None:
        with self.engine.connect() as connection:
            row = connection.execute(select(schema.runs).where(schema.runs.c.run_id == run_id)).first()
        return dict(row._mapping) if row is not None else None

    def read(self, table: str, run_id: int, **equals) -> pl.DataFrame:
        """Rows of ``table`` for ``run_id`` (without the ``run_id`` column), filtered by
        ``column=value`` (a list or tuple: any of the values)."""
        try:
            sa_table = schema.metadata.tables[table]
        except KeyError:
            raise ValueError(f"no table {table!r} in the store; tables: {sorted(schema.metadata.tables)}") from None
        if table == "runs":
            raise ValueError("read runs with Store.runs() or Store.run()")
        query = (
            select(*[sa_table.c[name] for name in schema.published_columns(sa_table)])
            .where(sa_table.c.run_id == run_id)
            .order_by(sa_table.c.row_id)
        )
        for column, value in equals.items():
            if column not in sa_table.c:
                raise ValueError(f"table {table!r} has no column {column!r}")
            if isinstance(value, (list, tuple, set)):
                query = query.where(sa_table.c[column].in_(list(value)))
            else:
                query = query.where(sa_table.c[column] == value)
        types = {k: v for k, v in polars_schema(sa_table).items() if k not in schema.STORE_KEYS}
        with self.engine.connect() as connection:
            rows = connection.execute(query).all()
        return pl.DataFrame([tuple(r) for r in rows], schema=types, orient="row")

    def tables(self) -> Iterable[str]:
        return [t.name for t in schema.RESULT_TABLES]

    def _has_schema(self) -> bool:
        from sqlalchemy import inspect

        return inspect(self.engine).has_table("runs")
