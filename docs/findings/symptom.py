"""Reproduce the seed's symptom: seed_lstm on the seed's features, but with all-zero inputs, or with
shuffled labels. Prints each epoch's training accuracy as a count of clips, and the held-out accuracy.

    FSDD_ROOT=../shared/data/fsdd python docs/findings/symptom.py
"""

from __future__ import annotations

import numpy as np
import torch

from spoken_digits.config import TrainConfig, preset
from spoken_digits.diagnose import pipeline_arrays
from spoken_digits.frontend.batches import FeatureSet
from spoken_digits.models.nets import create_model
from spoken_digits.training.train import fit, predict_logits, seed_everything


def main() -> None:
    arrays = pipeline_arrays(preset("seed"))  # the official training clips, raw mel power (16, 80)
    x, y, lengths = (torch.from_numpy(a) for a in (arrays.x, arrays.y, arrays.lengths))
    order = torch.from_numpy(np.random.default_rng(0).permutation(len(y)))
    train, held_out = order[:-300], order[-300:]
    shuffled = y[torch.from_numpy(np.random.default_rng(1).permutation(len(y)))]
    for name, inputs, labels in (("all-zero inputs", torch.zeros_like(x), y), ("shuffled labels", x, shuffled)):
        data = FeatureSet(inputs, lengths, labels)
        seed_everything(0)
        model = create_model("seed_lstm", n_features=80, n_classes=10)
        history = fit(model, data.subset(train), None, TrainConfig(epochs=10, patience=0, adam_eps=1e-7)).history
        counts = [round(h["train_accuracy"] * len(train)) for h in history]
        test = data.subset(held_out)
        accuracy = (predict_logits(model, test).argmax(1) == test.y).float().mean().item()
        print(f"{name}: training accuracy x {len(train)} clips per epoch {counts}; held-out {accuracy:.3f}")


if __name__ == "__main__":
    main()
