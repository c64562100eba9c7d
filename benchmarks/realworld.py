"""Real recordings: what multi-condition training and the speech detector cost, against what came before.

Training: time per epoch of the scratch preset (speech detector, noise, rooms, bands, clipping on the
fly) against the robust preset (speed perturbation only), the same clips and machine. Predicting:
one file in, digit out, with the scratch model (the detector finds the word) against the clean
preset's model (a peak-relative trim), and the detector alone on a 3 s recording.
"""

from __future__ import annotations

import csv
import dataclasses
import tempfile
from pathlib import Path

import numpy as np

from benchmarks.common import Row, clips, median_time, paths
from spoken_digits.config import RunConfig, preset
from spoken_digits.frontend import audio, endpoint
from spoken_digits.recognize.torchmodel import Predictor
from spoken_digits.training.experiment import train_run


def _epochs(cfg: RunConfig, epochs: int) -> RunConfig:
    return dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, epochs=epochs))


def _per_epoch(folder: Path) -> float:
    """Mean seconds per epoch in a run's log.csv, the first epoch (warm-up) left out when there are more."""
    with (folder / "log.csv").open() as f:
        seconds = [float(row["seconds"]) for row in csv.DictReader(f)]
    return float(np.mean(seconds[1:] if len(seconds) > 1 else seconds))


def run(data: str | None, *, epochs: int, repeats: int) -> list[Row]:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        robust = train_run(_epochs(preset("robust"), epochs), out / "robust", data=data, download=False)
        default = train_run(_epochs(preset("scratch"), epochs), out / "default", data=data, download=False)
        robust_s, default_s = _per_epoch(out / "robust"), _per_epoch(out / "default")
        train_run(_epochs(preset("clean"), 1), out / "clean", data=data, download=False)
        trimmed, detected = (Predictor.from_file(out / name / "model.pt") for name in ("clean", "default"))
        one = paths(clips(data))[:1]
        trimmed.predict_files(one), detected.predict_files(one)  # warm-up: the detector loads on first use
        trim_s, _ = median_time(lambda: trimmed.predict_files(one), repeats)
        vad_s, answer = median_time(lambda: detected.predict_files(one), repeats)
        y = audio.read_audio(one[0], 8000)
        long = np.zeros(3 * 8000, np.float32)
        long[8000 : 8000 + len(y)] = y
        detector_s, found = median_time(lambda: endpoint.find_words([long], 8000), repeats)
    return [
        Row(
            f"training per epoch, {epochs} epochs: the scratch preset's multi-condition augmentation",
            "robust preset (speed perturbation, 3 conv1d)",
            robust_s,
            default_s,
            f"test accuracy after {epochs} epochs: robust {robust['test_accuracy']:.3f}, "
            f"default {default['test_accuracy']:.3f}",
            "<= 2x the robust preset's time",
            default_s <= 2 * robust_s,
        ),
        Row(
            "one clip: file in, digit out, the speech detector finding the word (model loaded)",
            "the clean preset's model (peak-relative trim)",
            trim_s,
            vad_s,
            f"answer {answer[0].digit} for {one[0].name}",
            "<= 1.5x the trim's time",
            vad_s <= 1.5 * trim_s,
        ),
        Row(
            "the speech detector alone, one 3 s recording",
            "",
            None,
            detector_s,
            f"word found at {found[0].start / 8000:.2f}-{found[0].end / 8000:.2f} s (placed at 1.00 s)"
            if found[0] is not None
            else "no word found",
        ),
    ]
