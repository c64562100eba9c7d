"""One training run end to end: FSDD -> waveforms -> features -> folds -> fit -> scores -> files.

`train_run` is what `spoken-digits train` calls; `evaluate_checkpoint` what `evaluate` calls.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import io
import json
import os
import platform
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from spoken_digits import audio, checkpoint, corrupt, fsdd
from spoken_digits.atomic import folder_lock, write_json, write_text
from spoken_digits.augment import Augmenter
from spoken_digits.config import AudioConfig, RunConfig, SplitConfig, SplitName
from spoken_digits.errors import ParameterError
from spoken_digits.evaluate import scores
from spoken_digits.features import Featurizer, fix_lengths
from spoken_digits.models import SEQUENCE_MODELS, count_parameters, create_model
from spoken_digits.predict import load_predictor
from spoken_digits.report import plot_confusion, plot_curves
from spoken_digits.runstate import RunState
from spoken_digits.splits import Fold, make_folds, stratified_split
from spoken_digits.train import FeatureSet, check_device, fit, predict_logits, rank_and_world, seed_everything

LOG_COLUMNS = ("fold", "epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "seconds")


@dataclass(frozen=True)
class Corpus:
    """FSDD clips read under one audio config: silence-trimmed waveforms (N, L) before the length
    rule, their lengths (N,), digits (N,) and speakers (N,)."""

    clips: list[fsdd.Clip]
    waves: torch.Tensor
    lengths: torch.Tensor
    labels: torch.Tensor
    speakers: np.ndarray
    audio: AudioConfig

    def fixed(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The waveforms after the length rule, (N, n_samples) and lengths: what the model hears."""
        n = self.audio.n_samples
        return (self.waves, self.lengths) if n is None else fix_lengths(self.waves, self.lengths, n, pad=self.audio.pad)


def load_corpus(clips: list[fsdd.Clip], cfg: RunConfig) -> Corpus:
    """Read every clip and find its word (detector or trim); the length rule comes later
    (`Corpus.fixed`, or after augmentation)."""
    natural = dataclasses.replace(cfg.audio, duration=None)
    waves, lengths = audio.batch(audio.load_all([c.path for c in clips], natural))
    labels = torch.tensor([c.digit for c in clips], dtype=torch.long)
    return Corpus(clips, waves, lengths, labels, np.array([c.speaker for c in clips]), cfg.audio)


@dataclass
class FoldResult:
    """A trained fold: its scores and training log (its checkpoint is already on disk)."""

    fold: Fold
    metrics: dict[str, Any]
    history: list[dict[str, float]]


