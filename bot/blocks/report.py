"""Block Kit (and plain text) for a quality report. PURE: the report's JSON dict in, blocks out.

Layout: header, progress first (items, answers today and this week, the finish date), then alerts,
headline readings (section fields: a plain sentence with its figure, `bot.blocks.readings`), the
details with the jargon (agreement / drafts / drift / LLM), a per-annotator table in a preformatted
block, then one line of what is not available and why. Counts use one vocabulary (answers, skips,
ambiguous flags, quiz answers, gold checks, expert decisions: `bot.core.activity`); people are shown by
display name when the report has one (`names`), the JSON keeps their member ids. Every piece of text
that comes from data (user ids, label names, reasons, the project name) is escaped; every text is
cut to Slack's limits; the table stops with "… and N more" when it would not fit, so the message
stays valid for any number of annotators or labels.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Any

from bot.blocks import readings
from bot.blocks.access import LeadCommand
from bot.blocks.guidelines import suggestion_line, version_lines
from bot.blocks.text import (
    ELLIPSIS,
    FIELD_TEXT_MAX,
    MESSAGE_BLOCKS_MAX,
    SECTION_TEXT_MAX,
    context_md,
    cut,
    escape_mrkdwn,
    fallback_text,
    header,
    safe_mrkdwn,
)
from bot.core.activity import Activity, plural

__all__ = ["fmt", "not_available", "pct", "progress_lines", "report_text", "summary_blocks", "summary_text"]

MAX_ALERT_LINES = 12
MAX_PAIR_LINES = 5
TABLE_MAX_ROWS = 25
_TABLE_BUDGET = SECTION_TEXT_MAX - 80  # room for the fences and the "and N more" line


# --- formatting -------------------------------------------------------------------------------------


def fmt(value: Any, digits: int = 2) -> str:
    """A number with `digits` decimals; missing as "n/a"."""
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return str(value)


def pct(value: Any, digits: int = 0) -> str:
    return "n/a" if value is None else f"{value * 100:.{digits}f}%"


def _signed(value: Any) -> str:
    return "n/a" if value is None else f"{value:+.2f}"


def _ci(detail: dict[str, Any] | None) -> str:
    if not detail or detail.get("ci_low") is None or detail.get("ci_high") is None:
        return ""
    return f" (95% CI {detail['ci_low']:.2f} to {detail['ci_high']:.2f})"


def _e(text: Any, limit: int = 200) -> str:
    """Untrusted text for mrkdwn: escaped, then cut (never through an escape)."""
    return safe_mrkdwn(str(text), limit)


def _window(data: dict[str, Any]) -> str:
    since, until = str(data.get("since", ""))[:16].replace("T", " "), str(data.get("until", ""))[:16].replace("T", " ")
    return f"{since} to {until} UTC"


def _day(value: Any, with_weekday: bool = True) -> str:
    """"Tue Dec 08" for an ISO date."""
    try:
        day = date.fromisoformat(str(value)[:10])
    except ValueError:
        return str(value)
    return day.strftime("%a %b %d" if with_weekday else "%b %d")


# --- people: display names in what leads read, member ids in the JSON -----------------------------------


def who(data: dict[str, Any], user: Any) -> str:
    """A person's display name when the report knows it (`names`), else their member id (raw text)."""
    uid = str(user)
    return str((data.get("names") or {}).get(uid) or uid)


def _named(data: dict[str, Any], text: Any) -> str:
    """A text with every member id the report can name replaced by the name (raw text)."""
    names = {str(k): str(v) for k, v in (data.get("names") or {}).items() if k and v}
    if not names:
        return str(text)
    ids = "|".join(re.escape(k) for k in sorted(names, key=len, reverse=True))
    return re.sub(rf"(?<![A-Za-z0-9])(?:{ids})(?![A-Za-z0-9])", lambda m: names[m.group(0)], str(text))


# --- what is not available, in one line -----------------------------------------------------------------

