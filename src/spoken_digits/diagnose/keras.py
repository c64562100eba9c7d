"""A Keras 3 callback that runs the doctor inside `model.fit`: a thin adapter over `diagnose.watch`.

Optional: needs keras (pip install 'spoken-digits[keras]', which runs on the torch backend that
spoken-digits already installs). Before training it checks the sample (and the training arrays,
when given) as `spoken-digits diagnose --data` would, and the untrained model's outputs against the
compiled loss; after each epoch it reads the sample's predictions and the logged accuracies.

    doctor = DoctorCallback(x_val[:256], y_val[:256], n_train=len(x_train))  # x_train=, y_train= add checks
    model.fit(x_train, y_train, epochs=20, validation_data=(x_val, y_val), callbacks=[doctor])
    print(doctor.diagnosis.render())
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

from spoken_digits.diagnose.findings import Diagnosis, Finding, Severity
from spoken_digits.diagnose.outputs import LossKind
from spoken_digits.diagnose.watch import Watch

BACKEND_MODULES = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch", "numpy": "numpy"}


def _configured_backend() -> str:
    """The backend keras would pick with KERAS_BACKEND unset: its keras.json, else tensorflow."""
    base = os.path.expanduser("~")
    home = Path(os.environ.get("KERAS_HOME") or Path(base if os.access(base, os.W_OK) else "/tmp") / ".keras")
    try:
        return str(json.loads((home / "keras.json").read_text()).get("backend", "tensorflow"))
    except (OSError, ValueError, AttributeError):
        return "tensorflow"


def _prepare_backend() -> None:
    """Let keras run on torch when its configured backend (tensorflow by default) is not installed.

    Setting KERAS_BACKEND is a side effect of importing this module, taken only where importing
    keras would otherwise fail: the keras extra installs no tensorflow, and torch is always there.
    """
    if "keras" not in sys.modules and not os.environ.get("KERAS_BACKEND"):
        backend = _configured_backend()
        spec = importlib.util.find_spec(BACKEND_MODULES.get(backend, backend))
        if spec is None or spec.origin in (None, "namespace"):  # a bare folder of that name is no backend
            os.environ["KERAS_BACKEND"] = "torch"


_prepare_backend()
try:
    import keras
except ModuleNotFoundError as exc:
    if exc.name == "keras":
        raise ImportError("DoctorCallback needs keras 3: pip install 'spoken-digits[keras]'") from exc
    raise ImportError(
        f"keras could not load its backend ({exc.name} is not installed); keras reads KERAS_BACKEND when it "
        "is first imported: set KERAS_BACKEND=torch before importing keras, or import "
        "spoken_digits.diagnose.keras first"
    ) from exc

ACCURACY_KEYS = ("accuracy", "sparse_categorical_accuracy", "categorical_accuracy", "acc")
SPARSE, CATEGORICAL = "sparse_categorical_crossentropy", "categorical_crossentropy"


def loss_kind(loss: Any) -> LossKind:
    """What the compiled loss expects: logits or probabilities, class indices or one-hot rows."""
    name = loss if isinstance(loss, str) else getattr(loss, "name", None) or getattr(loss, "__name__", "")
    name = str(name).lower()
    config = getattr(loss, "_fn_kwargs", None) or {}
    from_logits = bool(getattr(loss, "from_logits", config.get("from_logits", False)))
    sparse = True if SPARSE in name else (False if CATEGORICAL in name and "binary" not in name else None)
    softmax = from_logits if sparse is not None else None
    return LossKind(applies_softmax=softmax, sparse=sparse, name=name)


def _predict(model: Any, x: np.ndarray) -> np.ndarray:
    """The model's outputs on x, as float64 numpy: one batch where it fits, else `predict`."""
    if len(x) <= 1024:
        return np.asarray(model.predict_on_batch(x), dtype=np.float64)
    return np.asarray(model.predict(x, verbose=0), dtype=np.float64)


class DoctorCallback(keras.callbacks.Callback):  # type: ignore[misc]
    """Collects what `fit` shows and leaves a `Diagnosis` in `.diagnosis` (from the start of training on).

    `x_sample`, `y_sample`: held-out clips (N, T, F) (a trailing channel axis of 1 is fine) and labels as
    the loss takes them. `n_train`: the number of training clips. `x_train`, `y_train` (optional): the
    whole training arrays, for the checks across splits (shared clips, a scaler fitted on other clips).
    `lengths` (valid frames per sample clip) or `masked=True`: the model skips padding (a Masking
    layer), so padding is reported, not blamed.
    """

    def __init__(
        self,
        x_sample: Any,
        y_sample: Any,
        *,
        n_train: int | None = None,
        x_train: Any = None,
        y_train: Any = None,
        lengths: Any = None,
        masked: bool = False,
        verbose: bool = True,
    ) -> None:
        super().__init__()
        self.watch = Watch(  # the training arrays are read block by block; a sample of their rows is kept
            np.asarray(x_sample),
            np.asarray(y_sample),
            n_train=n_train,
            x_train=x_train,
            y_train=y_train,
            lengths=None if lengths is None else np.asarray(lengths),
            masked=masked,
        )
        self.verbose = verbose
        self.diagnosis: Diagnosis | None = None

    def check(self, model: Any = None) -> Diagnosis:
        """The checks before training, on a compiled model (`fit` runs them itself): call it before
        `fit`, or after `fit` stopped with an error before its first epoch (labels that do not fit the
        loss stop it before any callback runs)."""
        model = model if model is not None else self.model
        rate = getattr(getattr(model, "optimizer", None), "learning_rate", None)
        lr = float(keras.ops.convert_to_numpy(rate)) if rate is not None and not callable(rate) else None
        outputs = _predict(model, self.watch.x_sample)
        found = self.watch.begin(outputs, self.watch.y_raw, loss_kind(model.loss), lr=lr)
        self.diagnosis = self.watch.diagnosis()
        errors = [f for f in found if f.severity is Severity.ERROR]
        if self.verbose and errors:
            print("spoken-digits doctor, before training:\n" + Diagnosis(errors).render())
        return self.diagnosis

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self.check(self.model)

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        if logs and "loss" in logs:  # the running mean over the epoch: a spike still shows
            self.watch.step(float(logs["loss"]))

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        logs = logs or {}
        key = next((k for k in ACCURACY_KEYS if k in logs), None)
        self.watch.epoch(
            _predict(self.model, self.watch.x_sample),
            train_accuracy=float(logs[key]) if key else None,
            train_loss=float(logs["loss"]) if "loss" in logs else None,
            val_accuracy=float(logs["val_" + key]) if key and "val_" + key in logs else None,
        )

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        self.diagnosis = self.watch.diagnosis()
        if self.verbose and not self.diagnosis.healthy:
            print("spoken-digits doctor:\n" + self.diagnosis.render())

    @property
    def findings(self) -> list[Finding]:
        """The findings so far (empty before training)."""
        return self.diagnosis.findings if self.diagnosis else []
