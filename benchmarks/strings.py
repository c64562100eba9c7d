"""The connected-digit benchmark: digit strings built from FSDD test clips, ours and pocketsphinx, one run.

    python -m benchmarks.strings MODEL... [--strings N] [--no-peer] [--out DIR] [--seed S] [--data DIR]

Each string is one test speaker saying 1-10 random digits (their official test-split takes only), with
pauses drawn per gap, placed in a recording with 0.3-0.6 s of room tone (white noise at -60 dBFS) before
and after. Rows: clean with pauses of 100-500 ms and of 0-100 ms (touching words included), then white,
pink and babble noise at 20/10/5 dB SNR (measured over the speech) with pauses of 0-500 ms; babble is
five training-split clips summed (other takes, any of the six speakers). Scores: digit error rate
(edit distance / digits) and whole-string accuracy. The false-digit rows feed 60 s of non-speech
(noise, music-like tones, room tone) and, for information, 60 s of FSDD test words played backwards
(speech-like, not digits) to each recogniser and count the digits reported per minute. pocketsphinx
(stock en-us model, a digit-loop grammar) hears the very same waveforms. Writes strings.json and
strings.md to --out.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmarks.common import clips as fsdd_clips
from benchmarks.peer import INSTALL
from benchmarks.sphinx import Sphinx
from spoken_digits.atomic import write_json, write_text
from spoken_digits.config import SplitConfig
from spoken_digits.data import fsdd
from spoken_digits.data.splits import Fold, make_folds
from spoken_digits.device import machine
from spoken_digits.errors import SpokenDigitsError
from spoken_digits.frontend import audio, corrupt
from spoken_digits.recognize.load import load_predictor
from spoken_digits.recognize.predict import BasePredictor
from spoken_digits.recognize.stream import Listener
from spoken_digits.recognize.strings import transcribe
from spoken_digits.recognize.words import Word

ROOM_DBFS = -60.0  # the room tone under every recording
MARGIN = (0.3, 0.6)  # s of room tone before and after the string
NOISES = ("white", "pink", "babble")
SNRS = (20.0, 10.0, 5.0)
NAMES = ("spoken-digits", "pocketsphinx")
LOOP = (
    "#JSGF V1.0;\ngrammar digits;\n<digit> = zero | one | two | three | four | five | six | seven | eight | nine;\n"
    "public <digits> = <digit>*;\n"
)  # pocketsphinx: any number of digit words, or none
TARGETS = {"clean-far": 0.01, "clean-near": 0.03, "white-10db": 0.06, "pink-10db": 0.06, "babble-10db": 0.06}
FALSE_SECONDS = 60.0  # of each kind of non-digit audio
CHUNK = 0.02  # s: the streaming rows feed audio in chunks this long


@dataclass(frozen=True)
class Spoken:
    """A built recording: the digits said, the waveform, and each word's [start, end) in seconds."""

    digits: str
    wave: np.ndarray
    words: tuple[tuple[float, float], ...]
    sr: int


class Builder:
    """Builds digit strings from one split's clips (read once, kept) at rate `sr`."""

    def __init__(self, clips: Sequence[fsdd.Clip], sr: int) -> None:
        self.sr = sr
        self.by_speaker: dict[str, dict[int, list[fsdd.Clip]]] = {}
        for c in clips:
            self.by_speaker.setdefault(c.speaker, {}).setdefault(c.digit, []).append(c)
        self._waves: dict[Path, np.ndarray] = {}

    def wave(self, clip: fsdd.Clip) -> np.ndarray:
        if clip.path not in self._waves:
            self._waves[clip.path] = audio.read_audio(clip.path, self.sr)
        return self._waves[clip.path]

    def build(self, rng: np.random.Generator, length: int, pauses: tuple[float, float]) -> Spoken:
        """One speaker (drawn) saying `length` random digits with pauses drawn from `pauses` (seconds)."""
        speaker = sorted(self.by_speaker)[int(rng.integers(len(self.by_speaker)))]
        own = self.by_speaker[speaker]
        digits = [int(d) for d in rng.integers(0, 10, size=length)]
        sr = self.sr
        parts = [np.zeros(round(rng.uniform(*MARGIN) * sr), np.float32)]
        at, words = len(parts[0]), []
        for k, d in enumerate(digits):
            if k:
                gap = np.zeros(round(rng.uniform(*pauses) * sr), np.float32)
                parts.append(gap)
                at += len(gap)
            y = self.wave(own[d][int(rng.integers(len(own[d])))])
            parts.append(y)
            words.append((at / sr, (at + len(y)) / sr))
            at += len(y)
        parts.append(np.zeros(round(rng.uniform(*MARGIN) * sr), np.float32))
        wave = np.concatenate(parts)
        wave = wave + corrupt.noise("white", len(wave), rng) * np.float32(10 ** (ROOM_DBFS / 20))
        return Spoken("".join(map(str, digits)), wave.astype(np.float32), tuple(words), sr)


