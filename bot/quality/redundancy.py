"""Posterior over an item's true label from the answers so far, for adaptive redundancy (stop asking
once the posterior is confident, ask once more when it is not).

One-coin model: annotator j answers the true label with probability a_j and each of the K - 1 other
labels with probability (1 - a_j) / (K - 1). Posterior(c) is proportional to prior(c) * prod_j
P(answer_j | c). Accuracies can come from `DawidSkeneResult.annotator_accuracy()`, gold accuracy,
or a quiz; clip them away from 0 and 1 (default [0.05, 0.99]) so one answer is never decisive.

Anchoring correction (choice and why). Answers given with the draft shown are not independent of the
draft: with probability k the annotator just took it. Rather than down-weighting draft-agreeing
answers by an ad-hoc factor, the likelihood of a shown answer is the copying mixture the anchoring
estimates are defined on (`bot.quality.anchoring`):

    P(answer a | true c, draft d shown) = k_c * [a == d] + (1 - k_c) * P_one_coin(a | c),
    k_c = copy_right if d == c else copy_wrong,

with copy_wrong = `AnchoringEffect.harmful.rate` (how often a wrong draft is taken) and copy_right =
`AnchoringEffect.helpful.rate`. With k = 0 this is the plain one-coin posterior; with k = 1 a shown
answer equal to the draft carries no information about c beyond "the draft was shown"; an answer that
rejects the draft keeps its full weight (times 1 - k_c, which is the same for every c when copy_right
== copy_wrong). The draft itself is not counted as a vote; pass it as an extra answer with the
drafter's accuracy if wanted.

Pure: numpy only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["Posterior", "one_coin_posterior"]


@dataclass(frozen=True)
class Posterior:
    """probabilities: {label: posterior}, in the order of `classes`; label: the most probable label
    (the first one on a tie); confidence: its posterior probability; n: answers used."""

    probabilities: dict[str, float]
    label: str
    confidence: float
    n: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "probabilities": dict(self.probabilities),
            "label": self.label,
            "confidence": self.confidence,
            "n": self.n,
        }


def one_coin_posterior(
    answers: Sequence[str],
    accuracies: Sequence[float],
    classes: Sequence[str] | int,
    *,
    prior: Mapping[str, float] | Sequence[float] | None = None,
    draft: str | None = None,
    shown: Sequence[bool] | None = None,
    copy_wrong: float = 0.0,
    copy_right: float | None = None,
    clip: tuple[float, float] = (0.05, 0.99),
) -> Posterior:
    """Posterior over `classes` (labels, or K for labels "0".."K-1") given `answers[j]` by an
    annotator of accuracy `accuracies[j]`.

    `prior`: class probabilities (default uniform), e.g. `DawidSkeneResult.priors`. Anchoring: when
    `draft` and `shown` (one flag per answer: was the draft shown with it?) are given, shown answers use
    the copying mixture of the module docstring with `copy_wrong` / `copy_right` (default: copy_right
    = copy_wrong). An answer outside `classes` raises ValueError."""
    labels = [str(i) for i in range(classes)] if isinstance(classes, int) else [str(c) for c in classes]
    k = len(labels)
    if k < 2:
        raise ValueError("need at least 2 classes")
    if len(answers) != len(accuracies):
        raise ValueError("answers and accuracies must have the same length")
    index = {c: i for i, c in enumerate(labels)}
    try:
        codes = np.array([index[str(a)] for a in answers], dtype=np.int64)
    except KeyError as exc:
        raise ValueError(f"answer {exc.args[0]!r} is not one of the classes") from None
    acc = np.clip(np.asarray(accuracies, dtype=float), *clip)
    if prior is None:
        log_post = np.zeros(k)
    else:
        p = np.array([prior[c] for c in labels] if isinstance(prior, Mapping) else list(prior), dtype=float)
        if p.shape != (k,) or (p < 0).any() or p.sum() <= 0:
            raise ValueError("prior must give a non-negative weight to each class")
        with np.errstate(divide="ignore"):
            log_post = np.log(p / p.sum())
    # lik[j, c] = P(answer_j | true c)
    lik = np.repeat(((1.0 - acc) / (k - 1))[:, None], k, axis=1)
    lik[np.arange(len(codes)), codes] = acc
    if draft is not None and shown is not None and len(codes):
        if len(shown) != len(codes):
            raise ValueError("shown must have one flag per answer")
        d = index.get(str(draft))
        if d is None:
            raise ValueError(f"draft {draft!r} is not one of the classes")
        k_right = copy_wrong if copy_right is None else copy_right
        kc = np.full(k, float(copy_wrong))
        kc[d] = float(k_right)
        took = (codes == d).astype(float)[:, None]
        mixed = kc[None, :] * took + (1.0 - kc[None, :]) * lik
        on = np.asarray(shown, dtype=bool)
        lik = np.where(on[:, None], mixed, lik)
    with np.errstate(divide="ignore"):
        log_post = log_post + np.log(lik).sum(axis=0)
    top = np.max(log_post)
    post = np.exp(log_post - top)
    post /= post.sum()
    best = int(np.argmax(post))
    return Posterior(
        probabilities={c: float(v) for c, v in zip(labels, post, strict=True)},
        label=labels[best],
        confidence=float(post[best]),
        n=len(codes),
    )
