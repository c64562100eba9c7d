"""Find the spoken word in a recording: a voice-activity detector, then one segment per clip.

The detector is silero-vad, its ONNX file (from the silero-vad 6.2.3 wheel, MIT; kept in
`spoken_digits.pretrained` because that wheel depends on torch and the lean runtime must not) run with ONNX
Runtime at 16 kHz; chosen over a peak-relative trim, an energy floor and webrtcvad by measurement
(docs/findings/vad: it finds the word in noise, at any level, anywhere in a long recording, and
fires on none of 60 non-speech inputs, also as run here). The detector hears a level-normalised copy;
the segment is cut from the clip as it was. Clips run in batches (the model is causal, so zero
padding at the end changes no real chunk), which makes a batch cost about as much as its longest clip.
Each clip is heard at four alignments of the detector's 32 ms steps (see PHASES).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import soxr

from spoken_digits import onnxrt, pretrained

RATE = 16_000  # the detector's rate: at 8 kHz it separates speech from tones and noise far less well
CHUNK, CONTEXT = 512, 64  # samples per detector step at RATE (32 ms) and the previous step's tail it also sees
# The detector runs PHASES times, each copy shifted by CHUNK / PHASES, and a moment's probability is the
# highest of the copies: on tightly cut clips one alignment of the 32 ms steps can miss a short word
# (FSDD: 0 to 41 of 3,000 clean clips missed as the alignment moves by 8 ms; none with 4 phases).
PHASES = 4
STEP = CHUNK // PHASES  # samples at RATE between the probabilities `probabilities` returns (8 ms)
# Silence heard before each clip: the detector's state needs a few steps to settle, and misses words that
# begin in its first step (22 of FSDD's 3,000 tightly cut clips without it, none with it). The same for every
# stream, so it runs once (`settled`). After a clip, silence up to one step past its last whole step, so that
# every alignment covers its last sub-step.
SETTLE = 4 * CHUNK
ENTER, LEAVE = 0.6, 0.45  # speech probability to start a run, and below which it ends (hysteresis)
MERGE_GAP = 0.15  # s: runs closer than this are one word (the closure inside "six", "eight")
MIN_RUN = 0.06  # s: shorter runs are clicks
LEAD, TRAIL = 0.12, 0.03  # s added before and after: the detector starts late on fricatives ("six", "seven")
LEVEL_DBFS, MAX_GAIN_DB = -20.0, 60.0  # the 3rd-loudest 32 ms frame is brought to this level, gain capped
BATCH = 64  # clips per detector call


@dataclass(frozen=True)
class Segment:
    """The word found in one clip: samples [start, end) at the clip's rate, and how many separate
    stretches of speech the clip holds (more than one: perhaps more than one word).

    The margins (LEAD, TRAIL) may reach past the clip's ends (start < 0, end > its length): a tightly
    cut clip is heard with that much silence added, as a word with room around it would be."""

    start: int
    end: int
    runs: int


def detector_model() -> bytes:
    """The silero-vad ONNX model's bytes, checked against its recorded sha256."""
    return pretrained.detector_bytes()


