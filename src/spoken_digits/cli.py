"""The `spoken-digits` command: argument parsing only; every command calls one library function."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

from spoken_digits import commands
from spoken_digits.config import PRESETS, RunConfig, Scale, SplitName
from spoken_digits.errors import SpokenDigitsError
from spoken_digits.models import MODELS


def _data_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--data", metavar="DIR", help="FSDD folder (or its recordings/); default: $FSDD_ROOT, then the user cache"
    )
    p.add_argument("--no-download", action="store_true", help="never download FSDD; fail if no copy is found")


def _by_preset(get: Callable[[RunConfig], object]) -> str:
    """The value each preset uses, for help text: '0.001' when all agree, else '0.001; robust: 0.002'."""
    shown = {name: _show(get(cfg)) for name, cfg in PRESETS.items()}
    first = shown.pop("default")
    others = "; ".join(f"{name}: {value}" for name, value in shown.items() if value != first)
    return f"default: {first}" + (f"; --preset {others}" if others else "")


def _show(value: object) -> str:
    if value is None:
        return "none"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in value.items())
    return str(getattr(value, "value", value))


def _split_options(p: argparse.ArgumentParser, default: str | None) -> None:
    p.add_argument(
        "--split",
        choices=[s.value for s in SplitName],
        default=default,
        help="official: takes 0-4 test; random: stratified 10%% test; loso: leave one speaker "
        "out (all six folds); all: train on everything, no test set ("
        + (_by_preset(lambda c: c.split.name) if default is None else f"default: {default}")
        + ")",
    )
    p.add_argument("--speaker", help="with --split loso: hold out only this speaker")


def _config_options(p: argparse.ArgumentParser) -> None:
    """Options that shape a run's config (shared by train and diagnose); help shows each preset's value."""
    p.add_argument(
        "--preset",
        choices=list(PRESETS),
        help="default: for real recordings (a speech detector finds the word; trained in noise, rooms, the "
        "telephone band); clean: the seed's pipeline done right, for clean tightly cut clips (log-mel dB, "
        "standardised, silence trimmed); seed: the seed's pipeline exactly (raw mel power, no "
        "standardisation); robust: for clean clips of voices the model never heard (an ensemble of conv1d) "
        "(default: default)",
    )
    p.add_argument(
        "--model",
        help=f"registered model: {', '.join(MODELS)} ({_by_preset(lambda c: c.model.name)}); "
        "a model other than the preset's starts without the preset's --param values",
    )
    p.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="model hyper-parameter, VALUE parsed as JSON (e.g. hidden=256; members=3 trains an ensemble); "
        f"repeatable ({_by_preset(lambda c: c.model.params or None)})",
    )
    _split_options(p, None)
    p.add_argument("--batch-size", type=int, help=f"mini-batch size ({_by_preset(lambda c: c.train.batch_size)})")
    p.add_argument(
        "--lr",
        type=float,
        help="learning rate of the preset's optimiser "
        f"({_by_preset(lambda c: f'{c.train.optimizer.value} {c.train.lr:g}')})",
    )
    p.add_argument(
        "--seed",
        type=int,
        help=f"random seed for splits, initialisation and batches ({_by_preset(lambda c: c.train.seed)})",
    )
    p.add_argument(
        "--duration",
        type=float,
        help="seconds to pad/trim every clip to; 0 keeps each clip's true length "
        f"({_by_preset(lambda c: c.audio.duration or 0)})",
    )
    p.add_argument(
        "--trim-db",
        type=float,
        help="trim leading/trailing audio quieter than this many dB below the peak, in place of the speech "
        f"detector; 0 = no trimming ({_by_preset(lambda c: 'the detector' if c.audio.vad else c.audio.trim_db or 0)})",
    )
    p.add_argument(
        "--scale",
        choices=[s.value for s in Scale],
        help=f"mel power as is, or dB per clip ({_by_preset(lambda c: c.features.scale)})",
    )


def _device_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--device",
        default="cpu",
        help="torch device for features and model, e.g. cpu or cuda (default: cpu; .onnx models run on the CPU)",
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for every subcommand."""
    parser = argparse.ArgumentParser(
        prog="spoken-digits",
        description="Recognise spoken digits from mel spectrograms: train, evaluate and use models on FSDD.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    t = sub.add_parser(
        "train",
        help="train and evaluate a model on FSDD",
        description="Train a model on "
        "FSDD and write metrics.json, model.pt, config.json, log.csv, confusion.png and "
        "curves.png to --out.",
    )
    _config_options(t)
    t.add_argument("--epochs", type=int, help=f"maximum epochs ({_by_preset(lambda c: c.train.epochs)})")
    t.add_argument(
        "--patience",
        type=int,
        help="stop after this many epochs without a better validation score; 0 = never "
        f"({_by_preset(lambda c: c.train.patience)})",
    )
    t.add_argument(
        "--device",
        help="torch device for training, e.g. cpu, cuda or cuda:1; features are computed on it too "
        f"({_by_preset(lambda c: c.train.device)})",
    )
    t.add_argument(
        "--noise-dir",
        metavar="DIR",
        help="a folder of noise recordings (any format) mixed into training clips beside the generated noise, "
        "at the preset's SNRs; keep it apart from any noise you test with (needs a preset with noise: the default)",
    )
    t.add_argument("--out", type=Path, help="output folder (default: runs/PRESET-MODEL-SPLIT-sSEED)")
    t.add_argument(
        "--resume",
        type=Path,
        metavar="DIR",
        help="continue the interrupted run in DIR with the config it "
        "started with (takes no other training option); ends with the metrics of an uninterrupted run",
    )
    _data_options(t)

    e = sub.add_parser(
        "evaluate",
        help="score a saved model on an FSDD split",
        description="Score MODEL.pt on the test clips of a split and print the metrics as JSON.",
    )
    e.add_argument(
        "checkpoint", type=Path, metavar="MODEL", help="a checkpoint written by train (.pt) or an exported .onnx"
    )
    _split_options(e, "official")
    _device_option(e)
    e.add_argument("--out", type=Path, help="also write metrics.json and confusion.png here")
    _data_options(e)

    p = sub.add_parser(
        "predict",
        help="the digits said in audio files (one or many per file)",
        description="Print one line per file: file, the digits heard (e.g. 4155550192), the lowest word "
        "probability. Unsure words and files with no digits are flagged on stderr; files that cannot be "
        "read are reported and the rest still answered; the exit status is 1 if any failed.",
    )
    p.add_argument(
        "checkpoint", type=Path, metavar="MODEL", help="a checkpoint (.pt: a word or string model) or an exported .onnx"
    )
    p.add_argument("files", nargs="+", metavar="FILE", help="audio files (wav, flac, ogg, ...; any rate and length)")
    p.add_argument(
        "--json",
        action="store_true",
        help="print a JSON list of {file, text, words: [{digit, start, end, probability, low_confidence}][, error]}",
    )
    p.add_argument(
        "--single",
        action="store_true",
        help="one word per file, the loudest (JSON: {file, digit, probability[, error][, warnings]})",
    )
    _device_option(p)

    li = sub.add_parser(
        "listen",
        help="recognise digits live from the microphone, as they are spoken",
        description="Print each word as it is recognised (digit, probability, start-end seconds), until Ctrl-C; "
        "then the whole string. Needs a microphone and PortAudio (pip install 'spoken-digits[listen]').",
    )
    li.add_argument("checkpoint", type=Path, metavar="MODEL", help="a checkpoint (.pt) or an exported .onnx")
    li.add_argument("--input-device", help="microphone: a sounddevice index or name (default: the system's)")
    li.add_argument("--file", type=Path, help="listen to an audio file as a stream instead of the microphone")
    li.add_argument("--json", action="store_true", help="print each word as a JSON line")

    s = sub.add_parser(
        "train-strings",
        help="train a string model (CTC) for touching digits, starting from a word model",
        description="Train a model that hears whole strings (several words with or without pauses), built on "
        "the fly from FSDD's official training split, starting from MODEL's front end and convolutions; "
        "writes --out/model.pt, which predict, listen and serve use like any model.",
    )
    s.add_argument("word_model", type=Path, metavar="MODEL", help="a word model checkpoint (.pt) written by train")
    s.add_argument("--out", type=Path, default=Path("runs/strings"), help="output folder (default: runs/strings)")
    s.add_argument("--epochs", type=int, default=20, help="epochs (default: 20)")
    s.add_argument("--recordings", type=int, default=1024, help="training recordings per epoch (default: 1024)")
    s.add_argument("--seed", type=int, default=0, help="seed of the recordings and augmentation (default: 0)")
    _data_options(s)

    w = sub.add_parser(
        "serve",
        help="a local web page to try a model with your microphone or files",
        description="Serve a page (record or upload a clip, see the answer and what the model heard) "
        "and a JSON API (POST /api/predict, GET /api/health, GET /api/model; docs at /docs).",
    )
    w.add_argument(
        "checkpoint", type=Path, metavar="MODEL", help="a checkpoint written by train (.pt) or an exported .onnx"
    )
    _device_option(w)
    w.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1, this machine only)")
    w.add_argument("--port", type=int, default=8000, help="port to listen on (default: 8000)")

    d = sub.add_parser(
        "diagnose",
        help="tell why a model does not learn: data, labels, training dynamics",
        description="Examine a pipeline (one of ours, by preset and options, or your own arrays with "
        "--data FILE.npz) or an accuracy history, and print ranked findings, most likely cause first. "
        "Exit status: 0 when nothing rises above info, 1 when a problem was found.",
    )
    _config_options(d)
    d.add_argument(
        "--data",
        metavar="FILE.npz|DIR",
        help="your arrays: a .npz with X as (N, T, F) or (N, F, T) as fed to the model, integer y (N,), "
        "optional lengths (N,); or an FSDD folder for our own pipeline (default: $FSDD_ROOT, then the cache)",
    )
    d.add_argument("--no-download", action="store_true", help="never download FSDD; fail if no copy is found")
    d.add_argument(
        "--history",
        type=Path,
        metavar="FILE.json",
        help="a JSON list of per-epoch training accuracies (or Keras' history dict) to read instead",
    )
    d.add_argument("--n-train", type=int, help="with --history: the number of clips each accuracy was measured on")
    d.add_argument("--json", action="store_true", help="print the diagnosis as JSON")
    d.add_argument("--out", type=Path, metavar="DIR", help="also write DIR/diagnosis.json")

    x = sub.add_parser(
        "export",
        help="export a checkpoint to ONNX (waveforms in, logits out)",
        description="Write MODEL.pt as one ONNX graph that computes the features too; batch and sample axes "
        "stay dynamic. The export is checked against torch (max |logit difference| <= 1e-4) before it is written.",
    )
    x.add_argument("checkpoint", type=Path, metavar="MODEL.pt", help="a checkpoint written by train")
    x.add_argument("--onnx", type=Path, required=True, metavar="OUT.onnx", help="where to write the ONNX model")
    x.add_argument("--opset", type=int, default=17, help="ONNX opset (default: 17)")

    g = sub.add_parser(
        "study",
        help="run a grid of training runs (models x features x splits x seeds) and aggregate it",
        description="Run every cell x seed of a grid into --out (finished runs are skipped, interrupted "
        "ones resumed), then write summary.json and summary.csv: mean, sd and 95% CI per cell.",
    )
    g.add_argument("grid", nargs="?", help="a built-in grid name (see --list) or a TOML grid file")
    g.add_argument("--list", action="store_true", help="list the built-in grids and exit")
    g.add_argument("--out", type=Path, help="study folder (default: runs/study-GRID)")
    g.add_argument("--seeds", type=int, help="run seeds 0..N-1 instead of the grid's own")
    g.add_argument("--workers", type=int, default=1, help="parallel training processes (default: 1)")
    g.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value in every cell, VALUE as JSON (e.g. train.epochs=5); repeatable",
    )
    _data_options(g)

    r = sub.add_parser(
        "report",
        help="render a study as Markdown and self-contained HTML",
        description="Write report.md, report.html and their plots for a study folder.",
    )
    r.add_argument("study", type=Path, metavar="STUDY_DIR", help="a folder written by spoken-digits study")
    r.add_argument("--out", type=Path, help="where to write the report (default: the study folder)")

    b = sub.add_parser(
        "robustness",
        help="score a saved model on test clips corrupted by noise, reverberation, band and level",
        description="Score MODEL on the test clips of a split under each condition (clean; white, pink and "
        "babble noise at 20/10/5/0 dB SNR with noise before and after the word; reverberation T60 0.3/0.6/0.9 s; "
        "telephone band; -30 dB level; 3 s padding; 1 s window), every clip corrupted the same way on every "
        "run and for every model, and write robustness.json, robustness.csv and robustness.png to --out.",
    )
    b.add_argument(
        "checkpoint", type=Path, metavar="MODEL", help="a checkpoint written by train (.pt) or an exported .onnx"
    )
    _split_options(b, "official")
    _device_option(b)
    b.add_argument("--out", type=Path, metavar="DIR", help="output folder (default: robustness/ beside MODEL)")
    b.add_argument(
        "--seed", type=int, default=0, help="seed of every corruption: the same clips for every model (default: 0)"
    )
    b.add_argument(
        "--conditions",
        nargs="+",
        metavar="NAME",
        help="only these conditions: names such as clean, white-10db, reverb-0.6s, or a kind for all of its "
        "levels (white, pink, babble, reverb, ...) (default: all)",
    )
    b.add_argument("--limit", type=int, metavar="N", help="score a seeded subset of N clips, balanced over digits")
    b.add_argument(
        "--noise-dir",
        type=Path,
        metavar="DIR",
        help="a folder of your own noise recordings (any format predict reads): adds noisedir conditions at each SNR",
    )
    b.add_argument("--json", action="store_true", help="print the result as JSON instead of a table")
    _data_options(b)

    sub.add_parser("models", help="list the registered models", description="List the registered models.")
    return parser


def _show_warning(message: Warning | str, *_: object, **__: object) -> None:
    print(f"spoken-digits: warning: {message}", file=sys.stderr)


COMMANDS = {
    "train": commands.train,
    "evaluate": commands.evaluate,
    "predict": commands.predict,
    "listen": commands.listen,
    "train-strings": commands.train_strings,
    "serve": commands.serve,
    "diagnose": commands.diagnose,
    "export": commands.export,
    "study": commands.study,
    "report": commands.report,
    "models": commands.models,
    "robustness": commands.robustness,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; errors we expect print one line and return a non-zero status."""
    args = build_parser().parse_args(argv)
    previous = signal.signal(signal.SIGTERM, _interrupt) if _main_thread() else None
    try:
        with warnings.catch_warnings():  # restores the caller's warning display on exit
            warnings.showwarning = _show_warning
            return COMMANDS[args.command](args)
    except SpokenDigitsError as exc:
        print(f"spoken-digits: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("spoken-digits: interrupted", file=sys.stderr)
        return 130
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _interrupt(signum: int, frame: object) -> None:
    """SIGTERM ends a command like Ctrl-C: temporary files are removed and saved progress kept."""
    raise KeyboardInterrupt


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()
