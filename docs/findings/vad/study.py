"""Run every endpointer variant on every condition (+ the non-speech set); save per-clip results.

python study.py [--limit N]   -> /tmp/vad-study/out/raw.pkl  (then: python report.py)
Threads: onnxruntime 1 intra-op thread; one process.
"""
from __future__ import annotations

import argparse
import os
import pickle
import sys
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, "/tmp/vad-study")
import conditions as C
import numpy as np
import vadlib as V

SR = C.SR
SILERO_THR = (0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
ENERGY_DELTA = (6, 9, 12, 15, 20)
RULES = {  # name -> segment() kwargs; 'std' is the rule every table uses unless it says otherwise
    "std": dict(gap_s=0.15, min_s=0.06, pad_s=0.08, pick="energy"),
    "gap0.3": dict(gap_s=0.30, min_s=0.06, pad_s=0.08, pick="energy"),
    "gap0.1": dict(gap_s=0.10, min_s=0.06, pad_s=0.08, pick="energy"),
    "pad0.05": dict(gap_s=0.15, min_s=0.06, pad_s=0.05, pick="energy"),
    "pad0.12": dict(gap_s=0.15, min_s=0.06, pad_s=0.12, pick="energy"),
    "longest": dict(gap_s=0.15, min_s=0.06, pad_s=0.08, pick="longest"),
    "min0.1": dict(gap_s=0.15, min_s=0.10, pad_s=0.08, pick="energy"),
}
ABLATE = {"silero16k-raw@0.5", "silero8k-raw@0.5", "silero16k-norm@0.5", "energy@9", "energy@12", "webrtc3-30ms-norm",
          "silero16k-raw@0.3", "silero16k-raw@0.7"}


def tracks_for(waves: list[np.ndarray]) -> dict[str, list]:
    """Frame tracks per detector family, for all waves (silero batched)."""
    out: dict[str, list] = {}
    normed = [V.peak_normalise(w) for w in waves]
    for msr in (8000, 16000):
        for tag, ws in (("raw", waves), ("norm", normed)):
            probs = V.silero_probs_batch(ws, msr, SR)
            out[f"silero{msr // 1000}k-{tag}"] = [V.silero_track(p) for p in probs]
    out["energy"] = [V.energy_track(w, SR) for w in waves]
    for mode in range(4):
        for ms in (10, 20, 30):
            out[f"webrtc{mode}-{ms}ms-raw"] = [V.webrtc_track(w, SR, mode, ms) for w in waves]
        out[f"webrtc{mode}-30ms-norm"] = [V.webrtc_track(w, SR, mode, 30) for w in normed]
    return out


def decide(tracks: dict[str, list], waves: list[np.ndarray]) -> dict[tuple[str, str], list]:
    """(variant, rule) -> list of (start, end) | None, one per wave; plus ('n_words', variant)."""
    res: dict[tuple[str, str], list] = {}
    for top in (40, 30, 20):
        res[(f"trim{top}", "-")] = [V.trim_bounds(w, SR, top) for w in waves]
    for fam, trs in tracks.items():
        if fam.startswith("silero"):
            grid = [(f"{fam}@{t}", lambda tr, t=t: V.hysteresis(tr.score, t, t - 0.15)) for t in SILERO_THR]
        elif fam == "energy":
            grid = [(f"energy@{d}", lambda tr, d=d: tr.score > d) for d in ENERGY_DELTA]
        else:
            grid = [(fam, lambda tr: tr.score > 0.5)]
        for name, fn in grid:
            acts = [fn(tr) for tr in trs]
            rules = RULES if name in ABLATE else {"std": RULES["std"]}
            for rname, kw in rules.items():
                res[(name, rname)] = [V.segment(a, tr, w, SR, **kw) for a, tr, w in zip(acts, trs, waves)]
            res[(name, "n_words")] = [V.n_words(a, tr, SR) for a, tr in zip(acts, trs)]
    return res


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--conditions", nargs="*", default=C.CONDITIONS)
    ap.add_argument("--out", default="/tmp/vad-study/out/raw.pkl")
    args = ap.parse_args()
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    test, pool = C.load_clips()
    if args.limit:
        test = test[:: max(1, len(test) // args.limit)][: args.limit]
    build = C.Builder(pool)
    raw = {"clips": [c.path.name for c in test], "conditions": {}, "nonspeech": None}
    for cond in args.conditions:
        t0 = time.time()
        items = [build(cond, c) for c in test]
        waves = [w for w, _, _ in items]
        truth = [(a, b) for _, a, b in items]
        tracks = tracks_for(waves)
        res = decide(tracks, waves)
        keep = {k: [t.score for t in v] for k, v in tracks.items() if k.startswith(("silero", "energy"))}
        raw["conditions"][cond] = {"truth": truth, "lens": [len(w) for w in waves], "res": res, "tracks": keep}
        print(f"{cond:14s} {len(waves)} clips {sum(map(len, waves)) / SR:7.1f} s audio  {time.time() - t0:6.1f} s", flush=True)
    items = C.nonspeech() + C.hard_nonspeech(build)
    waves = [w for _, w in items]
    tracks = tracks_for(waves)
    res = decide(tracks, waves)
    # the project's current no-speech gate (audio.require_speech) on the whole input
    gate = []
    for w in waves:
        try:
            C.audio.require_speech(w, SR, name="x")
            gate.append(True)
        except Exception:
            gate.append(False)
    keep = {k: [t.score for t in v] for k, v in tracks.items() if k.startswith(("silero", "energy"))}
    raw["nonspeech"] = {"names": [n for n, _ in items], "lens": [len(w) for w in waves], "res": res, "gate": gate,
                        "tracks": keep}
    with open(args.out, "wb") as f:
        pickle.dump(raw, f)
    print("wrote", args.out)


if __name__ == "__main__":
    main()
