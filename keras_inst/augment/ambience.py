"""Non-music ambience for training (beyond the paper, opt-in ``effects.ambience``): procedural
environmental sound beds under the mixes, and examples that hold no instrument at all.

Why: a model trained only on mixes of instruments has never heard a sound that is none of them,
so broadband noise has to land somewhere; on real recordings rain and surf were called
"electric guitar". Four textures, synthesised in TensorFlow from seeded noise (no files), none
with a pitched component or a voice (honest negatives for every class):

* ``rain``: dense drops (an impulse train with Poisson-like positions, ``RAIN_DENSITY`` per
  second, cubed-uniform amplitudes: many small drops, a few near ones) each a decaying
  (``RAIN_TAU_MS``) burst of noise, band-passed around ``RAIN_FC_HZ``, over a low-passed hiss;
* ``surf``: pink-to-brown noise low-passed at ``SURF_LP_HZ`` and a band of "foam" noise,
  under a swell of period ``SURF_PERIOD_S`` (4-12 s: modulation 1/12-1/4 Hz), the foam rising
  with the square of the swell;
* ``wind``: two broad band-passes (``WIND_FC_HZ``, Q <= 1.4: no whistle) cross-faded by a slow
  sinusoid, so the band's centre wanders, under gusts (an exponential of two slow sinusoids);
* ``rumble``: brown-ish noise low-passed at ``RUMBLE_LP_HZ`` (traffic, room tone), with a slow
  fluctuation.

Every spectral shape is a smooth magnitude over rfft bins (``1 / sqrt(1 + ...)`` band- and
low-passes, power-law tilts) applied to white noise in one pass (circular: the noise is
stationary, so the wrap-around is inaudible); every envelope is below ~2 Hz. Beds come out at
unit power (their measured power divided out), so the SNR is exact.

Per mix, :func:`draw_ambience` draws from each example's effects seed on an independent stream
(its first word xor ``AMBIENCE_TAG``; the paper's and the realism draws are unchanged): whether a
bed is laid (``probability``), its texture, its SNR re the mix's power, and 8 uniforms (``knobs``)
that each texture maps to its own ranges (the constants below). The noise is fresh per mix
(not a shared table: a negative is nothing but its noise, and a fixed table could be learnt as
"the negative"): ``tf.random.stateless_uniform`` seeded per mix (Philox; measured ~4x cheaper
per number than the splitmix hash of :func:`keras_inst.augment.effects.hash_uniform`), drawn
straight as a spectrum where a layer is only filtered (one inverse FFT, no forward one), so a
mix's bed depends only on its own seed, never on its batch (tested). :func:`add_ambience` lays
the beds on the mixes after the mix bus, before the pipeline's peak normalisation (a common
gain: the SNR holds at the model's input), with the SNR re the mix's power over the chunk;
validation and test mixes get none, nor do streams without random effects.

Negatives (``negative_probability``) are drawn in the recipe
(:meth:`keras_inst.data.mixing.RecipeSampler.draw`), not here: a negative example is its recipe
with every source removed (``n = 0``), so no audio is read, no effect runs, and its labels are
exactly 0 by the same rule as every label (the union of its audible sources' classes); every
other example has the recipe and labels it has without negatives (its audio is the same to
float rounding: its batch holds other rows). It lives in this config block
rather than as a mixing-side ``p_no_source`` because a source-free example without a bed would
be digital silence: the two settings only make sense together. Here ``n = 0`` forces a bed,
at an absolute RMS level drawn in ``negative_level_db`` (there is no mix to take an SNR from).
"""

from __future__ import annotations

import functools
import math
from typing import Any, NamedTuple

import numpy as np
import tensorflow as tf

from keras_inst.augment.effects import hash_uniform, uniform_in
from keras_inst.config.schema import AMBIENCE_TEXTURES, AmbienceConfig

__all__ = ["AmbienceParams", "add_ambience", "ambience_beds", "draw_ambience", "enabled"]

