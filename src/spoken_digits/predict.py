"""Predictions from a checkpoint on files or waveforms, with the exact features the model trained on."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from spoken_digits import audio, checkpoint
from spoken_digits.config import RunConfig
from spoken_digits.errors import AudioError, CheckpointError, ParameterError
from spoken_digits.features import Featurizer


class SpokenDigitClassifier(nn.Module):
    """Waveforms (N, L) at the model's rate + lengths (N,) -> logits (N, n_classes)."""

    def __init__(self, featurizer: Featurizer, model: nn.Module) -> None:
        super().__init__()
        self.featurizer, self.model = featurizer, model

    def forward(self, waves: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        x, frames = self.featurizer(waves, lengths)  # (N, T, n_mels), (N,)
        return self.model(x, frames)


@dataclass(frozen=True)
class Prediction:
    """The answer for one input: the label and its probability, all class probabilities, or an error.

    `warnings` name what may make the answer wrong (a clipped recording, speech the crop cuts off).
    """

    file: str
    digit: str | None = None
    probability: float | None = None
    probabilities: tuple[float, ...] = ()
    error: str | None = None
    warnings: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, object]:
        """The JSON form: file, digit, probability and, when there are any, error and warnings."""
        out: dict[str, object] = {"file": self.file, "digit": self.digit, "probability": self.probability}
        if self.error is not None:
            out["error"] = self.error
        if self.warnings:
            out["warnings"] = list(self.warnings)
        return out


@dataclass(frozen=True)
class Inspection:
    """One clip in detail: the answer, the exact model input, and the clip's length and level."""

    probabilities: np.ndarray  # (n_classes,)
    features: np.ndarray  # (T, n_mels): what the model saw, after trim, padding and standardisation
    seconds: float  # length of the audio as read
    peak_dbfs: float
    rms_dbfs: float
    warnings: tuple[str, ...]


class Predictor:
    """A loaded checkpoint, ready to label files or waveforms."""

    def __init__(self, ckpt: checkpoint.Checkpoint, *, device: str = "cpu") -> None:
        self.checkpoint = ckpt
        self.audio_cfg = ckpt.config.audio
        self.classes = ckpt.classes
        self.device = torch.device(device)
        self.classifier = SpokenDigitClassifier(*ckpt.build()).to(self.device).eval()

    @classmethod
    def from_file(cls, path: str | os.PathLike[str], *, device: str = "cpu") -> Predictor:
        """Load a checkpoint file (safely: weights only)."""
        return cls(checkpoint.load(path), device=device)

    @torch.no_grad()
    def probabilities(self, waves: Sequence[np.ndarray], *, batch_size: int = 256) -> np.ndarray:
        """Class probabilities (N, n_classes) of mono waveforms already at the model's rate.

        Each waveform gets the checkpoint's silence trim and length rule first.
        """
        prepared = [audio.prepare(np.asarray(w, dtype=np.float32), self.audio_cfg) for w in waves]
        out = []
        for start in range(0, len(prepared), batch_size):
            x, lengths = audio.batch(prepared[start : start + batch_size])
            out.append(torch.softmax(self.logits(x, lengths), dim=1).numpy())
        return np.concatenate(out) if out else np.zeros((0, len(self.classes)), dtype=np.float32)

    @torch.no_grad()
    def logits(self, waves: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Logits (N, n_classes) on the CPU of prepared waveforms (N, L) with `lengths` (N,)."""
        return self.classifier(waves.to(self.device), lengths.to(self.device)).cpu()

    @torch.no_grad()
    def inspect(self, wave: np.ndarray) -> Inspection:
        """Probabilities and model input of one mono waveform at the model's rate."""
        y = np.asarray(wave, dtype=np.float32)
        x, lengths = audio.batch([audio.prepare(y, self.audio_cfg)])
        features, frames = self.classifier.featurizer(x.to(self.device), lengths.to(self.device))
        logits = self.classifier.model(features, frames)
        peak, rms = float(np.abs(y).max()), float(np.sqrt(np.mean(y.astype(np.float64) ** 2)))
        return Inspection(
            probabilities=torch.softmax(logits, dim=1)[0].cpu().numpy(),
            features=features[0, : int(frames[0])].cpu().numpy(),
            seconds=len(y) / self.audio_cfg.sr,
            peak_dbfs=20 * np.log10(max(peak, 1e-10)),
            rms_dbfs=20 * np.log10(max(rms, 1e-10)),
            warnings=tuple(audio.check_clip(y, self.audio_cfg)),
        )

    def predict_files(self, paths: Sequence[str | os.PathLike[str]]) -> list[Prediction]:
        """One Prediction per path, in order; unreadable files get `error` and do not stop the rest."""
        waves: list[np.ndarray] = []
        readable: list[int] = []
        results: list[Prediction] = [Prediction(str(p)) for p in paths]
        for i, path in enumerate(paths):
            try:
                waves.append(audio.read_audio(path, self.audio_cfg.sr, max_duration=self.audio_cfg.max_duration))
                readable.append(i)
            except AudioError as exc:
                results[i] = Prediction(str(path), error=str(exc))
        if waves:
            for i, wave, probs in zip(readable, waves, self.probabilities(waves), strict=True):
                best = int(probs.argmax())
                notes = tuple(audio.check_clip(wave, self.audio_cfg))
                results[i] = Prediction(
                    str(paths[i]), self.classes[best], float(probs[best]), tuple(float(p) for p in probs), None, notes
                )
        return results


class OnnxPredictor(Predictor):
    """The same predictions from a model exported with `spoken-digits export` (ONNX Runtime, CPU).

    The graph computes the features itself; the audio steps before it (resampling, trim, length
    rule) follow the run config stored in the model's metadata.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        try:
            import onnxruntime
        except ImportError:
            raise ParameterError("ONNX models need the onnx extra: pip install 'spoken-digits[onnx]'") from None
        if not os.path.isfile(path):
            raise CheckpointError(f"{path}: no such ONNX model file")
        try:
            options = onnxruntime.SessionOptions()
            options.log_severity_level = 3
            self.session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
            meta = self.session.get_modelmeta().custom_metadata_map
            config = RunConfig.from_dict(json.loads(meta["spoken_digits_config"]))
            classes = json.loads(meta["classes"])
        except Exception as exc:  # onnxruntime's errors derive from Exception alone (InvalidProtobuf, ...)
            raise CheckpointError(f"{path}: not an ONNX model exported by spoken-digits ({str(exc)[:120]})") from None
        self.audio_cfg, self.classes, self.device = config.audio, classes, torch.device("cpu")

    def logits(self, waves: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        out = self.session.run(None, {"waves": waves.numpy(), "lengths": lengths.numpy()})[0]
        return torch.from_numpy(out)

    def inspect(self, wave: np.ndarray) -> Inspection:
        raise ParameterError("inspect needs the checkpoint (.pt): an ONNX graph does not expose its features")


def load_predictor(path: str | os.PathLike[str]) -> Predictor:
    """A predictor for a checkpoint (.pt) or an exported ONNX model (.onnx)."""
    return OnnxPredictor(path) if str(path).endswith(".onnx") else Predictor.from_file(path)
