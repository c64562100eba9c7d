"""The robustness benchmark: a saved model scored on a split's test clips under noise, reverberation,
band-limiting, level and placement, every clip corrupted reproducibly (the same clips for every model).

Each (seed, condition, clip file) seeds its own generator, so a clip's corruption does not depend on
which other conditions or clips are run. Babble and reverberation each come from two independent
generators, so that a model trained with one recipe is also met by another: `babble` is built from
other speakers' training clips, `babble2` from word-free synthetic talkers (`talkers.synthetic_babble`,
no recording at all); `reverb` convolves with a statistical response (`corrupt.synthetic_rir`),
`reverb2` with an image-source room plus a feedback delay network (`corrupt.fdn_rir`).
"""

from __future__ import annotations

import csv
import io
import os
import zlib
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from spoken_digits.atomic import atomic_path, write_json, write_text
from spoken_digits.config import SplitConfig
from spoken_digits.data import fsdd
from spoken_digits.data.splits import make_folds
from spoken_digits.errors import AudioError, ParameterError
from spoken_digits.evaluation.evaluate import warn_on_overlap
from spoken_digits.frontend import audio, corrupt, talkers
from spoken_digits.recognize.predict import BasePredictor

SNRS = (20.0, 10.0, 5.0, 0.0)  # dB
LEAD = 0.25  # s of the same noise before and after the word
T60S = (0.3, 0.6, 0.9)  # s
FLOOR_DBFS = -60.0  # RMS of the white noise floor under the padded and windowed clips
TALKERS, WORDS = 6, 3  # babble: six talkers, each saying three words in a row


@dataclass(frozen=True)
class Condition:
    """One way of corrupting a clip: a name for tables, its kind, and the parameters that define it."""

    name: str
    kind: str  # clean, white, pink, babble, babble2, noisedir, reverb, reverb2, telephone, level, pad, window
    params: Mapping[str, float] = field(default_factory=dict)


def standard_conditions(*, noise_dir: bool = False) -> list[Condition]:
    """Every condition of the benchmark, in table order; `noise_dir` adds the user's noise at each SNR."""
    kinds = ["white", "pink", "babble", "babble2"] + (["noisedir"] if noise_dir else [])
    return [
        Condition("clean", "clean"),
        *(Condition(f"{k}-{s:g}db", k, {"snr_db": s, "lead_s": LEAD}) for k in kinds for s in SNRS),
        *(
            Condition(f"{k}-{t:g}s", k, {"t60": t, "drr_db": round(corrupt.sabine_drr_db(t), 2)})
            for k in ("reverb", "reverb2")
            for t in T60S
        ),
        Condition(
            "telephone", "telephone", {"low_hz": corrupt.TELEPHONE_BAND[0], "high_hz": corrupt.TELEPHONE_BAND[1]}
        ),
        Condition("level-30db", "level", {"gain_db": -30.0}),
        Condition("pad-3s", "pad", {"seconds": 3.0, "floor_dbfs": FLOOR_DBFS}),
        Condition("window-1s", "window", {"seconds": 1.0, "floor_dbfs": FLOOR_DBFS}),
    ]


def select_conditions(names: Sequence[str] | None, *, noise_dir: bool = False) -> list[Condition]:
    """The conditions named (a condition's name, or a kind for all of its SNRs/T60s), in table order; all if None."""
    every = standard_conditions(noise_dir=True)
    if names is None:
        return [c for c in every if noise_dir or c.kind != "noisedir"]
    valid = [c.name for c in every] + sorted({c.kind for c in every})
    unknown = [n for n in names if n not in valid]
    if unknown:
        raise ParameterError(f"unknown condition {', '.join(map(repr, unknown))}; choose from: {', '.join(valid)}")
    chosen = [c for c in every if c.name in names or c.kind in names]
    if not noise_dir and any(c.kind == "noisedir" for c in chosen):
        raise ParameterError("the noisedir conditions need --noise-dir DIR (a folder of your own noise recordings)")
    return chosen


def clip_rng(seed: int, condition: str, clip: str) -> np.random.Generator:
    """The generator for one clip under one condition: fixed by (seed, condition name, clip file name)."""
    return np.random.default_rng([seed, zlib.crc32(condition.encode()), zlib.crc32(clip.encode())])


