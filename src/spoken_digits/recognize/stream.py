"""Live listening: feed audio in chunks of any size, get each word soon after it is spoken.

The speech detector runs as the audio arrives (`endpoint.PhasedRun`, the loop `transcribe` uses too), on
a copy whose level follows the loudest recent sound: a slow-decaying peak, kept at least HEADROOM_DB above
the noise floor, since a live stream has no "whole clip" to normalise by. A stretch of speech (runs less
than CLOSE_GAP apart, `endpoint.stretches`) is closed once the detector has heard CLOSE_GAP of non-speech
after it, and decoded as `strings.transcribe` decodes one, starting no earlier than the last one ended.
Each stretch is decoded on its own, from its own samples and the noise floor of the FLOOR_SECONDS before
its end, so the words are the same whatever the chunk size (8 samples or the whole recording at once).
A stretch that would be longer than MAX_STRETCH is cut at the deepest dip in the sound in its last
CUT_SEARCH (between words, not in one), so continuous talk cannot grow the buffer without bound.
"""

from __future__ import annotations

import math

import numpy as np
import soxr

from spoken_digits.frontend import endpoint
from spoken_digits.recognize.predict import BasePredictor
from spoken_digits.recognize.segment import FRAME, deepest_dip, frame_power, noise_floor, smooth_db
from spoken_digits.recognize.strings import decode
from spoken_digits.recognize.words import Word, join_labels, piece

