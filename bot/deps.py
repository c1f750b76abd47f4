"""`Deps`: everything a handler or a job may need, built once per process by `bot.app.build_deps`.

The server, the demo and the tests all build it there. It owns the thread pools (Bolt's listeners,
and the handlers' work after the ack: reports, exports): `close()` drains them, then closes the
database pool; `wait_idle()` lets a test wait for the app's work to finish before it asserts.
"""

from __future__ import annotations

import contextvars
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from slack_sdk import WebClient

from bot.config import Settings
from bot.core.clock import Clock, SystemClock
from bot.services.people import NameBook
from storage.db import Database

if TYPE_CHECKING:
    from bot.services.drafting import Drafter, SimulatedDrafter
    from bot.slack.pacing import ChannelPacer

log = logging.getLogger("labelbot")


class Pool(ThreadPoolExecutor):
    """A thread pool that knows how much work it still has (so a caller can wait for it to drain).
    Each task runs in a copy of the submitter's context (`contextvars`): a listener's log lines carry
    its request's ids (`bot.core.logctx`)."""

    def __init__(self, max_workers: int, thread_name_prefix: str) -> None:
        super().__init__(max_workers=max_workers, thread_name_prefix=thread_name_prefix)
        self._pending = 0
        self._idle = threading.Condition()

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        with self._idle:
            self._pending += 1
        try:
            future = super().submit(contextvars.copy_context().run, fn, *args, **kwargs)
        except BaseException:
            self._finished(None)
            raise
        future.add_done_callback(self._finished)
        return future

    def _finished(self, _future: Future[Any] | None) -> None:
        with self._idle:
            self._pending -= 1
            if self._pending == 0:
                self._idle.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        """True once nothing is queued or running (False if that took longer than `timeout`)."""
        with self._idle:
            return self._idle.wait_for(lambda: self._pending == 0, timeout)


@dataclass
class Deps:
    settings: Settings
    db: Database
    clock: Clock = field(default_factory=SystemClock)
    client: WebClient | None = None  # the bot token's client (one workspace); None with OAuth
    drafter: Drafter | SimulatedDrafter | None = None  # None when drafting is off
    pacer: ChannelPacer | None = None
    # Several workspaces (OAuth): the installation store and a client per workspace.
    installation_store: Any = None
    client_for_team: Callable[[str], WebClient | None] | None = None
    # Display names of members (users.info), cached, for reports and alerts.
    names: NameBook = field(default_factory=NameBook)
    # The slash commands and events registered, so a test can hold them against the manifest.
    registered: dict[str, set[str]] = field(default_factory=lambda: {"commands": set(), "events": set()})
    _pools: list[Pool] = field(default_factory=list, repr=False)

    def workspace_client(self, team_id: str) -> WebClient | None:
        """A client that can post in `team_id` outside a request (daily reports, jobs)."""
        if self.client is not None:
            return self.client
        return self.client_for_team(team_id) if self.client_for_team is not None else None

    def pool(self, name: str, workers: int) -> Pool:
        """A thread pool owned by these deps (drained by `close`; `wait_idle` waits for it)."""
        executor = Pool(max_workers=workers, thread_name_prefix=name)
        self._pools.append(executor)
        return executor

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Wait until every pool is idle: the Bolt listeners and the work they handed on (reports,
        exports) have finished, and so has the work those started. True when idle within `timeout`."""
        deadline = time.monotonic() + timeout
        while True:
            for executor in list(self._pools):
                if not executor.wait_idle(max(0.0, deadline - time.monotonic())):
                    return False
            # A listener may have handed work to another pool while we waited on a later one.
            if all(executor.wait_idle(0) for executor in self._pools):
                return True

    def close(self, timeout: float = 20.0) -> None:
        """Let work already accepted finish (up to `timeout` seconds), then close the database pool."""
        pools, self._pools = self._pools, []
        if pools:
            done = threading.Event()

            def drain() -> None:
                for executor in pools:
                    executor.shutdown(wait=True)
                done.set()

            threading.Thread(target=drain, name="drain-pools", daemon=True).start()
            if not done.wait(timeout):
                log.warning("background work still running after %.0fs; closing anyway", timeout)
        self.db.dispose()
