"""Live listening: feed audio in chunks of any size, get each word soon after it is spoken.

The speech detector runs as the audio arrives (its four step alignments batched in one call per
32 ms), on a copy whose level follows the loudest recent sound: a slow-decaying peak, kept at
least HEADROOM_DB above the noise floor, since a live stream has no "whole clip" to normalise by.
A stretch of speech (runs less than CLOSE_GAP apart) is closed once the detector has heard CLOSE_GAP
of non-speech after it, so the stretches are the same whatever the chunk size; it is then decoded
as `strings.transcribe` decodes one, starting no earlier than the last one ended, and its words are
returned.
A stretch longer than MAX_STRETCH is decoded at that length, so continuous talk cannot grow the
buffer without bound.
"""

from __future__ import annotations

from collections import deque

import numpy as np
import soxr

from spoken_digits.frontend import endpoint
from spoken_digits.recognize.predict import BasePredictor
from spoken_digits.recognize.segment import level_db, noise_floor
from spoken_digits.recognize.strings import decode
from spoken_digits.recognize.words import Word, join_labels

CLOSE_GAP = 0.06  # s of non-speech that ends a stretch (offline, runs merge over endpoint.MERGE_GAP: a whole file
# is there to wait for; live, a word shows sooner)
MAX_STRETCH = 12.0  # s: a stretch of speech this long is decoded without waiting for a pause
FLOOR_SECONDS = 10.0  # s of recent audio the quiet between words is measured over
PEAK_DECAY_DB = 2.0  # dB per second the level reference falls after a loud sound
FLOOR_RISE_DB = 6.0  # dB per second the noise-floor estimate may rise (it falls at once)
FLOOR_MIN = 1e-5  # RMS (-100 dBFS): the floor estimate never goes below it (digital silence)
HEADROOM_DB = 30.0  # the level reference stays at least this far above the noise floor: a long quiet is not
# amplified to speech level (the detector, having heard loud noise for a while, then misses the next word)


