"""Checks on what a model outputs before training and on the loss it is trained with: softmax applied
twice, sigmoid outputs under a softmax loss, labels in a form the loss does not take, a loss that is no
cross-entropy, a loss at initialisation far from ln(K); and, after training, answers that are right
under another numbering of the classes. Framework-free: the adapters say what they know of the loss.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from spoken_digits.diagnose.findings import Finding, Severity

ERROR, WARNING = Severity.ERROR, Severity.WARNING


@dataclass(frozen=True)
class LossKind:
    """What an adapter can tell of the user's loss; None where it cannot."""

    applies_softmax: bool | None = None  # from_logits=True, nn.CrossEntropyLoss: outputs read as logits
    sparse: bool | None = None  # expects class indices (N,), not one-hot rows (N, K)
    name: str = ""


def class_indices(y: np.ndarray) -> np.ndarray:
    """Integer labels (n,) from indices (n,), a column (n, 1) or one-hot rows (n, K): the one conversion
    the hooks use, for labels as the user's loss receives them."""
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] > 1:
        return y.argmax(axis=1)
    return y.reshape(len(y)) if y.ndim == 2 else y


def label_form(targets: np.ndarray, k: int, kind: LossKind) -> list[Finding]:
    """Labels as the loss receives them against what the loss expects (Keras names it in `compile`)."""
    one_hot = targets.ndim == 2 and targets.shape[1] == k and k > 1
    if kind.sparse is True and one_hot:
        got, wants, fix = "one-hot rows", "class indices", "pass y as class indices (y.argmax(1)), or use "
        fix += "categorical_crossentropy, which takes one-hot rows"
    elif kind.sparse is False and targets.ndim == 1:
        got, wants, fix = "class indices", "one-hot rows", "use sparse_categorical_crossentropy, which takes "
        fix += "class indices, or one-hot encode y (keras.utils.to_categorical(y, 10))"
    else:
        return []
    return [
        Finding(
            "loss_mismatch",
            ERROR,
            f"the labels are {got} {list(targets.shape)}, but the loss ({kind.name or 'as compiled'}) expects {wants}",
            {"label_shape": list(targets.shape), "loss": kind.name, "n_outputs": k},
            fix,
        )
    ]