def babble_talkers(
    clip: fsdd.Clip, pool: Sequence[fsdd.Clip], rng: np.random.Generator, *, talkers: int = TALKERS, words: int = WORDS
) -> list[list[fsdd.Clip]]:
    """For each of `talkers` talkers, `words` clips of one speaker other than `clip`'s, drawn from `pool`
    (the split's training clips): the speech babble around `clip` is made of."""
    by_speaker: dict[str, list[fsdd.Clip]] = {}
    for c in pool:
        if c.speaker != clip.speaker and c.path != clip.path:
            by_speaker.setdefault(c.speaker, []).append(c)
    if not by_speaker:
        raise ParameterError(f"no training clips of a speaker other than {clip.speaker!r} to build babble from")
    speakers = sorted(by_speaker)
    chosen = []
    for _ in range(talkers):
        own = by_speaker[speakers[int(rng.integers(len(speakers)))]]
        chosen.append([own[int(i)] for i in rng.choice(len(own), size=min(words, len(own)), replace=False)])
    return chosen


class Corrupter:
    """Applies conditions to clips at rate `sr`; reads (and keeps) the training clips babble is made of."""

    def __init__(self, sr: int, seed: int, *, noise_files: Sequence[np.ndarray] = ()) -> None:
        self.sr, self.seed, self.noise_files = sr, seed, list(noise_files)
        self._cache: dict[Path, np.ndarray] = {}

    def _read(self, clip: fsdd.Clip) -> np.ndarray:
        if clip.path not in self._cache:
            self._cache[clip.path] = audio.read_audio(clip.path, self.sr)
        return self._cache[clip.path]

    def __call__(self, condition: Condition, clip: fsdd.Clip, y: np.ndarray, pool: Sequence[fsdd.Clip]) -> np.ndarray:
        """`y` (n,), the waveform of `clip`, under `condition`; `pool`: the split's training clips (for babble)."""
        rng, sr, p = clip_rng(self.seed, condition.name, clip.path.name), self.sr, condition.params
        if condition.kind in ("white", "pink", "babble", "babble2", "noisedir"):
            lead = round(p["lead_s"] * sr)
            size = len(y) + 2 * lead
            if condition.kind == "babble":
                streams = [np.concatenate([self._read(c) for c in t]) for t in babble_talkers(clip, pool, rng)]
                noise = corrupt.babble(streams, size, rng)
            elif condition.kind == "babble2":
                noise = talkers.synthetic_babble(size, sr, rng)
            elif condition.kind == "noisedir":
                noise = corrupt.fit_length(self.noise_files[int(rng.integers(len(self.noise_files)))], size, rng)
            else:
                noise = corrupt.noise(condition.kind, size, rng)
            return corrupt.mix_at_snr(y, noise, p["snr_db"], offset=lead)
        if condition.kind == "reverb":
            return corrupt.reverberate(y, sr, p["t60"], rng, drr_db=p["drr_db"])
        if condition.kind == "reverb2":
            return corrupt.convolve(y, corrupt.fdn_rir(sr, p["t60"], rng, drr_db=p["drr_db"]))
        if condition.kind == "telephone":
            return corrupt.band_limit(y, sr, low=p["low_hz"], high=p["high_hz"])
        if condition.kind == "level":
            return corrupt.gain_db(y, p["gain_db"])
        if condition.kind in ("pad", "window"):
            placed = corrupt.place_in_window(y, sr, p["seconds"], rng)
            floor = corrupt.noise("white", len(placed), rng) * np.float32(10 ** (p["floor_dbfs"] / 20))
            return placed + floor
        if condition.kind == "clean":
            return y
        raise ParameterError(f"unknown condition kind {condition.kind!r} in condition {condition.name!r}")


def stratified_subset(clips: Sequence[fsdd.Clip], limit: int, *, seed: int) -> list[int]:
    """Indices (sorted) of `limit` clips spread evenly over digits, and within a digit over speakers (seeded)."""
    if limit < 1:
        raise ParameterError(f"--limit must be at least 1, got {limit}")
    order = [int(i) for i in np.random.default_rng(seed).permutation(len(clips))]
    position = {i: p for p, i in enumerate(order)}

    def ranks(indices: Sequence[int], key: Callable[[fsdd.Clip], object]) -> dict[int, int]:
        """Each clip's rank among the clips sharing its key, in the order given."""
        counts: Counter[object] = Counter()
        rank = {}
        for i in indices:
            k = key(clips[i])
            rank[i], counts[k] = counts[k], counts[k] + 1
        return rank

    in_pair = ranks(order, lambda c: (c.digit, c.speaker))
    speakers_interleaved = sorted(order, key=lambda i: (in_pair[i], position[i]))
    in_digit = ranks(speakers_interleaved, lambda c: c.digit)
    return sorted(sorted(order, key=lambda i: (in_digit[i], position[i]))[:limit])


