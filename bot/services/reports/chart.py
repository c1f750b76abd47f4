"""The report chart: one PNG of six panels, sized to be read in a Slack message (matplotlib, Agg backend).

Slack shows an image scaled to the width of the conversation (a few hundred pixels) until it is
opened, so the figure is near square (1000 × 1100 pixels) in two columns, with large type:

1. answers per day (stacked: answers, gold checks, quiz answers; skips and ambiguous flags on top);
2. progress: the items by status (open, complete, in the expert queue, settled by an expert) and the
   finish date at the current pace;
3. agreement per day (percent agreement of the items completed that day, a line; gaps where no item
   had two answers);
4. anchoring per day (answers matching a shown draft minus answers matching a hidden one; 0 means the
   drafts do not pull answers);
5. gold accuracy per annotator (quiz and hidden gold checks, by display name, the first 15);
6. the label distribution on blind vs drafted answers (grouped bars of shares, counts in the legend).
7. once the guidelines were revised: agreement per guideline version with 95% CIs (bars, the current
   version highlighted).

Input is the report's JSON (`Report.to_json()`), so the chart is a pure function of the data. An
empty panel says "no data yet" (and why, when the report knows) instead of drawing empty axes.

The figure is built with the object API (`Figure`, not pyplot), so there is no global state and
rendering is safe from the scheduler's and Bolt's worker threads at the same time.
"""

from __future__ import annotations

import io
import threading
from datetime import date
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["FIGSIZE", "report_chart", "report_figure"]

FIGSIZE, DPI = (10.0, 11.0), 100  # 1000 × 1100 pixels
TITLE, LABEL, TICK = 15, 12, 11

# matplotlib and numpy are loaded by the first chart (`_load`), not when the app starts.
np: Any = None
_FigureClass: Any = None
_load_lock = threading.Lock()


def _load() -> Any:
    global np, _FigureClass
    with _load_lock:
        if _FigureClass is None:
            import matplotlib

            matplotlib.use("Agg")  # before anything could import pyplot: no display, no GUI toolkit
            import numpy
            from matplotlib.figure import Figure

            np, _FigureClass = numpy, Figure
    return _FigureClass

_BLIND = "#8c8c8c"
_DRAFTED = "#2f6db3"
_BARS = "#4c9a7a"
_GOLD = "#d4a017"
_QUIZ = "#9b7fc7"
_OTHER = "#c8c8c8"
_LINE = "#c0504d"
_STATUS = (("open", "open", "#c8d6e5"), ("complete", "complete", _BARS),
           ("in_expert_queue", "expert queue", "#e08a3c"), ("resolved", "settled by expert", _DRAFTED))


def _safe(text: Any, limit: int = 40) -> str:
    """Data as literal text: no mathtext ($), no newlines, cut."""
    s = " ".join(str(text).split()).replace("$", r"\$")
    return s if len(s) <= limit else s[: limit - 1] + "…"


def _title(ax: Any, title: str) -> None:
    ax.set_title(title, fontsize=TITLE, fontweight="bold", loc="left")


def _no_data(ax: Any, title: str, why: str | None = None) -> None:
    _title(ax, title)
    ax.text(0.5, 0.55, "no data yet", ha="center", va="center", fontsize=TITLE, color="#666666",
            transform=ax.transAxes)  # fmt: skip
    if why:
        ax.text(0.5, 0.38, _safe(why, 48), ha="center", va="center", fontsize=LABEL, color="#888888",
                transform=ax.transAxes, wrap=True)  # fmt: skip
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_color("#dddddd")


def _day_labels(days: list[str]) -> list[str]:
    out = []
    for d in days:
        try:
            out.append(date.fromisoformat(d).strftime("%b %d"))
        except ValueError:
            out.append(_safe(d, 10))
    return out


def _tick_every(n: int) -> int:
    return max(1, int(np.ceil(n / 7)))


def _days_axis(ax: Any, days: list[str]) -> None:
    x = np.arange(len(days))
    step = _tick_every(len(days))
    ax.set_xticks(x[::step], _day_labels(days)[::step], rotation=30, ha="right", fontsize=TICK)
    ax.tick_params(axis="y", labelsize=TICK)
    ax.set_xlim(-0.5, len(days) - 0.5)


def _per_day(data: dict[str, Any]) -> list[dict[str, Any]]:
    """The activity per local day (the one vocabulary); older JSON without it: all rows as answers."""
    per_day = (data.get("activity") or {}).get("per_day")
    if per_day:
        return list(per_day)
    return [{"day": d.get("day"), "answers": int(d.get("labels") or 0)} for d in data.get("daily") or []]


