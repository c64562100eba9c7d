"""Augmented views made once: K augmented copies of each training clip, featurised up front.

With an expensive front end (the speech encoder) featurising every augmented batch again each epoch
costs most of a run; K copies per clip, made once with the same Augmenter and reused every epoch, keep
most of augmentation's variety at K epochs' cost (AugmentConfig.views; measured in FINDINGS).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from spoken_digits.frontend.batches import FeatureSet, concat
from spoken_digits.training.train import Batches

BATCH = 64  # clips augmented and featurised at a time


@torch.no_grad()
def augmented_views(
    clips: Batches,
    augment: Callable[[FeatureSet, torch.Generator], FeatureSet],
    views: int,
    *,
    seed: int,
) -> FeatureSet:
    """`views` augmented copies of every clip of `clips` (waveforms) as one FeatureSet of model inputs,
    copy k of clip i at row k * len(clips) + i; seeded, so a run makes the same copies every time."""
    generator = torch.Generator().manual_seed(seed)
    return concat([augment(batch, generator) for _ in range(views) for batch in clips.batches(BATCH)])
