"""Any model by its path: a checkpoint (.pt, run in torch), an exported graph (.onnx) or, with no path, the
model packaged with spoken-digits. Only a checkpoint imports torch."""

from __future__ import annotations

import os

from spoken_digits import pretrained
from spoken_digits.errors import ParameterError
from spoken_digits.recognize.predict import BasePredictor, OnnxPredictor


def load_predictor(path: str | os.PathLike[str] | None = None, *, device: str = "cpu") -> BasePredictor:
    """A predictor for a checkpoint (.pt, run in torch on `device`), an exported ONNX model (.onnx, CPU), or,
    with no path, the packaged pretrained model (ONNX): the last two need no torch."""
    if path is None:
        path = pretrained.default_model()
    if str(path).endswith(".onnx"):
        if device.split(":")[0] != "cpu":
            raise ParameterError(f"{path}: ONNX models run on the CPU (ONNX Runtime); drop --device {device}")
        return OnnxPredictor(path)
    try:
        from spoken_digits.recognize.torchmodel import Predictor
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] != "torch":
            raise
        raise ParameterError(
            f"{path}: a checkpoint (.pt) needs torch, which this install (the lean runtime) does not have: export the "
            "model where torch is (spoken-digits export MODEL.pt --onnx MODEL.onnx) and give the .onnx, or pip install "
            "'spoken-digits[train]'"
        ) from None
    return Predictor.from_file(path, device=device)
