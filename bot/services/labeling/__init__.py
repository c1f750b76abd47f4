"""The labeling loop's use cases: serve the next example, record an answer, expire leases, escalate.

Plain functions over a SQLAlchemy session (the caller owns the unit of work) and an injected `now`.
Nothing here knows Slack: handlers turn the results into Block Kit.

Serving order for a member: their open assignment (continue) -> escalated items (experts) ->
a hidden gold check (at `gold_rate`) -> production work, items nearest completion first.

The package: `entry` (which project, where the member stands), `queue` (serving order and claims),
`tasks` (a served assignment as a `Task`), `answers` (recording, completion, hidden checks), `quiz`,
`leases`, `progress` (counts and caches), `stats` (`/label stats`, the Home tab).
"""

from __future__ import annotations

from bot.services.labeling.answers import check_honeypots, has_majority, load_assignment, record_answer
from bot.services.labeling.entry import Entry, entry, resolve_project
from bot.services.labeling.leases import expire_leases, set_message
from bot.services.labeling.progress import progress_for, start_of_day
from bot.services.labeling.queue import CLAIM_WINDOW, next_task, queue_busy
from bot.services.labeling.stats import MemberStats, member_stats
from bot.services.labeling.tasks import build_task, usable_draft

__all__ = [
    "CLAIM_WINDOW",
    "Entry",
    "MemberStats",
    "build_task",
    "check_honeypots",
    "entry",
    "expire_leases",
    "has_majority",
    "load_assignment",
    "member_stats",
    "next_task",
    "progress_for",
    "queue_busy",
    "record_answer",
    "resolve_project",
    "set_message",
    "start_of_day",
    "usable_draft",
]
