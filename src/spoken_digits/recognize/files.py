"""What `predict` answers for files: a transcript per file, read whole up to WHOLE_SECONDS and as a
stream beyond (never loaded whole), with warnings (no digits, clipping, unsure words) or an error."""

from __future__ import annotations

import os
from collections.abc import Sequence
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


def transcribe_files(predictor: BasePredictor, paths: Sequence[str | os.PathLike[str]]) -> list[FileTranscript]:
    """One FileTranscript per path, in order. Files up to WHOLE_SECONDS are read whole (the detector
    levels the whole recording); longer ones go through a `Listener` block by block, never loaded whole."""
    sr = predictor.audio_cfg.sr
    results: dict[int, FileTranscript] = {}
    waves: dict[int, np.ndarray] = {}
    for i, path in enumerate(paths):
        try:
            if _seconds(path) > WHOLE_SECONDS:
                results[i] = _stream_file(predictor, path)
            else:
                waves[i] = audio.read_audio(path, sr, max_duration=WHOLE_SECONDS)
        except AudioError as exc:
            results[i] = FileTranscript(str(path), error=str(exc))
    for (i, y), transcript in zip(waves.items(), transcribe(predictor, list(waves.values())), strict=True):
        notes = _notes(transcript, audio.clipped_share(y))
        results[i] = FileTranscript(str(paths[i]), transcript, warnings=tuple(notes))
    return [results[i] for i in range(len(paths))]


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
