"""A Keras 3 callback that runs the doctor's training-dynamics checks inside `model.fit`.

Optional: needs `keras` (pip install 'spoken-digits[keras]'). Watches a small sample of inputs:
outputs at the start (probabilities fed to a from_logits loss; loss at initialisation), and after
every epoch (the share of the commonest prediction); at the end it reads the accuracy history.

    doctor = DoctorCallback(x_val[:256], y_val[:256], n_train=len(x_train))
    model.fit(x_train, y_train, epochs=20, callbacks=[doctor])
    print(doctor.diagnosis.render())
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from spoken_digits.diagnose.findings import Diagnosis, Finding, Severity
from spoken_digits.diagnose.history import constant_prediction

try:
    import keras
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError("DoctorCallback needs keras 3: pip install 'spoken-digits[keras]'") from exc

ACCURACY_KEYS = ("accuracy", "sparse_categorical_accuracy", "acc")


class DoctorCallback(keras.callbacks.Callback):  # type: ignore[misc]
    """Collects what `fit` shows and leaves a `Diagnosis` in `.diagnosis` when training ends."""

    def __init__(self, x_sample: Any, y_sample: Any, *, n_train: int | None = None, verbose: bool = True) -> None:
        super().__init__()
        self.x_sample, self.y_sample = x_sample, np.asarray(y_sample).astype(int)
        self.n_train, self.verbose = n_train, verbose
        self.findings: list[Finding] = []
        self.shares: list[float] = []
        self.accuracies: list[float] = []
        self.diagnosis: Diagnosis | None = None

    def _outputs(self) -> np.ndarray:
        return np.asarray(self.model.predict(self.x_sample, verbose=0), dtype=np.float64)

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        outputs = self._outputs()
        k = outputs.shape[1]
        probabilities = bool(outputs.min() >= 0 and outputs.max() <= 1 and np.allclose(outputs.sum(1), 1, atol=1e-3))
        from_logits = bool(getattr(self.model.loss, "from_logits", False))
        if probabilities and from_logits:
            self.findings.append(
                Finding(
                    "double_softmax",
                    Severity.ERROR,
                    "the last layer applies softmax and the loss has from_logits=True, so softmax runs twice",
                    {"from_logits": True, "output_row_sum": float(outputs.sum(1).mean())},
                    "keep the softmax and use from_logits=False (Keras' default), or drop it and keep from_logits=True",
                )
            )
        logits = outputs if not probabilities else np.log(np.clip(outputs, 1e-12, 1))
        shifted = logits - logits.max(1, keepdims=True)
        log_p = shifted - np.log(np.exp(shifted).sum(1, keepdims=True))
        loss = float(-log_p[np.arange(len(log_p)), self.y_sample].mean())
        if abs(loss - math.log(k)) > max(1.0, 0.5 * math.log(k)):
            self.findings.append(
                Finding(
                    "init_loss_off",
                    Severity.WARNING,
                    f"the loss at initialisation is {loss:.3g}, not ln({k}) = {math.log(k):.2f}",
                    {"first_loss": loss, "expected": math.log(k)},
                    "scale the inputs (log, standardise) and keep the default initialisation of the last layer",
                )
            )

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        logs = logs or {}
        key = next((k for k in ACCURACY_KEYS if k in logs), None)
        if key is not None:
            self.accuracies.append(float(logs[key]))
        predicted = self._outputs().argmax(1)
        self.shares.append(float(np.bincount(predicted).max()) / len(predicted))

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        findings = list(self.findings)
        if self.shares and self.shares[-1] >= 0.6:
            findings.append(
                Finding(
                    "prediction_collapse",
                    Severity.ERROR if self.shares[-1] >= 0.9 else Severity.WARNING,
                    f"after {len(self.shares)} epochs, {self.shares[-1]:.0%} of the sample's predictions are one class",
                    {"most_common_share_per_epoch": self.shares},
                    "a symptom: check the inputs vary and are log-scaled, the labels match, and the learning rate",
                )
            )
        if self.n_train and len(self.accuracies) >= 3:
            history = [f for f in constant_prediction(self.accuracies, self.n_train) if f.code not in _codes(findings)]
            findings += history
        self.diagnosis = Diagnosis(findings, 0.0, {"epochs": len(self.shares), "n_train": self.n_train})
        if self.verbose and not self.diagnosis.healthy:
            print("spoken-digits doctor:\n" + self.diagnosis.render())


def _codes(findings: list[Finding]) -> set[str]:
    return {f.code for f in findings}
