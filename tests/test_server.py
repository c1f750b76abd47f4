"""bot.server: /healthz, routing, `labelbot serve --http` under gunicorn (two workers, a scheduler in
each, graceful SIGTERM), and Socket Mode wiring."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from io import BytesIO
from pathlib import Path
from typing import Any
from wsgiref.util import setup_testing_defaults

from sqlalchemy import func, select

from bot.app import Deps
from bot.config import Settings
from bot.runtime.server import WSGIApp, gunicorn_options, health, startup_lock, upgrade
from bot.sandbox.driver import Driver
from bot.sandbox.http import serve_wsgi
from storage.db import Database
from storage.models import Label
from tests.conftest import BOT_TOKEN, SIGNING_SECRET, TEAM, make_spec
from tests.helpers import qualify, seed
from tests.test_faults import TimedFakeSlack
from tests.test_replicas import Replica, app_env

UNREACHABLE_PG = "postgresql+psycopg://postgres@127.0.0.1:1/nothing?connect_timeout=1"
ITEMS = [{"id": f"s{i}", "text": f"Server example {i}: please refund me"} for i in range(6)]


def call(wsgi: Any, path: str, method: str = "GET") -> tuple[str, dict[str, str], bytes]:
    environ: dict[str, Any] = {"PATH_INFO": path, "REQUEST_METHOD": method, "wsgi.input": BytesIO(b"")}
    setup_testing_defaults(environ)
    seen: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
        seen["status"], seen["headers"] = status, dict(headers)

    body = b"".join(wsgi(environ, start_response))
    return seen["status"], seen["headers"], body


def _settings(db: Database, fake: Any) -> Settings:
    return Settings(database_url=db.url, slack_bot_token=BOT_TOKEN, slack_signing_secret=SIGNING_SECRET,
                    slack_api_url=fake.api_url)


def test_healthz_is_200_with_a_database_and_503_without(sqlite_db, fake_slack, clock):
    from bot.runtime.server import Runtime

    settings = _settings(sqlite_db, fake_slack)
    runtime = Runtime.build(settings, scheduler=False, deps=Deps(settings=settings, db=sqlite_db, clock=clock))
    status, headers, body = call(runtime.wsgi, "/healthz")
    assert status.startswith("200") and headers["Content-Type"] == "application/json"
    assert json.loads(body) == {"ok": True, "db": "ok"}

    broken = Database(UNREACHABLE_PG)
    try:
        status, _, body = call(WSGIApp(runtime.app, broken), "/healthz")
        assert status.startswith("503")
        answer = json.loads(body)
        assert answer == {"ok": False, "db": "db unavailable"}
        assert health(broken)[0] == 503
    finally:
        broken.dispose()

    assert call(runtime.wsgi, "/nothing-here")[0].startswith("404")
    assert call(runtime.wsgi, "/slack/install")[0].startswith("404")  # no OAuth configured
    with serve_wsgi(runtime.wsgi) as base:
        forged = Driver(f"{base}/slack/events", SIGNING_SECRET, fake_slack, TEAM, "U0EVE", "eve")
        assert forged.command("/label", bad_signature=True).status == 401


def test_gunicorn_options_and_startup_lock(database):
    options = gunicorn_options(host="127.0.0.1", port=3999, workers=3, threads=6, graceful_timeout=12)
    assert options["worker_class"] == "gthread" and options["bind"] == "127.0.0.1:3999"
    assert (options["workers"], options["threads"], options["graceful_timeout"]) == (3, 6, 12)
    assert options["preload_app"] is False
    with startup_lock(database, "test"):  # reentrant across calls, released afterwards
        pass
    upgrade(database)  # already at head: a no-op under the lock


def test_labelbot_serve_http_two_workers_scheduler_and_graceful_sigterm(tmp_path: Path, clock):
    db = Database(f"sqlite:///{tmp_path / 'serve.db'}")
    db.upgrade()
    seed(db, make_spec(), clock.now(), items=ITEMS)
    qualify(db, "intents", "U0ANN", clock.now())
    with TimedFakeSlack(bot_token=BOT_TOKEN, team_id=TEAM) as fake:
        env = {**app_env(db, fake), "LABELBOT_LOG_LEVEL": "DEBUG"}  # the per-worker lines are DEBUG
        server = Replica.labelbot_serve("serve", env, tmp_path, workers=2, threads=4)
        server.command.remove("--no-scheduler")
        server.start()
        try:
            server.wait_ready()
            deadline = time.monotonic() + 60
            while len(re.findall(r"worker \d+ ready", server.log_text())) < 2 and time.monotonic() < deadline:
                time.sleep(0.1)
            ann = Driver(server.url, SIGNING_SECRET, fake, TEAM, "U0ANN", "ann")
            assert ann.command("/label").status == 200
            msg = fake.wait_for(lambda: fake.last_message(ann.dm), timeout=10)
            assert ann.click(msg, "label.choose:0").status == 200
            msg = fake.wait_for(lambda: len(fake.messages(ann.dm)) == 2 and fake.last_message(ann.dm), timeout=10)

            # A click whose listener is still talking to Slack when SIGTERM arrives is finished.
            fake.delays["chat.postMessage"] = 1.5
            started = time.monotonic()
            assert ann.click(msg, "label.choose:1").status == 200
            assert time.monotonic() - started < 1.0  # acked before the slow part
            time.sleep(0.2)
            assert server.terminate(timeout=30) == 0
            leftovers = subprocess.run(["pgrep", "-f", "--", f"--port {server.port} "], capture_output=True,
                                       text=True).stdout.split()
            assert leftovers == [], "gunicorn workers outlived their master"
            assert len(fake.messages(ann.dm)) == 3  # the delayed next example went out before exit
            with db.read() as s:
                assert s.scalar(select(func.count()).select_from(Label)) == 2
            log = server.log_text()
            assert log.count("scheduler started in process") == 2  # one per worker
            assert "Traceback" not in log, log
        finally:
            server.stop()
    db.dispose()


def test_socket_mode_connects_and_shuts_down_on_sigterm(tmp_path: Path, monkeypatch):
    import slack_bolt.adapter.socket_mode as socket_mode

    from bot.runtime import server

    events: list[str] = []

    class FakeHandler:
        def __init__(self, app: Any, app_token: str) -> None:
            events.append(f"init {app_token}")

        def connect(self) -> None:
            events.append("connect")
            os.kill(os.getpid(), signal.SIGTERM)  # what an orchestrator sends to stop the pod

        def close(self) -> None:
            events.append("close")

    monkeypatch.setattr(socket_mode, "SocketModeHandler", FakeHandler)
    monkeypatch.setattr(server.logs, "configure", lambda *a, **k: None)  # leave pytest's logging alone
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'sm.db'}", slack_bot_token=BOT_TOKEN,
                        slack_app_token="xapp-test", slack_api_url="http://127.0.0.1:9/api/")
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        server.run(settings, http=False, scheduler=False)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    assert events == ["init xapp-test", "connect", "close"]
    with Database(settings.database_url).read() as s:  # migrated before serving
        assert s.scalar(select(func.count()).select_from(Label)) == 0


def test_socket_mode_answers_healthz_and_metrics_on_a_given_port(tmp_path: Path, monkeypatch):
    """No HTTP server for Slack in Socket Mode, but a container healthcheck and Prometheus need one."""
    import urllib.request

    import slack_bolt.adapter.socket_mode as socket_mode

    from bot.runtime import metrics, server
    from tests.test_replicas import free_port

    port = free_port()
    seen: dict[str, Any] = {}

    class FakeHandler:
        def __init__(self, app: Any, app_token: str) -> None:
            pass

        def connect(self) -> None:
            base = f"http://127.0.0.1:{port}"
            with urllib.request.urlopen(f"{base}/healthz", timeout=5) as r:
                seen["healthz"] = (r.status, json.loads(r.read()))
            with urllib.request.urlopen(f"{base}/metrics", timeout=5) as r:
                seen["metrics"] = r.read().decode()
            try:
                urllib.request.urlopen(urllib.request.Request(f"{base}/slack/events", data=b"{}"), timeout=5)
            except urllib.error.HTTPError as e:
                seen["slack"] = e.code
            os.kill(os.getpid(), signal.SIGTERM)

        def close(self) -> None:
            pass

    monkeypatch.setattr(socket_mode, "SocketModeHandler", FakeHandler)
    monkeypatch.setattr(server.logs, "configure", lambda *a, **k: None)
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'sm.db'}", slack_bot_token=BOT_TOKEN,
                        slack_app_token="xapp-test", slack_api_url="http://127.0.0.1:9/api/", metrics=True)
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        server.run(settings, http=False, scheduler=False, host="127.0.0.1", ops_port=port)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    assert seen["healthz"] == (200, {"ok": True, "db": "ok"})
    assert "labelbot_database_up 1.0" in seen["metrics"]
    assert seen["slack"] == 404  # Slack's requests come over the websocket, never this port
    assert metrics._active is None  # the runtime's stop uninstalled its metrics
