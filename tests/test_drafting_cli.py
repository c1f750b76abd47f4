"""`labelbot draft` end to end: the real CLI, a file SQLite database, FakeOpenAI over HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from bot.cli import cli, load_commands
from bot.core.clock import SystemClock
from bot.sandbox.fake_openai import FakeOpenAI
from storage.db import Database
from storage.models import BatchJob, Draft
from tests.conftest import make_spec
from tests.helpers import seed
from tests.test_drafting import good_answer


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[tuple[Database, FakeOpenAI, dict[str, str]]]:
    load_commands()
    db = Database(f"sqlite:///{tmp_path / 'cli.db'}")
    db.upgrade()
    seed(db, make_spec(llm={"concurrency": 2}), SystemClock().now(),
         items=[{"id": f"i{n}", "text": f"text {n} crash"} for n in range(5)])
    with FakeOpenAI(responder=good_answer) as fake:
        env = {"DATABASE_URL": db.url, "OPENAI_API_KEY": "sk-test", "OPENAI_BASE_URL": fake.base_url}
        yield db, fake, env
    db.dispose()


def _drafts(db: Database) -> list[Draft]:
    with db.read() as s:
        return list(s.scalars(select(Draft).order_by(Draft.id)))


def test_draft_sync_with_limit_then_the_rest(setup) -> None:  # type: ignore[no-untyped-def]
    db, _fake, env = setup
    runner = CliRunner()
    out = runner.invoke(cli, ["draft", "intents", "--limit", "2"], env=env)
    assert out.exit_code == 0, out.output
    assert "intents: 2 drafted (2 ok)" in out.output and "model test-model" in out.output
    out = runner.invoke(cli, ["draft", "intents"], env=env)
    assert "3 drafted (3 ok)" in out.output
    assert [d.status for d in _drafts(db)] == ["ok"] * 5
    out = runner.invoke(cli, ["draft", "intents"], env=env)
    assert "0 drafted" in out.output


def test_draft_batch_then_collect_twice(setup) -> None:  # type: ignore[no-untyped-def]
    db, fake, env = setup
    runner = CliRunner()
    out = runner.invoke(cli, ["draft", "intents", "--batch"], env=env)
    assert out.exit_code == 0, out.output
    assert "submitted batch batch_" in out.output and "5 requests" in out.output
    out = runner.invoke(cli, ["draft", "intents", "--collect"], env=env)
    assert "is still validating" in out.output
    fake.complete_batches()
    out = runner.invoke(cli, ["draft", "intents", "--collect"], env=env)
    assert "collected 1 batch(es): 5 ok drafts" in out.output
    out = runner.invoke(cli, ["draft", "intents", "--collect"], env=env)
    assert "no batch to collect" in out.output
    assert [d.status for d in _drafts(db)] == ["ok"] * 5
    with db.read() as s:
        assert s.scalar(select(BatchJob.status)) == "completed"


def test_draft_errors_are_one_clear_sentence(setup) -> None:  # type: ignore[no-untyped-def]
    db, fake, env = setup
    runner = CliRunner()
    no_key = runner.invoke(cli, ["draft", "intents"], env={**env, "OPENAI_API_KEY": ""})
    assert no_key.exit_code == 2 and "set OPENAI_API_KEY" in no_key.output and "Traceback" not in no_key.output
    unknown = runner.invoke(cli, ["draft", "nope"], env=env)
    assert unknown.exit_code == 2 and "No project 'nope'" in unknown.output
    both = runner.invoke(cli, ["draft", "intents", "--batch", "--collect"], env=env)
    assert both.exit_code == 2 and "Choose one of --batch and --collect" in both.output
    fake.fail_next(401, path="/v1/files")
    refused = runner.invoke(cli, ["draft", "intents", "--batch"], env=env)
    assert refused.exit_code == 2 and "refused" in refused.output
    assert _drafts(db) == []  # the claims were given back
