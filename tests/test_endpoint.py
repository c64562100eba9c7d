"""The speech detector finds the word wherever it is and at any level, and finds nothing in non-speech."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch

from conftest import SR, digit_voice
from spoken_digits.config import AudioConfig
from spoken_digits.data import fsdd
from spoken_digits.errors import AudioError, ParameterError
from spoken_digits.frontend import audio, corrupt, endpoint

VAD = AudioConfig(duration=None, trim_db=None, vad=True)
VOICE = digit_voice(3, seed=1)
SPOKEN = np.flatnonzero(np.abs(VOICE) > 0.02)  # samples of VOICE that are the "word", not its silent lead
WORD = (int(SPOKEN[0]), int(SPOKEN[-1]) + 1)


def recording(seconds: float, at: float, *, floor_dbfs: float = -60.0, gain_db: float = 0.0, seed: int = 0):
    """VOICE at `at` seconds inside `seconds` of a white noise floor; the word's true [start, end)."""
    rng = np.random.default_rng(seed)
    y = corrupt.noise("white", round(seconds * SR), rng) * np.float32(10 ** (floor_dbfs / 20))
    start = round(at * SR)
    y[start : start + len(VOICE)] += VOICE
    return corrupt.gain_db(y, gain_db), (start + WORD[0], start + WORD[1])


def covers(segment: endpoint.Segment | None, word: tuple[int, int], *, extra: float = 0.3) -> bool:
    """The segment holds the whole word and at most `extra` seconds more."""
    return (
        segment is not None
        and segment.start <= word[0]
        and segment.end >= word[1]
        and (segment.end - segment.start) - (word[1] - word[0]) <= extra * SR
    )


@pytest.mark.parametrize("at", [0.1, 1.3, 2.4])
def test_the_word_is_found_anywhere_in_three_seconds(at):
    y, word = recording(3.0, at)
    (segment,) = endpoint.find_words([y], SR)
    assert covers(segment, word) and segment.runs == 1


def test_a_recording_40_db_quieter_gives_the_same_word():
    y, word = recording(1.5, 0.6)
    loud, quiet = endpoint.find_words([y, corrupt.gain_db(y, -40)], SR)
    assert covers(loud, word) and quiet == loud