def add_noise(spoken: Spoken, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """The recording with `noise` (as long) added at `snr_db`: speech power over the words, noise power
    over the whole recording (so pauses and margins hold the same noise)."""
    sr = spoken.sr
    words = np.concatenate([spoken.wave[round(a * sr) : round(b * sr)] for a, b in spoken.words])
    speech_power = float(np.mean(np.square(words, dtype=np.float64)))
    noise_power = float(np.mean(np.square(noise, dtype=np.float64)))
    gain = np.sqrt(speech_power / (noise_power * 10 ** (snr_db / 10)))
    return (spoken.wave + gain * noise).astype(np.float32)


def edits(reference: str, hypothesis: str) -> int:
    """Levenshtein distance between two label strings (substitutions, insertions, deletions)."""
    row = list(range(len(hypothesis) + 1))
    for i, r in enumerate(reference, 1):
        previous, row[0] = row[0], i
        for j, h in enumerate(hypothesis, 1):
            previous, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, previous + (r != h))
    return row[-1]


def score(truth: Sequence[str], heard: Sequence[str]) -> dict[str, Any]:
    """Digit error rate (edits / reference digits) and whole-string accuracy."""
    errors = sum(edits(t, h) for t, h in zip(truth, heard, strict=True))
    digits = sum(len(t) for t in truth)
    exact = sum(t == h for t, h in zip(truth, heard, strict=True))
    return {"der": errors / digits, "errors": errors, "digits": digits, "string_accuracy": exact / len(truth)}


def non_speech(sr: int, rng: np.random.Generator) -> list[np.ndarray]:
    """FALSE_SECONDS of audio with no speech, as six 10 s recordings: white, pink and brown noise at -50 to
    -20 dBFS, music-like tones (chords of harmonics, a note every 0.25-0.6 s, vibrato) and room tone."""
    n = round(10 * sr)
    out = []
    for kind, level in (("white", -30.0), ("pink", -20.0), ("brown", -40.0)):
        out.append(corrupt.noise(kind, n, rng) * np.float32(10 ** (level / 20)))
    t = np.arange(n) / sr
    for _ in range(2):
        music = np.zeros(n)
        at = 0
        while at < n:
            length = round(rng.uniform(0.25, 0.6) * sr)
            root = 110 * 2 ** (int(rng.integers(0, 24)) / 12)
            part = t[at : at + length]
            vibrato = 1 + 0.004 * np.sin(2 * np.pi * 5.5 * part)
            for ratio in (1.0, 1.26, 1.5):
                for h in range(1, 6):
                    if root * ratio * h < sr / 2:
                        music[at : at + length] += np.sin(2 * np.pi * root * ratio * h * part * vibrato) / h
            at += length
        out.append((0.1 * music / np.abs(music).max()).astype(np.float32))
    out.append(corrupt.noise("white", n, rng) * np.float32(10 ** (ROOM_DBFS / 20)))
    return [y.astype(np.float32) for y in out]


def backwards(builder: Builder, rng: np.random.Generator) -> list[np.ndarray]:
    """FALSE_SECONDS of speech that is no digit: test words played backwards, 0.2-0.6 s apart, 10 s each."""
    clips = [c for own in builder.by_speaker.values() for group in own.values() for c in group]
    out, sr = [], builder.sr
    while sum(len(y) for y in out) < FALSE_SECONDS * sr:
        parts: list[np.ndarray] = []
        while sum(len(p) for p in parts) < 10 * sr:
            parts += [
                builder.wave(clips[int(rng.integers(len(clips)))])[::-1],
                np.zeros(round(rng.uniform(0.2, 0.6) * sr)),
            ]
        y = np.concatenate(parts)
        out.append((y + corrupt.noise("white", len(y), rng) * np.float32(10 ** (ROOM_DBFS / 20))).astype(np.float32))
    return out


def noise(kind: str, talkers: Sequence[np.ndarray], n: int, rng: np.random.Generator) -> np.ndarray:
    """`n` samples of white or pink noise, or babble: five of `talkers` at once."""
    if kind == "babble":
        return corrupt.babble([talkers[int(i)] for i in rng.choice(len(talkers), 5, replace=False)], n, rng)
    return corrupt.noise(kind, n, rng)