#: Plain names of the statistics that can be n/a; several keys with one name and reason say it once.
PLAIN_NAMES: dict[tuple[str, str], str] = {
    ("agreement", "percent"): "agreement",
    ("agreement", "krippendorff_alpha"): "Krippendorff's α",
    ("agreement", "fleiss_kappa"): "Fleiss' κ",
    ("agreement", "mean_cohen_kappa"): "Cohen's κ",
    ("agreement", "cohen_kappa"): "Cohen's κ",
    ("agreement", "span_f1"): "span agreement",
    ("agreement", "span_f1_overlap"): "span agreement",
    ("agreement", "rewrite_similarity"): "rewrite agreement",
    ("drafts", "accept_rate"): "how often drafts are accepted",
    ("drafts", "edit_rate"): "how often drafts are accepted",
    ("drafts", "reject_rate"): "how often drafts are accepted",
    ("drafts", "median_seconds_drafted"): "time per answer",
    ("drafts", "median_seconds_blind"): "time per answer",
    ("drafts", "speedup"): "time per answer",
    ("drafts", "cost_usd"): "cost",
    ("drift", "chi2"): "labels with and without drafts",
    ("drift", "p_value"): "labels with and without drafts",
    ("drift", "cramers_v"): "labels with and without drafts",
    ("drift", "js_distance"): "labels with and without drafts",
    ("drift", "anchoring"): "anchoring",
    ("drift", "anchoring_shown"): "anchoring",
    ("drift", "anchoring_blind"): "anchoring",
    ("drift", "anchoring_change"): "week-on-week anchoring",
    ("drift", "anchoring_previous"): "anchoring in the week before",
    ("llm", "accuracy_vs_gold"): "the model against gold",
    ("llm", "accuracy_vs_consensus"): "the model against people",
    ("llm", "accuracy_vs_blind_consensus"): "the model against blind answers",
    ("llm", "kappa_vs_humans"): "the model against people",
    ("llm", "kappa_vs_blind_humans"): "the model against blind answers",
    ("gold", "all"): "gold accuracy",
}
_SECTIONS = ("agreement", "gold", "drafts", "drift", "llm")


def _reason_words(why: str) -> str:
    why = str(why).strip()
    return why[4:].lstrip(": ").strip() if why.lower().startswith("n/a") else why


def not_available(data: dict[str, Any]) -> list[tuple[str, str]]:
    """(what, why) for every statistic that is n/a, in plain words: each (what, why) once, and the
    things sharing one reason joined ("Fleiss' κ, Krippendorff's α": "defined for classification ...")."""
    classification = data.get("task") == "classification"
    by_reason: dict[str, list[str]] = {}
    for section in _SECTIONS:
        for key, why in ((data.get(section) or {}).get("reasons") or {}).items():
            if classification and (section, key) == ("drafts", "edit_rate"):
                continue  # a classification answer is a label: there is nothing to edit
            what = PLAIN_NAMES.get((section, key), key.replace("_", " "))
            names = by_reason.setdefault(_reason_words(why), [])
            if what not in names:
                names.append(what)
    return [(", ".join(names), why) for why, names in by_reason.items()]


def _not_available_line(data: dict[str, Any], escape: bool) -> str | None:
    items = not_available(data)
    if not items:
        return None
    e = (lambda t, n: _e(t, n)) if escape else (lambda t, n: str(t))
    return "Not available: " + "; ".join(f"{e(what, 200)} ({e(why, 300)})" for what, why in items) + "."


# --- progress ---------------------------------------------------------------------------------------------


def _activity(counts: dict[str, Any] | None) -> Activity:
    return Activity.from_dict(counts)


