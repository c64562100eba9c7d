"""Training: the seed's model on the same features, epochs and batch size, Keras 3 (torch backend,
fed from numpy) against our loop; then time per epoch for every registered model."""

from __future__ import annotations

import os
import statistics
import time

from benchmarks.common import Row, clips
from spoken_digits.config import TrainConfig, preset
from spoken_digits.data import fsdd
from spoken_digits.data.clips import Dataset
from spoken_digits.data.splits import make_folds
from spoken_digits.frontend.batches import FeatureSet
from spoken_digits.frontend.features import Featurizer
from spoken_digits.models.nets import MODELS, create_model
from spoken_digits.training.corpus import load_corpus
from spoken_digits.training.train import fit, predict_logits, seed_everything


def official_features(data: str | None, limit: int | None) -> tuple[FeatureSet, FeatureSet]:
    """Clean-preset features (dB, standardised on training clips) of the official train and test clips."""
    cfg = preset("clean")
    selection = fsdd.as_clips(clips(data, limit))
    root = fsdd.locate(data, download=False)
    corpus = load_corpus(Dataset(selection, fsdd.CLASSES, "fsdd", root), cfg)
    fold = make_folds(selection, cfg.split)[0]
    featurizer = Featurizer(cfg.audio.sr, cfg.features)
    x, frames = featurizer.raw(*corpus.fixed())
    featurizer.standardizer.fit(x[fold.train], frames[fold.train])  # type: ignore[union-attr]
    data_set = FeatureSet(featurizer.standardize(x, frames), frames, corpus.labels)
    return data_set.subset(fold.train), data_set.subset(fold.test)


SEEDS = (0, 1, 2)  # accuracy after a fixed number of epochs varies by a point between seeds


def keras_seed_model(epochs: int, train: FeatureSet, test: FeatureSet, seed: int) -> tuple[list[float], float]:
    """(seconds of every epoch, test accuracy) of the seed's Keras model."""
    os.environ.setdefault("KERAS_BACKEND", "torch")
    import keras

    class Clock(keras.callbacks.Callback):  # type: ignore[misc]
        def on_epoch_begin(self, epoch: int, logs: object = None) -> None:
            self.started = time.perf_counter()

        def on_epoch_end(self, epoch: int, logs: object = None) -> None:
            times.append(time.perf_counter() - self.started)

    times: list[float] = []
    keras.utils.set_random_seed(seed)
    model = keras.Sequential(
        [
            keras.layers.Input(tuple(train.x.shape[1:])),
            keras.layers.LSTM(128),
            keras.layers.Dense(100, activation="relu"),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(train.x.numpy(), train.y.numpy(), batch_size=32, epochs=epochs, verbose=0, callbacks=[Clock()])
    _, accuracy = model.evaluate(test.x.numpy(), test.y.numpy(), verbose=0)
    return times, float(accuracy)


def ours(name: str, epochs: int, train: FeatureSet, test: FeatureSet, seed: int = 0) -> tuple[list[float], float]:
    """(seconds of every epoch, test accuracy) of a registered model in our loop."""
    seed_everything(seed)
    model = create_model(name, n_features=train.x.shape[2], n_classes=len(fsdd.CLASSES))
    result = fit(model, train, None, TrainConfig(epochs=epochs, batch_size=32, patience=0, seed=seed))
    accuracy = float((predict_logits(model, test).argmax(1) == test.y).float().mean())
    return [r["seconds"] for r in result.history], accuracy


def run(data: str | None, *, limit: int | None, epochs: int) -> list[Row]:
    train, test = official_features(data, limit)
    keras_runs = [keras_seed_model(epochs, train, test, seed) for seed in SEEDS]
    our_runs = [ours("seed_lstm", epochs, train, test, seed) for seed in SEEDS]
    keras_s = statistics.median(t for times, _ in keras_runs for t in times)
    ours_s = statistics.median(t for times, _ in our_runs for t in times)
    keras_acc = statistics.mean(a for _, a in keras_runs)
    ours_acc = statistics.mean(a for _, a in our_runs)
    rows = [
        Row(
            f"seed model, {epochs} epochs x {len(train)} clips, {len(SEEDS)} seeds: time per epoch",
            "Keras 3 (torch backend) from numpy",
            keras_s,
            ours_s,
            f"mean test accuracy: Keras {keras_acc:.3f}, ours {ours_acc:.3f}",
            ">= 2.5x at equal or better accuracy",
            keras_s / ours_s >= 2.5 and ours_acc >= keras_acc - 0.005,
        )
    ]
    for name in MODELS:
        times, accuracy = ours(name, min(epochs, 3), train, test)
        per_epoch = statistics.median(times)
        rows.append(
            Row(
                f"{name}: time per epoch ({len(train)} clips, {len(train) / per_epoch:,.0f} clips/s)",
                "",
                None,
                per_epoch,
                f"test accuracy after {min(epochs, 3)} epochs {accuracy:.3f}",
            )
        )
    return rows
