"""Several replicas on one PostgreSQL: real app processes, concurrent annotators, duplicates, a crash.

Two replicas run as real processes, one through `labelbot serve --http` (embedded gunicorn) and one
through `gunicorn bot.wsgi:application`, on one fresh PostgreSQL schema, both talking to ONE FakeSlack
started here. Simulated annotators (threads) send signed slash commands and clicks to either replica
at random, as a load balancer would.

What an HTTP 200 means: Bolt acks before the listener runs (process_before_response=False), so a 200
for a click says "received", not "stored". The user-visible acknowledgment is the example message
being replaced by its record (chat.update happens after the commit). The crash test checks that every
click acknowledged that way has its label, measures how many clicks got a 200 but died with the
replica before their commit, and shows that their leases expire and the items are served again.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, update

from bot.core.enums import AssignmentStatus
from bot.sandbox.driver import Driver
from bot.sandbox.fake_slack import FakeSlack
from storage.db import Database
from storage.models import Assignment, Item, Label
from tests.conftest import BOT_TOKEN, SIGNING_SECRET, TEAM, _pg_schema_database, make_spec
from tests.helpers import qualify, seed

ROOT = Path(__file__).resolve().parent.parent
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))
CONNECTION_ERRORS = (urllib.error.URLError, ConnectionError, TimeoutError, OSError)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Replica:
    """One app process (its own process group, so a SIGKILL takes the master and its workers)."""

    name: str
    command: list[str]
    env: dict[str, str]
    port: int
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0

    @classmethod
    def labelbot_serve(cls, name: str, env: dict[str, str], log_dir: Path, workers: int = 1,
                       threads: int = 8) -> Replica:
        port = free_port()
        command = [sys.executable, "-m", "bot.cli", "serve", "--http", "--host", "127.0.0.1", "--port", str(port),
                   "--workers", str(workers), "--threads", str(threads), "--no-scheduler"]
        return cls(name, command, env, port, log_dir / f"{name}.log")

    @classmethod
    def gunicorn_wsgi(cls, name: str, env: dict[str, str], log_dir: Path, workers: int = 1,
                      threads: int = 8) -> Replica:
        port = free_port()
        command = [sys.executable, "-m", "gunicorn", "-k", "gthread", "--workers", str(workers), "--threads",
                   str(threads), "--bind", f"127.0.0.1:{port}", "--graceful-timeout", "10", "--no-control-socket",
                   "bot.wsgi:application"]
        return cls(name, command, {**env, "LABELBOT_SCHEDULER": "0"}, port, log_dir / f"{name}.log")

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"{self.base}/slack/events"

    def start(self) -> Replica:
        self.starts += 1
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(self.command, env=self.env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        log.close()
        return self

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"{self.name} exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                with _OPENER.open(f"{self.base}/healthz", timeout=2) as r:
                    if r.status == 200:
                        return
            except CONNECTION_ERRORS:
                pass
            time.sleep(0.1)
        raise AssertionError(f"{self.name} not ready after {timeout}s:\n{self.log_tail()}")

    def kill(self) -> None:
        """SIGKILL the whole process group: no graceful anything."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def terminate(self, timeout: float = 30.0) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=timeout)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            try:
                self.terminate(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError):  # gunicorn workers whose master died
                os.killpg(self.proc.pid, signal.SIGKILL)

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_tail(self, n: int = 40) -> str:
        return "\n".join(self.log_text().splitlines()[-n:])


def app_env(db: Database, fake: FakeSlack) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "LABELBOT_", "OPENAI_"))}
    env.update(
        DATABASE_URL=db.url, SLACK_API_URL=fake.api_url, SLACK_SIGNING_SECRET=SIGNING_SECRET,
        SLACK_BOT_TOKEN=BOT_TOKEN, PYTHONUNBUFFERED="1", LABELBOT_DM_BURST="50", LABELBOT_LOG_LEVEL="WARNING",
    )
    return env


# ------------------------------------------------------------------------------------------------
# Simulated annotators
# ------------------------------------------------------------------------------------------------