class SpeechDetector:
    """silero-vad through ONNX Runtime: speech probabilities every 8 ms, and word segments."""

    def __init__(self, threads: int = 1) -> None:
        self.session = onnxrt.session(detector_model(), threads=threads)

    def probabilities(self, waves: Sequence[np.ndarray], sr: int) -> list[np.ndarray]:
        """Speech probability every STEP samples at RATE (8 ms), (n,), of each mono waveform at `sr` Hz:
        the highest over the PHASES alignments of the detector's steps that cover that moment."""
        out: list[np.ndarray] = [np.zeros(0, np.float32)] * len(waves)
        order = sorted(range(len(waves)), key=lambda i: len(waves[i]))  # similar lengths share a batch
        for start in range(0, len(order), BATCH):
            group = order[start : start + BATCH]
            heard = [_to_detector(waves[i], sr) for i in group]
            # silence after, so that every alignment covers the last sub-step: up to the next whole step, and one more
            x = np.zeros((len(group), -(-max(len(y) for y in heard) // CHUNK) * CHUNK + CHUNK), np.float32)
            for k, y in enumerate(heard):
                x[k, : len(y)] = y
            probs = PhasedRun(self.session, len(group)).push(x)
            for k, i in enumerate(group):
                out[i] = probs[k, : -(-len(heard[k]) // STEP)]
        return out

    def find(self, waves: Sequence[np.ndarray], sr: int) -> list[Segment | None]:
        """The word in each mono waveform at `sr` Hz, or None where no speech is found."""
        return [word(p, y, sr) for p, y in zip(self.probabilities(waves, sr), waves, strict=True)]


class PhasedRun:
    """The detector over `count` streams at once, each heard at PHASES alignments of its 32 ms steps, as
    the audio comes. `push` takes the next samples of every stream (count, n) at RATE, level-normalised,
    and returns the probabilities (count, k) of the next k 8 ms sub-steps that every alignment has now
    covered (each their highest). Used whole (`SpeechDetector.probabilities`) and live (`Listener`): one
    loop, so both hear the same. Each stream starts after SETTLE of silence; sub-step 0 is its first STEP.
    The steps over that silence are the same for every stream and vote on no sub-step, so they run once (for
    one stream) and their state is copied to all."""

    def __init__(self, session: Any, count: int = 1) -> None:
        self.session, self.count = session, count
        lead = CONTEXT + (PHASES - 1) * STEP  # the silence every phase's first window reaches back into
        self._audio = np.zeros((count, lead), np.float32)
        self._audio_start = -lead  # stream index of _audio[:, 0]
        self._next = 0  # where phase 0's next step starts; phase j's starts j * STEP earlier
        self._state = np.tile(settled(session), (1, count, 1))
        self._votes = np.zeros((count, 0), np.float32)  # highest probability so far of sub-steps _done on
        self._done = 0  # sub-steps returned so far
        self._rate = np.array(RATE, dtype=np.int64)

    def push(self, audio: np.ndarray) -> np.ndarray:
        """The next samples (count, n) of every stream; the probabilities (count, k) now complete."""
        self._audio = np.concatenate([self._audio, np.asarray(audio, np.float32).reshape(self.count, -1)], axis=1)
        end = self._audio_start + self._audio.shape[1]
        steps = []
        while self._next + CHUNK <= end:  # phase 0 starts last: when it has a whole step, every phase has
            lows = [self._next - j * STEP - CONTEXT - self._audio_start for j in range(PHASES)]
            windows = np.stack([self._audio[:, lo : lo + CONTEXT + CHUNK] for lo in lows], axis=1)
            p, self._state = self.session.run(
                None, {"input": windows.reshape(self.count * PHASES, -1), "state": self._state, "sr": self._rate}
            )
            steps.append((self._next, p[:, 0].reshape(self.count, PHASES)))
            self._next += CHUNK
        if steps:  # votes reach up to where phase 0's next step starts
            more = self._next // STEP - self._done - self._votes.shape[1]
            self._votes = np.pad(self._votes, ((0, 0), (0, max(more, 0))))
            for at, p in steps:
                for j in range(PHASES):  # phase j's step at `at - j * STEP` covers PHASES sub-steps from there
                    first = (at - j * STEP) // STEP
                    lo, hi = max(first, self._done) - self._done, first + PHASES - self._done
                    if hi > lo:
                        self._votes[:, lo:hi] = np.maximum(self._votes[:, lo:hi], p[:, j : j + 1])
        keep = self._next - (PHASES - 1) * STEP - CONTEXT - self._audio_start  # audio no phase needs any more
        self._audio, self._audio_start = self._audio[:, keep:], self._audio_start + keep
        final = max((self._next - (PHASES - 1) * STEP) // STEP, self._done)  # below every phase's next step
        out, self._votes = self._votes[:, : final - self._done], self._votes[:, final - self._done :]
        self._done = final
        return out


def settled(session: Any) -> np.ndarray:
    """The detector's state (2, PHASES, 128) for one stream after SETTLE of silence at every alignment (each
    row of a batch is computed alone, so copying it equals running it per stream)."""
    state = np.zeros((2, PHASES, 128), np.float32)
    silence = np.zeros((PHASES, CONTEXT + CHUNK), np.float32)
    for _ in range(SETTLE // CHUNK):
        _, state = session.run(None, {"input": silence, "state": state, "sr": np.array(RATE, dtype=np.int64)})
    return state


def _to_detector(y: np.ndarray, sr: int) -> np.ndarray:
    """`y` at the detector's rate and level."""
    y = np.asarray(y, dtype=np.float32)
    if sr != RATE:
        y = soxr.resample(y, sr, RATE, quality="HQ").astype(np.float32, copy=False)
    return normalise_level(y)


def normalise_level(y: np.ndarray) -> np.ndarray:
    """`y` scaled so its 3rd-loudest 32 ms frame is at LEVEL_DBFS (a click or two cannot set the level)."""
    n = len(y) // CHUNK
    if n == 0:
        return y
    frames = np.sqrt(np.mean(np.square(y[: n * CHUNK].reshape(n, CHUNK), dtype=np.float64), axis=1))
    reference = float(np.sort(frames)[-min(3, n)])
    if reference < 1e-7:
        return y
    gain = min(10 ** (LEVEL_DBFS / 20) / reference, 10 ** (MAX_GAIN_DB / 20))
    return (y * gain).astype(np.float32)


def speech_runs(probs: np.ndarray, *, on: bool = False) -> list[tuple[int, int]]:
    """[start, end) indices of speech in `probs` by hysteresis: from a step >= ENTER until one below LEAVE.
    `on`: a run is already under way before probs[0] (it goes on from index 0 until a step below LEAVE)."""
    runs, start = [], 0
    for i, p in enumerate(probs):
        if not on and p >= ENTER:
            start, on = i, True
        elif on and p < LEAVE:
            runs.append((start, i))
            on = False
    if on:
        runs.append((start, len(probs)))
    return runs


def merge_runs(runs: Sequence[tuple[int, int]], gap: float) -> list[tuple[int, int]]:
    """Runs [start, end) in order, those less than `gap` apart joined into one (units as given)."""
    merged: list[tuple[int, int]] = []
    for a, b in runs:
        if merged and a - merged[-1][1] < gap:
            merged[-1] = (merged[-1][0], b)
        else:
            merged.append((a, b))
    return merged


# The run logic, in one place for a clip (`word`), a recording (`stretches`) and a live stream (`Listener`):
# hysteresis runs of the probabilities (sub-steps), joined over short gaps (`joined_runs`); in samples, with
# clicks dropped (`runs`); widened by the margins, no stretch reaching back into the one before (`widen`).


def joined_runs(probs: np.ndarray, gap: float, *, on: bool = False) -> list[tuple[int, int]]:
    """Speech runs [start, end) in sub-steps of `probs` (`speech_runs`), those less than `gap` s apart joined."""
    return merge_runs(speech_runs(probs, on=on), gap * RATE / STEP)


def runs(
    probs: np.ndarray, sr: int, *, gap: float = MERGE_GAP, first: int = 0, n: int | None = None, on: bool = False
) -> list[tuple[int, int]]:
    """Speech [start, end) in samples at `sr`: `joined_runs`, runs shorter than MIN_RUN dropped (clicks).
    probs[0] is sub-step `first` of the recording (sample positions count from its start); ends are capped
    at `n` samples, the recording's length when known."""
    step = STEP * sr / RATE  # samples per probability
    found = []
    for a, b in joined_runs(probs, gap, on=on):
        start, end = round((first + a) * step), round((first + b) * step)
        end = end if n is None else min(end, n)
        if end - start >= MIN_RUN * sr:
            found.append((start, end))
    return found


def widen(found: Sequence[tuple[int, int]], sr: int, *, after: int | None = None) -> list[tuple[int, int]]:
    """Runs [start, end) in samples widened by LEAD before and TRAIL after (the detector starts late on
    fricatives), none starting before the one before it ends, nor before `after`: no sample is heard twice.
    They may reach past the recording's ends (start < 0, end > its length), like Segment."""
    lead, trail = round(LEAD * sr), round(TRAIL * sr)
    out: list[tuple[int, int]] = []
    for a, b in found:
        start = a - lead
        if out:
            start = max(start, out[-1][1])
        if after is not None:
            start = max(start, after)
        out.append((start, b + trail))
    return out


def stretches(
    probs: np.ndarray,
    sr: int,
    *,
    n: int | None = None,
    gap: float = MERGE_GAP,
    first: int = 0,
    after: int | None = None,
    on: bool = False,
) -> list[tuple[int, int]]:
    """Stretches of speech [start, end) in samples at `sr`: `runs` widened by `widen` (see both)."""
    return widen(runs(probs, sr, gap=gap, first=first, n=n, on=on), sr, after=after)


def word(probs: np.ndarray, y: np.ndarray, sr: int) -> Segment | None:
    """One word from a clip's probabilities (`SpeechDetector.probabilities`): the run (`runs`) with the most
    energy, widened by LEAD and TRAIL; None if there is no run."""
    kept = runs(probs, sr, n=len(y))
    if not kept:
        return None
    energy = np.concatenate([[0.0], np.cumsum(np.square(y, dtype=np.float64))])
    best = max(kept, key=lambda run: energy[run[1]] - energy[run[0]])
    (start, end), *_ = widen([best], sr)
    return Segment(start, end, len(kept))


@functools.cache
def detector() -> SpeechDetector:
    """The process's detector, loaded on first use (about 2 MB, a fraction of a second)."""
    return SpeechDetector()


def find_words(waves: Sequence[np.ndarray], sr: int) -> list[Segment | None]:
    """`SpeechDetector.find` with the shared detector."""
    return detector().find(waves, sr) if len(waves) else []
