"""Synthetic crowd for the quality statistics: false alarms, power, estimate bias and CI coverage of the
anchoring measures, Dawid-Skene calibration, and the rubber-stamp check.

The world: 5 labels with skewed frequencies, 10 annotators of accuracy 0.72-0.90 (each with its own
random pattern of mistakes), 3 labels per item, ~2,000 drafted labels a day (667 items) and ~220 blind
labels a day (73 items); an LLM drafter 72% accurate whose mistakes lean toward one label. "k% copying":
with a draft shown, an annotator takes it with probability k (the draft's correctness is judged on a
random `--judged` share of items, as gold / decoys / expert review would). In the "helpful" world
annotators take right drafts with probability 0.5 and never take wrong ones.

Alarms are evaluated the way a daily report would: every day on the trailing 14 days (anchoring and
per-annotator), and weekly on the trailing 7 days (label shift), each held to its share of a 5%
false-alarm budget for the 30-day period (looks = 30 and 4).

Run: PYTHONPATH=. python bench/quality_sim.py [--runs 1.0] [--seed 1] [--judged 0.5]
(`--runs` scales every run count; 0.25 for a quick look.)
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # a shared machine: one core is enough

import argparse  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from bot.quality.aggregation import calibrated_dawid_skene, dawid_skene  # noqa: E402
from bot.quality.alarms import anchoring_alarm, annotator_anchoring_alarms, label_shift_test, rubber_stamp_check  # noqa: E402
from bot.quality.anchoring import anchoring_effect, switch_rate  # noqa: E402
from bot.quality.calibration import expected_calibration_error  # noqa: E402

K = 5
PRIOR = np.array([0.45, 0.25, 0.15, 0.10, 0.05])
N_ANN = 10
ACC = np.linspace(0.72, 0.90, N_ANN)
LLM_ACC, LLM_BIAS, LLM_BIAS_SHARE = 0.72, 1, 0.6
DRAFTED_ITEMS, BLIND_ITEMS, PER_ITEM = 667, 73, 3
DAYS = 30
WINDOW, SHIFT_WINDOW = 14, 7
ALPHA_ANCHOR, ALPHA_ANNOT, ALPHA_SHIFT = 0.02, 0.015, 0.01
SHIFT_DAYS = (7, 14, 21, 28)


@dataclass
class World:
    day: np.ndarray  # per row
    item: np.ndarray
    ann: np.ndarray
    answer: np.ndarray
    draft: np.ndarray
    truth: np.ndarray
    blind: np.ndarray
    judged: np.ndarray  # per row: the item's draft correctness is known


def crowd(rng: np.random.Generator) -> np.ndarray:
    """Per annotator and true label, the distribution of its answer (rows sum to 1). Mistakes lean
    toward frequent labels (base rate times a per-annotator random tilt)."""
    conf = np.zeros((N_ANN, K, K))
    for a in range(N_ANN):
        for t in range(K):
            others = np.arange(K) != t
            wrong = PRIOR[others] * rng.dirichlet(np.full(K - 1, 10.0))
            conf[a, t, others] = wrong / wrong.sum() * (1 - ACC[a])
            conf[a, t, t] = ACC[a]
    return conf


def sample_rows(cum: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Categorical draws: cum is (n, K) cumulative probabilities per row, u uniforms."""
    return np.minimum((cum < u[:, None]).sum(axis=1), K - 1)