CLOSE_GAP = 0.06  # s of non-speech that ends a stretch (offline, runs merge over endpoint.MERGE_GAP: a whole file
# is there to wait for; live, a word shows sooner)
MAX_STRETCH = 12.0  # s: a stretch of speech is cut before it grows longer than this
CUT_SEARCH = 2.0  # s: ... at the deepest dip in its last CUT_SEARCH (words are at most segment.MAX_WORD, 1.1 s)
FLOOR_SECONDS = 10.0  # s of audio before a stretch's end the quiet between words is measured over
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
        self._run = endpoint.PhasedRun(self.detector.session)
        self._step = endpoint.STEP * self.model_sr / endpoint.RATE  # model-rate samples per probability
        self._frame = max(1, round(FRAME * self.model_sr))  # model-rate samples per level frame
        self._audio = np.zeros(0, np.float32)  # model-rate audio a stretch may still need
        self._audio_start = 0  # its first sample's index in the whole stream (model rate; a whole frame)
        self._powers = np.zeros(0)  # power of each whole level frame of the stream from frame _powers_start on
        self._powers_start = 0
        self._probs = np.zeros(0, np.float32)  # speech probabilities from sub-step _probs_start of the stream on
        self._probs_start = 0
        self._on = False  # a run of speech is under way before _probs[0] (after a stretch was cut at MAX_STRETCH)
        self._decoded_to = 0  # model-rate stream sample where the last decoded stretch ended
        self._pending = np.zeros(0, np.float32)  # detector-rate audio short of a whole frame
        self._floor = FLOOR_MIN  # noise-floor estimate (RMS of the quietest recent 32 ms)
        self._peak = 0.0  # level reference (RMS of the loudest recent 32 ms, decaying)

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
        self._keep(self._to_model.resample_chunk(y))
        self._hear(self._to_detector.resample_chunk(y))
        return self._emit(final=False)

    def finish(self) -> list[Word]:
        """End of the stream: flush the resamplers and decode whatever speech is still open."""
        self._keep(self._to_model.resample_chunk(np.zeros(0, np.float32), last=True))
        tail = self._to_detector.resample_chunk(np.zeros(0, np.float32), last=True)
        self._hear(np.concatenate([tail, np.zeros(endpoint.CHUNK * 3, np.float32)]))
        return self._emit(final=True)

    def _keep(self, y: np.ndarray) -> None:
        """New model-rate audio: kept, and the power of each level frame it completes noted."""
        self._audio = np.concatenate([self._audio, y])
        f, done = self._frame, (self._powers_start + len(self._powers)) * self._frame
        whole = (self._audio_start + len(self._audio) - done) // f * f
        if whole > 0:
            at = done - self._audio_start
            self._powers = np.concatenate([self._powers, frame_power(self._audio[at : at + whole], self.model_sr)])

    def _hear(self, y: np.ndarray) -> None:
        """Level-normalise new detector-rate audio and take the probabilities it completes."""
        heard = self._run.push(self._normalise(y)[None, :])
        self._probs = np.concatenate([self._probs, heard[0]])

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
        """Decode the stretches of speech that have closed (all of them when `final`), in order."""
        words: list[Word] = []
        close = CLOSE_GAP * endpoint.RATE / endpoint.STEP  # in probabilities
        while True:
            heard, upto, on, cut = len(self._probs), len(self._probs), False, False
            for a, b in endpoint.joined_runs(self._probs, CLOSE_GAP, on=self._on):
                upto, on = a, self._on and a == 0  # unless this run is decoded below
                found = endpoint.runs(
                    self._probs[a:b], self.model_sr, gap=CLOSE_GAP, first=self._probs_start + a, on=on
                )
                spans = endpoint.widen(found, self.model_sr, after=self._decoded_to)
                if found and found[0][1] - spans[0][0] >= MAX_STRETCH * self.model_sr:
                    at = self._cut_point(spans[0][0], final=final)
                    if at is not None:  # decode up to the cut; the rest of the run goes on from there
                        words += self._decode(spans[0][0], at)
                        upto = math.ceil(at / self._step) - self._probs_start
                        on, cut = self._state_before(upto), True
                    break
                if not final and heard - b < close:
                    break  # still open: speech may go on
                if spans and spans[0][1] > self._audio_start + len(self._audio) and not final:
                    break  # its last margin has not come out of the resampler yet
                words += self._decode(*spans[0]) if spans else []  # no span: a click
                upto, on = heard, False
            self._trim(upto, on)
            if not cut:
                return words

    def _state_before(self, i: int) -> bool:
        """Whether a run of speech is under way just before _probs[i] (hysteresis)."""
        found = endpoint.speech_runs(self._probs[:i], on=self._on)
        return bool(found) and found[-1][1] == i

    def _cut_point(self, start: int, *, final: bool) -> int | None:
        """Where a stretch from stream sample `start` is cut before MAX_STRETCH: the deepest dip in its last
        CUT_SEARCH (`segment.deepest_dip`); None until that audio has come."""
        f, sr = self._frame, self.model_sr
        limit = (start + round(MAX_STRETCH * sr)) // f * f
        lo = (limit - round(CUT_SEARCH * sr)) // f * f
        if limit > self._audio_start + len(self._audio) and not final:
            return None
        y = piece(self._audio, lo - self._audio_start, limit - self._audio_start)
        return lo + deepest_dip(y, sr, self._floor_at(limit))

    def _floor_at(self, end: int) -> float:
        """The noise floor (dB) for a stretch ending at stream sample `end`: over the FLOOR_SECONDS before it."""
        last = min(end // self._frame - self._powers_start, len(self._powers))
        first = max(last - round(FLOOR_SECONDS / FRAME), 0)
        return noise_floor(smooth_db(self._powers[first:last]))

    def _decode(self, start: int, end: int) -> list[Word]:
        """The words in stream samples [start, end) (model rate), heard from the whole frame `start` is in on."""
        base = start // self._frame * self._frame
        y = self._audio[base - self._audio_start : end - self._audio_start]
        floor = self._floor_at(end)
        ((words, rejected),) = decode(
            self.predictor, [y], [[(start - base, end - base)]], floors=[floor], offset=base / self.model_sr
        )
        self._decoded_to = end
        self.words += words
        self.rejected += rejected
        return words

    def _trim(self, upto: int, on: bool) -> None:
        """Forget the probabilities before `upto` (a run is under way there when `on`), and the audio and
        frame powers no later stretch can reach back to."""
        self._probs, self._probs_start, self._on = self._probs[upto:], self._probs_start + upto, on
        earliest = max(round(self._probs_start * self._step) - round(endpoint.LEAD * self.model_sr), self._decoded_to)
        powered = (self._powers_start + len(self._powers)) * self._frame
        keep = max(min(earliest, powered) // self._frame * self._frame, self._audio_start)
        self._audio, self._audio_start = self._audio[keep - self._audio_start :], keep
        drop = max(keep // self._frame - round(FLOOR_SECONDS / FRAME) - self._powers_start, 0)
        self._powers, self._powers_start = self._powers[drop:], self._powers_start + drop
