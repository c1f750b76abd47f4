"""/metrics: what it counts (in process, through the real app, Slack client and LLM client), and under
gunicorn with two workers, the sum over both; and `labelbot serve --http` stays quiet while idle."""

from __future__ import annotations

import os
import re
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select

from bot.config import Settings
from bot.runtime import metrics as metrics_module
from bot.runtime.scheduler import timed
from bot.runtime.server import WSGIApp
from bot.sandbox.driver import Driver
from bot.sandbox.fake_openai import FakeOpenAI
from bot.sandbox.fake_slack import FakeSlack
from bot.services.drafting import Drafter, draft_items
from storage.db import Database
from storage.models import Draft
from tests.conftest import BOT_TOKEN, SIGNING_SECRET, TEAM, make_spec, start_bot
from tests.helpers import qualify, seed
from tests.test_replicas import Replica, app_env
from tests.test_server import call

ROOT = Path(__file__).resolve().parents[1]
ITEMS = [{"id": f"m{i}", "text": f"Metrics example {i}: please refund me"} for i in range(6)]


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """{(sample name, sorted labels): value} of a text exposition."""
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(text: str, name: str, **labels: str) -> float | None:
    return samples(text).get((name, tuple(sorted(labels.items()))))


@pytest.fixture
def metered(sqlite_db: Database, fake_slack: FakeSlack, clock: Any) -> Iterator[tuple[Any, Any]]:
    """The real app over HTTP with metrics on (LABELBOT_METRICS=1), as `Runtime.build` wires them."""
    with start_bot(sqlite_db, fake_slack, clock, metrics=True) as bot:
        m = metrics_module.install(bot.deps, bot.app)
        try:
            yield bot, m
        finally:
            metrics_module.uninstall(m)


def scrape(bot: Any, m: Any) -> str:
    status, headers, body = call(WSGIApp(bot.app, bot.db, m), "/metrics")
    assert status.startswith("200") and headers["Content-Type"].startswith("text/plain")
    return body.decode()


def test_clicks_answers_slack_calls_jobs_and_queue_gauges(metered: tuple[Any, Any]) -> None:
    bot, m = metered
    seed(bot.db, make_spec(), bot.clock.now(), items=ITEMS)  # redundancy 3, no drafts: answers are "manual"
    qualify(bot.db, "intents", "U0ANN", bot.clock.now())
    ann = bot.user("U0ANN")
    assert ann.command("/label").status == 200
    msg = bot.fake.wait_for(lambda: bot.fake.last_message(ann.dm))
    for n in (2, 3):
        assert ann.click(msg, "label.choose:0").status == 200
        msg = bot.fake.wait_for(lambda n=n: len(bot.fake.messages(ann.dm)) == n and bot.fake.last_message(ann.dm))
    assert ann.click(msg, "label.skip").status == 200
    assert bot.deps.wait_idle()
    with pytest.raises(Exception, match="channel_not_found"):
        bot.deps.client.chat_postMessage(channel="CNOWHERE", text="x")
    timed("expire_leases", lambda deps: None)(bot.deps)
    with pytest.raises(RuntimeError):
        timed("reports.daily", _boom)(bot.deps)

    text = scrape(bot, m)
    assert value(text, "labelbot_commands_total", command="label") == 1
    assert value(text, "labelbot_clicks_total", action="label.choose") == 2
    assert value(text, "labelbot_clicks_total", action="label.skip") == 1
    assert value(text, "labelbot_answers_total", action="manual", kind="production") == 2
    assert value(text, "labelbot_answers_total", action="skip", kind="production") == 1
    assert value(text, "labelbot_click_seconds_count") == 3
    seen = Counter(method for method, _ in bot.fake.calls)  # what the fake Slack received, call by call
    assert seen["chat.postMessage"] == 1 + len(bot.fake.messages(ann.dm))
    for method, n in seen.items():
        assert value(text, "labelbot_slack_calls_total", method=method) == n, method
    assert value(text, "labelbot_slack_errors_total", method="chat.postMessage", error="channel_not_found") == 1
    assert value(text, "labelbot_job_runs_total", job="expire_leases") == 1
    assert value(text, "labelbot_job_runs_total", job="reports.daily") == 1
    assert value(text, "labelbot_job_failures_total", job="reports.daily") == 1
    # 6 items x redundancy 3: every item still has slots left (3 were handed out, 1 per item).
    assert value(text, "labelbot_queue_depth", project="intents", queue="crowd") == 6
    assert value(text, "labelbot_queue_depth", project="intents", queue="expert") == 0
    assert value(text, "labelbot_drafts_ready", project="intents") is None  # drafting is off
    assert value(text, "labelbot_database_up") == 1
    for item in ITEMS:  # no user text in the exposition
        assert item["text"] not in text
    assert "U0ANN" not in text


