"""Scores of predictions (accuracy, per class, per speaker, confusion), and scoring a saved model on a dataset."""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from spoken_digits.atomic import write_json
from spoken_digits.config import RunConfig, SplitConfig, SplitName
from spoken_digits.data.clips import Clip, DataOptions, Dataset, file_digest
from spoken_digits.data.sources import open_dataset, same_source
from spoken_digits.data.splits import make_folds
from spoken_digits.device import check_device
from spoken_digits.errors import ParameterError
from spoken_digits.evaluation.calibration import calibration_report
from spoken_digits.evaluation.report import plot_confusion
from spoken_digits.frontend import audio
from spoken_digits.recognize.load import load_predictor


def confusion(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """(n_classes, n_classes) counts; row = true class, column = predicted class."""
    matrix = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(matrix, (y_true, y_pred), 1)
    return matrix


def scores(
    y_true: Sequence[int] | np.ndarray,
    y_pred: Sequence[int] | np.ndarray,
    speakers: Sequence[str],
    classes: Sequence[str],
) -> dict[str, Any]:
    """Accuracy overall, per class and per speaker, plus the confusion matrix, as JSON-able values."""
    y_true, y_pred, who = np.asarray(y_true), np.asarray(y_pred), np.asarray(speakers)
    hit = y_true == y_pred
    per_class = {name: float(hit[y_true == i].mean()) for i, name in enumerate(classes) if (y_true == i).any()}
    per_speaker = {s: float(hit[who == s].mean()) for s in sorted(set(who.tolist()))}
    return {
        "accuracy": float(hit.mean()) if len(hit) else float("nan"),
        "per_class": per_class,
        "per_speaker": per_speaker,
        "confusion": confusion(y_true, y_pred, len(classes)).tolist(),
        "n": len(hit),
    }


def evaluate_checkpoint(
    path: str | os.PathLike[str],
    split: SplitConfig | None = None,
    *,
    data: str | os.PathLike[str] | Dataset | None = None,
    options: DataOptions | None = None,
    download: bool = True,
    out: str | os.PathLike[str] | None = None,
    device: str = "cpu",
) -> dict[str, Any]:
    """Score a saved model (.pt, or an exported .onnx) on the test clips of `split` (all folds pooled for loso).

    By default the model is scored as its run tested it: its own split (`split` None), its own dataset (`data`
    None, when that folder is still there) read with its own data options (each of `options` not given). The
    clips go through the predictor, the same path as `predict`, so this scores what users get. The dataset's
    classes must be among the model's (a keyword model is scored on its own words). Test clips with the same
    bytes as clips the model was trained on are counted (`seen_in_training`) and warned about.
    """
    predictor = load_predictor(path, device=str(check_device(device)))
    cfg = predictor.config
    dataset = data if isinstance(data, Dataset) else _open(predictor.info, data, options, download)
    split = own_split(cfg, predictor.info) if split is None else split
    unknown = sorted(set(dataset.classes) - set(predictor.classes))
    if unknown:
        raise ParameterError(
            f"{path} knows {', '.join(predictor.classes)}; this dataset also has {', '.join(unknown)}: "
            "evaluate on data of the model's own classes (--classes keeps some)"
        )
    listed = predictor.info.get("skipped", [])
    skipped = {str(f) for f in listed} if isinstance(listed, list) else set()  # training left these out
    if skipped and predictor.info.get("data_root") == str(dataset.root):
        dataset = dataset.subset([i for i, c in enumerate(dataset.clips) if str(c.path) not in skipped])
    test = np.concatenate([f.test for f in make_folds(dataset.clips, split, seed=cfg.train.seed)])
    if not len(test):
        raise ParameterError("the 'all' split has no test clips to evaluate on; choose official, random or loso")
    tested = [dataset.clips[i] for i in test]
    seen = seen_in_training(predictor.info, tested, split)
    if seen is None and predictor.info.get("data_root", str(dataset.root)) == str(dataset.root):
        warn_on_overlap(cfg, predictor.info.get("fold"), dataset.clips, test)  # checkpoints without digests
    index = {name: i for i, name in enumerate(predictor.classes)}
    probabilities = np.concatenate([predictor.probabilities(_read(tested[i : i + 256], cfg))
                                    for i in range(0, len(tested), 256)])  # fmt: skip
    truth = [index[c.label] for c in tested]
    result = scores(truth, probabilities.argmax(axis=1), [c.speaker for c in tested], predictor.classes)
    metrics = {
        "checkpoint": str(path),
        "data": dataset.describe(),
        "data_options": dataset.options.to_dict(),
        "split": split.name.value,
        "speaker": split.speaker,
        "test_accuracy": result.pop("accuracy"),
        "n_test": result.pop("n"),
        "seen_in_training": seen,
        "temperature": predictor.temperature,
        "calibration": calibration_report(probabilities, np.array(truth)),  # ECE and risk-coverage
        **result,
    }
    if out is not None:
        write_json(Path(out) / "metrics.json", metrics)
        title = f"{Path(path).name} on {split.name.value}: {metrics['test_accuracy']:.3f}"
        plot_confusion(metrics["confusion"], predictor.classes, Path(out) / "confusion.png", title=title)
    return metrics


def _open(
    info: dict[str, object], data: str | os.PathLike[str] | None, given: DataOptions | None, download: bool
) -> Dataset:
    """The dataset to score on: `data` (default: the run's own folder, if it is still there), read with the
    options given, and the run's own for the rest when it is the run's dataset."""
    given = given or DataOptions()
    root = info.get("data_root")
    if data is None and isinstance(root, str) and Path(root).exists():
        data = root
    own = isinstance(root, str) and (data is None or same_source(data, root))
    options = given.over(DataOptions.from_dict(info.get("data_options"))) if own else given
    return open_dataset(
        data,
        download=download,
        speaker_pattern=options.speaker_pattern,
        classes=options.classes,
        skip_bad=bool(options.skip_bad),
        mixed_rates=bool(options.mixed_rates),
    )


def own_split(cfg: RunConfig, info: dict[str, object]) -> SplitConfig:
    """The split the model's run tested on: its config's, narrowed to the model's own fold for loso."""
    fold = info.get("fold")
    if cfg.split.name is SplitName.LOSO and isinstance(fold, str):
        return SplitConfig(SplitName.LOSO, speaker=fold, test_fraction=cfg.split.test_fraction)
    return cfg.split


def seen_in_training(info: dict[str, object], tested: list[Clip], split: SplitConfig) -> int | None:
    """How many test clips have the same bytes as a clip the model trained on (None: the checkpoint does not
    say what it trained on); any is warned about, whatever the split is called."""
    trained = info.get("trained")
    if not isinstance(trained, list) or not trained:
        return None
    known = set(trained)
    width = len(trained[0])
    seen = sum(file_digest(c.path)[:width] in known for c in tested)
    if seen:
        warnings.warn(
            f"{seen} of {len(tested)} test clips were in this model's training data (identical files), so "
            f"the accuracy on --split {split.name.value} is optimistic; score it as its run did: give no "
            "--split and none of --speaker-pattern, --classes, --skip-bad, --mixed-rates",
            stacklevel=3,
        )
    return seen


def _read(clips: list[Clip], cfg: RunConfig) -> list[np.ndarray]:
    return [audio.read_audio(c.path, cfg.audio.sr, max_duration=cfg.audio.max_duration) for c in clips]


def warn_on_overlap(cfg: RunConfig, fold_name: object, clips: list[Clip], test: np.ndarray) -> None:
    """Warn when test clips were among the model's own training clips (fold `fold_name`): an inflated score."""
    trained = [f for f in make_folds(clips, cfg.split, seed=cfg.train.seed) if f.name == fold_name]
    if trained:
        seen = np.intersect1d(trained[0].train, test)
        if len(seen):
            warnings.warn(
                f"{len(seen)} of {len(test)} test clips were in this model's training split "
                f"({cfg.split.name.value}/{fold_name}): the accuracy is optimistic",
                stacklevel=2,
            )
