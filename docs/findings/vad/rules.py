"""Segment rules re-evaluated on the frame tracks stored in out/raw.pkl (no detector re-run).

python rules.py > out/rules.md

Rules (all: merge gaps < 150 ms, drop runs < 60 ms, keep the most energetic run):
  sym80      pad 80 ms both sides (the study's 'std')
  asymA-B    pad A ms before, B ms after (silero's onset is late on fricatives, its offset already ~40-80 ms late)
  hybrid     silero run (unpadded) -> replaced by the union of energy runs (frame dB > floor + D, floor = 10th
             percentile, >= -90 dBFS; gaps < 150 ms merged) that overlap it, clipped to [start - 250 ms,
             end + 100 ms] of the silero run; falls back to the silero run if no energy run overlaps; then pad 50/30 ms.
Criteria:
  hit      covers >= 90% of the true word (trim 40 dB of the clean clip) and adds <= 0.3 s outside it (the brief's)
  core     covers >= 90% of the word's core (trim 20 dB of the clean clip) and adds <= 0.3 s outside the 40 dB extent
"""
from __future__ import annotations

import os
import pickle
import sys

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, "/tmp/vad-study")
import conditions as C
import numpy as np
import vadlib as V

SR = C.SR
raw, clips, build, conds = C.load_stored()
noisy = [c for c in conds if c.split("-")[0] in ("white", "pink", "babble")]
ISSUE4 = ["pad-3s", "window-1s", "level-40db", "white-20db"]


def run_segment(act, hop, y, pre, post, offset=0):
    tr = V.FrameTrack(np.zeros(len(act)), hop, offset)
    seg = V.segment(act, tr, y, SR, pad_s=0.0)
    if seg is None:
        return None
    return max(0, seg[0] - round(pre * SR)), min(len(y), seg[1] + round(post * SR))


def hybrid(act, y, energy_score, delta, pre=0.05, post=0.03):
    seg = run_segment(act, 256, y, 0.0, 0.0)
    if seg is None:
        return None
    s, e = seg
    e_act = energy_score > delta
    e_runs = []
    for a, b in V.runs(e_act):
        a, b = 60 + a * 80, 60 + b * 80  # 25 ms frames, 10 ms hop, centre offset (200 - 80) // 2
        if e_runs and a - e_runs[-1][1] < 0.15 * SR:
            e_runs[-1][1] = b
        else:
            e_runs.append([a, b])
    over = [(a, b) for a, b in e_runs if b > s and a < e]
    if over:
        lo, hi = min(a for a, _ in over), max(b for _, b in over)
        s, e = max(lo, s - round(0.25 * SR)), min(hi, e + round(0.10 * SR))
    return max(0, s - round(pre * SR)), min(len(y), e + round(post * SR))


def score(seg, truth, core):
    (a, b), (ca, cb) = truth, core
    if seg is None:
        return False, False
    s, e = seg
    ov = max(0, min(e, b) - max(s, a))
    extra = ((e - s) - ov) / SR
    cov_core = max(0, min(e, cb) - max(s, ca)) / max(cb - ca, 1)
    return (ov / max(b - a, 1) >= 0.9 and extra <= 0.3), (cov_core >= 0.9 and extra <= 0.3)


# true word (40 dB) and core (20 dB) per clip, per condition
cores = {}
for c in conds:
    out = []
    for clip, (a, b) in zip(clips, raw["conditions"][c]["truth"]):
        y = build.read(clip)
        a40, b40 = V.trim_bounds(y, SR, 40)
        a20, b20 = V.trim_bounds(y, SR, 20)
        off = a - a40
        ca, cb = a20 + off, b20 + off
        out.append((max(ca, a), min(cb, b)) if cb > ca else (a, b))
    cores[c] = out

RULES = {"sym80": (0.08, 0.08)}
for pre in (0.12, 0.16, 0.20, 0.25):
    for post in (0.0, 0.03, 0.06):
        RULES[f"asym{int(pre * 1000)}-{int(post * 1000)}"] = (pre, post)
FAMS = ["silero16k-norm", "silero16k-raw", "silero8k-norm", "silero8k-raw"]
THRS = (0.5, 0.6, 0.7)


