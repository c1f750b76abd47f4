"""Webhook signatures (stdlib only): HMAC-SHA256 of `v1:{timestamp}:{body}`, like Slack's own scheme.

Headers of each delivery: `X-Labelbot-Timestamp` (Unix seconds), `X-Labelbot-Signature`
(`v1=` + hex digest), `X-Labelbot-Event` and `X-Labelbot-Event-Id` (the id to de-duplicate on: a
retried or replayed delivery carries the same one). A receiver recomputes the signature over the raw
body with the shared secret, compares in constant time, and refuses timestamps older than 5 minutes
(replays of a captured request)."""

from __future__ import annotations

import hashlib
import hmac

VERSION = "v1"
TOLERANCE_SECONDS = 300
HEADER_SIGNATURE = "X-Labelbot-Signature"
HEADER_TIMESTAMP = "X-Labelbot-Timestamp"
HEADER_EVENT = "X-Labelbot-Event"
HEADER_EVENT_ID = "X-Labelbot-Event-Id"
HEADER_ATTEMPT = "X-Labelbot-Attempt"


def sign(secret: str, timestamp: int, body: bytes) -> str:
    base = f"{VERSION}:{timestamp}:".encode() + body
    return f"{VERSION}=" + hmac.new(secret.encode("utf-8"), base, hashlib.sha256).hexdigest()


def verify(secret: str, timestamp: str | int, body: bytes, signature: str, now: float,
           tolerance: int = TOLERANCE_SECONDS) -> bool:
    """True when `signature` is this body's signature and the timestamp is recent."""
    try:
        ts = int(timestamp)
    except (TypeError, ValueError):
        return False
    if abs(now - ts) > tolerance:
        return False
    return hmac.compare_digest(sign(secret, ts, body), signature or "")
