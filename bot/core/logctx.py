"""What a log line is about: the project, the Slack user and the request, carried in context variables.

The Bolt middleware sets the user and request id for each request; jobs and services set the project
where they know it. `bot.deps.Pool` runs each task in a copy of the submitter's context, so a
listener's lines carry its request's ids. The JSON log format (LABELBOT_LOG_FORMAT=json) writes them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar

project: ContextVar[str | None] = ContextVar("labelbot_project", default=None)
user_id: ContextVar[str | None] = ContextVar("labelbot_user_id", default=None)
request_id: ContextVar[str | None] = ContextVar("labelbot_request_id", default=None)


def set_project(slug: str | None) -> None:
    """The project the current task works on (a listener's context is its own copy)."""
    project.set(slug)


def set_request(request: str | None, user: str | None) -> None:
    """A new request: its id and the Slack user it comes from (the project is not known yet)."""
    request_id.set(request)
    user_id.set(user)
    project.set(None)


@contextlib.contextmanager
def about_project(slug: str) -> Iterator[None]:
    """Lines written inside are about `slug` (for loops over projects in jobs)."""
    token = project.set(slug)
    try:
        yield
    finally:
        project.reset(token)


def fields() -> dict[str, str | None]:
    return {"project": project.get(), "user_id": user_id.get(), "request_id": request_id.get()}
