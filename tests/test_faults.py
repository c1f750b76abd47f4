"""Slack misbehaving: 429 with Retry-After, 5xx, retries running out; DMs paced per channel.

The real Bolt app over HTTP talks to a FakeSlack that stamps every Web API call with its arrival time,
so the tests can check *when* the retries and the paced posts happened, not only that they did.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import func, select

from bot.sandbox.fake_slack import FakeSlack
from bot.slack.pacing import ChannelPacer
from storage.models import Assignment, Label
from tests.conftest import BOT_TOKEN, TEAM, start_bot
from tests.conftest import make_spec as _make_spec
from tests.helpers import qualify, seed

ITEMS = [{"id": f"t{i}", "text": f"Example number {i}: my invoice is wrong"} for i in range(12)]


@dataclass
class Stamp:
    method: str
    at: float  # time.monotonic() when the request arrived
    status: int
    ok: bool
    channel: str | None


class TimedFakeSlack(FakeSlack):
    """A FakeSlack that stamps each Web API call (arrival time, status, channel) and can delay methods."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.stamps: list[Stamp] = []
        self.delays: dict[str, float] = {}

    def _api(self, request: Any, method: str) -> Any:
        at = time.monotonic()
        delay = self.delays.get(method)
        if delay:
            time.sleep(delay)  # outside the fake's lock: other calls go on meanwhile
        response = super()._api(request, method)
        try:
            channel = self._params(request).get("channel")
        except Exception:  # a body the fake rejected; the stamp still counts the call
            channel = None
        body = response.body if isinstance(response.body, dict) else {}
        with self._cond:
            self.stamps.append(Stamp(method, at, response.status, bool(body.get("ok")), channel))
        return response

    def stamped(self, method: str, channel: str | None = None) -> list[Stamp]:
        with self._cond:
            return [s for s in self.stamps if s.method == method and (channel is None or s.channel == channel)]


@pytest.fixture
def timed_bot(sqlite_db: Any, clock: Any) -> Iterator[Any]:
    with TimedFakeSlack(bot_token=BOT_TOKEN, team_id=TEAM) as fake, start_bot(sqlite_db, fake, clock) as running:
        yield running


def _start(bot: Any, user: str = "U0ANN") -> tuple[Any, dict[str, Any]]:
    seed(bot.db, _make_spec(), bot.clock.now(), items=ITEMS)
    qualify(bot.db, "intents", user, bot.clock.now())
    ann = bot.user(user)
    assert ann.command("/label").status == 200
    return ann, bot.fake.wait_for(lambda: bot.fake.last_message(ann.dm))


def _labels(bot: Any) -> int:
    with bot.db.read() as s:
        return int(s.scalar(select(func.count()).select_from(Label)) or 0)


def test_429_on_post_message_is_retried_after_retry_after_and_the_user_gets_the_next_example(timed_bot):
    bot = timed_bot
    ann, msg = _start(bot)
    bot.fake.fail_next("chat.postMessage", status=429, retry_after=2)
    assert ann.click(msg, "label.choose:0").status == 200
    bot.fake.wait_for(lambda: len(bot.fake.messages(ann.dm)) == 2, timeout=10)
    posts = bot.fake.stamped("chat.postMessage", ann.dm)
    refused, retried = posts[-2], posts[-1]
    assert (refused.status, retried.status, retried.ok) == (429, 200, True)
    assert retried.at - refused.at >= 2.0  # Retry-After honoured (slack_sdk adds up to 1 s of jitter)
    assert _labels(bot) == 1


def test_5xx_on_post_is_retried(timed_bot):
    bot = timed_bot
    ann, msg = _start(bot)
    bot.fake.fail_next("chat.postMessage", status=500)
    assert ann.click(msg, "label.choose:1").status == 200
    bot.fake.wait_for(lambda: len(bot.fake.messages(ann.dm)) == 2, timeout=10)
    # the answered message is replaced through the click's response_url (no chat.update, no rate limit)
    assert bot.fake.stamped("chat.update") == []
    # (the /label command's ephemeral note may land before or after it: look for the replacement itself)
    assert [r["payload"].get("replace_original") for r in bot.fake.responses].count(True) == 1
    assert [s.status for s in bot.fake.stamped("chat.postMessage", ann.dm)][-2:] == [500, 200]
    first = bot.fake.message(ann.dm, msg["ts"])
    assert not any(b["type"] == "actions" for b in first["blocks"])  # replaced by the record
    assert _labels(bot) == 1


