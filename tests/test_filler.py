"""The filler class: clips made from training words, synthesised words, the model's classes, and the string
path's rule (a piece is rejected when the filler class wins, never for a low digit probability); and
calibration: the temperature, ECE and the risk-coverage curve."""

from __future__ import annotations

import dataclasses
import shutil

import numpy as np
import pytest
import torch
from tests.conftest import digit_voice

from spoken_digits.config import FILLER_VOICES, AudioConfig, AugmentConfig, preset
from spoken_digits.data import tts
from spoken_digits.data.clips import FILLER
from spoken_digits.errors import ParameterError
from spoken_digits.evaluation.calibration import (
    expected_calibration_error,
    fit_temperature,
    risk_coverage,
    softmax,
)
from spoken_digits.frontend.batches import FeatureSet
from spoken_digits.recognize.segment import decode_segments
from spoken_digits.training.filler import (
    KINDS,
    REPEAT,
    add_filler,
    filler_clips,
    speech_span,
    spoken_filler,
    with_classes,
)


def _words(n: int = 12, sr: int = 8000) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    clips = [torch.from_numpy(digit_voice(d % 10, sr=sr, seed=d)) for d in range(n)]
    lengths = torch.tensor([len(c) for c in clips])
    waves = torch.zeros(n, int(lengths.max()))
    for i, c in enumerate(clips):
        waves[i, : len(c)] = c
    return waves, lengths, torch.arange(n) % 10


def test_filler_clips_are_reversed_spliced_and_pieces_of_the_training_words():
    waves, lengths, labels = _words()
    made, made_lengths = filler_clips(waves, lengths, labels, 30, seed=0)
    assert made.shape[0] == 30 and len(KINDS) == 3
    clips = [waves[i, : int(lengths[i])] for i in range(len(labels))]
    reversed_ = made[0, : int(made_lengths[0])]
    assert any(len(c) == len(reversed_) and torch.equal(c.flip(0), reversed_) for c in clips)
    for k in range(2, 30, 3):  # pieces: shorter than any word they come from, and still holding sound
        piece = made[k, : int(made_lengths[k])]
        assert len(piece) < max(len(c) for c in clips) and piece.abs().max() > 0.05
    again, _ = filler_clips(waves, lengths, labels, 30, seed=0)
    assert torch.equal(made, again)  # seeded


def test_speech_span_finds_the_word_inside_its_silence():
    y = torch.zeros(8000)
    y[3000:5000] = torch.sin(torch.arange(2000) * 0.3)
    a, b = speech_span(y)
    assert 2800 <= a <= 3000 and 5000 <= b <= 5200


def test_add_filler_labels_its_clips_filler_in_proportion_to_the_classes():
    waves, lengths, labels = _words(20)
    classes = (*(str(d) for d in range(10)), FILLER)
    out = add_filler(FeatureSet(waves, lengths, labels), classes, 1.5, seed=0)
    assert len(out) == 20 + 3  # 1.5 x (20 words / 10 classes)
    assert (out.y[20:] == 10).all() and torch.equal(out.y[:20], labels)


def test_the_model_gets_a_filler_class_only_when_filler_is_made():
    digits = tuple(str(d) for d in range(10))
    assert with_classes(digits, AugmentConfig()) == digits
    assert with_classes(digits, AugmentConfig(noise=0.5, filler=1.0)) == (*digits, FILLER)
    assert with_classes((*digits, FILLER), AugmentConfig(noise=0.5, filler=1.0)) == (*digits, FILLER)
    assert "espeak" not in FILLER_VOICES  # the benchmark's held-out voices


def test_synthesiser_words_avoid_digits_and_unknown_engines_are_refused(monkeypatch):
    assert not set(tts.TRAIN_WORDS) & {"one", "two", "to", "too", "for", "four", "ate", "eight", "won", "nine", "six"}
    with pytest.raises(ParameterError, match="expected engine:voice"):
        tts.voice_list("sam:voice")
    monkeypatch.setattr(tts.shutil, "which", lambda _: None)
    with pytest.raises(ParameterError, match=r"kal_diphone: text2wave is not installed; apt-get install festival"):
        tts.voice_list("festival:kal_diphone")


@pytest.mark.skipif(shutil.which("flite") is None, reason="flite is not installed (make voices)")
def test_synthesised_filler_words_go_through_the_front_end_and_split_for_calibration(tmp_path, monkeypatch):
    monkeypatch.setattr(tts, "TRAIN_WORDS", ("table", "garden", "window", "yellow", "basket", "pocket") * 2)
    monkeypatch.setattr(tts.said, "__defaults__", (tts.TRAIN_WORDS, tmp_path))
    audio = AudioConfig(sr=16000, duration=None, trim_db=None, vad=True)
    classes = ("3", "7", FILLER)
    train, val = spoken_filler(audio, "flite:slt", classes, seed=0)
    assert len(val) == 1 and (val.y == 2).all()  # a tenth of the filler words, for calibration
    assert sorted(train.y.tolist()) == [0] * REPEAT + [1] * REPEAT + [2] * 11  # the voice says the digits too
    assert (train.lengths > 1600).all()  # words found by the detector, at 16 kHz
    assert (tmp_path / "flite" / "slt" / "table.wav").is_file() and (tmp_path / "flite" / "slt" / "seven.wav").is_file()


