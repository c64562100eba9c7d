"""pocketsphinx as a digit recogniser: CMU's offline recogniser, its stock US English acoustic model (never
trained on FSDD) held to a grammar of the ten digit words. Imports nothing of spoken-digits, so a process
that runs only this (benchmarks.runtime) pays pocketsphinx's start-up alone."""

from __future__ import annotations

import importlib.metadata
from collections.abc import Sequence

import numpy as np
import soxr

SPHINX_SR = 16000  # the stock en-us acoustic model's rate
WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")  # FSDD says "zero", not "oh"
GRAMMAR = f"#JSGF V1.0;\ngrammar digits;\npublic <digit> = {' | '.join(WORDS)};\n"


class Sphinx:
    """pocketsphinx (stock en-us acoustic model and dictionary, no language model) held to GRAMMAR."""

    def __init__(self, grammar: str = GRAMMAR) -> None:
        import pocketsphinx  # the peer extra; ModuleNotFoundError without it

        self.version = importlib.metadata.version("pocketsphinx")
        self.decoder = pocketsphinx.Decoder(lm=None, loglevel="FATAL")
        self.decoder.add_jsgf_string("digits", grammar)
        self.decoder.activate_search("digits")

    def digits(self, y: np.ndarray, sr: int) -> str | None:
        """The digit words heard in `y` (mono float at `sr` Hz) as "0".."9" characters, or None when there
        is no hypothesis."""
        y16 = soxr.resample(np.asarray(y, dtype=np.float32), sr, SPHINX_SR) if sr != SPHINX_SR else y
        pcm = (np.clip(y16, -1.0, 1.0) * 32767).astype("<i2")
        if not len(pcm):
            return None
        self.decoder.reinit_feat()  # drop the noise estimate the last clip left: each clip is decoded alone
        self.decoder.start_utt()
        self.decoder.process_raw(pcm.tobytes(), no_search=False, full_utt=True)
        self.decoder.end_utt()
        hyp = self.decoder.hyp()
        if hyp is None:
            return None
        return "".join(str(WORDS.index(w)) for w in hyp.hypstr.split() if w in WORDS)

    def label(self, y: np.ndarray, sr: int) -> str | None:
        """The digit heard in `y` (mono float at `sr` Hz) as "0".."9", or None when there is no hypothesis."""
        heard = self.digits(y, sr)
        return heard if heard is not None and len(heard) == 1 else None

    def labels(self, waves: Sequence[np.ndarray], sr: int) -> tuple[list[str | None], int]:
        """`label` for each waveform, and how many had none (as robustness.predicted_labels)."""
        labels = [self.label(y, sr) for y in waves]
        return labels, labels.count(None)
