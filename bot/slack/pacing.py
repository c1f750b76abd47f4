"""Per-channel pacing of chat.postMessage (Slack allows about one message per second per channel,
with short bursts; above that it answers 429 with Retry-After).

`ChannelPacer` is a thread-safe GCRA token bucket per channel: `burst` messages may go at once, then
one every `1 / rate` seconds. `PacedWebClient` is a `WebClient` that waits for its slot before each
paced method. Bolt builds a fresh plain `WebClient` for every request, so `pacing_middleware` swaps the
listener's `client` for a paced copy that shares the process's pacer (and the retry handlers).

Pacing is per process: two replicas posting to the same DM at the same instant can still exceed the
rate; the `RateLimitErrorRetryHandler` in `bot.app.make_client` covers that (it sleeps Retry-After).
A labeling DM sees one chat.postMessage per click, so only someone clicking faster than `rate` for
longer than `burst` messages is ever slowed down.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from typing import Any

from slack_sdk import WebClient

from bot.slack.client import ObservedWebClient

PACED_METHODS = frozenset({"chat.postMessage"})
DEFAULT_RATE = 1.0  # messages per second per channel
DEFAULT_BURST = 5
DEFAULT_MAX_WAIT = 10.0  # never hold a listener thread longer than this; a 429 retry covers the rest


class ChannelPacer:
    """Token bucket per channel (GCRA). `reserve(channel)` books the next slot and returns how long
    to wait for it; `wait(channel)` sleeps that long. `rate <= 0` turns pacing off."""

    def __init__(
        self,
        rate: float = DEFAULT_RATE,
        burst: int = DEFAULT_BURST,
        *,
        max_wait: float = DEFAULT_MAX_WAIT,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        max_channels: int = 50_000,
    ) -> None:
        self.rate = rate
        self.burst = max(1, burst)
        self.max_wait = max_wait
        self._clock = clock
        self._sleep = sleep
        self._max_channels = max_channels
        self._tat: dict[str, float] = {}  # theoretical arrival time of the next message, per channel
        self._lock = threading.Lock()
        self.waited = 0.0  # total seconds slept (for tests and benches)
        self.delayed = 0  # messages that had to wait

    @property
    def enabled(self) -> bool:
        return self.rate > 0

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> ChannelPacer:
        """LABELBOT_DM_RATE (messages/s per channel, 0 = off, default 1) and LABELBOT_DM_BURST (default 5)."""
        env = dict(os.environ if env is None else env)
        rate = float(env.get("LABELBOT_DM_RATE", "").strip() or DEFAULT_RATE)
        burst = int(env.get("LABELBOT_DM_BURST", "").strip() or DEFAULT_BURST)
        return cls(rate=rate, burst=burst)

    def reserve(self, channel: str) -> float:
        if not self.enabled or not channel:
            return 0.0
        interval = 1.0 / self.rate
        tolerance = (self.burst - 1) * interval
        with self._lock:
            now = self._clock()
            tat = max(self._tat.get(channel, now), now)
            wait = min(max(0.0, tat - tolerance - now), self.max_wait)
            self._tat[channel] = max(tat, now + wait) + interval
            if len(self._tat) > self._max_channels:
                self._forget_idle(now)
            if wait > 0:
                self.delayed += 1
                self.waited += wait
        return wait

    def wait(self, channel: str) -> float:
        delay = self.reserve(channel)
        if delay > 0:
            self._sleep(delay)
        return delay

    def _forget_idle(self, now: float) -> None:
        for key in [k for k, tat in self._tat.items() if tat <= now]:
            del self._tat[key]


def _channel_of(*bodies: dict[str, Any] | None) -> str | None:
    for body in bodies:
        if body and body.get("channel"):
            return str(body["channel"])
    return None


class PacedWebClient(ObservedWebClient):
    """A WebClient that waits for the channel's slot before each paced method (chat.postMessage)."""

    def __init__(self, *args: Any, pacer: ChannelPacer, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.pacer = pacer

    def api_call(self, api_method: str, **kwargs: Any) -> Any:
        if api_method in PACED_METHODS:
            channel = _channel_of(kwargs.get("json"), kwargs.get("data"), kwargs.get("params"))
            if channel:
                self.pacer.wait(channel)
        return super().api_call(api_method, **kwargs)


def paced_copy(client: WebClient, pacer: ChannelPacer) -> PacedWebClient:
    """A paced client with the same token, base URL, timeout, headers and retry handlers."""
    return PacedWebClient(
        token=client.token,
        base_url=client.base_url,
        timeout=client.timeout,
        ssl=client.ssl,
        proxy=client.proxy,
        headers=client.headers,
        team_id=getattr(client, "team_id", None),
        logger=client.logger,
        retry_handlers=list(client.retry_handlers),
        pacer=pacer,
    )


def pacing_middleware(pacer: ChannelPacer) -> Callable[..., Any]:
    """A Bolt global middleware: listeners get a paced copy of the per-request client."""

    def pace_messages(context: Any, next: Callable[[], Any]) -> Any:
        client = context.get("client")
        if isinstance(client, WebClient) and not isinstance(client, PacedWebClient):
            context["client"] = paced_copy(client, pacer)
        return next()

    return pace_messages


def install_pacing(app: Any, pacer: ChannelPacer) -> ChannelPacer:
    """Pace every listener's chat.postMessage with `pacer` (the jobs' client is paced by
    `bot.app.build_deps`). Idempotent per app: a second call returns the pacer already installed."""
    installed = getattr(app, "_labelbot_pacer", None)
    if installed is not None:
        return installed
    app._labelbot_pacer = pacer
    if pacer.enabled:
        app.use(pacing_middleware(pacer))
    return pacer
