"""`labelbot webhooks SLUG [list | test | replay --since T]`: a project's webhooks and their outbox.

Registered by `bot.cli` through `COMMANDS`.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import click

from bot.cli.common import UserError, friendly, open_db
from bot.core.clock import SystemClock


def parse_since(text: str, now: datetime) -> datetime:
    """`24h`, `7d`, `30m` (before now) or an ISO-8601 time (UTC unless it says otherwise)."""
    m = re.fullmatch(r"\s*(\d+)\s*([mhd])\s*", text)
    if m:
        n, unit = int(m.group(1)), m.group(2)
        return now - timedelta(**{{"m": "minutes", "h": "hours", "d": "days"}[unit]: n})
    try:
        t = datetime.fromisoformat(text.strip())
    except ValueError:
        raise UserError(f"--since {text!r}: give a time like 2026-01-05T09:00 or an age like 24h or 7d.") from None
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def _when(t: datetime | None) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if t else "-"


def _echo_run(run) -> None:  # type: ignore[no-untyped-def]
    for a in run.attempts:
        if a.ok:
            click.echo(f"- {a.url}: delivered {a.event_id} (HTTP {a.status})")
        else:
            click.echo(f"- {a.url}: NOT delivered {a.event_id}: {a.error or a.status}")
    click.echo(f"{run.delivered} delivered, {run.retrying} to retry, {run.failed} failed, {run.dropped} dropped.")


@click.command("webhooks")
@click.argument("slug")
@click.argument("action", type=click.Choice(["list", "test", "replay"]), default="list")
@click.option("--since", metavar="T", help="replay: events created since T (2026-01-05T09:00, or 24h, 7d).")
@friendly
def webhooks_cmd(slug: str, action: str, since: str | None) -> None:
    """A project's webhooks: list them with their delivery counts, send a test event, or replay events.

    Deliveries are signed (X-Labelbot-Signature: v1=HMAC-SHA256 of "v1:TIMESTAMP:BODY") and carry the
    event id (X-Labelbot-Event-Id) to de-duplicate on; a replay sends events again with the same ids."""
    from bot.services import webhooks
    from bot.services.projects import get_project, spec_of

    if since is not None and action != "replay":
        raise UserError("--since goes with replay.")
    if action == "replay" and since is None:
        raise UserError("replay needs --since T (a time, or an age like 24h).")
    database = open_db()
    clock = SystemClock()
    now = clock.now()
    if action == "list":
        with database.read() as s:
            project = get_project(s, slug)
            hooks = webhooks.summarize(s, project, spec_of(project))
        if not hooks:
            click.echo(f"{slug} has no webhooks; add `webhooks:` to its spec (see the README, Pipelines).")
            return
        for h in hooks:
            counts = ", ".join(f"{k} {v}" for k, v in sorted(h.counts.items())) or "nothing sent yet"
            events = ", ".join(h.events) or "(no longer in the spec)"
            click.echo(f"{h.url}  [{events}]  secret {h.secret}")
            click.echo(f"    {counts}; next attempt {_when(h.next_attempt_at)}")
            if h.last_error:
                click.echo(f"    last error: {h.last_error}")
        return
    if action == "test":
        with database.session() as s:
            project = get_project(s, slug)
            event_id, ids = webhooks.enqueue_test(s, project, spec_of(project), now)
        click.echo(f"Sending test event {event_id} to {len(ids)} webhook(s):")
        _echo_run(webhooks.deliver_due(database, clock.now, ids=ids))
        return
    start = parse_since(since or "", now)
    with database.session() as s:
        ids = webhooks.replay(s, get_project(s, slug), start, now)
    if not ids:
        click.echo(f"No webhook event of {slug} since {_when(start)}.")
        return
    click.echo(f"Replaying {len(ids)} delivery(ies) of events since {_when(start)} (same event ids):")
    _echo_run(webhooks.deliver_due(database, clock.now, ids=ids))


COMMANDS = [webhooks_cmd]