AMBIENCE_TAG = 0x414D4249454E4331  # "AMBIENC1": xor'd into the seed's first word (draws)
NOISE_TAG = 0x414D424E4F495345  # "AMBNOISE": the same, for the Philox seeds of the noise
KNOBS = 8  # uniforms per mix that the textures map to their parameters
ENV_HOP = 64  # envelopes are computed every 64 samples (float64) and interpolated linearly

# Ranges of each texture's parameters ((lo, hi); "log": log-uniform). Plausible values of the
# sounds, not tuned on any result.
RAIN_DENSITY = (30.0, 300.0)  # drops per second, log
RAIN_TAU_MS = (2.0, 10.0)  # a drop's decay time constant, log
RAIN_FC_HZ = (1200.0, 5000.0)  # centre of the drops' band, log
RAIN_Q = (0.5, 1.2)  # its Q (broad)
RAIN_HISS_DB = (-24.0, -8.0)  # hiss power re the drops'
RAIN_HISS_LP_HZ = (2500.0, 7000.0)  # the hiss's low-pass, log
SURF_PERIOD_S = (4.0, 12.0)  # swell period, log
SURF_FLOOR = (0.15, 0.45)  # amplitude between swells re the crest
SURF_SHARPNESS = (1.0, 3.0)  # exponent of the raised-cosine swell: higher = shorter crash
SURF_BETA = (1.0, 2.0)  # spectral slope of the body: power ~ f^-beta (pink 1 to brown 2)
SURF_LP_HZ = (300.0, 1500.0)  # the body's low-pass, log
SURF_FOAM_DB = (-15.0, -5.0)  # the foam band's power re the body's at the crest
SURF_FOAM_HZ = (1500.0, 4000.0)  # centre of the foam band, log
WIND_FC_HZ = (150.0, 900.0)  # centre of the lower band, log
WIND_SPREAD = (1.5, 3.0)  # the upper band's centre re the lower's
WIND_Q = (0.7, 1.4)
WIND_WANDER_HZ = (0.1, 0.5)  # rate of the centre's wandering
WIND_GUST_HZ = (0.2, 1.0)
WIND_GUST_NEPER = (0.3, 1.0)  # depth of the gusts (amplitude factor e^+-depth)
RUMBLE_LP_HZ = (60.0, 200.0)  # log
RUMBLE_ORDER = (2, 4)  # the low-pass's order, integers equally likely
RUMBLE_BETA = (1.5, 2.5)
RUMBLE_DRIFT_HZ = (0.05, 0.3)
RUMBLE_DRIFT_NEPER = (0.0, 0.5)
HIGH_PASS_HZ = 20.0  # every bed, 4th order: no energy wasted below hearing (and no DC)


class AmbienceParams(NamedTuple):
    """Per-mix ambience parameters, fields ``[B]`` (``knobs [B, KNOBS]``, ``noise_seed [B, 2]``)."""

    on: Any  # bool: a bed under this mix
    negative: Any  # bool: the example holds no source; its bed is at level_db
    kind: Any  # int32: index into AMBIENCE_TEXTURES
    snr_db: Any  # mix power re bed power (dB)
    level_db: Any  # RMS (dBFS) of a negative's bed
    knobs: Any  # float32 [B, KNOBS] uniforms in [0, 1)
    noise_seed: Any  # int64 [B, 2]: Philox seed of the bed's noise


def enabled(cfg: AmbienceConfig) -> bool:
    """Whether a bed can be laid (else nothing is added to the graph)."""
    return cfg.probability > 0 or cfg.negative_probability > 0


