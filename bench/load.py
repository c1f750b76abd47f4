"""Load: N simulated annotators clicking through the real HTTP endpoint (gunicorn, PostgreSQL).

    .venv/bin/python bench/load.py [--annotators 48] [--seconds 30] [--warmup 5] [--workers 2]
                                   [--threads 8] [--replicas 1] [--items 20000] [--think 0]
                                   [--dm-rate 0] [--postgres URL] [--py-spy SECONDS]

Set-up: a fresh PostgreSQL schema (LABELBOT_TEST_POSTGRES_URL or --postgres) with a classification
project (redundancy 3, blind every 10th, an ok draft for every item, `--items` items inserted
set-based); `--replicas` x `labelbot serve --http --workers W --threads T --no-scheduler`
subprocesses; ONE FakeSlack in this process. Each annotator is a thread with a
`bot.sandbox.driver.Driver` sending signed requests: `/label`, then Accept (or the first label on
blind items) on each example as soon as it arrives (+ `--think` seconds), on a random replica.

Figures (over the measured window, after `--warmup` seconds):
- clicks/s: clicks whose next message (example or "queue empty") reached the fake Slack;
- ack latency: HTTP answer to the signed click (what Slack's 3 s timeout is about);
- turnaround: click sent -> next example posted (what the annotator waits for);
- errors: HTTP != 200, connection errors, no next message within 10 s, apologies sent to users;
- CPU seconds per click of the app processes, of PostgreSQL and of this process (driver + fake
  Slack), read from /proc: on a 2-core machine the load generator competes with the server.
`--py-spy N` records the first app worker for N seconds with py-spy (if installed) and prints the
functions with the most samples (own time and cumulative).
`--floor` serves, under the same gunicorn settings, a Bolt app whose listener only acks and makes the
same two Web API calls (bench/click_cost.py's floor): the most this machine and load generator can
do with Bolt and the Slack calls alone, no database.

DM pacing: `--dm-rate` is handed to the app as LABELBOT_DM_RATE (0 = off, the default here): with
no think time each annotator clicks many times a second, which pacing would (rightly) slow to about
one message per second per DM. Real annotators take seconds per example.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import os
import random
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, func, select, text

sys.path.insert(0, str(Path(__file__).resolve().parent))
from click_cost import SECRET, TEAM, TOKEN, seed

from bot.sandbox import http as sandbox_http
from bot.sandbox.driver import Driver
from bot.sandbox.fake_slack import FakeSlack
from storage.db import Database, normalize_url
from storage.models import Label

ROOT = Path(__file__).resolve().parent.parent
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))
CONNECTION_ERRORS = (urllib.error.URLError, ConnectionError, TimeoutError, OSError)
CLK_TCK = os.sysconf("SC_CLK_TCK")


class LoadSlack(FakeSlack):
    """FakeSlack that wakes the one annotator whose DM got a message (no thundering herd) and keeps
    its memory flat over long runs."""

    def __init__(self) -> None:
        # socketserver's listen backlog is 5: dozens of app threads calling at once get connection
        # resets from the fake (not from the app); Slack's real endpoint has no such limit.
        sandbox_http._Server.request_queue_size = 256
        super().__init__(bot_token=TOKEN, team_id=TEAM)
        self._posted: dict[str, threading.Condition] = collections.defaultdict(threading.Condition)
        self.latest: dict[str, tuple[float, dict[str, Any]]] = {}
        self.apologies = 0

    def _api(self, request: Any, method: str) -> Any:
        response = super()._api(request, method)
        if method == "chat.postMessage" and isinstance(response.body, dict) and response.body.get("ok"):
            channel = response.body["channel"]
            cond = self._posted[channel]
            with cond:
                self.latest[channel] = (time.monotonic(), {**response.body["message"], "channel": channel})
                cond.notify_all()
        with self._cond:
            if len(self._calls) > 4000:
                del self._calls[:2000]
        return response

    def _response_url(self, request: Any, token: str) -> Any:
        if b"went wrong" in request.body:
            self.apologies += 1
        return super()._response_url(request, token)

    def wait_post(self, channel: str, after: float, timeout: float = 10.0) -> tuple[float, dict[str, Any]] | None:
        cond = self._posted[channel]
        deadline = time.monotonic() + timeout
        with cond:
            while True:
                got = self.latest.get(channel)
                if got is not None and got[0] > after:
                    return got
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                cond.wait(left)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_seconds(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime + stime
    return total / CLK_TCK


def children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
    return [int(x) for x in out]


def postgres_pids() -> list[int]:
    out = subprocess.run(["pgrep", "-u", "postgres"], capture_output=True, text=True).stdout.split()
    return [int(x) for x in out]


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/slack/events"

    def pids(self) -> list[int]:
        return [self.proc.pid, *children(self.proc.pid)]

    def wait_ready(self, workers: int, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"server exited:\n{self.log.read_text()[-3000:]}")
            ready = self.log.read_text(errors="replace").count(" ready")
            try:
                with _OPENER.open(f"http://127.0.0.1:{self.port}/healthz", timeout=2) as r:
                    if r.status == 200 and ready >= workers:
                        return
            except urllib.error.HTTPError:
                if workers == 0:  # the floor app has no /healthz: any answer means it is up
                    time.sleep(3)  # let every worker import and build its app
                    return
            except CONNECTION_ERRORS:
                pass
            time.sleep(0.2)
        raise SystemExit(f"server not ready:\n{self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)


@dataclass
class Stats:
    acks: list[tuple[float, float]] = field(default_factory=list)  # (sent, seconds)
    turnarounds: list[tuple[float, float]] = field(default_factory=list)
    errors: collections.Counter[str] = field(default_factory=collections.Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)


def _action(message: dict[str, Any]) -> str:
    ids = [el.get("action_id") for b in message.get("blocks", []) for el in b.get("elements", []) or []]
    if "label.accept" in ids:
        return "label.accept"
    return "label.choose:0" if "label.choose:0" in ids else ""


def annotate(user: str, servers: list[Server], fake: LoadSlack, stats: Stats, stop: threading.Event,
             think: float, seed_: int) -> None:
    rnd = random.Random(seed_)
    drivers = [Driver(s.url, SECRET, fake, TEAM, user, user.lower(), timeout=30) for s in servers]
    dm = drivers[0].dm
    got = fake.latest.get(dm)  # --floor: the first example is already there
    if got is None:
        before = time.monotonic()
        try:
            drivers[0].command("/label")
        except CONNECTION_ERRORS:
            with stats.lock:
                stats.errors["connection"] += 1
            return
        got = fake.wait_post(dm, before, timeout=30)
    while got is not None and not stop.is_set():
        message = got[1]
        action = _action(message)
        if not action:
            with stats.lock:
                stats.errors["queue empty"] += 1
            return
        if think:
            time.sleep(rnd.expovariate(1 / think))
        driver = rnd.choice(drivers)
        sent = time.monotonic()
        try:
            status = driver.click(message, action).status
        except CONNECTION_ERRORS as e:
            with stats.lock:
                stats.errors[f"connection: {type(e).__name__}"] += 1
            continue
        acked = time.monotonic()
        got = fake.wait_post(dm, sent)
        with stats.lock:
            stats.acks.append((sent, acked - sent))
            if status != 200:
                stats.errors[f"HTTP {status}"] += 1
            if got is None:
                stats.errors["no next message within 10 s"] += 1
            else:
                stats.turnarounds.append((sent, got[0] - sent))


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def py_spy_summary(path: Path, top: int = 25) -> str:
    """Aggregate py-spy's collapsed stacks: own samples per function and cumulative samples."""
    own: collections.Counter[str] = collections.Counter()
    cumulative: collections.Counter[str] = collections.Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        n = int(count)
        frames = [re.sub(r" \(/.*?/(site-packages|work/main)/", " (", f) for f in stack.split(";")]
        total += n
        own[frames[-1]] += n
        for f in set(frames):
            cumulative[f] += n
    lines = [f"{total} samples; own time:"]
    lines += [f"  {100 * n / total:5.1f}%  {f}" for f, n in own.most_common(top)]
    lines.append("cumulative (our code and the big libraries):")
    keep = re.compile(r"\((bot|handlers|storage)/|sqlalchemy/orm/session|slack_sdk/web/base_client|"
                      r"slack_bolt/app/app|psycopg/cursor|gunicorn/workers")
    lines += [f"  {100 * n / total:5.1f}%  {f}" for f, n in cumulative.most_common(400) if keep.search(f)][:top]
    return "\n".join(lines)


