"""Test material: FSDD official-test clips placed at known positions under each condition, and non-speech inputs.

True word extent = trim_silence(clean clip, 40 dB) bounds, shifted to where the clip was placed.
Seeds: spoken_digits.evaluation.robustness.clip_rng(seed, condition name, clip file name), as the project's benchmark.
pad-3s and window-1s are built exactly as the project's benchmark builds them (same names, same draws).
"""
from __future__ import annotations

import sys

import numpy as np

sys.path.insert(0, "/work/main/src")
from vadlib import trim_bounds

from spoken_digits.data import fsdd
from spoken_digits.frontend import audio, corrupt
from spoken_digits.evaluation.robustness import babble_talkers, clip_rng

SR = 8000
ROOT = "/work/shared/data/fsdd"
CONDITIONS = (
    ["bare", "clean-pad0.5", "pad-3s", "window-1s", "level-40db"]
    + [f"{k}-{s}db" for k in ("white", "pink", "babble") for s in (20, 10, 5, 0)]
)


def load_clips():
    clips = fsdd.index(fsdd.recordings_dir(fsdd.locate(ROOT)))
    test = [c for c in clips if c.take <= 4]
    pool = [c for c in clips if c.take >= 5]
    return test, pool


class Builder:
    def __init__(self, pool, seed: int = 0):
        self.pool, self.seed, self.cache = pool, seed, {}

    def read(self, clip):
        if clip.path not in self.cache:
            self.cache[clip.path] = audio.read_audio(clip.path, SR)
        return self.cache[clip.path]

    def __call__(self, cond: str, clip) -> tuple[np.ndarray, int, int]:
        y = self.read(clip)
        a, b = trim_bounds(y, SR, 40.0)  # the true word inside the clean clip
        rng = clip_rng(self.seed, cond, clip.path.name)
        if cond == "bare":
            return y, a, b
        if cond == "clean-pad0.5":
            p = SR // 2
            return np.pad(y, (p, p)), a + p, b + p
        if cond == "level-40db":  # 40 dB quieter, 0.5 s digital silence each side, 16-bit quantisation floor
            p = SR // 2
            w = np.pad(corrupt.gain_db(y, -40.0), (p, p))
            w = w + corrupt.noise("white", len(w), rng) * np.float32(10 ** (-101 / 20))
            return w.astype(np.float32), a + p, b + p
        if cond in ("pad-3s", "window-1s"):  # identical to robustness.Corrupter
            seconds = 3.0 if cond == "pad-3s" else 1.0
            size = round(seconds * SR)
            replay = clip_rng(self.seed, cond, clip.path.name)
            if len(y) >= size:
                start = int(replay.integers(0, len(y) - size + 1))
                a2, b2 = max(a - start, 0), min(b - start, size)
            else:
                start = int(replay.integers(0, size - len(y) + 1))
                a2, b2 = a + start, b + start
            placed = corrupt.place_in_window(y, SR, seconds, rng)
            w = placed + corrupt.noise("white", len(placed), rng) * np.float32(10 ** (-60 / 20))
            return w.astype(np.float32), a2, b2
        kind, snr = cond.split("-")[0], float(cond.split("-")[1][:-2])
        lead, trail = (round(float(rng.uniform(0.25, 0.5)) * SR) for _ in range(2))
        size = len(y) + lead + trail
        if kind == "babble":
            streams = [np.concatenate([self.read(c) for c in t]) for t in babble_talkers(clip, self.pool, rng)]
            noise = corrupt.babble(streams, size, rng)
        else:
            noise = corrupt.noise(kind, size, rng)
        return corrupt.mix_at_snr(y, noise, snr, offset=lead), a + lead, b + lead


def load_stored(path: str = "/tmp/vad-study/out/raw.pkl"):
    """What study.py stored (out/raw.pkl), its clips in stored order, a Builder, and the condition names."""
    import pickle

    with open(path, "rb") as f:
        raw = pickle.load(f)
    test, pool = load_clips()
    by_name = {c.path.name: c for c in test}
    return raw, [by_name[n] for n in raw["clips"]], Builder(pool), list(raw["conditions"])


