"""Training-time augmentation on whole batches in torch: speed perturbation, then band and frame masks.

Speed perturbation resamples each waveform by its own factor (formants, pitch and duration move
together, as a different vocal tract and speaking rate would); masks blank a random run of bands
and of frames (SpecAugment). The clip length rule applies after the waveform is changed, so a
training clip has the same shape as an evaluation clip. Everything draws from the training loop's
seeded generator, so runs repeat exactly, and nothing here runs at evaluation.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from spoken_digits.config import AudioConfig, AugmentConfig
from spoken_digits.features import Featurizer, fix_lengths, time_mask
from spoken_digits.train import FeatureSet


def speed_perturb(
    waves: torch.Tensor, lengths: torch.Tensor, factors: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Play each waveform (B, L) `factors` (B,) times faster by linear interpolation; new lengths (B,)."""
    new_lengths = torch.clamp((lengths.double() / factors.double()).floor().long(), min=1)
    steps = int(new_lengths.max())
    position = torch.arange(steps, device=waves.device, dtype=torch.float64)[None, :] * factors.double()[:, None]
    x = 2 * position / max(waves.shape[1] - 1, 1) - 1  # align_corners=True coordinates of input samples
    grid = torch.stack([x, torch.zeros_like(x)], dim=-1)[:, None].to(waves.dtype)  # (B, 1, steps, 2)
    out = F.grid_sample(waves[:, None, None, :], grid, mode="bilinear", padding_mode="zeros", align_corners=True)
    out = out[:, 0, 0] * time_mask(new_lengths, steps).to(waves.dtype)  # nothing past each clip's own end
    return out, new_lengths


def mask_runs(
    x: torch.Tensor, lengths: torch.Tensor, width: int, axis: int, generator: torch.Generator
) -> torch.Tensor:
    """Zero one run of up to `width` frames (axis 1, inside each clip's valid frames) or bands (axis 2)."""
    batch, size = x.shape[0], x.shape[axis]
    span = torch.randint(0, width + 1, (batch,), generator=generator)
    limit = (lengths.cpu() if axis == 1 else torch.full((batch,), size)) - span
    start = (torch.rand(batch, generator=generator) * limit.clamp_min(1)).long()
    index = torch.arange(size)[None, :]
    hit = ((index >= start[:, None]) & (index < (start + span)[:, None])).to(x.device)
    return x.masked_fill(hit[:, :, None] if axis == 1 else hit[:, None, :], 0.0)


class Augmenter:
    """Turns a batch of training waveforms (silence-trimmed, before the length rule) into augmented
    model inputs: augment, then the audio config's length rule, then the fitted featurizer."""

    def __init__(self, cfg: AugmentConfig, featurizer: Featurizer, audio: AudioConfig) -> None:
        self.cfg, self.featurizer, self.audio = cfg, featurizer, audio

    @torch.no_grad()
    def __call__(self, batch: FeatureSet, generator: torch.Generator) -> FeatureSet:
        waves, lengths = batch.x, batch.lengths
        if self.cfg.speed:
            factors = 1 + (torch.rand(len(waves), generator=generator) * 2 - 1) * self.cfg.speed
            waves, lengths = speed_perturb(waves, lengths, factors.to(waves.device))
        if self.audio.n_samples is not None:  # the length rule, after the waveform changed
            waves, lengths = fix_lengths(waves, lengths, self.audio.n_samples, pad=self.audio.pad)
        x, frames = self.featurizer(waves, lengths)
        if self.cfg.time_mask:
            x = mask_runs(x, frames, self.cfg.time_mask, 1, generator)
        if self.cfg.band_mask:
            x = mask_runs(x, frames, self.cfg.band_mask, 2, generator)
        return FeatureSet(x, frames, batch.y)
