"""A checkpoint (.pt) run in torch: the classifier module (features + model) and its predictor.

Kept apart from `predict` so that recognising with an exported or packaged model never imports torch.
"""

from __future__ import annotations

import os

import numpy as np
import torch
from torch import nn

from spoken_digits.frontend.features import Featurizer
from spoken_digits.models import checkpoint
from spoken_digits.recognize.predict import BasePredictor


class SpokenDigitClassifier(nn.Module):
    """Waveforms (N, L) at the model's rate + lengths (N,) -> logits (N, n_classes)."""

    def __init__(self, featurizer: Featurizer, model: nn.Module) -> None:
        super().__init__()
        self.featurizer, self.model = featurizer, model

    def forward(self, waves: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        x, frames = self.featurizer(waves, lengths)  # (N, T, n_mels), (N,)
        return self.model(x, frames)


class Predictor(BasePredictor):
    """A loaded checkpoint, run in torch: the only predictor that also shows the model's input features."""

    def __init__(self, ckpt: checkpoint.Checkpoint, *, device: str = "cpu") -> None:
        super().__init__(ckpt.config, ckpt.classes, ckpt.info, device=device)
        self.checkpoint = ckpt
        self.classifier = SpokenDigitClassifier(*ckpt.build()).to(self.device).eval()

    @classmethod
    def from_file(cls, path: str | os.PathLike[str], *, device: str = "cpu") -> Predictor:
        """Load a checkpoint file (safely: weights only)."""
        return cls(checkpoint.load(path), device=device)

    @torch.no_grad()
    def logits(self, waves: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        """Logits (N, n_classes) of prepared waveforms (N, L) with `lengths` (N,)."""
        x, n = torch.from_numpy(waves).to(self.device), torch.from_numpy(lengths).to(self.device)
        return self.classifier(x, n).float().cpu().numpy()

    @torch.no_grad()
    def features(self, waves: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        """The first clip's model input (T, n_mels): after trim, padding and standardisation."""
        x, n = torch.from_numpy(waves).to(self.device), torch.from_numpy(lengths).to(self.device)
        feats, frames = self.classifier.featurizer(x, n)  # (N, T, F), (N,)
        return feats[0, : int(frames[0])].cpu().numpy()
