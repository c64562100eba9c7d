"""Predictions from a checkpoint (.pt) or an exported ONNX model on files or waveforms.

`BasePredictor` holds what both share (config, classes, metrics, the audio steps and the answers), in
numpy; `OnnxPredictor` runs an exported graph in ONNX Runtime, and `torchmodel.Predictor` a checkpoint
in torch (`load.load_predictor` picks one). Nothing here imports torch: with an exported model (or the
packaged one) recognition needs only numpy, soundfile, soxr and onnxruntime (the lean runtime).
"""

from __future__ import annotations

import json
import os
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from spoken_digits import onnxrt
from spoken_digits.config import RunConfig
from spoken_digits.data.clips import FILLER
from spoken_digits.errors import AudioError, CheckpointError, ParameterError
from spoken_digits.frontend import audio, endpoint


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
        self.device = device
        # logits are divided by this (fitted on held-out clips when the model was trained; 1 before that)
        self.temperature = float(info.get("temperature", 1.0))  # type: ignore[arg-type]

    @property
    def filler(self) -> int | None:
        """The index of the model's "not a word" class (FILLER), or None when it has none."""
        return self.classes.index(FILLER) if FILLER in self.classes else None

    @abstractmethod
    def logits(self, waves: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        """Logits (N, n_classes) of prepared waveforms (N, L) float32 with `lengths` (N,) int64."""

    def features(self, waves: np.ndarray, lengths: np.ndarray) -> np.ndarray | None:
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

    def model_probabilities(self, prepared: Sequence[np.ndarray], batch_size: int = 256) -> np.ndarray:
        """Class probabilities (N, n_classes) of waveforms already endpointed and cut to length."""
        self._words_only("one word per clip")
        out = np.zeros((len(prepared), len(self.classes)), dtype=np.float32)
        order = np.argsort([len(y) for y in prepared], kind="stable")  # similar lengths share a batch: less padding
        for start in range(0, len(prepared), batch_size):
            group = order[start : start + batch_size]
            x, lengths = audio.batch([prepared[i] for i in group])
            out[group] = self.calibrated(self.logits(x, lengths))
        return out

    def calibrated(self, logits: np.ndarray) -> np.ndarray:
        """Class probabilities (N, n_classes) float32 from logits, at the model's temperature."""
        z = np.asarray(logits, dtype=np.float32) / np.float32(self.temperature)
        e = np.exp(z - z.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

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

    def logits(self, waves: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        """Logits (N, n_classes) of prepared waveforms (N, L) with `lengths` (N,), from ONNX Runtime."""
        return np.asarray(self.session.run(None, {"waves": waves, "lengths": lengths})[0])