def nonspeech(seed: int = 123) -> list[tuple[str, np.ndarray]]:
    """60 inputs with no speech: 9 kinds x 6 RMS levels, plus 6 silences; lengths 1-3 s."""
    rng = np.random.default_rng(seed)
    out = []
    levels = (-70, -55, -40, -30, -20, -10)

    def length():
        return int(rng.integers(SR, 3 * SR + 1))

    def unit(x):
        return x / np.sqrt(np.mean(x**2))

    for lvl in levels:
        g = 10 ** (lvl / 20)
        for kind in ("white", "pink", "brown"):
            out.append((f"{kind}@{lvl}", corrupt.noise(kind, length(), rng) * g))
        for f0 in (50, 60):  # mains hum with harmonics up to 1 kHz, 1/k amplitudes, plus a little noise
            n = length()
            t = np.arange(n) / SR
            h = sum(np.sin(2 * np.pi * f0 * k * t + rng.uniform(0, 6.28)) / k for k in range(1, 1000 // f0))
            out.append((f"hum{f0}@{lvl}", unit(h + 0.01 * rng.standard_normal(n)) * g))
        for f in (440, 1000):
            n = length()
            t = np.arange(n) / SR
            out.append((f"tone{f}@{lvl}", unit(np.sin(2 * np.pi * f * t)) * g))
        n = length()  # a beep pattern: 1 kHz tone bursts of 0.2 s every 0.5 s (a ringing / alarm)
        t = np.arange(n) / SR
        beep = np.sin(2 * np.pi * 1000 * t) * ((t % 0.5) < 0.2) + 1e-3 * rng.standard_normal(n)
        out.append((f"beeps@{lvl}", unit(beep) * g))
        n = length()  # clicks: short broadband bursts (keyboard/door), 5 ms, every ~0.3 s, on a -30 dB-relative floor
        x = 0.03 * rng.standard_normal(n)
        for s in range(int(0.1 * SR), n - 40, int(0.3 * SR)):
            x[s : s + 40] += rng.standard_normal(40) * np.hanning(40) * 3
        out.append((f"clicks@{lvl}", unit(x) * g))
    out.append(("zeros-1s", np.zeros(SR)))
    out.append(("zeros-3s", np.zeros(3 * SR)))
    for lvl in (-101, -90, -80):
        out.append((f"dither@{lvl}", corrupt.noise("white", length(), rng) * 10 ** (lvl / 20)))
    out.append(("dc-offset", np.full(2 * SR, 0.05) + 1e-4 * rng.standard_normal(2 * SR)))
    return [(name, np.asarray(x, np.float32)) for name, x in out]


def hard_nonspeech(builder: Builder, seed: int = 321) -> list[tuple[str, np.ndarray]]:
    """12 harder non-speech inputs, reported apart from the 60 (names start with 'hard:'), at -40/-25/-10 dBFS:
    pink noise amplitude-modulated at a syllabic 4 Hz, a melody of harmonic tones (0.25 s notes),
    a 100-3500 Hz log sweep, and babble alone (6 FSDD training talkers: speech, so any VAD 'should' fire)."""
    rng = np.random.default_rng(seed)
    out = []
    test, pool = load_clips()
    for lvl in (-40, -25, -10):
        g = 10 ** (lvl / 20)
        n = int(rng.integers(SR, 3 * SR + 1))
        t = np.arange(n) / SR
        x = corrupt.noise("pink", n, rng) * (0.5 + 0.5 * np.sin(2 * np.pi * 4 * t))
        out.append((f"hard:am-pink@{lvl}", x))
        notes = rng.choice([220, 247, 262, 294, 330, 349, 392, 440], size=int(np.ceil(n / (SR // 4))))
        f = np.repeat(notes, SR // 4)[:n]
        ph = 2 * np.pi * np.cumsum(f) / SR
        env = np.tile(np.exp(-np.arange(SR // 4) / (0.08 * SR)), len(notes))[:n]
        out.append((f"hard:melody@{lvl}", sum(np.sin(k * ph) / k for k in range(1, 8)) * env))
        f0, f1 = 100, 3500
        out.append((f"hard:sweep@{lvl}", np.sin(2 * np.pi * f0 * n / SR / np.log(f1 / f0) * (np.exp(t / t[-1] * np.log(f1 / f0)) - 1))))
        streams = [np.concatenate([builder.read(c) for c in tk]) for tk in babble_talkers(test[0], pool, rng)]
        out.append((f"hard:babble-alone@{lvl}", corrupt.babble(streams, n, rng)))
    return [(name, np.asarray(x / np.sqrt(np.mean(np.square(x))) * 10 ** (float(name.split("@")[1]) / 20), np.float32))
            for name, x in out]
