"""Shared fixtures: databases (SQLite and PostgreSQL), the fake Slack, the real Bolt app over HTTP.

PostgreSQL tests use LABELBOT_TEST_POSTGRES_URL (e.g. postgresql+psycopg://postgres@127.0.0.1:5432/test);
each test gets its own schema. Locally a missing server skips them loudly; in CI (CI=true) they fail.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from bot.config import Settings
from bot.core.clock import FakeClock
from bot.spec import parse_spec
from storage.db import Database, normalize_url

PG_ENV = "LABELBOT_TEST_POSTGRES_URL"
SIGNING_SECRET = "test-signing-secret"
BOT_TOKEN = "xoxb-test"
TEAM = "T0TEST"


def _pg_base_url() -> str | None:
    url = os.environ.get(PG_ENV, "").strip()
    if not url:
        if os.environ.get("CI"):
            pytest.fail(f"{PG_ENV} is not set: CI must run the PostgreSQL tests")
        pytest.skip(f"PostgreSQL tests skipped: set {PG_ENV} (e.g. postgresql+psycopg://postgres@127.0.0.1:5432/test)")
    return normalize_url(url)


def _pg_schema_database() -> Iterator[Database]:
    base = _pg_base_url()
    assert base is not None
    schema = f"lbt_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    except Exception as e:  # server down locally: skip loudly, fail in CI
        admin.dispose()
        if os.environ.get("CI"):
            raise
        pytest.skip(f"PostgreSQL at {base} is not reachable: {e}")
    sep = "&" if "?" in base else "?"
    db = Database(f"{base}{sep}options=-csearch_path%3D{schema}", pool_size=5)
    try:
        db.upgrade()
        yield db
    finally:
        db.dispose()
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """A migrated, empty database: every test using it runs on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        db = Database(f"sqlite:///{tmp_path / 'labelbot.db'}")
        db.upgrade()
        yield db
        db.dispose()
    else:
        yield from _pg_schema_database()


@pytest.fixture
def sqlite_db(tmp_path: Path) -> Iterator[Database]:
    db = Database(f"sqlite:///{tmp_path / 'labelbot.db'}")
    db.upgrade()
    yield db
    db.dispose()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def make_spec(**overrides: Any) -> Any:
    data: dict[str, Any] = {
        "slug": "intents",
        "name": "Support intents",
        "task": "classification",
        "labels": [
            {"name": "billing", "description": "Charges, refunds, invoices"},
            {"name": "bug", "description": "Something is broken"},
            {"name": "feature", "description": "A request for something new"},
        ],
        "instructions": "Pick the customer's main intent.",
        "redundancy": 3,
        "blind_every": 0,
        "gold_rate": 0,
        "quiz": {"size": 4, "pass_mark": 0.75, "cooldown_hours": 24},
        "members": {"leads": ["U0LEAD"], "experts": ["U0EXPERT"]},
        "llm": {"model": "test-model"},
    }
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key] = {**data[key], **value}
        else:
            data[key] = value
    return parse_spec(data)


@dataclass
class Bot:
    """The running system: real Bolt app over HTTP, fake Slack, database, clock, deps."""

    url: str
    fake: Any
    db: Database
    clock: FakeClock
    deps: Any
    app: Any

    def user(self, user_id: str) -> Any:
        from bot.sandbox.driver import Driver

        return Driver(self.url, SIGNING_SECRET, self.fake, TEAM, user_id, user_id.lower())


@pytest.fixture
def fake_slack() -> Iterator[Any]:
    from bot.sandbox.fake_slack import FakeSlack

    with FakeSlack(bot_token=BOT_TOKEN, team_id=TEAM) as fake:
        yield fake


def start_bot(db: Database, fake: Any, clock: FakeClock, *, pacer: Any = None, **settings_overrides: Any) -> Any:
    """Build the real app through the composition root and serve it over HTTP. Returns a context
    manager. DM pacing is off unless a `pacer` is given; drafting is off (no OpenAI key) unless the
    overrides set one."""
    import contextlib

    from slack_bolt.adapter.wsgi import SlackRequestHandler

    from bot.app import build_app, build_deps
    from bot.sandbox.http import serve_wsgi

    settings = Settings(
        database_url=db.url, slack_bot_token=BOT_TOKEN, slack_signing_secret=SIGNING_SECRET,
        slack_api_url=fake.api_url, dm_rate=0, **settings_overrides,
    )

    @contextlib.contextmanager
    def running() -> Iterator[Bot]:
        deps = build_deps(settings, clock=clock, db=db, pacer=pacer)
        app = build_app(deps)
        try:
            with serve_wsgi(SlackRequestHandler(app)) as base:
                yield Bot(f"{base}/slack/events", fake, db, clock, deps, app)
        finally:
            deps.close()

    return running()


@pytest.fixture
def bot(database: Database, fake_slack: Any, clock: FakeClock) -> Iterator[Bot]:
    with start_bot(database, fake_slack, clock) as running:
        yield running


@pytest.fixture
def sqlite_bot(sqlite_db: Database, fake_slack: Any, clock: FakeClock) -> Iterator[Bot]:
    with start_bot(sqlite_db, fake_slack, clock) as running:
        yield running
