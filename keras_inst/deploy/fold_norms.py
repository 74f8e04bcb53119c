"""Batch norms after the ReLU folded into the next convolution: a float-equivalent copy for int8.

Why: musicnn's VGG (:mod:`keras_inst.models.pretrained`) runs ``conv -> ReLU -> batch norm ->
max-pool -> conv``. In its dynamic-range int8 model (:mod:`keras_inst.deploy.lite`) every
conv quantises its input per example with ONE scale, and that input is the batch norm's output
``y = a * r + b``, whose channels mix large constant offsets ``b`` (channels that hardly vary)
with small varying parts, so one int8 step swamps the quiet channels (docs/benchmarks.md
"int8", fifth round). The batch norms on the biggest tensors also cost as much float time as
int8 saved. This copy removes both:

* ``max-pool(a * r + b) = |a| * max-pool(s * r) + b`` per channel with ``s = sign(a)`` (a max
  over ``-r`` is minus a min), so the pool moves before the batch norm and a ``x s`` (float,
  exact) is all that is left of it in the block;
* ``|a|`` goes into the next conv's kernel (input channel ``c``) and ``b`` into its bias, except
  where the conv's zero padding meets the border: there the shift's contribution differs, and a
  constant ``[T, M, C_out]`` term ``D`` (zero inside) is added before the ReLU, stored as its
  first, inner and last time frames (:func:`_border_layer`);
* every conv's output channels are scaled by ``t_c = 1 / q90_c`` (``q90_c``: the 90th percentile
  over the calibration windows of each window's peak of channel ``c``; the ReLU commutes with
  ``t_c > 0``) and the next kernel's input channel ``c`` by ``1 / t_c``, so each conv's int8
  input is a non-negative tensor whose channels reach ~1 in a typical window (the maximum over
  all windows let rare peaks set the scale: 0.085 vs 0.054 calibration max|dp|, measured).

The last block's batch norm moves after the global max-pool (``embedding``) the same way, or
before the tagger's flatten. A model fused with musicnn's tagger (:mod:`keras_inst.models.fusion`)
gets the same for the tagger's VGG backbone, and the fused graph is rebuilt around both. Models without this exact chain (the short-chunk CNN folds conv -> BN -> ReLU already) are
left to :func:`keras_inst.deploy.equalize.equalised_copy`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from keras_inst.deploy.equalize import equalised_copy, input_stage

# Per-channel statistic t_c is taken from: the 90th percentile of per-window peaks (see above).
_PERCENTILE = 90.0
# Channels whose statistic is below this fraction of the largest are raised to it: a dead channel
# would otherwise get a factor of ~1e6 (as in equalize.py; measured on the toy model of
# tests/deploy/test_int8.py: max|dp| 0.985 with a floor of 1e-6, 0.005 with 1e-3).
_FLOOR = 1e-3
# How a foldable backbone ends: the classifier's global max-pool, the tagger's flatten.
_ENDS = ("GlobalMaxPooling2D", "Flatten")
FOLDED = "batch norms after the ReLU folded into the next conv (float-equivalent copy, keras_inst.deploy.fold_norms)"
EQUALISED = "range-equalised copy (keras_inst.deploy.equalize)"
TAGGER_NOT_FOLDED = ("not folded: its backbone is not a conv -> ReLU -> batch norm -> max-pool chain (musicnn "
                     "architecture); its backbone's layers are all kept float32 (left int8 the fused file was slower "
                     "than float32: 0.85x, docs/benchmarks.md 'Sixth round')")


def foldable_chain(backbone: Any) -> list[tuple[Any, Any, Any]] | None:
    """``(conv, batch_norm, pool)`` of each block when ``backbone`` is one chain of: its input
    stage (:func:`input_stage`), blocks ``Conv2D(relu, 'same', stride 1) -> BatchNormalization
    -> MaxPooling2D('valid') [-> Dropout]``, then ``GlobalMaxPooling2D`` (the classifier's
    musicnn VGG) or ``Flatten`` (the tagger's, :mod:`keras_inst.models.tagger`); otherwise None."""
    import keras

    layers = [lay for lay in backbone.layers if not isinstance(lay, keras.layers.InputLayer)]
    stage = input_stage(backbone)
    if not stage or [lay.name for lay in layers[: len(stage)]] != stage:
        return None
    rest = [lay for lay in layers[len(stage):] if not isinstance(lay, keras.layers.Dropout)]
    if any(b.input is not a.output for a, b in zip(layers, layers[1:], strict=False)):
        return None  # not a single chain
    if not rest or type(rest[-1]).__name__ not in _ENDS or (len(rest) - 1) % 3:
        return None
    blocks = [tuple(rest[i : i + 3]) for i in range(0, len(rest) - 1, 3)]
    for conv, bn, pool in blocks:
        if not (isinstance(conv, keras.layers.Conv2D) and conv.activation is keras.activations.relu
                and conv.padding == "same" and tuple(conv.strides) == (1, 1) and tuple(conv.dilation_rate) == (1, 1)
                and conv.groups == 1 and conv.data_format == "channels_last" and conv.use_bias
                and isinstance(bn, keras.layers.BatchNormalization) and bn.center and bn.scale and bn.axis in (-1, 3)
                and isinstance(pool, keras.layers.MaxPooling2D) and pool.padding == "valid"):
            return None
    return blocks


def _affine(bn: Any) -> tuple[np.ndarray, np.ndarray]:
    """The batch norm as ``y = a * x + b`` per channel (float64 ``[C]`` each)."""
    gamma, beta, mean, var = (w.astype(np.float64) for w in bn.get_weights())
    a = gamma / np.sqrt(var + bn.epsilon)
    return a, beta - mean * a


def _conv_stats(backbone: Any, blocks: list, log_mel: np.ndarray, batch: int) -> tuple[list[np.ndarray], list[tuple]]:
    """Per conv: ``t [C]`` (1 / the floored percentile of per-window ReLU peaks) and its input shape ``(T, M, C_in)``."""
    import keras

    probe = keras.Model(backbone.input, [conv.output for conv, _, _ in blocks] + [conv.input for conv, _, _ in blocks])
    n = len(blocks)
    peaks: list[list[np.ndarray]] = [[] for _ in blocks]  # per block, per batch: [b, C]
    shapes: list[tuple] = []
    for i in range(0, len(log_mel), batch):
        outs = [np.asarray(o) for o in probe.predict_on_batch(log_mel[i : i + batch])]
        for j, o in enumerate(outs[:n]):  # [b, T, M, C] -> [b, C]
            peaks[j].append(np.abs(o).reshape(o.shape[0], -1, o.shape[-1]).max(axis=1))
        shapes = [tuple(o.shape[1:]) for o in outs[n:]]
    ts = []
    for p in peaks:
        q = np.percentile(np.concatenate(p).astype(np.float64), _PERCENTILE, axis=0)  # [n, C] -> [C]
        ts.append(1.0 / np.maximum(q, _FLOOR * q.max() if q.max() > 0 else 1.0))
    return ts, shapes


def _border(kernel: np.ndarray, shift: np.ndarray, shape: tuple) -> tuple[np.ndarray, np.ndarray]:
    """(bias inside, border term ``D [T, M, C_out]``) of ``conv(shift broadcast, zero padding)``."""
    import tensorflow as tf

    t, m, c = shape
    e = tf.nn.conv2d(tf.constant(np.broadcast_to(shift, (1, t, m, c)).copy()), tf.constant(kernel), 1, "SAME").numpy()[0]
    inside = e[t // 2, m // 2]  # [C_out]: every position whose 3x3 window misses the padding
    return inside, e - inside


def _const_layer(kind: str, values: tuple[np.ndarray, ...], name: str) -> Any:
    """A layer computing ``x + c`` ("add"), ``x * c`` ("mul"), ``x * c0 + c1`` ("affine") or
    the border term ("rows": ``c0 [M, C]`` added to the first time frame of ``x [B, T, M, C]``,
    ``c1`` to the inner frames, ``c2`` to the last)."""
    import keras

    class Const(keras.layers.Layer):
        def build(self, shape: Any) -> None:
            self.c = [self.add_weight(shape=v.shape, initializer=keras.initializers.Constant(v.astype(np.float32)),
                                      trainable=False, name=f"c{i}") for i, v in enumerate(values)]

        def call(self, x: Any) -> Any:
            if kind == "rows":
                c = self.c
                return keras.ops.concatenate([x[:, :1] + c[0], x[:, 1:-1] + c[1], x[:, -1:] + c[2]], axis=1)
            return x + self.c[0] if kind == "add" else x * self.c[0] if kind == "mul" else x * self.c[0] + self.c[1]

    return Const(name=name)


def _border_layer(d: np.ndarray, name: str) -> Any:
    """The layer adding the border term ``d [T, M, C]``. Every inner time frame of ``d`` is the
    same (only the mel edges miss taps there), so three frames hold it: a ``[T, M, C]`` float32
    constant per conv made the int8 file larger than the float32 one (4.9 vs 2.8 MB). The
    slices and concat cost speed, more with 2 threads than with 1 (runs/demo: 2.09x / 2.36x
    float32's speed against 2.17x / 2.91x; ReLU inside each part was slower still;
    docs/benchmarks.md "Sixth round")."""
    # float64 sums of the same taps: equal to rounding (1e-9 of the largest term keeps float32 exact)
    if len(d) >= 3 and np.abs(d[1:-1] - d[1]).max() <= 1e-9 * max(np.abs(d).max(), 1.0):
        return _const_layer("rows", (d[0], d[1], d[-1]), name)
    return _const_layer("add", (d,), name)


def fold_backbone(backbone: Any, log_mel: np.ndarray, *, batch: int = 16) -> Any | None:
    """A float-equivalent copy of ``backbone`` with its batch norms folded (module doc), scaled
    with the statistics of its inputs ``log_mel [n, M, T]``; None when it is not a
    :func:`foldable_chain`. Same input and output, same layer names for the convs and pools."""
    import keras

    blocks = foldable_chain(backbone)
    if blocks is None:
        return None
    ts, shapes = _conv_stats(backbone, blocks, log_mel, batch)
    x = inp = keras.Input(tuple(backbone.input.shape[1:]), name=backbone.input.name)
    for name in input_stage(backbone):
        x = backbone.get_layer(name)(x)
    prev: tuple[np.ndarray, np.ndarray] | None = None  # (|a| / t, b) of the previous block
    for (conv, bn, pool), t, shape in zip(blocks, ts, shapes, strict=True):
        kernel, bias = (w.astype(np.float64) for w in conv.get_weights())  # [3, 3, C_in, C], [C]
        d = None
        if prev is not None:
            inside, d = _border(kernel, prev[1], shape)
            kernel, bias = kernel * prev[0][None, None, :, None], bias + inside
        new = keras.layers.Conv2D(conv.filters, conv.kernel_size, padding="same", name=conv.name,
                                  activation="relu" if d is None else None)
        x = new(x)  # [B, T, M, C]
        new.set_weights([(kernel * t).astype(np.float32), (bias * t).astype(np.float32)])
        if d is not None:
            x = keras.layers.ReLU(name=f"{conv.name}_relu")(_border_layer(d * t, f"{conv.name}_border")(x))
        a, b = _affine(bn)
        s = np.where(a < 0, -1.0, 1.0)
        if (s < 0).any():
            x = _const_layer("mul", (s,), f"{bn.name}_sign")(x)
        x = keras.layers.MaxPooling2D(pool.pool_size, strides=pool.strides, padding="valid", name=pool.name)(x)
        prev = (np.abs(a) / t, b)
    end = backbone.layers[-1]
    if type(end).__name__ == "Flatten":  # the last batch norm per channel of [B, T5, M5, C], then flattened
        x = keras.layers.Flatten(name=end.name)(_const_layer("affine", prev, f"{blocks[-1][1].name}_after_pool")(x))
    else:
        x = _const_layer("affine", prev, "embedding")(keras.layers.GlobalMaxPooling2D(name="embedding_max")(x))  # [B, C]
    return keras.Model(inp, x, name=backbone.name)


def _tagger_inputs(model: Any, waveforms: np.ndarray, log_mel: np.ndarray, batch: int) -> np.ndarray:
    """The log-mel ``[n, 96, 187]`` a fused ``model``'s tagger backbone reads on ``waveforms``."""
    from keras_inst.models.fusion_layers import CROP_LAYER, TAGGER_LAYER, FrameCrop

    crop, tagger = model.get_layer(CROP_LAYER), model.get_layer(TAGGER_LAYER)
    x = np.asarray(crop(log_mel if isinstance(crop, FrameCrop) else waveforms))
    names = [lay.name for lay in tagger.layers]
    return tagger.get_layer("frontend").predict(x, batch_size=batch, verbose=0) if "frontend" in names else x


def _rebuild_tagger(tagger: Any, backbone: Any) -> Any:
    """The fused model's ``tagger`` (own front end or not) with ``backbone`` in place of its own."""
    import keras

    from keras_inst.models.fusion_layers import TAGGER_LAYER

    x = inp = keras.Input(tuple(tagger.input.shape[1:]), name=tagger.input.name, dtype=tagger.input.dtype)
    if "frontend" in [lay.name for lay in tagger.layers]:
        x = tagger.get_layer("frontend")(x)
    return keras.Model(inp, tagger.get_layer("probabilities")(tagger.get_layer("head")(backbone(x))), name=TAGGER_LAYER)


def folded_copy(model: Any, waveforms: np.ndarray, *, batch: int = 16) -> tuple[Any, list[str], dict[str, Any]] | None:
    """``model`` (built by ``build_model``, or fused with a tagger by
    :func:`keras_inst.models.fusion.fuse_with_tagger`) with its backbone's batch norms folded
    (module doc) using the statistics of ``waveforms [n, samples]``, and with a fused model's
    tagger backbone folded too; with the names of the folded batch norms (the tagger's as
    ``tagger/bn1``) and the export.json note on the tagger (``{}`` when not fused). None when
    nothing is a :func:`foldable_chain`. The graph is rebuilt as
    :func:`keras_inst.runtime.keras_model.dual_output_model` reads it."""
    import keras

    from keras_inst.models.fusion_layers import (
        CROP_LAYER,
        FUSION_LAYER,
        TAGGER_LAYER,
        FrameCrop,
        is_fused,
    )

    wav_np = np.asarray(waveforms, np.float32)
    log_mel = model.get_layer("frontend").predict(wav_np, batch_size=batch, verbose=0)
    backbone = model.get_layer("backbone")
    own = fold_backbone(backbone, log_mel, batch=batch)
    names = [bn.name for _, bn, _ in foldable_chain(backbone)] if own is not None else []
    tagger, note = None, {}
    if is_fused(model):
        old = model.get_layer(TAGGER_LAYER)
        t_bb = old.get_layer("backbone")
        folded_tagger = fold_backbone(t_bb, _tagger_inputs(model, wav_np, log_mel, batch), batch=batch)
        if folded_tagger is not None:
            tagger = _rebuild_tagger(old, folded_tagger)
            names += [f"{TAGGER_LAYER}/{bn.name}" for _, bn, _ in foldable_chain(t_bb)]
        note = {"tagger": FOLDED if folded_tagger is not None else TAGGER_NOT_FOLDED}
    if own is None and tagger is None:
        return None
    wav = keras.Input(tuple(model.input.shape[1:]), name=model.input.name, dtype="float32")
    mel = model.get_layer("frontend")(wav)  # [B, M, T]
    logits = model.get_layer("head")((own or backbone)(mel))  # [B, C]
    if is_fused(model):
        crop = model.get_layer(CROP_LAYER)
        tags = (tagger or model.get_layer(TAGGER_LAYER))(crop(mel if isinstance(crop, FrameCrop) else wav))  # [B, C]
        logits = model.get_layer(FUSION_LAYER)([logits, tags])
    return keras.Model(wav, model.get_layer("probabilities")(logits), name=model.name), names, note


def float_equivalent_copy(model: Any, waveforms: np.ndarray) -> tuple[Any, list[str], str | None, dict[str, Any]]:
    """The copy the int8 converter reads: :func:`folded_copy` where a backbone (the
    classifier's or a fused tagger's) is a :func:`foldable_chain`, else
    :func:`~keras_inst.deploy.equalize.equalised_copy`; with the names of the batch norms
    changed (none: ``model`` itself), how (export.json ``"copy"``) and the note on a fused
    model's tagger (export.json, ``{}`` when not fused)."""
    from keras_inst.models.fusion_layers import is_fused

    folded = folded_copy(model, waveforms)
    if folded is not None:
        return folded[0], folded[1], FOLDED, folded[2]
    eq, names = equalised_copy(model, waveforms)
    note = {"tagger": TAGGER_NOT_FOLDED} if is_fused(model) else {}
    return eq, names, EQUALISED if names else None, note
