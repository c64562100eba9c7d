"""Corruptions (measured back: SNR, spectral slope, decay time, band) and the robustness benchmark end to end."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import soundfile as sf

from conftest import SR, digit_voice
from spoken_digits.apps.cli import main
from spoken_digits.config import RunConfig, SplitConfig
from spoken_digits.data import fsdd
from spoken_digits.data.splits import make_folds
from spoken_digits.errors import AudioError, ParameterError
from spoken_digits.evaluation.robustness import (
    Corrupter,
    babble_talkers,
    predicted_labels,
    run_benchmark,
    select_conditions,
    standard_conditions,
    stratified_subset,
)
from spoken_digits.frontend import audio, corrupt, talkers
from spoken_digits.recognize.load import load_predictor


def db(x: float) -> float:
    return 10 * float(np.log10(x))


def power(x: np.ndarray) -> float:
    return float(np.mean(np.asarray(x, dtype=np.float64) ** 2))


# --- corruptions ----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["white", "pink", "brown"])
@pytest.mark.parametrize("snr", [20.0, 10.0, 5.0, 0.0, -5.0])
def test_mix_at_snr_gives_the_snr_asked_over_the_speech(kind, snr):
    rng = np.random.default_rng(0)
    speech = digit_voice(3)
    lead = SR // 4
    noise = corrupt.noise(kind, len(speech) + 2 * lead, rng)
    mixed = corrupt.mix_at_snr(speech, noise, snr, offset=lead)
    assert mixed.shape == (len(speech) + 2 * lead,) and mixed.dtype == np.float32
    added = mixed[lead : lead + len(speech)] - speech  # the noise under the word
    assert abs(db(power(speech) / power(added)) - snr) < 0.1
    # the lead-in and trail are the same noise at the same scale
    scale = np.sqrt(power(added) / power(noise[lead : lead + len(speech)]))
    np.testing.assert_allclose(mixed[:lead], noise[:lead] * scale, rtol=1e-4, atol=1e-7)


def test_mix_at_snr_takes_a_batch_with_one_snr_per_clip():
    rng = np.random.default_rng(1)
    speech = rng.standard_normal((4, 800)).astype(np.float32)
    noise = corrupt.noise("pink", (4, 1000), rng)
    snrs = np.array([20.0, 10.0, 5.0, 0.0])
    mixed = corrupt.mix_at_snr(speech, noise, snrs, offset=100)
    measured = [db(power(s) / power(m[100:900] - s)) for s, m in zip(speech, mixed, strict=True)]
    np.testing.assert_allclose(measured, snrs, atol=0.1)


def test_mix_at_snr_refuses_bad_shapes_and_silence():
    rng = np.random.default_rng(0)
    with pytest.raises(ParameterError, match=r"cannot hold speech of shape \(100,\) at offset 50"):
        corrupt.mix_at_snr(np.ones(100), corrupt.noise("white", 120, rng), 10, offset=50)
    with pytest.raises(ParameterError, match="silent"):
        corrupt.mix_at_snr(np.zeros(100), corrupt.noise("white", 100, rng), 10)
    with pytest.raises(ParameterError, match="finite"):
        corrupt.mix_at_snr(np.ones(100), corrupt.noise("white", 100, rng), float("nan"))
    with pytest.raises(ParameterError, match="unknown noise colour 'blue'; choose one of: white, pink, brown"):
        corrupt.noise("blue", 100, rng)


def spectral_slope_db_per_octave(x: np.ndarray, sr: int) -> float:
    """Slope of the mean periodogram of rows of `x` (dB per octave), fitted from 50 Hz to 3.5 kHz."""
    spectrum = np.mean(np.abs(np.fft.rfft(x, axis=-1)) ** 2, axis=0)
    hz = np.fft.rfftfreq(x.shape[-1], 1 / sr)
    band = (hz >= 50) & (hz <= 3500)
    return float(np.polyfit(np.log2(hz[band]), 10 * np.log10(spectrum[band]), 1)[0])


@pytest.mark.parametrize(("kind", "slope"), [("white", 0.0), ("pink", -3.01), ("brown", -6.02)])
def test_noise_colours_have_their_spectral_slope_and_unit_rms(kind, slope):
    x = corrupt.noise(kind, (32, 8192), np.random.default_rng(2))
    assert abs(spectral_slope_db_per_octave(x, SR) - slope) < 0.3
    np.testing.assert_allclose(np.sqrt(np.mean(x.astype(np.float64) ** 2, axis=-1)), 1.0, rtol=1e-5)


def schroeder_t60(rir: np.ndarray, sr: int) -> float:
    """T60 from the energy decay curve (Schroeder backward integration), fitted between -5 and -25 dB (T20)."""
    energy = np.cumsum((rir.astype(np.float64) ** 2)[::-1])[::-1]
    edc = 10 * np.log10(energy / energy[0])
    fit = (edc <= -5) & (edc >= -25)
    slope = np.polyfit(np.flatnonzero(fit) / sr, edc[fit], 1)[0]  # dB per second
    return -60 / slope


@pytest.mark.parametrize("t60", [0.3, 0.6, 0.9])
def test_reverberation_decays_at_its_t60(t60):
    rng = np.random.default_rng(3)
    impulse = np.zeros(SR // 10, dtype=np.float32)
    impulse[0] = 1
    heard = corrupt.reverberate(impulse, SR, t60, rng)  # the impulse response itself
    assert abs(schroeder_t60(heard, SR) - t60) < 0.2 * t60
    assert len(heard) >= SR // 10 + t60 * SR - 1  # the tail rings on after the clip
    y = corrupt.noise("white", SR // 2, rng)  # broadband, so the response's energy is what counts
    wet = corrupt.reverberate(y, SR, t60, rng)
    assert abs(db(power(wet) * len(wet) / (power(y) * len(y)))) < 1  # a unit-energy response keeps the level
    assert corrupt.sabine_drr_db(0.9) < corrupt.sabine_drr_db(0.3)  # a more reverberant room, more reverberation


def band_passed(x: np.ndarray, sr: int, low: float, high: float) -> np.ndarray:
    """`x` with everything outside `low`-`high` Hz removed (an FFT mask, zero-padded: nothing wraps round)."""
    n = 2 * len(x)
    spectrum = np.fft.rfft(x.astype(np.float64), n)
    hz = np.fft.rfftfreq(n, 1 / sr)
    spectrum[(hz < low) | (hz > high)] = 0
    return np.fft.irfft(spectrum, n)[: len(x)]


@pytest.mark.parametrize("t60", [0.3, 0.6, 0.9])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_second_room_model_decays_at_its_t60_highs_faster(t60, seed):
    """reverb2's responses: T60 as asked in the 500 Hz-1 kHz octaves and broadband, shorter in the highs."""
    drr = corrupt.sabine_drr_db(t60)
    rir = corrupt.fdn_rir(SR, t60, np.random.default_rng(seed), drr_db=drr)
    assert rir.dtype == np.float32 and rir.shape == (round(0.003 * SR) + np.ceil(1.1 * t60 * SR),)
    assert abs(schroeder_t60(band_passed(rir, SR, 354, 1414), SR) - t60) < 0.15 * t60
    assert abs(schroeder_t60(rir, SR) - t60) < 0.15 * t60
    assert schroeder_t60(band_passed(rir, SR, 2000, 3500), SR) < 0.8 * t60
    assert power(rir) * len(rir) == pytest.approx(1.0, rel=1e-5)  # unit energy
    direct = float(rir[round(0.003 * SR)]) ** 2
    assert db(direct / (1 - direct)) == pytest.approx(drr, abs=0.3)  # the direct-to-reverberant ratio asked
    again = corrupt.fdn_rir(SR, t60, np.random.default_rng(seed), drr_db=drr)
    np.testing.assert_array_equal(rir, again)
    assert not np.array_equal(rir, corrupt.fdn_rir(SR, t60, np.random.default_rng(seed + 10), drr_db=drr))
    with pytest.raises(ParameterError, match="t60 must be a positive number, got -1"):
        corrupt.fdn_rir(SR, -1, np.random.default_rng(0), drr_db=drr)
    with pytest.raises(ParameterError, match=r"needs a t60 of 0\.05 s or more"):
        corrupt.fdn_rir(SR, 0.01, np.random.default_rng(0), drr_db=drr)


