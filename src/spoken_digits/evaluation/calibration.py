"""How far a model's probabilities can be trusted: temperature scaling, expected calibration error (ECE)
and the risk-coverage curve (the error rate left when only the surest answers are kept).

Temperature scaling divides the logits by one number T fitted to minimise the negative log-likelihood of
held-out clips (Guo et al., 2017): it changes no answer, only how sure each one is.
"""

from __future__ import annotations

import numpy as np

BINS = 15  # equal-width confidence bins for ECE
# The grid T is chosen on. Bounded: held-out clips with (almost) no errors pull T towards 0 without end, and a
# model 20x sharper than trained is not calibrated but saturated; a fit at a bound is flagged (`at_bound`).
GRID = np.exp(np.linspace(np.log(0.05), np.log(20.0), 400))  # log steps of 1.5%
TEMPERATURES = GRID[(GRID >= 0.25) & (GRID <= 4.0)]
COVERAGES = (1.0, 0.95, 0.9, 0.8, 0.5)


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Row-wise softmax of `logits` / `temperature` (float64 inside, float32 out)."""
    z = np.asarray(logits, dtype=np.float64) / temperature
    z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)


def nll(logits: np.ndarray, truth: np.ndarray, temperature: float) -> float:
    """Mean negative log-likelihood of the true classes at `temperature`."""
    z = np.asarray(logits, dtype=np.float64) / temperature
    z -= z.max(axis=1, keepdims=True)
    log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return float(-log_p[np.arange(len(truth)), truth].mean())


def fit_temperature(logits: np.ndarray, truth: np.ndarray) -> float:
    """The temperature (about 0.25-4, on a log grid) that minimises the NLL of `truth` (N,) under `logits` (N, C)."""
    if len(truth) == 0:
        return 1.0
    truth = np.asarray(truth, dtype=np.int64)
    return float(min(TEMPERATURES, key=lambda t: nll(logits, truth, float(t))))


def expected_calibration_error(probabilities: np.ndarray, truth: np.ndarray, bins: int = BINS) -> float:
    """ECE: the gap between confidence (top probability) and accuracy, averaged over equal-width
    confidence bins weighted by how many answers fall in each."""
    if len(truth) == 0:
        return float("nan")
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == np.asarray(truth)
    which = np.minimum((confidence * bins).astype(np.int64), bins - 1)
    gap = 0.0
    for b in range(bins):
        chosen = which == b
        if chosen.any():
            gap += chosen.sum() * abs(float(correct[chosen].mean()) - float(confidence[chosen].mean()))
    return gap / len(truth)


def risk_coverage(probabilities: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """The error rate among the surest answers at each of COVERAGES (share of answers kept), and the area
    under the whole risk-coverage curve (AURC: lower is better; 0 for a model that is never wrong)."""
    if len(truth) == 0:
        return {}
    order = np.argsort(-probabilities.max(axis=1), kind="stable")
    wrong = (probabilities.argmax(axis=1) != np.asarray(truth))[order]
    risk = np.cumsum(wrong) / np.arange(1, len(wrong) + 1)
    out = {f"risk_at_{round(c * 100)}": float(risk[max(int(np.ceil(c * len(risk))) - 1, 0)]) for c in COVERAGES}
    out["aurc"] = float(risk.mean())
    return out


def calibration_report(probabilities: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """ECE and the risk-coverage figures of calibrated probabilities (N, C) against `truth` (N,)."""
    return {"ece": expected_calibration_error(probabilities, truth), **risk_coverage(probabilities, truth)}
