"""Studies: grids of training runs (axes of config overrides x seeds), run resumably, then aggregated.

A grid is data: a name, a base preset, axes that map level names to config overrides (dotted keys
such as "features.scale" or "model.params.hidden"; the key "preset" swaps the base preset), and
seeds. Built-in grids answer the seed's questions; a TOML file with the same keys defines a new one.
Each run is an ordinary `train_run` in STUDY/runs/CELL-sSEED/, so a finished run is skipped on a
re-run and an interrupted one resumes.
"""

from __future__ import annotations

import concurrent.futures
import csv
import itertools
import json
import math
import os
import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from spoken_digits.atomic import write_json, write_text
from spoken_digits.config import RunConfig, preset
from spoken_digits.errors import ParameterError, SpokenDigitsError
from spoken_digits.models import MODELS, create_model

# Two-sided 95% Student t quantiles for 1..30 degrees of freedom (beyond: the normal 1.96).
T95 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145,
       2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045,
       2.042)  # fmt: skip


@dataclass(frozen=True)
class Run:
    """One training run of a study: its cell's levels, seed, full config and folder name."""

    cell: str  # "axis=level,axis=level"
    levels: dict[str, str]
    seed: int
    config: RunConfig

    @property
    def folder(self) -> str:
        return re.sub(r"[^A-Za-z0-9.=,_-]+", "_", self.cell) + f"-s{self.seed}"


@dataclass(frozen=True)
class Grid:
    """Axes of named config overrides, crossed, each cell trained once per seed."""

    name: str
    preset: str = "default"
    axes: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    description: str = ""
    base: dict[str, Any] = field(default_factory=dict)  # overrides for every cell

    def runs(self) -> list[Run]:
        """Every (cell, seed), configs validated now so a bad grid fails before any training."""
        names = list(self.axes)
        out = []
        for combo in itertools.product(*(self.axes[a].items() for a in names)):
            levels = {axis: level for axis, (level, _) in zip(names, combo, strict=True)}
            overrides: dict[str, Any] = dict(self.base)
            for _, extra in combo:
                overrides |= extra
            cell = ",".join(f"{a}={lv}" for a, lv in levels.items()) or "all"
            for seed in self.seeds:
                out.append(Run(cell, levels, seed, configure(self.preset, overrides | {"train.seed": seed})))
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "preset": self.preset,
            "description": self.description,
            "base": self.base,
            "axes": self.axes,
            "seeds": list(self.seeds),
        }


def configure(base: str, overrides: dict[str, Any]) -> RunConfig:
    """A preset with dotted-key overrides applied; unknown keys and bad values are ParameterErrors."""
    overrides = dict(overrides)
    data = preset(overrides.pop("preset", base)).to_dict()
    for key, value in overrides.items():
        *path, leaf = key.split(".")
        node = data
        for part in path:
            if not isinstance(node.get(part), dict):
                raise ParameterError(f"unknown config key {key!r}")
            node = node[part]
        if leaf not in node and not (path[-1:] == ["params"]):
            raise ParameterError(f"unknown config key {key!r}; {'.'.join(path) or 'top level'} has {sorted(node)}")
        node[leaf] = value
    return RunConfig.from_dict(data)


def _seeds(n: int) -> tuple[int, ...]:
    return tuple(range(n))


