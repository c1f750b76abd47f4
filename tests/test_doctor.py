"""`labelbot doctor` against the fake Slack and the fake OpenAI: a healthy set-up passes, and each
injected fault is found (that check fails with a fix, the others still pass), through the real clients."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from bot.config import Settings
from bot.core.clock import FakeClock
from bot.sandbox.fake_openai import FakeOpenAI
from bot.sandbox.fake_slack import DEFAULT_SCOPES, FakeSlack
from bot.services.doctor import BotToken, DoctorReport, Status, render_text, run_checks
from bot.slack.client import make_client
from bot.slack.manifest import bot_scopes
from storage.db import Database
from tests.conftest import BOT_TOKEN, SIGNING_SECRET, TEAM, make_spec
from tests.helpers import seed

ROOT = Path(__file__).resolve().parents[1]
APP_TOKEN = "xapp-test"
UNREACHABLE_PG = "postgresql+psycopg://postgres@127.0.0.1:1/nothing"
CLOSED_PORT_URL = "http://127.0.0.1:9/v1"  # the discard port: nothing listens there


@dataclass
class Setup:
    settings: Settings
    fake: FakeSlack
    llm: FakeOpenAI
    db: Database

    def run(self, *, http: bool = False, llm_call: bool = False, **overrides: Any) -> DoctorReport:
        settings = replace(self.settings, **overrides)
        bots = [BotToken("SLACK_BOT_TOKEN", make_client(settings))] if settings.slack_bot_token else []
        return run_checks(settings, http=http, bots=bots, required_scopes=bot_scopes(),
                          app_client_factory=lambda token: make_client(settings, token=token), llm_call=llm_call)


@pytest.fixture
def setup(database: Database) -> Iterator[Setup]:
    """A healthy set-up: every check passes."""
    clock = FakeClock()
    seed(database, make_spec(report={"channel": "#labeling"}, llm={"model": "test-model"}), clock.now(),
         items=[{"id": "a", "text": "refund please"}])
    with FakeSlack(bot_token=BOT_TOKEN, team_id=TEAM, app_token=APP_TOKEN) as fake, \
            FakeOpenAI(api_key="sk-test", models=["test-model", "other-model"]) as llm:
        fake.add_channel("labeling")
        settings = Settings(database_url=database.url, slack_bot_token=BOT_TOKEN, slack_app_token=APP_TOKEN,
                            slack_signing_secret=SIGNING_SECRET, slack_api_url=fake.api_url,
                            openai_api_key="sk-test", openai_base_url=llm.base_url)
        yield Setup(settings, fake, llm, database)


def statuses(report: DoctorReport) -> dict[str, Status]:
    return {c.name: c.status for c in report.checks}


def only_failure(report: DoctorReport, name: str) -> Any:
    """The one failed check is `name`; it has a fix. Returns it."""
    assert not report.ok
    failed = report.failed
    assert [c.name for c in failed] == [name], render_text(report)
    assert failed[0].fix, failed[0]
    return failed[0]


def test_a_healthy_setup_passes_every_check(setup: Setup) -> None:
    report = setup.run()
    assert report.ok, render_text(report)
    assert statuses(report) == {
        "Slack bot token (SLACK_BOT_TOKEN)": Status.OK,
        "Slack scopes (SLACK_BOT_TOKEN)": Status.OK,
        "Socket Mode app token": Status.OK,
        "Database": Status.OK,
        "Database schema": Status.OK,
        "LLM server": Status.OK,
        "LLM model test-model": Status.OK,
        "Projects' workspace": Status.OK,
        "Report channel of intents": Status.OK,
    }
    token = report.checks[0]
    assert token.detail == "workspace Test Team (T0TEST), bot user @labelbot (U0BOT)"
    (head,) = healthy_db_heads(report)
    assert report.checks[4].detail == f"at {head} (the latest migration)"
    text = render_text(report)
    assert text.splitlines()[1].startswith("✔ Slack bot token") and text.endswith("All good.")
    # HTTP instead of Socket Mode, and one real completion per model instead of models.list.
    http = setup.run(http=True, llm_call=True)
    assert http.ok, render_text(http)
    assert "HTTP request signing" in statuses(http)
    assert len(setup.llm.chat_requests()) == 1
    assert setup.fake.calls_to("chat.postMessage") == []  # the doctor writes nothing to Slack


def test_bad_bot_token(setup: Setup) -> None:
    failed = only_failure(setup.run(slack_bot_token="xoxb-not-this-one"), "Slack bot token (SLACK_BOT_TOKEN)")
    assert "invalid_auth" in failed.detail and "Bot User OAuth Token" in failed.fix


def test_no_bot_token_at_all(setup: Setup) -> None:
    report = setup.run(slack_bot_token=None)
    failed = report.failed[0]
    assert failed.name == "Slack bot token" and "SLACK_BOT_TOKEN is not set" in failed.detail


def test_missing_scope_names_it_and_says_reinstall(setup: Setup) -> None:
    setup.fake.scopes = [s for s in DEFAULT_SCOPES if s != "files:write"]
    failed = only_failure(setup.run(), "Slack scopes (SLACK_BOT_TOKEN)")
    assert failed.detail.startswith("missing files:write") and "reinstall" in failed.fix.lower()


def test_socket_mode_without_app_token_and_http_without_signing_secret(setup: Setup) -> None:
    failed = only_failure(setup.run(slack_app_token=None), "Socket Mode app token")
    assert "SLACK_APP_TOKEN is not set" in failed.detail and "connections:write" in failed.fix
    failed = only_failure(setup.run(slack_app_token="xapp-revoked"), "Socket Mode app token")
    assert "invalid_auth" in failed.detail
    failed = only_failure(setup.run(http=True, slack_signing_secret=None), "HTTP request signing")
    assert "Signing Secret" in failed.fix


def test_database_down(setup: Setup) -> None:
    report = setup.run(database_url=UNREACHABLE_PG)
    failed = only_failure(report, "Database")
    assert "cannot connect to postgresql+psycopg://postgres@127.0.0.1:1/nothing" in failed.detail
    assert statuses(report)["Database schema"] is Status.SKIP
    assert statuses(report)["Report channels"] is Status.SKIP


def test_unmigrated_schema(setup: Setup, tmp_path: Path) -> None:
    empty = tmp_path / "empty.db"
    sqlite3.connect(empty).close()
    failed = only_failure(setup.run(database_url=f"sqlite:///{empty}"), "Database schema")
    assert "never migrated" in failed.detail and "labelbot db upgrade" in failed.fix
    missing = tmp_path / "nowhere.db"
    failed = setup.run(database_url=f"sqlite:///{missing}").failed[0]
    assert failed.name == "Database" and "no database file" in failed.detail
    assert not missing.exists()  # the doctor does not create it


def test_llm_down(setup: Setup) -> None:
    report = setup.run(openai_base_url=CLOSED_PORT_URL)
    failed = only_failure(report, "LLM server")
    assert "cannot reach the server" in failed.detail and "OPENAI_BASE_URL" in failed.fix
    assert statuses(report)["LLM models"] is Status.SKIP


def test_llm_key_rejected(setup: Setup) -> None:
    failed = only_failure(setup.run(openai_api_key="sk-wrong"), "LLM server")
    assert "rejected OPENAI_API_KEY" in failed.detail


def test_unknown_model_from_the_list_and_from_one_call(setup: Setup) -> None:
    setup.llm.models = ["other-model"]
    failed = only_failure(setup.run(), "LLM model test-model")
    assert "not among the server's models (other-model)" in failed.detail and "llm.model" in failed.fix
    failed = only_failure(setup.run(llm_call=True), "LLM model test-model")
    assert "404" in failed.detail and "llm.model" in failed.fix


def test_no_llm_configured_is_not_a_failure(setup: Setup) -> None:
    report = setup.run(openai_api_key=None)
    assert report.ok and statuses(report)["LLM server"] is Status.SKIP


def test_bot_not_in_the_report_channel(setup: Setup) -> None:
    setup.fake.add_channel("C0OUTSIDE", bot_member=False)
    with setup.db.session() as s:  # the channel by id this time
        from bot.services.projects import get_project

        project = get_project(s, "intents")
        project.spec = {**project.spec, "report": {**project.spec["report"], "channel": "C0OUTSIDE"}}
    failed = only_failure(setup.run(), "Report channel of intents")
    assert "not a member of #c0outside (C0OUTSIDE)" in failed.detail
    assert failed.fix == "In #c0outside type /invite @labelbot"


def test_report_channel_that_does_not_exist(setup: Setup) -> None:
    with setup.db.session() as s:
        from bot.services.projects import get_project

        project = get_project(s, "intents")
        project.spec = {**project.spec, "report": {**project.spec["report"], "channel": "#nowhere"}}
    failed = only_failure(setup.run(), "Report channel of intents")
    assert "no such channel" in failed.detail


def test_project_of_another_workspace(setup: Setup) -> None:
    with setup.db.session() as s:
        from bot.services.projects import get_project

        get_project(s, "intents").team_id = "T0OTHER"
    report = setup.run()
    assert [c.name for c in report.failed] == ["Projects' workspace"]
    assert statuses(report)["Report channel of intents"] is Status.SKIP


def test_the_command_prints_marks_and_fixes_and_exits_nonzero_on_a_failure(setup: Setup) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "LABELBOT_", "OPENAI_"))}
    s = setup.settings
    env.update(PYTHONPATH=str(ROOT), DATABASE_URL=s.database_url, SLACK_BOT_TOKEN=BOT_TOKEN,
               SLACK_APP_TOKEN=APP_TOKEN, SLACK_API_URL=s.slack_api_url, OPENAI_API_KEY="sk-test",
               OPENAI_BASE_URL=s.openai_base_url or "", PYTHONIOENCODING="utf-8")

    def doctor(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "bot.cli", "doctor", *args], env=env, cwd=ROOT,
                              capture_output=True, text=True, timeout=120)

    healthy = doctor()
    assert healthy.returncode == 0, healthy.stdout + healthy.stderr
    assert healthy.stdout.count("✔") == 9 and "✘" not in healthy.stdout
    env["SLACK_APP_TOKEN"] = ""
    broken = doctor("--json")
    assert broken.returncode == 1, broken.stdout + broken.stderr
    data = json.loads(broken.stdout)
    assert data["ok"] is False and data["mode"] == "socket"
    (failed,) = [c for c in data["checks"] if c["status"] == "fail"]
    assert failed["name"] == "Socket Mode app token" and failed["fix"]
    text = doctor()
    assert "✘ Socket Mode app token: SLACK_APP_TOKEN is not set" in text.stdout
    assert "    fix: Set SLACK_APP_TOKEN" in text.stdout and text.stdout.rstrip().endswith("1 problem(s) to fix.")


def test_several_workspaces_check_each_installed_token(setup: Setup) -> None:
    from datetime import UTC, datetime

    from slack_sdk.oauth.installation_store import Installation
    from slack_sdk.oauth.installation_store.sqlalchemy import SQLAlchemyInstallationStore

    from bot.cli.doctor import _oauth_bots

    settings = replace(setup.settings, slack_bot_token=None, slack_client_id="cid", slack_client_secret="secret")
    assert _oauth_bots(settings) == []  # no installation table yet
    report = run_checks(settings, http=False, bots=[], required_scopes=bot_scopes())
    assert report.failed[0].name == "Slack bot token" and "no workspace has installed" in report.failed[0].detail

    store = SQLAlchemyInstallationStore(client_id="cid", engine=setup.db.engine)
    store.create_tables()
    for token, when in (("xoxb-old", 1.0), (BOT_TOKEN, datetime.now(UTC).timestamp())):  # the newest one counts
        store.save(Installation(app_id="A0TEST", team_id=TEAM, bot_token=token, bot_id="B0BOT", bot_user_id="U0BOT",
                                bot_scopes=list(bot_scopes()), user_id="U0LEAD", installed_at=when))
    bots = _oauth_bots(settings)
    assert [b.source for b in bots] == [f"workspace {TEAM}"]
    report = run_checks(settings, http=False, bots=bots, required_scopes=bot_scopes(),
                        app_client_factory=lambda token: make_client(settings, token=token))
    assert report.ok, render_text(report)
    assert statuses(report)[f"Slack bot token (workspace {TEAM})"] is Status.OK


def healthy_db_heads(report) -> tuple[str, ...]:  # type: ignore[no-untyped-def]
    """The migrations' head revision(s), read from the migration scripts (not from the database)."""
    from alembic.script import ScriptDirectory

    from storage.db import alembic_config

    return tuple(ScriptDirectory.from_config(alembic_config("sqlite://")).get_heads())
