"""Config sections of the realism effects (beyond the paper, opt-in; all off in paper.yaml).

Blocks of :class:`keras_inst.config.schema.EffectsConfig`, applied by
:mod:`keras_inst.augment.realism`; each has a probability (0: off) and parameter ranges.
"""

from __future__ import annotations

from dataclasses import dataclass

from keras_inst.config.checks import check as _check
from keras_inst.config.checks import check_prob as _check_prob
from keras_inst.config.checks import check_range as _check_range


@dataclass(frozen=True)
class ReverbConfig:
    """Room reverb (beyond the paper): ONE synthetic room per mix, a send level per source.

    The impulse response is exponentially decaying noise (RT60 drawn per mix) after a pre-delay;
    each source sends ``send`` of its signal to the room and keeps ``1 - send`` dry.
    """

    probability: float = 0.0  # per mix
    rt60_s: tuple[float, float] = (0.2, 1.0)  # log-uniform
    predelay_ms: tuple[float, float] = (0.0, 20.0)
    send: tuple[float, float] = (0.1, 0.5)  # wet fraction per source

    def __post_init__(self) -> None:
        k = "effects.reverb."
        _check_prob(self.probability, k + "probability")
        _check_range(self.rt60_s, k + "rt60_s", lo=0.05)
        _check(self.rt60_s[1] <= 2.0, k + "rt60_s", f"must be <= 2 s (the rooms are 2 s long), got {list(self.rt60_s)}")
        _check_range(self.predelay_ms, k + "predelay_ms", lo=0.0)
        _check(self.predelay_ms[1] <= 200.0, k + "predelay_ms", f"must be <= 200 ms, got {list(self.predelay_ms)}")
        _check_range(self.send, k + "send", lo=0.0)
        _check(self.send[1] <= 1.0, k + "send", f"must be <= 1, got {list(self.send)}")


@dataclass(frozen=True)
class CompressorConfig:
    """Feed-forward compressor per source (beyond the paper), with make-up gain to the source's
    RMS. ``threshold_db`` is relative to the source's RMS over the chunk (scale-invariant)."""

    probability: float = 0.0
    threshold_db: tuple[float, float] = (-6.0, 6.0)
    ratio: tuple[float, float] = (2.0, 8.0)  # log-uniform
    attack_ms: tuple[float, float] = (2.0, 30.0)  # log-uniform
    release_ms: tuple[float, float] = (50.0, 300.0)  # log-uniform

    def __post_init__(self) -> None:
        k = "effects.compressor."
        _check_prob(self.probability, k + "probability")
        _check_range(self.threshold_db, k + "threshold_db")
        _check_range(self.ratio, k + "ratio", lo=1.0)
        _check_range(self.attack_ms, k + "attack_ms", lo=0.1)
        _check_range(self.release_ms, k + "release_ms", lo=10.0)


@dataclass(frozen=True)
class SaturationConfig:
    """tanh saturation ("amp distortion") per source, level-compensated, then a 2nd-order
    low-pass "cabinet" tone at ``tone_hz`` (beyond the paper). ``instruments``: taxonomy class
    names whose sources may be saturated (empty: every source)."""

    probability: float = 0.0
    drive_db: tuple[float, float] = (6.0, 30.0)
    tone_hz: tuple[float, float] = (2500.0, 7000.0)  # log-uniform
    instruments: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        k = "effects.saturation."
        _check_prob(self.probability, k + "probability")
        _check_range(self.drive_db, k + "drive_db", lo=0.0)
        _check_range(self.tone_hz, k + "tone_hz", lo=20.0)


@dataclass(frozen=True)
class BandLimitConfig:
    """Codec-like low-pass per source (beyond the paper): a zero-phase Butterworth magnitude of
    ``order`` (6 dB/octave per order) at a cutoff drawn log-uniform in ``cutoff_hz``."""

    probability: float = 0.0
    cutoff_hz: tuple[float, float] = (3000.0, 7500.0)
    order: int = 8

    def __post_init__(self) -> None:
        k = "effects.band_limit."
        _check_prob(self.probability, k + "probability")
        _check_range(self.cutoff_hz, k + "cutoff_hz", lo=20.0)
        _check(1 <= self.order <= 32, k + "order", f"must be in [1, 32], got {self.order}")


@dataclass(frozen=True)
class NoiseConfig:
    """Additive noise per source at an SNR (dB, re the source's power over the chunk) drawn in
    ``snr_db`` (beyond the paper); pink (1/f) with ``p_pink``, else white."""

    probability: float = 0.0
    snr_db: tuple[float, float] = (15.0, 40.0)
    p_pink: float = 0.5

    def __post_init__(self) -> None:
        k = "effects.noise."
        _check_prob(self.probability, k + "probability")
        _check_range(self.snr_db, k + "snr_db")
        _check_prob(self.p_pink, k + "p_pink")


@dataclass(frozen=True)
class MixBusConfig:
    """The mix bus of a mastered recording (beyond the paper), per mix after every per-source
    effect and the room, before the pipeline's peak normalisation: bus compression
    (``threshold_db`` re the mix's RMS), gain to a loudness drawn in ``target_lufs`` (ungated
    BS.1770: K-weighted mean square over the chunk), at most ``max_gain_db``, then a look-ahead
    peak limiter to ``ceiling_db`` dBFS."""

    probability: float = 0.0  # per mix
    threshold_db: tuple[float, float] = (-10.0, -2.0)
    ratio: tuple[float, float] = (1.5, 4.0)  # log-uniform: glue, not squash
    attack_ms: tuple[float, float] = (5.0, 30.0)  # log-uniform
    release_ms: tuple[float, float] = (50.0, 400.0)  # log-uniform
    target_lufs: tuple[float, float] = (-14.0, -8.0)  # streaming level to loud modern masters
    ceiling_db: float = -1.0  # true-peak-style headroom of masters
    max_gain_db: float = 30.0  # a near-silent mix is not raised into loud noise

    def __post_init__(self) -> None:
        k = "effects.mix_bus."
        _check_prob(self.probability, k + "probability")
        _check_range(self.threshold_db, k + "threshold_db")
        _check(self.threshold_db[1] <= 20.0, k + "threshold_db", f"must be <= 20 dB re the mix's RMS, got {list(self.threshold_db)}")
        _check_range(self.ratio, k + "ratio", lo=1.0)
        _check_range(self.attack_ms, k + "attack_ms", lo=0.1)
        _check_range(self.release_ms, k + "release_ms", lo=10.0)
        _check_range(self.target_lufs, k + "target_lufs", lo=-70.0)
        _check(self.target_lufs[1] <= 0.0, k + "target_lufs", f"must be <= 0 LUFS, got {list(self.target_lufs)}")
        _check(-30.0 <= self.ceiling_db <= 0.0, k + "ceiling_db", f"must be in [-30, 0] dBFS, got {self.ceiling_db}")
        _check(self.max_gain_db >= 0.0, k + "max_gain_db", f"must be >= 0 dB, got {self.max_gain_db}")
