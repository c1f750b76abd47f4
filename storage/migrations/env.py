"""Alembic environment: runs on the connection handed in by storage.db.Database.upgrade."""

from alembic import context
from sqlalchemy import create_engine

from storage.models import Base

config = context.config
target_metadata = Base.metadata


def run() -> None:
    connection = config.attributes.get("connection")
    if connection is None:
        engine = create_engine(config.get_main_option("sqlalchemy.url"))
        with engine.begin() as conn:
            _configure_and_run(conn)
        engine.dispose()
    else:
        _configure_and_run(connection)


# Tables owned by slack_sdk's OAuth stores (created by them, not by our migrations).
FOREIGN_TABLES = {"slack_installations", "slack_bots", "slack_oauth_states"}


def _include_object(obj, name, type_, reflected, compare_to) -> bool:  # type: ignore[no-untyped-def]
    return not (type_ == "table" and name in FOREIGN_TABLES)


def _configure_and_run(connection) -> None:  # type: ignore[no-untyped-def]
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        include_object=_include_object,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


run()
