"""Studies: grids of training runs (see `grids`) run resumably, then aggregated over seeds.

Each run is an ordinary `train_run` in STUDY/runs/CELL-sSEED-HASH/, HASH naming its full config, so
a finished run is reused on a re-run only when nothing that produced it changed, an interrupted one
resumes, and runs of other overrides (say `--set train.epochs=5`) live beside it without mixing in.
"""

from __future__ import annotations

import concurrent.futures
import csv
import json
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from spoken_digits.atomic import write_json, write_text
from spoken_digits.config import RunConfig
from spoken_digits.data import cache
from spoken_digits.data.clips import Dataset
from spoken_digits.errors import ParameterError, SpokenDigitsError
from spoken_digits.training.grids import Grid, Run, grid_from_dict, validate

# Two-sided 95% Student t quantiles for 1..30 degrees of freedom (beyond: the normal 1.96).
T95 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145,
       2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045,
       2.042)  # fmt: skip


def run_study(
    grid: Grid,
    out: str | os.PathLike[str],
    *,
    data: str | os.PathLike[str] | Dataset | None = None,
    download: bool = True,
    workers: int = 1,
    skip_bad: bool = False,
    say: Callable[[str], None] = lambda _: None,
) -> dict[str, Any]:
    """Run every unfinished run of `grid` into `out` (in `workers` processes), then aggregate.

    A run with the same full config that finished before (metrics.json) is reused and an
    interrupted one resumed, so re-running a study after a crash or with more seeds only trains
    what is missing; changed overrides train new runs, and the summary holds only this grid's.
    """
    out = Path(out)
    runs = validate(grid)
    saved = out / "grid.json"
    if saved.is_file() and json.loads(saved.read_text())["name"] != grid.name:
        raise ParameterError(f"{out} holds study {json.loads(saved.read_text())['name']!r}; choose another --out")
    placed = [(run, run_folder(out, run)) for run in runs]
    if clashes := [f"{folder} {why}" for run, folder in placed if (why := _clash(folder, run.config))]:
        raise ParameterError(
            f"{len(clashes)} run folder(s) hold another config than this study's: {'; '.join(clashes[:3])}; "
            "delete those folders to train them again, or choose another --out"
        )
    write_json(saved, grid.to_dict())
    todo = [(run, folder) for run, folder in placed if not (folder / "metrics.json").is_file()]
    say(f"study {grid.name}: {len(runs)} runs, {len(runs) - len(todo)} finished before, {len(todo)} to train")
    failures: list[str] = []
    if workers <= 1:
        for i, (run, folder) in enumerate(todo, 1):
            result = _execute(run.config.to_dict(), folder, data, download, None, skip_bad)
            failures += _report(folder.name, result, i, len(todo), say)
    else:
        threads = max(1, (os.cpu_count() or 1) // workers)
        if isinstance(data, Dataset):  # the front end once, here, rather than in every worker at the same time
            paths = [c.path for c in data.clips]
            for audio in {r.config.audio for r, _ in todo}:
                cache.prepare(paths, audio, skip_bad=True, progress=False)
        with concurrent.futures.ProcessPoolExecutor(
            workers, initializer=torch.set_num_threads, initargs=(threads,)
        ) as pool:
            args = (data, download, 1, skip_bad)
            futures = {pool.submit(_execute, r.config.to_dict(), f, *args): f.name for r, f in todo}
            for i, future in enumerate(concurrent.futures.as_completed(futures), 1):
                failures += _report(futures[future], future.result(), i, len(todo), say)
    summary = aggregate(out)
    if failures:
        raise SpokenDigitsError(f"{len(failures)} run(s) failed (the rest are saved): " + "; ".join(failures))
    return summary


def run_folder(out: str | os.PathLike[str], run: Run) -> Path:
    """Where `run` lives in study `out`: its config-keyed folder, or the CELL-sSEED folder of an
    older study when that one holds exactly this config (so finished work is not trained again)."""
    keyed, legacy = Path(out) / "runs" / run.folder, Path(out) / "runs" / run.legacy_folder
    if not keyed.exists() and legacy.is_dir() and _clash(legacy, run.config) == "":
        return legacy
    return keyed


def _clash(folder: Path, config: RunConfig) -> str | None:
    """Why `folder` cannot hold a run of `config` (what its config.json says otherwise); "" when it
    holds exactly `config`, None when it holds no config yet."""
    path = folder / "config.json"
    if not path.is_file():
        return None
    try:
        saved = RunConfig.from_dict(json.loads(path.read_text(encoding="utf-8"))).to_dict()
    except (ValueError, OSError) as exc:  # bad JSON, or a config this version cannot read
        return f"has an unreadable config.json ({exc})"
    differences = _differences(saved, config.to_dict())
    return f"was trained with {', '.join(differences)}" if differences else ""


def _differences(saved: Any, wanted: Any, key: str = "") -> list[str]:
    """Dotted keys whose values differ, each as `key=saved (study: wanted)`."""
    if isinstance(saved, dict) and isinstance(wanted, dict):
        keys = sorted(set(saved) | set(wanted))
        return [d for k in keys for d in _differences(saved.get(k), wanted.get(k), f"{key}.{k}".lstrip("."))]
    return [] if saved == wanted else [f"{key}={json.dumps(saved)} (study: {json.dumps(wanted)})"]


def _report(folder: str, result: str | float, i: int, n: int, say: Callable[[str], None]) -> list[str]:
    if isinstance(result, str):
        say(f"[{i}/{n}] {folder}: FAILED: {result}")
        return [f"{folder}: {result}"]
    say(f"[{i}/{n}] {folder}: {result:.4f}")
    return []


def _execute(
    config: dict[str, Any], folder: Path, data: Any, download: bool, prepare: int | None, skip_bad: bool
) -> str | float:
    """Train one run (resuming if it was interrupted); its test accuracy, or an error message. `prepare`:
    processes for the front end (1 inside a pool of runs, which already shares the cores)."""
    from spoken_digits.training.experiment import resume_run, train_run
    from spoken_digits.training.runstate import RunState

    try:
        if RunState(folder).exists():
            metrics = resume_run(folder, data=data, download=download, workers=prepare, skip_bad=skip_bad)
        else:
            metrics = train_run(
                RunConfig.from_dict(config), folder, data=data, download=download, workers=prepare, skip_bad=skip_bad
            )
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
    epoch and parameters; written to OUT/summary.json and OUT/summary.csv and returned.

    Only the runs of the grid in OUT/grid.json, with exactly its configs, are counted.
    """
    out = Path(out)
    grid = grid_from_dict(json.loads((out / "grid.json").read_text()))
    cells: dict[str, dict[str, Any]] = {}
    for run in grid.runs():
        folder = run_folder(out, run)
        path = folder / "metrics.json"
        if not path.is_file() or _clash(folder, run.config):  # unfinished, or another config's numbers
            continue
        metrics = json.loads(path.read_text())
        cell = cells.setdefault(run.cell, {"levels": run.levels, "runs": []})
        cell["runs"].append({"seed": run.seed, "folder": folder.name, **_essentials(metrics, folder / "log.csv")})
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
                "epochs_run": [min(r["epochs_run"] for r in cell["runs"]), max(r["epochs_run"] for r in cell["runs"])],
                "per_speaker": {s: float(np.mean([r["per_speaker"][s] for r in cell["runs"]])) for s in speakers},
                "runs": cell["runs"],
            }
        )
    machines = [m for m in {json.dumps(r.get("machine"), sort_keys=True) for c in cells.values() for r in c["runs"]}]
    summary = {
        "grid": grid.to_dict(),
        "axes": list(grid.axes),
        "machines": [json.loads(m) for m in sorted(machines)],  # where the numbers were measured
        "cells": rows,
    }
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
        "epochs_run": int(metrics.get("epochs_run", len(epoch_seconds))),
        "machine": metrics.get("machine"),  # absent in runs made before it was recorded
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
