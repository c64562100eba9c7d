"""The doctor in a plain PyTorch loop: two calls in the user's own loop, a thin adapter over `diagnose.watch`.

    doctor = Doctor(x_val[:256], y_val[:256], n_train=len(x_train))  # x_train=, y_train= add checks
    for epoch in range(20):
        for xb, yb in loader:
            logits = model(xb); loss = criterion(logits, yb)
            doctor.on_batch(logits, yb, loss)
            optimizer.zero_grad(); loss.backward(); optimizer.step()
        doctor.on_epoch(model)
    print(doctor.diagnosis().render())

The first `on_batch` reads the untrained model's outputs and the loss the loop computed on them (so
the doctor sees the user's real loss, whatever it is); each `on_epoch` runs the model on the sample.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn

from spoken_digits.diagnose.findings import Diagnosis, Severity
from spoken_digits.diagnose.outputs import LossKind, class_indices
from spoken_digits.diagnose.watch import Watch


def _numpy(value: Any) -> np.ndarray:
    """A tensor on any device, in any dtype (bfloat16 has no numpy type: floats become float32), as numpy."""
    if isinstance(value, torch.Tensor):
        value = value.detach()
        return (value.float() if value.is_floating_point() else value).cpu().numpy()
    return np.asarray(value)


class Doctor:
    """Watches a PyTorch training loop; `diagnosis()` ranks what it saw, root cause first.

    `x_sample`, `y_sample`: held-out clips (N, T, F) and their class indices. `n_train`: training clips.
    `x_train`, `y_train` (optional): the whole training arrays, for the checks across splits (read block
    by block on their own device; the doctor keeps a sample of their rows, never a copy of all of them).
    `lengths` (valid frames per sample clip) or `masked=True`: the model skips padding
    (pack_padded_sequence, or a mask), so padding is reported, not blamed.
    `optimizer` (optional): read for its learning rate, as evidence. `verbose`: print problems when
    they are found before training and with `diagnosis()`.
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
        optimizer: torch.optim.Optimizer | None = None,
        batch_size: int = 256,
        verbose: bool = True,
    ) -> None:
        steps = None if lengths is None else _numpy(lengths)
        self.watch = Watch(  # the training arrays stay where they are: the watch reads them block by block
            _numpy(x_sample),
            _numpy(y_sample),
            n_train=n_train,
            x_train=x_train,
            y_train=y_train,
            lengths=steps,
            masked=masked,
            to_numpy=_numpy,
        )
        self.x_sample = torch.as_tensor(self.watch.x_sample, dtype=torch.float32)
        self.optimizer, self.batch_size, self.verbose = optimizer, batch_size, verbose
        self.started = False
        self._correct = self._seen = 0
        self._loss_sum = 0.0
        self._batches = 0

    def on_batch(self, outputs: torch.Tensor, targets: torch.Tensor, loss: torch.Tensor | float) -> None:
        """After computing one batch's loss: the model's outputs (B, K), the targets given to the loss."""
        value = float(loss.detach()) if isinstance(loss, torch.Tensor) else float(loss)
        if not self.started:
            self.started = True
            lr = float(self.optimizer.param_groups[0]["lr"]) if self.optimizer is not None else None
            found = self.watch.begin(_numpy(outputs), _numpy(targets), LossKind(), reported_loss=value, lr=lr)
            errors = [f for f in found if f.severity is Severity.ERROR]
            if self.verbose and errors:
                print("spoken-digits doctor, at the first batch:\n" + Diagnosis(errors).render())
        self.watch.step(value)
        labels = class_indices(_numpy(targets))
        self._correct += int((_numpy(outputs.detach().argmax(1)) == labels).sum())
        self._seen += len(outputs)
        self._loss_sum += value
        self._batches += 1

    def on_epoch(self, model: Callable[[torch.Tensor], torch.Tensor], *, val_accuracy: float | None = None) -> None:
        """At the end of an epoch: `model` maps a batch of the sample (B, T, F) to outputs (B, K)
        (wrap a model that takes more, e.g. `lambda x: model(x, lengths)`)."""
        module = model if isinstance(model, nn.Module) else None
        was_training = module.training if module is not None else False
        if module is not None:
            module.eval()
        parameter = next(module.parameters(), None) if module is not None else None
        sample = self.x_sample if parameter is None else self.x_sample.to(parameter.device)
        with torch.no_grad():
            outputs = torch.cat([model(chunk) for chunk in sample.split(self.batch_size)])
        if module is not None:
            module.train(was_training)
        self.watch.epoch(
            _numpy(outputs).astype(np.float64),
            train_accuracy=self._correct / self._seen if self._seen else None,
            train_loss=self._loss_sum / self._batches if self._batches else None,
            val_accuracy=val_accuracy,
        )
        self._correct = self._seen = self._batches = 0
        self._loss_sum = 0.0

    def diagnosis(self) -> Diagnosis:
        """The ranked findings so far (printed when `verbose` and something rose above info)."""
        result = self.watch.diagnosis()
        if self.verbose and not result.healthy:
            print("spoken-digits doctor:\n" + result.render())
        return result
