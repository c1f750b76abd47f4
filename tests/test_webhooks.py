"""Webhooks: events from the real labeling loop, delivered to a local HTTP receiver, signed, retried after a
500 and after the delivering process is killed, once across replicas, and the CLI."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from sqlalchemy import select

from bot import jobs
from bot.core.signing import sign, verify
from bot.sandbox.http import FakeHTTPServer, Request, Response
from bot.services import webhooks
from bot.services.projects import get_project, spec_of
from storage.models import WebhookDelivery
from tests.conftest import make_spec
from tests.helpers import qualify, seed

SECRET = "whsec-0123456789abcdef"
ROOT = Path(__file__).resolve().parents[1]


class Receiver(FakeHTTPServer):
    """Records every POST; answers `statuses` in turn (then 200); `hold` blocks requests until released."""

    def __init__(self, statuses: list[int] | None = None) -> None:
        super().__init__()
        self.requests: list[Request] = []
        self.statuses = list(statuses or [])
        self.hold = threading.Event()
        self.hold.set()
        self.arrived = threading.Event()
        self.lock = threading.Lock()

    def handle(self, request: Request) -> Response:
        with self.lock:
            self.requests.append(request)
            status = self.statuses.pop(0) if self.statuses else 200
        self.arrived.set()
        self.hold.wait(30)
        return Response(status, {"ok": status == 200})

    def events(self) -> list[dict]:
        return [r.json() for r in self.requests]

    def ids(self) -> list[str]:
        return [r.headers["x-labelbot-event-id"] for r in self.requests]


@pytest.fixture
def receiver():
    with Receiver() as r:
        yield r


def hooked_spec(url: str, **overrides):
    return make_spec(webhooks=[{"url": url, "secret": SECRET}], **overrides)


def enqueue_events(db, slug: str, n: int, now: datetime) -> list[str]:
    ids = []
    with db.session() as s:
        project = get_project(s, slug)
        for i in range(n):
            ids.append(webhooks.enqueue(s, project, spec_of(project), "item.completed", {"n": i}, now))
    return ids


def test_signature_round_trip():
    body = b'{"id":"evt_1"}'
    sig = sign(SECRET, 1_700_000_000, body)
    assert sig.startswith("v1=") and len(sig) == 67
    assert verify(SECRET, "1700000000", body, sig, now=1_700_000_100)
    assert not verify(SECRET, "1700000000", body + b" ", sig, now=1_700_000_100)  # the body was changed
    assert not verify("another-secret-value", "1700000000", body, sig, now=1_700_000_100)
    assert not verify(SECRET, "1700000000", body, sig, now=1_700_000_000 + 301)  # too old: a replay


def test_labeling_events_are_delivered_signed(bot, receiver):
    seed(bot.db, hooked_spec(receiver.root_url + "/hook", redundancy=1), bot.clock.now(),
         items=[{"id": "t1", "text": "I was charged twice", "channel": "chat"}, {"id": "t2", "text": "hmm"}])
    qualify(bot.db, "intents", "U0ANN", bot.clock.now())
    ann = bot.user("U0ANN")
    ann.command("/label")
    msg = bot.fake.wait_for(lambda: bot.fake.last_message(ann.dm))
    ann.click(msg, "label.choose:0")  # billing: t1 is complete
    second = bot.fake.wait_for(lambda: len(bot.fake.messages(ann.dm)) == 2 and bot.fake.last_message(ann.dm))
    ann.click(second, "label.ambiguous")  # t2 goes to the expert queue
    bot.fake.wait_for(lambda: "queue is empty" in (bot.fake.last_message(ann.dm) or {}).get("text", ""))
    bot.deps.wait_idle()
    assert receiver.requests == []  # nothing is sent from the click: the scheduler delivers

    jobs.deliver_webhooks(bot.deps)
    assert len(receiver.requests) == 2
    for request in receiver.requests:
        h = request.headers
        assert h["content-type"] == "application/json"
        assert verify(SECRET, h["x-labelbot-timestamp"], request.body, h["x-labelbot-signature"],
                      now=bot.clock.now().timestamp())
        assert h["x-labelbot-event-id"] == request.json()["id"] and h["x-labelbot-attempt"] == "1"
    completed, escalated = receiver.events()
    assert completed["type"] == "item.completed" and completed["project"] == "intents"
    assert completed["data"]["item"] == {"id": "t1", "text": "I was charged twice", "metadata": {"channel": "chat"},
                                         "status": "complete", "answer": "billing", "source": "crowd", "labels": 1}
    assert escalated["type"] == "item.escalated"
    assert escalated["data"]["item"]["reason"] == "flagged ambiguous by U0ANN"
    jobs.deliver_webhooks(bot.deps)
    assert len(receiver.requests) == 2  # delivered rows are not sent again


def test_a_500_is_retried_with_backoff(database, clock):
    with Receiver(statuses=[500, 503]) as receiver:
        seed(database, hooked_spec(receiver.root_url), clock.now())
        (event_id,) = enqueue_events(database, "intents", 1, clock.now())
        run = webhooks.deliver_due(database, clock.now)
        assert (run.delivered, run.retrying) == (0, 1) and run.attempts[0].status == 500
        assert webhooks.deliver_due(database, clock.now).claimed == 0  # not due yet
        clock.advance(seconds=10)  # the first retry waits 10 s, the second 30 s
        assert webhooks.deliver_due(database, clock.now).retrying == 1
        clock.advance(seconds=29)
        assert webhooks.deliver_due(database, clock.now).claimed == 0
        clock.advance(seconds=1)
        assert webhooks.deliver_due(database, clock.now).delivered == 1
        assert receiver.ids() == [event_id] * 3
        assert [r.headers["x-labelbot-attempt"] for r in receiver.requests] == ["1", "2", "3"]
    with database.read() as s:
        row = s.scalar(select(WebhookDelivery))
    assert (row.status, row.attempts, row.last_status, row.last_error) == ("delivered", 3, 200, None)


def test_backoff_grows_and_gives_up(sqlite_db, clock, monkeypatch):
    assert [webhooks.backoff(n).total_seconds() for n in (1, 2, 3, 4)] == [10, 30, 90, 270]
    assert webhooks.backoff(20).total_seconds() == 6 * 3600
    monkeypatch.setattr(webhooks, "MAX_ATTEMPTS", 2)
    seed(sqlite_db, hooked_spec("http://127.0.0.1:9/closed"), clock.now())  # nobody listens on port 9
    enqueue_events(sqlite_db, "intents", 1, clock.now())
    assert webhooks.deliver_due(sqlite_db, clock.now, timeout=2).retrying == 1
    clock.advance(seconds=10)
    run = webhooks.deliver_due(sqlite_db, clock.now, timeout=2)
    assert run.failed == 1 and "Connection" in run.attempts[0].error
    clock.advance(days=3)
    assert webhooks.deliver_due(sqlite_db, clock.now).claimed == 0  # failed rows wait for a replay


KILLED_WORKER = """
import sys
from datetime import UTC, datetime
from bot.services.webhooks import deliver_due
from storage.db import Database
deliver_due(Database(sys.argv[1]), lambda: datetime.now(UTC), timeout=30)
"""


def test_a_killed_worker_loses_no_event(sqlite_db, clock):
    with Receiver() as receiver:
        seed(sqlite_db, hooked_spec(receiver.root_url), clock.now())
        (event_id,) = enqueue_events(sqlite_db, "intents", 1, clock.now())
        receiver.hold.clear()  # the receiver takes the request and does not answer...
        env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
        proc = subprocess.Popen([sys.executable, "-c", KILLED_WORKER, sqlite_db.url], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            assert receiver.arrived.wait(60), proc.stderr.read() if proc.poll() is not None else "no request"
            os.kill(proc.pid, signal.SIGKILL)  # ...and the delivering process dies mid-request
            proc.wait(10)
        finally:
            if proc.poll() is None:
                proc.kill()
            receiver.hold.set()
        with sqlite_db.read() as s:
            row = s.scalar(select(WebhookDelivery))
        assert row.status == "pending" and row.claimed_until is not None  # the claim outlives its worker
        now = datetime.now(UTC)
        assert webhooks.deliver_due(sqlite_db, lambda: now).claimed == 0  # honoured while it lasts
        later = now + webhooks.claim_lease(30) + timedelta(seconds=1)
        assert webhooks.deliver_due(sqlite_db, lambda: later).delivered == 1
        assert receiver.ids() == [event_id, event_id]  # delivered at least once, de-duplicable by id


def test_replicas_deliver_each_event_once(database, clock):
    with Receiver() as receiver:
        seed(database, hooked_spec(receiver.root_url), clock.now())
        ids = enqueue_events(database, "intents", 40, clock.now())
        runs: list = []
        barrier = threading.Barrier(3)

        def replica() -> None:
            barrier.wait()
            runs.append(webhooks.deliver_due(database, clock.now))

        threads = [threading.Thread(target=replica) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert sorted(receiver.ids()) == sorted(ids)  # each event once, none twice
        assert sum(r.delivered for r in runs) == 40


def test_the_daily_report_event_needs_no_channel(bot, receiver):
    hook = {"url": receiver.root_url, "secret": SECRET, "events": ["report.daily"]}
    seed(bot.db, make_spec(webhooks=[hook], report={"time": "00:00"}), bot.clock.now(),
         items=[{"id": "t1", "text": "x"}])
    from bot.services.reports import run_due_reports

    (outcome,) = run_due_reports(bot.deps)
    assert outcome.status == "posted" and run_due_reports(bot.deps) == []  # once a day
    jobs.deliver_webhooks(bot.deps)
    (event,) = receiver.events()
    assert event["type"] == "report.daily" and event["data"]["day"] == bot.clock.now().date().isoformat()
    assert event["data"]["report"]["project"] == "intents" and event["data"]["slack"] is None


def test_a_removed_webhook_drops_its_deliveries(sqlite_db, clock):
    from bot.services.projects import update_project

    seed(sqlite_db, hooked_spec("http://127.0.0.1:9/x"), clock.now())
    enqueue_events(sqlite_db, "intents", 1, clock.now())
    with sqlite_db.session() as s:
        update_project(s, make_spec(), clock.now())
    assert webhooks.deliver_due(sqlite_db, clock.now).dropped == 1


def test_cli_list_test_and_replay(sqlite_db, clock, monkeypatch):
    from bot.cli.webhooks import COMMANDS

    monkeypatch.setenv("DATABASE_URL", sqlite_db.url)
    group = click.Group("labelbot", commands={c.name: c for c in COMMANDS})

    def run(*args: str):
        return CliRunner().invoke(group, list(args), catch_exceptions=False)

    with Receiver(statuses=[500]) as receiver:
        seed(sqlite_db, hooked_spec(receiver.root_url + "/in"), clock.now())
        res = run("webhooks", "intents", "test")
        assert res.exit_code == 0, res.output
        assert "NOT delivered" in res.output and "HTTP 500" in res.output and "1 to retry" in res.output
        res = run("webhooks", "intents")
        assert f"{receiver.root_url}/in  [item.completed, item.escalated, report.daily]  secret wh…22 chars" \
            in res.output
        assert "pending 1" in res.output and "last error: HTTP 500" in res.output and SECRET not in res.output
        enqueue_events(sqlite_db, "intents", 1, datetime.now(UTC))
        res = run("webhooks", "intents", "replay", "--since", "1h")
        assert res.exit_code == 0 and "Replaying 2 delivery(ies)" in res.output and "2 delivered" in res.output
        assert [e["type"] for e in receiver.events()] == ["webhook.test", "webhook.test", "item.completed"]
        res = run("webhooks", "intents", "replay")
        assert res.exit_code == 2 and "replay needs --since" in res.output
        res = run("webhooks", "intents", "replay", "--since", "yesterday")
        assert res.exit_code == 2 and "give a time like" in res.output
    seed(sqlite_db, make_spec(slug="plain"), clock.now())
    res = run("webhooks", "plain", "test")
    assert res.exit_code == 2 and "has no webhooks" in res.output


def test_spec_checks_webhooks():
    from bot.core.errors import ConfigError

    with pytest.raises(ConfigError) as err:
        make_spec(webhooks=[{"url": "ftp://x", "secret": "short", "events": ["item.done"]}])
    text = str(err.value)
    assert "webhooks.0.url: must be an http:// or https:// URL" in text
    assert "webhooks.0.secret: must be at least 16 characters" in text
    assert "webhooks.0.events: unknown event 'item.done'" in text
    spec = make_spec(webhooks=[{"url": "https://example.test/h", "secret": "env:HOOK_SECRET"}])
    assert spec.hooks_for("report.daily")[0].secret == "env:HOOK_SECRET"


def test_event_bodies_are_compact_json():
    body = webhooks.event_body("evt_x", "item.completed", "p", {"t": datetime(2026, 1, 5, tzinfo=UTC)},
                               datetime(2026, 1, 5, 9, tzinfo=UTC))
    assert json.loads(body) == {"id": "evt_x", "type": "item.completed", "created_at": "2026-01-05T09:00:00+00:00",
                                "project": "p", "data": {"t": "2026-01-05T00:00:00+00:00"}}


def test_low_confidence_escalations_write_events(sqlite_db, clock):
    from bot.services.adjudication import refresh_low_confidence
    from tests.test_export import classification_project

    classification_project(sqlite_db, clock, escalation={"min_confidence": 0.999},
                           webhooks=[{"url": "http://127.0.0.1:9/x", "secret": SECRET, "events": ["item.escalated"]}])
    assert refresh_low_confidence(sqlite_db, "intents", clock.now()) == 2  # c1 and c5 (see test_export)
    with sqlite_db.read() as s:
        bodies = [json.loads(b) for b in s.scalars(select(WebhookDelivery.body).order_by(WebhookDelivery.id))]
    assert sorted((b["type"], b["data"]["item"]["id"]) for b in bodies) == [("item.escalated", "c1"),
                                                                             ("item.escalated", "c5")]
    assert all(re.fullmatch(r"low confidence 0\.9\d < 0\.999", b["data"]["item"]["reason"]) for b in bodies)