def predicted_labels(predictor: BasePredictor, waves: Sequence[np.ndarray]) -> tuple[list[str | None], int]:
    """The model's label for each waveform, None where it refuses the clip (too short, no speech); and the refusals."""
    labels: list[str | None] = []
    for result in predictor.each_probabilities(waves):
        labels.append(None if isinstance(result, AudioError) else predictor.classes[int(np.argmax(result))])
    return labels, labels.count(None)


def tested_clips(
    predictor: BasePredictor, clips: Sequence[fsdd.Clip], split: SplitConfig, *, seed: int, limit: int | None
) -> list[tuple[fsdd.Clip, list[fsdd.Clip]]]:
    """The test clips of `split` (or a seeded, digit-balanced `limit` of them), each with its fold's training
    clips (what babble is made of); warns when the model was trained on some of them."""
    tested: list[tuple[fsdd.Clip, list[fsdd.Clip]]] = []
    folds = make_folds(fsdd.as_clips(clips), split, seed=predictor.config.train.seed)
    for fold in folds:
        pool = [clips[i] for i in fold.train]
        tested += [(clips[i], pool) for i in fold.test]
    if not tested:
        raise ParameterError("the 'all' split has no test clips; choose official, random or loso")
    tests = np.concatenate([f.test for f in folds])
    warn_on_overlap(predictor.config, predictor.info.get("fold"), fsdd.as_clips(clips), tests)
    if limit is not None and limit < len(tested):
        tested = [tested[i] for i in stratified_subset([c for c, _ in tested], limit, seed=seed)]
    return tested


