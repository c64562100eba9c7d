"""The training loop: Adam, cross-entropy, early stopping on a validation slice, best weights kept.

Data lives in memory as tensors (FSDD's features fit in a few MB), so an epoch is a shuffled pass
over index batches: no DataLoader workers, no per-clip Python on the hot path. Datasets too large for
memory come as a StoreSet (training/corpus.py) with the same `batches`, read from disk per batch.
"""

from __future__ import annotations

import copy
import math
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol, Self

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from spoken_digits.config import Optimizer, Schedule, TrainConfig
from spoken_digits.device import check_device
from spoken_digits.frontend.batches import FeatureSet
from spoken_digits.models.nets import training_targets


class Batches(Protocol):
    """What `fit` trains on and `predict_logits` reads: a FeatureSet in memory, or clips streamed from disk."""

    @property
    def y(self) -> torch.Tensor: ...

    def __len__(self) -> int: ...

    def subset(self, index: np.ndarray | torch.Tensor) -> Self: ...

    def batches(
        self, size: int, generator: torch.Generator | None = None, *, rank: int = 0, world: int = 1
    ) -> Iterator[FeatureSet]: ...

    def to(self, device: torch.device | str) -> Self: ...


@dataclass
class FitResult:
    """What `fit` leaves: the best weights, when they were seen, and the per-epoch log."""

    best_state: dict[str, torch.Tensor]
    best_epoch: int
    epochs_run: int
    history: list[dict[str, float]] = field(default_factory=list)


def rank_and_world() -> tuple[int, int]:
    """This process's rank and the number of processes (0, 1 unless torch.distributed is set up)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch so a config and seed give the same numbers on one machine."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


@torch.no_grad()
def predict_logits(model: nn.Module, data: Batches, batch_size: int = 512) -> torch.Tensor:
    """Logits (N, n_classes) in eval mode."""
    model.eval()
    return torch.cat([model(b.x, b.lengths) for b in data.batches(batch_size)]) if len(data) else torch.empty(0)


def _score(model: nn.Module, data: Batches) -> tuple[float, float]:
    logits = predict_logits(model, data)
    y = data.y.to(logits.device)
    loss = F.cross_entropy(logits, y).item()
    return loss, (logits.argmax(1) == y).float().mean().item()


@dataclass
class _Loop:
    """The parts of a fit that an interrupted run saves and a resumed one restores."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler | None
    generator: torch.Generator  # batch order and augmentation
    best: tuple[float, float] = (-1.0, float("inf"))  # (val accuracy, val loss) of the best epoch
    finished: bool = False

    def state(self, result: FitResult) -> dict[str, Any]:
        """Everything needed to continue after the last epoch: tensors, numbers, lists (`torch.save`-able)."""
        return {
            "epoch": result.epochs_run,
            "finished": self.finished,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
            "generator": self.generator.get_state(),
            "torch_rng": torch.get_rng_state(),
            "best_score": list(self.best),
            "best_state": result.best_state,
            "best_epoch": result.best_epoch,
            "history": result.history,
        }

    def restore(self, saved: dict[str, Any]) -> FitResult:
        """Take up a `state` again; returns the result so far."""
        self.model.load_state_dict(saved["model"])
        self.optimizer.load_state_dict(saved["optimizer"])
        if self.scheduler is not None:
            self.scheduler.load_state_dict(saved["scheduler"])
        self.generator.set_state(saved["generator"])
        torch.set_rng_state(saved["torch_rng"])  # dropout masks
        self.best = (float(saved["best_score"][0]), float(saved["best_score"][1]))
        self.finished = bool(saved["finished"])
        return FitResult(saved["best_state"], saved["best_epoch"], saved["epoch"], list(saved["history"]))


def _optimiser(
    model: nn.Module, cfg: TrainConfig, steps: int
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler | None]:
    """Adam or AdamW over `model`, and the one-cycle schedule over `steps` batches when the config asks."""
    kind = torch.optim.AdamW if cfg.optimizer is Optimizer.ADAMW else torch.optim.Adam
    # fused: one kernel for all parameters (about 8% of a seed_lstm epoch on CPU, measured)
    optimizer = kind(model.parameters(), lr=cfg.lr, eps=cfg.adam_eps, weight_decay=cfg.weight_decay, fused=True)
    if cfg.schedule is not Schedule.ONECYCLE:
        return optimizer, None
    return optimizer, torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=cfg.lr, total_steps=steps, pct_start=0.15)


