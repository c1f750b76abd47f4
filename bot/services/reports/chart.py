"""The report chart: one PNG with three panels (matplotlib, Agg backend, no display needed).

1. labels per day (bars);
2. agreement per day (percent agreement of the items completed that day, a line; gaps where no item
   had two answers);
3. the label distribution on blind vs drafted answers (grouped bars of shares, counts in the legend);
4. once the guidelines were revised: agreement per guideline version with 95% CIs (bars, the current
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

__all__ = ["report_chart", "report_figure"]

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
_LINE = "#c0504d"


def _safe(text: Any, limit: int = 40) -> str:
    """Data as literal text: no mathtext ($), no newlines, cut."""
    s = " ".join(str(text).split()).replace("$", r"\$")
    return s if len(s) <= limit else s[: limit - 1] + "…"


def _no_data(ax: Any, title: str, why: str | None = None) -> None:
    ax.set_title(title, fontsize=12, fontweight="bold")
    ax.text(0.5, 0.55, "no data yet", ha="center", va="center", fontsize=14, color="#666666",
            transform=ax.transAxes)  # fmt: skip
    if why:
        ax.text(0.5, 0.4, _safe(why, 70), ha="center", va="center", fontsize=9, color="#888888",
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
    return max(1, int(np.ceil(n / 10)))


def _throughput(ax: Any, daily: list[dict[str, Any]]) -> None:
    title = "Labels per day"
    counts = [int(d.get("labels") or 0) for d in daily]
    if not daily or sum(counts) == 0:
        _no_data(ax, title, "no labels in this window")
        return
    x = np.arange(len(daily))
    ax.bar(x, counts, color=_BARS)
    step = _tick_every(len(daily))
    ax.set_xticks(x[::step], _day_labels([str(d["day"]) for d in daily])[::step], rotation=45, ha="right")
    ax.set_title(title, fontsize=12, fontweight="bold")
    ax.set_xlabel("day")
    ax.set_ylabel("labels")
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)


def _agreement(ax: Any, daily: list[dict[str, Any]]) -> None:
    title = "Agreement per day"
    values = [d.get("agreement") for d in daily]
    if not daily or all(v is None for v in values):
        _no_data(ax, title, "no item with two or more answers yet")
        return
    x = np.arange(len(daily))
    y = np.array([np.nan if v is None else 100.0 * v for v in values], dtype=float)
    ax.plot(x, y, marker="o", color=_LINE, linewidth=2)
    step = _tick_every(len(daily))
    ax.set_xticks(x[::step], _day_labels([str(d["day"]) for d in daily])[::step], rotation=45, ha="right")
    ax.set_ylim(0, 105)
    ax.set_title(title, fontsize=12, fontweight="bold")
    ax.set_xlabel("day (items completed)")
    ax.set_ylabel("percent agreement (%)")
    ax.grid(alpha=0.3)
    ax.set_xlim(-0.5, len(daily) - 0.5)


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
    ax.set_xticks(x, [_safe(label, 18) for label in labels], rotation=45 if len(labels) > 3 else 0,
                  ha="right" if len(labels) > 3 else "center")  # fmt: skip
    ax.set_title(title, fontsize=12, fontweight="bold")
    ax.set_xlabel("label" + (f" (top {len(labels)}; {dist['more']} more)" if dist.get("more") else ""))
    ax.set_ylabel("share of answers (%)")
    ax.legend(fontsize=9)
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
    """The three-panel figure, plus agreement per guideline version once there is a revision (a
    standalone `Figure`: nothing to close)."""
    versions = list(data.get("agreement_by_guidelines") or [])
    panels = 4 if len(versions) >= 2 else 3
    fig = _load()(figsize=(16 if panels == 3 else 21, 4.8), dpi=100)
    axes = fig.subplots(1, panels)
    daily = list(data.get("daily") or [])
    _throughput(axes[0], daily)
    _agreement(axes[1], daily)
    _distribution(axes[2], data.get("distribution") or {})
    if panels == 4:
        _versions(axes[3], versions)
    name = _safe(data.get("name") or data.get("project") or "project", 60)
    since, until = str(data.get("since", ""))[:10], str(data.get("until", ""))[:10]
    fig.suptitle(f"{name}: {since} to {until}", fontsize=13)
    fig.tight_layout(rect=(0, 0, 1, 0.95))
    return fig


def report_chart(data: dict[str, Any]) -> bytes:
    """PNG bytes of `report_figure(data)`."""
    buf = io.BytesIO()
    report_figure(data).savefig(buf, format="png")
    return buf.getvalue()
