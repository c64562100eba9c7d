"""Scores of predictions: accuracy, per class, per speaker, and the confusion matrix."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def confusion(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """(n_classes, n_classes) counts; row = true class, column = predicted class."""
    matrix = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(matrix, (y_true, y_pred), 1)
    return matrix


def scores(
    y_true: Sequence[int] | np.ndarray,
    y_pred: Sequence[int] | np.ndarray,
    speakers: Sequence[str],
    classes: Sequence[str],
) -> dict[str, Any]:
    """Accuracy overall, per class and per speaker, plus the confusion matrix, as JSON-able values."""
    y_true, y_pred, who = np.asarray(y_true), np.asarray(y_pred), np.asarray(speakers)
    hit = y_true == y_pred
    per_class = {name: float(hit[y_true == i].mean()) for i, name in enumerate(classes) if (y_true == i).any()}
    per_speaker = {s: float(hit[who == s].mean()) for s in sorted(set(who.tolist()))}
    return {
        "accuracy": float(hit.mean()) if len(hit) else float("nan"),
        "per_class": per_class,
        "per_speaker": per_speaker,
        "confusion": confusion(y_true, y_pred, len(classes)).tolist(),
        "n": len(hit),
    }