def _boom(deps: Any) -> None:
    raise RuntimeError("job failed")


def test_llm_calls_tokens_errors_and_drafts_ready(metered: tuple[Any, Any]) -> None:
    bot, m = metered
    seed(bot.db, make_spec(llm={"model": "test-model", "buffer": 10}), bot.clock.now(), items=ITEMS)
    with FakeOpenAI(models=["test-model"]) as llm:
        drafter = Drafter(Settings(openai_api_key="sk-test", openai_base_url=llm.base_url), sleep=lambda s: None)
        bot.deps.drafter = drafter
        llm.fail_next(status=400, times=1)  # not retried: one failed call
        draft_items(bot.db, "intents", drafter=drafter, now=bot.clock.now())
        draft_items(bot.db, "intents", drafter=drafter, now=bot.clock.now(), retry_errors=True)
        text = scrape(bot, m)
    with bot.db.read() as s:
        prompt, completion, cached, ok = s.execute(
            select(func.sum(Draft.prompt_tokens), func.sum(Draft.completion_tokens), func.sum(Draft.cached_tokens),
                   func.count()).where(Draft.status == "ok")).one()
    assert ok == 6
    assert value(text, "labelbot_llm_calls_total", model="test-model") == 7  # 6 drafts + the refused call
    assert value(text, "labelbot_llm_errors_total", model="test-model", kind="other") == 1
    assert value(text, "labelbot_llm_seconds_count", model="test-model") == 7
    assert value(text, "labelbot_llm_tokens_total", model="test-model", type="prompt") == prompt
    assert value(text, "labelbot_llm_tokens_total", model="test-model", type="completion") == completion
    assert value(text, "labelbot_llm_tokens_total", model="test-model", type="cached") == (cached or None)
    assert value(text, "labelbot_drafts_ready", project="intents") == 6


def test_metrics_are_off_by_default(sqlite_bot: Any) -> None:
    assert Settings.from_env({}).metrics is False
    assert Settings.from_env({"LABELBOT_METRICS": "1"}).metrics is True
    status, _, _ = call(WSGIApp(sqlite_bot.app, sqlite_bot.db), "/metrics")
    assert status.startswith("404")


# ------------------------------------------------------------------------------------------------
# Under gunicorn: two workers, one scrape sums them; and an idle server writes nothing
# ------------------------------------------------------------------------------------------------

# Every scheduled job every 2 s (instead of 30 s to 5 min) so a short idle window covers each of them
# several times in both workers: the jobs are the only thing that runs while nobody clicks.
FAST_JOBS = (
    "import dataclasses, sys, bot.jobs as jobs; "
    "jobs.JOBS = tuple(dataclasses.replace(j, trigger={'seconds': 2}) for j in jobs.JOBS); "
    "from bot.cli import main; sys.argv = ['labelbot', *sys.argv[1:]]; main()"
)
IDLE_SECONDS = 7.0


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as r:
        return r.read().decode()


