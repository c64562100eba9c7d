"""Tables from out/raw.pkl: python report.py [raw.pkl] > out/report.md

hit  = segment covers >= 90% of the true word AND adds <= 0.3 s of non-word (no segment = miss, not a hit)
start/end error = |detected - true| boundary in ms, over clips with a segment
miss = share of clips where the method says "no speech"
FA   = share of the 60 non-speech inputs where the method finds a segment
"""
from __future__ import annotations

import pickle
import sys
from collections import defaultdict

import numpy as np

SR = 8000
raw = pickle.load(open(sys.argv[1] if len(sys.argv) > 1 else "/tmp/vad-study/out/raw.pkl", "rb"))
conds = list(raw["conditions"])
noisy = [c for c in conds if c.split("-")[0] in ("white", "pink", "babble")]
issue4 = ["pad-3s", "window-1s", "level-40db", "white-20db"]


def metrics(cond: str, key) -> dict:
    d = raw["conditions"][cond]
    hits, se, ee, miss = [], [], [], 0
    for seg, (a, b) in zip(d["res"][key], d["truth"]):
        if seg is None:
            miss += 1
            hits.append(False)
            continue
        s, e = seg
        ov = max(0, min(e, b) - max(s, a))
        cover = ov / max(b - a, 1)
        extra = ((e - s) - ov) / SR
        hits.append(cover >= 0.9 and extra <= 0.3)
        se.append(abs(s - a) / SR * 1000)
        ee.append(abs(e - b) / SR * 1000)
    n = len(hits)
    return {"hit": np.mean(hits), "se": np.mean(se) if se else np.nan, "ee": np.mean(ee) if ee else np.nan,
            "miss": miss / n, "se_med": np.median(se) if se else np.nan, "ee_med": np.median(ee) if ee else np.nan}


def fa(key, subset=None) -> float:
    ns = raw["nonspeech"]
    found = [seg is not None for seg in ns["res"][key]]
    idx = [i for i, n in enumerate(ns["names"]) if not n.startswith("hard:") and (subset is None or subset(n))]
    return float(np.mean([found[i] for i in idx]))


variants = sorted({k[0] for k in raw["conditions"][conds[0]]["res"] if k[1] in ("std", "-")})
key_of = lambda v: (v, "-") if v.startswith("trim") else (v, "std")  # noqa: E731
M = {(v, c): metrics(c, key_of(v)) for v in variants for c in conds}
stationary = lambda n: n.split("@")[0] in ("white", "pink", "brown", "hum50", "hum60", "tone440", "tone1000") or "@" not in n  # noqa: E731

print(f"# VAD study: {len(raw['clips'])} FSDD official-test clips x {len(conds)} conditions; 60 non-speech inputs\n")
print("## 1. Summary per variant (segment rule 'std': merge gaps <150 ms, drop runs <60 ms, most energetic run, pad 80 ms)\n")
print("| variant | hit all | hit noisy(12) | hit issue-4 min | worst cond | miss mean | FA non-speech(60) | FA stationary(48) | FA beeps+clicks(12) |")
print("|---|---|---|---|---|---|---|---|---|")
rows = []
for v in variants:
    h = [M[v, c]["hit"] for c in conds]
    worst = min(conds, key=lambda c: M[v, c]["hit"])
    rows.append((np.mean(h), v, np.mean([M[v, c]["hit"] for c in noisy]), min(M[v, c]["hit"] for c in issue4),
                 f"{worst} {M[v, worst]['hit']:.2f}", np.mean([M[v, c]["miss"] for c in conds]), fa(key_of(v)),
                 fa(key_of(v), stationary), fa(key_of(v), lambda n: n.split("@")[0] in ("beeps", "clicks"))))
for r in sorted(rows, reverse=True):
    print(f"| {r[1]} | {r[0]:.3f} | {r[2]:.3f} | {r[3]:.3f} | {r[4]} | {r[5]:.3f} | {r[6]:.2f} | {r[7]:.2f} | {r[8]:.2f} |")

