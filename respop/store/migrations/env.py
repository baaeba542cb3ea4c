"""Alembic environment of the results store (run by ``respop.store.db.Store.upgrade``).

``Store.upgrade`` passes its open connection in ``config.attributes["connection"]``; the
``alembic`` command line can be used too, with ``-x url=<SQLAlchemy URL>``.
"""

from alembic import context
from sqlalchemy import create_engine

from respop.store.schema import metadata

config = context.config


def run_migrations(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",  # SQLite alters tables by copy
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


connection = config.attributes.get("connection")
if connection is not None:
    run_migrations(connection)
else:
    url = context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option("sqlalchemy.url")
    if not url:
        raise SystemExit("give the store's URL: alembic -x url=sqlite:///path/respop.sqlite upgrade head")
    with create_engine(url).begin() as conn:
        run_migrations(conn)
