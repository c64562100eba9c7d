"""Scores of predictions (accuracy, per class, per speaker, confusion), and scoring a saved model on a dataset."""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from spoken_digits.atomic import write_json
from spoken_digits.config import RunConfig, SplitConfig
from spoken_digits.data.clips import Clip, Dataset
from spoken_digits.data.sources import open_dataset
from spoken_digits.data.splits import make_folds
from spoken_digits.device import check_device
from spoken_digits.errors import ParameterError
from spoken_digits.evaluation.report import plot_confusion
from spoken_digits.frontend import audio
from spoken_digits.recognize.predict import load_predictor


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
    split: SplitConfig,
    *,
    data: str | os.PathLike[str] | Dataset | None = None,
    download: bool = True,
    out: str | os.PathLike[str] | None = None,
    device: str = "cpu",
) -> dict[str, Any]:
    """Score a saved model (.pt, or an exported .onnx) on the test clips of `split` (all folds pooled for loso).

    The clips go through the predictor, the same path as `predict`, so this scores what users get.
    The dataset's classes must be among the model's (a keyword model is scored on its own words).
    """
    predictor = load_predictor(path, device=str(check_device(device)))
    cfg = predictor.config
    dataset = data if isinstance(data, Dataset) else open_dataset(data, download=download)
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
    if predictor.info.get("data_root", str(dataset.root)) == str(dataset.root):  # the model's own dataset
        warn_on_overlap(cfg, predictor.info.get("fold"), dataset.clips, test)
    tested = [dataset.clips[i] for i in test]
    index = {name: i for i, name in enumerate(predictor.classes)}
    predicted = np.concatenate([predictor.probabilities(_read(tested[i : i + 256], cfg)).argmax(axis=1)
                                for i in range(0, len(tested), 256)])  # fmt: skip
    truth = [index[c.label] for c in tested]
    result = scores(truth, predicted, [c.speaker for c in tested], predictor.classes)
    metrics = {
        "checkpoint": str(path),
        "data": dataset.describe(),
        "split": split.name.value,
        "speaker": split.speaker,
        "test_accuracy": result.pop("accuracy"),
        "n_test": result.pop("n"),
        **result,
    }
    if out is not None:
        write_json(Path(out) / "metrics.json", metrics)
        title = f"{Path(path).name} on {split.name.value}: {metrics['test_accuracy']:.3f}"
        plot_confusion(metrics["confusion"], predictor.classes, Path(out) / "confusion.png", title=title)
    return metrics


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