def _answers(ax: Any, data: dict[str, Any]) -> None:
    title = "Answers per day"
    per_day = _per_day(data)
    series = [("answers", "answers", _BARS), ("gold_checks", "gold checks", _GOLD),
              ("quiz_answers", "quiz answers", _QUIZ), ("other", "skips and flags", _OTHER)]
    values = {key: np.array([int(d.get(key) or 0) for d in per_day], dtype=float) for key, _, _ in series[:3]}
    values["other"] = np.array([int(d.get("skips") or 0) + int(d.get("ambiguous") or 0) for d in per_day], dtype=float)
    if not per_day or sum(v.sum() for v in values.values()) == 0:
        _no_data(ax, title, "nobody answered in this window")
        return
    x = np.arange(len(per_day))
    bottom = np.zeros(len(per_day))
    for key, label, color in series:
        if values[key].sum():
            ax.bar(x, values[key], bottom=bottom, color=color, label=label)
            bottom += values[key]
    _days_axis(ax, [str(d["day"]) for d in per_day])
    _title(ax, title)
    ax.set_ylabel("per day", fontsize=LABEL)
    ax.legend(fontsize=TICK, loc="upper left", frameon=False)
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)


def _progress(ax: Any, data: dict[str, Any]) -> None:
    title = "Items"
    progress = data.get("progress") or {}
    items = progress.get("items") or {}
    total = int(items.get("total") or 0)
    if not total:
        _no_data(ax, title, "no items imported yet")
        return
    left = 0
    for key, label, color in _STATUS:
        n = int(items.get(key) or 0)
        if n:
            ax.barh([0], [n], left=left, color=color, label=f"{label} ({n:,})", height=0.6)
            left += n
    ax.set_xlim(0, total)
    ax.set_ylim(-0.9, 2.0)
    ax.set_yticks([])
    ax.tick_params(axis="x", labelsize=TICK)
    ax.set_xlabel(f"{total:,} items", fontsize=LABEL)
    ax.legend(fontsize=TICK, loc="upper left", ncol=2, frameon=False)
    finish = progress.get("finish")
    note = (f"done around {_day_labels([str(finish)])[0]} at the current pace" if finish
            else _safe(progress.get("reason") or "", 60))
    if note:
        ax.text(0.0, -0.6, note, fontsize=LABEL, color="#444444", va="center")
    _title(ax, title)


def _agreement(ax: Any, daily: list[dict[str, Any]]) -> None:
    title = "Agreement per day"
    values = [d.get("agreement") for d in daily]
    if not daily or all(v is None for v in values):
        _no_data(ax, title, "no item with two or more answers yet")
        return
    x = np.arange(len(daily))
    y = np.array([np.nan if v is None else 100.0 * v for v in values], dtype=float)
    ax.plot(x, y, marker="o", color=_LINE, linewidth=2.5, markersize=7)
    _days_axis(ax, [str(d["day"]) for d in daily])
    ax.set_ylim(0, 105)
    _title(ax, title)
    ax.set_ylabel("percent agreement (%)", fontsize=LABEL)
    ax.grid(alpha=0.3)


def _anchoring(ax: Any, daily: list[dict[str, Any]]) -> None:
    title = "Anchoring per day"
    values = [d.get("anchoring") for d in daily]
    if not daily or all(v is None for v in values):
        _no_data(ax, title, "needs answers with and without a draft")
        return
    x = np.arange(len(daily))
    y = np.array([np.nan if v is None else float(v) for v in values], dtype=float)
    ax.axhline(0, color="#888888", linewidth=1)
    ax.plot(x, y, marker="o", color=_DRAFTED, linewidth=2.5, markersize=7)
    _days_axis(ax, [str(d["day"]) for d in daily])
    top = max(0.3, float(np.nanmax(np.abs(y))) * 1.15)
    ax.set_ylim(-top, top)
    _title(ax, title)
    ax.set_ylabel("shown minus hidden match", fontsize=LABEL)
    ax.grid(alpha=0.3)


def _gold(ax: Any, data: dict[str, Any]) -> None:
    title = "Gold accuracy (% right)"
    gold = data.get("gold") or {}
    names = data.get("names") or {}
    quiz, hidden = gold.get("quiz") or {}, gold.get("hidden") or {}
    users = sorted({*quiz, *hidden}, key=lambda u: str(names.get(u, u)).casefold())
    if not users:
        _no_data(ax, title, (gold.get("reasons") or {}).get("all") or "no answers on gold items")
        return
    users = users[:15]
    y = np.arange(len(users))
    height = 0.38

    def share(table: dict[str, Any], user: str) -> float:
        value = (table.get(user) or {}).get("value")
        return np.nan if value is None else 100.0 * value

    ax.barh(y - height / 2, [share(quiz, u) for u in users], height, color=_QUIZ, label="quiz")
    ax.barh(y + height / 2, [share(hidden, u) for u in users], height, color=_GOLD, label="hidden gold checks")
    ax.set_yticks(y, [_safe(names.get(u, u), 18) for u in users], fontsize=TICK)
    ax.invert_yaxis()
    ax.set_xlim(0, 100)
    ax.tick_params(axis="x", labelsize=TICK)
    ax.legend(fontsize=TICK, loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=2, frameon=False)
    ax.grid(axis="x", alpha=0.3)
    ax.set_axisbelow(True)
    _title(ax, title)