def simulate(rng: np.random.Generator, days: int, k_wrong: float, k_right: float, judged: float) -> World:
    conf = crowd(rng)
    per_day = DRAFTED_ITEMS + BLIND_ITEMS
    n_items = per_day * days
    truth = rng.choice(K, size=n_items, p=PRIOR)
    blind_item = np.tile(np.r_[np.zeros(DRAFTED_ITEMS, bool), np.ones(BLIND_ITEMS, bool)], days)
    rng.shuffle(blind_item)
    # drafts: right with LLM_ACC, else the bias label (when wrong) with LLM_BIAS_SHARE, else uniform wrong
    right = rng.random(n_items) < LLM_ACC
    other = (truth + 1 + rng.integers(0, K - 1, size=n_items)) % K
    biased = (rng.random(n_items) < LLM_BIAS_SHARE) & (truth != LLM_BIAS)
    draft = np.where(right, truth, np.where(biased, LLM_BIAS, other))
    judged_item = rng.random(n_items) < judged
    ann = np.argsort(rng.random((n_items, N_ANN)), axis=1)[:, :PER_ITEM].ravel()
    item = np.repeat(np.arange(n_items), PER_ITEM)
    t_row = truth[item]
    cum = np.cumsum(conf[ann, t_row], axis=1)
    answer = sample_rows(cum, rng.random(item.size))
    d_row = draft[item]
    shown = ~blind_item[item]
    k = np.where(d_row == t_row, k_right, k_wrong)
    copy = shown & (rng.random(item.size) < k)
    answer = np.where(copy, d_row, answer)
    return World(
        day=item // per_day,
        item=item,
        ann=ann,
        answer=answer,
        draft=d_row,
        truth=t_row,
        blind=blind_item[item],
        judged=judged_item[item],
    )


def alarm_days(w: World, *, stop_early: bool, n_boot: int = 0) -> tuple[int | None, dict[str, int | None]]:
    """First day (1-based) on which any alarm fired, and the first day per alarm."""
    first: dict[str, int | None] = {"anchoring": None, "annotator": None, "label_shift": None}
    wrong = w.judged & (w.draft != w.truth)
    hit = w.answer == w.draft
    starts = np.searchsorted(w.day, np.arange(DAYS + 1))
    for d in range(1, DAYS + 1):
        lo, hi = starts[max(0, d - WINDOW)], starts[d]
        sl = slice(lo, hi)
        use = wrong[sl]
        rate = switch_rate(w.item[sl][use], w.ann[sl][use], ~w.blind[sl][use], hit[sl][use], n_boot=n_boot, seed=d)
        if first["anchoring"] is None and anchoring_alarm(rate, alpha=ALPHA_ANCHOR, looks=DAYS).fired:
            first["anchoring"] = d
        if first["annotator"] is None and annotator_anchoring_alarms(rate, alpha=ALPHA_ANNOT, looks=DAYS).fired:
            first["annotator"] = d
        if d in SHIFT_DAYS and first["label_shift"] is None and not (stop_early and any(first.values())):
            lo7 = starts[max(0, d - SHIFT_WINDOW)]
            s7 = slice(lo7, hi)
            threshold = ALPHA_SHIFT / len(SHIFT_DAYS)
            t = label_shift_test(w.item[s7], w.ann[s7], w.answer[s7], w.blind[s7], n_perm=int(2 / threshold), seed=d)
            if t is not None and t.p_value < threshold:
                first["label_shift"] = d
        if stop_early and any(v is not None for v in first.values()):
            break
    days = [v for v in first.values() if v is not None]
    return (min(days) if days else None), first


def labels_frame(w: World, rows: np.ndarray | slice = slice(None)) -> pd.DataFrame:
    """A labels frame (with blind and draft_correct columns) for the frame-level functions."""
    keys = np.array([f'"c{c}"' for c in range(K)], dtype=object)
    item, ann = w.item[rows], w.ann[rows]
    answer, draft, truth = w.answer[rows], w.draft[rows], w.truth[rows]
    blind, judged = w.blind[rows], w.judged[rows]
    correct = np.where(judged, draft == truth, None).astype(object)
    n = len(item)
    return pd.DataFrame(
        {
            "item_id": item.astype(np.int64),
            "annotator": np.array([f"a{a}" for a in range(N_ANN)], dtype=object)[ann],
            "value_key": keys[answer],
            "value": keys[answer],
            "action": np.where(blind, "manual", np.where(answer == draft, "accept", "edit")),
            "draft_shown": ~blind,
            "draft_key": keys[draft],
            "seconds": np.full(n, 5.0),
            "counts": np.ones(n, dtype=bool),
            "kind": np.full(n, "production", dtype=object),
            "gold_key": np.full(n, None, dtype=object),
            "created_at": pd.Timestamp("2026-01-01", tz="UTC"),
            "blind": blind,
            "draft_correct": correct,
        }
    )


