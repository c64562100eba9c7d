"""The doctor: why does a model not learn? Checks data, labels and training dynamics, names the cause.

- `diagnose_arrays(x, y)`: a user's own arrays (what their loader produced), with the seed's LSTM
  or any model factory for the short training run;
- `diagnose_run(cfg)`: one of our pipelines, built exactly as `train` builds it;
- `diagnose_history(accuracies, n_train)`: a per-epoch accuracy list (the seed's symptom);
- inside a user's own training: `diagnose.keras.DoctorCallback` and `diagnose.pytorch.Doctor`, thin
  adapters over `diagnose.watch`, which runs the same data checks (`diagnose.examine`) plus what
  only training shows.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections import Counter
from collections.abc import Callable, Sequence

import numpy as np
import soundfile as sf
import torch
from torch import nn

from spoken_digits.config import RunConfig
from spoken_digits.data.clips import Dataset
from spoken_digits.data.splits import stratified_split
from spoken_digits.diagnose.dynamics import TrainingMonitor, instrumented_run
from spoken_digits.diagnose.examine import examine, features_view
from spoken_digits.diagnose.findings import CODES, Diagnosis, Finding, Severity, rank
from spoken_digits.diagnose.history import constant_prediction
from spoken_digits.errors import ParameterError
from spoken_digits.frontend.batches import FeatureSet
from spoken_digits.training.train import seed_everything

__all__ = [
    "CODES",
    "Diagnosis",
    "Finding",
    "PipelineArrays",
    "Severity",
    "TrainingMonitor",
    "diagnose_arrays",
    "diagnose_history",
    "diagnose_run",
    "load_arrays",
    "pipeline_arrays",
]

MAX_TRAIN_CLIPS = 2000  # the short run needs a sample, not the whole set
SAMPLE_CLIPS = 5000  # the data checks read at most this many training clips (a seeded sample)


def diagnose_arrays(
    x: np.ndarray,
    y: np.ndarray,
    *,
    lengths: np.ndarray | None = None,
    n_classes: int | None = None,
    model: Callable[[], nn.Module] | None = None,
    lr: float = 1e-3,
    adam_eps: float = 1e-7,
    batch_size: int = 32,
    seed: int = 0,
    durations: np.ndarray | None = None,
    duration_limit: float | None = None,
    dynamics: bool = True,
    spectral: bool = True,
) -> Diagnosis:
    """Diagnose features x (N, T, F) as a model reads them, with integer labels y (N,); a channel axis
    of 1 ((N, T, F, 1) or (N, 1, T, F)) is dropped, as the training hooks drop it.

    Without `lengths`, a trailing run of identical frames counts as padding, and the model
    is taken to read it (as a Keras LSTM without masking does). `model` builds a fresh untrained
    model mapping (x, lengths) to logits; the default is the seed's LSTM. `durations` (seconds) and
    `duration_limit` let the truncation check run. `spectral=False`: the features are a learnt
    embedding (the speech encoder's), not bands, so the band checks are skipped.
    """
    started = time.perf_counter()
    y = np.asarray(y)
    view = features_view(np.asarray(x))
    if view is None or len(view) != len(y) or len(view) < 10:
        raise ParameterError(
            f"need x as (N, T, F) (or with a channel axis of 1) and y as (N,) with N >= 10; "
            f"got x {np.shape(x)} and y {y.shape}"
        )
    x = view.astype(np.float32, copy=False)
    context: dict[str, object] = {"shape": list(x.shape), "n_clips": len(x), "lr": lr, "batch_size": batch_size}
    found = examine(
        x,
        y,
        lengths=lengths,
        n_classes=n_classes,
        durations=durations,
        duration_limit=duration_limit,
        seed=seed,
        spectral=spectral,
    )
    findings = found.findings
    if found.stopped:
        return Diagnosis(findings, time.perf_counter() - started, context | {"skipped": found.stopped})
    if dynamics:
        explained = any(f.severity is Severity.ERROR for f in findings)  # no need to vary the learning rate
        steps = found.lengths if found.masked else None
        findings += _dynamics(x, y, steps, found.n_classes, model, lr, adam_eps, batch_size, seed, explained)
    return Diagnosis(findings, time.perf_counter() - started, context)


def _dynamics(
    x: np.ndarray,
    y: np.ndarray,
    lengths: np.ndarray | None,
    k: int,
    model: Callable[[], nn.Module] | None,
    lr: float,
    eps: float,
    batch_size: int,
    seed: int,
    explained: bool,
) -> list[Finding]:
    seed_everything(seed)
    steps = torch.as_tensor(lengths if lengths is not None else np.full(len(x), x.shape[1]), dtype=torch.long)
    data = FeatureSet(torch.from_numpy(x), steps, torch.as_tensor(y, dtype=torch.long))
    keep, held = stratified_split(y, 0.2, seed=seed)
    keep = np.random.default_rng(seed).permutation(keep)[:MAX_TRAIN_CLIPS]
    if model is None:
        from spoken_digits.models.nets import create_model

        width = x.shape[2]
        model = lambda: create_model("seed_lstm", n_features=width, n_classes=k)  # noqa: E731
    return instrumented_run(
        model,
        data.subset(keep),
        data.subset(held),
        lr=lr,
        eps=eps,
        batch=batch_size,
        n_classes=k,
        seed=seed,
        counterfactual=not explained,
    )


def diagnose_history(
    accuracies: Sequence[float], n_train: int, *, n_classes: int = 10, class_counts: Sequence[int] | None = None
) -> Diagnosis:
    """Diagnose a per-epoch accuracy history measured on `n_train` clips."""
    if n_train < 1:
        raise ParameterError(f"n_train must be >= 1, got {n_train}")
    if len(accuracies) < 3:
        raise ParameterError(f"need at least 3 epochs of accuracies to read a history, got {len(accuracies)}")
    if any(not 0 <= a <= 1 for a in accuracies):
        raise ParameterError("accuracies must be fractions in [0, 1]")
    started = time.perf_counter()
    findings = constant_prediction(accuracies, n_train, n_classes=n_classes, class_counts=class_counts)
    return Diagnosis(findings, time.perf_counter() - started, {"n_train": n_train, "n_epochs": len(accuracies)})


@dataclasses.dataclass(frozen=True)
class PipelineArrays:
    """What one of our pipelines feeds its model: x (N, T, F), valid frames, labels, true clip durations."""

    x: np.ndarray
    lengths: np.ndarray
    y: np.ndarray
    durations: np.ndarray
    rates: dict[int, int]  # files per native sample rate


def pipeline_arrays(
    cfg: RunConfig, *, data: str | os.PathLike[str] | Dataset | None = None, download: bool = True
) -> PipelineArrays:
    """The training clips of `cfg`'s split (first fold; a seeded sample of SAMPLE_CLIPS when there are more),
    through the features `train` would compute."""
    from spoken_digits.data.sources import open_dataset
    from spoken_digits.data.splits import make_folds
    from spoken_digits.frontend.features import Featurizer
    from spoken_digits.training.corpus import load_corpus

    dataset = data if isinstance(data, Dataset) else open_dataset(data, download=download)
    train = make_folds(dataset.clips, cfg.split, seed=cfg.train.seed)[0].train
    if len(train) > SAMPLE_CLIPS:
        train = np.sort(np.random.default_rng(cfg.train.seed).choice(train, SAMPLE_CLIPS, replace=False))
    trained = dataset.subset(train)
    corpus = load_corpus(trained, cfg)  # the same reading and length rule as train
    trained = corpus.data
    durations = corpus.lengths.numpy() / cfg.audio.sr  # true lengths (after the trim), for the truncation check
    rates = Counter(sf.info(str(c.path)).samplerate for c in trained.clips)
    featurizer = Featurizer(cfg.audio.sr, cfg.features)
    x, frames = featurizer.raw(*corpus.fixed())
    if featurizer.standardizer is not None:
        featurizer.standardizer.fit(x, frames)
    labels = corpus.labels.numpy()
    features, frames = featurizer.arrange(featurizer.standardize(x, frames), frames)
    return PipelineArrays(features.numpy(), frames.numpy(), labels, durations, dict(sorted(rates.items())))


def diagnose_run(
    cfg: RunConfig, *, data: str | os.PathLike[str] | Dataset | None = None, download: bool = True
) -> Diagnosis:
    """Diagnose one of our pipelines on the training clips of its split, built exactly as `train` builds it."""
    from spoken_digits.data.sources import open_dataset
    from spoken_digits.models.nets import create_model

    started = time.perf_counter()
    dataset = data if isinstance(data, Dataset) else open_dataset(data, download=download)
    CLASSES = dataset.classes
    arrays = pipeline_arrays(cfg, data=dataset)
    factory = lambda: create_model(  # noqa: E731
        cfg.model.name, n_features=cfg.n_features, n_classes=len(CLASSES), **cfg.model.params
    )
    result = diagnose_arrays(
        arrays.x,
        arrays.y,
        lengths=arrays.lengths,
        n_classes=len(CLASSES),
        model=factory,
        lr=cfg.train.lr,
        adam_eps=cfg.train.adam_eps,
        batch_size=cfg.train.batch_size,
        seed=cfg.train.seed,
        durations=arrays.durations,
        duration_limit=cfg.audio.duration,
        spectral=cfg.features.encoder is None,
    )
    result.findings = rank(result.findings + _sample_rates(arrays.rates, cfg.audio.sr))
    result.seconds = time.perf_counter() - started
    result.context |= {"preset": cfg.preset, "model": cfg.model.name, "split": cfg.split.name.value}
    return result


def _sample_rates(rates: dict[int, int], target: int) -> list[Finding]:
    """Files at rates other than the model's: fine when the loader resamples, wrong when it does not."""
    others = {rate: n for rate, n in rates.items() if rate != target}
    evidence = {"files_per_rate": rates, "model_rate": target}
    if not others:
        return [Finding("sample_rates", Severity.INFO, f"every file is at the model's {target} Hz", evidence, "")]
    title = f"{sum(others.values())} files are not at {target} Hz; they are resampled on reading"
    return [Finding("sample_rates", Severity.INFO, title, evidence, "")]


def load_arrays(path: str | os.PathLike[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """X, y and optional lengths from a user's .npz (keys X and y; optional lengths)."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            missing = {"X", "y"} - set(archive.files)
            if missing:
                raise ParameterError(f"{path}: missing array(s) {sorted(missing)}; found {archive.files}")
            lengths = archive["lengths"] if "lengths" in archive.files else None
            return archive["X"], archive["y"], lengths
    except (OSError, ValueError) as exc:
        raise ParameterError(f"{path}: not a readable .npz file ({exc})") from None