def progress_lines(data: dict[str, Any]) -> list[str]:
    """Items, answers today and this week, and the finish date at the current pace (our words and numbers
    only: nothing here needs escaping)."""
    prog = data.get("progress") or {}
    items = prog.get("items") or {}
    if not prog:
        return []
    lines = []
    total = int(items.get("total") or 0)
    gold = f" (and {plural(int(items.get('gold') or 0), 'gold item')})" if items.get("gold") else ""
    if total:
        escalated = int(items.get("escalated") or 0)
        esc = (f", {plural(escalated, 'escalated', 'escalated')} ({int(items.get('in_expert_queue') or 0):,} in the "
               f"expert queue, {int(items.get('resolved') or 0):,} settled by an expert)") if escalated else ""
        lines.append(f"{plural(total, 'item')}{gold}: {int(items.get('open') or 0):,} open, "
                     f"{int(items.get('complete') or 0):,} complete{esc}")
    else:
        lines.append(f"No items yet{gold}.")
    today, week = prog.get("today") or {}, prog.get("this_week") or {}
    lines.append(f"Today ({_day(today.get('day'))}): {_activity(today).words()}")
    lines.append(f"This week (since {_day(week.get('since'))}): {_activity(week).words()}")
    needed = int(prog.get("answers_needed") or 0)
    if prog.get("finish"):
        lines.append(
            f"{plural(needed, 'answer')} still needed; at the current pace ({prog['pace_per_day']:,.0f} counting "
            f"answers a day {_over(prog.get('pace_days'))}) the items are done around "
            f"{_day(prog['finish'])} (in {plural(int(prog['days_left']), 'day')})"
        )
    elif needed:
        lines.append(f"{plural(needed, 'answer')} still needed; no finish date: {prog.get('reason') or 'no pace yet'}")
    elif total:
        in_queue = int(items.get("in_expert_queue") or 0)
        lines.append("Every item has its answers" + (f"; {in_queue:,} wait for an expert" if in_queue else ""))
    return lines


def _over(days: Any) -> str:
    if not days or days <= 1.05:
        return "over the last day"
    return f"over the last {round(days):d} days" if abs(days - round(days)) < 0.05 else f"over the last {days:.1f} days"


def _in_window(data: dict[str, Any]) -> str:
    activity = _activity((data.get("activity") or {}).get("window"))
    people = int(data.get("annotators") or 0)
    return (f"{activity.words()} on {plural(int(data.get('items') or 0), 'item')} "
            f"by {plural(people, 'person', 'people')}")


def _per_day_lines(data: dict[str, Any]) -> list[str]:
    out = []
    for day in (data.get("activity") or {}).get("per_day") or []:
        activity = _activity(day)
        if activity.total:
            out.append(f"{_day(day.get('day'))}: {activity.words()}")
    return out


# --- headline readings --------------------------------------------------------------------------------------


def _detail(section: dict[str, Any], key: str) -> dict[str, Any]:
    return (section.get("detail") or {}).get(key) or {}


def _gold_mean(data: dict[str, Any]) -> tuple[float | None, int]:
    values = [v for v in (data.get("gold_accuracy") or {}).values() if v is not None]
    return (sum(values) / len(values) if values else None), len(values)


def _agreement_reading(data: dict[str, Any]) -> tuple[str, str]:
    agree = data.get("agreement") or {}
    for key, symbol in (("krippendorff_alpha", "α"), ("fleiss_kappa", "κ")):
        if agree.get(key) is not None:
            d = _detail(agree, key)
            return "Agreement", readings.agreement(agree[key], d.get("ci_low"), d.get("ci_high"), symbol=symbol)
    for key, what in (("span_f1", "span F1"), ("rewrite_similarity", "similarity")):
        if key in agree:
            return "Agreement", readings.similarity(agree.get(key), what, _detail(agree, key).get("n"))
    return "Agreement", readings.percent_agreement(agree.get("percent"), _detail(agree, "percent").get("n"))


def headline(data: dict[str, Any]) -> list[tuple[str, str]]:
    """(title, plain reading with its figure) for each headline statistic (raw text: escape for mrkdwn)."""
    agree, drafts, drift, llm = (data.get(k) or {} for k in ("agreement", "drafts", "drift", "llm"))
    gold, people = _gold_mean(data)
    anchoring = _detail(drift, "anchoring")
    out = [
        ("In this window", _in_window(data)),
        _agreement_reading(data),
        ("Same answer", readings.percent_agreement(agree.get("percent"), _detail(agree, "percent").get("n"))),
        ("Gold accuracy", readings.gold_accuracy(gold, people)),
        ("Drafts", readings.accept_rate(drafts.get("accept_rate"), drafts.get("shown"))),
        ("Draft influence", readings.anchoring(drift.get("anchoring"), anchoring.get("ci_low"),
                                               anchoring.get("ci_high"))),
        ("Labels with and without drafts", readings.label_drift(drift.get("js_distance"), drift.get("p_value"))),
        ("The model", readings.model_accuracy(llm.get("accuracy_vs_gold"), _detail(llm, "accuracy_vs_gold").get("n"))),
        ("Speed", readings.speedup(drafts.get("speedup"), drafts.get("median_seconds_drafted"),
                                   drafts.get("median_seconds_blind"))),
    ]
    if "span_f1" in agree or "rewrite_similarity" in agree or agree.get("krippendorff_alpha") is None:
        out.pop(2)  # "Same answer" is already the agreement reading, or says nothing more
    return out


