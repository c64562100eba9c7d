"""Reading a per-epoch accuracy history: the constant-prediction signature.

A model that predicts one class for every clip scores exactly that class's share of the set. The
seed's history (0.10355556 = 233/2250, 0.09022222 = 203/2250, ...) is a run of such values near
1/K, with no trend: the network answered one class per epoch, and which one changed as it moved.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from spoken_digits.diagnose.findings import Finding, Severity


def constant_prediction(
    accuracies: Sequence[float], n_train: int, *, n_classes: int = 10, class_counts: Sequence[int] | None = None
) -> list[Finding]:
    """Findings for a history of accuracies measured on `n_train` clips (empty when it looks healthy)."""
    acc = np.asarray(accuracies, dtype=np.float64)
    if acc.ndim != 1 or len(acc) < 3 or n_train < 1:
        return []
    counts = acc * n_train
    whole = bool(np.all(np.abs(counts - np.round(counts)) <= 1e-5 * n_train))  # float32 rounding of k/n
    chance = 1.0 / n_classes
    band = 4 * np.sqrt(chance * (1 - chance) / n_train) + 0.02  # class shares scatter around 1/K
    near_chance = bool(np.all(np.abs(acc - chance) <= band))
    third = max(1, len(acc) // 3)
    trend = float(acc[-third:].mean() - acc[:third].mean())
    evidence = {
        "n_epochs": len(acc),
        "correct_counts": np.round(counts).astype(int).tolist()[:20],
        "whole_counts": whole,
        "distinct_values": len(np.unique(np.round(counts))),
        "trend": trend,
        "chance": chance,
    }
    if class_counts is not None:
        matches = int(np.isin(np.round(counts), np.asarray(class_counts)).sum())
        evidence["epochs_equal_to_a_class_count"] = matches
    if not (near_chance and trend < 0.02):
        return []
    first = ", ".join(map(str, evidence["correct_counts"][:4]))
    return [
        Finding(
            "prediction_collapse",
            Severity.ERROR,
            f"every epoch's accuracy sits at chance ({acc.min():.3f}..{acc.max():.3f} around {chance:.2f}) "
            "with no upward trend"
            + (
                f"; each is a whole number of clips out of {n_train} ({first}, ...), "
                "the share of one class: the model predicts one constant class per epoch"
                if whole
                else ""
            ),
            evidence,
            "the network sees no usable signal: run `spoken-digits diagnose --data` on the arrays you "
            "feed it; the usual causes are all-zero or constant inputs, raw (not log) mel power, a "
            "learning rate too high, or labels that do not go with the features",
        )
    ]
