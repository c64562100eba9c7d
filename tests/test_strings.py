"""Digit strings and live listening: transcripts, the streaming Listener, predict/listen on the command
line, the WebSocket, and string models (train-strings), on synthetic voices."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
import soundfile as sf
import soxr
from benchmarks.strings import edits, non_speech, score

from conftest import SR, digit_voice, fsdd_string, voice_string
from spoken_digits.apps.cli import main
from spoken_digits.recognize.ctc import greedy
from spoken_digits.recognize.stream import Listener
from spoken_digits.recognize.strings import transcribe
from spoken_digits.recognize.torchmodel import Predictor


@pytest.fixture(scope="module")
def word_model(trained_scratch) -> Predictor:
    """The scratch pipeline trained on synthetic voices (the detector does not take every run of them
    for speech: the strings asserted below are ones it hears whole); the default's encoder is tested on
    real FSDD strings below (fsdd_model) and in test_encoder.py."""
    return Predictor.from_file(trained_scratch / "model.pt")


@pytest.fixture(scope="module")
def fsdd_model(trained_on_fsdd) -> Predictor:
    return Predictor.from_file(trained_on_fsdd / "model.pt")


def at_rate(predictor: Predictor, y: np.ndarray) -> np.ndarray:
    """FSDD's 8 kHz audio at the model's rate, as `transcribe` takes it (the default hears 16 kHz)."""
    return soxr.resample(y, 8000, predictor.audio_cfg.sr).astype(np.float32)


STRINGS = [("4155550192", "george"), ("2580", "jackson"), ("731", "lucas"), ("90", "nicolas"), ("68", "theo")]


def test_edit_distance_and_scores():
    assert edits("4155550192", "4155550192") == 0
    assert edits("415", "4815") == 1 and edits("415", "45") == 1 and edits("415", "416") == 1 and edits("", "12") == 2
    assert score(["12", "345"], ["12", "35"]) == {"der": 0.2, "errors": 1, "digits": 5, "string_accuracy": 0.5}


def test_greedy_ctc_merges_repeats_drops_blanks_and_keeps_a_repeat_split_by_a_blank():
    blank = [0.0, 0.0, 1.0]
    a, b = [0.9, 0.05, 0.05], [0.2, 0.7, 0.1]
    frames = np.array([blank, a, a, blank, a, b, b, blank], dtype=np.float32)
    assert greedy(frames) == [
        (0, 1, 3, pytest.approx(0.9)),
        (0, 4, 5, pytest.approx(0.9)),
        (1, 5, 7, pytest.approx(0.7)),
    ]
    assert greedy(np.array([blank, blank])) == []


@pytest.mark.fsdd
@pytest.mark.parametrize("pause", [0.3, 0.05])
def test_strings_of_real_test_words_are_heard_word_by_word_with_times(fsdd_model, fsdd_root, pause):
    """Five speakers' test-split takes joined with pauses (and nearly touching): the digits and their order."""
    waves = [at_rate(fsdd_model, fsdd_string(fsdd_root, digits, speaker=who, pause=pause)) for digits, who in STRINGS]
    transcripts = transcribe(fsdd_model, waves)
    result = score([d for d, _ in STRINGS], [t.text for t in transcripts])
    assert result["der"] <= (0.05 if pause >= 0.1 else 0.15), [t.text for t in transcripts]
    for t in transcripts:
        starts = [w.start for w in t.words]
        assert starts == sorted(starts) and all(w.end > w.start for w in t.words)
    assert 0.1 <= transcripts[0].words[0].start <= 0.45  # the first word begins after 0.3 s of quiet


@pytest.mark.fsdd
def test_the_listener_hears_real_strings_as_transcribe_does(fsdd_model, fsdd_root):
    for digits, who in [STRINGS[0], STRINGS[2], STRINGS[4]]:  # the 8-epoch model rejects jackson's "8" (take 2)
        y = fsdd_string(fsdd_root, digits, speaker=who, pause=0.3)
        offline = transcribe(fsdd_model, [at_rate(fsdd_model, y)])[0].text
        assert "".join(feed_all(Listener(fsdd_model, 8000), y, 160)) == offline == digits