# --- blocks -----------------------------------------------------------------------------------------


def summary_text(data: dict[str, Any], *, title: str | None = None) -> str:
    """The notification text (message `text`): short and escaped."""
    n_alerts = len(data.get("alerts", []))
    head = title or f"Quality report: {data.get('name') or data.get('project')}"
    answers = _activity((data.get("activity") or {}).get("window")).answers
    return fallback_text(
        f"{head}: {plural(answers, 'answer')}, agreement {pct((data.get('agreement') or {}).get('percent'))}, "
        f"{plural(n_alerts, 'alert')}"
    )


def summary_blocks(data: dict[str, Any], *, title: str | None = None, max_rows: int = TABLE_MAX_ROWS) -> list[dict]:
    """Block Kit for a report's JSON (`Report.to_json()`); at most 50 blocks, texts within limits.

    Progress first, then alerts, the headline readings (plain words with their figures), the details
    (the jargon), the people table and one line of what is not available."""
    name = data.get("name") or data.get("project") or "project"
    blocks: list[dict[str, Any]] = [header(title or f"Quality report: {name}")]
    blocks.append(
        context_md(
            f"*{_e(data.get('project', ''), 60)}* · {_e(data.get('task', ''), 20)} · {_window(data)}"
            f" · days counted in {_e(data.get('timezone', 'UTC'), 60)}"
        )
    )
    progress = progress_lines(data)
    if progress:
        blocks.append(_section(":bar_chart: *Progress*", progress))

    alerts = data.get("alerts", [])
    if alerts:
        lines = [f"• {_e(_named(data, a.get('text', '')), 600)}" for a in alerts[:MAX_ALERT_LINES]]
        title_line = f":rotating_light: *{plural(len(alerts), 'alert')}*"
        blocks.append(_section(title_line, lines, total=len(alerts)))
    else:
        blocks.append(_section(":white_check_mark: *No alerts*", []))
    blocks.append({"type": "divider"})

    fields = [f"*{what}*\n{_e(reading, FIELD_TEXT_MAX - 100)}" for what, reading in headline(data)]
    blocks.append({"type": "section", "fields": [{"type": "mrkdwn", "text": cut(f, FIELD_TEXT_MAX)}
                                                 for f in fields[:10]]})
    cap = (data.get("accuracy_cap") or {}).get("sentence")
    if cap:
        blocks.append(context_md(_e(cap, 500)))

    agree, drafts, drift, llm = (data.get(k) or {} for k in ("agreement", "drafts", "drift", "llm"))
    blocks.append(_section("*Agreement* (details)", _agreement_lines(data, agree)))
    blocks.append(_section("*Drafts* (details)", _draft_lines(drafts, data.get("task"))))
    blocks.append(_section("*Drift and anchoring* (details)", _drift_lines(drift)))
    blocks.append(_section("*LLM as an annotator* (details)", _llm_lines(llm, data.get("task"))))
    versions = _version_lines(data, escape=True)
    if versions:
        blocks.append(_section("*Agreement by guideline version*", versions))

    people = _people_lines(data)
    if people:
        blocks.append(_section("*People and drafting*", people))

    blocks.append(_table_block(data, data.get("per_annotator", []), max_rows))

    missing = _not_available_line(data, escape=True)
    if missing:
        blocks.append(context_md(cut(f"_{missing}_", SECTION_TEXT_MAX)))
    return blocks[:MESSAGE_BLOCKS_MAX]