class _Fixed:
    """A word model whose every piece gets the same probabilities."""

    def __init__(self, row: list[float], classes: list[str]) -> None:
        self.row, self.classes = np.array(row, dtype=np.float32), classes
        self.audio_cfg = dataclasses.replace(preset("default").audio, sr=8000)
        self.filler = classes.index(FILLER) if FILLER in classes else None

    def model_probabilities(self, pieces: list[np.ndarray]) -> np.ndarray:
        return np.tile(self.row, (len(pieces), 1))


@pytest.mark.parametrize(
    ("row", "classes", "heard"),
    [
        ([0.4, 0.35, 0.25], ["0", "1", FILLER], "0"),  # unsure, but a digit wins: kept (no fixed bar)
        ([0.2, 0.2, 0.6], ["0", "1", FILLER], ""),  # the filler class wins: rejected
        ([0.4, 0.6], ["0", "1"], "1"),  # no filler class: the old bar, passed
        ([0.45, 0.3, 0.25], ["0", "1", "2"], ""),  # no filler class: under the 0.5 bar, rejected
    ],
)
def test_a_piece_is_rejected_when_the_filler_class_wins_not_for_a_low_probability(row, classes, heard):
    y = digit_voice(3, sr=8000)
    found = decode_segments(_Fixed(row, classes), [y], [[(0, len(y))]], [-80.0])  # type: ignore[arg-type]
    words, rejected = found[0]
    assert "".join(w.label for w in words) == heard and rejected == (0 if heard else 1)


def test_temperature_scaling_recovers_the_temperature_that_made_the_labels():
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 3, size=(4000, 10))
    cumulative = np.cumsum(softmax(logits, 2.0).astype(np.float64), axis=1)
    truth = (rng.random((4000, 1)) > cumulative).sum(axis=1).clip(0, 9)  # drawn from the tempered softmax
    assert fit_temperature(logits, truth) == pytest.approx(2.0, rel=0.1)
    calibrated, raw = softmax(logits, fit_temperature(logits, truth)), softmax(logits)
    assert expected_calibration_error(calibrated, truth) < 0.03 < expected_calibration_error(raw, truth)


def test_risk_falls_as_only_the_surest_answers_are_kept():
    probabilities = np.array([[0.9, 0.1], [0.8, 0.2], [0.6, 0.4], [0.55, 0.45]])
    truth = np.array([0, 0, 1, 1])  # the two least sure answers are wrong
    curve = risk_coverage(probabilities, truth)
    assert curve["risk_at_50"] == 0.0 and curve["risk_at_100"] == 0.5
    assert curve["aurc"] == pytest.approx((0 + 0 + 1 / 3 + 1 / 2) / 4)


def test_a_filler_model_keeps_every_digit_single_gives_and_reports_its_calibration(trained_filler, synthetic_fsdd):
    from spoken_digits.evaluation.evaluate import evaluate_checkpoint
    from spoken_digits.frontend import audio
    from spoken_digits.recognize.load import load_predictor
    from spoken_digits.recognize.strings import transcribe

    predictor = load_predictor(trained_filler / "model.pt")
    assert predictor.classes[-1] == FILLER and predictor.temperature != 1.0  # fitted on the validation slice
    files = sorted((synthetic_fsdd / "recordings").glob("*_carl_*.wav"))[::3]
    single = predictor.predict_files(files)
    heard = transcribe(predictor, [audio.read_audio(f, predictor.audio_cfg.sr) for f in files])
    digits = [(s.digit, t.text) for s, t in zip(single, heard, strict=True) if s.digit != FILLER]
    assert digits and all(text for _, text in digits)  # a digit --single gives is never dropped as no word
    assert np.mean([d == text for d, text in digits]) >= 0.9
    metrics = evaluate_checkpoint(trained_filler / "model.pt")
    assert metrics["temperature"] == predictor.temperature
    assert 0 <= metrics["calibration"]["ece"] <= 1 and metrics["calibration"]["risk_at_100"] == pytest.approx(
        1 - metrics["test_accuracy"]
    )


def test_a_word_is_not_cut_in_two_for_a_sure_filler_piece():
    from spoken_digits.recognize.segment import _best_cuts

    depths, pairs = [1.0, 1.0, 1.0], [(0, 1), (0, 2), (1, 2)]  # a deep dip in the middle of the word
    scores = np.array([[0.03, 0.02, 0.95], [0.85, 0.1, 0.05], [0.9, 0.05, 0.05]])  # half: filler; whole: "0"
    seconds = [0.25, 0.5, 0.25]
    assert [(i, j) for i, j, _ in _best_cuts(depths, pairs, scores, seconds)] == [(0, 1), (1, 2)]  # no filler class
    assert [(i, j) for i, j, _ in _best_cuts(depths, pairs, scores, seconds, filler=2)] == [(0, 2)]
