"""Model inputs in memory: features (or waveforms) with valid lengths and labels, served as mini-batches."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class FeatureSet:
    """Model inputs x (N, T, F), valid frames per clip (N,) and labels (N,)."""

    x: torch.Tensor
    lengths: torch.Tensor
    y: torch.Tensor

    def __len__(self) -> int:
        return len(self.y)

    def subset(self, index: np.ndarray | torch.Tensor) -> FeatureSet:
        """The clips at `index`, cut to their longest valid length."""
        index = torch.as_tensor(index, dtype=torch.long)
        lengths = self.lengths[index]
        steps = int(lengths.max()) if len(index) else 0
        return FeatureSet(self.x[index, :steps], lengths, self.y[index])

    def batches(
        self, size: int, generator: torch.Generator | None = None, *, rank: int = 0, world: int = 1
    ) -> Iterator[FeatureSet]:
        """Mini-batches in order, or shuffled by `generator`; with `world` > 1, this rank's share.

        Every rank draws the same order from an identically seeded generator and takes every
        `world`-th clip of it, the order padded by wrapping so all ranks get as many batches
        (as torch's DistributedSampler does).
        """
        for index in batch_order(len(self), size, generator, rank=rank, world=world):
            yield self.subset(index)

    def to(self, device: torch.device | str) -> FeatureSet:
        return FeatureSet(self.x.to(device), self.lengths.to(device), self.y.to(device))


def concat(parts: Sequence[FeatureSet]) -> FeatureSet:
    """Sets of clips (waveforms (N, L) or features (N, T, F)) as one, each padded with zeros to the longest."""
    steps = max(int(p.x.shape[1]) for p in parts)
    x = torch.cat([F.pad(p.x, [0, 0] * (p.x.dim() - 2) + [0, steps - int(p.x.shape[1])]) for p in parts])
    return FeatureSet(x, torch.cat([p.lengths for p in parts]), torch.cat([p.y for p in parts]))


def batch_order(
    n: int, size: int, generator: torch.Generator | None = None, *, rank: int = 0, world: int = 1
) -> Iterator[torch.Tensor]:
    """Index batches over `n` clips (see FeatureSet.batches): shuffled by `generator`, this rank's share."""
    order = torch.randperm(n, generator=generator) if generator is not None else torch.arange(n)
    if world > 1:
        order = torch.cat([order, order[: (-len(order)) % world]])[rank::world]
    for start in range(0, len(order), size):
        yield order[start : start + size]
