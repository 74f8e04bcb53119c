"""Tests for the in-graph log-mel front end (keras_inst/features.py)."""

from __future__ import annotations

import dataclasses
import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_inst.compat import tflite_ops
from keras_inst.config.schema import AudioConfig, FeaturesConfig
from keras_inst.models.frontend import (
    LogMelSpectrogram,
    log_mel_from_config,
    mel_filterbank,
    num_frames,
)

SR = 16000


def realish(num_samples: int, *, seed: int, level: float = 1.0) -> np.ndarray:
    """Harmonic tones with an envelope plus noise: a deterministic music-like test signal."""
    rng = np.random.default_rng(seed)
    t = np.arange(num_samples) / SR
    x = np.zeros(num_samples)
    for f0, amp in ((220.0 * (1 + seed % 3), 0.3), (1375.0, 0.1), (5100.0, 0.02)):
        for h in range(1, 5):
            x += amp / h * np.sin(2 * np.pi * f0 * h * t + rng.uniform(0, 2 * np.pi))
    x *= 0.6 + 0.4 * np.sin(2 * np.pi * 1.5 * t)
    x += 0.003 * rng.standard_normal(num_samples)
    return (level * x).astype(np.float32)


# ------------------------------------------------------------------------------------------
# Independent NumPy reference (float64): explicit framing, rfft, its own HTK filterbank loop.


