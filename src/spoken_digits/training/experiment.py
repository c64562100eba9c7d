"""One training run end to end: dataset -> waveforms (cached) -> features -> folds -> fit -> scores -> files.

`train_run` is what `spoken-digits train` calls; `evaluate_checkpoint` what `evaluate` calls.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch

from spoken_digits.atomic import folder_lock, write_json, write_text
from spoken_digits.config import RunConfig, SplitName
from spoken_digits.data import tts
from spoken_digits.data.clips import Dataset
from spoken_digits.data.sources import open_dataset
from spoken_digits.data.splits import Fold, check_duplicates, make_folds
from spoken_digits.device import check_device, machine
from spoken_digits.errors import DatasetError, ParameterError, SpokenDigitsError
from spoken_digits.evaluation.calibration import calibration_report, softmax
from spoken_digits.evaluation.evaluate import scores
from spoken_digits.evaluation.report import plot_confusion, plot_curves
from spoken_digits.frontend import corrupt
from spoken_digits.frontend.augment import Augmenter
from spoken_digits.frontend.batches import FeatureSet
from spoken_digits.frontend.features import Featurizer
from spoken_digits.models import checkpoint
from spoken_digits.models.nets import SEQUENCE_MODELS, count_parameters, create_model
from spoken_digits.training.calibrate import calibrate, held_out_views
from spoken_digits.training.corpus import STANDARDIZER_CLIPS, Corpus, length_rule, load_corpus
from spoken_digits.training.filler import with_classes, with_filler
from spoken_digits.training.rundata import (
    check_same_data,
    data_record,
    fold_summary,
    saved_data,
    shares,
    skipped_list,
    split_note,
    trained_digests,
    training_slices,
)
from spoken_digits.training.runstate import RunState
from spoken_digits.training.train import Batches, fit, predict_logits, rank_and_world, seed_everything
from spoken_digits.training.views import augmented_views

T = TypeVar("T")
LOG_COLUMNS = ("fold", "epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "seconds")


@dataclass
class FoldResult:
    """A trained fold: its scores and training log (its checkpoint is already on disk)."""

    fold: Fold
    metrics: dict[str, Any]
    history: list[dict[str, float]]


def train_fold(
    cfg: RunConfig,
    corpus: Corpus,
    raw: tuple[torch.Tensor, torch.Tensor] | None,
    fold: Fold,
    model_path: Path,
    *,
    state: RunState | None = None,
    on_epoch: Callable[[list[dict[str, float]]], None] = lambda _: None,
    save: bool = True,
) -> FoldResult:
    """Fit the standardiser and model on the fold's training clips, save the model, score the test clips.

    `raw` holds every clip's unstandardised features when the corpus is in memory (None: it streams).
    With `state`, the training state is saved after every epoch and picked up again if present.
    `save=False` (the non-zero ranks of a distributed run) writes nothing.
    """
    seed_everything(cfg.train.seed)
    labels, classes = corpus.labels, with_classes(corpus.data.classes, cfg.augment)
    fit_idx, val_idx = training_slices(corpus, fold, cfg.train.val_fraction, seed=cfg.train.seed)
    device = check_device(cfg.train.device)
    featurizer = Featurizer(cfg.audio.sr, cfg.features).to(device)
    rule = length_rule(cfg.audio)
    data: Batches
    if raw is not None:
        x_raw, frames = raw
        if featurizer.standardizer is not None:
            featurizer.standardizer.fit(x_raw[fit_idx], frames[fit_idx])  # training clips only
        data = FeatureSet(*featurizer.arrange(featurizer.standardize(x_raw, frames), frames), labels)
    else:
        if featurizer.standardizer is not None:  # on a sample of the training clips
            waves, lengths = corpus.stream().subset(fit_idx).sample(STANDARDIZER_CLIPS, seed=cfg.train.seed)
            featurizer.standardizer.fit(*featurizer.raw(*rule(waves.to(device), lengths.to(device))))
        data = corpus.stream(lambda waves, lengths: featurizer(*rule(waves, lengths)))
    model = create_model(cfg.model.name, n_features=cfg.n_features, n_classes=len(classes), **cfg.model.params)

    def epoch_done(progress: dict[str, Any]) -> None:
        if save:
            if state is not None:
                state.save_training(fold.name, progress)
            on_epoch(progress["history"])

    resume = state.training(fold.name) if state is not None else None
    augment = augmenter = None
    train_set: Batches = data.subset(fit_idx)
    held_out: Batches = data.subset(val_idx)  # what the temperature is fitted on
    if cfg.augment.active:  # train from waveforms, featurised batch by batch after augmentation
        noises = corrupt.read_noise_dir(cfg.augment.noise_dir, cfg.audio.sr) if cfg.augment.noise_dir else []
        if cfg.augment.noise and corpus.data.noise:  # the dataset's own background recordings
            noises += corrupt.read_noises(corpus.data.noise, cfg.audio.sr, what=f"{corpus.data.root} noise")
        augment = augmenter = Augmenter(cfg.augment, featurizer, cfg.audio, noises=noises)
        source: Batches = corpus.stream() if corpus.waves is None else FeatureSet(corpus.waves, corpus.lengths, labels)
        train_set, val_waves = with_filler(source.subset(fit_idx), source.subset(val_idx), classes, cfg)
        if cfg.augment.views:  # made once, reused every epoch
            train_set = augmented_views(train_set.to(device), augment, cfg.augment.views, seed=cfg.train.seed)
            augment = None
        val_waves = val_waves.to(device)  # the augmenter's rooms, noises and featuriser are on the device
        held_out = held_out_views(held_out, val_waves, augmenter, classes, cfg.augment.filler, seed=cfg.train.seed)
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
    metrics["calibration"] = calibrate(model, held_out.to(device))
    tested = fold.test if len(fold.test) else val_idx  # split "all" has no test set: score validation
    if len(tested):
        logits = predict_logits(model, data.subset(tested).to(cfg.train.device)).cpu().numpy()
        predicted, truth = logits.argmax(1), labels[tested].numpy()
        result_scores = scores(truth, predicted, corpus.speakers[tested].tolist(), classes)
        if len(fold.test):
            metrics["predicted"] = predicted.tolist()
            metrics.update(result_scores)
            temperature = metrics["calibration"]["temperature"]
            metrics["test_calibration"] = calibration_report(softmax(logits, temperature), truth)
        else:
            metrics["val_confusion"] = result_scores["confusion"]
    metrics["shares"] = shares(len(fit_idx), len(val_idx), len(fold.test))
    info = {k: v for k, v in metrics.items() if k not in ("predicted", "confusion", "val_confusion")}
    info["temperature"] = metrics["calibration"]["temperature"]  # predictors divide the logits by it
    info |= {
        "data": corpus.data.describe(),
        "data_root": str(corpus.data.root),
        "skipped": sorted(corpus.data.skipped),
        "data_options": corpus.data.options.to_dict(),
        "trained": trained_digests(corpus.digests, fold.train),  # evaluate warns when it tests on these
    }
    ckpt = checkpoint.Checkpoint(cfg, list(classes), _cpu(model.state_dict()), _cpu(featurizer.state_dict()), info)
    if save:
        checkpoint.save(model_path, ckpt)
    return FoldResult(fold, metrics, result.history)


def train_run(
    cfg: RunConfig,
    out: str | os.PathLike[str],
    *,
    data: str | os.PathLike[str] | Dataset | None = None,
    download: bool = True,
    say: Callable[[str], None] = lambda _: None,
    resume: bool = False,
    workers: int | None = None,
    skip_bad: bool = False,
) -> dict[str, Any]:
    """Train and evaluate `cfg` on a dataset (a path, an opened Dataset, or None for FSDD), writing every
    output to `out`; returns the metrics.

    Progress is saved after every epoch; `resume=True` continues an interrupted run in `out` (use
    `resume_run` to take its config from `out/config.json`) and ends with the same metrics an
    uninterrupted run would have. `out` is locked for the run: a second run on it is refused.
    `workers` processes run the front end (None: every core); `skip_bad` leaves unusable clips out.
    """
    if cfg.model.name in SEQUENCE_MODELS:
        raise ParameterError(f"{cfg.model.name} labels frames, not clips: train it with spoken-digits train-strings")
    started = time.perf_counter()
    out = Path(out)
    rank, world = rank_and_world()
    main = rank == 0  # under torchrun, rank 0 alone writes files and talks
    say = say if main else (lambda _: None)
    tts.voice_list(cfg.augment.filler_voices)  # a missing synthesiser is said before minutes of front end
    dataset = data if isinstance(data, Dataset) else open_dataset(data, download=download, skip_bad=skip_bad)
    folds = make_folds(dataset.clips, cfg.split, seed=cfg.train.seed)  # validates the split before any work
    with folder_lock(out) if main else contextlib.nullcontext():
        state = RunState(out)

        def ready() -> tuple[Corpus, list[Fold]]:
            """Check the folder and the data, run the front end, then write the run's config (nothing before)."""
            if main and state.exists() and not resume:
                raise ParameterError(
                    f"{out} holds an interrupted run; continue it with --resume {out} or choose another --out"
                )
            if main and resume:
                check_same_data(out, dataset)
            say(config_summary(cfg))
            say(dataset.describe() + split_note(dataset, cfg.split.name, cfg.split.test_fraction))
            for note in dataset.notes:
                say(f"note: {note}")
            corpus = load_corpus(dataset, cfg, workers=workers, skip_bad=skip_bad, progress=main)
            chosen = folds
            if corpus.data.skipped:
                say(f"left out {len(corpus.data.skipped)} unusable file(s) (--skip-bad): " + skipped_list(corpus.data))
                chosen = make_folds(corpus.data.clips, cfg.split, seed=cfg.train.seed)
            check_duplicates(corpus.data.clips, corpus.digests, chosen)
            if main:
                write_json(out / "config.json", cfg.to_dict())
                write_json(out / "data.json", data_record(corpus.data))
                state.begin()  # an interrupt from here on leaves a run that --resume continues
            return corpus, chosen

        corpus, folds = ready() if world == 1 else _rank0_first(ready, main)
        device = check_device(cfg.train.device)  # features are computed where the model trains
        raw = None
        if corpus.waves is not None:
            waves, lengths = corpus.fixed()
            raw = Featurizer(cfg.audio.sr, cfg.features).to(device).raw(waves.to(device), lengths.to(device))
        shape = tuple(raw[0].shape) if raw is not None else f"streamed from {corpus.store.path}"
        say(f"{len(corpus.rows)} clips -> features {shape} in {time.perf_counter() - started:.1f} s")
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
            say(fold_summary(corpus, fold, *training_slices(corpus, fold, cfg.train.val_fraction, seed=cfg.train.seed)))
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
            classes = with_classes(corpus.data.classes, cfg.augment)
            _write_outputs(out, results, metrics, classes, per_fold=per_fold)
            state.clear()
    return metrics


