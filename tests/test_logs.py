"""Logs: quiet libraries, JSON lines with project / user / request ids, the start-up line, no misleading
Bolt warning; and a start-up that does not import the statistics and plotting libraries."""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.config import Settings
from bot.core import logctx
from bot.deps import Pool
from bot.runtime import logs
from bot.runtime.server import startup_line
from tests.conftest import make_spec
from tests.helpers import qualify, seed

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    """`logs.configure` writing to a buffer; the root logger and the quiet loggers are put back after."""
    root = logging.getLogger()
    saved = (list(root.handlers), root.level, {n: logging.getLogger(n).level for n in logs.QUIET_LOGGERS})
    buffer = io.StringIO()
    try:
        yield buffer
    finally:
        for handler in list(root.handlers):
            if handler not in saved[0]:
                root.removeHandler(handler)
        root.setLevel(saved[1])
        for name, level in saved[2].items():
            logging.getLogger(name).setLevel(level)


def records(buffer: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in buffer.getvalue().splitlines()]


def test_json_lines_carry_project_user_and_request(stream: io.StringIO) -> None:
    logs.configure("INFO", "json", stream=stream)
    logctx.set_request("req-1", "U0ANN")
    with logctx.about_project("intents"):
        logging.getLogger("labelbot.test").info("drafted %d items", 3)
    logctx.set_request(None, None)
    try:
        raise ValueError("boom")
    except ValueError:
        logging.getLogger("labelbot.test").exception("it failed")
    first, second = records(stream)
    assert set(first) == {"time", "level", "logger", "message", "project", "user_id", "request_id", "process"}
    assert (first["level"], first["logger"], first["message"]) == ("INFO", "labelbot.test", "drafted 3 items")
    assert (first["project"], first["user_id"], first["request_id"]) == ("intents", "U0ANN", "req-1")
    assert first["time"].endswith("Z") and "T" in first["time"]
    assert second["project"] is None and "ValueError: boom" in second["exception"]


def test_libraries_that_talk_every_tick_stay_at_warning(stream: io.StringIO) -> None:
    logs.configure("INFO", "text", stream=stream)
    logging.getLogger("apscheduler.executors.default").info('Running job "expire_leases"')
    logging.getLogger("alembic.runtime.migration").info("Context impl SQLiteImpl.")
    logging.getLogger("gunicorn.error").info("Booting worker with pid: 1")
    assert stream.getvalue() == ""
    logging.getLogger("apscheduler.executors.default").warning("Job raised")
    assert "WARNING apscheduler.executors.default: Job raised" in stream.getvalue()
    logs.configure("DEBUG", "text", stream=stream)  # DEBUG lets them talk again
    logging.getLogger("alembic.runtime.migration").info("Context impl SQLiteImpl.")
    assert "Context impl" in stream.getvalue()


def test_bad_settings_fall_back_and_say_so(stream: io.StringIO) -> None:
    logs.configure("LOUD", "xml", stream=stream)
    text = stream.getvalue()
    assert "LABELBOT_LOG_LEVEL='LOUD'" in text and "LABELBOT_LOG_FORMAT='xml'" in text
    assert logging.getLogger().level == logging.INFO


def test_a_listener_s_lines_carry_its_request(stream: io.StringIO, sqlite_bot: Any) -> None:
    """Through the real app: a /label whose DM cannot be posted logs the failure with the user, the
    project and the request id (set in the request thread, carried into Bolt's listener pool)."""
    logs.configure("INFO", "json", stream=stream)
    bot = sqlite_bot
    seed(bot.db, make_spec(), bot.clock.now(), items=[{"id": "a", "text": "refund please"}])
    qualify(bot.db, "intents", "U0ANN", bot.clock.now())
    bot.fake.fail_next("chat.postMessage", "fatal_error")
    assert bot.user("U0ANN").command("/label").status == 200
    assert bot.deps.wait_idle()
    about = [r for r in records(stream) if r["user_id"] == "U0ANN"]
    assert about, stream.getvalue()
    assert all(r["project"] == "intents" and r["request_id"] for r in about)


def test_pool_tasks_run_in_the_submitter_s_context() -> None:
    pool = Pool(2, "ctx-test")
    try:
        logctx.set_request("req-9", "U0POOL")
        seen = pool.submit(logctx.fields).result(timeout=5)
        logctx.set_request(None, None)
        assert seen == {"project": None, "user_id": "U0POOL", "request_id": "req-9"}
        assert pool.submit(logctx.fields).result(timeout=5)["user_id"] is None
    finally:
        pool.shutdown()


def test_no_warning_that_the_token_is_unused(caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch,
                                             sqlite_db: Any) -> None:
    from bot.app import build_app, build_deps

    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-test")  # Bolt reads it and would warn
    settings = Settings(database_url=sqlite_db.url, slack_bot_token="xoxb-test", slack_signing_secret="s")
    deps = build_deps(settings, db=sqlite_db)
    with caplog.at_level(logging.WARNING):
        build_app(deps)
    deps.close()
    assert not [r for r in caplog.records if "unused" in r.getMessage()], caplog.text


def test_startup_line_says_mode_url_path_database_and_workers() -> None:
    settings = Settings(database_url="postgres://bob:s3cret@db:5432/labelbot?sslmode=require", metrics=True)
    line = startup_line(settings, http=True, host="0.0.0.0", port=3000, workers=2, threads=8)
    assert line.startswith("labelbot serving HTTP on 0.0.0.0:3000 with 2 worker(s) x 8 thread(s); "
                           "Slack request URL: https://YOUR-HOST/slack/events")
    assert "database postgresql+psycopg://bob:***@db:5432/labelbot?sslmode=require" in line
    assert "s3cret" not in line and "metrics /metrics" in line
    socket = startup_line(Settings(), http=False, scheduler=False)
    assert socket.startswith("labelbot connected to Slack in Socket Mode") and "scheduler off" in socket


def test_start_up_imports_no_statistics_or_plotting() -> None:
    """`labelbot serve` builds the CLI, the deps, the app and the runtime (scheduler included) without
    pandas, numpy, scipy, statsmodels or matplotlib; a report loads them when it runs."""
    code = """
import json, sys
from bot.cli import load_commands
from bot.config import Settings
from bot.runtime.server import Runtime
load_commands()
settings = Settings(database_url="sqlite://", slack_bot_token="xoxb-x", slack_signing_secret="s",
                    openai_api_key="sk-x", metrics=True)
runtime = Runtime.build(settings)
heavy = ("pandas", "numpy", "scipy", "statsmodels", "matplotlib", "pyarrow", "krippendorff")
before = sorted(m for m in heavy if m in sys.modules)
from bot.services import reports
reports.report_for  # the names are there; nothing is built
still = sorted(m for m in heavy if m in sys.modules)
from bot.services.reports import build  # what a report imports
print(json.dumps([before, still, "pandas" in sys.modules]))
runtime.stop()
"""
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
    before, still, after = json.loads(done.stdout.strip().splitlines()[-1])
    assert before == [] and still == [] and after is True
