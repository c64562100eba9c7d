"""The seed's pipeline written plainly, as the reference for the end-to-end benchmark.

librosa loads each file at 8 kHz, pads or trims it to 0.5 s and computes an 80-band mel
spectrogram (n_fft 512, hop 256), transposed to (16, 80); the official split (takes 0-4 test);
Keras LSTM(128) -> Dense(100, relu) -> Dense(10, softmax), Adam 1e-3. Writes its test accuracy.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras
import librosa
import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", type=Path, required=True, help="FSDD folder or its recordings/")
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--out", type=Path, required=True, help="JSON file for the test accuracy")
    args = parser.parse_args()
    x, y, test = [], [], []
    folder = args.data / "recordings" if (args.data / "recordings").is_dir() else args.data
    for path in sorted(folder.glob("*.wav")):
        digit, _, take = path.stem.split("_")
        signal, sr = librosa.load(path, sr=8000)
        signal = librosa.util.fix_length(signal, size=4000)
        mel = librosa.feature.melspectrogram(y=signal, sr=sr, n_fft=512, hop_length=256, n_mels=80)
        x.append(mel.T)
        y.append(int(digit))
        test.append(int(take) < 5)
    features, labels, is_test = np.array(x, dtype=np.float32), np.array(y), np.array(test)
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.layers.Input((16, 80)),
            keras.layers.LSTM(128),
            keras.layers.Dense(100, activation="relu"),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(features[~is_test], labels[~is_test], batch_size=32, epochs=args.epochs, verbose=0)
    _, accuracy = model.evaluate(features[is_test], labels[is_test], verbose=0)
    args.out.write_text(json.dumps({"test_accuracy": float(accuracy)}))


if __name__ == "__main__":
    main()
