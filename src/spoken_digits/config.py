"""Typed run configuration and the named presets.

The default preset (`preset("default")`, ENCODER below) hears the word, found by a speech detector,
through a pretrained speech encoder and trains a small head on it in noise, rooms and bands it may
meet. `RunConfig()` is the same recipe from scratch on cepstra (`preset("scratch")`, SCRATCH_* below),
the default before the encoder. Each part's own dataclass defaults (`AudioConfig()`,
`FeatureConfig()`, ...) are the clean preset: the seed's 0.5 s clips, 512/256/80 mel settings, LSTM
and Adam 1e-3, with the fixes that make it learn (log-mel in dB, standardised, silence trimmed, early
stopping); a config saved before a field existed reads back with that field's plain default. Other
presets say what they change.
A run's whole configuration is one `RunConfig`; it is printed, saved as `config.json` and stored
in the checkpoint, so `predict` rebuilds exactly the features a model was trained on.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from spoken_digits.errors import ParameterError


class Scale(StrEnum):
    """How mel power is presented to the model."""

    POWER = "power"  # raw mel power, as the seed fed it
    DB = "db"  # 10*log10 per clip, relative to the clip's peak, floored at -top_db


class Layout(StrEnum):
    """How the (time, features) matrix is handed to the model; only time-major is right."""

    TIME_MAJOR = "time-major"  # (N, T, F): row t is frame t (the seed's transpose)
    SWAPPED = "swapped"  # (N, F, T): mel bands read as time steps
    RESHAPED = "reshaped"  # (F, T) reshaped, not transposed, to (T, F): rows mix bands and frames


class Pad(StrEnum):
    """Where zero padding goes when a clip is shorter than the fixed length."""

    END = "end"  # librosa.util.fix_length: speech first, then silence
    START = "start"  # silence first, so a last-state readout ends on speech


class Optimizer(StrEnum):
    ADAM = "adam"
    ADAMW = "adamw"  # decoupled weight decay


class Schedule(StrEnum):
    CONSTANT = "constant"
    ONECYCLE = "onecycle"  # warm up to lr over the first 15% of steps, then anneal to ~0


class SplitName(StrEnum):
    """Ways to divide a dataset into training and test clips (data/splits.py)."""

    OFFICIAL = "official"  # the dataset's own (FSDD: takes 0-4 test, speakers shared); else speakers, else random
    RANDOM = "random"  # stratified by class, seeded
    SPEAKERS = "speakers"  # whole speakers held out, about test_fraction of the clips, seeded
    LOSO = "loso"  # leave one speaker out: one fold per speaker
    ALL = "all"  # train on everything (a deployable model; no test set)


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise ParameterError(message)


def _enum(kind: type[StrEnum], value: object, what: str) -> Any:
    try:
        return kind(str(value))
    except ValueError:
        valid = ", ".join(m.value for m in kind)
        raise ParameterError(f"unknown {what} {value!r}; choose one of: {valid}") from None


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, StrEnum):
        return value.value
    return value


@dataclass(frozen=True)
class AudioConfig:
    """How a file becomes a waveform: rate, silence trimming and length rule."""

    sr: int = 8000  # FSDD's rate
    duration: float | None = 0.5  # seconds to zero-pad/trim to, the seed's; None keeps true lengths
    trim_db: float | None = 40.0  # trim edges quieter than this many dB below the peak (the seed: None)
    vad: bool = False  # find the word with the speech detector (endpoint.py) instead; needs trim_db None
    max_duration: float = 30.0  # longest audio read from a file, in seconds (caps memory)
    pad: Pad = Pad.END

    def __post_init__(self) -> None:
        object.__setattr__(self, "pad", _enum(Pad, self.pad, "pad"))
        _check(1000 <= self.sr <= 192_000, f"sr must be in 1000..192000 Hz, got {self.sr}")
        _check(self.duration is None or self.duration > 0, f"duration must be > 0 s or None, got {self.duration}")
        _check(self.trim_db is None or self.trim_db > 0, f"trim_db must be > 0 dB or None, got {self.trim_db}")
        _check(
            not (self.vad and self.trim_db is not None),
            f"the speech detector (vad) finds the word itself: trim_db must be None, got {self.trim_db}",
        )
        _check(self.max_duration > 0, f"max_duration must be > 0 s, got {self.max_duration}")

    @property
    def n_samples(self) -> int | None:
        """The fixed clip length in samples, or None for variable-length clips."""
        return None if self.duration is None else round(self.duration * self.sr)


ENCODERS = {"speech-embedding": 96}  # pretrained encoders (frontend/encoder.py) and their output widths
ENCODER_SR = 16_000


@dataclass(frozen=True)
class FeatureConfig:
    """Mel spectrogram settings, named as in librosa; frame and band settings are the seed's."""

    n_fft: int = 512
    hop_length: int = 256
    n_mels: int = 80
    fmin: float = 0.0
    fmax: float | None = None  # None = sr / 2
    scale: Scale = Scale.DB  # the seed fed raw power
    top_db: float = 80.0
    standardize: bool = True  # per-mel-band mean/std fitted on the training split
    n_mfcc: int = 0  # > 0: that many cepstral coefficients (DCT of the dB mel bands) instead of mel bands
    cmvn: bool = False  # per-clip mean/variance normalisation of each band over the clip's own frames
    deltas: bool = False  # append each band's slope over time ((next - previous frame) / 2)
    layout: Layout = Layout.TIME_MAJOR
    # A pretrained speech encoder instead of the mel settings above (frontend/encoder.py): its 96-d
    # embeddings every 80 ms are the model's input. Needs 16 kHz audio.
    encoder: str | None = None
    encoder_pad: float = 0.4  # seconds of silence the encoder hears on both sides of each clip

    def __post_init__(self) -> None:
        _check(
            self.encoder in (None, *ENCODERS),
            f"unknown encoder {self.encoder!r}; choose one of: {', '.join(ENCODERS)} (or none)",
        )
        _check(0 <= self.encoder_pad <= 2, f"encoder_pad must be in [0, 2] s, got {self.encoder_pad}")
        _check(
            self.encoder is None or (self.n_mfcc == 0 and not self.cmvn and not self.deltas),
            "the speech encoder reads its own log-mel: n_mfcc, cmvn and deltas must be off",
        )
        object.__setattr__(self, "scale", _enum(Scale, self.scale, "scale"))
        object.__setattr__(self, "layout", _enum(Layout, self.layout, "layout"))
        _check(
            self.encoder is None or self.scale is Scale.DB,
            "the speech encoder reads its own log-mel (in dB): scale power does not apply to it",
        )
        _check(self.n_fft >= 16, f"n_fft must be >= 16, got {self.n_fft}")
        _check(
            0 < self.hop_length <= self.n_fft, f"hop_length must be in 1..n_fft ({self.n_fft}), got {self.hop_length}"
        )
        _check(self.n_mels >= 1, f"n_mels must be >= 1, got {self.n_mels}")
        _check(self.fmin >= 0, f"fmin must be >= 0 Hz, got {self.fmin}")
        _check(self.fmax is None or self.fmax > self.fmin, f"fmax must be above fmin ({self.fmin} Hz), got {self.fmax}")
        _check(self.top_db > 0, f"top_db must be > 0, got {self.top_db}")
        _check(0 <= self.n_mfcc <= self.n_mels, f"n_mfcc must be in 0..n_mels, got {self.n_mfcc}")
        _check(self.n_mfcc == 0 or self.scale is Scale.DB, "n_mfcc needs scale db (cepstra are taken of log power)")

    @property
    def width(self) -> int:
        """Values per frame: the encoder's embedding, or mel bands or cepstra, doubled when deltas are appended."""
        if self.encoder is not None:
            return ENCODERS[self.encoder]
        return (self.n_mfcc or self.n_mels) * (2 if self.deltas else 1)


