"""The doctor's cost inside training: a Keras `fit` of the seed's model with and without `DoctorCallback`.

    python -m benchmarks.doctor [--data FSDD_DIR] [--quick]

The same model, data, seed and epochs; the two runs alternate, and each time is the median of the
repeats. The callback gets the whole training arrays, so every check it can make runs.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

from benchmarks.common import Row
from benchmarks.training import official_features
from spoken_digits.frontend.batches import FeatureSet


def keras_fit_seconds(train: FeatureSet, val: FeatureSet, *, epochs: int, doctor: bool, seed: int = 0) -> float:
    """Seconds of one `fit` of the seed's Keras model (compile excluded), with or without the doctor."""
    os.environ.setdefault("KERAS_BACKEND", "torch")
    import keras

    from spoken_digits.diagnose.keras import DoctorCallback

    x, y, x_val, y_val = train.x.numpy(), train.y.numpy(), val.x.numpy(), val.y.numpy()
    keras.utils.set_random_seed(seed)
    model = keras.Sequential(
        [
            keras.layers.Input(tuple(x.shape[1:])),
            keras.layers.LSTM(128),
            keras.layers.Dense(100, activation="relu"),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    callbacks = []
    if doctor:
        callbacks = [DoctorCallback(x_val[:256], y_val[:256], n_train=len(x), x_train=x, y_train=y, verbose=False)]
    started = time.perf_counter()
    model.fit(x, y, batch_size=32, epochs=epochs, validation_data=(x_val, y_val), verbose=0, callbacks=callbacks)
    return time.perf_counter() - started


def run(data: str | None, *, limit: int | None = None, epochs: int = 10, repeats: int = 3) -> list[Row]:
    train, test = official_features(data, limit)
    keras_fit_seconds(train, test, epochs=1, doctor=True)  # warm-up: imports, kernels, the first predict
    plain, watched = [], []
    for _ in range(repeats):
        plain.append(keras_fit_seconds(train, test, epochs=epochs, doctor=False))
        watched.append(keras_fit_seconds(train, test, epochs=epochs, doctor=True))
    reference, ours = statistics.median(plain), statistics.median(watched)
    return [
        Row(
            f"Keras fit of the seed model, {epochs} epochs x {len(train)} clips, with DoctorCallback",
            "the same fit without the callback",
            reference,
            ours,
            f"the callback adds {ours / reference - 1:+.1%} (medians of {repeats})",
            "< 10% added",
            ours / reference < 1.10,
        )
    ]


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.doctor", description=__doc__.splitlines()[0])
    parser.add_argument("--data", help="FSDD folder (default: $FSDD_ROOT)")
    parser.add_argument("--quick", action="store_true", help="a few clips and epochs: checks the benchmark runs")
    parser.add_argument("--repeats", type=int, default=3, help="fits of each kind; the median is reported")
    args = parser.parse_args()
    limit, epochs = (300, 2) if args.quick else (None, 10)
    for row in run(args.data, limit=limit, epochs=epochs, repeats=args.repeats):
        print(f"{row.what}: {row.reference_s:.2f} s without, {row.ours_s:.2f} s with; {row.check}; met: {row.met}")


if __name__ == "__main__":
    main()
