"""`labelbot export` and `labelbot queue` (registered by bot.cli through `COMMANDS`)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import click

from bot.cli.common import UserError, friendly, open_db, progress_bar
from bot.core.clock import SystemClock


def _age(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds < 3600:
        return f"{seconds // 60}m"
    if seconds < 86400:
        return f"{seconds // 3600}h"
    return f"{seconds // 86400}d"


def _one_line(text: str, limit: int) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


@click.command("export")
@click.argument("slug")
@click.option("--format", "fmt", metavar="jsonl|csv|parquet|openai|hf|conll",
              help="Output format. Default: from the --out extension, else jsonl.")
@click.option("--raw", is_flag=True, help="Every label row instead of one final answer per item.")
@click.option("--min-confidence", type=float, metavar="X", help="Leave out final rows with confidence below X.")
@click.option("--method", default="majority", show_default=True, metavar="majority|dawid_skene",
              help="How the crowd's labels are combined (Dawid-Skene: classification only).")
@click.option("--include-gold", is_flag=True,
              help="Add the gold items (left out by default: they are your test set), marked source=gold.")
@click.option("--validation", type=float, metavar="F",
              help="Hold out this share of the rows (e.g. 0.1), stratified by label: OUT-train and OUT-validation "
                   "files (hf: train and validation splits).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the --validation split.")
@click.option("--out", "out", type=click.Path(writable=True),
              help="Output file (a directory for hf); its extension must match the format. "
                   "Default: SLUG-final-YYYYMMDD.jsonl (or -raw-, -openai-) here.")
@click.option("--no-escalate", is_flag=True,
              help="Do not send low-confidence items to the expert queue before the export.")
@friendly
def export_cmd(slug: str, fmt: str | None, raw: bool, min_confidence: float | None, method: str,
               include_gold: bool, validation: float | None, seed: int, out: str | None, no_escalate: bool) -> None:
    """Export a project: the final dataset (default), --raw labels, an OpenAI fine-tuning file, a Hugging Face
    dataset (hf) or CoNLL span tags.

    The final dataset leaves out the gold set (--include-gold adds it), items still open or escalated, ties
    and rows below --min-confidence; the last line says what was written and what was left out."""
    from bot.services.export import (
        ExportOptions,
        ExportProblem,
        check_out,
        count_export_rows,
        default_filename,
        export_project,
        format_for_path,
    )
    from bot.services.projects import get_project

    if fmt is None:
        fmt = format_for_path(out) if out else "jsonl"
        if fmt is None:
            raise UserError(f"{out}: the extension does not name a format; name the file .jsonl, .csv, .parquet or "
                            ".conll, or give --format (hf writes a directory, openai a .jsonl file).")
    options = ExportOptions(fmt=fmt.lower(), raw=raw, method=method, min_confidence=min_confidence,
                            include_gold=include_gold, validation=validation, seed=seed)
    now = SystemClock().now()
    path = Path(out) if out else Path(default_filename(slug, options, now))
    try:
        options.check()
        check_out(path, options.fmt)
    except ExportProblem as e:
        raise UserError(str(e)) from None
    database = open_db()
    with database.read() as s:
        total = count_export_rows(s, get_project(s, slug), raw)
    progress, advance = progress_bar(total, "Exporting labels" if raw else "Exporting items")
    try:
        with progress:
            result = export_project(database, slug, path, options, now=now, escalate=not no_escalate,
                                    progress=advance)
    except ExportProblem as e:
        raise UserError(str(e)) from None
    for warning in result.warnings:
        click.echo(f"Warning: {warning}", err=True)
    if options.fmt == "hf":
        click.echo(f"Load it with datasets.load_from_disk({str(path)!r}); publish it with .push_to_hub(\"ORG/NAME\").",
                   err=True)
    click.echo(result.summary())


@click.command("queue")
@click.argument("slug")
@click.option("--escalated", is_flag=True, help="List the items waiting for an expert.")
@click.option("--refresh", is_flag=True,
              help="First send complete items below escalation.min_confidence to the expert queue.")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 10_000),
              help="At most this many escalated items.")
@friendly
def queue_cmd(slug: str, escalated: bool, refresh: bool, limit: int) -> None:
    """Item statuses of a project; --escalated lists the expert queue."""
    from bot.services.adjudication import escalated_items, queue_summary, refresh_low_confidence
    from bot.services.projects import get_project, spec_of

    database = open_db()
    now = SystemClock().now()
    if refresh:
        with database.read() as s:
            threshold = spec_of(get_project(s, slug)).escalation.min_confidence
        if threshold is None:
            click.echo(f"escalation.min_confidence is not set for {slug}, so no item is low-confidence.")
        else:
            moved = refresh_low_confidence(database, slug, now)
            click.echo(f"Sent {moved} complete item(s) with confidence below {threshold:g} to the expert queue.")
    with database.read() as s:
        project = get_project(s, slug)
        counts = queue_summary(s, project)
        listing = escalated_items(s, project, now, limit=limit) if escalated else None
    total = sum(counts.values())
    click.echo(f"{slug}: {total} items: " + ", ".join(f"{k} {v}" for k, v in counts.items()) + ".")
    if listing is None:
        return
    if not listing.items:
        click.echo("No item is waiting for an expert.")
        return
    shown = len(listing.items)
    more = f" (the oldest {shown})" if listing.total > shown else ""
    click.echo(f"{listing.total} item(s) waiting for an expert{more}, oldest first:")
    for item in listing.items:
        claimed = f"  [with {item.claimed_by}]" if item.claimed_by else ""
        reason = item.reason or "no reason recorded"
        click.echo(f"- {item.external_id}  waiting {_age(item.waiting)}  {reason}{claimed}")
        click.echo(f"    text: {_one_line(item.text, 100)}")
        answers = "; ".join(f"{user}: {_one_line(answer, 60)}" for user, answer in item.crowd) or "none"
        click.echo(f"    crowd: {answers}")


COMMANDS = [export_cmd, queue_cmd]
