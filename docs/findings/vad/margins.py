"""Silero probability margins: max chunk probability on each non-speech input vs on speech clips (python margins.py)."""
import pickle

import numpy as np

raw = pickle.load(open("/tmp/vad-study/out/raw.pkl", "rb"))
ns = raw["nonspeech"]
for fam in ["silero8k-raw", "silero8k-norm", "silero16k-raw", "silero16k-norm"]:
    mx = np.array([float(p.max()) if len(p) else 0 for p in ns["tracks"][fam]])
    main = [i for i, n in enumerate(ns["names"]) if not n.startswith("hard:")]
    hard = [i for i, n in enumerate(ns["names"]) if n.startswith("hard:") and "babble" not in n]
    top = sorted(main, key=lambda i: -mx[i])[:3]
    print(f"{fam:15s} non-speech max p: 60-set max {mx[main].max():.3f} (top: " + ", ".join(f"{ns['names'][i]} {mx[i]:.3f}" for i in top)
          + f"); hard max {mx[hard].max():.3f}")
    line = []
    for c, d in raw["conditions"].items():
        m = np.array([float(p.max()) for p in d["tracks"][fam]])
        line.append(f"{c} p10={np.percentile(m, 10):.2f} <0.5:{np.mean(m < 0.5):.2f}")
    print("   speech clips' max p:", "; ".join(line))