def train_fold(
    cfg: RunConfig,
    corpus: Corpus,
    raw: tuple[torch.Tensor, torch.Tensor],
    fold: Fold,
    model_path: Path,
    *,
    state: RunState | None = None,
    on_epoch: Callable[[list[dict[str, float]]], None] = lambda _: None,
    save: bool = True,
) -> FoldResult:
    """Fit the standardiser and model on the fold's training clips, save the model, score the test clips.

    With `state`, the training state is saved after every epoch and picked up again if present.
    `save=False` (the non-zero ranks of a distributed run) writes nothing.
    """
    seed_everything(cfg.train.seed)
    labels = corpus.labels
    keep, held = stratified_split(labels[fold.train].numpy(), cfg.train.val_fraction, seed=cfg.train.seed)
    fit_idx, val_idx = fold.train[keep], fold.train[held]
    x_raw, frames = raw
    featurizer = Featurizer(cfg.audio.sr, cfg.features).to(x_raw.device)
    if featurizer.standardizer is not None:
        featurizer.standardizer.fit(x_raw[fit_idx], frames[fit_idx])  # training clips only
    data = FeatureSet(*featurizer.arrange(featurizer.standardize(x_raw, frames), frames), labels)
    model = create_model(cfg.model.name, n_features=cfg.n_features, n_classes=len(fsdd.CLASSES), **cfg.model.params)

    def epoch_done(progress: dict[str, Any]) -> None:
        if save:
            if state is not None:
                state.save_training(fold.name, progress)
            on_epoch(progress["history"])

    resume = state.training(fold.name) if state is not None else None
    augment, train_set = None, data.subset(fit_idx)
    if cfg.augment.active:  # train from waveforms, featurised batch by batch after augmentation
        noises = corrupt.read_noise_dir(cfg.augment.noise_dir, cfg.audio.sr) if cfg.augment.noise_dir else ()
        augment = Augmenter(cfg.augment, featurizer.to(check_device(cfg.train.device)), cfg.audio, noises=noises)
        train_set = FeatureSet(corpus.waves, corpus.lengths, labels).subset(fit_idx)
    result = fit(
        model,
        train_set,
        data.subset(val_idx),
        cfg.train,
        resume=resume,
        on_epoch=epoch_done,
        augment=augment,
        desc=fold.name,
    )
    metrics: dict[str, Any] = {
        "fold": fold.name,
        "n_train": len(fit_idx),
        "n_val": len(val_idx),
        "n_test": len(fold.test),
        "epochs_run": result.epochs_run,
        "best_epoch": result.best_epoch,
        "val_accuracy": result.history[result.best_epoch - 1].get("val_accuracy"),
        "n_parameters": count_parameters(model),
    }
    held_out = fold.test if len(fold.test) else val_idx  # split "all" has no test set: score validation
    if len(held_out):
        predicted = predict_logits(model, data.subset(held_out).to(cfg.train.device)).argmax(1).cpu().numpy()
        result_scores = scores(labels[held_out].numpy(), predicted, corpus.speakers[held_out].tolist(), fsdd.CLASSES)
        if len(fold.test):
            metrics["predicted"] = predicted.tolist()
            metrics.update(result_scores)
        else:
            metrics["val_confusion"] = result_scores["confusion"]
    info = {k: v for k, v in metrics.items() if k not in ("predicted", "confusion", "val_confusion")}
    ckpt = checkpoint.Checkpoint(cfg, list(fsdd.CLASSES), _cpu(model.state_dict()), _cpu(featurizer.state_dict()), info)
    if save:
        checkpoint.save(model_path, ckpt)
    return FoldResult(fold, metrics, result.history)


def train_run(
    cfg: RunConfig,
    out: str | os.PathLike[str],
    *,
    data: str | os.PathLike[str] | None = None,
    download: bool = True,
    say: Callable[[str], None] = lambda _: None,
    resume: bool = False,
) -> dict[str, Any]:
    """Train and evaluate `cfg` on FSDD, writing every output to `out`; returns the metrics.

    Progress is saved after every epoch; `resume=True` continues an interrupted run in `out` (use
    `resume_run` to take its config from `out/config.json`) and ends with the same metrics an
    uninterrupted run would have. `out` is locked for the run: a second run on it is refused.
    """
    if cfg.model.name in SEQUENCE_MODELS:
        raise ParameterError(f"{cfg.model.name} labels frames, not clips: train it with spoken-digits train-strings")
    started = time.perf_counter()
    out = Path(out)
    main = rank_and_world()[0] == 0  # under torchrun, rank 0 alone writes files and talks
    say = say if main else (lambda _: None)
    clips = fsdd.index(fsdd.locate(data, download=download))
    folds = make_folds(clips, cfg.split, seed=cfg.train.seed)  # validates the split before any work
    with folder_lock(out) if main else contextlib.nullcontext():
        state = RunState(out)
        if main and state.exists() and not resume:
            raise ParameterError(
                f"{out} holds an interrupted run; continue it with --resume {out} or choose another --out"
            )
        say(config_summary(cfg))
        if main:
            write_json(out / "config.json", cfg.to_dict())
        corpus = load_corpus(clips, cfg)
        device = check_device(cfg.train.device)  # features are computed where the model trains
        waves, lengths = corpus.fixed()
        raw = Featurizer(cfg.audio.sr, cfg.features).to(device).raw(waves.to(device), lengths.to(device))
        say(
            f"{len(clips)} clips -> features {tuple(raw[0].shape)} (N, T, n_mels) "
            f"in {time.perf_counter() - started:.1f} s"
        )
        per_fold = cfg.split.name is SplitName.LOSO
        results: list[FoldResult] = []
        for fold in folds:
            if (record := state.finished(fold.name)) is not None:
                results.append(FoldResult(fold, record["metrics"], record["history"]))
                say(f"fold {fold.name}: finished before, kept")
                continue

            def log_progress(history: list[dict[str, float]], name: str = fold.name) -> None:
                write_text(out / "log.csv", _log_csv([*((r.fold.name, r.history) for r in results), (name, history)]))

            model_path = (out / "folds" / fold.name if per_fold else out) / "model.pt"
            result = train_fold(cfg, corpus, raw, fold, model_path, state=state, on_epoch=log_progress, save=main)
            if main:
                state.save_finished(fold.name, {"metrics": result.metrics, "history": result.history})
            results.append(result)
            score = headline(result.metrics.get("accuracy"), result.metrics["val_accuracy"])
            say(f"fold {fold.name}: {score} after {result.metrics['epochs_run']} epochs")
        metrics = _summarise(cfg, corpus, results)
        metrics["seconds"] = round(time.perf_counter() - started, 2)
        metrics["machine"] = machine(cfg.train.device)
        if main:
            _write_outputs(out, results, metrics, per_fold=per_fold)
            state.clear()
    return metrics


