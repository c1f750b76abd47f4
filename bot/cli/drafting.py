"""`labelbot draft SLUG [--limit N] [--batch | --collect]`: draft items with the project's LLM.

Registered by `bot.cli` through `COMMANDS`.
"""

from __future__ import annotations

import click

from bot.cli.common import UserError, explain, open_db, progress_bar
from bot.config import Settings
from bot.core.errors import ConfigError

NO_KEY = (
    "No LLM is configured: set OPENAI_API_KEY (and OPENAI_BASE_URL for a server other than OpenAI) to draft."
)


@click.command("draft")
@click.argument("slug")
@click.option("--limit", type=click.IntRange(min=1), help="Draft at most N items (serving order).")
@click.option("--batch", "use_batch", is_flag=True, help="Submit to the Batch API instead (half price, within 24h).")
@click.option("--collect", is_flag=True, help="Collect finished Batch API jobs and store their drafts.")
@click.option("--retry-errors", is_flag=True, help="Draft again items whose current draft failed.")
def draft(slug: str, limit: int | None, use_batch: bool, collect: bool, retry_errors: bool) -> None:
    """Draft labels for a project's items with its LLM (synchronously, or through the Batch API)."""
    import openai

    from bot.core.errors import NotFound
    from bot.services import drafting
    from bot.services.projects import get_project

    if use_batch and collect:
        raise UserError("Choose one of --batch and --collect.")
    if retry_errors and (use_batch or collect):
        raise UserError("--retry-errors works with synchronous drafting only (no --batch / --collect).")
    settings = Settings.from_env()
    if not settings.openai_api_key:
        raise UserError(NO_KEY)
    database = open_db()
    drafter = drafting.make_drafter(settings)
    try:
        with database.read() as s:
            get_project(s, slug)  # a clear message for an unknown project before any work
        if use_batch:
            result = drafting.submit_batch(database, slug, drafter=drafter, limit=limit)
            click.echo(result.summary())
            return
        if collect:
            click.echo(drafting.collect_batches(database, slug, drafter=drafter).summary())
            return
        total = drafting.undrafted_count(database, slug, drafter, retry_errors=retry_errors)
        total = min(total, limit) if limit else total
        progress, advance = progress_bar(total, f"Drafting {slug}")
        with progress:
            stats = drafting.draft_items(database, slug, limit=limit, progress=advance, drafter=drafter,
                                         retry_errors=retry_errors)
        click.echo(stats.summary())
        with database.read() as s:
            from bot.services.projects import spec_of

            cost = stats.cost(spec_of(get_project(s, slug)))
        if cost:
            click.echo(f"Estimated cost: ${cost:.4f}.")
    except (NotFound, ConfigError, drafting.DraftingUnavailable) as e:
        raise UserError(explain(e)) from None
    except openai.APIError as e:
        raise UserError(f"The LLM server at {drafter.base_url if drafter else '?'} refused: {e}") from None


COMMANDS = [draft]