def _section(title: str, lines: list[str], total: int | None = None) -> dict[str, Any]:
    """A mrkdwn section of already-escaped lines, cut at a line boundary within 3000 characters;
    `total` is how many lines there are in all (when `lines` is already a prefix), for "… and N more"."""
    total = len(lines) if total is None else total
    text, shown = title, 0
    for line in lines:
        if len(text) + 1 + len(line) + 30 > SECTION_TEXT_MAX:  # 30: room for the "and N more" line
            break
        text += "\n" + line
        shown += 1
    if shown < total:
        text += f"\n{ELLIPSIS} and {total - shown} more"
    return {"type": "section", "text": {"type": "mrkdwn", "text": cut(text, SECTION_TEXT_MAX)}}


def _agreement_lines(data: dict[str, Any], agree: dict[str, Any]) -> list[str]:
    detail = agree.get("detail", {})
    lines = [
        f"Percent agreement {pct(agree.get('percent'))}"
        + (f" over {detail['percent']['n']:,} items" if detail.get("percent", {}).get("n") else ""),
        f"Krippendorff's α {fmt(agree.get('krippendorff_alpha'))}{_ci(detail.get('krippendorff_alpha'))}, "
        f"Fleiss' κ {fmt(agree.get('fleiss_kappa'))}, mean Cohen's κ {fmt(agree.get('mean_cohen_kappa'))}",
    ]
    for key, label in (("span_f1", "span F1 (exact)"), ("span_f1_overlap", "span F1 (overlap)"),
                       ("rewrite_similarity", "rewrite similarity")):  # fmt: skip
        if key in agree:
            lines.append(f"Pairwise {label} {fmt(agree.get(key))}")
    pairs = [p for p in agree.get("cohen_kappa", []) if p.get("kappa") is not None]
    if pairs:
        low = sorted(pairs, key=lambda p: p["kappa"])[:MAX_PAIR_LINES]
        lines.append(
            "Lowest Cohen's κ: "
            + ", ".join(f"{_e(who(data, p['a']), 40)}–{_e(who(data, p['b']), 40)} {p['kappa']:.2f} (n={p.get('n')})"
                        for p in low)
        )
    per_label = {k: v for k, v in (agree.get("per_label_alpha") or {}).items() if v is not None}
    if per_label:
        worst = sorted(per_label.items(), key=lambda kv: kv[1])[:5]
        lines.append("Hardest labels (α): " + ", ".join(f"{_e(k, 48)} {v:.2f}" for k, v in worst))
    confusions = agree.get("confusions") or []
    if confusions:
        lines.append(
            "Most confused: "
            + ", ".join(f"{_e(c['first'], 48)} / {_e(c['second'], 48)} ({c['count']})" for c in confusions[:3])
        )
    return lines


def _draft_lines(drafts: dict[str, Any], task: Any = None) -> list[str]:
    # A classification answer is a label: choosing another one rejects the draft, there is no "edited".
    edited = "" if task == "classification" else f"edited {pct(drafts.get('edit_rate'))}, "
    lines = [
        f"Shown on {plural(int(drafts.get('shown') or 0), 'answer')}, "
        f"{plural(int(drafts.get('blind') or 0), 'blind control')}, "
        f"{fmt(drafts.get('without_draft', 0))} without a draft",
        f"Accepted {pct(drafts.get('accept_rate'))}, {edited}rejected {pct(drafts.get('reject_rate'))}",
        f"Median seconds: {fmt(drafts.get('median_seconds_drafted'), 1)} with a draft, "
        f"{fmt(drafts.get('median_seconds_blind'), 1)} without (speed-up "
        + (f"×{drafts['speedup']:.2f})" if drafts.get("speedup") is not None else "n/a)"),
    ]
    cost = drafts.get("cost_usd")
    lines.append(
        f"{fmt(drafts.get('drafts_made', 0))} drafts made, {fmt(drafts.get('tokens'))} tokens, cost {_money(cost)}"
        + (" (simulated drafter (demo), not a real model)" if drafts.get("simulated") else "")
    )
    return lines


def _money(value: Any) -> str:
    if value is None:
        return "n/a"
    return f"${value:,.2f}" if value >= 1 else f"${value:.4f}"


