"""Training dynamics: a monitor for any PyTorch fit loop, and a short instrumented run of our own.

`TrainingMonitor` watches steps of the user's loop (outputs, targets, loss, gradients) and turns
what it saw into findings; `instrumented_run` drives it on a fresh model, adds a one-batch
overfitting test and a learning-rate range test, and decides whether the learning rate is at fault.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from spoken_digits.diagnose.findings import Finding, Severity
from spoken_digits.frontend.batches import FeatureSet
from spoken_digits.models.nets import training_targets

ERROR, WARNING, INFO = Severity.ERROR, Severity.WARNING, Severity.INFO


def looks_like_probabilities(outputs: torch.Tensor) -> bool:
    """Rows in [0, 1] summing to 1: a softmax was applied before a loss that applies its own."""
    outputs = outputs.detach().float()
    return bool(outputs.min() >= 0 and outputs.max() <= 1 and torch.allclose(outputs.sum(1), torch.ones(1), atol=1e-3))


class TrainingMonitor:
    """Watches a classifier's training steps; call `observe` after `loss.backward()`, then `findings()`.

    Works with any PyTorch loop whose loss applies softmax itself (nn.CrossEntropyLoss). It keeps
    only small summaries: the first step's outputs and gradients, per-step losses, prediction counts.
    """

    def __init__(self, n_classes: int) -> None:
        self.n_classes = n_classes
        self.losses: list[float] = []
        self.first: dict[str, object] | None = None
        self.predictions: Counter[int] = Counter()  # over the last `window` steps
        self.recent: list[torch.Tensor] = []

    def observe(self, outputs: torch.Tensor, targets: torch.Tensor, loss: torch.Tensor, model: nn.Module) -> None:
        """Record one training step (outputs before the loss, integer targets, the loss, the model)."""
        self.losses.append(float(loss.detach()))
        predicted = outputs.detach().argmax(1).cpu()
        self.recent = [*self.recent[-19:], predicted]
        if self.first is None:
            self.first = {
                "probabilities": looks_like_probabilities(outputs),
                "loss": float(loss.detach()),
                "logit_std": float(outputs.detach().float().std()),
                "grads": _gradient_ratios(model),
            }

    def findings(self) -> list[Finding]:
        """What the observed steps say (nothing before the first step)."""
        if self.first is None:
            return []
        out: list[Finding] = []
        chance_loss = math.log(self.n_classes)
        if self.first["probabilities"]:
            floor = -math.log(math.e / (math.e + self.n_classes - 1))
            out.append(
                Finding(
                    "double_softmax",
                    ERROR,
                    "the model outputs probabilities (rows sum to 1) and the loss applies softmax again: "
                    f"gradients shrink and the loss cannot go below {floor:.2f}",
                    {"loss_floor": floor, "first_loss": self.first["loss"]},
                    "drop the final softmax and train on logits (nn.CrossEntropyLoss applies log-softmax), or "
                    "in Keras keep softmax with from_logits=False; apply softmax only when reporting",
                )
            )
        first_loss = float(self.first["loss"])  # type: ignore[arg-type]
        if not math.isfinite(first_loss) or abs(first_loss - chance_loss) > max(1.0, 0.5 * chance_loss):
            out.append(
                Finding(
                    "init_loss_off",
                    WARNING,
                    f"the loss at initialisation is {first_loss:.3g}, not ln({self.n_classes}) = {chance_loss:.2f}: "
                    "the untrained model is confidently wrong",
                    {"first_loss": first_loss, "expected": chance_loss, "logit_std": self.first["logit_std"]},
                    "scale the inputs (log, standardise) and keep the default initialisation of the last layer",
                )
            )
        grads: dict[str, float] = self.first["grads"]  # type: ignore[assignment]
        if len(grads) >= 2:
            names = list(grads)
            ratio = grads[names[0]] / max(grads[names[-1]], 1e-30)
            if ratio < 1e-3:
                out.append(
                    Finding(
                        "vanishing_gradients",
                        WARNING,
                        f"the input layer's relative gradient is {ratio:.1e} of the output layer's: it barely learns",
                        {"relative_grad_norms": grads, "ratio": ratio},
                        "scale inputs to unit range, use a gated cell (LSTM/GRU) or shorter sequences",
                    )
                )
        bad = [i for i, v in enumerate(self.losses) if not math.isfinite(v)]
        if bad:
            out.append(
                Finding(
                    "lr_too_high",
                    ERROR,
                    f"the loss became {self.losses[bad[0]]} at step {bad[0] + 1}",
                    {"step": bad[0] + 1},
                    "lower the learning rate (Adam: 1e-3 or below) and check the inputs for NaN/Inf",
                )
            )
        if self.recent:
            share = self.most_common_share()
            if share >= 0.6 and len(self.losses) >= 20:
                out.append(
                    Finding(
                        "prediction_collapse",
                        ERROR if share >= 0.9 else WARNING,
                        f"{share:.0%} of recent training predictions are one class: the model has collapsed "
                        "to a (near) constant answer",
                        {"most_common_share": share, "recent_loss": float(np.mean(self.losses[-20:]))},
                        "this is a symptom; see the findings above it (input scale, learning rate, labels)",
                    )
                )
        return out

    def most_common_share(self) -> float:
        predicted = torch.cat(self.recent)
        return float(torch.bincount(predicted).max()) / len(predicted)


def _gradient_ratios(model: nn.Module) -> dict[str, float]:
    """|grad| / |weight| per weight matrix, in the order layers are defined (input first)."""
    ratios = {}
    for name, p in model.named_parameters():
        if p.grad is not None and p.dim() >= 2:
            ratios[name] = float(p.grad.norm() / (p.detach().norm() + 1e-12))
    return ratios


def input_saturation(model: nn.Module, x: torch.Tensor) -> float | None:
    """Share of the first recurrent layer's input pre-activations beyond +-5, where gates saturate."""
    rnn = next((m for m in model.modules() if isinstance(m, (nn.LSTM, nn.GRU))), None)
    if rnn is None:
        return None
    with torch.no_grad():
        weight, bias = rnn.weight_ih_l0, rnn.bias_ih_l0
        assert isinstance(weight, torch.Tensor) and isinstance(bias, torch.Tensor)
        pre = F.linear(x.float(), weight, bias)
    return float((pre.abs() > 5).float().mean())