def _place(model: nn.Module, device: torch.device, world: int) -> tuple[nn.Module, torch.device]:
    """The model on its device, wrapped for DDP under torchrun (each rank on its own GPU, cuda:LOCAL_RANK)."""
    if world > 1 and device.type == "cuda":
        device = torch.device("cuda", torch.cuda.current_device())
    model.to(device)
    if world == 1:
        return model, device
    # every rank starts from rank 0's weights; gradients are averaged over ranks
    return nn.parallel.DistributedDataParallel(model, device_ids=[device] if device.type == "cuda" else None), device


def _train_epoch(
    net: nn.Module,
    loop: _Loop,
    train: Batches,
    cfg: TrainConfig,
    augment: Callable[[FeatureSet, torch.Generator], FeatureSet] | None,
    rank: int,
    world: int,
) -> dict[str, float]:
    """One shuffled pass over this rank's share of `train`: its mean loss and accuracy."""
    model = loop.model
    model.train()
    loss_sum, correct = 0.0, 0.0
    seen = 0
    for batch in train.batches(cfg.batch_size, loop.generator, rank=rank, world=world):
        if augment is not None:
            batch = augment(batch, loop.generator)
        logits = net(batch.x, batch.lengths)
        targets = training_targets(model, batch.y)
        loss = F.cross_entropy(logits, targets, label_smoothing=cfg.label_smoothing)
        loop.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        loop.optimizer.step()
        if loop.scheduler is not None:
            loop.scheduler.step()
        loss_sum += loss.item() * len(batch)
        correct += int((logits.argmax(1) == targets).sum()) * len(batch) / len(targets)
        seen += len(batch)
    if world > 1:  # BatchNorm statistics last saw this rank's batch: take rank 0's, as DDP does per step
        for buffer in model.buffers():
            torch.distributed.broadcast(buffer, 0)
    return {"train_loss": loss_sum / seen, "train_accuracy": correct / seen}  # this rank's share


def fit(
    model: nn.Module,
    train: Batches,
    val: Batches | None,
    cfg: TrainConfig,
    *,
    resume: dict[str, Any] | None = None,
    on_epoch: Callable[[dict[str, Any]], None] | None = None,
    augment: Callable[[FeatureSet, torch.Generator], FeatureSet] | None = None,
    desc: str = "train",
) -> FitResult:
    """Train `model` in place; it ends holding the weights of the best validation epoch.

    The best epoch has the highest validation accuracy (ties: lower validation loss); without a
    validation set, or with `cfg.keep_last`, it is the last.
    Stops after `cfg.patience` epochs without improvement (0: never).
    After every epoch `on_epoch` gets a state dict (tensors, numbers, lists: `torch.save`-able);
    passing it back as `resume` continues exactly where it was taken, to the same final numbers.
    With `augment`, each training batch of `train` (then holding waveforms) is turned into
    model inputs by `augment(batch, generator)`; `val` holds ready features.
    """
    rank, world = rank_and_world()
    net, device = _place(model, check_device(cfg.device), world)
    train = train.to(device)
    val = val.to(device) if val is not None and len(val) else None
    steps = cfg.epochs * math.ceil(math.ceil(len(train) / world) / cfg.batch_size)  # this rank's batches
    loop = _Loop(model, *_optimiser(model, cfg, steps), torch.Generator().manual_seed(cfg.seed))
    result = FitResult(copy.deepcopy(model.state_dict()), 0, 0) if resume is None else loop.restore(resume)
    bar = tqdm(range(result.epochs_run + 1, cfg.epochs + 1), desc=desc, unit="epoch", leave=False, disable=None)
    for epoch in [] if loop.finished else bar:
        started = time.perf_counter()
        row = {"epoch": epoch, **_train_epoch(net, loop, train, cfg, augment, rank, world)}
        improved = True  # without a validation set (or with keep_last) the last epoch is the best
        if val is not None:
            row["val_loss"], row["val_accuracy"] = _score(model, val)
            score = (row["val_accuracy"], row["val_loss"])
            better = score[0] > loop.best[0] or (score[0] == loop.best[0] and score[1] < loop.best[1])
            improved = better or cfg.keep_last
        row["seconds"] = time.perf_counter() - started
        result.history.append(row)
        result.epochs_run = epoch
        if improved:
            loop.best = (row.get("val_accuracy", 0.0), row.get("val_loss", 0.0))
            result.best_state, result.best_epoch = copy.deepcopy(model.state_dict()), epoch
        bar.set_postfix({k: f"{v:.3f}" for k, v in row.items() if k not in ("epoch", "seconds")})
        loop.finished = epoch == cfg.epochs or bool(cfg.patience and epoch - result.best_epoch >= cfg.patience)
        if on_epoch is not None:
            on_epoch(loop.state(result))
        if loop.finished:
            break
    model.load_state_dict(result.best_state)
    return result