def conditions(builder: Builder, babble: Sequence[np.ndarray], n: int, seed: int) -> dict[str, list[Spoken]]:
    """The benchmark's recordings, `n` strings per row, all drawn from `seed`."""
    rng = np.random.default_rng(seed)
    rows = {
        "clean-far": [builder.build(rng, int(rng.integers(1, 11)), (0.1, 0.5)) for _ in range(n)],
        "clean-near": [builder.build(rng, int(rng.integers(1, 11)), (0.0, 0.1)) for _ in range(n)],
    }
    base = [builder.build(rng, int(rng.integers(1, 11)), (0.0, 0.5)) for _ in range(n)]
    for kind in NOISES:
        for snr in SNRS:
            noisy = []
            for s in base:
                noisy.append(Spoken(s.digits, add_noise(s, noise(kind, babble, len(s.wave), rng), snr), s.words, s.sr))
            rows[f"{kind}-{snr:g}db"] = noisy
    return rows


def official_test(
    models: Sequence[str], data: str | None
) -> tuple[dict[str, BasePredictor], int, list[fsdd.Clip], Fold, Builder]:
    """The models loaded (all at one rate), FSDD's clips, the official fold and a Builder of its test clips."""
    predictors = {str(m): load_predictor(m) for m in models}
    rates = {p.audio_cfg.sr for p in predictors.values()}
    if len(rates) != 1:
        raise SpokenDigitsError(f"the models run at different rates ({sorted(rates)}): compare them in separate runs")
    sr = rates.pop()
    clips = fsdd_clips(data)
    fold = make_folds(fsdd.as_clips(clips), SplitConfig())[0]
    return predictors, sr, clips, fold, Builder([clips[i] for i in fold.test], sr)


def string_recognisers(
    predictors: dict[str, BasePredictor], sr: int, *, peer: bool
) -> tuple[dict[str, Callable[[list[np.ndarray]], list[str]]], Sphinx | None]:
    """Each model's `transcribe` (and pocketsphinx's digit loop when `peer`) as waveforms -> digit strings."""
    recognisers: dict[str, Callable[[list[np.ndarray]], list[str]]] = {
        name: (lambda waves, p=p: [t.text for t in transcribe(p, waves)]) for name, p in predictors.items()
    }
    sphinx = Sphinx(LOOP) if peer else None
    if sphinx is not None:
        recognisers["pocketsphinx"] = lambda waves: [sphinx.digits(y, sr) or "" for y in waves]
    return recognisers, sphinx


def stream_row(predictor: BasePredictor, spoken: Sequence[Spoken]) -> dict[str, Any]:
    """The strings fed to a `Listener` in CHUNK pieces: accuracy, the delay from each word's end to its
    appearance (audio time, plus the compute time spent), and the real-time factor. A word shown is
    matched to the spoken word it overlaps most; words that overlap none have no delay to measure."""
    heard, delays, busy, seconds = [], [], 0.0, 0.0
    for s in spoken:
        listener = Listener(predictor, s.sr)
        step = round(CHUNK * s.sr)
        shown: list[tuple[Word, float]] = []  # each word, and the stream time when it was shown
        for at in range(0, len(s.wave), step):
            started = time.perf_counter()
            words = listener.feed(s.wave[at : at + step])
            spent = time.perf_counter() - started
            busy += spent
            shown += [(w, min(at + step, len(s.wave)) / s.sr + spent) for w in words]
        started = time.perf_counter()
        words = listener.finish()
        busy += time.perf_counter() - started
        shown += [(w, len(s.wave) / s.sr + time.perf_counter() - started) for w in words]
        seconds += len(s.wave) / s.sr
        heard.append(listener.text)
        for word, when in shown:
            overlaps = [min(word.end, b) - max(word.start, a) for a, b in s.words]
            if overlaps and max(overlaps) > 0:
                delays.append(when - s.words[int(np.argmax(overlaps))][1])
    row = score([s.digits for s in spoken], heard)
    q = np.percentile(delays, [50, 95]) if delays else [float("nan")] * 2
    return row | {"delay_p50_s": float(q[0]), "delay_p95_s": float(q[1]), "rtf": busy / seconds}


