"""What string recognition returns (words with times and confidences), and the piece of a recording
a word is heard in."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# A word whose probability is below this is marked `low`. Probabilities are calibrated (temperature fitted on
# held-out clips when the model was trained): of answers given probability p, about 1 - p are wrong, so
# a `low` word is wrong about 30% of the time or more.
LOW_CONFIDENCE = 0.7
# For a model without a filler class only: a piece whose best word is below this is no word of the model.
# A model with one (--filler, --filler-voices, an _unknown_ folder) rejects a piece only when the filler class
# is its best answer.
REJECT = 0.5


@dataclass(frozen=True)
class Word:
    """One recognised word: its label, where it lies (seconds into the recording), how sure the model is."""

    label: str
    start: float
    end: float
    probability: float

    @property
    def low(self) -> bool:
        """True when the model is unsure (calibrated probability below LOW_CONFIDENCE): check this digit."""
        return self.probability < LOW_CONFIDENCE

    def to_dict(self) -> dict[str, object]:
        return {
            "digit": self.label,
            "start": round(self.start, 3),
            "end": round(self.end, 3),
            "probability": round(self.probability, 4),
            "low_confidence": self.low,
        }


@dataclass(frozen=True)
class Transcript:
    """The words found in one recording, in order; `rejected` counts speech pieces that were no digit."""

    words: tuple[Word, ...]
    seconds: float
    rejected: int = 0

    @property
    def text(self) -> str:
        """The labels joined: "4155550192" for digits (labels longer than one character joined by spaces)."""
        return join_labels([w.label for w in self.words])

    def to_dict(self) -> dict[str, object]:
        return {"text": self.text, "seconds": round(self.seconds, 3), "words": [w.to_dict() for w in self.words]}


def join_labels(labels: list[str]) -> str:
    """Labels as one string: run together when each is one character (digits), else spaced (words)."""
    return "".join(labels) if all(len(x) == 1 for x in labels) else " ".join(labels)


def piece(y: np.ndarray, a: int, b: int) -> np.ndarray:
    """y[a:b], with silence where [a, b) reaches past the recording."""
    return np.pad(y[max(a, 0) : max(min(b, len(y)), 0)], (max(-a, 0), max(b - len(y), 0))).astype(np.float32)
