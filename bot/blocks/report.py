"""Block Kit (and plain text) for a quality report. PURE: the report's JSON dict in, blocks out.

Layout: header, alerts first, headline numbers (section fields), agreement / drafts / drift / LLM
lines, a per-annotator table in a preformatted block, then what is n/a and why. Every piece of text
that comes from data (user ids, label names, reasons, the project name) is escaped; every text is
cut to Slack's limits; the table stops with "… and N more" when it would not fit, so the message
stays valid for any number of annotators or labels.
"""

from __future__ import annotations

from typing import Any

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

__all__ = ["fmt", "pct", "report_text", "summary_blocks", "summary_text"]

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


def _reasons(data: dict[str, Any]) -> list[tuple[str, str]]:
    """(what, why) for every n/a statistic in the headline sections."""
    out: list[tuple[str, str]] = []
    names = {
        "agreement": "agreement",
        "drafts": "drafts",
        "drift": "drift",
        "llm": "LLM",
        "gold": "gold",
        "drafting_health": "drafting",
    }
    for section, label in names.items():
        for key, why in (data.get(section, {}) or {}).get("reasons", {}).items():
            out.append((f"{label} {key.replace('_', ' ')}", str(why)))
    return out


# --- blocks -----------------------------------------------------------------------------------------


def summary_text(data: dict[str, Any], *, title: str | None = None) -> str:
    """The notification text (message `text`): short and escaped."""
    agree = data.get("agreement", {}).get("percent")
    n_alerts = len(data.get("alerts", []))
    head = title or f"Quality report: {data.get('name') or data.get('project')}"
    return fallback_text(
        f"{head}: {data.get('labels', 0)} labels, agreement {pct(agree)}, "
        f"{n_alerts} alert{'s' if n_alerts != 1 else ''}"
    )


def summary_blocks(data: dict[str, Any], *, title: str | None = None, max_rows: int = TABLE_MAX_ROWS) -> list[dict]:
    """Block Kit for a report's JSON (`Report.to_json()`); at most 50 blocks, texts within limits."""
    name = data.get("name") or data.get("project") or "project"
    blocks: list[dict[str, Any]] = [header(title or f"Quality report: {name}")]
    blocks.append(
        context_md(
            f"*{_e(data.get('project', ''), 60)}* · {data.get('task', '')} · {_window(data)}"
            f" · days counted in {_e(data.get('timezone', 'UTC'), 60)}"
        )
    )

    # Alerts first.
    alerts = data.get("alerts", [])
    if alerts:
        lines = [f"• {_e(a.get('text', ''), 600)}" for a in alerts[:MAX_ALERT_LINES]]
        title = f":rotating_light: *{len(alerts)} alert{'s' if len(alerts) != 1 else ''}*"
        blocks.append(_section(title, lines, total=len(alerts)))
    else:
        blocks.append(_section(":white_check_mark: *No alerts*", []))
    blocks.append({"type": "divider"})

    # Headline numbers.
    agree, drafts, drift, llm = (data.get(k, {}) or {} for k in ("agreement", "drafts", "drift", "llm"))
    gold_all = data.get("gold_accuracy", {}) or {}
    gold_values = [v for v in gold_all.values() if v is not None]
    gold_mean = sum(gold_values) / len(gold_values) if gold_values else None
    fields = [
        f"*Labels*\n{fmt(data.get('labels', 0))} on {fmt(data.get('items', 0))} items",
        f"*Annotators*\n{fmt(data.get('annotators', 0))}",
        f"*Percent agreement*\n{pct(agree.get('percent'))}",
        f"*Krippendorff's α*\n{fmt(agree.get('krippendorff_alpha'))}",
        f"*Fleiss' κ*\n{fmt(agree.get('fleiss_kappa'))}",
        f"*Gold accuracy (mean of annotators)*\n{pct(gold_mean)}",
        f"*Drafts accepted*\n{pct(drafts.get('accept_rate'))} of {fmt(drafts.get('shown', 0))} shown",
        f"*Anchoring*\n{_signed(drift.get('anchoring'))}",
        f"*Label drift (JS distance)*\n{fmt(drift.get('js_distance'))}",
        f"*LLM vs gold*\n{pct(llm.get('accuracy_vs_gold'))}",
    ]
    blocks.append({"type": "section", "fields": [{"type": "mrkdwn", "text": cut(f, FIELD_TEXT_MAX)} for f in fields]})
    cap = (data.get("accuracy_cap") or {}).get("sentence")
    if cap:
        blocks.append(context_md(_e(cap, 500)))

    blocks.append(_section("*Agreement*", _agreement_lines(agree)))
    blocks.append(_section("*Drafts*", _draft_lines(drafts)))
    blocks.append(_section("*Drift and anchoring*", _drift_lines(drift)))
    blocks.append(_section("*LLM as an annotator*", _llm_lines(llm)))
    versions = _version_lines(data, escape=True)
    if versions:
        blocks.append(_section("*Agreement by guideline version*", versions))

    people = _people_lines(data)
    if people:
        blocks.append(_section("*People and drafting*", people))

    blocks.append(_table_block(data.get("per_annotator", []), max_rows))

    reasons = _reasons(data)
    if reasons:
        text = "; ".join(f"{_e(what, 80)}: {_e(why, 300)}" for what, why in reasons)
        blocks.append(context_md(cut(f"_Not available_ — {text}", SECTION_TEXT_MAX)))
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


