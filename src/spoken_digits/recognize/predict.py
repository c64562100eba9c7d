"""Predictions from a checkpoint (.pt) or an exported ONNX model on files or waveforms.

`BasePredictor` holds what both share (config, classes, metrics, the audio steps and the answers);
`Predictor` runs a checkpoint in torch, `OnnxPredictor` an exported graph in ONNX Runtime.
"""

from __future__ import annotations

import json
import os
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from spoken_digits import onnxrt
from spoken_digits.config import RunConfig
from spoken_digits.data.clips import FILLER
from spoken_digits.errors import AudioError, CheckpointError, ParameterError
from spoken_digits.frontend import audio, endpoint
from spoken_digits.frontend.features import Featurizer
from spoken_digits.models import checkpoint


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
    classes: tuple[str, ...] = ()  # the names of `probabilities`, in order

    def to_dict(self) -> dict[str, object]:
        """The JSON form: file, digit (the class name), probability, every class's probability and, when
        there are any, error and warnings."""
        out: dict[str, object] = {"file": self.file, "digit": self.digit, "probability": self.probability}
        if self.probabilities:
            out["probabilities"] = dict(zip(self.classes, self.probabilities, strict=True))
        if self.error is not None:
            out["error"] = self.error
        if self.warnings:
            out["warnings"] = list(self.warnings)
        return out


@dataclass(frozen=True)
class Inspection:
    """One clip in detail: the answer, the exact model input, and the clip's length and level."""

    probabilities: np.ndarray  # (n_classes,)
    features: np.ndarray | None  # (T, n_mels): what the model saw (after trim, padding, standardisation); None for ONNX
    seconds: float  # length of the audio as read
    peak_dbfs: float
    rms_dbfs: float
    warnings: tuple[str, ...]


