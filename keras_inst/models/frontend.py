"""In-graph log-mel front end (paper §2.1: window 512, hop 256, 128 mel bins).

:class:`LogMelSpectrogram` turns a float32 waveform ``[batch, samples]`` into a log-mel
spectrogram ``[batch, n_mels, frames]`` inside the Keras graph, so a saved model or a TFLite
export takes raw audio. It reproduces torchaudio's ``MelSpectrogram`` + ``AmplitudeToDB``
(``mel_scale="htk"``, the reference short-chunk CNN's front end) and librosa's
``feature.melspectrogram`` (``mel_scale="slaney"``, musicnn's front end), so weights trained
on those transfer: the mel matrix is built in NumPy with their formulas, not with
``tf.signal.linear_to_mel_weight_matrix`` (which draws the triangles in mel space and zeroes
the DC bin). Requires the TensorFlow backend; converts to TFLite with builtin ops only
(MIRROR_PAD, RFFT2D, REAL, IMAG, BATCH_MATMUL, LOG, REDUCE_MAX) when ``n_fft`` is a power of 2.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from keras_inst.config.schema import AudioConfig, FeaturesConfig

_LN10 = math.log(10.0)


def hz_to_mel(freqs: np.ndarray | float, *, scale: str) -> np.ndarray:
    """Hz -> mel, HTK (``2595 log10(1 + f/700)``) or Slaney (linear below 1 kHz, log above)."""
    f = np.asarray(freqs, dtype=np.float64)
    if scale == "htk":
        return 2595.0 * np.log10(1.0 + f / 700.0)
    if scale == "slaney":
        f_sp = 200.0 / 3.0  # Hz per mel in the linear part
        min_log_hz = 1000.0
        min_log_mel = min_log_hz / f_sp
        logstep = math.log(6.4) / 27.0
        lin = f / f_sp
        log = min_log_mel + np.log(np.maximum(f, min_log_hz) / min_log_hz) / logstep
        return np.where(f >= min_log_hz, log, lin)
    raise ValueError(f"mel scale must be 'htk' or 'slaney', got {scale!r}")


def mel_to_hz(mels: np.ndarray | float, *, scale: str) -> np.ndarray:
    """Inverse of :func:`hz_to_mel`."""
    m = np.asarray(mels, dtype=np.float64)
    if scale == "htk":
        return 700.0 * (10.0 ** (m / 2595.0) - 1.0)
    if scale == "slaney":
        f_sp = 200.0 / 3.0
        min_log_hz = 1000.0
        min_log_mel = min_log_hz / f_sp
        logstep = math.log(6.4) / 27.0
        log = min_log_hz * np.exp(logstep * (m - min_log_mel))
        return np.where(m >= min_log_mel, log, f_sp * m)
    raise ValueError(f"mel scale must be 'htk' or 'slaney', got {scale!r}")


def mel_filterbank(
    *,
    sample_rate: int,
    n_fft: int,
    n_mels: int,
    f_min: float,
    f_max: float | None,
    scale: str,
    norm: str | None,
) -> np.ndarray:
    """Mel weights ``[n_fft // 2 + 1, n_mels]`` (float32), torchaudio/librosa style.

    Triangles are linear in Hz between edges equally spaced on the mel scale and evaluated at
    the FFT bin frequencies (DC included), as ``torchaudio.functional.melscale_fbanks`` and
    ``librosa.filters.mel`` do. ``norm="slaney"`` divides each triangle by its width in Hz / 2
    (constant energy per band).
    """
    if norm not in (None, "slaney"):
        raise ValueError(f"mel norm must be None or 'slaney', got {norm!r}")
    f_max = sample_rate / 2.0 if f_max is None else float(f_max)
    if not 0.0 <= f_min < f_max <= sample_rate / 2.0:
        raise ValueError(
            f"mel filterbank needs 0 <= f_min < f_max <= Nyquist ({sample_rate / 2}), "
            f"got f_min={f_min}, f_max={f_max}"
        )
    fft_freqs = np.linspace(0.0, sample_rate / 2.0, n_fft // 2 + 1)  # [F]
    mel_edges = np.linspace(
        hz_to_mel(f_min, scale=scale), hz_to_mel(f_max, scale=scale), n_mels + 2
    )
    hz_edges = mel_to_hz(mel_edges, scale=scale)  # [M + 2]
    widths = np.diff(hz_edges)  # [M + 1]
    ramps = hz_edges[None, :] - fft_freqs[:, None]  # [F, M + 2]
    lower = -ramps[:, :-2] / widths[:-1]  # rising edge of each triangle, [F, M]
    upper = ramps[:, 2:] / widths[1:]  # falling edge, [F, M]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    if norm == "slaney":
        weights *= 2.0 / (hz_edges[2:] - hz_edges[:-2])[None, :]
    return weights.astype(np.float32)


def analysis_window(*, win_length: int, n_fft: int) -> np.ndarray:
    """Periodic Hann window of ``win_length`` zero-padded to ``n_fft``, centred (torch/librosa)."""
    n = np.arange(win_length, dtype=np.float64)
    hann = 0.5 - 0.5 * np.cos(2.0 * np.pi * n / win_length)
    left = (n_fft - win_length) // 2
    return np.pad(hann, (left, n_fft - win_length - left)).astype(np.float32)


def num_frames(num_samples: int, *, n_fft: int, hop_length: int, center: bool) -> int:
    """STFT frames for ``num_samples`` samples (``1 + samples // hop`` when centred, even n_fft)."""
    padded = num_samples + 2 * (n_fft // 2) if center else num_samples
    if padded < n_fft:
        raise ValueError(
            f"{num_samples} samples are too short for n_fft={n_fft} (center={center}): "
            "need at least one full frame"
        )
    return 1 + (padded - n_fft) // hop_length


@keras.saving.register_keras_serializable(package="keras_inst")
class LogMelSpectrogram(keras.layers.Layer):
    """Waveform ``[batch, samples]`` -> log-mel ``[batch, n_mels, frames]``, always float32.

    Described by one :class:`FeaturesConfig` (default: the paper's) and the audio's
    ``sample_rate``. Mel bins come first, then time (the backbone adds the channel axis),
    matching the ``[B, 1, F, T]`` layout of the PyTorch reference model. ``top_db`` clips each
    example relative to its own maximum, so an example's features never depend on its
    batch-mates. ``compression="db"`` gives decibels: ``10 log10`` of power (``power=2``) or
    ``20 log10`` of magnitude (``power=1``), floored at ``amin``; ``"log10"`` gives
    ``log10(1 + log_c * mel)``. The layer has no weights; its mel matrix is a constant rebuilt
    from the config (``get_config()["features"]`` holds the FeaturesConfig's fields).
    """

    def __init__(
        self,
        features: FeaturesConfig | Mapping[str, Any] | None = None,
        *,
        sample_rate: int = 16000,
        **kwargs: Any,
    ) -> None:
        # dB of power spectra needs float32 (bf16 has 8 mantissa bits, float16 overflows at
        # 65504), so the layer ignores a mixed-precision global policy.
        dtype = kwargs.pop("dtype", None)
        if dtype is not None:
            policy = keras.dtype_policies.get(dtype)
            if (policy.compute_dtype, policy.variable_dtype) != ("float32", "float32"):
                raise ValueError(
                    f"LogMelSpectrogram always computes in float32; got dtype policy {policy.name!r}"
                )
        super().__init__(dtype="float32", **kwargs)
        if features is None:
            features = FeaturesConfig()
        elif isinstance(features, Mapping):  # from get_config (a saved model)
            try:
                features = FeaturesConfig(**features)
            except (TypeError, ValueError) as e:
                raise ValueError(f"LogMelSpectrogram: features: {e}") from None
        elif not isinstance(features, FeaturesConfig):
            raise ValueError(f"LogMelSpectrogram: features must be a FeaturesConfig, got {features!r}")
        if int(sample_rate) <= 0:
            raise ValueError(f"LogMelSpectrogram: sample_rate must be > 0, got {sample_rate}")
        self.features = features
        self.sample_rate = int(sample_rate)
        win = features.win_length if features.win_length is not None else features.n_fft
        self._window = analysis_window(win_length=win, n_fft=features.n_fft)  # [n_fft]
        self._mel_matrix = mel_filterbank(
            sample_rate=self.sample_rate,
            n_fft=features.n_fft,
            n_mels=features.n_mels,
            f_min=features.f_min,
            f_max=features.f_max,
            scale=features.mel_scale,
            norm=features.mel_norm,
        )  # [n_fft // 2 + 1, n_mels]

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> LogMelSpectrogram:
        config = dict(config)
        # Models saved before the layer took a FeaturesConfig hold its fields at the top level.
        flat = {f.name: config.pop(f.name) for f in dataclasses.fields(FeaturesConfig)
                if f.name in config}
        if flat:
            config["features"] = {**config.get("features", {}), **flat}
        return cls(**config)

    @property
    def mel_matrix(self) -> np.ndarray:
        """The mel weights ``[n_fft // 2 + 1, n_mels]`` (a copy)."""
        return self._mel_matrix.copy()

    def _frames(self, num_samples: int) -> int:
        if self.features.center and self.features.pad_mode == "reflect" and num_samples <= self.features.n_fft // 2:
            raise ValueError(
                f"LogMelSpectrogram: reflect padding by n_fft//2={self.features.n_fft // 2} needs more "
                f"than {self.features.n_fft // 2} samples, got {num_samples}"
            )
        return num_frames(
            num_samples, n_fft=self.features.n_fft, hop_length=self.features.hop_length, center=self.features.center
        )

    def build(self, input_shape: tuple[int | None, ...]) -> None:
        if len(input_shape) != 2 or input_shape[-1] is None:
            raise ValueError(
                "LogMelSpectrogram expects a waveform [batch, samples] with a static number of "
                f"samples, got shape {tuple(input_shape)}"
            )
        self._frames(int(input_shape[-1]))

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        return (input_shape[0], self.features.n_mels, self._frames(int(input_shape[-1])))

    def call(self, inputs: tf.Tensor) -> tf.Tensor:
        x = tf.cast(inputs, tf.float32)  # [B, S]
        if self.features.center:
            pad = self.features.n_fft // 2
            x = tf.pad(x, [[0, 0], [pad, pad]], mode=self.features.pad_mode.upper())  # [B, S + 2*pad]
        window = tf.constant(self._window)
        stft = tf.signal.stft(
            x,
            frame_length=self.features.n_fft,
            frame_step=self.features.hop_length,
            fft_length=self.features.n_fft,
            window_fn=lambda *_args, **_kw: window,
            pad_end=False,
        )  # [B, T, n_fft // 2 + 1] complex64
        real, imag = tf.math.real(stft), tf.math.imag(stft)
        spec = real * real + imag * imag  # |X|^2, [B, T, F]
        if self.features.power == 1.0:
            spec = tf.sqrt(spec)
        mel = tf.matmul(spec, tf.constant(self._mel_matrix))  # [B, T, n_mels]
        if self.features.compression == "db":
            # Decibels: 10 log10 of power, 20 log10 of magnitude (torchaudio AmplitudeToDB).
            scale = 10.0 if self.features.power == 2.0 else 20.0
            out = (scale / _LN10) * tf.math.log(tf.maximum(mel, self.features.amin))
            if self.features.top_db is not None:
                # Per example: the floor is that clip's own maximum minus top_db.
                peak = tf.reduce_max(out, axis=[1, 2], keepdims=True)  # [B, 1, 1]
                out = tf.maximum(out, peak - self.features.top_db)
        else:  # log10(1 + C x), musicnn's compression
            out = tf.math.log(1.0 + self.features.log_c * mel) / _LN10
        return tf.transpose(out, [0, 2, 1])  # [B, n_mels, T]

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(features=dataclasses.asdict(self.features), sample_rate=self.sample_rate)
        return config


def log_mel_from_config(
    features: FeaturesConfig, audio: AudioConfig, *, name: str = "log_mel"
) -> LogMelSpectrogram:
    """The front end described by ``features`` for audio at ``audio.sample_rate``."""
    if features.f_max is not None and features.f_max > audio.sample_rate / 2:
        raise ValueError(
            f"config key 'features.f_max': must be <= Nyquist ({audio.sample_rate / 2}), "
            f"got {features.f_max}"
        )
    return LogMelSpectrogram(features, sample_rate=audio.sample_rate, name=name)