def test_the_word_is_found_after_half_a_second_of_noise():
    rng = np.random.default_rng(3)
    noise = corrupt.noise("pink", len(VOICE) + SR, rng)
    y = corrupt.mix_at_snr(VOICE, noise, 10.0, offset=SR // 2)
    (segment,) = endpoint.find_words([y], SR)
    assert covers(segment, (SR // 2 + WORD[0], SR // 2 + WORD[1]))


def test_a_tightly_cut_word_gets_silence_for_its_margins():
    tight = VOICE[WORD[0] : WORD[1]]
    (segment,) = endpoint.find_words([tight], SR)
    assert segment is not None and segment.start < 0  # the lead margin reaches before the clip
    heard = audio.prepare(tight, VAD)
    assert len(heard) == segment.end - segment.start and not heard[: -segment.start].any()


def test_batches_give_what_clips_one_at_a_time_give():
    clips = [recording(s, a, seed=i)[0] for i, (s, a) in enumerate([(0.8, 0.1), (3.0, 2.0), (1.2, 0.5)])]
    assert endpoint.find_words(clips, SR) == [endpoint.find_words([c], SR)[0] for c in clips]


def non_speech() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(7)
    t = np.arange(2 * SR) / SR
    clicks = np.zeros(2 * SR, np.float32)
    clicks[:: SR // 3] = 0.9
    out = {f"{kind}@{db}": corrupt.noise(kind, 2 * SR, rng) * np.float32(10 ** (db / 20)) for kind in
           ("white", "pink", "brown") for db in (-50, -30, -10)}  # fmt: skip
    out |= {f"tone{hz}": (0.3 * np.sin(2 * np.pi * hz * t)).astype(np.float32) for hz in (50, 440, 1000, 3000)}
    return out | {"clicks": clicks, "silence": np.zeros(2 * SR, np.float32)}


def test_noise_tones_clicks_and_silence_hold_no_speech():
    inputs = non_speech()
    found = dict(zip(inputs, endpoint.find_words(list(inputs.values()), SR), strict=True))
    assert found == dict.fromkeys(inputs)


def test_two_words_are_counted_and_the_louder_is_kept():
    quiet, loud = VOICE * np.float32(0.3), digit_voice(7, seed=2)
    y = np.concatenate([quiet, np.zeros(SR // 2, np.float32), loud])
    (segment,) = endpoint.find_words([y], SR)
    assert segment is not None and segment.runs == 2 and segment.start > len(quiet)
    notes = audio.check_clip(y, VAD, segment)
    assert any("2 separate stretches of speech" in note for note in notes)


def test_no_speech_is_an_error_naming_the_file(tmp_path):
    path = tmp_path / "fan.wav"
    sf.write(path, non_speech()["pink@-30"], SR)
    with pytest.raises(AudioError, match=r"fan\.wav: no speech found"):
        audio.load(path, VAD)
    result = audio.prepare_all([non_speech()["tone440"], VOICE], VAD, names=["tone", "voice"])
    assert isinstance(result[0], AudioError) and "tone: no speech found" in str(result[0])
    assert isinstance(result[1], np.ndarray)


def test_the_detector_replaces_the_trim_it_cannot_be_combined_with():
    with pytest.raises(ParameterError, match="trim_db must be None"):
        AudioConfig(vad=True, trim_db=40.0)


@pytest.mark.fsdd
def test_every_fsdd_test_clip_is_found_and_covered(fsdd_root):
    clips = [c for c in fsdd.index(fsdd.recordings_dir(fsdd_root)) if c.take < 5]
    waves = [audio.read_audio(c.path, SR) for c in clips]
    found = endpoint.find_words(waves, SR)
    assert all(s is not None for s in found)
    loud = [np.flatnonzero(np.abs(w) > 0.1 * np.abs(w).max()) for w in waves]  # each clip's loud part
    held = [
        max(0, min(s.end, int(i[-1]) + 1) - max(s.start, int(i[0]))) / (i[-1] + 1 - i[0])
        for s, i in zip(found, loud, strict=True)
        if s is not None
    ]
    assert np.mean(np.array(held) >= 0.9) >= 0.98  # the word's loud part, nearly whole, in 98% of clips


def test_loading_the_detector_leaves_torchs_threads_alone():
    """ONNX Runtime's session options reset the process's OpenMP threads; training must keep its own."""
    torch.set_num_threads(2)
    endpoint.SpeechDetector()
    assert torch.get_num_threads() == 2


def test_the_detector_fed_in_pieces_of_any_size_hears_what_it_hears_at_once():
    """One loop (`PhasedRun`) serves whole clips and live streams: the pieces it is fed in change nothing."""
    heard = endpoint._to_detector(recording(2.0, 0.7)[0], SR)  # at the detector's rate and level
    y = np.concatenate([heard, np.zeros(endpoint.SETTLE, np.float32)])
    whole = endpoint.PhasedRun(endpoint.detector().session).push(y[None])[0]
    for size in (1, 100, 512, 5000):
        run = endpoint.PhasedRun(endpoint.detector().session)
        pieces = np.concatenate([run.push(y[None, at : at + size])[0] for at in range(0, len(y), size)])
        assert np.array_equal(pieces, whole)
    (offline,) = endpoint.detector().probabilities([recording(2.0, 0.7)[0]], SR)
    assert np.array_equal(offline, whole[: len(offline)]) and (offline >= endpoint.ENTER).any()


def test_stretches_never_reach_back_into_the_one_before():
    """Runs 100 ms apart (samples at 8 kHz): the second's lead stops where the first's trail ends."""
    lead, trail = round(endpoint.LEAD * SR), round(endpoint.TRAIL * SR)
    assert endpoint.widen([(2000, 4000), (4800, 6000)], SR) == [
        (2000 - lead, 4000 + trail),
        (4000 + trail, 6000 + trail),
    ]
    assert endpoint.widen([(2000, 4000)], SR, after=1500) == [(1500, 4000 + trail)]
    probs = np.zeros(200, np.float32)
    probs[20:60], probs[72:120] = 0.9, 0.9  # 12 steps (96 ms) apart: one stretch offline, two live
    step = endpoint.STEP * SR // endpoint.RATE
    assert endpoint.stretches(probs, SR) == [(20 * step - lead, 120 * step + trail)]
    live = endpoint.stretches(probs, SR, gap=0.06)
    assert live == [(20 * step - lead, 60 * step + trail), (60 * step + trail, 120 * step + trail)]


def test_phased_run_equals_each_alignment_run_alone_from_silence():
    """PhasedRun (its settling silence run once and copied, a short tail) against the plain reference: each of
    the PHASES alignments run alone over SETTLE of silence, the clip and silence after, from a zero state, and
    each sub-step's highest probability among the steps that cover it."""
    session = endpoint.detector().session
    rng = np.random.default_rng(3)
    raw = (0.05 * rng.standard_normal(5000) * np.hanning(5000)).astype(np.float32)
    got = endpoint.detector().probabilities([raw], endpoint.RATE)[0]
    y = endpoint.normalise_level(raw)  # what the detector hears
    audio = np.concatenate([np.zeros(endpoint.SETTLE + 4 * endpoint.CHUNK, np.float32), y,
                            np.zeros(endpoint.SETTLE, np.float32)])
    start = endpoint.SETTLE + 4 * endpoint.CHUNK  # index of the clip's first sample in `audio`
    votes = np.zeros(-(-len(y) // endpoint.STEP), np.float32)
    for j in range(endpoint.PHASES):
        state = np.zeros((2, 1, 128), np.float32)
        first = start - endpoint.SETTLE - j * endpoint.STEP  # this alignment's first step
        for at in range(first, len(audio) - endpoint.CHUNK + 1, endpoint.CHUNK):
            window = audio[at - endpoint.CONTEXT : at + endpoint.CHUNK][None]
            p, state = session.run(None, {"input": window, "state": state, "sr": np.array(endpoint.RATE)})
            lo = (at - start) // endpoint.STEP
            for k in range(max(lo, 0), min(lo + endpoint.PHASES, len(votes))):
                votes[k] = max(votes[k], p[0, 0])
    np.testing.assert_array_equal(got, votes)
