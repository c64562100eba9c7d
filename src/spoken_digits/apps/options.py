"""Option groups several `spoken-digits` commands share: the dataset, the split, the run config, the device.

Help texts show every preset's value, so `--help` says what a run will do without reading the code.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from spoken_digits.config import PRESETS, RunConfig, Scale, SplitName


def data_options(p: argparse.ArgumentParser, *, fsdd_only: bool = False) -> None:
    if fsdd_only:
        p.add_argument(
            "--data", metavar="DIR", help="FSDD folder (or its recordings/); default: $FSDD_ROOT, then the user cache"
        )
    else:
        p.add_argument("--data", metavar="PATH", help=DATA_HELP)
    p.add_argument("--no-download", action="store_true", help="never download FSDD; fail if no copy is found")
    if not fsdd_only:
        source_options(p)


DATA_HELP = (
    "the dataset: FSDD's folder; class folders (PATH/<class>/<clip>, optionally under train/, validation/ "
    "and test/); a CSV manifest (columns path or file_name, label, optional speaker and split; paths relative "
    "to it) or a folder holding metadata.csv; or Google Speech Commands (word folders with testing_list.txt). "
    "Default: FSDD from $FSDD_ROOT, then the user cache (downloaded if missing)"
)


def source_options(p: argparse.ArgumentParser) -> None:
    """How to read a dataset other than FSDD (see data/sources.py)."""
    p.add_argument(
        "--speaker-pattern",
        metavar="REGEX",
        help="find each clip's speaker in its file name (group 'speaker', else group 1), e.g. '^(.+?)_' for "
        "alice_01.wav; speakers keep splits honest (a manifest's speaker column needs none)",
    )
    p.add_argument("--classes", metavar="A,B,...", help="use only these classes (e.g. Speech Commands' digit words)")
    p.add_argument(
        "--skip-bad",
        action="store_true",
        help="leave out unreadable or unusable files (counted and named) instead of stopping at the first",
    )
    p.add_argument(
        "--mixed-rates",
        action="store_true",
        help="accept files at different sample rates (all are resampled "
        "to the model's rate); without it mixed rates are an error, as they often mean a mixed-up dataset",
    )


def by_preset(get: Callable[[RunConfig], object]) -> str:
    """The value each preset uses, for help text: '0.001' when all agree, else '0.001; robust: 0.002'."""
    shown = {name: show(get(cfg)) for name, cfg in PRESETS.items()}
    first = shown.pop("default")
    others = "; ".join(f"{name}: {value}" for name, value in shown.items() if value != first)
    return f"default: {first}" + (f"; --preset {others}" if others else "")


def show(value: object) -> str:
    if value is None:
        return "none"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in value.items())
    return str(getattr(value, "value", value))


SPLIT_HELP = (
    "official: the dataset's own test split (FSDD: takes 0-4; Speech Commands: testing_list.txt; test/ folders "
    "or a split column), else speakers when they can hold about 10%% of the clips, else random; random: "
    "stratified 10%% test; speakers: whole speakers held out, as near 10%% of the clips as they allow (at most "
    "20%%, at least 3 speakers; the real shares are printed and saved); loso: one fold per speaker; all: train on "
    "everything, no test set"
)


def split_options(p: argparse.ArgumentParser, default: str | None) -> None:
    p.add_argument(
        "--split",
        choices=[s.value for s in SplitName],
        default=default,
        help=SPLIT_HELP
        + " ("
        + (by_preset(lambda c: c.split.name) if default is None else f"default: {default}")
        + ")",
    )
    p.add_argument("--speaker", help="with --split loso: hold out only this speaker")


def evaluate_split_options(p: argparse.ArgumentParser) -> None:
    """evaluate's --split: by default the model's own, so that a score never includes clips it trained on."""
    p.add_argument(
        "--split",
        choices=[s.value for s in SplitName],
        help=SPLIT_HELP + " (default: the split the model's run tested on; without --data, its run's dataset "
        "when that folder is still there; data options not given are the run's, for its own dataset)",
    )
    p.add_argument("--speaker", help="with --split loso: hold out only this speaker")


def config_options(p: argparse.ArgumentParser) -> None:
    """Options that shape a run's config (shared by train and diagnose); help shows each preset's value."""
    p.add_argument(
        "--preset",
        choices=list(PRESETS),
        help="default: for real recordings and new voices (a speech detector finds the word, a pretrained "
        "speech encoder hears it, a small head trained in noise, rooms, the telephone band); scratch: the same "
        "from scratch on cepstra, no pretrained weights; clean: the seed's pipeline done right, for clean "
        "tightly cut clips (log-mel dB, standardised, silence trimmed); seed: the seed's pipeline exactly (raw "
        "mel power, no standardisation); robust: for clean clips of voices the model never heard "
        "(an ensemble of conv1d) "
        "(default: default)",
    )
    p.add_argument(
        "--model",
        help=f"a registered model, listed by `spoken-digits models` ({by_preset(lambda c: c.model.name)}); "
        "a model other than the preset's starts without the preset's --param values",
    )
    p.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="model hyper-parameter, VALUE parsed as JSON (e.g. hidden=256; members=3 trains an ensemble); "
        f"repeatable ({by_preset(lambda c: c.model.params or None)})",
    )
    split_options(p, None)
    p.add_argument("--batch-size", type=int, help=f"mini-batch size ({by_preset(lambda c: c.train.batch_size)})")
    p.add_argument(
        "--lr",
        type=float,
        help="learning rate of the preset's optimiser "
        f"({by_preset(lambda c: f'{c.train.optimizer.value} {c.train.lr:g}')})",
    )
    p.add_argument(
        "--seed",
        type=int,
        help=f"random seed for splits, initialisation and batches ({by_preset(lambda c: c.train.seed)})",
    )
    p.add_argument(
        "--duration",
        type=float,
        help="seconds to pad/trim every clip to; 0 keeps each clip's true length "
        f"({by_preset(lambda c: c.audio.duration or 0)})",
    )
    p.add_argument(
        "--trim-db",
        type=float,
        help="trim leading/trailing audio quieter than this many dB below the peak, in place of the speech "
        f"detector; 0 = no trimming ({by_preset(lambda c: 'the detector' if c.audio.vad else c.audio.trim_db or 0)})",
    )
    p.add_argument(
        "--scale",
        choices=[s.value for s in Scale],
        help="mel power as is, or dB per clip; the speech encoder reads dB only "
        f"({by_preset(lambda c: c.features.scale)})",
    )


def device_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--device",
        default="cpu",
        help="torch device for features and model, e.g. cpu or cuda (default: cpu; .onnx models run on the CPU)",
    )
