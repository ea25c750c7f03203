"""Classification metrics from labels (0 male, 1 female) and P(female), numpy only."""
from __future__ import annotations

import numpy as np


def roc_auc(y: np.ndarray, p: np.ndarray) -> float:
    """Probability that a random female scores above a random male (ties count half)."""
    pos, neg = p[y == 1], p[y == 0]
    if len(pos) == 0 or len(neg) == 0:
        return float("nan")
    order = np.argsort(np.concatenate([neg, pos]), kind="mergesort")
    values = np.concatenate([neg, pos])[order]
    ranks = np.empty(len(values))
    i = 0
    while i < len(values):  # average ranks of ties
        j = i
        while j + 1 < len(values) and values[j + 1] == values[i]:
            j += 1
        ranks[i:j + 1] = (i + j) / 2 + 1
        i = j + 1
    rank_of = np.empty(len(values))
    rank_of[order] = ranks
    return float((rank_of[len(neg):].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def calibration(y: np.ndarray, p: np.ndarray, bins: int = 10) -> tuple[float, list[dict]]:
    """Expected calibration error of the predicted class's confidence, and the bins."""
    confidence = np.maximum(p, 1 - p)
    correct = ((p >= 0.5).astype(int) == y)
    edges = np.linspace(0.5, 1.0, bins + 1)
    table, ece = [], 0.0
    for lo, hi in zip(edges[:-1], edges[1:]):
        m = (confidence >= lo) & ((confidence < hi) if hi < 1 else (confidence <= hi))
        if m.any():
            acc, conf = correct[m].mean(), confidence[m].mean()
            ece += m.mean() * abs(acc - conf)
            table.append({"from": round(lo, 3), "to": round(hi, 3), "count": int(m.sum()),
                          "accuracy": float(acc), "confidence": float(conf)})
    return float(ece), table


def classification_metrics(y: np.ndarray, p: np.ndarray) -> dict:
    y = np.asarray(y, int)
    p = np.asarray(p, float)
    pred = (p >= 0.5).astype(int)
    recall = {name: float((pred[y == k] == k).mean()) if (y == k).any() else float("nan")
              for k, name in enumerate(("male", "female"))}
    eps = 1e-7
    q = np.clip(p, eps, 1 - eps)
    ece, bins = calibration(y, p)
    return {
        "count": int(len(y)),
        "accuracy": float((pred == y).mean()) if len(y) else float("nan"),
        "balanced_accuracy": float(np.nanmean(list(recall.values()))),
        "recall": recall,
        "roc_auc": roc_auc(y, p),
        "log_loss": float(-(y * np.log(q) + (1 - y) * np.log(1 - q)).mean()) if len(y) else float("nan"),
        "confusion": {"rows_true_cols_pred": [[int(((y == t) & (pred == c)).sum()) for c in (0, 1)] for t in (0, 1)]},
        "ece": ece,
        "calibration_bins": bins,
    }


def best_threshold(y: np.ndarray, p: np.ndarray, weights: np.ndarray | None = None) -> tuple[float, float]:
    """The threshold on P(female) with the best balanced accuracy (female and male recall
    weighted equally; `weights` per image, if given, within each sex), and that accuracy.
    Where the models' ranking is good but this point is far from 0.5, the errors come from
    where the decision is made, not from what the model sees."""
    y, p = np.asarray(y, int), np.asarray(p, float)
    w = np.ones(len(y)) if weights is None else np.asarray(weights, float)
    if not ((y == 0).any() and (y == 1).any()):
        return float("nan"), float("nan")
    order = np.argsort(p, kind="mergesort")
    p, y, w = p[order], y[order], w[order]
    wf, wm = np.where(y == 1, w, 0.0), np.where(y == 0, w, 0.0)
    # cutting before index i: images < i called male, >= i female
    male_right = np.concatenate([[0.0], np.cumsum(wm)]) / wm.sum()
    female_right = 1 - np.concatenate([[0.0], np.cumsum(wf)]) / wf.sum()
    cut_ok = np.concatenate([[True], p[1:] > p[:-1], [True]])  # only between distinct values
    score = np.where(cut_ok, (male_right + female_right) / 2, -1)
    best = np.flatnonzero(score >= score.max() - 1e-12)
    i = best[np.argmin([abs(_cut(p, k) - 0.5) for k in best])]  # among equals, the one nearest 0.5
    return _cut(p, i), float(score[i])


def _cut(sorted_p: np.ndarray, i: int) -> float:
    if i == 0:
        return float(sorted_p[0]) / 2
    if i == len(sorted_p):
        return (float(sorted_p[-1]) + 1) / 2
    return (float(sorted_p[i - 1]) + float(sorted_p[i])) / 2