BUILTIN: dict[str, Grid] = {
    "layout": Grid(
        "layout",
        description="Q1: the seed's (time=16, features=80) transpose against the axes swapped (80 steps of 16) "
        "and a reshape instead of a transpose; seed_lstm, official split, raw power and log-mel",
        axes={
            "features": {"raw power (seed)": {"preset": "seed"}, "log-mel (default)": {}},
            "layout": {
                "time-major": {},
                "swapped": {"features.layout": "swapped"},
                "reshaped": {"features.layout": "reshaped"},
            },
        },
    ),
    "features": Grid(
        "features",
        description="Feature scaling and length: raw power, dB, dB standardised, MFCC; 0.5 s crop or full length",
        axes={
            "scale": {
                "power": {"features.scale": "power", "features.standardize": False},
                "dB": {"features.standardize": False},
                "dB+std": {},
                "MFCC-20+std": {"features.n_mfcc": 20},
            },
            "length": {"0.5 s": {}, "full": {"audio.duration": None}},
        },
    ),
    "padding": Grid(
        "padding",
        description="Zero padding at the end or the start of the 0.5 s window, read by seed_lstm's last state "
        "(no silence trimming, so short clips are mostly padding)",
        base={"audio.trim_db": None},
        axes={
            "scale": {"power": {"features.scale": "power", "features.standardize": False}, "dB+std": {}},
            "pad": {"end": {}, "start": {"audio.pad": "start"}},
        },
    ),
    "models": Grid(
        "models",
        description="Q2: every registered model on the official split (test speakers also in training)",
        axes={"model": {name: {"model.name": name} for name in MODELS}},
    ),
    "speakers": Grid(
        "speakers",
        description="Q2 for new voices: every registered model, leave one speaker out (six folds per run)",
        base={"split.name": "loso"},
        axes={"model": {name: {"model.name": name} for name in MODELS}},
        seeds=_seeds(3),
    ),
    "ablation": Grid(
        "ablation",
        preset="robust",
        description="Issue 8: the robust preset's levers on leave-one-speaker-out, one changed at a time "
        "(single models, so each lever is measured without the ensemble)",
        base={"split.name": "loso", "model.params.members": 1},
        axes={
            "variant": {
                "robust, one model": {},
                "no speed perturbation": {"augment.speed": 0.0},
                "no deltas": {"features.deltas": False},
                "40 log-mel bands, not 13 cepstra": {"features.n_mfcc": 0},
                "band standardisation, not CMVN": {"features.cmvn": False, "features.standardize": True},
                "0.5 s crop, not whole clips": {"audio.duration": 0.5},
                "seed_lstm, not conv1d": {"model.name": "seed_lstm"},
                "robust: an ensemble of three": {"model.params.members": 3},
                "default preset (reference)": {"preset": "default"},
            }
        },
        seeds=_seeds(1),
    ),
    "optim": Grid(
        "optim",
        description="Learning rates 1e-4..1e-1 for seed_lstm on raw power and on log-mel",
        axes={
            "features": {"raw power (seed)": {"preset": "seed"}, "log-mel (default)": {}},
            "lr": {f"{lr:g}": {"train.lr": lr} for lr in (1e-4, 1e-3, 1e-2, 1e-1)},
        },
        seeds=_seeds(3),
    ),
}


def load_grid(name_or_path: str) -> Grid:
    """A built-in grid by name, or a grid from a TOML file (keys: name, preset, axes, seeds, ...)."""
    if name_or_path in BUILTIN:
        return BUILTIN[name_or_path]
    path = Path(name_or_path)
    if not path.is_file():
        raise ParameterError(f"no built-in grid or file {name_or_path!r}; built-in grids: {', '.join(BUILTIN)}")
    try:
        data = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ParameterError(f"{path}: not valid TOML ({exc})") from None
    return grid_from_dict(data, default_name=path.stem)


def grid_from_dict(data: dict[str, Any], *, default_name: str = "grid") -> Grid:
    """Validate a grid's plain-data form (as in TOML or grid.json)."""
    allowed = {"name", "preset", "axes", "seeds", "description", "base"}
    if unknown := set(data) - allowed:
        raise ParameterError(f"unknown grid key(s) {sorted(unknown)}; allowed: {sorted(allowed)}")
    seeds = data.get("seeds", 5)
    seeds = _seeds(seeds) if isinstance(seeds, int) else tuple(int(s) for s in seeds)
    axes = data.get("axes", {})
    if not isinstance(axes, dict) or not all(isinstance(levels, dict) and levels for levels in axes.values()):
        raise ParameterError("axes must map each axis name to a table of level = {overrides}")
    grid = Grid(
        str(data.get("name", default_name)),
        str(data.get("preset", "default")),
        axes,
        seeds,
        str(data.get("description", "")),
        dict(data.get("base", {})),
    )
    validate(grid)
    return grid


def validate(grid: Grid) -> list[Run]:
    """The grid's runs, after building each distinct model once: bad names or parameters fail now."""
    runs = grid.runs()
    seen = set()
    for run in runs:
        model = run.config.model
        key = (model.name, json.dumps(model.params, sort_keys=True), run.config.n_features)
        if key not in seen:
            seen.add(key)
            create_model(model.name, n_features=run.config.n_features, n_classes=10, **model.params)
    return runs


def with_overrides(grid: Grid, overrides: dict[str, Any], seeds: int | None = None) -> Grid:
    """The grid with extra overrides for every cell (e.g. fewer epochs) and optionally n seeds."""
    return Grid(
        grid.name, grid.preset, grid.axes, grid.seeds if seeds is None else _seeds(seeds), grid.description,
        grid.base | overrides,
    )  # fmt: skip


def run_study(
    grid: Grid,
    out: str | os.PathLike[str],
    *,
    data: str | os.PathLike[str] | None = None,
    download: bool = True,
    workers: int = 1,
    say: Callable[[str], None] = lambda _: None,
) -> dict[str, Any]:
    """Run every unfinished run of `grid` into `out` (in `workers` processes), then aggregate.

    Finished runs (with metrics.json) are skipped and interrupted ones resumed, so re-running a
    study after a crash or with more seeds only trains what is missing.
    """
    out = Path(out)
    runs = validate(grid)
    saved = out / "grid.json"
    if saved.is_file() and json.loads(saved.read_text())["name"] != grid.name:
        raise ParameterError(f"{out} holds study {json.loads(saved.read_text())['name']!r}; choose another --out")
    write_json(saved, grid.to_dict())
    todo = [r for r in runs if not (out / "runs" / r.folder / "metrics.json").is_file()]
    say(f"study {grid.name}: {len(runs)} runs, {len(runs) - len(todo)} finished before, {len(todo)} to train")
    failures: list[str] = []
    if workers <= 1:
        for i, run in enumerate(todo, 1):
            failures += _report(
                run, _execute(run.config.to_dict(), out / "runs" / run.folder, data, download), i, len(todo), say
            )
    else:
        threads = max(1, (os.cpu_count() or 1) // workers)
        with concurrent.futures.ProcessPoolExecutor(
            workers, initializer=torch.set_num_threads, initargs=(threads,)
        ) as pool:
            futures = {
                pool.submit(_execute, r.config.to_dict(), out / "runs" / r.folder, data, download): r for r in todo
            }
            for i, future in enumerate(concurrent.futures.as_completed(futures), 1):
                failures += _report(futures[future], future.result(), i, len(todo), say)
    summary = aggregate(out)
    if failures:
        raise SpokenDigitsError(f"{len(failures)} run(s) failed (the rest are saved): " + "; ".join(failures))
    return summary


def _report(run: Run, result: str | float, i: int, n: int, say: Callable[[str], None]) -> list[str]:
    if isinstance(result, str):
        say(f"[{i}/{n}] {run.folder}: FAILED: {result}")
        return [f"{run.folder}: {result}"]
    say(f"[{i}/{n}] {run.folder}: {result:.4f}")
    return []


def _execute(config: dict[str, Any], folder: Path, data: Any, download: bool) -> str | float:
    """Train one run (resuming if it was interrupted); its test accuracy, or an error message."""
    from spoken_digits.experiment import resume_run, train_run
    from spoken_digits.runstate import RunState

    try:
        if RunState(folder).exists():
            metrics = resume_run(folder, data=data, download=download)
        else:
            metrics = train_run(RunConfig.from_dict(config), folder, data=data, download=download)
    except SpokenDigitsError as exc:
        return str(exc)
    score = metrics.get("test_accuracy")
    return float("nan") if score is None else float(score)


def confidence_interval(values: list[float]) -> tuple[float, float, float]:
    """Mean, sample standard deviation and the 95% t-interval half-width of `values`."""
    n = len(values)
    mean = float(np.mean(values))
    if n < 2:
        return mean, 0.0, float("nan")
    sd = float(np.std(values, ddof=1))
    t = T95[n - 2] if n - 1 <= len(T95) else 1.96
    return mean, sd, t * sd / math.sqrt(n)


def aggregate(out: str | os.PathLike[str]) -> dict[str, Any]:
    """Per cell: mean, sd and 95% CI of test accuracy over seeds, plus per-speaker means, time per
    epoch and parameters; written to OUT/summary.json and OUT/summary.csv and returned."""
    out = Path(out)
    grid = grid_from_dict(json.loads((out / "grid.json").read_text()))
    cells: dict[str, dict[str, Any]] = {}
    for run in grid.runs():
        path = out / "runs" / run.folder / "metrics.json"
        if not path.is_file():
            continue
        metrics = json.loads(path.read_text())
        cell = cells.setdefault(run.cell, {"levels": run.levels, "runs": []})
        cell["runs"].append({"seed": run.seed, "folder": run.folder, **_essentials(metrics, path.parent / "log.csv")})
    rows = []
    for name, cell in cells.items():
        accuracies = [r["test_accuracy"] for r in cell["runs"]]
        mean, sd, half = confidence_interval(accuracies)
        speakers = sorted({s for r in cell["runs"] for s in r["per_speaker"]})
        rows.append(
            {
                "cell": name,
                "label": ", ".join(cell["levels"].values()) or name,
                **cell["levels"],
                "n_seeds": len(accuracies),
                "mean": mean,
                "sd": sd,
                "ci95": half,
                "min": float(np.min(accuracies)),
                "max": float(np.max(accuracies)),
                "seconds_per_epoch": float(np.mean([r["seconds_per_epoch"] for r in cell["runs"]])),
                "seconds": float(np.mean([r["seconds"] for r in cell["runs"]])),
                "n_parameters": cell["runs"][0]["n_parameters"],
                "per_speaker": {s: float(np.mean([r["per_speaker"][s] for r in cell["runs"]])) for s in speakers},
                "runs": cell["runs"],
            }
        )
    summary = {"grid": grid.to_dict(), "axes": list(grid.axes), "cells": rows}
    write_json(out / "summary.json", summary)
    write_text(out / "summary.csv", _csv(rows, list(grid.axes)))
    return summary


def _essentials(metrics: dict[str, Any], log: Path) -> dict[str, Any]:
    """The numbers a study keeps of one run; time per epoch is the training loop's own, from log.csv."""
    with log.open(newline="") as handle:
        epoch_seconds = [float(row["seconds"]) for row in csv.DictReader(handle)]
    return {
        "test_accuracy": float(metrics["test_accuracy"]),
        "per_speaker": metrics.get("per_speaker", {}),
        "folds": metrics.get("folds", {}),
        "seconds": float(metrics.get("seconds", 0.0)),
        "seconds_per_epoch": float(np.mean(epoch_seconds)) if epoch_seconds else float("nan"),
        "n_parameters": int(metrics.get("n_parameters", 0)),
    }


def _csv(rows: list[dict[str, Any]], axes: list[str]) -> str:
    columns = [*axes, "n_seeds", "mean", "sd", "ci95", "min", "max", "seconds_per_epoch", "n_parameters"]
    lines = [",".join(columns)]
    for row in rows:
        values = [row.get(c, "") for c in columns]
        lines.append(
            ",".join(f"{v:.6g}" if isinstance(v, float) else f'"{v}"' if "," in str(v) else str(v) for v in values)
        )
    return "\n".join(lines) + "\n"
