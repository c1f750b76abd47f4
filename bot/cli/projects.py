"""`labelbot db`, `project`, `import`, `gold` and `member`: setting a project up."""

from __future__ import annotations

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
def project_list() -> None:
    """List projects with their item counts."""
    from sqlalchemy import func, select

    from bot.services.projects import list_projects
    from storage.models import Item

    with open_db().read() as s:
        projects = list_projects(s)
        if not projects:
            click.echo("No projects yet. Create one with `labelbot project create spec.yml`.")
            return
        for p in projects:
            n = s.scalar(select(func.count()).select_from(Item).where(Item.project_id == p.id))
            click.echo(f"{p.slug:24} {p.task:15} {n:>9} items  {p.name}")


@project.command("show")
@click.argument("slug")
@friendly
def project_show(slug: str) -> None:
    """Print a project's spec and counts."""
    from sqlalchemy import func, select

    from bot.services.projects import get_project, spec_of
    from storage.models import Item, Label, Member

    with open_db().read() as s:
        p = get_project(s, slug)
        spec = spec_of(p)
        by_status = dict(
            s.execute(select(Item.status, func.count()).where(Item.project_id == p.id).group_by(Item.status)).all()
        )
        n_labels = s.scalar(select(func.count()).select_from(Label).where(Label.project_id == p.id))
        members = dict(
            s.execute(select(Member.state, func.count()).where(Member.project_id == p.id).group_by(Member.state)).all()
        )
        click.echo(f"# {p.name} ({p.slug}), workspace {p.team_id}")
        click.echo("items: " + (", ".join(f"{k} {v}" for k, v in sorted(by_status.items())) or "none"))
        click.echo(f"labels: {n_labels}")
        click.echo("members: " + (", ".join(f"{k} {v}" for k, v in sorted(members.items())) or "none"))
        click.echo(spec.to_yaml().rstrip())


# ---------------------------------------------------------------------------------- import
def _run_import(kind: str, slug: str, file: str, update_existing: bool) -> None:
    """Items: checked in full, staged and published in short transactions, so the running bot keeps
    answering (`import_items_staged`). Gold (small files): checked before the write transaction opens."""
    from bot.services.importer import check_gold_file, count_rows, import_gold, import_items_staged
    from bot.services.projects import get_project, spec_of

    database = open_db()
    rows = count_rows(file)
    now = SystemClock().now()
    if kind == "items":
        progress, advance = progress_bar(rows * 3 if rows else None, "Importing items (check, stage, publish)")
        with progress:
            result = import_items_staged(database, slug, file, now, update_existing=update_existing,
                                         progress=advance)
    else:
        progress, advance = progress_bar(rows, "Importing gold")
        with progress:
            with database.read() as s:
                spec = spec_of(get_project(s, slug))
            checked = check_gold_file(spec, file, progress=advance)
            with database.session() as s:
                result = import_gold(s, get_project(s, slug), file, now, update_existing=update_existing,
                                     checked=checked)
    click.echo(result.summary("gold items" if kind == "gold" else "items"))
    for w in result.warnings:
        click.echo(f"warning: {w}", err=True)


@click.command("import")
@click.argument("slug")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--update", "update_existing", is_flag=True, help="Replace the text/metadata of ids already imported.")
@friendly
def import_cmd(slug: str, file: str, update_existing: bool) -> None:
    """Import items (id, text, other fields as metadata) from .jsonl, .csv or .parquet."""
    _run_import("items", slug, file, update_existing)


class _GoldGroup(click.Group):
    """`labelbot gold SLUG FILE` imports; `labelbot gold promote ...` promotes."""

    def resolve_command(self, ctx: click.Context, args: list[str]):  # type: ignore[no-untyped-def]
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
@friendly
def gold_import(slug: str, file: str, update_existing: bool) -> None:
    """Import gold items: id, text, the answer (label | labels | spans | rewrite), explanation."""
    _run_import("gold", slug, file, update_existing)


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


@click.command("member")
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
    from bot.services.projects import get_project, set_member

    with open_db().session() as s:
        p = get_project(s, slug)
        change = set_member(
            s, p, user, SystemClock().now(), tier=Tier(tier) if tier else None,
            suspend=suspend, reinstate=reinstate, reason=reason, by=by or _operator(),
        )
        click.echo(f"{user} in {slug}: {change.description} (tier {change.member.tier}, {change.member.state}).")


COMMANDS = [db, project, import_cmd, gold, member_cmd]