@dataclass(frozen=True)
class ModelConfig:
    """A registered model name and the hyper-parameters passed to its constructor."""

    name: str = "seed_lstm"
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TrainConfig:
    """Optimiser, schedule and early stopping (epochs, batch size and Adam 1e-3 as the seed)."""

    epochs: int = 40
    batch_size: int = 32
    lr: float = 1e-3
    adam_eps: float = 1e-8  # torch's default; Keras' Adam uses 1e-7 (the seed preset)
    weight_decay: float = 0.0
    patience: int = 10  # epochs without a better validation score before stopping; 0 = never (the seed)
    val_fraction: float = 0.1  # share of the training split held out for early stopping
    # True: the last epoch's weights are kept whatever the validation slice says (it then only calibrates):
    # with a one-cycle schedule the annealed last epoch hears new voices better than the best-scoring one.
    keep_last: bool = False
    seed: int = 0
    device: str = "cpu"
    optimizer: Optimizer = Optimizer.ADAM
    schedule: Schedule = Schedule.CONSTANT
    label_smoothing: float = 0.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "optimizer", _enum(Optimizer, self.optimizer, "optimizer"))
        object.__setattr__(self, "schedule", _enum(Schedule, self.schedule, "schedule"))
        _check(0 <= self.label_smoothing < 1, f"label_smoothing must be in [0, 1), got {self.label_smoothing}")
        _check(self.epochs >= 1, f"epochs must be >= 1, got {self.epochs}")
        _check(self.batch_size >= 1, f"batch_size must be >= 1, got {self.batch_size}")
        _check(self.lr > 0, f"lr must be > 0, got {self.lr}")
        _check(self.adam_eps > 0, f"adam_eps must be > 0, got {self.adam_eps}")
        _check(self.weight_decay >= 0, f"weight_decay must be >= 0, got {self.weight_decay}")
        _check(self.patience >= 0, f"patience must be >= 0, got {self.patience}")
        _check(0 <= self.val_fraction < 1, f"val_fraction must be in [0, 1), got {self.val_fraction}")


