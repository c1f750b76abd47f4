"""A circuit breaker per project and process: consecutive failed calls pause drafting, with back-off."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta

from bot.services.drafting.base import FAILURE_THRESHOLD, PAUSE_BASE_SECONDS, PAUSE_MAX_SECONDS

# --------------------------------------------------------------------------------------------
# Circuit breaker (per project, per process)
# --------------------------------------------------------------------------------------------


class Breaker:
    """Opens after `threshold` consecutive failed calls, for 1, 2, 4... minutes up to 30."""

    def __init__(self, threshold: int = FAILURE_THRESHOLD, base: float = PAUSE_BASE_SECONDS,
                 cap: float = PAUSE_MAX_SECONDS) -> None:
        self.threshold, self.base, self.cap = threshold, base, cap
        self.consecutive = 0  # failures since the last success
        self.opens = 0
        self.open_until: datetime | None = None
        self.last_error: str | None = None
        self._armed = threshold  # failures that open the circuit next
        self._lock = threading.Lock()

    def allow(self, now: datetime) -> bool:
        with self._lock:
            return self.open_until is None or now >= self.open_until

    def paused(self, now: datetime) -> bool:
        return not self.allow(now)

    def success(self) -> None:
        with self._lock:
            self.consecutive, self.opens, self.open_until, self._armed = 0, 0, None, self.threshold

    def failure(self, now: datetime, error: str | None) -> float | None:
        """Record a failed call; returns the pause in seconds when this failure opened the circuit."""
        with self._lock:
            self.consecutive += 1
            self.last_error = error
            if self.open_until is not None and now < self.open_until:
                return None  # a call that was in flight when the circuit opened
            self._armed -= 1
            if self._armed > 0:
                return None
            period = min(self.cap, self.base * 2**self.opens)
            self.opens += 1
            self.open_until = now + timedelta(seconds=period)
            self._armed = 1  # after the pause, one more failure re-opens (half-open)
            return period