def draw_ambience(seed: Any, n: Any, cfg: AmbienceConfig) -> AmbienceParams | None:
    """Ambience parameters per example, or None when ``cfg`` is off.

    ``seed``: int64 ``[..., 2]`` (the recipes' effects seeds); ``n`` int ``[...]``: the sources
    of each example (0: a negative, which always gets a bed). Fields are ``[...]``.
    """
    if not enabled(cfg):
        return None
    seed = tf.cast(tf.convert_to_tensor(seed), tf.int64)
    first = seed[..., 0]
    tagged = tf.stack([tf.bitwise.bitwise_xor(first, tf.constant(AMBIENCE_TAG, tf.int64)),
                       seed[..., 1]], axis=-1)
    u = hash_uniform(tagged, 4 + KNOBS)  # [..., 12]
    negative = tf.equal(tf.cast(n, tf.int32), 0)
    picks = tf.constant([AMBIENCE_TEXTURES.index(t) for t in cfg.textures], tf.int32)
    which = tf.minimum(tf.cast(u[..., 1] * len(cfg.textures), tf.int32), len(cfg.textures) - 1)
    return AmbienceParams(
        on=(u[..., 0] < cfg.probability) | negative,
        negative=negative,
        kind=tf.gather(picks, which),
        snr_db=uniform_in(u[..., 2], cfg.snr_db),
        level_db=uniform_in(u[..., 3], cfg.negative_level_db),
        knobs=u[..., 4:],
        noise_seed=tf.stack([tf.bitwise.bitwise_xor(first, tf.constant(NOISE_TAG, tf.int64)),
                             seed[..., 1]], axis=-1),
    )


# ----------------------------------------------------------------------------------------------
# Building blocks: fresh noise per mix, smooth spectral shapes, slow envelopes


def _noise(seeds: tf.Tensor, rows: int, t: int) -> tf.Tensor:
    """Uniform noise in [0, 1) ``[S, rows, t]``, one Philox stream per mix (batch-independent)."""
    return tf.map_fn(lambda s: tf.random.stateless_uniform([rows, t], s), seeds,
                     fn_output_signature=tf.TensorSpec([rows, t], tf.float32))