class BasePredictor(ABC):
    """A loaded model, ready to label files or waveforms; subclasses run the model (`logits`)."""

    def __init__(
        self, config: RunConfig, classes: Sequence[str], info: Mapping[str, object], *, device: str = "cpu"
    ) -> None:
        self.config = config
        self.info: dict[str, object] = dict(info)  # fold, metrics, epochs
        self.audio_cfg = config.audio
        self.classes = list(classes)
        self.device = torch.device(device)
        # logits are divided by this (fitted on held-out clips when the model was trained; 1 before that)
        self.temperature = float(info.get("temperature", 1.0))  # type: ignore[arg-type]

    @property
    def filler(self) -> int | None:
        """The index of the model's "not a word" class (FILLER), or None when it has none."""
        return self.classes.index(FILLER) if FILLER in self.classes else None

    @abstractmethod
    def logits(self, waves: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Logits (N, n_classes) on the CPU of prepared waveforms (N, L) with `lengths` (N,)."""

    def features(self, waves: torch.Tensor, lengths: torch.Tensor) -> np.ndarray | None:
        """The first clip's model input (T, n_mels), or None where the model does not expose it."""
        return None

    def probabilities(self, waves: Sequence[np.ndarray], *, batch_size: int = 256) -> np.ndarray:
        """Class probabilities (N, n_classes) of mono waveforms already at the model's rate.

        Raises AudioError naming the index (`waves[i]`) of the first waveform that cannot hold a digit
        (too short, silent, no speech-band energy, no voice found). Each gets the model's endpointing
        (detector or trim) and length rule first.
        """
        probabilities = []
        for result in self.each_probabilities(waves, batch_size=batch_size):
            if isinstance(result, AudioError):
                raise result
            probabilities.append(result)
        return np.stack(probabilities) if probabilities else np.zeros((0, len(self.classes)), dtype=np.float32)

    def each_probabilities(
        self, waves: Sequence[np.ndarray], *, names: Sequence[str] | None = None, batch_size: int = 256
    ) -> list[np.ndarray | AudioError]:
        """Per waveform (mono, the model's rate): its class probabilities, or the AudioError that refuses it
        (labelled names[i], default `waves[i]`); one bad clip does not stop the others."""
        names = [f"waves[{i}]" for i in range(len(waves))] if names is None else names
        results: list[np.ndarray | AudioError] = []
        for y, name in zip(waves, names, strict=True):
            try:
                audio.require_speech(y, self.audio_cfg.sr, name=name)
                results.append(np.asarray(y, dtype=np.float32))
            except AudioError as exc:
                results.append(exc)
        kept = [i for i, r in enumerate(results) if isinstance(r, np.ndarray)]
        clips = [r for r in results if isinstance(r, np.ndarray)]
        answers = self._answers(clips, [names[i] for i in kept], batch_size)
        for i, (result, _) in zip(kept, answers, strict=True):
            results[i] = result
        return results

    def _answers(
        self, waves: Sequence[np.ndarray], names: Sequence[str], batch_size: int = 256
    ) -> list[tuple[np.ndarray | AudioError, endpoint.Segment | None]]:
        """For waveforms that passed the content checks: each one's class probabilities (or "no speech
        found"), with the word the detector found in it (None without a detector)."""
        found = audio.find_words(waves, self.audio_cfg)
        results = audio.prepare_all(waves, self.audio_cfg, names=names, found=found)
        kept = [i for i, r in enumerate(results) if isinstance(r, np.ndarray)]
        prepared = [r for r in results if isinstance(r, np.ndarray)]
        if prepared:
            for i, probs in zip(kept, self.model_probabilities(prepared, batch_size), strict=True):
                results[i] = probs
        return list(zip(results, found, strict=True))

    @property
    def hears_strings(self) -> bool:
        """True for a string model (train-strings: CTC over whole recordings), False for a word model."""
        return self.info.get("kind") == "strings"

    def _words_only(self, what: str) -> None:
        if self.hears_strings:
            raise ParameterError(
                f"this is a string model (train-strings): it answers through predict, listen and serve, not {what}; "
                "score strings with python -m benchmarks.strings"
            )

    @torch.no_grad()
    def model_probabilities(self, prepared: Sequence[np.ndarray], batch_size: int = 256) -> np.ndarray:
        """Class probabilities (N, n_classes) of waveforms already endpointed and cut to length."""
        self._words_only("one word per clip")
        out = []
        for start in range(0, len(prepared), batch_size):
            x, lengths = audio.batch(prepared[start : start + batch_size])
            out.append(self.calibrated(self.logits(x, lengths)))
        return np.concatenate(out) if out else np.zeros((0, len(self.classes)), dtype=np.float32)

    def calibrated(self, logits: torch.Tensor) -> np.ndarray:
        """Class probabilities (N, n_classes) from logits, at the model's temperature."""
        return torch.softmax(logits.float() / self.temperature, dim=1).numpy()

    def inspect(self, wave: np.ndarray) -> Inspection:
        """Probabilities and model input of one mono waveform at the model's rate (AudioError if it holds no digit)."""
        self._words_only("one word per clip")
        y = np.asarray(wave, dtype=np.float32)
        audio.require_speech(y, self.audio_cfg.sr, name="waveform")
        found = audio.find_words([y], self.audio_cfg)
        prepared = audio.prepare_all([y], self.audio_cfg, names=["waveform"], found=found)[0]
        if isinstance(prepared, AudioError):
            raise prepared
        x, lengths = audio.batch([prepared])
        peak_dbfs, rms_dbfs = audio.levels_dbfs(y)
        return Inspection(
            probabilities=self.calibrated(self.logits(x, lengths))[0],
            features=self.features(x, lengths),
            seconds=len(y) / self.audio_cfg.sr,
            peak_dbfs=peak_dbfs,
            rms_dbfs=rms_dbfs,
            warnings=tuple(audio.check_clip(y, self.audio_cfg, found[0])),
        )

    def predict_files(self, paths: Sequence[str | os.PathLike[str]]) -> list[Prediction]:
        """One Prediction per path, in order; unusable files get `error` and do not stop the rest."""
        waves: list[np.ndarray] = []
        readable: list[int] = []
        results: list[Prediction] = [Prediction(str(p)) for p in paths]
        for i, path in enumerate(paths):
            try:  # read_audio refuses what holds no digit: too short, silent, no speech
                waves.append(audio.read_audio(path, self.audio_cfg.sr, max_duration=self.audio_cfg.max_duration))
                readable.append(i)
            except AudioError as exc:
                results[i] = Prediction(str(path), error=str(exc))
        answers = self._answers(waves, [str(paths[i]) for i in readable])
        for k, (result, segment) in enumerate(answers):
            path = str(paths[readable[k]])
            if isinstance(result, AudioError):
                results[readable[k]] = Prediction(path, error=str(result))
                continue
            best = int(result.argmax())
            notes = tuple(audio.check_clip(waves[k], self.audio_cfg, segment))
            label, confidence, every = self.classes[best], float(result[best]), tuple(float(p) for p in result)
            results[readable[k]] = Prediction(path, label, confidence, every, None, notes, tuple(self.classes))
        return results


class Predictor(BasePredictor):
    """A loaded checkpoint, run in torch: the only predictor that also shows the model's input features."""

    def __init__(self, ckpt: checkpoint.Checkpoint, *, device: str = "cpu") -> None:
        super().__init__(ckpt.config, ckpt.classes, ckpt.info, device=device)
        self.checkpoint = ckpt
        self.classifier = SpokenDigitClassifier(*ckpt.build()).to(self.device).eval()

    @classmethod
    def from_file(cls, path: str | os.PathLike[str], *, device: str = "cpu") -> Predictor:
        """Load a checkpoint file (safely: weights only)."""
        return cls(checkpoint.load(path), device=device)

    @torch.no_grad()
    def logits(self, waves: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Logits (N, n_classes) on the CPU of prepared waveforms (N, L) with `lengths` (N,)."""
        return self.classifier(waves.to(self.device), lengths.to(self.device)).cpu()

    @torch.no_grad()
    def features(self, waves: torch.Tensor, lengths: torch.Tensor) -> np.ndarray:
        """The first clip's model input (T, n_mels): after trim, padding and standardisation."""
        x, frames = self.classifier.featurizer(waves.to(self.device), lengths.to(self.device))  # (N, T, F), (N,)
        return x[0, : int(frames[0])].cpu().numpy()


class OnnxPredictor(BasePredictor):
    """The same predictions from a model exported with `spoken-digits export` (ONNX Runtime, CPU).

    The graph computes the features itself (and does not expose them: `inspect` gives features None);
    the audio steps before it (resampling, trim, length rule) follow the run config in its metadata.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        if not os.path.isfile(path):
            raise CheckpointError(f"{path}: no such ONNX model file")
        try:
            self.session = onnxrt.session(str(path))
            meta = self.session.get_modelmeta().custom_metadata_map
            config = RunConfig.from_dict(json.loads(meta["spoken_digits_config"]))
            classes = [str(c) for c in json.loads(meta["classes"])]
            info = json.loads(meta.get("spoken_digits_info", "{}"))  # absent in exports made before it was stored
            if not isinstance(info, dict):
                raise TypeError(f"info is a {type(info).__name__}, not a dict")
        except Exception as exc:  # onnxruntime's errors derive from Exception alone (InvalidProtobuf, ...)
            raise CheckpointError(f"{path}: not an ONNX model exported by spoken-digits ({str(exc)[:120]})") from None
        super().__init__(config, classes, info, device="cpu")

    def logits(self, waves: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Logits (N, n_classes) of prepared waveforms (N, L) with `lengths` (N,), from ONNX Runtime."""
        out = self.session.run(None, {"waves": waves.numpy(), "lengths": lengths.numpy()})[0]
        return torch.from_numpy(out)


def load_predictor(path: str | os.PathLike[str], *, device: str = "cpu") -> BasePredictor:
    """A predictor for a checkpoint (.pt) on `device`, or an exported ONNX model (.onnx, CPU only)."""
    if str(path).endswith(".onnx"):
        if torch.device(device).type != "cpu":
            raise ParameterError(f"{path}: ONNX models run on the CPU (ONNX Runtime); drop --device {device}")
        return OnnxPredictor(path)
    return Predictor.from_file(path, device=device)