def test_noise_tones_and_silence_give_no_digits(word_model):
    rng = np.random.default_rng(3)
    recordings = non_speech(8000, rng)
    transcripts = transcribe(word_model, recordings)
    assert [t.text for t in transcripts] == [""] * len(recordings)
    listener = Listener(word_model, 8000)
    for y in recordings:
        for at in range(0, len(y), 800):
            assert listener.feed(y[at : at + 800]) == []
    assert listener.finish() == [] and listener.text == ""


def feed_all(listener: Listener, y: np.ndarray, chunk: int) -> list[str]:
    heard = []
    for at in range(0, len(y), chunk):
        heard += [w.label for w in listener.feed(y[at : at + chunk])]
    return heard + [w.label for w in listener.finish()]


def test_the_listener_hears_what_transcribe_hears_whatever_the_chunks_and_rate(word_model):
    y = voice_string("864", pause=0.4, seed=11)
    offline = transcribe(word_model, [y])[0]
    assert offline.text == "864"
    small, large = Listener(word_model, 8000), Listener(word_model, 8000)
    assert "".join(feed_all(small, y, 8)) == "".join(feed_all(large, y, 8000)) == offline.text
    assert [round(w.start, 3) for w in small.words] == [round(w.start, 3) for w in large.words]
    fast = Listener(word_model, 48000)
    assert "".join(feed_all(fast, soxr.resample(y, 8000, 48000), 1234)) == offline.text


def two_words(first: int, second: int, *, seed: int, pause: float) -> np.ndarray:
    """Two synthetic words `pause` s apart (each with its own short lead of quiet), 0.3 s of quiet around."""
    quiet = np.zeros(round(0.3 * SR), np.float32)
    a = digit_voice(first, speaker=1, seed=100 * seed + first)
    b = digit_voice(second, speaker=1, seed=100 * seed + second + 50)
    y = np.concatenate([quiet, a, np.zeros(round(pause * SR), np.float32), b, quiet])
    return (y + 0.001 * np.random.default_rng(seed).standard_normal(len(y))).astype(np.float32)


# (first, second, seed, pause): the live detector hears the two words 72, 96 and 144 ms apart, between the
# Listener's CLOSE_GAP (60 ms) and the offline MERGE_GAP (150 ms)
CLOSE_PAIRS = [(0, 4, 0, 0.0), (0, 8, 1, 0.02), (3, 5, 0, 0.05)]
CHUNKS = [512, 800, 8000, None]  # samples at 8 kHz: 512, 0.1 s, 1 s (as predict streams long files), whole file