def test_serve_http_two_workers_is_quiet_when_idle_and_metrics_sum_both_workers(tmp_path: Path, clock: Any) -> None:
    db = Database(f"sqlite:///{tmp_path / 'serve.db'}")
    db.upgrade()
    spec = make_spec(llm={"enabled": False}, escalation={"min_confidence": 0.5})  # every job has work to look at
    seed(db, spec, clock.now(), items=ITEMS)
    qualify(db, "intents", "U0ANN", clock.now())
    multiproc = tmp_path / "prom"
    multiproc.mkdir()
    with FakeSlack(bot_token=BOT_TOKEN, team_id=TEAM) as fake:
        env = {**app_env(db, fake), "LABELBOT_LOG_LEVEL": "INFO", "LABELBOT_METRICS": "1",
               "PROMETHEUS_MULTIPROC_DIR": str(multiproc), "OPENAI_API_KEY": "sk-test",
               "OPENAI_BASE_URL": "http://127.0.0.1:9/v1", "PYTHONPATH": str(ROOT)}
        server = Replica.labelbot_serve("quiet", env, tmp_path, workers=2, threads=4)
        server.command = [sys.executable, "-c", FAST_JOBS, *server.command[3:]]
        server.command.remove("--no-scheduler")
        server.start()
        try:
            server.wait_ready()
            deadline = time.monotonic() + 60
            while len({p.name.split("_")[-1] for p in multiproc.glob("counter_*.db")}) < 2:
                assert time.monotonic() < deadline, "both workers should have counted their start-up job runs"
                time.sleep(0.2)
            started = server.log_text()
            time.sleep(IDLE_SECONDS)  # idle: only the scheduler runs, every job at least twice per worker
            assert server.log_text() == started, "an idle server wrote:\n" + server.log_text()[len(started):]
            (line,) = started.splitlines()
            assert re.search(r"INFO labelbot.server: labelbot serving HTTP on 127\.0\.0\.1:\d+ with 2 worker\(s\) "
                             r"x 4 thread\(s\); Slack request URL: https://YOUR-HOST/slack/events", line), line
            assert "database sqlite:///" in line and "metrics /metrics" in line and "scheduler on" in line

            ann = Driver(server.url, SIGNING_SECRET, fake, TEAM, "U0ANN", "ann")
            assert ann.command("/label").status == 200
            msg = fake.wait_for(lambda: fake.last_message(ann.dm), timeout=10)
            for n in (2, 3, 4):
                assert ann.click(msg, "label.choose:1").status == 200
                msg = fake.wait_for(lambda n=n: len(fake.messages(ann.dm)) == n and fake.last_message(ann.dm),
                                    timeout=10)
            scrapes = [_get(f"{server.base}/metrics") for _ in range(6)]  # answered by either worker
            for text in scrapes:
                assert value(text, "labelbot_clicks_total", action="label.choose") == 3
                assert value(text, "labelbot_answers_total", action="manual", kind="production") == 3
                assert value(text, "labelbot_commands_total", command="label") == 1
            runs = samples(scrapes[-1])
            for job in ("drafting.prefetch", "reports.daily", "expire_leases", "low_confidence"):
                # Each worker runs each job at start-up and every 2 s: the sum is at least 2 per worker.
                assert runs[("labelbot_job_runs_total", (("job", job),))] >= 4, job
            assert value(scrapes[-1], "labelbot_queue_depth", project="intents", queue="crowd") == 6
            assert server.log_text() == started  # clicks and scrapes write no lines either
        finally:
            server.stop()
    assert "Traceback" not in server.log_text()
    db.dispose()


def test_multiprocess_dir_is_made_before_the_fork_and_removed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    path = metrics_module.prepare_multiprocess()
    assert path is not None and os.environ["PROMETHEUS_MULTIPROC_DIR"] == path and os.path.isdir(path)
    assert metrics_module.prepare_multiprocess() is None  # one already set is kept
    metrics_module.cleanup_multiprocess(path)
    assert not os.path.exists(path) and "PROMETHEUS_MULTIPROC_DIR" not in os.environ
