"""Engine and session factory for SQLite (default, WAL) and PostgreSQL, plus migrations.

`Database.session()` is a unit of work that commits on success and rolls back on error. On SQLite
it begins with BEGIN IMMEDIATE so that concurrent writers queue on the busy timeout instead of
failing half way; `Database.read()` opens a deferred transaction for reports and exports.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def normalize_url(url: str) -> str:
    """Accept plain postgres:// URLs and route them to psycopg 3."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    return url


def display_url(url: str) -> str:
    """The URL without its password (also dropped from the query string), safe for logs and output."""
    try:
        parsed = make_url(normalize_url(url))
    except Exception:  # not a URL we understand: show nothing of it rather than a secret
        return "(unparsable database URL)"
    query = {k: v for k, v in parsed.query.items() if k.lower() not in ("password", "passfile")}
    return parsed.set(query=query).render_as_string(hide_password=True)


class Database:
    def __init__(self, url: str, *, echo: bool = False, pool_size: int = 10) -> None:
        self.url = normalize_url(url)
        parsed = make_url(self.url)
        self.dialect = parsed.get_backend_name()
        self._local = threading.local()
        self._write_lock: contextlib.AbstractContextManager = (
            threading.RLock() if self.dialect == "sqlite" else contextlib.nullcontext()
        )
        if self.dialect == "sqlite":
            database = parsed.database or ""
            if database and database != ":memory:":
                Path(database).parent.mkdir(parents=True, exist_ok=True)
            self.engine: Engine = create_engine(
                self.url,
                echo=echo,
                connect_args={"timeout": 30, "check_same_thread": False, "isolation_level": None},
            )
            event.listen(self.engine, "connect", self._sqlite_connect)
            event.listen(self.engine, "begin", self._sqlite_begin)
        else:
            self.engine = create_engine(
                self.url, echo=echo, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True
            )
        self._factory = sessionmaker(self.engine, expire_on_commit=False)

    @property
    def is_postgres(self) -> bool:
        return self.dialect == "postgresql"

    @staticmethod
    def _sqlite_connect(dbapi_conn, _record) -> None:
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    def _sqlite_begin(self, conn) -> None:
        mode = "DEFERRED" if getattr(self._local, "read_only", False) else "IMMEDIATE"
        conn.exec_driver_sql(f"BEGIN {mode}")

    @contextlib.contextmanager
    def session(self) -> Iterator[Session]:
        """A write unit of work: commit on success, roll back on any error.

        On SQLite, writers of this process queue on a lock instead of SQLite's busy timeout (which
        backs off by sleeping); other processes still queue on the busy timeout."""
        with self._write_lock, self._factory() as session, session.begin():
            yield session

    @contextlib.contextmanager
    def read(self) -> Iterator[Session]:
        """A read-only unit of work (no write lock on SQLite)."""
        self._local.read_only = True
        try:
            # Closing (not rolling back) ends the transaction and leaves loaded objects readable.
            with self._factory() as session:
                yield session
        finally:
            self._local.read_only = False

    def ping(self) -> bool:
        with self.engine.connect() as conn:
            return conn.execute(text("SELECT 1")).scalar() == 1

    def upgrade(self, revision: str = "head") -> None:
        """Run Alembic migrations up to `revision`."""
        from alembic import command

        self._local.read_only = False
        with self.engine.begin() as conn:
            cfg = alembic_config(self.url)
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, revision)

    def schema_revisions(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """(the revisions the database is at, the head revisions of the migrations); the first is
        empty for a database never migrated. Reads only: nothing is created."""
        from alembic.runtime.migration import MigrationContext
        from alembic.script import ScriptDirectory

        with self.engine.connect() as conn:
            current = tuple(sorted(MigrationContext.configure(conn).get_current_heads()))
        heads = tuple(sorted(ScriptDirectory.from_config(alembic_config(self.url)).get_heads()))
        return current, heads

    def dispose(self) -> None:
        self.engine.dispose()


def alembic_config(url: str):
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg
