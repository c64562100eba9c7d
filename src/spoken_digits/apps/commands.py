"""What each `spoken-digits` subcommand does: turn parsed options into one library call and print the result.

`cli.py` builds the parser; every function here takes its parsed `argparse.Namespace`.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from spoken_digits.config import RunConfig, SplitConfig, preset
from spoken_digits.errors import ParameterError


def _run_config(args: argparse.Namespace) -> RunConfig:
    """The preset with every option the user gave applied on top."""
    cfg = preset(args.preset or "default")
    name = args.model or cfg.model.name
    # The preset's hyper-parameters belong to its own model: another --model starts from its defaults.
    params = (dict(cfg.model.params) if name == cfg.model.name else {}) | _key_values(args.param, "--param")
    train = {
        k: v
        for k, v in {
            "epochs": getattr(args, "epochs", None),
            "batch_size": args.batch_size,
            "lr": args.lr,
            "patience": getattr(args, "patience", None),
            "seed": args.seed,
            "device": getattr(args, "device", None),
        }.items()
        if v is not None
    }
    audio: dict[str, Any] = {} if args.duration is None else {"duration": args.duration or None}
    if args.trim_db is not None:  # the peak-relative trim (or none) in place of the speech detector
        audio |= {"trim_db": args.trim_db or None, "vad": False}
    augment = cfg.augment
    if getattr(args, "noise_dir", None) is not None:
        augment = dataclasses.replace(augment, noise_dir=str(Path(args.noise_dir).resolve()))
    if getattr(args, "filler", None) is not None:
        augment = dataclasses.replace(augment, filler=args.filler)
    if getattr(args, "filler_voices", None) is not None:
        augment = dataclasses.replace(augment, filler_voices=args.filler_voices)
    return dataclasses.replace(
        cfg,
        augment=augment,
        audio=dataclasses.replace(cfg.audio, **audio),
        features=dataclasses.replace(cfg.features, **({"scale": args.scale} if args.scale else {})),
        model=dataclasses.replace(cfg.model, name=name, params=params),
        train=dataclasses.replace(cfg.train, **train),
        split=SplitConfig(name=args.split or cfg.split.name, speaker=args.speaker),
    )


DATA_OPTIONS = {"data", "no_download", "speaker_pattern", "classes", "skip_bad", "mixed_rates", "workers"}
RUN_OPTIONS = {"command", "resume", *DATA_OPTIONS}  # every other train option shapes the config


def _dataset(args: argparse.Namespace) -> Any:
    """The dataset the options name (data/sources.py), opened and checked before any training starts."""
    from spoken_digits.data.sources import open_dataset

    return open_dataset(
        args.data,
        download=not args.no_download,
        speaker_pattern=args.speaker_pattern,
        classes=args.classes,
        skip_bad=args.skip_bad,
        mixed_rates=args.mixed_rates,
    )


def _data_options(args: argparse.Namespace) -> Any:
    """The data options given on the command line (None for each one not given)."""
    from spoken_digits.data.clips import DataOptions

    return DataOptions(args.speaker_pattern, args.classes, args.skip_bad or None, args.mixed_rates or None)


def train(args: argparse.Namespace) -> int:
    from spoken_digits.device import check_device
    from spoken_digits.models.nets import create_model
    from spoken_digits.training.experiment import headline, resumable_config, resume_run, train_run
    from spoken_digits.training.rundata import saved_data

    say = lambda line: print(line, file=sys.stderr)  # noqa: E731
    if args.resume is not None:
        given = [
            f"--{k.replace('_', '-')}" for k, v in vars(args).items() if k not in RUN_OPTIONS and v not in (None, [])
        ]
        if given:
            raise ParameterError(f"--resume continues with the run's own config.json; drop {', '.join(given)}")
        out = args.resume
        cfg = resumable_config(out)  # its device decides the process group's backend below
        root, saved = saved_data(out)  # the run's own dataset and data options, unless given (then compared)
        if args.data is None and root is not None and Path(root).exists():
            args.data = root
        vars(args).update(_data_options(args).over(saved).to_dict())
        args.skip_bad, args.mixed_rates = bool(args.skip_bad), bool(args.mixed_rates)
        data = _dataset(args)
        run = lambda: resume_run(out, data=data, say=say, workers=args.workers, skip_bad=args.skip_bad)  # noqa: E731
    else:
        cfg = _run_config(args)
        create_model(cfg.model.name, n_features=cfg.n_features, n_classes=10, **cfg.model.params)  # fail fast
        out = args.out or Path("runs") / f"{cfg.preset}-{cfg.model.name}-{cfg.split.name.value}-s{cfg.train.seed}"
        data = _dataset(args)
        run = lambda: train_run(  # noqa: E731
            cfg, out, data=data, say=say, workers=args.workers, skip_bad=args.skip_bad
        )
    check_device(cfg.train.device)
    try:
        with _distributed(cfg.train.device):
            metrics = run()
    except KeyboardInterrupt:
        from spoken_digits.training.runstate import RunState

        if RunState(out).exists():
            say(f"spoken-digits: interrupted; progress is saved, continue with: spoken-digits train --resume {out}")
        else:  # stopped while the data was read: nothing of the run was written
            say("spoken-digits: interrupted before the run started (nothing saved); run the same command again")
        return 130
    result = headline(metrics["test_accuracy"], metrics.get("val_accuracy"))
    if "folds" in metrics:
        result += " (mean of folds: " + ", ".join(f"{k} {v:.3f}" for k, v in metrics["folds"].items()) + ")"
    if int(os.environ.get("RANK", "0")) == 0:  # under torchrun every rank gets here; one reports
        print(f"{result}; {metrics['seconds']:.1f} s; wrote {out}/")
    return 0


@contextlib.contextmanager
def _distributed(device: str) -> Iterator[None]:
    """Under torchrun (WORLD_SIZE > 1): one process group for the run, gloo on CPU, nccl on GPU."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        yield
        return
    import torch.distributed as dist

    backend = "nccl" if device.startswith("cuda") else "gloo"
    if backend == "nccl":
        import torch

        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(backend)
    try:
        yield
    finally:
        dist.destroy_process_group()