def test_when_retries_run_out_the_answer_is_kept_and_label_serves_the_same_next_example(timed_bot):
    bot = timed_bot
    ann, msg = _start(bot)
    bot.fake.fail_next("chat.postMessage", status=500, times=3)  # the first try and both retries
    ann.click(msg, "label.choose:0")
    bot.fake.wait_for(lambda: any("went wrong" in str(r["payload"]) for r in bot.fake.responses), timeout=10)
    assert _labels(bot) == 1  # the answer was stored before Slack failed
    assert len(bot.fake.messages(ann.dm)) == 1
    ann.command("/label")
    nxt = bot.fake.wait_for(lambda: (m := bot.fake.messages(ann.dm)) and len(m) == 2 and m[-1])
    with bot.db.read() as s:
        open_ids = s.scalars(select(Assignment.id).where(Assignment.status == "open")).all()
    assert len(open_ids) == 1  # the lease taken when the post failed is the one served now
    values = [el.get("value", "") for b in nxt["blocks"] for el in b.get("elements", []) if el.get("value")]
    assert any(v.split(":")[0] == str(open_ids[0]) for v in values)


# ------------------------------------------------------------------------------------------------ pacing


def test_pacer_allows_a_burst_then_one_per_interval_per_channel():
    now = [100.0]
    pacer = ChannelPacer(rate=1.0, burst=3, clock=lambda: now[0], sleep=lambda s: now.__setitem__(0, now[0] + s))
    waits = [pacer.reserve("D1") for _ in range(5)]
    assert waits == [0.0, 0.0, 0.0, 1.0, 2.0]
    assert pacer.reserve("D2") == 0.0  # another channel is not slowed down
    now[0] += 10  # idle: the bucket refills
    assert [pacer.reserve("D1") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert ChannelPacer(rate=0).reserve("D1") == 0.0  # off
    capped = ChannelPacer(rate=1.0, burst=1, max_wait=2.5, clock=lambda: 0.0)
    assert [capped.reserve("D9") for _ in range(5)] == [0.0, 1.0, 2.0, 2.5, 2.5]


def test_pacer_from_env():
    assert ChannelPacer.from_env({}).rate == 1.0
    pacer = ChannelPacer.from_env({"LABELBOT_DM_RATE": "0", "LABELBOT_DM_BURST": "2"})
    assert not pacer.enabled and pacer.burst == 2


def test_fast_clicks_are_paced_within_the_channel_rate(sqlite_db, clock):
    rate, burst = 8.0, 2
    pacer = ChannelPacer(rate=rate, burst=burst)
    with TimedFakeSlack(bot_token=BOT_TOKEN, team_id=TEAM) as fake, \
            start_bot(sqlite_db, fake, clock, pacer=pacer) as bot:
        _check_pacing(bot, pacer, rate, burst)


def _check_pacing(bot, pacer, rate, burst):
    ann, msg = _start(bot)
    for n in range(2, 8):
        ann.click(msg, "label.choose:0")
        msg = bot.fake.wait_for(lambda n=n: (m := bot.fake.messages(ann.dm)) and len(m) == n and m[-1])
    times = [s.at for s in bot.fake.stamped("chat.postMessage", ann.dm) if s.ok]
    assert len(times) == 7
    # GCRA: any j-i+1 posts span at least (j - i - (burst - 1)) intervals.
    for i in range(len(times)):
        for j in range(i + 1, len(times)):
            assert times[j] - times[i] >= (j - i - (burst - 1)) / rate - 0.02, (i, j, times)
    assert pacer.delayed >= 3
    assert _labels(bot) == 6