def _spectrum(seeds: tf.Tensor, t: int) -> tf.Tensor:
    """complex64 ``[S, t // 2 + 1]``: the spectrum of white noise of ``t`` samples, drawn in
    the frequency domain (independent uniform real and imaginary parts; Gaussian once shaped
    and summed by the inverse FFT), which saves a forward FFT per bed."""
    u = _noise(seeds, 2, t // 2 + 1) - 0.5  # [S, 2, F]
    return tf.complex(u[:, 0], u[:, 1])


def _white(u: tf.Tensor) -> tf.Tensor:
    return (u - 0.5) * math.sqrt(12.0)  # unit variance; Gaussian once filtered


@functools.cache
def _bins(t: int, sample_rate: float) -> tuple[np.ndarray, np.ndarray]:
    """float32 ``[1, F]`` frequencies of the rfft bins (DC at a tiny value) and the 4th-order
    ``HIGH_PASS_HZ`` high-pass magnitude there."""
    f = np.fft.rfftfreq(t, 1.0 / sample_rate)
    f[0] = 1e-3
    return f[None].astype(np.float32), (1.0 / np.sqrt(1.0 + (HIGH_PASS_HZ / f) ** 8))[None].astype(np.float32)


def _col(v: Any) -> tf.Tensor:
    return tf.reshape(tf.cast(v, tf.float32), [-1, 1])  # [S, 1] (a scalar: [1, 1])


def _knob(k: tf.Tensor, i: int, bounds: tuple[float, float], *, log: bool = False) -> tf.Tensor:
    return uniform_in(k[:, i], bounds, log=log)  # [S]


# The magnitudes below use +, *, / and sqrt only (correctly rounded in every SIMD lane), or
# float64 where they need exp/log: a row's values do not depend on its place in the batch.


def _low_pass(f: tf.Tensor, fc: tf.Tensor, order: Any = 2) -> tf.Tensor:
    """Butterworth magnitude ``1 / sqrt(1 + (f / fc)^(2 order))``, integer ``order`` in
    [1, 7] (scalar or [S]) by repeated squaring."""
    r2 = tf.square(f / _col(fc))  # [S, F]
    bits = tf.reshape(tf.cast(tf.round(tf.cast(order, tf.float32)), tf.int32), [-1, 1])
    power = tf.ones_like(r2)
    for b in range(3):
        power *= tf.where(tf.bitwise.bitwise_and(bits, 1 << b) > 0, r2, 1.0)
        r2 = tf.square(r2)
    return 1.0 / tf.sqrt(1.0 + power)


def _band(f: tf.Tensor, fc: tf.Tensor, q: Any) -> tf.Tensor:
    """Magnitude of a 2nd-order band-pass at ``fc`` with quality ``q`` (broad for q ~ 1)."""
    x = f / _col(fc) - _col(fc) / f
    return 1.0 / tf.sqrt(1.0 + tf.square(_col(q) * x))


def _tilt(f: tf.Tensor, beta: tf.Tensor) -> tf.Tensor:
    """Amplitude ``(f / 20 Hz)^(-beta / 2)`` (flat below): power ~ f^-beta (pink 1, brown 2)."""
    octaves = tf.math.log(tf.cast(tf.maximum(f, HIGH_PASS_HZ), tf.float64) / HIGH_PASS_HZ)
    return tf.cast(tf.exp(-0.5 * tf.cast(_col(beta), tf.float64) * octaves), tf.float32)


def _shape(spec: tf.Tensor, mag: tf.Tensor, t: int) -> tf.Tensor:
    """The spectrum ``spec [S, F]`` of white rows through the magnitude ``mag [S, F]``
    -> ``[S, t]`` at unit power."""
    return _unit(tf.signal.irfft(spec * tf.complex(mag, 0.0), [t]))


def _unit(x: tf.Tensor) -> tf.Tensor:
    return x / tf.sqrt(tf.maximum(tf.reduce_mean(tf.square(x), -1, keepdims=True), 1e-20))


def _envelope(fn, s: Any, t: int, sample_rate: float) -> tf.Tensor:
    """``fn(time [1, E] seconds, float64) -> [S, E]`` on a grid of ``ENV_HOP`` samples,
    rounded to float32 and interpolated linearly to ``[S, t]`` (multiplications only)."""
    blocks = -(-t // ENV_HOP)
    tt = tf.constant(np.arange(blocks + 1)[None] * ENV_HOP / sample_rate, tf.float64)
    c = tf.cast(tf.broadcast_to(fn(tt), [s, blocks + 1]), tf.float32)  # [S, E]
    frac = tf.constant(np.arange(ENV_HOP) / ENV_HOP, tf.float32)
    env = c[:, :-1, None] * (1.0 - frac) + c[:, 1:, None] * frac  # [S, blocks, hop]
    return tf.reshape(env, [s, blocks * ENV_HOP])[:, :t]


def _c64(v: Any) -> tf.Tensor:
    return tf.reshape(tf.cast(v, tf.float64), [-1, 1])  # [S, 1]


def _sin(tt: tf.Tensor, hz: Any, phase: Any) -> tf.Tensor:
    """``sin(2 pi (hz t + phase))``, float64 ``[S, E]`` (``phase`` in cycles)."""
    return tf.sin(2.0 * math.pi * (_c64(hz) * tt + _c64(phase)))


def _db(v: tf.Tensor) -> tf.Tensor:
    return tf.cast(tf.pow(tf.constant(10.0, tf.float64), _c64(v) / 20.0), tf.float32)  # [S, 1]


# ----------------------------------------------------------------------------------------------
# The textures: knobs [S, KNOBS], Philox seeds [S, 2] -> unit-power beds [S, t]


def rain(knobs: tf.Tensor, seeds: tf.Tensor, t: int, sample_rate: float) -> tf.Tensor:
    """Drops (decaying band-passed noise bursts at random times and amplitudes) over a hiss."""
    k = knobs
    f, hp = _bins(t, sample_rate)
    u = _noise(seeds, 2, t)  # [S, 2, t]: drop times and amplitudes, the drops' noise
    p = _col(_knob(k, 0, RAIN_DENSITY, log=True) / sample_rate)  # drops per sample [S, 1]
    q = u[:, 0]
    a = q / p  # given q < p, uniform in [0, 1): cubed, many soft drops and a few loud ones
    imp = tf.where(q < p, a * a * a, 0.0)  # [S, t]
    # Each drop decays as r^k (r = e^(-1 / (tau sr))): circular convolution with the one-pole
    # response 1 / (1 - r e^(-jw)) (a drop near the end rings on at the start: stationary rain).
    r = tf.cast(tf.exp(-1000.0 / (_c64(_knob(k, 1, RAIN_TAU_MS, log=True)) * sample_rate)),
                tf.float32)  # [S, 1]
    w = 2.0 * np.pi * np.fft.rfftfreq(t)[None]
    re, im = 1.0 - r * np.cos(w).astype(np.float32), r * np.sin(w).astype(np.float32)
    mag2 = re * re + im * im  # 1 / (re + j im) = (re - j im) / mag2: no complex division
    pole = tf.complex(re / mag2, -im / mag2)  # [S, F]
    env = tf.signal.irfft(tf.signal.rfft(imp) * pole, [t])
    drops = _shape(tf.signal.rfft(env * _white(u[:, 1])),
                   _band(f, _knob(k, 2, RAIN_FC_HZ, log=True), _knob(k, 3, RAIN_Q)) * hp, t)
    hiss = _shape(_spectrum(seeds + tf.constant([0, 1], tf.int64), t),  # another stream
                  _low_pass(f, _knob(k, 5, RAIN_HISS_LP_HZ, log=True)) * hp, t)
    return _unit(drops + _db(_knob(k, 4, RAIN_HISS_DB)) * hiss)


def surf(knobs: tf.Tensor, seeds: tf.Tensor, t: int, sample_rate: float) -> tf.Tensor:
    """Low-passed pink/brown noise and a foam band under a swell of period 4-12 s."""
    k, s = knobs, tf.shape(knobs)[0]
    f, hp = _bins(t, sample_rate)
    x = _spectrum(seeds, t)
    body = _shape(x, _tilt(f, _knob(k, 4, SURF_BETA))
                  * _low_pass(f, _knob(k, 5, SURF_LP_HZ, log=True)) * hp, t)
    # The foam band from the same noise: it overlaps the body little (>= 1.5 kHz vs <= 1.5 kHz).
    foam = _shape(x, _band(f, _knob(k, 7, SURF_FOAM_HZ, log=True), 0.7), t)
    period = _knob(k, 0, SURF_PERIOD_S, log=True)
    floor, sharp = _c64(_knob(k, 2, SURF_FLOOR)), _c64(_knob(k, 3, SURF_SHARPNESS))

    def swell(tt: tf.Tensor) -> tf.Tensor:  # a raised cosine ^ sharpness, in [floor, 1]
        c = 0.5 - 0.5 * _sin(tt + 0.25 * _c64(period), 1.0 / period, k[:, 1])
        return floor + (1.0 - floor) * tf.pow(tf.maximum(c, 0.0), sharp)

    env = _envelope(swell, s, t, sample_rate)
    return _unit(env * body + _db(_knob(k, 6, SURF_FOAM_DB)) * env * env * foam)


def wind(knobs: tf.Tensor, seeds: tf.Tensor, t: int, sample_rate: float) -> tf.Tensor:
    """Two broad band-passes cross-faded slowly (a wandering centre) under gusts."""
    k, s = knobs, tf.shape(knobs)[0]
    f, hp = _bins(t, sample_rate)
    # Both bands from the same noise: the cross-fade sqrt(c) b1 + sqrt(1 - c) b2 is then that
    # noise through a filter moving between the two band-passes.
    x = _spectrum(seeds, t)
    lo, q = _knob(k, 0, WIND_FC_HZ, log=True), _knob(k, 2, WIND_Q)
    b1 = _shape(x, _band(f, lo, q) * hp, t)
    b2 = _shape(x, _band(f, lo * _knob(k, 1, WIND_SPREAD), q) * hp, t)
    wander, gust = _knob(k, 3, WIND_WANDER_HZ), _knob(k, 5, WIND_GUST_HZ)
    depth = _c64(_knob(k, 6, WIND_GUST_NEPER))
    c = _envelope(lambda tt: 0.5 + 0.5 * _sin(tt, wander, k[:, 4]), s, t, sample_rate)
    g = _envelope(lambda tt: tf.exp(depth * (0.6 * _sin(tt, gust, k[:, 7])
                                             + 0.4 * _sin(tt, 1.7 * gust, 2.0 * k[:, 7]))),
                  s, t, sample_rate)
    return _unit(g * (tf.sqrt(c) * b1 + tf.sqrt(1.0 - c) * b2))


def rumble(knobs: tf.Tensor, seeds: tf.Tensor, t: int, sample_rate: float) -> tf.Tensor:
    """Brown-ish noise low-passed below ~200 Hz, with a slow drift of its level."""
    k, s = knobs, tf.shape(knobs)[0]
    f, hp = _bins(t, sample_rate)
    mag = (_tilt(f, _knob(k, 2, RUMBLE_BETA)) * hp
           * _low_pass(f, _knob(k, 0, RUMBLE_LP_HZ, log=True),
                       RUMBLE_ORDER[0] + tf.floor(k[:, 1] * (RUMBLE_ORDER[1] - RUMBLE_ORDER[0] + 1))))
    x = _shape(_spectrum(seeds, t), mag, t)
    depth = _c64(_knob(k, 4, RUMBLE_DRIFT_NEPER))
    drift = _knob(k, 3, RUMBLE_DRIFT_HZ)
    env = _envelope(lambda tt: tf.exp(depth * _sin(tt, drift, k[:, 5])), s, t, sample_rate)
    return _unit(env * x)


TEXTURES = {"rain": rain, "surf": surf, "wind": wind, "rumble": rumble}  # AMBIENCE_TEXTURES' order


def ambience_beds(p: AmbienceParams, length: int, *, sample_rate: float) -> tf.Tensor:
    """Unit-power beds ``[S, length]`` of the mixes of ``p`` (fields ``[S]``); each texture
    runs on its own rows only, and not at all when no row draws it."""
    kind = tf.cast(p.kind, tf.int32)
    knobs = tf.convert_to_tensor(p.knobs, tf.float32)
    seeds = tf.cast(p.noise_seed, tf.int64)
    idxs, parts = [], []
    for i, name in enumerate(AMBIENCE_TEXTURES):
        idx = tf.cast(tf.where(tf.equal(kind, i))[:, 0], tf.int32)

        def synth(idx: tf.Tensor = idx, fn=TEXTURES[name]) -> tf.Tensor:
            return fn(tf.gather(knobs, idx), tf.gather(seeds, idx), length, sample_rate)

        parts.append(tf.cond(tf.size(idx) > 0, synth,
                             lambda: tf.zeros([0, length], tf.float32)))
        idxs.append(idx)
    return tf.dynamic_stitch(idxs, parts)


def add_ambience(mix: tf.Tensor, p: AmbienceParams, *, sample_rate: float) -> tf.Tensor:
    """Mixes ``[B, T]`` plus each drawn bed: at ``snr_db`` re the mix's power over T, or, for a
    negative, at RMS ``level_db``. Mixes without a bed are left bit-identical."""
    mix = tf.convert_to_tensor(mix, tf.float32)
    on = tf.cast(p.on, tf.bool)

    def with_beds() -> tf.Tensor:
        idx = tf.cast(tf.where(on)[:, 0], tf.int32)
        sub = AmbienceParams(*(tf.gather(v, idx) for v in p))
        beds = ambience_beds(sub, mix.shape[-1], sample_rate=sample_rate)  # [S, T], unit power
        power = tf.cast(tf.reduce_mean(tf.square(tf.gather(mix, idx)), -1), tf.float64)
        ten = tf.constant(10.0, tf.float64)
        gain = tf.where(tf.cast(sub.negative, tf.bool),
                        tf.pow(ten, tf.cast(sub.level_db, tf.float64) / 20.0),
                        tf.sqrt(power * tf.pow(ten, -tf.cast(sub.snr_db, tf.float64) / 10.0)))
        return tf.tensor_scatter_nd_add(mix, idx[:, None], beds * tf.cast(gain, tf.float32)[:, None])

    return tf.cond(tf.reduce_any(on), with_beds, lambda: mix)
