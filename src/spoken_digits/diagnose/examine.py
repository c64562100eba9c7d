"""The data examination that `diagnose --data` and the training hooks share, and the checks only
the hooks can make because they hold training and validation arrays side by side.

`examine` runs the checks of `data` in one order on one array, so a verdict inside `fit` is the
verdict `spoken-digits diagnose --data` gives on the same arrays.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from spoken_digits.diagnose import data as checks
from spoken_digits.diagnose.findings import Finding, Severity

ERROR, WARNING = Severity.ERROR, Severity.WARNING
BLOCK_VALUES = 1 << 21  # values per block when a whole training array is read (16 MB as float64)
ToNumpy = Callable[[Any], np.ndarray]


@dataclass
class Examined:
    """What `examine` found, and what later steps need: classes, valid frames, whether it stopped early."""

    findings: list[Finding]
    n_classes: int
    lengths: np.ndarray
    masked: bool
    stopped: str | None = None  # why the later checks (and any training run) were skipped


def features_view(x: np.ndarray) -> np.ndarray | None:
    """x as (N, T, F) for the data checks: a channel axis of 1 (Keras' (N, T, F, 1), torch's (N, 1, T, F))
    is dropped; None for any other shape."""
    if x.ndim == 4 and x.shape[3] == 1:
        return x[..., 0]
    if x.ndim == 4 and x.shape[1] == 1:
        return x[:, 0]
    return x if x.ndim == 3 else None


def examine(
    x: np.ndarray,
    y: np.ndarray,
    *,
    lengths: np.ndarray | None = None,
    masked: bool | None = None,
    n_classes: int | None = None,
    durations: np.ndarray | None = None,
    duration_limit: float | None = None,
    seed: int = 0,
    spectral: bool = True,
) -> Examined:
    """Every check on features x (N, T, F) and integer labels y (N,) that needs no training. `masked`:
    the model skips padding (default: when `lengths` are given); without `lengths` they are inferred.
    `spectral=False` (a learnt embedding, whose neighbouring features need not move together) skips the
    checks that read the feature axis as frequency bands: the band limit and which axis is time."""
    x = x.astype(np.float32, copy=False)
    masked = lengths is not None if masked is None else masked
    findings = checks.finite_values(x)
    if findings:
        return Examined(findings, n_classes or 0, np.full(len(x), x.shape[1]), masked, "everything after NaN/Inf")
    label_findings, k = checks.labels(y, n_classes)
    findings += label_findings
    lengths = checks.infer_lengths(x) if lengths is None else np.asarray(lengths, dtype=np.int64)
    findings += checks.constant_input(x, lengths)
    if any(f.code == "constant_input" for f in findings) or any(f.severity is ERROR for f in label_findings):
        return Examined(findings, k, lengths, masked, "probe and training run (nothing to learn from)")
    limited = band_limit(x, lengths) if spectral else []
    skip = int(limited[0].evidence["empty_bands"]) if limited else 0
    findings += limited + checks.dead_bands(x, lengths, skip=skip) + checks.scale(x, lengths)
    findings += checks.padding(lengths, x.shape[1], masked=masked)
    findings += checks.layout(x, lengths) if spectral else [checks.embedding_axes(x.shape)]
    if durations is not None:
        findings += checks.truncated(np.asarray(durations), duration_limit)
    findings += checks.probe(x, lengths, y, k, seed=seed)
    return Examined(findings, k, lengths, masked)


def band_limit(x: np.ndarray, lengths: np.ndarray) -> list[Finding]:
    """The top bands sit at their floor (a dB clamp, or zero) in nearly every frame while the rest vary:
    the audio has nothing in the top of the band the features assume, as when 8 kHz recordings are
    loaded (resampled) at 16 kHz. Per-band standardising keeps the ties, so it shows after it too.
    """
    frames = x[checks.valid_mask(lengths, x.shape[1])].astype(np.float64)  # (frames, F)
    if len(frames) < 20 or x.shape[2] < 8:
        return []
    floor = frames.min(axis=0)
    span = frames.max(axis=0) - floor
    at_floor = (frames - floor <= 1e-6 * (span + np.abs(floor) + 1e-30)).mean(axis=0)  # (F,)
    empty = np.cumprod(at_floor[::-1] >= 0.8).sum()  # contiguous block at the top
    rest = float(np.median(at_floor[: x.shape[2] - empty])) if empty < x.shape[2] else 1.0
    if empty < max(2, x.shape[2] // 20) or empty == x.shape[2] or rest > 0.5:
        return []
    width = x.shape[2]
    share = float(at_floor[width - empty :].mean())
    return [
        Finding(
            "sample_rate_mismatch",
            WARNING,
            f"the top {empty} of {width} bands sit at their floor in {share:.0%} of frames (the other bands "
            f"in {rest:.0%}): the audio has no content in the top {empty / width:.0%} of the bands; 8 kHz "
            "recordings loaded at 16 kHz look like this",
            {"empty_bands": int(empty), "n_bands": width, "floor_share_top": share, "floor_share_rest": rest},
            "load audio at its native rate (librosa.load(path, sr=None); FSDD is 8 kHz) and keep the "
            "mel filterbank within its Nyquist frequency (fmax <= sr / 2)",
        )
    ]


def blocks(x: Any, to_numpy: ToNumpy = np.asarray) -> Iterator[np.ndarray]:
    """x (N, ...) (numpy, or anything `to_numpy` converts, e.g. a tensor on a GPU) as consecutive blocks of
    rows, each of about BLOCK_VALUES values: a whole training array is read without a copy of all of it."""
    step = max(1, BLOCK_VALUES // max(1, int(np.prod(x.shape[1:]))))
    for start in range(0, len(x), step):
        yield np.asarray(to_numpy(x[start : start + step]))


def _clip_keys(x: np.ndarray) -> list[bytes]:
    """One key per clip, equal for the same clip stored as float32 or float64."""
    return [clip.tobytes() for clip in np.round(x.astype(np.float32), 3)]


def split_leak(
    x_train: Any, x_val: np.ndarray, lengths_val: np.ndarray | None = None, *, to_numpy: ToNumpy = np.asarray
) -> list[Finding]:
    """Validation clips that are also training clips: validation then measures memory, not skill.
    The training array is read block by block (see `blocks`)."""
    if tuple(x_train.shape[1:]) != x_val.shape[1:]:
        return []
    keys = _clip_keys(x_val)
    wanted = set(keys)
    found: set[bytes] = set()
    for block in blocks(x_train, to_numpy):
        found.update(wanted.intersection(_clip_keys(block)))
    varied = np.ptp(x_val.reshape(len(x_val), -1), axis=1) > 0  # silent clips are alike without leaking
    shared = np.array([key in found for key in keys]) & varied
    share = float(shared.sum()) / max(int(varied.sum()), 1)
    if share < 0.05:
        return []
    return [
        Finding(
            "split_leak",
            ERROR if share >= 0.5 else WARNING,
            f"{int(shared.sum())} of {len(x_val)} validation clips ({share:.0%}) are also in the training "
            "arrays: validation accuracy measures memory, not recognition",
            {"shared_clips": int(shared.sum()), "n_val": len(x_val), "first": np.flatnonzero(shared)[:5].tolist()},
            "split the clips once, before any augmentation or copying, and keep the validation clips out "
            "of training (for FSDD, split by take index or by speaker)",
        )
    ]


def _standardised(x_train: Any, lengths: np.ndarray | None, to_numpy: ToNumpy) -> tuple[float, float]:
    """How far x is from zero mean and unit variance, per band and overall, over all or valid frames:
    (smallest max |mean|, smallest max |std - 1|) across those four ways of standardising. Sums are
    gathered block by block; without `lengths` they are inferred per block, against the whole array's scale."""
    scale = None
    if lengths is None:
        scale = max((float(np.abs(block).max()) for block in blocks(x_train, to_numpy) if block.size), default=0.0)
    width = int(x_train.shape[2])
    frames = {"all": 0, "valid": 0}
    total = {name: np.zeros(width) for name in frames}  # per-band sums
    squares = {name: np.zeros(width) for name in frames}  # per-band sums of squares
    start = 0
    for block in blocks(x_train, to_numpy):
        block = block.astype(np.float64)
        steps = checks.infer_lengths(block, scale=scale) if lengths is None else lengths[start : start + len(block)]
        start += len(block)
        valid = block[checks.valid_mask(steps, block.shape[1])]
        for name, rows in (("all", block.reshape(-1, width)), ("valid", valid)):
            frames[name] += len(rows)
            total[name] += rows.sum(axis=0)
            squares[name] += np.square(rows).sum(axis=0)
    offsets = []
    for name, n in frames.items():
        for mean, power in (
            (total[name] / n, squares[name] / n),
            (total[name].sum() / (n * width), squares[name].sum() / (n * width)),
        ):
            std = np.sqrt(np.maximum(power - np.square(mean), 0.0))
            offsets.append((float(np.abs(mean).max()), float(np.abs(std - 1).max())))
    best = min(offsets, key=lambda o: max(o))
    return float(best[0]), float(best[1])


def normalisation_leak(
    x_train: Any, lengths: np.ndarray | None = None, *, to_numpy: ToNumpy = np.asarray
) -> list[Finding]:
    """Training features standardised, but not on their own statistics: the scaler was fitted on other
    clips (the test or validation set, or everything before the split). Pass the whole training array
    (read block by block; valid frames inferred when `lengths` is None).
    """
    mean_off, std_off = _standardised(x_train, lengths, to_numpy)
    exact = max(mean_off, std_off) <= 2e-3  # float32 rounding of a scaler fitted on these very clips
    near = mean_off <= 0.5 and std_off <= 0.3
    if exact or not near:
        return []
    return [
        Finding(
            "normalisation_leak",
            WARNING,
            f"the training features are standardised, but not on their own statistics (band means up to "
            f"{mean_off:.3f} from 0, stds up to {std_off:.3f} from 1): the scaler was fitted on other clips",
            {"max_abs_mean": mean_off, "max_abs_std_minus_1": std_off, "n_train": len(x_train)},
            "fit the mean and std on the training clips only, then apply them to validation and test "
            "(statistics from the test set leak it into training and flatter the score)",
        )
    ]