def variants_for(tracks, i, y):
    out = {}
    for fam in FAMS:
        for t in THRS:
            act = V.hysteresis(tracks[fam][i], t, t - 0.15)
            for r, (pre, post) in RULES.items():
                out[(f"{fam}@{t}", r)] = run_segment(act, 256, y, pre, post)
            for d in (6, 9):
                out[(f"{fam}@{t}", f"hybrid{d}")] = hybrid(act, y, tracks["energy"][i], d)
    for d in (9,):
        e = tracks["energy"][i] > d
        out[(f"energy@{d}", "asym120-30")] = run_segment(e, 80, y, 0.12, 0.03, offset=60)
        out[(f"energy@{d}", "sym80")] = run_segment(e, 80, y, 0.08, 0.08, offset=60)
    return out


results = {}  # (variant, rule) -> cond -> (hits, cores, misses)
for c in conds:
    d = raw["conditions"][c]
    waves = [build(c, clip)[0] for clip in clips]
    for i, y in enumerate(waves):
        for key, seg in variants_for(d["tracks"], i, y).items():
            h, k = score(seg, d["truth"][i], cores[c][i])
            r = results.setdefault(key, {}).setdefault(c, [0, 0, 0])
            r[0] += h
            r[1] += k
            r[2] += seg is None
    print(f"<!-- {c} done -->", file=sys.stderr, flush=True)

ns = raw["nonspeech"]
ns_waves = [w for _, w in C.nonspeech() + C.hard_nonspeech(build)]
main_idx = [i for i, n in enumerate(ns["names"]) if not n.startswith("hard:")]
hard_idx = [i for i, n in enumerate(ns["names"]) if n.startswith("hard:") and "babble" not in n]
bab_idx = [i for i, n in enumerate(ns["names"]) if "babble-alone" in n]
fa = {}
for i, y in enumerate(ns_waves):
    for key, seg in variants_for(ns["tracks"], i, y).items():
        fa.setdefault(key, {})[i] = seg is not None

n = len(clips)
rows = []
for key, per in results.items():
    hit = np.mean([per[c][0] / n for c in conds])
    core = np.mean([per[c][1] / n for c in conds])
    core_noisy = np.mean([per[c][1] / n for c in noisy])
    core_i4 = min(per[c][1] / n for c in ISSUE4)
    miss = np.mean([per[c][2] / n for c in conds])
    f_main = np.mean([fa[key][i] for i in main_idx])
    f_hard = np.mean([fa[key][i] for i in hard_idx])
    f_bab = np.mean([fa[key][i] for i in bab_idx])
    rows.append((core, key, hit, core_noisy, core_i4, miss, f_main, f_hard, f_bab))
rows.sort(reverse=True)
print(f"# Segment rules on stored tracks ({n} clips x {len(conds)} conditions)\n")
print("| variant | rule | hit (brief) all | core all | core noisy | core min(issue-4) | miss | FA 60 | FA hard(9) | babble-alone found |")
print("|---|---|---|---|---|---|---|---|---|---|")
for core, (v, r), hit, cn, ci4, miss, f1, f2, f3 in rows[:40]:
    print(f"| {v} | {r} | {hit:.3f} | {core:.3f} | {cn:.3f} | {ci4:.3f} | {miss:.3f} | {f1:.2f} | {f2:.2f} | {f3:.2f} |")
best = [k for _, k, *_ in rows[:1]] + [("silero16k-norm@0.5", "sym80"), ("silero8k-norm@0.6", "asym200-30"),
                                          ("silero16k-raw@0.6", "asym200-30"), ("energy@9", "asym120-30")]
best = list(dict.fromkeys(best + [("silero16k-norm@0.6", "asym200-30"), ("silero16k-norm@0.6", "hybrid9"),
                                 ("silero8k-norm@0.6", "hybrid9")]))
print("\n## Per condition: hit (brief) / core / miss\n")
print("| condition | " + " | ".join(f"{v} {r}" for v, r in best) + " |")
print("|---|" + "---|" * len(best))
for c in conds:
    print(f"| {c} | " + " | ".join(
        f"{results[k][c][0] / n:.2f} / {results[k][c][1] / n:.2f} / {results[k][c][2] / n:.2f}" for k in best) + " |")
pickle.dump({"results": results, "fa": fa, "names": ns["names"]}, open("/tmp/vad-study/out/rules.pkl", "wb"))