def assignment_of(message: dict[str, Any]) -> int | None:
    for block in message.get("blocks", []):
        for element in block.get("elements", []) or []:
            if str(element.get("action_id", "")).startswith("label.choose:"):
                return int(str(element["value"]).split(":")[0])
    return None


def newer_message(fake: FakeSlack, channel: str, ts: str) -> dict[str, Any] | None:
    last = fake.last_message(channel)
    return last if last is not None and float(last["ts"]) > float(ts) else None


@dataclass
class Click:
    user: str
    assignment: int
    replica: str
    status: int | None  # None: no HTTP answer (connection refused or cut)
    sent: float
    answered: float
    message_ts: str
    channel: str
    follow_up: bool = False  # the next message (example or "queue empty") arrived


@dataclass
class Crowd:
    """Annotators clicking through the queue via any live replica; every click is recorded."""

    fake: FakeSlack
    replicas: list[Replica]
    clicks: list[Click] = field(default_factory=list)
    down: set[str] = field(default_factory=set)  # replicas the "load balancer" avoids
    duplicates: int = 1  # deliveries per click (Slack retries / double clicks)
    wait_timeout: float = 8.0
    lock: threading.Lock = field(default_factory=threading.Lock)
    abandoned: list[tuple[str, int]] = field(default_factory=list)
    commands: dict[str, int] = field(default_factory=dict)  # /label sent, per user

    def _pick(self, rnd: random.Random) -> Replica:
        live = [r for r in self.replicas if r.name not in self.down] or self.replicas
        return rnd.choice(live)

    def _send(self, drivers: dict[str, Driver], replica: Replica, fn: str, *args: Any) -> int | None:
        if fn == "command":
            user = drivers[replica.name].user_id
            with self.lock:
                self.commands[user] = self.commands.get(user, 0) + 1
        try:
            return getattr(drivers[replica.name], fn)(*args).status
        except CONNECTION_ERRORS:
            return None

    def annotate(self, user: str, seed_: int) -> None:
        rnd = random.Random(seed_)
        drivers = {r.name: Driver(r.url, SIGNING_SECRET, self.fake, TEAM, user, user.lower(), timeout=15)
                   for r in self.replicas}
        dm = next(iter(drivers.values())).dm
        for _ in range(5):
            if self._send(drivers, self._pick(rnd), "command", "/label") == 200:
                break
            time.sleep(0.2)
        try:
            msg = self.fake.wait_for(lambda: self.fake.last_message(dm), timeout=self.wait_timeout)
        except AssertionError:
            return
        retries = 2
        while True:
            aid = assignment_of(msg)
            if aid is None:
                # "The queue is empty": with SKIP LOCKED an item locked for an instant by another
                # annotator's transaction is invisible, so the queue can look empty while it is not.
                # A person types /label again a moment later; so do we, twice.
                if retries == 0:
                    return
                retries -= 1
                time.sleep(0.3)
                self._send(drivers, self._pick(rnd), "command", "/label")
                try:
                    msg = self.fake.wait_for(lambda ts=msg["ts"]: newer_message(self.fake, dm, ts), timeout=1.5)
                except AssertionError:
                    return
                continue
            choice = f"label.choose:{rnd.randrange(3)}"
            status = None
            replica = self._pick(rnd)
            sent = time.monotonic()
            for attempt in range(6):  # a refused connection is retried elsewhere, as a load balancer does
                replica = self._pick(rnd) if attempt else replica
                if self.duplicates > 1:
                    status = self._send_duplicates(drivers, msg, choice, rnd)
                else:
                    status = self._send(drivers, replica, "click", msg, choice)
                if status is not None:
                    break
                time.sleep(0.2)
            click = Click(user, aid, replica.name, status, sent, time.monotonic(), msg["ts"], dm)
            with self.lock:
                self.clicks.append(click)
            try:
                msg = self.fake.wait_for(lambda ts=msg["ts"]: newer_message(self.fake, dm, ts),
                                         timeout=self.wait_timeout)
            except AssertionError:
                with self.lock:
                    self.abandoned.append((user, aid))
                return  # nothing happened after the click: this user walks away
            click.follow_up = True

    def _send_duplicates(self, drivers: dict[str, Driver], msg: dict[str, Any], choice: str,
                         rnd: random.Random) -> int | None:
        statuses: list[int | None] = [None] * self.duplicates
        picks = [self.replicas[i % len(self.replicas)] for i in range(self.duplicates)]
        rnd.shuffle(picks)

        def send(i: int) -> None:
            statuses[i] = self._send(drivers, picks[i], "click", msg, choice)

        threads = [threading.Thread(target=send, args=(i,)) for i in range(self.duplicates)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return 200 if any(s == 200 for s in statuses) else next((s for s in statuses if s is not None), None)

    def run(self, users: list[str]) -> list[threading.Thread]:
        threads = [threading.Thread(target=self.annotate, args=(u, i), name=u, daemon=True)
                   for i, u in enumerate(users)]
        for t in threads:
            t.start()
        return threads


def join(threads: list[threading.Thread], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    assert not any(t.is_alive() for t in threads), "annotators still running"


# ------------------------------------------------------------------------------------------------
# Fixtures
# ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pg() -> Iterator[Database]:
    yield from _pg_schema_database()


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeSlack]:
    from bot.sandbox import http as sandbox_http

    # socketserver's listen backlog of 5 makes the fake reset connections when two replicas' listener
    # threads call it at once (a limit of the stand-in, not of Slack).
    monkeypatch.setattr(sandbox_http._Server, "request_queue_size", 128)
    with FakeSlack(bot_token=BOT_TOKEN, team_id=TEAM) as f:
        yield f


@pytest.fixture
def replicas(pg: Database, fake: FakeSlack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Replica]]:
    env = app_env(pg, fake)
    logs = tmp_path_factory.mktemp("replicas")
    pair = [Replica.labelbot_serve("A", env, logs), Replica.gunicorn_wsgi("B", env, logs)]
    try:
        for r in pair:
            r.start()
        for r in pair:
            r.wait_ready()
        yield pair
    finally:
        for r in pair:
            r.kill()  # graceful shutdown has its own test (tests/test_server.py); do not wait for it here
    for r in pair:
        assert "Traceback" not in r.log_text(), r.log_tail(80)


