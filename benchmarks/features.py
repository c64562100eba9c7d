"""Features: FSDD waveforms -> mel power, librosa per clip against our batched torch frontend;
and reading files -> waveforms, librosa.load against our reader."""

from __future__ import annotations

import librosa
import numpy as np
import torch

from benchmarks.common import Row, clips, median_time, paths
from spoken_digits.config import preset
from spoken_digits.frontend import audio
from spoken_digits.frontend.features import Featurizer


def run(data: str | None, *, limit: int | None, repeats: int) -> list[Row]:
    cfg = preset("seed")  # the seed's settings: 0.5 s, n_fft 512, hop 256, 80 mels, raw power
    files = paths(clips(data, limit))
    f = cfg.features

    read_ref, ref_waves = median_time(lambda: [librosa.load(p, sr=cfg.audio.sr)[0] for p in files], repeats)
    read_ours, waves = median_time(lambda: [audio.read_audio(p, cfg.audio.sr) for p in files], repeats)
    fixed = [audio.prepare(w, cfg.audio) for w in waves]

    def reference() -> list[np.ndarray]:
        return [
            librosa.feature.melspectrogram(
                y=w, sr=cfg.audio.sr, n_fft=f.n_fft, hop_length=f.hop_length, n_mels=f.n_mels, pad_mode="constant"
            )
            for w in fixed
        ]

    featurizer = Featurizer(cfg.audio.sr, f)  # the path `train` uses: the frontend, cache-sized chunks
    batch, lengths = map(torch.from_numpy, audio.batch(fixed))

    def ours() -> torch.Tensor:
        return featurizer.raw(batch, lengths)[0]

    reference()  # librosa's first call compiles numba kernels: keep that out of the median
    ref_s, ref_mel = median_time(reference, repeats)
    ours_s, mel = median_time(ours, repeats)
    worst = max(float(np.abs(m.numpy().T - r).max() / max(r.max(), 1e-30)) for m, r in zip(mel, ref_mel, strict=True))
    same = max(float(np.abs(a - b).max()) for a, b in zip(ref_waves, waves, strict=True))
    n = len(files)
    return [
        Row(
            f"log-mel features, {n} clips (seed settings)",
            "librosa.feature.melspectrogram per clip",
            ref_s,
            ours_s,
            f"max relative difference of mel power {worst:.1e} (per clip, vs its peak)",
            ">= 20x, difference <= 1e-5",
            ref_s / ours_s >= 20 and worst <= 1e-5,
        ),
        Row(
            f"reading {n} wav files to 8 kHz float32",
            "librosa.load per file",
            read_ref,
            read_ours,
            f"max |sample difference| {same:.1e}",
        ),
    ]