def _agreement_lines(agree: dict[str, Any]) -> list[str]:
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
            + ", ".join(f"{_e(p['a'], 40)}–{_e(p['b'], 40)} {p['kappa']:.2f} (n={p.get('n')})" for p in low)
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


def _draft_lines(drafts: dict[str, Any]) -> list[str]:
    lines = [
        f"Shown on {fmt(drafts.get('shown', 0))} answers, {fmt(drafts.get('blind', 0))} blind controls, "
        f"{fmt(drafts.get('without_draft', 0))} without a draft",
        f"Accepted {pct(drafts.get('accept_rate'))}, edited {pct(drafts.get('edit_rate'))}, "
        f"rejected {pct(drafts.get('reject_rate'))}",
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


def _llm_lines(llm: dict[str, Any]) -> list[str]:
    detail = llm.get("detail", {})
    return [
        f"Accuracy vs gold {pct(llm.get('accuracy_vs_gold'))}{_n(detail.get('accuracy_vs_gold'))}, "
        f"vs consensus {pct(llm.get('accuracy_vs_consensus'))}{_n(detail.get('accuracy_vs_consensus'))}, "
        f"vs blind consensus {pct(llm.get('accuracy_vs_blind_consensus'))}"
        f"{_n(detail.get('accuracy_vs_blind_consensus'))}",
        f"Cohen's κ vs humans {fmt(llm.get('kappa_vs_humans'))}{_ci(detail.get('kappa_vs_humans'))}",
        *_model_lines(llm.get("by_model") or {}),
    ]


def _model_lines(by_model: dict[str, Any], limit: int = 5) -> list[str]:
    """One line per model that drafted in the window (the LLM, your own models), most-shown first."""
    ranked = sorted(by_model.items(), key=lambda kv: (-int(kv[1].get("shown") or 0), kv[0]))
    lines = []
    for name, m in ranked[:limit]:
        d = m.get("detail", {})
        lines.append(
            f"Model {_e(name, 80)}: shown {int(m.get('shown') or 0):,} times, accepted {pct(m.get('accept_rate'))}, "
            f"edited {pct(m.get('edit_rate'))}, rejected {pct(m.get('reject_rate'))}; "
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
        lines.append(f"Suspended: {_e(s.get('user'), 40)} ({_e(s.get('reason'), 200)})")
    health = data.get("drafting_health", {}) or {}
    if health.get("paused"):
        until = f" until {str(health['paused_until'])[:16].replace('T', ' ')} UTC" if health.get("paused_until") else ""
        last = f" (last error: {_e(health['last_error'], 200)})" if health.get("last_error") else ""
        lines.append(f"Drafting is paused{until}{last}")
    if health.get("draft_errors"):
        lines.append(f"{fmt(health['draft_errors'])} of {fmt(health.get('drafts', 0))} drafts failed in the window")
    return lines


_COLUMNS = (("user", 14), ("labels", 7), ("skip", 5), ("sec", 6), ("accept", 7), ("quiz", 6), ("hidden", 7),
            ("anchor", 7))  # fmt: skip


def _table_rows(rows: list[dict[str, Any]]) -> list[str]:
    def cell(text: str, width: int) -> str:
        text = text.replace("`", "'").replace("\n", " ")
        return cut(text, width).ljust(width)

    out = []
    for r in rows:
        values = [
            str(r.get("user", "")),
            fmt(r.get("labels", 0)),
            fmt(r.get("skipped", 0)),
            fmt(r.get("median_seconds"), 1),
            pct(r.get("accept_rate")),
            pct(r.get("gold_quiz")),
            pct(r.get("gold_hidden")),
            _signed(r.get("anchoring")),
        ]
        out.append(" ".join(cell(v, w) for v, (_, w) in zip(values, _COLUMNS, strict=True)).rstrip())
    return out


def _table_block(rows: list[dict[str, Any]], max_rows: int) -> dict[str, Any]:
    if not rows:
        return _section("*Per annotator*", ["No labels in this window."])
    head = " ".join(name.ljust(w) for name, w in _COLUMNS).rstrip()
    body = [escape_mrkdwn(line) for line in _table_rows(rows[:max_rows])]
    kept: list[str] = []
    size = len(head)
    for line in body:
        if size + 1 + len(line) > _TABLE_BUDGET:
            break
        kept.append(line)
        size += 1 + len(line)
    more = len(rows) - len(kept)
    text = "*Per annotator* (most labels first)\n```\n" + "\n".join([head, *kept]) + "\n```"
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
    alerts = data.get("alerts", [])
    out.append(f"ALERTS ({len(alerts)})" if alerts else "ALERTS: none")
    out += [f"  ! {a.get('text')}" for a in alerts]
    out.append("")
    out.append(
        f"Labels {data.get('labels', 0):,} ({data.get('answered', 0):,} answers) on {data.get('items', 0):,} items "
        f"by {data.get('annotators', 0)} annotators"
    )
    per_day = data.get("throughput", {}).get("per_day", [])
    if per_day:
        out.append("Per day: " + ", ".join(f"{d['day']} {d['labels']}" for d in per_day))
    cap = (data.get("accuracy_cap") or {}).get("sentence")
    if cap:
        out.append(cap)
    agree = data.get("agreement", {})
    out.append("")
    out.append("Agreement")
    out += [f"  {line}" for line in _plain(_agreement_lines(agree))]
    for p in agree.get("cohen_kappa", []):
        kappa = f"{p['kappa']:.3f}" if p.get("kappa") is not None else p.get("reason")
        ci = f" [{p['ci'][0]:.2f}, {p['ci'][1]:.2f}]" if p.get("ci") else ""
        out.append(f"    κ {p['a']} – {p['b']}: {kappa}{ci} (n={p.get('n')})")
    out.append("")
    out.append("Gold accuracy per annotator (quiz | hidden checks)")
    gold = data.get("gold", {})
    users = sorted({*gold.get("quiz", {}), *gold.get("hidden", {})})
    for u in users:
        q, h = gold.get("quiz", {}).get(u), gold.get("hidden", {}).get(u)
        out.append(
            f"  {u}: quiz {pct(q and q.get('value'))} (n={q['n'] if q else 0}) | "
            f"hidden {pct(h and h.get('value'))} (n={h['n'] if h else 0})"
        )
    if not users:
        out.append("  n/a: no answers on gold items in this window")
    out.append("")
    out.append("Drafts")
    out += [f"  {line}" for line in _plain(_draft_lines(data.get("drafts", {})))]
    out.append("Drift and anchoring")
    out += [f"  {line}" for line in _plain(_drift_lines(data.get("drift", {})))]
    out.append("LLM as an annotator")
    out += [f"  {line}" for line in _plain(_llm_lines(data.get("llm", {})))]
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
    out.append("Per annotator")
    out.append("  " + " ".join(name.ljust(w) for name, w in _COLUMNS).rstrip())
    out += [f"  {line}" for line in _table_rows(rows)] or ["  (no labels)"]
    reasons = _reasons(data)
    if reasons:
        out.append("")
        out.append("Not available")
        out += [f"  {what}: {why}" for what, why in reasons]
    return "\n".join(out) + "\n"


def _plain(lines: list[str]) -> list[str]:
    """Undo the mrkdwn escaping for terminal output."""
    return [line.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&") for line in lines]


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
