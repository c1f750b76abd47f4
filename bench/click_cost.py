"""What does a click cost the server, against the floor of the Slack calls it has to make?

    .venv/bin/python bench/click_cost.py [--items 10000,1000000] [--clicks 300] [--users 20]
                                         [--postgres URL] [--profile] [--keep DIR]

One process: a FakeSlack that stamps each Web API call when it has answered it, and two Bolt apps
served over HTTP (threaded WSGI) with the same Bolt settings and the same Web API client:

- click: the real app from the composition root (`bot.app.build_app`). A click on Accept stores the
  answer (record_answer), picks and leases the next example (next_task) in the same unit of work,
  replaces the message (chat.update), posts the next example (chat.postMessage), then notes the new
  message's ts (set_message).
- floor: a Bolt app whose listener only acks and makes the same two Web API calls with the same
  blocks to the same FakeSlack: the part of a click that does not depend on our code.

Server time per click = (FakeSlack has answered the chat.postMessage) - (the click request entered
the WSGI app), both read from time.perf_counter in this process. Clicks are sequential (one in flight
at a time), so each pair is unambiguous; real and floor clicks alternate, so both see the same
machine noise. `--users` annotators take turns (every `--users`-th click is the same user's), DM
pacing is off (it waits, it does not work).

Each size gets a fresh database: a project (classification, 3 labels, redundancy 3, blind every 10th,
no gold) with N items inserted set-based (INSERT ... SELECT over a recursive series: 1M items and 1M
drafts in seconds), half of them already complete, every item with an ok draft, then ANALYZE.

Targets: click median <= 1.5 x floor median; click median at 1M <= 1.3 x at 10k.
`--profile` prints where the listener's CPU goes (cProfile with a per-thread CPU clock over the real
app's listener calls; clicks are sequential so one profiler sees them all).
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import io
import os
import pstats
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from slack_bolt import App
from slack_bolt.adapter.wsgi import SlackRequestHandler
from sqlalchemy import Integer, String, bindparam, cast, create_engine, insert, literal, select, text, update

from bot.app import Deps, build_app, make_client
from bot.config import Settings
from bot.core.clock import SystemClock
from bot.core.enums import MemberState
from bot.sandbox.driver import Driver
from bot.sandbox.fake_slack import FakeSlack
from bot.sandbox.http import serve_wsgi
from bot.services.projects import create_project, ensure_member
from bot.spec import parse_spec
from storage.db import Database, normalize_url
from storage.models import Draft, Item, Member

SECRET = "bench-signing-secret"
TOKEN = "xoxb-bench"
TEAM = "T0BENCH"
SLUG = "bench"
SPEC = {
    "slug": SLUG, "name": "Click cost", "task": "classification", "labels": ["billing", "bug", "feature"],
    "redundancy": 3, "blind_every": 10, "gold_rate": 0, "llm": {"model": "bench-model"},
}


# ------------------------------------------------------------------------------------------------
# The fake Slack with stamps, and a WSGI wrapper stamping request entry
# ------------------------------------------------------------------------------------------------


class StampingSlack(FakeSlack):
    """Records when each chat.postMessage has been answered, per channel, and the posted message."""

    def __init__(self) -> None:
        super().__init__(bot_token=TOKEN, team_id=TEAM)
        self._posted = threading.Condition()
        self.posts: dict[str, list[tuple[float, dict[str, Any]]]] = {}

    def _api(self, request: Any, method: str) -> Any:
        response = super()._api(request, method)
        done = time.perf_counter()
        if method == "chat.postMessage" and isinstance(response.body, dict) and response.body.get("ok"):
            message = {**response.body["message"], "channel": response.body["channel"]}
            with self._posted:
                self.posts.setdefault(message["channel"], []).append((done, message))
                self._posted.notify_all()
        with self._cond:
            if len(self._calls) > 2000:  # the fake keeps every call; keep memory flat over long runs
                del self._calls[:1000]
        return response

    def wait_post(self, channel: str, after: float, timeout: float = 10.0) -> tuple[float, dict[str, Any]]:
        deadline = time.monotonic() + timeout
        with self._posted:
            while True:
                posts = self.posts.get(channel) or []
                if posts and posts[-1][0] > after:
                    return posts[-1]
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"no chat.postMessage to {channel} within {timeout}s")
                self._posted.wait(left)


class EntryStamps:
    """WSGI middleware: the time each request entered the app."""

    def __init__(self, app: Callable[..., Any]) -> None:
        self.app = app
        self.last = 0.0

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        self.last = time.perf_counter()
        return self.app(environ, start_response)


# ------------------------------------------------------------------------------------------------
# Data
# ------------------------------------------------------------------------------------------------


def _series(n: int) -> Any:
    """A recursive CTE counting 1..n (SQLite and PostgreSQL alike)."""
    series = select(literal(1, Integer).label("i")).cte("series", recursive=True)
    return series.union_all(select(series.c.i + 1).where(series.c.i < n))


def _defaults(table: Any, given: dict[str, Any], now_param: Any) -> list[tuple[str, Any]]:
    """Every column but the key: the given SQL expression, else the column's scalar default, else NULL
    (a new NOT NULL column without a default makes the insert fail loudly, as it should)."""
    out = []
    for column in table.columns:
        if column.primary_key:
            continue
        if column.name in given:
            out.append((column.name, given[column.name]))
        elif column.name in ("created_at", "updated_at"):
            out.append((column.name, now_param))
        elif column.default is not None and getattr(column.default, "is_scalar", False):
            out.append((column.name, literal(column.default.arg, column.type)))
        else:
            out.append((column.name, literal(None, column.type)))
    return out


def seed(db: Database, n_items: int, users: list[str], done_fraction: float = 0.5) -> None:
    now = datetime.now(UTC)
    with db.session() as s:
        project = create_project(s, parse_spec(SPEC), TEAM, now)
        for u in users:
            member = ensure_member(s, project, u, now)
            member.state, member.qualified_at = MemberState.QUALIFIED, now
        project_id = project.id
    items, drafts = Item.__table__, Draft.__table__
    now_param = bindparam("now", now, type_=items.c.created_at.type)
    series = _series(n_items)
    text_expr = (literal("Customer message ", String).concat(cast(series.c.i, String))
                 .concat(literal(": I was charged twice for my subscription this month, please refund.", String)))
    item_cols = _defaults(items, {
        "project_id": literal(project_id, Integer),
        "external_id": literal("it-", String).concat(cast(series.c.i, String)),
        "text": text_expr, "status": literal("open", String), "slots": literal(3, Integer),
        "labels_done": literal(0, Integer), "is_gold": literal(False, items.c.is_gold.type),
    }, now_param)
    draft_cols = _defaults(drafts, {
        "project_id": items.c.project_id, "item_id": items.c.id, "model": literal("bench-model", String),
        "prompt_version": literal("v1", String), "status": literal("ok", String),
        "value": literal("billing", drafts.c.value.type), "value_key": literal('"billing"', String),
        "confidence": literal(0.9, drafts.c.confidence.type), "simulated": literal(False, drafts.c.simulated.type),
    }, now_param)
    cut = int(n_items * done_fraction)
    with db.engine.begin() as conn:
        conn.execute(insert(items).from_select([c for c, _ in item_cols],
                                               select(*[e for _, e in item_cols]).select_from(series)))
        of_project = select(*[e for _, e in draft_cols]).where(items.c.project_id == project_id)
        conn.execute(insert(drafts).from_select([c for c, _ in draft_cols], of_project))
        if cut:  # labeled earlier: complete, nothing left to hand out
            first = conn.execute(select(items.c.id).where(items.c.project_id == project_id)
                                 .order_by(items.c.id).limit(1)).scalar_one()
            conn.execute(update(items).where(items.c.project_id == project_id, items.c.id < first + cut)
                         .values(status="complete", slots=0, labels_done=3))
    with db.engine.connect() as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT").execute(text("ANALYZE"))


@contextlib.contextmanager
def database(postgres: str | None, workdir: Path, name: str) -> Iterator[Database]:
    if not postgres:
        db = Database(f"sqlite:///{workdir / f'{name}.db'}")
        db.upgrade()
        try:
            yield db
        finally:
            db.dispose()
        return
    base = normalize_url(postgres)
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in base else "?"
    db = Database(f"{base}{sep}options=-csearch_path%3D{schema}")
    try:
        db.upgrade()
        yield db
    finally:
        db.dispose()
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


# ------------------------------------------------------------------------------------------------
# The two apps
# ------------------------------------------------------------------------------------------------


def floor_app(settings: Settings, blocks: dict[str, Any]) -> App:
    """The same Bolt configuration as build_app, a listener making only the two Web API calls."""
    app = App(
        signing_secret=SECRET, token_verification_enabled=False, client=make_client(settings), token=TOKEN,
        listener_executor=ThreadPoolExecutor(max_workers=16, thread_name_prefix="listener"),
        raise_error_for_unhandled_request=False, ignoring_self_events_enabled=True,
    )

    def answer(ack: Any, body: dict[str, Any], client: Any) -> None:
        ack()
        channel = body["channel"]["id"]
        client.chat_update(channel=channel, ts=body["container"]["message_ts"], text=blocks["update_text"],
                           blocks=blocks["update_blocks"])
        client.chat_postMessage(channel=channel, text=blocks["post_text"], blocks=blocks["post_blocks"],
                                unfurl_links=False, unfurl_media=False)

    app.action("label.accept")(answer)
    app.action("label.choose:0")(answer)
    return app


def floor_wsgi() -> Any:
    """The floor app as a WSGI callable built from the environment, for gunicorn
    (`gunicorn --chdir bench 'click_cost:floor_wsgi()'`; bench/load.py --floor): SLACK_API_URL, and
    LABELBOT_FLOOR_BLOCKS, a JSON file with post_text/post_blocks/update_text/update_blocks."""
    import json

    settings = Settings(slack_bot_token=TOKEN, slack_signing_secret=SECRET,
                        slack_api_url=os.environ["SLACK_API_URL"])
    blocks = json.loads(Path(os.environ["LABELBOT_FLOOR_BLOCKS"]).read_text())
    return SlackRequestHandler(floor_app(settings, blocks))


class StatementCounter:
    """SQL statements and commits the app sends (the floor sends none)."""

    def __init__(self, db: Database) -> None:
        from sqlalchemy import event

        self.engine, self.statements, self.commits = db.engine, 0, 0
        self._event = event
        event.listen(self.engine, "before_cursor_execute", self._statement)
        event.listen(self.engine, "commit", self._commit)

    def _statement(self, *args: Any) -> None:
        self.statements += 1

    def _commit(self, *args: Any) -> None:
        self.commits += 1

    def stop(self) -> None:
        self._event.remove(self.engine, "before_cursor_execute", self._statement)
        self._event.remove(self.engine, "commit", self._commit)


class ListenerProfiler:
    """Profile the real app's listener calls (sequential clicks: one listener runs at a time)."""

    def __init__(self, app: App) -> None:
        self.profile = self.new()
        runner = app.listener_runner
        inner = runner.listener_executor
        outer = self

        class Profiled:
            def submit(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
                def run() -> Any:
                    outer.profile.enable()
                    try:
                        return fn(*args, **kwargs)
                    finally:
                        outer.profile.disable()

                return inner.submit(run)

            def __getattr__(self, name: str) -> Any:
                return getattr(inner, name)

        runner.listener_executor = Profiled()

    @staticmethod
    def new() -> cProfile.Profile:
        return cProfile.Profile(time.thread_time)  # CPU of the listener's thread, not wall time

    def report(self, top: int = 25) -> str:
        out = io.StringIO()
        stats = pstats.Stats(self.profile, stream=out)
        stats.sort_stats("cumulative").print_stats(r"/(bot|handlers|storage)/", top)  # our code
        stats.sort_stats("tottime").print_stats(top)  # where the CPU is actually spent
        return out.getvalue()


# ------------------------------------------------------------------------------------------------
# Measuring
# ------------------------------------------------------------------------------------------------


def _action(message: dict[str, Any]) -> str:
    ids = [el.get("action_id") for b in message.get("blocks", []) for el in b.get("elements", []) or []]
    return "label.accept" if "label.accept" in ids else "label.choose:0"


class Lane:
    """One app served over HTTP with its annotators and their current messages."""

    def __init__(self, name: str, wsgi: Callable[..., Any], fake: StampingSlack) -> None:
        self.name = name
        self.entry = EntryStamps(wsgi)
        self.fake = fake
        self._server = serve_wsgi(self.entry)
        self.base = self._server.__enter__()
        self.current: dict[str, dict[str, Any]] = {}
        self.drivers: dict[str, Driver] = {}

    def driver(self, user: str) -> Driver:
        if user not in self.drivers:
            self.drivers[user] = Driver(f"{self.base}/slack/events", SECRET, self.fake, TEAM, user, user.lower())
        return self.drivers[user]

    def click(self, user: str) -> float:
        drv = self.driver(user)
        message = self.current[user]
        before = time.perf_counter()
        reply = drv.click(message, _action(message))
        if reply.status != 200:
            raise RuntimeError(f"{self.name}: HTTP {reply.status} {reply.body[:200]}")
        done, posted = self.fake.wait_post(drv.dm, before)
        self.current[user] = posted
        return done - self.entry.last

    def close(self) -> None:
        self._server.__exit__(None, None, None)


def summary(times: list[float]) -> dict[str, float]:
    ms = sorted(t * 1000 for t in times)
    tenth = max(1, len(times) // 10)  # does a click cost more after many clicks? first vs last tenth
    return {"median": statistics.median(ms), "p90": ms[int(0.9 * (len(ms) - 1))], "mean": statistics.fmean(ms),
            "first": statistics.median(times[:tenth]) * 1000, "last": statistics.median(times[-tenth:]) * 1000}


def run_size(n_items: int, args: argparse.Namespace, fake: StampingSlack, workdir: Path) -> dict[str, Any]:
    users = [f"U0B{i:03d}" for i in range(args.users)]
    floor_users = [f"U0F{i:03d}" for i in range(args.users)]
    with database(args.postgres, workdir, f"click-{n_items}") as db:
        started = time.perf_counter()
        seed(db, n_items, users)
        seeded = time.perf_counter() - started
        settings = Settings(database_url=db.url, slack_bot_token=TOKEN, slack_signing_secret=SECRET,
                            slack_api_url=fake.api_url)
        deps = Deps(settings=settings, db=db, clock=SystemClock(), client=make_client(settings))
        real_app = build_app(deps)
        profiler = ListenerProfiler(real_app) if args.profile else None
        real = Lane("click", SlackRequestHandler(real_app), fake)
        for u in users:  # each annotator's first example
            drv = real.driver(u)
            before = time.perf_counter()
            drv.command("/label")
            real.current[u] = fake.wait_post(drv.dm, before)[1]
        sample = real.current[users[0]]
        blocks = {"post_text": sample["text"], "post_blocks": sample["blocks"],
                  "update_text": "You accepted the draft", "update_blocks": None}
        warm_user = users[0]
        real.click(warm_user)  # gives a real record message to copy into the floor
        record = fake.message(real.driver(warm_user).dm, sample["ts"])
        blocks["update_text"], blocks["update_blocks"] = record["text"], record["blocks"]
        floor = Lane("floor", SlackRequestHandler(floor_app(settings, blocks)), fake)
        client = make_client(settings)
        for u in floor_users:
            drv = floor.driver(u)
            before = time.perf_counter()
            client.chat_postMessage(channel=drv.dm, text=sample["text"], blocks=sample["blocks"])
            floor.current[u] = fake.wait_post(drv.dm, before)[1]
        if profiler is not None:
            profiler.profile = profiler.new()
        for i in range(args.warmup):
            real.click(users[i % len(users)])
            floor.click(floor_users[i % len(floor_users)])
        if profiler is not None:
            profiler.profile = profiler.new()
        statements = StatementCounter(db)
        real_t: list[float] = []
        floor_t: list[float] = []
        for i in range(args.clicks):
            real_t.append(real.click(users[i % len(users)]))
            floor_t.append(floor.click(floor_users[i % len(floor_users)]))
        statements.stop()
        real.close()
        floor.close()
        with db.read() as s:
            served = s.scalar(select(Member.served).where(Member.user_id == users[0]).limit(1))
        return {"items": n_items, "seeded_s": seeded, "click": summary(real_t), "floor": summary(floor_t),
                "statements": statements.statements / args.clicks, "commits": statements.commits / args.clicks,
                "served_user0": served, "profile": profiler.report() if profiler else None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", default="10000,1000000", help="comma-separated item counts")
    parser.add_argument("--clicks", type=int, default=300, help="measured clicks per path and size")
    parser.add_argument("--warmup", type=int, default=40)
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--postgres", help="PostgreSQL URL (a fresh schema per size); SQLite otherwise")
    parser.add_argument("--profile", action="store_true", help="print the real listener's cProfile")
    parser.add_argument("--keep", help="directory for the SQLite files (default: a temporary one)")
    args = parser.parse_args()
    sizes = [int(x) for x in args.items.split(",") if x.strip()]

    results = []
    with contextlib.ExitStack() as stack:
        workdir = Path(args.keep) if args.keep else Path(stack.enter_context(tempfile.TemporaryDirectory()))
        workdir.mkdir(parents=True, exist_ok=True)
        fake = stack.enter_context(StampingSlack())
        for n in sizes:
            print(f"[{n:,} items] seeding and measuring...", file=sys.stderr, flush=True)
            results.append(run_size(n, args, fake, workdir))

    backend = "PostgreSQL" if args.postgres else "SQLite"
    print(f"\nload average at the end: {' '.join(f'{x:.1f}' for x in os.getloadavg())} on {os.cpu_count()} CPUs")
    print(f"\nclick cost, {backend}, {args.clicks} sequential clicks per path and size, {args.users} annotators, "
          "server time = request entry -> chat.postMessage answered (ms)")
    print(f"{'items':>10}  {'path':<6} {'median':>7} {'p90':>7} {'mean':>7}  {'vs floor':>8}  "
          f"{'1st/last 10%':>13}  seeded in")
    for r in results:
        c, f = r["click"], r["floor"]
        print(f"{r['items']:>10,}  {'click':<6} {c['median']:7.2f} {c['p90']:7.2f} {c['mean']:7.2f}  "
              f"{c['median'] / f['median']:7.2f}x  {c['first']:6.2f}/{c['last']:6.2f}  {r['seeded_s']:.1f} s")
        print(f"{'':>10}  {'floor':<6} {f['median']:7.2f} {f['p90']:7.2f} {f['mean']:7.2f}  {'':>8}  "
              f"{f['first']:6.2f}/{f['last']:6.2f}")
        print(f"{'':>10}  (a click sent {r['statements']:.1f} SQL statements in {r['commits']:.1f} transactions)")
    if len(results) > 1:
        small, large = results[0], results[-1]
        print(f"\n{large['items']:,} vs {small['items']:,} items: click median "
              f"{large['click']['median'] / small['click']['median']:.2f}x (target <= 1.3x); "
              f"click vs floor: " + ", ".join(f"{r['click']['median'] / r['floor']['median']:.2f}x"
                                              for r in results) + " (target <= 1.5x)")
    for r in results:
        if r["profile"]:
            print(f"\n--- where the real listener's time goes at {r['items']:,} items (cProfile, cumulative) ---")
            print(r["profile"])


if __name__ == "__main__":
    main()
