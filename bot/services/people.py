"""Display names of Slack members (`users.info`), cached, for what leads read: reports, alerts.

The member id stays the key everywhere (JSON, exports, the database); a name is only how a person is
shown. A lookup that fails (no `users:read` scope, a deleted user, a network error) shows the member id
instead and is asked again after a few minutes: a name is never worth failing a report over.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

log = logging.getLogger("labelbot.people")

NAME_TTL_SECONDS = 6 * 3600.0
MISS_TTL_SECONDS = 600.0
MAX_ENTRIES = 50_000
MAX_LOOKUPS = 200  # per call: a report of 5,000 people names the first 200 and shows ids for the rest


def display_name(user: dict[str, Any]) -> str | None:
    """The name Slack shows for a `users.info` user: display name, else real name, else handle."""
    profile = user.get("profile") or {}
    for value in (profile.get("display_name"), profile.get("real_name"), user.get("real_name"), user.get("name")):
        if isinstance(value, str) and value.strip():
            name = " ".join(value.split())
            return f"{name} (deactivated)" if user.get("deleted") else name
    return None


class NameBook:
    """Member id -> display name per workspace, from `users.info`, cached for `ttl` seconds (thread-safe)."""

    def __init__(self, ttl: float = NAME_TTL_SECONDS, miss_ttl: float = MISS_TTL_SECONDS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl, self.miss_ttl, self.clock = ttl, miss_ttl, clock
        self._cache: dict[tuple[str, str], tuple[float, str | None]] = {}
        self._lock = threading.Lock()
        self.lookups = 0  # users.info calls made (for tests and the bench)

    def names(self, client: Any, team_id: str, user_ids: Iterable[str]) -> dict[str, str]:
        """{member id: display name} for the ids Slack could name; the others are left out (show the id)."""
        out: dict[str, str] = {}
        asked = 0
        for uid in dict.fromkeys(u for u in user_ids if u):
            key = (team_id or "", uid)
            now = self.clock()
            with self._lock:
                hit = self._cache.get(key)
            if hit is not None and hit[0] > now:
                if hit[1]:
                    out[uid] = hit[1]
                continue
            if client is None or asked >= MAX_LOOKUPS:
                continue
            asked += 1
            name = self._lookup(client, uid)
            with self._lock:
                if len(self._cache) >= MAX_ENTRIES:
                    self._cache.clear()
                self._cache[key] = (now + (self.ttl if name else self.miss_ttl), name)
            if name:
                out[uid] = name
        return out

    def _lookup(self, client: Any, uid: str) -> str | None:
        self.lookups += 1
        try:
            response = client.users_info(user=uid)
        except Exception as e:  # a name is cosmetic: show the id (and say why in the log)
            log.info("users.info %s failed: %s", uid, getattr(getattr(e, "response", None), "data", e))
            return None
        user = response.get("user") if hasattr(response, "get") else None
        return display_name(user) if isinstance(user, dict) else None