def evaluate(args: argparse.Namespace) -> int:
    from spoken_digits.evaluation.evaluate import evaluate_checkpoint

    # no --split: the model's own; no --data: its run's dataset, read with the run's data options
    split = None if args.split is None else SplitConfig(name=args.split, speaker=args.speaker)
    if split is None and args.speaker is not None:
        raise ParameterError("--speaker needs --split loso")
    metrics = evaluate_checkpoint(
        args.checkpoint,
        split,
        data=args.data,
        options=_data_options(args),
        download=not args.no_download,
        out=args.out,
        device=args.device,
    )
    print(json.dumps({k: v for k, v in metrics.items() if k != "confusion"}, indent=2))
    return 0


def train_strings(args: argparse.Namespace) -> int:
    from spoken_digits.training.train_strings import train_strings as run

    options = {"epochs": args.epochs, "recordings": args.recordings, "seed": args.seed}
    path = run(args.word_model, args.out, data=args.data, download=not args.no_download, **options)
    print(f"wrote {path}")
    return 0


def diagnose(args: argparse.Namespace) -> int:
    from spoken_digits import diagnose
    from spoken_digits.atomic import write_json

    if args.history is not None:
        _refuse_unused(args, {"history", "n_train"}, "with --history (an accuracy list has no audio or model)")
        if args.n_train is None:
            raise ParameterError("--history needs --n-train N, the number of clips each accuracy counts")
        result = diagnose.diagnose_history(_read_history(args.history), args.n_train)
    elif args.data is not None and Path(args.data).suffix == ".npz":
        used = {"data", "model", "param", "lr", "batch_size", "seed"}
        _refuse_unused(args, used, "with --data FILE.npz (your arrays are already features)")
        cfg = _run_config(args)
        x, y, lengths = diagnose.load_arrays(args.data)
        result = diagnose.diagnose_arrays(
            x,
            y,
            lengths=lengths,
            model=_array_model(cfg, x.shape[-1]) if args.model or args.param else None,
            lr=cfg.train.lr,
            batch_size=cfg.train.batch_size,
            seed=cfg.train.seed,
        )
    else:
        _refuse_unused(args, set(vars(args)) - {"history", "n_train"}, "without --history")
        result = diagnose.diagnose_run(_run_config(args), data=_dataset(args))
    if args.out is not None:
        write_json(args.out / "diagnosis.json", result.to_dict())
    print(json.dumps(result.to_dict(), indent=2) if args.json else result.render())
    return 0 if result.healthy else 1


def _refuse_unused(args: argparse.Namespace, used: set[str], mode: str) -> None:
    """A ParameterError naming every option given that `mode` would silently ignore."""
    ignored = {"command", "json", "out"}  # meaningful in every mode
    given = [k for k, v in vars(args).items() if k not in used | ignored and not (v is None or v is False or v == [])]
    if given:
        options = ", ".join(f"--{k.replace('_', '-')}" for k in given)
        raise ParameterError(f"{options} not used {mode}; drop {'it' if len(given) == 1 else 'them'}")