def _log_softmax(z: np.ndarray) -> np.ndarray:
    shifted = z - z.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def _per_clip_ce(log_p: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Cross-entropy per row of log-probabilities (n, K) against indices (n,) or distributions (n, K)."""
    if targets.ndim == 2 and targets.shape == log_p.shape:
        return np.asarray(-(targets * log_p).sum(axis=1))
    return np.asarray(-log_p[np.arange(len(log_p)), class_indices(targets).astype(int)])


def _as_reported(value: float, per_clip: np.ndarray) -> bool:
    """`value` can be the mean of this per-clip loss: within 25% of it, or between the smallest and
    largest clip's loss (a weighted mean, as class weights give)."""
    mean = float(per_clip.mean())
    return abs(value - mean) <= 0.25 * abs(mean) or bool(per_clip.min() <= value <= per_clip.max())


def _distance(reported: float, value: float, n: int) -> float:
    """Relative distance of the reported loss (as a mean or a batch sum) from a computed one."""
    return min(abs(r - value) for r in (reported, reported / max(n, 1))) / max(abs(value), 1e-12)


def _sigmoid_like(outputs: np.ndarray) -> bool:
    """What an untrained sigmoid layer outputs: strictly inside (0, 1), spread, centred near 1/2. Zero
    logits (a zero-initialised last layer) or small non-negative ones are not."""
    inside = outputs.min() > 0 and outputs.max() < 1
    return bool(inside and np.ptp(outputs) > 1e-6 and 0.2 <= outputs.mean() <= 0.8)


def _one_hot(outputs: np.ndarray, targets: np.ndarray, k: int) -> np.ndarray:
    if targets.ndim == 2 and targets.shape == outputs.shape:
        return targets.astype(np.float64)
    return np.eye(k)[class_indices(targets).astype(int) % k]


def _regression_losses(outputs: np.ndarray, targets: np.ndarray, k: int) -> list[float]:
    """Mean squared errors a regression loss computes: the outputs against class indices broadcast
    over the row, and against one-hot rows."""
    indices = class_indices(targets).astype(np.float64)
    one_hot = _one_hot(outputs, targets, k)
    return [float(((outputs - indices[:, None]) ** 2).mean()), float(((outputs - one_hot) ** 2).mean())]


def _binary_ce(outputs: np.ndarray, targets: np.ndarray, k: int) -> np.ndarray:
    """Binary cross-entropy per row of sigmoid outputs against one-hot rows."""
    one_hot, p = _one_hot(outputs, targets, k), np.clip(outputs, 1e-7, 1 - 1e-7)
    return np.asarray(-(one_hot * np.log(p) + (1 - one_hot) * np.log(1 - p)).mean(axis=1))


def output_checks(
    outputs: np.ndarray, targets: np.ndarray, k: int, kind: LossKind, reported: float | None
) -> tuple[list[Finding], float | None]:
    """What the untrained model's outputs and loss say: softmax twice, sigmoid outputs under a softmax
    loss, a loss that is no cross-entropy, a loss at initialisation far from ln(K). Also returns that loss.

    Where the adapter cannot tell whether the loss applies softmax (PyTorch), the loss the user's code
    reported on these very outputs decides: it equals one of the candidates to float precision."""
    findings: list[Finding] = []
    targets = np.asarray(targets)
    unit = bool(outputs.min() >= 0 and outputs.max() <= 1)
    row_sum = float(outputs.sum(axis=1).mean())
    probabilities = unit and bool(np.allclose(outputs.sum(axis=1), 1, atol=1e-3))
    sigmoid = not probabilities and k > 2 and _sigmoid_like(outputs)
    softmax_clips = _per_clip_ce(_log_softmax(outputs), targets)
    softmax_ce = float(softmax_clips.mean())
    normalised = np.clip(outputs / np.maximum(outputs.sum(axis=1, keepdims=True), 1e-12), 1e-12, 1)
    direct_clips = _per_clip_ce(np.log(normalised), targets)  # what a loss on probabilities computes
    direct = float(direct_clips.mean())
    applies = kind.applies_softmax
    loss = softmax_ce if applies or not unit else direct
    if applies is False and not unit:
        findings.append(
            Finding(
                "loss_mismatch",
                ERROR,
                f"the outputs are not probabilities (from {outputs.min():.3g} to {outputs.max():.3g}), but the loss "
                "reads them as probabilities (from_logits=False)",
                {"output_min": float(outputs.min()), "output_max": float(outputs.max()), "loss": kind.name},
                "end the model with a softmax, or keep the logits and pass from_logits=True to the loss",
            )
        )
    if reported is not None and math.isfinite(reported):
        n = len(outputs)
        if applies is None and unit:  # which of the two the loss computed, where one is clearly closer
            d_soft, d_direct = _distance(reported, softmax_ce, n), _distance(reported, direct, n)
            if min(d_soft, d_direct) <= 1e-3 and max(d_soft, d_direct) >= 10 * min(d_soft, d_direct):
                applies = d_soft < d_direct
        candidates = [softmax_clips] + ([direct_clips] if unit else [])
        if outputs.max() <= 0:  # log-probabilities, for NLLLoss
            candidates.append(_per_clip_ce(outputs, targets))
        if unit:
            candidates.append(_binary_ce(outputs, targets, k))
        regression = [m for m in _regression_losses(outputs, targets, k) if abs(reported - m) <= 0.25 * abs(m)]
        read = [v for v in (reported, reported / n) for c in candidates if _as_reported(v, c)]  # mean, or sum
        if any(_as_reported(reported, c) for c in candidates) or (read and not regression):
            loss = read[0]
        else:
            findings.append(_no_cross_entropy(reported, softmax_ce, regression, targets))
            loss = reported
    if probabilities and applies:
        floor = -math.log(math.e / (math.e + k - 1))
        findings.append(
            Finding(
                "double_softmax",
                ERROR,
                "the model outputs probabilities (rows sum to 1) and the loss applies softmax again (from_logits"
                f"=True, or nn.CrossEntropyLoss): gradients shrink and the loss cannot go below {floor:.2f}",
                {"output_row_sum": row_sum, "loss": kind.name, "loss_floor": floor},
                "keep the softmax and use from_logits=False (Keras' default), or drop it and train on logits "
                "(nn.CrossEntropyLoss applies log-softmax itself); apply softmax only when reporting",
            )
        )
    elif sigmoid:
        findings.append(
            Finding(
                "sigmoid_with_softmax_loss",
                ERROR if applies else WARNING,
                f"the outputs are independent sigmoids (in (0, 1), rows sum to {row_sum:.2f}), but the loss is a "
                "cross-entropy over exclusive classes",
                {"output_row_sum": row_sum, "loss": kind.name},
                "end the model with Dense(10, activation='softmax') (Keras) or plain logits (PyTorch, with "
                "nn.CrossEntropyLoss); sigmoid outputs go with binary cross-entropy, for labels that can co-occur",
            )
        )
    mismatch = any(f.code == "loss_mismatch" for f in findings)
    if math.isfinite(loss) and abs(loss - math.log(k)) > max(1.0, 0.5 * math.log(k)) and not mismatch:
        findings.append(
            Finding(
                "init_loss_off",
                WARNING,
                f"the loss at initialisation is {loss:.3g}, not ln({k}) = {math.log(k):.2f}: the untrained "
                "model is confidently wrong",
                {"first_loss": loss, "expected": math.log(k)},
                "scale the inputs (log, standardise) and keep the default initialisation of the last layer",
            )
        )
    return findings, (loss if math.isfinite(loss) else None)


def _no_cross_entropy(reported: float, ce: float, regression: list[float], targets: np.ndarray) -> Finding:
    """A first loss that no cross-entropy of these outputs gives: an error where it is a mean squared
    error of them, a warning otherwise (a penalty added to the loss, or a loss the doctor does not know)."""
    evidence = {"reported_loss": reported, "cross_entropy": ce, "label_shape": list(targets.shape)}
    if regression:
        return Finding(
            "loss_mismatch",
            ERROR,
            f"the loss at the first step is {reported:.3g}, the mean squared error of these outputs against "
            f"the labels, not their cross-entropy ({ce:.3g}): the loss is not a classification cross-entropy",
            evidence | {"mean_squared_error": regression[0]},
            "train a single-label classifier with cross-entropy on logits (nn.CrossEntropyLoss with class "
            "indices); a regression loss such as MSE against class indices learns no classes",
        )
    return Finding(
        "loss_mismatch",
        WARNING,
        f"the loss at the first step is {reported:.3g}, but cross-entropy of these outputs against these labels "
        f"is {ce:.3g}: a penalty added to the loss (weight decay written into it), or a loss that is no "
        "classification cross-entropy",
        evidence,
        "a penalty is fine (optimizer weight_decay does the same outside the loss); otherwise train with "
        "cross-entropy on logits (nn.CrossEntropyLoss with class indices)",
    )


def label_order(y: np.ndarray, predicted: np.ndarray | None, k: int) -> list[Finding]:
    """Predictions that are right under another numbering of the classes: the training labels and these
    number the classes differently (string labels sorted as text: 'eight' < 'five' < ... < 'zero')."""
    if predicted is None or k < 2 or len(predicted) != len(y):
        return []
    table = np.zeros((k, k), dtype=np.int64)  # (label, prediction) counts
    np.add.at(table, (y.clip(0, k - 1).astype(int), predicted), 1)
    present = np.flatnonzero(table.sum(axis=1))
    mapping = {int(c): int(table[c].argmax()) for c in present}
    accuracy = float(np.trace(table)) / len(y)
    renamed = float(sum(table[c].max() for c in present)) / len(y)
    distinct = len(set(mapping.values()))
    if not (renamed >= max(0.5, accuracy + 0.3) and distinct >= 0.8 * len(present)):
        return []
    moved = {c: p for c, p in mapping.items() if c != p}
    return [
        Finding(
            "label_order",
            ERROR,
            f"the model is right up to a renaming of the classes: {renamed:.0%} of the sample would be right "
            f"if label {next(iter(moved))} were {moved[next(iter(moved))]} and so on, against {accuracy:.0%} "
            "as labelled: training and these labels number the classes in different orders",
            {"accuracy": accuracy, "accuracy_after_renaming": renamed, "label_to_prediction": mapping},
            "build one class list and map every split's labels through it; string labels sorted as text put "
            "'eight' before 'five' and '10' before '2': number digits by their value",
        )
    ]
