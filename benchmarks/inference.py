"""Inference: one clip (file in, digit out, model loaded) and batch throughput, torch eager against
ONNX Runtime running the exported graph."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from benchmarks.common import Row, clips, median_time, paths
from spoken_digits.apps.export import export_onnx
from spoken_digits.config import preset
from spoken_digits.frontend import audio
from spoken_digits.recognize.predict import OnnxPredictor
from spoken_digits.recognize.torchmodel import Predictor
from spoken_digits.training.experiment import train_run


def run(data: str | None, *, repeats: int) -> list[Row]:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        train_run(preset("clean"), out / "run", data=data, download=False)
        export_onnx(out / "run" / "model.pt", out / "model.onnx")
        eager, onnx = Predictor.from_file(out / "run" / "model.pt"), OnnxPredictor(out / "model.onnx")
        files = paths(clips(data))
        one = [files[0]]
        eager.predict_files(one), onnx.predict_files(one)  # warm-up
        eager_s, a = median_time(lambda: eager.predict_files(one), repeats)
        onnx_s, b = median_time(lambda: onnx.predict_files(one), repeats)
        waves = [audio.read_audio(p, 8000) for p in files]
        batch_eager, pa = median_time(lambda: eager.probabilities(waves), 3)
        batch_onnx, pb = median_time(lambda: onnx.probabilities(waves), 3)
    agree = float((pa.argmax(1) == pb.argmax(1)).mean())
    return [
        Row(
            "one clip: file in, digit out (model loaded)",
            "torch eager",
            eager_s,
            onnx_s,
            f"same digit: {a[0].digit == b[0].digit}; ONNX Runtime is 'ours'",
            "ONNX faster at batch 1",
            onnx_s < eager_s,
        ),
        Row(
            f"batch: {len(waves)} clips ({len(waves) / batch_onnx:,.0f} clips/s with ONNX)",
            "torch eager",
            batch_eager,
            batch_onnx,
            f"same digit for {agree:.1%} of clips; max |p difference| {float(np.abs(pa - pb).max()):.1e}",
        ),
    ]
