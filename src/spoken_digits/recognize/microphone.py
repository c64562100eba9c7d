"""The `listen` command's sources: the microphone (sounddevice, PortAudio) or a file played as a stream.

Each word is printed when the Listener returns it: "digit  probability  start-end s", or a JSON line.
"""

from __future__ import annotations

import json
import os
import queue
from collections.abc import Iterable

import numpy as np
import soundfile as sf

from spoken_digits.errors import AudioError, ParameterError
from spoken_digits.frontend import audio
from spoken_digits.recognize.predict import BasePredictor
from spoken_digits.recognize.stream import Listener
from spoken_digits.recognize.words import Word

RATE = 16_000  # the microphone is opened at this rate (the detector's; the listener resamples for the model)
BLOCK = 0.02  # s of audio per block read


def show(word: Word, *, json_lines: bool) -> None:
    """Print one recognised word as it comes."""
    if json_lines:
        print(json.dumps(word.to_dict()), flush=True)
    else:
        flag = "  (unsure)" if word.low else ""
        print(f"{word.label}\t{word.probability:.2f}\t{word.start:.2f}-{word.end:.2f} s{flag}", flush=True)


def run(listener: Listener, blocks: Iterable[np.ndarray], *, json_lines: bool) -> list[Word]:
    """Feed `blocks` to `listener`, printing words as they come, then the last ones; all words heard."""
    try:
        for block in blocks:
            for word in listener.feed(block):
                show(word, json_lines=json_lines)
    except KeyboardInterrupt:
        pass  # Ctrl-C ends listening; the words still open are decoded below
    for word in listener.finish():
        show(word, json_lines=json_lines)
    return listener.words


def listen_file(predictor: BasePredictor, path: str | os.PathLike[str], *, json_lines: bool = False) -> list[Word]:
    """A file heard as a live stream, BLOCK at a time (as fast as it can be read)."""
    try:
        f = sf.SoundFile(str(path))
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError, OSError) as exc:
        raise AudioError(f"{path}: not a readable audio file ({exc})") from None
    with f:
        if f.samplerate < audio.MIN_RATE:
            raise AudioError(f"{path}: unusable sample rate {f.samplerate} Hz (need >= {audio.MIN_RATE} Hz)")
        listener = Listener(predictor, f.samplerate)
        size = max(1, round(BLOCK * f.samplerate))
        blocks = (b.mean(axis=1, dtype=np.float32) for b in f.blocks(blocksize=size, dtype="float32", always_2d=True))
        try:
            return run(listener, blocks, json_lines=json_lines)
        except ValueError as exc:  # NaN samples
            raise AudioError(f"{path}: {exc}") from None


def listen_microphone(predictor: BasePredictor, *, device: str | None = None, json_lines: bool = False) -> list[Word]:
    """Listen on the microphone until Ctrl-C."""
    try:
        import sounddevice
    except ImportError:
        raise ParameterError("listen needs sounddevice: pip install 'spoken-digits[listen]'") from None
    except OSError as exc:  # sounddevice is there, the PortAudio library is not
        raise ParameterError(
            f"listen needs the PortAudio library ({exc}): e.g. apt-get install libportaudio2"
        ) from None
    chosen: int | str | None = int(device) if device is not None and device.isdigit() else device
    blocks: queue.Queue[np.ndarray] = queue.Queue()

    def arrived(data: np.ndarray, frames: int, time: object, status: object) -> None:
        blocks.put(data[:, 0].copy())

    def read() -> Iterable[np.ndarray]:
        while True:
            yield blocks.get()

    listener = Listener(predictor, RATE)
    try:
        stream = sounddevice.InputStream(
            samplerate=RATE, channels=1, dtype="float32", blocksize=round(BLOCK * RATE), device=chosen, callback=arrived
        )
    except (sounddevice.PortAudioError, ValueError) as exc:
        raise ParameterError(f"cannot open the microphone ({exc}); list devices with: python -m sounddevice") from None
    print("listening: say some digits (Ctrl-C to stop)", flush=True)
    with stream:
        return run(listener, read(), json_lines=json_lines)
