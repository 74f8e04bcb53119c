"""Per-channel range equalisation before int8 conversion: a float-equivalent copy of a model.

Why: musicnn's VGG (:mod:`keras_inst.models.pretrained`) normalises *after* the ReLU
(``conv -> ReLU -> batch norm -> max-pool -> conv``), so its batch norms cannot be folded into
the convolutions. In int8 every activation tensor and the batch norm's per-channel gain
``a = gamma / sqrt(var + eps)`` are quantised with ONE scale per tensor, and the MSD weights
make those ranges wildly unequal: ``a`` spans 0.3 to 63 in ``bn1`` (1.7e7 between the largest
and smallest), the largest channel of ``bn1``'s output reaches 63 while most stay below 1. One
int8 step of such a tensor (63 / 255) is larger than whole channels, and a gain of 0.3 rounds
to the nearest of 0, 0.25, 0.5 (measured on the main job's model: max|dp| 0.356, decision
agreement 0.965; per-layer errors in docs/benchmarks.md "int8").

What: for each such block, with ``r`` the ReLU conv output and ``y = a * r + b`` the batch
norm's, both per channel ``c`` (``[B, T, M, C]``), over the calibration waveforms:

* the conv's kernel and bias are multiplied by ``t_c = 1 / max|r_c|`` (ReLU commutes with a
  positive factor), so every channel of ``r`` reaches 1;
* the batch norm becomes ``y_c / s_c`` with ``s_c = max|y_c| ** 0.5`` (gain ``a_c / (t_c s_c)``,
  shift ``b_c / s_c``, moving mean 0 and variance ``1 - eps``), so the channels of ``y`` span
  a range half as many orders of magnitude wide as before (at power 1 they would all reach 1);
* the next conv's kernel is multiplied by ``s_c`` on its input channel ``c``. Max-pooling and
  dropout between them commute with a positive per-channel factor, and the next conv's zero
  padding stays zero, so the copy computes the same function (checked by the caller).

Blocks whose batch norm feeds anything other than a conv (musicnn's last block feeds the
embedding, an output) and models without the pattern (the short-chunk CNN folds conv -> BN
-> ReLU into the conv) are left as they are.
"""

from __future__ import annotations

from typing import Any

import numpy as np

# Ranges below this fraction of the largest channel's are raised to it: a dead channel would
# otherwise get a factor of ~1e6 (measured: such a model crashed XNNPACK).
_FLOOR = 1e-3
# s_c = max|y_c| ** _S_POWER: 1 equalises y fully but moves the whole spread onto the next conv's
# input channels, whose int8 weights (one scale per output channel) then lose the small ones.
# Full-integer int8 of the main job's model at epoch 9: max|dp| 0.207 / 0.196 / 0.223 for
# 1 / 0.75 / 0.5. Dynamic-range int8 (what the export uses for such models) of the final
# model: 0.137 / 0.232 / 0.135 (0.161 without equalisation), so 0.5 (the geometric middle).
_S_POWER = 0.5
# Layers between the batch norm and the next conv that commute with a positive per-channel factor.
_PASS_THROUGH = ("MaxPooling2D", "Dropout")


def _inputs(layer: Any) -> list[Any]:
    x = layer.input
    return list(x) if isinstance(x, (list, tuple)) else [x]


def _consumers(layers: list[Any], tensor: Any) -> list[Any]:
    return [lay for lay in layers if any(x is tensor for x in _inputs(lay))]


def _producer(layers: list[Any], tensor: Any) -> Any | None:
    return next((lay for lay in layers if lay.output is tensor), None)


def equalisable_blocks(backbone: Any) -> list[tuple[Any, Any, Any]]:
    """``(conv, batch_norm, next_conv)`` of every ``Conv2D(relu) -> BatchNormalization ->
    [MaxPooling2D | Dropout]* -> Conv2D`` chain in ``backbone`` whose tensors have one consumer."""
    import keras

    layers = list(backbone.layers)
    out = []
    for bn in layers:
        if not isinstance(bn, keras.layers.BatchNormalization) or not (bn.center and bn.scale):
            continue
        conv = _producer(layers, bn.input)
        if not isinstance(conv, keras.layers.Conv2D) or conv.activation is not keras.activations.relu:
            continue
        if len(_consumers(layers, conv.output)) != 1 or conv.data_format != "channels_last":
            continue
        node = bn
        while len(nxt := _consumers(layers, node.output)) == 1 and type(nxt[0]).__name__ in _PASS_THROUGH:
            node = nxt[0]
        if len(nxt) == 1 and isinstance(nxt[0], keras.layers.Conv2D) and nxt[0].data_format == "channels_last":
            out.append((conv, bn, nxt[0]))
    return out


