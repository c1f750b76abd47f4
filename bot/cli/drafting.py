"""`labelbot draft SLUG [--limit N] [--batch | --collect]`: draft items with the project's LLM.

Registered by `bot.cli` through `COMMANDS`.
"""

from __future__ import annotations

import click

from bot.cli.common import UserError, explain, friendly, open_db, progress_bar
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
@click.option("--from", "from_file", type=click.Path(dir_okay=False), metavar="FILE",
              help="Add or replace predictions of your own model instead: rows with id, draft and optionally "
                   "draft_confidence (0-1) and draft_model (.jsonl, .csv or .parquet).")
@friendly
def draft(slug: str, limit: int | None, use_batch: bool, collect: bool, retry_errors: bool,
          from_file: str | None) -> None:
    """Draft labels for a project's items with its LLM (synchronously, or through the Batch API), or
    store your own model's predictions as drafts (--from FILE)."""
    import openai

    from bot.core.errors import NotFound
    from bot.services import drafting
    from bot.services.projects import get_project

    if from_file is not None:
        if use_batch or collect or retry_errors or limit:
            raise UserError("--from FILE stores predictions; it takes no --limit, --batch, --collect or "
                            "--retry-errors.")
        from bot.core.clock import SystemClock
        from bot.services.importer import import_predictions

        database = open_db()
        with database.session() as s:
            result = import_predictions(s, get_project(s, slug), from_file, SystemClock().now())
        p = result.predictions
        assert p is not None
        click.echo(f"{from_file}: {result.rows} prediction(s) read; {p.added} new, {p.replaced} replaced, "
                   f"{p.unchanged} unchanged.")
        return
    if use_batch and collect:
        raise UserError("Choose one of --batch and --collect.")
    if retry_errors and (use_batch or collect):
        raise UserError("--retry-errors works with synchronous drafting only (no --batch / --collect).")
    settings = Settings.from_env()
    if not settings.openai_api_key:
        raise UserError(NO_KEY)
    database = open_db()
    drafter = drafting.Drafter(settings)
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
        raise UserError(f"The LLM server at {drafter.base_url} refused: {e}") from None


COMMANDS = [draft]
