"""Training-time augmentation on whole batches in torch: the word as a microphone would hear it.

In order: speed perturbation (formants, pitch and duration move together, as a different vocal
tract and speaking rate would); a simulated room; extra audio before and after the word (what a
detector's segment holds beyond the word); noise at a random SNR; the telephone band; clipping;
silence past the ends for half the clips (where the detector's margins reach past a recording);
then the clip length rule, features, and masks over bands and frames (SpecAugment). Each runs
batched on the training device (audiomentations works clip by clip in numpy and pulls librosa;
torch-audiomentations needs torchaudio). Everything draws from the training loop's seeded
generator, so runs repeat exactly, and nothing here runs at evaluation.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from spoken_digits.config import AudioConfig, AugmentConfig
from spoken_digits.frontend import corrupt, endpoint
from spoken_digits.frontend.batches import FeatureSet
from spoken_digits.frontend.features import Featurizer, fix_lengths, time_mask

NOISE_KINDS = ("white", "pink", "brown", "babble")  # then "file" when a noise folder is given
NOISE_WEIGHTS = (1.0, 1.0, 1.0, 2.0, 2.0)  # babble and the user's files twice as often: the hardest to tell apart
BABBLE_TALKERS = (3, 7)  # other training clips summed into one babble: 3 to 6
REVERB_TAIL = 0.4  # s of a room's decay kept after the word (a detector's segment ends in the decay)


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


def _uniform(n: int, low: float, high: float, generator: torch.Generator) -> torch.Tensor:
    return low + (high - low) * torch.rand(n, generator=generator, dtype=torch.float64)


def _chosen(share: float, n: int, generator: torch.Generator) -> torch.Tensor:
    """A (n,) boolean mask: each clip chosen with probability `share`."""
    return torch.rand(n, generator=generator) < share


def _fft_convolve(x: torch.Tensor, h: torch.Tensor, size: int) -> torch.Tensor:
    """Row-wise linear convolution of x (B, L) with h (B, R), first `size` samples (zeros past L + R - 1)."""
    n = 1 << (max(x.shape[1] + h.shape[1] - 1, size) - 1).bit_length()
    return torch.fft.irfft(torch.fft.rfft(x, n) * torch.fft.rfft(h, n), n)[:, :size]


def reverberate(
    waves: torch.Tensor, lengths: torch.Tensor, rooms: torch.Tensor, which: torch.Tensor, sr: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Each chosen clip (`which`, (B,) long: a row of `rooms` (N, R), or -1 for none) convolved with that
    room's response; REVERB_TAIL seconds of decay kept after its end; new lengths. The responses have
    unit energy, so the level stays about the same."""
    tail = round(REVERB_TAIL * sr)
    chosen = which >= 0
    if not bool(chosen.any()):
        return waves, lengths
    out = _fft_convolve(waves, rooms[which.clamp_min(0)], waves.shape[1] + tail)
    which = chosen
    new_lengths = torch.where(which, lengths + tail, lengths)
    out = torch.where(which[:, None], out, F.pad(waves, (0, tail)))
    return out * time_mask(new_lengths, out.shape[1]).to(out.dtype), new_lengths