def _drift_lines(drift: dict[str, Any]) -> list[str]:
    detail = drift.get("detail", {})
    p = drift.get("p_value")
    p_text = format(p, ".2g") if p is not None else "n/a"
    return [
        f"Blind vs drafted labels: χ² {fmt(drift.get('chi2'))}, p {p_text}, "
        f"Cramér's V {fmt(drift.get('cramers_v'))}, JS distance {fmt(drift.get('js_distance'))}",
        f"Anchoring {_signed(drift.get('anchoring'))}{_ci(detail.get('anchoring'))}: answers match the draft "
        f"{pct(drift.get('anchoring_shown'))} when shown vs {pct(drift.get('anchoring_blind'))} when hidden",
        f"Week on week: {_signed(drift.get('anchoring_change'))} "
        f"(anchoring in the 7 days before: {_signed(drift.get('anchoring_previous'))})",
    ]


def _llm_lines(llm: dict[str, Any], task: str | None = None) -> list[str]:
    detail = llm.get("detail", {})
    return [
        f"Accuracy vs gold {pct(llm.get('accuracy_vs_gold'))}{_n(detail.get('accuracy_vs_gold'))}, "
        f"vs consensus {pct(llm.get('accuracy_vs_consensus'))}{_n(detail.get('accuracy_vs_consensus'))}, "
        f"vs blind consensus {pct(llm.get('accuracy_vs_blind_consensus'))}"
        f"{_n(detail.get('accuracy_vs_blind_consensus'))}",
        f"Cohen's κ vs humans {fmt(llm.get('kappa_vs_humans'))}{_ci(detail.get('kappa_vs_humans'))}",
        *_model_lines(llm.get("by_model") or {}, task),
    ]


def _model_lines(by_model: dict[str, Any], task: str | None = None, limit: int = 5) -> list[str]:
    """One line per model that drafted in the window (the LLM, your own models), most-shown first
    (no "edited" for classification: choosing another label rejects the draft)."""
    ranked = sorted(by_model.items(), key=lambda kv: (-int(kv[1].get("shown") or 0), kv[0]))
    lines = []
    for name, m in ranked[:limit]:
        d = m.get("detail", {})
        lines.append(
            f"Model {_e(name, 80)}: shown {int(m.get('shown') or 0):,} times, accepted {pct(m.get('accept_rate'))}, "
            + ("" if task == "classification" else f"edited {pct(m.get('edit_rate'))}, ")
            + f"rejected {pct(m.get('reject_rate'))}; "
            f"vs gold {pct(m.get('accuracy_vs_gold'))}{_n(d.get('accuracy_vs_gold'))}, "
            f"vs blind consensus {pct(m.get('accuracy_vs_blind_consensus'))}"
            f"{_n(d.get('accuracy_vs_blind_consensus'))}"
        )
    if len(ranked) > limit:
        lines.append(f"... and {len(ranked) - limit} more model(s) in the JSON report")
    return lines


def _version_lines(data: dict[str, Any], *, escape: bool) -> list[str]:
    """`agreement_by_guidelines` and the guideline suggestions (`bot.blocks.guidelines`)."""
    lines = version_lines(data.get("agreement_by_guidelines") or [], escape=escape)
    made = suggestion_line(data.get("guideline_suggestions"))
    if made:
        lines.append(_e(made, 600) if escape else made)
    return lines


def _n(detail: dict[str, Any] | None) -> str:
    return f" (n={detail['n']:,})" if detail and detail.get("n") else ""


def _people_lines(data: dict[str, Any]) -> list[str]:
    lines = []
    for s in data.get("suspensions", []):
        lines.append(f"Suspended: {_e(who(data, s.get('user')), 80)} ({_e(_named(data, s.get('reason')), 200)})")
    health = data.get("drafting_health", {}) or {}
    if health.get("paused"):
        until = f" until {str(health['paused_until'])[:16].replace('T', ' ')} UTC" if health.get("paused_until") else ""
        last = f" (last error: {_e(health['last_error'], 200)})" if health.get("last_error") else ""
        lines.append(f"Drafting is paused{until}{last}")
    if health.get("draft_errors"):
        lines.append(f"{fmt(health['draft_errors'])} of {fmt(health.get('drafts', 0))} drafts failed in the window")
    return lines


_COLUMNS = (("person", 16), ("answers", 7), ("skips", 5), ("flags", 5), ("sec", 5), ("accept", 6), ("quiz", 5),
            ("gold", 5), ("anchor", 6))  # fmt: skip