def _array_model(cfg: RunConfig, width: int) -> Any:
    """A factory for the config's registered model, sized for arrays `width` features wide."""
    from spoken_digits.models.nets import create_model

    def factory() -> Any:
        return create_model(cfg.model.name, n_features=width, n_classes=10, **cfg.model.params)

    factory()  # a bad name or hyper-parameter fails here, before any check runs
    return factory


def _read_history(path: Path) -> list[float]:
    """Accuracies from a JSON list, or from a Keras-style history dict."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ParameterError(f"{path}: cannot read a JSON history ({exc})") from None
    if isinstance(data, dict):
        key = next((k for k in ("accuracy", "sparse_categorical_accuracy", "acc", "train_accuracy") if k in data), None)
        if key is None:
            raise ParameterError(f"{path}: no accuracy list in the keys {sorted(data)}")
        data = data[key]
    if not isinstance(data, list) or not all(isinstance(v, (int, float)) for v in data):
        raise ParameterError(f"{path}: expected a list of accuracies (numbers in [0, 1])")
    return [float(v) for v in data]


def study(args: argparse.Namespace) -> int:
    from spoken_digits.training import grids, study
    if args.list:
        for name, grid in grids.BUILTIN.items():
            print(f"{name:10s} {len(grid.runs()):4d} runs  {grid.description}")
        return 0
    if args.grid is None:
        raise ParameterError("name a grid (spoken-digits study --list shows the built-in ones) or a TOML file")
    grid = grids.with_overrides(grids.load_grid(args.grid), _key_values(args.set, "--set"), args.seeds)
    out = args.out or Path("runs") / f"study-{grid.name}"
    say = lambda line: print(line, file=sys.stderr)  # noqa: E731
    summary = study.run_study(grid, out, data=_dataset(args), workers=args.workers, skip_bad=args.skip_bad, say=say)
    for row in summary["cells"]:
        print(f"{row['cell']:50s} {row['mean']:.4f} ± {row['ci95']:.4f} (95% CI, {row['n_seeds']} seeds)")
    print(f"wrote {out}/summary.json; render it with: spoken-digits report {out}")
    return 0


def report(args: argparse.Namespace) -> int:
    from spoken_digits.training.studyreport import render

    print(f"wrote {render(args.study, args.out)} and report.html")
    return 0


def _key_values(items: list[str], option: str) -> dict[str, Any]:
    """KEY=VALUE pairs with VALUE parsed as JSON where it parses (else kept as a string)."""
    pairs: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ParameterError(f"{option} expects KEY=VALUE, got {item!r}")
        try:
            pairs[key] = json.loads(value)
        except json.JSONDecodeError:
            pairs[key] = value
    return pairs


def cache(args: argparse.Namespace) -> int:
    from spoken_digits.data import cachedir
    from spoken_digits.data.cache import clips_folder

    folder = clips_folder()
    if not args.prune and (args.keep is not None or args.max_size is not None):
        raise ParameterError("--keep and --max-size say what --prune keeps: add --prune")
    if args.prune:
        limit = None if args.max_size is None else cachedir.parse_size(args.max_size)
        removed, busy = cachedir.prune(folder, keep=args.keep, max_bytes=limit)
        for store in removed:
            print(f"removed {store.path.name} ({store.nbytes / 1e6:.1f} MB; {store.why_stale or 'over the limit'})")
        if busy:
            print(f"kept {busy} store(s) that another run is reading", file=sys.stderr)
    print(f"{folder}:\n{cachedir.table(cachedir.stores(folder))}")
    return 0


def models(args: argparse.Namespace) -> int:
    from spoken_digits.models.nets import MODELS

    for name, (_, description) in MODELS.items():
        print(f"{name:10s} {description}")
    return 0


def robustness(args: argparse.Namespace) -> int:
    from spoken_digits.evaluation.robustness import benchmark_model, format_table

    out = args.out or args.checkpoint.parent / "robustness"
    result = benchmark_model(
        args.checkpoint,
        out,
        split=SplitConfig(name=args.split, speaker=args.speaker),
        data=args.data,
        download=not args.no_download,
        seed=args.seed,
        conditions=args.conditions,
        limit=args.limit,
        noise_dir=args.noise_dir,
        device=args.device,
        say=lambda line: print(line, file=sys.stderr),
    )
    print(json.dumps(result, indent=2) if args.json else format_table(result))
    print(f"wrote {out}/robustness.json, robustness.csv and robustness.png", file=sys.stderr)
    return 0
