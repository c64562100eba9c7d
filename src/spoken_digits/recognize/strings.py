"""Digit strings from a recording: the speech detector finds stretches of speech, then a string model
(`ctc`) or, for a word model, cutting at dips (`segment`) turns each stretch into words.

    transcript = transcribe(load_predictor(), [waveform])[0]   # recognize.load: the packaged model
    transcript.text                  # "4155550192"
    [w.to_dict() for w in transcript.words]   # digit, start, end, probability, low_confidence
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from spoken_digits.errors import ParameterError
from spoken_digits.frontend import endpoint
from spoken_digits.recognize.predict import BasePredictor
from spoken_digits.recognize.segment import decode_segments, level_db, noise_floor
from spoken_digits.recognize.words import Transcript, Word


def decode(
    predictor: BasePredictor,
    waves: Sequence[np.ndarray],
    spans: Sequence[Sequence[tuple[int, int]]],
    *,
    floors: Sequence[float] | None = None,
    offset: float = 0.0,
) -> list[tuple[list[Word], int]]:
    """Words (and how many pieces were rejected) in given stretches [a, b) of each waveform at the model's
    rate, times `offset` s later. `floors`: each waveform's noise floor in dB (word models; default: its own)."""
    if predictor.hears_strings:
        if not hasattr(predictor, "classifier"):  # only a torch Predictor has it: no torch import for the check
            raise ParameterError("string models run from their checkpoint (.pt), not from ONNX")
        from spoken_digits.recognize.ctc import decode_ctc  # torch: string models only

        return decode_ctc(predictor, waves, spans, offset=offset)  # type: ignore[arg-type]
    sr = predictor.audio_cfg.sr
    floors = [noise_floor(level_db(y, sr)) for y in waves] if floors is None else floors
    return decode_segments(predictor, waves, spans, floors, offset=offset)


def speech_spans(waves: Sequence[np.ndarray], sr: int) -> list[list[tuple[int, int]]]:
    """The stretches of speech [a, b) the detector finds in each mono waveform at rate `sr`."""
    probs = endpoint.detector().probabilities(waves, sr) if len(waves) else []
    return [endpoint.stretches(p, sr, n=len(y)) for y, p in zip(waves, probs, strict=True)]


def transcribe(predictor: BasePredictor, waves: Sequence[np.ndarray]) -> list[Transcript]:
    """The words in each mono waveform at the predictor's rate (no speech or no words: an empty transcript)."""
    sr = predictor.audio_cfg.sr
    spans = speech_spans(waves, sr)
    return [
        Transcript(tuple(words), len(y) / sr, rejected)
        for y, (words, rejected) in zip(waves, decode(predictor, waves, spans), strict=True)
    ]
