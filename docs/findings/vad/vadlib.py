"""Endpointers compared in the VAD study: frame-level detectors + one shared segment rule.

Every detector returns a FrameTrack: per-frame scores (probability, 0/1 decision or dB above floor) on a
regular hop, from which `segment()` makes ONE word segment (or None = "no speech").
"""
from __future__ import annotations

import sys
from dataclasses import dataclass

import numpy as np
import soxr

sys.path.insert(0, "/tmp/vad-site")
SILERO_ONNX = "/tmp/vad-site/silero_vad/data/silero_vad.onnx"


@dataclass
class FrameTrack:
    score: np.ndarray  # (n_frames,)
    hop: int  # samples (at the 8 kHz input rate) between frame starts
    offset: int  # sample of the input where frame 0's hop-cell starts (centre-aligned cells)


# ----------------------------------------------------------------------------- baseline
def trim_bounds(y: np.ndarray, sr: int, top_db: float) -> tuple[int, int]:
    """spoken_digits.frontend.audio.trim_silence, returning (start, end) instead of the slice."""
    frame, hop = max(1, round(0.025 * sr)), max(1, round(0.010 * sr))
    if len(y) <= frame:
        return 0, len(y)
    starts = np.arange(0, len(y) - frame + 1, hop)
    windows = np.lib.stride_tricks.sliding_window_view(y, frame)[starts]
    rms_db = 10 * np.log10(np.maximum(np.mean(windows.astype(np.float64) ** 2, axis=1), 1e-20))
    loud = np.flatnonzero(rms_db > rms_db.max() - top_db)
    return int(starts[loud[0]]), int(starts[loud[-1]] + frame)


# ----------------------------------------------------------------------------- energy vs noise floor
def frame_db(y: np.ndarray, sr: int, frame_s: float = 0.025, hop_s: float = 0.010) -> tuple[np.ndarray, int, int]:
    frame, hop = round(frame_s * sr), round(hop_s * sr)
    if len(y) < frame:
        y = np.pad(y, (0, frame - len(y)))
    starts = np.arange(0, len(y) - frame + 1, hop)
    w = np.lib.stride_tricks.sliding_window_view(y, frame)[starts].astype(np.float64)
    return 10 * np.log10(np.maximum(np.mean(w**2, axis=1), 1e-20)), hop, (frame - hop) // 2


def energy_track(y: np.ndarray, sr: int, *, pct: float = 10.0, floor_min_db: float = -90.0) -> FrameTrack:
    """Score = frame dB above the noise floor, floor = `pct` percentile of frame dB (at least -90 dBFS)."""
    db, hop, off = frame_db(y, sr)
    floor = max(float(np.percentile(db, pct)), floor_min_db)
    return FrameTrack(db - floor, hop, off)


# ----------------------------------------------------------------------------- webrtcvad
def webrtc_track(y: np.ndarray, sr: int, mode: int, frame_ms: int) -> FrameTrack:
    import webrtcvad

    vad = webrtcvad.Vad(mode)
    n = sr * frame_ms // 1000
    pcm = np.clip(np.round(y * 32767), -32768, 32767).astype(np.int16)
    if len(pcm) % n:
        pcm = np.pad(pcm, (0, n - len(pcm) % n))
    buf = pcm.tobytes()
    step = 2 * n
    out = np.fromiter((vad.is_speech(buf[i : i + step], sr) for i in range(0, len(buf), step)), dtype=np.float32)
    return FrameTrack(out, n, 0)


# ----------------------------------------------------------------------------- silero (ONNX, batched)
_SESSIONS: dict[int, object] = {}


def silero_session(threads: int = 1):
    import onnxruntime as ort

    if threads not in _SESSIONS:
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        _SESSIONS[threads] = ort.InferenceSession(SILERO_ONNX, sess_options=opts, providers=["CPUExecutionProvider"])
    return _SESSIONS[threads]