Factory = Callable[[], nn.Module]


def _train_steps(
    model: nn.Module,
    data: FeatureSet,
    *,
    lr: float,
    eps: float,
    batch: int,
    steps: int,
    seed: int,
    monitor: TrainingMonitor | None = None,
    lrs: np.ndarray | None = None,
) -> list[float]:
    """Adam for `steps` mini-batches drawn in a seeded order; `lrs` sets a per-step learning rate."""
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, eps=eps)
    losses: list[float] = []
    model.train()
    while len(losses) < steps:
        for b in data.batches(batch, generator):
            if len(losses) == steps:
                break
            if lrs is not None:
                for group in optimizer.param_groups:
                    group["lr"] = float(lrs[len(losses)])
            outputs = model(b.x, b.lengths)
            targets = training_targets(model, b.y)
            loss = F.cross_entropy(outputs, targets)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if monitor is not None:
                monitor.observe(outputs, targets, loss, model)
            optimizer.step()
            losses.append(float(loss.detach()))
            if not math.isfinite(losses[-1]):
                return losses
    return losses


def lr_range_test(factory: Factory, data: FeatureSet, *, eps: float, batch: int, seed: int) -> tuple[float, float]:
    """Raise Adam's learning rate from 1e-6 to 1 over 100 steps; returns (lr of the lowest smoothed
    loss, lr where the loss exceeds twice its start or goes non-finite, or inf if it never does)."""
    torch.manual_seed(seed)
    lrs = np.logspace(-6, 0, 100)
    losses = _train_steps(factory(), data, lr=1e-6, eps=eps, batch=batch, steps=len(lrs), seed=seed, lrs=lrs)
    smooth, value = [], losses[0]
    for loss in losses:
        value = 0.8 * value + 0.2 * loss if math.isfinite(loss) else float("inf")
        smooth.append(value)
    best = int(np.argmin(smooth))
    diverged = next((i for i, v in enumerate(smooth) if i > best and v > 2 * smooth[0]), None)
    return float(lrs[best]), float(lrs[diverged]) if diverged is not None else float("inf")


