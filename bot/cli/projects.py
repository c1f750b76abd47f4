"""`labelbot db`, `project`, `import`, `gold`, `member` and `items`: setting a project up and looking after it."""

from __future__ import annotations

from datetime import datetime

import click

from bot.cli.common import UserError, friendly, open_db, progress_bar
from bot.config import Settings
from bot.core.clock import SystemClock
from bot.spec import load_spec


# ---------------------------------------------------------------------------------- db
@click.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Create or migrate the schema to the latest version."""
    database = open_db(upgrade=False)
    database.upgrade()
    click.echo(f"Database is up to date ({database.dialect}).")


# ---------------------------------------------------------------------------------- project
@click.group()
def project() -> None:
    """Create, update, list and show projects (specs in YAML)."""


def _team(settings: Settings, team: str | None) -> str:
    team = team or settings.slack_team_id
    if team:
        return team
    if settings.slack_bot_token:
        from slack_sdk import WebClient

        try:
            return WebClient(token=settings.slack_bot_token, base_url=settings.slack_api_url).auth_test()["team_id"]
        except Exception as e:  # network or auth problem: say what to do instead
            raise UserError(f"Could not ask Slack for the workspace id ({e}); pass --team T0123.") from None
    raise UserError(
        "Which Slack workspace is this project for? Pass --team T0123 (the workspace id), set SLACK_TEAM_ID, "
        "or set SLACK_BOT_TOKEN so labelbot can ask Slack."
    )


@project.command("create")
@click.argument("spec_file", type=click.Path(dir_okay=False))
@click.option("--team", help="Slack workspace (team) id, e.g. T0123ABC. Default: SLACK_TEAM_ID or auth.test.")
@friendly
def project_create(spec_file: str, team: str | None) -> None:
    """Create a project from a YAML spec."""
    from bot.services.projects import create_project

    spec = load_spec(spec_file)
    settings = Settings.from_env()
    team_id = spec.team_id or _team(settings, team)
    database = open_db()
    with database.session() as s:
        p = create_project(s, spec, team_id, SystemClock().now())
        click.echo(f"Created project {p.slug!r} ({spec.task.value}, {len(spec.labels)} labels) in workspace {team_id}.")
        _warn_gold_pool(s, p, spec)


def _warn_gold_pool(session: object, project: object, spec: object) -> None:
    from bot.services.projects import gold_pool_warning

    warning = gold_pool_warning(session, project, spec)  # type: ignore[arg-type]
    if warning:
        click.echo(f"warning: {warning}", err=True)


@project.command("update")
@click.argument("spec_file", type=click.Path(dir_okay=False))
@friendly
def project_update(spec_file: str) -> None:
    """Apply a changed YAML spec to an existing project."""
    from bot.services.completion import rebalance_in_chunks
    from bot.services.projects import update_project

    spec = load_spec(spec_file)
    database = open_db()
    with database.session() as s:
        p, changes = update_project(s, spec, SystemClock().now(), rebalance_items=False)
        old_redundancy = next((c for c in changes if c.startswith("redundancy:")), None)
        project_id, slug = p.id, p.slug
        _warn_gold_pool(s, p, spec)
    click.echo(f"Updated project {slug!r}: " + ("; ".join(changes) if changes else "no change") + ".")
    if old_redundancy:
        # Each item's slots and completion, recomputed a chunk of items per short transaction.
        done = rebalance_in_chunks(database, project_id, spec, SystemClock().now())
        click.echo(f"Applied the new redundancy: items {done.describe()}.")


@project.command("rebalance")
@click.argument("slug")
@friendly
def project_rebalance(slug: str) -> None:
    """Recompute every unsettled item's slots and completion from its labels and open leases (after an
    interrupted `project update`; safe to run any time)."""
    from bot.services.completion import rebalance_in_chunks
    from bot.services.projects import get_project, spec_of

    database = open_db()
    with database.read() as s:
        p = get_project(s, slug)
        project_id, spec = p.id, spec_of(p)
    done = rebalance_in_chunks(database, project_id, spec, SystemClock().now())
    click.echo(f"Rebalanced {slug!r}: items {done.describe()}.")


@project.command("list")
@click.option("--archived/--no-archived", default=True, show_default=True, help="Also list archived projects.")
def project_list(archived: bool) -> None:
    """List projects: items (gold apart), answers, and whether they are archived."""
    from bot.services.activity import activity_between, item_counts
    from bot.services.projects import list_projects

    with open_db().read() as s:
        projects = list_projects(s, include_archived=archived)
        if not projects:
            click.echo("No projects yet. Create one with `labelbot project create spec.yml`.")
            return
        click.echo(f"{'project':24} {'task':15} {'items':>9} {'gold':>6} {'answers':>9}  name")
        for p in projects:
            items, activity = item_counts(s, p.id), activity_between(s, p.id)
            note = "  (archived)" if p.archived else ""
            click.echo(f"{p.slug:24} {p.task:15} {items['total']:>9,} {items['gold']:>6,} {activity.answers:>9,}  "
                       f"{p.name}{note}")


@project.command("show")
@click.argument("slug")
@friendly
def project_show(slug: str) -> None:
    """Print a project's items, what people did (in the report's words), its members and its spec."""
    from sqlalchemy import func, select

    from bot.services.activity import activity_between, item_counts
    from bot.services.projects import get_project, spec_of
    from storage.models import Member

    with open_db().read() as s:
        p = get_project(s, slug)
        spec = spec_of(p)
        items = item_counts(s, p.id)
        activity = activity_between(s, p.id)
        members = dict(
            s.execute(select(Member.state, func.count()).where(Member.project_id == p.id).group_by(Member.state)).all()
        )
        click.echo(f"# {p.name} ({p.slug}), workspace {p.team_id}" + (" — ARCHIVED" if p.archived else ""))
        if p.archived:
            click.echo("archived: serves nothing and is not offered in /label; all data kept "
                       f"(`labelbot project unarchive {p.slug}` brings it back)")
        click.echo(f"items: {items['total']:,} ({items['open']:,} open, {items['complete']:,} complete, "
                   f"{items['escalated']:,} escalated: {items['in_expert_queue']:,} in the expert queue, "
                   f"{items['resolved']:,} settled by an expert); gold items: {items['gold']:,}")
        click.echo(f"done: {activity.words(zeros=True)}")
        click.echo("members: " + (", ".join(f"{k} {v}" for k, v in sorted(members.items())) or "none"))
        click.echo(spec.to_yaml().rstrip())


@project.command("archive")
@click.argument("slug")
@friendly
def project_archive(slug: str) -> None:
    """Archive a project: it serves nothing and leaves /label; all its data stays (reports, exports)."""
    from bot.services.projects import set_archived

    with open_db().session() as s:
        p, cancelled = set_archived(s, slug, True, SystemClock().now())
        taken = f"; {cancelled} open example(s) taken back from people's DMs" if cancelled else ""
        click.echo(f"Archived {p.slug!r}: it serves nothing and is not offered in /label{taken}. "
                   f"All its data is kept; `labelbot project unarchive {p.slug}` brings it back.")


@project.command("unarchive")
@click.argument("slug")
@friendly
def project_unarchive(slug: str) -> None:
    """Bring an archived project back."""
    from bot.services.projects import set_archived

    with open_db().session() as s:
        p, _ = set_archived(s, slug, False, SystemClock().now())
        click.echo(f"{p.slug!r} is active again: /label serves it.")


# ---------------------------------------------------------------------------------- import
def _run_import(kind: str, slug: str, file: str, update_existing: bool, id_column: str | None = None,
                text_column: str | None = None) -> None:
    """Items are staged and published in short transactions (`import_items_staged`: the running bot keeps
    answering); a gold file is checked in full before its one write transaction opens."""
    from bot.services.importer import check_gold_file, columns_for, count_rows, import_gold, import_items_staged
    from bot.services.projects import get_project, spec_of

    database = open_db()
    with database.read() as s:
        spec = spec_of(get_project(s, slug))
    columns = columns_for(spec, id_column, text_column)
    rows = count_rows(file)
    # Items advance the bar once per row in each of three passes: check, stage, publish.
    total = rows * 3 if rows is not None and kind == "items" else rows
    progress, advance = progress_bar(total, f"Importing {kind}")
    with progress:
        if kind == "items":
            result = import_items_staged(database, slug, file, SystemClock().now(), update_existing=update_existing,
                                         progress=advance, columns=columns)
        else:
            checked = check_gold_file(spec, file, advance, columns)
            with database.session() as s:
                result = import_gold(s, get_project(s, slug), file, SystemClock().now(),
                                     update_existing=update_existing, columns=columns, checked=checked)
    click.echo(result.summary("gold items" if kind == "gold" else "items"))
    for w in result.warnings:
        click.echo(f"warning: {w}", err=True)


_ID_COLUMN = click.option("--id-column", metavar="NAME",
                          help="The column holding each item's id (default: import.columns.id of the spec, or 'id').")
_TEXT_COLUMN = click.option("--text-column", metavar="NAME",
                            help="The column holding the text (default: import.columns.text of the spec, or 'text').")


@click.command("import")
@click.argument("slug")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--update", "update_existing", is_flag=True, help="Replace the text/metadata of ids already imported.")
@_ID_COLUMN
@_TEXT_COLUMN
@friendly
def import_cmd(slug: str, file: str, update_existing: bool, id_column: str | None, text_column: str | None) -> None:
    """Import items (id, text, other fields as metadata) from .jsonl, .json, .csv, .tsv or .parquet."""
    _run_import("items", slug, file, update_existing, id_column, text_column)


class _GoldGroup(click.Group):
    """`labelbot gold SLUG FILE` imports; `labelbot gold promote ...` promotes."""

    def resolve_command(self, ctx: click.Context, args: list[str]):
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            return "import", self.commands["import"], args
        return super().resolve_command(ctx, args)


@click.group(cls=_GoldGroup)
def gold() -> None:
    """Gold items: `labelbot gold SLUG FILE` imports them (with answers and explanations)."""


@gold.command("import")
@click.argument("slug")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--update", "update_existing", is_flag=True, help="Replace gold answers of ids already imported.")
@_ID_COLUMN
@_TEXT_COLUMN
@friendly
def gold_import(slug: str, file: str, update_existing: bool, id_column: str | None, text_column: str | None) -> None:
    """Import gold items: id, text, the answer (label | labels | spans | rewrite), explanation."""
    _run_import("gold", slug, file, update_existing, id_column, text_column)


@gold.command("promote")
@click.argument("slug")
@click.option("--from-experts", is_flag=True, required=True, help="Promote expert-adjudicated items.")
@friendly
def gold_promote(slug: str, from_experts: bool) -> None:
    """Add expert-adjudicated items to the gold pool (the calibration set grows from hard cases)."""
    from bot.services.labeling.quiz import promote_from_experts
    from bot.services.projects import get_project

    with open_db().session() as s:
        added = promote_from_experts(s, get_project(s, slug), SystemClock().now())
    click.echo(f"Promoted {added} expert-adjudicated item(s) to gold in {slug}.")


# ---------------------------------------------------------------------------------- members
def _operator() -> str:
    import getpass

    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):  # no user name in this environment
        return "cli"


class _DefaultGroup(click.Group):
    """A group whose first argument, when it is not a subcommand, goes to `default` (`labelbot member SLUG
    USER` sets a member, `labelbot member list SLUG` lists them)."""

    default = ""

    def resolve_command(self, ctx: click.Context, args: list[str]):  # type: ignore[no-untyped-def]
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            return self.default, self.commands[self.default], args
        return super().resolve_command(ctx, args)


class _MemberGroup(_DefaultGroup):
    default = "set"


@click.group(cls=_MemberGroup)
def member() -> None:
    """Members: `labelbot member SLUG USER [...]` changes one, `labelbot member list SLUG` lists them."""


@member.command("set")
@click.argument("slug")
@click.argument("user")
@click.option("--tier", type=click.Choice(["crowd", "expert", "lead"]))
@click.option("--suspend", is_flag=True, help="Pause their labels (and a lead's rights) until --reinstate.")
@click.option("--reinstate", is_flag=True, help="Lift a pause (a lead's pause can only be lifted this way).")
@click.option("--reason", help="Why; shown to the member.")
@click.option("--by", "by", help="Who is acting, recorded with a suspension (default: cli:<your user name>).")
@friendly
def member_cmd(slug: str, user: str, tier: str | None, suspend: bool, reinstate: bool, reason: str | None,
               by: str | None) -> None:
    """Change a member's tier or suspend / reinstate them.

    A member paused here cannot lift the pause by retaking the quiz (one paused by the hidden checks
    can, after the quiz cooldown); a paused lead has no lead rights."""
    from bot.core.enums import Tier
    from bot.services.projects import check_member_id, get_project, set_member

    check_member_id(user)
    with open_db().session() as s:
        p = get_project(s, slug)
        change = set_member(
            s, p, user, SystemClock().now(), tier=Tier(tier) if tier else None,
            suspend=suspend, reinstate=reinstate, reason=reason, by=by or _operator(),
        )
        click.echo(f"{user} in {slug}: {change.description} (tier {change.member.tier}, {change.member.state}).")


def _ago(when: datetime | None, now: datetime) -> str:
    if when is None:
        return "never"
    seconds = (now - when).total_seconds()
    if seconds < 3600:
        return f"{max(0, int(seconds // 60))} min ago"
    if seconds < 86400:
        return f"{int(seconds // 3600)} h ago"
    return f"{when:%Y-%m-%d}"


@member.command("list")
@click.argument("slug")
@click.option("--names/--no-names", default=True, show_default=True,
              help="Show Slack display names too (needs SLACK_BOT_TOKEN and the users:read scope).")
@friendly
def member_list(slug: str, names: bool) -> None:
    """Members of a project: tier, state and why, answers, gold accuracy on hidden checks, last active."""
    from bot.services.projects import get_project, member_rows

    with open_db().read() as s:
        p = get_project(s, slug)
        rows = member_rows(s, p)
    if not rows:
        click.echo(f"{slug} has no members yet: people join with /label, or add them with "
                   f"`labelbot member {slug} U0123ABCD --tier crowd|expert|lead`.")
        return
    shown = _display_names([r.user_id for r in rows]) if names else {}
    now = SystemClock().now()
    width = max(len("member"), *(len(_who(r.user_id, shown)) for r in rows))
    click.echo(f"{'member':{width}}  {'tier':6}  {'state':9}  {'answers':>7}  {'gold':>11}  {'last active':12}  why")
    for r in rows:
        gold = f"{r.gold_accuracy:.0%} of {r.gold_checks}" if r.gold_accuracy is not None else "-"
        click.echo(f"{_who(r.user_id, shown):{width}}  {r.tier:6}  {r.state:9}  {r.answers:>7,}  {gold:>11}  "
                   f"{_ago(r.last_active, now):12}  {r.reason or ''}".rstrip())


def _who(user: str, names: dict[str, str]) -> str:
    return f"{user} ({names[user]})" if user in names else user


def _display_names(users: list[str]) -> dict[str, str]:
    settings = Settings.from_env()
    if not settings.slack_bot_token or settings.oauth_enabled:
        return {}
    from bot.services.people import NameBook
    from bot.slack.client import make_client

    return NameBook().names(make_client(settings), "", users)


# ---------------------------------------------------------------------------------- items
@click.group()
def items() -> None:
    """Items already imported: `labelbot items remove SLUG ID...`."""


@items.command("remove")
@click.argument("slug")
@click.argument("ids", nargs=-1)
@click.option("--file", "file", type=click.Path(dir_okay=False),
              help="Ids to remove: one per line, or the id column of a .jsonl/.json/.csv/.tsv/.parquet file.")
@_ID_COLUMN
@click.option("--with-answers", is_flag=True,
              help="Also remove items people already answered; their answers are kept in the removed_items table.")
@friendly
def items_remove(slug: str, ids: tuple[str, ...], file: str | None, id_column: str | None, with_answers: bool) -> None:
    """Remove items (all or nothing). Items with answers are refused unless --with-answers."""
    from bot.services.items import read_ids, remove_items
    from bot.services.projects import get_project, spec_of

    if bool(ids) == bool(file):
        raise UserError("Give the ids to remove on the command line or with --file (one of the two).")
    with open_db().session() as s:
        p = get_project(s, slug)
        wanted = list(ids) or read_ids(file or "", id_column or spec_of(p).imports.columns.id)
        result = remove_items(s, p, wanted, SystemClock().now(), with_answers=with_answers)
    click.echo(result.summary(slug))


COMMANDS = [db, project, import_cmd, gold, member, items]