@dataclass(frozen=True)
class AugmentConfig:
    """On-the-fly training augmentation (never at evaluation); all off by default.

    The shares (noise, reverb, band, clipping) are the chance that a training clip gets that change.
    """

    speed: float = 0.0  # play each training clip 1 +- up to this fraction faster (0.1: 0.9x..1.1x)
    time_mask: int = 0  # blank one run of up to this many frames per clip
    band_mask: int = 0  # blank one run of up to this many bands (or cepstra) per clip
    reverb: float = 0.0  # share heard in a simulated room (rooms.py: T60 0.15-1.0 s)
    context: float = 0.0  # up to this many seconds of extra audio before and after the word, each side
    noise: float = 0.0  # share mixed with noise: white, pink, brown, babble of other training clips, noise_dir files
    snr_min: float = 0.0  # dB: the noise's signal-to-noise ratio is drawn uniformly from snr_min..snr_max
    snr_max: float = 30.0
    noise_dir: str | None = None  # a folder of noise recordings to mix in as well (never the test's noise)
    band: float = 0.0  # share passed through the telephone band (300-3400 Hz)
    clipping: float = 0.0  # share overdriven: scaled 1.5-4x past full scale and clipped
    # 0: every epoch augments and featurises its batches afresh. K > 0: K augmented copies of each training
    # clip are featurised once and every epoch goes through all of them (training/views.py): for a costly
    # front end such as the speech encoder.
    views: int = 0
    # Filler clips (training/filler.py: reversed words, splices of two words, pieces of words) made from the
    # training clips, as a multiple of the average class's clip count: the model learns a "not a word"
    # class (_unknown_) that the string path rejects. 0: none.
    filler: float = 0.0
    # Everyday English words (no digits) said by speech synthesisers, "engine:voice,..." (data/tts.py), added
    # to the filler class: other speech than the dataset's. "": none.
    filler_voices: str = ""

    def __post_init__(self) -> None:
        _check(0 <= self.views <= 64, f"views must be in 0..64, got {self.views}")
        _check(0 <= self.filler <= 10, f"filler must be in [0, 10] (clips per average class), got {self.filler}")
        _check(0 <= self.speed < 0.5, f"speed must be in [0, 0.5), got {self.speed}")
        _check(self.time_mask >= 0 and self.band_mask >= 0, "mask widths must be >= 0")
        for name in ("reverb", "noise", "band", "clipping"):
            _check(0 <= getattr(self, name) <= 1, f"{name} is a share of clips: in [0, 1], got {getattr(self, name)}")
        _check(0 <= self.context <= 2, f"context must be in [0, 2] s, got {self.context}")
        _check(
            -20 <= self.snr_min <= self.snr_max <= 60,
            f"need -20 <= snr_min <= snr_max <= 60 dB, got {self.snr_min}..{self.snr_max}",
        )
        _check(self.noise_dir is None or self.noise > 0, "noise_dir needs noise > 0 (the share of noisy clips)")
        _check(
            not (self.filler or self.filler_voices) or self.active,
            "filler clips are made from waveforms: they need augmentation on",
        )

    @property
    def active(self) -> bool:
        return bool(
            self.speed
            or self.time_mask
            or self.band_mask
            or self.reverb
            or self.context
            or self.noise
            or self.band
            or self.clipping
        )