def live_gaps(y: np.ndarray) -> list[float]:
    """Seconds between the runs of speech the Listener's detector hears in `y` (8 kHz)."""
    from spoken_digits.frontend import endpoint

    class Stub:  # what Listener reads of a predictor
        audio_cfg = type("A", (), {"sr": SR})()

    listener = Listener(Stub(), SR)  # type: ignore[arg-type]
    listener._hear(soxr.resample(np.concatenate([y, np.zeros(SR // 2, np.float32)]), SR, endpoint.RATE))
    runs = endpoint.speech_runs(listener._probs)
    return [(b[0] - a[1]) * endpoint.STEP / endpoint.RATE for a, b in itertools.pairwise(runs)]


@pytest.mark.parametrize("pair", CLOSE_PAIRS, ids=["72ms", "96ms", "144ms"])
def test_words_close_together_are_the_same_whatever_the_chunk_size(word_model, monkeypatch, pair):
    """The stretches decoded (stream samples) and the words: identical at every chunk size, and no
    stretch overlaps the one before (no audio decoded twice)."""
    from spoken_digits.frontend import endpoint
    from spoken_digits.recognize import stream

    first, second, seed, pause = pair
    y = two_words(first, second, seed=seed, pause=pause)
    gaps = live_gaps(y)
    assert len(gaps) == 1 and stream.CLOSE_GAP < gaps[0] < endpoint.MERGE_GAP, gaps
    decoded: list[tuple[int, int]] = []

    def spy(predictor, waves, spans, *, floors=None, offset=0.0):
        decoded.extend((round(offset * SR) + a, round(offset * SR) + b) for a, b in spans[0])
        return stream_decode(predictor, waves, spans, floors=floors, offset=offset)

    stream_decode = stream.decode
    monkeypatch.setattr(stream, "decode", spy)
    heard = {}
    for chunk in CHUNKS:
        decoded.clear()
        listener = Listener(word_model, SR)
        feed_all(listener, y, chunk or len(y))
        words = [(w.label, round(w.start * SR), round(w.end * SR), round(w.probability, 4)) for w in listener.words]
        heard[chunk] = (list(decoded), words)
    spans, words = heard[CHUNKS[0]]
    assert len(spans) == 2 and spans[1][0] >= spans[0][1], spans
    assert all(heard[chunk] == (spans, words) for chunk in CHUNKS), heard


def talk(n: int, *, pause: float, seed: int) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """`n` synthetic words (their loud part) `pause` s apart: the recording and each word's [start, end)."""
    rng = np.random.default_rng(seed)
    parts, at, words = [np.zeros(round(0.3 * SR), np.float32)], round(0.3 * SR), []
    for k in range(n):
        y = digit_voice(int(rng.integers(10)), speaker=1, seed=1000 * seed + k)
        loud = np.flatnonzero(np.abs(y) > 0.02)
        parts += [y[loud[0] : loud[-1] + 1], np.zeros(round(pause * SR), np.float32)]
        words.append((at, at + len(parts[-2])))
        at += len(parts[-2]) + len(parts[-1])
    y = np.concatenate([*parts, np.zeros(round(0.3 * SR), np.float32)])
    return (y + 0.001 * rng.standard_normal(len(y))).astype(np.float32), words


def test_talk_longer_than_max_stretch_is_cut_between_words_whatever_the_chunk_size(word_model, monkeypatch):
    """19 s of words 20 ms apart, heard as one run of speech: the first stretch ends in a gap between two
    words, in the last CUT_SEARCH before MAX_STRETCH (not at MAX_STRETCH, mid-word), at every chunk size.
    The detector is a stand-in that hears speech wherever a step is louder than -54 dBFS (silero-vad
    takes few of these synthetic words for speech)."""
    from spoken_digits.frontend import endpoint
    from spoken_digits.recognize import stream

    class Loud:  # the detector's ONNX session, as Listener calls it
        def run(self, _, feeds):
            rms = np.sqrt(np.mean(np.square(feeds["input"][:, endpoint.CONTEXT :]), axis=1, keepdims=True))
            return [(rms > 0.002).astype(np.float32), feeds["state"]]

    monkeypatch.setattr(endpoint, "detector", lambda: type("Detector", (), {"session": Loud()})())
    y, words = talk(40, pause=0.02, seed=0)
    decoded: list[tuple[int, int]] = []

    def spy(predictor, waves, spans, *, floors=None, offset=0.0):
        decoded.extend((round(offset * SR) + a, round(offset * SR) + b) for a, b in spans[0])
        return stream_decode(predictor, waves, spans, floors=floors, offset=offset)

    stream_decode = stream.decode
    monkeypatch.setattr(stream, "decode", spy)
    heard = {}
    for chunk in [512, 8000, None]:
        decoded.clear()
        listener = Listener(word_model, SR)
        feed_all(listener, y, chunk or len(y))
        heard[chunk] = (list(decoded), listener.text)
    spans, text = heard[512]
    assert all(heard[chunk] == (spans, text) for chunk in heard), heard
    assert len(spans) == 2 and spans[0][1] == spans[1][0] and spans[1][1] >= words[-1][1], spans
    (start, cut), limit = spans[0], stream.MAX_STRETCH * SR
    assert limit - stream.CUT_SEARCH * SR <= cut - start <= limit
    assert not [w for w in words if w[0] < cut < w[1]], (cut, words)  # between two words, not in one


def test_the_listener_gives_each_word_soon_after_it_ends(word_model):
    """Words come out while the stream goes on: each by 0.3 s of audio after its own end."""
    y = voice_string("864", pause=0.6, seed=5)
    listener, chunk, shown = Listener(word_model, 8000), 160, []
    for at in range(0, len(y), chunk):
        shown += [(w, (at + chunk) / 8000) for w in listener.feed(y[at : at + chunk])]
    assert "".join(w.label for w, _ in shown) == "864"
    assert shown[0][1] < len(y) / 8000 - 0.5  # the first came well before the end
    assert all(now - w.end <= 0.3 for w, now in shown)


def test_the_listener_refuses_bad_samples_and_clears(word_model):
    listener = Listener(word_model, 8000)
    with pytest.raises(ValueError, match="NaN"):
        listener.feed(np.array([0.0, np.nan], dtype=np.float32))
    feed_all(listener, voice_string("864", pause=0.4, seed=11), 400)
    assert listener.text
    listener.clear()
    assert listener.text == "" and listener.words == []
    with pytest.raises(ValueError, match="too low"):
        Listener(word_model, 500)


@pytest.mark.fsdd
def test_predict_prints_the_string_and_streams_a_long_file(trained_on_fsdd, fsdd_root, tmp_path, capsys):
    short = tmp_path / "pin.wav"
    sf.write(short, fsdd_string(fsdd_root, "4155550192", speaker="george"), 8000)
    long = tmp_path / "long.flac"  # over a minute: transcribed as a stream, never read whole
    gap = 0.001 * np.random.default_rng(0).standard_normal(70 * 8000).astype(np.float32)
    parts = [fsdd_string(fsdd_root, "19", speaker="theo"), gap, fsdd_string(fsdd_root, "4", speaker="theo", take=3)]
    sf.write(long, np.concatenate(parts), 8000)
    model = str(trained_on_fsdd / "model.pt")
    assert main(["predict", model, str(short), str(long)]) == 0
    lines = [line.split("\t") for line in capsys.readouterr().out.strip().splitlines()]
    assert [line[0] for line in lines] == [str(short), str(long)] and all(0 < float(line[2]) <= 1 for line in lines)
    assert [line[1] for line in lines] == ["4155550192", "194"]
    assert main(["predict", model, str(short), "--json"]) == 0
    words = json.loads(capsys.readouterr().out)[0]["words"]
    assert "".join(w["digit"] for w in words) == lines[0][1] and words == sorted(words, key=lambda w: w["start"])
    assert set(words[0]) == {"digit", "start", "end", "probability", "low_confidence"}


def test_predict_reads_and_answers_files_a_group_at_a_time(word_model, tmp_path, monkeypatch):
    """Files are read GROUP_FILES at a time and each group is answered before the next is read (an
    unreadable file takes its place in order), so memory does not grow with the number of files."""
    from spoken_digits.recognize import files

    paths = []
    for k in range(4):
        paths.append(tmp_path / f"{k}.wav")
        sf.write(paths[-1], voice_string(str(k), seed=k), SR)
    (tmp_path / "bad.wav").write_bytes(b"")
    paths.insert(2, tmp_path / "bad.wav")
    events: list[str] = []
    read, transcribe_group = files.audio.read_audio, files.transcribe

    def reading(path, *args, **kwargs):
        events.append(f"read {path.stem}")
        return read(path, *args, **kwargs)

    def transcribing(predictor, waves):
        events.append(f"transcribe {len(waves)}")
        return transcribe_group(predictor, waves)

    monkeypatch.setattr(files.audio, "read_audio", reading)
    monkeypatch.setattr(files, "transcribe", transcribing)
    monkeypatch.setattr(files, "GROUP_FILES", 2)
    answers = files.each_transcript(word_model, paths)
    first = next(answers)
    assert events == ["read 0", "read 1", "transcribe 2"]
    results = [first, *answers]
    assert events[3:] == ["read bad", "read 2", "transcribe 1", "read 3", "transcribe 1"]
    assert [r.file for r in results] == [str(p) for p in paths]
    assert results[2].error == f"{paths[2]}: file is empty (0 bytes)"
    alone = [transcribe(word_model, [read(p, SR, max_duration=60.0)])[0] for p in paths if p.stem != "bad"]
    grouped = [r.transcript for r in results if r.error is None]
    words = lambda ts: [[(w.label, w.start, w.end) for w in t.words] for t in ts]  # noqa: E731
    assert words(grouped) == words(alone) and [t.rejected for t in grouped] == [t.rejected for t in alone]
    probabilities = lambda ts: [w.probability for t in ts for w in t.words]  # noqa: E731
    assert probabilities(grouped) == pytest.approx(probabilities(alone), abs=1e-5)  # batch size moves float sums


@pytest.mark.fsdd
def test_listen_plays_a_file_as_a_stream_and_says_when_there_is_no_microphone(
    trained_on_fsdd, fsdd_root, tmp_path, capsys
):
    clip = tmp_path / "code.wav"
    sf.write(clip, soxr.resample(fsdd_string(fsdd_root, "731", speaker="lucas"), 8000, 44100), 44100)
    model = str(trained_on_fsdd / "model.pt")
    assert main(["listen", model, "--file", str(clip), "--json"]) == 0
    words = [json.loads(line) for line in capsys.readouterr().out.strip().splitlines()]
    assert [w["digit"] for w in words] == ["7", "3", "1"]
    assert main(["listen", model, "--file", str(clip)]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == "heard: 731"
    code = main(["listen", model])  # this machine has no microphone (or no PortAudio)
    err = capsys.readouterr().err
    assert code == 2 and ("PortAudio" in err or "sounddevice" in err or "microphone" in err), err


def test_the_websocket_sends_words_as_they_come_and_survives_bad_frames(word_model):
    from fastapi.testclient import TestClient

    from spoken_digits.apps.serve import MAX_FRAME_BYTES, create_app

    client = TestClient(create_app(word_model))
    y = soxr.resample(voice_string("864", pause=0.4, seed=11), 8000, 16000).astype("<f4")
    expected = transcribe(word_model, [voice_string("864", pause=0.4, seed=11)])[0].text
    with client.websocket_connect("/api/listen?rate=16000") as ws:
        ws.send_bytes(b"\x00" * (MAX_FRAME_BYTES + 4))
        assert "over the" in ws.receive_json()["message"]
        ws.send_bytes(b"\x00\x00\x00")
        assert "whole float32 samples" in ws.receive_json()["message"]
        ws.send_bytes(np.array([np.nan], dtype="<f4").tobytes())
        assert "NaN" in ws.receive_json()["message"]
        ws.send_text("hello")
        assert "must be JSON" in ws.receive_json()["message"]
        ws.send_text(json.dumps({"type": "pause"}))
        assert "unknown command" in ws.receive_json()["message"]
        for at in range(0, len(y), 3200):
            ws.send_bytes(y[at : at + 3200].tobytes())
        ws.send_text(json.dumps({"type": "end"}))
        messages = []
        while not messages or messages[-1]["type"] != "done":
            messages.append(ws.receive_json())
    words = [m for m in messages if m["type"] == "word"]
    heard = "".join(m["word"]["digit"] for m in words)  # each word comes alone, without the text so far
    assert len(words) >= 2 and all("text" not in m for m in words)
    assert heard == expected == "864"  # heard at 16 kHz, resampled: what transcribe hears at 8 kHz
    assert messages[-1] == {"type": "done", "text": heard}
    with client.websocket_connect("/api/listen?rate=16000") as ws:
        ws.send_text(json.dumps({"type": "clear"}))
        assert ws.receive_json() == {"type": "cleared", "text": ""}
    with client.websocket_connect("/api/listen?rate=abc") as ws:
        assert "rate must be" in ws.receive_json()["message"]


def test_a_string_model_trains_and_answers_through_predict(trained_scratch, synthetic_fsdd, tmp_path, capsys):
    out = tmp_path / "strings"
    options = ["--out", str(out), "--epochs", "2", "--recordings", "64", "--data", str(synthetic_fsdd), "--no-download"]
    assert main(["train-strings", str(trained_scratch / "model.pt"), *options]) == 0
    predictor = Predictor.from_file(out / "model.pt")
    assert predictor.info["kind"] == "strings" and predictor.config.model.name == "sequence_conv1d"
    clip = tmp_path / "three.wav"
    sf.write(clip, voice_string("864", pause=0.4, seed=11), 8000)
    capsys.readouterr()  # training's progress
    assert main(["predict", str(out / "model.pt"), str(clip), "--json"]) == 0
    answer = json.loads(capsys.readouterr().out)[0]  # two epochs: whatever the model hears, predict says it
    assert answer["text"] == transcribe(predictor, [voice_string("864", pause=0.4, seed=11)])[0].text
    assert "".join(w["digit"] for w in answer["words"]) == answer["text"] and "error" not in answer
    assert main(["evaluate", str(out / "model.pt"), "--data", str(synthetic_fsdd), "--no-download"]) == 2
    assert "string model" in capsys.readouterr().err


def test_dynamic_programming_takes_the_cuts_that_explain_the_pieces_best():
    from spoken_digits.recognize.segment import _best_cuts, _segmentations

    bounds, depths = [0, 100, 200, 300], [1.0, 1.0, 0.1, 1.0]  # a deep dip at 100, a shallow one at 200
    pairs = _segmentations(bounds, sr=1000)  # 0.1 s apart: every pair is a possible word
    sure = {(0, 1): 0.95, (1, 3): 0.9, (1, 2): 0.6, (2, 3): 0.6, (0, 2): 0.3, (0, 3): 0.2}
    scores = np.array([[sure[p], 1 - sure[p]] for p in pairs])
    seconds = [(bounds[j] - bounds[i]) / 1000 for i, j in pairs]
    assert [(i, j) for i, j, _ in _best_cuts(depths, pairs, scores, seconds)] == [(0, 1), (1, 3)]


def test_a_long_sure_piece_is_cut_at_a_shallow_dip_only_when_it_is_longer_than_a_word():
    """Two touching words heard as one sure word: the dip between them is shallow, so only the piece's
    length (over LONG_WORD) tells the two apart from one word with a dip inside it."""
    from spoken_digits.recognize import segment

    depths, pairs = [1.0, 0.3, 1.0], [(0, 1), (0, 2), (1, 2)]
    scores = np.array([[0.99, 0.01], [0.99, 0.01], [0.01, 0.99]])  # each half sure, and the whole as sure
    for whole, cut in ((0.5, False), (segment.LONG_WORD + 0.3, True)):
        seconds = [whole / 2, whole, whole / 2]
        chosen = [(i, j) for i, j, _ in segment._best_cuts(depths, pairs, scores, seconds)]
        assert chosen == ([(0, 1), (1, 2)] if cut else [(0, 2)]), (whole, chosen)


def test_cut_candidates_are_dips_far_enough_down_and_apart():
    from spoken_digits.recognize.segment import cut_candidates

    level = np.full(100, -20.0)
    level[30], level[33], level[70] = -60.0, -58.0, -21.0  # two deep dips 30 ms apart, one too shallow
    cuts = cut_candidates(level, 0, 100, floor=-60.0)
    assert [i for i, _ in cuts] == [30] and cuts[0][1] == pytest.approx(1.0)


def test_the_listeners_level_is_not_pinned_by_digital_silence():
    """After digital silence, then a long quiet hiss, the hiss stays well below speech level for the detector."""
    from spoken_digits.recognize.stream import HEADROOM_DB, Listener

    class Stub:  # what Listener reads of a predictor
        audio_cfg = type("A", (), {"sr": 16000})()

    listener = Listener(Stub(), 16000)  # type: ignore[arg-type]
    listener._normalise(np.zeros(16000, np.float32))
    hiss = 10 ** (-70 / 20) * np.random.default_rng(0).standard_normal(30 * 16000).astype(np.float32)
    out = listener._normalise(hiss)
    level = 20 * np.log10(np.sqrt(np.mean(out[-16000:] ** 2)))
    assert level <= -20 - HEADROOM_DB + 3, level


def test_train_strings_refuses_a_word_model_it_cannot_start_from(synthetic_fsdd, tmp_path, capsys):
    """The clean preset's seed_lstm has no conv1d layers to start from, and hears a fixed window."""
    from spoken_digits.models import checkpoint
    from test_checkpoint import make_checkpoint

    checkpoint.save(tmp_path / "lstm.pt", make_checkpoint())
    options = ["--out", str(tmp_path / "s"), "--data", str(synthetic_fsdd), "--no-download"]
    assert main(["train-strings", str(tmp_path / "lstm.pt"), *options]) == 2
    assert "starts from a conv1d word model" in capsys.readouterr().err


def test_train_strings_refuses_a_word_model_with_a_filler_class(tmp_path, capsys):
    """A filler class would become a CTC class that no training string holds: refused before any data is read."""
    import dataclasses

    from spoken_digits.models import checkpoint
    from test_checkpoint import make_checkpoint

    ckpt = make_checkpoint()
    ckpt = dataclasses.replace(ckpt, classes=[*ckpt.classes, "_unknown_"])
    checkpoint.save(tmp_path / "filler.pt", ckpt)
    options = ["--out", str(tmp_path / "s"), "--data", str(tmp_path / "nowhere"), "--no-download"]
    assert main(["train-strings", str(tmp_path / "filler.pt"), *options]) == 2
    err = capsys.readouterr().err
    assert "filler.pt" in err and "_unknown_" in err and "digits alone" in err


def test_train_strings_refuses_the_default_encoder_model_and_names_the_preset_to_use(trained_default, tmp_path, capsys):
    options = ["--out", str(tmp_path / "s"), "--data", str(tmp_path / "nowhere"), "--no-download"]
    assert main(["train-strings", str(trained_default / "model.pt"), *options]) == 2  # before any data is read
    assert "train --preset scratch" in capsys.readouterr().err