def _distribution(ax: Any, dist: dict[str, Any]) -> None:
    title = "Labels: blind vs drafted"
    labels = list(dist.get("labels") or [])
    blind = np.array(dist.get("blind") or [], dtype=float)
    drafted = np.array(dist.get("drafted") or [], dtype=float)
    if not labels or (blind.sum() == 0 and drafted.sum() == 0):
        _no_data(ax, title, dist.get("reason") or "needs answers on blind and drafted items")
        return
    x = np.arange(len(labels))
    width = 0.4
    b_share = 100 * blind / blind.sum() if blind.sum() else np.zeros_like(blind)
    d_share = 100 * drafted / drafted.sum() if drafted.sum() else np.zeros_like(drafted)
    ax.bar(x - width / 2, b_share, width, color=_BLIND, label=f"blind (n={int(blind.sum()):,})")
    ax.bar(x + width / 2, d_share, width, color=_DRAFTED, label=f"drafted (n={int(drafted.sum()):,})")
    ax.set_xticks(x, [_safe(label, 16) for label in labels], rotation=30 if len(labels) > 3 else 0,
                  ha="right" if len(labels) > 3 else "center", fontsize=TICK)  # fmt: skip
    ax.tick_params(axis="y", labelsize=TICK)
    _title(ax, title)
    if dist.get("more"):
        ax.set_xlabel(f"top {len(labels)} labels; {dist['more']} more", fontsize=LABEL)
    ax.set_ylabel("share of answers (%)", fontsize=LABEL)
    ax.legend(fontsize=TICK, frameon=False)
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)


def _versions(ax: Any, entries: list[dict[str, Any]]) -> None:
    """Agreement per guideline version: alpha (or percent agreement) with its 95% CI, one bar each."""
    title = "Agreement by guideline version"
    use_alpha = any(e.get("krippendorff_alpha") is not None for e in entries)
    key, ci_key = ("krippendorff_alpha", "ci") if use_alpha else ("percent", "percent_ci")
    values = [e.get(key) for e in entries]
    if all(v is None for v in values):
        _no_data(ax, title, "no version has an item with two or more answers")
        return
    x = np.arange(len(entries))
    y = np.array([np.nan if v is None else float(v) for v in values])
    low = np.array([y[i] - e[ci_key][0] if e.get(ci_key) and e[ci_key][0] is not None else 0.0
                    for i, e in enumerate(entries)])
    high = np.array([e[ci_key][1] - y[i] if e.get(ci_key) and e[ci_key][1] is not None else 0.0
                     for i, e in enumerate(entries)])
    ax.bar(x, np.nan_to_num(y), color=[_DRAFTED if e.get("current") else _BLIND for e in entries])
    ax.errorbar(x, np.nan_to_num(y), yerr=np.vstack([np.nan_to_num(low), np.nan_to_num(high)]), fmt="none",
                ecolor="#333333", capsize=6)
    ax.set_xticks(x, [f"v{e.get('version')}\n{str(e.get('since') or '')[:10]}" for e in entries])
    ax.set_title(title, fontsize=12, fontweight="bold")
    ax.set_ylabel("Krippendorff's alpha (95% CI)" if use_alpha else "percent agreement (95% CI)")
    ax.set_ylim(min(0.0, float(np.nanmin(y - low)) - 0.05) if np.isfinite(y).any() else 0.0, 1.05)
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)
    change = next((e["change"] for e in reversed(entries) if e.get("change")), None)
    if change:
        ax.set_xlabel(_safe(change.get("verdict", "").replace("_", " "), 30))


def report_figure(data: dict[str, Any]) -> Figure:
    """The six-panel figure, plus agreement per guideline version once there is a revision (a
    standalone `Figure`: nothing to close)."""
    versions = list(data.get("agreement_by_guidelines") or [])
    rows = 4 if len(versions) >= 2 else 3
    fig = _load()(figsize=(FIGSIZE[0], FIGSIZE[1] * rows / 3), dpi=DPI)
    axes = fig.subplots(rows, 2).ravel()
    daily = list(data.get("daily") or [])
    _answers(axes[0], data)
    _progress(axes[1], data)
    _agreement(axes[2], daily)
    _anchoring(axes[3], daily)
    _gold(axes[4], data)
    _distribution(axes[5], data.get("distribution") or {})
    if rows == 4:
        _versions(axes[6], versions)
        axes[7].set_visible(False)
    name = _safe(data.get("name") or data.get("project") or "project", 50)
    since, until = str(data.get("since", ""))[:10], str(data.get("until", ""))[:10]
    fig.suptitle(f"{name}: {since} to {until}", fontsize=TITLE + 2, fontweight="bold")
    fig.tight_layout(rect=(0, 0, 1, 0.97), h_pad=2.0)
    return fig


def report_chart(data: dict[str, Any]) -> bytes:
    """PNG bytes of `report_figure(data)`."""
    buf = io.BytesIO()
    report_figure(data).savefig(buf, format="png")
    return buf.getvalue()
