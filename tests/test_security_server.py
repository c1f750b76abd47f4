"""Fail closed at the door: no HTTP app without a real signing secret (gunicorn and `labelbot serve
--http` exit with one line), forged signatures get 401 from the real processes, /healthz tells nothing
about the database to strangers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

from bot.sandbox.driver import Driver
from bot.sandbox.fake_slack import FakeSlack
from storage.db import Database
from tests.conftest import BOT_TOKEN, SIGNING_SECRET, TEAM, make_spec
from tests.helpers import qualify, seed
from tests.test_replicas import ROOT, Replica, app_env, free_port

OLD_PUBLIC_SECRET = "unused-in-socket-mode"  # the stand-in secret build_app used to fall back to
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _env_without_secret(db_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "LABELBOT_", "OPENAI_"))}
    env.update(DATABASE_URL=db_url, SLACK_BOT_TOKEN=BOT_TOKEN, SLACK_API_URL="http://127.0.0.1:9/api/",
               PYTHONUNBUFFERED="1", PYTHONPATH=str(ROOT))
    return env


def _lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def test_labelbot_serve_http_without_signing_secret_exits_with_one_line(tmp_path: Path):
    env = _env_without_secret(f"sqlite:///{tmp_path / 'x.db'}")
    done = subprocess.run([sys.executable, "-m", "bot.cli", "serve", "--http", "--port", str(free_port())],
                          env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    lines = _lines(done.stderr)
    assert len(lines) == 1, done.stderr
    assert "SLACK_SIGNING_SECRET" in lines[0] and "Traceback" not in done.stderr + done.stdout


def test_gunicorn_wsgi_without_signing_secret_exits_with_one_clear_line(tmp_path: Path):
    env = _env_without_secret(f"sqlite:///{tmp_path / 'x.db'}")
    command = [sys.executable, "-m", "gunicorn", "-k", "gthread", "--workers", "1", "--bind",
               f"127.0.0.1:{free_port()}", "--no-control-socket", "bot.wsgi:application"]
    done = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)
    output = done.stdout + done.stderr
    assert done.returncode != 0, output
    reasons = [line for line in _lines(output) if line.startswith("labelbot:")]
    assert len(reasons) == 1 and "SLACK_SIGNING_SECRET" in reasons[0], output
    assert "Traceback" not in output, output
    assert not (tmp_path / "x.db").exists()  # it stopped before touching anything


def test_both_http_entry_points_refuse_requests_signed_with_any_other_secret(tmp_path: Path, clock):
    db = Database(f"sqlite:///{tmp_path / 'serve.db'}")
    db.upgrade()
    seed(db, make_spec(), clock.now(), items=[{"id": "a1", "text": "refund please"}])
    qualify(db, "intents", "U0ANN", clock.now())
    with FakeSlack(bot_token=BOT_TOKEN, team_id=TEAM) as fake:
        env = app_env(db, fake)
        replicas = [Replica.labelbot_serve("serve", env, tmp_path), Replica.gunicorn_wsgi("wsgi", env, tmp_path)]
        try:
            for replica in replicas:
                replica.start()
            for replica in replicas:
                replica.wait_ready()
                for secret in (OLD_PUBLIC_SECRET, "any-other-secret"):
                    eve = Driver(replica.url, secret, fake, TEAM, "U0LEAD", "eve")
                    # A forged /label-report "from" a lead, answering to a response_url of Eve's choosing.
                    assert eve.command("/label-report", "intents").status == 401
                    assert eve.command("/label").status == 401
                    assert eve.app_home_opened().status == 401
                ann = Driver(replica.url, SIGNING_SECRET, fake, TEAM, "U0ANN", "ann")
                assert ann.command("/label", "help").status == 200
            # The forged requests were refused at the door (synchronously): the only answers Slack ever
            # got are the two help texts.
            fake.wait_for(lambda: len(fake.responses) >= 2)
            assert [r["payload"].get("text") for r in fake.responses] == ["labelbot help"] * 2
        finally:
            for replica in replicas:
                replica.stop()
    db.dispose()


def test_healthz_says_db_unavailable_and_keeps_the_error_for_the_log(tmp_path: Path, caplog):
    from bot.runtime.server import WSGIApp, health
    from bot.sandbox.http import serve_wsgi

    broken = Database("postgresql+psycopg://labelbot_user@127.0.0.1:1/secret_db_name?connect_timeout=1")
    try:
        with serve_wsgi(WSGIApp(object(), broken)) as base:
            try:
                _OPENER.open(f"{base}/healthz", timeout=10)
                raise AssertionError("expected 503")
            except urllib.error.HTTPError as e:
                status, body = e.code, e.read().decode()
        assert status == 503
        assert json.loads(body) == {"ok": False, "db": "db unavailable"}
        for secret in ("secret_db_name", "labelbot_user", "127.0.0.1", "psycopg", "Operational"):
            assert secret not in body
        assert health(broken)[1] == {"ok": False, "db": "db unavailable"}
        assert "database is unavailable" in caplog.text and "OperationalError" in caplog.text
    finally:
        broken.dispose()


# ------------------------------------------------------------------------------------------------
# Events API: a failed first delivery is handled on Slack's retry; bookkeeping is pruned
# ------------------------------------------------------------------------------------------------


def test_a_failed_event_delivery_is_handled_on_slacks_retry(bot):
    from sqlalchemy import select

    from storage.models import ProcessedEvent

    seed(bot.db, make_spec(), bot.clock.now(), items=[{"id": "t", "text": "x"}])
    ann = bot.user("U0ANN")
    bot.fake.fail_next("views.publish", error="fatal_error")  # the first handling fails (not retried by the client)
    assert ann.app_home_opened(event_id="EvFAIL").status == 200
    bot.fake.wait_for(lambda: len(bot.fake.calls_to("views.publish")) >= 1)
    bot.deps.wait_idle()
    assert bot.fake.home("U0ANN") is None
    with bot.db.read() as s:
        assert s.scalar(select(ProcessedEvent).where(ProcessedEvent.event_id == "EvFAIL")) is None  # released
    assert ann.app_home_opened(event_id="EvFAIL", retry_num=1).status == 200  # Slack's retry
    bot.fake.wait_for(lambda: bot.fake.home("U0ANN"))
    bot.deps.wait_idle()
    assert ann.app_home_opened(event_id="EvFAIL", retry_num=2).status == 200  # handled: dropped
    bot.deps.wait_idle()
    published = [c for c in bot.fake.calls_to("views.publish")]
    assert len(published) == 2  # the failed one and the retry, not the third delivery
    with bot.db.read() as s:
        assert s.scalar(select(ProcessedEvent.state).where(ProcessedEvent.event_id == "EvFAIL")) == "done"


def test_a_claim_left_by_a_dead_replica_is_taken_over_by_a_later_retry(bot):
    from storage.models import ProcessedEvent

    seed(bot.db, make_spec(), bot.clock.now(), items=[{"id": "t", "text": "x"}])
    with bot.db.session() as s:  # a replica claimed it, then died before finishing
        s.add(ProcessedEvent(event_id="EvDEAD", state="claimed", created_at=bot.clock.now()))
    ann = bot.user("U0ANN")
    ann.app_home_opened(event_id="EvDEAD", retry_num=1)  # immediately: the claim may still be alive
    bot.deps.wait_idle()
    assert bot.fake.calls_to("views.publish") == []
    bot.clock.advance(minutes=1)  # Slack's next retry comes a minute later
    ann.app_home_opened(event_id="EvDEAD", retry_num=2)
    bot.fake.wait_for(lambda: bot.fake.home("U0ANN"))


def test_prune_bookkeeping_forgets_old_events_and_job_locks(database, clock):
    from datetime import timedelta

    from sqlalchemy import func, select

    from bot.config import Settings
    from bot.deps import Deps
    from bot.jobs import prune_bookkeeping
    from storage.models import JobLock, ProcessedEvent

    now = clock.now()
    with database.session() as s:
        for i, age in enumerate((timedelta(hours=1), timedelta(days=2), timedelta(days=3))):
            s.add(ProcessedEvent(event_id=f"Ev{i}", state="done", created_at=now - age))
        for i, age in enumerate((timedelta(days=1), timedelta(days=40))):
            s.add(JobLock(name="low-confidence:x", period=f"p{i}", created_at=now - age))
    prune_bookkeeping(Deps(settings=Settings(database_url=database.url), db=database, clock=clock))
    with database.read() as s:
        assert s.scalars(select(ProcessedEvent.event_id)).all() == ["Ev0"]
        assert sorted(s.scalars(select(JobLock.period))) == ["2026-01-05", "p0"]  # today's prune run, and p0
        assert s.scalar(select(func.count()).select_from(JobLock)) == 2