def modulation_share(x: np.ndarray, sr: int) -> float:
    """Share of the 0.5-32 Hz modulation power of `x`'s 10 ms envelope that lies at syllable rates, 2-8 Hz."""
    hop = sr // 100
    envelope = np.sqrt(np.mean(x[: len(x) // hop * hop].astype(np.float64).reshape(-1, hop) ** 2, axis=1))
    spectrum = np.abs(np.fft.rfft(envelope - envelope.mean())) ** 2
    hz = np.fft.rfftfreq(len(envelope), 1 / 100)
    return float(spectrum[(hz >= 2) & (hz <= 8)].sum() / spectrum[(hz >= 0.5) & (hz <= 32)].sum())


def test_synthetic_babble_is_seeded_unit_rms_and_speech_like():
    """babble2's talkers: same generator state, same babble; syllable-rate modulation; a speech-like spectrum."""
    babble = talkers.synthetic_babble(6 * SR, SR, np.random.default_rng(0))
    np.testing.assert_array_equal(babble, talkers.synthetic_babble(6 * SR, SR, np.random.default_rng(0)))
    assert not np.array_equal(babble, talkers.synthetic_babble(6 * SR, SR, np.random.default_rng(1)))
    assert babble.shape == (6 * SR,) and babble.dtype == np.float32
    assert power(babble) == pytest.approx(1.0, rel=1e-5)
    one = talkers.synthetic_babble(6 * SR, SR, np.random.default_rng(0), talkers=1)
    assert modulation_share(one, SR) > 0.5 and modulation_share(babble, SR) > 0.5
    assert modulation_share(corrupt.noise("pink", 6 * SR, np.random.default_rng(0)), SR) < 0.45  # the control
    assert db(power(band_passed(babble, SR, 100, 1000)) / power(band_passed(babble, SR, 2000, 3500))) > 6
    with pytest.raises(ParameterError, match="babble needs at least one talker, got 0"):
        talkers.synthetic_babble(SR, SR, np.random.default_rng(0), talkers=0)


def test_telephone_removes_what_is_outside_300_to_3400_hz():
    x = corrupt.noise("white", (8, 4000), np.random.default_rng(4))
    y = corrupt.telephone(x, SR)
    assert y.shape == x.shape and y.dtype == np.float32
    hz = np.fft.rfftfreq(x.shape[-1], 1 / SR)
    before, after = (np.mean(np.abs(np.fft.rfft(z, axis=-1)) ** 2, axis=0) for z in (x, y))
    for band in (hz < 280, hz > 3420):
        assert db(after[band].sum() / before[band].sum()) < -30
    middle = (hz > 500) & (hz < 3000)
    assert abs(db(after[middle].sum() / before[middle].sum())) < 0.5
    with pytest.raises(ParameterError, match="band 300-250 Hz"):
        corrupt.band_limit(x, SR, low=300, high=250)


def test_gain_and_window_placement():
    y = digit_voice(5)
    np.testing.assert_allclose(corrupt.gain_db(y, -30), y * 10 ** (-30 / 20), rtol=1e-6)
    word = np.arange(1, SR // 2 + 1, dtype=np.float32)  # no zero inside, so its place shows
    placed = corrupt.place_in_window(word, SR, 3.0, np.random.default_rng(0))
    assert placed.shape == (3 * SR,)
    start = int(np.flatnonzero(placed)[0])
    np.testing.assert_array_equal(placed[start : start + len(word)], word)
    assert np.count_nonzero(placed) == len(word)
    starts = {
        int(np.flatnonzero(corrupt.place_in_window(word, SR, 3.0, np.random.default_rng(s)))[0]) for s in range(5)
    }
    assert len(starts) == 5  # anywhere in the window
    cut = corrupt.place_in_window(np.arange(2 * SR, dtype=np.float32) + 1, SR, 1.0, np.random.default_rng(0))
    assert cut.shape == (SR,) and np.all(np.diff(cut) == 1)  # a longer clip: a stretch of it, in order
    with pytest.raises(ParameterError, match="seconds must be a positive number, got 0"):
        corrupt.place_in_window(y, SR, 0, np.random.default_rng(0))


# --- the benchmark's conditions -------------------------------------------------------------------


@pytest.fixture(scope="module")
def official(synthetic_fsdd):
    """Synthetic clips, their official test clips, and the training clips (the babble pool)."""
    clips = fsdd.index(fsdd.recordings_dir(synthetic_fsdd))
    (fold,) = make_folds(fsdd.as_clips(clips), SplitConfig())
    return clips, [clips[i] for i in fold.test], [clips[i] for i in fold.train]


def test_same_seed_same_corrupted_clips_other_seed_other_clips(official):
    _, tested, pool = official
    noise_file = corrupt.noise("brown", SR, np.random.default_rng(9))
    conditions = standard_conditions(noise_dir=True)
    for clip in tested[:3]:
        y = digit_voice(clip.digit)
        for c in conditions:
            first = Corrupter(SR, 0, noise_files=[noise_file])(c, clip, y, pool)
            again = Corrupter(SR, 0, noise_files=[noise_file])(c, clip, y, pool)
            other = Corrupter(SR, 1, noise_files=[noise_file])(c, clip, y, pool)
            np.testing.assert_array_equal(first, again)
            assert first.dtype == np.float32 and np.all(np.isfinite(first))
            if c.kind in ("clean", "telephone", "level"):  # nothing random in them
                np.testing.assert_array_equal(first, other)
            else:
                assert first.shape != other.shape or not np.array_equal(first, other), c.name


@pytest.mark.parametrize("kind", ["babble", "babble2"])
def test_both_babbles_mix_at_the_snr_asked(official, kind):
    _, tested, pool = official
    for c in select_conditions([kind]):
        for clip in tested[:4]:
            y = digit_voice(clip.digit, speaker=1)
            mixed = Corrupter(SR, 0)(c, clip, y, pool)
            lead = round(c.params["lead_s"] * SR)
            assert mixed.shape == (len(y) + 2 * lead,)
            added = mixed[lead : lead + len(y)] - y
            assert abs(db(power(y) / power(added)) - c.params["snr_db"]) < 0.05, c.name


def test_babble2_reads_no_recording(official, monkeypatch):
    """The second babble is synthetic: it needs no training clips and opens no file."""
    _, tested, _ = official

    def refuse(*args, **kwargs):
        raise AssertionError(f"babble2 read a file: {args[:1]}")

    monkeypatch.setattr(Corrupter, "_read", refuse)
    monkeypatch.setattr(audio, "read_audio", refuse)
    monkeypatch.setattr(sf, "read", refuse)
    monkeypatch.setattr("builtins.open", refuse)
    y = digit_voice(4)
    for c in select_conditions(["babble2"]):
        assert np.all(np.isfinite(Corrupter(SR, 0)(c, tested[0], y, [])))  # no pool of training clips at all
    with pytest.raises(ParameterError, match="no training clips"):
        Corrupter(SR, 0)(select_conditions(["babble-10db"])[0], tested[0], y, [])


def test_babble_never_uses_the_tested_speaker_or_a_test_take(official):
    _, tested, pool = official
    for clip in tested:
        talkers = babble_talkers(clip, pool, np.random.default_rng(0))
        assert len(talkers) == 6
        for talker in talkers:
            assert len({c.speaker for c in talker}) == 1  # each talker is one voice
            assert all(c.speaker != clip.speaker and c.take >= 5 for c in talker)
    with pytest.raises(ParameterError, match="no training clips of a speaker other than 'anna'"):
        babble_talkers(tested[0], [c for c in pool if c.speaker == "anna"], np.random.default_rng(0))


def test_unknown_conditions_list_the_valid_ones():
    with pytest.raises(ParameterError, match=r"unknown condition 'white-15db'; choose from: clean, white-20db"):
        select_conditions(["white-15db"])
    with pytest.raises(ParameterError, match="need --noise-dir"):
        select_conditions(["noisedir"])
    names = [c.name for c in select_conditions(["reverb", "clean"])]
    assert names == ["clean", "reverb-0.3s", "reverb-0.6s", "reverb-0.9s"]  # table order
    assert len(select_conditions(None)) == 1 + 16 + 6 + 4
    assert len(select_conditions(None, noise_dir=True)) == 1 + 20 + 6 + 4


def test_second_generators_follow_their_twins_at_the_same_levels():
    names = [c.name for c in standard_conditions(noise_dir=True)]
    babble, babble2 = ([f"{k}-{s}db" for s in (20, 10, 5, 0)] for k in ("babble", "babble2"))
    reverb, reverb2 = ([f"{k}-{t}s" for t in (0.3, 0.6, 0.9)] for k in ("reverb", "reverb2"))
    for first, second in ((babble, babble2), (reverb, reverb2)):
        at = names.index(first[0])
        assert names[at : at + len(first) + len(second)] == first + second
    assert [c.name for c in select_conditions(["babble2-10db", "reverb2"])] == ["babble2-10db", *reverb2]
    twins = {c.name: c.params for c in standard_conditions()}
    assert twins["reverb2-0.6s"] == twins["reverb-0.6s"] and twins["babble2-0db"] == twins["babble-0db"]


def test_limit_takes_a_seeded_subset_balanced_over_digits(official):
    _, tested, _ = official
    chosen = stratified_subset(tested, 30, seed=0)
    assert len(chosen) == 30 == len(set(chosen))
    assert np.bincount([tested[i].digit for i in chosen], minlength=10).tolist() == [3] * 10
    assert {tested[i].speaker for i in chosen} == {"anna", "bert", "carl"}
    assert chosen == stratified_subset(tested, 30, seed=0) != stratified_subset(tested, 30, seed=1)


# --- end to end -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def model(synthetic_fsdd, tmp_path_factory):
    """A small model trained on the synthetic clips' official training takes (5-7)."""
    out = tmp_path_factory.mktemp("run")
    argv = ["train", "--data", str(synthetic_fsdd), "--out", str(out), "--no-download", "--split", "official"]
    assert main([*argv, "--preset", "clean", "--epochs", "12", "--model", "cnn"]) == 0
    return out / "model.pt"


def test_cli_writes_json_csv_and_plot_and_noise_hurts(model, synthetic_fsdd, tmp_path, capsys):
    argv = ["robustness", str(model), "--data", str(synthetic_fsdd), "--no-download", "--out", str(tmp_path)]
    assert main([*argv, "--limit", "40"]) == 0
    table = capsys.readouterr().out
    result = json.loads((tmp_path / "robustness.json").read_text())
    rows = {r["condition"]: r for r in result["conditions"]}
    assert list(rows) == [c.name for c in standard_conditions()]
    assert result["model"] == str(model) and result["seed"] == 0 and result["split"] == "official"
    assert result["n_clips"] == 40 and all(r["n"] == 40 and 0 <= r["accuracy"] <= 1 for r in rows.values())
    assert rows["white-5db"]["params"] == {"snr_db": 5.0, "lead_s": 0.25}
    assert rows["clean"]["accuracy"] > 0.8
    assert rows["white-0db"]["accuracy"] < rows["clean"]["accuracy"]
    with (tmp_path / "robustness.csv").open() as f:
        csv_rows = list(csv.DictReader(f))
    assert [r["condition"] for r in csv_rows] == list(rows)
    assert float(csv_rows[0]["accuracy"]) == pytest.approx(rows["clean"]["accuracy"], abs=1e-4)
    assert (tmp_path / "robustness.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert table.splitlines()[0].split() == ["condition", "accuracy", "n", "refused"]
    assert len(table.splitlines()) == 1 + len(rows)
    # the same seed scores the same clips the same way
    assert main([*argv, "--limit", "40", "--conditions", "white-0db", "pad", "--json"]) == 0
    again = {r["condition"]: r for r in json.loads(capsys.readouterr().out)["conditions"]}
    assert again["white-0db"]["correct"] == rows["white-0db"]["correct"]
    assert again["pad-3s"]["correct"] == rows["pad-3s"]["correct"]


def test_cli_refuses_an_unknown_condition(model, synthetic_fsdd, tmp_path, capsys):
    argv = ["robustness", str(model), "--data", str(synthetic_fsdd), "--out", str(tmp_path)]
    assert main([*argv, "--conditions", "clean", "thunder"]) == 2
    err = capsys.readouterr().err
    assert "unknown condition 'thunder'; choose from: clean" in err
    assert "babble2-10db" in err and "reverb2-0.6s" in err and "babble2," in err  # names and the kind
    assert not (tmp_path / "robustness.json").exists()


def test_noise_dir_babble_and_refusals_through_the_benchmark(model, synthetic_fsdd, tmp_path, monkeypatch):
    """Babble reads only other speakers' training takes; a noise folder adds its conditions; silence is refused."""
    sf.write(tmp_path / "hum.wav", corrupt.noise("pink", SR, np.random.default_rng(0)) * 0.1, SR)
    (tmp_path / "README.txt").write_text("not audio, skipped")
    predictor = load_predictor(model)
    clips = fsdd.index(fsdd.recordings_dir(synthetic_fsdd))
    read = []
    original = Corrupter._read

    def spy(self, clip):
        read.append(clip)
        return original(self, clip)

    monkeypatch.setattr(Corrupter, "_read", spy)
    noise_files = corrupt.read_noise_dir(tmp_path, SR)
    chosen = select_conditions(["babble-0db", "noisedir-10db", "level-30db"], noise_dir=True)
    result = run_benchmark(predictor, clips, SplitConfig(), conditions=chosen, limit=20, noise_files=noise_files)
    assert [r["condition"] for r in result["conditions"]] == ["babble-0db", "noisedir-10db", "level-30db"]
    assert read and all(c.take >= 5 for c in read)
    monkeypatch.setattr(corrupt, "gain_db", lambda y, db: np.zeros_like(y))  # every clip now silent
    (row,) = run_benchmark(predictor, clips, SplitConfig(), conditions=chosen[2:], limit=20)["conditions"]
    assert row["refused"] == 20 and row["accuracy"] == 0


def test_clips_a_stricter_predictor_refuses_count_as_refused():
    """When the model's own check refuses a clip that passes require_speech, the others are still scored."""

    class Picky:  # refuses quiet clips, as a voice-activity detector might; always answers 3 otherwise
        config = RunConfig()
        classes = tuple(str(d) for d in range(10))

        def each_probabilities(self, waves):
            return [AudioError("no speech found") if np.abs(y).max() < 0.1 else np.eye(10)[3] for y in waves]

    loud = digit_voice(3)
    labels, refused = predicted_labels(Picky(), [loud, loud * 0.05, np.zeros_like(loud), loud])
    assert labels == ["3", None, None, "3"] and refused == 2


def test_noise_dir_reads_any_noise_and_names_bad_files(tmp_path):
    rumble = corrupt.noise("brown", 2 * 16000, np.random.default_rng(0)) * 0.1  # no speech-band energy to speak of
    sf.write(tmp_path / "rumble.flac", np.stack([rumble, rumble], axis=1), 16000)  # stereo, another rate
    (noise,) = corrupt.read_noise_dir(tmp_path, SR)
    assert noise.shape == (2 * SR,) and noise.dtype == np.float32
    sf.write(tmp_path / "silence.wav", np.zeros(SR), SR)
    with pytest.raises(ParameterError, match=r"silence.wav: empty, silent or not finite"):
        corrupt.read_noise_dir(tmp_path, SR)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ParameterError, match="empty: no audio files"):
        corrupt.read_noise_dir(tmp_path / "empty", SR)
    with pytest.raises(ParameterError, match="not a folder"):
        corrupt.read_noise_dir(tmp_path / "rumble.flac", SR)
