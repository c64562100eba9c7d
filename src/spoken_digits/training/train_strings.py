"""Train a string model: CTC over recordings of several words, built on the fly from single-word clips.

Each training recording is one speaker of the training split saying 1-5 random words, with pauses
drawn from 0-500 ms (touching words included, some slightly overlapping), and silence around them;
the word model's augmentation (speed, rooms, noise, babble, telephone band, clipping) then runs on
the whole recording. The model starts from the word model's convolutions and front end, so it
hears exactly what that model hears; its checkpoint is an ordinary one whose model is
`sequence_conv1d` and whose info says kind "strings".
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import cast

import numpy as np
import torch
import torch.nn.functional as F

from spoken_digits.config import ModelConfig, SplitConfig
from spoken_digits.data import fsdd
from spoken_digits.data.splits import make_folds
from spoken_digits.errors import ParameterError
from spoken_digits.frontend import audio
from spoken_digits.frontend.augment import Augmenter
from spoken_digits.frontend.batches import FeatureSet
from spoken_digits.models import checkpoint
from spoken_digits.models.nets import SequenceConv1D, create_model
from spoken_digits.training.train import seed_everything

MODEL = "sequence_conv1d"
MAX_WORDS = 5  # words per training recording (tests go to 10: the model does not count)
TOUCH = 0.4  # share of pauses drawn from -30..100 ms (touching, even overlapping words), the rest 100-500 ms
MARGIN = (0.05, 0.5)  # s of silence before and after the words


class StringMaker:
    """Random several-word recordings from labelled single-word waveforms, grouped by speaker."""

    def __init__(self, waves: Sequence[np.ndarray], labels: Sequence[int], speakers: Sequence[str], sr: int) -> None:
        self.sr = sr
        self.groups: dict[str, dict[int, list[np.ndarray]]] = {}
        for y, label, speaker in zip(waves, labels, speakers, strict=True):
            self.groups.setdefault(speaker, {}).setdefault(label, []).append(y)
        self.speakers = sorted(self.groups)

    def make(self, rng: np.random.Generator) -> tuple[np.ndarray, list[int]]:
        """One recording and its labels."""
        own = self.groups[self.speakers[int(rng.integers(len(self.speakers)))]]
        labels = sorted(own)
        said = [labels[int(i)] for i in rng.integers(0, len(labels), size=int(rng.integers(1, MAX_WORDS + 1)))]
        sr = self.sr
        parts, at = [], round(rng.uniform(*MARGIN) * sr)
        for k, label in enumerate(said):
            clips = own[label]
            parts.append((at, clips[int(rng.integers(len(clips)))]))
            pause = rng.uniform(-0.03, 0.1) if rng.random() < TOUCH else rng.uniform(0.1, 0.5)
            at += len(parts[-1][1]) + (round(pause * sr) if k + 1 < len(said) else 0)
        y = np.zeros(at + round(rng.uniform(*MARGIN) * sr), np.float32)
        for start, clip in parts:
            y[start : start + len(clip)] += clip
        return y, said


def train_strings(
    word_model: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    data: str | os.PathLike[str] | None = None,
    download: bool = True,
    epochs: int = 20,
    recordings: int = 1024,
    batch_size: int = 32,
    lr: float = 2e-3,
    seed: int = 0,
    say: Callable[[str], None] = print,
) -> Path:
    """Train a string model from a word checkpoint on FSDD's official training split; write out/model.pt."""
    if epochs < 1 or recordings < batch_size:
        raise ParameterError(f"need epochs >= 1 and recordings >= batch size, got {epochs} and {recordings}")
    word = checkpoint.load(word_model)
    cfg = word.config
    if cfg.features.encoder is not None:  # before reading 2,700 files: the default's models all stop here
        raise ParameterError(
            f"{word_model}: train-strings starts from a conv1d word model on mel features (train --preset scratch); "
            f"this one hears the {cfg.features.encoder} encoder. Its strings come from `predict`, which cuts the "
            "recording into words and runs each through it"
        )
    digits = [str(d) for d in range(10)]
    if sorted(word.classes) != digits:  # a filler class or other words would be CTC classes never in a target
        raise ParameterError(
            f"{word_model}: train-strings learns FSDD's ten digits, and this word model's classes are "
            f"{', '.join(word.classes)}; start from a model trained on the digits alone (no --filler, no own words)"
        )
    clips = fsdd.index(fsdd.locate(data, download=download))
    fold = make_folds(fsdd.as_clips(clips), SplitConfig())[0]
    train = [clips[i] for i in fold.train]
    waves = [audio.read_audio(c.path, cfg.audio.sr) for c in train]
    index = {c: i for i, c in enumerate(word.classes)}
    maker = StringMaker(waves, [index[str(c.digit)] for c in train], [c.speaker for c in train], cfg.audio.sr)
    seed_everything(seed)
    if cfg.model.name != "conv1d" or cfg.model.params or cfg.audio.n_samples is not None:
        window = f"a fixed {cfg.audio.duration} s window" if cfg.audio.n_samples else "whole clips"
        raise ParameterError(
            f"{word_model}: train-strings starts from a conv1d word model that hears whole clips (the scratch "
            f"preset), not {cfg.model.name} {dict(cfg.model.params)} with {window}"
        )
    featurizer, trunk = word.build()
    model = cast(SequenceConv1D, create_model(MODEL, n_features=cfg.n_features, n_classes=len(word.classes)))
    own = model.state_dict()
    shared = {k: v for k, v in trunk.state_dict().items() if k.startswith(("convs.", "norms."))}
    model.load_state_dict({**own, **shared})  # the word model's convolutions and their BatchNorms
    augment = Augmenter(cfg.augment, featurizer, cfg.audio)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=cfg.train.weight_decay)
    steps = epochs * (recordings // batch_size)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=steps, pct_start=0.15)
    rng, generator = np.random.default_rng(seed), torch.Generator().manual_seed(seed)
    blank = len(word.classes)
    history = []
    for epoch in range(1, epochs + 1):
        started, total = time.perf_counter(), 0.0
        model.train()
        for _ in range(recordings // batch_size):
            made = [maker.make(rng) for _ in range(batch_size)]
            x, lengths = map(torch.from_numpy, audio.batch([y for y, _ in made]))
            batch = augment(FeatureSet(x, lengths, torch.zeros(batch_size, dtype=torch.long)), generator)
            log_probs = model(batch.x, batch.lengths)  # (B, T, C + 1)
            targets = torch.tensor([label for _, said in made for label in said], dtype=torch.long)
            target_lengths = torch.tensor([len(said) for _, said in made], dtype=torch.long)
            loss = F.ctc_loss(
                log_probs.transpose(0, 1),
                targets,
                model.output_lengths(batch.lengths),
                target_lengths,
                blank=blank,
                zero_infinity=True,
            )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            optimizer.step()
            scheduler.step()
            total += loss.item()
        row = {"epoch": epoch, "ctc_loss": total / (recordings // batch_size), "seconds": time.perf_counter() - started}
        history.append(row)
        say(f"epoch {epoch}/{epochs}: CTC loss {row['ctc_loss']:.3f} ({row['seconds']:.1f} s)")
        if not math.isfinite(row["ctc_loss"]):
            raise ParameterError(f"training diverged at epoch {epoch} (CTC loss {row['ctc_loss']})")
    config = dataclasses.replace(cfg, model=ModelConfig(name=MODEL))
    info = {"kind": "strings", "word_model": str(word_model), "epochs": epochs, "recordings": recordings}
    info |= {"seed": seed, "history": history}
    path = Path(out) / "model.pt"
    path.parent.mkdir(parents=True, exist_ok=True)
    checkpoint.save(path, checkpoint.Checkpoint(config, word.classes, model.state_dict(), word.featurizer_state, info))
    return path
