"""Find the spoken word in a recording: a voice-activity detector, then one segment per clip.

The detector is silero-vad v5, run from the ONNX file inside the `silero-vad` wheel with ONNX
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
from importlib import resources

import numpy as np
import soxr
import torch

RATE = 16_000  # the detector's rate: at 8 kHz it separates speech from tones and noise far less well
CHUNK, CONTEXT = 512, 64  # samples per detector step at RATE (32 ms) and the previous step's tail it also sees
# The detector runs PHASES times, each copy shifted by CHUNK / PHASES, and a moment's probability is the
# highest of the copies: on tightly cut clips one alignment of the 32 ms steps can miss a short word
# (FSDD: 0 to 41 of 3,000 clean clips missed as the alignment moves by 8 ms; none with 4 phases).
PHASES = 4
STEP = CHUNK // PHASES  # samples at RATE between the probabilities `probabilities` returns (8 ms)
# Silence put before and after each clip: the detector's state needs a few steps to settle, and misses
# words that begin in its first step (22 of FSDD's 3,000 tightly cut clips without it, none with it).
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
    """The silero-vad ONNX model's bytes. Importing the silero_vad package sets torch to one thread (it
    calls torch.set_num_threads(1)); the caller's thread count is put back, or training would crawl."""
    threads = torch.get_num_threads()
    try:
        return resources.files("silero_vad").joinpath("data/silero_vad.onnx").read_bytes()
    finally:
        torch.set_num_threads(threads)


class SpeechDetector:
    """silero-vad v5 through ONNX Runtime: speech probabilities every 8 ms, and word segments."""

    def __init__(self, threads: int = 1) -> None:
        torch_threads = torch.get_num_threads()  # ONNX Runtime's options set the process's OpenMP threads
        import onnxruntime  # imported here: loading it takes a moment, and only the detector needs it

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
        options.log_severity_level = 3
        model = detector_model()
        self.session = onnxruntime.InferenceSession(model, options, providers=["CPUExecutionProvider"])
        torch.set_num_threads(torch_threads)  # so training keeps its threads

    def probabilities(self, waves: Sequence[np.ndarray], sr: int) -> list[np.ndarray]:
        """Speech probability every STEP samples at RATE (8 ms), (n,), of each mono waveform at `sr` Hz:
        the highest over the PHASES alignments of the detector's steps that cover that moment."""
        out: list[np.ndarray] = [np.zeros(0, np.float32)] * len(waves)
        order = sorted(range(len(waves)), key=lambda i: len(waves[i]))  # similar lengths share a batch
        for start in range(0, len(order), BATCH):
            group = order[start : start + BATCH]
            heard = [_to_detector(waves[i], sr) for i in group]
            shifted = [np.pad(y, (SETTLE + j * STEP, SETTLE)) for y in heard for j in range(PHASES)]
            runs = self._run(shifted)
            for k, i in enumerate(group):
                n, skip = -(-len(heard[k]) // STEP), SETTLE // STEP
                # phase j's step c covers sub-steps c * PHASES - j ...: repeat each step, drop the first j
                phases = [np.repeat(runs[k * PHASES + j], PHASES)[skip + j : skip + j + n] for j in range(PHASES)]
                out[i] = np.max(np.stack(phases), axis=0)
        return out

    def _run(self, waves: list[np.ndarray]) -> list[np.ndarray]:
        steps = [-(-len(w) // CHUNK) for w in waves]
        x = np.zeros((len(waves), max(steps) * CHUNK + CONTEXT), np.float32)
        for i, w in enumerate(waves):
            x[i, CONTEXT : CONTEXT + len(w)] = w
        state = np.zeros((2, len(waves), 128), np.float32)
        rate = np.array(RATE, dtype=np.int64)
        probs = np.zeros((len(waves), max(steps)), np.float32)
        for step in range(max(steps)):
            window = x[:, step * CHUNK : (step + 1) * CHUNK + CONTEXT]
            p, state = self.session.run(None, {"input": window, "state": state, "sr": rate})
            probs[:, step] = p[:, 0]
        return [probs[i, :n] for i, n in enumerate(steps)]

    def find(self, waves: Sequence[np.ndarray], sr: int) -> list[Segment | None]:
        """The word in each mono waveform at `sr` Hz, or None where no speech is found."""
        return [word(p, y, sr) for p, y in zip(self.probabilities(waves, sr), waves, strict=True)]


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


def speech_runs(probs: np.ndarray) -> list[tuple[int, int]]:
    """[start, end) indices of speech in `probs` by hysteresis: from a step >= ENTER until one below LEAVE."""
    runs, start, on = [], 0, False
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


def word(probs: np.ndarray, y: np.ndarray, sr: int) -> Segment | None:
    """One word from a clip's probabilities (`SpeechDetector.probabilities`): runs merged over short
    gaps, clicks dropped, the run with the most energy kept and widened by LEAD and TRAIL; None if no run."""
    step = STEP * sr / RATE  # samples of `y` per probability
    runs = [(round(a * step), min(round(b * step), len(y))) for a, b in speech_runs(probs)]
    kept = [(a, b) for a, b in merge_runs(runs, MERGE_GAP * sr) if b - a >= MIN_RUN * sr]
    if not kept:
        return None
    energy = np.concatenate([[0.0], np.cumsum(np.square(y, dtype=np.float64))])
    start, end = max(kept, key=lambda run: energy[run[1]] - energy[run[0]])
    return Segment(start - round(LEAD * sr), end + round(TRAIL * sr), len(kept))


@functools.cache
def detector() -> SpeechDetector:
    """The process's detector, loaded on first use (about 2 MB, a fraction of a second)."""
    return SpeechDetector()


def find_words(waves: Sequence[np.ndarray], sr: int) -> list[Segment | None]:
    """`SpeechDetector.find` with the shared detector."""
    return detector().find(waves, sr) if len(waves) else []
