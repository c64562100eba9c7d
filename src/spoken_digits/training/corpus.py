"""A run's clips as the model hears them: the front end's waveforms from the on-disk store (data/cache.py).

Datasets whose waveforms fit in IN_MEMORY_BYTES are held as one tensor, as they always were (FSDD:
about 100 MB). Larger ones stay on disk and are read batch by batch (`StoreSet`), so a 100,000-clip
dataset trains in bounded memory. Both read the same store: one path from files to the model.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch

from spoken_digits.config import AudioConfig, RunConfig
from spoken_digits.data import cache
from spoken_digits.data.clips import Dataset
from spoken_digits.data.sources import check_class_sizes
from spoken_digits.errors import AudioError
from spoken_digits.frontend.batches import FeatureSet, batch_order
from spoken_digits.frontend.features import fix_lengths

IN_MEMORY_BYTES = 2**30  # padded float32 waveforms up to 1 GiB are held in memory; more stream from disk
STANDARDIZER_CLIPS = 5000  # a streamed dataset's standardiser is fitted on this many training clips at most

Transform = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


@dataclass(frozen=True)
class Corpus:
    """A dataset's clips through the front end: natural-length waveforms (before the length rule),
    held in memory (`waves`) or read from `store` per batch, with labels and speakers."""

    data: Dataset
    store: cache.ClipStore
    rows: np.ndarray  # the store's row of each clip
    labels: torch.Tensor
    lengths: torch.Tensor  # samples per clip
    audio: AudioConfig
    waves: torch.Tensor | None  # (N, longest), zero padded; None when streamed

    @property
    def speakers(self) -> np.ndarray:
        return self.data.speakers

    @property
    def digests(self) -> list[str]:
        return [self.store.digests[r] for r in self.rows]

    def fixed(self) -> tuple[torch.Tensor, torch.Tensor]:
        """All waveforms after the length rule, (N, n_samples) and lengths (in memory only)."""
        if self.waves is None:
            raise RuntimeError("fixed() needs the waveforms in memory; this corpus streams from disk")
        n = self.audio.n_samples
        return (self.waves, self.lengths) if n is None else fix_lengths(self.waves, self.lengths, n, pad=self.audio.pad)

    def stream(self, transform: Transform | None = None) -> StoreSet:
        """Every clip as a StoreSet: natural waveforms per batch, or `transform(waves, lengths)` of them."""
        return StoreSet(self.store, self.rows, self.labels, transform)


def load_corpus(
    data: Dataset, cfg: RunConfig, *, workers: int | None = None, skip_bad: bool = False, progress: bool = True
) -> Corpus:
    """Run the front end over every clip (cached on disk, in parallel) and hold the result in memory if it fits.

    With `skip_bad`, clips the front end cannot use (silent, corrupt, no speech found) are left out and
    recorded in `data.skipped`; without it the first one is an AudioError naming the file.
    """
    natural = dataclasses.replace(cfg.audio, duration=None)
    store = cache.prepare([c.path for c in data.clips], natural, workers=workers, skip_bad=skip_bad, progress=progress)
    rows = np.arange(len(store))
    if store.bad and not skip_bad:  # a cache built with --skip-bad holds them: without the flag they still stop us
        raise AudioError(store.bad[min(store.bad)])
    if store.bad:
        rows = np.array([i for i in rows if i not in store.bad], dtype=np.int64)
        skipped = {str(data.clips[i].path): why for i, why in store.bad.items()}
        data = dataclasses.replace(data.subset(rows), skipped={**data.skipped, **skipped})
        check_class_sizes(data)
    labels = torch.as_tensor(data.labels)
    lengths = torch.as_tensor(store.lengths[rows], dtype=torch.long)
    waves = None
    if len(rows) * int(lengths.max()) * 4 <= IN_MEMORY_BYTES:
        waves, _ = store.read(rows)  # the kept clips only, padded to their longest
    return Corpus(data, store, rows, labels, lengths, cfg.audio, waves)


@dataclass(frozen=True)
class StoreSet:
    """Clips read from a ClipStore batch by batch: the FeatureSet interface `fit` and `predict_logits` use,
    without holding the dataset in memory. Each batch is `transform(waves, lengths)` when given."""

    store: cache.ClipStore
    rows: np.ndarray
    y: torch.Tensor
    transform: Transform | None = None
    device: torch.device | str = "cpu"

    def __len__(self) -> int:
        return len(self.y)

    def subset(self, index: np.ndarray | torch.Tensor) -> StoreSet:
        index = torch.as_tensor(index, dtype=torch.long)
        return dataclasses.replace(self, rows=self.rows[index.numpy()], y=self.y[index])

    def batches(
        self, size: int, generator: torch.Generator | None = None, *, rank: int = 0, world: int = 1
    ) -> Iterator[FeatureSet]:
        for index in batch_order(len(self), size, generator, rank=rank, world=world):
            waves, lengths = self.store.read(self.rows[index.numpy()])
            waves, lengths = waves.to(self.device), lengths.to(self.device)
            x, steps = (waves, lengths) if self.transform is None else self.transform(waves, lengths)
            yield FeatureSet(x, steps, self.y[index].to(self.device))

    def to(self, device: torch.device | str) -> StoreSet:
        return dataclasses.replace(self, device=device)

    def sample(self, limit: int, *, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Up to `limit` clips drawn at random (seeded), read at once: (n, longest) and lengths."""
        rng = np.random.default_rng(seed)
        chosen = np.sort(rng.choice(len(self), size=min(limit, len(self)), replace=False))
        return self.store.read(self.rows[chosen])


def length_rule(audio: AudioConfig) -> Transform:
    """The config's length rule as a batch transform (identity when clips keep their true lengths)."""
    n = audio.n_samples
    if n is None:
        return lambda waves, lengths: (waves, lengths)
    return lambda waves, lengths: fix_lengths(waves, lengths, n, pad=audio.pad)