def pct(x: float) -> str:
    return f"{100 * x:5.1f}%"


def mark(ok: bool) -> str:
    return "ok " if ok else "MISS"


def anchoring_section(rng: np.random.Generator, runs: int, judged: float) -> None:
    print("== Alarms and the anchoring estimate (30-day periods) ==")
    print(
        f"   alarms: anchoring alpha {ALPHA_ANCHOR}/30 looks, per-annotator BH {ALPHA_ANNOT}/30, "
        f"label shift {ALPHA_SHIFT}/4 looks; draft correctness judged on {judged:.0%} of items"
    )
    scenarios = [
        ("no anchoring", 0.0, 0.0, max(20, runs * 2)),
        ("10% copying", 0.1, 0.1, runs),
        ("20% copying", 0.2, 0.2, runs),
        ("30% copying", 0.3, 0.3, runs),
        ("helpful drafts", 0.0, 0.5, runs),
    ]
    header = (
        f"   {'world':15s} {'runs':>4s} {'any alarm':>9s} {'<=7d':>6s} {'<=14d':>6s} {'median d':>8s} "
        f"{'est k':>6s} {'true k':>6s} {'bias':>7s} {'cover95':>7s} {'raw':>6s} {'old alert':>9s}"
    )
    print(header)
    timings = []
    for name, k_wrong, k_right, n_runs in scenarios:
        first_days, ests, covered, raws, old = [], [], [], [], []
        helpful_ests = []
        for r in range(n_runs):
            w = simulate(rng, DAYS, k_wrong, k_right, judged)
            day, _ = alarm_days(w, stop_early=k_wrong > 0)
            first_days.append(day)
            if r < 3:
                frame = labels_frame(w)
                t0 = time.perf_counter()
                effect = anchoring_effect(frame, n_boot=1000, seed=r)
                timings.append((len(frame), time.perf_counter() - t0))
            else:
                wrong = w.judged & (w.draft != w.truth)
                right_d = w.judged & (w.draft == w.truth)
                hit = w.answer == w.draft
                harm = switch_rate(w.item[wrong], w.ann[wrong], ~w.blind[wrong], hit[wrong], n_boot=1000, seed=r)
                helpful = switch_rate(
                    w.item[right_d], w.ann[right_d], ~w.blind[right_d], hit[right_d], n_boot=0, seed=r
                )
                shown, blind = ~w.blind, w.blind
                raw_v = hit[shown].mean() - hit[blind].mean()
                effect = None
            if effect is not None:
                harm, helpful, raw_v = effect.harmful, effect.helpful, effect.raw.value
            m = harm.rate
            ests.append(m.value)
            covered.append(m.ci_low <= k_wrong <= m.ci_high)
            helpful_ests.append(helpful.rate.value)
            raws.append(raw_v)
            old.append(raw_v > 0.15)
        days = np.array([np.nan if d is None else d for d in first_days], dtype=float)
        fired = np.isfinite(days)
        within7 = np.mean(fired & (days <= 7))
        within14 = np.mean(fired & (days <= 14))
        med = np.nanmedian(days) if fired.any() else float("nan")
        est = float(np.mean(ests))
        print(
            f"   {name:15s} {n_runs:4d} {pct(fired.mean()):>9s} {pct(within7):>6s} {pct(within14):>6s} "
            f"{med:8.1f} {est:6.3f} {k_wrong:6.2f} {est - k_wrong:+7.3f} {pct(np.mean(covered)):>7s} "
            f"{np.mean(raws):6.3f} {pct(np.mean(old)):>9s}"
        )
        if name == "no anchoring":
            print(f"     target: some alert in <= 5% of periods ............ {mark(fired.mean() <= 0.05)}")
        if name == "10% copying":
            print(f"     target: alert within 14 days in >= 80% ............ {mark(within14 >= 0.8)}")
        if name == "20% copying":
            print(f"     target: alert within 7 days in >= 90% ............. {mark(within7 >= 0.9)}")
        if name == "helpful drafts":
            print(
                f"     helpful effect estimate {np.mean(helpful_ests):.3f} (true 0.50); harmful alarms "
                f"fired in {pct(fired.mean())} of periods"
            )
        if k_wrong > 0 or name == "no anchoring":
            bias_ok = abs(est - k_wrong) <= 0.01
            cover_ok = 0.93 <= np.mean(covered) <= 0.97
            print(
                f"     target: |bias| <= 0.01 {mark(bias_ok)}; 95% CI coverage 93-97% {mark(cover_ok)} "
                f"(+-{100 * np.sqrt(0.95 * 0.05 / n_runs):.1f} pts simulation error)"
            )
    rows, secs = max(timings, key=lambda t: t[1])
    print(f"   anchoring_effect on a 30-day frame ({rows} rows, 1,000 replicates): slowest call {secs:.2f} s")