def _person_rows(data: dict[str, Any], rows: list[dict[str, Any]]) -> list[tuple[dict[str, Any], Activity]]:
    """The per-annotator rows with each person's counts in the one vocabulary, most answers first."""
    counts = (data.get("activity") or {}).get("per_annotator") or {}
    out = [(r, _activity(counts.get(str(r.get("user"))))) for r in rows]
    if counts:
        out.sort(key=lambda ra: -(ra[1].answers + ra[1].expert_decisions))
    return out


def _table_rows(data: dict[str, Any], rows: list[dict[str, Any]]) -> list[str]:
    def cell(text: str, width: int) -> str:
        text = text.replace("`", "'").replace("\n", " ")
        return cut(text, width).ljust(width)

    out = []
    for r, activity in _person_rows(data, rows):
        answers = activity.answers + activity.expert_decisions if activity.total else r.get("labels", 0)
        values = [
            who(data, r.get("user", "")),
            fmt(answers),
            fmt(activity.skips if activity.total else r.get("skipped", 0)),
            fmt(activity.ambiguous if activity.total else r.get("ambiguous", 0)),
            fmt(r.get("median_seconds"), 1),
            pct(r.get("accept_rate")),
            pct(r.get("gold_quiz")),
            pct(r.get("gold_hidden")),
            _signed(r.get("anchoring")),
        ]
        out.append(" ".join(cell(v, w) for v, (_, w) in zip(values, _COLUMNS, strict=True)).rstrip())
    return out


def _table_block(data: dict[str, Any], rows: list[dict[str, Any]], max_rows: int) -> dict[str, Any]:
    if not rows:
        return _section("*Per annotator*", ["Nobody answered in this window."])
    head = " ".join(name.ljust(w) for name, w in _COLUMNS).rstrip()
    body = [escape_mrkdwn(line) for line in _table_rows(data, rows)[:max_rows]]
    kept: list[str] = []
    size = len(head)
    for line in body:
        if size + 1 + len(line) > _TABLE_BUDGET:
            break
        kept.append(line)
        size += 1 + len(line)
    more = len(rows) - len(kept)
    text = ("*Per annotator* (most answers first; quiz and gold: share right on the quiz and on hidden gold "
            "checks)\n```\n" + "\n".join([head, *kept]) + "\n```")
    if more:
        text += f"\n{ELLIPSIS} and {more} more"
    return {"type": "section", "text": {"type": "mrkdwn", "text": cut(text, SECTION_TEXT_MAX)}}


# --- plain text for the CLI ---------------------------------------------------------------------------