def _rank0_first(work: Callable[[], T], main: bool) -> T:
    """Under torchrun: rank 0 does `work` first (it fills the front end's cache), then the others, which then
    only read the cache. A failure on rank 0 is raised on every rank instead of leaving them waiting."""
    problem: list[str | None] = [None]
    result = None
    if main:
        try:
            result = work()
        except (SpokenDigitsError, OSError) as exc:  # a full disk or unreadable cache too: never leave ranks waiting
            problem = [str(exc)]
    torch.distributed.broadcast_object_list(problem, src=0)
    if problem[0] is not None:
        raise DatasetError(f"rank 0: {problem[0]}")
    return work() if result is None else result


def resume_run(out: str | os.PathLike[str], *, data: Any = None, **kwargs: Any) -> dict[str, Any]:
    """Continue the interrupted run in `out` with the config it started with; `data` None: its own dataset
    (its folder, read with its data options)."""
    out = Path(out)
    cfg = resumable_config(out)
    if data is None:
        root, saved = saved_data(out)
        data = open_dataset(
            root if root is not None and Path(root).exists() else None,
            download=kwargs.get("download", True),
            speaker_pattern=saved.speaker_pattern,
            classes=saved.classes,
            skip_bad=bool(saved.skip_bad or kwargs.get("skip_bad")),
            mixed_rates=bool(saved.mixed_rates),
        )
    return train_run(cfg, out, data=data, resume=True, **kwargs)


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