def resume_run(out: str | os.PathLike[str], **kwargs: Any) -> dict[str, Any]:
    """Continue the interrupted run in `out` with the config it started with."""
    out = Path(out)
    return train_run(resumable_config(out), out, resume=True, **kwargs)


def resumable_config(out: str | os.PathLike[str]) -> RunConfig:
    """The config an interrupted run in `out` started with (its device included); an error if none."""
    out = Path(out)
    if not (out / "config.json").is_file():
        raise ParameterError(f"{out}: nothing to resume (no config.json; was it a spoken-digits run folder?)")
    if not RunState(out).exists():
        done = (out / "metrics.json").is_file()
        raise ParameterError(f"{out}: nothing to resume" + (" (the run is complete)" if done else ""))
    try:
        return RunConfig.from_dict(json.loads((out / "config.json").read_text()))
    except ValueError as exc:
        raise ParameterError(f"{out / 'config.json'}: not a readable run config ({exc})") from None


def machine(device: str) -> dict[str, Any]:
    """Where a run's numbers were measured: the same config and seed repeat them exactly only on the
    same machine with the same torch version and thread count (float sums are ordered by threads)."""
    return {
        "cpu": _cpu_name(),
        "cores": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "device": torch.cuda.get_device_name(check_device(device)) if device.startswith("cuda") else "cpu",
    }


def _cpu_name() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    return platform.processor() or platform.machine()


def headline(test_accuracy: float | None, val_accuracy: float | None) -> str:
    """The one-line score of a run or fold: test accuracy, or validation accuracy when there is no test set."""
    if test_accuracy is not None:
        return f"test accuracy {test_accuracy:.4f}"
    if val_accuracy is not None:
        return f"validation accuracy {val_accuracy:.4f} (no test set)"
    return "no test set and no validation slice: nothing held out to score"


def _summarise(cfg: RunConfig, corpus: Corpus, results: list[FoldResult]) -> dict[str, Any]:
    head = {
        "preset": cfg.preset,
        "model": cfg.model.name,
        "split": cfg.split.name.value,
        "seed": cfg.train.seed,
        "n_parameters": results[0].metrics["n_parameters"],
    }
    if cfg.split.name is not SplitName.LOSO:
        only = {k: v for k, v in results[0].metrics.items() if k not in ("predicted", "fold", "accuracy")}
        return {**head, "test_accuracy": results[0].metrics.get("accuracy"), **only}
    # Leave-one-speaker-out: every clip is tested exactly once, so pooled scores are well defined.
    test_idx = np.concatenate([r.fold.test for r in results])
    predicted = np.concatenate([r.metrics["predicted"] for r in results])
    pooled = scores(corpus.labels[test_idx].numpy(), predicted, corpus.speakers[test_idx].tolist(), fsdd.CLASSES)
    folds = {r.fold.name: r.metrics["accuracy"] for r in results}
    return {
        **head,
        "test_accuracy": float(np.mean(list(folds.values()))),
        "folds": folds,
        "worst_fold": min(folds, key=folds.__getitem__),
        "per_class": pooled["per_class"],
        "per_speaker": pooled["per_speaker"],
        "confusion": pooled["confusion"],
        "n_train": int(np.mean([r.metrics["n_train"] for r in results])),
        "n_val": int(np.mean([r.metrics["n_val"] for r in results])),
        "n_test": len(test_idx),
        "epochs_run": int(sum(r.metrics["epochs_run"] for r in results)),
        "fold_epochs": {r.fold.name: r.metrics["epochs_run"] for r in results},
    }