def _project(db: Database, slug: str, n_items: int, users: list[str], clock: Any, **spec: Any) -> None:
    items = [{"id": f"{slug}-{i}", "text": f"{slug} example {i}: the invoice shows a double charge"}
             for i in range(n_items)]
    seed(db, make_spec(slug=slug, redundancy=3, **spec), clock.now(), items=items)
    for u in users:
        qualify(db, slug, u, clock.now())


def _counting_labels_per_item(db: Database, slug: str) -> dict[int, int]:
    with db.read() as s:
        rows = s.execute(
            select(Item.id, func.count(Label.id))
            .join(Label, (Label.item_id == Item.id) & Label.counts.is_(True) & (Label.kind == "production"),
                  isouter=True)
            .where(Item.external_id.like(f"{slug}-%"))
            .group_by(Item.id)
        ).all()
    return {item_id: n for item_id, n in rows}


def _check_invariants(db: Database, slug: str, redundancy: int = 3) -> None:
    per_item = _counting_labels_per_item(db, slug)
    assert max(per_item.values()) <= redundancy, per_item
    with db.read() as s:
        counters = s.execute(select(Item.id, Item.status, Item.labels_done)
                             .where(Item.external_id.like(f"{slug}-%"))).all()
        drift = [(i, status, done, per_item[i]) for i, status, done in counters
                 if done != per_item[i] or (done >= redundancy and status == "open")]
        assert drift == [], f"item counters disagree with the labels (lost updates?): {drift}"
        pairs = s.execute(
            select(Label.item_id, Label.user_id, func.count()).join(Item, Item.id == Label.item_id)
            .where(Item.external_id.like(f"{slug}-%")).group_by(Label.item_id, Label.user_id)
            .having(func.count() > 1)
        ).all()
        assert pairs == [], f"an annotator labeled an item twice: {pairs}"
        served_twice = s.execute(
            select(Assignment.item_id, Assignment.member_id, func.count()).join(Item, Item.id == Assignment.item_id)
            .where(Item.external_id.like(f"{slug}-%"), Assignment.kind == "production")
            .group_by(Assignment.item_id, Assignment.member_id).having(func.count() > 1)
        ).all()
        assert served_twice == [], f"an item was served twice to one annotator: {served_twice}"
        dup_labels = s.execute(
            select(Label.assignment_id).group_by(Label.assignment_id).having(func.count() > 1)
        ).all()
        assert dup_labels == []