class Listener:
    """Recognises words in a live stream of mono audio at `sr` Hz (any rate `read_audio` accepts).

    listener = Listener(predictor, sr=48000)
    for chunk in microphone:           # float32 arrays of any length
        for word in listener.feed(chunk):
            print(word.label, word.start)
    listener.finish()                  # the last words, at the end of the stream
    """

    def __init__(self, predictor: BasePredictor, sr: int) -> None:
        if sr < 1000:
            raise ValueError(f"sample rate {sr} Hz is too low for speech")
        self.predictor, self.sr = predictor, sr
        self.model_sr = predictor.audio_cfg.sr
        self.detector = endpoint.detector()
        self._to_model = soxr.ResampleStream(sr, self.model_sr, 1, dtype="float32")
        self._to_detector = soxr.ResampleStream(sr, endpoint.RATE, 1, dtype="float32")
        self.words: list[Word] = []
        self.rejected = 0  # pieces of speech that were no word the model knows
        phases = endpoint.PHASES
        self._audio = np.zeros(0, np.float32)  # model-rate audio not yet decoded
        self._audio_start = 0  # its first sample's index in the whole stream (model rate)
        self._det = np.zeros(endpoint.SETTLE + endpoint.CONTEXT, np.float32)  # detector-rate, level-normalised
        self._det_start = -(endpoint.SETTLE + endpoint.CONTEXT)  # stream index (detector rate) of _det[0]
        # phase j's next step starts at stream index _next[j] (the settling silence comes first)
        self._next = [-endpoint.SETTLE - j * endpoint.STEP for j in range(phases)]
        self._state = np.zeros((2, phases, 128), np.float32)
        self._sub: dict[int, list[float]] = {}  # 8 ms sub-step -> probabilities from the phases so far
        self._probs: list[float] = []  # final probabilities from sub-step _probs_start on
        self._probs_start = 0
        self._pending = np.zeros(0, np.float32)  # detector-rate audio short of a whole frame
        self._floor = FLOOR_MIN  # noise-floor estimate (RMS of the quietest recent 32 ms)
        self._decoded_to = 0  # model-rate stream sample where the last decoded stretch ended
        self._peak = 0.0  # level reference (RMS of the loudest recent 32 ms, decaying)
        self._levels: deque[float] = deque(maxlen=round(FLOOR_SECONDS / 0.01))

    def clear(self) -> None:
        """Forget the words so far (the stream itself goes on)."""
        self.words, self.rejected = [], 0

    @property
    def text(self) -> str:
        """The labels recognised so far, joined as `Transcript.text` joins them."""
        return join_labels([w.label for w in self.words])

    def feed(self, chunk: np.ndarray) -> list[Word]:
        """Take the next samples (mono, float, at `sr`); return the words completed by them."""
        y = np.asarray(chunk, dtype=np.float32).reshape(-1)
        if not np.isfinite(y).all():
            raise ValueError("audio chunk contains NaN or infinite samples")
        self._audio = np.concatenate([self._audio, self._to_model.resample_chunk(y)])
        self._hear(self._to_detector.resample_chunk(y))
        return self._emit(final=False)

    def finish(self) -> list[Word]:
        """End of the stream: flush the resamplers and decode whatever speech is still open."""
        self._audio = np.concatenate([self._audio, self._to_model.resample_chunk(np.zeros(0, np.float32), last=True)])
        tail = self._to_detector.resample_chunk(np.zeros(0, np.float32), last=True)
        self._hear(np.concatenate([tail, np.zeros(endpoint.CHUNK * 3, np.float32)]))
        return self._emit(final=True)

    def _hear(self, y: np.ndarray) -> None:
        """Level-normalise new detector-rate audio and run every detector step it completes."""
        if len(y):
            self._det = np.concatenate([self._det, self._normalise(y)])
        chunk, context = endpoint.CHUNK, endpoint.CONTEXT
        end = self._det_start + len(self._det)  # stream index one past the newest sample
        while max(self._next) + chunk <= end:
            windows = np.zeros((endpoint.PHASES, context + chunk), np.float32)
            for j, at in enumerate(self._next):
                lo = at - context - self._det_start
                part = self._det[max(lo, 0) : lo + context + chunk]
                windows[j, context + chunk - len(part) :] = part
            rate = np.array(endpoint.RATE, dtype=np.int64)
            p, self._state = self.detector.session.run(None, {"input": windows, "state": self._state, "sr": rate})
            for j, at in enumerate(self._next):
                for s in range(at // endpoint.STEP, at // endpoint.STEP + endpoint.PHASES):
                    if s >= self._probs_start + len(self._probs):
                        self._sub.setdefault(s, []).append(float(p[j, 0]))
                self._next[j] = at + chunk
            self._settle()
        keep = min(self._next) - context - self._det_start  # drop audio no phase needs any more
        if keep > 0:
            self._det, self._det_start = self._det[keep:], self._det_start + keep

    def _settle(self) -> None:
        """Move sub-steps every phase has covered into the final probabilities (their maximum)."""
        while True:
            s = self._probs_start + len(self._probs)
            votes = self._sub.get(s)
            if votes is None or len(votes) < endpoint.PHASES:
                return
            self._probs.append(max(self._sub.pop(s)))

    def _normalise(self, y: np.ndarray) -> np.ndarray:
        """Whole 32 ms frames of pending audio scaled so the level reference sits at endpoint.LEVEL_DBFS
        (frames, not the chunks as they arrive: the same words whatever the chunk size)."""
        self._pending = np.concatenate([self._pending, y])
        frame = endpoint.CHUNK
        n = len(self._pending) // frame * frame
        y, self._pending = self._pending[:n], self._pending[n:]
        out = np.empty_like(y)
        decay = 10 ** (-PEAK_DECAY_DB * frame / endpoint.RATE / 20)
        rise = 10 ** (FLOOR_RISE_DB * frame / endpoint.RATE / 20)
        for start in range(0, n, frame):
            part = y[start : start + frame]
            rms = float(np.sqrt(np.mean(np.square(part, dtype=np.float64))))
            self._floor = max(min(rms, self._floor * rise), FLOOR_MIN)  # digital silence cannot pin it at 0
            self._peak = max(rms, self._peak * decay)
            reference = max(self._peak, self._floor * 10 ** (HEADROOM_DB / 20))
            gain = min(10 ** (endpoint.LEVEL_DBFS / 20) / reference, 10 ** (endpoint.MAX_GAIN_DB / 20))
            out[start : start + frame] = part * gain
        return out

    def _emit(self, *, final: bool) -> list[Word]:
        """Decode the stretches of speech that have closed (all of them when `final`)."""
        sr, step = self.model_sr, endpoint.STEP * self.model_sr / endpoint.RATE
        heard = len(self._probs)
        offset = round(self._probs_start * step) - self._audio_start  # buffer sample of probability 0
        runs = endpoint.speech_runs(np.asarray(self._probs, dtype=np.float32))
        merged = endpoint.merge_runs(runs, CLOSE_GAP * sr / step)  # the same stretches whatever the chunks
        done = []
        for a, b in merged:
            if not final and (heard - b) * step < CLOSE_GAP * sr and (b - a) * step < MAX_STRETCH * sr:
                break  # still open: speech may go on
            done.append((a, b))
        if not done:
            self._trim(merged[0][0] if merged else heard, offset, step)
            return []
        lead, trail = round(endpoint.LEAD * sr), round(endpoint.TRAIL * sr)
        spans = []
        for a, b in done:
            if (b - a) * step >= endpoint.MIN_RUN * sr:  # shorter: a click
                start = max(offset + round(a * step) - lead, self._decoded_to - self._audio_start)  # no overlap
                spans.append((start, offset + round(b * step) + trail))
        if spans and spans[-1][1] > len(self._audio) and not final:
            return []  # the last margin has not come out of the resampler yet
        floor = noise_floor(np.concatenate([np.asarray(self._levels), level_db(self._audio, sr)]))
        at = self._audio_start / sr
        words, rejected = decode(self.predictor, [self._audio], [spans], floors=[floor], offset=at)[0]
        if spans:
            self._decoded_to = self._audio_start + spans[-1][1]
        self.words += words
        self.rejected += rejected
        self._trim(done[-1][1], offset, step)
        return words

    def _trim(self, upto: int, offset: int, step: float) -> None:
        """Forget probabilities before sub-step `upto` (relative) and the audio before it, less a LEAD."""
        sr = self.model_sr
        keep_from = max(offset + round(upto * step) - round(endpoint.LEAD * sr) - round(0.05 * sr), 0)
        self._levels.extend(level_db(self._audio[:keep_from], sr).tolist())
        self._audio = self._audio[keep_from:]
        self._audio_start += keep_from
        self._probs = self._probs[upto:]
        self._probs_start += upto
