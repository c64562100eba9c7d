"""Speed: ms of CPU per second of audio, one clip at a time, one thread (onnxruntime intra_op=1, OMP=1).

Includes the detector, the decision and the segment rule (and 8k->16k soxr resampling for silero16k).
Best of 5 repeats over 20 x 3 s clips (pad-3s), timed with process_time (CPU time of this thread/process)
and perf_counter (wall). The machine is shared with training jobs: compare ratios, not absolutes.
"""
import os
import sys
import time

os.environ["OMP_NUM_THREADS"] = "1"
sys.path.insert(0, "/tmp/vad-study")

import conditions as C
import vadlib as V

SR = 8000
test, pool = C.load_clips()
b = C.Builder(pool)
waves = [b("pad-3s", c)[0] for c in test[::15][:20]]
secs = sum(len(w) for w in waves) / SR


def silero(w, msr, norm=False):
    w = V.peak_normalise(w) if norm else w
    p = V.silero_probs_batch([w], msr, SR, threads=1)[0]
    tr = V.silero_track(p)
    return V.segment(V.hysteresis(p, 0.5, 0.35), tr, w, SR)


METHODS = {
    "trim40 (baseline)": lambda w: V.trim_bounds(w, SR, 40),
    "energy@12": lambda w: V.segment(V.energy_track(w, SR).score > 12, V.energy_track(w, SR), w, SR),
    "webrtc3-10ms": lambda w: V.segment(V.webrtc_track(w, SR, 3, 10).score > 0.5, V.webrtc_track(w, SR, 3, 10), w, SR),
    "webrtc3-30ms": lambda w: V.segment(V.webrtc_track(w, SR, 3, 30).score > 0.5, V.webrtc_track(w, SR, 3, 30), w, SR),
    "silero 8k": lambda w: silero(w, 8000),
    "silero 16k (incl. resample)": lambda w: silero(w, 16000),
    "silero 16k + peak-norm": lambda w: silero(w, 16000, True),
    "recommended (rms3 + silero 16k @0.6)": lambda w: V.recommended(w),
}
silero(waves[0], 8000), silero(waves[0], 16000)  # warm up sessions
print(f"{len(waves)} clips, {secs:.0f} s of audio; os.getloadavg={os.getloadavg()}")
res = {}
for name, fn in METHODS.items():
    cpu, wall = [], []
    for _ in range(5):
        t0, c0 = time.perf_counter(), time.process_time()
        for w in waves:
            fn(w)
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    res[name] = (min(cpu) / secs * 1000, min(wall) / secs * 1000)
base = res["trim40 (baseline)"][0]
print("| method | CPU ms per s of audio | wall ms per s | x baseline (CPU) |\n|---|---|---|---|")
for name, (c, w) in res.items():
    print(f"| {name} | {c:.2f} | {w:.2f} | {c / base:.0f} |")