# ------------------------------------------------------------------------------------------------
# Tests
# ------------------------------------------------------------------------------------------------


def concurrent_annotators_on_two_replicas(pg: Database, fake: FakeSlack, replicas: list[Replica],
                                          clock: Any) -> None:
    users = [f"U0CC{i:02d}" for i in range(14)]
    _project(pg, "cc", 30, users, clock)
    crowd = Crowd(fake, replicas)
    join(crowd.run(users))
    assert crowd.abandoned == []
    assert {c.status for c in crowd.clicks} == {200}
    assert {c.replica for c in crowd.clicks} == {"A", "B"}
    # 30 items x redundancy 3, every one answered. (A person may click two copies of one example: /label
    # while an example is open posts it again. The second click is a stored no-op, so count examples.)
    assert len({c.assignment for c in crowd.clicks}) == 90
    assert set(_counting_labels_per_item(pg, "cc").values()) == {3}
    _check_invariants(pg, "cc")
    assert not any("went wrong" in str(r["payload"]) for r in fake.responses)


def every_click_delivered_three_times_stores_one_label(pg: Database, fake: FakeSlack, replicas: list[Replica],
                                                       clock: Any) -> None:
    users = [f"U0DD{i:02d}" for i in range(6)]
    _project(pg, "dd", 8, users, clock)
    crowd = Crowd(fake, replicas, duplicates=3)
    join(crowd.run(users))
    assert crowd.abandoned == []
    assert len(crowd.clicks) == 24, [(c.user, c.assignment) for c in crowd.clicks]
    with pg.read() as s:
        per_assignment = s.execute(
            select(Label.assignment_id, func.count()).join(Item, Item.id == Label.item_id)
            .where(Item.external_id.like("dd-%")).group_by(Label.assignment_id)
        ).all()
    assert len(per_assignment) == 24 and {n for _, n in per_assignment} == {1}
    _check_invariants(pg, "dd")
    for u in users:  # one follow-up message per click, not three (and at most one per /label)
        n_clicks = sum(1 for c in crowd.clicks if c.user == u)
        assert n_clicks + 1 <= len(fake.messages(fake.dm_channel(u))) <= n_clicks + crowd.commands[u]
        assert crowd.commands[u] <= 3