def run(
    models: Sequence[str],
    *,
    data: str | None = None,
    strings: int = 100,
    seed: int = 0,
    peer: bool = True,
    say: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Every row for every model (and pocketsphinx), the same recordings for all."""
    predictors, sr, clips, fold, builder = official_test(models, data)
    pool = Builder([clips[i] for i in fold.train], sr)
    babble = [pool.wave(clips[i]) for i in fold.train[:: max(1, len(fold.train) // 300)]]
    rows = conditions(builder, babble, strings, seed)
    rng = np.random.default_rng(seed + 1)
    rows["non-speech"] = [Spoken("", y, (), sr) for y in non_speech(sr, rng)]
    rows["backwards-words"] = [Spoken("", y, (), sr) for y in backwards(builder, rng)]
    recognisers, sphinx = string_recognisers(predictors, sr, peer=peer)
    table = []
    for name, spoken in rows.items():
        waves = [s.wave for s in spoken]
        row: dict[str, Any] = {"condition": name, "n": len(spoken), "digits": sum(len(s.digits) for s in spoken)}
        for who, recognise in recognisers.items():
            started = time.perf_counter()
            heard = recognise(waves)
            spent = time.perf_counter() - started
            audio_s = sum(len(y) for y in waves) / sr
            if name in ("non-speech", "backwards-words"):
                row[who] = {"false_per_minute": sum(len(h) for h in heard) / (audio_s / 60), "rtf": spent / audio_s}
            else:
                row[who] = score([s.digits for s in spoken], heard) | {"rtf": spent / audio_s}
        table.append(row)
        say(f"{name:16s} " + "  ".join(f"{w}: {_cell(row[w])}" for w in recognisers))
    streaming = {}
    for name, p in predictors.items():
        streaming[name] = stream_row(p, rows["clean-far"])
        say(f"streaming {name}: {_cell(streaming[name])}, delay p50 {streaming[name]['delay_p50_s']:.3f} s")
    singles = {}
    for name, p in predictors.items():
        test = [clips[i] for i in fold.test]
        heard = [t.text for t in transcribe(p, [builder.wave(c) for c in test])]
        singles[name] = score([str(c.digit) for c in test], heard)
    head = {"models": list(predictors), "machine": machine("cpu"), "seed": seed, "strings": strings, "sr": sr}
    if sphinx is not None:
        head["pocketsphinx"] = {"version": sphinx.version, "grammar": LOOP}
    return head | {"rows": table, "streaming": streaming, "single_clips": singles, "targets": TARGETS}


def _cell(r: dict[str, Any]) -> str:
    if "false_per_minute" in r:
        return f"{r['false_per_minute']:.1f} false/min"
    return f"DER {r['der']:.3f} strings {r['string_accuracy']:.2f}"


def markdown(result: dict[str, Any]) -> str:
    """The result as Markdown tables: rows x recognisers, then streaming and single clips."""
    who = [*result["models"], *(["pocketsphinx"] if "pocketsphinx" in result else [])]
    names = [Path(w).parent.name or w for w in who]
    lines = ["| condition | n | " + " | ".join(names) + " | target |", "|---|---:|" + "---:|" * len(who) + "---|"]
    for row in result["rows"]:
        target = result["targets"].get(row["condition"])
        goal = (
            f"DER <= {target:.0%}"
            if target is not None
            else ("<= 1 false/min" if row["condition"] == "non-speech" else "")
        )
        cells = " | ".join(_cell(row[w]) for w in who)
        lines.append(f"| {row['condition']} | {row['n']} | {cells} | {goal} |")
    lines += [
        "",
        "| streaming (clean-far, 20 ms chunks, 1 thread) | DER | strings | delay p50 | delay p95 | real-time factor |",
    ]
    lines.append("|---|---:|---:|---:|---:|---:|")
    for name, r in result["streaming"].items():
        lines.append(
            f"| {Path(name).parent.name or name} | {r['der']:.3f} | {r['string_accuracy']:.2f} | "
            f"{1000 * r['delay_p50_s']:.0f} ms | {1000 * r['delay_p95_s']:.0f} ms | {r['rtf']:.3f} |"
        )
    lines += ["", "| single test clips (official split) | accuracy (1 - DER) | string accuracy |", "|---|---:|---:|"]
    for name, r in result["single_clips"].items():
        lines.append(f"| {Path(name).parent.name or name} | {1 - r['der']:.4f} | {r['string_accuracy']:.4f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.strings", description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", help="checkpoints (.pt): word models and/or string models")
    parser.add_argument("--strings", type=int, default=100, help="recordings per row (default 100)")
    parser.add_argument("--no-peer", action="store_true", help="leave pocketsphinx out")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "strings", help="where strings.md/json go")
    parser.add_argument("--seed", type=int, default=0, help="draws every recording")
    parser.add_argument("--data", help="FSDD folder (default: $FSDD_ROOT)")
    args = parser.parse_args()
    torch.set_num_threads(1)  # the streaming target is for one core
    try:
        result = run(args.models, data=args.data, strings=args.strings, seed=args.seed, peer=not args.no_peer)
    except ModuleNotFoundError as exc:
        if exc.name != "pocketsphinx":
            raise
        sys.exit(f"python -m benchmarks.strings: pocketsphinx is not installed; {INSTALL} (or --no-peer)")
    except SpokenDigitsError as exc:
        sys.exit(f"python -m benchmarks.strings: {exc}")
    head = (
        "# Connected digits\n\nDigit error rate (DER) and whole-string accuracy on strings of 1-10 digits built from "
    )
    head += f"FSDD official test clips, seed {args.seed}, {result['machine']}. "
    head += "Regenerate with `python -m benchmarks.strings MODEL...`.\n\n"
    write_json(args.out / "strings.json", result)
    write_text(args.out / "strings.md", head + markdown(result) + "\n")
    print(markdown(result))


if __name__ == "__main__":
    main()
