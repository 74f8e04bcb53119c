"""Experiment configuration: frozen, validated dataclasses holding every number of a run.

One :class:`ExperimentConfig` holds every number of a run (DDSP-style), in sections
(:class:`AudioConfig`, :class:`FeaturesConfig`, ...); each section checks its values when built
(bad values raise ``ValueError`` naming the key). Loading from YAML with ``--set`` overrides,
conversion to and from dicts and saving are in :mod:`keras_inst.config.io`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from keras_inst.config.checks import check as _check
from keras_inst.config.checks import check_prob as _check_prob
from keras_inst.config.checks import check_range as _check_range
from keras_inst.config.data import DEFAULT_SONG_STYLES, HELD_OUT_ENGINES, SONG_STYLES, DataConfig  # noqa: F401 (re-exported)
from keras_inst.config.realism import (
    BandLimitConfig,
    CompressorConfig,
    MixBusConfig,
    NoiseConfig,
    ReverbConfig,
    SaturationConfig,
)
from keras_inst.config.registry import BACKBONES, PRETRAINED

TRANSFER_MODES = ("scratch", "frozen", "finetune")
STRATEGIES = ("default", "mirrored", "multi_worker")  # keras_inst.training.distribute
EFFECTS_IN = ("pipeline", "train_step")  # keras_inst.training.step_effects
FUSION_SPACES = ("probability", "logit")  # model.fusion_space: keras_inst.models.fusion_layers.TagFusion
DEFAULT_FUSION_SPACE = "probability"  # also what runs fused before model.fusion_space existed used


@dataclass(frozen=True)
class AudioConfig:
    """Sample rate and chunk length of model inputs (paper: 16 kHz, 4-second chunks)."""

    sample_rate: int = 16000
    chunk_seconds: float = 4.0

    @property
    def chunk_samples(self) -> int:
        return int(round(self.sample_rate * self.chunk_seconds))

    def __post_init__(self) -> None:
        _check(self.sample_rate >= 4000, "audio.sample_rate", f"must be >= 4000 Hz, got {self.sample_rate}")
        _check(self.chunk_seconds > 0, "audio.chunk_seconds", f"must be > 0, got {self.chunk_seconds}")


@dataclass(frozen=True)
class FeaturesConfig:
    """Log-mel front end (paper: window 512, hop 256, 128 mel bins)."""

    n_fft: int = 512
    win_length: int | None = None  # None: n_fft
    hop_length: int = 256
    n_mels: int = 128
    f_min: float = 0.0
    f_max: float | None = 8000.0  # None: Nyquist
    mel_scale: str = "htk"  # htk | slaney
    mel_norm: str | None = None  # None | slaney (area normalisation of the triangles)
    center: bool = True
    pad_mode: str = "reflect"  # reflect | constant
    power: float = 2.0
    compression: str = "db"  # db: 10*log10(max(x, amin)) for power 2, 20*log10 for power 1 | log10: log10(1 + log_c*x)
    amin: float = 1e-10
    top_db: float | None = None  # per example, never per batch
    log_c: float = 10000.0

    def __post_init__(self) -> None:
        k = "features."
        _check(self.n_fft >= 16, k + "n_fft", f"must be >= 16, got {self.n_fft}")
        win = self.win_length if self.win_length is not None else self.n_fft
        _check(0 < win <= self.n_fft, k + "win_length", f"must be in (0, n_fft={self.n_fft}], got {win}")
        _check(self.hop_length > 0, k + "hop_length", f"must be > 0, got {self.hop_length}")
        _check(self.n_mels > 0, k + "n_mels", f"must be > 0, got {self.n_mels}")
        _check(self.f_min >= 0, k + "f_min", f"must be >= 0, got {self.f_min}")
        if self.f_max is not None:
            _check(self.f_max > self.f_min, k + "f_max", f"must be > f_min={self.f_min}, got {self.f_max}")
        _check(self.mel_scale in ("htk", "slaney"), k + "mel_scale", f"must be 'htk' or 'slaney', got {self.mel_scale!r}")
        _check(self.mel_norm in (None, "slaney"), k + "mel_norm", f"must be null or 'slaney', got {self.mel_norm!r}")
        _check(self.pad_mode in ("reflect", "constant"), k + "pad_mode", f"must be 'reflect' or 'constant', got {self.pad_mode!r}")
        _check(self.power in (1.0, 2.0), k + "power", f"must be 1 (magnitude) or 2 (power), got {self.power}")
        _check(self.compression in ("db", "log10"), k + "compression", f"must be 'db' or 'log10', got {self.compression!r}")
        _check(self.amin > 0, k + "amin", f"must be > 0, got {self.amin}")
        _check(self.top_db is None or self.top_db > 0, k + "top_db", f"must be null or > 0, got {self.top_db}")
        _check(self.log_c > 0, k + "log_c", f"must be > 0, got {self.log_c}")


@dataclass(frozen=True)
class ModelConfig:
    """Backbone and head (paper §2.1: 7 conv blocks, 512-d embedding, FC head)."""

    architecture: str = "short_chunk_cnn"  # a name of keras_inst.config.registry.BACKBONES
    channels: tuple[int, ...] = (128, 128, 256, 256, 256, 256, 512)
    width_multiplier: float = 1.0
    head_units: int = 512
    dropout: float = 0.5
    # [open] beyond the paper, opt-in: after training, average the classifier with musicnn's tagger
    # read zero-shot (a musicnn name of training.pretrained) where its tags name the class, with
    # weight fusion_weight for the tagger (keras_inst.models.fusion); thresholds, presence rule,
    # model.keras and exports are those of the fused model.
    fusion_tagger: str | None = None
    fusion_weight: float = 0.5
    # [open] where the two are averaged: "probability" (p = (1-w) p_model + w p_tagger) or "logit"
    # (the fused logit is the weighted mean of the two logits: neither model's scale dominates)
    fusion_space: str = DEFAULT_FUSION_SPACE
    # [open] the tagger's weight for classes whose tags name only some of their instruments
    # (keras_inst.models.tagger.PARTIAL_EVIDENCE: MTT's woodwind is 'flute' alone); null: fusion_weight
    fusion_partial_weight: float | None = None

    def __post_init__(self) -> None:
        k = "model."
        if self.fusion_tagger is not None:
            PRETRAINED.check(self.fusion_tagger, k + "fusion_tagger")
        _check(0.0 < self.fusion_weight <= 1.0, k + "fusion_weight", f"must be in (0, 1], got {self.fusion_weight}")
        _check(self.fusion_partial_weight is None or 0.0 <= self.fusion_partial_weight <= 1.0, k + "fusion_partial_weight",
               f"must be in [0, 1] or null, got {self.fusion_partial_weight}")
        _check(self.fusion_space in FUSION_SPACES, k + "fusion_space",
               f"must be one of {', '.join(FUSION_SPACES)}, got {self.fusion_space!r}")
        BACKBONES.check(self.architecture, k + "architecture")
        _check(len(self.channels) >= 1 and all(c > 0 for c in self.channels), k + "channels", f"must be positive ints, got {list(self.channels)}")
        _check(self.width_multiplier > 0, k + "width_multiplier", f"must be > 0, got {self.width_multiplier}")
        _check(self.head_units > 0, k + "head_units", f"must be > 0, got {self.head_units}")
        _check(0.0 <= self.dropout < 1.0, k + "dropout", f"must be in [0, 1), got {self.dropout}")


@dataclass(frozen=True)
class MixingConfig:
    """On-the-fly mixing (paper §2.3)."""

    p_musical: float = 0.4
    p_single_source: float = 0.2
    min_sources: int = 2
    max_sources: int = 6
    dataset_weights: tuple[float, ...] | None = None  # None: equal weight per dataset (paper: 1/3 each)
    p_prefer_audible: float = 0.9  # probability that a chunk position is drawn among audible ones
    activity_threshold_db: float = -40.0  # frame RMS relative to the stem's loudest frame
    min_active_fraction: float = 0.1  # a stem counts as audible in a chunk above this fraction of active frames
    peak_normalize: float = 0.95  # mixes whose peak exceeds this are scaled down to it
    eval_chunks_per_song: int = 8  # validation/test: musical chunks per song
    # Beyond the paper: non-musical stems drawn with weight (share of their rarest class) ** -x;
    # 0 = the paper's uniform draw (keras_inst.data.balance).
    stem_balance: float = 0.0

    def __post_init__(self) -> None:
        k = "mixing."
        _check_prob(self.p_musical, k + "p_musical")
        _check_prob(self.p_single_source, k + "p_single_source")
        _check_prob(self.p_prefer_audible, k + "p_prefer_audible")
        _check(self.min_sources >= 1, k + "min_sources", f"must be >= 1, got {self.min_sources}")
        _check(self.max_sources >= self.min_sources, k + "max_sources", f"must be >= min_sources={self.min_sources}, got {self.max_sources}")
        if self.dataset_weights is not None:
            _check(all(w >= 0 for w in self.dataset_weights) and sum(self.dataset_weights) > 0, k + "dataset_weights", f"must be non-negative with a positive sum, got {list(self.dataset_weights)}")
        _check(self.activity_threshold_db < 0, k + "activity_threshold_db", f"must be < 0 dB, got {self.activity_threshold_db}")
        _check(0.0 <= self.min_active_fraction <= 1.0, k + "min_active_fraction", f"must be in [0, 1], got {self.min_active_fraction}")
        _check(0.0 < self.peak_normalize <= 1.0, k + "peak_normalize", f"must be in (0, 1], got {self.peak_normalize}")
        _check(self.eval_chunks_per_song >= 1, k + "eval_chunks_per_song", f"must be >= 1, got {self.eval_chunks_per_song}")
        _check(0.0 <= self.stem_balance <= 1.0, k + "stem_balance", f"must be in [0, 1] (0: the paper's uniform draw, 1: "
               f"classes equally often), got {self.stem_balance}")


AMBIENCE_TEXTURES = ("rain", "surf", "wind", "rumble")  # keras_inst.augment.ambience


@dataclass(frozen=True)
class AmbienceConfig:
    """Non-music ambience in training (beyond the paper, keras_inst.augment.ambience): with
    ``probability`` a training mix gets a procedural bed (one of ``textures``, equally likely)
    at an SNR drawn in ``snr_db`` (mix power re bed power; labels unchanged); with
    ``negative_probability`` a training example holds no source at all, only a bed at an RMS
    level drawn in ``negative_level_db`` (dBFS), and all its labels are 0."""

    probability: float = 0.0  # per training mix
    snr_db: tuple[float, float] = (0.0, 30.0)  # as loud as the music to barely audible
    negative_probability: float = 0.0  # per training example
    negative_level_db: tuple[float, float] = (-40.0, -10.0)  # RMS dBFS of a negative's bed (the demo corpus's mixes: -29..-14, 5-95 %)
    textures: tuple[str, ...] = AMBIENCE_TEXTURES

    def __post_init__(self) -> None:
        k = "effects.ambience."
        _check_prob(self.probability, k + "probability")
        _check_prob(self.negative_probability, k + "negative_probability")
        _check(self.negative_probability < 1.0, k + "negative_probability", f"must be < 1 (some examples must hold instruments), got {self.negative_probability}")
        _check_range(self.snr_db, k + "snr_db")
        _check_range(self.negative_level_db, k + "negative_level_db", lo=-100.0)
        _check(self.negative_level_db[1] <= 0.0, k + "negative_level_db", f"must be <= 0 dBFS, got {list(self.negative_level_db)}")
        unknown = [t for t in self.textures if t not in AMBIENCE_TEXTURES]
        _check(bool(self.textures) and not unknown and len(set(self.textures)) == len(self.textures), k + "textures",
               f"must be distinct names among {', '.join(AMBIENCE_TEXTURES)}, got {list(self.textures)}")


@dataclass(frozen=True)
class EffectsConfig:
    """Random effects per source (paper §2.3); each has its own probability and range."""

    p_gain: float = 0.5
    gain_db: tuple[float, float] = (-9.0, 3.0)
    p_low_shelf: float = 0.25
    low_shelf_hz: tuple[float, float] = (80.0, 400.0)
    low_shelf_db: tuple[float, float] = (-12.0, 12.0)
    p_high_shelf: float = 0.25
    high_shelf_hz: tuple[float, float] = (2000.0, 6000.0)
    high_shelf_db: tuple[float, float] = (-12.0, 12.0)
    p_peaking: float = 0.25
    peaking_hz: tuple[float, float] = (200.0, 5000.0)
    peaking_db: tuple[float, float] = (-12.0, 12.0)
    peaking_q: tuple[float, float] = (0.5, 3.0)
    p_pitch_shift: float = 0.3
    pitch_semitones: tuple[float, float] = (-3.0, 3.0)
    p_time_stretch: float = 0.3
    stretch_rate: tuple[float, float] = (0.8, 1.25)
    # Realism effects beyond the paper (keras_inst.augment.realism): off by default.
    reverb: ReverbConfig = field(default_factory=ReverbConfig)
    compressor: CompressorConfig = field(default_factory=CompressorConfig)
    saturation: SaturationConfig = field(default_factory=SaturationConfig)
    band_limit: BandLimitConfig = field(default_factory=BandLimitConfig)
    noise: NoiseConfig = field(default_factory=NoiseConfig)
    mix_bus: MixBusConfig = field(default_factory=MixBusConfig)  # per mix, after the room
    ambience: AmbienceConfig = field(default_factory=AmbienceConfig)  # per mix, after the bus; negatives

    def __post_init__(self) -> None:
        k = "effects."
        for name in ("p_gain", "p_low_shelf", "p_high_shelf", "p_peaking", "p_pitch_shift", "p_time_stretch"):
            _check_prob(getattr(self, name), k + name)
        for name in ("gain_db", "low_shelf_db", "high_shelf_db", "peaking_db", "pitch_semitones"):
            _check_range(getattr(self, name), k + name)
        for name in ("low_shelf_hz", "high_shelf_hz", "peaking_hz"):
            _check_range(getattr(self, name), k + name, lo=1.0)
        _check_range(self.peaking_q, k + "peaking_q", lo=0.05)
        _check_range(self.stretch_rate, k + "stretch_rate", lo=0.25)
        _check(self.stretch_rate[1] <= 4.0, k + "stretch_rate", f"must be <= 4, got {list(self.stretch_rate)}")


@dataclass(frozen=True)
class OptimizerConfig:
    """Adam with a step schedule and per-group learning rates (paper §3.1)."""

    name: str = "adam"
    head_learning_rate: float = 0.01
    backbone_learning_rate: float = 0.0001  # finetune only; scratch uses head_learning_rate
    lr_step_epochs: int = 20
    lr_decay_factor: float = 0.1
    clipnorm: float | None = None

    def __post_init__(self) -> None:
        k = "optimizer."
        _check(self.name in ("adam",), k + "name", f"only 'adam' (the paper's) is supported, got {self.name!r}")
        _check(self.head_learning_rate > 0, k + "head_learning_rate", f"must be > 0, got {self.head_learning_rate}")
        _check(self.backbone_learning_rate >= 0, k + "backbone_learning_rate", f"must be >= 0, got {self.backbone_learning_rate}")
        _check(self.lr_step_epochs >= 1, k + "lr_step_epochs", f"must be >= 1, got {self.lr_step_epochs}")
        _check(0 < self.lr_decay_factor <= 1, k + "lr_decay_factor", f"must be in (0, 1], got {self.lr_decay_factor}")
        _check(self.clipnorm is None or self.clipnorm > 0, k + "clipnorm", f"must be null or > 0, got {self.clipnorm}")


@dataclass(frozen=True)
class TrainingConfig:
    """Transfer-learning mode (paper §2.4) and the fit loop."""

    transfer: str = "finetune"  # scratch | frozen | finetune
    # [open] beyond the paper, opt-in: with transfer=finetune, train only the backbone's last n
    # blocks (and the head); the earlier ones stay frozen, batch norm in inference mode.
    # Blocks per backbone: keras_inst.models.blocks. None: the whole backbone (the paper's).
    trainable_blocks: int | None = None
    pretrained: str | None = None  # None | a name of keras_inst.config.registry.PRETRAINED
    pretrained_path: str | None = None  # weights file / checkpoint folder; None: default location
    epochs: int = 100
    steps_per_epoch: int = 500
    batch_size: int = 16
    seed: int = 0
    mixed_precision: str | None = None  # None | mixed_bfloat16 | mixed_float16 (loss scaling: automatic)
    strategy: str = "default"  # default | mirrored (GPUs of one host) | multi_worker (TF_CONFIG)
    num_parallel_calls: int | None = None  # None: tf.data.AUTOTUNE
    effects_in: str = "pipeline"  # pipeline (CPU) | train_step (the training step's device, e.g. a GPU)
    # [open] beyond the paper, opt-in: learning without forgetting (keras_inst.training.distill).
    # The loss adds distill_weight * BCE(the fine-tuned backbone read by the teacher's frozen
    # 50-tag layer, the frozen teacher tagger's tags) on each training mix; 0: off.
    distill_weight: float = 0.0
    distill_teacher: str | None = None  # a musicnn tagger name; None: training.pretrained's own

    def __post_init__(self) -> None:
        k = "training."
        _check(self.transfer in TRANSFER_MODES, k + "transfer", f"must be one of {', '.join(TRANSFER_MODES)}, got {self.transfer!r}")
        if self.pretrained is not None:
            PRETRAINED.check(self.pretrained, k + "pretrained")
        _check(self.transfer == "scratch" or self.pretrained is not None, k + "pretrained", f"transfer={self.transfer!r} needs a pretrained backbone; set training.pretrained or use transfer=scratch")
        _check(self.trainable_blocks is None or self.trainable_blocks >= 1, k + "trainable_blocks",
               f"must be null or >= 1 (0 trainable blocks is training.transfer=frozen), got {self.trainable_blocks}")
        _check(self.trainable_blocks is None or self.transfer == "finetune", k + "trainable_blocks",
               f"only applies to training.transfer=finetune (got {self.transfer!r}); set it to null")
        _check(self.epochs >= 1, k + "epochs", f"must be >= 1, got {self.epochs}")
        _check(self.steps_per_epoch >= 1, k + "steps_per_epoch", f"must be >= 1, got {self.steps_per_epoch}")
        _check(self.batch_size >= 1, k + "batch_size", f"must be >= 1, got {self.batch_size}")
        _check(self.mixed_precision in (None, "mixed_bfloat16", "mixed_float16"), k + "mixed_precision", f"must be null, mixed_bfloat16 or mixed_float16, got {self.mixed_precision!r}")
        _check(self.strategy in STRATEGIES, k + "strategy", f"must be one of {', '.join(STRATEGIES)}, got {self.strategy!r}")
        _check(self.effects_in in EFFECTS_IN, k + "effects_in", f"must be one of {', '.join(EFFECTS_IN)}, got {self.effects_in!r}")
        _check(self.distill_weight >= 0, k + "distill_weight", f"must be >= 0, got {self.distill_weight}")
        if self.distill_teacher is not None:
            PRETRAINED.check(self.distill_teacher, k + "distill_teacher")
        _check(self.distill_weight == 0 or self.distill_teacher is not None or self.pretrained is not None,
               k + "distill_teacher", "distillation (training.distill_weight > 0) needs a teacher: set it or training.pretrained")


@dataclass(frozen=True)
class TunerConfig:
    """keras-tuner search over p_musical (paper §3.2, Fig. 2)."""

    p_musical_values: tuple[float, ...] = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
    seeds: int = 4
    objective: str = "val_roc_auc"
    epochs: int = 100

    def __post_init__(self) -> None:
        k = "tuner."
        _check(len(self.p_musical_values) >= 1, k + "p_musical_values", "must name at least one value")
        for v in self.p_musical_values:
            _check_prob(v, k + "p_musical_values")
        _check(self.seeds >= 1, k + "seeds", f"must be >= 1, got {self.seeds}")
        _check(self.epochs >= 1, k + "epochs", f"must be >= 1, got {self.epochs}")


@dataclass(frozen=True)
class EvaluationConfig:
    """[open] beyond the paper, opt-in: what a training run's report adds to the test split."""

    # labels.json of a real-recording probe (../shared/real_dev/labels.json: clip -> positive /
    # negative classes, "file" relative to it); its clips are run as predict runs files and
    # scored per class over clips (keras_inst.training.probe). Relative: from the working folder.
    probe: str | None = None
    # A zero-shot musicnn tagger (keras_inst.models.tagger) scored on the same data as the model,
    # as one more row of the report's tables; "pretrained": training.pretrained's own tagger.
    tagger_row: str | None = None

    def __post_init__(self) -> None:
        if self.tagger_row not in (None, "pretrained"):
            PRETRAINED.check(self.tagger_row, "evaluation.tagger_row")

    def tagger_name(self, pretrained: str | None) -> str | None:
        """The tagger of the extra row (``pretrained``: training.pretrained), or None."""
        name = pretrained if self.tagger_row == "pretrained" else self.tagger_row
        _check(self.tagger_row is None or name is not None, "evaluation.tagger_row",
               "'pretrained' needs training.pretrained to name a musicnn checkpoint")
        return name


@dataclass(frozen=True)
class ExperimentConfig:
    """Every number of one experiment."""

    name: str = "experiment"
    audio: AudioConfig = field(default_factory=AudioConfig)
    features: FeaturesConfig = field(default_factory=FeaturesConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    mixing: MixingConfig = field(default_factory=MixingConfig)
    effects: EffectsConfig = field(default_factory=EffectsConfig)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    tuner: TunerConfig = field(default_factory=TunerConfig)
    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)

    def __post_init__(self) -> None:
        w = self.mixing.dataset_weights
        _check(w is None or len(w) == len(self.data.datasets), "mixing.dataset_weights", f"must have one weight per dataset in data.datasets ({len(self.data.datasets)}), got {None if w is None else list(w)}")
        f_max = self.features.f_max
        _check(f_max is None or f_max <= self.audio.sample_rate / 2, "features.f_max", f"must be <= Nyquist ({self.audio.sample_rate / 2}), got {f_max}")

    def replace(self, **sections: Any) -> ExperimentConfig:
        return dataclasses.replace(self, **sections)

