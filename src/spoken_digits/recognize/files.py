"""What `predict` answers for files: a transcript per file, read whole up to WHOLE_SECONDS and as a
stream beyond (never loaded whole), with warnings (no digits, clipping, unsure words) or an error.
Files are read and answered a small group at a time, so memory does not grow with the number of files."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import soundfile as sf

from spoken_digits.errors import AudioError
from spoken_digits.frontend import audio
from spoken_digits.recognize.predict import BasePredictor
from spoken_digits.recognize.stream import Listener
from spoken_digits.recognize.strings import transcribe
from spoken_digits.recognize.words import Transcript

WHOLE_SECONDS = 60.0  # longer files are transcribed as a stream, a block at a time
# Short files are read and transcribed in groups of up to GROUP_FILES files or GROUP_SECONDS of audio: the
# detector and the model batch a group (on 300 FSDD clips, one by one took 2.2x as long), and only one
# group's audio is held at a time
GROUP_FILES = 64
GROUP_SECONDS = WHOLE_SECONDS


@dataclass(frozen=True)
class FileTranscript:
    """What `predict` says about one file: its transcript, or the error that refused it, and warnings."""

    file: str
    transcript: Transcript | None = None
    error: str | None = None
    warnings: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, object]:
        """The JSON form: file, text and words (null on error), and error and warnings when there are any."""
        out: dict[str, object] = {"file": self.file, "text": None, "words": None}
        if self.transcript is not None:
            out |= self.transcript.to_dict()
        if self.error is not None:
            out["error"] = self.error
        if self.warnings:
            out["warnings"] = list(self.warnings)
        return out


def transcribe_files(predictor: BasePredictor, paths: Iterable[str | os.PathLike[str]]) -> list[FileTranscript]:
    """One FileTranscript per path, in order (`each_transcript`, collected)."""
    return list(each_transcript(predictor, paths))


def each_transcript(predictor: BasePredictor, paths: Iterable[str | os.PathLike[str]]) -> Iterator[FileTranscript]:
    """One FileTranscript per path, in order, each given once its group is done: files up to WHOLE_SECONDS
    are read whole (the detector levels the whole recording), GROUP_FILES or GROUP_SECONDS of them at a
    time; longer ones go through a `Listener` block by block, never loaded whole."""
    sr = predictor.audio_cfg.sr
    group: list[tuple[str, np.ndarray | FileTranscript]] = []  # files read and not yet answered, in order
    seconds = 0.0
    for path in paths:
        try:
            if _seconds(path) > WHOLE_SECONDS:
                yield from _answer(predictor, group)  # the files before it first
                group, seconds = [], 0.0
                yield _stream_file(predictor, path)
                continue
            y = audio.read_audio(path, sr, max_duration=WHOLE_SECONDS)
            group.append((str(path), y))
            seconds += len(y) / sr
        except AudioError as exc:
            group.append((str(path), FileTranscript(str(path), error=str(exc))))
        if len(group) >= GROUP_FILES or seconds >= GROUP_SECONDS:
            yield from _answer(predictor, group)
            group, seconds = [], 0.0
    yield from _answer(predictor, group)


def _answer(predictor: BasePredictor, group: list[tuple[str, np.ndarray | FileTranscript]]) -> list[FileTranscript]:
    """The group's FileTranscripts in order: its waveforms transcribed together, its errors as they are."""
    waves = [item for _, item in group if isinstance(item, np.ndarray)]
    heard = iter(transcribe(predictor, waves))
    out = []
    for path, item in group:
        if isinstance(item, FileTranscript):
            out.append(item)
        else:
            transcript = next(heard)
            out.append(FileTranscript(path, transcript, warnings=tuple(_notes(transcript, audio.clipped_share(item)))))
    return out


def _seconds(path: str | os.PathLike[str]) -> float:
    """The file's duration from its header (0 when it cannot be read: read_audio then says why)."""
    try:
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError, OSError):
        return 0.0
    return info.frames / info.samplerate if info.samplerate else 0.0


def _stream_file(predictor: BasePredictor, path: str | os.PathLike[str]) -> FileTranscript:
    """A long file, read a second at a time through a Listener (clipping counted on the way)."""
    clipped, total = 0.0, 0
    try:
        with sf.SoundFile(str(path)) as f:
            if f.samplerate < audio.MIN_RATE:
                raise AudioError(f"{path}: unusable sample rate {f.samplerate} Hz (need >= {audio.MIN_RATE} Hz)")
            listener = Listener(predictor, f.samplerate)
            for block in f.blocks(blocksize=f.samplerate, dtype="float32", always_2d=True):
                mono = block.mean(axis=1, dtype=np.float32)
                if not np.isfinite(mono).all():
                    raise AudioError(f"{path}: contains NaN or infinite samples")
                clipped, total = clipped + audio.clipped_share(mono) * len(mono), total + len(mono)
                listener.feed(mono)
            listener.finish()
            seconds = f.frames / f.samplerate
    except sf.LibsndfileError as exc:
        raise AudioError(f"{path}: not a readable audio file ({exc.error_string})") from None
    transcript = Transcript(tuple(listener.words), seconds, listener.rejected)
    return FileTranscript(str(path), transcript, warnings=tuple(_notes(transcript, clipped / max(total, 1))))


def _notes(transcript: Transcript, clipped: float) -> list[str]:
    """Warnings for a transcript: nothing heard, clipping (the share of samples at full scale), unsure words."""
    notes = []
    if not transcript.words:
        notes.append("no digits heard (no speech, or no word the model knows)")
    if note := audio.clipping_note(clipped):
        notes.append(note)
    for k, w in enumerate(transcript.words):
        if w.low:
            notes.append(
                f"word {k + 1} ({w.label!r} at {w.start:.2f}-{w.end:.2f} s) is uncertain "
                f"(probability {w.probability:.2f})"
            )
    return notes