def run_benchmark(
    predictor: BasePredictor,
    clips: Sequence[fsdd.Clip],
    split: SplitConfig,
    *,
    seed: int = 0,
    conditions: Sequence[Condition] | None = None,
    limit: int | None = None,
    noise_files: Sequence[np.ndarray] = (),
    say: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Accuracy of `predictor` on the test clips of `split` (all folds pooled) under each condition.

    Refused clips count as wrong. Returns {split, seed, limit, sr, n_clips, conditions: [{condition, kind,
    accuracy, correct, n, refused, params}]}.
    """
    conditions = select_conditions(None, noise_dir=bool(noise_files)) if conditions is None else conditions
    if any(c.kind == "noisedir" for c in conditions) and not noise_files:
        raise ParameterError("the noisedir conditions need noise files (--noise-dir)")
    sr = predictor.config.audio.sr
    tested = tested_clips(predictor, clips, split, seed=seed, limit=limit)
    waves = [audio.read_audio(c.path, sr, max_duration=predictor.config.audio.max_duration) for c, _ in tested]
    corrupter = Corrupter(sr, seed, noise_files=noise_files)
    rows = []
    for condition in conditions:
        corrupted = [corrupter(condition, c, y, pool) for (c, pool), y in zip(tested, waves, strict=True)]
        labels, refused = predicted_labels(predictor, corrupted)
        correct = sum(label == str(c.digit) for label, (c, _) in zip(labels, tested, strict=True))
        row = {"condition": condition.name, "kind": condition.kind, "accuracy": correct / len(tested)}
        rows.append(row | {"correct": correct, "n": len(tested), "refused": refused, "params": dict(condition.params)})
        if say is not None:
            say(f"{condition.name:14s} {row['accuracy']:.3f}" + (f" ({refused} refused)" if refused else ""))
    result = {"split": split.name.value, "speaker": split.speaker, "seed": seed, "limit": limit, "sr": sr}
    return result | {"n_clips": len(tested), "conditions": rows}


def benchmark_model(
    model: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    split: SplitConfig | None = None,
    data: str | os.PathLike[str] | None = None,
    download: bool = True,
    seed: int = 0,
    conditions: Sequence[str] | None = None,
    limit: int | None = None,
    noise_dir: str | os.PathLike[str] | None = None,
    device: str = "cpu",
    say: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Load `model` (.pt or .onnx), run the benchmark on FSDD and write its three files to `out` (see run_benchmark)."""
    from spoken_digits.device import check_device
    from spoken_digits.recognize.load import load_predictor

    chosen = select_conditions(conditions, noise_dir=noise_dir is not None)  # bad names fail before any loading
    if limit is not None and limit < 1:
        raise ParameterError(f"--limit must be at least 1, got {limit}")
    predictor = load_predictor(model, device=str(check_device(device)))
    noise_files = corrupt.read_noise_dir(noise_dir, predictor.config.audio.sr) if noise_dir is not None else ()
    clips = fsdd.index(fsdd.locate(data, download=download))
    split = split or SplitConfig()
    from spoken_digits.device import machine

    result = {"model": str(model), "machine": machine(device)} | run_benchmark(
        predictor, clips, split, seed=seed, conditions=chosen, limit=limit, noise_files=noise_files, say=say
    )
    write_outputs(result, out)
    return result


def write_outputs(result: Mapping[str, Any], out: str | os.PathLike[str]) -> list[Path]:
    """robustness.json, robustness.csv (one row per condition) and robustness.png in `out`."""
    out = Path(out)
    write_json(out / "robustness.json", result)
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(["condition", "kind", "snr_db", "accuracy", "correct", "n", "refused", "params"])
    for r in result["conditions"]:
        params = ";".join(f"{k}={v:g}" for k, v in r["params"].items())
        snr = r["params"].get("snr_db", "")
        writer.writerow(
            [r["condition"], r["kind"], snr, f"{r['accuracy']:.4f}", r["correct"], r["n"], r["refused"], params]
        )
    write_text(out / "robustness.csv", text.getvalue())
    title = f"{Path(str(result.get('model', 'model'))).name} on {result['split']} ({result['n_clips']} clips)"
    plot_robustness(result["conditions"], out / "robustness.png", title=title)
    return [out / "robustness.json", out / "robustness.csv", out / "robustness.png"]


def plot_robustness(rows: Sequence[Mapping[str, Any]], path: str | os.PathLike[str], *, title: str) -> None:
    """Accuracy vs SNR, one line per noise type (clean as a dotted line), beside bars for the other conditions."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(12, 4.2), layout="constrained")
    snr_ax, bar_ax = fig.subplots(1, 2, width_ratios=[3, 2])
    noisy = [r for r in rows if "snr_db" in r["params"]]
    for k, kind in enumerate(dict.fromkeys(r["kind"] for r in noisy)):
        points = sorted((r["params"]["snr_db"], r["accuracy"]) for r in noisy if r["kind"] == kind)
        snr_ax.plot(*zip(*points, strict=True), marker="o", color=f"C{k}", label=kind)
    for r in rows:
        if r["kind"] == "clean":
            snr_ax.axhline(r["accuracy"], color="black", ls=":", label="clean")
    snr_ax.set(xlabel="SNR (dB)", ylabel="accuracy", ylim=(0, 1.02), title="Noise (with lead-in and trail)")
    snr_ax.set_xticks(sorted({r["params"]["snr_db"] for r in noisy}))
    snr_ax.grid(alpha=0.3)
    snr_ax.legend(fontsize=8)
    other = [r for r in rows if "snr_db" not in r["params"]]
    bar_ax.barh(range(len(other)), [r["accuracy"] for r in other], color="C7")
    for i, r in enumerate(other):
        bar_ax.text(r["accuracy"] + 0.01, i, f"{r['accuracy']:.3f}", va="center", fontsize=8)
    bar_ax.set(yticks=range(len(other)), yticklabels=[r["condition"] for r in other], xlim=(0, 1.15))
    bar_ax.set(xlabel="accuracy", title="Other conditions")
    bar_ax.invert_yaxis()
    fig.suptitle(title, fontsize=10)
    FigureCanvasAgg(fig)  # no pyplot: attaches an Agg canvas, changes no global state
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")


def format_table(result: Mapping[str, Any]) -> str:
    """The result as a compact text table: condition, accuracy, clips, refused."""
    lines = [f"{'condition':14s} {'accuracy':>8s} {'n':>5s} {'refused':>7s}"]
    for r in result["conditions"]:
        lines.append(f"{r['condition']:14s} {r['accuracy']:8.3f} {r['n']:5d} {r['refused']:7d}")
    return "\n".join(lines)