def headline(test_accuracy: float | None, val_accuracy: float | None) -> str:
    """The one-line score of a run or fold: test accuracy, or validation accuracy when there is no test set."""
    if test_accuracy is not None:
        return f"test accuracy {test_accuracy:.4f}"
    if val_accuracy is not None:
        return f"validation accuracy {val_accuracy:.4f} (no test set)"
    return "no test set and no validation slice: nothing held out to score"


def _summarise(cfg: RunConfig, corpus: Corpus, results: list[FoldResult]) -> dict[str, Any]:
    head = {
        "data": corpus.data.describe(),
        "classes": list(with_classes(corpus.data.classes, cfg.augment)),
        "preset": cfg.preset,
        "model": cfg.model.name,
        "split": cfg.split.name.value,
        "seed": cfg.train.seed,
        "n_parameters": results[0].metrics["n_parameters"],
    }
    if cfg.split.name is not SplitName.LOSO:
        only = {k: v for k, v in results[0].metrics.items() if k not in ("predicted", "fold", "accuracy")}
        head["split_used"] = results[0].fold.name  # official on a dataset without its own split: speakers or random
        return {**head, "test_accuracy": results[0].metrics.get("accuracy"), **only}
    # Leave-one-speaker-out: every clip is tested exactly once, so pooled scores are well defined.
    test_idx = np.concatenate([r.fold.test for r in results])
    predicted = np.concatenate([r.metrics["predicted"] for r in results])
    pooled = scores(
        corpus.labels[test_idx].numpy(),
        predicted,
        corpus.speakers[test_idx].tolist(),
        with_classes(corpus.data.classes, cfg.augment),
    )
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


