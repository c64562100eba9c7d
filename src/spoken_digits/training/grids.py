"""Study grids: axes of named config overrides crossed with seeds, the built-in grids, and TOML grids.

A grid is data: a name, a base preset, axes that map level names to config overrides (dotted keys
such as "features.scale" or "model.params.hidden"; the key "preset" swaps the base preset), and
seeds. Built-in grids answer the seed's questions and regenerate the README's tables; a TOML file
with the same keys defines a new one. Every run is named by a hash of its full config.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from spoken_digits.config import RunConfig, preset
from spoken_digits.errors import ParameterError
from spoken_digits.models.nets import MODELS, create_model


@dataclass(frozen=True)
class Run:
    """One training run of a study: its cell's levels, seed, full config and folder name."""

    cell: str  # "axis=level,axis=level"
    levels: dict[str, str]
    seed: int
    config: RunConfig

    @property
    def folder(self) -> str:
        """CELL-sSEED-HASH under STUDY/runs: readable, and keyed by the config so a changed one never reuses it."""
        return f"{self.legacy_folder}-{config_hash(self.config)[:10]}"

    @property
    def legacy_folder(self) -> str:
        """CELL-sSEED: the folder of studies written before runs were keyed by their config."""
        return re.sub(r"[^A-Za-z0-9.=,_-]+", "_", self.cell) + f"-s{self.seed}"


def config_hash(config: RunConfig) -> str:
    """sha256 of the config's canonical JSON: equal exactly when the configs are."""
    text = json.dumps(config.to_dict(), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


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
        preset="clean",
        description="Q1: the seed's (time=16, features=80) transpose against the axes swapped (80 steps of 16) "
        "and a reshape instead of a transpose; seed_lstm, official split, raw power and log-mel",
        axes={
            "features": {"raw power (seed)": {"preset": "seed"}, "log-mel (clean)": {}},
            "layout": {
                "time-major": {},
                "swapped": {"features.layout": "swapped"},
                "reshaped": {"features.layout": "reshaped"},
            },
        },
    ),
    "features": Grid(
        "features",
        preset="clean",
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
        preset="clean",
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
        preset="clean",
        description="Q2: every registered model on the official split (test speakers also in training)",
        axes={"model": {name: {"model.name": name} for name in MODELS}},
    ),
    "speakers": Grid(
        "speakers",
        preset="clean",
        description="Q2 for new voices: every registered model, leave one speaker out (six folds per run)",
        base={"split.name": "loso"},
        axes={"model": {name: {"model.name": name} for name in MODELS}},
        seeds=_seeds(3),
    ),
    "presets": Grid(
        "presets",
        preset="clean",
        description="README: the seed preset, the clean preset and its variants, every model; official split",
        axes={
            "run": {
                "seed preset": {"preset": "seed"},
                "clean, no silence trim": {"audio.trim_db": None},
                "clean": {},
                "clean, whole clips": {"audio.duration": None},
                **{name: {"model.name": name} for name in ("lstm", "gru", "bilstm", "cnn", "crnn")},
            }
        },
        seeds=_seeds(3),
    ),
    "presets-loso": Grid(
        "presets-loso",
        description="README: the presets on leave-one-speaker-out (voices the model never heard)",
        base={"split.name": "loso"},
        axes={
            "preset": {
                "seed": {"preset": "seed"},
                "clean": {"preset": "clean"},
                "robust": {"preset": "robust"},
            }  # the default (speech encoder) on loso: the "encoder" grid
        },
        seeds=_seeds(3),
    ),
    "encoder": Grid(
        "encoder",
        description="Issue 22: the from-scratch recipe against the default (the same recipe on the pretrained "
        "speech encoder, frozen, four augmented views of each clip made once), leave one speaker out",
        base={"split.name": "loso"},
        axes={"front end": {"from scratch": {"preset": "scratch"}, "speech encoder (default)": {}}},
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
                "0.5 s crop, not whole clips": {"audio.duration": 0.5},
                "robust, one model": {},
                "no speed perturbation": {"augment.speed": 0.0},
                "no deltas": {"features.deltas": False},
                "40 log-mel bands, not 13 cepstra": {"features.n_mfcc": 0},
                "band standardisation, not CMVN": {"features.cmvn": False, "features.standardize": True},
                "seed_lstm, not conv1d": {"model.name": "seed_lstm"},
                "robust: an ensemble of three": {"model.params.members": 3},
                "clean preset (reference)": {"preset": "clean"},
            }
        },
        seeds=_seeds(1),
    ),
    "optim": Grid(
        "optim",
        preset="clean",
        description="Learning rates 1e-4..1e-1 for seed_lstm on raw power and on log-mel",
        axes={
            "features": {"raw power (seed)": {"preset": "seed"}, "log-mel (clean)": {}},
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
