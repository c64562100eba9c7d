"""Frozen against fine-tuned speech encoder, on the same clean clips and the same head.

Both train a conv1d head on the encoder's embeddings of FSDD's words (the default preset's speech encoder:
16 kHz, the speech detector's word), without augmentation, for the same epochs; "fine-tuned" also
updates the encoder's 328k weights at a tenth of the head's learning rate. Scored on the held-out
clips of the official split and of chosen leave-one-speaker-out folds. Writes finetune.json here.

    python docs/findings/encoder/finetune.py [--folds official george nicolas] [--epochs 10]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from spoken_digits.atomic import write_json
from spoken_digits.config import SplitConfig, preset
from spoken_digits.data.sources import open_dataset
from spoken_digits.data.splits import make_folds
from spoken_digits.device import machine
from spoken_digits.frontend.encoder import SpeechEncoder
from spoken_digits.models.nets import create_model
from spoken_digits.training.corpus import load_corpus
from spoken_digits.training.train import seed_everything

HERE = Path(__file__).parent


class Tuned(nn.Module):
    """Encoder then head, waveforms in: (N, L) + lengths -> logits."""

    def __init__(self, encoder: SpeechEncoder, head: nn.Module) -> None:
        super().__init__()
        self.encoder, self.head = encoder, head

    def forward(self, waves: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.head(*self.encoder(waves, lengths))


def run(
    waves: torch.Tensor,
    lengths: torch.Tensor,
    labels: torch.Tensor,
    train: np.ndarray,
    test: np.ndarray,
    *,
    finetune: bool,
    epochs: int,
    seed: int,
) -> dict[str, float]:
    seed_everything(seed)
    cfg = preset("default")
    encoder = SpeechEncoder(pad=cfg.features.encoder_pad, trainable=finetune).load_pretrained()
    model = Tuned(encoder, create_model("conv1d", n_features=96, n_classes=10))
    groups = [{"params": model.head.parameters(), "lr": cfg.train.lr}]
    if finetune:
        groups.append({"params": encoder.parameters(), "lr": cfg.train.lr / 10})
    optimizer = torch.optim.AdamW(groups, weight_decay=cfg.train.weight_decay)
    batch, steps = 32, epochs * int(np.ceil(len(train) / 32))
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=[g["lr"] for g in groups], total_steps=steps, pct_start=0.15
    )
    generator = torch.Generator().manual_seed(seed)
    started = time.perf_counter()
    for _ in range(epochs):
        model.train()
        encoder.train(finetune)  # no BatchNorm inside; kept for clarity
        for index in torch.randperm(len(train), generator=generator).split(batch):
            rows = torch.as_tensor(train[index.numpy()])
            longest = int(lengths[rows].max())
            loss = F.cross_entropy(model(waves[rows, :longest], lengths[rows]), labels[rows], label_smoothing=0.1)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
    model.eval()
    with torch.no_grad():
        predicted = torch.cat(
            [
                model(waves[torch.as_tensor(c), : int(lengths[c].max())], lengths[c]).argmax(1)
                for c in np.array_split(test, max(1, len(test) // 128))
            ]
        )
    return {"accuracy": float((predicted == labels[test]).float().mean()), "seconds": time.perf_counter() - started}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--folds", nargs="+", default=["official", "george", "nicolas"], help="official and/or speaker names"
    )
    parser.add_argument("--epochs", type=int, default=10, help="training epochs for both")
    parser.add_argument("--seed", type=int, default=0, help="seed")
    args = parser.parse_args()
    cfg = preset("default")
    dataset = open_dataset(None)
    corpus = load_corpus(dataset, cfg)
    waves, lengths = corpus.fixed()
    folds = {f.name: f for f in make_folds(dataset.clips, SplitConfig(name="loso"))}
    folds |= {f.name: f for f in make_folds(dataset.clips, SplitConfig())}
    results = {}
    for name in args.folds:
        fold = folds[name]
        for finetune in (False, True):
            key = f"{name}/{'fine-tuned' if finetune else 'frozen'}"
            results[key] = run(
                waves,
                lengths,
                corpus.labels,
                fold.train,
                fold.test,
                finetune=finetune,
                epochs=args.epochs,
                seed=args.seed,
            )
            print(key, results[key], flush=True)
    write_json(
        HERE / "finetune.json",
        {"epochs": args.epochs, "seed": args.seed, "machine": machine("cpu"), "results": results},
    )


if __name__ == "__main__":
    main()
