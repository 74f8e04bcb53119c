"""Parameter types shared by the TensorFlow effects chain and its NumPy reference.

:class:`EffectParams` is the record both :mod:`keras_inst.augment.effects` (batched, TF) and
:mod:`keras_inst.augment.reference` (one signal, NumPy) take; the constants are the ones both
must agree on (filter kinds, the shelf slope, the phase vocoder's FFT size, the realism
compressor's frames, the mix bus's K-weighting and limiter). No TensorFlow here,
so the NumPy reference stays TensorFlow-free and the TF chain does not import the reference.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

FILTER_KINDS = ("low_shelf", "high_shelf", "peaking")
SHELF_Q = 1.0 / np.sqrt(2.0)  # shelf slope S = 1 in the cookbook equals Q = 1/sqrt(2)
PV_N_FFT = 1024  # phase-vocoder FFT size: 64 ms at 16 kHz (both chains)
COMP_HOP = 256  # realism compressor's detector hop (16 ms at 16 kHz); frames are 2 hops, Hann
COMP_LAGS = 128  # frames of its attack/release windows (2 s at hop 256 / 16 kHz)
LIMIT_BLOCK = 32  # mix-bus limiter: block (2 ms) of its gain computer = its look-ahead (a power of 2)
LIMIT_RELEASE_S = 0.05  # the limiter's release time constant (gain recovers 8.686 / 0.05 dB/s)
LIMIT_LAGS = 128  # blocks of release memory: 5.1 time constants, i.e. at most 44 dB of recovery
LUFS_OFFSET = -0.691  # BS.1770: loudness = -0.691 + 10 log10(K-weighted mean square)


class EffectParams(NamedTuple):
    """Per-source effect parameters; each field is a float (one source) or an array/tensor [B].

    An absent effect has its identity value: 0 dB gain (also for the three filters, whose
    frequency/Q are then irrelevant), ``semitones`` 0 and ``rate`` 1. ``rate`` > 1 makes the
    source faster (its content is read ``rate`` times faster). ``eq_first`` says whether the
    filters run before (True) or after (False) the pitch/time stage; gain is a scalar factor and
    commutes with every stage, so its position in the chain is immaterial.
    """

    gain_db: Any
    low_shelf_hz: Any
    low_shelf_db: Any
    high_shelf_hz: Any
    high_shelf_db: Any
    peak_hz: Any
    peak_db: Any
    peak_q: Any
    semitones: Any
    rate: Any
    eq_first: Any


IDENTITY = EffectParams(
    gain_db=0.0, low_shelf_hz=100.0, low_shelf_db=0.0, high_shelf_hz=4000.0, high_shelf_db=0.0,
    peak_hz=1000.0, peak_db=0.0, peak_q=1.0, semitones=0.0, rate=1.0, eq_first=True,
)


def k_weighting(sample_rate: float) -> list[tuple[np.ndarray, np.ndarray]]:
    """BS.1770 K-weighting biquads ``[(b, a), (b, a)]`` (shelf +4 dB above ~1.7 kHz, then a
    38 Hz high-pass), designed for any rate from the analog prototype (B. De Man's constants;
    they reproduce the spec's 48 kHz coefficients); also the corpus's BS.1770 loudness."""
    k = np.tan(np.pi * 1681.974450955533 / sample_rate)
    q, vh = 0.7071752369554196, 10 ** (3.999843853973347 / 20)
    vb = vh**0.4996667741545416
    a0 = 1 + k / q + k * k
    shelf = (np.array([vh + vb * k / q + k * k, 2 * (k * k - vh), vh - vb * k / q + k * k]) / a0,
             np.array([1.0, 2 * (k * k - 1) / a0, (1 - k / q + k * k) / a0]))
    k, q = np.tan(np.pi * 38.13547087602444 / sample_rate), 0.5003270373238773
    a0 = 1 + k / q + k * k
    high_pass = (np.array([1.0, -2.0, 1.0]),
                 np.array([1.0, 2 * (k * k - 1) / a0, (1 - k / q + k * k) / a0]))
    return [shelf, high_pass]


def params_item(params: EffectParams, index: int) -> EffectParams:
    """Python scalars of item ``index`` of batched parameters (arrays or eager tensors [B])."""
    return EffectParams(*(np.asarray(v)[index].item() for v in params))