def _floored(m: np.ndarray) -> np.ndarray:
    """Per-channel maxima ``[C]`` raised to ``_FLOOR`` x the largest."""
    m = m.astype(np.float64)
    return np.maximum(m, _FLOOR * m.max() if m.max() > 0 else 1.0)


def _channel_peaks(probe: Any, log_mel: np.ndarray, batch: int) -> list[np.ndarray]:
    """Max |value| per channel ``[C]`` of each of ``probe``'s outputs over ``log_mel``, one batch
    at a time: holding the activations themselves (``[n, T, M, C]`` per output) took 15 GB
    for 128 calibration windows of the main job's model, and got its export OOM-killed."""
    peaks: list[np.ndarray] | None = None
    for i in range(0, len(log_mel), batch):
        outs = probe.predict_on_batch(log_mel[i : i + batch])
        m = [np.abs(np.asarray(o)).reshape(-1, o.shape[-1]).max(axis=0) for o in outs]
        peaks = m if peaks is None else [np.maximum(a, b) for a, b in zip(peaks, m, strict=True)]
    return peaks or []


def equalised_copy(model: Any, waveforms: np.ndarray, *, batch: int = 16) -> tuple[Any, list[str]]:
    """A copy of ``model`` (built by ``build_model``) with the blocks of
    :func:`equalisable_blocks` equalised on ``waveforms [n, samples]``, and the names of the
    batch norms that were; ``(model, [])`` when there are none."""
    import keras

    blocks = equalisable_blocks(model.get_layer("backbone"))
    if not blocks:
        return model, []
    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    backbone = copy.get_layer("backbone")
    blocks = [tuple(backbone.get_layer(lay.name) for lay in blk) for blk in blocks]
    # Statistics of the original function: r_i, y_i [B, T, M, C] of every block, on log-mels.
    log_mel = copy.get_layer("frontend").predict(np.asarray(waveforms, np.float32), batch_size=batch, verbose=0)
    probe = keras.Model(backbone.input, [t for conv, bn, _ in blocks for t in (conv.output, bn.output)])
    peaks = _channel_peaks(probe, log_mel, batch)  # max|r_i|, max|y_i| per channel, [C] each
    for i, (conv, bn, nxt) in enumerate(blocks):
        t = 1.0 / _floored(peaks[2 * i])  # [C]
        s = _floored(peaks[2 * i + 1]) ** _S_POWER  # [C]
        kernel, bias = conv.get_weights()  # [kh, kw, in, C], [C]
        gamma, beta, mean, var = (w.astype(np.float64) for w in bn.get_weights())
        gain = gamma / np.sqrt(var + bn.epsilon)
        shift = beta - mean * gain
        conv.set_weights([(kernel * t).astype(kernel.dtype), (bias * t).astype(bias.dtype)])
        f32 = np.float32
        bn.set_weights([(gain / (t * s)).astype(f32), (shift / s).astype(f32), np.zeros_like(mean, f32),
                        np.full_like(var, 1.0 - bn.epsilon, f32)])
        nk, *nb = nxt.get_weights()  # [kh, kw, C, out]
        nxt.set_weights([(nk * s[None, None, :, None]).astype(nk.dtype), *nb])
    return copy, [bn.name for _, bn, _ in blocks]


def input_stage(backbone: Any) -> list[str]:
    """Names of the backbone's layers before its first conv: the reshape and the one-channel
    input batch norm (``input_bn`` / ``spec_bn``). Kept float in int8 models: their tensors are
    small (``[B, T, M, 1]``), and each int8 rounding of the log-mel on its way to the first conv
    added error (musicnn toy model: max|dp| 0.114 with them int8, 0.083 float)."""
    import keras

    names = []
    for layer in backbone.layers:
        if isinstance(layer, keras.layers.Conv2D):
            return names
        if not isinstance(layer, keras.layers.InputLayer):
            names.append(layer.name)
    return []  # no conv: nothing to single out
