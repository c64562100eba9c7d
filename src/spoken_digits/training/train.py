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
    validation set it is the last. Stops after `cfg.patience` epochs without improvement (0: never).
    After every epoch `on_epoch` gets a state dict (tensors, numbers, lists: `torch.save`-able);
    passing it back as `resume` continues exactly where it was taken, to the same final numbers.
    With `augment`, each training batch of `train` (then holding waveforms) is turned into
    model inputs by `augment(batch, generator)`; `val` holds ready features.
    """
    device = check_device(cfg.device)
    rank, world = rank_and_world()
    if world > 1 and device.type == "cuda":  # under torchrun each rank has its own GPU, cuda:LOCAL_RANK
        device = torch.device("cuda", torch.cuda.current_device())
    model.to(device)
    net: nn.Module = model
    if world > 1:  # every rank starts from rank 0's weights; gradients are averaged over ranks
        net = nn.parallel.DistributedDataParallel(model, device_ids=[device] if device.type == "cuda" else None)
    train = train.to(device)
    val = val.to(device) if val is not None and len(val) else None
    kind = torch.optim.AdamW if cfg.optimizer is Optimizer.ADAMW else torch.optim.Adam
    # fused: one kernel for all parameters (about 8% of a seed_lstm epoch on CPU, measured)
    optimizer = kind(model.parameters(), lr=cfg.lr, eps=cfg.adam_eps, weight_decay=cfg.weight_decay, fused=True)
    steps = cfg.epochs * math.ceil(math.ceil(len(train) / world) / cfg.batch_size)  # this rank's batches
    scheduler = (
        torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=cfg.lr, total_steps=steps, pct_start=0.15)
        if cfg.schedule is Schedule.ONECYCLE
        else None
    )
    generator = torch.Generator().manual_seed(cfg.seed)  # batch order and augmentation
    best: tuple[float, float] = (-1.0, float("inf"))  # (val accuracy, val loss) of the best epoch
    result = FitResult(copy.deepcopy(model.state_dict()), 0, 0)
    finished = False
    if resume is not None:
        model.load_state_dict(resume["model"])
        optimizer.load_state_dict(resume["optimizer"])
        if scheduler is not None:
            scheduler.load_state_dict(resume["scheduler"])
        generator.set_state(resume["generator"])
        torch.set_rng_state(resume["torch_rng"])  # dropout masks
        best = (float(resume["best_score"][0]), float(resume["best_score"][1]))
        result = FitResult(resume["best_state"], resume["best_epoch"], resume["epoch"], list(resume["history"]))
        finished = bool(resume["finished"])
    first = result.epochs_run + 1
    bar = tqdm(range(first, cfg.epochs + 1), desc=desc, unit="epoch", leave=False, disable=None)
    for epoch in [] if finished else bar:
        started = time.perf_counter()
        model.train()
        loss_sum, correct = 0.0, 0.0
        seen = 0
        for batch in train.batches(cfg.batch_size, generator, rank=rank, world=world):
            if augment is not None:
                batch = augment(batch, generator)
            logits = net(batch.x, batch.lengths)
            targets = training_targets(model, batch.y)
            loss = F.cross_entropy(logits, targets, label_smoothing=cfg.label_smoothing)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
            loss_sum += loss.item() * len(batch)
            correct += int((logits.argmax(1) == targets).sum()) * len(batch) / len(targets)
            seen += len(batch)
        if world > 1:  # BatchNorm statistics last saw this rank's batch: take rank 0's, as DDP does per step
            for buffer in model.buffers():
                torch.distributed.broadcast(buffer, 0)
        row = {"epoch": epoch, "train_loss": loss_sum / seen, "train_accuracy": correct / seen}  # this rank's share
        if val is not None:
            row["val_loss"], row["val_accuracy"] = _score(model, val)
            score = (row["val_accuracy"], row["val_loss"])
            improved = score[0] > best[0] or (score[0] == best[0] and score[1] < best[1])
        else:
            improved = True
        row["seconds"] = time.perf_counter() - started
        result.history.append(row)
        result.epochs_run = epoch
        if improved:
            best = (row.get("val_accuracy", 0.0), row.get("val_loss", 0.0))
            result.best_state, result.best_epoch = copy.deepcopy(model.state_dict()), epoch
        bar.set_postfix({k: f"{v:.3f}" for k, v in row.items() if k not in ("epoch", "seconds")})
        finished = epoch == cfg.epochs or bool(cfg.patience and epoch - result.best_epoch >= cfg.patience)
        if on_epoch is not None:
            on_epoch(
                {
                    "epoch": epoch,
                    "finished": finished,
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict() if scheduler is not None else None,
                    "generator": generator.get_state(),
                    "torch_rng": torch.get_rng_state(),
                    "best_score": list(best),
                    "best_state": result.best_state,
                    "best_epoch": result.best_epoch,
                    "history": result.history,
                }
            )
        if finished:
            break
    model.load_state_dict(result.best_state)
    return result