def instrumented_run(
    factory: Factory,
    train: FeatureSet,
    val: FeatureSet,
    *,
    lr: float,
    eps: float = 1e-8,
    batch: int = 32,
    n_classes: int,
    seed: int = 0,
    steps: int = 150,
    counterfactual: bool = True,
) -> list[Finding]:
    """A short run at the user's settings, watched by `TrainingMonitor`, plus the one-batch and LR tests.

    If the run does not learn and `counterfactual` is set, it is repeated at other learning rates to
    tell whether the rate is at fault (skip it when the data checks already found the cause).
    """
    monitor = TrainingMonitor(n_classes)
    torch.manual_seed(seed)
    saturation = input_saturation(factory(), train.x[:256])

    def short_run(rate: float, watch: TrainingMonitor | None = None) -> tuple[float, float, list[float]]:
        """(validation accuracy, share of the commonest prediction, losses) after `steps` steps at `rate`."""
        torch.manual_seed(seed)
        model = factory()
        losses = _train_steps(model, train, lr=rate, eps=eps, batch=batch, steps=steps, seed=seed, monitor=watch)
        model.eval()
        with torch.no_grad():
            predicted = torch.cat([model(b.x, b.lengths).argmax(1) for b in val.batches(512)])
        return (
            float((predicted == val.y).float().mean()),
            float(torch.bincount(predicted).max()) / len(predicted),
            losses,
        )

    val_accuracy, share, losses = short_run(lr, monitor)
    findings = [f for f in monitor.findings() if f.code != "lr_too_high"]  # decided below, with a counterfactual
    chance = float(torch.bincount(val.y).max()) / len(val.y)
    learned = val_accuracy > chance + 0.1 and all(math.isfinite(v) for v in losses)
    best_lr, diverge_lr = lr_range_test(factory, train, eps=eps, batch=batch, seed=seed)
    evidence = {"lr": lr, "val_accuracy": val_accuracy, "steps": len(losses), "range_test_lowest_loss_lr": best_lr}
    evidence["range_test_diverges_lr"] = diverge_lr
    if not learned and counterfactual:
        # Would the same run learn at a smaller (or larger) learning rate? A direct counterfactual.
        for factor in (0.1, 0.01, 10.0):
            other, _, _ = short_run(lr * factor)
            if other > chance + 0.1 and other > val_accuracy + 0.1:
                code, too = ("lr_too_high", "high") if factor < 1 else ("lr_too_low", "low")
                findings.append(
                    Finding(
                        code,
                        ERROR if factor < 1 else WARNING,
                        f"the learning rate {lr:g} is too {too}: after {len(losses)} steps validation accuracy "
                        f"is {val_accuracy:.2f}, and the same run at {lr * factor:g} reaches {other:.2f}",
                        evidence | {"other_lr": lr * factor, "other_val_accuracy": other},
                        f"use a learning rate near {lr * factor:g}; the range test's loss is lowest near "
                        f"{best_lr:.0e}, and a tenth of that is a safe start",
                    )
                )
                break
    if not any(f.code.startswith("lr_too") for f in findings):
        findings.append(
            Finding(
                "lr_range",
                INFO,
                f"learning rate {lr:g}; the range test's loss is lowest near {best_lr:.0e}",
                evidence,
                "",
            )
        )
    if share >= 0.6:
        findings = [f for f in findings if f.code != "prediction_collapse"]
        findings.append(
            Finding(
                "prediction_collapse",
                ERROR if not learned else WARNING,
                f"after {len(losses)} steps, {share:.0%} of validation predictions are one class "
                f"(validation accuracy {val_accuracy:.2f})",
                {"most_common_share": share, "val_accuracy": val_accuracy},
                "a symptom: the model found no signal and predicts the most frequent class; see the findings above it",
            )
        )
    if saturation is not None and saturation > 0.3:
        findings.append(
            Finding(
                "saturated_units",
                WARNING,
                f"{saturation:.0%} of the first recurrent layer's input pre-activations are beyond +-5: "
                "its gates saturate",
                {"share_beyond_5": saturation},
                "scale the inputs: log-compress power and standardise each band",
            )
        )
    findings += _overfit_one_batch(factory, train, eps=eps, seed=seed)
    return findings


def _overfit_one_batch(factory: Factory, data: FeatureSet, *, eps: float, seed: int) -> list[Finding]:
    """A working model and pipeline memorise 32 clips within 150 Adam steps at lr 1e-3."""
    torch.manual_seed(seed)
    model = factory()
    one = data.subset(torch.arange(min(32, len(data))))
    _train_steps(model, one, lr=1e-3, eps=eps, batch=len(one), steps=150, seed=seed)
    model.eval()
    with torch.no_grad():
        accuracy = float((model(one.x, one.lengths).argmax(1) == one.y).float().mean())
    if accuracy >= 0.9:
        return []
    return [
        Finding(
            "cannot_overfit_batch",
            ERROR,
            f"the model cannot memorise one batch of {len(one)} clips: {accuracy:.0%} right after 150 steps",
            {"batch_accuracy": accuracy},
            "a model that cannot overfit one batch has a bug between input and loss: check inputs vary, "
            "labels match, outputs are logits and gradients reach the first layer",
        )
    ]