@dataclass(frozen=True)
class SplitConfig:
    """Which clips are tested on."""

    name: SplitName = SplitName.OFFICIAL
    speaker: str | None = None  # loso: hold out only this speaker (default: all six folds)
    test_fraction: float = 0.1  # random and speakers splits

    def __post_init__(self) -> None:
        object.__setattr__(self, "name", _enum(SplitName, self.name, "split"))
        _check(0 < self.test_fraction < 1, f"test_fraction must be in (0, 1), got {self.test_fraction}")
        _check(
            self.speaker is None or self.name is SplitName.LOSO,
            f"a speaker ({self.speaker!r}) can only be held out with --split loso",
        )


# The from-scratch preset ("scratch", the default before the speech encoder), part by part. The
# word as the speech detector finds it, whole (no crop);
# 13 cepstra of 40 mel bands at a 10 ms hop, each clip normalised by its own statistics (CMVN, so
# the level does not matter) plus deltas; a 1-D conv net; AdamW with a one-cycle schedule and label
# smoothing for a fixed 20 epochs; and every training clip heard as a microphone might hear it:
# 0.9-1.1x speed, a simulated room (50%), up to 0.3 s of extra audio each side (what the detector's
# segment holds beyond the word), noise at -5 to 30 dB SNR (80%: white, pink, brown, and twice as
# often babble of other training clips), the telephone band (10%), clipping (5%).
SCRATCH_AUDIO = AudioConfig(duration=None, trim_db=None, vad=True)
SCRATCH_FEATURES = FeatureConfig(
    n_fft=256, hop_length=80, n_mels=40, n_mfcc=13, cmvn=True, deltas=True, standardize=False
)
SCRATCH_MODEL = ModelConfig(name="conv1d")
SCRATCH_TRAIN = TrainConfig(
    epochs=20,
    lr=2e-3,
    weight_decay=1e-2,
    optimizer=Optimizer.ADAMW,
    schedule=Schedule.ONECYCLE,
    label_smoothing=0.1,
    patience=0,  # no early stopping: a validation score on the training speakers flatters
    val_fraction=0.0,
)
SCRATCH_AUGMENT = AugmentConfig(speed=0.1, reverb=0.5, context=0.3, noise=0.8, snr_min=-5.0, band=0.1, clipping=0.05)