def add_context(
    waves: torch.Tensor, lengths: torch.Tensor, before: torch.Tensor, after: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Each clip moved `before` (B,) samples later inside silence, with `after` (B,) samples after it."""
    width = int((before + lengths + after).max())
    index = torch.arange(waves.shape[1], device=waves.device)[None, :] + before[:, None]
    out = torch.zeros(len(waves), width, dtype=waves.dtype, device=waves.device)
    keep = time_mask(lengths, waves.shape[1]).to(waves.dtype)
    out.scatter_(1, index.clamp(max=width - 1), waves * keep)  # distinct positions per row: no clash
    return out, before + lengths + after


def colored_noise(batch: int, width: int, exponent: float, generator: torch.Generator) -> torch.Tensor:
    """Unit-RMS Gaussian noise (batch, width) with power spectral density ∝ 1 / f**exponent (0 white, 1 pink)."""
    white = torch.randn(batch, width, generator=generator)
    if exponent:
        spectrum = torch.fft.rfft(white)
        bins = torch.arange(spectrum.shape[1], dtype=torch.float32)
        bins[0] = float("inf")  # no DC
        white = torch.fft.irfft(spectrum * bins ** (-exponent / 2), width)
    return white / white.pow(2).mean(1, keepdim=True).sqrt().clamp_min(1e-12)


def loop_windows(source: torch.Tensor, width: int, starts: torch.Tensor) -> torch.Tensor:
    """Rows of `source` (B, L) looped, each read for `width` samples from its own start (B,)."""
    index = (starts[:, None] + torch.arange(width, device=source.device)[None, :]) % source.shape[1]
    return torch.gather(source, 1, index)


def babble(words: torch.Tensor, width: int, generator: torch.Generator) -> torch.Tensor:
    """Unit-RMS babble (B, width): for each clip, 3 to 6 other clips of the batch (training speech
    only), each looped from a random place and brought to unit RMS, summed. A clip's babble never holds
    the clip itself (that would teach the model its own word as noise); a batch of one gets silence."""
    batch = len(words)
    talkers = int(torch.randint(*BABBLE_TALKERS, (1,), generator=generator))
    total = torch.zeros(batch, width, dtype=words.dtype, device=words.device)
    if batch < 2:
        return total
    for _ in range(talkers):
        shift = torch.randint(1, batch, (batch,), generator=generator)  # another row, never the clip's own
        others = ((torch.arange(batch) + shift) % batch).to(words.device)
        starts = torch.randint(0, words.shape[1], (batch,), generator=generator).to(words.device)
        talker = loop_windows(words[others], width, starts)
        total += talker / talker.pow(2).mean(1, keepdim=True).sqrt().clamp_min(1e-12)
    return total / total.pow(2).mean(1, keepdim=True).sqrt().clamp_min(1e-12)


def mix(
    canvas: torch.Tensor,
    lengths: torch.Tensor,
    noise: torch.Tensor,
    snr_db: torch.Tensor,
    start: torch.Tensor,
    word: torch.Tensor,
) -> torch.Tensor:
    """`noise` (B, W) added to `canvas` (B, W) at `snr_db` (B,): powers measured over the word's samples
    [start, start + word); nothing past each clip's length. A row with snr_db inf gets no noise."""
    index = torch.arange(canvas.shape[1], device=canvas.device)[None, :]
    inside = ((index >= start[:, None]) & (index < (start + word)[:, None])).to(canvas.dtype)
    count = inside.sum(1).clamp_min(1)
    speech = (canvas.pow(2) * inside).sum(1) / count
    heard = (noise.pow(2) * inside).sum(1) / count
    scale = torch.sqrt(speech / (heard.clamp_min(1e-12) * 10 ** (snr_db.to(canvas.dtype) / 10)))
    scale = torch.where(torch.isfinite(snr_db.to(canvas.device)), scale, torch.zeros_like(scale))
    return (canvas + noise * scale[:, None]) * time_mask(lengths, canvas.shape[1]).to(canvas.dtype)


def band_limit(waves: torch.Tensor, which: torch.Tensor, sr: int, low: float, high: float) -> torch.Tensor:
    """Chosen rows (`which`) with everything outside low..high Hz removed: an FFT mask, raised-cosine
    edges 100 Hz wide (as `corrupt.band_limit`)."""
    n = waves.shape[1] + round(0.05 * sr)  # zero-padded: nothing wraps round from the end to the start
    hz = torch.fft.rfftfreq(n, 1 / sr).to(waves.device)
    mask = (
        torch.sin(torch.pi / 2 * ((hz - low) / 100).clamp(0, 1))
        * torch.sin(torch.pi / 2 * ((high - hz) / 100).clamp(0, 1))
    ) ** 2
    limited = torch.fft.irfft(torch.fft.rfft(waves, n) * mask.to(waves.dtype), n)[:, : waves.shape[1]]
    return torch.where(which[:, None], limited, waves)


def overdrive(waves: torch.Tensor, which: torch.Tensor, drive: torch.Tensor) -> torch.Tensor:
    """Chosen rows scaled so their peak is `drive` (B,) times full scale, then clipped to [-1, 1]."""
    peak = waves.abs().amax(1).clamp_min(1e-9)
    driven = (waves * (drive.to(waves.dtype) / peak)[:, None]).clamp(-1, 1)
    return torch.where(which[:, None], driven, waves)


class Augmenter:
    """Turns a batch of training waveforms (the words found, before the length rule) into augmented
    model inputs: augment, then the audio config's length rule, then the fitted featurizer.

    `noises`: recordings (at the audio rate) to mix in beside the generated kinds (cfg.noise_dir's files).
    """

    def __init__(
        self, cfg: AugmentConfig, featurizer: Featurizer, audio: AudioConfig, *, noises: Sequence[np.ndarray] = ()
    ) -> None:
        self.cfg, self.featurizer, self.audio = cfg, featurizer, audio
        device = next(iter(featurizer.buffers())).device
        self.rooms = None
        if cfg.reverb:
            from spoken_digits.frontend.rooms import room_responses

            self.rooms = torch.tensor(room_responses(audio.sr), device=device)
        self.noise_bank = torch.from_numpy(np.concatenate(noises)).to(device) if len(noises) else None

    def _noise(self, kinds: torch.Tensor, words: torch.Tensor, width: int, generator: torch.Generator) -> torch.Tensor:
        """Unit-RMS noise (B, width) of each clip's kind (an index into NOISE_KINDS, or the noise files)."""
        batch, device = len(words), words.device
        out = torch.zeros(batch, width, dtype=words.dtype, device=device)
        for k, kind in enumerate(NOISE_KINDS):
            rows = (kinds == k).to(device)
            if bool(rows.any()):
                made = (
                    babble(words, width, generator)
                    if kind == "babble"
                    else colored_noise(batch, width, corrupt.NOISE_EXPONENTS[kind], generator).to(device)
                )
                out[rows] = made[rows]
        rows = (kinds == len(NOISE_KINDS)).to(device)
        if self.noise_bank is not None and bool(rows.any()):
            starts = torch.randint(0, len(self.noise_bank), (batch,), generator=generator).to(device)
            made = loop_windows(self.noise_bank[None, :].expand(batch, -1), width, starts)
            out[rows] = (made / made.pow(2).mean(1, keepdim=True).sqrt().clamp_min(1e-12))[rows]
        return out

    @torch.no_grad()
    def __call__(self, batch: FeatureSet, generator: torch.Generator) -> FeatureSet:
        cfg, sr, n = self.cfg, self.audio.sr, len(batch.x)
        waves, lengths = batch.x, batch.lengths
        if cfg.speed:
            factors = 1 + (torch.rand(n, generator=generator) * 2 - 1) * cfg.speed
            waves, lengths = speed_perturb(waves, lengths, factors.to(waves.device))
        words = waves  # the clean words, for babble
        if self.rooms is not None:
            room = torch.randint(0, len(self.rooms), (n,), generator=generator)
            room = torch.where(_chosen(cfg.reverb, n, generator), room, -1)  # -1: no room for this clip
            waves, lengths = reverberate(waves, lengths, self.rooms, room.to(waves.device), sr)
        word = lengths
        start = torch.zeros_like(lengths)
        if cfg.context:
            most = round(cfg.context * sr)
            start = torch.randint(0, most + 1, (n,), generator=generator).to(lengths.device)
            after = torch.randint(0, most + 1, (n,), generator=generator).to(lengths.device)
            waves, lengths = add_context(waves, lengths, start, after)
        if cfg.noise:
            weights = torch.tensor(NOISE_WEIGHTS[: len(NOISE_KINDS) + (self.noise_bank is not None)])
            kinds = torch.multinomial(weights, n, replacement=True, generator=generator)
            snr = _uniform(n, cfg.snr_min, cfg.snr_max, generator)
            snr = torch.where(_chosen(cfg.noise, n, generator), snr, torch.full_like(snr, float("inf")))
            noise = self._noise(kinds, words, waves.shape[1], generator)
            waves = mix(waves, lengths, noise, snr.to(waves.device), start, word)
        if cfg.band:
            waves = band_limit(waves, _chosen(cfg.band, n, generator).to(waves.device), sr, *corrupt.TELEPHONE_BAND)
        if cfg.clipping:
            drive = _uniform(n, 1.5, 4.0, generator).to(waves.device)
            waves = overdrive(waves, _chosen(cfg.clipping, n, generator).to(waves.device), drive)
        if cfg.context:  # half the clips: silence outside the "recording", where a segment's margins reach past it
            edge = _chosen(0.5, n, generator)
            before = torch.randint(0, round(endpoint.LEAD * sr) + 1, (n,), generator=generator) * edge
            after = torch.randint(0, round(endpoint.TRAIL * sr) + 1, (n,), generator=generator) * edge
            waves, lengths = add_context(waves, lengths, before.to(waves.device), after.to(waves.device))
        if self.audio.n_samples is not None:  # the length rule, after the waveform changed
            waves, lengths = fix_lengths(waves, lengths, self.audio.n_samples, pad=self.audio.pad)
        x, frames = self.featurizer(waves, lengths)
        if cfg.time_mask:
            x = mask_runs(x, frames, cfg.time_mask, 1, generator)
        if cfg.band_mask:
            x = mask_runs(x, frames, cfg.band_mask, 2, generator)
        return FeatureSet(x, frames, batch.y)
