"""The doctor inside a user's own training: the framework-free core behind the Keras callback
(`diagnose.keras`) and the PyTorch hooks (`diagnose.pytorch`), so both reach the same verdicts.

Given a held-out sample (x, y), and optionally the training arrays, it runs the checks that
`spoken-digits diagnose --data` runs on the same arrays, then adds what only training shows: the
outputs and loss at initialisation, training against validation accuracy epoch by epoch, and the
sample's predictions (one class for everything; right answers under other class numbers).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from spoken_digits.diagnose.data import too_few
from spoken_digits.diagnose.examine import ToNumpy, examine, features_view, normalisation_leak, split_leak
from spoken_digits.diagnose.findings import Diagnosis, Finding, Severity
from spoken_digits.diagnose.history import constant_prediction
from spoken_digits.diagnose.outputs import LossKind, class_indices, label_form, label_order, output_checks
from spoken_digits.errors import ParameterError

ERROR, WARNING = Severity.ERROR, Severity.WARNING
MAX_TRAIN_EXAMINED = 600  # the data checks need a sample of the training set, not all of it
SEED = 0  # for the training subset and the probe's folds: one verdict per set of arrays
# Codes of the linear probe, whose verdict is the larger array's when the sample and the training set differ.
PROBE_CODES = ("probe", "labels_decoupled", "labels_misaligned")


@dataclass
class Epoch:
    """One epoch as the watch saw it (None: not reported)."""

    train_accuracy: float | None
    train_loss: float | None
    val_accuracy: float | None
    sample_accuracy: float | None
    top_share: float | None  # share of the sample's predictions that are the commonest class


class Watch:
    """Collects what a training run shows and turns it into a `Diagnosis`.

    An adapter calls `begin` once with the untrained model's outputs, `step` with each batch's loss
    (optional), `epoch` after each epoch, and `diagnosis` at the end. `lengths` (valid frames per sample
    clip) or `masked=True` say the model skips padding (a Keras Masking layer, pack_padded_sequence), so
    padding is reported, not blamed.

    Of the training arrays (numpy, or anything `to_numpy` converts, such as tensors on a GPU) the watch
    keeps a seeded sample of MAX_TRAIN_EXAMINED rows; the checks that need every training clip (shared
    clips, the scaler's statistics) read them here, block by block, never copying the whole array.
    """

    def __init__(
        self,
        x_sample: np.ndarray,
        y_sample: np.ndarray,
        *,
        n_train: int | None = None,
        x_train: Any = None,
        y_train: Any = None,
        lengths: np.ndarray | None = None,
        masked: bool = False,
        to_numpy: ToNumpy = np.asarray,
    ) -> None:
        self.x_sample, self.y_raw = np.asarray(x_sample), np.asarray(y_sample)
        if len(self.x_sample) != len(self.y_raw) or len(self.x_sample) < 10:
            raise ParameterError(
                f"need a sample of at least 10 clips with one label each; got x {self.x_sample.shape} "
                f"and y {self.y_raw.shape}"
            )
        if (x_train is None) != (y_train is None):
            raise ParameterError("pass the training arrays as a pair: x_train and y_train")
        self.n_train = n_train or (len(x_train) if x_train is not None else None)
        self.y = class_indices(self.y_raw)
        self.lengths = None if lengths is None else np.asarray(lengths, dtype=np.int64).reshape(-1)
        if self.lengths is not None and len(self.lengths) != len(self.x_sample):
            raise ParameterError(f"lengths has {len(self.lengths)} values for {len(self.x_sample)} sample clips")
        self.masked = masked or self.lengths is not None
        self.x_train: np.ndarray | None = None  # a seeded sample of the training rows, at most MAX_TRAIN_EXAMINED
        self.y_train: np.ndarray | None = None
        self._leaks: list[Finding] = []  # shared clips, from every training row
        self._scaler: list[Finding] = []  # a scaler fitted elsewhere, from every training row
        if x_train is not None:
            self._read_training(x_train, y_train, to_numpy)
        self.n_classes = 0
        self.first: list[Finding] = []
        self.init_loss: float | None = None
        self.lr: float | None = None
        self.bad_step: tuple[int, float] | None = None
        self.peak: tuple[int, float] = (0, -math.inf)  # the highest finite loss of a step, and its step
        self._data: list[Finding] | None = None
        self.steps = 0
        self.epochs: list[Epoch] = []
        self.predicted: np.ndarray | None = None

    def _read_training(self, x_train: Any, y_train: Any, to_numpy: ToNumpy) -> None:
        """Keep a seeded sample of the training arrays (the data checks need no more); run the checks that
        need every training clip now, block by block."""
        if not hasattr(x_train, "shape"):  # a list of clips: one array
            x_train = np.asarray(x_train)
        pick = np.random.default_rng(SEED).permutation(len(x_train))[:MAX_TRAIN_EXAMINED]
        pick.sort()
        rows = pick.tolist()  # indexes numpy arrays and tensors alike
        self.x_train, self.y_train = np.asarray(to_numpy(x_train[rows])), np.asarray(to_numpy(y_train))[pick]
        train, sample = features_view(x_train), features_view(self.x_sample)
        if train is None:
            return
        if sample is not None:
            self._leaks = split_leak(train, sample, to_numpy=to_numpy)
        if self.n_train == len(x_train):  # a subset is never exactly standardised
            self._scaler = normalisation_leak(train, to_numpy=to_numpy)

    # ---- before training ----

    def begin(
        self,
        outputs: np.ndarray,
        targets: np.ndarray,
        kind: LossKind,
        *,
        reported_loss: float | None = None,
        lr: float | None = None,
    ) -> list[Finding]:
        """Outputs (n, K) of the untrained model for `targets` (the labels as the loss receives them);
        `reported_loss` is the loss the user's code computed on them, where known. Runs the data checks
        too, and returns everything found so far (an adapter prints errors before training crashes)."""
        outputs = np.asarray(outputs, dtype=np.float64)
        self.n_classes, self.lr = int(outputs.shape[1]), lr
        self.first = label_form(np.asarray(targets), self.n_classes, kind)
        checked, self.init_loss = output_checks(outputs, np.asarray(targets), self.n_classes, kind, reported_loss)
        self.first += checked
        if self._data is None:  # the arrays do not change between calls
            self._data = self._data_findings()
        self.first += self._data
        return list(self.first)

    def _data_findings(self) -> list[Finding]:
        findings: list[Finding] = []
        k = self.n_classes or None
        sample = features_view(self.x_sample)
        if sample is not None:
            examined = examine(sample, self.y, lengths=self.lengths, masked=self.masked, n_classes=k, seed=SEED)
            findings = examined.findings
        if self.x_train is None or self.y_train is None:
            return findings
        train = features_view(self.x_train)
        if train is None:
            return findings
        trained = examine(train, class_indices(self.y_train), masked=self.masked, n_classes=k, seed=SEED)
        findings = _merge(findings, trained.findings, train_decides_probe=len(train) > len(self.y))
        findings += self._leaks
        if not trained.stopped:
            findings += self._scaler
        return findings

    # ---- during training ----

    def step(self, loss: float) -> None:
        """One training batch's loss: the first non-finite one is kept as evidence."""
        self.steps += 1
        if self.bad_step is None and not math.isfinite(loss):
            self.bad_step = (self.steps, loss)
        elif math.isfinite(loss) and loss > self.peak[1]:
            self.peak = (self.steps, loss)

    def epoch(
        self,
        outputs: np.ndarray | None,
        *,
        train_accuracy: float | None = None,
        train_loss: float | None = None,
        val_accuracy: float | None = None,
    ) -> None:
        """The end of an epoch: the model's outputs (n, K) on the sample, and what the loop measured."""
        accuracy = share = None
        if outputs is not None:
            self.predicted = np.asarray(outputs).argmax(axis=1)
            accuracy = float((self.predicted == self.y).mean())
            share = float(np.bincount(self.predicted).max()) / len(self.predicted)
        if train_loss is not None and not math.isfinite(train_loss) and self.bad_step is None:
            self.bad_step = (self.steps, train_loss)
        self.epochs.append(Epoch(train_accuracy, train_loss, val_accuracy, accuracy, share))

    # ---- after training ----

    def _indices_ok(self) -> bool:
        """The sample's labels are class indices the outputs can match (else the data checks said so)."""
        y = self.y
        return bool(np.issubdtype(y.dtype, np.number) and len(y) and y.min() >= 0 and y.max() < self.n_classes)

    def diagnosis(self) -> Diagnosis:
        """Everything seen so far, ranked root cause first."""
        findings = list(self.first)
        findings += self._divergence()
        if self._indices_ok():
            small = too_few(self.y, "label_order") if self.predicted is not None else []
            findings += small or label_order(self.y.astype(int), self.predicted, self.n_classes)
            findings += self._gap()
        findings += self._collapse()
        context = {"epochs": len(self.epochs), "n_train": self.n_train, "n_sample": len(self.y)}
        return Diagnosis(findings, 0.0, context | {"training_arrays": self.x_train is not None})

    def _series(self, name: str) -> list[float]:
        values = [getattr(e, name) for e in self.epochs]
        return [float(v) for v in values if v is not None]

    def _divergence(self) -> list[Finding]:
        """A non-finite loss, or a training loss that ends far above where it started."""
        losses = self._series("train_loss")
        start = self.init_loss if self.init_loss is not None else math.log(max(self.n_classes, 2))
        evidence: dict[str, object] = {"lr": self.lr, "initial_loss": start, "epoch_losses": losses[:20]}
        evidence |= {"highest_step_loss": self.peak[1], "at_step": self.peak[0]}
        if self.bad_step is not None:
            title = f"the loss became {self.bad_step[1]} at step {self.bad_step[0]}"
        elif self.peak[1] > max(4 * start, start + 5):
            title = f"the loss jumped from {start:.3g} to {self.peak[1]:.4g} at step {self.peak[0]}"
        elif losses and losses[-1] > start + max(1.0, 0.5 * start) and self._train_at_chance():
            title = f"the training loss rose from {start:.3g} to {losses[-1]:.3g} while accuracy stayed at chance"
        else:
            return []
        rate = f" ({self.lr:g})" if self.lr is not None else ""
        return [
            Finding(
                "lr_too_high",
                ERROR,
                f"{title}: the learning rate{rate} is too high, each step overshoots",
                evidence,
                "lower the learning rate (Adam: 1e-3 or below) and check the inputs for NaN/Inf",
            )
        ]

    def _train_at_chance(self) -> bool:
        accuracies = self._series("train_accuracy")
        return not accuracies or accuracies[-1] <= 1.0 / max(self.n_classes, 2) + 0.05

    def _gap(self) -> list[Finding]:
        """Training accuracy well ahead of a validation accuracy that stays at chance, over at least
        5 epochs: memorising, nothing transfers (a slow start has both low, and both rising)."""
        train = self._series("train_accuracy")
        val = [e.val_accuracy if e.val_accuracy is not None else e.sample_accuracy for e in self.epochs]
        held = [float(v) for v in val if v is not None]
        if len(train) < 5 or len(held) < 5 or not self.n_classes:
            return []
        chance = 1.0 / self.n_classes
        sample_chance = float(np.bincount(self.y.astype(int)).max()) / len(self.y)
        margin_val = max(0.05, 3 * math.sqrt(sample_chance * (1 - sample_chance) / len(self.y)))
        if not (train[-1] - max(held) >= 0.15 and max(held) <= sample_chance + margin_val):
            return []
        return [
            Finding(
                "train_val_gap",
                ERROR,
                f"training accuracy rose to {train[-1]:.2f} while validation stayed at chance "
                f"({held[-1]:.2f}, best {max(held):.2f}): the model memorises training clips and nothing transfers",
                {"train_accuracy": train[-20:], "val_accuracy": held[-20:], "chance": chance},
                "the labels do not go with the features: build features and labels from one list of files, in "
                "one order (os.listdir order differs between file systems), and use one class numbering in "
                "every split",
            )
        ]

    def _collapse(self) -> list[Finding]:
        """One class for (nearly) every clip: in the sample's predictions (well beyond the sample's own
        commonest label), or in the accuracy history."""
        shares = [e.top_share for e in self.epochs if e.top_share is not None]
        label_share = float(np.unique(self.y, return_counts=True)[1].max()) / len(self.y)
        findings = []
        if shares and shares[-1] >= max(0.6, label_share + 0.3):
            findings.append(
                Finding(
                    "prediction_collapse",
                    ERROR if shares[-1] >= max(0.9, label_share + 0.3) else WARNING,
                    f"after {len(self.epochs)} epochs, {shares[-1]:.0%} of the sample's predictions are one class "
                    f"(its commonest label is {label_share:.0%} of it)",
                    {"most_common_share_per_epoch": shares[-20:], "most_common_label_share": label_share},
                    "a symptom: check the inputs vary and are log-scaled, the labels match, and the learning rate",
                )
            )
        train = self._series("train_accuracy")
        if self.n_train and len(train) >= 3 and not findings:
            findings = constant_prediction(train, self.n_train, n_classes=max(self.n_classes, 2))
        return findings


def _merge(sample: list[Finding], train: list[Finding], *, train_decides_probe: bool) -> list[Finding]:
    """The sample's and the training set's findings, one per code: the probe's verdict from the larger
    array (it is a statistic, surer on more clips), any other code at its worse severity."""
    probe_from_train = train_decides_probe and any(f.code in PROBE_CODES for f in train)
    found = {f.code: f for f in sample if not (probe_from_train and f.code in PROBE_CODES)}
    for f in train:
        if f.code in PROBE_CODES and not probe_from_train:
            continue
        if f.code not in found or f.severity > found[f.code].severity:
            found[f.code] = Finding(f.code, f.severity, f.title, {**f.evidence, "on": "training"}, f.fix)
    return list(found.values())