def ds_section(rng: np.random.Generator, runs: int) -> None:
    print("== Dawid-Skene calibration (fitted on one day: 2,220 labels, 740 items, no anchoring) ==")
    variants = {
        "classic (smoothing 0.01)": {},
        "smoothing 1": {"smoothing": 1.0},
        "calibrated (CALIBRATED_DS)": None,
    }
    stats: dict[str, list[dict[str, float]]] = {v: [] for v in variants}
    mv_acc = []
    keys = np.array([f'"c{c}"' for c in range(K)], dtype=object)
    for _ in range(runs):
        w = simulate(rng, 1, 0.0, 0.0, 1.0)
        frame = pd.DataFrame(
            {"item_id": w.item, "annotator": w.ann.astype(str), "value_key": keys[w.answer], "value": keys[w.answer]}
        )
        n_items = w.item.max() + 1
        truth = w.truth[::PER_ITEM]
        votes = np.zeros((n_items, K))
        np.add.at(votes, (w.item, w.answer), 1)
        top = votes.max(axis=1)
        ties = votes == top[:, None]
        pick = np.array([rng.choice(np.flatnonzero(t)) for t in ties])
        mv_acc.append(float(np.mean(pick == truth)))
        split = np.sort(votes, axis=1)[:, ::-1]
        one_one_one = split[:, 0] == 1
        two_one = (split[:, 0] == 2) & (split[:, 1] == 1)
        for name, opts in variants.items():
            fit = calibrated_dawid_skene(frame) if opts is None else dawid_skene(frame, **opts)
            post = fit.posteriors.to_numpy()
            order = [fit.classes.index(k) for k in keys]
            post = post[:, order]
            guess = post.argmax(axis=1)
            conf = post.max(axis=1)
            correct = guess == truth
            ece = expected_calibration_error(conf, correct, n_boot=0).value
            stats[name].append(
                {
                    "acc": correct.mean(),
                    "ece": ece,
                    "c111": conf[one_one_one].mean(),
                    "a111": correct[one_one_one].mean(),
                    "max111": conf[one_one_one].max(),
                    "c21": conf[two_one].mean(),
                    "a21": correct[two_one].mean(),
                }
            )
    print(f"   majority vote accuracy (ties broken at random): {np.mean(mv_acc):.3f}")
    print(
        f"   {'variant':28s} {'acc':>6s} {'ECE':>6s} {'1-1-1 conf':>10s} {'acc':>6s} {'max':>6s} "
        f"{'2-1 conf':>8s} {'acc':>6s}"
    )
    for name, rows in stats.items():
        s = {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}
        mx = float(np.max([r["max111"] for r in rows]))
        print(
            f"   {name:28s} {s['acc']:6.3f} {s['ece']:6.3f} {s['c111']:10.3f} {s['a111']:6.3f} {mx:6.3f} "
            f"{s['c21']:8.3f} {s['a21']:6.3f}"
        )
        if name.startswith("calibrated"):
            print(
                f"     targets: ECE <= 0.03 {mark(s['ece'] <= 0.03)}; 1-1-1 never above 0.6 {mark(mx <= 0.6)}; "
                f"accuracy >= majority vote {mark(s['acc'] >= np.mean(mv_acc))}"
            )