def report_text(data: dict[str, Any]) -> str:
    """The whole report as plain text (no mrkdwn, nothing cut)."""
    out: list[str] = []
    name = data.get("name") or data.get("project")
    out.append(f"Quality report: {name} ({data.get('project')}, {data.get('task')})")
    out.append(f"Window: {_window(data)}; days in {data.get('timezone')}")
    out.append("")
    progress = progress_lines(data)
    if progress:
        out.append("PROGRESS")
        out += [f"  {line}" for line in progress]
        out.append("")
    alerts = data.get("alerts", [])
    out.append(f"ALERTS ({len(alerts)})" if alerts else "ALERTS: none")
    out += [f"  ! {_named(data, a.get('text'))}" for a in alerts]
    out.append("")
    out.append("IN SHORT")
    width = max(len(what) for what, _ in headline(data))
    out += [f"  {what.ljust(width)}  {reading}" for what, reading in headline(data)]
    cap = (data.get("accuracy_cap") or {}).get("sentence")
    if cap:
        out.append(f"  {cap}")
    per_day = _per_day_lines(data)
    if per_day:
        out.append("")
        out.append("Per day")
        out += [f"  {line}" for line in per_day]
    agree = data.get("agreement", {})
    out.append("")
    out.append("Agreement (details)")
    out += [f"  {line}" for line in _plain(_agreement_lines(data, agree))]
    for p in agree.get("cohen_kappa", []):
        kappa = f"{p['kappa']:.3f}" if p.get("kappa") is not None else p.get("reason")
        ci = f" [{p['ci'][0]:.2f}, {p['ci'][1]:.2f}]" if p.get("ci") else ""
        out.append(f"    κ {who(data, p['a'])} – {who(data, p['b'])}: {kappa}{ci} (n={p.get('n')})")
    out.append("")
    out.append("Gold accuracy per annotator (quiz | hidden gold checks)")
    gold = data.get("gold", {})
    users = sorted({*gold.get("quiz", {}), *gold.get("hidden", {})}, key=lambda u: who(data, u).casefold())
    for u in users:
        q, h = gold.get("quiz", {}).get(u), gold.get("hidden", {}).get(u)
        out.append(
            f"  {who(data, u)}: quiz {pct(q and q.get('value'))} (n={q['n'] if q else 0}) | "
            f"hidden {pct(h and h.get('value'))} (n={h['n'] if h else 0})"
        )
    if not users:
        out.append("  nobody answered a gold item in this window")
    out.append("")
    out.append("Drafts (details)")
    out += [f"  {line}" for line in _plain(_draft_lines(data.get("drafts", {}), data.get("task")))]
    out.append("Drift and anchoring (details)")
    out += [f"  {line}" for line in _plain(_drift_lines(data.get("drift", {})))]
    out.append("LLM as an annotator (details)")
    out += [f"  {line}" for line in _plain(_llm_lines(data.get("llm", {}), data.get("task")))]
    versions = _version_lines(data, escape=False)
    if versions:
        out.append("Agreement by guideline version (each version over its whole life)")
        out += [f"  {line}" for line in versions]
    people = _plain(_people_lines(data))
    if people:
        out.append("People and drafting")
        out += [f"  {line}" for line in people]
    rows = data.get("per_annotator", [])
    out.append("")
    out.append("Per annotator (most answers first; quiz and gold: share right on the quiz and on hidden gold checks)")
    out.append("  " + " ".join(name.ljust(w) for name, w in _COLUMNS).rstrip())
    out += [f"  {line}" for line in _table_rows(data, rows)] or ["  (nobody answered)"]
    missing = _not_available_line(data, escape=False)
    if missing:
        out.append("")
        out.append(missing)
    return "\n".join(out) + "\n"


def _plain(lines: list[str]) -> list[str]:
    """Undo the mrkdwn escaping for terminal output."""
    return [line.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&") for line in lines]


# --- an alert as it happens ---------------------------------------------------------------------------


def alert_message(project_name: str, slug: str, text: str, names: dict[str, str] | None = None
                  ) -> tuple[str, list[dict[str, Any]]]:
    """One alert posted to the report channel when it trips (people by display name when known)."""
    shown = _named({"names": names or {}}, text)
    line = f":rotating_light: *{_e(project_name, 200)}*: {_e(shown, 2500)}"
    return fallback_text(f"Alert in {project_name}: {shown}", 300), [
        {"type": "section", "block_id": "alert.text", "text": {"type": "mrkdwn", "text": cut(line, SECTION_TEXT_MAX)}},
        context_md(f"Posted as it happened; the daily summary lists it too. `/label-report {_e(slug, 40)}` "
                   "shows the whole report."),
    ]


# --- slash command texts ---------------------------------------------------------------------------------

USAGE = (
    "Usage: `/label-report [project] [days]`, e.g. `/label-report intents 14` (default: the project you lead, "
    "the last 7 days). Only project leads can see reports; the chart arrives in your DM."
)


REPORT = LeadCommand(
    usage=USAGE, act_on="see the report of", can="see its report", ask="{who} can share it with you.",
    nothing="there is no report to show you", example="/label-report {slug} 7",
)


def working(project_name: str, days: int) -> str:
    return (
        f":hourglass_flowing_sand: Building the report of *{safe_mrkdwn(project_name, 200)}* for the last "
        f"{days} day{'s' if days != 1 else ''}…"
    )


def chart_failed(project_name: str, error: str) -> str:
    return (
        f"The chart of *{safe_mrkdwn(project_name, 200)}* could not be sent to your DM "
        f"({safe_mrkdwn(error, 200)}); the numbers above are complete."
    )


def failed(project_name: str) -> str:
    return (
        f":warning: The report of *{safe_mrkdwn(project_name, 200)}* failed on our side. Please try again, "
        "or run `labelbot report SLUG` on the server."
    )