def _write_outputs(
    out: Path, results: list[FoldResult], metrics: dict[str, Any], classes: tuple[str, ...], *, per_fold: bool
) -> None:
    for r in results if per_fold else []:
        folder = out / "folds" / r.fold.name
        write_json(folder / "metrics.json", {k: v for k, v in r.metrics.items() if k != "predicted"})
        write_text(folder / "log.csv", _log_csv([(r.fold.name, r.history)]))
    write_text(out / "log.csv", _log_csv([(r.fold.name, r.history) for r in results]))
    write_json(out / "metrics.json", metrics)
    plot_curves({r.fold.name: r.history for r in results}, out / "curves.png")
    if "confusion" in metrics:
        title = f"{metrics['model']} on {metrics['split']}: accuracy {metrics['test_accuracy']:.3f}"
        plot_confusion(metrics["confusion"], classes, out / "confusion.png", title=title)
    elif "val_confusion" in metrics:
        title = f"{metrics['model']}, validation slice (no test set): accuracy {metrics['val_accuracy']:.3f}"
        plot_confusion(metrics["val_confusion"], classes, out / "confusion.png", title=title)


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


def config_summary(cfg: RunConfig) -> str:
    """The run's full config as indented JSON, for printing before a run."""
    return json.dumps(cfg.to_dict(), indent=2)