def stamp_section(rng: np.random.Generator, runs: int) -> None:
    print("== Rubber-stamp check (hidden checks in blocks of 10, exactly 5 with a decoy wrong draft) ==")
    horizon = 50

    def schedule() -> np.ndarray:
        return np.concatenate([rng.permutation(np.r_[np.ones(5, bool), np.zeros(5, bool)]) for _ in range(5)])

    conf = crowd(rng)
    honest = int(np.argmin(np.abs(ACC - 0.9)))

    def honest_accepts(decoys: int, copy: float) -> np.ndarray:
        # the decoy shows a wrong label (the LLM's favourite when possible); an honest annotator
        # accepts it when it takes the draft (copy) or would have answered that label anyway
        truth = rng.choice(K, size=decoys, p=PRIOR)
        decoy = np.where(truth != LLM_BIAS, LLM_BIAS, (truth + 1) % K)
        own = sample_rows(np.cumsum(conf[honest, truth], axis=1), rng.random(decoys))
        return (own == decoy) | (rng.random(decoys) < copy)

    stamper_checks = []
    for _ in range(runs):
        sched = schedule()
        decoy_pos = np.flatnonzero(sched)
        alarm = rubber_stamp_check([True] * len(decoy_pos))
        stamper_checks.append(int(decoy_pos[alarm.details["flagged_at"] - 1]) + 1)
    stamper_checks_arr = np.array(stamper_checks)
    print(
        f"   rubber-stamper (accepts every draft in < 2 s): flagged after {stamper_checks_arr.mean():.1f} hidden "
        f"checks on average, at most {stamper_checks_arr.max()}; within 10 checks in "
        f"{pct(np.mean(stamper_checks_arr <= 10))} .. {mark(np.mean(stamper_checks_arr <= 10) >= 0.99)}"
    )
    for copy in (0.0, 0.1):
        kept = []
        for _ in range(runs):
            accepted = honest_accepts(int(schedule().sum()), copy)
            kept.append(not rubber_stamp_check(accepted).fired)
        label = "honest 90% annotator" + (" who takes 10% of drafts" if copy else "")
        target = f" .. {mark(np.mean(kept) >= 0.99)}" if copy == 0 else ""
        print(f"   {label}: still qualified after {horizon} checks in {pct(np.mean(kept))} of runs{target}")
    # the simpler rule for comparison: >= 2 accepted decoys among the first 5
    simple = np.mean([honest_accepts(5, 0.0).sum() >= 2 for _ in range(runs)])
    print(f"   (simple rule '>= 2 of the first 5 decoys': honest annotator flagged in {pct(simple)} of runs)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=float, default=1.0, help="scale every run count (default 1.0)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--judged", type=float, default=0.5, help="share of items whose draft is judged")
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    start = time.perf_counter()
    anchoring_section(rng, max(5, round(80 * args.runs)), args.judged)
    ds_section(rng, max(2, round(20 * args.runs)))
    stamp_section(rng, max(100, round(20_000 * args.runs)))
    print(f"total {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