def sample_blocks(path: Path) -> None:
    """The messages the floor app sends: a real example message and a real record (same builders)."""
    import json

    from bot.blocks.labeling import example_message, record_message
    from bot.core.enums import TaskType
    from bot.core.types import Answer, Progress, Task

    labels = [("billing", ""), ("bug", ""), ("feature", "")]
    task = Task(assignment_id=1, project_slug="bench", project_name="Click cost", task=TaskType.CLASSIFICATION,
                labels=labels, item_external_id="it-1", text="Customer message 1: I was charged twice for my "
                "subscription this month, please refund.", kind="production", draft_value="billing",
                draft_confidence=0.9, progress=Progress(3, 40000))
    answer = Answer(assignment_id=1, project_slug="bench", task=TaskType.CLASSIFICATION, action="accept",
                    value="billing", text=task.text, kind="production", counts=True, seconds=3.0)
    post_text, post_blocks = example_message(task)
    update_text, update_blocks = record_message(answer)
    path.write_text(json.dumps({"post_text": post_text, "post_blocks": post_blocks, "update_text": update_text,
                                "update_blocks": update_blocks}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--annotators", type=int, default=48)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--warmup", type=float, default=5)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--replicas", type=int, default=1)
    parser.add_argument("--items", type=int, default=20000)
    parser.add_argument("--think", type=float, default=0.0, help="mean seconds between examples (exponential)")
    parser.add_argument("--dm-rate", default="0", help="LABELBOT_DM_RATE for the app (0: pacing off)")
    parser.add_argument("--postgres", default=os.environ.get("LABELBOT_TEST_POSTGRES_URL")
                        or "postgresql+psycopg://postgres@127.0.0.1:5432/test")
    parser.add_argument("--py-spy", type=float, default=0, metavar="SECONDS")
    parser.add_argument("--floor", action="store_true", help="serve the no-op floor app instead (no database)")
    args = parser.parse_args()

    load_before = " ".join(f"{x:.1f}" for x in os.getloadavg())
    base = normalize_url(args.postgres)
    schema = f"load_{uuid.uuid4().hex[:10]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = f"{base}{'&' if '?' in base else '?'}options=-csearch_path%3D{schema}"
    users = [f"U0L{i:04d}" for i in range(args.annotators)]
    servers: list[Server] = []
    tmp = Path(tempfile.mkdtemp(prefix="labelbot-load-"))
    try:
        db = Database(url)
        db.upgrade()
        seed(db, args.items, users, done_fraction=0.0)
        with LoadSlack() as fake:
            env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "LABELBOT_", "OPENAI_"))}
            env.update(DATABASE_URL=url, SLACK_API_URL=fake.api_url, SLACK_SIGNING_SECRET=SECRET,
                       SLACK_BOT_TOKEN=TOKEN, LABELBOT_DM_RATE=str(args.dm_rate), LABELBOT_LOG_LEVEL="INFO")
            if args.floor:
                sample_blocks(tmp / "floor.json")
                env["LABELBOT_FLOOR_BLOCKS"] = str(tmp / "floor.json")
            for i in range(args.replicas):
                port = free_port()
                log = tmp / f"server{i}.log"
                if args.floor:
                    command = [sys.executable, "-m", "gunicorn", "-k", "gthread", "--workers", str(args.workers),
                               "--threads", str(args.threads), "--bind", f"127.0.0.1:{port}", "--no-control-socket",
                               "--chdir", str(ROOT / "bench"), "click_cost:floor_wsgi()"]
                else:
                    command = [sys.executable, "-m", "bot.cli", "serve", "--http", "--host", "127.0.0.1", "--port",
                               str(port), "--workers", str(args.workers), "--threads", str(args.threads),
                               "--no-scheduler"]
                with log.open("wb") as out:
                    proc = subprocess.Popen(command, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
                                            start_new_session=True)
                servers.append(Server(proc, port, log))
            for s in servers:
                s.wait_ready(0 if args.floor else args.workers)
            if args.floor:  # every annotator starts with an example in their DM
                from bot.app import make_client
                from bot.config import Settings

                client = make_client(Settings(slack_bot_token=TOKEN, slack_api_url=fake.api_url))
                blocks = __import__("json").loads((tmp / "floor.json").read_text())
                for u in users:
                    dm = fake.dm_channel(u)
                    client.chat_postMessage(channel=dm, text=blocks["post_text"], blocks=blocks["post_blocks"])

            stats, stop = Stats(), threading.Event()
            threads = [threading.Thread(target=annotate, args=(u, servers, fake, stats, stop, args.think, i),
                                        daemon=True) for i, u in enumerate(users)]
            started = time.monotonic()
            for t in threads:
                t.start()
            time.sleep(args.warmup)
            app_pids = [p for s in servers for p in s.pids()]
            cpu0 = (cpu_seconds(app_pids), cpu_seconds(postgres_pids()), time.process_time())
            window_start = time.monotonic()
            spy = None
            if args.py_spy:
                worker = children(servers[0].proc.pid)[0]
                spy_out = tmp / "py-spy.txt"
                spy = subprocess.Popen([str(Path(sys.executable).parent / "py-spy"), "record", "--pid", str(worker),
                                        "--duration", str(int(args.py_spy)), "--format", "raw", "--output",
                                        str(spy_out), "--nonblocking", "--threads"],
                                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            time.sleep(args.seconds)
            window_end = time.monotonic()
            cpu1 = (cpu_seconds(app_pids), cpu_seconds(postgres_pids()), time.process_time())
            stop.set()
            for t in threads:
                t.join(15)
            if spy is not None:
                spy.wait(60)

        in_window = [d for sent, d in stats.turnarounds if window_start <= sent < window_end]
        acks = [d for sent, d in stats.acks if window_start <= sent < window_end]
        seconds = window_end - window_start
        clicks = len(in_window)
        with db.read() as s:
            labels = s.scalar(select(func.count()).select_from(Label))
        db.dispose()
        errors = dict(stats.errors)
        if fake.apologies:
            errors["error replies to users"] = fake.apologies
        what = "FLOOR (no-op listener + the same 2 Web API calls, no database)" if args.floor else "labelbot"
        print(f"\n{what}, load average before: {load_before}")
        print(f"load: {args.annotators} annotators (think {args.think:g} s), {args.replicas} replica(s) x "
              f"{args.workers} gunicorn workers x {args.threads} threads, PostgreSQL, {args.items:,} items, "
              f"DM rate {args.dm_rate}; {os.cpu_count()} CPUs; window {seconds:.1f} s after {args.warmup:g} s warm-up")
        print(f"  clicks/s        {clicks / seconds:8.1f}   ({clicks} clicks; {labels} labels stored in all, "
              f"{time.monotonic() - started:.0f} s)")
        print(f"  ack latency     p50 {1000 * percentile(acks, 0.5):6.1f} ms   "
              f"p99 {1000 * percentile(acks, 0.99):6.1f} ms")
        print(f"  turnaround      p50 {1000 * percentile(in_window, 0.5):6.1f} ms   "
              f"p99 {1000 * percentile(in_window, 0.99):6.1f} ms   (click -> next example posted)")
        print(f"  errors          {sum(errors.values())}  {errors if errors else ''}")
        if clicks:
            app, pg, me = (b - a for a, b in zip(cpu0, cpu1, strict=True))
            print(f"  CPU per click   app {1000 * app / clicks:.2f} ms, PostgreSQL {1000 * pg / clicks:.2f} ms, "
                  f"load generator + fake Slack {1000 * me / clicks:.2f} ms  "
                  f"(CPU busy {100 * (app + pg + me) / seconds / (os.cpu_count() or 1):.0f}% of the machine)")
        if args.py_spy and (tmp / "py-spy.txt").exists():
            print("\n--- py-spy, first worker ---")
            print(py_spy_summary(tmp / "py-spy.txt"))
        if stats.errors.get("queue empty"):
            print("  (some annotators ran out of items: raise --items)")
    finally:
        for s in servers:
            s.stop()
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


if __name__ == "__main__":
    main()
