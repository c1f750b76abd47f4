"""PURE texts for a lead-only command refused (`bot.services.access`): one wording for every command."""

from __future__ import annotations

from dataclasses import dataclass

from bot.blocks.text import mention, safe_mrkdwn
from bot.core.types import ChooseOne, Denied, LeadsNothing, NotALead, UnknownProject


@dataclass(frozen=True)
class LeadCommand:
    """How a lead-only command speaks about itself."""

    usage: str  # the usage line
    act_on: str  # "see the report of" / "export"
    can: str  # "see its report" / "export it"
    ask: str  # "{who} can share it with you." / "Ask {who} for the file."
    nothing: str  # "there is no report to show you" / "there is nothing you can export"
    example: str  # "/label-report {slug} 7" / "/label-export {slug}"


def with_usage(command: LeadCommand, problem: str | None = None) -> str:
    return f"{safe_mrkdwn(problem, 500)} {command.usage}" if problem else command.usage


def denied(command: LeadCommand, result: Denied) -> str:
    """The sentence (mrkdwn) for a refusal of `bot.services.access.project_for_lead`."""
    if isinstance(result, UnknownProject):
        names = ", ".join(f"`{safe_mrkdwn(s, 40)}`" for s in result.known[:20]) or "none yet"
        return with_usage(command, f"There is no project {result.slug!r} in this workspace (projects: {names}).")
    if isinstance(result, NotALead):
        name = safe_mrkdwn(result.name, 200)
        if not result.leads:
            return (f"Only project leads can {command.act_on} *{name}*, and it has none yet: someone running "
                    "labelbot can add one with `labelbot member SLUG USER --tier lead` (or `members.leads` in "
                    "the project YAML).")
        who = ", ".join(mention(u) for u in result.leads[:10])
        return f"Sorry, only the leads of *{name}* can {command.can}. " + command.ask.format(who=who)
    if isinstance(result, LeadsNothing):
        return f"You lead no project in this workspace, so {command.nothing}. {command.usage}"
    assert isinstance(result, ChooseOne)
    names = ", ".join(f"`{safe_mrkdwn(s, 40)}`" for s in result.slugs[:20])
    example = command.example.format(slug=safe_mrkdwn(result.slugs[0], 40))
    return f"You lead several projects; say which one, e.g. `{example}`. Yours: {names}."