@dataclass(frozen=True)
class RunConfig:
    """Everything one training run depends on; `RunConfig()` is the from-scratch preset ("scratch")."""

    preset: str = "scratch"
    audio: AudioConfig = field(default_factory=lambda: SCRATCH_AUDIO)
    features: FeatureConfig = field(default_factory=lambda: SCRATCH_FEATURES)
    model: ModelConfig = field(default_factory=lambda: SCRATCH_MODEL)
    train: TrainConfig = field(default_factory=lambda: SCRATCH_TRAIN)
    split: SplitConfig = field(default_factory=SplitConfig)
    augment: AugmentConfig = field(default_factory=lambda: SCRATCH_AUGMENT)

    def __post_init__(self) -> None:
        _check(
            self.features.encoder is None or self.audio.sr == ENCODER_SR,
            f"the speech encoder hears {ENCODER_SR} Hz audio: set the audio rate (sr) to {ENCODER_SR}, "
            f"got {self.audio.sr}",
        )
        _check(
            self.features.encoder is None or self.features.layout is Layout.TIME_MAJOR,
            "the speech encoder gives time-major features only",
        )
        _check(
            not self.augment.active or self.features.layout is Layout.TIME_MAJOR,
            "augmentation needs the time-major layout",
        )
        _check(
            self.features.layout is Layout.TIME_MAJOR or self.audio.duration is not None,
            f"layout {self.features.layout.value} needs a fixed clip duration (every clip the same shape)",
        )

    @property
    def n_features(self) -> int:
        """Width of each step the model reads: bands (or cepstra), or frames when the layout is swapped."""
        width = self.features.width
        if self.features.layout is Layout.TIME_MAJOR:
            return width
        frames = 1 + (self.audio.n_samples or 0) // self.features.hop_length
        return frames if self.features.layout is Layout.SWAPPED else width

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict (enums as their string values)."""
        return _jsonable(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunConfig:
        """Rebuild a config from `to_dict` output; unknown keys are an error, not ignored."""
        parts = {
            "audio": AudioConfig,
            "features": FeatureConfig,
            "model": ModelConfig,
            "train": TrainConfig,
            "split": SplitConfig,
            "augment": AugmentConfig,
        }
        try:
            kwargs: dict[str, Any] = {"preset": data.get("preset", "custom")}
            for key, kind in parts.items():
                kwargs[key] = kind(**data.get(key, {}))
        except TypeError as exc:
            raise ParameterError(f"invalid run configuration: {exc}") from None
        return cls(**kwargs)


# The clean preset: every part's own dataclass defaults.
CLEAN = RunConfig(
    preset="clean",
    audio=AudioConfig(),
    features=FeatureConfig(),
    model=ModelConfig(),
    train=TrainConfig(),
    augment=AugmentConfig(),
)

# The default: the from-scratch recipe heard through a pretrained speech encoder
# (frontend/encoder.py): 16 kHz audio, the detector's word, 96-d embeddings every 80 ms, a 1-D conv
# head, the same multi-condition training made once as 4 augmented views of each clip (AugmentConfig.views).
FILLER_VOICES = "flite:slt,flite:awb,flite:rms,flite:kal16,festival:kal_diphone"  # --filler-voices; never espeak-ng
ENCODER = RunConfig(
    preset="default",
    audio=AudioConfig(sr=ENCODER_SR, duration=None, trim_db=None, vad=True),
    features=FeatureConfig(encoder="speech-embedding", standardize=False),
    model=SCRATCH_MODEL,
    # each epoch goes through 4 views of every clip; 5% of the training takes is held out to calibrate (the
    # last epoch is kept). No filler class: measured, it costs new voices (FINDINGS, "Only digits").
    train=dataclasses.replace(SCRATCH_TRAIN, epochs=10, val_fraction=0.05, keep_last=True),
    augment=dataclasses.replace(SCRATCH_AUGMENT, views=4),
)

PRESETS: dict[str, RunConfig] = {
    # For real recordings and new voices: the speech encoder, the detector, multi-condition training.
    "default": ENCODER,
    # The same detector and multi-condition training, learnt from scratch on 13 cepstra (SCRATCH_*
    # above): no pretrained weights, 8 kHz, the default before the encoder.
    "scratch": RunConfig(),
    # The seed's pipeline done right, for clean, tightly cut clips: log-mel in dB per clip,
    # standardised on training statistics, leading/trailing silence trimmed before the 0.5 s crop.
    "clean": CLEAN,
    # The seed's pipeline exactly as written: raw mel power, 0.5 s crop, seed_lstm, Adam 1e-3.
    "seed": dataclasses.replace(
        CLEAN,
        preset="seed",
        audio=AudioConfig(trim_db=None),
        features=FeatureConfig(scale=Scale.POWER, standardize=False),
        train=TrainConfig(patience=0, adam_eps=1e-7),  # Keras: no early stopping, Adam epsilon 1e-7
    ),
    # Speaker-independent on clean clips: whole trimmed clips, the scratch preset's features and
    # schedule, speed perturbation only, an ensemble of three 1-D conv nets.
    "robust": RunConfig(
        preset="robust",
        audio=AudioConfig(duration=None, trim_db=40.0),
        features=SCRATCH_FEATURES,
        model=ModelConfig(name="conv1d", params={"members": 3}),
        train=SCRATCH_TRAIN,
        augment=AugmentConfig(speed=0.1),
    ),
}


def preset(name: str) -> RunConfig:
    """The named preset; an unknown name lists the valid ones."""
    if name == "encoder":  # its name before it became the default
        raise ParameterError("preset 'encoder' is now the default preset: use --preset default (or no --preset)")
    if name not in PRESETS:
        raise ParameterError(f"unknown preset {name!r}; choose one of: {', '.join(PRESETS)}")
    return PRESETS[name]