def test_daily_report_is_posted_once_by_two_replicas(pg, fake, clock):
    from bot.app import Deps, make_client
    from bot.config import Settings

    fake.add_channel("C0REPORTS")
    items = [{"id": f"rr-{i}", "text": f"report item {i}"} for i in range(3)]
    seed(pg, make_spec(slug="rr", report={"channel": "C0REPORTS", "time": "00:00"}), clock.now(), items=items)
    settings = Settings(database_url=pg.url, slack_bot_token=BOT_TOKEN, slack_api_url=fake.api_url)
    outcomes: list[Any] = []
    barrier = threading.Barrier(2)

    def replica() -> None:
        db = Database(pg.url, pool_size=2)  # each "replica" has its own pool
        try:
            deps = Deps(settings=settings, db=db, clock=clock, client=make_client(settings))
            barrier.wait()
            try:
                from bot.services.reports import run_due_reports
            except ImportError:  # reports not there yet: the guard it relies on
                from bot.runtime.scheduler import once_per_period

                outcomes.append(once_per_period(db, "reports.daily:rr", clock.now().date().isoformat(), clock.now()))
                return
            outcomes.extend(o for o in run_due_reports(deps) if o.project == "rr")
        finally:
            db.dispose()

    threads = [threading.Thread(target=replica) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    if outcomes and isinstance(outcomes[0], bool):
        assert sorted(outcomes) == [False, True]
        return
    assert len(outcomes) == 1, outcomes
    with pg.read() as s:
        from storage.models import Project, ReportRun

        runs = s.scalars(select(ReportRun).join(Project, Project.id == ReportRun.project_id)
                         .where(Project.slug == "rr")).all()
    assert len(runs) == 1
    summaries = [m for m in fake.messages("C0REPORTS") if m.get("subtype") != "file_share"]  # + its chart
    assert len(summaries) == (1 if runs[0].status == "posted" else 0), (runs[0].status, runs[0].error)


def a_replica_killed_mid_load_loses_no_acknowledged_label_and_leases_come_back(
        pg: Database, fake: FakeSlack, replicas: list[Replica], clock: Any) -> None:
    a = replicas[0]
    users = [f"U0KK{i:02d}" for i in range(14)]
    _project(pg, "kk", 40, users, clock, lease_minutes=5)
    crowd = Crowd(fake, replicas, wait_timeout=4.0)
    threads = crowd.run(users)
    deadline = time.monotonic() + 30
    while len(crowd.clicks) < 30 and time.monotonic() < deadline:
        time.sleep(0.01)
    killed_at = time.monotonic()
    a.kill()
    crowd.down.add("A")
    time.sleep(0.5)
    a.start()
    a.wait_ready()
    crowd.down.discard("A")
    restarted_at = time.monotonic()
    join(threads, timeout=90)

    with pg.read() as s:
        labeled = set(s.scalars(select(Label.assignment_id)))
        status_of = dict(s.execute(select(Assignment.id, Assignment.status)).all())
    acked = [c for c in crowd.clicks if c.status == 200]
    lost = [c for c in acked if c.assignment not in labeled]
    # 1) Every click whose example was replaced by its record (what the user sees as "saved") is stored.
    for c in acked:
        message = fake.message(c.channel, c.message_ts)
        if message is not None and not any(b["type"] == "actions" for b in message["blocks"]):
            assert c.assignment in labeled, c
    # 2) A click is acknowledged only after its answer is committed: no 200 without a stored label,
    #    even for the clicks in flight when the replica died (they got no answer and were resent).
    assert lost == [], lost
    del status_of, killed_at
    print(f"\nclicks: {len(crowd.clicks)}, HTTP 200: {len(acked)}, 200 but not stored (in flight at SIGKILL): "
          f"{len(lost)}, abandoned examples: {len(crowd.abandoned)}")
    _check_invariants(pg, "kk")

    # 3) The leases of abandoned examples (and of examples leased but never posted) expire and their
    #    items are served again until every item has its labels.
    from bot.services.labeling import expire_leases

    with pg.session() as s:
        s.execute(update(Assignment).where(Assignment.status == AssignmentStatus.OPEN)
                  .values(expires_at=clock.now() - timedelta(minutes=1)))
    with pg.session() as s:
        expired = expire_leases(s, clock.now())
    with pg.read() as s:  # an abandoned example was stored before the crash, or its lease came back
        after = {aid: s.get(Assignment, aid).status for _, aid in crowd.abandoned}
    assert all(st == (AssignmentStatus.DONE if aid in labeled else AssignmentStatus.EXPIRED)
               for aid, st in after.items()), after
    assert len(expired) >= sum(1 for aid in after if aid not in labeled)
    fresh = [f"U0KF{i:02d}" for i in range(4)]
    for u in fresh:
        qualify(pg, "kk", u, clock.now())
    again = Crowd(fake, replicas)
    join(again.run(fresh))
    # (when the first crowd left nothing behind, the fresh one finds no work: no clicks is right then)
    assert again.abandoned == [] and {c.status for c in again.clicks} <= {200}
    assert any(c.replica == "A" and c.sent > restarted_at for c in crowd.clicks + again.clicks)  # A serves again
    assert set(_counting_labels_per_item(pg, "kk").values()) == {3}
    _check_invariants(pg, "kk")


def test_two_replicas_under_concurrency_duplicates_and_a_crash(pg, fake, replicas, clock):
    """One test, so the two app processes start once even when pytest-xdist spreads this module's tests
    over several workers; each part uses its own project and annotators."""
    concurrent_annotators_on_two_replicas(pg, fake, replicas, clock)
    every_click_delivered_three_times_stores_one_label(pg, fake, replicas, clock)
    a_replica_killed_mid_load_loses_no_acknowledged_label_and_leases_come_back(pg, fake, replicas, clock)