def _write_outputs(out: Path, results: list[FoldResult], metrics: dict[str, Any], *, per_fold: bool) -> None:
    for r in results if per_fold else []:
        folder = out / "folds" / r.fold.name
        write_json(folder / "metrics.json", {k: v for k, v in r.metrics.items() if k != "predicted"})
        write_text(folder / "log.csv", _log_csv([(r.fold.name, r.history)]))
    write_text(out / "log.csv", _log_csv([(r.fold.name, r.history) for r in results]))
    write_json(out / "metrics.json", metrics)
    plot_curves({r.fold.name: r.history for r in results}, out / "curves.png")
    if "confusion" in metrics:
        title = f"{metrics['model']} on {metrics['split']}: accuracy {metrics['test_accuracy']:.3f}"
        plot_confusion(metrics["confusion"], fsdd.CLASSES, out / "confusion.png", title=title)
    elif "val_confusion" in metrics:
        title = f"{metrics['model']}, validation slice (no test set): accuracy {metrics['val_accuracy']:.3f}"
        plot_confusion(metrics["val_confusion"], fsdd.CLASSES, out / "confusion.png", title=title)


def _log_csv(histories: list[tuple[str, list[dict[str, float]]]]) -> str:
    """The per-epoch log of (fold name, history) pairs as CSV text."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, LOG_COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for name, history in histories:
        for row in history:
            writer.writerow({"fold": name, **{k: round(v, 6) if isinstance(v, float) else v for k, v in row.items()}})
    return buffer.getvalue()


def _cpu(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in state.items()}


def evaluate_checkpoint(
    path: str | os.PathLike[str],
    split: SplitConfig,
    *,
    data: str | os.PathLike[str] | None = None,
    download: bool = True,
    out: str | os.PathLike[str] | None = None,
    device: str = "cpu",
) -> dict[str, Any]:
    """Score a saved model (.pt, or an exported .onnx) on the test clips of `split` (all folds pooled for loso).

    The clips go through the predictor, the same path as `predict`, so this scores what users get.
    """
    predictor = load_predictor(path, device=str(check_device(device)))
    cfg = predictor.config
    clips = fsdd.index(fsdd.locate(data, download=download))
    test = np.concatenate([f.test for f in make_folds(clips, split, seed=cfg.train.seed)])
    if not len(test):
        raise ParameterError("the 'all' split has no test clips to evaluate on; choose official, random or loso")
    warn_on_overlap(cfg, predictor.info.get("fold"), clips, test)
    tested = [clips[i] for i in test]
    waves = [audio.read_audio(c.path, cfg.audio.sr, max_duration=cfg.audio.max_duration) for c in tested]
    predicted = predictor.probabilities(waves).argmax(axis=1)
    result = scores([c.digit for c in tested], predicted, [c.speaker for c in tested], predictor.classes)
    metrics = {
        "checkpoint": str(path),
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


def warn_on_overlap(cfg: RunConfig, fold_name: object, clips: list[fsdd.Clip], test: np.ndarray) -> None:
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


def config_summary(cfg: RunConfig) -> str:
    """The run's full config as indented JSON, for printing before a run."""
    return json.dumps(cfg.to_dict(), indent=2)
