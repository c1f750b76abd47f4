"""`labelbot guidelines SLUG [show [--version N] | history | suggest [--out FILE] | set FILE]`.

Registered by `bot.cli` through `COMMANDS`. `suggest` writes a proposed revision from where people
disagree (with the project's LLM when OPENAI_API_KEY is set, else a template to write in); `set`
publishes a file as the next version (the running bot DMs the qualified annotators).
"""

from __future__ import annotations

import getpass
from pathlib import Path

import click

from bot.cli.common import UserError, friendly, open_db
from bot.core.clock import SystemClock


@click.group("guidelines", invoke_without_command=True)
@click.argument("slug")
@click.pass_context
def guidelines(ctx: click.Context, slug: str) -> None:
    """A project's guidelines: show a version, the history, suggest a revision, publish one."""
    ctx.obj = slug
    if ctx.invoked_subcommand is None:
        ctx.invoke(show_cmd, version=None)


@guidelines.command("show")
@click.option("--version", "version", type=click.IntRange(min=1), help="A past version (default: the current one).")
@click.pass_obj
@friendly
def show_cmd(slug: str, version: int | None) -> None:
    """Print a version of the guidelines (the one in force by default)."""
    from bot.services import guidelines as service

    info, text = service.show(open_db(), slug, version)
    state = "current" if info.current else "replaced"
    click.echo(f"# {slug}: guidelines version {info.version} ({state}), published {info.created_at:%Y-%m-%d %H:%M} "
               f"UTC by {info.author}")
    if info.version > 1 and info.summary:
        click.echo("What changed:")
        for line in info.summary:
            click.echo(f"  - {line}")
    click.echo()
    click.echo(text)


@guidelines.command("history")
@click.pass_obj
@friendly
def history_cmd(slug: str) -> None:
    """Every version: when, by whom, what changed, and how well people agreed under it."""
    from bot.blocks.guidelines import suggestion_line
    from bot.services import guidelines as service
    from bot.services.projects import get_project, spec_of
    from bot.services.reports.guidelines import agreement_by_guidelines, suggestions_section

    database = open_db()
    versions = service.history(database, slug)
    with database.read() as s:
        project = get_project(s, slug)
        measured = {e["version"]: e for e in agreement_by_guidelines(s, project, spec_of(project))}
        made = suggestion_line(suggestions_section(s, project))
    for info in versions:
        entry = measured.get(info.version, {})
        alpha, percent = entry.get("krippendorff_alpha"), entry.get("percent")
        figures = f"{entry.get('items', 0)} items with 2+ answers"
        if alpha is not None:
            ci = entry.get("ci") or [None, None]
            figures += f", alpha {alpha:.2f}" + (f" [{ci[0]:.2f}, {ci[1]:.2f}]" if ci[0] is not None else "")
        if percent is not None:
            figures += f", {percent:.0%} agreement"
        click.echo(f"v{info.version}{' (current)' if info.current else ''}  {info.created_at:%Y-%m-%d %H:%M} UTC  "
                   f"by {info.author} ({info.source}), {info.chars:,} characters; {figures}")
        for line in info.summary:
            click.echo(f"    - {line}")
        if entry.get("change"):
            click.echo(f"    {entry['change']['sentence']}")
    if made:
        click.echo(made)


@guidelines.command("suggest")
@click.option("--out", type=click.Path(dir_okay=False, writable=True),
              help="Write the proposed text here (to edit, then `labelbot guidelines SLUG set FILE`).")
@click.pass_obj
@friendly
def suggest_cmd(slug: str, out: str | None) -> None:
    """Propose a revision from the confusions, split items and Ambiguous flags."""
    from bot.config import Settings
    from bot.services import guidelines as service
    from bot.services.drafting import make_drafter
    from bot.services.guidelines.compose import evidence_lines

    database = open_db()
    writer = service.writer_for(make_drafter(Settings.from_env()))
    suggestion = service.suggest(database, slug, requested_by=f"cli:{_user()}", now=SystemClock().now(),
                                 writer=writer)
    if suggestion.error_kind:
        click.echo(f"warning: the LLM could not write the revision ({suggestion.error_kind}: {suggestion.error}); "
                   "this is the template with the evidence.", err=True)
    who = {"llm": f"written by {suggestion.model}", "simulated": "written by the simulated writer",
           "template": "a template: write in the [write here: ...] places"}[suggestion.method]
    click.echo(f"# Suggestion {suggestion.id} for {slug}, revising version {suggestion.based_on} ({who})")
    click.echo()
    for line in evidence_lines(suggestion.evidence):
        click.echo(line)
    if suggestion.changes:
        click.echo("\nWhat it changes:")
        for line in suggestion.changes:
            click.echo(f"  - {line}")
    if out:
        Path(out).write_text(suggestion.text + "\n", encoding="utf-8")
        click.echo(f"\nThe proposal is in {out}; edit it, then: labelbot guidelines {slug} set {out}")
    else:
        click.echo("\n--- proposed guidelines ---")
        click.echo(suggestion.text)


@guidelines.command("set")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--summary", help="What changed, sent to the annotators (lines separated by newlines). "
                                "Default: the suggestion's, else a summary of the lines added and removed.")
@click.option("--author", help="Who publishes it (default: cli:$USER).")
@click.option("--promote-quoted", is_flag=True,
              help="Also add to gold the expert decisions quoted by the latest suggestion.")
@click.option("--promote", "promote_ids", multiple=True, metavar="ITEM_ID",
              help="Add this expert-settled item (external id) to gold; repeatable.")
@click.pass_obj
@friendly
def set_cmd(slug: str, file: str, summary: str | None, author: str | None, promote_quoted: bool,
            promote_ids: tuple[str, ...]) -> None:
    """Publish FILE as the next version of the guidelines."""
    from sqlalchemy import select

    from bot.services import guidelines as service
    from bot.services.projects import get_project
    from storage.models import Item

    try:
        text = Path(file).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"{file}: no such file") from None
    except UnicodeDecodeError as e:
        raise UserError(f"{file}: not UTF-8 text (byte {e.start})") from None
    database = open_db()
    suggestion = service.latest_suggestion(database, slug)
    promote: set[int] = set()
    if promote_quoted:
        if suggestion is None:
            raise UserError(f"No suggestion for the current version of {slug}: run `labelbot guidelines {slug} "
                            "suggest` first, or name the items with --promote.")
        promote |= {i.item_id for i in suggestion.evidence.expert_items}
    if promote_ids:
        with database.read() as s:
            project = get_project(s, slug)
            found = dict(s.execute(select(Item.external_id, Item.id).where(
                Item.project_id == project.id, Item.external_id.in_(promote_ids))).all())
        missing = [x for x in promote_ids if x not in found]
        if missing:
            raise UserError(f"No item {', '.join(map(repr, missing))} in {slug}.")
        promote |= set(found.values())
    published = service.publish(
        database, slug, text, author=author or f"cli:{_user()}", source="cli", now=SystemClock().now(),
        summary=summary, suggestion_id=suggestion.id if suggestion is not None else None, promote=promote,
    )
    click.echo(f"Published version {published.version} of the guidelines of {slug}.")
    for line in published.summary:
        click.echo(f"  - {line}")
    if published.promoted or promote:
        click.echo(f"{published.promoted} expert decision(s) added to gold.")
    click.echo(f"{published.notices} qualified annotator(s) will get one DM each from the running bot "
               "(`labelbot serve` sends them within a minute).")


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no user name in this environment
        return "unknown"


COMMANDS = [guidelines]
