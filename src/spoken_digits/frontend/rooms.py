"""Simulated room impulse responses for training: pyroomacoustics shoebox rooms.

Each room has random dimensions, a reverberation time T60 drawn from 0.15-1.0 s (absorption and
image-source order from Sabine's formula, `pyroomacoustics.inverse_sabine`) and a talker and a
microphone at random places at least 0.5 m apart and from the walls. The robustness benchmark
reverberates with a different model (`corrupt.synthetic_rir`, statistical decaying noise), so a
model is never tested on the rooms it was trained in.
"""

from __future__ import annotations

import functools

import numpy as np

from spoken_digits.errors import ParameterError

N_ROOMS = 40
T60_RANGE = (0.15, 1.0)  # s


def room_response(sr: int, rng: np.random.Generator) -> np.ndarray:
    """One impulse response (L,) of a random room, starting 1 ms before its direct path, unit energy."""
    import pyroomacoustics as pra

    size = np.array([rng.uniform(3, 10), rng.uniform(3, 8), rng.uniform(2.4, 4)])
    t60 = rng.uniform(*T60_RANGE)
    absorption, order = pra.inverse_sabine(t60, size)
    room = pra.ShoeBox(size, fs=sr, materials=pra.Material(absorption), max_order=min(order, 40))
    while True:  # a talker and a microphone 0.5 m or more from the walls and from each other
        talker, microphone = (rng.uniform(0.5, size - 0.5) for _ in range(2))
        if np.linalg.norm(talker - microphone) >= 0.5:
            break
    room.add_source(talker)
    room.add_microphone(microphone)
    room.compute_rir()
    rir = np.asarray(room.rir[0][0], dtype=np.float64)
    start = max(0, int(np.argmax(np.abs(rir))) - round(0.001 * sr))
    rir = rir[start : start + round(T60_RANGE[1] * sr)]
    return (rir / np.sqrt(np.sum(rir**2))).astype(np.float32)


@functools.cache
def room_responses(sr: int, *, seed: int = 0) -> np.ndarray:
    """N_ROOMS impulse responses (N_ROOMS, L), zero-padded to one length (about 2 s of CPU for 40, made
    once per process; read-only, as it is shared)."""
    try:
        import pyroomacoustics  # noqa: F401
    except ImportError:
        raise ParameterError("reverberation needs pyroomacoustics: pip install pyroomacoustics") from None
    rng = np.random.default_rng(seed)
    rirs = [room_response(sr, rng) for _ in range(N_ROOMS)]
    bank = np.zeros((N_ROOMS, max(len(r) for r in rirs)), np.float32)
    for i, rir in enumerate(rirs):
        bank[i, : len(rir)] = rir
    bank.flags.writeable = False
    return bank