def silero_probs_batch(waves: list[np.ndarray], model_sr: int, sr: int = 8000, threads: int = 1) -> list[np.ndarray]:
    """Per-chunk speech probability for each wave (at `sr`), the model run at `model_sr` (8000 or 16000).

    Chunks: 256 samples + 32 context at 8 kHz, 512 + 64 at 16 kHz (32 ms either way), state (2, B, 128).
    Waves are zero-padded at the END to one length: the model is causal, so real chunks are unaffected.
    """
    sess = silero_session(threads)
    if model_sr != sr:
        waves = [soxr.resample(w, sr, model_sr, quality="HQ").astype(np.float32) for w in waves]
    chunk, ctx = (256, 32) if model_sr == 8000 else (512, 64)
    lens = [len(w) for w in waves]
    n_chunks = max(-(-n // chunk) for n in lens)
    x = np.zeros((len(waves), n_chunks * chunk), np.float32)
    for i, w in enumerate(waves):
        x[i, : len(w)] = w
    state = np.zeros((2, len(waves), 128), np.float32)
    context = np.zeros((len(waves), ctx), np.float32)
    srt = np.array(model_sr, dtype=np.int64)
    probs = np.zeros((len(waves), n_chunks), np.float32)
    for c in range(n_chunks):
        inp = np.concatenate([context, x[:, c * chunk : (c + 1) * chunk]], axis=1)
        out, state = sess.run(None, {"input": inp, "state": state, "sr": srt})
        probs[:, c] = out[:, 0]
        context = inp[:, -ctx:]
    return [probs[i, : -(-n // chunk)] for i, n in enumerate(lens)]


def silero_track(probs: np.ndarray, sr: int = 8000) -> FrameTrack:
    return FrameTrack(probs, 256 * sr // 8000, 0)


# ----------------------------------------------------------------------------- decisions and the segment rule
def hysteresis(p: np.ndarray, on: float, off: float) -> np.ndarray:
    """Speech from the first frame >= on until a frame < off (silero's own rule, off = on - 0.15)."""
    act = np.zeros(len(p), bool)
    state = False
    for i, v in enumerate(p):
        state = v >= on if not state else v >= off
        act[i] = state
    return act


def runs(active: np.ndarray) -> list[tuple[int, int]]:
    a = np.concatenate([[0], active.astype(np.int8), [0]])
    d = np.diff(a)
    return list(zip(np.flatnonzero(d == 1), np.flatnonzero(d == -1)))


def segment(
    active: np.ndarray,
    track: FrameTrack,
    y: np.ndarray,
    sr: int,
    *,
    gap_s: float = 0.15,
    min_s: float = 0.06,
    pad_s: float = 0.08,
    pick: str = "energy",
) -> tuple[int, int] | None:
    """One word from frame decisions: runs of speech frames, merged across gaps < gap_s, runs shorter than
    min_s dropped, the run with the most signal energy (or the longest) kept, padded pad_s each side."""
    rs = runs(active)
    if not rs:
        return None
    to_samp = lambda f: track.offset + f * track.hop  # noqa: E731
    segs = [[to_samp(a), to_samp(b)] for a, b in rs]
    merged = [segs[0]]
    for s in segs[1:]:
        if s[0] - merged[-1][1] < gap_s * sr:
            merged[-1][1] = s[1]
        else:
            merged.append(s)
    merged = [(max(0, a), min(len(y), b)) for a, b in merged]
    merged = [(a, b) for a, b in merged if b - a >= min_s * sr]
    if not merged:
        return None
    if pick == "energy":
        y2 = np.concatenate([[0.0], np.cumsum(y.astype(np.float64) ** 2)])
        best = max(merged, key=lambda s: y2[s[1]] - y2[s[0]])
    else:
        best = max(merged, key=lambda s: s[1] - s[0])
    pad = round(pad_s * sr)
    return max(0, best[0] - pad), min(len(y), best[1] + pad)


def n_words(active: np.ndarray, track: FrameTrack, sr: int, gap_s: float = 0.15, min_s: float = 0.06) -> int:
    """How many separate segments the rule sees (for a 'two words' warning)."""
    rs = runs(active)
    segs = []
    for a, b in rs:
        a, b = track.offset + a * track.hop, track.offset + b * track.hop
        if segs and a - segs[-1][1] < gap_s * sr:
            segs[-1][1] = b
        else:
            segs.append([a, b])
    return sum(b - a >= min_s * sr for a, b in segs)


def peak_normalise(y: np.ndarray, peak: float = 0.5) -> np.ndarray:
    m = float(np.max(np.abs(y))) if len(y) else 0.0
    return y if m < 1e-6 else (y * (peak / m)).astype(np.float32)


def rms3_normalise(y: np.ndarray, target_db: float = -20.0, rank: int = 3, max_gain_db: float = 60.0) -> np.ndarray:
    """Gain so that the `rank`-th loudest 32 ms frame has `target_db` dBFS RMS (a click moves 1-2 frames only)."""
    n = 256
    m = len(y) // n
    if m == 0:
        return y
    fr = np.sqrt(np.mean(y[: m * n].reshape(m, n).astype(np.float64) ** 2, axis=1))
    ref = np.sort(fr)[-min(rank, m)]
    if ref < 1e-7:
        return y
    g = min(10 ** (target_db / 20) / ref, 10 ** (max_gain_db / 20))
    return (y * g).astype(np.float32)


def recommended(y: np.ndarray, sr: int = 8000, thr: float = 0.6, pre_s: float = 0.12, post_s: float = 0.03,
                zpad_s: float = 0.0) -> tuple[int, int] | None:
    """The study's recommendation, end to end: rms3 level normalisation (zpad_s: optional zeros each side), silero v5 at
    16 kHz (soxr HQ), hysteresis thr / thr-0.15, runs merged over gaps < 150 ms, runs < 60 ms dropped, the most
    energetic run, 120 ms before / 30 ms after. Returns (start, end) in samples of y, or None = no speech."""
    z = round(zpad_s * sr)
    x = np.pad(rms3_normalise(y), (z, z))
    p = silero_probs_batch([x], 16000, sr)[0]
    seg = segment(hysteresis(p, thr, thr - 0.15), FrameTrack(p, 256 * sr // 8000, 0), x, sr, pad_s=0.0)
    if seg is None:
        return None
    s, e = seg[0] - round(pre_s * sr) - z, seg[1] + round(post_s * sr) - z
    s, e = max(s, 0), min(e, len(y))
    return (s, e) if e > s else None