SHOW = ["trim40", "trim20", "energy@9", "energy@12", "energy@15", "webrtc0-30ms-raw", "webrtc3-30ms-raw",
        "webrtc3-30ms-norm", "silero8k-raw@0.5", "silero8k-norm@0.5", "silero16k-raw@0.3", "silero16k-raw@0.5",
        "silero16k-raw@0.7", "silero16k-norm@0.5"]
SHOW = [v for v in SHOW if v in variants]
for metric, title, fmt in (("hit", "hit rate (cover>=90%, extra<=0.3 s)", "{:.2f}"), ("miss", "false 'no speech' rate", "{:.2f}"),
                           ("se", "mean |start error| ms", "{:.0f}"), ("ee", "mean |end error| ms", "{:.0f}")):
    print(f"\n## {title}, per condition\n")
    print("| condition | " + " | ".join(SHOW) + " |")
    print("|---|" + "---|" * len(SHOW))
    for c in conds:
        print(f"| {c} | " + " | ".join(fmt.format(M[v, c][metric]) for v in SHOW) + " |")

print("\n## Segment-rule ablation (mean hit over all conditions / noisy / FA non-speech)\n")
rules = sorted({k[1] for k in raw["conditions"][conds[0]]["res"] if k[1] not in ("-", "n_words")})
abl = sorted({k[0] for k in raw["conditions"][conds[0]]["res"] if k[1] == "gap0.3"})
print("| variant | " + " | ".join(rules) + " |")
print("|---|" + "---|" * len(rules))
for v in abl:
    cells = []
    for r in rules:
        h = [metrics(c, (v, r))["hit"] for c in conds]
        hn = [metrics(c, (v, r))["hit"] for c in noisy]
        cells.append(f"{np.mean(h):.3f}/{np.mean(hn):.3f}/{fa((v, r)):.2f}")
    print(f"| {v} | " + " | ".join(cells) + " |")

print("\n## Non-speech: which inputs each method calls speech (x = found speech)\n")
ns = raw["nonspeech"]
kinds = defaultdict(list)
for i, n in enumerate(ns["names"]):
    kinds[n.split("@")[0]].append(i)
NS_SHOW = ["trim40", "energy@12", "webrtc3-30ms-raw", "webrtc3-30ms-norm", "silero8k-raw@0.5", "silero8k-norm@0.5",
           "silero16k-raw@0.5", "silero16k-norm@0.5", "silero16k-raw@0.7"]
NS_SHOW = [v for v in NS_SHOW if v in variants]
print("| input (levels -70,-55,-40,-30,-20,-10 dBFS; hard: -40,-25,-10) | project gate rejects | " + " | ".join(NS_SHOW) + " |")
print("|---|---|" + "---|" * len(NS_SHOW))
for k, idx in sorted(kinds.items(), key=lambda kv: kv[0].startswith("hard:")):
    cells = ["".join("x" if ns["res"][key_of(v)][i] is not None else "." for i in idx) for v in NS_SHOW]
    gate = "".join("." if ns["gate"][i] else "R" for i in idx)
    print(f"| {k} | {gate} | " + " | ".join(cells) + " |")
print("\nWith the project's gate (audio.require_speech) in front, FA becomes:")
for v in NS_SHOW + ["silero16k-raw@0.6", "silero16k-norm@0.7"]:
    if v in variants:
        f = np.mean([(ns["res"][key_of(v)][i] is not None) and ns["gate"][i] for i in range(len(ns["gate"])) if not ns["names"][i].startswith("hard:")])
        print(f"- {v}: {f:.2f}")

print("\n## Multi-word: share of speech clips where the rule sees >1 segment (would trigger a 'two words' warning)\n")
for v in ["energy@12", "webrtc3-30ms-raw", "silero8k-raw@0.5", "silero16k-raw@0.5", "silero16k-norm@0.5"]:
    if (v, "n_words") in raw["conditions"][conds[0]]["res"]:
        print(f"- {v}: " + ", ".join(f"{c} {np.mean(np.array(raw['conditions'][c]['res'][(v, 'n_words')]) > 1):.2f}" for c in conds))