def ref_htk_filterbank(*, n_fft: int, n_mels: int, f_min: float, f_max: float) -> np.ndarray:
    """[F, M] triangles linear in Hz between HTK-mel-spaced edges (torchaudio, norm=None)."""
    mel_lo = 2595.0 * math.log10(1.0 + f_min / 700.0)
    mel_hi = 2595.0 * math.log10(1.0 + f_max / 700.0)
    edges = [700.0 * (10.0 ** ((mel_lo + (mel_hi - mel_lo) * i / (n_mels + 1)) / 2595.0) - 1.0)
             for i in range(n_mels + 2)]
    fb = np.zeros((n_fft // 2 + 1, n_mels))
    for k in range(n_fft // 2 + 1):
        f = k * SR / n_fft
        for m in range(n_mels):
            lo, mid, hi = edges[m], edges[m + 1], edges[m + 2]
            if lo <= f <= mid:
                fb[k, m] = (f - lo) / (mid - lo)
            elif mid < f <= hi:
                fb[k, m] = (hi - f) / (hi - mid)
    return fb


def ref_logmel(
    x: np.ndarray,
    *,
    n_fft: int,
    hop: int,
    win_length: int,
    n_mels: int,
    f_min: float,
    f_max: float,
    center: bool,
    pad_mode: str,
    power: float,
    compression: str,
    amin: float = 1e-10,
    top_db: float | None = None,
    log_c: float = 10000.0,
) -> np.ndarray:
    """[M, T] log-mel of a 1-D signal."""
    x = x.astype(np.float64)
    if center:
        x = np.pad(x, n_fft // 2, mode=pad_mode)
    n_frames = 1 + (len(x) - n_fft) // hop
    frames = np.stack([x[i * hop: i * hop + n_fft] for i in range(n_frames)])  # [T, n_fft]
    hann = np.array([0.5 - 0.5 * math.cos(2 * math.pi * n / win_length) for n in range(win_length)])
    window = np.zeros(n_fft)
    left = (n_fft - win_length) // 2
    window[left: left + win_length] = hann
    spec = np.abs(np.fft.rfft(frames * window, axis=-1)) ** power  # [T, F]
    mel = spec @ ref_htk_filterbank(n_fft=n_fft, n_mels=n_mels, f_min=f_min, f_max=f_max)
    if compression == "db":
        out = (10.0 if power == 2.0 else 20.0) * np.log10(np.maximum(mel, amin))
        if top_db is not None:
            out = np.maximum(out, out.max() - top_db)
    else:
        out = np.log10(1.0 + log_c * mel)
    return out.T


@pytest.mark.parametrize(
    "center,f_max,compression,win_length,pad_mode",
    [
        (True, 8000.0, "db", 512, "reflect"),
        (True, 5000.0, "db", 512, "reflect"),
        (True, None, "db", 512, "reflect"),  # None = Nyquist = 8000 Hz at 16 kHz
        (False, 8000.0, "db", 512, "reflect"),
        (True, 8000.0, "db", 400, "constant"),
        (True, 8000.0, "log10", 512, "reflect"),
        (False, 5000.0, "log10", 512, "reflect"),
    ],
)
def test_htk_matches_numpy_reference(center, f_max, compression, win_length, pad_mode):
    x = np.stack([realish(16000, seed=0), realish(16000, seed=1, level=0.05)])
    layer = LogMelSpectrogram(
        FeaturesConfig(n_fft=512, win_length=win_length, hop_length=256, n_mels=128, f_max=f_max,
                       mel_scale="htk", center=center, pad_mode=pad_mode, power=2.0,
                       compression=compression),
        sample_rate=SR,
    )
    got = np.asarray(layer(x))
    frames = num_frames(16000, n_fft=512, hop_length=256, center=center)
    assert got.shape == (2, 128, frames) and got.dtype == np.float32
    assert frames == (63 if center else 61)
    for b in range(2):
        ref = ref_logmel(
            x[b], n_fft=512, hop=256, win_length=win_length, n_mels=128, f_min=0.0,
            f_max=SR / 2 if f_max is None else f_max, center=center, pad_mode=pad_mode,
            power=2.0, compression=compression,
        )
        if compression == "db":
            # float32 STFT rounding grows for bins far below the peak: compare within 60 dB
            # of the example's peak (measured max error 2e-4 dB).
            mask = ref > ref.max() - 60.0
            assert mask.mean() > 0.5
            np.testing.assert_allclose(got[b][mask], ref[mask], rtol=0, atol=1e-3)
        else:
            np.testing.assert_allclose(got[b], ref, rtol=0, atol=1e-4)  # measured 2e-5


def test_htk_power1_top_db_matches_numpy_reference():
    x = realish(8000, seed=2)
    x[4000:] *= 1e-4  # a quiet second half, > 50 dB down
    layer = LogMelSpectrogram(FeaturesConfig(power=1.0, top_db=50.0, n_mels=64), sample_rate=SR)
    got = np.asarray(layer(x[None]))[0]
    ref = ref_logmel(
        x, n_fft=512, hop=256, win_length=512, n_mels=64, f_min=0.0, f_max=8000.0,
        center=True, pad_mode="reflect", power=1.0, compression="db", top_db=50.0,
    )
    assert (ref == ref.max() - 50.0).mean() > 0.01  # the clip is active
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-3)


@pytest.mark.parametrize("win_length,f_max", [(512, 8000.0), (400, None)])
def test_slaney_matches_librosa_melspectrogram(win_length, f_max):
    import librosa

    x = realish(16000, seed=3)
    layer = LogMelSpectrogram(
        FeaturesConfig(n_fft=512, win_length=win_length, hop_length=256, n_mels=96, f_max=f_max,
                       mel_scale="slaney", mel_norm="slaney"),
        sample_rate=SR,
    )
    got = np.asarray(layer(x[None]))[0]
    mel = librosa.feature.melspectrogram(
        y=x.astype(np.float64), sr=SR, n_fft=512, win_length=win_length, hop_length=256,
        n_mels=96, fmax=f_max, htk=False, norm="slaney", center=True, pad_mode="reflect",
        power=2.0,
    )
    ref = 10.0 * np.log10(np.maximum(mel, 1e-10))
    assert got.shape == ref.shape == (96, 63)
    mask = ref > ref.max() - 60.0  # measured max error 2e-4 dB there
    np.testing.assert_allclose(got[mask], ref[mask], rtol=0, atol=1e-3)


@pytest.mark.parametrize(
    "scale,norm,f_min,f_max",
    [("htk", None, 0.0, 8000.0), ("htk", None, 30.0, None), ("slaney", "slaney", 0.0, 8000.0),
     ("slaney", None, 50.0, 6000.0), ("htk", "slaney", 0.0, None)],
)
def test_mel_matrix_matches_librosa_filters(scale, norm, f_min, f_max):
    import librosa

    ours = mel_filterbank(sample_rate=SR, n_fft=512, n_mels=128, f_min=f_min, f_max=f_max,
                          scale=scale, norm=norm)
    theirs = librosa.filters.mel(sr=SR, n_fft=512, n_mels=128, fmin=f_min, fmax=f_max,
                                 htk=scale == "htk", norm=norm)
    assert ours.shape == (257, 128) and ours.dtype == np.float32
    np.testing.assert_allclose(ours, theirs.T, rtol=1e-5, atol=1e-8)


def test_htk_mel_matrix_matches_reference_loop():
    ours = mel_filterbank(sample_rate=SR, n_fft=512, n_mels=128, f_min=0.0, f_max=8000.0,
                          scale="htk", norm=None)
    np.testing.assert_allclose(ours, ref_htk_filterbank(n_fft=512, n_mels=128, f_min=0.0,
                                                        f_max=8000.0), atol=1e-6)


@pytest.mark.parametrize("compression,top_db", [("db", None), ("db", 80.0), ("log10", None)])
def test_examples_are_independent_of_batch_mates(compression, top_db):
    n = 16000
    t = np.arange(n) / SR
    quiet = np.zeros(n, np.float32)
    quiet[: n // 2] = 1e-3 * np.sin(2 * np.pi * 700.0 * t[: n // 2])  # tone, then silence
    loud = realish(n, seed=4, level=3.0)
    noise = np.random.default_rng(5).standard_normal(n).astype(np.float32)
    silent = np.zeros(n, np.float32)
    layer = LogMelSpectrogram(FeaturesConfig(compression=compression, top_db=top_db), sample_rate=SR)
    alone = np.asarray(layer(quiet[None]))[0]
    batch = np.asarray(layer(np.stack([loud, quiet, silent, noise])))
    np.testing.assert_allclose(batch[1], alone, rtol=0, atol=1e-4)
    for i, sig in ((0, loud), (2, silent), (3, noise)):
        np.testing.assert_allclose(batch[i], np.asarray(layer(sig[None]))[0], rtol=0, atol=1e-4)
    if top_db is not None:
        # A batch-wide floor (loud peak - top_db) would have lifted these quiet values.
        assert alone.min() < batch[0].max() - top_db - 30.0
        assert alone.min() == pytest.approx(alone.max() - top_db, abs=1e-4)


def test_sine_peaks_in_its_band_with_the_expected_level():
    amp = 0.5
    x = (amp * np.sin(2 * np.pi * 1000.0 * np.arange(16000) / SR)).astype(np.float32)
    layer = LogMelSpectrogram(sample_rate=SR)
    got = np.asarray(layer(x[None]))[0]  # [128, 63]
    fb = layer.mel_matrix  # [257, 128]
    k = 32  # 1000 Hz = bin 32 at 31.25 Hz/bin: 32 whole periods per frame, no leakage
    band = int(np.argmax(fb[k]))
    inner = got[:, 2:-2]  # frames away from the reflect-padded edges
    assert np.all(np.argmax(inner, axis=0) == band)
    # Periodic Hann: |X[k]| = A N / 4 and |X[k +- 1]| = A N / 8, every other bin exactly 0.
    power = np.zeros(257)
    power[k] = (amp * 512 / 4) ** 2
    power[k - 1] = power[k + 1] = (amp * 512 / 8) ** 2
    expected = 10 * np.log10(np.maximum(power @ fb.astype(np.float64), 1e-10))  # [128]
    np.testing.assert_allclose(inner[band], expected[band], atol=1e-3)
    hot = expected > expected.max() - 40.0
    np.testing.assert_allclose(inner[hot], np.repeat(expected[hot, None], inner.shape[1], 1),
                               atol=1e-2)


@pytest.mark.parametrize("top_db", [None, 80.0])
def test_silence_gives_amin_floor(top_db):
    x = np.zeros((2, 4000), np.float32)
    db = np.asarray(LogMelSpectrogram(FeaturesConfig(amin=1e-10, top_db=top_db), sample_rate=SR)(x))
    # -100 dB to float32 rounding (one ulp at 100 is 7.6e-6).
    np.testing.assert_allclose(db, -100.0, rtol=0, atol=1e-5)
    db8 = np.asarray(LogMelSpectrogram(FeaturesConfig(amin=1e-8), sample_rate=SR)(x))
    np.testing.assert_allclose(db8, -80.0, rtol=0, atol=1e-5)
    log = np.asarray(LogMelSpectrogram(FeaturesConfig(compression="log10"), sample_rate=SR)(x))
    assert np.all(log == 0.0)


def test_num_frames_and_output_shape():
    assert num_frames(64000, n_fft=512, hop_length=256, center=True) == 251
    assert num_frames(64000, n_fft=512, hop_length=256, center=False) == 249
    assert num_frames(511, n_fft=511, hop_length=100, center=True) == 1 + 510 // 100
    with pytest.raises(ValueError, match="too short"):
        num_frames(100, n_fft=512, hop_length=256, center=False)
    inp = keras.Input((64000,))
    out = LogMelSpectrogram(sample_rate=SR)(inp)
    assert tuple(out.shape) == (None, 128, 251)
    with pytest.raises(ValueError, match="static number of samples"):
        LogMelSpectrogram(sample_rate=SR)(keras.Input((None,)))
    with pytest.raises(ValueError, match="reflect padding"):
        LogMelSpectrogram(sample_rate=SR)(np.zeros((1, 200), np.float32))


def test_invalid_arguments_raise():
    with pytest.raises(ValueError, match="mel_scale"):
        LogMelSpectrogram(FeaturesConfig(mel_scale="bark"))
    with pytest.raises(ValueError, match="power"):
        LogMelSpectrogram(FeaturesConfig(power=3))
    with pytest.raises(ValueError, match="Nyquist"):
        LogMelSpectrogram(FeaturesConfig(f_max=8000.0), sample_rate=8000)
    with pytest.raises(ValueError, match="float32"):
        LogMelSpectrogram(dtype="mixed_float16")
    with pytest.raises(ValueError, match="features.f_max"):
        log_mel_from_config(FeaturesConfig(f_max=11025.0), AudioConfig(sample_rate=16000))


def test_config_and_keras_file_round_trip(tmp_path):
    feats = FeaturesConfig(n_fft=1024, win_length=800, hop_length=300, n_mels=40, f_min=20.0,
                           f_max=None, mel_scale="slaney", mel_norm="slaney", center=True,
                           pad_mode="constant", power=1.0, compression="db", amin=1e-6,
                           top_db=70.0)
    layer = LogMelSpectrogram(feats, sample_rate=22050, name="fe")
    cfg = layer.get_config()
    clone = LogMelSpectrogram.from_config(cfg)
    assert clone.get_config() == cfg and clone.features == feats
    assert cfg["sample_rate"] == 22050 and cfg["features"] == dataclasses.asdict(feats)
    # A model saved before the layer took a FeaturesConfig has the fields at the top level.
    flat = {k: v for k, v in cfg.items() if k != "features"} | cfg["features"]
    assert LogMelSpectrogram.from_config(flat).get_config() == cfg
    x = realish(22050, seed=6)[None]
    np.testing.assert_array_equal(np.asarray(clone(x)), np.asarray(layer(x)))

    inp = keras.Input((22050,))
    model = keras.Model(inp, layer(inp))
    path = tmp_path / "fe.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    assert isinstance(loaded.get_layer("fe"), LogMelSpectrogram)
    assert loaded.get_layer("fe").get_config() == cfg
    xb = np.stack([realish(22050, seed=7), realish(22050, seed=8, level=0.01)])
    np.testing.assert_array_equal(np.asarray(loaded(xb)), np.asarray(model(xb)))


def test_factory_uses_config_fields():
    feats = FeaturesConfig(n_mels=96, mel_scale="slaney", mel_norm="slaney", compression="log10",
                           f_max=None, top_db=None, log_c=100.0, win_length=400)
    layer = log_mel_from_config(feats, AudioConfig(sample_rate=22050), name="front")
    cfg = layer.get_config()
    assert layer.name == "front" and cfg["sample_rate"] == 22050
    assert layer.features is feats and cfg["features"] == dataclasses.asdict(feats)
    assert layer.mel_matrix.shape == (257, 96)


def test_tflite_builtin_only_matches_keras():
    from ai_edge_litert.interpreter import Interpreter

    audio = AudioConfig()  # paper: 16 kHz, 4 s = 64000 samples
    layer = log_mel_from_config(FeaturesConfig(top_db=80.0), audio)
    inp = keras.Input((audio.chunk_samples,))
    model = keras.Model(inp, layer(inp))
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    # Builtins only: conversion fails here if any op would need the Flex delegate.
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    flat = converter.convert()

    interp = Interpreter(model_content=flat)
    ops = {d["op_name"] for d in tflite_ops(interp)}
    assert {"MIRROR_PAD", "RFFT2D"} <= ops
    assert not any(op.startswith("Flex") or op == "CUSTOM" for op in ops)
    x = np.stack([realish(64000, seed=9), realish(64000, seed=10, level=0.02)])
    interp.resize_tensor_input(interp.get_input_details()[0]["index"], list(x.shape))
    interp.allocate_tensors()
    interp.set_tensor(interp.get_input_details()[0]["index"], x)
    interp.invoke()
    got = interp.get_tensor(interp.get_output_details()[0]["index"])
    want = np.asarray(model(x))
    assert got.shape == want.shape == (2, 128, 251)
    # RFFT2D vs TF's RFFT differ only by float32 rounding: 2e-3 dB over all bins
    # (values span -83..+31 dB; measured max difference 9e-4 dB).
    np.testing.assert_allclose(got, want, rtol=0, atol=2e-3)


def test_mixed_precision_policy_keeps_float32():
    x = np.stack([realish(16000, seed=11), realish(16000, seed=12, level=0.1)])
    want = np.asarray(LogMelSpectrogram(sample_rate=SR)(x))
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        layer = LogMelSpectrogram(sample_rate=SR)
        assert layer.compute_dtype == "float32"
        inp = keras.Input((16000,))
        model = keras.Model(inp, layer(inp))
        got = model(x)
        assert got.dtype == tf.float32
        np.testing.assert_array_equal(np.asarray(got), want)
        # A bf16 tensor coming from a previous mixed-precision layer is upcast, not computed in bf16.
        got16 = layer(tf.cast(x, tf.bfloat16))
        assert got16.dtype == tf.float32
    finally:
        keras.config.set_dtype_policy(previous)
